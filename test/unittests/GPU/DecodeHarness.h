//===- DecodeHarness.h - run generated decode kernels on the emulator -*- C++
//-*-===//
//
// Builds a kv.attention module for a decode case, generates its kernels with
// kv-gpu-kernels, JIT-compiles them for the SIMT emulator, fills pages with
// the reference's writePagedCache and compares the launch with the
// double-precision reference. Shared by kvopt-gpu-tests and
// kvopt-gpu-traffic.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TEST_GPU_DECODEHARNESS_H
#define KVOPT_TEST_GPU_DECODEHARNESS_H

#include "kvopt/Codegen/SIMT/EmulatorJIT.h"
#include "kvopt/Reference/PagedCache.h"
#include "kvopt/runtime/launch.h"
#include "kvopt/runtime/memory.h"
#include "kvopt/simt/Launch.h"
#include "kvopt/simt/Params.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvopt::gpu_test {

/// One quantization encoding, printable both as #kv.quant and for the
/// reference.
struct Encoding {
  reference::QuantKind kind = reference::QuantKind::Int8;
  reference::QuantAxis axis = reference::QuantAxis::Token;
  int64_t group = 0;
  bool symmetric = true;
  reference::ScalarType scale = reference::ScalarType::F32;
  /// Full-precision windows (docs/Numerics.md): the last `recent` and the
  /// first `sinks` tokens are read exactly from the window region at the
  /// end of the pool.
  int64_t recent = 0, sinks = 0;
};

/// "f16", "bf16" or "f32".
const char *typeName(reference::ScalarType t);
/// The #kv.quant attribute text of `e`.
std::string quantText(const Encoding &e);
/// `e` as the reference's encoding, windows included.
reference::QuantEncoding toReference(const Encoding &e);

/// Seed 1 plus KVOPT_TEST_SEED when set.
std::vector<uint64_t> testSeeds();

/// Parses `moduleText`, runs kv-gpu-kernels{chip, kernels-only}, calls
/// `visit` on every generated kernel (for its launch contract) and
/// JIT-compiles the gpu.module for the emulator; null with the diagnostics in
/// `error` on failure. `gpuText` (optional) receives the kernel module.
std::unique_ptr<simt::EmulatedModule>
compileKernels(const std::string &moduleText, const std::string &chip,
               const std::function<void(mlir::gpu::GPUFuncOp)> &visit,
               std::string &error, std::string *gpuText = nullptr);

/// The kernel `name` of `module`, or null with the reason in `error`.
const kvopt_simt_kernel *findKernel(simt::EmulatedModule &module,
                                    const std::string &name,
                                    std::string &error);

/// Largest |out - expected| / tolOut (out as little-endian `type` bytes) and
/// |lse - expected| / tolLse (-inf must match exactly); <= 1 passes, NaN
/// counts as infinite; `where` names the worst element.
double worstOutputError(const std::vector<uint8_t> &out,
                        reference::ScalarType type,
                        const std::vector<double> &expectedOut, double tolOut,
                        const std::vector<float> &lse,
                        const std::vector<double> &expectedLse, double tolLse,
                        std::string &where);

/// Bytes of one sequence's full-precision window region (K then V).
int64_t windowBytes(reference::ScalarType element, int64_t kvHeads,
                    int64_t headDim, const std::optional<Encoding> &key,
                    const std::optional<Encoding> &value);
/// Appends the batch's window regions (docs/GPU.md) to `pool`: per
/// sequence [K window][V window], each [sinks + recent][Hkv][D] elements of
/// `element`, sinks then a ring by t % recent, from k and v ([B, Hkv, T, D])
/// for tokens < lengths[b]; unused slots are zero.
void appendWindowRegion(std::vector<uint8_t> &pool,
                        reference::ScalarType element, int64_t Hkv, int64_t D,
                        const std::optional<Encoding> &key,
                        const std::optional<Encoding> &value,
                        const reference::Tensor &k, const reference::Tensor &v,
                        const std::vector<int64_t> &lengths);

struct DecodeCase {
  int64_t kvHeads = 1, group = 1, headDim = 64, pageSize = 16, queryLen = 1;
  std::vector<int64_t> lengths; ///< batch = lengths.size()
  reference::ScalarType element = reference::ScalarType::F16;
  reference::ScalarType query = reference::ScalarType::F32;
  reference::ScalarType output = reference::ScalarType::F32;
  std::optional<Encoding> key, value;
  bool causal = false;
  int64_t window = 0, sinks = 0;
  uint64_t seed = 1;
  /// > 0: the module also appends the last `appendTokens` tokens of every
  /// sequence with kv.append before attending (a serving step); the cache
  /// holds lengths[b] - appendTokens tokens before it.
  int64_t appendTokens = 0;

  std::string describe() const;
};

/// The module text: one func with the case's kv.attention.
std::string decodeModuleText(const DecodeCase &c);

struct CompiledDecode {
  std::unique_ptr<simt::EmulatedModule> module;
  const kvopt_simt_kernel *decode = nullptr, *merge = nullptr;
  int64_t threads = 0, mergeThreads = 0, tileTokens = 0, maxSplits = 0;
  std::string gpuText; ///< the generated gpu.module
};

