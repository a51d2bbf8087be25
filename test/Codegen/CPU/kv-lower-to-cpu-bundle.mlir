// RUN: kvopt-opt %s -kv-lower-to-cpu=bundle-entries=1 | FileCheck %s
// RUN: kvopt-opt %s -kv-lower-to-cpu | FileCheck %s --check-prefix=JIT
// With bundle-entries the pipeline turns results into trailing
// out-parameters written in place (the kernel stores straight into them,
// no copy), adds the runtime's entry of every public function and no C
// wrappers (bundle-entries implies emit-c-interface=false); without it,
// results are returned and only the C wrapper exists.

// CHECK-NOT: _mlir_ciface
// CHECK-LABEL: llvm.func @decode(
// CHECK-SAME: %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64,
// CHECK-NOT: llvm.call @malloc
// CHECK-NOT: memrefCopy
// CHECK: llvm.call @__kv_cpu_attention_
// CHECK-NEXT: llvm.return
// CHECK-LABEL: llvm.func @kvopt_entry_decode(
// CHECK-SAME: kv.bundle_args = [{name = "arg0_alloc", type = "ptr"}
// CHECK-SAME: {name = "result0_stride3", type = "i64"}]
// CHECK-SAME: kv.bundle_kernel = "decode"
// CHECK: llvm.call @decode(
// CHECK-NOT: _mlir_ciface

// JIT-LABEL: llvm.func @decode(
// JIT-SAME: -> !llvm.struct<(ptr, ptr, i64, array<4 x i64>, array<4 x i64>)>
// JIT: llvm.func @_mlir_ciface_decode(
// JIT-NOT: kvopt_entry
!C = !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int8>, value = #kv.quant<int8>>
func.func @decode(%q: tensor<3x4x1x64xf16>, %c: !C, %lens: tensor<3xi32>,
                  %bt: tensor<3x4xi32>) -> tensor<3x4x1x64xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt
      : (tensor<3x4x1x64xf16>, !C, tensor<3xi32>, tensor<3x4xi32>) -> tensor<3x4x1x64xf16>
  return %o : tensor<3x4x1x64xf16>
}
