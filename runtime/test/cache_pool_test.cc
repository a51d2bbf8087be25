//===- cache_pool_test.cc - Unit tests of the paged cache pool ------------===//
//
// One test (or more) per pool operation and per error path. Error paths also
// check that the pool is left exactly as it was.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/cache_pool.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

using namespace kvopt::rt;
using namespace kvopt::rt::test;

namespace {

/// Everything observable about a pool: accounting and all block tables.
struct Snapshot {
  PoolStats stats;
  std::vector<std::vector<int32_t>> tables;
  std::vector<uint32_t> refCounts;
};

Snapshot snapshot(const CachePool &pool, const std::vector<SequenceId> &ids) {
  Snapshot s;
  s.stats = pool.stats();
  for (SequenceId id : ids) {
    std::vector<int32_t> t;
    EXPECT_RT_OK(pool.blockTable(id, t));
    s.tables.push_back(t);
  }
  for (uint32_t p = 0; p < s.stats.totalPages; ++p)
    s.refCounts.push_back(pool.refCount(int32_t(p)));
  return s;
}

void expectSame(const Snapshot &a, const Snapshot &b) {
  EXPECT_EQ(a.stats.freePages, b.stats.freePages);
  EXPECT_EQ(a.stats.usedPages, b.stats.usedPages);
  EXPECT_EQ(a.stats.liveSequences, b.stats.liveSequences);
  EXPECT_EQ(a.stats.usedTokenSlots, b.stats.usedTokenSlots);
  EXPECT_EQ(a.stats.bytesReserved, b.stats.bytesReserved);
  EXPECT_EQ(a.stats.bytesInUse, b.stats.bytesInUse);
  EXPECT_EQ(a.tables, b.tables);
  EXPECT_EQ(a.refCounts, b.refCounts);
}

/// Runs `op`, expects it to fail with `code`, and the pool (as seen through
/// `ids`) to be exactly as before. Returns the error message.
template <typename Op>
std::string expectFailsUnchanged(const CachePool &pool,
                                 const std::vector<SequenceId> &ids,
                                 StatusCode code, Op op) {
  Snapshot before = snapshot(pool, ids);
  Status s = op();
  EXPECT_EQ(s.code(), code) << s.toString();
  expectSame(before, snapshot(pool, ids));
  return s.message();
}

uint8_t *host(DeviceAddress a) { return reinterpret_cast<uint8_t *>(a); }

/// Fills the K data row of `token` with `value`.
void writeKey(CachePool &pool, SequenceId id, uint32_t token, uint8_t value) {
  SlotAddress slot;
  ASSERT_RT_OK(pool.slotAddress(id, token, 0, Component::Key, slot));
  std::memset(host(slot.data), value, slot.dataBytes);
}

uint8_t readKey(const CachePool &pool, SequenceId id, uint32_t token) {
  SlotAddress slot;
  EXPECT_RT_OK(pool.slotAddress(id, token, 0, Component::Key, slot));
  return host(slot.data)[0];
}

TEST(CachePoolTest, CreateRejectsBadOptions) {
  std::unique_ptr<CachePool> pool;
  CacheLayout l = smallLayout();
  PoolOptions o;
  o.numPages = 0;
  EXPECT_EQ(CachePool::create(l, o, createHostMemory(), pool).code(),
            StatusCode::InvalidArgument);
  o.numPages = 4;
  EXPECT_EQ(CachePool::create(l, o, nullptr, pool).code(),
            StatusCode::InvalidArgument);
  CacheLayout contiguous = l;
  contiguous.layout = StorageLayout::Contiguous;
  Status s = CachePool::create(contiguous, o, createHostMemory(), pool);
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_NE(s.message().find("paged"), std::string::npos);
  CacheLayout bad = l;
  bad.headDim = 0;
  EXPECT_EQ(CachePool::create(bad, o, createHostMemory(), pool).code(),
            StatusCode::InvalidArgument);
  CacheLayout windows = l;
  windows.key = QuantEncoding();
  windows.key->recent = 2;
  s = CachePool::create(windows, o, createHostMemory(), pool);
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_NE(s.message().find("maxSequences"), std::string::npos);
  EXPECT_EQ(pool, nullptr);
}

TEST(CachePoolTest, AppendAllocatesPagesOnDemand) {
  auto pool = makePool(smallLayout(4), 8);
  SequenceId id;
  ASSERT_RT_OK(pool->createSequence(id));
  std::vector<int32_t> table;
  ASSERT_RT_OK(pool->blockTable(id, table));
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(pool->stats().freePages, 8u);
  ASSERT_RT_OK(pool->appendTokens(id, 1));
  EXPECT_EQ(pool->stats().freePages, 7u);
  ASSERT_RT_OK(pool->appendTokens(id, 3)); // fills page 0
  EXPECT_EQ(pool->stats().freePages, 7u);
  ASSERT_RT_OK(pool->appendTokens(id, 5)); // 9 tokens: 3 pages
  ASSERT_RT_OK(pool->blockTable(id, table));
  EXPECT_EQ(table, (std::vector<int32_t>{0, 1, 2}));
  uint32_t len = 0;
  ASSERT_RT_OK(pool->length(id, len));
  EXPECT_EQ(len, 9u);
  for (int32_t p : table)
    EXPECT_EQ(pool->refCount(p), 1u);
  ASSERT_RT_OK(pool->appendTokens(id, 0)); // no-op
  EXPECT_EQ(pool->stats().usedPages, 3u);
}

TEST(CachePoolTest, AccountingIsExact) {
  auto pool = makePool(smallLayout(4), 8);
  PoolStats s = pool->stats();
  EXPECT_EQ(s.pageBytes, 4u * 32u);
  EXPECT_EQ(s.bytesCapacity, 8u * 4u * 32u);
  EXPECT_EQ(s.bytesPerToken, 32.0);
  EXPECT_EQ(s.bytesReserved, 0u);
  SequenceId a, b;
  ASSERT_RT_OK(pool->createSequence(a));
  ASSERT_RT_OK(pool->createSequence(b));
  ASSERT_RT_OK(pool->appendTokens(a, 5));
  ASSERT_RT_OK(pool->appendTokens(b, 2));
  s = pool->stats();
  EXPECT_EQ(s.liveSequences, 2u);
  EXPECT_EQ(s.usedPages, 3u);
  EXPECT_EQ(s.usedTokenSlots, 7u);
  EXPECT_EQ(s.bytesReserved, 3u * 128u);
  EXPECT_EQ(s.bytesInUse, 7.0 * 32);
  // Waste is under one page per live sequence.
  EXPECT_LT(double(s.bytesReserved) - s.bytesInUse, 2.0 * 128);
}

TEST(CachePoolTest, TruncateReleasesWholePages) {
  auto pool = makePool(smallLayout(4), 8);
  SequenceId id;
  ASSERT_RT_OK(pool->createSequence(id));
  ASSERT_RT_OK(pool->appendTokens(id, 10));
  ASSERT_RT_OK(pool->truncate(id, 5));
  std::vector<int32_t> table;
  ASSERT_RT_OK(pool->blockTable(id, table));
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(pool->stats().usedTokenSlots, 5u);
  EXPECT_EQ(pool->refCount(2), 0u);
  ASSERT_RT_OK(pool->truncate(id, 5)); // same length: no-op
  ASSERT_RT_OK(pool->truncate(id, 0));
  EXPECT_EQ(pool->stats().freePages, 8u);
  ASSERT_RT_OK(pool->appendTokens(id, 1)); // still usable
  EXPECT_EQ(pool->stats().usedPages, 1u);
}

TEST(CachePoolTest, TruncateBeyondLengthFailsUnchanged) {
  auto pool = makePool(smallLayout(4), 8);
  SequenceId id;
  ASSERT_RT_OK(pool->createSequence(id));
  ASSERT_RT_OK(pool->appendTokens(id, 3));
  std::string m = expectFailsUnchanged(*pool, {id}, StatusCode::InvalidArgument,
                                       [&] { return pool->truncate(id, 4); });
  EXPECT_NE(m.find("cannot truncate to 4"), std::string::npos);
}

TEST(CachePoolTest, FreeReleasesEverything) {
  auto pool = makePool(smallLayout(4), 8);
  SequenceId id;
  ASSERT_RT_OK(pool->createSequence(id));
  ASSERT_RT_OK(pool->appendTokens(id, 13));
  ASSERT_RT_OK(pool->freeSequence(id));
  PoolStats s = pool->stats();
  EXPECT_EQ(s.freePages, 8u);
  EXPECT_EQ(s.liveSequences, 0u);
  EXPECT_EQ(s.bytesReserved, 0u);
  EXPECT_EQ(s.bytesInUse, 0.0);
}

TEST(CachePoolTest, UnknownAndFreedIdsAreErrors) {
  auto pool = makePool(smallLayout(4), 8);
  SequenceId live, dead;
  ASSERT_RT_OK(pool->createSequence(live));
  ASSERT_RT_OK(pool->appendTokens(live, 6));
  ASSERT_RT_OK(pool->createSequence(dead));
  ASSERT_RT_OK(pool->freeSequence(dead));
  Snapshot before = snapshot(*pool, {live});

  // Double free.
  Status s = pool->freeSequence(dead);
  EXPECT_EQ(s.code(), StatusCode::FreedSequence);
  EXPECT_EQ(s.message(),
            "free: sequence " + std::to_string(dead) + " was already freed");
  // Fork of a freed sequence.
  SequenceId child = 777;
  s = pool->fork(dead, child);
  EXPECT_EQ(s.code(), StatusCode::FreedSequence);
  EXPECT_NE(s.message().find("fork"), std::string::npos);
  EXPECT_EQ(child, 777u);
  // Every operation on unknown ids (never handed out) and freed ids.
  for (SequenceId bad : {SequenceId(0), SequenceId(12345), dead}) {
    StatusCode want =
        bad == dead ? StatusCode::FreedSequence : StatusCode::UnknownSequence;
    EXPECT_EQ(pool->appendTokens(bad, 1).code(), want);
    EXPECT_EQ(pool->truncate(bad, 0).code(), want);
    EXPECT_EQ(pool->freeSequence(bad).code(), want);
    EXPECT_EQ(pool->fork(bad, child).code(), want);
    EXPECT_EQ(pool->makeWritable(bad, 0, 0).code(), want);
    uint32_t len;
    EXPECT_EQ(pool->length(bad, len).code(), want);
    std::vector<int32_t> table;
    EXPECT_EQ(pool->blockTable(bad, table).code(), want);
    SlotAddress slot;
    EXPECT_EQ(pool->slotAddress(bad, 0, 0, Component::Key, slot).code(), want);
    DeviceAddress a;
    uint64_t bytes;
    EXPECT_EQ(pool->windowAddress(bad, 0, Component::Key, a, bytes).code(),
              want);
  }
  s = pool->appendTokens(12345, 1);
  EXPECT_EQ(s.message(), "append: unknown sequence id 12345");
  expectSame(before, snapshot(*pool, {live}));
}

TEST(CachePoolTest, OutOfPagesLeavesPoolUnchanged) {
  auto pool = makePool(smallLayout(4), 3);
  SequenceId a, b;
  ASSERT_RT_OK(pool->createSequence(a));
  ASSERT_RT_OK(pool->createSequence(b));
  ASSERT_RT_OK(pool->appendTokens(a, 6));
  std::string m =
      expectFailsUnchanged(*pool, {a, b}, StatusCode::OutOfPages, [&] {
        return pool->appendTokens(b, 5); // needs 2 pages, 1 free
      });
  EXPECT_EQ(m, "append: sequence " + std::to_string(b) +
                   " needs 2 more pages, 1 free");
  expectFailsUnchanged(*pool, {a, b}, StatusCode::OutOfPages, [&] {
    return pool->appendTokens(a, 7); // 13 tokens = 4 pages, has 2, 1 free
  });
  ASSERT_RT_OK(pool->appendTokens(a, 6)); // exactly fits
  EXPECT_EQ(pool->stats().freePages, 0u);
}

TEST(CachePoolTest, AppendBeyondMaximumLengthFails) {
  auto pool = makePool(smallLayout(4096), 2);
  SequenceId id;
  ASSERT_RT_OK(pool->createSequence(id));
  ASSERT_RT_OK(pool->appendTokens(id, 10));
  expectFailsUnchanged(*pool, {id}, StatusCode::InvalidArgument,
                       [&] { return pool->appendTokens(id, 0xFFFFFFFFu); });
}

TEST(CachePoolTest, ForkSharesAllPages) {
  auto pool = makePool(smallLayout(4), 8);
  SequenceId parent, child;
  ASSERT_RT_OK(pool->createSequence(parent));
  ASSERT_RT_OK(pool->appendTokens(parent, 6));
  ASSERT_RT_OK(pool->fork(parent, child));
  EXPECT_NE(child, parent);
  std::vector<int32_t> pt, ct;
  ASSERT_RT_OK(pool->blockTable(parent, pt));
  ASSERT_RT_OK(pool->blockTable(child, ct));
  EXPECT_EQ(pt, ct);
  for (int32_t p : pt)
    EXPECT_EQ(pool->refCount(p), 2u);
  PoolStats s = pool->stats();
  EXPECT_EQ(s.usedPages, 2u);
  EXPECT_EQ(s.usedTokenSlots, 6u); // shared slots count once
  uint32_t len;
  ASSERT_RT_OK(pool->length(child, len));
  EXPECT_EQ(len, 6u);
}

// The shared partial last page is copied on the first write, by whichever
// sequence writes first; the other keeps the original.
TEST(CachePoolTest, CopyOnWriteOfPartialLastPage) {
  auto pool = makePool(smallLayout(4), 8);
  SequenceId parent, child;
  ASSERT_RT_OK(pool->createSequence(parent));
  ASSERT_RT_OK(pool->appendTokens(parent, 6));
  for (uint32_t t = 0; t < 6; ++t)
    writeKey(*pool, parent, t, uint8_t(10 + t));
  ASSERT_RT_OK(pool->fork(parent, child));
  ASSERT_RT_OK(pool->appendTokens(child, 1));
  writeKey(*pool, child, 6, 99);
  std::vector<int32_t> pt, ct;
  ASSERT_RT_OK(pool->blockTable(parent, pt));
  ASSERT_RT_OK(pool->blockTable(child, ct));
  EXPECT_EQ(pt[0], ct[0]); // full page still shared
  EXPECT_NE(pt[1], ct[1]); // partial page copied
  EXPECT_EQ(pool->refCount(pt[0]), 2u);
  EXPECT_EQ(pool->refCount(pt[1]), 1u);
  EXPECT_EQ(pool->refCount(ct[1]), 1u);
  for (uint32_t t = 0; t < 6; ++t) {
    EXPECT_EQ(readKey(*pool, child, t), 10 + t);
    EXPECT_EQ(readKey(*pool, parent, t), 10 + t);
  }
  // The parent now owns its page alone: appending needs no copy.
  ASSERT_RT_OK(pool->appendTokens(parent, 1));
  writeKey(*pool, parent, 6, 55);
  std::vector<int32_t> pt2;
  ASSERT_RT_OK(pool->blockTable(parent, pt2));
  EXPECT_EQ(pt2, pt);
  EXPECT_EQ(readKey(*pool, child, 6), 99);
  EXPECT_EQ(pool->stats().usedTokenSlots, 4u + 3 + 3);
}

// A fork whose last page is full shares it; appending takes a new page.
TEST(CachePoolTest, ForkOfFullPagesNeedsNoCopy) {
  auto pool = makePool(smallLayout(4), 8);
  SequenceId parent, child;
  ASSERT_RT_OK(pool->createSequence(parent));
  ASSERT_RT_OK(pool->appendTokens(parent, 8));
  ASSERT_RT_OK(pool->fork(parent, child));
  ASSERT_RT_OK(pool->appendTokens(child, 1));
  EXPECT_EQ(pool->stats().usedPages, 3u);
  std::vector<int32_t> ct;
  ASSERT_RT_OK(pool->blockTable(child, ct));
  EXPECT_EQ(pool->refCount(ct[0]), 2u);
  EXPECT_EQ(pool->refCount(ct[1]), 2u);
  EXPECT_EQ(pool->refCount(ct[2]), 1u);
}

TEST(CachePoolTest, CopyOnWriteOutOfPagesLeavesPoolUnchanged) {
  auto pool = makePool(smallLayout(4), 2);
  SequenceId parent, child;
  ASSERT_RT_OK(pool->createSequence(parent));
  ASSERT_RT_OK(pool->appendTokens(parent, 6));
  ASSERT_RT_OK(pool->fork(parent, child));
  expectFailsUnchanged(*pool, {parent, child}, StatusCode::OutOfPages,
                       [&] { return pool->appendTokens(child, 1); });
}

// Truncating a child into a shared page and freeing the parent keep the
// accounting exact (fill of a shared page is the largest holder's).
TEST(CachePoolTest, SharedPageAccountingAfterTruncateAndFree) {
  auto pool = makePool(smallLayout(4), 8);
  SequenceId parent, child;
  ASSERT_RT_OK(pool->createSequence(parent));
  ASSERT_RT_OK(pool->appendTokens(parent, 7));
  ASSERT_RT_OK(pool->fork(parent, child));
  ASSERT_RT_OK(pool->truncate(child, 2));
  EXPECT_EQ(pool->stats().usedTokenSlots, 7u);
  ASSERT_RT_OK(pool->freeSequence(parent));
  PoolStats s = pool->stats();
  EXPECT_EQ(s.usedPages, 1u);
  EXPECT_EQ(s.usedTokenSlots, 2u);
  EXPECT_EQ(s.bytesInUse, 2.0 * 32);
}

TEST(CachePoolTest, MakeWritableCopiesOnlySharedPagesInRange) {
  auto pool = makePool(smallLayout(4), 8);
  SequenceId parent, child;
  ASSERT_RT_OK(pool->createSequence(parent));
  ASSERT_RT_OK(pool->appendTokens(parent, 12));
  for (uint32_t t = 0; t < 12; ++t)
    writeKey(*pool, parent, t, uint8_t(t));
  ASSERT_RT_OK(pool->fork(parent, child));
  ASSERT_RT_OK(pool->makeWritable(child, 5, 2)); // page 1 only
  std::vector<int32_t> pt, ct;
  ASSERT_RT_OK(pool->blockTable(parent, pt));
  ASSERT_RT_OK(pool->blockTable(child, ct));
  EXPECT_EQ(pt[0], ct[0]);
  EXPECT_NE(pt[1], ct[1]);
  EXPECT_EQ(pt[2], ct[2]);
  writeKey(*pool, child, 5, 200);
  EXPECT_EQ(readKey(*pool, parent, 5), 5);
  EXPECT_EQ(readKey(*pool, child, 4), 4);
  EXPECT_EQ(readKey(*pool, child, 5), 200);
  ASSERT_RT_OK(pool->makeWritable(child, 4, 4)); // already private: no-op
  EXPECT_EQ(pool->stats().usedPages, 4u);
  ASSERT_RT_OK(pool->makeWritable(child, 0, 0));
  EXPECT_EQ(pool->stats().usedTokenSlots, 16u); // the copy holds 4 tokens
  // Freeing the parent leaves the child's copies and shared pages intact.
  ASSERT_RT_OK(pool->freeSequence(parent));
  EXPECT_EQ(pool->stats().usedPages, 3u);
  EXPECT_EQ(readKey(*pool, child, 11), 11);
}

TEST(CachePoolTest, MakeWritableErrorsLeavePoolUnchanged) {
  auto pool = makePool(smallLayout(4), 4);
  SequenceId parent, child;
  ASSERT_RT_OK(pool->createSequence(parent));
  ASSERT_RT_OK(pool->appendTokens(parent, 12));
  ASSERT_RT_OK(pool->fork(parent, child));
  expectFailsUnchanged(*pool, {parent, child}, StatusCode::InvalidArgument,
                       [&] { return pool->makeWritable(child, 10, 3); });
  expectFailsUnchanged(*pool, {parent, child}, StatusCode::OutOfPages, [&] {
    return pool->makeWritable(child, 0, 12); // 3 copies, 1 free page
  });
}

TEST(CachePoolTest, BlockTablesBatchIsCsr) {
  auto pool = makePool(smallLayout(4), 16);
  SequenceId a, b, c;
  ASSERT_RT_OK(pool->createSequence(a));
  ASSERT_RT_OK(pool->createSequence(b));
  ASSERT_RT_OK(pool->createSequence(c));
  ASSERT_RT_OK(pool->appendTokens(a, 5)); // pages 0, 1
  ASSERT_RT_OK(pool->appendTokens(b, 4)); // page 2
  ASSERT_RT_OK(pool->appendTokens(a, 4)); // page 3
  SequenceId ids[] = {a, c, b, a};
  BlockTableBatch batch;
  ASSERT_RT_OK(pool->blockTables(ids, 4, batch));
  EXPECT_EQ(batch.offsets, (std::vector<int32_t>{0, 3, 3, 4, 7}));
  EXPECT_EQ(batch.pageIds, (std::vector<int32_t>{0, 1, 3, 2, 0, 1, 3}));
  EXPECT_EQ(batch.seqLens, (std::vector<int32_t>{9, 0, 4, 9}));
  BlockTableBatch empty;
  ASSERT_RT_OK(pool->blockTables(nullptr, 0, empty));
  EXPECT_EQ(empty.offsets, std::vector<int32_t>{0});

  // Caller buffers: size query, too small, then exact.
  size_t needed = 0;
  ASSERT_RT_OK(
      pool->writeBlockTables(ids, 4, nullptr, 0, nullptr, nullptr, needed));
  EXPECT_EQ(needed, 7u);
  std::vector<int32_t> pages(7, -1), offsets(5, -1), lens(4, -1);
  Status s = pool->writeBlockTables(ids, 4, pages.data(), 6, offsets.data(),
                                    lens.data(), needed);
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(pages, std::vector<int32_t>(7, -1));
  ASSERT_RT_OK(pool->writeBlockTables(ids, 4, pages.data(), 7, offsets.data(),
                                      lens.data(), needed));
  EXPECT_EQ(pages, batch.pageIds);
  EXPECT_EQ(offsets, batch.offsets);
  EXPECT_EQ(lens, batch.seqLens);
  SequenceId bad[] = {a, 999};
  EXPECT_EQ(pool->blockTables(bad, 2, batch).code(),
            StatusCode::UnknownSequence);
  EXPECT_EQ(
      pool->writeBlockTables(nullptr, 2, nullptr, 0, nullptr, nullptr, needed)
          .code(),
      StatusCode::InvalidArgument);
}

// Slot addresses follow the page layout of docs/CacheLayout.md across
// caches, components and scale axes.
TEST(CachePoolTest, SlotAddressesFollowPageLayout) {
  CacheLayout l = quantizedLayout();
  auto pool = makePool(l, 4);
  ASSERT_EQ(pool->numCaches(), 2u);
  ASSERT_EQ(pool->cachePageBytes(), l.pageBytes());
  SequenceId id;
  ASSERT_RT_OK(pool->createSequence(id));
  ASSERT_RT_OK(pool->appendTokens(id, 7));
  std::vector<int32_t> table;
  ASSERT_RT_OK(pool->blockTable(id, table));
  ComponentPageLayout kp = componentPageLayout(l, Component::Key);
  ComponentPageLayout vp = componentPageLayout(l, Component::Value);
  SlotAddress slot;
  ASSERT_RT_OK(pool->slotAddress(id, 5, 1, Component::Key, slot));
  DeviceAddress page = pool->pageAddress(1, table[1]);
  EXPECT_EQ(page, pool->pageAddress(0, 0) +
                      (uint64_t(1) * 4 + table[1]) * l.pageBytes());
  EXPECT_EQ(slot.data, page + 1 * kp.dataRowBytes);
  EXPECT_EQ(slot.dataBytes, 4u);
  EXPECT_EQ(slot.scales, page + kp.scaleOffset); // token 1 is in group 0
  EXPECT_EQ(slot.zeros, page + kp.zeroOffset);
  EXPECT_EQ(slot.scaleBytes, 16u);
  ASSERT_RT_OK(pool->slotAddress(id, 6, 0, Component::Value, slot));
  page = pool->pageAddress(0, table[1]);
  EXPECT_EQ(slot.data, page + vp.dataOffset + 2 * 8);
  EXPECT_EQ(slot.scales, page + vp.scaleOffset + 2 * vp.scaleRowBytes);
  EXPECT_EQ(slot.zeros, 0u); // symmetric
  ASSERT_RT_OK(pool->slotAddress(id, 3, 0, Component::Key, slot));
  EXPECT_EQ(slot.scales, pool->pageAddress(0, table[0]) + kp.scaleOffset +
                             kp.scaleRowBytes); // token 3: group 1

  EXPECT_EQ(pool->slotAddress(id, 7, 0, Component::Key, slot).code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ(pool->slotAddress(id, 0, 2, Component::Key, slot).code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ(pool->pageAddress(2, 0), 0u);
  EXPECT_EQ(pool->pageAddress(0, 4), 0u);
  EXPECT_EQ(pool->pageAddress(0, -1), 0u);
  EXPECT_EQ(pool->refCount(-1), 0u);
}

TEST(CachePoolTest, LatentCacheHasOnlyKey) {
  CacheLayout l;
  l.kind = CacheKind::Latent;
  l.latentDim = 6;
  l.ropeDim = 2;
  l.element = ElementType::BF16;
  l.pageSize = 2;
  l.layerToCache = {0};
  auto pool = makePool(l, 2);
  SequenceId id;
  ASSERT_RT_OK(pool->createSequence(id));
  ASSERT_RT_OK(pool->appendTokens(id, 3));
  SlotAddress slot;
  ASSERT_RT_OK(pool->slotAddress(id, 2, 0, Component::Key, slot));
  EXPECT_EQ(slot.dataBytes, 16u);
  Status s = pool->slotAddress(id, 0, 0, Component::Value, slot);
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_NE(s.message().find("latent"), std::string::npos);
}

/// A layout whose K keeps 1 sink + 2 recent tokens in full precision.
CacheLayout windowLayout() {
  CacheLayout l = smallLayout(4);
  l.key = QuantEncoding{
      QuantKind::Int8, QuantAxis::Token, 0, true, ElementType::F32, 2, 1};
  return l;
}

TEST(CachePoolTest, WindowSlotsAreAccountedAndCopiedOnFork) {
  CacheLayout l = windowLayout();
  auto pool = makePool(l, 8, 2);
  PoolStats s = pool->stats();
  EXPECT_EQ(s.fixedBytesPerSequence, 3u * 8 * 2);
  SequenceId a, b;
  ASSERT_RT_OK(pool->createSequence(a));
  DeviceAddress wa;
  uint64_t bytes;
  ASSERT_RT_OK(pool->windowAddress(a, 0, Component::Key, wa, bytes));
  EXPECT_EQ(bytes, 48u);
  std::memset(host(wa), 7, bytes);
  EXPECT_EQ(pool->windowAddress(a, 0, Component::Value, wa, bytes).code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ(pool->windowAddress(a, 1, Component::Key, wa, bytes).code(),
            StatusCode::InvalidArgument);
  ASSERT_RT_OK(pool->fork(a, b));
  DeviceAddress wb;
  ASSERT_RT_OK(pool->windowAddress(b, 0, Component::Key, wb, bytes));
  ASSERT_RT_OK(pool->windowAddress(a, 0, Component::Key, wa, bytes));
  EXPECT_NE(wa, wb);
  EXPECT_EQ(std::memcmp(host(wa), host(wb), bytes), 0);
  s = pool->stats();
  EXPECT_EQ(s.bytesReserved, 2u * 48);
  EXPECT_EQ(s.bytesInUse, 2.0 * 48);
  ASSERT_RT_OK(pool->freeSequence(a));
  EXPECT_EQ(pool->stats().bytesReserved, 48u);
}

TEST(CachePoolTest, WindowSlotExhaustionLeavesPoolUnchanged) {
  auto pool = makePool(windowLayout(), 8, 1);
  SequenceId a, b = 0;
  ASSERT_RT_OK(pool->createSequence(a));
  ASSERT_RT_OK(pool->appendTokens(a, 3));
  std::string m = expectFailsUnchanged(*pool, {a}, StatusCode::OutOfPages,
                                       [&] { return pool->createSequence(b); });
  EXPECT_NE(m.find("window slots"), std::string::npos);
  expectFailsUnchanged(*pool, {a}, StatusCode::OutOfPages,
                       [&] { return pool->fork(a, b); });
  // The failed calls consumed no id: the next one is a + 1 after a free.
  ASSERT_RT_OK(pool->freeSequence(a));
  ASSERT_RT_OK(pool->createSequence(b));
  EXPECT_EQ(b, a + 1);
}

/// Host memory whose device copies fail on request.
class FlakyMemory final : public MemoryBackend {
public:
  explicit FlakyMemory(bool *failCopies, bool failAllocate = false)
      : host_(createHostMemory()), failCopies_(failCopies),
        failAllocate_(failAllocate) {}
  const char *name() const override { return "flaky"; }
  bool hostAccessible() const override { return true; }
  Status allocate(uint64_t bytes, DeviceAddress &address) override {
    if (failAllocate_)
      return Status::error(StatusCode::OutOfMemory, "flaky: no memory");
    return host_->allocate(bytes, address);
  }
  void release(DeviceAddress address) override { host_->release(address); }
  Status copy(DeviceAddress dst, DeviceAddress src, uint64_t bytes) override {
    if (*failCopies_)
      return Status::error(StatusCode::DriverError, "flaky: copy failed");
    return host_->copy(dst, src, bytes);
  }
  Status copyToHost(void *dst, DeviceAddress src, uint64_t bytes) override {
    return host_->copyToHost(dst, src, bytes);
  }
  Status copyFromHost(DeviceAddress dst, const void *src,
                      uint64_t bytes) override {
    return host_->copyFromHost(dst, src, bytes);
  }

private:
  std::unique_ptr<MemoryBackend> host_;
  bool *failCopies_;
  bool failAllocate_;
};

// A failing device copy during copy-on-write aborts the whole operation.
TEST(CachePoolTest, FailedCopyLeavesPoolUnchanged) {
  bool fail = false;
  std::unique_ptr<CachePool> pool;
  PoolOptions o;
  o.numPages = 8;
  o.maxSequences = 4;
  ASSERT_RT_OK(CachePool::create(windowLayout(), o,
                                 std::make_unique<FlakyMemory>(&fail), pool));
  SequenceId parent, child;
  ASSERT_RT_OK(pool->createSequence(parent));
  ASSERT_RT_OK(pool->appendTokens(parent, 6));
  ASSERT_RT_OK(pool->fork(parent, child));
  fail = true;
  std::vector<SequenceId> ids = {parent, child};
  expectFailsUnchanged(*pool, ids, StatusCode::DriverError,
                       [&] { return pool->appendTokens(child, 1); });
  expectFailsUnchanged(*pool, ids, StatusCode::DriverError,
                       [&] { return pool->makeWritable(child, 0, 6); });
  SequenceId other = 0;
  expectFailsUnchanged(*pool, ids, StatusCode::DriverError,
                       [&] { return pool->fork(parent, other); });
  fail = false;
  ASSERT_RT_OK(pool->appendTokens(child, 1));
}

TEST(CachePoolTest, FailedArenaAllocationIsReported) {
  bool fail = false;
  std::unique_ptr<CachePool> pool;
  PoolOptions o;
  o.numPages = 8;
  Status s = CachePool::create(
      smallLayout(), o, std::make_unique<FlakyMemory>(&fail, true), pool);
  EXPECT_EQ(s.code(), StatusCode::OutOfMemory);
  EXPECT_EQ(pool, nullptr);
}

// Concurrent callers on disjoint sequences (plus forks of a shared parent)
// leave consistent accounting; run under ASan/TSan-free builds too.
TEST(CachePoolTest, ConcurrentUseIsSafe) {
  auto pool = makePool(smallLayout(4), 4096);
  SequenceId root;
  ASSERT_RT_OK(pool->createSequence(root));
  ASSERT_RT_OK(pool->appendTokens(root, 10));
  std::atomic<int> failures{0};
  auto worker = [&](int seed) {
    for (int i = 0; i < 200; ++i) {
      SequenceId id;
      if (!(i % 3 ? pool->createSequence(id) : pool->fork(root, id)).isOk()) {
        ++failures;
        continue;
      }
      for (int k = 0; k < 5; ++k)
        failures +=
            !pool->appendTokens(id, uint32_t(1 + (seed + k) % 7)).isOk();
      failures += !pool->truncate(id, 3).isOk();
      PoolStats s = pool->stats();
      failures += s.usedPages + s.freePages != s.totalPages;
      failures += !pool->freeSequence(id).isOk();
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back(worker, t);
  for (auto &t : threads)
    t.join();
  EXPECT_EQ(failures.load(), 0);
  PoolStats s = pool->stats();
  EXPECT_EQ(s.liveSequences, 1u);
  EXPECT_EQ(s.usedPages, 3u);
  EXPECT_EQ(pool->refCount(0), 1u);
}

} // namespace
