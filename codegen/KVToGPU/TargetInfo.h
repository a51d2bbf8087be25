//===- TargetInfo.h - GPU target description for kernel sizing --*- C++ -*-===//
//
// The hardware facts the KV kernels are sized from (SM count, shared memory,
// registers), per chip, and the rules that turn them and a problem shape into
// a decode schedule. No other file of the GPU code generator holds a
// hardware constant.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_KVTOGPU_TARGETINFO_H
#define KVOPT_CODEGEN_KVTOGPU_TARGETINFO_H

#include "kvopt/runtime/decode_plan.h"

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>

namespace kvopt::gpugen {

/// What one NVIDIA chip offers a kernel.
struct TargetInfo {
  std::string chip;    ///< "sm_80", "sm_90"
  int64_t smCount = 0; ///< streaming multiprocessors (A100, H100 SXM)
  int64_t warpSize = 32;
  int64_t maxThreadsPerBlock = 1024;
  int64_t registersPerSM = 65536;
  int64_t maxRegistersPerThread = 255;
  int64_t staticSharedPerBlock = 48 * 1024; ///< without opt-in
  int64_t maxLoadBytes = 16;                ///< widest global load (ld.v4.u32)
  /// Decode: warps per block and blocks the scheduler keeps resident per SM
  /// (the occupancy the register budget is computed for).
  int64_t decodeWarps = 4;
  int64_t decodeBlocksPerSM = 2;
  /// Decode: fewest keys one block scores per tile (amortizes barriers).
  int64_t decodeMinTileTokens = 32;
  /// Decode: most KV chunks one (sequence, KV head) is split into; bounds the
  /// merge kernel's shared memory.
  int64_t maxSplits = 128;
  /// Decode: fewest keys a chunk holds before splitting stops paying.
  int64_t minChunkTokens = 256;
  /// Prefill (tensor cores): keys per tile, the head dims whose Q
  /// fragments fit in registers, and the fewest query rows (G x Tq) per KV
  /// head for which kv.attention gets the prefill kernel instead of decode.
  int64_t prefillTileTokens = 32;
  int64_t prefillMaxHeadDim = 256;
  /// Prefill: warps per block (16 query rows each); above
  /// prefillWideHeadDim the block has prefillWideWarps and tiles of
  /// prefillWideTileTokens keys, so that each thread's Q fragments, S and O
  /// accumulators fit its register share without spilling.
  int64_t prefillWarps = 4;
  int64_t prefillWideHeadDim = 128;
  int64_t prefillWideWarps = 2;
  int64_t prefillWideTileTokens = 16;
  int64_t prefillWarpsFor(int64_t headDim) const {
    return headDim > prefillWideHeadDim ? prefillWideWarps : prefillWarps;
  }
  int64_t prefillTileFor(int64_t headDim) const {
    return headDim > prefillWideHeadDim ? prefillWideTileTokens
                                        : prefillTileTokens;
  }
  int64_t prefillMinRows = 64;
  /// Append: threads per block (several (token, head) rows per block).
  int64_t appendThreads = 128;
  /// Passes (rows per sequence x lanes / threads) a channel-axis append
  /// may unroll in its one block per sequence: every pass keeps its row
  /// slice live across the barrier (measured, KIVI int4 at head dim 128:
  /// 8 passes 168 registers, 16 passes spill).
  int64_t appendMaxChannelPasses = 8;
  /// Threads of a channel-axis append block (measured, 40 KV heads at head
  /// dim 128, T = 1: 1024 threads cap ptxas at 64 registers and spill; 256
  /// threads, 5 passes, do not).
  int64_t appendMaxChannelThreads = 256;
  /// Append: most channels one lane holds (its slice lives in registers).
  int64_t appendMaxLaneElems = 64;

  /// Registers one thread of a decode block may use at the target occupancy.
  int64_t decodeRegisterBudget() const;
  int64_t decodeThreads() const { return decodeWarps * warpSize; }
};

/// The description of `chip`, or nullopt for an unknown chip.
std::optional<TargetInfo> getTargetInfo(llvm::StringRef chip);

/// How a decode launch splits each (sequence, KV head) over KV chunks.
struct DecodeSplitPlan {
  int64_t splits = 1;      ///< grid.x of the decode kernel
  int64_t chunkTokens = 0; ///< keys per chunk, a multiple of the tile
};

/// FlashInfer-style plan: the smallest chunk (in tiles, at least
/// minChunkTokens keys) such that batch * kvHeads * splits fills at most
/// `smCount * decodeBlocksPerSM` blocks, never more than maxSplits.
/// The runtime's plan (kvopt/runtime/decode_plan.h) on `target`.
DecodeSplitPlan planDecodeSplits(const TargetInfo &target, int64_t batch,
                                 int64_t kvHeads, int64_t maxLength,
                                 int64_t tileTokens);

/// The plan limits of `target` (the decode kernel's launch constants
/// sm_count, blocks_per_sm, max_splits, min_chunk_tokens).
rt::DecodePlanLimits decodePlanLimits(const TargetInfo &target);

} // namespace kvopt::gpugen

#endif // KVOPT_CODEGEN_KVTOGPU_TARGETINFO_H
