;; Matrix-vector products against block-quantized weights (shared/model/quantize.ts), in
;; WebAssembly SIMD: onnxruntime-web has no 4-bit or 8-bit kernel for WASM (see
;; shared/model/dequantize-linears.ts), and unpacked to f32 its GEMV reads 8x (q4) or 4x (q8)
;; the bytes from memory.
;;
;; out[r] = sum over blocks b of scale[r, b] * xscale[b] * (dot(q[r, b], xq[b]) + corr[b])
;;
;; The weights stay as the package stores them: rows of 32-element blocks, unsigned with zero
;; point 8 (q4, two per byte: element 2j in the low nibble) or 128 (q8). The activations come
;; quantized to int16 with a scale per block of 32 (xscale, quantized-gemv.ts), and laid out
;; to match each block's bytes: for q4 the even
;; elements of each half-block, then the odd ones; for q8 in order. corr[b] holds
;; -zero * sum(xq[b]) in lane 0 of an i32x4 (the zero point folded out of the weights).
;; Each int16 pair product is summed in int32 (i32x4.dot_i16x8_s): exact for |xq| <= 32767.
(module
  (memory (export "memory") 1)

  (func $sum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; q4: 16 bytes per block; xq 64 bytes per block; corr 16 bytes per block.
  (func (export "q4_gemv") (param $w i32) (param $s i32) (param $x i32) (param $xs i32) (param $corr i32) (param $out i32) (param $rows i32) (param $blocks i32)
    (local $xp i32) (local $xsp i32) (local $cp i32) (local $b i32) (local $end i32)
    (local $acc v128) (local $a v128) (local $v0 v128) (local $v1 v128) (local $low v128)
    (local.set $low (i16x8.splat (i32.const 15)))
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $rows) (i32.const 2))))
    (block $done
      (br_if $done (i32.eqz (local.get $rows)))
      (loop $row
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $xp (local.get $x))
        (local.set $xsp (local.get $xs))
        (local.set $cp (local.get $corr))
        (local.set $b (local.get $blocks))
        (loop $block
          ;; 8 bytes widened to 8 int16 lanes: the low nibbles are the even elements, the high the odd.
          (local.set $v0 (v128.load8x8_u (local.get $w)))
          (local.set $v1 (v128.load8x8_u offset=8 (local.get $w)))
          (local.set $a (i32x4.add (v128.load (local.get $cp))
            (i32x4.dot_i16x8_s (v128.and (local.get $v0) (local.get $low)) (v128.load (local.get $xp)))))
          (local.set $a (i32x4.add (local.get $a)
            (i32x4.dot_i16x8_s (i16x8.shr_u (local.get $v0) (i32.const 4)) (v128.load offset=16 (local.get $xp)))))
          (local.set $a (i32x4.add (local.get $a)
            (i32x4.dot_i16x8_s (v128.and (local.get $v1) (local.get $low)) (v128.load offset=32 (local.get $xp)))))
          (local.set $a (i32x4.add (local.get $a)
            (i32x4.dot_i16x8_s (i16x8.shr_u (local.get $v1) (i32.const 4)) (v128.load offset=48 (local.get $xp)))))
          (local.set $acc (f32x4.add (local.get $acc)
            (f32x4.mul (f32x4.convert_i32x4_s (local.get $a))
              (f32x4.mul (v128.load32_splat (local.get $s)) (v128.load32_splat (local.get $xsp))))))
          (local.set $w (i32.add (local.get $w) (i32.const 16)))
          (local.set $s (i32.add (local.get $s) (i32.const 4)))
          (local.set $xp (i32.add (local.get $xp) (i32.const 64)))
          (local.set $xsp (i32.add (local.get $xsp) (i32.const 4)))
          (local.set $cp (i32.add (local.get $cp) (i32.const 16)))
          (br_if $block (local.tee $b (i32.sub (local.get $b) (i32.const 1)))))
        (f32.store (local.get $out) (call $sum (local.get $acc)))
        (br_if $row (i32.lt_u (local.tee $out (i32.add (local.get $out) (i32.const 4))) (local.get $end))))))

  ;; q8: 32 bytes per block; xq 64 bytes per block, in order; corr 16 bytes per block.
  (func (export "q8_gemv") (param $w i32) (param $s i32) (param $x i32) (param $xs i32) (param $corr i32) (param $out i32) (param $rows i32) (param $blocks i32)
    (local $xp i32) (local $xsp i32) (local $cp i32) (local $b i32) (local $end i32) (local $acc v128) (local $a v128)
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $rows) (i32.const 2))))
    (block $done
      (br_if $done (i32.eqz (local.get $rows)))
      (loop $row
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $xp (local.get $x))
        (local.set $xsp (local.get $xs))
        (local.set $cp (local.get $corr))
        (local.set $b (local.get $blocks))
        (loop $block
          (local.set $a (i32x4.add (v128.load (local.get $cp))
            (i32x4.dot_i16x8_s (v128.load8x8_u (local.get $w)) (v128.load (local.get $xp)))))
          (local.set $a (i32x4.add (local.get $a)
            (i32x4.dot_i16x8_s (v128.load8x8_u offset=8 (local.get $w)) (v128.load offset=16 (local.get $xp)))))
          (local.set $a (i32x4.add (local.get $a)
            (i32x4.dot_i16x8_s (v128.load8x8_u offset=16 (local.get $w)) (v128.load offset=32 (local.get $xp)))))
          (local.set $a (i32x4.add (local.get $a)
            (i32x4.dot_i16x8_s (v128.load8x8_u offset=24 (local.get $w)) (v128.load offset=48 (local.get $xp)))))
          (local.set $acc (f32x4.add (local.get $acc)
            (f32x4.mul (f32x4.convert_i32x4_s (local.get $a))
              (f32x4.mul (v128.load32_splat (local.get $s)) (v128.load32_splat (local.get $xsp))))))
          (local.set $w (i32.add (local.get $w) (i32.const 32)))
          (local.set $s (i32.add (local.get $s) (i32.const 4)))
          (local.set $xp (i32.add (local.get $xp) (i32.const 64)))
          (local.set $xsp (i32.add (local.get $xsp) (i32.const 4)))
          (local.set $cp (i32.add (local.get $cp) (i32.const 16)))
          (br_if $block (local.tee $b (i32.sub (local.get $b) (i32.const 1)))))
        (f32.store (local.get $out) (call $sum (local.get $acc)))
        (br_if $row (i32.lt_u (local.tee $out (i32.add (local.get $out) (i32.const 4))) (local.get $end)))))))
