// The sequence driver shared by every cell and every user of a Stack: hoisted input GEMM, the
// timestep of step.hpp on the rows still running, and BPTT with the weight gradients as GEMMs
// over all timesteps after the time loop. See stack.hpp for the buffers.
#include "lstm_native/stack.hpp"

#include "lstm_native/threads.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <utility>

namespace lstm_native {
inline namespace LSTM_NATIVE_ISA_NS {

namespace {
template <class V>
void grow(V& v, Count n) {
  if (static_cast<Index>(v.size()) < n.v) v.resize(static_cast<std::size_t>(n.v));
}

// f(q) for every block q < C, the blocks dealt to min(threads, C) tasks as contiguous ranges
// (task i: [C*i/tasks, C*(i+1)/tasks)), so that with as many threads as usual a thread gets the
// same columns, hence the same slice of the packed weights in its own L2, step after step.
// Which thread runs a block never changes its arithmetic.
template <class F>
void for_blocks(Index C, int threads, const F& f) {
  const int tasks = static_cast<int>(std::max<Index>(1, std::min<Index>(threads, C)));
  auto task = [&](int i) {
    for (Index q = C * i / tasks; q < C * (i + 1) / tasks; ++q) f(q);
  };
  if (tasks == 1)
    task(0);
  else  // (one reference fits std::function inline: no allocation per step)
    ThreadPool::instance().run(tasks, tasks, [&task](int i) { task(i); });
}

// Rows per block of a step's pointwise cell work split over threads. A multiple of 16, so a
// block starts at a whole number of packets (16 rows x H lanes) of every kernel set: cells that
// walk all rows as one long row of n*H lanes (lanes.hpp: packets, then scalars for the tail)
// then see the same packets and the same scalar tail in any split.
constexpr Index kRowBlock = 16;

// f(r0, r1) for row ranges covering [0, n): one range, or with threads >= 2 and n >= 2 *
// kRowBlock, one per task at multiples of kRowBlock.
template <class F>
void for_row_ranges(Index n, int threads, const F& f) {
  const Index units = n / kRowBlock;
  const int tasks = static_cast<int>(std::max<Index>(1, std::min<Index>(threads, units)));
  if (tasks == 1) return f(Index(0), n);
  auto task = [&](int i) {
    const Index r0 = units * i / tasks * kRowBlock;
    const Index r1 = i + 1 == tasks ? n : units * (i + 1) / tasks * kRowBlock;
    f(r0, r1);
  };
  ThreadPool::instance().run(tasks, tasks, [&task](int i) { task(i); });
}

// The rows [r0, r1) of a step's forward arguments.
template <class S, class Cell>
StepIO<S> io_rows(const StepIO<S>& io, Index r0, Index r1) {
  const Index H = io.H, GH = Cell::kGates * H;
  StepIO<S> r = io;
  r.n = r1 - r0;
  r.gates = io.gates + r0 * GH;
  r.gh = io.gh + r0 * GH;
  r.h_prev = io.h_prev + r0 * H;
  r.c_prev = io.c_prev ? io.c_prev + r0 * H : nullptr;
  r.h = io.h + r0 * H;
  r.c = io.c ? io.c + r0 * H : nullptr;
  r.extra = io.extra ? io.extra + r0 * Cell::kExtra * H : nullptr;
  r.scratch = io.scratch ? io.scratch + r0 * Cell::kScratch * H : nullptr;
  return r;
}

// The rows [r0, r1) of a step's backward arguments (cells without [H] parameter vectors, whose
// gradient sums over rows: those run their rows in one piece).
template <class S, class Cell>
StepGrad<S> grad_rows(const StepGrad<S>& g, Index r0, Index r1) {
  const Index H = g.H, GH = Cell::kGates * H;
  StepGrad<S> r = g;
  r.n = r1 - r0;
  r.gates = g.gates + r0 * GH;
  r.dgh = g.dgh + r0 * GH;
  r.extra = g.extra ? g.extra + r0 * Cell::kExtra * H : nullptr;
  r.h_prev = g.h_prev + r0 * H;
  r.c_prev = g.c_prev ? g.c_prev + r0 * H : nullptr;
  r.h = g.h + r0 * H;
  r.c = g.c ? g.c + r0 * H : nullptr;
  r.dh = g.dh + r0 * H;
  r.dc = g.dc ? g.dc + r0 * H : nullptr;
  r.dh_prev = g.dh_prev + r0 * H;
  r.dc_total = g.dc_total ? g.dc_total + r0 * H : nullptr;
  return r;
}
}  // namespace

template <class S>
Index Run<S>::allocated_elements() const {
  Index n = 0;
  for (const Part& p : parts_)
    for (const Buffer<S>* b :
         {&p.x_tm, &p.hs, &p.cs, &p.gates, &p.extra, &p.gh, &p.scratch, &p.h16, &p.dgh, &p.dy_a,
          &p.dy_b, &p.dh, &p.dc, &p.dh_prev, &p.dc_total, &p.dparams})
      n += static_cast<Index>(b->size());
  return n;
}

// ---------------------------------------------------------------------------------------------
// The stack
// ---------------------------------------------------------------------------------------------

template <class S>
Stack<S>::Stack(CellKind cell, Index input_size, Index hidden_size, Index num_layers, bool bias,
                Index dirs, Precision precision)
    : cell_(cell),
      D_(input_size),
      H_(hidden_size),
      L_(num_layers),
      dirs_(dirs),
      G_(num_gates(cell)),
      bias_(bias),
      precision_(precision) {
  check_precision(precision, sizeof(S));
  require(input_size >= 1, "input_size must be >= 1, got " + std::to_string(input_size));
  require(hidden_size >= 1, "hidden_size must be >= 1, got " + std::to_string(hidden_size));
  require(num_layers >= 1, "num_layers must be >= 1, got " + std::to_string(num_layers));
  require(dirs == 1 || dirs == 2, "dirs must be 1 or 2");
  layout_ = ParamLayout(cell, input_size, hidden_size, num_layers, bias, dirs);
  packed_.resize(static_cast<std::size_t>(num_layers * dirs));
  // bfloat16: the products with W_ih and W_hh (W_ch, inside some cells, stays float32)
  for (PackedLayer<S>& w : packed_) {
    w.ih.set_bfloat16(precision == Precision::kBfloat16);
    w.hh.set_bfloat16(precision == Precision::kBfloat16);
  }
}

template <class S>
Run<S> Stack<S>::make_run(Index l0, Index l1, Index d) const {
  // A run's parameters must be one range of the flat buffer (its parts' private gradients
  // cover just that range): all layers of one direction, or one layer of two.
  require(0 <= l0 && l0 < l1 && l1 <= L_ && 0 <= d && d < dirs_ && (dirs_ == 1 || l1 == l0 + 1),
          "invalid run of layers");
  Run<S> r;
  r.l0_ = l0;
  r.l1_ = l1;
  r.d_ = d;
  return r;
}

template <class S>
RunShape Stack<S>::shape(const Run<S>& run) const {
  const auto& first = layout_.units[unit(run, 0)];
  const auto& last = layout_.units[unit(run, run.num_layers() - 1)];
  return RunShape{cell_,     first.in, H_, run.num_layers(), last.offset + last.size - first.offset,
                  precision_};
}

template <class S>
int Stack<S>::threads_wanted() const {
  return std::max(1, threads_ > 0 ? threads_ : default_num_threads());
}

template <class S>
int Stack<S>::threads_for_call(const Run<S>& run) const {
  return std::max(1, std::min<int>(threads_wanted(), static_cast<int>(run.parts_.size())));
}

template <class S>
const S* Stack<S>::pack_forward(const S* params, bool require_finite) {
  const std::size_t np = static_cast<std::size_t>(layout_.size);
  // (compared on all threads when large: at H = 512 the comparison reads 9.4 MB, 0.5 ms on
  // one core, a serial 5 % of a two-thread inference)
  bool packed_already = packed_from_.size() == np;
  if (packed_already) {
    const int tasks = np * sizeof(S) >= (std::size_t(1) << 20) ? threads_wanted() : 1;
    std::atomic<bool> same{true};
    ThreadPool::instance().run(tasks, tasks, [&](int q) {
      const std::size_t i0 = np * q / tasks, i1 = np * (q + 1) / tasks;
      if (std::memcmp(packed_from_.data() + i0, params + i0, sizeof(S) * (i1 - i0)) != 0)
        same.store(false, std::memory_order_relaxed);
    });
    packed_already = same.load();
  }
  if (!packed_already) {
    // (checked here, before the copy is taken, rather than on every call: the same params
    // were checked when they were packed, and the check reads all of them, 4.7 MB at H = 512)
    if (require_finite && !all_finite(params, Index(np)))
      throw std::invalid_argument("the layer's parameters (flat_params) contain NaN or infinity");
    packed_from_.assign(params, params + np);
    const S* src = packed_from_.data();
    const Index GH = G_ * H_;
    for (std::size_t u = 0; u < packed_.size(); ++u) {
      const auto& P = layout_.units[u];
      packed_[u].hh.pack_transposed(src + P.w_hh, GH, H_, bias_ ? src + P.b_hh : nullptr);
      packed_[u].ih.pack_transposed(src + P.w_ih, GH, P.in, bias_ ? src + P.b_ih : nullptr);
      if (P.w_ch >= 0) packed_[u].ch.pack_transposed(src + P.w_ch, H_, H_, nullptr);
      Buffer<S>& bs = packed_[u].bias_sum;  // (the fused bfloat16 step's initial gates)
      bs.clear();
      if (bias_ && packed_[u].hh.amx()) {
        bs.assign(static_cast<std::size_t>((GH + 15) / 16 * 16), S(0));
        for (Index c = 0; c < GH; ++c) bs[c] = src[P.b_ih + c] + src[P.b_hh + c];
      }
    }
  }
  return packed_from_.data();
}

// Sorts the batch by length and deals the sorted rows out to the parts round-robin, so every
// part gets a similar mix of lengths and its own rows stay sorted (running rows = a prefix).
template <class S>
void Stack<S>::plan(Run<S>& run, Index B, Index T, const std::int64_t* lengths, bool train) const {
  run.order_.resize(static_cast<std::size_t>(B));
  std::iota(run.order_.begin(), run.order_.end(), Index(0));
  if (lengths)
    std::stable_sort(run.order_.begin(), run.order_.end(),
                     [&](Index a, Index b) { return lengths[a] > lengths[b]; });
  run.len_.resize(static_cast<std::size_t>(B));
  for (Index k = 0; k < B; ++k) run.len_[k] = lengths ? Index(lengths[run.order_[k]]) : T;

  const Index P = num_parts(shape(run), B, T, !train);
  run.cols_f_ = num_column_blocks(B, H_, G_ * H_, P, precision_);
  run.cols_b_ = num_column_blocks(B, G_ * H_, H_, P, precision_);
  run.parts_.resize(static_cast<std::size_t>(P));
  for (Index q = 0; q < P; ++q) {
    Part& p = run.parts_[q];
    p.r0 = q;
    p.n = part_rows(B, P, q);
    p.active.resize(static_cast<std::size_t>(T));
    Index j = p.n;
    for (Index t = 0; t < T; ++t) {
      while (j > 0 && run.len_[q + (j - 1) * P] <= t) --j;
      p.active[t] = j;
    }
  }
}

template <class S>
void Stack<S>::forward(Run<S>& run, const S* x, Index B, Index T, const std::int64_t* lengths,
                       const S* h0, const S* c0, S* y, S* hT, S* cT, bool train) {
  require(B >= 1, "batch size must be >= 1");
  require(T >= 1, "number of timesteps must be >= 1");
  if (lengths)
    for (Index b = 0; b < B; ++b)
      require(lengths[b] >= 0 && lengths[b] <= T, "lengths[" + std::to_string(b) +
                                                      "] = " + std::to_string(lengths[b]) +
                                                      " is outside [0, " + std::to_string(T) + "]");
  if (packed_from_.empty()) throw std::logic_error("Stack::forward() needs pack_forward() first");
  run.have_forward_ = false;
  run.B_ = B;
  run.T_ = T;
  plan(run, B, T, lengths, train);
  Args a;
  a.params = packed_from_.data();  // the copy the weights were packed from (see stack.hpp)
  a.x = x;
  a.h0 = h0;
  a.c0 = c0;
  a.y = y;
  a.hT = hT;
  a.cT = cT;
  dispatch_cell(cell_, [&](auto c) {
    using Cell = decltype(c);
    const int cols = run.num_parts() == 1 ? threads_wanted() : 1;
    ThreadPool::instance().run(run.num_parts(), threads_for_call(run), [&](int q) {
      forward_part<Cell>(run, run.parts_[q], a, train, cols);
    });
  });
  run.have_forward_ = train;
}

template <class S>
template <class Cell>
void Stack<S>::forward_part(Run<S>& run, Part& p, const Args& a, bool train, int threads) {
  const RunShape rs = shape(run);
  const Index n = p.n, T = run.T_, H = H_, D = rs.D, GH = G_ * H_, Tn = T * n, P = run.num_parts(),
              Lr = rs.L;
  constexpr Index kE = Cell::kExtra;
  auto seq = [&](Index j) { return run.order_[p.r0 + j * P]; };  // local row -> sequence
  auto len = [&](Index j) { return run.len_[p.r0 + j * P]; };

  const PartSizes z = part_sizes(rs, n, T, P, RunNeeds{train, false, false, false});
  grow(p.x_tm, z.x_tm);
  grow(p.hs, z.hs);
  grow(p.cs, z.cs);
  grow(p.gates, z.gates);  // all steps for training, one chunk of tc steps for inference
  grow(p.extra, z.extra);
  grow(p.gh, z.gh);
  grow(p.scratch, z.scratch);
  grow(p.h16, z.h16);
  // The input projection is hoisted out of the step loop but computed chunk by chunk, tc steps
  // at a time, so the cell reads it back from cache, not from memory.
  const Index tc = std::clamp<Index>(kChunkElements / std::max<Index>(1, n * GH), 1, T);
  const Index Cf = threads > 1 ? run.cols_f_ : 1;  // column blocks (1: no split, see plan())

  // x [B, T, D] -> x_tm [T, n, D], zero past each length (keeps padding out of dW_ih).
  for (Index j = 0; j < n; ++j) {
    const Index b = seq(j), lj = len(j);
    for (Index t = 0; t < T; ++t) {
      S* dst = p.x_tm.data() + (t * n + j) * D;
      if (t < lj)
        std::memcpy(dst, a.x + (b * T + t) * D, sizeof(S) * D);
      else
        std::fill(dst, dst + D, S(0));
    }
  }

  bool rows_affine = T > 0;  // row j is sequence r0 + j P and runs all T steps
  for (Index j = 0; j < n && rows_affine; ++j) rows_affine = seq(j) == p.r0 + j * P && len(j) == T;
  bool y_written = false;           // (the last layer wrote y directly)
  for (Index k = 0; k < Lr; ++k) {  // layer l0 + k of the run
    const Index u = unit(run, k);
    const ParamLayout::Unit& Pl = layout_.units[u];
    const PackedLayer<S>& w = packed_[u];
    const Index Din = Pl.in;
    S* hs = p.hs.data() + k * (T + 1) * n * H;
    S* cs = Cell::kHasCell ? p.cs.data() + k * (T + 1) * n * H : nullptr;
    S* gates = p.gates.data() + (train ? k * Tn * GH : 0);  // this layer's, kept for backward
    S* extra = p.extra.data() + (train ? k * Tn * kE * H : 0);
    const S* in = k == 0 ? p.x_tm.data() : p.hs.data() + ((k - 1) * (T + 1) + 1) * n * H;

    load_state(run, hs, a.h0, p, k);  // initial states
    if (Cell::kHasCell) load_state(run, cs, a.c0, p, k);
    // The last layer of an inference whose rows map onto y's rows with a fixed stride (one
    // part, or parts dealt round-robin, with no sequence shorter than T: row j is sequence
    // r0 + j P) writes h_t straight into y [B, T, H] (row stride P T H), not into hs: no copy
    // of y after the run (at B64/T50/H512 that copy was 5-8 % of an inference).
    S* y_rows = !train && a.y && k == Lr - 1 && rows_affine ? a.y + p.r0 * T * H : nullptr;
    if (!train && forward_layer_fused<Cell>(run, p, k, in, hs, cs, threads, y_rows, P * T * H)) {
      if (y_rows) {  // h_T, for the final state: from y's last step
        for (Index j = 0; j < n; ++j)
          std::memcpy(hs + (T * n + j) * H, y_rows + j * P * T * H + (T - 1) * H, sizeof(S) * H);
        y_written = true;
      }
      store_state(run, a.hT, hs + T * n * H, p, k);
      if (Cell::kHasCell) store_state(run, a.cT, cs + T * n * H, p, k);
      continue;
    }

    StepIO<S> io;  // the gates are hoisted (io.x stays null)
    io.H = H;
    io.gh = p.gh.data();
    io.scratch = p.scratch.data();
    io.cw = Pl.cw >= 0 ? a.params + Pl.cw : nullptr;
    io.w_ch = &w.ch;
    for (Index t = 0; t < T; ++t) {
      const Index na = p.active[t];
      S* hp = hs + t * n * H;
      S* hn = hp + n * H;
      S* cp = Cell::kHasCell ? cs + t * n * H : nullptr;
      S* cn = Cell::kHasCell ? cp + n * H : nullptr;
      // Gx [m*n, GH] = In [m*n, Din] · W_ihᵀ + b_ih for the m steps of a chunk at once (at its
      // first step), with our packed kernel (with Din as small as it usually is, Eigen's GEMM
      // spends more time packing than multiplying).
      const bool chunk = t % tc == 0;
      const Index m = std::min(tc, T - t);
      const S* in_t = in + t * n * Din;
      S* gx = gates + (train ? t : 0) * n * GH;
      io.n = na;
      io.gates = gates + (train ? t : t % tc) * n * GH;
      io.h_prev = hp;
      io.c_prev = cp;
      io.h = hn;
      io.c = cn;
      io.extra = extra + (train ? t * n * kE * H : 0);
      if (Cf == 1) {
        if (chunk) w.ih.multiply(in_t, Din, m * n, gx, GH);
        if (na > 0) step_forward<Cell>(w, io, 1);  // the step on the running rows
      } else {
        // By column blocks: the chunk's Gx and gh [na, G*H] = h_{t-1} W_hhᵀ + b_hh in one pool
        // call, then (a barrier later) the cell by row blocks.
        for_blocks(Cf, threads, [&](Index q) {
          const Index c0 = column_bound(GH, Cf, q), c1 = column_bound(GH, Cf, q + 1);
          if (chunk) w.ih.multiply_columns(in_t, Din, m * n, gx + c0, GH, c0, c1);
          if (na > 0) w.hh.multiply_columns(hp, H, na, io.gh + c0, GH, c0, c1);
        });
        if (na > 0)
          for_row_ranges(na, threads,
                         [&](Index r0, Index r1) { Cell::forward(io_rows<S, Cell>(io, r0, r1)); });
      }
      if (na < n) {  // finished sequences carry their state unchanged
        std::memcpy(hn + na * H, hp + na * H, sizeof(S) * (n - na) * H);
        if (Cell::kHasCell) std::memcpy(cn + na * H, cp + na * H, sizeof(S) * (n - na) * H);
      }
    }
    store_state(run, a.hT, hs + T * n * H, p, k);  // final states of this layer
    if (Cell::kHasCell) store_state(run, a.cT, cs + T * n * H, p, k);
  }

  // Last layer's h_t -> y [B, T, H], zero past each length (unless the caller wants only the
  // final states).
  if (!a.y || y_written) return;
  const S* hs = p.hs.data() + (Lr - 1) * (T + 1) * n * H;
  // (a one-part run with split steps copies by blocks of rows on its threads: at large H this
  // copy, and the first touch of a fresh y, would otherwise be a serial 5% of the call)
  const Index Cy = Cf > 1 ? std::min<Index>(n, 8) : 1;
  for_blocks(Cy, threads, [&](Index q) {
    for (Index j = n * q / Cy; j < n * (q + 1) / Cy; ++j) {
      const Index b = seq(j), lj = len(j);
      for (Index t = 0; t < T; ++t) {
        S* dst = a.y + (b * T + t) * H;
        if (t < lj)
          std::memcpy(dst, hs + ((t + 1) * n + j) * H, sizeof(S) * H);
        else
          std::fill(dst, dst + H, S(0));
      }
    }
  });
}

// The fused inference step (cells with forward_fused(): the LSTM family without peepholes), for
// two kinds of product: the packed float kernel (float32, float64) and, in bfloat16, the AMX
// kernel. Per step, where the general step computes gh = h_{t-1} W_hhᵀ + b_hh into a buffer of
// its own and then lets the cell add gx + gh and store the activated gates:
//   gates [n, G*H] (the chunk's hoisted input projection) += the step's product, in place (gh
//   never exists):
//     packed: gates (x W_ihᵀ + b_ih) = gates + (b_hh + h_{t-1} W_hhᵀ), the product's sums added
//       to the gates at the kernel's store (PackedMatrix::multiply_add_to). Each pre-activation
//       is then rounded exactly as the general step's gx + gh: results are bit-identical to it
//       (and to training's forward and to streams).
//     AMX: gates = (b_ih + b_hh + x16_t W_ihᵀ) + h16_{t-1} W_hhᵀ, both products in the same
//       C tiles one after the other (the AMX tile kernel; the avx512_bf16 one adds the step's
//       product to the chunk's hoisted gates, the same sums); h16 [2][Mp, ld16] is h rounded
//       to bf16, the left operand, ping-ponged by step parity and written by the cell as it
//       computes h_t (no per-step conversion).
//   The last layer of a run without lengths writes h_t straight into y (row stride ldy).
//   cell (forward_fused): c_t and h_t (and h16_t) from the complete pre-activations; no
//     activations stored (an inference keeps none).
//   With the AMX tile kernel and H % 16 == 0 the product and the cell interleave instead
//     (bf16::tile_multiply_units): 16 units at a time, their gate tiles into an L1 buffer, and
//     their cell rows run between the next 16 units' tile instructions, on the vector ports
//     the tile unit leaves idle (same sums, same cell: the same results as the two loops).
// With threads (a one-part run whose steps are split: run.cols_f_ blocks), the blocks are of
// units, not of columns: block q owns units [j0, j1) (column_bound over H: multiples of 64) and
// computes their columns of all G gate blocks, for the chunk's input projection and for the
// step's product, and runs the cell on them. Its gates never leave its core, its slice of W_hh
// (1/Cu of it: at H = 512 on two threads 1 MiB of bf16, 2 MiB of float) stays in its core's L2
// from step to step, and only h crosses cores (the product reads slot t of hs, or h16 of one
// parity, the cells write slot t+1, or the other parity: one pool call per step is the only
// barrier). That needs each gate block's units to start on a whole tile of 16 (AMX) or panel
// (packed kernel) columns, H % 16 or H % kPanel == 0; otherwise the packed kind leaves the step
// to the general path (which splits it by columns, with the same results) and the AMX kind runs
// as one block (its results differ from the general bf16 step's: staying fused keeps them
// independent of the threads). AMX on one thread: all columns in one product, its column pairs
// in alternating directions step by step (bf16::amx_multiply's `reverse`), so that a W_hh
// larger than L2 (H = 512: 2 MiB) is partly read from L2 rather than all of it from L3 every
// step. Each element is the same chain of sums whatever the blocks, and the cell's lanes the
// same packets (for_lanes_range), so results do not depend on the threads.
template <class S>
template <class Cell>
bool Stack<S>::forward_layer_fused(Run<S>& run, Part& p, Index k, const S* in, S* hs, S* cs,
                                   int threads, S* y, Index ldy) {
  if constexpr (Cell::kFused) {
    constexpr bool kAmxBuilt = bf16::kHaveAmx && std::is_same_v<S, float>;
    const Index u = unit(run, k);
    const PackedLayer<S>& w = packed_[u];
    const bool amx = kAmxBuilt && w.hh.amx() && w.ih.amx();
    if (!amx && (w.hh.bfloat16() || w.ih.bfloat16())) return false;  // emulated bf16: general
    const Index n = p.n, T = run.T_, H = H_, GH = G_ * H_, Din = layout_.units[u].in;
    const Index tc = std::clamp<Index>(kChunkElements / std::max<Index>(1, n * GH), 1, T);
    // unit blocks: those of a split step (sizes only), when the gate blocks' columns fall on
    // whole tiles (AMX) or panels (packed)
    // One block per thread (at most the split's blocks): every output column's sum runs over k
    // in the same order whatever columns share a call, and the cell is pointwise, so the
    // results do not depend on the partition; fewer, wider blocks re-read h_{t-1} and convert
    // the chunk's input to bf16 once per thread rather than once per block.
    Index Cu = threads > 1 ? std::min<Index>(run.cols_f_, threads) : 1;
    if (Cu > 1 && H % (amx ? Index(16) : PackedMatrix<S>::kPanel) != 0) {
      if (!amx) return false;
      Cu = 1;
    }
    S* gates = p.gates.data();  // [tc, n, G*H]: one chunk
    StepIO<S> io;
    io.H = H;
    // AMX only: h16 [2][Mp, ld16] (h_{-1} converted here, padding zeroed), the initial gates
    // b_ih + b_hh, and the input's bf16 row length.
    // With the AMX tile kernel (fuse_x), the step's two products in one
    // (PackedMatrix::amx_columns_plus): gates = b_ih + b_hh + x16_t W_ihᵀ + h16_{t-1} W_hhᵀ,
    // summed in the tiles (the same sums, in the same order, as the input projection's product
    // and then the step's on top of it: the same results), the gates written once per step
    // instead of written, read back and rewritten. x16 [tx*n + 16 rows (a tile read from the
    // chunk's last rows stays inside), ldx]: the input of tx steps in bf16, converted by the
    // blocks (rows split) in a pool call of its own, shared by all blocks (a thread's scratch
    // would be another thread's on the next step: the pool hands blocks to whichever thread is
    // free).
    std::uint16_t* h16 = nullptr;
    Index Mp = 0, ld16 = 0, ldx = 0;
    const S* bias = nullptr;
    bool fuse_x = false, units = false;
    std::uint16_t* x16 = nullptr;
    Index tx = 0;
    if constexpr (kAmxBuilt) {
      if (amx) {
        Mp = (n + 15) / 16 * 16;
        ld16 = w.hh.amx_lda();
        ldx = w.ih.amx_lda();
        h16 = reinterpret_cast<std::uint16_t*>(p.h16.data());
        bf16::to_bf16(hs, H, false, n, H, Mp, ld16, h16);
        std::fill(h16 + Mp * ld16, h16 + 2 * Mp * ld16, std::uint16_t(0));
        bias = w.bias_sum.empty() ? nullptr : w.bias_sum.data();
        fuse_x = bf16::product() == Bf16Product::kAmx;
        units = fuse_x && H % 16 == 0;
        if (fuse_x) {
          tx = std::clamp<Index>((Index(256) << 10) / std::max<Index>(1, n * ldx), 1, T);
          x16 = bf16::scratch<std::uint16_t, 3>(static_cast<std::size_t>((tx * n + 16) * ldx));
        }
      }
    }
    for (Index t = 0; t < T; ++t) {
      const Index na = p.active[t];
      S* hp = hs + t * n * H;
      S* hn = hp + n * H;
      S* cp = cs + t * n * H;
      S* cn = cp + n * H;
      const bool chunk = t % tc == 0;
      const Index m = std::min(tc, T - t), mn = m * n;
      const S* in_t = in + t * n * Din;
      io.n = na;
      io.gates = gates + (t % tc) * n * GH;
      io.c_prev = cp;
      io.c = cn;
      io.h = y ? y + t * H : hn;  // (y: row stride ldy)
      io.ldh = y ? ldy : 0;
      // h_{t-1} for the packed product: slot t of hs, or y's step t-1
      const S* hprev = y && t > 0 ? y + (t - 1) * H : hp;
      const Index ldp = y && t > 0 ? ldy : H;
      const std::uint16_t* a16 = h16 ? h16 + (t % 2) * Mp * ld16 : nullptr;  // h_{t-1}
      std::uint16_t* next16 = h16 ? h16 + ((t + 1) % 2) * Mp * ld16 : nullptr;
      if constexpr (kAmxBuilt) {
        if (fuse_x && t % tx == 0) {  // x16 = the next tx steps' input rows in bf16
          const Index rows = std::min(tx, T - t) * n;
          for_blocks(Cu, threads, [&](Index q) {
            const Index r0 = rows * q / Cu, r1 = rows * (q + 1) / Cu;
            bf16::to_bf16(in_t + r0 * Din, Din, false, r1 - r0, Din, r1 - r0, ldx, x16 + r0 * ldx);
          });
          std::fill(x16 + rows * ldx, x16 + (rows + 16) * ldx, std::uint16_t(0));
        }
      }
      for_blocks(Cu, threads, [&](Index q) {
        const Index j0 = column_bound(H, Cu, q), j1 = column_bound(H, Cu, q + 1);
        if (j1 <= j0) return;
        // Gx [m*n, G*H] = In [m*n, Din] · W_ihᵀ + b_ih (AMX: + b_hh), these units' columns
        // [g*H + j0, g*H + j1) of every gate block g (Cu == 1: all columns at once)
        if (chunk && !fuse_x) {
          if constexpr (kAmxBuilt) {
            if (amx) {
              // (per thread: [m*n rounded up to 16, Din rounded up to 32] bf16; grows once)
              std::uint16_t* xc16 = bf16::scratch<std::uint16_t, 2>(
                  static_cast<std::size_t>((mn + 15) / 16 * 16 * ldx));
              bf16::to_bf16(in_t, Din, false, mn, Din, (mn + 15) / 16 * 16, ldx, xc16);
              if (Cu == 1)
                w.ih.amx_columns(xc16, mn, gates, GH, 0, GH, bias, false);
              else
                for (Index g = 0; g < G_; ++g)
                  w.ih.amx_columns(xc16, mn, gates + g * H + j0, GH, g * H + j0, g * H + j1, bias,
                                   false);
            }
          }
          if (!amx) {
            if (Cu == 1)
              w.ih.multiply(in_t, Din, mn, gates, GH);
            else
              for (Index g = 0; g < G_; ++g)
                w.ih.multiply_columns(in_t, Din, mn, gates + g * H + j0, GH, g * H + j0,
                                      g * H + j1);
          }
        }
        if (na == 0) return;
        // gates [na, these columns] += the step's product; then the cell on units [j0, j1)
        if constexpr (kAmxBuilt) {
          if (amx) {
            if (fuse_x) {  // gates = bias + x16_t W_ihᵀ + h16_{t-1} W_hhᵀ
              const std::uint16_t* xt = x16 + (t % tx) * n * ldx;  // x16_t
              if (units) {
                const Index ldh = io.ldh > 0 ? io.ldh : H;
                w.ih.amx_units_plus(
                    xt, na, w.hh, a16, G_, j0 / 16, j1 / 16, bias, Cu == 1 && t % 2 == 1,
                    bf16::scratch<float, 4>(static_cast<std::size_t>(2 * Mp * G_ * 16)),
                    [&](Index q, Index r, const float* row) {
                      const Index j = q * 16;
                      lanes::for_lanes_range<S>(0, 16, [&](auto v, Index l) {
                        Cell::template fused_lanes<true>(
                            v, row + l, 16, io.c_prev + r * H + j + l, io.c + r * H + j + l,
                            io.h + r * ldh + j + l, next16 + r * ld16 + j + l);
                      });
                    });
                return;
              }
              // (not by units: H % 16 != 0, so the step is one block, Cu == 1)
              w.ih.amx_columns_plus(xt, na, w.hh, a16, io.gates, GH, 0, GH, bias, t % 2 == 1);
            } else if (Cu == 1) {
              w.hh.amx_columns(a16, na, io.gates, GH, 0, GH, nullptr, true, t % 2 == 1);
            } else {
              for (Index g = 0; g < G_; ++g)
                w.hh.amx_columns(a16, na, io.gates + g * H + j0, GH, g * H + j0, g * H + j1,
                                 nullptr, true);
            }
            Cell::template forward_fused<true>(io, j0, j1, next16, ld16);
            return;
          }
        }
        if (Cu == 1)
          w.hh.multiply_add_to(hprev, ldp, na, io.gates, GH);
        else
          for (Index g = 0; g < G_; ++g)
            w.hh.multiply_add_to(hprev, ldp, na, io.gates + g * H + j0, GH, g * H + j0, g * H + j1);
        Cell::template forward_fused<false>(io, j0, j1, nullptr, 0);
      });
      if (na < n) {  // finished sequences carry their state unchanged
        std::memcpy(hn + na * H, hp + na * H, sizeof(S) * (n - na) * H);
        std::memcpy(cn + na * H, cp + na * H, sizeof(S) * (n - na) * H);
      }
    }
    return true;
  } else {
    return false;
  }
}

template <class S>
void Stack<S>::backward(Run<S>& run, const S* params, const S* dy, const S* dhT, const S* dcT,
                        S* dparams, S* dx, S* dh0, S* dc0, S* dhs, S* dcs) {
  if (!run.have_forward_)
    throw std::logic_error(
        "backward() needs a preceding forward() in training mode, and at "
        "most one backward() per forward()");
  // Backward overwrites the saved activations with gradients (stack.hpp, `gates`): a second
  // backward or a trace() would read gradients as activations. Only a new forward may follow
  // (also when this backward fails halfway).
  run.have_forward_ = false;
  // The saved activations are the forward's, made with the copy packed_from_: parameters
  // written since (in place, or a new array) would give the gradient of neither set.
  const std::size_t np = static_cast<std::size_t>(layout_.size);
  if (packed_from_.size() == np && std::memcmp(packed_from_.data(), params, sizeof(S) * np) != 0)
    throw std::logic_error(
        "the parameters changed between forward() and backward(): backward() gives the "
        "gradient of the weights the forward used; run forward() again after changing them");
  const Index GH = G_ * H_;
  for (Index k = 0; k < run.num_layers(); ++k) {  // W_hh [GH, H] (and W_ch) packed once
    const Index u = unit(run, k);
    const auto& P = layout_.units[u];
    packed_[u].hh.pack(params + P.w_hh, GH, H_);
    if (P.w_ch >= 0) packed_[u].ch.pack(params + P.w_ch, H_, H_);
  }
  packed_from_.clear();  // the packing now holds W_hh for backward: the next forward packs again
  Args a;
  a.params = params;
  a.dy = dy;
  a.dhT = dhT;
  a.dcT = dcT;
  a.dparams = dparams;
  a.dx = dx;
  a.dh0 = dh0;
  a.dc0 = dc0;
  a.dhs = dhs;
  a.dcs = has_cell_state(cell_) ? dcs : nullptr;
  const Index seq_size = run.num_layers() * run.B_ * run.T_ * H_;
  if (a.dhs) std::fill(a.dhs, a.dhs + seq_size, S(0));
  if (a.dcs) std::fill(a.dcs, a.dcs + seq_size, S(0));
  dispatch_cell(cell_, [&](auto c) {
    using Cell = decltype(c);
    const int cols = run.num_parts() == 1 ? threads_wanted() : 1;
    ThreadPool::instance().run(run.num_parts(), threads_for_call(run),
                               [&](int q) { backward_part<Cell>(run, run.parts_[q], a, cols); });
  });
  if (run.num_parts() > 1) {
    // Reduce the parts' weight gradients in a fixed order, grad[i] = ((grad[i] + d_0[i]) +
    // d_1[i]) + ..., by chunks of elements on threads (the order per element stays the same).
    const Index np = shape(run).params;
    constexpr Index kChunk = Index(1) << 14;
    S* grad = dparams + layout_.units[unit(run, 0)].offset;
    for_blocks((np + kChunk - 1) / kChunk, threads_wanted(), [&](Index q) {
      const Index i0 = q * kChunk, i1 = std::min(np, i0 + kChunk);
      for (const Part& p : run.parts_)
        for (Index i = i0; i < i1; ++i) grad[i] += p.dparams[i];
    });
  }
}

template <class S>
template <class Cell>
void Stack<S>::backward_part(Run<S>& run, Part& p, const Args& a, int threads) {
  const RunShape rs = shape(run);
  const Index n = p.n, T = run.T_, H = H_, D = rs.D, GH = G_ * H_, Tn = T * n, P = run.num_parts(),
              Lr = rs.L;
  constexpr Index kE = Cell::kExtra;
  auto seq = [&](Index j) { return run.order_[p.r0 + j * P]; };
  auto len = [&](Index j) { return run.len_[p.r0 + j * P]; };
  // Column blocks of the step's dgh W_hh (1: no split; any split gives the same results), and
  // the fixed blocks of the weight gradient GEMMs (these must not depend on the threads:
  // Eigen's arithmetic depends on a block's shape).
  const Index Cb = threads > 1 ? run.cols_b_ : 1, Cw = run.cols_f_;

  // dL/d(layer output) buffers, only where needed: the top layer's when dy is given, the lower
  // layers' (and dx's) when there are any.
  const PartSizes z =
      part_sizes(rs, n, T, P, RunNeeds{true, a.dy != nullptr, a.dx != nullptr, a.dcs != nullptr});
  grow(p.dy_a, z.dy_a);
  grow(p.dy_b, z.dy_b);
  grow(p.dgh, z.dgh);
  grow(p.dh, z.dh);
  grow(p.dc, z.dc);
  grow(p.dh_prev, z.dh_prev);
  grow(p.dc_total, z.dc_total);
  grow(p.dparams, z.dparams);
  // The run's weight gradients: the caller's (+=) or, with several parts, this part's own
  // [rs.params], indexed from the run's first parameter.
  const Index off0 = layout_.units[unit(run, 0)].offset;
  S* grad = a.dparams + off0;
  if (P > 1) {
    std::fill(p.dparams.begin(), p.dparams.begin() + rs.params, S(0));
    grad = p.dparams.data();
  }

  // dy [B, T, H] -> dY [T, n, H], zero past each length; null: no gradient on the outputs.
  S* dY = a.dy ? p.dy_a.data() : nullptr;  // dL/d(output of layer l)   [T, n, H]
  S* dIn = p.dy_b.data();                  // dL/d(input of layer l)    [T, n, Din]
  if (dY)
    for (Index j = 0; j < n; ++j) {
      const Index b = seq(j), lj = len(j);
      for (Index t = 0; t < T; ++t) {
        S* dst = dY + (t * n + j) * H;
        if (t < lj)
          std::memcpy(dst, a.dy + (b * T + t) * H, sizeof(S) * H);
        else
          std::fill(dst, dst + H, S(0));
      }
    }

  S* dh = p.dh.data();
  S* dc = p.dc.data();
  for (Index k = Lr - 1; k >= 0; --k) {
    const Index u = unit(run, k);
    const ParamLayout::Unit& Pl = layout_.units[u];
    const PackedLayer<S>& w = packed_[u];
    const Index Din = Pl.in;
    const S* hs = p.hs.data() + k * (T + 1) * n * H;
    const S* cs = Cell::kHasCell ? p.cs.data() + k * (T + 1) * n * H : nullptr;
    S* dgx = p.gates.data() + k * Tn * GH;  // activations, overwritten by dL/dgx [T, n, GH]
    S* dgh = Cell::kSeparateGh ? p.dgh.data() : dgx;
    const S* extra = p.extra.data() + k * Tn * kE * H;
    const S* in = k == 0 ? p.x_tm.data() : p.hs.data() + ((k - 1) * (T + 1) + 1) * n * H;

    load_state(run, dh, a.dhT, p, k);  // gradients on the final states
    if (Cell::kHasCell) load_state(run, dc, a.dcT, p, k);

    StepGrad<S> g;
    g.H = H;
    g.dh = dh;
    g.dc = Cell::kHasCell ? dc : nullptr;
    g.dh_prev = p.dh_prev.data();
    g.cw = Pl.cw >= 0 ? a.params + Pl.cw : nullptr;
    g.dcw = Pl.cw >= 0 ? grad + (Pl.cw - off0) : nullptr;
    g.dc_total = (a.dcs && Cell::kHasCell) ? p.dc_total.data() : nullptr;
    g.w_ch = &w.ch;
    for (Index t = T - 1; t >= 0; --t) {
      const Index na = p.active[t], row = t * n;
      if (na > 0) {
        if (dY) ArrMap<S>(dh, na * H) += ConstArrMap<S>(dY + row * H, na * H);  // + output's
        if (a.dhs) record(run, a.dhs, p, k, t, dh, na);
        g.n = na;
        g.gates = dgx + row * GH;
        g.dgh = dgh + row * GH;
        g.extra = extra + row * kE * H;
        g.h_prev = hs + row * H;
        g.c_prev = Cell::kHasCell ? cs + row * H : nullptr;
        g.h = hs + (row + n) * H;
        g.c = Cell::kHasCell ? cs + (row + n) * H : nullptr;
        if (Cb == 1) {
          step_backward<Cell>(w, g);  // leaves dL/dh_{t-1} in dh and dL/dc_{t-1} in dc
        } else {
          // The same as step_backward: the cell by row blocks (in one piece for cells whose
          // [H] parameter gradients sum over the rows), then dh [na, H] = dgh W_hh + dh_prev
          // by column blocks.
          if constexpr (Cell::kCellParams == 0)
            for_row_ranges(na, threads, [&](Index r0, Index r1) {
              Cell::backward(grad_rows<S, Cell>(g, r0, r1));
            });
          else
            Cell::backward(g);
          for_blocks(Cb, threads, [&](Index q) {
            const Index c0 = column_bound(H, Cb, q), c1 = column_bound(H, Cb, q + 1);
            w.hh.multiply_columns(g.dgh, GH, na, dh + c0, H, c0, c1);
            for (Index r = 0; r < na; ++r)
              for (Index j = c0; j < c1; ++j) dh[r * H + j] += g.dh_prev[r * H + j];
          });
        }
        if (g.dc_total) record(run, a.dcs, p, k, t, g.dc_total, na);
      }
      // Finished rows: no gradient into the gates; dh and dc pass through unchanged.
      std::fill(dgx + (row + na) * GH, dgx + (row + n) * GH, S(0));
      if (Cell::kSeparateGh) std::fill(dgh + (row + na) * GH, dgh + (row + n) * GH, S(0));
    }
    store_state(run, a.dh0, dh, p, k);
    if (Cell::kHasCell) store_state(run, a.dc0, dc, p, k);

    // Weight gradients: one GEMM each over all T*n rows (a one-part run with large steps:
    // by the fixed blocks of rows of dW_ih and dW_hh [G*H, .] that the forward's column
    // blocks give, on threads).
    // bfloat16 (packed_bf16.hpp): transposed, dW_ihᵀ [Din, GH] = inᵀ · dGx and dW_hhᵀ [H, GH]
    // = h_prevᵀ · dGh, so that the large operand dG [T*n, GH] is packed as read (k = rows in
    // order) and only the small one is transposed; each block of columns is added transposed
    // into dW. (dGh is dGx for cells with one set of gate gradients: packed once then.)
    ConstMatMap<S> Dgx(dgx, Tn, GH), Dgh(dgh, Tn, GH);
    const bool bf = precision_ == Precision::kBfloat16;
    PackedMatrix<S>& gm = p.gemm;
    auto dw_bf16 = [&](const S* X, Index Dx, S* dW, Index c0, Index c1) {
      const Index w = c1 - c0;
      S* t = bf16::scratch<S, 1>(static_cast<std::size_t>(Dx * w));
      gm.multiply_at(X, Dx, Dx, t, w, false, c0, c1);
      for (Index cb = c0; cb < c1; cb += 16)  // dW[c, r] += t[r, c - c0], by 16 columns
        for (Index r = 0; r < Dx; ++r)
          for (Index c = cb; c < std::min(c1, cb + 16); ++c) dW[c * Dx + r] += t[r * w + c - c0];
    };
    S* dW_ih = grad + (Pl.w_ih - off0);
    S* dW_hh = grad + (Pl.w_hh - off0);
    if (bf) {
      gm.set_bfloat16(true);
      gm.pack(dgx, Tn, GH);
      for_blocks(Cw, threads, [&](Index q) {
        const Index c0 = column_bound(GH, Cw, q), c1 = column_bound(GH, Cw, q + 1);
        dw_bf16(in, Din, dW_ih, c0, c1);
        if (dgh == dgx) dw_bf16(hs, H, dW_hh, c0, c1);
      });
      if (dgh != dgx) {
        gm.pack(dgh, Tn, GH);
        for_blocks(Cw, threads, [&](Index q) {
          dw_bf16(hs, H, dW_hh, column_bound(GH, Cw, q), column_bound(GH, Cw, q + 1));
        });
      }
    }
    for_blocks(Cw, threads, [&](Index q) {
      const Index r0 = column_bound(GH, Cw, q), rows = column_bound(GH, Cw, q + 1) - r0;
      if (!bf) {
        MatMap<S>(dW_ih + r0 * Din, rows, Din).noalias() +=
            Dgx.middleCols(r0, rows).transpose() * ConstMatMap<S>(in, Tn, Din);
        MatMap<S>(dW_hh + r0 * H, rows, H).noalias() +=
            Dgh.middleCols(r0, rows).transpose() * ConstMatMap<S>(hs, Tn, H);
      }
      if (!bias_) return;
      // db += column sums, row after row (as add_column_sums: the same order per element)
      S* db_ih = grad + (Pl.b_ih - off0);
      S* db_hh = grad + (Pl.b_hh - off0);
      for (Index r = 0; r < Tn; ++r)
        for (Index c = r0; c < r0 + rows; ++c) db_ih[c] += dgx[r * GH + c];
      for (Index r = 0; r < Tn; ++r)
        for (Index c = r0; c < r0 + rows; ++c) db_hh[c] += dgh[r * GH + c];
    });
    Cell::add_cell_weight_grad(dgx, cs, Tn, n, H, Pl.w_ch >= 0 ? grad + (Pl.w_ch - off0) : nullptr);
    if (k == 0 && !a.dx) break;
    // dL/d(input of layer l) [T*n, Din] = dgx · W_ih; the output gradient of layer l-1 (with
    // the blocks above: by fixed blocks of its rows).
    if (bf) gm.pack(a.params + Pl.w_ih, GH, Din);
    for_blocks(Cw, threads, [&](Index q) {
      const Index r0 = Tn * q / Cw, rows = Tn * (q + 1) / Cw - r0;
      if (bf)
        gm.multiply(dgx + r0 * GH, GH, rows, dIn + r0 * Din, Din);
      else
        MatMap<S>(dIn + r0 * Din, rows, Din).noalias() =
            Dgx.middleRows(r0, rows) * ConstMatMap<S>(a.params + Pl.w_ih, GH, Din);
    });
    dY = dIn;  // the next buffer to write is the other one
    dIn = dIn == p.dy_b.data() ? p.dy_a.data() : p.dy_b.data();
  }
  if (a.dx) {  // dY now holds dL/dx [T, n, D]
    for (Index j = 0; j < n; ++j) {
      const Index b = seq(j);
      for (Index t = 0; t < T; ++t)
        std::memcpy(a.dx + (b * T + t) * D, dY + (t * n + j) * D, sizeof(S) * D);
    }
  }
}

template <class S>
void Stack<S>::load_state(const Run<S>& run, S* rows, const S* src, const Part& p, Index k) const {
  const Index P = run.num_parts(), H = H_, B = run.B_;
  for (Index j = 0; j < p.n; ++j) {
    if (src)
      std::memcpy(rows + j * H, src + (k * B + run.order_[p.r0 + j * P]) * H, sizeof(S) * H);
    else
      std::fill(rows + j * H, rows + (j + 1) * H, S(0));
  }
}

template <class S>
void Stack<S>::store_state(const Run<S>& run, S* dst, const S* rows, const Part& p, Index k) const {
  if (!dst) return;
  const Index P = run.num_parts(), H = H_, B = run.B_;
  for (Index j = 0; j < p.n; ++j)
    std::memcpy(dst + (k * B + run.order_[p.r0 + j * P]) * H, rows + j * H, sizeof(S) * H);
}

template <class S>
void Stack<S>::record(const Run<S>& run, S* out, const Part& p, Index k, Index t, const S* rows,
                      Index na) const {
  const Index P = run.num_parts();
  for (Index j = 0; j < na; ++j) {
    const Index b = run.order_[p.r0 + j * P];
    std::memcpy(out + ((k * run.B_ + b) * run.T_ + t) * H_, rows + j * H_, sizeof(S) * H_);
  }
}

template <class S>
void Stack<S>::trace(const Run<S>& run, S* gates, S* h, S* c) const {
  if (!run.have_forward_)
    throw std::logic_error("trace() needs a training forward() and no backward() since");
  const Index T = run.T_, H = H_, GH = G_ * H_, P = run.num_parts(), Lr = run.num_layers();
  const bool cell = has_cell_state(cell_);
  const int from = dispatch_cell(cell_, [](auto c) { return decltype(c)::kTraceFrom; });
  for (const Part& p : run.parts_) {
    const Index n = p.n;
    for (Index k = 0; k < Lr; ++k)
      for (Index j = 0; j < n; ++j) {
        const Index b = run.order_[p.r0 + j * P], lj = run.len_[p.r0 + j * P];
        for (Index t = 0; t < T; ++t) {
          const Index at = (k * run.B_ + b) * T + t;
          const bool live = t < lj;
          const Index st = (k * (T + 1) + t + 1) * n + j;  // slot t+1 of layer k
          if (gates) {
            S* dst = gates + at * GH;
            const S* src = from == 0   ? p.gates.data() + ((k * T + t) * n + j) * GH
                           : from == 1 ? p.hs.data() + st * H
                                       : p.cs.data() + st * H;
            if (live)
              std::memcpy(dst, src, sizeof(S) * GH);
            else
              std::fill(dst, dst + GH, S(0));
          }
          if (h) {
            if (live)
              std::memcpy(h + at * H, p.hs.data() + st * H, sizeof(S) * H);
            else
              std::fill(h + at * H, h + (at + 1) * H, S(0));
          }
          if (c && cell) {
            if (live)
              std::memcpy(c + at * H, p.cs.data() + st * H, sizeof(S) * H);
            else
              std::fill(c + at * H, c + (at + 1) * H, S(0));
          }
        }
      }
  }
}

template class Run<float>;
template class Run<double>;
template class Stack<float>;
template class Stack<double>;

}  // namespace LSTM_NATIVE_ISA_NS
}  // namespace lstm_native
