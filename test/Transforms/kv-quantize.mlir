// RUN: kvopt-opt %s -split-input-file -kv-quantize --mlir-print-local-scope | FileCheck %s --check-prefix=DEFAULT
// RUN: kvopt-opt %s -split-input-file -kv-quantize="key=int4 key-axis=channel key-group=32 value=int2 value-group=32 symmetric=true scale-type=f32 recent=64 sinks=4" --mlir-print-local-scope | FileCheck %s --check-prefix=KIVI
// RUN: kvopt-opt %s -split-input-file -kv-quantize="key=fp8_e4m3 key-axis=token key-group=0 value=none" --mlir-print-local-scope | FileCheck %s --check-prefix=FP8
// RUN: kvopt-opt %s -split-input-file -kv-quantize="key=int4 value=int4 value-group=32 recent=64 sinks=4 value-recent=0 key-sinks=0" --mlir-print-local-scope | FileCheck %s --check-prefix=SIDES
// RUN: kvopt-opt %s -split-input-file -kv-quantize="recent=64 key-recent=-1 value-sinks=2" --mlir-print-local-scope | FileCheck %s --check-prefix=AUTO

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

// Per-side windows override the shared `recent` and `sinks` for one side.
// With the SIDES options, keys keep recent=64 and drop the sinks
// (key-sinks=0); values keep the 4 sinks and no recent window
// (value-recent=0).
// SIDES-LABEL: func @sides
// SIDES-SAME: key = #kv.quant<int4, axis = channel, group = 32, symmetric = false, recent = 64>, value = #kv.quant<int4, group = 32, symmetric = false, sinks = 4>>
// With the AUTO options, key-recent=-1 asks for what the per-channel keys
// need (31) whatever `recent` says; the values take recent=64 and their
// own 2 sinks.
// AUTO-LABEL: func @sides
// AUTO-SAME: key = #kv.quant<int8, axis = channel, group = 32, symmetric = false, recent = 31>, value = #kv.quant<int8, symmetric = false, recent = 64, sinks = 2>>
func.func @sides(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>) {
  return
}

// -----

// Latent caches take the key options for their single row.
// SIDES-LABEL: func @latent
// SIDES-SAME: quant = #kv.quant<int4, axis = channel, group = 32, symmetric = false, recent = 64>>
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
