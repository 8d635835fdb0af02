// CPU core of the batched subnet evaluation (see subnet_eval.h for the layout).
//
// One register-blocked micro-kernel computes a 4-row x 24-column output tile of a "tap
// convolution": for every tap t it walks `cin` contiguous input channels of each row (broadcast)
// against `cin` weight rows (three 8-float vectors each). MLP layers, conv layers and the FC layer
// are all this kernel with different row/tap pointers, so no im2col buffer is ever written. An
// AVX2+FMA build of the kernel is selected at run time when the CPU has it; otherwise a portable
// one that the compiler vectorises for the baseline ISA.
//
// Work is split into (group, chunk of rows) items run by OpenMP with dynamic scheduling; each
// item runs its rows through the whole subnet with thread-local scratch buffers.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "subnet_eval.h"

#ifdef A2D_WITH_OPENMP
#include <omp.h>
#endif

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define A2D_HAVE_AVX2_PATH 1
#include <immintrin.h>
#define A2D_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define A2D_HAVE_AVX2_PATH 0
#endif

namespace a2d {
namespace subnet_eval {

namespace {

enum Act : int { kNone = 0, kRelu = 1, kTanh = 2 };

constexpr int kMaxMR = 8;      // rows per micro tile: 4 x 24, 6 x 16 or 8 x 8 (12 accumulators)
constexpr int64_t kKc = 256;   // inner-dimension block (taps * cin) kept in L1
constexpr int kMlpChunk = 32;  // rows per MLP work item
constexpr int kCnnChunk = 8;   // images per CNN work item
constexpr int64_t kFcPanelsPerBlock = 4;  // FC output panels (of 16) per work item

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

struct Kern {
  MicroFn f[kMaxMR][3];
  const char* name;
};

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

Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

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

void write_heads(const float* t, int64_t ldt, int64_t m, int n_actions, float* logits,
                 float* values) {
  for (int64_t r = 0; r < m; ++r) {
    std::memcpy(logits + r * n_actions, t + r * ldt, sizeof(float) * n_actions);
    values[r] = t[r * ldt + n_actions];
  }
}

struct Item {
  int64_t group, row0, rows;
};

std::vector<Item> work_items(const int64_t* rows, int64_t n_groups, int64_t chunk) {
  std::vector<Item> items;
  for (int64_t g = 0; g < n_groups; ++g) {
    for (int64_t r = rows[g]; r < rows[g + 1]; r += chunk) {
      items.push_back({g, r, std::min(chunk, rows[g + 1] - r)});
    }
  }
  return items;
}

// ------------------------------------------------------------------ validation helpers
[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument(msg); }

const float* at(const float* base, int64_t n_params, int64_t off, int64_t size, const char* what) {
  if (off < 0 || size < 0 || off > n_params || size > n_params - off) {
    bad(std::string("subnet_eval: packed parameter block '") + what +
        "' lies outside the parameter buffer");
  }
  return base + off;
}

void check_rows(const int64_t* rows, int64_t n_groups, int64_t n_rows) {
  if (n_groups < 1) bad("subnet_eval: need at least one group");
  if (rows[0] != 0 || rows[n_groups] != n_rows) {
    bad("subnet_eval: group sizes must add up to the number of rows");
  }
  for (int64_t g = 0; g < n_groups; ++g) {
    if (rows[g + 1] < rows[g]) bad("subnet_eval: group sizes must be non-negative");
  }
}

[[noreturn]] void bad_arch(int64_t g, const std::string& msg) {
  bad("subnet_eval: group " + std::to_string(g) + ": " + msg);
}

}  // namespace

const char* cpu_isa() { return kernel().name; }

// ------------------------------------------------------------------ meta parsing
std::vector<std::string> meta_fields(const std::string& kind) {
#define A2D_SE_META_NAME(index, name) name,
  std::vector<std::string> names;
  if (kind == "mlp") {
    names = {A2D_SE_MLP_META(A2D_SE_META_NAME)};
    names.insert(names.end(), std::begin(kMlpMetaArrays), std::end(kMlpMetaArrays));
  } else if (kind == "cnn") {
    names = {A2D_SE_CNN_META(A2D_SE_META_NAME)};
    names.insert(names.end(), std::begin(kCnnMetaArrays), std::end(kCnnMetaArrays));
  } else {
    bad("subnet_eval: unknown network kind '" + kind + "' (expected 'mlp' or 'cnn')");
  }
#undef A2D_SE_META_NAME
  return names;
}

int64_t meta_kind_code(const std::string& kind) {
  if (kind == "mlp") return kMlpKindCode;
  if (kind == "cnn") return kCnnKindCode;
  bad("subnet_eval: unknown network kind '" + kind + "' (expected 'mlp' or 'cnn')");
}

MlpNet parse_mlp_meta(const int64_t* meta, int64_t meta_len, const float* base, int64_t n_params) {
  if (meta_len < kMlpLayers || meta[kMlpKind] != kMlpKindCode)
    bad("subnet_eval: not an MLP meta vector");
  MlpNet n{};
  const int64_t depth = meta[kMlpDepthMax];
  if (depth < 1 || depth > kMaxMlpLayers) bad("subnet_eval: MLP depth_max out of range");
  if (meta_len != kMlpLayers + 2 * depth) bad("subnet_eval: MLP meta vector has a wrong length");
  for (int i : {kMlpObsDim, kMlpWidthMax, kMlpLdw, kMlpActions, kMlpLdh}) {
    if (meta[i] < 1 || meta[i] > kMaxMlpDim) bad("subnet_eval: MLP dimension out of range");
  }
  n.obs_dim = static_cast<int>(meta[kMlpObsDim]);
  n.depth_max = static_cast<int>(depth);
  n.width_max = static_cast<int>(meta[kMlpWidthMax]);
  n.ldw = static_cast<int>(meta[kMlpLdw]);
  n.n_actions = static_cast<int>(meta[kMlpActions]);
  n.ldh = static_cast<int>(meta[kMlpLdh]);
  if (n.ldw < n.width_max || n.ldw % 8)
    bad("subnet_eval: MLP ldw must be >= width, a multiple of 8");
  if (n.ldh < n.n_actions + 1 || n.ldh % 8) {
    bad("subnet_eval: MLP ldh must be >= n_actions + 1, a multiple of 8");
  }
  for (int l = 0; l < n.depth_max; ++l) {
    const int64_t in = l == 0 ? n.obs_dim : n.width_max;
    n.w[l] = at(base, n_params, meta[kMlpLayers + l], in * n.ldw, "layer weight");
    n.b[l] = at(base, n_params, meta[kMlpLayers + depth + l], n.ldw, "layer bias");
  }
  n.head_w =
      at(base, n_params, meta[kMlpHeadW], static_cast<int64_t>(n.width_max) * n.ldh, "head weight");
  n.head_b = at(base, n_params, meta[kMlpHeadB], n.ldh, "head bias");
  return n;
}

CnnNet parse_cnn_meta(const int64_t* meta, int64_t meta_len, const float* base, int64_t n_params) {
  if (meta_len < kCnnArrays || meta[kCnnKind] != kCnnKindCode)
    bad("subnet_eval: not a CNN meta vector");
  CnnNet n{};
  const int64_t n_layers = meta[kCnnLayers];
  if (n_layers < 1 || n_layers > kMaxConvLayers) bad("subnet_eval: CNN n_layers out of range");
  if (meta_len != kCnnArrays + kCnnNumArrays * n_layers) {
    bad("subnet_eval: CNN meta vector has a wrong length");
  }
  const int64_t lim = kMaxCnnDim;
  for (int i : {kCnnCin, kCnnH, kCnnW, kCnnFc, kCnnCLast, kCnnLdf, kCnnActions, kCnnLdh}) {
    if (meta[i] < 1 || meta[i] > lim) {
      bad("subnet_eval: CNN meta field " + std::to_string(i) + " is " + std::to_string(meta[i]) +
          ", outside [1, " + std::to_string(lim) + "] (meta_fields('cnn') names it)");
    }
  }
  const int64_t bits = meta[kCnnScaleBits];
  if (bits < 0 || bits > 0xffffffffLL) bad("subnet_eval: CNN obs_scale_f32_bits out of range");
  const uint32_t u = static_cast<uint32_t>(bits);
  std::memcpy(&n.obs_scale, &u, sizeof(float));
  if (!(n.obs_scale > 0.f) || !std::isfinite(n.obs_scale)) {
    bad("subnet_eval: CNN obs_scale must be finite and positive");
  }
  // an image plane of at most 2^24 pixels: every later product of sizes fits an int, but the
  // FC input (checked below)
  if (meta[kCnnH] * meta[kCnnW] > kMaxCnnPlane) bad("subnet_eval: CNN image too large");
  n.c_in = static_cast<int>(meta[kCnnCin]);
  n.h_in = static_cast<int>(meta[kCnnH]);
  n.w_in = static_cast<int>(meta[kCnnW]);
  n.n_layers = static_cast<int>(n_layers);
  const int64_t* arr = meta + kCnnArrays;
  auto field = [&](int a, int i) { return arr[static_cast<int64_t>(a) * n_layers + i]; };
  int h = n.h_in, w = n.w_in;
  for (int i = 0; i < n.n_layers; ++i) {
    ConvDesc& c = n.conv[i];
    for (int a : {kArrWidth, kArrCin, kArrKernel, kArrStride}) {
      if (field(a, i) < 1 || field(a, i) > lim) {
        bad("subnet_eval: CNN layer " + std::to_string(i) + ", meta array " + std::to_string(a) +
            ": " + std::to_string(field(a, i)) + " is outside [1, " + std::to_string(lim) + "]");
      }
    }
    for (int a : {kArrSame, kArrElastic, kArrOptional}) {
      if (field(a, i) != 0 && field(a, i) != 1) bad("subnet_eval: CNN layer flag must be 0 or 1");
    }
    c.cmax = static_cast<int>(field(kArrWidth, i));
    c.cin_max = static_cast<int>(field(kArrCin, i));
    c.kmax = static_cast<int>(field(kArrKernel, i));
    c.stride = static_cast<int>(field(kArrStride, i));
    c.same = static_cast<int>(field(kArrSame, i));
    c.elastic = static_cast<int>(field(kArrElastic, i));
    c.optional = static_cast<int>(field(kArrOptional, i));
    if (c.kmax > kMaxKernelSize || c.stride > kMaxStride) {
      bad("subnet_eval: CNN kernel at most 15, stride at most 8");
    }
    if (c.same && c.kmax % 2 == 0) bad("subnet_eval: CNN same-padded kernels must be odd");
    if ((c.elastic || c.optional) && !(c.same && c.stride == 1)) {
      bad("subnet_eval: CNN elastic or optional layers must be same-padded with stride 1");
    }
    if (c.optional && i == 0) bad("subnet_eval: CNN first layer cannot be optional");
    if (i == 0 && c.cin_max != n.c_in) bad("subnet_eval: CNN first layer input != c_in");
    c.q = (i == 0 && !c.same && !c.elastic && c.kmax % c.stride == 0) ? c.stride : 1;
    c.ld = static_cast<int>(round_up(c.cmax, kPanel));
    c.ih = h;
    c.iw = w;
    c.oh = (h + 2 * c.pad() - c.kmax) / c.stride + 1;
    c.ow = (w + 2 * c.pad() - c.kmax) / c.stride + 1;
    if (h + 2 * c.pad() < c.kmax || w + 2 * c.pad() < c.kmax || c.oh < 1 || c.ow < 1) {
      bad("subnet_eval: CNN images are too small for the conv layers");
    }
    h = c.oh;
    w = c.ow;
    c.rows = static_cast<int64_t>(c.kmax) * c.kmax * c.cin_max;
    c.w = at(base, n_params, field(kArrOffW, i), c.rows * c.ld, "conv weight");
    c.b = at(base, n_params, field(kArrOffB, i), c.ld, "conv bias");
  }
  n.fc_max = static_cast<int>(meta[kCnnFc]);
  n.c_last_max = static_cast<int>(meta[kCnnCLast]);
  n.ldf = static_cast<int>(meta[kCnnLdf]);
  n.n_actions = static_cast<int>(meta[kCnnActions]);
  n.ldh = static_cast<int>(meta[kCnnLdh]);
  if (n.ldf < n.fc_max || n.ldf % kPanel) {
    bad("subnet_eval: CNN ldf must be >= fc, a multiple of 16");
  }
  if (n.ldh < n.n_actions + 1 || n.ldh % 8) {
    bad("subnet_eval: CNN ldh must be >= n_actions + 1, a multiple of 8");
  }
  n.fc_rows = static_cast<int64_t>(n.area()) * n.c_last_max;
  // the FC layer's input (positions x channels) is the one product the plane bound leaves open
  if (n.fc_rows > kMaxCnnFcRows) bad("subnet_eval: CNN FC input too large");
  n.fc_w = at(base, n_params, meta[kCnnFcW], n.fc_rows * n.ldf, "fc weight");
  n.fc_b = at(base, n_params, meta[kCnnFcB], n.ldf, "fc bias");
  n.head_w =
      at(base, n_params, meta[kCnnHeadW], static_cast<int64_t>(n.fc_max) * n.ldh, "head weight");
  n.head_b = at(base, n_params, meta[kCnnHeadB], n.ldh, "head bias");
  return n;
}

void check_mlp_archs(const MlpNet& net, const int32_t* archs, int64_t n_groups, const int64_t* rows,
                     int64_t n_rows) {
  check_rows(rows, n_groups, n_rows);
  const int len = mlp_arch_len(net);
  for (int64_t g = 0; g < n_groups; ++g) {
    const int32_t* a = archs + g * len;
    if (a[0] < 1 || a[0] > net.depth_max) bad_arch(g, "depth out of range");
    for (int l = 0; l < a[0]; ++l) {
      if (a[1 + l] < 1 || a[1 + l] > net.width_max) bad_arch(g, "width out of range");
    }
  }
}

void check_cnn_archs(const CnnNet& net, const int32_t* archs, int64_t n_groups, const int64_t* rows,
                     int64_t n_rows) {
  check_rows(rows, n_groups, n_rows);
  const int len = cnn_arch_len(net);
  for (int64_t g = 0; g < n_groups; ++g) {
    const int32_t* a = archs + g * len;
    int cin = net.c_in;
    for (int i = 0; i < net.n_layers; ++i) {
      const ConvDesc& c = net.conv[i];
      const int w = a[2 * i], k = a[2 * i + 1];
      if (w == 0) {
        if (!c.optional) bad_arch(g, "conv layer " + std::to_string(i) + " is not optional");
        continue;
      }
      if (w < 1 || w > c.cmax) bad_arch(g, "conv width out of range");
      if (cin > c.cin_max) bad_arch(g, "conv input wider than the layer's weights");
      const bool ok_k = c.elastic ? (k >= 1 && k <= c.kmax && (c.kmax - k) % 2 == 0) : k == c.kmax;
      if (!ok_k) bad_arch(g, "conv kernel invalid");
      cin = w;
    }
    if (cin > net.c_last_max) bad_arch(g, "last conv wider than the FC input");
    if (a[len - 1] < 1 || a[len - 1] > net.fc_max) bad_arch(g, "fc width out of range");
  }
}

// Width of the map the FC layer sees: the last active conv layer's.
inline int last_width(const CnnNet& net, const int32_t* a) {
  for (int i = net.n_layers - 1; i >= 0; --i) {
    if (a[2 * i] > 0) return a[2 * i];
  }
  return net.c_in;
}

// ------------------------------------------------------------------ forward passes
void mlp_forward_cpu(const MlpNet& net, const float* obs, int64_t n_rows, const int32_t* archs,
                     const int64_t* rows, int64_t n_groups, float* logits, float* values) {
  (void)n_rows;
  const Kern& k = kernel();
  const std::vector<Item> items = work_items(rows, n_groups, kMlpChunk);
  const int64_t n_items = static_cast<int64_t>(items.size());
  const int len = mlp_arch_len(net);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t it = 0; it < n_items; ++it) {
    const Item& item = items[it];
    Scratch& sc = scratch();
    const int32_t* a = archs + item.group * len;
    const int64_t m = item.rows;
    const int64_t ld = round_up(net.width_max, 8);
    float* bufs[2] = {sc.get(0, m * ld), sc.get(1, m * ld)};
    const float* x = obs + item.row0 * net.obs_dim;
    int64_t ldx = net.obs_dim, cin = net.obs_dim;
    for (int l = 0; l < a[0]; ++l) {
      float* y = bufs[l & 1];
      linear_rows(k, sc, m, x, ldx, y, ld, cin, a[1 + l], net.w[l], net.ldw, net.b[l], kTanh);
      x = y;
      ldx = ld;
      cin = a[1 + l];
    }
    float* t = sc.get(2, m * net.ldh);
    linear_rows(k, sc, m, x, ldx, t, net.ldh, cin, net.n_actions + 1, net.head_w, net.ldh,
                net.head_b, kNone);
    write_heads(t, net.ldh, m, net.n_actions, logits + item.row0 * net.n_actions,
                values + item.row0);
  }
}

// Three phases. (1) Per (group, chunk of images): the conv layers the group's arch runs, whose
// last one writes the NHWC feature map of each image into `feat`. (2) The FC layer for ALL groups
// at once, split by blocks of output panels: each block streams its weights once per call (in
// L2-sized slices over the spatial positions) and applies them to every group whose subnet uses
// those outputs, instead of every group streaming its own copy of the largest weight matrix from
// memory. (3) Per chunk: the heads.
void cnn_forward_cpu(const CnnNet& net, const uint8_t* obs, int64_t n_rows, const int32_t* archs,
                     const int64_t* rows, int64_t n_groups, float* logits, float* values) {
  const Kern& k = kernel();
  const std::vector<Item> items = work_items(rows, n_groups, kCnnChunk);
  const int64_t n_items = static_cast<int64_t>(items.size());
  const int len = cnn_arch_len(net);
  const int64_t frame = static_cast<int64_t>(net.c_in) * net.h_in * net.w_in;
  const int area = net.area();
  const int ld_feat = static_cast<int>(round_up(net.c_last_max, 8));
  const int64_t feat_img = static_cast<int64_t>(area) * ld_feat;
  // Per-call buffers on the calling thread (concurrent calls from other threads get their own).
  static thread_local std::vector<float> feat_buf, h1_buf;
  float* feat = fit(feat_buf, n_rows * feat_img);
  float* h1 = fit(h1_buf, n_rows * net.ldf);

#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t it = 0; it < n_items; ++it) {
    const Item& item = items[it];
    Scratch& sc = scratch();
    const int32_t* a = archs + item.group * len;
    const int nb = static_cast<int>(item.rows);

    // The images as float NHWC, space-to-depth(q) for the first layer, with a zero border when
    // that layer is same-padded (the obs_scale goes into the first layer's epilogue).
    const ConvDesc& c0 = net.conv[0];
    const int q = c0.q;
    const int pad0 = c0.pad();
    Plane in{nullptr, q > 1 ? c0.oh + c0.kmax / q - 1 : net.h_in,
             q > 1 ? c0.ow + c0.kmax / q - 1 : net.w_in, pad0, q * q * net.c_in};
    in.data = sc.get(0, nb * in.img(), pad0 > 0);
    for (int b = 0; b < nb; ++b) {
      const uint8_t* img = obs + (item.row0 + b) * frame;
      float* dst = in.data + b * in.img();
      for (int Y = 0; Y < in.h; ++Y) {
        for (int ci = 0; ci < net.c_in; ++ci) {
          for (int dy = 0; dy < q; ++dy) {
            const uint8_t* src =
                img + (static_cast<int64_t>(ci) * net.h_in + q * Y + dy) * net.w_in;
            float* d = dst + (static_cast<int64_t>(Y + pad0) * in.wp() + pad0) * in.ld +
                       ci * q * q + dy * q;
            for (int X = 0; X < in.w; ++X, d += in.ld) {
              for (int dx = 0; dx < q; ++dx) d[dx] = static_cast<float>(src[q * X + dx]);
            }
          }
        }
      }
    }
    Plane cur = in;
    int cur_buf = 0;
    int64_t c_cur = in.ld;
    for (int i = 0; i < net.n_layers; ++i) {
      const int w = a[2 * i];
      if (w == 0) continue;
      const ConvDesc& c = net.conv[i];
      int next = i + 1;
      while (next < net.n_layers && a[2 * next] == 0) ++next;
      Plane out{feat + item.row0 * feat_img, c.oh, c.ow, 0, ld_feat};
      if (next < net.n_layers) {
        const int pad = net.conv[next].pad();
        out = Plane{nullptr, c.oh, c.ow, pad, static_cast<int>(round_up(w, 8))};
        cur_buf = cur_buf == 1 ? 2 : 1;
        out.data = sc.get(cur_buf, nb * out.img(), pad > 0);
      }
      const int ks = a[2 * i + 1] / c.q;
      const int64_t cin_rows = i == 0 ? static_cast<int64_t>(q) * q * net.c_in : c.cin_max;
      conv_layer(k, sc, nb, cur, out, ks, c.stride / c.q, c.same ? ks / 2 : 0, c.kmax / c.q, c_cur,
                 cin_rows, w, c.w, c.rows, c.b, i == 0 ? net.obs_scale : 1.f);
      cur = out;
      c_cur = w;
    }
  }

