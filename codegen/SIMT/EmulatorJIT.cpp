//===- EmulatorJIT.cpp - JIT gpu-dialect kernels for the SIMT emulator ----===//
//
// Registers only what the lowering needs (single conversion headers, not
// mlir/Conversion/Passes.h), runs the pipeline, and JIT-compiles the result
// with the ExecutionEngine. Runtime symbols (__kv_simt_*, __nv_*) resolve
// from the process, where libkvopt_simt_runtime.so is loaded.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/SIMT/EmulatorJIT.h"

#include "kvopt/Codegen/SIMT/Passes.h"

#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVM.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/NVVMToLLVM/NVVMToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVM.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Index/IR/IndexDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <cstring>
#include <functional>

using namespace mlir;
using namespace kvopt::simt;

void kvopt::simt::buildEmulatorPipeline(OpPassManager &pm,
                                        const EmulatorOptions &options) {
  OpPassManager &gpu = pm.nest<gpu::GPUModuleOp>();
  gpu.addPass(createSCFToControlFlowPass());
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  nvvm.indexBitwidth = options.indexBitwidth;
  nvvm.hasRedux = true;
  gpu.addPass(createConvertGpuOpsToNVVMOps(nvvm));
  gpu.addPass(createCanonicalizerPass());
  gpu.addPass(createCSEPass());
  gpu.addPass(createReconcileUnrealizedCastsPass());
  SIMTEmulateOptions emu;
  emu.countOps = options.countOps;
  emu.instrumentGlobal = options.instrumentGlobal;
  emu.instrumentShared = options.instrumentShared;
  pm.addPass(createSIMTEmulate(emu));
}

/// f32 -> bf16, round to nearest even, NaNs kept (quieted): the libcall
/// LLVM emits for `fptrunc float to bfloat` on x86 hosts without
/// AVX512-BF16. Neither Debian's libgcc 12 nor the process provides it, so
/// the JIT gets this definition (the same rounding as cvt.rn.bf16.f32).
extern "C" __bf16 kvoptSimtTruncSFBF2(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  uint16_t result;
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    result = static_cast<uint16_t>((bits >> 16) | 0x40u);
  else
    result =
        static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
  __bf16 out;
  std::memcpy(&out, &result, sizeof out);
  return out;
}

EmulatedModule::EmulatedModule() = default;
EmulatedModule::~EmulatedModule() = default;

static llvm::Error makeError(const Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

llvm::Expected<std::unique_ptr<EmulatedModule>>
EmulatedModule::compile(StringRef source, const EmulatorOptions &options,
                        StringRef bufferName) {
  static const bool nativeTarget = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)nativeTarget;

  DialectRegistry registry;
  registry
      .insert<arith::ArithDialect, cf::ControlFlowDialect, func::FuncDialect,
              gpu::GPUDialect, index::IndexDialect, LLVM::LLVMDialect,
              math::MathDialect, memref::MemRefDialect, NVVM::NVVMDialect,
              scf::SCFDialect, ub::UBDialect, vector::VectorDialect>();
  // convert-gpu-to-nvvm collects the patterns of every loaded dialect
  // through these interfaces.
  arith::registerConvertArithToLLVMInterface(registry);
  cf::registerConvertControlFlowToLLVMInterface(registry);
  registerConvertFuncToLLVMInterface(registry);
  index::registerConvertIndexToLLVMInterface(registry);
  registerConvertMathToLLVMInterface(registry);
  registerConvertMemRefToLLVMInterface(registry);
  registerConvertNVVMToLLVMInterface(registry);
  ub::registerConvertUBToLLVMInterface(registry);
  vector::registerConvertVectorToLLVMInterface(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);

  std::unique_ptr<EmulatedModule> m(new EmulatedModule());
  m->context = std::make_unique<MLIRContext>(registry);
  m->context->loadAllAvailableDialects();

  std::string diagnostics;
  llvm::raw_string_ostream diagStream(diagnostics);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler handler(sourceMgr, m->context.get(), diagStream);

  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(source, m->context.get(), bufferName);
  if (!module)
    return makeError("cannot parse the kernel module:\n" + diagnostics);
  PassManager pm(m->context.get());
  buildEmulatorPipeline(pm, options);
  if (failed(pm.run(*module)))
    return makeError("lowering for the emulator failed:\n" + diagnostics);
  {
    llvm::raw_string_ostream os(m->ir);
    module->print(os);
  }

  std::function<llvm::Error(llvm::Module *)> transformer =
      makeOptimizingTransformer(options.optLevel, /*sizeLevel=*/0,
                                /*targetMachine=*/nullptr);
  ExecutionEngineOptions engineOptions;
  engineOptions.transformer = transformer; // a function_ref: keep it alive
  engineOptions.jitCodeGenOptLevel =
      static_cast<llvm::CodeGenOptLevel>(std::min(options.optLevel, 3u));
  auto engine = ExecutionEngine::create(*module, engineOptions);
  if (!engine)
    return makeError("JIT compilation failed: " +
                     llvm::toString(engine.takeError()) + "\n" + diagnostics);
  m->engine = std::move(*engine);
  m->engine->registerSymbols([](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap symbols;
    symbols[interner("__truncsfbf2")] = {
        llvm::orc::ExecutorAddr::fromPtr(&kvoptSimtTruncSFBF2),
        llvm::JITSymbolFlags::Exported};
    return symbols;
  });
  return m;
}

llvm::Expected<std::unique_ptr<EmulatedModule>>
EmulatedModule::compileFile(StringRef path, const EmulatorOptions &options) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return makeError("cannot read " + path + ": " +
                     buffer.getError().message());
  return compile((*buffer)->getBuffer(), options, path);
}

llvm::Expected<const kvopt_simt_kernel *>
EmulatedModule::kernel(StringRef name) {
  std::string symbol = (name + KVOPT_SIMT_DESC_SUFFIX).str();
  auto addr = engine->lookup(symbol);
  if (!addr)
    return makeError("no emulated kernel '" + name + "' (symbol " + symbol +
                     "): " + llvm::toString(addr.takeError()));
  return static_cast<const kvopt_simt_kernel *>(*addr);
}
