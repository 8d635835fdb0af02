// Batched subnet evaluation: one call computes logits and values for a batch whose consecutive
// row groups belong to different subnets of one weight-sharing supernet. Framework-free.
//
// Every layer is one "tap convolution" computed as an implicit GEMM with no im2col buffer:
//   out[row][co] = act(scale * sum_t sum_{ci < cin} in[row_base + atap[t] + ci] * wT[btap[t] +
//                      ci * ldb + co] + bias[co])
// over channels-last (NHWC) activations. A linear layer is the one-tap case; the FC layer after
// the conv trunk has one tap per spatial position; conv1 (8x8, stride 4) is a 2x2 stride-1 conv
// over the space-to-depth(4) image, which makes its taps 64 contiguous channels long.
//
// Weights are packed once by a2d_evo/ops/subnet_eval.py into one float32 buffer, transposed to
// (input rows, output columns) and zero-padded: MLP layers and heads row-major with a leading
// dimension rounded up to 8, conv and FC layers in 16-column panels (see kPanel). A subnet's
// slice (first `cin` input channels of every tap, first `co` outputs) is addressed with pointers
// and strides, never copied. Row groups only touch their subnet's active channels and layers;
// tiles round the output channels up to a multiple of 8 (the vector width) at most.
//
// The packed layout is described by an int64 `meta` vector whose offsets point into the float
// buffer; `parse_*_meta` validates every offset and size against the buffer's length before any
// kernel runs. Its fields are listed once, by name, in A2D_SE_{MLP,CNN}_META below: the k* indices
// and the names `meta_fields()` exports to Python (a2d_evo._C.subnet_eval_meta_fields, from which
// a2d_evo/ops/subnet_eval.py builds `meta`) both come from those lists.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#ifdef __CUDACC__
#define A2D_SE_HD __host__ __device__ inline
#else
#define A2D_SE_HD inline
#endif

