// The CPU kernels. This file is compiled once per instruction set of the target (see
// src/CMakeLists.txt), with MICROGPT_ISA_NS naming the namespace and the compiler flags
// choosing the instruction set that simd.h maps onto. Matrix products go through one register-blocked kernel,
// gemm(); everything else is a short loop over rows.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "fast/kernels.h"
#include "fast/simd.h"

#ifndef MICROGPT_ISA_NS
#error "compile with -DMICROGPT_ISA_NS=cpu_<isa>"
#endif

namespace microgpt::MICROGPT_ISA_NS {

namespace {

using namespace simd;

// ---------------------------------------------------------------------------------
// gemm: C (M,N) = (accumulate ? C : 0) + A (M,K) @ B (K,N).
// A's element (i,k) is a[i*a_rs + k*a_cs], so A may be a transposed view; B and C are
// row-major with row strides ldb and ldc. Tiles of MR rows by NV vectors of columns
// keep MR*NV accumulators in registers while k runs over all of K.

// AVX-512 and NEON have 32 vector registers: 8 rows x 2 vectors of accumulators fit
// with room to spare, and a document of up to 8 positions is one tile high. AVX2 has 16.
constexpr int64_t MR = W >= 16 ? 8 : W >= 8 ? 6 : W >= 4 ? 8 : 4;

template <int64_t MI, int64_t NV>
inline void gemm_tile(float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b,
                      int64_t ldb, int64_t K, Mask last, bool accumulate) {
  // The unroll pragmas keep acc in registers: without them GCC 12 leaves copies of it
  // in memory and stores them on every k.
  Mask mk[NV];
  for (int64_t v = 0; v < NV; v++) mk[v] = v == NV - 1 ? last : mask_first(W);
  V acc[MI][NV];
#pragma GCC unroll 16
  for (int64_t i = 0; i < MI; i++) {
#pragma GCC unroll 4
    for (int64_t v = 0; v < NV; v++) acc[i][v] = accumulate ? load(c + i * ldc + v * W, mk[v]) : zero();
  }
  for (int64_t k = 0; k < K; k++) {
    V bv[NV];
    const float* brow = b + k * ldb;
#pragma GCC unroll 4
    for (int64_t v = 0; v < NV; v++) bv[v] = v == NV - 1 ? load(brow + v * W, last) : load(brow + v * W);
    const float* acol = a + k * a_cs;
#pragma GCC unroll 16
    for (int64_t i = 0; i < MI; i++) {
      const V av = set1(acol[i * a_rs]);
#pragma GCC unroll 4
      for (int64_t v = 0; v < NV; v++) acc[i][v] = fma(av, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int64_t i = 0; i < MI; i++) {
#pragma GCC unroll 4
    for (int64_t v = 0; v < NV; v++) store(c + i * ldc + v * W, acc[i][v], mk[v]);
  }
}

template <int64_t NV>
inline void gemm_rows(int64_t mi, float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b,
                      int64_t ldb, int64_t K, Mask last, bool accumulate) {
  switch (mi) {
    case 1: gemm_tile<1, NV>(c, ldc, a, a_rs, a_cs, b, ldb, K, last, accumulate); break;
    case 2: gemm_tile<2, NV>(c, ldc, a, a_rs, a_cs, b, ldb, K, last, accumulate); break;
    case 3: gemm_tile<3, NV>(c, ldc, a, a_rs, a_cs, b, ldb, K, last, accumulate); break;
    case 4: gemm_tile<4, NV>(c, ldc, a, a_rs, a_cs, b, ldb, K, last, accumulate); break;
    case 5: if constexpr (MR >= 5) gemm_tile<5, NV>(c, ldc, a, a_rs, a_cs, b, ldb, K, last, accumulate); break;
    case 6: if constexpr (MR >= 6) gemm_tile<6, NV>(c, ldc, a, a_rs, a_cs, b, ldb, K, last, accumulate); break;
    case 7: if constexpr (MR >= 7) gemm_tile<7, NV>(c, ldc, a, a_rs, a_cs, b, ldb, K, last, accumulate); break;
    case 8: if constexpr (MR >= 8) gemm_tile<8, NV>(c, ldc, a, a_rs, a_cs, b, ldb, K, last, accumulate); break;
    default: break;
  }
}

void gemm(float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb, int64_t M,
          int64_t N, int64_t K, bool accumulate) {
  constexpr int64_t NR = 2 * W;  // columns per tile
  for (int64_t j0 = 0; j0 < N; j0 += NR) {
    const int64_t nj = std::min(NR, N - j0);
    const int64_t nv = (nj + W - 1) / W;
    const Mask last = mask_first(nj - (nv - 1) * W);
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
      const int64_t mi = std::min(MR, M - i0);
      float* ct = c + i0 * ldc + j0;
      const float* at = a + i0 * a_rs;
      if (nv == 2) {
        gemm_rows<2>(mi, ct, ldc, at, a_rs, a_cs, b + j0, ldb, K, last, accumulate);
      } else {
        gemm_rows<1>(mi, ct, ldc, at, a_rs, a_cs, b + j0, ldb, K, last, accumulate);
      }
    }
  }
}

#if defined(__AVX512F__)
// dst rows 0..15 (stride ldd) = columns of the 16x16 block src (stride lds), in registers:
// pairs of rows interleaved, then pairs of pairs, then 128-bit lanes gathered.
inline void transpose_16x16(float* dst, int64_t ldd, const float* src, int64_t lds) {
  __m512 r[16], a[16], b[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 16; i += 2) {
    a[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    a[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  auto lo = [](__m512 x, __m512 y) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(x), _mm512_castps_pd(y)));
  };
  auto hi = [](__m512 x, __m512 y) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(x), _mm512_castps_pd(y)));
  };
  for (int i = 0; i < 16; i += 4) {  // b[i + m], lane L: column 4L + m of rows i..i+3
    b[i] = lo(a[i], a[i + 2]);
    b[i + 1] = hi(a[i], a[i + 2]);
    b[i + 2] = lo(a[i + 1], a[i + 3]);
    b[i + 3] = hi(a[i + 1], a[i + 3]);
  }
  for (int m = 0; m < 4; m++) {
    const __m512 c0 = _mm512_shuffle_f32x4(b[m], b[4 + m], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 c1 = _mm512_shuffle_f32x4(b[m], b[4 + m], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512 d0 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 d1 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], _MM_SHUFFLE(3, 1, 3, 1));
    _mm512_storeu_ps(dst + (0 + m) * ldd, _mm512_shuffle_f32x4(c0, d0, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(dst + (8 + m) * ldd, _mm512_shuffle_f32x4(c0, d0, _MM_SHUFFLE(3, 1, 3, 1)));
    _mm512_storeu_ps(dst + (4 + m) * ldd, _mm512_shuffle_f32x4(c1, d1, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(dst + (12 + m) * ldd, _mm512_shuffle_f32x4(c1, d1, _MM_SHUFFLE(3, 1, 3, 1)));
  }
}
#endif

// dst (C,R) = src (R,C)^T, block by block
void transpose(float* dst, const float* src, int64_t R, int64_t C) {
  constexpr int64_t B = 16;
  for (int64_t r0 = 0; r0 < R; r0 += B) {
    const int64_t r1 = std::min(R, r0 + B);
    for (int64_t c0 = 0; c0 < C; c0 += B) {
      const int64_t c1 = std::min(C, c0 + B);
#if defined(__AVX512F__)
      if (r1 - r0 == 16 && c1 - c0 == 16) {
        transpose_16x16(dst + c0 * R + r0, R, src + r0 * C + c0, C);
        continue;
      }
#endif
      for (int64_t r = r0; r < r1; r++) {
        for (int64_t c = c0; c < c1; c++) dst[c * R + r] = src[r * C + c];
      }
    }
  }
}

// ---------------------------------------------------------------------------------

void encoder_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte, const float* wpe,
                     int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; n++) {
    const float* a = wte + tokens[n] * C;
    const float* b = wpe + positions[n] * C;
    float* o = out + n * C;
    for (int64_t i = 0; i < C; i++) o[i] = a[i] + b[i];
  }
}

void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, const int32_t* positions,
                      int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; n++) {
    float* a = dwte + tokens[n] * C;
    float* b = dwpe + positions[n] * C;
    const float* d = dout + n * C;
    for (int64_t i = 0; i < C; i++) {
      a[i] += d[i];
      b[i] += d[i];
    }
  }
}

