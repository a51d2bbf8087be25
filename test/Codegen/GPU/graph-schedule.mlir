// kvopt-gpu-bundle's graph.<target>.json: functions made of kv ops over
// their arguments are scheduled; functions whose results a step would not
// write, or that compute on the host, are left out with a warning.
// RUN: rm -rf %t && %kvopt_lib/../bin/kvopt-gpu-bundle --chip sm_80 %s -o %t 2>&1 | FileCheck %s --check-prefix=WARN
// RUN: FileCheck %s --input-file %t/graph.sm_80.json

// WARN-DAG: warning: function @twice is not in graph.sm_80.json: result 1 repeats another result
// WARN-DAG: warning: function @passthrough is not in graph.sm_80.json: result 1 is not an attention output
// WARN-DAG: warning: function @host is not in graph.sm_80.json: it computes arith.addi on the host; the graph runner launches kv ops only

// CHECK: "abi_version": 1
// CHECK: "name": "step"
// CHECK: "op": "attention"
// CHECK: "out": 0
// CHECK: "page_bytes": 8192
// CHECK: "rows_per_sequence": 4
// CHECK: "window_bytes": 0
// CHECK-NOT: "name": "twice"
// CHECK-NOT: "name": "passthrough"
// CHECK-NOT: "name": "host"

func.func @step(%q: tensor<2x4x1x64xf16>, %c: !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>, %lens: tensor<2xi32>, %bt: tensor<2x4xi32>) -> tensor<2x4x1x64xf16> {
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<2x4x1x64xf16>, !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>, tensor<2xi32>, tensor<2x4xi32>) -> tensor<2x4x1x64xf16>
  return %o : tensor<2x4x1x64xf16>
}

func.func @twice(%q: tensor<2x4x1x64xf16>, %c: !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>, %lens: tensor<2xi32>, %bt: tensor<2x4xi32>) -> (tensor<2x4x1x64xf16>, tensor<2x4x1x64xf16>) {
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<2x4x1x64xf16>, !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>, tensor<2xi32>, tensor<2x4xi32>) -> tensor<2x4x1x64xf16>
  return %o, %o : tensor<2x4x1x64xf16>, tensor<2x4x1x64xf16>
}

func.func @passthrough(%q: tensor<2x4x1x64xf16>, %c: !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>, %lens: tensor<2xi32>, %bt: tensor<2x4xi32>) -> (tensor<2x4x1x64xf16>, tensor<2x4x1x64xf16>) {
  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<2x4x1x64xf16>, !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>, tensor<2xi32>, tensor<2x4xi32>) -> tensor<2x4x1x64xf16>
  return %o, %q : tensor<2x4x1x64xf16>, tensor<2x4x1x64xf16>
}

func.func @host(%q: tensor<2x4x1x64xf16>, %c: !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>, %lens: tensor<2xi32>, %bt: tensor<2x4xi32>) -> tensor<2x4x1x64xf16> {
  %l2 = arith.addi %lens, %lens : tensor<2xi32>
  %o = kv.attention %q, %c, %l2 block_table %bt : (tensor<2x4x1x64xf16>, !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f16, layout = #kv.layout<paged, page_size = 16>>, tensor<2xi32>, tensor<2x4xi32>) -> tensor<2x4x1x64xf16>
  return %o : tensor<2x4x1x64xf16>
}
