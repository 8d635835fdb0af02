// The one binding file of a2d_evo._C: thin wrappers that check buffers, release the GIL
// and call the framework-free cores declared in <op>.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#ifdef A2D_WITH_OPENMP
#include <omp.h>
#endif

#include "preprocess.h"
#include "subnet_eval.h"

namespace py = pybind11;

namespace {

bool has_cuda() {
#ifdef A2D_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int max_threads() {
#ifdef A2D_WITH_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1");
#ifdef A2D_WITH_OPENMP
  omp_set_num_threads(n);
#endif
}

// ---- preprocess bindings (owned by the preprocess kernel) ----
// BEGIN preprocess
// The Python layer (a2d_evo/ops/preprocess.py) validates and raises KernelInputError; these
// checks repeat the ones memory safety depends on, as std::invalid_argument (ValueError).
struct RawGeometry {
  int64_t n;
  int h, w, channels;
};

RawGeometry check_raw(const py::array& raw) {
  if (!raw.dtype().is(py::dtype::of<uint8_t>())) {
    throw std::invalid_argument("raw must be uint8");
  }
  const bool grey = raw.ndim() == 4;
  if (!(grey || (raw.ndim() == 5 && raw.shape(4) == 3)) || raw.shape(1) != 2) {
    throw std::invalid_argument("raw must have shape (N, 2, H, W) or (N, 2, H, W, 3)");
  }
  if (!(raw.flags() & py::array::c_style)) {
    throw std::invalid_argument("raw must be C-contiguous");
  }
  if (raw.shape(2) < 1 || raw.shape(3) < 1 || raw.shape(2) > (1 << 20) ||
      raw.shape(3) > (1 << 20)) {
    throw std::invalid_argument("raw frames must be between 1 and 2^20 pixels high and wide");
  }
  return {static_cast<int64_t>(raw.shape(0)), static_cast<int>(raw.shape(2)),
          static_cast<int>(raw.shape(3)), grey ? 1 : 3};
}

void check_size(int64_t size) {
  if (size < 1 || size > 65536) throw std::invalid_argument("size must be in [1, 65536]");
}

void preprocess_frames_np(const py::array& raw, py::array& out) {
  const RawGeometry g = check_raw(raw);
  if (!out.dtype().is(py::dtype::of<uint8_t>()) || out.ndim() != 3) {
    throw std::invalid_argument("out must be a uint8 array of shape (N, size, size)");
  }
  const int64_t size = out.shape(1);
  check_size(size);
  if (out.shape(0) != g.n || out.shape(2) != size) {
    throw std::invalid_argument("out must have shape (N, size, size)");
  }
  if (g.n == 0) return;
  if (out.strides(2) != 1 || out.strides(1) != size || (g.n > 1 && out.strides(0) < size * size)) {
    throw std::invalid_argument("out frames must be C-contiguous and must not overlap");
  }
  if (!out.writeable()) throw std::invalid_argument("out is read-only");
  const auto* src = static_cast<const uint8_t*>(raw.data());
  auto* dst = static_cast<uint8_t*>(out.mutable_data());
  const int64_t stride = out.strides(0);
  py::gil_scoped_release release;
  a2d::preprocess::preprocess_cpu(src, g.n, g.h, g.w, g.channels, static_cast<int>(size), dst,
                                  stride);
}

void push_frames_np(const py::array& raw, py::array& stack, const py::object& reset_mask) {
  const RawGeometry g = check_raw(raw);
  if (!stack.dtype().is(py::dtype::of<uint8_t>()) || stack.ndim() != 4 || stack.shape(0) != g.n ||
      stack.shape(1) < 1 || stack.shape(2) != stack.shape(3)) {
    throw std::invalid_argument("stack must be a uint8 array of shape (N, K, size, size)");
  }
  check_size(stack.shape(2));
  if (!(stack.flags() & py::array::c_style)) {
    throw std::invalid_argument("stack must be C-contiguous");
  }
  if (!stack.writeable()) throw std::invalid_argument("stack is read-only");
  const uint8_t* mask = nullptr;
  py::array mask_arr;
  if (!reset_mask.is_none()) {
    mask_arr = py::reinterpret_borrow<py::array>(reset_mask);
    if (!mask_arr.dtype().is(py::dtype::of<bool>()) || mask_arr.ndim() != 1 ||
        mask_arr.shape(0) != g.n || !(mask_arr.flags() & py::array::c_style)) {
      throw std::invalid_argument("reset_mask must be a contiguous bool array of shape (N,)");
    }
    mask = static_cast<const uint8_t*>(mask_arr.data());
  }
  const auto* src = static_cast<const uint8_t*>(raw.data());
  auto* dst = static_cast<uint8_t*>(stack.mutable_data());
  const int k = static_cast<int>(stack.shape(1));
  const int size = static_cast<int>(stack.shape(2));
  py::gil_scoped_release release;
  a2d::preprocess::push_frames_cpu(src, g.n, g.h, g.w, g.channels, size, dst, k, mask);
}

#ifdef A2D_WITH_CUDA
void preprocess_frames_cuda_ptr(uintptr_t raw, uintptr_t out, int64_t out_batch_stride, int64_t n,
                                int h, int w, int channels, int64_t size, uintptr_t stream) {
  check_size(size);
  py::gil_scoped_release release;
  a2d::preprocess::preprocess_cuda(raw, out, out_batch_stride, n, h, w, channels,
                                   static_cast<int>(size), stream);
}

void push_frames_cuda_ptr(uintptr_t raw, uintptr_t stack, uintptr_t reset_mask, int64_t n, int k,
                          int h, int w, int channels, int64_t size, uintptr_t stream) {
  check_size(size);
  py::gil_scoped_release release;
  a2d::preprocess::push_frames_cuda(raw, stack, reset_mask, n, k, h, w, channels,
                                    static_cast<int>(size), stream);
}
#endif
// END preprocess

// ---- subnet_eval bindings (owned by the subnet-evaluation kernel) ----
// BEGIN subnet_eval
// The Python layer (a2d_evo/ops/subnet_eval.py) builds these arrays and raises KernelInputError;
// everything memory safety depends on is checked again here (std::invalid_argument, ValueError).
template <typename T>
const T* se_buffer(const py::array& a, const char* name, int ndim) {
  if (!a.dtype().is(py::dtype::of<T>())) {
    throw std::invalid_argument(std::string("subnet_eval: ") + name + " has the wrong dtype");
  }
  if (ndim >= 0 && a.ndim() != ndim) {
    throw std::invalid_argument(std::string("subnet_eval: ") + name + " must have " +
                                std::to_string(ndim) + " dimensions");
  }
  if (!(a.flags() & py::array::c_style)) {
    throw std::invalid_argument(std::string("subnet_eval: ") + name + " must be C-contiguous");
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
    throw std::invalid_argument("subnet_eval: obs frames do not match the supernet's shape");
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
  if (meta.shape(0) > 0 && m[0] == 0) {
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
// END subnet_eval

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "a2d-evo native kernels (CPU with OpenMP; CUDA when built with it)";
  m.def("has_cuda", &has_cuda, "True when the CUDA kernels were compiled in.");
  m.def("has_openmp", []() {
#ifdef A2D_WITH_OPENMP
    return true;
#else
    return false;
#endif
  });
  m.def("max_threads", &max_threads, "OpenMP's thread count for the next parallel region.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  // BEGIN defs preprocess
  m.def("preprocess_frames", &preprocess_frames_np, py::arg("raw"), py::arg("out"),
        "Max of each env's two frames, area-resized into out (N, size, size); GIL released.");
  m.def("push_frames", &push_frames_np, py::arg("raw"), py::arg("stack"),
        py::arg("reset_mask") = py::none(),
        "Shift each env's frame stack left and write the new frame into its last slot; "
        "reset envs get the new frame in every slot.");
  m.def(
      "preprocess_isa", []() { return std::string(a2d::preprocess::preprocess_isa()); },
      "The CPU code path preprocess runs: 'avx2' or 'generic'.");
#ifdef A2D_WITH_CUDA
  m.def("preprocess_frames_cuda", &preprocess_frames_cuda_ptr, py::arg("raw_ptr"),
        py::arg("out_ptr"), py::arg("out_batch_stride"), py::arg("n"), py::arg("h"), py::arg("w"),
        py::arg("channels"), py::arg("size"), py::arg("stream"),
        "preprocess_frames on device pointers, enqueued on a cudaStream_t given as an integer.");
  m.def("push_frames_cuda", &push_frames_cuda_ptr, py::arg("raw_ptr"), py::arg("stack_ptr"),
        py::arg("reset_mask_ptr"), py::arg("n"), py::arg("k"), py::arg("h"), py::arg("w"),
        py::arg("channels"), py::arg("size"), py::arg("stream"),
        "push_frames on device pointers (reset_mask_ptr 0: no resets; else N bools).");
#endif
  // END defs preprocess
  // BEGIN defs subnet_eval
  m.def("subnet_eval_mlp", &subnet_eval_mlp_np, py::arg("obs"), py::arg("params"), py::arg("meta"),
        py::arg("archs"), py::arg("rows"),
        "Logits and values of row groups through different subnets of a packed MLP supernet.");
  m.def("subnet_eval_cnn", &subnet_eval_cnn_np, py::arg("obs"), py::arg("params"), py::arg("meta"),
        py::arg("archs"), py::arg("rows"),
        "Logits and values of uint8 frame groups through subnets of a packed CNN supernet.");
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
  // END defs subnet_eval
}
