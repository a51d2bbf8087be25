// Global loads with known sector footprints; run by EmulatorTest.cpp, which
// checks the emulator's byte and sector counters against formulas.
module attributes {gpu.container_module} {
gpu.module @kernels {
  // out[g] = in[offset + g * stride], g = global thread index.
  gpu.func @strided(%in: memref<?xf32>, %out: memref<?xf32>, %stride: index,
                    %offset: index) kernel {
    %tid = gpu.thread_id x
    %bid = gpu.block_id x
    %n = gpu.block_dim x
    %base = arith.muli %bid, %n : index
    %g = arith.addi %base, %tid : index
    %s = arith.muli %g, %stride : index
    %i = arith.addi %s, %offset : index
    %x = memref.load %in[%i] : memref<?xf32>
    memref.store %x, %out[%g] : memref<?xf32>
    gpu.return
  }

  // out[4g .. 4g+3] = in[offset + 4g .. offset + 4g + 3] with 16-byte vector
  // loads and stores.
  gpu.func @vec4(%in: memref<?xf32>, %out: memref<?xf32>, %offset: index) kernel {
    %c4 = arith.constant 4 : index
    %tid = gpu.thread_id x
    %bid = gpu.block_id x
    %n = gpu.block_dim x
    %base = arith.muli %bid, %n : index
    %g = arith.addi %base, %tid : index
    %o = arith.muli %g, %c4 : index
    %i = arith.addi %o, %offset : index
    %x = vector.load %in[%i] : memref<?xf32>, vector<4xf32>
    vector.store %x, %out[%o] : memref<?xf32>, vector<4xf32>
    gpu.return
  }
}
}
