// The only pybind11 file: thin wrappers that check every array (dtype, C order, shape,
// writability) and hand raw pointers to the core with the GIL released. Nothing is copied:
// the Python layer (lstm_native/nn.py) allocates outputs and converts inputs beforehand, and a
// mismatch here raises ValueError instead of reading or writing out of bounds.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "lstm_native/model.hpp"
#include "lstm_native/sequence.hpp"
#include "lstm_native/stream.hpp"
#include "lstm_native/threads.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace py = pybind11;
using namespace lstm_native;

namespace {

// The GIL is released for every core call that computes (it may take seconds) and taken back at
// its end. Except when the interpreter is finalizing (the main thread exited while a daemon
// thread was inside a call): taking the GIL then ends the thread with pthread_exit, whose forced
// unwinding through C++ frames aborts the whole process ("terminate called without an active
// exception"). Such a thread can never run Python again, so it parks until the process ends
// instead, which is what Python 3.14 does with its own threads. Reading the flag needs no GIL.
bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

[[noreturn]] void park_forever() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
}

void park_if_finalizing() {
  if (interpreter_finalizing()) park_forever();
}

class ReleaseGil {
 public:
  ReleaseGil() : state_(PyEval_SaveThread()) {}
  ~ReleaseGil() {
    park_if_finalizing();
    PyEval_RestoreThread(state_);
  }
  ReleaseGil(const ReleaseGil&) = delete;
  ReleaseGil& operator=(const ReleaseGil&) = delete;

 private:
  PyThreadState* state_;
};

// Takes the GIL from inside a ReleaseGil scope (the epoch's between-batch hook), parking
// instead when the interpreter is finalizing (see above).
class AcquireGil {
 public:
  AcquireGil() : checked_((park_if_finalizing(), true)) {}

 private:
  bool checked_;                // initialized first: the check runs before the GIL is taken
  py::gil_scoped_acquire gil_;
};

