// RUN: kvopt-opt %s -split-input-file -kv-export-layout -o /dev/null | FileCheck %s
// RUN: not kvopt-opt %s -split-input-file -kv-export-layout=default-page-size=0 -o /dev/null 2>&1 | FileCheck %s --check-prefix=BAD
// The runtime's layout JSON for the module's caches (docs/CacheLayout.md).

// BAD: error: kv-export-layout: option 'default-page-size' must be in 1..4096, got 0

// Four layers; layers 2 and 3 read the caches of layers 0 and 1, so the
// runtime pools two caches. Contiguous caches get the default page size.
// CHECK: "element": "f16",
// CHECK: "head_dim": 128,
// CHECK: "key": {
// CHECK-NEXT: "axis": "channel",
// CHECK-NEXT: "group": 16,
// CHECK-NEXT: "kind": "int4",
// CHECK-NEXT: "recent": 15,
// CHECK-NEXT: "scale": "f16",
// CHECK-NEXT: "sinks": 0,
// CHECK-NEXT: "symmetric": false
// CHECK: "kind": "kv",
// CHECK-NEXT: "kv_heads": 8,
// CHECK-NEXT: "layer_to_cache": [
// CHECK-NEXT: 0,
// CHECK-NEXT: 1,
// CHECK-NEXT: 0,
// CHECK-NEXT: 1
// CHECK-NEXT: ],
// CHECK-NEXT: "layout": "paged",
// CHECK-NEXT: "num_layers": 4,
// CHECK-NEXT: "page_size": 16,
// CHECK-NEXT: "value": null
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 1024, element = f16,
               key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, recent = 15>>
func.func @layers(%c0: !c {kv.layer = 0 : i64}, %c1: !c {kv.layer = 1 : i64}) {
  %s2 = kv.share_cache %c0 {layer = 2} : !c -> !c
  %s3 = kv.share_cache %c1 {layer = 3} : !c -> !c
  return
}

// -----

// An MLA latent cache, paged.
// CHECK: "element": "bf16",
// CHECK: "kind": "latent",
// CHECK: "latent_dim": 512,
// CHECK: "page_size": 64,
// CHECK: "rope_dim": 64,
func.func @mla(%c: !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>>) {
  return
}
