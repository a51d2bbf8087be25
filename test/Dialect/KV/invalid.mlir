// RUN: kvopt-opt %s -split-input-file -verify-diagnostics
// Every verifier message of the kv dialect, word for word.

// A paged layout needs a page size.
// expected-error @+1 {{paged layout needs a positive page_size, got 0}}
func.func @page_size_zero(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 0>>)

// -----

// Omitting the page size is the same mistake.
// expected-error @+1 {{paged layout needs a positive page_size, got 0}}
func.func @page_size_missing(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged>>)

// -----

// Contiguous caches have no pages.
// expected-error @+1 {{contiguous layout takes no page_size}}
func.func @contiguous_page_size(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<contiguous, page_size = 16>>)

// -----

// Only 8, 4 and 2 bit encodings exist.
// expected-error @+1 {{unknown quantization kind 'int3'; expected int8, fp8_e4m3, int4 or int2}}
func.func @bad_bits(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<int3>>)

// -----

// expected-error @+1 {{unknown scale axis 'row'; expected token or channel}}
func.func @bad_axis(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<int8, axis = row>>)

// -----

// expected-error @+1 {{unknown key 'bits' in #kv.quant; expected axis, group, symmetric, scale, recent or sinks}}
func.func @bad_quant_key(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<int8, bits = 3>>)

// -----

// expected-error @+1 {{duplicate key 'group' in #kv.quant}}
func.func @dup_quant_key(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<int8, group = 4, group = 8>>)

// -----

// expected-error @+1 {{expected 'true' or 'false'}}
func.func @bad_symmetric(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<int8, symmetric = yes>>)

// -----

// expected-error @+1 {{quantization group size must be non-negative, got -4}}
func.func @negative_group(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<int8, group = -4>>)

// -----

// Per-channel scales are computed over groups of tokens, so a group is needed.
// expected-error @+1 {{per-channel scales need a token group size (group >= 1)}}
func.func @channel_no_group(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<int4, axis = channel>>)

// -----

// expected-error @+1 {{scale type must be f16, bf16 or f32, got 'i8'}}
func.func @bad_scale_type(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<int8, scale = i8>>)

// -----

// expected-error @+1 {{fp8_e4m3 encoding does not support a zero point (symmetric = false)}}
func.func @fp8_zero_point(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<fp8_e4m3, symmetric = false>>)

// -----

// expected-error @+1 {{recent window must be non-negative, got -1}}
func.func @negative_recent(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<int8, recent = -1>>)

// -----

// expected-error @+1 {{sink token count must be non-negative, got -2}}
func.func @negative_sinks(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<int8, sinks = -2>>)

// -----

