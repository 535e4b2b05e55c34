// ModelConfig and OptimConfig: what a network is and how one epoch trains it, with everything
// that follows from a configuration alone (validation, the parameter count and layout, the
// refusal of networks too large for this build). The Python layer asks these (through the
// bindings) instead of keeping formulas of its own.
#pragma once

#include "cells.hpp"
#include "layout.hpp"
#include "types.hpp"

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace lstm_native {

enum class LossKind { kMse, kSoftmax };
enum class Solver { kSgd, kAdam, kAdamW, kRmsprop };

inline const char* loss_name(LossKind k) { return k == LossKind::kMse ? "mse" : "softmax"; }
inline LossKind parse_loss(const std::string& s) {
  if (s == "mse") return LossKind::kMse;
  if (s == "softmax") return LossKind::kSoftmax;
  throw ArgumentError("loss must be 'mse' or 'softmax', got '" + s + "'");
}
inline const char* solver_name(Solver s) {
  switch (s) {
    case Solver::kSgd: return "sgd";
    case Solver::kAdam: return "adam";
    case Solver::kAdamW: return "adamw";
    case Solver::kRmsprop: return "rmsprop";
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

  Index dirs() const { return bidirectional ? 2 : 1; }
  // What the head reads per step. (Sizes are plain Index arithmetic once check_fits() passed.)
  Index features() const { return dirs() * hidden_size; }

  // ArgumentError naming the first bad field.
  void validate() const {
    auto positive = [](Index v, const char* name) {
      require(v >= 1, std::string(name) + " must be >= 1, got " + std::to_string(v));
    };
    positive(input_size, "input_size");
    positive(hidden_size, "hidden_size");
    positive(num_layers, "num_layers");
    positive(output_size, "output_size");
    if (!(dropout >= 0.0 && dropout < 1.0)) {
      std::ostringstream o;
      o << "dropout must lie in [0, 1), got " << dropout;
      throw ArgumentError(o.str());
    }
  }

  // Recurrent units, then head.weight [O, dirs*H] and head.bias [O] (with bias). Exact;
  // TooLarge beyond 2^63. Needs a valid configuration.
  Index num_params() const {
    const Count recurrent = count_params(cell, input_size, hidden_size, num_layers, dirs(), bias);
    return (recurrent + Count(output_size) * (Count(dirs()) * hidden_size + Count(bias ? 1 : 0))).v;
  }

  // TooLarge naming the sizes when the parameters (with their packed copies), the per-unit
  // bookkeeping and `batch` rows of per-step state in scalars of `scalar` bytes exceed
  // kMaxBytes. Call before building anything of this size.
  void check_fits(const char* what, std::size_t scalar, Index batch = 1) const {
    double bytes;
    try {
      const double units = double(num_layers) * double(dirs());
      bytes = 2 * double(num_params()) * double(scalar) + 512 * units +
              double(batch) * units * (num_gates(cell) + 2) * double(hidden_size) * double(scalar);
    } catch (const TooLarge&) {
      bytes = INFINITY;
    }
    if (bytes > kMaxBytes) {
      std::ostringstream o;
      o << what << ": input_size=" << input_size << ", hidden_size=" << hidden_size
        << ", num_layers=" << num_layers << ", output_size=" << output_size << ", batch=" << batch
        << " would need about " << bytes / 1099511627776.0 << " TiB, more than the "
        << kMaxBytes / 1099511627776.0 << " TiB this build accepts";
      throw TooLarge(o.str());
    }
  }

  bool operator==(const ModelConfig& o) const {
    return cell == o.cell && input_size == o.input_size && hidden_size == o.hidden_size &&
           num_layers == o.num_layers && output_size == o.output_size && bias == o.bias &&
           bidirectional == o.bidirectional && return_sequences == o.return_sequences &&
           dropout == o.dropout && loss == o.loss;
  }
};

// The Model's parameter buffer: the recurrent units (ParamLayout, with directions), then the
// head, head.weight [O, dirs*H] and head.bias [O].
struct ModelLayout {
  ParamLayout rnn;
  Index head_w = 0, head_b = -1, size = 0;
  std::vector<ParamLayout::Tensor> tensors;  // rnn's, then the head's

  ModelLayout() = default;
  explicit ModelLayout(const ModelConfig& c)
      : rnn(c.cell, c.input_size, c.hidden_size, c.num_layers, c.bias, c.dirs()),
        tensors(rnn.tensors) {
    size = rnn.size;
    head_w = size;
    tensors.push_back({"head.weight", size, c.output_size, c.features()});
    size += c.output_size * c.features();
    if (c.bias) {
      head_b = size;
      tensors.push_back({"head.bias", size, c.output_size, 0});
      size += c.output_size;
    }
  }
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
  void validate() const {
    auto in = [](double v, double lo, double hi, bool hi_open, const char* name) {
      if (std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi)) return;
      std::ostringstream o;
      o << name << " must be finite and lie in [" << lo << ", " << hi << (hi_open ? ")" : "]")
        << ", got " << v;
      throw ArgumentError(o.str());
    };
    in(lr, 0, INFINITY, true, "lr");
    in(alpha, 0, INFINITY, true, "alpha");
    in(momentum, 0, 1, false, "momentum");
    in(beta1, 0, 1, true, "beta1");
    in(beta2, 0, 1, true, "beta2");
    in(eps, 0, INFINITY, true, "eps");
    require(!std::isnan(max_grad_norm), "max_grad_norm must not be NaN (<= 0: no clipping)");
    require(batch_size >= 1, "batch_size must be >= 1, got " + std::to_string(batch_size));
  }
};

}  // namespace lstm_native
