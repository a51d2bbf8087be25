//===- KVTypes.cpp - !kv.cache and !kv.latent_cache ---------------------===//
//
// Parsing, printing and verification of the cache types, and the byte
// accounting of docs/CacheLayout.md.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Dialect/KV/KVTypes.h"
#include "kvopt/Dialect/KV/KVDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace kvopt::kv;

#include "kvopt/Dialect/KV/KVTypeInterfaces.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "kvopt/Dialect/KV/KVOpsTypes.cpp.inc"

void KVDialect::registerTypes() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "kvopt/Dialect/KV/KVOpsTypes.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Byte accounting
//===----------------------------------------------------------------------===//

unsigned kvopt::kv::getElementBytes(Type element) {
  return element.getIntOrFloatBitWidth() / 8;
}

double kvopt::kv::getComponentBytesPerToken(int64_t width,
                                            int64_t tokenGroupWidth,
                                            Type element, QuantAttr quant) {
  if (!quant)
    return double(width * getElementBytes(element));
  double data = double(width * quant.getBits()) / 8.0;
  double scaleBytes = quant.getScaleBytes() * quant.getScaleCount();
  if (quant.getAxis() == ScaleAxis::Token) {
    int64_t group = quant.getGroup() ? quant.getGroup() : tokenGroupWidth;
    return data + double(width / group) * scaleBytes;
  }
  return data + double(width) * scaleBytes / double(quant.getGroup());
}

static int64_t getFixedComponentBytes(int64_t width, Type element,
                                      QuantAttr quant) {
  if (!quant)
    return 0;
  return quant.getFullPrecisionTokens() * width * getElementBytes(element);
}

//===----------------------------------------------------------------------===//
// Shared parsing and verification helpers
//===----------------------------------------------------------------------===//

namespace {
/// The `key = value` list between `<` and `>` of both cache types. Values are
/// integers, types or attributes depending on the key.
struct CacheParams {
  llvm::StringMap<int64_t> ints;
  Type element;
  LayoutAttr layout;
  llvm::StringMap<QuantAttr> quants;
};
} // namespace

static ParseResult parseCacheParams(AsmParser &parser, StringRef typeName,
                                    ArrayRef<StringRef> intKeys,
                                    ArrayRef<StringRef> quantKeys,
                                    CacheParams &params) {
  if (parser.parseLess())
    return failure();
  llvm::StringSet<> seen;
  do {
    SMLoc loc = parser.getCurrentLocation();
    StringRef key;
    if (parser.parseKeyword(&key) || parser.parseEqual())
      return failure();
    if (!seen.insert(key).second)
      return parser.emitError(loc)
             << "duplicate key '" << key << "' in " << typeName;
    if (llvm::is_contained(intKeys, key)) {
      int64_t value;
      if (parser.parseInteger(value))
        return failure();
      params.ints[key] = value;
    } else if (key == "element") {
      if (parser.parseType(params.element))
        return failure();
    } else if (key == "layout") {
      Attribute attr;
      if (parser.parseAttribute(attr))
        return failure();
      params.layout = dyn_cast<LayoutAttr>(attr);
      if (!params.layout)
        return parser.emitError(loc) << "expected a #kv.layout attribute";
    } else if (llvm::is_contained(quantKeys, key)) {
      Attribute attr;
      if (parser.parseAttribute(attr))
        return failure();
      auto quant = dyn_cast<QuantAttr>(attr);
      if (!quant)
        return parser.emitError(loc) << "expected a #kv.quant attribute";
      params.quants[key] = quant;
    } else {
      std::string expected;
      for (StringRef k : intKeys)
        expected += (k + ", ").str();
      expected += "element, layout";
      for (StringRef k : quantKeys)
        expected += (", " + k).str();
      return parser.emitError(loc) << "unknown key '" << key << "' in "
                                   << typeName << "; expected " << expected;
    }
  } while (succeeded(parser.parseOptionalComma()));
  SMLoc end = parser.getCurrentLocation();
  if (parser.parseGreater())
    return failure();
  for (StringRef key : intKeys)
    if (!params.ints.count(key))
      return parser.emitError(end) << typeName << " needs '" << key << "'";
  if (!params.element)
    return parser.emitError(end) << typeName << " needs 'element'";
  if (!params.layout)
    params.layout =
        LayoutAttr::get(parser.getContext(), LayoutKind::Contiguous, 0);
  return success();
}

static void
printLayoutAndQuant(AsmPrinter &printer, LayoutAttr layout,
                    ArrayRef<std::pair<StringRef, QuantAttr>> quants) {
  if (layout.isPaged())
    printer << ", layout = " << Attribute(layout);
  for (auto [name, quant] : quants)
    if (quant)
      printer << ", " << name << " = " << Attribute(quant);
}

