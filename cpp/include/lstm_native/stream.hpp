// Stream<S>: a trained Model run one timestep at a time, with its state kept here between calls.
//
// For online use (a sensor sample arrives, a prediction leaves) the per-call cost is what
// matters, so everything is prepared at construction: every layer's W_ihᵀ+b_ih, W_hhᵀ+b_hh and
// the head are packed for the small GEMM (packed.hpp), and the state and scratch buffers are
// allocated. step() then allocates nothing:
//   for each layer l:  gx = x W_ihᵀ + b_ih,  gh = h_l W_hhᵀ + b_hh   [B, G*H]
//                      (h_l, c_l) = cell(gx, gh, h_l, c_l)
//                      (large steps on two threads, each on half the columns; stream.cpp)
//                      x = h_l
//   out = h_{L-1} W_headᵀ + b_head                                   [B, O]
// This equals the model's output for the sequence seen so far (sequence-to-one models) or for
// the last step (return_sequences). Bidirectional models cannot stream (they need the future).
#pragma once

#include "model.hpp"
#include "packed.hpp"
#include "threads.hpp"
#include "types.hpp"

#include <vector>

namespace lstm_native {

template <class S>
class Stream {
 public:
  // Copies what it needs from params (layout of `model`); later changes to params do not
  // affect the stream. batch: number of independent streams stepped together.
  Stream(const Model<S>& model, const S* params, Index batch);

  Index batch() const { return B_; }
  Index input_size() const { return cfg_.input_size; }
  Index output_size() const { return cfg_.output_size; }
  Index hidden_size() const { return cfg_.hidden_size; }
  Index num_layers() const { return cfg_.num_layers; }
  bool has_cell_state() const { return lstm_native::has_cell_state(cfg_.cell); }

  // x [B, D] -> out [B, O] (raw: values or logits); advances the state.
  void step(const S* x, S* out);
  void reset();  // zero state
  // Threads for a step (the model's setting at construction; 0 = the default). Only steps
  // with at least kMinSplit multiply-adds use two: below that the hand-off costs more.
  void set_num_threads(int n) { threads_ = n > 0 ? n : default_num_threads(); }
  int num_threads() const { return threads_; }
  static constexpr Index kMinSplit = Index(1) << 16;
  // State [L, B, H] (h; c for LSTM), for saving and restoring.
  S* h() { return h_.data() + cur_ * cfg_.num_layers * B_ * cfg_.hidden_size; }
  S* c() { return c_.data(); }

 private:
  template <class Cell>
  void step_impl(const S* x, S* out);

  ModelConfig cfg_;
  Index B_, G_;
  int threads_ = 1;
  std::vector<PackedMatrix<S>> wih_, whh_, wch_;  // [L]
  std::vector<Buffer<S>> cw_;                      // [L]: the cells' [H] parameter vectors
  PackedMatrix<S> head_;
  // h_ [2][L, B, H]: the state read by a step (slot cur_) and the one it writes; c_ [L, B, H]
  // (updated in place: each unit's c is read and written by the same thread). gx_, gh_
  // [B, G*H]: the gates of one step, then their activations.
  Buffer<S> h_, c_, gx_, gh_, gc_, extra_;
  Index cur_ = 0;
};

extern template class Stream<float>;
extern template class Stream<double>;

}  // namespace lstm_native
