//===- cache_pool.h - Paged KV cache pool with block tables -------*- C++
//-*-===//
//
// The cache pool owns the KV memory of a model the way a serving engine's
// block manager does: fixed-size pages handed out on demand, per-sequence
// block tables, prefix sharing across forked sequences by reference count,
// copy-on-write of shared pages, and exact byte accounting.
//
// Page slot `p` holds one page of every cache (layers that share a cache use
// the same one), so a sequence has a single block table for all layers. The
// bytes of page `p` of cache `c` start at pageAddress(c, p); their internal
// order is docs/CacheLayout.md's.
//
// Thread model: every public method takes the pool's mutex, so any number of
// threads may call the pool concurrently; each call is atomic and either
// completes or returns an error with no change. Data written through slot
// addresses is not synchronized by the pool: a thread writing a sequence's
// token data must not race with calls that move that sequence's pages
// (appendTokens, makeWritable, truncate, freeSequence of that sequence).
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_RUNTIME_CACHE_POOL_H
#define KVOPT_RUNTIME_CACHE_POOL_H

#include "kvopt/runtime/layout.h"
#include "kvopt/runtime/memory.h"
#include "kvopt/runtime/status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace kvopt {
namespace rt {

/// Sequence handle. Ids are never reused, so a freed id stays recognizable.
using SequenceId = uint64_t;

/// Sizing of a pool.
struct PoolOptions {
  /// Page slots; each holds one page of every cache. Page ids are int32.
  uint32_t numPages = 0;
  /// Full-precision window slots (one per live sequence). Only used, and
  /// then required, when the layout has `recent` or `sinks` tokens.
  uint32_t maxSequences = 0;
};

/// A consistent snapshot of the pool's accounting.
struct PoolStats {
  uint32_t totalPages = 0;
  uint32_t freePages = 0;
  uint32_t usedPages = 0; ///< pages with reference count > 0
  uint32_t liveSequences = 0;
  uint64_t usedTokenSlots = 0; ///< page slots holding a live sequence's token
  uint64_t pageBytes = 0;      ///< bytes of one page slot (all caches)
  uint64_t bytesCapacity = 0;  ///< bytes of the whole arena
  uint64_t bytesReserved = 0;  ///< usedPages * pageBytes + live windows
  double bytesInUse = 0;       ///< usedTokenSlots * bytesPerToken + windows
  double bytesPerToken = 0;    ///< model level; CacheLayout::bytesPerToken()
  uint64_t fixedBytesPerSequence = 0; ///< full-precision windows, all caches
};

/// Where the bytes of one token of one component of one cache live.
struct SlotAddress {
  DeviceAddress data = 0; ///< [dataBytes] the token's packed row
  uint64_t dataBytes = 0;
  DeviceAddress scales = 0; ///< [scaleBytes] the scale row covering the
                            ///< token (0 when full precision)
  DeviceAddress zeros = 0;  ///< [scaleBytes] zero points (0 when symmetric)
  uint64_t scaleBytes = 0;
};

/// Block tables of a batch of sequences in the form kernels consume.
struct BlockTableBatch {
  std::vector<int32_t> pageIds; ///< [offsets[batch]] page ids, per sequence
  std::vector<int32_t> offsets; ///< [batch + 1] CSR offsets into pageIds
  std::vector<int32_t> seqLens; ///< [batch] tokens per sequence
};

/// A paged KV cache pool. Create with CachePool::create.
class CachePool {
public:
  /// Builds a pool for a paged, valid `layout` on `memory`. Errors:
  /// InvalidArgument (layout or options), OutOfMemory (arena).
  static Status create(const CacheLayout &layout, const PoolOptions &options,
                       std::unique_ptr<MemoryBackend> memory,
                       std::unique_ptr<CachePool> &out);
  ~CachePool();
  CachePool(const CachePool &) = delete;
  CachePool &operator=(const CachePool &) = delete;

  /// Creates an empty sequence. OutOfPages when no window slot is free.
  Status createSequence(SequenceId &out);
  /// Appends `count` token slots, allocating pages on demand. If the last
  /// page is partial and shared, it is copied first (copy-on-write), so the
  /// appended slots are always exclusively owned and may be written.
  Status appendTokens(SequenceId id, uint32_t count);
  /// Shortens the sequence to `length` tokens, releasing whole pages.
  Status truncate(SequenceId id, uint32_t length);
  /// Releases the sequence's pages and window slot; the id becomes invalid.
  Status freeSequence(SequenceId id);
  /// Creates a child with the parent's tokens: all pages are shared by
  /// reference count; a shared partial page is copied on the first write.
  /// The child's full-precision windows are copied from the parent's.
  Status fork(SequenceId parent, SequenceId &child);
  /// Copies every shared page that holds a token of [first, first + count),
  /// so those tokens may be rewritten without affecting other sequences.
  Status makeWritable(SequenceId id, uint32_t first, uint32_t count);

