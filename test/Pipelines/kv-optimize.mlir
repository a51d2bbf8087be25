// RUN: kvopt-opt %s --kv-optimize="page-size=16 key=int4 value=int4 budget-gib=16 batch=8" --mlir-print-local-scope | FileCheck %s
// RUN: kvopt-opt %s --kv-optimize="page-size=0 report=false" --mlir-print-local-scope | FileCheck %s --check-prefix=NONE
// RUN: not kvopt-opt %s --kv-optimize="page-size=-3" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: kvopt-opt %s --kv-optimize="page-size=16 key=int8 key-axis=token key-group=0 value=int4 value-axis=channel value-group=16 symmetric=true scale-type=f32 sinks=2 value-recent=20 key-sinks=0 report=false" --mlir-print-local-scope | FileCheck %s --check-prefix=FWD
// The quick-start pipeline on the shipped example's shape: quantize, page,
// and report memory before and after.

// Baseline 2 caches x 4096 B; after: K int4/channel/16 asymmetric f16
// = 512 + 256, V int4/token/head asymmetric = 512 + 32: 1312 per cache.
// The keys' 15-token full-precision window costs 15 * 1024 * 2 per cache.
// (16 GiB / 8 - 61440) / 2624 = 818377.4, rounded down to 16-token pages;
// before, 2 GiB / 8192 = 262144. Max batch at capacity 8192: 16 GiB /
// (8192 * 2624 + 61440) = 796.9, before 16 GiB / (8192 * 8192) = 256.
// Layer 2 reads layer 1's cache before and after: 0 bytes in both columns.
// CHECK: 0 kv 8x128 f16 K:int4/ch16 V:int4/tok paged/16 1312.00 4096.00
// CHECK: 1 kv 8x128 f16 K:int4/ch16 V:int4/tok paged/16 1312.00 4096.00
// CHECK: 2 shares the cache of layer 1 0.00 0.00
// CHECK: total bytes per token: 2624.00 (before: 8192.00, 3.12x smaller)
// CHECK: fixed bytes per sequence (full-precision windows): 61440 (before: 0)
// CHECK: max context per sequence at batch 8: 818368 tokens (before: 262144)
// CHECK: max batch at capacity 8192: 796 sequences (before: 256)
// CHECK: kv-memory-report: 3 layers, 2 caches, 2624.00 B/token (was 8192.00, 3.12x smaller), max context 818368 tokens at batch 8 in 16.00 GiB
// The report consumes the baseline: the printed module has no attribute.
// CHECK-NOT: kv.baseline
// CHECK: module {
// CHECK-NOT: kv.baseline
// CHECK-LABEL: func @step
// CHECK-SAME: layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, recent = 15>, value = #kv.quant<int4, symmetric = false>>
// CHECK-SAME: tensor<?x512xi32>

// With no technique asked for, the module is unchanged and nothing printed.
// NONE-NOT: KV memory report
// NONE-LABEL: func @step
// NONE-SAME: (%{{.*}}: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>,
// NONE-NOT: block_table

// BAD: error: kv-paginate: option 'page-size' must be in 1..4096, got -3

// The quantization options reach kv-quantize as given: int8 keys per token
// and head without sinks (key-sinks=0 overrides sinks=2), int4 values per
// channel over 16 tokens with a 20-token window (value-recent) and the
// shared 2 sinks, symmetric f32 scales on both sides.
// FWD-LABEL: func @step
// FWD-SAME: key = #kv.quant<int8, scale = f32>, value = #kv.quant<int4, axis = channel, group = 16, scale = f32, recent = 20, sinks = 2>>
func.func @step(%c0: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>,
                %c1: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>,
                %q: tensor<8x32x1x128xf16>, %lens: tensor<8xi32>) -> tensor<8x32x1x128xf16> {
  %o = kv.attention %q, %c0, %lens {causal} : (tensor<8x32x1x128xf16>, !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>, tensor<8xi32>) -> tensor<8x32x1x128xf16>
  %s = kv.share_cache %c1 {layer = 2} : !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16> -> !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>
  %o2 = kv.attention %q, %s, %lens {causal} : (tensor<8x32x1x128xf16>, !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>, tensor<8xi32>) -> tensor<8x32x1x128xf16>
  return %o2 : tensor<8x32x1x128xf16>
}
