//===- GraphModel.h - double-precision models of the example graphs -*- C++
//-*-===//
//
// What examples/graphs/*.mlir compute, in double with the reference's
// attention, plus a per-element bound on how far an f32 execution of the
// same graph may be from it (docs/Numerics.md's fp32AttentionTolerance
// carried through the output projection). Projections that feed the cache
// are reproduced bit for bit as linalg-to-loops runs them in f32, so the
// K/V rows a kernel appends are known exactly (and can be quantized the way
// the append kernel does).
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TEST_UNITTESTS_RAISE_GRAPHMODEL_H
#define KVOPT_TEST_UNITTESTS_RAISE_GRAPHMODEL_H

#include "kvopt/Reference/Reference.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace kvopt {
namespace semtest {

using reference::Tensor;

/// f32 unit roundoff.
constexpr double kU = 0x1p-24;

/// a[M, K] x b[K, N] as convert-linalg-to-loops runs linalg.matmul in f32:
/// for each (m, n), acc = f32(acc + f32(a * b)) over k in order from 0.
Tensor matmulF32(const Tensor &a, const Tensor &b);
/// The same product in double, and sum_k |a_mk| |b_kn|.
Tensor matmulDouble(const Tensor &a, const Tensor &b);
Tensor matmulAbs(const Tensor &a, const Tensor &b);

/// A Llama-style attention layer of llama-gqa-layer, mha-layer and each
/// layer of llama-4layer: hidden h[B, hidden]; q/k/v projections
/// [hidden, H*D]; heads split as [B, T, H, D] -> [B, H, T, D]; decode step
/// over `past` cached tokens; out projection [Hq*D, hidden].
struct LayerShape {
  int64_t batch = 2, hidden = 64, qHeads = 8, kvHeads = 2, dim = 16, past = 7;
  double scale = 0.25;
};
struct LayerWeights {
  Tensor wq, wk, wv, wo;
};

struct LayerResult {
  Tensor kPresent, vPresent; ///< [past ; new] as the graph concatenates them
  Tensor kSeen, vSeen;       ///< what attention reads (after `effective`)
  Tensor y;                  ///< [B, hidden] attention output projected
  Tensor yTol;               ///< |f32 execution - y| bound, per element
  double hTol = 0.0;         ///< the bound on this layer's input
};

/// Replaces the attended K/V [B, Hkv, past + 1, D] in place (quantization
/// round trip, another layer's cache); null = read them as they are.
using EffectiveKV = std::function<void(Tensor &k, Tensor &v)>;

/// One layer on hidden state `h` (f32 values). `hTol` is only recorded
/// (runStack adds what an input off by hTol does to y, through the
/// layer's measured Jacobian). `dequantizing` adds the fused
/// dequantization rounding to the bound.
LayerResult runLayer(const LayerShape &s, const LayerWeights &w,
                     const Tensor &h, double hTol, const Tensor &pastK,
                     const Tensor &pastV, const EffectiveKV &effective,
                     bool dequantizing);

/// The 4-layer model of llama-4layer: h_{l+1} = h_l + y_l. `effective(l,
/// results so far, k, v)` adjusts layer l's attended K/V. Returns the
/// layers; `out`/`outTol` get the final hidden state and its bound.
using LayerEffectiveKV = std::function<void(
    int64_t layer, const std::vector<LayerResult> &done, Tensor &k, Tensor &v)>;
std::vector<LayerResult>
runStack(const LayerShape &s, const std::vector<LayerWeights> &w,
         const Tensor &x, const std::vector<Tensor> &pastK,
         const std::vector<Tensor> &pastV, const LayerEffectiveKV &effective,
         bool dequantizing, Tensor &out, Tensor &outTol);

/// deepseek-mla-layer: 4 heads, q = [nope 16 ; rope 8] per head from wq
/// [64, 96]; cached row [c (32) ; k_r (8)]; W_uk, W_uv [32, 4*16]; out
/// projection [64, 64]; scale 0.204124145 (f32).
struct MlaWeightsF32 {
  Tensor wq, wdkv, wkr, wuk, wuv, wo;
};
struct MlaResult {
  Tensor rows; ///< [B, past + 1, 40], the graph's present rows
  Tensor y, yTol;
};
/// Replaces the attended latent rows [B, past + 1, 40] in place (the
/// quantization round trip of a quantized latent cache); null = as they are.
using EffectiveRows = std::function<void(Tensor &rows)>;
/// `yTol` bounds either an f32 naive execution (K/V up-projected, D = 24
/// attention) or the absorbed one (q·W_uk, D = 40 latent attention,
/// ·W_uv), from the magnitudes of the whole chain; with `effective`, the
/// attention reads the adjusted rows and the bound adds the fused
/// dequantization's rounding.
MlaResult runMla(const MlaWeightsF32 &w, const Tensor &x,
                 const Tensor &pastRows,
                 const EffectiveRows &effective = nullptr);

} // namespace semtest
} // namespace kvopt

#endif // KVOPT_TEST_UNITTESTS_RAISE_GRAPHMODEL_H
