// Host emulation of the CUDA runtime subset the kernels in csrc/*.cu use, so that their source
// runs on a CPU (tests/test_cuda_emulation.py): every CUDA thread of a block is a std::thread
// (one pool per launch, running the blocks one after another), __syncthreads a std::barrier
// (with a check that every thread of a block reached the same number of them), dynamic shared
// memory an allocation of exactly the launch's size (so that AddressSanitizer sees an overrun)
// filled with garbage, and launches are refused where CUDA refuses them (a zero-sized grid,
// grid dimensions past their limits, more than 48 KiB of dynamic shared memory without an
// opt-in). It is an emulation, not a GPU: no warps, no memory model, device intrinsics behind
// __CUDA_ARCH__ take their host branch, tanhf is the host's.
#pragma once
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

typedef void* cudaStream_t;
typedef int cudaError_t;
constexpr int cudaSuccess = 0;
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1 };
inline cudaError_t g_last_error = 0;
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == 9 ? "invalid configuration argument (emulated)" : "emulated launch error";
}
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = g_last_error;
  g_last_error = 0;
  return e;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(d, s, n);
  return 0;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) {
  std::memset(d, v, n);
  return 0;
}
template <class T>
T min(T a, T b) {
  return a < b ? a : b;
}
template <class T>
T max(T a, T b) {
  return a > b ? a : b;
}

namespace emu {
inline unsigned char* dynamic_shared = nullptr;  // the running block's, of the launch's size
inline std::barrier<>* block_barrier = nullptr;
inline thread_local long n_sync = 0;

inline void syncthreads() {
  ++n_sync;
  block_barrier->arrive_and_wait();
}

inline void launch(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.x > 1024) {
    g_last_error = 9;
    return;
  }
  if (grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u || smem > 48 * 1024) {
    g_last_error = 9;
    return;
  }
  gridDim = grid;
  blockDim = block;
  // One thread per CUDA thread of a block, started once per launch and run block after block:
  // the coordinator (this thread) prepares each block (fresh garbage-filled shared memory, a
  // fresh __syncthreads barrier) and lets the block's threads go through `start`; each thread
  // runs the kernel body, leaves the block's barrier (arrive_and_drop: a thread that returned
  // early must not hold the others at their __syncthreads) and meets the coordinator at `end`.
  const unsigned n = block.x;
  std::barrier<> start(n + 1), end(n + 1);
  std::vector<unsigned char> shared;
  std::unique_ptr<std::barrier<>> barrier;
  std::vector<long> syncs(n);
  dim3 current;
  bool done = false;
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < n; ++t)
    threads.emplace_back([&, t] {
      threadIdx = dim3(t);
      for (;;) {
        start.arrive_and_wait();
        if (done) return;
        blockIdx = current;
        n_sync = 0;
        body();
        syncs[t] = n_sync;
        barrier->arrive_and_drop();
        end.arrive_and_wait();
      }
    });
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        shared = std::vector<unsigned char>(smem ? smem : 1, 0xCD);  // garbage, as on a GPU
        dynamic_shared = shared.data();
        barrier = std::make_unique<std::barrier<>>(n);
        block_barrier = barrier.get();
        current = dim3(bx, by, bz);
        start.arrive_and_wait();
        end.arrive_and_wait();
        for (unsigned t = 1; t < n; ++t)
          if (syncs[t] != syncs[0]) {
            std::fprintf(stderr, "EMU: divergent __syncthreads in block (%u,%u,%u): %ld vs %ld\n",
                         bx, by, bz, syncs[t], syncs[0]);
            std::abort();
          }
      }
  done = true;
  start.arrive_and_wait();
  for (auto& th : threads) th.join();
}
}  // namespace emu

#define __syncthreads() emu::syncthreads()
