// The one module definition of a2d_evo._C: build-wide queries here, then each op's functions from
// its own csrc/<op>_bindings.cpp (thin wrappers that check buffers, release the GIL and call the
// framework-free core declared in <op>.h; no torch headers anywhere).
#include <pybind11/pybind11.h>

#include <stdexcept>

#ifdef A2D_WITH_OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

namespace a2d {
// Defined in preprocess_bindings.cpp and subnet_eval_bindings.cpp.
void register_preprocess(py::module_& m);
void register_subnet_eval(py::module_& m);
}  // namespace a2d

namespace {

bool has_cuda() {
#ifdef A2D_WITH_CUDA
  return true;
#else
  return false;
#endif
}

// CMAKE_CUDA_ARCHITECTURES the kernels were compiled for ("80 89 90"); "" without CUDA.
const char* cuda_architectures() {
#if defined(A2D_WITH_CUDA) && defined(A2D_CUDA_ARCHS)
  return A2D_CUDA_ARCHS;
#else
  return "";
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

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "a2d-evo native kernels (CPU with OpenMP; CUDA when built with it)";
  m.def("has_cuda", &has_cuda, "True when the CUDA kernels were compiled in.");
  m.def("cuda_architectures", &cuda_architectures,
        "The CUDA architectures the kernels were compiled for (\"80 89 90\"); \"\" without CUDA.");
  m.def("has_openmp", []() {
#ifdef A2D_WITH_OPENMP
    return true;
#else
    return false;
#endif
  });
  m.def("max_threads", &max_threads, "OpenMP's thread count for the next parallel region.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  a2d::register_preprocess(m);
  a2d::register_subnet_eval(m);
}
