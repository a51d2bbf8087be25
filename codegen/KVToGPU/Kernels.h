//===- Kernels.h - gpu-dialect KV kernels: layouts, schedules, builders -*- C++
//-*-===//
//
// The page layout as the GPU kernels address it, the decode schedule derived
// from a TargetInfo and the problem shape, and the builders that emit the
// decode-attention and merge kernels into a gpu.module.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_KVTOGPU_KERNELS_H
#define KVOPT_CODEGEN_KVTOGPU_KERNELS_H

#include "TargetInfo.h"

#include "kvopt/Dialect/KV/KVAttributes.h"
#include "kvopt/Dialect/KV/KVTypes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Diagnostics.h"

#include <functional>

namespace kvopt::gpugen {

using EmitErrorFn = llvm::function_ref<mlir::InFlightDiagnostic()>;

/// One stored component (K or V) of a page of docs/CacheLayout.md.
struct ComponentInfo {
  mlir::Type element; ///< full-precision element type
  int64_t elementBytes = 0;
  kv::QuantAttr quant; ///< null = full precision
  int64_t bits = 0;    ///< bits per stored element or code
  /// Token axis: channels per scale (0 resolved to the head dim). Channel
  /// axis: tokens per scale.
  int64_t group = 0;
  bool channelAxis = false;
  bool symmetric = true;
  int64_t scaleBytes = 0;
  /// Byte offsets of data, scales and zero points inside a page.
  int64_t dataOffset = 0, scaleOffset = 0, zeroOffset = 0;
  /// Full-precision window of a quantized component (docs/Numerics.md):
  /// tokens t < sinks and t >= length - recent are read exactly from the
  /// sequence's window slots, [sinks + recent][kv_heads][head_dim] elements
  /// (sinks, then a ring by t % recent) at windowOffset inside the
  /// sequence's window region (the CPU lowering's convention).
  int64_t sinks = 0, recent = 0, windowOffset = 0;

  bool quantized() const { return static_cast<bool>(quant); }
  bool hasZeros() const { return quantized() && !symmetric; }
  bool hasWindow() const { return quantized() && sinks + recent > 0; }
};

/// The byte layout of one page of a paged `!kv.cache`.
struct PagedLayout {
  int64_t kvHeads = 0, headDim = 0, pageSize = 0, pageBytes = 0;
  /// Bytes of one sequence's window region; the regions of the batch are
  /// the last batch * windowBytes bytes of the pool, sequence b's at
  /// pool_size - (batch - b) * windowBytes, after whole pages (so a region
  /// is aligned to gcd(pageBytes, windowBytes) in the 256-byte aligned pool).
  int64_t windowBytes = 0;
  ComponentInfo key, value;

  bool hasWindows() const { return key.hasWindow() || value.hasWindow(); }
};

/// The layout of `type`, or a diagnostic for what the GPU kernels do not
/// support (contiguous layout). Kernel families that do not read
/// full-precision windows reject them themselves.
mlir::FailureOr<PagedLayout> computePagedLayout(kv::CacheType type,
                                                EmitErrorFn emitError);

/// Everything the decode kernel is specialized on.
struct DecodeConfig {
  PagedLayout layout;
  int64_t groupSize = 1; ///< query heads per KV head
  int64_t queryLen = 1;  ///< Tq
  mlir::Type queryType;  ///< element type of the queries
  mlir::Type outputType; ///< element type of the output
  float scale = 1.0f;
  bool causal = false;
  int64_t window = 0, sinks = 0;

