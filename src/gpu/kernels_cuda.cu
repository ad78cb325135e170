// The fast engine's kernels in CUDA: the table of fast/kernels.h with every buffer in
// device memory, so that the model driver (fast/fast_model.cpp) runs unchanged on a GPU.
// Built as the module libmicrogpt_cuda (fast/cuda_module.h) when CMake finds the CUDA
// toolkit; loaded only by --engine gpu.
//
// Every kernel has the meaning its CPU counterpart has, and every sum is taken in a fixed
// order (no floating-point atomics), so that a run repeats to the bit and resumes exactly:
//   - elementwise operations (residual, ReLU, dropout with the CPU's mask, Adam, the
//     average) over grid-stride loops;
//   - RMSNorm and the softmax of cross-entropy with a warp per row;
//   - the embeddings' gradient with a block per (row of wte or wpe, chunk of the batch),
//     summing the chunk's rows that use it in order, then the chunks in order;
//   - attention, for documents of 32 rows or more, with a thread per (query, head), 64
//     queries a block, the keys staged in shared memory 16 at a time, an online softmax;
//     its backward in two passes, one per query (dq and D = dout.out) and one per key
//     (dk, dv), so that no two threads add into the same gradient. Shorter documents,
//     heads wider than 64 (or not a multiple of 4), or MICROGPT_CUDA_ATTENTION=warp take
//     a warp per (query, head) instead: the keys' scores a lane each, and the values' sum
//     a channel per lane;
//   - with --precision tf32, attention for those documents on the tensor cores instead
//     (heads of 16, 32, 48 or 64): a warp per 16 rows, its products as 16 x 16 TF32 tiles;
//   - the loss with a block per document;
//   - the matrix products with cuBLAS, loaded at run time (libcublas.so.13 or .12), or
//     the module's own tiled kernel when it is missing or MICROGPT_CUDA_GEMM=own.
// Everything runs in order on the default stream; reading a result (download) waits for it.
//
// The tests also compile this file as plain C++ (MICROGPT_CUDA_EMULATION) over
// tests/gpu/cuda_emulation.h, which runs each block's threads as fibers on the CPU, so
// that the kernels' logic is checked where there is no GPU: hence the launch and the
// dynamic shared memory are written as the two macros below.
#ifdef MICROGPT_CUDA_EMULATION
#include "cuda_emulation.h"
#else
#include <cublas_v2.h>  // types only: the library is loaded with dlopen
#include <cuda_runtime.h>
#include <mma.h>
// kernel<<<grid, block, shared bytes>>>(args...)
#define MICROGPT_LAUNCH(kernel, grid, block, shared, ...) kernel<<<(grid), (block), (shared)>>>(__VA_ARGS__)
#define MICROGPT_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif
#include <dlfcn.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fast/cuda_module.h"
#include "fast/dropout_mask.h"
#include "fast/kernels.h"

namespace microgpt::cuda {

namespace {

// A kernel that failed is a bug or a broken device, not a user's error: one line and the
// exit code of a failed run.
[[noreturn]] void fail(const char* where, cudaError_t e) {
  std::fprintf(stderr, "microgpt: GPU error in %s: %s\n", where, cudaGetErrorString(e));
  std::fflush(stderr);
  std::_Exit(1);
}
void check(cudaError_t e, const char* where) {
  if (e != cudaSuccess) fail(where, e);
}
void launched(const char* where) { check(cudaGetLastError(), where); }

constexpr unsigned kFull = 0xffffffffu;
constexpr int kThreads = 256;

// Blocks for n elements at kThreads each, at most 2^16 (the loops stride over the rest).
unsigned blocks_for(int64_t n, int64_t per_block = kThreads) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + per_block - 1) / per_block, 1, 65536));
}

#define MICROGPT_GRID_LOOP(i, n)                                                         \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__device__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

// ---- memory -------------------------------------------------------------------------

void* allocate(int64_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, static_cast<size_t>(std::max<int64_t>(bytes, 1)));
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // not sticky: clear it, and let the caller say what did not fit
    return nullptr;
  }
  check(e, "cudaMalloc");
  return p;
}
void release(void* p) { check(cudaFree(p), "cudaFree"); }
void upload(void* to, const void* from, int64_t bytes) {
  if (bytes > 0) check(cudaMemcpy(to, from, static_cast<size_t>(bytes), cudaMemcpyHostToDevice), "upload");
}
void download(void* to, const void* from, int64_t bytes) {
  if (bytes > 0) check(cudaMemcpy(to, from, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost), "download");
}
void copy(float* to, const float* from, int64_t n) {
  if (n > 0) {
    check(cudaMemcpyAsync(to, from, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice, 0), "copy");
  }
}
void zero(float* p, int64_t n) {
  if (n > 0) check(cudaMemsetAsync(p, 0, static_cast<size_t>(n) * sizeof(float), 0), "zero");
}

// The module's own device memory for what a kernel needs beyond its arguments (attention's
// D, the embeddings' partial sums), grown when a batch needs more.
float* workspace(int64_t floats) {
  static float* buffer = nullptr;
  static int64_t size = 0;
  if (floats > size) {
    if (buffer != nullptr) check(cudaFree(buffer), "workspace");
    check(cudaMalloc(reinterpret_cast<void**>(&buffer), static_cast<size_t>(floats) * sizeof(float)), "workspace");
    size = floats;
  }
  return buffer;
}

// ---- embeddings ---------------------------------------------------------------------

__global__ void encoder_forward_kernel(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                                       const float* wpe, int64_t N, int64_t C) {
  MICROGPT_GRID_LOOP(i, N * C) {
    const int64_t n = i / C, c = i % C;
    out[i] = wte[tokens[n] * C + c] + wpe[positions[n] * C + c];
  }
}

void encoder_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte, const float* wpe,
                     int64_t N, int64_t C) {
  if (N * C == 0) return;
  MICROGPT_LAUNCH(encoder_forward_kernel, blocks_for(N * C), kThreads, 0, out, tokens, positions, wte, wpe, N, C);
  launched("encoder_forward");
}

// The embeddings' gradient in two launches, every sum in a fixed order. First, block
// (r, k): the rows of chunk k of the batch whose token (r < V) or position (r = V + p) is
// r, summed in order into partial (r, k), with a flag that says whether there were any.
// Then a thread per (r, column): the chunks' sums in order, added to wte's or wpe's row r
// if any row used it. (One block per r, scanning the whole batch, took 2 ms of a step of
// nanoGPT's shape: 321 blocks for 132 multiprocessors, each 16384 rows long.)
__global__ void encoder_backward_partial_kernel(float* partial, int* used, const float* dout, const int32_t* tokens,
                                                const int32_t* positions, int64_t N, int64_t C, int64_t V,
                                                int64_t chunk) {
  const int64_t r = blockIdx.x, k = blockIdx.y, S = gridDim.y;
  const bool token = r < V;
  const int32_t id = static_cast<int32_t>(token ? r : r - V);
  const int32_t* ids = token ? tokens : positions;
  const int64_t n0 = k * chunk, n1 = n0 + chunk < N ? n0 + chunk : N;
  bool any = false;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = 0.0f;
    for (int64_t n = n0; n < n1; n++) {
      if (ids[n] == id) {
        acc += dout[n * C + c];
        any = true;
      }
    }
    partial[(r * S + k) * C + c] = acc;
  }
  if (threadIdx.x == 0) used[r * S + k] = any ? 1 : 0;  // (thread 0 has column 0: it saw every row)
}

__global__ void encoder_backward_sum_kernel(float* dwte, float* dwpe, const float* partial, const int* used, int64_t C,
                                            int64_t V, int64_t P, int64_t S) {
  MICROGPT_GRID_LOOP(i, (V + P) * C) {
    const int64_t r = i / C, c = i % C;
    float acc = 0.0f;
    bool any = false;
    for (int64_t k = 0; k < S; k++) {
      if (used[r * S + k] != 0) {
        acc += partial[(r * S + k) * C + c];
        any = true;
      }
    }
    if (any) ((r < V ? dwte + r * C : dwpe + (r - V) * C))[c] += acc;
  }
}

void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, const int32_t* positions,
                      int64_t N, int64_t C, int64_t V, int64_t P) {
  if (N * C == 0 || V + P == 0) return;
  // chunks of at least 1024 rows, at most 32 of them
  const int64_t S = std::clamp<int64_t>((N + 1023) / 1024, 1, 32), chunk = (N + S - 1) / S;
  float* partial = workspace((V + P) * S * C + (V + P) * S);
  int* used = reinterpret_cast<int*>(partial + (V + P) * S * C);
  const int threads = static_cast<int>(std::min<int64_t>(kThreads, (C + 31) / 32 * 32));
  MICROGPT_LAUNCH(encoder_backward_partial_kernel, dim3(static_cast<unsigned>(V + P), static_cast<unsigned>(S)),
                  threads, 0, partial, used, dout, tokens, positions, N, C, V, chunk);
  launched("encoder_backward (chunks)");
  MICROGPT_LAUNCH(encoder_backward_sum_kernel, blocks_for((V + P) * C), kThreads, 0, dwte, dwpe, partial, used, C, V, P,
                  S);
  launched("encoder_backward (sums)");
}

// ---- RMSNorm: a warp per row ----------------------------------------------------------

constexpr int kRowWarps = kThreads / 32;

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* inp, int64_t N, int64_t C) {
  const int lane = threadIdx.x % 32;
  for (int64_t n = blockIdx.x * static_cast<int64_t>(kRowWarps) + threadIdx.x / 32; n < N;
       n += static_cast<int64_t>(gridDim.x) * kRowWarps) {
    const float* x = inp + n * C;
    float ss = 0.0f;
    for (int64_t c = lane; c < C; c += 32) ss += x[c] * x[c];
    ss = warp_sum(ss);
    const float r = 1.0f / sqrtf(ss / static_cast<float>(C) + 1e-5f);
    for (int64_t c = lane; c < C; c += 32) out[n * C + c] = x[c] * r;
    if (lane == 0) rstd[n] = r;
  }
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, int64_t N, int64_t C) {
  if (N == 0) return;
  MICROGPT_LAUNCH(rmsnorm_forward_kernel, blocks_for(N, kRowWarps), kThreads, 0, out, rstd, inp, N, C);
  launched("rmsnorm_forward");
}

