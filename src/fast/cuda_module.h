// The C interface of the CUDA module: libmicrogpt_cuda (gpu/kernels_cuda.cu), the one
// part of microgpt that links CUDA. The program loads it (fast/kernels_gpu.cpp) only when
// a run asks for --engine gpu, so a build with the toolkit runs unchanged on a machine
// without a GPU, and a plain run never loads CUDA's libraries.
//
// It is declared here, beside the kernel table it hands out, and implemented in gpu/:
// gpu/ builds on fast/, never the other way round.
//
// Nothing is thrown across: each call returns 0, or -1 with one line of words in `why`
// (at most len - 1 bytes and a NUL).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace microgpt {
struct Kernels;
}

extern "C" {

// The kernel table on the first GPU (fast/kernels.h), its buffers in device memory;
// *kernels stays valid for the life of the process. Chooses the matrix products:
// cuBLAS when it loads (libcublas.so.13 or .12) unless MICROGPT_CUDA_GEMM=own, which
// takes the module's own tiled kernel. precision: "fp32" (float32 throughout) or "tf32"
// (the products on the tensor cores, which needs cuBLAS).
int microgpt_cuda_kernels(const microgpt::Kernels** kernels, const char* precision, char* why, size_t len);
// The GPU's name, and its free and total memory in bytes (after microgpt_cuda_kernels).
int microgpt_cuda_device(char* name, size_t name_len, int64_t* free_bytes, int64_t* total_bytes, char* why, size_t len);

}  // extern "C"
