// Python bindings of the subnet_eval kernel (csrc/subnet_eval.h): thin wrappers that check
// buffers, release the GIL and call the framework-free core. Registered by bindings.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "subnet_eval.h"

namespace py = pybind11;

namespace {

// The Python layer (a2d_evo/ops/subnet_eval.py) builds these arrays and raises KernelInputError;
// everything memory safety depends on is checked again here (std::invalid_argument, ValueError).
template <typename T>
const T* se_buffer(const py::array& a, const char* name, int ndim) {
  if (!py::isinstance<py::array_t<T>>(a)) {
    throw std::invalid_argument(std::string("subnet_eval: ") + name + " has the wrong dtype");
  }
  if (ndim >= 0 && a.ndim() != ndim) {
    throw std::invalid_argument(std::string("subnet_eval: ") + name + " must have " +
                                std::to_string(ndim) + " dimensions");
  }
  if (!(a.flags() & py::array::c_style)) {
    throw std::invalid_argument(std::string("subnet_eval: ") + name + " must be C-contiguous");
  }
  // C-contiguous strides are multiples of the item size: an aligned start aligns every item
  // (a misaligned float or int64 read is undefined behaviour)
  if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0) {
    throw std::invalid_argument(std::string("subnet_eval: ") + name + " must be aligned");
  }
  return static_cast<const T*>(a.data());
}

struct SeTables {
  const int32_t* archs;
  const int64_t* rows;
  int64_t n_groups;
};

SeTables se_tables(const py::array& archs, const py::array& rows, int64_t arch_len) {
  const auto* a = se_buffer<int32_t>(archs, "archs", 2);
  const auto* r = se_buffer<int64_t>(rows, "rows", 1);
  const int64_t g = archs.shape(0);
  if (archs.shape(1) != arch_len) {
    throw std::invalid_argument("subnet_eval: archs has " + std::to_string(archs.shape(1)) +
                                " columns, the supernet needs " + std::to_string(arch_len));
  }
  if (rows.shape(0) != g + 1) {
    throw std::invalid_argument("subnet_eval: rows must have n_groups + 1 entries");
  }
  return {a, r, g};
}

py::tuple se_outputs(int64_t n, int n_actions, float** logits, float** values) {
  py::array_t<float> lg({n, static_cast<int64_t>(n_actions)});
  py::array_t<float> vl({n});
  *logits = lg.mutable_data();
  *values = vl.mutable_data();
  return py::make_tuple(lg, vl);
}

py::tuple subnet_eval_mlp_np(const py::array& obs, const py::array& params, const py::array& meta,
                             const py::array& archs, const py::array& rows) {
  namespace se = a2d::subnet_eval;
  const auto* p = se_buffer<float>(params, "params", 1);
  const auto* m = se_buffer<int64_t>(meta, "meta", 1);
  const se::MlpNet net = se::parse_mlp_meta(m, meta.shape(0), p, params.shape(0));
  const auto* x = se_buffer<float>(obs, "obs (float32)", 2);
  if (obs.shape(1) != net.obs_dim) {
    throw std::invalid_argument("subnet_eval: obs has " + std::to_string(obs.shape(1)) +
                                " features, the supernet takes " + std::to_string(net.obs_dim));
  }
  const SeTables t = se_tables(archs, rows, se::mlp_arch_len(net));
  const int64_t n = obs.shape(0);
  se::check_mlp_archs(net, t.archs, t.n_groups, t.rows, n);
  float *lg = nullptr, *vl = nullptr;
  py::tuple out = se_outputs(n, net.n_actions, &lg, &vl);
  py::gil_scoped_release release;
  se::mlp_forward_cpu(net, x, n, t.archs, t.rows, t.n_groups, lg, vl);
  return out;
}

