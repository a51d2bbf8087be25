//===- AttentionCases.cpp - attention/append/MLA case runners -------------===//
//
// Implementation of AttentionCases.h.
//
//===----------------------------------------------------------------------===//

#include "AttentionCases.h"

#include "kvopt/Reference/Numeric.h"

#include <algorithm>
#include <cmath>
#include <sstream>

using namespace kvopt;
using namespace kvopt::cputest;
using namespace kvopt::reference;

namespace {
/// Bound on scale * sum_d |q_d k_d| over every query row and key.
double maxScore(const Tensor &q, const Tensor &k, double scale,
                const std::vector<int64_t> &lengths) {
  int64_t group = q.dim(1) / k.dim(1);
  double worst = 0;
  for (int64_t b = 0; b < q.dim(0); ++b)
    for (int64_t h = 0; h < q.dim(1); ++h)
      for (int64_t i = 0; i < q.dim(2); ++i)
        for (int64_t j = 0; j < lengths[b]; ++j) {
          double s = 0;
          for (int64_t d = 0; d < q.dim(3); ++d)
            s += std::fabs(q.at({b, h, i, d}) * k.at({b, h / group, j, d}));
          worst = std::max(worst, scale * s);
        }
  return worst;
}

/// Whether the kernels take the fixed-point path (int-dots) for `q`:
/// token-axis int8/int4/int2 codes without full-precision windows. (Groups
/// that do not split into whole chunks fall back to f32; the bound below
/// then only loosens the comparison.)
bool fixedPoint(const CPUCompileOptions &options,
                const std::optional<QuantEncoding> &q) {
  return options.intDots && q && q->axis == QuantAxis::Token &&
         q->recent == 0 && q->sinks == 0 && q->kind != QuantKind::Fp8E4M3;
}

/// Largest code magnitude the kernels size their i32 sums for.
int64_t kernelCodeMax(const QuantEncoding &q) {
  int64_t bits = reference::quantBits(q.kind);
  return q.symmetric ? int64_t(1) << (bits - 1) : (int64_t(1) << bits) - 1;
}

/// For each visible key and head, sum_d |k_d - z_d| (z the group's zero
/// point, the smallest dequantized value of the group when asymmetric, 0
/// when symmetric) and the largest |v - z|; the maxima over keys.
std::pair<double, double> codeSums(const Tensor &x, const QuantEncoding &q,
                                   const std::vector<int64_t> &lengths) {
  int64_t d = x.dim(3), g = q.group ? q.group : d;
  double sum = 0, range = 0;
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t h = 0; h < x.dim(1); ++h)
      for (int64_t t = 0; t < lengths[b]; ++t) {
        double row = 0;
        for (int64_t c0 = 0; c0 < d; c0 += g) {
          double z = 0;
          if (!q.symmetric) {
            z = x.at({b, h, t, c0});
            for (int64_t c = c0; c < c0 + g; ++c)
              z = std::min(z, x.at({b, h, t, c}));
          }
          for (int64_t c = c0; c < c0 + g; ++c) {
            row += std::fabs(x.at({b, h, t, c}) - z);
            range = std::max(range, std::fabs(x.at({b, h, t, c}) - z));
          }
        }
        sum = std::max(sum, row);
      }
  return {sum, range};
}

double maxAbs(const Tensor &t) {
  double m = 0;
  for (double x : t.values())
    m = std::max(m, std::fabs(x));
  return m;
}

double maxFinite(const Tensor &t) {
  double m = 0;
  for (double x : t.values())
    if (std::isfinite(x))
      m = std::max(m, std::fabs(x));
  return m;
}

/// Compares outputs and lses within `tol`; reports the first few misses.
void expectClose(const Tensor &got, const Tensor &want, double tol,
                 const std::string &what, const std::string &where) {
  ASSERT_EQ(got.numel(), want.numel());
  int misses = 0;
  double worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double x = got.data()[i], y = want.data()[i];
    if (x == y)
      continue;
    double diff = std::isnan(x - y) ? INFINITY : std::fabs(x - y);
    worst = std::max(worst, diff);
    if (diff > tol && misses++ < 5)
      ADD_FAILURE() << where << ": " << what << "[" << i << "] = " << x
                    << ", reference " << y << ", |diff| " << diff << " > tol "
                    << tol;
  }
  EXPECT_EQ(misses, 0) << where << ": " << what << " worst " << worst << " tol "
                       << tol;
}