inline float dot(const float* x, const float* y, int64_t n) {
  V acc = zero();
  int64_t i = 0;
  for (; i + W <= n; i += W) acc = fma(load(x + i), load(y + i), acc);
  if (i < n) {
    const Mask m = mask_first(n - i);
    acc = fma(load(x + i, m), load(y + i, m), acc);
  }
  return hsum(acc);
}

// y (n) += alpha * x (n)
inline void axpy(float* y, float alpha, const float* x, int64_t n) {
  const V a = set1(alpha);
  int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, fma(a, load(x + i), load(y + i)));
  if (i < n) {
    const Mask m = mask_first(n - i);
    store(y + i, fma(a, load(x + i, m), load(y + i, m)), m);
  }
}

// y (n) = alpha * x (n)
inline void scale_into(float* y, float alpha, const float* x, int64_t n) {
  const V a = set1(alpha);
  int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, mul(a, load(x + i)));
  if (i < n) {
    const Mask m = mask_first(n - i);
    store(y + i, mul(a, load(x + i, m)), m);
  }
}

// p (n) = exp(x - max x) in place; returns the sum of p (the caller normalizes).
inline float exp_shifted(float* p, int64_t n, float* max_out) {
  V vmax = set1(-INFINITY);
  int64_t i = 0;
  for (; i + W <= n; i += W) vmax = max(vmax, load(p + i));
  if (i < n) vmax = max(vmax, load_or(p + i, mask_first(n - i), -INFINITY));
  const float m = hmax(vmax);
  const V vm = set1(m);
  V vsum = zero();
  for (i = 0; i + W <= n; i += W) {
    const V e = simd::exp(sub(load(p + i), vm));
    store(p + i, e);
    vsum = add(vsum, e);
  }
  if (i < n) {
    const Mask k = mask_first(n - i);
    const V e = simd::exp(sub(load(p + i, k), vm));
    store(p + i, e, k);
    vsum = add(vsum, load(p + i, k));
  }
  *max_out = m;
  return hsum(vsum);
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; n++) {
    const float* x = inp + n * C;
    const float ms = dot(x, x, C) / static_cast<float>(C);
    const float r = 1.0f / std::sqrt(ms + 1e-5f);
    rstd[n] = r;
    scale_into(out + n * C, r, x, C);
  }
}

