//===- Mla.cpp - Reference multi-head latent attention --------------------===//
//
// MLA's latent projection, the naive per-head attention over up-projected
// keys and values, and the absorbed form that attends over the latent cache.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Reference/Reference.h"

using namespace kvopt::reference;

namespace {

/// Concatenates a[..., Da] and b[..., Db] (same leading shape) along the
/// last dimension.
Tensor concatLast(const Tensor &a, const Tensor &b) {
  std::vector<int64_t> shape = a.shape();
  int64_t widthA = a.dim(-1), widthB = b.dim(-1);
  KVOPT_REF_CHECK(widthA > 0 && widthB > 0 &&
                      a.numel() / widthA == b.numel() / widthB,
                  "concatenated tensors differ in leading shape");
  shape.back() = widthA + widthB;
  Tensor out(shape);
  int64_t rows = a.numel() / widthA;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t d = 0; d < widthA; ++d)
      out.data()[r * (widthA + widthB) + d] = a.data()[r * widthA + d];
    for (int64_t d = 0; d < widthB; ++d)
      out.data()[r * (widthA + widthB) + widthA + d] = b.data()[r * widthB + d];
  }
  return out;
}

/// x[rows, n] times w[n, m] for x given as any tensor with last dim n.
Tensor matmulLast(const Tensor &x, const Tensor &w) {
  KVOPT_REF_CHECK(w.rank() == 2 && x.dim(-1) == w.dim(0),
                  "matmul inner dimensions differ");
  int64_t n = w.dim(0), m = w.dim(1), rows = x.numel() / n;
  std::vector<int64_t> shape = x.shape();
  shape.back() = m;
  Tensor out(shape);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < m; ++j) {
      double sum = 0.0;
      for (int64_t k = 0; k < n; ++k)
        sum += x.data()[r * n + k] * w.at({k, j});
      out.data()[r * m + j] = sum;
    }
  return out;
}

/// Per-head projection: out[b, h, t, j] = sum_l x[b, h?, t, l] w[h, l, j],
/// where x is [B, T, L] shared by all heads (sharedX) or [B, H, T, L].
Tensor projectPerHead(const Tensor &x, const Tensor &w, bool sharedX) {
  int64_t heads = w.dim(0), inner = w.dim(1), width = w.dim(2);
  int64_t batch = x.dim(0), tokens = sharedX ? x.dim(1) : x.dim(2);
  KVOPT_REF_CHECK(x.dim(-1) == inner, "projection inner dimensions differ");
  KVOPT_REF_CHECK(sharedX || x.dim(1) == heads,
                  "per-head input and weights differ in heads");
  Tensor out({batch, heads, tokens, width});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t j = 0; j < width; ++j) {
          double sum = 0.0;
          for (int64_t l = 0; l < inner; ++l)
            sum += (sharedX ? x.at({b, t, l}) : x.at({b, h, t, l})) *
                   w.at({h, l, j});
          out.at({b, h, t, j}) = sum;
        }
  return out;
}

void checkMlaShapes(const Tensor &qNope, const Tensor &qRope,
                    const MlaCache &cache, const MlaWeights &weights) {
  KVOPT_REF_CHECK(qNope.rank() == 4 && qRope.rank() == 4,
                  "MLA queries are [B, H, Tq, nope] and [B, H, Tq, rope]");
  KVOPT_REF_CHECK(weights.upK.rank() == 3 && weights.upV.rank() == 3,
                  "MLA up-projections are [H, latent, width]");
  KVOPT_REF_CHECK(qNope.dim(1) == weights.upK.dim(0) &&
                      qNope.dim(1) == weights.upV.dim(0),
                  "MLA query heads differ from the weights' heads");
  KVOPT_REF_CHECK(qNope.dim(3) == weights.upK.dim(2),
                  "qNope width differs from W_uk's output width");
  KVOPT_REF_CHECK(cache.latent.rank() == 3 && cache.ropeKey.rank() == 3 &&
                      cache.latent.dim(2) == weights.upK.dim(1) &&
                      cache.latent.dim(2) == weights.upV.dim(1),
                  "MLA cache is [B, T, latent] and [B, T, rope]");
  KVOPT_REF_CHECK(qRope.dim(3) == cache.ropeKey.dim(2),
                  "qRope width differs from the rope key width");
}

} // namespace