py::tuple subnet_eval_cnn_np(const py::array& obs, const py::array& params, const py::array& meta,
                             const py::array& archs, const py::array& rows) {
  namespace se = a2d::subnet_eval;
  const auto* p = se_buffer<float>(params, "params", 1);
  const auto* m = se_buffer<int64_t>(meta, "meta", 1);
  const se::CnnNet net = se::parse_cnn_meta(m, meta.shape(0), p, params.shape(0));
  const auto* x = se_buffer<uint8_t>(obs, "obs (uint8)", 4);
  if (obs.shape(1) != net.c_in || obs.shape(2) != net.h_in || obs.shape(3) != net.w_in) {
    throw std::invalid_argument(
        "subnet_eval: obs frames of shape (" + std::to_string(obs.shape(1)) + ", " +
        std::to_string(obs.shape(2)) + ", " + std::to_string(obs.shape(3)) +
        ") do not match the supernet's (" + std::to_string(net.c_in) + ", " +
        std::to_string(net.h_in) + ", " + std::to_string(net.w_in) + ")");
  }
  const SeTables t = se_tables(archs, rows, se::cnn_arch_len(net));
  const int64_t n = obs.shape(0);
  se::check_cnn_archs(net, t.archs, t.n_groups, t.rows, n);
  float *lg = nullptr, *vl = nullptr;
  py::tuple out = se_outputs(n, net.n_actions, &lg, &vl);
  py::gil_scoped_release release;
  se::cnn_forward_cpu(net, x, n, t.archs, t.rows, t.n_groups, lg, vl);
  return out;
}

#ifdef A2D_WITH_CUDA
// Device pointers as integers; `meta`, `archs` and `rows` are host arrays.
int64_t subnet_eval_cuda_workspace(const py::array& meta, int64_t n_rows, int64_t n_groups) {
  namespace se = a2d::subnet_eval;
  const auto* m = se_buffer<int64_t>(meta, "meta", 1);
  const int64_t big = INT64_MAX / 4;
  if (meta.shape(0) > 0 && m[se::kMlpKind] == se::kMlpKindCode) {
    return se::mlp_cuda_workspace_bytes(se::parse_mlp_meta(m, meta.shape(0), nullptr, big), n_rows,
                                        n_groups);
  }
  return se::cnn_cuda_workspace_bytes(se::parse_cnn_meta(m, meta.shape(0), nullptr, big), n_rows,
                                      n_groups);
}

void subnet_eval_cuda_ptr(bool cnn, uintptr_t obs, int64_t n_rows, uintptr_t params,
                          int64_t n_params, const py::array& meta, const py::array& archs,
                          const py::array& rows, uintptr_t logits, uintptr_t values,
                          uintptr_t workspace, int64_t workspace_bytes, uintptr_t stream) {
  namespace se = a2d::subnet_eval;
  const auto* m = se_buffer<int64_t>(meta, "meta", 1);
  const auto* base = reinterpret_cast<const float*>(params);
  if (cnn) {
    const se::CnnNet net = se::parse_cnn_meta(m, meta.shape(0), base, n_params);
    const SeTables t = se_tables(archs, rows, se::cnn_arch_len(net));
    se::check_cnn_archs(net, t.archs, t.n_groups, t.rows, n_rows);
    if (workspace_bytes < se::cnn_cuda_workspace_bytes(net, n_rows, t.n_groups)) {
      throw std::invalid_argument("subnet_eval: CUDA workspace too small");
    }
    py::gil_scoped_release release;
    se::cnn_forward_cuda(net, obs, n_rows, t.archs, t.rows, t.n_groups, logits, values, workspace,
                         workspace_bytes, stream);
  } else {
    const se::MlpNet net = se::parse_mlp_meta(m, meta.shape(0), base, n_params);
    const SeTables t = se_tables(archs, rows, se::mlp_arch_len(net));
    se::check_mlp_archs(net, t.archs, t.n_groups, t.rows, n_rows);
    if (workspace_bytes < se::mlp_cuda_workspace_bytes(net, n_rows, t.n_groups)) {
      throw std::invalid_argument("subnet_eval: CUDA workspace too small");
    }
    py::gil_scoped_release release;
    se::mlp_forward_cuda(net, obs, n_rows, t.archs, t.rows, t.n_groups, logits, values, workspace,
                         workspace_bytes, stream);
  }
}
#endif

}  // namespace

