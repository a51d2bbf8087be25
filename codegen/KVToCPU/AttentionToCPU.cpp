//===- AttentionToCPU.cpp - kv.attention and kv.merge_states on the CPU ---===//
//
// The split-KV, GQA-grouped decode/prefill attention kernel with fused
// dequantization, and the merge of partial (output, log-sum-exp) states.
//
//===----------------------------------------------------------------------===//
//
// Kernel structure (one scf.parallel task per sequence b and key split s):
//
//   rows r = (h, i): every query head times the Tq query rows; for each
//   token and KV head kh, the K/V row is read once and used by the G * Tq
//   rows of kh's group; the token's KV heads are read in page order;
//   for each block of `block-tokens` visible keys:
//     scores[r][t] = scale * q_r . dequant(K_t)          (masked: -inf)
//     m_r' = max(m_r, max_t scores), alpha = exp(m_r - m_r')
//     p = exp(scores - m_r'), l_r = l_r * alpha + sum p, acc_r *= alpha
//     acc_r += p[r][t] * dequant(V_t)
//   partial state: o = acc / l, lse = m + log l  (-inf, 0 when l = 0).
//
// With S > 1 splits a second scf.parallel over (b, row) merges the S
// partial states per row exactly as kv.merge_states does.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace kvopt;
using namespace kvopt::cpu;

static constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::string AttentionSpec::str() const {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "paged=" << layout.paged << " page=" << layout.pageSize
     << " pageBytes=" << layout.pageBytes << " win=" << layout.windowBytes;
  for (const ComponentLayout *c : {&layout.key, &layout.value}) {
    os << " [" << c->present << " " << c->element << " ";
    if (c->quant)
      os << c->quant;
    os << " " << c->heads << "x" << c->dim << " " << c->dataOffset << ","
       << c->scaleOffset << "," << c->zeroOffset << "," << c->windowOffset
       << "]";
  }
  os << " hq=" << queryHeads << " tq=" << queryRows << " hkv=" << kvHeads
     << " dk=" << keyDim << " dv=" << valueDim << " mla=" << mla
     << " latent=" << latentDim << " q=" << queryElement
     << " o=" << outputElement << " lse=" << lse << " causal=" << causal
     << " window=" << window << " sinks=" << sinks << " scale=" << scale
     << " splits=" << splits << " splitTokens=" << splitTokens
     << " block=" << blockTokens;
  return s;
}

int64_t kvopt::cpu::chooseSplits(const KernelOptions &options,
                                 int64_t capacity) {
  if (options.splits > 0)
    return options.splits;
  int64_t splits = (capacity + options.splitTokens - 1) / options.splitTokens;
  return std::max<int64_t>(1, std::min<int64_t>(splits, 64));
}

/// f32 vector<n> of -inf / 0.
static Value splatF32(KB &k, float v, int64_t n) {
  return k.splat(k.f32(v), n);
}

namespace {
/// The per-task state and code of one attention kernel.
struct AttentionKernel {
  const AttentionSpec &spec;
  KB &k;
  ImplicitLocOpBuilder &b;
  SmallVector<Value> queries;
  CacheAccess cache;
  Value lens, out, lse, wsOut, wsLse;
  int64_t group = 0, rows = 0;

  AttentionKernel(const AttentionSpec &spec, KB &k, ValueRange args)
      : spec(spec), k(k), b(k.b) {
    unsigned a = 0;
    queries.push_back(args[a++]);
    if (spec.mla)
      queries.push_back(args[a++]);
    cache.layout = spec.layout;
    cache.bytes = args[a++];
    lens = args[a++];
    if (spec.layout.paged)
      cache.blockTable = args[a++];
    out = args[a++];
    if (spec.lse)
      lse = args[a++];
    if (spec.splits > 1) {
      wsOut = args[a++];
      wsLse = args[a++];
    }
    group = spec.queryHeads / spec.kvHeads;
    rows = spec.queryHeads * spec.queryRows;
  }

  /// Query row (head, i) of sequence b as vector<keyDim x f32>, times scale.
  Value loadQuery(Value bi, Value head, Value i) {
    Value q;
    if (!spec.mla) {
      q = k.toF32(vector::LoadOp::create(
          b, k.vec(spec.keyDim, spec.queryElement), queries[0],
          ValueRange{bi, head, i, k.idx(0)}));
    } else {
      int64_t rope = spec.keyDim - spec.latentDim;
      Value ql = k.toF32(vector::LoadOp::create(
          b, k.vec(spec.latentDim, spec.queryElement), queries[0],
          ValueRange{bi, head, i, k.idx(0)}));
      Value qr = k.toF32(
          vector::LoadOp::create(b, k.vec(rope, spec.queryElement), queries[1],
                                 ValueRange{bi, head, i, k.idx(0)}));
      q = splatF32(k, 0, spec.keyDim);
      q = vector::InsertStridedSliceOp::create(b, ql, q, ArrayRef<int64_t>{0},
                                               ArrayRef<int64_t>{1});
      q = vector::InsertStridedSliceOp::create(
          b, qr, q, ArrayRef<int64_t>{spec.latentDim}, ArrayRef<int64_t>{1});
    }
    return arith::MulFOp::create(b, q, splatF32(k, spec.scale, spec.keyDim));
  }

  /// Whether key `j` is visible to query row i (only emitted when a mask
  /// can hide keys inside the iterated ranges).
  Value visible(Value len, Value i, Value j) {
    Value pos = k.add(k.sub(len, k.idx(spec.queryRows)), i);
    Value ok;
    if (spec.causal && spec.queryRows > 1)
      ok = arith::CmpIOp::create(b, arith::CmpIPredicate::sle, j, pos);
    if (spec.window > 0) {
      Value inWindow = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, j,
                                             k.sub(pos, k.idx(spec.window)));
      if (spec.sinks > 0)
        inWindow =
            arith::OrIOp::create(b, inWindow, k.lt(j, k.idx(spec.sinks)));
      ok = ok ? Value(arith::AndIOp::create(b, ok, inWindow)) : inWindow;
    }
    return ok;
  }