  /// Query rows one block serves: groupSize * queryLen.
  int64_t rows() const { return groupSize * queryLen; }
};

/// How the threads of a block cover one K or V row of `headDim` elements:
/// `lanes` adjacent lanes take `elems` consecutive elements each, loaded as
/// `loadBytes`-wide vectors; a block covers `rowsPerPass` rows at once.
struct RowMapping {
  int64_t elems = 0, lanes = 0, rowsPerPass = 0, loadBytes = 0;
  /// Piece size of a lane's full-precision window-slot load (0: no window).
  int64_t windowLoadBytes = 0;
};

/// The decode kernel's shape, from TargetInfo and DecodeConfig.
struct DecodeSchedule {
  int64_t threads = 0, warps = 0;
  int64_t tileTokens = 0; ///< keys scored per online-softmax step
  int64_t tilePages = 0;  ///< most pages a tile touches
  RowMapping key, value;
  int64_t sharedBytes = 0;
  int64_t maxSplits = 0;
  /// The split plan's other limits (rt::DecodePlanLimits), recorded on the
  /// kernel for host code.
  int64_t smCount = 0, blocksPerSM = 0, minChunkTokens = 0;
};

mlir::FailureOr<DecodeSchedule> chooseDecodeSchedule(const TargetInfo &target,
                                                     const DecodeConfig &config,
                                                     EmitErrorFn emitError);

/// Builds `name` into `module`:
///   (q: memref<?xQ>, pool: memref<?xi8>, block_table: memref<?xi32>,
///    seq_lens: memref<?xi32>, part_out: memref<?xf32>,
///    part_lse: memref<?xf32>, max_pages: i32, splits: i32,
///    chunk_tokens: i32)
/// grid (splits, kv_heads, batch). part_out is [B, Hq, Tq, splits, D],
/// part_lse [B, Hq, Tq, splits]; chunk_tokens must be a multiple of the
/// schedule's tile.
mlir::gpu::GPUFuncOp buildDecodeKernel(mlir::gpu::GPUModuleOp module,
                                       llvm::StringRef name,
                                       const DecodeConfig &config,
                                       const DecodeSchedule &schedule);

/// Builds the merge of split-KV states (kv.merge_states semantics):
///   (part_out: memref<?xf32>, part_lse: memref<?xf32>, out: memref<?xO>,
///    lse: memref<?xf32>, splits: i32)
/// grid (Hq * Tq, batch), `threads` threads.
mlir::gpu::GPUFuncOp buildMergeKernel(mlir::gpu::GPUModuleOp module,
                                      llvm::StringRef name, int64_t headDim,
                                      mlir::Type outputType, int64_t maxSplits,
                                      int64_t threads);

/// Threads of the merge kernel for `headDim` on `target`.
int64_t mergeThreads(const TargetInfo &target, int64_t headDim);

/// Whether the tensor-core prefill kernel covers `config` (full-precision
/// f16/bf16 cache, queries of that type, head dim a multiple of 16 up to
/// the target's bound); a diagnostic names what does not fit.
mlir::LogicalResult checkPrefillConfig(const TargetInfo &target,
                                       const DecodeConfig &config,
                                       EmitErrorFn emitError);
/// Static shared memory of the prefill kernel: K and V tiles, page entries.
int64_t prefillSharedBytes(const TargetInfo &target,
                           const DecodeConfig &config);
/// Builds `name` into `module`:
///   (q: memref<?xQ>, pool: memref<?xi8>, block_table: memref<?xi32>,
///    seq_lens: memref<?xi32>, out: memref<?xO>, lse: memref<?xf32>,
///    max_pages: i32)
/// grid (ceil(G * Tq / (16 * warps)), kv_heads, batch) with
/// TargetInfo::prefillWarpsFor(D) warps; out is [B, Hq, Tq, D], lse
/// [B, Hq, Tq]. FlashAttention-2 on mma.sync m16n8k16.
mlir::gpu::GPUFuncOp buildPrefillKernel(mlir::gpu::GPUModuleOp module,
                                        llvm::StringRef name,
                                        const TargetInfo &target,
                                        const DecodeConfig &config);

/// Everything the MLA decode kernel (kv.mla_attention over a paged
/// !kv.latent_cache) is specialized on. The latent row [c | k_rope] of width
/// latentDim + ropeDim is stored like a one-head kv.cache page component.
struct MLADecodeConfig {
  ComponentInfo row;
  int64_t latentDim = 0, ropeDim = 0, pageSize = 0, pageBytes = 0;
  /// One sequence's window region: [sinks + recent][W] elements.
  int64_t windowBytes = 0;
  int64_t heads = 1, queryLen = 1; ///< Hq, Tq
  mlir::Type queryType, outputType;
  float scale = 1.0f;
  bool causal = false;

