//===- BundleCaseMain.cpp - print the bundle test's module ----------------===//
//
// Writes decodeModuleText(bundleCase()) to argv[1] (build step of
// kvopt-gpu-bundle-tests).
//
//===----------------------------------------------------------------------===//

#include "BundleCase.h"

#include <fstream>
#include <iostream>

int main(int argc, char **argv) {
  if (argc != 2) {
    std::cerr << "usage: kvopt-gpu-bundle-case OUT.mlir\n";
    return 1;
  }
  std::ofstream os(argv[1]);
  os << kvopt::gpu_test::decodeModuleText(kvopt::gpu_test::bundleCase());
  return os ? 0 : 1;
}
