// Frame preprocessing core: max of two frames, then area resize. Framework-free.
//
// One frame pair (2, H, W) or (2, H, W, 3) becomes one uint8 (size, size) frame:
//   RGB -> grey with ALE's own luminance formula (each frame first, then the max: see ale_grey),
//   element-wise max of the two frames (gymnasium's AtariPreprocessing max-pool),
//   resize with OpenCV's INTER_AREA semantics (cv::resize picks one of three algorithms):
//     kAreaFast  H and W are integer multiples of size: block sums, rounded as OpenCV does;
//     kArea      H >= size and W >= size: box filter over the exact pixel overlaps, done here
//                in exact integer arithmetic (integer tap weights, vertical pass first, then the
//                horizontal pass; one division per output) instead of OpenCV's float32, and
//                rounded half to even as OpenCV's cvRound rounds its float sum;
//     kLinear    any axis is upscaled: OpenCV's "area-mode" bilinear coefficients with its 11-bit
//                fixed-point arithmetic, reproduced bit for bit.
// The weight tables and the per-pixel math below are shared by the CPU kernel and the CUDA
// kernel, so the two agree bit for bit: kArea is all integers (rational positions in units of
// 1/size), kLinear's floating-point steps are each rounded explicitly (mul_rn), so nothing
// depends on what a compiler does with floating-point contraction.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define A2D_HD __host__ __device__ inline
#else
#define A2D_HD inline
#endif

