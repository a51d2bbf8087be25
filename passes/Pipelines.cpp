//===- Pipelines.cpp - registered kv pipelines --------------------------===//
//
// Composes the technique passes into pipelines that take a short option
// string, and registers passes and pipelines with the global registry.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Transforms/Passes.h"
#include "kvopt/Transforms/RaisePasses.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

void kvopt::buildOptimizePipeline(OpPassManager &pm,
                                  const OptimizePipelineOptions &options) {
  // Raising leaves IR without model-graph attention alone, so it is safe to
  // run on kv-level modules too.
  if (options.raise) {
    KVRaiseAttentionOptions raise;
    raise.capacity = options.capacity;
    pm.addPass(createKVRaiseAttention(raise));
    pm.addPass(createKVRaiseRope());
  }
  if (options.report) {
    KVMemoryReportOptions baseline;
    baseline.recordBaseline = true;
    pm.addPass(createKVMemoryReport(baseline));
  }
  if (options.kvHeads > 0) {
    KVMHAToGQAOptions gqa;
    gqa.kvHeads = options.kvHeads;
    pm.addPass(createKVMHAToGQA(gqa));
  }
  if (options.shareGroup > 0 || !options.shareMap.empty()) {
    KVShareLayersOptions share;
    share.groupSize = options.shareGroup;
    share.map = llvm::to_vector(options.shareMap);
    pm.addPass(createKVShareLayers(share));
  }
  if (options.absorbMLA)
    pm.addPass(createKVAbsorbMLA());
  if (options.fuse)
    pm.addPass(createKVFuseAppend());
  if (options.key != "none" || options.value != "none") {
    KVQuantizeOptions quantize;
    quantize.key = options.key;
    quantize.value = options.value;
    quantize.keyAxis = options.keyAxis;
    quantize.valueAxis = options.valueAxis;
    quantize.keyGroup = options.keyGroup;
    quantize.valueGroup = options.valueGroup;
    quantize.symmetric = options.symmetric;
    quantize.scaleType = options.scaleType;
    quantize.recent = options.recent;
    quantize.sinks = options.sinks;
    quantize.keyRecent = options.keyRecent;
    quantize.valueRecent = options.valueRecent;
    quantize.keySinks = options.keySinks;
    quantize.valueSinks = options.valueSinks;
    pm.addPass(createKVQuantize(quantize));
  }
  if (options.pageSize != 0) {
    KVPaginateOptions paginate;
    paginate.pageSize = options.pageSize;
    pm.addPass(createKVPaginate(paginate));
  }
  if (options.report) {
    KVMemoryReportOptions report;
    report.budgetGiB = options.budgetGiB;
    report.batch = options.batch;
    pm.addPass(createKVMemoryReport(report));
  }
}

void kvopt::registerTransformsPassesAndPipelines() {
  registerKVTransformsPasses();
  registerKVRaisePasses();
  PassPipelineRegistration<OptimizePipelineOptions>(
      "kv-optimize",
      "raise attention from model graphs and apply KV-cache techniques by "
      "option (MHA->GQA, cross-layer sharing, MLA absorption, fusion, "
      "quantization, paging); report memory before and after",
      buildOptimizePipeline);
}
