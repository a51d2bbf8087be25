//===- SweepTest.cpp - the exhaustive CPU numerics grid -------------------===//
//
// Head dims x group sizes x page sizes x encodings x masks x splits, and MLA;
// runs only with KVOPT_CPU_SWEEP=1 (ctest -L sweep).
//
//===----------------------------------------------------------------------===//

#include "AttentionCases.h"

using namespace kvopt;
using namespace kvopt::cputest;
