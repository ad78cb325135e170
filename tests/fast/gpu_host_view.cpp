#include "fast/gpu_host_view.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace microgpt::testing {

namespace {

const Kernels* g_gpu = nullptr;   // the real table, its pointers the GPU's
const Kernels* g_tf32 = nullptr;  // the --precision tf32 table

// The device copies of one call's buffers. A host buffer given twice (an output that is
// also an input) has one copy. The outputs go back to the host when the call ends.
class Call {
 public:
  Call() { entries_.reserve(16); }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;
  ~Call() {
    for (const Entry& e : entries_) {
      if (e.output) g_gpu->download(const_cast<void*>(e.host), e.device, e.bytes);
    }
    for (const Entry& e : entries_) g_gpu->release(e.device);
  }
  template <class T>
  T* in(const T* host, int64_t n) {
    return static_cast<T*>(map(host, n * static_cast<int64_t>(sizeof(T)), false));
  }
  template <class T>
  T* out(T* host, int64_t n) {
    return static_cast<T*>(map(host, n * static_cast<int64_t>(sizeof(T)), true));
  }

 private:
  struct Entry {
    const void* host;
    void* device;
    int64_t bytes;
    bool output;
  };
  void* map(const void* host, int64_t bytes, bool output) {
    if (host == nullptr) return nullptr;
    for (Entry& e : entries_) {
      if (e.host == host) {
        if (e.bytes != bytes) throw std::logic_error("gpu_host_view: one buffer given with two sizes");
        e.output = e.output || output;
        return e.device;
      }
    }
    void* d = g_gpu->allocate(bytes);
    if (d == nullptr) throw std::runtime_error("gpu_host_view: out of device memory");
    g_gpu->upload(d, host, bytes);  // outputs too: backward kernels add to them
    entries_.push_back({host, d, bytes, output});
    return d;
  }
  std::vector<Entry> entries_;
};

int64_t rows_used(const int32_t* ids, int64_t n) {
  int64_t rows = 0;
  for (int64_t i = 0; i < n; i++) rows = std::max<int64_t>(rows, int64_t{ids[i]} + 1);
  return rows;
}

void encoder_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte, const float* wpe,
                     int64_t N, int64_t C) {
  Call c;
  const int64_t V = rows_used(tokens, N), P = rows_used(positions, N);
  g_gpu->encoder_forward(c.out(out, N * C), c.in(tokens, N), c.in(positions, N), c.in(wte, V * C), c.in(wpe, P * C), N,
                         C);
}
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, const int32_t* positions,
                      int64_t N, int64_t C, int64_t V, int64_t P) {
  Call c;
  g_gpu->encoder_backward(c.out(dwte, V * C), c.out(dwpe, P * C), c.in(dout, N * C), c.in(tokens, N),
                          c.in(positions, N), N, C, V, P);
}
void rmsnorm_forward(float* out, float* rstd, const float* inp, int64_t N, int64_t C) {
  Call c;
  g_gpu->rmsnorm_forward(c.out(out, N * C), c.out(rstd, N), c.in(inp, N * C), N, C);
}
void rmsnorm_backward(float* dinp, const float* dout, const float* inp, const float* rstd, int64_t N, int64_t C) {
  Call c;
  g_gpu->rmsnorm_backward(c.out(dinp, N * C), c.in(dout, N * C), c.in(inp, N * C), c.in(rstd, N), N, C);
}
void matmul_forward(float* out, const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC, float*) {
  Call c;
  g_gpu->matmul_forward(c.out(out, N * OC), c.in(inp, N * C), c.in(weight, OC * C), N, C, OC, nullptr);
}
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int64_t N,
                     int64_t C, int64_t OC) {
  Call c;
  g_gpu->matmul_backward(c.out(dinp, N * C), c.out(dweight, OC * C), c.in(dout, N * OC), c.in(inp, N * C),
                         c.in(weight, OC * C), N, C, OC);
}
// The host's scratch is not the kernels' to use here: a fresh device one, and the host's
// left as the test made it (its guards checked). Buffers are addressed from row 0 to the
// last document's end.
void attention_forward_with(const Kernels* k, float* out, float* lse, const float* qkv, const int64_t* doc_start,
                            int64_t n_docs, int64_t rows, int64_t t0, int64_t C, int64_t NH) {
  Call c;
  const int64_t R = doc_start[n_docs];
  std::vector<float> scratch(static_cast<size_t>(attention_scratch(R, C)));
  k->attention_forward(c.out(out, R * C), c.out(lse, R * NH), c.in(qkv, R * 3 * C), c.in(doc_start, n_docs + 1), n_docs,
                       rows, t0, C, NH, c.in(scratch.data(), static_cast<int64_t>(scratch.size())));
}
void attention_backward_with(const Kernels* k, float* dqkv, const float* dout, const float* qkv, const float* out,
                             const float* lse, const int64_t* doc_start, int64_t n_docs, int64_t rows, int64_t C,
                             int64_t NH) {
  Call c;
  const int64_t R = doc_start[n_docs];
  std::vector<float> scratch(static_cast<size_t>(attention_scratch(R, C)));
  k->attention_backward(c.out(dqkv, R * 3 * C), c.in(dout, R * C), c.in(qkv, R * 3 * C), c.in(out, R * C),
                        c.in(lse, R * NH), c.in(doc_start, n_docs + 1), n_docs, rows, C, NH,
                        c.in(scratch.data(), static_cast<int64_t>(scratch.size())));
}
void attention_forward(float* out, float* lse, const float* qkv, const int64_t* doc_start, int64_t n_docs, int64_t rows,
                       int64_t t0, int64_t C, int64_t NH, float*) {
  attention_forward_with(g_gpu, out, lse, qkv, doc_start, n_docs, rows, t0, C, NH);
}
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        const int64_t* doc_start, int64_t n_docs, int64_t rows, int64_t C, int64_t NH, float*) {
  attention_backward_with(g_gpu, dqkv, dout, qkv, out, lse, doc_start, n_docs, rows, C, NH);
}
void attention_forward_tf32(float* out, float* lse, const float* qkv, const int64_t* doc_start, int64_t n_docs,
                            int64_t rows, int64_t t0, int64_t C, int64_t NH, float*) {
  attention_forward_with(g_tf32, out, lse, qkv, doc_start, n_docs, rows, t0, C, NH);
}
void attention_backward_tf32(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                             const int64_t* doc_start, int64_t n_docs, int64_t rows, int64_t C, int64_t NH, float*) {
  attention_backward_with(g_tf32, dqkv, dout, qkv, out, lse, doc_start, n_docs, rows, C, NH);
}
void residual_forward(float* out, const float* a, const float* b, int64_t n) {
  Call c;
  g_gpu->residual_forward(c.out(out, n), c.in(a, n), c.in(b, n), n);
}
void relu_forward(float* out, const float* inp, int64_t n) {
  Call c;
  g_gpu->relu_forward(c.out(out, n), c.in(inp, n), n);
}
void relu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  Call c;
  g_gpu->relu_backward(c.out(dinp, n), c.in(dout, n), c.in(inp, n), n);
}
void crossentropy_forward(float* probs, double* losses, const float* logits, const int32_t* targets,
                          const int64_t* doc_start, int64_t n_docs, int64_t rows, int64_t V) {
  Call c;
  const int64_t R = doc_start[n_docs];
  g_gpu->crossentropy_forward(c.out(probs, R * V), c.out(losses, n_docs), c.in(logits, R * V), c.in(targets, R),
                              c.in(doc_start, n_docs + 1), n_docs, rows, V);
}
void crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, float dloss, int64_t N,
                           int64_t V) {
  Call c;
  g_gpu->crossentropy_backward(c.out(dlogits, N * V), c.in(probs, N * V), c.in(targets, N), dloss, N, V);
}
void dropout_forward(float* out, const float* inp, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  Call c;
  g_gpu->dropout_forward(c.out(out, N * C), c.in(inp, N * C), row0, N, C, p, key);
}
void dropout_backward(float* dinp, const float* dout, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  Call c;
  g_gpu->dropout_backward(c.out(dinp, N * C), c.in(dout, N * C), row0, N, C, p, key);
}
int64_t adam_update(float* params, float* const* grads, int64_t n_grads, float* m, float* v, int64_t n, float lr,
                    float beta1, float beta2, float eps, float bias1, float bias2, float decay) {
  Call c;
  std::vector<float*> g;
  for (int64_t k = 0; k < n_grads; k++) g.push_back(c.out(grads[k], n));
  return g_gpu->adam_update(c.out(params, n), g.data(), n_grads, c.out(m, n), c.out(v, n), n, lr, beta1, beta2, eps,
                            bias1, bias2, decay);
}
void average_update(float* avg, const float* params, int64_t n, float decay) {
  Call c;
  g_gpu->average_update(c.out(avg, n), c.in(params, n), n, decay);
}

}  // namespace

