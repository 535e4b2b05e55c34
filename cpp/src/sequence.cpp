// The sequence driver shared by every cell: hoisted input GEMM, one recurrent GEMM per step,
// the cell's pointwise kernel per row, and BPTT with the weight gradients as GEMMs over all
// timesteps after the time loop. See sequence.hpp for the buffers and their shapes.
#include "lstm_native/sequence.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace lstm_native {

template <class S>
Recurrent<S>::Recurrent(CellKind cell, Index input_size, Index hidden_size, Index num_layers,
                        bool bias)
    : cell_(cell), D_(input_size), H_(hidden_size), L_(num_layers), G_(num_gates(cell)),
      bias_(bias) {
  require(input_size >= 1, "input_size must be >= 1, got " + std::to_string(input_size));
  require(hidden_size >= 1, "hidden_size must be >= 1, got " + std::to_string(hidden_size));
  require(num_layers >= 1, "num_layers must be >= 1, got " + std::to_string(num_layers));
  layout_ = ParamLayout(cell, input_size, hidden_size, num_layers, bias);
}

namespace {
template <class V>
void grow(V& v, Index n) {
  if (static_cast<Index>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
}
}  // namespace

template <class S>
void Recurrent<S>::reserve(Index B, Index T) {
  const Index GH = G_ * H_;
  const Index kc = dispatch_cell(cell_, [](auto c) { return Index(decltype(c)::kCache); });
  grow(x_tm_, T * B * D_);
  grow(hs_, L_ * (T + 1) * B * H_);
  if (has_cell_state(cell_)) grow(cs_, L_ * (T + 1) * B * H_);
  grow(cache_, std::max<Index>(1, L_ * T * B * kc * H_));
  grow(gx_, T * B * GH);
  grow(gh_, B * GH);
  grow(dh_, B * H_);
  grow(dc_, B * H_);
  grow(dh_prev_, B * H_);
}

template <class S>
void Recurrent<S>::forward(const S* params, const S* x, Index B, Index T,
                           const std::int64_t* lengths, const S* h0, const S* c0, S* y, S* hT,
                           S* cT) {
  require(B >= 1, "batch size must be >= 1");
  require(T >= 1, "number of timesteps must be >= 1");
  have_forward_ = false;
  len_.assign(static_cast<std::size_t>(B), T);
  if (lengths) {
    for (Index b = 0; b < B; ++b) {
      require(lengths[b] >= 0 && lengths[b] <= T,
              "lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) +
                  " is outside [0, " + std::to_string(T) + "]");
      len_[b] = static_cast<Index>(lengths[b]);
    }
  }
  B_ = B;
  T_ = T;
  reserve(B, T);

  // x [B, T, D] -> x_tm [T, B, D]
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t < T; ++t)
      std::memcpy(x_tm_.data() + (t * B + b) * D_, x + (b * T + t) * D_, sizeof(S) * D_);

  dispatch_cell(cell_, [&](auto c) { forward_impl<decltype(c)>(params, h0, c0); });

  // Last layer's h_t -> y [B, T, H], zero past each sequence's length.
  const S* hs = last_hidden();
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t < T; ++t) {
      S* dst = y + (b * T + t) * H_;
      if (t < len_[b])
        std::memcpy(dst, hs + ((t + 1) * B + b) * H_, sizeof(S) * H_);
      else
        std::fill(dst, dst + H_, S(0));
    }
  for (Index l = 0; l < L_; ++l) {
    const Index off = (l * (T + 1) + T) * B * H_;  // slot T of layer l
    if (hT) std::memcpy(hT + l * B * H_, hs_.data() + off, sizeof(S) * B * H_);
    if (cT && has_cell_state(cell_)) std::memcpy(cT + l * B * H_, cs_.data() + off, sizeof(S) * B * H_);
  }
  have_forward_ = true;
}

