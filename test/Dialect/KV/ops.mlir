// RUN: kvopt-opt %s | kvopt-opt --mlir-print-local-scope | FileCheck %s
// RUN: kvopt-opt %s --mlir-print-op-generic | kvopt-opt --mlir-print-local-scope | FileCheck %s
// Round trip of every kv op, type and attribute, through the custom and the
// generic form.
// A third run checks the type aliases the printer emits for long cache types.
// RUN: kvopt-opt %s | FileCheck %s --check-prefix=ALIAS
// ALIAS-DAG: !kv_cache = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>
// ALIAS-DAG: #kv_quant{{[0-9]*}} = #kv.quant<int8>
// ALIAS-DAG: !kv_latent_cache{{[0-9]*}} = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 1024, element = bf16>

// CHECK-LABEL: func @types
// CHECK-SAME: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>
// CHECK-SAME: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 32>, key = #kv.quant<int4, axis = channel, group = 32, symmetric = false, recent = 128, sinks = 4>, value = #kv.quant<int4, group = 32, symmetric = false>>
// CHECK-SAME: !kv.cache<kv_heads = 1, head_dim = 64, capacity = 7, element = f32, key = #kv.quant<fp8_e4m3, scale = f32>, value = #kv.quant<int2, scale = bf16>>
// CHECK-SAME: !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16>
// CHECK-SAME: !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>, quant = #kv.quant<fp8_e4m3, scale = f32>>
func.func @types(
    %a: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<contiguous>>,
    %b: !kv.cache<head_dim = 128, kv_heads = 8, capacity = 4096, element = bf16,
                  layout = #kv.layout<paged, page_size = 32>,
                  key = #kv.quant<int4, axis = channel, group = 32, symmetric = false, scale = f16, recent = 128, sinks = 4>,
                  value = #kv.quant<int4, axis = token, group = 32, symmetric = false>>,
    %c: !kv.cache<kv_heads = 1, head_dim = 64, capacity = 7, element = f32,
                  key = #kv.quant<fp8_e4m3, scale = f32>, value = #kv.quant<int2, scale = bf16>>,
    %d: !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16>,
    %e: !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16,
                         layout = #kv.layout<paged, page_size = 64>, quant = #kv.quant<fp8_e4m3, scale = f32>>) {
  return
}

!cache = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>
!paged = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>>
!latent = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 1024, element = bf16>

// CHECK-LABEL: func @alloc_share_append_view
func.func @alloc_share_append_view(%pos: tensor<2xi32>, %k: tensor<2x8x3x128xf16>,
                                   %v: tensor<2x8x3x128xf16>) -> tensor<2x8x4096x128xf16> {
  // CHECK: %[[C:.*]] = kv.alloc_cache {layer = 0 : i64} : !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>
  %c = kv.alloc_cache {layer = 0} : !cache
  // CHECK: kv.share_cache %[[C]] {layer = 1 : i64} : !kv.cache<{{.*}}> -> !kv.cache<{{.*}}>
  %s = kv.share_cache %c {layer = 1} : !cache -> !cache
  // CHECK: kv.append %[[C]][%{{.*}}], %{{.*}}, %{{.*}} {rope_theta = 1.000000e+04 : f64} : !kv.cache<{{.*}}>, tensor<2xi32>, tensor<2x8x3x128xf16>, tensor<2x8x3x128xf16>
  kv.append %c[%pos], %k, %v {rope_theta = 10000.0 : f64} : !cache, tensor<2xi32>, tensor<2x8x3x128xf16>, tensor<2x8x3x128xf16>
  // CHECK: kv.view %{{.*}} : !kv.cache<{{.*}}> -> tensor<2x8x4096x128xf16>, tensor<2x8x4096x128xf16>
  %vk, %vv = kv.view %s : !cache -> tensor<2x8x4096x128xf16>, tensor<2x8x4096x128xf16>
  return %vk : tensor<2x8x4096x128xf16>
}