// out = x r with r = (mean(x^2) + eps)^-1/2: dx = r dout - x r^3 (dout . x) / C
__global__ void rmsnorm_backward_kernel(float* dinp, const float* dout, const float* inp, const float* rstd, int64_t N,
                                        int64_t C) {
  const int lane = threadIdx.x % 32;
  for (int64_t n = blockIdx.x * static_cast<int64_t>(kRowWarps) + threadIdx.x / 32; n < N;
       n += static_cast<int64_t>(gridDim.x) * kRowWarps) {
    const float* x = inp + n * C;
    const float* g = dout + n * C;
    float dot = 0.0f;
    for (int64_t c = lane; c < C; c += 32) dot += g[c] * x[c];
    dot = warp_sum(dot);
    const float r = rstd[n];
    const float k = r * r * r * dot / static_cast<float>(C);
    for (int64_t c = lane; c < C; c += 32) dinp[n * C + c] += r * g[c] - k * x[c];
  }
}

void rmsnorm_backward(float* dinp, const float* dout, const float* inp, const float* rstd, int64_t N, int64_t C) {
  if (N == 0) return;
  MICROGPT_LAUNCH(rmsnorm_backward_kernel, blocks_for(N, kRowWarps), kThreads, 0, dinp, dout, inp, rstd, N, C);
  launched("rmsnorm_backward");
}

// ---- matrix products ------------------------------------------------------------------

// c (M,N) = beta c + a (M,K) b (K,N), element (i,k) of a at a[i a_rs + k a_cs] and (k,j)
// of b at b[k b_rs + j b_cs]; c row-major with leading dimension ldc. Tiles of 64 x 64, a
// thread computing 4 x 4 of them.
constexpr int kTile = 64, kTileK = 16;

__global__ void gemm_kernel(float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b,
                            int64_t b_rs, int64_t b_cs, int64_t M, int64_t N, int64_t K, float beta) {
  __shared__ float as[kTileK][kTile + 1];
  __shared__ float bs[kTileK][kTile + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m_tiles = (M + kTile - 1) / kTile;
  for (int64_t mt = blockIdx.y; mt < m_tiles; mt += gridDim.y) {
    const int64_t m0 = mt * kTile, n0 = static_cast<int64_t>(blockIdx.x) * kTile;
    float acc[4][4] = {};
    for (int64_t k0 = 0; k0 < K; k0 += kTileK) {
      for (int i = threadIdx.x; i < kTile * kTileK; i += kThreads) {
        // consecutive threads along whichever of a's dimensions is contiguous
        const int mm = a_cs == 1 ? i / kTileK : i % kTile, kk = a_cs == 1 ? i % kTileK : i / kTile;
        const int64_t gm = m0 + mm, gk = k0 + kk;
        as[kk][mm] = gm < M && gk < K ? a[gm * a_rs + gk * a_cs] : 0.0f;
      }
      for (int i = threadIdx.x; i < kTile * kTileK; i += kThreads) {
        const int nn = b_cs == 1 ? i % kTile : i / kTileK, kk = b_cs == 1 ? i / kTile : i % kTileK;
        const int64_t gn = n0 + nn, gk = k0 + kk;
        bs[kk][nn] = gn < N && gk < K ? b[gk * b_rs + gn * b_cs] : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kTileK; kk++) {
        float ar[4], br[4];
#pragma unroll
        for (int i = 0; i < 4; i++) ar[i] = as[kk][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; j++) br[j] = bs[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
          for (int j = 0; j < 4; j++) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
        }
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int64_t gm = m0 + ty + 16 * i, gn = n0 + tx + 16 * j;
        if (gm < M && gn < N) {
          float* p = c + gm * ldc + gn;
          *p = beta == 0.0f ? acc[i][j] : beta * *p + acc[i][j];
        }
      }
    }
  }
}

void gemm_tiled(float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t b_rs,
                int64_t b_cs, int64_t M, int64_t N, int64_t K, float beta) {
  if (M == 0 || N == 0) return;
  const dim3 grid(static_cast<unsigned>((N + kTile - 1) / kTile),
                  static_cast<unsigned>(std::min<int64_t>((M + kTile - 1) / kTile, 65535)));
  MICROGPT_LAUNCH(gemm_kernel, grid, kThreads, 0, c, ldc, a, a_rs, a_cs, b, b_rs, b_cs, M, N, K, beta);
  launched("gemm");
}

#ifndef MICROGPT_CUDA_EMULATION
// cuBLAS, when it loads: found by name, so any release with the v2 interface serves.
// Two handles: float32 products in float32, and (--precision tf32) on the tensor cores
// with TF32's 10-bit mantissas.
struct Blas {
  cublasHandle_t handle = nullptr, tf32 = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
};
Blas g_blas;
bool g_use_blas = false;

std::string load_blas() {
  void* lib = nullptr;
  for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) {
    lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) break;
  }
  if (lib == nullptr) return std::string("cuBLAS would not load (") + dlerror() + ")";
  auto create = reinterpret_cast<decltype(&cublasCreate_v2)>(dlsym(lib, "cublasCreate_v2"));
  auto set_math = reinterpret_cast<decltype(&cublasSetMathMode)>(dlsym(lib, "cublasSetMathMode"));
  g_blas.sgemm = reinterpret_cast<decltype(&cublasSgemm_v2)>(dlsym(lib, "cublasSgemm_v2"));
  if (create == nullptr || set_math == nullptr || g_blas.sgemm == nullptr) return "cuBLAS lacks cublasSgemm_v2";
  if (create(&g_blas.handle) != CUBLAS_STATUS_SUCCESS || create(&g_blas.tf32) != CUBLAS_STATUS_SUCCESS) {
    return "cublasCreate failed";
  }
  if (set_math(g_blas.handle, CUBLAS_PEDANTIC_MATH) != CUBLAS_STATUS_SUCCESS ||
      set_math(g_blas.tf32, CUBLAS_TF32_TENSOR_OP_MATH) != CUBLAS_STATUS_SUCCESS) {
    return "cublasSetMathMode failed";
  }
  return "";
}

bool fits_int(int64_t x) { return x <= INT_MAX; }

// Column-major cuBLAS on row-major buffers: a row-major (R, S) matrix is a column-major
// (S, R) one, so each product below is written for the transposes.
template <bool kTf32>
void blas_gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
               const float* b, int64_t ldb, float beta, float* c, int64_t ldc, const char* where) {
  const float one = 1.0f;
  const cublasStatus_t s =
      g_blas.sgemm(kTf32 ? g_blas.tf32 : g_blas.handle, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &one, a,
                   static_cast<int>(lda), b, static_cast<int>(ldb), &beta, c, static_cast<int>(ldc));
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "microgpt: GPU error in %s: cuBLAS status %d\n", where, static_cast<int>(s));
    std::fflush(stderr);
    std::_Exit(1);
  }
}

bool blas_for(int64_t N, int64_t C, int64_t OC) {
  return g_use_blas && fits_int(N) && fits_int(C) && fits_int(OC) && fits_int(N * C) && fits_int(N * OC) &&
         fits_int(OC * C);
}
#else
// (emulated: no cuBLAS, the tiled kernel always)
bool g_use_blas = false;
std::string load_blas() { return "cuBLAS is not emulated"; }
bool blas_for(int64_t, int64_t, int64_t) { return false; }
template <bool kTf32>
void blas_gemm(int, int, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float, float*,
               int64_t, const char*) {}
constexpr int CUBLAS_OP_N = 0, CUBLAS_OP_T = 1;
#endif

// out (N,OC) = inp (N,C) @ weight (OC,C)^T; kTf32: on the tensor cores (cuBLAS only)
template <bool kTf32>
void matmul_forward(float* out, const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC, float*) {
  if (N == 0) return;
  if (blas_for(N, C, OC)) {
    // out^T (OC,N) = weight (OC,C) @ inp^T (C,N); weight is column-major (C,OC): transposed
    blas_gemm<kTf32>(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, weight, C, inp, C, 0.0f, out, OC, "matmul_forward");
    return;
  }
  gemm_tiled(out, OC, inp, C, 1, weight, 1, C, N, OC, C, 0.0f);
}

// dinp (N,C) += dout (N,OC) @ weight (OC,C); dweight (OC,C) += dout^T @ inp (N,C)
template <bool kTf32>
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int64_t N,
                     int64_t C, int64_t OC) {
  if (N == 0) return;
  if (blas_for(N, C, OC)) {
    // dinp^T (C,N) += weight^T (C,OC) @ dout^T (OC,N)
    blas_gemm<kTf32>(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, weight, C, dout, OC, 1.0f, dinp, C, "matmul_backward dinp");
    // dweight^T (C,OC) += inp^T (C,N) @ dout (N,OC)
    blas_gemm<kTf32>(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, inp, C, dout, OC, 1.0f, dweight, C, "matmul_backward dweight");
    return;
  }
  gemm_tiled(dinp, C, dout, OC, 1, weight, C, 1, N, C, OC, 1.0f);
  gemm_tiled(dweight, C, dout, 1, OC, inp, C, 1, OC, C, N, 1.0f);
}

// ---- attention: a warp per (query, head), every document of the batch in one launch ----

constexpr int kAttentionWarps = 4;

// Warps per block whose shared memory (floats_per_warp each) fits in 48 KiB; 0 if none.
int attention_warps(int64_t floats_per_warp) {
  const int64_t per_warp = floats_per_warp * static_cast<int64_t>(sizeof(float));
  return static_cast<int>(std::min<int64_t>(kAttentionWarps, (48 * 1024) / std::max<int64_t>(per_warp, 1)));
}