void rmsnorm_backward(float* dinp, const float* dout, const float* inp, const float* rstd, int64_t N, int64_t C) {
  // out = x * r, r = (mean(x^2) + eps)^-1/2:  dx = r dy - (r^3 / C) (dy . x) x
  for (int64_t n = 0; n < N; n++) {
    const float* x = inp + n * C;
    const float* dy = dout + n * C;
    float* dx = dinp + n * C;
    const float r = rstd[n];
    const float k = -r * r * r / static_cast<float>(C) * dot(dy, x, C);
    axpy(dx, r, dy, C);
    axpy(dx, k, x, C);
  }
}

void matmul_forward(float* out, const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC,
                    float* scratch) {
  // out = inp @ weight^T: with weight transposed to (C,OC), each output row is a sum of
  // rows of weight^T scaled by inp's entries, which vectorizes along OC.
  transpose(scratch, weight, OC, C);
  gemm(out, OC, inp, C, 1, scratch, OC, N, OC, C, false);
}

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     int64_t N, int64_t C, int64_t OC) {
  // dinp (N,C) += dout (N,OC) @ weight (OC,C)
  gemm(dinp, C, dout, OC, 1, weight, C, N, C, OC, true);
  // dweight (OC,C) += dout^T (OC,N) @ inp (N,C); dout^T is read through strides
  gemm(dweight, C, dout, 1, OC, inp, C, OC, C, N, true);
}