std::vector<int64_t> randomLengths(std::mt19937_64 &rng, int64_t batch,
                                   int64_t lo, int64_t hi) {
  std::vector<int64_t> lengths;
  for (int64_t b = 0; b < batch; ++b)
    lengths.push_back(randomInt(rng, lo, hi));
  return lengths;
}
} // namespace

std::string AttentionCase::describe() const {
  std::ostringstream os;
  os << cache.mlirType() << " B=" << batch << " Hq=" << queryHeads
     << " Tq=" << queryRows << " q=" << typeName(queryType)
     << " causal=" << causal << " window=" << window << " sinks=" << sinks
     << " lse=" << lse << " splits=" << compile.splits
     << " threads=" << compile.threads << " block=" << compile.blockTokens
     << " vector-bits=" << compile.vectorBits << " int-dots=" << compile.intDots
     << (executor == Executor::Bundle ? " bundle" : "");
  return os.str();
}

void kvopt::cputest::runAttention(const AttentionCase &c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const CacheSpec &cs = c.cache;
  int64_t b = c.batch, hq = c.queryHeads, hkv = cs.kvHeads, d = cs.headDim,
          tq = c.queryRows, cap = cs.capacity;
  std::vector<int64_t> lengths =
      c.lengths.empty() ? randomLengths(rng, b, tq, cap) : c.lengths;
  Tensor k = randomTensor(rng, {b, hkv, cap, d}, cs.element);
  Tensor v = randomTensor(rng, {b, hkv, cap, d}, cs.element);
  Tensor q = randomTensor(rng, {b, hq, tq, d}, c.queryType, -2, 2);
  BlockTable table = makeTable(rng, cs, b);
  CachePool pool = writeCache(cs, table, k, v, lengths);

  AttentionOptions options;
  options.scale = 1.0 / std::sqrt(static_cast<double>(d));
  options.causal = c.causal;
  options.window = c.window;
  options.sinks = c.sinks;
  Tensor kEff = effectiveCache(k, cs.key, lengths);
  Tensor vEff = effectiveCache(v, cs.value, lengths);
  AttentionResult want = attention(q, kEff, vEff, lengths, options);

  std::string qe = typeName(c.queryType);
  std::string qt = shapeType({b, hq, tq, d}, qe);
  std::string lt = shapeType({b, hq, tq}, "f32");
  std::string bt = shapeType({b, table.maxPages}, "i32");
  std::ostringstream src;
  src << "func.func @attn(%q: memref<" << qt << ">, %c: " << cs.mlirType()
      << ", %lens: memref<" << b << "xi32>";
  if (cs.pageSize)
    src << ", %bt: memref<" << bt << ">";
  src << ", %out: memref<" << qt << ">";
  if (c.lse)
    src << ", %lse: memref<" << lt << ">";
  src << ") {\n"
      << "  %qt = bufferization.to_tensor %q restrict : memref<" << qt
      << "> to tensor<" << qt << ">\n"
      << "  %lt = bufferization.to_tensor %lens restrict : memref<" << b
      << "xi32> to tensor<" << b << "xi32>\n";
  if (cs.pageSize)
    src << "  %btt = bufferization.to_tensor %bt restrict : memref<" << bt
        << "> to tensor<" << bt << ">\n";
  src << "  " << (c.lse ? "%o, %l" : "%o") << " = kv.attention %qt, %c, %lt"
      << (cs.pageSize ? " block_table %btt" : "");
  std::vector<std::string> attrs;
  if (c.causal)
    attrs.push_back("causal");
  if (c.window)
    attrs.push_back("window = " + std::to_string(c.window));
  if (c.sinks)
    attrs.push_back("sinks = " + std::to_string(c.sinks));
  if (!attrs.empty()) {
    src << " {";
    for (size_t i = 0; i < attrs.size(); ++i)
      src << (i ? ", " : "") << attrs[i];
    src << "}";
  }
  src << " : (tensor<" << qt << ">, " << cs.mlirType() << ", tensor<" << b
      << "xi32>" << (cs.pageSize ? ", tensor<" + bt + ">" : "") << ") -> "
      << (c.lse ? "(tensor<" + qt + ">, tensor<" + lt + ">)"
                : "tensor<" + qt + ">")
      << "\n";
  src << "  bufferization.materialize_in_destination %o in restrict writable "
         "%out : (tensor<"
      << qt << ">, memref<" << qt << ">) -> ()\n";
  if (c.lse)
    src << "  bufferization.materialize_in_destination %l in restrict "
           "writable %lse : (tensor<"
        << lt << ">, memref<" << lt << ">) -> ()\n";
  src << "  return\n}\n";

  std::vector<uint8_t> qBytes = encode(q, c.queryType);
  std::vector<int32_t> lens;
  for (int64_t len : lengths)
    lens.push_back(static_cast<int32_t>(len + c.kernelLengthDelta));
  std::vector<uint8_t> out(b * hq * tq * d * scalarBytes(c.queryType), 0xFF);
  std::vector<float> lse(b * hq * tq, 12345.0f);
  std::vector<Desc> descs = {
      makeDesc(qBytes.data(), {b, hq, tq, d}),
      makeDesc(pool.bytes.data(), {static_cast<int64_t>(pool.bytes.size())}),
      makeDesc(lens.data(), {b})};
  if (cs.pageSize)
    descs.push_back(makeDesc(pool.tableData.data(), {b, table.maxPages}));
  descs.push_back(makeDesc(out.data(), {b, hq, tq, d}));
  if (c.lse)
    descs.push_back(makeDesc(lse.data(), {b, hq, tq}));
  run(c.executor, src.str(), c.compile, "attn", descs);

  Tensor got = decode(out, {b, hq, tq, d}, c.queryType);
  int64_t keys = *std::max_element(lengths.begin(), lengths.end());
  AttentionTolerance tol = fp32AttentionTolerance(
      d, keys, maxScore(q, kEff, options.scale, lengths), maxAbs(vEff),
      maxFinite(want.lse), cs.key || cs.value, c.queryType);
  bool fixedK = fixedPoint(c.compile, cs.key);
  bool fixedV = fixedPoint(c.compile, cs.value);
  if (fixedK || fixedV) {
    double keySum = fixedK ? codeSums(kEff, *cs.key, lengths).first : 0;
    double valueRange = fixedV ? codeSums(vEff, *cs.value, lengths).second : 0;
    reference::addFixedPointTolerance(
        tol, options.scale * maxAbs(q), keySum, maxAbs(vEff), fixedV,
        c.compile.blockTokens, fixedV ? kernelCodeMax(*cs.value) : 1,
        valueRange);
  }
  std::string where = c.describe() + " seed " + std::to_string(seed);
  expectClose(got, want.out, tol.out, "out", where);
  if (c.lse) {
    Tensor gotLse({b, hq, tq});
    for (int64_t i = 0; i < gotLse.numel(); ++i)
      gotLse.data()[i] = lse[i];
    expectClose(gotLse, want.lse, tol.lse, "lse", where);
  }
}

