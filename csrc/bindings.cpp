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
// END preprocess

// ---- subnet_eval bindings (owned by the subnet-evaluation kernel) ----
// BEGIN subnet_eval
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
  // END defs preprocess
  // BEGIN defs subnet_eval
  // END defs subnet_eval
}
