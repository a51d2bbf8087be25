// RUN: kvopt-opt %s -split-input-file -kv-gpu-kernels | FileCheck %s
// RUN: kvopt-opt %s -split-input-file -kv-gpu-kernels=kernels-only | FileCheck %s --check-prefix=ONLY

// A decode step: the fused append gets one kernel, the attention its decode
// and merge pair; each op names its kernels and each kernel carries its
// launch contract (block size, argument names, grid rules).
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, group = 32, symmetric = false>, value = #kv.quant<int8, scale = f32>>
// CHECK-LABEL: func.func @step
// CHECK: kv.append {{.*}}kv.gpu_kernels = [@kv_gpu::@append_0]
// CHECK: kv.attention {{.*}}kv.gpu_kernels = [@kv_gpu::@decode_0, @kv_gpu::@merge_0]
// CHECK: gpu.module @kv_gpu
// CHECK: gpu.func @append_0(%{{.*}}: memref<?xi8>, %{{.*}}: memref<?xi32>, %{{.*}}: memref<?xf16>, %{{.*}}: memref<?xf16>, %{{.*}}: memref<?xi32>, %{{.*}}: i32) kernel
// CHECK-SAME: known_block_size = array<i32: 128, 1, 1>
// CHECK-SAME: kv.arg_names = ["pool", "positions", "keys", "values", "block_table", "max_pages"]
// 8 rows (1 token x 8 heads), 4 rows of 32 lanes per block: 2 blocks.
// CHECK-SAME: kv.grid = [2, {arg = "positions_size", ceil_div = 1 : i64, mul = 1 : i64}]
// CHECK-SAME: kv.rows_per_block = 4
// RoPE: cos/sin by the double-precision reduction, no libdevice call.
// CHECK-NOT: math.cos
// CHECK: arith.extf {{.*}} to vector<4xf64>
// CHECK: gpu.func @decode_0
// CHECK: gpu.func @merge_0
// ONLY-NOT: func.func
// ONLY: gpu.module @kv_gpu
// ONLY: gpu.func @append_0
func.func @step(%c: !c, %pos: tensor<4xi32>, %k: tensor<4x8x1x128xf16>, %v: tensor<4x8x1x128xf16>, %bt: tensor<4x256xi32>, %q: tensor<4x32x1x128xf16>, %lens: tensor<4xi32>) -> tensor<4x32x1x128xf16> {
  kv.append %c[%pos], %k, %v block_table %bt {rope_theta = 10000.0 : f64} : !c, tensor<4xi32>, tensor<4x8x1x128xf16>, tensor<4x8x1x128xf16>, tensor<4x256xi32>
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<4x32x1x128xf16>, !c, tensor<4xi32>, tensor<4x256xi32>) -> tensor<4x32x1x128xf16>
  return %o : tensor<4x32x1x128xf16>
}

// -----

// Two appends of one configuration share a kernel; a third with another
// token count gets its own. Rows of 64 f32 channels take 32 lanes of 2, so a
// block of 128 threads writes 4 rows: 1 token x 2 heads is 1 block, a
// prefill of 17 tokens x 2 heads is ceil(34 / 4) = 9.
!f = !kv.cache<kv_heads = 2, head_dim = 64, capacity = 256, element = f32, layout = #kv.layout<paged, page_size = 1>>
// CHECK-LABEL: func.func @shared
// CHECK: kv.append {{.*}}kv.gpu_kernels = [@kv_gpu::@append_0]
// CHECK: kv.append {{.*}}kv.gpu_kernels = [@kv_gpu::@append_0]
// CHECK: kv.append {{.*}}kv.gpu_kernels = [@kv_gpu::@append_1]
// CHECK: gpu.func @append_0
// CHECK-SAME: kv.grid = [1,
// CHECK-SAME: kv.rows_per_block = 4
// CHECK: gpu.func @append_1
// CHECK-SAME: kv.grid = [9,
// CHECK-NOT: gpu.func @append_2
func.func @shared(%c: !f, %pos: tensor<2xi32>, %k: tensor<2x2x1x64xf32>, %v: tensor<2x2x1x64xf32>, %kp: tensor<2x2x17x64xf32>, %vp: tensor<2x2x17x64xf32>, %bt: tensor<2x256xi32>) {
  kv.append %c[%pos], %k, %v block_table %bt : !f, tensor<2xi32>, tensor<2x2x1x64xf32>, tensor<2x2x1x64xf32>, tensor<2x256xi32>
  kv.append %c[%pos], %k, %v block_table %bt : !f, tensor<2xi32>, tensor<2x2x1x64xf32>, tensor<2x2x1x64xf32>, tensor<2x256xi32>
  kv.append %c[%pos], %kp, %vp block_table %bt : !f, tensor<2xi32>, tensor<2x2x17x64xf32>, tensor<2x2x17x64xf32>, tensor<2x256xi32>
  return
}

// -----

