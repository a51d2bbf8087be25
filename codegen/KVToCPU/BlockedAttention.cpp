//===- BlockedAttention.cpp - register-tiled attention key loop -----------===//
//
// The key loop of the CPU attention kernel for blocks and rows made of whole
// f32 vectors (AttentionKernel::blocked()), tiled for the target's vector
// width and register file.
//
//===----------------------------------------------------------------------===//
//
// Per block of `block-tokens` keys, and per KV head kh (in page order):
//
//   scores  a register tile of R query rows x T tokens of vector<L>
//           partial dot products, accumulated over the key row in an
//           scf.for over L-lane chunks (a loop, not unrolled: the query
//           chunks are reloaded from L1 each time instead of being hoisted
//           and spilled); the partials of L tokens are then reduced
//           together by a transposed shuffle tree into one vector of L
//           scores;
//   softmax one online-softmax step per row of kh (AttentionKernel);
//   values  a register tile of R' rows x W lanes of accumulators, loaded
//           and rescaled once per block, accumulated over the block's
//           tokens in scf.for iter_args, one broadcast weight per row and
//           token.
//
// K and V rows are read once per KV head and block, by all the head's query
// rows together. Full-precision and 8-bit rows convert chunk by chunk;
// packed codes (int4, int2) and rows that may live in a full-precision
// window are decoded once per block into an f32 staging block in L1. One
// symmetric scale per row is taken out of the sums (s * (q . c) for keys,
// (p * s) * c for values). The block's tokens are looked up in the block
// table once, and the K/V rows of the next block are prefetched head by
// head into L2, spread over the heads like the reads they precede.
//
//===----------------------------------------------------------------------===//

#include "AttentionKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;
using namespace kvopt;
using namespace kvopt::cpu;

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/// Largest power of two <= cap dividing n.
int64_t tileOf(int64_t n, int64_t cap) {
  int64_t t = 1;
  while (t * 2 <= cap && n % (t * 2) == 0)
    t *= 2;
  return t;
}

/// Emits scf.for [lb, ub) with `inits` as iter_args; `body(iv, args)`
/// returns the values to yield.
SmallVector<Value>
forWithArgs(KB &k, Value lb, Value ub, ValueRange inits,
            const std::function<SmallVector<Value>(Value, ValueRange)> &body) {
  ImplicitLocOpBuilder &b = k.b;
  auto loop = scf::ForOp::create(
      b, lb, ub, k.idx(1), inits,
      [&](OpBuilder &nested, Location, Value iv, ValueRange args) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nested.getInsertionBlock(),
                            nested.getInsertionPoint());
        scf::YieldOp::create(b, body(iv, args));
      });
  return SmallVector<Value>(loop.getResults());
}

/// The blocked key loop of one task.
struct BlockedLoop {
  AttentionKernel &kernel;
  const AttentionSpec &spec;
  KB &k;
  ImplicitLocOpBuilder &b;
  const AttentionKernel::Task &task;
  const CacheAccess &cache;
  Type f32;
  int64_t lanes, tb, dk, dv, headRows;
  /// The components keys and values are read from (MLA: both the latent
  /// row, the values being its first valueDim lanes).
  const ComponentLayout &keyC, &valueC;
  /// Decode rows into an f32 staging block first (packed codes, windows,
  /// groups smaller than a chunk).
  bool stageK = false, stageV = false;
  /// One symmetric scale per stored row, taken out of the sums.
  bool foldK = false, foldV = false;
  /// Register tiles: scores R x T tokens, values R' x W / lanes vectors.
  int64_t scoreRows = 1, scoreTokens = 1, valueRows = 1, valueChunks = 1;

