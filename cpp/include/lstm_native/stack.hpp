// Stack<S>: a stack of recurrent layers (L layers × dirs directions, "units" u = l*dirs + d)
// that owns its weights packed for the step kernels, and runs them one timestep at a time
// (step(): streams) or over a batch of sequences, forward and backward through time (a Run).
//
// Users: nn's layer (Recurrent below: one direction, one Run over all layers), the Model
// (model.hpp: L × dirs units, one Run per unit, since directions meet between layers), and
// the Stream (stream.hpp: step() layer after layer). The timestep itself is step.hpp's, the
// cells' math cells.hpp's; this file is the scan over time and the bookkeeping around it.
//
// Packing. A forward packs W_ihᵀ, W_hhᵀ and the biases (and W_chᵀ) once for all steps, and not
// even once when they were packed for a forward from these very parameters (repeated
// inference): comparing the parameters costs a fraction of transposing them, and stops at the
// first difference. The parameters are copied first and packed from the copy, and the whole
// forward reads the copy: if another thread writes them meanwhile (a user's write racing a
// predict), the call sees one consistent snapshot, the packed weights always equal the copy
// exactly, and the next call sees the difference and packs again. (Packing from the live buffer
// and copying it afterwards could keep a mix of old and new weights for every later call.)
// A backward packs W_hh (and W_ch) untransposed into the same storage, which voids the copy.
//
// A Run: forward over x [B, T, D_l0] of layers [l0, l1) of one direction, and backward through
// time for its last forward. Public arrays are batch-first and C-contiguous, as NumPy hands
// them over: x [B, T, D], y [B, T, H], h0/c0/hT/cT [Lr, B, H] (Lr = l1 - l0 layers of the
// run), lengths [B] (int64, each in [0, T]).
//
// Inside, the batch is sorted by length (longest first, stable), so that the sequences still
// running at step t are a prefix of the rows and each step's GEMM and cell kernel touch only
// those. The sorted batch is cut into `parts` of rows; a part runs the run's layers forward and
// backward on its rows alone, so parts run on separate threads with no synchronization per
// step. The number of parts depends only on the problem size, never on the thread count:
// results are bit-identical for any number of threads. The parts' weight gradients are summed
// in part order (each element: ((g + d_0) + d_1) + ...), by ranges of elements on threads.
//
// A batch too small for several parts (fewer than 16 rows, or 128 once W_hh outgrows a core's
// L2: sizes.cpp) but with large steps is
// one part whose steps are split instead: each step's products (forward h_{t-1} W_hhᵀ
// [n, H] x [H, G*H], the hoisted x W_ihᵀ, backward dgh W_hh [n, G*H] x [G*H, H]) are cut
// into fixed column blocks (sizes.hpp: num_column_blocks, column_bound) dealt to the threads,
// with the pointwise cell cut into blocks of 16 rows, and after the time loop the weight
// gradient GEMMs into fixed blocks of output rows. A block's arithmetic depends only on the
// sizes (the packed kernel computes each element as one FMA chain whatever its columns; the
// Eigen GEMMs see the same block shapes), so the results do not depend on the threads either.
// This costs a barrier (a pool call, ~1-5 us) or two per step, so only large steps split.
//
// A part's buffers are time-major, so one timestep is one contiguous block of its n rows
// (sizes: part_sizes(), the one function every grow() and workspace_elements() use):
//   x_tm    [T, n, D]             input, gathered once per call (zero past each length)
//   hs      [Lr][T+1, n, H]       h_{-1}=h0 in slot 0, h_t in slot t+1: slots 0..T-1 are the
//                                 "previous state" matrix [T*n, H] of the dW_hh GEMM, slots
//                                 1..T the next layer's input [T*n, H]
//   cs      [Lr][T+1, n, H]       the same for the cell state (cells with one)
//   gates   [Lr][T, n, G*H]       input projections x W_ihᵀ + b_ih, overwritten by the cell
//                                 with the activated gates (what backward needs, cells.hpp),
//                                 then in backward by dL/dgx; for inference only one chunk of
//                                 tc steps [tc, n, G*H] (the projections are computed chunk by
//                                 chunk, tc = 64 Ki elements / (n*G*H), at least 1, at most T)
//   extra   [Lr][T, n, kExtra*H]  anything else a cell's backward needs (GRU: gh_n); one
//                                 step's [n, kExtra*H] for inference (at least 1 element)
//   gh      [n, G*H]              recurrent projection of one step
//   scratch [n, kScratch*H]       the cell's temporaries of one step (gc = c W_chᵀ)
//   h16     [2][Mp, Hp] bf16      bfloat16 inference with AMX (the fused step, stack.cpp):
//                                 h_{t-1} and h_t rounded to bf16 as the kernel's left operand
//                                 (Mp, Hp = n, H rounded up to 16, 32), ping-ponged by step
//                                 parity; stored in a float buffer (2 bf16 per float)
//   dgh     [T, n, G*H]           dL/dgh for cells where it differs from dL/dgx (GRU)
//   dy_a/b  [T, n, max(D,H)]      dL/d(layer output) in, dL/d(layer input) out, ping-ponged:
//                                 dy_a when dy is given or Lr > 1, dy_b when Lr > 1 or dx
//   dh, dc, dh_prev [n, H]        the BPTT carries
//   dc_total [n, H]               dL/dc_t complete, when dcs is recorded
//   dparams [run parameters]      the part's weight gradients (when there are several parts)
// Buffers grow to the largest call seen and are then reused: no allocation per step, and none
// per call once warm. Past its length a sequence keeps its state (h_t = h_{t-1}, c_t =
// c_{t-1}), outputs zero and receives no gradient, so a padded batch gives exactly the results
// of each sequence alone.
//
// Not thread-safe: one object owns its packed weights and its runs their workspaces; concurrent
// callers need one object each.
#pragma once

