//===- kvopt-gpu-bundle.cpp - write the PTX of a module's kv kernels ------===//
//
// Runs kv-lower-to-gpu{chip, kernels-only} on a module holding kv ops and
// writes the PTX text of the generated gpu.module to <out>/kernels.<chip>.ptx
// for every requested chip (for ptxas and the CUDA backend).
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/KVToGPU/Passes.h"
#include "kvopt/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace mlir;
namespace cl = llvm::cl;

static cl::opt<std::string> input(cl::Positional, cl::desc("<input.mlir>"),
                                  cl::Required);
static cl::opt<std::string> outDir("o", cl::desc("output folder"),
                                   cl::Required);
static cl::opt<std::string>
    toolkit("toolkit",
            cl::desc("CUDA toolkit folder (libdevice); default $CUDA_HOME or "
                     "/usr/local/cuda"),
            cl::init(""));
static cl::list<std::string> chips("chip", cl::desc("sm_80, sm_90 (repeat)"),
                                   cl::ZeroOrMore);

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "kvopt GPU kernel PTX writer\n");
  std::vector<std::string> targets(chips.begin(), chips.end());
  if (targets.empty())
    targets = {"sm_80", "sm_90"};
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllGPUToLLVMIRTranslations(registry);
  kvopt::registerAllDialects(registry);
  MLIRContext ctx(registry);
  if (auto ec = llvm::sys::fs::create_directories(outDir)) {
    llvm::errs() << "cannot create " << outDir << ": " << ec.message() << "\n";
    return 1;
  }
  for (const std::string &chip : targets) {
    auto module = parseSourceFile<ModuleOp>(input, &ctx);
    if (!module)
      return 1;
    PassManager pm(&ctx);
    kvopt::KVToGPUPipelineOptions opts;
    opts.chip = chip;
    opts.kernelsOnly = true;
    std::string tk = toolkit;
    if (tk.empty()) {
      const char *env = getenv("CUDA_HOME");
      tk = env ? env : "/usr/local/cuda";
    }
    opts.toolkit = tk;
    kvopt::buildKVToGPUPipeline(pm, opts);
    if (failed(pm.run(*module)))
      return 1;
    int written = 0;
    module->walk([&](gpu::BinaryOp bin) {
      for (Attribute a : bin.getObjects()) {
        auto obj = cast<gpu::ObjectAttr>(a);
        std::string path = outDir + "/kernels." + chip + ".ptx";
        std::error_code ec;
        llvm::raw_fd_ostream os(path, ec);
        if (ec) {
          llvm::errs() << "cannot write " << path << "\n";
          return;
        }
        os << obj.getObject().getValue();
        ++written;
      }
    });
    if (!written) {
      llvm::errs() << "no kv kernels in " << input << "\n";
      return 1;
    }
  }
  return 0;
}
