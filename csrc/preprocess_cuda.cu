// CUDA kernel of the frame preprocessing op. One block per (env, band of output rows); the block
// first builds its weight taps in shared memory with the same integer functions the CPU kernel
// uses (preprocess.h), then each thread computes whole output pixels. kArea sums are exact
// integers rounded half to even by the shared round_half_even, kLinear follows the CPU's
// fixed-point steps, so CPU and CUDA results are identical bit for bit.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "preprocess.h"

namespace a2d {
namespace preprocess {
namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = 8;
constexpr size_t kMaxShared = 48 * 1024;

// The block's tap tables: none for integer factors (kAreaFast sums its fy x fx window directly),
// so only kArea and kLinear are bounded by kMaxShared (output sides up to about 2,450 and 3,064).
size_t shared_bytes(const Plan& p, int rows) {
  if (p.mode == Mode::kAreaFast) return 0;
  return sizeof(uint32_t) *
         (static_cast<size_t>(p.size) * (2 + p.tx) + static_cast<size_t>(rows) * (2 + p.ty));
}

// kArea: the exact weighted sum of one output pixel over its ny x nx taps, in Acc (uint32_t for a
// narrow plan, whose sums fit, else uint64_t), rounded half to even.
template <typename Acc>
__device__ uint8_t area_pixel(const uint8_t* f0, const uint8_t* f1, int ch, int w, int sy, int sx,
                              int ny, int nx, const uint32_t* wy, const uint32_t* wx, Acc den) {
  Acc acc = 0;
  for (int kx = 0; kx < nx; ++kx) {
    Acc column = 0;
    for (int ky = 0; ky < ny; ++ky) {
      const int64_t at = static_cast<int64_t>(sy + ky) * w + sx + kx;
      column += static_cast<Acc>(wy[ky]) * max_pixel(f0, f1, ch, at);
    }
    acc += static_cast<Acc>(wx[kx]) * column;
  }
  return round_half_even<Acc>(acc, den);
}

__global__ void preprocess_kernel(Plan p, const uint8_t* __restrict__ raw,
                                  uint8_t* __restrict__ out, int64_t out_stride,
                                  int rows_per_block) {
  extern __shared__ uint32_t smem[];
  const int size = p.size;
  const int64_t env = blockIdx.x;
  const int oy0 = blockIdx.y * rows_per_block;
  const int rows = min(rows_per_block, size - oy0);
  if (rows <= 0) return;

  int* x_first = reinterpret_cast<int*>(smem);
  int* x_count = x_first + size;
  uint32_t* x_w = reinterpret_cast<uint32_t*>(x_count + size);
  int* y_first = reinterpret_cast<int*>(x_w + static_cast<size_t>(size) * p.tx);
  int* y_count = y_first + rows_per_block;
  uint32_t* y_w = reinterpret_cast<uint32_t*>(y_count + rows_per_block);

  if (p.mode != Mode::kAreaFast) {
    for (int d = threadIdx.x; d < size; d += blockDim.x) {
      x_count[d] = axis_taps(p.mode, p.w, size, d, &x_first[d], x_w + d * p.tx);
    }
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
      y_count[r] = axis_taps(p.mode, p.h, size, oy0 + r, &y_first[r], y_w + r * p.ty);
    }
  }
  __syncthreads();

  const int64_t frame = static_cast<int64_t>(p.h) * p.w;
  const uint8_t* f0 = raw + env * 2 * frame * p.channels;
  const uint8_t* f1 = f0 + frame * p.channels;
  uint8_t* dst = out + env * out_stride;
  const int ch = p.channels, w = p.w;

