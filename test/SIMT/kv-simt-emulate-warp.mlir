// RUN: kvopt-opt %s -split-input-file --kv-simt-emulate="count-ops=false" | FileCheck %s

// nvvm.barrier0 becomes a call with the barrier's site index; the runtime
// call stays an ordinary external function (no memory attributes), so LLVM
// cannot move shared-memory accesses across it.
// CHECK-LABEL: llvm.func @barrier0(
// CHECK: %[[SITE:.*]] = llvm.mlir.constant(0 : i32) : i32
// CHECK-NEXT: llvm.call @__kv_simt_barrier(%[[SITE]]) : (i32) -> ()
// CHECK-NOT: nvvm.
// CHECK: llvm.func @__kv_simt_barrier(i32){{$}}
// CHECK: llvm.mlir.global internal constant @__kv_simt_str_0("barrier at kv-simt-emulate-warp.mlir:[[@LINE+3]]:5\00")
gpu.module @m {
  llvm.func @barrier0() attributes {gpu.kernel, nvvm.kernel} {
    nvvm.barrier0
    llvm.return
  }
}

// -----

// nvvm.barrier without operands is the same block-wide barrier.
// CHECK-LABEL: llvm.func @barrier(
// CHECK: llvm.call @__kv_simt_barrier(%{{.*}}) : (i32) -> ()
// CHECK-NOT: nvvm.barrier
gpu.module @m {
  llvm.func @barrier() attributes {gpu.kernel, nvvm.kernel} {
    nvvm.barrier
    llvm.return
  }
}

// -----

// shfl.sync in all four modes: the mode is the first argument (bfly 0,
// up 1, down 2, idx 3); f32 values travel as i32 bits; the result is the
// low half of the i64 the runtime returns.
// CHECK-LABEL: llvm.func @shfl_modes(
// CHECK-SAME: %[[MASK:[^:]*]]: i32, %[[V:[^:]*]]: f32, %[[OFF:[^:]*]]: i32, %[[C:[^:]*]]: i32
// CHECK: %[[BFLY:.*]] = llvm.mlir.constant(0 : i32) : i32
// CHECK: %[[BITS:.*]] = llvm.bitcast %[[V]] : f32 to i32
// CHECK: %[[R0:.*]] = llvm.call @__kv_simt_shfl(%[[BFLY]], %[[MASK]], %[[BITS]], %[[OFF]], %[[C]], %{{.*}}) : (i32, i32, i32, i32, i32, i32) -> i64
// CHECK: %[[T0:.*]] = llvm.trunc %[[R0]] : i64 to i32
// CHECK: llvm.bitcast %[[T0]] : i32 to f32
// CHECK: %[[UP:.*]] = llvm.mlir.constant(1 : i32) : i32
// CHECK: llvm.call @__kv_simt_shfl(%[[UP]], %[[MASK]]
// CHECK: %[[DOWN:.*]] = llvm.mlir.constant(2 : i32) : i32
// CHECK: llvm.call @__kv_simt_shfl(%[[DOWN]], %[[MASK]]
// CHECK: %[[IDX:.*]] = llvm.mlir.constant(3 : i32) : i32
// CHECK: llvm.call @__kv_simt_shfl(%[[IDX]], %[[MASK]]
// CHECK-NOT: nvvm.shfl
// CHECK: llvm.func @__kv_simt_shfl(i32, i32, i32, i32, i32, i32) -> i64{{$}}
// CHECK: @__kv_simt_str_{{[0-9]+}}("shfl.sync.bfly at
// CHECK: @__kv_simt_str_{{[0-9]+}}("shfl.sync.up at
// CHECK: @__kv_simt_str_{{[0-9]+}}("shfl.sync.down at
// CHECK: @__kv_simt_str_{{[0-9]+}}("shfl.sync.idx at
gpu.module @m {
  llvm.func @shfl_modes(%mask: i32, %v: f32, %off: i32, %c: i32, %out: !llvm.ptr) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.shfl.sync bfly %mask, %v, %off, %c : f32 -> f32
    %1 = nvvm.shfl.sync up %mask, %0, %off, %c : f32 -> f32
    %2 = nvvm.shfl.sync down %mask, %1, %off, %c : f32 -> f32
    %3 = nvvm.shfl.sync idx %mask, %2, %off, %c : f32 -> f32
    llvm.store %3, %out : f32, !llvm.ptr
    llvm.return
  }
}