// Attention works on head-sized pieces, often only a few floats long (4 in microgpt's
// default). When a head is at most a vector wide (HS a power of two <= W, C a multiple
// of W), whole rows are processed a vector at a time, every head at once: a q.k product
// is summed within each head's lanes by a butterfly, leaving each head's score in all of
// its lanes, so the softmax and the weighted sums are plain lane-wise operations.
// Otherwise the loops below run per head, compiled for common head sizes (HS_ > 0) and
// for any size (HS_ = 0).

template <int64_t HS_>
void attention_forward_hs(float* out, float* att, const float* qkv, int64_t T, int64_t t0, int64_t C, int64_t NH) {
  const int64_t HS = HS_ > 0 ? HS_ : C / NH;
  const int64_t C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  std::vector<float> a(static_cast<size_t>(T));
  for (int64_t h = 0; h < NH; h++) {
    for (int64_t t = t0; t < T; t++) {
      const float* q = qkv + t * C3 + h * HS;
      for (int64_t u = 0; u <= t; u++) {
        const float* k = qkv + u * C3 + C + h * HS;
        float s = 0.0f;
        for (int64_t j = 0; j < HS; j++) s += q[j] * k[j];
        a[static_cast<size_t>(u)] = s * scale;
      }
      float maxv;
      const float inv = 1.0f / exp_shifted(a.data(), t + 1, &maxv);
      float* o = out + t * C + h * HS;
      for (int64_t j = 0; j < HS; j++) o[j] = 0.0f;
      for (int64_t u = 0; u <= t; u++) {
        const float w = a[static_cast<size_t>(u)] * inv;
        att[(t * T + u) * NH + h] = w;
        const float* v = qkv + u * C3 + 2 * C + h * HS;
        for (int64_t j = 0; j < HS; j++) o[j] += w * v[j];
      }
    }
  }
}

template <int64_t HS_>
void attention_backward_hs(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t T, int64_t C,
                           int64_t NH, float* datt) {
  const int64_t HS = HS_ > 0 ? HS_ : C / NH;
  const int64_t C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  for (int64_t h = 0; h < NH; h++) {
    for (int64_t t = 0; t < T; t++) {
      const float* dy = dout + t * C + h * HS;
      // out_t = sum_u a[u] v_u
      float weighted = 0.0f;
      for (int64_t u = 0; u <= t; u++) {
        const float a = att[(t * T + u) * NH + h];
        const float* v = qkv + u * C3 + 2 * C + h * HS;
        float* dv = dqkv + u * C3 + 2 * C + h * HS;
        float d = 0.0f;
        for (int64_t j = 0; j < HS; j++) {
          d += dy[j] * v[j];
          dv[j] += a * dy[j];
        }
        datt[u] = d;
        weighted += a * d;
      }
      // a = softmax(s): ds[u] = a[u] (datt[u] - sum_w a[w] datt[w]); s[u] = scale q_t . k_u
      const float* q = qkv + t * C3 + h * HS;
      float* dq = dqkv + t * C3 + h * HS;
      for (int64_t u = 0; u <= t; u++) {
        const float ds = att[(t * T + u) * NH + h] * (datt[u] - weighted) * scale;
        const float* k = qkv + u * C3 + C + h * HS;
        float* dk = dqkv + u * C3 + C + h * HS;
        for (int64_t j = 0; j < HS; j++) {
          dq[j] += ds * k[j];
          dk[j] += ds * q[j];
        }
      }
    }
  }
}

#if defined(MICROGPT_SIMD_VECTOR)
// Lane patterns for heads of HS lanes: xor[s] swaps lanes s apart (a butterfly step),
// expand spreads G = W / HS per-head values over their heads' lanes, compress gathers
// one lane of each head to the front.
struct HeadLanes {
  int64_t HS, G, steps;
  VI xor_[8], expand, compress;
  explicit HeadLanes(int64_t hs) : HS(hs), G(W / hs), steps(0) {
    int32_t idx[W];
    for (int64_t s = 1; s < hs; s *= 2) {
      for (int64_t l = 0; l < W; l++) idx[l] = static_cast<int32_t>(l ^ s);
      xor_[steps++] = lane_index(idx);
    }
    for (int64_t l = 0; l < W; l++) idx[l] = static_cast<int32_t>(l / hs);
    expand = lane_index(idx);
    for (int64_t l = 0; l < W; l++) idx[l] = static_cast<int32_t>((l * hs) % W);
    compress = lane_index(idx);
  }
  // every lane: the sum over its head's lanes
  V head_sum(V x) const {
    for (int64_t s = 0; s < steps; s++) x = add(x, permute(x, xor_[s]));
    return x;
  }
  V load_heads(const float* a) const { return permute(load(a, mask_first(G)), expand); }
  void store_heads(float* a, V x) const { store(a, permute(x, compress), mask_first(G)); }
};

