//===- kvopt-bench.cpp - CPU decode attention vs memory bandwidth ---------===//
//
// Measures the machine's streaming read bandwidth, then runs the CPU decode
// attention kernel (kv-lower-to-cpu) over paged f16/int8/int4 caches of many
// layers, so that one measured step reads more KV bytes than the last-level
// cache holds, and prints time, bytes, GB/s and the fraction of bandwidth.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/KVToCPU/CPUJit.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <dlfcn.h>
#include <unistd.h>

using namespace kvopt;
namespace cl = llvm::cl;

static cl::OptionCategory benchCategory("kvopt-bench options");

static cl::list<int64_t> contexts("contexts", cl::cat(benchCategory),
                                  cl::desc("context lengths"),
                                  cl::CommaSeparated);
static cl::list<std::string> kvTypes("kv-types", cl::cat(benchCategory),
                                     cl::desc("f16,int8,int4"),
                                     cl::CommaSeparated);
static cl::opt<unsigned> threads("bench-threads", cl::cat(benchCategory),
                                 cl::desc("worker threads (0 = all cores)"),
                                 cl::init(0));
static cl::opt<int64_t> pageSize("bench-page-size", cl::cat(benchCategory),
                                 cl::desc("tokens per cache page"),
                                 cl::init(16));
static cl::opt<int64_t> kvHeadsOpt("bench-kv-heads", cl::cat(benchCategory),
                                   cl::desc("KV heads"), cl::init(8));
static cl::opt<int64_t> groupOpt("bench-group", cl::cat(benchCategory),
                                 cl::desc("query heads per KV head"),
                                 cl::init(4));
static cl::opt<int64_t>
    kvSplits("bench-kv-splits", cl::cat(benchCategory),
             cl::desc("0 = one split per split-tokens keys, at most 64"),
             cl::init(0));
static cl::opt<int64_t> splitTokens("bench-split-tokens",
                                    cl::cat(benchCategory),
                                    cl::desc("split-tokens of the pipeline"),
                                    cl::init(128));
static cl::opt<int64_t> blockTokens("bench-block-tokens",
                                    cl::cat(benchCategory),
                                    cl::desc("block-tokens of the pipeline"),
                                    cl::init(16));
static cl::opt<int64_t>
    vectorBits("bench-vector-bits", cl::cat(benchCategory),
               cl::desc("vector-bits of the pipeline (0 = the host's)"),
               cl::init(0));
static cl::opt<bool>
    intDots("bench-int-dots", cl::cat(benchCategory),
            cl::desc("int-dots of the pipeline (fixed-point dot products)"),
            cl::init(true));
static cl::opt<double>
    touchGiB("touch-gib", cl::cat(benchCategory),
             cl::desc("KV GiB one measured step reads (cycled layers)"),
             cl::init(1.5));
static cl::opt<double>
    streamGiB("stream-gib", cl::cat(benchCategory),
              cl::desc("GiB of the streaming-read bandwidth buffer"),
              cl::init(2.0));
static cl::opt<int>
    repeats("bench-repeats", cl::cat(benchCategory),
            cl::desc("timed passes over the layers (the best is printed)"),
            cl::init(3));
static cl::opt<bool> viaBundle(
    "bench-bundle", cl::cat(benchCategory),
    cl::desc("run the kernels from a runtime kernel bundle (writeCPUBundle's "
             "kernels.cpu.so, entry kvopt_entry_decode over the expanded "
             "ABI, as the runtime's cpu backend calls it) instead of the "
             "ExecutionEngine's JIT"),
    cl::init(false));
static cl::opt<std::string> compare(
    "bench-compare", cl::cat(benchCategory),
    cl::desc("also compile every case with these pipeline options changed "
             "(comma-separated name=value: threads, splits, split-tokens, "
             "block-tokens, vector-bits, int-dots) and time both builds in "
             "paired, alternating rounds; prints the other build's median "
             "and the median ratio other / this"),
    cl::init(""));
static cl::opt<std::string>
    dumpObject("dump-object", cl::cat(benchCategory),
               cl::desc("write the first compiled kernel's object file"),
               cl::init(""));

using Clock = std::chrono::steady_clock;
static double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

