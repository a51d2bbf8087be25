// RUN: kvopt-opt %s -kv-share-layers=group-size=2 | FileCheck %s --check-prefix=PAIRS

!c = !kv.cache<kv_heads = 2, head_dim = 16, capacity = 32, element = f32>

// Caches made with kv.alloc_cache are shared the same way; the sharing
// layer's alloc disappears. Callers of a function whose cache argument goes
// away drop the operand.
// PAIRS-LABEL: func @allocs
// PAIRS: %[[A0:.*]] = kv.alloc_cache {layer = 4 : i64}
// PAIRS-NEXT: kv.share_cache %[[A0]] {layer = 5 : i64}
// PAIRS-NOT: kv.alloc_cache
func.func @allocs(%pos: tensor<1xi32>, %k: tensor<1x2x1x16xf32>) {
  %a0 = kv.alloc_cache {layer = 4} : !c
  %a1 = kv.alloc_cache {layer = 5} : !c
  kv.append %a0[%pos], %k, %k : !c, tensor<1xi32>, tensor<1x2x1x16xf32>, tensor<1x2x1x16xf32>
  kv.append %a1[%pos], %k, %k : !c, tensor<1xi32>, tensor<1x2x1x16xf32>, tensor<1x2x1x16xf32>
  return
}
// PAIRS-LABEL: func @callee
// PAIRS-SAME: (%{{.*}}: !kv_cache {kv.layer = 6 : i64})
func.func @callee(%c6: !c {kv.layer = 6 : i64}, %c7: !c {kv.layer = 7 : i64}) {
  return
}
// PAIRS-LABEL: func @caller
// PAIRS: call @callee(%{{[a-z0-9]+}}) :
func.func @caller(%x: !c, %y: !c) {
  call @callee(%x, %y) : (!c, !c) -> ()
  return
}
