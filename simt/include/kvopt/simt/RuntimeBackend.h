//===- RuntimeBackend.h - The emulator as a runtime launch backend --*- C++
//-*-===//
//
// Plugs the SIMT emulator into the runtime's launch-backend registry, so a
// kernel bundle runs unchanged on a GPU (backend "cuda", format "ptx") or on
// the CPU under the emulator (backend "simt", format "simt-so").
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_SIMT_RUNTIMEBACKEND_H
#define KVOPT_SIMT_RUNTIMEBACKEND_H

#include "kvopt/runtime/launch.h"
#include "kvopt/simt/Launch.h"

#include <functional>
#include <memory>

namespace kvopt::simt {

/// Called after every emulated launch with its result (counters, reports).
using LaunchObserver = std::function<void(const LaunchResult &)>;

/// A launch backend that runs bundles of format "simt-so": shared objects
/// built from kv-simt-emulate output, exporting `<symbol>_emu_desc` for each
/// kernel. A launch whose detectors report findings (races, divergence,
/// out-of-bounds accesses, deadlock) fails with StatusCode::Internal and the
/// reports as message; an invalid launch shape fails with InvalidArgument.
std::unique_ptr<rt::LaunchBackend>
createRuntimeBackend(LaunchOptions options = {},
                     LaunchObserver observer = nullptr);

/// Registers createRuntimeBackend() with default options as "simt".
/// Idempotent: a second call returns Ok.
rt::Status registerRuntimeBackend();

} // namespace kvopt::simt

#endif // KVOPT_SIMT_RUNTIMEBACKEND_H
