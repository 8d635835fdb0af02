// C entry points over the emulated CUDA kernels (cuda_shim.h), for ctypes: the same calls the
// pybind bindings make, with host pointers where the GPU would have device ones.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "preprocess.h"
#include "subnet_eval.h"

namespace se = a2d::subnet_eval;
namespace pp = a2d::preprocess;

static std::string g_err;

extern "C" const char* emu_error() { return g_err.c_str(); }

// One population forward through the emulated kernel of either family: parse, check, the
// workspace the GPU path would allocate, the launch.
template <class Net, class Parse, class Check, class Need, class Forward>
void forward(Parse parse, Check check, Need need, Forward run, uintptr_t obs, int64_t n_rows,
             const float* base, int64_t n_params, const int64_t* meta, int64_t meta_len,
             const int32_t* archs, int64_t n_groups, const int64_t* rows, uintptr_t logits,
             uintptr_t values) {
  const Net net = parse(meta, meta_len, base, n_params);
  check(net, archs, n_groups, rows, n_rows);
  const int64_t bytes = need(net, n_rows, n_groups);
  std::vector<char> ws(bytes > 0 ? bytes : 1);
  run(net, obs, n_rows, archs, rows, n_groups, logits, values,
      reinterpret_cast<uintptr_t>(ws.data()), bytes, 0);
}

extern "C" int emu_subnet(int cnn, uintptr_t obs, int64_t n_rows, uintptr_t params,
                          int64_t n_params, const int64_t* meta, int64_t meta_len,
                          const int32_t* archs, int64_t n_groups, const int64_t* rows,
                          uintptr_t logits, uintptr_t values) {
  try {
    const float* base = reinterpret_cast<const float*>(params);
    if (cnn) {
      forward<se::CnnNet>(se::parse_cnn_meta, se::check_cnn_archs, se::cnn_cuda_workspace_bytes,
                          se::cnn_forward_cuda, obs, n_rows, base, n_params, meta, meta_len, archs,
                          n_groups, rows, logits, values);
    } else {
      forward<se::MlpNet>(se::parse_mlp_meta, se::check_mlp_archs, se::mlp_cuda_workspace_bytes,
                          se::mlp_forward_cuda, obs, n_rows, base, n_params, meta, meta_len, archs,
                          n_groups, rows, logits, values);
    }
    return 0;
  } catch (const std::exception& e) {
    g_err = e.what();
    return 1;
  }
}

extern "C" int emu_preprocess(uintptr_t raw, uintptr_t out, int64_t stride, int64_t n, int h, int w,
                              int c, int size) {
  try {
    pp::preprocess_cuda(raw, out, stride, n, h, w, c, size, 0);
    return 0;
  } catch (const std::exception& e) {
    g_err = e.what();
    return 1;
  }
}

extern "C" int emu_push(uintptr_t raw, uintptr_t stack, uintptr_t mask, int64_t n, int k, int h,
                        int w, int c, int size) {
  try {
    pp::push_frames_cuda(raw, stack, mask, n, k, h, w, c, size, 0);
    return 0;
  } catch (const std::exception& e) {
    g_err = e.what();
    return 1;
  }
}
