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
// unit_tensors() (layout.cpp) is the one list of a unit's tensors: the layout is built from
// it, and count_params() counts from it (in checked arithmetic, without building anything), so
// the two cannot disagree. Common to all kernel sets (isa.hpp).
#pragma once

#include "cell_facts.hpp"
#include "common.hpp"

#include <string>
#include <vector>

namespace lstm_native {

// Parameters of one unit with input width Din (checked: TooLarge beyond 2^63).
Count unit_param_count(CellKind cell, Index Din, Index H, bool bias);

// Parameters of L layers × dirs directions: layer 0 reads input_size, every later layer dirs*H
// (so layers 1..L-1 are alike and are counted once, times L-1).
Count count_params(CellKind cell, Index input_size, Index H, Index L, Index dirs, bool bias);

struct ParamLayout {
  struct Tensor {
    std::string name;
    Index offset;
    Index rows;
    Index cols;  // 0 for a vector
    Index size() const { return cols ? rows * cols : rows; }
  };
  struct Unit {
    Index in;                    // D_l
    Index w_ih, w_hh;            // offsets
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
              Index dirs = 1);
};

}  // namespace lstm_native
