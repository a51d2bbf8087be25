// Kernels with planted bugs that the SIMT emulator must report; run by
// EmulatorTest.cpp.
module attributes {gpu.container_module} {
gpu.module @kernels {
  // out[b] = in[b*n] + ... + in[b*n + n - 1], n = blockDim.x (a multiple of
  // 32, at most 1024): butterfly shuffles within each warp, one partial sum
  // per warp in workgroup memory, then warp 0 adds the partials.
  gpu.func @block_sum_nobar(%in: memref<?xf32>, %out: memref<?xf32>)
      workgroup(%partial: memref<32xf32, #gpu.address_space<workgroup>>) kernel {
    %c0 = arith.constant 0 : index
    %c32 = arith.constant 32 : index
    %o1 = arith.constant 1 : i32
    %o2 = arith.constant 2 : i32
    %o4 = arith.constant 4 : i32
    %o8 = arith.constant 8 : i32
    %o16 = arith.constant 16 : i32
    %w32 = arith.constant 32 : i32
    %w16 = arith.constant 16 : i32
    %tid = gpu.thread_id x
    %bid = gpu.block_id x
    %n = gpu.block_dim x
    %base = arith.muli %bid, %n : index
    %gid = arith.addi %base, %tid : index
    %x = memref.load %in[%gid] : memref<?xf32>
    %as0, %av0 = gpu.shuffle xor %x, %o16, %w32 : f32
    %aa0 = arith.addf %x, %as0 : f32
    %as1, %av1 = gpu.shuffle xor %aa0, %o8, %w32 : f32
    %aa1 = arith.addf %aa0, %as1 : f32
    %as2, %av2 = gpu.shuffle xor %aa1, %o4, %w32 : f32
    %aa2 = arith.addf %aa1, %as2 : f32
    %as3, %av3 = gpu.shuffle xor %aa2, %o2, %w32 : f32
    %aa3 = arith.addf %aa2, %as3 : f32
    %as4, %av4 = gpu.shuffle xor %aa3, %o1, %w32 : f32
    %aa4 = arith.addf %aa3, %as4 : f32
    %lane = arith.remui %tid, %c32 : index
    %warp = arith.divui %tid, %c32 : index
    %first = arith.cmpi eq, %lane, %c0 : index
    scf.if %first {
      memref.store %aa4, %partial[%warp] : memref<32xf32, #gpu.address_space<workgroup>>
    }
    // (the barrier that belongs here is missing)
    %is_w0 = arith.cmpi eq, %warp, %c0 : index
    scf.if %is_w0 {
      %nw = arith.divui %n, %c32 : index
      %has = arith.cmpi ult, %lane, %nw : index
      %y = scf.if %has -> (f32) {
        %p = memref.load %partial[%lane] : memref<32xf32, #gpu.address_space<workgroup>>
        scf.yield %p : f32
      } else {
        %z = arith.constant 0.0 : f32
        scf.yield %z : f32
      }
      %bs0, %bv0 = gpu.shuffle xor %y, %o16, %w32 : f32
      %ba0 = arith.addf %y, %bs0 : f32
      %bs1, %bv1 = gpu.shuffle xor %ba0, %o8, %w32 : f32
      %ba1 = arith.addf %ba0, %bs1 : f32
      %bs2, %bv2 = gpu.shuffle xor %ba1, %o4, %w32 : f32
      %ba2 = arith.addf %ba1, %bs2 : f32
      %bs3, %bv3 = gpu.shuffle xor %ba2, %o2, %w32 : f32
      %ba3 = arith.addf %ba2, %bs3 : f32
      %bs4, %bv4 = gpu.shuffle xor %ba3, %o1, %w32 : f32
      %ba4 = arith.addf %ba3, %bs4 : f32
      scf.if %first {
        memref.store %ba4, %out[%bid] : memref<?xf32>
      }
    }
    gpu.return
  }

  // out[b] = in[b*n] + ... + in[b*n + n - 1], n = blockDim.x (a multiple of
  // 32, at most 1024): butterfly shuffles within each warp, one partial sum
  // per warp in workgroup memory, then warp 0 adds the partials.
  gpu.func @block_sum_width16(%in: memref<?xf32>, %out: memref<?xf32>)
      workgroup(%partial: memref<32xf32, #gpu.address_space<workgroup>>) kernel {
    %c0 = arith.constant 0 : index
    %c32 = arith.constant 32 : index
    %o1 = arith.constant 1 : i32
    %o2 = arith.constant 2 : i32
    %o4 = arith.constant 4 : i32
    %o8 = arith.constant 8 : i32
    %o16 = arith.constant 16 : i32
    %w32 = arith.constant 32 : i32
    %w16 = arith.constant 16 : i32
    %tid = gpu.thread_id x
    %bid = gpu.block_id x
    %n = gpu.block_dim x
    %base = arith.muli %bid, %n : index
    %gid = arith.addi %base, %tid : index
    %x = memref.load %in[%gid] : memref<?xf32>
    %as0, %av0 = gpu.shuffle xor %x, %o16, %w16 : f32
    %aa0 = arith.addf %x, %as0 : f32
    %as1, %av1 = gpu.shuffle xor %aa0, %o8, %w16 : f32
    %aa1 = arith.addf %aa0, %as1 : f32
    %as2, %av2 = gpu.shuffle xor %aa1, %o4, %w16 : f32
    %aa2 = arith.addf %aa1, %as2 : f32
    %as3, %av3 = gpu.shuffle xor %aa2, %o2, %w16 : f32
    %aa3 = arith.addf %aa2, %as3 : f32
    %as4, %av4 = gpu.shuffle xor %aa3, %o1, %w16 : f32
    %aa4 = arith.addf %aa3, %as4 : f32
    %lane = arith.remui %tid, %c32 : index
    %warp = arith.divui %tid, %c32 : index
    %first = arith.cmpi eq, %lane, %c0 : index
    scf.if %first {
      memref.store %aa4, %partial[%warp] : memref<32xf32, #gpu.address_space<workgroup>>
    }
    gpu.barrier
    %is_w0 = arith.cmpi eq, %warp, %c0 : index
    scf.if %is_w0 {
      %nw = arith.divui %n, %c32 : index
      %has = arith.cmpi ult, %lane, %nw : index
      %y = scf.if %has -> (f32) {
        %p = memref.load %partial[%lane] : memref<32xf32, #gpu.address_space<workgroup>>
        scf.yield %p : f32
      } else {
        %z = arith.constant 0.0 : f32
        scf.yield %z : f32
      }
      %bs0, %bv0 = gpu.shuffle xor %y, %o16, %w16 : f32
      %ba0 = arith.addf %y, %bs0 : f32
      %bs1, %bv1 = gpu.shuffle xor %ba0, %o8, %w16 : f32
      %ba1 = arith.addf %ba0, %bs1 : f32
      %bs2, %bv2 = gpu.shuffle xor %ba1, %o4, %w16 : f32
      %ba2 = arith.addf %ba1, %bs2 : f32
      %bs3, %bv3 = gpu.shuffle xor %ba2, %o2, %w16 : f32
      %ba3 = arith.addf %ba2, %bs3 : f32
      %bs4, %bv4 = gpu.shuffle xor %ba3, %o1, %w16 : f32
      %ba4 = arith.addf %ba3, %bs4 : f32
      scf.if %first {
        memref.store %ba4, %out[%bid] : memref<?xf32>
      }
    }
    gpu.return
  }

  // The barrier is inside a branch on the thread id: threads >= 32 never
  // reach it.
  gpu.func @divergent_barrier(%out: memref<?xf32>) kernel {
    %c32 = arith.constant 32 : index
    %one = arith.constant 1.0 : f32
    %tid = gpu.thread_id x
    %low = arith.cmpi ult, %tid, %c32 : index
    scf.if %low {
      gpu.barrier
    }
    memref.store %one, %out[%tid] : memref<?xf32>
    gpu.return
  }

  // Indexes a 32-element workgroup buffer with the thread id, launched with
  // more than 32 threads; `next` (written by warp 0 only) must survive.
  gpu.func @shared_out_of_bounds(%out: memref<?xf32>)
      workgroup(%buf: memref<32xf32, #gpu.address_space<workgroup>>,
                %next: memref<32xf32, #gpu.address_space<workgroup>>) kernel {
    %c32 = arith.constant 32 : index
    %tid = gpu.thread_id x
    %lane = arith.remui %tid, %c32 : index
    %f = arith.index_cast %tid : index to i32
    %x = arith.sitofp %f : i32 to f32
    %low = arith.cmpi ult, %tid, %c32 : index
    scf.if %low {
      memref.store %x, %next[%tid] : memref<32xf32, #gpu.address_space<workgroup>>
    }
    memref.store %x, %buf[%tid] : memref<32xf32, #gpu.address_space<workgroup>>
    gpu.barrier
    %y = memref.load %next[%lane] : memref<32xf32, #gpu.address_space<workgroup>>
    memref.store %y, %out[%tid] : memref<?xf32>
    gpu.return
  }

  // Copies in[t] to out[t]; launched with more threads than elements.
  gpu.func @copy(%in: memref<?xf32>, %out: memref<?xf32>) kernel {
    %tid = gpu.thread_id x
    %bid = gpu.block_id x
    %n = gpu.block_dim x
    %base = arith.muli %bid, %n : index
    %gid = arith.addi %base, %tid : index
    %x = memref.load %in[%gid] : memref<?xf32>
    memref.store %x, %out[%gid] : memref<?xf32>
    gpu.return
  }
}
}
