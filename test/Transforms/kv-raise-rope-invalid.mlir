// RUN: not kvopt-opt %s -kv-raise-rope=max-elements=0 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not kvopt-opt %s -kv-raise-rope=max-elements=-4 2>&1 | FileCheck %s --check-prefix=NEG
// RUN: kvopt-opt %s -kv-raise-rope="max-elements=15 emit-remarks" -verify-diagnostics | FileCheck %s --check-prefix=SMALL
// Bad options give an error naming the option, never a crash; a tensor
// larger than max-elements is left alone with a remark naming it.

// ZERO: error: kv-raise-rope: option 'max-elements' must be positive, got 0
// NEG: error: kv-raise-rope: option 'max-elements' must be positive, got -4
// SMALL-LABEL: func @keys
// SMALL-NOT: kv.rope

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// A proper rotation of 16 elements (position 5, theta 10000).
func.func @keys(%c: !c, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>) {
  %cos = arith.constant dense<[[2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01, 2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01]]> : tensor<1x8xf32>
  %sin = arith.constant dense<[[-9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03, -9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03]]> : tensor<1x8xf32>
  %lo = tensor.extract_slice %k[0, 0, 0, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %hi = tensor.extract_slice %k[0, 0, 0, 4] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %eh = tensor.empty() : tensor<1x2x1x4xf32>
  %neg = linalg.negf ins(%hi : tensor<1x2x1x4xf32>) outs(%eh : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %rot = tensor.concat dim(3) %neg, %lo : (tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x1x8xf32>
  %e = tensor.empty() : tensor<1x2x1x8xf32>
  // expected-remark @+1 {{kv-raise-rope: not raised: the tensor has more elements than 'max-elements' (15)}}
  %r = linalg.generic {indexing_maps = [#id, #id, #td, #td, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%k, %rot, %cos, %sin : tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>, tensor<1x8xf32>, tensor<1x8xf32>) outs(%e : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %ro: f32, %cs: f32, %sn: f32, %o: f32):
    %ac = arith.mulf %a, %cs : f32
    %rs = arith.mulf %ro, %sn : f32
    %y = arith.addf %ac, %rs : f32
    linalg.yield %y : f32
  } -> tensor<1x2x1x8xf32>
  %pos = arith.constant dense<5> : tensor<1xi32>
  kv.append %c[%pos], %r, %v : !c, tensor<1xi32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>
  return
}
