//===- bundle.cc - Kernel bundles: manifest, loader, launch ---------------===//
//
// Manifest parsing (nlohmann-json, no exceptions), ABI and layout checks,
// binary loading through a LaunchBackend, and launch-shape evaluation.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/bundle.h"

#include "json_reader.h"

#include <fstream>
#include <iterator>
#include <set>

namespace kvopt {
namespace rt {

using nlohmann::json;

static const std::pair<const char *, ArgType> kArgTypeNames[] = {
    {"ptr", ArgType::Ptr}, {"i32", ArgType::I32}, {"i64", ArgType::I64},
    {"u32", ArgType::U32}, {"u64", ArgType::U64}, {"f32", ArgType::F32}};

static bool isIntegerType(ArgType t) {
  return t != ArgType::Ptr && t != ArgType::F32;
}

static Status parseError(const std::string &message) {
  return Status::error(StatusCode::ParseError, message);
}

/// Parses one launch dimension: an integer >= 1 or {"arg", "ceil_div", "mul"}.
static Status parseDim(const json &value, const std::string &where,
                       const std::vector<KernelArg> &args, DimRule &out) {
  if (value.is_number_unsigned()) {
    out.constant = value.get<uint64_t>();
    if (out.constant == 0 || out.constant > UINT32_MAX)
      return parseError(where + ": constant must be in 1..2^32-1");
    return Status::ok();
  }
  detail::JsonObjectReader r(value, where);
  std::string arg;
  r.getString("arg", arg, true);
  r.getUnsigned("ceil_div", out.divisor, false, UINT32_MAX);
  r.getUnsigned("mul", out.multiplier, false, UINT32_MAX);
  KVOPT_RT_RETURN_IF_ERROR(r.finish());
  if (out.divisor == 0 || out.multiplier == 0)
    return parseError(where + ": ceil_div and mul must be >= 1");
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].name != arg)
      continue;
    if (!isIntegerType(args[i].type))
      return parseError(where + ": argument " + arg + " is not an integer");
    out.argIndex = int(i);
    return Status::ok();
  }
  return parseError(where + ": no argument named " + arg);
}

/// Parses "grid" or "block": an array of 1 to 3 dimensions.
static Status parseDims(const json *value, const std::string &where,
                        const std::vector<KernelArg> &args, DimRule (&out)[3]) {
  if (!value->is_array() || value->empty() || value->size() > 3)
    return parseError(where + ": expected an array of 1 to 3 dimensions");
  for (size_t d = 0; d < value->size(); ++d)
    KVOPT_RT_RETURN_IF_ERROR(parseDim(
        (*value)[d], where + "[" + std::to_string(d) + "]", args, out[d]));
  return Status::ok();
}

static Status parseKernel(const json &value, const std::string &where,
                          KernelInfo &k) {
  detail::JsonObjectReader r(value, where);
  r.getString("name", k.name, true);
  r.getString("symbol", k.symbol, false);
  const json *args = r.field("args", true);
  const json *launch = r.field("launch", true);
  KVOPT_RT_RETURN_IF_ERROR(r.finish());
  if (k.name.empty())
    return parseError(where + ".name: must not be empty");
  if (k.symbol.empty())
    k.symbol = k.name;
  if (!args->is_array())
    return parseError(where + ".args: expected an array");
  std::set<std::string> names;
  for (size_t i = 0; i < args->size(); ++i) {
    std::string at = where + ".args[" + std::to_string(i) + "]";
    detail::JsonObjectReader ar((*args)[i], at);
    KernelArg arg;
    std::string type;
    ar.getString("name", arg.name, true);
    ar.getString("type", type, true);
    KVOPT_RT_RETURN_IF_ERROR(ar.finish());
    bool known = false;
    for (const auto &entry : kArgTypeNames)
      if (type == entry.first) {
        arg.type = entry.second;
        known = true;
      }
    if (!known)
      return parseError(at + ".type: \"" + type +
                        "\" is not one of ptr, i32, i64, u32, u64, f32");
    if (!names.insert(arg.name).second)
      return parseError(at + ".name: duplicate argument " + arg.name);
    k.args.push_back(arg);
  }
  detail::JsonObjectReader lr(*launch, where + ".launch");
  const json *grid = lr.field("grid", true);
  const json *block = lr.field("block", true);
  lr.getUInt32("shared_bytes", k.sharedBytes, false);
  KVOPT_RT_RETURN_IF_ERROR(lr.finish());
  KVOPT_RT_RETURN_IF_ERROR(
      parseDims(grid, where + ".launch.grid", k.args, k.grid));
  return parseDims(block, where + ".launch.block", k.args, k.block);
}

