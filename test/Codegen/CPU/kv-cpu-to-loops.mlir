// RUN: kvopt-opt %s -split-input-file -kv-cpu-to-loops=vector-bits=512 | FileCheck %s
// RUN: kvopt-opt %s -split-input-file -kv-cpu-to-loops="kv-splits=4 vector-bits=512" | FileCheck %s --check-prefix=SPLIT
// RUN: kvopt-opt %s -split-input-file -kv-cpu-to-loops=vector-bits=256 | FileCheck %s --check-prefix=AVX2
// RUN: kvopt-opt %s -split-input-file -kv-cpu-to-loops="vector-bits=512 int-dots=false" | FileCheck %s --check-prefix=F32DOTS
// kv-cpu-to-loops turns caches into raw bytes and every kv op into a call
// to an outlined scf/vector kernel over memrefs.

!C = !kv.cache<kv_heads = 2, head_dim = 64, capacity = 100, element = f16>

// Decode attention over a contiguous cache: the cache argument becomes
// memref<?xi8>, tensors reach the kernel through to_buffer, results come back
// through to_tensor of fresh buffers; K rows are byte loads bitcast to f16.
// CHECK-LABEL: func.func @attention(
// CHECK-SAME: %[[C:[a-z0-9_]+]]: memref<?xi8>
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK: %[[Q:[a-z0-9_]+]] = bufferization.to_buffer %{{.*}} read_only : tensor<1x4x1x64xf16> to memref<1x4x1x64xf16>
// CHECK: %[[O:[a-z0-9_]+]] = memref.alloc() : memref<1x4x1x64xf16>
// CHECK: call @[[K:__kv_cpu_attention_[0-9a-f]+]](%[[Q]], %[[C]], %{{.*}}, %[[O]])
// CHECK: bufferization.to_tensor %[[O]] restrict writable
// CHECK: func.func private @[[K]](
// CHECK: scf.parallel
// CHECK: memref.alloca_scope
// Scores: a register tile of query rows x tokens of 16-lane partial dot
// products, accumulated over the row's chunks in straight-line code (the
// chunk loop is unrolled; K chunks are vector<32xi8> bitcast to f16), each
// token group first prefetching its part of the next block's lines; the
// partials of 16 tokens are
// reduced together by a shuffle tree; the softmax sums the block's
// weights; values accumulate in scf.for iter_args over the block's tokens,
// 2 rows x 64 lanes of accumulators.
// CHECK: memref.prefetch
// CHECK-NOT: scf.for
// CHECK: vector.load %{{.*}} : memref<?xi8>, vector<32xi8>
// CHECK: vector.bitcast %{{.*}} : vector<32xi8> to vector<16xf16>
// CHECK: math.fma %{{.*}}, %[[ZERO:cst[_0-9]*]] : vector<16xf32>
// CHECK-NOT: scf.for
// CHECK: math.fma %{{.*}} : vector<16xf32>
// CHECK: vector.shuffle %{{.*}} [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23] : vector<16xf32>, vector<16xf32>
// CHECK: vector.reduction <add>
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK: vector.load %{{.*}} : memref<?xi8>, vector<32xi8>
// CHECK: math.fma %{{.*}} : vector<16xf32>
// With 256-bit vectors (AVX2, 16 registers) the tiles are 8 lanes wide
// and hold at most 8 accumulators.
// AVX2-LABEL: func.func @attention(
// AVX2: scf.for {{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// AVX2: vector.bitcast %{{.*}} : vector<16xi8> to vector<8xf16>
// AVX2: math.fma %{{.*}} : vector<8xf32>
// AVX2: vector.shuffle %{{.*}} [0, 1, 2, 3, 8, 9, 10, 11] : vector<8xf32>, vector<8xf32>
// SPLIT-LABEL: func.func @attention(
// SPLIT: memref.alloc() : memref<1x4x4x64xf32>
// SPLIT: memref.alloc() : memref<1x4x4xf32>
// SPLIT: func.func private @__kv_cpu_attention_
// SPLIT-COUNT-2: scf.parallel
func.func @attention(%q: tensor<1x4x1x64xf16>, %c: !C, %lens: tensor<1xi32>) -> tensor<1x4x1x64xf16> {
  %o = kv.attention %q, %c, %lens : (tensor<1x4x1x64xf16>, !C, tensor<1xi32>) -> tensor<1x4x1x64xf16>
  return %o : tensor<1x4x1x64xf16>
}