// The document that holds `row`: the last d with doc_start[d] <= row.
__device__ int64_t document_of(const int64_t* doc_start, int64_t n_docs, int64_t row) {
  int64_t lo = 0, hi = n_docs - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (doc_start[mid] <= row) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// Rows are absolute (doc_start's numbering); item i of a launch is row doc_start[0] +
// i / NH, head i % NH.
__global__ void attention_forward_kernel(float* out, float* lse, const float* qkv, const int64_t* doc_start,
                                         int64_t n_docs, int64_t rows, int64_t t0, int64_t C, int64_t NH, int warps,
                                         int64_t tiled_from) {
  MICROGPT_DYNAMIC_SHARED(float, shared);
  const int64_t HS = C / NH;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* q = shared + warp * 2 * HS;
  float* acc = q + HS;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  const int64_t first = doc_start[0];
  for (int64_t item = blockIdx.x * static_cast<int64_t>(warps) + warp; item < rows * NH;
       item += static_cast<int64_t>(gridDim.x) * warps) {
    const int64_t r = first + item / NH, h = item % NH;
    const int64_t doc = document_of(doc_start, n_docs, r);
    const int64_t s = doc_start[doc];  // the document's first row
    // (the whole warp:) a row of the KV cache, or one of a document the tiled kernels take
    if (r - s < t0 || doc_start[doc + 1] - s >= tiled_from) continue;
    for (int64_t d = lane; d < HS; d += 32) {
      q[d] = qkv[r * 3 * C + h * HS + d];
      acc[d] = 0.0f;
    }
    __syncwarp();
    float m = -INFINITY, l = 0.0f;
    for (int64_t u0 = s; u0 <= r; u0 += 32) {
      const int64_t u = u0 + lane;
      float sc = -INFINITY;
      if (u <= r) {
        const float* k = qkv + u * 3 * C + C + h * HS;
        float dot = 0.0f;
        for (int64_t d = 0; d < HS; d++) dot = fmaf(q[d], k[d], dot);
        sc = dot * scale;
      }
      const float m_new = fmaxf(m, warp_max(sc));  // finite: lane 0's key is always there
      const float p = u <= r ? expf(sc - m_new) : 0.0f;
      const float correction = expf(m - m_new);  // 0 on the first tile (m = -inf)
      l = l * correction + warp_sum(p);
      for (int64_t d = lane; d < HS; d += 32) acc[d] *= correction;
      const int n = static_cast<int>(min(static_cast<int64_t>(32), r - u0 + 1));
      for (int j = 0; j < n; j++) {
        const float pj = __shfl_sync(kFull, p, j);
        const float* v = qkv + (u0 + j) * 3 * C + 2 * C + h * HS;
        for (int64_t d = lane; d < HS; d += 32) acc[d] = fmaf(pj, v[d], acc[d]);
      }
      m = m_new;
    }
    for (int64_t d = lane; d < HS; d += 32) out[r * C + h * HS + d] = acc[d] / l;
    if (lane == 0) lse[r * NH + h] = m + logf(l);
    __syncwarp();  // before the next item overwrites q and acc
  }
}

// ---- attention, tiled: a thread per query (or key), the other side staged in shared memory --
//
// For long documents, the kernels above re-read every key of a document from device
// memory for every query: at nanoGPT's block of 256 that was four fifths of a step.
// These give each block 64 consecutive rows of one head, a thread each, with the thread's
// own vectors in registers, and stage the rows they meet (keys for queries, queries for
// keys) 16 at a time in shared memory, where a warp reads each one at once. A thread takes
// its document's rows one by one in order, so what a row gets depends on its document
// alone, whatever else the batch holds. They take the rows of documents of kLongDocument
// rows or more, for head sizes that are multiples of 4 up to 64 (the vectors live in
// registers); the warp kernels above take the other rows, in a launch of their own.

constexpr int kTileRows = 64;  // rows of a block: a thread each
// Documents of this many rows or more take these kernels; shorter ones (names) the warp
// kernels above, which waste less on them (a block of these spans several short
// documents, each thread using a few of the rows staged). The choice is the document's
// own, so a document gets the same bits in any batch.
constexpr int64_t kLongDocument = 32;
bool g_tiled_attention = true;  // false: the kernels above for every head size (MICROGPT_CUDA_ATTENTION=warp)
// false: the tiled kernels below in float32 for --precision tf32 too (MICROGPT_CUDA_ATTENTION=tiled)
bool g_tensor_attention = true;
constexpr int kStageRows = 16;  // rows staged in shared memory at a time

// Whether x holds for any thread of the block (every thread must call it).
__device__ bool any_in_block(bool x) {
  __shared__ int any;
  if (threadIdx.x == 0) any = 0;
  __syncthreads();
  if (x) any = 1;
  __syncthreads();
  return any != 0;
}

__device__ int64_t larger(int64_t a, int64_t b) { return a > b ? a : b; }
__device__ int64_t smaller(int64_t a, int64_t b) { return a < b ? a : b; }

// the float4 at d of a staged row (rows are HS + 4 floats: 16-byte aligned, and a warp's
// threads reading rows of their own fall in different banks)
template <int HS>
__device__ const float4& at4(const float* rows, int64_t row, int d) {
  return *reinterpret_cast<const float4*>(rows + row * (HS + 4) + d);
}
// Dot products in four independent sums, one per component of the float4s, added at the
// end, rather than one chain of HS dependent multiply-adds. (On the H200 this moved the
// attention kernels by about 2%: what bounds them is elsewhere, probably the registers,
// which leave room for few warps.)
struct Dot4 {
  float x = 0.0f, y = 0.0f, z = 0.0f, w = 0.0f;
  __device__ void add(const float4& a, const float4& b) {
    x = fmaf(a.x, b.x, x);
    y = fmaf(a.y, b.y, y);
    z = fmaf(a.z, b.z, z);
    w = fmaf(a.w, b.w, w);
  }
  __device__ float sum() const { return (x + y) + (z + w); }
};
template <int HS>
__device__ float4 reg4(const float (&x)[HS], int d) {
  return make_float4(x[d], x[d + 1], x[d + 2], x[d + 3]);
}
template <int HS>
__device__ float dot_staged(const float (&x)[HS], const float* rows, int64_t row) {
  Dot4 s;
#pragma unroll
  for (int d = 0; d < HS; d += 4) s.add(reg4<HS>(x, d), at4<HS>(rows, row, d));
  return s.sum();
}
// A compiler barrier: staged rows are read again after it rather than held. Without it,
// the compiler keeps a thread's own rows and the row it just read in registers, which
// beside the thread's two accumulators do not fit and spill to local memory.
__device__ inline void read_staged_again() { asm volatile("" ::: "memory"); }

// acc += a * the staged row
template <int HS>
__device__ void add_staged(float (&acc)[HS], float a, const float* rows, int64_t row) {
#pragma unroll
  for (int d = 0; d < HS; d += 4) {
    const float4 y = at4<HS>(rows, row, d);
    acc[d] = fmaf(a, y.x, acc[d]);
    acc[d + 1] = fmaf(a, y.y, acc[d + 1]);
    acc[d + 2] = fmaf(a, y.z, acc[d + 2]);
    acc[d + 3] = fmaf(a, y.w, acc[d + 3]);
  }
}
// Copies rows from..from+n-1 (a slice of HS floats at `offset` in rows `stride` wide) into
// `rows`, the whole block together; rows past `last` are left as they are.
template <int HS>
__device__ void stage(float* rows, const float* src, int64_t stride, int64_t offset, int64_t from, int64_t n,
                      int64_t last) {
  for (int64_t i = threadIdx.x; i < n * HS; i += blockDim.x) {
    const int64_t j = i / HS, d = i % HS;
    if (from + j <= last) rows[j * (HS + 4) + d] = src[(from + j) * stride + offset + d];
  }
}

// `rows` rows of HS floats staged in shared memory, each padded to HS + 4 (float4s, for
// their alignment), seen as the floats `name`.
#define MICROGPT_STAGED_ROWS(name, rows)            \
  __shared__ float4 name##4[(rows) * (HS + 4) / 4]; \
  float* name = reinterpret_cast<float*>(name##4)

// key(j) for each key s..r of this thread's query r (j: its place in ks and vs), the
// block's keys from..last staged 16 at a time into ks and vs with their values. The whole
// block calls it together, as it meets barriers; a thread not `active` only stages.
template <int HS, class Key>
__device__ void for_each_staged_key(float* ks, float* vs, const float* qkv, int64_t C, int64_t h, int64_t from,
                                    int64_t last, bool active, int64_t s, int64_t r, Key&& key) {
  for (int64_t u0 = from; u0 <= last; u0 += kStageRows) {
    __syncthreads();  // the last stage is read, and what the caller staged before is written
    stage<HS>(ks, qkv, 3 * C, C + h * HS, u0, kStageRows, last);
    stage<HS>(vs, qkv, 3 * C, 2 * C + h * HS, u0, kStageRows, last);
    __syncthreads();
    if (!active) continue;
    const int64_t j1 = smaller(r - u0, kStageRows - 1);
    for (int64_t j = larger(s - u0, 0); j <= j1; j++) key(j);
  }
}

// What each tiled kernel starts from: the block's rows r0..last (64 from the launch's first
// row, fewer at its end), this thread's row (r0 + its index; `last` stands in for a row
// past the end), that row's document [begin, end), and whether the row is the thread's:
// inside the launch and of a document these kernels take.
struct TiledRow {
  int64_t r0, last, row, begin, end;
  bool mine;
};
__device__ TiledRow tiled_row(const int64_t* doc_start, int64_t n_docs, int64_t rows) {
  TiledRow w;
  const int64_t first = doc_start[0];
  w.r0 = first + static_cast<int64_t>(blockIdx.x) * kTileRows;
  w.last = smaller(w.r0 + kTileRows, first + rows) - 1;
  w.row = w.r0 + threadIdx.x;
  const int64_t doc = document_of(doc_start, n_docs, smaller(w.row, w.last));
  w.begin = doc_start[doc];
  w.end = doc_start[doc + 1];
  w.mine = w.row <= w.last && w.end - w.begin >= kLongDocument;
  return w;
}

// Forward: thread = query r of head blockIdx.y; online softmax over its document's keys
// s..r, one at a time.
template <int HS>
__global__ void attention_forward_tiled_kernel(float* out, float* lse, const float* qkv, const int64_t* doc_start,
                                               int64_t n_docs, int64_t rows, int64_t t0, int64_t C, int64_t NH) {
  MICROGPT_STAGED_ROWS(ks, kStageRows);
  MICROGPT_STAGED_ROWS(vs, kStageRows);
  const TiledRow w = tiled_row(doc_start, n_docs, rows);
  if (!any_in_block(w.mine)) return;
  const int64_t h = blockIdx.y, r0 = w.r0, last = w.last, r = w.row, s = w.begin;
  const bool active = w.mine && r - s >= t0;  // (rows of the KV cache are not computed)
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  float q[HS], acc[HS];
#pragma unroll
  for (int d = 0; d < HS; d++) {
    q[d] = active ? qkv[r * 3 * C + h * HS + d] : 0.0f;
    acc[d] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for_each_staged_key<HS>(ks, vs, qkv, C, h, doc_start[document_of(doc_start, n_docs, r0)], last, active, s, r,
                          [&](int64_t j) {
                            const float sc = dot_staged<HS>(q, ks, j) * scale;
                            if (sc > m) {  // a new largest score: what was summed is rescaled to it
                              const float correction = expf(m - sc);  // 0 at the first key (m = -inf)
                              l *= correction;
#pragma unroll
                              for (int d = 0; d < HS; d++) acc[d] *= correction;
                              m = sc;
                            }
                            const float p = expf(sc - m);
                            l += p;
                            add_staged<HS>(acc, p, vs, j);
                          });
  if (!active) return;
#pragma unroll
  for (int d = 0; d < HS; d++) out[r * C + h * HS + d] = acc[d] / l;
  lse[r * NH + h] = m + logf(l);
}

// Backward pass 1: thread = query t; D_t = dout_t . out_t, and dq_t = scale * sum over
// u = s..t of P_tu (dout_t . v_u - D_t) k_u. q_t stays in shared memory (a row a thread),
// dout_t and dq_t in registers.
template <int HS>
__global__ void attention_backward_query_tiled_kernel(float* dqkv, float* D, const float* dout, const float* qkv,
                                                      const float* out, const float* lse, const int64_t* doc_start,
                                                      int64_t n_docs, int64_t rows, int64_t C, int64_t NH) {
  MICROGPT_STAGED_ROWS(qs, kTileRows);
  MICROGPT_STAGED_ROWS(ks, kStageRows);
  MICROGPT_STAGED_ROWS(vs, kStageRows);
  const TiledRow w = tiled_row(doc_start, n_docs, rows);
  if (!any_in_block(w.mine)) return;
  const int64_t h = blockIdx.y, first = doc_start[0], r0 = w.r0, last = w.last, t = w.row, s = w.begin;
  const bool active = w.mine;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  stage<HS>(qs, qkv, 3 * C, h * HS, r0, kTileRows, last);
  float g[HS], dq[HS], Dt = 0.0f;
#pragma unroll
  for (int d = 0; d < HS; d++) {
    g[d] = active ? dout[t * C + h * HS + d] : 0.0f;
    dq[d] = 0.0f;
    if (active) Dt = fmaf(g[d], out[t * C + h * HS + d], Dt);
  }
  const float L = active ? lse[t * NH + h] : 0.0f;
  for_each_staged_key<HS>(ks, vs, qkv, C, h, doc_start[document_of(doc_start, n_docs, r0)], last, active, s, t,
                          [&](int64_t j) {
                            Dot4 sc;
#pragma unroll
                            for (int d = 0; d < HS; d += 4) sc.add(at4<HS>(qs, threadIdx.x, d), at4<HS>(ks, j, d));
                            const float dS = expf(sc.sum() * scale - L) * (dot_staged<HS>(g, vs, j) - Dt);
                            read_staged_again();
                            add_staged<HS>(dq, dS, ks, j);
                            read_staged_again();
                          });
  if (!active) return;
#pragma unroll
  for (int d = 0; d < HS; d++) dqkv[t * 3 * C + h * HS + d] += scale * dq[d];
  D[(t - first) * NH + h] = Dt;
}

// Backward pass 2: thread = key u; dk_u = scale * sum over t = u..e-1 of dS_tu q_t and
// dv_u = sum of P_tu dout_t, e the end of u's document. k_u and v_u stay in shared memory,
// dk_u and dv_u in registers; the queries come 16 at a time with their lse and D.
template <int HS>
__global__ void attention_backward_key_tiled_kernel(float* dqkv, const float* D, const float* dout, const float* qkv,
                                                    const float* lse, const int64_t* doc_start, int64_t n_docs,
                                                    int64_t rows, int64_t C, int64_t NH) {
  MICROGPT_STAGED_ROWS(kv, 2 * kTileRows);
  MICROGPT_STAGED_ROWS(qs, kStageRows);
  MICROGPT_STAGED_ROWS(gs, kStageRows);
  __shared__ float Ls[kStageRows], Ds[kStageRows];
  float* ks = kv;
  float* vs = kv + kTileRows * (HS + 4);
  const TiledRow w = tiled_row(doc_start, n_docs, rows);
  if (!any_in_block(w.mine)) return;
  const int64_t h = blockIdx.y, first = doc_start[0], r0 = w.r0, last = w.last, u = w.row;
  const int64_t e = w.end;  // the row after u's document
  const bool active = w.mine;
  const int64_t end = doc_start[document_of(doc_start, n_docs, last) + 1];  // ... after the last one's
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  stage<HS>(ks, qkv, 3 * C, C + h * HS, r0, kTileRows, last);
  stage<HS>(vs, qkv, 3 * C, 2 * C + h * HS, r0, kTileRows, last);
  float dk[HS], dv[HS];
#pragma unroll
  for (int d = 0; d < HS; d++) dk[d] = dv[d] = 0.0f;
  for (int64_t t0 = r0; t0 < end; t0 += kStageRows) {
    __syncthreads();  // ks and vs are staged; the last stage is read
    stage<HS>(qs, qkv, 3 * C, h * HS, t0, kStageRows, end - 1);
    stage<HS>(gs, dout, C, h * HS, t0, kStageRows, end - 1);
    if (threadIdx.x < kStageRows && t0 + threadIdx.x < end) {
      Ls[threadIdx.x] = lse[(t0 + threadIdx.x) * NH + h];
      Ds[threadIdx.x] = D[(t0 + threadIdx.x - first) * NH + h];
    }
    __syncthreads();
    if (!active) continue;
    const int64_t j1 = smaller(e - 1 - t0, kStageRows - 1);
    for (int64_t j = larger(u - t0, 0); j <= j1; j++) {
      Dot4 sc, dp;
#pragma unroll
      for (int d = 0; d < HS; d += 4) {
        sc.add(at4<HS>(qs, j, d), at4<HS>(ks, threadIdx.x, d));
        dp.add(at4<HS>(gs, j, d), at4<HS>(vs, threadIdx.x, d));
      }
      const float P = expf(sc.sum() * scale - Ls[j]);
      const float dS = P * (dp.sum() - Ds[j]);
      read_staged_again();
      add_staged<HS>(dk, dS, qs, j);
      add_staged<HS>(dv, P, gs, j);
      read_staged_again();
    }
  }
  if (!active) return;
#pragma unroll
  for (int d = 0; d < HS; d++) {
    dqkv[u * 3 * C + C + h * HS + d] += scale * dk[d];
    dqkv[u * 3 * C + 2 * C + h * HS + d] += dv[d];
  }
}

// Launches `kernel<HS>` for the head sizes the tiled kernels take; false for the others.
// clang-format off
#define MICROGPT_TILED_HEADS(HS, CALL) \
  switch (HS) {                        \
    case 4: CALL(4); break;            \
    case 8: CALL(8); break;            \
    case 12: CALL(12); break;          \
    case 16: CALL(16); break;          \
    case 20: CALL(20); break;          \
    case 24: CALL(24); break;          \
    case 28: CALL(28); break;          \
    case 32: CALL(32); break;          \
    case 40: CALL(40); break;          \
    case 48: CALL(48); break;          \
    case 56: CALL(56); break;          \
    case 64: CALL(64); break;          \
    default: return false;             \
  }
// clang-format on

// A block per `per` rows of a head.
dim3 tiled_grid(int64_t rows, int64_t NH, int64_t per = kTileRows) {
  return dim3(static_cast<unsigned>((rows + per - 1) / per), static_cast<unsigned>(NH));
}

bool attention_forward_tiled(float* out, float* lse, const float* qkv, const int64_t* doc_start, int64_t n_docs,
                             int64_t rows, int64_t t0, int64_t C, int64_t NH) {
  if (!g_tiled_attention) return false;
#define MICROGPT_CALL(S)                                                                                           \
  MICROGPT_LAUNCH(attention_forward_tiled_kernel<S>, tiled_grid(rows, NH), kTileRows, 0, out, lse, qkv, doc_start, \
                  n_docs, rows, t0, C, NH)
  MICROGPT_TILED_HEADS(C / NH, MICROGPT_CALL)
#undef MICROGPT_CALL
  launched("attention_forward (tiled)");
  return true;
}

bool attention_backward_tiled(float* dqkv, float* D, const float* dout, const float* qkv, const float* out,
                              const float* lse, const int64_t* doc_start, int64_t n_docs, int64_t rows, int64_t C,
                              int64_t NH) {
  if (!g_tiled_attention) return false;
#define MICROGPT_CALL(S)                                                                                               \
  MICROGPT_LAUNCH(attention_backward_query_tiled_kernel<S>, tiled_grid(rows, NH), kTileRows, 0, dqkv, D, dout, qkv,    \
                  out, lse, doc_start, n_docs, rows, C, NH);                                                           \
  launched("attention_backward (tiled queries)");                                                                      \
  MICROGPT_LAUNCH(attention_backward_key_tiled_kernel<S>, tiled_grid(rows, NH), kTileRows, 0, dqkv, D, dout, qkv, lse, \
                  doc_start, n_docs, rows, C, NH)
  MICROGPT_TILED_HEADS(C / NH, MICROGPT_CALL)
#undef MICROGPT_CALL
  launched("attention_backward (tiled keys)");
  return true;
}

// ---- attention on the tensor cores (--precision tf32) -------------------------------------
//
// A warp (a block of 32 threads) takes 16 consecutive rows of one head. Its products are
// 16 x 16 tiles on the tensor cores in TF32 (wmma: 10-bit mantissas, float sums); the
// rest (the masks, the softmax and its rescaling, the gradients' elementwise parts) its
// lanes do in float, on tiles in shared memory, so that nothing depends on how a
// fragment's elements sit in the lanes. The other side's rows (keys for a query, queries
// for a key) come 16 at a time from the first row of the row's document, so that what a
// row gets depends on its document alone, whatever else the batch holds: what a mask
// leaves out adds exact zeros. A warp whose rows meet two long documents takes each in
// turn. They take the rows of documents of kLongDocument rows or more, for head sizes of
// 16, 32, 48 and 64; the kernels above take the rest. Sums over the other side's tiles
// run in order, so a run repeats to the bit, as with every kernel here.

namespace wmma = nvcuda::wmma;

constexpr int kTc = 16;            // a warp's rows, and the other side's rows a tile
constexpr int kScoreLd = kTc + 8;  // a score tile's rows: 32-byte aligned, as wmma wants

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
using FragAcc = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

template <class F>
__device__ void load_tf32(F& f, const float* p, int ldm) {
  wmma::load_matrix_sync(f, p, static_cast<unsigned>(ldm));
  for (int i = 0; i < f.num_elements; i++) f.x[i] = wmma::__float_to_tf32(f.x[i]);
}
// acc += a (16 x K, rows lda apart) times the transpose of b (16 x K, rows ldb apart)
__device__ void times_transpose(FragAcc& acc, const float* a, int lda, const float* b, int ldb, int K) {
  for (int k = 0; k < K; k += 8) {
    FragA fa;
    FragBCol fb;
    load_tf32(fa, a + k, lda);
    load_tf32(fb, b + k, ldb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}
// acc += a (16 x 16, rows lda apart) times b (16 x 16, rows ldb apart)
__device__ void times(FragAcc& acc, const float* a, int lda, const float* b, int ldb) {
  for (int k = 0; k < kTc; k += 8) {
    FragA fa;
    FragBRow fb;
    load_tf32(fa, a + k, lda);
    load_tf32(fb, b + k * ldb, ldb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}

// Rows `from`..`from`+15 of a slice of HS floats at `offset` in rows `stride` wide, into a
// tile with rows HS + 8 apart; rows outside lo..hi are zeros. The warp together.
template <int HS>
__device__ void stage_tile(float* tile, const float* src, int64_t stride, int64_t offset, int64_t from, int64_t lo,
                           int64_t hi) {
  for (int i = threadIdx.x; i < kTc * HS; i += 32) {
    const int j = i / HS, d = i % HS;
    const int64_t r = from + j;
    tile[j * (HS + 8) + d] = r >= lo && r <= hi ? src[r * stride + offset + d] : 0.0f;
  }
}

// The warp's rows: w0..w1 (16 from the launch's first row, fewer at its end), and the
// documents they meet.
struct TcRows {
  int64_t first, w0, w1, d0, d1;
};
__device__ TcRows tc_rows(const int64_t* doc_start, int64_t n_docs, int64_t rows) {
  TcRows w;
  w.first = doc_start[0];
  w.w0 = w.first + static_cast<int64_t>(blockIdx.x) * kTc;
  w.w1 = smaller(w.w0 + kTc, w.first + rows) - 1;
  w.d0 = document_of(doc_start, n_docs, w.w0);
  w.d1 = document_of(doc_start, n_docs, w.w1);
  return w;
}

// Forward: for each query r of the warp's rows in a document [b, e), an online softmax
// over the key tiles from b, the scores S = q K^T and the sum P V on the tensor cores.
template <int HS>
__global__ void attention_forward_tc_kernel(float* out, float* lse, const float* qkv, const int64_t* doc_start,
                                            int64_t n_docs, int64_t rows, int64_t C, int64_t NH) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // (TF32 tensor cores: compute capability 8.0 and later; never launched below)
#else
  constexpr int LD = HS + 8;
  __shared__ __align__(32) float smem[4 * kTc * LD + kTc * kScoreLd];
  __shared__ float Ms[kTc], Ls[kTc], Cs[kTc];
  float* Qs = smem;
  float* Ks = Qs + kTc * LD;  // (after the scores, the tile's P V)
  float* Vs = Ks + kTc * LD;
  float* Os = Vs + kTc * LD;
  float* Ss = Os + kTc * LD;
  const TcRows w = tc_rows(doc_start, n_docs, rows);
  const int64_t h = blockIdx.y;
  const int lane = threadIdx.x;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  for (int64_t doc = w.d0; doc <= w.d1; doc++) {
    const int64_t b = doc_start[doc], e = doc_start[doc + 1];
    if (e - b < kLongDocument) continue;
    const int64_t lo = larger(w.w0, b), hi = smaller(w.w1, e - 1);  // the document's rows here
    __syncwarp();                                                   // the last document's tiles are read
    stage_tile<HS>(Qs, qkv, 3 * C, h * HS, w.w0, lo, hi);
    for (int i = lane; i < kTc * HS; i += 32) Os[(i / HS) * LD + i % HS] = 0.0f;
    if (lane < kTc) {
      Ms[lane] = -INFINITY;
      Ls[lane] = 0.0f;
    }
    for (int64_t u0 = b; u0 <= hi; u0 += kTc) {
      __syncwarp();
      stage_tile<HS>(Ks, qkv, 3 * C, C + h * HS, u0, b, hi);
      stage_tile<HS>(Vs, qkv, 3 * C, 2 * C + h * HS, u0, b, hi);
      __syncwarp();
      FragAcc s;
      wmma::fill_fragment(s, 0.0f);
      times_transpose(s, Qs, LD, Ks, LD, HS);
      wmma::store_matrix_sync(Ss, s, kScoreLd, wmma::mem_row_major);
      __syncwarp();
      if (lane < kTc) {  // row `lane`: its probabilities, and the rescaling of what it summed
        const int64_t r = w.w0 + lane;
        const bool in = r >= lo && r <= hi;
        float* srow = Ss + lane * kScoreLd;
        const float m = Ms[lane];
        float mt = m;
        for (int j = 0; j < kTc; j++) {
          if (in && u0 + j <= r) mt = fmaxf(mt, srow[j] * scale);
        }
        const float correction = mt == -INFINITY ? 1.0f : expf(m - mt);  // 0 at the first tile
        float sum = 0.0f;
        for (int j = 0; j < kTc; j++) {
          const float p = in && u0 + j <= r ? expf(srow[j] * scale - mt) : 0.0f;
          srow[j] = p;
          sum += p;
        }
        Ms[lane] = mt;
        Ls[lane] = Ls[lane] * correction + sum;
        Cs[lane] = correction;
      }
      __syncwarp();
#pragma unroll
      for (int n = 0; n < HS; n += kTc) {
        FragAcc pv;
        wmma::fill_fragment(pv, 0.0f);
        times(pv, Ss, kScoreLd, Vs + n, LD);
        wmma::store_matrix_sync(Ks + n, pv, LD, wmma::mem_row_major);
      }
      __syncwarp();
      for (int i = lane; i < kTc * HS; i += 32) {
        const int j = i / HS, d = i % HS;
        Os[j * LD + d] = fmaf(Os[j * LD + d], Cs[j], Ks[j * LD + d]);
      }
    }
    __syncwarp();
    for (int i = lane; i < kTc * HS; i += 32) {
      const int j = i / HS, d = i % HS;
      const int64_t r = w.w0 + j;
      if (r >= lo && r <= hi) out[r * C + h * HS + d] = Os[j * LD + d] / Ls[j];
    }
    if (lane < kTc && w.w0 + lane >= lo && w.w0 + lane <= hi) lse[(w.w0 + lane) * NH + h] = Ms[lane] + logf(Ls[lane]);
  }
#endif
}

// Backward, pass 1, a warp per 16 queries: D_t = dout_t . out_t, and dq_t = scale * sum
// over the key tiles from b of dS K, with dS = P (dout V^T - D) and P from the forward's
// lse; the products on the tensor cores.
template <int HS>
__global__ void attention_backward_query_tc_kernel(float* dqkv, float* D, const float* dout, const float* qkv,
                                                   const float* out, const float* lse, const int64_t* doc_start,
                                                   int64_t n_docs, int64_t rows, int64_t C, int64_t NH) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();
#else
  constexpr int LD = HS + 8;
  __shared__ __align__(32) float smem[4 * kTc * LD + 2 * kTc * kScoreLd];
  __shared__ float Lq[kTc], Dq[kTc];
  float* Qs = smem;
  float* Gs = Qs + kTc * LD;
  float* Ks = Gs + kTc * LD;
  float* Vs = Ks + kTc * LD;  // (at the end, dq)
  float* Ss = Vs + kTc * LD;  // scores, then dS
  float* Ps = Ss + kTc * kScoreLd;
  const TcRows w = tc_rows(doc_start, n_docs, rows);
  const int64_t h = blockIdx.y;
  const int lane = threadIdx.x;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  for (int64_t doc = w.d0; doc <= w.d1; doc++) {
    const int64_t b = doc_start[doc], e = doc_start[doc + 1];
    if (e - b < kLongDocument) continue;
    const int64_t lo = larger(w.w0, b), hi = smaller(w.w1, e - 1);
    __syncwarp();
    stage_tile<HS>(Qs, qkv, 3 * C, h * HS, w.w0, lo, hi);
    stage_tile<HS>(Gs, dout, C, h * HS, w.w0, lo, hi);
    if (lane < kTc) {
      const int64_t t = w.w0 + lane;
      float Dt = 0.0f, L = 0.0f;
      if (t >= lo && t <= hi) {
        for (int d = 0; d < HS; d++) Dt = fmaf(dout[t * C + h * HS + d], out[t * C + h * HS + d], Dt);
        L = lse[t * NH + h];
        D[(t - w.first) * NH + h] = Dt;
      }
      Dq[lane] = Dt;
      Lq[lane] = L;
    }
    FragAcc dq[HS / kTc];
#pragma unroll
    for (int n = 0; n < HS / kTc; n++) wmma::fill_fragment(dq[n], 0.0f);
    for (int64_t u0 = b; u0 <= hi; u0 += kTc) {
      __syncwarp();
      stage_tile<HS>(Ks, qkv, 3 * C, C + h * HS, u0, b, hi);
      stage_tile<HS>(Vs, qkv, 3 * C, 2 * C + h * HS, u0, b, hi);
      __syncwarp();
      FragAcc s, dp;
      wmma::fill_fragment(s, 0.0f);
      wmma::fill_fragment(dp, 0.0f);
      times_transpose(s, Qs, LD, Ks, LD, HS);
      times_transpose(dp, Gs, LD, Vs, LD, HS);
      wmma::store_matrix_sync(Ss, s, kScoreLd, wmma::mem_row_major);
      wmma::store_matrix_sync(Ps, dp, kScoreLd, wmma::mem_row_major);
      __syncwarp();
      for (int i = lane; i < kTc * kTc; i += 32) {
        const int j = i / kTc, k = i % kTc;
        const int64_t t = w.w0 + j, u = u0 + k;
        const bool in = t >= lo && t <= hi && u <= t;
        Ss[j * kScoreLd + k] = in ? expf(Ss[j * kScoreLd + k] * scale - Lq[j]) * (Ps[j * kScoreLd + k] - Dq[j]) : 0.0f;
      }
      __syncwarp();
#pragma unroll
      for (int n = 0; n < HS / kTc; n++) times(dq[n], Ss, kScoreLd, Ks + n * kTc, LD);
    }
    __syncwarp();
#pragma unroll
    for (int n = 0; n < HS / kTc; n++) wmma::store_matrix_sync(Vs + n * kTc, dq[n], LD, wmma::mem_row_major);
    __syncwarp();
    for (int i = lane; i < kTc * HS; i += 32) {
      const int j = i / HS, d = i % HS;
      const int64_t t = w.w0 + j;
      if (t >= lo && t <= hi) dqkv[t * 3 * C + h * HS + d] += scale * Vs[j * LD + d];
    }
  }
#endif
}

// Backward, pass 2, a warp per 16 keys: dk_u = scale * sum over the query tiles (from b,
// the first that holds one of the warp's keys) of dS^T Q, and dv_u = sum of P^T dout.
template <int HS>
__global__ void attention_backward_key_tc_kernel(float* dqkv, const float* D, const float* dout, const float* qkv,
                                                 const float* lse, const int64_t* doc_start, int64_t n_docs,
                                                 int64_t rows, int64_t C, int64_t NH) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();
#else
  constexpr int LD = HS + 8;
  __shared__ __align__(32) float smem[4 * kTc * LD + 2 * kTc * kScoreLd];
  __shared__ float Lq[kTc], Dq[kTc];
  float* Ks = smem;
  float* Vs = Ks + kTc * LD;
  float* Qs = Vs + kTc * LD;        // (at the end, dk)
  float* Gs = Qs + kTc * LD;        // (at the end, dv)
  float* St = Gs + kTc * LD;        // scores of the keys (rows) against the queries, then P^T
  float* Pt = St + kTc * kScoreLd;  // dP^T, then dS^T
  const TcRows w = tc_rows(doc_start, n_docs, rows);
  const int64_t h = blockIdx.y;
  const int lane = threadIdx.x;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  for (int64_t doc = w.d0; doc <= w.d1; doc++) {
    const int64_t b = doc_start[doc], e = doc_start[doc + 1];
    if (e - b < kLongDocument) continue;
    const int64_t lo = larger(w.w0, b), hi = smaller(w.w1, e - 1);
    __syncwarp();
    stage_tile<HS>(Ks, qkv, 3 * C, C + h * HS, w.w0, lo, hi);
    stage_tile<HS>(Vs, qkv, 3 * C, 2 * C + h * HS, w.w0, lo, hi);
    FragAcc dk[HS / kTc], dv[HS / kTc];
#pragma unroll
    for (int n = 0; n < HS / kTc; n++) {
      wmma::fill_fragment(dk[n], 0.0f);
      wmma::fill_fragment(dv[n], 0.0f);
    }
    for (int64_t t0 = b + (lo - b) / kTc * kTc; t0 < e; t0 += kTc) {
      __syncwarp();
      stage_tile<HS>(Qs, qkv, 3 * C, h * HS, t0, b, e - 1);
      stage_tile<HS>(Gs, dout, C, h * HS, t0, b, e - 1);
      if (lane < kTc) {
        const int64_t t = t0 + lane;
        Lq[lane] = t < e ? lse[t * NH + h] : 0.0f;
        Dq[lane] = t < e ? D[(t - w.first) * NH + h] : 0.0f;
      }
      __syncwarp();
      FragAcc s, dp;
      wmma::fill_fragment(s, 0.0f);
      wmma::fill_fragment(dp, 0.0f);
      times_transpose(s, Ks, LD, Qs, LD, HS);
      times_transpose(dp, Vs, LD, Gs, LD, HS);
      wmma::store_matrix_sync(St, s, kScoreLd, wmma::mem_row_major);
      wmma::store_matrix_sync(Pt, dp, kScoreLd, wmma::mem_row_major);
      __syncwarp();
      for (int i = lane; i < kTc * kTc; i += 32) {
        const int j = i / kTc, k = i % kTc;  // key j, query k
        const int64_t u = w.w0 + j, t = t0 + k;
        const bool in = u >= lo && u <= hi && t >= u && t < e;
        const float P = in ? expf(St[j * kScoreLd + k] * scale - Lq[k]) : 0.0f;
        St[j * kScoreLd + k] = P;
        Pt[j * kScoreLd + k] = in ? P * (Pt[j * kScoreLd + k] - Dq[k]) : 0.0f;
      }
      __syncwarp();
#pragma unroll
      for (int n = 0; n < HS / kTc; n++) {
        times(dv[n], St, kScoreLd, Gs + n * kTc, LD);
        times(dk[n], Pt, kScoreLd, Qs + n * kTc, LD);
      }
    }
    __syncwarp();
#pragma unroll
    for (int n = 0; n < HS / kTc; n++) {
      wmma::store_matrix_sync(Qs + n * kTc, dk[n], LD, wmma::mem_row_major);
      wmma::store_matrix_sync(Gs + n * kTc, dv[n], LD, wmma::mem_row_major);
    }
    __syncwarp();
    for (int i = lane; i < kTc * HS; i += 32) {
      const int j = i / HS, d = i % HS;
      const int64_t u = w.w0 + j;
      if (u < lo || u > hi) continue;
      dqkv[u * 3 * C + C + h * HS + d] += scale * Qs[j * LD + d];
      dqkv[u * 3 * C + 2 * C + h * HS + d] += Gs[j * LD + d];
    }
  }
#endif
}

// Launches `kernel<HS>` for the head sizes the tensor-core kernels take; false for the others.
// clang-format off
#define MICROGPT_TC_HEADS(HS, CALL) \
  switch (HS) {                     \
    case 16: CALL(16); break;       \
    case 32: CALL(32); break;       \
    case 48: CALL(48); break;       \
    case 64: CALL(64); break;       \
    default: return false;          \
  }
// clang-format on

// (not for the rows of a KV cache, t0 > 0: sampling takes the tiled kernels, in float32)
bool attention_forward_tc(float* out, float* lse, const float* qkv, const int64_t* doc_start, int64_t n_docs,
                          int64_t rows, int64_t t0, int64_t C, int64_t NH) {
  if (!g_tensor_attention || t0 != 0) return false;
#define MICROGPT_CALL(S)                                                                                              \
  MICROGPT_LAUNCH(attention_forward_tc_kernel<S>, tiled_grid(rows, NH, kTc), 32, 0, out, lse, qkv, doc_start, n_docs, \
                  rows, C, NH)
  MICROGPT_TC_HEADS(C / NH, MICROGPT_CALL)
#undef MICROGPT_CALL
  launched("attention_forward (tensor cores)");
  return true;
}

bool attention_backward_tc(float* dqkv, float* D, const float* dout, const float* qkv, const float* out,
                           const float* lse, const int64_t* doc_start, int64_t n_docs, int64_t rows, int64_t C,
                           int64_t NH) {
  if (!g_tensor_attention) return false;
#define MICROGPT_CALL(S)                                                                                            \
  MICROGPT_LAUNCH(attention_backward_query_tc_kernel<S>, tiled_grid(rows, NH, kTc), 32, 0, dqkv, D, dout, qkv, out, \
                  lse, doc_start, n_docs, rows, C, NH);                                                             \
  launched("attention_backward (tensor cores, queries)");                                                           \
  MICROGPT_LAUNCH(attention_backward_key_tc_kernel<S>, tiled_grid(rows, NH, kTc), 32, 0, dqkv, D, dout, qkv, lse,   \
                  doc_start, n_docs, rows, C, NH)
  MICROGPT_TC_HEADS(C / NH, MICROGPT_CALL)
#undef MICROGPT_CALL
  launched("attention_backward (tensor cores, keys)");
  return true;
}

// kTf32: the tensor-core kernels for the long documents where they take the head size
template <bool kTf32>
void attention_forward(float* out, float* lse, const float* qkv, const int64_t* doc_start, int64_t n_docs, int64_t rows,
                       int64_t t0, int64_t C, int64_t NH, float*) {
  if (rows == 0) return;
  // the tensor-core or tiled kernels for the long documents, if they take this head size;
  // the warp kernels for the rest
  const bool tiled = (kTf32 && attention_forward_tc(out, lse, qkv, doc_start, n_docs, rows, t0, C, NH)) ||
                     attention_forward_tiled(out, lse, qkv, doc_start, n_docs, rows, t0, C, NH);
  const int64_t HS = C / NH;
  const int warps = attention_warps(2 * HS);
  if (warps == 0) fail("attention_forward (a head too wide for shared memory)", cudaErrorInvalidValue);
  const size_t shared = static_cast<size_t>(warps) * 2 * static_cast<size_t>(HS) * sizeof(float);
  MICROGPT_LAUNCH(attention_forward_kernel, blocks_for(rows * NH, warps), warps * 32, shared, out, lse, qkv, doc_start,
                  n_docs, rows, t0, C, NH, warps, tiled ? kLongDocument : INT64_MAX);
  launched("attention_forward");
}

// Pass 1, a warp per (query t, head): D_t = dout_t . out_t (into D, rows x NH from the
// first row), and dq_t = scale * sum over u <= t of P_tu (dout_t . v_u - D_t) k_u.
__global__ void attention_backward_query_kernel(float* dqkv, float* D, const float* dout, const float* qkv,
                                                const float* out, const float* lse, const int64_t* doc_start,
                                                int64_t n_docs, int64_t rows, int64_t C, int64_t NH, int warps,
                                                int64_t tiled_from) {
  MICROGPT_DYNAMIC_SHARED(float, shared);
  const int64_t HS = C / NH;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* q = shared + warp * 3 * HS;
  float* g = q + HS;
  float* dq = g + HS;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  const int64_t first = doc_start[0];
  for (int64_t item = blockIdx.x * static_cast<int64_t>(warps) + warp; item < rows * NH;
       item += static_cast<int64_t>(gridDim.x) * warps) {
    const int64_t t = first + item / NH, h = item % NH;
    const int64_t doc = document_of(doc_start, n_docs, t);
    const int64_t s = doc_start[doc];
    if (doc_start[doc + 1] - s >= tiled_from) continue;  // the tiled kernels take it
    float dsum = 0.0f;
    for (int64_t d = lane; d < HS; d += 32) {
      q[d] = qkv[t * 3 * C + h * HS + d];
      g[d] = dout[t * C + h * HS + d];
      dq[d] = 0.0f;
      dsum += g[d] * out[t * C + h * HS + d];
    }
    const float Dt = warp_sum(dsum);
    __syncwarp();
    const float L = lse[t * NH + h];
    for (int64_t u0 = s; u0 <= t; u0 += 32) {
      const int64_t u = u0 + lane;
      float dS = 0.0f;
      if (u <= t) {
        const float* k = qkv + u * 3 * C + C + h * HS;
        const float* v = k + C;
        float sc = 0.0f, dp = 0.0f;
        for (int64_t d = 0; d < HS; d++) {
          sc = fmaf(q[d], k[d], sc);
          dp = fmaf(g[d], v[d], dp);
        }
        dS = expf(sc * scale - L) * (dp - Dt);
      }
      const int n = static_cast<int>(min(static_cast<int64_t>(32), t - u0 + 1));
      for (int j = 0; j < n; j++) {
        const float dSj = __shfl_sync(kFull, dS, j);
        const float* k = qkv + (u0 + j) * 3 * C + C + h * HS;
        for (int64_t d = lane; d < HS; d += 32) dq[d] = fmaf(dSj, k[d], dq[d]);
      }
    }
    for (int64_t d = lane; d < HS; d += 32) dqkv[t * 3 * C + h * HS + d] += scale * dq[d];
    if (lane == 0) D[(t - first) * NH + h] = Dt;
    __syncwarp();
  }
}

// Pass 2, a warp per (key u, head): dk_u = scale * sum over t >= u of dS_tu q_t and
// dv_u = sum over t >= u of P_tu dout_t, t within u's document.
__global__ void attention_backward_key_kernel(float* dqkv, const float* D, const float* dout, const float* qkv,
                                              const float* lse, const int64_t* doc_start, int64_t n_docs, int64_t rows,
                                              int64_t C, int64_t NH, int warps, int64_t tiled_from) {
  MICROGPT_DYNAMIC_SHARED(float, shared);
  const int64_t HS = C / NH;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* k = shared + warp * 4 * HS;
  float* v = k + HS;
  float* dk = v + HS;
  float* dv = dk + HS;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  const int64_t first = doc_start[0];
  for (int64_t item = blockIdx.x * static_cast<int64_t>(warps) + warp; item < rows * NH;
       item += static_cast<int64_t>(gridDim.x) * warps) {
    const int64_t u = first + item / NH, h = item % NH;
    const int64_t doc = document_of(doc_start, n_docs, u);
    const int64_t e = doc_start[doc + 1];            // the row after the document
    if (e - doc_start[doc] >= tiled_from) continue;  // the tiled kernels take it
    for (int64_t d = lane; d < HS; d += 32) {
      k[d] = qkv[u * 3 * C + C + h * HS + d];
      v[d] = qkv[u * 3 * C + 2 * C + h * HS + d];
      dk[d] = 0.0f;
      dv[d] = 0.0f;
    }
    __syncwarp();
    for (int64_t t0 = u; t0 < e; t0 += 32) {
      const int64_t t = t0 + lane;
      float P = 0.0f, dS = 0.0f;
      if (t < e) {
        const float* q = qkv + t * 3 * C + h * HS;
        const float* g = dout + t * C + h * HS;
        float sc = 0.0f, dp = 0.0f;
        for (int64_t d = 0; d < HS; d++) {
          sc = fmaf(q[d], k[d], sc);
          dp = fmaf(g[d], v[d], dp);
        }
        P = expf(sc * scale - lse[t * NH + h]);
        dS = P * (dp - D[(t - first) * NH + h]);
      }
      const int n = static_cast<int>(min(static_cast<int64_t>(32), e - t0));
      for (int j = 0; j < n; j++) {
        const float Pj = __shfl_sync(kFull, P, j), dSj = __shfl_sync(kFull, dS, j);
        const float* q = qkv + (t0 + j) * 3 * C + h * HS;
        const float* g = dout + (t0 + j) * C + h * HS;
        for (int64_t d = lane; d < HS; d += 32) {
          dk[d] = fmaf(dSj, q[d], dk[d]);
          dv[d] = fmaf(Pj, g[d], dv[d]);
        }
      }
    }
    for (int64_t d = lane; d < HS; d += 32) {
      dqkv[u * 3 * C + C + h * HS + d] += scale * dk[d];
      dqkv[u * 3 * C + 2 * C + h * HS + d] += dv[d];
    }
    __syncwarp();
  }
}

template <bool kTf32>
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        const int64_t* doc_start, int64_t n_docs, int64_t rows, int64_t C, int64_t NH, float*) {
  if (rows == 0) return;
  const int64_t HS = C / NH;
  float* D = workspace(rows * NH);
  const bool tiled = (kTf32 && attention_backward_tc(dqkv, D, dout, qkv, out, lse, doc_start, n_docs, rows, C, NH)) ||
                     attention_backward_tiled(dqkv, D, dout, qkv, out, lse, doc_start, n_docs, rows, C, NH);
  const int64_t tiled_from = tiled ? kLongDocument : INT64_MAX;
  const int wq = attention_warps(3 * HS), wk = attention_warps(4 * HS);
  if (wq == 0 || wk == 0) fail("attention_backward (a head too wide for shared memory)", cudaErrorInvalidValue);
  MICROGPT_LAUNCH(attention_backward_query_kernel, blocks_for(rows * NH, wq), wq * 32,
                  static_cast<size_t>(wq) * 3 * static_cast<size_t>(HS) * sizeof(float), dqkv, D, dout, qkv, out, lse,
                  doc_start, n_docs, rows, C, NH, wq, tiled_from);
  launched("attention_backward (queries)");
  MICROGPT_LAUNCH(attention_backward_key_kernel, blocks_for(rows * NH, wk), wk * 32,
                  static_cast<size_t>(wk) * 4 * static_cast<size_t>(HS) * sizeof(float), dqkv, D, dout, qkv, lse,
                  doc_start, n_docs, rows, C, NH, wk, tiled_from);
  launched("attention_backward (keys)");
}

// ---- elementwise ----------------------------------------------------------------------

__global__ void residual_kernel(float* out, const float* a, const float* b, int64_t n) {
  MICROGPT_GRID_LOOP(i, n) out[i] = a[i] + b[i];
}
void residual_forward(float* out, const float* a, const float* b, int64_t n) {
  if (n == 0) return;
  MICROGPT_LAUNCH(residual_kernel, blocks_for(n), kThreads, 0, out, a, b, n);
  launched("residual_forward");
}

__global__ void relu_kernel(float* out, const float* inp, int64_t n) {
  MICROGPT_GRID_LOOP(i, n) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}
void relu_forward(float* out, const float* inp, int64_t n) {
  if (n == 0) return;
  MICROGPT_LAUNCH(relu_kernel, blocks_for(n), kThreads, 0, out, inp, n);
  launched("relu_forward");
}

__global__ void relu_backward_kernel(float* dinp, const float* dout, const float* inp, int64_t n) {
  MICROGPT_GRID_LOOP(i, n) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}
void relu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  if (n == 0) return;
  MICROGPT_LAUNCH(relu_backward_kernel, blocks_for(n), kThreads, 0, dinp, dout, inp, n);
  launched("relu_backward");
}

// ---- cross-entropy --------------------------------------------------------------------

// A block per document, a warp per row; each warp adds its rows' losses in order and the
// block adds the warps' in order, so the sum repeats to the bit.
constexpr int kLossWarps = 8;

__global__ void crossentropy_forward_kernel(float* probs, double* losses, const float* logits, const int32_t* targets,
                                            const int64_t* doc_start, int64_t n_docs, int64_t V) {
  __shared__ double partial[kLossWarps];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t doc = blockIdx.x; doc < n_docs; doc += gridDim.x) {
    double total = 0.0;
    for (int64_t n = doc_start[doc] + warp; n < doc_start[doc + 1]; n += kLossWarps) {
      const float* l = logits + n * V;
      float* p = probs + n * V;
      float mx = -INFINITY;
      for (int64_t i = lane; i < V; i += 32) mx = fmaxf(mx, l[i]);
      mx = warp_max(mx);
      float sum = 0.0f;
      for (int64_t i = lane; i < V; i += 32) {
        const float e = expf(l[i] - mx);
        p[i] = e;
        sum += e;
      }
      sum = warp_sum(sum);
      const float inv = 1.0f / sum;
      for (int64_t i = lane; i < V; i += 32) p[i] *= inv;
      total += static_cast<double>(logf(sum)) + static_cast<double>(mx) - static_cast<double>(l[targets[n]]);
    }
    if (lane == 0) partial[warp] = total;
    __syncthreads();
    if (threadIdx.x == 0) {
      double sum = 0.0;
      for (int w = 0; w < kLossWarps; w++) sum += partial[w];
      losses[doc] = sum;
    }
    __syncthreads();  // before the next document overwrites partial
  }
}

void crossentropy_forward(float* probs, double* losses, const float* logits, const int32_t* targets,
                          const int64_t* doc_start, int64_t n_docs, int64_t, int64_t V) {
  if (n_docs == 0) return;
  MICROGPT_LAUNCH(crossentropy_forward_kernel, blocks_for(n_docs, 1), kLossWarps * 32, 0, probs, losses, logits,
                  targets, doc_start, n_docs, V);
  launched("crossentropy_forward");
}

__global__ void crossentropy_backward_kernel(float* dlogits, const float* probs, const int32_t* targets, float dloss,
                                             int64_t N, int64_t V) {
  MICROGPT_GRID_LOOP(i, N * V) {
    float d = dlogits[i] + dloss * probs[i];
    if (i % V == targets[i / V]) d -= dloss;
    dlogits[i] = d;
  }
}

void crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, float dloss, int64_t N,
                           int64_t V) {
  if (N * V == 0) return;
  MICROGPT_LAUNCH(crossentropy_backward_kernel, blocks_for(N * V), kThreads, 0, dlogits, probs, targets, dloss, N, V);
  launched("crossentropy_backward");
}

