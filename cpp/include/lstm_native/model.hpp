// Model<S>: recurrent layers (optionally bidirectional, with dropout between layers) plus a dense
// head and a loss, trained one epoch per call by minibatch gradient descent: everything the
// estimators need, with no Python per minibatch.
//
// Shapes (batch-first at every interface): X [N, T, D], lengths [N], outputs [N, O] (sequence
// to one: the head reads each sequence's last hidden state) or [N, T, O] (return_sequences: the
// head reads every step). dirs = 2 if bidirectional else 1. The layers are one Stack
// (stack.hpp) of L × dirs units, unit input width D_0 = D, D_l = dirs*H; each unit runs over
// the sequences in a Run of its own (the directions meet between layers: the reverse unit
// reads its input backwards within each length, and the next layer reads both outputs side by
// side), and a Stream (stream.hpp) steps the same kind of stack one timestep at a time.
//
// Parameter buffer (ModelLayout, config.hpp): units in order l0, l0_reverse, l1, ... with
// PyTorch's names (weight_ih_l{l}[_reverse] [G*H, D_l], weight_hh_l{l}[_reverse] [G*H, H],
// bias_ih.., bias_hh..), then head.weight [O, dirs*H] and head.bias [O]. Gradients and
// optimizer moments share it.
//
// Loss of a batch with sample weights w_i, W = Σ w_i, for weight matrices θ (not biases), each
// plus ½ α ‖θ‖² / Σ_i w_i (the per-row terms and their gradients: loss.hpp):
//   mse:            Σ_i w_i Σ_k ½ (p_ik - y_ik)² / (W·O)
//   absolute_error: Σ_i w_i Σ_k |p_ik - y_ik| / (W·O)
//   huber (δ):      Σ_i w_i Σ_k h_δ(p_ik - y_ik) / (W·O),  h_δ(e) = ½ e² (|e| <= δ), δ(|e| - ½ δ)
//   quantile:       Σ_i w_i Σ_k Σ_j ρ_{q_j}(y_ik - p_i,kQ+j) / (W·O),  O = n_targets·Q,
//                   ρ_q(u) = u (q - 1[u < 0]); targets y [n_targets] per row
//   softmax:        -Σ_i w_i log softmax(p_i)[y_i] / W
// With return_sequences the sums also run over each sequence's valid steps, and W = Σ w_i len_i.
//
// Recursive forecasting (rollout(), sequence-to-one unidirectional models): the history runs
// as predict() does, keeping each sequence's final state, y_0 = head(h); then each further step
// k feeds one input x_k (known covariates, with chosen columns replaced by outputs of step k-1)
// through one timestep of every layer (Stack::step, as a Stream does) and y_k = head(h).
//
// The Model's own buffers, for a batch of B sequences of T steps (sizes: layer_sizes() and
// model_sizes(), the one place every grow() and workspace_elements() read them from):
//   per layer l:  drop_in, drop_mask [B, T, D_l]   l > 0, training with dropout
//                 rev_in [B, T, D_l]               bidirectional: the reverse unit's input
//                 yf [B, T, H]                     forward unit's output (when read: not for
//                                                  the top layer of a sequence-to-one model)
//                 yr [B, T, H]                     reverse unit's output, in reversed time
//                 cat [B, T, dirs*H]               bidirectional: [yf, yr in forward time]
//                 hT [B, H] per unit               its final states
//   head:         feat [B, dirs*H]                 sequence-to-one: the final states
//                 logits, dlogits [rows, O]        rows = B*T (return_sequences) or B
//                 dfeat [rows, dirs*H]             dL/d(head input)
//                 dout, dxf, dxr [B, T, max(D, dirs*H)]  dL/d(layer output) and d(layer input)
//                 dyf, dyr [B, T, H], dhT [B, H]   one unit's dL/dy or dL/dh_T
//   an epoch:     grad [P], xb [B, T, D], yb [B, (T,) target_width], swb [B]   one minibatch
//   a rollout:    step_h [2, L, B, H]              each layer's h, double-buffered (a step
//                                                  reads one half and writes the other)
//                 step_c [L, B, H]                 each layer's c (cells with one; in place)
//                 step_gx, step_gh [B, G*H]        one step's gates (step.hpp)
//                 step_extra [B, max(1, kExtra*H)], step_scratch [B, kScratch*H]
//                 step_x [B, D]                    the next input
//                 (and the head packed for the steps, head.weightᵀ [H, O] + head.bias: like
//                 the stack's packed weights, a copy of parameters, not counted as workspace)
// plus one Run workspace per unit (stack.hpp). Which exist depends on the call (Call).
#pragma once

#include "api.hpp"
#include "cells.hpp"
#include "config.hpp"
#include "layout.hpp"
#include "packed.hpp"
#include "sizes.hpp"
#include "stack.hpp"
#include "types.hpp"

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

template <class S>
class Model final : public ModelApi<S> {
 public:
  explicit Model(const ModelConfig& cfg);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const override { return cfg_; }
  const ModelLayout& layout() const override { return layout_; }
  const std::vector<ParamLayout::Tensor>& tensors() const { return layout_.tensors; }
  Index num_params() const override { return layout_.size; }