/// Streaming read of a buffer far larger than the LLC on `n` threads.
static double measureBandwidth(unsigned n) {
  size_t words = static_cast<size_t>(streamGiB * (1ull << 30)) / 8;
  std::vector<uint64_t> buffer(words);
  // First touch from the reading threads' side is not needed on one node.
  for (size_t i = 0; i < words; ++i)
    buffer[i] = i;
  double best = 0;
  for (int r = 0; r < repeats + 1; ++r) {
    std::vector<uint64_t> sums(n * 8);
    auto start = Clock::now();
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < n; ++t)
      pool.emplace_back([&, t] {
        size_t lo = words * t / n, hi = words * (t + 1) / n;
        uint64_t acc[8] = {};
        for (size_t i = lo; i + 8 <= hi; i += 8)
          for (int j = 0; j < 8; ++j)
            acc[j] += buffer[i + j];
        sums[t * 8] = std::accumulate(acc, acc + 8, uint64_t(0));
      });
    for (auto &t : pool)
      t.join();
    double s = seconds(start, Clock::now());
    if (r > 0) // the first pass warms up
      best = std::max(best, words * 8 / s / 1e9);
    if (std::accumulate(sums.begin(), sums.end(), uint64_t(0)) == 42)
      std::puts("");
  }
  return best;
}

/// f32 FMA lanes per second of one thread: 12 independent chains of
/// 16-lane (AVX-512) or 8-lane (AVX2) FMAs, the widest the host has, as the
/// JIT-compiled kernels use. The chains hide the FMA latency, so this is the
/// issue rate.
#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float fmaChains512(long n) {
  typedef float v16 __attribute__((vector_size(64)));
  v16 a[12], b, c;
  for (int j = 0; j < 16; ++j) {
    b[j] = 0.999f;
    c[j] = 1e-3f;
  }
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 16; ++j)
      a[i][j] = float(i + j);
  for (long i = 0; i < n; ++i)
    for (int k = 0; k < 12; ++k)
      a[k] = __builtin_ia32_vfmaddps512_mask(a[k], b, c, -1, 4);
  float s = 0;
  for (int i = 0; i < 12; ++i)
    s += a[i][0] + a[i][15];
  return s;
}
#endif

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static float fmaChains256(long n) {
  typedef float v8 __attribute__((vector_size(32)));
  v8 a[12], b, c;
  for (int j = 0; j < 8; ++j) {
    b[j] = 0.999f;
    c[j] = 1e-3f;
  }
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 8; ++j)
      a[i][j] = float(i + j);
  for (long i = 0; i < n; ++i)
    for (int k = 0; k < 12; ++k)
      a[k] = __builtin_elementwise_fma(a[k], b, c);
  float s = 0;
  for (int i = 0; i < 12; ++i)
    s += a[i][0] + a[i][7];
  return s;
}
#endif

static float fmaChainsScalarWidth(long n, int &lanes) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) {
    lanes = 16;
    return fmaChains512(n);
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    lanes = 8;
    return fmaChains256(n);
  }
#endif
  // Portable fallback: the compiler's own vectors of 8 (no FMA unit).
  typedef float v8 __attribute__((vector_size(32)));
  lanes = 8;
  v8 a[12], b, c;
  for (int j = 0; j < 8; ++j) {
    b[j] = 0.999f;
    c[j] = 1e-3f;
  }
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 8; ++j)
      a[i][j] = float(i + j);
  for (long i = 0; i < n; ++i)
    for (int k = 0; k < 12; ++k)
      a[k] = a[k] * b + c;
  float s = 0;
  for (int i = 0; i < 12; ++i)
    s += a[i][0];
  return s;
}

/// f32 FMA lanes per second on `n` threads (best of a few passes).
static double measureFma(unsigned n, int &lanes) {
  const long iters = 20000000;
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    std::vector<float> sink(n);
    std::vector<int> width(n);
    auto start = Clock::now();
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < n; ++t)
      pool.emplace_back(
          [&, t] { sink[t] = fmaChainsScalarWidth(iters, width[t]); });
    for (auto &t : pool)
      t.join();
    double sec = seconds(start, Clock::now());
    lanes = width[0];
    best = std::max(best, double(n) * iters * 12 * lanes / sec);
    if (std::accumulate(sink.begin(), sink.end(), 0.0f) == 42.0f)
      std::puts("");
  }
  return best;
}

