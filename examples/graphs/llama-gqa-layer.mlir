// One decode step of a Llama-style attention block with grouped-query
// attention, as a model graph in func + linalg/tensor/arith/math (the form
// torch-mlir exports, written out by hand): 8 query heads over 2 KV heads of
// dimension 16, hidden size 64, batch 2, 7 cached tokens and 1 new token.
//
// Forms used (what kv-raise-attention recognizes here):
//  - projections: linalg.matmul [B*T, hidden] x [hidden, H*D], then
//    tensor.expand_shape to [B, T, H, D] and linalg.transpose to [B, H, T, D]
//    (kv-mha-to-gqa relies on this form for K and V);
//  - the decode step: tensor.concat of the past K/V arguments [B, Hkv, 7, D]
//    with the new K/V along the tokens;
//  - repeat_kv: expand_shape [B, Hkv, 1, T, D], broadcast (linalg.generic)
//    to [B, Hkv, 4, T, D], collapse_shape to [B, Hq, T, D];
//  - Q·Kᵀ and P·V as 4-D linalg.generic contractions, the scores scaled by
//    1/sqrt(16) after the contraction, an additive causal mask constant,
//    linalg.softmax.
//
//   kvopt-opt examples/graphs/llama-gqa-layer.mlir --kv-raise-attention

#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#pv_p = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#pv_v = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#pv_o = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#id4 = affine_map<(b, h, q, k) -> (b, h, q, k)>
#mask = affine_map<(b, h, q, k) -> (q, k)>
#rep_in = affine_map<(b, g, r, t, d) -> (b, g, 0, t, d)>
#rep_out = affine_map<(b, g, r, t, d) -> (b, g, r, t, d)>

