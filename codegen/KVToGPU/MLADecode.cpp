//===- MLADecode.cpp - split-KV decode attention over an MLA latent cache -===//
//
// Builds the decode kernel of kv.mla_attention: MQA of the absorbed queries
// [q_latent, q_rope] over latent rows [c, k_rope] with values c, over
// CacheLayout.md pages of a latent cache, with fused token-axis
// dequantization. Its partial states are merged by the merge kernel of
// DecodeAttention.cpp.
//
//===----------------------------------------------------------------------===//
//
// One block per (KV chunk, block of Rb query rows, sequence); the latent
// cache has a single "head", so every row of every query head reads the
// same rows:
//
//   q_s[Rb][W]      <- the block's query rows [q_latent | q_rope], f32
//   for each tile of N keys of the chunk:
//     pages_s[]     <- block-table entries of the tile (read once)
//     scale_s[]     <- the tile's scales / zero points, f32 (read once)
//     scores_s[r][j] <- scale * q_r . dequant(row_j)   (warps stride the
//                       tokens, lanes split W, xor shuffles reduce)
//     per row r (warp r % warps): online softmax as in the GQA kernel
//     acc[r][ch]    <- alpha_r acc + sum_j p_rj dequant(row_j)[ch]
//                      (thread t owns channels [t Ev, (t + 1) Ev) of the
//                       latent for all Rb rows: no cross-thread reduction)
//   part_out / part_lse of this chunk, normalized.
//
// A tile's latent rows are loaded twice (scores, then values: the second
// read hits L1/L2, which the emulator's counters do not model); staging
// them in shared memory would not fit next to q_s at W = 576.
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"
#include "Kernels.h"

using namespace mlir;
using namespace kvopt;
using namespace kvopt::gpugen;

//===----------------------------------------------------------------------===//
// Layout and schedule
//===----------------------------------------------------------------------===//

FailureOr<MLADecodeConfig>
kvopt::gpugen::computeLatentLayout(kv::LatentCacheType type,
                                   EmitErrorFn emitError) {
  if (!type.getLayout().isPaged())
    return emitError() << "GPU kernels need a paged cache (got a contiguous "
                          "one; run kv-paginate first)";
  MLADecodeConfig cfg;
  cfg.latentDim = type.getLatentDim();
  cfg.ropeDim = type.getRopeDim();
  cfg.pageSize = type.getLayout().getPageSize();
  int64_t W = cfg.width();
  ComponentInfo &c = cfg.row;
  c.element = type.getElementType();
  c.elementBytes = c.element.getIntOrFloatBitWidth() / 8;
  kv::QuantAttr q = type.getQuant();
  c.quant = q;
  c.bits = q ? q.getBits() : c.elementBytes * 8;
  if (q) {
    c.sinks = q.getSinks();
    c.recent = q.getRecent();
    c.channelAxis = q.getAxis() == kv::ScaleAxis::Channel;
    c.group = c.channelAxis ? q.getGroup() : (q.getGroup() ? q.getGroup() : W);
    c.symmetric = q.getSymmetric();
    c.scaleBytes = q.getScaleBytes();
  }
  // [data][scales][zero points], as a kv.cache page of one head of width W.
  int64_t P = cfg.pageSize;
  c.dataOffset = 0;
  int64_t end = P * W * c.bits / 8;
  if (q) {
    // Token axis: [P][W/g]; channel axis: [P/g][W] (g tokens per scale).
    int64_t scales = c.channelAxis ? (P / c.group) * W : P * (W / c.group);
    c.scaleOffset = end;
    end += scales * c.scaleBytes;
    if (c.hasZeros()) {
      c.zeroOffset = end;
      end += scales * c.scaleBytes;
    }
  }
  cfg.pageBytes = end;
  cfg.windowBytes = (c.sinks + c.recent) * W * c.elementBytes;
  return cfg;
}

