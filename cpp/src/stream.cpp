// One-timestep-at-a-time inference for a Model; see stream.hpp.
#include "lstm_native/stream.hpp"

#include <algorithm>

namespace lstm_native {

template <class S>
Stream<S>::Stream(const Model<S>& model, const S* params, Index batch)
    : cfg_(model.cfg_), B_(batch), G_(num_gates(model.cfg_.cell)) {
  require(!cfg_.bidirectional, "a bidirectional model cannot be run as a stream");
  require(batch >= 1, "stream batch must be >= 1");
  const Index H = cfg_.hidden_size, L = cfg_.num_layers, GH = G_ * H;
  wih_.resize(static_cast<std::size_t>(L));
  whh_.resize(static_cast<std::size_t>(L));
  wch_.resize(static_cast<std::size_t>(L));
  cw_.resize(static_cast<std::size_t>(L));
  for (Index l = 0; l < L; ++l) {
    const auto& u = model.units_[l];
    const auto& P = u.rnn->layout().layers[0];
    const S* p = params + u.offset;
    wih_[l].pack_transposed(p + P.w_ih, GH, P.in, cfg_.bias ? p + P.b_ih : nullptr);
    whh_[l].pack_transposed(p + P.w_hh, GH, H, cfg_.bias ? p + P.b_hh : nullptr);
    if (P.w_ch >= 0) wch_[l].pack_transposed(p + P.w_ch, H, H, nullptr);
    if (P.cw >= 0) {
      const int ncw = dispatch_cell(cfg_.cell, [](auto c) { return decltype(c)::kCellParams; });
      cw_[l].assign(p + P.cw, p + P.cw + ncw * H);
    }
  }
  head_.pack_transposed(params + model.head_w_, cfg_.output_size, H,
                        model.head_b_ >= 0 ? params + model.head_b_ : nullptr);
  const Index kx = dispatch_cell(cfg_.cell, [](auto c) { return Index(decltype(c)::kExtra); });
  h_.assign(static_cast<std::size_t>(L * B_ * H), S(0));
  c_.assign(static_cast<std::size_t>(L * B_ * H), S(0));
  gx_.resize(static_cast<std::size_t>(B_ * GH));
  gh_.resize(static_cast<std::size_t>(B_ * GH));
  extra_.resize(static_cast<std::size_t>(std::max<Index>(1, B_ * kx * H)));
  gc_.resize(static_cast<std::size_t>(B_ * H));
}

template <class S>
void Stream<S>::reset() {
  std::fill(h_.begin(), h_.end(), S(0));
  std::fill(c_.begin(), c_.end(), S(0));
}

template <class S>
void Stream<S>::step(const S* x, S* out) {
  dispatch_cell(cfg_.cell, [&](auto c) { step_impl<decltype(c)>(x, out); });
}

template <class S>
template <class Cell>
void Stream<S>::step_impl(const S* x, S* out) {
  const Index H = cfg_.hidden_size, GH = G_ * H;
  const S* in = x;
  Index Din = cfg_.input_size;
  for (Index l = 0; l < cfg_.num_layers; ++l) {
    S* h = h_.data() + l * B_ * H;
    S* c = Cell::kHasCell ? c_.data() + l * B_ * H : nullptr;
    wih_[l].multiply(in, Din, B_, gx_.data(), GH);
    whh_[l].multiply(h, H, B_, gh_.data(), GH);
    if constexpr (Cell::kCellGemm == kCellGemmFromPrev) wch_[l].multiply(c, H, B_, gc_.data(), H);
    // The cell kernels are elementwise, so the state is updated in place.
    Cell::forward(B_, H, gx_.data(), gh_.data(), h, c, h, c, extra_.data(),
                  cw_[l].empty() ? nullptr : cw_[l].data(), gc_.data());
    if constexpr (Cell::kCellGemm == kCellGemmFromNew) {
      wch_[l].multiply(c, H, B_, gc_.data(), H);
      Cell::finish(B_, H, gx_.data(), gc_.data(), h);
    }
    in = h;
    Din = H;
  }
  head_.multiply(in, H, B_, out, cfg_.output_size);
}

template class Stream<float>;
template class Stream<double>;

}  // namespace lstm_native
