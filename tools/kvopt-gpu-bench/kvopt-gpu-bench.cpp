//===- kvopt-gpu-bench.cpp - decode attention HBM bandwidth on a GPU ------===//
//
// Measures the generated decode + merge kernels over a paged cache on a real
// GPU through the runtime (CUDA memory and launch backends) and prints, per
// case: time per step, bytes one step must read (K, V, scales, queries,
// block tables, lengths, each once), achieved GB/s and that as a fraction of
// the device's measured copy bandwidth. Every case is first checked against
// the double-precision reference (every sequence of the batch), so a figure
// is only printed for kernels that compute the right thing.
//
// Without a CUDA driver or device it says so and measures nothing (exit 0;
// --require-gpu makes that exit 1). --emulate runs the same cases, at the
// sizes given, under the SIMT emulator instead: the numerics check and the
// launch plan, with times that are the emulator's, not a GPU's.
//
//===----------------------------------------------------------------------===//

#include "DecodeHarness.h"
#include "TargetInfo.h"

#include "kvopt/Reference/PagedCache.h"
#include "kvopt/runtime/launch.h"
#include "kvopt/runtime/memory.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace kvopt;
using namespace kvopt::gpu_test;
namespace ref = kvopt::reference;
namespace cl = llvm::cl;

static cl::OptionCategory toolCategory("kvopt-gpu-bench options");
static cl::list<int64_t> contexts("contexts", cl::cat(toolCategory),
                                  cl::desc("context lengths (default "
                                           "1024,4096,16384,32768)"),
                                  cl::CommaSeparated);
static cl::list<std::string> kvTypes("kv-types", cl::cat(toolCategory),
                                     cl::desc("f16,int8,int4 (default all)"),
                                     cl::CommaSeparated);
static cl::opt<int64_t> batch("batch", cl::cat(toolCategory),
                              cl::desc("sequences per step"), cl::init(8));
static cl::opt<int64_t> qHeads("q-heads", cl::cat(toolCategory), cl::init(32));
static cl::opt<int64_t> kvHeads("kv-heads", cl::cat(toolCategory), cl::init(8));
static cl::opt<int64_t> headDim("head-dim", cl::cat(toolCategory),
                                cl::init(128));
static cl::opt<int64_t> pageSize("page-size", cl::cat(toolCategory),
                                 cl::init(16));
static cl::opt<int> repeats("repeats", cl::cat(toolCategory),
                            cl::desc("timed steps per case"), cl::init(20));
static cl::opt<std::string> chip("chip", cl::cat(toolCategory),
                                 cl::desc("target the kernels are generated "
                                          "for (sm_80, sm_90)"),
                                 cl::init("sm_90"));
static cl::opt<int> device("device", cl::cat(toolCategory),
                           cl::desc("CUDA device ordinal"), cl::init(0));
static cl::opt<std::string>
    toolkit("toolkit", cl::cat(toolCategory),
            cl::desc("CUDA toolkit folder; default $CUDA_HOME or "
                     "/usr/local/cuda"),
            cl::init(""));
static cl::opt<bool> requireGpu("require-gpu", cl::cat(toolCategory),
                                cl::desc("exit 1 when no GPU is found"),
                                cl::init(false));
static cl::opt<bool>
    emulate("emulate", cl::cat(toolCategory),
            cl::desc("run the cases under the SIMT emulator (numerics and "
                     "launch plan only; no GPU)"),
            cl::init(false));
static cl::opt<double> copyGiB("copy-gib", cl::cat(toolCategory),
                               cl::desc("device-to-device copy that measures "
                                        "the bandwidth reference"),
                               cl::init(2.0));

using Clock = std::chrono::steady_clock;
static double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

