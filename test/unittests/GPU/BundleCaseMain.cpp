//===- BundleCaseMain.cpp - print the bundle test's module ----------------===//
//
// Writes decodeModuleText(bundleCase()) to argv[1], or of
// prefillBundleCase() with argv[2] = "prefill" (build steps of
// kvopt-gpu-bundle-tests).
//
//===----------------------------------------------------------------------===//

#include "BundleCase.h"

#include <fstream>
#include <iostream>
#include <string>

int main(int argc, char **argv) {
  bool prefill = argc == 3 && std::string(argv[2]) == "prefill";
  if (argc != 2 && !prefill) {
    std::cerr << "usage: kvopt-gpu-bundle-case OUT.mlir [prefill]\n";
    return 1;
  }
  std::ofstream os(argv[1]);
  os << kvopt::gpu_test::decodeModuleText(
      prefill ? kvopt::gpu_test::prefillBundleCase()
              : kvopt::gpu_test::bundleCase());
  return os ? 0 : 1;
}
