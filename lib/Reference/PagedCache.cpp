//===- PagedCache.cpp - Reference page bytes of docs/CacheLayout.md -------===//
//
// Byte-exact writer and reader of paged K/V caches, full precision or
// quantized, in the page format of docs/CacheLayout.md.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Reference/PagedCache.h"

#include <algorithm>

using namespace kvopt::reference;

namespace {

/// Lays out [data][scales][zeros] of one component starting at `offset`.
int64_t layoutComponent(const PagedCacheFormat &format,
                        const std::optional<QuantEncoding> &encoding,
                        int64_t offset, PageRegion &data, PageRegion &scales,
                        PageRegion &zeros) {
  int64_t elements = format.pageSize * format.kvHeads * format.headDim;
  data.offset = offset;
  if (!encoding) {
    data.bytes = elements * scalarBytes(format.element);
    scales = {data.offset + data.bytes, 0};
    zeros = {scales.offset, 0};
    return zeros.offset;
  }
  validateEncoding(*encoding, format.headDim);
  KVOPT_REF_CHECK(encoding->axis != QuantAxis::Channel ||
                      format.pageSize % encoding->group == 0,
                  "channel-axis token group must divide the page size");
  int64_t bits = quantBits(encoding->kind);
  KVOPT_REF_CHECK(elements * bits % 8 == 0,
                  "packed page data must fill whole bytes");
  data.bytes = elements * bits / 8;
  int64_t count =
      scaleCount(*encoding, format.pageSize, format.kvHeads, format.headDim);
  scales = {data.offset + data.bytes, count * scalarBytes(encoding->scaleType)};
  zeros = {scales.offset + scales.bytes,
           encoding->symmetric ? 0 : scales.bytes};
  return zeros.offset + zeros.bytes;
}

/// Byte offset of physical page `physical` in a pool of `poolBytes`; aborts
/// when the page lies outside the pool.
int64_t pageStart(size_t poolBytes, int64_t physical, int64_t pageBytes) {
  KVOPT_REF_CHECK(physical >= 0 && (physical + 1) * pageBytes <=
                                       static_cast<int64_t>(poolBytes),
                  "block table names a page outside the pool");
  return physical * pageBytes;
}

/// Shape-only storage descriptor of one page, for page-local scale indices.
QuantizedTensor pageShape(const PagedCacheFormat &format) {
  QuantizedTensor shape;
  shape.tokens = format.pageSize;
  shape.heads = format.kvHeads;
  shape.dim = format.headDim;
  return shape;
}

/// Token-major [T][H][D] copy of the first `length` tokens of x[b].
Tensor tokenMajor(const Tensor &x, int64_t b, int64_t length) {
  Tensor out({length, x.dim(1), x.dim(3)});
  for (int64_t t = 0; t < length; ++t)
    for (int64_t h = 0; h < x.dim(1); ++h)
      for (int64_t d = 0; d < x.dim(3); ++d)
        out.at({t, h, d}) = x.at({b, h, t, d});
  return out;
}

/// Writes one component of sequence b into its pages.
void writeComponent(const PagedCacheFormat &format,
                    const std::optional<QuantEncoding> &encoding,
                    const PageRegion &data, const PageRegion &scales,
                    const PageRegion &zeros, int64_t pageBytes,
                    std::vector<uint8_t> &pool, const BlockTable &table,
                    const Tensor &x, int64_t b, int64_t length) {
  int64_t heads = format.kvHeads, dim = format.headDim;
  int64_t pageSize = format.pageSize;
  Tensor rows = tokenMajor(x, b, length);
  QuantizedTensor storage;
  if (encoding)
    storage = quantize(rows, *encoding);
  QuantizedTensor page = pageShape(format);
  int64_t pages = (length + pageSize - 1) / pageSize;
  for (int64_t i = 0; i < pages; ++i) {
    uint8_t *base =
        pool.data() + pageStart(pool.size(), table.page(b, i), pageBytes);
    // Unused slots read as zero bytes. Only this component's regions: the
    // other component of the same page is written by its own call.
    std::fill(base + data.offset, base + zeros.offset + zeros.bytes, 0);
    std::vector<uint8_t> codes(pageSize * heads * dim, 0);
    for (int64_t slot = 0; slot < pageSize; ++slot) {
      int64_t t = i * pageSize + slot;
      if (t >= length)
        break;
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t d = 0; d < dim; ++d) {
          int64_t element = (slot * heads + h) * dim + d;
          if (!encoding) {
            writeScalarBytes(format.element, rows.at({t, h, d}),
                             base + data.offset +
                                 element * scalarBytes(format.element));
            continue;
          }
          codes[element] = storage.codes[rows.offset({t, h, d})];
          int64_t from = scaleIndex(*encoding, storage, t, h, d);
          int64_t to = scaleIndex(*encoding, page, slot, h, d);
          int64_t size = scalarBytes(encoding->scaleType);
          writeScalarBytes(encoding->scaleType, storage.scales[from],
                           base + scales.offset + to * size);
          if (!encoding->symmetric)
            writeScalarBytes(encoding->scaleType, storage.zeros[from],
                             base + zeros.offset + to * size);
        }
    }
    if (encoding) {
      std::vector<uint8_t> packed = packCodes(encoding->kind, codes);
      std::copy(packed.begin(), packed.end(), base + data.offset);
    }
  }
}

} // namespace

