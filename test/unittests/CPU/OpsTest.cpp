//===- OpsTest.cpp - CPU lowering of the remaining kv ops -----------------===//
//
// kv.rope, kv.merge_states, kv.quantize/kv.dequantize, kv.gather_pages,
// kv.view and kv.mla_project through the ExecutionEngine against the
// reference.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include "kvopt/Reference/Numeric.h"

#include <cmath>
#include <sstream>

using namespace kvopt;
using namespace kvopt::cputest;
using namespace kvopt::reference;
