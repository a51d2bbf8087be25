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

#include "kvopt/Transforms/Passes.h"

#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"

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

namespace {

/// A context with every dialect the pipeline touches and a handler that
/// collects its diagnostics for the error messages.
struct Lowering {
  std::unique_ptr<MLIRContext> context;
  std::string diagnostics;
  llvm::raw_string_ostream diagOS{diagnostics};
  std::unique_ptr<ScopedDiagnosticHandler> handler;

  Lowering() {
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
    context = std::make_unique<MLIRContext>(registry);
    context->disableMultithreading();
    handler = std::make_unique<ScopedDiagnosticHandler>(
        context.get(), [this](Diagnostic &d) {
          diagOS << d.getLocation() << ": " << d << "\n";
          return success();
        });
  }

  llvm::Error fail(const llvm::Twine &what) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   what + ":\n" + diagnostics);
  }

  /// Parses `source` and runs kv-lower-to-cpu on it.
  llvm::Expected<OwningOpRef<ModuleOp>> lower(llvm::StringRef source,
                                              const CPUCompileOptions &options,
                                              bool bundleEntries) {
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(source, context.get());
    if (!module)
      return fail("cannot parse the module");
    PassManager pm(context.get());
    KVToCPUPipelineOptions pipeline;
    pipeline.splits = options.splits;
    pipeline.splitTokens = options.splitTokens;
    pipeline.blockTokens = options.blockTokens;
    pipeline.vectorBits = options.vectorBits;
    pipeline.intDots = options.intDots;
    pipeline.threads = options.threads;
    pipeline.bundleEntries = bundleEntries;
    buildKVToCPUPipeline(pm, pipeline);
    if (failed(pm.run(*module)))
      return fail("kv-lower-to-cpu failed");
    return std::move(module);
  }
};

} // namespace

llvm::Expected<std::unique_ptr<CPUModule>>
CPUModule::compile(llvm::StringRef source, const CPUCompileOptions &options) {
  auto result = std::unique_ptr<CPUModule>(new CPUModule());
  result->impl = std::make_unique<Impl>();
  Impl &impl = *result->impl;
  Lowering lowering;
  auto lowered = lowering.lower(source, options, /*bundleEntries=*/false);
  if (!lowered)
    return lowered.takeError();
  OwningOpRef<ModuleOp> module = std::move(*lowered);
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
  // The pipeline decides whether loops run on the async runtime (threads
  // >= 2); the lowered code says whether they do.
  if (result->lowered.find("@mlirAsyncRuntime") != std::string::npos)
    libs.push_back(asyncRuntime);
  engineOptions.sharedLibPaths = libs;
  auto engine = ExecutionEngine::create(*module, engineOptions);
  if (!engine)
    return lowering.fail("ExecutionEngine: " +
                         llvm::toString(engine.takeError()));
  impl.engine = std::move(*engine);
  // The context lives as long as the engine built from it.
  impl.context = std::move(lowering.context);
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

//===----------------------------------------------------------------------===//
// Kernel bundles
//===----------------------------------------------------------------------===//

namespace {

llvm::Error writeFile(const std::string &path, llvm::StringRef text) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return llvm::createStringError(ec, "cannot write " + path + ": " +
                                           ec.message());
  os << text;
  return llvm::Error::success();
}

/// The manifest's kernels: every entry kv-cpu-bundle-entries added. An
/// input that carries malformed kv.bundle_* attributes of its own is an
/// error, not a crash.
FailureOr<llvm::json::Array> manifestKernels(ModuleOp module) {
  llvm::json::Array kernels;
  for (auto f : module.getOps<LLVM::LLVMFuncOp>()) {
    Attribute name = f->getAttr("kv.bundle_kernel");
    Attribute args = f->getAttr("kv.bundle_args");
    if (!name && !args)
      continue;
    auto bad = [&] {
      return f.emitError() << "@" << f.getName()
                           << ": kv.bundle_kernel must be a string and "
                              "kv.bundle_args an array of {name, type} "
                              "strings (attributes kv-cpu-bundle-entries "
                              "sets; not for input modules)";
    };
    auto nameAttr = dyn_cast_or_null<StringAttr>(name);
    auto argsAttr = dyn_cast_or_null<ArrayAttr>(args);
    if (!nameAttr || !argsAttr || f.isExternal())
      return bad();
    llvm::json::Array jsonArgs;
    for (Attribute a : argsAttr) {
      auto arg = dyn_cast<DictionaryAttr>(a);
      StringAttr argName = arg ? arg.getAs<StringAttr>("name") : nullptr;
      StringAttr argType = arg ? arg.getAs<StringAttr>("type") : nullptr;
      if (!argName || !argType)
        return bad();
      jsonArgs.push_back(llvm::json::Object{{"name", argName.getValue()},
                                            {"type", argType.getValue()}});
    }
    kernels.push_back(llvm::json::Object{
        {"name", nameAttr.getValue()},
        {"symbol", f.getName()},
        {"args", std::move(jsonArgs)},
        {"launch", llvm::json::Object{{"grid", llvm::json::Array{1}},
                                      {"block", llvm::json::Array{1}}}}});
  }
  return kernels;
}

} // namespace

