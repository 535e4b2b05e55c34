// Model<S>: layers, head, loss, optimizers and the epoch loop. See model.hpp for shapes, the
// buffers and the loss; stack.cpp for the recurrent units themselves.
#include "lstm_native/model.hpp"

#include "lstm_native/loss.hpp"
#include "lstm_native/threads.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <utility>

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

namespace {
template <class V>
void grow(V& v, Count n) {
  if (static_cast<Index>(v.size()) < n.v) v.resize(static_cast<std::size_t>(n.v));
}

// dst[b, t, :W] (+)= src[b, len_b-1-t, :W] for t < len_b, else 0 (or untouched when adding).
// Rows are `stride` apart; the mapping is its own inverse on the valid steps.
template <class S>
void reverse_time(const S* src, Index src_stride, S* dst, Index dst_stride, Index W, Index B,
                  Index T, const std::int64_t* len, bool add) {
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t < T; ++t) {
      S* d = dst + (b * T + t) * dst_stride;
      if (t < len[b]) {
        const S* s = src + (b * T + (len[b] - 1 - t)) * src_stride;
        if (add)
          for (Index j = 0; j < W; ++j) d[j] += s[j];
        else
          std::memcpy(d, s, sizeof(S) * W);
      } else if (!add) {
        std::fill(d, d + W, S(0));
      }
    }
}

// dst[b, t, :W] = src[b, t, :W] with different row strides (a column block of a concatenation).
template <class S>
void copy_block(const S* src, Index src_stride, S* dst, Index dst_stride, Index W, Index rows) {
  for (Index r = 0; r < rows; ++r)
    std::memcpy(dst + r * dst_stride, src + r * src_stride, sizeof(S) * W);
}

