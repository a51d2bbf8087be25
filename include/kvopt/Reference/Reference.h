//===- Reference.h - Double-precision reference for every kv op -*- C++ -*-===//
//
// The numeric meaning of the kv ops (RoPE, append, attention with its masks,
// paged gather, merge of partial states, MLA), in plain C++ with double
// accumulation; the oracle for the CPU lowering and the emulated GPU kernels.
//
//===----------------------------------------------------------------------===//
//
// Conventions shared by every function below (docs/Numerics.md has the
// long form and the tolerances kernels are held to):
//
// * Logical K/V tensors are head-major, [B, Hkv, T, D]; sequence b has
//   lengths[b] valid tokens, and rows at t >= lengths[b] are never read.
//   Queries are [B, Hq, Tq, D]; query head h reads KV head h / (Hq / Hkv).
// * RoPE is the rotate-half (NeoX, Llama) convention: for i < D/2,
//     a = pos * theta^(-2i/D)
//     y[i]       = x[i] cos a - x[i + D/2] sin a
//     y[i + D/2] = x[i + D/2] cos a + x[i] sin a
// * Query i of Tq in sequence b sits at absolute position
//   p = lengths[b] - Tq + i. Key j is visible to it when
//     keyBegin <= j < min(keyEnd, lengths[b])             (split range)
//     and (!causal || j <= p)
//     and (window == 0 || j > p - window || j < sinks).
//   Window and sinks are measured from p, so they need causal positions
//   but are applied whether or not `causal` is set.
// * Attention: s_j = scale * q.k_j over visible j, m = max s_j,
//   lse = m + log(sum exp(s_j - m)) (natural log), out = sum exp(s_j - lse)
//   v_j. A row with no visible key has out = 0 and lse = -inf.
// * Merge of partial states (o_s, lse_s): lse = logsumexp_s lse_s,
//   o = sum_s exp(lse_s - lse) o_s; parts with lse_s = -inf weigh nothing,
//   and if all are -inf the result is o = 0, lse = -inf.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_REFERENCE_REFERENCE_H
#define KVOPT_REFERENCE_REFERENCE_H

#include "kvopt/Reference/Numeric.h"
#include "kvopt/Reference/Quantize.h"
#include "kvopt/Reference/Tensor.h"

#include <cstdint>
#include <vector>

namespace kvopt {
namespace reference {

//===----------------------------------------------------------------------===//
// RoPE and append
//===----------------------------------------------------------------------===//

/// Applies rotate-half RoPE to x[B, H, T, D] (D even); positions[b * T + t]
/// is the absolute position of token t of sequence b.
Tensor applyRope(const Tensor &x, const std::vector<int64_t> &positions,
                 double theta);

/// Positions start[b] + t for t < tokens, laid out as applyRope expects.
std::vector<int64_t> appendPositions(const std::vector<int64_t> &start,
                                     int64_t tokens);

/// The rows an append stores: rows[B, H, Tn, D] rotated by applyRope at
/// positions start[b] + t when `ropeTheta` > 0, else unchanged.
Tensor appendedRows(const Tensor &rows, const std::vector<int64_t> &start,
                    double ropeTheta);

/// Writes appendedRows(rows, start, ropeTheta) into cache[B, H, capacity, D] at
/// positions start[b] .. start[b] + Tn - 1 of sequence b. `ropeTheta` > 0 for
/// keys, 0 for values or keys roped elsewhere.
void appendContiguous(Tensor &cache, const Tensor &rows,
                      const std::vector<int64_t> &start, double ropeTheta);

//===----------------------------------------------------------------------===//
// Paging
//===----------------------------------------------------------------------===//

/// Per-sequence page lists: page i of sequence b (tokens
/// [i * pageSize, (i + 1) * pageSize)) is pages[b * maxPages + i].
struct BlockTable {
  int64_t batch = 0;
  int64_t maxPages = 0;
  /// [batch][maxPages] physical page indices; entries past a sequence's last
  /// page are never read.
  std::vector<int32_t> pages;