namespace {

/// The bench's case: FlashInfer's decode shape, one sequence; the batch is
/// that sequence's pages copied `batch` times.
std::optional<DecodeCase> benchCase(const std::string &type, int64_t ctx) {
  using K = ref::QuantKind;
  using A = ref::QuantAxis;
  DecodeCase c;
  c.kvHeads = kvHeads;
  c.group = qHeads / kvHeads;
  c.headDim = headDim;
  c.pageSize = pageSize;
  c.lengths = {ctx};
  c.query = c.output = ref::ScalarType::F16;
  if (type == "int8") {
    c.key = c.value =
        Encoding{K::Int8, A::Token, 0, true, ref::ScalarType::F16};
  } else if (type == "int4") {
    c.key = c.value =
        Encoding{K::Int4, A::Token, 32, false, ref::ScalarType::F16};
  } else if (type == "int2") {
    c.key = c.value =
        Encoding{K::Int2, A::Token, 32, false, ref::ScalarType::F16};
  } else if (type == "fp8") {
    c.key = c.value =
        Encoding{K::Fp8E4M3, A::Token, 0, true, ref::ScalarType::F16};
  } else if (type != "f16") {
    return std::nullopt;
  }
  return c;
}

/// Device buffers released on destruction.
struct DeviceBuffers {
  explicit DeviceBuffers(rt::MemoryBackend &mem) : mem(mem) {}
  ~DeviceBuffers() {
    for (rt::DeviceAddress a : owned)
      mem.release(a);
  }
  rt::Status alloc(uint64_t bytes, rt::DeviceAddress &a) {
    KVOPT_RT_RETURN_IF_ERROR(mem.allocate(std::max<uint64_t>(bytes, 256), a));
    owned.push_back(a);
    return rt::Status::ok();
  }
  rt::MemoryBackend &mem;
  std::vector<rt::DeviceAddress> owned;
};

void *ptr(rt::DeviceAddress a) {
  return reinterpret_cast<void *>(static_cast<uintptr_t>(a));
}

/// The GPU: CUDA memory + launch backends and the measured copy bandwidth.
struct Gpu {
  std::unique_ptr<rt::MemoryBackend> mem;
  std::unique_ptr<rt::LaunchBackend> launch;
  double copyGBs = 0;
};

/// Largest error over every sequence of a batched run, each against the
/// single-sequence reference of `d`.
double batchError(const DecodeCase &c, const DecodeData &d,
                  const std::vector<uint16_t> &out16,
                  const std::vector<float> &lse, std::string &where) {
  int64_t rows = c.kvHeads * c.group * c.queryLen, D = c.headDim;
  double worst = 0;
  for (int64_t b = 0; b < batch; ++b) {
    DecodeRun r;
    for (int64_t i = 0; i < rows * D; ++i)
      r.out.push_back(
          float(ref::fromScalarBits(c.output, out16[b * rows * D + i])));
    r.lse.assign(lse.begin() + b * rows, lse.begin() + (b + 1) * rows);
    std::string w;
    double e = worstError(c, d, r, w);
    if (!(e <= worst)) {
      worst = std::isnan(e) ? INFINITY : e;
      where = "sequence " + std::to_string(b) + ": " + w;
    }
  }
  return worst;
}

/// One case on the GPU; prints its row. False on a failure.
bool runOnGpu(Gpu &gpu, const std::string &type, const DecodeCase &c,
              const CompiledDecode &k, const DecodeData &d) {
  auto fail = [&](const std::string &what) {
    fprintf(stderr, "%s %lld: %s\n", type.c_str(), (long long)c.lengths[0],
            what.c_str());
    return false;
  };
  std::string error;
  auto ptx = kernelsToPTX(k.gpuText, chip, error, toolkit);
  if (!ptx)
    return fail(error);
  llvm::SmallString<128> path;
  if (llvm::sys::fs::createTemporaryFile("kvopt-gpu-bench", "ptx", path))
    return fail("cannot create a temporary file");
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    os << *ptx;
  }
  rt::ModuleHandle module = nullptr;
  rt::Status s = gpu.launch->loadModule(std::string(path), module);
  llvm::sys::fs::remove(path);
  if (!s.isOk())
    return fail("loading the PTX: " + s.toString());
  struct Unload {
    rt::LaunchBackend &b;
    rt::ModuleHandle m;
    ~Unload() { b.unloadModule(m); }
  } unload{*gpu.launch, module};
  rt::KernelHandle decode = nullptr, merge = nullptr;
  if (!(s = gpu.launch->getKernel(module, "decode_0", decode)).isOk() ||
      !(s = gpu.launch->getKernel(module, "merge_0", merge)).isOk())
    return fail(s.toString());

