// RUN: not kvopt-opt %s -kv-mha-to-gqa=kv-heads=0 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not kvopt-opt %s -kv-mha-to-gqa=kv-heads=3 2>&1 | FileCheck %s --check-prefix=DIVIDE
// RUN: kvopt-opt %s -kv-mha-to-gqa=kv-heads=2 -verify-diagnostics -o /dev/null
// Bad options name the option; IR the pass cannot convert gets a remark.

// ZERO: error: kv-mha-to-gqa: option 'kv-heads' must be positive, got 0
// DIVIDE: error: kv-mha-to-gqa: option 'kv-heads' = 3 does not divide the 4 KV heads of argument 0
func.func @other_keys(%c: !kv.cache<kv_heads = 4, head_dim = 8, capacity = 16, element = f32>, %k: tensor<2x4x1x8xf32>) {
  %pos = arith.constant dense<5> : tensor<2xi32>
  // expected-remark @+1 {{kv-mha-to-gqa: left alone: keys is not a linalg.transpose [0, 2, 1, 3] of the projection}}
  kv.append %c[%pos], %k, %k : !kv.cache<kv_heads = 4, head_dim = 8, capacity = 16, element = f32>, tensor<2xi32>, tensor<2x4x1x8xf32>, tensor<2x4x1x8xf32>
  return
}
