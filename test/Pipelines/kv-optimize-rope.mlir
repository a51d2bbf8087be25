// RUN: kvopt-opt %kvopt_src/examples/graphs/llama-rope-layer.mlir --kv-raise-attention --kv-raise-rope --mlir-print-local-scope | FileCheck %s --check-prefix=RAISE
// RUN: kvopt-opt %kvopt_src/examples/graphs/llama-rope-layer.mlir --kv-optimize="page-size=0 report=false" --mlir-print-local-scope | FileCheck %s --check-prefix=OPT
// RUN: kvopt-opt %kvopt_src/examples/graphs/llama-rope-layer.mlir --kv-optimize="kv-heads=1 page-size=16 key=int4 value=int4 capacity=64" --mlir-print-local-scope | FileCheck %s --check-prefix=GQA
// RoPE in the Llama-style example graph: raising turns both rotations into
// kv.rope at position 7 (theta 10000 inferred from the tables), and the
// kv-optimize pipeline folds the key rotation into the append.

// RAISE-LABEL: func @llama_rope_layer
// RAISE-SAME: %[[CACHE:[a-z0-9]+]]: !kv.cache<kv_heads = 2, head_dim = 16, capacity = 8, element = f32> {kv.layer = 0 : i64}
// RAISE-DAG: %[[Q:.*]] = linalg.transpose ins(%{{.*}} : tensor<2x1x8x16xf32>)
// RAISE-DAG: %[[K:.*]] = linalg.transpose ins(%{{.*}} : tensor<2x1x2x16xf32>)
// RAISE-DAG: %[[QR:.*]] = kv.rope %[[Q]], %{{.*}} {theta = 1.000000e+04 : f64} : tensor<2x8x1x16xf32>
// RAISE-DAG: %[[KR:.*]] = kv.rope %[[K]], %{{.*}} {theta = 1.000000e+04 : f64} : tensor<2x2x1x16xf32>
// RAISE-DAG: kv.append %[[CACHE]][%{{.*}}], %[[KR]], %{{.*}} :
// RAISE-DAG: kv.attention %[[QR]], %[[CACHE]]
// RAISE-NOT: tensor.concat
// RAISE-NOT: tensor.extract_slice
// RAISE-NOT: linalg.negf
// RAISE-NOT: linalg.generic
// RAISE-NOT: linalg.reduce

// OPT-LABEL: func @llama_rope_layer
// OPT: %[[K:.*]] = linalg.transpose ins(%{{.*}} : tensor<2x1x2x16xf32>)
// OPT: kv.rope %{{.*}} {theta = 1.000000e+04 : f64} : tensor<2x8x1x16xf32>
// OPT: kv.append %{{.*}}[%{{.*}}], %[[K]], %{{.*}} {rope_theta = 1.000000e+04 : f64}
// OPT: kv.attention
// OPT-NOT: kv.rope
// OPT-NOT: tensor.concat

// MHA->MQA still finds the key projection behind the rotation: one KV head,
// pooled weights, the fused rotation on the paged int4 cache.
// GQA-LABEL: func @llama_rope_layer
// GQA-SAME: !kv.cache<kv_heads = 1, head_dim = 16, capacity = 64, element = f32
// GQA: kv.append {{.*}} block_table {{.*}} {rope_theta = 1.000000e+04 : f64}
// GQA: kv.attention
