// Row kernels of the CPU frame preprocessing (preprocess_cpu.cpp, the only file that includes
// this one): the separable integer resize of a band of output rows from per-axis weight tables,
// kArea (narrow and wide), kAreaFast and kLinear, with their vertical, transpose and horizontal
// passes. Each is always inlined into process_band, compiled once per ISA (see preprocess.h for
// the arithmetic).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "preprocess.h"

// The kArea rounding (horizontal_lanes, below) and ale_grey (preprocess.h) need IEEE arithmetic as
// written.
#ifdef __FAST_MATH__
#error "preprocess_cpu.cpp must not be compiled with -ffast-math"
#endif

// The hot code is compiled twice, for AVX2 and for the baseline ISA, and picked at run time
// (the build uses no -march flag): process_band<true> / <false> in preprocess_cpu.cpp.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define A2D_X86_DISPATCH 1
#include <immintrin.h>
#define A2D_AVX2 __attribute__((target("avx2")))
#endif
#if defined(__GNUC__) || defined(__clang__)
#define A2D_INLINE inline __attribute__((always_inline))
#else
#define A2D_INLINE inline
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace a2d {
namespace preprocess {
namespace {

// Weight tables of one (h, w, size) geometry (plan.channels unused: tables are per geometry).
// y: per output row its first source row, tap count and ty weights. x: per output column tx
// source indices (clamped into range) and weights (zero-padded to tx).
struct Tables {
  Plan plan;
  std::vector<int> y_first, y_count;
  std::vector<uint32_t> y_w;
  std::vector<int> x_idx;
  std::vector<uint32_t> x_w;
};

// Where source row r of frame 0 and frame 1 starts: the raw frames for grey input, or a band of
// already max-pooled grey rows (the same for both) for RGB input.
struct Rows {
  const uint8_t* base0;  // row r0 of frame 0
  const uint8_t* base1;  // row r0 of frame 1
  int w, r0;
  const uint8_t* f0(int r) const { return base0 + static_cast<int64_t>(r - r0) * w; }
  const uint8_t* f1(int r) const { return base1 + static_cast<int64_t>(r - r0) * w; }
};

// Thread-local scratch of one band.
struct Scratch {
  std::vector<uint16_t> v, vt;        // narrow kArea: column sums of a block of rows, transposed
  std::vector<uint8_t> ot;            // narrow kArea: the block's output, transposed
  std::vector<uint32_t> col, h0, h1;  // kAreaFast column sums; kLinear horizontal sums
  std::vector<uint64_t> wide;         // wide kArea: column sums of one output row
  std::vector<uint8_t> grey;          // RGB input: max-pooled grey rows of the band
};

constexpr int kBlock = 8;  // output rows per kArea block: the lanes of the horizontal pass

// v[x] = sum_c w[c] * max(f0[c][x], f1[c][x]) over the C source rows of one output row: exact
// column sums, below 2^16 in a narrow plan; C is a compile-time constant so the loop vectorises.
template <int C>
A2D_INLINE void vertical_fixed(const Rows& rows, int first, const uint32_t* w, int width,
                               uint16_t* v) {
  const uint8_t* a[C];
  const uint8_t* b[C];
  for (int c = 0; c < C; ++c) {
    a[c] = rows.f0(first + c);
    b[c] = rows.f1(first + c);
  }
  for (int x = 0; x < width; ++x) {
    uint32_t s = 0;
    for (int c = 0; c < C; ++c) s += w[c] * std::max(a[c][x], b[c][x]);
    v[x] = static_cast<uint16_t>(s);
  }
}

#ifdef A2D_X86_DISPATCH
// The same with AVX2: 16 columns per step in 16-bit lanes (a narrow plan's weights are at most
// ry <= 257 and its column sums below 2^16, so the low 16 bits of each product and of the sum are
// exact). Not inlined (an AVX2 function cannot be inlined into the generic template chain); one
// call per output row.
template <int C>
A2D_AVX2 void vertical_avx2(const Rows& rows, int first, const uint32_t* w, int width,
                            uint16_t* v) {
  const uint8_t* a[C];
  const uint8_t* b[C];
  __m256i wv[C];
  for (int c = 0; c < C; ++c) {
    a[c] = rows.f0(first + c);
    b[c] = rows.f1(first + c);
    wv[c] = _mm256_set1_epi16(static_cast<int16_t>(w[c]));
  }
  int x = 0;
  for (; x + 16 <= width; x += 16) {
    __m256i s = _mm256_setzero_si256();
    for (int c = 0; c < C; ++c) {
      const __m128i m = _mm_max_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a[c] + x)),
                                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[c] + x)));
      s = _mm256_add_epi16(s, _mm256_mullo_epi16(_mm256_cvtepu8_epi16(m), wv[c]));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(v + x), s);
  }
  for (; x < width; ++x) {
    uint32_t s = 0;
    for (int c = 0; c < C; ++c) s += w[c] * std::max(a[c][x], b[c][x]);
    v[x] = static_cast<uint16_t>(s);
  }
}
#endif

