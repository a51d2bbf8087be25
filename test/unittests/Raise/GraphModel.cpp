//===- GraphModel.cpp - double-precision models of the example graphs -----===//
//
// Implementation of GraphModel.h.
//
//===----------------------------------------------------------------------===//

#include "GraphModel.h"

#include <algorithm>
#include <cmath>

using namespace kvopt;
using namespace kvopt::semtest;
using namespace kvopt::reference;

namespace {
float f32(double x) { return static_cast<float>(x); }

/// gamma_n = n u / (1 - n u), the bound of an n-term f32 sum.
double gamma(int64_t n) { return n * kU / (1.0 - n * kU); }

double maxAbs(const Tensor &t) {
  double m = 0.0;
  for (double x : t.values())
    m = std::max(m, std::fabs(x));
  return m;
}

/// Column sums of |w| for w[K, N].
std::vector<double> columnAbsSums(const Tensor &w) {
  std::vector<double> sums(w.dim(1), 0.0);
  for (int64_t k = 0; k < w.dim(0); ++k)
    for (int64_t n = 0; n < w.dim(1); ++n)
      sums[n] += std::fabs(w.at({k, n}));
  return sums;
}

/// [B, H*D] -> [B, H, 1, D] (expand_shape to [B, 1, H, D], transpose).
Tensor splitHeads(const Tensor &x, int64_t heads, int64_t dim) {
  Tensor out({x.dim(0), heads, 1, dim});
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t d = 0; d < dim; ++d)
        out.at({b, h, 0, d}) = x.at({b, h * dim + d});
  return out;
}

/// [B, H, 1, D] -> [B, H*D] (transpose, collapse_shape).
Tensor mergeHeads(const Tensor &x) {
  int64_t heads = x.dim(1), dim = x.dim(3);
  Tensor out({x.dim(0), heads * dim});
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t d = 0; d < dim; ++d)
        out.at({b, h * dim + d}) = x.at({b, h, 0, d});
  return out;
}

/// [past ; new] along the tokens: past[B, H, P, D], fresh[B, H*D].
Tensor appendToken(const Tensor &past, const Tensor &fresh) {
  int64_t b = past.dim(0), h = past.dim(1), p = past.dim(2), d = past.dim(3);
  Tensor all({b, h, p + 1, d});
  for (int64_t s = 0; s < b; ++s)
    for (int64_t g = 0; g < h; ++g) {
      for (int64_t t = 0; t < p; ++t)
        for (int64_t e = 0; e < d; ++e)
          all.at({s, g, t, e}) = past.at({s, g, t, e});
      for (int64_t e = 0; e < d; ++e)
        all.at({s, g, p, e}) = fresh.at({s, g * d + e});
    }
  return all;
}

/// The f32 output projection's bound: tolO carried through wo plus the
/// rounding of the n-term sums, per element of y[B, N].
Tensor projectionTolerance(const Tensor &o2, const Tensor &wo, double tolO) {
  std::vector<double> cols = columnAbsSums(wo);
  Tensor mags = matmulAbs(o2, wo);
  Tensor tol(mags.shape());
  int64_t n = wo.dim(0);
  for (int64_t b = 0; b < tol.dim(0); ++b)
    for (int64_t j = 0; j < tol.dim(1); ++j)
      tol.at({b, j}) = tolO * cols[j] + gamma(n) * mags.at({b, j});
  return tol;
}
} // namespace

Tensor kvopt::semtest::matmulF32(const Tensor &a, const Tensor &b) {
  Tensor c({a.dim(0), b.dim(1)});
  for (int64_t m = 0; m < a.dim(0); ++m)
    for (int64_t n = 0; n < b.dim(1); ++n) {
      float acc = 0.0f;
      for (int64_t k = 0; k < a.dim(1); ++k) {
        float product = f32(a.at({m, k})) * f32(b.at({k, n}));
        acc = acc + product;
      }
      c.at({m, n}) = acc;
    }
  return c;
}

Tensor kvopt::semtest::matmulDouble(const Tensor &a, const Tensor &b) {
  Tensor c({a.dim(0), b.dim(1)});
  for (int64_t m = 0; m < a.dim(0); ++m)
    for (int64_t n = 0; n < b.dim(1); ++n) {
      double acc = 0.0;
      for (int64_t k = 0; k < a.dim(1); ++k)
        acc += a.at({m, k}) * b.at({k, n});
      c.at({m, n}) = acc;
    }
  return c;
}

Tensor kvopt::semtest::matmulAbs(const Tensor &a, const Tensor &b) {
  Tensor c({a.dim(0), b.dim(1)});
  for (int64_t m = 0; m < a.dim(0); ++m)
    for (int64_t n = 0; n < b.dim(1); ++n) {
      double acc = 0.0;
      for (int64_t k = 0; k < a.dim(1); ++k)
        acc += std::fabs(a.at({m, k}) * b.at({k, n}));
      c.at({m, n}) = acc;
    }
  return c;
}

