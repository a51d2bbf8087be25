//===- KernelBuilder.h - shared pieces of the CPU kernels -------*- C++ -*-===//
//
// Cache byte layout (docs/CacheLayout.md), row loads with fused
// dequantization, the exact quantization recipe of docs/Numerics.md, RoPE,
// and the kernel-outlining helper shared by every op family.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_KVTOCPU_KERNELBUILDER_H
#define KVOPT_CODEGEN_KVTOCPU_KERNELBUILDER_H

#include "kvopt/Dialect/KV/KVOps.h"
#include "kvopt/Dialect/KV/KVTypes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Transforms/DialectConversion.h"

#include <functional>
#include <string>

namespace kvopt {
namespace cpu {

/// Options every kernel generator reads (kv-cpu-to-loops' options).
struct KernelOptions {
  int64_t splits = 0;
  int64_t splitTokens = 128;
  int64_t blockTokens = 16;
  /// f32 vector width the attention kernels are register-tiled for.
  int64_t vectorBits = 512;
  /// Fixed-point dot products for token-axis integer codes.
  bool intDots = true;
};

/// The host CPU's widest f32 vector in bits: 512 with AVX-512F, 256 with
/// AVX2 (x86) and 128 otherwise.
int64_t hostVectorBits();

/// One stored component of a cache: K, V, or the MLA latent row.
struct ComponentLayout {
  bool present = false;
  mlir::Type element;       ///< full-precision element type
  int64_t elementBytes = 0; ///< bytes of `element`
  kv::QuantAttr quant;      ///< null = full precision
  int64_t heads = 0;        ///< KV heads (1 for a latent row)
  int64_t dim = 0;          ///< elements per head
  /// Byte offsets of data, scales and zero points inside a page.
  int64_t dataOffset = 0, scaleOffset = 0, zeroOffset = 0;
  /// Byte offset of this component's window inside a sequence's slot.
  int64_t windowOffset = 0;

  int64_t bits() const { return quant ? quant.getBits() : elementBytes * 8; }
  /// Channels (token axis) or tokens (channel axis) sharing one scale.
  int64_t group() const;
  bool channelAxis() const {
    return quant && quant.getAxis() == kv::ScaleAxis::Channel;
  }
  int64_t sinks() const { return quant ? quant.getSinks() : 0; }
  int64_t recent() const { return quant ? quant.getRecent() : 0; }
  bool hasWindow() const { return sinks() + recent() > 0; }
  mlir::Type scaleType() const { return quant.getScale(); }
  int64_t scaleBytes() const { return quant.getScaleBytes(); }
};

/// The byte layout of a cache as the CPU kernels address it.
struct CacheLayout {
  bool paged = false;
  bool latent = false;
  /// Tokens per page; a contiguous cache is one page of `capacity` tokens
  /// per sequence.
  int64_t pageSize = 0;
  int64_t pageBytes = 0;
  /// Bytes of one sequence's full-precision windows (0 without windows).
  int64_t windowBytes = 0;
  ComponentLayout key, value;
};

/// The layout of `type`; for contiguous caches a per-channel token group
/// that does not divide the capacity gets a rounded-up scale region.
CacheLayout computeCacheLayout(kv::KVCacheTypeInterface type);

/// Small arithmetic vocabulary over an ImplicitLocOpBuilder.
struct KB {
  mlir::ImplicitLocOpBuilder &b;
  explicit KB(mlir::ImplicitLocOpBuilder &b) : b(b) {}

  mlir::Value idx(int64_t v);
  mlir::Value i32(int64_t v);
  mlir::Value f32(double v);
  mlir::Value add(mlir::Value x, mlir::Value y);
  mlir::Value sub(mlir::Value x, mlir::Value y);
  mlir::Value mul(mlir::Value x, mlir::Value y);
  mlir::Value mul(mlir::Value x, int64_t y) { return mul(x, idx(y)); }
  mlir::Value add(mlir::Value x, int64_t y) { return add(x, idx(y)); }
  mlir::Value div(mlir::Value x, int64_t y);
  mlir::Value rem(mlir::Value x, int64_t y);
  mlir::Value ceilDiv(mlir::Value x, mlir::Value y);
  mlir::Value min(mlir::Value x, mlir::Value y);
  mlir::Value max(mlir::Value x, mlir::Value y);
  mlir::Value lt(mlir::Value x, mlir::Value y);
  mlir::Value ge(mlir::Value x, mlir::Value y);
  mlir::Value select(mlir::Value c, mlir::Value x, mlir::Value y);
  /// An i32 memref element as an index.
  mlir::Value loadIndex(mlir::Value memref, mlir::ValueRange indices);
  /// A vector<n x f32> (or f32 when n == 0) splat of `v`.
  mlir::Value splat(mlir::Value scalar, int64_t n);
  mlir::VectorType vec(int64_t n, mlir::Type t) {
    return mlir::VectorType::get({n}, t);
  }

