// RUN: not kvopt-opt %s -kv-quantize=key=int3 2>&1 | FileCheck %s --check-prefix=KIND
// RUN: not kvopt-opt %s -kv-quantize=key-axis=row 2>&1 | FileCheck %s --check-prefix=AXIS
// RUN: not kvopt-opt %s -kv-quantize=scale-type=i8 2>&1 | FileCheck %s --check-prefix=SCALE
// RUN: not kvopt-opt %s -kv-quantize="key-axis=channel key-group=0" 2>&1 | FileCheck %s --check-prefix=GROUP
// RUN: not kvopt-opt %s -kv-quantize="value-group=48" 2>&1 | FileCheck %s --check-prefix=FIT
// RUN: not kvopt-opt %s -kv-quantize="recent=5000" 2>&1 | FileCheck %s --check-prefix=WINDOW
// RUN: not kvopt-opt %s -kv-quantize="recent=-2" 2>&1 | FileCheck %s --check-prefix=RECENT
// RUN: not kvopt-opt %s -kv-quantize="sinks=-1" 2>&1 | FileCheck %s --check-prefix=SINKS
// RUN: not kvopt-opt %s -kv-quantize="key-recent=-3" 2>&1 | FileCheck %s --check-prefix=KRECENT
// RUN: not kvopt-opt %s -kv-quantize="value-recent=-7" 2>&1 | FileCheck %s --check-prefix=VRECENT
// RUN: not kvopt-opt %s -kv-quantize="key-sinks=-5" 2>&1 | FileCheck %s --check-prefix=KSINKS
// RUN: not kvopt-opt %s -kv-quantize="value-sinks=-2" 2>&1 | FileCheck %s --check-prefix=VSINKS
// RUN: not kvopt-opt %s -kv-quantize="recent=3" 2>&1 | FileCheck %s --check-prefix=SHORT
// RUN: not kvopt-opt %s -kv-quantize="recent=40 key-recent=3" 2>&1 | FileCheck %s --check-prefix=KSHORT
// RUN: not kvopt-opt %s -kv-quantize="value-axis=channel value-group=16 value-recent=2" 2>&1 | FileCheck %s --check-prefix=VSHORT
// RUN: not kvopt-opt %s -kv-quantize="value-sinks=5000" 2>&1 | FileCheck %s --check-prefix=VFIT
// Bad options give a message naming the option.

// KIND: error: kv-quantize: option 'key' must be none, int8, fp8_e4m3, int4 or int2, got 'int3'
// AXIS: error: kv-quantize: option 'key-axis' must be token or channel, got 'row'
// SCALE: error: kv-quantize: option 'scale-type' must be f16, bf16 or f32, got 'i8'
// GROUP: error: kv-quantize: options 'key', 'key-axis', 'key-group', 'recent' or 'sinks': per-channel scales need a token group size (group >= 1)
// FIT: error: kv-quantize: the key/value options do not fit '!kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>': value encoding group size 48 does not divide head dim 128
// WINDOW: error: kv-quantize: the key/value options do not fit '!kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>': key encoding keeps 5000 full-precision tokens, more than the capacity 4096
// RECENT: error: kv-quantize: option 'recent' must be -1 or a token count >= 0, got -2
// SINKS: error: kv-quantize: option 'sinks' must be a token count >= 0, got -1
// KRECENT: error: kv-quantize: option 'key-recent' must be -2 (take 'recent'), -1 or a token count >= 0, got -3
// VRECENT: error: kv-quantize: option 'value-recent' must be -2 (take 'recent'), -1 or a token count >= 0, got -7
// KSINKS: error: kv-quantize: option 'key-sinks' must be -1 (take 'sinks') or a token count >= 0, got -5
// VSINKS: error: kv-quantize: option 'value-sinks' must be -1 (take 'sinks') or a token count >= 0, got -2
// A recent window too short for a per-channel group names the option that
// set it: the shared one, or the side's override.
// SHORT: error: kv-quantize: option 'recent' must be at least 'key-group' - 1 = 31 for per-channel keys, got 3
// KSHORT: error: kv-quantize: option 'key-recent' must be at least 'key-group' - 1 = 31 for per-channel keys, got 3
// VSHORT: error: kv-quantize: option 'value-recent' must be at least 'value-group' - 1 = 15 for per-channel values, got 2
// VFIT: error: kv-quantize: the key/value options do not fit '!kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>': value encoding keeps 5000 full-precision tokens, more than the capacity 4096
func.func @f(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>) {
  return
}