MlaCache kvopt::reference::mlaProject(const Tensor &hidden,
                                      const MlaWeights &weights,
                                      const std::vector<int64_t> &positions,
                                      double theta) {
  KVOPT_REF_CHECK(hidden.rank() == 3, "MLA hidden states are [B, T, hidden]");
  int64_t batch = hidden.dim(0), tokens = hidden.dim(1);
  MlaCache cache;
  cache.latent = matmulLast(hidden, weights.downKV);
  Tensor ropeInput = matmulLast(hidden, weights.downRope);
  int64_t ropeDim = ropeInput.dim(2);
  cache.ropeKey = applyRope(ropeInput.reshaped({batch, 1, tokens, ropeDim}),
                            positions, theta)
                      .reshaped({batch, tokens, ropeDim});
  return cache;
}

AttentionResult kvopt::reference::mlaAttentionNaive(
    const Tensor &qNope, const Tensor &qRope, const MlaCache &cache,
    const MlaWeights &weights, const std::vector<int64_t> &lengths,
    const AttentionOptions &options) {
  checkMlaShapes(qNope, qRope, cache, weights);
  int64_t batch = cache.latent.dim(0), tokens = cache.latent.dim(1);
  int64_t heads = weights.upK.dim(0), ropeDim = cache.ropeKey.dim(2);
  Tensor keyNope = projectPerHead(cache.latent, weights.upK, true);
  // The decoupled rope key is one vector per token, repeated for every head.
  Tensor keyRope({batch, heads, tokens, ropeDim});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t d = 0; d < ropeDim; ++d)
          keyRope.at({b, h, t, d}) = cache.ropeKey.at({b, t, d});
  Tensor values = projectPerHead(cache.latent, weights.upV, true);
  return attention(concatLast(qNope, qRope), concatLast(keyNope, keyRope),
                   values, lengths, options);
}

Tensor kvopt::reference::mlaAbsorbQuery(const Tensor &qNope,
                                        const MlaWeights &weights) {
  const Tensor &upK = weights.upK;
  int64_t heads = upK.dim(0), latent = upK.dim(1), nope = upK.dim(2);
  // W_uk[h]^T as [H, nope, latent], so the per-head projection applies.
  Tensor upKTransposed({heads, nope, latent});
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t l = 0; l < latent; ++l)
      for (int64_t n = 0; n < nope; ++n)
        upKTransposed.at({h, n, l}) = upK.at({h, l, n});
  return projectPerHead(qNope, upKTransposed, false);
}

AttentionResult kvopt::reference::mlaLatentAttention(
    const Tensor &qLatent, const Tensor &qRope, const MlaCache &cache,
    const std::vector<int64_t> &lengths, const AttentionOptions &options) {
  KVOPT_REF_CHECK(cache.latent.rank() == 3 && cache.ropeKey.rank() == 3,
                  "MLA cache is [B, T, latent] and [B, T, rope]");
  int64_t batch = cache.latent.dim(0), tokens = cache.latent.dim(1);
  int64_t latent = cache.latent.dim(2), ropeDim = cache.ropeKey.dim(2);
  // One KV head whose key is [c, k_r] and whose value is c itself
  // (FlashMLA's 576/512 shape for DeepSeek).
  Tensor key = concatLast(cache.latent, cache.ropeKey)
                   .reshaped({batch, 1, tokens, latent + ropeDim});
  Tensor value = cache.latent.reshaped({batch, 1, tokens, latent});
  return attention(concatLast(qLatent, qRope), key, value, lengths, options);
}

AttentionResult kvopt::reference::mlaAttentionAbsorbed(
    const Tensor &qNope, const Tensor &qRope, const MlaCache &cache,
    const MlaWeights &weights, const std::vector<int64_t> &lengths,
    const AttentionOptions &options) {
  checkMlaShapes(qNope, qRope, cache, weights);
  AttentionResult latentResult = mlaLatentAttention(
      mlaAbsorbQuery(qNope, weights), qRope, cache, lengths, options);
  return {projectPerHead(latentResult.out, weights.upV, false),
          latentResult.lse};
}