// ---- dropout: the CPU kernels' mask (fast/dropout_mask.h) ------------------------------

template <bool kAccumulate>
__global__ void dropout_kernel(float* out, const float* inp, int64_t row0, int64_t N, int64_t C, uint64_t threshold,
                               float scale, uint64_t mixed_key) {
  MICROGPT_GRID_LOOP(i, N * C) {
    const int64_t r = i / C, c = i % C;
    const bool keep = dropout::keeps(dropout::row_base(mixed_key, row0 + r, C), c, threshold);
    const float x = keep ? inp[i] * scale : 0.0f;
    if constexpr (kAccumulate) {
      out[i] += x;
    } else {
      out[i] = x;
    }
  }
}

template <bool kAccumulate>
void dropout_apply(float* out, const float* inp, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  if (N * C == 0) return;
  MICROGPT_LAUNCH(dropout_kernel<kAccumulate>, blocks_for(N * C), kThreads, 0, out, inp, row0, N, C,
                  dropout::threshold(p), 1.0f / (1.0f - p), dropout::mix64(key));
  launched("dropout");
}
void dropout_forward(float* out, const float* inp, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  dropout_apply<false>(out, inp, row0, N, C, p, key);
}
void dropout_backward(float* dinp, const float* dout, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  dropout_apply<true>(dinp, dout, row0, N, C, p, key);
}