PageLayout kvopt::reference::computePageLayout(const PagedCacheFormat &format) {
  KVOPT_REF_CHECK(format.kvHeads > 0 && format.headDim > 0 &&
                      format.pageSize >= 1 && format.pageSize <= 4096,
                  "page format needs heads, head dim and page size 1..4096");
  PageLayout layout;
  int64_t end = layoutComponent(format, format.key, 0, layout.keyData,
                                layout.keyScales, layout.keyZeros);
  layout.pageBytes =
      layoutComponent(format, format.value, end, layout.valueData,
                      layout.valueScales, layout.valueZeros);
  return layout;
}

void kvopt::reference::writePagedCache(const PagedCacheFormat &format,
                                       std::vector<uint8_t> &pool,
                                       const BlockTable &table, const Tensor &k,
                                       const Tensor &v,
                                       const std::vector<int64_t> &lengths) {
  PageLayout layout = computePageLayout(format);
  std::vector<int64_t> expected{table.batch, format.kvHeads,
                                k.rank() == 4 ? k.dim(2) : -1, format.headDim};
  KVOPT_REF_CHECK(k.shape() == expected && v.shape() == expected,
                  "k and v must be [B, Hkv, T, D] matching the format");
  KVOPT_REF_CHECK(static_cast<int64_t>(lengths.size()) == table.batch,
                  "one length per sequence");
  for (int64_t b = 0; b < table.batch; ++b) {
    KVOPT_REF_CHECK(lengths[b] >= 0 && lengths[b] <= k.dim(2) &&
                        lengths[b] <= table.maxPages * format.pageSize,
                    "sequence longer than its tensor or block-table row");
    writeComponent(format, format.key, layout.keyData, layout.keyScales,
                   layout.keyZeros, layout.pageBytes, pool, table, k, b,
                   lengths[b]);
    writeComponent(format, format.value, layout.valueData, layout.valueScales,
                   layout.valueZeros, layout.pageBytes, pool, table, v, b,
                   lengths[b]);
  }
}

