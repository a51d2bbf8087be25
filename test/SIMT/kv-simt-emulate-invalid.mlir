// RUN: kvopt-opt %s -split-input-file -verify-diagnostics --kv-simt-emulate

// An nvvm op without a row in the mapping table is a hard error naming it.
gpu.module @m {
  llvm.func @sleep(%d: i32) attributes {gpu.kernel, nvvm.kernel} {
    // expected-error @below {{kv-simt-emulate: no SIMT runtime mapping for 'nvvm.nanosleep'}}
    nvvm.nanosleep %d
    llvm.return
  }
}

// -----

// Another unmapped op: an inline PTX fence.
gpu.module @m {
  llvm.func @fence() attributes {gpu.kernel, nvvm.kernel} {
    // expected-error @below {{kv-simt-emulate: no SIMT runtime mapping for 'nvvm.fence.sc.cluster'}}
    nvvm.fence.sc.cluster
    llvm.return
  }
}

// -----

// Named barriers (a barrier id or thread count) are not emulated.
gpu.module @m {
  llvm.func @named_barrier(%id: i32) attributes {gpu.kernel, nvvm.kernel} {
    // expected-error @below {{kv-simt-emulate: 'nvvm.barrier' with a barrier id, thread count or reduction is not supported by the SIMT runtime}}
    nvvm.barrier id = %id
    llvm.return
  }
}

// -----

// The input must already be lowered by convert-gpu-to-nvvm.
gpu.module @m {
  // expected-error @below {{kv-simt-emulate: 'gpu.func' remains in the gpu.module; run convert-gpu-to-nvvm first}}
  gpu.func @k() kernel {
    gpu.return
  }
}

// -----

// Host-side launches are not rewritten: the emulator's launch API replaces
// them.
module attributes {gpu.container_module} {
  gpu.module @m {
    llvm.func @k() attributes {gpu.kernel, nvvm.kernel} {
      llvm.return
    }
  }
  func.func @host() {
    %c1 = arith.constant 1 : index
    // expected-error @below {{kv-simt-emulate: gpu.launch_func is not supported; launch kernels through kvopt::simt::launch}}
    gpu.launch_func @m::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    return
  }
}

// -----

// Two gpu.modules defining one symbol clash once merged.
gpu.module @a {
  llvm.func @helper() {
    llvm.return
  }
}
gpu.module @b {
  // expected-error @below {{kv-simt-emulate: symbol 'helper' is defined twice once gpu.modules are merged into the top module}}
  llvm.func @helper() {
    llvm.return
  }
}

// -----

// mma.sync shapes, types or layouts the runtime does not emulate are
// rejected (here f16 accumulators).
gpu.module @m {
  llvm.func @mma_f16_acc(%a: vector<2xf16>) attributes {gpu.kernel, nvvm.kernel} {
    // expected-error @below {{kv-simt-emulate: only mma.sync m16n8k16 and m16n8k8 with f16 or bf16 multiplicands, row.col layouts and f32 accumulators are emulated}}
    %r = nvvm.mma.sync A[%a, %a, %a, %a] B[%a, %a] C[%a, %a] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, vector<2xf16>) -> !llvm.struct<(vector<2xf16>, vector<2xf16>)>
    llvm.return
  }
}
