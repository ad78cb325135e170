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

const Kernels* gpu_backend_tf32(std::string* why) {
  try {
    return &gpu_kernels("tf32");
  } catch (const Error& e) {
    if (why != nullptr) *why = e.what();
    return nullptr;
  }
}

}  // namespace microgpt::testing