  // Per-block tables ([tb] index): the token's page byte offset, its slot,
  // its key index; for the token one block ahead, its page and slot and
  // the byte offsets of its K and V rows of head 0.
  Value tokPage, tokSlot, tokKey, aheadPage, aheadSlot, aheadKey, aheadValue;
  // Byte offsets of the block tokens' K and V rows of head 0 ([tb] index).
  Value rowKey, rowValue;
  // Scratch: scores then weights [headRows][tb], rescales [headRows],
  // score partials [R][tb][lanes], staging blocks [tb][dim], per-token
  // scales [tb], weights times value scales [R'][tb].
  Value sc, alphas, part, keyStage, valueStage, scaleK, scaleV, weights;

  BlockedLoop(AttentionKernel &kernel, const AttentionKernel::Task &task)
      : kernel(kernel), spec(kernel.spec), k(kernel.k), b(kernel.b), task(task),
        cache(kernel.cache), keyC(spec.layout.key),
        valueC(spec.mla ? spec.layout.key : spec.layout.value) {
    f32 = b.getF32Type();
    lanes = spec.lanes();
    tb = spec.blockTokens;
    dk = spec.keyDim;
    dv = spec.valueDim;
    headRows = kernel.group * spec.queryRows;
    auto needsStage = [&](const ComponentLayout &c) {
      if (!c.quant)
        return false;
      if (c.bits() < 8 || c.hasWindow())
        return true;
      // A token-axis group must cover whole chunks for chunk-wise scales.
      return !c.channelAxis() && c.group() % lanes != 0;
    };
    auto foldable = [&](const ComponentLayout &c) {
      return c.quant && !c.channelAxis() && c.group() == c.dim &&
             !c.hasWindow() && c.quant.getSymmetric();
    };
    stageK = needsStage(keyC);
    foldK = !stageK && foldable(keyC);
    stageV = spec.mla ? stageK : needsStage(valueC);
    foldV = spec.mla ? foldK : !stageV && foldable(valueC);

    // Scores: R rows (at most 8) x T tokens of accumulators fill the
    // accumulator registers; values: R' rows (at most 4) x W lanes.
    int64_t regs = spec.accumulatorRegisters();
    scoreRows = tileOf(headRows, std::min<int64_t>(8, regs));
    scoreTokens = tileOf(tb, std::max<int64_t>(1, regs / scoreRows));
    valueRows = tileOf(headRows, 4);
    valueChunks = tileOf(dv / lanes, std::max<int64_t>(1, regs / valueRows));
  }

  MemRefType buffer(ArrayRef<int64_t> shape, Type element) {
    return MemRefType::get(shape, element);
  }
  Value scratch(ArrayRef<int64_t> shape, Type element) {
    return memref::AllocaOp::create(b, buffer(shape, element));
  }
  Value load(Value memref, ValueRange at) {
    return memref::LoadOp::create(b, memref, at);
  }
  Value loadVec(Value memref, ValueRange at, int64_t n) {
    return vector::LoadOp::create(b, k.vec(n, f32), memref, at);
  }
  void storeVec(Value v, Value memref, ValueRange at) {
    vector::StoreOp::create(b, v, memref, at);
  }

  void allocate() {
    auto index = b.getIndexType();
    tokPage = scratch({tb}, index);
    tokSlot = scratch({tb}, index);
    tokKey = scratch({tb}, index);
    aheadPage = scratch({tb}, index);
    aheadSlot = scratch({tb}, index);
    aheadKey = scratch({tb}, index);
    rowKey = scratch({tb}, index);
    if (prefetchValues())
      rowValue = scratch({tb}, index);
    if (prefetchValues())
      aheadValue = scratch({tb}, index);
    sc = scratch({headRows, tb}, f32);
    alphas = scratch({headRows}, f32);
    part = scratch({scoreRows, tb, lanes}, f32);
    if (stageK)
      keyStage = scratch({tb, dk}, f32);
    if (stageV && !spec.mla)
      valueStage = scratch({tb, dv}, f32);
    if (spec.mla)
      valueStage = keyStage;
    if (foldK)
      scaleK = scratch({tb}, f32);
    if (foldV && !spec.mla)
      scaleV = scratch({tb}, f32);
    if (spec.mla)
      scaleV = scaleK;
    if (foldV)
      weights = scratch({valueRows, tb}, f32);
  }

