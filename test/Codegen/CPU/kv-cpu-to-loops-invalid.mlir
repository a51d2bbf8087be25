// RUN: not kvopt-opt %s -split-input-file -kv-cpu-to-loops 2>&1 | FileCheck %s
// RUN: not kvopt-opt %s -kv-cpu-to-loops=kv-splits=-1 2>&1 | FileCheck %s --check-prefix=SPLITS
// RUN: not kvopt-opt %s -kv-cpu-to-loops=block-tokens=0 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not kvopt-opt %s -kv-cpu-to-loops=split-tokens=0 2>&1 | FileCheck %s --check-prefix=TOKENS
// RUN: not kvopt-opt %s -kv-cpu-to-loops=vector-bits=384 2>&1 | FileCheck %s --check-prefix=VBITS
// Unsupported IR and bad options give diagnostics naming the op or the
// option, never a crash.

// SPLITS: error: kv-cpu-to-loops: option 'kv-splits' must be >= 0, got -1
// BLOCK: error: kv-cpu-to-loops: option 'block-tokens' must be in [1, 1024], got 0
// TOKENS: error: kv-cpu-to-loops: option 'split-tokens' must be >= 1, got 0
// VBITS: error: kv-cpu-to-loops: option 'vector-bits' must be 0, 128, 256 or 512, got 384

// A cache allocated inside the module has no batch to size it with.
// CHECK: error: 'kv.alloc_cache' op is not supported by the CPU lowering: pass the cache in as a function argument
func.func @alloc() {
  %c = kv.alloc_cache : !kv.cache<kv_heads = 1, head_dim = 64, capacity = 16, element = f32>
  return
}

// -----

// Only the batch dimension of the queries may be dynamic.
// CHECK: error: failed to legalize operation 'kv.attention'
func.func @dynamic_heads(%q: tensor<1x?x1x64xf32>, %c: !kv.cache<kv_heads = 1, head_dim = 64, capacity = 16, element = f32>, %lens: tensor<1xi32>) -> tensor<1x?x1x64xf32> {
  %o = kv.attention %q, %c, %lens : (tensor<1x?x1x64xf32>, !kv.cache<kv_heads = 1, head_dim = 64, capacity = 16, element = f32>, tensor<1xi32>) -> tensor<1x?x1x64xf32>
  return %o : tensor<1x?x1x64xf32>
}
