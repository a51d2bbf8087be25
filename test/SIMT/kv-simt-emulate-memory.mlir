// RUN: kvopt-opt %s -split-input-file --kv-simt-emulate="count-ops=false" | FileCheck %s
// RUN: kvopt-opt %s -split-input-file --kv-simt-emulate="count-ops=false instrument-global=false" | FileCheck %s --check-prefix=NOGLOBAL

// Accesses are classified by address space before the address spaces are
// erased: addrspace(1) and kernel pointer arguments are global, addrspace(3)
// is shared (with the variable it was traced to), allocas are private and
// left alone. Each hook returns the pointer the access then uses.
// CHECK-LABEL: llvm.func @classify(
// CHECK-SAME: %[[G:[^:]*]]: !llvm.ptr, %[[ARG:[^:]*]]: !llvm.ptr
// CHECK: %[[FOUR:.*]] = llvm.mlir.constant(4 : i64) : i64
// CHECK: %[[S0:.*]] = llvm.mlir.constant(0 : i32) : i32
// CHECK: %[[P0:.*]] = llvm.call @__kv_simt_ld_global(%[[G]], %[[FOUR]], %[[S0]]) : (!llvm.ptr, i64, i32) -> !llvm.ptr
// CHECK: %[[X:.*]] = llvm.load %[[P0]] : !llvm.ptr -> f32
// CHECK: %[[VAR:.*]] = llvm.mlir.constant(0 : i32) : i32
// CHECK: %[[P1:.*]] = llvm.call @__kv_simt_st_shared(%{{.*}}, %{{.*}}, %{{.*}}, %[[VAR]]) : (!llvm.ptr, i64, i32, i32) -> !llvm.ptr
// CHECK: llvm.store %[[X]], %[[P1]] : f32, !llvm.ptr
// CHECK: %[[A:.*]] = llvm.alloca
// CHECK-NEXT: llvm.store %[[X]], %[[A]] : f32, !llvm.ptr
// CHECK: %[[P2:.*]] = llvm.call @__kv_simt_st_global(%[[ARG]], %{{.*}}, %{{.*}}) : (!llvm.ptr, i64, i32) -> !llvm.ptr
// CHECK: llvm.store %{{.*}}, %[[P2]]
// CHECK-NOT: !llvm.ptr<
// CHECK-NOT: llvm.addrspacecast
// CHECK: @__kv_simt_str_0("load global at
// CHECK: @__kv_simt_str_1("store shared at
// CHECK: @__kv_simt_str_2("store global at
// NOGLOBAL-LABEL: llvm.func @classify(
// NOGLOBAL-NOT: __kv_simt_ld_global
// NOGLOBAL: llvm.call @__kv_simt_st_shared
// NOGLOBAL-NOT: __kv_simt_st_global
gpu.module @m {
  llvm.mlir.global internal @buf() {addr_space = 3 : i32} : !llvm.array<32 x f32>
  llvm.func @classify(%g: !llvm.ptr<1>, %arg: !llvm.ptr) attributes {gpu.kernel, nvvm.kernel} {
    %c1 = llvm.mlir.constant(1 : i64) : i64
    %x = llvm.load %g : !llvm.ptr<1> -> f32
    %s = llvm.mlir.addressof @buf : !llvm.ptr<3>
    %e = llvm.getelementptr %s[0, 3] : (!llvm.ptr<3>) -> !llvm.ptr<3>, !llvm.array<32 x f32>
    llvm.store %x, %e : f32, !llvm.ptr<3>
    %a = llvm.alloca %c1 x f32 : (i64) -> !llvm.ptr
    llvm.store %x, %a : f32, !llvm.ptr
    %y = llvm.load %a : !llvm.ptr -> f32
    llvm.store %y, %arg : f32, !llvm.ptr
    llvm.return
  }
}

// -----

