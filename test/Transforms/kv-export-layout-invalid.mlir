// RUN: not kvopt-opt %s -split-input-file -kv-export-layout -o /dev/null 2>&1 | FileCheck %s
// Modules the runtime cannot pool as one layout are reported.

// CHECK: error: kv-export-layout: the caches of layers 0 and 1 differ; the runtime pools one layout
func.func @differ(%c0: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>,
                  %c1: !kv.cache<kv_heads = 8, head_dim = 64, capacity = 64, element = f16>) {
  return
}

// -----

// CHECK: error: kv-export-layout: the module has no KV cache
func.func @none() {
  return
}

// -----

// CHECK: error: kv-export-layout: layers must be numbered 0..N-1 without gaps
func.func @gap(%c0: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16> {kv.layer = 0 : i64},
               %c1: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16> {kv.layer = 5 : i64}) {
  return
}
