/*===- kvopt_runtime.h - C API of the kvopt runtime ----------------*- C
-*-===*\
|*                                                                            *|
|* A C interface to the cache pool, block tables, launch backends and kernel  *|
|* bundles, for engines written in any language. Handles are opaque; every   *|
|* function returns a kvopt_status and never lets a C++ exception escape.     *|
|* The message of the last error on the calling thread is available from     *|
|* kvopt_last_error(). Thread model: as the C++ API (docs/Runtime.md).        *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef KVOPT_RUNTIME_KVOPT_RUNTIME_H
#define KVOPT_RUNTIME_KVOPT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes; the values equal kvopt::rt::StatusCode. */
typedef enum kvopt_status {
  KVOPT_OK = 0,
  KVOPT_ERR_INVALID_ARGUMENT = 1,
  KVOPT_ERR_OUT_OF_PAGES = 2,
  KVOPT_ERR_UNKNOWN_SEQUENCE = 3,
  KVOPT_ERR_FREED_SEQUENCE = 4,
  KVOPT_ERR_ABI_MISMATCH = 5,
  KVOPT_ERR_LAYOUT_MISMATCH = 6,
  KVOPT_ERR_NO_DEVICE = 7,
  KVOPT_ERR_DRIVER = 8,
  KVOPT_ERR_IO = 9,
  KVOPT_ERR_PARSE = 10,
  KVOPT_ERR_NOT_FOUND = 11,
  KVOPT_ERR_OUT_OF_MEMORY = 12,
  KVOPT_ERR_INTERNAL = 13,
  KVOPT_STATUS_FORCE_INT32 = 0x7fffffff /**< keeps the enum 32-bit wide */
} kvopt_status;

/** Kernel ABI version this runtime implements (manifest "abi_version"). */
#define KVOPT_KERNEL_ABI_VERSION 1

typedef struct kvopt_pool kvopt_pool;       /**< a cache pool */
typedef struct kvopt_backend kvopt_backend; /**< a kernel launch backend */
typedef struct kvopt_bundle kvopt_bundle;   /**< a loaded kernel bundle */
typedef struct kvopt_graph kvopt_graph;     /**< a compiled graph's launches */
typedef void *kvopt_stream;                 /**< NULL: default stream */
typedef uint64_t kvopt_seq_id;

/** Where the pool's memory lives. */
typedef enum kvopt_memory_kind {
  KVOPT_MEMORY_HOST = 0,
  KVOPT_MEMORY_CUDA = 1,
  KVOPT_MEMORY_FORCE_INT32 = 0x7fffffff /**< any int may be passed safely */
} kvopt_memory_kind;

/** K or V component (latent caches only have K). */
typedef enum kvopt_component {
  KVOPT_COMPONENT_KEY = 0,
  KVOPT_COMPONENT_VALUE = 1,
  KVOPT_COMPONENT_FORCE_INT32 = 0x7fffffff /**< any int may be passed safely */
} kvopt_component;

typedef struct kvopt_pool_options {
  uint32_t num_pages;     /**< page slots (each holds one page per cache) */
  uint32_t max_sequences; /**< window slots; needed if recent/sinks > 0 */
  kvopt_memory_kind memory;
  int device; /**< CUDA device ordinal (KVOPT_MEMORY_CUDA) */
} kvopt_pool_options;

typedef struct kvopt_pool_stats {
  uint32_t total_pages;
  uint32_t free_pages;
  uint32_t used_pages;
  uint32_t live_sequences;
  uint64_t used_token_slots;
  uint64_t page_bytes; /**< one page slot, all caches */
  uint64_t bytes_capacity;
  uint64_t bytes_reserved;
  double bytes_in_use;
  double bytes_per_token; /**< model level, as docs/CacheLayout.md */
  uint64_t fixed_bytes_per_sequence;
} kvopt_pool_stats;

/** Addresses of one token's bytes (host pointers for host memory). */
typedef struct kvopt_slot {
  uint64_t data; /**< [data_bytes] packed row */
  uint64_t data_bytes;
  uint64_t scales; /**< [scale_bytes] scale row, 0 if full precision */
  uint64_t zeros;  /**< [scale_bytes] zero points, 0 if symmetric */
  uint64_t scale_bytes;
} kvopt_slot;

/** Message of the calling thread's last error ("" if none). */
const char *kvopt_last_error(void);
/** Stable name of a status code ("out_of_pages", ...). */
const char *kvopt_status_name(kvopt_status status);

/* Cache layouts ----------------------------------------------------------- */

/** Bytes per token (model level) and fixed bytes per sequence of a layout
 *  given as JSON (docs/CacheLayout.md field names). */
kvopt_status kvopt_layout_bytes_per_token(const char *layout_json,
                                          double *bytes_per_token,
                                          uint64_t *fixed_bytes_per_sequence);

/* Pool -------------------------------------------------------------------- */

kvopt_status kvopt_pool_create(const char *layout_json,
                               const kvopt_pool_options *options,
                               kvopt_pool **out);
void kvopt_pool_destroy(kvopt_pool *pool);
kvopt_status kvopt_pool_stats_get(const kvopt_pool *pool,
                                  kvopt_pool_stats *out);
/** Number of distinct caches, and the cache read by `layer`. */
uint32_t kvopt_pool_num_caches(const kvopt_pool *pool);
kvopt_status kvopt_pool_cache_of_layer(const kvopt_pool *pool, uint32_t layer,
                                       uint32_t *cache);
