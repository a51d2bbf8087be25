// RUN: kvopt-opt %s -split-input-file -kv-paginate=page-size=16 --mlir-print-local-scope | FileCheck %s
// RUN: kvopt-opt %s -split-input-file -kv-paginate=page-size=1 --mlir-print-local-scope | FileCheck %s --check-prefix=ONE

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 100, element = f16>

// A cache argument becomes paged and gains a block table right after it;
// every op on the cache, through share views too, uses that table.
// CHECK-LABEL: func @args
// CHECK-SAME: (%[[C:.*]]: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 100, element = f16, layout = #kv.layout<paged, page_size = 16>>, %[[BT:.*]]: tensor<?x7xi32>, %[[POS:.*]]: tensor<2xi32>
// ONE-LABEL: func @args
// ONE-SAME: layout = #kv.layout<paged, page_size = 1>>, %{{.*}}: tensor<?x100xi32>
func.func @args(%c: !c, %pos: tensor<2xi32>, %k: tensor<2x8x1x128xf16>, %q: tensor<2x16x1x128xf16>) -> tensor<2x16x1x128xf16> {
  // CHECK: kv.append %[[C]][%[[POS]]], %{{.*}}, %{{.*}} block_table %[[BT]]
  kv.append %c[%pos], %k, %k : !c, tensor<2xi32>, tensor<2x8x1x128xf16>, tensor<2x8x1x128xf16>
  // CHECK: %[[S:.*]] = kv.share_cache %[[C]]
  %s = kv.share_cache %c {layer = 1} : !c -> !c
  // CHECK: kv.attention %{{.*}}, %[[S]], %{{.*}} block_table %[[BT]]
  %o = kv.attention %q, %s, %pos : (tensor<2x16x1x128xf16>, !c, tensor<2xi32>) -> tensor<2x16x1x128xf16>
  // CHECK: kv.view %[[C]] block_table %[[BT]]
  %vk, %vv = kv.view %c : !c -> tensor<2x8x100x128xf16>, tensor<2x8x100x128xf16>
  return %o : tensor<2x16x1x128xf16>
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

// A cache created inside the function gets its block table as a new last
// argument; latent caches are paged the same way.
// CHECK-LABEL: func @alloc
// CHECK-SAME: %{{.*}}: tensor<1xi32>, %[[BT:.*]]: tensor<?x4xi32>)
func.func @alloc(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<1x16x1x64xbf16>, %lens: tensor<1xi32>) -> tensor<1x16x1x512xbf16> {
  // CHECK: %[[C:.*]] = kv.alloc_cache {layer = 0 : i64} : !kv.latent_cache<{{.*}}layout = #kv.layout<paged, page_size = 16>>
  %c = kv.alloc_cache {layer = 0} : !l
  // CHECK: kv.mla_attention %{{.*}}, %{{.*}}, %[[C]], %{{.*}} block_table %[[BT]]
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x16x1x64xbf16>, !l, tensor<1xi32>) -> tensor<1x16x1x512xbf16>
  return %o : tensor<1x16x1x512xbf16>
}

// -----

!p = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 32>>

// Already paged caches keep their page size and block table.
// CHECK-LABEL: func @already_paged
// CHECK-SAME: (%{{.*}}: !kv.cache<{{.*}}page_size = 32>>, %{{.*}}: tensor<2x2xi32>, %{{.*}}: tensor<2xi32>)
// CHECK-NOT: tensor<?x
func.func @already_paged(%c: !p, %bt: tensor<2x2xi32>, %pos: tensor<2xi32>) {
  return
}

// -----

!c = !kv.cache<kv_heads = 1, head_dim = 64, capacity = 48, element = f32>

// Calls forward the caller's block table to the callee's new argument.
// CHECK-LABEL: func @callee
// CHECK-SAME: (%{{.*}}: !kv.cache<{{.*}}>, %{{.*}}: tensor<?x3xi32>)
func.func @callee(%c: !c) {
  return
}
// CHECK-LABEL: func @caller
// CHECK-SAME: (%[[C:.*]]: !kv.cache<{{.*}}>, %[[BT:.*]]: tensor<?x3xi32>)
// CHECK: call @callee(%[[C]], %[[BT]])
func.func @caller(%c: !c) {
  call @callee(%c) : (!c) -> ()
  return
}
