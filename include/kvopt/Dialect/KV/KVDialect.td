//===- KVDialect.td - the kv dialect definition ------------*- tablegen -*-===//
//
// The kv dialect: KV-cache types, layouts, quantization encodings and the
// operations that append to, read from and attend over KV caches.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_DIALECT_KV_KVDIALECT_TD
#define KVOPT_DIALECT_KV_KVDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def KV_Dialect : Dialect {
  let name = "kv";
  let cppNamespace = "::kvopt::kv";
  let summary = "KV-cache operations for LLM attention";
  let description = [{
    The kv dialect makes the key/value cache of transformer attention a
    first-class value. A cache type (`!kv.cache`, `!kv.latent_cache`) carries
    everything needed to know its memory layout: head counts and dimensions
    (or MLA latent and RoPE dimensions), capacity, element type, layout
    (contiguous or paged) and optional quantization encodings of keys and
    values. Operations append tokens, attend over caches (GQA/MQA, causal,
    sliding window, sinks), project and attend over MLA latents, quantize,
    gather pages and merge split-KV partial states.

    Layout lives in the cache type, never in attention operations: paging and
    quantization are therefore orthogonal to grouping, MLA and sharing.
  }];
  let useDefaultAttributePrinterParser = 1;
  let useDefaultTypePrinterParser = 1;
  let extraClassDeclaration = [{
    void registerAttributes();
    void registerTypes();
  }];
}

class KV_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<KV_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

class KV_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<KV_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

class KV_Op<string mnemonic, list<Trait> traits = []>
    : Op<KV_Dialect, mnemonic, traits>;

#endif // KVOPT_DIALECT_KV_KVDIALECT_TD
