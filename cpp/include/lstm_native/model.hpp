// Model<S>: recurrent layers (optionally bidirectional, with dropout between layers) plus a dense
// head and a loss, trained one epoch per call by minibatch gradient descent: everything the
// estimators need, with no Python per minibatch.
//
// Shapes (batch-first at every interface): X [N, T, D], lengths [N], outputs [N, O] (sequence
// to one: the head reads each sequence's last hidden state) or [N, T, O] (return_sequences: the
// head reads every step). dirs = 2 if bidirectional else 1; layer l has one Recurrent unit per
// direction, unit input width D_0 = D, D_l = dirs*H.
//
// Parameter buffer (layout()): units in order l0, l0_reverse, l1, ... with PyTorch's names
// (weight_ih_l{l}[_reverse] [G*H, D_l], weight_hh_l{l}[_reverse] [G*H, H], bias_ih.., bias_hh..),
// then head.weight [O, dirs*H] and head.bias [O]. Gradients and optimizer moments share it.
//
// Loss of a batch with sample weights w_i, W = Σ w_i, for weight matrices θ (not biases):
//   mse:     Σ_i w_i Σ_k ½ (p_ik - y_ik)² / (W·O)              (+ ½ α ‖θ‖² / Σ_i w_i)
//   softmax: -Σ_i w_i log softmax(p_i)[y_i] / W                 (+ ½ α ‖θ‖² / Σ_i w_i)
// With return_sequences the sums also run over each sequence's valid steps, and W = Σ w_i len_i.
#pragma once

#include "cells.hpp"
#include "layout.hpp"
#include "sequence.hpp"
#include "types.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace lstm_native {

enum class LossKind { kMse, kSoftmax };
enum class Solver { kSgd, kAdam, kAdamW, kRmsprop };

struct ModelConfig {
  CellKind cell = CellKind::kLstm;
  Index input_size = 1, hidden_size = 1, num_layers = 1, output_size = 1;
  bool bias = true, bidirectional = false, return_sequences = false;
  double dropout = 0.0;
  LossKind loss = LossKind::kMse;
};

struct OptimConfig {
  Solver solver = Solver::kAdam;
  double lr = 1e-3, alpha = 0.0, momentum = 0.9, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double max_grad_norm = 0.0;  // <= 0: no clipping
  bool nesterov = true;
  Index batch_size = 32;
  bool shuffle = true;
  std::uint64_t seed = 0;
};

template <class S>
class Model {
 public:
  explicit Model(const ModelConfig& cfg);

  const ModelConfig& config() const { return cfg_; }
  const std::vector<ParamLayout::Tensor>& tensors() const { return tensors_; }
  Index num_params() const { return size_; }

  // Threads per call for the recurrent layers (0 = the global default). How a batch is split
  // depends only on its size, so results do not depend on this.
  void set_num_threads(int n) {
    threads_ = n < 0 ? 0 : n;
    for (auto& u : units_) u.rnn->set_num_threads(threads_);
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

 private:
  template <class>
  friend class Stream;
  struct Unit {
    std::unique_ptr<Recurrent<S>> rnn;
    Index offset;  // of its parameters in the flat buffer
  };
  // Forward of one batch xb [B, T, D] (lengths len_); leaves logits_ [B or B*T, O]. `train`
  // turns dropout on (drawing from rng); `keep` keeps what loss_backward needs.
  void forward(const S* params, const S* xb, Index B, Index T, bool train, std::mt19937_64* rng,
               bool keep);
  // Loss of the last forward against Y ([B, O] / [B, T, O] / class indices), and if grad, its
  // gradient (+= into grad) through the head and all layers.
  double loss_backward(const S* params, const S* Y, const S* sw, double alpha, S* grad);
  void optimizer_step(S* params, const S* grad, S* m, S* v, std::int64_t* step,
                      const OptimConfig& oc);

  ModelConfig cfg_;
  int threads_ = 0;
  Index dirs_, size_ = 0, head_w_ = 0, head_b_ = -1, feat_ = 0;
  std::vector<ParamLayout::Tensor> tensors_;
  std::vector<char> is_weight_;  // [num_params]: 1 where L2 / weight decay applies
  std::vector<Unit> units_;      // [L * dirs]

  // Batch state and workspace, grown to the largest batch seen.
  Index B_ = 0, T_ = 0;
  std::vector<std::int64_t> len_;  // [B]
  // per layer l: drop_in/drop_mask [B, T, D_l] (l > 0, training with dropout), rev_in [B, T, D_l]
  // (bidirectional), yf/yr [B, T, H] (forward / reverse unit output, yr in reversed time),
  // cat [B, T, dirs*H] (bidirectional); per unit: hT [B, H].
  std::vector<Buffer<S>> drop_in_, drop_mask_, rev_in_, yf_, yr_, cat_, hT_;
  std::vector<const S*> layer_in_, layer_out_;  // [L]: what each layer read / produced
  std::vector<bool> dropped_;                    // [L]: dropout applied to layer l's input
  Buffer<S> feat_buf_, logits_, dlogits_, dfeat_, dout_, dyf_, dyr_, dxf_, dxr_, dhT_;
  Buffer<S> grad_, xb_, yb_, swb_;
  std::vector<std::int64_t> lenb_;
};

extern template class Model<float>;
extern template class Model<double>;

}  // namespace lstm_native