  int64_t L = c.lengths[0], Hkv = c.kvHeads, D = c.headDim, Hq = Hkv * c.group,
          rowsPerSeq = Hq * c.queryLen;
  auto target = gpugen::getTargetInfo(chip);
  auto plan = gpugen::planDecodeSplits(*target, batch, Hkv, L, k.tileTokens);
  int64_t rows = batch * rowsPerSeq;

  // The batch: sequence b reads its own copy of sequence 0's pages.
  int64_t seqPages = d.maxPages;
  uint64_t poolBytes = d.pool.size();
  int64_t pageBytes = ref::computePageLayout(d.format).pageBytes;
  int64_t numPages0 = static_cast<int64_t>(poolBytes) / pageBytes;
  std::vector<int32_t> table(batch * seqPages), lens(batch, int32_t(L));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < seqPages; ++i)
      table[b * seqPages + i] = d.table[i] + int32_t(b * numPages0);
  std::vector<uint16_t> q;
  for (int64_t b = 0; b < batch; ++b)
    q.insert(q.end(), d.q16.begin(), d.q16.end());

  DeviceBuffers buf(*gpu.mem);
  rt::DeviceAddress dq, dpool, dtable, dlens, dpout, dplse, dout, dlse;
  uint64_t partRows = rows * plan.splits;
  if (!(s = buf.alloc(q.size() * 2, dq)).isOk() ||
      !(s = buf.alloc(poolBytes * batch, dpool)).isOk() ||
      !(s = buf.alloc(table.size() * 4, dtable)).isOk() ||
      !(s = buf.alloc(lens.size() * 4, dlens)).isOk() ||
      !(s = buf.alloc(partRows * D * 4, dpout)).isOk() ||
      !(s = buf.alloc(partRows * 4, dplse)).isOk() ||
      !(s = buf.alloc(rows * D * 2, dout)).isOk() ||
      !(s = buf.alloc(rows * 4, dlse)).isOk())
    return fail("device allocation: " + s.toString());
  for (int64_t b = 0; b < batch && s.isOk(); ++b)
    s = gpu.mem->copyFromHost(dpool + b * poolBytes, d.pool.data(), poolBytes);
  if (s.isOk())
    s = gpu.mem->copyFromHost(dq, q.data(), q.size() * 2);
  if (s.isOk())
    s = gpu.mem->copyFromHost(dtable, table.data(), table.size() * 4);
  if (s.isOk())
    s = gpu.mem->copyFromHost(dlens, lens.data(), lens.size() * 4);
  if (!s.isOk())
    return fail("upload: " + s.toString());

  simt::ParamPack dp, mp;
  dp.memref(static_cast<uint16_t *>(ptr(dq)), {int64_t(q.size())})
      .memref(static_cast<uint8_t *>(ptr(dpool)), {int64_t(poolBytes * batch)})
      .memref(static_cast<int32_t *>(ptr(dtable)), {int64_t(table.size())})
      .memref(static_cast<int32_t *>(ptr(dlens)), {int64_t(lens.size())})
      .memref(static_cast<float *>(ptr(dpout)), {int64_t(partRows * D)})
      .memref(static_cast<float *>(ptr(dplse)), {int64_t(partRows)})
      .scalar<int32_t>(int32_t(seqPages))
      .scalar<int32_t>(int32_t(plan.splits))
      .scalar<int32_t>(int32_t(plan.chunkTokens));
  mp.memref(static_cast<float *>(ptr(dpout)), {int64_t(partRows * D)})
      .memref(static_cast<float *>(ptr(dplse)), {int64_t(partRows)})
      .memref(static_cast<uint16_t *>(ptr(dout)), {int64_t(rows * D)})
      .memref(static_cast<float *>(ptr(dlse)), {int64_t(rows)})
      .scalar<int32_t>(int32_t(plan.splits));
  rt::Dim3 dGrid{uint32_t(plan.splits), uint32_t(Hkv), uint32_t(batch)},
      dBlock{uint32_t(k.threads), 1, 1},
      mGrid{uint32_t(rowsPerSeq), uint32_t(batch), 1},
      mBlock{uint32_t(k.mergeThreads), 1, 1};
  auto step = [&]() {
    rt::Status st =
        gpu.launch->launch(decode, dGrid, dBlock, 0, dp.data(), nullptr);
    if (st.isOk())
      st = gpu.launch->launch(merge, mGrid, mBlock, 0, mp.data(), nullptr);
    return st;
  };

  // Checked first: every sequence against the reference.
  if (!(s = step()).isOk() || !(s = gpu.launch->synchronize(nullptr)).isOk())
    return fail("launch: " + s.toString());
  std::vector<uint16_t> out(rows * D);
  std::vector<float> lse(rows);
  if (!(s = gpu.mem->copyToHost(out.data(), dout, out.size() * 2)).isOk() ||
      !(s = gpu.mem->copyToHost(lse.data(), dlse, lse.size() * 4)).isOk())
    return fail("download: " + s.toString());
  std::string where;
  double err = batchError(c, d, out, lse, where);
  if (!(err <= 1.0))
    return fail("wrong result (error/tolerance " + std::to_string(err) + ", " +
                where + "); not timed");

  auto start = Clock::now();
  for (int r = 0; r < repeats && s.isOk(); ++r)
    s = step();
  if (s.isOk())
    s = gpu.launch->synchronize(nullptr);
  if (!s.isOk())
    return fail("timed launches: " + s.toString());
  double t = seconds(start, Clock::now()) / repeats;
  double bytes = double(d.minimalBytes) * batch;
  double gbs = bytes / t / 1e9;
  printf("%-5s %8lld %6lld %7lld %10.1f %10.2f %9.1f %6.0f%% %8.3f\n",
         type.c_str(), (long long)L, (long long)batch, (long long)plan.splits,
         t * 1e6, bytes / 1e6, gbs, 100 * gbs / gpu.copyGBs, err);
  fflush(stdout);
  return true;
}

