// nvvm.mma.sync under the emulator: each block (one warp) loads A (16 x K,
// row-major), B (K x 8, stored [k][n]) and C (16 x 8) in the fragment layout
// of PTX's mma.m16n8k16 / m16n8k8 and stores D; run by EmulatorTest.cpp.
module attributes {gpu.container_module} {
gpu.module @kernels {
  // D = A B + C for one 16x16 x 16x8 product per block (f16 multiplicands,
  // f32 accumulators), fragments loaded in PTX's m16n8k16 layout.
  gpu.func @mma_f16_k16(%a: memref<?xf16>, %b: memref<?xf16>, %c: memref<?xf32>,
                  %d: memref<?xf32>)
      kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %c0 = arith.constant 0 : index
    %c128 = arith.constant 128 : index
    %c256 = arith.constant 256 : index
    %ck = arith.constant 16 : index
    %blk = gpu.block_id x
    %lane = gpu.thread_id x
    %g = arith.divui %lane, %c4 : index
    %q = arith.remui %lane, %c4 : index
    %q2 = arith.muli %q, %c2 : index
    %abase = arith.muli %blk, %c256 : index
    %bbase = arith.muli %blk, %c128 : index
    %cbase = arith.muli %blk, %c128 : index
    %arow0 = arith.addi %g, %c0 : index
    %acol0 = arith.addi %q2, %c0 : index
    %ar0 = arith.muli %arow0, %ck : index
    %ai0 = arith.addi %ar0, %acol0 : index
    %aj0 = arith.addi %abase, %ai0 : index
    %ak0 = arith.addi %aj0, %c1 : index
    %ax0 = memref.load %a[%aj0] : memref<?xf16>
    %ay0 = memref.load %a[%ak0] : memref<?xf16>
    %av0 = vector.from_elements %ax0, %ay0 : vector<2xf16>
    %arow1 = arith.addi %g, %c8 : index
    %acol1 = arith.addi %q2, %c0 : index
    %ar1 = arith.muli %arow1, %ck : index
    %ai1 = arith.addi %ar1, %acol1 : index
    %aj1 = arith.addi %abase, %ai1 : index
    %ak1 = arith.addi %aj1, %c1 : index
    %ax1 = memref.load %a[%aj1] : memref<?xf16>
    %ay1 = memref.load %a[%ak1] : memref<?xf16>
    %av1 = vector.from_elements %ax1, %ay1 : vector<2xf16>
    %arow2 = arith.addi %g, %c0 : index
    %acol2 = arith.addi %q2, %c8 : index
    %ar2 = arith.muli %arow2, %ck : index
    %ai2 = arith.addi %ar2, %acol2 : index
    %aj2 = arith.addi %abase, %ai2 : index
    %ak2 = arith.addi %aj2, %c1 : index
    %ax2 = memref.load %a[%aj2] : memref<?xf16>
    %ay2 = memref.load %a[%ak2] : memref<?xf16>
    %av2 = vector.from_elements %ax2, %ay2 : vector<2xf16>
    %arow3 = arith.addi %g, %c8 : index
    %acol3 = arith.addi %q2, %c8 : index
    %ar3 = arith.muli %arow3, %ck : index
    %ai3 = arith.addi %ar3, %acol3 : index
    %aj3 = arith.addi %abase, %ai3 : index
    %ak3 = arith.addi %aj3, %c1 : index
    %ax3 = memref.load %a[%aj3] : memref<?xf16>
    %ay3 = memref.load %a[%ak3] : memref<?xf16>
    %av3 = vector.from_elements %ax3, %ay3 : vector<2xf16>
    %bk0 = arith.addi %q2, %c0 : index
    %bm0 = arith.muli %bk0, %c8 : index
    %bi0 = arith.addi %bm0, %g : index
    %bj0 = arith.addi %bbase, %bi0 : index
    %bl0 = arith.addi %bj0, %c8 : index
    %bx0 = memref.load %b[%bj0] : memref<?xf16>
    %by0 = memref.load %b[%bl0] : memref<?xf16>
    %bv0 = vector.from_elements %bx0, %by0 : vector<2xf16>
    %bk1 = arith.addi %q2, %c8 : index
    %bm1 = arith.muli %bk1, %c8 : index
    %bi1 = arith.addi %bm1, %g : index
    %bj1 = arith.addi %bbase, %bi1 : index
    %bl1 = arith.addi %bj1, %c8 : index
    %bx1 = memref.load %b[%bj1] : memref<?xf16>
    %by1 = memref.load %b[%bl1] : memref<?xf16>
    %bv1 = vector.from_elements %bx1, %by1 : vector<2xf16>
    %crow0 = arith.addi %g, %c0 : index
    %ccol0 = arith.addi %q2, %c0 : index
    %cr0 = arith.muli %crow0, %c8 : index
    %ci0 = arith.addi %cr0, %ccol0 : index
    %cj0 = arith.addi %cbase, %ci0 : index
    %cv0 = memref.load %c[%cj0] : memref<?xf32>
    %crow1 = arith.addi %g, %c0 : index
    %ccol1 = arith.addi %q2, %c1 : index
    %cr1 = arith.muli %crow1, %c8 : index
    %ci1 = arith.addi %cr1, %ccol1 : index
    %cj1 = arith.addi %cbase, %ci1 : index
    %cv1 = memref.load %c[%cj1] : memref<?xf32>
    %crow2 = arith.addi %g, %c8 : index
    %ccol2 = arith.addi %q2, %c0 : index
    %cr2 = arith.muli %crow2, %c8 : index
    %ci2 = arith.addi %cr2, %ccol2 : index
    %cj2 = arith.addi %cbase, %ci2 : index
    %cv2 = memref.load %c[%cj2] : memref<?xf32>
    %crow3 = arith.addi %g, %c8 : index
    %ccol3 = arith.addi %q2, %c1 : index
    %cr3 = arith.muli %crow3, %c8 : index
    %ci3 = arith.addi %cr3, %ccol3 : index
    %cj3 = arith.addi %cbase, %ci3 : index
    %cv3 = memref.load %c[%cj3] : memref<?xf32>
    %res = nvvm.mma.sync A[%av0, %av1, %av2, %av3] B[%bv0, %bv1] C[%cv0, %cv1, %cv2, %cv3] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
    %dv0 = llvm.extractvalue %res[0] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv0, %d[%cj0] : memref<?xf32>
    %dv1 = llvm.extractvalue %res[1] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv1, %d[%cj1] : memref<?xf32>
    %dv2 = llvm.extractvalue %res[2] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv2, %d[%cj2] : memref<?xf32>
    %dv3 = llvm.extractvalue %res[3] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv3, %d[%cj3] : memref<?xf32>
    gpu.return
  }

