//===- KernelBuilder.cpp - shared pieces of the CPU kernels ---------------===//
//
// Cache layout, row loads with fused dequantization, quantization, RoPE and
// kernel outlining shared by the op-family patterns.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"
#include "llvm/TargetParser/Host.h"

#include <algorithm>
#include <cmath>

using namespace mlir;
using namespace kvopt;
using namespace kvopt::cpu;

//===----------------------------------------------------------------------===//
// Layout
//===----------------------------------------------------------------------===//

int64_t kvopt::cpu::hostVectorBits() {
  static const int64_t bits = [] {
    llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
    if (features.lookup("avx512f"))
      return 512;
    if (features.lookup("avx2"))
      return 256;
    return 128;
  }();
  return bits;
}

int64_t ComponentLayout::group() const {
  if (!quant)
    return dim;
  if (quant.getAxis() == kv::ScaleAxis::Channel)
    return quant.getGroup();
  return quant.getGroup() ? quant.getGroup() : dim;
}

/// Lays out one component at `offset` of a page of `pageSize` tokens and
/// returns the offset after it.
static int64_t placeComponent(ComponentLayout &c, int64_t pageSize,
                              int64_t offset) {
  int64_t rows = pageSize * c.heads;
  c.dataOffset = offset;
  offset += rows * c.dim * c.bits() / 8;
  if (!c.quant)
    return offset;
  int64_t scales =
      c.channelAxis() ? (pageSize + c.group() - 1) / c.group() * c.heads * c.dim
                      : rows * (c.dim / c.group());
  c.scaleOffset = offset;
  offset += scales * c.scaleBytes();
  c.zeroOffset = offset;
  if (!c.quant.getSymmetric())
    offset += scales * c.scaleBytes();
  return offset;
}

CacheLayout kvopt::cpu::computeCacheLayout(kv::KVCacheTypeInterface type) {
  CacheLayout layout;
  layout.paged = type.isPaged();
  layout.pageSize = layout.paged ? type.getPageSize() : type.getCapacity();
  Type element = type.getElementType();
  int64_t elementBytes = element.getIntOrFloatBitWidth() / 8;
  auto init = [&](ComponentLayout &c, kv::QuantAttr quant, int64_t heads,
                  int64_t dim) {
    c.present = true;
    c.element = element;
    c.elementBytes = elementBytes;
    c.quant = quant;
    c.heads = heads;
    c.dim = dim;
  };
  if (auto cache = dyn_cast<kv::CacheType>(type)) {
    init(layout.key, cache.getKeyQuant(), cache.getKvHeads(),
         cache.getHeadDim());
    init(layout.value, cache.getValueQuant(), cache.getKvHeads(),
         cache.getHeadDim());
  } else {
    auto latent = cast<kv::LatentCacheType>(type);
    layout.latent = true;
    init(layout.key, latent.getQuant(), 1, latent.getRowWidth());
  }
  int64_t offset = placeComponent(layout.key, layout.pageSize, 0);
  if (layout.value.present)
    offset = placeComponent(layout.value, layout.pageSize, offset);
  layout.pageBytes = offset;
  // Windows of quantized components: [sinks + recent][heads][dim] elements.
  int64_t window = 0;
  for (ComponentLayout *c : {&layout.key, &layout.value}) {
    if (!c->present || !c->quant || !c->hasWindow())
      continue;
    c->windowOffset = window;
    window += (c->sinks() + c->recent()) * c->heads * c->dim * c->elementBytes;
  }
  layout.windowBytes = window;
  return layout;
}

//===----------------------------------------------------------------------===//
// KB
//===----------------------------------------------------------------------===//