static LogicalResult verifyCommon(function_ref<InFlightDiagnostic()> emitError,
                                  int64_t capacity, Type element) {
  if (capacity <= 0)
    return emitError() << "cache capacity must be positive, got " << capacity;
  if (!isa<Float16Type, BFloat16Type, Float32Type>(element))
    return emitError() << "cache element type must be f16, bf16 or f32, got "
                       << element;
  return success();
}

/// Checks that one component (`name` = key, value or latent) of `width`
/// elements per token can be stored with `quant`. `rowName`/`rowWidth` name
/// the unit a per-token group of 0 covers (a head, or the latent row).
static LogicalResult
verifyComponentQuant(function_ref<InFlightDiagnostic()> emitError,
                     StringRef name, QuantAttr quant, StringRef rowName,
                     int64_t rowWidth, int64_t capacity, LayoutAttr layout) {
  if (!quant)
    return success();
  int64_t packed = 8 / quant.getBits();
  if (quant.getAxis() == ScaleAxis::Token) {
    int64_t group = quant.getGroup() ? quant.getGroup() : rowWidth;
    if (rowWidth % group != 0)
      return emitError() << name << " encoding group size " << group
                         << " does not divide " << rowName << " " << rowWidth;
    if (group % packed != 0)
      return emitError() << name << " encoding "
                         << stringifyQuantKind(quant.getKind()) << " packs "
                         << packed << " values per byte; group size " << group
                         << " is not a multiple of " << packed;
  } else {
    if (rowWidth % packed != 0)
      return emitError() << name << " encoding "
                         << stringifyQuantKind(quant.getKind()) << " packs "
                         << packed << " values per byte; " << rowName << " "
                         << rowWidth << " is not a multiple of " << packed;
    if (layout.isPaged() && layout.getPageSize() % quant.getGroup() != 0)
      return emitError() << name << " encoding token group " << quant.getGroup()
                         << " does not divide page size "
                         << layout.getPageSize();
    // A group's scales are computed when its last token arrives, from the
    // full-precision copies of the earlier ones (KIVI's residual), so the
    // recent window must hold a whole incomplete group.
    if (quant.getRecent() < quant.getGroup() - 1)
      return emitError() << name << " encoding scales channels over groups of "
                         << quant.getGroup()
                         << " tokens; its recent window must hold an "
                            "incomplete group (recent >= "
                         << quant.getGroup() - 1 << "), got "
                         << quant.getRecent();
  }
  if (quant.getFullPrecisionTokens() > capacity)
    return emitError() << name << " encoding keeps "
                       << quant.getFullPrecisionTokens()
                       << " full-precision tokens, more than the capacity "
                       << capacity;
  return success();
}

//===----------------------------------------------------------------------===//
// CacheType
//===----------------------------------------------------------------------===//

CacheType CacheType::get(int64_t kvHeads, int64_t headDim, int64_t capacity,
                         Type elementType, LayoutAttr layout,
                         QuantAttr keyQuant, QuantAttr valueQuant) {
  MLIRContext *ctx = elementType.getContext();
  if (!layout)
    layout = LayoutAttr::get(ctx, LayoutKind::Contiguous, 0);
  return Base::get(ctx, kvHeads, headDim, capacity, elementType, layout,
                   keyQuant, valueQuant);
}

LogicalResult CacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                                int64_t kvHeads, int64_t headDim,
                                int64_t capacity, Type elementType,
                                LayoutAttr layout, QuantAttr keyQuant,
                                QuantAttr valueQuant) {
  if (kvHeads <= 0)
    return emitError() << "number of KV heads must be positive, got "
                       << kvHeads;
  if (headDim <= 0)
    return emitError() << "head dim must be positive, got " << headDim;
  if (failed(verifyCommon(emitError, capacity, elementType)) ||
      failed(verifyComponentQuant(emitError, "key", keyQuant, "head dim",
                                  headDim, capacity, layout)) ||
      failed(verifyComponentQuant(emitError, "value", valueQuant, "head dim",
                                  headDim, capacity, layout)))
    return failure();
  return success();
}

Type CacheType::parse(AsmParser &parser) {
  CacheParams params;
  SMLoc loc = parser.getCurrentLocation();
  if (parseCacheParams(parser, "!kv.cache",
                       {"kv_heads", "head_dim", "capacity"}, {"key", "value"},
                       params))
    return {};
  return getChecked([&] { return parser.emitError(loc); }, parser.getContext(),
                    params.ints["kv_heads"], params.ints["head_dim"],
                    params.ints["capacity"], params.element, params.layout,
                    params.quants["key"], params.quants["value"]);
}

