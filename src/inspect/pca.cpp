#include "inspect/pca.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/error.h"

namespace microgpt {

namespace {

// Flips v so that its largest-magnitude component is positive. "Largest" allows for
// rounding: components within a relative 1e-9 of the maximum count as equal, and the
// first of them decides, so (0.7071, -0.7071) and (-0.7071, 0.7071) both come out as
// the first.
void fix_sign(double* v, int64_t n) {
  double big = 0;
  for (int64_t i = 0; i < n; i++) big = std::max(big, std::abs(v[i]));
  if (big == 0) return;
  for (int64_t i = 0; i < n; i++) {
    if (std::abs(v[i]) >= big * (1 - 1e-9)) {
      if (v[i] < 0) {
        for (int64_t j = 0; j < n; j++) v[j] = -v[j];
      }
      return;
    }
  }
}

}  // namespace

SymmetricEigen symmetric_eigen(std::span<const double> a_in, int64_t n) {
  if (n < 1 || a_in.size() != static_cast<size_t>(n * n)) {
    throw Error("symmetric_eigen: expected a " + std::to_string(n) + " x " + std::to_string(n) + " matrix, got " +
                std::to_string(a_in.size()) + " values");
  }
  const auto N = static_cast<size_t>(n);
  std::vector<double> a(N * N);
  for (size_t i = 0; i < N; i++) {
    for (size_t j = i; j < N; j++) a[i * N + j] = a[j * N + i] = a_in[i * N + j];
  }
  std::vector<double> v(N * N, 0.0);  // columns are the eigenvectors as they form
  for (size_t i = 0; i < N; i++) v[i * N + i] = 1;

  double frob2 = 0;
  for (double x : a) frob2 += x * x;
  // Cyclic Jacobi (Golub & Van Loan 8.5): each rotation zeroes one off-diagonal pair;
  // a sweep visits them all. Convergence is quadratic, so 100 sweeps is far beyond need.
  for (int sweep = 0; sweep < 100; sweep++) {
    double off2 = 0;
    for (size_t p = 0; p < N; p++) {
      for (size_t q = p + 1; q < N; q++) off2 += a[p * N + q] * a[p * N + q];
    }
    if (off2 <= 1e-30 * frob2 || off2 == 0) break;
    for (size_t p = 0; p < N; p++) {
      for (size_t q = p + 1; q < N; q++) {
        const double apq = a[p * N + q];
        if (apq == 0) continue;
        const double theta = (a[q * N + q] - a[p * N + p]) / (2 * apq);
        // The smaller root of t^2 + 2 theta t - 1 = 0, written to avoid cancellation.
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1);
        const double s = t * c;
        // A <- J^T A J with J the rotation in the (p, q) plane: columns, then rows.
        for (size_t k = 0; k < N; k++) {
          const double akp = a[k * N + p], akq = a[k * N + q];
          a[k * N + p] = c * akp - s * akq;
          a[k * N + q] = s * akp + c * akq;
        }
        for (size_t k = 0; k < N; k++) {
          const double apk = a[p * N + k], aqk = a[q * N + k];
          a[p * N + k] = c * apk - s * aqk;
          a[q * N + k] = s * apk + c * aqk;
        }
        a[p * N + q] = a[q * N + p] = 0;
        for (size_t k = 0; k < N; k++) {
          const double vkp = v[k * N + p], vkq = v[k * N + q];
          v[k * N + p] = c * vkp - s * vkq;
          v[k * N + q] = s * vkp + c * vkq;
        }
      }
    }
  }

  std::vector<size_t> order(N);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return a[i * N + i] > a[j * N + j]; });
  SymmetricEigen out;
  out.values.resize(N);
  out.vectors.resize(N * N);
  for (size_t k = 0; k < N; k++) {
    const size_t col = order[k];
    out.values[k] = a[col * N + col];
    for (size_t i = 0; i < N; i++) out.vectors[k * N + i] = v[i * N + col];
    fix_sign(&out.vectors[k * N], n);
  }
  return out;
}

Pca2 pca_2d(std::span<const double> data, int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1 || data.size() != static_cast<size_t>(rows * cols)) {
    throw Error("pca_2d: expected " + std::to_string(rows) + " x " + std::to_string(cols) + " values, got " +
                std::to_string(data.size()));
  }
  const auto R = static_cast<size_t>(rows), C = static_cast<size_t>(cols);
  Pca2 pca;
  pca.rows = rows;
  pca.cols = cols;
  pca.mean.assign(C, 0.0);
  for (size_t r = 0; r < R; r++) {
    for (size_t c = 0; c < C; c++) pca.mean[c] += data[r * C + c];
  }
  for (double& m : pca.mean) m /= static_cast<double>(rows);
  std::vector<double> centred(R * C);
  for (size_t r = 0; r < R; r++) {
    for (size_t c = 0; c < C; c++) centred[r * C + c] = data[r * C + c] - pca.mean[c];
  }
  std::vector<double> cov(C * C, 0.0);
  for (size_t r = 0; r < R; r++) {
    const double* x = &centred[r * C];
    for (size_t i = 0; i < C; i++) {
      for (size_t j = i; j < C; j++) cov[i * C + j] += x[i] * x[j];
    }
  }
  for (size_t i = 0; i < C; i++) {
    for (size_t j = i; j < C; j++) cov[j * C + i] = cov[i * C + j] /= static_cast<double>(rows);
    pca.total_variance += cov[i * C + i];
  }

  const SymmetricEigen eig = symmetric_eigen(cov, cols);
  for (size_t k = 0; k < 2; k++) {
    pca.axes[k].assign(C, 0.0);
    if (k < C) {
      std::copy_n(&eig.vectors[k * C], C, pca.axes[k].begin());
      // Eigenvalues of a covariance are >= 0; rounding can leave -1e-18.
      const double value = std::max(0.0, eig.values[k]);
      pca.variance_share[k] = pca.total_variance > 0 ? std::min(1.0, value / pca.total_variance) : 0.0;
    }
  }
  pca.coords.assign(R * 2, 0.0);
  for (size_t r = 0; r < R; r++) {
    for (size_t k = 0; k < 2; k++) {
      double s = 0;
      for (size_t c = 0; c < C; c++) s += centred[r * C + c] * pca.axes[k][c];
      pca.coords[r * 2 + k] = s;
    }
  }
  return pca;
}

}  // namespace microgpt
