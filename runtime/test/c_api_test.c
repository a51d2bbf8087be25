/*===- c_api_test.c - The runtime's C API, used from C -------------------===*\
|*                                                                          *|
|* Compiled as C99 and linked against the shared runtime library: creates a *|
|* pool from a JSON layout, runs every sequence operation and error path,   *|
|* exports block tables, queries full-precision windows, and loads and      *|
|* launches a CPU kernel bundle (and one with the wrong ABI).               *|
|* Usage: kvopt-rt-c-api-test <kernels.so> <dir>.                           *|
|* Exits non-zero on the first failed check.                                *|
|*                                                                          *|
\*===----------------------------------------------------------------------===*/

#include "kvopt/runtime/kvopt_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__,  \
              __LINE__, #cond, kvopt_last_error());                            \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

#define CHECK_STATUS(expr, want) CHECK((expr) == (want))

/* 2 KV heads x 4, f16, page 4, two layers sharing one cache. */
static const char *kLayout =
    "{\"kind\":\"kv\",\"kv_heads\":2,\"head_dim\":4,\"element\":\"f16\","
    "\"key\":null,\"value\":null,\"layout\":\"paged\",\"page_size\":4,"
    "\"num_layers\":2,\"layer_to_cache\":[0,0]}";

/* kLayout with int8 keys keeping 1 sink + 2 recent tokens in full precision:
 * a window of 3 rows x 8 elements x 2 bytes = 48 bytes per sequence. */
static const char *kWindowLayout =
    "{\"kind\":\"kv\",\"kv_heads\":2,\"head_dim\":4,\"element\":\"f16\","
    "\"key\":{\"kind\":\"int8\",\"axis\":\"token\",\"group\":0,"
    "\"symmetric\":true,\"scale\":\"f32\",\"recent\":2,\"sinks\":1},"
    "\"value\":null,\"layout\":\"paged\",\"page_size\":4,"
    "\"num_layers\":2,\"layer_to_cache\":[0,0]}";

static void writeManifest(const char *path, int abi, const char *binary) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
  fprintf(f,
          "{\"abi_version\": %d, \"target\": \"cpu\", \"format\": \"so\", "
          "\"binary\": \"%s\", \"cache_layout\": %s, \"kernels\": [{"
          "\"name\": \"axpy\", \"symbol\": \"kvopt_test_axpy\", \"args\": ["
          "{\"name\": \"y\", \"type\": \"ptr\"}, {\"name\": \"x\", \"type\": "
          "\"ptr\"}, {\"name\": \"a\", \"type\": \"f32\"}, {\"name\": \"n\", "
          "\"type\": \"i32\"}], \"launch\": {\"grid\": [1], \"block\": [1]}}]}",
          abi, binary, kLayout);
  fclose(f);
}

