// Every generated append kernel (RoPE + quantize + scatter) assembles with
// ptxas for sm_80 and sm_90 without spills and without local memory: cos/sin
// come from the kernel's own double-precision reduction, not libdevice.
// REQUIRES: ptxas
// RUN: rm -rf %t && %kvopt_lib/../bin/kvopt-gpu-bundle --ptx-only %s -o %t
// RUN: %ptxas -v -arch=sm_80 %t/kernels.sm_80.ptx -o %t/k80.cubin 2>&1 | FileCheck %s
// RUN: %ptxas -v -arch=sm_90 %t/kernels.sm_90.ptx -o %t/k90.cubin 2>&1 | FileCheck %s
// CHECK-NOT: bytes stack frame, {{[1-9]}}
// CHECK-COUNT-10: 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
// CHECK-NOT: {{[1-9][0-9]* bytes (stack frame|spill)}}

// int4 groups of 32 (8 lanes per group), RoPE on the keys, decode step.
func.func @int4_rope(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, group = 32, symmetric = false>, value = #kv.quant<int4, group = 32, symmetric = false>>, %pos: tensor<?xi32>, %k: tensor<?x8x1x128xf16>, %v: tensor<?x8x1x128xf16>, %bt: tensor<?x256xi32>) {
  kv.append %c[%pos], %k, %v block_table %bt {rope_theta = 10000.0 : f64} : !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, group = 32, symmetric = false>, value = #kv.quant<int4, group = 32, symmetric = false>>, tensor<?xi32>, tensor<?x8x1x128xf16>, tensor<?x8x1x128xf16>, tensor<?x256xi32>
  return
}

// bf16 head dim 256, RoPE, a 16-token prefill chunk.
func.func @bf16_d256_rope(%c: !kv.cache<kv_heads = 2, head_dim = 256, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>>, %pos: tensor<?xi32>, %k: tensor<?x2x16x256xbf16>, %v: tensor<?x2x16x256xbf16>, %bt: tensor<?x64xi32>) {
  kv.append %c[%pos], %k, %v block_table %bt {rope_theta = 10000.0 : f64} : !kv.cache<kv_heads = 2, head_dim = 256, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>>, tensor<?xi32>, tensor<?x2x16x256xbf16>, tensor<?x2x16x256xbf16>, tensor<?x64xi32>
  return
}

// f32, page size 1.
func.func @f32_p1(%c: !kv.cache<kv_heads = 4, head_dim = 64, capacity = 1024, element = f32, layout = #kv.layout<paged, page_size = 1>>, %pos: tensor<?xi32>, %k: tensor<?x4x1x64xf32>, %v: tensor<?x4x1x64xf32>, %bt: tensor<?x1024xi32>) {
  kv.append %c[%pos], %k, %v block_table %bt : !kv.cache<kv_heads = 4, head_dim = 64, capacity = 1024, element = f32, layout = #kv.layout<paged, page_size = 1>>, tensor<?xi32>, tensor<?x4x1x64xf32>, tensor<?x4x1x64xf32>, tensor<?x1024xi32>
  return
}

// head dim 96: int4 groups of 32 over 24 lanes of 4 with RoPE; int8 values.
func.func @d96_int4(%c: !kv.cache<kv_heads = 8, head_dim = 96, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, group = 32>, value = #kv.quant<int8, scale = f32>>, %pos: tensor<?xi32>, %k: tensor<?x8x1x96xf16>, %v: tensor<?x8x1x96xf16>, %bt: tensor<?x256xi32>) {
  kv.append %c[%pos], %k, %v block_table %bt {rope_theta = 10000.0 : f64} : !kv.cache<kv_heads = 8, head_dim = 96, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, group = 32>, value = #kv.quant<int8, scale = f32>>, tensor<?xi32>, tensor<?x8x1x96xf16>, tensor<?x8x1x96xf16>, tensor<?x256xi32>
  return
}

// head dim 80: whole-head int4 groups over 8 lanes of 10; fp8 groups of 4.
func.func @d80_int4(%c: !kv.cache<kv_heads = 8, head_dim = 80, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, symmetric = false>, value = #kv.quant<fp8_e4m3, group = 4, scale = f32>>, %pos: tensor<?xi32>, %k: tensor<?x8x3x80xf16>, %v: tensor<?x8x3x80xf16>, %bt: tensor<?x256xi32>) {
  kv.append %c[%pos], %k, %v block_table %bt : !kv.cache<kv_heads = 8, head_dim = 80, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, symmetric = false>, value = #kv.quant<fp8_e4m3, group = 4, scale = f32>>, tensor<?xi32>, tensor<?x8x3x80xf16>, tensor<?x8x3x80xf16>, tensor<?x256xi32>
  return
}

