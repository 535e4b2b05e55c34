// One-timestep-at-a-time inference; see stream.hpp.
#include "lstm_native/stream.hpp"

#include <algorithm>

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

namespace {
// The configuration, after refusing one that cannot stream or is too large to build.
ModelConfig checked(const ModelConfig& c, Index batch, std::size_t scalar) {
  c.validate();
  require(!c.bidirectional, "a bidirectional model cannot be run as a stream");
  require(batch >= 1, "stream batch must be >= 1");
  c.check_fits("stream", scalar, batch);
  return c;
}
}  // namespace

template <class S>
Stream<S>::Stream(const ModelConfig& cfg, const S* params, Index batch, int threads)
    : cfg_(checked(cfg, batch, sizeof(S))),
      B_(batch),
      stack_(cfg_.cell, cfg_.input_size, cfg_.hidden_size, cfg_.num_layers, cfg_.bias, 1,
             cfg_.precision) {
  const ModelLayout layout(cfg_);
  stack_.pack_forward(params);  // the recurrent units come first in the model's buffer
  head_.pack_transposed(params + layout.head_w, cfg_.output_size, cfg_.hidden_size,
                        layout.head_b >= 0 ? params + layout.head_b : nullptr);
  const CellShape cs = cell_shape(cfg_.cell);
  const Index H = cfg_.hidden_size, L = cfg_.num_layers, GH = cs.gates * H;
  h_.assign(static_cast<std::size_t>(2 * L * B_ * H), S(0));
  c_.assign(static_cast<std::size_t>(L * B_ * H), S(0));
  gx_.resize(static_cast<std::size_t>(B_ * GH));
  gh_.resize(static_cast<std::size_t>(B_ * GH));
  extra_.resize(static_cast<std::size_t>(std::max<Index>(1, B_ * cs.extra * H)));
  scratch_.resize(static_cast<std::size_t>(B_ * cs.scratch * H));
  set_num_threads(threads);
}

template <class S>
void Stream<S>::reset() {
  std::fill(h_.begin(), h_.end(), S(0));
  std::fill(c_.begin(), c_.end(), S(0));
}

template <class S>
void Stream<S>::step(const S* x, S* out) {
  const Index H = cfg_.hidden_size, L = cfg_.num_layers, BH = B_ * H, LBH = L * BH;
  const S* h_old = h_.data() + cur_ * LBH;  // h is double-buffered: [2][L, B, H]
  S* h_new = h_.data() + (1 - cur_) * LBH;
  StepIO<S> io;
  io.n = B_;
  io.H = H;
  io.x = x;
  io.gates = gx_.data();
  io.gh = gh_.data();
  io.extra = extra_.data();
  io.scratch = scratch_.data();
  dispatch_cell(cfg_.cell, [&](auto c) {  // the cell type once per step, not per layer
    using Cell = decltype(c);
    for (Index l = 0; l < L; ++l) {
      io.h_prev = h_old + l * BH;
      io.h = h_new + l * BH;
      io.c = Cell::kHasCell ? c_.data() + l * BH : nullptr;  // elementwise: in place
      io.c_prev = io.c;
      stack_.template step<Cell>(l, io, threads_);
      io.x = io.h;  // the next layer's input
    }
  });
  cur_ = 1 - cur_;
  head_.multiply(io.x, H, B_, out, cfg_.output_size);
}

template class Stream<float>;
template class Stream<double>;

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