  // D = A B + C for one 16x16 x 16x8 product per block (bf16 multiplicands,
  // f32 accumulators), fragments loaded in PTX's m16n8k16 layout.
  gpu.func @mma_bf16_k16(%a: memref<?xbf16>, %b: memref<?xbf16>, %c: memref<?xf32>,
                  %d: memref<?xf32>)
      kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %c0 = arith.constant 0 : index
    %c128 = arith.constant 128 : index
    %c256 = arith.constant 256 : index
    %ck = arith.constant 16 : index
    %blk = gpu.block_id x
    %lane = gpu.thread_id x
    %g = arith.divui %lane, %c4 : index
    %q = arith.remui %lane, %c4 : index
    %q2 = arith.muli %q, %c2 : index
    %abase = arith.muli %blk, %c256 : index
    %bbase = arith.muli %blk, %c128 : index
    %cbase = arith.muli %blk, %c128 : index
    %arow0 = arith.addi %g, %c0 : index
    %acol0 = arith.addi %q2, %c0 : index
    %ar0 = arith.muli %arow0, %ck : index
    %ai0 = arith.addi %ar0, %acol0 : index
    %aj0 = arith.addi %abase, %ai0 : index
    %ak0 = arith.addi %aj0, %c1 : index
    %ax0 = memref.load %a[%aj0] : memref<?xbf16>
    %ay0 = memref.load %a[%ak0] : memref<?xbf16>
    %av0 = vector.from_elements %ax0, %ay0 : vector<2xbf16>
    %A0 = vector.bitcast %av0 : vector<2xbf16> to vector<1xi32>
    %A0s = vector.extract %A0[0] : i32 from vector<1xi32>
    %arow1 = arith.addi %g, %c8 : index
    %acol1 = arith.addi %q2, %c0 : index
    %ar1 = arith.muli %arow1, %ck : index
    %ai1 = arith.addi %ar1, %acol1 : index
    %aj1 = arith.addi %abase, %ai1 : index
    %ak1 = arith.addi %aj1, %c1 : index
    %ax1 = memref.load %a[%aj1] : memref<?xbf16>
    %ay1 = memref.load %a[%ak1] : memref<?xbf16>
    %av1 = vector.from_elements %ax1, %ay1 : vector<2xbf16>
    %A1 = vector.bitcast %av1 : vector<2xbf16> to vector<1xi32>
    %A1s = vector.extract %A1[0] : i32 from vector<1xi32>
    %arow2 = arith.addi %g, %c0 : index
    %acol2 = arith.addi %q2, %c8 : index
    %ar2 = arith.muli %arow2, %ck : index
    %ai2 = arith.addi %ar2, %acol2 : index
    %aj2 = arith.addi %abase, %ai2 : index
    %ak2 = arith.addi %aj2, %c1 : index
    %ax2 = memref.load %a[%aj2] : memref<?xbf16>
    %ay2 = memref.load %a[%ak2] : memref<?xbf16>
    %av2 = vector.from_elements %ax2, %ay2 : vector<2xbf16>
    %A2 = vector.bitcast %av2 : vector<2xbf16> to vector<1xi32>
    %A2s = vector.extract %A2[0] : i32 from vector<1xi32>
    %arow3 = arith.addi %g, %c8 : index
    %acol3 = arith.addi %q2, %c8 : index
    %ar3 = arith.muli %arow3, %ck : index
    %ai3 = arith.addi %ar3, %acol3 : index
    %aj3 = arith.addi %abase, %ai3 : index
    %ak3 = arith.addi %aj3, %c1 : index
    %ax3 = memref.load %a[%aj3] : memref<?xbf16>
    %ay3 = memref.load %a[%ak3] : memref<?xbf16>
    %av3 = vector.from_elements %ax3, %ay3 : vector<2xbf16>
    %A3 = vector.bitcast %av3 : vector<2xbf16> to vector<1xi32>
    %A3s = vector.extract %A3[0] : i32 from vector<1xi32>
    %bk0 = arith.addi %q2, %c0 : index
    %bm0 = arith.muli %bk0, %c8 : index
    %bi0 = arith.addi %bm0, %g : index
    %bj0 = arith.addi %bbase, %bi0 : index
    %bl0 = arith.addi %bj0, %c8 : index
    %bx0 = memref.load %b[%bj0] : memref<?xbf16>
    %by0 = memref.load %b[%bl0] : memref<?xbf16>
    %bv0 = vector.from_elements %bx0, %by0 : vector<2xbf16>
    %B0 = vector.bitcast %bv0 : vector<2xbf16> to vector<1xi32>
    %B0s = vector.extract %B0[0] : i32 from vector<1xi32>
    %bk1 = arith.addi %q2, %c8 : index
    %bm1 = arith.muli %bk1, %c8 : index
    %bi1 = arith.addi %bm1, %g : index
    %bj1 = arith.addi %bbase, %bi1 : index
    %bl1 = arith.addi %bj1, %c8 : index
    %bx1 = memref.load %b[%bj1] : memref<?xbf16>
    %by1 = memref.load %b[%bl1] : memref<?xbf16>
    %bv1 = vector.from_elements %bx1, %by1 : vector<2xbf16>
    %B1 = vector.bitcast %bv1 : vector<2xbf16> to vector<1xi32>
    %B1s = vector.extract %B1[0] : i32 from vector<1xi32>
    %crow0 = arith.addi %g, %c0 : index
    %ccol0 = arith.addi %q2, %c0 : index
    %cr0 = arith.muli %crow0, %c8 : index
    %ci0 = arith.addi %cr0, %ccol0 : index
    %cj0 = arith.addi %cbase, %ci0 : index
    %cv0 = memref.load %c[%cj0] : memref<?xf32>
    %crow1 = arith.addi %g, %c0 : index
    %ccol1 = arith.addi %q2, %c1 : index
    %cr1 = arith.muli %crow1, %c8 : index
    %ci1 = arith.addi %cr1, %ccol1 : index
    %cj1 = arith.addi %cbase, %ci1 : index
    %cv1 = memref.load %c[%cj1] : memref<?xf32>
    %crow2 = arith.addi %g, %c8 : index
    %ccol2 = arith.addi %q2, %c0 : index
    %cr2 = arith.muli %crow2, %c8 : index
    %ci2 = arith.addi %cr2, %ccol2 : index
    %cj2 = arith.addi %cbase, %ci2 : index
    %cv2 = memref.load %c[%cj2] : memref<?xf32>
    %crow3 = arith.addi %g, %c8 : index
    %ccol3 = arith.addi %q2, %c1 : index
    %cr3 = arith.muli %crow3, %c8 : index
    %ci3 = arith.addi %cr3, %ccol3 : index
    %cj3 = arith.addi %cbase, %ci3 : index
    %cv3 = memref.load %c[%cj3] : memref<?xf32>
    %res = nvvm.mma.sync A[%A0s, %A1s, %A2s, %A3s] B[%B0s, %B1s] C[%cv0, %cv1, %cv2, %cv3] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
    %dv0 = llvm.extractvalue %res[0] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv0, %d[%cj0] : memref<?xf32>
    %dv1 = llvm.extractvalue %res[1] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv1, %d[%cj1] : memref<?xf32>
    %dv2 = llvm.extractvalue %res[2] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv2, %d[%cj2] : memref<?xf32>
    %dv3 = llvm.extractvalue %res[3] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv3, %d[%cj3] : memref<?xf32>
    gpu.return
  }

  // D = A B + C for one 16x8 x 8x8 product per block (f16 multiplicands,
  // f32 accumulators), fragments loaded in PTX's m16n8k8 layout.
  gpu.func @mma_f16_k8(%a: memref<?xf16>, %b: memref<?xf16>, %c: memref<?xf32>,
                  %d: memref<?xf32>)
      kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %c0 = arith.constant 0 : index
    %c64 = arith.constant 64 : index
    %c128 = arith.constant 128 : index
    %ck = arith.constant 8 : index
    %blk = gpu.block_id x
    %lane = gpu.thread_id x
    %g = arith.divui %lane, %c4 : index
    %q = arith.remui %lane, %c4 : index
    %q2 = arith.muli %q, %c2 : index
    %abase = arith.muli %blk, %c128 : index
    %bbase = arith.muli %blk, %c64 : index
    %cbase = arith.muli %blk, %c128 : index
    %arow0 = arith.addi %g, %c0 : index
    %acol0 = arith.addi %q2, %c0 : index
    %ar0 = arith.muli %arow0, %ck : index
    %ai0 = arith.addi %ar0, %acol0 : index
    %aj0 = arith.addi %abase, %ai0 : index
    %ak0 = arith.addi %aj0, %c1 : index
    %ax0 = memref.load %a[%aj0] : memref<?xf16>
    %ay0 = memref.load %a[%ak0] : memref<?xf16>
    %av0 = vector.from_elements %ax0, %ay0 : vector<2xf16>
    %arow1 = arith.addi %g, %c8 : index
    %acol1 = arith.addi %q2, %c0 : index
    %ar1 = arith.muli %arow1, %ck : index
    %ai1 = arith.addi %ar1, %acol1 : index
    %aj1 = arith.addi %abase, %ai1 : index
    %ak1 = arith.addi %aj1, %c1 : index
    %ax1 = memref.load %a[%aj1] : memref<?xf16>
    %ay1 = memref.load %a[%ak1] : memref<?xf16>
    %av1 = vector.from_elements %ax1, %ay1 : vector<2xf16>
    %bk0 = arith.addi %q2, %c0 : index
    %bm0 = arith.muli %bk0, %c8 : index
    %bi0 = arith.addi %bm0, %g : index
    %bj0 = arith.addi %bbase, %bi0 : index
    %bl0 = arith.addi %bj0, %c8 : index
    %bx0 = memref.load %b[%bj0] : memref<?xf16>
    %by0 = memref.load %b[%bl0] : memref<?xf16>
    %bv0 = vector.from_elements %bx0, %by0 : vector<2xf16>
    %crow0 = arith.addi %g, %c0 : index
    %ccol0 = arith.addi %q2, %c0 : index
    %cr0 = arith.muli %crow0, %c8 : index
    %ci0 = arith.addi %cr0, %ccol0 : index
    %cj0 = arith.addi %cbase, %ci0 : index
    %cv0 = memref.load %c[%cj0] : memref<?xf32>
    %crow1 = arith.addi %g, %c0 : index
    %ccol1 = arith.addi %q2, %c1 : index
    %cr1 = arith.muli %crow1, %c8 : index
    %ci1 = arith.addi %cr1, %ccol1 : index
    %cj1 = arith.addi %cbase, %ci1 : index
    %cv1 = memref.load %c[%cj1] : memref<?xf32>
    %crow2 = arith.addi %g, %c8 : index
    %ccol2 = arith.addi %q2, %c0 : index
    %cr2 = arith.muli %crow2, %c8 : index
    %ci2 = arith.addi %cr2, %ccol2 : index
    %cj2 = arith.addi %cbase, %ci2 : index
    %cv2 = memref.load %c[%cj2] : memref<?xf32>
    %crow3 = arith.addi %g, %c8 : index
    %ccol3 = arith.addi %q2, %c1 : index
    %cr3 = arith.muli %crow3, %c8 : index
    %ci3 = arith.addi %cr3, %ccol3 : index
    %cj3 = arith.addi %cbase, %ci3 : index
    %cv3 = memref.load %c[%cj3] : memref<?xf32>
    %res = nvvm.mma.sync A[%av0, %av1] B[%bv0] C[%cv0, %cv1, %cv2, %cv3] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 8>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
    %dv0 = llvm.extractvalue %res[0] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv0, %d[%cj0] : memref<?xf32>
    %dv1 = llvm.extractvalue %res[1] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv1, %d[%cj1] : memref<?xf32>
    %dv2 = llvm.extractvalue %res[2] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv2, %d[%cj2] : memref<?xf32>
    %dv3 = llvm.extractvalue %res[3] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %dv3, %d[%cj3] : memref<?xf32>
    gpu.return
  }

  // The two halves of the warp reach different mma.sync instructions (the
  // arms of a divergent if): reported, D is NaN.
  gpu.func @mma_two_sites(%a: memref<?xf16>, %d: memref<?xf32>)
      kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
    %c16 = arith.constant 16 : index
    %zero = arith.constant 0.0 : f32
    %lane = gpu.thread_id x
    %x = memref.load %a[%lane] : memref<?xf16>
    %v = vector.from_elements %x, %x : vector<2xf16>
    %low = arith.cmpi ult, %lane, %c16 : index
    %r = scf.if %low -> (f32) {
      %res = nvvm.mma.sync A[%v, %v, %v, %v] B[%v, %v] C[%zero, %zero, %zero, %zero] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
      %d0 = llvm.extractvalue %res[0] : !llvm.struct<(f32, f32, f32, f32)>
      scf.yield %d0 : f32
    } else {
      %res = nvvm.mma.sync A[%v, %v, %v, %v] B[%v, %v] C[%zero, %zero, %zero, %zero] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
      %d1 = llvm.extractvalue %res[1] : !llvm.struct<(f32, f32, f32, f32)>
      scf.yield %d1 : f32
    }
    memref.store %r, %d[%lane] : memref<?xf32>
    gpu.return
  }

  // Only the first 16 lanes reach the mma.sync: reported, D is NaN.
  gpu.func @mma_divergent(%a: memref<?xf16>, %d: memref<?xf32>)
      kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c16 = arith.constant 16 : index
    %zero = arith.constant 0.0 : f32
    %lane = gpu.thread_id x
    %low = arith.cmpi ult, %lane, %c16 : index
    scf.if %low {
      %x = memref.load %a[%lane] : memref<?xf16>
      %v = vector.from_elements %x, %x : vector<2xf16>
      %res = nvvm.mma.sync A[%v, %v, %v, %v] B[%v, %v] C[%zero, %zero, %zero, %zero] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
      %d0 = llvm.extractvalue %res[0] : !llvm.struct<(f32, f32, f32, f32)>
      memref.store %d0, %d[%lane] : memref<?xf32>
    }
    gpu.return
  }
}
}
