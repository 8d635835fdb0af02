// CPU kernel of the frame preprocessing op: OpenMP over (env, band of output rows), separable
// integer resize from cached per-axis weight tables (the row kernels: preprocess_rows_cpu.h; the
// arithmetic: preprocess.h).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "preprocess.h"
#include "preprocess_rows_cpu.h"

#ifdef A2D_WITH_OPENMP
#include <omp.h>
#endif

namespace a2d {
namespace preprocess {
namespace {

std::shared_ptr<const Tables> build_tables(int h, int w, int size) {
  auto t = std::make_shared<Tables>();
  const Plan p = make_plan(h, w, 1, size);
  t->plan = p;
  t->y_first.assign(size, 0);
  t->y_count.assign(size, 0);
  t->y_w.assign(static_cast<size_t>(size) * p.ty, 0);
  t->x_idx.assign(static_cast<size_t>(size) * p.tx, 0);
  t->x_w.assign(static_cast<size_t>(size) * p.tx, 0);
  std::vector<uint32_t> wbuf(std::max(p.tx, p.ty) + 1);
  for (int d = 0; d < size; ++d) {
    if (p.mode == Mode::kAreaFast) {
      t->y_first[d] = d * p.fy;
      t->y_count[d] = p.fy;
      continue;
    }
    int first = 0;
    int count = axis_taps(p.mode, h, size, d, &first, wbuf.data());
    t->y_first[d] = first;
    t->y_count[d] = count;
    for (int k = 0; k < count; ++k) t->y_w[static_cast<size_t>(d) * p.ty + k] = wbuf[k];
    count = axis_taps(p.mode, w, size, d, &first, wbuf.data());
    for (int k = 0; k < p.tx; ++k) {
      const size_t at = static_cast<size_t>(d) * p.tx + k;
      t->x_idx[at] = std::min(first + k, w - 1);
      t->x_w[at] = k < count ? wbuf[k] : 0;
    }
  }
  return t;
}

// One table per geometry, built on first use; callers run with the GIL released, hence the lock.
std::shared_ptr<const Tables> get_tables(int h, int w, int size) {
  static std::mutex mu;
  static std::map<std::tuple<int, int, int>, std::shared_ptr<const Tables>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(h, w, size);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= 64) cache.clear();  // bounded; geometries rarely change within a process
  auto t = build_tables(h, w, size);
  cache.emplace(key, t);
  return t;
}

// Rounded key / 10^4 of ale_grey, vectorisable: a float estimate of the quotient, corrected with
// the exact integer remainder. Sets *tie when the key sits exactly on a half (see ale_grey).
A2D_INLINE uint32_t grey_of_key(uint32_t key, uint32_t* tie) {
  const uint32_t k = key + 5000u;  // < 2^22: exact in float
  int32_t q = static_cast<int32_t>(static_cast<float>(k) * 1e-4f);
  int32_t r = static_cast<int32_t>(k) - q * 10000;
  q += (r >= 10000) - (r < 0);
  r = static_cast<int32_t>(k) - q * 10000;
  *tie |= (r == 0);
  return static_cast<uint32_t>(q);
}

// g[x] = max(ale_grey(p0[x]), ale_grey(p1[x])) for one row of RGB pixels: the integer formula
// in a vectorisable loop, and the exact ALE rounding for the rare rows holding a tie.
A2D_INLINE void grey_max_row(const uint8_t* p0, const uint8_t* p1, int w, uint8_t* g) {
  uint32_t tie = 0;
  for (int x = 0; x < w; ++x) {
    const uint8_t* a = p0 + 3 * x;
    const uint8_t* b = p1 + 3 * x;
    const uint32_t ga = grey_of_key(2989u * a[0] + 5870u * a[1] + 1140u * a[2], &tie);
    const uint32_t gb = grey_of_key(2989u * b[0] + 5870u * b[1] + 1140u * b[2], &tie);
    g[x] = static_cast<uint8_t>(ga > gb ? ga : gb);
  }
  if (tie) {
    for (int x = 0; x < w; ++x) g[x] = static_cast<uint8_t>(max_pixel(p0, p1, 3, x));
  }
}

// Output rows [oy0, oy1) of one env: raw0/raw1 are its two frames, dst its (size, size) frame.
template <bool kAvx2>
A2D_INLINE void process_band(const Tables& t, int channels, const uint8_t* raw0,
                             const uint8_t* raw1, uint8_t* dst, int oy0, int oy1, Scratch& s) {
  const Plan& p = t.plan;
  const int w = p.w;
  Rows rows{raw0, raw1, w, 0};
  if (channels == 3) {
    // The source rows this band reads, converted once (ALE grey of each frame, then the max).
    const int r_lo = t.y_first[oy0];
    int r_hi = r_lo;
    for (int oy = oy0; oy < oy1; ++oy) {
      r_hi = std::max(r_hi, std::min(t.y_first[oy] + std::max(t.y_count[oy], 2), p.h));
    }
    s.grey.resize(static_cast<size_t>(r_hi - r_lo) * w);
    for (int r = r_lo; r < r_hi; ++r) {
      uint8_t* g = s.grey.data() + static_cast<size_t>(r - r_lo) * w;
      const int64_t off = static_cast<int64_t>(r) * w;
      grey_max_row(raw0 + 3 * off, raw1 + 3 * off, w, g);
    }
    rows = Rows{s.grey.data(), s.grey.data(), w, r_lo};
  }
  switch (p.mode) {
    case Mode::kArea:
      return area_rows<kAvx2>(t, rows, dst, oy0, oy1, s);
    case Mode::kAreaFast:
      return area_fast_rows(t, rows, dst, oy0, oy1, s);
    case Mode::kLinear:
      return linear_rows(t, rows, dst, oy0, oy1, s);
  }
}

using BandFn = void (*)(const Tables&, int, const uint8_t*, const uint8_t*, uint8_t*, int, int,
                        Scratch&);

void band_generic(const Tables& t, int channels, const uint8_t* raw0, const uint8_t* raw1,
                  uint8_t* dst, int oy0, int oy1, Scratch& s) {
  process_band<false>(t, channels, raw0, raw1, dst, oy0, oy1, s);
}

#ifdef A2D_X86_DISPATCH
A2D_AVX2 void band_avx2(const Tables& t, int channels, const uint8_t* raw0, const uint8_t* raw1,
                        uint8_t* dst, int oy0, int oy1, Scratch& s) {
  process_band<true>(t, channels, raw0, raw1, dst, oy0, oy1, s);
}
#endif

// The band function for this CPU, chosen once: AVX2 when the CPU has it, unless
// A2D_EVO_PREPROCESS_ISA=generic (read at the first call) forces the portable one, so that tests
// can check it on any machine.
BandFn band_fn() {
  static const BandFn fn = [] {
    const char* forced = std::getenv("A2D_EVO_PREPROCESS_ISA");
    if (forced != nullptr && std::string(forced) == "generic") return band_generic;
#ifdef A2D_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return band_avx2;
#endif
    return band_generic;
  }();
  return fn;
}

Scratch& thread_scratch() {
  thread_local Scratch s;
  return s;
}

int num_threads() {
#ifdef A2D_WITH_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Split each frame into bands of output rows when there are fewer envs than threads, so that a
// single env still uses every core.
int bands_for(int64_t n, int size) {
  const int threads = num_threads();
  if (n >= threads) return 1;
  const int64_t want = (threads + n - 1) / n;
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(want, size / 8 > 0 ? size / 8 : 1)));
}

// One parallel loop over (env, band) tasks. out + i * out_stride is env i's output frame. For
// push_frames (k > 1) that frame is slot k - 1 of a (k, size, size) stack and each task also
// shifts its band's rows of the older slots left first and, for a reset env, copies the new rows
// into every slot afterwards: rows of different bands never overlap, so no extra barrier.
void run_all(const Tables& t, int channels, const uint8_t* raw, int64_t n, uint8_t* out,
             int64_t out_stride, int k, const uint8_t* reset_mask) {
  const Plan& p = t.plan;
  const int64_t frame = static_cast<int64_t>(p.h) * p.w * channels;
  const int64_t plane = static_cast<int64_t>(p.size) * p.size;
  const int bands = bands_for(n, p.size);
  const int64_t tasks = n * bands;
  const BandFn band_fn_ = band_fn();
#ifdef A2D_WITH_OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1)
#endif
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t i = task / bands;
    const int band = static_cast<int>(task % bands);
    const int oy0 = static_cast<int>(static_cast<int64_t>(p.size) * band / bands);
    const int oy1 = static_cast<int>(static_cast<int64_t>(p.size) * (band + 1) / bands);
    const int64_t row0 = static_cast<int64_t>(oy0) * p.size;
    const size_t rows_bytes = static_cast<size_t>(oy1 - oy0) * p.size;
    uint8_t* dst = out + i * out_stride;
    uint8_t* slot0 = dst - (k - 1) * plane;  // == dst unless pushing
    for (int j = 0; j + 1 < k; ++j) {
      std::memcpy(slot0 + j * plane + row0, slot0 + (j + 1) * plane + row0, rows_bytes);
    }
    const uint8_t* f0 = raw + i * 2 * frame;
    band_fn_(t, channels, f0, f0 + frame, dst, oy0, oy1, thread_scratch());
    if (reset_mask != nullptr && reset_mask[i]) {
      for (int j = 0; j + 1 < k; ++j) std::memcpy(slot0 + j * plane + row0, dst + row0, rows_bytes);
    }
  }
}

}  // namespace

void preprocess_cpu(const uint8_t* raw, int64_t n, int h, int w, int channels, int size,
                    uint8_t* out, int64_t out_batch_stride) {
  if (n <= 0) return;
  const std::shared_ptr<const Tables> t = get_tables(h, w, size);
  run_all(*t, channels, raw, n, out, out_batch_stride, 1, nullptr);
}

const char* preprocess_isa() { return band_fn() == band_generic ? "generic" : "avx2"; }

void push_frames_cpu(const uint8_t* raw, int64_t n, int h, int w, int channels, int size,
                     uint8_t* stack, int k, const uint8_t* reset_mask) {
  if (n <= 0 || k < 1) return;
  const std::shared_ptr<const Tables> t = get_tables(h, w, size);
  const int64_t plane = static_cast<int64_t>(size) * size;
  run_all(*t, channels, raw, n, stack + (k - 1) * plane, k * plane, k, reset_mask);
}

}  // namespace preprocess
}  // namespace a2d
