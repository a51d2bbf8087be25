//===- layout.h - KV cache layout description and size formulas ---*- C++
//-*-===//
//
// The cache layout shared by the compiler and the runtime, and the byte
// formulas of docs/CacheLayout.md (bytes per token, page bytes, offsets of the
// parts of a page). The JSON form uses the field names of that document.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_RUNTIME_LAYOUT_H
#define KVOPT_RUNTIME_LAYOUT_H

#include "kvopt/runtime/status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvopt {
namespace rt {

/// Full-precision element (and scale) types.
enum class ElementType { F16, BF16, F32 };
/// Storage formats of a quantized component.
enum class QuantKind { Int8, Fp8E4M3, Int4, Int2 };
/// Which axis a quantization scale runs along (KIVI: keys per channel, values
/// per token).
enum class QuantAxis { Token, Channel };
/// Separate K and V, or one MLA latent row.
enum class CacheKind { KV, Latent };
enum class StorageLayout { Contiguous, Paged };
/// The component of a cache a slot address refers to. Latent caches only have
/// `Key` (the latent row).
enum class Component { Key = 0, Value = 1 };

/// Bytes of one element of `type`.
unsigned elementBytes(ElementType type);
/// Storage bits of one quantized value.
unsigned quantBits(QuantKind kind);

/// A quantization encoding (one of `key`, `value` in CacheLayout.md).
struct QuantEncoding {
  QuantKind kind = QuantKind::Int8;
  QuantAxis axis = QuantAxis::Token;
  /// Token axis: channels per scale (0 = the whole head or latent row).
  /// Channel axis: tokens per scale (>= 1).
  uint32_t group = 0;
  bool symmetric = true;
  ElementType scale = ElementType::F32;
  uint32_t recent = 0; ///< most recent tokens also kept in full precision
  uint32_t sinks = 0;  ///< first tokens also kept in full precision

  bool operator==(const QuantEncoding &o) const;
  bool operator!=(const QuantEncoding &o) const { return !(*this == o); }
};

/// The cache layout description of docs/CacheLayout.md.
struct CacheLayout {
  CacheKind kind = CacheKind::KV;
  uint32_t kvHeads = 0;   ///< kind == KV
  uint32_t headDim = 0;   ///< kind == KV
  uint32_t latentDim = 0; ///< kind == Latent
  uint32_t ropeDim = 0;   ///< kind == Latent
  ElementType element = ElementType::F16;
  std::optional<QuantEncoding> key;   ///< K (or latent row) encoding
  std::optional<QuantEncoding> value; ///< V encoding; null for latent caches
  StorageLayout layout = StorageLayout::Paged;
  uint32_t pageSize = 16; ///< tokens per page (paged only)
  uint32_t numLayers = 1;
  std::vector<uint32_t> layerToCache; ///< [numLayers] cache read by a layer

  /// Checks every rule of CacheLayout.md; the message names the bad field.
  Status validate() const;
  /// Number of distinct caches (max of layerToCache + 1).
  uint32_t numCaches() const;
  /// Number of components per token: 2 (K, V) or 1 (latent row).
  unsigned numComponents() const { return kind == CacheKind::KV ? 2 : 1; }
  /// Width W of one component row in elements.
  uint64_t rowWidth() const;
  /// Encoding of `c`, or null for full precision.
  const std::optional<QuantEncoding> &encoding(Component c) const {
    return c == Component::Key ? key : value;
  }

  /// Bytes per token of one cache (K + V, or the latent row); may be
  /// fractional with channel-axis scales.
  double cacheBytesPerToken() const;
  /// Model-level bytes per token: cacheBytesPerToken() * numCaches().
  double bytesPerToken() const;
  /// Full-precision window bytes per sequence for one cache.
  uint64_t cacheFixedBytesPerSequence() const;
  /// Model-level fixed bytes per sequence (all caches).
  uint64_t fixedBytesPerSequence() const;
  /// Bytes of one page of one cache (page_size * cacheBytesPerToken(),
  /// computed exactly in integers). Requires a valid paged layout.
  uint64_t pageBytes() const;

  /// Field-by-field comparison; on difference returns a LayoutMismatch
  /// status naming the first differing field and both values, using
  /// `expectedName` / `actualName` for the two sides.
  Status compare(const CacheLayout &actual, const char *expectedName,
                 const char *actualName) const;
  bool operator==(const CacheLayout &o) const {
    return compare(o, "a", "b").isOk();
  }

  /// Parses the JSON form of docs/CacheLayout.md and validates it.
  static Status fromJson(const std::string &text, CacheLayout &out);
  /// Serializes to the JSON form (compact).
  std::string toJson() const;
};

/// Byte offsets and strides of one component inside a page of one cache,
/// following "[K data][K scales][K zero points][V data][V scales][V zero
/// points]" of CacheLayout.md.
struct ComponentPageLayout {
  uint64_t dataOffset = 0;        ///< [pageSize][W] packed values (or elements)
  uint64_t dataRowBytes = 0;      ///< bytes of one token's row
  uint64_t scaleOffset = 0;       ///< token axis: [pageSize][W/g]; channel:
                                  ///< [pageSize/g][W]; absent if full precision
  uint64_t zeroOffset = 0;        ///< same shape as scales; absent if symmetric
  uint64_t scaleRowBytes = 0;     ///< bytes of one scale row (token or group)
  uint32_t tokensPerScaleRow = 0; ///< 1 (token axis), g (channel axis), 0
  uint64_t endOffset = 0;         ///< first byte after this component
  bool hasScales = false;
  bool hasZeros = false;
};

/// Computes the layout of component `c` inside a page of `layout`.
ComponentPageLayout componentPageLayout(const CacheLayout &layout, Component c);

const char *elementTypeName(ElementType type);
const char *quantKindName(QuantKind kind);

} // namespace rt
} // namespace kvopt

#endif // KVOPT_RUNTIME_LAYOUT_H
