//===- AppendKernel.cpp - fused RoPE + quantize + scatter append kernel ---===//
//
// Builds the kernel of kv.append over CacheLayout.md pages: every new
// (token, head) row of K and V is rotated (keys, optional rotate-half RoPE),
// rounded to the cache element, quantized with the exact recipe of
// docs/Numerics.md and stored into its page through the block table.
//
//===----------------------------------------------------------------------===//
//
// One block writes `rowsPerBlock` rows (token-major, heads adjacent, so
// consecutive rows land in consecutive bytes of a page slot) of one
// sequence. Per component, `lanes` adjacent threads share a row, each with
// `elems` consecutive channels in registers:
//
//   x      <- the lane's slice of the new row (f32), keys rotated by RoPE
//             (the partner half is loaded, cos/sin from a double-precision
//             reduction, so no libdevice slow path and no local memory)
//   x      <- x rounded to the cache element
//   lo, hi <- min/max of each token-axis scale group: in the lane when it
//             holds whole groups, else xor shuffles over the group's lanes
//   codes  <- encode(x, scale, zero) packed as in CacheLayout.md
//   store the slice; the lane that starts a group stores scale and zero.
//
// Every lane of a warp executes every shuffle: rows past the end carry
// zeros and store nothing. Each byte a row owns in its page is stored by
// exactly one thread, once.
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"
#include "KVToCPU/KernelBuilder.h"
#include "Kernels.h"

#include <cmath>

using namespace mlir;
using namespace kvopt;
using namespace kvopt::gpugen;

//===----------------------------------------------------------------------===//
// Schedule
//===----------------------------------------------------------------------===//

