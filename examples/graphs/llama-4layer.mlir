// One decode step of a 4-layer Llama-style model (GQA: 8 query heads over 2
// KV heads of dimension 16, hidden 64, batch 2, 7 cached tokens + 1 new),
// each layer with a residual connection, as a func + linalg/tensor/arith
// graph. Every layer has its own past K/V arguments and returns its present
// K/V; kv-raise-attention makes them caches numbered kv.layer 0..3, the
// input of kv-share-layers:
//
//   kvopt-opt examples/graphs/llama-4layer.mlir --kv-raise-attention \
//     --kv-share-layers=group-size=2
//
// Projections: linalg.matmul [B*T, hidden] x [hidden, H*D], expand_shape to
// [B, T, H, D], linalg.transpose to [B, H, T, D] (the form kv-mha-to-gqa
// reads); repeat_kv as expand_shape + broadcast generic + collapse_shape;
// scale 1/sqrt(16) and an additive causal mask after Q·Kᵀ; linalg.softmax.

#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#id4 = affine_map<(b, h, q, k) -> (b, h, q, k)>
#mask = affine_map<(b, h, q, k) -> (q, k)>
#rep_in = affine_map<(b, g, r, t, d) -> (b, g, 0, t, d)>
#rep_out = affine_map<(b, g, r, t, d) -> (b, g, r, t, d)>
#id2 = affine_map<(i, j) -> (i, j)>