  /// Resolves the block's tokens (clamped into the iterated range: lanes
  /// past the end read a valid key and are masked) and the tokens one
  /// block ahead.
  void fillTables(Value blk) {
    Value last = k.sub(task.n, k.idx(1));
    k.forLoop(0, tb, [&](Value t) {
      Value u = k.add(blk, t);
      Value j = task.tokenAt(k.min(u, last));
      auto [pageBase, slot] = cache.page(k, task.bi, j);
      memref::StoreOp::create(b, pageBase, tokPage, ValueRange{t});
      memref::StoreOp::create(b, slot, tokSlot, ValueRange{t});
      memref::StoreOp::create(b, j, tokKey, ValueRange{t});
      memref::StoreOp::create(b, rowOffset(keyC, pageBase, slot), rowKey,
                              ValueRange{t});
      if (prefetchValues())
        memref::StoreOp::create(b, rowOffset(valueC, pageBase, slot), rowValue,
                                ValueRange{t});
      Value ahead = task.tokenAt(k.min(k.add(u, k.idx(tb)), last));
      auto [aheadBase, aheadSlotValue] = cache.page(k, task.bi, ahead);
      memref::StoreOp::create(b, aheadBase, aheadPage, ValueRange{t});
      memref::StoreOp::create(b, aheadSlotValue, aheadSlot, ValueRange{t});
      memref::StoreOp::create(b, rowOffset(keyC, aheadBase, aheadSlotValue),
                              aheadKey, ValueRange{t});
      if (prefetchValues())
        memref::StoreOp::create(b, rowOffset(valueC, aheadBase, aheadSlotValue),
                                aheadValue, ValueRange{t});
    });
  }

  /// Byte offset of the data of row (slot, head 0) of `c` in a page.
  Value rowOffset(const ComponentLayout &c, Value pageBase, Value slot) {
    return k.add(pageBase, k.add(k.mul(slot, c.heads * rowBytes(c)),
                                 k.idx(c.dataOffset)));
  }

  static int64_t rowBytes(const ComponentLayout &c) {
    return c.dim * c.bits() / 8;
  }
  /// Lines a row can touch: ceil(bytes / 64), one more when rows do not
  /// start on line boundaries.
  static int64_t rowLines(const ComponentLayout &c) {
    int64_t bytes = rowBytes(c);
    return (bytes + 63) / 64 + (bytes % 64 ? 1 : 0);
  }
  /// Whether V rows are separate from K rows (not MLA) and get prefetched.
  bool prefetchValues() const { return !spec.mla && valueC.present; }

  /// Prefetches lines [line0, line0 + count) (clamped to the row) of
  /// head kh's row of `c` of the token one block ahead whose head-0 row
  /// offset is `aheadRow`. The inner loops call this once per iteration
  /// with a share of a block's lines, so that the misses stay few at a
  /// time and overlap the arithmetic: all of a head's lines at once stall
  /// the core on full miss buffers.
  void prefetchLines(const ComponentLayout &c, Value aheadRow, Value kh,
                     Value line0, int64_t count) {
    int64_t lines = rowLines(c), bytes = rowBytes(c);
    Value row = k.add(aheadRow, k.mul(kh, bytes));
    for (int64_t j = 0; j < count; ++j) {
      Value line = k.add(line0, k.idx(j));
      Value at =
          k.min(k.mul(k.min(line, k.idx(lines - 1)), 64), k.idx(bytes - 1));
      memref::PrefetchOp::create(b, cache.bytes, ValueRange{k.add(row, at)},
                                 /*isWrite=*/false, prefetchLocality(),
                                 /*isDataCache=*/true);
    }
  }
  static int prefetchLocality() {
    static int hint =
        getenv("KVOPT_PF_HINT") ? atoi(getenv("KVOPT_PF_HINT")) : 3;
    return hint;
  }