static bool isPow2(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

/// The lane mapping of component `c`: the most lanes (fewest channels per
/// lane) such that a lane's slice is whole bytes, a scale group is either
/// inside one lane or spread over a power-of-two run of lanes, and (keys
/// with RoPE) a slice lies inside one half of the row.
static FailureOr<AppendMapping>
mapAppendRow(const TargetInfo &t, const PagedLayout &l, const ComponentInfo &c,
             bool rope, StringRef what, EmitErrorFn emitError) {
  int64_t D = l.headDim;
  for (int64_t lanes = std::min(t.warpSize, D); lanes >= 1; --lanes) {
    if (D % lanes)
      continue;
    int64_t E = D / lanes;
    if (E > t.appendMaxLaneElems)
      break; // fewer lanes only widen the slice
    if ((E * c.bits) % 8)
      continue;
    if (rope && lanes > 1 && (D / 2) % E)
      continue;
    int64_t groupLanes = 1;
    if (c.quantized() && !c.channelAxis && E % c.group != 0) {
      if (c.group % E || !isPow2(c.group / E) || c.group / E > t.warpSize)
        continue;
      groupLanes = c.group / E;
    }
    AppendMapping m;
    m.lanes = lanes;
    m.elems = E;
    m.groupLanes = groupLanes;
    // Alignment of a lane's slice: pool 256-byte aligned, then page, data
    // region, row and slice offsets.
    int64_t slice = E * c.bits / 8;
    int64_t align = std::gcd(std::gcd(l.pageBytes, c.dataOffset),
                             std::gcd(D * c.bits / 8, slice));
    align = std::gcd(align, int64_t(256));
    m.storeBytes = pow2Divisor(std::gcd(align, slice), t.maxLoadBytes);
    // Window slots (docs/GPU.md).
    if (c.hasWindow())
      m.windowBytes = windowAlign(l.pageBytes, l.windowBytes, c.windowOffset,
                                  l.kvHeads * D * c.elementBytes,
                                  E * c.elementBytes, t.maxLoadBytes);
    // Channel-axis scales and zero points: [page/g][Hkv][D] per page.
    if (c.quantized() && c.channelAxis) {
      int64_t sl = E * c.scaleBytes;
      int64_t sa = std::gcd(
          std::gcd(std::gcd(l.pageBytes, c.scaleOffset),
                   c.hasZeros() ? c.zeroOffset : c.scaleOffset),
          std::gcd(l.kvHeads * D * c.scaleBytes, std::gcd(sl, int64_t(256))));
      m.channelScaleBytes = pow2Divisor(sa, t.maxLoadBytes);
    }
    return m;
  }
  return emitError() << "GPU append: no lane mapping for " << what
                     << " rows of head dim " << D
                     << (c.quantized() ? " with scale groups of " +
                                             std::to_string(c.group)
                                       : std::string())
                     << " (at most " << t.appendMaxLaneElems
                     << " channels per lane, whole bytes per lane)";
}

FailureOr<AppendSchedule> kvopt::gpugen::chooseAppendSchedule(
    const TargetInfo &t, const AppendConfig &cfg, EmitErrorFn emitError) {
  const PagedLayout &l = cfg.layout;
  bool channelAxis = false;
  for (const ComponentInfo *c : {&l.key, &l.value})
    channelAxis |= c->quantized() && c->channelAxis;
  if (cfg.ropeTheta > 0 && l.headDim % 2)
    return emitError() << "RoPE needs an even head dim (got " << l.headDim
                       << ")";
  AppendSchedule s;
  s.threads = t.appendThreads;
  auto k = mapAppendRow(t, l, l.key, cfg.ropeTheta > 0, "key", emitError);
  if (failed(k))
    return failure();
  auto v = mapAppendRow(t, l, l.value, false, "value", emitError);
  if (failed(v))
    return failure();
  s.key = *k;
  s.value = *v;
  s.rowsPerBlock =
      std::max<int64_t>(1, s.threads / std::max(s.key.lanes, s.value.lanes));
  // A channel-axis group is quantized when its last token arrives, from the
  // window copies of its earlier tokens; later tokens of the same append
  // overwrite ring slots. One block per sequence orders the two with a
  // barrier.
  if (channelAxis) {
    s.rowsPerBlock = cfg.tokens * l.kvHeads;
    int64_t lanes = std::max(s.key.lanes, s.value.lanes);
    // More threads for many KV heads, up to appendMaxChannelThreads: every
    // pass is unrolled, and past 256 threads ptxas caps the registers
    // (65536 / threads) below what a pass keeps live.
    s.threads = std::clamp<int64_t>((s.rowsPerBlock * lanes + t.warpSize - 1) /
                                        t.warpSize * t.warpSize,
                                    t.appendThreads, t.appendMaxChannelThreads);
    int64_t passes = (s.rowsPerBlock * lanes + s.threads - 1) / s.threads;
    if (passes > t.appendMaxChannelPasses)
      return emitError() << "GPU append to channel-axis scales writes all "
                         << cfg.tokens << " x " << l.kvHeads
                         << " new rows of a sequence in one block: " << passes
                         << " passes of " << s.threads
                         << " threads, more than the "
                         << t.appendMaxChannelPasses << " of " << t.chip
                         << " (append fewer tokens per kv.append)";
  }
  return s;
}

//===----------------------------------------------------------------------===//
// Emission
//===----------------------------------------------------------------------===//

namespace {

/// fdlibm's Cody-Waite split of pi/2 and its sin/cos kernels on
/// [-pi/4, pi/4] (errors far below an f32 ulp).
constexpr double kPio2Hi = 1.57079632673412561417e+00;
constexpr double kPio2Lo = 6.07710050650619224932e-11;
constexpr double kTwoOverPi = 6.36619772367581382433e-01;
constexpr double kSin[] = {
    -1.66666666666666324348e-01, 8.33333333332248946124e-03,
    -1.98412698298579493134e-04, 2.75573137070700676789e-06,
    -2.50507602534068634195e-08, 1.58969099521155010221e-10};
constexpr double kCos[] = {
    4.16666666666666019037e-02, -1.38888888888741095749e-03,
    2.48015872894767294178e-05, -2.75573143513906633035e-07,
    2.08757232129817482790e-09, -1.13596475577881948265e-11};

/// The kernel body's vocabulary beyond Emitter: element conversion, byte
/// stores, warp min/max, cos/sin.
struct AppendEmitter {
  ImplicitLocOpBuilder &b;
  Emitter &e;
  cpu::KB &k;
  Value pool;

  Type f32t() { return b.getF32Type(); }
  int64_t count(Value v) {
    return cast<VectorType>(v.getType()).getNumElements();
  }

  /// vector<n x T> loaded from a memref of f16/bf16/f32, as vector<n x f32>.
  Value inputToF32(Value v, Type t) {
    int64_t n = count(v);
    if (t.isF32())
      return v;
    if (t.isF16())
      return arith::ExtFOp::create(b, e.vec(n, f32t()), v);
    Value raw = vector::BitCastOp::create(b, e.vec(2 * n, b.getI8Type()), v);
    return e.decodeFloat(raw, n, t);
  }

  /// The bytes of f32 vector `x` rounded (RNE) to `t` (f16, bf16, f32).
  Value toBytes(Value x, Type t) {
    int64_t n = count(x);
    int64_t bytes = t.getIntOrFloatBitWidth() / 8;
    Value v = e.roundTo(x, t);
    return vector::BitCastOp::create(b, e.vec(n * bytes, b.getI8Type()), v);
  }

  /// Stores vector<n x i8> at byte `off` of the pool in `align`-byte pieces.
  void storeBytes(Value v, Value off, int64_t align) {
    int64_t n = count(v);
    int64_t a = pow2Divisor(std::gcd(align, n), align);
    for (int64_t i = 0; i < n; i += a) {
      Value piece = v;
      if (a != n) {
        SmallVector<int64_t> mask(a);
        std::iota(mask.begin(), mask.end(), i);
        piece = vector::ShuffleOp::create(b, v, v, mask);
      }
      vector::StoreOp::create(b, piece, pool, ValueRange{e.add(off, i)},
                              /*nontemporal=*/false, llvm::MaybeAlign(a));
    }
  }

  /// Element `i` of a vector.
  Value at(Value v, int64_t i) {
    return vector::ExtractOp::create(b, v, ArrayRef<int64_t>{i});
  }

  /// Min and max of elements [from, from + n) of `v`.
  std::pair<Value, Value> range(Value v, int64_t from, int64_t n) {
    Value lo = at(v, from), hi = lo;
    for (int64_t i = from + 1; i < from + n; ++i) {
      Value x = at(v, i);
      lo = arith::MinimumFOp::create(b, lo, x);
      hi = arith::MaximumFOp::create(b, hi, x);
    }
    return {lo, hi};
  }

  /// Min (or max) over aligned runs of `lanes` adjacent lanes; every lane of
  /// the warp must execute it.
  Value warpReduce(Value v, int64_t lanes, bool isMax) {
    for (int64_t off = lanes / 2; off >= 1; off /= 2) {
      Value other = gpu::ShuffleOp::create(b, v, off, 32, gpu::ShuffleMode::XOR)
                        .getShuffleResult();
      v = isMax ? Value(arith::MaximumFOp::create(b, v, other))
                : Value(arith::MinimumFOp::create(b, v, other));
    }
    return v;
  }

  /// cos and sin of f32 vector `angle` (>= 0), rounded to f32 from a double
  /// result: reduction by k * pi/2 with a two-term Cody-Waite split (k *
  /// kPio2Hi is exact for k < 2^20, i.e. angles below ~1.6e6, positions up
  /// to ~1.6M tokens; beyond, the reduction error grows like angle * 2^-53)
  /// and the polynomials in double.
  std::pair<Value, Value> cosSin(Value angle) {
    int64_t n = count(angle);
    Type f64t = b.getF64Type();
    VectorType vd = e.vec(n, f64t);
    auto cd = [&](double v) {
      return e.splat(
          arith::ConstantFloatOp::create(b, cast<FloatType>(f64t), APFloat(v)),
          n);
    };
    auto mul = [&](Value x, Value y) { return arith::MulFOp::create(b, x, y); };
    auto add = [&](Value x, Value y) { return arith::AddFOp::create(b, x, y); };
    auto sub = [&](Value x, Value y) { return arith::SubFOp::create(b, x, y); };
    Value a = arith::ExtFOp::create(b, vd, angle);
    // j = round-to-nearest-even(a * 2/pi) by the 1.5 * 2^52 shift.
    Value magic = cd(0x1.8p52);
    Value j = sub(add(mul(a, cd(kTwoOverPi)), magic), magic);
    Value r = sub(sub(a, mul(j, cd(kPio2Hi))), mul(j, cd(kPio2Lo)));
    Value z = mul(r, r);
    auto poly = [&](const double *c) {
      Value p = cd(c[5]);
      for (int i = 4; i >= 0; --i)
        p = add(cd(c[i]), mul(z, p));
      return p;
    };
    Value s = add(r, mul(mul(r, z), poly(kSin)));
    Value c = add(sub(cd(1.0), mul(cd(0.5), z)), mul(mul(z, z), poly(kCos)));
    VectorType vi = e.vec(n, b.getI64Type());
    Value q = arith::AndIOp::create(
        b, arith::FPToSIOp::create(b, vi, j),
        e.splat(arith::ConstantIntOp::create(b, b.getI64Type(), 3), n));
    auto isQ = [&](int64_t v) {
      return arith::CmpIOp::create(
          b, arith::CmpIPredicate::eq, q,
          e.splat(arith::ConstantIntOp::create(b, b.getI64Type(), v), n));
    };
    Value ns = arith::NegFOp::create(b, s), nc = arith::NegFOp::create(b, c);
    auto pick = [&](Value v0, Value v1, Value v2, Value v3) {
      Value v = arith::SelectOp::create(b, isQ(2), v2, v3);
      v = arith::SelectOp::create(b, isQ(1), v1, v);
      return arith::SelectOp::create(b, isQ(0), v0, v);
    };
    // angle = j * pi/2 + r: quadrant j mod 4 permutes and negates.
    Value sinA = pick(s, c, ns, nc);
    Value cosA = pick(c, ns, nc, s);
    VectorType vf = e.vec(n, f32t());
    return {arith::TruncFOp::create(b, vf, cosA),
            arith::TruncFOp::create(b, vf, sinA)};
  }
};

/// f32 inverse frequencies theta^(-2i/D), i in [from, from + n), rounded
/// from double exactly as the CPU lowering's constants.
Value invFreq(ImplicitLocOpBuilder &b, double theta, int64_t D, int64_t from,
              int64_t n) {
  SmallVector<float> inv;
  for (int64_t i = from; i < from + n; ++i)
    inv.push_back(static_cast<float>(std::pow(theta, -2.0 * i / D)));
  auto type = VectorType::get({n}, b.getF32Type());
  return arith::ConstantOp::create(
      b, DenseElementsAttr::get(type, ArrayRef<float>(inv)));
}

} // namespace

gpu::GPUFuncOp kvopt::gpugen::buildAppendKernel(gpu::GPUModuleOp module,
                                                StringRef name,
                                                const AppendConfig &cfg,
                                                const AppendSchedule &s) {
  MLIRContext *ctx = module.getContext();
  const PagedLayout &L = cfg.layout;
  const int64_t D = L.headDim, Hkv = L.kvHeads, P = L.pageSize, T = cfg.tokens,
                RB = s.rowsPerBlock, NT = s.threads;
  Type i8t = IntegerType::get(ctx, 8), i32t = IntegerType::get(ctx, 32),
       f32t = Float32Type::get(ctx);
  SmallVector<Type> args = {dynamic1D(i8t),          dynamic1D(i32t),
                            dynamic1D(cfg.keyInput), dynamic1D(cfg.valueInput),
                            dynamic1D(i32t),         i32t};

  OpBuilder ob(ctx);
  ob.setInsertionPointToEnd(module.getBody());
  ImplicitLocOpBuilder b(module.getLoc(), ob);
  auto func = gpu::GPUFuncOp::create(b, name, FunctionType::get(ctx, args, {}),
                                     TypeRange{});
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(NT), 1, 1}));
  func->setAttr("kv.rows_per_block", b.getI64IntegerAttr(RB));
  func->setAttr("kv.arg_names",
                b.getStrArrayAttr({"pool", "positions", "keys", "values",
                                   "block_table", "max_pages"}));

  b.setInsertionPointToStart(&func.getBody().front());
  Emitter e(b);
  cpu::KB k(b);
  Value pool = func.getArgument(0), positions = func.getArgument(1),
        table = func.getArgument(4);
  AppendEmitter a{b, e, k, pool};
  Value maxPages = e.toIndex(func.getArgument(5));
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value blk = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value seq = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value start = e.loadIndex(positions, seq);
  Value c0 = e.idx(0);

  // This sequence's window region (docs/GPU.md).
  Value windowBase;
  if (L.hasWindows())
    windowBase = e.windowRegion(pool, positions, seq, L.windowBytes);

  auto component = [&](const ComponentInfo &c, const AppendMapping &m,
                       Value input, Type inputType, bool rope) {
    const int64_t E = m.elems, lanes = m.lanes;
    const int64_t passes = (RB * lanes + NT - 1) / NT;
    // Byte offset of the lane's slice of window slot `slot`, head `h`.
    auto windowSlice = [&](Value slot, Value h, Value ch0) {
      Value elem = e.add(e.mul(e.add(e.mul(slot, Hkv), h), D), ch0);
      return e.add(e.add(windowBase, e.idx(c.windowOffset)),
                   e.mul(elem, c.elementBytes));
    };
    struct Written {
      Value valid, pos, h, ch0, stored;
    };
    SmallVector<Written> written;
    for (int64_t pass = 0; pass < passes; ++pass) {
      Value linear = e.add(tid, pass * NT);
      Value local = e.div(linear, lanes), slice = e.rem(linear, lanes);
      Value rowIdx = e.add(e.mul(blk, RB), local);
      Value valid = arith::AndIOp::create(b, e.lt(local, e.idx(RB)),
                                          e.lt(rowIdx, e.idx(T * Hkv)));
      Value r = e.select(valid, rowIdx, c0);
      Value t = e.div(r, Hkv), h = e.rem(r, Hkv);
      Value pos = e.add(start, t);
      Value ch0 = e.mul(slice, E);
      int64_t inBytes = inputType.getIntOrFloatBitWidth() / 8;
      // The lane's slice of new token `tt` (of this append, at position
      // `tpos`) as f32, keys rotated; zeros where `ok` is false.
      auto newSlice = [&](Value tt, Value tpos, Value ok) {
        Value inBase = e.mul(e.add(e.mul(e.add(e.mul(seq, Hkv), h), T), tt), D);
        auto loadSlice = [&](Value channel) {
          return e.ifElse(
              ok, e.vec(E, f32t),
              [&] {
                Value at = e.add(inBase, channel);
                VectorType vt = e.vec(E, inputType);
                // A vector of a power-of-two count is one load; others
                // (e.g. 5 or 3 channels) are loaded element by element so
                // that no lane reads past its slice.
                Value v;
                if (isPow2(E)) {
                  v = e.vload(vt, input, at, inBytes);
                } else {
                  SmallVector<Value> xs;
                  for (int64_t i = 0; i < E; ++i)
                    xs.push_back(e.load(input, e.add(at, i)));
                  v = vector::FromElementsOp::create(b, vt, xs);
                }
                return a.inputToF32(v, inputType);
              },
              [&] { return e.splat(e.f32(0.0f), E); });
        };
        Value x = loadSlice(ch0);
        if (!rope)
          return x;
        // Position as the CPU lowering converts it: index -> i64 -> f32.
        Value posF = arith::UIToFPOp::create(
            b, f32t, arith::IndexCastOp::create(b, b.getI64Type(), tpos));
        int64_t half = D / 2;
        if (lanes == 1) {
          SmallVector<int64_t> lo(half), hi(half), all(D);
          std::iota(lo.begin(), lo.end(), 0);
          std::iota(hi.begin(), hi.end(), half);
          std::iota(all.begin(), all.end(), 0);
          Value x1 = vector::ShuffleOp::create(b, x, x, lo);
          Value x2 = vector::ShuffleOp::create(b, x, x, hi);
          Value angle = e.fmul(e.splat(posF, half),
                               invFreq(b, cfg.ropeTheta, D, 0, half));
          auto [cs, sn] = a.cosSin(angle);
          Value y1 = e.fsub(e.fmul(x1, cs), e.fmul(x2, sn));
          Value y2 = e.fadd(e.fmul(x2, cs), e.fmul(x1, sn));
          return Value(vector::ShuffleOp::create(b, y1, y2, all));
        }
        // The slice lies in one half; its partner is the other half's
        // slice at the same frequencies.
        int64_t halfLanes = lanes / 2;
        Value first = e.lt(slice, e.idx(halfLanes));
        Value partner =
            e.select(first, e.add(ch0, half), e.sub(ch0, e.idx(half)));
        Value xp = loadSlice(partner);
        Value which = e.rem(slice, halfLanes);
        Value inv = invFreq(b, cfg.ropeTheta, D, 0, E);
        for (int64_t q = 1; q < halfLanes; ++q)
          inv = e.select(e.cmp(arith::CmpIPredicate::eq, which, e.idx(q)),
                         invFreq(b, cfg.ropeTheta, D, q * E, E), inv);
        Value angle = e.fmul(e.splat(posF, E), inv);
        auto [cs, sn] = a.cosSin(angle);
        Value xc = e.fmul(x, cs), ps = e.fmul(xp, sn);
        return e.select(first, e.fsub(xc, ps), e.fadd(xc, ps));
      };
      Value x = newSlice(t, pos, valid);

      // The page slot of (pos, h); only valid rows read the block table.
      Value page = e.ifElse(
          valid, b.getIndexType(),
          [&] {
            return e.loadIndex(table,
                               e.add(e.mul(seq, maxPages), e.div(pos, P)));
          },
          [&] { return c0; });
      Value base = e.mul(page, L.pageBytes);
      Value row = e.add(e.mul(e.rem(pos, P), Hkv), h);
      Value elem = e.add(e.mul(row, D), ch0);

      Value stored = a.toBytes(x, c.element);
      if (!c.quantized()) {
        Value off =
            e.add(e.add(base, c.dataOffset), e.mul(elem, c.elementBytes));
        e.ifThen(valid, [&] { a.storeBytes(stored, off, m.storeBytes); });
        continue;
      }
      written.push_back({valid, pos, h, ch0, stored});
      // Quantize the element-rounded values (what the reference sees).
      Value xr = e.decodeFloat(stored, E, c.element);
      const int64_t g = c.group;
      kv::QuantAttr q = c.quant;
      if (c.channelAxis) {
        // The token completing a group of g quantizes the whole group per
        // channel: earlier tokens of this append from the input, older
        // ones from their recent-ring copies (recent >= g - 1).
        Value leader = arith::AndIOp::create(
            b, valid,
            e.cmp(arith::CmpIPredicate::eq, e.rem(pos, g), e.idx(g - 1)));
        e.ifThen(leader, [&] {
          Value first = e.sub(pos, e.idx(g - 1));
          auto tokenSlice = [&](Value tok) {
            Value isNew = e.cmp(arith::CmpIPredicate::sge, tok, start);
            return e.ifElse(
                isNew, e.vec(E, f32t),
                [&] {
                  Value fresh = newSlice(e.sub(tok, start), tok, isNew);
                  return e.decodeFloat(a.toBytes(fresh, c.element), E,
                                       c.element);
                },
                [&] {
                  Value ring = e.ringSlot(tok, c.sinks, c.recent);
                  Value raw = e.loadBytes(pool, windowSlice(ring, h, ch0),
                                          E * c.elementBytes, m.windowBytes);
                  return e.decodeFloat(raw, E, c.element);
                });
          };
          // A group of one token has no earlier tokens (and may have no
          // window): only its own row.
          Value lo = xr, hi = xr;
          if (g > 1) {
            auto range = scf::ForOp::create(
                b, c0, e.idx(g - 1), e.idx(1), ValueRange{xr, xr},
                [&](OpBuilder &nested, Location, Value u, ValueRange it) {
                  OpBuilder::InsertionGuard guard(b);
                  b.setInsertionPoint(nested.getInsertionBlock(),
                                      nested.getInsertionPoint());
                  Value v = tokenSlice(e.add(first, u));
                  scf::YieldOp::create(
                      b, ValueRange{arith::MinimumFOp::create(b, it[0], v),
                                    arith::MaximumFOp::create(b, it[1], v)});
                });
            lo = range.getResult(0);
            hi = range.getResult(1);
          }
          cpu::QuantParams p = cpu::computeQuantParams(k, q, lo, hi);
          // Codes of the group's tokens: one page (g divides the page).
          Value firstSlot = e.rem(first, P);
          auto encodeStore = [&](Value u, Value v) {
            Value packed = cpu::packCodes(k, q, cpu::encodeCodes(k, q, v, p));
            Value rr = e.add(e.mul(e.add(firstSlot, u), Hkv), h);
            Value el = e.add(e.mul(rr, D), ch0);
            a.storeBytes(
                packed,
                e.add(e.add(base, c.dataOffset), e.div(e.mul(el, c.bits), 8)),
                m.storeBytes);
          };
          if (g > 1)
            e.forLoop(c0, e.idx(g - 1), e.idx(1), [&](Value u) {
              encodeStore(u, tokenSlice(e.add(first, u)));
            });
          encodeStore(e.idx(g - 1), xr);
          // Per-channel scales (and zero points): [P/g][Hkv][D].
          Value srow = e.add(e.mul(e.div(e.rem(pos, P), g), Hkv), h);
          Value soff = e.mul(e.add(e.mul(srow, D), ch0), c.scaleBytes);
          Type st = q.getScale();
          a.storeBytes(a.toBytes(p.scale, st),
                       e.add(e.add(base, c.scaleOffset), soff),
                       m.channelScaleBytes);
          if (c.hasZeros())
            a.storeBytes(a.toBytes(p.zero, st),
                         e.add(e.add(base, c.zeroOffset), soff),
                         m.channelScaleBytes);
        });
        continue;
      }
      SmallVector<cpu::QuantParams> params;
      Value codes;
      if (m.groupLanes == 1) {
        SmallVector<Value> sv, zv;
        for (int64_t j = 0; j < E / g; ++j) {
          auto [lo, hi] = a.range(xr, j * g, g);
          params.push_back(cpu::computeQuantParams(k, q, lo, hi));
          for (int64_t i = 0; i < g; ++i) {
            sv.push_back(params.back().scale);
            zv.push_back(params.back().zero);
          }
        }
        cpu::QuantParams p = params.front();
        if (E / g > 1) {
          p.scale = vector::FromElementsOp::create(b, e.vec(E, f32t), sv);
          p.zero = vector::FromElementsOp::create(b, e.vec(E, f32t), zv);
        }
        codes = cpu::encodeCodes(k, q, xr, p);
      } else {
        auto [lo, hi] = a.range(xr, 0, E);
        lo = a.warpReduce(lo, m.groupLanes, /*isMax=*/false);
        hi = a.warpReduce(hi, m.groupLanes, /*isMax=*/true);
        params.push_back(cpu::computeQuantParams(k, q, lo, hi));
        codes = cpu::encodeCodes(k, q, xr, params.front());
      }
      Value packed = cpu::packCodes(k, q, codes);
      Value dataOff =
          e.add(e.add(base, c.dataOffset), e.div(e.mul(elem, c.bits), 8));
      e.ifThen(valid, [&] { a.storeBytes(packed, dataOff, m.storeBytes); });

      // Scales and zero points: [slot][Hkv][D/g] in the scale type.
      int64_t align = std::gcd(std::gcd(L.pageBytes, c.scaleOffset),
                               std::gcd(c.zeroOffset, c.scaleBytes));
      align = pow2Divisor(std::gcd(align, int64_t(256)), c.scaleBytes);
      Value firstGroup = e.add(e.mul(row, D / g), e.div(ch0, g));
      Value leader = valid;
      if (m.groupLanes > 1)
        leader = arith::AndIOp::create(
            b, valid,
            e.cmp(arith::CmpIPredicate::eq, e.rem(slice, m.groupLanes), c0));
      e.ifThen(leader, [&] {
        for (size_t j = 0; j < params.size(); ++j) {
          Value off = e.mul(e.add(firstGroup, int64_t(j)), c.scaleBytes);
          Type st = q.getScale();
          a.storeBytes(a.toBytes(e.splat(params[j].scale, 1), st),
                       e.add(e.add(base, c.scaleOffset), off), align);
          if (c.hasZeros())
            a.storeBytes(a.toBytes(e.splat(params[j].zero, 1), st),
                         e.add(e.add(base, c.zeroOffset), off), align);
        }
      });
    }
    // Full-precision copies: the sink slot (t < sinks) and the recent ring
    // slot sinks + t % recent, after every channel-axis group of this
    // append has read the ring slots these overwrite.
    if (!c.hasWindow())
      return;
    if (c.quantized() && c.channelAxis)
      e.barrier();
    for (const Written &w : written) {
      if (c.sinks > 0)
        e.ifThen(arith::AndIOp::create(b, w.valid, e.lt(w.pos, e.idx(c.sinks))),
                 [&] {
                   a.storeBytes(w.stored, windowSlice(w.pos, w.h, w.ch0),
                                m.windowBytes);
                 });
      // A token whose slot a later token of this append takes (t + recent
      // < T) does not write it: every slot is stored once, by its last.
      if (c.recent > 0)
        e.ifThen(arith::AndIOp::create(b, w.valid,
                                       e.cmp(arith::CmpIPredicate::sge,
                                             e.add(w.pos, c.recent),
                                             e.add(start, T))),
                 [&] {
                   Value ring = e.ringSlot(w.pos, c.sinks, c.recent);
                   a.storeBytes(w.stored, windowSlice(ring, w.h, w.ch0),
                                m.windowBytes);
                 });
    }
  };

  component(L.key, s.key, func.getArgument(2), cfg.keyInput, cfg.ropeTheta > 0);
  component(L.value, s.value, func.getArgument(3), cfg.valueInput, false);
  gpu::ReturnOp::create(b);
  return func;
}
