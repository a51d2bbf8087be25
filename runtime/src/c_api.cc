//===- c_api.cc - C API of the kvopt runtime ------------------------------===//
//
// Thin wrappers over the C++ API. Every entry point runs inside guard(),
// which turns a Status into a kvopt_status plus a thread-local message and
// catches every exception so none crosses the C boundary.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/kvopt_runtime.h"

#include "kvopt/runtime/bundle.h"
#include "kvopt/runtime/cache_pool.h"
#include "kvopt/runtime/graph.h"

#include <new>
#include <string>

using namespace kvopt::rt;

struct kvopt_pool {
  std::unique_ptr<CachePool> pool;
};
struct kvopt_backend {
  std::unique_ptr<LaunchBackend> backend;
};
struct kvopt_bundle {
  std::unique_ptr<KernelBundle> bundle;
};
struct kvopt_graph {
  std::unique_ptr<Graph> graph;
};

static thread_local std::string lastError;

static kvopt_status record(const Status &s) {
  lastError = s.isOk() ? std::string() : s.message();
  return static_cast<kvopt_status>(s.code());
}

/// Runs `body` (returning Status), mapping exceptions to error statuses.
template <typename Body> static kvopt_status guard(Body &&body) {
  try {
    return record(body());
  } catch (const std::bad_alloc &) {
    return record(Status::error(StatusCode::OutOfMemory,
                                "host memory exhausted (std::bad_alloc)"));
  } catch (const std::exception &e) {
    return record(Status::error(StatusCode::Internal, e.what()));
  } catch (...) {
    return record(Status::error(StatusCode::Internal, "unknown exception"));
  }
}

static Status nullArgument(const char *what) {
  return Status::error(StatusCode::InvalidArgument,
                       std::string("null argument: ") + what);
}

#define KVOPT_C_REQUIRE(ptr)                                                   \
  do {                                                                         \
    if (!(ptr))                                                                \
      return nullArgument(#ptr);                                               \
  } while (false)

extern "C" {

const char *kvopt_last_error(void) { return lastError.c_str(); }

const char *kvopt_status_name(kvopt_status status) {
  return statusCodeName(static_cast<StatusCode>(status));
}

kvopt_status kvopt_layout_bytes_per_token(const char *layout_json,
                                          double *bytes_per_token,
                                          uint64_t *fixed_bytes) {
  return guard([&] {
    KVOPT_C_REQUIRE(layout_json);
    CacheLayout layout;
    KVOPT_RT_RETURN_IF_ERROR(CacheLayout::fromJson(layout_json, layout));
    if (bytes_per_token)
      *bytes_per_token = layout.bytesPerToken();
    if (fixed_bytes)
      *fixed_bytes = layout.fixedBytesPerSequence();
    return Status::ok();
  });
}

kvopt_status kvopt_pool_create(const char *layout_json,
                               const kvopt_pool_options *options,
                               kvopt_pool **out) {
  return guard([&] {
    KVOPT_C_REQUIRE(layout_json);
    KVOPT_C_REQUIRE(options);
    KVOPT_C_REQUIRE(out);
    CacheLayout layout;
    KVOPT_RT_RETURN_IF_ERROR(CacheLayout::fromJson(layout_json, layout));
    std::unique_ptr<MemoryBackend> memory;
    if (options->memory == KVOPT_MEMORY_HOST)
      memory = createHostMemory();
    else if (options->memory == KVOPT_MEMORY_CUDA)
      KVOPT_RT_RETURN_IF_ERROR(createCudaMemory(options->device, memory));
    else
      return Status::error(StatusCode::InvalidArgument, "unknown memory kind");
    PoolOptions po;
    po.numPages = options->num_pages;
    po.maxSequences = options->max_sequences;
    auto handle = std::make_unique<kvopt_pool>();
    KVOPT_RT_RETURN_IF_ERROR(
        CachePool::create(layout, po, std::move(memory), handle->pool));
    *out = handle.release();
    return Status::ok();
  });
}

void kvopt_pool_destroy(kvopt_pool *pool) { delete pool; }

kvopt_status kvopt_pool_stats_get(const kvopt_pool *pool,
                                  kvopt_pool_stats *out) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    KVOPT_C_REQUIRE(out);
    PoolStats s = pool->pool->stats();
    out->total_pages = s.totalPages;
    out->free_pages = s.freePages;
    out->used_pages = s.usedPages;
    out->live_sequences = s.liveSequences;
    out->used_token_slots = s.usedTokenSlots;
    out->page_bytes = s.pageBytes;
    out->bytes_capacity = s.bytesCapacity;
    out->bytes_reserved = s.bytesReserved;
    out->bytes_in_use = s.bytesInUse;
    out->bytes_per_token = s.bytesPerToken;
    out->fixed_bytes_per_sequence = s.fixedBytesPerSequence;
    return Status::ok();
  });
}