Value KB::idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
Value KB::i32(int64_t v) {
  return arith::ConstantIntOp::create(b, b.getI32Type(), v);
}
Value KB::f32(double v) {
  return arith::ConstantFloatOp::create(b, b.getF32Type(),
                                        APFloat(static_cast<float>(v)));
}
Value KB::add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
Value KB::sub(Value x, Value y) { return arith::SubIOp::create(b, x, y); }
Value KB::mul(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
Value KB::div(Value x, int64_t y) {
  return y == 1 ? x : arith::DivUIOp::create(b, x, idx(y)).getResult();
}
Value KB::rem(Value x, int64_t y) {
  return y == 1 ? idx(0) : arith::RemUIOp::create(b, x, idx(y)).getResult();
}
Value KB::ceilDiv(Value x, Value y) {
  return arith::CeilDivUIOp::create(b, x, y);
}
Value KB::min(Value x, Value y) { return arith::MinSIOp::create(b, x, y); }
Value KB::max(Value x, Value y) { return arith::MaxSIOp::create(b, x, y); }
Value KB::lt(Value x, Value y) {
  return arith::CmpIOp::create(b, arith::CmpIPredicate::slt, x, y);
}
Value KB::ge(Value x, Value y) {
  return arith::CmpIOp::create(b, arith::CmpIPredicate::sge, x, y);
}
Value KB::select(Value c, Value x, Value y) {
  return arith::SelectOp::create(b, c, x, y);
}
Value KB::loadIndex(Value memref, ValueRange indices) {
  Value v = memref::LoadOp::create(b, memref, indices);
  return arith::IndexCastOp::create(b, b.getIndexType(), v);
}
Value KB::splat(Value scalar, int64_t n) {
  return vector::BroadcastOp::create(b, vec(n, scalar.getType()), scalar);
}

Value KB::loadBytes(Value bytes, Value offset, Type type) {
  auto vt = dyn_cast<VectorType>(type);
  int64_t count = vt ? vt.getNumElements() : 1;
  Type element = vt ? vt.getElementType() : type;
  int64_t width = element.getIntOrFloatBitWidth();
  Value raw;
  if (width == 8 && element.isInteger()) {
    raw = vector::LoadOp::create(b, vec(count, b.getI8Type()), bytes, offset);
  } else {
    Value i8s = vector::LoadOp::create(b, vec(count * width / 8, b.getI8Type()),
                                       bytes, offset);
    raw = vector::BitCastOp::create(b, vec(count, element), i8s);
  }
  if (vt)
    return raw;
  return vector::ExtractOp::create(b, raw, ArrayRef<int64_t>{0});
}

void KB::storeBytes(Value value, Value bytes, Value offset) {
  auto vt = dyn_cast<VectorType>(value.getType());
  if (!vt) {
    vt = vec(1, value.getType());
    value = vector::BroadcastOp::create(b, vt, value);
  }
  int64_t width = vt.getElementType().getIntOrFloatBitWidth();
  if (!(width == 8 && vt.getElementType().isInteger()))
    value = vector::BitCastOp::create(
        b, vec(vt.getNumElements() * width / 8, b.getI8Type()), value);
  vector::StoreOp::create(b, value, bytes, offset);
}

/// `type` with its element type replaced by `element`.
static Type withElement(Type type, Type element) {
  if (auto vt = dyn_cast<VectorType>(type))
    return vt.clone(element);
  return element;
}

Value KB::toF32(Value v) {
  Type element = getElementTypeOrSelf(v.getType());
  if (element.isF32())
    return v;
  return arith::ExtFOp::create(b, withElement(v.getType(), b.getF32Type()), v);
}

Value KB::fromF32(Value v, Type type) {
  if (type.isF32())
    return v;
  return arith::TruncFOp::create(b, withElement(v.getType(), type), v);
}

Value KB::sum(Value v) {
  return vector::ReductionOp::create(b, vector::CombiningKind::ADD, v);
}
Value KB::maxOf(Value v) {
  return vector::ReductionOp::create(b, vector::CombiningKind::MAXIMUMF, v);
}
Value KB::minOf(Value v) {
  return vector::ReductionOp::create(b, vector::CombiningKind::MINIMUMF, v);
}

void KB::forLoop(Value lb, Value ub, const std::function<void(Value)> &body) {
  scf::ForOp::create(
      b, lb, ub, idx(1), ValueRange{},
      [&](OpBuilder &nested, Location loc, Value iv, ValueRange) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nested.getInsertionBlock(),
                            nested.getInsertionPoint());
        body(iv);
        scf::YieldOp::create(b);
      });
}

