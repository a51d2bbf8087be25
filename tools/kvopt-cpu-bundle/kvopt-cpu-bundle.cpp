//===- kvopt-cpu-bundle.cpp - CPU kernel bundle of a module ---------------===//
//
// Writes the runtime kernel bundle of format "so" for the host CPU
// (kvopt::writeCPUBundle) into <out>:
//   layout.json         kv-export-layout's cache layout
//   kernels.cpu.o       the module lowered with kv-lower-to-cpu{bundle-entries}
//   kernels.cpu.so      that object linked as a shared object
//   manifest.cpu.json   one kernel per public function (docs/Runtime.md)
// The runtime's "cpu" launch backend loads it with KernelBundle::load.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/KVToCPU/CPUJit.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

namespace cl = llvm::cl;

static cl::OptionCategory toolCategory("kvopt-cpu-bundle options");
static cl::opt<std::string> input(cl::Positional, cl::cat(toolCategory),
                                  cl::desc("<input.mlir>"), cl::Required);
static cl::opt<std::string> outDir("o", cl::cat(toolCategory),
                                   cl::desc("output folder"), cl::Required);
static cl::opt<int64_t> splits("kv-splits", cl::cat(toolCategory),
                               cl::desc("key splits per sequence in "
                                        "attention; 0 = automatic"),
                               cl::init(0));
static cl::opt<int64_t> splitTokens("split-tokens", cl::cat(toolCategory),
                                    cl::desc("fewest keys one split processes"),
                                    cl::init(128));
static cl::opt<int64_t>
    blockTokens("block-tokens", cl::cat(toolCategory),
                cl::desc("keys scored per online-softmax step"), cl::init(16));
static cl::opt<int64_t>
    vectorBits("vector-bits", cl::cat(toolCategory),
               cl::desc("f32 vector width the attention kernels are tiled "
                        "for (128, 256, 512); 0 = the host CPU's widest"),
               cl::init(0));
static cl::opt<bool> intDots("int-dots", cl::cat(toolCategory),
                             cl::desc("fixed-point dot products for "
                                      "token-axis integer K/V codes"),
                             cl::init(true));
static cl::opt<unsigned>
    threads("worker-threads", cl::cat(toolCategory),
            cl::desc("async-runtime parallel blocks for the parallel loops "
                     "(the pipeline's threads option); 0 or 1 = "
                     "sequential"),
            cl::init(0));
static cl::opt<unsigned> optLevel("O", cl::cat(toolCategory),
                                  cl::desc("LLVM optimization level"),
                                  cl::init(3), cl::Prefix);
static cl::opt<std::string>
    cxx("cxx", cl::cat(toolCategory),
        cl::desc("C++ compiler driver that links the shared object "
                 "(default: the one kvopt was built with)"),
        cl::init(""));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(toolCategory);
  cl::ParseCommandLineOptions(argc, argv, "kvopt CPU kernel bundle writer\n");
  if (optLevel > 3) {
    llvm::errs() << "kvopt-cpu-bundle: option '-O' must be 0..3, got "
                 << optLevel << "\n";
    return 1;
  }
  auto text = llvm::MemoryBuffer::getFileOrSTDIN(input);
  if (!text) {
    llvm::errs() << "kvopt-cpu-bundle: cannot read " << input << ": "
                 << text.getError().message() << "\n";
    return 1;
  }
  kvopt::CPUCompileOptions options;
  options.splits = splits;
  options.splitTokens = splitTokens;
  options.blockTokens = blockTokens;
  options.vectorBits = vectorBits;
  options.intDots = intDots;
  options.threads = threads;
  options.optLevel = optLevel;
  kvopt::CPUBundleOptions bundle;
  bundle.outDir = outDir;
  bundle.linker = cxx;
  auto manifest = kvopt::writeCPUBundle((*text)->getBuffer(), options, bundle);
  if (!manifest) {
    llvm::errs() << "kvopt-cpu-bundle: " << llvm::toString(manifest.takeError())
                 << "\n";
    return 1;
  }
  llvm::outs() << *manifest << "\n";
  return 0;
}
