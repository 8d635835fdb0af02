// Internal to the CPU population forward: the register-blocked micro-kernel and the GEMM, conv
// and linear layers built on it (subnet_gemm_cpu.cpp), used by the forward passes
// (subnet_eval_cpu.cpp). Not part of the native module's API.
#pragma once

#include <cstdint>
#include <vector>

namespace a2d {
namespace subnet_eval {
namespace cpu {

enum Act : int { kNone = 0, kRelu = 1, kTanh = 2 };

constexpr int kMaxMR = 8;     // rows per micro tile: 4 x 24, 6 x 16 or 8 x 8 (12 accumulators)
constexpr int64_t kKc = 256;  // inner-dimension block (taps * cin) kept in L1

// ------------------------------------------------------------------ micro-kernel interface
struct Micro {
  const float* const* a;  // MR row base pointers
  float* const* c;        // MR output row pointers (column 0)
  const int64_t* atap;    // per-tap offsets added to a[i]
  const int64_t* btap;    // per-tap offsets added to b
  int64_t ntaps;
  int64_t cin;
  const float* b;  // weight^T at column j0
  int64_t ldb;
  int64_t j0;
  const float* bias;  // at column j0, read only when epi
  float scale;
  int act;
  bool load_c;  // accumulate onto the partial sums in c
  bool epi;     // last inner block: scale, bias, activation
};

using MicroFn = void (*)(const Micro&);

struct Kern {
  MicroFn f[kMaxMR][3];
  const char* name;
};

// The AVX2+FMA kernel when the CPU has it; A2D_EVO_SUBNET_EVAL_ISA=generic (read once, at the
// first call) forces the portable one, so that tests can check it on any machine.
const Kern& kernel();

// Row tiles of one column block `nv` vectors of 8 wide, rows arow[0..m) into crow[0..m).
void run_tiles(const Kern& k, Micro& mk, int64_t m, const float* const* arow, float* const* crow,
               int nv);

// out rows crow[0..m) = epi(sum over taps/channels); see subnet_gemm_cpu.cpp.
void gemm_rows(const Kern& k, int64_t m, const float* const* arow, float* const* crow,
               int64_t ntaps, const int64_t* atap, const int64_t* btap, int64_t cin, int64_t co,
               const float* wT, int64_t ldb, int64_t panel_stride, const float* bias, int act,
               float scale);

// A thread-local buffer at least `n` floats long (see subnet_gemm_cpu.cpp for when it shrinks).
float* fit(std::vector<float>& buf, int64_t n);

struct Scratch {
  std::vector<float> buf[6];
  std::vector<const float*> arow;
  std::vector<float*> crow;
  std::vector<int64_t> atap, btap;

  float* get(int i, int64_t n, bool zero = false) {
    float* p = fit(buf[i], n);
    if (zero) std::fill_n(p, n, 0.f);
    return p;
  }
};

// This thread's scratch buffers.
Scratch& scratch();

// An NHWC activation plane of `n` images with a zero border of `pad` pixels.
struct Plane {
  float* data;
  int h, w, pad, ld;
  int hp() const { return h + 2 * pad; }
  int wp() const { return w + 2 * pad; }
  int64_t img() const { return static_cast<int64_t>(hp()) * wp() * ld; }
};

// A stride-`s` convolution with a k x k window over `in` (origin shifted by `conv_pad`), whose
// weight taps are the centre k x k of a kmax x kmax layout with `cin_max` rows per tap.
void conv_layer(const Kern& k, Scratch& sc, int n_img, const Plane& in, const Plane& out, int ks,
                int stride, int conv_pad, int kmax, int64_t cin, int64_t cin_max, int64_t co,
                const float* wT, int64_t w_rows, const float* bias, float scale);

// Linear layer over `m` contiguous rows (row stride lda / ldc).
void linear_rows(const Kern& k, Scratch& sc, int64_t m, const float* x, int64_t lda, float* y,
                 int64_t ldc, int64_t cin, int64_t co, const float* wT, int64_t ldb,
                 const float* bias, int act);

}  // namespace cpu
}  // namespace subnet_eval
}  // namespace a2d
