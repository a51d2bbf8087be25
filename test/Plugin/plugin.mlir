// RUN: mlir-opt %s --load-dialect-plugin=%kvopt_lib/libKVOptPlugin%shlibext --mlir-print-local-scope | FileCheck %s --check-prefix=PARSE
// RUN: mlir-opt %s --load-dialect-plugin=%kvopt_lib/libKVOptPlugin%shlibext --pass-pipeline="builtin.module(kv-paginate{page-size=32})" --mlir-print-local-scope | FileCheck %s --check-prefix=PAGE
// RUN: mlir-opt %s --load-pass-plugin=%kvopt_lib/libKVOptPlugin%shlibext --load-dialect-plugin=%kvopt_lib/libKVOptPlugin%shlibext --pass-pipeline="builtin.module(kv-quantize{key=int4 key-group=32 value=int8},kv-memory-report)" -o /dev/null | FileCheck %s --check-prefix=REPORT
// RUN: not mlir-opt %s --load-dialect-plugin=%kvopt_lib/libKVOptPlugin%shlibext --pass-pipeline="builtin.module(kv-paginate{page-size=0})" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: mlir-opt --load-pass-plugin=%kvopt_lib/libKVOptPlugin%shlibext --help | FileCheck %s --check-prefix=HELP
// The stock mlir-opt loads the kv dialect and passes from the plugin.

// PARSE: func.func @f(%{{.*}}: !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f32>
// PARSE: kv.attention
// PAGE: layout = #kv.layout<paged, page_size = 32>>, %[[BT:.*]]: tensor<?x2xi32>
// PAGE: kv.attention {{.*}} block_table %[[BT]]
// REPORT: 0 kv 2x64 f32 K:int4/ch32 V:int8/tok contiguous
// BAD: error: kv-paginate: option 'page-size' must be in 1..4096, got 0
// HELP-DAG: --kv-paginate
// HELP-DAG: --kv-optimize
func.func @f(%c: !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f32>,
             %q: tensor<1x4x1x64xf32>, %lens: tensor<1xi32>) -> tensor<1x4x1x64xf32> {
  %o = kv.attention %q, %c, %lens : (tensor<1x4x1x64xf32>, !kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, element = f32>, tensor<1xi32>) -> tensor<1x4x1x64xf32>
  return %o : tensor<1x4x1x64xf32>
}
