//===- Emitter.h - arithmetic vocabulary of the gpu-dialect kv kernels -*- C++
//-*-===//
//
// The small builder vocabulary (index/f32 arithmetic, shuffles, loops, byte
// loads, element and code decoding, RNE rounding) that every generated
// kernel of kv-gpu-kernels is written in.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_KVTOGPU_EMITTER_H
#define KVOPT_CODEGEN_KVTOGPU_EMITTER_H

#include "Kernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <functional>
#include <limits>
#include <numeric>

namespace kvopt::gpugen {

// The kernel builders are written against MLIR's vocabulary throughout.
using namespace mlir;

/// Largest power of two dividing `x` (x > 0), capped at `cap`.
inline int64_t pow2Divisor(int64_t x, int64_t cap) {
  int64_t p = 1;
  while (p < cap && x % (2 * p) == 0)
    p *= 2;
  return p;
}

/// The widest access (at most `maxBytes`) a `sliceBytes` slice of a
/// full-precision window slot is guaranteed to be aligned to: the pool is
/// 256-byte aligned and holds whole `pageBytes` pages before the batch's
/// `windowBytes` regions (docs/GPU.md); the component's offset in a region,
/// its `rowBytes` rows and the slice add offsets.
inline int64_t windowAlign(int64_t pageBytes, int64_t windowBytes,
                           int64_t componentOffset, int64_t rowBytes,
                           int64_t sliceBytes, int64_t maxBytes) {
  int64_t a = std::gcd(std::gcd(std::gcd(pageBytes, windowBytes),
                                std::gcd(componentOffset, rowBytes)),
                       std::gcd(sliceBytes, int64_t(256)));
  return pow2Divisor(a, maxBytes);
}

/// Arithmetic vocabulary over an ImplicitLocOpBuilder (index unless noted).
struct Emitter {
  ImplicitLocOpBuilder &b;
  explicit Emitter(ImplicitLocOpBuilder &b) : b(b) {}

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value i32(int64_t v) {
    return arith::ConstantIntOp::create(b, b.getI32Type(), v);
  }
  Value f32(float v) {
    return arith::ConstantFloatOp::create(b, b.getF32Type(), APFloat(v));
  }
  Value negInf() { return f32(-std::numeric_limits<float>::infinity()); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value add(Value x, int64_t y) { return y ? add(x, idx(y)) : x; }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value mul(Value x, int64_t y) { return y == 1 ? x : mul(x, idx(y)); }
  Value div(Value x, int64_t y) {
    return y == 1 ? x : arith::DivUIOp::create(b, x, idx(y)).getResult();
  }
  Value rem(Value x, int64_t y) {
    return y == 1 ? idx(0) : arith::RemUIOp::create(b, x, idx(y)).getResult();
  }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, x, y); }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, p, x, y);
  }
  Value lt(Value x, Value y) { return cmp(arith::CmpIPredicate::slt, x, y); }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, c, x, y);
  }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, x, y); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, x, y); }
  Value fsub(Value x, Value y) { return arith::SubFOp::create(b, x, y); }
  Value fmax(Value x, Value y) { return arith::MaximumFOp::create(b, x, y); }
  Value isNegInf(Value x) {
    return arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, x, negInf());
  }
  Value exp(Value x) { return math::ExpOp::create(b, x); }
  Value log(Value x) { return math::LogOp::create(b, x); }
  /// An i32 kernel argument or memref element as an index.
  Value toIndex(Value v) {
    return arith::IndexCastOp::create(b, b.getIndexType(), v);
  }
  Value load(Value mem, Value i) {
    return memref::LoadOp::create(b, mem, ValueRange{i});
  }
  void store(Value v, Value mem, Value i) {
    memref::StoreOp::create(b, v, mem, ValueRange{i});
  }
  Value loadIndex(Value mem, Value i) { return toIndex(load(mem, i)); }
  VectorType vec(int64_t n, Type t) { return VectorType::get({n}, t); }
  Value splat(Value scalar, int64_t n) {
    return vector::BroadcastOp::create(b, vec(n, scalar.getType()), scalar);
  }
  Value vload(VectorType t, Value mem, Value i, int64_t align) {
    return vector::LoadOp::create(b, t, mem, ValueRange{i}, false,
                                  llvm::MaybeAlign(align));
  }
  void vstore(Value v, Value mem, Value i) {
    vector::StoreOp::create(b, v, mem, ValueRange{i});
  }
  void barrier() { gpu::BarrierOp::create(b); }
  /// Butterfly reduction over `lanes` adjacent lanes (every lane gets the
  /// result, bit-identical since the combiners are commutative).
  Value xorReduce(Value v, int64_t lanes, bool isMax) {
    for (int64_t off = lanes / 2; off >= 1; off /= 2) {
      Value other = gpu::ShuffleOp::create(b, v, off, 32, gpu::ShuffleMode::XOR)
                        .getShuffleResult();
      v = isMax ? fmax(v, other) : fadd(v, other);
    }
    return v;
  }
  void forLoop(Value lb, Value ub, Value step,
               const std::function<void(Value)> &body) {
    scf::ForOp::create(b, lb, ub, step, ValueRange{},
                       [&](OpBuilder &nb, Location loc, Value iv, ValueRange) {
                         ImplicitLocOpBuilder ib(loc, nb);
                         OpBuilder::InsertionGuard g(b);
                         b.setInsertionPoint(ib.getInsertionBlock(),
                                             ib.getInsertionPoint());
                         body(iv);
                         scf::YieldOp::create(b);
                       });
  }
  void ifThen(Value cond, const std::function<void()> &body) {
    auto op = scf::IfOp::create(b, cond, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(&op.getThenRegion().front());
    body();
  }
  /// Full-precision windows (docs/Numerics.md): whether token `t` of a
  /// sequence of `length` tokens is kept exactly (t < sinks or t >= length -
  /// recent; sinks + recent > 0).
  Value inWindow(Value t, Value length, int64_t sinks, int64_t recent) {
    Value in;
    if (sinks > 0)
      in = lt(t, idx(sinks));
    if (recent > 0) {
      Value r = cmp(arith::CmpIPredicate::sge, t, sub(length, idx(recent)));
      in = in ? Value(arith::OrIOp::create(b, in, r)) : r;
    }
    return in;
  }
  /// The recent-ring slot of token `t`: sinks + t % recent.
  Value ringSlot(Value t, int64_t sinks, int64_t recent) {
    return add(rem(t, recent), sinks);
  }
  /// The window slot of a window token `t`: itself for a sink, else its
  /// ring slot.
  Value windowSlot(Value t, int64_t sinks, int64_t recent) {
    if (recent == 0)
      return t;
    Value ring = ringSlot(t, sinks, recent);
    return sinks > 0 ? select(lt(t, idx(sinks)), t, ring) : ring;
  }
  /// First byte of sequence `seq`'s window region: the regions of the
  /// batch (`batchOf`'s size) are the pool's last batch * windowBytes bytes.
  Value windowRegion(Value pool, Value batchOf, Value seq,
                     int64_t windowBytes) {
    Value poolBytes = memref::DimOp::create(b, pool, 0);
    Value batch = memref::DimOp::create(b, batchOf, 0);
    return sub(poolBytes, mul(sub(batch, seq), windowBytes));
  }

  Value ifElse(Value cond, Type type, const std::function<Value()> &thenBody,
               const std::function<Value()> &elseBody) {
    auto op = scf::IfOp::create(b, TypeRange{type}, cond, true);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(&op.getThenRegion().front());
    scf::YieldOp::create(b, thenBody());
    b.setInsertionPointToStart(&op.getElseRegion().front());
    scf::YieldOp::create(b, elseBody());
    return op.getResult(0);
  }
  /// One online-softmax step of query row `r` over a tile of `n` scores at
  /// scores[r * n, (r + 1) * n), run by the lanes of one warp (`owned` is
  /// warp-uniform; false keeps the state): the scores become
  /// p = exp(s - m'), lane 0 writes alpha = exp(m - m') to stat[r], and the
  /// new (m', l') is returned.
  std::pair<Value, Value> onlineSoftmaxRow(Value scoreS, Value statS, Value r,
                                           Value owned, Value lane, int64_t n,
                                           Value mOld, Value lOld) {
    Type f32t = b.getF32Type();
    auto ifOp = scf::IfOp::create(b, TypeRange{f32t, f32t}, owned, true);
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    int64_t steps = (n + 31) / 32;
    Value tileMax = negInf();
    SmallVector<Value> sv;
    for (int64_t i = 0; i < steps; ++i) {
      Value j = add(lane, 32 * i);
      Value inTile = lt(j, idx(n));
      Value at = add(mul(r, n), min(j, idx(n - 1)));
      Value v = select(inTile, load(scoreS, at), negInf());
      sv.push_back(v);
      tileMax = fmax(tileMax, v);
    }
    tileMax = xorReduce(tileMax, 32, /*isMax=*/true);
    Value mNew = fmax(mOld, tileMax);
    Value mNewInf = isNegInf(mNew);
    Value alpha = select(isNegInf(mOld), f32(0.0f), exp(fsub(mOld, mNew)));
    Value sum = f32(0.0f);
    for (int64_t i = 0; i < steps; ++i) {
      Value j = add(lane, 32 * i);
      Value dead = arith::OrIOp::create(b, isNegInf(sv[i]), mNewInf);
      Value p = select(dead, f32(0.0f), exp(fsub(sv[i], mNew)));
      sum = fadd(sum, p);
      ifThen(lt(j, idx(n)), [&] { store(p, scoreS, add(mul(r, n), j)); });
    }
    sum = xorReduce(sum, 32, /*isMax=*/false);
    Value lNew = fadd(fmul(lOld, alpha), sum);
    ifThen(cmp(arith::CmpIPredicate::eq, lane, idx(0)),
           [&] { store(alpha, statS, r); });
    scf::YieldOp::create(b, ValueRange{mNew, lNew});
    b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    scf::YieldOp::create(b, ValueRange{mOld, lOld});
    return {ifOp.getResult(0), ifOp.getResult(1)};
  }

  /// Token-axis scales (and zero points, when `zeros`) of channels
  /// [ch0, ch0 + n) of a staged row whose groups of `group` channels start at
  /// `rowAt` in the shared arrays: one broadcast when the slice lies in one
  /// group (slices are aligned to n), else gathered per channel.
  std::pair<Value, Value> stagedTokenScales(Value scales, Value zeros,
                                            Value rowAt, Value ch0, int64_t n,
                                            int64_t group) {
    Type f32t = b.getF32Type();
    if (group % n == 0) {
      Value at = add(rowAt, div(ch0, group));
      return {splat(load(scales, at), n),
              zeros ? splat(load(zeros, at), n) : Value()};
    }
    SmallVector<Value> ss, zz;
    for (int64_t i = 0; i < n; ++i) {
      Value at = add(rowAt, div(add(ch0, i), group));
      ss.push_back(load(scales, at));
      if (zeros)
        zz.push_back(load(zeros, at));
    }
    return {vector::FromElementsOp::create(b, vec(n, f32t), ss),
            zeros ? Value(vector::FromElementsOp::create(b, vec(n, f32t), zz))
                  : Value()};
  }

  /// Stages the block-table entries of a tile's pages, first..first+count,
  /// of sequence `seq` into `pageS` (one per thread), then a barrier.
  void stageTilePages(Value table, Value pageS, Value seq, Value maxPages,
                      Value firstPage, Value pageCount, Value tid) {
    ifThen(lt(tid, pageCount), [&] {
      Value entry = add(mul(seq, maxPages), add(firstPage, tid));
      store(load(table, entry), pageS, tid);
    });
    barrier();
  }

  /// A vector<n x i8> (or scalar i8) of `type` bits/element reinterpreted.
  Value bitcastVec(Value v, int64_t n, Type t) {
    return vector::BitCastOp::create(b, vec(n, t), v);
  }

  /// Loads `bytes` bytes at byte offset `off` of `pool` in `loadBytes`
  /// pieces and returns them as one vector<bytes x i8>.
  Value loadBytes(Value pool, Value off, int64_t bytes, int64_t loadBytes) {
    if (bytes == loadBytes)
      return vload(vec(bytes, b.getI8Type()), pool, off, loadBytes);
    // Concatenate the aligned pieces (vector.shuffle lowers everywhere).
    Value acc;
    for (int64_t i = 0; i < bytes; i += loadBytes) {
      Value piece =
          vload(vec(loadBytes, b.getI8Type()), pool, add(off, i), loadBytes);
      if (!acc) {
        acc = piece;
        continue;
      }
      SmallVector<int64_t> mask(i + loadBytes);
      std::iota(mask.begin(), mask.end(), 0);
      acc = vector::ShuffleOp::create(b, acc, piece, mask);
    }
    return acc;
  }

  /// A scalar f32 from a little-endian scale of `type` at byte `off`,
  /// loaded in `align`-byte pieces.
  Value loadScale(Value pool, Value off, Type type, int64_t align) {
    int64_t bytes = type.getIntOrFloatBitWidth() / 8;
    Value raw = loadBytes(pool, off, bytes, align);
    return decodeFloat(raw, 1, type, /*scalar=*/true);
  }

  /// Decodes `n` elements of full-precision `type` (f16, bf16, f32) from a
  /// vector<n * bytes x i8> to vector<n x f32>, or to f32 when `scalar`.
  Value decodeFloat(Value raw, int64_t n, Type type, bool scalar = false) {
    Value v;
    Type f32t = b.getF32Type();
    if (type.isF32()) {
      v = bitcastVec(raw, n, f32t);
    } else if (type.isF16()) {
      v = arith::ExtFOp::create(b, vec(n, f32t),
                                bitcastVec(raw, n, b.getF16Type()));
    } else { // bf16: the high half of an f32
      Value h = bitcastVec(raw, n, b.getI16Type());
      Value w = arith::ExtUIOp::create(b, vec(n, b.getI32Type()), h);
      w = arith::ShLIOp::create(b, w, splat(i32(16), n));
      v = arith::BitcastOp::create(b, vec(n, f32t), w);
    }
    if (scalar)
      return vector::ExtractOp::create(b, v, ArrayRef<int64_t>{0});
    return v;
  }

  /// Decodes `n` quantized codes packed in `raw` (vector<n*bits/8 x i8>) to
  /// their f32 code values (before scaling), low bits first.
  Value decodeCodes(Value raw, int64_t n, const ComponentInfo &c) {
    Type i8 = b.getI8Type(), i32t = b.getI32Type(), f32t = b.getF32Type();
    auto sh = [&](Value v, int64_t k, bool left, bool sign) -> Value {
      if (!k)
        return v;
      auto cnt = arith::ConstantOp::create(
          b, DenseElementsAttr::get(cast<VectorType>(v.getType()),
                                    b.getI8IntegerAttr(k)));
      if (left)
        return arith::ShLIOp::create(b, v, cnt);
      if (sign)
        return arith::ShRSIOp::create(b, v, cnt);
      return arith::ShRUIOp::create(b, v, cnt);
    };
    bool sym = c.symmetric;
    kv::QuantKind kind = c.quant.getKind();
    Value codes = raw; // vector<n x i8>, one code per byte
    if (kind == kv::QuantKind::Int4) {
      // Low nibble first: (b << 4) >> 4, then b >> 4; sign-extending when
      // symmetric.
      Value lo = sh(sh(raw, 4, true, false), 4, false, sym);
      Value hi = sh(raw, 4, false, sym);
      codes = vector::InterleaveOp::create(b, lo, hi);
    } else if (kind == kv::QuantKind::Int2) {
      Value q[4];
      for (int k = 0; k < 4; ++k)
        q[k] = sh(sh(raw, 6 - 2 * k, true, false), 6, false, sym);
      Value a = vector::InterleaveOp::create(b, q[0], q[2]);
      Value d = vector::InterleaveOp::create(b, q[1], q[3]);
      codes = vector::InterleaveOp::create(b, a, d);
    }
    (void)i8;
    if (kind == kv::QuantKind::FP8E4M3)
      return decodeE4M3(codes, n);
    Value wide = sym ? Value(arith::ExtSIOp::create(b, vec(n, i32t), codes))
                     : Value(arith::ExtUIOp::create(b, vec(n, i32t), codes));
    return arith::SIToFPOp::create(b, vec(n, f32t), wide);
  }

  /// OCP E4M3FN bytes to f32: bias 7, subnormals m * 2^-9, 0x7F/0xFF NaN.
  Value decodeE4M3(Value codes, int64_t n) {
    Type i32t = b.getI32Type(), f32t = b.getF32Type();
    VectorType vi = vec(n, i32t), vf = vec(n, f32t);
    auto c = [&](int64_t v) { return splat(i32(v), n); };
    Value x = arith::ExtUIOp::create(b, vi, codes);
    Value sign =
        arith::ShLIOp::create(b, arith::AndIOp::create(b, x, c(0x80)), c(24));
    Value e =
        arith::AndIOp::create(b, arith::ShRUIOp::create(b, x, c(3)), c(15));
    Value m = arith::AndIOp::create(b, x, c(7));
    Value normal = arith::OrIOp::create(
        b,
        arith::OrIOp::create(
            b, sign,
            arith::ShLIOp::create(b, arith::AddIOp::create(b, e, c(120)),
                                  c(23))),
        arith::ShLIOp::create(b, m, c(20)));
    Value sub = arith::MulFOp::create(b, arith::UIToFPOp::create(b, vf, m),
                                      splat(f32(1.0f / 512.0f), n));
    Value subBits =
        arith::OrIOp::create(b, arith::BitcastOp::create(b, vi, sub), sign);
    Value isSub = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, e, c(0));
    Value bits = arith::SelectOp::create(b, isSub, subBits, normal);
    Value isNan =
        arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                              arith::AndIOp::create(b, x, c(0x7F)), c(0x7F));
    bits = arith::SelectOp::create(b, isNan, c(0x7FC00000), bits);
    return arith::BitcastOp::create(b, vf, bits);
  }

  /// Rounds an f32 (or vector of f32) to `type` (RNE) and returns the
  /// stored element(s) of that type.
  Value roundTo(Value x, Type type) {
    auto vt = dyn_cast<VectorType>(x.getType());
    auto like = [&](Type t) -> Type {
      return vt ? Type(VectorType::get(vt.getShape(), t)) : t;
    };
    auto cst = [&](int64_t v) {
      return vt ? splat(i32(v), vt.getNumElements()) : i32(v);
    };
    if (type.isF32())
      return x;
    if (type.isF16())
      return arith::TruncFOp::create(b, like(type), x);
    // bf16 by integer RNE (keeps NaN quiet), then reinterpreted.
    Value bits = arith::BitcastOp::create(b, like(b.getI32Type()), x);
    Value lsb = arith::AndIOp::create(
        b, arith::ShRUIOp::create(b, bits, cst(16)), cst(1));
    Value rounded = arith::AddIOp::create(
        b, bits, arith::AddIOp::create(b, cst(0x7FFF), lsb));
    Value isNan = arith::CmpFOp::create(b, arith::CmpFPredicate::UNO, x, x);
    rounded = arith::SelectOp::create(
        b, isNan, arith::OrIOp::create(b, bits, cst(0x00400000)), rounded);
    Value hi = arith::TruncIOp::create(
        b, like(b.getI16Type()), arith::ShRUIOp::create(b, rounded, cst(16)));
    return arith::BitcastOp::create(b, like(type), hi);
  }
};

inline mlir::MemRefType sharedF32(MLIRContext *ctx, int64_t n) {
  return MemRefType::get(
      {std::max<int64_t>(n, 1)}, Float32Type::get(ctx),
      MemRefLayoutAttrInterface{},
      gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup));
}

inline mlir::MemRefType dynamic1D(Type t) {
  return MemRefType::get({ShapedType::kDynamic}, t);
}

} // namespace kvopt::gpugen

#endif // KVOPT_CODEGEN_KVTOGPU_EMITTER_H