FailureOr<MLADecodeSchedule> kvopt::gpugen::chooseMLADecodeSchedule(
    const TargetInfo &t, const MLADecodeConfig &cfg, EmitErrorFn emitError) {
  const ComponentInfo &c = cfg.row;
  int64_t W = cfg.width(), Lat = cfg.latentDim;
  MLADecodeSchedule s;
  s.warps = t.decodeWarps;
  s.threads = t.decodeThreads();
  // Scores: the fewest elements per lane (most lanes, a power of two up to
  // the warp) that are whole bytes.
  for (int64_t lanes = t.warpSize; lanes >= 1; lanes /= 2) {
    if (W % lanes || ((W / lanes) * c.bits) % 8)
      continue;
    s.key.lanes = lanes;
    s.key.elems = W / lanes;
    break;
  }
  if (!s.key.lanes)
    return emitError() << "latent rows of width " << W
                       << " cannot be split over lanes in whole bytes";
  s.key.rowsPerPass = s.warps; // one token per warp at a time
  // Values: every thread owns `elems` consecutive latent channels.
  // The fewest channels per thread that cover the latent with at most
  // `threads` threads in whole bytes (int4/int2 need 2/4 codes per byte).
  for (int64_t ev = std::max<int64_t>(1, (Lat + s.threads - 1) / s.threads);
       ev <= Lat; ++ev) {
    if (Lat % ev || (ev * c.bits) % 8)
      continue;
    s.value.elems = ev;
    s.value.lanes = Lat / ev;
    break;
  }
  if (!s.value.elems || s.value.elems > t.appendMaxLaneElems)
    return emitError() << "latent dim " << Lat << " cannot be split over "
                       << s.threads << " threads in whole bytes";
  auto alignOf = [&](int64_t elems) {
    int64_t slice = elems * c.bits / 8;
    int64_t align = std::gcd(std::gcd(cfg.pageBytes, W * c.bits / 8), slice);
    align = std::gcd(align, int64_t(256));
    return pow2Divisor(std::gcd(align, slice), t.maxLoadBytes);
  };
  s.key.loadBytes = alignOf(s.key.elems);
  s.value.loadBytes = alignOf(s.value.elems);
  // Window slots: alignment of a full-precision slice.
  auto windowAlignOf = [&](int64_t elems) {
    return windowAlign(cfg.pageBytes, cfg.windowBytes, 0, W * c.elementBytes,
                       elems * c.elementBytes, t.maxLoadBytes);
  };
  if (c.hasWindow()) {
    s.key.windowLoadBytes = windowAlignOf(s.key.elems);
    s.value.windowLoadBytes = windowAlignOf(s.value.elems);
  }

  // Scores walk the tile one token per warp: a multiple of the warps.
  // Channel-axis groups: tiles (and so chunks) start on group boundaries.
  int64_t unit = c.channelAxis ? std::lcm(s.warps, c.group) : s.warps;
  s.tileTokens = (t.decodeMinTileTokens + unit - 1) / unit * unit;
  int64_t N = s.tileTokens;
  s.tilePages = std::min(N, (N - 1) / cfg.pageSize + 2);
  s.maxSplits = t.maxSplits;
  s.smCount = t.smCount;
  s.blocksPerSM = t.decodeBlocksPerSM;
  s.minChunkTokens = t.minChunkTokens;
  // Rows per block: as many as the accumulators (half the registers) and
  // the static shared memory allow, at most the rows there are.
  int64_t budget = t.decodeRegisterBudget() / 2;
  int64_t staged = !c.quantized()  ? 0
                   : c.channelAxis ? (N / c.group) * W
                                   : N * (W / c.group);
  int64_t scales = staged * (c.hasZeros() ? 2 : 1);
  auto shared = [&](int64_t rb) {
    return 4 * (rb * W + rb * N + 2 * rb + scales) + 4 * s.tilePages;
  };
  int64_t rb = std::min<int64_t>(cfg.rows(), budget / s.value.elems);
  while (rb > 1 && shared(rb) > t.staticSharedPerBlock)
    --rb;
  if (rb < 1 || shared(rb) > t.staticSharedPerBlock)
    return emitError() << "MLA decode kernel needs " << shared(1)
                       << " bytes of shared memory for one query row, more "
                          "than the "
                       << t.staticSharedPerBlock << " of " << t.chip;
  s.rowsPerBlock = rb;
  s.sharedBytes = shared(rb);
  return s;
}

