//===- fake_cuda_driver.cc - A host-memory stand-in for libcuda.so.1 ------===//
//
// Implements the driver entry points the runtime resolves, on host memory,
// so the CUDA memory and launch backends run in tests on machines without a
// GPU (selected with KVOPT_CUDA_DRIVER or an explicit driver path). It keeps
// counters that tests read through fake_cuda_stats() to check that
// allocations, contexts and modules are released. Modules accept any text
// containing ".version"; kernels are the names after ".entry".
//
//===----------------------------------------------------------------------===//

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

// The driver's opaque handle types (global, as in cuda.h).
struct CUctx_st {};
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;

namespace {

struct Module {
  std::string text;
  std::vector<std::string *> functions;
};

struct State {
  std::mutex mutex;
  int liveAllocations = 0;
  int retainedContexts = 0;
  int liveModules = 0;
  int liveStreams = 0;
  int launches = 0;
  unsigned lastGrid[3] = {0, 0, 0};
  unsigned lastBlock[3] = {0, 0, 0};
  unsigned lastShared = 0;
  std::string lastKernel;
  uint64_t lastFirstArg = 0;
};

State &state() {
  static State s;
  return s;
}

CUctx_st ctxToken;

} // namespace

extern "C" {

int cuInit(unsigned) { return std::getenv("FAKE_CUDA_NO_DEVICE") ? 100 : 0; }
int cuDeviceGetCount(int *count) {
  *count = 1;
  return 0;
}
int cuDeviceGet(int *device, int ordinal) {
  *device = ordinal;
  return 0;
}
int cuDevicePrimaryCtxRetain(CUctx_st **context, int) {
  std::lock_guard<std::mutex> lock(state().mutex);
  ++state().retainedContexts;
  *context = &ctxToken;
  return 0;
}
int cuDevicePrimaryCtxRelease_v2(int) {
  std::lock_guard<std::mutex> lock(state().mutex);
  --state().retainedContexts;
  return 0;
}
int cuCtxSetCurrent(CUctx_st *context) {
  return context == &ctxToken ? 0 : 201;
}
int cuMemAlloc_v2(unsigned long long *ptr, size_t bytes) {
  // Larger than 1 GiB fails like a full device.
  if (bytes > (size_t(1) << 30))
    return 2; // CUDA_ERROR_OUT_OF_MEMORY
  void *p = std::malloc(bytes);
  if (!p)
    return 2;
  std::lock_guard<std::mutex> lock(state().mutex);
  ++state().liveAllocations;
  *ptr = reinterpret_cast<uintptr_t>(p);
  return 0;
}
int cuMemFree_v2(unsigned long long ptr) {
  std::free(reinterpret_cast<void *>(ptr));
  std::lock_guard<std::mutex> lock(state().mutex);
  --state().liveAllocations;
  return 0;
}
int cuMemcpyDtoD_v2(unsigned long long dst, unsigned long long src,
                    size_t bytes) {
  std::memmove(reinterpret_cast<void *>(dst), reinterpret_cast<void *>(src),
               bytes);
  return 0;
}
int cuMemcpyHtoD_v2(unsigned long long dst, const void *src, size_t bytes) {
  std::memcpy(reinterpret_cast<void *>(dst), src, bytes);
  return 0;
}
int cuMemcpyDtoH_v2(void *dst, unsigned long long src, size_t bytes) {
  std::memcpy(dst, reinterpret_cast<void *>(src), bytes);
  return 0;
}
int cuModuleLoadData(CUmod_st **module, const void *image) {
  const char *text = static_cast<const char *>(image);
  if (!std::strstr(text, ".version"))
    return 218; // CUDA_ERROR_INVALID_PTX
  std::lock_guard<std::mutex> lock(state().mutex);
  ++state().liveModules;
  *module = reinterpret_cast<CUmod_st *>(new Module{text, {}});
  return 0;
}
int cuModuleUnload(CUmod_st *module) {
  Module *m = reinterpret_cast<Module *>(module);
  for (std::string *f : m->functions)
    delete f;
  delete m;
  std::lock_guard<std::mutex> lock(state().mutex);
  --state().liveModules;
  return 0;
}
int cuModuleGetFunction(CUfunc_st **function, CUmod_st *module,
                        const char *name) {
  Module *m = reinterpret_cast<Module *>(module);
  if (m->text.find(std::string(".entry ") + name + "(") == std::string::npos)
    return 500; // CUDA_ERROR_NOT_FOUND
  m->functions.push_back(new std::string(name));
  *function = reinterpret_cast<CUfunc_st *>(m->functions.back());
  return 0;
}
int cuLaunchKernel(CUfunc_st *function, unsigned gx, unsigned gy, unsigned gz,
                   unsigned bx, unsigned by, unsigned bz, unsigned shared,
                   CUstream_st *, void **params, void **) {
  std::lock_guard<std::mutex> lock(state().mutex);
  State &s = state();
  ++s.launches;
  s.lastKernel = *reinterpret_cast<std::string *>(function);
  s.lastGrid[0] = gx, s.lastGrid[1] = gy, s.lastGrid[2] = gz;
  s.lastBlock[0] = bx, s.lastBlock[1] = by, s.lastBlock[2] = bz;
  s.lastShared = shared;
  s.lastFirstArg = params ? *static_cast<uint64_t *>(params[0]) : 0;
  return 0;
}
int cuStreamCreate(CUstream_st **stream, unsigned) {
  std::lock_guard<std::mutex> lock(state().mutex);
  ++state().liveStreams;
  *stream = reinterpret_cast<CUstream_st *>(new int(0));
  return 0;
}
int cuStreamDestroy_v2(CUstream_st *stream) {
  delete reinterpret_cast<int *>(stream);
  std::lock_guard<std::mutex> lock(state().mutex);
  --state().liveStreams;
  return 0;
}
int cuStreamSynchronize(CUstream_st *) { return 0; }
int cuGetErrorName(int code, const char **name) {
  switch (code) {
  case 2:
    *name = "CUDA_ERROR_OUT_OF_MEMORY";
    return 0;
  case 218:
    *name = "CUDA_ERROR_INVALID_PTX";
    return 0;
  case 500:
    *name = "CUDA_ERROR_NOT_FOUND";
    return 0;
  default:
    *name = nullptr;
    return 1;
  }
}
int cuGetErrorString(int code, const char **text) {
  *text = code == 218 ? "a PTX JIT compilation failed" : nullptr;
  return *text ? 0 : 1;
}

/// Test hook: counters of live objects and the last launch.
void fake_cuda_stats(int *liveAllocations, int *retainedContexts,
                     int *liveModules, int *liveStreams, int *launches,
                     unsigned *lastGrid, unsigned *lastBlock,
                     unsigned *lastShared, char *lastKernel,
                     uint64_t *lastFirstArg) {
  std::lock_guard<std::mutex> lock(state().mutex);
  State &s = state();
  *liveAllocations = s.liveAllocations;
  *retainedContexts = s.retainedContexts;
  *liveModules = s.liveModules;
  *liveStreams = s.liveStreams;
  *launches = s.launches;
  std::memcpy(lastGrid, s.lastGrid, sizeof(s.lastGrid));
  std::memcpy(lastBlock, s.lastBlock, sizeof(s.lastBlock));
  *lastShared = s.lastShared;
  std::strncpy(lastKernel, s.lastKernel.c_str(), 63);
  lastKernel[63] = 0;
  *lastFirstArg = s.lastFirstArg;
}

} // extern "C"
