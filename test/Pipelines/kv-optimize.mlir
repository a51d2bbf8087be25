// RUN: kvopt-opt %s --kv-optimize="page-size=16 key=int4 value=int4 budget-gib=16 batch=8" --mlir-print-local-scope | FileCheck %s
// RUN: kvopt-opt %s --kv-optimize="page-size=0 report=false" --mlir-print-local-scope | FileCheck %s --check-prefix=NONE
// RUN: not kvopt-opt %s --kv-optimize="page-size=-3" 2>&1 | FileCheck %s --check-prefix=BAD
// The quick-start pipeline on the shipped example's shape: quantize, page,
// and report memory before and after.

// Baseline 2 caches x 4096 B; after: K int4/channel/16 asymmetric f16
// = 512 + 256, V int4/token/head asymmetric = 512 + 32: 1312 per cache.
// The keys' 15-token full-precision window costs 15 * 1024 * 2 per cache.
// (16 GiB / 8 - 61440) / 2624 = 818377.4, rounded down to 16-token pages.
// CHECK: total bytes per token: 2624.00 (before: 8192.00, 3.12x smaller)
// CHECK: fixed bytes per sequence (full-precision windows): 61440
// CHECK: kv-memory-report: 3 layers, 2 caches, 2624.00 B/token (was 8192.00, 3.12x smaller), max context 818368 tokens at batch 8 in 16.00 GiB
// CHECK-LABEL: func @step
// CHECK-SAME: layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, recent = 15>, value = #kv.quant<int4, symmetric = false>>
// CHECK-SAME: tensor<?x512xi32>
// CHECK-NOT: kv.baseline_bytes_per_token

// With no technique asked for, the module is unchanged and nothing printed.
// NONE-NOT: KV memory report
// NONE-LABEL: func @step
// NONE-SAME: (%{{.*}}: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>,
// NONE-NOT: block_table

// BAD: error: kv-paginate: option 'page-size' must be in 1..4096, got -3
func.func @step(%c0: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>,
                %c1: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>,
                %q: tensor<8x32x1x128xf16>, %lens: tensor<8xi32>) -> tensor<8x32x1x128xf16> {
  %o = kv.attention %q, %c0, %lens {causal} : (tensor<8x32x1x128xf16>, !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>, tensor<8xi32>) -> tensor<8x32x1x128xf16>
  %s = kv.share_cache %c1 {layer = 2} : !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16> -> !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>
  %o2 = kv.attention %q, %s, %lens {causal} : (tensor<8x32x1x128xf16>, !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>, tensor<8xi32>) -> tensor<8x32x1x128xf16>
  return %o2 : tensor<8x32x1x128xf16>
}
