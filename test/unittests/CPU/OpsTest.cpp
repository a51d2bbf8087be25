//===- OpsTest.cpp - CPU lowering of the remaining kv ops -----------------===//
//
// kv.rope, kv.merge_states, kv.quantize/kv.dequantize, kv.gather_pages,
// kv.view and kv.mla_project through the ExecutionEngine against the
// reference.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include "kvopt/Reference/Numeric.h"

#include <cmath>
#include <sstream>

using namespace kvopt;
using namespace kvopt::cputest;
using namespace kvopt::reference;

namespace {
/// Compiles a one-function module whose memref arguments are wrapped in
/// to_tensor and whose results land in the trailing output memrefs.
std::string wrap(const std::string &name, const std::vector<std::string> &ins,
                 const std::vector<std::string> &outs, const std::string &op) {
  std::ostringstream src;
  src << "func.func @" << name << "(";
  for (size_t i = 0; i < ins.size(); ++i)
    src << (i ? ", " : "") << "%i" << i << ": memref<" << ins[i] << ">";
  for (size_t i = 0; i < outs.size(); ++i)
    src << ", %o" << i << ": memref<" << outs[i] << ">";
  src << ") {\n";
  for (size_t i = 0; i < ins.size(); ++i)
    src << "  %t" << i << " = bufferization.to_tensor %i" << i
        << " restrict : memref<" << ins[i] << "> to tensor<" << ins[i] << ">\n";
  src << "  " << op << "\n";
  for (size_t i = 0; i < outs.size(); ++i)
    src << "  bufferization.materialize_in_destination %r" << i
        << " in restrict writable %o" << i << " : (tensor<" << outs[i]
        << ">, memref<" << outs[i] << ">) -> ()\n";
  src << "  return\n}\n";
  return src.str();
}
} // namespace

TEST(CPUOps, RopeWithinTheF32AngleBound) {
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    int64_t b = 2, h = 2, t = 3, d = 64;
    Tensor x = randomTensor(rng, {b, h, t, d}, ScalarType::F32);
    std::vector<int64_t> start = {randomInt(rng, 0, 40000),
                                  randomInt(rng, 0, 16)};
    Tensor want = applyRope(x, appendPositions(start, t), 10000.0);
    std::string xt = shapeType({b, h, t, d}, "f32");
    CPUModule &m = compiled(
        wrap("rope", {xt, "2xi32"}, {xt},
             "%r0 = kv.rope %t0, %t1 {theta = 10000.0 : f64} : tensor<" + xt +
                 ">, tensor<2xi32> -> tensor<" + xt + ">"));
    std::vector<float> in(x.values().begin(), x.values().end()), out(x.numel());
    std::vector<int32_t> pos(start.begin(), start.end());
    std::vector<Desc> descs = {makeDesc(in.data(), {b, h, t, d}),
                               makeDesc(pos.data(), {b}),
                               makeDesc(out.data(), {b, h, t, d})};
    call(m, "rope", descs);
    double u = std::ldexp(1.0, -24);
    for (int64_t i = 0; i < x.numel(); ++i) {
      int64_t seq = i / (h * t * d), tok = (i / d) % t;
      double pos = start[seq] + tok;
      // docs/Numerics.md: |dy| <= |x|_pair (2u pos + 4u), |x|_pair <= sqrt2.
      double tol = std::sqrt(2.0) * (2 * u * pos + 4 * u) + u;
      ASSERT_NEAR(out[i], want.data()[i], tol) << "element " << i;
    }
  }
}

TEST(CPUOps, MergeStatesMatchesReference) {
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    int64_t s = 3, n = 8, d = 32;
    std::vector<AttentionResult> parts(s);
    std::vector<float> outs(s * n * d), lses(s * n);
    for (int64_t p = 0; p < s; ++p) {
      parts[p].out = randomTensor(rng, {1, n, 1, d}, ScalarType::F32, -3, 3);
      parts[p].lse = randomTensor(rng, {1, n, 1}, ScalarType::F32, -5, 5);
      for (int64_t r = 0; r < n; ++r) {
        // Empty splits (lse -inf) must weigh nothing; row 0 has none at all.
        if (r == 0 || (r == 1 && p == 1))
          parts[p].lse.at({0, r, 0}) = -INFINITY;
        lses[p * n + r] = static_cast<float>(parts[p].lse.at({0, r, 0}));
        for (int64_t e = 0; e < d; ++e)
          outs[(p * n + r) * d + e] =
              static_cast<float>(parts[p].out.at({0, r, 0, e}));
      }
    }
    AttentionResult want = mergeStates(parts);
    std::string ot = shapeType({s, 1, n, 1, d}, "f32"),
                lt = shapeType({s, 1, n, 1}, "f32");
    std::string mo = shapeType({1, n, 1, d}, "f32"),
                ml = shapeType({1, n, 1}, "f32");
    CPUModule &m = compiled(wrap(
        "merge", {ot, lt}, {mo, ml},
        "%r0, %r1 = kv.merge_states %t0, %t1 : tensor<" + ot + ">, tensor<" +
            lt + "> -> tensor<" + mo + ">, tensor<" + ml + ">"));
    std::vector<float> out(n * d), lse(n);
    std::vector<Desc> descs = {makeDesc(outs.data(), {s, 1, n, 1, d}),
                               makeDesc(lses.data(), {s, 1, n, 1}),
                               makeDesc(out.data(), {1, n, 1, d}),
                               makeDesc(lse.data(), {1, n, 1})};
    call(m, "merge", descs);
    for (int64_t r = 0; r < n; ++r) {
      double wl = want.lse.at({0, r, 0});
      if (std::isinf(wl))
        EXPECT_TRUE(std::isinf(lse[r]) && lse[r] < 0) << "row " << r;
      else
        EXPECT_NEAR(lse[r], wl, 1e-5) << "row " << r;
      for (int64_t e = 0; e < d; ++e)
        EXPECT_NEAR(out[r * d + e], want.out.at({0, r, 0, e}), 3e-5)
            << "row " << r << " lane " << e;
    }
  }
}

