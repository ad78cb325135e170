// The GPU kernels the tests check: the CUDA module's, where this build has it and a GPU
// is here.
#include "core/error.h"
#include "fast/gpu_host_view.h"

namespace microgpt::testing {

const Kernels* gpu_backend(std::string* why) {
  try {
    return &gpu_kernels();
  } catch (const Error& e) {
    if (why != nullptr) *why = e.what();
    return nullptr;
  }
}

}  // namespace microgpt::testing
