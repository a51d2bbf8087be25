//===- cache_pool.cc - Paged KV cache pool with block tables --------------===//
//
// Every mutating operation first checks everything that can fail (ids,
// ranges, free pages, device copies into not-yet-taken pages) and only then
// commits, so an error leaves the pool exactly as it was.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/cache_pool.h"

#include <algorithm>
#include <limits>
#include <string>

namespace kvopt {
namespace rt {

/// Longest sequence in tokens; keeps page counts and offsets within int32.
static constexpr uint32_t kMaxSequenceTokens =
    uint32_t(std::numeric_limits<int32_t>::max());

static uint64_t ceilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

static std::string seqName(SequenceId id) {
  return "sequence " + std::to_string(id);
}

Status CachePool::create(const CacheLayout &layout, const PoolOptions &options,
                         std::unique_ptr<MemoryBackend> memory,
                         std::unique_ptr<CachePool> &out) {
  KVOPT_RT_RETURN_IF_ERROR(layout.validate());
  auto invalid = [](const std::string &m) {
    return Status::error(StatusCode::InvalidArgument, "cache pool: " + m);
  };
  if (layout.layout != StorageLayout::Paged)
    return invalid("the layout must be paged");
  if (!memory)
    return invalid("no memory backend");
  if (options.numPages == 0 ||
      options.numPages > uint32_t(std::numeric_limits<int32_t>::max()))
    return invalid("numPages must be in 1..2^31-1");
  std::unique_ptr<CachePool> pool(new CachePool());
  pool->layout_ = layout;
  pool->pageSize_ = layout.pageSize;
  pool->pageBytes_ = layout.pageBytes();
  pool->numPages_ = options.numPages;
  pool->numCaches_ = layout.numCaches();
  pool->windowBytes_ = layout.fixedBytesPerSequence();
  uint32_t windows = 0;
  if (pool->windowBytes_ > 0) {
    if (options.maxSequences == 0)
      return invalid("the layout keeps full-precision windows (recent/sinks); "
                     "maxSequences must be >= 1");
    windows = std::min<uint32_t>(options.maxSequences,
                                 std::numeric_limits<int32_t>::max());
  }
  // Arena: [cache][page][pageBytes], then [window][windowBytes].
  long double bytes =
      (long double)pool->pageBytes_ * pool->numCaches_ * pool->numPages_ +
      (long double)pool->windowBytes_ * windows;
  if (bytes > (long double)(uint64_t(1) << 50))
    return invalid("arena of " + std::to_string((double)bytes) +
                   " bytes is too large");
  pool->arenaBytes_ = pool->pageBytes_ * pool->numCaches_ * pool->numPages_ +
                      pool->windowBytes_ * windows;
  // The arena first: if it fails, nothing else was built. From here on the
  // destructor releases it, even if a vector below throws.
  pool->memory_ = std::move(memory);
  KVOPT_RT_RETURN_IF_ERROR(
      pool->memory_->allocate(pool->arenaBytes_, pool->arena_));
  pool->refCounts_.assign(pool->numPages_, 0);
  pool->nonLastRefs_.assign(pool->numPages_, 0);
  pool->scratchFill_.assign(pool->numPages_, 0);
  // Free stacks pop from the back: hand out low ids first.
  pool->freePages_.resize(pool->numPages_);
  for (uint32_t i = 0; i < pool->numPages_; ++i)
    pool->freePages_[i] = int32_t(pool->numPages_ - 1 - i);
  pool->numWindows_ = windows;
  pool->freeWindows_.resize(windows);
  for (uint32_t i = 0; i < windows; ++i)
    pool->freeWindows_[i] = int32_t(windows - 1 - i);
  out = std::move(pool);
  return Status::ok();
}

CachePool::~CachePool() {
  if (memory_ && arena_)
    memory_->release(arena_);
}

Status CachePool::lookup(SequenceId id, const char *op, Sequence *&out) const {
  auto it = sequences_.find(id);
  if (it != sequences_.end()) {
    out = const_cast<Sequence *>(&it->second);
    return Status::ok();
  }
  if (id != 0 && id < nextId_)
    return Status::error(StatusCode::FreedSequence, std::string(op) + ": " +
                                                        seqName(id) +
                                                        " was already freed");
  return Status::error(StatusCode::UnknownSequence,
                       std::string(op) + ": unknown sequence id " +
                           std::to_string(id));
}

void CachePool::markNonLast(const Sequence &s, size_t begin, int delta) {
  for (size_t i = begin; i + 1 < s.pages.size(); ++i) {
    uint32_t &n = nonLastRefs_[s.pages[i]];
    if (delta > 0 && n++ == 0)
      ++pagesWithNonLastRef_;
    else if (delta < 0 && --n == 0)
      --pagesWithNonLastRef_;
  }
}

void CachePool::unref(int32_t page) {
  if (--refCounts_[page] == 0)
    freePages_.push_back(page);
}

DeviceAddress CachePool::pageAddress(uint32_t cache, int32_t page) const {
  if (cache >= numCaches_ || page < 0 || uint32_t(page) >= numPages_)
    return 0;
  return arena_ + (uint64_t(cache) * numPages_ + uint64_t(page)) * pageBytes_;
}

DeviceAddress CachePool::windowBase(int32_t window) const {
  return arena_ + pageBytes_ * numCaches_ * numPages_ +
         windowBytes_ * uint64_t(window);
}

Status CachePool::copyPage(int32_t dst, int32_t src) {
  for (uint32_t c = 0; c < numCaches_; ++c)
    KVOPT_RT_RETURN_IF_ERROR(
        memory_->copy(pageAddress(c, dst), pageAddress(c, src), pageBytes_));
  return Status::ok();
}

Status CachePool::createSequence(SequenceId &out) {
  std::lock_guard<std::mutex> lock(mutex_);
  bool needsWindow = windowBytes_ > 0;
  if (needsWindow && freeWindows_.empty())
    return Status::error(StatusCode::OutOfPages,
                         "create: all " + std::to_string(numWindows_) +
                             " full-precision window slots are in use");
  Sequence s;
  if (needsWindow)
    s.window = freeWindows_.back();
  SequenceId id = nextId_;
  sequences_.emplace(id, std::move(s)); // may throw before any change
  if (needsWindow)
    freeWindows_.pop_back();
  ++nextId_;
  out = id;
  return Status::ok();
}

Status CachePool::appendTokens(SequenceId id, uint32_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  Sequence *s = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(lookup(id, "append", s));
  if (count == 0)
    return Status::ok();
  if (uint64_t(s->length) + count > kMaxSequenceTokens)
    return Status::error(StatusCode::InvalidArgument,
                         "append: " + seqName(id) + " would exceed " +
                             std::to_string(kMaxSequenceTokens) + " tokens");
  uint32_t newLength = s->length + count;
  size_t oldPages = s->pages.size();
  size_t newPages = ceilDiv(newLength, pageSize_);
  // Writing into a shared, partially filled last page needs a private copy.
  bool copyLast = s->length % pageSize_ != 0 && refCounts_[s->pages.back()] > 1;
  size_t needed = (newPages - oldPages) + (copyLast ? 1 : 0);
  if (needed > freePages_.size())
    return Status::error(StatusCode::OutOfPages,
                         "append: " + seqName(id) + " needs " +
                             std::to_string(needed) + " more pages, " +
                             std::to_string(freePages_.size()) + " free");
  s->pages.reserve(newPages);
  if (copyLast) // Copy into the page we will take, without taking it yet.
    KVOPT_RT_RETURN_IF_ERROR(copyPage(freePages_.back(), s->pages.back()));

  size_t markFrom = oldPages ? oldPages - 1 : 0;
  markNonLast(*s, markFrom, -1);
  if (copyLast) {
    int32_t page = freePages_.back();
    freePages_.pop_back();
    refCounts_[page] = 1;
    unref(s->pages.back());
    s->pages.back() = page;
  }
  while (s->pages.size() < newPages) {
    int32_t page = freePages_.back();
    freePages_.pop_back();
    refCounts_[page] = 1;
    s->pages.push_back(page);
  }
  s->length = newLength;
  markNonLast(*s, markFrom, +1);
  return Status::ok();
}

Status CachePool::truncate(SequenceId id, uint32_t length) {
  std::lock_guard<std::mutex> lock(mutex_);
  Sequence *s = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(lookup(id, "truncate", s));
  if (length > s->length)
    return Status::error(
        StatusCode::InvalidArgument,
        "truncate: " + seqName(id) + " has " + std::to_string(s->length) +
            " tokens, cannot truncate to " + std::to_string(length));
  size_t newPages = ceilDiv(length, pageSize_);
  size_t markFrom = newPages ? newPages - 1 : 0;
  markNonLast(*s, markFrom, -1);
  for (size_t i = newPages; i < s->pages.size(); ++i)
    unref(s->pages[i]);
  s->pages.resize(newPages);
  s->length = length;
  markNonLast(*s, markFrom, +1);
  return Status::ok();
}

Status CachePool::freeSequence(SequenceId id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Sequence *s = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(lookup(id, "free", s));
  markNonLast(*s, 0, -1);
  for (int32_t page : s->pages)
    unref(page);
  if (s->window >= 0)
    freeWindows_.push_back(s->window);
  sequences_.erase(id);
  return Status::ok();
}

Status CachePool::fork(SequenceId parent, SequenceId &child) {
  std::lock_guard<std::mutex> lock(mutex_);
  Sequence *p = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(lookup(parent, "fork", p));
  bool needsWindow = windowBytes_ > 0;
  if (needsWindow && freeWindows_.empty())
    return Status::error(StatusCode::OutOfPages,
                         "fork: all " + std::to_string(numWindows_) +
                             " full-precision window slots are in use");
  Sequence c;
  c.pages = p->pages; // may throw before any change
  c.length = p->length;
  if (needsWindow) {
    c.window = freeWindows_.back();
    KVOPT_RT_RETURN_IF_ERROR(memory_->copy(
        windowBase(c.window), windowBase(p->window), windowBytes_));
  }
  SequenceId id = nextId_;
  auto it = sequences_.emplace(id, std::move(c)).first;
  if (needsWindow)
    freeWindows_.pop_back();
  ++nextId_;
  for (int32_t page : it->second.pages)
    ++refCounts_[page];
  markNonLast(it->second, 0, +1);
  child = id;
  return Status::ok();
}

Status CachePool::makeWritable(SequenceId id, uint32_t first, uint32_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  Sequence *s = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(lookup(id, "make writable", s));
  if (uint64_t(first) + count > s->length)
    return Status::error(StatusCode::InvalidArgument,
                         "make writable: tokens [" + std::to_string(first) +
                             ", " + std::to_string(uint64_t(first) + count) +
                             ") are outside " + seqName(id) + " of length " +
                             std::to_string(s->length));
  if (count == 0)
    return Status::ok();
  size_t begin = first / pageSize_,
         end = ceilDiv(uint64_t(first) + count, pageSize_);
  std::vector<size_t> shared;
  for (size_t i = begin; i < end; ++i)
    if (refCounts_[s->pages[i]] > 1)
      shared.push_back(i);
  if (shared.size() > freePages_.size())
    return Status::error(StatusCode::OutOfPages,
                         "make writable: " + seqName(id) + " needs " +
                             std::to_string(shared.size()) + " pages, " +
                             std::to_string(freePages_.size()) + " free");
  // Copy into the pages we will take (top of the free stack) first.
  for (size_t k = 0; k < shared.size(); ++k)
    KVOPT_RT_RETURN_IF_ERROR(
        copyPage(freePages_[freePages_.size() - 1 - k], s->pages[shared[k]]));
  for (size_t i : shared) {
    int32_t page = freePages_.back();
    freePages_.pop_back();
    refCounts_[page] = 1;
    // Position in the list is unchanged, so the non-last role moves along.
    if (i + 1 < s->pages.size()) {
      --nonLastRefs_[s->pages[i]];
      if (nonLastRefs_[s->pages[i]] == 0)
        --pagesWithNonLastRef_;
      if (nonLastRefs_[page]++ == 0)
        ++pagesWithNonLastRef_;
    }
    unref(s->pages[i]);
    s->pages[i] = page;
  }
  return Status::ok();
}

Status CachePool::length(SequenceId id, uint32_t &out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Sequence *s = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(lookup(id, "length", s));
  out = s->length;
  return Status::ok();
}

Status CachePool::blockTable(SequenceId id, std::vector<int32_t> &out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Sequence *s = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(lookup(id, "block table", s));
  out = s->pages;
  return Status::ok();
}

Status CachePool::blockTables(const SequenceId *ids, size_t count,
                              BlockTableBatch &out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t needed = 0;
  KVOPT_RT_RETURN_IF_ERROR(
      writeBlockTablesLocked(ids, count, nullptr, 0, nullptr, nullptr, needed));
  out.pageIds.resize(needed);
  out.offsets.resize(count + 1);
  out.seqLens.resize(count);
  return writeBlockTablesLocked(ids, count, out.pageIds.data(), needed,
                                out.offsets.data(), out.seqLens.data(), needed);
}

Status CachePool::writeBlockTables(const SequenceId *ids, size_t count,
                                   int32_t *pageIds, size_t capacity,
                                   int32_t *offsets, int32_t *seqLens,
                                   size_t &needed) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return writeBlockTablesLocked(ids, count, pageIds, capacity, offsets, seqLens,
                                needed);
}

Status CachePool::writeBlockTablesLocked(const SequenceId *ids, size_t count,
                                         int32_t *pageIds, size_t capacity,
                                         int32_t *offsets, int32_t *seqLens,
                                         size_t &needed) const {
  if (count > 0 && !ids)
    return Status::error(StatusCode::InvalidArgument,
                         "block tables: null id array");
  // Pass 1: validate every id and size the output; nothing is written.
  uint64_t total = 0;
  for (size_t i = 0; i < count; ++i) {
    Sequence *s = nullptr;
    KVOPT_RT_RETURN_IF_ERROR(lookup(ids[i], "block tables", s));
    total += s->pages.size();
  }
  if (total > uint64_t(std::numeric_limits<int32_t>::max()))
    return Status::error(StatusCode::InvalidArgument,
                         "block tables: " + std::to_string(total) +
                             " page ids overflow int32 offsets");
  needed = size_t(total);
  if (!pageIds)
    return Status::ok();
  if (capacity < needed || !offsets || !seqLens)
    return Status::error(StatusCode::InvalidArgument,
                         "block tables: need room for " +
                             std::to_string(needed) + " page ids, have " +
                             std::to_string(capacity));
  // Pass 2: one memcpy-like copy per sequence.
  int32_t offset = 0;
  for (size_t i = 0; i < count; ++i) {
    const Sequence &s = sequences_.find(ids[i])->second;
    offsets[i] = offset;
    seqLens[i] = int32_t(s.length);
    std::copy(s.pages.begin(), s.pages.end(), pageIds + offset);
    offset += int32_t(s.pages.size());
  }
  offsets[count] = offset;
  return Status::ok();
}

Status CachePool::slotAddress(SequenceId id, uint32_t token, uint32_t cache,
                              Component component, SlotAddress &out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Sequence *s = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(lookup(id, "slot address", s));
  if (token >= s->length)
    return Status::error(StatusCode::InvalidArgument,
                         "slot address: token " + std::to_string(token) +
                             " is outside " + seqName(id) + " of length " +
                             std::to_string(s->length));
  KVOPT_RT_RETURN_IF_ERROR(
      checkCacheComponent("slot address", cache, component));
  ComponentPageLayout part = componentPageLayout(layout_, component);
  DeviceAddress base = pageAddress(cache, s->pages[token / pageSize_]);
  uint32_t t = token % pageSize_;
  out = SlotAddress();
  out.data = base + part.dataOffset + uint64_t(t) * part.dataRowBytes;
  out.dataBytes = part.dataRowBytes;
  if (part.hasScales) {
    uint64_t row = t / part.tokensPerScaleRow;
    out.scales = base + part.scaleOffset + row * part.scaleRowBytes;
    out.scaleBytes = part.scaleRowBytes;
    if (part.hasZeros)
      out.zeros = base + part.zeroOffset + row * part.scaleRowBytes;
  }
  return Status::ok();
}

Status CachePool::windowAddress(SequenceId id, uint32_t cache,
                                Component component, DeviceAddress &out,
                                uint64_t &bytes) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Sequence *s = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(lookup(id, "window address", s));
  KVOPT_RT_RETURN_IF_ERROR(
      checkCacheComponent("window address", cache, component));
  uint64_t rowBytes = layout_.rowWidth() * elementBytes(layout_.element);
  auto windowRows = [&](Component c) -> uint64_t {
    const std::optional<QuantEncoding> &q = layout_.encoding(c);
    return q ? uint64_t(q->recent) + q->sinks : 0;
  };
  if (windowRows(component) == 0)
    return Status::error(StatusCode::InvalidArgument,
                         "window address: the layout keeps no full-precision "
                         "window for this component");
  // Window slot: [cache][K window][V window].
  uint64_t offset = uint64_t(cache) * layout_.cacheFixedBytesPerSequence();
  if (component == Component::Value)
    offset += windowRows(Component::Key) * rowBytes;
  out = windowBase(s->window) + offset;
  bytes = windowRows(component) * rowBytes;
  return Status::ok();
}

