//===- Rope.cpp - Reference rotate-half RoPE and contiguous append --------===//
//
// Rotary position embedding in the NeoX/Llama rotate-half convention and the
// write of new K/V rows into a contiguous cache.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Reference/Reference.h"

#include <cmath>

using namespace kvopt::reference;

Tensor kvopt::reference::applyRope(const Tensor &x,
                                   const std::vector<int64_t> &positions,
                                   double theta) {
  KVOPT_REF_CHECK(x.rank() == 4, "applyRope expects x[B, H, T, D]");
  int64_t batch = x.dim(0), heads = x.dim(1), tokens = x.dim(2), dim = x.dim(3);
  KVOPT_REF_CHECK(dim % 2 == 0, "RoPE needs an even head dim");
  KVOPT_REF_CHECK(static_cast<int64_t>(positions.size()) == batch * tokens,
                  "one position per token of every sequence");
  KVOPT_REF_CHECK(theta > 0.0, "RoPE base must be positive");
  int64_t half = dim / 2;
  Tensor y(x.shape());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < tokens; ++t) {
      double position = static_cast<double>(positions[b * tokens + t]);
      for (int64_t i = 0; i < half; ++i) {
        double angle =
            position * std::pow(theta, -2.0 * static_cast<double>(i) /
                                           static_cast<double>(dim));
        double c = std::cos(angle), s = std::sin(angle);
        for (int64_t h = 0; h < heads; ++h) {
          double lo = x.at({b, h, t, i}), hi = x.at({b, h, t, i + half});
          y.at({b, h, t, i}) = lo * c - hi * s;
          y.at({b, h, t, i + half}) = hi * c + lo * s;
        }
      }
    }
  return y;
}

std::vector<int64_t>
kvopt::reference::appendPositions(const std::vector<int64_t> &start,
                                  int64_t tokens) {
  std::vector<int64_t> positions;
  for (int64_t first : start)
    for (int64_t t = 0; t < tokens; ++t)
      positions.push_back(first + t);
  return positions;
}

Tensor kvopt::reference::appendedRows(const Tensor &rows,
                                      const std::vector<int64_t> &start,
                                      double ropeTheta) {
  if (ropeTheta <= 0.0)
    return rows;
  return applyRope(rows, appendPositions(start, rows.dim(2)), ropeTheta);
}

void kvopt::reference::appendContiguous(Tensor &cache, const Tensor &rows,
                                        const std::vector<int64_t> &start,
                                        double ropeTheta) {
  KVOPT_REF_CHECK(
      cache.rank() == 4 && rows.rank() == 4,
      "append expects cache[B, H, capacity, D] and rows[B, H, Tn, D]");
  KVOPT_REF_CHECK(cache.dim(0) == rows.dim(0) && cache.dim(1) == rows.dim(1) &&
                      cache.dim(3) == rows.dim(3),
                  "cache and rows differ in batch, heads or head dim");
  KVOPT_REF_CHECK(static_cast<int64_t>(start.size()) == rows.dim(0),
                  "one start position per sequence");
  int64_t tokens = rows.dim(2);
  Tensor stored = appendedRows(rows, start, ropeTheta);
  for (int64_t b = 0; b < rows.dim(0); ++b) {
    KVOPT_REF_CHECK(start[b] >= 0 && start[b] + tokens <= cache.dim(2),
                    "append past the cache capacity");
    for (int64_t h = 0; h < rows.dim(1); ++h)
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t d = 0; d < rows.dim(3); ++d)
          cache.at({b, h, start[b] + t, d}) = stored.at({b, h, t, d});
  }
}
