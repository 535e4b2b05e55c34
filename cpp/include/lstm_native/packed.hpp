// A small GEMM for the per-timestep products of a recurrence, with the weights packed once per
// call instead of once per step (as a general GEMM would):
//
//   out[r, :N] = init[r, :N] + Σ_k a[r, k] · P[k, :N]        r < M (rows: batch), k < K
//
// P is a weight matrix with N padded to a whole number of SIMD packets, stored as column panels
// of up to 4 packets, each panel contiguous and k-major ([K, width]), so the kernel streams
// through memory in order (this matters most at batch 1, where the product is bandwidth-bound):
//   forward  Gh = h · W_hhᵀ     P = W_hhᵀ  [H, G*H]   (pack_transposed(W_hh [G*H, H]))
//   backward dh = dGh · W_hh    P = W_hh   [G*H, H]   (pack(W_hh))
// init is a packed bias row, or zero. Two accumulating forms: the chains start from `out`
// (multiply_add), or they start from init as above and the finished sum is added to `out` at the
// store, out[r, n] = out[r, n] + (init[n] + Σ_k a[r, k] · P[k, n]) (multiply_add_to: the fused
// float inference step of stack.cpp, whose gates hold gx when the recurrent product arrives;
// gx + gh rounds exactly as the cell's own gx + gh of a separate gh buffer would).
//
// The micro-kernel keeps a block of RB rows × CB packets of `out` in registers (up to 6 × 4:
// 24 accumulators, 4 weight packets and a broadcast fit the 32 AVX-512 registers) and runs one
// FMA chain per output element over k = 0..K-1 in order. That order does not depend on M, the
// block an element falls in, or which thread computes it, so any split of the batch gives
// bit-identical results.
//
// In precision bfloat16 (set_bfloat16(true), float only) the products take both operands
// rounded to bfloat16 and sum in float32 (packed_bf16.hpp): the weights packed as AMX tiles,
// or as rounded floats for the float32 kernel below (the emulated kernel); the same interface.
#pragma once

#include "packed_bf16.hpp"
#include "types.hpp"

#include <type_traits>
#include <utility>

#include <algorithm>
#include <cstring>
#include <vector>

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

template <class S>
class PackedMatrix {
 public:
  using Packet = typename Eigen::internal::packet_traits<S>::type;
  static constexpr Index kP = Eigen::internal::unpacket_traits<Packet>::size;

  Index K = 0, N = 0, Np = 0;  // Np = N rounded up to kP

  static constexpr Index kPanel = 4 * kP;  // columns per panel

  // Precision of the products from the next pack on: bfloat16 operands (float only) or not.
  void set_bfloat16(bool on) {
    if constexpr (std::is_same_v<S, float>)
      bf16_ = on;
    else
      require(!on, "precision 'bfloat16' needs float32 parameters");
  }
  bool bfloat16() const { return bf16_; }
  // Does this matrix use the AMX kernel (bfloat16 on a CPU that runs it)?
  bool amx() const { return amx_; }

  // P[k, n] = W[n, k] for W row-major [N, K] (the forward use of W_hh), plus a bias row [N].
  // Panel by panel, reading W's rows in order and writing a panel (in L1) with a stride.
  void pack_transposed(const S* W, Index n_rows, Index k_cols, const S* bias) {
    resize(k_cols, n_rows);
    if (amx_) {
      pack_tiles(W, true);
      set_bias(bias);
      return;
    }
    for (Index n0 = 0; n0 < Np; n0 += kPanel) {
      const Index width = std::min(kPanel, Np - n0), valid = std::min(width, N - n0);
      S* panel = data_.data() + K * n0;
      for (Index c = 0; c < valid; ++c) {
        const S* row = W + (n0 + c) * K;
        for (Index k = 0; k < K; ++k) panel[k * width + c] = row[k];
      }
      for (Index c = valid; c < width; ++c)  // padding columns
        for (Index k = 0; k < K; ++k) panel[k * width + c] = S(0);
    }
    round_weights();
    set_bias(bias);
  }
  // P[k, n] = W[k, n] for W row-major [K, N] (the backward use of W_hh).
  void pack(const S* W, Index k_rows, Index n_cols) {
    resize(k_rows, n_cols);
    if (amx_) {
      pack_tiles(W, false);
      set_bias(nullptr);
      return;
    }
    for (Index n0 = 0; n0 < Np; n0 += kPanel) {
      const Index width = std::min(kPanel, Np - n0), valid = std::min(width, N - n0);
      S* panel = data_.data() + K * n0;
      for (Index k = 0; k < K; ++k) {
        std::memcpy(panel + k * width, W + k * N + n0, sizeof(S) * valid);
        std::fill(panel + k * width + valid, panel + (k + 1) * width, S(0));
      }
    }
    round_weights();
    set_bias(nullptr);
  }