  /// The value row of token j (the latent prefix of the key row for MLA).
  Value loadValue(Value pageBase, Value slot, Value winBase, Value j, Value kh,
                  Value len) {
    if (!spec.mla)
      return cache.loadRow(k, spec.layout.value, pageBase, slot, winBase, j, kh,
                           len);
    Value row =
        cache.loadRow(k, spec.layout.key, pageBase, slot, winBase, j, kh, len);
    return vector::ExtractStridedSliceOp::create(
        b, row, ArrayRef<int64_t>{0}, ArrayRef<int64_t>{spec.valueDim},
        ArrayRef<int64_t>{1});
  }

  /// Width of the score partials of the blocked path: one zmm of f32.
  static constexpr int64_t kLanes = 16;

  /// Whether the block can take the blocked path: a block is exactly one
  /// partial vector of tokens and rows split into whole kLanes pieces.
  bool blocked() const {
    return spec.blockTokens == kLanes && spec.keyDim % kLanes == 0 &&
           spec.valueDim % kLanes == 0;
  }

  /// Largest power of two <= cap dividing n.
  static int64_t tileOf(int64_t n, int64_t cap) {
    int64_t t = 1;
    while (t * 2 <= cap && n % (t * 2) == 0)
      t *= 2;
    return t;
  }

