;; acme: a provider module for OpenSoul ABI v1 written by hand in WebAssembly
;; text, to prove the ABI needs no Go. Build: wat2wasm acme.wat -o acme.wasm
;;
;; It answers info, declaring the ops it answers (check and headers);
;; check (valid when the secret starts with "acme-"); headers (the secret
;; in x-acme-key, Authorization removed); and unsupported_op for anything
;; else. The host does not ask it classify (not declared): its generic
;; table applies.
;; Requests are found by substring, which is enough for a fixture: the host
;; writes compact JSON, and acme secrets contain no escaped characters.
(module
  (memory (export "memory") 1)
  ;; $op_info: offset 64, length 11
  (data (i32.const 64) "\22op\22:\22info\22")
  ;; $op_check: offset 75, length 12
  (data (i32.const 75) "\22op\22:\22check\22")
  ;; $op_headers: offset 87, length 14
  (data (i32.const 87) "\22op\22:\22headers\22")
  ;; $secret_key: offset 101, length 10
  (data (i32.const 101) "\22secret\22:\22")
  ;; $acme_prefix: offset 111, length 15
  (data (i32.const 111) "\22secret\22:\22acme-")
  ;; $quote: offset 126, length 1
  (data (i32.const 126) "\22")
  ;; $info: offset 127, length 73
  (data (i32.const 127) "{\22ok\22:true,\22provider\22:\22acme\22,\22version\22:\220.1.0\22,\22ops\22:[\22check\22,\22headers\22]}")
  ;; $valid: offset 200, length 58
  (data (i32.const 200) "{\22ok\22:true,\22valid\22:true,\22kind\22:\22api_key\22,\22expiresAt\22:null}")
  ;; $invalid: offset 258, length 133
  (data (i32.const 258) "{\22ok\22:true,\22valid\22:false,\22kind\22:\22unknown\22,\22expiresAt\22:null,\22reason\22:\22acme keys start with acme-\22,\22hint\22:\22create one at acme.example\22}")
  ;; $hdr_open: offset 391, length 32
  (data (i32.const 391) "{\22ok\22:true,\22set\22:{\22x-acme-key\22:\22")
  ;; $hdr_close: offset 423, length 30
  (data (i32.const 423) "\22},\22remove\22:[\22authorization\22]}")
  ;; $unsupported: offset 453, length 95
  (data (i32.const 453) "{\22ok\22:false,\22error\22:{\22code\22:\22unsupported_op\22,\22message\22:\22acme answers info, check and headers\22}}")

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
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 64) (i32.const 11)) (i32.const 0)) (then (return (call $answer (i32.const 127) (i32.const 73)))))
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 75) (i32.const 12)) (i32.const 0))
      (then
        (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 111) (i32.const 15)) (i32.const 0))
          (then (return (call $answer (i32.const 200) (i32.const 58)))))
        (return (call $answer (i32.const 258) (i32.const 133)))))
    (if (i32.ge_s (call $find (local.get $req) (local.get $len) (i32.const 87) (i32.const 14)) (i32.const 0))
      (then
        ;; $s: first byte of the secret; $e: its length
        (local.set $s (call $find (local.get $req) (local.get $len) (i32.const 101) (i32.const 10)))
        (if (i32.lt_s (local.get $s) (i32.const 0)) (then (return (call $answer (i32.const 453) (i32.const 95)))))
        (local.set $s (i32.add (local.get $req) (i32.add (local.get $s) (i32.const 10))))
        (local.set $e (call $find (local.get $s) (i32.sub (i32.add (local.get $req) (local.get $len)) (local.get $s)) (i32.const 126) (i32.const 1)))
        (call $begin (i32.add (local.get $e) (i32.const 128)))
        (call $put (i32.const 391) (i32.const 32))
        (call $put (local.get $s) (local.get $e))
        (call $put (i32.const 423) (i32.const 30))
        (return (call $done))))
    (call $answer (i32.const 453) (i32.const 95)))
)
