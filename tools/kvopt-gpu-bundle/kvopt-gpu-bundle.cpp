//===- kvopt-gpu-bundle.cpp - kernel bundles of a module's kv kernels -----===//
//
// Writes the kernel bundles of the kv ops of a module into <out>:
//   layout.json                          kv-export-layout's cache layout
//   kernels.<chip>.ptx, manifest.<chip>.json, launch.<chip>.json,
//   graph.<chip>.json
//        per chip (sm_80, sm_90):
//        kv-lower-to-gpu{chip, kernels-only}, format "ptx" (CUDA backend)
//   kernels.simt.ll, kernels.simt.so, manifest.simt.json, launch.simt.json,
//   graph.simt.json
//        the same kernels
//        (sized for --simt-sizing) through kv-simt-emulate, mlir-translate's
//        LLVM IR export and `c++ -shared`, format "simt-so" (emulator backend)
// Manifests follow docs/Runtime.md (ABI version 1). --ptx-only writes only
// the PTX (modules whose caches differ have no single layout). launch.*.json
// holds each kernel's launch constants (tile_tokens, max_splits, ...) that
// the manifest schema has no field for; graph.*.json the host functions'
// launch schedules, which the runtime's GraphRunner executes.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/KVToGPU/Bundle.h"
#include "kvopt/Codegen/KVToGPU/Passes.h"
#include "kvopt/Codegen/SIMT/EmulatorJIT.h"
#include "kvopt/InitAll.h"
#include "kvopt/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory toolCategory("kvopt-gpu-bundle options");
static cl::opt<std::string> input(cl::Positional, cl::cat(toolCategory),
                                  cl::desc("<input.mlir>"), cl::Required);
static cl::opt<std::string> outDir("o", cl::cat(toolCategory),
                                   cl::desc("output folder"), cl::Required);
static cl::opt<std::string>
    toolkit("toolkit", cl::cat(toolCategory),
            cl::desc("CUDA toolkit folder (libdevice); default $CUDA_HOME or "
                     "/usr/local/cuda"),
            cl::init(""));
static cl::list<std::string>
    chips("chip", cl::cat(toolCategory),
          cl::desc("sm_80, sm_90, simt (repeat; default all three)"),
          cl::ZeroOrMore);
static cl::opt<bool> ptxOnly("ptx-only", cl::cat(toolCategory),
                             cl::desc("write only kernels.<chip>.ptx, no "
                                      "layout, manifests or simt-so"),
                             cl::init(false));
static cl::opt<std::string>
    simtSizing("simt-sizing", cl::cat(toolCategory),
               cl::desc("target description that sizes the simt-so kernels"),
               cl::init("sm_80"));
static cl::opt<std::string> cxx("cxx", cl::cat(toolCategory),
                                cl::desc("C++ compiler linking the simt-so"),
                                cl::init(KVOPT_GPU_BUNDLE_CXX));
static cl::opt<std::string>
    simtRuntime("simt-runtime", cl::cat(toolCategory),
                cl::desc("libkvopt_simt_runtime.so the simt-so links"),
                cl::init(KVOPT_GPU_BUNDLE_SIMT_RUNTIME));

namespace {

struct Tool {
  MLIRContext &ctx;
  std::optional<llvm::json::Value> layout;
  bool simtPass = false; ///< kernelsFor is sizing the simt-so kernels

  OwningOpRef<ModuleOp> parse() {
    return parseSourceFile<ModuleOp>(input, &ctx);
  }

  bool writeText(const std::string &path, llvm::StringRef text) {
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    if (ec) {
      llvm::errs() << "cannot write " << path << ": " << ec.message() << "\n";
      return false;
    }
    os << text;
    return true;
  }

  /// kv-export-layout into <out>/layout.json, kept for the manifests.
  bool exportLayout() {
    auto module = parse();
    if (!module)
      return false;
    std::string path = outDir + "/layout.json";
    PassManager pm(&ctx);
    kvopt::KVExportLayoutOptions o;
    o.output = path;
    pm.addPass(kvopt::createKVExportLayout(o));
    if (failed(pm.run(*module)))
      return false;
    auto buf = llvm::MemoryBuffer::getFile(path);
    if (!buf) {
      llvm::errs() << "cannot read " << path << "\n";
      return false;
    }
    auto json = llvm::json::parse((*buf)->getBuffer());
    if (!json) {
      llvm::errs() << "kv-export-layout wrote no JSON: "
                   << llvm::toString(json.takeError()) << "\n";
      return false;
    }
    layout = std::move(*json);
    return true;
  }

