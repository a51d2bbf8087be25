//===- Passes.h - kv technique passes ---------------------------*- C++ -*-===//
//
// Declarations and registration of the target-independent kv passes and
// the pipelines that compose them.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TRANSFORMS_PASSES_H
#define KVOPT_TRANSFORMS_PASSES_H

#include "kvopt/Dialect/KV/KVOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

namespace kvopt {

#define GEN_PASS_DECL
#include "kvopt/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "kvopt/Transforms/Passes.h.inc"

/// Options of the `kv-optimize` pipeline: one flag per technique.
struct OptimizePipelineOptions
    : public mlir::PassPipelineOptions<OptimizePipelineOptions> {
  Option<int64_t> pageSize{
      *this, "page-size",
      llvm::cl::desc("tokens per page, 0 = keep contiguous"),
      llvm::cl::init(16)};
  Option<std::string> key{*this, "key",
                          llvm::cl::desc("key encoding (none, int8, fp8_e4m3, "
                                         "int4, int2)"),
                          llvm::cl::init("none")};
  Option<std::string> value{*this, "value",
                            llvm::cl::desc("value encoding (none, int8, "
                                           "fp8_e4m3, int4, int2)"),
                            llvm::cl::init("none")};
  Option<int64_t> keyGroup{*this, "key-group",
                           llvm::cl::desc("tokens per key scale (per "
                                          "channel); must divide page-size"),
                           llvm::cl::init(16)};
  Option<int64_t> valueGroup{*this, "value-group",
                             llvm::cl::desc("channels per value scale, 0 = "
                                            "whole head"),
                             llvm::cl::init(0)};
  Option<std::string> keyAxis{*this, "key-axis",
                              llvm::cl::desc("key scale axis (token, channel)"),
                              llvm::cl::init("channel")};
  Option<std::string> valueAxis{*this, "value-axis",
                                llvm::cl::desc("value scale axis (token, "
                                               "channel)"),
                                llvm::cl::init("token")};
  Option<bool> symmetric{*this, "symmetric",
                         llvm::cl::desc("symmetric scales (no zero points)"),
                         llvm::cl::init(false)};
  Option<std::string> scaleType{*this, "scale-type",
                                llvm::cl::desc("scale element type (f16, "
                                               "bf16, f32)"),
                                llvm::cl::init("f16")};
  Option<int64_t> recent{*this, "recent",
                         llvm::cl::desc("recent tokens kept in full precision "
                                        "(-1: what per-channel keys need)"),
                         llvm::cl::init(-1)};
  Option<int64_t> sinks{*this, "sinks",
                        llvm::cl::desc("first tokens kept in full precision"),
                        llvm::cl::init(0)};
  Option<int64_t> keyRecent{*this, "key-recent",
                            llvm::cl::desc("keys' recent window (-2: take "
                                           "recent)"),
                            llvm::cl::init(-2)};
  Option<int64_t> valueRecent{*this, "value-recent",
                              llvm::cl::desc("values' recent window (-2: "
                                             "take recent)"),
                              llvm::cl::init(-2)};
  Option<int64_t> keySinks{*this, "key-sinks",
                           llvm::cl::desc("keys' sink tokens (-1: take "
                                          "sinks)"),
                           llvm::cl::init(-1)};
  Option<int64_t> valueSinks{*this, "value-sinks",
                             llvm::cl::desc("values' sink tokens (-1: take "
                                            "sinks)"),
                             llvm::cl::init(-1)};
  Option<bool> raise{*this, "raise",
                     llvm::cl::desc("raise attention out of linalg model "
                                    "graphs first (kv-raise-attention)"),
                     llvm::cl::init(true)};
  Option<int64_t> capacity{*this, "capacity",
                           llvm::cl::desc("tokens per sequence of caches made "
                                          "by raising (0 = what the graph "
                                          "reads)"),
                           llvm::cl::init(0)};
  Option<bool> absorbMLA{*this, "absorb-mla",
                         llvm::cl::desc("run MLA attention on the latent cache "
                                        "with absorbed weights"),
                         llvm::cl::init(true)};
  Option<int64_t> kvHeads{*this, "kv-heads",
                          llvm::cl::desc("convert to GQA with this many KV "
                                         "heads (kv-mha-to-gqa), 0 = keep"),
                          llvm::cl::init(0)};
  Option<int64_t> shareGroup{*this, "share-group",
                             llvm::cl::desc("layers per shared cache "
                                            "(kv-share-layers), 0 = none"),
                             llvm::cl::init(0)};
  ListOption<int64_t> shareMap{*this, "share-map",
                               llvm::cl::desc("layer -> owner layer map for "
                                              "kv-share-layers")};
  Option<bool> fuse{*this, "fuse",
                    llvm::cl::desc("fuse RoPE + quantize + append"),
                    llvm::cl::init(true)};
  Option<double> budgetGiB{*this, "budget-gib",
                           llvm::cl::desc("memory budget for the report"),
                           llvm::cl::init(80.0)};
  Option<int64_t> batch{*this, "batch",
                        llvm::cl::desc("sequences for the report"),
                        llvm::cl::init(1)};
  Option<bool> report{*this, "report",
                      llvm::cl::desc("print the memory report"),
                      llvm::cl::init(true)};
};

/// Builds `kv-optimize`: raise attention out of model graphs, record the
/// memory baseline, then (each when asked) MHA->GQA, cross-layer sharing,
/// MLA absorption, RoPE/quantize/append fusion, quantization and paging, and
/// report memory before and after.
void buildOptimizePipeline(mlir::OpPassManager &pm,
                           const OptimizePipelineOptions &options);

/// Registers the kv passes and pipelines with the global registry.
void registerTransformsPassesAndPipelines();

} // namespace kvopt

#endif // KVOPT_TRANSFORMS_PASSES_H
