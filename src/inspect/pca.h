// Principal component analysis in two dimensions, for plotting embeddings: the rows of
// a matrix are centred, their covariance (C x C) is diagonalised by cyclic Jacobi
// rotations, and the rows are projected on the two leading eigenvectors.
// Jacobi rather than a faster method: the matrices are at most a few hundred wide,
// it needs no library, and it is accurate even for clustered or repeated eigenvalues.
// Not here: more than two components' coordinates, whitening, or anything that scales
// past a C of about a thousand (the cost is about 10 C^3).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace microgpt {

// Eigen-decomposition of a symmetric n x n matrix.
struct SymmetricEigen {
  std::vector<double> values;   // n, largest first (ties keep the lower index first)
  std::vector<double> vectors;  // (n, n): row k is the unit eigenvector of values[k]
};

// a is (n, n) row-major and symmetric (only its upper triangle is read). Each
// eigenvector's sign is fixed so that its largest-magnitude component is positive (the
// first such component when several are equal to rounding), so results do not depend
// on the rotation order.
SymmetricEigen symmetric_eigen(std::span<const double> a, int64_t n);

struct Pca2 {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<double> mean;                 // cols: the centre that was subtracted
  std::array<std::vector<double>, 2> axes;  // unit directions (cols each), signs as above;
                                            // all zero where there is no second axis (cols 1)
  std::array<double, 2> variance_share{};   // eigenvalue / total variance, in 0..1; 0 when
                                            // every row is the same
  double total_variance = 0;                // trace of the covariance (mean squared distance
                                            // of a row from the mean)
  std::vector<double> coords;               // (rows, 2): (row - mean) . axes[k]
};

// PCA of the rows of data (rows, cols), row-major. rows and cols must be >= 1 and data
// must hold rows * cols values; throws Error otherwise.
Pca2 pca_2d(std::span<const double> data, int64_t rows, int64_t cols);

}  // namespace microgpt
