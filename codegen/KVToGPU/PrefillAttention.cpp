//===- PrefillAttention.cpp - tensor-core prefill attention over pages ----===//
//
// Builds the prefill / chunked-prefill kernel of kv.attention: many query
// rows per KV head (G query heads x Tq new tokens), FlashAttention-2 style
// on tensor cores (mma.sync m16n8k16, f16 or bf16 multiplicands, f32
// accumulators), keys and values read through the block table.
//
//===----------------------------------------------------------------------===//
//
// One block of 4 warps (2 above head dim 128) per (16 x warps query rows,
// KV head, sequence); warp w owns
// rows [16 w, 16 w + 16) of the block, held as mma A fragments (Q) for the
// whole kernel:
//
//   for each tile of N keys (N = 32):
//     K_s, V_s [N][D + 8]  <- the tile's K and V rows from their pages
//                             (16-byte chunks, padded rows against bank
//                             conflicts; tokens past the end are zero)
//     S = Q K^T            mma per 8-key column tile and 16-channel step;
//                          B fragments are channel pairs of one K_s row
//     mask, online softmax per row: a thread holds rows g and g + 8 of its
//                          warp's 16; row max/sum over the 4 lanes of a
//                          quad by xor shuffles
//     O = alpha O + P V    P's accumulators become A fragments in place
//                          (rounded to the multiplicand type), V's B
//                          fragments are token pairs of one V_s column
//   out = O / l (in the output type), lse = m + log l.
//
// Fragment layouts are PTX's for mma.m16n8k16 (g = lane / 4, q = lane % 4):
// A register r holds [g + 8 (r % 2)][2q + 8 (r / 2) + {0, 1}], B register r
// [2q + 8 r + {0, 1}][g], C/D element i [g + 8 (i / 2)][2q + i % 2].
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"
#include "Kernels.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

using namespace mlir;
using namespace kvopt;
using namespace kvopt::gpugen;

//===----------------------------------------------------------------------===//
// Schedule
//===----------------------------------------------------------------------===//

LogicalResult kvopt::gpugen::checkPrefillConfig(const TargetInfo &t,
                                                const DecodeConfig &cfg,
                                                EmitErrorFn emitError) {
  const PagedLayout &l = cfg.layout;
  Type el = l.key.element;
  for (const ComponentInfo *c : {&l.key, &l.value}) {
    // The dequantizing staging needs a few more registers than the wide
    // schedule has left (ptxas spills at head dim 256).
    if (c->quantized() && l.headDim > t.prefillWideHeadDim)
      return emitError() << "tensor-core prefill over quantized caches "
                            "needs a head dim of at most "
                         << t.prefillWideHeadDim << " (got " << l.headDim
                         << ")";
  }
  if (!el.isF16() && !el.isBF16())
    return emitError() << "tensor-core prefill needs an f16 or bf16 cache "
                          "(got "
                       << el << ")";
  if (cfg.queryType != el)
    return emitError() << "tensor-core prefill needs queries of the cache's "
                          "element type "
                       << el << " (got " << cfg.queryType << ")";
  if (l.headDim % 16 || l.headDim > t.prefillMaxHeadDim)
    return emitError() << "tensor-core prefill needs a head dim that is a "
                          "multiple of 16 and at most "
                       << t.prefillMaxHeadDim << " (got " << l.headDim << ")";
  return success();
}

int64_t kvopt::gpugen::prefillSharedBytes(const TargetInfo &t,
                                          const DecodeConfig &cfg) {
  int64_t D = cfg.layout.headDim, N = t.prefillTileFor(D);
  int64_t tilePages = std::min(N, (N - 1) / cfg.layout.pageSize + 2);
  return 2 * N * (D + 8) * cfg.layout.key.elementBytes + 4 * tilePages;
}

//===----------------------------------------------------------------------===//
// Kernel
//===----------------------------------------------------------------------===//

