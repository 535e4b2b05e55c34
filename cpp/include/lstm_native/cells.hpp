// Pointwise math of each recurrent cell: the only code that differs between LSTM, GRU and RNN.
//
// The step (step.hpp) computes, for one timestep and the n running sequences,
//   gates = x_t W_ihᵀ + b_ih      [n, G*H]  (in a sequence: hoisted out of the step loop, one
//                                            GEMM per chunk of steps)
//   gh    = h_{t-1} W_hhᵀ + b_hh  [n, G*H]  (one GEMM per step for all gates and rows)
// and hands both to a cell in a StepIO, and the cell writes the new state h, c [n, H] and
// overwrites `gates` with the activated gates, which is what its backward needs (plus kExtra*H
// values per row in `extra`, e.g. GRU's gh_n). Keeping the activations where the
// pre-activations were saves a buffer and its memory traffic. Gate blocks inside G*H are in
// PyTorch's order; kBlocks names them.
//
// backward() receives a StepGrad: the activated gates, dh = dL/dh_t [n, H] (from the output and
// from step t+1) and, for cells with a cell state, dc = dL/dc_t [n, H], and writes
//   gates (in place) = dL/dgx [n, G*H]  (feeds dW_ih, db_ih and dx)
//   dgh = dL/dgh  [n, G*H]  (feeds dW_hh, db_hh and dh_{t-1} through W_hh); written only when
//                           kSeparateGh, otherwise dgh is `gates` itself
//   dh_prev [n, H] = the part of dL/dh_{t-1} that does not pass through W_hh (GRU's z dh)
//   dc (in place) = dL/dc_{t-1}
// Each row is one fused SIMD pass (lanes.hpp); everything is elementwise, except in the two
// cells that also read the cell state through a matrix W_ch [H, H] (kCellGemm: "ungated" and
// "cell_as_input"): they run that product themselves, forward (gc = c W_chᵀ, W_chᵀ packed in
// StepIO::w_ch) and backward (dc += dgc W_ch, W_ch packed in StepGrad::w_ch), and add its
// weight gradient after the time loop (add_cell_weight_grad). The drivers know nothing of it.
#pragma once

#include "cell_facts.hpp"
#include "lanes.hpp"
#include "packed.hpp"
#include "types.hpp"

#include <string>

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

// One timestep of one layer on n rows, forward: what the step (step.hpp) and the cell read
// and write. Pointers to rows are row-major with H (or G*H) columns; null where unused.
template <class S>
struct StepIO {
  Index n = 0, H = 0;
  const S* x = nullptr;       // [n, D_l] input rows; null: `gates` already holds x W_ihᵀ + b_ih
  S* gates = nullptr;         // [n, G*H] in: x W_ihᵀ + b_ih; out: the activated gates
  S* gh = nullptr;            // [n, G*H] h_{t-1} W_hhᵀ + b_hh (written by the step)
  const S* h_prev = nullptr;  // [n, H]
  const S* c_prev = nullptr;  // [n, H] (cells with a cell state)
  S* h = nullptr;             // [n, H] h_t
  Index ldh = 0;              // h's row stride (forward_fused only; 0: H)
  S* c = nullptr;             // [n, H] c_t; may be c_prev itself (updated in place, streams)
  S* extra = nullptr;         // [n, kExtra*H] saved for backward
  S* scratch = nullptr;       // [n, kScratch*H] the cell's own temporaries (gc)
  const S* cw = nullptr;      // [kCellParams*H] the cell's parameter vectors (peepholes)
  const PackedMatrix<S>* w_ch = nullptr;  // W_chᵀ [H, H] packed (kCellGemm cells)
};

