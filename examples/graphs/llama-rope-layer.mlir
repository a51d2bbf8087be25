// One decode step of a Llama-style attention block with rotary position
// embeddings (RoPE) on the queries and the new keys, as a model graph in
// func + linalg/tensor/arith/math: 8 query heads over 2 KV heads of
// dimension 16, hidden size 64, batch 2, 7 cached tokens and 1 new token at
// position 7, theta 10000, f32.
//
// Forms used:
//  - projections as in llama-gqa-layer.mlir (linalg.matmul, expand_shape to
//    [B, T, H, D], linalg.transpose to [B, H, T, D]); RoPE is applied after
//    the transpose, on [B, H, T, D], so the chain kv-mha-to-gqa follows stays
//    intact;
//  - RoPE as Hugging Face's apply_rotary_pos_emb exports it:
//    x * cos + rotate_half(x) * sin, rotate_half(x) = concat(-x[..., 8:],
//    x[..., :8]) with tensor.extract_slice, negation and tensor.concat;
//    cos/sin are constant [T, D] tables for position 7. The query rotation
//    negates with linalg.negf and combines in one linalg.generic reading the
//    tables through (t, d) maps; the key rotation negates in a generic and
//    combines with linalg.broadcast'ed tables, linalg.mul and linalg.add;
//  - decode-step concatenation of the past K/V arguments, repeat_kv,
//    Q·Kᵀ / P·V as 4-D generics, scale 1/4, softmax written out
//    (max and sum as linalg.reduce).
//
//   kvopt-opt examples/graphs/llama-rope-layer.mlir --kv-raise-attention --kv-raise-rope
//   kvopt-opt examples/graphs/llama-rope-layer.mlir --kv-optimize="page-size=0 report=false"

#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#pv_p = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#pv_v = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#pv_o = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#id4 = affine_map<(b, h, t, d) -> (b, h, t, d)>
#row4 = affine_map<(b, h, t, d) -> (b, h, t)>
#table = affine_map<(b, h, t, d) -> (t, d)>
#rep_in = affine_map<(b, g, r, t, d) -> (b, g, 0, t, d)>
#rep_out = affine_map<(b, g, r, t, d) -> (b, g, r, t, d)>

