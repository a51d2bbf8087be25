//===- Fiber.h - Stackful fibers with a hand-written x86-64 switch -*- C++
//-*-===//
//
// A fiber is a saved stack pointer. switchFiber saves the callee-saved
// registers, MXCSR and the x87 control word on the current stack, stores the
// stack pointer, and resumes another fiber: about a dozen instructions, no
// system call (glibc's swapcontext makes an rt_sigprocmask call per switch).
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_SIMT_FIBER_H
#define KVOPT_SIMT_FIBER_H

#include <cstddef>
#include <cstdint>

namespace kvopt::simt {

/// Saves the current context into *from and resumes the context `to`.
extern "C" void kvopt_simt_switch(void **from, void *to);

/// Prepares a stack so that the first switch to the returned context calls
/// entry(arg). `entry` must never return.
void *makeFiberContext(void *stackBase, size_t stackBytes,
                       void (*entry)(void *), void *arg);

/// A pool of fiber stacks with guard pages, reused across launches.
class StackPool {
public:
  ~StackPool();
  /// Makes sure `count` stacks of `bytes` each exist; returns false if the
  /// memory could not be mapped.
  bool reserve(size_t count, size_t bytes);
  void *stack(size_t i) const { return base_ + i * stride_ + guard_; }
  size_t stackBytes() const { return bytes_; }

private:
  void release();
  char *base_ = nullptr;
  size_t count_ = 0, bytes_ = 0, stride_ = 0, guard_ = 0, mapped_ = 0;
};

} // namespace kvopt::simt

#endif // KVOPT_SIMT_FIBER_H