// One timestep backward (see the top of this file).
template <class S>
struct StepGrad {
  Index n = 0, H = 0;
  S* gates = nullptr;         // [n, G*H] in: activated gates; out: dL/dgx
  S* dgh = nullptr;           // [n, G*H] out: dL/dgh (kSeparateGh; otherwise == gates)
  const S* extra = nullptr;   // [n, kExtra*H] what forward saved
  const S* h_prev = nullptr;  // [n, H] h_{t-1}
  const S* c_prev = nullptr;  // [n, H] c_{t-1}
  const S* h = nullptr;       // [n, H] h_t
  const S* c = nullptr;       // [n, H] c_t
  S* dh = nullptr;            // [n, H] in: dL/dh_t; the step then overwrites it with dL/dh_{t-1}
  S* dc = nullptr;            // [n, H] in: dL/dc_t; out: dL/dc_{t-1} (cells with a cell state)
  S* dh_prev = nullptr;       // [n, H] out: the direct part of dL/dh_{t-1}
  const S* cw = nullptr;      // [kCellParams*H] peepholes
  S* dcw = nullptr;           // [kCellParams*H] their gradient (+=)
  S* dc_total = nullptr;      // [n, H] out if not null: the complete dL/dc_t (diagnostics)
  const PackedMatrix<S>* w_ch = nullptr;  // W_ch [H, H] packed (kCellGemm cells)
};

// Defaults every cell inherits; a cell overrides what it uses.
struct CellTraits {
  static constexpr int kExtra = 0;            // values per row saved besides the gates
  static constexpr int kScratch = 0;          // values per row of temporaries (StepIO)
  static constexpr bool kSeparateGh = false;  // dL/dgh differs from dL/dgx
  static constexpr int kCellParams = 0;       // [H] parameter vectors (peepholes)
  static constexpr bool kCellGemm = false;    // a weight_ch [H, H] read through c
  // Has forward_fused() (the LSTM family without peepholes): the fused inference step of
  // stack.cpp (float32 and float64 with the packed kernel, bfloat16 with the AMX kernel).
  static constexpr bool kFused = false;
  // The pointwise math of unit j reads only unit j of every input (no [H] parameter vectors,
  // no product mixing the units): a step may run it on a slice of the units (step.hpp).
  static constexpr bool kUnitwise = true;
  static constexpr int kForgetBlock = -1;  // block of a forget gate (for its bias init)
  static constexpr Keep kKeep = Keep::kNone;
  // Where a trace finds the activated gates: 0 = the gates buffer; cells with one block that
  // keep no activation there report their state instead: 1 = h (RNN), 2 = c (ungated).
  static constexpr int kTraceFrom = 0;
  static std::string blocks() { return ""; }  // gate block names, one letter each

  // dW_ch += ... after the time loop (kCellGemm cells): dgx [T*n, G*H] (dL/dgx of every step),
  // cs [T+1, n, H] (c_{-1} .. c_{T-1}). Nothing for the others.
  template <class S>
  static void add_cell_weight_grad(const S* dgx, const S* cs, Index Tn, Index n, Index H,
                                   S* dw_ch) {}
};

// dW_ch [H, H] += dgc [Tn, H]ᵀ · c [Tn, H], dgc a column block of dgx with row stride ld: the
// weight gradient of a cell GEMM gc = c W_chᵀ over all steps at once.
template <class S>
void add_cell_gemm_grad(const S* dgc, Index ld, const S* c, Index Tn, Index H, S* dw_ch) {
  using Strided = Eigen::Map<const RowMatrix<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
  Strided Dgc(dgc, Tn, H, Eigen::OuterStride<>(ld));
  MatMap<S>(dw_ch, H, H).noalias() += Dgc.transpose() * ConstMatMap<S>(c, Tn, H);
}

// The LSTM family: one template, switched by which gates and activations exist. Gate blocks
// are stored in the order i, f, g, o, leaving out the absent ones.
//   i = σ(pre_i + w_ci c_{t-1})      or 1 without an input gate     (w_c*: peepholes only)
//   f = σ(pre_f + w_cf c_{t-1})      or 1 without a forget gate (1997), or 1 - i (coupled)
//   g = tanh(pre_g)                  or pre_g without input activation
//   c_t = f c_{t-1} + i g
//   o = σ(pre_o + w_co c_t)          or 1 without an output gate
//   h_t = o tanh(c_t)                or o c_t without output activation
// with pre_q = gx_q + gh_q. Saved: the activated gates.
template <bool kI, bool kF, bool kCoupled, bool kO, bool kGAct, bool kHAct, bool kPeep>
struct LstmFamily : CellTraits {
  static constexpr int kBlockI = 0;
  static constexpr int kBlockF = kI ? 1 : 0;
  static constexpr bool kOwnF = kF && !kCoupled;  // f has its own block
  static constexpr int kBlockG = kBlockF + (kOwnF ? 1 : 0);
  static constexpr int kBlockO = kBlockG + 1;
  static constexpr int kGates = kBlockO + (kO ? 1 : 0);
  static constexpr int kForgetBlock = kOwnF ? kBlockF : -1;
  static constexpr bool kHasCell = true;
  static constexpr int kCellParams = kPeep ? 3 : 0;  // w_ci, w_cf, w_co
  static constexpr bool kUnitwise = !kPeep;          // the peepholes are [H] vectors
  static constexpr Keep kKeep = kOwnF      ? Keep::kForget
                                : kCoupled ? Keep::kOneMinusInput
                                           : Keep::kOne;
  static std::string blocks() {
    return std::string(kI ? "i" : "") + (kOwnF ? "f" : "") + "g" + (kO ? "o" : "");
  }

