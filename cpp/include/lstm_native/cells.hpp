// Pointwise math of each recurrent cell: the only code that differs between LSTM, GRU and RNN.
//
// The sequence driver (sequence.hpp) computes, for one timestep and the n running sequences,
//   gx = x_t W_ihᵀ + b_ih      [n, G*H]  (hoisted: one GEMM over all timesteps)
//   gh = h_{t-1} W_hhᵀ + b_hh  [n, G*H]  (one GEMM per step for all gates and rows)
// and hands both to a cell, which turns them into the new state h, c [n, H] and saves in `cache`
// ([n, kCache*H]) what its backward needs. Gate blocks inside G*H are in PyTorch's order.
// A cell works on all n rows at once (2-D maps with row strides), so each gate is one
// vectorized pass per step rather than one call per sequence.
//
// backward() receives dh = dL/dh_t [n, H] (from the output and from step t+1) and, for cells
// with a cell state, dc = dL/dc_t [n, H], and produces
//   dgx = dL/dgx  [n, G*H]  (feeds dW_ih, db_ih and dx)
//   dgh = dL/dgh  [n, G*H]  (feeds dW_hh, db_hh and dh_{t-1} through W_hh); written only when
//                           kSeparateGh, otherwise the driver uses dgx for both
//   dh_prev [n, H] = the part of dL/dh_{t-1} that does not pass through W_hh (GRU's z h_{t-1})
//   dc (in place) = dL/dc_{t-1}
// Everything is elementwise; Eigen vectorizes the maps (and tanh/logistic) with the SIMD the
// module is compiled for.
#pragma once

#include "types.hpp"

namespace lstm_native {

enum class CellKind : int { kLstm = 0, kGru = 1, kRnnTanh = 2, kRnnRelu = 3 };

// [n, H] block starting at p whose rows are `ld` elements apart.
template <class S>
inline Blk<S> blk(S* p, Index n, Index H, Index ld) {
  return Blk<S>(p, n, H, Eigen::OuterStride<>(ld));
}
template <class S>
inline ConstBlk<S> blk(const S* p, Index n, Index H, Index ld) {
  return ConstBlk<S>(p, n, H, Eigen::OuterStride<>(ld));
}

// LSTM, gates (i, f, g, o):
//   i = σ(gx_i + gh_i), f = σ(gx_f + gh_f), g = tanh(gx_g + gh_g), o = σ(gx_o + gh_o)
//   c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
// cache row = [i, f, g, o, tanh(c_t)].
struct LstmCell {
  static constexpr int kGates = 4;
  static constexpr int kCache = 5;
  static constexpr bool kHasCell = true;
  static constexpr bool kSeparateGh = false;

  template <class S>
  static void forward(Index n, Index H, const S* gx, const S* gh, const S* h_prev,
                      const S* c_prev, S* h, S* c, S* cache) {
    const Index GH = 4 * H, lc = kCache * H;
    auto pre = [&](int q) { return blk(gx + q * H, n, H, GH) + blk(gh + q * H, n, H, GH); };
    auto i = blk(cache, n, H, lc), f = blk(cache + H, n, H, lc), g = blk(cache + 2 * H, n, H, lc),
         o = blk(cache + 3 * H, n, H, lc), tc = blk(cache + 4 * H, n, H, lc);
    i = pre(0).logistic();
    f = pre(1).logistic();
    g = pre(2).tanh();
    o = pre(3).logistic();
    auto ct = blk(c, n, H, H);
    ct = f * blk(c_prev, n, H, H) + i * g;
    tc = ct.tanh();
    blk(h, n, H, H) = o * tc;
  }

  // dc_t += dh * o * (1 - tanh²c);  di = dc*g, df = dc*c_{t-1}, dg = dc*i, do = dh*tanh(c)
  // through the activations: σ' = s(1-s), tanh' = 1-t²;  dc_{t-1} = dc_t * f.
  template <class S>
  static void backward(Index n, Index H, const S* cache, const S* h_prev, const S* c_prev,
                       const S* h, const S* dh_in, S* dc_io, S* dgx, S* dgh, S* dh_prev) {
    const Index GH = 4 * H, lc = kCache * H;
    auto i = blk(cache, n, H, lc), f = blk(cache + H, n, H, lc), g = blk(cache + 2 * H, n, H, lc),
         o = blk(cache + 3 * H, n, H, lc), tc = blk(cache + 4 * H, n, H, lc);
    auto dh = blk(dh_in, n, H, H);
    auto dc = blk(dc_io, n, H, H);
    dc += dh * o * (S(1) - tc.square());
    blk(dgx, n, H, GH) = dc * g * i * (S(1) - i);
    blk(dgx + H, n, H, GH) = dc * blk(c_prev, n, H, H) * f * (S(1) - f);
    blk(dgx + 2 * H, n, H, GH) = dc * i * (S(1) - g.square());
    blk(dgx + 3 * H, n, H, GH) = dh * tc * o * (S(1) - o);
    dc *= f;
    blk(dh_prev, n, H, H).setZero();
  }
};

// GRU, gates (r, z, n), PyTorch's form (r applied after the recurrent product):
//   r = σ(gx_r + gh_r), z = σ(gx_z + gh_z), n = tanh(gx_n + r * gh_n)
//   h_t = (1 - z) * n + z * h_{t-1}
// cache row = [r, z, n, gh_n]; gh_n (which includes b_hn) is needed for dr.
struct GruCell {
  static constexpr int kGates = 3;
  static constexpr int kCache = 4;
  static constexpr bool kHasCell = false;
  static constexpr bool kSeparateGh = true;