// A per-token group must tile the head.
// expected-error @+1 {{value encoding group size 48 does not divide head dim 128}}
func.func @group_not_dividing(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, value = #kv.quant<int8, group = 48>>)

// -----

// int2 packs four values per byte; a group of 6 would split a byte.
// expected-error @+1 {{key encoding int2 packs 4 values per byte; group size 6 is not a multiple of 4}}
func.func @int2_group(%c: !kv.cache<kv_heads = 1, head_dim = 12, capacity = 64, element = f16, key = #kv.quant<int2, group = 6>>)

// -----

// expected-error @+1 {{key encoding int4 packs 2 values per byte; head dim 5 is not a multiple of 2}}
func.func @int4_odd_dim(%c: !kv.cache<kv_heads = 2, head_dim = 5, capacity = 64, element = f16, key = #kv.quant<int4, axis = channel, group = 4, recent = 3>>)

// -----

// Per-channel scale groups must not straddle pages.
// expected-error @+1 {{key encoding token group 32 does not divide page size 16}}
func.func @channel_group_vs_page(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, axis = channel, group = 32>>)

// -----

// Per-channel groups are quantized when complete; until then the tokens live
// in the full-precision recent window.
// expected-error @+1 {{key encoding scales channels over groups of 32 tokens; its recent window must hold an incomplete group (recent >= 31), got 16}}
func.func @channel_group_recent(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = #kv.quant<int4, axis = channel, group = 32, recent = 16>>)

// -----

// expected-error @+1 {{value encoding keeps 80 full-precision tokens, more than the capacity 64}}
func.func @window_exceeds_capacity(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, value = #kv.quant<int8, recent = 64, sinks = 16>>)

// -----

// expected-error @+1 {{number of KV heads must be positive, got 0}}
func.func @zero_heads(%c: !kv.cache<kv_heads = 0, head_dim = 128, capacity = 64, element = f16>)

// -----

// expected-error @+1 {{head dim must be positive, got 0}}
func.func @zero_dim(%c: !kv.cache<kv_heads = 8, head_dim = 0, capacity = 64, element = f16>)

// -----

// expected-error @+1 {{cache capacity must be positive, got 0}}
func.func @zero_capacity(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 0, element = f16>)

// -----

// expected-error @+1 {{cache element type must be f16, bf16 or f32, got 'i8'}}
func.func @int_element(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = i8>)

// -----

// expected-error @+1 {{!kv.cache needs 'capacity'}}
func.func @missing_key(%c: !kv.cache<kv_heads = 8, head_dim = 128, element = f16>)

// -----

// expected-error @+1 {{unknown key 'heads' in !kv.cache; expected kv_heads, head_dim, capacity, element, layout, key, value}}
func.func @unknown_cache_key(%c: !kv.cache<heads = 8, head_dim = 128, capacity = 64, element = f16>)

// -----

// expected-error @+1 {{duplicate key 'head_dim' in !kv.cache}}
func.func @dup_cache_key(%c: !kv.cache<kv_heads = 8, head_dim = 128, head_dim = 64, capacity = 64, element = f16>)

// -----

// expected-error @+1 {{expected a #kv.quant attribute}}
func.func @key_not_quant(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, key = 3 : i64>)

// -----

// expected-error @+1 {{expected a #kv.layout attribute}}
func.func @layout_not_layout(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.quant<int8>>)

// -----

// expected-error @+1 {{latent dim must be positive, got 0}}
func.func @latent_zero(%c: !kv.latent_cache<latent_dim = 0, rope_dim = 64, capacity = 64, element = bf16>)

// -----

// expected-error @+1 {{rope dim must be even and non-negative, got 63}}
func.func @latent_odd_rope(%c: !kv.latent_cache<latent_dim = 512, rope_dim = 63, capacity = 64, element = bf16>)

// -----

// A per-token group of a latent row must tile the 576-wide row.
// expected-error @+1 {{latent encoding group size 128 does not divide row width 576}}
func.func @latent_group(%c: !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16, quant = #kv.quant<int8, group = 128>>)

// -----

// The element type has no default.
// expected-error @+1 {{!kv.cache needs 'element'}}
func.func @cache_no_element(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64>)

// -----

// Latent caches have no KV heads.
// expected-error @+1 {{unknown key 'kv_heads' in !kv.latent_cache; expected latent_dim, rope_dim, capacity, element, layout, quant}}
func.func @latent_bad_key(%c: !kv.latent_cache<kv_heads = 8, latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>)

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>
!d = !kv.cache<kv_heads = 4, head_dim = 128, capacity = 64, element = f16>

// A layer can only share a cache of its own shape.
func.func @share_other_shape() {
  %c = kv.alloc_cache {layer = 0} : !c
  // expected-error @+1 {{'kv.share_cache' op layer 1 cannot share a cache of a different shape: the source is '!kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>' but the layer expects '!kv.cache<kv_heads = 4, head_dim = 128, capacity = 64, element = f16>'}}
  %s = kv.share_cache %c {layer = 1} : !c -> !d
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @share_own_layer() {
  %c = kv.alloc_cache {layer = 3} : !c
  // expected-error @+1 {{'kv.share_cache' op layer 3 already owns this cache}}
  %s = kv.share_cache %c {layer = 3} : !c -> !c
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

// Layers that share a cache read it; only the owner appends.
func.func @append_through_share(%pos: tensor<1xi32>, %k: tensor<1x8x1x128xf16>) {
  %c = kv.alloc_cache {layer = 0} : !c
  %s = kv.share_cache %c {layer = 1} : !c -> !c
  // expected-error @+1 {{'kv.append' op cannot append through kv.share_cache (layer 1): only the layer owning a shared cache appends}}
  kv.append %s[%pos], %k, %k : !c, tensor<1xi32>, tensor<1x8x1x128xf16>, tensor<1x8x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @append_without_values(%c: !c, %pos: tensor<1xi32>, %k: tensor<1x8x1x128xf16>) {
  // expected-error @+1 {{'kv.append' op appending to a !kv.cache needs keys and values}}
  kv.append %c[%pos], %k : !c, tensor<1xi32>, tensor<1x8x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @append_rank(%c: !c, %pos: tensor<1xi32>, %k: tensor<8x1x128xf16>) {
  // expected-error @+1 {{'kv.append' op keys must be a rank-4 tensor (batch x kv_heads x tokens x head_dim), got 'tensor<8x1x128xf16>'}}
  kv.append %c[%pos], %k, %k : !c, tensor<1xi32>, tensor<8x1x128xf16>, tensor<8x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @append_heads(%c: !c, %pos: tensor<1xi32>, %k: tensor<1x4x1x128xf16>) {
  // expected-error @+1 {{'kv.append' op keys has KV heads 4, expected 8}}
  kv.append %c[%pos], %k, %k : !c, tensor<1xi32>, tensor<1x4x1x128xf16>, tensor<1x4x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

// Head dims of the new keys and of the cache must agree.
func.func @append_dim(%c: !c, %pos: tensor<1xi32>, %k: tensor<1x8x1x64xf16>) {
  // expected-error @+1 {{'kv.append' op keys has head dim 64, expected 128}}
  kv.append %c[%pos], %k, %k : !c, tensor<1xi32>, tensor<1x8x1x64xf16>, tensor<1x8x1x64xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @append_value_type(%c: !c, %pos: tensor<1xi32>, %k: tensor<1x8x1x128xf16>, %v: tensor<1x8x2x128xf16>) {
  // expected-error @+1 {{'kv.append' op values type 'tensor<1x8x2x128xf16>' differs from keys type 'tensor<1x8x1x128xf16>'}}
  kv.append %c[%pos], %k, %v : !c, tensor<1xi32>, tensor<1x8x1x128xf16>, tensor<1x8x2x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @append_batch(%c: !c, %pos: tensor<2xi32>, %k: tensor<1x8x1x128xf16>) {
  // expected-error @+1 {{'kv.append' op keys has batch 1, expected 2}}
  kv.append %c[%pos], %k, %k : !c, tensor<2xi32>, tensor<1x8x1x128xf16>, tensor<1x8x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @append_element(%c: !c, %pos: tensor<1xi32>, %k: tensor<1x8x1x128xf32>) {
  // expected-error @+1 {{'kv.append' op keys element type 'f32' differs from the cache element type 'f16'}}
  kv.append %c[%pos], %k, %k : !c, tensor<1xi32>, tensor<1x8x1x128xf32>, tensor<1x8x1x128xf32>
  return
}

// -----

!c = !kv.cache<kv_heads = 1, head_dim = 7, capacity = 64, element = f16>

func.func @append_rope_odd(%c: !c, %pos: tensor<1xi32>, %k: tensor<1x1x1x7xf16>) {
  // expected-error @+1 {{'kv.append' op rope needs an even head dim}}
  kv.append %c[%pos], %k, %k {rope_theta = 10000.0 : f64} : !c, tensor<1xi32>, tensor<1x1x1x7xf16>, tensor<1x1x1x7xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 1, head_dim = 8, capacity = 64, element = f16>

func.func @append_rope_negative(%c: !c, %pos: tensor<1xi32>, %k: tensor<1x1x1x8xf16>) {
  // expected-error @+1 {{'kv.append' op rope_theta must be positive}}
  kv.append %c[%pos], %k, %k {rope_theta = -1.0 : f64} : !c, tensor<1xi32>, tensor<1x1x1x8xf16>, tensor<1x1x1x8xf16>
  return
}

// -----

!p = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>

// The block table is how a paged cache finds its pages.
func.func @append_paged_no_table(%c: !p, %pos: tensor<1xi32>, %k: tensor<1x8x1x128xf16>) {
  // expected-error @+1 {{'kv.append' op a paged cache needs a block table}}
  kv.append %c[%pos], %k, %k : !p, tensor<1xi32>, tensor<1x8x1x128xf16>, tensor<1x8x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @append_contiguous_table(%c: !c, %pos: tensor<1xi32>, %k: tensor<1x8x1x128xf16>, %bt: tensor<1x4xi32>) {
  // expected-error @+1 {{'kv.append' op a contiguous cache takes no block table}}
  kv.append %c[%pos], %k, %k block_table %bt : !c, tensor<1xi32>, tensor<1x8x1x128xf16>, tensor<1x8x1x128xf16>, tensor<1x4xi32>
  return
}

// -----

!p = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>

func.func @table_too_long(%c: !p, %pos: tensor<1xi32>, %k: tensor<1x8x1x128xf16>, %bt: tensor<1x5xi32>) {
  // expected-error @+1 {{'kv.append' op block table has 5 pages per sequence, but capacity 64 at page size 16 needs at most 4}}
  kv.append %c[%pos], %k, %k block_table %bt : !p, tensor<1xi32>, tensor<1x8x1x128xf16>, tensor<1x8x1x128xf16>, tensor<1x5xi32>
  return
}

// -----

!p = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>

func.func @table_batch(%c: !p, %pos: tensor<2xi32>, %k: tensor<2x8x1x128xf16>, %bt: tensor<3x4xi32>) {
  // expected-error @+1 {{'kv.append' op block table has batch 3, expected 2}}
  kv.append %c[%pos], %k, %k block_table %bt : !p, tensor<2xi32>, tensor<2x8x1x128xf16>, tensor<2x8x1x128xf16>, tensor<3x4xi32>
  return
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @latent_append_values(%c: !l, %pos: tensor<1xi32>, %r: tensor<1x1x576xbf16>) {
  // expected-error @+1 {{'kv.append' op a latent cache stores one row per token; it takes no values}}
  kv.append %c[%pos], %r, %r : !l, tensor<1xi32>, tensor<1x1x576xbf16>, tensor<1x1x576xbf16>
  return
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @latent_append_width(%c: !l, %pos: tensor<1xi32>, %r: tensor<1x1x512xbf16>) {
  // expected-error @+1 {{'kv.append' op latent rows has width 512, expected 576}}
  kv.append %c[%pos], %r : !l, tensor<1xi32>, tensor<1x1x512xbf16>
  return
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 0, capacity = 64, element = bf16>

func.func @latent_rope_none(%c: !l, %pos: tensor<1xi32>, %r: tensor<1x1x512xbf16>) {
  // expected-error @+1 {{'kv.append' op rope_theta given but the latent cache has no rope part}}
  kv.append %c[%pos], %r {rope_theta = 10000.0 : f64} : !l, tensor<1xi32>, tensor<1x1x512xbf16>
  return
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @latent_append_rank(%c: !l, %pos: tensor<1xi32>, %r: tensor<1x1x1x576xbf16>) {
  // expected-error @+1 {{'kv.append' op latent rows must be a rank-3 tensor (batch x tokens x (latent_dim + rope_dim)), got 'tensor<1x1x1x576xbf16>'}}
  kv.append %c[%pos], %r : !l, tensor<1xi32>, tensor<1x1x1x576xbf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @view_one_result(%c: !c) {
  // expected-error @+1 {{'kv.view' op viewing a !kv.cache gives keys and values}}
  %k = kv.view %c : !c -> tensor<1x8x64x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @view_capacity(%c: !c) {
  // expected-error @+1 {{'kv.view' op keys has tokens 32, expected 64}}
  %k, %v = kv.view %c : !c -> tensor<1x8x32x128xf16>, tensor<1x8x32x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @view_kv_types(%c: !c) {
  // expected-error @+1 {{'kv.view' op values type 'tensor<2x8x64x128xf16>' differs from keys type 'tensor<1x8x64x128xf16>'}}
  %k, %v = kv.view %c : !c -> tensor<1x8x64x128xf16>, tensor<2x8x64x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @view_element(%c: !c) {
  // expected-error @+1 {{'kv.view' op result element type 'f32' differs from the cache element type 'f16'}}
  %k, %v = kv.view %c : !c -> tensor<1x8x64x128xf32>, tensor<1x8x64x128xf32>
  return
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @view_latent_two(%c: !l) {
  // expected-error @+1 {{'kv.view' op viewing a !kv.latent_cache gives one tensor}}
  %k, %v = kv.view %c : !l -> tensor<1x64x576xbf16>, tensor<1x64x576xbf16>
  return
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @view_latent_width(%c: !l) {
  // expected-error @+1 {{'kv.view' op latent rows has width 512, expected 576}}
  %k = kv.view %c : !l -> tensor<1x64x512xbf16>
  return
}

// -----

// A view of a per-head cache is rank 4, not 3.
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @view_rank(%c: !c) {
  // expected-error @+1 {{'kv.view' op keys must be a rank-4 tensor (batch x kv_heads x capacity x head_dim), got 'tensor<8x64x128xf16>'}}
  %k, %v = kv.view %c : !c -> tensor<8x64x128xf16>, tensor<8x64x128xf16>
  return
}

// -----

// The view has 4 KV heads but the cache 8.
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @view_heads(%c: !c) {
  // expected-error @+1 {{'kv.view' op keys has KV heads 4, expected 8}}
  %k, %v = kv.view %c : !c -> tensor<1x4x64x128xf16>, tensor<1x4x64x128xf16>
  return
}

// -----

// The view's head dim 64 is not the cache's 128.
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @view_dim(%c: !c) {
  // expected-error @+1 {{'kv.view' op keys has head dim 64, expected 128}}
  %k, %v = kv.view %c : !c -> tensor<1x8x64x64xf16>, tensor<1x8x64x64xf16>
  return
}

// -----

// A view of a latent cache is rank 3 (batch x capacity x row), not 2.
!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @view_latent_rank(%c: !l) {
  // expected-error @+1 {{'kv.view' op latent rows must be a rank-3 tensor (batch x capacity x (latent_dim + rope_dim)), got 'tensor<64x576xbf16>'}}
  %r = kv.view %c : !l -> tensor<64x576xbf16>
  return
}

// -----

// A latent view covers all 64 token slots, not 32.
!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @view_latent_tokens(%c: !l) {
  // expected-error @+1 {{'kv.view' op latent rows has tokens 32, expected 64}}
  %r = kv.view %c : !l -> tensor<1x32x576xbf16>
  return
}

// -----

// Viewing a paged cache without its block table.
!p = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>

func.func @view_paged_no_table(%c: !p) {
  // expected-error @+1 {{'kv.view' op a paged cache needs a block table}}
  %k, %v = kv.view %c : !p -> tensor<1x8x64x128xf16>, tensor<1x8x64x128xf16>
  return
}

// -----

// A contiguous cache given a block table.
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @view_contiguous_table(%c: !c, %bt: tensor<1x4xi32>) {
  // expected-error @+1 {{'kv.view' op a contiguous cache takes no block table}}
  %k, %v = kv.view %c block_table %bt : !c, tensor<1x4xi32> -> tensor<1x8x64x128xf16>, tensor<1x8x64x128xf16>
  return
}

// -----

// Capacity 64 at page size 16 is 4 pages, not 5.
!p = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>

func.func @view_table_too_long(%c: !p, %bt: tensor<1x5xi32>) {
  // expected-error @+1 {{'kv.view' op block table has 5 pages per sequence, but capacity 64 at page size 16 needs at most 4}}
  %k, %v = kv.view %c block_table %bt : !p, tensor<1x5xi32> -> tensor<1x8x64x128xf16>, tensor<1x8x64x128xf16>
  return
}

// -----

// The block table has 3 rows for a batch of 2.
!p = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>

func.func @view_table_batch(%c: !p, %bt: tensor<3x4xi32>) {
  // expected-error @+1 {{'kv.view' op block table has batch 3, expected 2}}
  %k, %v = kv.view %c block_table %bt : !p, tensor<3x4xi32> -> tensor<2x8x64x128xf16>, tensor<2x8x64x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

// GQA needs a whole number of query heads per KV head.
func.func @attention_heads(%q: tensor<1x30x1x128xf16>, %c: !c, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.attention' op query heads (30) must be a multiple of the cache's KV heads (8)}}
  %o = kv.attention %q, %c, %lens : (tensor<1x30x1x128xf16>, !c, tensor<1xi32>) -> tensor<1x30x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @attention_dim(%q: tensor<1x32x1x64xf16>, %c: !c, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.attention' op queries has head dim 64, expected 128}}
  %o = kv.attention %q, %c, %lens : (tensor<1x32x1x64xf16>, !c, tensor<1xi32>) -> tensor<1x32x1x64xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @attention_rank(%q: tensor<32x1x128xf16>, %c: !c, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.attention' op queries must be a rank-4 tensor (batch x q_heads x tokens x head_dim), got 'tensor<32x1x128xf16>'}}
  %o = kv.attention %q, %c, %lens : (tensor<32x1x128xf16>, !c, tensor<1xi32>) -> tensor<32x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @attention_lens(%q: tensor<2x32x1x128xf16>, %c: !c, %lens: tensor<3xi32>) {
  // expected-error @+1 {{'kv.attention' op sequence lengths has batch 3, expected 2}}
  %o = kv.attention %q, %c, %lens : (tensor<2x32x1x128xf16>, !c, tensor<3xi32>) -> tensor<2x32x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @attention_output(%q: tensor<2x32x1x128xf16>, %c: !c, %lens: tensor<2xi32>) {
  // expected-error @+1 {{'kv.attention' op output type 'tensor<2x32x2x128xf16>' must have shape batch x heads x tokens x 128 matching the queries}}
  %o = kv.attention %q, %c, %lens : (tensor<2x32x1x128xf16>, !c, tensor<2xi32>) -> tensor<2x32x2x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @attention_lse(%q: tensor<2x32x1x128xf16>, %c: !c, %lens: tensor<2xi32>) {
  // expected-error @+1 {{'kv.attention' op log-sum-exp type 'tensor<2x32xf32>' must have the output's shape without its last dimension}}
  %o, %l = kv.attention %q, %c, %lens : (tensor<2x32x1x128xf16>, !c, tensor<2xi32>) -> (tensor<2x32x1x128xf16>, tensor<2x32xf32>)
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

// StreamingLLM sinks only make sense beside a sliding window.
func.func @attention_sinks(%q: tensor<1x32x1x128xf16>, %c: !c, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.attention' op sinks only apply together with a sliding window}}
  %o = kv.attention %q, %c, %lens {sinks = 4} : (tensor<1x32x1x128xf16>, !c, tensor<1xi32>) -> tensor<1x32x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @attention_scale(%q: tensor<1x32x1x128xf16>, %c: !c, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.attention' op scale must be positive}}
  %o = kv.attention %q, %c, %lens {scale = 0.0 : f32} : (tensor<1x32x1x128xf16>, !c, tensor<1xi32>) -> tensor<1x32x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @attention_window(%q: tensor<1x32x1x128xf16>, %c: !c, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.attention' op attribute 'window' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %o = kv.attention %q, %c, %lens {window = 0} : (tensor<1x32x1x128xf16>, !c, tensor<1xi32>) -> tensor<1x32x1x128xf16>
  return
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @attention_latent(%q: tensor<1x16x1x576xbf16>, %c: !l, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.attention' op expects a !kv.cache; attend over a !kv.latent_cache with kv.mla_attention}}
  %o = kv.attention %q, %c, %lens : (tensor<1x16x1x576xbf16>, !l, tensor<1xi32>) -> tensor<1x16x1x576xbf16>
  return
}

// -----

!p = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>

func.func @attention_paged(%q: tensor<1x32x1x128xf16>, %c: !p, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.attention' op a paged cache needs a block table}}
  %o = kv.attention %q, %c, %lens : (tensor<1x32x1x128xf16>, !p, tensor<1xi32>) -> tensor<1x32x1x128xf16>
  return
}

// -----

// A contiguous cache given a block table.
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @attention_contiguous_table(%q: tensor<1x32x1x128xf16>, %c: !c, %lens: tensor<1xi32>, %bt: tensor<1x4xi32>) {
  // expected-error @+1 {{'kv.attention' op a contiguous cache takes no block table}}
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<1x32x1x128xf16>, !c, tensor<1xi32>, tensor<1x4xi32>) -> tensor<1x32x1x128xf16>
  return
}

// -----

// Capacity 64 at page size 16 is 4 pages, not 5.
!p = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>

func.func @attention_table_too_long(%q: tensor<1x32x1x128xf16>, %c: !p, %lens: tensor<1xi32>, %bt: tensor<1x5xi32>) {
  // expected-error @+1 {{'kv.attention' op block table has 5 pages per sequence, but capacity 64 at page size 16 needs at most 4}}
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<1x32x1x128xf16>, !p, tensor<1xi32>, tensor<1x5xi32>) -> tensor<1x32x1x128xf16>
  return
}

// -----

// The block table has 3 rows for a batch of 2.
!p = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>

func.func @attention_table_batch(%q: tensor<2x32x1x128xf16>, %c: !p, %lens: tensor<2xi32>, %bt: tensor<3x4xi32>) {
  // expected-error @+1 {{'kv.attention' op block table has batch 3, expected 2}}
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<2x32x1x128xf16>, !p, tensor<2xi32>, tensor<3x4xi32>) -> tensor<2x32x1x128xf16>
  return
}

// -----

!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @mla_on_kv(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<1x16x1x64xbf16>, %c: !c, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op expects a !kv.latent_cache; attend over a !kv.cache with kv.attention}}
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x16x1x64xbf16>, !c, tensor<1xi32>) -> tensor<1x16x1x512xbf16>
  return
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @mla_latent_width(%ql: tensor<1x16x1x256xbf16>, %qr: tensor<1x16x1x64xbf16>, %c: !l, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op latent queries has width 256, expected 512}}
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<1x16x1x256xbf16>, tensor<1x16x1x64xbf16>, !l, tensor<1xi32>) -> tensor<1x16x1x256xbf16>
  return
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @mla_rope_width(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<1x16x1x32xbf16>, %c: !l, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op rope queries has width 32, expected 64}}
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x16x1x32xbf16>, !l, tensor<1xi32>) -> tensor<1x16x1x512xbf16>
  return
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @mla_heads(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<1x8x1x64xbf16>, %c: !l, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op latent and rope queries must agree in batch, heads and tokens}}
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x8x1x64xbf16>, !l, tensor<1xi32>) -> tensor<1x16x1x512xbf16>
  return
}

// -----

!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @mla_scale(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<1x16x1x64xbf16>, %c: !l, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op scale must be positive}}
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = -1.0 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x16x1x64xbf16>, !l, tensor<1xi32>) -> tensor<1x16x1x512xbf16>
  return
}

// -----

// Latent queries are rank 4, not 3.
!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @mla_latent_rank(%ql: tensor<16x1x512xbf16>, %qr: tensor<1x16x1x64xbf16>, %c: !l, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op latent queries must be a rank-4 tensor (batch x q_heads x tokens x latent_dim), got 'tensor<16x1x512xbf16>'}}
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<16x1x512xbf16>, tensor<1x16x1x64xbf16>, !l, tensor<1xi32>) -> tensor<1x16x1x512xbf16>
  return
}

// -----

// RoPE queries are rank 4, not 3.
!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @mla_rope_rank(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<16x1x64xbf16>, %c: !l, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op rope queries must be a rank-4 tensor (batch x q_heads x tokens x rope_dim), got 'tensor<16x1x64xbf16>'}}
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<1x16x1x512xbf16>, tensor<16x1x64xbf16>, !l, tensor<1xi32>) -> tensor<1x16x1x512xbf16>
  return
}

// -----

// Three sequence lengths for a batch of 2.
!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @mla_lens(%ql: tensor<2x16x1x512xbf16>, %qr: tensor<2x16x1x64xbf16>, %c: !l, %lens: tensor<3xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op sequence lengths has batch 3, expected 2}}
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<2x16x1x512xbf16>, tensor<2x16x1x64xbf16>, !l, tensor<3xi32>) -> tensor<2x16x1x512xbf16>
  return
}

// -----

// The output is latent_dim (512) wide, not the whole 576-wide row.
!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @mla_output(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<1x16x1x64xbf16>, %c: !l, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op output type 'tensor<1x16x1x576xbf16>' must have shape batch x heads x tokens x 512 matching the queries}}
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x16x1x64xbf16>, !l, tensor<1xi32>) -> tensor<1x16x1x576xbf16>
  return
}

// -----

// The log-sum-exp drops only the last output dimension, not two.
!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @mla_lse(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<1x16x1x64xbf16>, %c: !l, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op log-sum-exp type 'tensor<1x16xf32>' must have the output's shape without its last dimension}}
  %o, %lse = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x16x1x64xbf16>, !l, tensor<1xi32>) -> (tensor<1x16x1x512xbf16>, tensor<1x16xf32>)
  return
}

// -----

// Attending over a paged latent cache without its block table.
!lp = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16, layout = #kv.layout<paged, page_size = 16>>

func.func @mla_paged_no_table(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<1x16x1x64xbf16>, %c: !lp, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op a paged cache needs a block table}}
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x16x1x64xbf16>, !lp, tensor<1xi32>) -> tensor<1x16x1x512xbf16>
  return
}

// -----

// A contiguous latent cache given a block table.
!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @mla_contiguous_table(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<1x16x1x64xbf16>, %c: !l, %lens: tensor<1xi32>, %bt: tensor<1x4xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op a contiguous cache takes no block table}}
  %o = kv.mla_attention %ql, %qr, %c, %lens block_table %bt {scale = 0.1 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x16x1x64xbf16>, !l, tensor<1xi32>, tensor<1x4xi32>) -> tensor<1x16x1x512xbf16>
  return
}

// -----

// Capacity 64 at page size 16 is 4 pages, not 5.
!lp = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16, layout = #kv.layout<paged, page_size = 16>>

func.func @mla_table_too_long(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<1x16x1x64xbf16>, %c: !lp, %lens: tensor<1xi32>, %bt: tensor<1x5xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op block table has 5 pages per sequence, but capacity 64 at page size 16 needs at most 4}}
  %o = kv.mla_attention %ql, %qr, %c, %lens block_table %bt {scale = 0.1 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x16x1x64xbf16>, !lp, tensor<1xi32>, tensor<1x5xi32>) -> tensor<1x16x1x512xbf16>
  return
}

