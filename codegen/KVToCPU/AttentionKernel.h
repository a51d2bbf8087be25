//===- AttentionKernel.h - the attention kernel generator -------*- C++ -*-===//
//
// The per-task state of the attention kernel (kv.attention and
// kv.mla_attention), shared by its two key loops: the generic per-token loop
// (AttentionToCPU.cpp) and the register-tiled blocked loop
// (BlockedAttention.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_KVTOCPU_ATTENTIONKERNEL_H
#define KVOPT_CODEGEN_KVTOCPU_ATTENTIONKERNEL_H

#include "KernelBuilder.h"

#include <functional>

namespace kvopt {
namespace cpu {

/// Builds one attention kernel: one scf.parallel task per (sequence, key
/// split), then, with several splits, the merge of their partial states.
struct AttentionKernel {
  const AttentionSpec &spec;
  KB &k;
  mlir::ImplicitLocOpBuilder &b;
  llvm::SmallVector<mlir::Value> queries;
  CacheAccess cache;
  mlir::Value lens, out, lse, wsOut, wsLse;
  /// Query heads per KV head, and rows (query head x query row) per task.
  int64_t group = 0, rows = 0;

  AttentionKernel(const AttentionSpec &spec, KB &k, mlir::ValueRange args);

  /// What one task's key loop reads and updates. Row r = h * Tq + i is
  /// query row i of query head h; KV head kh owns rows [kh * G * Tq,
  /// (kh + 1) * G * Tq).
  struct Task {
    mlir::Value bi;      ///< sequence
    mlir::Value len;     ///< its length
    mlir::Value n;       ///< keys this task iterates
    mlir::Value winBase; ///< byte offset of the sequence's window slot
    mlir::Value qs;      ///< [rows][keyDim] f32 queries times scale
    mlir::Value acc;     ///< [rows][valueDim] f32 unnormalized outputs
    mlir::Value m, l;    ///< [rows] f32 running max and sum
    /// Key index of the u-th iterated key (sinks, then the window).
    std::function<mlir::Value(mlir::Value)> tokenAt;
  };

  /// Query row (head, i) of sequence bi as vector<keyDim x f32>, times scale.
  mlir::Value loadQuery(mlir::Value bi, mlir::Value head, mlir::Value i);
  /// Query head and query row of row r.
  mlir::Value rowHead(mlir::Value r) { return k.div(r, spec.queryRows); }
  mlir::Value rowQuery(mlir::Value r) { return k.rem(r, spec.queryRows); }
  /// Whether a mask can hide keys inside the iterated ranges.
  bool masked() const {
    return (spec.causal && spec.queryRows > 1) || spec.window > 0;
  }
  /// Whether key j is visible to query row i (masked() only).
  mlir::Value visible(mlir::Value len, mlir::Value i, mlir::Value j);
  /// `visible` for a vector of key positions `j`.
  mlir::Value visibleVec(mlir::Value len, mlir::Value i, mlir::Value j);

  /// One online-softmax step of row r over a block's scores `sv`
  /// (vector<n x f32>, -inf where hidden): updates m[r] and l[r] and
  /// returns the weights exp(sv - m_new) and the accumulators' rescale
  /// alpha = exp(m_old - m_new).
  std::pair<mlir::Value, mlir::Value>
  softmaxStep(const Task &task, mlir::Value r, mlir::Value sv);

  /// Body of one (sequence, split) task.
  void buildTask(mlir::Value bi, mlir::Value s);
  /// Second phase with several splits: merges the partial states of row r.
  void buildMerge(mlir::Value bi, mlir::Value r);

  /// Whether the blocked loop covers the spec: blocks, key and value rows
  /// in whole vectors of lanes().
  bool blocked() const;
  /// Key loop for any block size and head dim: token by token.
  void buildGenericLoop(const Task &task);
  /// Register-tiled key loop (BlockedAttention.cpp).
  void buildBlockedLoop(const Task &task);
};

} // namespace cpu
} // namespace kvopt

#endif // KVOPT_CODEGEN_KVTOCPU_ATTENTIONKERNEL_H