LayerResult kvopt::semtest::runLayer(const LayerShape &s, const LayerWeights &w,
                                     const Tensor &h, double hTol,
                                     const Tensor &pastK, const Tensor &pastV,
                                     const EffectiveKV &effective,
                                     bool dequantizing) {
  LayerResult r;
  r.hTol = hTol;
  // Projections, bit for bit as the graph computes them from this h.
  Tensor q = splitHeads(matmulF32(h, w.wq), s.qHeads, s.dim);
  r.kPresent = appendToken(pastK, matmulF32(h, w.wk));
  r.vPresent = appendToken(pastV, matmulF32(h, w.wv));
  r.kSeen = r.kPresent;
  r.vSeen = r.vPresent;
  if (effective)
    effective(r.kSeen, r.vSeen);

  int64_t keys = s.past + 1;
  std::vector<int64_t> lengths(s.batch, keys);
  AttentionOptions options;
  options.scale = f32(s.scale);
  AttentionResult att = attention(q, r.kSeen, r.vSeen, lengths, options);
  Tensor o2 = mergeHeads(att.out);
  r.y = matmulDouble(o2, w.wo);

  // Attention bound on the data (docs/Numerics.md section 7).
  int64_t group = s.qHeads / s.kvHeads;
  double maxScore = 0.0;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t hq = 0; hq < s.qHeads; ++hq)
      for (int64_t t = 0; t < keys; ++t) {
        double dot = 0.0;
        for (int64_t d = 0; d < s.dim; ++d)
          dot += std::fabs(q.at({b, hq, 0, d}) *
                           r.kSeen.at({b, hq / group, t, d}));
        maxScore = std::max(maxScore, options.scale * dot);
      }
  double maxV = maxAbs(r.vSeen);
  AttentionTolerance tol =
      fp32AttentionTolerance(s.dim, keys, maxScore, maxV, maxAbs(att.lse),
                             dequantizing, ScalarType::F32);
  double tolO = tol.out;
  r.yTol = projectionTolerance(o2, w.wo, tolO);
  return r;
}

std::vector<LayerResult> kvopt::semtest::runStack(
    const LayerShape &s, const std::vector<LayerWeights> &w, const Tensor &x,
    const std::vector<Tensor> &pastK, const std::vector<Tensor> &pastV,
    const LayerEffectiveKV &effective, bool dequantizing, Tensor &out,
    Tensor &outTol) {
  std::vector<LayerResult> layers;
  Tensor h = x.reshaped({s.batch, s.hidden});
  double hTol = 0.0;
  outTol = Tensor(h.shape());
  for (size_t l = 0; l < w.size(); ++l) {
    EffectiveKV hook;
    if (effective)
      hook = [&](Tensor &k, Tensor &v) { effective(l, layers, k, v); };
    LayerResult r =
        runLayer(s, w[l], h, 0.0, pastK[l], pastV[l], hook, dequantizing);
    r.hTol = hTol;
    if (hTol > 0.0) {
      // The graph's h differs from this one by at most hTol per element;
      // to first order y moves by sum_i |dy_j / dh_i| hTol. The Jacobian
      // is measured by central differences (step 1e-3: the layer is smooth
      // and the projections' f32 rounding stays far below the step), with
      // a factor 2 for the linearization.
      const double step = 1e-3;
      Tensor slope(r.y.shape());
      for (int64_t i = 0; i < s.hidden; ++i) {
        Tensor up = h, down = h;
        for (int64_t b = 0; b < s.batch; ++b) {
          up.at({b, i}) += step;
          down.at({b, i}) -= step;
        }
        Tensor yUp =
            runLayer(s, w[l], up, 0.0, pastK[l], pastV[l], hook, dequantizing)
                .y;
        Tensor yDown =
            runLayer(s, w[l], down, 0.0, pastK[l], pastV[l], hook, dequantizing)
                .y;
        for (int64_t e = 0; e < slope.numel(); ++e)
          slope.data()[e] +=
              std::fabs(yUp.data()[e] - yDown.data()[e]) / (2.0 * step);
      }
      for (int64_t e = 0; e < slope.numel(); ++e)
        r.yTol.data()[e] += 2.0 * slope.data()[e] * hTol;
    }
    // Residual h + y, rounded to f32 in the graph: the next layer's input
    // is the f32 sum (as close to the graph's as the bounds say).
    double worst = 0.0;
    for (int64_t i = 0; i < h.numel(); ++i) {
      double sum = h.data()[i] + r.y.data()[i];
      double t = outTol.data()[i] + r.yTol.data()[i] + kU * std::fabs(sum);
      outTol.data()[i] = t;
      worst = std::max(worst, t);
      h.data()[i] = f32(sum);
    }
    hTol = worst;
    layers.push_back(std::move(r));
  }
  out = h.reshaped({s.batch, 1, s.hidden});
  outTol = outTol.reshaped({s.batch, 1, s.hidden});
  return layers;
}