  // Threads per call for the recurrent layers (0 = the global default). How a batch is split
  // depends only on its size, so results do not depend on this.
  void set_num_threads(int n) override {
    threads_ = n < 0 ? 0 : n;
    stack_.set_num_threads(threads_);
  }
  int num_threads() const override { return threads_; }

  // One epoch over (X, lengths, Y, sw); params/m/v updated in place; *step counts optimizer
  // steps (Adam's bias correction). Returns the mean minibatch loss weighted by batch size.
  // A minibatch whose sample weights are all zero is skipped (no step, not in the mean).
  // between_batches (may be empty) runs between minibatches (api.hpp); when it throws, the
  // epoch stops there and the parameters hold the last completed step.
  double train_epoch(S* params, S* m, S* v, std::int64_t* step, const S* X, Index N, Index T,
                     const std::int64_t* lengths, const S* Y, const S* sw, const OptimConfig& oc,
                     const BatchHook& between_batches) override;

  // Raw outputs (values or logits) into out [N, O] or [N, T, O]; zero at padded steps.
  void predict(const S* params, const S* X, Index N, Index T, const std::int64_t* lengths,
               S* out) override;

  // Loss of the whole set as one batch, no dropout; with grad != nullptr also its gradient
  // (overwritten, layout of params).
  double loss(const S* params, const S* X, Index N, Index T, const std::int64_t* lengths,
              const S* Y, const S* sw, double alpha, S* grad) override;

  // Recursive forecast of a sequence-to-one unidirectional model (ArgumentError otherwise), in
  // chunks of kPredictChunk sequences: the history X [N, T, D] (lengths as predict) leaves
  // each sequence's state and out[:, 0] = head(h); then for k = 1..horizon-1 the input
  //   x_k [N, D] = future[:, k-1, :] (zeros when future is null), then for each feedback f:
  //   x_k[:, f.input] = out[:, k-1, f.output]
  // runs one timestep of every layer from the carried state and out[:, k] = head(h).
  // future [N, horizon-1, D]; out [N, horizon, O]. The arguments are not checked here beyond
  // the model's kind and the lengths (the bindings check shapes and column ranges).
  void rollout(const S* params, const S* X, Index N, Index T, const std::int64_t* lengths,
               Index horizon, const S* future, const std::vector<Feedback>& feedback,
               S* out) override;

  // Scalars the workspace buffers hold now (a debug accessor: compare workspace_elements()).
  Index allocated_elements() const override;

 private:
  // Forward of one batch xb [B, T, D] (lengths len_); leaves logits_ [B or B*T, O] and each
  // unit's final h in hT_. A kTrainEpoch call turns dropout on (drawing from rng); kLossGrad
  // and kTrainEpoch keep what loss_backward needs. cT [L, B, H], where given (one direction,
  // cells with a cell state), receives each layer's final cell state.
  void forward(const S* params, const S* xb, Index B, Index T, Call call, std::mt19937_64* rng,
               S* cT = nullptr);
  // logits [rows, O] = feat [rows, dirs*H] · head.weightᵀ + head.bias.
  void head(const S* params, const S* feat, Index rows, S* logits) const;
  // The rollout of one chunk of B sequences (len_ set): see rollout().
  void rollout_chunk(const S* params, const S* X, Index B, Index T, Index horizon, const S* future,
                     const std::vector<Feedback>& feedback, S* out);
  // Loss of the last forward against Y ([B, O] / [B, T, O] / class indices), and if grad, its
  // gradient (+= into grad) through the head and all layers.
  double loss_backward(const S* params, const S* Y, const S* sw, double alpha, S* grad, Call call);
  void optimizer_step(S* params, const S* grad, S* m, S* v, std::int64_t* step,
                      const OptimConfig& oc);

  ModelConfig cfg_;
  ModelLayout layout_;
  int threads_ = 0;
  Index dirs_, feat_;
  std::vector<char> is_weight_;  // [num_params]: 1 where L2 / weight decay applies
  Stack<S> stack_;               // the L × dirs units and their packed weights
  std::vector<Run<S>> runs_;     // [L * dirs]: unit l*dirs + d's workspace

  // Batch state and workspace, grown to the largest batch seen (sizes: see the top).
  Index B_ = 0, T_ = 0;
  std::vector<std::int64_t> len_;  // [B]
  std::vector<Buffer<S>> drop_in_, drop_mask_, rev_in_, yf_, yr_, cat_, hT_;
  std::vector<const S*> layer_in_, layer_out_;  // [L]: what each layer read / produced
  std::vector<bool> dropped_;                   // [L]: dropout applied to layer l's input
  Buffer<S> feat_buf_, logits_, dlogits_, dfeat_, dout_, dyf_, dyr_, dxf_, dxr_, dhT_;
  Buffer<S> grad_, xb_, yb_, swb_;
  Buffer<S> step_h_, step_c_, step_gx_, step_gh_, step_extra_, step_scratch_, step_x_;
  PackedMatrix<S> head_packed_;  // rollout: head.weightᵀ [H, O] + head.bias, for the steps
};

extern template class Model<float>;
extern template class Model<double>;

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
