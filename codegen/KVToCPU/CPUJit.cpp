//===- CPUJit.cpp - compile kv modules for the host CPU -------------------===//
//
// kv-lower-to-cpu + mlir::ExecutionEngine, with the async runtime loaded
// when the module runs scf.parallel loops on threads.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/KVToCPU/CPUJit.h"
#include "kvopt/Codegen/KVToCPU/Passes.h"
#include "kvopt/Dialect/KV/KVDialect.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"

#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <functional>
#include <mutex>

using namespace mlir;
using namespace kvopt;

struct CPUModule::Impl {
  std::unique_ptr<MLIRContext> context;
  std::unique_ptr<ExecutionEngine> engine;
  std::function<llvm::Error(llvm::Module *)> transformer;
};

CPUModule::~CPUModule() = default;

llvm::Expected<std::unique_ptr<CPUModule>>
CPUModule::compile(llvm::StringRef source, const CPUCompileOptions &options) {
  static std::once_flag init;
  std::call_once(init, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
  DialectRegistry registry;
  registry.insert<kv::KVDialect>();
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);

  auto result = std::unique_ptr<CPUModule>(new CPUModule());
  result->impl = std::make_unique<Impl>();
  Impl &impl = *result->impl;
  impl.context = std::make_unique<MLIRContext>(registry);
  impl.context->disableMultithreading();
  std::string diagnostics;
  llvm::raw_string_ostream diagOS(diagnostics);
  ScopedDiagnosticHandler handler(impl.context.get(), [&](Diagnostic &d) {
    diagOS << d.getLocation() << ": " << d << "\n";
    return success();
  });
  auto fail = [&](llvm::StringRef what) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   what + ":\n" + diagnostics);
  };

  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(source, impl.context.get());
  if (!module)
    return fail("cannot parse the module");
  PassManager pm(impl.context.get());
  KVToCPUPipelineOptions pipeline;
  pipeline.splits = options.splits;
  pipeline.splitTokens = options.splitTokens;
  pipeline.blockTokens = options.blockTokens;
  pipeline.vectorBits = options.vectorBits;
  pipeline.intDots = options.intDots;
  pipeline.threads = options.threads;
  buildKVToCPUPipeline(pm, pipeline);
  if (failed(pm.run(*module)))
    return fail("kv-lower-to-cpu failed");
  {
    llvm::raw_string_ostream os(result->lowered);
    module->print(os);
  }

  impl.transformer = makeOptimizingTransformer(options.optLevel,
                                               /*sizeLevel=*/0,
                                               /*targetMachine=*/nullptr);
  ExecutionEngineOptions engineOptions;
  engineOptions.transformer = impl.transformer; // function_ref: keep alive
  engineOptions.jitCodeGenOptLevel =
      static_cast<llvm::CodeGenOptLevel>(std::min(options.optLevel, 3u));
  engineOptions.enableObjectDump = options.keepObject;
  static const std::string asyncRuntime =
      std::string(KVOPT_MLIR_LIB_DIR) + "/libmlir_async_runtime.so";
  // Model graphs bufferize to memref.copy between strided views (concat,
  // insert_slice), which finalize-memref-to-llvm lowers to a call of
  // memrefCopy from the C runner utils.
  static const std::string runnerUtils =
      std::string(KVOPT_MLIR_LIB_DIR) + "/libmlir_c_runner_utils.so";
  llvm::SmallVector<llvm::StringRef> libs;
  if (result->lowered.find("memrefCopy") != std::string::npos)
    libs.push_back(runnerUtils);
  if (options.threads > 0)
    libs.push_back(asyncRuntime);
  engineOptions.sharedLibPaths = libs;
  auto engine = ExecutionEngine::create(*module, engineOptions);
  if (!engine)
    return fail("ExecutionEngine: " + llvm::toString(engine.takeError()));
  impl.engine = std::move(*engine);
  return result;
}

llvm::Expected<void (*)(void **)> CPUModule::entry(llvm::StringRef name) {
  return impl->engine->lookupPacked(("_mlir_ciface_" + name).str());
}

llvm::Error CPUModule::invoke(llvm::StringRef name,
                              llvm::MutableArrayRef<void *> args) {
  return impl->engine->invokePacked(("_mlir_ciface_" + name).str(), args);
}

void CPUModule::dumpObject(llvm::StringRef path) {
  impl->engine->dumpToObjectFile(path);
}