Status Manifest::parse(const std::string &text, Manifest &out) {
  json j;
  KVOPT_RT_RETURN_IF_ERROR(detail::parseJsonText(text, "manifest", j));
  if (!j.is_object())
    return parseError("manifest: expected a JSON object");
  auto abi = j.find("abi_version");
  if (abi == j.end() || !abi->is_number_unsigned())
    return parseError("manifest.abi_version: missing or not a non-negative "
                      "integer");
  if (abi->get<uint64_t>() != kKernelAbiVersion)
    return Status::error(StatusCode::AbiMismatch,
                         "bundle ABI version " + abi->dump() +
                             " does not match the runtime's ABI version " +
                             std::to_string(kKernelAbiVersion));
  Manifest m;
  detail::JsonObjectReader r(j, "manifest");
  r.getUInt32("abi_version", m.abiVersion, true);
  r.getString("target", m.target, true);
  r.getString("format", m.format, true);
  r.getString("binary", m.binary, true);
  const json *layout = r.field("cache_layout", true);
  const json *kernels = r.field("kernels", true);
  KVOPT_RT_RETURN_IF_ERROR(r.finish());
  if (m.binary.empty())
    return parseError("manifest.binary: must not be empty");
  KVOPT_RT_RETURN_IF_ERROR(
      detail::parseCacheLayout(*layout, "manifest.cache_layout", m.layout));
  if (!kernels->is_array() || kernels->empty())
    return parseError("manifest.kernels: expected a non-empty array");
  std::set<std::string> names;
  for (size_t i = 0; i < kernels->size(); ++i) {
    KernelInfo k;
    std::string where = "manifest.kernels[" + std::to_string(i) + "]";
    KVOPT_RT_RETURN_IF_ERROR(parseKernel((*kernels)[i], where, k));
    if (!names.insert(k.name).second)
      return parseError(where + ".name: duplicate kernel " + k.name);
    m.kernels.push_back(std::move(k));
  }
  out = std::move(m);
  return Status::ok();
}

Status Manifest::findKernel(const std::string &name,
                            const KernelInfo *&out) const {
  for (const KernelInfo &k : kernels) {
    if (k.name == name) {
      out = &k;
      return Status::ok();
    }
  }
  return Status::error(StatusCode::NotFound,
                       "bundle has no kernel named " + name);
}

/// Reads integer argument `index` of `kernel` from params.
static Status readIntArg(const KernelInfo &kernel, int index, void **params,
                         uint64_t &out) {
  const KernelArg &arg = kernel.args[index];
  const void *p = params ? params[index] : nullptr;
  if (!p)
    return Status::error(StatusCode::InvalidArgument,
                         "launch " + kernel.name + ": argument " + arg.name +
                             " is null");
  int64_t value = 0;
  switch (arg.type) {
  case ArgType::I32:
    value = *static_cast<const int32_t *>(p);
    break;
  case ArgType::I64:
    value = *static_cast<const int64_t *>(p);
    break;
  case ArgType::U32:
    value = *static_cast<const uint32_t *>(p);
    break;
  case ArgType::U64:
    out = *static_cast<const uint64_t *>(p);
    return Status::ok();
  default:
    return Status::error(StatusCode::Internal, "non-integer launch argument");
  }
  if (value < 0)
    return Status::error(StatusCode::InvalidArgument,
                         "launch " + kernel.name + ": argument " + arg.name +
                             " is negative");
  out = uint64_t(value);
  return Status::ok();
}