  // out [M, N] (row stride ldo) = bias + a [M, K] (row stride lda) · P.
  void multiply(const S* a, Index lda, Index M, S* out, Index ldo) const {
    run(a, lda, M, out, ldo, Acc::kNone);
  }
  // out [M, N] += a [M, K] · P (the FMA chains start from out).
  void multiply_add(const S* a, Index lda, Index M, S* out, Index ldo) const {
    run(a, lda, M, out, ldo, Acc::kFromOut);
  }
  // out [M, columns [c0, c1)] = out + (bias + a [M, K] · P): the chains start from the bias and
  // their sums are added to out when stored (out: column c0; c0 a multiple of kPanel, c1 one
  // too or N). Not for the AMX kernel.
  void multiply_add_to(const S* a, Index lda, Index M, S* out, Index ldo, Index c0 = 0,
                       Index c1 = -1) const {
    const Index p1 = c1 < 0 ? panels() : (c1 + kPanel - 1) / kPanel;
    run(a, lda, M, out, ldo, Acc::kAddToOut, c0 / kPanel * 4, std::min(p1 * 4, Np / kP));
  }
  // out [M, N] (+)= a [M, K] · P for a given transposed, a[r, k] = at[k * ldat + r] (the
  // weight gradients dW = dGᵀ X): bfloat16 only (float32 uses Eigen's GEMM there).
  // Columns [c0, c1) only (as multiply_columns; out: column c0).
  void multiply_at(const S* at, Index ldat, Index M, S* out, Index ldo, bool acc_out, Index c0 = 0,
                   Index c1 = -1) const {
    if constexpr (std::is_same_v<S, float>) {
      require(bf16_, "PackedMatrix::multiply_at is for precision bfloat16");
      const Index p1 = c1 < 0 ? panels() : (c1 + kPanel - 1) / kPanel;
      run_bf16(at, ldat, true, M, out, ldo, acc_out ? Acc::kFromOut : Acc::kNone, c0 / kPanel * 4,
               std::min(p1 * 4, Np / kP));
    }
  }

  // The AMX kernel called directly (amx() only; float): out [M, columns [c0, c1)] (out: column
  // c0) = init + a16 · P, a16 the left operand already in bf16, rows of amx_lda() elements and
  // zero-padded to a whole tile of 16 rows and to amx_lda() columns (bf16::to_bf16's layout);
  // init = bias [N rounded up to 16] (null: zero) or, with acc_out, out itself. c0 a multiple
  // of 16, c1 one too or N. `reverse`: the blocks in the opposite order (bf16::amx_multiply).
  // For a caller that converts a left operand once and uses it for several column ranges (the
  // fused recurrence of stack.cpp); each element is the same FMA chain as through multiply().
  Index amx_lda() const { return (K + 31) / 32 * 32; }
  void amx_columns(const std::uint16_t* a16, Index M, S* out, Index ldo, Index c0, Index c1,
                   const S* bias, bool acc_out, bool reverse = false) const {
#if defined(LSTM_NATIVE_AMX)
    if constexpr (std::is_same_v<S, float>) {
      require(amx_, "PackedMatrix::amx_columns needs the AMX kernel");
      if (M <= 0 || c1 <= c0) return;
      using namespace bf16;
      bf16::amx_multiply(a16, amx_lda(), M, amx_lda() / kTileK, data16_.data(), N, c0 / kTileCols,
                         (c1 + kTileCols - 1) / kTileCols, out, ldo, bias, acc_out, reverse);
      return;
    }
#endif
    require(false, "PackedMatrix::amx_columns needs the AMX kernel");
  }
  // The same with a second product summed in the same tiles after this one (bf16::AmxSecond):
  // out = init + a16 · P + b16 · Q, Q `second` (the same N, amx() too), b16 its left operand
  // in second.amx_lda() layout (rows may start anywhere: the rows of a tile are read at the
  // stride). Only with the AMX tile kernel (bf16::product() == kAmx).
  void amx_columns_plus(const std::uint16_t* a16, Index M, const PackedMatrix& second,
                        const std::uint16_t* b16, S* out, Index ldo, Index c0, Index c1,
                        const S* bias, bool reverse = false) const {
#if defined(LSTM_NATIVE_AMX)
    if constexpr (std::is_same_v<S, float>) {
      require(amx_ && second.amx_ && second.N == N && bf16::product() == Bf16Product::kAmx,
              "PackedMatrix::amx_columns_plus needs the AMX tile kernel");
      if (M <= 0 || c1 <= c0) return;
      using namespace bf16;
      const AmxSecond s2{b16, second.amx_lda(), second.amx_lda() / kTileK, second.data16_.data()};
      bf16::tile_multiply(a16, amx_lda(), M, amx_lda() / kTileK, data16_.data(), N, c0 / kTileCols,
                          (c1 + kTileCols - 1) / kTileCols, out, ldo, bias, false, reverse, s2);
      return;
    }
#endif
    require(false, "PackedMatrix::amx_columns_plus needs the AMX kernel");
  }