  template <class S>
  static void forward(const StepIO<S>& io) {
    using namespace lanes;
    const Index n = io.n, H = io.H;
    S* const gates = io.gates;
    const S* const gh = io.gh;
    const S* const c_prev = io.c_prev;
    S* const h = io.h;
    S* const c = io.c;
    const S* const cw = io.cw;
    const Index GH = kGates * H;
    for (Index r = 0; r < n; ++r) {
      S* x = gates + r * GH;
      const S* y = gh + r * GH;
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        const V one = set<V>(1);
        auto pre = [&](Index q) { return padd(load<V>(x + q * H + j), load<V>(y + q * H + j)); };
        const V cp = load<V>(c_prev + r * H + j);
        V i = one, f = one, o = one;
        if constexpr (kI) {
          V a = pre(kBlockI);
          if constexpr (kPeep) a = pmadd(load<V>(cw + j), cp, a);
          i = sigmoid(a);
          store(x + kBlockI * H + j, i);
        }
        if constexpr (kOwnF) {
          V a = pre(kBlockF);
          if constexpr (kPeep) a = pmadd(load<V>(cw + H + j), cp, a);
          f = sigmoid(a);
          store(x + kBlockF * H + j, f);
        } else if constexpr (kCoupled) {
          f = psub(one, i);
        }
        V g = pre(kBlockG);
        if constexpr (kGAct) g = tanh(g);
        store(x + kBlockG * H + j, g);
        const V ct = pmadd(f, cp, kI ? pmul(i, g) : g);
        if constexpr (kO) {
          V a = pre(kBlockO);
          if constexpr (kPeep) a = pmadd(load<V>(cw + 2 * H + j), ct, a);
          o = sigmoid(a);
          store(x + kBlockO * H + j, o);
        }
        store(c + r * H + j, ct);
        const V sc = kHAct ? tanh(ct) : ct;
        store(h + r * H + j, kO ? pmul(o, sc) : sc);
      });
    }
  }

  // The fused inference step (stack.cpp): `gates` [n, G*H] holds the complete pre-activations
  // x W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh (io.gh is not read), for the units [j0, j1) of all n
  // rows (j0 a multiple of 64, j1 one too or H: the lanes then see the packets a whole row
  // would). Writes c and h (h with row stride io.ldh when set: the last layer's rows of the
  // caller's y, stack.cpp), not the activated gates (an inference keeps none).
  // kBf16 (the AMX kernel): also h16 [n, ld16] = h rounded to bf16, the next step's left
  // operand, and σ and tanh by lanes::fast_sigmoid / fast_tanh. Otherwise (float32, float64)
  // σ and tanh of forward(), whose results these then equal bit for bit (the pre-activations
  // being rounded as forward()'s gx + gh).
  static constexpr bool kFused = !kPeep;
  template <bool kBf16, class S>
  static void forward_fused(const StepIO<S>& io, Index j0, Index j1, std::uint16_t* h16,
                            Index ld16) {
    const Index n = io.n, H = io.H, GH = kGates * H;
    for (Index r = 0; r < n; ++r) {
      const S* x = io.gates + r * GH;
      const S* cp = io.c_prev + r * H;
      S* c = io.c + r * H;
      S* h = io.h + r * (io.ldh > 0 ? io.ldh : H);
      std::uint16_t* h16r = kBf16 ? h16 + r * ld16 : nullptr;
      lanes::for_lanes_range<S>(j0, j1, [&](auto v, Index j) {
        fused_lanes<kBf16>(v, x + j, H, cp + j, c + j, h + j, kBf16 ? h16r + j : nullptr);
      });
    }
  }
  // forward_fused's math on the lanes of one packet (V: a packet or a scalar): x the
  // pre-activations of gate block 0 at these lanes, block b at x + b gs; c_{t-1} at cp; writes
  // c_t at c, h_t at h and (kBf16) h_t in bf16 at h16. Also the epilogue of the grouped AMX
  // product (stack.cpp), whose gates buffer holds 16 units per block (gs = 16).
  template <bool kBf16, class V, class S>
  static void fused_lanes(V, const S* x, Index gs, const S* cp, S* c, S* h, std::uint16_t* h16) {
    using namespace lanes;
    static_assert(!kPeep, "peepholes need the cell parameters (forward())");
    auto sig = [](auto a) {
      if constexpr (kBf16)
        return fast_sigmoid(a);
      else
        return sigmoid(a);
    };
    auto th = [](auto a) {
      if constexpr (kBf16)
        return fast_tanh(a);
      else
        return lanes::tanh(a);
    };
    const V one = set<V>(1);
    V i = one, f = one, o = one;
    if constexpr (kI) i = sig(load<V>(x + kBlockI * gs));
    if constexpr (kOwnF)
      f = sig(load<V>(x + kBlockF * gs));
    else if constexpr (kCoupled)
      f = psub(one, i);
    V g = load<V>(x + kBlockG * gs);
    if constexpr (kGAct) g = th(g);
    const V ct = pmadd(f, load<V>(cp), kI ? pmul(i, g) : g);
    if constexpr (kO) o = sig(load<V>(x + kBlockO * gs));
    store(c, ct);
    const V sc = kHAct ? th(ct) : ct;
    const V ht = kO ? pmul(o, sc) : sc;
    store(h, ht);
    if constexpr (kBf16) bf16::store_rounded(h16, ht);
  }

  // s = tanh(c_t) (or c_t), s' = 1 - s² (or 1):
  //   dô = dh s o(1-o);  dc_t += dh o s' + w_co dô
  //   dî = dc g i(1-i);  df̂ = dc c_{t-1} f(1-f);  dĝ = dc i g' (g' = 1-g² or 1)
  //   coupled f = 1-i: dî = dc (g - c_{t-1}) i(1-i)
  //   dc_{t-1} = dc f + w_ci dî + w_cf df̂;   dw_ci += dî c_{t-1}, dw_cf += df̂ c_{t-1}, dw_co += dô c_t
  template <class S>
  static void backward(const StepGrad<S>& io) {
    using namespace lanes;
    const Index n = io.n, H = io.H;
    S* const gates = io.gates;
    const S* const c_prev = io.c_prev;
    const S* const c = io.c;
    const S* const dh_in = io.dh;
    S* const dc_io = io.dc;
    S* const dh_prev = io.dh_prev;
    const S* const cw = io.cw;
    S* const dcw = io.dcw;
    S* const dc_total = io.dc_total;
    const Index GH = kGates * H;
    for (Index r = 0; r < n; ++r) {
      S* d = gates + r * GH;
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        const V one = set<V>(1);
        const V i = kI ? load<V>(d + kBlockI * H + j) : one;
        const V f = kOwnF ? load<V>(d + kBlockF * H + j) : (kCoupled ? psub(one, i) : one);
        const V g = load<V>(d + kBlockG * H + j);
        const V o = kO ? load<V>(d + kBlockO * H + j) : one;
        const V ct = load<V>(c + r * H + j), cp = load<V>(c_prev + r * H + j);
        const V dh = load<V>(dh_in + r * H + j);
        const V sc = kHAct ? tanh(ct) : ct;
        V dc = load<V>(dc_io + r * H + j);
        dc = padd(dc, kHAct ? pmul(pmul(dh, o), psub(one, pmul(sc, sc))) : pmul(dh, o));
        if constexpr (kO) {
          const V dop = pmul(pmul(dh, sc), pmul(o, psub(one, o)));
          store(d + kBlockO * H + j, dop);
          if constexpr (kPeep) {
            dc = pmadd(load<V>(cw + 2 * H + j), dop, dc);
            store(dcw + 2 * H + j, pmadd(dop, ct, load<V>(dcw + 2 * H + j)));
          }
        }
        if (dc_total) store(dc_total + r * H + j, dc);
        V dcp = pmul(dc, f);
        if constexpr (kI) {
          const V gi = kCoupled ? psub(g, cp) : g;
          const V dip = pmul(pmul(dc, gi), pmul(i, psub(one, i)));
          store(d + kBlockI * H + j, dip);
          if constexpr (kPeep) {
            dcp = pmadd(load<V>(cw + j), dip, dcp);
            store(dcw + j, pmadd(dip, cp, load<V>(dcw + j)));
          }
        }
        if constexpr (kOwnF) {
          const V dfp = pmul(pmul(dc, cp), pmul(f, psub(one, f)));
          store(d + kBlockF * H + j, dfp);
          if constexpr (kPeep) {
            dcp = pmadd(load<V>(cw + H + j), dfp, dcp);
            store(dcw + H + j, pmadd(dfp, cp, load<V>(dcw + H + j)));
          }
        }
        const V dg = kI ? pmul(dc, i) : dc;
        store(d + kBlockG * H + j, kGAct ? pmul(dg, psub(one, pmul(g, g))) : dg);
        store(dc_io + r * H + j, dcp);
        store(dh_prev + r * H + j, pzero(dh));
      });
    }
  }
};

