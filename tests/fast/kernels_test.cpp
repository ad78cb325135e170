// The fast engine's kernels, checked in the manner of ggml's test-backend-ops: a table
// of cases per op, each with a naive double-precision forward. For every instruction
// set this CPU runs, each case's forward is compared with the naive one, its backward
// with central finite differences of L = sum(R * out) for a fixed random R (every
// element of every input perturbed), and its outputs and gradients with the generic
// build's. Buffers carry guard zones (a kernel must not write outside its outputs or
// use more scratch than documented) and start as NaN (a kernel must write every output
// it owns, and backward must not read what forward leaves unwritten, such as
// scratch); gradient buffers start non-zero (backward adds). The last tests run
// the same checks on deliberately wrong kernels and expect every one to be caught.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "fast/fast_model.h"
#include "fast/gpu_host_view.h"
#include "fast/kernels.h"
#include "fast_test_util.h"

namespace microgpt {
namespace {

using testing::TestRng;

// ---------------------------------------------------------------------------------
// Buffers

constexpr int64_t kGuard = 16;  // floats either side: one AVX-512 vector
constexpr float kGuardValue = -12345.6789f;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// A float buffer whose data is 64-byte aligned, between two guard zones.
class Buf {
 public:
  explicit Buf(int64_t n, float fill = kNaN) : n_(n), mem_(n + 2 * kGuard, false) {
    std::fill(mem_.data(), mem_.data() + n + 2 * kGuard, kGuardValue);
    std::fill(data(), data() + n, fill);
  }
  explicit Buf(const std::vector<float>& v) : Buf(static_cast<int64_t>(v.size())) {
    std::copy(v.begin(), v.end(), data());
  }
  float* data() { return mem_.data() + kGuard; }
  const float* data() const { return mem_.data() + kGuard; }
  int64_t size() const { return n_; }
  void check_guards(const std::string& what) const {
    for (int64_t i = 0; i < kGuard; i++) {
      if (!(mem_.data()[i] == kGuardValue) || !(mem_.data()[kGuard + n_ + i] == kGuardValue)) {
        throw std::runtime_error(what + ": a kernel wrote outside the buffer");
      }
    }
  }
  // The contents as doubles, after checking the guards.
  std::vector<double> values(const std::string& what) const {
    check_guards(what);
    return std::vector<double>(data(), data() + n_);
  }
  void check_equals(const std::vector<float>& v, const std::string& what) const {
    check_guards(what);
    if (std::memcmp(data(), v.data(), v.size() * sizeof(float)) != 0) {
      throw std::runtime_error(what + ": a kernel changed one of its inputs");
    }
  }

 private:
  int64_t n_;
  FloatBuffer mem_;
};

// A gradient buffer holding random values before backward adds into it.
class GradBuf {
 public:
  GradBuf(int64_t n, uint64_t seed) : buf_(n) {
    TestRng rng(seed);
    for (int64_t i = 0; i < n; i++) prior_.push_back(rng.grid(-0.25, 0.25));
    std::copy(prior_.begin(), prior_.end(), buf_.data());
  }
  float* data() { return buf_.data(); }
  // What backward added.
  std::vector<double> added(const std::string& what) const {
    std::vector<double> v = buf_.values(what);
    for (size_t i = 0; i < v.size(); i++) v[i] -= prior_[i];
    return v;
  }

 private:
  Buf buf_;
  std::vector<float> prior_;
};

// Read-only inputs of a kernel, copied into guarded buffers and checked afterwards.
class InBufs {
 public:
  explicit InBufs(const std::vector<std::vector<float>>& in) : src_(in) {
    for (const auto& v : in) bufs_.emplace_back(v);
  }
  float* operator[](size_t i) { return bufs_[i].data(); }
  void check(const std::string& what) const {
    for (size_t i = 0; i < bufs_.size(); i++) bufs_[i].check_equals(src_[i], what + " input " + std::to_string(i));
  }

 private:
  const std::vector<std::vector<float>>& src_;
  std::vector<Buf> bufs_;
};

std::vector<float> random_grid(TestRng& rng, int64_t n, double a, double b) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = rng.grid(a, b);
  return v;
}

// ---------------------------------------------------------------------------------
// Cases

using Inputs = std::vector<std::vector<float>>;
struct Output {
  std::string name;
  std::vector<double> v;
};
using Outputs = std::vector<Output>;
using Grads = std::vector<std::vector<double>>;

struct OpCase {
  std::string op;    // "attention"
  std::string name;  // "attention C=48 NH=4 T=5"
  std::vector<std::string> input_names;
  Inputs inputs;  // what the gradient check perturbs
  std::function<Outputs(const Kernels&, const Inputs&)> forward;
  std::function<Outputs(const Inputs&)> reference;  // naive, in double precision
  double forward_tol = 1e-5;                        // relative to each output's largest value
  // The scalar whose gradient backward gives, from forward's outputs; and backward
  // (both null for an op without a backward kernel).
  std::function<double(const Outputs&)> objective;
  std::function<Grads(const Kernels&, const Inputs&)> backward;
  double fd_step = 0x1p-7;
  double fd_tol = 1e-3;  // max |fd - analytic| / max |analytic|, per input
  int64_t fd_sample = 0;  // > 0: finite differences for this many elements of each input, chosen at random
  // Optional: the gradients from a naive double-precision backward, compared with every
  // element of backward's (relative to the largest, within grad_tol).
  std::function<Grads(const Inputs&)> reference_backward;
  double grad_tol = 1e-5;
};

// L = sum(R * out) over the output named `name`.
std::function<double(const Outputs&)> weighted_sum(std::vector<float> R, std::string name) {
  return [R = std::move(R), name = std::move(name)](const Outputs& outs) {
    for (const Output& o : outs) {
      if (o.name != name) continue;
      double s = 0.0;
      for (size_t i = 0; i < R.size(); i++) s += static_cast<double>(R[i]) * o.v[i];
      return s;
    }
    throw std::logic_error("no output " + name);
  };
}

std::string fmt(const char* f, auto... args) {
  char buf[200];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

OpCase encoder_case(int64_t N, int64_t C, int64_t V, int64_t BS, uint64_t seed) {
  TestRng rng(seed);
  std::vector<int32_t> tokens(static_cast<size_t>(N)), positions(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; n++) {
    tokens[static_cast<size_t>(n)] = rng.below(V);
    positions[static_cast<size_t>(n)] = rng.below(BS);
  }
  // a repeated (token, position): backward must add both rows' gradients
  tokens.back() = tokens.front();
  positions.back() = positions.front();
  OpCase c;
  c.op = "encoder";
  c.name = fmt("encoder N=%lld C=%lld V=%lld", (long long)N, (long long)C, (long long)V);
  c.input_names = {"wte", "wpe"};
  c.inputs = {random_grid(rng, V * C, -1, 1), random_grid(rng, BS * C, -1, 1)};
  c.forward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf out(N * C);
    k.encoder_forward(out.data(), tokens.data(), positions.data(), ins[0], ins[1], N, C);
    ins.check("encoder_forward");
    return Outputs{{"out", out.values("encoder_forward out")}};
  };
  c.reference = [=](const Inputs& in) {
    std::vector<double> out(static_cast<size_t>(N * C));
    for (int64_t n = 0; n < N; n++) {
      for (int64_t i = 0; i < C; i++) {
        out[static_cast<size_t>(n * C + i)] = static_cast<double>(in[0][static_cast<size_t>(tokens[n] * C + i)]) +
                                              in[1][static_cast<size_t>(positions[n] * C + i)];
      }
    }
    return Outputs{{"out", out}};
  };
  c.forward_tol = 1e-7;
  const std::vector<float> R = random_grid(rng, N * C, -1, 1);
  c.objective = weighted_sum(R, "out");
  c.backward = [=](const Kernels& k, const Inputs& in) {
    Buf dout(R);
    GradBuf dwte(V * C, 1), dwpe(BS * C, 2);
    k.encoder_backward(dwte.data(), dwpe.data(), dout.data(), tokens.data(), positions.data(), N, C, V, BS);
    dout.check_equals(R, "encoder_backward dout");
    (void)in;
    return Grads{dwte.added("encoder_backward dwte"), dwpe.added("encoder_backward dwpe")};
  };
  c.fd_tol = 1e-4;  // linear: finite differences are exact but for rounding
  if (N * C > 6000) c.fd_sample = 48;
  return c;
}

OpCase rmsnorm_case(int64_t N, int64_t C, double scale, uint64_t seed) {
  TestRng rng(seed);
  OpCase c;
  c.op = "rmsnorm";
  c.name = fmt("rmsnorm N=%lld C=%lld scale=%g", (long long)N, (long long)C, scale);
  c.input_names = {"inp"};
  c.inputs = {random_grid(rng, N * C, -scale, scale)};
  c.forward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf out(N * C), rstd(N);
    k.rmsnorm_forward(out.data(), rstd.data(), ins[0], N, C);
    ins.check("rmsnorm_forward");
    return Outputs{{"out", out.values("rmsnorm_forward out")}, {"rstd", rstd.values("rmsnorm_forward rstd")}};
  };
  c.reference = [=](const Inputs& in) {
    std::vector<double> out(static_cast<size_t>(N * C)), rstd(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; n++) {
      double ms = 0.0;
      for (int64_t i = 0; i < C; i++) ms += static_cast<double>(in[0][n * C + i]) * in[0][n * C + i];
      const double r = 1.0 / std::sqrt(ms / static_cast<double>(C) + 1e-5);
      rstd[static_cast<size_t>(n)] = r;
      for (int64_t i = 0; i < C; i++) out[static_cast<size_t>(n * C + i)] = in[0][n * C + i] * r;
    }
    return Outputs{{"out", out}, {"rstd", rstd}};
  };
  const std::vector<float> R = random_grid(rng, N * C, -1, 1);
  c.objective = weighted_sum(R, "out");
  c.backward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf out(N * C), rstd(N), dout(R);
    k.rmsnorm_forward(out.data(), rstd.data(), ins[0], N, C);
    GradBuf dinp(N * C, 3);
    k.rmsnorm_backward(dinp.data(), dout.data(), ins[0], rstd.data(), N, C);
    ins.check("rmsnorm_backward");
    dout.check_equals(R, "rmsnorm_backward dout");
    return Grads{dinp.added("rmsnorm_backward dinp")};
  };
  // small rows: the function bends on the scale of sqrt(mean(x^2) + 1e-5)
  c.fd_step = scale < 0.5 ? 0x1p-10 : 0x1p-7;
  return c;
}

