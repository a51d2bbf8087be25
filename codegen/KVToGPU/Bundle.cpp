//===- Bundle.cpp - kernel-bundle manifests for generated kv kernels ------===//
//
// Implementation of kvopt/Codegen/KVToGPU/Bundle.h.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/KVToGPU/Bundle.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"

#include "llvm/ADT/StringMap.h"

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