using LstmCell = LstmFamily<true, true, false, true, true, true, false>;

// The first alternative: no gates; the new cell state is one network of (x_t, h_{t-1}, c_{t-1}):
//   gc = c_{t-1} W_chᵀ,   c_t = tanh(gx + gh + gc),   h_t = tanh(c_t)
// Nothing saved besides c and h; gc [n, H] is scratch.
struct UngatedCell : CellTraits {
  static constexpr int kGates = 1;
  static constexpr bool kHasCell = true;
  static constexpr bool kCellGemm = true;
  static constexpr bool kUnitwise = false;
  static constexpr int kScratch = 1;
  static constexpr int kTraceFrom = 2;  // the one "gate" is the new cell state

  template <class S>
  static void forward(const StepIO<S>& io) {
    using namespace lanes;
    const Index n = io.n, H = io.H;
    const S* const gates = io.gates;
    const S* const gh = io.gh;
    S* const gc = io.scratch;
    S* const c = io.c;
    S* const h = io.h;
    io.w_ch->multiply(io.c_prev, H, n, gc, H);  // before c (possibly c_prev itself) is written
    for_lanes<S>(n * H, [&](auto v, Index j) {  // rows are contiguous: one long row
      using V = decltype(v);
      const V ct = lanes::tanh(padd(padd(load<V>(gates + j), load<V>(gh + j)), load<V>(gc + j)));
      store(c + j, ct);
      store(h + j, lanes::tanh(ct));
    });
  }