  /// `type` vector (or scalar when `type` is not a vector) read from the raw
  /// bytes of `bytes` (memref<?xi8>) at byte `offset`.
  mlir::Value loadBytes(mlir::Value bytes, mlir::Value offset, mlir::Type type);
  /// Stores `value` (vector or scalar) as raw bytes at byte `offset`.
  void storeBytes(mlir::Value value, mlir::Value bytes, mlir::Value offset);
  /// Extends a float vector/scalar to f32 (no-op for f32).
  mlir::Value toF32(mlir::Value v);
  /// Rounds an f32 vector/scalar to `type` (RNE), keeping it in `type`.
  mlir::Value fromF32(mlir::Value v, mlir::Type type);
  /// Rounds to `type` and back to f32.
  mlir::Value roundTrip(mlir::Value v, mlir::Type type) {
    return toF32(fromF32(v, type));
  }
  /// Horizontal sum / max of an f32 vector.
  mlir::Value sum(mlir::Value v);
  mlir::Value maxOf(mlir::Value v);
  mlir::Value minOf(mlir::Value v);
  /// scf.for from lb to ub (step 1) without results.
  void forLoop(mlir::Value lb, mlir::Value ub,
               const std::function<void(mlir::Value)> &body);
  void forLoop(int64_t lb, int64_t ub,
               const std::function<void(mlir::Value)> &body) {
    forLoop(idx(lb), idx(ub), body);
  }
  /// scf.if without results.
  void ifThen(mlir::Value cond, const std::function<void()> &body);
  /// scf.if yielding one value of `type`.
  mlir::Value ifElse(mlir::Value cond, mlir::Type type,
                     const std::function<mlir::Value()> &thenBody,
                     const std::function<mlir::Value()> &elseBody);
};

/// Addresses token rows of one cache inside a kernel.
struct CacheAccess {
  CacheLayout layout;
  mlir::Value bytes;      ///< memref<?xi8>
  mlir::Value blockTable; ///< memref<B x P x i32>, or null if contiguous
  mlir::Value batch;      ///< B (index), for the window region

  /// Byte offset of the page holding `token` of sequence `b`, and the
  /// token's slot in it.
  std::pair<mlir::Value, mlir::Value> page(KB &k, mlir::Value b,
                                           mlir::Value token) const;
  /// Byte offset of sequence `b`'s window slot.
  mlir::Value windowBase(KB &k, mlir::Value b) const;
  /// Byte offset of (token, head)'s row in the window of `c`.
  mlir::Value windowRow(KB &k, const ComponentLayout &c, mlir::Value winBase,
                        mlir::Value token, mlir::Value head) const;

  /// Row (token, head) of component `c` as vector<dim x f32>, dequantized,
  /// or taken from the window when the token is a sink or one of the
  /// `recent` last of `length` tokens. `pageBase`/`slot` come from page().
  mlir::Value loadRow(KB &k, const ComponentLayout &c, mlir::Value pageBase,
                      mlir::Value slot, mlir::Value winBase, mlir::Value token,
                      mlir::Value head, mlir::Value length) const;
  /// Prefetches the stored bytes of every head of `token` (data, and
  /// token-axis scales and zero points) of component `c`: pages are small
  /// and scattered, so the hardware prefetcher alone restarts at each one.
  void prefetchToken(KB &k, const ComponentLayout &c, mlir::Value pageBase,
                     mlir::Value slot) const;
  /// Locality hint of every KV prefetch: 2 (prefetcht1, into L2, not L1).
  /// A block ahead of 16 tokens of every head is 16-64 KiB (f16, head dim
  /// 128, 8 KV heads), as large as L1: prefetched into L1 it evicts the
  /// block being read. Measured on Zen 4 at 32k (kvopt-bench): f16 11.2 ->
  /// 16.5 GB/s, int8 7.1 -> 11.8 GB/s against hint 3.
  static constexpr int kPrefetchLocality = 2;
  /// Prefetches the stored bytes of row (token, head) of `c`: data, and
  /// token-axis scales and zero points.
  void prefetchRow(KB &k, const ComponentLayout &c, mlir::Value pageBase,
                   mlir::Value slot, mlir::Value head) const;
  /// The stored (non-window) row, dequantized.
  mlir::Value loadStoredRow(KB &k, const ComponentLayout &c,
                            mlir::Value pageBase, mlir::Value slot,
                            mlir::Value head) const;

