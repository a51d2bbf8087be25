//===- PagingTest.cpp - Tests of paged gather and the page byte format ----===//
//
// Gather against contiguous storage for shuffled pages (page size 1
// included), page sizes from docs/CacheLayout.md's worked examples, a
// hand-written page, and byte round trips for every encoding.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "kvopt/Reference/PagedCache.h"

#include <algorithm>

using namespace kvopt::reference;
using namespace kvopt::reference::test;

namespace {

/// A block table over shuffled physical pages, `extra` unused pages mixed in.
BlockTable shuffledTable(std::mt19937_64 &rng, int64_t batch, int64_t maxPages,
                         int64_t extra) {
  std::vector<int32_t> physical(batch * maxPages + extra);
  for (size_t i = 0; i < physical.size(); ++i)
    physical[i] = static_cast<int32_t>(i);
  std::shuffle(physical.begin(), physical.end(), rng);
  physical.resize(batch * maxPages);
  return BlockTable{batch, maxPages, physical};
}

} // namespace

TEST(Paging, GatherEqualsContiguousForShuffledPages) {
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    for (int64_t pageSize : {1, 3, 16}) {
      for (PageOrder order : {PageOrder::TokenMajor, PageOrder::HeadMajor}) {
        int64_t batch = 3, heads = 2, dim = 5, maxPages = 40 / pageSize + 1;
        std::vector<int64_t> lengths;
        for (int64_t b = 0; b < batch; ++b)
          lengths.push_back(randomInt(rng, 1, 40));
        int64_t capacity = *std::max_element(lengths.begin(), lengths.end());
        Tensor contiguous = randomTensor(rng, {batch, heads, capacity, dim});
        BlockTable table = shuffledTable(rng, batch, maxPages, 3);
        int64_t numPages = batch * maxPages + 3;
        Tensor pages(order == PageOrder::TokenMajor
                         ? std::vector<int64_t>{numPages, pageSize, heads, dim}
                         : std::vector<int64_t>{numPages, heads, pageSize, dim},
                     -99.0);
        // Scatter by the layout's definition, written out independently.
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t t = 0; t < lengths[b]; ++t) {
            int64_t page = table.pages[b * maxPages + t / pageSize];
            int64_t slot = t % pageSize;
            for (int64_t h = 0; h < heads; ++h)
              for (int64_t d = 0; d < dim; ++d) {
                double value = contiguous.at({b, h, t, d});
                if (order == PageOrder::TokenMajor)
                  pages.at({page, slot, h, d}) = value;
                else
                  pages.at({page, h, slot, d}) = value;
              }
          }
        Tensor gathered = gatherPages(pages, order, table, lengths);
        ASSERT_EQ(gathered.shape(), contiguous.shape());
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t h = 0; h < heads; ++h)
            for (int64_t t = 0; t < capacity; ++t)
              for (int64_t d = 0; d < dim; ++d)
                EXPECT_EQ(gathered.at({b, h, t, d}),
                          t < lengths[b] ? contiguous.at({b, h, t, d}) : 0.0);
      }
    }
  }
}

TEST(PagedCache, PageBytesMatchCacheLayoutExamples) {
  // 8 x 128, K int4 channel g=32 f16 asym, V int4 token g=32 f16 asym:
  // 1280 bytes per token.
  QuantEncoding keyEncoding;
  keyEncoding.kind = QuantKind::Int4;
  keyEncoding.axis = QuantAxis::Channel;
  keyEncoding.group = 32;
  keyEncoding.symmetric = false;
  keyEncoding.scaleType = ScalarType::F16;
  QuantEncoding valueEncoding = keyEncoding;
  valueEncoding.axis = QuantAxis::Token;
  PagedCacheFormat format{8,           128,          32, ScalarType::F16,
                          keyEncoding, valueEncoding};
  PageLayout layout = computePageLayout(format);
  EXPECT_EQ(layout.pageBytes, 32 * 1280);
  EXPECT_EQ(layout.keyData.bytes, 32 * 512);
  EXPECT_EQ(layout.keyZeros.bytes, 1024 * 2);
  EXPECT_EQ(layout.valueData.offset, 32 * 640);
  // 8 x 128 f16: 4096 bytes per token.
  EXPECT_EQ(computePageLayout({8, 128, 16, ScalarType::F16, {}, {}}).pageBytes,
            16 * 4096);
  // 8 x 128, K and V int8 token g=0 f32 sym: 2112 bytes per token.
  QuantEncoding int8;
  int8.scaleType = ScalarType::F32;
  EXPECT_EQ(
      computePageLayout({8, 128, 1, ScalarType::F16, int8, int8}).pageBytes,
      2112);
  // A channel group that does not divide the page size is rejected.
  EXPECT_DEATH(
      computePageLayout({8, 128, 48, ScalarType::F16, keyEncoding, {}}),
      "must divide the page size");
}