template <bool kAvx2, int C>
A2D_INLINE void vertical_n(const Rows& rows, int first, const uint32_t* w, int width, uint16_t* v) {
#ifdef A2D_X86_DISPATCH
  if constexpr (kAvx2) return vertical_avx2<C>(rows, first, w, width, v);
#endif
  vertical_fixed<C>(rows, first, w, width, v);
}

template <bool kAvx2>
A2D_INLINE void vertical(const Rows& rows, int first, int count, const uint32_t* w, int width,
                         uint16_t* v) {
  switch (count) {
    case 1:
      return vertical_n<kAvx2, 1>(rows, first, w, width, v);
    case 2:
      return vertical_n<kAvx2, 2>(rows, first, w, width, v);
    case 3:
      return vertical_n<kAvx2, 3>(rows, first, w, width, v);
    case 4:
      return vertical_n<kAvx2, 4>(rows, first, w, width, v);
    case 5:
      return vertical_n<kAvx2, 5>(rows, first, w, width, v);
    default:
      break;
  }
  constexpr int kChunk = 64;  // large downscale factors: accumulate a chunk of columns at a time
  for (int x0 = 0; x0 < width; x0 += kChunk) {
    const int nx = std::min(kChunk, width - x0);
    uint32_t s[kChunk] = {};
    for (int c = 0; c < count; ++c) {
      const uint8_t* a = rows.f0(first + c) + x0;
      const uint8_t* b = rows.f1(first + c) + x0;
      for (int x = 0; x < nx; ++x) s[x] += w[c] * std::max(a[x], b[x]);
    }
    for (int x = 0; x < nx; ++x) v[x0 + x] = static_cast<uint16_t>(s[x]);
  }
}

// vt[x * kBlock + j] = v[j * w + x]: kBlock rows of w uint16 become w columns of kBlock.
A2D_INLINE void transpose_to_columns(const uint16_t* v, int w, uint16_t* vt) {
  int x = 0;
#if defined(__SSE2__)
  for (; x + 8 <= w; x += 8) {
    __m128i r[8], t[8];
    for (int j = 0; j < 8; ++j) {
      r[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + j * w + x));
    }
    for (int j = 0; j < 8; j += 2) {
      t[j] = _mm_unpacklo_epi16(r[j], r[j + 1]);
      t[j + 1] = _mm_unpackhi_epi16(r[j], r[j + 1]);
    }
    // t[0], t[2], t[4], t[6]: columns 0-3 of row pairs; t[1], t[3], ...: columns 4-7.
    for (int h = 0; h < 2; ++h) {
      const __m128i u0 = _mm_unpacklo_epi32(t[h], t[h + 2]);
      const __m128i u1 = _mm_unpackhi_epi32(t[h], t[h + 2]);
      const __m128i u2 = _mm_unpacklo_epi32(t[h + 4], t[h + 6]);
      const __m128i u3 = _mm_unpackhi_epi32(t[h + 4], t[h + 6]);
      __m128i* out = reinterpret_cast<__m128i*>(vt + (x + 4 * h) * kBlock);
      _mm_storeu_si128(out + 0, _mm_unpacklo_epi64(u0, u2));
      _mm_storeu_si128(out + 1, _mm_unpackhi_epi64(u0, u2));
      _mm_storeu_si128(out + 2, _mm_unpacklo_epi64(u1, u3));
      _mm_storeu_si128(out + 3, _mm_unpackhi_epi64(u1, u3));
    }
  }
