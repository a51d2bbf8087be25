// RUN: kvopt-opt %s -split-input-file -kv-memory-report="budget-gib=1 batch=2" -o /dev/null | FileCheck %s
// RUN: kvopt-opt %s -split-input-file -kv-memory-report="format=json budget-gib=1 batch=2" -o /dev/null | FileCheck %s --check-prefix=JSON
// RUN: not kvopt-opt %s -split-input-file -kv-memory-report=format=xml 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not kvopt-opt %s -split-input-file -kv-memory-report=batch=0 2>&1 | FileCheck %s --check-prefix=BATCH
// The report's numbers, computed by hand (docs/CacheLayout.md).

// BAD: error: kv-memory-report: option 'format' must be table or json, got 'xml'
// BATCH: error: kv-memory-report: option 'batch' must be positive

// Llama-3-8B layer shape, GQA 8 x 128 f16: 2 * 8 * 128 * 2 = 4096 B/token
// per layer. Layer 1 shares layer 0's cache, so the total is 4096.
// 1 GiB / 2 sequences / 4096 = 131072 tokens; at capacity 8192 one sequence
// takes 32 MiB: 32 sequences fit.
// CHECK: KV memory report (budget 1.00 GiB, batch 2)
// CHECK: 0 kv 8x128 f16 K:full V:full contiguous 4096.00
// CHECK: 1 shares the cache of layer 0 0.00
// CHECK: total bytes per token: 4096.00
// CHECK: max context per sequence at batch 2: 131072 tokens
// CHECK: max batch at capacity 8192: 32 sequences
// CHECK: kv-memory-report: 2 layers, 1 caches, 4096.00 B/token, max context 131072 tokens at batch 2 in 1.00 GiB
// JSON: "bytes_per_token": 4096
// JSON: "max_batch_at_capacity": 32
// JSON: "max_context_per_sequence": 131072
func.func @gqa(%c0: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>) {
  %s = kv.share_cache %c0 {layer = 1} : !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16> -> !kv.cache<kv_heads = 8, head_dim = 128, capacity = 8192, element = f16>
  return
}

// -----

// DeepSeek MLA latent 512 + 64 bf16 (1152 B/token) in 64-token pages, plus a
// KIVI int4 layer (640 + 640 = 1280 B/token) with 128 + 4 full-precision
// tokens of K and V: 2 * 132 * 1024 * 2 = 540672 fixed bytes per sequence.
// Per sequence: 512 MiB - 540672 B = 536330240 B; / 2432 = 220530 tokens,
// rounded down to whole 64-token pages: 220480.
// CHECK: KV memory report (budget 1.00 GiB, batch 2)
// CHECK: 0 mla 512+64 bf16 full paged/64 1152.00
// CHECK: 7 kv 8x128 f16 K:int4/ch32 V:int4/tok32 paged/64 1280.00
// CHECK: total bytes per token: 2432.00
// CHECK: fixed bytes per sequence (full-precision windows): 540672
// CHECK: max context per sequence at batch 2: 220480 tokens
// JSON: "fixed_bytes_per_sequence": 540672
// JSON: "max_context_per_sequence": 220480
func.func @mixed(%l: !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>>) {
  %c = kv.alloc_cache {layer = 7} : !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 64>, key = #kv.quant<int4, axis = channel, group = 32, symmetric = false, recent = 128, sinks = 4>, value = #kv.quant<int4, group = 32, symmetric = false, recent = 128, sinks = 4>>
  return
}
