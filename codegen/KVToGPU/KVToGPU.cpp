//===- KVToGPU.cpp - kv-gpu-kernels and the kv-lower-to-gpu pipeline ------===//
//
// Collects the kv.attention ops of a module, derives each one's decode
// configuration and schedule, and emits one kernel pair per configuration.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"
#include "kvopt/Codegen/KVToGPU/Bundle.h"
#include "kvopt/Codegen/KVToGPU/Passes.h"

#include "kvopt/Dialect/KV/KVOps.h"

#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/raw_ostream.h"

namespace kvopt {
#define GEN_PASS_DEF_KVGPUKERNELS
#include "kvopt/Codegen/KVToGPU/Passes.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;

static constexpr llvm::StringLiteral kModuleName = "kv_gpu";

namespace {

/// The paged layout of the K/V cache `cache` read or written by `op` with
/// `blockTable`, or a diagnostic on `op`.
FailureOr<gpugen::PagedLayout> kvLayoutOf(Operation *op, Value cache,
                                          Value blockTable) {
  auto emitError = [&] { return op->emitOpError(); };
  auto type = dyn_cast<kv::CacheType>(cache.getType());
  if (!type)
    return op->emitOpError("GPU kernels for latent caches are not generated "
                           "by kv-gpu-kernels");
  auto layout = gpugen::computePagedLayout(type, emitError);
  if (failed(layout))
    return failure();
  if (!blockTable)
    return op->emitOpError("a paged cache needs its block table");
  return layout;
}

/// The decode configuration of `op`, or a diagnostic on it.
FailureOr<gpugen::DecodeConfig> decodeConfigOf(kv::AttentionOp op) {
  auto layout = kvLayoutOf(op, op.getCache(), op.getBlockTable());
  if (failed(layout))
    return failure();
  auto qt = cast<RankedTensorType>(op.getQueries().getType());
  if (qt.isDynamicDim(1) || qt.isDynamicDim(2) || qt.isDynamicDim(3))
    return op.emitOpError("GPU decode needs static query heads, query "
                          "length and head dim");
  gpugen::DecodeConfig cfg;
  cfg.layout = *layout;
  cfg.groupSize = op.getGroupSize();
  cfg.queryLen = qt.getDimSize(2);
  cfg.queryType = qt.getElementType();
  cfg.outputType = op.getOutput().getType().getElementType();
  cfg.scale = op.getScaleOrDefault();
  cfg.causal = op.getCausal();
  cfg.window = op.getWindow().value_or(0);
  cfg.sinks = op.getSinks().value_or(0);
  return cfg;
}

/// A string naming everything a decode kernel is specialized on.
std::string configKey(const gpugen::DecodeConfig &c, kv::CacheType cache) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << cache << "|" << c.groupSize << "|" << c.queryLen << "|" << c.queryType
     << "|" << c.outputType << "|" << c.scale << "|" << c.causal << "|"
     << c.window << "|" << c.sinks;
  return s;
}

/// The append configuration of `op`, or a diagnostic on it.
FailureOr<gpugen::AppendConfig> appendConfigOf(kv::AppendOp op) {
  auto layout = kvLayoutOf(op, op.getCache(), op.getBlockTable());
  if (failed(layout))
    return failure();
  if (!op.getValues())
    return op.emitOpError("GPU append of a K/V cache needs the new values");
  auto kt = cast<RankedTensorType>(op.getKeys().getType());
  auto vt = cast<RankedTensorType>(op.getValues().getType());
  if (kt.isDynamicDim(2) || vt.isDynamicDim(2))
    return op.emitOpError("GPU append needs a static number of new tokens");
  for (Type t : {kt.getElementType(), vt.getElementType()})
    if (!t.isF16() && !t.isBF16() && !t.isF32())
      return op.emitOpError("GPU append reads f16, bf16 or f32 rows (got ")
             << t << ")";
  gpugen::AppendConfig cfg;
  cfg.layout = *layout;
  cfg.tokens = kt.getDimSize(2);
  cfg.keyInput = kt.getElementType();
  cfg.valueInput = vt.getElementType();
  cfg.ropeTheta = op.getRopeTheta() ? op.getRopeTheta()->convertToDouble() : 0;
  return cfg;
}

struct KVGPUKernelsPass
    : public kvopt::impl::KVGPUKernelsBase<KVGPUKernelsPass> {
  using KVGPUKernelsBase::KVGPUKernelsBase;

  void runOnOperation() override;

private:
  /// The decode + merge kernels of `op` (built once per configuration in
  /// `built`), or null after a diagnostic.
  ArrayAttr buildAttention(kv::AttentionOp op, const gpugen::TargetInfo &target,
                           llvm::StringMap<ArrayAttr> &built,
                           llvm::function_ref<std::string(StringRef)> freshName,
                           llvm::function_ref<Attribute(StringRef)> ref);
  /// The tensor-core prefill kernel of `op` (configuration `cfg`).
  ArrayAttr buildPrefill(kv::AttentionOp op, const gpugen::TargetInfo &target,
                         const gpugen::DecodeConfig &cfg,
                         llvm::StringMap<ArrayAttr> &built,
                         llvm::function_ref<std::string(StringRef)> freshName,
                         llvm::function_ref<Attribute(StringRef)> ref);
  /// The MLA decode + merge kernels of `op`, likewise.
  ArrayAttr buildMLA(kv::MLAAttentionOp op, const gpugen::TargetInfo &target,
                     llvm::StringMap<ArrayAttr> &built,
                     llvm::function_ref<std::string(StringRef)> freshName,
                     llvm::function_ref<Attribute(StringRef)> ref);
  /// The append kernel of `op`, likewise.
  ArrayAttr buildAppend(kv::AppendOp op, const gpugen::TargetInfo &target,
                        llvm::StringMap<ArrayAttr> &built,
                        llvm::function_ref<std::string(StringRef)> freshName,
                        llvm::function_ref<Attribute(StringRef)> ref);
};

void KVGPUKernelsPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *ctx = &getContext();
  auto target = gpugen::getTargetInfo(chip);
  if (!target) {
    module.emitError() << "kv-gpu-kernels: unknown chip '" << chip
                       << "' (expected sm_80 or sm_90)";
    return signalPassFailure();
  }
  SmallVector<Operation *> ops;
  module.walk([&](Operation *op) {
    if (isa<kv::AttentionOp, kv::MLAAttentionOp, kv::AppendOp>(op))
      ops.push_back(op);
  });