/// Generates (kv-gpu-kernels{chip}) and JIT-compiles the case's kernels;
/// on failure returns the diagnostics in `error`.
std::optional<CompiledDecode>
compileDecode(const DecodeCase &c, const std::string &chip, std::string &error);

/// Inputs in page bytes and the reference result.
struct DecodeData {
  std::vector<float> q;       ///< [B, Hq, Tq, D] as f32 (element-rounded)
  std::vector<uint16_t> q16;  ///< same in f16/bf16 bits when query != f32
  std::vector<uint8_t> pool;  ///< numPages * pageBytes, shuffled pages
  std::vector<int32_t> table; ///< [B, maxPages]
  std::vector<int32_t> lens;
  int64_t maxPages = 0;
  reference::AttentionResult expected;
  reference::AttentionTolerance tol;
  /// Minimal global bytes: K/V data and scales of tokens < L (channel
  /// groups once), queries, block-table entries in use, seq_lens.
  int64_t minimalBytes = 0;
  /// The element-rounded K and V [B, Hkv, max(L), D] the pages were
  /// written from, and the page format.
  reference::Tensor k, v;
  reference::PagedCacheFormat format;
};
DecodeData makeDecodeData(const DecodeCase &c);

/// The tensor-core prefill kernel's bound on |out - expected| and |lse -
/// expected|: d.tol plus the rounding of P (and of dequantized K and V) to
/// the multiplicand type (derivation in the body).
void prefillTolerance(const DecodeCase &c, const DecodeData &d, double &tolOut,
                      double &tolLse);

struct DecodeRun {
  std::vector<float> out, lse;
  simt::LaunchResult decode, merge;
  int64_t splits = 0, chunkTokens = 0;
};

/// Runs decode + merge with `splits` chunks of `chunkTokens` keys (0: the
/// planner's choice for `chip`).
DecodeRun runDecode(const DecodeCase &c, const CompiledDecode &k,
                    const DecodeData &d, simt::Schedule schedule,
                    int64_t chunkTokens, const std::string &chip);

/// The CUDA device 0 through the runtime (memory and launch backends),
/// opened once per process; null, with the loader's reason in `why`, when
/// there is no driver or device.
struct Device {
  std::unique_ptr<rt::MemoryBackend> memory;
  std::unique_ptr<rt::LaunchBackend> launch;
};
Device *cudaDevice(std::string *why = nullptr);
/// The PTX for `chip` of a gpu.module's text (buildKernelsToPTXPipeline);
/// `toolkit` empty: $CUDA_HOME or /usr/local/cuda.
std::optional<std::string> kernelsToPTX(const std::string &gpuText,
                                        const std::string &chip,
                                        std::string &error,
                                        const std::string &toolkit = "");
/// A gpu.module's kernels loaded on the device, and device buffers for one
/// launch sequence; everything is released on destruction.
class DeviceKernels {
public:
  /// The PTX of `gpuText` for `chip` on `device`; null with the reason.
  static std::unique_ptr<DeviceKernels> load(Device &device,
                                             const std::string &gpuText,
                                             const std::string &chip,
                                             std::string &error);
  ~DeviceKernels();
  /// A device buffer of `bytes` (at least 256, 256-byte aligned) holding
  /// `data` when given; as a pointer for simt::ParamPack. Null on failure
  /// (error()).
  uint8_t *upload(const void *data, size_t bytes);
  /// Copies `bytes` of device buffer `src` to `dst`.
  bool download(void *dst, const uint8_t *src, size_t bytes);
  /// Launches kernel `name` and waits for it.
  bool launch(const std::string &name, rt::Dim3 grid, rt::Dim3 block,
              void **params);
  const std::string &error() const { return error_; }

private:
  DeviceKernels(Device &d) : device_(d) {}
  Device &device_;
  rt::ModuleHandle module_ = nullptr;
  std::vector<rt::DeviceAddress> owned_;
  std::string error_;
};
/// runDecode on the real GPU: `k`'s kernels loaded on the device in `dk`
/// (DeviceKernels::load of k.gpuText), every buffer in device memory.
/// nullopt with the reason in `error` when a runtime call fails.
std::optional<DecodeRun>
runDecodeOnDevice(DeviceKernels &dk, const DecodeCase &c,
                  const CompiledDecode &k, const DecodeData &d,
                  int64_t chunkTokens, const std::string &chip,
                  std::string &error);
/// Output elements as f32 from their little-endian bytes in `type`.
std::vector<float> outputValues(const std::vector<uint8_t> &bytes,
                                reference::ScalarType type);
/// Largest |out - expected| / tol and |lse - expected| / tol (<= 1 passes);
/// `where` names the worst element.
double worstError(const DecodeCase &c, const DecodeData &d, const DecodeRun &r,
                  std::string &where);

} // namespace kvopt::gpu_test

#endif // KVOPT_TEST_GPU_DECODEHARNESS_H
