//===- Memory.cpp - Memory hooks: counters, sectors, races, bounds --------===//
//
// Every load and store of an emulated kernel calls one of these hooks before
// it happens. A hook counts the access, checks its bounds, runs the shared
// memory race detector, and returns the pointer the access must use: the
// original one, or a scratch sink when the access is out of bounds, so that a
// buggy kernel is reported instead of corrupting the host.
//
//===----------------------------------------------------------------------===//

#include "Emulator.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

using namespace kvopt::simt;
using namespace kvopt::simt::detail;

namespace {
/// Absorbs out-of-bounds accesses; large enough for any scalar or vector.
alignas(64) char gSink[4096];
/// Extra room past the shared segment so an access that starts inside and
/// ends outside never touches the host heap before the hook redirects it.
constexpr size_t kSharedSlack = 256;
} // namespace

static void *sink(uint64_t bytes) {
  if (bytes <= sizeof(gSink))
    return gSink;
  static std::vector<char> big;
  if (big.size() < bytes)
    big.resize(bytes);
  return big.data();
}

//===----------------------------------------------------------------------===//
// Shared segment
//===----------------------------------------------------------------------===//

void detail::resetSharedForLaunch() {
  LaunchState &L = *gL;
  size_t bytes = (L.smemBytes + kSharedSlack + 255) / 256 * 256;
  L.smem = static_cast<char *>(aligned_alloc(256, bytes));
  L.shadow.assign(L.smemBytes, Shadow{});
  L.blockEpoch = 1;
}

void detail::resetSharedForBlock() {
  // Poison: uninitialised shared memory reads as NaN / -1, which makes a
  // missing initialisation visible in results.
  memset(gL->smem, 0xFF, gL->smemBytes);
}

extern "C" void *__kv_simt_smem_base(void) { return gL->smem; }

/// Size of shared variable `v` in this launch.
static uint64_t varSize(const kvopt_simt_shared_var &v) {
  return v.size == KVOPT_SIMT_DYNAMIC_SIZE ? gL->dynamicBytes : v.size;
}

/// The variable containing segment offset `off`, or -1.
static int32_t varAt(uint64_t off) {
  const kvopt_simt_kernel &k = *gL->kernel;
  for (uint64_t i = 0; i < k.num_shared_vars; ++i) {
    const kvopt_simt_shared_var &v = k.shared_vars[i];
    if (off >= v.offset && off < v.offset + varSize(v))
      return int32_t(i);
  }
  return -1;
}

/// "`name`[+off]" for a segment offset.
static std::string varRef(uint64_t off) {
  int32_t v = varAt(off);
  if (v < 0)
    return format("shared segment offset %llu", (unsigned long long)off);
  const kvopt_simt_shared_var &var = gL->kernel->shared_vars[v];
  return format("'%s'[+%llu]", var.name,
                (unsigned long long)(off - var.offset));
}

//===----------------------------------------------------------------------===//
// Race detection
//===----------------------------------------------------------------------===//

/// True if an access by `other` at (block epoch, warp epoch) is ordered
/// before the running thread's current access.
static bool ordered(const Thread *t, int32_t other, uint32_t epoch,
                    uint32_t warpEpoch) {
  if (other < 0 || epoch != gL->blockEpoch || uint32_t(other) == t->linear)
    return true;
  const Thread &o = gL->threads[uint32_t(other)];
  return o.warp == t->warp && warpEpoch != gL->warps[t->warp].epoch;
}

static void raceReport(const Thread *t, bool store, uint64_t off, int32_t site,
                       const char *what, int32_t other, int32_t otherSite) {
  std::string who =
      other == kManyReaders
          ? std::string("several threads")
          : format("thread (%u,%u,%u)", gL->threads[uint32_t(other)].tid.x,
                   gL->threads[uint32_t(other)].tid.y,
                   gL->threads[uint32_t(other)].tid.z);
  report(ReportKind::SharedRace, t,
         format("%s %s %s at %s; %s %s it at %s in the same barrier interval",
                describe(t).c_str(), store ? "writes" : "reads",
                varRef(off).c_str(), siteName(site), who.c_str(), what,
                siteName(otherSite)),
         (uint64_t(8) << 60) ^ (uint64_t(uint32_t(site)) << 32) ^
             (uint64_t(store) << 31) ^ uint32_t(otherSite));
}