  for (int e = threadIdx.x; e < rows * size; e += blockDim.x) {
    const int r = e / size, ox = e - r * size, oy = oy0 + r;
    uint8_t value;
    if (p.mode == Mode::kAreaFast) {
      uint64_t sum = 0;  // fy * fx * 255 can pass 2^32 (area_fast_round)
      for (int ky = 0; ky < p.fy; ++ky) {
        const int64_t row = static_cast<int64_t>(oy * p.fy + ky) * w + ox * p.fx;
        for (int kx = 0; kx < p.fx; ++kx) sum += max_pixel(f0, f1, ch, row + kx);
      }
      value = area_fast_round(sum, p.fy, p.fx, p.inv_area);
    } else if (p.mode == Mode::kArea) {
      const uint32_t* wy = y_w + r * p.ty;
      const uint32_t* wx = x_w + ox * p.tx;
      const int ny = y_count[r], nx = x_count[ox], sy = y_first[r], sx = x_first[ox];
      value = p.narrow ? area_pixel<uint32_t>(f0, f1, ch, w, sy, sx, ny, nx, wy, wx,
                                              static_cast<uint32_t>(p.den))
                       : area_pixel<uint64_t>(f0, f1, ch, w, sy, sx, ny, nx, wy, wx,
                                              static_cast<uint64_t>(p.den));
    } else {
      const uint32_t* wy = y_w + r * p.ty;
      const uint32_t* wx = x_w + ox * p.tx;
      const int s0 = y_first[r], s1 = min(s0 + 1, p.h - 1), nx = x_count[ox], sx = x_first[ox];
      uint32_t h0 = 0, h1 = 0;
      for (int kx = 0; kx < nx; ++kx) {
        h0 += wx[kx] * max_pixel(f0, f1, ch, static_cast<int64_t>(s0) * w + sx + kx);
        h1 += wx[kx] * max_pixel(f0, f1, ch, static_cast<int64_t>(s1) * w + sx + kx);
      }
      const int32_t b1 = y_count[r] > 1 ? static_cast<int32_t>(wy[1]) : 0;
      value = linear_combine(static_cast<int32_t>(h0), static_cast<int32_t>(h1),
                             static_cast<int32_t>(wy[0]), b1);
    }
    dst[static_cast<int64_t>(oy) * size + ox] = value;
  }
}

// Slots 1..k-1 of each env move to 0..k-2, one slot at a time (the barrier orders the overlap).
__global__ void shift_kernel(uint8_t* stack, int k, int64_t plane) {
  uint8_t* e = stack + static_cast<int64_t>(blockIdx.x) * k * plane;
  for (int j = 0; j + 1 < k; ++j) {
    for (int64_t q = threadIdx.x; q < plane; q += blockDim.x)
      e[j * plane + q] = e[(j + 1) * plane + q];
    __syncthreads();
  }
}

// Envs whose mask is set get their last slot copied into every other slot.
__global__ void reset_kernel(uint8_t* stack, const bool* mask, int k, int64_t plane) {
  if (!mask[blockIdx.x]) return;
  uint8_t* e = stack + static_cast<int64_t>(blockIdx.x) * k * plane;
  const uint8_t* last = e + static_cast<int64_t>(k - 1) * plane;
  for (int j = 0; j + 1 < k; ++j) {
    for (int64_t q = threadIdx.x; q < plane; q += blockDim.x) e[j * plane + q] = last[q];
  }
}

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
  }
}

void check_geometry(int64_t n, int h, int w, int channels, int size) {
  if (n < 0 || n > 0x7fffffff) throw std::invalid_argument("n must be in [0, 2^31)");
  if (h < 1 || w < 1 || size < 1) throw std::invalid_argument("h, w and size must be >= 1");
  if (channels != 1 && channels != 3) throw std::invalid_argument("channels must be 1 or 3");
}

void launch_preprocess(const uint8_t* raw, uint8_t* out, int64_t out_stride, int64_t n, int h,
                       int w, int channels, int size, cudaStream_t stream) {
  const Plan p = make_plan(h, w, channels, size);
  const size_t shmem = shared_bytes(p, kRowsPerBlock);
  if (shmem > kMaxShared) {
    throw std::invalid_argument(
        "preprocess_cuda: the resize's tap tables (" + std::to_string(shmem) +
        " bytes) exceed the CUDA kernel's 48 KiB of shared memory; the CPU kernel takes this size");
  }
  const dim3 grid(static_cast<unsigned>(n),
                  static_cast<unsigned>((size + kRowsPerBlock - 1) / kRowsPerBlock));
  preprocess_kernel<<<grid, kThreads, shmem, stream>>>(p, raw, out, out_stride, kRowsPerBlock);
  check_launch("preprocess_kernel");
}

}  // namespace

void preprocess_cuda(uintptr_t raw, uintptr_t out, int64_t out_batch_stride, int64_t n, int h,
                     int w, int channels, int size, uintptr_t stream) {
  check_geometry(n, h, w, channels, size);
  if (n == 0) return;
  launch_preprocess(reinterpret_cast<const uint8_t*>(raw), reinterpret_cast<uint8_t*>(out),
                    out_batch_stride, n, h, w, channels, size,
                    reinterpret_cast<cudaStream_t>(stream));
}

void push_frames_cuda(uintptr_t raw, uintptr_t stack, uintptr_t reset_mask, int64_t n, int k, int h,
                      int w, int channels, int size, uintptr_t stream) {
  check_geometry(n, h, w, channels, size);
  if (k < 1) throw std::invalid_argument("k must be >= 1");
  if (n == 0) return;
  auto* st = reinterpret_cast<uint8_t*>(stack);
  auto s = reinterpret_cast<cudaStream_t>(stream);
  const int64_t plane = static_cast<int64_t>(size) * size;
  if (k > 1) {
    shift_kernel<<<static_cast<unsigned>(n), kThreads, 0, s>>>(st, k, plane);
    check_launch("shift_kernel");
  }
  launch_preprocess(reinterpret_cast<const uint8_t*>(raw), st + (k - 1) * plane, k * plane, n, h, w,
                    channels, size, s);
  if (reset_mask != 0 && k > 1) {
    reset_kernel<<<static_cast<unsigned>(n), kThreads, 0, s>>>(
        st, reinterpret_cast<const bool*>(reset_mask), k, plane);
    check_launch("reset_kernel");
  }
}

}  // namespace preprocess
}  // namespace a2d