func.func @llama_4layer(%x: tensor<2x1x64xf32>,
    %past_k0: tensor<2x2x7x16xf32>,
    %past_v0: tensor<2x2x7x16xf32>,
    %past_k1: tensor<2x2x7x16xf32>,
    %past_v1: tensor<2x2x7x16xf32>,
    %past_k2: tensor<2x2x7x16xf32>,
    %past_v2: tensor<2x2x7x16xf32>,
    %past_k3: tensor<2x2x7x16xf32>,
    %past_v3: tensor<2x2x7x16xf32>,
    %wq0: tensor<64x128xf32>,
    %wk0: tensor<64x32xf32>,
    %wv0: tensor<64x32xf32>,
    %wo0: tensor<128x64xf32>,
    %wq1: tensor<64x128xf32>,
    %wk1: tensor<64x32xf32>,
    %wv1: tensor<64x32xf32>,
    %wo1: tensor<128x64xf32>,
    %wq2: tensor<64x128xf32>,
    %wk2: tensor<64x32xf32>,
    %wv2: tensor<64x32xf32>,
    %wo2: tensor<128x64xf32>,
    %wq3: tensor<64x128xf32>,
    %wk3: tensor<64x32xf32>,
    %wv3: tensor<64x32xf32>,
    %wo3: tensor<128x64xf32>)
    -> (tensor<2x1x64xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>) {
  %zero = arith.constant 0.0 : f32
  %h0 = tensor.collapse_shape %x [[0, 1], [2]] : tensor<2x1x64xf32> into tensor<2x64xf32>
  // Layer 0.
  %q0_e = tensor.empty() : tensor<2x128xf32>
  %q0_f = linalg.fill ins(%zero : f32) outs(%q0_e : tensor<2x128xf32>) -> tensor<2x128xf32>
  %q0_2 = linalg.matmul ins(%h0, %wq0 : tensor<2x64xf32>, tensor<64x128xf32>) outs(%q0_f : tensor<2x128xf32>) -> tensor<2x128xf32>
  %q0_4 = tensor.expand_shape %q0_2 [[0, 1], [2, 3]] output_shape [2, 1, 8, 16] : tensor<2x128xf32> into tensor<2x1x8x16xf32>
  %q0_te = tensor.empty() : tensor<2x8x1x16xf32>
  %q0 = linalg.transpose ins(%q0_4 : tensor<2x1x8x16xf32>) outs(%q0_te : tensor<2x8x1x16xf32>) permutation = [0, 2, 1, 3]
  %k0_e = tensor.empty() : tensor<2x32xf32>
  %k0_f = linalg.fill ins(%zero : f32) outs(%k0_e : tensor<2x32xf32>) -> tensor<2x32xf32>
  %k0_2 = linalg.matmul ins(%h0, %wk0 : tensor<2x64xf32>, tensor<64x32xf32>) outs(%k0_f : tensor<2x32xf32>) -> tensor<2x32xf32>
  %k0_4 = tensor.expand_shape %k0_2 [[0, 1], [2, 3]] output_shape [2, 1, 2, 16] : tensor<2x32xf32> into tensor<2x1x2x16xf32>
  %k0_te = tensor.empty() : tensor<2x2x1x16xf32>
  %k0 = linalg.transpose ins(%k0_4 : tensor<2x1x2x16xf32>) outs(%k0_te : tensor<2x2x1x16xf32>) permutation = [0, 2, 1, 3]
  %v0_e = tensor.empty() : tensor<2x32xf32>
  %v0_f = linalg.fill ins(%zero : f32) outs(%v0_e : tensor<2x32xf32>) -> tensor<2x32xf32>
  %v0_2 = linalg.matmul ins(%h0, %wv0 : tensor<2x64xf32>, tensor<64x32xf32>) outs(%v0_f : tensor<2x32xf32>) -> tensor<2x32xf32>
  %v0_4 = tensor.expand_shape %v0_2 [[0, 1], [2, 3]] output_shape [2, 1, 2, 16] : tensor<2x32xf32> into tensor<2x1x2x16xf32>
  %v0_te = tensor.empty() : tensor<2x2x1x16xf32>
  %v0 = linalg.transpose ins(%v0_4 : tensor<2x1x2x16xf32>) outs(%v0_te : tensor<2x2x1x16xf32>) permutation = [0, 2, 1, 3]
  %a0_kall = tensor.concat dim(2) %past_k0, %k0 : (tensor<2x2x7x16xf32>, tensor<2x2x1x16xf32>) -> tensor<2x2x8x16xf32>
  %a0_vall = tensor.concat dim(2) %past_v0, %v0 : (tensor<2x2x7x16xf32>, tensor<2x2x1x16xf32>) -> tensor<2x2x8x16xf32>
  %a0_rep = tensor.empty() : tensor<2x2x4x8x16xf32>
  %a0_k5 = tensor.expand_shape %a0_kall [[0], [1, 2], [3], [4]] output_shape [2, 2, 1, 8, 16] : tensor<2x2x8x16xf32> into tensor<2x2x1x8x16xf32>
  %a0_kb = linalg.generic {indexing_maps = [#rep_in, #rep_out], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%a0_k5 : tensor<2x2x1x8x16xf32>) outs(%a0_rep : tensor<2x2x4x8x16xf32>) {
  ^bb0(%in: f32, %o: f32):
    linalg.yield %in : f32
  } -> tensor<2x2x4x8x16xf32>
  %a0_kr = tensor.collapse_shape %a0_kb [[0], [1, 2], [3], [4]] : tensor<2x2x4x8x16xf32> into tensor<2x8x8x16xf32>
  %a0_v5 = tensor.expand_shape %a0_vall [[0], [1, 2], [3], [4]] output_shape [2, 2, 1, 8, 16] : tensor<2x2x8x16xf32> into tensor<2x2x1x8x16xf32>
  %a0_vb = linalg.generic {indexing_maps = [#rep_in, #rep_out], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%a0_v5 : tensor<2x2x1x8x16xf32>) outs(%a0_rep : tensor<2x2x4x8x16xf32>) {
  ^bb0(%in: f32, %o: f32):
    linalg.yield %in : f32
  } -> tensor<2x2x4x8x16xf32>
  %a0_vr = tensor.collapse_shape %a0_vb [[0], [1, 2], [3], [4]] : tensor<2x2x4x8x16xf32> into tensor<2x8x8x16xf32>
  %a0_se = tensor.empty() : tensor<2x8x1x8xf32>
  %a0_sf = linalg.fill ins(%zero : f32) outs(%a0_se : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>
  %a0_s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q0, %a0_kr : tensor<2x8x1x16xf32>, tensor<2x8x8x16xf32>) outs(%a0_sf : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x1x8xf32>
  %a0_mask = arith.constant dense<[[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<1x8xf32>
  %a0_x = linalg.generic {indexing_maps = [#id4, #mask, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%a0_s, %a0_mask : tensor<2x8x1x8xf32>, tensor<1x8xf32>) outs(%a0_se : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %mk: f32, %o: f32):
    %c = arith.constant 0.25 : f32
    %t = arith.mulf %a, %c : f32
    %u = arith.addf %t, %mk : f32
    linalg.yield %u : f32
  } -> tensor<2x8x1x8xf32>
  %a0_p = linalg.softmax dimension(3) ins(%a0_x : tensor<2x8x1x8xf32>) outs(%a0_se : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>
  %a0_oe = tensor.empty() : tensor<2x8x1x16xf32>
  %a0_of = linalg.fill ins(%zero : f32) outs(%a0_oe : tensor<2x8x1x16xf32>) -> tensor<2x8x1x16xf32>
  %o0 = linalg.generic {indexing_maps = [#qk_s, #qk_k, #qk_q], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%a0_p, %a0_vr : tensor<2x8x1x8xf32>, tensor<2x8x8x16xf32>) outs(%a0_of : tensor<2x8x1x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x1x16xf32>
  %a0_ote = tensor.empty() : tensor<2x1x8x16xf32>
  %a0_ot = linalg.transpose ins(%o0 : tensor<2x8x1x16xf32>) outs(%a0_ote : tensor<2x1x8x16xf32>) permutation = [0, 2, 1, 3]
  %a0_o2 = tensor.collapse_shape %a0_ot [[0, 1], [2, 3]] : tensor<2x1x8x16xf32> into tensor<2x128xf32>
  %a0_ye = tensor.empty() : tensor<2x64xf32>
  %a0_yf = linalg.fill ins(%zero : f32) outs(%a0_ye : tensor<2x64xf32>) -> tensor<2x64xf32>
  %y0 = linalg.matmul ins(%a0_o2, %wo0 : tensor<2x128xf32>, tensor<128x64xf32>) outs(%a0_yf : tensor<2x64xf32>) -> tensor<2x64xf32>
  %r0e = tensor.empty() : tensor<2x64xf32>
  %h1 = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%h0, %y0 : tensor<2x64xf32>, tensor<2x64xf32>) outs(%r0e : tensor<2x64xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<2x64xf32>
  // Layer 1.
  %q1_e = tensor.empty() : tensor<2x128xf32>
  %q1_f = linalg.fill ins(%zero : f32) outs(%q1_e : tensor<2x128xf32>) -> tensor<2x128xf32>
  %q1_2 = linalg.matmul ins(%h1, %wq1 : tensor<2x64xf32>, tensor<64x128xf32>) outs(%q1_f : tensor<2x128xf32>) -> tensor<2x128xf32>
  %q1_4 = tensor.expand_shape %q1_2 [[0, 1], [2, 3]] output_shape [2, 1, 8, 16] : tensor<2x128xf32> into tensor<2x1x8x16xf32>
  %q1_te = tensor.empty() : tensor<2x8x1x16xf32>
  %q1 = linalg.transpose ins(%q1_4 : tensor<2x1x8x16xf32>) outs(%q1_te : tensor<2x8x1x16xf32>) permutation = [0, 2, 1, 3]
  %k1_e = tensor.empty() : tensor<2x32xf32>
  %k1_f = linalg.fill ins(%zero : f32) outs(%k1_e : tensor<2x32xf32>) -> tensor<2x32xf32>
  %k1_2 = linalg.matmul ins(%h1, %wk1 : tensor<2x64xf32>, tensor<64x32xf32>) outs(%k1_f : tensor<2x32xf32>) -> tensor<2x32xf32>
  %k1_4 = tensor.expand_shape %k1_2 [[0, 1], [2, 3]] output_shape [2, 1, 2, 16] : tensor<2x32xf32> into tensor<2x1x2x16xf32>
  %k1_te = tensor.empty() : tensor<2x2x1x16xf32>
  %k1 = linalg.transpose ins(%k1_4 : tensor<2x1x2x16xf32>) outs(%k1_te : tensor<2x2x1x16xf32>) permutation = [0, 2, 1, 3]
  %v1_e = tensor.empty() : tensor<2x32xf32>
  %v1_f = linalg.fill ins(%zero : f32) outs(%v1_e : tensor<2x32xf32>) -> tensor<2x32xf32>
  %v1_2 = linalg.matmul ins(%h1, %wv1 : tensor<2x64xf32>, tensor<64x32xf32>) outs(%v1_f : tensor<2x32xf32>) -> tensor<2x32xf32>
  %v1_4 = tensor.expand_shape %v1_2 [[0, 1], [2, 3]] output_shape [2, 1, 2, 16] : tensor<2x32xf32> into tensor<2x1x2x16xf32>
  %v1_te = tensor.empty() : tensor<2x2x1x16xf32>
  %v1 = linalg.transpose ins(%v1_4 : tensor<2x1x2x16xf32>) outs(%v1_te : tensor<2x2x1x16xf32>) permutation = [0, 2, 1, 3]
  %a1_kall = tensor.concat dim(2) %past_k1, %k1 : (tensor<2x2x7x16xf32>, tensor<2x2x1x16xf32>) -> tensor<2x2x8x16xf32>
  %a1_vall = tensor.concat dim(2) %past_v1, %v1 : (tensor<2x2x7x16xf32>, tensor<2x2x1x16xf32>) -> tensor<2x2x8x16xf32>
  %a1_rep = tensor.empty() : tensor<2x2x4x8x16xf32>
  %a1_k5 = tensor.expand_shape %a1_kall [[0], [1, 2], [3], [4]] output_shape [2, 2, 1, 8, 16] : tensor<2x2x8x16xf32> into tensor<2x2x1x8x16xf32>
  %a1_kb = linalg.generic {indexing_maps = [#rep_in, #rep_out], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%a1_k5 : tensor<2x2x1x8x16xf32>) outs(%a1_rep : tensor<2x2x4x8x16xf32>) {
  ^bb0(%in: f32, %o: f32):
    linalg.yield %in : f32
  } -> tensor<2x2x4x8x16xf32>
  %a1_kr = tensor.collapse_shape %a1_kb [[0], [1, 2], [3], [4]] : tensor<2x2x4x8x16xf32> into tensor<2x8x8x16xf32>
  %a1_v5 = tensor.expand_shape %a1_vall [[0], [1, 2], [3], [4]] output_shape [2, 2, 1, 8, 16] : tensor<2x2x8x16xf32> into tensor<2x2x1x8x16xf32>
  %a1_vb = linalg.generic {indexing_maps = [#rep_in, #rep_out], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%a1_v5 : tensor<2x2x1x8x16xf32>) outs(%a1_rep : tensor<2x2x4x8x16xf32>) {
  ^bb0(%in: f32, %o: f32):
    linalg.yield %in : f32
  } -> tensor<2x2x4x8x16xf32>
  %a1_vr = tensor.collapse_shape %a1_vb [[0], [1, 2], [3], [4]] : tensor<2x2x4x8x16xf32> into tensor<2x8x8x16xf32>
  %a1_se = tensor.empty() : tensor<2x8x1x8xf32>
  %a1_sf = linalg.fill ins(%zero : f32) outs(%a1_se : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>
  %a1_s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q1, %a1_kr : tensor<2x8x1x16xf32>, tensor<2x8x8x16xf32>) outs(%a1_sf : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x1x8xf32>
  %a1_mask = arith.constant dense<[[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<1x8xf32>
  %a1_x = linalg.generic {indexing_maps = [#id4, #mask, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%a1_s, %a1_mask : tensor<2x8x1x8xf32>, tensor<1x8xf32>) outs(%a1_se : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %mk: f32, %o: f32):
    %c = arith.constant 0.25 : f32
    %t = arith.mulf %a, %c : f32
    %u = arith.addf %t, %mk : f32
    linalg.yield %u : f32
  } -> tensor<2x8x1x8xf32>
  %a1_p = linalg.softmax dimension(3) ins(%a1_x : tensor<2x8x1x8xf32>) outs(%a1_se : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>
  %a1_oe = tensor.empty() : tensor<2x8x1x16xf32>
  %a1_of = linalg.fill ins(%zero : f32) outs(%a1_oe : tensor<2x8x1x16xf32>) -> tensor<2x8x1x16xf32>
  %o1 = linalg.generic {indexing_maps = [#qk_s, #qk_k, #qk_q], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%a1_p, %a1_vr : tensor<2x8x1x8xf32>, tensor<2x8x8x16xf32>) outs(%a1_of : tensor<2x8x1x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x1x16xf32>
  %a1_ote = tensor.empty() : tensor<2x1x8x16xf32>
  %a1_ot = linalg.transpose ins(%o1 : tensor<2x8x1x16xf32>) outs(%a1_ote : tensor<2x1x8x16xf32>) permutation = [0, 2, 1, 3]
  %a1_o2 = tensor.collapse_shape %a1_ot [[0, 1], [2, 3]] : tensor<2x1x8x16xf32> into tensor<2x128xf32>
  %a1_ye = tensor.empty() : tensor<2x64xf32>
  %a1_yf = linalg.fill ins(%zero : f32) outs(%a1_ye : tensor<2x64xf32>) -> tensor<2x64xf32>
  %y1 = linalg.matmul ins(%a1_o2, %wo1 : tensor<2x128xf32>, tensor<128x64xf32>) outs(%a1_yf : tensor<2x64xf32>) -> tensor<2x64xf32>
  %r1e = tensor.empty() : tensor<2x64xf32>
  %h2 = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%h1, %y1 : tensor<2x64xf32>, tensor<2x64xf32>) outs(%r1e : tensor<2x64xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<2x64xf32>
  // Layer 2.
  %q2_e = tensor.empty() : tensor<2x128xf32>
  %q2_f = linalg.fill ins(%zero : f32) outs(%q2_e : tensor<2x128xf32>) -> tensor<2x128xf32>
  %q2_2 = linalg.matmul ins(%h2, %wq2 : tensor<2x64xf32>, tensor<64x128xf32>) outs(%q2_f : tensor<2x128xf32>) -> tensor<2x128xf32>
  %q2_4 = tensor.expand_shape %q2_2 [[0, 1], [2, 3]] output_shape [2, 1, 8, 16] : tensor<2x128xf32> into tensor<2x1x8x16xf32>
  %q2_te = tensor.empty() : tensor<2x8x1x16xf32>
  %q2 = linalg.transpose ins(%q2_4 : tensor<2x1x8x16xf32>) outs(%q2_te : tensor<2x8x1x16xf32>) permutation = [0, 2, 1, 3]
  %k2_e = tensor.empty() : tensor<2x32xf32>
  %k2_f = linalg.fill ins(%zero : f32) outs(%k2_e : tensor<2x32xf32>) -> tensor<2x32xf32>
  %k2_2 = linalg.matmul ins(%h2, %wk2 : tensor<2x64xf32>, tensor<64x32xf32>) outs(%k2_f : tensor<2x32xf32>) -> tensor<2x32xf32>
  %k2_4 = tensor.expand_shape %k2_2 [[0, 1], [2, 3]] output_shape [2, 1, 2, 16] : tensor<2x32xf32> into tensor<2x1x2x16xf32>
  %k2_te = tensor.empty() : tensor<2x2x1x16xf32>
  %k2 = linalg.transpose ins(%k2_4 : tensor<2x1x2x16xf32>) outs(%k2_te : tensor<2x2x1x16xf32>) permutation = [0, 2, 1, 3]
  %v2_e = tensor.empty() : tensor<2x32xf32>
  %v2_f = linalg.fill ins(%zero : f32) outs(%v2_e : tensor<2x32xf32>) -> tensor<2x32xf32>
  %v2_2 = linalg.matmul ins(%h2, %wv2 : tensor<2x64xf32>, tensor<64x32xf32>) outs(%v2_f : tensor<2x32xf32>) -> tensor<2x32xf32>
  %v2_4 = tensor.expand_shape %v2_2 [[0, 1], [2, 3]] output_shape [2, 1, 2, 16] : tensor<2x32xf32> into tensor<2x1x2x16xf32>
  %v2_te = tensor.empty() : tensor<2x2x1x16xf32>
  %v2 = linalg.transpose ins(%v2_4 : tensor<2x1x2x16xf32>) outs(%v2_te : tensor<2x2x1x16xf32>) permutation = [0, 2, 1, 3]
  %a2_kall = tensor.concat dim(2) %past_k2, %k2 : (tensor<2x2x7x16xf32>, tensor<2x2x1x16xf32>) -> tensor<2x2x8x16xf32>
  %a2_vall = tensor.concat dim(2) %past_v2, %v2 : (tensor<2x2x7x16xf32>, tensor<2x2x1x16xf32>) -> tensor<2x2x8x16xf32>
  %a2_rep = tensor.empty() : tensor<2x2x4x8x16xf32>
  %a2_k5 = tensor.expand_shape %a2_kall [[0], [1, 2], [3], [4]] output_shape [2, 2, 1, 8, 16] : tensor<2x2x8x16xf32> into tensor<2x2x1x8x16xf32>
  %a2_kb = linalg.generic {indexing_maps = [#rep_in, #rep_out], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%a2_k5 : tensor<2x2x1x8x16xf32>) outs(%a2_rep : tensor<2x2x4x8x16xf32>) {
  ^bb0(%in: f32, %o: f32):
    linalg.yield %in : f32
  } -> tensor<2x2x4x8x16xf32>
  %a2_kr = tensor.collapse_shape %a2_kb [[0], [1, 2], [3], [4]] : tensor<2x2x4x8x16xf32> into tensor<2x8x8x16xf32>
  %a2_v5 = tensor.expand_shape %a2_vall [[0], [1, 2], [3], [4]] output_shape [2, 2, 1, 8, 16] : tensor<2x2x8x16xf32> into tensor<2x2x1x8x16xf32>
  %a2_vb = linalg.generic {indexing_maps = [#rep_in, #rep_out], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%a2_v5 : tensor<2x2x1x8x16xf32>) outs(%a2_rep : tensor<2x2x4x8x16xf32>) {
  ^bb0(%in: f32, %o: f32):
    linalg.yield %in : f32
  } -> tensor<2x2x4x8x16xf32>
  %a2_vr = tensor.collapse_shape %a2_vb [[0], [1, 2], [3], [4]] : tensor<2x2x4x8x16xf32> into tensor<2x8x8x16xf32>
  %a2_se = tensor.empty() : tensor<2x8x1x8xf32>
  %a2_sf = linalg.fill ins(%zero : f32) outs(%a2_se : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>
  %a2_s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q2, %a2_kr : tensor<2x8x1x16xf32>, tensor<2x8x8x16xf32>) outs(%a2_sf : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x1x8xf32>
  %a2_mask = arith.constant dense<[[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<1x8xf32>
  %a2_x = linalg.generic {indexing_maps = [#id4, #mask, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%a2_s, %a2_mask : tensor<2x8x1x8xf32>, tensor<1x8xf32>) outs(%a2_se : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %mk: f32, %o: f32):
    %c = arith.constant 0.25 : f32
    %t = arith.mulf %a, %c : f32
    %u = arith.addf %t, %mk : f32
    linalg.yield %u : f32
  } -> tensor<2x8x1x8xf32>
  %a2_p = linalg.softmax dimension(3) ins(%a2_x : tensor<2x8x1x8xf32>) outs(%a2_se : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>
  %a2_oe = tensor.empty() : tensor<2x8x1x16xf32>
  %a2_of = linalg.fill ins(%zero : f32) outs(%a2_oe : tensor<2x8x1x16xf32>) -> tensor<2x8x1x16xf32>
  %o2 = linalg.generic {indexing_maps = [#qk_s, #qk_k, #qk_q], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%a2_p, %a2_vr : tensor<2x8x1x8xf32>, tensor<2x8x8x16xf32>) outs(%a2_of : tensor<2x8x1x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x1x16xf32>
  %a2_ote = tensor.empty() : tensor<2x1x8x16xf32>
  %a2_ot = linalg.transpose ins(%o2 : tensor<2x8x1x16xf32>) outs(%a2_ote : tensor<2x1x8x16xf32>) permutation = [0, 2, 1, 3]
  %a2_o2 = tensor.collapse_shape %a2_ot [[0, 1], [2, 3]] : tensor<2x1x8x16xf32> into tensor<2x128xf32>
  %a2_ye = tensor.empty() : tensor<2x64xf32>
  %a2_yf = linalg.fill ins(%zero : f32) outs(%a2_ye : tensor<2x64xf32>) -> tensor<2x64xf32>
  %y2 = linalg.matmul ins(%a2_o2, %wo2 : tensor<2x128xf32>, tensor<128x64xf32>) outs(%a2_yf : tensor<2x64xf32>) -> tensor<2x64xf32>
  %r2e = tensor.empty() : tensor<2x64xf32>
  %h3 = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%h2, %y2 : tensor<2x64xf32>, tensor<2x64xf32>) outs(%r2e : tensor<2x64xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<2x64xf32>
  // Layer 3.
  %q3_e = tensor.empty() : tensor<2x128xf32>
  %q3_f = linalg.fill ins(%zero : f32) outs(%q3_e : tensor<2x128xf32>) -> tensor<2x128xf32>
  %q3_2 = linalg.matmul ins(%h3, %wq3 : tensor<2x64xf32>, tensor<64x128xf32>) outs(%q3_f : tensor<2x128xf32>) -> tensor<2x128xf32>
  %q3_4 = tensor.expand_shape %q3_2 [[0, 1], [2, 3]] output_shape [2, 1, 8, 16] : tensor<2x128xf32> into tensor<2x1x8x16xf32>
  %q3_te = tensor.empty() : tensor<2x8x1x16xf32>
  %q3 = linalg.transpose ins(%q3_4 : tensor<2x1x8x16xf32>) outs(%q3_te : tensor<2x8x1x16xf32>) permutation = [0, 2, 1, 3]
  %k3_e = tensor.empty() : tensor<2x32xf32>
  %k3_f = linalg.fill ins(%zero : f32) outs(%k3_e : tensor<2x32xf32>) -> tensor<2x32xf32>
  %k3_2 = linalg.matmul ins(%h3, %wk3 : tensor<2x64xf32>, tensor<64x32xf32>) outs(%k3_f : tensor<2x32xf32>) -> tensor<2x32xf32>
  %k3_4 = tensor.expand_shape %k3_2 [[0, 1], [2, 3]] output_shape [2, 1, 2, 16] : tensor<2x32xf32> into tensor<2x1x2x16xf32>
  %k3_te = tensor.empty() : tensor<2x2x1x16xf32>
  %k3 = linalg.transpose ins(%k3_4 : tensor<2x1x2x16xf32>) outs(%k3_te : tensor<2x2x1x16xf32>) permutation = [0, 2, 1, 3]
  %v3_e = tensor.empty() : tensor<2x32xf32>
  %v3_f = linalg.fill ins(%zero : f32) outs(%v3_e : tensor<2x32xf32>) -> tensor<2x32xf32>
  %v3_2 = linalg.matmul ins(%h3, %wv3 : tensor<2x64xf32>, tensor<64x32xf32>) outs(%v3_f : tensor<2x32xf32>) -> tensor<2x32xf32>
  %v3_4 = tensor.expand_shape %v3_2 [[0, 1], [2, 3]] output_shape [2, 1, 2, 16] : tensor<2x32xf32> into tensor<2x1x2x16xf32>
  %v3_te = tensor.empty() : tensor<2x2x1x16xf32>
  %v3 = linalg.transpose ins(%v3_4 : tensor<2x1x2x16xf32>) outs(%v3_te : tensor<2x2x1x16xf32>) permutation = [0, 2, 1, 3]
  %a3_kall = tensor.concat dim(2) %past_k3, %k3 : (tensor<2x2x7x16xf32>, tensor<2x2x1x16xf32>) -> tensor<2x2x8x16xf32>
  %a3_vall = tensor.concat dim(2) %past_v3, %v3 : (tensor<2x2x7x16xf32>, tensor<2x2x1x16xf32>) -> tensor<2x2x8x16xf32>
  %a3_rep = tensor.empty() : tensor<2x2x4x8x16xf32>
  %a3_k5 = tensor.expand_shape %a3_kall [[0], [1, 2], [3], [4]] output_shape [2, 2, 1, 8, 16] : tensor<2x2x8x16xf32> into tensor<2x2x1x8x16xf32>
  %a3_kb = linalg.generic {indexing_maps = [#rep_in, #rep_out], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%a3_k5 : tensor<2x2x1x8x16xf32>) outs(%a3_rep : tensor<2x2x4x8x16xf32>) {
  ^bb0(%in: f32, %o: f32):
    linalg.yield %in : f32
  } -> tensor<2x2x4x8x16xf32>
  %a3_kr = tensor.collapse_shape %a3_kb [[0], [1, 2], [3], [4]] : tensor<2x2x4x8x16xf32> into tensor<2x8x8x16xf32>
  %a3_v5 = tensor.expand_shape %a3_vall [[0], [1, 2], [3], [4]] output_shape [2, 2, 1, 8, 16] : tensor<2x2x8x16xf32> into tensor<2x2x1x8x16xf32>
  %a3_vb = linalg.generic {indexing_maps = [#rep_in, #rep_out], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%a3_v5 : tensor<2x2x1x8x16xf32>) outs(%a3_rep : tensor<2x2x4x8x16xf32>) {
  ^bb0(%in: f32, %o: f32):
    linalg.yield %in : f32
  } -> tensor<2x2x4x8x16xf32>
  %a3_vr = tensor.collapse_shape %a3_vb [[0], [1, 2], [3], [4]] : tensor<2x2x4x8x16xf32> into tensor<2x8x8x16xf32>
  %a3_se = tensor.empty() : tensor<2x8x1x8xf32>
  %a3_sf = linalg.fill ins(%zero : f32) outs(%a3_se : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>
  %a3_s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q3, %a3_kr : tensor<2x8x1x16xf32>, tensor<2x8x8x16xf32>) outs(%a3_sf : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x1x8xf32>
  %a3_mask = arith.constant dense<[[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<1x8xf32>
  %a3_x = linalg.generic {indexing_maps = [#id4, #mask, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%a3_s, %a3_mask : tensor<2x8x1x8xf32>, tensor<1x8xf32>) outs(%a3_se : tensor<2x8x1x8xf32>) {
  ^bb0(%a: f32, %mk: f32, %o: f32):
    %c = arith.constant 0.25 : f32
    %t = arith.mulf %a, %c : f32
    %u = arith.addf %t, %mk : f32
    linalg.yield %u : f32
  } -> tensor<2x8x1x8xf32>
  %a3_p = linalg.softmax dimension(3) ins(%a3_x : tensor<2x8x1x8xf32>) outs(%a3_se : tensor<2x8x1x8xf32>) -> tensor<2x8x1x8xf32>
  %a3_oe = tensor.empty() : tensor<2x8x1x16xf32>
  %a3_of = linalg.fill ins(%zero : f32) outs(%a3_oe : tensor<2x8x1x16xf32>) -> tensor<2x8x1x16xf32>
  %o3 = linalg.generic {indexing_maps = [#qk_s, #qk_k, #qk_q], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%a3_p, %a3_vr : tensor<2x8x1x8xf32>, tensor<2x8x8x16xf32>) outs(%a3_of : tensor<2x8x1x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x1x16xf32>
  %a3_ote = tensor.empty() : tensor<2x1x8x16xf32>
  %a3_ot = linalg.transpose ins(%o3 : tensor<2x8x1x16xf32>) outs(%a3_ote : tensor<2x1x8x16xf32>) permutation = [0, 2, 1, 3]
  %a3_o2 = tensor.collapse_shape %a3_ot [[0, 1], [2, 3]] : tensor<2x1x8x16xf32> into tensor<2x128xf32>
  %a3_ye = tensor.empty() : tensor<2x64xf32>
  %a3_yf = linalg.fill ins(%zero : f32) outs(%a3_ye : tensor<2x64xf32>) -> tensor<2x64xf32>
  %y3 = linalg.matmul ins(%a3_o2, %wo3 : tensor<2x128xf32>, tensor<128x64xf32>) outs(%a3_yf : tensor<2x64xf32>) -> tensor<2x64xf32>
  %r3e = tensor.empty() : tensor<2x64xf32>
  %h4 = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%h3, %y3 : tensor<2x64xf32>, tensor<2x64xf32>) outs(%r3e : tensor<2x64xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<2x64xf32>
  %out = tensor.expand_shape %h4 [[0, 1], [2]] output_shape [2, 1, 64] : tensor<2x64xf32> into tensor<2x1x64xf32>
  return %out, %a0_kall, %a0_vall, %a1_kall, %a1_vall, %a2_kall, %a2_vall, %a3_kall, %a3_vall : tensor<2x1x64xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>
}
