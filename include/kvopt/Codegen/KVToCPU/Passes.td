//===- Passes.td - kv to CPU lowering passes ----------------*- tablegen -*-===//
//
// Passes that lower the kv dialect to loops and vectors over raw cache bytes,
// on the way to LLVM for the CPU.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_KVTOCPU_PASSES_TD
#define KVOPT_CODEGEN_KVTOCPU_PASSES_TD

include "mlir/Pass/PassBase.td"

def KVCPUToLoops : Pass<"kv-cpu-to-loops", "::mlir::ModuleOp"> {
  let summary = "lower kv ops to scf/vector kernels over raw cache bytes";
  let description = [{
    Converts every `!kv.cache` / `!kv.latent_cache` value into its raw
    storage, `memref<?xi8>`, laid out byte for byte as in
    docs/CacheLayout.md, and replaces every kv op by a call to a private
    kernel function (`@__kv_cpu_<op>_<n>`, one per distinct configuration)
    built from `scf.parallel`, `scf.for` and `vector` ops on memrefs. Tensor
    operands reach the kernels through `bufferization.to_buffer`; results
    are fresh `memref.alloc`s wrapped in `bufferization.to_tensor restrict
    writable`, so that one-shot bufferization can finish the job.

    Storage (docs/CPU.md has the long form): a paged cache is a pool of
    pages addressed through the op's block table; a contiguous cache is one
    page of `capacity` tokens per sequence, page `b` for sequence `b`. Caches
    with full-precision windows (`recent`, `sinks`) end with one window slot
    per batch row, `[sinks + recent][row]` elements per component, sinks
    first and then a ring indexed by `position % recent`.

    Kernels: attention and MLA attention read each K/V row once per query
    head group (every query head of the group and every query row of the
    op in one pass), dequantize in registers just before the dot product,
    use a blocked online softmax, and split long contexts across
    `kv-splits` parallel tasks whose (output, log-sum-exp) partial states
    are merged at the end. Appends apply RoPE, quantize with the exact
    recipe of docs/Numerics.md and scatter into pages.

    Preconditions: caches are function arguments (`kv.alloc_cache` is
    rejected: the caller owns cache memory), tensor shapes are static except
    the batch dimension. Postcondition: no kv op and no kv type is left.
  }];
  let options = [
    Option<"splits", "kv-splits", "int64_t", /*default=*/"0",
           "parallel key splits per (sequence, KV head) in attention; 0 "
           "picks ceil(capacity / split-tokens), at most 64">,
    Option<"splitTokens", "split-tokens", "int64_t", /*default=*/"128",
           "fewest keys one split processes (also the automatic split size)">,
    Option<"blockTokens", "block-tokens", "int64_t", /*default=*/"16",
           "keys scored together before one online-softmax rescale">,
    Option<"vectorBits", "vector-bits", "int64_t", /*default=*/"0",
           "f32 vector width (bits) the attention kernels are register-tiled "
           "for: 128, 256 or 512; 0 = the host CPU's widest (512 with "
           "AVX-512F, 256 with AVX2, otherwise 128)">,
    Option<"intDots", "int-dots", "bool", /*default=*/"true",
           "fixed-point dot products for token-axis int8/int4/int2 K and V "
           "rows without full-precision windows: codes times 16-bit "
           "queries and weights, summed exactly in i32 (vpmaddwd on x86), "
           "instead of codes converted to f32">,
    Option<"emitCInterface", "emit-c-interface", "bool", /*default=*/"true",
           "mark public functions llvm.emit_c_interface (ExecutionEngine)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def KVCPUBundleEntries : Pass<"kv-cpu-bundle-entries", "::mlir::ModuleOp"> {
  let summary = "add the runtime's `void entry(void **params)` entry point "
                "of every public function";
  let description = [{
    For every public function `@f` with a body, adds
    `func.func @kvopt_entry_f(%params: !llvm.ptr)`: the kernel entry the
    runtime's `cpu` launch backend calls for a bundle of format `so`
    (docs/Runtime.md). `params[i]` points at the value of argument `i` of
    the expanded kernel ABI, the same one the GPU kernels use: a memref
    argument `x` of rank r is `x_alloc` (ptr), `x` (aligned ptr),
    `x_offset`, `x_size<d>` and `x_stride<d>` (i64; `x_size`, `x_stride`
    when r = 1); an i32, i64 or index argument is one i32/i64/i64 and an f32
    argument one f32. The entry rebuilds the memref descriptors and calls
    `@f`.

    Runs after bufferization: arguments must be memrefs with strided
    layouts in the default memory space or i32/i64/index/f32 scalars, and
    `@f` must return nothing (results become out-parameters first:
    `buffer-results-to-out-params`, whose `bufferize.result` attribute
    names them `result<j>`; other arguments are `arg<i>`). Anything else is
    an error naming the function and the argument. Each entry carries
    `kv.bundle_kernel` (the name callers launch, `f`) and `kv.bundle_args`
    (the manifest's args: name and type per value), which survive the lowering to LLVM
    dialect for the bundle writer.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::LLVM::LLVMDialect"
  ];
}

#endif // KVOPT_CODEGEN_KVTOCPU_PASSES_TD
