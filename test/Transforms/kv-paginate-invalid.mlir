// RUN: not kvopt-opt %s -split-input-file -kv-paginate=page-size=0 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not kvopt-opt %s -split-input-file -kv-paginate=page-size=8 2>&1 | FileCheck %s
// Bad page sizes and caches the pass cannot follow give diagnostics naming
// the option or the op, never a crash.

// ZERO: error: kv-paginate: option 'page-size' must be in 1..4096, got 0

// A per-channel key group of 16 tokens cannot live in 8-token pages.
// CHECK: error: kv-paginate: option 'page-size' = 8 does not fit '!kv.cache<kv_heads = 1, head_dim = 64, capacity = 48, element = f32, layout = #kv.layout<paged, page_size = 8>, key = #kv.quant<int8, axis = channel, group = 16, recent = 15>>': key encoding token group 16 does not divide page size 8
func.func @group(%c: !kv.cache<kv_heads = 1, head_dim = 64, capacity = 48, element = f32, key = #kv.quant<int8, axis = channel, group = 16, recent = 15>>) {
  return
}

// -----

// CHECK: error: kv-paginate: functions returning caches are not supported; pass caches in as arguments
func.func @returns(%c: !kv.cache<kv_heads = 1, head_dim = 64, capacity = 48, element = f32>) -> !kv.cache<kv_heads = 1, head_dim = 64, capacity = 48, element = f32> {
  return %c : !kv.cache<kv_heads = 1, head_dim = 64, capacity = 48, element = f32>
}

// -----

// CHECK: error: kv-paginate: cannot follow a cache into 'scf.yield'
func.func @loop(%c: !kv.cache<kv_heads = 1, head_dim = 64, capacity = 48, element = f32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%x = %c) -> (!kv.cache<kv_heads = 1, head_dim = 64, capacity = 48, element = f32>) {
    scf.yield %x : !kv.cache<kv_heads = 1, head_dim = 64, capacity = 48, element = f32>
  }
  return
}
