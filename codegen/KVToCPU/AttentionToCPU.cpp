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

#include "AttentionKernel.h"

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
     << " block=" << blockTokens << " vbits=" << vectorBits
     << " intDots=" << intDots;
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

AttentionKernel::AttentionKernel(const AttentionSpec &spec, KB &k,
                                 ValueRange args)
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

Value AttentionKernel::loadQuery(Value bi, Value head, Value i) {
  Value q;
  if (!spec.mla) {
    q = k.toF32(vector::LoadOp::create(b, k.vec(spec.keyDim, spec.queryElement),
                                       queries[0],
                                       ValueRange{bi, head, i, k.idx(0)}));
  } else {
    int64_t rope = spec.keyDim - spec.latentDim;
    Value ql = k.toF32(
        vector::LoadOp::create(b, k.vec(spec.latentDim, spec.queryElement),
                               queries[0], ValueRange{bi, head, i, k.idx(0)}));
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

Value AttentionKernel::visible(Value len, Value i, Value j) {
  Value pos = k.add(k.sub(len, k.idx(spec.queryRows)), i);
  Value ok;
  if (spec.causal && spec.queryRows > 1)
    ok = arith::CmpIOp::create(b, arith::CmpIPredicate::sle, j, pos);
  if (spec.window > 0) {
    Value inWindow = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, j,
                                           k.sub(pos, k.idx(spec.window)));
    if (spec.sinks > 0)
      inWindow = arith::OrIOp::create(b, inWindow, k.lt(j, k.idx(spec.sinks)));
    ok = ok ? Value(arith::AndIOp::create(b, ok, inWindow)) : inWindow;
  }
  return ok;
}

Value AttentionKernel::visibleVec(Value len, Value i, Value j) {
  auto splat = [&](Value v) { return k.splat(v, spec.lanes()); };
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

bool AttentionKernel::blocked() const {
  int64_t lanes = spec.lanes();
  return spec.blockTokens % lanes == 0 && spec.keyDim % lanes == 0 &&
         spec.valueDim % lanes == 0;
}

/// Body of one (b, s) task. Every KV head of a token is processed in the
/// same task: a page's token-major rows are then read sequentially, which
/// the hardware prefetchers follow (per-head tasks would stride by
/// Hkv * D elements and wait on every line).
void AttentionKernel::buildTask(Value bi, Value s) {
  auto f32 = b.getF32Type();
  int64_t dk = spec.keyDim, dv = spec.valueDim;
  Value qs = memref::AllocaOp::create(b, MemRefType::get({rows, dk}, f32));
  Value acc = memref::AllocaOp::create(b, MemRefType::get({rows, dv}, f32));
  Value m = memref::AllocaOp::create(b, MemRefType::get({rows}, f32));
  Value l = memref::AllocaOp::create(b, MemRefType::get({rows}, f32));
  Value zero = k.idx(0);
  Value len = k.loadIndex(lens, {bi});

  // This split's keys.
  Value chunk =
      k.max(k.ceilDiv(len, k.idx(spec.splits)), k.idx(spec.splitTokens));
  Value kBegin = k.min(k.mul(s, chunk), len);
  Value kEnd = k.min(k.add(kBegin, chunk), len);

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
  Task task;
  task.bi = bi;
  task.len = len;
  task.n = k.add(n1, k.max(k.sub(kEnd, lo2), zero));
  task.winBase = cache.windowBase(k, bi);
  task.qs = qs;
  task.acc = acc;
  task.m = m;
  task.l = l;
  task.tokenAt = [this, n1, lo1, lo2](Value u) {
    return k.select(k.lt(u, n1), k.add(lo1, u), k.sub(k.add(lo2, u), n1));
  };
  if (blocked())
    buildBlockedLoop(task);
  else
    buildGenericLoop(task);

  // Partial or final state per row.
  k.forLoop(0, rows, [&](Value r) {
    Value lr = memref::LoadOp::create(b, l, ValueRange{r});
    Value mr = memref::LoadOp::create(b, m, ValueRange{r});
    Value any =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, lr, k.f32(0));
    Value inv = k.select(any, arith::DivFOp::create(b, k.f32(1), lr), k.f32(0));
    Value a =
        vector::LoadOp::create(b, k.vec(dv, f32), acc, ValueRange{r, zero});
    Value o = arith::MulFOp::create(b, a, k.splat(inv, dv));
    Value lseValue =
        k.select(any, arith::AddFOp::create(b, mr, math::LogOp::create(b, lr)),
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

std::pair<Value, Value> AttentionKernel::softmaxStep(const Task &task, Value r,
                                                     Value sv) {
  int64_t n = cast<VectorType>(sv.getType()).getNumElements();
  Value mOld = memref::LoadOp::create(b, task.m, ValueRange{r});
  // maxnum without NaN/signed-zero care: a tree of vmaxps instead of NaN-
  // and -0-propagating blends (~45 instructions a row). A NaN score still
  // reaches the output through its weight.
  auto fm = arith::FastMathFlags::nnan | arith::FastMathFlags::nsz;
  Value blockMax =
      vector::ReductionOp::create(b, vector::CombiningKind::MAXNUMF, sv, fm);
  Value mNew = arith::MaxNumFOp::create(b, mOld, blockMax, fm);
  // A row that has seen no visible key yet keeps m = -inf: weights and
  // alpha are then exp(-inf) = 0 instead of NaN.
  Value isInf =
      arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mNew, k.f32(kNegInf));
  Value mUse = k.select(isInf, k.f32(0), mNew);
  Value alpha = math::ExpOp::create(b, arith::SubFOp::create(b, mOld, mUse));
  Value p =
      math::ExpOp::create(b, arith::SubFOp::create(b, sv, k.splat(mUse, n)));
  Value lOld = memref::LoadOp::create(b, task.l, ValueRange{r});
  Value lNew =
      arith::AddFOp::create(b, arith::MulFOp::create(b, lOld, alpha), k.sum(p));
  memref::StoreOp::create(b, lNew, task.l, ValueRange{r});
  memref::StoreOp::create(b, mNew, task.m, ValueRange{r});
  return {p, alpha};
}

void AttentionKernel::buildGenericLoop(const Task &task) {
  auto f32 = b.getF32Type();
  int64_t dk = spec.keyDim, dv = spec.valueDim, tb = spec.blockTokens;
  int64_t headRows = group * spec.queryRows;
  Value zero = k.idx(0);
  Value bi = task.bi, len = task.len, n = task.n, winBase = task.winBase;
  Value qs = task.qs, acc = task.acc;
  const auto &tokenAt = task.tokenAt;
  Value sc = memref::AllocaOp::create(b, MemRefType::get({rows, tb}, f32));
  // Keys ahead to prefetch: one block (into L2, see kPrefetchLocality).
  int64_t prefetch = tb;
  // The value row of token j (the latent prefix of the key row for MLA).
  auto loadValue = [&](Value pageBase, Value slot, Value j, Value kh) {
    if (!spec.mla)
      return cache.loadRow(k, spec.layout.value, pageBase, slot, winBase, j, kh,
                           len);
    Value row =
        cache.loadRow(k, spec.layout.key, pageBase, slot, winBase, j, kh, len);
    return Value(vector::ExtractStridedSliceOp::create(
        b, row, ArrayRef<int64_t>{0}, ArrayRef<int64_t>{spec.valueDim},
        ArrayRef<int64_t>{1}));
  };

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
          if (masked())
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
        Value v = loadValue(pageBase, slot, j, kh);
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

  scf::ForOp::create(b, zero, n, k.idx(tb), ValueRange{},
                     [&](OpBuilder &nested, Location, Value blk, ValueRange) {
                       OpBuilder::InsertionGuard guard(b);
                       b.setInsertionPoint(nested.getInsertionBlock(),
                                           nested.getInsertionPoint());
                       Value cnt = k.min(k.idx(tb), k.sub(n, blk));
                       oldScores(blk, cnt);
                       // Online softmax step per row.
                       k.forLoop(0, rows, [&](Value r) {
                         Value sv = vector::LoadOp::create(
                             b, k.vec(tb, f32), sc, ValueRange{r, zero});
                         auto [p, alpha] = softmaxStep(task, r, sv);
                         vector::StoreOp::create(b, p, sc, ValueRange{r, zero});
                         Value a = vector::LoadOp::create(
                             b, k.vec(dv, f32), acc, ValueRange{r, zero});
                         vector::StoreOp::create(
                             b, arith::MulFOp::create(b, a, k.splat(alpha, dv)),
                             acc, ValueRange{r, zero});
                       });
                       oldValues(blk, cnt);
                       scf::YieldOp::create(b);
                     });
}

void AttentionKernel::buildMerge(Value bi, Value r) {
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
    Value isInf =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx, k.f32(kNegInf));
    Value mUse = k.select(isInf, k.f32(0), mx);
    auto sums = scf::ForOp::create(
        b, zero, k.idx(spec.splits), k.idx(1),
        ValueRange{splatF32(k, 0, dv), k.f32(0)},
        [&](OpBuilder &nested, Location, Value s, ValueRange it) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nested.getInsertionBlock(),
                              nested.getInsertionPoint());
          Value ls = memref::LoadOp::create(b, wsLse, ValueRange{bi, s, r});
          Value w = math::ExpOp::create(b, arith::SubFOp::create(b, ls, mUse));
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
    spec.vectorBits = options.vectorBits;
    spec.intDots = options.intDots;
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