  // dc_t += dh (1 - h²);  dâ = dc_t (1 - c_t²) goes to gx, gh and gc; there is no direct path
  // from c_{t-1} to c_t, so dc_{t-1} = dâ W_ch.
  template <class S>
  static void backward(const StepGrad<S>& io) {
    using namespace lanes;
    const Index n = io.n, H = io.H;
    S* const gates = io.gates;
    const S* const h = io.h;
    const S* const c = io.c;
    const S* const dh_in = io.dh;
    S* const dc_io = io.dc;
    S* const dh_prev = io.dh_prev;
    S* const dc_total = io.dc_total;
    for_lanes<S>(n * H, [&](auto v, Index j) {
      using V = decltype(v);
      const V one = set<V>(1);
      const V ht = load<V>(h + j), ct = load<V>(c + j), dh = load<V>(dh_in + j);
      const V dc = pmadd(dh, psub(one, pmul(ht, ht)), load<V>(dc_io + j));
      if (dc_total) store(dc_total + j, dc);
      store(gates + j, pmul(dc, psub(one, pmul(ct, ct))));
      store(dc_io + j, pzero(dc));
      store(dh_prev + j, pzero(dh));
    });
    io.w_ch->multiply_add(gates, H, n, dc_io, H);  // dc_{t-1} = dâ W_ch
  }

