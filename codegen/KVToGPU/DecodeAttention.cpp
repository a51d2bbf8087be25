//===- DecodeAttention.cpp - paged decode attention and merge kernels -----===//
//
// Builds the split-KV decode-attention kernel over CacheLayout.md pages with
// fused dequantization, and the kernel that merges its partial states.
//
//===----------------------------------------------------------------------===//
//
// Decode kernel, one block per (chunk, KV head, sequence):
//
//   q_s[rows][D]      <- the group's query rows, f32
//   for each tile of N keys of the chunk:
//     pages_s[]       <- block-table entries of the tile (read once)
//     *_scale_s[]     <- the tile's scales / zero points, f32 (read once)
//     scores_s[r][j]  <- scale * q_r . dequant(K_j)   (lanes split D, xor
//                                                       shuffles reduce)
//     per row r (warp r % W): m, l online softmax; p_j in place; alpha_s[r]
//     acc[r][:]       <- alpha_r * acc + sum_j p_rj dequant(V_j)
//   the token-subsets' accumulators are summed through red_s, divided by l
//   and written as (part_out, part_lse) for this chunk.
//
// Every global K/V/scale/block-table byte of a chunk is loaded by exactly one
// thread once; lanes of a warp read adjacent bytes of a row.
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"
#include "Kernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include "llvm/ADT/bit.h"

#include <limits>
#include <numeric>
#include <tuple>

using namespace mlir;
using namespace kvopt;
using namespace kvopt::gpugen;

//===----------------------------------------------------------------------===//
// Layout and schedule
//===----------------------------------------------------------------------===//

/// Places one component at `offset`; returns the end of its bytes.
static int64_t placeComponent(ComponentInfo &c, const PagedLayout &l,
                              int64_t offset) {
  int64_t elems = l.pageSize * l.kvHeads * l.headDim;
  c.dataOffset = offset;
  offset += elems * c.bits / 8;
  if (!c.quantized())
    return offset;
  int64_t scales = c.channelAxis
                       ? (l.pageSize / c.group) * l.kvHeads * l.headDim
                       : l.pageSize * l.kvHeads * (l.headDim / c.group);
  c.scaleOffset = offset;
  offset += scales * c.scaleBytes;
  if (c.hasZeros()) {
    c.zeroOffset = offset;
    offset += scales * c.scaleBytes;
  }
  return offset;
}

FailureOr<PagedLayout>
kvopt::gpugen::computePagedLayout(kv::CacheType type, EmitErrorFn emitError) {
  if (!type.isPaged())
    return emitError() << "GPU kernels need a paged cache (got a contiguous "
                          "one; run kv-paginate first)";
  PagedLayout l;
  l.kvHeads = type.getKvHeads();
  l.headDim = type.getHeadDim();
  l.pageSize = type.getPageSize();
  auto init = [&](ComponentInfo &c, kv::QuantAttr q) -> LogicalResult {
    c.element = type.getElementType();
    c.elementBytes = c.element.getIntOrFloatBitWidth() / 8;
    c.quant = q;
    c.bits = q ? q.getBits() : c.elementBytes * 8;
    if (!q)
      return success();
    c.sinks = q.getSinks();
    c.recent = q.getRecent();
    c.channelAxis = q.getAxis() == kv::ScaleAxis::Channel;
    c.group = c.channelAxis ? q.getGroup()
                            : (q.getGroup() ? q.getGroup() : l.headDim);
    c.symmetric = q.getSymmetric();
    c.scaleBytes = q.getScaleBytes();
    return success();
  };
  if (failed(init(l.key, type.getKeyQuant())) ||
      failed(init(l.value, type.getValueQuant())))
    return failure();
  int64_t end = placeComponent(l.key, l, 0);
  l.pageBytes = placeComponent(l.value, l, end);
  for (ComponentInfo *c : {&l.key, &l.value}) {
    if (!c->hasWindow())
      continue;
    c->windowOffset = l.windowBytes;
    l.windowBytes +=
        (c->sinks + c->recent) * l.kvHeads * l.headDim * c->elementBytes;
  }
  return l;
}

