;; garbage: every answer is bytes that are not JSON.
(module
  (memory (export "memory") 1)
  (data (i32.const 64) "\00\ffgarbage, not JSON")
  (func (export "opensoul_abi_version") (result i32) (i32.const 1))
  (func (export "opensoul_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "opensoul_free") (param i32 i32))
  (func (export "opensoul_call") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 20)))
)