static void checkRace(const Thread *t, uint64_t off, uint64_t bytes, bool store,
                      int32_t site) {
  LaunchState &L = *gL;
  uint32_t epoch = L.blockEpoch, wepoch = L.warps[t->warp].epoch;
  int32_t me = int32_t(t->linear);
  for (uint64_t i = off, e = std::min<uint64_t>(off + bytes, L.smemBytes);
       i < e; ++i) {
    Shadow &s = L.shadow[i];
    if (!ordered(t, s.writer, s.wEpoch, s.wWarpEpoch)) {
      raceReport(t, store, i, site, "wrote", s.writer, s.wSite);
      s.writer = me; // report each conflict once
      s.wWarpEpoch = wepoch;
    }
    if (!store) {
      bool fresh =
          s.rEpoch != epoch ||
          (s.reader >= 0 && ordered(t, s.reader, s.rEpoch, s.rWarpEpoch)) ||
          (s.reader == kManyReaders && s.rWarp == int32_t(t->warp) &&
           s.rWarpEpoch != wepoch);
      if (fresh) {
        s.reader = me;
        s.rWarp = int32_t(t->warp);
      } else if (s.reader != me) {
        s.reader = kManyReaders;
        if (s.rWarp != int32_t(t->warp))
          s.rWarp = -1;
      }
      s.rEpoch = epoch;
      s.rWarpEpoch = wepoch;
      s.rSite = site;
      continue;
    }
    if (s.rEpoch == epoch && s.reader != me) {
      bool ok = s.reader >= 0
                    ? ordered(t, s.reader, s.rEpoch, s.rWarpEpoch)
                    : (s.rWarp == int32_t(t->warp) && s.rWarpEpoch != wepoch);
      if (!ok)
        raceReport(t, store, i, site, "read", s.reader, s.rSite);
    }
    s.rEpoch = 0;
    s.writer = me;
    s.wEpoch = epoch;
    s.wWarpEpoch = wepoch;
    s.wSite = site;
  }
}

//===----------------------------------------------------------------------===//
// Sector counting
//===----------------------------------------------------------------------===//

/// Adds the running thread's access to the warp-wide instruction it belongs
/// to: the k-th execution of `site` by this lane since the warp converged.
static void recordSectors(const Thread *t, uint64_t addr, uint64_t bytes,
                          int32_t site, bool store) {
  LaunchState &L = *gL;
  if (site < 0 || uint64_t(site) >= L.kernel->num_sites || !bytes)
    return;
  uint32_t k = L.occurrence[size_t(t->linear) * L.kernel->num_sites + site]++;
  WarpState &w = L.warps[t->warp];
  std::vector<SectorInstance> &v = w.sites[size_t(site)];
  if (v.empty())
    w.touched.push_back(site);
  if (k >= v.size())
    v.resize(k + 1);
  SectorInstance &I = v[k];
  I.store = store;
  I.first[I.n] = addr >> 5;
  I.last[I.n] = (addr + bytes - 1) >> 5;
  ++I.n;
}

void detail::flushSectors(WarpState &w, uint32_t warpIndex) {
  LaunchState &L = *gL;
  if (w.touched.empty())
    return;
  std::vector<uint64_t> sectors;
  for (int32_t site : w.touched) {
    for (SectorInstance &I : w.sites[size_t(site)]) {
      if (!I.n)
        continue;
      sectors.clear();
      for (uint32_t i = 0; i < I.n; ++i)
        for (uint64_t s = I.first[i]; s <= I.last[i]; ++s)
          sectors.push_back(s);
      std::sort(sectors.begin(), sectors.end());
      uint64_t distinct = uint64_t(std::unique(sectors.begin(), sectors.end()) -
                                   sectors.begin());
      if (I.store) {
        ++L.c->warpStores;
        L.c->storeSectors += distinct;
      } else {
        ++L.c->warpLoads;
        L.c->loadSectors += distinct;
      }
    }
    w.sites[size_t(site)].clear();
    uint32_t base = warpIndex * kWarpSize;
    for (uint32_t l = 0; l < kWarpSize && base + l < L.numThreads; ++l)
      L.occurrence[size_t(base + l) * L.kernel->num_sites + site] = 0;
  }
  w.touched.clear();
}

