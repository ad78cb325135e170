// The fast engine's kernels: one pair of free functions <op>_forward / <op>_backward
// per layer of the model, over flat float32 row-major buffers, in the manner of
// llm.c's train_gpt2.c. Outputs come first (with what backward needs, such as rstd),
// then inputs, then weights, then sizes. Backward functions ADD into their gradient
// outputs (+=); zeroing is the caller's job.
//
// Size letters, used everywhere in the fast engine:
//   N   tokens of a batch: its documents' positions packed one after another (no
//       padding, so no masks), a document being T consecutive rows
//   T   positions of one document (at most block_size)
//   C   channels (n_embd); OC output channels of a linear layer; V vocabulary size
//   NH  heads; HS = C / NH head size
//
// A backend is a table of these functions (Kernels); the CPU one is compiled once per
// instruction set of the target (AVX-512, AVX2+FMA and plain code on x86-64; NEON and
// plain code on AArch64), and cpu_kernels() picks the best the processor has. The model
// driver (fast_model.cpp) calls nothing else: it reaches the buffers only through the
// table's memory functions, so a GPU backend (gpu/kernels_cuda.cu) is another table with
// the same signatures, whose buffers live in device memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace microgpt {

struct Kernels {
  std::string name;  // "cpu-avx512", "cpu-avx2", "cpu-neon", "cpu-generic", "cuda"

  // The memory every other function's pointers point into: the host's for the CPU
  // kernels (on_device false: the driver may also read and write it directly), a GPU's
  // for a device backend, which the driver reaches only through these.
  bool on_device;
  // `bytes` bytes aligned to 64, not initialised; nullptr when there is not enough memory
  void* (*allocate)(int64_t bytes);
  void (*release)(void* p);
  // host memory to the table's memory, and back
  void (*upload)(void* to, const void* from, int64_t bytes);
  void (*download)(void* to, const void* from, int64_t bytes);
  // to (n) = from; p (n) = 0
  void (*copy)(float* to, const float* from, int64_t n);
  void (*zero)(float* p, int64_t n);

  // out (N,C) = wte[tokens[n]] + wpe[positions[n]];  wte (V,C), wpe (block_size,C)
  void (*encoder_forward)(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                          const float* wpe, int64_t N, int64_t C);
  // dwte[tokens[n]] += dout[n]; dwpe[positions[n]] += dout[n]; dwte has V rows, dwpe P
  void (*encoder_backward)(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                           const int32_t* positions, int64_t N, int64_t C, int64_t V, int64_t P);

  // out (N,C) = inp * rstd, rstd (N) = (mean(inp^2) + 1e-5)^-0.5 per row
  void (*rmsnorm_forward)(float* out, float* rstd, const float* inp, int64_t N, int64_t C);
  // dinp (N,C) += d/dinp of out = inp * rstd(inp), given dout (N,C)
  void (*rmsnorm_backward)(float* dinp, const float* dout, const float* inp, const float* rstd, int64_t N,
                           int64_t C);

  // out (N,OC) = inp (N,C) @ weight (OC,C)^T; scratch holds OC*C floats
  void (*matmul_forward)(float* out, const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC,
                         float* scratch);
  // dinp (N,C) += dout (N,OC) @ weight (OC,C); dweight (OC,C) += dout^T @ inp (N,C)
  void (*matmul_backward)(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                          int64_t N, int64_t C, int64_t OC);

  // Attention and the loss take documents: document d of n_docs is rows doc_start[d] ..
  // doc_start[d+1] - 1 of the buffers (doc_start: n_docs + 1 row numbers, in the
  // table's memory; rows = doc_start[n_docs] - doc_start[0], which the caller knows).
  //
  // For each document of T rows, qkv's rows hold q | k | v (3C wide). For its queries
  // t = t0..T-1 (t0 > 0 when earlier rows are a KV cache) and head h: out row t, head h's
  // slice = sum over u <= t of softmax_u(q_t.k_u / sqrt(HS)) v_u's slice, and lse [t][h]
  // (NH per row) = log sum over u <= t of exp(q_t.k_u / sqrt(HS)), all backward needs to
  // recompute the weights: no (T,T) matrix is kept. scratch: attention_scratch(longest T, C).
  void (*attention_forward)(float* out, float* lse, const float* qkv, const int64_t* doc_start, int64_t n_docs,
                            int64_t rows, int64_t t0, int64_t C, int64_t NH, float* scratch);
  // dqkv += gradient of the above for t0 = 0, given dout and forward's out and lse
  void (*attention_backward)(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                             const int64_t* doc_start, int64_t n_docs, int64_t rows, int64_t C, int64_t NH,
                             float* scratch);