OpCase matmul_case(int64_t N, int64_t C, int64_t OC, uint64_t seed) {
  TestRng rng(seed);
  OpCase c;
  c.op = "matmul";
  c.name = fmt("matmul N=%lld C=%lld OC=%lld", (long long)N, (long long)C, (long long)OC);
  c.input_names = {"inp", "weight"};
  c.inputs = {random_grid(rng, N * C, -1, 1), random_grid(rng, OC * C, -0.5, 0.5)};
  c.forward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf out(N * OC), scratch(OC * C);
    k.matmul_forward(out.data(), ins[0], ins[1], N, C, OC, scratch.data());
    ins.check("matmul_forward");
    scratch.check_guards("matmul_forward scratch");
    return Outputs{{"out", out.values("matmul_forward out")}};
  };
  c.reference = [=](const Inputs& in) {
    std::vector<double> out(static_cast<size_t>(N * OC));
    for (int64_t n = 0; n < N; n++) {
      for (int64_t o = 0; o < OC; o++) {
        double s = 0.0;
        for (int64_t i = 0; i < C; i++) s += static_cast<double>(in[0][n * C + i]) * in[1][o * C + i];
        out[static_cast<size_t>(n * OC + o)] = s;
      }
    }
    return Outputs{{"out", out}};
  };
  const std::vector<float> R = random_grid(rng, N * OC, -1, 1);
  c.objective = weighted_sum(R, "out");
  c.backward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf dout(R);
    GradBuf dinp(N * C, 4), dweight(OC * C, 5);
    k.matmul_backward(dinp.data(), dweight.data(), dout.data(), ins[0], ins[1], N, C, OC);
    ins.check("matmul_backward");
    dout.check_equals(R, "matmul_backward dout");
    return Grads{dinp.added("matmul_backward dinp"), dweight.added("matmul_backward dweight")};
  };
  c.fd_tol = 1e-4;
  return c;
}

// Naive attention of one document in double: out (T,C), the weights att (T,T,NH) below
// the diagonal, lse (T,NH) the log of each softmax's normaliser.
struct AttentionRef {
  std::vector<double> out, att, lse;
};
AttentionRef attention_reference(const std::vector<float>& qkv, int64_t T, int64_t C, int64_t NH) {
  const int64_t HS = C / NH;
  AttentionRef r;
  r.out.assign(static_cast<size_t>(T * C), 0.0);
  r.att.assign(static_cast<size_t>(T * T * NH), 0.0);
  r.lse.assign(static_cast<size_t>(T * NH), 0.0);
  for (int64_t h = 0; h < NH; h++) {
    for (int64_t t = 0; t < T; t++) {
      std::vector<double> s(static_cast<size_t>(t + 1));
      double mx = -INFINITY;
      for (int64_t u = 0; u <= t; u++) {
        double d = 0.0;
        for (int64_t j = 0; j < HS; j++) {
          d += static_cast<double>(qkv[t * 3 * C + h * HS + j]) * qkv[u * 3 * C + C + h * HS + j];
        }
        s[static_cast<size_t>(u)] = d / std::sqrt(static_cast<double>(HS));
        mx = std::max(mx, s[static_cast<size_t>(u)]);
      }
      double sum = 0.0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      r.lse[static_cast<size_t>(t * NH + h)] = mx + std::log(sum);
      for (int64_t u = 0; u <= t; u++) {
        const double a = s[static_cast<size_t>(u)] / sum;
        r.att[static_cast<size_t>((t * T + u) * NH + h)] = a;
        for (int64_t j = 0; j < HS; j++) {
          r.out[static_cast<size_t>(t * C + h * HS + j)] += a * qkv[u * 3 * C + 2 * C + h * HS + j];
        }
      }
    }
  }
  return r;
}

// The gradient of sum(dout * out) with respect to qkv, from the textbook formulas in
// double: the plain kernel that keeps every weight, which the tiled one must equal.
std::vector<double> attention_reference_backward(const std::vector<float>& qkv, const std::vector<float>& dout,
                                                 int64_t T, int64_t C, int64_t NH) {
  const int64_t HS = C / NH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  const AttentionRef f = attention_reference(qkv, T, C, NH);
  std::vector<double> d(static_cast<size_t>(T * 3 * C), 0.0);
  for (int64_t h = 0; h < NH; h++) {
    for (int64_t t = 0; t < T; t++) {
      std::vector<double> datt(static_cast<size_t>(t + 1));
      double weighted = 0.0;
      for (int64_t u = 0; u <= t; u++) {
        const double a = f.att[static_cast<size_t>((t * T + u) * NH + h)];
        double x = 0.0;
        for (int64_t j = 0; j < HS; j++) {
          const double dy = dout[t * C + h * HS + j];
          x += dy * qkv[u * 3 * C + 2 * C + h * HS + j];
          d[static_cast<size_t>(u * 3 * C + 2 * C + h * HS + j)] += a * dy;
        }
        datt[static_cast<size_t>(u)] = x;
        weighted += a * x;
      }
      for (int64_t u = 0; u <= t; u++) {
        const double ds = f.att[static_cast<size_t>((t * T + u) * NH + h)] * (datt[static_cast<size_t>(u)] - weighted) * scale;
        for (int64_t j = 0; j < HS; j++) {
          d[static_cast<size_t>(t * 3 * C + h * HS + j)] += ds * qkv[u * 3 * C + C + h * HS + j];
          d[static_cast<size_t>(u * 3 * C + C + h * HS + j)] += ds * qkv[t * 3 * C + h * HS + j];
        }
      }
    }
  }
  return d;
}

// The kernels take attention and the loss over a batch of documents (fast/kernels.h);
// these run one document of T rows, and turn a function of one document into a kernel
// of a batch, for the deliberately wrong kernels below.
void attention_forward_1(const Kernels& k, float* out, float* lse, const float* qkv, int64_t T, int64_t t0, int64_t C,
                         int64_t NH, float* scratch) {
  const int64_t doc[2] = {0, T};
  k.attention_forward(out, lse, qkv, doc, 1, T, t0, C, NH, scratch);
}
void attention_backward_1(const Kernels& k, float* dqkv, const float* dout, const float* qkv, const float* out,
                          const float* lse, int64_t T, int64_t C, int64_t NH, float* scratch) {
  const int64_t doc[2] = {0, T};
  k.attention_backward(dqkv, dout, qkv, out, lse, doc, 1, T, C, NH, scratch);
}
double crossentropy_forward_1(const Kernels& k, float* probs, const float* logits, const int32_t* targets, int64_t N,
                              int64_t V) {
  const int64_t doc[2] = {0, N};
  double loss = NAN;
  k.crossentropy_forward(probs, &loss, logits, targets, doc, 1, N, V);
  return loss;
}
using AttentionForwardOfOne = void (*)(float*, float*, const float*, int64_t, int64_t, int64_t, int64_t, float*);
using AttentionBackwardOfOne = void (*)(float*, const float*, const float*, const float*, const float*, int64_t,
                                        int64_t, int64_t, float*);
template <AttentionForwardOfOne F>
void each_document_forward(float* out, float* lse, const float* qkv, const int64_t* doc_start, int64_t n_docs, int64_t,
                           int64_t t0, int64_t C, int64_t NH, float* scratch) {
  for (int64_t d = 0; d < n_docs; d++) {
    const int64_t s = doc_start[d];
    F(out + s * C, lse + s * NH, qkv + s * 3 * C, doc_start[d + 1] - s, t0, C, NH, scratch);
  }
}
template <AttentionBackwardOfOne F>
void each_document_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                            const int64_t* doc_start, int64_t n_docs, int64_t, int64_t C, int64_t NH, float* scratch) {
  for (int64_t d = 0; d < n_docs; d++) {
    const int64_t s = doc_start[d];
    F(dqkv + s * 3 * C, dout + s * C, qkv + s * 3 * C, out + s * C, lse + s * NH, doc_start[d + 1] - s, C, NH, scratch);
  }
}

OpCase attention_case(int64_t T, int64_t C, int64_t NH, uint64_t seed) {
  TestRng rng(seed);
  OpCase c;
  c.op = "attention";
  c.name = fmt("attention T=%lld C=%lld NH=%lld (HS %lld)", (long long)T, (long long)C, (long long)NH,
               (long long)(C / NH));
  c.input_names = {"qkv"};
  c.inputs = {random_grid(rng, T * 3 * C, -1.5, 1.5)};
  const int64_t S = attention_scratch(T, C);
  c.forward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf out(T * C), lse(T * NH), scratch(S);
    attention_forward_1(k, out.data(), lse.data(), ins[0], T, 0, C, NH, scratch.data());
    ins.check("attention_forward");
    scratch.check_guards("attention_forward scratch");
    return Outputs{{"out", out.values("attention_forward out")}, {"lse", lse.values("attention_forward lse")}};
  };
  c.reference = [=](const Inputs& in) {
    const AttentionRef r = attention_reference(in[0], T, C, NH);
    return Outputs{{"out", r.out}, {"lse", r.lse}};
  };
  const std::vector<float> R = random_grid(rng, T * C, -1, 1);
  c.objective = weighted_sum(R, "out");
  c.backward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf out(T * C), lse(T * NH), scratch(S), dout(R);
    attention_forward_1(k, out.data(), lse.data(), ins[0], T, 0, C, NH, scratch.data());
    const std::vector<double> out_v = out.values("out"), lse_v = lse.values("lse");
    GradBuf dqkv(T * 3 * C, 6);
    Buf scratch2(S);  // NaN: backward may not rely on what forward left there
    attention_backward_1(k, dqkv.data(), dout.data(), ins[0], out.data(), lse.data(), T, C, NH, scratch2.data());
    ins.check("attention_backward");
    dout.check_equals(R, "attention_backward dout");
    if (out.values("out") != out_v || lse.values("lse") != lse_v) {
      throw std::runtime_error("attention_backward changed forward's out or lse");
    }
    scratch2.check_guards("attention_backward scratch");
    return Grads{dqkv.added("attention_backward dqkv")};
  };
  c.reference_backward = [=](const Inputs& in) { return Grads{attention_reference_backward(in[0], R, T, C, NH)}; };
  // Long documents: finite differences on a sample of the elements (every element is
  // still checked against the reference gradient), with a longer step: L sums T * C
  // float outputs, whose rounding a short step would magnify.
  if (T * 3 * C > 6000) {
    c.fd_sample = 48;
    c.fd_step = 0x1p-5;
  }
  return c;
}

