// The GPU kernels the emulation tests check: src/gpu/kernels_cuda.cu compiled for the
// CPU (kernels_cuda_emulated.cpp), its table taken directly.
#include "cuda_emulation.h"
#include "fast/gpu_host_view.h"

const microgpt::Kernels* microgpt_cuda_emulated_tf32(char* why, size_t len);

namespace microgpt::testing {

const Kernels* gpu_backend(std::string* why) {
  const Kernels* k = nullptr;
  char reason[512] = {};
  if (microgpt_cuda_kernels(&k, "fp32", reason, sizeof reason) != 0) {
    if (why != nullptr) *why = reason;
    return nullptr;
  }
  return k;
}

const Kernels* gpu_backend_tf32(std::string* why) {
  char reason[512] = {};
  const Kernels* k = microgpt_cuda_emulated_tf32(reason, sizeof reason);
  if (k == nullptr && why != nullptr) *why = reason;
  return k;
}

}  // namespace microgpt::testing
