//===- graph.h - Run a compiled graph's kv launches through a bundle -*- C++
//-*-===//
//
// The host side of a compiled graph. kvopt-gpu-bundle writes, beside each
// target's manifest, graph.<target>.json: per host function of the module,
// its kv ops in program order with their kernels, every kernel operand bound
// to a function argument and every kv.attention output to a function result
// (docs/Runtime.md). Graph::run launches one function on a KernelBundle:
// it packs each kernel's expanded ABI from the caller's buffers, plans the
// split-KV decode (kvopt/runtime/decode_plan.h) from the block table's
// capacity, allocates the partial-state workspace, launches decode and
// merge (and append), and waits for the step.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_RUNTIME_GRAPH_H
#define KVOPT_RUNTIME_GRAPH_H

#include "kvopt/runtime/bundle.h"
#include "kvopt/runtime/memory.h"
#include "kvopt/runtime/status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kvopt {
namespace rt {

/// A dense buffer in the bundle's device memory: its address and element
/// count (the size of the memref the kernels see; bytes for a cache pool).
struct GraphBuffer {
  DeviceAddress address = 0;
  uint64_t elements = 0;
};

class Graph {
public:
  /// Reads `graphPath` (graph.<target>.json) and checks it against
  /// `bundle`: the ABI version, that every kernel exists and that each
  /// kernel argument has a binding. ParseError / NotFound naming the field,
  /// kernel or argument otherwise. `bundle` must outlive the graph.
  static Status load(const std::string &graphPath, const KernelBundle &bundle,
                     std::unique_ptr<Graph> &out);
  ~Graph();

  /// Function names in file order.
  std::vector<std::string> functions() const;

  /// Runs function `name`: `args[i]` is argument i (a cache argument is its
  /// page pool: whole pages, then the batch's window regions, 16-byte
  /// aligned), `results[i]` the buffer result i is written to. Partial
  /// states of split-KV decode come from `workspace`, allocated before the
  /// first launch and released after the step. Launches on `stream` of the
  /// bundle's backend and returns once the step has completed, also when a
  /// launch fails. InvalidArgument (naming function, step and operand) on
  /// wrong buffer counts, sizes or alignment; nothing is launched then.
  Status run(const std::string &name, const std::vector<GraphBuffer> &args,
             const std::vector<GraphBuffer> &results, MemoryBackend &workspace,
             StreamHandle stream = nullptr) const;

  struct Step;
  struct Function;

private:
  Graph() = default;
  const KernelBundle *bundle_ = nullptr;
  std::vector<Function> functions_;
};

} // namespace rt
} // namespace kvopt

#endif // KVOPT_RUNTIME_GRAPH_H