  mlir::gpu::GPUModuleOp gm;
  auto getModule = [&] {
    if (gm)
      return gm;
    gm = module.lookupSymbol<mlir::gpu::GPUModuleOp>(kModuleName);
    if (!gm) {
      OpBuilder b(ctx);
      b.setInsertionPointToEnd(module.getBody());
      gm = mlir::gpu::GPUModuleOp::create(b, module.getLoc(), kModuleName);
    }
    module->setAttr(mlir::gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(ctx));
    return gm;
  };
  // The first free `<family>_<n>` name of the kernel module.
  llvm::StringMap<unsigned> counters;
  auto freshName = [&](StringRef family) {
    auto module = getModule();
    unsigned &n = counters[family];
    std::string name;
    do
      name = (family + "_" + Twine(n++)).str();
    while (module.lookupSymbol(name));
    return name;
  };
  auto ref = [&](StringRef k) -> Attribute {
    return SymbolRefAttr::get(ctx, kModuleName,
                              {FlatSymbolRefAttr::get(ctx, k)});
  };

  llvm::StringMap<ArrayAttr> built;
  bool failedAny = false;
  for (Operation *op : ops) {
    ArrayAttr kernels;
    if (auto attention = dyn_cast<kv::AttentionOp>(op))
      kernels = buildAttention(attention, *target, built, freshName, ref);
    else if (auto mla = dyn_cast<kv::MLAAttentionOp>(op))
      kernels = buildMLA(mla, *target, built, freshName, ref);
    else
      kernels =
          buildAppend(cast<kv::AppendOp>(op), *target, built, freshName, ref);
    if (!kernels) {
      failedAny = true;
      continue;
    }
    op->setAttr("kv.gpu_kernels", kernels);
  }
  if (failedAny)
    return signalPassFailure();
  if (kernelsOnly) {
    for (Operation &op : llvm::make_early_inc_range(*module.getBody()))
      if (!isa<mlir::gpu::GPUModuleOp>(op))
        op.erase();
  }
}

