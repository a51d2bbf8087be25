// The example graphs of examples/graphs raise completely: no attention
// contraction, softmax or concatenation remains, the kv ops appear, and the
// projections the other passes read are kept.
// RUN: kvopt-opt %kvopt_src/examples/graphs/llama-gqa-layer.mlir -kv-raise-attention --mlir-print-local-scope | FileCheck %s --check-prefix=LLAMA
// RUN: kvopt-opt %kvopt_src/examples/graphs/mha-layer.mlir -kv-raise-attention --mlir-print-local-scope | FileCheck %s --check-prefix=MHA
// RUN: kvopt-opt %kvopt_src/examples/graphs/llama-4layer.mlir -kv-raise-attention --mlir-print-local-scope | FileCheck %s --check-prefix=FOUR
// RUN: kvopt-opt %kvopt_src/examples/graphs/llama-4layer.mlir -kv-raise-attention -kv-mha-to-gqa=kv-heads=1 -kv-share-layers=group-size=2 --mlir-print-local-scope | FileCheck %s --check-prefix=COMPOSE
// RUN: kvopt-opt %kvopt_src/examples/graphs/deepseek-mla-layer.mlir -kv-raise-attention --mlir-print-local-scope | FileCheck %s --check-prefix=MLA
// RUN: kvopt-opt %kvopt_src/examples/graphs/deepseek-mla-layer.mlir -kv-raise-attention -kv-absorb-mla --mlir-print-local-scope | FileCheck %s --check-prefix=ABSORB

// LLAMA-LABEL: func @llama_gqa_layer
// LLAMA-SAME: %{{.*}}: !kv.cache<kv_heads = 2, head_dim = 16, capacity = 8, element = f32> {kv.layer = 0 : i64}
// LLAMA-NOT: tensor.concat
// LLAMA: %[[Q:.*]] = linalg.transpose
// LLAMA: %[[K:.*]] = linalg.transpose
// LLAMA: %[[V:.*]] = linalg.transpose
// LLAMA: kv.append %{{.*}}[%{{.*}}], %[[K]], %[[V]]
// LLAMA: kv.view
// LLAMA: kv.attention %[[Q]], %{{.*}} {scale = 2.500000e-01 : f32} : (tensor<2x8x1x16xf32>
// LLAMA-NOT: linalg.softmax
// LLAMA-NOT: linalg.generic
// LLAMA: linalg.matmul
// LLAMA: return

// MHA-LABEL: func @mha_layer
// MHA-SAME: !kv.cache<kv_heads = 4, head_dim = 16, capacity = 8, element = f32> {kv.layer = 0 : i64}
// MHA: kv.append
// MHA: kv.attention {{.*}} {scale = 2.500000e-01 : f32} : (tensor<2x4x1x16xf32>
// MHA-NOT: linalg.batch_matmul
// MHA-NOT: linalg.reduce
// MHA-NOT: linalg.generic
// MHA-NOT: tensor.concat

// FOUR-LABEL: func @llama_4layer
// FOUR-SAME: {kv.layer = 0 : i64}, %{{.*}}: !kv.cache<{{.*}}> {kv.layer = 1 : i64}, %{{.*}}: !kv.cache<{{.*}}> {kv.layer = 2 : i64}, %{{.*}}: !kv.cache<{{.*}}> {kv.layer = 3 : i64}
// FOUR-COUNT-4: kv.attention
// FOUR-NOT: linalg.softmax
// FOUR-NOT: tensor.concat

// After raising, the other technique passes compose: the KV projections are
// pooled to one head, and layers 1 and 3 share the caches of layers 0 and 2.
// COMPOSE: !kv.cache<kv_heads = 1, head_dim = 16
// COMPOSE-COUNT-2: kv.share_cache

// The MLA example: the past latent rows become a latent cache, the new row is
// kv.mla_project of the two down-projections, the up-projections read the
// cache's view, and the attention itself stays in linalg.
// MLA-LABEL: func @deepseek_mla_layer
// MLA-SAME: %[[C:[a-z0-9_]+]]: !kv.latent_cache<latent_dim = 32, rope_dim = 8, capacity = 8, element = f32> {kv.layer = 0 : i64}
// MLA-NOT: tensor.concat dim(1)
// MLA: %[[ROW:.*]] = kv.mla_project %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x1x64xf32>, tensor<64x32xf32>, tensor<64x8xf32> -> tensor<2x1x40xf32>
// MLA: kv.append %[[C]][%{{.*}}], %[[ROW]]
// MLA: %[[VIEW:.*]] = kv.view %[[C]]
// MLA: tensor.extract_slice %[[VIEW]][0, 0, 0] [2, 8, 32]
// MLA: linalg.softmax
// MLA: return %{{.*}}, %[[VIEW]]

// ABSORB-LABEL: func @deepseek_mla_layer
// ABSORB: kv.mla_attention {{.*}} {scale = 0.204124{{[0-9]*}} : f32} : (tensor<2x4x1x32xf32>, tensor<2x4x1x8xf32>, !kv.latent_cache<{{.*}}>, tensor<2xi32>) -> tensor<2x4x1x32xf32>
// ABSORB-NOT: linalg.softmax
// ABSORB-NOT: tensor.concat
