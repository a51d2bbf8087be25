//===- SimtBench.cpp - Emulator speed in thread-operations per second -----===//
//
// JIT-compiles the decode-attention and block-sum kernels of the emulator
// tests and launches them repeatedly under the SIMT emulator; prints the
// executed thread-operations (LLVM-dialect ops of the lowered kernel, summed
// over threads), fiber switches and wall time per launch, and the rates.
//
//   kvopt-simt-bench [--kernel=attention|block_sum] [--blocks=8] [--keys=1024]
//                    [--reps=5] [--schedule=forward|reverse|random]
//                    [--no-races] [--no-sectors] [--kernels-dir=DIR]
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/SIMT/EmulatorJIT.h"
#include "kvopt/simt/Launch.h"
#include "kvopt/simt/Params.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace kvopt::simt;

namespace {

struct Config {
  std::string kernel = "attention";
  std::string dir = KVOPT_SIMT_BENCH_KERNELS_DIR;
  uint32_t blocks = 8;
  int64_t keys = 1024;
  int reps = 5;
  Schedule schedule = Schedule::Forward;
  bool races = true, sectors = true;
};

bool parse(int argc, char **argv, Config &c) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char *flag) -> const char * {
      size_t n = strlen(flag);
      return a.compare(0, n, flag) == 0 ? argv[i] + n : nullptr;
    };
    if (const char *v = value("--kernel="))
      c.kernel = v;
    else if (const char *v = value("--kernels-dir="))
      c.dir = v;
    else if (const char *v = value("--blocks="))
      c.blocks = uint32_t(atoi(v));
    else if (const char *v = value("--keys="))
      c.keys = atoll(v);
    else if (const char *v = value("--reps="))
      c.reps = atoi(v);
    else if (const char *v = value("--schedule=")) {
      std::string s = v;
      c.schedule = s == "reverse"  ? Schedule::Reverse
                   : s == "random" ? Schedule::Random
                                   : Schedule::Forward;
    } else if (a == "--no-races")
      c.races = false;
    else if (a == "--no-sectors")
      c.sectors = false;
    else {
      fprintf(stderr, "unknown argument %s\n", argv[i]);
      return false;
    }
  }
  return c.blocks > 0 && c.reps > 0 && c.keys > 0 && c.keys <= 1024;
}

} // namespace

int main(int argc, char **argv) {
  Config cfg;
  if (!parse(argc, argv, cfg)) {
    fprintf(stderr, "usage: see the header of simt/bench/SimtBench.cpp\n");
    return 2;
  }
  bool attention = cfg.kernel == "attention";
  std::string file = cfg.dir + (attention ? "/attention.mlir" : "/reduce.mlir");
  auto t0 = std::chrono::steady_clock::now();
  auto module = EmulatedModule::compileFile(file);
  if (!module) {
    fprintf(stderr, "%s\n", llvm::toString(module.takeError()).c_str());
    return 1;
  }
  double compileMs = std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - t0)
                         .count();
  auto kernel = (*module)->kernel(attention ? "decode_attention" : "block_sum");
  if (!kernel) {
    fprintf(stderr, "%s\n", llvm::toString(kernel.takeError()).c_str());
    return 1;
  }

  const int64_t D = 64, B = cfg.blocks, N = cfg.keys;
  const uint32_t threads = attention ? 128 : 1024;
  // 256-byte aligned buffers, as cudaMalloc returns, so that sector counts
  // reflect the kernel's access pattern only.
  std::vector<std::unique_ptr<float, decltype(&free)>> owned;
  auto buffer = [&](size_t n, float fill) {
    size_t bytes = (n * sizeof(float) + 255) / 256 * 256;
    auto *p = static_cast<float *>(aligned_alloc(256, bytes));
    std::fill(p, p + n, fill);
    owned.emplace_back(p, &free);
    return p;
  };
  float *q = buffer(B * D, 0.5f), *k = buffer(B * N * D, 0.f),
        *v = buffer(B * N * D, 0.f), *o = buffer(B * D, 0.f),
        *in = buffer(size_t(B) * threads, 0.f), *sums = buffer(B, 0.f);
  for (int64_t i = 0; i < B * N * D; ++i) {
    k[i] = float(i % 17) / 17.f - 0.5f;
    v[i] = float(i % 13) / 13.f;
  }
  for (int64_t i = 0; i < B * threads; ++i)
    in[i] = float(i % 7);
  ParamPack p;
  if (attention) {
    p.memref(q, {B, D});
    p.memref(k, {B, N, D});
    p.memref(v, {B, N, D});
    p.memref(o, {B, D});
    p.scalar<int64_t>(N);
    p.scalar<float>(0.125f);
  } else {
    p.memref(in, {B * threads});
    p.memref(sums, {B});
  }

  LaunchOptions opts;
  opts.schedule = cfg.schedule;
  opts.checkSharedRaces = cfg.races;
  opts.countSectors = cfg.sectors;
  std::vector<double> ms;
  LaunchResult last;
  for (int r = 0; r < cfg.reps; ++r) {
    auto s = std::chrono::steady_clock::now();
    last = launch(**kernel, {uint32_t(B), 1, 1}, {threads, 1, 1}, 0, p.data(),
                  opts);
    ms.push_back(std::chrono::duration<double, std::milli>(
                     std::chrono::steady_clock::now() - s)
                     .count());
    if (!last.ok()) {
      fprintf(stderr, "launch failed:\n%s", last.text().c_str());
      return 1;
    }
  }
  std::sort(ms.begin(), ms.end());
  double median = ms[ms.size() / 2];
  const Counters &c = last.counters;
  printf("kernel %s: %u blocks x %u threads%s, schedule %s, races %s, sectors "
         "%s\n",
         cfg.kernel.c_str(), cfg.blocks, threads,
         attention ? (", " + std::to_string(N) + " keys").c_str() : "",
         scheduleName(cfg.schedule), cfg.races ? "on" : "off",
         cfg.sectors ? "on" : "off");
  printf("compile (lower + JIT): %.1f ms\n", compileMs);
  printf("per launch: %.2f ms median (min %.2f, max %.2f over %d)\n", median,
         ms.front(), ms.back(), cfg.reps);
  printf("thread-ops: %llu  -> %.1f M thread-ops/s, %.2f ns per thread-op\n",
         (unsigned long long)c.ops, c.ops / median / 1e3,
         median * 1e6 / double(c.ops));
  printf("fiber switches: %llu -> %.1f M/s; barriers %llu, warp collectives "
         "%llu\n",
         (unsigned long long)c.fiberSwitches, c.fiberSwitches / median / 1e3,
         (unsigned long long)c.barriers, (unsigned long long)c.warpCollectives);
  printf("global: %llu B loaded in %llu loads, %llu sectors (efficiency %.3f), "
         "%llu B stored\n",
         (unsigned long long)c.globalLoadBytes,
         (unsigned long long)c.globalLoads, (unsigned long long)c.loadSectors,
         c.loadSectorEfficiency(), (unsigned long long)c.globalStoreBytes);
  return 0;
}