MlaResult kvopt::semtest::runMla(const MlaWeightsF32 &w, const Tensor &x,
                                 const Tensor &pastRows,
                                 const EffectiveRows &effective) {
  const int64_t heads = 4, nope = 16, rope = 8, dv = 16, latent = 32;
  int64_t batch = x.dim(0), past = pastRows.dim(1), keys = past + 1;
  Tensor h = x.reshaped({batch, x.dim(2)});
  Tensor q = matmulF32(h, w.wq), c = matmulF32(h, w.wdkv),
         kr = matmulF32(h, w.wkr);
  MlaResult r;
  r.rows = Tensor({batch, keys, latent + rope});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < keys; ++t)
      for (int64_t e = 0; e < latent + rope; ++e)
        r.rows.at({b, t, e}) =
            t < past ? pastRows.at({b, t, e})
                     : (e < latent ? c.at({b, e}) : kr.at({b, e - latent}));
  Tensor seen = r.rows;
  if (effective)
    effective(seen);
  MlaCache cache;
  cache.latent = Tensor({batch, keys, latent});
  cache.ropeKey = Tensor({batch, keys, rope});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < keys; ++t)
      for (int64_t e = 0; e < latent + rope; ++e)
        (e < latent ? cache.latent.at({b, t, e})
                    : cache.ropeKey.at({b, t, e - latent})) =
            seen.at({b, t, e});
  MlaWeights weights;
  weights.upK = Tensor({heads, latent, nope});
  weights.upV = Tensor({heads, latent, dv});
  for (int64_t hh = 0; hh < heads; ++hh)
    for (int64_t l = 0; l < latent; ++l) {
      for (int64_t i = 0; i < nope; ++i)
        weights.upK.at({hh, l, i}) = w.wuk.at({l, hh * nope + i});
      for (int64_t j = 0; j < dv; ++j)
        weights.upV.at({hh, l, j}) = w.wuv.at({l, hh * dv + j});
    }
  Tensor qNope({batch, heads, 1, nope}), qRope({batch, heads, 1, rope});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t hh = 0; hh < heads; ++hh)
      for (int64_t i = 0; i < nope + rope; ++i)
        (i < nope ? qNope.at({b, hh, 0, i}) : qRope.at({b, hh, 0, i - nope})) =
            q.at({b, hh * (nope + rope) + i});
  AttentionOptions options;
  options.scale = f32(0.204124145);
  std::vector<int64_t> lengths(batch, keys);
  AttentionResult att =
      mlaAttentionNaive(qNope, qRope, cache, weights, lengths, options);
  Tensor o2 = mergeHeads(att.out);
  r.y = matmulDouble(o2, w.wo);

  // Magnitudes of the whole chain, which bound both evaluation orders:
  // scores sum_l sum_i |q_i W_uk[l, i] c_l| + sum |q_r k_r|, values
  // sum_l |c_l W_uv[l, j]|; the contraction lengths (24 naive, 16 + 32
  // absorbed, 32 for the value up-projection) lumped into D = 72.
  double maxScore = 0.0, maxV = 0.0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t hh = 0; hh < heads; ++hh)
      for (int64_t t = 0; t < keys; ++t) {
        double sum = 0.0;
        for (int64_t l = 0; l < latent; ++l)
          for (int64_t i = 0; i < nope; ++i)
            sum +=
                std::fabs(qNope.at({b, hh, 0, i}) * weights.upK.at({hh, l, i}) *
                          cache.latent.at({b, t, l}));
        for (int64_t e = 0; e < rope; ++e)
          sum +=
              std::fabs(qRope.at({b, hh, 0, e}) * cache.ropeKey.at({b, t, e}));
        maxScore = std::max(maxScore, options.scale * sum);
        for (int64_t j = 0; j < dv; ++j) {
          double v = 0.0;
          for (int64_t l = 0; l < latent; ++l)
            v += std::fabs(cache.latent.at({b, t, l}) *
                           weights.upV.at({hh, l, j}));
          maxV = std::max(maxV, v);
        }
      }
  AttentionTolerance tol = fp32AttentionTolerance(
      nope + latent + latent / 2 + rope, keys, maxScore, maxV, maxAbs(att.lse),
      bool(effective), ScalarType::F32);
  r.yTol = projectionTolerance(o2, w.wo, tol.out + gamma(latent) * maxV);
  return r;
}
