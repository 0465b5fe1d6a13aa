;; missing-exports: has memory and opensoul_abi_version, lacks opensoul_alloc, opensoul_free and opensoul_call.
(module
  (memory (export "memory") 1)
  (func (export "opensoul_abi_version") (result i32) (i32.const 1))
)
