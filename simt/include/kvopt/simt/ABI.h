//===- ABI.h - Contract between kv-simt-emulate and the SIMT runtime -*- C
//-*-===//
//
// The one description of what the kv-simt-emulate pass emits and what the
// SIMT runtime expects: the kernel descriptor layout, the enum values passed
// to runtime calls, and the runtime symbol names. Plain C so that both the
// MLIR pass (which builds LLVM-dialect globals with this exact layout) and
// host code can include it.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_SIMT_ABI_H
#define KVOPT_SIMT_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Bumped whenever the layout of kvopt_simt_kernel changes; the pass stores
/// it in every descriptor and the runtime refuses other versions.
#define KVOPT_SIMT_ABI_VERSION 1u

/// Size recorded for a dynamic shared-memory variable: its real size is the
/// launch's dynamic shared-memory byte count.
#define KVOPT_SIMT_DYNAMIC_SIZE UINT64_MAX

/// Suffixes of the symbols emitted per kernel `K`: `K_emu_packed` (the
/// `void (void **params)` entry) and `K_emu_desc` (a kvopt_simt_kernel).
#define KVOPT_SIMT_PACKED_SUFFIX "_emu_packed"
#define KVOPT_SIMT_DESC_SUFFIX "_emu_desc"

/// One shared-memory variable inside the per-block shared segment.
/// LLVM layout: !llvm.struct<(ptr, i64, i64)>.
typedef struct kvopt_simt_shared_var {
  const char *name; // symbol name of the addr_space 3 global
  uint64_t offset;  // byte offset inside the segment
  uint64_t size;    // bytes, or KVOPT_SIMT_DYNAMIC_SIZE
} kvopt_simt_shared_var;

/// Everything the runtime needs to launch one emulated kernel.
/// LLVM layout: !llvm.struct<(i32, i32, ptr, ptr, ptr, i64, i64, ptr, i64,
///                            array<3 x i32>, array<3 x i32>)>.
typedef struct kvopt_simt_kernel {
  uint32_t abi_version; // KVOPT_SIMT_ABI_VERSION
  uint32_t num_params;  // slots in the void **params array
  const char *name;     // kernel symbol name
  void (*packed)(void **params);
  const kvopt_simt_shared_var *shared_vars; // [num_shared_vars]
  uint64_t num_shared_vars;
  uint64_t static_shared_bytes; // segment bytes before the dynamic part
  const char *const *sites;     // [num_sites] "op at file:line:col"
  uint64_t num_sites;
  int32_t known_block[3]; // gpu.known_block_size, 0 where unknown
  int32_t known_grid[3];  // gpu.known_grid_size, 0 where unknown
} kvopt_simt_kernel;

/// `mode` argument of __kv_simt_shfl; values equal NVVM::ShflKind.
enum kvopt_simt_shfl_mode {
  KVOPT_SIMT_SHFL_BFLY = 0,
  KVOPT_SIMT_SHFL_UP = 1,
  KVOPT_SIMT_SHFL_DOWN = 2,
  KVOPT_SIMT_SHFL_IDX = 3,
};

/// `kind` argument of __kv_simt_vote; values equal NVVM::VoteSyncKind.
enum kvopt_simt_vote_kind {
  KVOPT_SIMT_VOTE_ANY = 0,
  KVOPT_SIMT_VOTE_ALL = 1,
  KVOPT_SIMT_VOTE_BALLOT = 2,
  KVOPT_SIMT_VOTE_UNI = 3,
};

/// `kind` argument of __kv_simt_redux; values equal NVVM::ReduxKind.
enum kvopt_simt_redux_kind {
  KVOPT_SIMT_REDUX_ADD = 1,
  KVOPT_SIMT_REDUX_AND = 2,
  KVOPT_SIMT_REDUX_MAX = 3,
  KVOPT_SIMT_REDUX_MIN = 4,
  KVOPT_SIMT_REDUX_OR = 5,
  KVOPT_SIMT_REDUX_UMAX = 6,
  KVOPT_SIMT_REDUX_UMIN = 7,
  KVOPT_SIMT_REDUX_XOR = 8,
  KVOPT_SIMT_REDUX_FMIN = 9,
  KVOPT_SIMT_REDUX_FMAX = 10,
};

/// Bits of the `flags` argument of __kv_simt_redux (f32 forms only).
enum kvopt_simt_redux_flags {
  KVOPT_SIMT_REDUX_ABS = 1,
  KVOPT_SIMT_REDUX_NAN = 2,
};

/// `space` argument of __kv_simt_atomic.
enum kvopt_simt_space {
  KVOPT_SIMT_SPACE_GENERIC = 0,
  KVOPT_SIMT_SPACE_GLOBAL = 1,
  KVOPT_SIMT_SPACE_SHARED = 3,
};

