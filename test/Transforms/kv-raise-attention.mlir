// RUN: kvopt-opt %s -split-input-file -kv-raise-attention --mlir-print-local-scope | FileCheck %s
// RUN: kvopt-opt %s -split-input-file -kv-raise-attention=capacity=16 --mlir-print-local-scope | FileCheck %s --check-prefix=CAP

#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#pv_v = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#pv_o = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#id4 = affine_map<(b, h, q, k) -> (b, h, q, k)>

// GQA decode step: 4 query heads over 2 KV heads (repeat_kv through
// linalg.broadcast), 4-D generic contractions, scale after Q·Kᵀ,
// linalg.softmax. The past K/V arguments become one cache argument; the
// returned concatenations read the cache.
// CHECK-LABEL: func @gqa_decode
// CHECK-SAME: (%[[Q:[a-z0-9_]+]]: tensor<2x4x1x4xf32>, %[[K:[a-z0-9_]+]]: tensor<2x2x1x4xf32>, %[[V:[a-z0-9_]+]]: tensor<2x2x1x4xf32>, %[[C:[a-z0-9_]+]]: !kv.cache<kv_heads = 2, head_dim = 4, capacity = 4, element = f32> {kv.layer = 0 : i64})
// CHECK-SAME: -> (tensor<2x4x1x4xf32>, tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>)
// CHECK: %[[POS:.*]] = arith.constant dense<3> : tensor<2xi32>
// CHECK: kv.append %[[C]][%[[POS]]], %[[K]], %[[V]]
// CHECK: %[[VK:.*]], %[[VV:.*]] = kv.view %[[C]]
// CHECK: %[[LENS:.*]] = arith.constant dense<4> : tensor<2xi32>
// CHECK: %[[O:.*]] = kv.attention %[[Q]], %[[C]], %[[LENS]] {scale = 5.000000e-01 : f32}
// CHECK-NOT: linalg.
// CHECK: return %[[O]], %[[VK]], %[[VV]]
// CAP-LABEL: func @gqa_decode
// CAP-SAME: capacity = 16
// CAP: %[[VK:.*]], %[[VV:.*]] = kv.view
// CAP: %[[SK:.*]] = tensor.extract_slice %[[VK]][0, 0, 0, 0] [2, 2, 4, 4] [1, 1, 1, 1] : tensor<2x2x16x4xf32> to tensor<2x2x4x4xf32>
// CAP: %[[SV:.*]] = tensor.extract_slice %[[VV]]
// CAP: return %{{.*}}, %[[SK]], %[[SV]]
func.func @gqa_decode(%q: tensor<2x4x1x4xf32>, %k: tensor<2x2x1x4xf32>, %v: tensor<2x2x1x4xf32>,
                      %past_k: tensor<2x2x3x4xf32>, %past_v: tensor<2x2x3x4xf32>)
    -> (tensor<2x4x1x4xf32>, tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %k_all = tensor.concat dim(2) %past_k, %k : (tensor<2x2x3x4xf32>, tensor<2x2x1x4xf32>) -> tensor<2x2x4x4xf32>
  %v_all = tensor.concat dim(2) %past_v, %v : (tensor<2x2x3x4xf32>, tensor<2x2x1x4xf32>) -> tensor<2x2x4x4xf32>
  %erep = tensor.empty() : tensor<2x2x2x4x4xf32>
  %kb = linalg.broadcast ins(%k_all : tensor<2x2x4x4xf32>) outs(%erep : tensor<2x2x2x4x4xf32>) dimensions = [2]
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<2x2x2x4x4xf32> into tensor<2x4x4x4xf32>
  %vb = linalg.broadcast ins(%v_all : tensor<2x2x4x4xf32>) outs(%erep : tensor<2x2x2x4x4xf32>) dimensions = [2]
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<2x2x2x4x4xf32> into tensor<2x4x4x4xf32>
  %es = tensor.empty() : tensor<2x4x1x4xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es : tensor<2x4x1x4xf32>) -> tensor<2x4x1x4xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kr : tensor<2x4x1x4xf32>, tensor<2x4x4x4xf32>) outs(%fs : tensor<2x4x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x4x1x4xf32>
  %ss = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<2x4x1x4xf32>) outs(%es : tensor<2x4x1x4xf32>) {
  ^bb0(%a: f32, %out: f32):
    %c = arith.constant 0.5 : f32
    %t = arith.mulf %c, %a : f32
    linalg.yield %t : f32
  } -> tensor<2x4x1x4xf32>
  %p = linalg.softmax dimension(3) ins(%ss : tensor<2x4x1x4xf32>) outs(%es : tensor<2x4x1x4xf32>) -> tensor<2x4x1x4xf32>
  %fo = linalg.fill ins(%zero : f32) outs(%es : tensor<2x4x1x4xf32>) -> tensor<2x4x1x4xf32>
  %o = linalg.generic {indexing_maps = [#qk_s, #pv_v, #pv_o], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%p, %vr : tensor<2x4x1x4xf32>, tensor<2x4x4x4xf32>) outs(%fo : tensor<2x4x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x4x1x4xf32>
  return %o, %k_all, %v_all : tensor<2x4x1x4xf32>, tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>
}

// -----

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#row3 = affine_map<(d0, d1, d2) -> (d0, d1)>
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>

// MHA in the 3-D [B*H, T, D] batch_matmul form: q scaled by 1/2 before the
// contraction, K transposed by linalg.transpose, softmax written out
// (linalg.reduce max, sub, exp, generic sum, div). B = 2, H = 2.
// CHECK-LABEL: func @mha_bmm
// CHECK-SAME: (%[[Q:[a-z0-9_]+]]: tensor<2x2x1x4xf32>, %[[K:[a-z0-9_]+]]: tensor<2x2x1x4xf32>, %[[V:[a-z0-9_]+]]: tensor<2x2x1x4xf32>, %[[C:[a-z0-9_]+]]: !kv.cache<kv_heads = 2, head_dim = 4, capacity = 5, element = f32> {kv.layer = 0 : i64}) -> tensor<2x2x1x4xf32>
// CHECK: kv.append %[[C]][%{{.*}}], %[[K]], %[[V]]
// CHECK: %[[O:.*]] = kv.attention %[[Q]], %[[C]], %{{.*}} {scale = 5.000000e-01 : f32}
// CHECK-NOT: linalg.
// CHECK-NOT: kv.view
// CHECK: return
func.func @mha_bmm(%q: tensor<2x2x1x4xf32>, %k: tensor<2x2x1x4xf32>, %v: tensor<2x2x1x4xf32>,
                   %past_k: tensor<2x2x4x4xf32>, %past_v: tensor<2x2x4x4xf32>) -> tensor<2x2x1x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %k_all = tensor.concat dim(2) %past_k, %k : (tensor<2x2x4x4xf32>, tensor<2x2x1x4xf32>) -> tensor<2x2x5x4xf32>
  %v_all = tensor.concat dim(2) %past_v, %v : (tensor<2x2x4x4xf32>, tensor<2x2x1x4xf32>) -> tensor<2x2x5x4xf32>
  %eq = tensor.empty() : tensor<2x2x1x4xf32>
  %qs = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%q : tensor<2x2x1x4xf32>) outs(%eq : tensor<2x2x1x4xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 2.0 : f32
    %r = arith.divf %a, %c : f32
    linalg.yield %r : f32
  } -> tensor<2x2x1x4xf32>
  %q3 = tensor.collapse_shape %qs [[0, 1], [2], [3]] : tensor<2x2x1x4xf32> into tensor<4x1x4xf32>
  %ekt = tensor.empty() : tensor<2x2x4x5xf32>
  %kt = linalg.transpose ins(%k_all : tensor<2x2x5x4xf32>) outs(%ekt : tensor<2x2x4x5xf32>) permutation = [0, 1, 3, 2]
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<2x2x4x5xf32> into tensor<4x4x5xf32>
  %es = tensor.empty() : tensor<4x1x5xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es : tensor<4x1x5xf32>) -> tensor<4x1x5xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<4x1x4xf32>, tensor<4x4x5xf32>) outs(%fs : tensor<4x1x5xf32>) -> tensor<4x1x5xf32>
  %er = tensor.empty() : tensor<4x1xf32>
  %fm = linalg.fill ins(%ninf : f32) outs(%er : tensor<4x1xf32>) -> tensor<4x1xf32>
  %max = linalg.reduce ins(%s : tensor<4x1x5xf32>) outs(%fm : tensor<4x1xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %m = arith.maximumf %in, %acc : f32
      linalg.yield %m : f32
    }
  %sub = linalg.generic {indexing_maps = [#id3, #row3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s, %max : tensor<4x1x5xf32>, tensor<4x1xf32>) outs(%es : tensor<4x1x5xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %d = arith.subf %a, %b : f32
    linalg.yield %d : f32
  } -> tensor<4x1x5xf32>
  %e = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%sub : tensor<4x1x5xf32>) outs(%es : tensor<4x1x5xf32>) {
  ^bb0(%a: f32, %o: f32):
    %x = math.exp %a : f32
    linalg.yield %x : f32
  } -> tensor<4x1x5xf32>
  %fz = linalg.fill ins(%zero : f32) outs(%er : tensor<4x1xf32>) -> tensor<4x1xf32>
  %sum = linalg.generic {indexing_maps = [#id3, #row3], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%e : tensor<4x1x5xf32>) outs(%fz : tensor<4x1xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %x = arith.addf %acc, %a : f32
    linalg.yield %x : f32
  } -> tensor<4x1xf32>
  %p = linalg.generic {indexing_maps = [#id3, #row3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%e, %sum : tensor<4x1x5xf32>, tensor<4x1xf32>) outs(%es : tensor<4x1x5xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %d = arith.divf %a, %b : f32
    linalg.yield %d : f32
  } -> tensor<4x1x5xf32>
  %v3 = tensor.collapse_shape %v_all [[0, 1], [2], [3]] : tensor<2x2x5x4xf32> into tensor<4x5x4xf32>
  %eo = tensor.empty() : tensor<4x1x4xf32>
  %fo = linalg.fill ins(%zero : f32) outs(%eo : tensor<4x1x4xf32>) -> tensor<4x1x4xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<4x1x5xf32>, tensor<4x5x4xf32>) outs(%fo : tensor<4x1x4xf32>) -> tensor<4x1x4xf32>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [2, 2, 1, 4] : tensor<4x1x4xf32> into tensor<2x2x1x4xf32>
  return %o4 : tensor<2x2x1x4xf32>
}