OpCase residual_case(int64_t n, uint64_t seed) {
  TestRng rng(seed);
  OpCase c;
  c.op = "residual";
  c.name = fmt("residual n=%lld", (long long)n);
  c.input_names = {"a", "b"};
  c.inputs = {random_grid(rng, n, -2, 2), random_grid(rng, n, -2, 2)};
  c.forward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf out(n);
    k.residual_forward(out.data(), ins[0], ins[1], n);
    ins.check("residual_forward");
    return Outputs{{"out", out.values("residual_forward out")}};
  };
  c.reference = [=](const Inputs& in) {
    std::vector<double> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) out[static_cast<size_t>(i)] = static_cast<double>(in[0][i]) + in[1][i];
    return Outputs{{"out", out}};
  };
  c.forward_tol = 0.0;  // sums of grid values are exact floats
  return c;             // no backward kernel: the driver passes the gradient through
}

OpCase relu_case(int64_t n, uint64_t seed) {
  TestRng rng(seed);
  OpCase c;
  c.op = "relu";
  c.name = fmt("relu n=%lld", (long long)n);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = (rng.below(2) ? 1.0f : -1.0f) * rng.grid(0.1, 1.5);  // away from the kink at 0
  c.input_names = {"inp"};
  c.inputs = {x};
  c.forward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf out(n);
    k.relu_forward(out.data(), ins[0], n);
    ins.check("relu_forward");
    return Outputs{{"out", out.values("relu_forward out")}};
  };
  c.reference = [=](const Inputs& in) {
    std::vector<double> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) out[static_cast<size_t>(i)] = std::max(0.0, static_cast<double>(in[0][i]));
    return Outputs{{"out", out}};
  };
  c.forward_tol = 0.0;
  const std::vector<float> R = random_grid(rng, n, -1, 1);
  c.objective = weighted_sum(R, "out");
  c.backward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf dout(R);
    GradBuf dinp(n, 7);
    k.relu_backward(dinp.data(), dout.data(), ins[0], n);
    ins.check("relu_backward");
    return Grads{dinp.added("relu_backward dinp")};
  };
  c.fd_tol = 1e-4;
  return c;
}

OpCase crossentropy_case(int64_t N, int64_t V, double offset, uint64_t seed) {
  TestRng rng(seed);
  OpCase c;
  c.op = "crossentropy";
  c.name = fmt("crossentropy N=%lld V=%lld offset=%g", (long long)N, (long long)V, offset);
  std::vector<int32_t> targets(static_cast<size_t>(N));
  for (auto& t : targets) t = rng.below(V);
  targets.back() = static_cast<int32_t>(V - 1);  // the last column (a vector's tail)
  c.input_names = {"logits"};
  c.inputs = {random_grid(rng, N * V, offset - 3, offset + 3)};
  const float dloss = 0.375f;
  c.forward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf probs(N * V);
    const double loss = crossentropy_forward_1(k, probs.data(), ins[0], targets.data(), N, V);
    ins.check("crossentropy_forward");
    return Outputs{{"loss", {loss}}, {"probs", probs.values("crossentropy_forward probs")}};
  };
  c.reference = [=](const Inputs& in) {
    std::vector<double> probs(static_cast<size_t>(N * V));
    double loss = 0.0;
    for (int64_t n = 0; n < N; n++) {
      double mx = -INFINITY, sum = 0.0;
      for (int64_t i = 0; i < V; i++) mx = std::max(mx, static_cast<double>(in[0][n * V + i]));
      for (int64_t i = 0; i < V; i++) sum += std::exp(in[0][n * V + i] - mx);
      for (int64_t i = 0; i < V; i++) probs[static_cast<size_t>(n * V + i)] = std::exp(in[0][n * V + i] - mx) / sum;
      loss += std::log(sum) + mx - in[0][n * V + targets[n]];
    }
    return Outputs{{"loss", {loss}}, {"probs", probs}};
  };
  c.objective = [dloss](const Outputs& outs) { return static_cast<double>(dloss) * outs[0].v[0]; };
  c.backward = [=](const Kernels& k, const Inputs& in) {
    InBufs ins(in);
    Buf probs(N * V);
    crossentropy_forward_1(k, probs.data(), ins[0], targets.data(), N, V);
    const std::vector<double> p = probs.values("crossentropy_forward probs");
    GradBuf dlogits(N * V, 8);
    k.crossentropy_backward(dlogits.data(), probs.data(), targets.data(), dloss, N, V);
    ins.check("crossentropy_backward");
    if (probs.values("crossentropy_backward probs") != p) throw std::runtime_error("crossentropy_backward changed probs");
    return Grads{dlogits.added("crossentropy_backward dlogits")};
  };
  return c;
}

// Attention shapes: head sizes 4, 16 (one AVX-512 vector), 12 (no power of two), 32
// (wider than a vector), 8 with C = 24 (not a multiple of 16), 1. Longer documents and
// wider heads are added in cases_of.
struct AttentionShape {
  int64_t C, NH;
};
const AttentionShape kAttentionShapes[] = {{16, 4}, {32, 2}, {48, 4}, {64, 2}, {24, 3}, {8, 8}};

std::vector<OpCase> cases_of(const std::string& op) {
  std::vector<OpCase> cs;
  uint64_t seed = 1000;
  if (op == "encoder") {
    cs.push_back(encoder_case(7, 16, 5, 6, seed++));
    cs.push_back(encoder_case(9, 20, 7, 4, seed++));
    cs.push_back(encoder_case(1, 48, 3, 2, seed++));
    // more rows than the GPU's chunks of 1024, and tokens that no row uses
    cs.push_back(encoder_case(2500, 8, 3000, 40, seed++));
  } else if (op == "rmsnorm") {
    cs.push_back(rmsnorm_case(5, 16, 1.5, seed++));
    cs.push_back(rmsnorm_case(3, 20, 1.5, seed++));
    cs.push_back(rmsnorm_case(4, 64, 1.5, seed++));
    cs.push_back(rmsnorm_case(3, 16, 0.02, seed++));  // mean(x^2) near the 1e-5 in the root
  } else if (op == "matmul") {
    cs.push_back(matmul_case(1, 16, 48, seed++));
    cs.push_back(matmul_case(5, 16, 64, seed++));
    cs.push_back(matmul_case(3, 20, 13, seed++));
    cs.push_back(matmul_case(9, 24, 40, seed++));
    cs.push_back(matmul_case(3, 64, 28, seed++));
    cs.push_back(matmul_case(17, 8, 33, seed++));
    cs.push_back(matmul_case(4, 64, 16, seed++));
    // gemm's cache blocks: K of more than 256 (C here, rows in the dweight product), and
    // more than 96 rows
    cs.push_back(matmul_case(3, 520, 5, seed++));
    cs.push_back(matmul_case(300, 8, 5, seed++));
  } else if (op == "attention") {
    for (const auto& s : kAttentionShapes) {
      for (int64_t T : {1, 2, 5, 9}) cs.push_back(attention_case(T, s.C, s.NH, seed++));
    }
    cs.push_back(attention_case(16, 16, 4, seed++));
    // Head sizes 8 to 128, documents longer than a tile of 16 queries, up to 300.
    for (const auto& [T, C, NH] : std::vector<std::array<int64_t, 3>>{
             {17, 32, 4}, {33, 64, 4}, {48, 64, 2}, {100, 128, 2}, {40, 128, 1}, {300, 16, 2}, {300, 64, 2}, {300, 128, 1},
             // either side of the GPU's choice of attention kernel (documents of 32 rows or more)
             {31, 64, 2}, {32, 64, 2}}) {
      cs.push_back(attention_case(T, C, NH, seed++));
    }
  } else if (op == "residual") {
    cs.push_back(residual_case(37, seed++));
    cs.push_back(residual_case(64, seed++));
  } else if (op == "relu") {
    cs.push_back(relu_case(37, seed++));
    cs.push_back(relu_case(64, seed++));
  } else if (op == "crossentropy") {
    cs.push_back(crossentropy_case(5, 7, 0.0, seed++));
    cs.push_back(crossentropy_case(4, 28, 0.0, seed++));
    cs.push_back(crossentropy_case(3, 33, 0.0, seed++));
    cs.push_back(crossentropy_case(3, 28, 90.0, seed++));  // exp(90) overflows float unless shifted
  } else {
    throw std::logic_error("no op " + op);
  }
  return cs;
}

const std::vector<std::string> kOps = {"encoder", "rmsnorm", "matmul", "attention", "residual", "relu", "crossentropy"};

// ---------------------------------------------------------------------------------
// Checks: each returns what failed (empty when all is well), so the same checks can be
// run on broken kernels by the tests at the end.

struct Check {
  std::string failures;
  double worst_fd = 0.0;  // the largest finite-difference error seen, for calibration
  bool ok() const { return failures.empty(); }
  void fail(const std::string& what) { failures += what + "\n"; }
};

bool verbose() { return std::getenv("MICROGPT_TEST_VERBOSE") != nullptr; }

void check_forward(const OpCase& c, const Kernels& k, Check& r) {
  try {
    const Outputs got = c.forward(k, c.inputs);
    const Outputs want = c.reference(c.inputs);
    for (size_t i = 0; i < want.size(); i++) {
      for (double x : got[i].v) {
        if (!std::isfinite(x)) {
          r.fail(c.name + ": forward left " + got[i].name + " unwritten or not finite");
          break;
        }
      }
      const double err = testing::rel_inf(got[i].v, want[i].v);
      if (verbose()) std::printf("  %-40s %-8s forward error %.2e\n", c.name.c_str(), got[i].name.c_str(), err);
      if (!(err <= c.forward_tol)) {
        r.fail(c.name + ": forward " + got[i].name + " differs from the naive double one by " + std::to_string(err) +
               " (relative; tolerance " + std::to_string(c.forward_tol) + ")");
      }
    }
  } catch (const std::exception& e) {
    r.fail(c.name + ": " + e.what());
  }
}

