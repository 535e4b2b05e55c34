// One-timestep-at-a-time inference for a Model; see stream.hpp.
#include "lstm_native/stream.hpp"

#include "lstm_native/threads.hpp"

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
  h_.assign(static_cast<std::size_t>(2 * L * B_ * H), S(0));
  c_.assign(static_cast<std::size_t>(L * B_ * H), S(0));
  gx_.resize(static_cast<std::size_t>(B_ * GH));
  gh_.resize(static_cast<std::size_t>(B_ * GH));
  extra_.resize(static_cast<std::size_t>(std::max<Index>(1, B_ * kx * H)));
  gc_.resize(static_cast<std::size_t>(B_ * H));
  set_num_threads(model.num_threads());
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
  constexpr Index kPanel = PackedMatrix<S>::kPanel;
  constexpr Index kx = Cell::kExtra;
  // Cells whose pointwise math is per unit with no [H] parameter vectors can run on half of
  // the units: see below.
  constexpr bool kUnitwise = Cell::kCellParams == 0 && Cell::kCellGemm == kNoCellGemm;
  const Index H = cfg_.hidden_size, GH = G_ * H, L = cfg_.num_layers, LBH = L * B_ * H;
  const S* h_old = h_.data() + cur_ * LBH;  // h is double-buffered: [2][L, B, H]
  S* h_new = h_.data() + (1 - cur_) * LBH;
  const S* in = x;
  Index Din = cfg_.input_size;
  for (Index l = 0; l < L; ++l) {
    const S* hp = h_old + l * B_ * H;
    S* hn = h_new + l * B_ * H;
    S* c = Cell::kHasCell ? c_.data() + l * B_ * H : nullptr;  // elementwise: in place
    // gx = in W_ihᵀ + b_ih, gh = h W_hhᵀ + b_hh. When the step is big enough, it is cut in two
    // halves on two threads: each core then keeps its half of the weights in its own L2 from
    // step to step, where one core would stream all of them from L3 every step.
    const bool split = threads_ >= 2 && B_ * GH * (H + Din) >= kMinSplit;
    if (kUnitwise && split && B_ == 1 && H % (2 * kPanel) == 0) {
      // Half q owns units [q*Hh, (q+1)*Hh): it computes their columns of every gate block into
      // its own [G, Hh] slice of gx_ and gh_ and runs the cell on them, so the gates never
      // cross cores (only h does, through h_new; h_old stays intact for the other half's GEMM).
      const Index Hh = H / 2;
      auto half = [&](int q) {
        S* gxq = gx_.data() + q * G_ * Hh;
        S* ghq = gh_.data() + q * G_ * Hh;
        for (Index k = 0; k < G_; ++k) {
          const Index p0 = (k * H + q * Hh) / kPanel, p1 = p0 + Hh / kPanel;
          wih_[l].multiply_panels(in, Din, 1, gxq + k * Hh, GH, p0, p1);
          whh_[l].multiply_panels(hp, H, 1, ghq + k * Hh, GH, p0, p1);
        }
        S* cq = Cell::kHasCell ? c + q * Hh : nullptr;
        Cell::forward(Index(1), Hh, gxq, ghq, hp + q * Hh, cq, hn + q * Hh, cq,
                      extra_.data() + q * kx * Hh, static_cast<const S*>(nullptr),
                      static_cast<const S*>(nullptr));
      };
      ThreadPool::instance().run(2, threads_, [&half](int q) { half(q); });  // (one reference
                                                    // fits std::function inline: no allocation)
    } else {
      const Index parts = split ? 2 : 1;
      auto part = [&](int q) {  // a contiguous range of column panels
        const Index pi = wih_[l].panels(), ph = whh_[l].panels();
        const Index i0 = pi * q / parts, h0 = ph * q / parts;
        wih_[l].multiply_panels(in, Din, B_, gx_.data() + i0 * kPanel, GH, i0,
                                pi * (q + 1) / parts);
        whh_[l].multiply_panels(hp, H, B_, gh_.data() + h0 * kPanel, GH, h0,
                                ph * (q + 1) / parts);
      };
      if (parts == 1)
        part(0);
      else
        ThreadPool::instance().run(2, threads_, [&part](int q) { part(q); });
      if constexpr (Cell::kCellGemm == kCellGemmFromPrev) wch_[l].multiply(c, H, B_, gc_.data(), H);
      Cell::forward(B_, H, gx_.data(), gh_.data(), hp, c, hn, c, extra_.data(),
                    cw_[l].empty() ? nullptr : cw_[l].data(), gc_.data());
      if constexpr (Cell::kCellGemm == kCellGemmFromNew) {
        wch_[l].multiply(c, H, B_, gc_.data(), H);
        Cell::finish(B_, H, gx_.data(), gc_.data(), hn);
      }
    }
    in = hn;
    Din = H;
  }
  cur_ = 1 - cur_;
  head_.multiply(in, H, B_, out, cfg_.output_size);
}

template class Stream<float>;
template class Stream<double>;

}  // namespace lstm_native
