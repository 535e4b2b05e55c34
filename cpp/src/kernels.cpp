// This kernel set's entry point (api.hpp): the constructors of its Recurrent, Model and Stream.
// Compiled once per kernel set, like stack.cpp, model.cpp and stream.cpp (isa.hpp); the
// dispatcher calls kernel_set() of the one set it chose, and no other.
#include "lstm_native/api.hpp"
#include "lstm_native/model.hpp"
#include "lstm_native/stack.hpp"
#include "lstm_native/stream.hpp"

#include <memory>
#include <string>

#define LSTM_NATIVE_STR2(x) #x
#define LSTM_NATIVE_STR(x) LSTM_NATIVE_STR2(x)

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

namespace {
template <class S>
std::unique_ptr<RecurrentApi<S>> make_recurrent(CellKind cell, Index D, Index H, Index L, bool bias,
                                                Precision precision) {
  return std::make_unique<Recurrent<S>>(cell, D, H, L, bias, precision);
}
template <class S>
std::unique_ptr<ModelApi<S>> make_model(const ModelConfig& cfg) {
  return std::make_unique<Model<S>>(cfg);
}
template <class S>
std::unique_ptr<StreamApi<S>> make_stream(const ModelConfig& cfg, const S* params, Index batch,
                                          int threads) {
  return std::make_unique<Stream<S>>(cfg, params, batch, threads);
}
// The instruction sets this set's Eigen vectorizes with, widest first (Eigen's own
// SimdInstructionSetsInUse() says "AVX" for AVX2 + FMA).
const char* simd_in_use() {
  static const std::string s = [] {
    std::string r;
    auto add = [&r](const char* name) { r += (r.empty() ? "" : ", ") + std::string(name); };
    (void)add;
#ifdef EIGEN_VECTORIZE_AVX512
    add("AVX512");
#endif
#ifdef EIGEN_VECTORIZE_AVX512DQ
    add("AVX512DQ");
#endif
#ifdef EIGEN_VECTORIZE_FMA
    add("FMA");
#endif
#ifdef EIGEN_VECTORIZE_AVX2
    add("AVX2");
#endif
#ifdef EIGEN_VECTORIZE_AVX
    add("AVX");
#endif
#ifdef EIGEN_VECTORIZE_SSE
    add("SSE");
#endif
#ifdef EIGEN_VECTORIZE_SSE2
    add("SSE2");
#endif
#ifdef EIGEN_VECTORIZE_SSE3
    add("SSE3");
#endif
#ifdef EIGEN_VECTORIZE_SSSE3
    add("SSSE3");
#endif
#ifdef EIGEN_VECTORIZE_SSE4_1
    add("SSE4.1");
#endif
#ifdef EIGEN_VECTORIZE_SSE4_2
    add("SSE4.2");
#endif
#ifdef EIGEN_VECTORIZE_NEON
    add("NEON");
#endif
    return r.empty() ? std::string(Eigen::SimdInstructionSetsInUse()) : r;
  }();
  return s.c_str();
}

const char* bf16_kernel_name() {
  switch (bf16::product()) {
    case Bf16Product::kAmx:
      return "amx";
    case Bf16Product::kAvx512Bf16:
      return "avx512_bf16";
    default:
      return "emulated";
  }
}

template <class S>
Factories<S> factories() {
  return {&make_recurrent<S>, &make_model<S>, &make_stream<S>};
}
}  // namespace

const KernelSet& kernel_set() {
  // The set's name is its namespace's without "isa_".
  static const KernelSet set{LSTM_NATIVE_STR(LSTM_NATIVE_ISA_NS) + 4, simd_in_use(),
                             factories<float>(), factories<double>(), &bf16_kernel_name};
  return set;
}

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
