// RUN: kvopt-opt %kvopt_src/examples/graphs/llama-gqa-layer.mlir --kv-optimize="page-size=16 key=int8 value=int8 capacity=64" --mlir-print-local-scope | FileCheck %s --check-prefix=GQA
// RUN: kvopt-opt %kvopt_src/examples/graphs/llama-4layer.mlir --kv-optimize="kv-heads=1 share-group=2 page-size=16 key=int4 value=int4 capacity=64" --mlir-print-local-scope | FileCheck %s --check-prefix=FOUR
// RUN: kvopt-opt %kvopt_src/examples/graphs/deepseek-mla-layer.mlir --kv-optimize="page-size=16 key=int8 capacity=64" --mlir-print-local-scope | FileCheck %s --check-prefix=MLA
// The whole pipeline on the shipped model graphs: raise attention, then the
// requested techniques, with the memory report's numbers computed by hand.

// GQA layer, 2 KV heads of 16 in f32: 2 * 2 * 16 * 4 = 256 B/token. int8 keys
// per channel over 16 tokens: 32 + 32 * 2 * 2 / 16 = 40; int8 values per
// token, one f16 scale and zero point per head: 32 + 2 * 4 = 40.
// Per layer the report shows the bytes before the pipeline next to those
// after; max context in the default 80 GiB before: 80 GiB / 256 = 335544320.
// GQA: 0 kv 2x16 f32 K:int8/ch16 V:int8/tok paged/16 80.00 256.00
// GQA: total bytes per token: 80.00 (before: 256.00, 3.20x smaller)
// GQA: max context per sequence at batch 1: {{[0-9]+}} tokens (before: 335544320)
// GQA-LABEL: func @llama_gqa_layer
// GQA-SAME: !kv.cache<kv_heads = 2, head_dim = 16, capacity = 64, element = f32, layout = #kv.layout<paged, page_size = 16>
// GQA: kv.append
// GQA: kv.attention
// GQA-NOT: linalg.softmax

// Four layers, MHA->MQA (1 KV head), pairs sharing one cache, int4: keys
// 8 + 16 * 2 * 2 / 16 = 12, values 8 + 4 = 12, two caches: 48 B/token.
// Before, each layer had its own 2 x 16 f32 cache: 2 * 2 * 16 * 4 = 256.
// The keys' 15-token windows: 2 * 15 * 16 * 4 = 1920 fixed bytes; max
// context in 80 GiB: (80 GiB - 1920) / 48 = 1789569666.7, rounded down to
// 16-token pages 1789569664; before 80 GiB / 1024 = 83886080.
// FOUR: 0 kv 1x16 f32 K:int4/ch16 V:int4/tok paged/16 24.00 256.00
// FOUR: 1 shares the cache of layer 0 0.00 256.00
// FOUR: 2 kv 1x16 f32 K:int4/ch16 V:int4/tok paged/16 24.00 256.00
// FOUR: 3 shares the cache of layer 2 0.00 256.00
// FOUR: total bytes per token: 48.00 (before: 1024.00, 21.33x smaller)
// FOUR: fixed bytes per sequence (full-precision windows): 1920 (before: 0)
// FOUR: max context per sequence at batch 1: 1789569664 tokens (before: 83886080)
// FOUR-COUNT-2: kv.share_cache
// FOUR-COUNT-2: kv.append

// In the DeepSeek-style layer the latent cache (latent + rope = 40 f32) is the
// only cache; attention runs on it with absorbed weights. int8 rows per channel
// over 16 tokens: 40 + 40 * 2 * 2 / 16 = 50 B/token.
// MLA: 0 mla 32+8 f32 int8/ch16 paged/16 50.00 160.00
// MLA: total bytes per token: 50.00 (before: 160.00, 3.20x smaller)
// MLA-LABEL: func @deepseek_mla_layer
// MLA: kv.append
// MLA: kv.mla_attention
