;; flaky: a module that misbehaves on request, for the host's tests.
;; It answers info, and check with a valid verdict, unless the request
;; contains one of these words:
;;   please-loop     loop forever (the deadline must end it)
;;   please-trap     execute unreachable
;;   please-bomb     grow memory until the host's cap refuses, then trap
;;   please-huge     claim a 2 GiB answer
;;   please-overrun  point the answer past the end of memory
;;   please-garbage  answer bytes that are not JSON
;;   please-echo     answer an error whose message repeats the secret
;; Everything else answers unsupported_op. Build: wat2wasm flaky.wat -o flaky.wasm
(module
  (memory (export "memory") 1)
  ;; $op_info: offset 64, length 11
  (data (i32.const 64) "\22op\22:\22info\22")
  ;; $op_check: offset 75, length 12
  (data (i32.const 75) "\22op\22:\22check\22")
  ;; $loop: offset 87, length 11
  (data (i32.const 87) "please-loop")
  ;; $trap: offset 98, length 11
  (data (i32.const 98) "please-trap")
  ;; $bomb: offset 109, length 11
  (data (i32.const 109) "please-bomb")
  ;; $huge: offset 120, length 11
  (data (i32.const 120) "please-huge")
  ;; $garbage: offset 131, length 14
  (data (i32.const 131) "please-garbage")
  ;; $overrun: offset 145, length 14
  (data (i32.const 145) "please-overrun")
  ;; $echo: offset 159, length 11
  (data (i32.const 159) "please-echo")
  ;; $info: offset 170, length 48
  (data (i32.const 170) "{\22ok\22:true,\22provider\22:\22flaky\22,\22version\22:\220.0.1\22}")
  ;; $valid: offset 218, length 58
  (data (i32.const 218) "{\22ok\22:true,\22valid\22:true,\22kind\22:\22api_key\22,\22expiresAt\22:null}")
  ;; $junk: offset 276, length 19
  (data (i32.const 276) "\00\c3\bfthis is not JSON")
  ;; $unsupported: offset 295, length 46
  (data (i32.const 295) "{\22ok\22:false,\22error\22:{\22code\22:\22unsupported_op\22}}")
  ;; $echo_open: offset 341, length 46
  (data (i32.const 341) "{\22ok\22:false,\22error\22:{\22code\22:\22echo\22,\22message\22:\22")
  ;; $echo_close: offset 387, length 3
  (data (i32.const 387) "\22}}")
  ;; $secret_key: offset 390, length 10
  (data (i32.const 390) "\22secret\22:\22")
  ;; $quote: offset 400, length 1
  (data (i32.const 400) "\22")

  ;; find returns the offset of needle [n, n+nl) in haystack [h, h+hl), or -1.
  (func $find (param $h i32) (param $hl i32) (param $n i32) (param $nl i32) (result i32)
    (local $i i32) (local $j i32)
    (block $none
      (loop $outer
        (br_if $none (i32.gt_s (i32.add (local.get $i) (local.get $nl)) (local.get $hl)))
        (local.set $j (i32.const 0))
        (block $differ
          (loop $inner
            (if (i32.ge_u (local.get $j) (local.get $nl)) (then (return (local.get $i))))
            (br_if $differ
              (i32.ne
                (i32.load8_u (i32.add (local.get $h) (i32.add (local.get $i) (local.get $j))))
                (i32.load8_u (i32.add (local.get $n) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (i32.const -1))

  ;; The heap is a bump allocator from $heap_base. The host allocates once
  ;; per call and frees both buffers before the next call, so opensoul_alloc
  ;; may start again from the base every time.
  (global $heap (mut i32) (i32.const 4096))
  (global $out (mut i32) (i32.const 0))
  (global $cur (mut i32) (i32.const 0))

  (func $reserve (param $size i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.add (local.get $p) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq
              (memory.grow (i32.add (i32.div_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)) (i32.const 1)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $p))

  (func (export "opensoul_alloc") (param $size i32) (result i32)
    (global.set $heap (i32.const 4096))
    (call $reserve (local.get $size)))

  (func (export "opensoul_free") (param i32 i32))

  ;; put appends [p, p+n) to the answer being built.
  (func $put (param $p i32) (param $n i32)
    (memory.copy (global.get $cur) (local.get $p) (local.get $n))
    (global.set $cur (i32.add (global.get $cur) (local.get $n))))

  ;; begin starts an answer of at most $max bytes.
  (func $begin (param $max i32)
    (global.set $out (call $reserve (local.get $max)))
    (global.set $cur (global.get $out)))

  ;; done returns (ptr << 32) | len of the answer.
  (func $done (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (global.get $out)) (i64.const 32))
      (i64.extend_i32_u (i32.sub (global.get $cur) (global.get $out)))))

  ;; answer returns a constant answer [p, p+n).
  (func $answer (param $p i32) (param $n i32) (result i64)
    (call $begin (local.get $n))
    (call $put (local.get $p) (local.get $n))
    (call $done))

  (func (export "opensoul_abi_version") (result i32) (i32.const 1))

  (func (export "opensoul_call") (param $req i32) (param $len i32) (result i64)
    (local $s i32) (local $e i32)
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 87) (i32.const 11)) (i32.const 0)) (then (loop $forever (br $forever))))
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 98) (i32.const 11)) (i32.const 0)) (then unreachable))
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 109) (i32.const 11)) (i32.const 0))
      (then
        (loop $grow
          (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
        unreachable))
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 120) (i32.const 11)) (i32.const 0)) (then (return (i64.const 0x7fffffff))))
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 145) (i32.const 14)) (i32.const 0)) (then (return (i64.or (i64.shl (i64.const 65000) (i64.const 32)) (i64.const 4096)))))
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 131) (i32.const 14)) (i32.const 0)) (then (return (call $answer (i32.const 276) (i32.const 19)))))
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 159) (i32.const 11)) (i32.const 0))
      (then
        (local.set $s (call $find (local.get $req) (local.get $len) (i32.const 390) (i32.const 10)))
        (local.set $s (i32.add (local.get $req) (i32.add (local.get $s) (i32.const 10))))
        (local.set $e (call $find (local.get $s) (i32.sub (i32.add (local.get $req) (local.get $len)) (local.get $s)) (i32.const 400) (i32.const 1)))
        (call $begin (i32.add (local.get $e) (i32.const 128)))
        (call $put (i32.const 341) (i32.const 46))
        (call $put (local.get $s) (local.get $e))
        (call $put (i32.const 387) (i32.const 3))
        (return (call $done))))
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 64) (i32.const 11)) (i32.const 0)) (then (return (call $answer (i32.const 170) (i32.const 48)))))
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 75) (i32.const 12)) (i32.const 0)) (then (return (call $answer (i32.const 218) (i32.const 58)))))
    (call $answer (i32.const 295) (i32.const 46)))
)
