//===- Passes.td - kv technique passes ----------------------*- tablegen -*-===//
//
// Target-independent passes that apply KV-cache techniques to kv IR.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TRANSFORMS_PASSES_TD
#define KVOPT_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def KVPaginate : Pass<"kv-paginate", "::mlir::ModuleOp"> {
  let summary = "store KV caches in fixed-size pages addressed by block tables";
  let description = [{
    Rewrites every contiguous cache type in the module to the paged layout
    with `page-size` tokens per page. Each function that takes a cache as an
    argument gains, right after it, a block table argument
    `tensor<? x P x i32>` (P = ceil(capacity / page-size)), and every
    kv.append, kv.view, kv.attention and kv.mla_attention on that cache uses
    it. Caches created inside a function by kv.alloc_cache get a block table
    argument too, appended to the function's arguments.

    Preconditions: caches reach ops only as function arguments,
    kv.alloc_cache results or kv.share_cache views of those; public
    functions may change signature (the pass updates func.call sites in the
    module). Already paged caches are left alone.
    Postconditions: no contiguous cache type remains; each cache-touching op
    has a block table of its cache's batch.
  }];
  let options = [
    Option<"pageSize", "page-size", "int64_t", /*default=*/"16",
           "tokens per page (1..4096)">
  ];
  let dependentDialects = ["::kvopt::kv::KVDialect",
                           "::mlir::tensor::TensorDialect"];
}

def KVQuantize : Pass<"kv-quantize", "::mlir::ModuleOp"> {
  let summary = "quantize the keys and values stored in KV caches";
  let description = [{
    Gives every cache in the module quantization encodings for its keys and
    values (the latent row of an MLA cache uses the key options). Each side
    has its own encoding, scale axis, group size and full-precision windows;
    the defaults follow KIVI: keys per channel in 32-token groups, values
    per token. Per-channel groups are quantized once complete, so their
    tokens stay in a full-precision recent window until then; `recent=-1`
    (the default) picks the smallest window that allows (group - 1).
    `recent` and `sinks` apply to both sides; `key-recent`, `value-recent`,
    `key-sinks` and `value-sinks` override them for one side.
    `key=none` or `value=none` keeps that side in full precision. Scales
    become part of the cache's storage; quantization happens on append and
    dequantization inside attention. Caches that already carry an encoding
    for a side keep it.
  }];
  let options = [
    Option<"key", "key", "std::string", /*default=*/"\"int8\"",
           "key encoding: none, int8, fp8_e4m3, int4 or int2">,
    Option<"keyAxis", "key-axis", "std::string", /*default=*/"\"channel\"",
           "key scale axis: token or channel">,
    Option<"keyGroup", "key-group", "int64_t", /*default=*/"32",
           "key group size (channels for token axis, 0 = whole head; tokens "
           "for channel axis)">,
    Option<"value", "value", "std::string", /*default=*/"\"int8\"",
           "value encoding: none, int8, fp8_e4m3, int4 or int2">,
    Option<"valueAxis", "value-axis", "std::string", /*default=*/"\"token\"",
           "value scale axis: token or channel">,
    Option<"valueGroup", "value-group", "int64_t", /*default=*/"0",
           "value group size">,
    Option<"symmetric", "symmetric", "bool", /*default=*/"false",
           "symmetric scales (no zero points); fp8 is always symmetric">,
    Option<"scaleType", "scale-type", "std::string", /*default=*/"\"f16\"",
           "scale element type: f16, bf16 or f32">,
    Option<"recent", "recent", "int64_t", /*default=*/"-1",
           "most recent tokens kept in full precision; -1 = the least a "
           "per-channel encoding needs (its token group - 1), else 0">,
    Option<"sinks", "sinks", "int64_t", /*default=*/"0",
           "first tokens kept in full precision">,
    Option<"keyRecent", "key-recent", "int64_t", /*default=*/"-2",
           "recent window of the keys, overriding `recent` (-2 = take "
           "`recent`, -1 = what the key encoding needs)">,
    Option<"valueRecent", "value-recent", "int64_t", /*default=*/"-2",
           "recent window of the values, overriding `recent` (-2 = take "
           "`recent`, -1 = what the value encoding needs)">,
    Option<"keySinks", "key-sinks", "int64_t", /*default=*/"-1",
           "sink tokens of the keys, overriding `sinks` (-1 = take "
           "`sinks`)">,
    Option<"valueSinks", "value-sinks", "int64_t", /*default=*/"-1",
           "sink tokens of the values, overriding `sinks` (-1 = take "
           "`sinks`)">
  ];
  let dependentDialects = ["::kvopt::kv::KVDialect"];
}

