// RUN: kvopt-opt %s -split-input-file -kv-fuse-append | FileCheck %s

!c = !kv.cache<kv_heads = 2, head_dim = 16, capacity = 32, element = f16,
               key = #kv.quant<int4, axis = channel, group = 8, recent = 7>, value = #kv.quant<int4, group = 16>>

// RoPE of the appended keys at the append's positions folds into the append:
// rotate, quantize (the cache's int4 encoding) and store in one op.
// CHECK-LABEL: func @fold
// CHECK-NOT: kv.rope
// CHECK: kv.append %{{.*}}[%[[POS:.*]]], %[[K:[a-z0-9]+]], %{{.*}} {rope_theta = 1.000000e+04 : f64}
func.func @fold(%c: !c, %pos: tensor<1xi32>, %k: tensor<1x2x1x16xf16>, %v: tensor<1x2x1x16xf16>) {
  %r = kv.rope %k, %pos {theta = 10000.0 : f64} : tensor<1x2x1x16xf16>, tensor<1xi32> -> tensor<1x2x1x16xf16>
  kv.append %c[%pos], %r, %v : !c, tensor<1xi32>, tensor<1x2x1x16xf16>, tensor<1x2x1x16xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 16, capacity = 32, element = f16>

// Equal constant positions count as the same positions.
// CHECK-LABEL: func @constant_positions
// CHECK-NOT: kv.rope
// CHECK: kv.append {{.*}} {rope_theta = 5.000000e+05 : f64}
func.func @constant_positions(%c: !c, %k: tensor<1x2x1x16xf16>) {
  %p0 = arith.constant dense<3> : tensor<1xi32>
  %p1 = arith.constant dense<3> : tensor<1xi32>
  %r = kv.rope %k, %p0 {theta = 500000.0 : f64} : tensor<1x2x1x16xf16>, tensor<1xi32> -> tensor<1x2x1x16xf16>
  kv.append %c[%p1], %r, %k : !c, tensor<1xi32>, tensor<1x2x1x16xf16>, tensor<1x2x1x16xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 2, head_dim = 16, capacity = 32, element = f16>

// Rotated keys used elsewhere, rotation at other positions, and an append
// that already rotates are left alone.
// CHECK-LABEL: func @leave_alone
// CHECK: %[[R:.*]] = kv.rope
// CHECK-NEXT: kv.append %{{.*}}, %[[R]], %{{.*}} :
// CHECK-NEXT: %[[S:.*]] = kv.rope
// CHECK-NEXT: kv.append %{{.*}}, %[[S]], %{{.*}} :
// CHECK-NEXT: %[[T:.*]] = kv.rope
// CHECK-NEXT: kv.append %{{.*}}, %[[T]], %{{.*}} {rope_theta = 1.000000e+04 : f64}
func.func @leave_alone(%c: !c, %pos: tensor<1xi32>, %other: tensor<1xi32>, %k: tensor<1x2x1x16xf16>)
    -> tensor<1x2x1x16xf16> {
  %r = kv.rope %k, %pos {theta = 10000.0 : f64} : tensor<1x2x1x16xf16>, tensor<1xi32> -> tensor<1x2x1x16xf16>
  kv.append %c[%pos], %r, %k : !c, tensor<1xi32>, tensor<1x2x1x16xf16>, tensor<1x2x1x16xf16>
  %s = kv.rope %k, %other {theta = 10000.0 : f64} : tensor<1x2x1x16xf16>, tensor<1xi32> -> tensor<1x2x1x16xf16>
  kv.append %c[%pos], %s, %k : !c, tensor<1xi32>, tensor<1x2x1x16xf16>, tensor<1x2x1x16xf16>
  %t = kv.rope %k, %pos {theta = 10000.0 : f64} : tensor<1x2x1x16xf16>, tensor<1xi32> -> tensor<1x2x1x16xf16>
  kv.append %c[%pos], %t, %k {rope_theta = 10000.0 : f64} : !c, tensor<1xi32>, tensor<1x2x1x16xf16>, tensor<1x2x1x16xf16>
  return %r : tensor<1x2x1x16xf16>
}
