//===- Bundle.cpp - kernel-bundle manifests for generated kv kernels ------===//
//
// Implementation of kvopt/Codegen/KVToGPU/Bundle.h.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/KVToGPU/Bundle.h"
#include "kvopt/Dialect/KV/KVOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"

#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/StringMap.h"

#include <cmath>

using namespace mlir;
using namespace kvopt;

void gpugen::setLaunchGrid(gpu::GPUFuncOp kernel, ArrayRef<GridDim> dims) {
  Builder b(kernel.getContext());
  SmallVector<Attribute> attrs;
  for (const GridDim &d : dims) {
    if (d.arg.empty()) {
      attrs.push_back(b.getI64IntegerAttr(d.value));
      continue;
    }
    attrs.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("arg", b.getStringAttr(d.arg)),
         b.getNamedAttr("ceil_div", b.getI64IntegerAttr(d.ceilDiv)),
         b.getNamedAttr("mul", b.getI64IntegerAttr(d.mul))}));
  }
  kernel->setAttr("kv.grid", b.getArrayAttr(attrs));
}

namespace {

/// Appends the expanded ABI arguments of one gpu.func argument.
LogicalResult expandArg(gpu::GPUFuncOp f, unsigned index, StringRef name,
                        Type type, llvm::json::Array &args,
                        llvm::StringMap<bool> &isInteger) {
  auto add = [&](const Twine &n, StringRef t) {
    std::string s = n.str();
    isInteger[s] = t != "ptr" && t != "f32";
    args.push_back(llvm::json::Object{{"name", s}, {"type", t}});
  };
  if (auto m = dyn_cast<MemRefType>(type)) {
    // The descriptor as convert-gpu-to-nvvm and kv-simt-emulate pass it.
    add(name + "_alloc", "ptr");
    add(name, "ptr");
    add(name + "_offset", "i64");
    int64_t rank = m.getRank();
    for (int64_t i = 0; i < rank; ++i)
      add(rank == 1 ? (name + "_size") : (name + "_size" + Twine(i)), "i64");
    for (int64_t i = 0; i < rank; ++i)
      add(rank == 1 ? (name + "_stride") : (name + "_stride" + Twine(i)),
          "i64");
    return success();
  }
  if (type.isInteger(32)) {
    add(name, "i32");
    return success();
  }
  if (type.isInteger(64) || type.isIndex()) {
    add(name, "i64");
    return success();
  }
  if (type.isF32()) {
    add(name, "f32");
    return success();
  }
  return f.emitError() << "kernel argument " << index << " ('" << name
                       << "') has type " << type
                       << ", which a bundle manifest cannot describe";
}

} // namespace

