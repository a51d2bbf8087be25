//===- prefetch-order.cpp - read-order microbenchmark for paged KV --------===//
//
// How fast two threads read shuffled 64 KiB pages laid out like an f16 KV
// cache page (K [16 tokens][8 heads][256 B], then V the same) while doing
// a fixed amount of f32 arithmetic per byte, for different read and
// software-prefetch orders. It isolates the memory side of the CPU
// attention kernel's access pattern (docs/CPU.md, "Where the time goes"):
// the kernel reads a page head by head (rows 2 KiB apart), which is not
// the order memory serves best.
//
//   clang++ -O2 -mavx2 -mfma -mf16c -pthread prefetch-order.cpp -o po && ./po
//
// Columns (GB/s of page bytes, best of 3):
//   hot        the same arithmetic over 4 pages per thread (cache resident)
//   none       head-order reads, no software prefetch
//   head-pf    head-order reads, prefetching the next page's rows of the
//              same head as the rows read (the kernel before 2026-12-07)
//   seq        token-order reads (address order), no software prefetch
//   addr-pf    head-order reads, prefetching the next page in address
//              order, an equal share per row read (the kernel now)
//
//===----------------------------------------------------------------------===//

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

namespace {
constexpr size_t kPage = 65536, kRow = 256, kTokenBytes = 2048;
enum Mode { Hot, None, HeadPf, Seq, AddrPf, Modes };

// 128 bytes of f16: 8 conversions and K x 8 FMAs.
template <int K>
inline void work128(const char *l, __m256 *a, __m256 &q0, __m256 q1) {
  __m256 x[8];
  for (int i = 0; i < 8; ++i)
    x[i] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(l + 16 * i)));
  for (int k = 0; k < K; ++k) {
    for (int i = 0; i < 8; ++i)
      a[i] = _mm256_fmadd_ps(x[i], (i & 1) ? q1 : q0, a[i]);
    q0 = _mm256_add_ps(q0, q1);
  }
}

template <int K>
__attribute__((noinline)) float pass(const char *base, const unsigned *pages,
                                     size_t n, Mode mode) {
  __m256 a[8];
  for (__m256 &v : a)
    v = _mm256_setzero_ps();
  __m256 q0 = _mm256_set1_ps(1.001f), q1 = _mm256_set1_ps(0.999f);
  for (size_t pi = 0; pi < n; ++pi) {
    const char *p = base + size_t(pages[pi]) * kPage;
    const char *next = base + size_t(pages[std::min(pi + 1, n - 1)]) * kPage;
    if (mode == Seq) {
      for (size_t off = 0; off < kPage; off += 128)
        work128<K>(p + off, a, q0, q1);
      continue;
    }
    for (int h = 0; h < 8; ++h)
      for (int kv = 0; kv < 2; ++kv)
        for (int t = 0; t < 16; ++t) {
          size_t row = kv * (kPage / 2) + t * kTokenBytes + h * kRow;
          if (mode == HeadPf)
            for (int c = 0; c < 4; ++c)
              _mm_prefetch(next + row + c * 64, _MM_HINT_T0);
          if (mode == AddrPf) {
            size_t share = ((h * 2 + kv) * 16 + t) * kRow;
            for (int c = 0; c < 4; ++c)
              _mm_prefetch(next + share + c * 64, _MM_HINT_T0);
          }
          work128<K>(p + row, a, q0, q1);
          work128<K>(p + row + 128, a, q0, q1);
        }
  }
  __m256 s = a[0];
  for (int i = 1; i < 8; ++i)
    s = _mm256_add_ps(s, a[i]);
  float o[8];
  _mm256_storeu_ps(o, s);
  return o[0] + o[7];
}

template <int K>
double run(const char *buf, const std::vector<unsigned> &pages, Mode mode) {
  constexpr int kThreads = 2;
  size_t per = pages.size() / kThreads;
  std::vector<std::thread> threads;
  std::vector<float> sink(kThreads);
  auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::vector<unsigned> own(pages.begin() + t * per,
                                pages.begin() + (t + 1) * per);
      if (mode == Hot)
        for (size_t i = 0; i < per; ++i)
          own[i] = t * 4 + i % 4;
      sink[t] = pass<K>(buf, own.data(), per, mode == Hot ? None : mode);
    });
  for (std::thread &t : threads)
    t.join();
  double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  if (sink[0] == 12345.f)
    std::puts("");
  return per * kThreads * kPage / s / 1e9;
}

template <int K> void row(const char *buf, const std::vector<unsigned> &pages) {
  double best[Modes] = {};
  for (int r = 0; r < 3; ++r)
    for (int m = 0; m < Modes; ++m)
      best[m] = std::max(best[m], run<K>(buf, pages, Mode(m)));
  std::printf("%3d %8.1f %8.1f %8.1f %8.1f %8.1f\n", 8 * K, best[Hot],
              best[None], best[HeadPf], best[Seq], best[AddrPf]);
}
} // namespace

int main() {
  size_t n = 24576; // 1.5 GiB of pages
  char *buf = static_cast<char *>(std::aligned_alloc(4096, n * kPage));
  for (size_t i = 0; i < n * kPage; i += 2) {
    buf[i] = 0;
    buf[i + 1] = 0x3c; // f16 1.0
  }
  std::vector<unsigned> pages(n);
  for (size_t i = 0; i < n; ++i)
    pages[i] = i;
  std::shuffle(pages.begin(), pages.end(), std::mt19937(1));
  std::printf("FMAs per 128 B, then GB/s: hot, none, head-pf, seq, addr-pf\n");
  row<1>(buf, pages);
  row<2>(buf, pages);
  row<4>(buf, pages);
  row<6>(buf, pages);
  std::free(buf);
}
