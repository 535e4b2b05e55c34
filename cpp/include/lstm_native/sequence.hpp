// Recurrent<S>: a stack of recurrent layers run forward over a batch of sequences, and backward
// through time for the last forward.
//
// Public arrays are batch-first and C-contiguous, as NumPy hands them over:
//   x [B, T, D], y [B, T, H], h0/c0/hT/cT [L, B, H], lengths [B] (int64, each in [0, T]).
//
// Inside, the batch is sorted by length (longest first, stable), so that the sequences still
// running at step t are a prefix of the rows and each step's GEMM and cell kernel touch only
// those. The sorted batch is cut into `parts` of consecutive rows; a part runs the whole stack
// forward and backward on its rows alone, so parts run on separate threads with no
// synchronization per step. The number of parts depends only on the problem size, never on
// the thread count: results are bit-identical for any number of threads.
//
// A part's buffers are time-major, so one timestep is one contiguous block of its n rows:
//   x_tm   [T, n, D]            input, gathered once per call (zero past each length)
//   hs     [L][T+1, n, H]       h_{-1}=h0 in slot 0, h_t in slot t+1: slots 0..T-1 are the
//                               "previous state" matrix [T*n, H] of the dW_hh GEMM, slots 1..T
//                               the next layer's input [T*n, H]
//   cs     [L][T+1, n, H]       the same for the LSTM cell state
//   gates  [L][T, n, G*H]       input projections x W_ihᵀ + b_ih, overwritten by the cell with
//                               the activated gates (what backward needs, cells.hpp), then in
//                               backward by dL/dgx; for inference only one chunk of tc steps
//                               [tc, n, G*H] (the projections are computed chunk by chunk)
//   extra  [L][T, n, kExtra*H]  anything else a cell's backward needs (GRU: gh_n)
//   gh     [n, G*H]             recurrent projection of one step
//   gc     [n, H]               the cell GEMM c W_chᵀ of one step (ungated, cell_as_input)
//   dgh    [T, n, G*H]          dL/dgh for cells where it differs from dL/dgx (GRU)
//   dy_a/b [T, n, max(D,H)]     dL/d(layer output) in, dL/d(layer input) out, ping-ponged
//   dh, dc, dh_prev [n, H]      the BPTT carries
//   dparams [P]                 the part's weight gradients (when there are several parts)
// Buffers grow to the largest call seen and are then reused: no allocation per step, and none
// per call once warm. Past its length a sequence keeps its state (h_t = h_{t-1}, c_t = c_{t-1}),
// outputs zero and receives no gradient, so a padded batch gives exactly the results of each
// sequence alone.
//
// Not thread-safe: one object owns one workspace; concurrent callers need one object each.
#pragma once

#include "cells.hpp"
#include "layout.hpp"
#include "packed.hpp"
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
  Index num_parts() const { return static_cast<Index>(parts_.size()); }

  // Threads used for the parts of a call: 0 = as many as the parts and the machine allow.
  void set_num_threads(int n) { threads_ = n < 0 ? 0 : n; }
  int num_threads() const { return threads_; }

  // Forward over x [B, T, D]. lengths, h0, c0 may be null (all T; zeros). Writes, where not
  // null, y [B, T, H], hT and cT [L, B, H]. With `train`, keeps what backward needs.
  void forward(const S* params, const S* x, Index B, Index T, const std::int64_t* lengths,
               const S* h0, const S* c0, S* y, S* hT, S* cT, bool train = true);

  // Backward through time for the last (training) forward with the same params, once: it
  // overwrites what the forward saved, so a second backward (or a trace) needs a new forward
  // (std::logic_error otherwise). dy [B, T, H],
  // dhT, dcT [L, B, H] may be null (zero). Adds the parameter gradients into dparams (+=,
  // layout()); writes dx [B, T, D], dh0 and dc0 [L, B, H] where not null, and for
  // diagnostics dhs, dcs [L, B, T, H]: dL/dh_t and dL/dc_t of every layer and step (zero past
  // each length).
  void backward(const S* params, const S* dy, const S* dhT, const S* dcT, S* dparams, S* dx,
                S* dh0, S* dc0, S* dhs = nullptr, S* dcs = nullptr);

  // After a training forward and before its backward (which overwrites the gates): the
  // activated gates [L, B, T, G*H] and the states h, c [L, B, T, H] of every layer and step,
  // zero past each length. Any output may be null.
  void trace(S* gates, S* h, S* c) const;

 private:
  struct Part {
    Index r0 = 0, n = 0;           // rows [r0, r0 + n) of the sorted batch
    std::vector<Index> active;     // [T]: rows still running at step t (a prefix)
    Buffer<S> x_tm, hs, cs, gates, extra, gh, gc, dgh, dy_a, dy_b, dh, dc, dh_prev, dc_total,
        dparams;
  };
  struct Args {  // one call's arrays, as given (batch-first, original order); null = absent
    const S *params = nullptr, *x = nullptr, *h0 = nullptr, *c0 = nullptr, *dy = nullptr,
            *dhT = nullptr, *dcT = nullptr;
    S *y = nullptr, *hT = nullptr, *cT = nullptr, *dparams = nullptr, *dx = nullptr,
      *dh0 = nullptr, *dc0 = nullptr, *dhs = nullptr, *dcs = nullptr;
  };

  template <class Cell>
  void forward_part(Part& p, const Args& a, bool train);
  template <class Cell>
  void backward_part(Part& p, const Args& a);
  void plan(Index B, Index T, const std::int64_t* lengths);
  // rows [n, H] of part p = src [L, B, H] at (l, sequence of local row j), or zeros for a
  // null src; and the reverse, dst [L, B, H] = rows, skipped for a null dst.
  void load_state(S* rows, const S* src, const Part& p, Index l) const;
  void store_state(S* dst, const S* rows, const Part& p, Index l) const;
  // out [L, B, T, H] at (l, sequence of local row j, t) = rows [na, H] of part p.
  void record(S* out, const Part& p, Index l, Index t, const S* rows, Index na) const;
  int threads_for_call() const;

  CellKind cell_;
  Index D_, H_, L_, G_;
  bool bias_;
  ParamLayout layout_;
  int threads_ = 0;

  Index B_ = 0, T_ = 0;
  bool have_forward_ = false;
  std::vector<Index> order_;  // [B]: sorted row -> original sequence
  std::vector<Index> len_;    // [B]: length of each sorted row
  std::vector<Part> parts_;
  std::vector<PackedMatrix<S>> packed_;     // [L]: W_hhᵀ (forward) or W_hh (backward), per call
  std::vector<PackedMatrix<S>> packed_ih_;  // [L]: W_ihᵀ and b_ih (forward), per call
  std::vector<PackedMatrix<S>> packed_ch_;  // [L]: the same for W_ch (cells with a cell GEMM)
  // The parameters the packed matrices were packed from for a forward ([layout().size]);
  // empty when they hold nothing valid for a forward (none yet, or a backward packed W_hh).
  std::vector<S> packed_from_;
};

extern template class Recurrent<float>;
extern template class Recurrent<double>;

}  // namespace lstm_native