// -----

// With return_value_and_is_valid the result is a {value, pred} struct; pred
// is bit 32 of the runtime's result. i32 values need no bitcast.
// CHECK-LABEL: llvm.func @shfl_valid(
// CHECK: %[[R:.*]] = llvm.call @__kv_simt_shfl(%{{.*}}) : (i32, i32, i32, i32, i32, i32) -> i64
// CHECK: %[[VAL:.*]] = llvm.trunc %[[R]] : i64 to i32
// CHECK: %[[THIRTYTWO:.*]] = llvm.mlir.constant(32 : i64) : i64
// CHECK: %[[HI:.*]] = llvm.lshr %[[R]], %[[THIRTYTWO]] : i64
// CHECK: %[[P:.*]] = llvm.trunc %[[HI]] : i64 to i1
// CHECK: %[[U:.*]] = llvm.mlir.undef : !llvm.struct<(i32, i1)>
// CHECK: %[[S0:.*]] = llvm.insertvalue %[[VAL]], %[[U]][0] : !llvm.struct<(i32, i1)>
// CHECK: llvm.insertvalue %[[P]], %[[S0]][1] : !llvm.struct<(i32, i1)>
// CHECK-NOT: llvm.bitcast
gpu.module @m {
  llvm.func @shfl_valid(%mask: i32, %v: i32, %off: i32, %c: i32, %out: !llvm.ptr) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.shfl.sync bfly %mask, %v, %off, %c {return_value_and_is_valid} : i32 -> !llvm.struct<(i32, i1)>
    %1 = llvm.extractvalue %0[1] : !llvm.struct<(i32, i1)>
    llvm.store %1, %out : i1, !llvm.ptr
    llvm.return
  }
}

// -----

// vote.sync: kind any 0, all 1, ballot 2, uni 3; the predicate is widened
// to i32, and i1 results are truncated back.
// CHECK-LABEL: llvm.func @votes(
// CHECK-SAME: %[[MASK:[^:]*]]: i32, %[[P:[^:]*]]: i1
// CHECK: %[[PW:.*]] = llvm.zext %[[P]] : i1 to i32
// CHECK: %[[BALLOT:.*]] = llvm.mlir.constant(2 : i32) : i32
// CHECK: %{{.*}} = llvm.call @__kv_simt_vote(%[[BALLOT]], %[[MASK]], %[[PW]], %{{.*}}) : (i32, i32, i32, i32) -> i32
// CHECK: %[[ANY:.*]] = llvm.mlir.constant(0 : i32) : i32
// CHECK: %[[RA:.*]] = llvm.call @__kv_simt_vote(%[[ANY]], %[[MASK]]
// CHECK: llvm.trunc %[[RA]] : i32 to i1
// CHECK: %[[ALL:.*]] = llvm.mlir.constant(1 : i32) : i32
// CHECK: llvm.call @__kv_simt_vote(%[[ALL]], %[[MASK]]
// CHECK: %[[UNI:.*]] = llvm.mlir.constant(3 : i32) : i32
// CHECK: llvm.call @__kv_simt_vote(%[[UNI]], %[[MASK]]
// CHECK-NOT: nvvm.vote
gpu.module @m {
  llvm.func @votes(%mask: i32, %p: i1, %out: !llvm.ptr) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.vote.sync ballot %mask, %p -> i32
    %1 = nvvm.vote.sync any %mask, %p -> i1
    %2 = nvvm.vote.sync all %mask, %p -> i1
    %3 = nvvm.vote.sync uni %mask, %p -> i1
    llvm.store %0, %out : i32, !llvm.ptr
    llvm.store %1, %out : i1, !llvm.ptr
    llvm.store %2, %out : i1, !llvm.ptr
    llvm.store %3, %out : i1, !llvm.ptr
    llvm.return
  }
}

// -----

