//===- KVToCPU.cpp - kv-cpu-to-loops and the kv-lower-to-cpu pipeline -----===//
//
// The conversion pass that turns caches into raw bytes and kv ops into
// kernel calls, and the pipeline that takes the result down to LLVM.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "kvopt/Codegen/KVToCPU/Passes.h"
#include "kvopt/Dialect/KV/KVDialect.h"

#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/AsyncToLLVM/AsyncToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Conversion/VectorToSCF/VectorToSCF.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Async/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/Transforms/FuncConversions.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Transforms/Passes.h"

namespace kvopt {
#define GEN_PASS_DEF_KVCPUTOLOOPS
#include "kvopt/Codegen/KVToCPU/Passes.h.inc"
namespace generated {
#define GEN_PASS_REGISTRATION
#include "kvopt/Codegen/KVToCPU/Passes.h.inc"
} // namespace generated
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::cpu;

namespace {
/// kv.share_cache reads the owner's bytes: the converted source itself.
struct ShareCacheLowering : OpConversionPattern<kv::ShareCacheOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(kv::ShareCacheOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, adaptor.getSource());
    return success();
  }
};

struct KVCPUToLoopsPass
    : public kvopt::impl::KVCPUToLoopsBase<KVCPUToLoopsPass> {
  using Base::Base;

  /// Reports an invalid option value, naming the option.
  LogicalResult checkOptions() {
    ModuleOp module = getOperation();
    if (splits < 0)
      return module.emitError()
             << "kv-cpu-to-loops: option 'kv-splits' must be >= 0, got "
             << splits.getValue();
    if (splitTokens < 1)
      return module.emitError()
             << "kv-cpu-to-loops: option 'split-tokens' must be >= 1, got "
             << splitTokens.getValue();
    if (blockTokens < 1 || blockTokens > 1024)
      return module.emitError() << "kv-cpu-to-loops: option 'block-tokens' "
                                   "must be in [1, 1024], got "
                                << blockTokens.getValue();
    if (vectorBits != 0 && vectorBits != 128 && vectorBits != 256 &&
        vectorBits != 512)
      return module.emitError() << "kv-cpu-to-loops: option 'vector-bits' "
                                   "must be 0, 128, 256 or 512, got "
                                << vectorBits.getValue();
    return success();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    if (failed(checkOptions()))
      return signalPassFailure();

    // The caller owns cache memory (the runtime's pages); an allocation
    // inside the module has no batch size to size it with.
    WalkResult walk = module.walk([](kv::AllocCacheOp op) {
      op.emitOpError("is not supported by the CPU lowering: pass the cache "
                     "in as a function argument (its bytes are laid out as "
                     "in docs/CacheLayout.md)");
      return WalkResult::interrupt();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();

    TypeConverter converter;
    converter.addConversion([](Type t) { return t; });
    converter.addConversion([ctx](kv::KVCacheTypeInterface) -> Type {
      return MemRefType::get({ShapedType::kDynamic}, IntegerType::get(ctx, 8));
    });
    auto materialize = [](OpBuilder &b, Type type, ValueRange inputs,
                          Location loc) -> Value {
      return UnrealizedConversionCastOp::create(b, loc, type, inputs)
          .getResult(0);
    };
    converter.addSourceMaterialization(materialize);
    converter.addTargetMaterialization(materialize);

    KernelOptions options;
    options.splits = splits;
    options.splitTokens = splitTokens;
    options.blockTokens = blockTokens;
    options.vectorBits = vectorBits ? vectorBits.getValue() : hostVectorBits();
    options.intDots = intDots;

    RewritePatternSet patterns(ctx);
    patterns.add<ShareCacheLowering>(converter, ctx);
    populateAttentionToCPUPatterns(converter, patterns, options);
    populateAppendToCPUPatterns(converter, patterns);
    populateQuantizeToCPUPatterns(converter, patterns);
    populateViewToCPUPatterns(converter, patterns);
    populateMLAToCPUPatterns(converter, patterns, options);
    populateFunctionOpInterfaceTypeConversionPattern<func::FuncOp>(patterns,
                                                                   converter);
    populateCallOpTypeConversionPattern(patterns, converter);
    populateReturnOpTypeConversionPattern(patterns, converter);

    ConversionTarget target(*ctx);
    target.addIllegalDialect<kv::KVDialect>();
    target.addLegalDialect<arith::ArithDialect,
                           bufferization::BufferizationDialect,
                           math::MathDialect, memref::MemRefDialect,
                           scf::SCFDialect, vector::VectorDialect>();
    target.addDynamicallyLegalOp<func::FuncOp>([&](func::FuncOp op) {
      return converter.isSignatureLegal(op.getFunctionType()) &&
             converter.isLegal(&op.getBody());
    });
    target.addDynamicallyLegalOp<func::CallOp, func::ReturnOp>(
        [&](Operation *op) { return converter.isLegal(op); });
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });

    if (failed(applyFullConversion(module, target, std::move(patterns))))
      return signalPassFailure();

    // Vectorized polynomial exp instead of one libm call per lane.
    RewritePatternSet approx(ctx);
    populateMathPolynomialApproximationPatterns(approx, [](StringRef name) {
      return name == "exp" || name == "math.exp";
    });
    FrozenRewritePatternSet frozen(std::move(approx));
    for (auto fn : module.getOps<func::FuncOp>())
      if (fn.getName().starts_with("__kv_cpu_") &&
          failed(applyPatternsGreedily(fn, frozen)))
        return signalPassFailure();

    if (emitCInterface)
      for (auto fn : module.getOps<func::FuncOp>())
        if (fn.isPublic() && !fn.isExternal())
          fn->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                      UnitAttr::get(ctx));
  }
};
} // namespace

