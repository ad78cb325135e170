// The CPU kernels. This file is compiled once per instruction set of the target (see
// src/CMakeLists.txt), with MICROGPT_ISA_NS naming the namespace and the compiler flags
// choosing the instruction set that simd.h maps onto. Matrix products go through one register-blocked kernel,
// gemm(); everything else is a short loop over rows.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fast/dropout_mask.h"
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

// Large products are cut into blocks that stay in cache: kKc steps of K at a time (a
// kKc x NR panel of B is 32 KB, an L1's worth, and is reused by every row tile of a
// block), and kMc rows at a time (a kMc x kKc block of A, 96 KB, stays in L2 while the
// column tiles pass over it). C is loaded and stored once per K block.
constexpr int64_t kKc = 256, kMc = 96;

void gemm(float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb, int64_t M,
          int64_t N, int64_t K, bool accumulate) {
  constexpr int64_t NR = 2 * W;  // columns per tile
  if (K == 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < M; i++) std::fill(c + i * ldc, c + i * ldc + N, 0.0f);
    }
    return;
  }
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kk = std::min(kKc, K - k0);
    const bool acc = accumulate || k0 > 0;
    const float* ak = a + k0 * a_cs;
    const float* bk = b + k0 * ldb;
    for (int64_t m0 = 0; m0 < M; m0 += kMc) {
      const int64_t m1 = std::min(M, m0 + kMc);
      for (int64_t j0 = 0; j0 < N; j0 += NR) {
        const int64_t nj = std::min(NR, N - j0);
        const int64_t nv = (nj + W - 1) / W;
        const Mask last = mask_first(nj - (nv - 1) * W);
        for (int64_t i0 = m0; i0 < m1; i0 += MR) {
          const int64_t mi = std::min(MR, m1 - i0);
          float* ct = c + i0 * ldc + j0;
          const float* at = ak + i0 * a_rs;
          if (nv == 2) {
            gemm_rows<2>(mi, ct, ldc, at, a_rs, a_cs, bk + j0, ldb, kk, last, acc);
          } else {
            gemm_rows<1>(mi, ct, ldc, at, a_rs, a_cs, bk + j0, ldb, kk, last, acc);
          }
        }
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

// dst (C,R) = src (R,C)^T, block by block; rows of src are lds floats apart, rows of dst ldd
void transpose(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t R, int64_t C) {
  constexpr int64_t B = 16;
  for (int64_t r0 = 0; r0 < R; r0 += B) {
    const int64_t r1 = std::min(R, r0 + B);
    for (int64_t c0 = 0; c0 < C; c0 += B) {
      const int64_t c1 = std::min(C, c0 + B);
#if defined(__AVX512F__)
      if (r1 - r0 == 16 && c1 - c0 == 16) {
        transpose_16x16(dst + c0 * ldd + r0, ldd, src + r0 * lds + c0, lds);
        continue;
      }
#endif
      for (int64_t r = r0; r < r1; r++) {
        for (int64_t c = c0; c < c1; c++) dst[c * ldd + r] = src[r * lds + c];
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
                      int64_t N, int64_t C, int64_t, int64_t) {
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
  transpose(scratch, OC, weight, C, OC, C);
  gemm(out, OC, inp, C, 1, scratch, OC, N, OC, C, false);
}

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     int64_t N, int64_t C, int64_t OC) {
  // dinp (N,C) += dout (N,OC) @ weight (OC,C)
  gemm(dinp, C, dout, OC, 1, weight, C, N, C, OC, true);
  // dweight (OC,C) += dout^T (OC,N) @ inp (N,C); dout^T is read through strides
  gemm(dweight, C, dout, 1, OC, inp, C, OC, C, N, true);
}

// Attention, one document at a time, in the manner of flash attention: the forward pass
// keeps only each query's log-sum-exp per head (lse), and the backward pass recomputes
// the weights from q, k and lse, so no T x T matrix outlives a call and the memory a
// model needs grows linearly with its block size.
//
// Heads of at most a vector (HS a power of two <= W, C a multiple of W) are processed a
// whole row at a time, every head at once: a q.k product is summed within each head's
// lanes by a butterfly, leaving each head's score in all of its lanes, so the softmax and
// the weighted sums are plain lane-wise operations. Wider heads go through gemm() a tile
// of kQueryTile queries at a time: the tile's scores against keys 0..U-1 are one small
// matrix product with the head's keys (transposed once per call), so every key is read
// once per tile rather than once per query, and the tile's weights fit the cache.

constexpr int64_t kQueryTile = 16;

// p (n) = exp(scale p - lse): the weights, recomputed from the scores
// d (n) = p (d - D) scale: from d loss / d weights to d loss / d scores
inline void softmax_backward_row(float* p, float* d, int64_t n, float scale, float lse, float D) {
  const V s = set1(scale), l = set1(lse), dd = set1(D);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const V e = simd::exp(sub(mul(load(p + i), s), l));
    store(p + i, e);
    store(d + i, mul(mul(e, sub(load(d + i), dd)), s));
  }
  if (i < n) {
    const Mask m = mask_first(n - i);
    const V e = simd::exp(sub(mul(load(p + i, m), s), l));
    store(p + i, e, m);
    store(d + i, mul(mul(e, sub(load(d + i, m), dd)), s), m);
  }
}

void attention_forward_tiled(float* out, float* lse, const float* qkv, int64_t T, int64_t t0, int64_t C, int64_t NH,
                             float* scratch) {
  const int64_t HS = C / NH, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  float* Kt = scratch;          // (HS, T): the head's keys, transposed
  float* S = Kt + HS * T;       // (kQueryTile, U): a tile's scores, then weights
  for (int64_t h = 0; h < NH; h++) {
    transpose(Kt, T, qkv + C + h * HS, C3, T, HS);
    for (int64_t ta = t0; ta < T; ta += kQueryTile) {
      const int64_t Q = std::min(kQueryTile, T - ta), U = ta + Q;  // queries ta.., keys 0..U-1
      gemm(S, U, qkv + ta * C3 + h * HS, C3, 1, Kt, T, Q, U, HS, false);
      for (int64_t i = 0; i < Q; i++) {
        float* s = S + i * U;
        const int64_t n = ta + i + 1;  // causal: keys 0..ta+i
        scale_into(s, scale, s, n);
        float m;
        const float sum = exp_shifted(s, n, &m);
        scale_into(s, 1.0f / sum, s, n);
        std::fill(s + n, s + U, 0.0f);
        lse[(ta + i) * NH + h] = m + std::log(sum);
      }
      gemm(out + ta * C + h * HS, C, S, U, 1, qkv + 2 * C + h * HS, C3, Q, HS, U, false);
    }
  }
}

void attention_backward_tiled(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                              int64_t T, int64_t C, int64_t NH, float* scratch) {
  const int64_t HS = C / NH, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  float* Kt = scratch;                // (HS, T)
  float* Vt = Kt + HS * T;            // (HS, T)
  float* P = Vt + HS * T;             // (kQueryTile, U): the tile's weights
  float* dS = P + kQueryTile * T;     // (kQueryTile, U): d loss / d weights, then / d scores
  for (int64_t h = 0; h < NH; h++) {
    transpose(Kt, T, qkv + C + h * HS, C3, T, HS);
    transpose(Vt, T, qkv + 2 * C + h * HS, C3, T, HS);
    for (int64_t ta = 0; ta < T; ta += kQueryTile) {
      const int64_t Q = std::min(kQueryTile, T - ta), U = ta + Q;
      const float* q = qkv + ta * C3 + h * HS;
      const float* dy = dout + ta * C + h * HS;
      gemm(P, U, q, C3, 1, Kt, T, Q, U, HS, false);    // scores
      gemm(dS, U, dy, C, 1, Vt, T, Q, U, HS, false);   // d loss / d weights = dy . v
      for (int64_t i = 0; i < Q; i++) {
        const int64_t n = ta + i + 1;
        // sum_u a_u (dy . v_u) = dy . out: the softmax's Jacobian term, from forward's output
        const float D = dot(dy + i * C, out + (ta + i) * C + h * HS, HS);
        softmax_backward_row(P + i * U, dS + i * U, n, scale, lse[(ta + i) * NH + h], D);
        std::fill(P + i * U + n, P + (i + 1) * U, 0.0f);
        std::fill(dS + i * U + n, dS + (i + 1) * U, 0.0f);
      }
      // dv (U,HS) += P^T dy;  dk (U,HS) += dS^T q;  dq (Q,HS) += dS k
      gemm(dqkv + 2 * C + h * HS, C3, P, 1, U, dy, C, U, HS, Q, true);
      gemm(dqkv + C + h * HS, C3, dS, 1, U, q, C3, U, HS, Q, true);
      gemm(dqkv + ta * C3 + h * HS, C3, dS, U, 1, qkv + C + h * HS, C3, Q, HS, U, true);
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

void attention_forward_lanes(float* out, float* lse, const float* qkv, int64_t T, int64_t t0, int64_t C, int64_t NH,
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
      for (int64_t u = 0; u <= t; u++) o = fma(mul(load(S + u * W), inv), load(qkv + u * C3 + 2 * C + c), o);
      store(out + t * C + c, o);
      float m[W], s[W];
      lanes.store_heads(m, smax);
      lanes.store_heads(s, sum);
      for (int64_t g = 0; g < G; g++) lse[t * NH + c / W * G + g] = m[g] + std::log(s[g]);
    }
  }
}

void attention_backward_lanes(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                              int64_t T, int64_t C, int64_t NH) {
  const HeadLanes lanes(C / NH);
  const int64_t C3 = 3 * C, G = lanes.G;
  const V scale = set1(1.0f / std::sqrt(static_cast<float>(C / NH)));
  for (int64_t t = 0; t < T; t++) {
    for (int64_t c = 0; c < C; c += W) {
      const V q = load(qkv + t * C3 + c), dy = load(dout + t * C + c);
      const V l = lanes.load_heads(lse + t * NH + c / W * G);
      // sum_u a_u (dy . v_u) = dy . out_t, per head
      const V D = lanes.head_sum(mul(dy, load(out + t * C + c)));
      V dq = zero();
      for (int64_t u = 0; u <= t; u++) {
        const V k = load(qkv + u * C3 + C + c);
        const V a = simd::exp(sub(mul(lanes.head_sum(mul(q, k)), scale), l));  // the weight, recomputed
        const V d = lanes.head_sum(mul(dy, load(qkv + u * C3 + 2 * C + c)));
        float* dv = dqkv + u * C3 + 2 * C + c;
        store(dv, fma(a, dy, load(dv)));
        // a = softmax(s): ds_u = a_u (d_u - D); s_u = scale q_t . k_u
        const V ds = mul(mul(a, sub(d, D)), scale);
        dq = fma(ds, k, dq);
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

void attention_forward_doc(float* out, float* lse, const float* qkv, int64_t T, int64_t t0, int64_t C, int64_t NH,
                           float* scratch) {
#if defined(MICROGPT_SIMD_VECTOR)
  if (heads_fit_lanes(C, NH)) return attention_forward_lanes(out, lse, qkv, T, t0, C, NH, scratch);
#endif
  attention_forward_tiled(out, lse, qkv, T, t0, C, NH, scratch);
}

void attention_backward_doc(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                            int64_t T, int64_t C, int64_t NH, float* scratch) {
#if defined(MICROGPT_SIMD_VECTOR)
  if (heads_fit_lanes(C, NH)) return attention_backward_lanes(dqkv, dout, qkv, out, lse, T, C, NH);
#endif
  attention_backward_tiled(dqkv, dout, qkv, out, lse, T, C, NH, scratch);
}

void attention_forward(float* out, float* lse, const float* qkv, const int64_t* doc_start, int64_t n_docs, int64_t,
                       int64_t t0, int64_t C, int64_t NH, float* scratch) {
  for (int64_t d = 0; d < n_docs; d++) {
    const int64_t s = doc_start[d], T = doc_start[d + 1] - s;
    attention_forward_doc(out + s * C, lse + s * NH, qkv + s * 3 * C, T, t0, C, NH, scratch);
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        const int64_t* doc_start, int64_t n_docs, int64_t, int64_t C, int64_t NH, float* scratch) {
  for (int64_t d = 0; d < n_docs; d++) {
    const int64_t s = doc_start[d], T = doc_start[d + 1] - s;
    attention_backward_doc(dqkv + s * 3 * C, dout + s * C, qkv + s * 3 * C, out + s * C, lse + s * NH, T, C, NH,
                           scratch);
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

// The loss summed over N rows.
double crossentropy_rows(float* probs, const float* logits, const int32_t* targets, int64_t N, int64_t V) {
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

void crossentropy_forward(float* probs, double* losses, const float* logits, const int32_t* targets,
                          const int64_t* doc_start, int64_t n_docs, int64_t, int64_t V) {
  for (int64_t d = 0; d < n_docs; d++) {
    const int64_t s = doc_start[d], T = doc_start[d + 1] - s;
    losses[d] = crossentropy_rows(probs + s * V, logits + s * V, targets + s, T, V);
  }
}

void crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, float dloss, int64_t N,
                           int64_t V) {
  for (int64_t n = 0; n < N; n++) {
    axpy(dlogits + n * V, dloss, probs + n * V, V);
    dlogits[n * V + targets[n]] -= dloss;
  }
}

// The mask: fast/dropout_mask.h.
template <bool kAccumulate>
void dropout_apply(float* out, const float* inp, int64_t row0, int64_t N, int64_t C, float p, uint64_t key) {
  const uint64_t threshold = dropout::threshold(p);
  const float scale = 1.0f / (1.0f - p);
  const uint64_t mixed_key = dropout::mix64(key);
  for (int64_t r = 0; r < N; r++) {
    const uint64_t base = dropout::row_base(mixed_key, row0 + r, C);
    for (int64_t c = 0; c < C; c++) {
      const bool keep = dropout::keeps(base, c, threshold);
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
                    float beta1, float beta2, float eps, float bias1, float bias2, float decay) {
  // p -= lr * m_hat / (sqrt(v_hat) + eps), written as (lr sqrt(bias2) / bias1) m /
  // (sqrt(v) + eps sqrt(bias2)), with sqrt(v) = v * rsqrt(v) and the division as a
  // reciprocal: each to about an ulp, and far cheaper than sqrt and div. v = 0 (a
  // parameter that never had a gradient) is lifted to the smallest normal float, whose
  // square root (1e-19) vanishes beside eps.
  const V b1 = set1(beta1), b2 = set1(beta2), c1 = set1(1.0f - beta1), c2 = set1(1.0f - beta2);
  const float root_bias2 = std::sqrt(bias2);
  const V step_size = set1(lr * root_bias2 / bias1), veps = set1(eps * root_bias2);
  const V tiny = set1(1.17549435e-38f);
  const V shrink = set1(decay);  // 1 (no weight decay) leaves p exactly as it is
  auto update = [&](V g, V& mi, V& vi, V& pi) {
    mi = fma(b1, mi, mul(c1, g));
    vi = fma(b2, vi, mul(mul(c2, g), g));
    const V vs = max(vi, tiny);
    const V denom = fma(vs, simd::rsqrt(vs), veps);
    pi = sub(mul(shrink, pi), mul(mul(step_size, mi), simd::rcp(denom)));
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

// The CPU kernels' memory is the host's.
void* host_allocate(int64_t bytes) {
  return std::aligned_alloc(64, (static_cast<size_t>(std::max<int64_t>(bytes, 1)) + 63) / 64 * 64);
}
void host_release(void* p) { std::free(p); }
void host_copy_bytes(void* to, const void* from, int64_t bytes) {
  if (bytes > 0) std::memcpy(to, from, static_cast<size_t>(bytes));
}
void host_copy(float* to, const float* from, int64_t n) {
  if (n > 0) std::memcpy(to, from, static_cast<size_t>(n) * sizeof(float));
}
void host_zero(float* p, int64_t n) {
  if (n > 0) std::memset(p, 0, static_cast<size_t>(n) * sizeof(float));
}

}  // namespace

const Kernels& kernels() {
  static const Kernels k{
      .name = MICROGPT_ISA_NAME,
      .on_device = false,
      .allocate = host_allocate,
      .release = host_release,
      .upload = host_copy_bytes,
      .download = host_copy_bytes,
      .copy = host_copy,
      .zero = host_zero,
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