#include "api.hpp"
#include "cells.hpp"
#include "layout.hpp"
#include "sizes.hpp"
#include "packed.hpp"
#include "step.hpp"
#include "types.hpp"

#include <cstdint>
#include <stdexcept>
#include <vector>

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

template <class S>
class Stack;

// The workspace of sequence calls over layers [l0, l1) of one direction d of a Stack.
template <class S>
class Run {
 public:
  Index first_layer() const { return l0_; }
  Index num_layers() const { return l1_ - l0_; }
  Index direction() const { return d_; }
  bool has_forward() const { return have_forward_; }
  Index batch() const { return B_; }
  Index steps() const { return T_; }
  Index num_parts() const { return static_cast<Index>(parts_.size()); }
  // Column blocks of each step's recurrent product in the last call, forward (over G*H) and
  // backward (over H): 1 unless the run is one part and the product is large (sizes.hpp).
  Index forward_column_blocks() const { return cols_f_; }
  Index backward_column_blocks() const { return cols_b_; }
  Index allocated_elements() const;  // scalars its buffers hold now (a debug accessor)

 private:
  friend class Stack<S>;
  struct Part {
    Index r0 = 0, n = 0;        // sorted rows r0, r0 + P, r0 + 2P, ... (n of them)
    std::vector<Index> active;  // [T]: rows still running at step t (a prefix)
    Buffer<S> x_tm, hs, cs, gates, extra, gh, scratch, h16, dgh, dy_a, dy_b, dh, dc, dh_prev,
        dc_total, dparams;
    PackedMatrix<S> gemm;  // bfloat16: a weight gradient GEMM's right operand, packed per call
  };
  Index l0_ = 0, l1_ = 0, d_ = 0;
  Index B_ = 0, T_ = 0;
  Index cols_f_ = 1, cols_b_ = 1;  // column blocks of a step's product (see above)
  bool have_forward_ = false;
  std::vector<Index> order_;  // [B]: sorted row -> original sequence
  std::vector<Index> len_;    // [B]: length of each sorted row
  std::vector<Part> parts_;
};

template <class S>
class Stack {
 public:
  Stack(CellKind cell, Index input_size, Index hidden_size, Index num_layers, bool bias,
        Index dirs = 1, Precision precision = Precision::kFloat32);

  CellKind cell() const { return cell_; }
  Index input_size() const { return D_; }
  Index hidden_size() const { return H_; }
  Index num_layers() const { return L_; }
  Index dirs() const { return dirs_; }
  bool bias() const { return bias_; }
  Precision precision() const { return precision_; }
  const ParamLayout& layout() const { return layout_; }