  /// Prefetches head kh's token-axis scales and zero points of the next
  /// block (a line or two per row; the data lines are spread over the
  /// inner loops).
  void prefetchScales(Value kh) {
    auto scaleRegions = [&](const ComponentLayout &c, Value base, Value slot) {
      if (!c.quant || c.channelAxis())
        return;
      int64_t scaleRow = (c.dim / c.group()) * c.scaleBytes();
      Value row = k.add(k.mul(slot, c.heads), kh);
      for (int64_t region : {c.scaleOffset, c.zeroOffset}) {
        if (region == c.zeroOffset && c.quant.getSymmetric())
          continue;
        Value start = k.add(base, k.add(k.mul(row, scaleRow), k.idx(region)));
        for (int64_t at : {int64_t(0), scaleRow - 1})
          memref::PrefetchOp::create(b, cache.bytes,
                                     ValueRange{k.add(start, at)},
                                     /*isWrite=*/false, prefetchLocality(),
                                     /*isDataCache=*/true);
      }
    };
    bool any = (keyC.quant && !keyC.channelAxis()) ||
               (prefetchValues() && valueC.quant && !valueC.channelAxis());
    if (!any)
      return;
    k.forLoop(0, tb, [&](Value t) {
      Value base = load(aheadPage, {t}), slot = load(aheadSlot, {t});
      scaleRegions(keyC, base, slot);
      if (prefetchValues())
        scaleRegions(valueC, base, slot);
    });
  }

  /// Decodes row (t, kh) of every block token into `stage` ([tb][width]).
  void stageRows(const ComponentLayout &c, Value stage, Value kh,
                 int64_t width) {
    k.forLoop(0, tb, [&](Value t) {
      Value row =
          cache.loadRowSlice(k, c, load(tokPage, {t}), load(tokSlot, {t}),
                             task.winBase, load(tokKey, {t}), kh, task.len,
                             /*lane0=*/0, width);
      storeVec(row, stage, {t, k.idx(0)});
    });
  }

  /// The row scale of (t, kh) of every block token into `scales` ([tb]).
  void gatherScales(const ComponentLayout &c, Value scales, Value kh) {
    k.forLoop(0, tb, [&](Value t) {
      Value row = k.add(k.mul(load(tokSlot, {t}), c.heads), kh);
      Value at = k.add(load(tokPage, {t}),
                       k.add(k.mul(row, c.scaleBytes()), k.idx(c.scaleOffset)));
      memref::StoreOp::create(
          b, k.toF32(k.loadBytes(cache.bytes, at, c.scaleType())), scales,
          ValueRange{t});
    });
  }

  /// Byte offset of the data of row (block token t, head kh) of `c`.
  Value rowData(const ComponentLayout &c, Value t, Value kh) {
    Value head0 = load(&c == &keyC ? rowKey : rowValue, {t});
    return k.add(head0, k.mul(kh, rowBytes(c)));
  }

