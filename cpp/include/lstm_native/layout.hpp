// ParamLayout: where each named parameter of a stack of recurrent layers lives in the one flat
// parameter buffer.
//
// Units u = l*dirs + d (layer l, direction d: 1 = reverse) in order l0, l0_reverse, l1, ...;
// per unit, in PyTorch's order and with PyTorch's names (suffix "_reverse" for d = 1) and
// row-major shapes:
//   weight_ih_l{l} [G*H, D_l]   D_0 = input_size, D_l = dirs*H for l > 0
//   weight_hh_l{l} [G*H, H]
//   bias_ih_l{l}   [G*H]        (only with bias)
//   bias_hh_l{l}   [G*H]        (only with bias)
//   weight_ci_l{l}, weight_cf_l{l}, weight_co_l{l} [H]   (peephole cells: contiguous)
//   weight_ch_l{l} [H, H]       (cells with a cell GEMM: ungated, cell_as_input)
// Gradients and optimizer moments use the same layout, so they are flat buffers of `size` too.
//
// unit_tensors() is the one list of a unit's tensors: the layout is built from it, and
// count_params() counts from it (in checked arithmetic, without building anything), so the two
// cannot disagree.
#pragma once

#include "cells.hpp"
#include "types.hpp"

#include <string>
#include <vector>

namespace lstm_native {

// Calls f(name without the layer suffix, rows, cols) for each tensor of one unit with input
// width Din, in layout order (cols = 0 for a vector).
template <class F>
void unit_tensors(CellKind cell, Index Din, Index H, bool bias, F&& f) {
  const CellShape cs = cell_shape(cell);
  const Count GH = Count(cs.gates) * H;
  static const char* const kPeepNames[] = {"weight_ci_l", "weight_cf_l", "weight_co_l"};
  f("weight_ih_l", GH, Count(Din));
  f("weight_hh_l", GH, Count(H));
  if (bias) {
    f("bias_ih_l", GH, Count(0));
    f("bias_hh_l", GH, Count(0));
  }
  for (int q = 0; q < cs.cell_params; ++q) f(kPeepNames[q], Count(H), Count(0));
  if (cs.cell_gemm) f("weight_ch_l", Count(H), Count(H));
}

// Parameters of one unit with input width Din (checked: TooLarge beyond 2^63).
inline Count unit_param_count(CellKind cell, Index Din, Index H, bool bias) {
  Count n = 0;
  unit_tensors(cell, Din, H, bias, [&](const char*, Count rows, Count cols) {
    n += cols.v ? rows * cols : rows;
  });
  return n;
}

// Parameters of L layers × dirs directions: layer 0 reads input_size, every later layer dirs*H
// (so layers 1..L-1 are alike and are counted once, times L-1).
inline Count count_params(CellKind cell, Index input_size, Index H, Index L, Index dirs,
                          bool bias) {
  Count n = Count(dirs) * unit_param_count(cell, input_size, H, bias);
  if (L > 1)
    n += Count(L - 1) * Count(dirs) * unit_param_count(cell, (Count(dirs) * H).v, H, bias);
  return n;
}

struct ParamLayout {
  struct Tensor {
    std::string name;
    Index offset;
    Index rows;
    Index cols;  // 0 for a vector
    Index size() const { return cols ? rows * cols : rows; }
  };
  struct Unit {
    Index in;                 // D_l
    Index w_ih, w_hh;         // offsets
    Index b_ih = -1, b_hh = -1;  // offsets, -1 without bias
    Index cw = -1;               // the cell's [H] parameter vectors, -1 if none
    Index w_ch = -1;             // W_ch, -1 if the cell has no cell GEMM
    Index offset = 0, size = 0;  // the unit's range of the flat buffer
  };

  std::vector<Tensor> tensors;
  std::vector<Unit> units;  // [L * dirs]
  Index size = 0;

  ParamLayout() = default;
  ParamLayout(CellKind cell, Index input_size, Index hidden_size, Index num_layers, bool bias,
              Index dirs = 1) {
    const Index H = hidden_size;
    for (Index l = 0; l < num_layers; ++l)
      for (Index d = 0; d < dirs; ++d) {
        const std::string suffix = std::to_string(l) + (d ? "_reverse" : "");
        Unit u;
        u.in = l == 0 ? input_size : dirs * H;
        u.offset = size;
        unit_tensors(cell, u.in, H, bias, [&](const std::string& name, Count rows, Count cols) {
          const Index off = size;
          tensors.push_back({name + suffix, off, rows.v, cols.v});
          size += tensors.back().size();
          if (name == "weight_ih_l") u.w_ih = off;
          else if (name == "weight_hh_l") u.w_hh = off;
          else if (name == "bias_ih_l") u.b_ih = off;
          else if (name == "bias_hh_l") u.b_hh = off;
          else if (name == "weight_ch_l") u.w_ch = off;
          else if (u.cw < 0) u.cw = off;  // the first of the contiguous peepholes
        });
        u.size = size - u.offset;
        units.push_back(u);
      }
  }
};

}  // namespace lstm_native
