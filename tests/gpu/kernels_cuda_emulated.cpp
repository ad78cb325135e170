// src/gpu/kernels_cuda.cu as plain C++ on the CUDA emulation (cuda_emulation.h).
#define MICROGPT_CUDA_EMULATION
#include "gpu/kernels_cuda.cu"

// The --precision tf32 table, for the tests. The module refuses tf32 here (it needs cuBLAS,
// which the emulation lacks), so its products are the tiled kernel's in float32; its
// attention is the tensor cores' (on the emulated wmma of cuda_emulation.h).
const microgpt::Kernels* microgpt_cuda_emulated_tf32(char* why, size_t len) {
  const microgpt::Kernels* k = nullptr;
  if (microgpt_cuda_kernels(&k, "fp32", why, len) != 0) return nullptr;
  return &microgpt::cuda::g_table_tf32;
}
