// Shared by the CUDA subnet evaluation's translation unit (subnet_eval_cuda.cu, the only file
// that includes this one, directly and through subnet_eval_cnn_cuda.cuh): tile sizes, error
// checks, the host-side chunk table, the workspace arena and the NaN-keeping relu.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "subnet_eval.h"

namespace a2d {
namespace subnet_eval {
namespace {

constexpr int kMlpRows = 16;
constexpr int kMlpThreads = 128;
constexpr int kChunkRows = 32;  // rows per FC / heads block
constexpr int TM = 32, TN = 32, TK = 16;
constexpr int64_t kMaxGridY = 65535;  // CUDA's limit on gridDim.y (and z)
constexpr size_t kAlign = 256;
constexpr size_t kMaxShared = 48 * 1024;
static_assert(sizeof(float) * 2 * kMlpRows * kCudaMlpMaxWidth == kMaxShared,
              "kCudaMlpMaxWidth (subnet_eval.h) is what the MLP kernel's shared memory holds");

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("subnet_eval CUDA ") + what + ": " +
                             cudaGetErrorString(err));
  }
}

size_t align(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Host-side work list: (group, first row, rows) per chunk of at most `chunk` rows.
std::vector<int32_t> chunk_table(const int64_t* rows, int64_t n_groups, int64_t chunk) {
  std::vector<int32_t> out;
  for (int64_t g = 0; g < n_groups; ++g) {
    for (int64_t r = rows[g]; r < rows[g + 1]; r += chunk) {
      out.push_back(static_cast<int32_t>(g));
      out.push_back(static_cast<int32_t>(r));
      out.push_back(static_cast<int32_t>(std::min(chunk, rows[g + 1] - r)));
    }
  }
  return out;
}

int64_t max_chunks(int64_t n_rows, int64_t n_groups, int64_t chunk) {
  return n_groups + n_rows / chunk + 1;
}

// Bump allocator over the caller's workspace.
struct Arena {
  char* base;
  size_t used, size;
  void* take(size_t bytes) {
    void* p = base + used;
    used += align(bytes);
    if (used > size) throw std::invalid_argument("subnet_eval: CUDA workspace too small");
    return p;
  }
};

// relu that keeps NaN (fmaxf returns the other operand), as torch's relu and the CPU path;
// the CNN kernels' conv and FC epilogues use it
__device__ __forceinline__ float relu(float v) { return v <= 0.f ? 0.f : v; }

}  // namespace
}  // namespace subnet_eval
}  // namespace a2d