// int2 head dim 4: one lane holds the whole rotated row.
func.func @int2_d4_rope(%c: !kv.cache<kv_heads = 1, head_dim = 4, capacity = 256, element = f16, layout = #kv.layout<paged, page_size = 256>, key = #kv.quant<int2, scale = f32>, value = #kv.quant<int2, symmetric = false>>, %pos: tensor<?xi32>, %k: tensor<?x1x2x4xf16>, %v: tensor<?x1x2x4xf16>, %bt: tensor<?x1xi32>) {
  kv.append %c[%pos], %k, %v block_table %bt {rope_theta = 10000.0 : f64} : !kv.cache<kv_heads = 1, head_dim = 4, capacity = 256, element = f16, layout = #kv.layout<paged, page_size = 256>, key = #kv.quant<int2, scale = f32>, value = #kv.quant<int2, symmetric = false>>, tensor<?xi32>, tensor<?x1x2x4xf16>, tensor<?x1x2x4xf16>, tensor<?x1xi32>
  return
}

// KIVI decode step: channel-axis int4 keys (groups of 16 tokens quantized
// from the recent ring when complete) with RoPE, windowed int4 values.
func.func @kivi_rope(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, scale = f16, recent = 16>, value = #kv.quant<int4, group = 32, symmetric = false, scale = f16, recent = 16, sinks = 4>>, %pos: tensor<?xi32>, %k: tensor<?x8x1x128xf16>, %v: tensor<?x8x1x128xf16>, %bt: tensor<?x256xi32>) {
  kv.append %c[%pos], %k, %v block_table %bt {rope_theta = 10000.0 : f64} : !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, scale = f16, recent = 16>, value = #kv.quant<int4, group = 32, symmetric = false, scale = f16, recent = 16, sinks = 4>>, tensor<?xi32>, tensor<?x8x1x128xf16>, tensor<?x8x1x128xf16>, tensor<?x256xi32>
  return
}

// A 16-token chunk into channel-axis int8 keys with sinks (one block per
// sequence) and token-axis values with sinks.
func.func @channel_chunk(%c: !kv.cache<kv_heads = 2, head_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 32>, key = #kv.quant<int8, axis = channel, group = 8, scale = f32, recent = 7, sinks = 3>, value = #kv.quant<int8, sinks = 4>>, %pos: tensor<?xi32>, %k: tensor<?x2x16x64xbf16>, %v: tensor<?x2x16x64xbf16>, %bt: tensor<?x128xi32>) {
  kv.append %c[%pos], %k, %v block_table %bt : !kv.cache<kv_heads = 2, head_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 32>, key = #kv.quant<int8, axis = channel, group = 8, scale = f32, recent = 7, sinks = 3>, value = #kv.quant<int8, sinks = 4>>, tensor<?xi32>, tensor<?x2x16x64xbf16>, tensor<?x2x16x64xbf16>, tensor<?x128xi32>
  return
}

// KIVI with an 8-token chunk: 8 passes of 256 threads in the one block per
// sequence, the most the target allows (appendMaxChannelPasses).
func.func @kivi_chunk8(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, scale = f16, recent = 16>, value = #kv.quant<int4, group = 32, symmetric = false, scale = f16, recent = 16, sinks = 4>>, %pos: tensor<?xi32>, %k: tensor<?x8x8x128xf16>, %v: tensor<?x8x8x128xf16>, %bt: tensor<?x256xi32>) {
  kv.append %c[%pos], %k, %v block_table %bt {rope_theta = 10000.0 : f64} : !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, scale = f16, recent = 16>, value = #kv.quant<int4, group = 32, symmetric = false, scale = f16, recent = 16, sinks = 4>>, tensor<?xi32>, tensor<?x8x8x128xf16>, tensor<?x8x8x128xf16>, tensor<?x256xi32>
  return
}

// KIVI decode step over 40 KV heads (Llama-2-13B): 256 threads, 5 passes.
func.func @kivi_40_heads(%c: !kv.cache<kv_heads = 40, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, scale = f16, recent = 16>, value = #kv.quant<int4, group = 32, symmetric = false, scale = f16, recent = 16, sinks = 4>>, %pos: tensor<?xi32>, %k: tensor<?x40x1x128xf16>, %v: tensor<?x40x1x128xf16>, %bt: tensor<?x256xi32>) {
  kv.append %c[%pos], %k, %v block_table %bt {rope_theta = 10000.0 : f64} : !kv.cache<kv_heads = 40, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, scale = f16, recent = 16>, value = #kv.quant<int4, group = 32, symmetric = false, scale = f16, recent = 16, sinks = 4>>, tensor<?xi32>, tensor<?x40x1x128xf16>, tensor<?x40x1x128xf16>, tensor<?x256xi32>
  return
}