void KB::ifThen(Value cond, const std::function<void()> &body) {
  auto op = scf::IfOp::create(b, cond, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(op.thenBlock()->getTerminator());
  body();
}

Value KB::ifElse(Value cond, Type type, const std::function<Value()> &thenBody,
                 const std::function<Value()> &elseBody) {
  auto op = scf::IfOp::create(b, TypeRange{type}, cond, true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(op.thenBlock());
    scf::YieldOp::create(b, thenBody());
    b.setInsertionPointToStart(op.elseBlock());
    scf::YieldOp::create(b, elseBody());
  }
  return op.getResult(0);
}

//===----------------------------------------------------------------------===//
// Codes
//===----------------------------------------------------------------------===//

/// vector<n x i8> of constant `v`.
static Value i8Splat(KB &k, int64_t n, int64_t v) {
  auto type = k.vec(n, k.b.getI8Type());
  return arith::ConstantOp::create(
      k.b, DenseElementsAttr::get(type, k.b.getI8IntegerAttr(v)));
}

Value kvopt::cpu::decodeCodes(KB &k, kv::QuantAttr quant, Value bytes,
                              Value offset, int64_t count) {
  ImplicitLocOpBuilder &b = k.b;
  auto f32s = k.vec(count, b.getF32Type());
  bool sym = quant.getSymmetric();
  switch (quant.getKind()) {
  case kv::QuantKind::Int8: {
    Value c = k.loadBytes(bytes, offset, k.vec(count, b.getI8Type()));
    return sym ? Value(arith::SIToFPOp::create(b, f32s, c))
               : Value(arith::UIToFPOp::create(b, f32s, c));
  }
  case kv::QuantKind::FP8E4M3: {
    // Shift the 7 magnitude bits under the f32 exponent/fraction and scale
    // by 2^(127 - 7): exact for normals and for subnormals (2^-9 steps).
    Value c = k.loadBytes(bytes, offset, k.vec(count, b.getI8Type()));
    auto i32s = k.vec(count, b.getI32Type());
    Value w = arith::ExtUIOp::create(b, i32s, c);
    auto cst = [&](int64_t v) {
      return arith::ConstantOp::create(
          b, DenseElementsAttr::get(i32s, b.getI32IntegerAttr(v)));
    };
    Value mag = arith::ShLIOp::create(b, arith::AndIOp::create(b, w, cst(0x7F)),
                                      cst(20));
    Value sign = arith::ShLIOp::create(
        b, arith::AndIOp::create(b, w, cst(0x80)), cst(24));
    Value bits = arith::OrIOp::create(b, mag, sign);
    Value f = arith::BitcastOp::create(b, f32s, bits);
    return arith::MulFOp::create(b, f,
                                 k.splat(k.f32(std::ldexp(1.0, 120)), count));
  }
  case kv::QuantKind::Int4: {
    int64_t n = count / 2;
    Value x = k.loadBytes(bytes, offset, k.vec(n, b.getI8Type()));
    Value lo, hi;
    if (sym) {
      lo = arith::ShRSIOp::create(
          b, arith::ShLIOp::create(b, x, i8Splat(k, n, 4)), i8Splat(k, n, 4));
      hi = arith::ShRSIOp::create(b, x, i8Splat(k, n, 4));
    } else {
      lo = arith::AndIOp::create(b, x, i8Splat(k, n, 0xF));
      hi = arith::ShRUIOp::create(b, x, i8Splat(k, n, 4));
    }
    Value c = vector::InterleaveOp::create(b, lo, hi);
    return sym ? Value(arith::SIToFPOp::create(b, f32s, c))
               : Value(arith::UIToFPOp::create(b, f32s, c));
  }
  case kv::QuantKind::Int2: {
    int64_t n = count / 4;
    Value x = k.loadBytes(bytes, offset, k.vec(n, b.getI8Type()));
    SmallVector<Value> f;
    for (int64_t m = 0; m < 4; ++m) {
      if (sym)
        f.push_back(arith::ShRSIOp::create(
            b, arith::ShLIOp::create(b, x, i8Splat(k, n, 6 - 2 * m)),
            i8Splat(k, n, 6)));
      else
        f.push_back(arith::AndIOp::create(
            b, arith::ShRUIOp::create(b, x, i8Splat(k, n, 2 * m)),
            i8Splat(k, n, 3)));
    }
    Value even = vector::InterleaveOp::create(b, f[0], f[2]);
    Value odd = vector::InterleaveOp::create(b, f[1], f[3]);
    Value c = vector::InterleaveOp::create(b, even, odd);
    return sym ? Value(arith::SIToFPOp::create(b, f32s, c))
               : Value(arith::UIToFPOp::create(b, f32s, c));
  }
  }
  llvm_unreachable("unknown quant kind");
}

Value kvopt::cpu::expandGroups(KB &k, Value v, int64_t g) {
  if (g == 1)
    return v;
  auto vt = cast<VectorType>(v.getType());
  int64_t n = vt.getNumElements();
  if (n == 1)
    return k.splat(vector::ExtractOp::create(k.b, v, ArrayRef<int64_t>{0}), g);
  SmallVector<int64_t> mask;
  for (int64_t i = 0; i < n * g; ++i)
    mask.push_back(i / g);
  return vector::ShuffleOp::create(k.b, v, v, mask);
}

/// Largest code magnitude of a symmetric encoding.
static double symmetricMax(kv::QuantKind kind) {
  switch (kind) {
  case kv::QuantKind::Int8:
    return 127;
  case kv::QuantKind::FP8E4M3:
    return 448;
  case kv::QuantKind::Int4:
    return 7;
  case kv::QuantKind::Int2:
    return 1;
  }
  llvm_unreachable("unknown quant kind");
}

QuantParams kvopt::cpu::computeQuantParams(KB &k, kv::QuantAttr quant, Value lo,
                                           Value hi) {
  ImplicitLocOpBuilder &b = k.b;
  Type type = lo.getType();
  int64_t n =
      isa<VectorType>(type) ? cast<VectorType>(type).getNumElements() : 0;
  auto cst = [&](double v) { return n ? k.splat(k.f32(v), n) : k.f32(v); };
  Value scale, zero;
  Type scaleType = quant.getScale();
  if (quant.getSymmetric()) {
    Value amax = arith::MaximumFOp::create(b, math::AbsFOp::create(b, lo),
                                           math::AbsFOp::create(b, hi));
    scale = arith::DivFOp::create(b, amax, cst(symmetricMax(quant.getKind())));
    zero = cst(0);
  } else {
    double levels = std::ldexp(1.0, quant.getBits()) - 1;
    scale =
        arith::DivFOp::create(b, arith::SubFOp::create(b, hi, lo), cst(levels));
    zero = k.roundTrip(lo, scaleType);
  }
  scale = k.roundTrip(scale, scaleType);
  Value isZero =
      arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, scale, cst(0));
  scale = arith::SelectOp::create(b, isZero, cst(1), scale);
  return {scale, zero};
}

