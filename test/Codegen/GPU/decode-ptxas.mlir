// Every generated decode and merge kernel assembles with ptxas for sm_80 and
// sm_90 without spills and without local memory (stack frame).
// REQUIRES: ptxas
// RUN: rm -rf %t && %kvopt_lib/../bin/kvopt-gpu-bundle --ptx-only %s -o %t
// RUN: %ptxas -v -arch=sm_80 %t/kernels.sm_80.ptx -o %t/k80.cubin 2>&1 | FileCheck %s
// RUN: %ptxas -v -arch=sm_90 %t/kernels.sm_90.ptx -o %t/k90.cubin 2>&1 | FileCheck %s
// CHECK-NOT: bytes stack frame, {{[1-9]}}
// CHECK-COUNT-14: 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
// CHECK-NOT: {{[1-9][0-9]* bytes (stack frame|spill)}}

// f16, head dim 128, group 8, page 16 (the traffic goal configuration).
func.func @f16_d128_g8(%q: tensor<?x64x1x128xf16>, %c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>>, %lens: tensor<?xi32>, %bt: tensor<?x256xi32>) -> tensor<?x64x1x128xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<?x64x1x128xf16>, !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>>, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x64x1x128xf16>
  return %o : tensor<?x64x1x128xf16>
}

// bf16, head dim 256, group 8, page 64: the widest accumulator set.
func.func @bf16_d256_g16(%q: tensor<?x8x1x256xbf16>, %c: !kv.cache<kv_heads = 1, head_dim = 256, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>>, %lens: tensor<?xi32>, %bt: tensor<?x64xi32>) -> tensor<?x8x1x256xbf16> {
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<?x8x1x256xbf16>, !kv.cache<kv_heads = 1, head_dim = 256, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>>, tensor<?xi32>, tensor<?x64xi32>) -> tensor<?x8x1x256xbf16>
  return %o : tensor<?x8x1x256xbf16>
}

// f32, head dim 64, page size 1, MHA.
func.func @f32_d64_p1(%q: tensor<?x4x1x64xf32>, %c: !kv.cache<kv_heads = 4, head_dim = 64, capacity = 1024, element = f32, layout = #kv.layout<paged, page_size = 1>>, %lens: tensor<?xi32>, %bt: tensor<?x1024xi32>) -> tensor<?x4x1x64xf32> {
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<?x4x1x64xf32>, !kv.cache<kv_heads = 4, head_dim = 64, capacity = 1024, element = f32, layout = #kv.layout<paged, page_size = 1>>, tensor<?xi32>, tensor<?x1024xi32>) -> tensor<?x4x1x64xf32>
  return %o : tensor<?x4x1x64xf32>
}

// int8 per-token f32 scales.
func.func @int8(%q: tensor<?x32x1x128xf16>, %c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int8, scale = f32>, value = #kv.quant<int8, scale = f32>>, %lens: tensor<?xi32>, %bt: tensor<?x256xi32>) -> tensor<?x32x1x128xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<?x32x1x128xf16>, !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int8, scale = f32>, value = #kv.quant<int8, scale = f32>>, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x32x1x128xf16>
  return %o : tensor<?x32x1x128xf16>
}

// fp8 e4m3 keys, int4 asymmetric grouped values.
func.func @fp8_int4(%q: tensor<?x32x1x128xf16>, %c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<fp8_e4m3, scale = f32>, value = #kv.quant<int4, group = 32, symmetric = false>>, %lens: tensor<?xi32>, %bt: tensor<?x256xi32>) -> tensor<?x32x1x128xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<?x32x1x128xf16>, !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<fp8_e4m3, scale = f32>, value = #kv.quant<int4, group = 32, symmetric = false>>, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x32x1x128xf16>
  return %o : tensor<?x32x1x128xf16>
}

// int2 asymmetric keys and values, page 256.
func.func @int2(%q: tensor<?x32x1x128xf16>, %c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 256>, key = #kv.quant<int2, group = 32, symmetric = false>, value = #kv.quant<int2, group = 32, symmetric = false>>, %lens: tensor<?xi32>, %bt: tensor<?x16xi32>) -> tensor<?x32x1x128xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<?x32x1x128xf16>, !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 256>, key = #kv.quant<int2, group = 32, symmetric = false>, value = #kv.quant<int2, group = 32, symmetric = false>>, tensor<?xi32>, tensor<?x16xi32>) -> tensor<?x32x1x128xf16>
  return %o : tensor<?x32x1x128xf16>
}

// KIVI: int4 keys per channel over 16 tokens and int4 values per token, both
// with a 16-token full-precision recent window (and 4 sinks on the values).
func.func @kivi(%q: tensor<?x32x1x128xf16>, %c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, scale = f16, recent = 16>, value = #kv.quant<int4, group = 32, symmetric = false, scale = f16, recent = 16, sinks = 4>>, %lens: tensor<?xi32>, %bt: tensor<?x256xi32>) -> tensor<?x32x1x128xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<?x32x1x128xf16>, !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, axis = channel, group = 16, symmetric = false, scale = f16, recent = 16>, value = #kv.quant<int4, group = 32, symmetric = false, scale = f16, recent = 16, sinks = 4>>, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x32x1x128xf16>
  return %o : tensor<?x32x1x128xf16>
}
