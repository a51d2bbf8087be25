//===- Emulator.h - Internal state of one emulated launch -------*- C++ -*-===//
//
// Shared by the scheduler (Runtime.cpp) and the memory hooks (Memory.cpp).
// All of it lives on one OS thread: the launching one. A launch owns one
// LaunchState; `gL` and `gCur` point at it and at the running fiber while the
// launch is in flight.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_SIMT_EMULATOR_H
#define KVOPT_SIMT_EMULATOR_H

#include "Fiber.h"
#include "kvopt/simt/Launch.h"

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

namespace kvopt::simt::detail {

constexpr unsigned kWarpSize = 32;
constexpr unsigned kMaxThreadsPerBlock = 1024;
/// Value a shuffle returns when it reads a lane that is not active; the same
/// bytes poison shared memory at every block start (a NaN as f32, -1 as i32).
constexpr uint32_t kPoison = 0xFFFFFFFFu;

enum class Wait : uint8_t { None, Barrier, Warp, Done };
enum class WarpOp : uint8_t { Shfl, Vote, Redux, Sync, Mma };

/// One GPU thread: a fiber plus what it is waiting for.
struct Thread {
  void *sp = nullptr; // saved context while not running
  uint32_t linear = 0, warp = 0, lane = 0;
  Dim3 tid;
  Wait wait = Wait::None;
  int32_t site = -1; // where it waits
  // Operands of a pending warp collective and its result.
  WarpOp op = WarpOp::Sync;
  uint32_t mode = 0, mask = 0, value = 0, b = 0, c = 0, flags = 0;
  bool solo = false; // its member mask excluded itself
  uint64_t result = 0;
  // mma.sync: the lane's A, B and C registers, and where its D goes.
  uint32_t frags[10] = {};
  float *mmaOut = nullptr;
};

/// Lanes of a warp that have entered a collective with one member mask.
struct WarpGroup {
  uint32_t mask = 0, arrived = 0;
  WarpOp op = WarpOp::Sync;
  int32_t site = -1;
};

/// The lanes' accesses of one warp-wide memory instruction (the k-th dynamic
/// execution of one site by each lane since the warp last converged).
struct SectorInstance {
  uint32_t n = 0;
  bool store = false;
  uint64_t first[kWarpSize]; // first 32-byte sector of each lane's access
  uint64_t last[kWarpSize];  // last sector
};

struct WarpState {
  uint32_t existMask = 0; // lanes that exist in the block
  uint32_t liveMask = 0;  // lanes that have not exited
  uint32_t epoch = 1;     // bumped by every completed collective
  std::vector<WarpGroup> groups;
  std::vector<std::vector<SectorInstance>> sites; // [site][k]
  std::vector<int32_t> touched;                   // sites with instances
};

/// Race-detection shadow of one shared-memory byte.
struct Shadow {
  uint32_t wEpoch = 0, wWarpEpoch = 0;
  int32_t writer = -1, wSite = -1;
  uint32_t rEpoch = 0, rWarpEpoch = 0;
  int32_t reader = -1, rSite = -1; // reader == kManyReaders: several
  int32_t rWarp = -1;              // -1: readers from several warps
};
constexpr int32_t kManyReaders = -2;

struct LaunchState {
  const kvopt_simt_kernel *kernel = nullptr;
  Dim3 grid, block, blockIdx;
  void **params = nullptr;
  const LaunchOptions *opts = nullptr;
  LaunchResult *result = nullptr;
  Counters *c = nullptr;

  unsigned numThreads = 0, numWarps = 0;
  std::vector<Thread> threads;
  std::vector<uint32_t> order; // resume order (Forward/Reverse)
  std::vector<uint32_t> pos;   // thread -> index in order
  std::vector<WarpState> warps;
  void *mainSp = nullptr;
  unsigned atBarrier = 0, exited = 0;
  bool aborted = false;
  uint64_t rng = 0;

  // Shared memory: one segment per block, reused block after block.
  char *smem = nullptr;
  size_t smemBytes = 0, dynamicBytes = 0;
  std::vector<Shadow> shadow;
  uint32_t blockEpoch = 1; // bumped by every completed block barrier

  std::vector<BufferRange> buffers; // sorted by base
  size_t lastBuffer = 0;
  std::vector<uint32_t> occurrence; // [thread * numSites + site]

  std::vector<unsigned> reportsPerKind;
  std::unordered_set<uint64_t> reportKeys;
};

extern LaunchState *gL;
extern Thread *gCur;

/// Adds a report unless its kind is over the limit or `dedupKey` was seen.
void report(ReportKind kind, const Thread *t, std::string message,
            uint64_t dedupKey = 0);
/// "kernel 'k' block (x,y,z) thread (x,y,z) [warp w lane l]".
std::string describe(const Thread *t);
/// The location string of a site, or "<unknown site>".
const char *siteName(int32_t site);
/// printf into a std::string.
std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/// Sector bookkeeping: closes every open warp-wide instruction of `w`.
void flushSectors(WarpState &w, uint32_t warpIndex);
/// Prepares shared memory and the race shadow for a new launch / block.
void resetSharedForLaunch();
void resetSharedForBlock();

} // namespace kvopt::simt::detail

#endif // KVOPT_SIMT_EMULATOR_H