// A module without kv ops is left alone: no kernel module is created.
// CHECK-LABEL: func.func @none
// CHECK-NOT: gpu.module
func.func @none(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

// MLA decode over a paged latent cache: a decode kernel over blocks of
// query rows and the merge of the latent-wide states. Accumulators allow 31
// rows per block (127 registers / 4 latent channels per thread); shared
// memory, 4 * (576 + 32 + 2) bytes per row plus 8 for a tile's 2 pages, allows 20
// of the 40 heads: 2 row blocks. The merge covers the 40 rows.
!l = !kv.latent_cache<latent_dim = 512, rope_dim = 64, capacity = 4096, element = bf16, layout = #kv.layout<paged, page_size = 64>>
// CHECK-LABEL: func.func @mla
// CHECK: kv.mla_attention {{.*}}kv.gpu_kernels = [@kv_gpu::@mla_decode_0, @kv_gpu::@merge_0]
// CHECK: gpu.func @mla_decode_0
// CHECK-SAME: kv.arg_names = ["q_latent", "q_rope", "pool", "block_table", "seq_lens", "part_out", "part_lse", "max_pages", "splits", "chunk_tokens"]
// CHECK-SAME: kv.grid = [{arg = "splits", ceil_div = 1 : i64, mul = 1 : i64}, 2, {arg = "seq_lens_size", ceil_div = 1 : i64, mul = 1 : i64}]
// CHECK-SAME: kv.rows_per_block = 20
// CHECK-SAME: kv.shared_bytes = 48808
// CHECK: gpu.func @merge_0
// CHECK-SAME: kv.grid = [40, {arg = "lse_size", ceil_div = 40 : i64, mul = 1 : i64}]
func.func @mla(%ql: tensor<?x40x1x512xbf16>, %qr: tensor<?x40x1x64xbf16>, %c: !l, %lens: tensor<?xi32>, %bt: tensor<?x64xi32>) -> tensor<?x40x1x512xbf16> {
  %o = kv.mla_attention %ql, %qr, %c, %lens block_table %bt {scale = 0.0723 : f32} : (tensor<?x40x1x512xbf16>, tensor<?x40x1x64xbf16>, !l, tensor<?xi32>, tensor<?x64xi32>) -> tensor<?x40x1x512xbf16>
  return %o : tensor<?x40x1x512xbf16>
}

// -----

// 64 query rows per KV head (4 heads x 16 chunk tokens) of an f16 cache get
// the tensor-core prefill kernel: one block of 4 warps x 16 rows per KV
// head; so do 48 rows (4 x 12), whose decode accumulators (48 x 4 per lane)
// would exceed the register budget; 16 rows (4 x 4) stay on decode.
!p = !kv.cache<kv_heads = 2, head_dim = 128, capacity = 4096, element = f16, layout = #kv.layout<paged, page_size = 16>>
// CHECK-LABEL: func.func @prefill
// CHECK: kv.attention {{.*}}kv.gpu_kernels = [@kv_gpu::@prefill_0]
// CHECK: kv.attention {{.*}}kv.gpu_kernels = [@kv_gpu::@prefill_1]
// CHECK: kv.attention {{.*}}kv.gpu_kernels = [@kv_gpu::@decode_0, @kv_gpu::@merge_0]
// CHECK: gpu.func @prefill_0
// CHECK-SAME: kv.arg_names = ["q", "pool", "block_table", "seq_lens", "out", "lse", "max_pages"]
// CHECK-SAME: kv.grid = [1, 2, {arg = "seq_lens_size", ceil_div = 1 : i64, mul = 1 : i64}]
// CHECK-SAME: kv.rows_per_block = 64
// 2 x 32 keys x (128 + 8) f16 + 3 page entries.
// CHECK-SAME: kv.shared_bytes = 17420
// CHECK: nvvm.mma.sync
// CHECK: gpu.func @decode_0
func.func @prefill(%q: tensor<?x8x16x128xf16>, %q2: tensor<?x8x12x128xf16>, %q3: tensor<?x8x4x128xf16>, %c: !p, %lens: tensor<?xi32>, %bt: tensor<?x256xi32>) -> (tensor<?x8x16x128xf16>, tensor<?x8x12x128xf16>, tensor<?x8x4x128xf16>) {
  %o = kv.attention %q, %c, %lens block_table %bt {causal} : (tensor<?x8x16x128xf16>, !p, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x8x16x128xf16>
  %o2 = kv.attention %q2, %c, %lens block_table %bt {causal} : (tensor<?x8x12x128xf16>, !p, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x8x12x128xf16>
  %o3 = kv.attention %q3, %c, %lens block_table %bt {causal} : (tensor<?x8x4x128xf16>, !p, tensor<?xi32>, tensor<?x256xi32>) -> tensor<?x8x4x128xf16>
  return %o, %o2, %o3 : tensor<?x8x16x128xf16>, tensor<?x8x12x128xf16>, tensor<?x8x4x128xf16>
}