void attention_forward_lanes(float* out, float* att, const float* qkv, int64_t T, int64_t t0, int64_t C, int64_t NH,
                             float* scratch) {
  const HeadLanes lanes(C / NH);
  const int64_t C3 = 3 * C, G = lanes.G;
  const V scale = set1(1.0f / std::sqrt(static_cast<float>(C / NH)));
  float* S = scratch;  // (T, W): scores, then weights, of the heads in one vector
  for (int64_t t = t0; t < T; t++) {
    for (int64_t c = 0; c < C; c += W) {
      const V q = load(qkv + t * C3 + c);
      V smax = set1(-INFINITY);
      for (int64_t u = 0; u <= t; u++) {
        const V s = mul(lanes.head_sum(mul(q, load(qkv + u * C3 + C + c))), scale);
        store(S + u * W, s);
        smax = max(smax, s);
      }
      V sum = zero();
      for (int64_t u = 0; u <= t; u++) {
        const V e = simd::exp(sub(load(S + u * W), smax));
        store(S + u * W, e);
        sum = add(sum, e);
      }
      const V inv = div(set1(1.0f), sum);
      V o = zero();
      for (int64_t u = 0; u <= t; u++) {
        const V a = mul(load(S + u * W), inv);
        lanes.store_heads(att + (t * T + u) * NH + c / W * G, a);
        o = fma(a, load(qkv + u * C3 + 2 * C + c), o);
      }
      store(out + t * C + c, o);
    }
  }
}

void attention_backward_lanes(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t T, int64_t C,
                              int64_t NH, float* scratch) {
  const HeadLanes lanes(C / NH);
  const int64_t C3 = 3 * C, G = lanes.G;
  const V scale = set1(1.0f / std::sqrt(static_cast<float>(C / NH)));
  float* D = scratch;  // (T, W): d loss / d att, per head, in its lanes
  for (int64_t t = 0; t < T; t++) {
    for (int64_t c = 0; c < C; c += W) {
      const float* a_row = att + t * T * NH + c / W * G;
      const V dy = load(dout + t * C + c);
      // out_t = sum_u a_u v_u
      V weighted = zero();
      for (int64_t u = 0; u <= t; u++) {
        const V a = lanes.load_heads(a_row + u * NH);
        const V d = lanes.head_sum(mul(dy, load(qkv + u * C3 + 2 * C + c)));
        store(D + u * W, d);
        float* dv = dqkv + u * C3 + 2 * C + c;
        store(dv, fma(a, dy, load(dv)));
        weighted = fma(a, d, weighted);
      }
      // a = softmax(s): ds_u = a_u (d_u - sum_w a_w d_w); s_u = scale q_t . k_u
      const V q = load(qkv + t * C3 + c);
      V dq = zero();
      for (int64_t u = 0; u <= t; u++) {
        const V a = lanes.load_heads(a_row + u * NH);
        const V ds = mul(mul(a, sub(load(D + u * W), weighted)), scale);
        dq = fma(ds, load(qkv + u * C3 + C + c), dq);
        float* dk = dqkv + u * C3 + C + c;
        store(dk, fma(ds, q, load(dk)));
      }
      float* dqt = dqkv + t * C3 + c;
      store(dqt, add(load(dqt), dq));
    }
  }
}
#endif

[[maybe_unused]] inline bool heads_fit_lanes(int64_t C, int64_t NH) {
  const int64_t HS = C / NH;
  return W > 1 && HS <= W && (HS & (HS - 1)) == 0 && C % W == 0;
}

