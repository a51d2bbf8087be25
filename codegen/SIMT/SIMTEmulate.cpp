//===- SIMTEmulate.cpp - NVVM-lowered kernels to host code for the emulator
//-===//
//
// kv-simt-emulate: rewrites the LLVM dialect + nvvm ops that
// convert-gpu-to-nvvm produces (the IR that goes to ptxas) into host LLVM
// dialect calling the fiber runtime in simt/. The order of the steps
// matters: memory accesses are classified while address spaces still exist,
// and shared-memory globals are replaced only after accesses were traced to
// them.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/SIMT/Passes.h"

#include "RuntimeCalls.h"
#include "kvopt/simt/ABI.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/AttrTypeSubElements.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/DataLayoutInterfaces.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"

namespace kvopt {
#define GEN_PASS_DEF_SIMTEMULATE
#include "kvopt/Codegen/SIMT/Passes.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt::simt;

namespace {

/// Where a memory access goes, as far as the IR tells.
enum class Space { Global, Shared, Private, Generic };

/// One addr_space 3 global placed in the shared segment.
struct SharedVar {
  std::string name;
  uint64_t offset = 0;
  uint64_t size = 0; // KVOPT_SIMT_DYNAMIC_SIZE for dynamic shared memory
};

/// A kernel found in a gpu.module, with what the descriptor needs.
struct KernelInfo {
  LLVM::LLVMFuncOp func;
  int32_t knownBlock[3] = {0, 0, 0};
  int32_t knownGrid[3] = {0, 0, 0};
};

constexpr unsigned kGlobalAS = 1, kSharedAS = 3, kConstantAS = 4,
                   kPrivateAS = 5;

bool isMaterialization(Operation *op) {
  return isa<LLVM::ConstantOp, LLVM::AddressOfOp, LLVM::UndefOp, LLVM::PoisonOp,
             LLVM::ZeroOp>(op);
}

unsigned addressSpace(Value ptr) {
  return cast<LLVM::LLVMPointerType>(ptr.getType()).getAddressSpace();
}

/// What the pass's options select.
struct EmulateConfig {
  bool countOps, instrumentGlobal, instrumentShared;
  unsigned sharedRedZone;
};

/// The rewrite of one module; each step is one method, run in order by run().
class HostRewrite {
public:
  HostRewrite(ModuleOp module, EmulateConfig config)
      : module(module), config(config), rt(module) {}
  LogicalResult run();

private:
  LogicalResult hoistGPUModules();
  LogicalResult layoutShared();
  void countBlockOps();
  void instrumentMemory();
  LogicalResult lowerNVVM();
  void insertOpCounters();
  void replaceSharedGlobals();
  void eraseAddressSpaces();
  void stripGPUAttributes();
  void emitTablesAndEntries();

  std::pair<Space, int32_t> classify(Value ptr) const;
  void instrumentAccess(Operation *op, OpOperand &addr, Type valueType,
                        bool store, bool atomic);
  Value globalString(OpBuilder &b, Location loc, StringRef value);

