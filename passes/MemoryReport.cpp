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

#include <map>

namespace kvopt {
#define GEN_PASS_DEF_KVMEMORYREPORT
#include "kvopt/Transforms/Passes.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;

/// What record-baseline leaves in the module: a dictionary with the total
/// `bytes_per_token`, `fixed_bytes_per_sequence`, `page_size`, `capacity`
/// and `layers`, an array of {layer, bytes_per_token} in report order.
static constexpr llvm::StringLiteral kBaselineAttr = "kv.baseline";

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

/// The module's caches summed up, and what fits the budget.
struct Summary {
  double total = 0;
  int64_t fixed = 0, pageSize = 1, capacity = 0;
  int64_t maxContext = 0, maxBatch = 0;
  /// Per report row: the layer and its bytes per token.
  SmallVector<std::pair<int64_t, double>> layers;
};

Summary summarize(ArrayRef<CacheLayer> layers) {
  Summary s;
  for (const CacheLayer &entry : layers) {
    double bytes = entry.sharesLayer ? 0.0 : entry.type.getBytesPerToken();
    s.layers.push_back({entry.layer, bytes});
    if (entry.sharesLayer)
      continue;
    s.total += bytes;
    s.fixed += entry.type.getFixedBytesPerSequence();
    s.pageSize = std::max(s.pageSize, entry.type.getPageSize());
    s.capacity = std::max(s.capacity, entry.type.getCapacity());
  }
  return s;
}

/// What fits `budgetGiB` at `batch`: tokens per sequence, rounded down to
/// whole pages (a sequence's last page may be partly empty), and sequences
/// at full capacity.
void fit(Summary &s, double budgetGiB, int64_t batch) {
  double budget = budgetGiB * double(1ull << 30);
  s.maxContext = s.maxBatch = 0;
  if (s.total <= 0)
    return;
  double perSequence = budget / double(batch) - double(s.fixed);
  if (perSequence > 0)
    s.maxContext = int64_t(perSequence / s.total) / s.pageSize * s.pageSize;
  double fullSequence = double(s.capacity) * s.total + double(s.fixed);
  s.maxBatch = int64_t(budget / fullSequence);
}

DictionaryAttr baselineAttr(MLIRContext *ctx, const Summary &s) {
  Builder b(ctx);
  SmallVector<Attribute> layers;
  for (auto [layer, bytes] : s.layers)
    layers.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("layer", b.getI64IntegerAttr(layer)),
         b.getNamedAttr("bytes_per_token", b.getF64FloatAttr(bytes))}));
  return b.getDictionaryAttr(
      {b.getNamedAttr("bytes_per_token", b.getF64FloatAttr(s.total)),
       b.getNamedAttr("fixed_bytes_per_sequence", b.getI64IntegerAttr(s.fixed)),
       b.getNamedAttr("page_size", b.getI64IntegerAttr(s.pageSize)),
       b.getNamedAttr("capacity", b.getI64IntegerAttr(s.capacity)),
       b.getNamedAttr("layers", b.getArrayAttr(layers))});
}

/// The summary a baseline attribute describes; nullopt when malformed.
std::optional<Summary> parseBaseline(DictionaryAttr attr) {
  auto total = attr.getAs<FloatAttr>("bytes_per_token");
  auto fixed = attr.getAs<IntegerAttr>("fixed_bytes_per_sequence");
  auto page = attr.getAs<IntegerAttr>("page_size");
  auto capacity = attr.getAs<IntegerAttr>("capacity");
  auto layers = attr.getAs<ArrayAttr>("layers");
  if (!total || !fixed || !page || !capacity || !layers)
    return std::nullopt;
  Summary s;
  s.total = total.getValueAsDouble();
  s.fixed = fixed.getInt();
  s.pageSize = std::max<int64_t>(page.getInt(), 1);
  s.capacity = capacity.getInt();
  for (Attribute a : layers) {
    auto dict = dyn_cast<DictionaryAttr>(a);
    auto layer = dict ? dict.getAs<IntegerAttr>("layer") : IntegerAttr();
    auto bytes = dict ? dict.getAs<FloatAttr>("bytes_per_token") : FloatAttr();
    if (!layer || !bytes)
      return std::nullopt;
    s.layers.push_back({layer.getInt(), bytes.getValueAsDouble()});
  }
  return s;
}

