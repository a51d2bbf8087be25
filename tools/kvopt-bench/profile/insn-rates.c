/*===- insn-rates.c - issue rates of the kernels' main instructions -------===//
 *
 * Instructions per cycle of the AVX2 instructions the CPU attention kernels
 * are made of, each in 8 independent chains (throughput, not latency), on
 * the core this runs on; compare with llvm-mca's model of the same core
 * (mca-trace.py) to see where the model is off. Cycles are counted at the
 * clock the FMA row implies (2 FMAs per cycle on Zen 3 and recent Intel).
 *
 *   cc -O2 insn-rates.c -o insn-rates && taskset -c 0 ./insn-rates
 *
 *===----------------------------------------------------------------------===*/
#include <stdio.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}
static char buf[4096] __attribute__((aligned(64)));

/* 8 x the 8-instruction body per iteration: 64 instructions. */
#define REP8(x) x x x x x x x x
#define CLOBBERS                                                               \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",      \
      "xmm9", "memory"
#define RATE(body)                                                             \
  ({                                                                           \
    double best = 1e9;                                                         \
    for (int r = 0; r < 20; r++) {                                             \
      double t0 = now();                                                       \
      for (long i = 0; i < 200000; i++)                                        \
        __asm__ volatile(REP8(body)::"r"(buf) : CLOBBERS);                     \
      double t = (now() - t0) / (200000.0 * 64);                               \
      if (t < best)                                                            \
        best = t;                                                              \
    }                                                                          \
    best;                                                                      \
  })
/* One instruction into each of 8 destinations (8 independent chains):
 * "op SRC,%%ymmD" where SRC is `src` with `@` replaced by the chain's
 * memory offset (its own 32 bytes). */
#define ONE(op, src, d) op " " src ",%%ymm" d "\n\t"
#define EIGHT(op, s0, s1, s2, s3, s4, s5, s6, s7)                              \
  ONE(op, s0, "0") ONE(op, s1, "3") ONE(op, s2, "4") ONE(op, s3, "5")          \
      ONE(op, s4, "6") ONE(op, s5, "7") ONE(op, s6, "8") ONE(op, s7, "9")
#define REGS(op) EIGHT(op, R, R, R, R, R, R, R, R)
#define R "%%ymm1,%%ymm2"
#define MEMS(op, tail)                                                         \
  EIGHT(op, "0(%0)" tail, "32(%0)" tail, "64(%0)" tail, "96(%0)" tail,         \
        "128(%0)" tail, "160(%0)" tail, "192(%0)" tail, "224(%0)" tail)

int main(void) {
  /* Register operands: ymm1, ymm2 sources; memory operands at buf + 32 k. */
  double fma = RATE(REGS("vfmadd231ps"));
  double ghz = 1 / fma / 2 / 1e9;
  struct {
    const char *name;
    double s;
  } rows[] = {
      {"vfmadd231ps ymm, ymm, ymm", fma},
      {"vfmadd231ps ymm, ymm, m256", RATE(MEMS("vfmadd231ps", ",%%ymm2"))},
      {"vcvtph2ps ymm, m128", RATE(MEMS("vcvtph2ps", ""))},
      {"vpmovsxbw ymm, m128", RATE(MEMS("vpmovsxbw", ""))},
      {"vpmaddwd ymm, ymm, ymm", RATE(REGS("vpmaddwd"))},
      {"vpmaddwd ymm, ymm, m256", RATE(MEMS("vpmaddwd", ",%%ymm2"))},
      {"vpaddd ymm, ymm, ymm", RATE(REGS("vpaddd"))},
      {"vbroadcastss ymm, m32", RATE(MEMS("vbroadcastss", ""))},
      {"vperm2f128 ymm, ymm, ymm", RATE(REGS("vperm2f128 $0x20,"))},
  };
  printf("clock implied by 2 FMAs per cycle: %.2f GHz\n", ghz);
  printf("%-28s %12s\n", "instruction", "per cycle");
  for (unsigned i = 0; i < sizeof rows / sizeof rows[0]; ++i)
    printf("%-28s %12.2f\n", rows[i].name, 1 / rows[i].s / (ghz * 1e9));
  return 0;
}
