//===- Runtime.cpp - Fiber scheduler, barriers and warp collectives -------===//
//
// Every GPU thread of a block is a fiber. A fiber runs until it must wait (a
// block barrier or a warp collective whose members have not all arrived) or
// until the kernel returns; then it hands the CPU directly to the next
// runnable fiber in schedule order. The last thread to arrive completes the
// barrier or collective for everyone and carries on. When no fiber can run,
// control returns to the launch loop, which either finds every thread done
// or reports a deadlock.
//
//===----------------------------------------------------------------------===//

#include "Emulator.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

using namespace kvopt::simt;
using namespace kvopt::simt::detail;

namespace kvopt::simt::detail {
LaunchState *gL = nullptr;
Thread *gCur = nullptr;
} // namespace kvopt::simt::detail

extern "C" {
uint64_t __kv_simt_ops = 0;
}

//===----------------------------------------------------------------------===//
// Reports
//===----------------------------------------------------------------------===//

std::string detail::format(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

const char *detail::siteName(int32_t site) {
  const kvopt_simt_kernel *k = gL->kernel;
  if (site < 0 || uint64_t(site) >= k->num_sites || !k->sites)
    return "<unknown site>";
  return k->sites[site];
}

std::string detail::describe(const Thread *t) {
  std::string s = format("kernel '%s' block (%u,%u,%u)", gL->kernel->name,
                         gL->blockIdx.x, gL->blockIdx.y, gL->blockIdx.z);
  if (t)
    s += format(" thread (%u,%u,%u) [warp %u lane %u]", t->tid.x, t->tid.y,
                t->tid.z, t->warp, t->lane);
  return s;
}

void detail::report(ReportKind kind, const Thread *t, std::string message,
                    uint64_t dedupKey) {
  LaunchResult &r = *gL->result;
  unsigned &n = gL->reportsPerKind[unsigned(kind)];
  if (dedupKey && !gL->reportKeys.insert(dedupKey).second) {
    ++r.suppressedReports;
    return;
  }
  if (n >= gL->opts->maxReportsPerKind) {
    ++r.suppressedReports;
    return;
  }
  ++n;
  Report rep{kind, gL->blockIdx, t ? t->tid : Dim3{0, 0, 0},
             std::string(reportKindName(kind)) + ": " + message};
  if (gL->opts->printReports)
    fprintf(stderr, "kvopt-simt: %s\n", rep.message.c_str());
  r.reports.push_back(std::move(rep));
}

const char *kvopt::simt::reportKindName(ReportKind k) {
  switch (k) {
  case ReportKind::SharedRace:
    return "shared-memory race";
  case ReportKind::BarrierDivergence:
    return "barrier divergence";
  case ReportKind::Deadlock:
    return "deadlock";
  case ReportKind::ShuffleInactiveLane:
    return "shuffle reads inactive lane";
  case ReportKind::WarpMaskMismatch:
    return "warp member-mask mismatch";
  case ReportKind::SharedOutOfBounds:
    return "out-of-bounds shared access";
  case ReportKind::GlobalOutOfBounds:
    return "out-of-bounds global access";
  case ReportKind::InvalidLaunch:
    return "invalid launch";
  }
  return "unknown";
}

const char *kvopt::simt::scheduleName(Schedule s) {
  switch (s) {
  case Schedule::Forward:
    return "forward";
  case Schedule::Reverse:
    return "reverse";
  case Schedule::Random:
    return "random";
  }
  return "unknown";
}

size_t LaunchResult::count(ReportKind k) const {
  return std::count_if(reports.begin(), reports.end(),
                       [k](const Report &r) { return r.kind == k; });
}

std::string LaunchResult::text() const {
  std::string s;
  for (const Report &r : reports)
    s += r.message + "\n";
  return s;
}

std::string kvopt::simt::descriptorSymbol(const std::string &name) {
  return name + KVOPT_SIMT_DESC_SUFFIX;
}

//===----------------------------------------------------------------------===//
// Scheduling
//===----------------------------------------------------------------------===//

static uint64_t nextRandom() {
  // xorshift64*: deterministic per seed, cheap.
  uint64_t &x = gL->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  return x * 0x2545F4914F6CDD1DULL;
}

/// The next runnable thread after `from` in schedule order, or null.
static Thread *pickNext(const Thread *from) {
  unsigned n = gL->numThreads;
  unsigned start;
  if (gL->opts->schedule == Schedule::Random)
    start = unsigned(nextRandom() % n);
  else
    start = from ? gL->pos[from->linear] + 1 : 0;
  for (unsigned i = 0; i < n; ++i) {
    unsigned p = start + i;
    if (p >= n)
      p -= n;
    Thread &t = gL->threads[gL->order[p]];
    if (t.wait == Wait::None)
      return &t;
  }
  return nullptr;
}

/// Suspends the running fiber (which must be waiting or done) and resumes the
/// next runnable one, or the launch loop if there is none.
static void switchAway() {
  Thread *me = gCur;
  Thread *next = pickNext(me);
  ++gL->c->fiberSwitches;
  gCur = next;
  kvopt_simt_switch(&me->sp, next ? next->sp : gL->mainSp);
  gCur = me;
}

//===----------------------------------------------------------------------===//
// Block barrier
//===----------------------------------------------------------------------===//

/// Releases every thread waiting at the block barrier. Reports divergence
/// when the waiters stand at different barriers or some threads exited
/// instead of arriving.
static void completeBarrier() {
  LaunchState &L = *gL;
  int32_t firstSite = -2;
  const Thread *firstWaiter = nullptr, *otherWaiter = nullptr;
  const Thread *exitedThread = nullptr;
  unsigned waiting = 0;
  for (Thread &t : L.threads) {
    if (t.wait == Wait::Barrier) {
      ++waiting;
      if (firstSite == -2) {
        firstSite = t.site;
        firstWaiter = &t;
      } else if (t.site != firstSite && !otherWaiter) {
        otherWaiter = &t;
      }
    } else if (t.wait == Wait::Done && !exitedThread) {
      exitedThread = &t;
    }
  }
  if (otherWaiter)
    report(ReportKind::BarrierDivergence, otherWaiter,
           format("%s waits at barrier %s while thread (%u,%u,%u) waits at "
                  "barrier %s",
                  describe(otherWaiter).c_str(), siteName(otherWaiter->site),
                  firstWaiter->tid.x, firstWaiter->tid.y, firstWaiter->tid.z,
                  siteName(firstSite)),
           (uint64_t(1) << 60) ^ (uint64_t(uint32_t(firstSite)) << 32) ^
               uint32_t(otherWaiter->site));
  if (exitedThread && waiting)
    report(ReportKind::BarrierDivergence, exitedThread,
           format("%s exited while %u threads wait at barrier %s (%u of %u "
                  "threads exited without reaching it)",
                  describe(exitedThread).c_str(), waiting, siteName(firstSite),
                  L.exited, L.numThreads),
           (uint64_t(2) << 60) ^ uint32_t(firstSite));
  for (Thread &t : L.threads)
    if (t.wait == Wait::Barrier)
      t.wait = Wait::None;
  L.atBarrier = 0;
  ++L.blockEpoch;
  ++L.c->barriers;
  for (uint32_t w = 0; w < L.numWarps; ++w)
    flushSectors(L.warps[w], w);
}

extern "C" void __kv_simt_barrier(int32_t site) {
  Thread *t = gCur;
  t->wait = Wait::Barrier;
  t->site = site;
  ++gL->atBarrier;
  if (gL->atBarrier + gL->exited == gL->numThreads) {
    completeBarrier();
    return;
  }
  switchAway();
}

//===----------------------------------------------------------------------===//
// Warp collectives
//===----------------------------------------------------------------------===//

static const char *warpOpName(const Thread &t) {
  static const char *shfl[] = {"shfl.sync.bfly", "shfl.sync.up",
                               "shfl.sync.down", "shfl.sync.idx"};
  switch (t.op) {
  case WarpOp::Shfl:
    return shfl[t.mode & 3];
  case WarpOp::Vote:
    return "vote.sync";
  case WarpOp::Redux:
    return "redux.sync";
  case WarpOp::Sync:
    return "bar.warp.sync";
  case WarpOp::Mma:
    return "mma.sync";
  }
  return "?";
}

/// PTX shfl.sync for lane `t` given the values of the participating lanes.
static uint64_t shuffleResult(WarpState &w, const Thread &t, uint32_t warpIndex,
                              uint32_t participants) {
  uint32_t lane = t.lane;
  uint32_t bval = t.b & 31, cval = t.c & 31, segmask = (t.c >> 8) & 31;
  uint32_t maxLane = (lane & segmask) | (cval & ~segmask);
  uint32_t minLane = lane & segmask;
  int32_t j = 0;
  bool pval = false;
  switch (t.mode) {
  case KVOPT_SIMT_SHFL_UP:
    j = int32_t(lane) - int32_t(bval);
    pval = j >= int32_t(maxLane);
    break;
  case KVOPT_SIMT_SHFL_DOWN:
    j = int32_t(lane + bval);
    pval = j <= int32_t(maxLane);
    break;
  case KVOPT_SIMT_SHFL_BFLY:
    j = int32_t(lane ^ bval);
    pval = j <= int32_t(maxLane);
    break;
  default: // idx
    j = int32_t(minLane | (bval & ~segmask));
    pval = j <= int32_t(maxLane);
    break;
  }
  if (!pval)
    j = int32_t(lane);
  uint64_t valid = uint64_t(pval) << 32;
  if (t.solo)
    return t.value; // reported on entry; PTX leaves the result undefined
  if (!(participants & (1u << j))) {
    const char *why = !(w.existMask & (1u << j))  ? "does not exist"
                      : !(w.liveMask & (1u << j)) ? "has exited"
                                                  : "is not in the member mask";
    report(ReportKind::ShuffleInactiveLane, &t,
           format("%s: lane %u reads lane %d, which %s (member mask 0x%08x, "
                  "b=%u c=0x%x) at %s",
                  describe(&t).c_str(), lane, j, why, t.mask, t.b, t.c,
                  siteName(t.site)),
           (uint64_t(3) << 60) ^ uint32_t(t.site));
    return kPoison | valid;
  }
  Thread &src = gL->threads[warpIndex * kWarpSize + uint32_t(j)];
  return src.value | valid;
}

static uint32_t reduxResult(const Thread &t, uint32_t warpIndex,
                            uint32_t participants) {
  bool isFloat =
      t.mode == KVOPT_SIMT_REDUX_FMIN || t.mode == KVOPT_SIMT_REDUX_FMAX;
  uint32_t acc = 0;
  float facc = 0;
  bool first = true, sawNaN = false;
  for (uint32_t l = 0; l < kWarpSize; ++l) {
    if (!(participants & (1u << l)))
      continue;
    uint32_t v = gL->threads[warpIndex * kWarpSize + l].value;
    if (isFloat) {
      float f;
      memcpy(&f, &v, 4);
      if (t.flags & KVOPT_SIMT_REDUX_ABS)
        f = std::fabs(f);
      sawNaN |= std::isnan(f);
      if (first)
        facc = f;
      else
        facc = t.mode == KVOPT_SIMT_REDUX_FMIN ? std::fmin(facc, f)
                                               : std::fmax(facc, f);
      first = false;
      continue;
    }
    if (first) {
      acc = v;
      first = false;
      continue;
    }
    switch (t.mode) {
    case KVOPT_SIMT_REDUX_ADD:
      acc += v;
      break;
    case KVOPT_SIMT_REDUX_AND:
      acc &= v;
      break;
    case KVOPT_SIMT_REDUX_OR:
      acc |= v;
      break;
    case KVOPT_SIMT_REDUX_XOR:
      acc ^= v;
      break;
    case KVOPT_SIMT_REDUX_MAX:
      acc = uint32_t(std::max(int32_t(acc), int32_t(v)));
      break;
    case KVOPT_SIMT_REDUX_MIN:
      acc = uint32_t(std::min(int32_t(acc), int32_t(v)));
      break;
    case KVOPT_SIMT_REDUX_UMAX:
      acc = std::max(acc, v);
      break;
    case KVOPT_SIMT_REDUX_UMIN:
      acc = std::min(acc, v);
      break;
    default:
      break;
    }
  }
  if (isFloat) {
    if (sawNaN && (t.flags & KVOPT_SIMT_REDUX_NAN))
      facc = std::nanf("");
    memcpy(&acc, &facc, 4);
  }
  return acc;
}

constexpr uint32_t kFullMask = 0xFFFFFFFFu;

/// f32 value of element `half` (0 low, 1 high) of a packed f16x2/bf16x2
/// register.
static float unpackHalf(uint32_t reg, int half, bool bf16) {
  uint16_t h = uint16_t(reg >> (16 * half));
  if (bf16) {
    uint32_t bits = uint32_t(h) << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
  }
  // IEEE binary16 to f32 (exact).
  uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1F,
           man = h & 0x3FF;
  float f;
  if (exp == 0) {
    f = std::ldexp(float(man), -24);
    if (sign)
      f = -f;
    return f;
  }
  uint32_t bits = exp == 0x1F ? sign | 0x7F800000u | (man << 13)
                              : sign | ((exp + 112) << 23) | (man << 13);
  memcpy(&f, &bits, 4);
  return f;
}

/// PTX mma.sync.aligned.m16n8k{16,8}.row.col.f32: D = A B + C for the warp,
/// from every lane's fragments (PTX ISA "Matrix Fragments for mma.m16n8k16"
/// and "...k8"): with g = lane / 4 and q = lane % 4,
///   A (16 x K, row): register r holds A[g + 8 (r % 2)][2q + 8 (r / 2)
///                    + {0, 1}] (k8: registers 0, 1 only);
///   B (K x 8, col):  register r holds B[2q + 8 r + {0, 1}][g];
///   C, D (16 x 8):   element i is [g + 8 (i / 2)][2q + i % 2].
/// Products of f16/bf16 values are exact in f32; they are summed in k order
/// in f32, C last.
static void mmaResults(uint32_t warpIndex, uint32_t kind) {
  bool bf16 = kind == KVOPT_SIMT_MMA_M16N8K16_BF16 ||
              kind == KVOPT_SIMT_MMA_M16N8K8_BF16;
  int K = kind <= KVOPT_SIMT_MMA_M16N8K16_BF16 ? 16 : 8;
  int aRegs = K == 16 ? 4 : 2, bRegs = K == 16 ? 2 : 1;
  float A[16][16] = {}, B[16][8] = {}, C[16][8] = {};
  for (uint32_t l = 0; l < kWarpSize; ++l) {
    const Thread &t = gL->threads[warpIndex * kWarpSize + l];
    int g = int(l / 4), q = int(l % 4);
    for (int r = 0; r < aRegs; ++r)
      for (int h = 0; h < 2; ++h)
        A[g + 8 * (r % 2)][2 * q + 8 * (r / 2) + h] =
            unpackHalf(t.frags[r], h, bf16);
    for (int r = 0; r < bRegs; ++r)
      for (int h = 0; h < 2; ++h)
        B[2 * q + 8 * r + h][g] = unpackHalf(t.frags[aRegs + r], h, bf16);
    for (int i = 0; i < 4; ++i)
      memcpy(&C[g + 8 * (i / 2)][2 * q + i % 2], &t.frags[aRegs + bRegs + i],
             4);
  }
  for (uint32_t l = 0; l < kWarpSize; ++l) {
    Thread &t = gL->threads[warpIndex * kWarpSize + l];
    int g = int(l / 4), q = int(l % 4);
    for (int i = 0; i < 4; ++i) {
      int row = g + 8 * (i / 2), col = 2 * q + i % 2;
      float acc = 0.0f;
      for (int k = 0; k < K; ++k)
        acc += A[row][k] * B[k][col];
      t.mmaOut[i] = acc + C[row][col];
    }
  }
}

/// Computes every participant's result, releases the waiters and closes the
/// group (removed from w.groups by the caller's index).
static void completeGroup(WarpState &w, uint32_t warpIndex, size_t gi) {
  WarpGroup g = w.groups[gi];
  w.groups.erase(w.groups.begin() + long(gi));
  uint32_t p = g.arrived;
  uint32_t ballot = 0;
  for (uint32_t l = 0; l < kWarpSize; ++l)
    if ((p & (1u << l)) && gL->threads[warpIndex * kWarpSize + l].value)
      ballot |= 1u << l;
  for (uint32_t l = 0; l < kWarpSize; ++l) {
    if (!(p & (1u << l)))
      continue;
    Thread &t = gL->threads[warpIndex * kWarpSize + l];
    switch (t.op) {
    case WarpOp::Shfl:
      t.result = shuffleResult(w, t, warpIndex, p);
      break;
    case WarpOp::Vote:
      switch (t.mode) {
      case KVOPT_SIMT_VOTE_ANY:
        t.result = ballot != 0;
        break;
      case KVOPT_SIMT_VOTE_ALL:
        t.result = ballot == p;
        break;
      case KVOPT_SIMT_VOTE_UNI:
        t.result = ballot == 0 || ballot == p;
        break;
      default:
        t.result = ballot;
        break;
      }
      break;
    case WarpOp::Redux:
      t.result = reduxResult(t, warpIndex, p);
      break;
    case WarpOp::Sync:
    case WarpOp::Mma:
      t.result = 0;
      break;
    }
  }
  // mma.sync is computed once for the warp, from every lane's fragments.
  if (g.op == WarpOp::Mma) {
    // mma.sync.aligned: every lane must execute the same instruction (site)
    // with the same shape and types (mode); lanes meeting from different
    // mma.sync sites are undefined behaviour on hardware.
    Thread &lead =
        gL->threads[warpIndex * kWarpSize + uint32_t(__builtin_ctz(p))];
    bool same = true;
    for (uint32_t l = 0; l < kWarpSize && same; ++l) {
      Thread &t = gL->threads[warpIndex * kWarpSize + l];
      if ((p & (1u << l)) && (t.site != lead.site || t.mode != lead.mode)) {
        report(ReportKind::WarpMaskMismatch, &t,
               format("%s executes mma.sync kind %u at %s while lane %u of "
                      "its warp executes kind %u at %s; mma.sync.aligned "
                      "needs every lane at the same instruction",
                      describe(&t).c_str(), t.mode, siteName(t.site), lead.lane,
                      lead.mode, siteName(lead.site)),
               (uint64_t(8) << 60) ^ (uint64_t(uint32_t(t.site)) << 32) ^
                   uint32_t(lead.site));
        same = false;
      }
    }
    if (p == kFullMask && same)
      mmaResults(warpIndex, lead.mode);
    else
      for (uint32_t l = 0; l < kWarpSize; ++l)
        if (p & (1u << l)) {
          Thread &t = gL->threads[warpIndex * kWarpSize + l];
          for (int i = 0; i < 4; ++i)
            t.mmaOut[i] = std::nanf("");
        }
  }
  // Results are computed from the values above before anyone resumes.
  for (uint32_t l = 0; l < kWarpSize; ++l)
    if (p & (1u << l)) {
      Thread &t = gL->threads[warpIndex * kWarpSize + l];
      if (t.wait == Wait::Warp)
        t.wait = Wait::None;
    }
  ++w.epoch;
  ++gL->c->warpCollectives;
  // Once every live lane has converged, the warp's open memory instructions
  // cannot gain lanes any more.
  if ((g.mask & w.liveMask) == w.liveMask)
    flushSectors(w, warpIndex);
}

/// Completes group `gi` if all its live members have arrived.
static bool tryComplete(WarpState &w, uint32_t warpIndex, size_t gi) {
  const WarpGroup &g = w.groups[gi];
  // Exited and absent lanes no longer hold the group up.
  if (((g.arrived | ~w.liveMask) & g.mask) != g.mask)
    return false;
  completeGroup(w, warpIndex, gi);
  return true;
}

/// Enters the running thread into a warp collective; returns its result.
static uint64_t warpCollective(WarpOp op, uint32_t mode, uint32_t mask,
                               uint32_t value, uint32_t b, uint32_t c,
                               uint32_t flags, int32_t site) {
  Thread *t = gCur;
  uint32_t warpIndex = t->warp;
  WarpState &w = gL->warps[warpIndex];
  uint32_t bit = 1u << t->lane;
  t->op = op;
  t->mode = mode;
  t->mask = mask;
  t->value = value;
  t->b = b;
  t->c = c;
  t->flags = flags;
  t->site = site;
  t->solo = false;
  if (!(mask & bit)) {
    // PTX leaves this undefined; typically a shuffle width that does not
    // match the lanes executing it.
    report(ReportKind::WarpMaskMismatch, t,
           format("%s executes %s with member mask 0x%08x, which excludes "
                  "its own lane %u, at %s",
                  describe(t).c_str(), warpOpName(*t), mask, t->lane,
                  siteName(site)),
           (uint64_t(4) << 60) ^ uint32_t(site));
    // It proceeds alone and a shuffle returns its own value.
    mask = bit;
    t->mask = bit;
    t->solo = true;
  }
  size_t gi = w.groups.size();
  for (size_t i = 0; i < w.groups.size(); ++i) {
    WarpGroup &g = w.groups[i];
    if (g.mask == mask) {
      gi = i;
      break;
    }
    if (g.mask & mask)
      report(ReportKind::WarpMaskMismatch, t,
             format("%s enters %s with member mask 0x%08x at %s while lanes "
                    "0x%08x wait with mask 0x%08x at %s",
                    describe(t).c_str(), warpOpName(*t), mask, siteName(site),
                    g.arrived, g.mask, siteName(g.site)),
             (uint64_t(5) << 60) ^ (uint64_t(uint32_t(site)) << 32) ^
                 uint32_t(g.site));
  }
  if (gi == w.groups.size())
    w.groups.push_back(WarpGroup{mask, 0, op, site});
  else if (w.groups[gi].op != op)
    report(ReportKind::WarpMaskMismatch, t,
           format("%s enters %s at %s while other lanes of mask 0x%08x wait in "
                  "a different warp collective at %s",
                  describe(t).c_str(), warpOpName(*t), siteName(site), mask,
                  siteName(w.groups[gi].site)),
           (uint64_t(6) << 60) ^ (uint64_t(uint32_t(site)) << 32) ^
               uint32_t(w.groups[gi].site));
  w.groups[gi].arrived |= bit;
  t->wait = Wait::Warp;
  if (!tryComplete(w, warpIndex, gi))
    switchAway();
  return t->result;
}

extern "C" uint64_t __kv_simt_shfl(uint32_t mode, uint32_t mask, uint32_t value,
                                   uint32_t b, uint32_t c, int32_t site) {
  return warpCollective(WarpOp::Shfl, mode, mask, value, b, c, 0, site);
}

extern "C" uint32_t __kv_simt_vote(uint32_t kind, uint32_t mask, uint32_t pred,
                                   int32_t site) {
  return uint32_t(
      warpCollective(WarpOp::Vote, kind, mask, pred != 0, 0, 0, 0, site));
}

extern "C" uint32_t __kv_simt_redux(uint32_t kind, uint32_t flags,
                                    uint32_t mask, uint32_t value,
                                    int32_t site) {
  return uint32_t(
      warpCollective(WarpOp::Redux, kind, mask, value, 0, 0, flags, site));
}

extern "C" void __kv_simt_warp_sync(uint32_t mask, int32_t site) {
  warpCollective(WarpOp::Sync, 0, mask, 0, 0, 0, 0, site);
}

extern "C" void __kv_simt_mma(uint32_t kind, const uint32_t *frags, float *d,
                              int32_t site) {
  Thread *t = gCur;
  memcpy(t->frags, frags, sizeof(t->frags));
  t->mmaOut = d;
  // mma.sync.aligned: every lane of the warp executes it together.
  WarpState &w = gL->warps[t->warp];
  if (w.existMask != kFullMask || w.liveMask != kFullMask)
    report(ReportKind::WarpMaskMismatch, t,
           format("%s executes %s in a warp with lanes 0x%08x live of "
                  "0x%08x; mma.sync needs all 32 lanes",
                  describe(t).c_str(), siteName(site), w.liveMask, w.existMask),
           (uint64_t(7) << 60) ^ uint32_t(site));
  warpCollective(WarpOp::Mma, kind, kFullMask, 0, 0, 0, 0, site);
}

//===----------------------------------------------------------------------===//
// Special registers
//===----------------------------------------------------------------------===//

extern "C" {
uint32_t __kv_simt_sreg_tid_x(void) { return gCur->tid.x; }
uint32_t __kv_simt_sreg_tid_y(void) { return gCur->tid.y; }
uint32_t __kv_simt_sreg_tid_z(void) { return gCur->tid.z; }
uint32_t __kv_simt_sreg_ntid_x(void) { return gL->block.x; }
uint32_t __kv_simt_sreg_ntid_y(void) { return gL->block.y; }
uint32_t __kv_simt_sreg_ntid_z(void) { return gL->block.z; }
uint32_t __kv_simt_sreg_ctaid_x(void) { return gL->blockIdx.x; }
uint32_t __kv_simt_sreg_ctaid_y(void) { return gL->blockIdx.y; }
uint32_t __kv_simt_sreg_ctaid_z(void) { return gL->blockIdx.z; }
uint32_t __kv_simt_sreg_nctaid_x(void) { return gL->grid.x; }
uint32_t __kv_simt_sreg_nctaid_y(void) { return gL->grid.y; }
uint32_t __kv_simt_sreg_nctaid_z(void) { return gL->grid.z; }
uint32_t __kv_simt_sreg_laneid(void) { return gCur->lane; }
uint32_t __kv_simt_sreg_warpsize(void) { return kWarpSize; }
uint32_t __kv_simt_sreg_warpid(void) { return gCur->warp; }
uint32_t __kv_simt_sreg_nwarpid(void) { return gL->numWarps; }
uint32_t __kv_simt_sreg_lanemask_eq(void) { return 1u << gCur->lane; }
uint32_t __kv_simt_sreg_lanemask_le(void) {
  return uint32_t((uint64_t(2) << gCur->lane) - 1);
}
uint32_t __kv_simt_sreg_lanemask_lt(void) { return (1u << gCur->lane) - 1; }
uint32_t __kv_simt_sreg_lanemask_ge(void) { return ~((1u << gCur->lane) - 1); }
uint32_t __kv_simt_sreg_lanemask_gt(void) {
  return ~uint32_t((uint64_t(2) << gCur->lane) - 1);
}
uint32_t __kv_simt_sreg_dynamic_smem_size(void) {
  return uint32_t(gL->dynamicBytes);
}
uint32_t __kv_simt_sreg_total_smem_size(void) {
  return uint32_t(gL->smemBytes);
}
uint32_t __kv_simt_sreg_smid(void) { return 0; }
uint32_t __kv_simt_sreg_nsmid(void) { return 1; }
uint32_t __kv_simt_sreg_gridid(void) { return 0; }
// Clocks tick with executed operations, so timing-based code is repeatable.
uint32_t __kv_simt_sreg_clock(void) { return uint32_t(__kv_simt_ops); }
uint64_t __kv_simt_sreg_clock64(void) { return __kv_simt_ops; }
uint64_t __kv_simt_sreg_globaltimer(void) { return __kv_simt_ops; }
}

//===----------------------------------------------------------------------===//
// Launch
//===----------------------------------------------------------------------===//

static void threadExit(Thread *t) {
  LaunchState &L = *gL;
  t->wait = Wait::Done;
  ++L.exited;
  WarpState &w = L.warps[t->warp];
  uint32_t bit = 1u << t->lane;
  w.liveMask &= ~bit;
  for (size_t i = 0; i < w.groups.size();) {
    WarpGroup &g = w.groups[i];
    if ((g.mask & bit) && !(g.arrived & bit)) {
      report(ReportKind::WarpMaskMismatch, t,
             format("%s exited without joining the warp collective at %s "
                    "(member mask 0x%08x)",
                    describe(t).c_str(), siteName(g.site), g.mask),
             (uint64_t(7) << 60) ^ uint32_t(g.site));
      if (tryComplete(w, t->warp, i))
        continue;
    }
    ++i;
  }
  if (L.atBarrier && L.atBarrier + L.exited == L.numThreads)
    completeBarrier();
}

static void fiberEntry(void *arg) {
  auto *t = static_cast<Thread *>(arg);
  gL->kernel->packed(gL->params);
  threadExit(t);
  switchAway();
  __builtin_unreachable();
}

static std::string dim3Str(Dim3 d) {
  return format("(%u,%u,%u)", d.x, d.y, d.z);
}

/// Describes the waits of a stuck block, for the deadlock report.
static std::string describeWaits() {
  std::string s;
  unsigned shown = 0;
  for (Thread &t : gL->threads) {
    if (t.wait == Wait::Done || t.wait == Wait::None)
      continue;
    if (shown++ == 6) {
      s += "; ...";
      break;
    }
    s += format("%sthread %s waits %s %s", shown > 1 ? "; " : "",
                dim3Str(t.tid).c_str(),
                t.wait == Wait::Barrier ? "at barrier" : "in",
                t.wait == Wait::Barrier ? siteName(t.site) : warpOpName(t));
    if (t.wait == Wait::Warp)
      s += format(" (mask 0x%08x) at %s", t.mask, siteName(t.site));
  }
  return s;
}

static void runBlock(StackPool &stacks) {
  LaunchState &L = *gL;
  L.atBarrier = L.exited = 0;
  for (uint32_t w = 0; w < L.numWarps; ++w) {
    WarpState &ws = L.warps[w];
    ws.liveMask = ws.existMask;
    ws.groups.clear();
  }
  for (Thread &t : L.threads) {
    t.wait = Wait::None;
    t.sp = makeFiberContext(stacks.stack(t.linear), stacks.stackBytes(),
                            fiberEntry, &t);
  }
  resetSharedForBlock();
  ++L.blockEpoch;
  L.c->threads += L.numThreads;
  Thread *first = pickNext(nullptr);
  gCur = first;
  kvopt_simt_switch(&L.mainSp, first->sp);
  gCur = nullptr;
  if (L.exited != L.numThreads) {
    report(ReportKind::Deadlock, nullptr,
           format("%s: %u of %u threads cannot make progress: %s",
                  describe(nullptr).c_str(), L.numThreads - L.exited,
                  L.numThreads, describeWaits().c_str()));
    L.aborted = true;
  }
  for (uint32_t w = 0; w < L.numWarps; ++w)
    flushSectors(L.warps[w], w);
}

static bool validate(const kvopt_simt_kernel &k, Dim3 grid, Dim3 block,
                     void **params, LaunchResult &r) {
  auto fail = [&](std::string msg) {
    r.reports.push_back(Report{ReportKind::InvalidLaunch,
                               {},
                               {},
                               std::string("invalid launch: ") + msg});
    r.status = Status::InvalidLaunch;
    fprintf(stderr, "kvopt-simt: %s\n", r.reports.back().message.c_str());
    return false;
  };
  if (k.abi_version != KVOPT_SIMT_ABI_VERSION)
    return fail(format("kernel descriptor ABI version %u, runtime expects %u",
                       k.abi_version, KVOPT_SIMT_ABI_VERSION));
  const char *name = k.name ? k.name : "?";
  uint64_t n = uint64_t(block.x) * block.y * block.z;
  if (!block.x || !block.y || !block.z || n > kMaxThreadsPerBlock)
    return fail(format("kernel '%s': block %s has %llu threads (1..%u allowed)",
                       name, dim3Str(block).c_str(), (unsigned long long)n,
                       kMaxThreadsPerBlock));
  if (!grid.x || !grid.y || !grid.z)
    return fail(
        format("kernel '%s': empty grid %s", name, dim3Str(grid).c_str()));
  uint32_t bd[3] = {block.x, block.y, block.z},
           gd[3] = {grid.x, grid.y, grid.z};
  for (int i = 0; i < 3; ++i) {
    // The kernel's range attributes make any other size undefined behaviour.
    if (k.known_block[i] && uint32_t(k.known_block[i]) != bd[i])
      return fail(format("kernel '%s' was compiled for block (%d,%d,%d), "
                         "launched with %s",
                         name, k.known_block[0], k.known_block[1],
                         k.known_block[2], dim3Str(block).c_str()));
    if (k.known_grid[i] && uint32_t(k.known_grid[i]) != gd[i])
      return fail(format("kernel '%s' was compiled for grid (%d,%d,%d), "
                         "launched with %s",
                         name, k.known_grid[0], k.known_grid[1],
                         k.known_grid[2], dim3Str(grid).c_str()));
  }
  if (k.num_params && !params)
    return fail(format("kernel '%s' takes %u parameters, params is null", name,
                       k.num_params));
  return true;
}

LaunchResult kvopt::simt::launch(const kvopt_simt_kernel &kernel, Dim3 grid,
                                 Dim3 block, size_t dynamicSharedBytes,
                                 void **params, const LaunchOptions &options) {
  static std::mutex launchMutex;
  static StackPool stacks;
  std::lock_guard<std::mutex> lock(launchMutex);

  LaunchResult result;
  if (!validate(kernel, grid, block, params, result))
    return result;

  LaunchState L;
  L.kernel = &kernel;
  L.grid = grid;
  L.block = block;
  L.params = params;
  L.opts = &options;
  L.result = &result;
  L.c = &result.counters;
  L.rng = options.seed * 0x9E3779B97F4A7C15ULL + 0x1234567;
  if (!L.rng)
    L.rng = 1;
  L.reportsPerKind.assign(unsigned(ReportKind::InvalidLaunch) + 1, 0);
  L.numThreads = block.x * block.y * block.z;
  L.numWarps = (L.numThreads + kWarpSize - 1) / kWarpSize;
  L.threads.resize(L.numThreads);
  L.warps.resize(L.numWarps);
  for (uint32_t z = 0, i = 0; z < block.z; ++z)
    for (uint32_t y = 0; y < block.y; ++y)
      for (uint32_t x = 0; x < block.x; ++x, ++i) {
        Thread &t = L.threads[i];
        t.linear = i;
        t.warp = i / kWarpSize;
        t.lane = i % kWarpSize;
        t.tid = Dim3{x, y, z};
        L.warps[t.warp].existMask |= 1u << t.lane;
      }
  L.order.resize(L.numThreads);
  L.pos.resize(L.numThreads);
  for (uint32_t i = 0; i < L.numThreads; ++i)
    L.order[i] =
        options.schedule == Schedule::Reverse ? L.numThreads - 1 - i : i;
  for (uint32_t i = 0; i < L.numThreads; ++i)
    L.pos[L.order[i]] = i;
  for (WarpState &w : L.warps)
    w.sites.resize(kernel.num_sites);
  L.occurrence.assign(size_t(L.numThreads) * kernel.num_sites, 0);
  L.buffers = options.buffers;
  std::sort(L.buffers.begin(), L.buffers.end(),
            [](const BufferRange &a, const BufferRange &b) {
              return a.base < b.base;
            });
  L.dynamicBytes = dynamicSharedBytes;
  L.smemBytes = kernel.static_shared_bytes + dynamicSharedBytes;

  if (!stacks.reserve(L.numThreads, options.stackBytes)) {
    result.reports.push_back(Report{ReportKind::InvalidLaunch,
                                    {},
                                    {},
                                    "invalid launch: cannot map fiber stacks"});
    result.status = Status::InvalidLaunch;
    return result;
  }

  gL = &L;
  resetSharedForLaunch();
  uint64_t ops0 = __kv_simt_ops;
  for (uint32_t z = 0; z < grid.z && !L.aborted; ++z)
    for (uint32_t y = 0; y < grid.y && !L.aborted; ++y)
      for (uint32_t x = 0; x < grid.x && !L.aborted; ++x) {
        L.blockIdx = Dim3{x, y, z};
        runBlock(stacks);
      }
  result.counters.ops = __kv_simt_ops - ops0;
  free(L.smem);
  gL = nullptr;

  if (L.aborted)
    result.status = Status::Aborted;
  else if (!result.reports.empty() || result.suppressedReports)
    result.status = Status::Reported;
  return result;
}

extern "C" int kvopt_simt_launch_kernel(const kvopt_simt_kernel *kernel,
                                        unsigned gridX, unsigned gridY,
                                        unsigned gridZ, unsigned blockX,
                                        unsigned blockY, unsigned blockZ,
                                        unsigned sharedMemBytes,
                                        void **kernelParams) {
  if (!kernel)
    return int(Status::InvalidLaunch);
  LaunchResult r =
      launch(*kernel, Dim3{gridX, gridY, gridZ}, Dim3{blockX, blockY, blockZ},
             sharedMemBytes, kernelParams);
  return int(r.status);
}