std::string shape_str(const std::vector<Index>& s) {
  std::ostringstream o;
  o << "(";
  for (std::size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

// Returns a pointer into `o` after checking it is an ndarray of dtype T, C-contiguous, of
// exactly `shape`, and writeable if `out`. None gives nullptr when `optional`.
template <class T>
T* array_ptr(const py::object& o, const char* name, const std::vector<Index>& shape,
             bool optional, bool out) {
  if (o.is_none()) {
    if (optional) return nullptr;
    throw py::value_error(std::string(name) + " is required");
  }
  if (!py::isinstance<py::array>(o))
    throw py::value_error(std::string(name) + " must be a numpy array");
  auto a = py::reinterpret_borrow<py::array>(o);
  if (!py::isinstance<py::array_t<T, 0>>(o))  // equivalent dtype (an unpickled one is a copy)
    throw py::value_error(std::string(name) + " must have dtype " +
                          std::string(py::str(py::dtype::of<T>())) + ", got " +
                          std::string(py::str(a.dtype())));
  std::vector<Index> got(a.shape(), a.shape() + a.ndim());
  if (got != shape)
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " +
                          shape_str(got));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  if (out && !a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
  return static_cast<T*>(out ? a.mutable_data() : const_cast<void*>(a.data()));
}

// Sizes from Python are checked before the core computes with them. Non-positive ones are left
// to the core (ValueError naming them); absurd ones would overflow its Index arithmetic (a
// wrong layout, a crash) or loop for hours building a layout, so a request beyond
// kMaxBytes raises MemoryError naming the size. (The Python layer refuses, from the memory
// actually available, much earlier; this guards direct use of _core.)
constexpr double kMaxBytes = 70368744177664.0;  // 2^46 = 64 TiB

void check_sizes(const char* what, CellKind cell, Index D, Index H, Index L, Index O, Index dirs,
                 Index batch, std::size_t scalar) {
  if (D < 1 || H < 1 || L < 1 || O < 1 || batch < 1) return;
  const double G = num_gates(cell), h = double(H), l = double(L),
               in = std::max(double(D), double(dirs) * h);  // in double: no Index overflow
  // weights and biases, the cells' extra parameters (at most h*h + 3h per layer), the head
  const double params = l * double(dirs) * (G * h * (in + h) + 2 * G * h + h * h + 3 * h) +
                        double(O) * (double(dirs) * h + 1);
  // parameters, their packed copies, per-layer bookkeeping, one step's state of `batch` rows
  const double bytes = 2 * params * double(scalar) + 512 * l * double(dirs) +
                       double(batch) * l * double(dirs) * (G + 2) * h * double(scalar);
  if (bytes > kMaxBytes) {
    std::ostringstream o;
    o << what << ": input_size=" << D << ", hidden_size=" << H << ", num_layers=" << L
      << ", output_size=" << O << ", batch=" << batch << " would need about " << bytes / 1099511627776.0
      << " TiB, more than the " << kMaxBytes / 1099511627776.0 << " TiB this build accepts";
    PyErr_SetString(PyExc_MemoryError, o.str().c_str());
    throw py::error_already_set();
  }
}

template <class S>
void bind_recurrent(py::module_& m, const char* name) {
  using R = Recurrent<S>;
  py::class_<R>(m, name)
      .def(py::init([](const std::string& cell, Index D, Index H, Index L, bool bias) {
             const CellKind k = parse_cell(cell);
             check_sizes("Recurrent", k, D, H, L, 1, 1, 1, sizeof(S));
             return new R(k, D, H, L, bias);
           }),
           py::arg("cell"), py::arg("input_size"), py::arg("hidden_size"),
           py::arg("num_layers") = 1, py::arg("bias") = true)
      .def_property_readonly("cell", [](const R& r) { return cell_name(r.cell()); })
      .def_property_readonly("input_size", &R::input_size)
      .def_property_readonly("hidden_size", &R::hidden_size)
      .def_property_readonly("num_layers", &R::num_layers)
      .def_property_readonly("bias", &R::bias)
      .def_property_readonly("num_params", [](const R& r) { return r.layout().size; })
      .def_property_readonly("has_forward", &R::has_forward)
      .def_property("num_threads", &R::num_threads, &R::set_num_threads,
                    "threads for a call (0 = the global default)")
      .def_property_readonly("num_parts", &R::num_parts,
                             "independent batch parts of the last call (from its size only)")
      .def("layout",
           [](const R& r) {
             py::list out;
             for (const auto& t : r.layout().tensors) {
               py::tuple shape = t.cols ? py::tuple(py::make_tuple(t.rows, t.cols)) : py::tuple(py::make_tuple(t.rows));
               out.append(py::make_tuple(t.name, t.offset, shape));
             }
             return out;
           },
           "[(name, offset, shape)] of each parameter in the flat buffer")
      .def(
          "forward",
          [](R& r, const py::object& params, const py::object& x, const py::object& lengths,
             const py::object& h0, const py::object& c0, const py::object& y,
             const py::object& hT, const py::object& cT, bool train) {
            if (!py::isinstance<py::array>(x) || py::reinterpret_borrow<py::array>(x).ndim() != 3)
              throw py::value_error("x must be a 3-D array (batch, time, features)");
            auto xa = py::reinterpret_borrow<py::array>(x);
            const Index B = xa.shape(0), T = xa.shape(1), D = r.input_size(), H = r.hidden_size(),
                        L = r.num_layers();
            const bool cell = has_cell_state(r.cell());
            const S* p = array_ptr<S>(params, "params", {r.layout().size}, false, false);
            const S* xp = array_ptr<S>(x, "x", {B, T, D}, false, false);
            const auto* lp = array_ptr<std::int64_t>(lengths, "lengths", {B}, true, false);
            const S* h0p = array_ptr<S>(h0, "h0", {L, B, H}, true, false);
            const S* c0p = cell ? array_ptr<S>(c0, "c0", {L, B, H}, true, false) : nullptr;
            S* yp = array_ptr<S>(y, "y", {B, T, H}, false, true);
            S* hTp = array_ptr<S>(hT, "hT", {L, B, H}, true, true);
            S* cTp = cell ? array_ptr<S>(cT, "cT", {L, B, H}, true, true) : nullptr;
            ReleaseGil release;
            r.forward(p, xp, B, T, lp, h0p, c0p, yp, hTp, cTp, train);
          },
          py::arg("params"), py::arg("x"), py::arg("lengths"), py::arg("h0"), py::arg("c0"),
          py::arg("y"), py::arg("hT"), py::arg("cT"), py::arg("train") = true,
          "Forward over x [B, T, D] into y [B, T, H], hT and cT [L, B, H] (outputs preallocated).")
      .def(
          "backward",
          [](R& r, const py::object& params, const py::object& dy, const py::object& dhT,
             const py::object& dcT, const py::object& dparams, const py::object& dx,
             const py::object& dh0, const py::object& dc0, const py::object& dhs,
             const py::object& dcs) {
            if (!r.has_forward())
              throw py::value_error("backward() needs a preceding forward()");
            const Index B = r.batch(), T = r.steps(), D = r.input_size(), H = r.hidden_size(),
                        L = r.num_layers(), P = r.layout().size;
            const bool cell = has_cell_state(r.cell());
            const S* p = array_ptr<S>(params, "params", {P}, false, false);
            const S* dyp = array_ptr<S>(dy, "dy", {B, T, H}, true, false);
            const S* dhTp = array_ptr<S>(dhT, "dhT", {L, B, H}, true, false);
            const S* dcTp = cell ? array_ptr<S>(dcT, "dcT", {L, B, H}, true, false) : nullptr;
            S* dpp = array_ptr<S>(dparams, "dparams", {P}, false, true);
            S* dxp = array_ptr<S>(dx, "dx", {B, T, D}, true, true);
            S* dh0p = array_ptr<S>(dh0, "dh0", {L, B, H}, true, true);
            S* dc0p = cell ? array_ptr<S>(dc0, "dc0", {L, B, H}, true, true) : nullptr;
            S* dhsp = array_ptr<S>(dhs, "dhs", {L, B, T, H}, true, true);
            S* dcsp = cell ? array_ptr<S>(dcs, "dcs", {L, B, T, H}, true, true) : nullptr;
            ReleaseGil release;
            r.backward(p, dyp, dhTp, dcTp, dpp, dxp, dh0p, dc0p, dhsp, dcsp);
          },
          py::arg("params"), py::arg("dy"), py::arg("dhT"), py::arg("dcT"), py::arg("dparams"),
          py::arg("dx"), py::arg("dh0"), py::arg("dc0"), py::arg("dhs") = py::none(),
          py::arg("dcs") = py::none(),
          "BPTT for the last forward; adds parameter gradients into dparams.")
      .def(
          "trace",
          [](const R& r, const py::object& gates, const py::object& h, const py::object& c) {
            if (!r.has_forward())
              throw py::value_error("trace() needs a training forward() (and no backward() since)");
            const Index B = r.batch(), T = r.steps(), H = r.hidden_size(), L = r.num_layers(),
                        GH = num_gates(r.cell()) * H;
            S* gp = array_ptr<S>(gates, "gates", {L, B, T, GH}, true, true);
            S* hp = array_ptr<S>(h, "h", {L, B, T, H}, true, true);
            S* cp = has_cell_state(r.cell()) ? array_ptr<S>(c, "c", {L, B, T, H}, true, true)
                                             : nullptr;
            ReleaseGil release;
            r.trace(gp, hp, cp);
          },
          py::arg("gates"), py::arg("h"), py::arg("c"),
          "Activated gates [L, B, T, G*H] and states h, c [L, B, T, H] of the last forward.");
}

Solver parse_solver(const std::string& s) {
  if (s == "sgd") return Solver::kSgd;
  if (s == "adam") return Solver::kAdam;
  if (s == "adamw") return Solver::kAdamW;
  if (s == "rmsprop") return Solver::kRmsprop;
  throw py::value_error("solver must be one of 'sgd', 'adam', 'adamw', 'rmsprop', got '" + s + "'");
}

// A data set as the Model's calls take it: X [N, T, D], lengths [N], targets, sample weights.
template <class S>
struct DataArgs {
  Index N, T;
  const S *x, *y, *sw;
  const std::int64_t* lengths;
};

template <class S>
std::vector<Index> target_shape(const Model<S>& m, Index N, Index T);

// Checks and unwraps X, lengths and (if `with_targets`) Y and sample_weight.
template <class S>
DataArgs<S> data_args(const Model<S>& m, const py::object& X, const py::object& lengths,
                      const py::object& Y, const py::object& sw, bool with_targets) {
  if (!py::isinstance<py::array>(X) || py::reinterpret_borrow<py::array>(X).ndim() != 3)
    throw py::value_error("X must be a 3-D array (n_samples, n_timesteps, n_features)");
  auto xa = py::reinterpret_borrow<py::array>(X);
  DataArgs<S> d{xa.shape(0), xa.shape(1), nullptr, nullptr, nullptr, nullptr};
  d.x = array_ptr<S>(X, "X", {d.N, d.T, m.config().input_size}, false, false);
  d.lengths = array_ptr<std::int64_t>(lengths, "lengths", {d.N}, true, false);
  if (with_targets) {
    d.y = array_ptr<S>(Y, "Y", target_shape(m, d.N, d.T), false, false);
    d.sw = array_ptr<S>(sw, "sample_weight", {d.N}, true, false);
  }
  return d;
}

// Expected shape of the targets: mse [N, O] / [N, T, O]; softmax class indices [N] / [N, T].
template <class S>
std::vector<Index> target_shape(const Model<S>& m, Index N, Index T) {
  const auto& c = m.config();
  std::vector<Index> s{N};
  if (c.return_sequences) s.push_back(T);
  if (c.loss == LossKind::kMse) s.push_back(c.output_size);
  return s;
}

template <class S>
void bind_model(py::module_& m, const char* name) {
  using M = Model<S>;
  py::class_<M>(m, name)
      .def(py::init([](const std::string& cell, Index D, Index H, Index L, Index O, bool bias,
                       bool bidirectional, bool return_sequences, double dropout,
                       const std::string& loss) {
             ModelConfig c;
             c.cell = parse_cell(cell);
             c.input_size = D;
             c.hidden_size = H;
             c.num_layers = L;
             c.output_size = O;
             c.bias = bias;
             c.bidirectional = bidirectional;
             c.return_sequences = return_sequences;
             c.dropout = dropout;
             if (loss == "mse")
               c.loss = LossKind::kMse;
             else if (loss == "softmax")
               c.loss = LossKind::kSoftmax;
             else
               throw py::value_error("loss must be 'mse' or 'softmax', got '" + loss + "'");
             check_sizes("Model", c.cell, D, H, L, O, bidirectional ? 2 : 1, 1, sizeof(S));
             return new M(c);
           }),
           py::arg("cell"), py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"),
           py::arg("output_size"), py::kw_only(), py::arg("bias") = true,
           py::arg("bidirectional") = false, py::arg("return_sequences") = false,
           py::arg("dropout") = 0.0, py::arg("loss") = "mse")
      .def_property_readonly("num_params", &M::num_params)
      .def_property("num_threads", &M::num_threads, &M::set_num_threads,
                    "threads per call (0 = the global default); results do not depend on it")
      .def("layout",
           [](const M& mo) {
             py::list out;
             for (const auto& t : mo.tensors()) {
               py::tuple shape = t.cols ? py::tuple(py::make_tuple(t.rows, t.cols))
                                        : py::tuple(py::make_tuple(t.rows));
               out.append(py::make_tuple(t.name, t.offset, shape));
             }
             return out;
           })
      .def(
          "train_epoch",
          [](M& mo, const py::object& params, const py::object& mom, const py::object& vel,
             std::int64_t step, const py::object& X, const py::object& lengths,
             const py::object& Y, const py::object& sw, Index batch_size, bool shuffle,
             std::uint64_t seed, const std::string& solver, double lr, double alpha,
             double momentum, bool nesterov, double beta1, double beta2, double eps,
             double max_grad_norm, const py::object& callback) {
            const auto d = data_args(mo, X, lengths, Y, sw, true);
            const Index P = mo.num_params();
            S* p = array_ptr<S>(params, "params", {P}, false, true);
            S* mp = array_ptr<S>(mom, "m", {P}, false, true);
            S* vp = array_ptr<S>(vel, "v", {P}, false, true);
            OptimConfig oc;
            oc.solver = parse_solver(solver);
            oc.lr = lr;
            oc.alpha = alpha;
            oc.momentum = momentum;
            oc.nesterov = nesterov;
            oc.beta1 = beta1;
            oc.beta2 = beta2;
            oc.eps = eps;
            oc.max_grad_norm = max_grad_norm;
            oc.batch_size = batch_size;
            oc.shuffle = shuffle;
            oc.seed = seed;
            // Between minibatches, at most every 100 ms: take the GIL, let Python handle
            // signals (Ctrl-C raises KeyboardInterrupt here, at a batch boundary) and report
            // progress to `callback(samples_done, n_samples)` if one is given.
            using Clock = std::chrono::steady_clock;
            auto last = Clock::now();
            auto hook = [&](Index done, Index total) {
              const auto now = Clock::now();
              if (now - last < std::chrono::milliseconds(100) && done < total) return;
              last = now;
              AcquireGil gil;
              if (PyErr_CheckSignals() != 0) throw py::error_already_set();
              if (!callback.is_none()) callback(done, total);
            };
            double loss;
            {
              ReleaseGil release;
              loss = mo.train_epoch(p, mp, vp, &step, d.x, d.N, d.T, d.lengths, d.y, d.sw, oc, hook);
            }
            return py::make_tuple(loss, step);
          },
          py::arg("params"), py::arg("m"), py::arg("v"), py::arg("step"), py::arg("X"),
          py::arg("lengths"), py::arg("Y"), py::arg("sample_weight"), py::kw_only(),
          py::arg("batch_size"), py::arg("shuffle"), py::arg("seed"), py::arg("solver"),
          py::arg("lr"), py::arg("alpha"), py::arg("momentum") = 0.9, py::arg("nesterov") = true,
          py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8,
          py::arg("max_grad_norm") = 0.0, py::arg("callback") = py::none(),
          "One epoch of minibatch training in C++; returns (mean loss, optimizer step count).")
      .def(
          "predict",
          [](M& mo, const py::object& params, const py::object& X, const py::object& lengths,
             const py::object& out) {
            const auto d = data_args(mo, X, lengths, py::none(), py::none(), false);
            const auto& c = mo.config();
            const S* p = array_ptr<S>(params, "params", {mo.num_params()}, false, false);
            std::vector<Index> os{d.N};
            if (c.return_sequences) os.push_back(d.T);
            os.push_back(c.output_size);
            S* op = array_ptr<S>(out, "out", os, false, true);
            ReleaseGil release;
            mo.predict(p, d.x, d.N, d.T, d.lengths, op);
          },
          py::arg("params"), py::arg("X"), py::arg("lengths"), py::arg("out"))
      .def(
          "loss",
          [](M& mo, const py::object& params, const py::object& X, const py::object& lengths,
             const py::object& Y, const py::object& sw, double alpha) {
            const auto d = data_args(mo, X, lengths, Y, sw, true);
            const S* p = array_ptr<S>(params, "params", {mo.num_params()}, false, false);
            ReleaseGil release;
            return mo.loss(p, d.x, d.N, d.T, d.lengths, d.y, d.sw, alpha, nullptr);
          },
          py::arg("params"), py::arg("X"), py::arg("lengths"), py::arg("Y"),
          py::arg("sample_weight"), py::arg("alpha"))
      .def(
          "loss_and_grad",
          [](M& mo, const py::object& params, const py::object& X, const py::object& lengths,
             const py::object& Y, const py::object& sw, double alpha, const py::object& grad) {
            const auto d = data_args(mo, X, lengths, Y, sw, true);
            const S* p = array_ptr<S>(params, "params", {mo.num_params()}, false, false);
            S* gp = array_ptr<S>(grad, "grad", {mo.num_params()}, false, true);
            ReleaseGil release;
            return mo.loss(p, d.x, d.N, d.T, d.lengths, d.y, d.sw, alpha, gp);
          },
          py::arg("params"), py::arg("X"), py::arg("lengths"), py::arg("Y"),
          py::arg("sample_weight"), py::arg("alpha"), py::arg("grad"))
      .def(
          "stream",
          [](const M& mo, const py::object& params, Index batch) {
            const S* p = array_ptr<S>(params, "params", {mo.num_params()}, false, false);
            const auto& c = mo.config();
            check_sizes("stream", c.cell, c.input_size, c.hidden_size, c.num_layers,
                        c.output_size, c.bidirectional ? 2 : 1, batch, sizeof(S));
            return new Stream<S>(mo, p, batch);
          },
          py::arg("params"), py::arg("batch") = 1,
          "A Stream that runs these parameters one timestep at a time (copies them).");
}

// A stream carries its state from step to step, so one NaN or infinity fed to it would poison
// every later output until reset(): its inputs and states are checked here and refused with
// ValueError, the state left as it was. values_of<S> returns `o` as a C-contiguous array of S
// holding only finite values. The hot path (an array that already has dtype S and C order)
// takes it as is and only scans it; anything else (other real dtypes, lists, object arrays of
// numbers) goes through float64, and a value beyond S's range is refused rather than rounded
// to infinity.
template <class S>
py::array_t<S, py::array::c_style> values_of(const py::object& o, const char* name) {
  using Arr = py::array_t<S, py::array::c_style>;
  auto bad = [&](const std::string& why) { return py::value_error(std::string(name) + why); };
  if (py::isinstance<Arr>(o)) {
    auto a = py::reinterpret_borrow<Arr>(o);
    const S* p = a.data();
    for (py::ssize_t i = 0, n = a.size(); i < n; ++i)
      if (!std::isfinite(p[i])) throw bad(" contains NaN or infinity");
    return a;
  }
  py::module_ np = py::module_::import("numpy");
  py::array a;
  try {
    a = np.attr("asarray")(o);
    const char kind = a.dtype().kind();
    if (kind == 'O')  // numbers in an object array convert; None or strings raise below
      a = np.attr("asarray")(o, py::arg("dtype") = np.attr("float64"));
    else if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
      throw bad(" must hold real numbers, got dtype " + std::string(py::str(a.dtype())));
  } catch (py::error_already_set& e) {
    throw bad(std::string(" must be a real numeric array: ") + e.what());
  }
  auto d = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!d) throw bad(" must be a real numeric array");
  std::vector<py::ssize_t> shape(d.shape(), d.shape() + d.ndim());
  Arr out(shape);
  const double* src = d.data();
  S* dst = out.mutable_data();
  for (py::ssize_t i = 0, n = d.size(); i < n; ++i) {
    if (!std::isfinite(src[i])) throw bad(" contains NaN or infinity");
    if (std::abs(src[i]) > double(std::numeric_limits<S>::max()))
      throw bad(" holds " + std::to_string(src[i]) + ", beyond the range of " +
                std::string(py::str(py::dtype::of<S>())));
    dst[i] = S(src[i]);
  }
  return out;
}

// Stream.step is the per-sample hot path from Python: the input is taken as is when it already
// has the right dtype and order (converted otherwise), and `out`, when given, is written in place
// so that a loop allocates nothing.
template <class S>
void bind_stream(py::module_& m, const char* name) {
  using St = Stream<S>;
  using Arr = py::array_t<S, py::array::c_style>;
  py::class_<St>(m, name)
      .def_property_readonly("batch", &St::batch)
      .def_property_readonly("input_size", &St::input_size)
      .def_property_readonly("output_size", &St::output_size)
      .def(
          "step",
          [](St& st, const py::object& xo, const py::object& out) -> py::object {
            const Index B = st.batch(), D = st.input_size(), O = st.output_size();
            const Arr x = values_of<S>(xo, "x");
            const bool flat = x.ndim() == 1;
            if (!((flat && B == 1 && x.shape(0) == D) ||
                  (x.ndim() == 2 && x.shape(0) == B && x.shape(1) == D)))
              throw py::value_error("x must have shape " +
                                    (B == 1 ? "(" + std::to_string(D) + ",) or " : std::string()) +
                                    "(" + std::to_string(B) + ", " + std::to_string(D) + ")");
            py::object res = out;
            S* op;
            if (out.is_none()) {
              Arr o = flat ? Arr({O}) : Arr({B, O});
              op = o.mutable_data();
              res = std::move(o);
            } else {
              op = array_ptr<S>(out, "out", flat ? std::vector<Index>{O} : std::vector<Index>{B, O},
                                false, true);
            }
            st.step(x.data(), op);
            return res;
          },
          py::arg("x"), py::arg("out") = py::none(),
          "Feeds one timestep x [D] or [batch, D]; returns the output [O] or [batch, O].\n"
          "ValueError for NaN, infinity or values beyond the dtype's range (the state is kept).")
      .def("reset", &St::reset, "Zero the state.")
      .def_property("num_threads", &St::num_threads, &St::set_num_threads,
                    "Threads a step may use (large steps split their columns over two)")
      .def_property(
          "state",
          [](St& st) {
            const Index L = st.num_layers(), B = st.batch(), H = st.hidden_size();
            Arr h({L, B, H});
            std::copy(st.h(), st.h() + L * B * H, h.mutable_data());
            if (!st.has_cell_state()) return py::object(h);
            Arr c({L, B, H});
            std::copy(st.c(), st.c() + L * B * H, c.mutable_data());
            return py::object(py::make_tuple(h, c));
          },
          [](St& st, const py::object& state) {
            const Index L = st.num_layers(), B = st.batch(), H = st.hidden_size();
            py::object h = state, c = py::none();
            if (st.has_cell_state()) {
              if (!py::isinstance<py::tuple>(state) && !py::isinstance<py::list>(state))
                throw py::value_error("state must be a tuple (h, c)");
              auto t = py::reinterpret_borrow<py::sequence>(state);
              if (t.size() != 2) throw py::value_error("state must be a tuple (h, c)");
              h = t[0];
              c = t[1];
            }
            // Both parts are checked before either is written: a refused state changes nothing.
            const Arr ha = values_of<S>(h, "state h");
            const S* hp = array_ptr<S>(ha, "state h", {L, B, H}, false, false);
            const S* cp = nullptr;
            Arr ca;
            if (st.has_cell_state()) {
              ca = values_of<S>(c, "state c");
              cp = array_ptr<S>(ca, "state c", {L, B, H}, false, false);
            }
            std::copy(hp, hp + L * B * H, st.h());
            if (cp) std::copy(cp, cp + L * B * H, st.c());
          },
          "(h, c) for an LSTM, else h; each [num_layers, batch, hidden] (copies). Setting it\n"
          "checks shapes and values (ValueError for NaN or infinity) before changing anything.");
}

py::dict build_info() {
  py::dict d;
  d["version"] = LSTM_NATIVE_VERSION;
#if defined(__clang__)
  d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  d["compiler"] = std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
  d["compiler"] = "msvc " + std::to_string(_MSC_VER);
#else
  d["compiler"] = "unknown";
#endif
  d["simd"] = std::string(Eigen::SimdInstructionSetsInUse());
  d["native_arch"] = bool(LSTM_NATIVE_NATIVE_ARCH);
  d["eigen_version"] = std::to_string(EIGEN_WORLD_VERSION) + "." +
                       std::to_string(EIGEN_MAJOR_VERSION) + "." +
                       std::to_string(EIGEN_MINOR_VERSION);
  d["eigen_threads"] = Eigen::nbThreads();
  d["default_threads"] = default_num_threads();
  d["hardware_threads"] = std::thread::hardware_concurrency();
#if defined(__SANITIZE_ADDRESS__)
  d["sanitizers"] = true;
#else
  d["sanitizers"] = false;
#endif
  return d;
}

// True when a float array holds no NaN or infinity: x * 0 is 0 for finite x and NaN otherwise,
// so one vectorized sum answers (without the overflow a plain sum of large values can give).
template <class S>
bool all_finite_of(const py::array& a) {
  const auto* p = static_cast<const S*>(a.data());
  const Index n = static_cast<Index>(a.size());
  auto run = [&] {
    return std::isfinite((Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>(p, n) * S(0)).sum());
  };
  if (n < (Index(1) << 16)) return run();
  ReleaseGil release;
  return run();
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "lstm_native compiled core (Eigen): recurrent layers forward and BPTT";
  bind_recurrent<float>(m, "Recurrent32");
  bind_recurrent<double>(m, "Recurrent64");
  bind_model<float>(m, "Model32");
  bind_model<double>(m, "Model64");
  bind_stream<float>(m, "Stream32");
  bind_stream<double>(m, "Stream64");
  {
    py::list names;
    for (int i = 0; cell_names()[i]; ++i) names.append(cell_names()[i]);
    m.attr("CELLS") = py::tuple(names);
  }
  m.def(
      "cell_info",
      [](const std::string& name) {
        const CellKind k = parse_cell(name);
        py::dict d;
        dispatch_cell(k, [&](auto c) {
          using C = decltype(c);
          d["gates"] = C::kGates;
          d["has_cell_state"] = C::kHasCell;
          d["cell_params"] = C::kCellParams;  // [H] vectors per layer (peepholes)
          d["cell_gemm"] = C::kCellGemm != kNoCellGemm;  // a weight_ch [H, H] per layer
          d["forget_block"] = C::kForgetBlock;           // -1: no forget gate
        });
        return d;
      },
      py::arg("cell"), "Structure of a cell: gates, cell state, extra parameters");
  m.def("set_num_threads", [](int n) { default_num_threads_setting().store(n < 0 ? 0 : n); },
        py::arg("n"), "Default threads per call; 0 = all hardware threads");
  m.def("get_num_threads", &default_num_threads);
  m.def(
      "all_finite",
      [](const py::array& a) {
        if (!(a.flags() & py::array::c_style))
          throw py::value_error("all_finite needs a C-contiguous array");
        if (py::isinstance<py::array_t<float, 0>>(a)) return all_finite_of<float>(a);
        if (py::isinstance<py::array_t<double, 0>>(a)) return all_finite_of<double>(a);
        throw py::value_error("all_finite needs a float32 or float64 array, got " +
                              std::string(py::str(a.dtype())));
      },
      py::arg("a"), "No NaN or infinity in a C-contiguous float32/float64 array");
  m.def("build_info", &build_info, "How the core was compiled: compiler, SIMD, Eigen, threads");
}
