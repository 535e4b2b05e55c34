// Pointwise math of each recurrent cell: the only code that differs between LSTM, GRU and RNN.
//
// The sequence driver (sequence.hpp) computes, for one timestep and the n running sequences,
//   gates = x_t W_ihᵀ + b_ih      [n, G*H]  (hoisted: one GEMM over all timesteps)
//   gh    = h_{t-1} W_hhᵀ + b_hh  [n, G*H]  (one GEMM per step for all gates and rows)
// and hands both to a cell, which writes the new state h, c [n, H] and overwrites `gates` with
// the activated gates, which is what its backward needs (plus kExtra*H values per row in
// `extra`, e.g. GRU's gh_n). Keeping the activations where the pre-activations were saves a
// buffer and its memory traffic. Gate blocks inside G*H are in PyTorch's order.
//
// backward() receives the activated gates, dh = dL/dh_t [n, H] (from the output and from
// step t+1) and, for cells with a cell state, dc = dL/dc_t [n, H], and writes
//   gates (in place) = dL/dgx [n, G*H]  (feeds dW_ih, db_ih and dx)
//   dgh = dL/dgh  [n, G*H]  (feeds dW_hh, db_hh and dh_{t-1} through W_hh); written only when
//                           kSeparateGh, otherwise the driver uses dL/dgx for both
//   dh_prev [n, H] = the part of dL/dh_{t-1} that does not pass through W_hh (GRU's z h_{t-1})
//   dc (in place) = dL/dc_{t-1}
// Each row is one fused SIMD pass (lanes.hpp); everything is elementwise.
#pragma once

#include "lanes.hpp"
#include "types.hpp"

namespace lstm_native {

enum class CellKind : int { kLstm = 0, kGru = 1, kRnnTanh = 2, kRnnRelu = 3 };

// LSTM, gates (i, f, g, o):
//   i = σ(gx_i + gh_i), f = σ(gx_f + gh_f), g = tanh(gx_g + gh_g), o = σ(gx_o + gh_o)
//   c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
// Saved: gates = [i, f, g, o]; tanh(c_t) is recomputed in backward from c_t.
struct LstmCell {
  static constexpr int kGates = 4;
  static constexpr int kExtra = 0;
  static constexpr bool kHasCell = true;
  static constexpr bool kSeparateGh = false;

  template <class S>
  static void forward(Index n, Index H, S* gates, const S* gh, const S* h_prev,
                      const S* c_prev, S* h, S* c, S* extra) {
    using namespace lanes;
    const Index GH = 4 * H;
    for (Index r = 0; r < n; ++r) {
      S* x = gates + r * GH;
      const S* y = gh + r * GH;
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        auto pre = [&](Index q) { return padd(load<V>(x + q * H + j), load<V>(y + q * H + j)); };
        const V i = sigmoid(pre(0)), f = sigmoid(pre(1)), g = tanh(pre(2)), o = sigmoid(pre(3));
        const V ct = pmadd(f, load<V>(c_prev + r * H + j), pmul(i, g));
        store(x + j, i);
        store(x + H + j, f);
        store(x + 2 * H + j, g);
        store(x + 3 * H + j, o);
        store(c + r * H + j, ct);
        store(h + r * H + j, pmul(o, tanh(ct)));
      });
    }
  }

  // dc_t += dh * o * (1 - tanh²c);  di = dc*g, df = dc*c_{t-1}, dg = dc*i, do = dh*tanh(c)
  // through the activations: σ' = s(1-s), tanh' = 1-t²;  dc_{t-1} = dc_t * f.
  template <class S>
  static void backward(Index n, Index H, S* gates, const S* extra, const S* h_prev,
                       const S* c_prev, const S* h, const S* c, const S* dh_in, S* dc_io,
                       S* dgh, S* dh_prev) {
    using namespace lanes;
    const Index GH = 4 * H;
    for (Index r = 0; r < n; ++r) {
      S* d = gates + r * GH;
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        const V one = set<V>(1);
        const V i = load<V>(d + j), f = load<V>(d + H + j), g = load<V>(d + 2 * H + j),
                o = load<V>(d + 3 * H + j), tc = tanh(load<V>(c + r * H + j));
        const V dh = load<V>(dh_in + r * H + j);
        const V dc = padd(load<V>(dc_io + r * H + j), pmul(pmul(dh, o), psub(one, pmul(tc, tc))));
        store(d + j, pmul(pmul(dc, g), pmul(i, psub(one, i))));
        store(d + H + j, pmul(pmul(dc, load<V>(c_prev + r * H + j)), pmul(f, psub(one, f))));
        store(d + 2 * H + j, pmul(pmul(dc, i), psub(one, pmul(g, g))));
        store(d + 3 * H + j, pmul(pmul(dh, tc), pmul(o, psub(one, o))));
        store(dc_io + r * H + j, pmul(dc, f));
        store(dh_prev + r * H + j, pzero(dh));
      });
    }
  }
};

