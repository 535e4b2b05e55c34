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
// init is a packed bias row, or zero.
//
// The micro-kernel keeps a block of RB rows × CB packets of `out` in registers (up to 6 × 4:
// 24 accumulators, 4 weight packets and a broadcast fit the 32 AVX-512 registers) and runs one
// FMA chain per output element over k = 0..K-1 in order. That order does not depend on M, the
// block an element falls in, or which thread computes it, so any split of the batch gives
// bit-identical results.
#pragma once

#include "types.hpp"

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

  // P[k, n] = W[n, k] for W row-major [N, K] (the forward use of W_hh), plus a bias row [N].
  // Panel by panel, reading W's rows in order and writing a panel (in L1) with a stride.
  void pack_transposed(const S* W, Index n_rows, Index k_cols, const S* bias) {
    resize(k_cols, n_rows);
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
    set_bias(bias);
  }
  // P[k, n] = W[k, n] for W row-major [K, N] (the backward use of W_hh).
  void pack(const S* W, Index k_rows, Index n_cols) {
    resize(k_rows, n_cols);
    for (Index n0 = 0; n0 < Np; n0 += kPanel) {
      const Index width = std::min(kPanel, Np - n0), valid = std::min(width, N - n0);
      S* panel = data_.data() + K * n0;
      for (Index k = 0; k < K; ++k) {
        std::memcpy(panel + k * width, W + k * N + n0, sizeof(S) * valid);
        std::fill(panel + k * width + valid, panel + (k + 1) * width, S(0));
      }
    }
    set_bias(nullptr);
  }

  // out [M, N] (row stride ldo) = bias + a [M, K] (row stride lda) · P.
  void multiply(const S* a, Index lda, Index M, S* out, Index ldo) const {
    run(a, lda, M, out, ldo, false);
  }
  // out [M, N] += a [M, K] · P (the FMA chains start from out).
  void multiply_add(const S* a, Index lda, Index M, S* out, Index ldo) const {
    run(a, lda, M, out, ldo, true);
  }

  // Column panels (kPanel columns each, the last possibly narrower), and multiply() restricted
  // to the columns of panels [p0, p1), written to `out` from its column 0 on (out[r, n - p0 *
  // kPanel]): for splitting one product across threads by columns, which changes no result
  // (each element is still one FMA chain).
  Index panels() const { return (Np + kPanel - 1) / kPanel; }
  void multiply_panels(const S* a, Index lda, Index M, S* out, Index ldo, Index p0,
                       Index p1) const {
    run(a, lda, M, out, ldo, false, p0 * 4, std::min(p1 * 4, Np / kP));
  }
  // The same for columns [c0, c1): c0 a multiple of kPanel, c1 one too or N (out: column c0).
  void multiply_columns(const S* a, Index lda, Index M, S* out, Index ldo, Index c0,
                        Index c1) const {
    multiply_panels(a, lda, M, out, ldo, c0 / kPanel, (c1 + kPanel - 1) / kPanel);
  }

 private:
  // Rows are cut into ceil(M / 6) blocks of as equal a size as possible (M = 32: 6,6,5,5,5,5
  // rather than 6,6,6,6,6,2), since a thin block reuses each weight packet it loads for fewer
  // FMAs. The split does not change any result (one FMA chain per element, see above).
  // Column packets [j0, j1) (j0 a multiple of 4, i.e. a panel start; -1: to the end); `out`
  // points at column j0 * kP.
  void run(const S* a, Index lda, Index M, S* out, Index ldo, bool acc_out, Index j0 = 0,
           Index j1 = -1) const {
    const Index nb = j1 < 0 ? Np / kP : j1;
    const Index blocks = (M + 5) / 6;
    for (Index j = j0; j < nb; j += 4) {
      const Index cb = std::min<Index>(4, nb - j);
      for (Index q = 0, r = 0; q < blocks; ++q) {
        const Index rb = (M - r) / (blocks - q) + ((M - r) % (blocks - q) != 0);
        const S* aq = a + r * lda;
        S* oq = out + r * ldo + (j - j0) * kP;  // this block's first output column
        switch (rb) {
          case 6:
            block_cb<6>(cb, aq, lda, oq, ldo, j, acc_out);
            break;
          case 5:
            block_cb<5>(cb, aq, lda, oq, ldo, j, acc_out);
            break;
          case 4:
            block_cb<4>(cb, aq, lda, oq, ldo, j, acc_out);
            break;
          case 3:
            block_cb<3>(cb, aq, lda, oq, ldo, j, acc_out);
            break;
          case 2:
            block_cb<2>(cb, aq, lda, oq, ldo, j, acc_out);
            break;
          default:
            block_cb<1>(cb, aq, lda, oq, ldo, j, acc_out);
            break;
        }
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
    data_.resize(static_cast<std::size_t>(K * Np));
    bias_.assign(static_cast<std::size_t>(Np), S(0));
  }
  void set_bias(const S* bias) {
    has_bias_ = bias != nullptr;
    if (bias) std::memcpy(bias_.data(), bias, sizeof(S) * N);
  }

  template <int RB>
  void block_cb(Index cb, const S* a, Index lda, S* out, Index ldo, Index j, bool acc_out) const {
    switch (cb) {
      case 4:
        block<RB, 4>(a, lda, out, ldo, j, acc_out);
        break;
      case 3:
        block<RB, 3>(a, lda, out, ldo, j, acc_out);
        break;
      case 2:
        block<RB, 2>(a, lda, out, ldo, j, acc_out);
        break;
      default:
        block<RB, 1>(a, lda, out, ldo, j, acc_out);
        break;
    }
  }

  // RB rows × CB packets starting at column packet j (the first packet of a panel); `out`
  // points at that column of the block's first row.
  template <int RB, int CB>
  void block(const S* a, Index lda, S* out, Index ldo, Index j, bool acc_out) const {
    using namespace Eigen::internal;
    Packet acc[RB][CB];
    const S* w = data_.data() + K * j * kP;  // panel of width CB * kP
    const Index col0 = j * kP;
    for (int c = 0; c < CB; ++c) {
      if (acc_out) {  // start from out (a partial last packet through a zero-padded copy)
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
      Packet wv[CB];
      for (int c = 0; c < CB; ++c) wv[c] = ploadu<Packet>(w + c * kP);
      for (int r = 0; r < RB; ++r) {
        const Packet av = pset1<Packet>(a[r * lda + k]);
        for (int c = 0; c < CB; ++c) acc[r][c] = pmadd(av, wv[c], acc[r][c]);
      }
    }
    // Store; the last packet of a row may stick out past N (padding): spill it through a
    // stack buffer so that `out` is never written beyond its N columns.
    for (int r = 0; r < RB; ++r)
      for (int c = 0; c < CB; ++c) {
        const Index col = col0 + c * kP;
        S* dst = out + r * ldo + c * kP;
        if (col + kP <= N) {
          pstoreu(dst, acc[r][c]);
        } else {
          alignas(64) S tmp[kP];
          pstoreu(tmp, acc[r][c]);
          std::memcpy(dst, tmp, sizeof(S) * (N - col));
        }
      }
  }

  std::vector<S, Eigen::aligned_allocator<S>> data_, bias_;
  bool has_bias_ = false;
};

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