  // gc = c_{t-1} W_chᵀ: dW_ch += dâᵀ c_{t-1} (slots 0..T-1 of cs)
  template <class S>
  static void add_cell_weight_grad(const S* dgx, const S* cs, Index Tn, Index n, Index H,
                                   S* dw_ch) {
    add_cell_gemm_grad(dgx, H, cs, Tn, H, dw_ch);
  }
};

// The second alternative: the gates write the cell as in an LSTM, but the cell feeds a network
// instead of scaling h through an output gate. Gate blocks (i, f, g, u):
//   i, f, g as the LSTM;  c_t = f c_{t-1} + i g;  gc = c_t W_chᵀ;  h_t = tanh(pre_u + gc)
// Saved: i, f, g and pre_u (overwritten in backward); gc [n, H] is scratch.
struct CellAsInputCell : CellTraits {
  static constexpr int kGates = 4;
  static constexpr bool kHasCell = true;
  static constexpr bool kCellGemm = true;
  static constexpr bool kUnitwise = false;
  static constexpr int kScratch = 1;
  static constexpr int kForgetBlock = 1;
  static constexpr int kBlockU = 3;
  static constexpr Keep kKeep = Keep::kForget;
  static std::string blocks() { return "ifgu"; }

  template <class S>
  static void forward(const StepIO<S>& io) {
    using namespace lanes;
    const Index n = io.n, H = io.H, GH = 4 * H;
    S* const gates = io.gates;
    const S* const gh = io.gh;
    const S* const c_prev = io.c_prev;
    S* const c = io.c;
    S* const h = io.h;
    S* const gc = io.scratch;
    for (Index r = 0; r < n; ++r) {
      S* x = gates + r * GH;
      const S* y = gh + r * GH;
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        auto pre = [&](Index q) { return padd(load<V>(x + q * H + j), load<V>(y + q * H + j)); };
        const V i = sigmoid(pre(0)), f = sigmoid(pre(1)), g = lanes::tanh(pre(2));
        store(x + j, i);
        store(x + H + j, f);
        store(x + 2 * H + j, g);
        store(x + 3 * H + j, pre(3));
        store(c + r * H + j, pmadd(f, load<V>(c_prev + r * H + j), pmul(i, g)));
      });
    }
    io.w_ch->multiply(c, H, n, gc, H);  // gc = c_t W_chᵀ
    for (Index r = 0; r < n; ++r)
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        store(h + r * H + j,
              lanes::tanh(padd(load<V>(gates + r * GH + 3 * H + j), load<V>(gc + r * H + j))));
      });
  }

  // h_t = tanh(pre_u + c_t W_chᵀ): first dû = dh (1 - h²) into block u and dc_t += dû W_ch;
  // then the LSTM part with dc_t complete: dî = dc g i(1-i), df̂ = dc c_{t-1} f(1-f),
  // dĝ = dc i (1-g²), dc_{t-1} = dc f.
  template <class S>
  static void backward(const StepGrad<S>& io) {
    using namespace lanes;
    const Index n = io.n, H = io.H, GH = 4 * H;
    S* const gates = io.gates;
    const S* const c_prev = io.c_prev;
    const S* const h = io.h;
    const S* const dh_in = io.dh;
    S* const dc_io = io.dc;
    S* const dh_prev = io.dh_prev;
    S* const dc_total = io.dc_total;
    for (Index r = 0; r < n; ++r)
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        const V ht = load<V>(h + r * H + j);
        store(gates + r * GH + 3 * H + j,
              pmul(load<V>(dh_in + r * H + j), psub(set<V>(1), pmul(ht, ht))));
      });
    io.w_ch->multiply_add(gates + kBlockU * H, GH, n, dc_io, H);
    for (Index r = 0; r < n; ++r) {
      S* d = gates + r * GH;
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        const V one = set<V>(1);
        const V i = load<V>(d + j), f = load<V>(d + H + j), g = load<V>(d + 2 * H + j);
        const V dc = load<V>(dc_io + r * H + j), cp = load<V>(c_prev + r * H + j);
        if (dc_total) store(dc_total + r * H + j, dc);
        store(d + j, pmul(pmul(dc, g), pmul(i, psub(one, i))));
        store(d + H + j, pmul(pmul(dc, cp), pmul(f, psub(one, f))));
        store(d + 2 * H + j, pmul(pmul(dc, i), psub(one, pmul(g, g))));
        store(dc_io + r * H + j, pmul(dc, f));
        store(dh_prev + r * H + j, pzero(dc));
      });
    }
  }

  // gc = c_t W_chᵀ: dW_ch += dûᵀ c_t (block u of dgx; slots 1..T of cs)
  template <class S>
  static void add_cell_weight_grad(const S* dgx, const S* cs, Index Tn, Index n, Index H,
                                   S* dw_ch) {
    add_cell_gemm_grad(dgx + kBlockU * H, 4 * H, cs + n * H, Tn, H, dw_ch);
  }
};