namespace a2d {

void register_subnet_eval(py::module_& m) {
  m.def("subnet_eval_mlp", &subnet_eval_mlp_np, py::arg("obs"), py::arg("params"), py::arg("meta"),
        py::arg("archs"), py::arg("rows"),
        "Logits and values of row groups through different subnets of a packed MLP supernet.");
  m.def("subnet_eval_cnn", &subnet_eval_cnn_np, py::arg("obs"), py::arg("params"), py::arg("meta"),
        py::arg("archs"), py::arg("rows"),
        "Logits and values of uint8 image groups through subnets of a packed CNN supernet.");
  m.def("subnet_eval_meta_fields", &a2d::subnet_eval::meta_fields, py::arg("kind"),
        "The ordered field names of the packed layout's int64 meta vector of kind 'mlp' or "
        "'cnn'; 'name[count]' is an array of meta[count] entries.");
  m.def("subnet_eval_meta_kind", &a2d::subnet_eval::meta_kind_code, py::arg("kind"),
        "The value of the 'kind' field of a meta vector of kind 'mlp' or 'cnn'.");
  m.def(
      "subnet_eval_limits",
      []() {
        namespace se = a2d::subnet_eval;
        py::dict limits;
        limits["max_mlp_layers"] = se::kMaxMlpLayers;
        limits["max_conv_layers"] = se::kMaxConvLayers;
        limits["max_kernel_size"] = se::kMaxKernelSize;
        limits["max_stride"] = se::kMaxStride;
        limits["cuda_mlp_max_width"] = se::kCudaMlpMaxWidth;
        limits["max_mlp_dim"] = se::kMaxMlpDim;
        limits["max_cnn_dim"] = se::kMaxCnnDim;
        limits["max_cnn_plane"] = se::kMaxCnnPlane;
        limits["max_cnn_fc_rows"] = se::kMaxCnnFcRows;
        return limits;
      },
      "The packed layout's limits (csrc/subnet_eval.h); a supernet beyond them runs on the "
      "reference path.");
  m.def(
      "subnet_eval_isa", []() { return std::string(a2d::subnet_eval::cpu_isa()); },
      "The CPU micro-kernel subnet_eval runs: 'avx2-fma' or 'generic'.");
#ifdef A2D_WITH_CUDA
  m.def("subnet_eval_cuda_workspace", &subnet_eval_cuda_workspace, py::arg("meta"),
        py::arg("n_rows"), py::arg("n_groups"), "Bytes of device workspace a CUDA call needs.");
  m.def(
      "subnet_eval_mlp_cuda",
      [](uintptr_t obs, int64_t n_rows, uintptr_t params, int64_t n_params, const py::array& meta,
         const py::array& archs, const py::array& rows, uintptr_t logits, uintptr_t values,
         uintptr_t ws, int64_t ws_bytes, uintptr_t stream) {
        subnet_eval_cuda_ptr(false, obs, n_rows, params, n_params, meta, archs, rows, logits,
                             values, ws, ws_bytes, stream);
      },
      py::arg("obs_ptr"), py::arg("n_rows"), py::arg("params_ptr"), py::arg("n_params"),
      py::arg("meta"), py::arg("archs"), py::arg("rows"), py::arg("logits_ptr"),
      py::arg("values_ptr"), py::arg("workspace_ptr"), py::arg("workspace_bytes"),
      py::arg("stream"), "subnet_eval_mlp on device pointers, enqueued on a cudaStream_t.");
  m.def(
      "subnet_eval_cnn_cuda",
      [](uintptr_t obs, int64_t n_rows, uintptr_t params, int64_t n_params, const py::array& meta,
         const py::array& archs, const py::array& rows, uintptr_t logits, uintptr_t values,
         uintptr_t ws, int64_t ws_bytes, uintptr_t stream) {
        subnet_eval_cuda_ptr(true, obs, n_rows, params, n_params, meta, archs, rows, logits, values,
                             ws, ws_bytes, stream);
      },
      py::arg("obs_ptr"), py::arg("n_rows"), py::arg("params_ptr"), py::arg("n_params"),
      py::arg("meta"), py::arg("archs"), py::arg("rows"), py::arg("logits_ptr"),
      py::arg("values_ptr"), py::arg("workspace_ptr"), py::arg("workspace_bytes"),
      py::arg("stream"), "subnet_eval_cnn on device pointers, enqueued on a cudaStream_t.");
#endif
}

}  // namespace a2d
