// ParamLayout and the parameter counts (layout.hpp): common to all kernel sets, compiled once.
#include "lstm_native/layout.hpp"

namespace lstm_native {

namespace {
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
}  // namespace

Count unit_param_count(CellKind cell, Index Din, Index H, bool bias) {
  Count n = 0;
  unit_tensors(cell, Din, H, bias,
               [&](const char*, Count rows, Count cols) { n += cols.v ? rows * cols : rows; });
  return n;
}

Count count_params(CellKind cell, Index input_size, Index H, Index L, Index dirs, bool bias) {
  Count n = Count(dirs) * unit_param_count(cell, input_size, H, bias);
  if (L > 1) n += Count(L - 1) * Count(dirs) * unit_param_count(cell, (Count(dirs) * H).v, H, bias);
  return n;
}

ParamLayout::ParamLayout(CellKind cell, Index input_size, Index hidden_size, Index num_layers,
                         bool bias, Index dirs) {
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
        if (name == "weight_ih_l")
          u.w_ih = off;
        else if (name == "weight_hh_l")
          u.w_hh = off;
        else if (name == "bias_ih_l")
          u.b_ih = off;
        else if (name == "bias_hh_l")
          u.b_hh = off;
        else if (name == "weight_ch_l")
          u.w_ch = off;
        else if (u.cw < 0)
          u.cw = off;  // the first of the contiguous peepholes
      });
      u.size = size - u.offset;
      units.push_back(u);
    }
}

}  // namespace lstm_native
