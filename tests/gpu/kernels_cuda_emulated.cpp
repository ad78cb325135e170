// src/gpu/kernels_cuda.cu as plain C++ on the CUDA emulation (cuda_emulation.h).
#define MICROGPT_CUDA_EMULATION
#include "gpu/kernels_cuda.cu"
