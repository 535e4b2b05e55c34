// Common types of the lstm_native core: scalar-generic row-major Eigen maps over raw buffers.
//
// Every buffer the core touches is a plain contiguous array owned by someone else (NumPy or the
// Workspace); Eigen only ever sees it through a Map, so no Eigen object allocates during compute.
#pragma once

#include <Eigen/Core>

#include <cstddef>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lstm_native {

using Index = std::ptrdiff_t;

template <class S>
using RowMatrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using MatMap = Eigen::Map<RowMatrix<S>>;
template <class S>
using ConstMatMap = Eigen::Map<const RowMatrix<S>>;
template <class S>
using RowVec = Eigen::Matrix<S, 1, Eigen::Dynamic>;
template <class S>
using VecMap = Eigen::Map<RowVec<S>>;
template <class S>
using ConstVecMap = Eigen::Map<const RowVec<S>>;
template <class S>
using ArrMap = Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>>;
template <class S>
using ConstArrMap = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>;

// Workspace storage: SIMD-aligned, so that no kernel's result depends on where malloc put it.
template <class S>
using Buffer = std::vector<S, Eigen::aligned_allocator<S>>;

// acc[c] += Σ_r m[r, c] for row-major m [rows, cols], rows added in order. Used for bias
// gradients instead of Eigen's colwise().sum(), whose vectorized partial sums depend on the
// alignment of m and would make results vary with buffer addresses.
template <class S>
inline void add_column_sums(const S* m, Index rows, Index cols, S* acc) {
  for (Index r = 0; r < rows; ++r) {
    const S* row = m + r * cols;
    for (Index c = 0; c < cols; ++c) acc[c] += row[c];
  }
}

// Thrown for bad arguments that reach the core; the bindings turn it into Python's ValueError.
struct ArgumentError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

inline void require(bool ok, const std::string& what) {
  if (!ok) throw ArgumentError(what);
}

// Thrown when sizes are too large to represent or to hold (parameter or element counts beyond
// 64 bits, a network beyond what this build accepts); the bindings turn it into MemoryError.
class TooLarge : public std::bad_alloc {
 public:
  explicit TooLarge(std::string what) : what_(std::move(what)) {}
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  std::string what_;
};

// A non-negative element count whose + and * throw TooLarge instead of overflowing. Parameter
// counts and workspace sizes are computed with it from sizes a caller may have made absurd, so
// that the same code that sizes the buffers can also answer "how much?" for any request.
struct Count {
  Index v = 0;
  Count() = default;
  Count(Index n) : v(n) {}  // NOLINT: implicit from Index on purpose: Count(T) * n * H

  friend Count operator+(Count a, Count b) {
    if (a.v > std::numeric_limits<Index>::max() - b.v) overflow();
    return Count(a.v + b.v);
  }
  friend Count operator*(Count a, Count b) {
    if (a.v != 0 && b.v > std::numeric_limits<Index>::max() / a.v) overflow();
    return Count(a.v * b.v);
  }
  Count& operator+=(Count b) { return *this = *this + b; }

 private:
  [[noreturn]] static void overflow() {
    throw TooLarge("sizes too large: an element count exceeds 2^63");
  }
};

}  // namespace lstm_native
