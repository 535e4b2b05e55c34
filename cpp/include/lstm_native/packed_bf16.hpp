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
//   "avx512_bf16"  AVX512-BF16 (vdpbf16ps, _mm512_dpbf16_ps: each float32 lane adds the
//               products of one pair of bf16, k and k+1): for CPUs with avx512_bf16 and no usable
//               AMX (AMD Zen 4, Intel Cooper Lake, an AMX CPU whose OS or process lacks the tile
//               state). It reads the very same bf16 weight tiles as "amx" (a tile row of 16
//               columns x a pair of k is one 64-byte B operand of vdpbf16ps) and the same bf16
//               left operand (to_bf16), so packed.hpp and the fused step of stack.cpp take it
//               through the same path (PackedMatrix::amx(), amx_multiply(): the tile layout;
//               Bf16Kernel::kTiles names that layout, product() which instruction runs on it).
//               Same kernel set and compiler condition as "amx"; its functions carry their own
//               target attribute (avx512bf16) like the AMX ones.
//   "emulated"  every other case: the operands rounded to bf16 and widened back to float32,
//               then the float32 kernel of packed.hpp. Same rounding of the operands, so the
//               same results up to the order of the float32 sums (which is fixed: see below).
// Taken: amx where the CPU runs it, else emulated; avx512_bf16 only when asked for (it ran at
// 1.3-1.6x the emulated kernel's time on the AMX Xeon and is unmeasured without AMX);
// LSTM_NATIVE_BF16_KERNEL=amx|avx512_bf16|emulated forces one (an error at import if this CPU
// or kernel set cannot run it), so that tests run all three on an AMX machine.
//
// All keep packed.hpp's property that each output element is one fixed chain of float32
// additions over k (AMX: tiles of 32 k in k order; avx512_bf16: one vdpbf16ps per pair of k, in
// k order; emulated: one FMA per k in k order) that does not depend on the row or column block
// the element falls in, so splitting a product across threads by rows or columns changes no
// result. (vdpbf16ps flushes denormal inputs and results to zero, which the tolerance covers.)
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

// The paths of bf16 products: kTiles the weights packed as bf16 tiles (the "amx" and the
// "avx512_bf16" kernels, product() tells which), kEmulated the rounded-float one.
enum class Bf16Kernel { kEmulated, kTiles };
// The kernel that runs the products.
enum class Bf16Product { kEmulated, kAmx, kAvx512Bf16 };
// May a kernel set with an AMX kernel use it? The CPU has amx_bf16 and amx_tile, the OS enabled
// the tile state (XCR0 bits 17, 18) and granted it to this process (arch_prctl, asked once),
// and LSTM_NATIVE_BF16_KERNEL is unset or "amx" (dispatch.cpp; compiled for the baseline).
bool amx_bf16_allowed();
// May it use the avx512_bf16 kernel? The CPU has avx512_bf16 (CPUID leaf 7 subleaf 1 EAX bit
// 5, with the AVX-512 state enabled) and LSTM_NATIVE_BF16_KERNEL is "avx512_bf16" (opt-in:
// not the automatic choice until it is faster than the emulated kernel somewhere).
bool avx512_bf16_allowed();

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

