//===- KVOps.cpp - kv operation verifiers and helpers -------------------===//
//
// Verifiers for everything the op traits cannot say: head counts and dims
// that disagree with the cache type, missing or stray block tables, scale
// shapes of quantized data, writes through shared cache views.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Dialect/KV/KVOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace kvopt::kv;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// True when two dimensions can be equal (either is dynamic or both agree).
static bool compatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

static std::string dimString(int64_t d) {
  return ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
}

/// Checks `value` is a ranked tensor of rank `rank`; `what` names it in the
/// diagnostic together with the meaning of its dimensions.
static LogicalResult checkRank(Operation *op, Type type, int64_t rank,
                               StringRef what, StringRef dims) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || tensor.getRank() != rank)
    return op->emitOpError() << what << " must be a rank-" << rank
                             << " tensor (" << dims << "), got " << type;
  return success();
}

/// Checks dimension `dim` of `type` against `expected`.
static LogicalResult checkDim(Operation *op, Type type, int64_t dim,
                              int64_t expected, StringRef what,
                              StringRef meaning) {
  int64_t actual = cast<ShapedType>(type).getDimSize(dim);
  if (!compatible(actual, expected))
    return op->emitOpError()
           << what << " has " << meaning << " " << dimString(actual)
           << ", expected " << dimString(expected);
  return success();
}

/// Checks a paged cache has a block table of B rows and a contiguous one has
/// none. `batch` may be dynamic.
static LogicalResult verifyBlockTable(Operation *op, KVCacheTypeInterface cache,
                                      Value blockTable, int64_t batch) {
  if (!cache.isPaged()) {
    if (blockTable)
      return op->emitOpError("a contiguous cache takes no block table");
    return success();
  }
  if (!blockTable)
    return op->emitOpError("a paged cache needs a block table");
  auto table = cast<RankedTensorType>(blockTable.getType());
  if (failed(checkDim(op, table, 0, batch, "block table", "batch")))
    return failure();
  int64_t pages = table.getDimSize(1);
  if (!ShapedType::isDynamic(pages) && pages > cache.getMaxPagesPerSequence())
    return op->emitOpError()
           << "block table has " << pages << " pages per sequence, but "
           << "capacity " << cache.getCapacity() << " at page size "
           << cache.getPageSize() << " needs at most "
           << cache.getMaxPagesPerSequence();
  return success();
}

static LogicalResult checkElement(Operation *op, Type type, Type expected,
                                  StringRef what) {
  Type element = cast<ShapedType>(type).getElementType();
  if (element != expected)
    return op->emitOpError()
           << what << " element type " << element
           << " differs from the cache element type " << expected;
  return success();
}

//===----------------------------------------------------------------------===//
// ShareCacheOp
//===----------------------------------------------------------------------===//

Value ShareCacheOp::getOwningCache() {
  Value cache = getSource();
  while (auto share = cache.getDefiningOp<ShareCacheOp>())
    cache = share.getSource();
  return cache;
}

LogicalResult ShareCacheOp::verify() {
  if (getSource().getType() != getResult().getType())
    return emitOpError() << "layer " << getLayer()
                         << " cannot share a cache of a different shape: the "
                            "source is "
                         << getSource().getType() << " but the layer expects "
                         << getResult().getType();
  if (auto alloc = getOwningCache().getDefiningOp<AllocCacheOp>())
    if (alloc.getLayer() && *alloc.getLayer() == getLayer())
      return emitOpError() << "layer " << getLayer()
                           << " already owns this cache";
  return success();
}

//===----------------------------------------------------------------------===//
// AppendOp
//===----------------------------------------------------------------------===//

