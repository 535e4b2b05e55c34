// Every buffer size of the core, from the sizes of a call alone: the parts a batch is cut into
// and the buffers of a part (a Run of stack.hpp) and of the Model (model.hpp), and the
// workspace totals the Python layer asks for before it allocates. The one place that says how
// large each buffer is: the buffers are grown from these functions, and workspace_elements()
// sums the same functions, so the two cannot disagree. Common to all kernel sets (isa.hpp):
// how work is cut never depends on the instruction set or the thread count.
#pragma once

#include "cell_facts.hpp"
#include "common.hpp"
#include "config.hpp"

namespace lstm_native {

// Elements of input projections computed per chunk in inference (about 256 KiB of float):
// the cell then reads them back from cache, not from memory.
constexpr Index kChunkElements = Index(64) << 10;

// What a run's calls will be asked for; it decides which backward buffers exist.
struct RunNeeds {
  bool train = true;  // a training forward (kept for backward) followed by its backward
  bool dy = true;     // backward receives dL/dy
  bool dx = true;     // backward writes dL/dx
  bool dcs = false;   // backward records dL/dc_t (cells with a cell state)
};

// A run's sizes: cell, input width of its first layer, H, its layers, its parameters.
struct RunShape {
  CellKind cell;
  Index D, H, L, params;
  Precision precision = Precision::kFloat32;  // bfloat16: fewer, larger parts (sizes.cpp)
};

// Elements of each buffer of one part (see the table above; 0 = not needed).
struct PartSizes {
  Count x_tm, hs, cs, gates, extra, gh, scratch, h16;         // forward
  Count dy_a, dy_b, dgh, dh, dc, dh_prev, dc_total, dparams;  // backward
  Count forward_total() const { return x_tm + hs + cs + gates + extra + gh + scratch + h16; }
  Count backward_total() const {
    return dy_a + dy_b + dgh + dh + dc + dh_prev + dc_total + dparams;
  }
};

// Parts of a batch of B sequences of T steps (a power of two, from the sizes only: at most
// B / 8 and 32, and only as many as the work pays for) and the rows of part q (the sorted rows
// q, q+P, q+2P, ...).
// inference: a forward that keeps nothing for a backward (see sizes.cpp: larger parts once
// W_hh is large).
Index num_parts(const RunShape& s, Index B, Index T, bool inference = false);
inline Index part_rows(Index B, Index P, Index q) {
  return (B - q + P - 1) / P;
}
// Column blocks of a step's product [n, K] x [K, N] (forward: h_{t-1} W_hhᵀ, K = H, N = G*H;
// backward: dgh W_hh, K = G*H, N = H) in a run of P parts: 1 (no split) unless the run is one
// part and the product is large. Block q is columns [column_bound(N, C, q),
// column_bound(N, C, q+1)); the bounds are multiples of kColumnAlign, hence of every kernel
// set's panel width (packed.hpp), so they depend on the sizes only, never on the instruction
// set or the thread count (nor does any result: each output element is one FMA chain).
constexpr Index kColumnAlign = 64;
// (bfloat16: blocks 128 times larger, e.g. 2 for a step of 64 x 512 x 2048: an AMX block
// computes that much faster, and each block converts the step's left operand to bf16 anew)
Index num_column_blocks(Index n, Index K, Index N, Index P,
                        Precision precision = Precision::kFloat32);
inline Index column_bound(Index N, Index C, Index q) {
  return q >= C ? N : (N * q / C) / kColumnAlign * kColumnAlign;
}
PartSizes part_sizes(const RunShape& s, Index n, Index T, Index P, const RunNeeds& needs);
// Scalars a run's workspace holds after a call on B sequences of T steps (forward, and the
// backward's buffers too when needs.train). 0 for an empty call.
Count run_workspace_elements(const RunShape& s, Index B, Index T, const RunNeeds& needs);

// What a call computes, which decides the buffers it needs: predict (inference, in chunks of
// kPredictChunk sequences), loss (inference and the loss), loss with gradient (forward kept,
// backward through everything), one training epoch (the same with dropout, plus the gradient
// and the gathered minibatch), a rollout (predict's, in the same chunks, plus the buffers of
// one timestep).
enum class Call { kPredict, kLoss, kLossGrad, kTrainEpoch, kRollout };
constexpr Index kPredictChunk = 256;  // sequences per forward in predict()

struct LayerSizes {
  Count drop_in, drop_mask, rev_in, yf, yr, cat, hT;  // hT: per unit
};
struct ModelSizes {
  Count feat, logits, dlogits, dfeat, dout, dxf, dxr, dyf, dyr, dhT, grad, xb, yb, swb;
  Count step_h, step_c, step_gx, step_gh, step_extra, step_scratch, step_x;  // rollout
  Count total() const {
    return feat + logits + dlogits + dfeat + dout + dxf + dxr + dyf + dyr + dhT + grad + xb + yb +
           swb + step_h + step_c + step_gx + step_gh + step_extra + step_scratch + step_x;
  }
};
LayerSizes layer_sizes(const ModelConfig& c, Index l, Index B, Index T, Call call);
ModelSizes model_sizes(const ModelConfig& c, Index num_params, Index B, Index T, Call call);
// What unit (l, d)'s run is asked for in a call.
RunNeeds unit_needs(const ModelConfig& c, Index l, Call call);
// Scalars the whole workspace (the Model's buffers and every unit's run) holds after one call
// on B sequences of T steps (predict, rollout: on min(B, kPredictChunk)); O(1) in L. Needs a valid
// configuration; TooLarge when a count exceeds 2^63. (A later call on fewer sequences can
// hold a little more when it runs in fewer, larger parts than B did: the first parts grow to
// at most twice their rows, since a part has fewer than 2 * 8 rows whenever the row count
// limits the parts (sizes.cpp), or to a batch below the two-part work threshold.)
Count workspace_elements(const ModelConfig& c, Index B, Index T, Call call);

}  // namespace lstm_native