/// Chooses how lanes cover a row: the fewest lanes (a power of two <= warp
/// size dividing D) whose elements per lane fit both the widest load and
/// `maxElems`.
static FailureOr<RowMapping> mapRow(const TargetInfo &t, const PagedLayout &l,
                                    const ComponentInfo &c, int64_t maxElems,
                                    int64_t threads, EmitErrorFn emitError) {
  int64_t D = l.headDim;
  int64_t vecElems = t.maxLoadBytes * 8 / c.bits;
  int64_t target = std::max<int64_t>(1, std::min(vecElems, maxElems));
  RowMapping m;
  for (int64_t lanes = 1; lanes <= t.warpSize; lanes *= 2) {
    if (D % lanes || (D / lanes) * c.bits % 8)
      continue;
    m.lanes = lanes;
    m.elems = D / lanes;
    if (m.elems <= target)
      break;
  }
  if (!m.lanes || (m.elems * c.bits) % 8)
    return emitError() << "head dim " << D
                       << " cannot be split over a power-of-two number of "
                          "lanes in whole bytes";
  // Alignment every lane's slice is guaranteed to have: the pool is
  // 256-byte aligned; pages, the data region, rows and slices add offsets.
  int64_t sliceBytes = m.elems * c.bits / 8;
  int64_t align = std::gcd(std::gcd(l.pageBytes, c.dataOffset),
                           std::gcd(l.kvHeads * D * c.bits / 8, sliceBytes));
  align = std::gcd(align, int64_t(256));
  m.loadBytes = pow2Divisor(std::gcd(align, sliceBytes), t.maxLoadBytes);
  if (c.hasWindow()) {
    // Window slots hold full-precision rows.
    m.windowLoadBytes = windowAlign(l.pageBytes, l.windowBytes, c.windowOffset,
                                    l.kvHeads * D * c.elementBytes,
                                    m.elems * c.elementBytes, t.maxLoadBytes);
  }
  m.rowsPerPass = threads / m.lanes;
  return m;
}

FailureOr<DecodeSchedule> kvopt::gpugen::chooseDecodeSchedule(
    const TargetInfo &t, const DecodeConfig &cfg, EmitErrorFn emitError) {
  const PagedLayout &l = cfg.layout;
  DecodeSchedule s;
  s.warps = t.decodeWarps;
  s.threads = t.decodeThreads();
  // K slices only live for one dot product; V slices keep one accumulator
  // vector per query row, so their width is bounded by half the registers.
  int64_t budget = t.decodeRegisterBudget() / 2;
  auto k = mapRow(t, l, l.key, budget, s.threads, emitError);
  if (failed(k))
    return failure();
  auto v = mapRow(t, l, l.value, std::max<int64_t>(1, budget / cfg.rows()),
                  s.threads, emitError);
  if (failed(v))
    return failure();
  s.key = *k;
  s.value = *v;
  // One f32 accumulator per (query row, value element of the lane): past
  // half the register budget ptxas spills (measured: 16 rows x 8 at D=256).
  if (cfg.rows() * s.value.elems > budget)
    return emitError() << cfg.rows() << " query rows x " << s.value.elems
                       << " value elements per lane exceed the register "
                          "budget of "
                       << budget << " accumulators on " << t.chip
                       << " (fewer query heads per KV head or a smaller head "
                          "dim)";
  // The tile is a multiple of both passes and of every channel-axis group,
  // so that tiles (and chunks) start on group boundaries.
  int64_t unit = std::lcm(s.key.rowsPerPass, s.value.rowsPerPass);
  for (const ComponentInfo *c : {&l.key, &l.value})
    if (c->quantized() && c->channelAxis)
      unit = std::lcm(unit, c->group);
  s.tileTokens = ((t.decodeMinTileTokens + unit - 1) / unit) * unit;
  int64_t N = s.tileTokens;
  s.tilePages = std::min(N, (N - 1) / l.pageSize + 2);
  s.maxSplits = t.maxSplits;
  s.smCount = t.smCount;
  s.blocksPerSM = t.decodeBlocksPerSM;
  s.minChunkTokens = t.minChunkTokens;

  int64_t R = cfg.rows(), D = l.headDim;
  int64_t floats = R * D + R * N + 2 * R + s.value.rowsPerPass * D;
  for (const ComponentInfo *c : {&l.key, &l.value}) {
    if (!c->quantized())
      continue;
    int64_t n = c->channelAxis ? (N / c->group) * D : N * (D / c->group);
    floats += n * (c->hasZeros() ? 2 : 1);
  }
  s.sharedBytes = 4 * floats + 4 * s.tilePages;
  if (s.sharedBytes > t.staticSharedPerBlock)
    return emitError() << "decode kernel needs " << s.sharedBytes
                       << " bytes of shared memory, more than the "
                       << t.staticSharedPerBlock << " of " << t.chip;
  return s;
}