#endif
  for (; x < w; ++x) {
    for (int j = 0; j < kBlock; ++j) vt[x * kBlock + j] = v[j * w + x];
  }
}

// dst[j * size + o] = ot[o * kBlock + j] for the first nrows rows j.
A2D_INLINE void transpose_to_rows(const uint8_t* ot, int size, int nrows, uint8_t* dst) {
  int o = 0;
#if defined(__SSE2__)
  if (nrows == kBlock) {
    for (; o + 8 <= size; o += 8) {
      __m128i a[8];
      for (int i = 0; i < 8; ++i) {
        a[i] = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(ot + (o + i) * kBlock));
      }
      const __m128i b0 = _mm_unpacklo_epi8(a[0], a[1]), b1 = _mm_unpacklo_epi8(a[2], a[3]);
      const __m128i b2 = _mm_unpacklo_epi8(a[4], a[5]), b3 = _mm_unpacklo_epi8(a[6], a[7]);
      const __m128i c0 = _mm_unpacklo_epi16(b0, b1), c1 = _mm_unpackhi_epi16(b0, b1);
      const __m128i c2 = _mm_unpacklo_epi16(b2, b3), c3 = _mm_unpackhi_epi16(b2, b3);
      const __m128i d[4] = {_mm_unpacklo_epi32(c0, c2), _mm_unpackhi_epi32(c0, c2),
                            _mm_unpacklo_epi32(c1, c3), _mm_unpackhi_epi32(c1, c3)};
      for (int q = 0; q < 4; ++q) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + (2 * q) * size + o), d[q]);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + (2 * q + 1) * size + o),
                         _mm_unpackhi_epi64(d[q], d[q]));
      }
    }
  }
#endif
  for (int j = 0; j < nrows; ++j) {
    for (int oo = o; oo < size; ++oo) dst[j * size + oo] = ot[oo * kBlock + j];
  }
}

// One output column of a block: ot[j] = round_half_even(sum_k w[k] * vt[idx[k]][j], den) for the
// kBlock lanes j. GCC/Clang vector types make this one 8-lane multiply-add per tap in either
// clone. The division is one float division, exact enough: a narrow plan's sums are below 2^24
// (exact in float) and den <= 65535, so IEEE's correctly rounded quotient (< 256, within 2^-17 of
// the true one) is exactly k + 0.5 on a tie and otherwise stays on the true side of every
// half-integer (those are at least 1 / (2 den) > 2^-17 away); adding 2^23 then rounds it to an
// integer half to even, as cvRound does, which lands in the low byte. (-ffast-math would turn the
// division into a multiply by a rounded reciprocal: hence the #error at the top.)
#if defined(__GNUC__) || defined(__clang__)
typedef uint16_t u16x8 __attribute__((vector_size(16)));
typedef uint32_t u32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef uint8_t u8x32 __attribute__((vector_size(32)));
A2D_INLINE void horizontal_lanes(const uint16_t* vt, const int* idx, const uint32_t* w, int tx,
                                 float den, uint8_t* ot) {
  static_assert(kBlock == 8, "lane types assume 8 rows per block");
  u32x8 acc = {};
  for (int k = 0; k < tx; ++k) {
    u16x8 col;
    std::memcpy(&col, vt + idx[k] * kBlock, sizeof(col));
    acc += w[k] * __builtin_convertvector(col, u32x8);
  }
  const f32x8 quotient = __builtin_convertvector(reinterpret_cast<i32x8>(acc), f32x8) / den;
  const f32x8 rounded = quotient + 8388608.f;  // 2^23: float spacing 1, so this rounds to k
  const u8x32 bytes = reinterpret_cast<u8x32>(rounded);
  const u8x32 low = __builtin_shuffle(bytes, u8x32{0, 4, 8, 12, 16, 20, 24, 28});
  std::memcpy(ot, &low, kBlock);
}
#else
A2D_INLINE void horizontal_lanes(const uint16_t* vt, const int* idx, const uint32_t* w, int tx,
                                 float den, uint8_t* ot) {
  uint32_t acc[kBlock] = {};
  for (int k = 0; k < tx; ++k) {
    for (int j = 0; j < kBlock; ++j) acc[j] += w[k] * vt[idx[k] * kBlock + j];
  }
  for (int j = 0; j < kBlock; ++j)
    ot[j] = round_half_even<uint32_t>(acc[j], static_cast<uint32_t>(den));
}
#endif

