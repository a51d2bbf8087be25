// RUN: kvopt-opt %s -split-input-file --kv-simt-emulate | FileCheck %s
// RUN: kvopt-opt %s -split-input-file --kv-simt-emulate="shared-red-zone=0 count-ops=false" | FileCheck %s --check-prefix=NORZ

// Shared globals share one segment: static ones in order, each 16-byte
// aligned and followed by a 32-byte red zone; the dynamic (zero-sized) one
// after them. Their addresses become offsets from __kv_simt_smem_base().
// The gpu.module is gone, and so are gpu/nvvm attributes. The entry block
// counts its 6 executed ops (constants and addresses execute nothing).
// CHECK: module attributes {llvm.target_triple = "x86_64-unknown-linux-gnu"} {
// CHECK-NOT: gpu.module
// CHECK-LABEL: llvm.func @k(
// CHECK-SAME: %{{[^:]*}}: !llvm.ptr {llvm.noalias}, %{{[^:]*}}: i64) {
// CHECK: %[[OPS:.*]] = llvm.mlir.addressof @__kv_simt_ops : !llvm.ptr
// CHECK: %[[OLD:.*]] = llvm.load %[[OPS]] : !llvm.ptr -> i64
// CHECK: %[[N:.*]] = llvm.mlir.constant(6 : i64) : i64
// CHECK: %[[NEW:.*]] = llvm.add %[[OLD]], %[[N]] : i64
// CHECK: llvm.store %[[NEW]], %[[OPS]] : i64, !llvm.ptr
// CHECK: %[[BASE:.*]] = llvm.call @__kv_simt_smem_base() : () -> !llvm.ptr
// CHECK: llvm.getelementptr %[[BASE]][0] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK: %[[BASE2:.*]] = llvm.call @__kv_simt_smem_base() : () -> !llvm.ptr
// CHECK: llvm.getelementptr %[[BASE2]][160] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK: %[[BASE3:.*]] = llvm.call @__kv_simt_smem_base() : () -> !llvm.ptr
// CHECK: llvm.getelementptr %[[BASE3]][208] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK-NOT: addr_space = 3
// CHECK: llvm.mlir.global external @__kv_simt_ops() {addr_space = 0 : i32} : i64
// CHECK: llvm.mlir.global internal constant @__kv_simt_shared_vars() {{.*}} : !llvm.array<3 x struct<(ptr, i64, i64)>>
// CHECK: llvm.mlir.constant(0 : i64)
// CHECK: llvm.mlir.constant(128 : i64)
// CHECK: llvm.mlir.constant(160 : i64)
// CHECK: llvm.mlir.constant(4 : i64)
// CHECK: llvm.mlir.constant(208 : i64)
// CHECK: llvm.mlir.constant(-1 : i64)
// CHECK: @__kv_simt_str_{{[0-9]+}}("a\00")
// CHECK: @__kv_simt_str_{{[0-9]+}}("b\00")
// CHECK: @__kv_simt_str_{{[0-9]+}}("dyn\00")
// The void** entry: slot i holds a pointer to argument i.
// CHECK-LABEL: llvm.func @k_emu_packed(
// CHECK-SAME: %[[P:.*]]: !llvm.ptr) {
// CHECK: %[[S0:.*]] = llvm.getelementptr %[[P]][0] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[A0:.*]] = llvm.load %[[S0]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[V0:.*]] = llvm.load %[[A0]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[S1:.*]] = llvm.getelementptr %[[P]][1] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[A1:.*]] = llvm.load %[[S1]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[V1:.*]] = llvm.load %[[A1]] : !llvm.ptr -> i64
// CHECK: llvm.call @k(%[[V0]], %[[V1]]) : (!llvm.ptr, i64) -> ()
// The descriptor: ABI version, 2 params, name, entry, 3 shared variables,
// 208 static bytes (b ends at 164, + red zone, 16-aligned), sites, block
// (64,1,1).
// CHECK: llvm.mlir.global external constant @k_emu_desc() {{.*}} : !llvm.struct<(i32, i32, ptr, ptr, ptr, i64, i64, ptr, i64, array<3 x i32>, array<3 x i32>)>
// CHECK: llvm.mlir.constant(1 : i32)
// CHECK: llvm.mlir.constant(2 : i32)
// CHECK: llvm.mlir.addressof @k_emu_packed
// CHECK: llvm.mlir.addressof @__kv_simt_shared_vars
// CHECK: llvm.mlir.constant(3 : i64)
// CHECK: llvm.mlir.constant(208 : i64)
// CHECK: llvm.mlir.addressof @__kv_simt_sites
// CHECK: llvm.mlir.constant(64 : i32)
// CHECK-NOT: gpu.kernel
// CHECK-NOT: nvvm.
// NORZ: llvm.getelementptr %{{.*}}[128] : (!llvm.ptr) -> !llvm.ptr, i8
// NORZ: llvm.getelementptr %{{.*}}[144] : (!llvm.ptr) -> !llvm.ptr, i8
// NORZ-NOT: __kv_simt_ops
module attributes {gpu.container_module} {
  gpu.module @m {
    llvm.mlir.global internal @a() {addr_space = 3 : i32} : !llvm.array<32 x f32>
    llvm.mlir.global internal @b() {addr_space = 3 : i32, alignment = 4 : i64} : f32
    llvm.mlir.global internal @dyn() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
    llvm.func @k(%out: !llvm.ptr {llvm.noalias}, %n: i64) attributes {gpu.kernel, gpu.known_block_size = array<i32: 64, 1, 1>, nvvm.kernel, nvvm.maxntid = array<i32: 64, 1, 1>} {
      %c = llvm.mlir.constant(1.0 : f32) : f32
      %0 = llvm.mlir.addressof @a : !llvm.ptr<3>
      llvm.store %c, %0 : f32, !llvm.ptr<3>
      %1 = llvm.mlir.addressof @b : !llvm.ptr<3>
      llvm.store %c, %1 : f32, !llvm.ptr<3>
      %2 = llvm.mlir.addressof @dyn : !llvm.ptr<3>
      llvm.store %c, %2 : f32, !llvm.ptr<3>
      %3 = llvm.load %0 : !llvm.ptr<3> -> f32
      llvm.store %3, %out : f32, !llvm.ptr
      llvm.return
    }
  }
}

// -----

// Identical libdevice declarations from two gpu.modules merge into one.
// CHECK-LABEL: llvm.func @__nv_expf(f32) -> f32
// CHECK-NOT: llvm.func @__nv_expf
// CHECK: llvm.mlir.global external constant @k1_emu_desc()
// CHECK: llvm.mlir.global external constant @k2_emu_desc()
gpu.module @one {
  llvm.func @__nv_expf(f32) -> f32
  llvm.func @k1(%x: f32) attributes {gpu.kernel, nvvm.kernel} {
    %0 = llvm.call @__nv_expf(%x) : (f32) -> f32
    llvm.return
  }
}
gpu.module @two {
  llvm.func @__nv_expf(f32) -> f32
  llvm.func @k2(%x: f32) attributes {gpu.kernel, nvvm.kernel} {
    %0 = llvm.call @__nv_expf(%x) : (f32) -> f32
    llvm.return
  }
}