  // The same by unit groups with the cell as the epilogue (bf16::tile_multiply_units): the
  // columns are G gate blocks of H = N / G units (H a multiple of 16); for the groups of 16
  // units q in [q0, q1), buf_q = bias + a16 · P + b16 · Q on the group's columns of every
  // block, then epi(q, r, row of buf_q) for each row r < M. buf: 2 x M rounded up to 16 x G*16
  // floats of scratch.
  template <class Epi>
  void amx_units_plus(const std::uint16_t* a16, Index M, const PackedMatrix& second,
                      const std::uint16_t* b16, Index G, Index q0, Index q1, const S* bias,
                      bool reverse, S* buf, Epi&& epi) const {
#if defined(LSTM_NATIVE_AMX)
    if constexpr (std::is_same_v<S, float>) {
      require(amx_ && second.amx_ && second.N == N && N % (G * 16) == 0 &&
                  bf16::product() == Bf16Product::kAmx,
              "PackedMatrix::amx_units_plus needs the AMX tile kernel and whole unit groups");
      using namespace bf16;
      const AmxSecond s2{b16, second.amx_lda(), second.amx_lda() / kTileK, second.data16_.data()};
      bf16::tile_multiply_units(a16, amx_lda(), M, amx_lda() / kTileK, data16_.data(), G,
                                N / G / kTileCols, q0, q1, bias, s2, reverse, buf,
                                std::forward<Epi>(epi));
      return;
    }
#endif
    require(false, "PackedMatrix::amx_units_plus needs the AMX kernel");
  }

  // Column panels (kPanel columns each, the last possibly narrower), and multiply() restricted
  // to the columns of panels [p0, p1), written to `out` from its column 0 on (out[r, n - p0 *
  // kPanel]): for splitting one product across threads by columns, which changes no result
  // (each element is still one FMA chain).
  Index panels() const { return (Np + kPanel - 1) / kPanel; }
  void multiply_panels(const S* a, Index lda, Index M, S* out, Index ldo, Index p0,
                       Index p1) const {
    run(a, lda, M, out, ldo, Acc::kNone, p0 * 4, std::min(p1 * 4, Np / kP));
  }
  // The same for columns [c0, c1): c0 a multiple of kPanel, c1 one too or N (out: column c0).
  void multiply_columns(const S* a, Index lda, Index M, S* out, Index ldo, Index c0,
                        Index c1) const {
    multiply_panels(a, lda, M, out, ldo, c0 / kPanel, (c1 + kPanel - 1) / kPanel);
  }

 private:
  // What a product does with `out`: overwrites it (chains from the bias), accumulates into it
  // (chains from out), or adds its finished sums to it (chains from the bias, out + sum).
  enum class Acc { kNone, kFromOut, kAddToOut };

  // Weights beyond this many bytes do not stay in a core's L2 (2 MiB on the Xeon measured, with
  // the rest of a step's data) from one step to the next: each step streams them from L3, and a
  // row block reading a panel's weights first waits for them (it consumes 256 bytes per 24
  // FMAs, faster than L3 delivers to one core: the kernel ran at 65 % of peak at H = 512
  // against 75 % at H = 256). So while a panel is computed, its row blocks prefetch the next
  // panel into L2 (prefetcht1), a slice of its lines each, one line per k.
  static constexpr Index kPrefetchBytes = Index(1) << 20;
  struct Pf {  // a row block's prefetch slice from p: line (k * step) >> 16 at step k
    const char* p;
    Index step;  // (lines of the slice << 16) / K; 0: no prefetch
  };