def KVMemoryReport : Pass<"kv-memory-report", "::mlir::ModuleOp"> {
  let summary = "report KV-cache bytes per token and what fits a memory budget";
  let description = [{
    An analysis that changes nothing. It lists every cache of the module
    (function arguments and kv.alloc_cache results; kv.share_cache views
    count as layers without storage), with its bytes per token, and prints
    the total per token of context, the fixed per-sequence bytes of
    full-precision windows, and the largest context per sequence that fits
    `budget-gib` at `batch` sequences. When a previous run of this pass left
    a baseline in the module (attribute `kv.baseline`, set with
    `record-baseline`: the per-layer and total bytes per token, the fixed
    bytes, page size and capacity at that point), the report also shows,
    per layer and in total, the bytes per token before (matched by layer
    number), the reduction, and the fixed bytes, max context and max batch
    before; it removes the attribute. `format=json` prints the same as one
    JSON object.
  }];
  let options = [
    Option<"budgetGiB", "budget-gib", "double", /*default=*/"80.0",
           "memory budget for KV caches in GiB">,
    Option<"batch", "batch", "int64_t", /*default=*/"1",
           "sequences sharing the budget">,
    Option<"format", "format", "std::string", /*default=*/"\"table\"",
           "output format: table or json">,
    Option<"recordBaseline", "record-baseline", "bool", /*default=*/"false",
           "store the per-layer and total figures as the module's baseline "
           "and print nothing">,
    Option<"output", "output", "std::string", /*default=*/"\"-\"",
           "file to write the report to (- = stdout)">
  ];
}

def KVShareLayers : Pass<"kv-share-layers", "::mlir::ModuleOp"> {
  let summary = "let groups of layers read one KV cache (cross-layer sharing)";
  let description = [{
    Cross-layer KV sharing (CLA, YOCO-style): within a sharing group, only the
    first layer keeps and appends to a cache; the other layers read it
    through `kv.share_cache` and their own appends are erased, as are their
    cache arguments (func.call sites drop the operand) or kv.alloc_cache ops.
    Layers are the caches' `kv.layer` argument attributes or kv.alloc_cache
    `layer` attributes. Give either `group-size` (every N adjacent layers
    share the cache of the first) or `map` (layer i reads the cache of layer
    map[i]; an owner maps to itself and precedes the layers it serves).

    This changes the model on purpose (the sharing layers' K/V projections
    become dead); training with sharing (CLA) is what makes it accurate.

    Preconditions: caches of one group live in one function and have one
    type; the caches are not paged yet (run before kv-paginate).
  }];
  let options = [
    Option<"groupSize", "group-size", "int64_t", /*default=*/"0",
           "every N adjacent layers share one cache (0 = use map)">,
    ListOption<"map", "map", "int64_t",
               "layer i reads the cache of layer map[i]">
  ];
  let dependentDialects = ["::kvopt::kv::KVDialect"];
}

def KVMHAToGQA : Pass<"kv-mha-to-gqa", "::mlir::ModuleOp"> {
  let summary = "convert multi-head attention to grouped-query attention";
  let description = [{
    The GQA paper's uptraining recipe: a cache of H KV heads becomes one of
    `kv-heads` heads (H a multiple of it) by mean-pooling the key and value
    projection weights of each group of H / kv-heads adjacent heads; the
    query heads stay, now grouped over the pooled KV heads. The pass traces
    the keys and values appended to each cache back through
    an optional `kv.rope`, `linalg.transpose` [0, 2, 1, 3] and
    `tensor.expand_shape` to the `linalg.matmul` with
    the projection weight `[hidden, H * head_dim]`, inserts the pooled
    weight `[hidden, kv-heads * head_dim]` computation and rebuilds the
    chain with the new head count; views of the cache (and the function
    results they feed) shrink accordingly. Caches whose projections are not
    in that form are reported and left alone.
  }];
  let options = [
    Option<"kvHeads", "kv-heads", "int64_t", /*default=*/"1",
           "KV heads after the conversion (1 = MQA)">
  ];
  let dependentDialects = ["::kvopt::kv::KVDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::arith::ArithDialect"];
}

def KVFuseAppend : Pass<"kv-fuse-append", "::mlir::ModuleOp"> {
  let summary = "fuse RoPE, quantization and append into one kv.append";
  let description = [{
    Folds a `kv.rope` whose only use is the keys of a `kv.append` at the
    same positions into the append's `rope_theta`, so that rotation,
    quantization (the cache's encoding) and the scatter into pages happen in
    one kernel. Dequantization is already inside `kv.attention`, which reads
    quantized caches directly. RoPE on keys that are also used elsewhere,
    or at other positions, is left alone.
  }];
  let dependentDialects = ["::kvopt::kv::KVDialect"];
}

def KVExportLayout : Pass<"kv-export-layout", "::mlir::ModuleOp"> {
  let summary = "write the module's cache layout for the runtime (JSON)";
  let description = [{
    Writes the cache layout description of docs/CacheLayout.md — the JSON
    the runtime's cache pool is configured from and its bundle loader checks
    kernels against — for the module's caches: one entry per layer, with
    `layer_to_cache` numbering the distinct caches in layer order (layers
    reading a kv.share_cache view map to the owner's cache). The runtime
    pools one layout, so every owning cache must have the same type.
    `default-page-size` gives the page size written for contiguous caches,
    since the runtime always pages. Changes nothing in the IR.
  }];
  let options = [
    Option<"output", "output", "std::string", /*default=*/"\"-\"",
           "file to write the layout to (- = stdout)">,
    Option<"defaultPageSize", "default-page-size", "int64_t",
           /*default=*/"16", "page size written for contiguous caches">
  ];
}

#endif // KVOPT_TRANSFORMS_PASSES_TD