// A pointer loaded from memory, or a device function's argument, may point
// anywhere: generic hooks, classified by address at run time. The byte count
// comes from the data layout (16 for vector<4xf32>).
// CHECK-LABEL: llvm.func @helper(
// CHECK-SAME: %[[P:[^:]*]]: !llvm.ptr
// CHECK: %[[SIXTEEN:.*]] = llvm.mlir.constant(16 : i64) : i64
// CHECK: llvm.call @__kv_simt_ld_generic(%[[P]], %[[SIXTEEN]], %{{.*}}) : (!llvm.ptr, i64, i32) -> !llvm.ptr
// A vector of a count that is not a power of two touches its elements only:
// 12 bytes for vector<3xf32>, 6 for vector<3xbf16> (not the 16 and 8 of
// their allocation sizes).
// CHECK-LABEL: llvm.func @odd_vectors(
// CHECK: %[[TWELVE:.*]] = llvm.mlir.constant(12 : i64) : i64
// CHECK: llvm.call @__kv_simt_ld_generic(%{{.*}}, %[[TWELVE]], %{{.*}})
// CHECK: %[[SIX:.*]] = llvm.mlir.constant(6 : i64) : i64
// CHECK: llvm.call @__kv_simt_st_generic(%{{.*}}, %[[SIX]], %{{.*}})
// CHECK-LABEL: llvm.func @indirect(
// CHECK: llvm.call @__kv_simt_ld_global
// CHECK: %[[Q:.*]] = llvm.load %{{.*}} : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.call @__kv_simt_st_generic(%[[Q]]
gpu.module @m {
  llvm.func @helper(%p: !llvm.ptr) -> vector<4xf32> {
    %v = llvm.load %p : !llvm.ptr -> vector<4xf32>
    llvm.return %v : vector<4xf32>
  }
  llvm.func @odd_vectors(%p: !llvm.ptr, %h: vector<3xbf16>) -> vector<3xf32> {
    %v = llvm.load %p : !llvm.ptr -> vector<3xf32>
    llvm.store %h, %p : vector<3xbf16>, !llvm.ptr
    llvm.return %v : vector<3xf32>
  }
  llvm.func @indirect(%pp: !llvm.ptr, %x: f32) attributes {gpu.kernel, nvvm.kernel} {
    %q = llvm.load %pp : !llvm.ptr -> !llvm.ptr
    llvm.store %x, %q : f32, !llvm.ptr
    llvm.return
  }
}

// -----

// Atomics call __kv_simt_atomic with their space (shared 3, global 1) and
// the shared variable.
// CHECK-LABEL: llvm.func @atomics(
// CHECK: %[[SH:.*]] = llvm.mlir.constant(3 : i32) : i32
// CHECK-NEXT: %[[V:.*]] = llvm.mlir.constant(1 : i32) : i32
// CHECK-NEXT: llvm.call @__kv_simt_atomic(%{{.*}}, %{{.*}}, %{{.*}}, %[[SH]], %[[V]]) : (!llvm.ptr, i64, i32, i32, i32) -> !llvm.ptr
// CHECK: llvm.atomicrmw add
// CHECK: %[[SITE:.*]] = llvm.mlir.constant(1 : i32) : i32
// CHECK-NEXT: %[[GL:.*]] = llvm.mlir.constant(1 : i32) : i32
// CHECK-NEXT: %[[NOVAR:.*]] = llvm.mlir.constant(-1 : i32) : i32
// CHECK-NEXT: llvm.call @__kv_simt_atomic(%{{.*}}, %{{.*}}, %[[SITE]], %[[GL]], %[[NOVAR]])
// CHECK: llvm.cmpxchg
gpu.module @m {
  llvm.mlir.global internal @first() {addr_space = 3 : i32} : !llvm.array<4 x i32>
  llvm.mlir.global internal @counter() {addr_space = 3 : i32} : i32
  llvm.func @atomics(%g: !llvm.ptr<1>, %v: i32) attributes {gpu.kernel, nvvm.kernel} {
    %s = llvm.mlir.addressof @counter : !llvm.ptr<3>
    %0 = llvm.atomicrmw add %s, %v monotonic : !llvm.ptr<3>, i32
    %1 = llvm.cmpxchg %g, %0, %v acq_rel monotonic : !llvm.ptr<1>, i32
    llvm.return
  }
}
