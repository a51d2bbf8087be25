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
// table once, and the K/V lines of the next block are prefetched in
// address order (token by token, every head of a token), an equal share
// from each head's loops, so that memory sees one sequential stream per
// page while the kernel reads the page head by head.
//
//===----------------------------------------------------------------------===//

#include "AttentionKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
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
/// returns the values to yield. With `unroll` > 1 the loop is unrolled by
/// that factor (it must divide the static trip count).
SmallVector<Value>
forWithArgs(KB &k, Value lb, Value ub, ValueRange inits,
            const std::function<SmallVector<Value>(Value, ValueRange)> &body,
            int64_t unroll = 1) {
  ImplicitLocOpBuilder &b = k.b;
  auto loop = scf::ForOp::create(
      b, lb, ub, k.idx(1), inits,
      [&](OpBuilder &nested, Location, Value iv, ValueRange args) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nested.getInsertionBlock(),
                            nested.getInsertionPoint());
        scf::YieldOp::create(b, body(iv, args));
      });
  if (unroll > 1) {
    // Unrolling replaces the loop's results (and, fully unrolled, the loop
    // itself): a placeholder use carries them through.
    auto holder = UnrealizedConversionCastOp::create(b, loop.getResultTypes(),
                                                     loop.getResults());
    (void)loopUnrollByFactor(loop, unroll);
    SmallVector<Value> values(holder.getOperands());
    holder.erase();
    return values;
  }
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

  /// Fixed-point path (int-dots): K codes times 16-bit queries, V codes
  /// times 16-bit weights, pairs of i16 products summed exactly in i32.
  bool intK = false, intV = false;
  /// K: channels per i16 chunk (2 * lanes), channels summed in i32 before
  /// conversion (a divisor of the group that cannot overflow), groups.
  int64_t kChunk = 0, kSpan = 0, kGroups = 0;
  /// V: channels per unit (the codes of `lanes` bytes, 8 / bits planes of
  /// `lanes` channels each), units per slice, groups, largest weight.
  int64_t vUnit = 0, vUnits = 0, vGroups = 0, weightMax = 0;
  // Fixed-point scratch: queries [T][rows][dk] i16 (chunk-permuted, one
  // copy per token of the score tile), their
  // scales [rows], per-group sums [rows][kGroups]; the block's group
  // scales and zero points [groups][tb] of K and of V; the zero-point term
  // of the scores [headRows][tb]; weights [R'][vGroups][tb] i16, their
  // scales and zero-point sums [R'][vGroups].
  Value qInt, qScale, qSum, kScales, kZeros, vScales, vZeros, zeroTerm;
  Value wInt, wScale, wZero;

  // Per-block tables ([tb] index): the token's page byte offset, its slot,
  // its key index; for the token one block ahead, its page and slot and
  // the byte offsets of its K and V rows of head 0.
  Value tokPage, tokSlot, tokKey, aheadPage, aheadSlot, aheadKey, aheadValue;
  // Byte offsets of the block tokens' K and V rows of head 0 ([tb] index).
  Value rowKey, rowValue;
  // Scratch: scores then weights [headRows][tb], rescales [headRows],
  // score partials [R][tb][lanes], staging blocks [tb][dim], per-token
  // scales [tb], weights times value scales [R'][tb].
  Value sc, alphas, newMax, part, keyStage, valueStage, weights;

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
    kChunk = 2 * lanes;
    intK = !spec.mla && intEligible(keyC, kChunk);
    if (intK) {
      kGroups = dk / keyC.group();
      kSpan = spanOf(keyC);
    }
    vUnit = lanes * 8 / (valueC.present ? valueC.bits() : 8);
    intV = !spec.mla && valueC.present && intEligible(valueC, vUnit) &&
           tb % 2 == 0;
    if (intV) {
      vGroups = dv / valueC.group();
      // tb tokens of weights <= weightMax times codes <= codeMax sum in i32.
      weightMax = std::min<int64_t>(32767, int64_t(2147483647) /
                                               (tb * codeMax(valueC)));
    }
    stageK = !intK && needsStage(keyC);
    foldK = !intK && !stageK && foldable(keyC);
    stageV = spec.mla ? stageK : !intV && needsStage(valueC);
    foldV = spec.mla ? foldK : !intV && !stageV && foldable(valueC);

    // Scores: R rows (at most 8) x T tokens of accumulators fill the
    // accumulator registers; values: R' rows (at most 4) x W lanes.
    int64_t regs = spec.accumulatorRegisters();
    scoreRows = tileOf(headRows, std::min<int64_t>(8, regs));
    scoreTokens = tileOf(tb, std::max<int64_t>(1, regs / scoreRows));
    valueRows = tileOf(headRows, 4);
    valueChunks = tileOf(dv / lanes, std::max<int64_t>(1, regs / valueRows));
    if (intK && dk / kSpan > 1) {
      // i32 span accumulators beside the f32 row accumulators: half each.
      scoreRows = tileOf(headRows, std::min<int64_t>(8, regs / 2));
      scoreTokens = tileOf(tb, std::max<int64_t>(1, regs / 2 / scoreRows));
    }
    if (intV) {
      int64_t planes = vUnit / lanes;
      valueRows = tileOf(
          headRows, std::max<int64_t>(1, std::min<int64_t>(4, regs / planes)));
      vUnits =
          tileOf(dv / vUnit, std::max<int64_t>(1, regs / (valueRows * planes)));
    }
  }

  /// Largest magnitude of a code of `c` (symmetric codes are signed).
  static int64_t codeMax(const ComponentLayout &c) {
    int64_t bits = c.bits();
    return c.quant.getSymmetric() ? int64_t(1) << (bits - 1)
                                  : (int64_t(1) << bits) - 1;
  }
  /// Whether rows of `c` take the fixed-point path: token-axis int8, int4
  /// or int2 codes without full-precision windows, in groups of whole
  /// `unit`s of channels.
  bool intEligible(const ComponentLayout &c, int64_t unit) const {
    if (!spec.intDots || !c.quant || c.channelAxis() || c.hasWindow())
      return false;
    kv::QuantKind kind = c.quant.getKind();
    if (kind != kv::QuantKind::Int8 && kind != kv::QuantKind::Int4 &&
        kind != kv::QuantKind::Int2)
      return false;
    return c.dim % unit == 0 && c.group() % unit == 0;
  }
  /// Channels of a K group summed in i32 before conversion: the largest
  /// divisor of the group, in whole chunks, whose sum of codes times
  /// 16-bit queries cannot overflow.
  int64_t spanOf(const ComponentLayout &c) const {
    int64_t limit = int64_t(2147483647) / (codeMax(c) * 32767);
    int64_t g = c.group();
    for (int64_t span = g; span >= kChunk; span -= kChunk)
      if (g % span == 0 && span % kChunk == 0 && span <= limit)
        return span;
    return kChunk;
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
    newMax = scratch({headRows}, f32);
    part = scratch({scoreRows, tb, lanes}, f32);
    if (stageK)
      keyStage = scratch({tb, dk}, f32);
    if (stageV && !spec.mla)
      valueStage = scratch({tb, dv}, f32);
    if (spec.mla)
      valueStage = keyStage;
    // Token-axis scales (and zero points) of every head for the block's
    // tokens, [head][group][token], gathered once per block.
    if (foldK || intK)
      kScales = scratch({keyC.heads, groupsOf(keyC), tb}, f32);
    if (intK && !keyC.quant.getSymmetric())
      kZeros = scratch({keyC.heads, groupsOf(keyC), tb}, f32);
    if ((foldV || intV) && !spec.mla)
      vScales = scratch({valueC.heads, groupsOf(valueC), tb}, f32);
    if (intV && !valueC.quant.getSymmetric())
      vZeros = scratch({valueC.heads, groupsOf(valueC), tb}, f32);
    if (spec.mla)
      vScales = kScales;
    if (foldV)
      weights = scratch({valueRows, tb}, f32);
    auto i16 = b.getI16Type();
    if (intK) {
      // One copy per token of the score tile: each load of a query chunk
      // then has one use and folds into its pair product (vpmaddwd with a
      // memory operand) instead of occupying a register.
      qInt = scratch({scoreTokens, kernel.rows, dk}, i16);
      qScale = scratch({kernel.rows}, f32);
      if (!keyC.quant.getSymmetric()) {
        qSum = scratch({kernel.rows, kGroups}, f32);
        zeroTerm = scratch({headRows, tb}, f32);
      }
    }
    if (intV) {
      wInt = scratch({valueRows, vGroups, tb}, i16);
      wScale = scratch({valueRows, vGroups}, f32);
      if (!valueC.quant.getSymmetric()) {
        wZero = scratch({valueRows, vGroups}, f32);
      }
    }
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
      gatherScales(keyC, kScales, kZeros, pageBase, slot, t);
      if (!spec.mla)
        gatherScales(valueC, vScales, vZeros, pageBase, slot, t);
      prefetchScales(keyC, aheadBase, aheadSlotValue);
      if (prefetchValues())
        prefetchScales(valueC, aheadBase, aheadSlotValue);
      if (prefetchValues())
        memref::StoreOp::create(b, rowOffset(valueC, aheadBase, aheadSlotValue),
                                aheadValue, ValueRange{t});
    });
  }

  /// Token-axis scale groups per row of `c` (1 for a whole-row scale).
  static int64_t groupsOf(const ComponentLayout &c) {
    return c.dim / c.group();
  }
  /// Bytes of one token's scales (or zero points), every head.
  static int64_t scaleBytesPerToken(const ComponentLayout &c) {
    return c.heads * groupsOf(c) * c.scaleBytes();
  }

  /// Token t's scales (and zero points) of every head and group of `c`,
  /// one contiguous load each, into tables [head][group][token].
  void gatherScales(const ComponentLayout &c, Value scales, Value zeros,
                    Value pageBase, Value slot, Value t) {
    if (!scales)
      return;
    int64_t groups = groupsOf(c), n = c.heads * groups;
    auto gather = [&](Value table, int64_t region) {
      Value at = k.add(
          pageBase, k.add(k.mul(slot, scaleBytesPerToken(c)), k.idx(region)));
      Value all =
          k.toF32(k.loadBytes(cache.bytes, at, k.vec(n, c.scaleType())));
      for (int64_t h = 0; h < c.heads; ++h)
        for (int64_t g = 0; g < groups; ++g)
          memref::StoreOp::create(
              b,
              vector::ExtractOp::create(b, all,
                                        ArrayRef<int64_t>{h * groups + g}),
              table, ValueRange{k.idx(h), k.idx(g), t});
    };
    gather(scales, c.scaleOffset);
    if (zeros)
      gather(zeros, c.zeroOffset);
  }

  /// Prefetches the lines of a token's token-axis scales and zero points
  /// (every head; a line or two) at `pageBase`/`slot`.
  void prefetchScales(const ComponentLayout &c, Value pageBase, Value slot) {
    if (!c.quant || c.channelAxis())
      return;
    int64_t bytes = scaleBytesPerToken(c);
    for (int64_t region : {c.scaleOffset, c.zeroOffset}) {
      if (region == c.zeroOffset && c.quant.getSymmetric())
        continue;
      Value start = k.add(pageBase, k.add(k.mul(slot, bytes), k.idx(region)));
      SmallVector<int64_t> offsets;
      for (int64_t at = 0; at < bytes; at += 64)
        offsets.push_back(at);
      // And the last byte: pages need not start on a line.
      if (bytes > 1)
        offsets.push_back(bytes - 1);
      for (int64_t at : offsets)
        memref::PrefetchOp::create(b, cache.bytes,
                                   ValueRange{k.add(start, k.idx(at))},
                                   /*isWrite=*/false, prefetchLocality(),
                                   /*isDataCache=*/true);
    }
  }

  /// Byte offset of the data of row (slot, head 0) of `c` in a page.
  Value rowOffset(const ComponentLayout &c, Value pageBase, Value slot) {
    return k.add(pageBase, k.add(k.mul(slot, c.heads * rowBytes(c)),
                                 k.idx(c.dataOffset)));
  }

  static int64_t rowBytes(const ComponentLayout &c) {
    return c.dim * c.bits() / 8;
  }
  /// Whether V rows are separate from K rows (not MLA) and get prefetched.
  bool prefetchValues() const { return !spec.mla && valueC.present; }

  /// Lines of one token's rows of every head of `c` (contiguous in a
  /// page): ceil(bytes / 64), one more when they do not start on a line.
  static int64_t tokenLines(const ComponentLayout &c) {
    int64_t bytes = c.heads * rowBytes(c);
    return (bytes + 63) / 64 + (bytes % 64 ? 1 : 0);
  }
  /// Lines of the next block's rows of `c` that each KV head's loops
  /// prefetch: the block's lines divided among the heads.
  int64_t headShare(const ComponentLayout &c) const {
    return (tb * tokenLines(c) + c.heads - 1) / c.heads;
  }
  /// Prefetches iteration `it`'s part of head kh's share of the next
  /// block's lines of `c`, whose tokens' head-0 rows are at byte offsets
  /// `aheadTable` ([tb]), for loops running `iters` iterations per head.
  ///
  /// The lines are taken in address order, token after token and every
  /// head of a token (the page layout), not head kh's rows: memory then
  /// sees one sequential stream per page, and each head's reads in the
  /// next block hit lines fetched during this one. Measured on Zen 3 with
  /// shuffled 64 KiB pages read head by head, 2 threads
  /// (tools/kvopt-bench/profile/prefetch-order.cpp): 19-20 GB/s in
  /// address order against 13-15 for the same lines in head order
  /// (docs/CPU.md). With more iterations than lines, line
  /// floor(it * share / iters) (each line a few times, evenly spread).
  void prefetchShare(const ComponentLayout &c, Value aheadTable, Value kh,
                     Value it, int64_t iters) {
    int64_t lines = tokenLines(c), total = tb * lines, share = headShare(c);
    int64_t bytes = c.heads * rowBytes(c);
    int64_t per = std::max<int64_t>(1, (share + iters - 1) / iters);
    Value first = k.mul(kh, share);
    auto prefetch = [&](Value at) {
      memref::PrefetchOp::create(b, cache.bytes, ValueRange{at},
                                 /*isWrite=*/false, prefetchLocality(),
                                 /*isDataCache=*/true);
    };
    // The common case, cheaply: the heads' shares and the iterations'
    // parts tile the block exactly, and each part lies in one token's rows.
    if (per > 1 && iters * per == share && c.heads * share == total &&
        lines % per == 0 && bytes % 64 == 0) {
      Value i0 = k.add(first, k.mul(it, per));
      Value t = k.div(i0, lines);
      Value row =
          k.add(load(aheadTable, {t}), k.mul(k.sub(i0, k.mul(t, lines)), 64));
      for (int64_t j = 0; j < per; ++j)
        prefetch(k.add(row, k.idx(j * 64)));
      return;
    }
    for (int64_t j = 0; j < per; ++j) {
      Value local = per == 1 ? k.div(k.mul(it, share), iters)
                             : k.add(k.mul(it, per), k.idx(j));
      Value i =
          k.min(k.add(first, k.min(local, k.idx(share - 1))), k.idx(total - 1));
      Value t = k.div(i, lines);
      Value at = k.min(k.mul(k.sub(i, k.mul(t, lines)), 64), k.idx(bytes - 1));
      prefetch(k.add(load(aheadTable, {t}), at));
    }
  }
  /// The next block's V lines, from the value loops of head kh: row tile
  /// `tile` of `tiles`, channel slice `slice` of `slices`, each running
  /// tb / 2 token-pair iterations. Called once per slice (tp null) and
  /// once per pair; prefetches at the pair level when that is at least 4
  /// lines a pair, else per slice (fewer address computations; the order
  /// of the lines is what counts, see prefetchShare).
  void prefetchValueShare(Value kh, Value tile, int64_t tiles, Value slice,
                          int64_t slices, Value tp) {
    if (!prefetchValues())
      return;
    int64_t pairs = tb / 2;
    Value it = k.add(k.mul(tile, slices), slice);
    bool perPair = 4 * tiles * slices * pairs <= headShare(valueC);
    if (tp && perPair)
      prefetchShare(valueC, aheadValue, kh, k.add(k.mul(it, pairs), tp),
                    tiles * slices * pairs);
    else if (!tp && !perPair)
      prefetchShare(valueC, aheadValue, kh, it, tiles * slices);
  }
  /// Locality hint of the spread prefetches: 3 (into L1). Few lines are in
  /// flight at a time, so they do not evict the block being read; measured
  /// on Zen 3 at 32k (f16, mean of 6 alternating runs): 10.1 GB/s against
  /// 8.8 with hint 2 (L2).
  static constexpr int prefetchLocality() { return 3; }

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

  /// The R x T vector<lanes x f32> partial dot products of rows [r0, r0 +
  /// R) with block tokens `tok`, in f32: K chunks converted (or staged) and
  /// multiplied with the f32 queries.
  SmallVector<Value> floatPartials(Value kh, Value tile, Value r0,
                                   ArrayRef<Value> tok) {
    int64_t R = scoreRows, T = tok.size();
    SmallVector<Value> data;
    for (Value t : tok)
      data.push_back(stageK ? Value() : rowData(keyC, t, kh));
    SmallVector<Value> init(R * T, k.splat(k.f32(0), lanes));
    return forWithArgs(
        k, k.idx(0), k.idx(dk / lanes), init,
        [&](Value c, ValueRange acc) {
          Value lane = k.mul(c, lanes);
          SmallVector<Value> q, key;
          for (int64_t r = 0; r < R; ++r)
            q.push_back(loadVec(task.qs, {k.add(r0, k.idx(r)), lane}, lanes));
          for (int64_t t = 0; t < T; ++t)
            key.push_back(
                chunk(keyC, keyStage, foldK, tok[t], kh, data[t], lane));
          SmallVector<Value> next;
          for (int64_t r = 0; r < R; ++r)
            for (int64_t t = 0; t < T; ++t)
              next.push_back(
                  math::FmaOp::create(b, q[r], key[t], acc[r * T + t]));
          return next;
        },
        /*unroll=*/tileOf(dk / lanes, 16));
  }

  /// Scores of head kh's rows over the block into sc (-inf where hidden).
  /// A register tile of scoreRows x scoreTokens partial vectors (from
  /// `partials`) is parked in `part`; each run of `lanes` tokens is then
  /// reduced together, and `finish(r, lr, t0, s)` turns the sums of row r
  /// (local row lr) for tokens [t0, t0 + lanes) into scores.
  void
  scores(Value kh, Value cnt,
         const std::function<SmallVector<Value>(Value, Value, ArrayRef<Value>)>
             &partials,
         const std::function<Value(Value, Value, Value, Value)> &finish) {
    int64_t R = scoreRows, T = scoreTokens;
    Value zero = k.idx(0);
    k.forLoop(0, headRows / R, [&](Value tile) {
      Value lr0 = k.mul(tile, R);
      Value r0 = k.add(k.mul(kh, headRows), lr0);
      k.forLoop(0, tb / T, [&](Value tg) {
        Value t0 = k.mul(tg, T);
        SmallVector<Value> tok;
        for (int64_t t = 0; t < T; ++t)
          tok.push_back(k.add(t0, k.idx(t)));
        // This token group's part of the next block's K lines.
        prefetchShare(keyC, aheadKey, kh, k.add(k.mul(tile, tb / T), tg),
                      (headRows / R) * (tb / T));
        SmallVector<Value> accs = partials(tile, r0, tok);
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
          Value row = k.add(r0, k.idx(r)), lr = k.add(lr0, k.idx(r));
          Value s = finish(row, lr, t0, level[0]);
          Value ok = inRange;
          if (kernel.masked())
            ok = arith::AndIOp::create(
                b, ok, kernel.visibleVec(task.len, kernel.rowQuery(row), keys));
          s = arith::SelectOp::create(b, ok, s, k.splat(k.f32(kNegInf), lanes));
          storeVec(s, sc, {lr, t0});
        }
      });
    });
  }

  /// Scores on the f32 path (folded row scales applied after the sums).
  void floatScores(Value kh, Value cnt) {
    scores(
        kh, cnt,
        [&](Value tile, Value r0, ArrayRef<Value> tok) {
          return floatPartials(kh, tile, r0, tok);
        },
        [&](Value, Value, Value t0, Value s) -> Value {
          if (!foldK)
            return s;
          return arith::MulFOp::create(
              b, s, loadVec(kScales, {kh, k.idx(0), t0}, lanes));
        });
  }

  //===--------------------------------------------------------------===//
  // Fixed-point path
  //===--------------------------------------------------------------===//

  /// Pairwise product of two vector<2n x i16>: lane i of the result is
  /// a[2i] * b[2i] + a[2i + 1] * b[2i + 1] in i32 (vpmaddwd on x86; the
  /// sum of two products of 16-bit values cannot overflow).
  Value pairDot(Value x, Value y) {
    int64_t n = cast<VectorType>(x.getType()).getNumElements();
    auto wide = k.vec(n, b.getI32Type());
    Value p = arith::MulIOp::create(b, arith::ExtSIOp::create(b, wide, x),
                                    arith::ExtSIOp::create(b, wide, y));
    SmallVector<int64_t> even, odd;
    for (int64_t i = 0; i < n / 2; ++i) {
      even.push_back(2 * i);
      odd.push_back(2 * i + 1);
    }
    return arith::AddIOp::create(b, vector::ShuffleOp::create(b, p, p, even),
                                 vector::ShuffleOp::create(b, p, p, odd));
  }

  /// The 8 / bits planes of the codes in `raw` (vector<n x i8>): plane m
  /// lane j holds the code of channel (8 / bits) * j + m, sign-extended for
  /// symmetric encodings (docs/CacheLayout.md packing).
  SmallVector<Value> planesOf(const ComponentLayout &c, Value raw) {
    int64_t bits = c.bits(),
            n = cast<VectorType>(raw.getType()).getNumElements();
    if (bits == 8)
      return {raw};
    auto cst = [&](int64_t v) {
      return arith::ConstantOp::create(
          b, DenseElementsAttr::get(k.vec(n, b.getI8Type()),
                                    b.getI8IntegerAttr(v)));
    };
    SmallVector<Value> planes;
    for (int64_t m = 0; m < 8 / bits; ++m) {
      if (c.quant.getSymmetric())
        planes.push_back(arith::ShRSIOp::create(
            b, arith::ShLIOp::create(b, raw, cst(8 - bits * (m + 1))),
            cst(8 - bits)));
      else
        planes.push_back(arith::AndIOp::create(
            b, arith::ShRUIOp::create(b, raw, cst(bits * m)),
            cst((1 << bits) - 1)));
    }
    return planes;
  }
  /// Codes (i8) extended to i16: signed for symmetric encodings.
  Value widen(const ComponentLayout &c, Value codes) {
    int64_t n = cast<VectorType>(codes.getType()).getNumElements();
    auto type = k.vec(n, b.getI16Type());
    if (c.quant.getSymmetric())
      return arith::ExtSIOp::create(b, type, codes);
    return arith::ExtUIOp::create(b, type, codes);
  }
  /// Concatenation of equally long vectors.
  Value concat(ArrayRef<Value> parts) {
    SmallVector<Value> level(parts.begin(), parts.end());
    while (level.size() > 1) {
      SmallVector<Value> next;
      for (size_t i = 0; i < level.size(); i += 2) {
        int64_t n = cast<VectorType>(level[i].getType()).getNumElements();
        SmallVector<int64_t> mask;
        for (int64_t l = 0; l < 2 * n; ++l)
          mask.push_back(l);
        next.push_back(
            vector::ShuffleOp::create(b, level[i], level[i + 1], mask));
      }
      level = next;
    }
    return level[0];
  }
  /// Channel (within its chunk) of lane `lane` of a K chunk: the chunk's
  /// planes one after the other.
  int64_t keyChannelOfLane(int64_t lane) const {
    int64_t planes = 8 / keyC.bits(), perPlane = kChunk / planes;
    return planes * (lane % perPlane) + lane / perPlane;
  }
  /// K codes of channels [ch, ch + kChunk) of the row at byte `data`, as
  /// vector<kChunk x i16> in keyChannelOfLane order.
  Value keyCodes(Value data, Value ch) {
    int64_t bytes = kChunk * keyC.bits() / 8;
    Value raw =
        k.loadBytes(cache.bytes, k.add(data, k.div(k.mul(ch, keyC.bits()), 8)),
                    k.vec(bytes, b.getI8Type()));
    return widen(keyC, concat(planesOf(keyC, raw)));
  }

  /// Once per task: each query row rounded to 16-bit fixed point with its
  /// own scale (max |q| / 32767), lanes permuted like the K chunks, and
  /// for zero points the row's exact sum per group.
  void prepareQueries() {
    Value zero = k.idx(0);
    auto fm = arith::FastMathFlags::nnan | arith::FastMathFlags::nsz;
    k.forLoop(0, kernel.rows, [&](Value r) {
      Value q = loadVec(task.qs, {r, zero}, dk);
      Value amax = vector::ReductionOp::create(
          b, vector::CombiningKind::MAXNUMF, math::AbsFOp::create(b, q), fm);
      Value any =
          arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, amax, k.f32(0));
      Value scale =
          k.select(any, arith::DivFOp::create(b, amax, k.f32(32767)), k.f32(1));
      Value inv = arith::DivFOp::create(b, k.f32(1), scale);
      memref::StoreOp::create(b, scale, qScale, ValueRange{r});
      SmallVector<int64_t> perm;
      for (int64_t l = 0; l < kChunk; ++l)
        perm.push_back(keyChannelOfLane(l));
      for (int64_t c = 0; c < dk; c += kChunk) {
        Value part = vector::ExtractStridedSliceOp::create(
            b, q, ArrayRef<int64_t>{c}, ArrayRef<int64_t>{kChunk},
            ArrayRef<int64_t>{1});
        part = vector::ShuffleOp::create(b, part, part, perm);
        Value scaled = math::RoundEvenOp::create(
            b, arith::MulFOp::create(b, part, k.splat(inv, kChunk)));
        Value fixed =
            arith::FPToSIOp::create(b, k.vec(kChunk, b.getI16Type()), scaled);
        for (int64_t copy = 0; copy < scoreTokens; ++copy)
          vector::StoreOp::create(b, fixed, qInt,
                                  ValueRange{k.idx(copy), r, k.idx(c)});
      }
      if (qSum) {
        int64_t g = keyC.group();
        for (int64_t gi = 0; gi < kGroups; ++gi) {
          Value part = vector::ExtractStridedSliceOp::create(
              b, q, ArrayRef<int64_t>{gi * g}, ArrayRef<int64_t>{g},
              ArrayRef<int64_t>{1});
          memref::StoreOp::create(b, k.sum(part), qSum,
                                  ValueRange{r, k.idx(gi)});
        }
      }
    });
  }

  /// Per row of head kh: the zero points' part of its scores,
  /// sum_g z[g][t] * (sum of the row's queries over group g).
  void zeroPointTerm(Value kh) {
    Value zero = k.idx(0);
    k.forLoop(0, headRows, [&](Value lr) {
      Value r = k.add(k.mul(kh, headRows), lr);
      Value acc = k.splat(k.f32(0), tb);
      for (int64_t g = 0; g < kGroups; ++g)
        acc = math::FmaOp::create(b, loadVec(kZeros, {kh, k.idx(g), zero}, tb),
                                  k.splat(load(qSum, {r, k.idx(g)}), tb), acc);
      storeVec(acc, zeroTerm, {lr, zero});
    });
  }

  /// Fixed-point partial dot products of rows [r0, r0 + R) with block
  /// tokens `tok`: i32 sums of codes times 16-bit queries over each span
  /// of channels, converted to f32 and, with several groups, scaled by the
  /// token's group scale.
  SmallVector<Value> intPartials(Value kh, Value tile, Value r0,
                                 ArrayRef<Value> tok) {
    int64_t R = scoreRows, T = tok.size();
    int64_t spans = dk / kSpan, chunks = kSpan / kChunk;
    SmallVector<Value> data;
    for (Value t : tok)
      data.push_back(rowData(keyC, t, kh));
    Value zero = k.idx(0);
    SmallVector<Value> izero(R * T, k.splat(k.i32(0), lanes));
    auto spanSums = [&](Value sp) {
      return forWithArgs(
          k, zero, k.idx(chunks), izero, [&](Value c, ValueRange acc) {
            Value it = k.add(k.mul(sp, chunks), c);
            Value ch = k.mul(it, kChunk);
            SmallVector<Value> key;
            for (int64_t t = 0; t < T; ++t)
              key.push_back(keyCodes(data[t], ch));
            SmallVector<Value> next;
            for (int64_t r = 0; r < R; ++r)
              for (int64_t t = 0; t < T; ++t) {
                Value q = vector::LoadOp::create(
                    b, k.vec(kChunk, b.getI16Type()), qInt,
                    ValueRange{k.idx(t), k.add(r0, k.idx(r)), ch});
                next.push_back(arith::AddIOp::create(b, acc[r * T + t],
                                                     pairDot(q, key[t])));
              }
            return next;
          });
    };
    auto toFloat = [&](Value v) {
      return arith::SIToFPOp::create(b, k.vec(lanes, f32), v).getResult();
    };
    if (spans == 1) {
      SmallVector<Value> sums = spanSums(zero), out;
      for (Value v : sums)
        out.push_back(toFloat(v));
      return out;
    }
    SmallVector<Value> fzero(R * T, k.splat(k.f32(0), lanes));
    return forWithArgs(
        k, zero, k.idx(spans), fzero, [&](Value sp, ValueRange acc) {
          SmallVector<Value> sums = spanSums(sp), next;
          Value g = k.div(k.mul(sp, kSpan), keyC.group());
          for (int64_t r = 0; r < R; ++r)
            for (int64_t t = 0; t < T; ++t) {
              Value f = toFloat(sums[r * T + t]);
              if (kGroups == 1) {
                next.push_back(arith::AddFOp::create(b, acc[r * T + t], f));
                continue;
              }
              Value s = k.splat(load(kScales, {kh, g, tok[t]}), lanes);
              next.push_back(math::FmaOp::create(b, f, s, acc[r * T + t]));
            }
          return next;
        });
  }

  /// Scores on the fixed-point path: sums times the query row's scale
  /// (and the token's scale for one group per row), plus the zero points.
  void intScores(Value kh, Value cnt) {
    if (kZeros)
      zeroPointTerm(kh);
    scores(
        kh, cnt,
        [&](Value tile, Value r0, ArrayRef<Value> tok) {
          return intPartials(kh, tile, r0, tok);
        },
        [&](Value r, Value lr, Value t0, Value s) -> Value {
          s = arith::MulFOp::create(b, s, k.splat(load(qScale, {r}), lanes));
          if (kGroups == 1)
            s = arith::MulFOp::create(
                b, s, loadVec(kScales, {kh, k.idx(0), t0}, lanes));
          if (zeroTerm)
            s = arith::AddFOp::create(b, s, loadVec(zeroTerm, {lr, t0}, lanes));
          return s;
        });
  }

  /// acc[r] = acc[r] * alpha[r] + sum_t p[r][t] * V[t] for head kh on the
  /// fixed-point path: per row and group, the weights p * s (s the token's
  /// group scale) are rounded to 16-bit fixed point with the largest one
  /// at weightMax; codes of token pairs, interleaved per channel, are
  /// multiplied with the pairs' weights and summed exactly in i32 over the
  /// block; the sums are converted once per block, times the weights'
  /// scale, plus sum_t p * z for zero points.
  void intValues(Value kh) {
    int64_t R = valueRows, planes = vUnit / lanes, width = vUnits * vUnit;
    int64_t g = valueC.group();
    Value zero = k.idx(0);
    auto fm = arith::FastMathFlags::nnan | arith::FastMathFlags::nsz;
    k.forLoop(0, headRows / R, [&](Value tile) {
      Value lr0 = k.mul(tile, R);
      Value r0 = k.add(k.mul(kh, headRows), lr0);
      // Weights of the tile's rows, per group.
      for (int64_t rr = 0; rr < R; ++rr) {
        Value p = loadVec(sc, {k.add(lr0, k.idx(rr)), zero}, tb);
        k.forLoop(0, vGroups, [&](Value gi) {
          Value w =
              arith::MulFOp::create(b, p, loadVec(vScales, {kh, gi, zero}, tb));
          Value wmax = vector::ReductionOp::create(
              b, vector::CombiningKind::MAXNUMF, w, fm);
          Value any = arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, wmax,
                                            k.f32(0));
          Value scale = k.select(
              any, arith::DivFOp::create(b, wmax, k.f32(double(weightMax))),
              k.f32(1));
          Value inv = arith::DivFOp::create(b, k.f32(1), scale);
          Value fixed = arith::FPToSIOp::create(
              b, k.vec(tb, b.getI16Type()),
              math::RoundEvenOp::create(
                  b, arith::MulFOp::create(b, w, k.splat(inv, tb))));
          vector::StoreOp::create(b, fixed, wInt,
                                  ValueRange{k.idx(rr), gi, zero});
          memref::StoreOp::create(b, scale, wScale, ValueRange{k.idx(rr), gi});
          if (wZero)
            memref::StoreOp::create(
                b,
                k.sum(arith::MulFOp::create(
                    b, p, loadVec(vZeros, {kh, gi, zero}, tb))),
                wZero, ValueRange{k.idx(rr), gi});
        });
      }
      k.forLoop(0, dv / width, [&](Value slice) {
        Value lane0 = k.mul(slice, width);
        prefetchValueShare(kh, tile, headRows / R, slice, dv / width, {});
        // The slice lies in one group when the group is a multiple of it.
        bool oneGroup = g % width == 0;
        SmallVector<Value> izero(R * vUnits * planes, k.splat(k.i32(0), lanes));
        SmallVector<Value> sums = forWithArgs(
            k, zero, k.idx(tb / 2), izero, [&](Value tp, ValueRange acc) {
              Value t0 = k.mul(tp, 2), t1 = k.add(t0, k.idx(1));
              prefetchValueShare(kh, tile, headRows / R, slice, dv / width, tp);
              Value d0 = rowData(valueC, t0, kh), d1 = rowData(valueC, t1, kh);
              // pairs[u][m]: plane m of unit u, the two tokens' codes
              // interleaved per channel.
              SmallVector<Value> pairs;
              for (int64_t u = 0; u < vUnits; ++u) {
                Value at = k.div(
                    k.mul(k.add(lane0, k.idx(u * vUnit)), valueC.bits()), 8);
                auto bytesOf = [&](Value d) {
                  return k.loadBytes(cache.bytes, k.add(d, at),
                                     k.vec(lanes, b.getI8Type()));
                };
                SmallVector<Value> p0 = planesOf(valueC, bytesOf(d0));
                SmallVector<Value> p1 = planesOf(valueC, bytesOf(d1));
                for (int64_t m = 0; m < planes; ++m)
                  pairs.push_back(widen(
                      valueC, vector::InterleaveOp::create(b, p0[m], p1[m])));
              }
              SmallVector<Value> next;
              for (int64_t rr = 0; rr < R; ++rr) {
                Value wpair;
                for (int64_t u = 0; u < vUnits; ++u) {
                  if (!wpair || !oneGroup) {
                    Value gi = k.div(k.add(lane0, k.idx(u * vUnit)), g);
                    Value two = vector::LoadOp::create(
                        b, k.vec(2, b.getI16Type()), wInt,
                        ValueRange{k.idx(rr), gi, t0});
                    Value word = vector::ExtractOp::create(
                        b,
                        vector::BitCastOp::create(b, k.vec(1, b.getI32Type()),
                                                  two),
                        ArrayRef<int64_t>{0});
                    wpair = vector::BitCastOp::create(
                        b, k.vec(2 * lanes, b.getI16Type()),
                        k.splat(word, lanes));
                  }
                  for (int64_t m = 0; m < planes; ++m) {
                    int64_t at = (rr * vUnits + u) * planes + m;
                    next.push_back(arith::AddIOp::create(
                        b, acc[at], pairDot(pairs[u * planes + m], wpair)));
                  }
                }
              }
              return next;
            });
        // Once per block: planes back in channel order, converted, scaled.
        for (int64_t rr = 0; rr < R; ++rr) {
          Value lr = k.add(lr0, k.idx(rr)), r = k.add(r0, k.idx(rr));
          Value alpha = k.splat(load(alphas, {lr}), vUnit);
          for (int64_t u = 0; u < vUnits; ++u) {
            Value ch = k.add(lane0, k.idx(u * vUnit));
            Value gi = k.div(ch, g);
            SmallVector<Value> f;
            for (int64_t m = 0; m < planes; ++m)
              f.push_back(arith::SIToFPOp::create(
                  b, k.vec(lanes, f32), sums[(rr * vUnits + u) * planes + m]));
            Value natural =
                planes == 1 ? f[0]
                : planes == 2
                    ? Value(vector::InterleaveOp::create(b, f[0], f[1]))
                    : Value(vector::InterleaveOp::create(
                          b, vector::InterleaveOp::create(b, f[0], f[2]),
                          vector::InterleaveOp::create(b, f[1], f[3])));
            Value scaled = arith::MulFOp::create(
                b, natural, k.splat(load(wScale, {k.idx(rr), gi}), vUnit));
            if (wZero)
              scaled = arith::AddFOp::create(
                  b, scaled, k.splat(load(wZero, {k.idx(rr), gi}), vUnit));
            Value old = loadVec(task.acc, {r, ch}, vUnit);
            storeVec(math::FmaOp::create(b, old, alpha, scaled), task.acc,
                     {r, ch});
          }
        }
      });
    });
  }

  /// Online-softmax step of head kh's rows: sc becomes the weights and
  /// alphas the accumulators' rescales. The same step as
  /// AttentionKernel::softmaxStep, with the head's rescales exp(m_old -
  /// m_new) computed as one vector instead of one scalar exp per row.
  void softmax(Value kh) {
    Value zero = k.idx(0);
    Value r0 = k.mul(kh, headRows);
    auto fm = arith::FastMathFlags::nnan | arith::FastMathFlags::nsz;
    // Each row's new running max (maxnum: a NaN score still reaches the
    // output through its weight).
    k.forLoop(0, headRows, [&](Value lr) {
      Value sv = loadVec(sc, {lr, zero}, tb);
      Value blockMax = vector::ReductionOp::create(
          b, vector::CombiningKind::MAXNUMF, sv, fm);
      Value mOld = load(task.m, {k.add(r0, lr)});
      memref::StoreOp::create(b,
                              arith::MaxNumFOp::create(b, mOld, blockMax, fm),
                              newMax, ValueRange{lr});
    });
    Value mOld = loadVec(task.m, {r0}, headRows);
    Value mNew = loadVec(newMax, {zero}, headRows);
    // A row that has seen no visible key keeps -inf: its weights and
    // rescale are then exp(-inf) = 0, not NaN.
    Value none = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mNew,
                                       k.splat(k.f32(kNegInf), headRows));
    Value mUse =
        arith::SelectOp::create(b, none, k.splat(k.f32(0), headRows), mNew);
    storeVec(math::ExpOp::create(b, arith::SubFOp::create(b, mOld, mUse)),
             alphas, {zero});
    storeVec(mNew, task.m, {r0});
    storeVec(mUse, newMax, {zero});
    k.forLoop(0, headRows, [&](Value lr) {
      Value r = k.add(r0, lr);
      Value p = math::ExpOp::create(
          b, arith::SubFOp::create(b, loadVec(sc, {lr, zero}, tb),
                                   k.splat(load(newMax, {lr}), tb)));
      storeVec(p, sc, {lr, zero});
      Value l = arith::AddFOp::create(
          b, arith::MulFOp::create(b, load(task.l, {r}), load(alphas, {lr})),
          k.sum(p));
      memref::StoreOp::create(b, l, task.l, ValueRange{r});
    });
  }

  /// acc[r] = acc[r] * alpha[r] + sum_t weight[r][t] * V[t] for head kh.
  void values(Value kh) {
    int64_t R = valueRows, width = valueChunks * lanes;
    Value zero = k.idx(0);
    k.forLoop(0, headRows / R, [&](Value tile) {
      Value lr0 = k.mul(tile, R);
      Value r0 = k.add(k.mul(kh, headRows), lr0);
      // Weights times the tokens' value scales, once per row.
      Value w = sc, wRow0 = lr0;
      if (foldV) {
        Value sv = loadVec(vScales, {kh, zero, zero}, tb);
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
        prefetchValueShare(kh, tile, headRows / R, slice, dv / width, {});
        SmallVector<Value> init;
        for (int64_t rr = 0; rr < R; ++rr)
          for (int64_t c = 0; c < valueChunks; ++c)
            init.push_back(arith::MulFOp::create(
                b,
                loadVec(task.acc,
                        {k.add(r0, k.idx(rr)), k.add(lane0, k.idx(c * lanes))},
                        lanes),
                alpha[rr]));
        // Every token of the block: weights past the end are 0 and their
        // rows are the last key's (a static trip count LLVM can unroll).
        // Two tokens per iteration (blocks are whole vectors of lanes, so
        // even): half the loop control and address arithmetic.
        SmallVector<Value> accs = forWithArgs(
            k, zero, k.idx(tb / 2), init, [&](Value tp, ValueRange acc) {
              SmallVector<Value> next(acc.begin(), acc.end());
              prefetchValueShare(kh, tile, headRows / R, slice, dv / width, tp);
              for (int64_t half = 0; half < 2; ++half) {
                Value t = k.add(k.mul(tp, 2), k.idx(half));
                Value data = stageV ? Value() : rowData(valueC, t, kh);
                SmallVector<Value> v;
                for (int64_t c = 0; c < valueChunks; ++c)
                  v.push_back(chunk(valueC, valueStage, foldV, t, kh, data,
                                    k.add(lane0, k.idx(c * lanes))));
                for (int64_t rr = 0; rr < R; ++rr) {
                  Value p =
                      k.splat(load(w, {k.add(wRow0, k.idx(rr)), t}), lanes);
                  for (int64_t c = 0; c < valueChunks; ++c) {
                    Value &a = next[rr * valueChunks + c];
                    a = math::FmaOp::create(b, p, v[c], a);
                  }
                }
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
    if (intK)
      prepareQueries();
    Value zero = k.idx(0);
    scf::ForOp::create(b, zero, task.n, k.idx(tb), ValueRange{},
                       [&](OpBuilder &nested, Location, Value blk, ValueRange) {
                         OpBuilder::InsertionGuard guard(b);
                         b.setInsertionPoint(nested.getInsertionBlock(),
                                             nested.getInsertionPoint());
                         Value cnt = k.min(k.idx(tb), k.sub(task.n, blk));
                         fillTables(blk);
                         k.forLoop(0, spec.kvHeads, [&](Value kh) {
                           if (stageK)
                             stageRows(keyC, keyStage, kh, dk);
                           if (intK)
                             intScores(kh, cnt);
                           else
                             floatScores(kh, cnt);
                           softmax(kh);
                           if (stageV && !spec.mla)
                             stageRows(valueC, valueStage, kh, dv);
                           if (intV)
                             intValues(kh);
                           else
                             values(kh);
                         });
                         scf::YieldOp::create(b);
                       });
  }
};
} // namespace

void AttentionKernel::buildBlockedLoop(const Task &task) {
  BlockedLoop(*this, task).build();
}