FailureOr<llvm::json::Array> gpugen::manifestKernels(gpu::GPUModuleOp module) {
  llvm::json::Array kernels;
  for (auto f : module.getOps<gpu::GPUFuncOp>()) {
    if (!f.isKernel())
      continue;
    auto names = f->getAttrOfType<ArrayAttr>("kv.arg_names");
    auto grid = f->getAttrOfType<ArrayAttr>("kv.grid");
    auto block = f.getKnownBlockSizeAttr();
    if (!names || !grid || !block)
      return f.emitError("kernel has no launch contract (kv.arg_names, "
                         "kv.grid, known_block_size); only kernels built by "
                         "kv-gpu-kernels go into a bundle");
    if (names.size() != f.getNumArguments())
      return f.emitError() << "kv.arg_names names " << names.size()
                           << " arguments, the kernel has "
                           << f.getNumArguments();
    if (grid.empty() || grid.size() > 3)
      return f.emitError("kv.grid must have 1..3 dimensions");
    llvm::json::Array args;
    llvm::StringMap<bool> isInteger;
    for (auto [i, type] : llvm::enumerate(f.getArgumentTypes())) {
      auto name = dyn_cast<StringAttr>(names[i]);
      if (!name)
        return f.emitError("kv.arg_names must hold strings");
      if (failed(expandArg(f, i, name.getValue(), type, args, isInteger)))
        return failure();
    }
    llvm::json::Array gridJson;
    for (Attribute a : grid) {
      if (auto c = dyn_cast<IntegerAttr>(a)) {
        if (c.getInt() < 1)
          return f.emitError("kv.grid constants must be >= 1");
        gridJson.push_back(c.getInt());
        continue;
      }
      auto d = dyn_cast<DictionaryAttr>(a);
      auto arg = d ? d.getAs<StringAttr>("arg") : StringAttr();
      auto div = d ? d.getAs<IntegerAttr>("ceil_div") : IntegerAttr();
      auto mul = d ? d.getAs<IntegerAttr>("mul") : IntegerAttr();
      if (!arg || !div || !mul || div.getInt() < 1 || mul.getInt() < 1)
        return f.emitError("kv.grid entries are integers or {arg, ceil_div, "
                           "mul} with positive ceil_div and mul");
      auto it = isInteger.find(arg.getValue());
      if (it == isInteger.end() || !it->second)
        return f.emitError() << "kv.grid refers to '" << arg.getValue()
                             << "', not an integer argument of the kernel";
      gridJson.push_back(llvm::json::Object{{"arg", arg.getValue()},
                                            {"ceil_div", div.getInt()},
                                            {"mul", mul.getInt()}});
    }
    llvm::json::Array blockJson;
    ArrayRef<int32_t> dims = block.asArrayRef();
    size_t used = dims.size();
    while (used > 1 && dims[used - 1] == 1)
      --used;
    for (size_t i = 0; i < used; ++i)
      blockJson.push_back(int64_t(dims[i]));
    // All shared memory is static (workgroup attributions): no dynamic bytes.
    kernels.push_back(llvm::json::Object{
        {"name", f.getName()},
        {"args", std::move(args)},
        {"launch", llvm::json::Object{{"grid", std::move(gridJson)},
                                      {"block", std::move(blockJson)},
                                      {"shared_bytes", 0}}}});
  }
  if (kernels.empty())
    return module.emitError("no kernels in the gpu.module");
  return kernels;
}

llvm::json::Object gpugen::kernelConstants(gpu::GPUModuleOp module) {
  llvm::json::Object all;
  for (auto f : module.getOps<gpu::GPUFuncOp>()) {
    if (!f.isKernel())
      continue;
    llvm::json::Object consts;
    for (NamedAttribute a : f->getAttrs()) {
      auto v = dyn_cast<IntegerAttr>(a.getValue());
      if (v && a.getName().getValue().starts_with("kv."))
        consts[a.getName().getValue().drop_front(3)] = v.getInt();
    }
    all[f.getName()] = std::move(consts);
  }
  return all;
}

llvm::json::Object gpugen::makeManifest(StringRef target, StringRef format,
                                        StringRef binary,
                                        llvm::json::Value cacheLayout,
                                        llvm::json::Array kernels) {
  return llvm::json::Object{{"abi_version", kBundleAbiVersion},
                            {"target", target},
                            {"format", format},
                            {"binary", binary},
                            {"cache_layout", std::move(cacheLayout)},
                            {"kernels", std::move(kernels)}};
}

//===----------------------------------------------------------------------===//
// Graph schedules
//===----------------------------------------------------------------------===//

