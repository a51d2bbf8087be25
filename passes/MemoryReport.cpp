//===- MemoryReport.cpp - kv-memory-report ------------------------------===//
//
// Prints per-layer and total KV-cache bytes per token and the largest batch
// and context that fit a memory budget, as a table or as JSON.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Transforms/CacheLayers.h"
#include "kvopt/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/ToolOutputFile.h"

namespace kvopt {
#define GEN_PASS_DEF_KVMEMORYREPORT
#include "kvopt/Transforms/Passes.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;

static constexpr llvm::StringLiteral kBaselineAttr =
    "kv.baseline_bytes_per_token";

namespace {

/// A short human-readable description of a cache type.
std::string describe(KVCacheTypeInterface type) {
  std::string text;
  llvm::raw_string_ostream os(text);
  auto quantName = [](QuantAttr q) -> std::string {
    if (!q)
      return "full";
    std::string s = stringifyQuantKind(q.getKind()).str();
    s += q.getAxis() == ScaleAxis::Channel ? "/ch" : "/tok";
    if (q.getGroup())
      s += std::to_string(q.getGroup());
    return s;
  };
  if (auto cache = dyn_cast<CacheType>(type))
    os << "kv " << cache.getKvHeads() << "x" << cache.getHeadDim() << " "
       << cache.getElementType() << " K:" << quantName(cache.getKeyQuant())
       << " V:" << quantName(cache.getValueQuant());
  else if (auto latent = dyn_cast<LatentCacheType>(type))
    os << "mla " << latent.getLatentDim() << "+" << latent.getRopeDim() << " "
       << latent.getElementType() << " " << quantName(latent.getQuant());
  os << (type.isPaged() ? " paged/" + std::to_string(type.getPageSize())
                        : std::string(" contiguous"));
  return text;
}

struct MemoryReportPass
    : public kvopt::impl::KVMemoryReportBase<MemoryReportPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (format != "table" && format != "json") {
      module.emitError() << "kv-memory-report: option 'format' must be table "
                            "or json, got '"
                         << format << "'";
      return signalPassFailure();
    }
    if (!(budgetGiB > 0.0) || batch < 1) {
      module.emitError() << "kv-memory-report: option '"
                         << (batch < 1 ? "batch" : "budget-gib")
                         << "' must be positive";
      return signalPassFailure();
    }
    std::vector<CacheLayer> layers = collectCacheLayers(module);
    double total = 0;
    int64_t fixed = 0, pageSize = 1, capacity = 0;
    for (const CacheLayer &entry : layers) {
      if (entry.sharesLayer)
        continue;
      total += entry.type.getBytesPerToken();
      fixed += entry.type.getFixedBytesPerSequence();
      pageSize = std::max(pageSize, entry.type.getPageSize());
      capacity = std::max(capacity, entry.type.getCapacity());
    }
    if (recordBaseline) {
      module->setAttr(kBaselineAttr,
                      FloatAttr::get(Float64Type::get(&getContext()), total));
      return markAllAnalysesPreserved();
    }
    std::optional<double> baseline;
    if (auto attr = module->getAttrOfType<FloatAttr>(kBaselineAttr)) {
      baseline = attr.getValueAsDouble();
      module->removeAttr(kBaselineAttr);
    }

    // What fits: tokens per sequence at `batch`, rounded down to whole pages
    // (a sequence's last page may be partly empty), and sequences at full
    // capacity.
    double budget = budgetGiB * double(1ull << 30);
    int64_t maxContext = 0, maxBatch = 0;
    if (total > 0) {
      double perSequence = budget / double(batch) - double(fixed);
      if (perSequence > 0)
        maxContext = int64_t(perSequence / total) / pageSize * pageSize;
      double fullSequence = double(capacity) * total + double(fixed);
      maxBatch = int64_t(budget / fullSequence);
    }

