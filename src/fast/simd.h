// The few vector operations the CPU kernels use, for the instruction set this file is
// compiled for: AVX-512 (16 floats), AVX2 with FMA (8 floats), NEON on AArch64 (4
// floats), or plain scalar code (1 float; the compiler may still vectorize loops).
// kernels_cpu.cpp is compiled once per instruction set of the target and the best one
// the CPU has is picked at run time. MICROGPT_SIMD_VECTOR is defined for the vector
// ones, which also have lane permutations and a vector exp.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#define MICROGPT_SIMD_VECTOR 1
#elif defined(__ARM_NEON) && defined(__aarch64__) && !defined(MICROGPT_SIMD_PLAIN)
#include <arm_neon.h>
#define MICROGPT_SIMD_VECTOR 1
#define MICROGPT_SIMD_NEON 1
#endif

namespace microgpt::simd {

#if defined(__AVX512F__)

inline constexpr int64_t W = 16;
using V = __m512;
using Mask = __mmask16;
inline Mask mask_first(int64_t n) { return n >= 16 ? Mask(0xFFFF) : Mask((1u << n) - 1); }
inline V zero() { return _mm512_setzero_ps(); }
inline V set1(float x) { return _mm512_set1_ps(x); }
inline V load(const float* p) { return _mm512_loadu_ps(p); }
inline V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
inline V load_or(const float* p, Mask m, float fill) { return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), m, p); }
inline void store(float* p, V v) { _mm512_storeu_ps(p, v); }
inline void store(float* p, V v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V add(V a, V b) { return _mm512_add_ps(a, b); }
inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V div(V a, V b) { return _mm512_div_ps(a, b); }
inline V max(V a, V b) { return _mm512_max_ps(a, b); }
inline V min(V a, V b) { return _mm512_min_ps(a, b); }
inline V sqrt(V a) { return _mm512_sqrt_ps(a); }
inline float hsum(V v) { return _mm512_reduce_add_ps(v); }
inline float hmax(V v) { return _mm512_reduce_max_ps(v); }
// How many lanes hold an infinity or a NaN.
inline int64_t count_nonfinite(V v) { return __builtin_popcount(_mm512_fpclass_ps_mask(v, 0x99)); }
// Lanes rearranged: result lane l = x[index lane l]
using VI = __m512i;
inline VI lane_index(const int32_t* idx) { return _mm512_loadu_si512(idx); }
inline V permute(V x, VI idx) { return _mm512_permutexvar_ps(idx, x); }
// 2^n * p, for whole-number n
inline V scale2(V p, V n) { return _mm512_scalef_ps(p, n); }
inline V round_nearest(V x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
// 1/sqrt(x) and 1/x to about 1 ulp: a 14-bit estimate and one Newton step.
inline V rsqrt(V x) {
  const V y = _mm512_rsqrt14_ps(x);
  return mul(y, fma(mul(set1(-0.5f), x), mul(y, y), set1(1.5f)));
}
inline V rcp(V x) {
  const V y = _mm512_rcp14_ps(x);
  return mul(y, fma(sub(zero(), x), y, set1(2.0f)));
}

#elif defined(__AVX2__)

inline constexpr int64_t W = 8;
using V = __m256;
using Mask = __m256i;
inline Mask mask_first(int64_t n) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n < 8 ? n : 8)), lanes);
}
inline V zero() { return _mm256_setzero_ps(); }
inline V set1(float x) { return _mm256_set1_ps(x); }
inline V load(const float* p) { return _mm256_loadu_ps(p); }
inline V load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
inline V load_or(const float* p, Mask m, float fill) {
  return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
inline void store(float* p, V v) { _mm256_storeu_ps(p, v); }
inline void store(float* p, V v, Mask m) { _mm256_maskstore_ps(p, m, v); }
inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V add(V a, V b) { return _mm256_add_ps(a, b); }
inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V div(V a, V b) { return _mm256_div_ps(a, b); }
inline V max(V a, V b) { return _mm256_max_ps(a, b); }
inline V min(V a, V b) { return _mm256_min_ps(a, b); }
inline V sqrt(V a) { return _mm256_sqrt_ps(a); }
inline float hsum(V v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline int64_t count_nonfinite(V v) {  // x - x is 0 for finite x, NaN otherwise
  return __builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_NEQ_UQ))));
}
using VI = __m256i;
inline VI lane_index(const int32_t* idx) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx)); }
inline V permute(V x, VI idx) { return _mm256_permutevar8x32_ps(x, idx); }
inline float hmax(V v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
inline V scale2(V p, V n) {  // n in [-126, 127] here: the exponent built directly
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
inline V round_nearest(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
// 1/sqrt(x) and 1/x: a 12-bit estimate and one Newton step (about 23 bits).
inline V rsqrt(V x) {
  const V y = _mm256_rsqrt_ps(x);
  return mul(y, fma(mul(set1(-0.5f), x), mul(y, y), set1(1.5f)));
}
inline V rcp(V x) {
  const V y = _mm256_rcp_ps(x);
  return mul(y, fma(sub(zero(), x), y, set1(2.0f)));
}

#elif defined(MICROGPT_SIMD_NEON)

inline constexpr int64_t W = 4;
using V = float32x4_t;
// NEON has no masked loads or stores: a mask is the number of leading lanes, and the
// partial ones go through a small buffer, so nothing past the end is ever touched.
using Mask = int64_t;
inline Mask mask_first(int64_t n) { return n < 4 ? n : 4; }
inline V zero() { return vdupq_n_f32(0.0f); }
inline V set1(float x) { return vdupq_n_f32(x); }
inline V load(const float* p) { return vld1q_f32(p); }
inline V load_or(const float* p, Mask m, float fill) {
  if (m == 4) return vld1q_f32(p);
  float b[4] = {fill, fill, fill, fill};
  for (int64_t i = 0; i < m; i++) b[i] = p[i];
  return vld1q_f32(b);
}
inline V load(const float* p, Mask m) { return load_or(p, m, 0.0f); }
inline void store(float* p, V v) { vst1q_f32(p, v); }
inline void store(float* p, V v, Mask m) {
  if (m == 4) return vst1q_f32(p, v);
  float b[4];
  vst1q_f32(b, v);
  for (int64_t i = 0; i < m; i++) p[i] = b[i];
}
inline V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
inline V add(V a, V b) { return vaddq_f32(a, b); }
inline V sub(V a, V b) { return vsubq_f32(a, b); }
inline V mul(V a, V b) { return vmulq_f32(a, b); }
inline V div(V a, V b) { return vdivq_f32(a, b); }
inline V max(V a, V b) { return vmaxq_f32(a, b); }
inline V min(V a, V b) { return vminq_f32(a, b); }
inline V sqrt(V a) { return vsqrtq_f32(a); }
inline float hsum(V v) { return vaddvq_f32(v); }
inline float hmax(V v) { return vmaxvq_f32(v); }
inline int64_t count_nonfinite(V v) {  // x - x is 0 for finite x, NaN otherwise
  const uint32x4_t finite = vceqq_f32(vsubq_f32(v, v), vdupq_n_f32(0.0f));
  return 4 - static_cast<int64_t>(vaddvq_u32(vshrq_n_u32(finite, 31)));
}
// Lanes rearranged through a byte table: lane l takes the four bytes of lane idx[l].
using VI = uint8x16_t;
inline VI lane_index(const int32_t* idx) {
  uint8_t bytes[16];
  for (int l = 0; l < 4; l++) {
    for (int b = 0; b < 4; b++) bytes[4 * l + b] = static_cast<uint8_t>(4 * idx[l] + b);
  }
  return vld1q_u8(bytes);
}
inline V permute(V x, VI idx) { return vreinterpretq_f32_u8(vqtbl1q_u8(vreinterpretq_u8_f32(x), idx)); }
inline V scale2(V p, V n) {  // n in [-126, 127] here: the exponent built directly
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(e));
}
inline V round_nearest(V x) { return vrndnq_f32(x); }
// 1/sqrt(x) and 1/x: an 8-bit estimate and two Newton steps (about 23 bits).
inline V rsqrt(V x) {
  V y = vrsqrteq_f32(x);
  y = vmulq_f32(y, vrsqrtsq_f32(vmulq_f32(x, y), y));
  return vmulq_f32(y, vrsqrtsq_f32(vmulq_f32(x, y), y));
}
inline V rcp(V x) {
  V y = vrecpeq_f32(x);
  y = vmulq_f32(y, vrecpsq_f32(x, y));
  return vmulq_f32(y, vrecpsq_f32(x, y));
}

#else

inline constexpr int64_t W = 1;
using V = float;
using Mask = bool;
inline Mask mask_first(int64_t n) { return n > 0; }
inline V zero() { return 0.0f; }
inline V set1(float x) { return x; }
inline V load(const float* p) { return *p; }
inline V load(const float* p, Mask m) { return m ? *p : 0.0f; }
inline V load_or(const float* p, Mask m, float fill) { return m ? *p : fill; }
inline void store(float* p, V v) { *p = v; }
inline void store(float* p, V v, Mask m) {
  if (m) *p = v;
}
inline V fma(V a, V b, V c) { return a * b + c; }
inline V add(V a, V b) { return a + b; }
inline V sub(V a, V b) { return a - b; }
inline V mul(V a, V b) { return a * b; }
inline V div(V a, V b) { return a / b; }
inline V max(V a, V b) { return a > b ? a : b; }
inline V min(V a, V b) { return a < b ? a : b; }
inline V sqrt(V a) { return std::sqrt(a); }
inline float hsum(V v) { return v; }
inline float hmax(V v) { return v; }
inline int64_t count_nonfinite(V v) { return std::isfinite(v) ? 0 : 1; }
inline V rsqrt(V x) { return 1.0f / std::sqrt(x); }
inline V rcp(V x) { return 1.0f / x; }
inline V exp(V x) { return std::exp(x); }

#endif

#if defined(MICROGPT_SIMD_VECTOR)
// e^x to about 2 ulp for x in [-87, 88] (smaller x gives 0): x = n ln2 + r with
// |r| <= ln2 / 2, e^r from Cephes' polynomial, then scaled by 2^n.
inline V exp(V x) {
  x = max(x, set1(-87.3f));
  x = min(x, set1(88.3f));
  const V n = round_nearest(mul(x, set1(1.44269504089f)));
  V r = fma(n, set1(-0.693359375f), x);
  r = fma(n, set1(2.12194440e-4f), r);
  V p = set1(1.9875691500e-4f);
  p = fma(p, r, set1(1.3981999507e-3f));
  p = fma(p, r, set1(8.3334519073e-3f));
  p = fma(p, r, set1(4.1665795894e-2f));
  p = fma(p, r, set1(1.6666665459e-1f));
  p = fma(p, r, set1(5.0000001201e-1f));
  p = fma(mul(p, r), r, add(r, set1(1.0f)));
  return scale2(p, n);
}

#endif

}  // namespace microgpt::simd