// ---- Adam and the average ---------------------------------------------------------------

constexpr int kMaxGrads = 8;
struct GradPointers {
  float* p[kMaxGrads];
};
unsigned long long* g_nonfinite = nullptr;  // device counter for adam_update

__global__ void adam_kernel(float* params, GradPointers grads, int n_grads, float* m, float* v, int64_t n, float lr,
                            float beta1, float beta2, float eps, float bias1, float bias2, float decay,
                            unsigned long long* nonfinite) {
  MICROGPT_GRID_LOOP(i, n) {
    float g = 0.0f;
    // unrolled, so that grads.p is indexed by constants: a run-time index would copy the
    // pointers into each thread's local memory, which made this ten times slower
#pragma unroll
    for (int k = 0; k < kMaxGrads; k++) {
      if (k < n_grads) {
        g += grads.p[k][i];
        grads.p[k][i] = 0.0f;
      }
    }
    if (!isfinite(g)) atomicAdd(nonfinite, 1ULL);  // an integer count: its order does not matter
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = decay * params[i] - lr * (mi / bias1) / (sqrtf(vi / bias2) + eps);
  }
}

int64_t adam_update(float* params, float* const* grads, int64_t n_grads, float* m, float* v, int64_t n, float lr,
                    float beta1, float beta2, float eps, float bias1, float bias2, float decay) {
  if (n_grads < 1 || n_grads > kMaxGrads) fail("adam_update (1 to 8 gradient buffers)", cudaErrorInvalidValue);
  if (n == 0) return 0;
  GradPointers g{};
  for (int64_t k = 0; k < n_grads; k++) g.p[k] = grads[k];
  check(cudaMemsetAsync(g_nonfinite, 0, sizeof(unsigned long long), 0), "adam_update");
  MICROGPT_LAUNCH(adam_kernel, blocks_for(n), kThreads, 0, params, g, static_cast<int>(n_grads), m, v, n, lr, beta1,
                  beta2, eps, bias1, bias2, decay, g_nonfinite);
  launched("adam_update");
  unsigned long long bad = 0;
  download(&bad, g_nonfinite, sizeof bad);
  return static_cast<int64_t>(bad);
}

