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

// -----

// Reference figure of docs/Passes.md: Llama-2-7B, MHA, 32 layers.
// 32 x 128 f16: 2 * 32 * 128 * 2 = 16384 B/token per layer, 32 * 16384 = 524288
// in total. 1 GiB / 2 sequences / 524288 = 1024 tokens; a sequence at capacity
// 1024 takes 512 MiB: 2 sequences fit.
// CHECK: KV memory report (budget 1.00 GiB, batch 2)
// CHECK: 0 kv 32x128 f16 K:full V:full contiguous 16384.00
// CHECK: 31 kv 32x128 f16 K:full V:full contiguous 16384.00
// CHECK: total bytes per token: 524288.00
// CHECK: max context per sequence at batch 2: 1024 tokens
// CHECK: max batch at capacity 1024: 2 sequences
// CHECK: kv-memory-report: 32 layers, 32 caches, 524288.00 B/token, max context 1024 tokens at batch 2 in 1.00 GiB
// JSON: "bytes_per_token": 524288
// JSON: "max_batch_at_capacity": 2
// JSON: "max_context_per_sequence": 1024
!mha = !kv.cache<kv_heads = 32, head_dim = 128, capacity = 1024, element = f16>
func.func @llama2_7b(
    %c0: !mha, %c1: !mha, %c2: !mha, %c3: !mha, %c4: !mha, %c5: !mha,
    %c6: !mha, %c7: !mha, %c8: !mha, %c9: !mha, %c10: !mha, %c11: !mha,
    %c12: !mha, %c13: !mha, %c14: !mha, %c15: !mha, %c16: !mha, %c17: !mha,
    %c18: !mha, %c19: !mha, %c20: !mha, %c21: !mha, %c22: !mha, %c23: !mha,
    %c24: !mha, %c25: !mha, %c26: !mha, %c27: !mha, %c28: !mha, %c29: !mha,
    %c30: !mha, %c31: !mha) {
  return
}

// -----

// Reference figure of docs/Passes.md: Llama-3-8B, GQA, 32 layers.
// 8 x 128 f16: 4096 B/token per layer, 131072 in total. 1 GiB / 2 / 131072 =
// 4096 tokens; at capacity 4096 a sequence takes 512 MiB: 2 fit.
// CHECK: KV memory report (budget 1.00 GiB, batch 2)
// CHECK: 31 kv 8x128 f16 K:full V:full contiguous 4096.00
// CHECK: total bytes per token: 131072.00
// CHECK: max context per sequence at batch 2: 4096 tokens
// CHECK: kv-memory-report: 32 layers, 32 caches, 131072.00 B/token, max context 4096 tokens at batch 2 in 1.00 GiB
// JSON: "bytes_per_token": 131072
// JSON: "max_batch_at_capacity": 2
!gqa = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>
func.func @llama3_8b(
    %c0: !gqa, %c1: !gqa, %c2: !gqa, %c3: !gqa, %c4: !gqa, %c5: !gqa,
    %c6: !gqa, %c7: !gqa, %c8: !gqa, %c9: !gqa, %c10: !gqa, %c11: !gqa,
    %c12: !gqa, %c13: !gqa, %c14: !gqa, %c15: !gqa, %c16: !gqa, %c17: !gqa,
    %c18: !gqa, %c19: !gqa, %c20: !gqa, %c21: !gqa, %c22: !gqa, %c23: !gqa,
    %c24: !gqa, %c25: !gqa, %c26: !gqa, %c27: !gqa, %c28: !gqa, %c29: !gqa,
    %c30: !gqa, %c31: !gqa) {
  return
}

// -----

