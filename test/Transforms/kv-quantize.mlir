// RUN: kvopt-opt %s -split-input-file -kv-quantize --mlir-print-local-scope | FileCheck %s --check-prefix=DEFAULT
// RUN: kvopt-opt %s -split-input-file -kv-quantize="key=int4 key-axis=channel key-group=32 value=int2 value-group=32 symmetric=true scale-type=f32 recent=64 sinks=4" --mlir-print-local-scope | FileCheck %s --check-prefix=KIVI
// RUN: kvopt-opt %s -split-input-file -kv-quantize="key=fp8_e4m3 key-axis=token key-group=0 value=none" --mlir-print-local-scope | FileCheck %s --check-prefix=FP8

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>

// The defaults are KIVI's: int8 keys per channel in 32-token groups (whose
// last 31 tokens stay in full precision until the group completes), int8
// values per token, asymmetric f16 scales.
// DEFAULT-LABEL: func @kv
// DEFAULT-SAME: key = #kv.quant<int8, axis = channel, group = 32, symmetric = false, recent = 31>, value = #kv.quant<int8, symmetric = false>>
// KIVI-LABEL: func @kv
// KIVI-SAME: key = #kv.quant<int4, axis = channel, group = 32, scale = f32, recent = 64, sinks = 4>, value = #kv.quant<int2, group = 32, scale = f32, recent = 64, sinks = 4>>
// FP8-LABEL: func @kv
// FP8-SAME: key = #kv.quant<fp8_e4m3>>
// FP8-NOT: value =
func.func @kv(%c: !c, %q: tensor<1x8x1x128xf16>, %lens: tensor<1xi32>) -> tensor<1x8x1x128xf16> {
  // The attention op is untouched: dequantization is the cache's business.
  // DEFAULT: kv.attention {{.*}} -> tensor<1x8x1x128xf16>
  %o = kv.attention %q, %c, %lens : (tensor<1x8x1x128xf16>, !c, tensor<1xi32>) -> tensor<1x8x1x128xf16>
  return %o : tensor<1x8x1x128xf16>
}

// -----

// A side that is already quantized keeps its encoding.
// DEFAULT-LABEL: func @keep
// DEFAULT-SAME: key = #kv.quant<int2, group = 64>, value = #kv.quant<int8, symmetric = false>>
func.func @keep(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, key = #kv.quant<int2, group = 64>>) {
  return
}

// -----

// Latent caches take the key options for their single row.
// DEFAULT-LABEL: func @latent
// DEFAULT-SAME: quant = #kv.quant<int8, axis = channel, group = 32, symmetric = false, recent = 31>>
// FP8-LABEL: func @latent
// FP8-SAME: quant = #kv.quant<fp8_e4m3>>
func.func @latent(%c: !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16>) {
  return
}

// -----

// Ops and types that hold no cache are left alone.
// DEFAULT-LABEL: func @no_cache
// DEFAULT-NOT: kv.quant
func.func @no_cache(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
