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

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

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

std::string bf16_kernel_setting();

const KernelSet& choose() {
  const std::string cap = max_isa_setting();
  const std::string bf16 = bf16_kernel_setting();  // a bad value is an error at import
  const int max_rank = cap.empty() ? 2 : ladder_rank(cap);
  const std::vector<Candidate> all = candidates();
  const Candidate* best = &all.front();  // every build holds a set of rank 0 that runs anywhere
  for (const Candidate& c : all)         // lowest first: the last that fits wins
    if (c.rank <= max_rank && c.runs()) best = &c;
  const KernelSet& set = best->get();
  // A forced bf16 kernel this CPU or kernel set cannot run is an error too, not a silent
  // fallback.
  if (!bf16.empty() && bf16 != set.bf16_kernel())
    throw ArgumentError("LSTM_NATIVE_BF16_KERNEL='" + bf16 + "' cannot run here: " +
                        (bf16 == "amx"           ? "no usable AMX (amx_bf16, amx_tile, OS state)"
                         : bf16 == "avx512_bf16" ? "the CPU lacks avx512_bf16"
                                                 : "unavailable") +
                        " or the kernel set '" + std::string(set.isa) +
                        "' has no such kernel (LSTM_NATIVE_MAX_ISA='" + cap +
                        "'); this process would use '" + set.bf16_kernel() + "'");
  return set;
}

// CPUID leaf 7: EDX bit 22 amx_bf16, bit 24 amx_tile; subleaf 1 EAX bit 5 avx512_bf16.
// XCR0 (xgetbv, when the OS set OSXSAVE): bits 17 and 18, the tile configuration and data
// state the OS saves; bits 5-7 the AVX-512 state.
struct Bf16Cpu {
  bool avx512_bf16 = false, amx_cpu = false, amx_os = false;
};
Bf16Cpu bf16_cpu() {
  Bf16Cpu r;
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return r;  // no OSXSAVE
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const unsigned long long xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  if (__get_cpuid_max(0, nullptr) < 7) return r;
  __cpuid_count(7, 0, a, b, c, d);
  r.amx_cpu = (d & (1u << 22)) && (d & (1u << 24));
  r.amx_os = r.amx_cpu && (xcr0 & (3ull << 17)) == (3ull << 17);
  const bool avx512_os = (xcr0 & 0xe6) == 0xe6;
  __cpuid_count(7, 1, a, b, c, d);
  r.avx512_bf16 = avx512_os && (a & (1u << 5)) && cpu_has_avx512();
#endif
  return r;
}

// Linux gives a process the AMX tile data state only on request (arch_prctl
// ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); asked once.
bool amx_permission() {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && defined(__linux__)
  static const bool granted = [] {
    constexpr long kReqXcompPerm = 0x1023, kXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXtiledata) == 0;
  }();
  return granted;
#else
  return false;
#endif
}

// LSTM_NATIVE_BF16_KERNEL: "amx", "avx512_bf16", "emulated" or unset/empty (the best this CPU
// runs).
std::string bf16_kernel_setting() {
  const char* env = std::getenv("LSTM_NATIVE_BF16_KERNEL");
  std::string s = env ? env : "";
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (!s.empty() && s != "amx" && s != "avx512_bf16" && s != "emulated")
    throw ArgumentError(
        "LSTM_NATIVE_BF16_KERNEL must be 'amx', 'avx512_bf16' or 'emulated' (or unset), got '" +
        std::string(env) + "'");
  return s;
}

}  // namespace

bool amx_bf16_allowed() {
  static const bool ok = [] {
    const Bf16Cpu c = bf16_cpu();
    const std::string s = bf16_kernel_setting();
    return (s.empty() || s == "amx") && c.amx_os && amx_permission();
  }();
  return ok;
}

bool avx512_bf16_allowed() {
  static const bool ok = [] {
    const std::string s = bf16_kernel_setting();
    // Only when asked for: on the Sapphire Rapids Xeon it was measured at 1.3-1.6x the time of
    // the emulated kernel (benchmarks/results.md), and it has not been measured on a CPU
    // without AMX (Zen 4), so the automatic choice there stays the emulated kernel.
    return s == "avx512_bf16" && bf16_cpu().avx512_bf16;
  }();
  return ok;
}

Bf16Report bf16_report() {
  const Bf16Cpu c = bf16_cpu();
  Bf16Report r;
  r.avx512_bf16 = c.avx512_bf16;
  r.amx = c.amx_os && amx_permission();
  r.setting = bf16_kernel_setting();
  r.kernel = kernels().bf16_kernel();
  return r;
}

const KernelSet& kernels() {
  static const KernelSet& chosen = choose();  // ArgumentError leaves it unset (retried)
  return chosen;
}

std::string cpu_description() {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
  unsigned r[4] = {};
  char vendor[13] = {};
  if (!__get_cpuid(0, &r[0], &r[1], &r[2], &r[3])) return "unknown";
  std::copy_n(reinterpret_cast<const char*>(&r[1]), 4, vendor);  // EBX, EDX, ECX
  std::copy_n(reinterpret_cast<const char*>(&r[3]), 4, vendor + 4);
  std::copy_n(reinterpret_cast<const char*>(&r[2]), 4, vendor + 8);
  unsigned a, b, c, d;
  __get_cpuid(1, &a, &b, &c, &d);
  // leaf 1 EAX: stepping 3:0, model 7:4, family 11:8, extended model 19:16 and family 27:20
  // (added when the family is 15; the extended model counts when it is 6 or 15)
  const unsigned base_family = (a >> 8) & 0xf, stepping = a & 0xf;
  const unsigned family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
  unsigned model = (a >> 4) & 0xf;
  if (base_family == 0x6 || base_family == 0xf) model |= ((a >> 16) & 0xf) << 4;
  std::string brand;
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000004u) {
    char text[49] = {};
    for (unsigned leaf = 0; leaf < 3; ++leaf) {
      __get_cpuid(0x80000002u + leaf, &a, &b, &c, &d);
      const unsigned regs[4] = {a, b, c, d};
      std::copy_n(reinterpret_cast<const char*>(regs), 16, text + 16 * leaf);
    }
    brand = text;
    const auto first = brand.find_first_not_of(' ');
    brand = first == std::string::npos
                ? ""
                : brand.substr(first, brand.find_last_not_of(' ') - first + 1);
  }
  std::string ids = std::string(vendor) + " family " + std::to_string(family) + " model " +
                    std::to_string(model) + " stepping " + std::to_string(stepping);
  return brand.empty() ? ids : brand + " (" + ids + ")";
#else
  return "unknown";
#endif
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
