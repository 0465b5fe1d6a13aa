;; wrong-abi: every export is present, but opensoul_abi_version returns 2.
(module
  (memory (export "memory") 1)
  (func (export "opensoul_abi_version") (result i32) (i32.const 2))
  (func (export "opensoul_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "opensoul_free") (param i32 i32))
  (func (export "opensoul_call") (param i32 i32) (result i64) (i64.const 0))
)