// -----

// The block table has 3 rows for a batch of 2.
!lp = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16, layout = #kv.layout<paged, page_size = 16>>

func.func @mla_table_batch(%ql: tensor<2x16x1x512xbf16>, %qr: tensor<2x16x1x64xbf16>, %c: !lp, %lens: tensor<2xi32>, %bt: tensor<3x4xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op block table has batch 3, expected 2}}
  %o = kv.mla_attention %ql, %qr, %c, %lens block_table %bt {scale = 0.1 : f32} : (tensor<2x16x1x512xbf16>, tensor<2x16x1x64xbf16>, !lp, tensor<2xi32>, tensor<3x4xi32>) -> tensor<2x16x1x512xbf16>
  return
}

// -----

func.func @mla_project_rank(%h: tensor<4x1024xbf16>, %wd: tensor<1024x512xbf16>, %wr: tensor<1024x64xbf16>) {
  // expected-error @+1 {{'kv.mla_project' op hidden states must be batch x tokens x hidden}}
  %r = kv.mla_project %h, %wd, %wr : tensor<4x1024xbf16>, tensor<1024x512xbf16>, tensor<1024x64xbf16> -> tensor<1x4x576xbf16>
  return
}

// -----

func.func @mla_project_weights(%h: tensor<1x4x1024xbf16>, %wd: tensor<512xbf16>, %wr: tensor<1024x64xbf16>) {
  // expected-error @+1 {{'kv.mla_project' op projection weights must be rank-2 (hidden x out)}}
  %r = kv.mla_project %h, %wd, %wr : tensor<1x4x1024xbf16>, tensor<512xbf16>, tensor<1024x64xbf16> -> tensor<1x4x576xbf16>
  return
}