  Status length(SequenceId id, uint32_t &out) const;
  /// The sequence's page ids, one per ceil(length / page_size).
  Status blockTable(SequenceId id, std::vector<int32_t> &out) const;
  /// Block tables of `count` sequences (ids may repeat). Cost is one copy
  /// per page, nothing per token.
  Status blockTables(const SequenceId *ids, size_t count,
                     BlockTableBatch &out) const;
  /// The same into caller buffers: `pageIds` [capacity], `offsets`
  /// [count + 1], `seqLens` [count]. `needed` receives the number of page
  /// ids; with pageIds == nullptr only `needed` is computed. InvalidArgument
  /// if capacity < needed.
  Status writeBlockTables(const SequenceId *ids, size_t count, int32_t *pageIds,
                          size_t capacity, int32_t *offsets, int32_t *seqLens,
                          size_t &needed) const;

  /// Address of token `token` of component `component` in cache `cache`.
  Status slotAddress(SequenceId id, uint32_t token, uint32_t cache,
                     Component component, SlotAddress &out) const;
  /// Full-precision window storage of a quantized component:
  /// [sinks + recent][row width] elements of the layout's element type.
  Status windowAddress(SequenceId id, uint32_t cache, Component component,
                       DeviceAddress &out, uint64_t &bytes) const;
  /// First byte of page `page` of cache `cache` (no bounds check beyond
  /// returning 0 for out-of-range arguments).
  DeviceAddress pageAddress(uint32_t cache, int32_t page) const;
  /// Reference count of a page slot (0 = free).
  uint32_t refCount(int32_t page) const;

  PoolStats stats() const;
  const CacheLayout &layout() const { return layout_; }
  uint32_t numCaches() const { return numCaches_; }
  /// Bytes of one page of one cache.
  uint64_t cachePageBytes() const { return pageBytes_; }
  MemoryBackend &memory() const { return *memory_; }

private:
  struct Sequence {
    std::vector<int32_t> pages; ///< [ceil(length / page_size)] page ids
    uint32_t length = 0;
    int32_t window = -1; ///< window slot, -1 if the layout has none
  };

  CachePool() = default;
  /// Finds live sequence `id`, or returns Unknown/FreedSequence naming `op`.
  Status lookup(SequenceId id, const char *op, Sequence *&out) const;
  /// Adds `delta` to the non-last reference of pages [begin, size - 1).
  void markNonLast(const Sequence &s, size_t begin, int delta);
  /// Drops one reference of `page`, returning it to the free list at zero.
  void unref(int32_t page);
  /// Copies page `src` to page `dst` in every cache.
  Status copyPage(int32_t dst, int32_t src);
  DeviceAddress windowBase(int32_t window) const;
  /// InvalidArgument unless `cache` and `component` exist in the layout.
  Status checkCacheComponent(const char *op, uint32_t cache,
                             Component component) const;
  /// writeBlockTables with the mutex already held.
  Status writeBlockTablesLocked(const SequenceId *ids, size_t count,
                                int32_t *pageIds, size_t capacity,
                                int32_t *offsets, int32_t *seqLens,
                                size_t &needed) const;

  mutable std::mutex mutex_;
  CacheLayout layout_;
  std::unique_ptr<MemoryBackend> memory_;
  DeviceAddress arena_ = 0;
  uint64_t arenaBytes_ = 0;
  uint64_t pageBytes_ = 0; ///< one cache
  uint32_t pageSize_ = 0;
  uint32_t numPages_ = 0;
  uint32_t numCaches_ = 0;
  uint64_t windowBytes_ = 0;        ///< one window slot (all caches)
  uint32_t numWindows_ = 0;         ///< window slots in the arena
  std::vector<uint32_t> refCounts_; ///< [numPages]
  /// [numPages] sequences holding the page at a position other than last;
  /// such a page is full, which makes usedTokenSlots cheap to compute.
  std::vector<uint32_t> nonLastRefs_;
  uint32_t pagesWithNonLastRef_ = 0;
  std::vector<int32_t> freePages_;   ///< stack of free page ids
  std::vector<int32_t> freeWindows_; ///< stack of free window slots
  std::unordered_map<SequenceId, Sequence> sequences_;
  SequenceId nextId_ = 1;
  mutable std::vector<uint32_t> scratchFill_; ///< [numPages] stats() scratch
};

} // namespace rt
} // namespace kvopt

#endif // KVOPT_RUNTIME_CACHE_POOL_H
