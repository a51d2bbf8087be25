// Every generated tensor-core prefill kernel assembles with ptxas for sm_80
// and sm_90 without spills and without local memory, and uses mma.sync.
// REQUIRES: ptxas
// RUN: rm -rf %t && %kvopt_lib/../bin/kvopt-gpu-bundle --ptx-only %s -o %t
// RUN: FileCheck %s --check-prefix=PTX < %t/kernels.sm_80.ptx
// RUN: %ptxas -v -arch=sm_80 %t/kernels.sm_80.ptx -o %t/k80.cubin 2>&1 | FileCheck %s
// RUN: %ptxas -v -arch=sm_90 %t/kernels.sm_90.ptx -o %t/k90.cubin 2>&1 | FileCheck %s
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-NOT: bytes stack frame, {{[1-9]}}
// CHECK-COUNT-8: 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
// CHECK-NOT: {{[1-9][0-9]* bytes (stack frame|spill)}}

// Llama-3 8B chunked prefill: 32 q / 8 KV heads, head dim 128, 64-token
// chunks, f16, page 16, causal.
!a = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>>
func.func @llama_chunk(%q: tensor<?x32x64x128xf16>, %c: !a, %lens: tensor<?xi32>, %bt: tensor<?x256xi32>) -> tensor<?x32x64x128xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt {causal} : (tensor<?x32x64x128xf16>, !a, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x32x64x128xf16>
  return %o : tensor<?x32x64x128xf16>
}

// bf16, head dim 64, MHA, 128-token chunks, page 1, f32 output.
!b = !kv.cache<kv_heads = 4, head_dim = 64, capacity = 1024, element = bf16, layout = #kv.layout<paged, page_size = 1>>
func.func @bf16_d64(%q: tensor<?x4x128x64xbf16>, %c: !b, %lens: tensor<?xi32>, %bt: tensor<?x1024xi32>) -> tensor<?x4x128x64xf32> {
  %o = kv.attention %q, %c, %lens block_table %bt {causal} : (tensor<?x4x128x64xbf16>, !b, tensor<?xi32>, tensor<?x1024xi32>) -> tensor<?x4x128x64xf32>
  return %o : tensor<?x4x128x64xf32>
}

// Head dim 32, sliding window with sinks, page 256.
!w = !kv.cache<kv_heads = 2, head_dim = 32, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 256>>
func.func @window(%q: tensor<?x8x16x32xf16>, %c: !w, %lens: tensor<?xi32>, %bt: tensor<?x16xi32>) -> tensor<?x8x16x32xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt {causal, window = 1024, sinks = 4} : (tensor<?x8x16x32xf16>, !w, tensor<?xi32>, tensor<?x16xi32>) -> tensor<?x8x16x32xf16>
  return %o : tensor<?x8x16x32xf16>
}

// Head dim 96 (Phi-3), group 16.
!p = !kv.cache<kv_heads = 2, head_dim = 96, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 64>>
func.func @d96(%q: tensor<?x32x8x96xf16>, %c: !p, %lens: tensor<?xi32>, %bt: tensor<?x64xi32>) -> tensor<?x32x8x96xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt {causal} : (tensor<?x32x8x96xf16>, !p, tensor<?xi32>, tensor<?x64xi32>) -> tensor<?x32x8x96xf16>
  return %o : tensor<?x32x8x96xf16>
}

// int8 keys (f32 scales) and asymmetric int4 values in groups of 32,
// dequantized into the shared tiles.
!q = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int8, scale = f32>, value = #kv.quant<int4, group = 32, symmetric = false>>
func.func @quantized(%q: tensor<?x32x64x128xf16>, %c: !q, %lens: tensor<?xi32>, %bt: tensor<?x256xi32>) -> tensor<?x32x64x128xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt {causal} : (tensor<?x32x64x128xf16>, !q, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x32x64x128xf16>
  return %o : tensor<?x32x64x128xf16>
}

// Head dim 256 (Gemma-style), bf16: 2 warps of 16 rows, 16-key tiles.
!g = !kv.cache<kv_heads = 2, head_dim = 256, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 16>>
func.func @d256(%q: tensor<?x8x16x256xbf16>, %c: !g, %lens: tensor<?xi32>, %bt: tensor<?x256xi32>) -> tensor<?x8x16x256xbf16> {
  %o = kv.attention %q, %c, %lens block_table %bt {causal} : (tensor<?x8x16x256xbf16>, !g, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x8x16x256xbf16>
  return %o : tensor<?x8x16x256xbf16>
}

// The same with full-precision windows (16 recent tokens, 4 sinks) staged
// exactly from the window slots.
!r = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int8, scale = f32, recent = 16, sinks = 4>, value = #kv.quant<int4, group = 32, symmetric = false, recent = 16, sinks = 4>>
func.func @quantized_windows(%q: tensor<?x32x64x128xf16>, %c: !r, %lens: tensor<?xi32>, %bt: tensor<?x256xi32>) -> tensor<?x32x64x128xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt {causal} : (tensor<?x32x64x128xf16>, !r, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x32x64x128xf16>
  return %o : tensor<?x32x64x128xf16>
}

// KIVI: int4 keys per channel over 16 tokens, int4 values per token, 16
// recent tokens exact.
!k = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 64>, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, recent = 16>, value = #kv.quant<int4, group = 32, symmetric = false, recent = 16>>
func.func @kivi(%q: tensor<?x32x64x128xf16>, %c: !k, %lens: tensor<?xi32>, %bt: tensor<?x64xi32>) -> tensor<?x32x64x128xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt {causal} : (tensor<?x32x64x128xf16>, !k, tensor<?xi32>, tensor<?x64xi32>) -> tensor<?x32x64x128xf16>
  return %o : tensor<?x32x64x128xf16>
}
