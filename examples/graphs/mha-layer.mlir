// One decode step of a GPT-2/Llama-1-style multi-head attention block (MHA:
// 4 heads of dimension 16, hidden 64, batch 2, 7 cached tokens + 1 new) in
// the 3-D form torch exports for torch.bmm: q and K/V collapsed to
// [B*H, T, D], K transposed by linalg.transpose before the collapse,
// q scaled by 1/sqrt(16) before Q·Kᵀ (linalg.batch_matmul), the softmax
// written out (linalg.reduce max, sub, exp, generic sum, div), P·V as
// linalg.batch_matmul, expand_shape back to [B, H, T, D]. Projections:
// linalg.matmul [B*T, hidden] x [hidden, H*D], expand_shape to
// [B, T, H, D], linalg.transpose to [B, H, T, D].
//
//   kvopt-opt examples/graphs/mha-layer.mlir --kv-raise-attention

#id3 = affine_map<(i, j, k) -> (i, j, k)>
#row3 = affine_map<(i, j, k) -> (i, j)>
#id4 = affine_map<(b, h, t, d) -> (b, h, t, d)>

func.func @mha_layer(%x: tensor<2x1x64xf32>,
                     %past_k: tensor<2x4x7x16xf32>, %past_v: tensor<2x4x7x16xf32>,
                     %wq: tensor<64x64xf32>, %wk: tensor<64x64xf32>,
                     %wv: tensor<64x64xf32>, %wo: tensor<64x64xf32>)
    -> (tensor<2x1x64xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>) {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %x2 = tensor.collapse_shape %x [[0, 1], [2]] : tensor<2x1x64xf32> into tensor<2x64xf32>
  %q_e = tensor.empty() : tensor<2x64xf32>
  %q_f = linalg.fill ins(%zero : f32) outs(%q_e : tensor<2x64xf32>) -> tensor<2x64xf32>
  %q_2 = linalg.matmul ins(%x2, %wq : tensor<2x64xf32>, tensor<64x64xf32>) outs(%q_f : tensor<2x64xf32>) -> tensor<2x64xf32>
  %q_4 = tensor.expand_shape %q_2 [[0, 1], [2, 3]] output_shape [2, 1, 4, 16] : tensor<2x64xf32> into tensor<2x1x4x16xf32>
  %q_te = tensor.empty() : tensor<2x4x1x16xf32>
  %q = linalg.transpose ins(%q_4 : tensor<2x1x4x16xf32>) outs(%q_te : tensor<2x4x1x16xf32>) permutation = [0, 2, 1, 3]
  %k_e = tensor.empty() : tensor<2x64xf32>
  %k_f = linalg.fill ins(%zero : f32) outs(%k_e : tensor<2x64xf32>) -> tensor<2x64xf32>
  %k_2 = linalg.matmul ins(%x2, %wk : tensor<2x64xf32>, tensor<64x64xf32>) outs(%k_f : tensor<2x64xf32>) -> tensor<2x64xf32>
  %k_4 = tensor.expand_shape %k_2 [[0, 1], [2, 3]] output_shape [2, 1, 4, 16] : tensor<2x64xf32> into tensor<2x1x4x16xf32>
  %k_te = tensor.empty() : tensor<2x4x1x16xf32>
  %k = linalg.transpose ins(%k_4 : tensor<2x1x4x16xf32>) outs(%k_te : tensor<2x4x1x16xf32>) permutation = [0, 2, 1, 3]
  %v_e = tensor.empty() : tensor<2x64xf32>
  %v_f = linalg.fill ins(%zero : f32) outs(%v_e : tensor<2x64xf32>) -> tensor<2x64xf32>
  %v_2 = linalg.matmul ins(%x2, %wv : tensor<2x64xf32>, tensor<64x64xf32>) outs(%v_f : tensor<2x64xf32>) -> tensor<2x64xf32>
  %v_4 = tensor.expand_shape %v_2 [[0, 1], [2, 3]] output_shape [2, 1, 4, 16] : tensor<2x64xf32> into tensor<2x1x4x16xf32>
  %v_te = tensor.empty() : tensor<2x4x1x16xf32>
  %v = linalg.transpose ins(%v_4 : tensor<2x1x4x16xf32>) outs(%v_te : tensor<2x4x1x16xf32>) permutation = [0, 2, 1, 3]
  %k_all = tensor.concat dim(2) %past_k, %k : (tensor<2x4x7x16xf32>, tensor<2x4x1x16xf32>) -> tensor<2x4x8x16xf32>
  %v_all = tensor.concat dim(2) %past_v, %v : (tensor<2x4x7x16xf32>, tensor<2x4x1x16xf32>) -> tensor<2x4x8x16xf32>
  %qse = tensor.empty() : tensor<2x4x1x16xf32>
  %qs = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%q : tensor<2x4x1x16xf32>) outs(%qse : tensor<2x4x1x16xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 4.0 : f32
    %r = arith.divf %a, %c : f32
    linalg.yield %r : f32
  } -> tensor<2x4x1x16xf32>
  %q3 = tensor.collapse_shape %qs [[0, 1], [2], [3]] : tensor<2x4x1x16xf32> into tensor<8x1x16xf32>
  %kte = tensor.empty() : tensor<2x4x16x8xf32>
  %kt = linalg.transpose ins(%k_all : tensor<2x4x8x16xf32>) outs(%kte : tensor<2x4x16x8xf32>) permutation = [0, 1, 3, 2]
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<2x4x16x8xf32> into tensor<8x16x8xf32>
  %se = tensor.empty() : tensor<8x1x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x1x8xf32>) -> tensor<8x1x8xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<8x1x16xf32>, tensor<8x16x8xf32>) outs(%sf : tensor<8x1x8xf32>) -> tensor<8x1x8xf32>
  %re = tensor.empty() : tensor<8x1xf32>
  %mf = linalg.fill ins(%ninf : f32) outs(%re : tensor<8x1xf32>) -> tensor<8x1xf32>
  %max = linalg.reduce ins(%s : tensor<8x1x8xf32>) outs(%mf : tensor<8x1xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %m = arith.maximumf %in, %acc : f32
      linalg.yield %m : f32
    }
  %sub = linalg.generic {indexing_maps = [#id3, #row3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s, %max : tensor<8x1x8xf32>, tensor<8x1xf32>) outs(%se : tensor<8x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %d = arith.subf %a, %b : f32
    linalg.yield %d : f32
  } -> tensor<8x1x8xf32>
  %e = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%sub : tensor<8x1x8xf32>) outs(%se : tensor<8x1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = math.exp %a : f32
    linalg.yield %r : f32
  } -> tensor<8x1x8xf32>
  %zf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x1xf32>) -> tensor<8x1xf32>
  %sum = linalg.generic {indexing_maps = [#id3, #row3], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%e : tensor<8x1x8xf32>) outs(%zf : tensor<8x1xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<8x1xf32>
  %p = linalg.generic {indexing_maps = [#id3, #row3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%e, %sum : tensor<8x1x8xf32>, tensor<8x1xf32>) outs(%se : tensor<8x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.divf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<8x1x8xf32>
  %v3 = tensor.collapse_shape %v_all [[0, 1], [2], [3]] : tensor<2x4x8x16xf32> into tensor<8x8x16xf32>
  %oe = tensor.empty() : tensor<8x1x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<8x1x16xf32>) -> tensor<8x1x16xf32>
  %o3 = linalg.batch_matmul ins(%p, %v3 : tensor<8x1x8xf32>, tensor<8x8x16xf32>) outs(%of : tensor<8x1x16xf32>) -> tensor<8x1x16xf32>
  %o = tensor.expand_shape %o3 [[0, 1], [2], [3]] output_shape [2, 4, 1, 16] : tensor<8x1x16xf32> into tensor<2x4x1x16xf32>
  %a_ote = tensor.empty() : tensor<2x1x4x16xf32>
  %a_ot = linalg.transpose ins(%o : tensor<2x4x1x16xf32>) outs(%a_ote : tensor<2x1x4x16xf32>) permutation = [0, 2, 1, 3]
  %a_o2 = tensor.collapse_shape %a_ot [[0, 1], [2, 3]] : tensor<2x1x4x16xf32> into tensor<2x64xf32>
  %a_ye = tensor.empty() : tensor<2x64xf32>
  %a_yf = linalg.fill ins(%zero : f32) outs(%a_ye : tensor<2x64xf32>) -> tensor<2x64xf32>
  %y2 = linalg.matmul ins(%a_o2, %wo : tensor<2x64xf32>, tensor<64x64xf32>) outs(%a_yf : tensor<2x64xf32>) -> tensor<2x64xf32>
  %y = tensor.expand_shape %y2 [[0, 1], [2]] output_shape [2, 1, 64] : tensor<2x64xf32> into tensor<2x1x64xf32>
  return %y, %k_all, %v_all : tensor<2x1x64xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>
}
