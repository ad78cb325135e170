// The GPU kernels behind host pointers, for the kernel tests: each call copies the
// buffers it reads (and those it writes, for the ones that add) to the GPU, runs the GPU
// kernel, and copies what it wrote back. So every check the CPU kernels pass (against
// double-precision references, finite differences, the plain CPU kernels) runs on the
// GPU's unchanged.
#pragma once

#include <string>

#include "fast/kernels.h"

namespace microgpt::testing {

// The GPU kernels the tests check: gpu_kernels() (gpu_backend.cpp), or in the emulation
// tests the same source run on the CPU (gpu/gpu_backend_emulated.cpp); nullptr with the
// reason in *why when there are none.
const Kernels* gpu_backend(std::string* why);

// The view of gpu_backend(), or nullptr with the reason in *why.
const Kernels* gpu_kernels_on_host(std::string* why);

// The --precision tf32 table (gpu_kernels("tf32"), or in the emulation tests its
// emulated attention), and a view of it whose attention is that table's (the rest is
// gpu_kernels_on_host()'s); nullptr with the reason in *why.
const Kernels* gpu_backend_tf32(std::string* why);
const Kernels* gpu_tf32_attention_on_host(std::string* why);

}  // namespace microgpt::testing