  // out (n) = a + b
  void (*residual_forward)(float* out, const float* a, const float* b, int64_t n);
  // out (n) = max(inp, 0)
  void (*relu_forward)(float* out, const float* inp, int64_t n);
  // dinp (n) += dout * (inp > 0)
  void (*relu_backward)(float* dinp, const float* dout, const float* inp, int64_t n);

  // probs = softmax(logits) per row (V wide); losses[d] (written, in double) = the sum
  // over document d's rows of -log softmax(logits)[target], targets one per row
  void (*crossentropy_forward)(float* probs, double* losses, const float* logits, const int32_t* targets,
                               const int64_t* doc_start, int64_t n_docs, int64_t rows, int64_t V);
  // dlogits (N,V) += (probs - onehot(targets)) * dloss, the gradient of dloss * sum of losses
  void (*crossentropy_backward)(float* dlogits, const float* probs, const int32_t* targets, float dloss, int64_t N,
                                int64_t V);

  // Dropout with a mask that is a pure function of (key, row, column): row r of these
  // N rows is row row0 + r of the batch. out (N,C) = inp * keep / (1 - p), keep being 0
  // with probability p. out may be inp. The backward pass, with the same key and rows:
  // dinp (N,C) += dout * keep / (1 - p).
  void (*dropout_forward)(float* out, const float* inp, int64_t row0, int64_t N, int64_t C, float p, uint64_t key);
  void (*dropout_backward)(float* dinp, const float* dout, int64_t row0, int64_t N, int64_t C, float p,
                           uint64_t key);

  // Adam on n parameters: g = sum of the n_grads gradient buffers (then zeroed),
  // m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
  // p = decay * p - lr * (m / bias1) / (sqrt(v / bias2) + eps), decay = 1 - lr * weight decay
  // (AdamW's decoupled weight decay; 1: none, and then p is what plain Adam gives, to the bit).
  // Returns how many of the summed gradients were infinite or NaN (0 when all is well).
  int64_t (*adam_update)(float* params, float* const* grads, int64_t n_grads, float* m, float* v, int64_t n, float lr,
                         float beta1, float beta2, float eps, float bias1, float bias2, float decay);
  // avg (n) = decay * avg + (1 - decay) * params: the running average of the weights
  void (*average_update)(float* avg, const float* params, int64_t n, float decay);
};

// Floats of scratch the attention kernels use for a document of T positions: a head's
// keys and values transposed and a tile of 16 queries' weights and their gradients
// (linear in T; the same bound serves every instruction set).
constexpr int64_t attention_scratch(int64_t T, int64_t C) { return T * (2 * C + 32); }

// The kernel sets this build has, best first: avx512, avx2, generic on x86-64; neon,
// generic on AArch64; generic elsewhere.
const std::vector<std::string>& cpu_kernel_names();
// The best CPU kernels this processor runs. MICROGPT_KERNELS=<a name above>
// (environment) forces a choice, for tests and benchmarks; a name this build lacks is an
// error that lists the names it has.
const Kernels& cpu_kernels();
const Kernels* cpu_kernels_named(const std::string& isa);  // nullptr if this build or this CPU lacks it

// The widest head the GPU kernels take: their attention keeps four of a head's vectors
// in a warp's share of 48 KiB of shared memory.
constexpr int64_t kGpuMaxHeadSize = 3072;

// The GPU kernels (--engine gpu): the table of the CUDA module, libmicrogpt_cuda beside
// the executable, loaded on first use (fast/kernels_gpu.cpp). Throws a usage error of
// one line when this build has no CUDA, the module will not load, or there is no usable
// GPU. precision: "fp32", or "tf32" for the matrix products on the tensor cores.
const Kernels& gpu_kernels(const std::string& precision = "fp32");
struct GpuDevice {
  std::string name;
  int64_t free_bytes = 0, total_bytes = 0;
};
// The GPU those kernels run on, and its memory now (after gpu_kernels()).
GpuDevice gpu_device();

}  // namespace microgpt
