// RUN: kvopt-opt %s -split-input-file --kv-simt-emulate | FileCheck %s

// Every special register becomes a call of its runtime function, declared
// pure (memory(none), nounwind, willreturn) so LLVM may merge repeated reads.
// nvvm.read.ptx.sreg.tid.x maps to __kv_simt_sreg_tid_x.
// CHECK-LABEL: llvm.func @k_tid_x(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_tid_x() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_tid_x() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_tid_x(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.tid.x : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.tid.y maps to __kv_simt_sreg_tid_y.
// CHECK-LABEL: llvm.func @k_tid_y(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_tid_y() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_tid_y() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_tid_y(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.tid.y : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.tid.z maps to __kv_simt_sreg_tid_z.
// CHECK-LABEL: llvm.func @k_tid_z(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_tid_z() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_tid_z() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_tid_z(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.tid.z : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.ntid.x maps to __kv_simt_sreg_ntid_x.
// CHECK-LABEL: llvm.func @k_ntid_x(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_ntid_x() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_ntid_x() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_ntid_x(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.ntid.x : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.ntid.y maps to __kv_simt_sreg_ntid_y.
// CHECK-LABEL: llvm.func @k_ntid_y(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_ntid_y() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_ntid_y() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_ntid_y(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.ntid.y : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.ntid.z maps to __kv_simt_sreg_ntid_z.
// CHECK-LABEL: llvm.func @k_ntid_z(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_ntid_z() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_ntid_z() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_ntid_z(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.ntid.z : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.ctaid.x maps to __kv_simt_sreg_ctaid_x.
// CHECK-LABEL: llvm.func @k_ctaid_x(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_ctaid_x() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_ctaid_x() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_ctaid_x(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.ctaid.x : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.ctaid.y maps to __kv_simt_sreg_ctaid_y.
// CHECK-LABEL: llvm.func @k_ctaid_y(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_ctaid_y() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_ctaid_y() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_ctaid_y(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.ctaid.y : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.ctaid.z maps to __kv_simt_sreg_ctaid_z.
// CHECK-LABEL: llvm.func @k_ctaid_z(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_ctaid_z() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_ctaid_z() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_ctaid_z(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.ctaid.z : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.nctaid.x maps to __kv_simt_sreg_nctaid_x.
// CHECK-LABEL: llvm.func @k_nctaid_x(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_nctaid_x() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_nctaid_x() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_nctaid_x(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.nctaid.x : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.nctaid.y maps to __kv_simt_sreg_nctaid_y.
// CHECK-LABEL: llvm.func @k_nctaid_y(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_nctaid_y() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_nctaid_y() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_nctaid_y(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.nctaid.y : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.nctaid.z maps to __kv_simt_sreg_nctaid_z.
// CHECK-LABEL: llvm.func @k_nctaid_z(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_nctaid_z() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_nctaid_z() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_nctaid_z(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.nctaid.z : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.laneid maps to __kv_simt_sreg_laneid.
// CHECK-LABEL: llvm.func @k_laneid(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_laneid() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_laneid() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_laneid(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.laneid : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.warpsize maps to __kv_simt_sreg_warpsize.
// CHECK-LABEL: llvm.func @k_warpsize(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_warpsize() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_warpsize() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_warpsize(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.warpsize : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.warpid maps to __kv_simt_sreg_warpid.
// CHECK-LABEL: llvm.func @k_warpid(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_warpid() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_warpid() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_warpid(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.warpid : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.nwarpid maps to __kv_simt_sreg_nwarpid.
// CHECK-LABEL: llvm.func @k_nwarpid(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_nwarpid() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_nwarpid() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_nwarpid(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.nwarpid : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.lanemask.eq maps to __kv_simt_sreg_lanemask_eq.
// CHECK-LABEL: llvm.func @k_lanemask_eq(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_lanemask_eq() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_lanemask_eq() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_lanemask_eq(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.lanemask.eq : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.lanemask.le maps to __kv_simt_sreg_lanemask_le.
// CHECK-LABEL: llvm.func @k_lanemask_le(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_lanemask_le() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_lanemask_le() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_lanemask_le(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.lanemask.le : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.lanemask.lt maps to __kv_simt_sreg_lanemask_lt.
// CHECK-LABEL: llvm.func @k_lanemask_lt(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_lanemask_lt() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_lanemask_lt() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_lanemask_lt(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.lanemask.lt : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.lanemask.ge maps to __kv_simt_sreg_lanemask_ge.
// CHECK-LABEL: llvm.func @k_lanemask_ge(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_lanemask_ge() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_lanemask_ge() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_lanemask_ge(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.lanemask.ge : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.lanemask.gt maps to __kv_simt_sreg_lanemask_gt.
// CHECK-LABEL: llvm.func @k_lanemask_gt(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_lanemask_gt() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_lanemask_gt() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_lanemask_gt(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.lanemask.gt : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.dynamic.smem.size maps to __kv_simt_sreg_dynamic_smem_size.
// CHECK-LABEL: llvm.func @k_dynamic_smem_size(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_dynamic_smem_size() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_dynamic_smem_size() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_dynamic_smem_size(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.dynamic.smem.size : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.total.smem.size maps to __kv_simt_sreg_total_smem_size.
// CHECK-LABEL: llvm.func @k_total_smem_size(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_total_smem_size() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_total_smem_size() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_total_smem_size(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.total.smem.size : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.smid maps to __kv_simt_sreg_smid.
// CHECK-LABEL: llvm.func @k_smid(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_smid() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_smid() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_smid(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.smid : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.nsmid maps to __kv_simt_sreg_nsmid.
// CHECK-LABEL: llvm.func @k_nsmid(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_nsmid() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_nsmid() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_nsmid(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.nsmid : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.gridid maps to __kv_simt_sreg_gridid.
// CHECK-LABEL: llvm.func @k_gridid(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_gridid() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_gridid() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_gridid(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.gridid : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.clock maps to __kv_simt_sreg_clock.
// CHECK-LABEL: llvm.func @k_clock(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_clock() : () -> i32
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_clock() -> i32 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_clock(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.clock : i32
    llvm.store %0, %out : i32, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.clock64 maps to __kv_simt_sreg_clock64.
// CHECK-LABEL: llvm.func @k_clock64(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_clock64() : () -> i64
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_clock64() -> i64 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_clock64(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.clock64 : i64
    llvm.store %0, %out : i64, !llvm.ptr<1>
    llvm.return
  }
}

// -----

// nvvm.read.ptx.sreg.globaltimer maps to __kv_simt_sreg_globaltimer.
// CHECK-LABEL: llvm.func @k_globaltimer(
// CHECK: %[[V:.*]] = llvm.call @__kv_simt_sreg_globaltimer() : () -> i64
// CHECK: llvm.store %[[V]]
// CHECK: llvm.func @__kv_simt_sreg_globaltimer() -> i64 attributes {memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none{{.*}}>, no_unwind, will_return}
gpu.module @m {
  llvm.func @k_globaltimer(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
    %0 = nvvm.read.ptx.sreg.globaltimer : i64
    llvm.store %0, %out : i64, !llvm.ptr<1>
    llvm.return
  }
}