// -----

func.func @mla_project_hidden(%h: tensor<1x4x1024xbf16>, %wd: tensor<2048x512xbf16>, %wr: tensor<1024x64xbf16>) {
  // expected-error @+1 {{'kv.mla_project' op projection weights must have the hidden size as their first dimension}}
  %r = kv.mla_project %h, %wd, %wr : tensor<1x4x1024xbf16>, tensor<2048x512xbf16>, tensor<1024x64xbf16> -> tensor<1x4x576xbf16>
  return
}

// -----

func.func @mla_project_result(%h: tensor<1x4x1024xbf16>, %wd: tensor<1024x512xbf16>, %wr: tensor<1024x64xbf16>) {
  // expected-error @+1 {{'kv.mla_project' op result must be batch x tokens x (latent + rope) = 576 wide}}
  %r = kv.mla_project %h, %wd, %wr : tensor<1x4x1024xbf16>, tensor<1024x512xbf16>, tensor<1024x64xbf16> -> tensor<1x4x512xbf16>
  return
}

// -----

func.func @mla_project_element(%h: tensor<1x4x1024xbf16>, %wd: tensor<1024x512xf32>, %wr: tensor<1024x64xbf16>) {
  // expected-error @+1 {{'kv.mla_project' op operands and result must share one element type}}
  %r = kv.mla_project %h, %wd, %wr : tensor<1x4x1024xbf16>, tensor<1024x512xf32>, tensor<1024x64xbf16> -> tensor<1x4x576xbf16>
  return
}