  /// Lanes [lane0, lane0 + width) of row (token, head) of `c` as
  /// vector<width x f32>, for kernels that consume a row in register-sized
  /// pieces (lane0 and width multiples of 16). Dequantizes with one fused
  /// multiply-add per element (`code * s + z`, one rounding), so it is not
  /// bit-identical to loadRow's separate multiply and add.
  mlir::Value loadRowSlice(KB &k, const ComponentLayout &c,
                           mlir::Value pageBase, mlir::Value slot,
                           mlir::Value winBase, mlir::Value token,
                           mlir::Value head, mlir::Value length, int64_t lane0,
                           int64_t width) const;
  /// The stored (non-window) lanes [lane0, lane0 + width), dequantized.
  mlir::Value loadStoredSlice(KB &k, const ComponentLayout &c,
                              mlir::Value pageBase, mlir::Value slot,
                              mlir::Value head, int64_t lane0,
                              int64_t width) const;
};

/// Decodes `count` codes of `quant` starting at byte `offset` of `bytes` into
/// the numbers they stand for before scaling (vector<count x f32>).
mlir::Value decodeCodes(KB &k, kv::QuantAttr quant, mlir::Value bytes,
                        mlir::Value offset, int64_t count);

/// Scale and zero point of a group (f32 scalars or vectors), computed from
/// its lo/hi exactly as docs/Numerics.md section 3 says.
struct QuantParams {
  mlir::Value scale, zero;
};
QuantParams computeQuantParams(KB &k, kv::QuantAttr quant, mlir::Value lo,
                               mlir::Value hi);
/// Codes (vector<n x i8>, low `bits` bits significant) of f32 vector `x`
/// under `params` (broadcast or elementwise).
mlir::Value encodeCodes(KB &k, kv::QuantAttr quant, mlir::Value x,
                        const QuantParams &params);
/// Packs vector<n x i8> codes into n * bits / 8 bytes (CacheLayout.md).
mlir::Value packCodes(KB &k, kv::QuantAttr quant, mlir::Value codes);
/// Expands vector<n x f32> to vector<n * g x f32> (each lane g times).
mlir::Value expandGroups(KB &k, mlir::Value v, int64_t g);

/// Rotate-half RoPE of vector<d x f32> `x` at f32 position `pos`.
mlir::Value applyRope(KB &k, mlir::Value x, mlir::Value pos, double theta);

/// Returns the private kernel `name` in `module`, building it with
/// `build(builder, arguments)` (the builder positioned in its entry block,
/// a func.return appended afterwards) the first time.
mlir::func::FuncOp getOrBuildKernel(
    mlir::ModuleOp module, llvm::StringRef name, mlir::TypeRange argTypes,
    const std::function<void(mlir::ImplicitLocOpBuilder &, mlir::ValueRange)>
        &build);

/// Builds (once per module) the kernel of `family` whose configuration is
/// `config` plus the types of `args`, and calls it with `args`.
void callKernel(mlir::OpBuilder &b, mlir::Location loc, mlir::ModuleOp module,
                llvm::StringRef family, llvm::StringRef config,
                mlir::ValueRange args,
                const std::function<void(mlir::ImplicitLocOpBuilder &,
                                         mlir::ValueRange)> &build);
/// Replaces `op` by bufferization.to_tensor of `buffers`, one per result.
void replaceWithBuffers(mlir::ConversionPatternRewriter &rewriter,
                        mlir::Operation *op, mlir::ValueRange buffers);
/// scf.parallel over [0, ubs) whose body runs inside a memref.alloca_scope,
/// so that per-task stack buffers are released after every iteration.
void parallelLoop(mlir::ImplicitLocOpBuilder &b, mlir::ValueRange ubs,
                  const std::function<void(mlir::ValueRange)> &body);

/// A memref type of the same shape and element type as tensor `t`.
mlir::MemRefType bufferTypeOf(mlir::Type tensorType);
/// bufferization.to_buffer of a tensor operand (read-only by default).
mlir::Value toBuffer(mlir::OpBuilder &b, mlir::Location loc, mlir::Value t,
                     bool readOnly = true);
/// memref.alloc of a buffer shaped like `tensorType` (dynamic dims from
/// `dynSizes`).
mlir::Value allocLike(mlir::OpBuilder &b, mlir::Location loc,
                      mlir::Type tensorType, mlir::ValueRange dynSizes = {});
/// bufferization.to_tensor restrict writable of a fresh buffer.
mlir::Value toTensor(mlir::OpBuilder &b, mlir::Location loc,
                     mlir::Type tensorType, mlir::Value buffer);
/// A unique suffix for a kernel name from a configuration string.
std::string kernelName(llvm::StringRef family, llvm::StringRef config);

//===----------------------------------------------------------------------===//
// Attention kernels (kv.attention and kv.mla_attention share one generator)
//===----------------------------------------------------------------------===//

/// Everything static about one attention kernel.
struct AttentionSpec {
  CacheLayout layout;
  int64_t queryHeads = 0, queryRows = 0, kvHeads = 0;
  /// Width of q.k (head dim, or latent + rope) and of the values.
  int64_t keyDim = 0, valueDim = 0;
  /// MLA: queries come as [q_latent (latentDim), q_rope] and the values are
  /// the first valueDim elements of the latent row.
  bool mla = false;
  int64_t latentDim = 0;
  mlir::Type queryElement, outputElement;
  bool lse = false, causal = false;
  int64_t window = 0, sinks = 0;
  double scale = 1.0;
  int64_t splits = 1, splitTokens = 128, blockTokens = 16;
  /// f32 lanes per vector register and registers available for
  /// accumulators on the blocked path (KernelOptions::vectorBits).
  int64_t vectorBits = 512;
  /// Fixed-point (16-bit) dot products for token-axis integer codes.
  bool intDots = true;
  int64_t lanes() const { return vectorBits / 32; }
  /// Vector registers the register tiles may fill with accumulators: half
  /// the register file (32 zmm with AVX-512, 16 otherwise), the rest for
  /// operands.
  int64_t accumulatorRegisters() const { return vectorBits >= 512 ? 16 : 8; }
  std::string str() const;
};

/// Builds (or finds) the kernel of `spec`. Its arguments: the query
/// buffer(s), the cache bytes, seq_lens, the block table if paged, the
/// output, the lse if requested, and, with splits > 1, the workspaces
/// [B][S][Hq * Tq][Dv] and [B][S][Hq * Tq] (f32).
mlir::func::FuncOp buildAttentionKernel(mlir::ModuleOp module,
                                        const AttentionSpec &spec,
                                        mlir::TypeRange argTypes);
/// Number of splits the options give a cache of `capacity` tokens.
int64_t chooseSplits(const KernelOptions &options, int64_t capacity);
/// Calls the kernel of `spec` for an op whose query buffers, cache, lengths
/// and optional block table are given; returns the (output, lse) tensors.
llvm::SmallVector<mlir::Value>
emitAttentionCall(mlir::OpBuilder &b, mlir::Location loc, mlir::ModuleOp module,
                  const AttentionSpec &spec, mlir::ValueRange queryTensors,
                  mlir::Value cacheBytes, mlir::Value seqLens,
                  mlir::Value blockTable, mlir::TypeRange resultTypes);

/// Merges S partial states: `outputs` [S][N][D] f32-convertible, `lses`
/// [S][N], into `out` [N][D] and `lse` [N] (null to skip), inside the
/// current function (the kv.merge_states kernel body).
void emitMergeLoops(mlir::ImplicitLocOpBuilder &b, mlir::Value outputs,
                    mlir::Value lses, mlir::Value out, mlir::Value lse);

//===----------------------------------------------------------------------===//
// Pattern populators, one per op family.
//===----------------------------------------------------------------------===//

void populateAttentionToCPUPatterns(mlir::TypeConverter &converter,
                                    mlir::RewritePatternSet &patterns,
                                    const KernelOptions &options);
void populateAppendToCPUPatterns(mlir::TypeConverter &converter,
                                 mlir::RewritePatternSet &patterns);
void populateQuantizeToCPUPatterns(mlir::TypeConverter &converter,
                                   mlir::RewritePatternSet &patterns);
void populateViewToCPUPatterns(mlir::TypeConverter &converter,
                               mlir::RewritePatternSet &patterns);
void populateMLAToCPUPatterns(mlir::TypeConverter &converter,
                              mlir::RewritePatternSet &patterns,
                              const KernelOptions &options);

} // namespace cpu
} // namespace kvopt

#endif // KVOPT_CODEGEN_KVTOCPU_KERNELBUILDER_H