// kArea for plans too large for the narrow path (ry above 257, e.g. a prime number of rows, or
// den above 65535): the same exact sums in 64 bits, one output row at a time, scalar.
A2D_INLINE void area_rows_wide(const Tables& t, const Rows& rows, uint8_t* dst, int oy0, int oy1,
                               Scratch& s) {
  const Plan& p = t.plan;
  const int w = p.w, size = p.size, tx = p.tx;
  s.wide.resize(w);
  uint64_t* col = s.wide.data();
  for (int oy = oy0; oy < oy1; ++oy) {
    std::fill(col, col + w, uint64_t{0});
    const uint32_t* wy = t.y_w.data() + static_cast<size_t>(oy) * p.ty;
    for (int c = 0; c < t.y_count[oy]; ++c) {
      const uint8_t* a = rows.f0(t.y_first[oy] + c);
      const uint8_t* b = rows.f1(t.y_first[oy] + c);
      for (int x = 0; x < w; ++x) col[x] += static_cast<uint64_t>(wy[c]) * std::max(a[x], b[x]);
    }
    uint8_t* out = dst + static_cast<int64_t>(oy) * size;
    for (int o = 0; o < size; ++o) {
      const int* idx = t.x_idx.data() + static_cast<size_t>(o) * tx;
      const uint32_t* wx = t.x_w.data() + static_cast<size_t>(o) * tx;
      uint64_t acc = 0;
      for (int k = 0; k < tx; ++k) acc += wx[k] * col[idx[k]];
      out[o] = round_half_even<uint64_t>(acc, static_cast<uint64_t>(p.den));
    }
  }
}

// kArea on output rows [oy0, oy1): blocks of kBlock rows. The vertical pass runs along rows; the
// block is then transposed so that the horizontal pass, whose taps differ per output column,
// runs with the block's rows as vector lanes (no gathers), and transposed back.
template <bool kAvx2>
A2D_INLINE void area_rows(const Tables& t, const Rows& rows, uint8_t* dst, int oy0, int oy1,
                          Scratch& s) {
  const Plan& p = t.plan;
  if (!p.narrow) return area_rows_wide(t, rows, dst, oy0, oy1, s);
  const int w = p.w, size = p.size, tx = p.tx;
  const float den = static_cast<float>(p.den);
  s.v.resize(static_cast<size_t>(kBlock) * w);
  s.vt.resize(static_cast<size_t>(kBlock) * w);
  s.ot.resize(static_cast<size_t>(kBlock) * size);
  uint16_t* v = s.v.data();
  uint16_t* vt = s.vt.data();
  uint8_t* ot = s.ot.data();
  for (int ob = oy0; ob < oy1; ob += kBlock) {
    const int nrows = std::min(kBlock, oy1 - ob);
    for (int j = 0; j < nrows; ++j) {
      const int oy = ob + j;
      vertical<kAvx2>(rows, t.y_first[oy], t.y_count[oy],
                      t.y_w.data() + static_cast<size_t>(oy) * p.ty, w,
                      v + static_cast<size_t>(j) * w);
    }
    if (nrows < kBlock) std::fill(v + static_cast<size_t>(nrows) * w, v + kBlock * w, 0);
    transpose_to_columns(v, w, vt);
    for (int o = 0; o < size; ++o) {
      horizontal_lanes(vt, t.x_idx.data() + static_cast<size_t>(o) * tx,
                       t.x_w.data() + static_cast<size_t>(o) * tx, tx, den, ot + o * kBlock);
    }
    transpose_to_rows(ot, size, nrows, dst + static_cast<int64_t>(ob) * size);
  }
}