  /// One level of the transposed reduction: `x` and `y` each hold m
  /// tokens, token i in lanes [i * w, (i + 1) * w) with w = kLanes / m; the
  /// result holds x's tokens then y's, w / 2 lanes each, with the same sums.
  Value combine(Value x, Value y, int64_t m) {
    int64_t w = kLanes / m, h = w / 2;
    SmallVector<int64_t> lo, hi;
    for (int64_t src = 0; src < 2; ++src)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t l = 0; l < h; ++l) {
          lo.push_back(src * kLanes + i * w + l);
          hi.push_back(src * kLanes + i * w + h + l);
        }
    return arith::AddFOp::create(b, vector::ShuffleOp::create(b, x, y, lo),
                                 vector::ShuffleOp::create(b, x, y, hi));
  }

  /// `visible` for a vector of kLanes key positions `j`.
  Value visibleVec(Value len, Value i, Value j) {
    auto splat = [&](Value v) { return k.splat(v, kLanes); };
    auto cmp = [&](arith::CmpIPredicate p, Value x, Value y) -> Value {
      return arith::CmpIOp::create(b, p, x, y);
    };
    Value pos = k.add(k.sub(len, k.idx(spec.queryRows)), i);
    Value ok;
    if (spec.causal && spec.queryRows > 1)
      ok = cmp(arith::CmpIPredicate::sle, j, splat(pos));
    if (spec.window > 0) {
      Value inWindow = cmp(arith::CmpIPredicate::sgt, j,
                           splat(k.sub(pos, k.idx(spec.window))));
      if (spec.sinks > 0)
        inWindow = arith::OrIOp::create(
            b, inWindow,
            cmp(arith::CmpIPredicate::slt, j, splat(k.idx(spec.sinks))));
      ok = ok ? Value(arith::AndIOp::create(b, ok, inWindow)) : inWindow;
    }
    return ok;
  }

  /// Lanes [lane0, lane0 + width) of token j's value row.
  Value loadValueSlice(Value pageBase, Value slot, Value winBase, Value j,
                       Value kh, Value len, int64_t lane0, int64_t width) {
    // MLA: the value is the latent prefix of the key row.
    const ComponentLayout &c = spec.mla ? spec.layout.key : spec.layout.value;
    return cache.loadRowSlice(k, c, pageBase, slot, winBase, j, kh, len, lane0,
                              width);
  }

  /// Body of one (b, s) task. Every KV head of a token is processed in
  /// the same task: a page's token-major rows are then read sequentially,
  /// which the hardware prefetchers follow (per-head tasks would stride by
  /// Hkv * D elements and wait on every line).
  void buildTask(Value bi, Value s) {
    auto f32 = b.getF32Type();
    int64_t dk = spec.keyDim, dv = spec.valueDim, tb = spec.blockTokens;
    Value qs = memref::AllocaOp::create(b, MemRefType::get({rows, dk}, f32));
    Value acc = memref::AllocaOp::create(b, MemRefType::get({rows, dv}, f32));
    Value m = memref::AllocaOp::create(b, MemRefType::get({rows}, f32));
    Value l = memref::AllocaOp::create(b, MemRefType::get({rows}, f32));
    Value sc = memref::AllocaOp::create(b, MemRefType::get({rows, tb}, f32));
    Value zero = k.idx(0);
    Value len = k.loadIndex(lens, {bi});

    // This split's keys.
    Value chunk =
        k.max(k.ceilDiv(len, k.idx(spec.splits)), k.idx(spec.splitTokens));
    Value kBegin = k.min(k.mul(s, chunk), len);
    Value kEnd = k.min(k.add(kBegin, chunk), len);

    // Row r = h * Tq + i reads query head h, which reads KV head h / G;
    // KV head kh owns rows [kh * G * Tq, (kh + 1) * G * Tq).
    int64_t headRows = group * spec.queryRows;
    auto rowHead = [&](Value r) { return k.div(r, spec.queryRows); };
    auto rowQuery = [&](Value r) { return k.rem(r, spec.queryRows); };
    k.forLoop(0, rows, [&](Value r) {
      Value q = loadQuery(bi, rowHead(r), rowQuery(r));
      vector::StoreOp::create(b, q, qs, ValueRange{r, zero});
      vector::StoreOp::create(b, splatF32(k, 0, dv), acc, ValueRange{r, zero});
      memref::StoreOp::create(b, k.f32(kNegInf), m, ValueRange{r});
      memref::StoreOp::create(b, k.f32(0), l, ValueRange{r});
    });

    // Iterated keys: sinks [lo1, hi1) then the window [lo2, kEnd); without a
    // window the first range is empty.
    Value lo1 = kBegin, n1 = zero, lo2 = kBegin;
    if (spec.window > 0) {
      Value hi1 = k.min(kEnd, k.idx(spec.sinks));
      n1 = k.max(k.sub(hi1, lo1), zero);
      Value first =
          k.sub(k.sub(len, k.idx(spec.queryRows)), k.idx(spec.window - 1));
      lo2 = k.max(kBegin, k.max(k.idx(spec.sinks), first));
    }
    Value n = k.add(n1, k.max(k.sub(kEnd, lo2), zero));
    auto tokenAt = [&](Value u) {
      return k.select(k.lt(u, n1), k.add(lo1, u), k.sub(k.add(lo2, u), n1));
    };
    Value winBase = cache.windowBase(k, bi);
    bool masked = (spec.causal && spec.queryRows > 1) || spec.window > 0;
    // Keys ahead to prefetch: one block (into L2, see kPrefetchLocality),
    // far enough to hide a miss; two or three blocks measured no better
    // on the blocked path and up to 10% slower.
    int64_t prefetch = tb;

    // Per-token (per key) path, for any block size and head dim.
    auto oldScores = [&](Value blk, Value cnt) {
      k.forLoop(0, rows, [&](Value r) {
        vector::StoreOp::create(b, splatF32(k, kNegInf, tb), sc,
                                ValueRange{r, zero});
      });
      // Scores: each K row read once for every row of the group.
      k.forLoop(zero, cnt, [&](Value t) {
        Value j = tokenAt(k.add(blk, t));
        auto [pageBase0, slot0] = cache.page(k, bi, j);
        Value pageBase = pageBase0, slot = slot0;
        // Prefetch the token `prefetch` keys ahead (clamped to the
        // split), K and V of every head.
        Value ahead = tokenAt(
            k.min(k.add(k.add(blk, t), k.idx(prefetch)), k.sub(n, k.idx(1))));
        auto [aheadBase, aheadSlot] = cache.page(k, bi, ahead);
        cache.prefetchToken(k, spec.layout.key, aheadBase, aheadSlot);
        if (spec.layout.value.present)
          cache.prefetchToken(k, spec.layout.value, aheadBase, aheadSlot);
        k.forLoop(0, spec.kvHeads, [&](Value kh) {
          Value key = cache.loadRow(k, spec.layout.key, pageBase, slot, winBase,
                                    j, kh, len);
          Value first = k.mul(kh, headRows);
          k.forLoop(first, k.add(first, headRows), [&](Value r) {
            auto store = [&] {
              Value q = vector::LoadOp::create(b, k.vec(dk, f32), qs,
                                               ValueRange{r, zero});
              Value dot = k.sum(arith::MulFOp::create(b, q, key));
              memref::StoreOp::create(b, dot, sc, ValueRange{r, t});
            };
            if (masked)
              k.ifThen(visible(len, rowQuery(r), j), store);
            else
              store();
          });
        });
      });
    };
    auto oldValues = [&](Value blk, Value cnt) {
      // Values: each V row read once for every row of the group.
      k.forLoop(zero, cnt, [&](Value t) {
        Value j = tokenAt(k.add(blk, t));
        auto [pageBase0, slot0] = cache.page(k, bi, j);
        Value pageBase = pageBase0, slot = slot0;
        k.forLoop(0, spec.kvHeads, [&](Value kh) {
          Value v = loadValue(pageBase, slot, winBase, j, kh, len);
          Value first = k.mul(kh, headRows);
          k.forLoop(first, k.add(first, headRows), [&](Value r) {
            Value p = memref::LoadOp::create(b, sc, ValueRange{r, t});
            Value a = vector::LoadOp::create(b, k.vec(dv, f32), acc,
                                             ValueRange{r, zero});
            a = math::FmaOp::create(b, k.splat(p, dv), v, a);
            vector::StoreOp::create(b, a, acc, ValueRange{r, zero});
          });
        });
      });
    };

    // Blocked path (blockTokens == 16, head dims multiples of 16). The
    // block's tokens are resolved to (page, slot, key) once, then per KV
    // head and tile of its rows: 16 tokens are scored into one partial
    // vector each and reduced together (a transposed reduction: 15 adds
    // and 30 shuffles per row instead of 16 horizontal sums), and the
    // values are accumulated in registers over the block, slice by slice.
    bool fast = blocked();
    Value tokPage, tokSlot, tokKey, aheadPage, aheadSlots, alphas;
    if (fast) {
      // Per row, the block's rescale exp(m_old - m_new) of the accumulators.
      alphas = memref::AllocaOp::create(b, MemRefType::get({rows}, f32));
      auto table = MemRefType::get({tb}, b.getIndexType());
      tokPage = memref::AllocaOp::create(b, table);
      tokSlot = memref::AllocaOp::create(b, table);
      tokKey = memref::AllocaOp::create(b, table);
      aheadPage = memref::AllocaOp::create(b, table);
      aheadSlots = memref::AllocaOp::create(b, table);
    }
    const ComponentLayout &keyLayout = spec.layout.key;
    // One symmetric scale per stored row (token axis, group = dim, no
    // window): the scale is taken out of the sums, s * (q . c) for keys and
    // (p * s) * c for values, instead of a multiply per element.
    auto foldable = [&](const ComponentLayout &c) {
      return fast && c.quant && !c.channelAxis() && c.group() == c.dim &&
             !c.hasWindow() && c.quant.getSymmetric();
    };
    bool foldK = foldable(keyLayout);
    bool foldV = !spec.mla && foldable(spec.layout.value);
    bool stageKeys = fast && !foldK && keyLayout.quant &&
                     (keyLayout.bits() < 8 || keyLayout.hasWindow());
    // Per-token scales of the block, [head][token] (f32).
    Value scaleK, scaleV, pScaled;
    auto headTable = MemRefType::get({spec.kvHeads, tb}, f32);
    if (foldK)
      scaleK = memref::AllocaOp::create(b, headTable);
    if (foldV)
      scaleV = memref::AllocaOp::create(b, headTable);
    Value keyStage, parked;
    int64_t scoreTile = tileOf(headRows, 4);
    if (fast) {
      if (stageKeys)
        keyStage = memref::AllocaOp::create(b, MemRefType::get({tb, dk}, f32));
      parked = memref::AllocaOp::create(
          b, MemRefType::get({scoreTile, scoreTile, kLanes}, f32));
    }
    // Rows scored together (scoreTile, at most 4, times 16 / scoreTile
    // tokens = 16 accumulators in registers).
    if (foldV)
      pScaled = memref::AllocaOp::create(
          b, MemRefType::get({tileOf(headRows, 8), tb}, f32));
    // Rows accumulated together and the slice width: the accumulators
    // (valueTile * sliceWidth / 16 zmm) stay in registers over the block.
    int64_t valueTile = tileOf(headRows, 8);
    int64_t sliceWidth = kLanes;
    for (int64_t w = dv; w >= kLanes; w -= kLanes)
      if (dv % w == 0 && w % kLanes == 0 && valueTile * w / kLanes <= 16) {
        sliceWidth = w;
        break;
      }
    // The undequantized codes of lanes [lane0, lane0 + width) of a row.
    auto loadCodes = [&](const ComponentLayout &c, Value pageBase, Value slot,
                         Value head, int64_t lane0, int64_t width) {
      Value row = k.add(k.mul(slot, c.heads), head);
      Value at =
          k.add(pageBase, k.add(k.mul(row, c.dim * c.bits() / 8),
                                k.idx(c.dataOffset + lane0 * c.bits() / 8)));
      return decodeCodes(k, c.quant, cache.bytes, at, width);
    };
    // Token t's scales of every head into table[head][t].
    auto stageScales = [&](const ComponentLayout &c, Value table,
                           Value pageBase, Value slot, Value t) {
      Value at = k.add(pageBase, k.add(k.mul(slot, c.heads * c.scaleBytes()),
                                       k.idx(c.scaleOffset)));
      Value all =
          k.toF32(k.loadBytes(cache.bytes, at, k.vec(c.heads, c.scaleType())));
      for (int64_t h = 0; h < c.heads; ++h)
        memref::StoreOp::create(
            b, vector::ExtractOp::create(b, all, ArrayRef<int64_t>{h}), table,
            ValueRange{k.idx(h), t});
    };
    auto blockScores = [&](Value blk) {
      // Token u of the block, clamped into the iterated range: lanes past
      // the end score a valid key and are masked to -inf below.
      Value last = k.sub(n, k.idx(1));
      k.forLoop(0, tb, [&](Value t) {
        Value u = k.add(blk, t);
        Value j = tokenAt(k.min(u, last));
        auto [pageBase, slot] = cache.page(k, bi, j);
        memref::StoreOp::create(b, pageBase, tokPage, ValueRange{t});
        memref::StoreOp::create(b, slot, tokSlot, ValueRange{t});
        memref::StoreOp::create(b, j, tokKey, ValueRange{t});
        if (foldK)
          stageScales(keyLayout, scaleK, pageBase, slot, t);
        if (foldV)
          stageScales(spec.layout.value, scaleV, pageBase, slot, t);
        // The token `prefetch` keys ahead, prefetched head by head below.
        Value ahead = tokenAt(k.min(k.add(u, k.idx(prefetch)), last));
        auto [aheadBase, aheadSlot] = cache.page(k, bi, ahead);
        memref::StoreOp::create(b, aheadBase, aheadPage, ValueRange{t});
        memref::StoreOp::create(b, aheadSlot, aheadSlots, ValueRange{t});
      });
      auto indexVec = k.vec(tb, b.getIndexType());
      SmallVector<int64_t> iota;
      for (int64_t t = 0; t < tb; ++t)
        iota.push_back(t);
      Value lanes = arith::ConstantOp::create(
          b, DenseElementsAttr::get(indexVec, ArrayRef<int64_t>(iota)));
      Value inRange =
          arith::CmpIOp::create(b, arith::CmpIPredicate::slt, lanes,
                                k.splat(k.min(k.idx(tb), k.sub(n, blk)), tb));
      Value keys;
      if (masked)
        keys = vector::LoadOp::create(b, indexVec, tokKey, ValueRange{zero});
      Value negInf = splatF32(k, kNegInf, tb);
      // Token group: scoreTile * groupTokens partials (16) are the
      // accumulators of a register-blocked product over 16-lane chunks.
      int64_t groupTokens = tb / scoreTile;
      int64_t groups = tb / groupTokens, chunks = dk / kLanes;
      auto chunkType = k.vec(kLanes, f32);
      k.forLoop(0, spec.kvHeads, [&](Value kh) {
        // K and V rows of head kh two blocks ahead: spread over the heads
        // like the reads they precede, instead of every head of 16 tokens
        // in one burst at the start of the block.
        k.forLoop(0, tb, [&](Value t) {
          Value base = memref::LoadOp::create(b, aheadPage, ValueRange{t});
          Value slot = memref::LoadOp::create(b, aheadSlots, ValueRange{t});
          cache.prefetchRow(k, spec.layout.key, base, slot, kh);
          if (spec.layout.value.present)
            cache.prefetchRow(k, spec.layout.value, base, slot, kh);
        });
        auto tokenRow = [&](Value t) {
          Value pageBase = memref::LoadOp::create(b, tokPage, ValueRange{t});
          Value slot = memref::LoadOp::create(b, tokSlot, ValueRange{t});
          Value j = memref::LoadOp::create(b, tokKey, ValueRange{t});
          return std::make_tuple(pageBase, slot, j);
        };
        // Packed codes are unpacked a whole row at a time (wide shifts and
        // interleaves) into an f32 staging block that stays in L1;
        // full-precision and byte codes convert chunk by chunk in place.
        if (stageKeys)
          k.forLoop(0, tb, [&](Value t) {
            auto [pageBase, slot, j] = tokenRow(t);
            Value row = cache.loadRowSlice(k, spec.layout.key, pageBase, slot,
                                           winBase, j, kh, len, 0, dk);
            vector::StoreOp::create(b, row, keyStage, ValueRange{t, zero});
          });
        k.forLoop(0, headRows / scoreTile, [&](Value tile) {
          Value r0 = k.add(k.mul(kh, headRows), k.mul(tile, scoreTile));
          SmallVector<Value> rowsAt;
          for (int64_t rr = 0; rr < scoreTile; ++rr)
            rowsAt.push_back(k.add(r0, k.idx(rr)));
          k.forLoop(0, groups, [&](Value grp) {
            Value t0 = k.mul(grp, groupTokens);
            SmallVector<Value> tok;
            SmallVector<std::tuple<Value, Value, Value>> where;
            for (int64_t t = 0; t < groupTokens; ++t) {
              tok.push_back(k.add(t0, k.idx(t)));
              if (!stageKeys)
                where.push_back(tokenRow(tok[t]));
            }
            SmallVector<Value> part(scoreTile * groupTokens);
            for (int64_t c = 0; c < chunks; ++c) {
              Value col = k.idx(c * kLanes);
              SmallVector<Value> qc, kc;
              for (Value r : rowsAt)
                qc.push_back(vector::LoadOp::create(b, chunkType, qs,
                                                    ValueRange{r, col}));
              for (int64_t t = 0; t < groupTokens; ++t) {
                if (stageKeys) {
                  kc.push_back(vector::LoadOp::create(b, chunkType, keyStage,
                                                      ValueRange{tok[t], col}));
                  continue;
                }
                auto [pageBase, slot, j] = where[t];
                kc.push_back(foldK ? loadCodes(keyLayout, pageBase, slot, kh,
                                               c * kLanes, kLanes)
                                   : cache.loadRowSlice(
                                         k, keyLayout, pageBase, slot, winBase,
                                         j, kh, len, c * kLanes, kLanes));
              }
              for (int64_t rr = 0; rr < scoreTile; ++rr)
                for (int64_t t = 0; t < groupTokens; ++t) {
                  Value &pv = part[rr * groupTokens + t];
                  pv = c == 0
                           ? Value(arith::MulFOp::create(b, qc[rr], kc[t]))
                           : Value(math::FmaOp::create(b, qc[rr], kc[t], pv));
                }
            }
            // The group's tokens reduced together, parked per row.
            for (int64_t rr = 0; rr < scoreTile; ++rr) {
              SmallVector<Value> level(part.begin() + rr * groupTokens,
                                       part.begin() + (rr + 1) * groupTokens);
              for (int64_t m = 1; m < groupTokens; m *= 2) {
                SmallVector<Value> next;
                for (size_t i = 0; i < level.size(); i += 2)
                  next.push_back(combine(level[i], level[i + 1], m));
                level = next;
              }
              vector::StoreOp::create(b, level[0], parked,
                                      ValueRange{k.idx(rr), grp, zero});
            }
          });
          for (int64_t rr = 0; rr < scoreTile; ++rr) {
            SmallVector<Value> level;
            for (int64_t g = 0; g < groups; ++g)
              level.push_back(vector::LoadOp::create(
                  b, chunkType, parked, ValueRange{k.idx(rr), k.idx(g), zero}));
            for (int64_t m = groupTokens; m < tb; m *= 2) {
              SmallVector<Value> next;
              for (size_t i = 0; i < level.size(); i += 2)
                next.push_back(combine(level[i], level[i + 1], m));
              level = next;
            }
            Value scores = level[0];
            if (foldK)
              scores = arith::MulFOp::create(
                  b, scores,
                  vector::LoadOp::create(b, chunkType, scaleK,
                                         ValueRange{kh, zero}));
            Value ok = inRange;
            if (masked)
              ok = arith::AndIOp::create(
                  b, ok, visibleVec(len, rowQuery(rowsAt[rr]), keys));
            scores = arith::SelectOp::create(b, ok, scores, negInf);
            vector::StoreOp::create(b, scores, sc,
                                    ValueRange{rowsAt[rr], zero});
          }
        });
      });
    };
    auto blockValues = [&](Value cnt) {
      auto vecType = k.vec(sliceWidth, f32);
      k.forLoop(0, spec.kvHeads, [&](Value kh) {
        k.forLoop(0, headRows / valueTile, [&](Value tile) {
          Value r0 = k.add(k.mul(kh, headRows), k.mul(tile, valueTile));
          SmallVector<Value> rowsAt;
          for (int64_t rr = 0; rr < valueTile; ++rr)
            rowsAt.push_back(k.add(r0, k.idx(rr)));
          // Weights times the tokens' value scales, once per row.
          Value weights = sc;
          if (foldV) {
            Value sv = vector::LoadOp::create(b, k.vec(tb, f32), scaleV,
                                              ValueRange{kh, zero});
            for (auto [rr, r] : llvm::enumerate(rowsAt)) {
              Value p = vector::LoadOp::create(b, k.vec(tb, f32), sc,
                                               ValueRange{r, zero});
              vector::StoreOp::create(b, arith::MulFOp::create(b, p, sv),
                                      pScaled, ValueRange{k.idx(rr), zero});
            }
            weights = pScaled;
          }
          for (int64_t lane0 = 0; lane0 < dv; lane0 += sliceWidth) {
            Value col = k.idx(lane0);
            SmallVector<Value> init;
            for (Value r : rowsAt)
              init.push_back(arith::MulFOp::create(
                  b,
                  vector::LoadOp::create(b, vecType, acc, ValueRange{r, col}),
                  k.splat(memref::LoadOp::create(b, alphas, ValueRange{r}),
                          sliceWidth)));
            auto loop = scf::ForOp::create(
                b, zero, cnt, k.idx(1), init,
                [&](OpBuilder &nested, Location, Value t, ValueRange a) {
                  OpBuilder::InsertionGuard guard(b);
                  b.setInsertionPoint(nested.getInsertionBlock(),
                                      nested.getInsertionPoint());
                  Value pageBase =
                      memref::LoadOp::create(b, tokPage, ValueRange{t});
                  Value slot =
                      memref::LoadOp::create(b, tokSlot, ValueRange{t});
                  Value j = memref::LoadOp::create(b, tokKey, ValueRange{t});
                  Value v = foldV ? loadCodes(spec.layout.value, pageBase, slot,
                                              kh, lane0, sliceWidth)
                                  : loadValueSlice(pageBase, slot, winBase, j,
                                                   kh, len, lane0, sliceWidth);
                  SmallVector<Value> next;
                  for (auto [rr, r] : llvm::enumerate(rowsAt)) {
                    Value p = memref::LoadOp::create(
                        b, weights, ValueRange{foldV ? k.idx(rr) : r, t});
                    next.push_back(math::FmaOp::create(
                        b, k.splat(p, sliceWidth), v, a[rr]));
                  }
                  scf::YieldOp::create(b, next);
                });
            for (auto [rr, r] : llvm::enumerate(rowsAt))
              vector::StoreOp::create(b, loop.getResult(rr), acc,
                                      ValueRange{r, col});
          }
        });
      });
    };

    scf::ForOp::create(
        b, zero, n, k.idx(tb), ValueRange{},
        [&](OpBuilder &nested, Location, Value blk, ValueRange) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nested.getInsertionBlock(),
                              nested.getInsertionPoint());
          Value cnt = k.min(k.idx(tb), k.sub(n, blk));
          if (fast)
            blockScores(blk);
          else
            oldScores(blk, cnt);
          // Online softmax step per row.
          k.forLoop(0, rows, [&](Value r) {
            Value sv = vector::LoadOp::create(b, k.vec(tb, f32), sc,
                                              ValueRange{r, zero});
            Value mOld = memref::LoadOp::create(b, m, ValueRange{r});
            // maxnum without NaN/signed-zero care: a tree of vmaxps instead
            // of NaN- and -0-propagating blends (~45 instructions a row). A
            // NaN score still reaches the output through its weight.
            auto fm = arith::FastMathFlags::nnan | arith::FastMathFlags::nsz;
            Value blockMax = vector::ReductionOp::create(
                b, vector::CombiningKind::MAXNUMF, sv, fm);
            Value mNew = arith::MaxNumFOp::create(b, mOld, blockMax, fm);
            Value isInf = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ,
                                                mNew, k.f32(kNegInf));
            Value mUse = k.select(isInf, k.f32(0), mNew);
            Value alpha =
                math::ExpOp::create(b, arith::SubFOp::create(b, mOld, mUse));
            Value p = math::ExpOp::create(
                b, arith::SubFOp::create(b, sv, k.splat(mUse, tb)));
            Value lOld = memref::LoadOp::create(b, l, ValueRange{r});
            Value lNew = arith::AddFOp::create(
                b, arith::MulFOp::create(b, lOld, alpha), k.sum(p));
            memref::StoreOp::create(b, lNew, l, ValueRange{r});
            memref::StoreOp::create(b, mNew, m, ValueRange{r});
            vector::StoreOp::create(b, p, sc, ValueRange{r, zero});
            if (fast) {
              // blockValues rescales the accumulators as it loads them.
              memref::StoreOp::create(b, alpha, alphas, ValueRange{r});
              return;
            }
            Value a = vector::LoadOp::create(b, k.vec(dv, f32), acc,
                                             ValueRange{r, zero});
            vector::StoreOp::create(
                b, arith::MulFOp::create(b, a, k.splat(alpha, dv)), acc,
                ValueRange{r, zero});
          });
          if (fast)
            blockValues(cnt);
          else
            oldValues(blk, cnt);
          scf::YieldOp::create(b);
        });

    // Partial or final state per row.
    k.forLoop(0, rows, [&](Value r) {
      Value lr = memref::LoadOp::create(b, l, ValueRange{r});
      Value mr = memref::LoadOp::create(b, m, ValueRange{r});
      Value any =
          arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, lr, k.f32(0));
      Value inv =
          k.select(any, arith::DivFOp::create(b, k.f32(1), lr), k.f32(0));
      Value a =
          vector::LoadOp::create(b, k.vec(dv, f32), acc, ValueRange{r, zero});
      Value o = arith::MulFOp::create(b, a, k.splat(inv, dv));
      Value lseValue = k.select(
          any, arith::AddFOp::create(b, mr, math::LogOp::create(b, lr)),
          k.f32(kNegInf));
      if (spec.splits > 1) {
        vector::StoreOp::create(b, o, wsOut, ValueRange{bi, s, r, zero});
        memref::StoreOp::create(b, lseValue, wsLse, ValueRange{bi, s, r});
        return;
      }
      Value head = rowHead(r), i = rowQuery(r);
      vector::StoreOp::create(b, k.fromF32(o, spec.outputElement), out,
                              ValueRange{bi, head, i, zero});
      if (lse)
        memref::StoreOp::create(b, lseValue, lse, ValueRange{bi, head, i});
    });
  }

  /// Second phase with S > 1: merge the partial states of row r.
  void buildMerge(Value bi, Value r) {
    auto f32 = b.getF32Type();
    int64_t dv = spec.valueDim;
    Value zero = k.idx(0);
    {
      Value head = k.div(r, spec.queryRows);
      Value i = k.rem(r, spec.queryRows);
      auto result = scf::ForOp::create(
          b, zero, k.idx(spec.splits), k.idx(1), ValueRange{k.f32(kNegInf)},
          [&](OpBuilder &nested, Location, Value s, ValueRange it) {
            OpBuilder::InsertionGuard guard(b);
            b.setInsertionPoint(nested.getInsertionBlock(),
                                nested.getInsertionPoint());
            Value v = memref::LoadOp::create(b, wsLse, ValueRange{bi, s, r});
            scf::YieldOp::create(
                b, ValueRange{arith::MaximumFOp::create(b, it[0], v)});
          });
      Value mx = result.getResult(0);
      Value isInf = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx,
                                          k.f32(kNegInf));
      Value mUse = k.select(isInf, k.f32(0), mx);
      auto sums = scf::ForOp::create(
          b, zero, k.idx(spec.splits), k.idx(1),
          ValueRange{splatF32(k, 0, dv), k.f32(0)},
          [&](OpBuilder &nested, Location, Value s, ValueRange it) {
            OpBuilder::InsertionGuard guard(b);
            b.setInsertionPoint(nested.getInsertionBlock(),
                                nested.getInsertionPoint());
            Value ls = memref::LoadOp::create(b, wsLse, ValueRange{bi, s, r});
            Value w =
                math::ExpOp::create(b, arith::SubFOp::create(b, ls, mUse));
            Value o = vector::LoadOp::create(b, k.vec(dv, f32), wsOut,
                                             ValueRange{bi, s, r, zero});
            // A split without keys has w = 0 and an output of 0.
            Value a = math::FmaOp::create(b, k.splat(w, dv), o, it[0]);
            scf::YieldOp::create(
                b, ValueRange{a, arith::AddFOp::create(b, it[1], w)});
          });
      Value total = sums.getResult(1);
      Value any =
          arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, total, k.f32(0));
      Value inv =
          k.select(any, arith::DivFOp::create(b, k.f32(1), total), k.f32(0));
      Value o = arith::MulFOp::create(b, sums.getResult(0), k.splat(inv, dv));
      vector::StoreOp::create(b, k.fromF32(o, spec.outputElement), out,
                              ValueRange{bi, head, i, zero});
      if (lse) {
        Value lseValue = k.select(
            any, arith::AddFOp::create(b, mUse, math::LogOp::create(b, total)),
            k.f32(kNegInf));
        memref::StoreOp::create(b, lseValue, lse, ValueRange{bi, head, i});
      }
    }
  }
};
} // namespace

