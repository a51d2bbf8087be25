// RUN: not kvopt-opt %s -kv-quantize=key=int3 2>&1 | FileCheck %s --check-prefix=KIND
// RUN: not kvopt-opt %s -kv-quantize=key-axis=row 2>&1 | FileCheck %s --check-prefix=AXIS
// RUN: not kvopt-opt %s -kv-quantize=scale-type=i8 2>&1 | FileCheck %s --check-prefix=SCALE
// RUN: not kvopt-opt %s -kv-quantize="key-axis=channel key-group=0" 2>&1 | FileCheck %s --check-prefix=GROUP
// RUN: not kvopt-opt %s -kv-quantize="value-group=48" 2>&1 | FileCheck %s --check-prefix=FIT
// RUN: not kvopt-opt %s -kv-quantize="recent=5000" 2>&1 | FileCheck %s --check-prefix=WINDOW
// Bad options give a message naming the option.

// KIND: error: kv-quantize: option 'key' must be none, int8, fp8_e4m3, int4 or int2, got 'int3'
// AXIS: error: kv-quantize: option 'key-axis' must be token or channel, got 'row'
// SCALE: error: kv-quantize: option 'scale-type' must be f16, bf16 or f32, got 'i8'
// GROUP: error: kv-quantize: options 'key', 'key-axis', 'key-group', 'recent' or 'sinks': per-channel scales need a token group size (group >= 1)
// FIT: error: kv-quantize: the key/value options do not fit '!kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>': value encoding group size 48 does not divide head dim 128
// WINDOW: error: kv-quantize: the key/value options do not fit '!kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>': key encoding keeps 5000 full-precision tokens, more than the capacity 4096
func.func @f(%c: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>) {
  return
}