ArrayAttr KVGPUKernelsPass::buildAttention(
    kv::AttentionOp op, const gpugen::TargetInfo &target,
    llvm::StringMap<ArrayAttr> &built,
    llvm::function_ref<std::string(StringRef)> freshName,
    llvm::function_ref<Attribute(StringRef)> ref) {
  auto cfg = decodeConfigOf(op);
  if (failed(cfg))
    return {};
  // Many query rows per KV head (prefill, chunked prefill) take the
  // tensor-core kernel when it covers the configuration; so do fewer rows
  // whose decode accumulators would not fit. Otherwise the decode kernel,
  // whose diagnostic then says why prefill was not used.
  std::string noPrefill;
  bool prefillFits;
  {
    ScopedDiagnosticHandler capture(op->getContext(), [&](Diagnostic &d) {
      noPrefill = d.str();
      return success();
    });
    prefillFits = succeeded(gpugen::checkPrefillConfig(
        target, *cfg, [&] { return mlir::emitError(op.getLoc()); }));
  }
  if (prefillFits && cfg->rows() >= target.prefillMinRows)
    return buildPrefill(op, target, *cfg, built, freshName, ref);
  FailureOr<gpugen::DecodeSchedule> sched = failure();
  {
    ScopedDiagnosticHandler quiet(op->getContext(),
                                  [](Diagnostic &) { return success(); });
    sched = gpugen::chooseDecodeSchedule(
        target, *cfg, [&] { return mlir::emitError(op.getLoc()); });
  }
  if (failed(sched) && prefillFits)
    return buildPrefill(op, target, *cfg, built, freshName, ref);
  if (failed(sched)) {
    // Again, reported this time.
    (void)gpugen::chooseDecodeSchedule(target, *cfg, [&] {
      InFlightDiagnostic d = op.emitOpError();
      if (!noPrefill.empty())
        d.attachNote() << "no tensor-core prefill for " << cfg->rows()
                       << " query rows: " << noPrefill;
      return d;
    });
    return {};
  }
  std::string key =
      configKey(*cfg, cast<kv::CacheType>(op.getCache().getType()));
  auto it = built.find(key);
  if (it != built.end())
    return it->second;
  std::string decode = freshName("decode"), merge = freshName("merge");
  auto module =
      op->getParentOfType<ModuleOp>().lookupSymbol<mlir::gpu::GPUModuleOp>(
          kModuleName);
  auto dk = gpugen::buildDecodeKernel(module, decode, *cfg, *sched);
  auto mk = gpugen::buildMergeKernel(
      module, merge, cfg->layout.headDim, cfg->outputType, sched->maxSplits,
      gpugen::mergeThreads(target, cfg->layout.headDim));
  // Launch grids as manifest rules over the kernel ABI's arguments:
  // decode (splits, kv_heads, batch = seq_lens' size), merge
  // (Hq * Tq, batch = lse's size / (Hq * Tq)).
  int64_t rows = cfg->layout.kvHeads * cfg->rows();
  gpugen::setLaunchGrid(dk, {gpugen::GridDim::ofArg("splits"),
                             gpugen::GridDim::constant(cfg->layout.kvHeads),
                             gpugen::GridDim::ofArg("seq_lens_size")});
  gpugen::setLaunchGrid(mk, {gpugen::GridDim::constant(rows),
                             gpugen::GridDim::ofArg("lse_size", rows)});
  return built[key] =
             ArrayAttr::get(op->getContext(), {ref(decode), ref(merge)});
}

