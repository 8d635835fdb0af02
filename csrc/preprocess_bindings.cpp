// Python bindings of the preprocess kernel (csrc/preprocess.h): thin wrappers that check
// buffers, release the GIL and call the framework-free core. Registered by bindings.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "preprocess.h"

namespace py = pybind11;

namespace {

// The Python layer (a2d_evo/ops/preprocess.py) validates and raises KernelInputError; these
// checks repeat the ones memory safety depends on, as std::invalid_argument (ValueError).
struct RawGeometry {
  int64_t n;
  int h, w, channels;
};

RawGeometry check_raw(const py::array& raw) {
  if (!py::isinstance<py::array_t<uint8_t>>(raw)) {
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
  if (!py::isinstance<py::array_t<uint8_t>>(out) || out.ndim() != 3) {
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
  if (!py::isinstance<py::array_t<uint8_t>>(stack) || stack.ndim() != 4 || stack.shape(0) != g.n ||
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
    // reinterpret_borrow checks nothing: a non-array here would be read as one
    if (!py::isinstance<py::array>(reset_mask)) {
      throw std::invalid_argument(
          "reset_mask must be None or a contiguous bool array of shape (N,)");
    }
    mask_arr = py::reinterpret_borrow<py::array>(reset_mask);
    if (!py::isinstance<py::array_t<bool>>(mask_arr) || mask_arr.ndim() != 1 ||
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

}  // namespace

namespace a2d {

void register_preprocess(py::module_& m) {
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
}

}  // namespace a2d
