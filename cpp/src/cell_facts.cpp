// Each cell kind's structure, read off the cell types of cells.hpp (cell_facts.hpp). Compiled
// once, with the common code (its instance of cells.hpp is the namespace isa_common: only the
// constants of the cell types are read here, no kernel is instantiated).
#include "lstm_native/cell_facts.hpp"

#include "lstm_native/cells.hpp"

namespace lstm_native {

CellShape cell_shape(CellKind k) {
  return dispatch_cell(k, [](auto c) {
    using C = decltype(c);
    return CellShape{C::kGates,       C::kExtra,    C::kScratch,    C::kCellParams,
                     C::kForgetBlock, C::kHasCell,  C::kSeparateGh, C::kCellGemm,
                     C::kKeep,        C::kUnitwise, C::kFused};
  });
}

std::string cell_blocks(CellKind k) {
  return dispatch_cell(k, [](auto c) { return decltype(c)::blocks(); });
}

const char* const* cell_names() {
  static const char* const names[] = {"lstm",
                                      "gru",
                                      "rnn_tanh",
                                      "rnn_relu",
                                      "lstm_peephole",
                                      "lstm_1997",
                                      "cifg",
                                      "no_input_gate",
                                      "no_output_gate",
                                      "no_input_activation",
                                      "no_output_activation",
                                      "ungated",
                                      "cell_as_input",
                                      nullptr};
  return names;
}

CellKind parse_cell(const std::string& given) {
  std::string s = given;
  for (const auto& a : kCellAliases)
    if (s == a.alias) s = a.name;
  for (int i = 0; cell_names()[i]; ++i)
    if (s == cell_names()[i]) return static_cast<CellKind>(i);
  std::string all;
  for (int i = 0; cell_names()[i]; ++i)
    all += std::string(i ? ", " : "") + "'" + cell_names()[i] + "'";
  for (const auto& a : kCellAliases) all += std::string(", '") + a.alias + "'";
  throw ArgumentError("cell must be one of " + all + ", got '" + given + "'");
}

}  // namespace lstm_native
