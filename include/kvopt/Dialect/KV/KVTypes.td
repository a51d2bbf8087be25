//===- KVTypes.td - kv cache types --------------------------*- tablegen -*-===//
//
// The two cache types (per-head K/V caches and MLA latent caches) and the
// interface through which passes and the memory report query them.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_DIALECT_KV_KVTYPES_TD
#define KVOPT_DIALECT_KV_KVTYPES_TD

include "kvopt/Dialect/KV/KVAttributes.td"

def KV_CacheTypeInterface : TypeInterface<"KVCacheTypeInterface"> {
  let cppNamespace = "::kvopt::kv";
  let description = [{
    Common queries on KV cache types: capacity, layout and the exact memory
    cost, so that later passes, the memory report and the runtime need no
    side information. The byte formulas are those of docs/CacheLayout.md.
  }];
  let methods = [
    InterfaceMethod<"Maximum number of tokens per sequence.",
      "int64_t", "getCapacity">,
    InterfaceMethod<"Full-precision element type.",
      "::mlir::Type", "getElementType">,
    InterfaceMethod<"Memory layout (contiguous or paged).",
      "::kvopt::kv::LayoutAttr", "getLayout">,
    InterfaceMethod<[{
        Steady-state bytes one token occupies in this cache: data plus
        scales and zero points (amortized over token groups for per-channel
        scales, hence a double).
      }], "double", "getBytesPerToken">,
    InterfaceMethod<[{
        Bytes per sequence that do not grow with its length: the
        full-precision recent and sink windows of quantized components.
      }], "int64_t", "getFixedBytesPerSequence">,
    InterfaceMethod<"The same cache with another layout.",
      "::kvopt::kv::KVCacheTypeInterface", "cloneWithLayout",
      (ins "::kvopt::kv::LayoutAttr":$layout)>,
  ];
  let extraSharedClassDeclaration = [{
    /// Tokens per page, or 0 for a contiguous cache.
    int64_t getPageSize() const {
      auto layout = $_type.getLayout();
      return layout.isPaged() ? layout.getPageSize() : 0;
    }
    bool isPaged() const { return $_type.getLayout().isPaged(); }
    /// Pages one sequence of full capacity needs (paged caches only).
    int64_t getMaxPagesPerSequence() const {
      int64_t page = getPageSize();
      return page ? ($_type.getCapacity() + page - 1) / page : 0;
    }
  }];
}

def KV_CacheType : KV_Type<"Cache", "cache",
    [DeclareTypeInterfaceMethods<KV_CacheTypeInterface>]> {
  let summary = "a per-head key/value cache of one attention layer";
  let description = [{
    The KV cache of one attention layer for a batch of sequences, each holding
    up to `capacity` tokens: for every token, a key and a value vector of
    `head_dim` elements per KV head. Query heads are grouped over the
    `kv_heads` KV heads by the attention op (GQA/MQA). `element` is the
    full-precision type; `key` and `value` optionally quantize keys and
    values (absent = full precision); `layout` defaults to contiguous.

    ```mlir
    !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>
    !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16,
              layout = #kv.layout<paged, page_size = 16>,
              key = #kv.quant<int4, axis = channel, group = 32>,
              value = #kv.quant<int4, group = 32>>
    ```
  }];
  let parameters = (ins
    "int64_t":$kvHeads,
    "int64_t":$headDim,
    "int64_t":$capacity,
    "::mlir::Type":$elementType,
    "LayoutAttr":$layout,
    "QuantAttr":$keyQuant,
    "QuantAttr":$valueQuant
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let skipDefaultBuilders = 1;
  let builders = [
    TypeBuilderWithInferredContext<(ins "int64_t":$kvHeads, "int64_t":$headDim,
        "int64_t":$capacity, "::mlir::Type":$elementType,
        CArg<"LayoutAttr", "{}">:$layout, CArg<"QuantAttr", "{}">:$keyQuant,
        CArg<"QuantAttr", "{}">:$valueQuant)>
  ];
  let extraClassDeclaration = [{
    /// Elements of one key (or value) row of one token: kv_heads * head_dim.
    int64_t getRowWidth() const { return getKvHeads() * getHeadDim(); }
    /// Same cache with other quantization encodings (null = full precision).
    CacheType cloneWithQuant(QuantAttr key, QuantAttr value) const;
    /// Same cache with another number of KV heads.
    CacheType cloneWithKvHeads(int64_t kvHeads) const;
  }];
}

def KV_LatentCacheType : KV_Type<"LatentCache", "latent_cache",
    [DeclareTypeInterfaceMethods<KV_CacheTypeInterface>]> {
  let summary = "an MLA latent cache of one attention layer";
  let description = [{
    Multi-head latent attention (DeepSeek-V2/V3) caches, per token, one
    compressed latent vector c_KV of `latent_dim` elements and one decoupled
    RoPE key of `rope_dim` elements shared by all heads; there is no separate
    value cache. `quant` optionally quantizes the whole row.

    ```mlir
    !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096,
                     element = bf16>
    ```
  }];
  let parameters = (ins
    "int64_t":$latentDim,
    "int64_t":$ropeDim,
    "int64_t":$capacity,
    "::mlir::Type":$elementType,
    "LayoutAttr":$layout,
    "QuantAttr":$quant
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let skipDefaultBuilders = 1;
  let builders = [
    TypeBuilderWithInferredContext<(ins "int64_t":$latentDim,
        "int64_t":$ropeDim, "int64_t":$capacity, "::mlir::Type":$elementType,
        CArg<"LayoutAttr", "{}">:$layout, CArg<"QuantAttr", "{}">:$quant)>
  ];
  let extraClassDeclaration = [{
    /// Elements of one cached row: latent_dim + rope_dim.
    int64_t getRowWidth() const { return getLatentDim() + getRopeDim(); }
    LatentCacheType cloneWithQuant(QuantAttr quant) const;
  }];
}

def KV_AnyCache : Type<CPred<"::llvm::isa<::kvopt::kv::KVCacheTypeInterface>($_self)">,
    "KV cache", "::kvopt::kv::KVCacheTypeInterface">;

#endif // KVOPT_DIALECT_KV_KVTYPES_TD