// redux.sync passes kind, flags (abs 1, nan 2) and the member mask.
// CHECK-LABEL: llvm.func @redux(
// CHECK-SAME: %[[V:[^:]*]]: i32, %[[F:[^:]*]]: f32, %[[MASK:[^:]*]]: i32
// CHECK: %[[ADD:.*]] = llvm.mlir.constant(1 : i32) : i32
// CHECK: %[[NOFLAGS:.*]] = llvm.mlir.constant(0 : i32) : i32
// CHECK: llvm.call @__kv_simt_redux(%[[ADD]], %[[NOFLAGS]], %[[MASK]], %[[V]], %{{.*}}) : (i32, i32, i32, i32, i32) -> i32
// CHECK: %[[FMAX:.*]] = llvm.mlir.constant(10 : i32) : i32
// CHECK: %[[ABSNAN:.*]] = llvm.mlir.constant(3 : i32) : i32
// CHECK: %[[FB:.*]] = llvm.bitcast %[[F]] : f32 to i32
// CHECK: %[[RF:.*]] = llvm.call @__kv_simt_redux(%[[FMAX]], %[[ABSNAN]], %[[MASK]], %[[FB]], %{{.*}})
// CHECK: llvm.bitcast %[[RF]] : i32 to f32
gpu.module @m {
  llvm.func @redux(%v: i32, %f: f32, %mask: i32, %out: !llvm.ptr) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.redux.sync add %v, %mask : i32 -> i32
    %1 = nvvm.redux.sync fmax %f, %mask {abs = true, nan = true} : f32 -> f32
    llvm.store %0, %out : i32, !llvm.ptr
    llvm.store %1, %out : f32, !llvm.ptr
    llvm.return
  }
}

// -----

// bar.warp.sync becomes a warp collective without data.
// CHECK-LABEL: llvm.func @warp_sync(
// CHECK-SAME: %[[MASK:[^:]*]]: i32
// CHECK: llvm.call @__kv_simt_warp_sync(%[[MASK]], %{{.*}}) : (i32, i32) -> ()
// CHECK: @__kv_simt_str_{{[0-9]+}}("bar.warp.sync at
gpu.module @m {
  llvm.func @warp_sync(%mask: i32) attributes {gpu.kernel, nvvm.kernel} {
    nvvm.bar.warp.sync %mask : i32
    llvm.return
  }
}

// -----

// rcp.approx.ftz.f is a pure runtime function.
// CHECK-LABEL: llvm.func @rcp(
// CHECK: llvm.call @__kv_simt_rcp_approx_ftz_f32(%{{.*}}) : (f32) -> f32
// CHECK: llvm.func @__kv_simt_rcp_approx_ftz_f32(f32) -> f32 attributes {memory_effects
gpu.module @m {
  llvm.func @rcp(%x: f32, %out: !llvm.ptr) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.rcp.approx.ftz.f %x : f32
    llvm.store %0, %out : f32, !llvm.ptr
    llvm.return
  }
}

// -----

// nvvm.mma.sync (m16n8k16, f16, f32 accumulators): the lane's registers (A as
// f16x2 bit-cast to i32, B, then C's f32 bits) go to a private 10-word array
// in the entry block, __kv_simt_mma (kind 0) computes the warp's product and
// D comes back through a 4-float array into the result struct.
// CHECK-LABEL: llvm.func @mma(
// CHECK: %[[FRAGS:.*]] = llvm.alloca %{{.*}} x !llvm.array<10 x i32>
// CHECK: %[[OUT:.*]] = llvm.alloca %{{.*}} x !llvm.array<4 x f32>
// CHECK: llvm.bitcast %{{.*}} : vector<2xf16> to i32
// CHECK-COUNT-10: llvm.store %{{.*}} : i32, !llvm.ptr
// CHECK: %[[KIND:.*]] = llvm.mlir.constant(0 : i32) : i32
// CHECK: llvm.call @__kv_simt_mma(%[[KIND]], %[[FRAGS]], %[[OUT]], %{{.*}}) : (i32, !llvm.ptr, !llvm.ptr, i32) -> ()
// CHECK-COUNT-4: llvm.load %{{.*}} : !llvm.ptr -> f32
// CHECK-NOT: nvvm.mma
// CHECK: @__kv_simt_str_0("mma.sync at
gpu.module @m {
  llvm.func @mma(%a: vector<2xf16>, %c: f32) -> !llvm.struct<(f32, f32, f32, f32)> attributes {gpu.kernel, nvvm.kernel} {
    %r = nvvm.mma.sync A[%a, %a, %a, %a] B[%a, %a] C[%c, %c, %c, %c] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
    llvm.return %r : !llvm.struct<(f32, f32, f32, f32)>
  }
}