QuantizedTensor kvopt::reference::readQuantizedComponent(
    const PagedCacheFormat &format, const std::vector<uint8_t> &pool,
    const BlockTable &table, int64_t b, int64_t length, bool key) {
  PageLayout layout = computePageLayout(format);
  const std::optional<QuantEncoding> &encoding =
      key ? format.key : format.value;
  KVOPT_REF_CHECK(encoding.has_value(), "component is not quantized");
  const PageRegion &data = key ? layout.keyData : layout.valueData;
  const PageRegion &scales = key ? layout.keyScales : layout.valueScales;
  const PageRegion &zeros = key ? layout.keyZeros : layout.valueZeros;
  int64_t heads = format.kvHeads, dim = format.headDim;
  int64_t pageSize = format.pageSize;
  int64_t scaleSize = scalarBytes(encoding->scaleType);

  QuantizedTensor storage;
  storage.tokens = length;
  storage.heads = heads;
  storage.dim = dim;
  storage.codes.resize(length * heads * dim);
  storage.scales.resize(scaleCount(*encoding, length, heads, dim));
  if (!encoding->symmetric)
    storage.zeros.resize(storage.scales.size());
  QuantizedTensor page = pageShape(format);
  for (int64_t t = 0; t < length; ++t) {
    int64_t slot = t % pageSize;
    const uint8_t *base =
        pool.data() +
        pageStart(pool.size(), table.page(b, t / pageSize), layout.pageBytes);
    std::vector<uint8_t> codes =
        unpackCodes(encoding->kind, base + data.offset, pageSize * heads * dim);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t d = 0; d < dim; ++d) {
        storage.codes[(t * heads + h) * dim + d] =
            codes[(slot * heads + h) * dim + d];
        int64_t to = scaleIndex(*encoding, storage, t, h, d);
        int64_t from = scaleIndex(*encoding, page, slot, h, d);
        storage.scales[to] = readScalarBytes(
            encoding->scaleType, base + scales.offset + from * scaleSize);
        if (!encoding->symmetric)
          storage.zeros[to] = readScalarBytes(
              encoding->scaleType, base + zeros.offset + from * scaleSize);
      }
  }
  return storage;
}

KVTensors kvopt::reference::readPagedCache(
    const PagedCacheFormat &format, const std::vector<uint8_t> &pool,
    const BlockTable &table, const std::vector<int64_t> &lengths) {
  PageLayout layout = computePageLayout(format);
  KVOPT_REF_CHECK(static_cast<int64_t>(lengths.size()) == table.batch,
                  "one length per sequence");
  int64_t capacity =
      lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end());
  int64_t heads = format.kvHeads, dim = format.headDim;
  KVTensors out{Tensor({table.batch, heads, capacity, dim}),
                Tensor({table.batch, heads, capacity, dim})};
  for (int64_t b = 0; b < table.batch; ++b) {
    for (bool key : {true, false}) {
      const std::optional<QuantEncoding> &encoding =
          key ? format.key : format.value;
      Tensor &target = key ? out.k : out.v;
      if (encoding) {
        // The windows live outside the pages; decode the storage alone.
        QuantEncoding storageOnly = *encoding;
        storageOnly.recent = storageOnly.sinks = 0;
        Tensor values = dequantize(
            readQuantizedComponent(format, pool, table, b, lengths[b], key),
            storageOnly);
        for (int64_t t = 0; t < lengths[b]; ++t)
          for (int64_t h = 0; h < heads; ++h)
            for (int64_t d = 0; d < dim; ++d)
              target.at({b, h, t, d}) = values.at({t, h, d});
        continue;
      }
      const PageRegion &data = key ? layout.keyData : layout.valueData;
      int64_t size = scalarBytes(format.element);
      for (int64_t t = 0; t < lengths[b]; ++t) {
        int64_t slot = t % format.pageSize;
        const uint8_t *base =
            pool.data() + data.offset +
            pageStart(pool.size(), table.page(b, t / format.pageSize),
                      layout.pageBytes);
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t d = 0; d < dim; ++d)
            target.at({b, h, t, d}) = readScalarBytes(
                format.element, base + ((slot * heads + h) * dim + d) * size);
      }
    }
  }
  return out;
}