//===----------------------------------------------------------------------===//
// Runtime entry points called by emulated kernels (names are the contract).
// `site` indexes kvopt_simt_kernel::sites; `var` indexes shared_vars or is
// -1 when the pass could not trace the pointer to one variable.
// Every memory hook returns the pointer the access must use: the argument
// itself, or a scratch sink when the access is out of bounds.
//===----------------------------------------------------------------------===//

/// Dynamic thread-operation counter, bumped by instrumented basic blocks.
extern uint64_t __kv_simt_ops;

uint32_t __kv_simt_sreg_tid_x(void);
uint32_t __kv_simt_sreg_tid_y(void);
uint32_t __kv_simt_sreg_tid_z(void);
uint32_t __kv_simt_sreg_ntid_x(void);
uint32_t __kv_simt_sreg_ntid_y(void);
uint32_t __kv_simt_sreg_ntid_z(void);
uint32_t __kv_simt_sreg_ctaid_x(void);
uint32_t __kv_simt_sreg_ctaid_y(void);
uint32_t __kv_simt_sreg_ctaid_z(void);
uint32_t __kv_simt_sreg_nctaid_x(void);
uint32_t __kv_simt_sreg_nctaid_y(void);
uint32_t __kv_simt_sreg_nctaid_z(void);
uint32_t __kv_simt_sreg_laneid(void);
uint32_t __kv_simt_sreg_warpsize(void);
uint32_t __kv_simt_sreg_warpid(void);
uint32_t __kv_simt_sreg_nwarpid(void);
uint32_t __kv_simt_sreg_lanemask_eq(void);
uint32_t __kv_simt_sreg_lanemask_le(void);
uint32_t __kv_simt_sreg_lanemask_lt(void);
uint32_t __kv_simt_sreg_lanemask_ge(void);
uint32_t __kv_simt_sreg_lanemask_gt(void);
uint32_t __kv_simt_sreg_dynamic_smem_size(void);
uint32_t __kv_simt_sreg_total_smem_size(void);
uint32_t __kv_simt_sreg_smid(void);
uint32_t __kv_simt_sreg_nsmid(void);
uint32_t __kv_simt_sreg_gridid(void);
uint32_t __kv_simt_sreg_clock(void);
uint64_t __kv_simt_sreg_clock64(void);
uint64_t __kv_simt_sreg_globaltimer(void);

void __kv_simt_barrier(int32_t site);
void __kv_simt_warp_sync(uint32_t mask, int32_t site);
/// Returns the value in bits 0..31 and the PTX `pval` predicate in bit 32.
uint64_t __kv_simt_shfl(uint32_t mode, uint32_t mask, uint32_t value,
                        uint32_t b, uint32_t c, int32_t site);
uint32_t __kv_simt_vote(uint32_t kind, uint32_t mask, uint32_t pred,
                        int32_t site);
uint32_t __kv_simt_redux(uint32_t kind, uint32_t flags, uint32_t mask,
                         uint32_t value, int32_t site);

/// `kind` argument of __kv_simt_mma: the nvvm.mma.sync shapes and
/// multiplicand types emulated (row-major A, column-major B, f32 C and D).
enum kvopt_simt_mma_kind {
  KVOPT_SIMT_MMA_M16N8K16_F16 = 0,
  KVOPT_SIMT_MMA_M16N8K16_BF16 = 1,
  KVOPT_SIMT_MMA_M16N8K8_F16 = 2,
  KVOPT_SIMT_MMA_M16N8K8_BF16 = 3,
};

/// nvvm.mma.sync, a warp collective of all 32 lanes: `frags` holds the
/// lane's A registers, then its B registers, then its 4 C values (f32 bits);
/// the lane's 4 D values are written to `d`.
void __kv_simt_mma(uint32_t kind, const uint32_t *frags, float *d,
                   int32_t site);

/// nvvm.rcp.approx.ftz.f.
float __kv_simt_rcp_approx_ftz_f32(float x);

void *__kv_simt_smem_base(void);
void *__kv_simt_ld_global(void *p, uint64_t bytes, int32_t site);
void *__kv_simt_st_global(void *p, uint64_t bytes, int32_t site);
void *__kv_simt_ld_shared(void *p, uint64_t bytes, int32_t site, int32_t var);
void *__kv_simt_st_shared(void *p, uint64_t bytes, int32_t site, int32_t var);
void *__kv_simt_ld_generic(void *p, uint64_t bytes, int32_t site);
void *__kv_simt_st_generic(void *p, uint64_t bytes, int32_t site);
void *__kv_simt_atomic(void *p, uint64_t bytes, int32_t site, uint32_t space,
                       int32_t var);

#ifdef __cplusplus
} // extern "C"
#endif

#endif // KVOPT_SIMT_ABI_H
