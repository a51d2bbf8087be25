// RUN: not kvopt-opt %s -kv-raise-attention=capacity=-1 2>&1 | FileCheck %s --check-prefix=NEG
// RUN: not kvopt-opt %s -kv-raise-attention=capacity=3 2>&1 | FileCheck %s --check-prefix=SMALL
// Bad options give an error naming the option, never a crash.

// NEG: error: kv-raise-attention: option 'capacity' must be 0 (past + new tokens) or positive, got -1
// SMALL: error: kv-raise-attention: option 'capacity' = 3 is smaller than the 4 tokens an attention of this function reads

#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#pv_o = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
func.func @decode(%q: tensor<1x2x1x4xf32>, %k: tensor<1x2x1x4xf32>, %v: tensor<1x2x1x4xf32>,
                  %past_k: tensor<1x2x3x4xf32>, %past_v: tensor<1x2x3x4xf32>) -> tensor<1x2x1x4xf32> {
  %zero = arith.constant 0.0 : f32
  %k_all = tensor.concat dim(2) %past_k, %k : (tensor<1x2x3x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x4x4xf32>
  %v_all = tensor.concat dim(2) %past_v, %v : (tensor<1x2x3x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x4x4xf32>
  %es = tensor.empty() : tensor<1x2x1x4xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k_all : tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>) outs(%fs : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x4xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x2x1x4xf32>) outs(%es : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %o = linalg.generic {indexing_maps = [#qk_s, #qk_k, #pv_o], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%p, %v_all : tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>) outs(%fs : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x4xf32>
  return %o : tensor<1x2x1x4xf32>
}
