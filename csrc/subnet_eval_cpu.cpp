// CPU forward passes of the batched subnet evaluation (see subnet_eval.h for the layout).
//
// Work is split into (group, chunk of rows) items run by OpenMP with dynamic scheduling; each
// item runs its rows through the whole subnet with thread-local scratch buffers.
// The micro-kernel and the layers built on it are in subnet_gemm_cpu.cpp; parsing and validating
// the meta vectors and arch tables in subnet_meta.cpp.
#include <algorithm>
#include <cstring>
#include <vector>

#include "subnet_eval.h"
#include "subnet_gemm_cpu.h"

#ifdef A2D_WITH_OPENMP
#include <omp.h>
#endif

namespace a2d {
namespace subnet_eval {

using namespace cpu;  // NOLINT(google-build-using-namespace): subnet_gemm_cpu.h's layers

namespace {

constexpr int kMlpChunk = 32;             // rows per MLP work item
constexpr int kCnnChunk = 8;              // images per CNN work item
constexpr int64_t kFcPanelsPerBlock = 4;  // FC output panels (of 16) per work item

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

// Width of the map the FC layer sees: the last active conv layer's.
inline int last_width(const CnnNet& net, const int32_t* a) {
  for (int i = net.n_layers - 1; i >= 0; --i) {
    if (a[2 * i] > 0) return a[2 * i];
  }
  return net.c_in;
}

}  // namespace

const char* cpu_isa() { return kernel().name; }

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
