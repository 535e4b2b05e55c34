// Stream<S>: a trained model's network run one timestep at a time, with its state kept here
// between calls.
//
// For online use (a sensor sample arrives, a prediction leaves) the per-call cost is what
// matters, so everything is prepared at construction: the layers are a Stack (stack.hpp) whose
// weights are packed once from a copy of the parameters, the head is packed for the small GEMM
// (packed.hpp), and the state and scratch buffers are allocated. step() then allocates nothing:
//   for each layer l:  (h_l, c_l) = the step of stack.hpp/step.hpp on (x, h_l, c_l)
//                      (gx = x W_ihᵀ + b_ih, gh = h_l W_hhᵀ + b_hh, the cell; large steps on
//                      two threads, each on half of the columns or, at batch 1, of the units)
//                      x = h_l
//   out = h_{L-1} W_headᵀ + b_head                                   [B, O]
// This equals the model's output for the sequence seen so far (sequence-to-one models) or for
// the last step (return_sequences). Bidirectional models cannot stream (they need the future).
//
// Buffers: h [2][L, B, H] (double-buffered: a step reads slot cur and writes the other, so a
// layer's h_{t-1} stays intact while two threads write h_t), c [L, B, H] (updated in place:
// each unit's c is read and written by the same thread), gx, gh [B, G*H] (the gates of one
// step, then their activations), extra [B, kExtra*H] (at least 1), scratch [B, kScratch*H].
#pragma once

#include "api.hpp"
#include "config.hpp"
#include "packed.hpp"
#include "stack.hpp"
#include "threads.hpp"
#include "types.hpp"

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

template <class S>
class Stream final : public StreamApi<S> {
 public:
  // Copies what it needs from params (ModelLayout(cfg)); later changes to params do not affect
  // the stream. batch: number of independent streams stepped together; threads: see
  // set_num_threads.
  Stream(const ModelConfig& cfg, const S* params, Index batch, int threads = 0);

  Index batch() const override { return B_; }
  Index input_size() const override { return cfg_.input_size; }
  Index output_size() const override { return cfg_.output_size; }
  Index hidden_size() const override { return cfg_.hidden_size; }
  Index num_layers() const override { return cfg_.num_layers; }
  bool has_cell_state() const override { return lstm_native::has_cell_state(cfg_.cell); }

  // x [B, D] -> out [B, O] (raw: values or logits); advances the state.
  void step(const S* x, S* out) override;
  void reset() override;  // zero state
  // Threads for a step (0 = the default). Only steps with at least kMinSplit multiply-adds
  // (step.hpp) use two: below that the hand-off costs more.
  void set_num_threads(int n) override { threads_ = n > 0 ? n : default_num_threads(); }
  int num_threads() const override { return threads_; }
  // State [L, B, H] (h; c for cells with a cell state), for saving and restoring.
  S* h() override { return h_.data() + cur_ * cfg_.num_layers * B_ * cfg_.hidden_size; }
  S* c() override { return c_.data(); }

 private:
  ModelConfig cfg_;
  Index B_;
  int threads_ = 1;
  Stack<S> stack_;
  PackedMatrix<S> head_;
  Buffer<S> h_, c_, gx_, gh_, extra_, scratch_;
  Index cur_ = 0;
};

extern template class Stream<float>;
extern template class Stream<double>;

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
