// RUN: kvopt-opt %s -kv-lower-to-cpu | FileCheck %s
// RUN: kvopt-opt %s -kv-lower-to-cpu="threads=2 kv-splits=4" | FileCheck %s --check-prefix=ASYNC
// RUN: kvopt-opt %s -kv-lower-to-cpu="threads=1 kv-splits=4" | FileCheck %s --check-prefix=ONE
// RUN: not kvopt-opt %s -kv-lower-to-cpu=kv-splits=-3 2>&1 | FileCheck %s --check-prefix=BAD
// The pipeline ends in the LLVM dialect: no kv, scf, vector, memref or
// bufferization op is left; the public function gets its C interface; with
// threads the split loop runs on the async runtime, with threads=1 in the
// caller (the runtime's pool would use every core).

// CHECK-LABEL: llvm.func @decode(
// CHECK: llvm.call @__kv_cpu_attention_
// CHECK-LABEL: llvm.func @_mlir_ciface_decode(
// CHECK: llvm.func @__kv_cpu_attention_
// CHECK: llvm.intr.vector.reduce.fadd
// CHECK-NOT: {{ (kv|scf|vector|memref|bufferization)\.}}
// ASYNC: llvm.call @mlirAsyncRuntime
// ONE-LABEL: llvm.func @decode(
// ONE-NOT: mlirAsyncRuntime
// BAD: error: kv-cpu-to-loops: option 'kv-splits' must be >= 0, got -3
!C = !kv.cache<kv_heads = 1, head_dim = 64, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>
func.func @decode(%q: memref<1x2x1x64xf16>, %c: !C, %lens: memref<1xi32>, %bt: memref<1x4xi32>, %out: memref<1x2x1x64xf16>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x1x64xf16> to tensor<1x2x1x64xf16>
  %lt = bufferization.to_tensor %lens restrict : memref<1xi32> to tensor<1xi32>
  %btt = bufferization.to_tensor %bt restrict : memref<1x4xi32> to tensor<1x4xi32>
  %o = kv.attention %qt, %c, %lt block_table %btt : (tensor<1x2x1x64xf16>, !C, tensor<1xi32>, tensor<1x4xi32>) -> tensor<1x2x1x64xf16>
  bufferization.materialize_in_destination %o in restrict writable %out : (tensor<1x2x1x64xf16>, memref<1x2x1x64xf16>) -> ()
  return
}