/// f32 -> e4m3 (OCP E4M3FN) bits, round to nearest even, saturating at 448.
static Value encodeE4M3(KB &k, Value x) {
  ImplicitLocOpBuilder &b = k.b;
  int64_t n = cast<VectorType>(x.getType()).getNumElements();
  auto i32s = k.vec(n, b.getI32Type());
  auto cst = [&](int64_t v) {
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(i32s, b.getI32IntegerAttr(v)));
  };
  Value bits = arith::BitcastOp::create(b, i32s, x);
  Value sign = arith::AndIOp::create(
      b, arith::ShRUIOp::create(b, bits, cst(24)), cst(0x80));
  Value a = arith::MinimumFOp::create(b, math::AbsFOp::create(b, x),
                                      k.splat(k.f32(448), n));
  Value abits = arith::BitcastOp::create(b, i32s, a);
  // Normal range: round the f32 fraction to 3 bits (RNE) and rebias.
  Value lsb = arith::AndIOp::create(
      b, arith::ShRUIOp::create(b, abits, cst(20)), cst(1));
  Value rounded = arith::AddIOp::create(
      b, abits, arith::AddIOp::create(b, cst(0x7FFFF), lsb));
  Value normal = arith::SubIOp::create(
      b, arith::ShRUIOp::create(b, rounded, cst(20)), cst(120 << 3));
  // Subnormal range (< 2^-6): steps of 2^-9, an exact scaling.
  Value scaled = arith::MulFOp::create(b, a, k.splat(k.f32(512), n));
  Value sub =
      arith::FPToSIOp::create(b, i32s, math::RoundEvenOp::create(b, scaled));
  Value isSub = arith::CmpFOp::create(b, arith::CmpFPredicate::OLT, a,
                                      k.splat(k.f32(std::ldexp(1.0, -6)), n));
  Value code = arith::SelectOp::create(b, isSub, sub, normal);
  // NaN inputs encode as 0x7F.
  Value isNan = arith::CmpFOp::create(b, arith::CmpFPredicate::UNO, x, x);
  code = arith::SelectOp::create(b, isNan, cst(0x7F),
                                 arith::OrIOp::create(b, code, sign));
  return arith::TruncIOp::create(b, k.vec(n, b.getI8Type()), code);
}

Value kvopt::cpu::encodeCodes(KB &k, kv::QuantAttr quant, Value x,
                              const QuantParams &params) {
  ImplicitLocOpBuilder &b = k.b;
  int64_t n = cast<VectorType>(x.getType()).getNumElements();
  auto bcast = [&](Value v) {
    return isa<VectorType>(v.getType()) ? v : k.splat(v, n);
  };
  Value s = bcast(params.scale);
  if (quant.getKind() == kv::QuantKind::FP8E4M3)
    return encodeE4M3(k, arith::DivFOp::create(b, x, s));
  Value q;
  double lo, hi;
  if (quant.getSymmetric()) {
    q = arith::DivFOp::create(b, x, s);
    hi = symmetricMax(quant.getKind());
    lo = -hi;
  } else {
    q = arith::DivFOp::create(
        b, arith::SubFOp::create(b, x, bcast(params.zero)), s);
    lo = 0;
    hi = std::ldexp(1.0, quant.getBits()) - 1;
  }
  q = math::RoundEvenOp::create(b, q);
  q = arith::MaximumFOp::create(b, q, k.splat(k.f32(lo), n));
  q = arith::MinimumFOp::create(b, q, k.splat(k.f32(hi), n));
  Value i = arith::FPToSIOp::create(b, k.vec(n, b.getI32Type()), q);
  return arith::TruncIOp::create(b, k.vec(n, b.getI8Type()), i);
}

