// ModelConfig and OptimConfig: what a network is and how one epoch trains it, with everything
// that follows from a configuration alone (validation, the parameter count and layout, the
// refusal of networks too large for this build). The Python layer asks these (through the
// bindings) instead of keeping formulas of its own. Common to all kernel sets (isa.hpp): the
// functions are defined in config.cpp, compiled once.
#pragma once

#include "cell_facts.hpp"
#include "common.hpp"
#include "layout.hpp"

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace lstm_native {

// The head's losses (model.hpp has their equations): squared error, softmax cross-entropy,
// and for regression heads absolute error, Huber and the pinball loss of quantile regression.
enum class LossKind { kMse, kSoftmax, kAbsolute, kHuber, kQuantile };
enum class Solver { kSgd, kAdam, kAdamW, kRmsprop };

inline const char* loss_name(LossKind k) {
  switch (k) {
    case LossKind::kMse:
      return "mse";
    case LossKind::kSoftmax:
      return "softmax";
    case LossKind::kAbsolute:
      return "absolute_error";
    case LossKind::kHuber:
      return "huber";
    case LossKind::kQuantile:
      return "quantile";
  }
  return "?";
}
inline LossKind parse_loss(const std::string& s) {
  for (LossKind k : {LossKind::kMse, LossKind::kSoftmax, LossKind::kAbsolute, LossKind::kHuber,
                     LossKind::kQuantile})
    if (s == loss_name(k)) return k;
  throw ArgumentError(
      "loss must be one of 'mse', 'softmax', 'absolute_error', 'huber', 'quantile', got '" + s +
      "'");
}
// The precision of the recurrent layers' products (x W_ihᵀ, h W_hhᵀ, their gradients):
// float32, or bfloat16 operands with float32 sums (packed_bf16.hpp); float32 everywhere else
// (master weights, optimizer state, cell state, pointwise math, the head). bfloat16 needs
// float32 parameters.
enum class Precision { kFloat32, kBfloat16 };
inline const char* precision_name(Precision p) {
  return p == Precision::kBfloat16 ? "bfloat16" : "float32";
}
inline Precision parse_precision(const std::string& s) {
  if (s == "float32") return Precision::kFloat32;
  if (s == "bfloat16") return Precision::kBfloat16;
  throw ArgumentError("precision must be 'float32' or 'bfloat16', got '" + s + "'");
}
// bfloat16 products need float32 parameters (scalar of `bytes` bytes).
inline void check_precision(Precision p, std::size_t bytes) {
  require(p == Precision::kFloat32 || bytes == 4,
          "precision 'bfloat16' needs float32 parameters (dtype float32), not float64");
}

// At most this many quantile levels per target (percentiles 1..99 at the finest).
constexpr Index kMaxQuantiles = 99;
inline const char* solver_name(Solver s) {
  switch (s) {
    case Solver::kSgd:
      return "sgd";
    case Solver::kAdam:
      return "adam";
    case Solver::kAdamW:
      return "adamw";
    case Solver::kRmsprop:
      return "rmsprop";
  }
  return "?";
}
inline Solver parse_solver(const std::string& s) {
  for (Solver k : {Solver::kSgd, Solver::kAdam, Solver::kAdamW, Solver::kRmsprop})
    if (s == solver_name(k)) return k;
  throw ArgumentError("solver must be one of 'sgd', 'adam', 'adamw', 'rmsprop', got '" + s + "'");
}

// A request beyond this many bytes of parameters, packed copies and bookkeeping is refused
// (TooLarge -> MemoryError) before anything is built: absurd sizes would otherwise overflow
// index arithmetic or spend hours building a layout. The Python layer refuses, from the memory
// actually available, much earlier; this guards direct use of the core.
constexpr double kMaxBytes = 70368744177664.0;  // 2^46 = 64 TiB

struct ModelConfig {
  CellKind cell = CellKind::kLstm;
  Index input_size = 1, hidden_size = 1, num_layers = 1, output_size = 1;
  bool bias = true, bidirectional = false, return_sequences = false;
  double dropout = 0.0;
  LossKind loss = LossKind::kMse;
  double huber_delta = 1.0;       // loss "huber": quadratic within ±δ, linear beyond
  std::vector<double> quantiles;  // loss "quantile": levels in (0, 1), increasing (others
                                  // ignore them)
  Precision precision = Precision::kFloat32;  // of the recurrent layers' products

  Index dirs() const { return bidirectional ? 2 : 1; }
  // What the head reads per step. (Sizes are plain Index arithmetic once check_fits() passed.)
  Index features() const { return dirs() * hidden_size; }
  // Quantile levels Q per target (1 for the other losses); the head's output column k*Q + j is
  // level j of target k.
  Index num_quantiles() const {
    return loss == LossKind::kQuantile ? static_cast<Index>(quantiles.size()) : 1;
  }
  // Target values per sample (per step with return_sequences) the loss reads: one class index
  // (softmax), O/Q values (quantile), O values (mse, absolute_error, huber).
  Index target_width() const {
    return loss == LossKind::kSoftmax ? 1 : output_size / num_quantiles();
  }

  // ArgumentError naming the first bad field.
  void validate() const;

  // Recurrent units, then head.weight [O, dirs*H] and head.bias [O] (with bias). Exact;
  // TooLarge beyond 2^63. Needs a valid configuration.
  Index num_params() const;

  // TooLarge naming the sizes when the parameters (with their packed copies), the per-unit
  // bookkeeping and `batch` rows of per-step state in scalars of `scalar` bytes exceed
  // kMaxBytes. Call before building anything of this size.
  void check_fits(const char* what, std::size_t scalar, Index batch = 1) const;

  bool operator==(const ModelConfig& o) const;

  // (validate()'s part for the quantiles) At most kMaxQuantiles levels, each finite in (0, 1),
  // strictly increasing (checked whatever the loss: a configuration can be edited field by
  // field); with loss "quantile" at least one, and output_size a multiple of their number.
  void validate_quantiles() const;
};

// The Model's parameter buffer: the recurrent units (ParamLayout, with directions), then the
// head, head.weight [O, dirs*H] and head.bias [O].
struct ModelLayout {
  ParamLayout rnn;
  Index head_w = 0, head_b = -1, size = 0;
  std::vector<ParamLayout::Tensor> tensors;  // rnn's, then the head's

  ModelLayout() = default;
  explicit ModelLayout(const ModelConfig& c);
};

struct OptimConfig {
  Solver solver = Solver::kAdam;
  double lr = 1e-3, alpha = 0.0, momentum = 0.9, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double max_grad_norm = 0.0;  // <= 0: no clipping
  bool nesterov = true;
  Index batch_size = 32;
  bool shuffle = true;
  std::uint64_t seed = 0;

  // ArgumentError naming the first bad field.
  void validate() const;
};

}  // namespace lstm_native
