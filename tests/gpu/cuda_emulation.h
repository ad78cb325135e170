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
