// The kernel sets' Eigen types: scalar-generic row-major Eigen maps over raw buffers (in the
// kernel set's namespace, isa.hpp; Index, the errors and Count are common.hpp's).
//
// Every buffer the core touches is a plain contiguous array owned by someone else (NumPy or the
// Workspace); Eigen only ever sees it through a Map, so no Eigen object allocates during compute.
#pragma once

#include "common.hpp"
#include "isa.hpp"

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

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

// f(std::integral_constant<int, n>) for a run-time count n in 1..N (n >= N gives N, n <= 1
// gives 1): the kernels' register blocks take their shape as template arguments, and this is
// the one place a run-time block size becomes one (packed.hpp's row and column blocks,
// packed_bf16.hpp's).
template <int N, class F>
inline void with_count(Index n, F&& f) {
  if constexpr (N > 1) {
    if (n >= N) {
      f(std::integral_constant<int, N>{});
      return;
    }
    with_count<N - 1>(n, std::forward<F>(f));
  } else {
    f(std::integral_constant<int, 1>{});
  }
}

// Workspace storage: SIMD-aligned, so that no kernel's result depends on where malloc put it.
template <class S>
using Buffer = std::vector<S, Eigen::aligned_allocator<S>>;

// No NaN or infinity in p [n]: x * 0 is 0 for finite x and NaN otherwise, so one vectorized
// sum answers (without the overflow a plain sum of large values can give). (bindings.cpp, a
// baseline translation unit outside the kernel sets, has its own: finite_values.)
template <class S>
inline bool all_finite(const S* p, Index n) {
  return std::isfinite((ConstArrMap<S>(p, n) * S(0)).sum());
}

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

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
