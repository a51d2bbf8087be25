//===- InitAll.h - register everything kvopt provides -----------*- C++ -*-===//
//
// One place that registers the kvopt dialects and passes, shared by
// kvopt-opt, the mlir-opt plugin and tests.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_INITALL_H
#define KVOPT_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace kvopt {
/// Adds the kvopt dialects (not upstream ones) to `registry`.
void registerAllDialects(mlir::DialectRegistry &registry);
/// Registers the kvopt passes and pipelines with the global registry.
void registerAllPasses();
} // namespace kvopt

#endif // KVOPT_INITALL_H
