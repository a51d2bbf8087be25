// RUN: kvopt-opt %s -split-input-file -kv-mha-to-gqa=kv-heads=2 --mlir-print-local-scope | FileCheck %s
// RUN: kvopt-opt %s -split-input-file -kv-mha-to-gqa=kv-heads=1 --mlir-print-local-scope | FileCheck %s --check-prefix=MQA

!c = !kv.cache<kv_heads = 4, head_dim = 8, capacity = 16, element = f32>

// An MHA layer (4 KV heads of 8, as raised from a model graph): the K and V
// projection weights [32, 4*8] are mean-pooled over pairs of heads into
// [32, 2*8], the cache keeps 2 heads, the 4 query heads now form GQA groups
// of 2, and the view returned by the function shrinks with the cache.
// CHECK-LABEL: func @mha
// CHECK-SAME: (%{{.*}}: !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32> {kv.layer = 0 : i64}, %[[X:.*]]: tensor<2x32xf32>, %[[WK:.*]]: tensor<32x32xf32>, %[[WV:.*]]: tensor<32x32xf32>
// CHECK-SAME: -> (tensor<2x4x1x8xf32>, tensor<2x2x16x8xf32>)
// CHECK: %[[G:.*]] = tensor.expand_shape %[[WK]] {{\[\[}}0], [1, 2, 3]] output_shape [32, 2, 2, 8] : tensor<32x32xf32> into tensor<32x2x2x8xf32>
// CHECK: %[[HALF:.*]] = arith.constant 5.000000e-01 : f32
// CHECK: %[[P:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction", "parallel"]{{.*}} ins(%[[G]] : tensor<32x2x2x8xf32>)
// CHECK: arith.mulf %{{.*}}, %[[HALF]]
// CHECK: %[[W2:.*]] = tensor.collapse_shape %[[P]] {{\[\[}}0], [1, 2]] : tensor<32x2x8xf32> into tensor<32x16xf32>
// CHECK: linalg.matmul ins(%[[X]], %[[W2]] : tensor<2x32xf32>, tensor<32x16xf32>)
// CHECK: tensor.expand_shape {{.*}} output_shape [2, 1, 2, 8] : tensor<2x16xf32> into tensor<2x1x2x8xf32>
// CHECK: linalg.transpose ins(%{{.*}} : tensor<2x1x2x8xf32>) outs(%{{.*}} : tensor<2x2x1x8xf32>)
// CHECK: kv.append {{.*}} : !kv.cache<kv_heads = 2{{.*}}>, tensor<2xi32>, tensor<2x2x1x8xf32>, tensor<2x2x1x8xf32>
// CHECK: kv.attention {{.*}} : (tensor<2x4x1x8xf32>, !kv.cache<kv_heads = 2
// CHECK: kv.view {{.*}} -> tensor<2x2x16x8xf32>, tensor<2x2x16x8xf32>
// MQA-LABEL: func @mha
// MQA-SAME: !kv.cache<kv_heads = 1, head_dim = 8
// MQA: arith.constant 2.500000e-01 : f32
func.func @mha(%c: !c {kv.layer = 0 : i64}, %x: tensor<2x32xf32>, %wk: tensor<32x32xf32>,
               %wv: tensor<32x32xf32>, %q: tensor<2x4x1x8xf32>)
    -> (tensor<2x4x1x8xf32>, tensor<2x4x16x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %pos = arith.constant dense<5> : tensor<2xi32>
  %lens = arith.constant dense<6> : tensor<2xi32>
  %e = tensor.empty() : tensor<2x32xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<2x32xf32>) -> tensor<2x32xf32>
  %kf = linalg.matmul ins(%x, %wk : tensor<2x32xf32>, tensor<32x32xf32>) outs(%init : tensor<2x32xf32>) -> tensor<2x32xf32>
  %k4 = tensor.expand_shape %kf [[0, 1], [2, 3]] output_shape [2, 1, 4, 8] : tensor<2x32xf32> into tensor<2x1x4x8xf32>
  %te = tensor.empty() : tensor<2x4x1x8xf32>
  %k = linalg.transpose ins(%k4 : tensor<2x1x4x8xf32>) outs(%te : tensor<2x4x1x8xf32>) permutation = [0, 2, 1, 3]
  %vf = linalg.matmul ins(%x, %wv : tensor<2x32xf32>, tensor<32x32xf32>) outs(%init : tensor<2x32xf32>) -> tensor<2x32xf32>
  %v4 = tensor.expand_shape %vf [[0, 1], [2, 3]] output_shape [2, 1, 4, 8] : tensor<2x32xf32> into tensor<2x1x4x8xf32>
  %ve = tensor.empty() : tensor<2x4x1x8xf32>
  %v = linalg.transpose ins(%v4 : tensor<2x1x4x8xf32>) outs(%ve : tensor<2x4x1x8xf32>) permutation = [0, 2, 1, 3]
  kv.append %c[%pos], %k, %v : !c, tensor<2xi32>, tensor<2x4x1x8xf32>, tensor<2x4x1x8xf32>
  %o = kv.attention %q, %c, %lens {causal} : (tensor<2x4x1x8xf32>, !c, tensor<2xi32>) -> tensor<2x4x1x8xf32>
  %vk, %vv = kv.view %c : !c -> tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>
  return %o, %vk : tensor<2x4x1x8xf32>, tensor<2x4x16x8xf32>
}

