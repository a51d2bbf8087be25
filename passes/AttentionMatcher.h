//===- AttentionMatcher.h - find attention in linalg model graphs -*- C++
//-*-===//
//
// The matcher shared by kv-raise-attention and kv-absorb-mla: it proves that
// a P·V contraction computes softmax(scale · Q·Kᵀ + mask) · V and says where
// q, K and V come from, in terms of a canonical [B, H, T, D] layout.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_PASSES_ATTENTIONMATCHER_H
#define KVOPT_PASSES_ATTENTIONMATCHER_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"

#include <optional>
#include <string>
#include <vector>

namespace kvopt::raise {

/// What a loop of the attention contractions iterates over. A batch
/// contraction over `[B*H, T, D]` has one `BatchHead` loop instead of a
/// `Batch` and a `Head` loop.
enum class Role { Batch, Head, BatchHead, QueryTok, KeyTok, HeadDim, ValueDim };

/// One mixed-radix digit of a role's index: `(index / stride) % extent`.
/// Tensor dimensions are lists of digits (outer to inner); reshapes split
/// and merge them, transposes move them, broadcasts drop them. Digits of
/// extent 1 carry no information and are never stored.
struct Digit {
  Role role;
  int64_t stride;
  int64_t extent;
  bool operator==(const Digit &o) const {
    return role == o.role && stride == o.stride && extent == o.extent;
  }
};
using DimDigits = llvm::SmallVector<Digit, 2>;
using Layout = llvm::SmallVector<DimDigits, 4>;

/// A tensor traced backwards from a contraction operand through layout ops
/// (reshapes, transposes, broadcasts, copies) and, when asked, scaling by
/// constants.
struct LayoutTrace {
  /// Where the trace stopped: the first value not produced by a layout op.
  mlir::Value value;
  /// Digits of `value`'s dimensions.
  Layout dims;
  /// Digits removed by broadcasts on the way (head repetition).
  llvm::SmallVector<Digit> dropped;
  /// Product of the constant factors peeled on the way.
  double scale = 1.0;
  /// Every value passed, with its digits and the scale accumulated up to it.
  struct Step {
    mlir::Value value;
    Layout dims;
    double scale;
  };
  std::vector<Step> path;
};

/// Traces `value` with digits `dims` backwards; see LayoutTrace.
LayoutTrace traceLayout(mlir::Value value, Layout dims, bool peelScales);

/// Mask semantics proven from a constant mask, in kv.attention's terms.
struct MaskInfo {
  bool present = false;
  bool causal = false;
  std::optional<int64_t> window;
  int64_t sinks = 0;
};

/// A matched attention: `output` (P·V) computes
/// `softmax(scale · q·kᵀ + mask) · v` with `q` read from `query` and the
/// keys and values read from `keys.value` / `values.value`, which have the
/// canonical layout `[B, kvHeads, kvLen, D]`; query head h reads KV head
/// h / (qHeads / kvHeads).
struct AttentionMatch {
  mlir::linalg::LinalgOp scores; // Q·Kᵀ
  mlir::linalg::LinalgOp output; // P·V
  int64_t batch = 0, qHeads = 0, kvHeads = 0, qLen = 0, kvLen = 0;
  int64_t headDim = 0, valueDim = 0;
  /// The query value closest to its producer that holds q up to layout,
  /// with its digits; materializeQuery makes it [B, Hq, Tq, D].
  mlir::Value query;
  Layout queryDims;
  LayoutTrace keys, values;
  double scale = 1.0;
  MaskInfo mask;
  /// The digits of the batch index b and the query head index h.
  Digit batchDigit{Role::Batch, 1, 1}, headDigit{Role::Head, 1, 1};
  /// Canonical digits of q ([B, Hq, Tq, D]) and of the output
  /// ([B, Hq, Tq, Dv]); digits of extent 1 are absent.
  llvm::SmallVector<Digit> queryCanonical, outputCanonical;
  /// Digits of the P·V result's dimensions.
  Layout outputDims;
  mlir::Type elementType;
};

/// A batched contraction one of whose operands is computed elementwise (or
/// by reductions) from another batched contraction: something that looks
/// like attention and deserves a remark when it is not raised.
bool isAttentionCandidate(mlir::linalg::LinalgOp op);

/// Proves `pv` is the P·V contraction of an attention; on failure `why`
/// says what did not match. The keys and values are traced but their
/// layout is not checked (see checkKVLayout): MLA computes them from a
/// latent cache.
mlir::FailureOr<AttentionMatch> matchAttention(mlir::linalg::LinalgOp pv,
                                               std::string &why);

/// Checks `trace` ended at a tensor laid out `[B, kvHeads, kvLen, dim]` for
/// the attention `m` (`dimRole` = HeadDim or ValueDim), with head
/// repetition (if any) mapping query head h to KV head h / r. Sets
/// m.kvHeads on success.
mlir::LogicalResult checkKVLayout(AttentionMatch &m, const LayoutTrace &trace,
                                  Role dimRole, std::string &why);

/// Builds `[B, Hq, Tq, D]` q from m.query.
mlir::Value materializeQuery(mlir::OpBuilder &b, mlir::Location loc,
                             const AttentionMatch &m);

/// Builds a value of the P·V result's type from the canonical output
/// `[B, Hq, Tq, Dv]`.
mlir::Value materializeOutput(mlir::OpBuilder &b, mlir::Location loc,
                              const AttentionMatch &m, mlir::Value canonical);

/// Reshapes `value` to `type` (same elements in row-major order) with
/// collapse/expand_shape.
mlir::Value reshapeTo(mlir::OpBuilder &b, mlir::Location loc, mlir::Value value,
                      mlir::RankedTensorType type);

/// Erases `roots` if unused and side-effect free, then their producers
/// that become unused, transitively.
void eraseDeadOps(llvm::ArrayRef<mlir::Operation *> roots);

/// An i32 vector of `batch` copies of `value`.
mlir::Value i32Splat(mlir::OpBuilder &b, mlir::Location loc, int64_t batch,
                     int64_t value);

} // namespace kvopt::raise

#endif // KVOPT_PASSES_ATTENTIONMATCHER_H