// GRU, gates (r, z, n), PyTorch's form (r applied after the recurrent product):
//   r = σ(gx_r + gh_r), z = σ(gx_z + gh_z), n = tanh(gx_n + r * gh_n)
//   h_t = (1 - z) * n + z * h_{t-1}
// Saved: gates = [r, z, n], extra = [gh_n] (gh_n includes b_hn; needed for dr).
struct GruCell {
  static constexpr int kGates = 3;
  static constexpr int kExtra = 1;
  static constexpr bool kHasCell = false;
  static constexpr bool kSeparateGh = true;

  template <class S>
  static void forward(Index n, Index H, S* gates, const S* gh, const S* h_prev,
                      const S* c_prev, S* h, S* c, S* extra) {
    using namespace lanes;
    const Index GH = 3 * H;
    for (Index r = 0; r < n; ++r) {
      S* x = gates + r * GH;
      const S* y = gh + r * GH;
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        const V rg = sigmoid(padd(load<V>(x + j), load<V>(y + j)));
        const V z = sigmoid(padd(load<V>(x + H + j), load<V>(y + H + j)));
        const V ghn = load<V>(y + 2 * H + j);
        const V nn = tanh(pmadd(rg, ghn, load<V>(x + 2 * H + j)));
        const V hp = load<V>(h_prev + r * H + j);
        store(x + j, rg);
        store(x + H + j, z);
        store(x + 2 * H + j, nn);
        store(extra + r * H + j, ghn);
        store(h + r * H + j, padd(nn, pmul(z, psub(hp, nn))));  // (1-z) n + z h_{t-1}
      });
    }
  }

  // dn = dh(1-z), dz = dh(h_{t-1} - n), dh_{t-1} (direct) = dh z;  dn̂ = dn(1-n²):
  // dgx_n = dn̂, dgh_n = dn̂ r;  dr̂ = dn̂ gh_n r(1-r) and dẑ = dz z(1-z) go to both gx and gh.
  template <class S>
  static void backward(Index n, Index H, S* gates, const S* extra, const S* h_prev,
                       const S* c_prev, const S* h, const S* c, const S* dh_in, S* dc_io,
                       S* dgh, S* dh_prev) {
    using namespace lanes;
    const Index GH = 3 * H;
    for (Index r = 0; r < n; ++r) {
      S* dx = gates + r * GH;
      S* dy = dgh + r * GH;
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        const V one = set<V>(1);
        const V rg = load<V>(dx + j), z = load<V>(dx + H + j), nn = load<V>(dx + 2 * H + j),
                ghn = load<V>(extra + r * H + j);
        const V dh = load<V>(dh_in + r * H + j), hp = load<V>(h_prev + r * H + j);
        const V dn = pmul(pmul(dh, psub(one, z)), psub(one, pmul(nn, nn)));
        const V dr = pmul(pmul(dn, ghn), pmul(rg, psub(one, rg)));
        const V dz = pmul(pmul(dh, psub(hp, nn)), pmul(z, psub(one, z)));
        store(dx + j, dr);
        store(dx + H + j, dz);
        store(dx + 2 * H + j, dn);
        store(dy + j, dr);
        store(dy + H + j, dz);
        store(dy + 2 * H + j, pmul(dn, rg));
        store(dh_prev + r * H + j, pmul(dh, z));
      });
    }
  }
};

// Elman RNN: h_t = act(gx + gh), act = tanh or relu. Nothing saved: act' is a function of h_t.
template <bool kRelu>
struct RnnCell {
  static constexpr int kGates = 1;
  static constexpr int kExtra = 0;
  static constexpr bool kHasCell = false;
  static constexpr bool kSeparateGh = false;

  template <class S>
  static void forward(Index n, Index H, S* gates, const S* gh, const S* h_prev,
                      const S* c_prev, S* h, S* c, S* extra) {
    using namespace lanes;
    lanes::for_lanes<S>(n * H, [&](auto v, Index j) {  // rows are contiguous: one long row
      using V = decltype(v);
      const V pre = padd(load<V>(gates + j), load<V>(gh + j));
      if constexpr (kRelu)
        store(h + j, relu(pre));
      else
        store(h + j, lanes::tanh(pre));
    });
  }

  // tanh' = 1 - h², relu' = [h > 0].
  template <class S>
  static void backward(Index n, Index H, S* gates, const S* extra, const S* h_prev,
                       const S* c_prev, const S* h, const S* c, const S* dh_in, S* dc_io,
                       S* dgh, S* dh_prev) {
    using namespace lanes;
    lanes::for_lanes<S>(n * H, [&](auto v, Index j) {
      using V = decltype(v);
      const V y = load<V>(h + j), dh = load<V>(dh_in + j);
      if constexpr (kRelu)
        store(gates + j, relu_grad(y, dh));
      else
        store(gates + j, pmul(dh, psub(set<V>(1), pmul(y, y))));
      store(dh_prev + j, pzero(dh));
    });
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