// GRU, gates (r, z, n), PyTorch's form (r applied after the recurrent product):
//   r = σ(gx_r + gh_r), z = σ(gx_z + gh_z), n = tanh(gx_n + r * gh_n)
//   h_t = (1 - z) * n + z * h_{t-1}
// Saved: gates = [r, z, n], extra = [gh_n] (gh_n includes b_hn; needed for dr).
struct GruCell : CellTraits {
  static constexpr int kGates = 3;
  static constexpr int kExtra = 1;
  static constexpr bool kHasCell = false;
  static constexpr bool kSeparateGh = true;
  static constexpr Keep kKeep = Keep::kUpdate;
  static std::string blocks() { return "rzn"; }

  template <class S>
  static void forward(const StepIO<S>& io) {
    using namespace lanes;
    const Index n = io.n, H = io.H;
    S* const gates = io.gates;
    const S* const gh = io.gh;
    const S* const h_prev = io.h_prev;
    S* const h = io.h;
    S* const extra = io.extra;
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
  static void backward(const StepGrad<S>& io) {
    using namespace lanes;
    const Index n = io.n, H = io.H;
    S* const gates = io.gates;
    S* const dgh = io.dgh;
    const S* const extra = io.extra;
    const S* const h_prev = io.h_prev;
    const S* const dh_in = io.dh;
    S* const dh_prev = io.dh_prev;
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
struct RnnCell : CellTraits {
  static constexpr int kGates = 1;
  static constexpr bool kHasCell = false;
  static constexpr int kTraceFrom = 1;  // the one "gate" is h_t

  template <class S>
  static void forward(const StepIO<S>& io) {
    using namespace lanes;
    const Index n = io.n, H = io.H;
    S* const gates = io.gates;
    const S* const gh = io.gh;
    S* const h = io.h;
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
  static void backward(const StepGrad<S>& io) {
    using namespace lanes;
    const Index n = io.n, H = io.H;
    S* const gates = io.gates;
    const S* const h = io.h;
    const S* const dh_in = io.dh;
    S* const dh_prev = io.dh_prev;
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

// Runs f(CellType{}) for the runtime cell kind: the one place where a kind becomes a type.
template <class F>
decltype(auto) dispatch_cell(CellKind k, F&& f) {
  //                                    kI     kF     coupled kO     g act  h act  peep
  switch (k) {
    case CellKind::kLstm:
      return f(LstmCell{});
    case CellKind::kGru:
      return f(GruCell{});
    case CellKind::kRnnTanh:
      return f(RnnCell<false>{});
    case CellKind::kRnnRelu:
      return f(RnnCell<true>{});
    case CellKind::kLstmPeephole:
      return f(LstmFamily<true, true, false, true, true, true, true>{});
    case CellKind::kLstm1997:
      return f(LstmFamily<true, false, false, true, true, true, false>{});
    case CellKind::kCifg:
      return f(LstmFamily<true, true, true, true, true, true, false>{});
    case CellKind::kNoInputGate:
      return f(LstmFamily<false, true, false, true, true, true, false>{});
    case CellKind::kNoOutputGate:
      return f(LstmFamily<true, true, false, false, true, true, false>{});
    case CellKind::kNoInputActivation:
      return f(LstmFamily<true, true, false, true, false, true, false>{});
    case CellKind::kNoOutputActivation:
      return f(LstmFamily<true, true, false, true, true, false, false>{});
    case CellKind::kUngated:
      return f(UngatedCell{});
    case CellKind::kCellAsInput:
      return f(CellAsInputCell{});
  }
  throw ArgumentError("unknown cell kind");
}

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
