// CUDA core of the batched subnet evaluation (layout in subnet_eval.h).
//
// MLP: one block per (group, chunk of up to 16 rows); the chunk's activations live in shared
// memory through every layer, each thread owns output columns and accumulates all the chunk's
// rows in registers, so every weight is read once per chunk (coalesced across threads).
//
// CNN: one launch per layer over the whole batch. Every layer is the same shared-memory tiled
// implicit GEMM (32 rows x 32 output channels per block, 16-deep inner tiles) whose A operand is
// gathered straight from the NHWC activation planes (no im2col buffer): conv layers take one block
// row per image and tile its output positions; the FC layer tiles the rows of a group chunk with
// one tap per spatial position; the heads write logits and values. Every declared conv layer has
// its own output plane, so a row whose subnet skips optional layers reads the plane of its last
// active one. Blocks whose tile lies outside
// their subnet's active outputs exit at once, so each group only computes its own channels.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "subnet_eval.h"
#include "subnet_eval_cnn_cuda.cuh"
#include "subnet_eval_common_cuda.cuh"

namespace a2d {
namespace subnet_eval {
namespace {

// ------------------------------------------------------------------ MLP

__global__ void mlp_kernel(MlpNet net, const float* __restrict__ obs,
                           const int32_t* __restrict__ archs, const int32_t* __restrict__ chunks,
                           int dmax, float* __restrict__ logits, float* __restrict__ values) {
  extern __shared__ float sm[];
  const int32_t* ch = chunks + 3 * static_cast<int64_t>(blockIdx.x);
  const int g = ch[0], row0 = ch[1], rows = ch[2];
  const int32_t* a = archs + static_cast<int64_t>(g) * (1 + net.depth_max);
  float* x = sm;
  float* y = sm + kMlpRows * dmax;
  for (int e = threadIdx.x; e < rows * net.obs_dim; e += blockDim.x) {
    x[(e / net.obs_dim) * dmax + e % net.obs_dim] =
        obs[static_cast<int64_t>(row0) * net.obs_dim + e];
  }
  __syncthreads();
  int cin = net.obs_dim;
  for (int l = 0; l < a[0]; ++l) {
    const int co = a[1 + l];
    const float* w = net.w[l];
    for (int o = threadIdx.x; o < co; o += blockDim.x) {
      float acc[kMlpRows];
#pragma unroll
      for (int r = 0; r < kMlpRows; ++r) acc[r] = 0.f;
      for (int k = 0; k < cin; ++k) {
        const float wk = w[static_cast<int64_t>(k) * net.ldw + o];
#pragma unroll
        for (int r = 0; r < kMlpRows; ++r) {
          if (r < rows) acc[r] += x[r * dmax + k] * wk;
        }
      }
      const float b = net.b[l][o];
#pragma unroll
      for (int r = 0; r < kMlpRows; ++r) {
        if (r < rows) y[r * dmax + o] = tanhf(acc[r] + b);
      }
    }
    __syncthreads();
    float* t = x;
    x = y;
    y = t;
    cin = co;
  }
  const int n_out = net.n_actions + 1;
  for (int o = threadIdx.x; o < n_out; o += blockDim.x) {
    float acc[kMlpRows];
#pragma unroll
    for (int r = 0; r < kMlpRows; ++r) acc[r] = 0.f;
    for (int k = 0; k < cin; ++k) {
      const float wk = net.head_w[static_cast<int64_t>(k) * net.ldh + o];
#pragma unroll
      for (int r = 0; r < kMlpRows; ++r) {
        if (r < rows) acc[r] += x[r * dmax + k] * wk;
      }
    }
    const float b = net.head_b[o];
#pragma unroll
    for (int r = 0; r < kMlpRows; ++r) {
      if (r >= rows) continue;
      const int64_t row = row0 + r;
      if (o < net.n_actions) {
        logits[row * net.n_actions + o] = acc[r] + b;
      } else {
        values[row] = acc[r] + b;
      }
    }
  }
}

}  // namespace

int64_t mlp_cuda_workspace_bytes(const MlpNet& net, int64_t n_rows, int64_t n_groups) {
  return static_cast<int64_t>(align(sizeof(int32_t) * n_groups * mlp_arch_len(net)) +
                              align(sizeof(int32_t) * 3 * max_chunks(n_rows, n_groups, kMlpRows)));
}

int64_t cnn_cuda_workspace_bytes(const CnnNet& net, int64_t n_rows, int64_t n_groups) {
  const CnnPlanes c = cnn_planes(net);
  int64_t per_row = c.input.img + net.ldf;
  for (int i = 0; i < net.n_layers; ++i) per_row += c.out[i].img;
  return static_cast<int64_t>(
      align(sizeof(int32_t) * n_groups * cnn_arch_len(net)) + align(sizeof(int32_t) * n_rows) +
      align(sizeof(int32_t) * 3 * max_chunks(n_rows, n_groups, kChunkRows)) +
      (net.n_layers + 6) * kAlign + sizeof(float) * per_row * n_rows);
}

void mlp_forward_cuda(const MlpNet& net, uintptr_t obs, int64_t n_rows, const int32_t* archs,
                      const int64_t* rows, int64_t n_groups, uintptr_t logits, uintptr_t values,
                      uintptr_t workspace, int64_t workspace_bytes, uintptr_t stream) {
  auto st = reinterpret_cast<cudaStream_t>(stream);
  const int dmax = std::max(net.obs_dim, net.ldw);
  const size_t smem = sizeof(float) * 2 * kMlpRows * dmax;
  if (smem > kMaxShared) {
    throw std::invalid_argument(
        "subnet_eval: MLP too wide for the CUDA kernel's shared memory (obs_dim " +
        std::to_string(net.obs_dim) + ", padded width " + std::to_string(net.ldw) + ": " +
        std::to_string(smem) + " bytes, at most " + std::to_string(kMaxShared) + ")");
  }
  if (n_rows == 0) return;
  // chunk_table stores row offsets as int32, as the CNN path
  if (n_rows > (1LL << 31) - 1) throw std::invalid_argument("subnet_eval: too many rows");
  Arena ar{reinterpret_cast<char*>(workspace), 0, static_cast<size_t>(workspace_bytes)};
  const size_t arch_bytes = sizeof(int32_t) * n_groups * mlp_arch_len(net);
  auto* d_archs = static_cast<int32_t*>(ar.take(arch_bytes));
  const std::vector<int32_t> chunks = chunk_table(rows, n_groups, kMlpRows);
  auto* d_chunks = static_cast<int32_t*>(ar.take(sizeof(int32_t) * chunks.size()));
  check(cudaMemcpyAsync(d_archs, archs, arch_bytes, cudaMemcpyHostToDevice, st), "copy");
  check(cudaMemcpyAsync(d_chunks, chunks.data(), sizeof(int32_t) * chunks.size(),
                        cudaMemcpyHostToDevice, st),
        "copy");
  const int n_chunks = static_cast<int>(chunks.size() / 3);
  mlp_kernel<<<n_chunks, kMlpThreads, smem, st>>>(net, reinterpret_cast<const float*>(obs), d_archs,
                                                  d_chunks, dmax, reinterpret_cast<float*>(logits),
                                                  reinterpret_cast<float*>(values));
  check(cudaGetLastError(), "mlp kernel launch");
}

void cnn_forward_cuda(const CnnNet& net, uintptr_t obs, int64_t n_rows, const int32_t* archs,
                      const int64_t* rows, int64_t n_groups, uintptr_t logits, uintptr_t values,
                      uintptr_t workspace, int64_t workspace_bytes, uintptr_t stream) {
  auto st = reinterpret_cast<cudaStream_t>(stream);
  if (n_rows == 0) return;
  if (n_rows > (1LL << 31) - 1) throw std::invalid_argument("subnet_eval: too many rows");
  Arena ar{reinterpret_cast<char*>(workspace), 0, static_cast<size_t>(workspace_bytes)};
  const size_t arch_bytes = sizeof(int32_t) * n_groups * cnn_arch_len(net);
  auto* d_archs = static_cast<int32_t*>(ar.take(arch_bytes));
  std::vector<int32_t> row_group(static_cast<size_t>(n_rows));
  for (int64_t g = 0; g < n_groups; ++g) {
    for (int64_t r = rows[g]; r < rows[g + 1]; ++r) row_group[r] = static_cast<int32_t>(g);
  }
  auto* d_row_group = static_cast<int32_t*>(ar.take(sizeof(int32_t) * n_rows));
  const std::vector<int32_t> chunks = chunk_table(rows, n_groups, kChunkRows);
  auto* d_chunks = static_cast<int32_t*>(ar.take(sizeof(int32_t) * chunks.size()));
  check(cudaMemcpyAsync(d_archs, archs, arch_bytes, cudaMemcpyHostToDevice, st), "copy");
  check(cudaMemcpyAsync(d_row_group, row_group.data(), sizeof(int32_t) * n_rows,
                        cudaMemcpyHostToDevice, st),
        "copy");
  check(cudaMemcpyAsync(d_chunks, chunks.data(), sizeof(int32_t) * chunks.size(),
                        cudaMemcpyHostToDevice, st),
        "copy");
  CnnPlanes c = cnn_planes(net);
  c.input.data = static_cast<float*>(ar.take(sizeof(float) * c.input.img * n_rows));
  for (int i = 0; i < net.n_layers; ++i) {
    c.out[i].data = static_cast<float*>(ar.take(sizeof(float) * c.out[i].img * n_rows));
  }
  auto* h1 = static_cast<float*>(ar.take(sizeof(float) * net.ldf * n_rows));
  if (c.input.pad > 0) {
    check(cudaMemsetAsync(c.input.data, 0, sizeof(float) * c.input.img * n_rows, st), "memset");
  }
  for (int i = 0; i < net.n_layers; ++i) {  // zero borders of the planes same-padded layers read
    if (c.out[i].pad > 0) {
      check(cudaMemsetAsync(c.out[i].data, 0, sizeof(float) * c.out[i].img * n_rows, st), "memset");
    }
  }
  const int64_t s2d_total = n_rows * c.input.h * c.input.w * c.input.ld;
  const int s2d_blocks = static_cast<int>(std::min<int64_t>((s2d_total + 255) / 256, 1 << 16));
  s2d_kernel<<<s2d_blocks, 256, 0, st>>>(net, reinterpret_cast<const uint8_t*>(obs), c.input,
                                         net.conv[0].q, n_rows);
  check(cudaGetLastError(), "s2d kernel launch");

  Layer L{};
  L.archs = d_archs;
  L.row_group = d_row_group;
  L.chunks = d_chunks;
  L.input = c.input;
  for (int i = 0; i < net.n_layers; ++i) L.out[i] = c.out[i];
  L.h1 = h1;
  L.logits = reinterpret_cast<float*>(logits);
  L.values = reinterpret_cast<float*>(values);
  for (int i = 0; i < net.n_layers; ++i) {
    L.mode = kConv;
    L.index = i;
    const int64_t positions = static_cast<int64_t>(net.conv[i].oh) * net.conv[i].ow;
    const int64_t tiles = std::min<int64_t>((positions + TM - 1) / TM, kMaxGridY);
    dim3 grid(static_cast<unsigned>(n_rows), static_cast<unsigned>(tiles),
              static_cast<unsigned>((net.conv[i].cmax + TN - 1) / TN));
    layer_kernel<<<grid, 256, 0, st>>>(net, L);
    check(cudaGetLastError(), "conv kernel launch");
  }
  const unsigned n_chunks = static_cast<unsigned>(chunks.size() / 3);
  L.mode = kFc;
  layer_kernel<<<dim3(n_chunks, 1, static_cast<unsigned>((net.fc_max + TN - 1) / TN)), 256, 0,
                 st>>>(net, L);
  check(cudaGetLastError(), "fc kernel launch");
  L.mode = kHeads;
  layer_kernel<<<dim3(n_chunks, 1, static_cast<unsigned>((net.n_actions + 1 + TN - 1) / TN)), 256,
                 0, st>>>(net, L);
  check(cudaGetLastError(), "heads kernel launch");
}

}  // namespace subnet_eval
}  // namespace a2d