func::FuncOp kvopt::cpu::buildAttentionKernel(ModuleOp module,
                                              const AttentionSpec &spec,
                                              TypeRange argTypes) {
  std::string name =
      kernelName(spec.mla ? "mla_attention" : "attention", spec.str());
  return getOrBuildKernel(
      module, name, argTypes, [&](ImplicitLocOpBuilder &b, ValueRange args) {
        KB k(b);
        AttentionKernel kernel(spec, k, args);
        Value batch = memref::DimOp::create(b, kernel.lens, 0);
        kernel.cache.batch = batch;
        parallelLoop(b, {batch, k.idx(spec.splits)},
                     [&](ValueRange ivs) { kernel.buildTask(ivs[0], ivs[1]); });
        if (spec.splits > 1)
          parallelLoop(b, {batch, k.idx(kernel.rows)}, [&](ValueRange ivs) {
            kernel.buildMerge(ivs[0], ivs[1]);
          });
      });
}

SmallVector<Value> kvopt::cpu::emitAttentionCall(
    OpBuilder &b, Location loc, ModuleOp module, const AttentionSpec &spec,
    ValueRange queryTensors, Value cacheBytes, Value seqLens, Value blockTable,
    TypeRange resultTypes) {
  SmallVector<Value> args;
  for (Value q : queryTensors)
    args.push_back(toBuffer(b, loc, q));
  args.push_back(cacheBytes);
  args.push_back(toBuffer(b, loc, seqLens));
  if (blockTable)
    args.push_back(toBuffer(b, loc, blockTable));
  // Dynamic batch: take it from the queries.
  Value batch;
  auto outType = cast<RankedTensorType>(resultTypes[0]);
  SmallVector<Value> dyn;
  if (outType.isDynamicDim(0)) {
    batch = memref::DimOp::create(b, loc, args[0], 0);
    dyn.push_back(batch);
  }
  SmallVector<Value> results;
  for (Type t : resultTypes) {
    Value buffer = allocLike(b, loc, t, dyn);
    args.push_back(buffer);
    results.push_back(buffer);
  }
  if (spec.splits > 1) {
    int64_t rows = spec.queryHeads * spec.queryRows;
    int64_t bdim = outType.getDimSize(0);
    auto f32 = b.getF32Type();
    auto wsOut = MemRefType::get({bdim, spec.splits, rows, spec.valueDim}, f32);
    auto wsLse = MemRefType::get({bdim, spec.splits, rows}, f32);
    args.push_back(memref::AllocOp::create(b, loc, wsOut, dyn));
    args.push_back(memref::AllocOp::create(b, loc, wsLse, dyn));
  }
  SmallVector<Type> argTypes;
  for (Value a : args)
    argTypes.push_back(a.getType());
  func::FuncOp kernel = buildAttentionKernel(module, spec, argTypes);
  func::CallOp::create(b, loc, kernel, args);
  SmallVector<Value> tensors;
  for (auto [t, buffer] : llvm::zip(resultTypes, results))
    tensors.push_back(toTensor(b, loc, t, buffer));
  return tensors;
}