LogicalResult AppendOp::verify() {
  auto cache = cast<KVCacheTypeInterface>(getCache().getType());
  if (auto share = getCache().getDefiningOp<ShareCacheOp>())
    return emitOpError() << "cannot append through kv.share_cache (layer "
                         << share.getLayer()
                         << "): only the layer owning a shared cache appends";
  int64_t batch = getPositions().getType().getDimSize(0);
  Type keysType = getKeys().getType();
  if (auto kvCache = dyn_cast<CacheType>(cache)) {
    if (!getValues())
      return emitOpError("appending to a !kv.cache needs keys and values");
    if (failed(checkRank(*this, keysType, 4, "keys",
                         "batch x kv_heads x tokens x head_dim")) ||
        failed(checkDim(*this, keysType, 1, kvCache.getKvHeads(), "keys",
                        "KV heads")) ||
        failed(checkDim(*this, keysType, 3, kvCache.getHeadDim(), "keys",
                        "head dim")))
      return failure();
    if (getValues().getType() != keysType)
      return emitOpError() << "values type " << getValues().getType()
                           << " differs from keys type " << keysType;
    if (getRopeTheta() && kvCache.getHeadDim() % 2 != 0)
      return emitOpError("rope needs an even head dim");
  } else {
    auto latent = cast<LatentCacheType>(cache);
    if (getValues())
      return emitOpError("a latent cache stores one row per token; it takes "
                         "no values");
    if (failed(checkRank(*this, keysType, 3, "latent rows",
                         "batch x tokens x (latent_dim + rope_dim)")) ||
        failed(checkDim(*this, keysType, 2, latent.getRowWidth(), "latent rows",
                        "width")))
      return failure();
    if (getRopeTheta() && latent.getRopeDim() == 0)
      return emitOpError("rope_theta given but the latent cache has no rope "
                         "part");
  }
  if (getRopeTheta() && getRopeTheta()->convertToDouble() <= 0.0)
    return emitOpError("rope_theta must be positive");
  if (failed(checkDim(*this, keysType, 0, batch, "keys", "batch")) ||
      failed(checkElement(*this, keysType, cache.getElementType(), "keys")))
    return failure();
  return verifyBlockTable(*this, cache, getBlockTable(), batch);
}

//===----------------------------------------------------------------------===//
// ViewOp
//===----------------------------------------------------------------------===//