func.func @llama_rope_layer(%x: tensor<2x1x64xf32>,
                            %past_k: tensor<2x2x7x16xf32>,
                            %past_v: tensor<2x2x7x16xf32>,
                            %wq: tensor<64x128xf32>, %wk: tensor<64x32xf32>,
                            %wv: tensor<64x32xf32>, %wo: tensor<128x64xf32>)
    -> (tensor<2x1x64xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>) {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %x2 = tensor.collapse_shape %x [[0, 1], [2]] : tensor<2x1x64xf32> into tensor<2x64xf32>

  // cos/sin of 7 * 10000^(-2i/16), i = d mod 8, for the new token.
  %cos = arith.constant dense<[[7.53902256e-01, -5.99437416e-01, 7.64842212e-01, 9.75599885e-01, 9.97551024e-01, 9.99755025e-01, 9.99975502e-01, 9.99997556e-01, 7.53902256e-01, -5.99437416e-01, 7.64842212e-01, 9.75599885e-01, 9.97551024e-01, 9.99755025e-01, 9.99975502e-01, 9.99997556e-01]]> : tensor<1x16xf32>
  %sin = arith.constant dense<[[6.56986594e-01, 8.00421655e-01, 6.44217670e-01, 2.19556093e-01, 6.99428469e-02, 2.21341364e-02, 6.99994294e-03, 2.21359264e-03, 6.56986594e-01, 8.00421655e-01, 6.44217670e-01, 2.19556093e-01, 6.99428469e-02, 2.21341364e-02, 6.99994294e-03, 2.21359264e-03]]> : tensor<1x16xf32>

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

  // RoPE on q: q * cos + rotate_half(q) * sin.
  %q_lo = tensor.extract_slice %q[0, 0, 0, 0] [2, 8, 1, 8] [1, 1, 1, 1] : tensor<2x8x1x16xf32> to tensor<2x8x1x8xf32>
  %q_hi = tensor.extract_slice %q[0, 0, 0, 8] [2, 8, 1, 8] [1, 1, 1, 1] : tensor<2x8x1x16xf32> to tensor<2x8x1x8xf32>
  %eqh = tensor.empty() : tensor<2x8x1x8xf32>
  %q_neg = linalg.negf ins(%q_hi : tensor<2x8x1x8xf32>) outs(%eqh : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>
  %q_rot = tensor.concat dim(3) %q_neg, %q_lo : (tensor<2x8x1x8xf32>, tensor<2x8x1x8xf32>) -> tensor<2x8x1x16xf32>
  %q_rope = linalg.generic {indexing_maps = [#id4, #id4, #table, #table, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%q, %q_rot, %cos, %sin : tensor<2x8x1x16xf32>, tensor<2x8x1x16xf32>, tensor<1x16xf32>, tensor<1x16xf32>) outs(%eqt : tensor<2x8x1x16xf32>) {
  ^bb0(%a: f32, %r: f32, %c: f32, %s: f32, %out: f32):
    %ac = arith.mulf %a, %c : f32
    %rs = arith.mulf %r, %s : f32
    %sum = arith.addf %ac, %rs : f32
    linalg.yield %sum : f32
  } -> tensor<2x8x1x16xf32>

  // RoPE on the new k: the same rotation with broadcast tables and named ops.
  %k_lo = tensor.extract_slice %k[0, 0, 0, 0] [2, 2, 1, 8] [1, 1, 1, 1] : tensor<2x2x1x16xf32> to tensor<2x2x1x8xf32>
  %k_hi = tensor.extract_slice %k[0, 0, 0, 8] [2, 2, 1, 8] [1, 1, 1, 1] : tensor<2x2x1x16xf32> to tensor<2x2x1x8xf32>
  %ekh = tensor.empty() : tensor<2x2x1x8xf32>
  %k_neg = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%k_hi : tensor<2x2x1x8xf32>) outs(%ekh : tensor<2x2x1x8xf32>) {
  ^bb0(%a: f32, %out: f32):
    %n = arith.negf %a : f32
    linalg.yield %n : f32
  } -> tensor<2x2x1x8xf32>
  %k_rot = tensor.concat dim(3) %k_neg, %k_lo : (tensor<2x2x1x8xf32>, tensor<2x2x1x8xf32>) -> tensor<2x2x1x16xf32>
  %cos_b = linalg.broadcast ins(%cos : tensor<1x16xf32>) outs(%ekt : tensor<2x2x1x16xf32>) dimensions = [0, 1]
  %sin_b = linalg.broadcast ins(%sin : tensor<1x16xf32>) outs(%ekt : tensor<2x2x1x16xf32>) dimensions = [0, 1]
  %k_c = linalg.mul ins(%k, %cos_b : tensor<2x2x1x16xf32>, tensor<2x2x1x16xf32>) outs(%ekt : tensor<2x2x1x16xf32>) -> tensor<2x2x1x16xf32>
  %k_s = linalg.mul ins(%k_rot, %sin_b : tensor<2x2x1x16xf32>, tensor<2x2x1x16xf32>) outs(%ekt : tensor<2x2x1x16xf32>) -> tensor<2x2x1x16xf32>
  %k_rope = linalg.add ins(%k_c, %k_s : tensor<2x2x1x16xf32>, tensor<2x2x1x16xf32>) outs(%ekt : tensor<2x2x1x16xf32>) -> tensor<2x2x1x16xf32>

  // Decode step: append the new token to the past keys and values.
  %k_all = tensor.concat dim(2) %past_k, %k_rope : (tensor<2x2x7x16xf32>, tensor<2x2x1x16xf32>) -> tensor<2x2x8x16xf32>
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

  // Scores: rotated q . rotated k over the head dim, scaled by 1/sqrt(16).
  %es = tensor.empty() : tensor<2x8x1x8xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q_rope, %kr : tensor<2x8x1x16xf32>, tensor<2x8x8x16xf32>) outs(%fs : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x1x8xf32>
  %ss = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<2x8x1x8xf32>) outs(%es : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %out: f32):
    %c = arith.constant 0.25 : f32
    %t = arith.mulf %a, %c : f32
    linalg.yield %t : f32
  } -> tensor<2x8x1x8xf32>

  // Softmax over the keys, written out.
  %er = tensor.empty() : tensor<2x8x1xf32>
  %fmax = linalg.fill ins(%ninf : f32) outs(%er : tensor<2x8x1xf32>) -> tensor<2x8x1xf32>
  %max = linalg.reduce ins(%ss : tensor<2x8x1x8xf32>) outs(%fmax : tensor<2x8x1xf32>) dimensions = [3]
    (%in: f32, %acc: f32) {
      %m = arith.maximumf %in, %acc : f32
      linalg.yield %m : f32
    }
  %e = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%ss, %max : tensor<2x8x1x8xf32>, tensor<2x8x1xf32>) outs(%es : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %m: f32, %out: f32):
    %d = arith.subf %a, %m : f32
    %x_ = math.exp %d : f32
    linalg.yield %x_ : f32
  } -> tensor<2x8x1x8xf32>
  %fsum = linalg.fill ins(%zero : f32) outs(%er : tensor<2x8x1xf32>) -> tensor<2x8x1xf32>
  %sum = linalg.reduce ins(%e : tensor<2x8x1x8xf32>) outs(%fsum : tensor<2x8x1xf32>) dimensions = [3]
    (%in: f32, %acc: f32) {
      %a = arith.addf %in, %acc : f32
      linalg.yield %a : f32
    }
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%e, %sum : tensor<2x8x1x8xf32>, tensor<2x8x1xf32>) outs(%es : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %z: f32, %out: f32):
    %d = arith.divf %a, %z : f32
    linalg.yield %d : f32
  } -> tensor<2x8x1x8xf32>

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
