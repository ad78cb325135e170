// The GPU kernels behind host pointers, for the kernel tests: each call copies the
// buffers it reads (and those it writes, for the ones that add) to the GPU, runs the GPU
// kernel, and copies what it wrote back. So every check the CPU kernels pass (against
// double-precision references, finite differences, the plain CPU kernels) runs on the
// GPU's unchanged.
#pragma once

#include <string>

#include "fast/kernels.h"

namespace microgpt::testing {

// The view, or nullptr with the reason in *why (no CUDA in this build, no GPU here).
const Kernels* gpu_kernels_on_host(std::string* why);

}  // namespace microgpt::testing