namespace a2d {
namespace subnet_eval {

constexpr int kMaxMlpLayers = 16;
constexpr int kMaxExtra = 8;
constexpr int kMaxKernelSize = 15;
// Nature-CNN trunk: (kernel, stride) of conv1-3, valid padding. conv1 must be kernel = 2*stride.
A2D_SE_HD constexpr int conv_k(int i) { return i == 0 ? 8 : (i == 1 ? 4 : 3); }
A2D_SE_HD constexpr int conv_s(int i) { return i == 0 ? 4 : (i == 1 ? 2 : 1); }

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// ---------------------------------------------------------------- MLP (tanh hidden layers)
// meta: one int64 per X(index, name) entry, in order, then the arrays of kMlpMetaArrays.
#define A2D_SE_MLP_META(X)     \
  X(kMlpKind, "kind")          \
  X(kMlpObsDim, "obs_dim")     \
  X(kMlpDepthMax, "depth_max") \
  X(kMlpWidthMax, "width_max") \
  X(kMlpLdw, "ldw")            \
  X(kMlpActions, "n_actions")  \
  X(kMlpLdh, "ldh")            \
  X(kMlpHeadW, "off_head_w")   \
  X(kMlpHeadB, "off_head_b")
#define A2D_SE_META_INDEX(index, name) index,
enum MlpMeta : int {
  A2D_SE_MLP_META(A2D_SE_META_INDEX)  //
  kMlpLayers                          // then off_w[depth_max], off_b[depth_max]
};
// "name[count]": meta[count] offsets, one per layer.
constexpr const char* kMlpMetaArrays[] = {"off_w[depth_max]", "off_b[depth_max]"};
constexpr int64_t kMlpKindCode = 0;

struct MlpNet {
  int obs_dim, depth_max, width_max, ldw, n_actions, ldh;
  const float* w[kMaxMlpLayers];  // layer l: (in_l, ldw) = weight^T; in_0 = obs_dim
  const float* b[kMaxMlpLayers];  // (ldw)
  const float* head_w;            // (width_max, ldh) = [policy; value]^T
  const float* head_b;            // (ldh)
};

// Arch rows (int32, one per group): [depth, w_1 .. w_depth_max] (unused widths 0).
inline int mlp_arch_len(const MlpNet& n) { return 1 + n.depth_max; }

// ---------------------------------------------------------------- CNN (ReLU), uint8 frames
// meta: one int64 per X(index, name) entry, in order, then the arrays of kCnnMetaArrays.
// conv i's weight and bias offsets are kCnnConv1W + 2 * i and kCnnConv1B + 2 * i.
#define A2D_SE_CNN_META(X)       \
  X(kCnnKind, "kind")            \
  X(kCnnCin, "c_in")             \
  X(kCnnH, "h_in")               \
  X(kCnnW, "w_in")               \
  X(kCnnC1, "c1_max")            \
  X(kCnnC2, "c2_max")            \
  X(kCnnC3, "c3_max")            \
  X(kCnnExtraMax, "n_extra_max") \
  X(kCnnExtraW, "extra_w_max")   \
  X(kCnnExtraK, "extra_k_max")   \
  X(kCnnFc, "fc_max")            \
  X(kCnnLdf, "ldf")              \
  X(kCnnActions, "n_actions")    \
  X(kCnnLdh, "ldh")              \
  X(kCnnFcW, "off_fc_w")         \
  X(kCnnFcB, "off_fc_b")         \
  X(kCnnHeadW, "off_head_w")     \
  X(kCnnHeadB, "off_head_b")     \
  X(kCnnConv1W, "off_conv1_w")   \
  X(kCnnConv1B, "off_conv1_b")   \
  X(kCnnConv2W, "off_conv2_w")   \
  X(kCnnConv2B, "off_conv2_b")   \
  X(kCnnConv3W, "off_conv3_w")   \
  X(kCnnConv3B, "off_conv3_b")
enum CnnMeta : int {
  A2D_SE_CNN_META(A2D_SE_META_INDEX)  //
  kCnnExtra                           // then off_extra_w[n_extra_max], off_extra_b[n_extra_max]
};
#undef A2D_SE_META_INDEX
constexpr const char* kCnnMetaArrays[] = {"off_extra_w[n_extra_max]", "off_extra_b[n_extra_max]"};
constexpr int64_t kCnnKindCode = 1;

// The ordered meta field names of `kind` ("mlp" or "cnn"): the X entries' names, then the
// "name[count]" arrays. Throws std::invalid_argument for another kind.
std::vector<std::string> meta_fields(const std::string& kind);
// The value of the "kind" field of `kind`'s meta vector.
int64_t meta_kind_code(const std::string& kind);

// Conv and FC weights are "panel-packed": weight^T (R rows, C columns) stored as ceil(C/16)
// panels of R x 16 floats, panel p holding columns [16p, 16p + 16), zero-padded; element (r, c)
// is at (c / 16) * R * 16 + r * 16 + c % 16. A subnet's slice of 16 output channels is then one
// contiguous run per tap, streamed in order by the micro-kernel.
constexpr int kPanel = 16;
A2D_SE_HD int64_t panel_index(int64_t rows, int64_t r, int64_t c) {
  return (c / kPanel) * rows * kPanel + r * kPanel + c % kPanel;
}

struct CnnNet {
  int c_in, h_in, w_in;
  int oh[3], ow[3];  // spatial size after conv1..3
  int cmax[3];       // conv1..3 max widths
  int ld[3];         // padded output columns of conv1..3 (round_up(cmax, 16)): bias length
  int64_t conv_rows[3];
  int n_extra_max, extra_w_max, extra_k_max, ld_extra;
  int64_t extra_rows[kMaxExtra];
  int fc_max, ldf, c_last_max, n_actions, ldh;
  int64_t fc_rows;
  // Panel-packed. conv1: rows (ty, tx, ci, dy, dx): a 2x2 conv over the space-to-depth(4) image;
  // conv2/3: rows (kh, kw, ci) with ci < cmax of the layer below.
  const float* conv_w[3];
  const float* conv_b[3];
  // extra j: rows (kh, kw, ci) over kmax x kmax taps, ci < cin_max_j (c3max for j = 0, else
  // extra_w_max); smaller odd kernels use the centre taps.
  const float* extra_w[kMaxExtra];
  const float* extra_b[kMaxExtra];
  const float* fc_w;  // rows (pos, c), c < c_last_max: fc.weight[f, c * area + pos]
  const float* fc_b;
  const float* head_w;  // (fc_max, ldh) = [policy; value]^T, plain row-major
  const float* head_b;
  A2D_SE_HD int area() const { return oh[2] * ow[2]; }
};

// Arch rows (int32): [c1, c2, c3, n_extra, (width, kernel) * n_extra_max, fc].
inline int cnn_arch_len(const CnnNet& n) { return 5 + 2 * n.n_extra_max; }

// Parse and validate a meta vector against a float buffer of `n_params` elements at `base`
// (a host or device address: it is only offset, never read). Throws std::invalid_argument.
MlpNet parse_mlp_meta(const int64_t* meta, int64_t meta_len, const float* base, int64_t n_params);
CnnNet parse_cnn_meta(const int64_t* meta, int64_t meta_len, const float* base, int64_t n_params);

// Validate the arch table (n_groups x arch_len) and row offsets (n_groups + 1, from 0 to n_rows,
// non-decreasing). Throws std::invalid_argument naming the bad group.
void check_mlp_archs(const MlpNet& net, const int32_t* archs, int64_t n_groups, const int64_t* rows,
                     int64_t n_rows);
void check_cnn_archs(const CnnNet& net, const int32_t* archs, int64_t n_groups, const int64_t* rows,
                     int64_t n_rows);

// CPU forward (OpenMP over (group, row chunk) work items). obs: (n_rows, obs_dim) float32 or
// (n_rows, c_in, h_in, w_in) uint8; logits: (n_rows, n_actions); values: (n_rows).
void mlp_forward_cpu(const MlpNet& net, const float* obs, int64_t n_rows, const int32_t* archs,
                     const int64_t* rows, int64_t n_groups, float* logits, float* values);
void cnn_forward_cpu(const CnnNet& net, const uint8_t* obs, int64_t n_rows, const int32_t* archs,
                     const int64_t* rows, int64_t n_groups, float* logits, float* values);

// Which CPU micro-kernel runs ("avx2-fma" or "generic").
const char* cpu_isa();

// CUDA forward on device pointers (given as integers), enqueued on `stream`. The arch table and
// row offsets are host arrays (validated by the caller); they are staged through `workspace`,
// a device buffer of at least *_cuda_workspace_bytes(...) bytes.
int64_t mlp_cuda_workspace_bytes(const MlpNet& net, int64_t n_rows, int64_t n_groups);
int64_t cnn_cuda_workspace_bytes(const CnnNet& net, int64_t n_rows, int64_t n_groups);
void mlp_forward_cuda(const MlpNet& net, uintptr_t obs, int64_t n_rows, const int32_t* archs,
                      const int64_t* rows, int64_t n_groups, uintptr_t logits, uintptr_t values,
                      uintptr_t workspace, int64_t workspace_bytes, uintptr_t stream);
void cnn_forward_cuda(const CnnNet& net, uintptr_t obs, int64_t n_rows, const int32_t* archs,
                      const int64_t* rows, int64_t n_groups, uintptr_t logits, uintptr_t values,
                      uintptr_t workspace, int64_t workspace_bytes, uintptr_t stream);

}  // namespace subnet_eval
}  // namespace a2d