  ModuleOp module;
  EmulateConfig config;
  RuntimeAPI rt;
  SiteTable sites;
  std::vector<Operation *> deviceFuncs; // in module order: stable site numbers
  std::vector<KernelInfo> kernels;
  std::vector<SharedVar> shared;
  llvm::StringMap<int32_t> sharedIndex;
  uint64_t staticSharedBytes = 0;
  llvm::DenseMap<Block *, int64_t> blockOps;
  unsigned stringCounter = 0;
};

} // namespace

//===----------------------------------------------------------------------===//
// 1. Hoisting
//===----------------------------------------------------------------------===//

/// Moves every gpu.module's body into the top module and records the device
/// functions and kernels.
LogicalResult HostRewrite::hoistGPUModules() {
  if (module->hasAttr("gpu.container_module"))
    module->removeAttr("gpu.container_module");
  WalkResult launches = module.walk([&](gpu::LaunchFuncOp op) {
    op.emitError() << "kv-simt-emulate: gpu.launch_func is not supported; "
                      "launch kernels through kvopt::simt::launch";
    return WalkResult::interrupt();
  });
  if (launches.wasInterrupted())
    return failure();

  SymbolTable top(module);
  for (auto gm :
       llvm::make_early_inc_range(module.getOps<gpu::GPUModuleOp>())) {
    for (Operation &op :
         llvm::make_early_inc_range(gm.getBody()->getOperations())) {
      if (op.getDialect() && op.getDialect()->getNamespace() == "gpu")
        return op.emitError()
               << "kv-simt-emulate: '" << op.getName()
               << "' remains in the gpu.module; run convert-gpu-to-nvvm first";
      auto sym = dyn_cast<SymbolOpInterface>(op);
      if (sym) {
        if (Operation *existing = top.lookup(sym.getName())) {
          // Identical external declarations (e.g. __nv_expf in two modules)
          // merge; anything else is a real clash.
          auto a = dyn_cast<LLVM::LLVMFuncOp>(existing);
          auto b = dyn_cast<LLVM::LLVMFuncOp>(op);
          if (a && b && a.isExternal() && b.isExternal() &&
              a.getFunctionType() == b.getFunctionType()) {
            op.erase();
            continue;
          }
          return op.emitError() << "kv-simt-emulate: symbol '" << sym.getName()
                                << "' is defined twice once gpu.modules are "
                                   "merged into the top module";
        }
      }
      op.moveBefore(module.getBody(), module.getBody()->end());
      if (sym)
        top.insert(&op);
      if (auto fn = dyn_cast<LLVM::LLVMFuncOp>(op)) {
        deviceFuncs.push_back(fn);
        if (fn->hasAttr("gpu.kernel") || fn->hasAttr("nvvm.kernel")) {
          KernelInfo k;
          k.func = fn;
          auto readDims = [&](StringRef name, int32_t *out) {
            if (auto a = fn->getAttrOfType<DenseI32ArrayAttr>(name))
              for (auto [i, v] : llvm::enumerate(a.asArrayRef()))
                if (i < 3)
                  out[i] = v;
          };
          readDims("nvvm.reqntid", k.knownBlock);
          readDims("gpu.known_block_size", k.knownBlock);
          readDims("gpu.known_grid_size", k.knownGrid);
          kernels.push_back(k);
        }
      }
    }
    gm.erase();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// 2. Shared segment layout
//===----------------------------------------------------------------------===//

/// Places the addr_space 3 globals: static ones in order of appearance, each
/// aligned and followed by a red zone; the dynamic (zero-sized) ones all at
/// the end, 16-byte aligned, as CUDA places dynamic after static memory.
LogicalResult HostRewrite::layoutShared() {
  DataLayout dl(module);
  uint64_t offset = 0;
  std::vector<LLVM::GlobalOp> dynamic;
  for (auto g : module.getOps<LLVM::GlobalOp>()) {
    if (g.getAddrSpace() != kSharedAS)
      continue;
    uint64_t size = dl.getTypeSize(g.getGlobalType());
    if (size == 0) {
      dynamic.push_back(g);
      continue;
    }
    uint64_t align =
        std::max<uint64_t>({g.getAlignment().value_or(0),
                            dl.getTypeABIAlignment(g.getGlobalType()), 16});
    offset = llvm::alignTo(offset, align);
    sharedIndex[g.getSymName()] = int32_t(shared.size());
    shared.push_back({g.getSymName().str(), offset, size});
    offset += size + config.sharedRedZone;
  }
  offset = llvm::alignTo(offset, 16);
  staticSharedBytes = offset;
  for (LLVM::GlobalOp g : dynamic) {
    sharedIndex[g.getSymName()] = int32_t(shared.size());
    shared.push_back({g.getSymName().str(), offset, KVOPT_SIMT_DYNAMIC_SIZE});
  }
  return success();
}

//===----------------------------------------------------------------------===//
// 3. Operation counting and memory instrumentation
//===----------------------------------------------------------------------===//

/// Records the number of executed operations of every device block, before
/// any instrumentation is added (constants and addresses are not counted:
/// they execute nothing).
void HostRewrite::countBlockOps() {
  for (Operation *fn : deviceFuncs)
    for (Block &block : cast<LLVM::LLVMFuncOp>(fn).getBody()) {
      int64_t n = 0;
      for (Operation &op : block)
        if (!isMaterialization(&op))
          ++n;
      if (n)
        blockOps[&block] = n;
    }
}

/// Classifies a pointer by its address space, tracing generic pointers back
/// through GEPs and casts; also returns the shared variable it derives from
/// (-1 if unknown).
std::pair<Space, int32_t> HostRewrite::classify(Value ptr) const {
  Space space = Space::Generic;
  switch (addressSpace(ptr)) {
  case kGlobalAS:
  case kConstantAS:
    return {Space::Global, -1};
  case kPrivateAS:
    return {Space::Private, -1};
  case kSharedAS:
    space = Space::Shared;
    break;
  default:
    break;
  }
  Value v = ptr;
  while (true) {
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      // Pointer arguments of a kernel are global memory; anything else
      // (device-function arguments, loop-carried pointers) is generic.
      Block *owner = arg.getOwner();
      auto fn = dyn_cast<LLVM::LLVMFuncOp>(owner->getParentOp());
      bool kernelArg = fn && owner->isEntryBlock() &&
                       llvm::any_of(kernels, [&](const KernelInfo &k) {
                         return k.func == fn;
                       });
      if (space == Space::Generic && kernelArg)
        return {Space::Global, -1};
      return {space, -1};
    }
    Operation *def = v.getDefiningOp();
    if (auto gep = dyn_cast<LLVM::GEPOp>(def)) {
      v = gep.getBase();
      continue;
    }
    if (auto cast = dyn_cast<LLVM::AddrSpaceCastOp>(def)) {
      v = cast.getArg();
      if (space == Space::Generic) {
        unsigned as = addressSpace(v);
        if (as == kSharedAS)
          space = Space::Shared;
        else if (as == kGlobalAS || as == kConstantAS)
          return {Space::Global, -1};
        else if (as == kPrivateAS)
          return {Space::Private, -1};
      }
      continue;
    }
    if (isa<LLVM::AllocaOp>(def))
      return {Space::Private, -1};
    if (auto addr = dyn_cast<LLVM::AddressOfOp>(def)) {
      auto it = sharedIndex.find(addr.getGlobalName());
      if (it != sharedIndex.end())
        return {Space::Shared, it->second};
      return {space == Space::Shared ? Space::Shared : Space::Global, -1};
    }
    return {space, -1};
  }
}

/// Routes the access through its hook: `addr = hook(addr, bytes, site...)`.
void HostRewrite::instrumentAccess(Operation *op, OpOperand &addr,
                                   Type valueType, bool store, bool atomic) {
  auto [space, var] = classify(addr.get());
  if (space == Space::Private)
    return;
  if (space == Space::Shared ? !config.instrumentShared
                             : !config.instrumentGlobal)
    return;
  OpBuilder b(op);
  Location loc = op->getLoc();
  MLIRContext *ctx = op->getContext();
  auto ptr0 = LLVM::LLVMPointerType::get(ctx);
  Type ptrType = addr.get().getType();
  DataLayout dl = DataLayout::closest(op);
  uint64_t bytes = dl.getTypeSize(valueType);
  // A vector access touches its elements only; the data layout's size of a
  // vector is rounded up to a power-of-two element count (its allocation
  // size: 128 bytes for vector<18xf32>, which reads 72).
  if (auto vt = dyn_cast<VectorType>(valueType))
    bytes = (vt.getNumElements() *
                 dl.getTypeSizeInBits(vt.getElementType()).getFixedValue() +
             7) /
            8;

  StringRef kind = atomic ? "atomic" : store ? "store" : "load";
  int32_t site = sites.add(op, (kind + " " +
                                (space == Space::Shared   ? "shared"
                                 : space == Space::Global ? "global"
                                                          : "generic"))
                                   .str());
  Value p = addr.get();
  if (ptrType != ptr0)
    p = LLVM::AddrSpaceCastOp::create(b, loc, ptr0, p);
  SmallVector<Value> args = {p, rt.i64(b, loc, int64_t(bytes)),
                             rt.i32(b, loc, site)};
  StringRef hook;
  if (atomic) {
    hook = "__kv_simt_atomic";
    unsigned s = space == Space::Shared   ? KVOPT_SIMT_SPACE_SHARED
                 : space == Space::Global ? KVOPT_SIMT_SPACE_GLOBAL
                                          : KVOPT_SIMT_SPACE_GENERIC;
    args.push_back(rt.i32(b, loc, s));
    args.push_back(rt.i32(b, loc, var));
  } else if (space == Space::Shared) {
    hook = store ? "__kv_simt_st_shared" : "__kv_simt_ld_shared";
    args.push_back(rt.i32(b, loc, var));
  } else if (space == Space::Global) {
    hook = store ? "__kv_simt_st_global" : "__kv_simt_ld_global";
  } else {
    hook = store ? "__kv_simt_st_generic" : "__kv_simt_ld_generic";
  }
  Value r = rt.call(b, loc, hook, ptr0, args).getResult();
  if (ptrType != ptr0)
    r = LLVM::AddrSpaceCastOp::create(b, loc, ptrType, r);
  addr.set(r);
}

void HostRewrite::instrumentMemory() {
  SmallVector<Operation *> accesses;
  for (Operation *fn : deviceFuncs)
    fn->walk([&](Operation *op) {
      if (isa<LLVM::LoadOp, LLVM::StoreOp, LLVM::AtomicRMWOp,
              LLVM::AtomicCmpXchgOp>(op))
        accesses.push_back(op);
    });
  for (Operation *op : accesses) {
    if (auto load = dyn_cast<LLVM::LoadOp>(op))
      instrumentAccess(op, load.getAddrMutable(), load.getType(), false, false);
    else if (auto st = dyn_cast<LLVM::StoreOp>(op))
      instrumentAccess(op, st.getAddrMutable(), st.getValue().getType(), true,
                       false);
    else if (auto rmw = dyn_cast<LLVM::AtomicRMWOp>(op))
      instrumentAccess(op, rmw.getPtrMutable(), rmw.getVal().getType(), true,
                       true);
    else if (auto cx = dyn_cast<LLVM::AtomicCmpXchgOp>(op))
      instrumentAccess(op, cx.getPtrMutable(), cx.getVal().getType(), true,
                       true);
  }
}

/// `__kv_simt_ops += n` at the start of every counted block.
void HostRewrite::insertOpCounters() {
  MLIRContext *ctx = module.getContext();
  auto ptr0 = LLVM::LLVMPointerType::get(ctx);
  auto i64 = IntegerType::get(ctx, 64);
  if (!module.lookupSymbol("__kv_simt_ops")) {
    OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
    LLVM::GlobalOp::create(b, module.getLoc(), i64, /*isConstant=*/false,
                           LLVM::Linkage::External, "__kv_simt_ops",
                           Attribute());
  }
  for (auto [block, n] : blockOps) {
    OpBuilder b = OpBuilder::atBlockBegin(block);
    Location loc = block->getParentOp()->getLoc();
    Value addr = LLVM::AddressOfOp::create(b, loc, ptr0, "__kv_simt_ops");
    Value old = LLVM::LoadOp::create(b, loc, i64, addr);
    Value sum = LLVM::AddOp::create(b, loc, old, rt.i64(b, loc, n));
    LLVM::StoreOp::create(b, loc, sum, addr);
  }
}

//===----------------------------------------------------------------------===//
// 4. nvvm ops
//===----------------------------------------------------------------------===//

LogicalResult HostRewrite::lowerNVVM() {
  SmallVector<Operation *> ops;
  module.walk([&](Operation *op) {
    if (op->getDialect() && op->getDialect()->getNamespace() == "nvvm")
      ops.push_back(op);
  });
  for (Operation *op : ops) {
    const NVVMMapping *m = lookupNVVMMapping(op->getName().getStringRef());
    if (!m)
      return op->emitError() << "kv-simt-emulate: no SIMT runtime mapping for '"
                             << op->getName() << "'";
    if (failed(lowerNVVMOp(op, *m, rt, sites)))
      return failure();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// 5. Shared globals, address spaces, attributes
//===----------------------------------------------------------------------===//

/// Replaces `llvm.mlir.addressof @shared` by `smem_base() + offset` and
/// erases the shared globals.
void HostRewrite::replaceSharedGlobals() {
  SmallVector<LLVM::AddressOfOp> uses;
  module.walk([&](LLVM::AddressOfOp op) {
    if (sharedIndex.count(op.getGlobalName()))
      uses.push_back(op);
  });
  MLIRContext *ctx = module.getContext();
  auto ptr0 = LLVM::LLVMPointerType::get(ctx);
  for (LLVM::AddressOfOp op : uses) {
    OpBuilder b(op);
    Location loc = op.getLoc();
    const SharedVar &v = shared[sharedIndex[op.getGlobalName()]];
    Value base = rt.call(b, loc, "__kv_simt_smem_base", ptr0, {},
                         /*pure=*/true)
                     .getResult();
    Value p = LLVM::GEPOp::create(b, loc, ptr0, b.getI8Type(), base,
                                  ArrayRef<LLVM::GEPArg>{int32_t(v.offset)});
    if (op.getType() != ptr0)
      p = LLVM::AddrSpaceCastOp::create(b, loc, op.getType(), p);
    op.getResult().replaceAllUsesWith(p);
    op.erase();
  }
  for (auto g : llvm::make_early_inc_range(module.getOps<LLVM::GlobalOp>()))
    if (sharedIndex.count(g.getSymName()))
      g.erase();
}

void HostRewrite::eraseAddressSpaces() {
  MLIRContext *ctx = module.getContext();
  AttrTypeReplacer replacer;
  replacer.addReplacement(
      [ctx](LLVM::LLVMPointerType t) -> std::optional<Type> {
        if (t.getAddressSpace() == 0)
          return std::nullopt;
        return LLVM::LLVMPointerType::get(ctx);
      });
  replacer.recursivelyReplaceElementsIn(module, /*replaceAttrs=*/true,
                                        /*replaceLocs=*/false,
                                        /*replaceTypes=*/true);
  for (auto fn : module.getOps<LLVM::LLVMFuncOp>())
    fn.setFunctionType(
        cast<LLVM::LLVMFunctionType>(replacer.replace(fn.getFunctionType())));
  for (auto g : module.getOps<LLVM::GlobalOp>())
    if (g.getAddrSpace())
      g.setAddrSpace(0);
  // Casts between what are now the same types are no-ops.
  SmallVector<LLVM::AddrSpaceCastOp> casts;
  module.walk([&](LLVM::AddrSpaceCastOp op) { casts.push_back(op); });
  for (LLVM::AddrSpaceCastOp op : casts) {
    if (op.getArg().getType() != op.getType())
      continue;
    op.getResult().replaceAllUsesWith(op.getArg());
    op.erase();
  }
}

/// Drops gpu.* and nvvm.* function and argument attributes: they describe
/// the device (launch bounds, kernel calling convention) and mean nothing
/// on the host.
void HostRewrite::stripGPUAttributes() {
  auto isDeviceAttr = [](StringRef name) {
    return name.starts_with("gpu.") || name.starts_with("nvvm.");
  };
  for (Operation *op : deviceFuncs) {
    auto fn = cast<LLVM::LLVMFuncOp>(op);
    for (NamedAttribute a : llvm::to_vector(fn->getAttrs()))
      if (isDeviceAttr(a.getName().getValue()))
        fn->removeAttr(a.getName());
    for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i)
      if (DictionaryAttr attrs = fn.getArgAttrDict(i))
        for (NamedAttribute a : attrs.getValue())
          if (isDeviceAttr(a.getName().getValue()))
            fn.removeArgAttr(i, a.getName());
  }
}

//===----------------------------------------------------------------------===//
// 6. Tables, descriptors and entry points
//===----------------------------------------------------------------------===//

/// The address of a new internal constant holding `value` + NUL.
Value HostRewrite::globalString(OpBuilder &b, Location loc, StringRef value) {
  MLIRContext *ctx = module.getContext();
  std::string name = "__kv_simt_str_" + std::to_string(stringCounter++);
  std::string bytes = value.str();
  bytes.push_back('\0');
  auto type = LLVM::LLVMArrayType::get(IntegerType::get(ctx, 8), bytes.size());
  OpBuilder gb = OpBuilder::atBlockEnd(module.getBody());
  LLVM::GlobalOp::create(gb, module.getLoc(), type, /*isConstant=*/true,
                         LLVM::Linkage::Internal, name,
                         StringAttr::get(ctx, bytes));
  return LLVM::AddressOfOp::create(b, loc, LLVM::LLVMPointerType::get(ctx),
                                   name);
}

void HostRewrite::emitTablesAndEntries() {
  MLIRContext *ctx = module.getContext();
  Location loc = module.getLoc();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto i32 = IntegerType::get(ctx, 32);
  auto i64 = IntegerType::get(ctx, 64);
  OpBuilder top = OpBuilder::atBlockEnd(module.getBody());

  // Builds an internal or external constant global whose initializer region
  // is filled by `body`, which returns the value.
  auto makeGlobal = [&](StringRef name, Type type, LLVM::Linkage linkage,
                        function_ref<Value(OpBuilder &)> body) {
    auto g = LLVM::GlobalOp::create(top, loc, type, /*isConstant=*/true,
                                    linkage, name, Attribute());
    Block *block = new Block();
    g.getInitializerRegion().push_back(block);
    OpBuilder b = OpBuilder::atBlockBegin(block);
    LLVM::ReturnOp::create(b, loc, body(b));
    return g;
  };

  // Site locations: one string each, gathered in an array of pointers.
  ArrayRef<std::string> siteNames = sites.names();
  auto sitesType = LLVM::LLVMArrayType::get(ptr, siteNames.size());
  if (!siteNames.empty())
    makeGlobal("__kv_simt_sites", sitesType, LLVM::Linkage::Internal,
               [&](OpBuilder &b) {
                 Value a = LLVM::UndefOp::create(b, loc, sitesType);
                 for (auto [i, s] : llvm::enumerate(siteNames))
                   a = LLVM::InsertValueOp::create(
                       b, loc, a, globalString(b, loc, s),
                       ArrayRef<int64_t>{int64_t(i)});
                 return a;
               });

  // Shared variables: {name, offset, size}.
  auto varType = LLVM::LLVMStructType::getLiteral(ctx, {ptr, i64, i64});
  auto varsType = LLVM::LLVMArrayType::get(varType, shared.size());
  if (!shared.empty())
    makeGlobal("__kv_simt_shared_vars", varsType, LLVM::Linkage::Internal,
               [&](OpBuilder &b) {
                 Value a = LLVM::UndefOp::create(b, loc, varsType);
                 for (auto [i, v] : llvm::enumerate(shared)) {
                   int64_t idx = int64_t(i);
                   a = LLVM::InsertValueOp::create(b, loc, a,
                                                   globalString(b, loc, v.name),
                                                   ArrayRef<int64_t>{idx, 0});
                   a = LLVM::InsertValueOp::create(
                       b, loc, a, rt.i64(b, loc, int64_t(v.offset)),
                       ArrayRef<int64_t>{idx, 1});
                   a = LLVM::InsertValueOp::create(
                       b, loc, a, rt.i64(b, loc, int64_t(v.size)),
                       ArrayRef<int64_t>{idx, 2});
                 }
                 return a;
               });

  auto dimsType = LLVM::LLVMArrayType::get(i32, 3);
  auto descType = LLVM::LLVMStructType::getLiteral(
      ctx, {i32, i32, ptr, ptr, ptr, i64, i64, ptr, i64, dimsType, dimsType});
  for (const KernelInfo &k : kernels) {
    LLVM::LLVMFuncOp fn = k.func;
    std::string name = fn.getSymName().str();
    unsigned numParams = fn.getNumArguments();

    // K_emu_packed(void **params): params[i] points at argument i.
    auto packedType =
        LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {ptr});
    auto packed = LLVM::LLVMFuncOp::create(
        top, fn.getLoc(), name + KVOPT_SIMT_PACKED_SUFFIX, packedType);
    Block *entry = packed.addEntryBlock(top);
    OpBuilder b = OpBuilder::atBlockBegin(entry);
    SmallVector<Value> args;
    for (unsigned i = 0; i < numParams; ++i) {
      Value slot =
          LLVM::GEPOp::create(b, fn.getLoc(), ptr, ptr, entry->getArgument(0),
                              ArrayRef<LLVM::GEPArg>{int32_t(i)});
      Value argPtr = LLVM::LoadOp::create(b, fn.getLoc(), ptr, slot);
      args.push_back(LLVM::LoadOp::create(b, fn.getLoc(),
                                          fn.getArgumentTypes()[i], argPtr));
    }
    LLVM::CallOp::create(b, fn.getLoc(), fn, args);
    LLVM::ReturnOp::create(b, fn.getLoc(), ValueRange());

    makeGlobal(name + KVOPT_SIMT_DESC_SUFFIX, descType, LLVM::Linkage::External,
               [&](OpBuilder &b) {
                 Value d = LLVM::UndefOp::create(b, loc, descType);
                 auto set = [&](Value v, ArrayRef<int64_t> pos) {
                   d = LLVM::InsertValueOp::create(b, loc, d, v, pos);
                 };
                 auto null = [&] { return LLVM::ZeroOp::create(b, loc, ptr); };
                 set(rt.i32(b, loc, KVOPT_SIMT_ABI_VERSION), {0});
                 set(rt.i32(b, loc, numParams), {1});
                 set(globalString(b, loc, name), {2});
                 set(LLVM::AddressOfOp::create(b, loc, packed), {3});
                 set(shared.empty() ? Value(null())
                                    : LLVM::AddressOfOp::create(
                                          b, loc, ptr, "__kv_simt_shared_vars"),
                     {4});
                 set(rt.i64(b, loc, int64_t(shared.size())), {5});
                 set(rt.i64(b, loc, int64_t(staticSharedBytes)), {6});
                 set(siteNames.empty() ? Value(null())
                                       : LLVM::AddressOfOp::create(
                                             b, loc, ptr, "__kv_simt_sites"),
                     {7});
                 set(rt.i64(b, loc, int64_t(siteNames.size())), {8});
                 for (int64_t i = 0; i < 3; ++i) {
                   set(rt.i32(b, loc, k.knownBlock[i]), {9, i});
                   set(rt.i32(b, loc, k.knownGrid[i]), {10, i});
                 }
                 return d;
               });
  }
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

LogicalResult HostRewrite::run() {
  if (failed(hoistGPUModules()) || failed(layoutShared()))
    return failure();
  countBlockOps();
  instrumentMemory();
  if (failed(lowerNVVM()))
    return failure();
  if (config.countOps)
    insertOpCounters();
  replaceSharedGlobals();
  eraseAddressSpaces();
  stripGPUAttributes();
  emitTablesAndEntries();
  return success();
}

namespace {
class SIMTEmulatePass : public kvopt::impl::SIMTEmulateBase<SIMTEmulatePass> {
public:
  using SIMTEmulateBase::SIMTEmulateBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    HostRewrite rewrite(
        module, {countOps, instrumentGlobal, instrumentShared, sharedRedZone});
    if (failed(rewrite.run()))
      return signalPassFailure();
    module->setAttr(LLVM::LLVMDialect::getTargetTripleAttrName(),
                    StringAttr::get(module.getContext(), targetTriple));
  }
};
} // namespace
