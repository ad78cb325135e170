// The dropout mask, in one place for the CPU kernels (fast/kernels_cpu.cpp) and the GPU's
// (gpu/kernels_cuda.cu), so that both drop the same outputs and a run moves between them.
//
// Whether output (row, c) of a C-wide block is kept: murmur3's 64-bit finalizer of
// mix(key) + (row C + c) * the golden ratio, its top 24 bits compared with p * 2^24 (the
// key is mixed first so that keys differing by a multiple of the golden ratio do not
// give shifted copies of one mask). Dropping is decided by position in the batch, not by
// a generator's stream, so threads, resume and the backward pass all see the same mask.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define MICROGPT_HOST_DEVICE __host__ __device__
#else
#define MICROGPT_HOST_DEVICE
#endif

namespace microgpt::dropout {

inline constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

MICROGPT_HOST_DEVICE inline uint64_t mix64(uint64_t z) {
  z ^= z >> 33;
  z *= 0xff51afd7ed558ccdULL;
  z ^= z >> 33;
  z *= 0xc4ceb9fe1a85ec53ULL;
  z ^= z >> 33;
  return z;
}

// p * 2^24: the outputs whose 24 bits fall below it are dropped
MICROGPT_HOST_DEVICE inline uint64_t threshold(float p) {
  return static_cast<uint64_t>(static_cast<double>(p) * 16777216.0);
}

// What every output of a row shares (mixed_key = mix64(key))
MICROGPT_HOST_DEVICE inline uint64_t row_base(uint64_t mixed_key, int64_t row, int64_t C) {
  return mixed_key + static_cast<uint64_t>(row * C) * kGolden;
}

MICROGPT_HOST_DEVICE inline bool keeps(uint64_t row_base, int64_t c, uint64_t threshold) {
  return (mix64(row_base + static_cast<uint64_t>(c) * kGolden) >> 40) >= threshold;
}

}  // namespace microgpt::dropout