void CacheType::print(AsmPrinter &printer) const {
  printer << "<kv_heads = " << getKvHeads() << ", head_dim = " << getHeadDim()
          << ", capacity = " << getCapacity()
          << ", element = " << getElementType();
  printLayoutAndQuant(printer, getLayout(),
                      {{"key", getKeyQuant()}, {"value", getValueQuant()}});
  printer << '>';
}

double CacheType::getBytesPerToken() const {
  return getComponentBytesPerToken(getRowWidth(), getHeadDim(),
                                   getElementType(), getKeyQuant()) +
         getComponentBytesPerToken(getRowWidth(), getHeadDim(),
                                   getElementType(), getValueQuant());
}

int64_t CacheType::getFixedBytesPerSequence() const {
  return getFixedComponentBytes(getRowWidth(), getElementType(),
                                getKeyQuant()) +
         getFixedComponentBytes(getRowWidth(), getElementType(),
                                getValueQuant());
}

KVCacheTypeInterface CacheType::cloneWithLayout(LayoutAttr layout) const {
  return CacheType::get(getKvHeads(), getHeadDim(), getCapacity(),
                        getElementType(), layout, getKeyQuant(),
                        getValueQuant());
}

CacheType CacheType::cloneWithQuant(QuantAttr key, QuantAttr value) const {
  return CacheType::get(getKvHeads(), getHeadDim(), getCapacity(),
                        getElementType(), getLayout(), key, value);
}

CacheType CacheType::cloneWithKvHeads(int64_t kvHeads) const {
  return CacheType::get(kvHeads, getHeadDim(), getCapacity(), getElementType(),
                        getLayout(), getKeyQuant(), getValueQuant());
}

//===----------------------------------------------------------------------===//
// LatentCacheType
//===----------------------------------------------------------------------===//

LatentCacheType LatentCacheType::get(int64_t latentDim, int64_t ropeDim,
                                     int64_t capacity, Type elementType,
                                     LayoutAttr layout, QuantAttr quant) {
  MLIRContext *ctx = elementType.getContext();
  if (!layout)
    layout = LayoutAttr::get(ctx, LayoutKind::Contiguous, 0);
  return Base::get(ctx, latentDim, ropeDim, capacity, elementType, layout,
                   quant);
}

LogicalResult
LatentCacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                        int64_t latentDim, int64_t ropeDim, int64_t capacity,
                        Type elementType, LayoutAttr layout, QuantAttr quant) {
  if (latentDim <= 0)
    return emitError() << "latent dim must be positive, got " << latentDim;
  if (ropeDim < 0 || ropeDim % 2 != 0)
    return emitError() << "rope dim must be even and non-negative, got "
                       << ropeDim;
  if (failed(verifyCommon(emitError, capacity, elementType)) ||
      failed(verifyComponentQuant(emitError, "latent", quant, "row width",
                                  latentDim + ropeDim, capacity, layout)))
    return failure();
  return success();
}

Type LatentCacheType::parse(AsmParser &parser) {
  CacheParams params;
  SMLoc loc = parser.getCurrentLocation();
  if (parseCacheParams(parser, "!kv.latent_cache",
                       {"latent_dim", "rope_dim", "capacity"}, {"quant"},
                       params))
    return {};
  return getChecked([&] { return parser.emitError(loc); }, parser.getContext(),
                    params.ints["latent_dim"], params.ints["rope_dim"],
                    params.ints["capacity"], params.element, params.layout,
                    params.quants["quant"]);
}

void LatentCacheType::print(AsmPrinter &printer) const {
  printer << "<latent_dim = " << getLatentDim()
          << ", rope_dim = " << getRopeDim() << ", capacity = " << getCapacity()
          << ", element = " << getElementType();
  printLayoutAndQuant(printer, getLayout(), {{"quant", getQuant()}});
  printer << '>';
}

double LatentCacheType::getBytesPerToken() const {
  return getComponentBytesPerToken(getRowWidth(), getRowWidth(),
                                   getElementType(), getQuant());
}

int64_t LatentCacheType::getFixedBytesPerSequence() const {
  return getFixedComponentBytes(getRowWidth(), getElementType(), getQuant());
}

KVCacheTypeInterface LatentCacheType::cloneWithLayout(LayoutAttr layout) const {
  return LatentCacheType::get(getLatentDim(), getRopeDim(), getCapacity(),
                              getElementType(), layout, getQuant());
}

LatentCacheType LatentCacheType::cloneWithQuant(QuantAttr quant) const {
  return LatentCacheType::get(getLatentDim(), getRopeDim(), getCapacity(),
                              getElementType(), getLayout(), quant);
}
