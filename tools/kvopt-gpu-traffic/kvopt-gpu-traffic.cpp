//===- kvopt-gpu-traffic.cpp - decode-kernel traffic from emulator counters
//===//
//
// Runs the generated decode kernels under the SIMT emulator for a set of
// decode configurations and prints, per configuration, global bytes loaded
// over the minimal bytes (K, V, scales, queries, block-table entries and
// sequence lengths, each read once) and the load sector efficiency.
//
//===----------------------------------------------------------------------===//

#include "DecodeHarness.h"

#include <cstdio>
#include <cstring>

using namespace kvopt;
using namespace kvopt::gpu_test;
namespace ref = kvopt::reference;

int main(int argc, char **argv) {
  std::string chip = "sm_80";
  int64_t length = 2000;
  for (int i = 1; i < argc; ++i) {
    if (!strncmp(argv[i], "--chip=", 7))
      chip = argv[i] + 7;
    else if (!strncmp(argv[i], "--length=", 9))
      length = atoll(argv[i] + 9);
    else {
      fprintf(stderr, "usage: kvopt-gpu-traffic [--chip=sm_80] "
                      "[--length=2000]\n");
      return 2;
    }
  }
  using K = ref::QuantKind;
  using A = ref::QuantAxis;
  struct Config {
    const char *name;
    int64_t D, G, P;
    std::optional<Encoding> k, v;
  } configs[] = {
      {"f16", 128, 8, 16, std::nullopt, std::nullopt},
      {"f16", 128, 1, 16, std::nullopt, std::nullopt},
      {"f16", 64, 4, 1, std::nullopt, std::nullopt},
      {"f16", 256, 8, 64, std::nullopt, std::nullopt},
      {"int8 tok f32", 128, 8, 16,
       Encoding{K::Int8, A::Token, 0, true, ref::ScalarType::F32},
       Encoding{K::Int8, A::Token, 0, true, ref::ScalarType::F32}},
      {"fp8 tok f32", 128, 8, 16,
       Encoding{K::Fp8E4M3, A::Token, 0, true, ref::ScalarType::F32},
       Encoding{K::Fp8E4M3, A::Token, 0, true, ref::ScalarType::F32}},
      {"int4 g32 asym f16", 128, 8, 16,
       Encoding{K::Int4, A::Token, 32, false, ref::ScalarType::F16},
       Encoding{K::Int4, A::Token, 32, false, ref::ScalarType::F16}},
      {"int2 g32 asym f16", 128, 8, 16,
       Encoding{K::Int2, A::Token, 32, false, ref::ScalarType::F16},
       Encoding{K::Int2, A::Token, 32, false, ref::ScalarType::F16}},
  };
  printf("| K/V | head dim | group | page | Hkv | len | splits | bytes "
         "loaded | minimal | ratio | sector eff. | max err/tol |\n"
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
         "| --- |\n");
  int status = 0;
  for (const Config &cfg : configs) {
    DecodeCase c;
    c.headDim = cfg.D;
    c.group = cfg.G;
    c.pageSize = cfg.P;
    c.kvHeads = 2;
    c.lengths = {length, length - 37};
    c.key = cfg.k;
    c.value = cfg.v;
    std::string error;
    auto k = compileDecode(c, chip, error);
    if (!k) {
      fprintf(stderr, "%s: %s\n", c.describe().c_str(), error.c_str());
      return 1;
    }
    DecodeData d = makeDecodeData(c);
    DecodeRun r = runDecode(c, *k, d, simt::Schedule::Forward, 0, chip);
    std::string where;
    double err = worstError(c, d, r, where);
    if (!r.decode.ok() || !r.merge.ok() || err > 1.0) {
      fprintf(stderr, "%s: wrong result (%s) %s%s\n", c.describe().c_str(),
              where.c_str(), r.decode.text().c_str(), r.merge.text().c_str());
      status = 1;
    }
    const simt::Counters &n = r.decode.counters;
    printf("| %s | %lld | %lld | %lld | %lld | %lld | %lld | %llu | %lld | "
           "%.4f | %.1f%% | %.3f |\n",
           cfg.name, (long long)cfg.D, (long long)cfg.G, (long long)cfg.P,
           (long long)c.kvHeads, (long long)length, (long long)r.splits,
           (unsigned long long)n.globalLoadBytes, (long long)d.minimalBytes,
           double(n.globalLoadBytes) / double(d.minimalBytes),
           100.0 * n.loadSectorEfficiency(), err);
    fflush(stdout);
  }
  return status;
}