uint32_t kvopt_pool_num_caches(const kvopt_pool *pool) {
  return pool ? pool->pool->numCaches() : 0;
}

kvopt_status kvopt_pool_cache_of_layer(const kvopt_pool *pool, uint32_t layer,
                                       uint32_t *cache) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    KVOPT_C_REQUIRE(cache);
    const CacheLayout &l = pool->pool->layout();
    if (layer >= l.numLayers)
      return Status::error(StatusCode::InvalidArgument,
                           "layer " + std::to_string(layer) +
                               " does not exist (" +
                               std::to_string(l.numLayers) + " layers)");
    *cache = l.layerToCache[layer];
    return Status::ok();
  });
}

uint64_t kvopt_pool_page_address(const kvopt_pool *pool, uint32_t cache,
                                 int32_t page) {
  return pool ? pool->pool->pageAddress(cache, page) : 0;
}

uint32_t kvopt_pool_page_refcount(const kvopt_pool *pool, int32_t page) {
  return pool ? pool->pool->refCount(page) : 0;
}

kvopt_status kvopt_seq_create(kvopt_pool *pool, kvopt_seq_id *out) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    KVOPT_C_REQUIRE(out);
    return pool->pool->createSequence(*out);
  });
}

kvopt_status kvopt_seq_append(kvopt_pool *pool, kvopt_seq_id seq,
                              uint32_t count) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    return pool->pool->appendTokens(seq, count);
  });
}

kvopt_status kvopt_seq_truncate(kvopt_pool *pool, kvopt_seq_id seq,
                                uint32_t length) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    return pool->pool->truncate(seq, length);
  });
}

kvopt_status kvopt_seq_free(kvopt_pool *pool, kvopt_seq_id seq) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    return pool->pool->freeSequence(seq);
  });
}

kvopt_status kvopt_seq_fork(kvopt_pool *pool, kvopt_seq_id parent,
                            kvopt_seq_id *child) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    KVOPT_C_REQUIRE(child);
    return pool->pool->fork(parent, *child);
  });
}

kvopt_status kvopt_seq_make_writable(kvopt_pool *pool, kvopt_seq_id seq,
                                     uint32_t first, uint32_t count) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    return pool->pool->makeWritable(seq, first, count);
  });
}

kvopt_status kvopt_seq_length(const kvopt_pool *pool, kvopt_seq_id seq,
                              uint32_t *length) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    KVOPT_C_REQUIRE(length);
    return pool->pool->length(seq, *length);
  });
}

kvopt_status kvopt_seq_slot(const kvopt_pool *pool, kvopt_seq_id seq,
                            uint32_t token, uint32_t cache,
                            kvopt_component component, kvopt_slot *out) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    KVOPT_C_REQUIRE(out);
    if (component != KVOPT_COMPONENT_KEY && component != KVOPT_COMPONENT_VALUE)
      return Status::error(StatusCode::InvalidArgument, "unknown component");
    SlotAddress slot;
    KVOPT_RT_RETURN_IF_ERROR(pool->pool->slotAddress(
        seq, token, cache, static_cast<Component>(component), slot));
    out->data = slot.data;
    out->data_bytes = slot.dataBytes;
    out->scales = slot.scales;
    out->zeros = slot.zeros;
    out->scale_bytes = slot.scaleBytes;
    return Status::ok();
  });
}

kvopt_status kvopt_seq_window(const kvopt_pool *pool, kvopt_seq_id seq,
                              uint32_t cache, kvopt_component component,
                              uint64_t *address, uint64_t *bytes) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    KVOPT_C_REQUIRE(address);
    KVOPT_C_REQUIRE(bytes);
    if (component != KVOPT_COMPONENT_KEY && component != KVOPT_COMPONENT_VALUE)
      return Status::error(StatusCode::InvalidArgument, "unknown component");
    DeviceAddress window = 0;
    uint64_t size = 0;
    KVOPT_RT_RETURN_IF_ERROR(pool->pool->windowAddress(
        seq, cache, static_cast<Component>(component), window, size));
    *address = window;
    *bytes = size;
    return Status::ok();
  });
}

kvopt_status kvopt_seq_block_table(const kvopt_pool *pool, kvopt_seq_id seq,
                                   int32_t *pages, size_t capacity,
                                   size_t *count) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    KVOPT_C_REQUIRE(count);
    std::vector<int32_t> table;
    KVOPT_RT_RETURN_IF_ERROR(pool->pool->blockTable(seq, table));
    *count = table.size();
    if (!pages)
      return Status::ok();
    if (capacity < table.size())
      return Status::error(StatusCode::InvalidArgument,
                           "block table: need room for " +
                               std::to_string(table.size()) +
                               " page ids, have " + std::to_string(capacity));
    std::copy(table.begin(), table.end(), pages);
    return Status::ok();
  });
}

