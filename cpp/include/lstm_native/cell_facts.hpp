// The cells as the rest of the core and the Python layer see them, without their math: the
// kinds, their names, and each kind's structure (gate count, what it saves and holds). The
// structure is read off the cell types themselves (cells.hpp) in cell_facts.cpp, once, so that
// no fact about a cell is written twice; the math is compiled per kernel set (isa.hpp).
#pragma once

#include "common.hpp"

#include <string>

namespace lstm_native {

enum class CellKind : int {
  kLstm = 0,
  kGru,
  kRnnTanh,
  kRnnRelu,
  // LSTM variants (Greff et al., "LSTM: A Search Space Odyssey") and the two alternatives of
  // the "why gates?" question; see the cell structs in cells.hpp for their equations.
  kLstmPeephole,
  kLstm1997,
  kCifg,
  kNoInputGate,
  kNoOutputGate,
  kNoInputActivation,
  kNoOutputActivation,
  kUngated,
  kCellAsInput,
};

// How a cell keeps its carried state from step to step, the factor diagnostics multiply along
// the way (python/lstm_native/diagnostics.py): the "f" block, 1 - the "i" block (coupled
// gates), 1 (no forget gate), the GRU's update gate "z", or none (the state is rewritten).
enum class Keep : int { kNone = 0, kForget, kOneMinusInput, kOne, kUpdate };

// A cell's structure as plain values (what cell_info reports, and what the layout and the
// workspace sizes read): gates G, values saved per unit besides the gates, scratch values per
// unit, [H] parameter vectors, the forget gate's block (-1: none), whether it has a cell state,
// a separate dL/dgh, a W_ch product, how it keeps its state, whether its pointwise math
// reads only unit j of every input (then a step may run it on a slice of the units), and
// whether an inference runs it in the fused step (stack.cpp forward_layer_fused).
struct CellShape {
  int gates, extra, scratch, cell_params, forget_block;
  bool has_cell, separate_gh, cell_gemm;
  Keep keep;
  bool unitwise, fused;
};
CellShape cell_shape(CellKind k);
std::string cell_blocks(CellKind k);  // gate block names in storage order, one letter each
inline int num_gates(CellKind k) {
  return cell_shape(k).gates;
}
inline bool has_cell_state(CellKind k) {
  return cell_shape(k).has_cell;
}

// Names as the Python side spells them, in CellKind order (null-terminated); kCellAliases:
// other accepted spellings.
const char* const* cell_names();
struct CellAlias {
  const char* alias;
  const char* name;
};
inline constexpr CellAlias kCellAliases[] = {{"rnn", "rnn_tanh"}};
inline const char* cell_name(CellKind k) {
  return cell_names()[static_cast<int>(k)];
}
CellKind parse_cell(const std::string& given);  // ArgumentError naming the accepted names

}  // namespace lstm_native