/// 12 independent chains of i16 pair products summed into i32 (vpmaddwd +
/// vpaddd, the fixed-point path's inner step; each step multiplies the
/// chain's own value, so nothing is loop-invariant) on the widest vectors
/// the host has; returns a value that depends on every chain.
#if defined(__x86_64__)
__attribute__((target("avx512bw"))) static int pairChains512(long n) {
  typedef short v32s __attribute__((vector_size(64)));
  typedef int v16i __attribute__((vector_size(64)));
  v16i a[12];
  v32s y;
  for (int j = 0; j < 32; ++j)
    y[j] = short(3 - j);
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 16; ++j)
      a[i][j] = i + j;
  for (long i = 0; i < n; ++i)
    for (int k = 0; k < 12; ++k) {
      a[k] += __builtin_ia32_pmaddwd512((v32s)a[k], y);
    }
  int s = 0;
  for (int i = 0; i < 12; ++i)
    s += a[i][0] + a[i][15];
  return s;
}
__attribute__((target("avx2"))) static int pairChains256(long n) {
  typedef short v16s __attribute__((vector_size(32)));
  typedef int v8i __attribute__((vector_size(32)));
  v8i a[12];
  v16s y;
  for (int j = 0; j < 16; ++j)
    y[j] = short(3 - j);
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 8; ++j)
      a[i][j] = i + j;
  for (long i = 0; i < n; ++i)
    for (int k = 0; k < 12; ++k) {
      a[k] += __builtin_ia32_pmaddwd256((v16s)a[k], y);
    }
  int s = 0;
  for (int i = 0; i < 12; ++i)
    s += a[i][0] + a[i][7];
  return s;
}
#endif

/// i16 multiply-adds per second on `n` threads through the pair-product
/// instruction, 0 where the host has none this bench knows.
static double measurePairMacs(unsigned n) {
#if defined(__x86_64__)
  bool wide = __builtin_cpu_supports("avx512bw");
  if (!wide && !__builtin_cpu_supports("avx2"))
    return 0;
  const long iters = 20000000;
  int macs = wide ? 32 : 16;
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    std::vector<int> sink(n);
    auto start = Clock::now();
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < n; ++t)
      pool.emplace_back([&, t] {
        sink[t] = wide ? pairChains512(iters) : pairChains256(iters);
      });
    for (auto &t : pool)
      t.join();
    double sec = seconds(start, Clock::now());
    best = std::max(best, double(n) * iters * 12 * macs / sec);
    if (std::accumulate(sink.begin(), sink.end(), 0) == 42)
      std::puts("");
  }
  return best;
#else
  return 0;
#endif
}

/// Bytes per token of one cache (docs/CacheLayout.md) and its MLIR type.
struct KVType {
  std::string name, encoding;
  double bytesPerToken;
};

static KVType kvType(const std::string &name, int64_t heads, int64_t dim) {
  double w = heads * dim;
  if (name == "f16")
    return {name, "", 2 * w * 2};
  if (name == "int8")
    // int8 per token (whole head), f16 scales.
    return {name, "#kv.quant<int8, scale = f16>", 2 * (w + heads * 2)};
  if (name == "int4")
    // int4 per token, groups of 32 channels, f16 scale and zero point.
    return {name, "#kv.quant<int4, group = 32, symmetric = false, scale = f16>",
            2 * (w / 2 + w / 32 * 2 * 2)};
  llvm::errs() << "unknown --kv " << name << "\n";
  std::exit(2);
}

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// Parses --bench-compare into `options`; false (after a message naming
/// the option) for an unknown name or a bad value.
static bool parseCompare(CPUCompileOptions &options) {
  llvm::SmallVector<llvm::StringRef> items;
  llvm::StringRef(compare).split(items, ',', -1, /*KeepEmpty=*/false);
  if (items.empty()) {
    llvm::errs() << "kvopt-bench: --bench-compare: expected name=value\n";
    return false;
  }
  for (llvm::StringRef item : items) {
    auto [name, text] = item.split('=');
    name = name.trim();
    text = text.trim();
    int64_t value = 0;
    bool isBool = name == "int-dots";
    if (isBool && (text == "true" || text == "false"))
      value = text == "true";
    else if (text.empty() || text.getAsInteger(10, value) || value < 0) {
      llvm::errs() << "kvopt-bench: --bench-compare: '" << item
                   << "' needs a non-negative integer"
                   << (isBool ? " or true/false" : "") << "\n";
      return false;
    }
    if (name == "threads")
      options.threads = static_cast<unsigned>(value);
    else if (name == "splits")
      options.splits = value;
    else if (name == "split-tokens")
      options.splitTokens = value;
    else if (name == "block-tokens")
      options.blockTokens = value;
    else if (name == "vector-bits")
      options.vectorBits = value;
    else if (isBool)
      options.intDots = value != 0;
    else {
      llvm::errs() << "kvopt-bench: --bench-compare: unknown pipeline option '"
                   << name
                   << "' (threads, splits, split-tokens, block-tokens, "
                      "vector-bits, int-dots)\n";
      return false;
    }
  }
  return true;
}

