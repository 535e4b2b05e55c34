// What every part of the core shares, whatever instruction set it was compiled for: the index
// type, the error types the bindings translate, and checked element counts. Nothing here
// touches Eigen or SIMD (see isa.hpp for what does), so the bindings and the dispatcher,
// compiled for the baseline instruction set, use the same definitions as every kernel set.
#pragma once

#include <cstddef>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace lstm_native {

using Index = std::ptrdiff_t;

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