ArrayAttr KVGPUKernelsPass::buildPrefill(
    kv::AttentionOp op, const gpugen::TargetInfo &target,
    const gpugen::DecodeConfig &cfg, llvm::StringMap<ArrayAttr> &built,
    llvm::function_ref<std::string(StringRef)> freshName,
    llvm::function_ref<Attribute(StringRef)> ref) {
  std::string key =
      "prefill|" + configKey(cfg, cast<kv::CacheType>(op.getCache().getType()));
  auto it = built.find(key);
  if (it != built.end())
    return it->second;
  std::string name = freshName("prefill");
  auto module =
      op->getParentOfType<ModuleOp>().lookupSymbol<mlir::gpu::GPUModuleOp>(
          kModuleName);
  auto pk = gpugen::buildPrefillKernel(module, name, target, cfg);
  int64_t rowBlocks =
      (cfg.rows() + 16 * target.prefillWarpsFor(cfg.layout.headDim) - 1) /
      (16 * target.prefillWarpsFor(cfg.layout.headDim));
  gpugen::setLaunchGrid(pk, {gpugen::GridDim::constant(rowBlocks),
                             gpugen::GridDim::constant(cfg.layout.kvHeads),
                             gpugen::GridDim::ofArg("seq_lens_size")});
  return built[key] = ArrayAttr::get(op->getContext(), {ref(name)});
}

ArrayAttr
KVGPUKernelsPass::buildMLA(kv::MLAAttentionOp op,
                           const gpugen::TargetInfo &target,
                           llvm::StringMap<ArrayAttr> &built,
                           llvm::function_ref<std::string(StringRef)> freshName,
                           llvm::function_ref<Attribute(StringRef)> ref) {
  auto emitError = [&] { return op.emitOpError(); };
  auto cache = cast<kv::LatentCacheType>(op.getCache().getType());
  auto cfg = gpugen::computeLatentLayout(cache, emitError);
  if (failed(cfg))
    return {};
  if (!op.getBlockTable()) {
    op.emitOpError("a paged cache needs its block table");
    return {};
  }
  auto qt = cast<RankedTensorType>(op.getQLatent().getType());
  auto rt = cast<RankedTensorType>(op.getQRope().getType());
  if (qt.isDynamicDim(1) || qt.isDynamicDim(2)) {
    op.emitOpError("GPU MLA decode needs static query heads and query "
                   "length");
    return {};
  }
  if (qt.getElementType() != rt.getElementType()) {
    op.emitOpError("GPU MLA decode needs one element type for q_latent and "
                   "q_rope");
    return {};
  }
  cfg->heads = qt.getDimSize(1);
  cfg->queryLen = qt.getDimSize(2);
  cfg->queryType = qt.getElementType();
  cfg->outputType = op.getOutput().getType().getElementType();
  cfg->scale = op.getScale().convertToFloat();
  cfg->causal = op.getCausal();
  auto sched = gpugen::chooseMLADecodeSchedule(target, *cfg, emitError);
  if (failed(sched))
    return {};
  std::string key;
  {
    llvm::raw_string_ostream os(key);
    os << "mla|" << cache << "|" << cfg->heads << "|" << cfg->queryLen << "|"
       << cfg->queryType << "|" << cfg->outputType << "|" << cfg->scale << "|"
       << cfg->causal;
  }
  auto it = built.find(key);
  if (it != built.end())
    return it->second;
  std::string decode = freshName("mla_decode"), merge = freshName("merge");
  auto module =
      op->getParentOfType<ModuleOp>().lookupSymbol<mlir::gpu::GPUModuleOp>(
          kModuleName);
  auto dk = gpugen::buildMLADecodeKernel(module, decode, *cfg, *sched);
  auto mk = gpugen::buildMergeKernel(
      module, merge, cfg->latentDim, cfg->outputType, sched->maxSplits,
      gpugen::mergeThreads(target, cfg->latentDim));
  int64_t rows = cfg->rows();
  gpugen::setLaunchGrid(dk, {gpugen::GridDim::ofArg("splits"),
                             gpugen::GridDim::constant(sched->rowBlocks(rows)),
                             gpugen::GridDim::ofArg("seq_lens_size")});
  gpugen::setLaunchGrid(mk, {gpugen::GridDim::constant(rows),
                             gpugen::GridDim::ofArg("lse_size", rows)});
  return built[key] =
             ArrayAttr::get(op->getContext(), {ref(decode), ref(merge)});
}