  // Threads used for the parts of a sequence call: 0 = as many as the parts and the machine
  // allow. (Results do not depend on it.)
  void set_num_threads(int n) { threads_ = n < 0 ? 0 : n; }
  int num_threads() const { return threads_; }

  // Packs every unit's forward weights from a copy of params [layout().size] (unless packed
  // from equal parameters already); returns the copy, which forward() and step() read.
  // require_finite: std::invalid_argument for params holding NaN or infinity (checked only when
  // they differ from the packed ones, which passed the check).
  const S* pack_forward(const S* params, bool require_finite = false);

  // One timestep of layer l (direction 0) on io.n rows (step.hpp); fills in io.cw and io.w_ch.
  // Cell must be this stack's cell type: a stream dispatches cell() once per step
  // (dispatch_cell) and then steps layer after layer. Needs pack_forward().
  template <class Cell>
  void step(Index l, StepIO<S>& io, int threads) const {
    if (packed_from_.empty()) throw std::logic_error("Stack::step() needs pack_forward() first");
    const Index u = l * dirs_;
    const ParamLayout::Unit& P = layout_.units[u];
    io.cw = P.cw >= 0 ? packed_from_.data() + P.cw : nullptr;
    io.w_ch = &packed_[u].ch;
    step_forward<Cell>(packed_[u], io, threads);
  }

  // A workspace for layers [l0, l1) of direction d (one layer when dirs == 2).
  Run<S> make_run(Index l0, Index l1, Index d = 0) const;
  RunShape shape(const Run<S>& run) const;

  // Forward over x [B, T, D_l0] with the weights of the last pack_forward(). lengths, h0, c0
  // may be null (all T; zeros). Writes, where not null, y [B, T, H], hT and cT [Lr, B, H].
  // With `train`, keeps what backward needs.
  void forward(Run<S>& run, const S* x, Index B, Index T, const std::int64_t* lengths, const S* h0,
               const S* c0, S* y, S* hT, S* cT, bool train);

  // Backward through time for the run's last (training) forward with the same params, once:
  // it overwrites what the forward saved, so a second backward (or a trace) needs a new
  // forward (std::logic_error otherwise). dy [B, T, H], dhT, dcT [Lr, B, H] may be null
  // (zero). Adds the parameter gradients into dparams (+=, layout(): the run's units only);
  // writes dx [B, T, D], dh0 and dc0 [Lr, B, H] where not null, and for diagnostics dhs, dcs
  // [Lr, B, T, H]: dL/dh_t and dL/dc_t of every layer and step (zero past each length).
  void backward(Run<S>& run, const S* params, const S* dy, const S* dhT, const S* dcT, S* dparams,
                S* dx, S* dh0, S* dc0, S* dhs = nullptr, S* dcs = nullptr);

  // After a training forward and before its backward (which overwrites the gates): the
  // activated gates [Lr, B, T, G*H] and the states h, c [Lr, B, T, H] of every layer and
  // step, zero past each length. Any output may be null.
  void trace(const Run<S>& run, S* gates, S* h, S* c) const;

 private:
  using Part = typename Run<S>::Part;
  struct Args {  // one call's arrays, as given (batch-first, original order); null = absent
    const S *params = nullptr, *x = nullptr, *h0 = nullptr, *c0 = nullptr, *dy = nullptr,
            *dhT = nullptr, *dcT = nullptr;
    S *y = nullptr, *hT = nullptr, *cT = nullptr, *dparams = nullptr, *dx = nullptr, *dh0 = nullptr,
      *dc0 = nullptr, *dhs = nullptr, *dcs = nullptr;
  };