static Status evalDim(const KernelInfo &kernel, const DimRule &rule,
                      void **params, const char *what, uint32_t &out) {
  uint64_t value = rule.constant;
  if (rule.argIndex >= 0) {
    uint64_t arg = 0;
    KVOPT_RT_RETURN_IF_ERROR(readIntArg(kernel, rule.argIndex, params, arg));
    value = (arg / rule.divisor + (arg % rule.divisor != 0)) * rule.multiplier;
  }
  if (value == 0 || value > UINT32_MAX)
    return Status::error(StatusCode::InvalidArgument,
                         "launch " + kernel.name + ": " + what +
                             " evaluates to " + std::to_string(value));
  out = uint32_t(value);
  return Status::ok();
}

Status Manifest::launchShape(const KernelInfo &kernel, void **params,
                             Dim3 &grid, Dim3 &block) {
  static const char *kNames[2][3] = {{"grid.x", "grid.y", "grid.z"},
                                     {"block.x", "block.y", "block.z"}};
  uint32_t *dims[2][3] = {{&grid.x, &grid.y, &grid.z},
                          {&block.x, &block.y, &block.z}};
  for (int d = 0; d < 3; ++d) {
    KVOPT_RT_RETURN_IF_ERROR(
        evalDim(kernel, kernel.grid[d], params, kNames[0][d], *dims[0][d]));
    KVOPT_RT_RETURN_IF_ERROR(
        evalDim(kernel, kernel.block[d], params, kNames[1][d], *dims[1][d]));
  }
  return Status::ok();
}

Status KernelBundle::load(const std::string &manifestPath,
                          const CacheLayout &poolLayout, LaunchBackend &backend,
                          std::unique_ptr<KernelBundle> &out) {
  std::ifstream in(manifestPath, std::ios::binary);
  if (!in)
    return Status::error(StatusCode::IoError,
                         "cannot read manifest " + manifestPath);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  std::unique_ptr<KernelBundle> bundle(new KernelBundle());
  Manifest &m = bundle->manifest_;
  KVOPT_RT_RETURN_IF_ERROR(Manifest::parse(text, m));
  KVOPT_RT_RETURN_IF_ERROR(m.layout.compare(poolLayout, "bundle", "pool"));
  if (!backend.acceptsFormat(m.format))
    return Status::error(StatusCode::InvalidArgument,
                         std::string("launch backend ") + backend.name() +
                             " cannot run bundle format \"" + m.format + "\"");
  std::string binary = m.binary;
  size_t slash = manifestPath.find_last_of('/');
  if (binary[0] != '/' && slash != std::string::npos)
    binary = manifestPath.substr(0, slash + 1) + binary;
  ModuleHandle module = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(backend.loadModule(binary, module));
  bundle->backend_ = &backend;
  bundle->module_ = module; // the destructor unloads it from here on
  for (const KernelInfo &k : m.kernels) {
    KernelHandle handle = nullptr;
    Status s = backend.getKernel(module, k.symbol, handle);
    if (!s.isOk())
      return Status::error(s.code(), "kernel " + k.name + ": " + s.message());
    bundle->handles_.push_back(handle);
  }
  out = std::move(bundle);
  return Status::ok();
}

KernelBundle::~KernelBundle() {
  if (backend_ && module_)
    backend_->unloadModule(module_);
}

Status KernelBundle::launch(const std::string &name, void **params,
                            StreamHandle stream) const {
  const KernelInfo *kernel = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(manifest_.findKernel(name, kernel));
  if (!kernel->args.empty() && !params)
    return Status::error(StatusCode::InvalidArgument,
                         "launch " + name + ": null params for " +
                             std::to_string(kernel->args.size()) +
                             " arguments");
  Dim3 grid, block;
  KVOPT_RT_RETURN_IF_ERROR(Manifest::launchShape(*kernel, params, grid, block));
  size_t index = size_t(kernel - manifest_.kernels.data());
  return backend_->launch(handles_[index], grid, block, kernel->sharedBytes,
                          params, stream);
}

Status KernelBundle::synchronize(StreamHandle stream) const {
  return backend_->synchronize(stream);
}

} // namespace rt
} // namespace kvopt
