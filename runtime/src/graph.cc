//===- graph.cc - Run a compiled graph's kv launches through a bundle -----===//

#include "kvopt/runtime/graph.h"

#include "json_reader.h"
#include "kvopt/runtime/decode_plan.h"

#include <fstream>
#include <map>
#include <sstream>

namespace kvopt {
namespace rt {

using nlohmann::json;

namespace {

Status parseError(const std::string &message) {
  return Status::error(StatusCode::ParseError, message);
}
Status invalid(const std::string &message) {
  return Status::error(StatusCode::InvalidArgument, message);
}

/// Memref operands of each step kind, in the kernels' argument names.
const char *const kAppendOperands[] = {"pool", "positions", "keys", "values",
                                       "block_table"};
const char *const kAttentionOperands[] = {"q", "pool", "seq_lens",
                                          "block_table"};
const char *const kMlaOperands[] = {"q_latent", "q_rope", "pool", "seq_lens",
                                    "block_table"};

} // namespace

struct Graph::Step {
  enum Kind { Append, Attention, Prefill, Mla } kind = Append;
  /// append, prefill: kernel; attention: decode and merge.
  std::string kernel, decode, merge;
  std::map<std::string, uint32_t> operands; ///< memref name -> argument
  int64_t out = -1, lse = -1;               ///< result indices
  int64_t headDim = 0, kvHeads = 0, pageSize = 0, tileTokens = 0;
  /// Rows per sequence (query heads x query rows), the RoPE width (MLA),
  /// new tokens and KV heads (append).
  int64_t rowsPerSequence = 0, ropeDim = 0, tokens = 0, appendHeads = 0;
  /// The pool's page and per-sequence window bytes.
  int64_t pageBytes = 0, windowBytes = 0;
  DecodePlanLimits limits;
};

struct Graph::Function {
  std::string name;
  uint32_t args = 0, results = 0;
  std::vector<Step> steps;
};

Graph::~Graph() = default;

std::vector<std::string> Graph::functions() const {
  std::vector<std::string> names;
  for (const Function &f : functions_)
    names.push_back(f.name);
  return names;
}

namespace {

Status parseStep(const json &j, const std::string &where, uint32_t args,
                 uint32_t results, Graph::Step &out) {
  if (!j.is_object())
    return parseError(where + ": expected an object");
  detail::JsonObjectReader r(j, where);
  std::string op;
  r.getString("op", op, true);
  const json *operands = r.field("operands", true);
  auto integer = [&](const char *key, int64_t &v) {
    uint64_t u = 0;
    if (r.getUnsigned(key, u, true, UINT32_MAX))
      v = int64_t(u);
  };
  auto result = [&](const char *key, int64_t &v, bool required) {
    const json *x = r.field(key, required);
    if (!x)
      return;
    if (!x->is_number_integer() || x->get<int64_t>() < -1 ||
        x->get<int64_t>() >= int64_t(results))
      r.fail(key,
             "must be -1 or a result index below " + std::to_string(results));
    else
      v = x->get<int64_t>();
  };
  const char *const *names = kAppendOperands;
  size_t count = 5;
  integer("page_bytes", out.pageBytes);
  {
    uint64_t w = 0;
    if (r.getUnsigned("window_bytes", w, true, UINT32_MAX))
      out.windowBytes = int64_t(w);
  }
  // Decode and MLA: the kernels, the results and the split plan's inputs.
  auto splitDecode = [&]() {
    r.getString("decode", out.decode, true);
    r.getString("merge", out.merge, true);
    result("out", out.out, true);
    result("lse", out.lse, true);
    integer("rows_per_sequence", out.rowsPerSequence);
    integer("page_size", out.pageSize);
    integer("tile_tokens", out.tileTokens);
    integer("max_splits", out.limits.maxSplits);
    integer("sm_count", out.limits.smCount);
    integer("blocks_per_sm", out.limits.blocksPerSM);
    integer("min_chunk_tokens", out.limits.minChunkTokens);
  };
  if (op == "append") {
    out.kind = Graph::Step::Append;
    r.getString("kernel", out.kernel, true);
    integer("tokens", out.tokens);
    integer("kv_heads", out.appendHeads);
    integer("head_dim", out.headDim);
  } else if (op == "attention") {
    out.kind = Graph::Step::Attention;
    names = kAttentionOperands;
    count = 4;
    splitDecode();
    integer("head_dim", out.headDim);
    integer("kv_heads", out.kvHeads);
  } else if (op == "mla") {
    // Decode over a latent cache: "head_dim" is the latent width (the
    // output and partial rows), "kv_heads" the row blocks of the grid.
    out.kind = Graph::Step::Mla;
    names = kMlaOperands;
    count = 5;
    splitDecode();
    integer("latent_dim", out.headDim);
    integer("rope_dim", out.ropeDim);
    integer("row_blocks", out.kvHeads);
  } else if (op == "prefill") {
    out.kind = Graph::Step::Prefill;
    names = kAttentionOperands;
    count = 4;
    r.getString("kernel", out.kernel, true);
    result("out", out.out, true);
    result("lse", out.lse, true);
    integer("head_dim", out.headDim);
    integer("rows_per_sequence", out.rowsPerSequence);
  } else if (r.ok()) {
    return parseError(where + ".op: unknown step \"" + op +
                      "\" (append, attention, prefill, mla)");
  }
  KVOPT_RT_RETURN_IF_ERROR(r.finish());
  if (out.pageBytes < 1)
    return parseError(where + ".page_bytes: must be >= 1");
  if (out.kind == Graph::Step::Append &&
      (out.tokens < 1 || out.appendHeads < 1 || out.headDim < 1))
    return parseError(where + ": tokens, kv_heads and head_dim must be >= 1");
  if (out.kind != Graph::Step::Append &&
      (out.out < 0 || out.headDim < 1 || out.rowsPerSequence < 1))
    return parseError(where +
                      ": out, the row width and rows_per_sequence must be "
                      "given and positive");
  if (out.kind == Graph::Step::Mla && out.ropeDim < 1)
    return parseError(where + ".rope_dim: must be >= 1");
  if ((out.kind == Graph::Step::Attention || out.kind == Graph::Step::Mla) &&
      (out.out < 0 || out.headDim < 1 || out.kvHeads < 1 || out.pageSize < 1 ||
       out.tileTokens < 1 || out.limits.maxSplits < 1 ||
       out.limits.smCount < 1 || out.limits.blocksPerSM < 1))
    return parseError(where + ": out, head_dim, kv_heads, page_size, "
                              "tile_tokens and the plan limits must be "
                              "given and positive");
  detail::JsonObjectReader o(*operands, where + ".operands");
  for (size_t i = 0; i < count; ++i) {
    uint32_t a = 0;
    if (o.getUInt32(names[i], a, true)) {
      if (a >= args)
        o.fail(names[i], "argument index " + std::to_string(a) +
                             " out of range (the function has " +
                             std::to_string(args) + ")");
      out.operands[names[i]] = a;
    }
  }
  return o.finish();
}

/// Whether kernel `name`'s every argument has a binding in a step of `kind`.
Status checkKernel(const KernelBundle &bundle, const std::string &name,
                   const std::vector<std::string> &memrefs,
                   const std::vector<std::string> &scalars,
                   const std::string &where) {
  const KernelInfo *k = nullptr;
  Status s = bundle.manifest().findKernel(name, k);
  if (!s.isOk())
    return Status::error(StatusCode::NotFound,
                         where + ": the bundle has no kernel " + name);
  for (const KernelArg &a : k->args) {
    bool bound = false;
    for (const std::string &m : memrefs)
      for (const char *suffix : {"", "_alloc", "_offset", "_size", "_stride"})
        bound |= a.name == m + suffix;
    for (const std::string &n : scalars)
      bound |= a.name == n;
    if (!bound)
      return Status::error(StatusCode::NotFound, where + ": argument " +
                                                     a.name + " of kernel " +
                                                     name + " has no binding");
  }
  return Status::ok();
}

/// 8-byte argument slots in a kernel's expanded ABI order.
class Params {
public:
  /// Packs kernel `k` from `memrefs` (name -> buffer) and `scalars`.
  Status pack(const KernelInfo &k,
              const std::map<std::string, GraphBuffer> &memrefs,
              const std::map<std::string, int64_t> &scalars) {
    slots_.clear();
    for (const KernelArg &a : k.args) {
      uint64_t v = 0;
      bool found = false;
      for (const auto &[name, buf] : memrefs) {
        if (a.name == name || a.name == name + "_alloc") {
          v = buf.address;
        } else if (a.name == name + "_offset") {
          v = 0;
        } else if (a.name == name + "_size") {
          v = buf.elements;
        } else if (a.name == name + "_stride") {
          v = 1;
        } else {
          continue;
        }
        found = true;
        break;
      }
      if (!found) {
        auto it = scalars.find(a.name);
        if (it == scalars.end())
          return invalid("kernel " + k.name + ": argument " + a.name +
                         " has no binding");
        v = a.type == ArgType::I32 ? uint64_t(uint32_t(int32_t(it->second)))
                                   : uint64_t(it->second);
      }
      slots_.push_back(v);
    }
    pointers_.clear();
    for (uint64_t &s : slots_)
      pointers_.push_back(&s);
    return Status::ok();
  }
  void **data() { return pointers_.data(); }

private:
  std::vector<uint64_t> slots_;
  std::vector<void *> pointers_;
};

/// Workspace allocations released on scope exit.
struct Workspace {
  explicit Workspace(MemoryBackend &m) : memory(m) {}
  ~Workspace() {
    for (DeviceAddress a : owned)
      memory.release(a);
  }
  Status allocate(uint64_t bytes, DeviceAddress &out) {
    KVOPT_RT_RETURN_IF_ERROR(
        memory.allocate(std::max<uint64_t>(bytes, 4), out));
    owned.push_back(out);
    return Status::ok();
  }
  MemoryBackend &memory;
  std::vector<DeviceAddress> owned;
};

} // namespace

Status Graph::load(const std::string &graphPath, const KernelBundle &bundle,
                   std::unique_ptr<Graph> &out) {
  std::ifstream is(graphPath);
  if (!is)
    return Status::error(StatusCode::NotFound,
                         "cannot read graph file " + graphPath);
  std::stringstream ss;
  ss << is.rdbuf();
  json j;
  KVOPT_RT_RETURN_IF_ERROR(detail::parseJsonText(ss.str(), "graph", j));
  if (!j.is_object())
    return parseError("graph: expected a JSON object");
  detail::JsonObjectReader r(j, "graph");
  uint32_t abi = 0;
  r.getUInt32("abi_version", abi, true);
  const json *functions = r.field("functions", true);
  KVOPT_RT_RETURN_IF_ERROR(r.finish());
  if (abi != kKernelAbiVersion)
    return Status::error(StatusCode::AbiMismatch,
                         "graph ABI version " + std::to_string(abi) +
                             " does not match the runtime's ABI version " +
                             std::to_string(kKernelAbiVersion));
  if (!functions->is_array())
    return parseError("graph.functions: expected an array");
  std::unique_ptr<Graph> g(new Graph());
  g->bundle_ = &bundle;
  for (size_t i = 0; i < functions->size(); ++i) {
    std::string where = "graph.functions[" + std::to_string(i) + "]";
    const json &fj = (*functions)[i];
    if (!fj.is_object())
      return parseError(where + ": expected an object");
    Function f;
    detail::JsonObjectReader fr(fj, where);
    fr.getString("name", f.name, true);
    fr.getUInt32("args", f.args, true);
    fr.getUInt32("results", f.results, true);
    const json *steps = fr.field("steps", true);
    KVOPT_RT_RETURN_IF_ERROR(fr.finish());
    if (!steps->is_array())
      return parseError(where + ".steps: expected an array");
    for (size_t k = 0; k < steps->size(); ++k) {
      std::string sw = where + ".steps[" + std::to_string(k) + "]";
      Step s;
      KVOPT_RT_RETURN_IF_ERROR(
          parseStep((*steps)[k], sw, f.args, f.results, s));
      if (s.kind == Step::Append) {
        KVOPT_RT_RETURN_IF_ERROR(
            checkKernel(bundle, s.kernel,
                        {"pool", "positions", "keys", "values", "block_table"},
                        {"max_pages"}, sw));
      } else if (s.kind == Step::Prefill) {
        KVOPT_RT_RETURN_IF_ERROR(
            checkKernel(bundle, s.kernel,
                        {"q", "pool", "block_table", "seq_lens", "out", "lse"},
                        {"max_pages"}, sw));
      } else if (s.kind == Step::Mla) {
        KVOPT_RT_RETURN_IF_ERROR(
            checkKernel(bundle, s.decode,
                        {"q_latent", "q_rope", "pool", "block_table",
                         "seq_lens", "part_out", "part_lse"},
                        {"max_pages", "splits", "chunk_tokens"}, sw));
        KVOPT_RT_RETURN_IF_ERROR(
            checkKernel(bundle, s.merge, {"part_out", "part_lse", "out", "lse"},
                        {"splits"}, sw));
      } else {
        KVOPT_RT_RETURN_IF_ERROR(checkKernel(
            bundle, s.decode,
            {"q", "pool", "block_table", "seq_lens", "part_out", "part_lse"},
            {"max_pages", "splits", "chunk_tokens"}, sw));
        KVOPT_RT_RETURN_IF_ERROR(
            checkKernel(bundle, s.merge, {"part_out", "part_lse", "out", "lse"},
                        {"splits"}, sw));
      }
      f.steps.push_back(std::move(s));
    }
    g->functions_.push_back(std::move(f));
  }
  out = std::move(g);
  return Status::ok();
}

Status Graph::run(const std::string &name, const std::vector<GraphBuffer> &args,
                  const std::vector<GraphBuffer> &results,
                  MemoryBackend &workspace, StreamHandle stream) const {
  const Function *f = nullptr;
  for (const Function &fn : functions_)
    if (fn.name == name)
      f = &fn;
  if (!f)
    return Status::error(StatusCode::NotFound, "graph has no function " + name);
  if (args.size() != f->args || results.size() != f->results)
    return invalid("run " + name + ": expected " + std::to_string(f->args) +
                   " argument and " + std::to_string(f->results) +
                   " result buffers, got " + std::to_string(args.size()) +
                   " and " + std::to_string(results.size()));
  const Manifest &m = bundle_->manifest();
  auto kernel = [&](const std::string &k) {
    const KernelInfo *info = nullptr;
    (void)m.findKernel(k, info); // checked by load()
    return info;
  };

  // Check every step's buffers before launching anything.
  struct Planned {
    int64_t batch = 0, maxPages = 0, rows = 0;
    DecodePlan plan;
    GraphBuffer partOut, partLse, lse; ///< workspace (attention, MLA)
  };
  std::vector<Planned> planned(f->steps.size());
  std::map<uint32_t, int64_t> poolBatch; // pool argument -> batch
  for (size_t i = 0; i < f->steps.size(); ++i) {
    const Step &s = f->steps[i];
    std::string where = "run " + name + " step " + std::to_string(i);
    auto buf = [&](const char *operand) {
      return args[s.operands.at(operand)];
    };
    auto expect = [&](const GraphBuffer &b, uint64_t elements,
                      const std::string &what) {
      if (b.elements == elements)
        return Status::ok();
      return invalid(where + ": " + what + " has " +
                     std::to_string(b.elements) + " elements, expected " +
                     std::to_string(elements));
    };
    Planned &p = planned[i];
    const char *batchOperand =
        s.kind == Step::Append ? "positions" : "seq_lens";
    p.batch = int64_t(buf(batchOperand).elements);
    uint64_t tableEntries = buf("block_table").elements;
    if (p.batch < 1 || tableEntries % uint64_t(p.batch))
      return invalid(where + ": block_table has " +
                     std::to_string(tableEntries) +
                     " entries, not a multiple of the batch " +
                     std::to_string(p.batch) + " (" + batchOperand + ")");
    p.maxPages = int64_t(tableEntries / uint64_t(p.batch));
    // The pool: whole pages, then the batch's window regions, 16-byte
    // aligned (the kernels' widest vector access; their offsets are
    // relative to the pool).
    GraphBuffer pool = buf("pool");
    uint64_t windows = uint64_t(p.batch) * uint64_t(s.windowBytes);
    if (pool.address % 16 || pool.elements < windows ||
        (pool.elements - windows) % uint64_t(s.pageBytes))
      return invalid(where + ": pool of " + std::to_string(pool.elements) +
                     " bytes at " + std::to_string(pool.address) +
                     " is not 16-byte aligned whole pages of " +
                     std::to_string(s.pageBytes) + " bytes then " +
                     std::to_string(p.batch) + " window regions of " +
                     std::to_string(s.windowBytes));
    // Window regions are addressed by batch row: every step on a pool must
    // see the same batch.
    auto [it, fresh] = poolBatch.emplace(s.operands.at("pool"), p.batch);
    if (!fresh && it->second != p.batch && s.windowBytes)
      return invalid(where + ": batch " + std::to_string(p.batch) +
                     " differs from an earlier step's " +
                     std::to_string(it->second) + " on the same pool");
    if (s.kind == Step::Append) {
      uint64_t rowsIn = uint64_t(p.batch) * uint64_t(s.appendHeads) *
                        uint64_t(s.tokens) * uint64_t(s.headDim);
      KVOPT_RT_RETURN_IF_ERROR(expect(buf("keys"), rowsIn, "keys"));
      KVOPT_RT_RETURN_IF_ERROR(expect(buf("values"), rowsIn, "values"));
      continue;
    }
    p.rows = p.batch * s.rowsPerSequence;
    uint64_t qElems = uint64_t(p.rows) * uint64_t(s.headDim);
    KVOPT_RT_RETURN_IF_ERROR(expect(buf(s.kind == Step::Mla ? "q_latent" : "q"),
                                    qElems,
                                    s.kind == Step::Mla ? "q_latent" : "q"));
    if (s.kind == Step::Mla)
      KVOPT_RT_RETURN_IF_ERROR(expect(
          buf("q_rope"), uint64_t(p.rows) * uint64_t(s.ropeDim), "q_rope"));
    KVOPT_RT_RETURN_IF_ERROR(
        expect(results[s.out], qElems,
               "result " + std::to_string(s.out) + " (the attention output)"));
    if (s.lse >= 0)
      KVOPT_RT_RETURN_IF_ERROR(
          expect(results[s.lse], uint64_t(p.rows),
                 "result " + std::to_string(s.lse) + " (the log-sum-exp)"));
    if (s.kind == Step::Prefill)
      continue;
    // Planned from the capacity the block table covers (lengths live on
    // the device): chunks past a sequence's end are empty and skipped by
    // the merge.
    p.plan = planDecodeSplits(s.limits, p.batch, s.kvHeads,
                              p.maxPages * s.pageSize, s.tileTokens);
  }

  // The workspace, before the first launch.
  Workspace ws(workspace);
  for (size_t i = 0; i < f->steps.size(); ++i) {
    const Step &s = f->steps[i];
    Planned &p = planned[i];
    if (s.kind == Step::Append)
      continue;
    if (s.lse < 0) {
      p.lse.elements = uint64_t(p.rows);
      KVOPT_RT_RETURN_IF_ERROR(ws.allocate(p.lse.elements * 4, p.lse.address));
    } else {
      p.lse = results[s.lse];
    }
    if (s.kind == Step::Prefill)
      continue;
    uint64_t parts = uint64_t(p.rows) * uint64_t(p.plan.splits);
    p.partOut.elements = parts * uint64_t(s.headDim);
    p.partLse.elements = parts;
    KVOPT_RT_RETURN_IF_ERROR(
        ws.allocate(p.partOut.elements * 4, p.partOut.address));
    KVOPT_RT_RETURN_IF_ERROR(
        ws.allocate(p.partLse.elements * 4, p.partLse.address));
  }

  // Launch; on a failure after the first launch, wait for what was queued
  // before the workspace goes.
  auto launchAll = [&]() -> Status {
    for (size_t i = 0; i < f->steps.size(); ++i) {
      const Step &s = f->steps[i];
      const Planned &p = planned[i];
      std::map<std::string, GraphBuffer> memrefs;
      for (const auto &[operand, arg] : s.operands)
        memrefs[operand] = args[arg];
      Params params;
      if (s.kind == Step::Append) {
        KVOPT_RT_RETURN_IF_ERROR(params.pack(*kernel(s.kernel), memrefs,
                                             {{"max_pages", p.maxPages}}));
        KVOPT_RT_RETURN_IF_ERROR(
            bundle_->launch(s.kernel, params.data(), stream));
        continue;
      }
      if (s.kind == Step::Prefill) {
        memrefs["out"] = results[s.out];
        memrefs["lse"] = p.lse;
        KVOPT_RT_RETURN_IF_ERROR(params.pack(*kernel(s.kernel), memrefs,
                                             {{"max_pages", p.maxPages}}));
        KVOPT_RT_RETURN_IF_ERROR(
            bundle_->launch(s.kernel, params.data(), stream));
        continue;
      }
      memrefs["part_out"] = p.partOut;
      memrefs["part_lse"] = p.partLse;
      KVOPT_RT_RETURN_IF_ERROR(
          params.pack(*kernel(s.decode), memrefs,
                      {{"max_pages", p.maxPages},
                       {"splits", p.plan.splits},
                       {"chunk_tokens", p.plan.chunkTokens}}));
      KVOPT_RT_RETURN_IF_ERROR(
          bundle_->launch(s.decode, params.data(), stream));
      std::map<std::string, GraphBuffer> mm = {{"part_out", p.partOut},
                                               {"part_lse", p.partLse},
                                               {"out", results[s.out]},
                                               {"lse", p.lse}};
      Params mp;
      KVOPT_RT_RETURN_IF_ERROR(
          mp.pack(*kernel(s.merge), mm, {{"splits", p.plan.splits}}));
      KVOPT_RT_RETURN_IF_ERROR(bundle_->launch(s.merge, mp.data(), stream));
    }
    return Status::ok();
  };
  Status launched = launchAll();
  Status waited = bundle_->synchronize(stream);
  return launched.isOk() ? waited : launched;
}

} // namespace rt
} // namespace kvopt
