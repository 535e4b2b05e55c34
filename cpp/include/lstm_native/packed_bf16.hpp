// bfloat16 products for PackedMatrix<float> (packed.hpp) in precision "bfloat16": both operands
// of a product rounded to bfloat16 (round to nearest even, what vcvtne2ps2bf16 does), the
// products summed in float32. Everything else (master weights, biases, states, the cells'
// pointwise math, the optimizers) stays float32.
//
// Two kernels compute these products, chosen once per process (bf16_kernel()):
//   "amx"       Intel AMX (tdpbf16ps on 16x32 bf16 tiles): the weights are packed once per call
//               as bf16 tiles in the pairs-interleaved ("VNNI") layout tdpbf16ps reads, the
//               activations converted to bf16 once per product. Only in the avx512 kernel set
//               (and a -march=native set on a CPU with AMX), only on a CPU with amx_bf16 +
//               amx_tile whose OS enabled the tile state and granted this process its use
//               (arch_prctl ARCH_REQ_XCOMP_PERM); the functions that hold AMX instructions carry
//               their own target attribute, so no other code of the set may contain them.
//   "emulated"  every other case: the operands rounded to bf16 and widened back to float32,
//               then the float32 kernel of packed.hpp. Same rounding of the operands, so the
//               same results up to the order of the float32 sums (which is fixed: see below).
// LSTM_NATIVE_BF16_KERNEL=emulated forces the second (tests run both on an AMX machine).
//
// Both keep packed.hpp's property that each output element is one fixed chain of float32
// additions over k (AMX: tiles of 32 k in k order; emulated: one FMA per k in k order) that
// does not depend on the row or column block the element falls in, so splitting a product
// across threads by rows or columns changes no result.
#pragma once

#include "types.hpp"

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

// (a -march=native set on a CPU with AMX has it too)
#if !defined(LSTM_NATIVE_AMX) && defined(__AMX_TILE__) && defined(__AMX_BF16__)
#define LSTM_NATIVE_AMX 1
#endif
#if defined(LSTM_NATIVE_AMX) || defined(EIGEN_VECTORIZE_AVX512)
#include <immintrin.h>
#endif

