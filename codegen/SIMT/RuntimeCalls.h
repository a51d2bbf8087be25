//===- RuntimeCalls.h - Building calls into the SIMT runtime ----*- C++ -*-===//
//
// Helpers shared by the parts of kv-simt-emulate: declaring runtime
// functions on demand, numbering "sites" (instrumented operations, shown in
// reports), and the one table from nvvm op to runtime symbol.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_SIMT_RUNTIMECALLS_H
#define KVOPT_CODEGEN_SIMT_RUNTIMECALLS_H

#include "kvopt/Codegen/SIMT/NVVMMapping.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <string>
#include <vector>

namespace kvopt::simt {

/// Declares runtime functions in a module (once each) and calls them.
class RuntimeAPI {
public:
  explicit RuntimeAPI(mlir::ModuleOp module) : module(module) {}

  /// Declares `name : (args) -> result` (result may be null for void).
  /// Functions declared `pure` read no memory the kernel can see and always
  /// return, so LLVM may merge repeated calls (special registers).
  mlir::LLVM::LLVMFuncOp declare(llvm::StringRef name, mlir::Type result,
                                 mlir::TypeRange args, bool pure = false);
  /// Calls `name`, declaring it first if needed; returns the call.
  mlir::LLVM::CallOp call(mlir::OpBuilder &b, mlir::Location loc,
                          llvm::StringRef name, mlir::Type result,
                          mlir::ValueRange args, bool pure = false);

  mlir::Value i32(mlir::OpBuilder &b, mlir::Location loc, int64_t v);
  mlir::Value i64(mlir::OpBuilder &b, mlir::Location loc, int64_t v);

private:
  mlir::ModuleOp module;
};

/// Numbers the operations reports can point at. A site's text is
/// "<what> at <file>:<line>:<col>".
class SiteTable {
public:
  int32_t add(mlir::Operation *op, llvm::StringRef what);
  llvm::ArrayRef<std::string> names() const { return sites; }

private:
  std::vector<std::string> sites;
};

/// "file:line:col" of the first file location inside `loc`, or "?".
std::string describeLocation(mlir::Location loc);

/// Replaces `op` (an nvvm op with row `m`) by runtime calls. Emits an error
/// and fails for forms of a supported op the runtime cannot express.
mlir::LogicalResult lowerNVVMOp(mlir::Operation *op, const NVVMMapping &m,
                                RuntimeAPI &rt, SiteTable &sites);

} // namespace kvopt::simt

#endif // KVOPT_CODEGEN_SIMT_RUNTIMECALLS_H