  // Rows are cut into ceil(M / 6) blocks of as equal a size as possible (M = 32: 6,6,5,5,5,5
  // rather than 6,6,6,6,6,2), since a thin block reuses each weight packet it loads for fewer
  // FMAs. The split does not change any result (one FMA chain per element, see above).
  // Column packets [j0, j1) (j0 a multiple of 4, i.e. a panel start; -1: to the end); `out`
  // points at column j0 * kP.
  void run(const S* a, Index lda, Index M, S* out, Index ldo, Acc acc_out, Index j0 = 0,
           Index j1 = -1) const {
    const Index nb = j1 < 0 ? Np / kP : j1;
    if constexpr (std::is_same_v<S, float>) {
      if (bf16_) return run_bf16(a, lda, false, M, out, ldo, acc_out, j0, nb);
    }
    run_f(a, lda, M, out, ldo, acc_out, j0, nb);
  }

  // The bfloat16 products (packed_bf16.hpp): the left operand converted to bf16 (AMX) or
  // rounded to bf16 as floats (emulated) in per-thread scratch, then the AMX kernel or the
  // float32 one on the rounded weights.
  void run_bf16(const S* a, Index lda, bool transposed, Index M, S* out, Index ldo, Acc acc_out,
                Index j0, Index nb) const {
    if (M <= 0) return;
#if defined(LSTM_NATIVE_AMX)
    if (amx_) {
      using namespace bf16;
      const Index Kt = (K + kTileK - 1) / kTileK, Nt = (N + kTileCols - 1) / kTileCols;
      const Index Mp = (M + kTileRows - 1) / kTileRows * kTileRows, lda16 = Kt * kTileK;
      std::uint16_t* a16 = scratch<std::uint16_t>(static_cast<std::size_t>(Mp * lda16));
      to_bf16(a, lda, transposed, M, K, Mp, lda16, a16);
      const Index nt0 = j0 * kP / kTileCols,
                  nt1 = std::min(Nt, (nb * kP + kTileCols - 1) / kTileCols);
      require(acc_out != Acc::kAddToOut, "PackedMatrix: no multiply_add_to with the AMX kernel");
      amx_multiply(a16, lda16, M, Kt, data16_.data(), N, nt0, nt1, out, ldo,
                   has_bias_ ? bias_.data() : nullptr, acc_out == Acc::kFromOut);
      return;
    }
#endif
    S* ar = bf16::scratch<S>(static_cast<std::size_t>(M * K));
    bf16::to_rounded(a, lda, transposed, M, K, ar);
    run_f(ar, K, M, out, ldo, acc_out, j0, nb);
  }

  void run_f(const S* a, Index lda, Index M, S* out, Index ldo, Acc acc_out, Index j0,
             Index nb) const {
    const Index blocks = (M + 5) / 6;
    const bool prefetch = K * Np * Index(sizeof(S)) > kPrefetchBytes;
    for (Index j = j0; j < nb; j += 4) {
      const Index cb = std::min<Index>(4, nb - j);
      // The panel after this one in [j0, nb) (after the last: the first, which the next call
      // reads first), prefetched into L2 by this panel's row blocks, a slice of lines each.
      const Index jn = j + 4 < nb ? j + 4 : j0;
      const char* next = reinterpret_cast<const char*>(data_.data() + K * jn * kP);
      const Index lines =
          prefetch && jn != j ? K * std::min<Index>(4, nb - jn) * kP * Index(sizeof(S)) / 64 : 0;
      for (Index q = 0, r = 0; q < blocks; ++q) {
        const Index rb = (M - r) / (blocks - q) + ((M - r) % (blocks - q) != 0);
        const S* aq = a + r * lda;
        S* oq = out + r * ldo + (j - j0) * kP;  // this block's first output column
        const Index l0 = lines * q / blocks, l1 = lines * (q + 1) / blocks;
        const Pf pf{next + l0 * 64, ((l1 - l0) << 16) / K};
        with_count<6>(rb, [&](auto rows) {
          with_count<4>(cb, [&](auto cols) {
            constexpr int RB = decltype(rows)::value, CB = decltype(cols)::value;
            if (pf.step > 0)
              block<RB, CB, true>(aq, lda, oq, ldo, j, acc_out, pf);
            else
              block<RB, CB, false>(aq, lda, oq, ldo, j, acc_out, pf);
          });
        });
        r += rb;
      }
    }
  }