TEST(CPUOps, QuantizeAndDequantizeBitExact) {
  struct Case {
    const char *attr, *data;
    QuantEncoding enc;
  };
  auto enc = makeEncoding;
  std::vector<Case> cases = {
      {"#kv.quant<int8, scale = f32>", "i8",
       enc(QuantKind::Int8, QuantAxis::Token, 0, true, ScalarType::F32)},
      {"#kv.quant<int4, group = 16, symmetric = false>", "i4",
       enc(QuantKind::Int4, QuantAxis::Token, 16, false, ScalarType::F16)},
      {"#kv.quant<fp8_e4m3, group = 32, scale = bf16>", "f8E4M3FN",
       enc(QuantKind::Fp8E4M3, QuantAxis::Token, 32, true, ScalarType::BF16)},
      {"#kv.quant<int2, axis = channel, group = 4, symmetric = false>", "i2",
       enc(QuantKind::Int2, QuantAxis::Channel, 4, false, ScalarType::F16)},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.attr);
    std::mt19937_64 rng(11);
    int64_t t = 20, ch = 64;
    Tensor x = randomTensor(rng, {t, 1, ch}, ScalarType::F32, -2, 2);
    QuantizedTensor want = quantize(x, c.enc);
    bool channel = c.enc.axis == QuantAxis::Channel;
    int64_t g = channel ? c.enc.group : (c.enc.group ? c.enc.group : ch);
    std::vector<int64_t> sShape =
        channel ? std::vector<int64_t>{(t + g - 1) / g, ch}
                : std::vector<int64_t>{t, ch / g};
    std::string xt = shapeType({t, ch}, "f32");
    std::string dt = shapeType({t, ch}, c.data);
    std::string st = shapeType(sShape, typeName(c.enc.scaleType));
    bool zeros = !c.enc.symmetric;
    std::vector<std::string> outs = {dt, st};
    if (zeros)
      outs.push_back(st);
    std::string results = zeros ? "%r0, %r1, %r2" : "%r0, %r1";
    std::string types = "tensor<" + dt + ">, tensor<" + st + ">" +
                        (zeros ? ", tensor<" + st + ">" : "");
    CPUModule &m =
        compiled(wrap("q", {xt}, outs,
                      results + " = kv.quantize %t0 {encoding = " + c.attr +
                          "} : tensor<" + xt + "> -> " + types));
    std::vector<float> in(x.values().begin(), x.values().end());
    int64_t sn = sShape[0] * sShape[1], sb = scalarBytes(c.enc.scaleType);
    std::vector<uint8_t> codes(t * ch), scales(sn * sb), zs(sn * sb);
    std::vector<Desc> descs = {makeDesc(in.data(), {t, ch}),
                               makeDesc(codes.data(), {t, ch}),
                               makeDesc(scales.data(), sShape)};
    if (zeros)
      descs.push_back(makeDesc(zs.data(), sShape));
    call(m, "q", descs);
    uint8_t mask = static_cast<uint8_t>((1u << quantBits(c.enc.kind)) - 1);
    int misses = 0;
    for (int64_t i = 0; i < t * ch; ++i)
      if ((codes[i] & mask) != want.codes[i] && misses++ < 5)
        ADD_FAILURE() << "code " << i << ": " << int(codes[i] & mask) << " vs "
                      << int(want.codes[i]);
    for (int64_t i = 0; i < sn; ++i) {
      EXPECT_EQ(readScalarBytes(c.enc.scaleType, &scales[i * sb]),
                want.scales[i])
          << "scale " << i;
      if (zeros)
        EXPECT_EQ(readScalarBytes(c.enc.scaleType, &zs[i * sb]), want.zeros[i])
            << "zero " << i;
    }
    // Dequantize the kernel's own codes back, in f32.
    std::vector<std::string> dIns = {dt, st};
    if (zeros)
      dIns.push_back(st);
    std::string operands = zeros ? "%t0, %t1, %t2" : "%t0, %t1";
    CPUModule &dm = compiled(
        wrap("dq", dIns, {xt},
             "%r0 = kv.dequantize " + operands + " {encoding = " + c.attr +
                 "} : " + types + " -> tensor<" + xt + ">"));
    std::vector<float> back(t * ch);
    std::vector<Desc> ddescs = {makeDesc(codes.data(), {t, ch}),
                                makeDesc(scales.data(), sShape)};
    if (zeros)
      ddescs.push_back(makeDesc(zs.data(), sShape));
    ddescs.push_back(makeDesc(back.data(), {t, ch}));
    call(dm, "dq", ddescs);
    Tensor deq = dequantize(want, c.enc);
    for (int64_t i = 0; i < t * ch; ++i) {
      // q * s (+ z) in f32: one rounding of the product, one of the sum.
      double tol = std::ldexp(std::fabs(deq.data()[i]) + 2.0, -23);
      ASSERT_NEAR(back[i], deq.data()[i], tol) << "element " << i;
    }
  }
}