  int32_t page(int64_t b, int64_t i) const;
};

/// Order of the elements inside one page of a full-precision page tensor.
enum class PageOrder {
  /// pages[P, pageSize, Hkv, D]: the token-major page of docs/CacheLayout.md.
  TokenMajor,
  /// pages[P, Hkv, pageSize, D]: head-major pages (FlashInfer's HND).
  HeadMajor,
};

/// Page size of a page tensor in `order`.
int64_t pageSizeOf(const Tensor &pages, PageOrder order);

/// Gathers the first lengths[b] tokens of every sequence from `pages` into a
/// contiguous [B, Hkv, max(lengths), D]; rows past a sequence's length are 0.
Tensor gatherPages(const Tensor &pages, PageOrder order,
                   const BlockTable &table,
                   const std::vector<int64_t> &lengths);

/// Paged twin of appendContiguous: rows[B, H, Tn, D] go to the slots of
/// positions start[b] + t through the block table.
void appendPaged(Tensor &pages, PageOrder order, const BlockTable &table,
                 const Tensor &rows, const std::vector<int64_t> &start,
                 double ropeTheta);

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

struct AttentionOptions {
  /// Multiplies q.k before the softmax (usually 1 / sqrt(D)).
  double scale = 1.0;
  bool causal = false;
  /// Sliding window W: keys at positions > p - W are visible; 0 = no window.
  int64_t window = 0;
  /// The first `sinks` keys stay visible outside the window.
  int64_t sinks = 0;
  /// Keys [keyBegin, keyEnd) only (one split of split-KV); keyEnd < 0 means
  /// through the sequence's length.
  int64_t keyBegin = 0;
  int64_t keyEnd = -1;
};

/// Output [B, Hq, Tq, Dv] and natural-log log-sum-exp [B, Hq, Tq] of the
/// scaled scores.
struct AttentionResult {
  Tensor out;
  Tensor lse;
};

/// Absolute position of query i of `queries` in a sequence of `length`.
int64_t queryPosition(int64_t length, int64_t queries, int64_t i);

/// Whether key `key` is visible to a query at `position` in a sequence of
/// `length` tokens under `options` (the mask in the header comment).
bool isKeyVisible(const AttentionOptions &options, int64_t position,
                  int64_t key, int64_t length);

/// Attention of q[B, Hq, Tq, D] over k[B, Hkv, T, D], v[B, Hkv, T, Dv]
/// (Hkv divides Hq; T >= every length).
AttentionResult attention(const Tensor &q, const Tensor &k, const Tensor &v,
                          const std::vector<int64_t> &lengths,
                          const AttentionOptions &options);

/// One quantized cache component of a batch: sequence b's storage covers its
/// lengths[b] = sequences[b].tokens tokens in token-major [T][Hkv][D].
struct QuantizedCache {
  QuantEncoding encoding;
  std::vector<QuantizedTensor> sequences;
  /// Full-precision rows [T][Hkv][D] per sequence for the recent/sink
  /// windows; may be empty when the encoding has no windows.
  std::vector<Tensor> fullPrecision;