namespace {

/// The kernel `ref` (@kv_gpu::@name) names in `module`, or null.
gpu::GPUFuncOp lookupKernel(ModuleOp module, Attribute ref) {
  auto sym = dyn_cast<SymbolRefAttr>(ref);
  if (!sym)
    return {};
  return dyn_cast_or_null<gpu::GPUFuncOp>(
      SymbolTable::lookupSymbolIn(module, sym));
}

/// One function's steps, or the reason it has none.
FailureOr<llvm::json::Object> functionSchedule(ModuleOp module, func::FuncOp f,
                                               std::string &why) {
  auto argIndex = [&](Value v, StringRef what,
                      Operation *op) -> std::optional<int64_t> {
    auto arg = dyn_cast<BlockArgument>(v);
    if (!arg || arg.getOwner() != &f.getBody().front()) {
      why = "operand '" + what.str() + "' of " +
            op->getName().getStringRef().str() +
            " is computed in the function; the graph runner launches kv "
            "ops over the function's arguments only";
      return std::nullopt;
    }
    return arg.getArgNumber();
  };
  func::ReturnOp ret;
  for (Operation &op : f.getBody().front())
    if (auto r = dyn_cast<func::ReturnOp>(&op))
      ret = r;
  auto resultIndex = [&](Value v) -> int64_t {
    if (!ret || !v)
      return -1;
    for (auto [i, operand] : llvm::enumerate(ret.getOperands()))
      if (operand == v)
        return i;
    return -1;
  };
  auto constant = [](gpu::GPUFuncOp k, StringRef name) -> int64_t {
    auto a = k->getAttrOfType<IntegerAttr>(name);
    return a ? a.getInt() : 0;
  };

  llvm::json::Array steps;
  for (Operation &op : f.getBody().front()) {
    if (isa<func::ReturnOp>(&op))
      continue;
    auto kernels = op.getAttrOfType<ArrayAttr>("kv.gpu_kernels");
    if (!kernels) {
      why = "it computes " + op.getName().getStringRef().str() +
            " on the host; the graph runner launches kv ops only";
      return failure();
    }
    llvm::json::Object operands;
    auto bind = [&](StringRef name, Value v) {
      auto i = argIndex(v, name, &op);
      if (i)
        operands[name] = *i;
      return i.has_value();
    };
    llvm::json::Object step;
    // The pool: whole pages, then the batch's window regions.
    auto poolOf = [&](Value cache) {
      auto t = cast<kv::KVCacheTypeInterface>(cache.getType());
      step["page_bytes"] =
          int64_t(std::llround(t.getBytesPerToken() * double(t.getPageSize())));
      step["window_bytes"] = t.getFixedBytesPerSequence();
    };
    // The split plan's inputs, recorded on the decode kernel.
    auto planConstants = [&](gpu::GPUFuncOp decode) {
      for (StringRef c : {"tile_tokens", "max_splits", "sm_count",
                          "blocks_per_sm", "min_chunk_tokens"})
        step[c] = constant(decode, ("kv." + c).str());
    };
    // Query heads x query rows of a [B, H, Tq, D] query tensor.
    auto rowsPerSequence = [](Value q) {
      auto t = cast<RankedTensorType>(q.getType());
      return t.getDimSize(1) * t.getDimSize(2);
    };
    if (auto append = dyn_cast<kv::AppendOp>(&op)) {
      if (!append.getValues() || !append.getBlockTable()) {
        why = "kv.append without values or a block table";
        return failure();
      }
      if (!bind("pool", append.getCache()) ||
          !bind("positions", append.getPositions()) ||
          !bind("keys", append.getKeys()) ||
          !bind("values", append.getValues()) ||
          !bind("block_table", append.getBlockTable()))
        return failure();
      step["op"] = "append";
      step["kernel"] = cast<SymbolRefAttr>(kernels[0]).getLeafReference().str();
      // Heads and head dim from the cache (the rows' may be dynamic); the
      // token count is static (kv-gpu-kernels requires it).
      auto appendCache = cast<kv::CacheType>(append.getCache().getType());
      auto rows = cast<RankedTensorType>(append.getKeys().getType());
      step["kv_heads"] = appendCache.getKvHeads();
      step["tokens"] = rows.getDimSize(2);
      step["head_dim"] = appendCache.getHeadDim();
      poolOf(append.getCache());
    } else if (auto attention = dyn_cast<kv::AttentionOp>(&op)) {
      gpu::GPUFuncOp first = lookupKernel(module, kernels[0]);
      bool prefill = first && kernels.size() == 1 &&
                     first.getName().starts_with("prefill_");
      if (!first || (!prefill && (kernels.size() != 2 ||
                                  !first.getName().starts_with("decode_")))) {
        why = "its kv.attention has kernels the graph runner does not know";
        return failure();
      }
      if (!bind("q", attention.getQueries()) ||
          !bind("pool", attention.getCache()) ||
          !bind("seq_lens", attention.getSeqLens()) ||
          !bind("block_table", attention.getBlockTable()))
        return failure();
      int64_t out = resultIndex(attention.getOutput());
      if (out < 0) {
        why = "the output of kv.attention is not returned by the function";
        return failure();
      }
      auto cache = cast<kv::CacheType>(attention.getCache().getType());
      if (prefill) {
        // One tensor-core kernel writes the output and log-sum-exp.
        step["op"] = "prefill";
        step["kernel"] = first.getName().str();
        step["out"] = out;
        step["lse"] = resultIndex(attention.getLse());
        step["head_dim"] = cache.getHeadDim();
        step["rows_per_sequence"] = rowsPerSequence(attention.getQueries());
        poolOf(attention.getCache());
        step["operands"] = std::move(operands);
        steps.push_back(std::move(step));
        continue;
      }
      gpu::GPUFuncOp decode = first;
      step["op"] = "attention";
      step["decode"] = decode.getName().str();
      step["merge"] = cast<SymbolRefAttr>(kernels[1]).getLeafReference().str();
      step["out"] = out;
      step["lse"] = resultIndex(attention.getLse());
      step["head_dim"] = cache.getHeadDim();
      step["rows_per_sequence"] = rowsPerSequence(attention.getQueries());
      poolOf(attention.getCache());
      step["kv_heads"] = cache.getKvHeads();
      step["page_size"] = cache.getPageSize();
      planConstants(decode);
    } else if (auto mla = dyn_cast<kv::MLAAttentionOp>(&op)) {
      gpu::GPUFuncOp decode = lookupKernel(module, kernels[0]);
      if (kernels.size() != 2 || !decode) {
        why = "its kv.mla_attention has kernels the graph runner does not "
              "know";
        return failure();
      }
      if (!bind("q_latent", mla.getQLatent()) ||
          !bind("q_rope", mla.getQRope()) || !bind("pool", mla.getCache()) ||
          !bind("seq_lens", mla.getSeqLens()) ||
          !bind("block_table", mla.getBlockTable()))
        return failure();
      int64_t out = resultIndex(mla.getOutput());
      if (out < 0) {
        why = "the output of kv.mla_attention is not returned by the "
              "function";
        return failure();
      }
      auto cache = cast<kv::LatentCacheType>(mla.getCache().getType());
      auto grid = decode->getAttrOfType<ArrayAttr>("kv.grid");
      step["op"] = "mla";
      step["decode"] = decode.getName().str();
      step["merge"] = cast<SymbolRefAttr>(kernels[1]).getLeafReference().str();
      step["out"] = out;
      step["lse"] = resultIndex(mla.getLse());
      step["latent_dim"] = cache.getLatentDim();
      step["rope_dim"] = cache.getRopeDim();
      step["rows_per_sequence"] = rowsPerSequence(mla.getQLatent());
      poolOf(mla.getCache());
      // grid.y: blocks of query rows, the plan's "heads".
      step["row_blocks"] = cast<IntegerAttr>(grid[1]).getInt();
      step["page_size"] = cache.getPageSize();
      planConstants(decode);
    } else {
      why = "its " + op.getName().getStringRef().str() +
            " has no graph-runner launch yet";
      return failure();
    }
    step["operands"] = std::move(operands);
    steps.push_back(std::move(step));
  }
  // Every result must be written by exactly one step: a returned argument or
  // a value returned twice would leave a result buffer unwritten.
  if (ret) {
    llvm::SmallPtrSet<void *, 8> seen;
    for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
      Operation *def = v.getDefiningOp();
      bool kvOutput = def && isa<kv::AttentionOp, kv::MLAAttentionOp>(def);
      if (!kvOutput || !seen.insert(v.getAsOpaquePointer()).second) {
        why = "result " + std::to_string(i) +
              (kvOutput ? " repeats another result"
                        : " is not an attention output");
        return failure();
      }
    }
  }
  llvm::json::Object fn;
  fn["name"] = f.getName().str();
  fn["args"] = int64_t(f.getNumArguments());
  fn["results"] = int64_t(f.getNumResults());
  fn["steps"] = std::move(steps);
  return fn;
}

} // namespace

llvm::json::Object gpugen::graphSchedule(
    ModuleOp module,
    llvm::function_ref<void(StringRef function, StringRef why)> skipped) {
  llvm::json::Array functions;
  for (auto f : module.getOps<func::FuncOp>()) {
    if (f.isExternal())
      continue;
    bool hasKv = false;
    f.walk([&](Operation *op) { hasKv |= op->hasAttr("kv.gpu_kernels"); });
    if (!hasKv)
      continue;
    std::string why;
    auto fn = functionSchedule(module, f, why);
    if (failed(fn)) {
      skipped(f.getName(), why);
      continue;
    }
    functions.push_back(std::move(*fn));
  }
  llvm::json::Object graph;
  graph["abi_version"] = kBundleAbiVersion;
  graph["functions"] = std::move(functions);
  return graph;
}
