// Recurrent<S>: a stack of recurrent layers run forward over a batch of sequences, and backward
// through time for the last forward.
//
// Public arrays are batch-first and C-contiguous, as NumPy hands them over:
//   x [B, T, D], y [B, T, H], h0/c0/hT/cT [L, B, H], lengths [B] (int64, each in [0, T]).
// Inside, everything is time-major so that one timestep is one contiguous [B, ...] block:
//   x_tm   [T, B, D]            input, transposed once per call
//   hs     [L][T+1, B, H]       h_{-1}=h0 in slot 0, h_t in slot t+1: slots 0..T-1 are the
//                               "previous state" matrix [T*B, H] of the dW_hh GEMM, slots 1..T
//                               the next layer's input [T*B, H]
//   cs     [L][T+1, B, H]       the same for the LSTM cell state
//   cache  [L][T, B, kCache*H]  what each cell's backward needs (cells.hpp)
//   gx     [T, B, G*H]          input projections of one layer; reused as dL/dgx in backward
//   gh     [B, G*H]             recurrent projection of one step
//   dgh    [T, B, G*H]          dL/dgh for cells where it differs from dL/dgx (GRU)
//   dy_a/b [T, B, max(D,H)]     dL/d(layer output) in, dL/d(layer input) out, ping-ponged
//   dh, dc, dh_prev [B, H]      the BPTT carries
// The workspace grows to the largest call seen and is then reused: no allocation per step, and
// none per call once warm.
//
// Variable lengths: at a step t >= lengths[b], sequence b keeps its state (h_t = h_{t-1},
// c_t = c_{t-1}), outputs zero and receives no gradient, so hT is its state after its last step
// and a padded batch gives exactly the results of each sequence alone.
//
// Not thread-safe: one object owns one workspace; concurrent callers need one object each.
#pragma once

#include "cells.hpp"
#include "layout.hpp"
#include "types.hpp"

#include <cstdint>
#include <vector>

namespace lstm_native {

template <class S>
class Recurrent {
 public:
  Recurrent(CellKind cell, Index input_size, Index hidden_size, Index num_layers, bool bias);

  CellKind cell() const { return cell_; }
  Index input_size() const { return D_; }
  Index hidden_size() const { return H_; }
  Index num_layers() const { return L_; }
  bool bias() const { return bias_; }
  const ParamLayout& layout() const { return layout_; }
  bool has_forward() const { return have_forward_; }
  Index batch() const { return B_; }
  Index steps() const { return T_; }

  // Forward over x [B, T, D]. lengths, h0, c0 may be null (all T; zeros). Writes y [B, T, H]
  // and, if not null, hT and cT [L, B, H]. Keeps what backward needs.
  void forward(const S* params, const S* x, Index B, Index T, const std::int64_t* lengths,
               const S* h0, const S* c0, S* y, S* hT, S* cT);

  // Backward through time for the last forward with the same params. dy [B, T, H], dhT, dcT
  // [L, B, H] may be null (zero). Adds the parameter gradients into dparams (+=, layout());
  // writes dx [B, T, D], dh0 and dc0 [L, B, H] where not null.
  void backward(const S* params, const S* dy, const S* dhT, const S* dcT, S* dparams, S* dx,
                S* dh0, S* dc0);

  // Hidden sequence of the last layer, time-major [T+1, B, H] with slot 0 = h0 (for heads that
  // read every step without the batch-first copy).
  const S* last_hidden() const { return hs_.data() + (L_ - 1) * (T_ + 1) * B_ * H_; }

 private:
  template <class Cell>
  void forward_impl(const S* params, const S* h0, const S* c0);
  template <class Cell>
  const S* backward_impl(const S* params, const S* dhT, const S* dcT, S* dparams, S* dh0, S* dc0);
  void reserve(Index B, Index T);

  CellKind cell_;
  Index D_, H_, L_, G_;
  bool bias_;
  ParamLayout layout_;

  Index B_ = 0, T_ = 0;
  bool have_forward_ = false;
  std::vector<Index> len_;  // [B]
  std::vector<S> x_tm_, hs_, cs_, cache_, gx_, gh_, dgh_, dy_a_, dy_b_, dh_, dc_, dh_prev_;
};

extern template class Recurrent<float>;
extern template class Recurrent<double>;

}  // namespace lstm_native
