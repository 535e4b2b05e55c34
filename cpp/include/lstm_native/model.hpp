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
// Loss of a batch with sample weights w_i, W = Σ w_i, for weight matrices θ (not biases):
//   mse:     Σ_i w_i Σ_k ½ (p_ik - y_ik)² / (W·O)              (+ ½ α ‖θ‖² / Σ_i w_i)
//   softmax: -Σ_i w_i log softmax(p_i)[y_i] / W                 (+ ½ α ‖θ‖² / Σ_i w_i)
// With return_sequences the sums also run over each sequence's valid steps, and W = Σ w_i len_i.
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
//   an epoch:     grad [P], xb [B, T, D], yb [B, (T,) O or 1], swb [B]   one minibatch
// plus one Run workspace per unit (stack.hpp). Which exist depends on the call (Call).
#pragma once

#include "cells.hpp"
#include "config.hpp"
#include "layout.hpp"
#include "stack.hpp"
#include "types.hpp"

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace lstm_native {

// What a call computes, which decides the buffers it needs: predict (inference, in chunks of
// kPredictChunk sequences), loss (inference and the loss), loss with gradient (forward kept,
// backward through everything), one training epoch (the same with dropout, plus the gradient
// and the gathered minibatch).
enum class Call { kPredict, kLoss, kLossGrad, kTrainEpoch };
constexpr Index kPredictChunk = 256;  // sequences per forward in predict()

struct LayerSizes {
  Count drop_in, drop_mask, rev_in, yf, yr, cat, hT;  // hT: per unit
};
struct ModelSizes {
  Count feat, logits, dlogits, dfeat, dout, dxf, dxr, dyf, dyr, dhT, grad, xb, yb, swb;
  Count total() const {
    return feat + logits + dlogits + dfeat + dout + dxf + dxr + dyf + dyr + dhT + grad + xb +
           yb + swb;
  }
};
LayerSizes layer_sizes(const ModelConfig& c, Index l, Index B, Index T, Call call);
ModelSizes model_sizes(const ModelConfig& c, Index num_params, Index B, Index T, Call call);
// What unit (l, d)'s run is asked for in a call.
RunNeeds unit_needs(const ModelConfig& c, Index l, Call call);
// Scalars the whole workspace (the Model's buffers and every unit's run) holds after one call
// on B sequences of T steps (predict: on min(B, kPredictChunk)); O(1) in L. Needs a valid
// configuration; TooLarge when a count exceeds 2^63. (A later call on fewer sequences can
// hold a little more when it runs as one part where B ran as two: at most one part's buffers
// of a batch below the two-part threshold of stack.cpp, a few MB.)
Count workspace_elements(const ModelConfig& c, Index B, Index T, Call call);

template <class S>
class Model {
 public:
  explicit Model(const ModelConfig& cfg);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const ModelLayout& layout() const { return layout_; }
  const std::vector<ParamLayout::Tensor>& tensors() const { return layout_.tensors; }
  Index num_params() const { return layout_.size; }

  // Threads per call for the recurrent layers (0 = the global default). How a batch is split
  // depends only on its size, so results do not depend on this.
  void set_num_threads(int n) {
    threads_ = n < 0 ? 0 : n;
    stack_.set_num_threads(threads_);
  }
  int num_threads() const { return threads_; }

  // Called between minibatches with (samples done, samples in the epoch); may throw to stop
  // the epoch there (parameters then hold the last completed step).
  using BatchHook = std::function<void(Index, Index)>;

  // One epoch over (X, lengths, Y, sw); params/m/v updated in place; *step counts optimizer
  // steps (Adam's bias correction). Returns the mean minibatch loss weighted by batch size.
  // A minibatch whose sample weights are all zero is skipped (no step, not in the mean).
  double train_epoch(S* params, S* m, S* v, std::int64_t* step, const S* X, Index N, Index T,
                     const std::int64_t* lengths, const S* Y, const S* sw, const OptimConfig& oc,
                     const BatchHook& between_batches = nullptr);

  // Raw outputs (values or logits) into out [N, O] or [N, T, O]; zero at padded steps.
  void predict(const S* params, const S* X, Index N, Index T, const std::int64_t* lengths, S* out);

  // Loss of the whole set as one batch, no dropout; with grad != nullptr also its gradient
  // (overwritten, layout of params).
  double loss(const S* params, const S* X, Index N, Index T, const std::int64_t* lengths,
              const S* Y, const S* sw, double alpha, S* grad);

  // Scalars the workspace buffers hold now (a debug accessor: compare workspace_elements()).
  Index allocated_elements() const;

 private:
  // Forward of one batch xb [B, T, D] (lengths len_); leaves logits_ [B or B*T, O]. A
  // kTrainEpoch call turns dropout on (drawing from rng); kLossGrad and kTrainEpoch keep what
  // loss_backward needs.
  void forward(const S* params, const S* xb, Index B, Index T, Call call, std::mt19937_64* rng);
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
  std::vector<bool> dropped_;                    // [L]: dropout applied to layer l's input
  Buffer<S> feat_buf_, logits_, dlogits_, dfeat_, dout_, dyf_, dyr_, dxf_, dxr_, dhT_;
  Buffer<S> grad_, xb_, yb_, swb_;
};

extern template class Model<float>;
extern template class Model<double>;

}  // namespace lstm_native