/** First byte of page `page` of cache `cache` (0 if out of range). */
uint64_t kvopt_pool_page_address(const kvopt_pool *pool, uint32_t cache,
                                 int32_t page);
/** Reference count of a page (0 = free). */
uint32_t kvopt_pool_page_refcount(const kvopt_pool *pool, int32_t page);

/* Sequences --------------------------------------------------------------- */

kvopt_status kvopt_seq_create(kvopt_pool *pool, kvopt_seq_id *out);
kvopt_status kvopt_seq_append(kvopt_pool *pool, kvopt_seq_id seq,
                              uint32_t count);
kvopt_status kvopt_seq_truncate(kvopt_pool *pool, kvopt_seq_id seq,
                                uint32_t length);
kvopt_status kvopt_seq_free(kvopt_pool *pool, kvopt_seq_id seq);
kvopt_status kvopt_seq_fork(kvopt_pool *pool, kvopt_seq_id parent,
                            kvopt_seq_id *child);
kvopt_status kvopt_seq_make_writable(kvopt_pool *pool, kvopt_seq_id seq,
                                     uint32_t first, uint32_t count);
kvopt_status kvopt_seq_length(const kvopt_pool *pool, kvopt_seq_id seq,
                              uint32_t *length);
kvopt_status kvopt_seq_slot(const kvopt_pool *pool, kvopt_seq_id seq,
                            uint32_t token, uint32_t cache,
                            kvopt_component component, kvopt_slot *out);
/** Full-precision window of a quantized component of `seq` in cache `cache`
 *  ([sinks + recent][row width] elements of the layout's element type):
 *  `address` receives its first byte (a host pointer for host memory) and
 *  `bytes` its size. KVOPT_ERR_INVALID_ARGUMENT if the component keeps no
 *  window. */
kvopt_status kvopt_seq_window(const kvopt_pool *pool, kvopt_seq_id seq,
                              uint32_t cache, kvopt_component component,
                              uint64_t *address, uint64_t *bytes);

/* Block tables ------------------------------------------------------------ */

/** One sequence's page ids into `pages` [capacity]; `count` receives the
 *  number of pages (pages may be NULL to query it). */
kvopt_status kvopt_seq_block_table(const kvopt_pool *pool, kvopt_seq_id seq,
                                   int32_t *pages, size_t capacity,
                                   size_t *count);
/** Block tables of a batch in CSR form: `page_ids` [capacity], `offsets`
 *  [num_seqs + 1], `seq_lens` [num_seqs]. `needed` receives the number of
 *  page ids; page_ids may be NULL to query it. */
kvopt_status kvopt_pool_block_tables(const kvopt_pool *pool,
                                     const kvopt_seq_id *seqs, size_t num_seqs,
                                     int32_t *page_ids, size_t capacity,
                                     int32_t *offsets, int32_t *seq_lens,
                                     size_t *needed);

/* Launch backends and kernel bundles -------------------------------------- */

/** Creates a registered launch backend ("cpu", "cuda", ...). */
kvopt_status kvopt_backend_create(const char *name, int device,
                                  kvopt_backend **out);
void kvopt_backend_destroy(kvopt_backend *backend);
kvopt_status kvopt_backend_stream_create(kvopt_backend *backend,
                                         kvopt_stream *out);
kvopt_status kvopt_backend_stream_destroy(kvopt_backend *backend,
                                          kvopt_stream stream);
kvopt_status kvopt_backend_synchronize(kvopt_backend *backend,
                                       kvopt_stream stream);

/** Loads a bundle, checking ABI version and cache layout against `pool`.
 *  The backend must outlive the bundle. */
kvopt_status kvopt_bundle_load(const char *manifest_path,
                               const kvopt_pool *pool, kvopt_backend *backend,
                               kvopt_bundle **out);
void kvopt_bundle_destroy(kvopt_bundle *bundle);
size_t kvopt_bundle_kernel_count(const kvopt_bundle *bundle);
/** Name of kernel `index`, or NULL if out of range. */
const char *kvopt_bundle_kernel_name(const kvopt_bundle *bundle, size_t index);
/** Launches kernel `name`; params[i] points at argument i's value. */
kvopt_status kvopt_bundle_launch(const kvopt_bundle *bundle, const char *name,
                                 void **params, kvopt_stream stream);

/* Compiled graphs (graph.<target>.json beside a bundle's manifest) -------- */

/** A dense device buffer: address and element count (bytes for a pool). */
typedef struct kvopt_graph_buffer {
  uint64_t address;
  uint64_t elements;
} kvopt_graph_buffer;

/** Loads `graph_path` and checks it against `bundle`, which must outlive
 *  the graph. */
kvopt_status kvopt_graph_load(const char *graph_path,
                              const kvopt_bundle *bundle, kvopt_graph **out);
void kvopt_graph_destroy(kvopt_graph *graph);
/** Runs function `name` of the graph: one buffer per function argument and
 *  result; split-KV workspace from `pool`'s memory backend; launches on
 *  `stream` of the bundle's backend and returns when the step is done. */
kvopt_status kvopt_graph_run(const kvopt_graph *graph, const char *name,
                             const kvopt_graph_buffer *args, size_t num_args,
                             const kvopt_graph_buffer *results,
                             size_t num_results, const kvopt_pool *pool,
                             kvopt_stream stream);

#ifdef __cplusplus
}
#endif

#endif /* KVOPT_RUNTIME_KVOPT_RUNTIME_H */
