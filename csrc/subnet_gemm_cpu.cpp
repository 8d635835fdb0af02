// The CPU population forward's arithmetic (declared in subnet_gemm_cpu.h).
//
// One register-blocked micro-kernel computes a 4-row x 24-column output tile of a "tap
// convolution": for every tap t it walks `cin` contiguous input channels of each row (broadcast)
// against `cin` weight rows (three 8-float vectors each). MLP layers, conv layers and the FC layer
// are all this kernel with different row/tap pointers, so no im2col buffer is ever written. An
// AVX2+FMA build of the kernel is selected at run time when the CPU has it; otherwise a portable
// one that the compiler vectorises for the baseline ISA.
#include "subnet_gemm_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "subnet_eval.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define A2D_HAVE_AVX2_PATH 1
#include <immintrin.h>
#define A2D_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define A2D_HAVE_AVX2_PATH 0
#endif

namespace a2d {
namespace subnet_eval {
namespace cpu {

namespace {

// Rational tanh (Eigen's generic_fast_tanh_float): a few ulp over the whole float range.
constexpr float kTanhClamp = 7.90531110763549805f;
constexpr float kA1 = 4.89352455891786e-03f, kA3 = 6.37261928875436e-04f,
                kA5 = 1.48572235717979e-05f, kA7 = 5.12229709037114e-08f,
                kA9 = -8.60467152213735e-11f, kA11 = 2.00018790482477e-13f,
                kA13 = -2.76076847742355e-16f;
constexpr float kB0 = 4.89352518554385e-03f, kB2 = 2.26843463243900e-03f,
                kB4 = 1.18534705686654e-04f, kB6 = 1.19825839466702e-06f;

inline float tanh_scalar(float v) {
  if (std::fabs(v) < 0.0004f) return v;
  const float x = std::min(std::max(v, -kTanhClamp), kTanhClamp);
  const float x2 = x * x;
  float p = kA13;
  p = p * x2 + kA11;
  p = p * x2 + kA9;
  p = p * x2 + kA7;
  p = p * x2 + kA5;
  p = p * x2 + kA3;
  p = p * x2 + kA1;
  p = p * x;
  float q = kB6;
  q = q * x2 + kB4;
  q = q * x2 + kB2;
  q = q * x2 + kB0;
  return p / q;
}

// Portable kernel: plain arrays the compiler vectorises for the baseline ISA.
template <int MR, int NV>
void micro_generic(const Micro& m) {
  constexpr int N = NV * 8;
  float acc[MR][N];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < N; ++j) acc[i][j] = m.load_c ? m.c[i][m.j0 + j] : 0.f;
  }
  for (int64_t t = 0; t < m.ntaps; ++t) {
    const float* ap[MR];
    for (int i = 0; i < MR; ++i) ap[i] = m.a[i] + m.atap[t];
    const float* bp = m.b + m.btap[t];
    for (int64_t ci = 0; ci < m.cin; ++ci, bp += m.ldb) {
      for (int i = 0; i < MR; ++i) {
        const float av = ap[i][ci];
        for (int j = 0; j < N; ++j) acc[i][j] += av * bp[j];
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* out = m.c[i] + m.j0;
    for (int j = 0; j < N; ++j) {
      float v = acc[i][j];
      if (m.epi) {
        v = v * m.scale + m.bias[j];
        if (m.act == kRelu) v = v <= 0.f ? 0.f : v;  // NaN stays NaN, as torch's relu
        if (m.act == kTanh) v = tanh_scalar(v);
      }
      out[j] = v;
    }
  }
}

#if A2D_HAVE_AVX2_PATH
A2D_TARGET_AVX2 inline __m256 tanh_avx2(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256 tiny = _mm256_cmp_ps(_mm256_andnot_ps(sign, v), _mm256_set1_ps(0.0004f), _CMP_LT_OQ);
  // min/max_ps return their SECOND operand when either is NaN: v goes second, so NaN stays NaN
  const __m256 x =
      _mm256_max_ps(_mm256_set1_ps(-kTanhClamp), _mm256_min_ps(_mm256_set1_ps(kTanhClamp), v));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(kA13);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(kA11));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(kA9));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(kA7));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(kA5));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(kA3));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(kA1));
  p = _mm256_mul_ps(p, x);
  __m256 q = _mm256_set1_ps(kB6);
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(kB4));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(kB2));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(kB0));
  return _mm256_blendv_ps(_mm256_div_ps(p, q), v, tiny);
}

