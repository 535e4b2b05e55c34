// What the bindings see of the core: abstract interfaces of the three objects they build
// (nn's layer, the Model, the Stream) and the kernel set that builds them.
//
// The core's compute code is compiled once per instruction set (isa.hpp); each kernel set
// implements these interfaces with its own Recurrent<S>, Model<S> and Stream<S> (stack.hpp,
// model.hpp, stream.hpp) and exports one KernelSet (kernels.cpp). The dispatcher
// (dispatch.cpp) picks the best set the CPU runs, capped by the environment variable
// LSTM_NATIVE_MAX_ISA, once, at import; every object is built by that set. The bindings, the
// dispatcher and everything else outside the kernel sets is compiled for the baseline
// instruction set only, so the module imports on any CPU of its architecture.
#pragma once

#include "common.hpp"
#include "config.hpp"
#include "layout.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace lstm_native {

// nn's layer: one stack of L layers of one direction (stack.hpp, Recurrent<S>). Arrays as
// stack.hpp documents them (x [B, T, D], y [B, T, H], states [L, B, H], ...).
template <class S>
class RecurrentApi {
 public:
  virtual ~RecurrentApi() = default;
  virtual CellKind cell() const = 0;
  virtual Index input_size() const = 0;
  virtual Index hidden_size() const = 0;
  virtual Index num_layers() const = 0;
  virtual bool bias() const = 0;
  virtual const ParamLayout& layout() const = 0;
  virtual bool has_forward() const = 0;
  virtual Index batch() const = 0;
  virtual Index steps() const = 0;
  virtual Index num_parts() const = 0;
  virtual Index forward_column_blocks() const = 0;
  virtual Index backward_column_blocks() const = 0;
  virtual void set_num_threads(int n) = 0;
  virtual int num_threads() const = 0;
  virtual void forward(const S* params, const S* x, Index B, Index T, const std::int64_t* lengths,
                       const S* h0, const S* c0, S* y, S* hT, S* cT, bool train) = 0;
  virtual void backward(const S* params, const S* dy, const S* dhT, const S* dcT, S* dparams, S* dx,
                        S* dh0, S* dc0, S* dhs, S* dcs) = 0;
  virtual void trace(S* gates, S* h, S* c) const = 0;
  virtual Index workspace_elements(Index B, Index T, bool train) const = 0;
  virtual Index allocated_elements() const = 0;
  virtual Precision precision() const = 0;
};

// One feedback of a rollout: input column `input` of step k is output column `output` of
// step k-1 (model.hpp, Model::rollout).
struct Feedback {
  Index output, input;
};
// Called between minibatches with (samples done, samples in the epoch); may throw to stop
// the epoch there.
using BatchHook = std::function<void(Index, Index)>;

// The Model: layers, head, loss and optimizers (model.hpp, Model<S>).
template <class S>
class ModelApi {
 public:
  virtual ~ModelApi() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const ModelLayout& layout() const = 0;
  virtual Index num_params() const = 0;
  virtual void set_num_threads(int n) = 0;
  virtual int num_threads() const = 0;
  virtual double train_epoch(S* params, S* m, S* v, std::int64_t* step, const S* X, Index N,
                             Index T, const std::int64_t* lengths, const S* Y, const S* sw,
                             const OptimConfig& oc, const BatchHook& between_batches) = 0;
  virtual void predict(const S* params, const S* X, Index N, Index T, const std::int64_t* lengths,
                       S* out) = 0;
  virtual double loss(const S* params, const S* X, Index N, Index T, const std::int64_t* lengths,
                      const S* Y, const S* sw, double alpha, S* grad) = 0;
  virtual void rollout(const S* params, const S* X, Index N, Index T, const std::int64_t* lengths,
                       Index horizon, const S* future, const std::vector<Feedback>& feedback,
                       S* out) = 0;
  virtual Index allocated_elements() const = 0;
};

// A trained network run one timestep at a time (stream.hpp, Stream<S>).
template <class S>
class StreamApi {
 public:
  virtual ~StreamApi() = default;
  virtual Index batch() const = 0;
  virtual Index input_size() const = 0;
  virtual Index output_size() const = 0;
  virtual Index hidden_size() const = 0;
  virtual Index num_layers() const = 0;
  virtual bool has_cell_state() const = 0;
  virtual void step(const S* x, S* out) = 0;
  virtual void reset() = 0;
  virtual void set_num_threads(int n) = 0;
  virtual int num_threads() const = 0;
  virtual S* h() = 0;  // [L, B, H]
  virtual S* c() = 0;  // [L, B, H] (cells with a cell state)
};

// The constructors of one kernel set for one scalar type. Arguments as the classes'
// constructors (stack.hpp, model.hpp, stream.hpp); they validate and throw as those do.
template <class S>
struct Factories {
  std::unique_ptr<RecurrentApi<S>> (*recurrent)(CellKind cell, Index input_size, Index hidden_size,
                                                Index num_layers, bool bias, Precision precision);
  std::unique_ptr<ModelApi<S>> (*model)(const ModelConfig& cfg);
  std::unique_ptr<StreamApi<S>> (*stream)(const ModelConfig& cfg, const S* params, Index batch,
                                          int threads);
};

struct KernelSet {
  const char* isa;   // "sse2", "avx2", "avx512", "native" or "baseline" (not x86-64)
  const char* simd;  // the instruction sets Eigen vectorizes with in this set
  Factories<float> f32;
  Factories<double> f64;
  // The kernel of this set's bfloat16 products in this process: "amx", "avx512_bf16" or
  // "emulated" (packed_bf16.hpp).
  const char* (*bf16_kernel)();

  template <class S>
  const Factories<S>& of() const {
    if constexpr (std::is_same_v<S, float>)
      return f32;
    else
      return f64;
  }
};

// The kernel set in use: chosen on first call (the module's import), then fixed.
// ArgumentError when LSTM_NATIVE_MAX_ISA holds something else than a set's name.
const KernelSet& kernels();

// What the dispatcher knows, for build_info(): the sets compiled in (baseline first), the
// ones this CPU runs, and the cap read from LSTM_NATIVE_MAX_ISA ("" when unset).
struct IsaReport {
  std::vector<std::string> compiled, supported;
  std::string max_isa;
};
IsaReport isa_report();

// bfloat16 (packed_bf16.hpp): may a kernel set with an AMX kernel use it (the CPU and OS run
// AMX bf16, this process was granted the tile state, LSTM_NATIVE_BF16_KERNEL is unset or
// "amx")? May it use the avx512_bf16 kernel (the CPU has avx512_bf16, the setting is
// "avx512_bf16": opt-in)? And for build_info(): what the CPU offers, the setting, the kernel in use.
bool amx_bf16_allowed();
bool avx512_bf16_allowed();
struct Bf16Report {
  bool avx512_bf16 = false, amx = false;
  std::string setting;  // LSTM_NATIVE_BF16_KERNEL ("" when unset)
  const char* kernel = "emulated";
};
Bf16Report bf16_report();

// The CPU, for build_info() and the benchmarks' reports: its brand string and CPUID's vendor,
// family, model and stepping ("Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 207
// stepping 2)"): hosts under a hypervisor often show one brand string for several CPU
// generations, the model number tells them apart. "unknown" off x86-64.
std::string cpu_description();

}  // namespace lstm_native