llvm::Expected<std::string>
kvopt::writeCPUBundle(llvm::StringRef source, const CPUCompileOptions &options,
                      const CPUBundleOptions &bundle) {
  Lowering lowering;
  if (auto ec = llvm::sys::fs::create_directories(bundle.outDir))
    return llvm::createStringError(ec, "cannot create " + bundle.outDir + ": " +
                                           ec.message());
  // Files are written under temporary names and renamed into place only
  // once the whole bundle is built: a failure leaves an earlier bundle in
  // the folder as it was.
  std::string layoutPath = bundle.outDir + "/layout.json.partial";
  {
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(source, lowering.context.get());
    if (!module)
      return lowering.fail("cannot parse the module");
    PassManager pm(lowering.context.get());
    KVExportLayoutOptions layoutOptions;
    layoutOptions.output = layoutPath;
    pm.addPass(createKVExportLayout(layoutOptions));
    if (failed(pm.run(*module)))
      return lowering.fail("kv-export-layout failed (a bundle carries the "
                           "layout of its caches)");
  }
  auto layoutText = llvm::MemoryBuffer::getFile(layoutPath);
  if (!layoutText)
    return llvm::createStringError(layoutText.getError(),
                                   "cannot read " + layoutPath);
  auto layout = llvm::json::parse((*layoutText)->getBuffer());
  if (!layout)
    return layout.takeError();
  std::string layoutJson = (*layoutText)->getBuffer().str();
  llvm::sys::fs::remove(layoutPath);

  auto lowered = lowering.lower(source, options, /*bundleEntries=*/true);
  if (!lowered)
    return lowered.takeError();
  OwningOpRef<ModuleOp> module = std::move(*lowered);
  FailureOr<llvm::json::Array> entries = manifestKernels(*module);
  if (failed(entries))
    return lowering.fail("cannot describe the bundle's kernels");
  llvm::json::Array kernels = std::move(*entries);
  if (kernels.empty())
    return lowering.fail("the module has no public function to bundle");

  // LLVM IR for the host CPU (the kernels were tiled for its vector width),
  // position independent for a shared object.
  auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!builder)
    return builder.takeError();
  builder->setRelocationModel(llvm::Reloc::PIC_);
  builder->setCodeGenOptLevel(
      static_cast<llvm::CodeGenOptLevel>(std::min(options.optLevel, 3u)));
  auto machine = builder->createTargetMachine();
  if (!machine)
    return machine.takeError();
  llvm::LLVMContext llvmContext;
  auto llvmModule = translateModuleToLLVMIR(*module, llvmContext, "kvopt_cpu");
  if (!llvmModule)
    return lowering.fail("LLVM IR export failed");
  // Only the entries are the bundle's interface: everything else stays
  // inside the shared object, whatever flags it is dlopen'ed with.
  for (llvm::Function &f : *llvmModule)
    if (!f.isDeclaration() && !f.hasLocalLinkage() &&
        !f.getName().starts_with(kBundleEntryPrefix))
      f.setVisibility(llvm::GlobalValue::HiddenVisibility);
  llvmModule->setDataLayout((*machine)->createDataLayout());
  llvmModule->setTargetTriple((*machine)->getTargetTriple());
  // The same optimizer as the JIT's (no target-specific cost model), so
  // that a bundle runs the code the tests and kvopt-bench measure; the
  // target machine only generates code.
  if (auto error = makeOptimizingTransformer(options.optLevel, 0,
                                             /*targetMachine=*/nullptr)(
          llvmModule.get()))
    return error;

  std::string object = bundle.outDir + "/kernels.cpu.o";
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(object, ec, llvm::sys::fs::OF_None);
    if (ec)
      return llvm::createStringError(ec, "cannot write " + object + ": " +
                                             ec.message());
    llvm::legacy::PassManager codegen;
    if ((*machine)->addPassesToEmitFile(codegen, os, nullptr,
                                        llvm::CodeGenFileType::ObjectFile))
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "the host target cannot emit objects");
    codegen.run(*llvmModule);
  }

  // Linked with the MLIR runtime libraries the code calls into (memrefCopy
  // of model graphs, the async runtime's workers), found through an rpath.
  std::string linker =
      bundle.linker.empty() ? KVOPT_CPU_BUNDLE_CXX : bundle.linker;
  auto exe = llvm::sys::findProgramByName(linker);
  if (!exe)
    return llvm::createStringError(
        exe.getError(),
        "C++ compiler '" + linker + "' not found: " + exe.getError().message());
  std::string so = bundle.outDir + "/kernels.cpu.so.partial";
  std::string rpath = std::string("-Wl,-rpath,") + KVOPT_MLIR_LIB_DIR;
  llvm::SmallVector<std::string> argv = {*exe, "-shared", object, "-o", so};
  bool needsCopy = llvmModule->getFunction("memrefCopy") != nullptr;
  if (needsCopy)
    argv.push_back(std::string(KVOPT_MLIR_LIB_DIR) +
                   "/libmlir_c_runner_utils.so");
  bool needsAsync = llvm::any_of(llvmModule->functions(), [](auto &f) {
    return f.getName().starts_with("mlirAsyncRuntime");
  });
  if (needsAsync) {
    argv.push_back(std::string(KVOPT_MLIR_LIB_DIR) +
                   "/libmlir_async_runtime.so");
    // The async runtime's worker pool must not be torn down by a dlclose
    // while the process runs.
    argv.push_back("-Wl,-z,nodelete");
  }
  if (needsCopy || needsAsync)
    argv.push_back(rpath);
  llvm::SmallVector<llvm::StringRef> argRefs(argv.begin(), argv.end());
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(*exe, argRefs, std::nullopt, {}, 0, 0,
                                     &message);
  if (rc != 0)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "linking " + so + " failed (" + *exe + " exit " + std::to_string(rc) +
            (message.empty() ? "" : ": " + message) + ")");

  llvm::json::Object manifest{
      {"abi_version", kCPUBundleAbiVersion},
      {"target", "cpu-" + (*machine)->getTargetCPU().str()},
      {"format", "so"},
      {"binary", "kernels.cpu.so"},
      {"cache_layout", std::move(*layout)},
      {"kernels", std::move(kernels)}};
  std::string text;
  llvm::raw_string_ostream os(text);
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(manifest))) << "\n";
  std::string manifestPath = bundle.outDir + "/manifest.cpu.json";
  if (auto error = writeFile(manifestPath + ".partial", text))
    return std::move(error);
  if (auto error = writeFile(bundle.outDir + "/layout.json", layoutJson))
    return std::move(error);
  for (const std::string &path :
       {bundle.outDir + "/kernels.cpu.so", manifestPath})
    if (auto ec = llvm::sys::fs::rename(path + ".partial", path))
      return llvm::createStringError(ec, "cannot rename " + path +
                                             ".partial: " + ec.message());
  return manifestPath;
}