namespace lstm_native {

// The kernels computing bf16 products.
enum class Bf16Kernel { kEmulated, kAmx };
// May a kernel set with an AMX kernel use it? The CPU has amx_bf16 and amx_tile, the OS enabled
// the tile state (XCR0 bits 17, 18) and granted it to this process (arch_prctl, asked once),
// and LSTM_NATIVE_BF16_KERNEL is not "emulated" (dispatch.cpp; compiled for the baseline).
bool amx_bf16_allowed();

inline namespace LSTM_NATIVE_ISA_NS {

namespace bf16 {

// float32 -> bfloat16, round to nearest even; NaN stays a (quiet) NaN.
inline std::uint16_t round(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  const std::uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  return static_cast<std::uint16_t>(nan ? ((u >> 16) | 0x40u) : r);
}
inline float widen(std::uint16_t h) {
  const std::uint32_t u = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// f rounded to the nearest bfloat16, as a float.
inline float rounded(float f) {
  return widen(round(f));
}

// d[0 .. size of V) = v rounded to bf16 (round() on every lane, bit for bit), for a float or a
// SIMD packet of floats: the fused recurrence's h16 (stack.cpp) is written by the cell this way.
template <class V>
inline void store_rounded(std::uint16_t* d, const V& v) {
  if constexpr (std::is_same_v<V, float>) {
    *d = round(v);
#if defined(EIGEN_VECTORIZE_AVX512)
  } else if constexpr (std::is_same_v<V, Eigen::internal::Packet16f>) {
    // (u + 0x7fff + ((u >> 16) & 1)) >> 16, and for NaN (u >> 16) | 0x40, as round()
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(
        _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan,
                              _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm512_cvtepi32_epi16(r));
#endif
  } else {
    constexpr int n = Eigen::internal::unpacket_traits<V>::size;
    alignas(64) float t[n];
    Eigen::internal::pstoreu(t, v);
    for (int i = 0; i < n; ++i) d[i] = round(t[i]);
  }
}

// Has this kernel set an AMX kernel, and may it run (bf16_kernel() decides once)?
#if defined(LSTM_NATIVE_AMX)
constexpr bool kHaveAmx = true;
#else
constexpr bool kHaveAmx = false;
#endif
// The kernel of this set in this process, decided once.
inline Bf16Kernel kernel() {
  static const Bf16Kernel k =
      kHaveAmx && amx_bf16_allowed() ? Bf16Kernel::kAmx : Bf16Kernel::kEmulated;
  return k;
}

// Per-thread scratch (Tag: which use; 0 = a product's converted left operand).
template <class T, int Tag = 0>
inline T* scratch(std::size_t n) {
  thread_local std::vector<T, Eigen::aligned_allocator<T>> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

#if defined(LSTM_NATIVE_AMX)
#define LSTM_NATIVE_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw")))

// tdpbf16ps shapes: C tiles 16 x 16 float32, A tiles 16 rows x 32 bf16, B tiles 16 rows (pairs
// of k) x 16 columns x 2 bf16. Weights [K, N] are stored as B tiles, tile (nt, kt) (columns
// 16 nt.., k 32 kt..) at (nt * Kt + kt) * 512 elements: a column pair's tiles are contiguous.
constexpr Index kTileRows = 16, kTileK = 32, kTileCols = 16, kTileElems = 512;

struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

// Tiles 0-3: C (rows 0/16 x columns 0/16), 4-5: A (rows 0/16), 6-7: B (columns 0/16).
LSTM_NATIVE_AMX_TARGET inline void amx_configure() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

// One C tile's source and destination: `out` directly when the tile lies inside it, else a
// 16 x 16 spill buffer.
struct CTile {
  float* dst;
  Index stride;  // bytes
  bool spill;
};

// The product of rows [16 m0, 16 (m0 + MT)) of a16 [*, Kt*32] (bf16, row stride lda16
// elements) and column tiles nt0 .. nt0 + NT - 1 of w: C tiles start from init (see
// amx_multiply) and end in out (rows < M, columns < N only).
template <int MT, int NT>
LSTM_NATIVE_AMX_TARGET inline void amx_block(const std::uint16_t* a16, Index lda16, Index Kt,
                                             const std::uint16_t* w, Index nt0, Index m0, Index M,
                                             Index N, float* out, Index ldo, Index out_col0,
                                             const float* bias, bool acc_out,
                                             const char* pf = nullptr, Index pf_lines = 0) {
  alignas(64) float spill[4][kTileRows * kTileCols];
  CTile c[4];
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) {
      const Index r = (m0 + i) * kTileRows, col = (nt0 + j) * kTileCols;
      const Index rows = std::min<Index>(kTileRows, M - r),
                  cols = std::min<Index>(kTileCols, N - col);
      CTile& t = c[i * 2 + j];
      float* o = out + r * ldo + (col - out_col0);
      if (rows == kTileRows && cols == kTileCols) {
        t = {o, ldo * Index(sizeof(float)), false};
        continue;
      }
      t = {spill[i * 2 + j], kTileCols * Index(sizeof(float)), true};
      for (Index rr = 0; rr < kTileRows; ++rr)
        for (Index cc = 0; cc < kTileCols; ++cc)
          t.dst[rr * kTileCols + cc] =
              rr < rows && cc < cols ? (acc_out ? o[rr * ldo + cc] : (bias ? bias[col + cc] : 0.f))
                                     : 0.f;
    }
  // Start the C tiles: from out (acc_out) or the spill buffer, from the bias row repeated
  // (stride 0), or at zero.
#define LSTM_NATIVE_C_INIT(T, i, j)                  \
  if (acc_out || c[T].spill)                         \
    _tile_loadd(T, c[T].dst, c[T].stride);           \
  else if (bias)                                     \
    _tile_loadd(T, bias + (nt0 + j) * kTileCols, 0); \
  else                                               \
    _tile_zero(T);
  LSTM_NATIVE_C_INIT(0, 0, 0)
  if constexpr (NT == 2) {
    LSTM_NATIVE_C_INIT(1, 0, 1)
  }
  if constexpr (MT == 2) {
    LSTM_NATIVE_C_INIT(2, 1, 0)
    if constexpr (NT == 2) {
      LSTM_NATIVE_C_INIT(3, 1, 1)
    }
  }
#undef LSTM_NATIVE_C_INIT
  const Index astride = lda16 * 2;
  const std::uint16_t* a0 = a16 + m0 * kTileRows * lda16;
  const std::uint16_t* a1 = a0 + kTileRows * lda16;
  const std::uint16_t* b0 = w + nt0 * Kt * kTileElems;
  const std::uint16_t* b1 = b0 + Kt * kTileElems;
  for (Index kt = 0; kt < Kt; ++kt) {
    // (pf: pf_lines cache lines a k tile, of weights the caller reads next, into L2)
    for (Index l = 0; l < pf_lines; ++l) _mm_prefetch(pf + (kt * pf_lines + l) * 64, _MM_HINT_T1);
    _tile_loadd(4, a0 + kt * kTileK, astride);
    _tile_loadd(6, b0 + kt * kTileElems, 64);
    if constexpr (NT == 2) _tile_loadd(7, b1 + kt * kTileElems, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NT == 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (MT == 2) {
      _tile_loadd(5, a1 + kt * kTileK, astride);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (NT == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c[0].dst, c[0].stride);
  if constexpr (NT == 2) _tile_stored(1, c[1].dst, c[1].stride);
  if constexpr (MT == 2) {
    _tile_stored(2, c[2].dst, c[2].stride);
    if constexpr (NT == 2) _tile_stored(3, c[3].dst, c[3].stride);
  }
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) {
      const CTile& t = c[i * 2 + j];
      if (!t.spill) continue;
      const Index r = (m0 + i) * kTileRows, col = (nt0 + j) * kTileCols;
      const Index rows = std::min<Index>(kTileRows, M - r),
                  cols = std::min<Index>(kTileCols, N - col);
      float* o = out + r * ldo + (col - out_col0);
      for (Index rr = 0; rr < rows; ++rr)
        std::memcpy(o + rr * ldo, t.dst + rr * kTileCols, sizeof(float) * cols);
    }
}

// out [M, columns 16 nt0 .. 16 nt1 (clipped to N)] (out: column 16 nt0) = init + a16 · w, a16
// the converted left operand [ceil(M/16)*16, Kt*32]. The order of the blocks changes no result.
// `reverse`: the same blocks in the opposite order (same results). A recurrence whose weights
// outgrow L2 alternates the direction step by step: what the last step read last is then
// still in L2 when this step starts, instead of LRU having evicted it just before its reuse.
LSTM_NATIVE_AMX_TARGET inline void amx_multiply(const std::uint16_t* a16, Index lda16, Index M,
                                                Index Kt, const std::uint16_t* w, Index N,
                                                Index nt0, Index nt1, float* out, Index ldo,
                                                const float* bias, bool acc_out,
                                                bool reverse = false) {
  amx_configure();
  const Index Mt = (M + kTileRows - 1) / kTileRows, out_col0 = nt0 * kTileCols;
  auto block = [&](Index mt, Index nt, const char* pf = nullptr, Index pfl = 0) {
    const bool rows2 = mt + 1 < Mt, two = nt + 1 < nt1;
    if (rows2 && two)
      amx_block<2, 2>(a16, lda16, Kt, w, nt, mt, M, N, out, ldo, out_col0, bias, acc_out, pf, pfl);
    else if (rows2)
      amx_block<2, 1>(a16, lda16, Kt, w, nt, mt, M, N, out, ldo, out_col0, bias, acc_out, pf, pfl);
    else if (two)
      amx_block<1, 2>(a16, lda16, Kt, w, nt, mt, M, N, out, ldo, out_col0, bias, acc_out, pf, pfl);
    else
      amx_block<1, 1>(a16, lda16, Kt, w, nt, mt, M, N, out, ldo, out_col0, bias, acc_out, pf, pfl);
  };
  // Weights that fit a core's L2 (up to 1 MiB): row pairs outside, so that a row pair's
  // operand tiles stay in L1 while the weights stream from L2. Larger weights: column pairs
  // outside, each pair's weights (Kt KiB) read from L3 once and kept in L1 for every row pair.
  // (Column pairs start at nt0 + 2i in either direction: the same blocks.)
  const Index npairs = (nt1 - nt0 + 1) / 2;
  auto pair = [&](Index i) { return nt0 + 2 * (reverse ? npairs - 1 - i : i); };
  if ((nt1 - nt0) * Kt * kTileElems * 2 <= (Index(1) << 20)) {
    for (Index mt = 0; mt < Mt; mt += 2)
      for (Index i = 0; i < npairs; ++i) block(mt, pair(i));
  } else {
    // Weights from L3: while a column pair runs its row pairs, the next pair's weights (2 Kt
    // KiB, whole tiles; past nt1 they are not read) are prefetched into L2, a slice per row
    // pair, a few lines per k tile.
    const Index row_pairs = (Mt + 1) / 2, pair_lines = 2 * Kt * kTileElems * 2 / 64;
    const Index per_kt = (pair_lines + row_pairs * Kt - 1) / (row_pairs * Kt);
    for (Index i = 0; i < npairs; ++i) {
      const Index nn = i + 1 < npairs ? pair(i + 1) : -1;
      const Index lines = nn >= 0 ? std::min<Index>(2, nt1 - nn) * Kt * kTileElems * 2 / 64 : 0;
      const char* next = reinterpret_cast<const char*>(w + (nn >= 0 ? nn : 0) * Kt * kTileElems);
      for (Index mt = 0, b = 0; mt < Mt; mt += 2, ++b) {
        // (this block's slice: lines [b Kt per_kt, (b + 1) Kt per_kt), clipped to `lines`)
        const Index l0 = std::min(lines, b * Kt * per_kt);
        const Index pfl = std::min(lines - l0, Kt * per_kt) / Kt;
        block(mt, pair(i), next + l0 * 64, pfl);
      }
    }
  }
  _tile_release();
}
#undef LSTM_NATIVE_AMX_TARGET
#endif  // LSTM_NATIVE_AMX

// a [M, K] (a[r, k] = src[r * lda + k], or src[k * lda + r] when `transposed`) as bf16 rows of
// ldd elements, rows padded with zeros to Mp and columns to ldd.
inline void to_bf16(const float* src, Index lda, bool transposed, Index M, Index K, Index Mp,
                    Index ldd, std::uint16_t* dst) {
  if (transposed) {
    // blocks of 32 k x 16 r: 32 rows of src read in step along r (streams the prefetcher
    // follows), rounded, then written transposed (each output row gets 32 contiguous bf16)
    constexpr Index kR = 16, kK = 32;
    alignas(64) std::uint16_t t[kK][kR];
    for (Index k0 = 0; k0 < K; k0 += kK) {
      const Index nk = std::min(kK, K - k0);
      for (Index r0 = 0; r0 < M; r0 += kR) {
        const Index nr = std::min(kR, M - r0);
        if (nr == kR) {
          for (Index kk = 0; kk < nk; ++kk) {
            const float* s = src + (k0 + kk) * lda + r0;
            for (Index rr = 0; rr < kR; ++rr) t[kk][rr] = round(s[rr]);
          }
        } else {
          for (Index kk = 0; kk < nk; ++kk)
            for (Index rr = 0; rr < nr; ++rr) t[kk][rr] = round(src[(k0 + kk) * lda + r0 + rr]);
        }
        for (Index rr = 0; rr < nr; ++rr) {
          std::uint16_t* d = dst + (r0 + rr) * ldd + k0;
          for (Index kk = 0; kk < nk; ++kk) d[kk] = t[kk][rr];
        }
      }
    }
  } else {
    for (Index r = 0; r < M; ++r) {
      std::uint16_t* d = dst + r * ldd;
      const float* s = src + r * lda;
      for (Index k = 0; k < K; ++k) d[k] = round(s[k]);
    }
  }
  for (Index r = 0; r < Mp; ++r)
    std::fill(dst + r * ldd + (r < M ? K : 0), dst + (r + 1) * ldd, std::uint16_t(0));
}

// The same rounded to bf16 but kept as floats [M, K] (row stride K): the emulated kernel's
// left operand.
inline void to_rounded(const float* src, Index lda, bool transposed, Index M, Index K, float* dst) {
  for (Index r = 0; r < M; ++r) {
    float* d = dst + r * K;
    if (transposed)
      for (Index k = 0; k < K; ++k) d[k] = rounded(src[k * lda + r]);
    else
      for (Index k = 0; k < K; ++k) d[k] = rounded(src[r * lda + k]);
  }
}

}  // namespace bf16
}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