//===----------------------------------------------------------------------===//
// Hooks
//===----------------------------------------------------------------------===//

/// The registered buffer containing [p, p + bytes), or null.
static const BufferRange *findBuffer(uintptr_t p, uint64_t bytes) {
  LaunchState &L = *gL;
  auto inside = [&](const BufferRange &b) {
    auto base = reinterpret_cast<uintptr_t>(b.base);
    return p >= base && p + bytes <= base + b.bytes;
  };
  if (L.lastBuffer < L.buffers.size() && inside(L.buffers[L.lastBuffer]))
    return &L.buffers[L.lastBuffer];
  auto it = std::upper_bound(L.buffers.begin(), L.buffers.end(), p,
                             [](uintptr_t v, const BufferRange &b) {
                               return v < reinterpret_cast<uintptr_t>(b.base);
                             });
  if (it == L.buffers.begin())
    return nullptr;
  --it;
  if (!inside(*it))
    return nullptr;
  L.lastBuffer = size_t(it - L.buffers.begin());
  return &*it;
}

static void globalOutOfBounds(const Thread *t, uintptr_t p, uint64_t bytes,
                              int32_t site, bool store) {
  LaunchState &L = *gL;
  std::string where = "outside every buffer of the launch";
  // Name the closest buffer, measuring from its nearest end.
  const BufferRange *best = nullptr;
  uint64_t bestDist = UINT64_MAX;
  for (const BufferRange &b : L.buffers) {
    auto base = reinterpret_cast<uintptr_t>(b.base);
    uint64_t d =
        p < base
            ? base - p
            : (p + bytes > base + b.bytes ? p + bytes - (base + b.bytes) : 0);
    if (d < bestDist) {
      bestDist = d;
      best = &b;
    }
  }
  if (best) {
    auto base = reinterpret_cast<uintptr_t>(best->base);
    if (p < base)
      where = format("%llu bytes before buffer '%s' (%zu bytes)",
                     (unsigned long long)(base - p), best->name, best->bytes);
    else
      where = format("at byte %llu of buffer '%s' (%zu bytes), %llu bytes past "
                     "its end",
                     (unsigned long long)(p - base), best->name, best->bytes,
                     (unsigned long long)(p + bytes - (base + best->bytes)));
  }
  report(ReportKind::GlobalOutOfBounds, t,
         format("%s %s %llu bytes %s at %s", describe(t).c_str(),
                store ? "writes" : "reads", (unsigned long long)bytes,
                where.c_str(), siteName(site)),
         (uint64_t(9) << 60) ^ (uint64_t(store) << 32) ^ uint32_t(site));
}

static void *globalAccess(void *p, uint64_t bytes, int32_t site, bool store) {
  LaunchState &L = *gL;
  const Thread *t = gCur;
  if (store) {
    L.c->globalStoreBytes += bytes;
    ++L.c->globalStores;
  } else {
    L.c->globalLoadBytes += bytes;
    ++L.c->globalLoads;
  }
  auto addr = reinterpret_cast<uintptr_t>(p);
  if (!L.buffers.empty() && !findBuffer(addr, bytes)) {
    globalOutOfBounds(t, addr, bytes, site, store);
    return sink(bytes);
  }
  if (L.opts->countSectors)
    recordSectors(t, addr, bytes, site, store);
  return p;
}