  template <class S>
  static void forward(Index n, Index H, const S* gx, const S* gh, const S* h_prev,
                      const S* c_prev, S* h, S* c, S* cache) {
    const Index GH = 3 * H, lc = kCache * H;
    auto r = blk(cache, n, H, lc), z = blk(cache + H, n, H, lc), nn = blk(cache + 2 * H, n, H, lc),
         ghn = blk(cache + 3 * H, n, H, lc);
    r = (blk(gx, n, H, GH) + blk(gh, n, H, GH)).logistic();
    z = (blk(gx + H, n, H, GH) + blk(gh + H, n, H, GH)).logistic();
    ghn = blk(gh + 2 * H, n, H, GH);
    nn = (blk(gx + 2 * H, n, H, GH) + r * ghn).tanh();
    blk(h, n, H, H) = (S(1) - z) * nn + z * blk(h_prev, n, H, H);
  }

  // dn = dh(1-z), dz = dh(h_{t-1} - n), dh_{t-1} (direct) = dh z;  dn̂ = dn(1-n²):
  // dgx_n = dn̂, dgh_n = dn̂ r;  dr̂ = dn̂ gh_n r(1-r) and dẑ = dz z(1-z) go to both gx and gh.
  template <class S>
  static void backward(Index n, Index H, const S* cache, const S* h_prev, const S* c_prev,
                       const S* h, const S* dh_in, S* dc_io, S* dgx, S* dgh, S* dh_prev) {
    const Index GH = 3 * H, lc = kCache * H;
    auto r = blk(cache, n, H, lc), z = blk(cache + H, n, H, lc), nn = blk(cache + 2 * H, n, H, lc),
         ghn = blk(cache + 3 * H, n, H, lc);
    auto dh = blk(dh_in, n, H, H);
    auto dgx_r = blk(dgx, n, H, GH), dgx_z = blk(dgx + H, n, H, GH), dgx_n = blk(dgx + 2 * H, n, H, GH);
    dgx_n = dh * (S(1) - z) * (S(1) - nn.square());
    dgx_r = dgx_n * ghn * r * (S(1) - r);
    dgx_z = dh * (blk(h_prev, n, H, H) - nn) * z * (S(1) - z);
    blk(dgh, n, H, GH) = dgx_r;
    blk(dgh + H, n, H, GH) = dgx_z;
    blk(dgh + 2 * H, n, H, GH) = dgx_n * r;
    blk(dh_prev, n, H, H) = dh * z;
  }
};

// Elman RNN: h_t = act(gx + gh), act = tanh or relu. No cache: act' is a function of h_t.
template <bool kRelu>
struct RnnCell {
  static constexpr int kGates = 1;
  static constexpr int kCache = 0;
  static constexpr bool kHasCell = false;
  static constexpr bool kSeparateGh = false;

  template <class S>
  static void forward(Index n, Index H, const S* gx, const S* gh, const S* h_prev,
                      const S* c_prev, S* h, S* c, S* cache) {
    if constexpr (kRelu)
      blk(h, n, H, H) = (blk(gx, n, H, H) + blk(gh, n, H, H)).max(S(0));
    else
      blk(h, n, H, H) = (blk(gx, n, H, H) + blk(gh, n, H, H)).tanh();
  }

  // tanh' = 1 - h², relu' = [h > 0].
  template <class S>
  static void backward(Index n, Index H, const S* cache, const S* h_prev, const S* c_prev,
                       const S* h, const S* dh_in, S* dc_io, S* dgx, S* dgh, S* dh_prev) {
    auto ht = blk(h, n, H, H);
    auto dh = blk(dh_in, n, H, H);
    if constexpr (kRelu)
      blk(dgx, n, H, H) = (ht > S(0)).select(dh, S(0));
    else
      blk(dgx, n, H, H) = dh * (S(1) - ht.square());
    blk(dh_prev, n, H, H).setZero();
  }
};

inline int num_gates(CellKind k) {
  switch (k) {
    case CellKind::kLstm: return LstmCell::kGates;
    case CellKind::kGru: return GruCell::kGates;
    default: return 1;
  }
}
inline bool has_cell_state(CellKind k) { return k == CellKind::kLstm; }

// Runs f(CellType{}) for the runtime cell kind: the one place where a kind becomes a type.
template <class F>
decltype(auto) dispatch_cell(CellKind k, F&& f) {
  switch (k) {
    case CellKind::kLstm: return f(LstmCell{});
    case CellKind::kGru: return f(GruCell{});
    case CellKind::kRnnTanh: return f(RnnCell<false>{});
    case CellKind::kRnnRelu: return f(RnnCell<true>{});
  }
  throw ArgumentError("unknown cell kind");
}

}  // namespace lstm_native