gpu::GPUFuncOp kvopt::gpugen::buildPrefillKernel(gpu::GPUModuleOp module,
                                                 StringRef name,
                                                 const TargetInfo &t,
                                                 const DecodeConfig &cfg) {
  MLIRContext *ctx = module.getContext();
  const PagedLayout &L = cfg.layout;
  const int64_t D = L.headDim, Hkv = L.kvHeads, P = L.pageSize, R = cfg.rows(),
                N = t.prefillTileFor(D), W = t.prefillWarpsFor(D),
                T = W * t.warpSize, RB = 16 * W, DP = D + 8;
  const int64_t tilePages = std::min(N, (N - 1) / P + 2);
  Type el = L.key.element;
  const bool bf16 = el.isBF16();
  Type f32t = Float32Type::get(ctx), i32t = IntegerType::get(ctx, 32),
       i8t = IntegerType::get(ctx, 8);
  auto wgSpace = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  SmallVector<Type> args = {dynamic1D(cfg.queryType),
                            dynamic1D(i8t),
                            dynamic1D(i32t),
                            dynamic1D(i32t),
                            dynamic1D(cfg.outputType),
                            dynamic1D(f32t),
                            i32t};
  SmallVector<Type> workgroup = {
      MemRefType::get({N * DP}, el, MemRefLayoutAttrInterface{}, wgSpace),
      MemRefType::get({N * DP}, el, MemRefLayoutAttrInterface{}, wgSpace),
      MemRefType::get({tilePages}, i32t, MemRefLayoutAttrInterface{}, wgSpace)};

  OpBuilder ob(ctx);
  ob.setInsertionPointToEnd(module.getBody());
  ImplicitLocOpBuilder b(module.getLoc(), ob);
  auto func = gpu::GPUFuncOp::create(b, name, FunctionType::get(ctx, args, {}),
                                     workgroup);
  // The tiles are addressed in 16-byte chunks and 4-byte pairs: declare the
  // alignment rather than rely on the backend's placement.
  for (unsigned i = 0; i < workgroup.size(); ++i)
    func.setWorkgroupAttributionAttr(i, LLVM::LLVMDialect::getAlignAttrName(),
                                     b.getI64IntegerAttr(16));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(T), 1, 1}));
  func->setAttr("kv.tile_tokens", b.getI64IntegerAttr(N));
  func->setAttr("kv.rows_per_block", b.getI64IntegerAttr(RB));
  func->setAttr("kv.shared_bytes",
                b.getI64IntegerAttr(prefillSharedBytes(t, cfg)));
  func->setAttr("kv.arg_names",
                b.getStrArrayAttr({"q", "pool", "block_table", "seq_lens",
                                   "out", "lse", "max_pages"}));

  b.setInsertionPointToStart(&func.getBody().front());
  Emitter e(b);
  Value q = func.getArgument(0), pool = func.getArgument(1),
        table = func.getArgument(2), lens = func.getArgument(3),
        out = func.getArgument(4), lseOut = func.getArgument(5);
  Value maxPages = e.toIndex(func.getArgument(6));
  auto wg = func.getWorkgroupAttributions();
  Value kS = wg[0], vS = wg[1], pageS = wg[2];

  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value rowBlock = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value seq = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  Value warp = e.div(tid, 32), lane = e.rem(tid, 32);
  Value g = e.div(lane, 4), qd = e.rem(lane, 4);
  Value q2 = e.mul(qd, 2);
  Value c0 = e.idx(0), c1 = e.idx(1), cT = e.idx(T);
  Value length = e.loadIndex(lens, seq);
  // Row r of this KV head's G * Tq rows is flat row rowBase + r of
  // [B, Hq, Tq]; the warp's rows start at row0.
  Value rowBase = e.mul(e.add(e.mul(seq, Hkv), h), R);
  Value row0 = e.add(e.mul(rowBlock, RB), e.mul(warp, 16));
  VectorType v2 = e.vec(2, el), v2f = e.vec(2, f32t);
  auto structType =
      LLVM::LLVMStructType::getLiteral(ctx, SmallVector<Type>(4, f32t));

  // A multiplicand register: a vector<2 x f16>, or for bf16 the i32 of the
  // pair (NVVM's operand type).
  auto operand = [&](Value pair) -> Value {
    if (!bf16)
      return pair;
    Value w = vector::BitCastOp::create(b, e.vec(1, i32t), pair);
    return vector::ExtractOp::create(b, w, ArrayRef<int64_t>{0});
  };
  auto mma = [&](ArrayRef<Value> a, ArrayRef<Value> bb,
                 ArrayRef<Value> c) -> SmallVector<Value> {
    std::optional<std::array<NVVM::MMATypes, 2>> types;
    if (bf16)
      types = std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16,
                                            NVVM::MMATypes::bf16};
    auto op = NVVM::MmaOp::create(
        b, structType, a, bb, c, ArrayRef<int64_t>{16, 8, 16}, std::nullopt,
        std::nullopt, types,
        std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                       NVVM::MMALayout::col});
    SmallVector<Value> d;
    for (int64_t i = 0; i < 4; ++i)
      d.push_back(
          LLVM::ExtractValueOp::create(b, op.getRes(), ArrayRef<int64_t>{i}));
    return d;
  };
  // f32 pair rounded (RNE) to the multiplicand type.
  auto pack = [&](Value x, Value y) -> Value {
    return e.roundTo(vector::FromElementsOp::create(b, v2f, ValueRange{x, y}),
                     el);
  };

  // Q fragments for the warp's 16 rows (zero past the G * Tq rows).
  SmallVector<SmallVector<Value>> qf(D / 16);
  for (int64_t ks = 0; ks < D / 16; ++ks)
    for (int64_t r = 0; r < 4; ++r) {
      Value row = e.add(e.add(row0, g), e.idx(8 * (r % 2)));
      Value col = e.add(q2, e.idx(ks * 16 + 8 * (r / 2)));
      Value pair = e.ifElse(
          e.lt(row, e.idx(R)), v2,
          [&] {
            return e.vload(v2, q, e.add(e.mul(e.add(rowBase, row), D), col),
                           2 * L.key.elementBytes);
          },
          [&] {
            Value zero =
                arith::ConstantOp::create(b, el, b.getFloatAttr(el, 0.0));
            return Value(vector::BroadcastOp::create(b, v2, zero));
          });
      qf[ks].push_back(operand(pair));
    }

  // Loop-carried: m and l of rows g and g + 8, then O[D / 8][4].
  SmallVector<Value> init = {e.negInf(), e.negInf(), e.f32(0.0f), e.f32(0.0f)};
  for (int64_t i = 0; i < D / 2; ++i)
    init.push_back(e.f32(0.0f));
  Value tiles = e.div(e.add(length, N - 1), N);
  // Alignment of a 16-byte chunk of a K or V row in the pool.
  int64_t rowBytes = D * L.key.elementBytes;
  auto chunkAlign = [&](const ComponentInfo &c) {
    int64_t a = std::gcd(std::gcd(L.pageBytes, c.dataOffset),
                         std::gcd(rowBytes, int64_t(16)));
    return pow2Divisor(std::gcd(a, int64_t(256)), t.maxLoadBytes);
  };
  const int64_t chunkElems = 16 / L.key.elementBytes;
  // Alignment of a chunk's codes and of one scale in the pool.
  auto codeAlign = [&](const ComponentInfo &c) {
    int64_t bytes = chunkElems * c.bits / 8;
    int64_t a = std::gcd(std::gcd(L.pageBytes, c.dataOffset),
                         std::gcd(D * c.bits / 8, bytes));
    return pow2Divisor(std::gcd(a, int64_t(256)), t.maxLoadBytes);
  };
  // Full-precision windows: this sequence's region and the alignment of a
  // 16-byte chunk in it.
  Value windowBase;
  if (L.hasWindows())
    windowBase = e.windowRegion(pool, lens, seq, L.windowBytes);
  auto chunkWindowAlign = [&](const ComponentInfo &c) {
    return windowAlign(L.pageBytes, L.windowBytes, c.windowOffset, rowBytes, 16,
                       t.maxLoadBytes);
  };
  auto scaleAlign = [&](const ComponentInfo &c) {
    int64_t a = std::gcd(std::gcd(L.pageBytes, c.scaleOffset),
                         std::gcd(c.zeroOffset, c.scaleBytes));
    return pow2Divisor(std::gcd(a, int64_t(256)), c.scaleBytes);
  };

  auto loop = scf::ForOp::create(b, c0, tiles, c1, init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    SmallVector<Value> st(loop.getRegionIterArgs().begin(),
                          loop.getRegionIterArgs().end());
    Value t0 = e.mul(loop.getInductionVar(), N);
    Value end = e.min(e.add(t0, N), length);
    Value firstPage = e.div(t0, P);
    Value pageCount = e.add(e.sub(e.div(e.sub(end, c1), P), firstPage), c1);

    // 1. Block-table entries; 2. the tile's K and V rows to shared memory.
    e.stageTilePages(table, pageS, seq, maxPages, firstPage, pageCount, tid);
    int64_t chunks = N * D / chunkElems;
    for (const auto &kv :
         {std::pair<const ComponentInfo *, Value>{&L.key, kS},
          std::pair<const ComponentInfo *, Value>{&L.value, vS}}) {
      const ComponentInfo *c = kv.first;
      Value dst = kv.second;
      int64_t align = chunkAlign(*c);
      e.forLoop(tid, e.idx(chunks), cT, [&](Value i) {
        Value local = e.div(i, D / chunkElems);
        Value ch = e.mul(e.rem(i, D / chunkElems), chunkElems);
        Value token = e.add(t0, local);
        Value vec = e.ifElse(
            e.lt(token, end), e.vec(chunkElems, el),
            [&] {
              Value p = e.load(pageS, e.sub(e.div(token, P), firstPage));
              Value base = e.mul(e.toIndex(p), L.pageBytes);
              Value row = e.add(e.mul(e.rem(token, P), Hkv), h);
              Value elem = e.add(e.mul(row, D), ch);
              if (!c->quantized()) {
                Value off = e.add(e.add(base, c->dataOffset),
                                  e.mul(elem, c->elementBytes));
                Value raw = e.loadBytes(pool, off, 16, align);
                return Value(
                    vector::BitCastOp::create(b, e.vec(chunkElems, el), raw));
              }
              // Token-axis codes dequantized in f32 (one fma with the zero
              // point) and rounded to the element type the mma reads;
              // window tokens exactly from their slots.
              auto stored = [&]() -> Value {
                int64_t bytes = chunkElems * c->bits / 8;
                Value off = e.add(e.add(base, c->dataOffset),
                                  e.div(e.mul(elem, c->bits), 8));
                Value codes =
                    e.decodeCodes(e.loadBytes(pool, off, bytes, codeAlign(*c)),
                                  chunkElems, *c);
                Type st = c->quant.getScale();
                VectorType vf = e.vec(chunkElems, f32t);
                if (c->channelAxis) {
                  // One scale per channel and group of g tokens:
                  // [page/g][Hkv][D], the chunk's 8 consecutive channels.
                  Value srow =
                      e.add(e.mul(e.div(e.rem(token, P), c->group), Hkv), h);
                  Value at = e.mul(e.add(e.mul(srow, D), ch), c->scaleBytes);
                  auto scales = [&](int64_t region) {
                    SmallVector<Value> xs;
                    for (int64_t j = 0; j < chunkElems; ++j)
                      xs.push_back(e.loadScale(
                          pool,
                          e.add(e.add(base, region),
                                e.add(at, e.idx(j * c->scaleBytes))),
                          st, scaleAlign(*c)));
                    return Value(vector::FromElementsOp::create(b, vf, xs));
                  };
                  Value sc = scales(c->scaleOffset);
                  Value x = c->hasZeros()
                                ? Value(math::FmaOp::create(
                                      b, codes, sc, scales(c->zeroOffset)))
                                : e.fmul(codes, sc);
                  return e.roundTo(x, el);
                }
                int64_t perRow = D / c->group;
                auto scaleAt = [&](int64_t region, Value groupIdx) {
                  Value at =
                      e.mul(e.add(e.mul(row, perRow), groupIdx), c->scaleBytes);
                  return e.loadScale(pool, e.add(e.add(base, region), at), st,
                                     scaleAlign(*c));
                };
                SmallVector<Value> sv, zv;
                // Chunks start at multiples of chunkElems: when groups and
                // chunks nest, one load per group the chunk touches; else
                // (e.g. groups of 12 or 6) every channel finds its own group.
                bool nested =
                    c->group % chunkElems == 0 || chunkElems % c->group == 0;
                for (int64_t j = 0; j < chunkElems; ++j) {
                  if (!nested || j % std::min(c->group, chunkElems) == 0) {
                    Value gi = e.div(e.add(ch, e.idx(j)), c->group);
                    sv.push_back(scaleAt(c->scaleOffset, gi));
                    zv.push_back(c->hasZeros() ? scaleAt(c->zeroOffset, gi)
                                               : e.f32(0.0f));
                  } else {
                    sv.push_back(sv.back());
                    zv.push_back(zv.back());
                  }
                }
                Value x = math::FmaOp::create(
                    b, codes, vector::FromElementsOp::create(b, vf, sv),
                    vector::FromElementsOp::create(b, vf, zv));
                return e.roundTo(x, el);
              };
              if (!c->hasWindow())
                return stored();
              return e.ifElse(
                  e.inWindow(token, length, c->sinks, c->recent),
                  e.vec(chunkElems, el),
                  [&] {
                    Value slot = e.windowSlot(token, c->sinks, c->recent);
                    Value welem =
                        e.add(e.mul(e.add(e.mul(slot, Hkv), h), D), ch);
                    Value off = e.add(e.add(windowBase, e.idx(c->windowOffset)),
                                      e.mul(welem, c->elementBytes));
                    Value raw =
                        e.loadBytes(pool, off, 16, chunkWindowAlign(*c));
                    return Value(vector::BitCastOp::create(
                        b, e.vec(chunkElems, el), raw));
                  },
                  stored);
            },
            [&] {
              Value zero =
                  arith::ConstantOp::create(b, el, b.getFloatAttr(el, 0.0));
              return Value(
                  vector::BroadcastOp::create(b, e.vec(chunkElems, el), zero));
            });
        // (local * (D + 8) + ch) elements is a multiple of 16 bytes.
        vector::StoreOp::create(b, vec, dst,
                                ValueRange{e.add(e.mul(local, DP), ch)},
                                /*nontemporal=*/false, llvm::MaybeAlign(16));
      });
    }
    e.barrier();

    // 3. S = scale * Q K^T, masked.
    SmallVector<SmallVector<Value>> s(N / 8);
    for (int64_t nt = 0; nt < N / 8; ++nt) {
      SmallVector<Value> acc(4, e.f32(0.0f));
      Value krow = e.mul(e.add(e.idx(nt * 8), g), DP);
      for (int64_t ks = 0; ks < D / 16; ++ks) {
        SmallVector<Value> bf;
        for (int64_t r = 0; r < 2; ++r)
          bf.push_back(operand(e.vload(
              v2, kS, e.add(krow, e.add(q2, e.idx(ks * 16 + 8 * r))), 4)));
        acc = mma(qf[ks], bf, acc);
      }
      for (int64_t i = 0; i < 4; ++i) {
        Value row = e.add(e.add(row0, g), e.idx(8 * (i / 2)));
        Value token = e.add(t0, e.add(q2, e.idx(nt * 8 + i % 2)));
        Value visible =
            arith::AndIOp::create(b, e.lt(token, end), e.lt(row, e.idx(R)));
        if (cfg.causal || cfg.window) {
          Value pos = e.add(e.sub(length, e.idx(cfg.queryLen)),
                            e.rem(row, cfg.queryLen));
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
        s[nt].push_back(
            e.select(visible, e.fmul(acc[i], e.f32(cfg.scale)), e.negInf()));
      }
    }

    // 4. Online softmax of rows g (half 0) and g + 8 (half 1).
    auto quad = [&](Value v, bool isMax) {
      for (int64_t off : {1, 2}) {
        Value o = gpu::ShuffleOp::create(b, v, off, 32, gpu::ShuffleMode::XOR)
                      .getShuffleResult();
        v = isMax ? e.fmax(v, o) : e.fadd(v, o);
      }
      return v;
    };
    SmallVector<Value> next(4);
    SmallVector<Value> alpha(2);
    for (int64_t half = 0; half < 2; ++half) {
      Value mx = e.negInf();
      for (int64_t nt = 0; nt < N / 8; ++nt)
        for (int64_t j = 0; j < 2; ++j)
          mx = e.fmax(mx, s[nt][2 * half + j]);
      mx = quad(mx, /*isMax=*/true);
      Value mOld = st[half], lOld = st[2 + half];
      Value mNew = e.fmax(mOld, mx);
      Value mNewInf = e.isNegInf(mNew);
      alpha[half] =
          e.select(e.isNegInf(mOld), e.f32(0.0f), e.exp(e.fsub(mOld, mNew)));
      Value sum = e.f32(0.0f);
      for (int64_t nt = 0; nt < N / 8; ++nt)
        for (int64_t j = 0; j < 2; ++j) {
          Value &v = s[nt][2 * half + j];
          Value dead = arith::OrIOp::create(b, e.isNegInf(v), mNewInf);
          v = e.select(dead, e.f32(0.0f), e.exp(e.fsub(v, mNew)));
          sum = e.fadd(sum, v);
        }
      sum = quad(sum, /*isMax=*/false);
      next[half] = mNew;
      next[2 + half] = e.fadd(e.fmul(lOld, alpha[half]), sum);
    }

    // 5. O = alpha O + P V.
    SmallVector<SmallVector<Value>> o(D / 8);
    for (int64_t dt = 0; dt < D / 8; ++dt)
      for (int64_t i = 0; i < 4; ++i)
        o[dt].push_back(e.fmul(st[4 + dt * 4 + i], alpha[i / 2]));
    for (int64_t kk = 0; kk < N / 16; ++kk) {
      // P's accumulators of column tiles 2kk, 2kk + 1 are this k-step's A.
      SmallVector<Value> pa;
      for (int64_t r = 0; r < 4; ++r) {
        const SmallVector<Value> &tile = s[2 * kk + r / 2];
        int64_t i0 = 2 * (r % 2);
        pa.push_back(operand(pack(tile[i0], tile[i0 + 1])));
      }
      for (int64_t dt = 0; dt < D / 8; ++dt) {
        SmallVector<Value> bf;
        Value col = e.add(e.idx(dt * 8), g);
        for (int64_t r = 0; r < 2; ++r) {
          Value tok = e.add(q2, e.idx(kk * 16 + 8 * r));
          Value x = e.load(vS, e.add(e.mul(tok, DP), col));
          Value y = e.load(vS, e.add(e.mul(e.add(tok, c1), DP), col));
          bf.push_back(
              operand(vector::FromElementsOp::create(b, v2, ValueRange{x, y})));
        }
        o[dt] = mma(pa, bf, o[dt]);
      }
    }
    for (auto &tile : o)
      for (Value v : tile)
        next.push_back(v);
    // K_s, V_s and the page entries are rewritten next tile.
    e.barrier();
    scf::YieldOp::create(b, next);
  }

  // out = O / l in the output type, lse = m + log l.
  for (int64_t half = 0; half < 2; ++half) {
    Value row = e.add(e.add(row0, g), e.idx(8 * half));
    Value m = loop.getResult(half), l = loop.getResult(2 + half);
    Value empty =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OLE, l, e.f32(0.0f));
    Value flat = e.add(rowBase, row);
    e.ifThen(e.lt(row, e.idx(R)), [&] {
      for (int64_t dt = 0; dt < D / 8; ++dt)
        for (int64_t j = 0; j < 2; ++j) {
          Value acc = loop.getResult(4 + dt * 4 + 2 * half + j);
          Value v =
              e.select(empty, e.f32(0.0f), arith::DivFOp::create(b, acc, l));
          Value col = e.add(q2, e.idx(dt * 8 + j));
          e.store(e.roundTo(v, cfg.outputType), out,
                  e.add(e.mul(flat, D), col));
        }
      e.ifThen(e.cmp(arith::CmpIPredicate::eq, qd, c0), [&] {
        e.store(e.select(empty, e.negInf(), e.fadd(m, e.log(l))), lseOut, flat);
      });
    });
  }
  gpu::ReturnOp::create(b);
  return func;
}
