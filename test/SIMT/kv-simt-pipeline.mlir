// RUN: mlir-opt %s --pass-pipeline='builtin.module(gpu.module(convert-scf-to-cf,convert-gpu-to-nvvm,canonicalize,cse,reconcile-unrealized-casts))' \
// RUN:   | kvopt-opt --kv-simt-emulate | FileCheck %s --implicit-check-not=nvvm. --implicit-check-not=gpu. --implicit-check-not='!llvm.ptr<'
// RUN: mlir-opt %s --pass-pipeline='builtin.module(gpu.module(convert-scf-to-cf,convert-gpu-to-nvvm,canonicalize,cse,reconcile-unrealized-casts))' \
// RUN:   | mlir-opt --load-pass-plugin=%kvopt_lib/libKVOptPlugin.so --pass-pipeline='builtin.module(kv-simt-emulate)' | FileCheck %s --implicit-check-not=nvvm.

// The real flow: gpu dialect -> upstream convert-gpu-to-nvvm (what ptxas
// sees) -> kv-simt-emulate, in kvopt-opt or as a plugin of stock mlir-opt.
// No nvvm op, gpu op or address space survives; the workgroup buffer is in
// the shared table and math.exp is a libdevice call the runtime provides.
// CHECK: llvm.func @__nv_expf(f32) -> f32
// CHECK-LABEL: llvm.func @softmax_row(
// CHECK: llvm.call @__kv_simt_sreg_tid_x()
// CHECK: llvm.call @__kv_simt_ld_global(
// CHECK: llvm.call @__kv_simt_shfl(
// CHECK: llvm.call @__kv_simt_st_shared(
// CHECK: llvm.call @__kv_simt_barrier(
// CHECK: llvm.call @__kv_simt_ld_shared(
// CHECK: llvm.call @__nv_expf(
// CHECK: llvm.call @__kv_simt_st_global(
// CHECK: @__kv_simt_str_{{[0-9]+}}("__wg_softmax_row_0\00")
// CHECK: llvm.func @softmax_row_emu_packed(
// CHECK: llvm.mlir.global external constant @softmax_row_emu_desc()
module attributes {gpu.container_module} {
  gpu.module @kernels {
    // out[t] = exp(in[t] - max over the warp), 32 threads.
    gpu.func @softmax_row(%in: memref<32xf32>, %out: memref<32xf32>)
        workgroup(%m: memref<1xf32, #gpu.address_space<workgroup>>) kernel {
      %c0 = arith.constant 0 : index
      %o1 = arith.constant 1 : i32
      %w = arith.constant 32 : i32
      %tid = gpu.thread_id x
      %x = memref.load %in[%tid] : memref<32xf32>
      %y, %ok = gpu.shuffle xor %x, %o1, %w : f32
      %mx = arith.maximumf %x, %y : f32
      %first = arith.cmpi eq, %tid, %c0 : index
      scf.if %first {
        memref.store %mx, %m[%c0] : memref<1xf32, #gpu.address_space<workgroup>>
      }
      gpu.barrier
      %mm = memref.load %m[%c0] : memref<1xf32, #gpu.address_space<workgroup>>
      %d = arith.subf %x, %mm : f32
      %e = math.exp %d : f32
      memref.store %e, %out[%tid] : memref<32xf32>
      gpu.return
    }
  }
}