void attention_forward(float* out, float* att, const float* qkv, int64_t T, int64_t t0, int64_t C, int64_t NH,
                       [[maybe_unused]] float* scratch) {
#if defined(MICROGPT_SIMD_VECTOR)
  if (heads_fit_lanes(C, NH)) return attention_forward_lanes(out, att, qkv, T, t0, C, NH, scratch);
#endif
  switch (C / NH) {
    case 4: return attention_forward_hs<4>(out, att, qkv, T, t0, C, NH);
    case 8: return attention_forward_hs<8>(out, att, qkv, T, t0, C, NH);
    case 16: return attention_forward_hs<16>(out, att, qkv, T, t0, C, NH);
    case 32: return attention_forward_hs<32>(out, att, qkv, T, t0, C, NH);
    case 64: return attention_forward_hs<64>(out, att, qkv, T, t0, C, NH);
    default: return attention_forward_hs<0>(out, att, qkv, T, t0, C, NH);
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t T, int64_t C,
                        int64_t NH, float* scratch) {
#if defined(MICROGPT_SIMD_VECTOR)
  if (heads_fit_lanes(C, NH)) return attention_backward_lanes(dqkv, dout, qkv, att, T, C, NH, scratch);
#endif
  switch (C / NH) {
    case 4: return attention_backward_hs<4>(dqkv, dout, qkv, att, T, C, NH, scratch);
    case 8: return attention_backward_hs<8>(dqkv, dout, qkv, att, T, C, NH, scratch);
    case 16: return attention_backward_hs<16>(dqkv, dout, qkv, att, T, C, NH, scratch);
    case 32: return attention_backward_hs<32>(dqkv, dout, qkv, att, T, C, NH, scratch);
    case 64: return attention_backward_hs<64>(dqkv, dout, qkv, att, T, C, NH, scratch);
    default: return attention_backward_hs<0>(dqkv, dout, qkv, att, T, C, NH, scratch);
  }
}

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void relu_forward(float* out, const float* inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

double crossentropy_forward(float* probs, const float* logits, const int32_t* targets, int64_t N, int64_t V) {
  double total = 0.0;
  for (int64_t n = 0; n < N; n++) {
    const float* l = logits + n * V;
    float* p = probs + n * V;
    std::memcpy(p, l, static_cast<size_t>(V) * sizeof(float));
    float maxv;
    const float sum = exp_shifted(p, V, &maxv);
    scale_into(p, 1.0f / sum, p, V);
    // -log softmax[target] = log(sum) + max - logit[target], without rounding p first
    total += static_cast<double>(std::log(sum)) + static_cast<double>(maxv) - static_cast<double>(l[targets[n]]);
  }
  return total;
}

void crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, float dloss, int64_t N,
                           int64_t V) {
  for (int64_t n = 0; n < N; n++) {
    axpy(dlogits + n * V, dloss, probs + n * V, V);
    dlogits[n * V + targets[n]] -= dloss;
  }
}

// The mask: murmur3's 64-bit finalizer of mix(key) + index * golden ratio, its top 24
// bits compared with p * 2^24 (the key is mixed first so that keys differing by a multiple
// of the golden ratio do not give shifted copies of one mask). Dropping is decided by position in the batch, not by a
// generator's stream, so threads, resume and the backward pass all see the same mask.
inline uint64_t mix64(uint64_t z) {
  z ^= z >> 33;
  z *= 0xff51afd7ed558ccdULL;
  z ^= z >> 33;
  z *= 0xc4ceb9fe1a85ec53ULL;
  z ^= z >> 33;
  return z;
}

template <bool kAccumulate>
void dropout_apply(float* out, const float* inp, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(p) * 16777216.0);
  const float scale = 1.0f / (1.0f - p);
  const uint64_t mixed_key = mix64(key);
  for (int64_t r = 0; r < N; r++) {
    const uint64_t base = mixed_key + static_cast<uint64_t>((row0 + r) * C) * 0x9E3779B97F4A7C15ULL;
    for (int64_t c = 0; c < C; c++) {
      const bool keep = (mix64(base + static_cast<uint64_t>(c) * 0x9E3779B97F4A7C15ULL) >> 40) >= threshold;
      const float x = keep ? inp[r * C + c] * scale : 0.0f;
      if constexpr (kAccumulate) {
        out[r * C + c] += x;
      } else {
        out[r * C + c] = x;
      }
    }
  }
}