template <class S>
template <class Cell>
void Recurrent<S>::forward_impl(const S* params, const S* h0, const S* c0) {
  const Index B = B_, T = T_, H = H_, GH = G_ * H_, TB = T * B;
  constexpr Index kC = Cell::kCache;
  for (Index l = 0; l < L_; ++l) {
    const ParamLayout::Layer& P = layout_.layers[l];
    const Index Din = P.in;
    S* hs = hs_.data() + l * (T + 1) * B * H;
    S* cs = Cell::kHasCell ? cs_.data() + l * (T + 1) * B * H : nullptr;
    S* cache = cache_.data() + l * TB * kC * H;
    const S* in = l == 0 ? x_tm_.data() : hs_.data() + ((l - 1) * (T + 1) + 1) * B * H;

    // Gx [T*B, GH] = In [T*B, Din] · W_ihᵀ + b_ih, for all timesteps at once.
    MatMap<S> Gx(gx_.data(), TB, GH);
    if (bias_)
      Gx.rowwise() = ConstVecMap<S>(params + P.b_ih, GH);
    else
      Gx.setZero();
    Gx.noalias() += ConstMatMap<S>(in, TB, Din) * ConstMatMap<S>(params + P.w_ih, GH, Din).transpose();

    if (h0)
      std::memcpy(hs, h0 + l * B * H, sizeof(S) * B * H);
    else
      std::fill(hs, hs + B * H, S(0));
    if (Cell::kHasCell) {
      if (c0)
        std::memcpy(cs, c0 + l * B * H, sizeof(S) * B * H);
      else
        std::fill(cs, cs + B * H, S(0));
    }

    ConstMatMap<S> Whh(params + P.w_hh, GH, H);
    MatMap<S> Gh(gh_.data(), B, GH);
    for (Index t = 0; t < T; ++t) {
      // Gh [B, GH] = h_{t-1} [B, H] · W_hhᵀ + b_hh: all gates of the batch in one GEMM.
      if (bias_)
        Gh.rowwise() = ConstVecMap<S>(params + P.b_hh, GH);
      else
        Gh.setZero();
      Gh.noalias() += ConstMatMap<S>(hs + t * B * H, B, H) * Whh.transpose();
      for (Index b = 0; b < B; ++b) {
        const Index row = t * B + b;
        const S* hp = hs + row * H;
        S* hn = hs + (row + B) * H;
        const S* cp = Cell::kHasCell ? cs + row * H : nullptr;
        S* cn = Cell::kHasCell ? cs + (row + B) * H : nullptr;
        if (t < len_[b]) {
          Cell::forward(H, gx_.data() + row * GH, gh_.data() + b * GH, hp, cp, hn, cn,
                        cache + row * kC * H);
        } else {  // past the end: the state is carried unchanged
          std::memcpy(hn, hp, sizeof(S) * H);
          if (Cell::kHasCell) std::memcpy(cn, cp, sizeof(S) * H);
        }
      }
    }
  }
}

template <class S>
void Recurrent<S>::backward(const S* params, const S* dy, const S* dhT, const S* dcT,
                            S* dparams, S* dx, S* dh0, S* dc0) {
  if (!have_forward_) throw std::logic_error("backward() called without a preceding forward()");
  const Index B = B_, T = T_, H = H_;
  grow(dy_a_, T * B * std::max(D_, H));
  grow(dy_b_, T * B * std::max(D_, H));
  if (dispatch_cell(cell_, [](auto c) { return decltype(c)::kSeparateGh; }))
    grow(dgh_, T * B * G_ * H);

  // dy [B, T, H] -> dy_a [T, B, H]; padded steps are never read.
  S* dY = dy_a_.data();
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t < T; ++t) {
      S* dst = dY + (t * B + b) * H;
      if (dy)
        std::memcpy(dst, dy + (b * T + t) * H, sizeof(S) * H);
      else
        std::fill(dst, dst + H, S(0));
    }

  const S* dxt = dispatch_cell(cell_, [&](auto c) {
    return backward_impl<decltype(c)>(params, dhT, dcT, dparams, dh0, dc0);
  });

  if (dx) {  // dxt: dL/dx, time-major [T, B, D]
    for (Index b = 0; b < B; ++b)
      for (Index t = 0; t < T; ++t)
        std::memcpy(dx + (b * T + t) * D_, dxt + (t * B + b) * D_, sizeof(S) * D_);
  }
}

