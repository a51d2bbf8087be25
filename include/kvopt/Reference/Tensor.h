//===- Tensor.h - Dense double tensors for the numeric reference -*- C++
//-*-===//
//
// A minimal row-major tensor of doubles and the argument checks shared by the
// numeric reference.
//
//===----------------------------------------------------------------------===//
//
// The reference is the oracle every kernel is tested against, so it favours
// obviousness over speed: one owning container, row-major, indexed through a
// single bounds-checked function. Argument errors abort with a message rather
// than throw, because the library must build with -fno-exceptions (LLVM's
// flags) and a broken test setup should stop loudly, not be caught.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_REFERENCE_TENSOR_H
#define KVOPT_REFERENCE_TENSOR_H

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace kvopt {
namespace reference {

namespace detail {
/// Prints "kvopt reference: <message> (<condition> at <file>:<line>)" to
/// stderr and aborts.
[[noreturn]] void checkFailed(const char *condition, const char *message,
                              const char *file, int line);
} // namespace detail

/// Aborts with `message` unless `condition` holds. Always on: the reference
/// is never the hot path, and a silently wrong oracle is worse than a slow one.
#define KVOPT_REF_CHECK(condition, message)                                    \
  do {                                                                         \
    if (!(condition))                                                          \
      ::kvopt::reference::detail::checkFailed(#condition, message, __FILE__,   \
                                              __LINE__);                       \
  } while (false)

/// A dense row-major tensor of doubles. Rank 0 is a scalar with one element.
class Tensor {
public:
  Tensor() = default;
  /// A tensor of the given shape with every element set to `fill`.
  explicit Tensor(std::vector<int64_t> shape, double fill = 0.0);

  const std::vector<int64_t> &shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  /// Size of dimension `i`; negative `i` counts from the back.
  int64_t dim(int64_t i) const;
  int64_t numel() const { return static_cast<int64_t>(data_.size()); }

  /// Element at a full multi-index; aborts when an index is out of range.
  double &at(std::initializer_list<int64_t> index) {
    return data_[offset(index)];
  }
  double at(std::initializer_list<int64_t> index) const {
    return data_[offset(index)];
  }
  /// Row-major linear offset of a full multi-index.
  int64_t offset(std::initializer_list<int64_t> index) const;

  /// The same elements under another shape with the same element count.
  Tensor reshaped(std::vector<int64_t> shape) const;

  double *data() { return data_.data(); }
  const double *data() const { return data_.data(); }
  std::vector<double> &values() { return data_; }
  const std::vector<double> &values() const { return data_; }

private:
  std::vector<int64_t> shape_;
  std::vector<double> data_;
};

} // namespace reference
} // namespace kvopt

#endif // KVOPT_REFERENCE_TENSOR_H
