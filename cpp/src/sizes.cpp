// Buffer sizes and the cutting of batches into parts (sizes.hpp); compiled once.
#include "lstm_native/sizes.hpp"

#include <algorithm>

namespace lstm_native {

namespace {
// A part is a group of rows of the sorted batch that runs every step on its own (no
// synchronization per step). Each part re-reads the whole W_hh [H, G*H] every step and its
// GEMMs see fewer rows, so a part must stay large enough to amortize both:
// * while W_hh fits a core's L2 (kL2Weights elements: 1 MiB of float), its thread keeps it
//   there from step to step, and a part needs kMinRowsPerPart rows (the packed kernel works
//   on blocks of up to 6 rows, so 8 rows cost ~1.3x the weight reads of blocks of 6, little
//   next to the FMAs);
// * beyond, every part streams W_hh from L3 every step (at 8 rows, 2 multiply-adds per byte:
//   bandwidth-bound, a core runs 2-3 times slower), so a part needs kMinRowsLargeWeights rows,
//   and a smaller batch is one part whose steps are split by columns instead (each thread then
//   streams only its own columns' weights).
// and kMinWorkPerPart multiply-adds in one forward pass (the pool's hand-off and the part's
// own setup cost a few microseconds).
// Precision bfloat16 (AMX tiles of 16 rows, the bf16 weights half the bytes): a part needs
// kMinRowsBf16 rows (two row tiles: each weight tile loaded serves both), kMinRowsLargeWeights
// once the bf16 W_hh outgrows a core's L2 too.
constexpr Index kMinRowsPerPart = 8;
constexpr Index kMinRowsLargeWeights = 64;
constexpr Index kMinRowsBf16 = 32;
// A float inference (no private weight gradients to sum: nothing favours many small parts)
// whose W_hh is over a quarter of kL2Weights (LSTM: H > 128) uses parts of at least
// kMinRowsInference rows: whole blocks of 6 rows in the packed kernel and fewer re-reads of
// W_hh per step (B = 64, H = 256: 2 parts of 32 rows instead of 8 of 8). A part's rows are
// computed the same way whatever the part: outputs do not change.
constexpr Index kMinRowsInference = 32;
constexpr double kL2Weights = double(1 << 18);
constexpr double kMinWorkPerPart = 1e6;
// Every part (in training) holds a private copy of the run's weight gradients, summed at the
// end: this cap bounds that memory (kMaxParts copies) and the reduction's cost.
constexpr Index kMaxParts = 32;

// A step's recurrent product [n, H] x [H, G*H] is cut into column blocks run on separate threads
// (with a barrier per step) when it has at least kMinColumnSplitWork multiply-adds; a block
// has at least kColumnBlockWork of them (a barrier costs ~1-5 us, ~1e4-1e5 multiply-adds).
constexpr double kMinColumnSplitWork = 1 << 20;
constexpr double kColumnBlockWork = 1 << 18;
constexpr Index kMaxColumnBlocks = 16;

Index floor_pow2(Index v) {
  Index p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// A run of the stack (stack.hpp)
// ---------------------------------------------------------------------------------------------

// A power of two (1, 2, 4, ...): the parts are then shared evenly by the usual thread counts
// (1, 2, 4, 8, 16 threads). Only B and the work decide, never the thread count.
Index num_parts(const RunShape& s, Index B, Index T, bool inference) {
  const double work =
      double(B) * double(T) * double(num_gates(s.cell) * s.H) * double(s.H + s.D) * double(s.L);
  const double weights = double(s.H) * double(num_gates(s.cell) * s.H);
  const bool bf16 = s.precision == Precision::kBfloat16;
  Index min_rows = weights <= (bf16 ? 2 : 1) * kL2Weights ? (bf16 ? kMinRowsBf16 : kMinRowsPerPart)
                                                          : kMinRowsLargeWeights;
  if (inference && !bf16 && weights > kL2Weights / 4)
    min_rows = std::max(min_rows, kMinRowsInference);
  const Index by_rows = B / min_rows;
  const Index by_work = static_cast<Index>(std::min(work / kMinWorkPerPart, double(kMaxParts)));
  return floor_pow2(std::max<Index>(1, std::min({by_rows, by_work, kMaxParts})));
}

Index num_column_blocks(Index n, Index K, Index N, Index P, Precision precision) {
  if (P > 1) return 1;  // the parts already run on separate threads
  const double work = double(n) * double(K) * double(N);
  const double bf16 = precision == Precision::kBfloat16 ? 128 : 1;
  if (work < kMinColumnSplitWork * (bf16 > 1 ? 8 : 1)) return 1;
  const Index by_work = static_cast<Index>(std::min(work / (kColumnBlockWork * bf16), 1e6));
  return std::max<Index>(1, std::min({by_work, N / kColumnAlign, kMaxColumnBlocks}));
}

PartSizes part_sizes(const RunShape& s, Index n, Index T, Index P, const RunNeeds& needs) {
  const CellShape c = cell_shape(s.cell);
  const Count Tn = Count(T) * n, nH = Count(n) * s.H, GH = Count(c.gates) * s.H;
  const Count nGH = Count(n) * GH.v;
  const Index tc = std::clamp<Index>(kChunkElements / std::max<Index>(1, nGH.v), 1, T);
  const Count states = Count(s.L) * (Count(T) * n + n) * s.H;  // [Lr][T+1, n, H]
  const Count wmax = std::max(s.D, s.H);
  PartSizes z;
  z.x_tm = Tn * s.D;
  z.hs = states;
  z.cs = c.has_cell ? states : Count(0);
  z.gates = needs.train ? Count(s.L) * Tn * GH : Count(tc) * nGH;
  z.extra = std::max<Index>(1, ((needs.train ? Count(s.L) * Tn : Count(n)) * c.extra * s.H).v);
  z.gh = nGH;
  z.scratch = nH * c.scratch;
  // bfloat16 inference: h_{t-1} and h_t as the AMX kernel's bf16 left operand, [2][Mp, Hp]
  // (Mp = n and Hp = H rounded up to 16 and 32: whole tiles), two bytes each, counted in floats
  // (bfloat16 is float only). The fused step of stack.cpp uses it (the AMX kernel, cells with
  // forward_fused()); a kernel set without AMX grows it all the same, so that the sizes do not
  // depend on the kernel set.
  if (s.precision == Precision::kBfloat16 && !needs.train)
    z.h16 = Count((n + 15) / 16 * 16) * ((s.H + 31) / 32 * 32);
  if (!needs.train) return z;
  z.dy_a = (needs.dy || s.L > 1) ? Tn * wmax : Count(0);
  z.dy_b = (s.L > 1 || needs.dx) ? Tn * wmax : Count(0);
  z.dgh = c.separate_gh ? Tn * GH : Count(0);
  z.dh = z.dc = z.dh_prev = nH;
  z.dc_total = (needs.dcs && c.has_cell) ? nH : Count(0);
  z.dparams = P > 1 ? Count(s.params) : Count(0);
  return z;
}

Count run_workspace_elements(const RunShape& s, Index B, Index T, const RunNeeds& needs) {
  if (B < 1 || T < 1) return 0;
  const Index P = num_parts(s, B, T, !needs.train);
  Count total = 0;
  for (Index q = 0; q < P; ++q) {
    const PartSizes z = part_sizes(s, part_rows(B, P, q), T, P, needs);
    total += z.forward_total();
    if (needs.train) total += z.backward_total();
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// The model (model.hpp)
// ---------------------------------------------------------------------------------------------

RunNeeds unit_needs(const ModelConfig& c, Index l, Call call) {
  RunNeeds r;
  r.train = call == Call::kLossGrad || call == Call::kTrainEpoch;
  // The top layer of a sequence-to-one model gets its gradient through the final states only.
  r.dy = c.return_sequences || l < c.num_layers - 1;
  r.dx = l > 0;
  r.dcs = false;
  return r;
}

LayerSizes layer_sizes(const ModelConfig& c, Index l, Index B, Index T, Call call) {
  const Index H = c.hidden_size, L = c.num_layers;
  const Count BT = Count(B) * T, n_in = BT * (l == 0 ? c.input_size : c.features());
  const bool two = c.bidirectional;
  LayerSizes z;
  if (l > 0 && call == Call::kTrainEpoch && c.dropout > 0) z.drop_in = z.drop_mask = n_in;
  if (two) z.rev_in = n_in;
  // A sequence-to-one model reads only the top layer's final state: no output sequence.
  if (l < L - 1 || c.return_sequences || two) z.yf = BT * H;
  if (two) z.yr = BT * H;
  if (two) z.cat = BT * c.features();
  z.hT = Count(B) * H;
  return z;
}

ModelSizes model_sizes(const ModelConfig& c, Index num_params, Index B, Index T, Call call) {
  const bool seq = c.return_sequences, two = c.bidirectional;
  const bool grad = call == Call::kLossGrad || call == Call::kTrainEpoch;
  const Index L = c.num_layers, O = c.output_size, F = c.features(), H = c.hidden_size;
  const Count BT = Count(B) * T, rows = seq ? BT : Count(B);
  const Count maxw = std::max(c.input_size, F);
  ModelSizes z;
  if (!seq) z.feat = Count(B) * F;
  z.logits = rows * O;
  if (call != Call::kPredict && call != Call::kRollout) z.dlogits = rows * O;
  if (grad) {
    z.dfeat = rows * F;
    // Only where needed: a one-layer, one-direction, sequence-to-one model needs none of the
    // [B, T, ...] ones.
    if (seq || L > 1) z.dout = BT * maxw;
    if (L > 1) z.dxf = BT * maxw;
    if (two && L > 1) z.dxr = BT * maxw;
    if (two) z.dyf = z.dyr = BT * H;
    z.dhT = Count(B) * H;
  }
  if (call == Call::kTrainEpoch) {
    z.grad = num_params;
    z.xb = BT * c.input_size;
    z.yb = (seq ? BT : Count(B)) * c.target_width();
    z.swb = B;
  }
  if (call == Call::kRollout) {
    const CellShape cs = cell_shape(c.cell);
    const Count LBH = Count(L) * B * H;
    z.step_h = Count(2) * LBH;
    if (cs.has_cell) z.step_c = LBH;
    z.step_gx = z.step_gh = Count(B) * cs.gates * H;
    z.step_extra = std::max<Index>(1, (Count(B) * cs.extra * H).v);
    z.step_scratch = Count(B) * cs.scratch * H;
    z.step_x = Count(B) * c.input_size;
  }
  return z;
}

Count workspace_elements(const ModelConfig& c, Index B, Index T, Call call) {
  if (call == Call::kPredict || call == Call::kRollout) B = std::min(B, kPredictChunk);
  if (B < 1 || T < 1) return 0;
  const Index P = c.num_params();  // first: refuses sizes whose products overflow (TooLarge)
  const Index H = c.hidden_size, L = c.num_layers;
  auto layer = [&](Index l) {  // layer l's buffers and its units' runs
    const LayerSizes z = layer_sizes(c, l, B, T, call);
    const Index Din = l == 0 ? c.input_size : c.features();
    const RunShape unit{c.cell, Din, H, 1, unit_param_count(c.cell, Din, H, c.bias).v, c.precision};
    return z.drop_in + z.drop_mask + z.rev_in + z.yf + z.yr + z.cat +
           Count(c.dirs()) * (z.hT + run_workspace_elements(unit, B, T, unit_needs(c, l, call)));
  };
  // Layers 1..L-2 are alike (only the first and the last differ): O(1) in L.
  Count total = model_sizes(c, P, B, T, call).total() + layer(0);
  if (L > 2) total += Count(L - 2) * layer(1);
  if (L > 1) total += layer(L - 1);
  return total;
}

}  // namespace lstm_native