template <class S>
template <class Cell>
const S* Recurrent<S>::backward_impl(const S* params, const S* dhT, const S* dcT, S* dparams,
                                 S* dh0, S* dc0) {
  const Index B = B_, T = T_, H = H_, GH = G_ * H_, TB = T * B;
  constexpr Index kC = Cell::kCache;
  S* dY = dy_a_.data();    // dL/d(output of layer l)   [T, B, H]
  S* dIn = dy_b_.data();   // dL/d(input of layer l)    [T, B, Din]
  S* dgx = gx_.data();     // dL/dgx                   [T, B, GH]
  S* dgh = Cell::kSeparateGh ? dgh_.data() : dgx;
  S* dh = dh_.data();
  S* dc = dc_.data();
  S* dhp = dh_prev_.data();

  for (Index l = L_ - 1; l >= 0; --l) {
    const ParamLayout::Layer& P = layout_.layers[l];
    const Index Din = P.in;
    const S* hs = hs_.data() + l * (T + 1) * B * H;
    const S* cs = Cell::kHasCell ? cs_.data() + l * (T + 1) * B * H : nullptr;
    const S* cache = cache_.data() + l * TB * kC * H;
    const S* in = l == 0 ? x_tm_.data() : hs_.data() + ((l - 1) * (T + 1) + 1) * B * H;
    ConstMatMap<S> Whh(params + P.w_hh, GH, H);

    if (dhT)
      std::memcpy(dh, dhT + l * B * H, sizeof(S) * B * H);
    else
      std::fill(dh, dh + B * H, S(0));
    if (Cell::kHasCell) {
      if (dcT)
        std::memcpy(dc, dcT + l * B * H, sizeof(S) * B * H);
      else
        std::fill(dc, dc + B * H, S(0));
    }

    for (Index t = T - 1; t >= 0; --t) {
      for (Index b = 0; b < B; ++b) {
        const Index row = t * B + b;
        S* dhb = dh + b * H;
        if (t < len_[b]) {
          ArrMap<S>(dhb, H) += ConstArrMap<S>(dY + row * H, H);  // dh_t = from t+1 + from output
          Cell::backward(H, cache + row * kC * H, hs + row * H,
                         Cell::kHasCell ? cs + row * H : nullptr, hs + (row + B) * H, dhb,
                         Cell::kHasCell ? dc + b * H : nullptr, dgx + row * GH, dgh + row * GH,
                         dhp + b * H);
        } else {  // padded step: gradients pass through the carried state untouched
          std::fill(dgx + row * GH, dgx + (row + 1) * GH, S(0));
          if (Cell::kSeparateGh) std::fill(dgh + row * GH, dgh + (row + 1) * GH, S(0));
          std::memcpy(dhp + b * H, dhb, sizeof(S) * H);
        }
      }
      // dh_{t-1} [B, H] = dgh_t [B, GH] · W_hh [GH, H] + direct part
      MatMap<S> Dh(dh, B, H);
      Dh.noalias() = ConstMatMap<S>(dgh + t * B * GH, B, GH) * Whh;
      Dh += ConstMatMap<S>(dhp, B, H);
    }
    if (dh0) std::memcpy(dh0 + l * B * H, dh, sizeof(S) * B * H);
    if (dc0 && Cell::kHasCell) std::memcpy(dc0 + l * B * H, dc, sizeof(S) * B * H);

    // Weight gradients: one GEMM each over all T*B rows.
    ConstMatMap<S> Dgx(dgx, TB, GH), Dgh(dgh, TB, GH);
    MatMap<S>(dparams + P.w_ih, GH, Din).noalias() += Dgx.transpose() * ConstMatMap<S>(in, TB, Din);
    MatMap<S>(dparams + P.w_hh, GH, H).noalias() += Dgh.transpose() * ConstMatMap<S>(hs, TB, H);
    if (bias_) {
      VecMap<S>(dparams + P.b_ih, GH) += Dgx.colwise().sum();
      VecMap<S>(dparams + P.b_hh, GH) += Dgh.colwise().sum();
    }
    // dL/d(input of layer l) [T*B, Din] = dgx · W_ih; the output gradient of layer l-1.
    MatMap<S>(dIn, TB, Din).noalias() = Dgx * ConstMatMap<S>(params + P.w_ih, GH, Din);
    std::swap(dY, dIn);
  }
  return dY;  // after the last swap: dL/dx, time-major [T, B, D]
}

template class Recurrent<float>;
template class Recurrent<double>;

}  // namespace lstm_native