int main(int argc, char **argv) {
  cl::HideUnrelatedOptions(benchCategory);
  cl::ParseCommandLineOptions(argc, argv, "kvopt CPU decode-attention bench\n");
  for (auto *opt : {&kvHeadsOpt, &groupOpt, &pageSize})
    if (*opt < 1) {
      llvm::errs() << "kvopt-bench: --" << opt->ArgStr
                   << " must be at least 1\n";
      return 2;
    }
  if (repeats < 1) {
    llvm::errs() << "kvopt-bench: --bench-repeats must be at least 1\n";
    return 2;
  }
  unsigned n = threads ? threads : std::thread::hardware_concurrency();
  CPUCompileOptions options;
  options.threads = n;
  options.splits = kvSplits;
  options.splitTokens = splitTokens;
  options.blockTokens = blockTokens;
  options.vectorBits = vectorBits;
  options.intDots = intDots;
  // The other build of --bench-compare: these options with its changes.
  CPUCompileOptions alt = options;
  if (!compare.empty()) {
    if (!parseCompare(alt))
      return 2;
    if (viaBundle) {
      llvm::errs() << "kvopt-bench: --bench-compare times JIT builds; it "
                      "cannot be used with --bench-bundle\n";
      return 2;
    }
  }
  if (contexts.empty())
    for (int64_t c : {1024, 4096, 16384, 32768})
      contexts.push_back(c);
  if (kvTypes.empty())
    for (const char *t : {"f16", "int8", "int4"})
      kvTypes.push_back(t);
  const int64_t hkv = kvHeadsOpt, hq = hkv * groupOpt, dim = 128, batch = 1;

  double bandwidth = measureBandwidth(n);
  std::printf("streaming read bandwidth: %.1f GB/s (%u threads, %.1f GiB "
              "buffer)\n",
              bandwidth, n, static_cast<double>(streamGiB));
  int lanes = 0;
  double fmaLanes = measureFma(n, lanes);
  double pairMacs = measurePairMacs(n);
  // The kernel's multiply-adds per token and KV head: G query rows times D
  // channels for the scores and again for the values.
  const double macsPerTokenHead = 2.0 * (hq / hkv) * dim;
  std::printf("f32 FMA throughput: %.1f G lanes/s (%u threads, %d-lane "
              "vectors); i16 pair-product throughput: %.1f G MACs/s; \"MAC "
              "bound\" = the GB/s at which the kernel's %.0f multiply-adds per "
              "token and KV head take all of the rate of the instructions "
              "they use (f32 FMAs, or i16 pair products with int-dots)\n",
              fmaLanes / 1e9, n, lanes, pairMacs / 1e9, macsPerTokenHead);
  std::printf("decode attention, paged (page %lld), %lld q heads / %lld KV "
              "heads, head dim %lld, batch %lld, %u threads\n",
              (long long)pageSize, (long long)hq, (long long)hkv,
              (long long)dim, (long long)batch, n);
  std::printf("%-6s %8s %7s %11s %12s %8s %7s %10s %8s\n", "kv", "context",
              "layers", "us/layer", "KV MB/layer", "GB/s", "of BW", "MAC bound",
              "of it");

  std::mt19937_64 rng(1);
  // Engines stay alive to the end: destroying one that loaded the async
  // runtime tears the runtime's global state down under the next one.
  std::vector<std::unique_ptr<CPUModule>> keep;
  for (const std::string &typeName : kvTypes) {
    KVType type = kvType(typeName, hkv, dim);
    for (int64_t ctx : contexts) {
      int64_t pages = (ctx + pageSize - 1) / pageSize;
      double kvBytes = type.bytesPerToken * ctx;
      int64_t pageBytes = static_cast<int64_t>(type.bytesPerToken * pageSize);
      int64_t layers = std::max<int64_t>(
          2, static_cast<int64_t>(touchGiB * (1ull << 30) / kvBytes));
      std::ostringstream cache;
      cache << "!kv.cache<kv_heads = " << hkv << ", head_dim = " << dim
            << ", capacity = " << ctx << ", element = f16, layout = "
            << "#kv.layout<paged, page_size = " << pageSize << ">";
      if (!type.encoding.empty())
        cache << ", key = " << type.encoding << ", value = " << type.encoding;
      cache << ">";
      std::ostringstream src;
      std::string q = "1x" + std::to_string(hq) + "x1x" + std::to_string(dim) +
                      "xf16",
                  bt = "1x" + std::to_string(pages) + "xi32";
      src << "func.func @decode(%q: memref<" << q << ">, %c: " << cache.str()
          << ", %lens: memref<1xi32>, %bt: memref<" << bt << ">, %out: memref<"
          << q << ">) {\n"
          << "  %qt = bufferization.to_tensor %q restrict : memref<" << q
          << "> to tensor<" << q << ">\n"
          << "  %lt = bufferization.to_tensor %lens restrict : memref<1xi32> "
             "to tensor<1xi32>\n"
          << "  %bt2 = bufferization.to_tensor %bt restrict : memref<" << bt
          << "> to tensor<" << bt << ">\n"
          << "  %o = kv.attention %qt, %c, %lt block_table %bt2 : (tensor<" << q
          << ">, " << cache.str() << ", tensor<1xi32>, tensor<" << bt
          << ">) -> tensor<" << q << ">\n"
          << "  bufferization.materialize_in_destination %o in restrict "
             "writable %out : (tensor<"
          << q << ">, memref<" << q << ">) -> ()\n  return\n}\n";
      options.keepObject = !dumpObject.empty();
      void (*bundleEntry)(void **) = nullptr;
      void (*altEntry)(void **) = nullptr;
      llvm::Expected<void (*)(void **)> entry = bundleEntry;
      if (viaBundle) {
        CPUBundleOptions where;
        where.outDir = "/tmp/kvopt-bench-bundle-" + std::to_string(getpid()) +
                       "-" + typeName + "-" + std::to_string(ctx);
        auto manifest = writeCPUBundle(src.str(), options, where);
        if (!manifest) {
          llvm::errs() << llvm::toString(manifest.takeError()) << "\n";
          return 1;
        }
        // Loaded as the runtime's cpu backend does; never unloaded.
        void *so = dlopen((where.outDir + "/kernels.cpu.so").c_str(),
                          RTLD_NOW | RTLD_LOCAL);
        void *sym = so ? dlsym(so, "kvopt_entry_decode") : nullptr;
        if (!sym) {
          llvm::errs() << "kvopt-bench: cannot load the bundle in "
                       << where.outDir << ": " << dlerror() << "\n";
          return 1;
        }
        entry = reinterpret_cast<void (*)(void **)>(sym);
        // The mapping outlives the files.
        llvm::sys::fs::remove_directories(where.outDir);
      } else {
        auto module = CPUModule::compile(src.str(), options);
        if (!module) {
          llvm::errs() << llvm::toString(module.takeError()) << "\n";
          return 1;
        }
        if (!dumpObject.empty()) {
          (*module)->dumpObject(dumpObject);
          dumpObject = "";
        }
        keep.push_back(std::move(*module));
        entry = keep.back()->entry("decode");
        if (!compare.empty()) {
          auto other = CPUModule::compile(src.str(), alt);
          if (!other) {
            llvm::errs() << llvm::toString(other.takeError()) << "\n";
            return 1;
          }
          keep.push_back(std::move(*other));
          auto otherEntry = keep.back()->entry("decode");
          if (!otherEntry) {
            llvm::errs() << llvm::toString(otherEntry.takeError()) << "\n";
            return 1;
          }
          altEntry = *otherEntry;
        }
      }
      if (!entry) {
        llvm::errs() << llvm::toString(entry.takeError()) << "\n";
        return 1;
      }
      // Every layer: its own pool with shuffled pages of valid f16 bits.
      std::vector<std::vector<uint8_t>> pools(layers);
      std::vector<std::vector<int32_t>> tables(layers);
      for (int64_t l = 0; l < layers; ++l) {
        pools[l].assign(pages * pageBytes, 0x21);
        tables[l].resize(pages);
        std::iota(tables[l].begin(), tables[l].end(), 0);
        std::shuffle(tables[l].begin(), tables[l].end(), rng);
      }
      std::vector<uint16_t> qData(hq * dim, 0x3000), out(hq * dim);
      int32_t len = static_cast<int32_t>(ctx);
      struct Desc1 {
        void *a, *b;
        int64_t off, size, stride;
      };
      struct Desc2 {
        void *a, *b;
        int64_t off, sizes[2], strides[2];
      };
      struct Desc4 {
        void *a, *b;
        int64_t off, sizes[4], strides[4];
      };
      Desc4 qd{qData.data(),
               qData.data(),
               0,
               {1, hq, 1, dim},
               {hq * dim, dim, dim, 1}};
      Desc4 od{
          out.data(), out.data(), 0, {1, hq, 1, dim}, {hq * dim, dim, dim, 1}};
      Desc1 ld{&len, &len, 0, 1, 1};
      auto runLayer = [&](int64_t l) {
        Desc1 cd{pools[l].data(), pools[l].data(), 0,
                 static_cast<int64_t>(pools[l].size()), 1};
        Desc2 bd{tables[l].data(), tables[l].data(), 0, {1, pages}, {pages, 1}};
        if (viaBundle) {
          // The expanded ABI: every descriptor field is one argument.
          int64_t *fields[] = {reinterpret_cast<int64_t *>(&qd),
                               reinterpret_cast<int64_t *>(&cd),
                               reinterpret_cast<int64_t *>(&ld),
                               reinterpret_cast<int64_t *>(&bd),
                               reinterpret_cast<int64_t *>(&od)};
          int ranks[] = {4, 1, 1, 2, 4};
          void *params[5 * 11];
          int n = 0;
          for (int a = 0; a < 5; ++a)
            for (int f = 0; f < 3 + 2 * ranks[a]; ++f)
              params[n++] = fields[a] + f;
          (*entry)(params);
          return;
        }
        void *ptrs[] = {&qd, &cd, &ld, &bd, &od};
        void *args[] = {&ptrs[0], &ptrs[1], &ptrs[2], &ptrs[3], &ptrs[4]};
        (*entry)(args);
      };
      for (int64_t l = 0; l < layers; ++l) // warm-up: fault in, JIT paths
        runLayer(l);
      double best = 1e30;
      for (int r = 0; r < repeats; ++r) {
        auto start = Clock::now();
        for (int64_t l = 0; l < layers; ++l)
          runLayer(l);
        best = std::min(best, seconds(start, Clock::now()) / layers);
      }
      double gbs = kvBytes / best / 1e9;
      // Quantized bench types are token-axis integer codes: the fixed-point
      // path's pair products when int-dots is on.
      double macRate = intDots && !type.encoding.empty() && pairMacs > 0
                           ? pairMacs
                           : fmaLanes;
      double fmaBound =
          macRate / macsPerTokenHead * (type.bytesPerToken / hkv) / 1e9;
      std::printf("%-6s %8lld %7lld %11.1f %12.2f %8.2f %6.0f%% %10.1f "
                  "%7.0f%%\n",
                  typeName.c_str(), (long long)ctx, (long long)layers,
                  best * 1e6, kvBytes / 1e6, gbs, 100 * gbs / bandwidth,
                  fmaBound, 100 * gbs / fmaBound);
      if (altEntry) {
        // Paired rounds: this build then the other, each a pass over every
        // layer, so that both see the same machine state.
        auto base = *entry;
        std::vector<double> us[2], ratio;
        for (int r = 0; r < std::max(repeats.getValue(), 5); ++r) {
          for (int v = 0; v < 2; ++v) {
            entry = v ? altEntry : base;
            auto start = Clock::now();
            for (int64_t l = 0; l < layers; ++l)
              runLayer(l);
            us[v].push_back(seconds(start, Clock::now()) / layers * 1e6);
          }
          ratio.push_back(us[1].back() / us[0].back());
        }
        entry = base;
        std::printf(
            "  vs %s: us/layer median %.1f against %.1f, paired "
            "ratio median %.3f (%.3f-%.3f over %zu rounds)\n",
            compare.c_str(), median(us[1]), median(us[0]), median(ratio),
            *std::min_element(ratio.begin(), ratio.end()),
            *std::max_element(ratio.begin(), ratio.end()), ratio.size());
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