/// Device-to-device copy bandwidth (bytes read + written per second).
rt::Status measureCopy(Gpu &gpu) {
  uint64_t bytes = static_cast<uint64_t>(copyGiB * (1ull << 30));
  DeviceBuffers buf(*gpu.mem);
  rt::DeviceAddress a, b;
  KVOPT_RT_RETURN_IF_ERROR(buf.alloc(bytes, a));
  KVOPT_RT_RETURN_IF_ERROR(buf.alloc(bytes, b));
  KVOPT_RT_RETURN_IF_ERROR(gpu.mem->copy(b, a, bytes)); // warm-up
  KVOPT_RT_RETURN_IF_ERROR(gpu.launch->synchronize(nullptr));
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    auto start = Clock::now();
    KVOPT_RT_RETURN_IF_ERROR(gpu.mem->copy(b, a, bytes));
    KVOPT_RT_RETURN_IF_ERROR(gpu.launch->synchronize(nullptr));
    best = std::min(best, seconds(start, Clock::now()));
  }
  gpu.copyGBs = 2.0 * bytes / best / 1e9;
  return rt::Status::ok();
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(toolCategory);
  cl::ParseCommandLineOptions(argc, argv,
                              "kvopt GPU decode-attention bandwidth bench\n");
  std::vector<int64_t> ctxs(contexts.begin(), contexts.end());
  if (ctxs.empty())
    ctxs = {1024, 4096, 16384, 32768};
  std::vector<std::string> types(kvTypes.begin(), kvTypes.end());
  if (types.empty())
    types = {"f16", "int8", "int4"};
  if (batch < 1 || repeats < 1 || kvHeads < 1 || qHeads % kvHeads) {
    llvm::errs() << "kvopt-gpu-bench: --batch and --repeats must be >= 1 and "
                    "--q-heads a multiple of --kv-heads\n";
    return 2;
  }
  if (!gpugen::getTargetInfo(chip)) {
    llvm::errs() << "kvopt-gpu-bench: unknown --chip '" << chip
                 << "' (sm_80, sm_90)\n";
    return 2;
  }
  for (int64_t ctx : ctxs)
    if (ctx < 1) {
      llvm::errs() << "kvopt-gpu-bench: --contexts must be >= 1, got " << ctx
                   << "\n";
      return 2;
    }
  for (const std::string &t : types)
    if (!benchCase(t, 1)) {
      llvm::errs() << "kvopt-gpu-bench: unknown --kv-types entry '" << t
                   << "' (f16, int8, int4, int2, fp8)\n";
      return 2;
    }

  Gpu gpu;
  bool dryRun = false;
  if (!emulate) {
    rt::Status s = rt::createCudaMemory(device, gpu.mem);
    if (s.isOk())
      s = rt::createCudaLaunchBackend(device, gpu.launch);
    if (!s.isOk()) {
      printf("kvopt-gpu-bench: no CUDA driver/device (%s): nothing "
             "measured; the cases' PTX and launch plans only (--emulate "
             "checks their numerics without a GPU)\n",
             s.toString().c_str());
      if (requireGpu)
        return 1;
      dryRun = true;
    } else if (!(s = measureCopy(gpu)).isOk()) {
      fprintf(stderr, "kvopt-gpu-bench: copy bandwidth: %s\n",
              s.toString().c_str());
      return 1;
    }
    if (!dryRun)
      printf("device-to-device copy bandwidth: %.1f GB/s (read + write, "
             "%.1f GiB)\n",
             gpu.copyGBs, double(copyGiB));
  }
  printf("decode attention, paged (page %lld), %lld q heads / %lld KV heads, "
         "head dim %lld, kernels for %s%s\n",
         (long long)pageSize, (long long)qHeads, (long long)kvHeads,
         (long long)headDim, chip.c_str(),
         emulate ? ", under the SIMT emulator (times are the emulator's)" : "");
  if (dryRun)
    printf("%-5s %8s %6s %7s %10s\n", "kv", "context", "batch", "splits",
           "PTX bytes");
  else if (emulate)
    printf("%-5s %8s %6s %7s %10s %10s %9s\n", "kv", "context", "batch",
           "splits", "ms/step", "MB/step", "err/tol");
  else
    printf("%-5s %8s %6s %7s %10s %10s %9s %7s %8s\n", "kv", "context", "batch",
           "splits", "us/step", "MB/step", "GB/s", "of BW", "err/tol");

  int status = 0;
  for (const std::string &type : types) {
    for (int64_t len : ctxs) {
      DecodeCase c = *benchCase(type, len);
      std::string error;
      auto k = compileDecode(c, chip, error);
      if (!k) {
        fprintf(stderr, "%s %lld: %s\n", type.c_str(), (long long)len,
                error.c_str());
        status = 1;
        continue;
      }
      if (dryRun) {
        auto ptx = kernelsToPTX(k->gpuText, chip, error, toolkit);
        if (!ptx) {
          fprintf(stderr, "%s %lld: %s\n", type.c_str(), (long long)len,
                  error.c_str());
          status = 1;
          continue;
        }
        auto plan = gpugen::planDecodeSplits(
            *gpugen::getTargetInfo(chip), batch, kvHeads, len, k->tileTokens);
        printf("%-5s %8lld %6lld %7lld %10zu\n", type.c_str(), (long long)len,
               (long long)batch, (long long)plan.splits, ptx->size());
        fflush(stdout);
        continue;
      }
      DecodeData d = makeDecodeData(c);
      if (!emulate) {
        if (!runOnGpu(gpu, type, c, *k, d))
          status = 1;
        continue;
      }
      // The emulator runs one sequence (the batch only repeats it).
      auto start = Clock::now();
      DecodeRun r = runDecode(c, *k, d, simt::Schedule::Forward, 0, chip);
      double t = seconds(start, Clock::now());
      std::string where;
      double err = worstError(c, d, r, where);
      bool ok = r.decode.ok() && r.merge.ok() && err <= 1.0;
      printf("%-5s %8lld %6d %7lld %10.1f %10.2f %9.3f%s\n", type.c_str(),
             (long long)len, 1, (long long)r.splits, t * 1e3,
             d.minimalBytes / 1e6, err, ok ? "" : "  FAILED");
      if (!ok) {
        fprintf(stderr, "%s %lld: %s %s%s\n", type.c_str(), (long long)len,
                where.c_str(), r.decode.text().c_str(), r.merge.text().c_str());
        status = 1;
      }
      fflush(stdout);
    }
  }
  return status;
}
