//===- KVAttributes.td - kv layout and quantization attrs --*- tablegen -*-===//
//
// Enums and attributes that describe how a KV cache is laid out in memory and
// how its keys and values are quantized.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_DIALECT_KV_KVATTRIBUTES_TD
#define KVOPT_DIALECT_KV_KVATTRIBUTES_TD

include "kvopt/Dialect/KV/KVDialect.td"
include "mlir/IR/EnumAttr.td"

def KV_QuantKind : I32EnumAttr<"QuantKind", "storage format of a quantized cache", [
    I32EnumAttrCase<"Int8", 0, "int8">,
    I32EnumAttrCase<"FP8E4M3", 1, "fp8_e4m3">,
    I32EnumAttrCase<"Int4", 2, "int4">,
    I32EnumAttrCase<"Int2", 3, "int2">]> {
  let cppNamespace = "::kvopt::kv";
  let genSpecializedAttr = 0;
}

def KV_ScaleAxis : I32EnumAttr<"ScaleAxis", "axis along which scales vary", [
    I32EnumAttrCase<"Token", 0, "token">,
    I32EnumAttrCase<"Channel", 1, "channel">]> {
  let cppNamespace = "::kvopt::kv";
  let genSpecializedAttr = 0;
}

def KV_LayoutKind : I32EnumAttr<"LayoutKind", "memory layout of a cache", [
    I32EnumAttrCase<"Contiguous", 0, "contiguous">,
    I32EnumAttrCase<"Paged", 1, "paged">]> {
  let cppNamespace = "::kvopt::kv";
  let genSpecializedAttr = 0;
}

def KV_QuantAttr : KV_Attr<"Quant", "quant"> {
  let summary = "quantization encoding of cached keys or values";
  let description = [{
    Describes how one component of a cache (keys, values, or an MLA latent
    row) is stored when quantized:

    - `kind`: `int8`, `fp8_e4m3`, `int4` or `int2`;
    - `axis`: `token` (one scale per token and group of `group` channels,
      KIVI's value quantization) or `channel` (one scale per channel and
      group of `group` tokens, KIVI's key quantization); default `token`;
    - `group`: channels (token axis, 0 = the whole head) or tokens (channel
      axis, at least 1) that share one scale; default 0;
    - `symmetric`: `false` stores a zero point beside each scale; default
      `true`; `fp8_e4m3` is always symmetric;
    - `scale`: element type of scales and zero points (`f16`, `bf16`, `f32`);
      default `f16`;
    - `recent`, `sinks`: the most recent `recent` tokens and the first
      `sinks` tokens are also kept in full precision (KIVI residual window,
      attention sinks); default 0.

    Scales are storage, never compile-time constants: the attribute says
    where they live and how many there are, not their values.

    Example:

    ```mlir
    #kv.quant<int4, axis = channel, group = 32, symmetric = false, recent = 128>
    #kv.quant<fp8_e4m3, scale = f32>
    ```
  }];
  let parameters = (ins
    EnumParameter<KV_QuantKind>:$kind,
    EnumParameter<KV_ScaleAxis>:$axis,
    "int64_t":$group,
    "bool":$symmetric,
    "::mlir::Type":$scale,
    "int64_t":$recent,
    "int64_t":$sinks
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let builders = [
    AttrBuilder<(ins "QuantKind":$kind,
                     CArg<"ScaleAxis", "ScaleAxis::Token">:$axis,
                     CArg<"int64_t", "0">:$group,
                     CArg<"bool", "true">:$symmetric), [{
      return $_get($_ctxt, kind, axis, group, symmetric,
                   ::mlir::Float16Type::get($_ctxt), 0, 0);
    }]>
  ];
  let extraClassDeclaration = [{
    /// Bits of one stored element: 8, 8, 4 or 2.
    unsigned getBits() const;
    /// The element type of quantized storage in tensors: i8, f8E4M3FN, i4, i2.
    ::mlir::Type getStorageType() const;
    /// Bytes of one scale (and of one zero point).
    unsigned getScaleBytes() const;
    /// 1 for symmetric encodings, 2 when a zero point follows each scale.
    unsigned getScaleCount() const { return getSymmetric() ? 1 : 2; }
    /// Tokens kept in full precision beside the quantized ones.
    int64_t getFullPrecisionTokens() const { return getRecent() + getSinks(); }
  }];
}

def KV_LayoutAttr : KV_Attr<"Layout", "layout"> {
  let summary = "memory layout of a cache: contiguous or paged";
  let description = [{
    `contiguous` stores each sequence's tokens back to back up to the cache
    capacity. `paged` stores fixed-size pages of `page_size` tokens anywhere
    in a pool; a block table maps each sequence's logical pages to physical
    ones (vLLM's PagedAttention).

    ```mlir
    #kv.layout<contiguous>
    #kv.layout<paged, page_size = 16>
    ```
  }];
  let parameters = (ins
    EnumParameter<KV_LayoutKind>:$kind,
    DefaultValuedParameter<"int64_t", "0">:$pageSize
  );
  let assemblyFormat = "`<` $kind (`,` `page_size` `=` $pageSize^)? `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    bool isPaged() const { return getKind() == LayoutKind::Paged; }
  }];
}

#endif // KVOPT_DIALECT_KV_KVATTRIBUTES_TD
