// ModelConfig, ModelLayout and OptimConfig (config.hpp): common to all kernel sets, compiled
// once.
#include "lstm_native/config.hpp"

namespace lstm_native {

void ModelConfig::validate() const {
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
  if (!(std::isfinite(huber_delta) && huber_delta > 0)) {
    std::ostringstream o;
    o << "huber_delta must be finite and > 0, got " << huber_delta;
    throw ArgumentError(o.str());
  }
  validate_quantiles();
}

Index ModelConfig::num_params() const {
  const Count recurrent = count_params(cell, input_size, hidden_size, num_layers, dirs(), bias);
  return (recurrent + Count(output_size) * (Count(dirs()) * hidden_size + Count(bias ? 1 : 0))).v;
}

void ModelConfig::check_fits(const char* what, std::size_t scalar, Index batch) const {
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

bool ModelConfig::operator==(const ModelConfig& o) const {
  return cell == o.cell && input_size == o.input_size && hidden_size == o.hidden_size &&
         num_layers == o.num_layers && output_size == o.output_size && bias == o.bias &&
         bidirectional == o.bidirectional && return_sequences == o.return_sequences &&
         dropout == o.dropout && loss == o.loss && huber_delta == o.huber_delta &&
         quantiles == o.quantiles && precision == o.precision;
}

void ModelConfig::validate_quantiles() const {
  const Index Q = static_cast<Index>(quantiles.size());
  require(Q <= kMaxQuantiles, "quantiles must hold at most " + std::to_string(kMaxQuantiles) +
                                  " levels, got " + std::to_string(Q));
  for (Index j = 0; j < Q; ++j) {
    const double q = quantiles[j];
    if (!(std::isfinite(q) && q > 0 && q < 1) || (j > 0 && !(q > quantiles[j - 1]))) {
      std::ostringstream o;
      o << "quantiles must be levels in (0, 1) in strictly increasing order, got " << q
        << " at position " << j;
      throw ArgumentError(o.str());
    }
  }
  if (loss != LossKind::kQuantile) return;
  require(Q >= 1, "quantiles must hold at least one level with loss 'quantile'");
  require(output_size % Q == 0, "quantiles: output_size (" + std::to_string(output_size) +
                                    ") must be a multiple of the number of levels (" +
                                    std::to_string(Q) + "): n_targets x n_quantiles outputs");
}

ModelLayout::ModelLayout(const ModelConfig& c)
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

void OptimConfig::validate() const {
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

}  // namespace lstm_native