// Accumulators are named scalars (c<row><vector>), not an array: GCC does not keep an array of
// 12 __m256 in registers and would store it to the stack on every iteration.
#define A2D_ROWS(X, v) X(0, v) X(1, v) X(2, v) X(3, v) X(4, v) X(5, v) X(6, v) X(7, v)
#define A2D_ALL(X) A2D_ROWS(X, 0) A2D_ROWS(X, 1) A2D_ROWS(X, 2)
#define A2D_USED(i, v) ((i) < MR && (v) < NV)

template <int MR, int NV>
A2D_TARGET_AVX2 void micro_avx2(const Micro& m) {
  static_assert(MR >= 1 && MR <= 8 && NV >= 1 && NV <= 3, "tile shape");
#define A2D_DECL(i, v) __m256 c##i##v = _mm256_setzero_ps();
  A2D_ALL(A2D_DECL)
#undef A2D_DECL
  if (m.load_c) {
#define A2D_LOAD(i, v) \
  if constexpr (A2D_USED(i, v)) c##i##v = _mm256_loadu_ps(m.c[i] + m.j0 + 8 * (v));
    A2D_ALL(A2D_LOAD)
#undef A2D_LOAD
  }
  const int64_t ldb = m.ldb;
  const int64_t cin = m.cin;
  for (int64_t t = 0; t < m.ntaps; ++t) {
    const int64_t at = m.atap[t];
    const float* a0 = m.a[0] + at;
    const float* a1 = MR > 1 ? m.a[1] + at : a0;
    const float* a2 = MR > 2 ? m.a[2] + at : a0;
    const float* a3 = MR > 3 ? m.a[3] + at : a0;
    const float* a4 = MR > 4 ? m.a[4] + at : a0;
    const float* a5 = MR > 5 ? m.a[5] + at : a0;
    const float* a6 = MR > 6 ? m.a[6] + at : a0;
    const float* a7 = MR > 7 ? m.a[7] + at : a0;
    const float* bp = m.b + m.btap[t];
    for (int64_t ci = 0; ci < cin; ++ci, bp += ldb) {
      const __m256 b0 = _mm256_loadu_ps(bp);
      const __m256 b1 = NV > 1 ? _mm256_loadu_ps(bp + 8) : b0;
      const __m256 b2 = NV > 2 ? _mm256_loadu_ps(bp + 16) : b0;
#define A2D_ROW(i)                                                    \
  if constexpr ((i) < MR) {                                           \
    const __m256 av = _mm256_broadcast_ss(a##i + ci);                 \
    c##i##0 = _mm256_fmadd_ps(av, b0, c##i##0);                       \
    if constexpr (NV > 1) c##i##1 = _mm256_fmadd_ps(av, b1, c##i##1); \
    if constexpr (NV > 2) c##i##2 = _mm256_fmadd_ps(av, b2, c##i##2); \
  }
      A2D_ROW(0) A2D_ROW(1) A2D_ROW(2) A2D_ROW(3) A2D_ROW(4) A2D_ROW(5) A2D_ROW(6) A2D_ROW(7)
#undef A2D_ROW
    }
  }
  if (m.epi) {
    const __m256 scale = _mm256_set1_ps(m.scale);
    const __m256 zero = _mm256_setzero_ps();
    const __m256 bias0 = _mm256_loadu_ps(m.bias);
    const __m256 bias1 = NV > 1 ? _mm256_loadu_ps(m.bias + 8) : bias0;
    const __m256 bias2 = NV > 2 ? _mm256_loadu_ps(m.bias + 16) : bias0;
    const int act = m.act;
#define A2D_EPI(i, v)                                    \
  if constexpr (A2D_USED(i, v)) {                        \
    __m256 x = _mm256_fmadd_ps(c##i##v, scale, bias##v); \
    if (act == kRelu) x = _mm256_max_ps(zero, x);        \
    if (act == kTanh) x = tanh_avx2(x);                  \
    c##i##v = x;                                         \
  }
    A2D_ALL(A2D_EPI)
#undef A2D_EPI
  }
#define A2D_STORE(i, v) \
  if constexpr (A2D_USED(i, v)) _mm256_storeu_ps(m.c[i] + m.j0 + 8 * (v), c##i##v);
  A2D_ALL(A2D_STORE)
#undef A2D_STORE
}
#undef A2D_USED
#undef A2D_ALL
#undef A2D_ROWS
#endif

#define A2D_ROW(fn, mr) {fn<mr, 1>, fn<mr, 2>, fn<mr, 3>}
Kern make_generic() {
  return Kern{{A2D_ROW(micro_generic, 1), A2D_ROW(micro_generic, 2), A2D_ROW(micro_generic, 3),
               A2D_ROW(micro_generic, 4), A2D_ROW(micro_generic, 5), A2D_ROW(micro_generic, 6),
               A2D_ROW(micro_generic, 7), A2D_ROW(micro_generic, 8)},
              "generic"};
}
#if A2D_HAVE_AVX2_PATH
Kern make_avx2() {
  return Kern{{A2D_ROW(micro_avx2, 1), A2D_ROW(micro_avx2, 2), A2D_ROW(micro_avx2, 3),
               A2D_ROW(micro_avx2, 4), A2D_ROW(micro_avx2, 5), A2D_ROW(micro_avx2, 6),
               A2D_ROW(micro_avx2, 7), A2D_ROW(micro_avx2, 8)},
              "avx2-fma"};
}
#endif
#undef A2D_ROW

}  // namespace

// The AVX2+FMA kernel when the CPU has it; A2D_EVO_SUBNET_EVAL_ISA=generic (read once, at the
// first call) forces the portable one, so that tests can check it on any machine.
const Kern& kernel() {
  static const Kern k = [] {
    const char* forced = std::getenv("A2D_EVO_SUBNET_EVAL_ISA");
    if (forced != nullptr && std::string(forced) == "generic") return make_generic();
#if A2D_HAVE_AVX2_PATH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return make_avx2();
#endif
    return make_generic();
  }();
  return k;
}

// ------------------------------------------------------------------ GEMM over row pointers
// out rows crow[0..m) (columns 0..round_up(co, 8)) = epi(sum over taps/channels); row i reads
// arow[i] + atap[t] + ci and weight row btap[t] + ci * ldb. Weights are either plain row-major
// with leading dimension ldb (panel_stride 0: 24-column blocks, 4 x 24 tiles), or panel-packed
// (ldb = 16, panel_stride = rows * 16: 16-column blocks, 6 x 16 tiles; 4 x 16 for short m).
// Every tile keeps 12 (or 8) accumulators: enough independent FMAs to hide their latency.
// Row tiles of one column block: 4 x 24, 6 x 16 or 8 x 8 (12 accumulators; 4 rows when m is
// short, so that 8-row groups split evenly).
void run_tiles(const Kern& k, Micro& mk, int64_t m, const float* const* arow, float* const* crow,
               int nv) {
  const int mr_max = (nv == 3 || m <= 8) ? 4 : (nv == 2 ? 6 : 8);
  for (int64_t i0 = 0; i0 < m; i0 += mr_max) {
    const int mr = static_cast<int>(std::min<int64_t>(mr_max, m - i0));
    mk.a = arow + i0;
    mk.c = crow + i0;
    k.f[mr - 1][nv - 1](mk);
  }
}

void gemm_rows(const Kern& k, int64_t m, const float* const* arow, float* const* crow,
               int64_t ntaps, const int64_t* atap, const int64_t* btap, int64_t cin, int64_t co,
               const float* wT, int64_t ldb, int64_t panel_stride, const float* bias, int act,
               float scale) {
  const bool panel = panel_stride > 0;
  const int64_t jstep = panel ? kPanel : 24;
  const int64_t taps_per_block = std::max<int64_t>(1, kKc / std::max<int64_t>(cin, 1));
  for (int64_t t0 = 0; t0 < ntaps; t0 += taps_per_block) {
    const int64_t nt = std::min(taps_per_block, ntaps - t0);
    for (int64_t j0 = 0; j0 < co; j0 += jstep) {
      const int nv = static_cast<int>(std::min<int64_t>(jstep / 8, (co - j0 + 7) / 8));
      Micro mk{};
      mk.atap = atap + t0;
      mk.btap = btap + t0;
      mk.ntaps = nt;
      mk.cin = cin;
      mk.b = panel ? wT + (j0 / kPanel) * panel_stride : wT + j0;
      mk.ldb = ldb;
      mk.j0 = j0;
      mk.bias = bias + j0;
      mk.scale = scale;
      mk.act = act;
      mk.load_c = t0 > 0;
      mk.epi = t0 + nt == ntaps;
      run_tiles(k, mk, m, arow, crow, nv);
    }
  }
}

// ------------------------------------------------------------------ thread-local scratch
// A thread-local buffer at least `n` floats long. It grows as calls need; it is given back when
// a call needs under a quarter of what it holds and it holds over kKeepBytes, so that one large
// call (a final re-scoring of a whole front) does not pin its memory for the process's life.
constexpr size_t kKeepBytes = size_t{16} << 20;

float* fit(std::vector<float>& buf, int64_t n) {
  const auto want = static_cast<size_t>(n);
  if (buf.size() < want) {
    buf.resize(want);
  } else if (buf.size() / 4 > want && buf.size() * sizeof(float) > kKeepBytes) {
    std::vector<float>(want).swap(buf);
  }
  return buf.data();
}

Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

void conv_layer(const Kern& k, Scratch& sc, int n_img, const Plane& in, const Plane& out, int ks,
                int stride, int conv_pad, int kmax, int64_t cin, int64_t cin_max, int64_t co,
                const float* wT, int64_t w_rows, const float* bias, float scale) {
  const int64_t per_img = static_cast<int64_t>(out.h) * out.w;
  const int64_t m = n_img * per_img;
  sc.arow.resize(static_cast<size_t>(m));
  sc.crow.resize(static_cast<size_t>(m));
  const int shift = in.pad - conv_pad;
  for (int64_t r = 0; r < m; ++r) {
    const int64_t b = r / per_img;
    const int oy = static_cast<int>((r % per_img) / out.w);
    const int ox = static_cast<int>(r % out.w);
    sc.arow[r] =
        in.data + b * in.img() +
        (static_cast<int64_t>(oy * stride + shift) * in.wp() + ox * stride + shift) * in.ld;
    sc.crow[r] = out.data + b * out.img() +
                 (static_cast<int64_t>(oy + out.pad) * out.wp() + ox + out.pad) * out.ld;
  }
  const int crop = (kmax - ks) / 2;
  sc.atap.resize(static_cast<size_t>(ks) * ks);
  sc.btap.resize(static_cast<size_t>(ks) * ks);
  for (int kh = 0; kh < ks; ++kh) {
    for (int kw = 0; kw < ks; ++kw) {
      const int t = kh * ks + kw;
      sc.atap[t] = (static_cast<int64_t>(kh) * in.wp() + kw) * in.ld;
      sc.btap[t] = (static_cast<int64_t>(kh + crop) * kmax + kw + crop) * cin_max * kPanel;
    }
  }
  gemm_rows(k, m, sc.arow.data(), sc.crow.data(), static_cast<int64_t>(ks) * ks, sc.atap.data(),
            sc.btap.data(), cin, co, wT, kPanel, w_rows * kPanel, bias, kRelu, scale);
}

// Linear layer over `m` contiguous rows (row stride lda / ldc).
void linear_rows(const Kern& k, Scratch& sc, int64_t m, const float* x, int64_t lda, float* y,
                 int64_t ldc, int64_t cin, int64_t co, const float* wT, int64_t ldb,
                 const float* bias, int act) {
  sc.arow.resize(static_cast<size_t>(m));
  sc.crow.resize(static_cast<size_t>(m));
  for (int64_t r = 0; r < m; ++r) {
    sc.arow[r] = x + r * lda;
    sc.crow[r] = y + r * ldc;
  }
  static const int64_t zero = 0;
  gemm_rows(k, m, sc.arow.data(), sc.crow.data(), 1, &zero, &zero, cin, co, wT, ldb, 0, bias, act,
            1.f);
}

}  // namespace cpu
}  // namespace subnet_eval
}  // namespace a2d