Status CachePool::checkCacheComponent(const char *op, uint32_t cache,
                                      Component component) const {
  if (cache >= numCaches_)
    return Status::error(StatusCode::InvalidArgument,
                         std::string(op) + ": cache " + std::to_string(cache) +
                             " does not exist (" + std::to_string(numCaches_) +
                             " caches)");
  if (unsigned(component) >= layout_.numComponents())
    return Status::error(StatusCode::InvalidArgument,
                         std::string(op) +
                             ": a latent cache has only the key component");
  return Status::ok();
}

uint32_t CachePool::refCount(int32_t page) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (page < 0 || uint32_t(page) >= numPages_)
    return 0;
  return refCounts_[page];
}

PoolStats CachePool::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  PoolStats st;
  st.totalPages = numPages_;
  st.freePages = uint32_t(freePages_.size());
  st.usedPages = numPages_ - st.freePages;
  st.liveSequences = uint32_t(sequences_.size());
  st.pageBytes = pageBytes_ * numCaches_;
  st.bytesCapacity = arenaBytes_;
  st.bytesPerToken = layout_.bytesPerToken();
  st.fixedBytesPerSequence = windowBytes_;
  // A page some sequence holds at a non-last position is full; any other
  // used page is the last page of all its holders and holds the largest of
  // their fill counts.
  uint64_t slots = uint64_t(pagesWithNonLastRef_) * pageSize_;
  std::vector<int32_t> touched;
  touched.reserve(sequences_.size());
  for (const auto &entry : sequences_) {
    const Sequence &s = entry.second;
    if (s.pages.empty() || nonLastRefs_[s.pages.back()] != 0)
      continue;
    uint32_t fill = s.length - uint32_t(s.pages.size() - 1) * pageSize_;
    uint32_t &best = scratchFill_[s.pages.back()];
    if (best == 0)
      touched.push_back(s.pages.back());
    best = std::max(best, fill);
  }
  for (int32_t page : touched) {
    slots += scratchFill_[page];
    scratchFill_[page] = 0;
  }
  uint64_t windows = numWindows_ - freeWindows_.size();
  st.usedTokenSlots = slots;
  st.bytesReserved =
      uint64_t(st.usedPages) * st.pageBytes + windows * windowBytes_;
  st.bytesInUse = double(slots) * double(st.pageBytes) / double(pageSize_) +
                  double(windows * windowBytes_);
  return st;
}

} // namespace rt
} // namespace kvopt
