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
#if defined(EIGEN_VECTORIZE_AVX512)
#include <immintrin.h>
#endif
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

// p / q for the fast activations below: on AVX-512 a reciprocal estimate (vrcp14ps, 14 bits)
// and one Newton step on the quotient, y = y0 + r (p - q y0): within an ulp or two of the
// division at a fraction of its cost (a float division of 16 lanes occupies the divider ~10
// cycles, and a cell step runs five of them per packet); elsewhere the division.
template <class V>
EIGEN_ALWAYS_INLINE V fast_div(const V& p, const V& q) {
#if defined(EIGEN_VECTORIZE_AVX512)
  if constexpr (std::is_same_v<V, Packet16f>) {
    const __m512 r = _mm512_rcp14_ps(q);
    const __m512 y0 = _mm512_mul_ps(p, r);
    return _mm512_fmadd_ps(_mm512_fnmadd_ps(q, y0, p), r, y0);
  }
#endif
  return pdiv(p, q);
}

// (Always inlined: a call per activation, five a packet, made GCC spill the live packets
// around each call in the fused cell.)
// σ and tanh for the fused bfloat16 inference step (stack.cpp): float packets use Eigen's
// rational approximations (the same polynomials as sigmoid() and tanh() above, without their
// branch and select at the ends, below) with fast_div for the final division; scalar lanes as
// sigmoid() and tanh(). Not used in float32 or float64, whose results stay those of sigmoid()
// and tanh().
// σ differs from Eigen's below x = -9, where Eigen switches to e^x for float32's relative
// accuracy: a branch per packet, and e^x for the whole packet as soon as one lane is that far
// out, which the saturated gates of a trained network often are. Here x is clamped at -18
// instead: the rational keeps an absolute error under 4e-10 down to there (at -30 it is off by
// 4e-5), and σ(-18) = 1.5e-8, so the result is within 2e-7 of σ(x) everywhere (float32's
// rounding of p/q next to -0.5, as next to +0.5 at the top; checked on a 2e6-point grid over
// [-40, 15.7]), far below what h's rounding to bf16 (8 bits) leaves.
template <class V>
EIGEN_ALWAYS_INLINE V fast_sigmoid(const V& x_in) {
  using S = typename unpacket_traits<V>::type;
  if constexpr (!std::is_same_v<S, float> || std::is_same_v<V, S>) {
    return sigmoid(x_in);
  } else {
#ifdef EIGEN_VECTORIZE_FMA
    const V x = pmax(pmin(x_in, pset1<V>(15.7243833541870117f)), pset1<V>(-18.f));
#else
    const V x = pmax(pmin(x_in, pset1<V>(15.6437711715698242f)), pset1<V>(-18.f));
#endif
    const V x2 = pmul(x, x);
    V p = pmadd(x2, pset1<V>(4.37031012579801e-11f), pset1<V>(1.15627324459942e-07f));
    p = pmadd(x2, p, pset1<V>(6.08574864600143e-05f));
    p = pmadd(x2, p, pset1<V>(8.51377133304701e-03f));
    p = pmadd(x2, p, pset1<V>(2.48287947061529e-01f));
    p = pmul(x, p);
    V q = pmadd(x2, pset1<V>(6.10247389755681e-13f), pset1<V>(5.76102136993427e-09f));
    q = pmadd(x2, q, pset1<V>(6.29106785017040e-06f));
    q = pmadd(x2, q, pset1<V>(1.70198817374094e-03f));
    q = pmadd(x2, q, pset1<V>(1.16817656904453e-01f));
    q = pmadd(x2, q, pset1<V>(9.93151921023180e-01f));
    return padd(fast_div(p, q), pset1<V>(0.5f));
  }
}

template <class V>
EIGEN_ALWAYS_INLINE V fast_tanh(const V& x_in) {
  using S = typename unpacket_traits<V>::type;
  if constexpr (!std::is_same_v<S, float> || std::is_same_v<V, S>) {
    return tanh(x_in);
  } else {
#ifdef EIGEN_VECTORIZE_FMA
    const V clamp = pset1<V>(7.99881172180175781f);
#else
    const V clamp = pset1<V>(7.90531110763549805f);
#endif
    const V x = pmax(pmin(x_in, clamp), pnegate(clamp));
    const V x2 = pmul(x, x);
    V p = pmadd(x2, pset1<V>(-2.76076847742355e-16f), pset1<V>(2.00018790482477e-13f));
    p = pmadd(x2, p, pset1<V>(-8.60467152213735e-11f));
    p = pmadd(x2, p, pset1<V>(5.12229709037114e-08f));
    p = pmadd(x2, p, pset1<V>(1.48572235717979e-05f));
    p = pmadd(x2, p, pset1<V>(6.37261928875436e-04f));
    p = pmadd(x2, p, pset1<V>(4.89352455891786e-03f));
    p = pmul(x, p);
    V q = pmadd(x2, pset1<V>(1.19825839466702e-06f), pset1<V>(1.18534705686654e-04f));
    q = pmadd(x2, q, pset1<V>(2.26843463243900e-03f));
    q = pmadd(x2, q, pset1<V>(4.89352518554385e-03f));
    // (Eigen returns x itself for |x| < 4e-4; the rational gives x (1 - 1.3e-7) there, within
    // a float32 ulp, which bf16 inference cannot see: the mask and select are left out.)
    return fast_div(p, q);
  }
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

// f(V{}, j) for the lanes [j0, j1) of a row: packets at j = j0, j0 + kP, ..., then scalars.
// With j0 a multiple of 64 and j1 one too or the row's end, the lanes get the same packets
// and scalars as for_lanes() over the whole row gives them.
template <class S, class F>
inline void for_lanes_range(Index j0, Index j1, F&& f) {
  using P = Packet<S>;
  constexpr Index kP = unpacket_traits<P>::size;
  Index j = j0;
  if constexpr (kP > 1)
    for (; j + kP <= j1; j += kP) f(P{}, j);
  for (; j < j1; ++j) f(S{}, j);
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