int64_t kvopt::gpugen::mergeThreads(const TargetInfo &t, int64_t headDim) {
  int64_t warps = std::clamp<int64_t>(headDim / t.warpSize, 1, t.decodeWarps);
  return warps * t.warpSize;
}

namespace {

/// Shared-memory staging of one component's scales (and zeros) for a tile.
struct ScaleStage {
  Value scales, zeros; // memref<...xf32, 3>, null when absent
  int64_t count = 0;   // floats per array
};

} // namespace

//===----------------------------------------------------------------------===//
// Decode kernel
//===----------------------------------------------------------------------===//

gpu::GPUFuncOp kvopt::gpugen::buildDecodeKernel(gpu::GPUModuleOp module,
                                                StringRef name,
                                                const DecodeConfig &cfg,
                                                const DecodeSchedule &s) {
  MLIRContext *ctx = module.getContext();
  const PagedLayout &L = cfg.layout;
  const int64_t R = cfg.rows(), D = L.headDim, N = s.tileTokens, T = s.threads,
                W = s.warps, Hkv = L.kvHeads, P = L.pageSize;
  Type f32t = Float32Type::get(ctx), i32t = IntegerType::get(ctx, 32),
       i8t = IntegerType::get(ctx, 8);

  SmallVector<Type> args = {dynamic1D(cfg.queryType),
                            dynamic1D(i8t),
                            dynamic1D(i32t),
                            dynamic1D(i32t),
                            dynamic1D(f32t),
                            dynamic1D(f32t),
                            i32t,
                            i32t,
                            i32t};
  auto stagedCount = [&](const ComponentInfo &c) -> int64_t {
    if (!c.quantized())
      return 0;
    return c.channelAxis ? (N / c.group) * D : N * (D / c.group);
  };
  int64_t kScales = stagedCount(L.key), vScales = stagedCount(L.value);
  SmallVector<Type> workgroup = {
      sharedF32(ctx, R * D),                   // q_s
      sharedF32(ctx, R * N),                   // scores_s (then p)
      sharedF32(ctx, 2 * R),                   // alpha_s, then l_s|m_s
      sharedF32(ctx, s.value.rowsPerPass * D), // red_s
      MemRefType::get({s.tilePages}, i32t, MemRefLayoutAttrInterface{},
                      gpu::AddressSpaceAttr::get(
                          ctx, gpu::AddressSpace::Workgroup)), // pages_s
      sharedF32(ctx, kScales),
      sharedF32(ctx, L.key.hasZeros() ? kScales : 0),
      sharedF32(ctx, vScales),
      sharedF32(ctx, L.value.hasZeros() ? vScales : 0)};

  OpBuilder ob(ctx);
  ob.setInsertionPointToEnd(module.getBody());
  ImplicitLocOpBuilder b(module.getLoc(), ob);
  auto func = gpu::GPUFuncOp::create(b, name, FunctionType::get(ctx, args, {}),
                                     workgroup);
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(T), 1, 1}));
  func->setAttr("kv.tile_tokens", b.getI64IntegerAttr(N));
  func->setAttr("kv.max_splits", b.getI64IntegerAttr(s.maxSplits));
  func->setAttr("kv.sm_count", b.getI64IntegerAttr(s.smCount));
  func->setAttr("kv.blocks_per_sm", b.getI64IntegerAttr(s.blocksPerSM));
  func->setAttr("kv.min_chunk_tokens", b.getI64IntegerAttr(s.minChunkTokens));
  func->setAttr("kv.shared_bytes", b.getI64IntegerAttr(s.sharedBytes));
  func->setAttr(
      "kv.arg_names",
      b.getStrArrayAttr({"q", "pool", "block_table", "seq_lens", "part_out",
                         "part_lse", "max_pages", "splits", "chunk_tokens"}));

  Block &entry = func.getBody().front();
  b.setInsertionPointToStart(&entry);
  Emitter e(b);
  Value q = func.getArgument(0), pool = func.getArgument(1),
        table = func.getArgument(2), lens = func.getArgument(3),
        pout = func.getArgument(4), plse = func.getArgument(5);
  Value maxPages = e.toIndex(func.getArgument(6));
  Value splits = e.toIndex(func.getArgument(7));
  Value chunkTokens = e.toIndex(func.getArgument(8));
  auto wg = func.getWorkgroupAttributions();
  Value qS = wg[0], scoreS = wg[1], statS = wg[2], redS = wg[3], pageS = wg[4];
  ScaleStage kStage{kScales ? Value(wg[5]) : Value(),
                    L.key.hasZeros() ? Value(wg[6]) : Value(), kScales};
  ScaleStage vStage{vScales ? Value(wg[7]) : Value(),
                    L.value.hasZeros() ? Value(wg[8]) : Value(), vScales};

  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value split = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value seq = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  Value warp = e.div(tid, 32);
  Value lane = e.rem(tid, 32);
  Value c0 = e.idx(0), c1 = e.idx(1), cT = e.idx(T);
  Value length = e.loadIndex(lens, seq);
  // First query row of this block in [B, Hq, Tq] order.
  Value rowBase = e.mul(e.add(e.mul(seq, Hkv), h), R);

  // Queries to shared memory as f32 (coalesced, one element per thread).
  e.forLoop(tid, e.idx(R * D), cT, [&](Value i) {
    Value x = e.load(q, e.add(e.mul(rowBase, D), i));
    if (!cfg.queryType.isF32())
      x = arith::ExtFOp::create(b, f32t, x);
    e.store(x, qS, i);
  });

  Value chunkBegin = e.mul(split, chunkTokens);
  Value chunkEnd = e.min(e.add(chunkBegin, chunkTokens), length);
  Value keys = e.max(e.sub(chunkEnd, chunkBegin), c0);
  Value tiles = e.div(e.add(keys, N - 1), N);

  // Loop-carried: per owned softmax row k (rows warp + k*W) m and l, and
  // one accumulator vector per query row.
  const RowMapping &km = s.key, &vm = s.value;
  int64_t ownRows = (R + W - 1) / W;
  SmallVector<Value> init;
  for (int64_t k = 0; k < ownRows; ++k) {
    init.push_back(e.negInf());
    init.push_back(e.f32(0.0f));
  }
  Value zeroAcc = e.splat(e.f32(0.0f), vm.elems);
  for (int64_t r = 0; r < R; ++r)
    init.push_back(zeroAcc);

  // Byte offset of element `channel` of token `token` (tile-local page via
  // pages_s) in component `c`.
  auto pageOf = [&](Value token, Value firstPage) {
    Value p = e.load(pageS, e.sub(e.div(token, P), firstPage));
    return e.mul(e.toIndex(p), L.pageBytes);
  };

  // Stages one component's scales/zeros of tile [t0, t0+N) (tokens < end).
  auto stageScales = [&](const ComponentInfo &c, const ScaleStage &st, Value t0,
                         Value end, Value firstPage) {
    if (!st.count)
      return;
    int64_t perRow = c.channelAxis ? D : D / c.group; // floats per unit
    e.forLoop(tid, e.idx(st.count), cT, [&](Value i) {
      Value unit = e.div(i, perRow), col = e.rem(i, perRow);
      Value token =
          c.channelAxis ? e.add(t0, e.mul(unit, c.group)) : e.add(t0, unit);
      e.ifThen(e.lt(token, end), [&] {
        Value base = pageOf(token, firstPage);
        Value slot = e.rem(token, P);
        Value row = c.channelAxis ? e.div(slot, c.group) : slot;
        Value elem = e.add(e.mul(e.add(e.mul(row, Hkv), h), perRow), col);
        Value off = e.mul(elem, c.scaleBytes);
        Type st_ = c.quant.getScale();
        // Guaranteed alignment of a scale (pool 256-byte aligned).
        int64_t align = std::gcd(std::gcd(L.pageBytes, c.scaleOffset),
                                 std::gcd(c.zeroOffset, c.scaleBytes));
        align = pow2Divisor(std::gcd(align, int64_t(256)), c.scaleBytes);
        e.store(e.loadScale(pool, e.add(e.add(base, c.scaleOffset), off), st_,
                            align),
                st.scales, i);
        if (st.zeros)
          e.store(e.loadScale(pool, e.add(e.add(base, c.zeroOffset), off), st_,
                              align),
                  st.zeros, i);
      });
    });
  };

  // This sequence's window region.
  Value windowBase;
  if (L.hasWindows())
    windowBase = e.windowRegion(pool, lens, seq, L.windowBytes);

  // The dequantized f32 slice (vector<elems>) of `token`'s stored row for
  // this lane, `slice` = lane's index within its row; `local` = token - t0.
  auto loadStoredRow = [&](const ComponentInfo &c, const RowMapping &m,
                           const ScaleStage &st, Value token, Value local,
                           Value slice, Value firstPage) -> Value {
    int64_t bytes = m.elems * c.bits / 8;
    Value base = pageOf(token, firstPage);
    Value slot = e.rem(token, P);
    Value elem =
        e.add(e.mul(e.add(e.mul(slot, Hkv), h), D), e.mul(slice, m.elems));
    Value off = e.add(e.add(base, c.dataOffset), e.div(e.mul(elem, c.bits), 8));
    Value raw = e.loadBytes(pool, off, bytes, m.loadBytes);
    if (!c.quantized())
      return e.decodeFloat(raw, m.elems, c.element);
    Value codes = e.decodeCodes(raw, m.elems, c);
    Value sc, zr;
    Value ch0 = e.mul(slice, m.elems);
    if (c.channelAxis) {
      Value at = e.add(e.mul(e.div(local, c.group), D), ch0);
      sc = e.vload(e.vec(m.elems, f32t), st.scales, at, 4);
      if (st.zeros)
        zr = e.vload(e.vec(m.elems, f32t), st.zeros, at, 4);
    } else {
      std::tie(sc, zr) =
          e.stagedTokenScales(st.scales, st.zeros, e.mul(local, D / c.group),
                              ch0, m.elems, c.group);
    }
    if (zr)
      return math::FmaOp::create(b, codes, sc, zr);
    return e.fmul(codes, sc);
  };

  // The row slice as attention sees it: window tokens (t < sinks,
  // t >= length - recent) exactly from the window slots, others stored.
  auto loadRow = [&](const ComponentInfo &c, const RowMapping &m,
                     const ScaleStage &st, Value token, Value local,
                     Value slice, Value firstPage) -> Value {
    if (!c.hasWindow())
      return loadStoredRow(c, m, st, token, local, slice, firstPage);
    return e.ifElse(
        e.inWindow(token, length, c.sinks, c.recent), e.vec(m.elems, f32t),
        [&] {
          Value wslot = e.windowSlot(token, c.sinks, c.recent);
          Value elem = e.add(e.mul(e.add(e.mul(wslot, Hkv), h), D),
                             e.mul(slice, m.elems));
          Value off = e.add(e.add(windowBase, e.idx(c.windowOffset)),
                            e.mul(elem, c.elementBytes));
          Value raw = e.loadBytes(pool, off, m.elems * c.elementBytes,
                                  m.windowLoadBytes);
          return e.decodeFloat(raw, m.elems, c.element);
        },
        [&] {
          return loadStoredRow(c, m, st, token, local, slice, firstPage);
        });
  };

  auto loop = scf::ForOp::create(b, c0, tiles, c1, init);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(loop.getBody());
    Value tile = loop.getInductionVar();
    SmallVector<Value> carried(loop.getRegionIterArgs().begin(),
                               loop.getRegionIterArgs().end());
    Value t0 = e.add(chunkBegin, e.mul(tile, N));
    Value end = e.min(e.add(t0, N), chunkEnd);
    Value firstPage = e.div(t0, P);
    Value pageCount = e.add(e.sub(e.div(e.sub(end, c1), P), firstPage), c1);

    // 1. Block-table entries of the tile.
    e.stageTilePages(table, pageS, seq, maxPages, firstPage, pageCount, tid);
    // 2. Scales and zero points of the tile.
    if (kStage.count || vStage.count) {
      stageScales(L.key, kStage, t0, end, firstPage);
      stageScales(L.value, vStage, t0, end, firstPage);
      e.barrier();
    }

    // 3. Scores: lanes [slice] of token-subset `sub` share one key row.
    {
      Value sub = e.div(tid, km.lanes), slice = e.rem(tid, km.lanes);
      for (int64_t pass = 0; pass < N / km.rowsPerPass; ++pass) {
        Value local = e.add(sub, pass * km.rowsPerPass);
        Value token = e.add(t0, local);
        Value valid = e.lt(token, end);
        Value kv = e.ifElse(
            valid, e.vec(km.elems, f32t),
            [&] {
              return loadRow(L.key, km, kStage, token, local, slice, firstPage);
            },
            [&] { return e.splat(e.f32(0.0f), km.elems); });
        for (int64_t r = 0; r < R; ++r) {
          Value qv = e.vload(e.vec(km.elems, f32t), qS,
                             e.add(e.mul(slice, km.elems), r * D), 4);
          Value dot = vector::ReductionOp::create(b, vector::CombiningKind::ADD,
                                                  e.fmul(qv, kv));
          dot = e.xorReduce(dot, km.lanes, /*isMax=*/false);
          Value score = e.fmul(dot, e.f32(cfg.scale));
          // Visibility: token < end and the causal/window/sink mask of row r.
          Value visible = valid;
          if (cfg.causal || cfg.window) {
            Value pos = e.add(e.sub(length, e.idx(cfg.queryLen)),
                              e.idx(r % cfg.queryLen));
            if (cfg.causal)
              visible = arith::AndIOp::create(
                  b, visible, e.cmp(arith::CmpIPredicate::sle, token, pos));
            if (cfg.window) {
              Value inWin = e.cmp(arith::CmpIPredicate::sgt, token,
                                  e.sub(pos, e.idx(cfg.window)));
              Value sink = e.lt(token, e.idx(cfg.sinks));
              visible = arith::AndIOp::create(
                  b, visible, arith::OrIOp::create(b, inWin, sink));
            }
          }
          score = e.select(visible, score, e.negInf());
          e.ifThen(e.cmp(arith::CmpIPredicate::eq, slice, c0),
                   [&] { e.store(score, scoreS, e.add(local, r * N)); });
        }
      }
    }
    e.barrier();

    // 4. Online softmax, row r owned by warp r % W; lanes walk the tile.
    SmallVector<Value> next;
    for (int64_t k = 0; k < ownRows; ++k) {
      Value r = e.add(warp, k * W);
      auto [mNew, lNew] =
          e.onlineSoftmaxRow(scoreS, statS, r, e.lt(r, e.idx(R)), lane, N,
                             carried[2 * k], carried[2 * k + 1]);
      next.push_back(mNew);
      next.push_back(lNew);
    }
    e.barrier();

    // 5. acc = alpha * acc + P V.
    {
      Value sub = e.div(tid, vm.lanes), slice = e.rem(tid, vm.lanes);
      SmallVector<Value> acc;
      for (int64_t r = 0; r < R; ++r)
        acc.push_back(e.fmul(carried[2 * ownRows + r],
                             e.splat(e.load(statS, e.idx(r)), vm.elems)));
      for (int64_t pass = 0; pass < N / vm.rowsPerPass; ++pass) {
        Value local = e.add(sub, pass * vm.rowsPerPass);
        Value token = e.add(t0, local);
        Value valid = e.lt(token, end);
        Value vv = e.ifElse(
            valid, e.vec(vm.elems, f32t),
            [&] {
              return loadRow(L.value, vm, vStage, token, local, slice,
                             firstPage);
            },
            [&] { return e.splat(e.f32(0.0f), vm.elems); });
        for (int64_t r = 0; r < R; ++r) {
          Value p = e.load(scoreS, e.add(local, r * N));
          acc[r] = vector::FMAOp::create(b, e.splat(p, vm.elems), vv, acc[r]);
        }
      }
      for (Value a : acc)
        next.push_back(a);
    }
    // pages_s, scores_s and the staged scales are rewritten next tile.
    e.barrier();
    scf::YieldOp::create(b, next);
  }

  // Softmax state of every row to shared memory: l_s[r] at R + r... reuse
  // statS as [l | m] for the epilogue.
  for (int64_t k = 0; k < ownRows; ++k) {
    Value r = e.add(warp, k * W);
    Value first = arith::AndIOp::create(
        b, e.lt(r, e.idx(R)), e.cmp(arith::CmpIPredicate::eq, lane, c0));
    e.ifThen(first, [&] {
      e.store(loop.getResult(2 * k + 1), statS, r);
      e.store(loop.getResult(2 * k), statS, e.add(r, R));
    });
  }
  e.barrier();

  // Sum the token-subsets' accumulators per row, normalize, store.
  Value sub = e.div(tid, vm.lanes), slice = e.rem(tid, vm.lanes);
  for (int64_t r = 0; r < R; ++r) {
    e.vstore(loop.getResult(2 * ownRows + r), redS,
             e.add(e.mul(sub, D), e.mul(slice, vm.elems)));
    e.barrier();
    Value l = e.load(statS, e.idx(r));
    Value m = e.load(statS, e.idx(R + r));
    Value empty =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OLE, l, e.f32(0.0f));
    Value rowFlat = e.add(rowBase, e.idx(r));
    Value outRow = e.add(e.mul(rowFlat, splits), split);
    e.forLoop(tid, e.idx(D), cT, [&](Value d) {
      Value sum = e.f32(0.0f);
      for (int64_t i = 0; i < vm.rowsPerPass; ++i)
        sum = e.fadd(sum, e.load(redS, e.add(d, i * D)));
      Value o = e.select(empty, e.f32(0.0f), arith::DivFOp::create(b, sum, l));
      e.store(o, pout, e.add(e.mul(outRow, D), d));
    });
    e.ifThen(e.cmp(arith::CmpIPredicate::eq, tid, c0), [&] {
      Value lse = e.select(empty, e.negInf(), e.fadd(m, e.log(l)));
      e.store(lse, plse, outRow);
    });
    e.barrier();
  }
  gpu::ReturnOp::create(b);
  return func;
}