kvopt_status kvopt_pool_block_tables(const kvopt_pool *pool,
                                     const kvopt_seq_id *seqs, size_t num_seqs,
                                     int32_t *page_ids, size_t capacity,
                                     int32_t *offsets, int32_t *seq_lens,
                                     size_t *needed) {
  return guard([&] {
    KVOPT_C_REQUIRE(pool);
    KVOPT_C_REQUIRE(needed);
    return pool->pool->writeBlockTables(seqs, num_seqs, page_ids, capacity,
                                        offsets, seq_lens, *needed);
  });
}

kvopt_status kvopt_backend_create(const char *name, int device,
                                  kvopt_backend **out) {
  return guard([&] {
    KVOPT_C_REQUIRE(name);
    KVOPT_C_REQUIRE(out);
    auto handle = std::make_unique<kvopt_backend>();
    KVOPT_RT_RETURN_IF_ERROR(
        createLaunchBackend(name, device, handle->backend));
    *out = handle.release();
    return Status::ok();
  });
}

void kvopt_backend_destroy(kvopt_backend *backend) { delete backend; }

kvopt_status kvopt_backend_stream_create(kvopt_backend *backend,
                                         kvopt_stream *out) {
  return guard([&] {
    KVOPT_C_REQUIRE(backend);
    KVOPT_C_REQUIRE(out);
    return backend->backend->createStream(*out);
  });
}

kvopt_status kvopt_backend_stream_destroy(kvopt_backend *backend,
                                          kvopt_stream stream) {
  return guard([&] {
    KVOPT_C_REQUIRE(backend);
    return backend->backend->destroyStream(stream);
  });
}

kvopt_status kvopt_backend_synchronize(kvopt_backend *backend,
                                       kvopt_stream stream) {
  return guard([&] {
    KVOPT_C_REQUIRE(backend);
    return backend->backend->synchronize(stream);
  });
}

kvopt_status kvopt_bundle_load(const char *manifest_path,
                               const kvopt_pool *pool, kvopt_backend *backend,
                               kvopt_bundle **out) {
  return guard([&] {
    KVOPT_C_REQUIRE(manifest_path);
    KVOPT_C_REQUIRE(pool);
    KVOPT_C_REQUIRE(backend);
    KVOPT_C_REQUIRE(out);
    auto handle = std::make_unique<kvopt_bundle>();
    KVOPT_RT_RETURN_IF_ERROR(
        KernelBundle::load(manifest_path, pool->pool->layout(),
                           *backend->backend, handle->bundle));
    *out = handle.release();
    return Status::ok();
  });
}

void kvopt_bundle_destroy(kvopt_bundle *bundle) { delete bundle; }

size_t kvopt_bundle_kernel_count(const kvopt_bundle *bundle) {
  return bundle ? bundle->bundle->manifest().kernels.size() : 0;
}

const char *kvopt_bundle_kernel_name(const kvopt_bundle *bundle, size_t index) {
  if (!bundle || index >= bundle->bundle->manifest().kernels.size())
    return nullptr;
  return bundle->bundle->manifest().kernels[index].name.c_str();
}

kvopt_status kvopt_bundle_launch(const kvopt_bundle *bundle, const char *name,
                                 void **params, kvopt_stream stream) {
  return guard([&] {
    KVOPT_C_REQUIRE(bundle);
    KVOPT_C_REQUIRE(name);
    return bundle->bundle->launch(name, params, stream);
  });
}

kvopt_status kvopt_graph_load(const char *graph_path,
                              const kvopt_bundle *bundle, kvopt_graph **out) {
  return guard([&] {
    KVOPT_C_REQUIRE(graph_path);
    KVOPT_C_REQUIRE(bundle);
    KVOPT_C_REQUIRE(out);
    *out = nullptr;
    std::unique_ptr<Graph> g;
    KVOPT_RT_RETURN_IF_ERROR(Graph::load(graph_path, *bundle->bundle, g));
    *out = new kvopt_graph{std::move(g)};
    return Status::ok();
  });
}

void kvopt_graph_destroy(kvopt_graph *graph) { delete graph; }

kvopt_status kvopt_graph_run(const kvopt_graph *graph, const char *name,
                             const kvopt_graph_buffer *args, size_t num_args,
                             const kvopt_graph_buffer *results,
                             size_t num_results, const kvopt_pool *pool,
                             kvopt_stream stream) {
  return guard([&] {
    KVOPT_C_REQUIRE(graph);
    KVOPT_C_REQUIRE(name);
    KVOPT_C_REQUIRE(pool);
    if (num_args)
      KVOPT_C_REQUIRE(args);
    if (num_results)
      KVOPT_C_REQUIRE(results);
    std::vector<GraphBuffer> a(num_args), r(num_results);
    for (size_t i = 0; i < num_args; ++i)
      a[i] = {args[i].address, args[i].elements};
    for (size_t i = 0; i < num_results; ++i)
      r[i] = {results[i].address, results[i].elements};
    return graph->graph->run(name, a, r, pool->pool->memory(), stream);
  });
}

} // extern "C"
