// Every generated MLA decode kernel and its merge assemble with ptxas for
// sm_80 and sm_90 without spills and without local memory.
// REQUIRES: ptxas
// RUN: rm -rf %t && %kvopt_lib/../bin/kvopt-gpu-bundle --ptx-only %s -o %t
// RUN: %ptxas -v -arch=sm_80 %t/kernels.sm_80.ptx -o %t/k80.cubin 2>&1 | FileCheck %s
// RUN: %ptxas -v -arch=sm_90 %t/kernels.sm_90.ptx -o %t/k90.cubin 2>&1 | FileCheck %s
// CHECK-NOT: bytes stack frame, {{[1-9]}}
// CHECK-COUNT-11: 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
// CHECK-NOT: {{[1-9][0-9]* bytes (stack frame|spill)}}

// DeepSeek-V2/V3: latent 512 + RoPE 64, 16 heads, bf16, page 64.
!c = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>>
func.func @deepseek(%ql: tensor<?x16x1x512xbf16>, %qr: tensor<?x16x1x64xbf16>, %c: !c, %lens: tensor<?xi32>, %bt: tensor<?x64xi32>) -> tensor<?x16x1x512xbf16> {
  %o = kv.mla_attention %ql, %qr, %c, %lens block_table %bt {scale = 0.0723 : f32} : (tensor<?x16x1x512xbf16>, tensor<?x16x1x64xbf16>, !c, tensor<?xi32>, tensor<?x64xi32>) -> tensor<?x16x1x512xbf16>
  return %o : tensor<?x16x1x512xbf16>
}

// 128 heads (DeepSeek-V3 per GPU without TP), int8 latent rows, f32 scales.
!q = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>, quant = #kv.quant<int8, scale = f32>>
func.func @int8_h128(%ql: tensor<?x128x1x512xbf16>, %qr: tensor<?x128x1x64xbf16>, %c: !q, %lens: tensor<?xi32>, %bt: tensor<?x64xi32>) -> tensor<?x128x1x512xbf16> {
  %o = kv.mla_attention %ql, %qr, %c, %lens block_table %bt {scale = 0.0723 : f32} : (tensor<?x128x1x512xbf16>, tensor<?x128x1x64xbf16>, !q, tensor<?xi32>, tensor<?x64xi32>) -> tensor<?x128x1x512xbf16>
  return %o : tensor<?x128x1x512xbf16>
}

// fp8 rows in groups of 64, page size 1, causal two-row queries, f16.
!f = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 1024, element = f16, layout = #kv.layout<paged, page_size = 1>, quant = #kv.quant<fp8_e4m3, group = 64>>
func.func @fp8_causal(%ql: tensor<?x32x2x512xf16>, %qr: tensor<?x32x2x64xf16>, %c: !f, %lens: tensor<?xi32>, %bt: tensor<?x1024xi32>) -> tensor<?x32x2x512xf16> {
  %o = kv.mla_attention %ql, %qr, %c, %lens block_table %bt {scale = 0.0723 : f32, causal} : (tensor<?x32x2x512xf16>, tensor<?x32x2x64xf16>, !f, tensor<?xi32>, tensor<?x1024xi32>) -> tensor<?x32x2x512xf16>
  return %o : tensor<?x32x2x512xf16>
}

// int4 asymmetric rows in groups of 32, f32 queries and output.
!i = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, quant = #kv.quant<int4, group = 32, symmetric = false>>
func.func @int4(%ql: tensor<?x16x1x512xf32>, %qr: tensor<?x16x1x64xf32>, %c: !i, %lens: tensor<?xi32>, %bt: tensor<?x256xi32>) -> tensor<?x16x1x512xf32> {
  %o = kv.mla_attention %ql, %qr, %c, %lens block_table %bt {scale = 0.0723 : f32} : (tensor<?x16x1x512xf32>, tensor<?x16x1x64xf32>, !i, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x16x1x512xf32>
  return %o : tensor<?x16x1x512xf32>
}

// int8 latent rows with a 16-token recent window and 4 sinks.
func.func @mla_window(%ql: tensor<?x16x1x512xbf16>, %qr: tensor<?x16x1x64xbf16>, %c: !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>, quant = #kv.quant<int8, scale = f32, recent = 16, sinks = 4>>, %lens: tensor<?xi32>, %bt: tensor<?x64xi32>) -> tensor<?x16x1x512xbf16> {
  %o = kv.mla_attention %ql, %qr, %c, %lens block_table %bt {scale = 0.0723 : f32} : (tensor<?x16x1x512xbf16>, tensor<?x16x1x64xbf16>, !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>, quant = #kv.quant<int8, scale = f32, recent = 16, sinks = 4>>, tensor<?xi32>, tensor<?x64xi32>) -> tensor<?x16x1x512xbf16>
  return %o : tensor<?x16x1x512xbf16>
}

// int4 latent rows with per-channel scales over 16 tokens (KIVI-style).
func.func @mla_channel(%ql: tensor<?x16x1x512xbf16>, %qr: tensor<?x16x1x64xbf16>, %c: !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>, quant = #kv.quant<int4, axis = channel, group = 16, symmetric = false, scale = f16, recent = 16>>, %lens: tensor<?xi32>, %bt: tensor<?x64xi32>) -> tensor<?x16x1x512xbf16> {
  %o = kv.mla_attention %ql, %qr, %c, %lens block_table %bt {scale = 0.0723 : f32} : (tensor<?x16x1x512xbf16>, tensor<?x16x1x64xbf16>, !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>, quant = #kv.quant<int4, axis = channel, group = 16, symmetric = false, scale = f16, recent = 16>>, tensor<?xi32>, tensor<?x64xi32>) -> tensor<?x16x1x512xbf16>
  return %o : tensor<?x16x1x512xbf16>
}