// kAreaFast: column sums of each fy-row block, then fx-wide block sums, rounded as OpenCV does.
A2D_INLINE void area_fast_rows(const Tables& t, const Rows& rows, uint8_t* dst, int oy0, int oy1,
                               Scratch& s) {
  const Plan& p = t.plan;
  const int w = p.w, size = p.size;
  s.col.resize(w);
  const int fy = p.fy, fx = p.fx;
  const float inv_area = p.inv_area;
  uint32_t* col = s.col.data();
  for (int oy = oy0; oy < oy1; ++oy) {
    std::fill(col, col + w, 0u);
    for (int c = 0; c < fy; ++c) {
      const uint8_t* a = rows.f0(oy * fy + c);
      const uint8_t* b = rows.f1(oy * fy + c);
      for (int x = 0; x < w; ++x) col[x] += std::max(a[x], b[x]);
    }
    uint8_t* out = dst + static_cast<int64_t>(oy) * size;
    if (fx == 2 && fy == 2) {
      for (int o = 0; o < size; ++o) out[o] = area_fast_round(col[2 * o] + col[2 * o + 1], 2, 2, 0);
      continue;
    }
    for (int o = 0; o < size; ++o) {
      uint64_t sum = 0;  // a column holds <= 255 * 2^20; fx of them can pass 2^32
      for (int k = 0; k < fx; ++k) sum += col[o * fx + k];
      out[o] = area_fast_round(sum, fy, fx, inv_area);
    }
  }
}

// kLinear: OpenCV's horizontal sums of the two source rows of each output row, then its
// fixed-point vertical step (the source rows are max-pooled first, as everywhere).
A2D_INLINE void linear_rows(const Tables& t, const Rows& rows, uint8_t* dst, int oy0, int oy1,
                            Scratch& s) {
  const Plan& p = t.plan;
  const int size = p.size, tx = p.tx;
  s.h0.resize(size);
  s.h1.resize(size);
  for (int oy = oy0; oy < oy1; ++oy) {
    const int first = t.y_first[oy];
    const int src[2] = {first, std::min(first + 1, p.h - 1)};
    uint32_t* h[2] = {s.h0.data(), s.h1.data()};
    for (int q = 0; q < 2; ++q) {
      const uint8_t* a = rows.f0(src[q]);
      const uint8_t* b = rows.f1(src[q]);
      for (int o = 0; o < size; ++o) {
        uint32_t acc = 0;
        for (int k = 0; k < tx; ++k) {
          const int x = t.x_idx[static_cast<size_t>(o) * tx + k];
          acc += t.x_w[static_cast<size_t>(o) * tx + k] * std::max(a[x], b[x]);
        }
        h[q][o] = acc;
      }
    }
    const uint32_t* wy = t.y_w.data() + static_cast<size_t>(oy) * p.ty;
    const int32_t b0 = static_cast<int32_t>(wy[0]);
    const int32_t b1 = t.y_count[oy] > 1 ? static_cast<int32_t>(wy[1]) : 0;
    uint8_t* out = dst + static_cast<int64_t>(oy) * size;
    for (int o = 0; o < size; ++o) {
      out[o] = linear_combine(static_cast<int32_t>(h[0][o]), static_cast<int32_t>(h[1][o]), b0, b1);
    }
  }
}

}  // namespace
}  // namespace preprocess
}  // namespace a2d
