// ParamLayout: where each named parameter lives in the one flat parameter buffer.
//
// Per layer k, in PyTorch's order and with PyTorch's names and row-major shapes:
//   weight_ih_l{k} [G*H, D_k]   D_0 = input_size, D_k = H for k > 0
//   weight_hh_l{k} [G*H, H]
//   bias_ih_l{k}   [G*H]        (only with bias)
//   bias_hh_l{k}   [G*H]        (only with bias)
//   weight_ci_l{k}, weight_cf_l{k}, weight_co_l{k} [H]   (peephole cells: contiguous)
//   weight_ch_l{k} [H, H]       (cells with a cell GEMM: ungated, cell_as_input)
// Gradients and optimizer moments use the same layout, so they are flat buffers of `size` too.
#pragma once

#include "cells.hpp"
#include "types.hpp"

#include <string>
#include <vector>

namespace lstm_native {

struct ParamLayout {
  struct Tensor {
    std::string name;
    Index offset;
    Index rows;
    Index cols;  // 0 for a vector
    Index size() const { return cols ? rows * cols : rows; }
  };
  struct Layer {
    Index in;                 // D_k
    Index w_ih, w_hh;         // offsets
    Index b_ih = -1, b_hh = -1;  // offsets, -1 without bias
    Index cw = -1;               // the cell's [H] parameter vectors, -1 if none
    Index w_ch = -1;             // W_ch, -1 if the cell has no cell GEMM
  };

  std::vector<Tensor> tensors;
  std::vector<Layer> layers;
  Index size = 0;

  ParamLayout() = default;
  ParamLayout(CellKind cell, Index input_size, Index hidden_size, Index num_layers, bool bias) {
    const Index GH = num_gates(cell) * hidden_size;
    const int n_cw = dispatch_cell(cell, [](auto c) { return decltype(c)::kCellParams; });
    const bool cell_gemm =
        dispatch_cell(cell, [](auto c) { return decltype(c)::kCellGemm != kNoCellGemm; });
    static const char* const kPeepNames[] = {"weight_ci_l", "weight_cf_l", "weight_co_l"};
    auto add = [&](std::string name, Index rows, Index cols) {
      tensors.push_back({std::move(name), size, rows, cols});
      size += tensors.back().size();
      return tensors.back().offset;
    };
    for (Index k = 0; k < num_layers; ++k) {
      const std::string s = std::to_string(k);
      Layer L;
      L.in = k == 0 ? input_size : hidden_size;
      L.w_ih = add("weight_ih_l" + s, GH, L.in);
      L.w_hh = add("weight_hh_l" + s, GH, hidden_size);
      if (bias) {
        L.b_ih = add("bias_ih_l" + s, GH, 0);
        L.b_hh = add("bias_hh_l" + s, GH, 0);
      }
      for (int q = 0; q < n_cw; ++q) {
        const Index off = add(kPeepNames[q] + s, hidden_size, 0);
        if (q == 0) L.cw = off;
      }
      if (cell_gemm) L.w_ch = add("weight_ch_l" + s, hidden_size, hidden_size);
      layers.push_back(L);
    }
  }
};

}  // namespace lstm_native
