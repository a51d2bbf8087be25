//===- kernel-driver.cpp - run a dumped kvopt-bench kernel object ---------===//
//
// Links against the object `kvopt-bench --dump-object` writes (the decode
// function of one bench case, its async-runtime calls resolved by
// libmlir_async_runtime.so) and calls it with the bench's arguments, so that
// ordinary tools (callgrind, perf with symbols) can look inside the JIT
// kernel. Used by profile-kernel.sh; not part of the build.
//
// Usage: kernel-driver CONTEXT BYTES_PER_TOKEN LAYERS CALLS [HOT_PAGES]
//
//===----------------------------------------------------------------------===//

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

extern "C" void _mlir__mlir_ciface_decode(void **);

namespace {
struct Desc1 {
  void *allocated, *aligned;
  int64_t offset, size, stride;
};
struct Desc2 {
  void *allocated, *aligned;
  int64_t offset, sizes[2], strides[2];
};
struct Desc4 {
  void *allocated, *aligned;
  int64_t offset, sizes[4], strides[4];
};
} // namespace

int main(int argc, char **argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s CONTEXT BYTES_PER_TOKEN LAYERS CALLS "
                         "[HOT_PAGES]\n",
                 argv[0]);
    return 2;
  }
  // The bench's case: 32 query heads, head dim 128, pages of 16, batch 1.
  const int64_t ctx = std::atoll(argv[1]), hq = 32, dim = 128, page = 16;
  const double bytesPerToken = std::atof(argv[2]);
  const int64_t layers = std::atoll(argv[3]), calls = std::atoll(argv[4]);
  // Optional: every block-table entry modulo HOT_PAGES, so the data stays in
  // the caches and the kernel's own speed shows.
  const int64_t hot = argc > 5 ? std::atoll(argv[5]) : 0;
  const int64_t pages = (ctx + page - 1) / page;
  const int64_t pageBytes = static_cast<int64_t>(bytesPerToken * page);
  std::mt19937_64 rng(1);
  std::vector<std::vector<uint8_t>> pools(layers);
  std::vector<std::vector<int32_t>> tables(layers);
  for (int64_t l = 0; l < layers; ++l) {
    // Varied bytes: valid f16 values, codes of every kind, finite scales.
    pools[l].resize(pages * pageBytes);
    for (size_t i = 0; i < pools[l].size(); ++i)
      pools[l][i] = static_cast<uint8_t>(0x21 + ((i * 7919) >> 5 & 7));
    tables[l].resize(pages);
    std::iota(tables[l].begin(), tables[l].end(), 0);
    std::shuffle(tables[l].begin(), tables[l].end(), rng);
    if (hot > 0)
      for (int32_t &p : tables[l])
        p %= static_cast<int32_t>(hot);
  }
  std::vector<uint16_t> q(hq * dim, 0x3000), out(hq * dim);
  int32_t len = static_cast<int32_t>(ctx);
  Desc4 qd{q.data(), q.data(), 0, {1, hq, 1, dim}, {hq * dim, dim, dim, 1}};
  Desc4 od{out.data(), out.data(), 0, {1, hq, 1, dim}, {hq * dim, dim, dim, 1}};
  Desc1 ld{&len, &len, 0, 1, 1};
  auto run = [&](int64_t l) {
    Desc1 cd{pools[l].data(), pools[l].data(), 0,
             static_cast<int64_t>(pools[l].size()), 1};
    Desc2 bd{tables[l].data(), tables[l].data(), 0, {1, pages}, {pages, 1}};
    void *ptrs[] = {&qd, &cd, &ld, &bd, &od};
    void *args[] = {&ptrs[0], &ptrs[1], &ptrs[2], &ptrs[3], &ptrs[4]};
    _mlir__mlir_ciface_decode(args);
  };
  double best = 1e30;
  for (int64_t c = 0; c < calls; ++c) {
    auto start = std::chrono::steady_clock::now();
    for (int64_t l = 0; l < layers; ++l)
      run(l);
    double sec = std::chrono::duration<double>(
                     std::chrono::steady_clock::now() - start)
                     .count() /
                 layers;
    best = std::min(best, sec);
  }
  std::printf("%.1f us/layer, %.2f GB/s (best of %lld)\n", best * 1e6,
              bytesPerToken * ctx / best / 1e9, (long long)calls);
  return 0;
}
