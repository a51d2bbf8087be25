// RUN: kvopt-opt %s -split-input-file -verify-diagnostics -kv-cpu-bundle-entries
// What the expanded kernel ABI cannot pass is an error naming the function
// and the argument.

// expected-error @+1 {{bundle entry of @results: the function returns 1 value(s); a bundle kernel writes its results into memref out-parameters (buffer-results-to-out-params moves memref results there; a scalar result has to be returned in a tensor or memref)}}
func.func @results(%x: memref<4xf32>) -> memref<4xf32> {
  return %x : memref<4xf32>
}

// -----

// expected-error @+1 {{bundle entry of @wide: argument 1 has type 'f64', which the kernel ABI cannot pass (memref, i32, i64, index, f32)}}
func.func @wide(%x: memref<4xf32>, %y: f64) {
  return
}

// -----

// expected-error @+1 {{bundle entry of @narrow: argument 0 has type 'i16', which the kernel ABI cannot pass}}
func.func @narrow(%x: i16) {
  return
}

// -----

// expected-error @+1 {{bundle entry of @unranked: argument 0 has type 'memref<*xf32>', which the kernel ABI cannot pass}}
func.func @unranked(%x: memref<*xf32>) {
  return
}

// -----

// expected-error @+1 {{bundle entry of @space: argument 0 has type 'memref<4xf32, 1>'; memrefs must have a strided layout in the default memory space}}
func.func @space(%x: memref<4xf32, 1>) {
  return
}

// -----

// A function named like an entry is not given one, and blocks its owner's.
// expected-error @+1 {{bundle entry of @taken: @kvopt_entry_taken already exists}}
func.func @taken(%x: memref<4xf32>) {
  return
}
func.func @kvopt_entry_taken(%p: !llvm.ptr) {
  return
}