Value kvopt::cpu::packCodes(KB &k, kv::QuantAttr quant, Value codes) {
  ImplicitLocOpBuilder &b = k.b;
  int64_t n = cast<VectorType>(codes.getType()).getNumElements();
  switch (quant.getKind()) {
  case kv::QuantKind::Int8:
  case kv::QuantKind::FP8E4M3:
    return codes;
  case kv::QuantKind::Int4: {
    auto halves = vector::DeinterleaveOp::create(b, codes);
    Value lo =
        arith::AndIOp::create(b, halves.getRes1(), i8Splat(k, n / 2, 0xF));
    Value hi = arith::ShLIOp::create(b, halves.getRes2(), i8Splat(k, n / 2, 4));
    return arith::OrIOp::create(b, lo, hi);
  }
  case kv::QuantKind::Int2: {
    auto halves = vector::DeinterleaveOp::create(b, codes);
    auto evens = vector::DeinterleaveOp::create(b, halves.getRes1());
    auto odds = vector::DeinterleaveOp::create(b, halves.getRes2());
    Value f[4] = {evens.getRes1(), odds.getRes1(), evens.getRes2(),
                  odds.getRes2()};
    Value out;
    for (int m = 0; m < 4; ++m) {
      Value part = arith::AndIOp::create(b, f[m], i8Splat(k, n / 4, 3));
      if (m)
        part = arith::ShLIOp::create(b, part, i8Splat(k, n / 4, 2 * m));
      out = m ? Value(arith::OrIOp::create(b, out, part)) : part;
    }
    return out;
  }
  }
  llvm_unreachable("unknown quant kind");
}

//===----------------------------------------------------------------------===//
// Cache access
//===----------------------------------------------------------------------===//

std::pair<Value, Value> CacheAccess::page(KB &k, Value b, Value token) const {
  int64_t p = layout.pageSize;
  Value pageIndex =
      layout.paged ? k.loadIndex(blockTable, {b, k.div(token, p)}) : b;
  return {k.mul(pageIndex, layout.pageBytes),
          layout.paged ? k.rem(token, p) : token};
}

Value CacheAccess::windowBase(KB &k, Value b) const {
  if (!layout.windowBytes)
    return Value();
  // Window slots are the last B * windowBytes bytes of the buffer.
  Value size = memref::DimOp::create(k.b, bytes, 0);
  Value region = k.mul(batch, layout.windowBytes);
  return k.add(k.sub(size, region), k.mul(b, layout.windowBytes));
}

Value CacheAccess::windowRow(KB &k, const ComponentLayout &c, Value winBase,
                             Value token, Value head) const {
  Value slot = token;
  if (c.recent() > 0) {
    Value ring = k.add(k.rem(token, c.recent()), c.sinks());
    slot = c.sinks() > 0 ? k.select(k.lt(token, k.idx(c.sinks())), token, ring)
                         : ring;
  }
  Value row = k.add(k.mul(slot, c.heads), head);
  return k.add(k.add(winBase, c.windowOffset),
               k.mul(row, c.dim * c.elementBytes));
}

void CacheAccess::prefetchToken(KB &k, const ComponentLayout &c, Value pageBase,
                                Value slot) const {
  auto region = [&](int64_t offset, int64_t bytesPerToken) {
    Value start =
        k.add(pageBase, k.add(k.mul(slot, bytesPerToken), k.idx(offset)));
    for (int64_t line = 0; line < bytesPerToken; line += 64)
      memref::PrefetchOp::create(k.b, bytes, ValueRange{k.add(start, line)},
                                 /*isWrite=*/false,
                                 /*localityHint=*/kPrefetchLocality,
                                 /*isDataCache=*/true);
  };
  region(c.dataOffset, c.heads * c.dim * c.bits() / 8);
  if (!c.quant || c.channelAxis())
    return;
  int64_t scaleRow = c.heads * (c.dim / c.group()) * c.scaleBytes();
  region(c.scaleOffset, scaleRow);
  if (!c.quant.getSymmetric())
    region(c.zeroOffset, scaleRow);
}

void CacheAccess::prefetchRow(KB &k, const ComponentLayout &c, Value pageBase,
                              Value slot, Value head) const {
  Value row = k.add(k.mul(slot, c.heads), head);
  auto region = [&](int64_t offset, int64_t rowBytes) {
    Value start = k.add(pageBase, k.add(k.mul(row, rowBytes), k.idx(offset)));
    // One prefetch per line the row can touch (a row need not start on a
    // line boundary).
    for (int64_t line = 0; line < rowBytes; line += 64)
      memref::PrefetchOp::create(k.b, bytes, ValueRange{k.add(start, line)},
                                 /*isWrite=*/false,
                                 /*localityHint=*/kPrefetchLocality,
                                 /*isDataCache=*/true);
    if (rowBytes % 64 || rowBytes < 64)
      memref::PrefetchOp::create(
          k.b, bytes, ValueRange{k.add(start, rowBytes - 1)},
          /*isWrite=*/false, /*localityHint=*/kPrefetchLocality,
          /*isDataCache=*/true);
  };
  region(c.dataOffset, c.dim * c.bits() / 8);
  if (!c.quant || c.channelAxis())
    return;
  int64_t scaleRow = (c.dim / c.group()) * c.scaleBytes();
  region(c.scaleOffset, scaleRow);
  if (!c.quant.getSymmetric())
    region(c.zeroOffset, scaleRow);
}