void check_gradients(const OpCase& c, const Kernels& k, Check& r) {
  if (!c.backward) return;
  try {
    const Grads grads = c.backward(k, c.inputs);
    if (c.reference_backward) {
      const Grads want = c.reference_backward(c.inputs);
      for (size_t i = 0; i < want.size(); i++) {
        const double err = testing::rel_inf(grads[i], want[i]);
        if (verbose()) std::printf("  %-40s d%-7s reference error %.2e\n", c.name.c_str(), c.input_names[i].c_str(), err);
        if (!(err <= c.grad_tol)) {
          r.fail(c.name + ": gradient of " + c.input_names[i] + " differs from the naive double one by " +
                 std::to_string(err) + " (relative; tolerance " + std::to_string(c.grad_tol) + ")");
        }
      }
    }
#ifdef MICROGPT_EMULATED_GPU_TESTS
    // The CUDA emulation runs a launch a thousand times slower than a CPU kernel: its
    // gradients are checked against the double-precision ones above and the plain CPU
    // kernels' (check_same_as), which pass the finite differences themselves.
    if (k.name.rfind("cuda-", 0) == 0) return;
#endif
    Inputs in = c.inputs;
    const double h = c.fd_step;
    TestRng pick(4242);
    for (size_t i = 0; i < in.size(); i++) {
      // the elements checked: all, or a random sample (with the first and the last)
      std::vector<size_t> elements;
      if (c.fd_sample > 0 && static_cast<size_t>(c.fd_sample) < in[i].size()) {
        elements = {0, in[i].size() - 1};
        while (elements.size() < static_cast<size_t>(c.fd_sample)) elements.push_back(pick.below(static_cast<int64_t>(in[i].size())));
      } else {
        for (size_t j = 0; j < in[i].size(); j++) elements.push_back(j);
      }
      std::vector<double> fd, g;
      for (size_t j : elements) {
        const float x = in[i][j];
        auto L = [&](int m) {
          const double xm = static_cast<double>(x) + m * h;
          in[i][j] = static_cast<float>(xm);
          if (static_cast<double>(in[i][j]) != xm) throw std::logic_error("x + h is not an exact float");
          return c.objective(c.forward(k, in));
        };
        // central differences with the h^2 error term cancelled: error O(h^4)
        fd.push_back((8.0 * (L(1) - L(-1)) - (L(2) - L(-2))) / (12.0 * h));
        g.push_back(grads[i][j]);
        in[i][j] = x;
      }
      bool finite = true;
      for (double x : g) finite = finite && std::isfinite(x);
      const double err = testing::rel_inf(g, fd);
      r.worst_fd = std::max(r.worst_fd, finite ? err : INFINITY);
      if (verbose()) std::printf("  %-40s d%-7s fd error %.2e\n", c.name.c_str(), c.input_names[i].c_str(), err);
      if (!finite || !(err <= c.fd_tol)) {
        r.fail(c.name + ": gradient of " + c.input_names[i] + " differs from finite differences by " +
               std::to_string(err) + " (relative to its largest element; tolerance " + std::to_string(c.fd_tol) + ")");
      }
      if (!(testing::max_abs(fd) > 1e-3)) r.fail(c.name + ": vacuous check, the gradient of " + c.input_names[i] + " is 0");
    }
  } catch (const std::exception& e) {
    r.fail(c.name + ": " + e.what());
  }
}

constexpr double kIsaTol = 1e-5;

// The GPU kernels' gradients: within 1e-4 of the CPU's (sums over long rows in another
// order); their forward outputs within kIsaTol like every instruction set's.
constexpr double kGpuGradTol = 1e-4;

void check_same_as(const OpCase& c, const Kernels& k, const Kernels& base, Check& r, double grad_tol = kIsaTol) {
  try {
    const Outputs a = c.forward(k, c.inputs), b = c.forward(base, c.inputs);
    for (size_t i = 0; i < a.size(); i++) {
      const double err = testing::rel_inf(a[i].v, b[i].v);
      if (verbose()) std::printf("  %-40s %-8s isa forward diff %.2e\n", c.name.c_str(), a[i].name.c_str(), err);
      if (!(err <= kIsaTol)) {
        r.fail(c.name + ": forward " + a[i].name + " of " + k.name + " differs from " + base.name + "'s by " +
               std::to_string(err));
      }
    }
    if (!c.backward) return;
    const Grads ga = c.backward(k, c.inputs), gb = c.backward(base, c.inputs);
    for (size_t i = 0; i < ga.size(); i++) {
      const double err = testing::rel_inf(ga[i], gb[i]);
      if (verbose()) std::printf("  %-40s d%-7s isa gradient diff %.2e\n", c.name.c_str(), c.input_names[i].c_str(), err);
      if (!(err <= grad_tol)) {
        r.fail(c.name + ": gradient of " + c.input_names[i] + " of " + k.name + " differs from " + base.name +
               "'s by " + std::to_string(err));
      }
    }
  } catch (const std::exception& e) {
    r.fail(c.name + ": " + e.what());
  }
}

Check check_op(const std::string& op, const Kernels& k, bool stop_at_first_failure = false) {
  Check r;
  for (const OpCase& c : cases_of(op)) {
    check_forward(c, k, r);
    check_gradients(c, k, r);
    if (stop_at_first_failure && !r.ok()) break;
  }
  return r;
}

// Adam over three gradient buffers for a few steps against the formula in double.
// Element 5 never has a gradient (v = 0: it must stay finite and unchanged); element 6
// has one only at the first step; the others have gradients of very different sizes.
void check_adam_with(const Kernels& k, double weight_decay, Check& r) {
  const int64_t n = 37, n_grads = 3, steps = 5;
  const double lr0 = 0.01;
  const float b1 = 0.85f, b2 = 0.99f, eps = 1e-8f;
  TestRng rng(77);
  Buf p(random_grid(rng, n, -1, 1)), m(n, 0.0f), v(n, 0.0f);
  std::vector<double> pd(p.data(), p.data() + n), md(n, 0.0), vd(n, 0.0);
  const std::vector<double> p0 = pd;
  std::vector<Buf> grads;
  for (int64_t g = 0; g < n_grads; g++) grads.emplace_back(n);
  for (int64_t s = 0; s < steps; s++) {
    const float lr = static_cast<float>(lr0 * (1.0 - static_cast<double>(s) / steps));
    const float bias1 = static_cast<float>(1.0 - std::pow(b1, s + 1.0));
    const float bias2 = static_cast<float>(1.0 - std::pow(b2, s + 1.0));
    std::vector<double> gsum(n, 0.0);
    std::vector<float*> ptrs;
    for (int64_t g = 0; g < n_grads; g++) {
      for (int64_t i = 0; i < n; i++) {
        // gradients from 0.5 down to 1e-8, where sqrt(v) is as small as eps
        float x = rng.grid(-0.5, 0.5) * std::pow(10.0f, -2.0f * static_cast<float>(i % 5));
        if (i == 5 || (i == 6 && s > 0)) x = 0.0f;
        grads[g].data()[i] = x;
        gsum[i] += x;
      }
      ptrs.push_back(grads[g].data());
    }
    const float decay = static_cast<float>(1.0 - lr * weight_decay);
    k.adam_update(p.data(), ptrs.data(), n_grads, m.data(), v.data(), n, lr, b1, b2, eps, bias1, bias2, decay);
    for (int64_t i = 0; i < n; i++) {
      md[i] = b1 * md[i] + (1.0 - b1) * gsum[i];
      vd[i] = b2 * vd[i] + (1.0 - b2) * gsum[i] * gsum[i];
      pd[i] = decay * pd[i] - lr * (md[i] / bias1) / (std::sqrt(vd[i] / bias2) + eps);
    }
    try {
      for (int64_t g = 0; g < n_grads; g++) {
        for (double x : grads[g].values("adam_update grads")) {
          if (x != 0.0) {
            r.fail("adam_update left a gradient buffer non-zero");
            break;
          }
        }
      }
      const auto pv = p.values("adam_update params"), mv = m.values("adam_update m"), vv = v.values("adam_update v");
      for (int64_t i = 0; i < n; i++) {
        const std::string at = "weight decay " + std::to_string(weight_decay) + ", step " + std::to_string(s) +
                               " element " + std::to_string(i) + ": ";
        if (!std::isfinite(pv[i]) || !std::isfinite(mv[i]) || !std::isfinite(vv[i])) r.fail(at + "not finite");
        if (!(std::abs(mv[i] - md[i]) <= 1e-5 * std::abs(md[i]))) r.fail(at + "m " + std::to_string(mv[i]) + " vs " + std::to_string(md[i]));
        if (!(std::abs(vv[i] - vd[i]) <= 1e-5 * std::abs(vd[i]))) r.fail(at + "v " + std::to_string(vv[i]) + " vs " + std::to_string(vd[i]));
        // relative 1e-5, measured against the parameter or the step size when that is larger
        if (!(std::abs(pv[i] - pd[i]) <= 1e-5 * std::max(std::abs(pd[i]), lr0))) {
          r.fail(at + "p " + std::to_string(pv[i]) + " vs " + std::to_string(pd[i]));
        }
      }
      // without weight decay, a parameter that never had a gradient stays where it was
      if (weight_decay == 0.0 && (pv[5] != p0[5] || mv[5] != 0.0 || vv[5] != 0.0)) {
        r.fail("a parameter without gradient moved");
      }
    } catch (const std::exception& e) {
      r.fail(e.what());
    }
  }
}

Check check_adam(const Kernels& k) {
  Check r;
  // plain Adam, then AdamW's decoupled weight decay (large, so that it shows)
  for (const double weight_decay : {0.0, 5.0}) {
    check_adam_with(k, weight_decay, r);
  }
  return r;
}

// Dropout: a mask that is a pure function of (key, row of the batch, column), the kept
// elements scaled by 1 / (1 - p), backward through the same mask; and the running
// average of the weights. Each check returns what failed, as the ones above do.

// Values at least 0.1 away from zero, so that a zero in dropout's output is a drop.
std::vector<float> nonzero_grid(TestRng& rng, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = (rng.below(2) ? 1.0f : -1.0f) * rng.grid(0.1, 1.5);
  return v;
}

constexpr uint64_t kDropKey = 0x243F6A8885A308D3ULL;

// out (N,C) = dropout_forward(inp) at rows row0.., written out of place (inp checked unchanged).
std::vector<double> dropout_out(const Kernels& k, const std::vector<float>& inp, int64_t row0, int64_t N, int64_t C,
                                float p, uint64_t key) {
  Buf in(inp), out(N * C);
  k.dropout_forward(out.data(), in.data(), row0, N, C, p, key);
  in.check_equals(inp, "dropout_forward inp");
  return out.values("dropout_forward out");
}

