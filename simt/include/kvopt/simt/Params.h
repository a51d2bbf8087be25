//===- Params.h - cuLaunchKernel-style parameter arrays ---------*- C++ -*-===//
//
// Builds the `void **params` array both the CUDA driver and the emulator
// take: params[i] points at the value of the kernel's i-th LLVM-level
// argument. Kernels lowered with MLIR's default calling convention expand
// every memref into allocated pointer, aligned pointer, offset, sizes and
// strides; memref() appends exactly those slots.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_SIMT_PARAMS_H
#define KVOPT_SIMT_PARAMS_H

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <vector>

namespace kvopt::simt {

/// Owns the argument values; data() stays valid while the pack lives.
class ParamPack {
public:
  /// Appends one argument of at most 8 bytes.
  template <class T> ParamPack &scalar(T value) {
    static_assert(sizeof(T) <= 8, "one 8-byte slot per argument");
    Cell &c = cells.emplace_back();
    memcpy(c.bytes, &value, sizeof(T));
    ptrs.push_back(c.bytes);
    return *this;
  }
  /// Appends a memref descriptor of a dense row-major buffer at `p`:
  /// allocated, aligned, offset 0, `sizes`, row-major strides.
  template <class T>
  ParamPack &memref(T *p, const std::vector<int64_t> &sizes) {
    scalar(p);
    scalar(p);
    scalar<int64_t>(0);
    for (int64_t s : sizes)
      scalar(s);
    std::vector<int64_t> strides(sizes.size());
    int64_t stride = 1;
    for (size_t i = sizes.size(); i-- > 0;) {
      strides[i] = stride;
      stride *= sizes[i];
    }
    for (int64_t s : strides)
      scalar(s);
    return *this;
  }
  void **data() { return ptrs.data(); }
  size_t size() const { return ptrs.size(); }

private:
  struct Cell {
    alignas(8) char bytes[8];
  };
  std::deque<Cell> cells; // stable addresses as the pack grows
  std::vector<void *> ptrs;
};

} // namespace kvopt::simt

#endif // KVOPT_SIMT_PARAMS_H
