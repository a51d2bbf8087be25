//===- PagedCache.h - Reference page bytes of docs/CacheLayout.md -*- C++
//-*-===//
//
// Writes and reads a K/V cache in the exact byte format of a page in
// docs/CacheLayout.md, so that append kernels can be checked byte for byte
// and attention kernels can be fed the bytes they will see at run time.
//
//===----------------------------------------------------------------------===//
//
// A page holds `pageSize` tokens and is laid out as
//   [K data][K scales][K zero points][V data][V scales][V zero points]
// Full-precision data is [pageSize][Hkv][D] elements of the cache's element
// type; quantized data is the same order packed by packCodes (int4 low
// nibble first, int2 lowest bits first). Token-axis scales are
// [pageSize][Hkv][D/g], channel-axis scales [pageSize/g][Hkv][D], each in the
// scale type; zero points (asymmetric only) follow in the same shape. All
// multi-byte values are little-endian. Channel groups are aligned to the page
// start, which is the same as aligning them to token 0 because g divides the
// page size. Slots past a sequence's length are written as zero bytes.
//
// Recent and sink windows are a per-sequence side buffer, not part of a
// page: readPagedCache returns the values the quantized storage decodes to,
// and dequantizeCache (Reference.h) overlays the windows.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_REFERENCE_PAGEDCACHE_H
#define KVOPT_REFERENCE_PAGEDCACHE_H

#include "kvopt/Reference/Reference.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace kvopt {
namespace reference {

/// The page-relevant fields of a `kind = kv` cache in docs/CacheLayout.md.
struct PagedCacheFormat {
  int64_t kvHeads = 0;
  int64_t headDim = 0;
  int64_t pageSize = 0;
  /// Full-precision element type.
  ScalarType element = ScalarType::F16;
  /// Encodings of K and V; nullopt = full precision.
  std::optional<QuantEncoding> key;
  std::optional<QuantEncoding> value;
};

/// A byte range inside a page.
struct PageRegion {
  int64_t offset = 0;
  int64_t bytes = 0;
};

/// Where each part of a page lives (empty regions for absent parts).
struct PageLayout {
  PageRegion keyData, keyScales, keyZeros;
  PageRegion valueData, valueScales, valueZeros;
  int64_t pageBytes = 0;
};

/// The layout of one page; aborts on a format CacheLayout.md rejects (e.g. a
/// channel group that does not divide the page size).
PageLayout computePageLayout(const PagedCacheFormat &format);

/// Writes tokens [0, lengths[b]) of k and v ([B, Hkv, T, D]) into `pool`
/// (numPages * pageBytes bytes) at the pages the block table names. Quantized
/// components are quantized per sequence (quantize in Quantize.h).
void writePagedCache(const PagedCacheFormat &format, std::vector<uint8_t> &pool,
                     const BlockTable &table, const Tensor &k, const Tensor &v,
                     const std::vector<int64_t> &lengths);

/// Reads the quantized storage of one component (K when `key`, else V) of
/// sequence b back from page bytes. The component must be quantized.
QuantizedTensor readQuantizedComponent(const PagedCacheFormat &format,
                                       const std::vector<uint8_t> &pool,
                                       const BlockTable &table, int64_t b,
                                       int64_t length, bool key);

/// K and V as a kernel reading the pages sees them: [B, Hkv, max(lengths),
/// D], element values for full-precision components and decoded codes for
/// quantized ones (no windows), zero past each length.
struct KVTensors {
  Tensor k;
  Tensor v;
};
KVTensors readPagedCache(const PagedCacheFormat &format,
                         const std::vector<uint8_t> &pool,
                         const BlockTable &table,
                         const std::vector<int64_t> &lengths);

} // namespace reference
} // namespace kvopt

#endif // KVOPT_REFERENCE_PAGEDCACHE_H