  // threads: for the column blocks of a one-part run (1 when the parts run on threads).
  template <class Cell>
  void forward_part(Run<S>& run, Part& p, const Args& a, bool train, int threads);
  template <class Cell>
  void backward_part(Run<S>& run, Part& p, const Args& a, int threads);
  // Layer k of part p in an inference by the fused step (stack.cpp: LSTM family without
  // peepholes, the packed float kernel or bfloat16's AMX kernel): in [T, n, Din], hs and cs
  // [T+1, n, H] with slot 0 loaded. Returns false (nothing done) where it does not apply: then
  // the general step runs.
  template <class Cell>
  bool forward_layer_fused(Run<S>& run, Part& p, Index k, const S* in, S* hs, S* cs, int threads,
                           S* y = nullptr, Index ldy = 0);
  void plan(Run<S>& run, Index B, Index T, const std::int64_t* lengths, bool train) const;
  // rows [n, H] of part p = src [Lr, B, H] at (k, sequence of local row j), or zeros for a
  // null src; and the reverse, dst [Lr, B, H] = rows, skipped for a null dst.
  void load_state(const Run<S>& run, S* rows, const S* src, const Part& p, Index k) const;
  void store_state(const Run<S>& run, S* dst, const S* rows, const Part& p, Index k) const;
  // out [Lr, B, T, H] at (k, sequence of local row j, t) = rows [na, H] of part p.
  void record(const Run<S>& run, S* out, const Part& p, Index k, Index t, const S* rows,
              Index na) const;
  int threads_for_call(const Run<S>& run) const;  // for the parts
  int threads_wanted() const;                     // the setting, 0 resolved
  Index unit(const Run<S>& run, Index k) const { return (run.l0_ + k) * dirs_ + run.d_; }

  CellKind cell_;
  Index D_, H_, L_, dirs_, G_;
  bool bias_;
  Precision precision_;
  ParamLayout layout_;
  int threads_ = 0;
  std::vector<PackedLayer<S>> packed_;  // [L * dirs]
  // The parameters the packed weights were packed from for a forward ([layout().size]);
  // empty when they hold nothing valid for a forward (none yet, or a backward packed W_hh).
  std::vector<S> packed_from_;
};

// nn's layer (bindings: Recurrent32/64, through RecurrentApi, api.hpp): one stack of one
// direction, driven over sequences by one Run over all of its layers.
template <class S>
class Recurrent final : public RecurrentApi<S> {
 public:
  Recurrent(CellKind cell, Index input_size, Index hidden_size, Index num_layers, bool bias,
            Precision precision = Precision::kFloat32)
      : stack_(cell, input_size, hidden_size, num_layers, bias, 1, precision),
        run_(stack_.make_run(0, num_layers)) {}

  CellKind cell() const override { return stack_.cell(); }
  Index input_size() const override { return stack_.input_size(); }
  Index hidden_size() const override { return stack_.hidden_size(); }
  Index num_layers() const override { return stack_.num_layers(); }
  bool bias() const override { return stack_.bias(); }
  const ParamLayout& layout() const override { return stack_.layout(); }
  bool has_forward() const override { return run_.has_forward(); }
  Index batch() const override { return run_.batch(); }
  Index steps() const override { return run_.steps(); }
  Index num_parts() const override { return run_.num_parts(); }
  Index forward_column_blocks() const override { return run_.forward_column_blocks(); }
  Index backward_column_blocks() const override { return run_.backward_column_blocks(); }
  void set_num_threads(int n) override { stack_.set_num_threads(n); }
  int num_threads() const override { return stack_.num_threads(); }

  // Stack::forward after packing params [layout().size] (x [B, T, D]; states [L, B, H]).
  void forward(const S* params, const S* x, Index B, Index T, const std::int64_t* lengths,
               const S* h0, const S* c0, S* y, S* hT, S* cT, bool train) override {
    stack_.pack_forward(params, true);  // (nn's check of its flat_params)
    stack_.forward(run_, x, B, T, lengths, h0, c0, y, hT, cT, train);
  }
  void backward(const S* params, const S* dy, const S* dhT, const S* dcT, S* dparams, S* dx, S* dh0,
                S* dc0, S* dhs, S* dcs) override {
    stack_.backward(run_, params, dy, dhT, dcT, dparams, dx, dh0, dc0, dhs, dcs);
  }
  void trace(S* gates, S* h, S* c) const override { stack_.trace(run_, gates, h, c); }

  // Scalars of workspace a forward on B sequences of T steps (and with `train` its backward,
  // with dy and dx, as nn's backward asks) will hold; and what it holds now.
  Index workspace_elements(Index B, Index T, bool train) const override {
    return run_workspace_elements(stack_.shape(run_), B, T, RunNeeds{train, true, true, false}).v;
  }
  Index allocated_elements() const override { return run_.allocated_elements(); }
  Precision precision() const override { return stack_.precision(); }

 private:
  Stack<S> stack_;
  Run<S> run_;
};

extern template class Run<float>;
extern template class Run<double>;
extern template class Stack<float>;
extern template class Stack<double>;

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