    std::string error;
    auto out = openOutputFile(output, &error);
    if (!out) {
      module.emitError() << "kv-memory-report: option 'output': " << error;
      return signalPassFailure();
    }
    if (format == "json")
      printJson(out->os(), layers, total, fixed, baseline, maxContext, maxBatch,
                capacity);
    else
      printTable(out->os(), layers, total, fixed, baseline, maxContext,
                 maxBatch, capacity);
    out->keep();
    markAllAnalysesPreserved();
  }

  void printTable(llvm::raw_ostream &os, ArrayRef<CacheLayer> layers,
                  double total, int64_t fixed, std::optional<double> baseline,
                  int64_t maxContext, int64_t maxBatch, int64_t capacity) {
    os << "KV memory report (budget " << llvm::format("%.2f", double(budgetGiB))
       << " GiB, batch " << int64_t(batch) << ")\n";
    os << llvm::format("  %-6s %-52s %14s\n", "layer", "cache", "bytes/token");
    int64_t owners = 0;
    for (const CacheLayer &entry : layers) {
      std::string what = entry.sharesLayer
                             ? "shares the cache of layer " +
                                   std::to_string(*entry.sharesLayer)
                             : describe(entry.type);
      double bytes = entry.sharesLayer ? 0.0 : entry.type.getBytesPerToken();
      owners += !entry.sharesLayer;
      os << llvm::format("  %-6lld %-52s %14.2f\n", (long long)entry.layer,
                         what.c_str(), bytes);
    }
    os << llvm::format("  total bytes per token: %.2f", total);
    if (baseline && total > 0)
      os << llvm::format(" (before: %.2f, %.2fx smaller)", *baseline,
                         *baseline / total);
    os << "\n  fixed bytes per sequence (full-precision windows): " << fixed
       << "\n  max context per sequence at batch " << int64_t(batch) << ": "
       << maxContext << " tokens\n  max batch at capacity " << capacity << ": "
       << maxBatch << " sequences\n";
    // The one-line summary the quick start prints.
    os << "kv-memory-report: " << layers.size() << " layers, " << owners
       << " caches, " << llvm::format("%.2f", total) << " B/token";
    if (baseline && total > 0)
      os << llvm::format(" (was %.2f, %.2fx smaller)", *baseline,
                         *baseline / total);
    os << ", max context " << maxContext << " tokens at batch "
       << int64_t(batch) << " in " << llvm::format("%.2f", double(budgetGiB))
       << " GiB\n";
  }

  void printJson(llvm::raw_ostream &os, ArrayRef<CacheLayer> layers,
                 double total, int64_t fixed, std::optional<double> baseline,
                 int64_t maxContext, int64_t maxBatch, int64_t capacity) {
    llvm::json::Array entries;
    for (const CacheLayer &entry : layers) {
      llvm::json::Object object{{"layer", entry.layer}};
      if (entry.sharesLayer) {
        object["shares_layer"] = *entry.sharesLayer;
        object["bytes_per_token"] = 0.0;
      } else {
        object["cache"] = describe(entry.type);
        object["bytes_per_token"] = entry.type.getBytesPerToken();
        object["fixed_bytes_per_sequence"] =
            entry.type.getFixedBytesPerSequence();
        object["page_size"] = entry.type.getPageSize();
        object["capacity"] = entry.type.getCapacity();
      }
      entries.push_back(std::move(object));
    }
    llvm::json::Object report{{"layers", std::move(entries)},
                              {"bytes_per_token", total},
                              {"fixed_bytes_per_sequence", fixed},
                              {"budget_gib", double(budgetGiB)},
                              {"batch", int64_t(batch)},
                              {"max_context_per_sequence", maxContext},
                              {"max_batch_at_capacity", maxBatch},
                              {"capacity", capacity}};
    if (baseline)
      report["baseline_bytes_per_token"] = *baseline;
    os << llvm::formatv("{0:2}", llvm::json::Value(std::move(report))) << "\n";
  }
};

} // namespace