// CHECK-LABEL: func @paged_append_view
func.func @paged_append_view(%c: !paged, %pos: tensor<2xi32>, %k: tensor<2x8x1x128xf16>,
                             %bt: tensor<2x256xi32>) -> tensor<2x8x4096x128xf16> {
  // CHECK: kv.append %{{.*}}[%{{.*}}], %{{.*}}, %{{.*}} block_table %{{.*}} : !kv.cache<{{.*}}>, tensor<2xi32>, tensor<2x8x1x128xf16>, tensor<2x8x1x128xf16>, tensor<2x256xi32>
  kv.append %c[%pos], %k, %k block_table %bt : !paged, tensor<2xi32>, tensor<2x8x1x128xf16>, tensor<2x8x1x128xf16>, tensor<2x256xi32>
  // CHECK: kv.view %{{.*}} block_table %{{.*}} : !kv.cache<{{.*}}>, tensor<2x256xi32> -> tensor<2x8x4096x128xf16>, tensor<2x8x4096x128xf16>
  %vk, %vv = kv.view %c block_table %bt : !paged, tensor<2x256xi32> -> tensor<2x8x4096x128xf16>, tensor<2x8x4096x128xf16>
  return %vv : tensor<2x8x4096x128xf16>
}

// CHECK-LABEL: func @attention
func.func @attention(%q: tensor<2x32x1x128xf16>, %c: !cache, %p: !paged, %lens: tensor<2xi32>,
                     %bt: tensor<?x256xi32>) -> (tensor<2x32x1x128xf16>, tensor<2x32x1xf32>) {
  // CHECK: kv.attention %{{.*}}, %{{.*}}, %{{.*}} {causal} : (tensor<2x32x1x128xf16>, !kv.cache<{{.*}}>, tensor<2xi32>) -> tensor<2x32x1x128xf16>
  %o = kv.attention %q, %c, %lens {causal} : (tensor<2x32x1x128xf16>, !cache, tensor<2xi32>) -> tensor<2x32x1x128xf16>
  // CHECK: kv.attention %{{.*}}, %{{.*}}, %{{.*}} block_table %{{.*}} {scale = 1.250000e-01 : f32, sinks = 4 : i64, window = 1024 : i64} : (tensor<2x32x1x128xf16>, !kv.cache<{{.*}}>, tensor<2xi32>, tensor<?x256xi32>) -> (tensor<2x32x1x128xf16>, tensor<2x32x1xf32>)
  %o2, %lse = kv.attention %q, %p, %lens block_table %bt {scale = 0.125 : f32, window = 1024, sinks = 4}
      : (tensor<2x32x1x128xf16>, !paged, tensor<2xi32>, tensor<?x256xi32>) -> (tensor<2x32x1x128xf16>, tensor<2x32x1xf32>)
  return %o2, %lse : tensor<2x32x1x128xf16>, tensor<2x32x1xf32>
}

// CHECK-LABEL: func @mla
func.func @mla(%h: tensor<1x4x1024xbf16>, %wd: tensor<1024x512xbf16>, %wr: tensor<1024x64xbf16>,
               %c: !latent, %pos: tensor<1xi32>, %ql: tensor<1x16x1x512xbf16>,
               %qr: tensor<1x16x1x64xbf16>, %lens: tensor<1xi32>) -> tensor<1x16x1x512xbf16> {
  // CHECK: kv.mla_project %{{.*}}, %{{.*}}, %{{.*}} : tensor<1x4x1024xbf16>, tensor<1024x512xbf16>, tensor<1024x64xbf16> -> tensor<1x4x576xbf16>
  %row = kv.mla_project %h, %wd, %wr : tensor<1x4x1024xbf16>, tensor<1024x512xbf16>, tensor<1024x64xbf16> -> tensor<1x4x576xbf16>
  // CHECK: kv.append %{{.*}}[%{{.*}}], %{{.*}} {rope_theta = 1.000000e+04 : f64} : !kv.latent_cache<{{.*}}>, tensor<1xi32>, tensor<1x4x576xbf16>
  kv.append %c[%pos], %row {rope_theta = 10000.0 : f64} : !latent, tensor<1xi32>, tensor<1x4x576xbf16>
  // CHECK: kv.view %{{.*}} : !kv.latent_cache<{{.*}}> -> tensor<1x1024x576xbf16>
  %rows = kv.view %c : !latent -> tensor<1x1024x576xbf16>
  // CHECK: kv.mla_attention %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {causal, scale = 0.0721687824 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x16x1x64xbf16>, !kv.latent_cache<{{.*}}>, tensor<1xi32>) -> tensor<1x16x1x512xbf16>
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.0721687824 : f32, causal}
      : (tensor<1x16x1x512xbf16>, tensor<1x16x1x64xbf16>, !latent, tensor<1xi32>) -> tensor<1x16x1x512xbf16>
  return %o : tensor<1x16x1x512xbf16>
}