static void testPool(void) {
  kvopt_pool *pool = NULL;
  kvopt_pool_options options = {8, 0, KVOPT_MEMORY_HOST, 0};
  kvopt_pool_stats stats;
  kvopt_seq_id a = 0, b = 0, child = 0;
  kvopt_slot slot;
  int32_t pages[16], offsets[3], lens[2];
  size_t count = 0;
  uint32_t length = 0, cache = 9;
  double bpt = 0;
  uint64_t fixed = 1;

  CHECK_STATUS(kvopt_layout_bytes_per_token(kLayout, &bpt, &fixed), KVOPT_OK);
  CHECK(bpt == 32.0 && fixed == 0);
  CHECK_STATUS(kvopt_layout_bytes_per_token("{", &bpt, &fixed),
               KVOPT_ERR_PARSE);
  CHECK(strstr(kvopt_last_error(), "not valid JSON") != NULL);
  CHECK_STATUS(kvopt_pool_create(kLayout, NULL, &pool),
               KVOPT_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(kvopt_pool_create(kLayout, &options, &pool), KVOPT_OK);
  if (!pool)
    return;
  CHECK(kvopt_pool_num_caches(pool) == 1);
  CHECK_STATUS(kvopt_pool_cache_of_layer(pool, 1, &cache), KVOPT_OK);
  CHECK(cache == 0);
  CHECK_STATUS(kvopt_pool_cache_of_layer(pool, 2, &cache),
               KVOPT_ERR_INVALID_ARGUMENT);

  CHECK_STATUS(kvopt_seq_create(pool, &a), KVOPT_OK);
  CHECK_STATUS(kvopt_seq_create(pool, &b), KVOPT_OK);
  CHECK_STATUS(kvopt_seq_append(pool, a, 6), KVOPT_OK);
  CHECK_STATUS(kvopt_seq_append(pool, b, 3), KVOPT_OK);
  CHECK_STATUS(kvopt_seq_length(pool, a, &length), KVOPT_OK);
  CHECK(length == 6);

  /* Write token 5 of a, fork, append to the child (copy-on-write). */
  CHECK_STATUS(kvopt_seq_slot(pool, a, 5, 0, KVOPT_COMPONENT_VALUE, &slot),
               KVOPT_OK);
  CHECK(slot.data_bytes == 16 && slot.scales == 0);
  memset((void *)(uintptr_t)slot.data, 0x5A, (size_t)slot.data_bytes);
  CHECK_STATUS(kvopt_seq_fork(pool, a, &child), KVOPT_OK);
  CHECK_STATUS(kvopt_seq_append(pool, child, 1), KVOPT_OK);
  CHECK_STATUS(kvopt_seq_slot(pool, child, 5, 0, KVOPT_COMPONENT_VALUE, &slot),
               KVOPT_OK);
  CHECK(((unsigned char *)(uintptr_t)slot.data)[15] == 0x5A);
  CHECK_STATUS(kvopt_seq_make_writable(pool, child, 0, 4), KVOPT_OK);

  /* Block tables, single and batched (CSR). */
  CHECK_STATUS(kvopt_seq_block_table(pool, a, NULL, 0, &count), KVOPT_OK);
  CHECK(count == 2);
  CHECK_STATUS(kvopt_seq_block_table(pool, a, pages, 1, &count),
               KVOPT_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(kvopt_seq_block_table(pool, a, pages, 16, &count), KVOPT_OK);
  CHECK(kvopt_pool_page_refcount(pool, pages[0]) == 1);
  CHECK(kvopt_pool_page_address(pool, 0, pages[0]) != 0);
  {
    kvopt_seq_id batch[2] = {a, b};
    CHECK_STATUS(
        kvopt_pool_block_tables(pool, batch, 2, NULL, 0, NULL, NULL, &count),
        KVOPT_OK);
    CHECK(count == 3);
    CHECK_STATUS(kvopt_pool_block_tables(pool, batch, 2, pages, 16, offsets,
                                         lens, &count),
                 KVOPT_OK);
    CHECK(offsets[0] == 0 && offsets[1] == 2 && offsets[2] == 3);
    CHECK(lens[0] == 6 && lens[1] == 3);
  }

  CHECK_STATUS(kvopt_pool_stats_get(pool, &stats), KVOPT_OK);
  CHECK(stats.total_pages == 8 && stats.live_sequences == 3);
  /* a: 2 pages, b: 1, child: 2 private copies (append + make_writable). */
  CHECK(stats.used_pages == 5);
  CHECK(stats.bytes_per_token == 32.0);
  CHECK(stats.bytes_reserved == 5 * 128);
  CHECK(stats.used_token_slots == 6 + 3 + 7);

  /* Error paths. */
  CHECK_STATUS(kvopt_seq_append(pool, a, 100), KVOPT_ERR_OUT_OF_PAGES);
  CHECK(strstr(kvopt_last_error(), "more pages") != NULL);
  CHECK_STATUS(kvopt_seq_append(pool, 4242, 1), KVOPT_ERR_UNKNOWN_SEQUENCE);
  CHECK_STATUS(kvopt_seq_truncate(pool, a, 7), KVOPT_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(kvopt_seq_free(pool, b), KVOPT_OK);
  CHECK_STATUS(kvopt_seq_free(pool, b), KVOPT_ERR_FREED_SEQUENCE);
  CHECK(strstr(kvopt_last_error(), "already freed") != NULL);
  CHECK_STATUS(kvopt_seq_fork(pool, b, &child), KVOPT_ERR_FREED_SEQUENCE);
  CHECK_STATUS(kvopt_seq_slot(pool, a, 0, 0, (kvopt_component)7, &slot),
               KVOPT_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(kvopt_seq_create(NULL, &a), KVOPT_ERR_INVALID_ARGUMENT);
  CHECK(strcmp(kvopt_status_name(KVOPT_ERR_OUT_OF_PAGES), "out_of_pages") == 0);

  CHECK_STATUS(kvopt_seq_truncate(pool, a, 0), KVOPT_OK);
  CHECK_STATUS(kvopt_seq_free(pool, a), KVOPT_OK);
  CHECK_STATUS(kvopt_seq_free(pool, child), KVOPT_OK);
  CHECK_STATUS(kvopt_pool_stats_get(pool, &stats), KVOPT_OK);
  CHECK(stats.free_pages == 8 && stats.bytes_reserved == 0);
  CHECK(kvopt_last_error()[0] == '\0');
  kvopt_pool_destroy(pool);

  /* GPU memory works where a driver exists and fails cleanly elsewhere. */
  options.memory = KVOPT_MEMORY_CUDA;
  pool = NULL;
  {
    kvopt_status s = kvopt_pool_create(kLayout, &options, &pool);
    CHECK(s == KVOPT_OK || s == KVOPT_ERR_NO_DEVICE);
    if (s == KVOPT_ERR_NO_DEVICE)
      printf("cuda pool: no device (%s)\n", kvopt_last_error());
    kvopt_pool_destroy(pool);
  }
}

static void testWindow(void) {
  kvopt_pool *pool = NULL;
  kvopt_pool_options options = {8, 2, KVOPT_MEMORY_HOST, 0};
  kvopt_pool_stats stats;
  kvopt_seq_id a = 0, child = 0;
  uint64_t address = 0, childAddress = 0, bytes = 0;

  CHECK_STATUS(kvopt_pool_create(kWindowLayout, &options, &pool), KVOPT_OK);
  if (!pool)
    return;
  CHECK_STATUS(kvopt_pool_stats_get(pool, &stats), KVOPT_OK);
  CHECK(stats.fixed_bytes_per_sequence == 48);
  CHECK_STATUS(kvopt_seq_create(pool, &a), KVOPT_OK);
  CHECK_STATUS(
      kvopt_seq_window(pool, a, 0, KVOPT_COMPONENT_KEY, &address, &bytes),
      KVOPT_OK);
  CHECK(address != 0 && bytes == 48);
  if (address)
    memset((void *)(uintptr_t)address, 0x3C, (size_t)bytes);

  /* A fork gets its own copy of the window. */
  CHECK_STATUS(kvopt_seq_fork(pool, a, &child), KVOPT_OK);
  CHECK_STATUS(kvopt_seq_window(pool, child, 0, KVOPT_COMPONENT_KEY,
                                &childAddress, &bytes),
               KVOPT_OK);
  CHECK(childAddress != 0 && childAddress != address && bytes == 48);
  if (address && childAddress)
    CHECK(memcmp((void *)(uintptr_t)address, (void *)(uintptr_t)childAddress,
                 48) == 0);

  /* Error paths leave the out-parameters alone. */
  address = 1;
  bytes = 2;
  CHECK_STATUS(
      kvopt_seq_window(pool, 4242, 0, KVOPT_COMPONENT_KEY, &address, &bytes),
      KVOPT_ERR_UNKNOWN_SEQUENCE);
  CHECK(strstr(kvopt_last_error(), "unknown sequence id 4242") != NULL);
  CHECK(address == 1 && bytes == 2);
  CHECK_STATUS(
      kvopt_seq_window(pool, a, 0, KVOPT_COMPONENT_VALUE, &address, &bytes),
      KVOPT_ERR_INVALID_ARGUMENT);
  CHECK(strstr(kvopt_last_error(), "no full-precision window") != NULL);
  CHECK_STATUS(
      kvopt_seq_window(pool, a, 1, KVOPT_COMPONENT_KEY, &address, &bytes),
      KVOPT_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(
      kvopt_seq_window(pool, a, 0, (kvopt_component)7, &address, &bytes),
      KVOPT_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(kvopt_seq_window(pool, a, 0, KVOPT_COMPONENT_KEY, NULL, &bytes),
               KVOPT_ERR_INVALID_ARGUMENT);
  CHECK(address == 1 && bytes == 2);
  CHECK_STATUS(kvopt_seq_free(pool, child), KVOPT_OK);
  CHECK_STATUS(
      kvopt_seq_window(pool, child, 0, KVOPT_COMPONENT_KEY, &address, &bytes),
      KVOPT_ERR_FREED_SEQUENCE);
  CHECK_STATUS(kvopt_seq_free(pool, a), KVOPT_OK);
  CHECK_STATUS(kvopt_pool_stats_get(pool, &stats), KVOPT_OK);
  CHECK(stats.bytes_reserved == 0 && stats.live_sequences == 0);
  kvopt_pool_destroy(pool);

  /* A layout without windows has none to give. */
  options.max_sequences = 0;
  pool = NULL;
  CHECK_STATUS(kvopt_pool_create(kLayout, &options, &pool), KVOPT_OK);
  if (!pool)
    return;
  CHECK_STATUS(kvopt_seq_create(pool, &a), KVOPT_OK);
  CHECK_STATUS(
      kvopt_seq_window(pool, a, 0, KVOPT_COMPONENT_KEY, &address, &bytes),
      KVOPT_ERR_INVALID_ARGUMENT);
  kvopt_pool_destroy(pool);
}

static void testBundle(const char *kernels, const char *dir) {
  kvopt_pool *pool = NULL;
  kvopt_pool_options options = {4, 0, KVOPT_MEMORY_HOST, 0};
  kvopt_backend *backend = NULL;
  kvopt_bundle *bundle = NULL;
  char path[4096];
  float y[3] = {1, 1, 1}, x[3] = {1, 2, 3}, a = 0.5f;
  float *yp = y, *xp = x;
  int32_t n = 3;
  void *params[4];

  CHECK_STATUS(kvopt_pool_create(kLayout, &options, &pool), KVOPT_OK);
  CHECK_STATUS(kvopt_backend_create("nope", 0, &backend), KVOPT_ERR_NOT_FOUND);
  CHECK_STATUS(kvopt_backend_create("cpu", 0, &backend), KVOPT_OK);
  if (!pool || !backend)
    return;

  snprintf(path, sizeof path, "%s/c_api_wrong_abi.json", dir);
  writeManifest(path, KVOPT_KERNEL_ABI_VERSION + 1, kernels);
  CHECK_STATUS(kvopt_bundle_load(path, pool, backend, &bundle),
               KVOPT_ERR_ABI_MISMATCH);
  CHECK(strstr(kvopt_last_error(), "ABI version 2") != NULL);
  CHECK(bundle == NULL);

  snprintf(path, sizeof path, "%s/c_api_manifest.json", dir);
  writeManifest(path, KVOPT_KERNEL_ABI_VERSION, kernels);
  CHECK_STATUS(kvopt_bundle_load(path, pool, backend, &bundle), KVOPT_OK);
  if (!bundle)
    return;
  CHECK(kvopt_bundle_kernel_count(bundle) == 1);
  CHECK(strcmp(kvopt_bundle_kernel_name(bundle, 0), "axpy") == 0);
  CHECK(kvopt_bundle_kernel_name(bundle, 1) == NULL);
  params[0] = &yp;
  params[1] = &xp;
  params[2] = &a;
  params[3] = &n;
  CHECK_STATUS(kvopt_bundle_launch(bundle, "axpy", params, NULL), KVOPT_OK);
  CHECK(y[0] == 1.5f && y[1] == 2.0f && y[2] == 2.5f);
  CHECK_STATUS(kvopt_bundle_launch(bundle, "nope", params, NULL),
               KVOPT_ERR_NOT_FOUND);
  CHECK_STATUS(kvopt_backend_synchronize(backend, NULL), KVOPT_OK);

  /* Graphs: a missing file, a step whose kernel arguments have no binding,
   * and an empty graph whose functions are unknown. */
  kvopt_graph *graph = NULL;
  snprintf(path, sizeof path, "%s/c_api_no_graph.json", dir);
  CHECK_STATUS(kvopt_graph_load(path, bundle, &graph), KVOPT_ERR_NOT_FOUND);
  CHECK(graph == NULL);
  CHECK_STATUS(kvopt_graph_load(NULL, bundle, &graph),
               KVOPT_ERR_INVALID_ARGUMENT);
  snprintf(path, sizeof path, "%s/c_api_graph_bad.json", dir);
  {
    FILE *f = fopen(path, "w");
    if (f) {
      fprintf(f,
              "{\"abi_version\": %d, \"functions\": [{\"name\": \"f\", "
              "\"args\": 5, \"results\": 0, \"steps\": [{\"op\": "
              "\"append\", \"kernel\": \"axpy\", \"page_bytes\": 16, "
              "\"window_bytes\": 0, \"tokens\": 1, \"kv_heads\": 1, "
              "\"head_dim\": 1, \"operands\": "
              "{\"pool\": 0, \"positions\": 1, \"keys\": 2, "
              "\"values\": 3, \"block_table\": 4}}]}]}",
              KVOPT_KERNEL_ABI_VERSION);
      fclose(f);
    }
  }
  CHECK_STATUS(kvopt_graph_load(path, bundle, &graph), KVOPT_ERR_NOT_FOUND);
  CHECK(strstr(kvopt_last_error(), "argument y of kernel axpy") != NULL);
  CHECK(graph == NULL);
  snprintf(path, sizeof path, "%s/c_api_graph_empty.json", dir);
  {
    FILE *f = fopen(path, "w");
    if (f) {
      fprintf(f, "{\"abi_version\": %d, \"functions\": []}",
              KVOPT_KERNEL_ABI_VERSION);
      fclose(f);
    }
  }
  CHECK_STATUS(kvopt_graph_load(path, bundle, &graph), KVOPT_OK);
  if (graph) {
    CHECK_STATUS(kvopt_graph_run(graph, "f", NULL, 0, NULL, 0, pool, NULL),
                 KVOPT_ERR_NOT_FOUND);
    CHECK(strstr(kvopt_last_error(), "no function f") != NULL);
    CHECK_STATUS(kvopt_graph_run(graph, "f", NULL, 1, NULL, 0, pool, NULL),
                 KVOPT_ERR_INVALID_ARGUMENT);
    kvopt_graph_destroy(graph);
  }
  kvopt_bundle_destroy(bundle);
  kvopt_backend_destroy(backend);
  kvopt_pool_destroy(pool);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <test kernels .so> <scratch dir>\n", argv[0]);
    return 2;
  }
  testPool();
  testWindow();
  testBundle(argv[1], argv[2]);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("c api test: all checks passed\n");
  return 0;
}
