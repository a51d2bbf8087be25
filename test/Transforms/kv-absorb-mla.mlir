// RUN: kvopt-opt %s -split-input-file -kv-absorb-mla=emit-remarks -verify-diagnostics --mlir-print-local-scope | FileCheck %s
// Naive MLA attention as kv-raise-attention leaves it (keys and values
// up-projected per head from a kv.view of a latent cache, the RoPE key
// shared by all heads) becomes kv.mla_attention on the absorbed query.
// Latent 8 + RoPE 4, 2 heads, no-RoPE dim 4, value dim 4, 4 tokens.

!lc = !kv.latent_cache<latent_dim = 8, rope_dim = 4, capacity = 4, element = f32>
#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#id4 = affine_map<(b, h, q, k) -> (b, h, q, k)>
#mask = affine_map<(b, h, q, k) -> (q, k)>

// The absorbed query q_nope · W_ukᵀ and the W_uv output projection are per-head linalg.generic contractions around kv.mla_attention (the all-zero decode mask needs no flag).
// CHECK-LABEL: func @absorb
// CHECK-SAME: (%[[Q:[a-z0-9_]+]]: tensor<1x2x1x8xf32>, %[[C:[a-z0-9_]+]]: !kv.latent_cache<{{[^>]*}}> {kv.layer = 0 : i64}, %[[WUK:[a-z0-9_]+]]: tensor<8x8xf32>, %[[WUV:[a-z0-9_]+]]: tensor<8x8xf32>
// CHECK-DAG: %[[QN:.*]] = tensor.extract_slice %[[Q]][0, 0, 0, 0] [1, 2, 1, 4] [1, 1, 1, 1]
// CHECK-DAG: %[[QR:.*]] = tensor.extract_slice %[[Q]][0, 0, 0, 4] [1, 2, 1, 4] [1, 1, 1, 1]
// CHECK-DAG: %[[UK:.*]] = tensor.expand_shape %[[WUK]] {{\[}}[0], [1, 2]] output_shape [8, 2, 4]
// CHECK: %[[QL:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d4)>, affine_map<(d0, d1, d2, d3, d4) -> (d3, d1, d4)>, affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>]
// CHECK-SAME: ins(%[[QN]], %[[UK]] : tensor<1x2x1x4xf32>, tensor<8x2x4xf32>)
// CHECK: %[[LENS:.*]] = arith.constant dense<4> : tensor<1xi32>
// CHECK: %[[OL:.*]] = kv.mla_attention %[[QL]], %[[QR]], %[[C]], %[[LENS]] {scale = 1.000000e+00 : f32} : (tensor<1x2x1x8xf32>, tensor<1x2x1x4xf32>, {{.*}}) -> tensor<1x2x1x8xf32>
// CHECK: %[[UV:.*]] = tensor.expand_shape %[[WUV]] {{\[}}[0], [1, 2]] output_shape [8, 2, 4]
// CHECK: %[[O:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d4)>, affine_map<(d0, d1, d2, d3, d4) -> (d4, d1, d3)>, affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>]
// CHECK-SAME: ins(%[[OL]], %[[UV]] : tensor<1x2x1x8xf32>, tensor<8x2x4xf32>)
// CHECK-NOT: linalg.softmax
// CHECK-NOT: kv.view
// CHECK: return %[[O]]
func.func @absorb(%q: tensor<1x2x1x8xf32>, %cache: !lc {kv.layer = 0 : i64},
    %w_uk: tensor<8x8xf32>, %w_uv: tensor<8x8xf32>, %w_kr: tensor<4x8xf32>) -> tensor<1x2x1x4xf32> {
  %zero = arith.constant 0.0 : f32
  %rows = kv.view %cache : !lc -> tensor<1x4x12xf32>
  %c = tensor.extract_slice %rows[0, 0, 0] [1, 4, 8] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x8xf32>
  %cv = tensor.extract_slice %rows[0, 0, 0] [1, 4, 8] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x8xf32>
  %kr = tensor.extract_slice %rows[0, 0, 8] [1, 4, 4] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x4xf32>
  %cc = tensor.collapse_shape %c [[0, 1], [2]] : tensor<1x4x8xf32> into tensor<4x8xf32>
  %cvc = tensor.collapse_shape %cv [[0, 1], [2]] : tensor<1x4x8xf32> into tensor<4x8xf32>
  %ke = tensor.empty() : tensor<4x8xf32>
  %kf = linalg.fill ins(%zero : f32) outs(%ke : tensor<4x8xf32>) -> tensor<4x8xf32>
  %kn2 = linalg.matmul ins(%cc, %w_uk : tensor<4x8xf32>, tensor<8x8xf32>) outs(%kf : tensor<4x8xf32>) -> tensor<4x8xf32>
  %kn4 = tensor.expand_shape %kn2 [[0, 1], [2, 3]] output_shape [1, 4, 2, 4] : tensor<4x8xf32> into tensor<1x4x2x4xf32>
  %knte = tensor.empty() : tensor<1x2x4x4xf32>
  %k_nope = linalg.transpose ins(%kn4 : tensor<1x4x2x4xf32>) outs(%knte : tensor<1x2x4x4xf32>) permutation = [0, 2, 1, 3]
  %v2 = linalg.matmul ins(%cvc, %w_uv : tensor<4x8xf32>, tensor<8x8xf32>) outs(%kf : tensor<4x8xf32>) -> tensor<4x8xf32>
  %v4 = tensor.expand_shape %v2 [[0, 1], [2, 3]] output_shape [1, 4, 2, 4] : tensor<4x8xf32> into tensor<1x4x2x4xf32>
  %v = linalg.transpose ins(%v4 : tensor<1x4x2x4xf32>) outs(%knte : tensor<1x2x4x4xf32>) permutation = [0, 2, 1, 3]
  %krbe = tensor.empty() : tensor<1x2x4x4xf32>
  %k_rope = linalg.broadcast ins(%kr : tensor<1x4x4xf32>) outs(%krbe : tensor<1x2x4x4xf32>) dimensions = [1]
  %k = tensor.concat dim(3) %k_nope, %k_rope : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x8xf32>
  %se = tensor.empty() : tensor<1x2x1x4xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<1x2x1x8xf32>, tensor<1x2x4x8xf32>) outs(%sf : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x4xf32>
  %mk = arith.constant dense<[[0.0, 0.0, 0.0, 0.0]]> : tensor<1x4xf32>
  %sm = linalg.generic {indexing_maps = [#id4, #mask, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s, %mk : tensor<1x2x1x4xf32>, tensor<1x4xf32>) outs(%se : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %u = arith.addf %a, %b : f32
    linalg.yield %u : f32
  } -> tensor<1x2x1x4xf32>
  %p = linalg.softmax dimension(3) ins(%sm : tensor<1x2x1x4xf32>) outs(%se : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %oe = tensor.empty() : tensor<1x2x1x4xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %o = linalg.generic {indexing_maps = [#qk_s, #qk_k, #qk_q], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%p, %v : tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>) outs(%of : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x4xf32>
  return %o : tensor<1x2x1x4xf32>
}

// -----

!lc = !kv.latent_cache<latent_dim = 8, rope_dim = 4, capacity = 4, element = f32>
#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#id4 = affine_map<(b, h, q, k) -> (b, h, q, k)>
#mask = affine_map<(b, h, q, k) -> (q, k)>

// A sliding-window mask cannot be expressed by kv.mla_attention: left alone.
func.func @windowed(%q: tensor<1x2x1x8xf32>, %cache: !lc {kv.layer = 0 : i64},
    %w_uk: tensor<8x8xf32>, %w_uv: tensor<8x8xf32>, %w_kr: tensor<4x8xf32>) -> tensor<1x2x1x4xf32> {
  %zero = arith.constant 0.0 : f32
  %rows = kv.view %cache : !lc -> tensor<1x4x12xf32>
  %c = tensor.extract_slice %rows[0, 0, 0] [1, 4, 8] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x8xf32>
  %cv = tensor.extract_slice %rows[0, 0, 0] [1, 4, 8] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x8xf32>
  %kr = tensor.extract_slice %rows[0, 0, 8] [1, 4, 4] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x4xf32>
  %cc = tensor.collapse_shape %c [[0, 1], [2]] : tensor<1x4x8xf32> into tensor<4x8xf32>
  %cvc = tensor.collapse_shape %cv [[0, 1], [2]] : tensor<1x4x8xf32> into tensor<4x8xf32>
  %ke = tensor.empty() : tensor<4x8xf32>
  %kf = linalg.fill ins(%zero : f32) outs(%ke : tensor<4x8xf32>) -> tensor<4x8xf32>
  %kn2 = linalg.matmul ins(%cc, %w_uk : tensor<4x8xf32>, tensor<8x8xf32>) outs(%kf : tensor<4x8xf32>) -> tensor<4x8xf32>
  %kn4 = tensor.expand_shape %kn2 [[0, 1], [2, 3]] output_shape [1, 4, 2, 4] : tensor<4x8xf32> into tensor<1x4x2x4xf32>
  %knte = tensor.empty() : tensor<1x2x4x4xf32>
  %k_nope = linalg.transpose ins(%kn4 : tensor<1x4x2x4xf32>) outs(%knte : tensor<1x2x4x4xf32>) permutation = [0, 2, 1, 3]
  %v2 = linalg.matmul ins(%cvc, %w_uv : tensor<4x8xf32>, tensor<8x8xf32>) outs(%kf : tensor<4x8xf32>) -> tensor<4x8xf32>
  %v4 = tensor.expand_shape %v2 [[0, 1], [2, 3]] output_shape [1, 4, 2, 4] : tensor<4x8xf32> into tensor<1x4x2x4xf32>
  %v = linalg.transpose ins(%v4 : tensor<1x4x2x4xf32>) outs(%knte : tensor<1x2x4x4xf32>) permutation = [0, 2, 1, 3]
  %krbe = tensor.empty() : tensor<1x2x4x4xf32>
  %k_rope = linalg.broadcast ins(%kr : tensor<1x4x4xf32>) outs(%krbe : tensor<1x2x4x4xf32>) dimensions = [1]
  %k = tensor.concat dim(3) %k_nope, %k_rope : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x8xf32>
  %se = tensor.empty() : tensor<1x2x1x4xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<1x2x1x8xf32>, tensor<1x2x4x8xf32>) outs(%sf : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x4xf32>
  %mk = arith.constant dense<[[0xFF800000, 0.0, 0.0, 0.0]]> : tensor<1x4xf32>
  %sm = linalg.generic {indexing_maps = [#id4, #mask, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s, %mk : tensor<1x2x1x4xf32>, tensor<1x4xf32>) outs(%se : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %u = arith.addf %a, %b : f32
    linalg.yield %u : f32
  } -> tensor<1x2x1x4xf32>
  %p = linalg.softmax dimension(3) ins(%sm : tensor<1x2x1x4xf32>) outs(%se : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %oe = tensor.empty() : tensor<1x2x1x4xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  // expected-remark @+1 {{kv-absorb-mla: not absorbed: kv.mla_attention has no sliding window}}
  %o = linalg.generic {indexing_maps = [#qk_s, #qk_k, #qk_q], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%p, %v : tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>) outs(%of : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x4xf32>
  return %o : tensor<1x2x1x4xf32>
}

// -----

!lc = !kv.latent_cache<latent_dim = 8, rope_dim = 4, capacity = 4, element = f32>
#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#id4 = affine_map<(b, h, q, k) -> (b, h, q, k)>
#mask = affine_map<(b, h, q, k) -> (q, k)>

// RoPE keys projected per head are not the shared decoupled key of MLA: left alone.
func.func @rope_per_head(%q: tensor<1x2x1x8xf32>, %cache: !lc {kv.layer = 0 : i64},
    %w_uk: tensor<8x8xf32>, %w_uv: tensor<8x8xf32>, %w_kr: tensor<4x8xf32>) -> tensor<1x2x1x4xf32> {
  %zero = arith.constant 0.0 : f32
  %rows = kv.view %cache : !lc -> tensor<1x4x12xf32>
  %c = tensor.extract_slice %rows[0, 0, 0] [1, 4, 8] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x8xf32>
  %cv = tensor.extract_slice %rows[0, 0, 0] [1, 4, 8] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x8xf32>
  %kr = tensor.extract_slice %rows[0, 0, 8] [1, 4, 4] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x4xf32>
  %cc = tensor.collapse_shape %c [[0, 1], [2]] : tensor<1x4x8xf32> into tensor<4x8xf32>
  %cvc = tensor.collapse_shape %cv [[0, 1], [2]] : tensor<1x4x8xf32> into tensor<4x8xf32>
  %ke = tensor.empty() : tensor<4x8xf32>
  %kf = linalg.fill ins(%zero : f32) outs(%ke : tensor<4x8xf32>) -> tensor<4x8xf32>
  %kn2 = linalg.matmul ins(%cc, %w_uk : tensor<4x8xf32>, tensor<8x8xf32>) outs(%kf : tensor<4x8xf32>) -> tensor<4x8xf32>
  %kn4 = tensor.expand_shape %kn2 [[0, 1], [2, 3]] output_shape [1, 4, 2, 4] : tensor<4x8xf32> into tensor<1x4x2x4xf32>
  %knte = tensor.empty() : tensor<1x2x4x4xf32>
  %k_nope = linalg.transpose ins(%kn4 : tensor<1x4x2x4xf32>) outs(%knte : tensor<1x2x4x4xf32>) permutation = [0, 2, 1, 3]
  %v2 = linalg.matmul ins(%cvc, %w_uv : tensor<4x8xf32>, tensor<8x8xf32>) outs(%kf : tensor<4x8xf32>) -> tensor<4x8xf32>
  %v4 = tensor.expand_shape %v2 [[0, 1], [2, 3]] output_shape [1, 4, 2, 4] : tensor<4x8xf32> into tensor<1x4x2x4xf32>
  %v = linalg.transpose ins(%v4 : tensor<1x4x2x4xf32>) outs(%knte : tensor<1x2x4x4xf32>) permutation = [0, 2, 1, 3]
  %krc = tensor.collapse_shape %kr [[0, 1], [2]] : tensor<1x4x4xf32> into tensor<4x4xf32>
  %kre = tensor.empty() : tensor<4x8xf32>
  %krf = linalg.fill ins(%zero : f32) outs(%kre : tensor<4x8xf32>) -> tensor<4x8xf32>
  %kr2 = linalg.matmul ins(%krc, %w_kr : tensor<4x4xf32>, tensor<4x8xf32>) outs(%krf : tensor<4x8xf32>) -> tensor<4x8xf32>
  %kr4 = tensor.expand_shape %kr2 [[0, 1], [2, 3]] output_shape [1, 4, 2, 4] : tensor<4x8xf32> into tensor<1x4x2x4xf32>
  %krte = tensor.empty() : tensor<1x2x4x4xf32>
  %k_rope = linalg.transpose ins(%kr4 : tensor<1x4x2x4xf32>) outs(%krte : tensor<1x2x4x4xf32>) permutation = [0, 2, 1, 3]
  %k = tensor.concat dim(3) %k_nope, %k_rope : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x8xf32>
  %se = tensor.empty() : tensor<1x2x1x4xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<1x2x1x8xf32>, tensor<1x2x4x8xf32>) outs(%sf : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x4xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x2x1x4xf32>) outs(%se : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %oe = tensor.empty() : tensor<1x2x1x4xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  // expected-remark @+1 {{kv-absorb-mla: not absorbed: the RoPE keys are not one latent-cache slice shared by all heads}}
  %o = linalg.generic {indexing_maps = [#qk_s, #qk_k, #qk_q], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%p, %v : tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>) outs(%of : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x4xf32>
  return %o : tensor<1x2x1x4xf32>
}

// -----

!lc = !kv.latent_cache<latent_dim = 8, rope_dim = 4, capacity = 4, element = f32>
#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#id4 = affine_map<(b, h, q, k) -> (b, h, q, k)>
#mask = affine_map<(b, h, q, k) -> (q, k)>

// Values up-projected from columns that are not the latent part (offset 4): left alone.
func.func @values_elsewhere(%q: tensor<1x2x1x8xf32>, %cache: !lc {kv.layer = 0 : i64},
    %w_uk: tensor<8x8xf32>, %w_uv: tensor<8x8xf32>, %w_kr: tensor<4x8xf32>) -> tensor<1x2x1x4xf32> {
  %zero = arith.constant 0.0 : f32
  %rows = kv.view %cache : !lc -> tensor<1x4x12xf32>
  %c = tensor.extract_slice %rows[0, 0, 0] [1, 4, 8] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x8xf32>
  %cv = tensor.extract_slice %rows[0, 0, 4] [1, 4, 8] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x8xf32>
  %kr = tensor.extract_slice %rows[0, 0, 8] [1, 4, 4] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x4xf32>
  %cc = tensor.collapse_shape %c [[0, 1], [2]] : tensor<1x4x8xf32> into tensor<4x8xf32>
  %cvc = tensor.collapse_shape %cv [[0, 1], [2]] : tensor<1x4x8xf32> into tensor<4x8xf32>
  %ke = tensor.empty() : tensor<4x8xf32>
  %kf = linalg.fill ins(%zero : f32) outs(%ke : tensor<4x8xf32>) -> tensor<4x8xf32>
  %kn2 = linalg.matmul ins(%cc, %w_uk : tensor<4x8xf32>, tensor<8x8xf32>) outs(%kf : tensor<4x8xf32>) -> tensor<4x8xf32>
  %kn4 = tensor.expand_shape %kn2 [[0, 1], [2, 3]] output_shape [1, 4, 2, 4] : tensor<4x8xf32> into tensor<1x4x2x4xf32>
  %knte = tensor.empty() : tensor<1x2x4x4xf32>
  %k_nope = linalg.transpose ins(%kn4 : tensor<1x4x2x4xf32>) outs(%knte : tensor<1x2x4x4xf32>) permutation = [0, 2, 1, 3]
  %v2 = linalg.matmul ins(%cvc, %w_uv : tensor<4x8xf32>, tensor<8x8xf32>) outs(%kf : tensor<4x8xf32>) -> tensor<4x8xf32>
  %v4 = tensor.expand_shape %v2 [[0, 1], [2, 3]] output_shape [1, 4, 2, 4] : tensor<4x8xf32> into tensor<1x4x2x4xf32>
  %v = linalg.transpose ins(%v4 : tensor<1x4x2x4xf32>) outs(%knte : tensor<1x2x4x4xf32>) permutation = [0, 2, 1, 3]
  %krbe = tensor.empty() : tensor<1x2x4x4xf32>
  %k_rope = linalg.broadcast ins(%kr : tensor<1x4x4xf32>) outs(%krbe : tensor<1x2x4x4xf32>) dimensions = [1]
  %k = tensor.concat dim(3) %k_nope, %k_rope : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x8xf32>
  %se = tensor.empty() : tensor<1x2x1x4xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<1x2x1x8xf32>, tensor<1x2x4x8xf32>) outs(%sf : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x4xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x2x1x4xf32>) outs(%se : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %oe = tensor.empty() : tensor<1x2x1x4xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  // expected-remark @+1 {{kv-absorb-mla: not absorbed: keys and values are not up-projected from the latent part of one latent cache view}}
  %o = linalg.generic {indexing_maps = [#qk_s, #qk_k, #qk_q], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%p, %v : tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>) outs(%of : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x4xf32>
  return %o : tensor<1x2x1x4xf32>
}