void kvopt::cpu::emitMergeLoops(ImplicitLocOpBuilder &b, Value outputs,
                                Value lses, Value out, Value lse) {
  KB k(b);
  auto outputsType = cast<MemRefType>(outputs.getType());
  int64_t splits = outputsType.getDimSize(0);
  int64_t d = outputsType.getDimSize(2);
  Type element = outputsType.getElementType();
  Type outElement = cast<MemRefType>(out.getType()).getElementType();
  auto f32 = b.getF32Type();
  Value zero = k.idx(0);
  Value rows = memref::DimOp::create(b, outputs, 1);
  parallelLoop(b, {rows}, [&](ValueRange ivs) {
    Value n = ivs[0];
    Value mx = k.f32(kNegInf);
    for (int64_t s = 0; s < splits; ++s)
      mx = arith::MaximumFOp::create(
          b, mx, memref::LoadOp::create(b, lses, ValueRange{k.idx(s), n}));
    Value isInf =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx, k.f32(kNegInf));
    Value mUse = k.select(isInf, k.f32(0), mx);
    Value acc = splatF32(k, 0, d), total = k.f32(0);
    for (int64_t s = 0; s < splits; ++s) {
      Value ls = memref::LoadOp::create(b, lses, ValueRange{k.idx(s), n});
      Value w = math::ExpOp::create(b, arith::SubFOp::create(b, ls, mUse));
      Value o = k.toF32(vector::LoadOp::create(b, k.vec(d, element), outputs,
                                               ValueRange{k.idx(s), n, zero}));
      // Parts with lse = -inf weigh nothing; their output is not read.
      Value live =
          arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, w, k.f32(0));
      o = arith::SelectOp::create(b, live, o, splatF32(k, 0, d));
      acc = math::FmaOp::create(b, k.splat(w, d), o, acc);
      total = arith::AddFOp::create(b, total, w);
    }
    Value any =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, total, k.f32(0));
    Value inv =
        k.select(any, arith::DivFOp::create(b, k.f32(1), total), k.f32(0));
    Value o = arith::MulFOp::create(b, acc, k.splat(inv, d));
    vector::StoreOp::create(b, k.fromF32(o, outElement), out,
                            ValueRange{n, zero});
    if (lse) {
      Value v = k.select(
          any, arith::AddFOp::create(b, mUse, math::LogOp::create(b, total)),
          k.f32(kNegInf));
      memref::StoreOp::create(b, v, lse, ValueRange{n});
    }
    (void)f32;
  });
}