Value CacheAccess::loadStoredRow(KB &k, const ComponentLayout &c,
                                 Value pageBase, Value slot, Value head) const {
  ImplicitLocOpBuilder &b = k.b;
  int64_t d = c.dim;
  Value row = k.add(k.mul(slot, c.heads), head);
  Value data =
      k.add(pageBase, k.add(k.mul(row, d * c.bits() / 8), k.idx(c.dataOffset)));
  if (!c.quant)
    return k.toF32(k.loadBytes(bytes, data, k.vec(d, c.element)));
  Value codes = decodeCodes(k, c.quant, bytes, data, d);
  int64_t g = c.group();
  Value scaleIndex; // first scale of this row, in scales
  int64_t count;    // scales the row uses
  if (c.channelAxis()) {
    scaleIndex = k.mul(k.add(k.mul(k.div(slot, g), c.heads), head), d);
    count = d;
  } else {
    scaleIndex = k.mul(row, d / g);
    count = d / g;
  }
  auto loadScales = [&](int64_t regionOffset) {
    Value at = k.add(pageBase, k.add(k.mul(scaleIndex, c.scaleBytes()),
                                     k.idx(regionOffset)));
    return k.toF32(k.loadBytes(bytes, at, k.vec(count, c.scaleType())));
  };
  Value scales = loadScales(c.scaleOffset);
  Value zeros = c.quant.getSymmetric() ? Value() : loadScales(c.zeroOffset);
  if (c.channelAxis()) {
    Value x = arith::MulFOp::create(b, codes, scales);
    return zeros ? Value(arith::AddFOp::create(b, x, zeros)) : x;
  }
  // Token axis: one scalar scale (and zero point) per group of g lanes,
  // applied slice by slice (cheaper than a lane-expanding shuffle).
  Value result = codes;
  for (int64_t gi = 0; gi < count; ++gi) {
    Value part = count == 1 ? codes
                            : Value(vector::ExtractStridedSliceOp::create(
                                  b, codes, ArrayRef<int64_t>{gi * g},
                                  ArrayRef<int64_t>{g}, ArrayRef<int64_t>{1}));
    Value s = vector::ExtractOp::create(b, scales, ArrayRef<int64_t>{gi});
    part = arith::MulFOp::create(b, part, k.splat(s, g));
    if (zeros)
      part = arith::AddFOp::create(
          b, part,
          k.splat(vector::ExtractOp::create(b, zeros, ArrayRef<int64_t>{gi}),
                  g));
    result = count == 1 ? part
                        : Value(vector::InsertStridedSliceOp::create(
                              b, part, result, ArrayRef<int64_t>{gi * g},
                              ArrayRef<int64_t>{1}));
  }
  return result;
}

