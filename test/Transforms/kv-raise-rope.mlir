// RUN: kvopt-opt %s -split-input-file -kv-raise-rope=emit-remarks -verify-diagnostics | FileCheck %s
// kv-raise-rope on the kv ops kv-raise-attention leaves: rotate-half RoPE
// written in linalg/tensor/arith/math on appended keys and attention queries
// becomes kv.rope; everything that is not exactly that rotation at the
// positions the kv ops imply stays, with a remark saying why. Caches of 2
// KV heads of dimension 8 (pairs (i, i + 4)), f32.

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// Rotated new keys (slices, linalg.negf, concat; constant tables for position
// 5, theta 10000) become kv.rope at the append's positions.
// CHECK-LABEL: func @keys
// CHECK-SAME: (%[[C:[a-z0-9]+]]: !kv_cache, %[[K:[a-z0-9]+]]: tensor<1x2x1x8xf32>
// CHECK: %[[P:.*]] = arith.constant dense<5> : tensor<1xi32>
// CHECK: %[[R:.*]] = kv.rope %[[K]], %[[P]] {theta = 1.000000e+04 : f64}
// CHECK: kv.append %[[C]][%{{.*}}], %[[R]], %{{.*}} :
// CHECK-NOT: linalg
// CHECK-NOT: tensor.concat
func.func @keys(%c: !c, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>) {
  %cos = arith.constant dense<[[2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01, 2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01]]> : tensor<1x8xf32>
  %sin = arith.constant dense<[[-9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03, -9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03]]> : tensor<1x8xf32>
  %lo = tensor.extract_slice %k[0, 0, 0, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %hi = tensor.extract_slice %k[0, 0, 0, 4] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %eh = tensor.empty() : tensor<1x2x1x4xf32>
  %neg = linalg.negf ins(%hi : tensor<1x2x1x4xf32>) outs(%eh : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %rot = tensor.concat dim(3) %neg, %lo : (tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x1x8xf32>
  %e = tensor.empty() : tensor<1x2x1x8xf32>
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

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// Rotated queries of kv.attention sit at seq_lens - Tq = 5; theta 500000 is
// inferred from the table.
// CHECK-LABEL: func @queries
// CHECK-SAME: %[[Q:[a-z0-9]+]]: tensor<1x2x1x8xf32>
// CHECK: %[[P:.*]] = arith.constant dense<5> : tensor<1xi32>
// CHECK: %[[R:.*]] = kv.rope %[[Q]], %[[P]] {theta = 5.000000e+05 : f64}
// CHECK: kv.attention %[[R]],
func.func @queries(%c: !c, %q: tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32> {
  %cos = arith.constant dense<[[2.83662200e-01, 9.82374370e-01, 9.99975026e-01, 9.99999940e-01, 2.83662200e-01, 9.82374370e-01, 9.99975026e-01, 9.99999940e-01]]> : tensor<1x8xf32>
  %sin = arith.constant dense<[[-9.58924294e-01, 1.86924130e-01, 7.07100891e-03, 2.65914801e-04, -9.58924294e-01, 1.86924130e-01, 7.07100891e-03, 2.65914801e-04]]> : tensor<1x8xf32>
  %lo = tensor.extract_slice %q[0, 0, 0, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %hi = tensor.extract_slice %q[0, 0, 0, 4] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %eh = tensor.empty() : tensor<1x2x1x4xf32>
  %neg = linalg.negf ins(%hi : tensor<1x2x1x4xf32>) outs(%eh : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %rot = tensor.concat dim(3) %neg, %lo : (tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x1x8xf32>
  %e = tensor.empty() : tensor<1x2x1x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id, #td, #td, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%q, %rot, %cos, %sin : tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>, tensor<1x8xf32>, tensor<1x8xf32>) outs(%e : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %ro: f32, %cs: f32, %sn: f32, %o: f32):
    %ac = arith.mulf %a, %cs : f32
    %rs = arith.mulf %ro, %sn : f32
    %y = arith.addf %ac, %rs : f32
    linalg.yield %y : f32
  } -> tensor<1x2x1x8xf32>
  %lens = arith.constant dense<6> : tensor<1xi32>
  %o = kv.attention %r, %c, %lens : (tensor<1x2x1x8xf32>, !c, tensor<1xi32>) -> tensor<1x2x1x8xf32>
  return %o : tensor<1x2x1x8xf32>
}

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>
#btd = affine_map<(b, h, t, d) -> (b, t, d)>

// Two tokens per sequence at different start positions (3 and 9), with a
// per-sequence [B, T, D] table: positions come per sequence.
// CHECK-LABEL: func @per_sequence
// CHECK: %[[P:.*]] = arith.constant dense<[3, 9]> : tensor<2xi32>
// CHECK: kv.rope %{{.*}}, %[[P]] {theta = 1.000000e+04 : f64} : tensor<2x2x2x8xf32>
func.func @per_sequence(%c: !c, %k: tensor<2x2x2x8xf32>, %v: tensor<2x2x2x8xf32>) {
  %cos = arith.constant dense<[[[-9.89992499e-01, 9.55336511e-01, 9.99550045e-01, 9.99995530e-01, -9.89992499e-01, 9.55336511e-01, 9.99550045e-01, 9.99995530e-01], [-6.53643608e-01, 9.21060979e-01, 9.99200106e-01, 9.99992013e-01, -6.53643608e-01, 9.21060979e-01, 9.99200106e-01, 9.99992013e-01]], [[-9.11130250e-01, 6.21609986e-01, 9.95952725e-01, 9.99959528e-01, -9.11130250e-01, 6.21609986e-01, 9.95952725e-01, 9.99959528e-01], [-8.39071512e-01, 5.40302277e-01, 9.95004177e-01, 9.99949992e-01, -8.39071512e-01, 5.40302277e-01, 9.95004177e-01, 9.99949992e-01]]]> : tensor<2x2x8xf32>
  %sin = arith.constant dense<[[[1.41120002e-01, 2.95520216e-01, 2.99955010e-02, 2.99999560e-03, 1.41120002e-01, 2.95520216e-01, 2.99955010e-02, 2.99999560e-03], [-7.56802499e-01, 3.89418334e-01, 3.99893336e-02, 3.99998948e-03, -7.56802499e-01, 3.89418334e-01, 3.99893336e-02, 3.99998948e-03]], [[4.12118495e-01, 7.83326924e-01, 8.98785517e-02, 8.99987854e-03, 4.12118495e-01, 7.83326924e-01, 8.98785517e-02, 8.99987854e-03], [-5.44021130e-01, 8.41470957e-01, 9.98334140e-02, 9.99983307e-03, -5.44021130e-01, 8.41470957e-01, 9.98334140e-02, 9.99983307e-03]]]> : tensor<2x2x8xf32>
  %lo = tensor.extract_slice %k[0, 0, 0, 0] [2, 2, 2, 4] [1, 1, 1, 1] : tensor<2x2x2x8xf32> to tensor<2x2x2x4xf32>
  %hi = tensor.extract_slice %k[0, 0, 0, 4] [2, 2, 2, 4] [1, 1, 1, 1] : tensor<2x2x2x8xf32> to tensor<2x2x2x4xf32>
  %eh = tensor.empty() : tensor<2x2x2x4xf32>
  %neg = linalg.negf ins(%hi : tensor<2x2x2x4xf32>) outs(%eh : tensor<2x2x2x4xf32>) -> tensor<2x2x2x4xf32>
  %rot = tensor.concat dim(3) %neg, %lo : (tensor<2x2x2x4xf32>, tensor<2x2x2x4xf32>) -> tensor<2x2x2x8xf32>
  %e = tensor.empty() : tensor<2x2x2x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id, #btd, #btd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%k, %rot, %cos, %sin : tensor<2x2x2x8xf32>, tensor<2x2x2x8xf32>, tensor<2x2x8xf32>, tensor<2x2x8xf32>) outs(%e : tensor<2x2x2x8xf32>) {
  ^bb0(%a: f32, %ro: f32, %cs: f32, %sn: f32, %o: f32):
    %ac = arith.mulf %a, %cs : f32
    %rs = arith.mulf %ro, %sn : f32
    %y = arith.addf %ac, %rs : f32
    linalg.yield %y : f32
  } -> tensor<2x2x2x8xf32>
  %pos = arith.constant dense<[3, 9]> : tensor<2xi32>
  kv.append %c[%pos], %r, %v : !c, tensor<2xi32>, tensor<2x2x2x8xf32>, tensor<2x2x2x8xf32>
  return
}

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// cos/sin computed in the graph from linalg.index (position 5 + t, frequency
// 10000^(-2 (d mod 4) / 8)) and rotate_half as a generic with index
// arithmetic reading the partner through tensor.extract.
// CHECK-LABEL: func @computed
// CHECK-SAME: %[[K:[a-z0-9]+]]: tensor<1x2x1x8xf32>
// CHECK: kv.rope %[[K]], %{{.*}} {theta = 1.000000e+04 : f64}
// CHECK-NOT: math.cos
// CHECK-NOT: tensor.extract
func.func @computed(%c: !c, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>) {
  %et = tensor.empty() : tensor<1x8xf32>
  %ang = linalg.generic {indexing_maps = [affine_map<(t, d) -> (t, d)>], iterator_types = ["parallel", "parallel"]} outs(%et : tensor<1x8xf32>) {
  ^bb0(%o: f32):
    %t = linalg.index 0 : index
    %d = linalg.index 1 : index
    %c4 = arith.constant 4 : index
    %c5 = arith.constant 5 : index
    %i = arith.remui %d, %c4 : index
    %p = arith.addi %t, %c5 : index
    %ii = arith.index_cast %i : index to i64
    %pi = arith.index_cast %p : index to i64
    %if = arith.sitofp %ii : i64 to f32
    %pf = arith.sitofp %pi : i64 to f32
    %m = arith.constant -0.25 : f32
    %ex = arith.mulf %if, %m : f32
    %base = arith.constant 10000.0 : f32
    %freq = math.powf %base, %ex : f32
    %a = arith.mulf %pf, %freq : f32
    linalg.yield %a : f32
  } -> tensor<1x8xf32>
  %cos = linalg.generic {indexing_maps = [affine_map<(t, d) -> (t, d)>, affine_map<(t, d) -> (t, d)>], iterator_types = ["parallel", "parallel"]} ins(%ang : tensor<1x8xf32>) outs(%et : tensor<1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %y = math.cos %a : f32
    linalg.yield %y : f32
  } -> tensor<1x8xf32>
  %sin = linalg.generic {indexing_maps = [affine_map<(t, d) -> (t, d)>, affine_map<(t, d) -> (t, d)>], iterator_types = ["parallel", "parallel"]} ins(%ang : tensor<1x8xf32>) outs(%et : tensor<1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %y = math.sin %a : f32
    linalg.yield %y : f32
  } -> tensor<1x8xf32>
  %e = tensor.empty() : tensor<1x2x1x8xf32>
  %cosb = linalg.broadcast ins(%cos : tensor<1x8xf32>) outs(%e : tensor<1x2x1x8xf32>) dimensions = [0, 1]
  %sinb = linalg.broadcast ins(%sin : tensor<1x8xf32>) outs(%e : tensor<1x2x1x8xf32>) dimensions = [0, 1]
  %rot = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%e : tensor<1x2x1x8xf32>) {
  ^bb0(%o: f32):
    %b = linalg.index 0 : index
    %h = linalg.index 1 : index
    %t = linalg.index 2 : index
    %d = linalg.index 3 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %dd = arith.addi %d, %c4 : index
    %partner = arith.remui %dd, %c8 : index
    %x = tensor.extract %k[%b, %h, %t, %partner] : tensor<1x2x1x8xf32>
    %nx = arith.negf %x : f32
    %first = arith.cmpi ult, %d, %c4 : index
    %y = arith.select %first, %nx, %x : f32
    linalg.yield %y : f32
  } -> tensor<1x2x1x8xf32>
  %kc = linalg.mul ins(%k, %cosb : tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>) outs(%e : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  %ks = linalg.mul ins(%rot, %sinb : tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>) outs(%e : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  %r = linalg.add ins(%kc, %ks : tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>) outs(%e : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  %pos = arith.constant dense<5> : tensor<1xi32>
  kv.append %c[%pos], %r, %v : !c, tensor<1xi32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>
  return
}

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// Left alone: the table is for position 4, the keys are appended at 5.
// CHECK-LABEL: func @wrong_position
// CHECK-NOT: kv.rope
func.func @wrong_position(%c: !c, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>) {
  %cos = arith.constant dense<[[-6.53643608e-01, 9.21060979e-01, 9.99200106e-01, 9.99992013e-01, -6.53643608e-01, 9.21060979e-01, 9.99200106e-01, 9.99992013e-01]]> : tensor<1x8xf32>
  %sin = arith.constant dense<[[-7.56802499e-01, 3.89418334e-01, 3.99893336e-02, 3.99998948e-03, -7.56802499e-01, 3.89418334e-01, 3.99893336e-02, 3.99998948e-03]]> : tensor<1x8xf32>
  %lo = tensor.extract_slice %k[0, 0, 0, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %hi = tensor.extract_slice %k[0, 0, 0, 4] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %eh = tensor.empty() : tensor<1x2x1x4xf32>
  %neg = linalg.negf ins(%hi : tensor<1x2x1x4xf32>) outs(%eh : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %rot = tensor.concat dim(3) %neg, %lo : (tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x1x8xf32>
  %e = tensor.empty() : tensor<1x2x1x8xf32>
  // expected-remark @+1 {{kv-raise-rope: not raised: the coefficients are not cos/sin of p * theta^(-2i/D)}}
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

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// Left alone: one cos entry is off by 1e-3 (more than f32 rounding).
// CHECK-LABEL: func @perturbed_table
// CHECK-NOT: kv.rope
func.func @perturbed_table(%c: !c, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>) {
  %cos = arith.constant dense<[[2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01, 2.83662200e-01, 8.77582550e-01, 9.99750257e-01, 9.99987483e-01]]> : tensor<1x8xf32>
  %sin = arith.constant dense<[[-9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03, -9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03]]> : tensor<1x8xf32>
  %lo = tensor.extract_slice %k[0, 0, 0, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %hi = tensor.extract_slice %k[0, 0, 0, 4] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %eh = tensor.empty() : tensor<1x2x1x4xf32>
  %neg = linalg.negf ins(%hi : tensor<1x2x1x4xf32>) outs(%eh : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %rot = tensor.concat dim(3) %neg, %lo : (tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x1x8xf32>
  %e = tensor.empty() : tensor<1x2x1x8xf32>
  // expected-remark @+1 {{kv-raise-rope: not raised: the coefficients are not cos/sin of p * theta^(-2i/D)}}
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

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// Left alone: x * cos - rotate_half(x) * sin rotates the other way.
// CHECK-LABEL: func @opposite_direction
// CHECK-NOT: kv.rope
func.func @opposite_direction(%c: !c, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>) {
  %cos = arith.constant dense<[[2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01, 2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01]]> : tensor<1x8xf32>
  %sin = arith.constant dense<[[-9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03, -9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03]]> : tensor<1x8xf32>
  %lo = tensor.extract_slice %k[0, 0, 0, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %hi = tensor.extract_slice %k[0, 0, 0, 4] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %eh = tensor.empty() : tensor<1x2x1x4xf32>
  %neg = linalg.negf ins(%hi : tensor<1x2x1x4xf32>) outs(%eh : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %rot = tensor.concat dim(3) %neg, %lo : (tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x1x8xf32>
  %e = tensor.empty() : tensor<1x2x1x8xf32>
  // expected-remark @+1 {{kv-raise-rope: not raised: the coefficients are not cos/sin of p * theta^(-2i/D)}}
  %r = linalg.generic {indexing_maps = [#id, #id, #td, #td, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%k, %rot, %cos, %sin : tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>, tensor<1x8xf32>, tensor<1x8xf32>) outs(%e : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %ro: f32, %cs: f32, %sn: f32, %o: f32):
    %ac = arith.mulf %a, %cs : f32
    %rs = arith.mulf %ro, %sn : f32
    %y = arith.subf %ac, %rs : f32
    linalg.yield %y : f32
  } -> tensor<1x2x1x8xf32>
  %pos = arith.constant dense<5> : tensor<1xi32>
  kv.append %c[%pos], %r, %v : !c, tensor<1xi32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>
  return
}

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// Left alone: rotate_half splits the heads, not the head dim.
// CHECK-LABEL: func @wrong_dim
// CHECK-NOT: kv.rope
func.func @wrong_dim(%c: !c, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>) {
  %cos = arith.constant dense<[[2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01, 2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01]]> : tensor<1x8xf32>
  %sin = arith.constant dense<[[-9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03, -9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03]]> : tensor<1x8xf32>
  %lo = tensor.extract_slice %k[0, 0, 0, 0] [1, 1, 1, 8] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x1x1x8xf32>
  %hi = tensor.extract_slice %k[0, 1, 0, 0] [1, 1, 1, 8] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x1x1x8xf32>
  %eh = tensor.empty() : tensor<1x1x1x8xf32>
  %neg = linalg.negf ins(%hi : tensor<1x1x1x8xf32>) outs(%eh : tensor<1x1x1x8xf32>) -> tensor<1x1x1x8xf32>
  %rot = tensor.concat dim(1) %neg, %lo : (tensor<1x1x1x8xf32>, tensor<1x1x1x8xf32>) -> tensor<1x2x1x8xf32>
  %e = tensor.empty() : tensor<1x2x1x8xf32>
  // expected-remark @+1 {{kv-raise-rope: not raised: element 0 mixes elements other than the rotate-half pair (i, i + D/2) of one token}}
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

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// Left alone: GPT-J interleaved pairs (2i, 2i + 1); kv.rope is rotate-half only.
// CHECK-LABEL: func @interleaved
// CHECK-NOT: kv.rope
func.func @interleaved(%c: !c, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>) {
  %cos = arith.constant dense<[[2.83662200e-01, 2.83662200e-01, 8.77582550e-01, 8.77582550e-01, 9.98750269e-01, 9.98750269e-01, 9.99987483e-01, 9.99987483e-01]]> : tensor<1x8xf32>
  %sin = arith.constant dense<[[-9.58924294e-01, -9.58924294e-01, 4.79425550e-01, 4.79425550e-01, 4.99791689e-02, 4.99791689e-02, 4.99997940e-03, 4.99997940e-03]]> : tensor<1x8xf32>
  %e = tensor.empty() : tensor<1x2x1x8xf32>
  %rot = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%e : tensor<1x2x1x8xf32>) {
  ^bb0(%o: f32):
    %b = linalg.index 0 : index
    %h = linalg.index 1 : index
    %t = linalg.index 2 : index
    %d = linalg.index 3 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %odd = arith.remui %d, %c2 : index
    %base = arith.subi %d, %odd : index
    %flip = arith.subi %c1, %odd : index
    %partner = arith.addi %base, %flip : index
    %x = tensor.extract %k[%b, %h, %t, %partner] : tensor<1x2x1x8xf32>
    %nx = arith.negf %x : f32
    %even = arith.cmpi eq, %odd, %c1 : index
    %y = arith.select %even, %x, %nx : f32
    linalg.yield %y : f32
  } -> tensor<1x2x1x8xf32>
  // expected-remark @+1 {{kv-raise-rope: not raised: element 0 mixes elements other than the rotate-half pair (i, i + D/2) of one token}}
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

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// Left alone: x * x is not linear in x.
// CHECK-LABEL: func @nonlinear
// CHECK-NOT: kv.rope
func.func @nonlinear(%c: !c, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>) {
  %cos = arith.constant dense<[[2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01, 2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01]]> : tensor<1x8xf32>
  %sin = arith.constant dense<[[-9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03, -9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03]]> : tensor<1x8xf32>
  %lo = tensor.extract_slice %k[0, 0, 0, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %hi = tensor.extract_slice %k[0, 0, 0, 4] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %eh = tensor.empty() : tensor<1x2x1x4xf32>
  %neg = linalg.negf ins(%hi : tensor<1x2x1x4xf32>) outs(%eh : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %rot = tensor.concat dim(3) %neg, %lo : (tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x1x8xf32>
  %e = tensor.empty() : tensor<1x2x1x8xf32>
  // expected-remark @+1 {{kv-raise-rope: not raised: a product of two unknown values (not a rotation)}}
  %r = linalg.generic {indexing_maps = [#id, #id, #td, #td, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%k, %rot, %cos, %sin : tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>, tensor<1x8xf32>, tensor<1x8xf32>) outs(%e : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %ro: f32, %cs: f32, %sn: f32, %o: f32):
    %ac = arith.mulf %a, %a : f32
    %rs = arith.mulf %ro, %sn : f32
    %y = arith.addf %ac, %rs : f32
    linalg.yield %y : f32
  } -> tensor<1x2x1x8xf32>
  %pos = arith.constant dense<5> : tensor<1xi32>
  kv.append %c[%pos], %r, %v : !c, tensor<1xi32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>
  return
}

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// Left alone: a rotation that feeds no kv op has no known positions (it is
// not even a candidate, so there is no remark).
// CHECK-LABEL: func @no_kv_user
// CHECK-NOT: kv.rope
// CHECK: linalg.generic
func.func @no_kv_user(%k: tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32> {
  %cos = arith.constant dense<[[2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01, 2.83662200e-01, 8.77582550e-01, 9.98750269e-01, 9.99987483e-01]]> : tensor<1x8xf32>
  %sin = arith.constant dense<[[-9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03, -9.58924294e-01, 4.79425550e-01, 4.99791689e-02, 4.99997940e-03]]> : tensor<1x8xf32>
  %lo = tensor.extract_slice %k[0, 0, 0, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %hi = tensor.extract_slice %k[0, 0, 0, 4] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x8xf32> to tensor<1x2x1x4xf32>
  %eh = tensor.empty() : tensor<1x2x1x4xf32>
  %neg = linalg.negf ins(%hi : tensor<1x2x1x4xf32>) outs(%eh : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %rot = tensor.concat dim(3) %neg, %lo : (tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x1x8xf32>
  %e = tensor.empty() : tensor<1x2x1x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id, #td, #td, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%k, %rot, %cos, %sin : tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>, tensor<1x8xf32>, tensor<1x8xf32>) outs(%e : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %ro: f32, %cs: f32, %sn: f32, %o: f32):
    %ac = arith.mulf %a, %cs : f32
    %rs = arith.mulf %ro, %sn : f32
    %y = arith.addf %ac, %rs : f32
    linalg.yield %y : f32
  } -> tensor<1x2x1x8xf32>
  return %r : tensor<1x2x1x8xf32>
}

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 8, capacity = 16, element = f32>
#id = affine_map<(b, h, t, d) -> (b, h, t, d)>
#td = affine_map<(b, h, t, d) -> (t, d)>

// Keys that are only scaled are no rotation: untouched, no remark.
// CHECK-LABEL: func @scaled_only
// CHECK-NOT: kv.rope
// CHECK: linalg.generic
func.func @scaled_only(%c: !c, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>) {
  %e = tensor.empty() : tensor<1x2x1x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%k : tensor<1x2x1x8xf32>) outs(%e : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %h = arith.constant 0.5 : f32
    %y = arith.mulf %a, %h : f32
    linalg.yield %y : f32
  } -> tensor<1x2x1x8xf32>
  %pos = arith.constant dense<5> : tensor<1xi32>
  kv.append %c[%pos], %r, %v : !c, tensor<1xi32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>
  return
}