namespace {
/// kv.attention -> the attention kernel of its configuration.
struct AttentionLowering : OpConversionPattern<kv::AttentionOp> {
  AttentionLowering(TypeConverter &converter, MLIRContext *ctx,
                    const KernelOptions &options)
      : OpConversionPattern(converter, ctx), options(options) {}

  LogicalResult
  matchAndRewrite(kv::AttentionOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto cacheType = cast<kv::CacheType>(op.getCache().getType());
    auto qType = op.getQueries().getType();
    auto outType = cast<RankedTensorType>(op.getOutput().getType());
    if (!qType.hasStaticShape() &&
        (qType.getNumDynamicDims() > 1 || !qType.isDynamicDim(0)))
      return rewriter.notifyMatchFailure(op, "only the batch may be dynamic");
    AttentionSpec spec;
    spec.layout = computeCacheLayout(cacheType);
    spec.queryHeads = qType.getDimSize(1);
    spec.queryRows = qType.getDimSize(2);
    spec.kvHeads = cacheType.getKvHeads();
    spec.keyDim = spec.valueDim = cacheType.getHeadDim();
    spec.queryElement = qType.getElementType();
    spec.outputElement = outType.getElementType();
    spec.lse = static_cast<bool>(op.getLse());
    spec.causal = op.getCausal();
    spec.window = op.getWindow().value_or(0);
    spec.sinks = op.getSinks().value_or(0);
    spec.scale = op.getScaleOrDefault();
    spec.splits = chooseSplits(options, cacheType.getCapacity());
    spec.splitTokens = options.splitTokens;
    spec.blockTokens = options.blockTokens;
    auto module = op->getParentOfType<ModuleOp>();
    SmallVector<Value> results = emitAttentionCall(
        rewriter, op.getLoc(), module, spec, {op.getQueries()},
        adaptor.getCache(), op.getSeqLens(), op.getBlockTable(),
        op->getResultTypes());
    rewriter.replaceOp(op, results);
    return success();
  }

