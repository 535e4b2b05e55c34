// Picks the kernel set (api.hpp) once: the best one compiled in that this CPU runs, capped by
// the environment variable LSTM_NATIVE_MAX_ISA (sse2 < avx2 < avx512, as oneDNN's
// ONEDNN_MAX_CPU_ISA: a cap, never a demand; so tests can run every set on one machine).
//
// Compiled for the baseline instruction set, like everything outside the kernel sets. A set is
// run only when the CPU has every extension it was compiled with (CMakeLists.txt):
//   avx2    AVX2 + FMA
//   avx512  AVX-512 F, BW, VL, DQ (and AVX2 + FMA)
// __builtin_cpu_supports also checks that the OS saves the wider registers (XGETBV), so a
// kernel that sets AVX-512 off is respected.
#include "lstm_native/api.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>
#include <vector>

// Each kernel set's entry point, lstm_native::isa_<set>::kernel_set() (kernels.cpp).
#define LSTM_NATIVE_DECLARE_SET(ns) \
  namespace lstm_native {           \
  inline namespace ns {             \
  const KernelSet& kernel_set();    \
  }                                 \
  }
#ifdef LSTM_NATIVE_SET_SSE2
LSTM_NATIVE_DECLARE_SET(isa_sse2)
#endif
#ifdef LSTM_NATIVE_SET_AVX2
LSTM_NATIVE_DECLARE_SET(isa_avx2)
#endif
#ifdef LSTM_NATIVE_SET_AVX512
LSTM_NATIVE_DECLARE_SET(isa_avx512)
#endif
#ifdef LSTM_NATIVE_SET_NATIVE
LSTM_NATIVE_DECLARE_SET(isa_native)
#endif
#ifdef LSTM_NATIVE_SET_BASELINE
LSTM_NATIVE_DECLARE_SET(isa_baseline)
#endif

namespace lstm_native {

namespace {

// The ladder LSTM_NATIVE_MAX_ISA caps, lowest first.
const char* const kLadder[] = {"sse2", "avx2", "avx512"};

int ladder_rank(const std::string& name) {
  for (int i = 0; i < 3; ++i)
    if (name == kLadder[i]) return i;
  return -1;
}

struct Candidate {
  const char* name;
  int rank;        // position on the ladder (sets off the ladder: 0)
  bool (*runs)();  // does this CPU run it?
  const KernelSet& (*get)();
};

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
bool cpu_has_avx512() {
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
}
#else
bool cpu_has_avx2() {
  return false;
}
bool cpu_has_avx512() {
  return false;
}
#endif
bool always() {
  return true;
}

// Compiled-in sets, lowest first.
std::vector<Candidate> candidates() {
  std::vector<Candidate> c;
#ifdef LSTM_NATIVE_SET_BASELINE
  c.push_back({"baseline", 0, &always, &isa_baseline::kernel_set});
#endif
#ifdef LSTM_NATIVE_SET_NATIVE
  c.push_back({"native", 0, &always, &isa_native::kernel_set});  // the host's own build
#endif
#ifdef LSTM_NATIVE_SET_SSE2
  c.push_back({"sse2", 0, &always, &isa_sse2::kernel_set});  // the x86-64 baseline
#endif
#ifdef LSTM_NATIVE_SET_AVX2
  c.push_back({"avx2", 1, &cpu_has_avx2, &isa_avx2::kernel_set});
#endif
#ifdef LSTM_NATIVE_SET_AVX512
  c.push_back({"avx512", 2, &cpu_has_avx512, &isa_avx512::kernel_set});
#endif
  return c;
}

// LSTM_NATIVE_MAX_ISA, lower-cased and checked ("" when unset or empty).
std::string max_isa_setting() {
  const char* env = std::getenv("LSTM_NATIVE_MAX_ISA");
  std::string s = env ? env : "";
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (!s.empty() && ladder_rank(s) < 0)
    throw ArgumentError(
        "LSTM_NATIVE_MAX_ISA must be one of 'sse2', 'avx2', 'avx512' (or unset), "
        "got '" +
        std::string(env) + "'");
  return s;
}

const KernelSet& choose() {
  const std::string cap = max_isa_setting();
  const int max_rank = cap.empty() ? 2 : ladder_rank(cap);
  const std::vector<Candidate> all = candidates();
  const Candidate* best = &all.front();  // every build holds a set of rank 0 that runs anywhere
  for (const Candidate& c : all)         // lowest first: the last that fits wins
    if (c.rank <= max_rank && c.runs()) best = &c;
  return best->get();
}

}  // namespace

const KernelSet& kernels() {
  static const KernelSet& chosen = choose();  // ArgumentError leaves it unset (retried)
  return chosen;
}

IsaReport isa_report() {
  IsaReport r;
  for (const Candidate& c : candidates()) {
    r.compiled.push_back(c.name);
    if (c.runs()) r.supported.push_back(c.name);
  }
  const char* env = std::getenv("LSTM_NATIVE_MAX_ISA");
  r.max_isa = env ? env : "";
  return r;
}

}  // namespace lstm_native
