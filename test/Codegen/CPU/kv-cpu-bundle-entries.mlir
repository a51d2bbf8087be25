// RUN: kvopt-opt %s -split-input-file -kv-cpu-bundle-entries | FileCheck %s
// kv-cpu-bundle-entries: every public function with a body gets
// `kvopt_entry_<f>(%params)`, which loads each value of the expanded kernel
// ABI through params[i] (memref: allocated, aligned, offset, sizes,
// strides), rebuilds the descriptors and calls the function; the manifest's
// argument list rides along as kv.bundle_args.

// CHECK-LABEL: func.func @kvopt_entry_f(
// CHECK-SAME: %[[P:.*]]: !llvm.ptr)
// CHECK-SAME: kv.bundle_args = [{name = "arg0_alloc", type = "ptr"}, {name = "arg0", type = "ptr"}, {name = "arg0_offset", type = "i64"}, {name = "arg0_size0", type = "i64"}, {name = "arg0_size1", type = "i64"}, {name = "arg0_stride0", type = "i64"}, {name = "arg0_stride1", type = "i64"}, {name = "arg1", type = "i64"}, {name = "arg2", type = "f32"}, {name = "arg3", type = "i32"}, {name = "result0_alloc", type = "ptr"}, {name = "result0", type = "ptr"}, {name = "result0_offset", type = "i64"}, {name = "result0_size", type = "i64"}, {name = "result0_stride", type = "i64"}]
// CHECK-SAME: kv.bundle_kernel = "f"
// CHECK: %[[D0:.*]] = llvm.mlir.poison : !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)>
// CHECK: %[[S0:.*]] = llvm.getelementptr %[[P]][0]
// CHECK: %[[A0:.*]] = llvm.load %[[S0]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[V0:.*]] = llvm.load %[[A0]] : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.insertvalue %[[V0]], %[[D0]][0]
// CHECK: llvm.getelementptr %[[P]][6]
// CHECK: %[[M:.*]] = builtin.unrealized_conversion_cast %{{.*}} : !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)> to memref<2x?xf16, strided<[?, 1], offset: ?>>
// CHECK: llvm.getelementptr %[[P]][7]
// CHECK: %[[N64:.*]] = llvm.load %{{.*}} : !llvm.ptr -> i64
// CHECK: %[[N:.*]] = arith.index_cast %[[N64]] : i64 to index
// CHECK: llvm.getelementptr %[[P]][8]
// CHECK: %[[S:.*]] = llvm.load %{{.*}} : !llvm.ptr -> f32
// CHECK: llvm.getelementptr %[[P]][9]
// CHECK: %[[T:.*]] = llvm.load %{{.*}} : !llvm.ptr -> i32
// CHECK: llvm.getelementptr %[[P]][14]
// CHECK: %[[R:.*]] = builtin.unrealized_conversion_cast %{{.*}} to memref<4xf32>
// CHECK: call @f(%[[M]], %[[N]], %[[S]], %[[T]], %[[R]])
// CHECK-NOT: kvopt_entry_helper
// CHECK-NOT: kvopt_entry_kvopt_entry
func.func @f(%m: memref<2x?xf16, strided<[?, 1], offset: ?>>, %n: index,
             %s: f32, %t: i32, %r: memref<4xf32> {bufferize.result}) {
  return
}
func.func private @helper(%x: f64)
func.func private @internal(%x: f64) {
  return
}

// -----

// A module without public functions gets no entry.
// CHECK-LABEL: func.func private @g(
// CHECK-NOT: kvopt_entry
func.func private @g(%x: memref<4xf32>) {
  return
}