__global__ void average_kernel(float* avg, const float* params, int64_t n, float decay) {
  MICROGPT_GRID_LOOP(i, n) avg[i] = decay * avg[i] + (1.0f - decay) * params[i];
}
void average_update(float* avg, const float* params, int64_t n, float decay) {
  if (n == 0) return;
  MICROGPT_LAUNCH(average_kernel, blocks_for(n), kThreads, 0, avg, params, n, decay);
  launched("average_update");
}

void put(char* why, size_t len, const std::string& what) {
  if (len == 0) return;
  const size_t n = std::min(len - 1, what.size());
  std::memcpy(why, what.data(), n);
  why[n] = '\0';
}

Kernels g_table, g_table_tf32;
std::string g_error;
bool g_ready = false;

// Starts the first device and fills the table; "" or why it cannot.
std::string start() {
#ifndef MICROGPT_CUDA_EMULATION
  // CUDA's runtime says "driver version insufficient" when there is no driver at all
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (driver == nullptr) return "no NVIDIA driver here (libcuda.so.1 is not installed)";
  dlclose(driver);
#endif
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice) {
    return std::string("no usable NVIDIA GPU here (CUDA: ") + cudaGetErrorString(e) + ")";
  }
  if (e != cudaSuccess) return std::string("CUDA could not start: ") + cudaGetErrorString(e);
  if (count == 0) return "no NVIDIA GPU here";
  cudaError_t s = cudaSetDevice(0);
  if (s == cudaSuccess) s = cudaFree(nullptr);  // creates the context now, not inside a kernel call
  if (s == cudaSuccess) s = cudaMalloc(reinterpret_cast<void**>(&g_nonfinite), sizeof(unsigned long long));
  if (s != cudaSuccess) return std::string("the GPU would not start: ") + cudaGetErrorString(s);

  const char* gemm = std::getenv("MICROGPT_CUDA_GEMM");
  const std::string choice = gemm != nullptr ? gemm : "";
  if (!choice.empty() && choice != "own" && choice != "cublas") {
    return "MICROGPT_CUDA_GEMM=" + choice + ": unknown (accepted: cublas, own)";
  }
  if (choice != "own") {
    const std::string blas = load_blas();
    if (blas.empty()) {
      g_use_blas = true;
    } else if (choice == "cublas") {
      return "MICROGPT_CUDA_GEMM=cublas: " + blas;
    }
  }
  const char* attention = std::getenv("MICROGPT_CUDA_ATTENTION");
  const std::string kind = attention != nullptr ? attention : "";
  if (!kind.empty() && kind != "tensor" && kind != "tiled" && kind != "warp") {
    return "MICROGPT_CUDA_ATTENTION=" + kind + ": unknown (accepted: tensor, tiled, warp)";
  }
  g_tiled_attention = kind != "warp";
  g_tensor_attention = kind != "warp" && kind != "tiled";
  // (assigned one by one: nvcc is given C++17, which lacks designated initializers)
  g_table.name = g_use_blas ? "cuda-cublas" : "cuda-tiled";
  g_table.on_device = true;
  g_table.allocate = allocate;
  g_table.release = release;
  g_table.upload = upload;
  g_table.download = download;
  g_table.copy = copy;
  g_table.zero = zero;
  g_table.encoder_forward = encoder_forward;
  g_table.encoder_backward = encoder_backward;
  g_table.rmsnorm_forward = rmsnorm_forward;
  g_table.rmsnorm_backward = rmsnorm_backward;
  g_table.matmul_forward = matmul_forward<false>;
  g_table.matmul_backward = matmul_backward<false>;
  g_table.attention_forward = attention_forward<false>;
  g_table.attention_backward = attention_backward<false>;
  g_table.residual_forward = residual_forward;
  g_table.relu_forward = relu_forward;
  g_table.relu_backward = relu_backward;
  g_table.crossentropy_forward = crossentropy_forward;
  g_table.crossentropy_backward = crossentropy_backward;
  g_table.dropout_forward = dropout_forward;
  g_table.dropout_backward = dropout_backward;
  g_table.adam_update = adam_update;
  g_table.average_update = average_update;
  g_table_tf32 = g_table;  // the same but for the products
  g_table_tf32.name = "cuda-cublas-tf32";
  g_table_tf32.matmul_forward = matmul_forward<true>;
  g_table_tf32.matmul_backward = matmul_backward<true>;
  g_table_tf32.attention_forward = attention_forward<true>;
  g_table_tf32.attention_backward = attention_backward<true>;
  return "";
}

}  // namespace

}  // namespace microgpt::cuda