  int64_t width() const { return latentDim + ropeDim; }
  int64_t rows() const { return heads * queryLen; }
};

/// The layout fields of an MLADecodeConfig for `type`, or a diagnostic
/// (contiguous layout, windows, channel-axis scales).
mlir::FailureOr<MLADecodeConfig> computeLatentLayout(kv::LatentCacheType type,
                                                     EmitErrorFn emitError);

/// The MLA decode kernel's shape: `key` maps the score phase (lanes of a
/// warp split a row of W), `value` the accumulation (threads split the
/// latent dim, `lanes` of them own `elems` channels each).
struct MLADecodeSchedule {
  int64_t threads = 0, warps = 0;
  int64_t tileTokens = 0, tilePages = 0, maxSplits = 0;
  /// The split plan's other limits (rt::DecodePlanLimits), for host code.
  int64_t smCount = 0, blocksPerSM = 0, minChunkTokens = 0;
  int64_t rowsPerBlock = 0; ///< query rows (heads x Tq) per block
  int64_t sharedBytes = 0;
  RowMapping key, value;
  /// grid.y: blocks of rowsPerBlock rows.
  int64_t rowBlocks(int64_t rows) const {
    return (rows + rowsPerBlock - 1) / rowsPerBlock;
  }
};

mlir::FailureOr<MLADecodeSchedule>
chooseMLADecodeSchedule(const TargetInfo &target, const MLADecodeConfig &config,
                        EmitErrorFn emitError);

/// Builds `name` into `module`:
///   (q_latent: memref<?xQ>, q_rope: memref<?xQ>, pool: memref<?xi8>,
///    block_table: memref<?xi32>, seq_lens: memref<?xi32>,
///    part_out: memref<?xf32>, part_lse: memref<?xf32>, max_pages: i32,
///    splits: i32, chunk_tokens: i32)
/// grid (splits, rowBlocks(Hq * Tq), batch). part_out is
/// [B, Hq, Tq, splits, latent], part_lse [B, Hq, Tq, splits], as the merge
/// kernel reads them.
mlir::gpu::GPUFuncOp buildMLADecodeKernel(mlir::gpu::GPUModuleOp module,
                                          llvm::StringRef name,
                                          const MLADecodeConfig &config,
                                          const MLADecodeSchedule &schedule);

/// Everything the append kernel (kv.append: RoPE + quantize + scatter) is
/// specialized on.
struct AppendConfig {
  PagedLayout layout;
  int64_t tokens = 1;              ///< T new tokens per sequence
  mlir::Type keyInput, valueInput; ///< element types of the new rows
  double ropeTheta = 0;            ///< > 0: rotate-half RoPE on the keys
};

/// How threads cover the rows of one component in the append kernel:
/// `lanes` consecutive threads take `elems` consecutive channels each;
/// `groupLanes` of them share one token-axis scale group (1 when every lane
/// holds whole groups). `storeBytes` is the widest store the layout's
/// alignment allows for a lane's data slice.
struct AppendMapping {
  int64_t lanes = 0, elems = 0, groupLanes = 1, storeBytes = 1;
  /// Piece sizes of a lane's window-slot row slice and (channel axis) of
  /// its slice of per-channel scales / zero points.
  int64_t windowBytes = 1, channelScaleBytes = 1;
};

/// The append kernel's shape.
struct AppendSchedule {
  int64_t threads = 0;
  int64_t rowsPerBlock = 0; ///< (token, head) rows one block writes
  AppendMapping key, value;
  /// grid.x for `tokens` tokens of `kvHeads` heads.
  int64_t blocks(int64_t tokens, int64_t kvHeads) const {
    return (tokens * kvHeads + rowsPerBlock - 1) / rowsPerBlock;
  }
};

mlir::FailureOr<AppendSchedule> chooseAppendSchedule(const TargetInfo &target,
                                                     const AppendConfig &config,
                                                     EmitErrorFn emitError);

/// Builds `name` into `module`:
///   (pool: memref<?xi8>, positions: memref<?xi32>, keys: memref<?xK>,
///    values: memref<?xV>, block_table: memref<?xi32>, max_pages: i32)
/// grid (blocks(T, kv_heads), batch). keys/values are [B, Hkv, T, D]; token
/// t of sequence b goes to position positions[b] + t through the block
/// table ([B, max_pages]).
mlir::gpu::GPUFuncOp buildAppendKernel(mlir::gpu::GPUModuleOp module,
                                       llvm::StringRef name,
                                       const AppendConfig &config,
                                       const AppendSchedule &schedule);

} // namespace kvopt::gpugen

#endif // KVOPT_CODEGEN_KVTOGPU_KERNELS_H