!latent_paged = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 1024, element = bf16, layout = #kv.layout<paged, page_size = 64>>

// MLA attention over a paged latent cache with a block table, and with the
// log-sum-exp result.
// CHECK-LABEL: func @mla_paged_lse
func.func @mla_paged_lse(%ql: tensor<2x16x1x512xbf16>, %qr: tensor<2x16x1x64xbf16>,
                         %c: !latent, %p: !latent_paged, %lens: tensor<2xi32>,
                         %bt: tensor<?x16xi32>)
    -> (tensor<2x16x1x512xbf16>, tensor<2x16x1xf32>, tensor<2x16x1xf32>) {
  // CHECK: kv.mla_attention %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} block_table %{{.*}} {scale = 0.0721687824 : f32} : (tensor<2x16x1x512xbf16>, tensor<2x16x1x64xbf16>, !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 1024, element = bf16, layout = #kv.layout<paged, page_size = 64>>, tensor<2xi32>, tensor<?x16xi32>) -> (tensor<2x16x1x512xbf16>, tensor<2x16x1xf32>)
  %o, %lse = kv.mla_attention %ql, %qr, %p, %lens block_table %bt {scale = 0.0721687824 : f32}
      : (tensor<2x16x1x512xbf16>, tensor<2x16x1x64xbf16>, !latent_paged, tensor<2xi32>, tensor<?x16xi32>)
      -> (tensor<2x16x1x512xbf16>, tensor<2x16x1xf32>)
  // CHECK: kv.mla_attention %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {causal, scale = 1.250000e-01 : f32} : (tensor<2x16x1x512xbf16>, tensor<2x16x1x64xbf16>, !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 1024, element = bf16>, tensor<2xi32>) -> (tensor<2x16x1x512xbf16>, tensor<2x16x1xf32>)
  %o2, %lse2 = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.125 : f32, causal}
      : (tensor<2x16x1x512xbf16>, tensor<2x16x1x64xbf16>, !latent, tensor<2xi32>)
      -> (tensor<2x16x1x512xbf16>, tensor<2x16x1xf32>)
  return %o, %lse, %lse2 : tensor<2x16x1x512xbf16>, tensor<2x16x1xf32>, tensor<2x16x1xf32>
}

