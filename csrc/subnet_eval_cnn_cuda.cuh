// CNN kernels of the CUDA subnet evaluation (subnet_eval_cuda.cu, the only file that includes
// this one; the design is in its header comment): the per-layer implicit-GEMM kernel, the
// space-to-depth input kernel and the NHWC planes of a batch.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "subnet_eval.h"
#include "subnet_eval_common_cuda.cuh"

namespace a2d {
namespace subnet_eval {
namespace {

// ------------------------------------------------------------------ CNN
enum Mode : int { kConv = 0, kFc = 1, kHeads = 2 };

// NHWC plane of one image: interior h x w, zero border `pad`, channel stride ld.
struct PlaneDesc {
  float* data;
  int64_t img;  // floats per image
  int h, w, pad, ld;
};

struct Layer {
  int mode;
  int index;                      // conv: the declared layer
  PlaneDesc input;                // the (space-to-depth) images
  PlaneDesc out[kMaxConvLayers];  // conv layer i's output plane
  float* h1;                      // FC output / heads input: (n_rows, ldf)
  const int32_t* archs;
  const int32_t* row_group;
  const int32_t* chunks;
  float* logits;
  float* values;
};

struct Geo {
  int64_t m;  // rows of the tile space
  int cin, co, ks, stride, shift, kmax, crop, out_w;
  int64_t cin_max, ldb;
  int64_t wrows;  // rows of the panel-packed weight (conv, FC); heads use ldb
  const float* w;
  const float* bias;
  float scale;
  const float* in;  // conv: the image; FC/heads: the chunk's first row
  PlaneDesc pin, pout;
  int row0, rows;
  bool skip;
};

// The last conv layer before `i` that the arch runs (-1: none, the input images).
__device__ int last_active(const int32_t* a, int i) {
  for (int j = i - 1; j >= 0; --j) {
    if (a[2 * j] > 0) return j;
  }
  return -1;
}

__device__ Geo resolve(const CnnNet& net, const Layer& L) {
  Geo g{};
  const int len = 2 * net.n_layers + 1;
  const int32_t* a;
  if (L.mode == kConv) {
    const int row = blockIdx.x;
    a = L.archs + static_cast<int64_t>(L.row_group[row]) * len;
    const int i = L.index;
    const ConvDesc& c = net.conv[i];
    if (a[2 * i] == 0) {
      g.skip = true;
      return g;
    }
    const int src = last_active(a, i);
    g.pin = src < 0 ? L.input : L.out[src];
    g.pout = L.out[i];
    g.in = g.pin.data + row * g.pin.img;
    g.scale = i == 0 ? net.obs_scale : 1.f;
    g.m = static_cast<int64_t>(c.oh) * c.ow;
    g.out_w = c.ow;
    g.cin = src < 0 ? c.q * c.q * net.c_in : a[2 * src];
    g.cin_max = i == 0 ? c.q * c.q * net.c_in : c.cin_max;
    g.co = a[2 * i];
    g.ks = a[2 * i + 1] / c.q;
    g.stride = c.stride / c.q;
    g.kmax = c.kmax / c.q;
    g.w = c.w;
    g.bias = c.b;
    g.wrows = c.rows;
    const int conv_pad = c.same ? g.ks / 2 : 0;
    g.shift = g.pin.pad - conv_pad;
    g.crop = (g.kmax - g.ks) / 2;
    return g;
  }
  const int32_t* ch = L.chunks + 3 * static_cast<int64_t>(blockIdx.x);
  a = L.archs + static_cast<int64_t>(ch[0]) * len;
  g.row0 = ch[1];
  g.rows = ch[2];
  g.m = g.rows;
  g.scale = 1.f;
  if (L.mode == kFc) {
    const int src = last_active(a, net.n_layers);
    g.pin = L.out[src];
    g.in = g.pin.data + static_cast<int64_t>(g.row0) * g.pin.img;
    g.cin = a[2 * src];
    g.co = a[len - 1];
    g.ks = net.area();  // taps
    g.w = net.fc_w;
    g.bias = net.fc_b;
    g.wrows = net.fc_rows;
    g.cin_max = net.c_last_max;
  } else {
    g.in = L.h1 + static_cast<int64_t>(g.row0) * net.ldf;
    g.cin = a[len - 1];
    g.co = net.n_actions + 1;
    g.ks = 1;
    g.w = net.head_w;
    g.bias = net.head_b;
    g.ldb = net.ldh;
  }
  return g;
}

// A(m, k) of the tile space, k = tap * cin + ci.
__device__ float load_a(const CnnNet& net, const Layer& L, const Geo& g, int64_t m, int k) {
  const int t = k / g.cin, ci = k % g.cin;
  if (L.mode == kConv) {
    const int oy = static_cast<int>(m / g.out_w), ox = static_cast<int>(m % g.out_w);
    const int kh = t / g.ks, kw = t % g.ks;
    const int iy = oy * g.stride + g.shift + kh, ix = ox * g.stride + g.shift + kw;
    return g.in[(static_cast<int64_t>(iy) * (g.pin.w + 2 * g.pin.pad) + ix) * g.pin.ld + ci];
  }
  if (L.mode == kFc) {
    const int y = t / net.out_w(), x = t % net.out_w();
    const int wp = g.pin.w + 2 * g.pin.pad;
    return g.in[m * g.pin.img +
                (static_cast<int64_t>(y + g.pin.pad) * wp + x + g.pin.pad) * g.pin.ld + ci];
  }
  return g.in[m * net.ldf + k];
}

// B(k, n): the packed weight^T row of (tap, ci), column n (panel-packed for conv and FC).
__device__ float load_b(const Layer& L, const Geo& g, int k, int n) {
  if (L.mode == kHeads) return g.w[static_cast<int64_t>(k) * g.ldb + n];
  const int t = k / g.cin, ci = k % g.cin;
  int64_t row;
  if (L.mode == kConv) {
    const int kh = t / g.ks, kw = t % g.ks;
    row = (static_cast<int64_t>(kh + g.crop) * g.kmax + kw + g.crop) * g.cin_max + ci;
  } else {
    row = static_cast<int64_t>(t) * g.cin_max + ci;
  }
  return g.w[panel_index(g.wrows, row, n)];
}

__global__ void __launch_bounds__(256) layer_kernel(CnnNet net, Layer L) {
  __shared__ float As[TK][TM + 1];
  __shared__ float Bs[TK][TN + 1];
  const Geo g = resolve(net, L);
  if (g.skip) return;
  const int n0 = blockIdx.z * TN;
  if (n0 >= g.co) return;
  // taps x channels; FC: ks holds the tap count (positions), so ks * ks is never formed there
  const int kt = L.mode == kFc ? g.ks * g.cin : g.ks * g.ks * g.cin;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  // row tiles strided by the grid: gridDim.y is capped at kMaxGridY (an image of more than
  // kMaxGridY * TM output positions); the bounds are the block's own, so all threads loop alike
  for (int64_t m0 = static_cast<int64_t>(blockIdx.y) * TM; m0 < g.m;
       m0 += static_cast<int64_t>(gridDim.y) * TM) {
    float acc[2][2] = {{0.f, 0.f}, {0.f, 0.f}};
    for (int k0 = 0; k0 < kt; k0 += TK) {
      for (int e = threadIdx.x; e < TM * TK; e += blockDim.x) {
        const int mm = e / TK, kk = e % TK;
        const int64_t m = m0 + mm;
        const int k = k0 + kk;
        As[kk][mm] = (m < g.m && k < kt) ? load_a(net, L, g, m, k) : 0.f;
      }
      for (int e = threadIdx.x; e < TK * TN; e += blockDim.x) {
        const int kk = e / TN, nn = e % TN;
        const int k = k0 + kk, n = n0 + nn;
        Bs[kk][nn] = (k < kt && n < g.co) ? load_b(L, g, k, n) : 0.f;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < TK; ++kk) {
        const float a0 = As[kk][2 * ty], a1 = As[kk][2 * ty + 1];
        const float b0 = Bs[kk][2 * tx], b1 = Bs[kk][2 * tx + 1];
        acc[0][0] += a0 * b0;
        acc[0][1] += a0 * b1;
        acc[1][0] += a1 * b0;
        acc[1][1] += a1 * b1;
      }
      __syncthreads();
    }
    for (int i = 0; i < 2; ++i) {
      const int64_t m = m0 + 2 * ty + i;
      if (m >= g.m) continue;
      for (int j = 0; j < 2; ++j) {
        const int n = n0 + 2 * tx + j;
        if (n >= g.co) continue;
        float v = acc[i][j] * g.scale + g.bias[n];
        if (L.mode == kConv) {
          const int row = blockIdx.x;
          const int oy = static_cast<int>(m / g.out_w), ox = static_cast<int>(m % g.out_w);
          const PlaneDesc& o = g.pout;
          const int wp = o.w + 2 * o.pad;
          o.data[row * o.img + (static_cast<int64_t>(oy + o.pad) * wp + ox + o.pad) * o.ld + n] =
              relu(v);
        } else if (L.mode == kFc) {
          L.h1[(g.row0 + m) * net.ldf + n] = relu(v);
        } else if (n < net.n_actions) {
          L.logits[(g.row0 + m) * net.n_actions + n] = v;
        } else {
          L.values[g.row0 + m] = v;
        }
      }
    }
  }
}

// The images as float NHWC, space-to-depth(q) (q = 1: a plain transpose), with a zero border of
// s.pad (set by a memset before).
__global__ void s2d_kernel(CnnNet net, const uint8_t* __restrict__ obs, PlaneDesc s, int q,
                           int64_t n_rows) {
  const int qq = q * q * net.c_in;
  const int64_t per_img = static_cast<int64_t>(s.h) * s.w * qq;
  const int64_t total = n_rows * per_img;
  const int64_t frame = static_cast<int64_t>(net.c_in) * net.h_in * net.w_in;
  const int wp = s.w + 2 * s.pad;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = e / per_img;
    int64_t r = e % per_img;
    const int qi = static_cast<int>(r % qq);
    r /= qq;
    const int X = static_cast<int>(r % s.w), Y = static_cast<int>(r / s.w);
    const int ci = qi / (q * q), dy = (qi / q) % q, dx = qi % q;
    s.data[row * s.img + (static_cast<int64_t>(Y + s.pad) * wp + X + s.pad) * s.ld + qi] =
        static_cast<float>(
            obs[row * frame + (static_cast<int64_t>(ci) * net.h_in + q * Y + dy) * net.w_in +
                q * X + dx]);
  }
}

struct CnnPlanes {
  PlaneDesc input;
  PlaneDesc out[kMaxConvLayers];
};

CnnPlanes cnn_planes(const CnnNet& net) {
  auto plane = [](int h, int w, int pad_, int ld) {
    PlaneDesc p{};
    p.h = h;
    p.w = w;
    p.pad = pad_;
    p.ld = ld;
    p.img = static_cast<int64_t>(h + 2 * pad_) * (w + 2 * pad_) * ld;
    return p;
  };
  CnnPlanes c{};
  const ConvDesc& c0 = net.conv[0];
  const int q = c0.q;
  c.input = plane(q > 1 ? c0.oh + c0.kmax / q - 1 : net.h_in,
                  q > 1 ? c0.ow + c0.kmax / q - 1 : net.w_in, c0.pad(), q * q * net.c_in);
  for (int i = 0; i < net.n_layers; ++i) {
    // Any later same-padded layer may read this plane (the ones between may be skipped).
    int pad = 0;
    for (int j = i + 1; j < net.n_layers; ++j) pad = std::max(pad, net.conv[j].pad());
    const int ld =
        i == net.n_layers - 1 ? std::max(net.conv[i].ld, net.c_last_max) : net.conv[i].ld;
    c.out[i] = plane(net.conv[i].oh, net.conv[i].ow, pad, ld);
  }
  return c;
}

}  // namespace
}  // namespace subnet_eval
}  // namespace a2d
