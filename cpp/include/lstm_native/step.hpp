// One timestep of one recurrent layer on n rows: the only implementation of it, used by the
// sequence driver (stack.cpp, training and inference) and by streams (stream.cpp).
//
//   gx = x_t W_ihᵀ + b_ih       [n, G*H]  unless StepIO::x is null: then `gates` already holds
//                                         it (a sequence hoists it out of the step loop)
//   gh = h_{t-1} W_hhᵀ + b_hh   [n, G*H]
//   (h_t, c_t) = cell(gx, gh, h_{t-1}, c_{t-1})   (cells.hpp; a cell with a W_ch product runs
//                                                  it itself, through StepIO::w_ch)
// and backward, for t = T-1..0:
//   cell backward (dL/dgx, dL/dgh, dc_{t-1}, the direct part of dh_{t-1})
//   dh_{t-1} = dgh W_hh + direct part                                    [n, H]
//
// A step whose products are large enough (at least kMinSplit multiply-adds) may use two
// threads, each on half of the output columns: each core then keeps its half of the weights in
// its own L2 from step to step, where one core would stream all of them from L3 every step.
// That only pays for a lone step (a stream): the sequence driver already runs whole parts of
// the batch on separate threads and passes threads = 1. Columns are split at panel boundaries
// (packed.hpp), which changes no result.
#pragma once

#include "cells.hpp"
#include "packed.hpp"
#include "threads.hpp"
#include "types.hpp"

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

// The weights of one layer (one direction), packed for the step's GEMMs (packed.hpp). Forward
// and backward use W_hh (and W_ch) in different orientations; they share the storage, so a
// backward's packing replaces the forward's (the stack tracks which one is there).
template <class S>
struct PackedLayer {
  PackedMatrix<S> ih;  // forward: W_ihᵀ [D_l, G*H] + b_ih
  PackedMatrix<S> hh;  // forward: W_hhᵀ [H, G*H] + b_hh;  backward: W_hh [G*H, H]
  PackedMatrix<S> ch;  // forward: W_chᵀ [H, H];            backward: W_ch [H, H]  (kCellGemm)
  // bfloat16 with AMX: b_ih + b_hh [G*H rounded up to 16, zero-padded] (empty without biases),
  // the initial value of the fused step's gates (stack.cpp), packed with the forward weights.
  Buffer<S> bias_sum;
};

// Below this many multiply-adds a step runs on one thread: the hand-off costs more.
constexpr Index kMinSplit = Index(1) << 16;

// One timestep forward (see the top of this file). io.cw and io.w_ch must point at the
// layer's cell parameters and forward-packed w.ch where the cell has them. With threads >= 2
// a large step with io.x given is split in two (then, for a unit split, `gates` holds the
// half-layers' blocks side by side, [2][G, H/2]: fine for a stream, whose gates are scratch).
template <class Cell, class S>
void step_forward(const PackedLayer<S>& w, const StepIO<S>& io, int threads) {
  constexpr Index kPanel = PackedMatrix<S>::kPanel;
  constexpr Index kG = Cell::kGates, kx = Cell::kExtra;
  const Index n = io.n, H = io.H, GH = kG * H;
  if (!io.x) {  // gx hoisted: the recurrent product and the cell
    w.hh.multiply(io.h_prev, H, n, io.gh, GH);
    Cell::forward(io);
    return;
  }
  const Index Din = w.ih.K;
  const bool split = threads >= 2 && n * GH * (H + Din) >= kMinSplit;
  if (Cell::kUnitwise && split && n == 1 && H % (2 * kPanel) == 0) {
    // (Cells whose pointwise math is per unit.) Half q owns units [q*Hh, (q+1)*Hh): it
    // computes their columns of every gate block into
    // its own [G, Hh] slice of gates and gh and runs the cell on them, so the gates never
    // cross cores (only h does; h_prev stays intact for the other half's product).
    const Index Hh = H / 2;
    auto half = [&](int q) {
      StepIO<S> hq = io;
      hq.H = Hh;
      hq.gates = io.gates + q * kG * Hh;
      hq.gh = io.gh + q * kG * Hh;
      for (Index k = 0; k < kG; ++k) {
        const Index p0 = (k * H + q * Hh) / kPanel, p1 = p0 + Hh / kPanel;
        w.ih.multiply_panels(io.x, Din, 1, hq.gates + k * Hh, GH, p0, p1);
        w.hh.multiply_panels(io.h_prev, H, 1, hq.gh + k * Hh, GH, p0, p1);
      }
      hq.h_prev = io.h_prev + q * Hh;
      hq.c_prev = io.c_prev ? io.c_prev + q * Hh : nullptr;
      hq.h = io.h + q * Hh;
      hq.c = io.c ? io.c + q * Hh : nullptr;
      hq.extra = io.extra ? io.extra + q * kx * Hh : nullptr;
      Cell::forward(hq);
    };
    // (one reference fits std::function inline: no allocation)
    ThreadPool::instance().run(2, threads, [&half](int q) { half(q); });
    return;
  }
  const Index parts = split ? 2 : 1;
  auto part = [&](int q) {  // a contiguous range of column panels
    const Index pi = w.ih.panels(), ph = w.hh.panels();
    const Index i0 = pi * q / parts, h0 = ph * q / parts;
    w.ih.multiply_panels(io.x, Din, n, io.gates + i0 * kPanel, GH, i0, pi * (q + 1) / parts);
    w.hh.multiply_panels(io.h_prev, H, n, io.gh + h0 * kPanel, GH, h0, ph * (q + 1) / parts);
  };
  if (parts == 1)
    part(0);
  else
    ThreadPool::instance().run(2, threads, [&part](int q) { part(q); });
  Cell::forward(io);
}

// One timestep backward; w holds the backward packing (W_hh, W_ch untransposed), g.w_ch
// points at w.ch for kCellGemm cells. Leaves dL/dh_{t-1} in g.dh and dL/dc_{t-1} in g.dc.
template <class Cell, class S>
void step_backward(const PackedLayer<S>& w, const StepGrad<S>& g) {
  const Index n = g.n, H = g.H, GH = Cell::kGates * H;
  Cell::backward(g);
  // dh_{t-1} [n, H] = dgh_t [n, GH] · W_hh [GH, H] + direct part
  w.hh.multiply(g.dgh, GH, n, g.dh, H);
  ArrMap<S>(g.dh, n * H) += ConstArrMap<S>(g.dh_prev, n * H);
}

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