const Kernels* gpu_kernels_on_host(std::string* why) {
  static const Kernels* view = nullptr;
  static std::string failure;
  static bool tried = false;
  if (!tried) {
    tried = true;
    g_gpu = gpu_backend(&failure);
    if (g_gpu != nullptr) {
      static Kernels k = *cpu_kernels_named("generic");  // the host's memory functions
      k.name = g_gpu->name;
      k.encoder_forward = encoder_forward;
      k.encoder_backward = encoder_backward;
      k.rmsnorm_forward = rmsnorm_forward;
      k.rmsnorm_backward = rmsnorm_backward;
      k.matmul_forward = matmul_forward;
      k.matmul_backward = matmul_backward;
      k.attention_forward = attention_forward;
      k.attention_backward = attention_backward;
      k.residual_forward = residual_forward;
      k.relu_forward = relu_forward;
      k.relu_backward = relu_backward;
      k.crossentropy_forward = crossentropy_forward;
      k.crossentropy_backward = crossentropy_backward;
      k.dropout_forward = dropout_forward;
      k.dropout_backward = dropout_backward;
      k.adam_update = adam_update;
      k.average_update = average_update;
      view = &k;
    }
  }
  if (view == nullptr && why != nullptr) *why = failure;
  return view;
}

const Kernels* gpu_tf32_attention_on_host(std::string* why) {
  static Kernels k;
  static const Kernels* view = nullptr;
  static std::string failure;
  static bool tried = false;
  if (!tried) {
    tried = true;
    const Kernels* base = gpu_kernels_on_host(&failure);
    if (base != nullptr) g_tf32 = gpu_backend_tf32(&failure);
    if (g_tf32 != nullptr) {
      k = *base;
      k.name = g_tf32->name;
      k.attention_forward = attention_forward_tf32;
      k.attention_backward = attention_backward_tf32;
      view = &k;
    }
  }
  if (view == nullptr && why != nullptr) *why = failure;
  return view;
}

}  // namespace microgpt::testing