ArrayAttr KVGPUKernelsPass::buildAppend(
    kv::AppendOp op, const gpugen::TargetInfo &target,
    llvm::StringMap<ArrayAttr> &built,
    llvm::function_ref<std::string(StringRef)> freshName,
    llvm::function_ref<Attribute(StringRef)> ref) {
  auto cfg = appendConfigOf(op);
  if (failed(cfg))
    return {};
  auto sched = gpugen::chooseAppendSchedule(target, *cfg,
                                            [&] { return op.emitOpError(); });
  if (failed(sched))
    return {};
  std::string key;
  {
    llvm::raw_string_ostream os(key);
    os << "append|" << op.getCache().getType() << "|" << cfg->tokens << "|"
       << cfg->keyInput << "|" << cfg->valueInput << "|" << cfg->ropeTheta;
  }
  auto it = built.find(key);
  if (it != built.end())
    return it->second;
  std::string name = freshName("append");
  auto module =
      op->getParentOfType<ModuleOp>().lookupSymbol<mlir::gpu::GPUModuleOp>(
          kModuleName);
  auto ak = gpugen::buildAppendKernel(module, name, *cfg, *sched);
  // grid (row blocks of the T x kv_heads new rows, batch = positions' size).
  gpugen::setLaunchGrid(ak, {gpugen::GridDim::constant(sched->blocks(
                                 cfg->tokens, cfg->layout.kvHeads)),
                             gpugen::GridDim::ofArg("positions_size")});
  return built[key] = ArrayAttr::get(op->getContext(), {ref(name)});
}

} // namespace

void kvopt::buildGPUToNVVMPipeline(OpPassManager &pm) {
  OpPassManager &g = pm.nest<mlir::gpu::GPUModuleOp>();
  g.addPass(createSCFToControlFlowPass());
  g.addPass(createConvertGpuOpsToNVVMOps());
  g.addPass(createCanonicalizerPass());
  g.addPass(createCSEPass());
  g.addPass(createReconcileUnrealizedCastsPass());
}

void kvopt::buildKVToGPUPipeline(OpPassManager &pm,
                                 const KVToGPUPipelineOptions &options) {
  KVGPUKernelsOptions k;
  k.chip = options.chip;
  k.kernelsOnly = options.kernelsOnly;
  pm.addPass(createKVGPUKernels(k));
  buildKernelsToPTXPipeline(pm, options.chip, options.toolkit);
}

void kvopt::buildKernelsToPTXPipeline(OpPassManager &pm, StringRef chip,
                                      StringRef toolkit) {
  buildGPUToNVVMPipeline(pm);
  GpuNVVMAttachTargetOptions attach;
  attach.chip = chip.str();
  pm.addPass(createGpuNVVMAttachTarget(attach));
  GpuModuleToBinaryPassOptions bin;
  bin.compilationTarget = "isa";
  bin.toolkitPath = toolkit.str();
  pm.addPass(createGpuModuleToBinaryPass(bin));
}

void kvopt::registerKVToGPUPasses() {
  registerPass([] { return createKVGPUKernels(); });
  PassPipelineRegistration<KVToGPUPipelineOptions>(
      "kv-lower-to-gpu",
      "kv-gpu-kernels, NVVM lowering of the kernels, nvvm-attach-target and "
      "gpu-module-to-binary{format=isa}: PTX for the chosen chip",
      buildKVToGPUPipeline);
}