namespace a2d {
namespace preprocess {

enum class Mode : int { kAreaFast = 0, kArea = 1, kLinear = 2 };

// OpenCV's INTER_RESIZE_COEF_BITS, used by kLinear.
constexpr int kLinBits = 11;

// kArea is exact: a tap's weight along an axis is its overlap in units of 1 / size divided by
// g = gcd(source size, size), an integer; an axis's weights sum to r = source size / g, so an
// output is the integer sum of weight_y * weight_x * pixel over the denominator den = ry * rx.
// Fixed-point weights (an earlier version used Q15/Q16) cannot hold thirds or fifths exactly and
// round every exact .5 the same way, which for scales like 96 -> 84 (8/7: weights in eighths,
// 4.5% of the pixels exact halves) lost 2.3% of the pixels against OpenCV. The CPU's "narrow"
// SIMD path keeps a column sum in 16 bits and divides by den in float (see horizontal_lanes):
constexpr int64_t kNarrowColumnMax = 65535;  // bound on 255 * ry
constexpr int64_t kNarrowDenMax = 65535;     // bound on den (so 255 * den < 2^24 too)

// Everything a kernel needs to know about one call's geometry; plain data, passed to CUDA by value.
struct Plan {
  int h, w, channels, size;
  Mode mode;
  int ty, tx;      // taps per output row / column (the widest one; tables are padded to it)
  int fy, fx;      // block size in kAreaFast
  float inv_area;  // 1.f / (fy * fx), as OpenCV computes it
  int ry, rx;      // kArea: h / gcd(h, size) and w / gcd(w, size), each axis's sum of weights
  int64_t den;     // kArea: ry * rx, the denominator of every output
  bool narrow;     // kArea: 255 * ry fits uint16 and den <= 65535 (the CPU's SIMD path)
};

// Greatest common divisor of two positive ints.
A2D_HD int gcd_int(int a, int b) {
  while (b != 0) {
    const int t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Mode selection exactly as cv::resize decides it (same double arithmetic, so the same answer for
// sizes like 252 -> 84 whose scale is not exactly representable).
inline Plan make_plan(int h, int w, int channels, int size) {
  Plan p{};
  p.h = h;
  p.w = w;
  p.channels = channels;
  p.size = size;
  const double scale_x = 1.0 / (static_cast<double>(size) / w);
  const double scale_y = 1.0 / (static_cast<double>(size) / h);
  const int iscale_x = static_cast<int>(std::lrint(scale_x));
  const int iscale_y = static_cast<int>(std::lrint(scale_y));
  const double eps = 2.220446049250313e-16;  // DBL_EPSILON
  const bool fast = std::fabs(scale_x - iscale_x) < eps && std::fabs(scale_y - iscale_y) < eps;
  if (scale_x >= 1 && scale_y >= 1) {
    if (fast) {
      p.mode = Mode::kAreaFast;
      p.fx = iscale_x;
      p.fy = iscale_y;
      // int64: a block may hold 2^31 pixels or more (a frame pair of 4 GiB), see area_fast_round
      p.inv_area = 1.f / static_cast<float>(static_cast<int64_t>(iscale_x) * iscale_y);
      p.tx = iscale_x;
      p.ty = iscale_y;
    } else {
      p.mode = Mode::kArea;
      p.tx = (w + size - 1) / size + 1;
      p.ty = (h + size - 1) / size + 1;
      p.ry = h / gcd_int(h, size);
      p.rx = w / gcd_int(w, size);
      p.den = static_cast<int64_t>(p.ry) * p.rx;
      p.narrow = 255 * static_cast<int64_t>(p.ry) <= kNarrowColumnMax && p.den <= kNarrowDenMax;
    }
  } else {
    p.mode = Mode::kLinear;
    p.tx = 2;
    p.ty = 2;
  }
  return p;
}

// a * b rounded to double on its own: never fused into a following add (FMA contraction), on
// the host or on the device, so both compute OpenCV's numbers.
A2D_HD double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  volatile double p = a * b;
  return p;
#endif
}

// The taps of output index d along one axis (ssize source pixels -> dsize outputs): source
// indices first .. first + count - 1 with weights w[0 .. count). Returns count (<= the plan's
// ty / tx for that axis). Not used in kAreaFast, whose taps are the fy x fx block.
//
// kArea: output d covers [d * ssize, (d + 1) * ssize) and source s covers [s * dsize,
//   (s + 1) * dsize) in units of 1 / dsize; both ends are multiples of g = gcd(ssize, dsize), so
//   a tap's weight is the integer overlap / g, and the weights sum to ssize / g (the plan's ry or
//   rx): the true weight (overlap / ssize) times that sum, exactly. OpenCV's table
//   (computeResizeAreaTab) is the same up to its float rounding; it drops slivers below 1e-3
//   pixel, which only exist for dsize > 1000.
// kLinear: OpenCV's area-mode bilinear, in OpenCV's own double/float arithmetic (exact rationals
//   would not do: where d * ssize / dsize is an integer, OpenCV's floor(d * scale) can land one
//   pixel lower and then takes that pixel): sx = floor(d * scale), fx = frac((d + 1) - (sx + 1) *
//   inv_scale) (0 if not positive), clamped at the last pixel; both coefficients rounded to 11
//   bits half to even, as saturate_cast<short>(f * 2048) does. Every operation is rounded on its
//   own (mul_rn), so host and device compute the same table.
A2D_HD int axis_taps(Mode mode, int ssize, int dsize, int d, int* first, uint32_t* w) {
  if (mode == Mode::kLinear) {
    const double inv_scale = static_cast<double>(dsize) / ssize;
    const double scale = 1.0 / inv_scale;
    int sx = static_cast<int>(floor(mul_rn(d, scale)));
    float fx = static_cast<float>(static_cast<double>(d + 1) - mul_rn(sx + 1, inv_scale));
    fx = fx <= 0.f ? 0.f : fx - floorf(fx);
    if (sx >= ssize - 1) {
      sx = ssize - 1;
      fx = 0.f;
    }
    const float one = static_cast<float>(1 << kLinBits);
    *first = sx;
    w[0] = static_cast<uint32_t>(rintf((1.f - fx) * one));
    w[1] = static_cast<uint32_t>(rintf(fx * one));
    return w[1] != 0 ? 2 : 1;
  }
  const int64_t lo = static_cast<int64_t>(d) * ssize, hi = lo + ssize;
  const int s0 = static_cast<int>(lo / dsize);
  const int s1 = static_cast<int>((hi + dsize - 1) / dsize);  // exclusive
  const int64_t g = gcd_int(ssize, dsize);
  for (int s = s0; s < s1; ++s) {
    const int64_t a = static_cast<int64_t>(s) * dsize, b = a + dsize;
    const int64_t overlap = (hi < b ? hi : b) - (lo > a ? lo : a);
    w[s - s0] = static_cast<uint32_t>(overlap / g);  // exact: overlap is a multiple of g
  }
  *first = s0;
  return s1 - s0;
}

// ALE's grey level of an RGB pixel: ColourPalette.cpp, convertGrayscale():
//   lum = (uint8_t)round(r * 0.2989 + g * 0.5870 + b * 0.1140)   (double arithmetic)
// (Arcade-Learning-Environment, src/ale/common/ColourPalette.cpp). ALE's getScreenGrayscale()
// reads that value from its palette, so grey(getScreenRGB()) == getScreenGrayscale() exactly.
// Computed here in integers (weights x 10^4 sum to 9999); the two differ only on exact ties
// (1703 of the 2^24 colours, 292 of which ALE's doubles round down), settled by the double formula.
A2D_HD uint8_t ale_grey(uint32_t r, uint32_t g, uint32_t b) {
  const uint32_t key = 2989u * r + 5870u * g + 1140u * b;
  const uint32_t q = key / 10000u, rem = key - q * 10000u;
  if (rem != 5000u) return static_cast<uint8_t>(rem > 5000u ? q + 1 : q);
#ifdef __CUDA_ARCH__
  const double x =
      __dadd_rn(__dadd_rn(__dmul_rn(r, 0.2989), __dmul_rn(g, 0.5870)), __dmul_rn(b, 0.1140));
#else
  // volatile keeps each product rounded to double, as in ALE (no fused multiply-add).
  volatile double pr = r * 0.2989, pg = g * 0.5870, pb = b * 0.1140;
  const double x = (pr + pg) + pb;
#endif
  return static_cast<uint8_t>(floor(x + 0.5));
}

// The max-pooled grey pixel (row, col) of one frame pair (pointers to frame 0 and frame 1).
A2D_HD uint32_t max_pixel(const uint8_t* f0, const uint8_t* f1, int channels, int64_t offset) {
  if (channels == 1) {
    const uint32_t a = f0[offset], b = f1[offset];
    return a > b ? a : b;
  }
  const uint8_t* p = f0 + 3 * offset;
  const uint8_t* q = f1 + 3 * offset;
  const uint32_t a = ale_grey(p[0], p[1], p[2]), b = ale_grey(q[0], q[1], q[2]);
  return a > b ? a : b;
}

// kArea: an output's exact weighted sum num (<= 255 * den) over den, rounded half to even. That
// is what OpenCV's saturate_cast<uchar>(float) (cvRound) does to its float sum, and exact .5s are
// common (every pixel of a 96 -> 84 resize whose 2x2 weights are all 1/4 and whose pixel sum is
// odd); where the float weights are exact (weights in eighths, say) OpenCV's sum is exact too.
// Acc is uint32_t where num fits (den is then below 2^31 too), else uint64_t.
template <typename Acc>
A2D_HD uint8_t round_half_even(Acc num, Acc den) {
  const Acc q = num / den;
  const Acc twice_r = 2 * (num - q * den);
  return static_cast<uint8_t>(q + ((twice_r > den || (twice_r == den && (q & 1u))) ? 1u : 0u));
}

// kLinear: OpenCV's vertical step for 8-bit (VResizeLinearVec_32s8u): the horizontal sums h0, h1
// (scale 2^11) are shifted right by 4, multiplied by the 11-bit betas keeping the high 16 bits,
// summed and rounded by 2 bits.
A2D_HD uint8_t linear_combine(int32_t h0, int32_t h1, int32_t b0, int32_t b1) {
  int32_t y = (((h0 >> 4) * b0) >> 16) + (((h1 >> 4) * b1) >> 16);
  y = (y + 2) >> 2;
  return static_cast<uint8_t>(y < 0 ? 0 : (y > 255 ? 255 : y));
}

// kAreaFast: OpenCV's resizeAreaFast rounding of a block sum: (sum + 2) >> 2 for 2x2 blocks
// (its SIMD path), otherwise saturate_cast<uchar>(sum * (1.f / area)), i.e. rint of a float32.
// (64-bit: a block of fy * fx up to 2^40 pixels of 255 overflows 32 bits past 16.8 M pixels)
A2D_HD uint8_t area_fast_round(uint64_t sum, int fy, int fx, float inv_area) {
  if (fy == 2 && fx == 2) return static_cast<uint8_t>((sum + 2) >> 2);
  const float v = rintf(static_cast<float>(sum) * inv_area);
  return static_cast<uint8_t>(v > 255.f ? 255.f : v);
}

// ---- entry points ----

// out[i] = preprocess(raw[i]) for i < n; raw is (n, 2, h, w[, 3]) C-contiguous, out rows are
// contiguous (row stride size) and frames are out_batch_stride bytes apart. Thread-parallel.
void preprocess_cpu(const uint8_t* raw, int64_t n, int h, int w, int channels, int size,
                    uint8_t* out, int64_t out_batch_stride);

// stack (n, k, size, size) C-contiguous: shift every env's stack left by one frame and write the
// new frame into slot k - 1; where reset_mask[i] != 0 (reset_mask may be null) all k slots of
// env i get the new frame.
void push_frames_cpu(const uint8_t* raw, int64_t n, int h, int w, int channels, int size,
                     uint8_t* stack, int k, const uint8_t* reset_mask);

// The CPU code path in use: "avx2" or "generic" (forced by A2D_EVO_PREPROCESS_ISA=generic).
const char* preprocess_isa();

#ifdef A2D_WITH_CUDA
// The same ops on device pointers, enqueued on `stream` (a cudaStream_t as an integer; 0 is the
// legacy default stream). Asynchronous; throws std::runtime_error on a launch error and
// std::invalid_argument on a geometry the kernel cannot take.
void preprocess_cuda(uintptr_t raw, uintptr_t out, int64_t out_batch_stride, int64_t n, int h,
                     int w, int channels, int size, uintptr_t stream);
void push_frames_cuda(uintptr_t raw, uintptr_t stack, uintptr_t reset_mask, int64_t n, int k, int h,
                      int w, int channels, int size, uintptr_t stream);
#endif

}  // namespace preprocess
}  // namespace a2d