static void *sharedAccess(void *p, uint64_t bytes, int32_t site, int32_t var,
                          bool store, bool atomic) {
  LaunchState &L = *gL;
  const Thread *t = gCur;
  auto addr = reinterpret_cast<uintptr_t>(p);
  auto base = reinterpret_cast<uintptr_t>(L.smem);
  const char *verb = store ? "writes" : "reads";
  int64_t off = int64_t(addr - base);
  if (var >= 0 && uint64_t(var) < L.kernel->num_shared_vars) {
    // Traced to one variable by the pass: it must stay inside it.
    const kvopt_simt_shared_var &v = L.kernel->shared_vars[var];
    int64_t size = int64_t(varSize(v));
    int64_t at = off - int64_t(v.offset);
    if (at < 0 || at + int64_t(bytes) > size) {
      report(ReportKind::SharedOutOfBounds, t,
             format("%s %s %llu bytes at byte %lld of '%s' (%lld bytes) at %s",
                    describe(t).c_str(), verb, (unsigned long long)bytes,
                    (long long)at, v.name, (long long)size, siteName(site)),
             (uint64_t(11) << 60) ^ uint32_t(site));
      return sink(bytes);
    }
  } else if (off < 0 || uint64_t(off) + bytes > L.smemBytes) {
    report(ReportKind::SharedOutOfBounds, t,
           format("%s %s %llu bytes at shared offset %lld, outside the "
                  "%zu-byte shared segment, at %s",
                  describe(t).c_str(), verb, (unsigned long long)bytes,
                  (long long)off, L.smemBytes, siteName(site)),
           (uint64_t(10) << 60) ^ uint32_t(site));
    return sink(bytes);
  } else {
    // Untraced pointer: it must at least fall inside one variable, not in a
    // red zone between two.
    int32_t v = varAt(uint64_t(off));
    if (v < 0 ||
        uint64_t(off) + bytes > L.kernel->shared_vars[v].offset +
                                    varSize(L.kernel->shared_vars[v])) {
      report(ReportKind::SharedOutOfBounds, t,
             format("%s %s %llu bytes at shared offset %lld, which is not "
                    "inside one shared variable, at %s",
                    describe(t).c_str(), verb, (unsigned long long)bytes,
                    (long long)off, siteName(site)),
             (uint64_t(12) << 60) ^ uint32_t(site));
      return sink(bytes);
    }
  }
  if (store)
    L.c->sharedStoreBytes += bytes;
  else
    L.c->sharedLoadBytes += bytes;
  // Atomics are ordered among themselves; they are not race-checked.
  if (L.opts->checkSharedRaces && !atomic)
    checkRace(t, uint64_t(off), bytes, store, site);
  return p;
}

static bool inShared(void *p) {
  auto addr = reinterpret_cast<uintptr_t>(p);
  auto base = reinterpret_cast<uintptr_t>(gL->smem);
  return addr >= base && addr < base + gL->smemBytes;
}

extern "C" {
void *__kv_simt_ld_global(void *p, uint64_t bytes, int32_t site) {
  return globalAccess(p, bytes, site, false);
}
void *__kv_simt_st_global(void *p, uint64_t bytes, int32_t site) {
  return globalAccess(p, bytes, site, true);
}
void *__kv_simt_ld_shared(void *p, uint64_t bytes, int32_t site, int32_t var) {
  return sharedAccess(p, bytes, site, var, false, false);
}
void *__kv_simt_st_shared(void *p, uint64_t bytes, int32_t site, int32_t var) {
  return sharedAccess(p, bytes, site, var, true, false);
}
void *__kv_simt_ld_generic(void *p, uint64_t bytes, int32_t site) {
  return inShared(p) ? sharedAccess(p, bytes, site, -1, false, false)
                     : globalAccess(p, bytes, site, false);
}
void *__kv_simt_st_generic(void *p, uint64_t bytes, int32_t site) {
  return inShared(p) ? sharedAccess(p, bytes, site, -1, true, false)
                     : globalAccess(p, bytes, site, true);
}
void *__kv_simt_atomic(void *p, uint64_t bytes, int32_t site, uint32_t space,
                       int32_t var) {
  ++gL->c->atomics;
  if (space == KVOPT_SIMT_SPACE_SHARED ||
      (space == KVOPT_SIMT_SPACE_GENERIC && inShared(p)))
    return sharedAccess(p, bytes, site, var, true, true);
  // A global atomic reads and writes its bytes.
  LaunchState &L = *gL;
  L.c->globalLoadBytes += bytes;
  ++L.c->globalLoads;
  return globalAccess(p, bytes, site, true);
}
}