extern "C" int microgpt_cuda_kernels(const microgpt::Kernels** kernels, const char* precision, char* why,
                                     size_t len) {
  using namespace microgpt::cuda;
  const std::string p = precision != nullptr ? precision : "fp32";
  if (p != "fp32" && p != "tf32") {
    put(why, len, "unknown precision '" + p + "' (accepted: fp32, tf32)");
    return -1;
  }
  if (!g_ready && g_error.empty()) {
    g_error = start();
    g_ready = g_error.empty();
  }
  if (!g_ready) {
    put(why, len, g_error);
    return -1;
  }
  if (p == "tf32" && !g_use_blas) {
    put(why, len, "--precision tf32 runs the products on cuBLAS, which this GPU engine does not have (" + load_blas() +
                       ")");
    return -1;
  }
  *kernels = p == "tf32" ? &g_table_tf32 : &g_table;
  return 0;
}

extern "C" int microgpt_cuda_device(char* name, size_t name_len, int64_t* free_bytes, int64_t* total_bytes, char* why,
                                    size_t len) {
  using namespace microgpt::cuda;
  if (!g_ready) {
    put(why, len, g_error.empty() ? "the GPU was not started" : g_error);
    return -1;
  }
  cudaDeviceProp prop{};
  size_t free_b = 0, total_b = 0;
  cudaError_t e = cudaGetDeviceProperties(&prop, 0);
  if (e == cudaSuccess) e = cudaMemGetInfo(&free_b, &total_b);
  if (e != cudaSuccess) {
    put(why, len, std::string("CUDA: ") + cudaGetErrorString(e));
    return -1;
  }
  put(name, name_len, prop.name);
  *free_bytes = static_cast<int64_t>(free_b);
  *total_bytes = static_cast<int64_t>(total_b);
  return 0;
}
