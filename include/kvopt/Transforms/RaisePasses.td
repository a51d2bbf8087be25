//===- RaisePasses.td - raising attention out of model graphs -*- tablegen -*-===//
//
// Passes that find attention in func + linalg/tensor/arith/math model graphs
// and rewrite it into kv ops, and the MLA weight absorption that follows.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TRANSFORMS_RAISEPASSES_TD
#define KVOPT_TRANSFORMS_RAISEPASSES_TD

include "mlir/Pass/PassBase.td"

def KVRaiseAttention : Pass<"kv-raise-attention", "::mlir::ModuleOp"> {
  let summary = "raise attention and KV concatenation in model graphs to kv ops";
  let description = [{
    Finds scaled dot-product attention written in linalg/tensor/arith/math
    (as torch-mlir exports it or by hand) and rewrites it into kv ops with
    the KV cache made explicit. Recognized: Q·Kᵀ and P·V as any linalg
    contraction (matmul, batch_matmul, generic) in either operand order with
    transposes as indexing maps or separate ops, 4-D `[B, H, T, D]` and 3-D
    `[B*H, T, D]` forms; constant scaling of q, k or the scores; softmax as
    linalg.softmax or written out; additive or select masks given as
    constants whose content is verified to be causal / sliding-window (with
    sinks); GQA head repetition (`repeat_kv`: expand + broadcast +
    collapse, query head h reading KV head h / r); and the decode step's
    concatenation of past K/V function arguments with new K/V
    (tensor.concat or tensor.insert_slice into an empty tensor).

    Output contract: the past_k/past_v arguments of the function become one
    `!kv.cache` argument (at past_k's position) with a `kv.layer` i64
    argument attribute (layers numbered in program order across the
    module); the new keys/values are written with
    `kv.append %cache[%positions]` (constant positions = past length) and
    attention becomes `kv.attention %q, %cache, %seq_lens {scale, causal?,
    window?, sinks?}` (constant seq_lens = past + new); uses of the
    concatenated K/V (e.g. function results) read `kv.view` of the cache,
    sliced to the used length when `capacity` is larger. The projections
    producing q, new k and new v are kept as they are.

    MLA: a latent row (`hidden · W_dkv`, optionally concatenated with the
    RoPE key `hidden · W_kr`) concatenated with a past latent argument and
    read by up-projections becomes a `!kv.latent_cache` argument, the row is
    made with `kv.mla_project` (when both projections are plain matmuls of
    the same hidden states) and appended with kv.append, and the
    up-projections read `kv.view` of the latent cache. The MLA attention
    itself stays in linalg for kv-absorb-mla.

    Attention that cannot be proven equivalent is left untouched; with
    `emit-remarks` a remark `kv-raise-attention: not raised: <reason>` is
    attached to the P·V contraction (or the concatenation) saying why.
    Functions called from within the module are not changed.
  }];
  let options = [
    Option<"capacity", "capacity", "int64_t", /*default=*/"0",
           "tokens per sequence of the created caches (0 = past + new "
           "tokens of each layer)">,
    Option<"emitRemarks", "emit-remarks", "bool", /*default=*/"false",
           "emit a remark on attention (or MLA concatenation) left alone">
  ];
  let dependentDialects = ["::kvopt::kv::KVDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def KVAbsorbMLA : Pass<"kv-absorb-mla", "::mlir::ModuleOp"> {
  let summary = "absorb MLA up-projections so attention runs on the latent cache";
  let description = [{
    Rewrites the naive MLA attention left by kv-raise-attention — attention
    in linalg whose keys are `[c · W_uk, broadcast(k_rope)]` and values
    `c · W_uv`, with `c` and `k_rope` slices of a `kv.view` of a
    `!kv.latent_cache`, and queries `[q_nope, q_rope]` — into
    `kv.mla_attention` over the latent cache: the query is absorbed per head
    (`q_latent = q_nope · W_ukᵀ`, emitted as a linalg.generic), attention
    runs on the latent rows, and the result is projected per head with
    `W_uv` (linalg.generic). The up-projections are written as
    `linalg.matmul(collapse(c) [B*T, L], W [L, H*d])`, `tensor.expand_shape`
    to `[B, T, H, d]` and `linalg.transpose` to `[B, H, T, d]`. Scale and
    causal mask carry over from the matched attention; windows are not
    supported by kv.mla_attention and such attention is left alone.
  }];
  let options = [
    Option<"emitRemarks", "emit-remarks", "bool", /*default=*/"false",
           "emit a remark on MLA-like attention left alone">
  ];
  let dependentDialects = ["::kvopt::kv::KVDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def KVRaiseRope : Pass<"kv-raise-rope", "::mlir::ModuleOp"> {
  let summary = "raise rotary embeddings of raised queries and keys to kv.rope";
  let description = [{
    Runs after kv-raise-attention. For every new-key tensor appended to a
    `!kv.cache` and every query of `kv.attention` that is computed in
    linalg/tensor/arith/math, proves element by element that it is the
    rotate-half (NeoX/Llama) rotation of one `[B, H, T, D]` tensor `x`:
    `x * cos + rotate_half(x) * sin` with `rotate_half(x) =
    concat(-x[..., D/2:], x[..., :D/2])` written as tensor.extract_slice,
    negation and tensor.concat or as a linalg.generic with index arithmetic
    (tensor.extract), and cos/sin given as constant tables or computed in
    the graph from constants and linalg.index. Every coefficient must equal
    cos/sin of `p * theta^(-2i/D)` (f32 rounding), where `p` is the token's
    position (the append's positions, or `seq_lens - Tq` for queries, plus
    the token index) and `i = d mod D/2`; theta is inferred from the
    coefficients (the nearest whole number when it fits). The rotation
    becomes `kv.rope %x, %positions {theta}`; kv-fuse-append then folds the
    keys' one into the append. Anything else is left alone, with a remark
    `kv-raise-rope: not raised: <reason>` under `emit-remarks`.
  }];
  let options = [
    Option<"maxElements", "max-elements", "int64_t", /*default=*/"1048576",
           "largest rotated tensor (elements) verified element by element; "
           "larger ones are left alone">,
    Option<"emitRemarks", "emit-remarks", "bool", /*default=*/"false",
           "emit a remark on rotation-like values left alone">
  ];
  let dependentDialects = ["::kvopt::kv::KVDialect",
                           "::mlir::arith::ArithDialect"];
}

#endif // KVOPT_TRANSFORMS_RAISEPASSES_TD
