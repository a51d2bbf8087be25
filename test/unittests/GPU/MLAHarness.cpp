//===- MLAHarness.cpp - MLA decode cases and reference data ---------------===//

#include "MLAHarness.h"

#include "kvopt/Reference/Numeric.h"

#include <numeric>
#include <random>

using namespace kvopt;
using namespace kvopt::gpu_test;
namespace ref = kvopt::reference;

MLAData kvopt::gpu_test::makeMLAData(const MLACase &c) {
  MLAData d;
  std::mt19937_64 rng(c.seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  const int64_t B = c.batch(), H = c.heads, Tq = c.queryLen, W = c.width(),
                P = c.pageSize, T = c.maxLength();
  ref::Tensor ql({B, H, Tq, c.latent}), qr({B, H, Tq, c.rope});
  for (double &x : ql.values())
    x = ref::roundToScalar(c.query, 2.0 * dist(rng));
  for (double &x : qr.values())
    x = ref::roundToScalar(c.query, 2.0 * dist(rng));
  auto bytesOf = [&](const ref::Tensor &t) {
    int64_t w = ref::scalarBytes(c.query);
    std::vector<uint8_t> out(t.values().size() * w);
    for (size_t i = 0; i < t.values().size(); ++i)
      ref::writeScalarBytes(c.query, t.values()[i], &out[i * w]);
    return out;
  };
  d.ql = bytesOf(ql);
  d.qr = bytesOf(qr);

  // Page layout of a latent cache: [data][scales][zeros], one "head".
  int64_t bits = 8 * ref::scalarBytes(c.element), sbytes = 0, g = W;
  std::optional<ref::QuantEncoding> q;
  if (c.quant) {
    q = toReference(*c.quant);
    bits = ref::quantBits(q->kind);
    sbytes = ref::scalarBytes(q->scaleType);
    g = q->group ? q->group : W;
  }
  // Token axis: [P][W/g] scales per page; channel axis: [P/g][W].
  bool channel = q && q->axis == ref::QuantAxis::Channel;
  int64_t scalesPerPage = !c.quant ? 0 : channel ? (P / g) * W : P * (W / g);
  int64_t scaleOff = P * W * bits / 8;
  int64_t zeroOff = scaleOff + scalesPerPage * sbytes;
  int64_t pageBytes =
      zeroOff + (q && !q->symmetric ? scalesPerPage * sbytes : 0);
  int64_t used = 0;
  for (int64_t L : c.lengths)
    used += (L + P - 1) / P;
  int64_t numPages = used + 3;
  std::vector<int32_t> perm(numPages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  d.table.assign(B * c.maxPages(), -1);
  int64_t next = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < (c.lengths[b] + P - 1) / P; ++i)
      d.table[b * c.maxPages() + i] = perm[next++];
  d.pool.assign(numPages * pageBytes, 0);

  ref::MlaCache cache;
  cache.latent = ref::Tensor({B, T, c.latent});
  cache.ropeKey = ref::Tensor({B, T, c.rope});
  double maxK = 0, maxV = 0;
  std::vector<ref::Tensor> rows; // each sequence's rows [len][1][W]
  for (int64_t b = 0; b < B; ++b) {
    int64_t len = c.lengths[b];
    ref::Tensor x({len, 1, W});
    for (double &v : x.values())
      v = ref::roundToScalar(c.element, dist(rng));
    ref::Tensor seen = x;
    rows.push_back(x);
    auto page = [&](int64_t t) {
      return d.pool.data() + d.table[b * c.maxPages() + t / P] * pageBytes;
    };
    if (!q) {
      for (int64_t t = 0; t < len; ++t)
        for (int64_t e = 0; e < W; ++e)
          ref::writeScalarBytes(c.element, x.at({t, 0, e}),
                                page(t) + ((t % P) * W + e) * bits / 8);
    } else {
      ref::QuantizedTensor qt = ref::quantize(x, *q);
      // Window tokens (if any) exactly: they are read from their slots.
      seen = ref::dequantize(qt, *q, &x);
      for (int64_t p = 0; p * P < len; ++p) {
        uint8_t *base = page(p * P);
        std::vector<uint8_t> codes(P * W, 0);
        for (int64_t slot = 0; slot < P && p * P + slot < len; ++slot) {
          int64_t t = p * P + slot;
          for (int64_t e = 0; e < W; ++e)
            codes[slot * W + e] = qt.codes[t * W + e];
          // Channel axis: the group's scales once, from its first slot.
          int64_t count = channel ? (slot % g == 0 ? W : 0) : W / g;
          for (int64_t gi = 0; gi < count; ++gi) {
            int64_t from = ref::scaleIndex(*q, qt, t, 0, channel ? gi : gi * g);
            int64_t to = channel ? (slot / g) * W + gi : slot * (W / g) + gi;
            ref::writeScalarBytes(q->scaleType, qt.scales[from],
                                  base + scaleOff + to * sbytes);
            if (!q->symmetric)
              ref::writeScalarBytes(q->scaleType, qt.zeros[from],
                                    base + zeroOff + to * sbytes);
          }
        }
        std::vector<uint8_t> packed = ref::packCodes(q->kind, codes);
        std::copy(packed.begin(), packed.end(), base);
      }
    }
    for (int64_t t = 0; t < len; ++t)
      for (int64_t e = 0; e < W; ++e) {
        double v = seen.at({t, 0, e});
        maxK = std::max(maxK, std::fabs(v));
        if (e < c.latent) {
          cache.latent.at({b, t, e}) = v;
          maxV = std::max(maxV, std::fabs(v));
        } else {
          cache.ropeKey.at({b, t, e - c.latent}) = v;
        }
      }
  }
  for (int64_t L : c.lengths)
    d.lens.push_back(int32_t(L));
  // Full-precision windows after the pages: per sequence [sinks + recent][W]
  // elements, sinks then a ring by t % recent (docs/GPU.md).
  if (q && q->sinks + q->recent > 0) {
    int64_t esize = ref::scalarBytes(c.element);
    int64_t wb = (q->sinks + q->recent) * W * esize;
    int64_t base = d.pool.size();
    d.pool.resize(base + B * wb, 0);
    for (int64_t b = 0; b < B; ++b) {
      int64_t len = c.lengths[b];
      auto put = [&](int64_t slot, int64_t t) {
        for (int64_t e = 0; e < W; ++e)
          ref::writeScalarBytes(c.element, rows[b].at({t, 0, e}),
                                d.pool.data() + base + b * wb +
                                    (slot * W + e) * esize);
      };
      for (int64_t t = 0; t < std::min(q->sinks, len); ++t)
        put(t, t);
      if (q->recent > 0)
        for (int64_t t = std::max<int64_t>(0, len - q->recent); t < len; ++t)
          put(q->sinks + t % q->recent, t);
    }
  }

  ref::AttentionOptions opts;
  opts.scale = c.scale();
  opts.causal = c.causal;
  d.expected = ref::mlaLatentAttention(ql, qr, cache, c.lengths, opts);
  double maxQ = 2.0, maxLse = 0;
  for (double x : d.expected.lse.values())
    if (std::isfinite(x))
      maxLse = std::max(maxLse, std::fabs(x));
  d.tol = ref::fp32AttentionTolerance(W, T, opts.scale * W * maxQ * maxK, maxV,
                                      maxLse, bool(q), c.output);
  // One more level: the split-KV merge (4u V) and its lse.
  d.tol.out += 4 * 0x1p-24 * maxV;
  d.tol.lse += 4 * 0x1p-24 * (maxLse + 1);
  return d;
}
