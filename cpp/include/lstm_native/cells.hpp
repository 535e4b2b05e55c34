// Pointwise math of each recurrent cell: the only code that differs between LSTM, GRU and RNN.
//
// The sequence driver (sequence.hpp) computes, for one timestep and one sequence b,
//   gx = W_ih x_t + b_ih   [G*H]   (hoisted: one GEMM over all timesteps)
//   gh = W_hh h_{t-1} + b_hh [G*H] (one GEMM per step for all gates and the whole batch)
// and hands one row of each to a cell. A cell turns them into the new state and saves in `cache`
// ([kCache*H] per row) what its backward needs. Gate blocks inside G*H are in PyTorch's order.
//
// backward() receives dh = dL/dh_t (from the output and from step t+1) and, for cells with a
// cell state, dc = dL/dc_t, and produces
//   dgx = dL/dgx  [G*H]  (feeds dW_ih, db_ih and dx)
//   dgh = dL/dgh  [G*H]  (feeds dW_hh, db_hh and dh_{t-1} through W_hh); equal to dgx unless
//                        kSeparateGh, in which case the driver passes the same pointer twice
//   dh_prev = the part of dL/dh_{t-1} that does not pass through W_hh (GRU's z*h_{t-1} path)
//   dc (in place) = dL/dc_{t-1}
// Everything is elementwise over H lanes; Eigen vectorizes the maps (and tanh/logistic) with the
// SIMD the module is compiled for.
#pragma once

#include "types.hpp"

namespace lstm_native {

enum class CellKind : int { kLstm = 0, kGru = 1, kRnnTanh = 2, kRnnRelu = 3 };

// LSTM, gates (i, f, g, o):
//   i = σ(gx_i + gh_i), f = σ(gx_f + gh_f), g = tanh(gx_g + gh_g), o = σ(gx_o + gh_o)
//   c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
// cache = [i, f, g, o, tanh(c_t)].
struct LstmCell {
  static constexpr int kGates = 4;
  static constexpr int kCache = 5;
  static constexpr bool kHasCell = true;
  static constexpr bool kSeparateGh = false;

  template <class S>
  static void forward(Index H, const S* gx, const S* gh, const S* h_prev, const S* c_prev, S* h,
                      S* c, S* cache) {
    ArrMap<S> i(cache, H), f(cache + H, H), g(cache + 2 * H, H), o(cache + 3 * H, H),
        tc(cache + 4 * H, H);
    i = (ConstArrMap<S>(gx, H) + ConstArrMap<S>(gh, H)).logistic();
    f = (ConstArrMap<S>(gx + H, H) + ConstArrMap<S>(gh + H, H)).logistic();
    g = (ConstArrMap<S>(gx + 2 * H, H) + ConstArrMap<S>(gh + 2 * H, H)).tanh();
    o = (ConstArrMap<S>(gx + 3 * H, H) + ConstArrMap<S>(gh + 3 * H, H)).logistic();
    ArrMap<S> ct(c, H);
    ct = f * ConstArrMap<S>(c_prev, H) + i * g;
    tc = ct.tanh();
    ArrMap<S>(h, H) = o * tc;
  }

  // dc_t += dh * o * (1 - tanh²c);  di = dc*g, df = dc*c_{t-1}, dg = dc*i, do = dh*tanh(c)
  // through the activations: σ' = s(1-s), tanh' = 1-t²;  dc_{t-1} = dc_t * f.
  template <class S>
  static void backward(Index H, const S* cache, const S* h_prev, const S* c_prev, const S* h,
                       const S* dh_in, S* dc_io, S* dgx, S* dgh, S* dh_prev) {
    ConstArrMap<S> i(cache, H), f(cache + H, H), g(cache + 2 * H, H), o(cache + 3 * H, H),
        tc(cache + 4 * H, H), dh(dh_in, H), cp(c_prev, H);
    ArrMap<S> dc(dc_io, H);
    dc += dh * o * (S(1) - tc.square());
    ArrMap<S>(dgx, H) = dc * g * i * (S(1) - i);
    ArrMap<S>(dgx + H, H) = dc * cp * f * (S(1) - f);
    ArrMap<S>(dgx + 2 * H, H) = dc * i * (S(1) - g.square());
    ArrMap<S>(dgx + 3 * H, H) = dh * tc * o * (S(1) - o);
    dc *= f;
    ArrMap<S>(dh_prev, H).setZero();
  }
};

// GRU, gates (r, z, n), PyTorch's form (r applied after the recurrent product):
//   r = σ(gx_r + gh_r), z = σ(gx_z + gh_z), n = tanh(gx_n + r * gh_n)
//   h_t = (1 - z) * n + z * h_{t-1}
// cache = [r, z, n, gh_n]; gh_n (which includes b_hn) is needed for dr.
struct GruCell {
  static constexpr int kGates = 3;
  static constexpr int kCache = 4;
  static constexpr bool kHasCell = false;
  static constexpr bool kSeparateGh = true;

