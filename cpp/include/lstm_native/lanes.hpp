// SIMD lanes for the fused pointwise kernels of the cells.
//
// A cell's math is written once as a generic lambda over a lane type V: either a SIMD packet of
// the scalar type (Eigen's packet for the instruction set compiled in: 16 floats with AVX-512)
// or the scalar itself for the tail of a row whose length is not a whole number of packets.
// for_lanes() walks a row with full packets and then scalar lanes, so each row is one pass in
// registers (all gates, the state update and the saved activations) instead of one pass per
// gate.
//
// Activations:  σ(x) = 1 / (1 + e^{-x}),  tanh(x) = 1 - 2 / (e^{2x} + 1)
// float packets use Eigen's rational approximations (a few ulp); double packets the formulas
// above on Eigen's vectorized exp; scalar lanes std::exp / std::tanh.
#pragma once

#include "types.hpp"

#include <cmath>
#include <type_traits>

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {
namespace lanes {

using namespace Eigen::internal;

template <class S>
using Packet = typename packet_traits<S>::type;

template <class V, class S>
inline V load(const S* p) {
  if constexpr (std::is_same_v<V, S>)
    return *p;
  else
    return ploadu<V>(p);
}
template <class V, class S>
inline void store(S* p, const V& v) {
  if constexpr (std::is_same_v<V, S>)
    *p = v;
  else
    pstoreu(p, v);
}
template <class V>
inline V set(double v) {
  using S = typename unpacket_traits<V>::type;
  return pset1<V>(S(v));
}

template <class V>
inline V sigmoid(const V& x) {
  using S = typename unpacket_traits<V>::type;
  if constexpr (std::is_same_v<V, S>)
    return S(1) / (S(1) + std::exp(-x));
  else if constexpr (std::is_same_v<S, float>)
    return scalar_logistic_op<float>().packetOp(x);
  else
    return pdiv(set<V>(1), padd(set<V>(1), pexp(pnegate(x))));
}

template <class V>
inline V tanh(const V& x) {
  using S = typename unpacket_traits<V>::type;
  if constexpr (std::is_same_v<V, S>)
    return std::tanh(x);
  else if constexpr (std::is_same_v<S, float>)
    return ptanh(x);
  else
    return psub(set<V>(1), pdiv(set<V>(2), padd(pexp(padd(x, x)), set<V>(1))));
}

// max(x, 0) and its derivative's mask applied to d: d where x > 0, else 0.
template <class V>
inline V relu(const V& x) {
  using S = typename unpacket_traits<V>::type;
  if constexpr (std::is_same_v<V, S>)
    return x > S(0) ? x : S(0);
  else
    return pmax(x, pzero(x));
}
template <class V>
inline V relu_grad(const V& y, const V& d) {
  using S = typename unpacket_traits<V>::type;
  if constexpr (std::is_same_v<V, S>)
    return y > S(0) ? d : S(0);
  else
    return pand(d, pcmp_lt(pzero(y), y));
}

// f(V{}, j) for the lanes of a row of length H: packets at j = 0, kP, ..., then scalars.
template <class S, class F>
inline void for_lanes(Index H, F&& f) {
  using P = Packet<S>;
  constexpr Index kP = unpacket_traits<P>::size;
  Index j = 0;
  if constexpr (kP > 1)
    for (; j + kP <= H; j += kP) f(P{}, j);
  for (; j < H; ++j) f(S{}, j);
}

}  // namespace lanes
}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
