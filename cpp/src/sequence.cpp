// The sequence driver shared by every cell: hoisted input GEMM, one recurrent GEMM per step on
// the rows still running, the cell's pointwise kernel, and BPTT with the weight gradients as
// GEMMs over all timesteps after the time loop. See sequence.hpp for the buffers.
#include "lstm_native/sequence.hpp"

#include "lstm_native/threads.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <utility>

namespace lstm_native {

namespace {
template <class V>
void grow(V& v, Index n) {
  if (static_cast<Index>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
}
// Multiply-adds in one forward pass; below this a second part (thread) is not worth it.
constexpr double kMinWorkForTwoParts = 2e6;
}  // namespace

template <class S>
Recurrent<S>::Recurrent(CellKind cell, Index input_size, Index hidden_size, Index num_layers,
                        bool bias)
    : cell_(cell), D_(input_size), H_(hidden_size), L_(num_layers), G_(num_gates(cell)),
      bias_(bias) {
  require(input_size >= 1, "input_size must be >= 1, got " + std::to_string(input_size));
  require(hidden_size >= 1, "hidden_size must be >= 1, got " + std::to_string(hidden_size));
  require(num_layers >= 1, "num_layers must be >= 1, got " + std::to_string(num_layers));
  layout_ = ParamLayout(cell, input_size, hidden_size, num_layers, bias);
  packed_.resize(static_cast<std::size_t>(num_layers));
  packed_ih_.resize(static_cast<std::size_t>(num_layers));
  packed_ch_.resize(static_cast<std::size_t>(num_layers));
}

template <class S>
int Recurrent<S>::threads_for_call() const {
  const int want = threads_ > 0 ? threads_ : default_num_threads();
  return std::max(1, std::min<int>(want, static_cast<int>(parts_.size())));
}

// Sorts the batch by length and deals the sorted rows out to the parts round-robin, so every
// part gets a similar mix of lengths and its own rows stay sorted (running rows = a prefix).
template <class S>
void Recurrent<S>::plan(Index B, Index T, const std::int64_t* lengths) {
  order_.resize(static_cast<std::size_t>(B));
  std::iota(order_.begin(), order_.end(), Index(0));
  if (lengths)
    std::stable_sort(order_.begin(), order_.end(),
                     [&](Index a, Index b) { return lengths[a] > lengths[b]; });
  len_.resize(static_cast<std::size_t>(B));
  for (Index k = 0; k < B; ++k) len_[k] = lengths ? Index(lengths[order_[k]]) : T;

  const double work = double(B) * double(T) * double(G_ * H_) * double(H_ + D_) * double(L_);
  const Index P = (B >= 8 && work >= kMinWorkForTwoParts) ? 2 : 1;
  parts_.resize(static_cast<std::size_t>(P));
  for (Index q = 0; q < P; ++q) {
    Part& p = parts_[q];
    p.r0 = q;
    p.n = (B - q + P - 1) / P;  // sorted rows q, q+P, q+2P, ...
    p.active.resize(static_cast<std::size_t>(T));
    Index j = p.n;
    for (Index t = 0; t < T; ++t) {
      while (j > 0 && len_[q + (j - 1) * P] <= t) --j;
      p.active[t] = j;
    }
  }
}

template <class S>
void Recurrent<S>::forward(const S* params, const S* x, Index B, Index T,
                           const std::int64_t* lengths, const S* h0, const S* c0, S* y, S* hT,
                           S* cT, bool train) {
  require(B >= 1, "batch size must be >= 1");
  require(T >= 1, "number of timesteps must be >= 1");
  if (lengths)
    for (Index b = 0; b < B; ++b)
      require(lengths[b] >= 0 && lengths[b] <= T,
              "lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) +
                  " is outside [0, " + std::to_string(T) + "]");
  have_forward_ = false;
  B_ = B;
  T_ = T;
  plan(B, T, lengths);
  const Index GH = G_ * H_;
  // W_ihᵀ, W_hhᵀ and the biases (and W_chᵀ) packed once for all steps, and not even once when
  // they were packed for a forward from these very parameters (repeated inference): comparing
  // the parameters costs a fraction of transposing them, and stops at the first difference.
  // The parameters are copied first and packed from the copy, and the whole forward reads the
  // copy: if another thread writes them meanwhile (a user's write racing a predict), this call
  // sees one consistent snapshot, the packed weights always equal packed_from_ exactly, and
  // the next call sees the difference and packs again. (Packing from the live buffer and
  // copying it afterwards could keep a mix of old and new weights for every later call.)
  const std::size_t np = static_cast<std::size_t>(layout_.size);
  const bool packed_already = packed_from_.size() == np &&
                              std::memcmp(packed_from_.data(), params, sizeof(S) * np) == 0;
  if (!packed_already) {
    packed_from_.assign(params, params + np);
    const S* src = packed_from_.data();
    for (Index l = 0; l < L_; ++l) {
      const auto& P = layout_.layers[l];
      packed_[l].pack_transposed(src + P.w_hh, GH, H_, bias_ ? src + P.b_hh : nullptr);
      packed_ih_[l].pack_transposed(src + P.w_ih, GH, P.in, bias_ ? src + P.b_ih : nullptr);
      if (P.w_ch >= 0) packed_ch_[l].pack_transposed(src + P.w_ch, H_, H_, nullptr);
    }
  }
  Args a;
  a.params = packed_from_.data();
  a.x = x;
  a.h0 = h0;
  a.c0 = c0;
  a.y = y;
  a.hT = hT;
  a.cT = cT;
  dispatch_cell(cell_, [&](auto c) {
    using Cell = decltype(c);
    ThreadPool::instance().run(num_parts(), threads_for_call(),
                               [&](int q) { forward_part<Cell>(parts_[q], a, train); });
  });
  have_forward_ = train;
}

template <class S>
template <class Cell>
void Recurrent<S>::forward_part(Part& p, const Args& a, bool train) {
  const Index n = p.n, T = T_, H = H_, D = D_, GH = G_ * H_, Tn = T * n, P = num_parts();
  constexpr Index kE = Cell::kExtra;
  auto seq = [&](Index j) { return order_[p.r0 + j * P]; };  // local row -> original sequence
  auto len = [&](Index j) { return len_[p.r0 + j * P]; };

  grow(p.x_tm, Tn * D);
  grow(p.hs, L_ * (T + 1) * n * H);
  if (Cell::kHasCell) grow(p.cs, L_ * (T + 1) * n * H);
  // The input projection is hoisted out of the step loop but computed chunk by chunk, tc steps
  // at a time (about 256 KiB of gates), so the cell reads it back from cache, not from memory;
  // inference keeps only one chunk.
  const Index tc = std::clamp<Index>((Index(64) << 10) / std::max<Index>(1, n * GH), 1, T);
  grow(p.gates, train ? L_ * Tn * GH : tc * n * GH);
  grow(p.extra, std::max<Index>(1, (train ? L_ * Tn : n) * kE * H));
  grow(p.gh, n * GH);
  if (Cell::kCellGemm != kNoCellGemm) grow(p.gc, n * H);

  // x [B, T, D] -> x_tm [T, n, D], zero past each length (keeps padding out of dW_ih).
  for (Index j = 0; j < n; ++j) {
    const Index b = seq(j), lj = len(j);
    for (Index t = 0; t < T; ++t) {
      S* dst = p.x_tm.data() + (t * n + j) * D;
      if (t < lj)
        std::memcpy(dst, a.x + (b * T + t) * D, sizeof(S) * D);
      else
        std::fill(dst, dst + D, S(0));
    }
  }

  for (Index l = 0; l < L_; ++l) {
    const ParamLayout::Layer& Pl = layout_.layers[l];
    const Index Din = Pl.in;
    S* hs = p.hs.data() + l * (T + 1) * n * H;
    S* cs = Cell::kHasCell ? p.cs.data() + l * (T + 1) * n * H : nullptr;
    S* gates = p.gates.data() + (train ? l * Tn * GH : 0);  // this layer's, kept for backward
    S* extra = p.extra.data() + (train ? l * Tn * kE * H : 0);
    const S* in = l == 0 ? p.x_tm.data() : p.hs.data() + ((l - 1) * (T + 1) + 1) * n * H;

    load_state(hs, a.h0, p, l);  // initial states
    if (Cell::kHasCell) load_state(cs, a.c0, p, l);

    const PackedMatrix<S>& Whh = packed_[l];
    const PackedMatrix<S>& Wch = packed_ch_[l];
    const S* cw = Pl.cw >= 0 ? a.params + Pl.cw : nullptr;
    for (Index t = 0; t < T; ++t) {
      const Index na = p.active[t];
      S* hp = hs + t * n * H;
      S* hn = hp + n * H;
      S* cp = Cell::kHasCell ? cs + t * n * H : nullptr;
      S* cn = Cell::kHasCell ? cp + n * H : nullptr;
      if (t % tc == 0) {
        // Gx [m*n, GH] = In [m*n, Din] · W_ihᵀ + b_ih for the m steps of the chunk at once,
        // with our packed kernel (with Din as small as it usually is, Eigen's GEMM spends more
        // time packing than multiplying).
        const Index m = std::min(tc, T - t);
        packed_ih_[l].multiply(in + t * n * Din, Din, m * n, gates + (train ? t : 0) * n * GH, GH);
      }
      S* gt = gates + (train ? t : t % tc) * n * GH;
      if (na > 0) {
        // Gh [na, GH] = h_{t-1} [na, H] · W_hhᵀ + b_hh: all gates of the running rows at once.
        Whh.multiply(hp, H, na, p.gh.data(), GH);
        // gc [na, H] = c_{t-1} W_chᵀ for cells whose new state reads the old cell state
        if constexpr (Cell::kCellGemm == kCellGemmFromPrev) Wch.multiply(cp, H, na, p.gc.data(), H);
        Cell::forward(na, H, gt, p.gh.data(), hp, cp, hn, cn,
                      extra + (train ? t * n * kE * H : 0), cw, p.gc.data());
        if constexpr (Cell::kCellGemm == kCellGemmFromNew) {  // h_t reads the new cell state
          Wch.multiply(cn, H, na, p.gc.data(), H);
          Cell::finish(na, H, gt, p.gc.data(), hn);
        }
      }
      if (na < n) {  // finished sequences carry their state unchanged
        std::memcpy(hn + na * H, hp + na * H, sizeof(S) * (n - na) * H);
        if (Cell::kHasCell) std::memcpy(cn + na * H, cp + na * H, sizeof(S) * (n - na) * H);
      }
    }
    store_state(a.hT, hs + T * n * H, p, l);  // final states of this layer
    if (Cell::kHasCell) store_state(a.cT, cs + T * n * H, p, l);
  }

  // Last layer's h_t -> y [B, T, H], zero past each length (unless the caller wants only the
  // final states).
  if (!a.y) return;
  const S* hs = p.hs.data() + (L_ - 1) * (T + 1) * n * H;
  for (Index j = 0; j < n; ++j) {
    const Index b = seq(j), lj = len(j);
    for (Index t = 0; t < T; ++t) {
      S* dst = a.y + (b * T + t) * H;
      if (t < lj)
        std::memcpy(dst, hs + ((t + 1) * n + j) * H, sizeof(S) * H);
      else
        std::fill(dst, dst + H, S(0));
    }
  }
}

template <class S>
void Recurrent<S>::backward(const S* params, const S* dy, const S* dhT, const S* dcT,
                            S* dparams, S* dx, S* dh0, S* dc0, S* dhs, S* dcs) {
  if (!have_forward_)
    throw std::logic_error("backward() needs a preceding forward() in training mode, and at "
                           "most one backward() per forward()");
  // Backward overwrites the saved activations with gradients (sequence.hpp, `gates`): a second
  // backward or a trace() would read gradients as activations. Only a new forward may follow
  // (also when this backward fails halfway).
  have_forward_ = false;
  const Index GH = G_ * H_;
  for (Index l = 0; l < L_; ++l) {  // W_hh [GH, H] (and W_ch) packed once for all steps
    const auto& P = layout_.layers[l];
    packed_[l].pack(params + P.w_hh, GH, H_);
    if (P.w_ch >= 0) packed_ch_[l].pack(params + P.w_ch, H_, H_);
  }
  packed_from_.clear();  // packed_ now holds W_hh for backward: the next forward packs again
  Args a;
  a.params = params;
  a.dy = dy;
  a.dhT = dhT;
  a.dcT = dcT;
  a.dparams = dparams;
  a.dx = dx;
  a.dh0 = dh0;
  a.dc0 = dc0;
  a.dhs = dhs;
  a.dcs = has_cell_state(cell_) ? dcs : nullptr;
  const Index seq_size = L_ * B_ * T_ * H_;
  if (a.dhs) std::fill(a.dhs, a.dhs + seq_size, S(0));
  if (a.dcs) std::fill(a.dcs, a.dcs + seq_size, S(0));
  dispatch_cell(cell_, [&](auto c) {
    using Cell = decltype(c);
    ThreadPool::instance().run(num_parts(), threads_for_call(),
                               [&](int q) { backward_part<Cell>(parts_[q], a); });
  });
  if (num_parts() > 1) {  // reduce the parts' weight gradients in a fixed order
    const Index n = layout_.size;
    for (const Part& p : parts_)
      for (Index i = 0; i < n; ++i) dparams[i] += p.dparams[i];
  }
}

template <class S>
template <class Cell>
void Recurrent<S>::backward_part(Part& p, const Args& a) {
  const Index n = p.n, T = T_, H = H_, D = D_, GH = G_ * H_, Tn = T * n, P = num_parts();
  constexpr Index kE = Cell::kExtra;
  auto seq = [&](Index j) { return order_[p.r0 + j * P]; };
  auto len = [&](Index j) { return len_[p.r0 + j * P]; };

  // dL/d(layer output) buffers, only where needed: the top layer's when dy is given, the lower
  // layers' (and dx's) when there are any.
  const Index wmax = std::max(D, H);
  if (a.dy || L_ > 1) grow(p.dy_a, Tn * wmax);
  if (L_ > 1 || a.dx) grow(p.dy_b, Tn * wmax);
  if (Cell::kSeparateGh) grow(p.dgh, Tn * GH);
  grow(p.dh, n * H);
  grow(p.dc, n * H);
  grow(p.dh_prev, n * H);
  if (a.dcs) grow(p.dc_total, n * H);
  S* grad = a.dparams;
  if (P > 1) {
    grow(p.dparams, layout_.size);
    std::fill(p.dparams.begin(), p.dparams.begin() + layout_.size, S(0));
    grad = p.dparams.data();
  }

  // dy [B, T, H] -> dY [T, n, H], zero past each length; null: no gradient on the outputs.
  S* dY = a.dy ? p.dy_a.data() : nullptr;  // dL/d(output of layer l)   [T, n, H]
  S* dIn = p.dy_b.data();                   // dL/d(input of layer l)    [T, n, Din]
  if (dY)
    for (Index j = 0; j < n; ++j) {
      const Index b = seq(j), lj = len(j);
      for (Index t = 0; t < T; ++t) {
        S* dst = dY + (t * n + j) * H;
        if (t < lj)
          std::memcpy(dst, a.dy + (b * T + t) * H, sizeof(S) * H);
        else
          std::fill(dst, dst + H, S(0));
      }
    }

  S* dh = p.dh.data();
  S* dc = p.dc.data();
  S* dhp = p.dh_prev.data();
  for (Index l = L_ - 1; l >= 0; --l) {
    const ParamLayout::Layer& Pl = layout_.layers[l];
    const Index Din = Pl.in;
    const S* hs = p.hs.data() + l * (T + 1) * n * H;
    const S* cs = Cell::kHasCell ? p.cs.data() + l * (T + 1) * n * H : nullptr;
    S* dgx = p.gates.data() + l * Tn * GH;  // activations, overwritten by dL/dgx [T, n, GH]
    S* dgh = Cell::kSeparateGh ? p.dgh.data() : dgx;
    const S* extra = p.extra.data() + l * Tn * kE * H;
    const S* in = l == 0 ? p.x_tm.data() : p.hs.data() + ((l - 1) * (T + 1) + 1) * n * H;

    load_state(dh, a.dhT, p, l);  // gradients on the final states
    if (Cell::kHasCell) load_state(dc, a.dcT, p, l);

    const PackedMatrix<S>& Whh = packed_[l];
    const PackedMatrix<S>& Wch = packed_ch_[l];
    const S* cw = Pl.cw >= 0 ? a.params + Pl.cw : nullptr;
    S* dcw = Pl.cw >= 0 ? grad + Pl.cw : nullptr;
    S* dct = (a.dcs && Cell::kHasCell) ? p.dc_total.data() : nullptr;
    for (Index t = T - 1; t >= 0; --t) {
      const Index na = p.active[t], row = t * n;
      if (na > 0) {
        if (dY) ArrMap<S>(dh, na * H) += ConstArrMap<S>(dY + row * H, na * H);  // + output's
        if (a.dhs) record(a.dhs, p, l, t, dh, na);
        const S* cn = Cell::kHasCell ? cs + (row + n) * H : nullptr;
        if constexpr (Cell::kCellGemm == kCellGemmFromNew) {
          // h_t = tanh(pre_u + c_t W_chᵀ): dû first, then dc_t += dû W_ch
          Cell::backward_new(na, H, dgx + row * GH, hs + (row + n) * H, dh);
          Wch.multiply_add(dgx + row * GH + Cell::kCellGemmBlock * H, GH, na, dc, H);
        }
        Cell::backward(na, H, dgx + row * GH, extra + row * kE * H, hs + row * H,
                       Cell::kHasCell ? cs + row * H : nullptr, hs + (row + n) * H, cn, dh,
                       Cell::kHasCell ? dc : nullptr, dgh + row * GH, dhp, cw, dcw, dct);
        if (a.dcs && Cell::kHasCell) record(a.dcs, p, l, t, dct, na);
        if constexpr (Cell::kCellGemm == kCellGemmFromPrev)  // c_{t-1} fed the new state: + dâ W_ch
          Wch.multiply_add(dgx + row * GH + Cell::kCellGemmBlock * H, GH, na, dc, H);
        // dh_{t-1} [na, H] = dgh_t [na, GH] · W_hh [GH, H] + direct part
        Whh.multiply(dgh + row * GH, GH, na, dh, H);
        ArrMap<S>(dh, na * H) += ConstArrMap<S>(dhp, na * H);
      }
      // Finished rows: no gradient into the gates; dh and dc pass through unchanged.
      std::fill(dgx + (row + na) * GH, dgx + (row + n) * GH, S(0));
      if (Cell::kSeparateGh) std::fill(dgh + (row + na) * GH, dgh + (row + n) * GH, S(0));
    }
    store_state(a.dh0, dh, p, l);
    if (Cell::kHasCell) store_state(a.dc0, dc, p, l);

    // Weight gradients: one GEMM each over all T*n rows.
    ConstMatMap<S> Dgx(dgx, Tn, GH), Dgh(dgh, Tn, GH);
    MatMap<S>(grad + Pl.w_ih, GH, Din).noalias() += Dgx.transpose() * ConstMatMap<S>(in, Tn, Din);
    MatMap<S>(grad + Pl.w_hh, GH, H).noalias() += Dgh.transpose() * ConstMatMap<S>(hs, Tn, H);
    if (bias_) {
      add_column_sums(dgx, Tn, GH, grad + Pl.b_ih);
      add_column_sums(dgh, Tn, GH, grad + Pl.b_hh);
    }
    if constexpr (Cell::kCellGemm != kNoCellGemm) {
      // dW_ch [H, H] += dgc [T*n, H]ᵀ · c, with c = c_{t-1} (slots 0..T-1) or c_t (1..T)
      const S* cin = cs + (Cell::kCellGemm == kCellGemmFromNew ? n * H : 0);
      using Strided = Eigen::Map<const RowMatrix<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
      Strided Dgc(dgx + Cell::kCellGemmBlock * H, Tn, H, Eigen::OuterStride<>(GH));
      MatMap<S>(grad + Pl.w_ch, H, H).noalias() += Dgc.transpose() * ConstMatMap<S>(cin, Tn, H);
    }
    if (l == 0 && !a.dx) break;
    // dL/d(input of layer l) [T*n, Din] = dgx · W_ih; the output gradient of layer l-1.
    MatMap<S>(dIn, Tn, Din).noalias() = Dgx * ConstMatMap<S>(a.params + Pl.w_ih, GH, Din);
    dY = dIn;  // the next buffer to write is the other one
    dIn = dIn == p.dy_b.data() ? p.dy_a.data() : p.dy_b.data();
  }
  if (a.dx) {  // dY now holds dL/dx [T, n, D]
    for (Index j = 0; j < n; ++j) {
      const Index b = seq(j);
      for (Index t = 0; t < T; ++t)
        std::memcpy(a.dx + (b * T + t) * D, dY + (t * n + j) * D, sizeof(S) * D);
    }
  }
}

template <class S>
void Recurrent<S>::load_state(S* rows, const S* src, const Part& p, Index l) const {
  const Index P = num_parts(), H = H_;
  for (Index j = 0; j < p.n; ++j) {
    if (src)
      std::memcpy(rows + j * H, src + (l * B_ + order_[p.r0 + j * P]) * H, sizeof(S) * H);
    else
      std::fill(rows + j * H, rows + (j + 1) * H, S(0));
  }
}

template <class S>
void Recurrent<S>::store_state(S* dst, const S* rows, const Part& p, Index l) const {
  if (!dst) return;
  const Index P = num_parts(), H = H_;
  for (Index j = 0; j < p.n; ++j)
    std::memcpy(dst + (l * B_ + order_[p.r0 + j * P]) * H, rows + j * H, sizeof(S) * H);
}

template <class S>
void Recurrent<S>::record(S* out, const Part& p, Index l, Index t, const S* rows, Index na) const {
  const Index P = num_parts();
  for (Index j = 0; j < na; ++j) {
    const Index b = order_[p.r0 + j * P];
    std::memcpy(out + ((l * B_ + b) * T_ + t) * H_, rows + j * H_, sizeof(S) * H_);
  }
}

template <class S>
void Recurrent<S>::trace(S* gates, S* h, S* c) const {
  if (!have_forward_)
    throw std::logic_error("trace() needs a training forward() and no backward() since");
  const Index T = T_, H = H_, GH = G_ * H_, P = num_parts();
  const bool cell = has_cell_state(cell_);
  const int from = dispatch_cell(cell_, [](auto c) { return decltype(c)::kTraceFrom; });
  for (const Part& p : parts_) {
    const Index n = p.n;
    for (Index l = 0; l < L_; ++l)
      for (Index j = 0; j < n; ++j) {
        const Index b = order_[p.r0 + j * P], lj = len_[p.r0 + j * P];
        for (Index t = 0; t < T; ++t) {
          const Index at = (l * B_ + b) * T + t;
          const bool live = t < lj;
          const Index st = (l * (T + 1) + t + 1) * n + j;  // slot t+1 of layer l
          if (gates) {
            S* dst = gates + at * GH;
            const S* src = from == 0   ? p.gates.data() + ((l * T + t) * n + j) * GH
                           : from == 1 ? p.hs.data() + st * H
                                       : p.cs.data() + st * H;
            if (live)
              std::memcpy(dst, src, sizeof(S) * GH);
            else
              std::fill(dst, dst + GH, S(0));
          }
          if (h) {
            if (live)
              std::memcpy(h + at * H, p.hs.data() + st * H, sizeof(S) * H);
            else
              std::fill(h + at * H, h + (at + 1) * H, S(0));
          }
          if (c && cell) {
            if (live)
              std::memcpy(c + at * H, p.cs.data() + st * H, sizeof(S) * H);
            else
              std::fill(c + at * H, c + (at + 1) * H, S(0));
          }
        }
      }
  }
}

template class Recurrent<float>;
template class Recurrent<double>;

}  // namespace lstm_native