// How many elements two outputs disagree on being dropped.
int64_t mask_differences(const std::vector<double>& a, const std::vector<double>& b) {
  int64_t d = 0;
  for (size_t i = 0; i < a.size(); i++) d += (a[i] == 0.0) != (b[i] == 0.0);
  return d;
}

// |count - n q| within 5 standard deviations of a binomial(n, q).
bool binomial_plausible(int64_t count, int64_t n, double q) {
  const double mean = static_cast<double>(n) * q, sd = std::sqrt(static_cast<double>(n) * q * (1.0 - q));
  return std::abs(static_cast<double>(count) - mean) <= 5.0 * sd;
}

Check check_dropout(const Kernels& k) {
  Check r;
  try {
    const int64_t N = 64, C = 64, n = N * C;
    TestRng rng(404);
    const std::vector<float> inp = nonzero_grid(rng, n);
    for (const float p : {0.1f, 0.25f, 0.5f}) {
      const std::string at = "p=" + std::to_string(p) + ": ";
      const std::vector<double> out = dropout_out(k, inp, 0, N, C, p, kDropKey);
      int64_t zeros = 0;
      bool scaled = true;
      for (int64_t i = 0; i < n; i++) {
        if (out[i] == 0.0) {
          zeros++;
          continue;
        }
        // kept: inp / (1 - p), to the rounding of the float scale and product (p = 0.5: exactly 2 inp)
        const double want = static_cast<double>(inp[i]) / (1.0 - static_cast<double>(p));
        const double tol = p == 0.5f ? 0.0 : 0x1p-22 * std::abs(want);
        scaled = scaled && std::abs(out[i] - want) <= tol;
      }
      if (!scaled) r.fail(at + "kept elements are not scaled by 1 / (1 - p)");
      if (!binomial_plausible(zeros, n, p)) {
        r.fail(at + std::to_string(zeros) + " of " + std::to_string(n) + " dropped, expected about " +
               std::to_string(static_cast<double>(p) * n));
      }
      // neither a row nor a column is all dropped or all kept (a mask of the row or column only)
      if (p == 0.25f) {
        for (int64_t a = 0; a < N; a++) {
          int64_t row_zeros = 0, col_zeros = 0;
          for (int64_t b = 0; b < C; b++) {
            row_zeros += out[a * C + b] == 0.0;
            col_zeros += out[b * C + a] == 0.0;
          }
          if (row_zeros == 0 || row_zeros == C || col_zeros == 0 || col_zeros == N) {
            r.fail(at + "row or column " + std::to_string(a) + " is dropped as one");
            break;
          }
        }
      }
      // the same key and rows: the same mask, to the bit
      if (dropout_out(k, inp, 0, N, C, p, kDropKey) != out) r.fail(at + "the same key gave another output");
      // other keys: masks about as different as independent draws would be
      const double q = 2.0 * p * (1.0 - p);
      for (const uint64_t other : {kDropKey ^ 1, kDropKey + 1, kDropKey ^ (uint64_t{1} << 40), ~kDropKey}) {
        const int64_t d = mask_differences(dropout_out(k, inp, 0, N, C, p, other), out);
        if (!binomial_plausible(d, n, q)) {
          r.fail(at + "key " + std::to_string(other) + " drops " + std::to_string(d) +
                 " elements differently from key " + std::to_string(kDropKey) + ", expected about " +
                 std::to_string(q * n));
        }
      }
    }

    // Rows of the batch: a chunk at row0 has the rows of the whole, not a mask of its own.
    const float p = 0.25f;
    const std::vector<double> whole = dropout_out(k, inp, 0, N, C, p, kDropKey);
    for (const int64_t split : {int64_t{1}, int64_t{23}, N - 1}) {
      const std::vector<float> head(inp.begin(), inp.begin() + split * C), tail(inp.begin() + split * C, inp.end());
      const std::vector<double> h = dropout_out(k, head, 0, split, C, p, kDropKey);
      const std::vector<double> t = dropout_out(k, tail, split, N - split, C, p, kDropKey);
      if (h != std::vector<double>(whole.begin(), whole.begin() + split * C) ||
          t != std::vector<double>(whole.begin() + split * C, whole.end())) {
        r.fail("rows computed from row " + std::to_string(split) + " differ from the same rows of one call");
      }
      const std::vector<double> t0 = dropout_out(k, tail, 0, N - split, C, p, kDropKey);
      const std::vector<double> want_t(whole.begin() + split * C, whole.end());
      if (mask_differences(t0, want_t) == 0) r.fail("the mask does not depend on row0");
    }

    // Backward: dinp += dout * keep / (1 - p), keep from the forward mask of the same
    // key and rows (here the forward runs in place, as the model runs it). Odd sizes: the
    // guards see a write past the end.
    for (const float pb : {0.0f, 0.3f}) {
      const int64_t Nb = 7, Cb = 13, row0 = 5, nb = Nb * Cb;
      const std::string at = "backward p=" + std::to_string(pb) + ": ";
      const std::vector<float> x = nonzero_grid(rng, nb), dout = nonzero_grid(rng, nb);
      Buf fwd(x);
      k.dropout_forward(fwd.data(), fwd.data(), row0, Nb, Cb, pb, kDropKey);
      const std::vector<double> in_place = fwd.values("dropout_forward in place");
      if (in_place != dropout_out(k, x, row0, Nb, Cb, pb, kDropKey)) r.fail(at + "in place differs from out of place");
      if (pb == 0.0f) {
        for (int64_t i = 0; i < nb; i++) {
          if (in_place[i] != static_cast<double>(x[i])) {
            r.fail(at + "p = 0 is not the identity");
            break;
          }
        }
      }
      Buf d(dout);
      GradBuf dinp(nb, 9);
      k.dropout_backward(dinp.data(), d.data(), row0, Nb, Cb, pb, kDropKey);
      d.check_equals(dout, "dropout_backward dout");
      const std::vector<double> added = dinp.added("dropout_backward dinp");
      const auto dropped = std::count(in_place.begin(), in_place.end(), 0.0);
      for (int64_t i = 0; i < nb; i++) {
        const bool kept = in_place[i] != 0.0;
        const double want = kept ? static_cast<double>(dout[i]) / (1.0 - static_cast<double>(pb)) : 0.0;
        // the sum with the prior gradient rounds: a float ulp of values below 2
        if (!(std::abs(added[i] - want) <= (kept ? 0x1p-21 : 0.0))) {
          r.fail(at + "element " + std::to_string(i) + " added " + std::to_string(added[i]) + ", expected " +
                 std::to_string(want) + (kept ? " (kept)" : " (dropped)"));
          break;
        }
      }
      if (pb > 0.0f && dropped == 0) r.fail(at + "vacuous: nothing dropped");
    }
  } catch (const std::exception& e) {
    r.fail(std::string("dropout: ") + e.what());
  }
  return r;
}

// avg = decay avg + (1 - decay) params, for sizes that leave a tail after the vectors,
// against double arithmetic on the same floats (each call measured on its own).
Check check_average(const Kernels& k) {
  Check r;
  try {
    TestRng rng(505);
    for (const int64_t n : {1, 7, 37, 67}) {
      for (const float decay : {0.0f, 0.5f, 0.9f, 0.9998f}) {
        const std::string at = "average n=" + std::to_string(n) + " decay=" + std::to_string(decay) + ": ";
        Buf avg(random_grid(rng, n, -1, 1));
        for (int call = 0; call < 3; call++) {
          const std::vector<float> params = random_grid(rng, n, -1, 1);
          const std::vector<double> before = avg.values("avg");
          Buf p(params);
          k.average_update(avg.data(), p.data(), n, decay);
          p.check_equals(params, "average_update params");
          const std::vector<double> got = avg.values("average_update avg");
          for (int64_t i = 0; i < n; i++) {
            const double a = static_cast<double>(decay) * before[i];
            const double b = (1.0 - static_cast<double>(decay)) * params[i];
            if (!(std::abs(got[i] - (a + b)) <= 4 * 0x1p-24 * (std::abs(a) + std::abs(b)))) {
              r.fail(at + "element " + std::to_string(i) + ": " + std::to_string(got[i]) + " vs " +
                     std::to_string(a + b));
              break;
            }
          }
        }
      }
    }
  } catch (const std::exception& e) {
    r.fail(std::string("average: ") + e.what());
  }
  return r;
}

// ---------------------------------------------------------------------------------
// The tests, once per instruction set

class KernelIsa : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (gpu()) {  // the GPU's kernels, through host pointers (fast/gpu_host_view.h)
      std::string why;
      k_ = testing::gpu_kernels_on_host(&why);
      if (k_ == nullptr) GTEST_SKIP() << "skipped: no GPU kernels here (" << why << ")";
      return;
    }
    k_ = cpu_kernels_named(GetParam());
    if (k_ == nullptr) GTEST_SKIP() << "skipped: this CPU has no " << GetParam();
  }
  bool gpu() const { return GetParam() == "gpu"; }
  const Kernels& k() const { return *k_; }
  const Kernels& generic() const { return *cpu_kernels_named("generic"); }

  void run_op(const std::string& op) {
    const Check r = check_op(op, k());
    EXPECT_TRUE(r.ok()) << r.failures;
    if (k().name != generic().name) {
      Check s;
      for (const OpCase& c : cases_of(op)) check_same_as(c, k(), generic(), s, gpu() ? kGpuGradTol : kIsaTol);
      EXPECT_TRUE(s.ok()) << s.failures;
    }
  }

 private:
  const Kernels* k_ = nullptr;
};

TEST_P(KernelIsa, Encoder) { run_op("encoder"); }
TEST_P(KernelIsa, Rmsnorm) { run_op("rmsnorm"); }
TEST_P(KernelIsa, Matmul) { run_op("matmul"); }
TEST_P(KernelIsa, Attention) { run_op("attention"); }
TEST_P(KernelIsa, Residual) { run_op("residual"); }
TEST_P(KernelIsa, Relu) { run_op("relu"); }
TEST_P(KernelIsa, Crossentropy) { run_op("crossentropy"); }

TEST_P(KernelIsa, ResidualInPlace) {
  // The driver adds in place: out == a.
  TestRng rng(5);
  const int64_t n = 53;
  const std::vector<float> a = random_grid(rng, n, -2, 2), b = random_grid(rng, n, -2, 2);
  Buf x(a), y(b);
  k().residual_forward(x.data(), x.data(), y.data(), n);
  const auto got = x.values("residual_forward in place");
  for (int64_t i = 0; i < n; i++) ASSERT_EQ(got[i], static_cast<double>(a[i] + b[i])) << i;
}

