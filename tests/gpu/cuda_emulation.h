// Just enough of CUDA, on the CPU, to run src/gpu/kernels_cuda.cu's kernels where there
// is no GPU: the tests compile that file as C++ with MICROGPT_CUDA_EMULATION over this
// header (gpu/kernels_cuda_emulated.cpp), so that the kernels' indexing, barriers, warp
// shuffles and sums are checked by every run of the suite, not only in the few minutes a
// GPU is lent.
//
// A launch runs its blocks one after another; a block's threads are fibers on the calling
// thread, switched at __syncthreads, __syncwarp and the warp shuffles (a shuffle is a
// write to the warp's slots, a warp barrier, a read, a barrier). __shared__ arrays are
// static locals, which is right because blocks never overlap. Device memory is host
// memory filled with NaN bytes when allocated, so a kernel that reads what nothing wrote
// shows it. What this cannot show: races between threads that a GPU would run at once,
// the memory model, speed. Only the features the kernels use are here.
#pragma once

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace microgpt::emu {

const dim3& thread_idx();
const dim3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
void sync_block();
void sync_warp();
float shuffle(float v, int src_lane);
float shuffle_xor(float v, int lane_mask);
void* dynamic_shared();
// Runs body() once per thread of every block of the grid, with `shared` bytes of dynamic
// shared memory per block. Aborts with a message if the threads of a block deadlock.
void launch(dim3 grid, dim3 block, size_t shared, const std::function<void()>& body);

}  // namespace microgpt::emu

#define __global__
#define __device__
#define __host__
#define __shared__ static
#define threadIdx (::microgpt::emu::thread_idx())
#define blockIdx (::microgpt::emu::block_idx())
#define blockDim (::microgpt::emu::block_dim())
#define gridDim (::microgpt::emu::grid_dim())
#define MICROGPT_LAUNCH(kernel, grid, block, shared, ...) \
  ::microgpt::emu::launch(dim3(grid), dim3(block), (shared), [=] { kernel(__VA_ARGS__); })
#define MICROGPT_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::microgpt::emu::dynamic_shared())

inline void __syncthreads() { microgpt::emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { microgpt::emu::sync_warp(); }
inline float __shfl_sync(unsigned, float v, int src_lane) { return microgpt::emu::shuffle(v, src_lane); }
inline float __shfl_xor_sync(unsigned, float v, int lane_mask) { return microgpt::emu::shuffle_xor(v, lane_mask); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  const unsigned long long old = *p;  // one thread runs at a time
  *p += v;
  return old;
}
#define __align__(n) __attribute__((aligned(n)))

// ---- the warp matrix functions (mma.h's nvcuda::wmma), for TF32 tiles only ----
// Each thread of the warp holds the whole tile in its fragment (so num_elements is the
// tile's size: code that treats the elements alike, as the layout is unspecified, runs
// the same); a load, a product and a store are each the warp's together, so each begins
// at a warp barrier. A load or store checks what CUDA requires: a pointer aligned to 32
// bytes and a leading dimension a multiple of 4 floats. The product reads its inputs as
// the tensor cores do, as TF32 (the low 13 bits of each float ignored), and sums in
// float in order.
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  float x[num_elements];
};
void check_tile(const void* p, unsigned ldm, const char* what);
template <class Use, int M, int N, int K, class T, class Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const float* p, unsigned ldm) {
  using F = fragment<Use, M, N, K, T, Layout>;
  check_tile(p, ldm, "load_matrix_sync");
  __syncwarp();
  for (int r = 0; r < F::rows; r++) {
    for (int c = 0; c < F::cols; c++) {
      f.x[r * F::cols + c] = std::is_same_v<Layout, row_major> ? p[r * ldm + c] : p[c * ldm + r];
    }
  }
}
template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
  check_tile(p, ldm, "store_matrix_sync");
  __syncwarp();
  for (int r = 0; r < M; r++) {
    for (int c = 0; c < N; c++) (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * N + c];
  }
}
template <class Use, int M, int N, int K, class T, class Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float v) {
  for (float& x : f.x) x = v;
}
inline float as_tf32(float v) {  // what the tensor cores read
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  u &= 0xffffe000u;
  std::memcpy(&v, &u, sizeof u);
  return v;
}
template <int M, int N, int K, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, precision::tf32, LA>& a,
              const fragment<matrix_b, M, N, K, precision::tf32, LB>& b,
              const fragment<accumulator, M, N, K, float>& c) {
  __syncwarp();
  float out[M * N];
  for (int i = 0; i < M; i++) {
    for (int j = 0; j < N; j++) {
      float s = c.x[i * N + j];
      for (int k = 0; k < K; k++) s = std::fma(as_tf32(a.x[i * K + k]), as_tf32(b.x[k * N + j]), s);
      out[i * N + j] = s;
    }
  }
  std::memcpy(d.x, out, sizeof out);
}
// To TF32, the nearest (ties away from zero) as cvt.rna.tf32.f32 does; kept in a float.
inline float __float_to_tf32(float v) {
  if (!std::isfinite(v)) return v;
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &u, sizeof u);
  return v;
}
}  // namespace nvcuda::wmma

template <class T>
T min(T a, T b) {
  return b < a ? b : a;
}
using std::isfinite;

// ---- the runtime API the module calls ----
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
};
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
using cudaStream_t = void*;
struct cudaDeviceProp {
  char name[256];
};

const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* to, const void* from, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* to, const void* from, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);

// The table of the emulated kernels (kernels_cuda.cu's microgpt_cuda_kernels, linked in).
namespace microgpt {
struct Kernels;
}
extern "C" int microgpt_cuda_kernels(const microgpt::Kernels** kernels, const char* precision, char* why, size_t len);