  /// Parses the input and runs kv-gpu-kernels{chip, kernels-only}; fills
  /// `kernels` with the manifest entries unless --ptx-only.
  OwningOpRef<ModuleOp> kernelsFor(llvm::StringRef chip,
                                   llvm::json::Array &kernels) {
    auto module = parse();
    if (!module)
      return nullptr;
    PassManager pm(&ctx);
    kvopt::KVGPUKernelsOptions k;
    k.chip = chip.str();
    pm.addPass(kvopt::createKVGPUKernels(k));
    if (failed(pm.run(*module)))
      return nullptr;
    std::string target = simtPass ? "simt" : chip.str();
    if (!ptxOnly) {
      // The host functions' launches, before they are erased.
      llvm::json::Object graph = kvopt::gpugen::graphSchedule(
          *module, [&](llvm::StringRef f, llvm::StringRef why) {
            llvm::errs() << "kvopt-gpu-bundle: warning: function @" << f
                         << " is not in graph." << target << ".json: " << why
                         << "\n";
          });
      std::string text;
      llvm::raw_string_ostream os(text);
      os << llvm::formatv("{0:2}", llvm::json::Value(std::move(graph))) << "\n";
      if (!writeText(outDir + "/graph." + target + ".json", text))
        return nullptr;
    }
    // Only the kernels go on (kernels-only).
    for (Operation &op : llvm::make_early_inc_range(*module->getBody()))
      if (!isa<gpu::GPUModuleOp>(op))
        op.erase();
    auto gms = module->getOps<gpu::GPUModuleOp>();
    if (gms.empty()) {
      llvm::errs() << "no kv kernels in " << input << "\n";
      return nullptr;
    }
    if (!ptxOnly) {
      auto entries = kvopt::gpugen::manifestKernels(*gms.begin());
      if (failed(entries))
        return nullptr;
      kernels = std::move(*entries);
      std::string text;
      llvm::raw_string_ostream os(text);
      os << llvm::formatv(
                "{0:2}",
                llvm::json::Value(kvopt::gpugen::kernelConstants(*gms.begin())))
         << "\n";
      if (!writeText(outDir + "/launch." + target + ".json", text))
        return nullptr;
    }
    return module;
  }

  bool writeManifest(llvm::StringRef name, llvm::StringRef target,
                     llvm::StringRef format, llvm::StringRef binary,
                     llvm::json::Array kernels) {
    llvm::json::Object m = kvopt::gpugen::makeManifest(
        target, format, binary, *layout, std::move(kernels));
    std::string text;
    llvm::raw_string_ostream os(text);
    os << llvm::formatv("{0:2}", llvm::json::Value(std::move(m))) << "\n";
    return writeText(outDir + "/" + name.str(), text);
  }

  bool ptx(const std::string &chip) {
    llvm::json::Array kernels;
    auto module = kernelsFor(chip, kernels);
    if (!module)
      return false;
    std::string tk = toolkit;
    if (tk.empty()) {
      const char *env = getenv("CUDA_HOME");
      tk = env ? env : "/usr/local/cuda";
    }
    PassManager pm(&ctx);
    kvopt::buildKernelsToPTXPipeline(pm, chip, tk);
    if (failed(pm.run(*module)))
      return false;
    std::string binary = "kernels." + chip + ".ptx";
    bool written = false;
    for (auto bin : module->getOps<gpu::BinaryOp>())
      for (Attribute a : bin.getObjects()) {
        if (!writeText(outDir + "/" + binary,
                       cast<gpu::ObjectAttr>(a).getObject().getValue()))
          return false;
        written = true;
      }
    if (!written) {
      llvm::errs() << "gpu-module-to-binary produced no PTX\n";
      return false;
    }
    return ptxOnly || writeManifest("manifest." + chip + ".json", chip, "ptx",
                                    binary, std::move(kernels));
  }

  bool simtSo() {
    llvm::json::Array kernels;
    simtPass = true;
    auto module = kernelsFor(simtSizing, kernels);
    simtPass = false;
    if (!module)
      return false;
    PassManager pm(&ctx);
    kvopt::simt::buildEmulatorPipeline(pm, {});
    if (failed(pm.run(*module)))
      return false;
    llvm::LLVMContext llvmCtx;
    auto llvmModule = translateModuleToLLVMIR(*module, llvmCtx, "kv_gpu_simt");
    if (!llvmModule) {
      llvm::errs() << "LLVM IR export of the emulated kernels failed\n";
      return false;
    }
    std::string ll = outDir + "/kernels.simt.ll";
    std::string so = outDir + "/kernels.simt.so";
    {
      std::string text;
      llvm::raw_string_ostream os(text);
      llvmModule->print(os, nullptr);
      if (!writeText(ll, text))
        return false;
    }
    auto exe = llvm::sys::findProgramByName(cxx);
    if (!exe) {
      llvm::errs() << "C++ compiler '" << cxx
                   << "' not found: " << exe.getError().message() << "\n";
      return false;
    }
    llvm::SmallVector<llvm::StringRef> argv = {
        *exe,       "-Wno-override-module",
        "-shared",  "-fPIC",
        "-O2",      ll,
        "-o",       so,
        simtRuntime};
    std::string err;
    int rc =
        llvm::sys::ExecuteAndWait(*exe, argv, std::nullopt, {}, 0, 0, &err);
    if (rc != 0) {
      llvm::errs() << "linking " << so << " failed (" << *exe << " exit " << rc
                   << (err.empty() ? "" : ": " + err) << ")\n";
      return false;
    }
    return writeManifest("manifest.simt.json", "simt", "simt-so",
                         "kernels.simt.so", std::move(kernels));
  }
};

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(toolCategory);
  cl::ParseCommandLineOptions(argc, argv, "kvopt GPU kernel bundle writer\n");
  std::vector<std::string> targets(chips.begin(), chips.end());
  if (targets.empty()) {
    targets = {"sm_80", "sm_90"};
    if (!ptxOnly)
      targets.push_back("simt");
  }
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  kvopt::registerAllDialects(registry);
  MLIRContext ctx(registry);
  if (auto ec = llvm::sys::fs::create_directories(outDir)) {
    llvm::errs() << "cannot create " << outDir << ": " << ec.message() << "\n";
    return 1;
  }
  Tool tool{ctx, std::nullopt};
  if (!ptxOnly && !tool.exportLayout())
    return 1;
  for (const std::string &t : targets) {
    if (t == "simt") {
      if (ptxOnly) {
        llvm::errs() << "--ptx-only and --chip simt exclude each other\n";
        return 1;
      }
      if (!tool.simtSo())
        return 1;
    } else if (!tool.ptx(t)) {
      return 1;
    }
  }
  return 0;
}