func.func @llama_gqa_layer(%x: tensor<2x1x64xf32>,
                           %past_k: tensor<2x2x7x16xf32>,
                           %past_v: tensor<2x2x7x16xf32>,
                           %wq: tensor<64x128xf32>, %wk: tensor<64x32xf32>,
                           %wv: tensor<64x32xf32>, %wo: tensor<128x64xf32>)
    -> (tensor<2x1x64xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>) {
  %zero = arith.constant 0.0 : f32
  %x2 = tensor.collapse_shape %x [[0, 1], [2]] : tensor<2x1x64xf32> into tensor<2x64xf32>

  // q, k, v projections.
  %eq = tensor.empty() : tensor<2x128xf32>
  %fq = linalg.fill ins(%zero : f32) outs(%eq : tensor<2x128xf32>) -> tensor<2x128xf32>
  %q2 = linalg.matmul ins(%x2, %wq : tensor<2x64xf32>, tensor<64x128xf32>) outs(%fq : tensor<2x128xf32>) -> tensor<2x128xf32>
  %q4 = tensor.expand_shape %q2 [[0, 1], [2, 3]] output_shape [2, 1, 8, 16] : tensor<2x128xf32> into tensor<2x1x8x16xf32>
  %eqt = tensor.empty() : tensor<2x8x1x16xf32>
  %q = linalg.transpose ins(%q4 : tensor<2x1x8x16xf32>) outs(%eqt : tensor<2x8x1x16xf32>) permutation = [0, 2, 1, 3]

  %ek = tensor.empty() : tensor<2x32xf32>
  %fk = linalg.fill ins(%zero : f32) outs(%ek : tensor<2x32xf32>) -> tensor<2x32xf32>
  %k2 = linalg.matmul ins(%x2, %wk : tensor<2x64xf32>, tensor<64x32xf32>) outs(%fk : tensor<2x32xf32>) -> tensor<2x32xf32>
  %k4 = tensor.expand_shape %k2 [[0, 1], [2, 3]] output_shape [2, 1, 2, 16] : tensor<2x32xf32> into tensor<2x1x2x16xf32>
  %ekt = tensor.empty() : tensor<2x2x1x16xf32>
  %k = linalg.transpose ins(%k4 : tensor<2x1x2x16xf32>) outs(%ekt : tensor<2x2x1x16xf32>) permutation = [0, 2, 1, 3]

  %v2 = linalg.matmul ins(%x2, %wv : tensor<2x64xf32>, tensor<64x32xf32>) outs(%fk : tensor<2x32xf32>) -> tensor<2x32xf32>
  %v4 = tensor.expand_shape %v2 [[0, 1], [2, 3]] output_shape [2, 1, 2, 16] : tensor<2x32xf32> into tensor<2x1x2x16xf32>
  %v = linalg.transpose ins(%v4 : tensor<2x1x2x16xf32>) outs(%ekt : tensor<2x2x1x16xf32>) permutation = [0, 2, 1, 3]

  // Decode step: append the new token to the past keys and values.
  %k_all = tensor.concat dim(2) %past_k, %k : (tensor<2x2x7x16xf32>, tensor<2x2x1x16xf32>) -> tensor<2x2x8x16xf32>
  %v_all = tensor.concat dim(2) %past_v, %v : (tensor<2x2x7x16xf32>, tensor<2x2x1x16xf32>) -> tensor<2x2x8x16xf32>

  // repeat_kv: KV head g serves query heads 4g .. 4g+3.
  %erep = tensor.empty() : tensor<2x2x4x8x16xf32>
  %k5 = tensor.expand_shape %k_all [[0], [1, 2], [3], [4]] output_shape [2, 2, 1, 8, 16] : tensor<2x2x8x16xf32> into tensor<2x2x1x8x16xf32>
  %kb = linalg.generic {indexing_maps = [#rep_in, #rep_out], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%k5 : tensor<2x2x1x8x16xf32>) outs(%erep : tensor<2x2x4x8x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<2x2x4x8x16xf32>
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<2x2x4x8x16xf32> into tensor<2x8x8x16xf32>
  %v5 = tensor.expand_shape %v_all [[0], [1, 2], [3], [4]] output_shape [2, 2, 1, 8, 16] : tensor<2x2x8x16xf32> into tensor<2x2x1x8x16xf32>
  %vb = linalg.generic {indexing_maps = [#rep_in, #rep_out], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%v5 : tensor<2x2x1x8x16xf32>) outs(%erep : tensor<2x2x4x8x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<2x2x4x8x16xf32>
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<2x2x4x8x16xf32> into tensor<2x8x8x16xf32>

  // Scores: q . k over the head dim, scaled by 1/sqrt(16), causal mask.
  %es = tensor.empty() : tensor<2x8x1x8xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kr : tensor<2x8x1x16xf32>, tensor<2x8x8x16xf32>) outs(%fs : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x1x8xf32>
  %causal = arith.constant dense<0.0> : tensor<1x8xf32>
  %ss = linalg.generic {indexing_maps = [#id4, #mask, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s, %causal : tensor<2x8x1x8xf32>, tensor<1x8xf32>) outs(%es : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %mk: f32, %out: f32):
    %c = arith.constant 0.25 : f32
    %t = arith.mulf %a, %c : f32
    %u = arith.addf %t, %mk : f32
    linalg.yield %u : f32
  } -> tensor<2x8x1x8xf32>
  %p = linalg.softmax dimension(3) ins(%ss : tensor<2x8x1x8xf32>) outs(%es : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>

  // Weighted values.
  %eo = tensor.empty() : tensor<2x8x1x16xf32>
  %fo = linalg.fill ins(%zero : f32) outs(%eo : tensor<2x8x1x16xf32>) -> tensor<2x8x1x16xf32>
  %o = linalg.generic {indexing_maps = [#pv_p, #pv_v, #pv_o], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%p, %vr : tensor<2x8x1x8xf32>, tensor<2x8x8x16xf32>) outs(%fo : tensor<2x8x1x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x1x16xf32>

  // Output projection.
  %eot = tensor.empty() : tensor<2x1x8x16xf32>
  %ot = linalg.transpose ins(%o : tensor<2x8x1x16xf32>) outs(%eot : tensor<2x1x8x16xf32>) permutation = [0, 2, 1, 3]
  %o2 = tensor.collapse_shape %ot [[0, 1], [2, 3]] : tensor<2x1x8x16xf32> into tensor<2x128xf32>
  %ey = tensor.empty() : tensor<2x64xf32>
  %fy = linalg.fill ins(%zero : f32) outs(%ey : tensor<2x64xf32>) -> tensor<2x64xf32>
  %y2 = linalg.matmul ins(%o2, %wo : tensor<2x128xf32>, tensor<128x64xf32>) outs(%fy : tensor<2x64xf32>) -> tensor<2x64xf32>
  %y = tensor.expand_shape %y2 [[0, 1], [2]] output_shape [2, 1, 64] : tensor<2x64xf32> into tensor<2x1x64xf32>
  return %y, %k_all, %v_all : tensor<2x1x64xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>
}