  std::vector<int64_t> lengths() const;
};

/// Quantizes the first lengths[b] tokens of x[B, H, T, D] per sequence.
QuantizedCache quantizeCache(const Tensor &x,
                             const std::vector<int64_t> &lengths,
                             const QuantEncoding &encoding);

/// The dequantized view [B, H, max(lengths), D] (windows exact, zero past
/// each length).
Tensor dequantizeCache(const QuantizedCache &cache);

/// Attention over quantized K and V: dequantizeCache then attention, so a
/// fused-dequantization kernel is held to the reference's own dequantized
/// values.
AttentionResult attentionQuantized(const Tensor &q, const QuantizedCache &k,
                                   const QuantizedCache &v,
                                   const AttentionOptions &options);

/// Merges partial states of the same queries over disjoint key sets.
AttentionResult mergeStates(const std::vector<AttentionResult> &parts);

/// Error bounds of an f32 attention kernel against attention() on the same
/// (element-rounded or dequantized) inputs; derivation in docs/Numerics.md.
struct AttentionTolerance {
  double out = 0.0; ///< absolute, per output element
  double lse = 0.0; ///< absolute, per row
};

/// Tolerance for f32 accumulation over `dim`-wide dot products and `keys`
/// visible keys. `maxScore` bounds scale * sum_d |q_d k_d| over visible
/// keys, `maxValue` bounds |v|, `maxLse` bounds |lse|. `dequantizing` adds
/// the f32 rounding of a fused q * s + z. `outputType` adds the rounding of
/// the stored output (F32 for an f32 output).
AttentionTolerance fp32AttentionTolerance(int64_t dim, int64_t keys,
                                          double maxScore, double maxValue,
                                          double maxLse, bool dequantizing,
                                          ScalarType outputType);

/// Largest weight of the CPU kernels' 16-bit fixed-point values (int-dots):
/// `blockTokens` weights times codes of magnitude <= `codeMax` must sum in
/// an i32.
int64_t fixedPointWeightMax(int64_t blockTokens, int64_t codeMax);

/// Adds the error of the CPU kernels' fixed-point dot products (int-dots,
/// docs/Numerics.md) to `tol`. Keys: each query row is rounded to 16 bits
/// with step max|scale * q| / 32767, so a score moves by at most
/// `maxQuery` / 65534 * `maxCodeSum`, where `maxQuery` bounds |scale * q|
/// and `maxCodeSum` bounds sum_d |k_d - z_d| over keys (z the zero point,
/// 0 when symmetric). Values (when `fixedValues`): the weights p * s of a
/// block of `blockTokens` keys are rounded with the largest at
/// fixedPointWeightMax, so the output moves by at most blockTokens *
/// `maxValueRange` / (2 * weightMax), where `maxValueRange` bounds
/// |v - z|.
void addFixedPointTolerance(AttentionTolerance &tol, double maxQuery,
                            double maxCodeSum, double maxValue,
                            bool fixedValues, int64_t blockTokens,
                            int64_t codeMax, double maxValueRange);

//===----------------------------------------------------------------------===//
// Multi-head latent attention (MLA)
//===----------------------------------------------------------------------===//

/// MLA projection weights (DeepSeek-V2 naming).
struct MlaWeights {
  Tensor downKV;   ///< [hidden, latent]: c = h W_dkv
  Tensor downRope; ///< [hidden, rope]: k_r = RoPE(h W_kr), shared by heads
  Tensor upK;      ///< [H, latent, nope]: k_nope of head h = c W_uk[h]
  Tensor upV;      ///< [H, latent, Dv]: v of head h = c W_uv[h]
};

/// What the MLA cache holds per token.
struct MlaCache {
  Tensor latent;  ///< [B, T, latent]
  Tensor ropeKey; ///< [B, T, rope], already rotated
};

/// c = h W_dkv and k_r = RoPE(h W_kr) for hidden[B, T, hidden], token t of
/// sequence b at positions[b * T + t].
MlaCache mlaProject(const Tensor &hidden, const MlaWeights &weights,
                    const std::vector<int64_t> &positions, double theta);

/// Naive MLA: per-head K = [c W_uk[h], k_r], V = c W_uv[h], q = [qNope,
/// qRope], then multi-head attention. qNope[B, H, Tq, nope], qRope[B, H, Tq,
/// rope] (already rotated); output [B, H, Tq, Dv].
AttentionResult mlaAttentionNaive(const Tensor &qNope, const Tensor &qRope,
                                  const MlaCache &cache,
                                  const MlaWeights &weights,
                                  const std::vector<int64_t> &lengths,
                                  const AttentionOptions &options);

/// q_latent[B, H, Tq, latent] = qNope W_uk[h]^T: W_uk absorbed into the query.
Tensor mlaAbsorbQuery(const Tensor &qNope, const MlaWeights &weights);

/// The latent attention of kv.mla_attention: MQA of q = [qLatent, qRope]
/// ([B, H, Tq, latent] and [B, H, Tq, rope]) over keys [c, k_r] and values
/// c, giving the softmax-weighted latent sum [B, H, Tq, latent] and its lse.
AttentionResult mlaLatentAttention(const Tensor &qLatent, const Tensor &qRope,
                                   const MlaCache &cache,
                                   const std::vector<int64_t> &lengths,
                                   const AttentionOptions &options);

/// Absorbed MLA: scores q_latent.c + qRope.k_r (MQA over the latent cache,
/// key width latent + rope), outLatent = sum p c, out = outLatent W_uv[h].
/// Equal to mlaAttentionNaive in exact arithmetic.
AttentionResult mlaAttentionAbsorbed(const Tensor &qNope, const Tensor &qRope,
                                     const MlaCache &cache,
                                     const MlaWeights &weights,
                                     const std::vector<int64_t> &lengths,
                                     const AttentionOptions &options);

} // namespace reference
} // namespace kvopt

#endif // KVOPT_REFERENCE_REFERENCE_H
