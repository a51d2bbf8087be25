//===- KVOps.td - kv dialect operations ---------------------*- tablegen -*-===//
//
// Operations on KV caches: allocate, share across layers, append, view,
// attend (per-head and MLA latent), quantize, gather pages, merge states.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_DIALECT_KV_KVOPS_TD
#define KVOPT_DIALECT_KV_KVOPS_TD

include "kvopt/Dialect/KV/KVTypes.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"

/// Every cache is one memory resource: appends write it, attention reads it.
def KV_CacheResource : Resource<"::kvopt::kv::CacheResource">;

// Every tensor the ops take or give is ranked: the verifiers read shapes, and
// an unranked tensor is rejected by these constraints before they run.
def KV_I32Vector : 1DTensorOf<[I32]>;
def KV_BlockTable : 2DTensorOf<[I32]>;
def KV_FloatTensor : RankedTensorOf<[F16, BF16, F32]>;
def KV_F32Tensor : RankedTensorOf<[F32]>;

//===----------------------------------------------------------------------===//
// Cache creation and sharing
//===----------------------------------------------------------------------===//

def KV_AllocCacheOp : KV_Op<"alloc_cache"> {
  let summary = "create the KV cache of one layer";
  let description = [{
    Creates an empty cache of the result type. `layer` optionally names the
    model layer that owns it (used by the sharing pass and the memory
    report). Engines usually pass caches in as function arguments instead;
    this op makes self-contained modules possible.

    ```mlir
    %c = kv.alloc_cache {layer = 0} : !kv.cache<kv_heads = 8, head_dim = 128,
                                                capacity = 4096, element = f16>
    ```
  }];
  let arguments = (ins OptionalAttr<ConfinedAttr<I64Attr, [IntNonNegative]>>:$layer);
  let results = (outs Res<KV_AnyCache, "the new cache",
                          [MemAlloc<KV_CacheResource>]>:$cache);
  let assemblyFormat = "attr-dict `:` qualified(type($cache))";
}

def KV_ShareCacheOp : KV_Op<"share_cache", [Pure]> {
  let summary = "let another layer read an existing cache (cross-layer sharing)";
  let description = [{
    States that layer `layer` reads the cache `source` owned by an earlier
    layer instead of keeping its own (CLA/YOCO-style cross-layer sharing).
    The result is a read-only view: appending through it is rejected, since
    only the owning layer writes the cache. The result type must be the
    source type: a layer can only share a cache of its own shape.

    ```mlir
    %c1 = kv.share_cache %c0 {layer = 1} : !kv.cache<...> -> !kv.cache<...>
    ```
  }];
  let arguments = (ins KV_AnyCache:$source,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$layer);
  let results = (outs KV_AnyCache:$result);
  let assemblyFormat = [{
    $source attr-dict `:` qualified(type($source)) `->` qualified(type($result))
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Follows chains of share_cache back to the cache that owns the storage.
    ::mlir::Value getOwningCache();
  }];
}

//===----------------------------------------------------------------------===//
// Writing and reading caches
//===----------------------------------------------------------------------===//

def KV_AppendOp : KV_Op<"append", [AttrSizedOperandSegments]> {
  let summary = "write new key/value (or latent) tokens into a cache";
  let description = [{
    Writes `T` new tokens per sequence at positions `positions[b] + t`,
    `t = 0..T-1`. For a `!kv.cache`, `keys` and `values` are
    `tensor<B x kv_heads x T x head_dim>`; for a `!kv.latent_cache`, `keys`
    is the latent row `tensor<B x T x (latent_dim + rope_dim)>` and there are
    no values. Quantization to the cache's encodings happens on write.

    With `rope_theta`, rotary position embedding (NeoX/Llama rotate-half
    convention) is applied to the keys (to the RoPE part of a latent row)
    before they are stored: RoPE, quantization and the append fused in one
    operation. A paged cache needs its block table `tensor<B x P x i32>`.

    ```mlir
    kv.append %cache[%pos], %k, %v {rope_theta = 10000.0 : f64}
        : !kv.cache<...>, tensor<4xi32>, tensor<4x8x1x128xf16>,
          tensor<4x8x1x128xf16>
    kv.append %cache[%pos], %k, %v block_table %bt
        : !kv.cache<...>, tensor<4xi32>, tensor<4x8x1x128xf16>,
          tensor<4x8x1x128xf16>, tensor<4x256xi32>
    ```
  }];
  let arguments = (ins
    Arg<KV_AnyCache, "the cache written", [MemWrite<KV_CacheResource>]>:$cache,
    KV_I32Vector:$positions,
    KV_FloatTensor:$keys,
    Optional<KV_FloatTensor>:$values,
    Optional<KV_BlockTable>:$block_table,
    OptionalAttr<F64Attr>:$rope_theta);
  let assemblyFormat = [{
    $cache `[` $positions `]` `,` $keys (`,` $values^)?
    (`block_table` $block_table^)? attr-dict `:` qualified(type($cache)) `,`
    type($positions) `,` type($keys) (`,` type($values)^)?
    (`,` type($block_table)^)?
  }];
  let hasVerifier = 1;
}