//===----------------------------------------------------------------------===//
// Merge kernel
//===----------------------------------------------------------------------===//

gpu::GPUFuncOp kvopt::gpugen::buildMergeKernel(gpu::GPUModuleOp module,
                                               StringRef name, int64_t D,
                                               Type outputType,
                                               int64_t maxSplits, int64_t T) {
  MLIRContext *ctx = module.getContext();
  Type f32t = Float32Type::get(ctx), i32t = IntegerType::get(ctx, 32);
  SmallVector<Type> args = {dynamic1D(f32t), dynamic1D(f32t),
                            dynamic1D(outputType), dynamic1D(f32t), i32t};
  OpBuilder ob(ctx);
  ob.setInsertionPointToEnd(module.getBody());
  ImplicitLocOpBuilder b(module.getLoc(), ob);
  auto func = gpu::GPUFuncOp::create(b, name, FunctionType::get(ctx, args, {}),
                                     TypeRange{sharedF32(ctx, maxSplits)});
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(T), 1, 1}));
  func->setAttr("kv.max_splits", b.getI64IntegerAttr(maxSplits));
  func->setAttr("kv.arg_names", b.getStrArrayAttr({"part_out", "part_lse",
                                                   "out", "lse", "splits"}));
  b.setInsertionPointToStart(&func.getBody().front());
  Emitter e(b);
  Value pout = func.getArgument(0), plse = func.getArgument(1),
        out = func.getArgument(2), lseOut = func.getArgument(3);
  Value splits = e.toIndex(func.getArgument(4));
  Value lseS = func.getWorkgroupAttributions()[0];
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value row = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value seq = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value rows = gpu::GridDimOp::create(b, gpu::Dimension::x);
  Value rowFlat = e.add(e.mul(seq, rows), row);
  Value c0 = e.idx(0), c1 = e.idx(1), cT = e.idx(T);

  e.forLoop(tid, splits, cT, [&](Value i) {
    e.store(e.load(plse, e.add(e.mul(rowFlat, splits), i)), lseS, i);
  });
  e.barrier();
  // Every thread computes the same maximum and weight sum from shared memory.
  auto reduce = [&](bool isMax, Value mx) {
    auto f = scf::ForOp::create(b, c0, splits, c1,
                                ValueRange{isMax ? e.negInf() : e.f32(0.0f)});
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(f.getBody());
    Value v = e.load(lseS, f.getInductionVar());
    Value acc = f.getRegionIterArgs()[0];
    Value nxt;
    if (isMax)
      nxt = e.fmax(acc, v);
    else
      nxt = e.fadd(acc,
                   e.select(e.isNegInf(v), e.f32(0.0f), e.exp(e.fsub(v, mx))));
    scf::YieldOp::create(b, nxt);
    return f.getResult(0);
  };
  Value mx = reduce(true, Value());
  Value none = e.isNegInf(mx);
  Value total = reduce(false, mx);
  e.forLoop(tid, e.idx(D), cT, [&](Value d) {
    auto f = scf::ForOp::create(b, c0, splits, c1, ValueRange{e.f32(0.0f)});
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(f.getBody());
      Value sIdx = f.getInductionVar();
      Value acc = f.getRegionIterArgs()[0];
      Value v = e.load(lseS, sIdx);
      // Parts with lse = -inf weigh nothing and are not read.
      Value nxt = e.ifElse(
          e.isNegInf(v), f32t, [&] { return acc; },
          [&] {
            Value w = e.exp(e.fsub(v, mx));
            Value o = e.load(
                pout, e.add(e.mul(e.add(e.mul(rowFlat, splits), sIdx), D), d));
            return Value(math::FmaOp::create(b, w, o, acc));
          });
      scf::YieldOp::create(b, nxt);
    }
    Value o = e.select(none, e.f32(0.0f),
                       arith::DivFOp::create(b, f.getResult(0), total));
    e.store(e.roundTo(o, outputType), out, e.add(e.mul(rowFlat, D), d));
  });
  e.ifThen(e.cmp(arith::CmpIPredicate::eq, tid, c0), [&] {
    e.store(e.select(none, e.negInf(), e.fadd(mx, e.log(total))), lseOut,
            rowFlat);
  });
  gpu::ReturnOp::create(b);
  return func;
}