// -----

!c = !kv.cache<kv_heads = 4, head_dim = 8, capacity = 16, element = f32>

// Keys that do not come from the documented projection chain are left
// alone, with a remark saying why.
// CHECK-LABEL: func @other_keys
// CHECK-SAME: !kv.cache<kv_heads = 4
func.func @other_keys(%c: !c, %k: tensor<2x4x1x8xf32>) {
  %pos = arith.constant dense<5> : tensor<2xi32>
  kv.append %c[%pos], %k, %k : !c, tensor<2xi32>, tensor<2x4x1x8xf32>, tensor<2x4x1x8xf32>
  return
}

// -----

// Caches that already have at most kv-heads heads are untouched.
// CHECK-LABEL: func @already_gqa
// CHECK-SAME: !kv.cache<kv_heads = 2
// MQA-LABEL: func @already_gqa
// MQA-SAME: !kv.cache<kv_heads = 1
func.func @already_gqa(%c: !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>) {
  return
}

// -----

!c = !kv.cache<kv_heads = 4, head_dim = 8, capacity = 16, element = f32>

// Views and attention through a kv.share_cache view of the cache (a later
// layer reading it) shrink with the cache.
// CHECK-LABEL: func @shared_reader
// CHECK: %[[S:.*]] = kv.share_cache %{{.*}} {layer = 1 : i64} : !kv.cache<kv_heads = 2{{.*}}> -> !kv.cache<kv_heads = 2
// CHECK: kv.view %[[S]] : !kv.cache<kv_heads = 2{{.*}}> -> tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>
// CHECK: kv.attention %{{.*}}, %[[S]], %{{.*}} : (tensor<1x4x1x8xf32>, !kv.cache<kv_heads = 2
func.func @shared_reader(%c: !c {kv.layer = 0 : i64}, %q: tensor<1x4x1x8xf32>, %lens: tensor<1xi32>)
    -> (tensor<1x4x16x8xf32>, tensor<1x4x1x8xf32>) {
  %s = kv.share_cache %c {layer = 1} : !c -> !c
  %vk, %vv = kv.view %s : !c -> tensor<1x4x16x8xf32>, tensor<1x4x16x8xf32>
  %o = kv.attention %q, %s, %lens : (tensor<1x4x1x8xf32>, !c, tensor<1xi32>) -> tensor<1x4x1x8xf32>
  return %vk, %o : tensor<1x4x16x8xf32>, tensor<1x4x1x8xf32>
}