//===----------------------------------------------------------------------===//
// Append
//===----------------------------------------------------------------------===//

std::string AppendCase::describe() const {
  std::ostringstream os;
  os << cache.mlirType() << " B=" << batch << " T=" << tokens
     << " in=" << typeName(inputType) << " rope=" << ropeTheta
     << (executor == Executor::Bundle ? " bundle" : "");
  return os.str();
}

void kvopt::cputest::runAppend(const AppendCase &c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const CacheSpec &cs = c.cache;
  int64_t b = c.batch, hkv = cs.kvHeads, d = cs.headDim, t = c.tokens,
          cap = cs.capacity;
  // Channel-axis groups complete at the end of the append, so that every
  // stored group is final and comparable bit for bit.
  int64_t align = 1;
  for (const auto *q : {&cs.key, &cs.value})
    if (*q && (*q)->axis == QuantAxis::Channel)
      align = std::max(align, (*q)->group);
  std::vector<int64_t> start, end;
  for (int64_t i = 0; i < b; ++i) {
    int64_t e = randomInt(rng, t, cap);
    e -= e % align;
    if (e < t)
      e += align * ((t - e + align - 1) / align);
    start.push_back(e - t);
    end.push_back(e);
  }
  Tensor k = randomTensor(rng, {b, hkv, cap, d}, cs.element);
  Tensor v = randomTensor(rng, {b, hkv, cap, d}, cs.element);
  Tensor kNew({b, hkv, t, d}), vNew({b, hkv, t, d});
  for (int64_t i = 0; i < b; ++i)
    for (int64_t h = 0; h < hkv; ++h)
      for (int64_t j = 0; j < t; ++j)
        for (int64_t e = 0; e < d; ++e) {
          kNew.at({i, h, j, e}) = k.at({i, h, start[i] + j, e});
          vNew.at({i, h, j, e}) = v.at({i, h, start[i] + j, e});
        }
  BlockTable table = makeTable(rng, cs, b);
  CachePool pool = writeCache(cs, table, k, v, start);
  Tensor kStored = k;
  if (c.ropeTheta > 0) {
    Tensor rotated = appendedRows(kNew, start, c.ropeTheta);
    for (int64_t i = 0; i < b; ++i)
      for (int64_t h = 0; h < hkv; ++h)
        for (int64_t j = 0; j < t; ++j)
          for (int64_t e = 0; e < d; ++e)
            kStored.at({i, h, start[i] + j, e}) =
                roundToScalar(cs.element, rotated.at({i, h, j, e}));
  }
  CachePool want = writeCache(cs, table, kStored, v, end);

  std::string e = typeName(c.inputType);
  std::string rows = shapeType({b, hkv, t, d}, e);
  std::string bt = shapeType({b, table.maxPages}, "i32");
  std::ostringstream src;
  src << "func.func @append(%c: " << cs.mlirType() << ", %pos: memref<" << b
      << "xi32>, %k: memref<" << rows << ">, %v: memref<" << rows << ">"
      << (cs.pageSize ? ", %bt: memref<" + bt + ">" : "") << ") {\n"
      << "  %pt = bufferization.to_tensor %pos restrict : memref<" << b
      << "xi32> to tensor<" << b << "xi32>\n"
      << "  %kt = bufferization.to_tensor %k restrict : memref<" << rows
      << "> to tensor<" << rows << ">\n"
      << "  %vt = bufferization.to_tensor %v restrict : memref<" << rows
      << "> to tensor<" << rows << ">\n";
  if (cs.pageSize)
    src << "  %btt = bufferization.to_tensor %bt restrict : memref<" << bt
        << "> to tensor<" << bt << ">\n";
  src << "  kv.append %c[%pt], %kt, %vt"
      << (cs.pageSize ? " block_table %btt" : "");
  if (c.ropeTheta > 0)
    src << " {rope_theta = " << std::showpoint << c.ropeTheta
        << std::noshowpoint << " : f64}";
  src << " : " << cs.mlirType() << ", tensor<" << b << "xi32>, tensor<" << rows
      << ">, tensor<" << rows << ">"
      << (cs.pageSize ? ", tensor<" + bt + ">" : "") << "\n  return\n}\n";

  std::vector<uint8_t> kBytes = encode(kNew, c.inputType);
  std::vector<uint8_t> vBytes = encode(vNew, c.inputType);
  std::vector<int32_t> pos(start.begin(), start.end());
  std::vector<Desc> descs = {
      makeDesc(pool.bytes.data(), {static_cast<int64_t>(pool.bytes.size())}),
      makeDesc(pos.data(), {b}), makeDesc(kBytes.data(), {b, hkv, t, d}),
      makeDesc(vBytes.data(), {b, hkv, t, d})};
  if (cs.pageSize)
    descs.push_back(makeDesc(pool.tableData.data(), {b, table.maxPages}));
  run(c.executor, src.str(), {}, "append", descs);

  std::string where = c.describe() + " seed " + std::to_string(seed);
  ASSERT_EQ(pool.bytes.size(), want.bytes.size());
  if (c.ropeTheta <= 0) {
    // Bit-exact: codes, scales, zero points, elements and windows.
    size_t misses = 0;
    for (size_t i = 0; i < pool.bytes.size(); ++i)
      if (pool.bytes[i] != want.bytes[i] && misses++ < 5)
        ADD_FAILURE() << where << ": byte " << i << " (page "
                      << i / std::max<int64_t>(1, pool.pageBytes) << ", offset "
                      << i % std::max<int64_t>(1, pool.pageBytes)
                      << ") = " << int(pool.bytes[i]) << ", reference "
                      << int(want.bytes[i]);
    EXPECT_EQ(misses, 0u) << where;
    return;
  }
  // With RoPE: decoded values within |x|_pair (2u pos + 4u) plus one
  // rounding to the element type each side.
  KVTensors gotKV = readPagedCache(cs.format(), pool.bytes, table, end);
  KVTensors wantKV = readPagedCache(cs.format(), want.bytes, table, end);
  double u = std::ldexp(1.0, -24);
  double elemU = cs.element == ScalarType::F32   ? u
                 : cs.element == ScalarType::F16 ? std::ldexp(1.0, -11)
                                                 : std::ldexp(1.0, -8);
  double tol = std::sqrt(2.0) * (2 * u * cap + 4 * u) + 2 * elemU;
  // Quantized keys are tested without RoPE (bit-exact); a rotated value
  // near a rounding boundary may flip a code (docs/Numerics.md).
  EXPECT_FALSE(cs.key) << "RoPE append cases use full-precision keys";
  expectClose(gotKV.k, wantKV.k, tol, "rotated keys", where);
  expectClose(gotKV.v, wantKV.v, 0, "values", where);
}