// Uniform in [0, 1) from 53 random bits: the same stream on every platform.
inline double uniform01(std::mt19937_64& g) {
  return double(g() >> 11) * 0x1.0p-53;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

namespace {
// The configuration, after refusing an invalid one or one too large to build.
ModelConfig checked(const ModelConfig& c, std::size_t scalar) {
  c.validate();
  c.check_fits("Model", scalar);
  return c;
}
}  // namespace

template <class S>
Model<S>::Model(const ModelConfig& cfg)
    : cfg_(checked(cfg, sizeof(S))),
      layout_(cfg_),
      dirs_(cfg_.dirs()),
      feat_(cfg_.features()),
      stack_(cfg_.cell, cfg_.input_size, cfg_.hidden_size, cfg_.num_layers, cfg_.bias, dirs_,
             cfg_.precision) {
  is_weight_.assign(static_cast<std::size_t>(layout_.size), 0);
  for (const auto& t : layout_.tensors)
    if (t.name.rfind("weight", 0) == 0 || t.name == "head.weight")
      std::fill(is_weight_.begin() + t.offset, is_weight_.begin() + t.offset + t.size(), 1);
  for (Index l = 0; l < cfg_.num_layers; ++l)
    for (Index d = 0; d < dirs_; ++d) runs_.push_back(stack_.make_run(l, l + 1, d));
  const auto L = static_cast<std::size_t>(cfg_.num_layers);
  drop_in_.resize(L);
  drop_mask_.resize(L);
  rev_in_.resize(L);
  yf_.resize(L);
  yr_.resize(L);
  cat_.resize(L);
  hT_.resize(runs_.size());
  layer_in_.assign(L, nullptr);
  layer_out_.assign(L, nullptr);
  dropped_.assign(L, false);
}

template <class S>
Index Model<S>::allocated_elements() const {
  Index n = 0;
  for (const auto* v : {&drop_in_, &drop_mask_, &rev_in_, &yf_, &yr_, &cat_, &hT_})
    for (const Buffer<S>& b : *v) n += static_cast<Index>(b.size());
  for (const Buffer<S>* b :
       {&feat_buf_, &logits_, &dlogits_, &dfeat_,   &dout_,       &dyf_,          &dyr_,
        &dxf_,      &dxr_,    &dhT_,     &grad_,    &xb_,         &yb_,           &swb_,
        &step_h_,   &step_c_, &step_gx_, &step_gh_, &step_extra_, &step_scratch_, &step_x_})
    n += static_cast<Index>(b->size());
  for (const Run<S>& r : runs_) n += r.allocated_elements();
  return n;
}

template <class S>
void Model<S>::forward(const S* params, const S* xb, Index B, Index T, Call call,
                       std::mt19937_64* rng, S* cT) {
  const Index H = cfg_.hidden_size, L = cfg_.num_layers, O = cfg_.output_size;
  const bool keep = call == Call::kLossGrad || call == Call::kTrainEpoch;
  B_ = B;
  T_ = T;
  const std::int64_t* len = len_.data();
  stack_.pack_forward(params);  // every unit's weights, once (a no-op for the same params)
  const S* in = xb;
  for (Index l = 0; l < L; ++l) {
    const LayerSizes z = layer_sizes(cfg_, l, B, T, call);
    const Index Din = l == 0 ? cfg_.input_size : feat_, n_in = B * T * Din;
    dropped_[l] = z.drop_in.v > 0;
    if (dropped_[l]) {  // inverted dropout: keep with prob 1-p, scale by 1/(1-p)
      grow(drop_in_[l], z.drop_in);
      grow(drop_mask_[l], z.drop_mask);
      const S keep_scale = S(1) / S(1 - cfg_.dropout);
      for (Index i = 0; i < n_in; ++i) {
        drop_mask_[l][i] = uniform01(*rng) < cfg_.dropout ? S(0) : keep_scale;
        drop_in_[l][i] = in[i] * drop_mask_[l][i];
      }
      in = drop_in_[l].data();
    }
    layer_in_[l] = in;
    grow(yf_[l], z.yf);
    grow(yr_[l], z.yr);
    grow(rev_in_[l], z.rev_in);
    for (Index d = 0; d < dirs_; ++d) {
      const Index u = l * dirs_ + d;
      grow(hT_[u], z.hT);
      const S* uin = in;
      S* y = z.yf.v > 0 ? yf_[l].data() : nullptr;
      if (d == 1) {  // the reverse direction reads each sequence backwards within its length
        reverse_time(in, Din, rev_in_[l].data(), Din, Din, B, T, len, false);
        uin = rev_in_[l].data();
        y = yr_[l].data();
      }
      S* cTu = cT ? cT + l * B * H : nullptr;  // (one direction only: see the declaration)
      stack_.forward(runs_[u], uin, B, T, len, nullptr, nullptr, y, hT_[u].data(), cTu, keep);
    }
    if (dirs_ == 2) {  // [B, T, 2H] = [forward output, reverse output back in forward time]
      grow(cat_[l], z.cat);
      copy_block(yf_[l].data(), H, cat_[l].data(), feat_, H, B * T);
      reverse_time(yr_[l].data(), H, cat_[l].data() + H, feat_, H, B, T, len, false);
      layer_out_[l] = cat_[l].data();
    } else {
      layer_out_[l] = yf_[l].data();
    }
    in = layer_out_[l];
  }

  // Head: logits [rows, O] = feat [rows, F] · Wᵀ + b.
  const ModelSizes z = model_sizes(cfg_, layout_.size, B, T, call);
  const S* feat;
  Index rows;
  if (cfg_.return_sequences) {
    feat = layer_out_[L - 1];
    rows = B * T;
  } else {  // each sequence's last state: forward unit's hT, reverse unit's final state
    grow(feat_buf_, z.feat);
    for (Index d = 0; d < dirs_; ++d)
      copy_block(hT_[(L - 1) * dirs_ + d].data(), H, feat_buf_.data() + d * H, feat_, H, B);
    feat = feat_buf_.data();
    rows = B;
  }
  grow(logits_, z.logits);
  head(params, feat, rows, logits_.data());
}

template <class S>
void Model<S>::head(const S* params, const S* feat, Index rows, S* logits) const {
  const Index O = cfg_.output_size;
  MatMap<S> Z(logits, rows, O);
  if (layout_.head_b >= 0)
    Z.rowwise() = ConstVecMap<S>(params + layout_.head_b, O);
  else
    Z.setZero();
  Z.noalias() += ConstMatMap<S>(feat, rows, feat_) *
                 ConstMatMap<S>(params + layout_.head_w, O, feat_).transpose();
}

template <class S>
double Model<S>::loss_backward(const S* params, const S* Y, const S* sw, double alpha, S* grad,
                               Call call) {
  const Index B = B_, T = T_, H = cfg_.hidden_size, L = cfg_.num_layers, O = cfg_.output_size;
  const bool seq = cfg_.return_sequences;
  const Index rows = seq ? B * T : B, steps = seq ? T : 1, size = layout_.size;
  const Index yw = cfg_.target_width();
  const std::int64_t* len = len_.data();
  const ModelSizes z = model_sizes(cfg_, size, B, T, call);
  grow(dlogits_, z.dlogits);
  std::fill(dlogits_.begin(), dlogits_.begin() + rows * O, S(0));

  double wsum = 0;
  for (Index b = 0; b < B; ++b) wsum += (sw ? double(sw[b]) : 1.0) * (seq ? double(len[b]) : 1.0);
  require(wsum > 0, "the sample weights of a batch sum to zero");
  const HeadLoss head_loss(cfg_);
  const double denom = head_loss.denominator(wsum);

  double loss = 0;
  for (Index b = 0; b < B; ++b) {
    const double w = sw ? double(sw[b]) : 1.0;
    for (Index t = 0; t < (seq ? len[b] : 1); ++t) {
      const Index r = b * steps + t;
      head_loss.row(logits_.data() + r * O, Y + r * yw, w, denom, loss, dlogits_.data() + r * O);
    }
  }
  if (alpha > 0) {  // L2 on weight matrices over the batch's total sample weight, as sklearn's MLP
    double nw = 0;
    for (Index b = 0; b < B; ++b) nw += sw ? double(sw[b]) : 1.0;
    double sq = 0;
    for (Index i = 0; i < size; ++i)
      if (is_weight_[i]) sq += double(params[i]) * double(params[i]);
    loss += 0.5 * alpha * sq / nw;
    if (grad)
      for (Index i = 0; i < size; ++i)
        if (is_weight_[i]) grad[i] += S(alpha / nw) * params[i];
  }
  if (!grad) return loss;

  // Head: dW += dZᵀ feat, db += Σ dZ, dfeat = dZ W.
  const S* feat = seq ? layer_out_[L - 1] : feat_buf_.data();
  const S* head_w = params + layout_.head_w;
  ConstMatMap<S> dZ(dlogits_.data(), rows, O);
  MatMap<S>(grad + layout_.head_w, O, feat_).noalias() +=
      dZ.transpose() * ConstMatMap<S>(feat, rows, feat_);
  if (layout_.head_b >= 0) add_column_sums(dlogits_.data(), rows, O, grad + layout_.head_b);
  grow(dfeat_, z.dfeat);
  MatMap<S>(dfeat_.data(), rows, feat_).noalias() = dZ * ConstMatMap<S>(head_w, O, feat_);

  // Layers, top down. dout: dL/d(layer output) [B, T, dirs*H] (none for the top layer of a
  // sequence-to-one model, whose gradient enters through the final states instead).
  grow(dout_, z.dout);
  grow(dxf_, z.dxf);
  grow(dxr_, z.dxr);
  grow(dyf_, z.dyf);
  grow(dyr_, z.dyr);
  grow(dhT_, z.dhT);
  if (seq) std::memcpy(dout_.data(), dfeat_.data(), sizeof(S) * B * T * feat_);
  for (Index l = L - 1; l >= 0; --l) {
    const Index Din = l == 0 ? cfg_.input_size : feat_;
    const RunNeeds needs = unit_needs(cfg_, l, call);
    if (needs.dx) std::fill(dxf_.begin(), dxf_.begin() + B * T * Din, S(0));
    for (Index d = 0; d < dirs_; ++d) {
      const Index u = l * dirs_ + d;
      const S* dy = nullptr;
      const S* dhT = nullptr;
      if (!needs.dy) {  // the top layer of a sequence-to-one model: dL/dh_T from the head
        copy_block(dfeat_.data() + d * H, feat_, dhT_.data(), H, H, B);
        dhT = dhT_.data();
      } else if (dirs_ == 1) {
        dy = dout_.data();
      } else if (d == 0) {
        copy_block(dout_.data(), feat_, dyf_.data(), H, H, B * T);
        dy = dyf_.data();
      } else {
        reverse_time(dout_.data() + H, feat_, dyr_.data(), H, H, B, T, len, false);
        dy = dyr_.data();
      }
      S* dx = needs.dx ? (d == 0 ? dxf_.data() : dxr_.data()) : nullptr;
      stack_.backward(runs_[u], params, dy, dhT, nullptr, grad, dx, nullptr, nullptr);
      if (needs.dx && d == 1)
        reverse_time(dxr_.data(), Din, dxf_.data(), Din, Din, B, T, len, true);
    }
    if (!needs.dx) break;
    if (dropped_[l]) {
      const S* mask = drop_mask_[l].data();
      for (Index i = 0; i < B * T * Din; ++i) dxf_[i] *= mask[i];
    }
    std::swap(dout_, dxf_);  // dL/d(output of layer l-1)
  }
  return loss;
}

template <class S>
void Model<S>::optimizer_step(S* params, const S* grad, S* m, S* v, std::int64_t* step,
                              const OptimConfig& oc) {
  const Index n = layout_.size;
  const S lr = S(oc.lr);
  ++*step;
  switch (oc.solver) {
    case Solver::kSgd: {  // sklearn's SGD: v = μv - lr g; nesterov: Δ = μv - lr g, else Δ = v
      const S mu = S(oc.momentum);
      for (Index i = 0; i < n; ++i) {
        m[i] = mu * m[i] - lr * grad[i];
        params[i] += oc.nesterov ? mu * m[i] - lr * grad[i] : m[i];
      }
      break;
    }
    case Solver::kAdamW:  // decoupled weight decay on weight matrices, then Adam
      for (Index i = 0; i < n; ++i)
        if (is_weight_[i]) params[i] -= S(oc.lr * oc.alpha) * params[i];
      [[fallthrough]];
    case Solver::kAdam: {  // Kingma & Ba's Algorithm 1, as PyTorch: θ -= lr m̂ / (√v̂ + ε)
      const double t = double(*step);
      const S b1 = S(oc.beta1), b2 = S(oc.beta2), eps = S(oc.eps);
      const S step_size = S(oc.lr / (1 - std::pow(oc.beta1, t)));          // m̂ = m / (1 - β1ᵗ)
      const S inv_sqrt_bc2 = S(1 / std::sqrt(1 - std::pow(oc.beta2, t)));  // √v̂ = √v / √(1 - β2ᵗ)
      for (Index i = 0; i < n; ++i) {
        m[i] = b1 * m[i] + (1 - b1) * grad[i];
        v[i] = b2 * v[i] + (1 - b2) * grad[i] * grad[i];
        params[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
      }
      break;
    }
    case Solver::kRmsprop: {  // v = ρv + (1-ρ)g², ρ = 0.99 (PyTorch's default)
      const S rho = S(0.99), eps = S(oc.eps);
      for (Index i = 0; i < n; ++i) {
        v[i] = rho * v[i] + (1 - rho) * grad[i] * grad[i];
        params[i] -= lr * grad[i] / (std::sqrt(v[i]) + eps);
      }
      break;
    }
  }
}

template <class S>
double Model<S>::train_epoch(S* params, S* m, S* v, std::int64_t* step, const S* X, Index N,
                             Index T, const std::int64_t* lengths, const S* Y, const S* sw,
                             const OptimConfig& oc, const BatchHook& between_batches) {
  require(N >= 1 && T >= 1, "training needs at least one sequence of at least one step");
  oc.validate();
  const Index D = cfg_.input_size, size = layout_.size;
  const bool seq = cfg_.return_sequences;
  const Index yw = cfg_.target_width();  // targets per step
  if (lengths)
    for (Index i = 0; i < N; ++i)
      require(lengths[i] >= 1 && lengths[i] <= T, "lengths must lie in [1, T]");

  // Seeded Fisher-Yates: the same order on every platform for the same seed.
  std::vector<Index> order(static_cast<std::size_t>(N));
  std::iota(order.begin(), order.end(), Index(0));
  std::mt19937_64 rng(oc.seed);
  if (oc.shuffle)
    for (Index i = N - 1; i > 0; --i) std::swap(order[i], order[rng() % std::uint64_t(i + 1)]);

  const double alpha = oc.solver == Solver::kAdamW ? 0.0 : oc.alpha;
  double total = 0;
  Index counted = 0;  // samples in minibatches that had weight
  for (Index start = 0; start < N; start += oc.batch_size) {
    const Index B = std::min(oc.batch_size, N - start);
    if (sw) {
      // A minibatch whose sample weights are all zero (valid weights can shuffle that way)
      // contributes nothing: no forward, no optimizer step, not in the epoch's mean loss.
      double wsum = 0;
      for (Index k = 0; k < B; ++k) wsum += double(sw[order[start + k]]);
      if (!(wsum > 0)) {
        if (between_batches) between_batches(start + B, N);
        continue;
      }
    }
    // Gather the minibatch, cropped to its longest sequence.
    Index Tb = 1;
    for (Index k = 0; k < B; ++k) Tb = std::max<Index>(Tb, lengths ? lengths[order[start + k]] : T);
    const ModelSizes z = model_sizes(cfg_, size, B, Tb, Call::kTrainEpoch);
    grow(grad_, z.grad);
    grow(xb_, z.xb);
    grow(yb_, z.yb);
    if (sw) grow(swb_, z.swb);
    len_.resize(static_cast<std::size_t>(B));
    for (Index k = 0; k < B; ++k) {
      const Index i = order[start + k];
      std::memcpy(xb_.data() + k * Tb * D, X + i * T * D, sizeof(S) * Tb * D);
      if (seq)
        std::memcpy(yb_.data() + k * Tb * yw, Y + i * T * yw, sizeof(S) * Tb * yw);
      else
        std::memcpy(yb_.data() + k * yw, Y + i * yw, sizeof(S) * yw);
      len_[k] = lengths ? lengths[i] : T;
      if (sw) swb_[k] = sw[i];
    }
    forward(params, xb_.data(), B, Tb, Call::kTrainEpoch, &rng);
    std::fill(grad_.begin(), grad_.begin() + size, S(0));
    const double loss = loss_backward(params, yb_.data(), sw ? swb_.data() : nullptr, alpha,
                                      grad_.data(), Call::kTrainEpoch);
    if (oc.max_grad_norm > 0) {  // clip by global norm
      double sq = 0;
      for (Index i = 0; i < size; ++i) sq += double(grad_[i]) * double(grad_[i]);
      const double norm = std::sqrt(sq);
      if (norm > oc.max_grad_norm) {
        const S scale = S(oc.max_grad_norm / norm);
        for (Index i = 0; i < size; ++i) grad_[i] *= scale;
      }
    }
    optimizer_step(params, grad_.data(), m, v, step, oc);
    total += loss * double(B);
    counted += B;
    if (between_batches) between_batches(start + B, N);
  }
  require(counted > 0, "the sample weights are zero for every sequence");
  return total / double(counted);
}

template <class S>
void Model<S>::predict(const S* params, const S* X, Index N, Index T, const std::int64_t* lengths,
                       S* out) {
  const Index D = cfg_.input_size, O = cfg_.output_size;
  const bool seq = cfg_.return_sequences;
  for (Index start = 0; start < N; start += kPredictChunk) {
    const Index B = std::min(kPredictChunk, N - start);
    len_.resize(static_cast<std::size_t>(B));
    for (Index k = 0; k < B; ++k) {
      len_[k] = lengths ? lengths[start + k] : T;
      require(len_[k] >= 1 && len_[k] <= T, "lengths must lie in [1, T]");
    }
    forward(params, X + start * T * D, B, T, Call::kPredict, nullptr);
    if (!seq) {
      std::memcpy(out + start * O, logits_.data(), sizeof(S) * B * O);
    } else {
      for (Index k = 0; k < B; ++k)
        for (Index t = 0; t < T; ++t) {
          S* dst = out + ((start + k) * T + t) * O;
          if (t < len_[k])
            std::memcpy(dst, logits_.data() + (k * T + t) * O, sizeof(S) * O);
          else
            std::fill(dst, dst + O, S(0));
        }
    }
  }
}

template <class S>
void Model<S>::rollout(const S* params, const S* X, Index N, Index T, const std::int64_t* lengths,
                       Index horizon, const S* future, const std::vector<Feedback>& feedback,
                       S* out) {
  require(!cfg_.return_sequences && !cfg_.bidirectional,
          "rollout needs a sequence-to-one, unidirectional model (return_sequences=False, "
          "bidirectional=False)");
  require(horizon >= 1, "horizon must be >= 1, got " + std::to_string(horizon));
  const Index D = cfg_.input_size, O = cfg_.output_size;
  for (Index start = 0; start < N; start += kPredictChunk) {
    const Index B = std::min(kPredictChunk, N - start);
    len_.resize(static_cast<std::size_t>(B));
    for (Index k = 0; k < B; ++k) {
      len_[k] = lengths ? lengths[start + k] : T;
      require(len_[k] >= 1 && len_[k] <= T, "lengths must lie in [1, T]");
    }
    rollout_chunk(params, X + start * T * D, B, T, horizon,
                  future ? future + start * (horizon - 1) * D : nullptr, feedback,
                  out + start * horizon * O);
  }
}

template <class S>
void Model<S>::rollout_chunk(const S* params, const S* X, Index B, Index T, Index horizon,
                             const S* future, const std::vector<Feedback>& feedback, S* out) {
  const Index D = cfg_.input_size, H = cfg_.hidden_size, L = cfg_.num_layers, O = cfg_.output_size,
              BH = B * H, LBH = L * BH;
  const ModelSizes z = model_sizes(cfg_, layout_.size, B, T, Call::kRollout);
  grow(step_h_, z.step_h);
  grow(step_c_, z.step_c);
  grow(step_gx_, z.step_gx);
  grow(step_gh_, z.step_gh);
  grow(step_extra_, z.step_extra);
  grow(step_scratch_, z.step_scratch);
  grow(step_x_, z.step_x);

  // The history: each layer's final state (h from hT_, c straight into step_c_), and y_0.
  forward(params, X, B, T, Call::kRollout, nullptr, z.step_c.v > 0 ? step_c_.data() : nullptr);
  for (Index l = 0; l < L; ++l) std::memcpy(step_h_.data() + l * BH, hT_[l].data(), sizeof(S) * BH);
  for (Index b = 0; b < B; ++b)  // out[:, 0] = logits_ [B, O]
    std::memcpy(out + b * horizon * O, logits_.data() + b * O, sizeof(S) * O);
  if (horizon == 1) return;

  // The steps: one timestep of every layer from the carried state and the head, packed once
  // for all steps (as Stream::step: no allocation per step).
  head_packed_.pack_transposed(params + layout_.head_w, O, H,
                               layout_.head_b >= 0 ? params + layout_.head_b : nullptr);
  const int threads = threads_ > 0 ? threads_ : default_num_threads();
  StepIO<S> io;
  io.n = B;
  io.H = H;
  io.gates = step_gx_.data();
  io.gh = step_gh_.data();
  io.extra = step_extra_.data();
  io.scratch = step_scratch_.data();
  Index cur = 0;
  dispatch_cell(cfg_.cell, [&](auto c) {  // the cell type once per rollout
    using Cell = decltype(c);
    for (Index k = 1; k < horizon; ++k) {
      S* x = step_x_.data();  // x_k [B, D]: the known covariates, then the fed-back outputs
      for (Index b = 0; b < B; ++b) {
        S* xb = x + b * D;
        if (future)
          std::memcpy(xb, future + (b * (horizon - 1) + (k - 1)) * D, sizeof(S) * D);
        else
          std::fill(xb, xb + D, S(0));
        for (const Feedback& f : feedback) xb[f.input] = out[(b * horizon + k - 1) * O + f.output];
      }
      const S* h_old = step_h_.data() + cur * LBH;
      S* h_new = step_h_.data() + (1 - cur) * LBH;
      io.x = x;
      for (Index l = 0; l < L; ++l) {
        io.h_prev = h_old + l * BH;
        io.h = h_new + l * BH;
        io.c = Cell::kHasCell ? step_c_.data() + l * BH : nullptr;  // elementwise: in place
        io.c_prev = io.c;
        stack_.template step<Cell>(l, io, threads);
        io.x = io.h;  // the next layer's input
      }
      cur = 1 - cur;
      head_packed_.multiply(io.x, H, B, out + k * O, horizon * O);  // out[:, k] [B, O]
    }
  });
}

template <class S>
double Model<S>::loss(const S* params, const S* X, Index N, Index T, const std::int64_t* lengths,
                      const S* Y, const S* sw, double alpha, S* grad) {
  len_.resize(static_cast<std::size_t>(N));
  for (Index k = 0; k < N; ++k) {
    len_[k] = lengths ? lengths[k] : T;
    require(len_[k] >= 1 && len_[k] <= T, "lengths must lie in [1, T]");
  }
  const Call call = grad ? Call::kLossGrad : Call::kLoss;
  forward(params, X, N, T, call, nullptr);
  if (grad) std::fill(grad, grad + layout_.size, S(0));
  return loss_backward(params, Y, sw, alpha, grad, call);
}

template class Model<float>;
template class Model<double>;

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