// -----

func.func @merge_rank(%o: tensor<4xf32>, %l: tensor<f32>) {
  // expected-error @+1 {{'kv.merge_states' op partial outputs must be ranked with a leading split dimension and a trailing head dimension}}
  %m, %ml = kv.merge_states %o, %l : tensor<4xf32>, tensor<f32> -> tensor<f32>, tensor<f32>
  return
}

// -----

func.func @merge_lse(%o: tensor<4x2x8x1x64xf32>, %l: tensor<4x2x8xf32>) {
  // expected-error @+1 {{'kv.merge_states' op partial log-sum-exps 'tensor<4x2x8xf32>' must have the partial outputs' shape without the last dimension}}
  %m, %ml = kv.merge_states %o, %l : tensor<4x2x8x1x64xf32>, tensor<4x2x8xf32> -> tensor<2x8x1x64xf32>, tensor<2x8x1xf32>
  return
}

// -----

func.func @merge_output(%o: tensor<4x2x8x1x64xf32>, %l: tensor<4x2x8x1xf32>) {
  // expected-error @+1 {{'kv.merge_states' op merged output must drop the split dimension of the partial outputs}}
  %m, %ml = kv.merge_states %o, %l : tensor<4x2x8x1x64xf32>, tensor<4x2x8x1xf32> -> tensor<4x2x8x1x64xf32>, tensor<2x8x1xf32>
  return
}

