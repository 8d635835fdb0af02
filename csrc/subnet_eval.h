// Batched subnet evaluation: one call computes logits and values for a batch whose consecutive
// row groups belong to different subnets of one weight-sharing supernet. Framework-free.
//
// Every layer is one "tap convolution" computed as an implicit GEMM with no im2col buffer:
//   out[row][co] = act(scale * sum_t sum_{ci < cin} in[row_base + atap[t] + ci] * wT[btap[t] +
//                      ci * ldb + co] + bias[co])
// over channels-last (NHWC) activations. A linear layer is the one-tap case; the FC layer after
// the conv trunk has one tap per spatial position. The conv layers are the ones a config declares
// (a2d_evo space.conv: kernel, stride, padding per layer; elastic kernels and optional layers);
// a valid-padded first layer whose kernel is a multiple q of its stride (Nature's 8x8 stride 4)
// runs as a (k/q)x(k/q) stride-1 conv over the space-to-depth(q) image, whose taps are q*q*c_in
// contiguous channels long.
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
#include <limits>
#include <string>
#include <vector>

#ifdef __CUDACC__
#define A2D_SE_HD __host__ __device__ inline
#else
#define A2D_SE_HD inline
#endif

namespace a2d {
namespace subnet_eval {

// The packed layout's limits, exported as _C.subnet_eval_limits(): Python reads them there and
// sends a supernet beyond them to the reference path.
constexpr int kMaxMlpLayers = 16;
constexpr int kMaxConvLayers = 16;
constexpr int kMaxKernelSize = 15;
constexpr int kMaxStride = 8;
// Sizes the meta parser accepts: MLP dims (obs, padded widths and heads), each well within an
// int (products of them are taken in int64); CNN channels, map sides, padded FC width and heads;
// a CNN image plane; the CNN FC input (map area times the last conv's widest), an int32 row.
constexpr int64_t kMaxMlpDim = std::numeric_limits<int>::max() / 64;
constexpr int64_t kMaxCnnDim = int64_t{1} << 16;
constexpr int64_t kMaxCnnPlane = int64_t{1} << 24;
constexpr int64_t kMaxCnnFcRows = std::numeric_limits<int32_t>::max();
// The CUDA MLP kernel keeps 2 x 16 rows of activations in 48 KiB of shared memory: the input
// and the padded hidden width must each be at most this many floats (the CPU kernel has no
// such limit; Python sends a wider supernet on a GPU to the reference path).
constexpr int kCudaMlpMaxWidth = 384;

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

// ---------------------------------------------------------------- CNN (ReLU), uint8 images
// meta: one int64 per X(index, name) entry, in order, then the arrays of kCnnMetaArrays (one
// entry per declared conv layer each). obs_scale_bits holds the float32 bit pattern of the scale
// the observations are multiplied by (1/255 for ALE frames, 1 for 0/1 planes).
#define A2D_SE_CNN_META(X)               \
  X(kCnnKind, "kind")                    \
  X(kCnnCin, "c_in")                     \
  X(kCnnH, "h_in")                       \
  X(kCnnW, "w_in")                       \
  X(kCnnLayers, "n_layers")              \
  X(kCnnScaleBits, "obs_scale_f32_bits") \
  X(kCnnFc, "fc_max")                    \
  X(kCnnCLast, "c_last_max")             \
  X(kCnnLdf, "ldf")                      \
  X(kCnnActions, "n_actions")            \
  X(kCnnLdh, "ldh")                      \
  X(kCnnFcW, "off_fc_w")                 \
  X(kCnnFcB, "off_fc_b")                 \
  X(kCnnHeadW, "off_head_w")             \
  X(kCnnHeadB, "off_head_b")
enum CnnMeta : int {
  A2D_SE_CNN_META(A2D_SE_META_INDEX)  //
  kCnnArrays                          // then the per-layer arrays below, n_layers entries each
};
#undef A2D_SE_META_INDEX
// Per layer: widest output, widest input (the widest layer that may feed it), largest kernel,
// stride, same padding (0/1), elastic kernel (0/1), optional (0/1), weight and bias offsets.
enum CnnArray : int {
  kArrWidth,
  kArrCin,
  kArrKernel,
  kArrStride,
  kArrSame,
  kArrElastic,
  kArrOptional,
  kArrOffW,
  kArrOffB,
  kCnnNumArrays
};
constexpr const char* kCnnMetaArrays[] = {
    "width_max[n_layers]", "cin_max[n_layers]", "kernel_max[n_layers]",
    "stride[n_layers]",    "same[n_layers]",    "elastic[n_layers]",
    "optional[n_layers]",  "off_w[n_layers]",   "off_b[n_layers]"};
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

// One declared conv layer. Weights panel-packed with rows (ty, tx, ci, dy, dx) over
// (kmax/q)^2 taps of q*q*cin_max channels (q = 1: rows (kh, kw, ci), ci < cin_max); a smaller
// odd kernel of an elastic layer uses the centre taps.
struct ConvDesc {
  int cmax, cin_max, kmax, stride, same, elastic, optional;
  int q;       // space-to-depth factor: the stride for a valid first layer with kmax % stride == 0
  int ld;      // round_up(cmax, 16): bias length
  int ih, iw;  // input map size
  int oh, ow;  // output map size (an optional layer keeps its input's)
  int64_t rows;
  const float* w;
  const float* b;
  A2D_SE_HD int pad() const { return same ? kmax / 2 : 0; }
};

struct CnnNet {
  int c_in, h_in, w_in, n_layers;
  float obs_scale;
  ConvDesc conv[kMaxConvLayers];
  int fc_max, ldf, c_last_max, n_actions, ldh;
  int64_t fc_rows;
  const float* fc_w;  // rows (pos, c), c < c_last_max: fc.weight[f, c * area + pos]
  const float* fc_b;
  const float* head_w;  // (fc_max, ldh) = [policy; value]^T, plain row-major
  const float* head_b;
  A2D_SE_HD int area() const { return conv[n_layers - 1].oh * conv[n_layers - 1].ow; }
  A2D_SE_HD int out_w() const { return conv[n_layers - 1].ow; }
};

// Arch rows (int32): [width_0, kernel_0, ..., width_{n-1}, kernel_{n-1}, fc]; width 0 skips an
// optional layer (its kernel is then ignored).
inline int cnn_arch_len(const CnnNet& n) { return 2 * n.n_layers + 1; }

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