TEST(PagedCache, HandWrittenPage) {
  // One head of dim 4, page size 2, one token. K int4 token g=2 sym f16,
  // V f16. K row [7, -3.5, 14, 7]: scales 1 and 2, codes 7, -4, 7, 4.
  QuantEncoding keyEncoding;
  keyEncoding.kind = QuantKind::Int4;
  keyEncoding.group = 2;
  keyEncoding.scaleType = ScalarType::F16;
  PagedCacheFormat format{1, 4, 2, ScalarType::F16, keyEncoding, {}};
  PageLayout layout = computePageLayout(format);
  EXPECT_EQ(layout.keyData.offset, 0);
  EXPECT_EQ(layout.keyScales.offset, 4);
  EXPECT_EQ(layout.valueData.offset, 12);
  EXPECT_EQ(layout.pageBytes, 28);
  Tensor k({1, 1, 1, 4}), v({1, 1, 1, 4});
  k.values() = {7.0, -3.5, 14.0, 7.0};
  v.values() = {1.0, -2.0, 0.5, 0.0};
  std::vector<uint8_t> pool(28, 0xEE);
  writePagedCache(format, pool, BlockTable{1, 1, {0}}, k, v, {1});
  std::vector<uint8_t> expected = {
      0xC7, 0x47, 0x00, 0x00,                         // K codes, slot 1 empty
      0x00, 0x3C, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, // K scales 1, 2 (f16)
      0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0x00, 0x00, // V slot 0 (f16)
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // V slot 1
  };
  EXPECT_EQ(pool, expected);
  KVTensors back = readPagedCache(format, pool, BlockTable{1, 1, {0}}, {1});
  EXPECT_EQ(back.k.values(), std::vector<double>({7.0, -4.0, 14.0, 8.0}));
  EXPECT_EQ(back.v.values(), v.values());
}

TEST(PagedCache, BytesRoundTripForEveryEncoding) {
  const QuantKind kinds[] = {QuantKind::Int8, QuantKind::Fp8E4M3,
                             QuantKind::Int4, QuantKind::Int2};
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    for (QuantKind kind : kinds)
      for (QuantAxis axis : {QuantAxis::Token, QuantAxis::Channel}) {
        int64_t pageSize =
            axis == QuantAxis::Channel ? 8 : randomInt(rng, 1, 9);
        QuantEncoding keyEncoding;
        keyEncoding.kind = kind;
        keyEncoding.axis = axis;
        keyEncoding.group = axis == QuantAxis::Channel ? 4 : 8;
        keyEncoding.symmetric =
            kind == QuantKind::Fp8E4M3 || randomInt(rng, 0, 1);
        keyEncoding.scaleType = ScalarType::BF16;
        keyEncoding.recent = 2; // Windows do not reach the pages.
        PagedCacheFormat format{2,           16, pageSize, ScalarType::BF16,
                                keyEncoding, {}};
        int64_t batch = 3, maxPages = 30 / pageSize + 1;
        std::vector<int64_t> lengths;
        for (int64_t b = 0; b < batch; ++b)
          lengths.push_back(randomInt(rng, 1, 30));
        Tensor k =
            randomTensor(rng, {batch, 2, 30, 16}, -2.0, 2.0, ScalarType::BF16);
        Tensor v = randomTensor(rng, {batch, 2, 30, 16});
        BlockTable table = shuffledTable(rng, batch, maxPages, 2);
        PageLayout layout = computePageLayout(format);
        std::vector<uint8_t> pool((batch * maxPages + 2) * layout.pageBytes);
        writePagedCache(format, pool, table, k, v, lengths);
        KVTensors back = readPagedCache(format, pool, table, lengths);
        QuantEncoding storageOnly = keyEncoding;
        storageOnly.recent = 0;
        for (int64_t b = 0; b < batch; ++b) {
          Tensor rows({lengths[b], 2, 16});
          for (int64_t t = 0; t < lengths[b]; ++t)
            for (int64_t h = 0; h < 2; ++h)
              for (int64_t d = 0; d < 16; ++d)
                rows.at({t, h, d}) = k.at({b, h, t, d});
          Tensor expected = quantizeDequantize(rows, storageOnly);
          for (int64_t t = 0; t < lengths[b]; ++t)
            for (int64_t h = 0; h < 2; ++h)
              for (int64_t d = 0; d < 16; ++d) {
                ASSERT_EQ(back.k.at({b, h, t, d}), expected.at({t, h, d}));
                ASSERT_EQ(back.v.at({b, h, t, d}),
                          roundToScalar(ScalarType::BF16, v.at({b, h, t, d})));
              }
        }
      }
  }
}