def KV_ViewOp : KV_Op<"view"> {
  let summary = "read a whole cache as dense tensors";
  let description = [{
    Reads the first `capacity` token slots of every sequence as dense,
    dequantized tensors in the cache's element type:
    `keys`/`values : tensor<B x kv_heads x capacity x head_dim>` for a
    `!kv.cache`, a single `tensor<B x capacity x (latent_dim + rope_dim)>`
    for a `!kv.latent_cache`. Slots past a sequence's length hold
    unspecified values. A paged cache needs its block table, which also
    fixes B.

    ```mlir
    %k, %v = kv.view %cache : !kv.cache<...> -> tensor<2x8x4096x128xf16>,
                                               tensor<2x8x4096x128xf16>
    ```
  }];
  let arguments = (ins
    Arg<KV_AnyCache, "the cache read", [MemRead<KV_CacheResource>]>:$cache,
    Optional<KV_BlockTable>:$block_table);
  let results = (outs KV_FloatTensor:$keys, Optional<KV_FloatTensor>:$values);
  let assemblyFormat = [{
    $cache (`block_table` $block_table^)? attr-dict `:` qualified(type($cache))
    (`,` type($block_table)^)? `->` type($keys) (`,` type($values)^)?
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

def KV_AttentionOp : KV_Op<"attention"> {
  let summary = "scaled dot-product attention of queries over a KV cache";
  let description = [{
    `queries : tensor<B x Hq x Tq x D>` attend over the first `seq_lens[b]`
    tokens of sequence `b` in `cache` (a `!kv.cache` with `Hkv` KV heads of
    dimension `D`). Query head `h` reads KV head `h / (Hq / Hkv)`: `Hq = Hkv`
    is multi-head, `Hkv = 1` multi-query, anything between grouped-query
    attention. Scores are `scale * q . k` (`scale` defaults to
    `1/sqrt(D)`), normalized with softmax, and weight the values.

    - `causal`: query `i` sits at position `seq_lens[b] - Tq + i` and sees
      keys at positions up to its own;
    - `window = W`: a query at position `p` only sees keys at positions
      `> p - W` (sliding window), plus the first `sinks` tokens, which stay
      visible (StreamingLLM attention sinks);
    - a second result, when present, is the natural log-sum-exp of the
      scaled scores per query row (`tensor<B x Hq x Tq x f32>`), which
      `kv.merge_states` consumes to combine split-KV partial results. Rows
      with no visible key give output 0 and log-sum-exp -inf.

    ```mlir
    %o = kv.attention %q, %cache, %lens {causal}
        : (tensor<4x32x1x128xf16>, !kv.cache<kv_heads = 8, head_dim = 128, ...>,
           tensor<4xi32>) -> tensor<4x32x1x128xf16>
    %o, %lse = kv.attention %q, %cache, %lens block_table %bt {window = 4096, sinks = 4}
        : (tensor<4x32x1x128xf16>, !kv.cache<...>, tensor<4xi32>, tensor<4x256xi32>)
        -> (tensor<4x32x1x128xf16>, tensor<4x32x1xf32>)
    ```
  }];
  let arguments = (ins
    KV_FloatTensor:$queries,
    Arg<KV_AnyCache, "the cache read", [MemRead<KV_CacheResource>]>:$cache,
    KV_I32Vector:$seq_lens,
    Optional<KV_BlockTable>:$block_table,
    OptionalAttr<F32Attr>:$scale,
    UnitAttr:$causal,
    OptionalAttr<ConfinedAttr<I64Attr, [IntPositive]>>:$window,
    OptionalAttr<ConfinedAttr<I64Attr, [IntNonNegative]>>:$sinks);
  let results = (outs KV_FloatTensor:$output, Optional<KV_F32Tensor>:$lse);
  let assemblyFormat = [{
    $queries `,` $cache `,` $seq_lens (`block_table` $block_table^)? attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Query heads per KV head.
    int64_t getGroupSize();
    /// The scale attribute or its default 1/sqrt(head_dim).
    float getScaleOrDefault();
  }];
}

def KV_MLAProjectOp : KV_Op<"mla_project", [Pure]> {
  let summary = "MLA down-projection of hidden states to the cached latent row";
  let description = [{
    Computes the row an MLA layer caches for each token:
    `concat(hidden . w_dkv, hidden . w_kr)` with `hidden : tensor<B x T x H>`,
    `w_dkv : tensor<H x L>` (down-projection to the latent c_KV) and
    `w_kr : tensor<H x R>` (the decoupled RoPE key, before rotation), giving
    `tensor<B x T x (L + R)>`. `kv.append` with `rope_theta` rotates the last
    `R` elements as it stores the row.

    ```mlir
    %row = kv.mla_project %h, %w_dkv, %w_kr
        : tensor<1x1x7168xbf16>, tensor<7168x512xbf16>, tensor<7168x64xbf16>
        -> tensor<1x1x576xbf16>
    ```
  }];
  let arguments = (ins KV_FloatTensor:$hidden, KV_FloatTensor:$w_dkv,
                       KV_FloatTensor:$w_kr);
  let results = (outs KV_FloatTensor:$row);
  let assemblyFormat = [{
    $hidden `,` $w_dkv `,` $w_kr attr-dict `:` type($hidden) `,` type($w_dkv)
    `,` type($w_kr) `->` type($row)
  }];
  let hasVerifier = 1;
}

def KV_MLAAttentionOp : KV_Op<"mla_attention"> {
  let summary = "attention over an MLA latent cache with absorbed weights";
  let description = [{
    Runs attention directly on the latent cache. The K up-projection has been
    absorbed into the query (`q_latent = q_nope . W_UK^T` per head,
    `tensor<B x Hq x Tq x L>`) and `q_rope : tensor<B x Hq x Tq x R>` is the
    rotated decoupled query. The score of cached token `t` is
    `scale * (q_latent . c_t + q_rope . kr_t)` and the result is the
    softmax-weighted sum of latents, `tensor<B x Hq x Tq x L>`, to which the
    caller applies the absorbed V up-projection `W_UV`. `scale` has no
    default: MLA scales by the un-absorbed head dimension. `causal` and the
    optional log-sum-exp result mean what they mean for `kv.attention`.

    ```mlir
    %o = kv.mla_attention %ql, %qr, %cache, %lens {scale = 0.0723 : f32}
        : (tensor<1x128x1x512xbf16>, tensor<1x128x1x64xbf16>,
           !kv.latent_cache<latent_dim = 512, rope_dim = 64, ...>, tensor<1xi32>)
        -> tensor<1x128x1x512xbf16>
    ```
  }];
  let arguments = (ins
    KV_FloatTensor:$q_latent,
    KV_FloatTensor:$q_rope,
    Arg<KV_AnyCache, "the latent cache read", [MemRead<KV_CacheResource>]>:$cache,
    KV_I32Vector:$seq_lens,
    Optional<KV_BlockTable>:$block_table,
    F32Attr:$scale,
    UnitAttr:$causal);
  let results = (outs KV_FloatTensor:$output, Optional<KV_F32Tensor>:$lse);
  let assemblyFormat = [{
    $q_latent `,` $q_rope `,` $cache `,` $seq_lens
    (`block_table` $block_table^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def KV_MergeStatesOp : KV_Op<"merge_states", [Pure]> {
  let summary = "merge split-KV partial attention states";
  let description = [{
    Combines `S` partial attention results computed over disjoint slices of
    the keys: `outputs : tensor<S x ... x D>` with their log-sum-exps
    `lses : tensor<S x ...>` (f32). The merged state is
    `lse = log(sum_s exp(lse_s))` and `output = sum_s exp(lse_s - lse) *
    output_s`. The merge is associative and commutative, so any split of the
    keys gives the same result; partials with lse -inf contribute nothing.

    ```mlir
    %o, %lse = kv.merge_states %os, %lses
        : tensor<4x2x32x1x128xf32>, tensor<4x2x32x1xf32>
        -> tensor<2x32x1x128xf32>, tensor<2x32x1xf32>
    ```
  }];
  let arguments = (ins KV_FloatTensor:$outputs, KV_F32Tensor:$lses);
  let results = (outs KV_FloatTensor:$output, KV_F32Tensor:$lse);
  let assemblyFormat = [{
    $outputs `,` $lses attr-dict `:` type($outputs) `,` type($lses) `->`
    type($output) `,` type($lse)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Layout and encoding
//===----------------------------------------------------------------------===//

def KV_QuantizeOp : KV_Op<"quantize", [Pure]> {
  let summary = "quantize rows of tokens with a cache encoding";
  let description = [{
    Quantizes `input : tensor<... x T x C>` (T tokens of C channels) with
    `encoding`. Results: the stored values with the encoding's storage
    element type (`i8`, `f8E4M3FN`, `i4`, `i2`) and the input's shape; the
    scales, `tensor<... x T x C/g>` for a per-token encoding with group `g`
    (0 means C), `tensor<... x T/g x C>` for a per-channel encoding; and,
    for asymmetric encodings, zero points of the scales' shape and type.
    Full-precision windows are a property of caches: the encoding given
    here must have none.

    ```mlir
    %q, %s = kv.quantize %x {encoding = #kv.quant<int8>}
        : tensor<16x128xf16> -> tensor<16x128xi8>, tensor<16x1xf16>
    %q, %s, %z = kv.quantize %x {encoding = #kv.quant<int4, axis = channel, group = 16, symmetric = false>}
        : tensor<32x128xf16> -> tensor<32x128xi4>, tensor<2x128xf16>, tensor<2x128xf16>
    ```
  }];
  let arguments = (ins KV_FloatTensor:$input, KV_QuantAttr:$encoding);
  let results = (outs AnyRankedTensor:$data, KV_FloatTensor:$scales,
                      Optional<KV_FloatTensor>:$zero_points);
  let assemblyFormat = [{
    $input attr-dict `:` type($input) `->` type($data) `,` type($scales)
    (`,` type($zero_points)^)?
  }];
  let hasVerifier = 1;
}

def KV_DequantizeOp : KV_Op<"dequantize", [Pure]> {
  let summary = "restore full-precision rows from quantized storage";
  let description = [{
    The inverse of `kv.quantize`: `x = q * scale` (symmetric) or
    `x = q * scale + zero_point` (asymmetric), with the operand shapes
    `kv.quantize` produces, into a tensor of the input's shape and the
    result's float element type.

    ```mlir
    %x = kv.dequantize %q, %s {encoding = #kv.quant<int8>}
        : tensor<16x128xi8>, tensor<16x1xf16> -> tensor<16x128xf16>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$data, KV_FloatTensor:$scales,
                       Optional<KV_FloatTensor>:$zero_points,
                       KV_QuantAttr:$encoding);
  let results = (outs KV_FloatTensor:$result);
  let assemblyFormat = [{
    $data `,` $scales (`,` $zero_points^)? attr-dict `:` type($data) `,`
    type($scales) (`,` type($zero_points)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

def KV_GatherPagesOp : KV_Op<"gather_pages", [Pure]> {
  let summary = "gather a paged pool into contiguous per-sequence tensors";
  let description = [{
    `pages : tensor<N x P x H x D>` is a pool of `N` pages of `P` tokens,
    token-major like the runtime's pages (docs/CacheLayout.md);
    `block_table : tensor<B x M x i32>` lists each sequence's pages in
    logical order. The result `tensor<B x H x (M * P) x D>` holds sequence
    `b`'s token `t` at `[b, :, t, :] = pages[block_table[b, t / P], t % P, :, :]`.
    Entries past a sequence's length may name any page (they are not read
    by attention) but must be valid page ids.

    ```mlir
    %kv = kv.gather_pages %pages, %bt
        : tensor<64x16x8x128xf16>, tensor<2x8xi32> -> tensor<2x8x128x128xf16>
    ```
  }];
  let arguments = (ins KV_FloatTensor:$pages, KV_BlockTable:$block_table);
  let results = (outs KV_FloatTensor:$result);
  let assemblyFormat = [{
    $pages `,` $block_table attr-dict `:` type($pages) `,` type($block_table)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def KV_RopeOp : KV_Op<"rope", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "rotary position embedding (rotate-half convention)";
  let description = [{
    Rotates `input : tensor<B x H x T x D>` (D even): token `t` of sequence
    `b` sits at position `p = positions[b] + t`, and each pair
    `(x_i, x_{i + D/2})`, `i < D/2`, turns by the angle
    `p * theta^(-2i/D)` (the NeoX/Llama convention).

    ```mlir
    %r = kv.rope %k, %pos {theta = 10000.0 : f64}
        : tensor<1x8x4x128xf16>, tensor<1xi32> -> tensor<1x8x4x128xf16>
    ```
  }];
  let arguments = (ins KV_FloatTensor:$input, KV_I32Vector:$positions,
                       F64Attr:$theta);
  let results = (outs KV_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $positions attr-dict `:` type($input) `,` type($positions)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

#endif // KVOPT_DIALECT_KV_KVOPS_TD
