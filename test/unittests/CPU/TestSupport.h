//===- TestSupport.h - helpers of the CPU kernel tests ----------*- C++ -*-===//
//
// Seeds, random data, MLIR type spellings, memref descriptors, cache byte
// pools (through the reference's own page writer) and a per-binary cache of
// compiled modules, shared by the CPU numerics tests and the sweep.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TEST_UNITTESTS_CPU_TESTSUPPORT_H
#define KVOPT_TEST_UNITTESTS_CPU_TESTSUPPORT_H

#include "kvopt/Codegen/KVToCPU/CPUJit.h"
#include "kvopt/Reference/PagedCache.h"
#include "kvopt/Reference/Reference.h"

#include "gtest/gtest.h"

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace kvopt {
namespace cputest {

using reference::BlockTable;
using reference::QuantAxis;
using reference::QuantEncoding;
using reference::QuantKind;
using reference::ScalarType;
using reference::Tensor;

/// Fixed seeds plus KVOPT_TEST_SEED when set.
std::vector<uint64_t> testSeeds();
/// Whether the exhaustive grid runs (KVOPT_CPU_SWEEP=1).
bool sweepEnabled();

/// Uniform values in [lo, hi) rounded to `element`.
Tensor randomTensor(std::mt19937_64 &rng, std::vector<int64_t> shape,
                    ScalarType element, double lo = -1.0, double hi = 1.0);
int64_t randomInt(std::mt19937_64 &rng, int64_t lo, int64_t hi);

/// MLIR spellings: "f16", "#kv.quant<...>", "!kv.cache<...>".
std::string typeName(ScalarType t);
std::string quantAttr(const QuantEncoding &q);
std::string shapeType(const std::vector<int64_t> &shape, const std::string &e);

/// Little-endian element bytes of a tensor in `type`.
std::vector<uint8_t> encode(const Tensor &t, ScalarType type);
/// The inverse of encode.
Tensor decode(const std::vector<uint8_t> &bytes, std::vector<int64_t> shape,
              ScalarType type);

/// A ranked memref descriptor over caller-owned bytes (StridedMemRefType's
/// layout: allocated, aligned, offset, sizes[N], strides[N]).
struct Desc {
  void *allocated = nullptr, *aligned = nullptr;
  int64_t offset = 0;
  int64_t dims[16] = {};
  int64_t rank = 0; ///< not part of the descriptor: for the expanded ABI
};
/// A descriptor for row-major `shape` over `data`.
Desc makeDesc(void *data, const std::vector<int64_t> &shape);

/// A key of `source` compiled with `options`, for per-binary caches.
std::string compileKey(const std::string &source,
                       const CPUCompileOptions &options);

/// The runtime's expanded kernel ABI of `descs` (allocated and aligned
/// pointer, offset, sizes, strides each): `values` holds the values and the
/// returned params point at them, params[i] at argument i.
std::vector<void *> expandedParams(const std::vector<Desc> &descs,
                                   std::vector<uint64_t> &values);

/// Returns the compiled module of `source`, compiling it once per binary.
CPUModule &compiled(const std::string &source,
                    const CPUCompileOptions &options = {});
/// Calls `name` with one descriptor per argument.
void call(CPUModule &module, const std::string &name, std::vector<Desc> &descs);

/// How a case's kernels run: JIT-compiled by the ExecutionEngine, or written
/// as a runtime kernel bundle (writeCPUBundle) and launched through
/// rt::KernelBundle on the runtime's "cpu" backend with the expanded ABI.
enum class Executor { Jit, Bundle };
/// Compiles `source` for `executor` (once per binary) and calls `name`.
void run(Executor executor, const std::string &source,
         const CPUCompileOptions &options, const std::string &name,
         std::vector<Desc> &descs);
/// The bundle path of run(); fails the test if the runtime is not built.
void callBundle(const std::string &source, const CPUCompileOptions &options,
                const std::string &name, std::vector<Desc> &descs);

/// A K/V cache as a byte pool in the kernels' layout: pages written by the
/// reference's writePagedCache (contiguous = one page of `capacity` tokens
/// per sequence), then the window region [B][windowBytes].
struct CacheSpec {
  int64_t kvHeads = 1, headDim = 64, capacity = 64;
  ScalarType element = ScalarType::F16;
  std::optional<QuantEncoding> key, value;
  int64_t pageSize = 0; ///< 0 = contiguous

  std::string mlirType() const;
  reference::PagedCacheFormat format() const;
  int64_t pagesPerSequence() const;
  /// Bytes of one sequence's windows.
  int64_t windowBytes() const;
};

struct CachePool {
  std::vector<uint8_t> bytes;
  BlockTable table;
  std::vector<int32_t> tableData; ///< table.pages, kept for descriptors
  int64_t pageBytes = 0;
};

/// A block table of `batch` rows with shuffled pages (and a few unused
/// ones), or the identity for a contiguous cache.
BlockTable makeTable(std::mt19937_64 &rng, const CacheSpec &spec,
                     int64_t batch);
/// Writes tokens [0, lengths[b]) of k, v ([B, Hkv, T, D]) in the kernels'
/// layout, windows included.
CachePool writeCache(const CacheSpec &spec, const BlockTable &table,
                     const Tensor &k, const Tensor &v,
                     const std::vector<int64_t> &lengths);
/// What the kernels must see: the reference's dequantized view (windows
/// exact) or the full-precision values, [B, Hkv, max(lengths), D].
Tensor effectiveCache(const Tensor &x, const std::optional<QuantEncoding> &q,
                      const std::vector<int64_t> &lengths);

/// An encoding without windows.
QuantEncoding makeEncoding(QuantKind kind, QuantAxis axis, int64_t group,
                           bool symmetric, ScalarType scale);

/// Encodings used across tests, by short name (int8, fp8, int4, int2 with
/// axis/group/symmetry variants).
std::vector<std::pair<std::string, QuantEncoding>> encodingZoo(int64_t dim);

} // namespace cputest
} // namespace kvopt

#endif // KVOPT_TEST_UNITTESTS_CPU_TESTSUPPORT_H
