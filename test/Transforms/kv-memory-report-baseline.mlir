// RUN: kvopt-opt %s -split-input-file -kv-memory-report=record-baseline=true --mlir-print-local-scope | FileCheck %s --check-prefix=RECORD
// RUN: kvopt-opt %s -split-input-file -kv-memory-report=record-baseline=true -kv-share-layers=group-size=2 -kv-quantize="key=int8 key-axis=token key-group=0 value=int4 value-sinks=4" -kv-memory-report="budget-gib=1 batch=2" | FileCheck %s
// RUN: kvopt-opt %s -split-input-file -kv-memory-report=record-baseline=true -kv-share-layers=group-size=2 -kv-quantize="key=int8 key-axis=token key-group=0 value=int4 value-sinks=4" -kv-memory-report="format=json budget-gib=1 batch=2" -o /dev/null | FileCheck %s --check-prefix=JSON
// RUN: not kvopt-opt %s -split-input-file -kv-memory-report 2>&1 | FileCheck %s --check-prefix=BAD
// The report before and after techniques, per layer and in total, from the
// baseline record-baseline leaves in the module (numbers by hand,
// docs/CacheLayout.md).

// Four GQA layers 8 x 128 f16: 2 * 8 * 128 * 2 = 4096 B/token each, 16384 in
// total, no windows, contiguous (page size 1), capacity 4096.
// RECORD: module attributes {kv.baseline = {bytes_per_token = 1.638400e+04 : f64, capacity = 4096 : i64, fixed_bytes_per_sequence = 0 : i64, layers = [{bytes_per_token = 4.096000e+03 : f64, layer = 0 : i64}, {bytes_per_token = 4.096000e+03 : f64, layer = 1 : i64}, {bytes_per_token = 4.096000e+03 : f64, layer = 2 : i64}, {bytes_per_token = 4.096000e+03 : f64, layer = 3 : i64}], page_size = 1 : i64}}

// After: layers 1 and 3 share the caches of 0 and 2; int8 keys per token
// with one f16 scale and zero point per head: 1024 + 8 * 2 * 2 = 1056; int4
// values per token: 512 + 32 = 544; 1600 per cache, 3200 in total
// (16384 / 3200 = 5.12x). Four value sink tokens per cache: 4 * 8 * 128 * 2
// = 8192 fixed bytes each, 16384 in all.
// Max context at batch 2 in 1 GiB: (512 MiB - 16384) / 3200 = 167767.04
// tokens, before 512 MiB / 16384 = 32768. Max batch at capacity 4096:
// 1 GiB / (4096 * 3200 + 16384) = 81.8, before 1 GiB / (4096 * 16384) = 16.
// CHECK: KV memory report (budget 1.00 GiB, batch 2)
// CHECK-NEXT: layer cache bytes/token before
// CHECK-NEXT: 0 kv 8x128 f16 K:int8/tok V:int4/tok contiguous 1600.00 4096.00
// CHECK-NEXT: 1 shares the cache of layer 0 0.00 4096.00
// CHECK-NEXT: 2 kv 8x128 f16 K:int8/tok V:int4/tok contiguous 1600.00 4096.00
// CHECK-NEXT: 3 shares the cache of layer 2 0.00 4096.00
// CHECK-NEXT: total bytes per token: 3200.00 (before: 16384.00, 5.12x smaller)
// CHECK-NEXT: fixed bytes per sequence (full-precision windows): 16384 (before: 0)
// CHECK-NEXT: max context per sequence at batch 2: 167767 tokens (before: 32768)
// CHECK-NEXT: max batch at capacity 4096: 81 sequences (before: 16)
// CHECK-NEXT: kv-memory-report: 4 layers, 2 caches, 3200.00 B/token (was 16384.00, 5.12x smaller), max context 167767 tokens at batch 2 in 1.00 GiB
// The report consumes the baseline.
// CHECK-NOT: kv.baseline
// CHECK-LABEL: func @four_layers
// JSON: "baseline_bytes_per_token": 16384
// JSON: "baseline_fixed_bytes_per_sequence": 0
// JSON: "baseline_max_batch_at_capacity": 16
// JSON: "baseline_max_context_per_sequence": 32768
// JSON: "bytes_per_token": 3200
// JSON: "fixed_bytes_per_sequence": 16384
// JSON: "layers": [
// JSON: "baseline_bytes_per_token": 4096
// JSON-NEXT: "bytes_per_token": 1600
// JSON: "layer": 0
// JSON: "baseline_bytes_per_token": 4096
// JSON-NEXT: "bytes_per_token": 0
// JSON-NEXT: "layer": 1
// JSON-NEXT: "shares_layer": 0
// JSON: "max_batch_at_capacity": 81
// JSON: "max_context_per_sequence": 167767
!c = !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>
func.func @four_layers(%c0: !c {kv.layer = 0 : i64}, %c1: !c {kv.layer = 1 : i64},
                       %c2: !c {kv.layer = 2 : i64}, %c3: !c {kv.layer = 3 : i64}) {
  return
}

// -----

// A baseline that record-baseline did not write is an error, not a guess.
// BAD: error: kv-memory-report: malformed 'kv.baseline' attribute (left by record-baseline)
module attributes {kv.baseline = {bytes_per_token = 1.0 : f64}} {
  func.func @hand_written(%c0: !kv.cache<kv_heads = 8, head_dim = 128, capacity = 4096, element = f16>) {
    return
  }
}
