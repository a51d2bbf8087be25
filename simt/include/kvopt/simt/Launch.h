//===- Launch.h - Launch emulated GPU kernels on the host -------*- C++ -*-===//
//
// The launch API of the SIMT emulator. A kernel compiled by kv-simt-emulate
// exposes a kvopt_simt_kernel descriptor (`<kernel>_emu_desc`); launching it
// takes the same grid/block/shared-bytes/`void **params` arguments as the
// driver's cuLaunchKernel, so one host argument array drives both.
//
// Launches run on the calling OS thread; one launch runs at a time per
// process (concurrent callers are serialized).
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_SIMT_LAUNCH_H
#define KVOPT_SIMT_LAUNCH_H

#include "kvopt/simt/ABI.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kvopt::simt {

/// Order in which the fibers of a block are resumed.
enum class Schedule : uint8_t {
  Forward, // lowest linear thread id first
  Reverse, // highest linear thread id first
  Random,  // a seeded random runnable thread at every switch
};

/// Returns "forward", "reverse" or "random".
const char *scheduleName(Schedule s);

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
};

/// A buffer the launch was given; global accesses outside every registered
/// buffer are reported (and redirected to a scratch sink). With no buffers
/// registered, global bounds are not checked.
struct BufferRange {
  const char *name; // shown in reports
  const void *base; // first byte
  size_t bytes;     // extent
};

struct LaunchOptions {
  Schedule schedule = Schedule::Forward;
  uint64_t seed = 1;                // for Schedule::Random
  std::vector<BufferRange> buffers; // bounds for global accesses
  bool checkSharedRaces = true;
  bool countSectors = true;        // per warp-wide access sector counting
  bool printReports = true;        // also print each report to stderr
  unsigned maxReportsPerKind = 16; // further ones are only counted
  size_t stackBytes = 64 * 1024;   // per fiber
};

enum class ReportKind : uint8_t {
  SharedRace,
  BarrierDivergence,
  Deadlock,
  ShuffleInactiveLane,
  WarpMaskMismatch,
  SharedOutOfBounds,
  GlobalOutOfBounds,
  InvalidLaunch,
};

/// Returns e.g. "shared-memory race".
const char *reportKindName(ReportKind k);

/// One finding. `message` names kernel, block, thread and variable.
struct Report {
  ReportKind kind;
  Dim3 block;
  Dim3 thread;
  std::string message;
};

/// Per-launch counters. Global counts cover accesses the pass classed as
/// global plus generic ones whose address is outside shared memory.
struct Counters {
  uint64_t globalLoadBytes = 0;  // bytes requested by global loads
  uint64_t globalStoreBytes = 0; // bytes written by global stores
  uint64_t globalLoads = 0;      // per-thread global load instructions
  uint64_t globalStores = 0;     // per-thread global store instructions
  uint64_t warpLoads = 0;        // warp-wide global load instructions
  uint64_t warpStores = 0;       // warp-wide global store instructions
  uint64_t loadSectors = 0; // sum over warp-wide loads of distinct 32 B sectors
  uint64_t storeSectors = 0; // same for stores
  uint64_t sharedLoadBytes = 0;
  uint64_t sharedStoreBytes = 0;
  uint64_t atomics = 0;
  uint64_t ops = 0;      // executed thread-operations (see docs/SIMT.md)
  uint64_t barriers = 0; // completed block barriers
  uint64_t warpCollectives =
      0; // completed shuffles, votes, reduxes, warp syncs
  uint64_t fiberSwitches = 0;
  uint64_t threads = 0; // threads run
  /// Bytes used / bytes of sectors touched, for global loads.
  double loadSectorEfficiency() const {
    return loadSectors ? double(globalLoadBytes) / (32.0 * loadSectors) : 0.0;
  }
};

enum class Status : int {
  Ok = 0,
  Reported = 1,      // ran to the end, detectors reported findings
  Aborted = 2,       // deadlock: the launch stopped early
  InvalidLaunch = 3, // nothing ran
};

struct LaunchResult {
  Status status = Status::Ok;
  Counters counters;
  std::vector<Report> reports;
  uint64_t suppressedReports = 0; // past maxReportsPerKind
  bool ok() const { return status == Status::Ok; }
  /// Number of kept reports of kind `k`.
  size_t count(ReportKind k) const;
  /// All kept report messages, one per line.
  std::string text() const;
};

/// Runs `kernel` over the grid, blocks one after another, every thread of a
/// block a fiber. `params` follows cuLaunchKernel's kernelParams convention.
LaunchResult launch(const kvopt_simt_kernel &kernel, Dim3 grid, Dim3 block,
                    size_t dynamicSharedBytes, void **params,
                    const LaunchOptions &options = {});

/// The symbol holding kernel `name`'s descriptor: `name` + "_emu_desc".
std::string descriptorSymbol(const std::string &name);

} // namespace kvopt::simt

extern "C" {
/// cuLaunchKernel-shaped entry for loaders that swap the driver for the
/// emulator: default options, reports printed to stderr. Returns the
/// kvopt::simt::Status value.
int kvopt_simt_launch_kernel(const kvopt_simt_kernel *kernel, unsigned gridX,
                             unsigned gridY, unsigned gridZ, unsigned blockX,
                             unsigned blockY, unsigned blockZ,
                             unsigned sharedMemBytes, void **kernelParams);
}

#endif // KVOPT_SIMT_LAUNCH_H
