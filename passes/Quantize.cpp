//===- Quantize.cpp - kv-quantize: quantized KV caches ------------------===//
//
// Gives caches quantization encodings for keys and values, checking each
// option and each resulting cache type with a message naming the option.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Transforms/Passes.h"

#include "mlir/IR/AttrTypeSubElements.h"
#include "mlir/IR/Builders.h"

namespace kvopt {
#define GEN_PASS_DEF_KVQUANTIZE
#include "kvopt/Transforms/Passes.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;

namespace {

struct QuantizePass : public kvopt::impl::KVQuantizeBase<QuantizePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkWindowOptions(module)))
      return signalPassFailure();
    FailureOr<QuantAttr> keyQuant =
        buildEncoding(module, "key", key, keyAxis, int64_t(keyGroup),
                      int64_t(keyRecent), int64_t(keySinks));
    FailureOr<QuantAttr> valueQuant =
        buildEncoding(module, "value", value, valueAxis, int64_t(valueGroup),
                      int64_t(valueRecent), int64_t(valueSinks));
    if (failed(keyQuant) || failed(valueQuant))
      return signalPassFailure();
    if (!*keyQuant && !*valueQuant)
      return markAllAnalysesPreserved();

    bool invalid = false;
    AttrTypeReplacer replacer;
    replacer.addReplacement([&](Type type) -> std::optional<Type> {
      Type result;
      if (auto cache = dyn_cast<CacheType>(type)) {
        QuantAttr k = cache.getKeyQuant() ? cache.getKeyQuant() : *keyQuant;
        QuantAttr v =
            cache.getValueQuant() ? cache.getValueQuant() : *valueQuant;
        auto emit = [&] { return emitOptionError(module, type, "key/value"); };
        if (failed(CacheType::verify(emit, cache.getKvHeads(),
                                     cache.getHeadDim(), cache.getCapacity(),
                                     cache.getElementType(), cache.getLayout(),
                                     k, v))) {
          invalid = true;
          return std::nullopt;
        }
        result = cache.cloneWithQuant(k, v);
      } else if (auto latent = dyn_cast<LatentCacheType>(type)) {
        QuantAttr q = latent.getQuant() ? latent.getQuant() : *keyQuant;
        auto emit = [&] { return emitOptionError(module, type, "key"); };
        if (failed(LatentCacheType::verify(
                emit, latent.getLatentDim(), latent.getRopeDim(),
                latent.getCapacity(), latent.getElementType(),
                latent.getLayout(), q))) {
          invalid = true;
          return std::nullopt;
        }
        result = latent.cloneWithQuant(q);
      } else {
        return std::nullopt;
      }
      return result;
    });
    replacer.recursivelyReplaceElementsIn(module, /*replaceAttrs=*/true,
                                          /*replaceLocs=*/false,
                                          /*replaceTypes=*/true);
    if (invalid)
      signalPassFailure();
  }

  InFlightDiagnostic emitOptionError(ModuleOp module, Type type,
                                     StringRef side) {
    return module.emitError() << "kv-quantize: the " << side
                              << " options do not fit " << type << ": ";
  }

  /// The window options' ranges: `recent` -1 (what the encoding needs) or
  /// a token count, `sinks` a token count; the per-side overrides also take
  /// their "not set" value (-2 for recents, -1 for sinks).
  LogicalResult checkWindowOptions(ModuleOp module) {
    auto check = [&](StringRef name, int64_t got, int64_t least,
                     StringRef allowed) -> LogicalResult {
      if (got >= least)
        return success();
      return module.emitError() << "kv-quantize: option '" << name
                                << "' must be " << allowed << ", got " << got;
    };
    return success(
        succeeded(check("recent", recent, -1, "-1 or a token count >= 0")) &&
        succeeded(check("sinks", sinks, 0, "a token count >= 0")) &&
        succeeded(check("key-recent", keyRecent, -2,
                        "-2 (take 'recent'), -1 or a token count >= 0")) &&
        succeeded(check("value-recent", valueRecent, -2,
                        "-2 (take 'recent'), -1 or a token count >= 0")) &&
        succeeded(check("key-sinks", keySinks, -1,
                        "-1 (take 'sinks') or a token count >= 0")) &&
        succeeded(check("value-sinks", valueSinks, -1,
                        "-1 (take 'sinks') or a token count >= 0")));
  }

  /// Parses one side's options into an encoding; null for `none`.
  /// `sideRecent` / `sideSinks` are the side's overrides (-2 / -1 = take
  /// `recent` / `sinks`).
  FailureOr<QuantAttr> buildEncoding(ModuleOp module, StringRef side,
                                     StringRef kindName, StringRef axisName,
                                     int64_t group, int64_t sideRecent,
                                     int64_t sideSinks) {
    MLIRContext *ctx = module.getContext();
    if (kindName == "none")
      return QuantAttr();
    std::optional<QuantKind> kind = symbolizeQuantKind(kindName);
    if (!kind)
      return module.emitError() << "kv-quantize: option '" << side
                                << "' must be none, int8, fp8_e4m3, int4 or "
                                   "int2, got '"
                                << kindName << "'";
    std::optional<ScaleAxis> axis = symbolizeScaleAxis(axisName);
    if (!axis)
      return module.emitError()
             << "kv-quantize: option '" << side
             << "-axis' must be token or channel, got '" << axisName << "'";
    Type scale = llvm::StringSwitch<Type>(scaleType)
                     .Case("f16", Float16Type::get(ctx))
                     .Case("bf16", BFloat16Type::get(ctx))
                     .Case("f32", Float32Type::get(ctx))
                     .Default(Type());
    if (!scale)
      return module.emitError() << "kv-quantize: option 'scale-type' must be "
                                   "f16, bf16 or f32, got '"
                                << scaleType << "'";
    // fp8 has no zero point whatever `symmetric` says.
    bool isSymmetric = symmetric || *kind == QuantKind::FP8E4M3;
    // The window options that apply to this side, by the names given.
    bool ownRecent = sideRecent != -2, ownSinks = sideSinks != -1;
    std::string recentName = ownRecent ? (side + "-recent").str() : "recent";
    std::string sinksName = ownSinks ? (side + "-sinks").str() : "sinks";
    auto emit = [&] {
      return module.emitError() << "kv-quantize: options '" << side << "', '"
                                << side << "-axis', '" << side << "-group', '"
                                << recentName << "' or '" << sinksName << "': ";
    };
    int64_t window = ownRecent ? sideRecent : int64_t(recent);
    if (window == -1)
      window =
          *axis == ScaleAxis::Channel ? std::max<int64_t>(group - 1, 0) : 0;
    // Per-channel groups wait in the recent window until complete.
    if (*axis == ScaleAxis::Channel && group >= 1 && window < group - 1)
      return module.emitError()
             << "kv-quantize: option '" << recentName << "' must be at least '"
             << side << "-group' - 1 = " << group - 1 << " for per-channel "
             << side << "s, got " << window;
    int64_t sinkTokens = ownSinks ? sideSinks : int64_t(sinks);
    QuantAttr attr = QuantAttr::getChecked(
        emit, ctx, *kind, *axis, group, isSymmetric, scale, window, sinkTokens);
    if (!attr)
      return failure();
    return attr;
  }
};

} // namespace
