//===- KVAttributes.cpp - #kv.quant and #kv.layout ----------------------===//
//
// Parsing, printing, verification and queries of the kv attributes.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Dialect/KV/KVAttributes.h"
#include "kvopt/Dialect/KV/KVDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace kvopt::kv;

#include "kvopt/Dialect/KV/KVEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "kvopt/Dialect/KV/KVAttributes.cpp.inc"

void KVDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "kvopt/Dialect/KV/KVAttributes.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// QuantAttr
//===----------------------------------------------------------------------===//

unsigned QuantAttr::getBits() const {
  switch (getKind()) {
  case QuantKind::Int8:
  case QuantKind::FP8E4M3:
    return 8;
  case QuantKind::Int4:
    return 4;
  case QuantKind::Int2:
    return 2;
  }
  llvm_unreachable("unknown quantization kind");
}

Type QuantAttr::getStorageType() const {
  MLIRContext *ctx = getContext();
  if (getKind() == QuantKind::FP8E4M3)
    return Float8E4M3FNType::get(ctx);
  return IntegerType::get(ctx, getBits());
}

unsigned QuantAttr::getScaleBytes() const {
  return getScale().getIntOrFloatBitWidth() / 8;
}

static bool isScaleType(Type type) {
  return isa<Float16Type, BFloat16Type, Float32Type>(type);
}

LogicalResult QuantAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                QuantKind kind, ScaleAxis axis, int64_t group,
                                bool symmetric, Type scale, int64_t recent,
                                int64_t sinks) {
  if (group < 0)
    return emitError() << "quantization group size must be non-negative, got "
                       << group;
  if (axis == ScaleAxis::Channel && group == 0)
    return emitError() << "per-channel scales need a token group size "
                          "(group >= 1)";
  if (!scale || !isScaleType(scale))
    return emitError() << "scale type must be f16, bf16 or f32, got " << scale;
  if (kind == QuantKind::FP8E4M3 && !symmetric)
    return emitError() << "fp8_e4m3 encoding does not support a zero point "
                          "(symmetric = false)";
  if (recent < 0)
    return emitError() << "recent window must be non-negative, got " << recent;
  if (sinks < 0)
    return emitError() << "sink token count must be non-negative, got "
                       << sinks;
  return success();
}

Attribute QuantAttr::parse(AsmParser &parser, Type) {
  MLIRContext *ctx = parser.getContext();
  SMLoc loc = parser.getCurrentLocation();
  StringRef kindName;
  if (parser.parseLess() || parser.parseKeyword(&kindName))
    return {};
  std::optional<QuantKind> kind = symbolizeQuantKind(kindName);
  if (!kind) {
    parser.emitError(loc) << "unknown quantization kind '" << kindName
                          << "'; expected int8, fp8_e4m3, int4 or int2";
    return {};
  }
  ScaleAxis axis = ScaleAxis::Token;
  int64_t group = 0, recent = 0, sinks = 0;
  bool symmetric = true;
  Type scale = Float16Type::get(ctx);
  llvm::StringSet<> seen;
  while (succeeded(parser.parseOptionalComma())) {
    SMLoc keyLoc = parser.getCurrentLocation();
    StringRef key;
    if (parser.parseKeyword(&key) || parser.parseEqual())
      return {};
    if (!seen.insert(key).second) {
      parser.emitError(keyLoc) << "duplicate key '" << key << "' in #kv.quant";
      return {};
    }
    ParseResult result = success();
    if (key == "axis") {
      StringRef axisName;
      SMLoc axisLoc = parser.getCurrentLocation();
      result = parser.parseKeyword(&axisName);
      if (succeeded(result)) {
        std::optional<ScaleAxis> parsed = symbolizeScaleAxis(axisName);
        if (!parsed) {
          parser.emitError(axisLoc) << "unknown scale axis '" << axisName
                                    << "'; expected token or channel";
          return {};
        }
        axis = *parsed;
      }
    } else if (key == "group") {
      result = parser.parseInteger(group);
    } else if (key == "symmetric") {
      if (succeeded(parser.parseOptionalKeyword("true")))
        symmetric = true;
      else if (succeeded(parser.parseOptionalKeyword("false")))
        symmetric = false;
      else
        result = parser.emitError(parser.getCurrentLocation(),
                                  "expected 'true' or 'false'");
    } else if (key == "scale") {
      result = parser.parseType(scale);
    } else if (key == "recent") {
      result = parser.parseInteger(recent);
    } else if (key == "sinks") {
      result = parser.parseInteger(sinks);
    } else {
      parser.emitError(keyLoc)
          << "unknown key '" << key
          << "' in #kv.quant; expected axis, group, symmetric, scale, recent "
             "or sinks";
      return {};
    }
    if (failed(result))
      return {};
  }
  if (parser.parseGreater())
    return {};
  return getChecked([&] { return parser.emitError(loc); }, ctx, *kind, axis,
                    group, symmetric, scale, recent, sinks);
}

void QuantAttr::print(AsmPrinter &printer) const {
  printer << '<' << stringifyQuantKind(getKind());
  if (getAxis() != ScaleAxis::Token)
    printer << ", axis = " << stringifyScaleAxis(getAxis());
  if (getGroup() != 0)
    printer << ", group = " << getGroup();
  if (!getSymmetric())
    printer << ", symmetric = false";
  if (!isa<Float16Type>(getScale()))
    printer << ", scale = " << getScale();
  if (getRecent() != 0)
    printer << ", recent = " << getRecent();
  if (getSinks() != 0)
    printer << ", sinks = " << getSinks();
  printer << '>';
}

//===----------------------------------------------------------------------===//
// LayoutAttr
//===----------------------------------------------------------------------===//

LogicalResult LayoutAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 LayoutKind kind, int64_t pageSize) {
  if (kind == LayoutKind::Paged && pageSize <= 0)
    return emitError() << "paged layout needs a positive page_size, got "
                       << pageSize;
  if (kind == LayoutKind::Contiguous && pageSize != 0)
    return emitError() << "contiguous layout takes no page_size";
  return success();
}
