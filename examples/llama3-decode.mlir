// One decode step of the attention part of a Llama-3-8B-shaped model (GQA:
// 32 query heads over 8 KV heads of dimension 128), written at the kv
// dialect's logical level. Four layers are shown; layers 2 and 3 read the
// caches of layers 0 and 1 (cross-layer sharing). Run the quick start's
// pipeline on it:
//
//   kvopt-opt examples/llama3-decode.mlir \
//     --kv-optimize="page-size=16 key=int4 value=int4 budget-gib=16 batch=8"

!cache = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>
!q = tensor<8x32x1x128xf16>
!kv = tensor<8x8x1x128xf16>

func.func @decode_step(%c0: !cache {kv.layer = 0 : i64},
                       %c1: !cache {kv.layer = 1 : i64},
                       %pos: tensor<8xi32>, %lens: tensor<8xi32>,
                       %q0: !q, %k0: !kv, %v0: !kv,
                       %q1: !q, %k1: !kv, %v1: !kv,
                       %q2: !q, %q3: !q) -> (!q, !q, !q, !q) {
  // Layer 0: rotate and append the new key/value, then attend causally.
  kv.append %c0[%pos], %k0, %v0 {rope_theta = 500000.0 : f64}
      : !cache, tensor<8xi32>, !kv, !kv
  %o0 = kv.attention %q0, %c0, %lens {causal} : (!q, !cache, tensor<8xi32>) -> !q
  // Layer 1.
  kv.append %c1[%pos], %k1, %v1 {rope_theta = 500000.0 : f64}
      : !cache, tensor<8xi32>, !kv, !kv
  %o1 = kv.attention %q1, %c1, %lens {causal} : (!q, !cache, tensor<8xi32>) -> !q
  // Layers 2 and 3 share the caches of layers 0 and 1 and do not append.
  %s2 = kv.share_cache %c0 {layer = 2} : !cache -> !cache
  %o2 = kv.attention %q2, %s2, %lens {causal} : (!q, !cache, tensor<8xi32>) -> !q
  %s3 = kv.share_cache %c1 {layer = 3} : !cache -> !cache
  %o3 = kv.attention %q3, %s3, %lens {causal} : (!q, !cache, tensor<8xi32>) -> !q
  return %o0, %o1, %o2, %o3 : !q, !q, !q, !q
}