  // FC: one tap per spatial position over the NHWC map, weights packed position-major.
  std::vector<const float*> arow(static_cast<size_t>(n_rows));
  std::vector<float*> crow(static_cast<size_t>(n_rows));
  for (int64_t r = 0; r < n_rows; ++r) {
    arow[r] = feat + r * feat_img;
    crow[r] = h1 + r * net.ldf;
  }
  std::vector<int64_t> atap(area), btap(area);
  for (int pos = 0; pos < area; ++pos) {
    atap[pos] = static_cast<int64_t>(pos) * ld_feat;
    btap[pos] = static_cast<int64_t>(pos) * net.c_last_max * kPanel;
  }
  const int64_t n_panels = (net.fc_max + kPanel - 1) / kPanel;
  const int64_t n_blocks = (n_panels + kFcPanelsPerBlock - 1) / kFcPanelsPerBlock;
  const int64_t taps_per_block = std::max<int64_t>(1, kKc / net.c_last_max);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t q = 0; q < n_blocks; ++q) {
    const int64_t p_lo = q * kFcPanelsPerBlock;
    for (int64_t t0 = 0; t0 < area; t0 += taps_per_block) {
      const int64_t nt = std::min<int64_t>(taps_per_block, area - t0);
      for (int64_t g = 0; g < n_groups; ++g) {
        const int64_t m = rows[g + 1] - rows[g];
        const int32_t* a = archs + g * len;
        const int fc = a[len - 1];
        const int64_t p_hi =
            std::min<int64_t>(p_lo + kFcPanelsPerBlock, (fc + kPanel - 1) / kPanel);
        if (m == 0 || p_lo >= p_hi) continue;
        Micro mk{};
        mk.atap = atap.data() + t0;
        mk.btap = btap.data() + t0;
        mk.ntaps = nt;
        mk.cin = last_width(net, a);
        mk.ldb = kPanel;
        mk.scale = 1.f;
        mk.act = kRelu;
        mk.load_c = t0 > 0;
        mk.epi = t0 + nt == area;
        for (int64_t p = p_lo; p < p_hi; ++p) {
          const int64_t j0 = p * kPanel;
          const int nv = static_cast<int>(std::min<int64_t>(2, (fc - j0 + 7) / 8));
          mk.b = net.fc_w + p * net.fc_rows * kPanel;
          mk.j0 = j0;
          mk.bias = net.fc_b + j0;
          run_tiles(k, mk, m, arow.data() + rows[g], crow.data() + rows[g], nv);
        }
      }
    }
  }

#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t it = 0; it < n_items; ++it) {
    const Item& item = items[it];
    Scratch& sc = scratch();
    const int32_t* a = archs + item.group * len;
    const int64_t nb = item.rows;
    float* t = sc.get(1, nb * net.ldh);
    linear_rows(k, sc, nb, h1 + item.row0 * net.ldf, net.ldf, t, net.ldh, a[len - 1],
                net.n_actions + 1, net.head_w, net.ldh, net.head_b, kNone);
    write_heads(t, net.ldh, nb, net.n_actions, logits + item.row0 * net.n_actions,
                values + item.row0);
  }
}

}  // namespace subnet_eval
}  // namespace a2d