// -----

!P = !kv.cache<kv_heads = 1, head_dim = 64, capacity = 64, element = f32, layout = #kv.layout<paged, page_size = 16>, key = #kv.quant<int4, group = 32, symmetric = false>>

// Paged, int4 keys in groups of 32: the page comes from the block table;
// the fixed-point path rounds each query row to i16 once per task, loads
// 32 codes (16 bytes) at a time as two nibble planes widened to i16, and
// sums pairs of products in i32 (vpmaddwd), converted and scaled per group.
// CHECK-LABEL: func.func @paged_int4(
// CHECK: call @[[K:__kv_cpu_attention_[0-9a-f]+]](
// CHECK: func.func private @[[K]](
// CHECK: math.roundeven %{{.*}} : vector<32xf32>
// CHECK: arith.fptosi %{{.*}} : vector<32xf32> to vector<32xi16>
// CHECK: memref.load %{{.*}} : memref<2x4xi32>
// CHECK: vector.load %{{.*}} : memref<?xi8>, vector<16xi8>
// CHECK: arith.extui %{{.*}} : vector<32xi8> to vector<32xi16>
// CHECK: arith.muli %{{.*}} : vector<32xi32>
// CHECK: arith.sitofp %{{.*}} : vector<16xi32> to vector<16xf32>
// Without int-dots the codes are unpacked (two nibbles interleaved) into
// an f32 staging block and scaled per group.
// F32DOTS-LABEL: func.func @paged_int4(
// F32DOTS: func.func private @__kv_cpu_attention_
// F32DOTS-NOT: arith.muli %{{.*}} : vector<32xi32>
// F32DOTS: vector.load %{{.*}} : memref<?xi8>, vector<32xi8>
// F32DOTS: vector.interleave
// F32DOTS: arith.uitofp
func.func @paged_int4(%q: tensor<2x2x1x64xf32>, %c: !P, %lens: tensor<2xi32>, %bt: tensor<2x4xi32>) -> (tensor<2x2x1x64xf32>, tensor<2x2x1xf32>) {
  %o, %l = kv.attention %q, %c, %lens block_table %bt : (tensor<2x2x1x64xf32>, !P, tensor<2xi32>, tensor<2x4xi32>) -> (tensor<2x2x1x64xf32>, tensor<2x2x1xf32>)
  return %o, %l : tensor<2x2x1x64xf32>, tensor<2x2x1xf32>
}

// -----

!Q = !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f16, key = #kv.quant<int8, axis = channel, group = 8, recent = 8>>

// Append with RoPE into a per-channel int8 cache: keys are rotated
// (math.cos/sin), a group is quantized when its last token arrives, with
// roundeven codes; the append has no result.
// CHECK-LABEL: func.func @append(
// CHECK: call @[[K:__kv_cpu_append_[0-9a-f]+]](
// CHECK-NEXT: return
// CHECK: func.func private @[[K]](
// CHECK: math.cos
// CHECK: arith.remui
// CHECK: math.roundeven
func.func @append(%c: !Q, %pos: tensor<2xi32>, %k: tensor<2x2x1x64xf16>, %v: tensor<2x2x1x64xf16>) {
  kv.append %c[%pos], %k, %v {rope_theta = 10000.0 : f64} : !Q, tensor<2xi32>, tensor<2x2x1x64xf16>, tensor<2x2x1x64xf16>
  return
}

// -----

!L = !kv.latent_cache<latent_dim = 32, rope_dim = 16, capacity = 64, element = bf16>

// MLA latent attention reuses the attention kernel with a 48-wide key row
// whose first 32 elements are the value: the value chunks are loads of the
// key row's first 32 bf16, 16 at a time.
// CHECK-LABEL: func.func @mla(
// CHECK: call @[[K:__kv_cpu_mla_attention_[0-9a-f]+]](
// CHECK: func.func private @[[K]](
// CHECK: vector.insert_strided_slice %{{.*}} {offsets = [32], strides = [1]} : vector<16xf32> into vector<48xf32>
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK: vector.load %{{.*}} : memref<?xi8>, vector<32xi8>
// CHECK: vector.bitcast %{{.*}} : vector<32xi8> to vector<16xbf16>
func.func @mla(%ql: tensor<1x4x1x32xbf16>, %qr: tensor<1x4x1x16xbf16>, %c: !L, %lens: tensor<1xi32>) -> tensor<1x4x1x32xbf16> {
  %o = kv.mla_attention %ql, %qr, %c, %lens {scale = 0.125 : f32} : (tensor<1x4x1x32xbf16>, tensor<1x4x1x16xbf16>, !L, tensor<1xi32>) -> tensor<1x4x1x32xbf16>
  return %o : tensor<1x4x1x32xbf16>
}