LogicalResult ViewOp::verify() {
  auto cache = cast<KVCacheTypeInterface>(getCache().getType());
  Type keysType = getKeys().getType();
  if (auto kvCache = dyn_cast<CacheType>(cache)) {
    if (!getValues())
      return emitOpError("viewing a !kv.cache gives keys and values");
    if (failed(checkRank(*this, keysType, 4, "keys",
                         "batch x kv_heads x capacity x head_dim")) ||
        failed(checkDim(*this, keysType, 1, kvCache.getKvHeads(), "keys",
                        "KV heads")) ||
        failed(checkDim(*this, keysType, 2, kvCache.getCapacity(), "keys",
                        "tokens")) ||
        failed(checkDim(*this, keysType, 3, kvCache.getHeadDim(), "keys",
                        "head dim")))
      return failure();
    if (getValues().getType() != keysType)
      return emitOpError() << "values type " << getValues().getType()
                           << " differs from keys type " << keysType;
  } else {
    auto latent = cast<LatentCacheType>(cache);
    if (getValues())
      return emitOpError("viewing a !kv.latent_cache gives one tensor");
    if (failed(checkRank(*this, keysType, 3, "latent rows",
                         "batch x capacity x (latent_dim + rope_dim)")) ||
        failed(checkDim(*this, keysType, 1, latent.getCapacity(), "latent rows",
                        "tokens")) ||
        failed(checkDim(*this, keysType, 2, latent.getRowWidth(), "latent rows",
                        "width")))
      return failure();
  }
  if (failed(checkElement(*this, keysType, cache.getElementType(), "result")))
    return failure();
  return verifyBlockTable(*this, cache, getBlockTable(),
                          cast<ShapedType>(keysType).getDimSize(0));
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// Checks the optional log-sum-exp result has the shape of the output minus
/// its last dimension.
static LogicalResult verifyLse(Operation *op, Type output, Value lse) {
  if (!lse)
    return success();
  auto outShape = cast<ShapedType>(output).getShape();
  auto lseType = cast<RankedTensorType>(lse.getType()); // ranked by ODS
  if (lseType.getShape() != outShape.drop_back())
    return op->emitOpError() << "log-sum-exp type " << lseType
                             << " must have the output's shape without its "
                                "last dimension";
  return success();
}

/// Checks `output` has the shape of `queries` with last dim `lastDim`.
static LogicalResult verifyOutput(Operation *op, Type queries, Type output,
                                  int64_t lastDim) {
  auto q = cast<RankedTensorType>(queries);
  auto out = dyn_cast<RankedTensorType>(output);
  SmallVector<int64_t> expected(q.getShape());
  expected.back() = lastDim;
  if (!out || out.getShape() != ArrayRef<int64_t>(expected))
    return op->emitOpError() << "output type " << output
                             << " must have shape batch x heads x tokens x "
                             << lastDim << " matching the queries";
  return success();
}

int64_t AttentionOp::getGroupSize() {
  auto cache = cast<CacheType>(getCache().getType());
  return getQueries().getType().getDimSize(1) / cache.getKvHeads();
}

float AttentionOp::getScaleOrDefault() {
  if (auto scale = getScale())
    return scale->convertToFloat();
  auto cache = cast<CacheType>(getCache().getType());
  return 1.0f / std::sqrt(float(cache.getHeadDim()));
}

LogicalResult AttentionOp::verify() {
  auto cache = dyn_cast<CacheType>(getCache().getType());
  if (!cache)
    return emitOpError("expects a !kv.cache; attend over a !kv.latent_cache "
                       "with kv.mla_attention");
  Type qType = getQueries().getType();
  if (failed(checkRank(*this, qType, 4, "queries",
                       "batch x q_heads x tokens x head_dim")) ||
      failed(
          checkDim(*this, qType, 3, cache.getHeadDim(), "queries", "head dim")))
    return failure();
  int64_t qHeads = cast<ShapedType>(qType).getDimSize(1);
  if (!ShapedType::isDynamic(qHeads) && qHeads % cache.getKvHeads() != 0)
    return emitOpError() << "query heads (" << qHeads
                         << ") must be a multiple of the cache's KV heads ("
                         << cache.getKvHeads() << ")";
  int64_t batch = cast<ShapedType>(qType).getDimSize(0);
  if (failed(checkDim(*this, getSeqLens().getType(), 0, batch,
                      "sequence lengths", "batch")) ||
      failed(verifyOutput(*this, qType, getOutput().getType(),
                          cache.getHeadDim())) ||
      failed(verifyLse(*this, getOutput().getType(), getLse())))
    return failure();
  if (getSinks() && *getSinks() > 0 && !getWindow())
    return emitOpError("sinks only apply together with a sliding window");
  if (auto scale = getScale(); scale && !(scale->convertToFloat() > 0.0f))
    return emitOpError("scale must be positive");
  return verifyBlockTable(*this, cache, getBlockTable(), batch);
}

LogicalResult MLAAttentionOp::verify() {
  auto cache = dyn_cast<LatentCacheType>(getCache().getType());
  if (!cache)
    return emitOpError("expects a !kv.latent_cache; attend over a !kv.cache "
                       "with kv.attention");
  Type qlType = getQLatent().getType(), qrType = getQRope().getType();
  if (failed(checkRank(*this, qlType, 4, "latent queries",
                       "batch x q_heads x tokens x latent_dim")) ||
      failed(checkRank(*this, qrType, 4, "rope queries",
                       "batch x q_heads x tokens x rope_dim")) ||
      failed(checkDim(*this, qlType, 3, cache.getLatentDim(), "latent queries",
                      "width")) ||
      failed(checkDim(*this, qrType, 3, cache.getRopeDim(), "rope queries",
                      "width")))
    return failure();
  auto ql = cast<ShapedType>(qlType), qr = cast<ShapedType>(qrType);
  for (int64_t d = 0; d < 3; ++d)
    if (!compatible(ql.getDimSize(d), qr.getDimSize(d)))
      return emitOpError("latent and rope queries must agree in batch, heads "
                         "and tokens");
  if (failed(checkDim(*this, getSeqLens().getType(), 0, ql.getDimSize(0),
                      "sequence lengths", "batch")) ||
      failed(verifyOutput(*this, qlType, getOutput().getType(),
                          cache.getLatentDim())) ||
      failed(verifyLse(*this, getOutput().getType(), getLse())))
    return failure();
  if (!(getScale().convertToFloat() > 0.0f))
    return emitOpError("scale must be positive");
  return verifyBlockTable(*this, cache, getBlockTable(), ql.getDimSize(0));
}

LogicalResult MLAProjectOp::verify() {
  RankedTensorType hidden = getHidden().getType();
  RankedTensorType wdkv = getWDkv().getType(), wkr = getWKr().getType();
  RankedTensorType row = getRow().getType();
  if (hidden.getRank() != 3)
    return emitOpError("hidden states must be batch x tokens x hidden");
  if (wdkv.getRank() != 2 || wkr.getRank() != 2)
    return emitOpError("projection weights must be rank-2 (hidden x out)");
  if (!compatible(wdkv.getDimSize(0), hidden.getDimSize(2)) ||
      !compatible(wkr.getDimSize(0), hidden.getDimSize(2)))
    return emitOpError("projection weights must have the hidden size as "
                       "their first dimension");
  int64_t width = ShapedType::isDynamic(wdkv.getDimSize(1)) ||
                          ShapedType::isDynamic(wkr.getDimSize(1))
                      ? ShapedType::kDynamic
                      : wdkv.getDimSize(1) + wkr.getDimSize(1);
  if (row.getRank() != 3 ||
      !compatible(row.getDimSize(0), hidden.getDimSize(0)) ||
      !compatible(row.getDimSize(1), hidden.getDimSize(1)) ||
      !compatible(row.getDimSize(2), width))
    return emitOpError() << "result must be batch x tokens x (latent + rope) = "
                         << dimString(width) << " wide";
  Type element = hidden.getElementType();
  if (wdkv.getElementType() != element || wkr.getElementType() != element ||
      row.getElementType() != element)
    return emitOpError("operands and result must share one element type");
  return success();
}

//===----------------------------------------------------------------------===//
// MergeStatesOp
//===----------------------------------------------------------------------===//

LogicalResult MergeStatesOp::verify() {
  RankedTensorType outputs = getOutputs().getType();
  RankedTensorType lses = getLses().getType();
  if (outputs.getRank() < 2)
    return emitOpError("partial outputs must be ranked with a leading split "
                       "dimension and a trailing head dimension");
  if (lses.getShape() != outputs.getShape().drop_back())
    return emitOpError() << "partial log-sum-exps " << getLses().getType()
                         << " must have the partial outputs' shape without "
                            "the last dimension";
  if (getOutput().getType().getShape() != outputs.getShape().drop_front() ||
      getOutput().getType().getElementType() != outputs.getElementType())
    return emitOpError("merged output must drop the split dimension of the "
                       "partial outputs");
  if (getLse().getType().getShape() != lses.getShape().drop_front())
    return emitOpError("merged log-sum-exp must drop the split dimension");
  return success();
}

//===----------------------------------------------------------------------===//
// QuantizeOp / DequantizeOp
//===----------------------------------------------------------------------===//

/// Checks quantized `data` of `values` shape, and its scales/zero points,
/// against `encoding`.
static LogicalResult verifyQuantized(Operation *op, QuantAttr encoding,
                                     RankedTensorType values,
                                     RankedTensorType dataType,
                                     RankedTensorType scaleType,
                                     Value zeroPoints) {
  if (encoding.getFullPrecisionTokens() != 0)
    return op->emitOpError("full-precision windows (recent, sinks) belong to "
                           "caches; this encoding must have none");
  if (values.getRank() < 2)
    return op->emitOpError("quantized tensors must be at least rank 2 "
                           "(tokens x channels)");
  if (dataType.getShape() != values.getShape())
    return op->emitOpError()
           << "quantized data " << dataType
           << " must have the shape of the float tensor " << values;
  if (dataType.getElementType() != encoding.getStorageType())
    return op->emitOpError()
           << stringifyQuantKind(encoding.getKind()) << " data is stored as "
           << encoding.getStorageType() << ", got "
           << dataType.getElementType();
  int64_t rank = values.getRank();
  int64_t tokens = values.getDimSize(rank - 2);
  int64_t channels = values.getDimSize(rank - 1);
  SmallVector<int64_t> scaleShape(values.getShape());
  if (encoding.getAxis() == ScaleAxis::Token) {
    int64_t group = encoding.getGroup();
    if (group != 0 && !ShapedType::isDynamic(channels) && channels % group)
      return op->emitOpError()
             << "group size " << group << " does not divide the " << channels
             << " channels";
    scaleShape.back() = group == 0                        ? 1
                        : ShapedType::isDynamic(channels) ? ShapedType::kDynamic
                                                          : channels / group;
  } else {
    int64_t group = encoding.getGroup();
    if (!ShapedType::isDynamic(tokens) && tokens % group)
      return op->emitOpError() << tokens
                               << " tokens are not a multiple of the token "
                                  "group "
                               << group;
    scaleShape[rank - 2] =
        ShapedType::isDynamic(tokens) ? ShapedType::kDynamic : tokens / group;
  }
  bool shapeOk = scaleType.getRank() == rank &&
                 llvm::all_of(llvm::seq<int64_t>(0, rank), [&](int64_t d) {
                   return compatible(scaleType.getDimSize(d), scaleShape[d]);
                 });
  if (!shapeOk) {
    auto expected = RankedTensorType::get(scaleShape, encoding.getScale());
    return op->emitOpError()
           << "scales must be " << expected << ", got " << scaleType;
  }
  if (scaleType.getElementType() != encoding.getScale())
    return op->emitOpError() << "scales must have the encoding's scale type "
                             << encoding.getScale();
  if (encoding.getSymmetric() && zeroPoints)
    return op->emitOpError("a symmetric encoding has no zero points");
  if (!encoding.getSymmetric() && !zeroPoints)
    return op->emitOpError("an asymmetric encoding needs zero points");
  if (zeroPoints && zeroPoints.getType() != scaleType)
    return op->emitOpError("zero points must have the scales' type");
  return success();
}

LogicalResult QuantizeOp::verify() {
  return verifyQuantized(*this, getEncoding(), getInput().getType(),
                         getData().getType(), getScales().getType(),
                         getZeroPoints());
}

LogicalResult DequantizeOp::verify() {
  return verifyQuantized(*this, getEncoding(), getResult().getType(),
                         getData().getType(), getScales().getType(),
                         getZeroPoints());
}

//===----------------------------------------------------------------------===//
// GatherPagesOp / RopeOp
//===----------------------------------------------------------------------===//

LogicalResult GatherPagesOp::verify() {
  Type pagesType = getPages().getType();
  if (failed(checkRank(*this, pagesType, 4, "pages",
                       "pages x page_size x heads x head_dim")))
    return failure();
  auto pages = cast<RankedTensorType>(pagesType);
  auto table = getBlockTable().getType();
  int64_t pageSize = pages.getDimSize(1), perSeq = table.getDimSize(1);
  int64_t tokens =
      ShapedType::isDynamic(pageSize) || ShapedType::isDynamic(perSeq)
          ? ShapedType::kDynamic
          : pageSize * perSeq;
  auto expected = RankedTensorType::get(
      {table.getDimSize(0), pages.getDimSize(2), tokens, pages.getDimSize(3)},
      pages.getElementType());
  auto result = getResult().getType();
  bool ok = result.getRank() == 4 &&
            result.getElementType() == pages.getElementType() &&
            llvm::all_of(llvm::seq<int64_t>(0, 4), [&](int64_t d) {
              return compatible(result.getDimSize(d), expected.getDimSize(d));
            });
  if (!ok)
    return emitOpError() << "result must be " << expected
                         << " (batch x heads x pages * page_size x head_dim)";
  return success();
}

LogicalResult RopeOp::verify() {
  Type inputType = getInput().getType();
  if (failed(checkRank(*this, inputType, 4, "input",
                       "batch x heads x tokens x dim")) ||
      failed(checkDim(*this, getPositions().getType(), 0,
                      cast<ShapedType>(inputType).getDimSize(0), "positions",
                      "batch")))
    return failure();
  int64_t dim = cast<ShapedType>(inputType).getDimSize(3);
  if (!ShapedType::isDynamic(dim) && dim % 2 != 0)
    return emitOpError() << "rope needs an even last dimension, got " << dim;
  if (getTheta().convertToDouble() <= 0.0)
    return emitOpError("theta must be positive");
  return success();
}

#define GET_OP_CLASSES
#include "kvopt/Dialect/KV/KVOps.cpp.inc"
