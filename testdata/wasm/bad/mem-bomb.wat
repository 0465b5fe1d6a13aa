;; mem-bomb: declares a minimum memory of 4 GiB (65536 pages), far above the
;; host's cap, so instantiation must fail rather than allocate it.
(module
  (memory (export "memory") 65536)
  (func (export "opensoul_abi_version") (result i32) (i32.const 1))
  (func (export "opensoul_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "opensoul_free") (param i32 i32))
  (func (export "opensoul_call") (param i32 i32) (result i64) (i64.const 0))
)
