//===- BundleCaseMain.cpp - print the bundle test's module ----------------===//
//
// Writes decodeModuleText(bundleCase()) to argv[1], or of
// prefillBundleCase() with argv[2] = "prefill", or mlaBundleCase()'s module
// with "mla" (build steps of kvopt-gpu-bundle-tests).
//
//===----------------------------------------------------------------------===//

#include "BundleCase.h"

#include <fstream>
#include <iostream>
#include <string>

int main(int argc, char **argv) {
  std::string which = argc == 3 ? argv[2] : "";
  if ((argc != 2 && argc != 3) ||
      (argc == 3 && which != "prefill" && which != "mla")) {
    std::cerr << "usage: kvopt-gpu-bundle-case OUT.mlir [prefill|mla]\n";
    return 1;
  }
  std::ofstream os(argv[1]);
  using namespace kvopt::gpu_test;
  if (which == "mla")
    os << mlaBundleCase().moduleText();
  else
    os << decodeModuleText(which == "prefill" ? prefillBundleCase()
                                              : bundleCase());
  return os ? 0 : 1;
}