Value CacheAccess::loadStoredSlice(KB &k, const ComponentLayout &c,
                                   Value pageBase, Value slot, Value head,
                                   int64_t lane0, int64_t width) const {
  ImplicitLocOpBuilder &b = k.b;
  int64_t d = c.dim;
  Value row = k.add(k.mul(slot, c.heads), head);
  Value data =
      k.add(pageBase, k.add(k.mul(row, d * c.bits() / 8),
                            k.idx(c.dataOffset + lane0 * c.bits() / 8)));
  if (!c.quant)
    return k.toF32(k.loadBytes(bytes, data, k.vec(width, c.element)));
  Value codes = decodeCodes(k, c.quant, bytes, data, width);
  int64_t g = c.group();
  Value scaleIndex;  // first scale of this slice, in scales
  int64_t first = 0; // group of the slice's first lane (token axis)
  int64_t count;     // scales the slice uses
  if (c.channelAxis()) {
    scaleIndex =
        k.add(k.mul(k.add(k.mul(k.div(slot, g), c.heads), head), d), lane0);
    count = width;
  } else {
    first = lane0 / g;
    count = (lane0 + width - 1) / g - first + 1;
    scaleIndex = k.add(k.mul(row, d / g), first);
  }
  auto loadScales = [&](int64_t regionOffset) {
    Value at = k.add(pageBase, k.add(k.mul(scaleIndex, c.scaleBytes()),
                                     k.idx(regionOffset)));
    return k.toF32(k.loadBytes(bytes, at, k.vec(count, c.scaleType())));
  };
  Value scales = loadScales(c.scaleOffset);
  Value zeros = c.quant.getSymmetric() ? Value() : loadScales(c.zeroOffset);
  auto dequant = [&](Value x, Value s, Value z) -> Value {
    return z ? Value(math::FmaOp::create(b, x, s, z))
             : Value(arith::MulFOp::create(b, x, s));
  };
  if (c.channelAxis())
    return dequant(codes, scales, zeros);
  // Token axis: one scalar scale (and zero point) per group, applied to the
  // part of the slice the group covers.
  Value result = codes;
  for (int64_t gi = 0; gi < count; ++gi) {
    int64_t lo = std::max(lane0, (first + gi) * g) - lane0;
    int64_t hi = std::min(lane0 + width, (first + gi + 1) * g) - lane0;
    int64_t n = hi - lo;
    Value part = n == width ? codes
                            : Value(vector::ExtractStridedSliceOp::create(
                                  b, codes, ArrayRef<int64_t>{lo},
                                  ArrayRef<int64_t>{n}, ArrayRef<int64_t>{1}));
    auto at = [&](Value v) {
      return k.splat(vector::ExtractOp::create(b, v, ArrayRef<int64_t>{gi}), n);
    };
    part = dequant(part, at(scales), zeros ? at(zeros) : Value());
    result = n == width ? part
                        : Value(vector::InsertStridedSliceOp::create(
                              b, part, result, ArrayRef<int64_t>{lo},
                              ArrayRef<int64_t>{1}));
  }
  return result;
}

Value CacheAccess::loadRowSlice(KB &k, const ComponentLayout &c, Value pageBase,
                                Value slot, Value winBase, Value token,
                                Value head, Value length, int64_t lane0,
                                int64_t width) const {
  if (!c.quant || !c.hasWindow())
    return loadStoredSlice(k, c, pageBase, slot, head, lane0, width);
  ImplicitLocOpBuilder &b = k.b;
  Value inWindow;
  if (c.sinks() > 0)
    inWindow = k.lt(token, k.idx(c.sinks()));
  if (c.recent() > 0) {
    Value recent = k.ge(token, k.sub(length, k.idx(c.recent())));
    inWindow =
        inWindow ? Value(arith::OrIOp::create(b, inWindow, recent)) : recent;
  }
  return k.ifElse(
      inWindow, k.vec(width, b.getF32Type()),
      [&] {
        Value at = k.add(windowRow(k, c, winBase, token, head),
                         k.idx(lane0 * c.elementBytes));
        return k.toF32(k.loadBytes(bytes, at, k.vec(width, c.element)));
      },
      [&] {
        return loadStoredSlice(k, c, pageBase, slot, head, lane0, width);
      });
}

Value CacheAccess::loadRow(KB &k, const ComponentLayout &c, Value pageBase,
                           Value slot, Value winBase, Value token, Value head,
                           Value length) const {
  if (!c.quant || !c.hasWindow())
    return loadStoredRow(k, c, pageBase, slot, head);
  ImplicitLocOpBuilder &b = k.b;
  Value inWindow;
  if (c.sinks() > 0)
    inWindow = k.lt(token, k.idx(c.sinks()));
  if (c.recent() > 0) {
    Value recent = k.ge(token, k.sub(length, k.idx(c.recent())));
    inWindow =
        inWindow ? Value(arith::OrIOp::create(b, inWindow, recent)) : recent;
  }
  return k.ifElse(
      inWindow, k.vec(c.dim, b.getF32Type()),
      [&] {
        Value at = windowRow(k, c, winBase, token, head);
        return k.toF32(k.loadBytes(bytes, at, k.vec(c.dim, c.element)));
      },
      [&] { return loadStoredRow(k, c, pageBase, slot, head); });
}

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

Value kvopt::cpu::applyRope(KB &k, Value x, Value pos, double theta) {
  ImplicitLocOpBuilder &b = k.b;
  int64_t d = cast<VectorType>(x.getType()).getNumElements();
  int64_t h = d / 2;
  SmallVector<float> inv;
  for (int64_t i = 0; i < h; ++i)
    inv.push_back(static_cast<float>(std::pow(theta, -2.0 * i / d)));
  auto halfType = k.vec(h, b.getF32Type());
  Value invFreq = arith::ConstantOp::create(
      b, DenseElementsAttr::get(halfType, ArrayRef<float>(inv)));
  Value angle = arith::MulFOp::create(b, k.splat(pos, h), invFreq);
  Value cos = math::CosOp::create(b, angle);
  Value sin = math::SinOp::create(b, angle);
  Value x1 = vector::ExtractStridedSliceOp::create(
      b, x, ArrayRef<int64_t>{0}, ArrayRef<int64_t>{h}, ArrayRef<int64_t>{1});
  Value x2 = vector::ExtractStridedSliceOp::create(
      b, x, ArrayRef<int64_t>{h}, ArrayRef<int64_t>{h}, ArrayRef<int64_t>{1});
  Value y1 = arith::SubFOp::create(b, arith::MulFOp::create(b, x1, cos),
                                   arith::MulFOp::create(b, x2, sin));
  Value y2 = arith::AddFOp::create(b, arith::MulFOp::create(b, x2, cos),
                                   arith::MulFOp::create(b, x1, sin));
  SmallVector<int64_t> mask;
  for (int64_t i = 0; i < d; ++i)
    mask.push_back(i);
  return vector::ShuffleOp::create(b, y1, y2, mask);
}