  /// Lanes [lane, lane + lanes) of row (block token t, head kh) of `c` as
  /// vector<lanes x f32>: from `stage`, converted from the element type, or
  /// 8-bit codes (left unscaled when `folded`, else times the scale of
  /// their group or channels plus the zero point, one FMA).
  Value chunk(const ComponentLayout &c, Value stage, bool folded, Value t,
              Value kh, Value data, Value lane) {
    if (stage)
      return loadVec(stage, {t, lane}, lanes);
    if (!c.quant)
      return k.toF32(k.loadBytes(cache.bytes,
                                 k.add(data, k.mul(lane, c.elementBytes)),
                                 k.vec(lanes, c.element)));
    Value codes =
        decodeCodes(k, c.quant, cache.bytes, k.add(data, lane), lanes);
    if (folded)
      return codes;
    Value pageBase = load(tokPage, {t});
    Value scaleIndex;
    int64_t count = 1;
    if (c.channelAxis()) {
      Value group = k.div(load(tokSlot, {t}), c.group());
      scaleIndex = k.add(k.mul(k.add(k.mul(group, c.heads), kh), c.dim), lane);
      count = lanes;
    } else {
      Value row = k.add(k.mul(load(tokSlot, {t}), c.heads), kh);
      scaleIndex = k.add(k.mul(row, c.dim / c.group()), k.div(lane, c.group()));
    }
    auto loadScales = [&](int64_t region) {
      Value at = k.add(pageBase,
                       k.add(k.mul(scaleIndex, c.scaleBytes()), k.idx(region)));
      if (count == 1)
        return k.splat(k.toF32(k.loadBytes(cache.bytes, at, c.scaleType())),
                       lanes);
      return k.toF32(k.loadBytes(cache.bytes, at, k.vec(lanes, c.scaleType())));
    };
    Value s = loadScales(c.scaleOffset);
    if (c.quant.getSymmetric())
      return arith::MulFOp::create(b, codes, s);
    return math::FmaOp::create(b, codes, s, loadScales(c.zeroOffset));
  }