// -----

func.func @merge_merged_lse(%o: tensor<4x2x8x1x64xf32>, %l: tensor<4x2x8x1xf32>) {
  // expected-error @+1 {{'kv.merge_states' op merged log-sum-exp must drop the split dimension}}
  %m, %ml = kv.merge_states %o, %l : tensor<4x2x8x1x64xf32>, tensor<4x2x8x1xf32> -> tensor<2x8x1x64xf32>, tensor<4x2x8x1xf32>
  return
}

// -----

func.func @quant_storage(%x: tensor<16x128xf16>) {
  // expected-error @+1 {{'kv.quantize' op int4 data is stored as 'i4', got 'i8'}}
  %q, %s = kv.quantize %x {encoding = #kv.quant<int4>} : tensor<16x128xf16> -> tensor<16x128xi8>, tensor<16x1xf16>
  return
}

// -----

func.func @quant_shape(%x: tensor<16x128xf16>) {
  // expected-error @+1 {{'kv.quantize' op quantized data 'tensor<16x64xi8>' must have the shape of the float tensor 'tensor<16x128xf16>'}}
  %q, %s = kv.quantize %x {encoding = #kv.quant<int8>} : tensor<16x128xf16> -> tensor<16x64xi8>, tensor<16x1xf16>
  return
}

// -----

func.func @quant_group(%x: tensor<16x128xf16>) {
  // expected-error @+1 {{'kv.quantize' op group size 48 does not divide the 128 channels}}
  %q, %s = kv.quantize %x {encoding = #kv.quant<int8, group = 48>} : tensor<16x128xf16> -> tensor<16x128xi8>, tensor<16x2xf16>
  return
}

// -----

func.func @quant_tokens(%x: tensor<20x128xf16>) {
  // expected-error @+1 {{'kv.quantize' op 20 tokens are not a multiple of the token group 16}}
  %q, %s = kv.quantize %x {encoding = #kv.quant<int8, axis = channel, group = 16>} : tensor<20x128xf16> -> tensor<20x128xi8>, tensor<1x128xf16>
  return
}

// -----

func.func @quant_scale_shape(%x: tensor<16x128xf16>) {
  // expected-error @+1 {{'kv.quantize' op scales must be 'tensor<16x4xf16>', got 'tensor<16x1xf16>'}}
  %q, %s = kv.quantize %x {encoding = #kv.quant<int8, group = 32>} : tensor<16x128xf16> -> tensor<16x128xi8>, tensor<16x1xf16>
  return
}

// -----

func.func @quant_scale_type(%x: tensor<16x128xf16>) {
  // expected-error @+1 {{'kv.quantize' op scales must have the encoding's scale type 'f32'}}
  %q, %s = kv.quantize %x {encoding = #kv.quant<int8, scale = f32>} : tensor<16x128xf16> -> tensor<16x128xi8>, tensor<16x1xf16>
  return
}

// -----

func.func @quant_no_zero(%x: tensor<16x128xf16>) {
  // expected-error @+1 {{'kv.quantize' op an asymmetric encoding needs zero points}}
  %q, %s = kv.quantize %x {encoding = #kv.quant<int8, symmetric = false>} : tensor<16x128xf16> -> tensor<16x128xi8>, tensor<16x1xf16>
  return
}

// -----

func.func @quant_extra_zero(%x: tensor<16x128xf16>) {
  // expected-error @+1 {{'kv.quantize' op a symmetric encoding has no zero points}}
  %q, %s, %z = kv.quantize %x {encoding = #kv.quant<int8>} : tensor<16x128xf16> -> tensor<16x128xi8>, tensor<16x1xf16>, tensor<16x1xf16>
  return
}

// -----

func.func @quant_zero_type(%x: tensor<16x128xf16>) {
  // expected-error @+1 {{'kv.quantize' op zero points must have the scales' type}}
  %q, %s, %z = kv.quantize %x {encoding = #kv.quant<int8, symmetric = false>} : tensor<16x128xf16> -> tensor<16x128xi8>, tensor<16x1xf16>, tensor<16x2xf16>
  return
}

// -----

func.func @quant_window(%x: tensor<16x128xf16>) {
  // expected-error @+1 {{'kv.quantize' op full-precision windows (recent, sinks) belong to caches; this encoding must have none}}
  %q, %s = kv.quantize %x {encoding = #kv.quant<int8, recent = 4>} : tensor<16x128xf16> -> tensor<16x128xi8>, tensor<16x1xf16>
  return
}

// -----

func.func @quant_rank(%x: tensor<128xf16>) {
  // expected-error @+1 {{'kv.quantize' op quantized tensors must be at least rank 2 (tokens x channels)}}
  %q, %s = kv.quantize %x {encoding = #kv.quant<int8>} : tensor<128xf16> -> tensor<128xi8>, tensor<1xf16>
  return
}

// -----

func.func @dequant_storage(%q: tensor<16x128xi8>, %s: tensor<16x1xf16>) {
  // expected-error @+1 {{'kv.dequantize' op fp8_e4m3 data is stored as 'f8E4M3FN', got 'i8'}}
  %x = kv.dequantize %q, %s {encoding = #kv.quant<fp8_e4m3>} : tensor<16x128xi8>, tensor<16x1xf16> -> tensor<16x128xf16>
  return
}

// -----

// The stored data (16x64) and the float result (16x128) differ in shape.
func.func @dequant_shape(%q: tensor<16x64xi8>, %s: tensor<16x1xf16>) {
  // expected-error @+1 {{'kv.dequantize' op quantized data 'tensor<16x64xi8>' must have the shape of the float tensor 'tensor<16x128xf16>'}}
  %x = kv.dequantize %q, %s {encoding = #kv.quant<int8>} : tensor<16x64xi8>, tensor<16x1xf16> -> tensor<16x128xf16>
  return
}

// -----

// Groups of 32 channels need 4 scales per token, not 1.
func.func @dequant_scale_shape(%q: tensor<16x128xi8>, %s: tensor<16x1xf16>) {
  // expected-error @+1 {{'kv.dequantize' op scales must be 'tensor<16x4xf16>', got 'tensor<16x1xf16>'}}
  %x = kv.dequantize %q, %s {encoding = #kv.quant<int8, group = 32>} : tensor<16x128xi8>, tensor<16x1xf16> -> tensor<16x128xf16>
  return
}

// -----

// An asymmetric encoding restored without its zero points.
func.func @dequant_no_zero(%q: tensor<16x128xi8>, %s: tensor<16x1xf16>) {
  // expected-error @+1 {{'kv.dequantize' op an asymmetric encoding needs zero points}}
  %x = kv.dequantize %q, %s {encoding = #kv.quant<int8, symmetric = false>} : tensor<16x128xi8>, tensor<16x1xf16> -> tensor<16x128xf16>
  return
}

// -----

func.func @gather_rank(%p: tensor<64x16x128xf16>, %bt: tensor<2x8xi32>) {
  // expected-error @+1 {{'kv.gather_pages' op pages must be a rank-4 tensor (pages x page_size x heads x head_dim), got 'tensor<64x16x128xf16>'}}
  %g = kv.gather_pages %p, %bt : tensor<64x16x128xf16>, tensor<2x8xi32> -> tensor<2x8x128x128xf16>
  return
}

// -----

func.func @gather_result(%p: tensor<64x16x8x128xf16>, %bt: tensor<2x8xi32>) {
  // expected-error @+1 {{'kv.gather_pages' op result must be 'tensor<2x8x128x128xf16>' (batch x heads x pages * page_size x head_dim)}}
  %g = kv.gather_pages %p, %bt : tensor<64x16x8x128xf16>, tensor<2x8xi32> -> tensor<2x8x100x128xf16>
  return
}

// -----

func.func @rope_odd(%x: tensor<1x8x4x7xf16>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'kv.rope' op rope needs an even last dimension, got 7}}
  %r = kv.rope %x, %pos {theta = 10000.0 : f64} : tensor<1x8x4x7xf16>, tensor<1xi32> -> tensor<1x8x4x7xf16>
  return
}

// -----

func.func @rope_theta(%x: tensor<1x8x4x8xf16>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'kv.rope' op theta must be positive}}
  %r = kv.rope %x, %pos {theta = 0.0 : f64} : tensor<1x8x4x8xf16>, tensor<1xi32> -> tensor<1x8x4x8xf16>
  return
}

// -----

func.func @rope_batch(%x: tensor<2x8x4x8xf16>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'kv.rope' op positions has batch 1, expected 2}}
  %r = kv.rope %x, %pos {theta = 10000.0 : f64} : tensor<2x8x4x8xf16>, tensor<1xi32> -> tensor<2x8x4x8xf16>
  return
}

// -----

func.func @rope_rank(%x: tensor<8x4x8xf16>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'kv.rope' op input must be a rank-4 tensor (batch x heads x tokens x dim), got 'tensor<8x4x8xf16>'}}
  %r = kv.rope %x, %pos {theta = 10000.0 : f64} : tensor<8x4x8xf16>, tensor<1xi32> -> tensor<8x4x8xf16>
  return
}

// -----

// Unranked tensors are rejected by the operand and result types before any
// verifier reads a shape. In the custom form the parser already refuses
// unranked keys; the generic forms below reach the op verifier.
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @append_unranked_custom(%c: !c, %pos: tensor<1xi32>, %k: tensor<*xf16>) {
  // expected-error @+1 {{custom op 'kv.append' invalid kind of type specified: expected builtin.tensor, but found 'tensor<*xf16>'}}
  kv.append %c[%pos], %k, %k : !c, tensor<1xi32>, tensor<*xf16>, tensor<*xf16>
  return
}

// -----

// Unranked keys and values.
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @append_unranked(%c: !c, %pos: tensor<1xi32>, %k: tensor<*xf16>) {
  // expected-error @+1 {{'kv.append' op operand #2 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<*xf16>'}}
  "kv.append"(%c, %pos, %k, %k) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>}> : (!c, tensor<1xi32>, tensor<*xf16>, tensor<*xf16>) -> ()
  return
}

// -----

// Unranked view results.
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @view_unranked(%c: !c) {
  // expected-error @+1 {{'kv.view' op result #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<*xf16>'}}
  %k, %v = "kv.view"(%c) : (!c) -> (tensor<*xf16>, tensor<*xf16>)
  return
}

// -----

// Unranked queries.
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @attention_unranked(%q: tensor<*xf16>, %c: !c, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.attention' op operand #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<*xf16>'}}
  %o = kv.attention %q, %c, %lens : (tensor<*xf16>, !c, tensor<1xi32>) -> tensor<1x32x1x128xf16>
  return
}

// -----

// An unranked log-sum-exp result.
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 64, element = f16>

func.func @attention_lse_unranked(%q: tensor<1x32x1x128xf16>, %c: !c, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.attention' op result #1 must be ranked tensor of 32-bit float values, but got 'tensor<*xf32>'}}
  %o, %lse = kv.attention %q, %c, %lens : (tensor<1x32x1x128xf16>, !c, tensor<1xi32>) -> (tensor<1x32x1x128xf16>, tensor<*xf32>)
  return
}

// -----

// An unranked log-sum-exp result of MLA attention.
!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 64, element = bf16>

func.func @mla_lse_unranked(%ql: tensor<1x16x1x512xbf16>, %qr: tensor<1x16x1x64xbf16>, %c: !l, %lens: tensor<1xi32>) {
  // expected-error @+1 {{'kv.mla_attention' op result #1 must be ranked tensor of 32-bit float values, but got 'tensor<*xf32>'}}
  %o, %lse = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.1 : f32} : (tensor<1x16x1x512xbf16>, tensor<1x16x1x64xbf16>, !l, tensor<1xi32>) -> (tensor<1x16x1x512xbf16>, tensor<*xf32>)
  return
}

// -----

// Unranked hidden states.
func.func @mla_project_unranked(%h: tensor<*xbf16>, %wd: tensor<1024x512xbf16>, %wr: tensor<1024x64xbf16>) {
  // expected-error @+1 {{'kv.mla_project' op operand #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<*xbf16>'}}
  %r = "kv.mla_project"(%h, %wd, %wr) : (tensor<*xbf16>, tensor<1024x512xbf16>, tensor<1024x64xbf16>) -> tensor<1x4x576xbf16>
  return
}

// -----

// An unranked merged output.
func.func @merge_output_unranked(%o: tensor<4x2x8x1x64xf32>, %l: tensor<4x2x8x1xf32>) {
  // expected-error @+1 {{'kv.merge_states' op result #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<*xf32>'}}
  %m, %ml = "kv.merge_states"(%o, %l) : (tensor<4x2x8x1x64xf32>, tensor<4x2x8x1xf32>) -> (tensor<*xf32>, tensor<2x8x1xf32>)
  return
}

// -----

// An unranked merged log-sum-exp.
func.func @merge_lse_unranked(%o: tensor<4x2x8x1x64xf32>, %l: tensor<4x2x8x1xf32>) {
  // expected-error @+1 {{'kv.merge_states' op result #1 must be ranked tensor of 32-bit float values, but got 'tensor<*xf32>'}}
  %m, %ml = "kv.merge_states"(%o, %l) : (tensor<4x2x8x1x64xf32>, tensor<4x2x8x1xf32>) -> (tensor<2x8x1x64xf32>, tensor<*xf32>)
  return
}

// -----

// An unranked quantize input.
func.func @quant_unranked(%x: tensor<*xf16>) {
  // expected-error @+1 {{'kv.quantize' op operand #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<*xf16>'}}
  %q, %s = "kv.quantize"(%x) <{encoding = #kv.quant<int8>}> : (tensor<*xf16>) -> (tensor<16x128xi8>, tensor<16x1xf16>)
  return
}

// -----

// Unranked scales.
func.func @quant_scales_unranked(%x: tensor<16x128xf16>) {
  // expected-error @+1 {{'kv.quantize' op result #1 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<*xf16>'}}
  %q, %s = "kv.quantize"(%x) <{encoding = #kv.quant<int8>}> : (tensor<16x128xf16>) -> (tensor<16x128xi8>, tensor<*xf16>)
  return
}

// -----

// An unranked dequantize result.
func.func @dequant_unranked(%q: tensor<16x128xi8>, %s: tensor<16x1xf16>) {
  // expected-error @+1 {{'kv.dequantize' op result #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<*xf16>'}}
  %x = "kv.dequantize"(%q, %s) <{encoding = #kv.quant<int8>}> : (tensor<16x128xi8>, tensor<16x1xf16>) -> tensor<*xf16>
  return
}

// -----

// An unranked gather result.
func.func @gather_unranked(%p: tensor<64x16x8x128xf16>, %bt: tensor<2x8xi32>) {
  // expected-error @+1 {{'kv.gather_pages' op result #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<*xf16>'}}
  %r = "kv.gather_pages"(%p, %bt) : (tensor<64x16x8x128xf16>, tensor<2x8xi32>) -> tensor<*xf16>
  return
}

// -----

// An unranked rope input.
func.func @rope_unranked(%x: tensor<*xf16>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'kv.rope' op operand #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values, but got 'tensor<*xf16>'}}
  %r = "kv.rope"(%x, %pos) <{theta = 1.0e+04 : f64}> : (tensor<*xf16>, tensor<1xi32>) -> tensor<*xf16>
  return
}