#if defined(EIGEN_VECTORIZE_AVX512)
// round() on 16 lanes, bit for bit: each 32-bit lane's low half holds its bf16, the high half 0.
inline __m512i round_bits(__m512 v) {
  // (u + 0x7fff + ((u >> 16) & 1)) >> 16, and for NaN (u >> 16) | 0x40
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r =
      _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_mov_epi32(r, nan,
                               _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
}
// 16 floats of row k (even) and of row k + 1, rounded, as 16 32-bit lanes of bf16 pairs: lane c
// = bf16(even[c]) | bf16(odd[c]) << 16, the (k, k+1) pair of column c in memory order (a tile
// row of AMX's B operand, or one 32-bit column of a transposed A block).
inline __m512i round_pairs(const float* even, const float* odd) {
  const __m512i lo = round_bits(_mm512_loadu_ps(even));
  return _mm512_or_si512(lo, _mm512_slli_epi32(round_bits(_mm512_loadu_ps(odd)), 16));
}
#endif

// d[0 .. size of V) = v rounded to bf16 (round() on every lane, bit for bit), for a float or a
// SIMD packet of floats: the fused recurrence's h16 (stack.cpp) is written by the cell this way.
template <class V>
inline void store_rounded(std::uint16_t* d, const V& v) {
  if constexpr (std::is_same_v<V, float>) {
    *d = round(v);
#if defined(EIGEN_VECTORIZE_AVX512)
  } else if constexpr (std::is_same_v<V, Eigen::internal::Packet16f>) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm512_cvtepi32_epi16(round_bits(v)));
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
inline Bf16Product product() {
  static const Bf16Product k = !kHaveAmx               ? Bf16Product::kEmulated
                               : amx_bf16_allowed()    ? Bf16Product::kAmx
                               : avx512_bf16_allowed() ? Bf16Product::kAvx512Bf16
                                                       : Bf16Product::kEmulated;
  return k;
}
// Its path: the bf16 tiles (amx, avx512_bf16) or the rounded floats (emulated).
inline Bf16Kernel kernel() {
  return product() == Bf16Product::kEmulated ? Bf16Kernel::kEmulated : Bf16Kernel::kTiles;
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
  // (GCC 12 does not see that ldtilecfg reads all 64 bytes: where this is inlined it dropped
  // the stores of colsb and rows, and the first tile load then raised SIGILL. The empty asm
  // reads cfg from memory, so the stores stay.)
  asm volatile("" : : "m"(cfg) : "memory");
  _tile_loadconfig(&cfg);
}

// One C tile's source and destination: `out` directly when the tile lies inside it, else a
// 16 x 16 spill buffer.
struct CTile {
  float* dst;
  Index stride;  // bytes
  bool spill;
};

// A second product summed into the same C tiles after the first (tile_multiply's `second`):
// a16 [*, Kt*32] bf16 (row stride lda16) times the tiles w of another matrix with the same
// columns, K = 32 Kt. The fused inference step (stack.cpp) adds h_{t-1} W_hhᵀ to x_t W_ihᵀ
// this way: the pre-activations never leave the tiles between the two, and each element is
// the very chain of sums the two products one after the other give (a float32 store and load
// in between change nothing).
struct AmxSecond {
  const std::uint16_t* a16 = nullptr;
  Index lda16 = 0, Kt = 0;
  const std::uint16_t* w = nullptr;
};

// C tiles 0-3 (MT x NT of them) += A (rows a0, a1: tiles 4, 5) · B (column tiles b0, b1:
// tiles 6, 7) over Kt k tiles; pf: pf_lines cache lines a k tile, of weights the caller reads
// next, into L2.
// between(): called after each k tile's products (tile_multiply_units runs its epilogue there).
struct NoBetween {
  void operator()() const {}
};
template <int MT, int NT, class Between = const NoBetween>
LSTM_NATIVE_AMX_TARGET inline void amx_kloop(const std::uint16_t* a0, const std::uint16_t* a1,
                                             Index astride, const std::uint16_t* b0,
                                             const std::uint16_t* b1, Index Kt, const char* pf,
                                             Index pf_lines, Between& between = NoBetween{}) {
  for (Index kt = 0; kt < Kt; ++kt) {
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
    between();
  }
}

// C tiles 0-3 (MT x NT of them; tile 2 i + j holds rows 16 i.., columns 16 j.. of the block)
// start from src[T] with row stride stride[T] bytes (0: one row repeated, a bias), or at zero
// where src[T] is null; and end in c[T] (store_c_tiles). One definition for every block
// kernel below: tile numbers must be compile-time constants, hence the unrolled bodies.
template <int MT, int NT>
LSTM_NATIVE_AMX_TARGET inline void init_c_tiles(const float* const src[4], const Index stride[4]) {
#define LSTM_NATIVE_C_INIT(T)          \
  if (src[T])                          \
    _tile_loadd(T, src[T], stride[T]); \
  else                                 \
    _tile_zero(T);
  LSTM_NATIVE_C_INIT(0)
  if constexpr (NT == 2) {
    LSTM_NATIVE_C_INIT(1)
  }
  if constexpr (MT == 2) {
    LSTM_NATIVE_C_INIT(2)
    if constexpr (NT == 2) {
      LSTM_NATIVE_C_INIT(3)
    }
  }
#undef LSTM_NATIVE_C_INIT
}

template <int MT, int NT>
LSTM_NATIVE_AMX_TARGET inline void store_c_tiles(const CTile c[4]) {
  _tile_stored(0, c[0].dst, c[0].stride);
  if constexpr (NT == 2) _tile_stored(1, c[1].dst, c[1].stride);
  if constexpr (MT == 2) {
    _tile_stored(2, c[2].dst, c[2].stride);
    if constexpr (NT == 2) _tile_stored(3, c[3].dst, c[3].stride);
  }
}

// f(MT, NT) with the block shape as compile-time constants (std::integral_constant): two row
// tiles when `rows2`, two column tiles when `cols2`.
template <class F>
inline void with_block_shape(bool rows2, bool cols2, F&& f) {
  with_count<2>(rows2 ? 2 : 1,
                [&](auto mt) { with_count<2>(cols2 ? 2 : 1, [&](auto nt) { f(mt, nt); }); });
}

// The product of rows [16 m0, 16 (m0 + MT)) of a16 [*, Kt*32] (bf16, row stride lda16
// elements) and column tiles nt0 .. nt0 + NT - 1 of w (then of s2's, if s2.Kt > 0): C tiles
// start from init (see amx_multiply) and end in out (rows < M, columns < N only). pf, pf_lines:
// prefetches during the first product, pf2, pf2_lines during the second.
template <int MT, int NT>
LSTM_NATIVE_AMX_TARGET inline void amx_block(const std::uint16_t* a16, Index lda16, Index Kt,
                                             const std::uint16_t* w, Index nt0, Index m0, Index M,
                                             Index N, float* out, Index ldo, Index out_col0,
                                             const float* bias, bool acc_out,
                                             const char* pf = nullptr, Index pf_lines = 0,
                                             const AmxSecond& s2 = AmxSecond{},
                                             const char* pf2 = nullptr, Index pf2_lines = 0) {
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
  const float* src[4] = {};
  Index src_stride[4] = {};
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) {
      const int T = i * 2 + j;
      if (acc_out || c[T].spill) {
        src[T] = c[T].dst;
        src_stride[T] = c[T].stride;
      } else if (bias) {
        src[T] = bias + (nt0 + j) * kTileCols;
      }
    }
  init_c_tiles<MT, NT>(src, src_stride);
  {
    const std::uint16_t* a0 = a16 + m0 * kTileRows * lda16;
    const std::uint16_t* b0 = w + nt0 * Kt * kTileElems;
    amx_kloop<MT, NT>(a0, a0 + kTileRows * lda16, lda16 * 2, b0, b0 + Kt * kTileElems, Kt, pf,
                      pf_lines);
  }
  if (s2.Kt > 0) {
    const std::uint16_t* a0 = s2.a16 + m0 * kTileRows * s2.lda16;
    const std::uint16_t* b0 = s2.w + nt0 * s2.Kt * kTileElems;
    amx_kloop<MT, NT>(a0, a0 + kTileRows * s2.lda16, s2.lda16 * 2, b0, b0 + s2.Kt * kTileElems,
                      s2.Kt, pf2, pf2_lines);
  }
  store_c_tiles<MT, NT>(c);
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
LSTM_NATIVE_AMX_TARGET inline void tile_multiply(const std::uint16_t* a16, Index lda16, Index M,
                                                 Index Kt, const std::uint16_t* w, Index N,
                                                 Index nt0, Index nt1, float* out, Index ldo,
                                                 const float* bias, bool acc_out, bool reverse,
                                                 const AmxSecond& s2 = AmxSecond{}) {
  amx_configure();
  const Index Mt = (M + kTileRows - 1) / kTileRows, out_col0 = nt0 * kTileCols;
  auto block = [&](Index mt, Index nt, const char* pf = nullptr, Index pfl = 0,
                   const char* pf2 = nullptr, Index pfl2 = 0) {
    with_block_shape(mt + 1 < Mt, nt + 1 < nt1, [&](auto mt_c, auto nt_c) {
      amx_block<decltype(mt_c)::value, decltype(nt_c)::value>(a16, lda16, Kt, w, nt, mt, M, N, out,
                                                              ldo, out_col0, bias, acc_out, pf, pfl,
                                                              s2, pf2, pfl2);
    });
  };
  // Weights that fit a core's L2 (up to 1 MiB, both products'): row pairs outside, so that a
  // row pair's operand tiles stay in L1 while the weights stream from L2. Larger weights:
  // column pairs outside, each pair's weights (Kt KiB) read from L3 once and kept in L1 for
  // every row pair. (Column pairs start at nt0 + 2i in either direction: the same blocks.)
  const Index npairs = (nt1 - nt0 + 1) / 2;
  auto pair = [&](Index i) { return nt0 + 2 * (reverse ? npairs - 1 - i : i); };
  if ((nt1 - nt0) * (Kt + s2.Kt) * kTileElems * 2 <= (Index(1) << 20)) {
    for (Index mt = 0; mt < Mt; mt += 2)
      for (Index i = 0; i < npairs; ++i) block(mt, pair(i));
  } else {
    // Weights from L3: while a column pair runs its row pairs, the next pair's weights (2 Kt
    // KiB of each product, whole tiles; past nt1 they are not read) are prefetched into L2, a
    // slice per row pair, a few lines per k tile.
    const Index row_pairs = (Mt + 1) / 2;
    // (for one product's weights wm with kt tiles a column tile: the next pair's lines from
    // block b on, and how many a k tile)
    struct Pf {
      const char* p;
      Index lines;
    };
    auto slice = [&](const std::uint16_t* wm, Index kt, Index nn, Index b) {
      if (kt == 0 || nn < 0) return Pf{nullptr, 0};
      const Index pair_lines = 2 * kt * kTileElems * 2 / 64;
      const Index per_kt = (pair_lines + row_pairs * kt - 1) / (row_pairs * kt);
      const Index lines = std::min<Index>(2, nt1 - nn) * kt * kTileElems * 2 / 64;
      const char* next = reinterpret_cast<const char*>(wm + nn * kt * kTileElems);
      // (this block's slice: lines [b kt per_kt, (b + 1) kt per_kt), clipped to `lines`)
      const Index l0 = std::min(lines, b * kt * per_kt);
      return Pf{next + l0 * 64, std::min(lines - l0, kt * per_kt) / kt};
    };
    for (Index i = 0; i < npairs; ++i) {
      const Index nn = i + 1 < npairs ? pair(i + 1) : -1;
      for (Index mt = 0, b = 0; mt < Mt; mt += 2, ++b) {
        const Pf p1 = slice(w, Kt, nn, b), p2 = slice(s2.w, s2.Kt, nn, b);
        block(mt, pair(i), p1.p, p1.lines, p2.p, p2.lines);
      }
    }
  }
  _tile_release();
}

// The fused inference step's product with the cell as its epilogue (stack.cpp; the AMX tile
// kernel, float32 sums). Unit group q is 16 units: its pre-activations are column tile
// g Hq + q of every gate block g < G (Hq = H / 16 column tiles a block) of both products, w
// (left operand a16, Kt k tiles) and s2. For q in [q0, q1) (descending when `reverse`, see
// tile_multiply):
//   buf_q [Mt*16, G*16] = init + a16 · w_q + s2.a16 · s2.w_q   (init: the bias row, or zero)
// gate pair by gate pair (C tiles: two row tiles x two gates), the row pairs inside (a pair's
// weights, 2 (Kt + s2.Kt) KiB, stay in L1 for all of them); then epi(q, r, buf_q + r G*16) for
// every row r < M: the cell on row r's 16 units. The rows of group q run while group q+1's
// tiles do (a few after each k tile: the AVX-512 ports are idle while tdpbf16ps runs, and the
// gates are read from L1, not written to and read back from L2): on the Xeon about half the
// cell's time hides this way. The last group's rows run after the products. Two buffers
// alternate (buf: 2 x Mt*16*G*16 floats). Each element of buf is the chain of float32 sums
// tile_multiply gives it (the same init, then the same k tiles in the same order), so the
// results equal tile_multiply's followed by the cell, bit for bit, whatever the groups.
template <int MT, int NT, class Between>
LSTM_NATIVE_AMX_TARGET inline void amx_unit_block(const std::uint16_t* a16, Index lda16, Index Kt,
                                                  const std::uint16_t* const b[2],
                                                  const AmxSecond& s2,
                                                  const std::uint16_t* const b2[2], Index m0,
                                                  const float* const bias[2], float* out, Index ldo,
                                                  Between& between) {
  const float* src[4] = {bias[0], bias[1], bias[0], bias[1]};  // stride 0: the row repeated
  const Index src_stride[4] = {};
  init_c_tiles<MT, NT>(src, src_stride);
  const Index r = m0 * kTileRows;
  amx_kloop<MT, NT>(a16 + r * lda16, a16 + (r + kTileRows) * lda16, lda16 * 2, b[0], b[1], Kt,
                    nullptr, 0, between);
  if (s2.Kt > 0)
    amx_kloop<MT, NT>(s2.a16 + r * s2.lda16, s2.a16 + (r + kTileRows) * s2.lda16, s2.lda16 * 2,
                      b2[0], b2[1], s2.Kt, nullptr, 0, between);
  float* o = out + r * ldo;
  const Index stride = ldo * Index(sizeof(float));
  const CTile c[4] = {{o, stride, false},
                      {o + kTileCols, stride, false},
                      {o + kTileRows * ldo, stride, false},
                      {o + kTileRows * ldo + kTileCols, stride, false}};
  store_c_tiles<MT, NT>(c);
}

template <class Epi>
LSTM_NATIVE_AMX_TARGET inline void tile_multiply_units(const std::uint16_t* a16, Index lda16,
                                                       Index M, Index Kt, const std::uint16_t* w,
                                                       Index G, Index Hq, Index q0, Index q1,
                                                       const float* bias, const AmxSecond& s2,
                                                       bool reverse, float* buf, Epi&& epi) {
  if (M <= 0 || q1 <= q0) return;
  amx_configure();
  const Index Mt = (M + kTileRows - 1) / kTileRows, ldb = G * kTileCols;
  const Index Kall = Kt + s2.Kt, gate_pairs = (G + 1) / 2, row_pairs = (Mt + 1) / 2;
  // Group q's column tile of gate block g in a product's weights wm (kt k tiles a column).
  auto tile = [&](const std::uint16_t* wm, Index kt, Index q, Index g) {
    return wm + (g * Hq + q) * kt * kTileElems;
  };
  // (No software prefetch of the next gate pair's weights, as tile_multiply does when they
  // outgrow L2: here, where each pair's tiles are two contiguous runs, the hardware
  // prefetchers do better on their own. Measured at H = 512: 1.05x faster at one thread,
  // whose 2.3 MiB of weights stream from L3, and 1.05x at two.)
  // The epilogue: group `prev`'s rows [done, M), from pbuf, spread over the `ticks` k tiles
  // of the next group (acc counts M per k tile: a row per ticks of it).
  const Index ticks = gate_pairs * row_pairs * Kall;
  Index prev = -1, done = 0, acc = 0;
  const float* pbuf = nullptr;
  auto between = [&] {
    if (prev < 0) return;
    for (acc += M; acc >= ticks && done < M; acc -= ticks, ++done)
      epi(prev, done, pbuf + done * ldb);
  };
  const Index nq = q1 - q0;
  for (Index i = 0; i < nq; ++i) {
    const Index q = reverse ? q1 - 1 - i : q0 + i;
    float* out = buf + (i % 2) * Mt * kTileRows * ldb;
    for (Index gp = 0; gp < gate_pairs; ++gp) {
      const Index g0 = 2 * gp;
      const bool two = g0 + 1 < G;
      const std::uint16_t* b[2] = {tile(w, Kt, q, g0), two ? tile(w, Kt, q, g0 + 1) : nullptr};
      const std::uint16_t* b2[2] = {s2.Kt > 0 ? tile(s2.w, s2.Kt, q, g0) : nullptr,
                                    s2.Kt > 0 && two ? tile(s2.w, s2.Kt, q, g0 + 1) : nullptr};
      const float* bb[2] = {bias ? bias + (g0 * Hq + q) * kTileCols : nullptr,
                            bias && two ? bias + ((g0 + 1) * Hq + q) * kTileCols : nullptr};
      float* o = out + g0 * kTileCols;
      for (Index mt = 0; mt < Mt; mt += 2)
        with_block_shape(mt + 1 < Mt, two, [&](auto mt_c, auto nt_c) {
          amx_unit_block<decltype(mt_c)::value, decltype(nt_c)::value>(a16, lda16, Kt, b, s2, b2,
                                                                       mt, bb, o, ldb, between);
        });
    }
    for (; prev >= 0 && done < M; ++done) epi(prev, done, pbuf + done * ldb);
    prev = q;
    done = acc = 0;
    pbuf = out;
  }
  _tile_release();
  for (; done < M; ++done) epi(prev, done, pbuf + done * ldb);
}
#undef LSTM_NATIVE_AMX_TARGET

// The avx512_bf16 kernel: vdpbf16ps on the operands of tile_multiply (see the top of the file).
#define LSTM_NATIVE_DP_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))

// RB rows x CB column tiles (16 columns each, the tiles nt .. nt + CB - 1) of out, kept in
// registers (up to 6 x 4: 24 accumulators, 4 weight vectors and a broadcast of the 32
// registers). a: the block's first row of a16; out: its first row, at column 16 nt. A tile row
// of the weights (16 columns x the pair k, k+1) is one B operand, a pair of a16 (a 32-bit
// broadcast) the A one; a column tile's k tiles are contiguous, so each of the CB weight streams
// is read in order. Each element: init (out, the bias or zero), then one vdpbf16ps per pair of
// k in k order, whatever RB, CB or the block.
template <int RB, int CB>
LSTM_NATIVE_DP_TARGET inline void dp_block(const std::uint16_t* a, Index lda16, Index Kt,
                                           const std::uint16_t* w, Index nt, Index N, float* out,
                                           Index ldo, const float* bias, bool acc_out) {
  __m512 acc[RB][CB];
  __mmask16 mask[CB];
  const std::uint16_t* b[CB];
  for (int j = 0; j < CB; ++j) {
    const Index cols = std::min<Index>(kTileCols, N - (nt + j) * kTileCols);
    mask[j] = cols >= kTileCols ? __mmask16(0xffff) : __mmask16((1u << cols) - 1u);
    b[j] = w + (nt + j) * Kt * kTileElems;
  }
  for (int i = 0; i < RB; ++i)
    for (int j = 0; j < CB; ++j)
      acc[i][j] = acc_out ? _mm512_maskz_loadu_ps(mask[j], out + i * ldo + j * kTileCols)
                  : bias  ? _mm512_maskz_loadu_ps(mask[j], bias + (nt + j) * kTileCols)
                          : _mm512_setzero_ps();
  const Index pairs = Kt * (kTileK / 2);
  for (Index p = 0; p < pairs; ++p) {
    __m512bh bv[CB];
    for (int j = 0; j < CB; ++j) bv[j] = (__m512bh)_mm512_loadu_si512(b[j] + p * 2 * kTileCols);
    for (int i = 0; i < RB; ++i) {
      std::uint32_t pair;
      std::memcpy(&pair, a + i * lda16 + 2 * p, 4);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
      for (int j = 0; j < CB; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
    }
  }
  for (int i = 0; i < RB; ++i)
    for (int j = 0; j < CB; ++j)
      _mm512_mask_storeu_ps(out + i * ldo + j * kTileCols, mask[j], acc[i][j]);
}

// tile_multiply's product with vdpbf16ps: groups of up to 4 column tiles from nt0 outside (a
// group's weights, 4 Kt KiB, read from memory once and from L1/L2 for every row block), rows in
// ceil(M / 6) blocks of as equal a size as possible inside. `reverse`: the groups in the
// opposite order (the same groups, the same results).
LSTM_NATIVE_DP_TARGET inline void dp_multiply(const std::uint16_t* a16, Index lda16, Index M,
                                              Index Kt, const std::uint16_t* w, Index N, Index nt0,
                                              Index nt1, float* out, Index ldo, const float* bias,
                                              bool acc_out, bool reverse) {
  const Index groups = (nt1 - nt0 + 3) / 4, blocks = (M + 5) / 6;
  for (Index gi = 0; gi < groups; ++gi) {
    const Index nt = nt0 + 4 * (reverse ? groups - 1 - gi : gi), cb = std::min<Index>(4, nt1 - nt);
    for (Index q = 0, r = 0; q < blocks; ++q) {
      const Index rb = (M - r) / (blocks - q) + ((M - r) % (blocks - q) != 0);
      const std::uint16_t* a = a16 + r * lda16;
      float* o = out + r * ldo + (nt - nt0) * kTileCols;
      with_count<6>(rb, [&](auto rows) {
        with_count<4>(cb, [&](auto cols) {
          dp_block<decltype(rows)::value, decltype(cols)::value>(a, lda16, Kt, w, nt, N, o, ldo,
                                                                 bias, acc_out);
        });
      });
      r += rb;
    }
  }
}
#undef LSTM_NATIVE_DP_TARGET

// out [M, columns 16 nt0 .. 16 nt1 (clipped to N)] (out: column 16 nt0) = init + a16 · w on the
// bf16 tiles, by the kernel of product() (amx or avx512_bf16); see tile_multiply.
inline void amx_multiply(const std::uint16_t* a16, Index lda16, Index M, Index Kt,
                         const std::uint16_t* w, Index N, Index nt0, Index nt1, float* out,
                         Index ldo, const float* bias, bool acc_out, bool reverse = false) {
  if (product() == Bf16Product::kAvx512Bf16)
    dp_multiply(a16, lda16, M, Kt, w, N, nt0, nt1, out, ldo, bias, acc_out, reverse);
  else
    tile_multiply(a16, lda16, M, Kt, w, N, nt0, nt1, out, ldo, bias, acc_out, reverse);
}
#endif  // LSTM_NATIVE_AMX

#if defined(EIGEN_VECTORIZE_AVX512)
// One full block of to_bf16's transposed case: 32 k x 16 r of src (src[kk * lda + rr]) rounded
// (round() on every value, bit for bit) and written as 16 rows of 32 bf16 (dst[rr * ldd + kk]).
// Each pair of k rows becomes one vector of 16 32-bit lanes (lane rr: k even in the low half,
// k odd in the high half: the order of the two bf16 in memory), then the 16 x 16 of 32-bit
// lanes is transposed: 32-bit and 64-bit unpacks transpose the 4 x 4 blocks inside each
// 128-bit lane, two rounds of 128-bit shuffles the 4 x 4 of lanes. The scalar loop did ~2
// scattered 16-bit accesses a value, 5.9 % of a bf16 LSTM training step at H = 128.
inline void to_bf16_block_t(const float* src, Index lda, std::uint16_t* dst, Index ldd) {
  __m512i w[16], a[16], b[16];
  for (int j = 0; j < 16; ++j)  // lane rr: k pair j of row rr
    w[j] = round_pairs(src + (2 * j) * lda, src + (2 * j + 1) * lda);
  for (int i = 0; i < 8; ++i) {  // a[2i], a[2i+1] lane L: (w[2i], w[2i+1]) at 4L, 4L+1 / +2, +3
    a[2 * i] = _mm512_unpacklo_epi32(w[2 * i], w[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_epi32(w[2 * i], w[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // b[4g + m] lane L: w[4g .. 4g+3] at 4L + m
    b[4 * g] = _mm512_unpacklo_epi64(a[4 * g], a[4 * g + 2]);
    b[4 * g + 1] = _mm512_unpackhi_epi64(a[4 * g], a[4 * g + 2]);
    b[4 * g + 2] = _mm512_unpacklo_epi64(a[4 * g + 1], a[4 * g + 3]);
    b[4 * g + 3] = _mm512_unpackhi_epi64(a[4 * g + 1], a[4 * g + 3]);
  }
  for (int m = 0; m < 4; ++m) {  // output row 4L + m: lane g of it is b[4g + m]'s lane L
    const __m512i c0 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0x44);
    const __m512i c1 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0x44);
    const __m512i c2 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0xee);
    const __m512i c3 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0xee);
    _mm512_storeu_si512(dst + m * ldd, _mm512_shuffle_i32x4(c0, c1, 0x88));
    _mm512_storeu_si512(dst + (4 + m) * ldd, _mm512_shuffle_i32x4(c0, c1, 0xdd));
    _mm512_storeu_si512(dst + (8 + m) * ldd, _mm512_shuffle_i32x4(c2, c3, 0x88));
    _mm512_storeu_si512(dst + (12 + m) * ldd, _mm512_shuffle_i32x4(c2, c3, 0xdd));
  }
}
#endif

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
#if defined(EIGEN_VECTORIZE_AVX512)
        if (nr == kR && nk == kK) {
          to_bf16_block_t(src + k0 * lda + r0, lda, dst + r0 * ldd + k0, ldd);
          continue;
        }
#endif
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