// attention_forward with t0 > 0 (sampling with a KV cache) gives the rows t0..T-1 of
// the whole computation.
TEST_P(KernelIsa, AttentionKvCacheRowsMatchFullComputation) {
  uint64_t seed = 31;
  std::vector<AttentionShape> shapes(std::begin(kAttentionShapes), std::end(kAttentionShapes));
  shapes.push_back({128, 2});
  for (const auto& s : shapes) {
    for (int64_t T : {2, 5, 9, 16, 37}) {
      TestRng rng(seed++);
      const std::vector<float> qkv = random_grid(rng, T * 3 * s.C, -1.5, 1.5);
      Buf q(qkv), out(T * s.C), lse(T * s.NH), scratch(attention_scratch(T, s.C));
      attention_forward_1(k(), out.data(), lse.data(), q.data(), T, 0, s.C, s.NH, scratch.data());
      const auto out_full = out.values("out"), lse_full = lse.values("lse");
      for (int64_t t0 : {int64_t{1}, T / 2, T - 1}) {
        if (t0 < 1) continue;
        SCOPED_TRACE(fmt("C=%lld NH=%lld T=%lld t0=%lld", (long long)s.C, (long long)s.NH, (long long)T, (long long)t0));
        Buf out2(T * s.C), lse2(T * s.NH), scratch2(attention_scratch(T, s.C));
        attention_forward_1(k(), out2.data(), lse2.data(), q.data(), T, t0, s.C, s.NH, scratch2.data());
        q.check_equals(qkv, "qkv");
        scratch2.check_guards("scratch");
        const auto o = out2.values("out"), l = lse2.values("lse");
        EXPECT_LE(testing::rel_inf(std::vector<double>(o.begin() + t0 * s.C, o.end()),
                                   std::vector<double>(out_full.begin() + t0 * s.C, out_full.end())),
                  1e-6);
        EXPECT_LE(testing::rel_inf(std::vector<double>(l.begin() + t0 * s.NH, l.end()),
                                   std::vector<double>(lse_full.begin() + t0 * s.NH, lse_full.end())),
                  1e-6);
      }
    }
  }
}

// Attention and the loss over a batch of documents (and over a run of them that does not
// start at row 0, as a thread's share is) give each document what it gets alone, to the
// bit: documents of 1 to 40 rows, more than a warp's 32 on the GPU.
TEST_P(KernelIsa, DocumentsOfABatchAreEachAlone) {
  const std::vector<int64_t> lengths = {5, 1, 12, 40, 7, 33};
  std::vector<int64_t> doc_start = {0};
  for (int64_t n : lengths) doc_start.push_back(doc_start.back() + n);
  const int64_t R = doc_start.back(), V = 11;
  for (const auto& [C, NH] : std::vector<std::pair<int64_t, int64_t>>{{16, 2}, {24, 3}, {64, 1}}) {
    SCOPED_TRACE(fmt("C=%lld NH=%lld", (long long)C, (long long)NH));
    TestRng rng(static_cast<uint64_t>(C * 7 + NH));
    const std::vector<float> qkv = random_grid(rng, R * 3 * C, -1.5, 1.5), dout = random_grid(rng, R * C, -1, 1);
    const std::vector<float> logits = random_grid(rng, R * V, -3, 3);
    std::vector<int32_t> targets(static_cast<size_t>(R));
    for (auto& t : targets) t = rng.below(V);
    for (const auto& [first, last] : std::vector<std::pair<int64_t, int64_t>>{{0, 6}, {2, 5}}) {
      const int64_t n_docs = last - first, rows = doc_start[static_cast<size_t>(last)] - doc_start[static_cast<size_t>(first)];
      Buf out(R * C), lse(R * NH), scratch(attention_scratch(40, C)), dq(std::vector<float>(static_cast<size_t>(R * 3 * C), 0.0f));
      Buf q(qkv), g(dout), probs(R * V), l(logits);
      std::vector<double> losses(static_cast<size_t>(n_docs), NAN);
      k().attention_forward(out.data(), lse.data(), q.data(), doc_start.data() + first, n_docs, rows, 0, C, NH, scratch.data());
      k().attention_backward(dq.data(), g.data(), q.data(), out.data(), lse.data(), doc_start.data() + first, n_docs, rows,
                             C, NH, scratch.data());
      k().crossentropy_forward(probs.data(), losses.data(), l.data(), targets.data(), doc_start.data() + first, n_docs,
                               rows, V);
      const auto out_v = out.values("out"), lse_v = lse.values("lse"), dq_v = dq.values("dqkv"), p_v = probs.values("probs");
      for (int64_t d = first; d < last; d++) {
        const int64_t s0 = doc_start[static_cast<size_t>(d)], T = lengths[static_cast<size_t>(d)];
        SCOPED_TRACE(fmt("document %lld of %lld rows", (long long)d, (long long)T));
        const std::vector<float> q1(qkv.begin() + s0 * 3 * C, qkv.begin() + (s0 + T) * 3 * C);
        const std::vector<float> g1(dout.begin() + s0 * C, dout.begin() + (s0 + T) * C);
        const std::vector<float> l1(logits.begin() + s0 * V, logits.begin() + (s0 + T) * V);
        Buf o1(T * C), lse1(T * NH), sc1(attention_scratch(T, C)), dq1(std::vector<float>(static_cast<size_t>(T * 3 * C), 0.0f));
        Buf qb(q1), gb(g1), p1(T * V), lb(l1);
        attention_forward_1(k(), o1.data(), lse1.data(), qb.data(), T, 0, C, NH, sc1.data());
        attention_backward_1(k(), dq1.data(), gb.data(), qb.data(), o1.data(), lse1.data(), T, C, NH, sc1.data());
        const double loss1 = crossentropy_forward_1(k(), p1.data(), lb.data(), targets.data() + s0, T, V);
        auto slice = [&](const std::vector<double>& v, int64_t width) {
          return std::vector<double>(v.begin() + s0 * width, v.begin() + (s0 + T) * width);
        };
        EXPECT_EQ(slice(out_v, C), o1.values("out"));
        EXPECT_EQ(slice(lse_v, NH), lse1.values("lse"));
        EXPECT_EQ(slice(dq_v, 3 * C), dq1.values("dqkv"));
        EXPECT_EQ(slice(p_v, V), p1.values("probs"));
        EXPECT_EQ(losses[static_cast<size_t>(d - first)], loss1);
      }
    }
  }
}

TEST_P(KernelIsa, AdamMatchesDoublePrecisionAdam) {
  const Check r = check_adam(k());
  EXPECT_TRUE(r.ok()) << r.failures;
}

TEST_P(KernelIsa, Dropout) {
  const Check r = check_dropout(k());
  EXPECT_TRUE(r.ok()) << r.failures;
}

// The mask is the same on every instruction set: a checkpoint resumes on another machine.
TEST_P(KernelIsa, DropoutMaskIsTheGenericOne) {
  TestRng rng(606);
  const std::vector<float> inp = nonzero_grid(rng, 9 * 40);
  EXPECT_EQ(dropout_out(k(), inp, 3, 9, 40, 0.2f, kDropKey), dropout_out(generic(), inp, 3, 9, 40, 0.2f, kDropKey));
}

// Keys that differ by a multiple of the golden ratio (as the model's keys for its layers
// and branches may) must not give shifted copies of one mask: at p = 0.5, the mask of key
// K + j * golden shifted back by j positions should agree with K's about half the time.
TEST_P(KernelIsa, DropoutKeysOneGoldenStepApartAreUnrelated) {
  const int64_t N = 16, C = 64;
  const std::vector<float> ones(static_cast<size_t>(N * C), 1.0f);
  const uint64_t golden = 0x9E3779B97F4A7C15ULL;
  for (uint64_t base : {uint64_t{0}, kDropKey}) {
    const auto a = dropout_out(k(), ones, 0, N, C, 0.5f, base);
    for (uint64_t j = 1; j <= 3; j++) {
      const auto b = dropout_out(k(), ones, 0, N, C, 0.5f, base + j * golden);
      int64_t same = 0, n = 0;
      for (size_t i = 0; i + j < a.size(); i++, n++) same += (a[i + j] == 0.0f) == (b[i] == 0.0f);
      // Independent masks: mean n/2, standard deviation sqrt(n)/2 = 16; allow 6 of them.
      EXPECT_NEAR(static_cast<double>(same), static_cast<double>(n) / 2, 96.0) << "key " << base << " + " << j << " golden";
    }
  }
}

TEST_P(KernelIsa, AverageUpdate) {
  const Check r = check_average(k());
  EXPECT_TRUE(r.ok()) << r.failures;
}

TEST_P(KernelIsa, NameSaysTheInstructionSet) {
  if (gpu()) {
    EXPECT_EQ(k().name.rfind("cuda-", 0), 0u) << k().name;
  } else {
    EXPECT_EQ(k().name, "cpu-" + GetParam());
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, KernelIsa, ::testing::ValuesIn(testing::all_isas()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });
// The same checks on the GPU kernels, where this build has them and a GPU is here.
INSTANTIATE_TEST_SUITE_P(Gpu, KernelIsa, ::testing::Values(std::string("gpu")),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// --precision tf32's attention: for documents of 32 rows or more and heads of 16 to 64,
// the tensor cores' kernels (TF32 products: 10-bit mantissas, a unit roundoff of 2^-11,
// 4.9e-4). Against the naive double-precision attention, within four of TF32's unit
// roundoffs relative to each output's largest element (the emulation measures up to 5.2e-4,
// about one; the float32 kernels are held to 1e-5). Shorter documents and other head
// sizes take the float32 kernels, held to their own tolerances.
constexpr double kTf32Tol = 4 * 0x1p-11;

class Tf32Attention : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why;
    k_ = testing::gpu_tf32_attention_on_host(&why);
    if (k_ == nullptr) GTEST_SKIP() << "skipped: no GPU kernels for --precision tf32 here (" << why << ")";
  }
  const Kernels& k() const { return *k_; }

 private:
  const Kernels* k_ = nullptr;
};

