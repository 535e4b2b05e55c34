// The head's losses, one row at a time: the data term of one row of outputs (one sequence, or
// one valid step of one sequence with return_sequences) and its gradient with respect to the
// row's outputs p [O]. Model::loss_backward (model.cpp) weighs and sums the rows; the L2 term,
// the normalizer W and which rows count are its business, not this file's.
//
// For a row of weight w, with denom the batch's normalizer (W·O for the regression losses, W for
// softmax; W = Σ of the rows' weights), the row adds w·ℓ/denom to the loss and writes
// dz = w·(dℓ/dp)/denom, where
//   mse:             ℓ = Σ_k ½ e_k²,  e = p - y                      dℓ/dp_k = e_k
//   absolute_error:  ℓ = Σ_k |e_k|                                   dℓ/dp_k = sign(e_k), 0 at 0
//   huber (δ):       ℓ = Σ_k { ½ e_k²            if |e_k| <= δ       dℓ/dp_k = e_k
//                          { δ (|e_k| - ½ δ)     otherwise                     δ sign(e_k)
//   quantile:        y [O/Q], levels q_0 < ... < q_{Q-1}; output column k·Q + j is level q_j of
//                    target k, u = y_k - p_{kQ+j}
//                    ℓ = Σ_k Σ_j ρ_{q_j}(u),  ρ_q(u) = u (q - 1[u < 0])
//                                                                dℓ/dp_{kQ+j} = 1[u < 0] - q_j
//                    (so W·O = W·n_targets·Q: the mean pinball loss over targets and levels)
//   softmax:         y = one class index c; ℓ = log Σ_k exp(p_k) - p_c
//                                                   dℓ/dp_k = softmax(p)_k - 1[k = c]
// The kinks (e = 0 for absolute_error, u = 0 for quantile) take the subgradients written above.
// Every sum runs in double whatever the scalar type.
#pragma once

#include "config.hpp"
#include "types.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

class HeadLoss {
 public:
  explicit HeadLoss(const ModelConfig& c)
      : kind_(c.loss),
        O_(c.output_size),
        Q_(c.num_quantiles()),
        delta_(c.huber_delta),
        q_(c.quantiles.data()) {}

  // The normalizer of a batch whose rows' weights sum to wsum.
  double denominator(double wsum) const {
    return kind_ == LossKind::kSoftmax ? wsum : wsum * double(O_);
  }

  // Row z [O] against its targets y (ModelConfig::target_width() values): adds w·ℓ/denom to
  // loss and writes dz [O]. ArgumentError for a class index that is not one.
  template <class S>
  void row(const S* z, const S* y, double w, double denom, double& loss, S* dz) const {
    switch (kind_) {
      case LossKind::kMse:
        for (Index k = 0; k < O_; ++k) {
          const double e = double(z[k]) - double(y[k]);
          loss += w * 0.5 * e * e / denom;
          dz[k] = S(w * e / denom);
        }
        return;
      case LossKind::kAbsolute:
        for (Index k = 0; k < O_; ++k) {
          const double e = double(z[k]) - double(y[k]);
          loss += w * std::abs(e) / denom;
          dz[k] = S(w * sign(e) / denom);
        }
        return;
      case LossKind::kHuber:
        for (Index k = 0; k < O_; ++k) {
          const double e = double(z[k]) - double(y[k]), a = std::abs(e);
          if (a <= delta_) {
            loss += w * 0.5 * e * e / denom;
            dz[k] = S(w * e / denom);
          } else {
            loss += w * delta_ * (a - 0.5 * delta_) / denom;
            dz[k] = S(w * delta_ * sign(e) / denom);
          }
        }
        return;
      case LossKind::kQuantile:
        for (Index k = 0; k < O_ / Q_; ++k)
          for (Index j = 0; j < Q_; ++j) {
            const Index col = k * Q_ + j;
            const double u = double(y[k]) - double(z[col]), below = u < 0 ? 1.0 : 0.0;
            loss += w * u * (q_[j] - below) / denom;
            dz[col] = S(w * (below - q_[j]) / denom);
          }
        return;
      case LossKind::kSoftmax:
        softmax_row(z, y, w, denom, loss, dz);
        return;
    }
  }

 private:
  static double sign(double e) { return e > 0 ? 1.0 : (e < 0 ? -1.0 : 0.0); }

  // Softmax cross-entropy, stabilized by the row max.
  template <class S>
  void softmax_row(const S* z, const S* y, double w, double denom, double& loss, S* dz) const {
    const double yv = double(y[0]);
    require(yv >= 0 && yv < double(O_) && yv == std::floor(yv),  // (NaN fails too)
            "class index " + std::to_string(yv) + " is not an integer in [0, " +
                std::to_string(O_) + ")");
    const Index c = static_cast<Index>(yv);
    double zmax = z[0];
    for (Index k = 1; k < O_; ++k) zmax = std::max(zmax, double(z[k]));
    double se = 0;
    for (Index k = 0; k < O_; ++k) se += std::exp(double(z[k]) - zmax);
    const double lse = zmax + std::log(se);
    loss += w * (lse - double(z[c])) / denom;
    for (Index k = 0; k < O_; ++k)
      dz[k] = S(w * (std::exp(double(z[k]) - lse) - (k == c ? 1.0 : 0.0)) / denom);
  }

  LossKind kind_;
  Index O_, Q_;
  double delta_;
  const double* q_;  // [Q]: the configuration's levels (it outlives this object)
};

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