  // Panel j0 starts at K * j0 * kPanel and is [K, min(kPanel, Np - j0*kPanel)]; every
  // element is written by the pack functions, so resizing does not clear.
  void resize(Index k, Index n) {
    K = k;
    N = n;
    Np = (n + kP - 1) / kP * kP;
    amx_ = bf16_ && bf16::kHaveAmx && bf16::kernel() == Bf16Kernel::kTiles;
    if (amx_) {
      data_.clear();
    } else {
      data16_.clear();
      tiles_k_ = tiles_n_ = -1;
      data_.resize(static_cast<std::size_t>(K * Np));
    }
    // (AMX reads the bias row by whole tiles of 16)
    bias_.assign(static_cast<std::size_t>(std::max<Index>(Np, (n + 15) / 16 * 16)), S(0));
  }
  // Emulated bfloat16: the packed float weights rounded to bf16.
  void round_weights() {
    if constexpr (std::is_same_v<S, float>)
      if (bf16_)
        for (S& v : data_) v = bf16::rounded(v);
  }
  // AMX: P[k, n] as bf16 tiles (packed_bf16.hpp), zero-padded to whole tiles, P = Wᵀ for W
  // [N, K] (by_column: W read along k for a fixed n, the transposed forward packing) or P = W
  // [K, N] (rows k, k+1 of W read in step and written as one tile row of pairs).
  void pack_tiles(const S* W, bool by_column) {
    const Index Kt = (K + 31) / 32, Nt = (N + 15) / 16;
    // (the padding is never written: zeroed only when the sizes change)
    if (tiles_k_ != K || tiles_n_ != N) {
      data16_.assign(static_cast<std::size_t>(Kt * Nt * 512), std::uint16_t(0));
      tiles_k_ = K;
      tiles_n_ = N;
    }
    std::uint16_t* d = data16_.data();
    if (by_column) {  // W [N, K]: tile (n / 16, k / 32), row (k % 32) / 2, pair n % 16
      Index n_whole = 0, k_whole = 0;
#if defined(EIGEN_VECTORIZE_AVX512)
      if constexpr (std::is_same_v<S, float>) {
        // Whole tiles at once: W's row n, k0..k0+31, rounded and narrowed in order, is the 16
        // (k, k+1) pairs of column n % 16 in tile rows 0..15, i.e. 16 32-bit lanes scattered
        // with a stride of one tile row (16 lanes); bit for bit as the scalar loop below.
        n_whole = N / 16 * 16;
        k_whole = K / 32 * 32;
        const __m512i rows = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(16));
        for (Index n = 0; n < n_whole; ++n)
          for (Index k0 = 0; k0 < k_whole; k0 += 32) {
            const float* w = W + n * K + k0;
            const __m256i lo = _mm512_cvtepi32_epi16(bf16::round_bits(_mm512_loadu_ps(w)));
            const __m256i hi = _mm512_cvtepi32_epi16(bf16::round_bits(_mm512_loadu_ps(w + 16)));
            const __m512i pairs = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            std::uint16_t* tile = d + ((n / 16) * Kt + k0 / 32) * 512 + (n % 16) * 2;
            _mm512_i32scatter_epi32(tile, rows, pairs, 4);
          }
      }
#endif
      for (Index n = 0; n < N; ++n)
        for (Index k = (n < n_whole ? k_whole : 0); k < K; ++k)
          d[((n / 16) * Kt + k / 32) * 512 + ((k % 32) / 2) * 32 + (n % 16) * 2 + (k % 2)] =
              bf16::round(W[n * K + k]);
      return;
    }
    auto get = [&](Index k, Index n) { return W[k * N + n]; };  // W [K, N]
    for (Index k = 0; k < K; k += 2) {
      const bool two = k + 1 < K;
      std::uint16_t* row = d + (k / 32) * 512 + ((k % 32) / 2) * 32;  // tile row, column tile 0
      for (Index nt = 0; nt < Nt; ++nt) {
        std::uint16_t* e = row + nt * Kt * 512;
        const Index n0 = nt * 16;
        if (n0 + 16 <= N && two) {  // a whole tile row: rows k and k+1, pairs interleaved
#if defined(EIGEN_VECTORIZE_AVX512)
          if constexpr (std::is_same_v<S, float>) {
            // (16 columns of each row at once: lane c = bf16(row k) | bf16(row k+1) << 16, the
            // tile row's pair c; dG [T*n, G*H] of the weight gradients is packed this way
            // every training step)
            _mm512_storeu_si512(e, bf16::round_pairs(W + k * N + n0, W + (k + 1) * N + n0));
            continue;
          }
#endif
          alignas(64) float r0[16], r1[16];
          for (Index c = 0; c < 16; ++c) {
            r0[c] = get(k, n0 + c);
            r1[c] = get(k + 1, n0 + c);
          }
          for (Index c = 0; c < 16; ++c) {
            e[2 * c] = bf16::round(r0[c]);
            e[2 * c + 1] = bf16::round(r1[c]);
          }
          continue;
        }
        for (Index c = 0; c < std::min<Index>(16, N - n0); ++c) {
          e[2 * c] = bf16::round(get(k, n0 + c));
          e[2 * c + 1] = two ? bf16::round(get(k + 1, n0 + c)) : std::uint16_t(0);
        }
      }
    }
  }

  void set_bias(const S* bias) {
    has_bias_ = bias != nullptr;
    if (bias) std::memcpy(bias_.data(), bias, sizeof(S) * N);
  }

  // RB rows × CB packets starting at column packet j (the first packet of a panel); `out`
  // points at that column of the block's first row.
  template <int RB, int CB, bool kPf>
  void block(const S* a, Index lda, S* out, Index ldo, Index j, Acc acc_out, const Pf& pf) const {
    using namespace Eigen::internal;
    Packet acc[RB][CB];
    const S* w = data_.data() + K * j * kP;  // panel of width CB * kP
    const Index col0 = j * kP;
    for (int c = 0; c < CB; ++c) {
      if (acc_out ==
          Acc::kFromOut) {  // start from out (a partial last packet through a zero-padded copy)
        for (int r = 0; r < RB; ++r) {
          const Index col = col0 + c * kP;
          if (col + kP <= N) {
            acc[r][c] = ploadu<Packet>(out + r * ldo + c * kP);
          } else {
            alignas(64) S tmp[kP] = {};
            std::memcpy(tmp, out + r * ldo + c * kP, sizeof(S) * (N - col));
            acc[r][c] = pload<Packet>(tmp);
          }
        }
        continue;
      }
      const Packet b = has_bias_ ? ploadu<Packet>(bias_.data() + (j + c) * kP) : pzero(Packet());
      for (int r = 0; r < RB; ++r) acc[r][c] = b;
    }
    for (Index k = 0; k < K; ++k, w += CB * kP) {
      // kPf: line (k * step) >> 16 of the prefetch slice, one per k, unconditionally (a test
      // here makes the compiler split the loop and spill the accumulators)
      if constexpr (kPf) __builtin_prefetch(pf.p + ((k * pf.step) >> 16) * 64, 0, 2);
      Packet wv[CB];
      for (int c = 0; c < CB; ++c) wv[c] = ploadu<Packet>(w + c * kP);
      for (int r = 0; r < RB; ++r) {
        const Packet av = pset1<Packet>(a[r * lda + k]);
        for (int c = 0; c < CB; ++c) acc[r][c] = pmadd(av, wv[c], acc[r][c]);
      }
    }
    // Store (kAddToOut: out + sum); the last packet of a row may stick out past N (padding):
    // go through a stack buffer so that `out` is never read or written beyond its N columns.
    const bool add = acc_out == Acc::kAddToOut;
    for (int r = 0; r < RB; ++r)
      for (int c = 0; c < CB; ++c) {
        const Index col = col0 + c * kP;
        S* dst = out + r * ldo + c * kP;
        if (col + kP <= N) {
          pstoreu(dst, add ? padd(ploadu<Packet>(dst), acc[r][c]) : acc[r][c]);
        } else {
          alignas(64) S tmp[kP] = {};
          if (add) std::memcpy(tmp, dst, sizeof(S) * (N - col));
          pstoreu(tmp, add ? padd(pload<Packet>(tmp), acc[r][c]) : acc[r][c]);
          std::memcpy(dst, tmp, sizeof(S) * (N - col));
        }
      }
  }

  std::vector<S, Eigen::aligned_allocator<S>> data_, bias_;
  std::vector<std::uint16_t, Eigen::aligned_allocator<std::uint16_t>> data16_;  // AMX tiles
  bool has_bias_ = false;
  bool bf16_ = false, amx_ = false;
  Index tiles_k_ = -1, tiles_n_ = -1;  // the sizes data16_ holds tiles for
};

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