  template <class S>
  static void forward(Index H, const S* gx, const S* gh, const S* h_prev, const S* c_prev, S* h,
                      S* c, S* cache) {
    ArrMap<S> r(cache, H), z(cache + H, H), n(cache + 2 * H, H), ghn(cache + 3 * H, H);
    r = (ConstArrMap<S>(gx, H) + ConstArrMap<S>(gh, H)).logistic();
    z = (ConstArrMap<S>(gx + H, H) + ConstArrMap<S>(gh + H, H)).logistic();
    ghn = ConstArrMap<S>(gh + 2 * H, H);
    n = (ConstArrMap<S>(gx + 2 * H, H) + r * ghn).tanh();
    ArrMap<S>(h, H) = (S(1) - z) * n + z * ConstArrMap<S>(h_prev, H);
  }

  // dn = dh(1-z), dz = dh(h_{t-1} - n), dh_{t-1} (direct) = dh z;  dn̂ = dn(1-n²):
  // dgx_n = dn̂, dgh_n = dn̂ r;  dr̂ = dn̂ gh_n r(1-r) and dẑ = dz z(1-z) go to both gx and gh.
  template <class S>
  static void backward(Index H, const S* cache, const S* h_prev, const S* c_prev, const S* h,
                       const S* dh_in, S* dc_io, S* dgx, S* dgh, S* dh_prev) {
    ConstArrMap<S> r(cache, H), z(cache + H, H), n(cache + 2 * H, H), ghn(cache + 3 * H, H),
        dh(dh_in, H), hp(h_prev, H);
    ArrMap<S> dgx_r(dgx, H), dgx_z(dgx + H, H), dgx_n(dgx + 2 * H, H);
    dgx_n = dh * (S(1) - z) * (S(1) - n.square());
    dgx_r = dgx_n * ghn * r * (S(1) - r);
    dgx_z = dh * (hp - n) * z * (S(1) - z);
    ArrMap<S>(dgh, H) = dgx_r;
    ArrMap<S>(dgh + H, H) = dgx_z;
    ArrMap<S>(dgh + 2 * H, H) = dgx_n * r;
    ArrMap<S>(dh_prev, H) = dh * z;
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
  static void forward(Index H, const S* gx, const S* gh, const S* h_prev, const S* c_prev, S* h,
                      S* c, S* cache) {
    if constexpr (kRelu) {
      ArrMap<S>(h, H) = (ConstArrMap<S>(gx, H) + ConstArrMap<S>(gh, H)).max(S(0));
    } else {
      ArrMap<S>(h, H) = (ConstArrMap<S>(gx, H) + ConstArrMap<S>(gh, H)).tanh();
    }
  }

  // tanh' = 1 - h², relu' = [h > 0].
  template <class S>
  static void backward(Index H, const S* cache, const S* h_prev, const S* c_prev, const S* h,
                       const S* dh_in, S* dc_io, S* dgx, S* dgh, S* dh_prev) {
    ConstArrMap<S> ht(h, H), dh(dh_in, H);
    if constexpr (kRelu) {
      ArrMap<S>(dgx, H) = (ht > S(0)).select(dh, S(0));
    } else {
      ArrMap<S>(dgx, H) = dh * (S(1) - ht.square());
    }
    ArrMap<S>(dh_prev, H).setZero();
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
