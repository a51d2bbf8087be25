# -*- Python -*-
# lit configuration of the kvopt test suite: tools from the build tree first,
# then LLVM's; features for optional tools (ptxas) and for long sweeps.

import os
import sys

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "KVOPT"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.kvopt_obj_root, "test")
config.excludes = ["CMakeLists.txt", "README.md", "unittests", "Inputs", "lit.cfg.py"]

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [os.path.join(config.kvopt_obj_root, "bin"), config.llvm_tools_dir]
tools = [
    "kvopt-opt",
    ToolSubst("mlir-opt", unresolved="ignore"),
    ToolSubst("mlir-runner", unresolved="ignore"),
    ToolSubst("FileCheck", unresolved="fatal"),
]
llvm_config.add_tool_substitutions(tools, tool_dirs)

config.substitutions.append(("%kvopt_lib", os.path.join(config.kvopt_obj_root, "lib")))
config.substitutions.append(("%kvopt_src", config.kvopt_src_root))
config.substitutions.append(("%mlir_lib_dir", config.mlir_lib_dir))
config.substitutions.append(("%shlibext", config.llvm_shlib_ext))
config.substitutions.append(("%python", sys.executable))

if config.ptxas and os.path.exists(config.ptxas):
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", config.ptxas))

# Exhaustive sweeps run only with `lit --param sweep=1` (not in CI).
if lit_config.params.get("sweep", "0") not in ("0", ""):
    config.available_features.add("sweep")
