//===- Pipelines.cpp - registered kv pipelines --------------------------===//
//
// Composes the technique passes into pipelines that take a short option
// string, and registers passes and pipelines with the global registry.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Transforms/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

void kvopt::buildOptimizePipeline(OpPassManager &pm,
                                  const OptimizePipelineOptions &options) {
  if (options.report) {
    KVMemoryReportOptions baseline;
    baseline.recordBaseline = true;
    pm.addPass(createKVMemoryReport(baseline));
  }
  if (options.key != "none" || options.value != "none") {
    KVQuantizeOptions quantize;
    quantize.key = options.key;
    quantize.value = options.value;
    quantize.keyGroup = options.keyGroup;
    quantize.valueGroup = options.valueGroup;
    quantize.recent = options.recent;
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
  PassPipelineRegistration<OptimizePipelineOptions>(
      "kv-optimize",
      "apply KV-cache techniques by option (quantize keys/values, paginate) "
      "and report memory before and after",
      buildOptimizePipeline);
}