//===----------------------------------------------------------------------===//
// MLA
//===----------------------------------------------------------------------===//

std::string MLACase::describe() const {
  std::ostringstream os;
  os << "MLA " << latent << "+" << rope << " cap=" << capacity
     << " page=" << pageSize << " B=" << batch << " H=" << heads
     << " Tq=" << queryRows << " " << typeName(element)
     << (quant ? " " + quantAttr(*quant) : "") << " causal=" << causal
     << (executor == Executor::Bundle ? " bundle" : "");
  return os.str();
}

void kvopt::cputest::runMLA(const MLACase &c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  int64_t w = c.latent + c.rope, b = c.batch, h = c.heads, tq = c.queryRows;
  int64_t page = c.pageSize ? c.pageSize : c.capacity;
  int64_t pagesPerSeq = (c.capacity + page - 1) / page;
  std::vector<int64_t> lengths = randomLengths(rng, b, tq, c.capacity);
  Tensor rows = randomTensor(rng, {b, c.capacity, w}, c.element);
  Tensor ql = randomTensor(rng, {b, h, tq, c.latent}, c.element, -0.5, 0.5);
  Tensor qr = randomTensor(rng, {b, h, tq, c.rope}, c.element, -0.5, 0.5);

  // Page layout of a latent cache: [data][scales][zeros], one "head".
  int64_t esize = scalarBytes(c.element);
  int64_t bits = 8 * esize, sbytes = 0, scalesPerPage = 0, g = w;
  if (c.quant) {
    bits = quantBits(c.quant->kind);
    sbytes = scalarBytes(c.quant->scaleType);
    bool channel = c.quant->axis == QuantAxis::Channel;
    g = channel ? c.quant->group : (c.quant->group ? c.quant->group : w);
    scalesPerPage = channel ? (page / g) * w : page * (w / g);
  }
  int64_t dataBytes = page * w * bits / 8;
  int64_t scaleOff = dataBytes, zeroOff = scaleOff + scalesPerPage * sbytes;
  int64_t pageBytes =
      zeroOff + (c.quant && !c.quant->symmetric ? scalesPerPage * sbytes : 0);
  std::vector<int32_t> ids(b * pagesPerSeq + 2);
  for (size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<int32_t>(i);
  if (c.pageSize)
    std::shuffle(ids.begin(), ids.end(), rng);
  else
    for (int64_t i = 0; i < b; ++i)
      ids[i] = static_cast<int32_t>(i);
  int64_t numPages = static_cast<int64_t>(ids.size());
  int64_t windowTokens = c.quant ? c.quant->recent + c.quant->sinks : 0;
  int64_t windowBytes = windowTokens * w * esize;
  std::vector<uint8_t> pool(numPages * pageBytes + b * windowBytes, 0);
  Tensor eff({b, c.capacity, w});
  for (int64_t s = 0; s < b; ++s) {
    int64_t len = lengths[s];
    Tensor x({len, 1, w});
    for (int64_t t = 0; t < len; ++t)
      for (int64_t e = 0; e < w; ++e)
        x.at({t, 0, e}) = rows.at({s, t, e});
    auto pageOf = [&](int64_t t) {
      return pool.data() + ids[s * pagesPerSeq + t / page] * pageBytes;
    };
    if (!c.quant) {
      for (int64_t t = 0; t < len; ++t)
        for (int64_t e = 0; e < w; ++e) {
          writeScalarBytes(c.element, x.at({t, 0, e}),
                           pageOf(t) + ((t % page) * w + e) * esize);
          eff.at({s, t, e}) = x.at({t, 0, e});
        }
      continue;
    }
    QuantizedTensor qt = quantize(x, *c.quant);
    Tensor deq = dequantize(qt, *c.quant, &x);
    for (int64_t p = 0; p * page < len; ++p) {
      std::vector<uint8_t> codes(page * w, 0);
      for (int64_t slot = 0; slot < page && p * page + slot < len; ++slot) {
        int64_t t = p * page + slot;
        for (int64_t e = 0; e < w; ++e) {
          codes[slot * w + e] = qt.codes[t * w + e];
          int64_t from = scaleIndex(*c.quant, qt, t, 0, e);
          int64_t to = c.quant->axis == QuantAxis::Channel
                           ? (slot / g) * w + e
                           : slot * (w / g) + e / g;
          uint8_t *base = pool.data() + ids[s * pagesPerSeq + p] * pageBytes;
          writeScalarBytes(c.quant->scaleType, qt.scales[from],
                           base + scaleOff + to * sbytes);
          if (!c.quant->symmetric)
            writeScalarBytes(c.quant->scaleType, qt.zeros[from],
                             base + zeroOff + to * sbytes);
        }
      }
      std::vector<uint8_t> packed = packCodes(c.quant->kind, codes);
      std::copy(packed.begin(), packed.end(),
                pool.data() + ids[s * pagesPerSeq + p] * pageBytes);
    }
    for (int64_t t = 0; t < len; ++t)
      for (int64_t e = 0; e < w; ++e)
        eff.at({s, t, e}) = deq.at({t, 0, e});
    // Windows: sinks, then the ring.
    uint8_t *win = pool.data() + numPages * pageBytes + s * windowBytes;
    auto put = [&](int64_t slot, int64_t t) {
      for (int64_t e = 0; e < w; ++e)
        writeScalarBytes(c.element, x.at({t, 0, e}),
                         win + (slot * w + e) * esize);
    };
    for (int64_t t = 0; t < std::min(c.quant->sinks, len); ++t)
      put(t, t);
    if (c.quant->recent > 0)
      for (int64_t t = std::max<int64_t>(0, len - c.quant->recent); t < len;
           ++t)
        put(c.quant->sinks + t % c.quant->recent, t);
  }
  MlaCache cache;
  cache.latent = Tensor({b, c.capacity, c.latent});
  cache.ropeKey = Tensor({b, c.capacity, c.rope});
  for (int64_t s = 0; s < b; ++s)
    for (int64_t t = 0; t < c.capacity; ++t)
      for (int64_t e = 0; e < w; ++e) {
        if (e < c.latent)
          cache.latent.at({s, t, e}) = eff.at({s, t, e});
        else
          cache.ropeKey.at({s, t, e - c.latent}) = eff.at({s, t, e});
      }
  AttentionOptions options;
  options.scale = 1.0 / std::sqrt(192.0);
  options.causal = c.causal;
  AttentionResult want = mlaLatentAttention(ql, qr, cache, lengths, options);

  std::ostringstream ct;
  ct << "!kv.latent_cache<latent_dim = " << c.latent
     << ", rope_dim = " << c.rope << ", capacity = " << c.capacity
     << ", element = " << typeName(c.element);
  if (c.pageSize)
    ct << ", layout = #kv.layout<paged, page_size = " << c.pageSize << ">";
  if (c.quant)
    ct << ", quant = " << quantAttr(*c.quant);
  ct << ">";
  std::string e = typeName(c.element);
  std::string qlt = shapeType({b, h, tq, c.latent}, e);
  std::string qrt = shapeType({b, h, tq, c.rope}, e);
  std::string lt = shapeType({b, h, tq}, "f32");
  std::string bt = shapeType({b, pagesPerSeq}, "i32");
  std::ostringstream src;
  src << "func.func @mla(%ql: memref<" << qlt << ">, %qr: memref<" << qrt
      << ">, %c: " << ct.str() << ", %lens: memref<" << b << "xi32>"
      << (c.pageSize ? ", %bt: memref<" + bt + ">" : "") << ", %out: memref<"
      << qlt << ">, %lse: memref<" << lt << ">) {\n"
      << "  %a = bufferization.to_tensor %ql restrict : memref<" << qlt
      << "> to tensor<" << qlt << ">\n"
      << "  %r = bufferization.to_tensor %qr restrict : memref<" << qrt
      << "> to tensor<" << qrt << ">\n"
      << "  %lt = bufferization.to_tensor %lens restrict : memref<" << b
      << "xi32> to tensor<" << b << "xi32>\n";
  if (c.pageSize)
    src << "  %btt = bufferization.to_tensor %bt restrict : memref<" << bt
        << "> to tensor<" << bt << ">\n";
  src << "  %o, %l = kv.mla_attention %a, %r, %c, %lt"
      << (c.pageSize ? " block_table %btt" : "")
      << " {scale = " << options.scale << " : f32"
      << (c.causal ? ", causal" : "") << "} : (tensor<" << qlt << ">, tensor<"
      << qrt << ">, " << ct.str() << ", tensor<" << b << "xi32>"
      << (c.pageSize ? ", tensor<" + bt + ">" : "") << ") -> (tensor<" << qlt
      << ">, tensor<" << lt << ">)\n"
      << "  bufferization.materialize_in_destination %o in restrict writable "
         "%out : (tensor<"
      << qlt << ">, memref<" << qlt << ">) -> ()\n"
      << "  bufferization.materialize_in_destination %l in restrict writable "
         "%lse : (tensor<"
      << lt << ">, memref<" << lt << ">) -> ()\n  return\n}\n";

  std::vector<uint8_t> qlBytes = encode(ql, c.element),
                       qrBytes = encode(qr, c.element);
  std::vector<int32_t> lens(lengths.begin(), lengths.end());
  std::vector<uint8_t> out(b * h * tq * c.latent * esize, 0xFF);
  std::vector<float> lse(b * h * tq, 0);
  std::vector<Desc> descs = {
      makeDesc(qlBytes.data(), {b, h, tq, c.latent}),
      makeDesc(qrBytes.data(), {b, h, tq, c.rope}),
      makeDesc(pool.data(), {static_cast<int64_t>(pool.size())}),
      makeDesc(lens.data(), {b})};
  if (c.pageSize)
    descs.push_back(makeDesc(ids.data(), {b, pagesPerSeq}));
  descs.push_back(makeDesc(out.data(), {b, h, tq, c.latent}));
  descs.push_back(makeDesc(lse.data(), {b, h, tq}));
  run(c.executor, src.str(), c.compile, "mla", descs);

  Tensor got = decode(out, {b, h, tq, c.latent}, c.element);
  // Key of width latent + rope: the attention bound with D = 576.
  Tensor q({b, h, tq, w}), k({b, 1, c.capacity, w});
  for (int64_t s = 0; s < b; ++s) {
    for (int64_t hh = 0; hh < h; ++hh)
      for (int64_t i = 0; i < tq; ++i)
        for (int64_t e = 0; e < w; ++e)
          q.at({s, hh, i, e}) = e < c.latent ? ql.at({s, hh, i, e})
                                             : qr.at({s, hh, i, e - c.latent});
    for (int64_t t = 0; t < c.capacity; ++t)
      for (int64_t e = 0; e < w; ++e)
        k.at({s, 0, t, e}) = eff.at({s, t, e});
  }
  int64_t keys = *std::max_element(lengths.begin(), lengths.end());
  AttentionTolerance tol = fp32AttentionTolerance(
      w, keys, maxScore(q, k, options.scale, lengths), maxAbs(cache.latent),
      maxFinite(want.lse), static_cast<bool>(c.quant), c.element);
  std::string where = c.describe() + " seed " + std::to_string(seed);
  expectClose(got, want.out, tol.out, "out", where);
  Tensor gotLse({b, h, tq});
  for (int64_t i = 0; i < gotLse.numel(); ++i)
    gotLse.data()[i] = lse[i];
  expectClose(gotLse, want.lse, tol.lse, "lse", where);
}