void dropout_forward(float* out, const float* inp, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  dropout_apply<false>(out, inp, row0, N, C, p, key);
}

void dropout_backward(float* dinp, const float* dout, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  dropout_apply<true>(dinp, dout, row0, N, C, p, key);
}

void average_update(float* avg, const float* params, int64_t n, float decay) {
  const V d = set1(decay), e = set1(1.0f - decay);
  int64_t i = 0;
  for (; i + W <= n; i += W) store(avg + i, fma(d, load(avg + i), mul(e, load(params + i))));
  for (; i < n; i++) avg[i] = decay * avg[i] + (1.0f - decay) * params[i];
}

int64_t adam_update(float* params, float* const* grads, int64_t n_grads, float* m, float* v, int64_t n, float lr,
                    float beta1, float beta2, float eps, float bias1, float bias2) {
  // p -= lr * m_hat / (sqrt(v_hat) + eps), written as (lr sqrt(bias2) / bias1) m /
  // (sqrt(v) + eps sqrt(bias2)), with sqrt(v) = v * rsqrt(v) and the division as a
  // reciprocal: each to about an ulp, and far cheaper than sqrt and div. v = 0 (a
  // parameter that never had a gradient) is lifted to the smallest normal float, whose
  // square root (1e-19) vanishes beside eps.
  const V b1 = set1(beta1), b2 = set1(beta2), c1 = set1(1.0f - beta1), c2 = set1(1.0f - beta2);
  const float root_bias2 = std::sqrt(bias2);
  const V step_size = set1(lr * root_bias2 / bias1), veps = set1(eps * root_bias2);
  const V tiny = set1(1.17549435e-38f);
  auto update = [&](V g, V& mi, V& vi, V& pi) {
    mi = fma(b1, mi, mul(c1, g));
    vi = fma(b2, vi, mul(mul(c2, g), g));
    const V vs = max(vi, tiny);
    const V denom = fma(vs, simd::rsqrt(vs), veps);
    pi = sub(pi, mul(mul(step_size, mi), simd::rcp(denom)));
  };
  int64_t nonfinite = 0;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    V g = load(grads[0] + i);
    store(grads[0] + i, zero());
    for (int64_t t = 1; t < n_grads; t++) {
      g = add(g, load(grads[t] + i));
      store(grads[t] + i, zero());
    }
    nonfinite += count_nonfinite(g);
    V mi = load(m + i), vi = load(v + i), pi = load(params + i);
    update(g, mi, vi, pi);
    store(m + i, mi);
    store(v + i, vi);
    store(params + i, pi);
  }
  if (i < n) {
    const Mask k = mask_first(n - i);
    V g = zero();
    for (int64_t t = 0; t < n_grads; t++) {
      g = add(g, load(grads[t] + i, k));
      store(grads[t] + i, zero(), k);
    }
    nonfinite += count_nonfinite(g);  // masked-off lanes hold 0
    V mi = load(m + i, k), vi = load(v + i, k), pi = load(params + i, k);
    update(g, mi, vi, pi);
    store(m + i, mi, k);
    store(v + i, vi, k);
    store(params + i, pi, k);
  }
  return nonfinite;
}

}  // namespace

const Kernels& kernels() {
  static const Kernels k{
      .name = MICROGPT_ISA_NAME,
      .encoder_forward = encoder_forward,
      .encoder_backward = encoder_backward,
      .rmsnorm_forward = rmsnorm_forward,
      .rmsnorm_backward = rmsnorm_backward,
      .matmul_forward = matmul_forward,
      .matmul_backward = matmul_backward,
      .attention_forward = attention_forward,
      .attention_backward = attention_backward,
      .residual_forward = residual_forward,
      .relu_forward = relu_forward,
      .relu_backward = relu_backward,
      .crossentropy_forward = crossentropy_forward,
      .crossentropy_backward = crossentropy_backward,
      .dropout_forward = dropout_forward,
      .dropout_backward = dropout_backward,
      .adam_update = adam_update,
      .average_update = average_update,
  };
  return k;
}

}  // namespace microgpt::MICROGPT_ISA_NS