TEST(CPUOps, GatherPagesExact) {
  std::mt19937_64 rng(5);
  int64_t n = 6, p = 4, h = 2, d = 16, b = 2, m = 3;
  Tensor pages = randomTensor(rng, {n, p, h, d}, ScalarType::F32);
  BlockTable table;
  table.batch = b;
  table.maxPages = m;
  table.pages = {5, 0, 3, 2, 4, 1};
  std::vector<int64_t> lengths = {m * p, m * p};
  Tensor want = gatherPages(pages, PageOrder::TokenMajor, table, lengths);
  std::string pt = shapeType({n, p, h, d}, "f32"),
              bt = shapeType({b, m}, "i32"),
              rt = shapeType({b, h, m * p, d}, "f32");
  CPUModule &mod =
      compiled(wrap("gather", {pt, bt}, {rt},
                    "%r0 = kv.gather_pages %t0, %t1 : tensor<" + pt +
                        ">, tensor<" + bt + "> -> tensor<" + rt + ">"));
  std::vector<float> in(pages.values().begin(), pages.values().end()),
      out(b * h * m * p * d);
  std::vector<int32_t> ids = table.pages;
  std::vector<Desc> descs = {makeDesc(in.data(), {n, p, h, d}),
                             makeDesc(ids.data(), {b, m}),
                             makeDesc(out.data(), {b, h, m * p, d})};
  call(mod, "gather", descs);
  for (int64_t i = 0; i < want.numel(); ++i)
    ASSERT_EQ(out[i], want.data()[i]) << "element " << i;
}

TEST(CPUOps, MLAProjectWithinF32DotBound) {
  std::mt19937_64 rng(9);
  int64_t b = 1, t = 2, hid = 96, l = 32, r = 16;
  Tensor hs = randomTensor(rng, {b, t, hid}, ScalarType::F32);
  Tensor wd = randomTensor(rng, {hid, l}, ScalarType::F32);
  Tensor wr = randomTensor(rng, {hid, r}, ScalarType::F32);
  std::string ht = shapeType({b, t, hid}, "f32"),
              dt = shapeType({hid, l}, "f32"), rt = shapeType({hid, r}, "f32"),
              ot = shapeType({b, t, l + r}, "f32");
  CPUModule &m = compiled(wrap("proj", {ht, dt, rt}, {ot},
                               "%r0 = kv.mla_project %t0, %t1, %t2 : tensor<" +
                                   ht + ">, tensor<" + dt + ">, tensor<" + rt +
                                   "> -> tensor<" + ot + ">"));
  std::vector<float> h(hs.values().begin(), hs.values().end()),
      d(wd.values().begin(), wd.values().end()),
      rr(wr.values().begin(), wr.values().end()), out(b * t * (l + r));
  std::vector<Desc> descs = {
      makeDesc(h.data(), {b, t, hid}), makeDesc(d.data(), {hid, l}),
      makeDesc(rr.data(), {hid, r}), makeDesc(out.data(), {b, t, l + r})};
  call(m, "proj", descs);
  double u = std::ldexp(1.0, -24);
  for (int64_t tok = 0; tok < t; ++tok)
    for (int64_t c = 0; c < l + r; ++c) {
      double exact = 0, mag = 0;
      for (int64_t k = 0; k < hid; ++k) {
        double w = c < l ? wd.at({k, c}) : wr.at({k, c - l});
        exact += hs.at({0, tok, k}) * w;
        mag += std::fabs(hs.at({0, tok, k}) * w);
      }
      // gamma_hid * sum |h w| for an f32 fma chain.
      EXPECT_NEAR(out[tok * (l + r) + c], exact, (hid + 1) * u * mag)
          << "token " << tok << " column " << c;
    }
}
