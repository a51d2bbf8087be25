//===- Passes.td - kv to GPU kernel generation --------------*- tablegen -*-===//
//
// The pass that generates gpu-dialect kernels for the kv ops of a module.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_KVTOGPU_PASSES_TD
#define KVOPT_CODEGEN_KVTOGPU_PASSES_TD

include "mlir/Pass/PassBase.td"

def KVGPUKernels : Pass<"kv-gpu-kernels", "::mlir::ModuleOp"> {
  let summary = "generate gpu-dialect kernels for kv.attention, "
                "kv.mla_attention and kv.append over paged caches";
  let description = [{
    For every `kv.attention` over a paged `!kv.cache` (decode: few query
    rows per sequence), builds two kernels in the `gpu.module @kv_gpu`
    (created when absent), one pair per distinct configuration:

    - `decode_<n>`: grid (splits, kv_heads, batch), one block per
      (KV chunk, KV head, sequence) that serves every query head of the GQA
      group, so each K/V byte of a chunk is read once. Pages are addressed
      through the block table and read byte for byte as in
      docs/CacheLayout.md, with dequantization (int8, fp8 e4m3, int4, int2;
      token or channel axis; groups; zero points) fused before the dot
      products; tokens of a full-precision window (`recent`, `sinks`) are
      read exactly from the sequence's window slots at the end of the pool
      (docs/GPU.md). Online softmax with f32 accumulation; each block writes its
      normalized partial output and natural log-sum-exp.
    - `merge_<n>`: grid (q_heads * Tq, batch), merges the per-chunk states
      exactly as `kv.merge_states` and writes the output in the op's
      element type and the log-sum-exp.

    Threads, tile tokens, per-thread vector widths and shared memory come
    from the target description of `chip` and the problem shape
    (codegen/KVToGPU/TargetInfo.h). The op is annotated with
    `kv.gpu_kernels = [@kv_gpu::@decode_<n>, @kv_gpu::@merge_<n>]`; each
    kernel carries its launch contract (`known_block_size`,
    `kv.tile_tokens`, `kv.max_splits`, `kv.arg_names`, and `kv.grid`: the
    launch grid as bundle-manifest rules over the expanded kernel ABI).
    For every `kv.mla_attention` over a paged `!kv.latent_cache`:

    - `mla_decode_<n>`: grid (splits, row blocks, batch), one block per
      (KV chunk, block of query rows, sequence); lanes split the latent +
      RoPE row for the scores, threads own latent channels for the values;
      dequantization fused (token or channel axis, full-precision
      windows exact). `merge_<n>` as above, over the
      latent width.

    For every `kv.append` to a paged `!kv.cache`:

    - `append_<n>`: grid (row blocks of the T x kv_heads new rows, batch);
      RoPE (rotate-half, cos/sin from a double-precision reduction, no
      libdevice), rounding to the cache element, quantization with the
      exact recipe of docs/Numerics.md (codes, scales and zero points equal
      the reference's bit for bit; a channel-axis group is quantized when
      its last token arrives, from the recent-ring copies of the others)
      and the scatter into the token's page slot through the block table,
      plus the full-precision window copies, in one kernel.

    Host code (split planning, launch) goes through the runtime's kernel
    bundles, which `kvopt-gpu-bundle` writes (docs/GPU.md).

    Rejected with a diagnostic: contiguous caches, appends to latent
    caches, channel-axis appends of more rows than the target's passes
    allow, head dims that no lane
    split covers, dynamic query shapes or token counts, shapes that exceed
    the target's registers or shared memory.
  }];
  let options = [
    Option<"chip", "chip", "std::string", /*default=*/"\"sm_80\"",
           "target whose description sizes the kernels (sm_80, sm_90)">,
    Option<"kernelsOnly", "kernels-only", "bool", /*default=*/"false",
           "erase everything but the generated gpu.module (kernel bundles)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

#endif // KVOPT_CODEGEN_KVTOGPU_PASSES_TD