//===----------------------------------------------------------------------===//
// Outlining and buffers
//===----------------------------------------------------------------------===//

func::FuncOp kvopt::cpu::getOrBuildKernel(
    ModuleOp module, StringRef name, TypeRange argTypes,
    const std::function<void(ImplicitLocOpBuilder &, ValueRange)> &build) {
  if (auto existing = module.lookupSymbol<func::FuncOp>(name))
    return existing;
  OpBuilder top(module.getContext());
  top.setInsertionPointToEnd(module.getBody());
  Location loc = module.getLoc();
  auto fn = func::FuncOp::create(
      top, loc, name, FunctionType::get(module.getContext(), argTypes, {}));
  fn.setPrivate();
  Block *entry = fn.addEntryBlock();
  ImplicitLocOpBuilder b(loc, module.getContext());
  b.setInsertionPointToStart(entry);
  build(b, entry->getArguments());
  func::ReturnOp::create(b);
  return fn;
}

void kvopt::cpu::callKernel(
    OpBuilder &b, Location loc, ModuleOp module, StringRef family,
    StringRef config, ValueRange args,
    const std::function<void(ImplicitLocOpBuilder &, ValueRange)> &build) {
  SmallVector<Type> types;
  std::string key = config.str();
  llvm::raw_string_ostream os(key);
  for (Value a : args) {
    types.push_back(a.getType());
    os << ";" << a.getType();
  }
  func::FuncOp kernel =
      getOrBuildKernel(module, kernelName(family, key), types, build);
  func::CallOp::create(b, loc, kernel, args);
}

void kvopt::cpu::replaceWithBuffers(ConversionPatternRewriter &rewriter,
                                    Operation *op, ValueRange buffers) {
  SmallVector<Value> results;
  for (auto [r, buffer] : llvm::zip(op->getResults(), buffers))
    results.push_back(toTensor(rewriter, op->getLoc(), r.getType(), buffer));
  rewriter.replaceOp(op, results);
}

void kvopt::cpu::parallelLoop(ImplicitLocOpBuilder &b, ValueRange ubs,
                              const std::function<void(ValueRange)> &body) {
  KB k(b);
  SmallVector<Value> lbs(ubs.size(), k.idx(0)), steps(ubs.size(), k.idx(1));
  scf::ParallelOp::create(
      b, lbs, ubs, steps, [&](OpBuilder &nested, Location, ValueRange ivs) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nested.getInsertionBlock(),
                            nested.getInsertionPoint());
        auto scope = memref::AllocaScopeOp::create(b, TypeRange{});
        Block *block = new Block();
        scope.getBodyRegion().push_back(block);
        b.setInsertionPointToStart(block);
        body(ivs);
        memref::AllocaScopeReturnOp::create(b, ValueRange{});
      });
}

MemRefType kvopt::cpu::bufferTypeOf(Type tensorType) {
  auto t = cast<RankedTensorType>(tensorType);
  return MemRefType::get(t.getShape(), t.getElementType());
}

Value kvopt::cpu::toBuffer(OpBuilder &b, Location loc, Value t, bool readOnly) {
  return bufferization::ToBufferOp::create(b, loc, bufferTypeOf(t.getType()), t,
                                           readOnly);
}

Value kvopt::cpu::allocLike(OpBuilder &b, Location loc, Type tensorType,
                            ValueRange dynSizes) {
  return memref::AllocOp::create(b, loc, bufferTypeOf(tensorType), dynSizes);
}

Value kvopt::cpu::toTensor(OpBuilder &b, Location loc, Type tensorType,
                           Value buffer) {
  return bufferization::ToTensorOp::create(b, loc, tensorType, buffer,
                                           /*restrict=*/true,
                                           /*writable=*/true);
}

std::string kvopt::cpu::kernelName(StringRef family, StringRef config) {
  return ("__kv_cpu_" + family + "_" +
          llvm::utohexstr(llvm::xxh3_64bits(config), /*LowerCase=*/true))
      .str();
}
