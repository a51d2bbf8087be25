// Warp-level operations in every shuffle mode, votes, subgroup reduction and
// dynamic shared memory; run by EmulatorTest.cpp under the SIMT emulator.
module attributes {gpu.container_module} {
gpu.module @kernels {
  // Inclusive prefix sum within each warp: shuffle up, adding only when the
  // source lane is valid (lane >= offset).
  gpu.func @warp_scan(%in: memref<?xf32>, %out: memref<?xf32>) kernel {
    %o1 = arith.constant 1 : i32
    %o2 = arith.constant 2 : i32
    %o4 = arith.constant 4 : i32
    %o8 = arith.constant 8 : i32
    %o16 = arith.constant 16 : i32
    %w = arith.constant 32 : i32
    %zero = arith.constant 0.0 : f32
    %tid = gpu.thread_id x
    %x0 = memref.load %in[%tid] : memref<?xf32>
    %y1, %v1 = gpu.shuffle up %x0, %o1, %w : f32
    %a1 = arith.select %v1, %y1, %zero : f32
    %x1 = arith.addf %x0, %a1 : f32
    %y2, %v2 = gpu.shuffle up %x1, %o2, %w : f32
    %a2 = arith.select %v2, %y2, %zero : f32
    %x2 = arith.addf %x1, %a2 : f32
    %y4, %v4 = gpu.shuffle up %x2, %o4, %w : f32
    %a4 = arith.select %v4, %y4, %zero : f32
    %x4 = arith.addf %x2, %a4 : f32
    %y8, %v8 = gpu.shuffle up %x4, %o8, %w : f32
    %a8 = arith.select %v8, %y8, %zero : f32
    %x8 = arith.addf %x4, %a8 : f32
    %y16, %v16 = gpu.shuffle up %x8, %o16, %w : f32
    %a16 = arith.select %v16, %y16, %zero : f32
    %x16 = arith.addf %x8, %a16 : f32
    memref.store %x16, %out[%tid] : memref<?xf32>
    gpu.return
  }

  // Sum with shuffle down (lane 0 ends with the total), then broadcast of
  // lane 0's value with shuffle idx: every lane stores the warp's sum.
  gpu.func @warp_sum_down(%in: memref<?xi32>, %out: memref<?xi32>) kernel {
    %o0 = arith.constant 0 : i32
    %o1 = arith.constant 1 : i32
    %o2 = arith.constant 2 : i32
    %o4 = arith.constant 4 : i32
    %o8 = arith.constant 8 : i32
    %o16 = arith.constant 16 : i32
    %w = arith.constant 32 : i32
    %tid = gpu.thread_id x
    %x0 = memref.load %in[%tid] : memref<?xi32>
    %y16, %v16 = gpu.shuffle down %x0, %o16, %w : i32
    %x16 = arith.addi %x0, %y16 : i32
    %y8, %v8 = gpu.shuffle down %x16, %o8, %w : i32
    %x8 = arith.addi %x16, %y8 : i32
    %y4, %v4 = gpu.shuffle down %x8, %o4, %w : i32
    %x4 = arith.addi %x8, %y4 : i32
    %y2, %v2 = gpu.shuffle down %x4, %o2, %w : i32
    %x2 = arith.addi %x4, %y2 : i32
    %y1, %v1 = gpu.shuffle down %x2, %o1, %w : i32
    %x1 = arith.addi %x2, %y1 : i32
    %s, %vs = gpu.shuffle idx %x1, %o0, %w : i32
    memref.store %s, %out[%tid] : memref<?xi32>
    gpu.return
  }

  // A 16-lane butterfly reduction with width 16, launched with 16 threads:
  // every lane ends with the sum.
  gpu.func @half_warp_sum(%in: memref<?xf32>, %out: memref<?xf32>) kernel {
    %o1 = arith.constant 1 : i32
    %o2 = arith.constant 2 : i32
    %o4 = arith.constant 4 : i32
    %o8 = arith.constant 8 : i32
    %w = arith.constant 16 : i32
    %tid = gpu.thread_id x
    %x0 = memref.load %in[%tid] : memref<?xf32>
    %y8, %v8 = gpu.shuffle xor %x0, %o8, %w : f32
    %x8 = arith.addf %x0, %y8 : f32
    %y4, %v4 = gpu.shuffle xor %x8, %o4, %w : f32
    %x4 = arith.addf %x8, %y4 : f32
    %y2, %v2 = gpu.shuffle xor %x4, %o2, %w : f32
    %x2 = arith.addf %x4, %y2 : f32
    %y1, %v1 = gpu.shuffle xor %x2, %o1, %w : f32
    %x1 = arith.addf %x2, %y1 : f32
    memref.store %x1, %out[%tid] : memref<?xf32>
    gpu.return
  }

  // Votes over in[t] != 0: out[4t..4t+3] = ballot, any, all, uni.
  gpu.func @votes(%in: memref<?xi32>, %out: memref<?xi32>) kernel {
    %c4 = arith.constant 4 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %zero = arith.constant 0 : i32
    %all = arith.constant -1 : i32
    %tid = gpu.thread_id x
    %x = memref.load %in[%tid] : memref<?xi32>
    %p = arith.cmpi ne, %x, %zero : i32
    %ballot = nvvm.vote.sync ballot %all, %p -> i32
    %any = nvvm.vote.sync any %all, %p -> i1
    %every = nvvm.vote.sync all %all, %p -> i1
    %uni = nvvm.vote.sync uni %all, %p -> i1
    %anyi = arith.extui %any : i1 to i32
    %alli = arith.extui %every : i1 to i32
    %unii = arith.extui %uni : i1 to i32
    %i0 = arith.muli %tid, %c4 : index
    %i1 = arith.addi %i0, %c1 : index
    %i2 = arith.addi %i0, %c2 : index
    %i3 = arith.addi %i0, %c3 : index
    memref.store %ballot, %out[%i0] : memref<?xi32>
    memref.store %anyi, %out[%i1] : memref<?xi32>
    memref.store %alli, %out[%i2] : memref<?xi32>
    memref.store %unii, %out[%i3] : memref<?xi32>
    gpu.return
  }

  // gpu.subgroup_reduce, lowered to nvvm.redux.sync (has-redux).
  gpu.func @subgroup_add(%in: memref<?xi32>, %out: memref<?xi32>) kernel {
    %tid = gpu.thread_id x
    %x = memref.load %in[%tid] : memref<?xi32>
    %s = gpu.subgroup_reduce add %x uniform : (i32) -> i32
    %m = gpu.subgroup_reduce maxsi %x uniform : (i32) -> i32
    %r = arith.subi %s, %m : i32
    memref.store %r, %out[%tid] : memref<?xi32>
    gpu.return
  }

  // Reverses each block's slice through dynamic shared memory:
  // out[b*n + t] = in[b*n + n - 1 - t].
  gpu.func @dynamic_reverse(%in: memref<?xf32>, %out: memref<?xf32>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %tid = gpu.thread_id x
    %bid = gpu.block_id x
    %n = gpu.block_dim x
    %base = arith.muli %bid, %n : index
    %gid = arith.addi %base, %tid : index
    %raw = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
    %buf = memref.view %raw[%c0][%n] : memref<?xi8, #gpu.address_space<workgroup>> to memref<?xf32, #gpu.address_space<workgroup>>
    %x = memref.load %in[%gid] : memref<?xf32>
    memref.store %x, %buf[%tid] : memref<?xf32, #gpu.address_space<workgroup>>
    gpu.barrier
    %last = arith.subi %n, %c1 : index
    %rt = arith.subi %last, %tid : index
    %y = memref.load %buf[%rt] : memref<?xf32, #gpu.address_space<workgroup>>
    memref.store %y, %out[%gid] : memref<?xf32>
    gpu.return
  }
}
}