  KernelOptions options;
};

/// kv.merge_states -> a kernel over [S][N][D] views of its operands.
struct MergeStatesLowering : OpConversionPattern<kv::MergeStatesOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(kv::MergeStatesOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto outputsType = cast<RankedTensorType>(op.getOutputs().getType());
    if (!outputsType.hasStaticShape() || outputsType.getRank() < 3)
      return rewriter.notifyMatchFailure(op, "needs static shapes, rank >= 3");
    Location loc = op.getLoc();
    Value outputs = toBuffer(rewriter, loc, op.getOutputs());
    Value lses = toBuffer(rewriter, loc, op.getLses());
    Value out = allocLike(rewriter, loc, op.getOutput().getType());
    Value lse = allocLike(rewriter, loc, op.getLse().getType());
    // Collapse to [S][N][D], [S][N], [N][D], [N].
    auto collapse = [&](Value m, ArrayRef<int64_t> keep) {
      int64_t rank = cast<MemRefType>(m.getType()).getRank();
      SmallVector<ReassociationIndices> groups;
      int64_t at = 0;
      for (size_t g = 0; g < keep.size(); ++g) {
        ReassociationIndices group;
        int64_t last = g + 1 == keep.size() ? rank : at + keep[g];
        for (; at < last; ++at)
          group.push_back(at);
        groups.push_back(group);
      }
      return memref::CollapseShapeOp::create(rewriter, loc, m, groups)
          .getResult();
    };
    int64_t mid = outputsType.getRank() - 2; // dims between S and D
    Value o3 = collapse(outputs, {1, mid, 1});
    Value l2 = collapse(lses, {1, mid});
    Value out2 = collapse(out, {mid, 1});
    Value lse1 = mid ? collapse(lse, {mid}) : lse;
    callKernel(rewriter, loc, op->getParentOfType<ModuleOp>(), "merge_states",
               "", {o3, l2, out2, lse1},
               [&](ImplicitLocOpBuilder &b, ValueRange a) {
                 emitMergeLoops(b, a[0], a[1], a[2], a[3]);
               });
    replaceWithBuffers(rewriter, op, {out, lse});
    return success();
  }
};
} // namespace

void kvopt::cpu::populateAttentionToCPUPatterns(TypeConverter &converter,
                                                RewritePatternSet &patterns,
                                                const KernelOptions &options) {
  patterns.add<AttentionLowering>(converter, patterns.getContext(), options);
  patterns.add<MergeStatesLowering>(converter, patterns.getContext());
}