// Reference figure of docs/Passes.md: Llama-3-8B with KIVI int4, 32 layers.
// K per channel over 16 tokens, V per token and head, asymmetric f16:
// K 512 + 8 * 128 * 2 * 2 / 16 = 768, V 512 + 8 * 2 * 2 = 544: 1312 per
// layer, 41984 in total. The keys' 15-token window: 15 * 8 * 128 * 2 = 30720
// fixed bytes per layer, 983040 in total. (512 MiB - 983040) / 41984 =
// 12764.1 tokens; at capacity 4096 a sequence takes 4096 * 41984 + 983040 =
// 172949504 B: 6 fit in 1 GiB.
// CHECK: KV memory report (budget 1.00 GiB, batch 2)
// CHECK: 0 kv 8x128 f16 K:int4/ch16 V:int4/tok contiguous 1312.00
// CHECK: total bytes per token: 41984.00
// CHECK: fixed bytes per sequence (full-precision windows): 983040
// CHECK: max context per sequence at batch 2: 12764 tokens
// CHECK: max batch at capacity 4096: 6 sequences
// JSON: "bytes_per_token": 41984
// JSON: "fixed_bytes_per_sequence": 983040
// JSON: "max_batch_at_capacity": 6
// JSON: "max_context_per_sequence": 12764
!kivi = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, recent = 15>, value = #kv.quant<int4, symmetric = false>>
func.func @llama3_8b_kivi(
    %c0: !kivi, %c1: !kivi, %c2: !kivi, %c3: !kivi, %c4: !kivi, %c5: !kivi,
    %c6: !kivi, %c7: !kivi, %c8: !kivi, %c9: !kivi, %c10: !kivi, %c11: !kivi,
    %c12: !kivi, %c13: !kivi, %c14: !kivi, %c15: !kivi, %c16: !kivi, %c17: !kivi,
    %c18: !kivi, %c19: !kivi, %c20: !kivi, %c21: !kivi, %c22: !kivi, %c23: !kivi,
    %c24: !kivi, %c25: !kivi, %c26: !kivi, %c27: !kivi, %c28: !kivi, %c29: !kivi,
    %c30: !kivi, %c31: !kivi) {
  return
}

// -----

// Reference figure of docs/Passes.md: DeepSeek-V3, MLA, 61 layers.
// Latent 512 + rope 64 bf16: 1152 B/token per layer, 61 * 1152 = 70272 in
// total. 512 MiB / 70272 = 7639.9 tokens; at capacity 4096 a sequence takes
// 287834112 B: 3 fit in 1 GiB.
// CHECK: KV memory report (budget 1.00 GiB, batch 2)
// CHECK: 0 mla 512+64 bf16 full contiguous 1152.00
// CHECK: 60 mla 512+64 bf16 full contiguous 1152.00
// CHECK: total bytes per token: 70272.00
// CHECK: max context per sequence at batch 2: 7639 tokens
// CHECK: max batch at capacity 4096: 3 sequences
// CHECK: kv-memory-report: 61 layers, 61 caches, 70272.00 B/token, max context 7639 tokens at batch 2 in 1.00 GiB
// JSON: "bytes_per_token": 70272
// JSON: "max_batch_at_capacity": 3
// JSON: "max_context_per_sequence": 7639
!mla = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16>
func.func @deepseek_v3(
    %c0: !mla, %c1: !mla, %c2: !mla, %c3: !mla, %c4: !mla, %c5: !mla,
    %c6: !mla, %c7: !mla, %c8: !mla, %c9: !mla, %c10: !mla, %c11: !mla,
    %c12: !mla, %c13: !mla, %c14: !mla, %c15: !mla, %c16: !mla, %c17: !mla,
    %c18: !mla, %c19: !mla, %c20: !mla, %c21: !mla, %c22: !mla, %c23: !mla,
    %c24: !mla, %c25: !mla, %c26: !mla, %c27: !mla, %c28: !mla, %c29: !mla,
    %c30: !mla, %c31: !mla, %c32: !mla, %c33: !mla, %c34: !mla, %c35: !mla,
    %c36: !mla, %c37: !mla, %c38: !mla, %c39: !mla, %c40: !mla, %c41: !mla,
    %c42: !mla, %c43: !mla, %c44: !mla, %c45: !mla, %c46: !mla, %c47: !mla,
    %c48: !mla, %c49: !mla, %c50: !mla, %c51: !mla, %c52: !mla, %c53: !mla,
    %c54: !mla, %c55: !mla, %c56: !mla, %c57: !mla, %c58: !mla, %c59: !mla,
    %c60: !mla) {
  return
}
