//===- SemanticsSupport.h - run model graphs before/after kvopt -*- C++ -*-===//
//
// Loads the example graphs, applies kvopt pass pipelines, compiles the
// original and the transformed module for the CPU (once per binary) and
// calls them with f32 tensors and cache byte pools.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TEST_UNITTESTS_RAISE_SEMANTICSSUPPORT_H
#define KVOPT_TEST_UNITTESTS_RAISE_SEMANTICSSUPPORT_H

#include "TestSupport.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kvopt {
namespace semtest {

using reference::Tensor;

/// The text of examples/graphs/<name>.
std::string loadGraph(const std::string &name);

/// `source` after the module pass pipeline `pipeline` (textual, the
/// elements of builtin.module(...)); a failure is a test failure and
/// returns "".
std::string transform(const std::string &source, const std::string &pipeline);

/// The original graph prepared for the CPU: aggregated ops
/// (linalg.softmax) decomposed into linalg.generic/fill/reduce through the
/// upstream AggregatedOpInterface; everything else is left to kv-lower-to-cpu,
/// which for a module without kv ops is the upstream pipeline
/// (elementwise-to-linalg, one-shot bufferization, linalg-to-loops, to LLVM).
std::string prepareOriginal(const std::string &source);

/// One argument of a public function, as the function's signature says.
struct ArgInfo {
  enum Kind { TensorArg, CacheArg, LatentCacheArg, TableArg } kind = TensorArg;
  std::vector<int64_t> shape; ///< tensors and tables (dynamic dims = -1)
  int64_t layer = -1;         ///< kv.layer of a cache argument
  cputest::CacheSpec spec;    ///< caches (latent: kvHeads 1, row width)
  int64_t latentDim = 0;      ///< latent caches
};

/// The public function of a module: name, arguments, result shapes.
struct Signature {
  std::string name;
  std::vector<ArgInfo> args;
  std::vector<std::vector<int64_t>> results;
};
Signature signature(const std::string &source);

/// One call argument: bytes and the shape of its descriptor.
struct Buffer {
  std::vector<uint8_t> bytes;
  std::vector<int64_t> shape;
};
/// An f32 tensor argument.
Buffer f32Buffer(const Tensor &t);
/// A block table argument [B, pages] of i32.
Buffer tableBuffer(const reference::BlockTable &table);
/// A cache argument: its bytes as memref<?xi8>.
Buffer cacheBuffer(std::vector<uint8_t> bytes);

/// Calls the function of `sig` in `module` and returns its f32 results.
std::vector<Tensor> run(CPUModule &module, const Signature &sig,
                        std::vector<Buffer> &args);

/// Max over elements of |got - want| / tol (<= 1 passes); also reports the
/// first offending index through `worst`.
double worstRatio(const Tensor &got, const Tensor &want, const Tensor &tol,
                  int64_t *worst = nullptr);

} // namespace semtest
} // namespace kvopt

#endif // KVOPT_TEST_UNITTESTS_RAISE_SEMANTICSSUPPORT_H
