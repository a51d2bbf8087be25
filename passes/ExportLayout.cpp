//===- ExportLayout.cpp - kv-export-layout: layout JSON for the runtime -===//
//
// Serializes the module's cache types into the layout description the
// runtime's pool and bundle loader consume (docs/CacheLayout.md).
//
//===----------------------------------------------------------------------===//

#include "kvopt/Transforms/CacheLayers.h"
#include "kvopt/Transforms/Passes.h"

#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/ToolOutputFile.h"

namespace kvopt {
#define GEN_PASS_DEF_KVEXPORTLAYOUT
#include "kvopt/Transforms/Passes.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;

namespace {

std::string elementName(Type type) {
  std::string name;
  llvm::raw_string_ostream os(name);
  os << type;
  return name;
}

llvm::json::Value quantJson(QuantAttr quant) {
  if (!quant)
    return nullptr;
  return llvm::json::Object{{"kind", stringifyQuantKind(quant.getKind())},
                            {"axis", stringifyScaleAxis(quant.getAxis())},
                            {"group", quant.getGroup()},
                            {"symmetric", quant.getSymmetric()},
                            {"scale", elementName(quant.getScale())},
                            {"recent", quant.getRecent()},
                            {"sinks", quant.getSinks()}};
}

struct ExportLayoutPass
    : public kvopt::impl::KVExportLayoutBase<ExportLayoutPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    markAllAnalysesPreserved();
    if (defaultPageSize < 1 || defaultPageSize > 4096) {
      module.emitError() << "kv-export-layout: option 'default-page-size' "
                            "must be in 1..4096, got "
                         << int64_t(defaultPageSize);
      return signalPassFailure();
    }
    std::vector<CacheLayer> layers = collectCacheLayers(module);
    // Number the owning caches in layer order; sharing layers map to their
    // owner's number.
    KVCacheTypeInterface type;
    int64_t typeLayer = -1;
    llvm::DenseMap<int64_t, int64_t> cacheOf;
    for (const CacheLayer &entry : layers) {
      if (entry.sharesLayer)
        continue;
      if (type && entry.type != type) {
        module.emitError() << "kv-export-layout: the caches of layers "
                           << typeLayer << " and " << entry.layer
                           << " differ; the runtime pools one layout";
        return signalPassFailure();
      }
      type = entry.type;
      typeLayer = entry.layer;
      cacheOf[entry.layer] = int64_t(cacheOf.size());
    }
    if (!type) {
      module.emitError("kv-export-layout: the module has no KV cache");
      return signalPassFailure();
    }
    llvm::json::Array layerToCache;
    for (const CacheLayer &entry : layers) {
      int64_t owner = entry.sharesLayer ? *entry.sharesLayer : entry.layer;
      auto it = cacheOf.find(owner);
      if (it == cacheOf.end()) {
        module.emitError() << "kv-export-layout: layer " << entry.layer
                           << " shares a cache that no layer owns";
        return signalPassFailure();
      }
      layerToCache.push_back(it->second);
    }
    if (layers.back().layer + 1 != int64_t(layers.size())) {
      module.emitError("kv-export-layout: layers must be numbered 0..N-1 "
                       "without gaps");
      return signalPassFailure();
    }

    llvm::json::Object layout{{"element", elementName(type.getElementType())},
                              {"layout", "paged"},
                              {"page_size", type.isPaged()
                                                ? type.getPageSize()
                                                : int64_t(defaultPageSize)},
                              {"num_layers", int64_t(layers.size())},
                              {"layer_to_cache", std::move(layerToCache)}};
    if (auto cache = dyn_cast<CacheType>(type)) {
      layout["kind"] = "kv";
      layout["kv_heads"] = cache.getKvHeads();
      layout["head_dim"] = cache.getHeadDim();
      layout["key"] = quantJson(cache.getKeyQuant());
      layout["value"] = quantJson(cache.getValueQuant());
    } else {
      auto latent = cast<LatentCacheType>(type);
      layout["kind"] = "latent";
      layout["latent_dim"] = latent.getLatentDim();
      layout["rope_dim"] = latent.getRopeDim();
      layout["key"] = quantJson(latent.getQuant());
      layout["value"] = nullptr;
    }

    std::string error;
    auto out = openOutputFile(output, &error);
    if (!out) {
      module.emitError() << "kv-export-layout: option 'output': " << error;
      return signalPassFailure();
    }
    out->os() << llvm::formatv("{0:2}", llvm::json::Value(std::move(layout)))
              << "\n";
    out->keep();
  }
};

} // namespace
