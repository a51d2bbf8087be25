// One decode step of a DeepSeek-V2/V3-style multi-head latent attention
// (MLA) block as a model graph: 4 heads, latent 32 + decoupled RoPE key 8,
// no-RoPE query/key dim 16, value dim 16, hidden 64, batch 2, 7 cached
// tokens + 1 new. RoPE itself is left out (the rope part is projected but
// not rotated), which does not change the structure.
//
// The cached row is [c_KV ; k_rope] = [x · W_dkv ; x · W_kr]; the past rows
// are a function argument and the present rows are returned. Keys and
// values are up-projected per head from the latent (W_uk, W_uv), the RoPE
// key is shared by all heads, q = [q_nope ; q_rope] comes from one
// projection. Up-projections: linalg.matmul(collapse(c) [B*T, L],
// W [L, H*d]), expand_shape to [B, T, H, d], linalg.transpose to
// [B, H, T, d].
//
//   kvopt-opt examples/graphs/deepseek-mla-layer.mlir --kv-raise-attention
//   kvopt-opt examples/graphs/deepseek-mla-layer.mlir --kv-raise-attention --kv-absorb-mla

#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#id4 = affine_map<(b, h, q, k) -> (b, h, q, k)>

func.func @deepseek_mla_layer(%x: tensor<2x1x64xf32>, %past_latent: tensor<2x7x40xf32>,
                              %wq: tensor<64x96xf32>, %w_dkv: tensor<64x32xf32>,
                              %w_kr: tensor<64x8xf32>, %w_uk: tensor<32x64xf32>,
                              %w_uv: tensor<32x64xf32>, %wo: tensor<64x64xf32>)
    -> (tensor<2x1x64xf32>, tensor<2x8x40xf32>) {
  %zero = arith.constant 0.0 : f32
  %x2 = tensor.collapse_shape %x [[0, 1], [2]] : tensor<2x1x64xf32> into tensor<2x64xf32>

  // Query [B, H, T, nope + rope].
  %qe = tensor.empty() : tensor<2x96xf32>
  %qf = linalg.fill ins(%zero : f32) outs(%qe : tensor<2x96xf32>) -> tensor<2x96xf32>
  %q2 = linalg.matmul ins(%x2, %wq : tensor<2x64xf32>, tensor<64x96xf32>) outs(%qf : tensor<2x96xf32>) -> tensor<2x96xf32>
  %q4 = tensor.expand_shape %q2 [[0, 1], [2, 3]] output_shape [2, 1, 4, 24] : tensor<2x96xf32> into tensor<2x1x4x24xf32>
  %qte = tensor.empty() : tensor<2x4x1x24xf32>
  %q = linalg.transpose ins(%q4 : tensor<2x1x4x24xf32>) outs(%qte : tensor<2x4x1x24xf32>) permutation = [0, 2, 1, 3]

  // The cached row of the new token: [x · W_dkv ; x · W_kr].
  %ce = tensor.empty() : tensor<2x32xf32>
  %cf = linalg.fill ins(%zero : f32) outs(%ce : tensor<2x32xf32>) -> tensor<2x32xf32>
  %c2 = linalg.matmul ins(%x2, %w_dkv : tensor<2x64xf32>, tensor<64x32xf32>) outs(%cf : tensor<2x32xf32>) -> tensor<2x32xf32>
  %c3 = tensor.expand_shape %c2 [[0, 1], [2]] output_shape [2, 1, 32] : tensor<2x32xf32> into tensor<2x1x32xf32>
  %re = tensor.empty() : tensor<2x8xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<2x8xf32>) -> tensor<2x8xf32>
  %r2 = linalg.matmul ins(%x2, %w_kr : tensor<2x64xf32>, tensor<64x8xf32>) outs(%rf : tensor<2x8xf32>) -> tensor<2x8xf32>
  %r3 = tensor.expand_shape %r2 [[0, 1], [2]] output_shape [2, 1, 8] : tensor<2x8xf32> into tensor<2x1x8xf32>
  %row = tensor.concat dim(2) %c3, %r3 : (tensor<2x1x32xf32>, tensor<2x1x8xf32>) -> tensor<2x1x40xf32>

  // Decode step on the latent rows.
  %rows = tensor.concat dim(1) %past_latent, %row : (tensor<2x7x40xf32>, tensor<2x1x40xf32>) -> tensor<2x8x40xf32>
  %c = tensor.extract_slice %rows[0, 0, 0] [2, 8, 32] [1, 1, 1] : tensor<2x8x40xf32> to tensor<2x8x32xf32>
  %kr = tensor.extract_slice %rows[0, 0, 32] [2, 8, 8] [1, 1, 1] : tensor<2x8x40xf32> to tensor<2x8x8xf32>
  %cc = tensor.collapse_shape %c [[0, 1], [2]] : tensor<2x8x32xf32> into tensor<16x32xf32>

  // Per-head up-projections of the latent to keys (no-RoPE part) and values.
  %ke = tensor.empty() : tensor<16x64xf32>
  %kf = linalg.fill ins(%zero : f32) outs(%ke : tensor<16x64xf32>) -> tensor<16x64xf32>
  %kn2 = linalg.matmul ins(%cc, %w_uk : tensor<16x32xf32>, tensor<32x64xf32>) outs(%kf : tensor<16x64xf32>) -> tensor<16x64xf32>
  %kn4 = tensor.expand_shape %kn2 [[0, 1], [2, 3]] output_shape [2, 8, 4, 16] : tensor<16x64xf32> into tensor<2x8x4x16xf32>
  %knte = tensor.empty() : tensor<2x4x8x16xf32>
  %k_nope = linalg.transpose ins(%kn4 : tensor<2x8x4x16xf32>) outs(%knte : tensor<2x4x8x16xf32>) permutation = [0, 2, 1, 3]
  %ve = tensor.empty() : tensor<16x64xf32>
  %vf = linalg.fill ins(%zero : f32) outs(%ve : tensor<16x64xf32>) -> tensor<16x64xf32>
  %v2 = linalg.matmul ins(%cc, %w_uv : tensor<16x32xf32>, tensor<32x64xf32>) outs(%vf : tensor<16x64xf32>) -> tensor<16x64xf32>
  %v4 = tensor.expand_shape %v2 [[0, 1], [2, 3]] output_shape [2, 8, 4, 16] : tensor<16x64xf32> into tensor<2x8x4x16xf32>
  %vte = tensor.empty() : tensor<2x4x8x16xf32>
  %v = linalg.transpose ins(%v4 : tensor<2x8x4x16xf32>) outs(%vte : tensor<2x4x8x16xf32>) permutation = [0, 2, 1, 3]

  // k = [k_nope ; k_rope broadcast over heads].
  %krbe = tensor.empty() : tensor<2x4x8x8xf32>
  %k_rope = linalg.broadcast ins(%kr : tensor<2x8x8xf32>) outs(%krbe : tensor<2x4x8x8xf32>) dimensions = [1]
  %k = tensor.concat dim(3) %k_nope, %k_rope : (tensor<2x4x8x16xf32>, tensor<2x4x8x8xf32>) -> tensor<2x4x8x24xf32>

  // Attention, scale 1/sqrt(24).
  %se = tensor.empty() : tensor<2x4x1x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<2x4x1x8xf32>) -> tensor<2x4x1x8xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<2x4x1x24xf32>, tensor<2x4x8x24xf32>) outs(%sf : tensor<2x4x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x4x1x8xf32>
  %ss = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<2x4x1x8xf32>) outs(%se : tensor<2x4x1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %sc = arith.constant 0.204124145 : f32
    %t = arith.mulf %a, %sc : f32
    linalg.yield %t : f32
  } -> tensor<2x4x1x8xf32>
  %p = linalg.softmax dimension(3) ins(%ss : tensor<2x4x1x8xf32>) outs(%se : tensor<2x4x1x8xf32>) -> tensor<2x4x1x8xf32>
  %oe = tensor.empty() : tensor<2x4x1x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x4x1x16xf32>) -> tensor<2x4x1x16xf32>
  %o = linalg.generic {indexing_maps = [#qk_s, #qk_k, #qk_q], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%p, %v : tensor<2x4x1x8xf32>, tensor<2x4x8x16xf32>) outs(%of : tensor<2x4x1x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x4x1x16xf32>

  // Output projection.
  %ote = tensor.empty() : tensor<2x1x4x16xf32>
  %ot = linalg.transpose ins(%o : tensor<2x4x1x16xf32>) outs(%ote : tensor<2x1x4x16xf32>) permutation = [0, 2, 1, 3]
  %o2 = tensor.collapse_shape %ot [[0, 1], [2, 3]] : tensor<2x1x4x16xf32> into tensor<2x64xf32>
  %ye = tensor.empty() : tensor<2x64xf32>
  %yf = linalg.fill ins(%zero : f32) outs(%ye : tensor<2x64xf32>) -> tensor<2x64xf32>
  %y2 = linalg.matmul ins(%o2, %wo : tensor<2x64xf32>, tensor<64x64xf32>) outs(%yf : tensor<2x64xf32>) -> tensor<2x64xf32>
  %y = tensor.expand_shape %y2 [[0, 1], [2]] output_shape [2, 1, 64] : tensor<2x64xf32> into tensor<2x1x64xf32>
  return %y, %rows : tensor<2x1x64xf32>, tensor<2x8x40xf32>
}
