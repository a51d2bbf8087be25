//===- Passes.td - SIMT emulator passes ---------------------*- tablegen -*-===//
//
// The pass that turns NVVM-lowered GPU kernels into host code for the SIMT
// emulator runtime (simt/).
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_SIMT_PASSES_TD
#define KVOPT_CODEGEN_SIMT_PASSES_TD

include "mlir/Pass/PassBase.td"

def SIMTEmulate : Pass<"kv-simt-emulate", "::mlir::ModuleOp"> {
  let summary = "make NVVM-lowered GPU kernels runnable on the host under the "
                "SIMT emulator";
  let description = [{
    Takes a module whose `gpu.module`s were lowered by `convert-gpu-to-nvvm`
    (LLVM dialect plus nvvm ops) and rewrites it into host LLVM dialect that
    runs under the fiber runtime in `simt/` (see docs/SIMT.md):

    1. Moves every `gpu.module` body into the top module.
    2. With `count-ops`, adds the number of operations of each basic block to
       the runtime's `__kv_simt_ops` counter when the block starts.
    3. Instruments loads, stores and atomics by address space, before the
       address spaces are erased: global (1, or generic pointers traced to a
       kernel argument) and shared (3) accesses call
       `__kv_simt_{ld,st}_{global,shared}` with the byte count, a site index
       and, for shared memory, the variable they were traced to; private
       accesses are left alone; other generic ones call
       `__kv_simt_{ld,st}_generic`. Each hook returns the pointer to use.
    4. Replaces every nvvm op through one table (op name -> runtime symbol):
       special registers, barrier0/barrier, shfl.sync (all modes, both
       result forms), vote.sync, redux.sync, bar.warp.sync. Any other nvvm
       op is an error naming it.
    5. Lays out all `addr_space = 3` globals (static ones, then the
       zero-sized dynamic ones) in one shared segment, separated by red
       zones, and replaces their addresses with offsets from
       `__kv_simt_smem_base()`.
    6. Erases all address spaces and strips gpu/nvvm attributes.
    7. Emits, per kernel `K`, `K_emu_packed(!llvm.ptr)` (cuLaunchKernel's
       kernelParams convention) and the descriptor `K_emu_desc` (layout in
       simt/include/kvopt/simt/ABI.h), and sets the host target triple.

    Example: `nvvm.read.ptx.sreg.tid.x : i32` becomes
    `llvm.call @__kv_simt_sreg_tid_x() : () -> i32`, and `nvvm.barrier0`
    becomes `llvm.call @__kv_simt_barrier(%site) : (i32) -> ()`.
  }];
  let options = [
    Option<"countOps", "count-ops", "bool", /*default=*/"true",
           "count executed operations per basic block">,
    Option<"instrumentGlobal", "instrument-global", "bool", /*default=*/"true",
           "instrument global and generic loads and stores">,
    Option<"instrumentShared", "instrument-shared", "bool", /*default=*/"true",
           "instrument shared-memory loads and stores">,
    Option<"sharedRedZone", "shared-red-zone", "unsigned", /*default=*/"32",
           "bytes left unused between shared variables, so that overflows "
           "land outside every variable">,
    Option<"targetTriple", "target-triple", "std::string",
           /*default=*/"\"x86_64-unknown-linux-gnu\"",
           "llvm.target_triple of the result">
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

#endif // KVOPT_CODEGEN_SIMT_PASSES_TD
