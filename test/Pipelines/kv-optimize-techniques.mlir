// RUN: kvopt-opt %s --kv-optimize="kv-heads=1 share-group=2 key=int8 value=int8 page-size=16 budget-gib=1" --mlir-print-local-scope | FileCheck %s
// RUN: kvopt-opt %s --kv-optimize="share-map=0,0 page-size=0" -o /dev/null | FileCheck %s --check-prefix=MAP
// The pipeline composes MHA->GQA, sharing, fusion, quantization and paging.

// Baseline: two layers with 2 KV heads of 8 in f32: 2 * (2 * 2 * 8 * 4) = 256.
// After: one cache (layer 1 shares layer 0's) of 1 head with int8 keys per
// channel over 16 tokens (8 + 8 * 2 * 2 / 16 = 10) and int8 values per token
// (8 + 2 * 2 = 12): 22 bytes per token.
// Per layer: 128 before each; layer 1 reads layer 0's cache after.
// CHECK: 0 kv 1x8 f32 K:int8/ch16 V:int8/tok paged/16 22.00 128.00
// CHECK: 1 shares the cache of layer 0 0.00 128.00
// CHECK: total bytes per token: 22.00 (before: 256.00, 11.64x smaller)
// CHECK-LABEL: func @two_layers
// CHECK-SAME: (%[[C:.*]]: !kv.cache<kv_heads = 1, head_dim = 8, capacity = 32, element = f32, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int8, axis = channel, group = 16, symmetric = false, recent = 15>, value = #kv.quant<int8, symmetric = false>> {kv.layer = 0 : i64}, %[[BT:.*]]: tensor<?x2xi32>
// CHECK: kv.share_cache %[[C]] {layer = 1 : i64}
// CHECK: kv.append %[[C]][%{{.*}}], %{{.*}}, %{{.*}} block_table %[[BT]] {rope_theta = 1.000000e+04 : f64}
// CHECK-NOT: kv.append
// MAP: kv-memory-report: 2 layers, 1 caches, 128.00 B/token (was 256.00, 2.00x smaller)
func.func @two_layers(%c0: !kv.cache<kv_heads = 2, head_dim = 8, capacity = 32, element = f32> {kv.layer = 0 : i64},
                      %c1: !kv.cache<kv_heads = 2, head_dim = 8, capacity = 32, element = f32> {kv.layer = 1 : i64},
                      %x: tensor<2x32xf32>, %wk: tensor<32x16xf32>, %wv: tensor<32x16xf32>,
                      %q: tensor<2x2x1x8xf32>) -> (tensor<2x2x1x8xf32>, tensor<2x2x1x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %pos = arith.constant dense<5> : tensor<2xi32>
  %lens = arith.constant dense<6> : tensor<2xi32>
  %e = tensor.empty() : tensor<2x16xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<2x16xf32>) -> tensor<2x16xf32>
  %kf = linalg.matmul ins(%x, %wk : tensor<2x32xf32>, tensor<32x16xf32>) outs(%init : tensor<2x16xf32>) -> tensor<2x16xf32>
  %k4 = tensor.expand_shape %kf [[0, 1], [2, 3]] output_shape [2, 1, 2, 8] : tensor<2x16xf32> into tensor<2x1x2x8xf32>
  %te = tensor.empty() : tensor<2x2x1x8xf32>
  %k = linalg.transpose ins(%k4 : tensor<2x1x2x8xf32>) outs(%te : tensor<2x2x1x8xf32>) permutation = [0, 2, 1, 3]
  %kr = kv.rope %k, %pos {theta = 10000.0 : f64} : tensor<2x2x1x8xf32>, tensor<2xi32> -> tensor<2x2x1x8xf32>
  %vf = linalg.matmul ins(%x, %wv : tensor<2x32xf32>, tensor<32x16xf32>) outs(%init : tensor<2x16xf32>) -> tensor<2x16xf32>
  %v4 = tensor.expand_shape %vf [[0, 1], [2, 3]] output_shape [2, 1, 2, 8] : tensor<2x16xf32> into tensor<2x1x2x8xf32>
  %ve = tensor.empty() : tensor<2x2x1x8xf32>
  %v = linalg.transpose ins(%v4 : tensor<2x1x2x8xf32>) outs(%ve : tensor<2x2x1x8xf32>) permutation = [0, 2, 1, 3]
  kv.append %c0[%pos], %kr, %v : !kv.cache<kv_heads = 2, head_dim = 8, capacity = 32, element = f32>, tensor<2xi32>, tensor<2x2x1x8xf32>, tensor<2x2x1x8xf32>
  %o0 = kv.attention %q, %c0, %lens {causal} : (tensor<2x2x1x8xf32>, !kv.cache<kv_heads = 2, head_dim = 8, capacity = 32, element = f32>, tensor<2xi32>) -> tensor<2x2x1x8xf32>
  %o1 = kv.attention %q, %c1, %lens {causal} : (tensor<2x2x1x8xf32>, !kv.cache<kv_heads = 2, head_dim = 8, capacity = 32, element = f32>, tensor<2xi32>) -> tensor<2x2x1x8xf32>
  return %o0, %o1 : tensor<2x2x1x8xf32>, tensor<2x2x1x8xf32>
}