TEST_P(Tf32Attention, MatchesDoublePrecisionWithinTf32) {
  uint64_t seed = 900;
  for (const auto& [T, C, NH] : std::vector<std::array<int64_t, 3>>{
           {32, 64, 4},
           {33, 64, 2},
           {47, 96, 2},
           {64, 32, 2},
           {100, 128, 2},
           {40, 128, 4},
           {300, 64, 1},
           // the float32 kernels: a short document, a head size the tensor cores do not take
           {31, 64, 2},
           {40, 40, 5}}) {
    OpCase c = attention_case(T, C, NH, seed++);
    const bool tensor = T >= 32 && (C / NH) % 16 == 0 && C / NH <= 64;
    c.forward_tol = c.grad_tol = tensor ? kTf32Tol : std::max(c.grad_tol, kGpuGradTol);
    if (!tensor) c.forward_tol = kIsaTol;
    Check r;
    check_forward(c, k(), r);
    try {
      const Grads got = c.backward(k(), c.inputs), want = c.reference_backward(c.inputs);
      const double err = testing::rel_inf(got[0], want[0]);
      if (verbose()) std::printf("  %-40s dqkv     reference error %.2e\n", c.name.c_str(), err);
      if (!(err <= c.grad_tol)) {
        r.fail(c.name + ": gradient of qkv differs from the naive double one by " + std::to_string(err) +
               " (relative; tolerance " + std::to_string(c.grad_tol) + ")");
      }
    } catch (const std::exception& e) {
      r.fail(c.name + ": " + e.what());
    }
    EXPECT_TRUE(r.ok()) << r.failures;
  }
}