  /// One level of the transposed reduction: `x` and `y` each hold m
  /// tokens, token i in lanes [i * w, (i + 1) * w) with w = lanes / m; the
  /// result holds x's tokens then y's, w / 2 lanes each, with the same sums.
  Value combine(Value x, Value y, int64_t m) {
    int64_t w = lanes / m, h = w / 2;
    SmallVector<int64_t> lo, hi;
    for (int64_t src = 0; src < 2; ++src)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t l = 0; l < h; ++l) {
          lo.push_back(src * lanes + i * w + l);
          hi.push_back(src * lanes + i * w + h + l);
        }
    return arith::AddFOp::create(b, vector::ShuffleOp::create(b, x, y, lo),
                                 vector::ShuffleOp::create(b, x, y, hi));
  }

  /// Scores of head kh's rows over the block into sc (-inf where hidden).
  void scores(Value kh, Value cnt) {
    int64_t R = scoreRows, T = scoreTokens;
    Value zero = k.idx(0);
    Value zeros = k.splat(k.f32(0), lanes);
    k.forLoop(0, headRows / R, [&](Value tile) {
      Value lr0 = k.mul(tile, R);
      Value r0 = k.add(k.mul(kh, headRows), lr0);
      k.forLoop(0, tb / T, [&](Value tg) {
        Value t0 = k.mul(tg, T);
        SmallVector<Value> tok, data;
        for (int64_t t = 0; t < T; ++t) {
          tok.push_back(k.add(t0, k.idx(t)));
          data.push_back(stageK ? Value() : rowData(keyC, tok[t], kh));
        }
        SmallVector<Value> init(R * T, zeros);
        SmallVector<Value> accs = forWithArgs(
            k, zero, k.idx(dk / lanes), init, [&](Value c, ValueRange acc) {
              Value lane = k.mul(c, lanes);
              // This iteration's share of the T tokens' next-block lines.
              int64_t lines = T * rowLines(keyC);
              int64_t iters = (headRows / R) * (dk / lanes);
              int64_t per = (lines + iters - 1) / iters;
              Value i0 = k.mul(k.add(k.mul(tile, dk / lanes), c), per);
              for (int64_t j = 0; j < per; ++j) {
                Value i = k.min(k.add(i0, k.idx(j)), k.idx(lines - 1));
                prefetchLines(keyC, load(aheadKey, {k.add(t0, k.rem(i, T))}),
                              kh, k.div(i, T), 1);
              }
              SmallVector<Value> q, key;
              for (int64_t r = 0; r < R; ++r)
                q.push_back(
                    loadVec(task.qs, {k.add(r0, k.idx(r)), lane}, lanes));
              for (int64_t t = 0; t < T; ++t)
                key.push_back(
                    chunk(keyC, keyStage, foldK, tok[t], kh, data[t], lane));
              SmallVector<Value> next;
              for (int64_t r = 0; r < R; ++r)
                for (int64_t t = 0; t < T; ++t)
                  next.push_back(
                      math::FmaOp::create(b, q[r], key[t], acc[r * T + t]));
              return next;
            });
        for (int64_t r = 0; r < R; ++r)
          for (int64_t t = 0; t < T; ++t)
            storeVec(accs[r * T + t], part, {k.idx(r), tok[t], zero});
      });
      // The partials of each run of `lanes` tokens, reduced together.
      auto indexVec = k.vec(lanes, b.getIndexType());
      SmallVector<int64_t> iota;
      for (int64_t i = 0; i < lanes; ++i)
        iota.push_back(i);
      Value lanesIota = arith::ConstantOp::create(
          b, DenseElementsAttr::get(indexVec, ArrayRef<int64_t>(iota)));
      k.forLoop(0, tb / lanes, [&](Value g) {
        Value t0 = k.mul(g, lanes);
        Value inRange = arith::CmpIOp::create(
            b, arith::CmpIPredicate::slt,
            arith::AddIOp::create(b, lanesIota, k.splat(t0, lanes)),
            k.splat(cnt, lanes));
        Value keys;
        if (kernel.masked())
          keys = vector::LoadOp::create(b, indexVec, tokKey, ValueRange{t0});
        Value tokenScales;
        if (foldK)
          tokenScales = loadVec(scaleK, {t0}, lanes);
        for (int64_t r = 0; r < R; ++r) {
          SmallVector<Value> level;
          for (int64_t i = 0; i < lanes; ++i)
            level.push_back(
                loadVec(part, {k.idx(r), k.add(t0, k.idx(i)), zero}, lanes));
          for (int64_t m = 1; m < lanes; m *= 2) {
            SmallVector<Value> next;
            for (size_t i = 0; i < level.size(); i += 2)
              next.push_back(combine(level[i], level[i + 1], m));
            level = next;
          }
          Value s = level[0];
          if (foldK)
            s = arith::MulFOp::create(b, s, tokenScales);
          Value ok = inRange;
          if (kernel.masked())
            ok = arith::AndIOp::create(
                b, ok,
                kernel.visibleVec(task.len,
                                  kernel.rowQuery(k.add(r0, k.idx(r))), keys));
          s = arith::SelectOp::create(b, ok, s, k.splat(k.f32(kNegInf), lanes));
          storeVec(s, sc, {k.add(lr0, k.idx(r)), t0});
        }
      });
    });
  }

  /// Online-softmax step of head kh's rows: sc becomes the weights.
  void softmax(Value kh) {
    Value zero = k.idx(0);
    k.forLoop(0, headRows, [&](Value lr) {
      Value r = k.add(k.mul(kh, headRows), lr);
      auto [p, alpha] =
          kernel.softmaxStep(task, r, loadVec(sc, {lr, zero}, tb));
      storeVec(p, sc, {lr, zero});
      memref::StoreOp::create(b, alpha, alphas, ValueRange{lr});
    });
  }

  /// acc[r] = acc[r] * alpha[r] + sum_t weight[r][t] * V[t] for head kh.
  void values(Value kh, Value cnt) {
    int64_t R = valueRows, width = valueChunks * lanes;
    Value zero = k.idx(0);
    k.forLoop(0, headRows / R, [&](Value tile) {
      Value lr0 = k.mul(tile, R);
      Value r0 = k.add(k.mul(kh, headRows), lr0);
      // Weights times the tokens' value scales, once per row.
      Value w = sc, wRow0 = lr0;
      if (foldV) {
        Value sv = loadVec(scaleV, {zero}, tb);
        for (int64_t rr = 0; rr < R; ++rr)
          storeVec(arith::MulFOp::create(
                       b, loadVec(sc, {k.add(lr0, k.idx(rr)), zero}, tb), sv),
                   weights, {k.idx(rr), zero});
        w = weights;
        wRow0 = zero;
      }
      SmallVector<Value> alpha;
      for (int64_t rr = 0; rr < R; ++rr)
        alpha.push_back(k.splat(load(alphas, {k.add(lr0, k.idx(rr))}), lanes));
      k.forLoop(0, dv / width, [&](Value slice) {
        Value lane0 = k.mul(slice, width);
        int64_t valueIters = (headRows / R) * (dv / width);
        int64_t valuePer = (rowLines(valueC) + valueIters - 1) / valueIters;
        Value valueLine0 =
            k.mul(k.add(k.mul(tile, dv / width), slice), valuePer);
        SmallVector<Value> init;
        for (int64_t rr = 0; rr < R; ++rr)
          for (int64_t c = 0; c < valueChunks; ++c)
            init.push_back(arith::MulFOp::create(
                b,
                loadVec(task.acc,
                        {k.add(r0, k.idx(rr)), k.add(lane0, k.idx(c * lanes))},
                        lanes),
                alpha[rr]));
        SmallVector<Value> accs =
            forWithArgs(k, zero, cnt, init, [&](Value t, ValueRange acc) {
              // This (tile, slice)'s share of token t's next-block lines.
              if (prefetchValues())
                prefetchLines(valueC, load(aheadValue, {t}), kh, valueLine0,
                              valuePer);
              Value data = stageV ? Value() : rowData(valueC, t, kh);
              SmallVector<Value> v;
              for (int64_t c = 0; c < valueChunks; ++c)
                v.push_back(chunk(valueC, valueStage, foldV, t, kh, data,
                                  k.add(lane0, k.idx(c * lanes))));
              SmallVector<Value> next;
              for (int64_t rr = 0; rr < R; ++rr) {
                Value p = k.splat(load(w, {k.add(wRow0, k.idx(rr)), t}), lanes);
                for (int64_t c = 0; c < valueChunks; ++c)
                  next.push_back(math::FmaOp::create(
                      b, p, v[c], acc[rr * valueChunks + c]));
              }
              return next;
            });
        for (int64_t rr = 0; rr < R; ++rr)
          for (int64_t c = 0; c < valueChunks; ++c)
            storeVec(accs[rr * valueChunks + c], task.acc,
                     {k.add(r0, k.idx(rr)), k.add(lane0, k.idx(c * lanes))});
      });
    });
  }

  void build() {
    allocate();
    Value zero = k.idx(0);
    scf::ForOp::create(b, zero, task.n, k.idx(tb), ValueRange{},
                       [&](OpBuilder &nested, Location, Value blk, ValueRange) {
                         OpBuilder::InsertionGuard guard(b);
                         b.setInsertionPoint(nested.getInsertionBlock(),
                                             nested.getInsertionPoint());
                         Value cnt = k.min(k.idx(tb), k.sub(task.n, blk));
                         fillTables(blk);
                         k.forLoop(0, spec.kvHeads, [&](Value kh) {
                           prefetchScales(kh);
                           if (stageK)
                             stageRows(keyC, keyStage, kh, dk);
                           if (foldK)
                             gatherScales(keyC, scaleK, kh);
                           scores(kh, cnt);
                           softmax(kh);
                           if (stageV && !spec.mla)
                             stageRows(valueC, valueStage, kh, dv);
                           if (foldV && !spec.mla)
                             gatherScales(valueC, scaleV, kh);
                           values(kh, cnt);
                         });
                         scf::YieldOp::create(b);
                       });
  }
};
} // namespace

void AttentionKernel::buildBlockedLoop(const Task &task) {
  BlockedLoop(*this, task).build();
}