// -----

#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_kt = affine_map<(b, h, q, k, d) -> (b, h, d, k)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#pv_v = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#pv_o = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#id4 = affine_map<(b, h, q, k) -> (b, h, q, k)>
#mask = affine_map<(b, h, q, k) -> (0, 0, q, k)>

// Chunked prefill: 3 new tokens after 2 cached ones, K read transposed
// ([B, H, D, T] through the indexing map), an additive causal mask whose
// content is checked: query i sees keys up to 2 + i.
// CHECK-LABEL: func @causal_prefill
// CHECK: arith.constant dense<2> : tensor<1xi32>
// CHECK: kv.append
// CHECK: arith.constant dense<5> : tensor<1xi32>
// CHECK: kv.attention {{.*}} {causal, scale = 2.500000e-01 : f32} : (tensor<1x2x3x4xf32>
// CHECK-NOT: linalg.
func.func @causal_prefill(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>,
                          %past_k: tensor<1x2x2x4xf32>, %past_v: tensor<1x2x2x4xf32>) -> tensor<1x2x3x4xf32> {
  %zero = arith.constant 0.0 : f32
  %k_all = tensor.concat dim(2) %past_k, %k : (tensor<1x2x2x4xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x5x4xf32>
  %v_all = tensor.concat dim(2) %past_v, %v : (tensor<1x2x2x4xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x5x4xf32>
  %ekt = tensor.empty() : tensor<1x2x4x5xf32>
  %kt = linalg.transpose ins(%k_all : tensor<1x2x5x4xf32>) outs(%ekt : tensor<1x2x4x5xf32>) permutation = [0, 1, 3, 2]
  %es = tensor.empty() : tensor<1x2x3x5xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x3x5xf32>) -> tensor<1x2x3x5xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_kt, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kt : tensor<1x2x3x4xf32>, tensor<1x2x4x5xf32>) outs(%fs : tensor<1x2x3x5xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x3x5xf32>
  %causal = arith.constant dense<[[[[0.0, 0.0, 0.0, 0xFF800000, 0xFF800000],
                                    [0.0, 0.0, 0.0, 0.0, 0xFF800000],
                                    [0.0, 0.0, 0.0, 0.0, 0.0]]]]> : tensor<1x1x3x5xf32>
  %ss = linalg.generic {indexing_maps = [#id4, #mask, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s, %causal : tensor<1x2x3x5xf32>, tensor<1x1x3x5xf32>) outs(%es : tensor<1x2x3x5xf32>) {
  ^bb0(%a: f32, %mk: f32, %out: f32):
    %c = arith.constant 4.0 : f32
    %t = arith.divf %a, %c : f32
    %u = arith.addf %mk, %t : f32
    linalg.yield %u : f32
  } -> tensor<1x2x3x5xf32>
  %p = linalg.softmax dimension(3) ins(%ss : tensor<1x2x3x5xf32>) outs(%es : tensor<1x2x3x5xf32>) -> tensor<1x2x3x5xf32>
  %eo = tensor.empty() : tensor<1x2x3x4xf32>
  %fo = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  %o = linalg.generic {indexing_maps = [#qk_s, #pv_v, #pv_o], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%p, %v_all : tensor<1x2x3x5xf32>, tensor<1x2x5x4xf32>) outs(%fo : tensor<1x2x3x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x3x4xf32>
  return %o : tensor<1x2x3x4xf32>
}

// -----

#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#pv_o = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#id4 = affine_map<(b, h, q, k) -> (b, h, q, k)>
#row4 = affine_map<(b, h, q, k) -> (b, h, q)>
#mask = affine_map<(b, h, q, k) -> (q, k)>

// StreamingLLM-style attention: an i1 select mask that keeps a 3-token
// sliding window plus 1 sink token (verified against the constant), with
// the scale inside the select, and a softmax fused differently (exp(x - max)
// in one generic, multiplication by the reciprocal of the sum).
// CHECK-LABEL: func @window_sinks
// CHECK: kv.attention {{.*}} {causal, scale = 0.35355{{[0-9]*}} : f32, sinks = 1 : i64, window = 3 : i64}
// CHECK-NOT: linalg.
func.func @window_sinks(%q: tensor<1x2x2x8xf32>, %k: tensor<1x2x2x8xf32>, %v: tensor<1x2x2x8xf32>,
                        %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>) -> tensor<1x2x2x8xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %k_all = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %v_all = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %es = tensor.empty() : tensor<1x2x2x7xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x2x7xf32>) -> tensor<1x2x2x7xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k_all : tensor<1x2x2x8xf32>, tensor<1x2x7x8xf32>) outs(%fs : tensor<1x2x2x7xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x7xf32>
  %keep = arith.constant dense<[[true, false, false, true, true, true, false],
                                [true, false, false, false, true, true, true]]> : tensor<2x7xi1>
  %x = linalg.generic {indexing_maps = [#id4, #mask, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s, %keep : tensor<1x2x2x7xf32>, tensor<2x7xi1>) outs(%es : tensor<1x2x2x7xf32>) {
  ^bb0(%a: f32, %mk: i1, %out: f32):
    %c = arith.constant 0.353553390593 : f32
    %big = arith.constant -1.0e9 : f32
    %t = arith.mulf %a, %c : f32
    %u = arith.select %mk, %t, %big : f32
    linalg.yield %u : f32
  } -> tensor<1x2x2x7xf32>
  %er = tensor.empty() : tensor<1x2x2xf32>
  %fm = linalg.fill ins(%ninf : f32) outs(%er : tensor<1x2x2xf32>) -> tensor<1x2x2xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x : tensor<1x2x2x7xf32>) outs(%fm : tensor<1x2x2xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.maxnumf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2xf32>
  %e = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%x, %mx : tensor<1x2x2x7xf32>, tensor<1x2x2xf32>) outs(%es : tensor<1x2x2x7xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %d = arith.subf %a, %b : f32
    %r = math.exp %d : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x7xf32>
  %fz = linalg.fill ins(%zero : f32) outs(%er : tensor<1x2x2xf32>) -> tensor<1x2x2xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%e : tensor<1x2x2x7xf32>) outs(%fz : tensor<1x2x2xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %a, %acc : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%e, %sum : tensor<1x2x2x7xf32>, tensor<1x2x2xf32>) outs(%es : tensor<1x2x2x7xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %one = arith.constant 1.0 : f32
    %r = arith.divf %one, %b : f32
    %w = arith.mulf %a, %r : f32
    linalg.yield %w : f32
  } -> tensor<1x2x2x7xf32>
  %eo = tensor.empty() : tensor<1x2x2x8xf32>
  %fo = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x2x8xf32>) -> tensor<1x2x2x8xf32>
  %o = linalg.generic {indexing_maps = [#qk_s, #qk_k, #pv_o], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%p, %v_all : tensor<1x2x2x7xf32>, tensor<1x2x7x8xf32>) outs(%fo : tensor<1x2x2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x8xf32>
  return %o : tensor<1x2x2x8xf32>
}

// -----

#qk_q = affine_map<(b, h, q, k, d) -> (b, h, q, d)>
#qk_k = affine_map<(b, h, q, k, d) -> (b, h, k, d)>
#qk_s = affine_map<(b, h, q, k, d) -> (b, h, q, k)>
#pv_o = affine_map<(b, h, q, k, d) -> (b, h, q, d)>

// The decode step written as two tensor.insert_slice into an empty tensor,
// and both contractions with their operands swapped (K before Q, V before
// P); the present keys are returned.
// CHECK-LABEL: func @insert_slices_swapped
// CHECK-SAME: %[[C:[a-z0-9_]+]]: !kv.cache<kv_heads = 2, head_dim = 4, capacity = 6, element = f16> {kv.layer = 0 : i64}
// CHECK: kv.append %[[C]]
// CHECK: %[[VK:.*]], %{{.*}} = kv.view %[[C]]
// CHECK: kv.attention %{{.*}}, %[[C]], %{{.*}} {scale = 1.000000e+00 : f32} : (tensor<1x2x1x4xf16>
// CHECK-NOT: tensor.insert_slice
// CHECK-NOT: linalg.
// CHECK: return %{{.*}}, %[[VK]]
func.func @insert_slices_swapped(%q: tensor<1x2x1x4xf16>, %k: tensor<1x2x1x4xf16>, %v: tensor<1x2x1x4xf16>,
                                 %past_k: tensor<1x2x5x4xf16>, %past_v: tensor<1x2x5x4xf16>)
    -> (tensor<1x2x1x4xf16>, tensor<1x2x6x4xf16>) {
  %zero = arith.constant 0.0 : f16
  %e6 = tensor.empty() : tensor<1x2x6x4xf16>
  %k0 = tensor.insert_slice %past_k into %e6[0, 0, 0, 0] [1, 2, 5, 4] [1, 1, 1, 1] : tensor<1x2x5x4xf16> into tensor<1x2x6x4xf16>
  %k_all = tensor.insert_slice %k into %k0[0, 0, 5, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x4xf16> into tensor<1x2x6x4xf16>
  %v0 = tensor.insert_slice %v into %e6[0, 0, 5, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x4xf16> into tensor<1x2x6x4xf16>
  %v_all = tensor.insert_slice %past_v into %v0[0, 0, 0, 0] [1, 2, 5, 4] [1, 1, 1, 1] : tensor<1x2x5x4xf16> into tensor<1x2x6x4xf16>
  %es = tensor.empty() : tensor<1x2x1x6xf16>
  %fs = linalg.fill ins(%zero : f16) outs(%es : tensor<1x2x1x6xf16>) -> tensor<1x2x1x6xf16>
  %s = linalg.generic {indexing_maps = [#qk_k, #qk_q, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%k_all, %q : tensor<1x2x6x4xf16>, tensor<1x2x1x4xf16>) outs(%fs : tensor<1x2x1x6xf16>) {
  ^bb0(%a: f16, %b: f16, %acc: f16):
    %m = arith.mulf %a, %b : f16
    %r = arith.addf %acc, %m : f16
    linalg.yield %r : f16
  } -> tensor<1x2x1x6xf16>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x2x1x6xf16>) outs(%es : tensor<1x2x1x6xf16>) -> tensor<1x2x1x6xf16>
  %eo = tensor.empty() : tensor<1x2x1x4xf16>
  %fo = linalg.fill ins(%zero : f16) outs(%eo : tensor<1x2x1x4xf16>) -> tensor<1x2x1x4xf16>
  %o = linalg.generic {indexing_maps = [#qk_k, #qk_s, #pv_o], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]}
      ins(%v_all, %p : tensor<1x2x6x4xf16>, tensor<1x2x1x6xf16>) outs(%fo : tensor<1x2x1x4xf16>) {
  ^bb0(%a: f16, %b: f16, %acc: f16):
    %m = arith.mulf %a, %b : f16
    %r = arith.addf %acc, %m : f16
    linalg.yield %r : f16
  } -> tensor<1x2x1x4xf16>
  return %o, %k_all : tensor<1x2x1x4xf16>, tensor<1x2x6x4xf16>
}

// -----

#id2 = affine_map<(t, s) -> (t, s)>

// Unbatched single-head decode: 2-D linalg.matmul for Q·Kᵀ (K transposed by linalg.transpose) and P·V, past [4, 4] concatenated along dim 0; raised as B = 1, H = 1 with reshapes around the kv ops, 2-D signature and results kept.
// CHECK-LABEL: func @unbatched_decode
// CHECK-SAME: (%[[Q:[a-z0-9_]+]]: tensor<1x4xf32>, %[[K:[a-z0-9_]+]]: tensor<1x4xf32>, %[[V:[a-z0-9_]+]]: tensor<1x4xf32>, %[[C:[a-z0-9_]+]]: !kv.cache<kv_heads = 1, head_dim = 4, capacity = 5, element = f32> {kv.layer = 0 : i64})
// CHECK-SAME: -> (tensor<1x4xf32>, tensor<5x4xf32>, tensor<5x4xf32>)
// CHECK: %[[POS:.*]] = arith.constant dense<4> : tensor<1xi32>
// CHECK: %[[K4:.*]] = tensor.expand_shape %[[K]] {{.*}} : tensor<1x4xf32> into tensor<1x1x1x4xf32>
// CHECK: %[[V4:.*]] = tensor.expand_shape %[[V]] {{.*}} : tensor<1x4xf32> into tensor<1x1x1x4xf32>
// CHECK: kv.append %[[C]][%[[POS]]], %[[K4]], %[[V4]]
// CHECK: %[[VK:.*]], %[[VV:.*]] = kv.view %[[C]]
// CHECK: %[[VK2:.*]] = tensor.collapse_shape %[[VK]] {{.*}} : tensor<1x1x5x4xf32> into tensor<5x4xf32>
// CHECK: %[[VV2:.*]] = tensor.collapse_shape %[[VV]] {{.*}} : tensor<1x1x5x4xf32> into tensor<5x4xf32>
// CHECK: %[[Q4:.*]] = tensor.expand_shape %[[Q]] {{.*}} : tensor<1x4xf32> into tensor<1x1x1x4xf32>
// CHECK: %[[LENS:.*]] = arith.constant dense<5> : tensor<1xi32>
// CHECK: %[[O:.*]] = kv.attention %[[Q4]], %[[C]], %[[LENS]] {scale = 5.000000e-01 : f32}
// CHECK: %[[O2:.*]] = tensor.collapse_shape %[[O]] {{.*}} : tensor<1x1x1x4xf32> into tensor<1x4xf32>
// CHECK-NOT: linalg.
// CHECK: return %[[O2]], %[[VK2]], %[[VV2]]
// CAP-LABEL: func @unbatched_decode
// CAP: %[[VK:.*]], %[[VV:.*]] = kv.view
// CAP: %[[SK:.*]] = tensor.extract_slice %[[VK]][0, 0, 0, 0] [1, 1, 5, 4] [1, 1, 1, 1] : tensor<1x1x16x4xf32> to tensor<1x1x5x4xf32>
// CAP: tensor.collapse_shape %[[SK]] {{.*}} into tensor<5x4xf32>
func.func @unbatched_decode(%q: tensor<1x4xf32>, %k: tensor<1x4xf32>, %v: tensor<1x4xf32>,
                            %past_k: tensor<4x4xf32>, %past_v: tensor<4x4xf32>)
    -> (tensor<1x4xf32>, tensor<5x4xf32>, tensor<5x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %k_all = tensor.concat dim(0) %past_k, %k : (tensor<4x4xf32>, tensor<1x4xf32>) -> tensor<5x4xf32>
  %v_all = tensor.concat dim(0) %past_v, %v : (tensor<4x4xf32>, tensor<1x4xf32>) -> tensor<5x4xf32>
  %ekt = tensor.empty() : tensor<4x5xf32>
  %kt = linalg.transpose ins(%k_all : tensor<5x4xf32>) outs(%ekt : tensor<4x5xf32>) permutation = [1, 0]
  %es = tensor.empty() : tensor<1x5xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es : tensor<1x5xf32>) -> tensor<1x5xf32>
  %s = linalg.matmul ins(%q, %kt : tensor<1x4xf32>, tensor<4x5xf32>) outs(%fs : tensor<1x5xf32>) -> tensor<1x5xf32>
  %ss = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%s : tensor<1x5xf32>) outs(%es : tensor<1x5xf32>) {
  ^bb0(%a: f32, %out: f32):
    %c = arith.constant 0.5 : f32
    %t = arith.mulf %c, %a : f32
    linalg.yield %t : f32
  } -> tensor<1x5xf32>
  %p = linalg.softmax dimension(1) ins(%ss : tensor<1x5xf32>) outs(%es : tensor<1x5xf32>) -> tensor<1x5xf32>
  %eo = tensor.empty() : tensor<1x4xf32>
  %fo = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x4xf32>) -> tensor<1x4xf32>
  %o = linalg.matmul ins(%p, %v_all : tensor<1x5xf32>, tensor<5x4xf32>) outs(%fo : tensor<1x4xf32>) -> tensor<1x4xf32>
  return %o, %k_all, %v_all : tensor<1x4xf32>, tensor<5x4xf32>, tensor<5x4xf32>
}

// -----

#id2 = affine_map<(t, s) -> (t, s)>
#row2 = affine_map<(t, s) -> (t)>
#mm_a = affine_map<(m, n, k) -> (m, k)>
#mm_bt = affine_map<(m, n, k) -> (n, k)>
#mm_c = affine_map<(m, n, k) -> (m, n)>

// Unbatched chunked prefill: 2 new tokens after 3 cached ones, Q·Kᵀ as linalg.matmul with transposed-B indexing_maps, q scaled by 1/2 before it, additive causal mask, softmax written out (linalg.reduce max, sub, exp, sum, div).
// CHECK-LABEL: func @unbatched_causal_prefill
// CHECK-SAME: !kv.cache<kv_heads = 1, head_dim = 4, capacity = 5, element = f32>
// CHECK-SAME: -> tensor<2x4xf32>
// CHECK: arith.constant dense<3> : tensor<1xi32>
// CHECK: kv.append {{.*}} : {{.*}}tensor<1x1x2x4xf32>
// CHECK: %[[Q4:.*]] = tensor.expand_shape %{{.*}} : tensor<2x4xf32> into tensor<1x1x2x4xf32>
// CHECK: arith.constant dense<5> : tensor<1xi32>
// CHECK: %[[O:.*]] = kv.attention %[[Q4]], {{.*}} {causal, scale = 5.000000e-01 : f32} : (tensor<1x1x2x4xf32>
// CHECK: %[[O2:.*]] = tensor.collapse_shape %[[O]] {{.*}} : tensor<1x1x2x4xf32> into tensor<2x4xf32>
// CHECK-NOT: linalg.
// CHECK-NOT: kv.view
// CHECK: return %[[O2]]
func.func @unbatched_causal_prefill(%q: tensor<2x4xf32>, %k: tensor<2x4xf32>, %v: tensor<2x4xf32>,
                                    %past_k: tensor<3x4xf32>, %past_v: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %k_all = tensor.concat dim(0) %past_k, %k : (tensor<3x4xf32>, tensor<2x4xf32>) -> tensor<5x4xf32>
  %v_all = tensor.concat dim(0) %past_v, %v : (tensor<3x4xf32>, tensor<2x4xf32>) -> tensor<5x4xf32>
  %eq = tensor.empty() : tensor<2x4xf32>
  %qs = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%q : tensor<2x4xf32>) outs(%eq : tensor<2x4xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 2.0 : f32
    %r = arith.divf %a, %c : f32
    linalg.yield %r : f32
  } -> tensor<2x4xf32>
  %es = tensor.empty() : tensor<2x5xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es : tensor<2x5xf32>) -> tensor<2x5xf32>
  %s = linalg.matmul indexing_maps = [#mm_a, #mm_bt, #mm_c]
      ins(%qs, %k_all : tensor<2x4xf32>, tensor<5x4xf32>) outs(%fs : tensor<2x5xf32>) -> tensor<2x5xf32>
  %causal = arith.constant dense<[[0.0, 0.0, 0.0, 0.0, 0xFF800000],
                                  [0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x5xf32>
  %x = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%s, %causal : tensor<2x5xf32>, tensor<2x5xf32>) outs(%es : tensor<2x5xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %u = arith.addf %a, %b : f32
    linalg.yield %u : f32
  } -> tensor<2x5xf32>
  %er = tensor.empty() : tensor<2xf32>
  %fm = linalg.fill ins(%ninf : f32) outs(%er : tensor<2xf32>) -> tensor<2xf32>
  %max = linalg.reduce ins(%x : tensor<2x5xf32>) outs(%fm : tensor<2xf32>) dimensions = [1]
    (%in: f32, %acc: f32) {
      %m = arith.maximumf %in, %acc : f32
      linalg.yield %m : f32
    }
  %e = linalg.generic {indexing_maps = [#id2, #row2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x, %max : tensor<2x5xf32>, tensor<2xf32>) outs(%es : tensor<2x5xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %d = arith.subf %a, %b : f32
    %y = math.exp %d : f32
    linalg.yield %y : f32
  } -> tensor<2x5xf32>
  %fz = linalg.fill ins(%zero : f32) outs(%er : tensor<2xf32>) -> tensor<2xf32>
  %sum = linalg.generic {indexing_maps = [#id2, #row2], iterator_types = ["parallel", "reduction"]}
      ins(%e : tensor<2x5xf32>) outs(%fz : tensor<2xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %y = arith.addf %acc, %a : f32
    linalg.yield %y : f32
  } -> tensor<2xf32>
  %p = linalg.generic {indexing_maps = [#id2, #row2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%e, %sum : tensor<2x5xf32>, tensor<2xf32>) outs(%es : tensor<2x5xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %d = arith.divf %a, %b : f32
    linalg.yield %d : f32
  } -> tensor<2x5xf32>
  %eo = tensor.empty() : tensor<2x4xf32>
  %fo = linalg.fill ins(%zero : f32) outs(%eo : tensor<2x4xf32>) -> tensor<2x4xf32>
  %o = linalg.matmul ins(%p, %v_all : tensor<2x5xf32>, tensor<5x4xf32>) outs(%fo : tensor<2x4xf32>) -> tensor<2x4xf32>
  return %o : tensor<2x4xf32>
}