void kvopt::buildKVToCPUPipeline(OpPassManager &pm,
                                 const KVToCPUPipelineOptions &options) {
  KVCPUToLoopsOptions lower;
  lower.splits = options.splits;
  lower.splitTokens = options.splitTokens;
  lower.blockTokens = options.blockTokens;
  lower.vectorBits = options.vectorBits;
  lower.intDots = options.intDots;
  // A bundle's interface is its entries; the ExecutionEngine's C wrappers
  // would only add exported code.
  lower.emitCInterface = options.emitCInterface && !options.bundleEntries;
  pm.addPass(createKVCPUToLoops(lower));
  pm.addPass(createCanonicalizerPass());
  // Model graphs keep their projections and reshapes in linalg/arith on
  // tensors beside the kv ops: elementwise arith becomes linalg here, and
  // all linalg becomes loops once bufferized.
  pm.addNestedPass<func::FuncOp>(createConvertElementwiseToLinalgPass());

  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  if (options.bundleEntries) {
    // The caller owns every buffer of a bundle kernel: results become
    // trailing out-parameters, written in place where the result is a
    // static allocation.
    bufferization::BufferResultsToOutParamsPassOptions outParams;
    outParams.addResultAttribute = true;
    outParams.hoistStaticAllocs = true;
    outParams.modifyPublicFunctions = true;
    pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  }
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  if (options.bundleEntries)
    pm.addPass(createKVCPUBundleEntries());

  // One thread runs the loops sequentially: the async runtime would run
  // them on its pool of one thread per hardware thread whatever
  // num-workers says (num-workers only sets how many blocks it cuts).
  bool async = options.threads > 1;
  if (async) {
    AsyncParallelForPassOptions async;
    async.numWorkerThreads = options.threads;
    async.asyncDispatch = false;
    // Our loops have few, long iterations ((sequence, head, split) tasks).
    async.minTaskSize = 1;
    pm.addPass(createAsyncParallelForPass(async));
    pm.addPass(createAsyncToAsyncRuntimePass());
    pm.addPass(createAsyncRuntimeRefCountingPass());
    pm.addPass(createAsyncRuntimeRefCountingOptPass());
  }
  pm.addPass(createConvertVectorToSCFPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(arith::createArithExpandOpsPass(
      arith::ArithExpandOpsPassOptions{/*includeBf16=*/true}));
  if (async)
    pm.addPass(createConvertAsyncToLLVMPass());
  ConvertVectorToLLVMPassOptions vectorToLLVM;
  vectorToLLVM.reassociateFPReductions = true;
  pm.addPass(createConvertVectorToLLVMPass(vectorToLLVM));
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void kvopt::registerKVToCPUPasses() {
  generated::registerKVToCPUPasses();
  PassPipelineRegistration<KVToCPUPipelineOptions>(
      "kv-lower-to-cpu",
      "lower kv ops to CPU kernels and the whole module to LLVM dialect "
      "(kv-cpu-to-loops, one-shot bufferization, deallocation, optional "
      "async threads, vector/scf/memref/arith/math/func to LLVM)",
      buildKVToCPUPipeline);
}
