//===- Fiber.cpp - x86-64 context switch and fiber stacks -----------------===//
//
// The context switch follows the System V x86-64 ABI: rbx, rbp, r12-r15,
// the MXCSR control bits and the x87 control word are callee-saved;
// everything else is caller-saved and already spilled by the compiler at the
// call to kvopt_simt_switch.
//
//===----------------------------------------------------------------------===//

#include "Fiber.h"

#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "the SIMT runtime's context switch is written for x86-64"
#endif

// Saved frame, from the saved stack pointer upwards:
//   [0] mxcsr (4 bytes) | x87 cw (2 bytes), [8] r15, [16] r14, [24] r13,
//   [32] r12, [40] rbx, [48] rbp, [56] return address.
asm(R"(
  .text
  .globl kvopt_simt_switch
  .hidden kvopt_simt_switch
  .type kvopt_simt_switch,@function
  .p2align 4
kvopt_simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size kvopt_simt_switch, .-kvopt_simt_switch

  .globl kvopt_simt_fiber_start
  .hidden kvopt_simt_fiber_start
  .type kvopt_simt_fiber_start,@function
  .p2align 4
kvopt_simt_fiber_start:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size kvopt_simt_fiber_start, .-kvopt_simt_fiber_start
)");

extern "C" void kvopt_simt_fiber_start();

namespace kvopt::simt {

void *makeFiberContext(void *stackBase, size_t stackBytes,
                       void (*entry)(void *), void *arg) {
  auto top =
      (reinterpret_cast<uintptr_t>(stackBase) + stackBytes) & ~uintptr_t(15);
  // After the switch pops 64 bytes, rsp must be 16-byte aligned so that the
  // `callq` in kvopt_simt_fiber_start enters `entry` with the ABI alignment.
  auto *frame = reinterpret_cast<uint64_t *>(top - 16 - 64);
  uint32_t mxcsr;
  uint16_t fpcw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpcw));
  uint64_t control = mxcsr | (uint64_t(fpcw) << 32);
  frame[0] = control;
  frame[1] = 0;                                 // r15
  frame[2] = 0;                                 // r14
  frame[3] = reinterpret_cast<uint64_t>(entry); // r13
  frame[4] = reinterpret_cast<uint64_t>(arg);   // r12
  frame[5] = 0;                                 // rbx
  frame[6] = 0;                                 // rbp
  frame[7] = reinterpret_cast<uint64_t>(&kvopt_simt_fiber_start);
  return frame;
}

StackPool::~StackPool() { release(); }

void StackPool::release() {
  if (base_)
    munmap(base_, mapped_);
  base_ = nullptr;
  count_ = bytes_ = stride_ = mapped_ = 0;
}

bool StackPool::reserve(size_t count, size_t bytes) {
  size_t page = size_t(sysconf(_SC_PAGESIZE));
  bytes = (bytes + page - 1) / page * page;
  if (base_ && count <= count_ && bytes == bytes_)
    return true;
  release();
  guard_ = page;
  stride_ = bytes + guard_;
  mapped_ = stride_ * count;
  void *m = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED)
    return false;
  base_ = static_cast<char *>(m);
  // The lowest page of each stack is a guard: an overflow faults instead of
  // silently corrupting the neighbouring fiber's stack.
  for (size_t i = 0; i < count; ++i)
    mprotect(base_ + i * stride_, guard_, PROT_NONE);
  count_ = count;
  bytes_ = bytes;
  return true;
}

} // namespace kvopt::simt