// CHECK-LABEL: func @quantize_roundtrip
func.func @quantize_roundtrip(%x: tensor<32x128xf16>) -> (tensor<32x128xf16>, tensor<32x128xf16>) {
  // CHECK: kv.quantize %{{.*}} {encoding = #kv.quant<int8>} : tensor<32x128xf16> -> tensor<32x128xi8>, tensor<32x1xf16>
  %q, %s = kv.quantize %x {encoding = #kv.quant<int8>} : tensor<32x128xf16> -> tensor<32x128xi8>, tensor<32x1xf16>
  // CHECK: kv.dequantize %{{.*}}, %{{.*}} {encoding = #kv.quant<int8>} : tensor<32x128xi8>, tensor<32x1xf16> -> tensor<32x128xf16>
  %d = kv.dequantize %q, %s {encoding = #kv.quant<int8>} : tensor<32x128xi8>, tensor<32x1xf16> -> tensor<32x128xf16>
  // CHECK: kv.quantize %{{.*}} {encoding = #kv.quant<int4, axis = channel, group = 16, symmetric = false>} : tensor<32x128xf16> -> tensor<32x128xi4>, tensor<2x128xf16>, tensor<2x128xf16>
  %q4, %s4, %z4 = kv.quantize %x {encoding = #kv.quant<int4, axis = channel, group = 16, symmetric = false>}
      : tensor<32x128xf16> -> tensor<32x128xi4>, tensor<2x128xf16>, tensor<2x128xf16>
  // CHECK: kv.dequantize %{{.*}}, %{{.*}}, %{{.*}} {encoding = #kv.quant<int4, axis = channel, group = 16, symmetric = false>} : tensor<32x128xi4>, tensor<2x128xf16>, tensor<2x128xf16> -> tensor<32x128xf16>
  %d4 = kv.dequantize %q4, %s4, %z4 {encoding = #kv.quant<int4, axis = channel, group = 16, symmetric = false>}
      : tensor<32x128xi4>, tensor<2x128xf16>, tensor<2x128xf16> -> tensor<32x128xf16>
  // CHECK: kv.quantize %{{.*}} {encoding = #kv.quant<fp8_e4m3, group = 32, scale = f32>} : tensor<32x128xf16> -> tensor<32x128xf8E4M3FN>, tensor<32x4xf32>
  %q8, %s8 = kv.quantize %x {encoding = #kv.quant<fp8_e4m3, group = 32, scale = f32>} : tensor<32x128xf16> -> tensor<32x128xf8E4M3FN>, tensor<32x4xf32>
  // CHECK: kv.quantize %{{.*}} {encoding = #kv.quant<int2, group = 64, scale = bf16>} : tensor<32x128xf16> -> tensor<32x128xi2>, tensor<32x2xbf16>
  %q2, %s2 = kv.quantize %x {encoding = #kv.quant<int2, group = 64, scale = bf16>} : tensor<32x128xf16> -> tensor<32x128xi2>, tensor<32x2xbf16>
  return %d, %d4 : tensor<32x128xf16>, tensor<32x128xf16>
}

// CHECK-LABEL: func @pages_merge_rope
func.func @pages_merge_rope(%pages: tensor<64x16x8x128xf16>, %bt: tensor<2x8xi32>,
                            %os: tensor<4x2x32x1x128xf32>, %lses: tensor<4x2x32x1xf32>,
                            %k: tensor<2x8x3x128xf16>, %pos: tensor<2xi32>)
    -> (tensor<2x8x128x128xf16>, tensor<2x32x1x128xf32>, tensor<2x32x1xf32>, tensor<2x8x3x128xf16>) {
  // CHECK: kv.gather_pages %{{.*}}, %{{.*}} : tensor<64x16x8x128xf16>, tensor<2x8xi32> -> tensor<2x8x128x128xf16>
  %g = kv.gather_pages %pages, %bt : tensor<64x16x8x128xf16>, tensor<2x8xi32> -> tensor<2x8x128x128xf16>
  // CHECK: kv.merge_states %{{.*}}, %{{.*}} : tensor<4x2x32x1x128xf32>, tensor<4x2x32x1xf32> -> tensor<2x32x1x128xf32>, tensor<2x32x1xf32>
  %o, %l = kv.merge_states %os, %lses : tensor<4x2x32x1x128xf32>, tensor<4x2x32x1xf32> -> tensor<2x32x1x128xf32>, tensor<2x32x1xf32>
  // CHECK: kv.rope %{{.*}}, %{{.*}} {theta = 5.000000e+05 : f64} : tensor<2x8x3x128xf16>, tensor<2xi32> -> tensor<2x8x3x128xf16>
  %r = kv.rope %k, %pos {theta = 500000.0 : f64} : tensor<2x8x3x128xf16>, tensor<2xi32> -> tensor<2x8x3x128xf16>
  return %g, %o, %l, %r : tensor<2x8x128x128xf16>, tensor<2x32x1x128xf32>, tensor<2x32x1xf32>, tensor<2x8x3x128xf16>
}