// -----

// Merge of split-KV partial states: operands are collapsed to [S][N][D].
// CHECK-LABEL: func.func @merge(
// CHECK: memref.collapse_shape %{{.*}} {{\[}}[0], [1, 2, 3], [4]] : memref<3x2x4x1x16xf32> into memref<3x8x16xf32>
// CHECK: call @__kv_cpu_merge_states_
func.func @merge(%o: tensor<3x2x4x1x16xf32>, %l: tensor<3x2x4x1xf32>) -> (tensor<2x4x1x16xf32>, tensor<2x4x1xf32>) {
  %mo, %ml = kv.merge_states %o, %l : tensor<3x2x4x1x16xf32>, tensor<3x2x4x1xf32> -> tensor<2x4x1x16xf32>, tensor<2x4x1xf32>
  return %mo, %ml : tensor<2x4x1x16xf32>, tensor<2x4x1xf32>
}

// -----

// Standalone quantize/dequantize, rope, gather_pages and mla_project each
// become one kernel call.
// CHECK-LABEL: func.func @others(
// CHECK: call @__kv_cpu_quantize_
// CHECK: call @__kv_cpu_dequantize_
// CHECK: call @__kv_cpu_rope_
// CHECK: call @__kv_cpu_gather_pages_
// CHECK: call @__kv_cpu_mla_project_
func.func @others(%x: tensor<16x64xf16>, %pos: tensor<1xi32>, %r: tensor<1x2x4x64xf16>, %pages: tensor<8x16x2x64xf16>, %bt: tensor<1x2xi32>, %h: tensor<1x1x32xf32>, %wd: tensor<32x16xf32>, %wr: tensor<32x8xf32>) -> (tensor<16x64xf16>, tensor<1x2x4x64xf16>, tensor<1x2x32x64xf16>, tensor<1x1x24xf32>) {
  %q, %s = kv.quantize %x {encoding = #kv.quant<int8>} : tensor<16x64xf16> -> tensor<16x64xi8>, tensor<16x1xf16>
  %d = kv.dequantize %q, %s {encoding = #kv.quant<int8>} : tensor<16x64xi8>, tensor<16x1xf16> -> tensor<16x64xf16>
  %rr = kv.rope %r, %pos {theta = 10000.0 : f64} : tensor<1x2x4x64xf16>, tensor<1xi32> -> tensor<1x2x4x64xf16>
  %g = kv.gather_pages %pages, %bt : tensor<8x16x2x64xf16>, tensor<1x2xi32> -> tensor<1x2x32x64xf16>
  %row = kv.mla_project %h, %wd, %wr : tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x8xf32> -> tensor<1x1x24xf32>
  return %d, %rr, %g, %row : tensor<16x64xf16>, tensor<1x2x4x64xf16>, tensor<1x2x32x64xf16>, tensor<1x1x24xf32>
}

// -----

!S = !kv.cache<kv_heads = 1, head_dim = 64, capacity = 32, element = f32>

// A shared cache reads its owner's bytes: the same memref reaches the view
// kernel, and the signature carries it as memref<?xi8>.
// CHECK-LABEL: func.func @shared(
// CHECK-SAME: %[[C:[a-z0-9_]+]]: memref<?xi8>
// CHECK: call @__kv_cpu_view_{{[0-9a-f]+}}(%[[C]],
func.func @shared(%c: !S) -> tensor<2x1x32x64xf32> {
  %s = kv.share_cache %c {layer = 1} : !S -> !S
  %k, %v = kv.view %s : !S -> tensor<2x1x32x64xf32>, tensor<2x1x32x64xf32>
  return %k : tensor<2x1x32x64xf32>
}

// -----

// Functions without kv ops or types are left alone (no kernel, no cast).
// CHECK-LABEL: func.func @plain(
// CHECK-NEXT: arith.addf
// CHECK-NEXT: return
// CHECK-NOT: __kv_cpu_
func.func @plain(%x: f32) -> f32 {
  %y = arith.addf %x, %x : f32
  return %y : f32
}