//===----------------------------------------------------------------------===//
// Kernel
//===----------------------------------------------------------------------===//

gpu::GPUFuncOp kvopt::gpugen::buildMLADecodeKernel(gpu::GPUModuleOp module,
                                                   StringRef name,
                                                   const MLADecodeConfig &cfg,
                                                   const MLADecodeSchedule &s) {
  MLIRContext *ctx = module.getContext();
  const ComponentInfo &c = cfg.row;
  const int64_t Rb = s.rowsPerBlock, R = cfg.rows(), W = cfg.width(),
                Lat = cfg.latentDim, N = s.tileTokens, T = s.threads,
                NW = s.warps, P = cfg.pageSize;
  Type f32t = Float32Type::get(ctx), i32t = IntegerType::get(ctx, 32),
       i8t = IntegerType::get(ctx, 8);
  SmallVector<Type> args = {dynamic1D(cfg.queryType),
                            dynamic1D(cfg.queryType),
                            dynamic1D(i8t),
                            dynamic1D(i32t),
                            dynamic1D(i32t),
                            dynamic1D(f32t),
                            dynamic1D(f32t),
                            i32t,
                            i32t,
                            i32t};
  // Staged scales: token axis [N][W/g]; channel axis [N/g][W].
  int64_t perTok = c.quantized() && !c.channelAxis ? W / c.group : 0;
  int64_t nScales = !c.quantized()  ? 0
                    : c.channelAxis ? (N / c.group) * W
                                    : N * perTok;
  SmallVector<Type> workgroup = {
      sharedF32(ctx, Rb * W), // q_s
      sharedF32(ctx, Rb * N), // scores_s (then p)
      sharedF32(ctx, 2 * Rb), // alpha_s, then l_s | m_s
      MemRefType::get({s.tilePages}, i32t, MemRefLayoutAttrInterface{},
                      gpu::AddressSpaceAttr::get(
                          ctx, gpu::AddressSpace::Workgroup)), // pages_s
      sharedF32(ctx, nScales),
      sharedF32(ctx, c.hasZeros() ? nScales : 0)};

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
  func->setAttr("kv.rows_per_block", b.getI64IntegerAttr(Rb));
  func->setAttr("kv.arg_names",
                b.getStrArrayAttr({"q_latent", "q_rope", "pool", "block_table",
                                   "seq_lens", "part_out", "part_lse",
                                   "max_pages", "splits", "chunk_tokens"}));

  b.setInsertionPointToStart(&func.getBody().front());
  Emitter e(b);
  Value ql = func.getArgument(0), qr = func.getArgument(1),
        pool = func.getArgument(2), table = func.getArgument(3),
        lens = func.getArgument(4), pout = func.getArgument(5),
        plse = func.getArgument(6);
  Value maxPages = e.toIndex(func.getArgument(7));
  Value splits = e.toIndex(func.getArgument(8));
  Value chunkTokens = e.toIndex(func.getArgument(9));
  auto wg = func.getWorkgroupAttributions();
  Value qS = wg[0], scoreS = wg[1], statS = wg[2], pageS = wg[3];
  Value scaleS = nScales ? Value(wg[4]) : Value();
  Value zeroS = c.hasZeros() ? Value(wg[5]) : Value();

  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value split = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value rowBlock = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value seq = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  Value warp = e.div(tid, 32), lane = e.rem(tid, 32);
  Value c0 = e.idx(0), c1 = e.idx(1), cT = e.idx(T);
  Value length = e.loadIndex(lens, seq);
  // Rows [row0, row0 + Rb) of this sequence's R = Hq * Tq rows.
  Value row0 = e.mul(rowBlock, Rb);
  Value rowsHere = e.min(e.idx(Rb), e.sub(e.idx(R), row0));
  Value seqRow0 = e.add(e.mul(seq, R), row0); // flat [B, Hq, Tq] row

  // Queries to shared memory as f32; rows past R are zero.
  e.forLoop(tid, e.idx(Rb * W), cT, [&](Value i) {
    Value r = e.div(i, W), col = e.rem(i, W);
    Value x = e.ifElse(
        e.lt(r, rowsHere), f32t,
        [&] {
          Value flat = e.add(seqRow0, r);
          Value isLatent = e.lt(col, e.idx(Lat));
          Value v = e.ifElse(
              isLatent, cfg.queryType,
              [&] { return e.load(ql, e.add(e.mul(flat, Lat), col)); },
              [&] {
                return e.load(qr, e.add(e.mul(flat, cfg.ropeDim),
                                        e.sub(col, e.idx(Lat))));
              });
          return cfg.queryType.isF32()
                     ? v
                     : Value(arith::ExtFOp::create(b, f32t, v));
        },
        [&] { return e.f32(0.0f); });
    e.store(x, qS, i);
  });

  Value chunkBegin = e.mul(split, chunkTokens);
  Value chunkEnd = e.min(e.add(chunkBegin, chunkTokens), length);
  Value keys = e.max(e.sub(chunkEnd, chunkBegin), c0);
  Value tiles = e.div(e.add(keys, N - 1), N);

  int64_t ownRows = (Rb + NW - 1) / NW;
  const int64_t Ev = s.value.elems;
  SmallVector<Value> init;
  for (int64_t k = 0; k < ownRows; ++k) {
    init.push_back(e.negInf());
    init.push_back(e.f32(0.0f));
  }
  for (int64_t r = 0; r < Rb; ++r)
    init.push_back(e.splat(e.f32(0.0f), Ev));

  auto pageOf = [&](Value token, Value firstPage) {
    Value p = e.load(pageS, e.sub(e.div(token, P), firstPage));
    return e.mul(e.toIndex(p), cfg.pageBytes);
  };
  // This sequence's window region.
  Value windowBase;
  if (c.hasWindow())
    windowBase = e.windowRegion(pool, lens, seq, cfg.windowBytes);
  // Dequantized f32 vector<n> of channels [ch0, ch0 + n) of `token`'s
  // stored row.
  auto loadStoredSlice = [&](Value token, Value local, Value ch0, int64_t n,
                             int64_t loadBytes, Value firstPage) -> Value {
    Value base = pageOf(token, firstPage);
    Value elem = e.add(e.mul(e.rem(token, P), W), ch0);
    Value off = e.add(e.add(base, c.dataOffset), e.div(e.mul(elem, c.bits), 8));
    Value raw = e.loadBytes(pool, off, n * c.bits / 8, loadBytes);
    if (!c.quantized())
      return e.decodeFloat(raw, n, c.element);
    Value codes = e.decodeCodes(raw, n, c);
    Value sc, zr;
    if (c.channelAxis) {
      Value at = e.add(e.mul(e.div(local, c.group), W), ch0);
      sc = e.vload(e.vec(n, f32t), scaleS, at, 4);
      if (zeroS)
        zr = e.vload(e.vec(n, f32t), zeroS, at, 4);
    } else {
      std::tie(sc, zr) = e.stagedTokenScales(
          scaleS, zeroS, e.mul(local, perTok), ch0, n, c.group);
    }
    if (zr)
      return math::FmaOp::create(b, codes, sc, zr);
    return e.fmul(codes, sc);
  };
  // The slice as attention sees it: window tokens (t < sinks, t >= length -
  // recent) exactly from their slots (sinks, then a ring by t % recent).
  auto loadSlice = [&](Value token, Value local, Value ch0, int64_t n,
                       const RowMapping &rm, Value firstPage) -> Value {
    if (!c.hasWindow())
      return loadStoredSlice(token, local, ch0, n, rm.loadBytes, firstPage);
    return e.ifElse(
        e.inWindow(token, length, c.sinks, c.recent), e.vec(n, f32t),
        [&] {
          Value slot = e.windowSlot(token, c.sinks, c.recent);
          Value off = e.add(windowBase,
                            e.mul(e.add(e.mul(slot, W), ch0), c.elementBytes));
          Value raw =
              e.loadBytes(pool, off, n * c.elementBytes, rm.windowLoadBytes);
          return e.decodeFloat(raw, n, c.element);
        },
        [&] {
          return loadStoredSlice(token, local, ch0, n, rm.loadBytes, firstPage);
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

    // 1. Block-table entries, 2. scales and zero points of the tile.
    e.stageTilePages(table, pageS, seq, maxPages, firstPage, pageCount, tid);
    if (nScales) {
      int64_t align = std::gcd(std::gcd(cfg.pageBytes, c.scaleOffset),
                               std::gcd(c.zeroOffset, c.scaleBytes));
      align = pow2Divisor(std::gcd(align, int64_t(256)), c.scaleBytes);
      // Floats per staged unit: a token's groups, or a token group's
      // channels.
      int64_t perUnit = c.channelAxis ? W : perTok;
      e.forLoop(tid, e.idx(nScales), cT, [&](Value i) {
        Value unitIdx = e.div(i, perUnit), col = e.rem(i, perUnit);
        Value token = c.channelAxis ? e.add(t0, e.mul(unitIdx, c.group))
                                    : e.add(t0, unitIdx);
        e.ifThen(e.lt(token, end), [&] {
          Value base = pageOf(token, firstPage);
          Value row =
              c.channelAxis ? e.div(e.rem(token, P), c.group) : e.rem(token, P);
          Value off = e.mul(e.add(e.mul(row, perUnit), col), c.scaleBytes);
          Type st = c.quant.getScale();
          e.store(e.loadScale(pool, e.add(e.add(base, c.scaleOffset), off), st,
                              align),
                  scaleS, i);
          if (zeroS)
            e.store(e.loadScale(pool, e.add(e.add(base, c.zeroOffset), off), st,
                                align),
                    zeroS, i);
        });
      });
      e.barrier();
    }

    // 3. Scores: warp w takes tokens w, w + NW, ...; lanes split W.
    {
      // Loops, not unrolled code: the Rb accumulators stay live across this
      // phase, and unrolled rows let the scheduler hoist loads until ptxas
      // spills.
      const RowMapping &km = s.key;
      e.forLoop(c0, e.idx(N / NW), c1, [&](Value pass) {
        Value local = e.add(warp, e.mul(pass, NW));
        Value token = e.add(t0, local);
        Value valid = e.lt(token, end);
        Value ch0 = e.mul(lane, km.elems);
        Value inLanes = e.lt(lane, e.idx(km.lanes));
        Value kv = e.ifElse(
            arith::AndIOp::create(b, valid, inLanes), e.vec(km.elems, f32t),
            [&] {
              return loadSlice(token, local, ch0, km.elems, km, firstPage);
            },
            [&] { return e.splat(e.f32(0.0f), km.elems); });
        e.forLoop(c0, e.idx(Rb), c1, [&](Value r) {
          Value qv = e.ifElse(
              inLanes, e.vec(km.elems, f32t),
              [&] {
                return e.vload(e.vec(km.elems, f32t), qS,
                               e.add(ch0, e.mul(r, W)), 4);
              },
              [&] { return e.splat(e.f32(0.0f), km.elems); });
          Value dot = vector::ReductionOp::create(b, vector::CombiningKind::ADD,
                                                  e.fmul(qv, kv));
          dot = e.xorReduce(dot, 32, /*isMax=*/false);
          Value score = e.fmul(dot, e.f32(cfg.scale));
          Value visible = valid;
          if (cfg.causal) {
            Value pos = e.add(e.sub(length, e.idx(cfg.queryLen)),
                              e.rem(e.add(row0, r), cfg.queryLen));
            visible = arith::AndIOp::create(
                b, visible, e.cmp(arith::CmpIPredicate::sle, token, pos));
          }
          score = e.select(visible, score, e.negInf());
          e.ifThen(e.cmp(arith::CmpIPredicate::eq, lane, c0),
                   [&] { e.store(score, scoreS, e.add(local, e.mul(r, N))); });
        });
      });
    }
    e.barrier();

    // 4. Online softmax, row r owned by warp r % NW; lanes walk the tile.
    SmallVector<Value> next;
    for (int64_t k = 0; k < ownRows; ++k) {
      Value r = e.add(warp, k * NW);
      auto [mNew, lNew] =
          e.onlineSoftmaxRow(scoreS, statS, r, e.lt(r, e.idx(Rb)), lane, N,
                             carried[2 * k], carried[2 * k + 1]);
      next.push_back(mNew);
      next.push_back(lNew);
    }
    e.barrier();

    // 5. acc = alpha * acc + P V; thread t owns latent channels t * Ev.
    {
      Value ch0 = e.mul(tid, Ev);
      Value owner = e.lt(tid, e.idx(s.value.lanes));
      SmallVector<Value> acc;
      for (int64_t r = 0; r < Rb; ++r)
        acc.push_back(e.fmul(carried[2 * ownRows + r],
                             e.splat(e.load(statS, e.idx(r)), Ev)));
      auto inner = scf::ForOp::create(b, c0, e.sub(end, t0), c1, acc);
      {
        OpBuilder::InsertionGuard g2(b);
        b.setInsertionPointToStart(inner.getBody());
        Value local = inner.getInductionVar();
        Value token = e.add(t0, local);
        Value vv = e.ifElse(
            owner, e.vec(Ev, f32t),
            [&] {
              return loadSlice(token, local, ch0, Ev, s.value, firstPage);
            },
            [&] { return e.splat(e.f32(0.0f), Ev); });
        SmallVector<Value> upd;
        for (int64_t r = 0; r < Rb; ++r) {
          Value p = e.load(scoreS, e.add(local, r * N));
          upd.push_back(vector::FMAOp::create(b, e.splat(p, Ev), vv,
                                              inner.getRegionIterArgs()[r]));
        }
        scf::YieldOp::create(b, upd);
      }
      for (Value a : inner.getResults())
        next.push_back(a);
    }
    e.barrier();
    scf::YieldOp::create(b, next);
  }

  // l and m of every row to shared memory.
  for (int64_t k = 0; k < ownRows; ++k) {
    Value r = e.add(warp, k * NW);
    Value first = arith::AndIOp::create(
        b, e.lt(r, e.idx(Rb)), e.cmp(arith::CmpIPredicate::eq, lane, c0));
    e.ifThen(first, [&] {
      e.store(loop.getResult(2 * k + 1), statS, r);
      e.store(loop.getResult(2 * k), statS, e.add(r, Rb));
    });
  }
  e.barrier();

  // Normalize and store each thread's channels of every valid row.
  Value ch0 = e.mul(tid, Ev);
  for (int64_t r = 0; r < Rb; ++r) {
    Value l = e.load(statS, e.idx(r));
    Value m = e.load(statS, e.idx(Rb + r));
    Value empty =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OLE, l, e.f32(0.0f));
    Value outRow = e.add(e.mul(e.add(seqRow0, e.idx(r)), splits), split);
    Value live = e.lt(e.idx(r), rowsHere);
    e.ifThen(arith::AndIOp::create(b, live, e.lt(tid, e.idx(s.value.lanes))),
             [&] {
               Value a = loop.getResult(2 * ownRows + r);
               Value o = e.select(empty, e.splat(e.f32(0.0f), Ev),
                                  arith::DivFOp::create(b, a, e.splat(l, Ev)));
               for (int64_t i = 0; i < Ev; ++i)
                 e.store(vector::ExtractOp::create(b, o, ArrayRef<int64_t>{i}),
                         pout, e.add(e.add(e.mul(outRow, Lat), ch0), i));
             });
    e.ifThen(arith::AndIOp::create(b, live,
                                   e.cmp(arith::CmpIPredicate::eq, tid, c0)),
             [&] {
               Value lse = e.select(empty, e.negInf(), e.fadd(m, e.log(l)));
               e.store(lse, plse, outRow);
             });
  }
  gpu::ReturnOp::create(b);
  return func;
}