// What a row gets depends on its document alone (the other side's tiles start at the
// document's first row), and a call repeats to the bit: documents of a batch, long and
// short, starting anywhere in a warp's 16 rows, each equal to itself alone.
TEST_P(Tf32Attention, DocumentsOfABatchAreEachAloneAndRepeat) {
  const std::vector<int64_t> lengths = {5, 40, 33, 1, 70, 12, 36};
  std::vector<int64_t> doc_start = {0};
  for (int64_t n : lengths) doc_start.push_back(doc_start.back() + n);
  const int64_t R = doc_start.back();
  for (const auto& shape : std::vector<std::pair<int64_t, int64_t>>{{32, 2}, {64, 1}, {96, 2}}) {
    const int64_t C = shape.first, NH = shape.second;  // (clang's lambdas take no structured bindings)
    SCOPED_TRACE(fmt("C=%lld NH=%lld", (long long)C, (long long)NH));
    TestRng rng(static_cast<uint64_t>(C * 11 + NH));
    const std::vector<float> qkv = random_grid(rng, R * 3 * C, -1.5, 1.5), dout = random_grid(rng, R * C, -1, 1);
    auto run = [&](const int64_t* starts, int64_t n_docs, int64_t rows, const float* q, const float* g) {
      const int64_t end = starts[n_docs];
      Buf out(end * C), lse(end * NH), scratch(attention_scratch(end, C));
      Buf dq(std::vector<float>(static_cast<size_t>(end * 3 * C), 0.0f));
      Buf qb(std::vector<float>(q, q + end * 3 * C)), gb(std::vector<float>(g, g + end * C));
      k().attention_forward(out.data(), lse.data(), qb.data(), starts, n_docs, rows, 0, C, NH, scratch.data());
      k().attention_backward(dq.data(), gb.data(), qb.data(), out.data(), lse.data(), starts, n_docs, rows, C, NH,
                             scratch.data());
      return std::array<std::vector<double>, 3>{out.values("out"), lse.values("lse"), dq.values("dqkv")};
    };
    const int64_t n = static_cast<int64_t>(lengths.size());
    const auto all = run(doc_start.data(), n, R, qkv.data(), dout.data());
    EXPECT_EQ(all, run(doc_start.data(), n, R, qkv.data(), dout.data())) << "a second call differs";
    for (int64_t d = 0; d < n; d++) {
      const int64_t s0 = doc_start[static_cast<size_t>(d)], T = lengths[static_cast<size_t>(d)];
      SCOPED_TRACE(fmt("document %lld of %lld rows", (long long)d, (long long)T));
      const int64_t one[2] = {0, T};
      const auto alone = run(one, 1, T, qkv.data() + s0 * 3 * C, dout.data() + s0 * C);
      const int64_t widths[3] = {C, NH, 3 * C};
      for (int i = 0; i < 3; i++) {
        const std::vector<double> part(all[i].begin() + s0 * widths[i], all[i].begin() + (s0 + T) * widths[i]);
        EXPECT_EQ(part, alone[i]) << "output " << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Gpu, Tf32Attention, ::testing::Values(std::string("tf32")),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(KernelDispatch, BestIsOneOfTheAvailable) {
  const Kernels& best = cpu_kernels();
  bool found = false;
  for (const std::string& isa : testing::available_isas()) found = found || cpu_kernels_named(isa) == &best;
  EXPECT_TRUE(found) << best.name;
  EXPECT_NE(cpu_kernels_named("generic"), nullptr);
  EXPECT_EQ(cpu_kernels_named("sse9"), nullptr);
}

// ---------------------------------------------------------------------------------
// The checks catch wrong kernels. Each mutant is the generic table with one function
// replaced by a plausible mistake; every one must fail the checks of its op.

const Kernels& real() { return *cpu_kernels_named("generic"); }

// dx = r dy, forgetting - (r^3 / C) (dy . x) x
void rmsnorm_backward_no_mean_term(float* dinp, const float* dout, const float*, const float* rstd, int64_t N,
                                   int64_t C) {
  for (int64_t n = 0; n < N; n++) {
    for (int64_t i = 0; i < C; i++) dinp[n * C + i] += rstd[n] * dout[n * C + i];
  }
}
// the epsilon in the root left out
void rmsnorm_forward_no_eps(float* out, float* rstd, const float* inp, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; n++) {
    float ms = 0.0f;
    for (int64_t i = 0; i < C; i++) ms += inp[n * C + i] * inp[n * C + i];
    rstd[n] = 1.0f / std::sqrt(ms / static_cast<float>(C));
    for (int64_t i = 0; i < C; i++) out[n * C + i] = inp[n * C + i] * rstd[n];
  }
}
// dweight summed over all rows but the last
void matmul_backward_drops_last_row(float* dinp, float* dweight, const float* dout, const float* inp,
                                    const float* weight, int64_t N, int64_t C, int64_t OC) {
  std::vector<float> ignore_dw(static_cast<size_t>(OC * C)), ignore_dx(static_cast<size_t>(N * C));
  real().matmul_backward(dinp, ignore_dw.data(), dout, inp, weight, N, C, OC);
  real().matmul_backward(ignore_dx.data(), dweight, dout, inp, weight, N - 1, C, OC);
}
// dweight 0.2% too large: how small an error the tolerance still sees
void matmul_backward_slightly_off(float* dinp, float* dweight, const float* dout, const float* inp,
                                  const float* weight, int64_t N, int64_t C, int64_t OC) {
  std::vector<float> dw(static_cast<size_t>(OC * C), 0.0f);
  real().matmul_backward(dinp, dw.data(), dout, inp, weight, N, C, OC);
  for (int64_t i = 0; i < OC * C; i++) dweight[i] += 1.002f * dw[static_cast<size_t>(i)];
}
// dq and dk without the 1 / sqrt(HS) of the scores
void attention_backward_unscaled(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                                 int64_t T, int64_t C, int64_t NH, float* scratch) {
  std::vector<float> d(static_cast<size_t>(T * 3 * C), 0.0f);
  attention_backward_1(real(), d.data(), dout, qkv, out, lse, T, C, NH, scratch);
  const float s = std::sqrt(static_cast<float>(C / NH));
  for (int64_t t = 0; t < T; t++) {
    for (int64_t i = 0; i < 3 * C; i++) dqkv[t * 3 * C + i] += d[static_cast<size_t>(t * 3 * C + i)] * (i < 2 * C ? s : 1.0f);
  }
}
// The softmax's Jacobian reduced to its diagonal: ds = a * datt, without - sum a datt.
// The weights are recomputed from lse, as the real kernel does.
void attention_backward_diagonal_softmax(float* dqkv, const float* dout, const float* qkv, const float*,
                                         const float* lse, int64_t T, int64_t C, int64_t NH, float*) {
  const int64_t HS = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  for (int64_t h = 0; h < NH; h++) {
    for (int64_t t = 0; t < T; t++) {
      for (int64_t u = 0; u <= t; u++) {
        float s = 0.0f, d = 0.0f;
        for (int64_t j = 0; j < HS; j++) s += qkv[t * 3 * C + h * HS + j] * qkv[u * 3 * C + C + h * HS + j];
        const float a = std::exp(s * scale - lse[t * NH + h]);
        for (int64_t j = 0; j < HS; j++) {
          d += dout[t * C + h * HS + j] * qkv[u * 3 * C + 2 * C + h * HS + j];
          dqkv[u * 3 * C + 2 * C + h * HS + j] += a * dout[t * C + h * HS + j];
        }
        const float ds = a * d * scale;
        for (int64_t j = 0; j < HS; j++) {
          dqkv[t * 3 * C + h * HS + j] += ds * qkv[u * 3 * C + C + h * HS + j];
          dqkv[u * 3 * C + C + h * HS + j] += ds * qkv[t * 3 * C + h * HS + j];
        }
      }
    }
  }
}
// every query sees every key (no causal mask)
void attention_forward_not_causal(float* out, float* lse, const float* qkv, int64_t T, int64_t t0, int64_t C,
                                  int64_t NH, float*) {
  const int64_t HS = C / NH;
  for (int64_t h = 0; h < NH; h++) {
    for (int64_t t = t0; t < T; t++) {
      std::vector<float> s(static_cast<size_t>(T));
      float mx = -INFINITY, sum = 0.0f;
      for (int64_t u = 0; u < T; u++) {
        float d = 0.0f;
        for (int64_t j = 0; j < HS; j++) d += qkv[t * 3 * C + h * HS + j] * qkv[u * 3 * C + C + h * HS + j];
        s[static_cast<size_t>(u)] = d / std::sqrt(static_cast<float>(HS));
        mx = std::max(mx, s[static_cast<size_t>(u)]);
      }
      for (float& x : s) sum += (x = std::exp(x - mx));
      lse[t * NH + h] = mx + std::log(sum);
      for (int64_t j = 0; j < HS; j++) out[t * C + h * HS + j] = 0.0f;
      for (int64_t u = 0; u < T; u++) {
        const float a = s[static_cast<size_t>(u)] / sum;
        for (int64_t j = 0; j < HS; j++) out[t * C + h * HS + j] += a * qkv[u * 3 * C + 2 * C + h * HS + j];
      }
    }
  }
}
// lse stored as the plain sum of exponentials, not its log: backward's weights go wrong
void attention_forward_lse_not_logged(float* out, float* lse, const float* qkv, int64_t T, int64_t t0, int64_t C,
                                      int64_t NH, float* scratch) {
  attention_forward_1(real(), out, lse, qkv, T, t0, C, NH, scratch);
  for (int64_t i = t0 * NH; i < T * NH; i++) lse[i] = std::exp(lse[i]);
}
void relu_backward_passes_negatives(float* dinp, const float* dout, const float*, int64_t n) {
  for (int64_t i = 0; i < n; i++) dinp[i] += dout[i];
}
void crossentropy_backward_ignores_dloss(float* dlogits, const float* probs, const int32_t* targets, float,
                                         int64_t N, int64_t V) {
  real().crossentropy_backward(dlogits, probs, targets, 1.0f, N, V);
}
void crossentropy_forward_mean(float* probs, double* losses, const float* logits, const int32_t* targets,
                               const int64_t* doc_start, int64_t n_docs, int64_t rows, int64_t V) {
  real().crossentropy_forward(probs, losses, logits, targets, doc_start, n_docs, rows, V);
  for (int64_t d = 0; d < n_docs; d++) losses[d] /= static_cast<double>(doc_start[d + 1] - doc_start[d]);
}
// = instead of +=
void encoder_backward_assigns(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                              const int32_t* positions, int64_t N, int64_t C, int64_t, int64_t) {
  for (int64_t n = 0; n < N; n++) {
    for (int64_t i = 0; i < C; i++) {
      dwte[tokens[n] * C + i] = dout[n * C + i];
      dwpe[positions[n] * C + i] = dout[n * C + i];
    }
  }
}
// writes one float past its output
void residual_forward_overruns(float* out, const float* a, const float* b, int64_t n) {
  real().residual_forward(out, a, b, n);
  out[n] = 0.0f;
}
int64_t adam_without_bias_correction(float* params, float* const* grads, int64_t n_grads, float* m, float* v, int64_t n,
                                     float lr, float beta1, float beta2, float eps, float, float, float decay) {
  return real().adam_update(params, grads, n_grads, m, v, n, lr, beta1, beta2, eps, 1.0f, 1.0f, decay);
}
// the weight decay ignored
int64_t adam_without_decay(float* params, float* const* grads, int64_t n_grads, float* m, float* v, int64_t n, float lr,
                           float beta1, float beta2, float eps, float bias1, float bias2, float) {
  return real().adam_update(params, grads, n_grads, m, v, n, lr, beta1, beta2, eps, bias1, bias2, 1.0f);
}
// the gradient buffers summed but not cleared
int64_t adam_keeps_gradients(float* params, float* const* grads, int64_t n_grads, float* m, float* v, int64_t n,
                             float lr, float beta1, float beta2, float eps, float bias1, float bias2, float decay) {
  std::vector<std::vector<float>> keep;
  for (int64_t g = 0; g < n_grads; g++) keep.emplace_back(grads[g], grads[g] + n);
  const int64_t bad = real().adam_update(params, grads, n_grads, m, v, n, lr, beta1, beta2, eps, bias1, bias2, decay);
  for (int64_t g = 0; g < n_grads; g++) std::copy(keep[g].begin(), keep[g].end(), grads[g]);
  return bad;
}

TEST(KernelChecks, CatchDeliberatelyWrongKernels) {
  struct Mutant {
    std::string what, op;
    std::function<void(Kernels&)> apply;
  };
  const std::vector<Mutant> mutants = {
      {"rmsnorm backward without the mean-square term", "rmsnorm",
       [](Kernels& k) { k.rmsnorm_backward = rmsnorm_backward_no_mean_term; }},
      {"rmsnorm forward without epsilon", "rmsnorm", [](Kernels& k) { k.rmsnorm_forward = rmsnorm_forward_no_eps; }},
      {"matmul backward dropping the last row from dweight", "matmul",
       [](Kernels& k) { k.matmul_backward = matmul_backward_drops_last_row; }},
      {"matmul backward with dweight 0.2% too large", "matmul",
       [](Kernels& k) { k.matmul_backward = matmul_backward_slightly_off; }},
      {"attention backward without 1/sqrt(HS) on dq, dk", "attention",
       [](Kernels& k) { k.attention_backward = each_document_backward<attention_backward_unscaled>; }},
      {"attention backward with a diagonal softmax Jacobian", "attention",
       [](Kernels& k) { k.attention_backward = each_document_backward<attention_backward_diagonal_softmax>; }},
      {"attention forward without the causal mask", "attention",
       [](Kernels& k) { k.attention_forward = each_document_forward<attention_forward_not_causal>; }},
      {"attention forward keeping the normaliser instead of its log", "attention",
       [](Kernels& k) { k.attention_forward = each_document_forward<attention_forward_lse_not_logged>; }},
      {"relu backward passing gradient through negatives", "relu",
       [](Kernels& k) { k.relu_backward = relu_backward_passes_negatives; }},
      {"crossentropy backward ignoring dloss", "crossentropy",
       [](Kernels& k) { k.crossentropy_backward = crossentropy_backward_ignores_dloss; }},
      {"crossentropy forward returning the mean", "crossentropy",
       [](Kernels& k) { k.crossentropy_forward = crossentropy_forward_mean; }},
      {"encoder backward assigning instead of adding", "encoder",
       [](Kernels& k) { k.encoder_backward = encoder_backward_assigns; }},
      {"residual forward writing past its output", "residual",
       [](Kernels& k) { k.residual_forward = residual_forward_overruns; }},
  };
  ASSERT_TRUE(check_op("matmul", real()).ok());
  for (const Mutant& m : mutants) {
    Kernels k = real();
    m.apply(k);
    const Check r = check_op(m.op, k, !verbose());
    EXPECT_FALSE(r.ok()) << "not caught: " << m.what;
    if (verbose()) std::printf("%s:\n%s", m.what.c_str(), r.failures.c_str());
  }
}

TEST(KernelChecks, CatchWrongAdam) {
  for (auto* wrong : {adam_without_bias_correction, adam_keeps_gradients, adam_without_decay}) {
    Kernels k = real();
    k.adam_update = wrong;
    EXPECT_FALSE(check_adam(k).ok());
  }
}

// Plausible mistakes in dropout and the average, each of which the checks must see.
void dropout_backward_without_mask(float* dinp, const float* dout, int64_t, int64_t N, int64_t C, float p, uint64_t) {
  for (int64_t i = 0; i < N * C; i++) dinp[i] += dout[i] / (1.0f - p);
}
void dropout_backward_ignores_row0(float* dinp, const float* dout, int64_t, int64_t N, int64_t C, float p,
                                   uint64_t key) {
  real().dropout_backward(dinp, dout, 0, N, C, p, key);
}
void dropout_backward_other_key(float* dinp, const float* dout, int64_t row0, int64_t N, int64_t C, float p,
                                uint64_t key) {
  real().dropout_backward(dinp, dout, row0, N, C, p, key + 1);
}
void dropout_forward_unscaled(float* out, const float* inp, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  real().dropout_forward(out, inp, row0, N, C, p, key);
  for (int64_t i = 0; i < N * C; i++) out[i] *= 1.0f - p;
}
void dropout_forward_keeps_p(float* out, const float* inp, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  real().dropout_forward(out, inp, row0, N, C, 1.0f - p, key);
  for (int64_t i = 0; i < N * C; i++) out[i] *= (1.0f - (1.0f - p)) / (1.0f - p);  // scaled as for p
}
void dropout_forward_by_row(float* out, const float* inp, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  for (int64_t r = 0; r < N; r++) {
    float first = 1.0f;
    real().dropout_forward(&first, &first, row0 + r, 1, 1, p, key);
    for (int64_t c = 0; c < C; c++) out[r * C + c] = inp[r * C + c] * first;
  }
}
void average_decay_swapped(float* avg, const float* params, int64_t n, float decay) {
  real().average_update(avg, params, n, 1.0f - decay);
}
void average_skips_tail(float* avg, const float* params, int64_t n, float decay) {
  real().average_update(avg, params, n / 8 * 8, decay);
}

TEST(KernelChecks, CatchWrongDropoutAndAverage) {
  ASSERT_TRUE(check_dropout(real()).ok());
  ASSERT_TRUE(check_average(real()).ok());
  const std::pair<const char*, std::function<void(Kernels&)>> mutants[] = {
      {"dropout backward without the mask", [](Kernels& k) { k.dropout_backward = dropout_backward_without_mask; }},
      {"dropout backward ignoring row0", [](Kernels& k) { k.dropout_backward = dropout_backward_ignores_row0; }},
      {"dropout backward with another key", [](Kernels& k) { k.dropout_backward = dropout_backward_other_key; }},
      {"dropout forward without 1 / (1 - p)", [](Kernels& k) { k.dropout_forward = dropout_forward_unscaled; }},
      {"dropout forward keeping with probability p", [](Kernels& k) { k.dropout_forward = dropout_forward_keeps_p; }},
      {"dropout forward dropping whole rows", [](Kernels& k) { k.dropout_forward = dropout_forward_by_row; }},
  };
  for (const auto& [what, apply] : mutants) {
    Kernels k = real();
    apply(k);
    const Check r = check_dropout(k);
    EXPECT_FALSE(r.ok()) << "not caught: " << what;
    if (verbose()) std::printf("%s:\n%s", what, r.failures.c_str());
  }
  for (auto* wrong : {average_decay_swapped, average_skips_tail}) {
    Kernels k = real();
    k.average_update = wrong;
    EXPECT_FALSE(check_average(k).ok());
  }
}

TEST(KernelChecks, CatchIsaDifferences) {
  // A build whose matmul is 1e-4 off generic's is told apart.
  Kernels k = real();
  k.matmul_forward = [](float* out, const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC,
                        float* scratch) {
    real().matmul_forward(out, inp, weight, N, C, OC, scratch);
    for (int64_t i = 0; i < N * OC; i++) out[i] *= 1.0001f;
  };
  Check r;
  for (const OpCase& c : cases_of("matmul")) check_same_as(c, k, real(), r);
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace microgpt
