// A decode-attention step: o[b] = softmax(scale * K[b] q[b]) V[b] for one
// query per batch row b, head dim 64, n keys (n <= 1024). One block of 128
// threads (4 warps) per row; run by EmulatorTest.cpp under the SIMT emulator.
module attributes {gpu.container_module} {
gpu.module @kernels {
  gpu.func @decode_attention(%q: memref<?x64xf32>, %k: memref<?x?x64xf32>,
                             %v: memref<?x?x64xf32>, %o: memref<?x64xf32>,
                             %n: index, %scale: f32)
      workgroup(%sc: memref<1024xf32, #gpu.address_space<workgroup>>,
                %red: memref<4xf32, #gpu.address_space<workgroup>>)
      kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c32 = arith.constant 32 : index
    %o1 = arith.constant 1 : i32
    %o2 = arith.constant 2 : i32
    %o4 = arith.constant 4 : i32
    %o8 = arith.constant 8 : i32
    %o16 = arith.constant 16 : i32
    %w32 = arith.constant 32 : i32
    %w16 = arith.constant 16 : i32
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %c4 = arith.constant 4 : index
    %c64 = arith.constant 64 : index
    %c128 = arith.constant 128 : index
    %zero = arith.constant 0.0 : f32
    %ninf = arith.constant 0xFF800000 : f32
    %b = gpu.block_id x
    %tid = gpu.thread_id x
    %lane = arith.remui %tid, %c32 : index
    %warp = arith.divui %tid, %c32 : index
    %first = arith.cmpi eq, %lane, %c0 : index
    %lane32 = arith.addi %lane, %c32 : index
    // Scores: warp w takes keys w, w + 4, ...; each lane two of 64 channels.
    %q0 = memref.load %q[%b, %lane] : memref<?x64xf32>
    %q1 = memref.load %q[%b, %lane32] : memref<?x64xf32>
    scf.for %r = %warp to %n step %c4 {
      %k0 = memref.load %k[%b, %r, %lane] : memref<?x?x64xf32>
      %k1 = memref.load %k[%b, %r, %lane32] : memref<?x?x64xf32>
      %p0 = arith.mulf %q0, %k0 : f32
      %dot = math.fma %q1, %k1, %p0 : f32
      %ds0, %dv0 = gpu.shuffle xor %dot, %o16, %w32 : f32
      %da0 = arith.addf %dot, %ds0 : f32
      %ds1, %dv1 = gpu.shuffle xor %da0, %o8, %w32 : f32
      %da1 = arith.addf %da0, %ds1 : f32
      %ds2, %dv2 = gpu.shuffle xor %da1, %o4, %w32 : f32
      %da2 = arith.addf %da1, %ds2 : f32
      %ds3, %dv3 = gpu.shuffle xor %da2, %o2, %w32 : f32
      %da3 = arith.addf %da2, %ds3 : f32
      %ds4, %dv4 = gpu.shuffle xor %da3, %o1, %w32 : f32
      %da4 = arith.addf %da3, %ds4 : f32
      %sr = arith.mulf %da4, %scale : f32
      scf.if %first {
        memref.store %sr, %sc[%r] : memref<1024xf32, #gpu.address_space<workgroup>>
      }
    }
    gpu.barrier
    // Maximum over all scores.
    %mloc = scf.for %r = %tid to %n step %c128 iter_args(%m = %ninf) -> (f32) {
      %x = memref.load %sc[%r] : memref<1024xf32, #gpu.address_space<workgroup>>
      %mm = arith.maximumf %m, %x : f32
      scf.yield %mm : f32
    }
    %ms0, %mv0 = gpu.shuffle xor %mloc, %o16, %w32 : f32
    %ma0 = arith.maximumf %mloc, %ms0 : f32
    %ms1, %mv1 = gpu.shuffle xor %ma0, %o8, %w32 : f32
    %ma1 = arith.maximumf %ma0, %ms1 : f32
    %ms2, %mv2 = gpu.shuffle xor %ma1, %o4, %w32 : f32
    %ma2 = arith.maximumf %ma1, %ms2 : f32
    %ms3, %mv3 = gpu.shuffle xor %ma2, %o2, %w32 : f32
    %ma3 = arith.maximumf %ma2, %ms3 : f32
    %ms4, %mv4 = gpu.shuffle xor %ma3, %o1, %w32 : f32
    %ma4 = arith.maximumf %ma3, %ms4 : f32
    scf.if %first {
      memref.store %ma4, %red[%warp] : memref<4xf32, #gpu.address_space<workgroup>>
    }
    gpu.barrier
    %m0 = memref.load %red[%c0] : memref<4xf32, #gpu.address_space<workgroup>>
    %m1 = memref.load %red[%c1] : memref<4xf32, #gpu.address_space<workgroup>>
    %m2 = memref.load %red[%c2] : memref<4xf32, #gpu.address_space<workgroup>>
    %m3 = memref.load %red[%c3] : memref<4xf32, #gpu.address_space<workgroup>>
    %m01 = arith.maximumf %m0, %m1 : f32
    %m23 = arith.maximumf %m2, %m3 : f32
    %max = arith.maximumf %m01, %m23 : f32
    gpu.barrier
    // p_r = exp(s_r - max), kept in place of the scores; their sum.
    %sloc = scf.for %r = %tid to %n step %c128 iter_args(%acc = %zero) -> (f32) {
      %x = memref.load %sc[%r] : memref<1024xf32, #gpu.address_space<workgroup>>
      %d = arith.subf %x, %max : f32
      %e = math.exp %d : f32
      memref.store %e, %sc[%r] : memref<1024xf32, #gpu.address_space<workgroup>>
      %a = arith.addf %acc, %e : f32
      scf.yield %a : f32
    }
    %ss0, %sv0 = gpu.shuffle xor %sloc, %o16, %w32 : f32
    %sa0 = arith.addf %sloc, %ss0 : f32
    %ss1, %sv1 = gpu.shuffle xor %sa0, %o8, %w32 : f32
    %sa1 = arith.addf %sa0, %ss1 : f32
    %ss2, %sv2 = gpu.shuffle xor %sa1, %o4, %w32 : f32
    %sa2 = arith.addf %sa1, %ss2 : f32
    %ss3, %sv3 = gpu.shuffle xor %sa2, %o2, %w32 : f32
    %sa3 = arith.addf %sa2, %ss3 : f32
    %ss4, %sv4 = gpu.shuffle xor %sa3, %o1, %w32 : f32
    %sa4 = arith.addf %sa3, %ss4 : f32
    scf.if %first {
      memref.store %sa4, %red[%warp] : memref<4xf32, #gpu.address_space<workgroup>>
    }
    gpu.barrier
    %t0 = memref.load %red[%c0] : memref<4xf32, #gpu.address_space<workgroup>>
    %t1 = memref.load %red[%c1] : memref<4xf32, #gpu.address_space<workgroup>>
    %t2 = memref.load %red[%c2] : memref<4xf32, #gpu.address_space<workgroup>>
    %t3 = memref.load %red[%c3] : memref<4xf32, #gpu.address_space<workgroup>>
    %t01 = arith.addf %t0, %t1 : f32
    %t23 = arith.addf %t2, %t3 : f32
    %total = arith.addf %t01, %t23 : f32
    // o[b, t] = sum_r p_r v[b, r, t] / sum_r p_r, by threads t < 64.
    %out = arith.cmpi ult, %tid, %c64 : index
    scf.if %out {
      %acc = scf.for %r = %c0 to %n step %c1 iter_args(%a = %zero) -> (f32) {
        %p = memref.load %sc[%r] : memref<1024xf32, #gpu.address_space<workgroup>>
        %vv = memref.load %v[%b, %r, %tid] : memref<?x?x64xf32>
        %a2 = math.fma %p, %vv, %a : f32
        scf.yield %a2 : f32
      }
      %res = arith.divf %acc, %total : f32
      memref.store %res, %o[%b, %tid] : memref<?x64xf32>
    }
    gpu.return
  }
}
}
