// RUN: not kvopt-opt %s -split-input-file -kv-share-layers 2>&1 | FileCheck %s --check-prefix=NONE
// RUN: not kvopt-opt %s -split-input-file -kv-share-layers="group-size=2 map=0,0" 2>&1 | FileCheck %s --check-prefix=BOTH
// RUN: not kvopt-opt %s -split-input-file -kv-share-layers=group-size=-2 2>&1 | FileCheck %s --check-prefix=NEG
// RUN: not kvopt-opt %s -split-input-file -kv-share-layers=map=0,0,0 2>&1 | FileCheck %s --check-prefix=LEN
// RUN: not kvopt-opt %s -split-input-file -kv-share-layers=map=0,7 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not kvopt-opt %s -split-input-file -kv-share-layers=map=1,1 2>&1 | FileCheck %s --check-prefix=LATER
// RUN: not kvopt-opt %s -split-input-file -kv-share-layers=group-size=2 2>&1 | FileCheck %s --check-prefix=SPLIT
// Bad sharing options name the option; impossible sharing is reported.

// NONE: error: kv-share-layers: give exactly one of the options 'group-size' and 'map'
// BOTH: error: kv-share-layers: give exactly one of the options 'group-size' and 'map'
// NEG: error: kv-share-layers: option 'group-size' must be positive, got -2
// LEN: error: kv-share-layers: option 'map' has 3 entries but the module has 2 layers
// MISSING: error: kv-share-layers: option 'map' maps layer 1 to layer 7, which the module does not have
// LATER: error: kv-share-layers: layer 0 would share the cache of the later layer 1; a cache's owner must come first
// SPLIT: error: kv-share-layers: layer 1 cannot share the cache of layer 0: their cache types differ
// SPLIT: error: kv-share-layers: layer 1's cache is already paged; run kv-share-layers before kv-paginate
func.func @f(%c0: !kv.cache<kv_heads = 2, head_dim = 16, capacity = 32, element = f32> {kv.layer = 0 : i64},
             %c1: !kv.cache<kv_heads = 2, head_dim = 16, capacity = 32, element = f32> {kv.layer = 1 : i64}) {
  return
}

// -----

func.func @g(%c0: !kv.cache<kv_heads = 2, head_dim = 16, capacity = 32, element = f32> {kv.layer = 0 : i64},
             %c1: !kv.cache<kv_heads = 4, head_dim = 16, capacity = 32, element = f32> {kv.layer = 1 : i64}) {
  return
}

// -----

func.func @h(%c0: !kv.cache<kv_heads = 2, head_dim = 16, capacity = 32, element = f32> {kv.layer = 0 : i64},
             %c1: !kv.cache<kv_heads = 2, head_dim = 16, capacity = 32, element = f32, layout = #kv.layout<paged, page_size = 8>> {kv.layer = 1 : i64}) {
  return
}
