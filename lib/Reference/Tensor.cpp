//===- Tensor.cpp - Dense double tensors for the numeric reference --------===//
//
// Shape bookkeeping, bounds-checked indexing and the abort path of
// KVOPT_REF_CHECK.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Reference/Tensor.h"

#include <cstdio>
#include <cstdlib>

using namespace kvopt::reference;

void detail::checkFailed(const char *condition, const char *message,
                         const char *file, int line) {
  std::fprintf(stderr, "kvopt reference: %s (%s at %s:%d)\n", message,
               condition, file, line);
  std::fflush(stderr);
  std::abort();
}

Tensor::Tensor(std::vector<int64_t> shape, double fill)
    : shape_(std::move(shape)) {
  int64_t count = 1;
  for (int64_t extent : shape_) {
    KVOPT_REF_CHECK(extent >= 0, "tensor extents must be non-negative");
    count *= extent;
  }
  data_.assign(static_cast<size_t>(count), fill);
}

int64_t Tensor::dim(int64_t i) const {
  if (i < 0)
    i += rank();
  KVOPT_REF_CHECK(i >= 0 && i < rank(), "dimension index out of range");
  return shape_[static_cast<size_t>(i)];
}

int64_t Tensor::offset(std::initializer_list<int64_t> index) const {
  KVOPT_REF_CHECK(static_cast<int64_t>(index.size()) == rank(),
                  "index rank does not match tensor rank");
  int64_t linear = 0;
  size_t d = 0;
  for (int64_t i : index) {
    KVOPT_REF_CHECK(i >= 0 && i < shape_[d], "index out of range");
    linear = linear * shape_[d] + i;
    ++d;
  }
  return linear;
}

Tensor Tensor::reshaped(std::vector<int64_t> shape) const {
  Tensor result(std::move(shape));
  KVOPT_REF_CHECK(result.numel() == numel(),
                  "reshape must keep the element count");
  result.data_ = data_;
  return result;
}