/// For each report row, the baseline bytes per token of the same layer
/// (the n-th row of a layer number takes the n-th baseline entry of it);
/// nullopt for layers the baseline does not have.
SmallVector<std::optional<double>> matchLayers(ArrayRef<CacheLayer> layers,
                                               const Summary &baseline) {
  std::map<int64_t, SmallVector<double>> before;
  for (auto [layer, bytes] : baseline.layers)
    before[layer].push_back(bytes);
  std::map<int64_t, size_t> used;
  SmallVector<std::optional<double>> result;
  for (const CacheLayer &entry : layers) {
    auto it = before.find(entry.layer);
    size_t &n = used[entry.layer];
    if (it != before.end() && n < it->second.size())
      result.push_back(it->second[n++]);
    else
      result.push_back(std::nullopt);
  }
  return result;
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
    Summary now = summarize(layers);
    if (recordBaseline) {
      module->setAttr(kBaselineAttr, baselineAttr(&getContext(), now));
      return markAllAnalysesPreserved();
    }
    fit(now, budgetGiB, batch);
    std::optional<Summary> baseline;
    SmallVector<std::optional<double>> before(layers.size());
    if (auto attr = module->getAttrOfType<DictionaryAttr>(kBaselineAttr)) {
      baseline = parseBaseline(attr);
      if (!baseline) {
        module.emitError() << "kv-memory-report: malformed '" << kBaselineAttr
                           << "' attribute (left by record-baseline)";
        return signalPassFailure();
      }
      module->removeAttr(kBaselineAttr);
      fit(*baseline, budgetGiB, batch);
      before = matchLayers(layers, *baseline);
    }

    std::string error;
    auto out = openOutputFile(output, &error);
    if (!out) {
      module.emitError() << "kv-memory-report: option 'output': " << error;
      return signalPassFailure();
    }
    if (format == "json")
      printJson(out->os(), layers, now, baseline, before);
    else
      printTable(out->os(), layers, now, baseline, before);
    out->keep();
    markAllAnalysesPreserved();
  }

  void printTable(llvm::raw_ostream &os, ArrayRef<CacheLayer> layers,
                  const Summary &now, const std::optional<Summary> &baseline,
                  ArrayRef<std::optional<double>> before) {
    os << "KV memory report (budget " << llvm::format("%.2f", double(budgetGiB))
       << " GiB, batch " << int64_t(batch) << ")\n";
    os << llvm::format("  %-6s %-52s %14s", "layer", "cache", "bytes/token");
    if (baseline)
      os << llvm::format(" %14s", "before");
    os << "\n";
    int64_t owners = 0;
    for (auto [i, entry] : llvm::enumerate(layers)) {
      std::string what = entry.sharesLayer
                             ? "shares the cache of layer " +
                                   std::to_string(*entry.sharesLayer)
                             : describe(entry.type);
      owners += !entry.sharesLayer;
      os << llvm::format("  %-6lld %-52s %14.2f", (long long)entry.layer,
                         what.c_str(), now.layers[i].second);
      if (baseline && before[i])
        os << llvm::format(" %14.2f", *before[i]);
      else if (baseline)
        os << llvm::format(" %14s", "-");
      os << "\n";
    }
    os << llvm::format("  total bytes per token: %.2f", now.total);
    if (baseline && now.total > 0)
      os << llvm::format(" (before: %.2f, %.2fx smaller)", baseline->total,
                         baseline->total / now.total);
    os << "\n  fixed bytes per sequence (full-precision windows): "
       << now.fixed;
    if (baseline)
      os << " (before: " << baseline->fixed << ")";
    os << "\n  max context per sequence at batch " << int64_t(batch) << ": "
       << now.maxContext << " tokens";
    if (baseline)
      os << " (before: " << baseline->maxContext << ")";
    os << "\n  max batch at capacity " << now.capacity << ": " << now.maxBatch
       << " sequences";
    if (baseline)
      os << " (before: " << baseline->maxBatch << ")";
    os << "\n";
    // The one-line summary the quick start prints.
    os << "kv-memory-report: " << layers.size() << " layers, " << owners
       << " caches, " << llvm::format("%.2f", now.total) << " B/token";
    if (baseline && now.total > 0)
      os << llvm::format(" (was %.2f, %.2fx smaller)", baseline->total,
                         baseline->total / now.total);
    os << ", max context " << now.maxContext << " tokens at batch "
       << int64_t(batch) << " in " << llvm::format("%.2f", double(budgetGiB))
       << " GiB\n";
  }

  void printJson(llvm::raw_ostream &os, ArrayRef<CacheLayer> layers,
                 const Summary &now, const std::optional<Summary> &baseline,
                 ArrayRef<std::optional<double>> before) {
    llvm::json::Array entries;
    for (auto [i, entry] : llvm::enumerate(layers)) {
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
      if (before[i])
        object["baseline_bytes_per_token"] = *before[i];
      entries.push_back(std::move(object));
    }
    llvm::json::Object report{{"layers", std::move(entries)},
                              {"bytes_per_token", now.total},
                              {"fixed_bytes_per_sequence", now.fixed},
                              {"budget_gib", double(budgetGiB)},
                              {"batch", int64_t(batch)},
                              {"max_context_per_sequence", now.maxContext},
                              {"max_batch_at_capacity", now.maxBatch},
                              {"capacity", now.capacity}};
    if (baseline) {
      report["baseline_bytes_per_token"] = baseline->total;
      report["baseline_fixed_bytes_per_sequence"] = baseline->fixed;
      report["baseline_max_context_per_sequence"] = baseline->maxContext;
      report["baseline_max_batch_at_capacity"] = baseline->maxBatch;
    }
    os << llvm::formatv("{0:2}", llvm::json::Value(std::move(report))) << "\n";
  }
};

} // namespace
