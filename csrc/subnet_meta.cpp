// Parsing and validating the packed networks' meta vectors and the arch tables (declared in
// subnet_eval.h), shared by the CPU and CUDA forward passes.
#include <cmath>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "subnet_eval.h"

namespace a2d {
namespace subnet_eval {

namespace {

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

}  // namespace subnet_eval
}  // namespace a2d
