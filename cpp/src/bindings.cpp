// The only pybind11 file: thin wrappers that check every array (dtype, C order, shape,
// writability) and hand raw pointers to the core with the GIL released. Nothing is copied:
// the Python layer (lstm_native/nn.py) allocates outputs and converts inputs beforehand, and a
// mismatch here raises ValueError instead of reading or writing out of bounds. Errors: the
// core's ArgumentError -> ValueError, TooLarge -> MemoryError (pybind11's std::invalid_argument
// and std::bad_alloc translations).
//
// Also the configuration classes (ModelConfig, OptimConfig) and what the core knows that the
// Python layer asks instead of restating: cell structure, parameter counts and layouts,
// workspace sizes. The type stubs are python/lstm_native/_core.pyi.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "lstm_native/api.hpp"
#include "lstm_native/config.hpp"
#include "lstm_native/sizes.hpp"
#include "lstm_native/threads.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <atomic>
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
// its end. Except when the interpreter is shutting down (the main thread exited while a daemon
// thread was inside a call): taking the GIL once finalization has begun ends the thread with
// pthread_exit, whose forced unwinding through C++ frames (here: a destructor, noexcept)
// aborts the whole process ("terminate called without an active exception"). Such a thread can
// never run Python again, so it parks until the process ends instead, which is what Python 3.14
// does with its own threads.
//
// Checking Py_IsFinalizing() before taking the GIL leaves a race: finalization may begin
// between the check and the take. So an atexit hook (registered at import; atexit runs before
// finalization begins, while the GIL can still be taken) raises `exiting`, then lets go of the
// GIL until every thread that passed the check without seeing the flag (`in_flight`) has taken
// and released it again. Both sides use sequentially consistent atomics: either a thread sees
// the flag and parks, or the hook sees it in flight and waits for it (Dekker's argument). The
// thread running the hook (the finalizing one) never parks: its own later calls must work.
std::atomic<bool>& exiting() {
  static std::atomic<bool> flag{false};
  return flag;
}
std::atomic<int>& in_flight() {
  static std::atomic<int> n{0};
  return n;
}
std::atomic<std::thread::id>& exiting_thread() {
  static std::atomic<std::thread::id> id{};
  return id;
}

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

// Runs `take` (which takes the GIL) unless this thread must park instead (see above).
template <class Take>
void take_gil_or_park(Take take) {
  in_flight().fetch_add(1);
  if ((exiting().load() && std::this_thread::get_id() != exiting_thread().load()) ||
      interpreter_finalizing()) {
    in_flight().fetch_sub(1);
    park_forever();
  }
  take();
  in_flight().fetch_sub(1);
}

// The atexit hook (with the GIL): raise the flag, then wait without the GIL, for at most 5 s,
// for the threads in flight to get through.
void on_interpreter_exit() {
  exiting_thread().store(std::this_thread::get_id());
  exiting().store(true);
  py::gil_scoped_release release;
  for (int i = 0; i < 5000 && in_flight().load() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// No NaN or infinity in p [n]: x * 0 is 0 for finite x and NaN otherwise, so one vectorized
// sum answers (without the overflow a plain sum of large values can give). The kernel sets'
// code has the same (types.hpp all_finite); this translation unit is outside them.
template <class S>
bool finite_values(const S* p, Index n) {
  return std::isfinite((Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>(p, n) * S(0)).sum());
}

class ReleaseGil {
 public:
  ReleaseGil() : state_(PyEval_SaveThread()) {}
  ~ReleaseGil() {
    take_gil_or_park([this] { PyEval_RestoreThread(state_); });
  }
  ReleaseGil(const ReleaseGil&) = delete;
  ReleaseGil& operator=(const ReleaseGil&) = delete;

 private:
  PyThreadState* state_;
};

// Takes the GIL from inside a ReleaseGil scope (the epoch's between-batch hook), parking
// instead when the interpreter is shutting down (see above).
class AcquireGil {
 public:
  AcquireGil() {
    take_gil_or_park([this] { state_ = PyGILState_Ensure(); });
  }
  ~AcquireGil() { PyGILState_Release(state_); }
  AcquireGil(const AcquireGil&) = delete;
  AcquireGil& operator=(const AcquireGil&) = delete;

 private:
  PyGILState_STATE state_;
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
T* array_ptr(const py::object& o, const char* name, const std::vector<Index>& shape, bool optional,
             bool out) {
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

// [(name, offset, shape)] of a layout's tensors, as layout() returns them.
py::list layout_list(const std::vector<ParamLayout::Tensor>& tensors) {
  py::list out;
  for (const auto& t : tensors) {
    py::tuple shape =
        t.cols ? py::tuple(py::make_tuple(t.rows, t.cols)) : py::tuple(py::make_tuple(t.rows));
    out.append(py::make_tuple(t.name, t.offset, shape));
  }
  return out;
}

// A recurrent stack as nn's layer describes it, validated (ValueError for a bad value).
ModelConfig stack_config(const std::string& cell, Index D, Index H, Index L, bool bias) {
  ModelConfig c;
  c.cell = parse_cell(cell);
  c.input_size = D;
  c.hidden_size = H;
  c.num_layers = L;
  c.bias = bias;
  c.validate();
  return c;
}

// ---------------------------------------------------------------------------------------------
// Recurrent32/64: nn's layer
// ---------------------------------------------------------------------------------------------

template <class S>
void recurrent_forward(RecurrentApi<S>& r, const py::object& params, const py::object& x,
                       const py::object& lengths, const py::object& h0, const py::object& c0,
                       const py::object& y, const py::object& hT, const py::object& cT,
                       bool train) {
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
}

template <class S>
void recurrent_backward(RecurrentApi<S>& r, const py::object& params, const py::object& dy,
                        const py::object& dhT, const py::object& dcT, const py::object& dparams,
                        const py::object& dx, const py::object& dh0, const py::object& dc0,
                        const py::object& dhs, const py::object& dcs) {
  if (!r.has_forward()) throw py::value_error("backward() needs a preceding forward()");
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
}

template <class S>
void recurrent_trace(const RecurrentApi<S>& r, const py::object& gates, const py::object& h,
                     const py::object& c) {
  if (!r.has_forward())
    throw py::value_error("trace() needs a training forward() (and no backward() since)");
  const Index B = r.batch(), T = r.steps(), H = r.hidden_size(), L = r.num_layers(),
              GH = num_gates(r.cell()) * H;
  S* gp = array_ptr<S>(gates, "gates", {L, B, T, GH}, true, true);
  S* hp = array_ptr<S>(h, "h", {L, B, T, H}, true, true);
  S* cp = has_cell_state(r.cell()) ? array_ptr<S>(c, "c", {L, B, T, H}, true, true) : nullptr;
  ReleaseGil release;
  r.trace(gp, hp, cp);
}

// Recurrent.count_params (a static method): parameters of such a layer without building it.
Index recurrent_count_params(const std::string& cell, Index D, Index H, Index L, bool bias) {
  const ModelConfig c = stack_config(cell, D, H, L, bias);
  return count_params(c.cell, D, H, L, 1, bias).v;  // TooLarge (MemoryError) beyond 2^63
}

template <class S>
Index recurrent_workspace(const RecurrentApi<S>& r, Index batch, Index steps, bool train) {
  require(batch >= 0 && steps >= 0, "batch and steps must be >= 0");
  return r.workspace_elements(batch, steps, train);
}

template <class S>
void bind_recurrent_calls(py::class_<RecurrentApi<S>>& cls) {
  using R = RecurrentApi<S>;
  cls.def("workspace_elements", &recurrent_workspace<S>, py::arg("batch"), py::arg("steps"),
          py::arg("train"),
          "Scalars of workspace for a forward on `batch` sequences of `steps` steps (and, with\n"
          "train, its backward with dy and dx); sized by the code that sizes the buffers")
      .def("allocated_elements", &R::allocated_elements, "Scalars the workspace holds now")
      .def("forward", &recurrent_forward<S>, py::arg("params"), py::arg("x"), py::arg("lengths"),
           py::arg("h0"), py::arg("c0"), py::arg("y"), py::arg("hT"), py::arg("cT"),
           py::arg("train") = true,
           "Forward over x [B, T, D] into y [B, T, H], hT and cT [L, B, H] (outputs preallocated).")
      .def("backward", &recurrent_backward<S>, py::arg("params"), py::arg("dy"), py::arg("dhT"),
           py::arg("dcT"), py::arg("dparams"), py::arg("dx"), py::arg("dh0"), py::arg("dc0"),
           py::arg("dhs") = py::none(), py::arg("dcs") = py::none(),
           "BPTT for the last forward; adds parameter gradients into dparams.")
      .def("trace", &recurrent_trace<S>, py::arg("gates"), py::arg("h"), py::arg("c"),
           "Activated gates [L, B, T, G*H] and states h, c [L, B, T, H] of the last forward.");
}

template <class S>
void bind_recurrent(py::module_& m, const char* name) {
  using R = RecurrentApi<S>;
  py::class_<R> cls(m, name);
  cls.def(py::init([](const std::string& cell, Index D, Index H, Index L, bool bias,
                      const std::string& precision) {
            const ModelConfig c = stack_config(cell, D, H, L, bias);
            const Precision p = parse_precision(precision);
            check_precision(p, sizeof(S));
            c.check_fits("Recurrent", sizeof(S));  // MemoryError: too large for this build
            return kernels().of<S>().recurrent(c.cell, D, H, L, bias, p);
          }),
          py::arg("cell"), py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers") = 1,
          py::arg("bias") = true, py::kw_only(), py::arg("precision") = "float32")
      .def_static("count_params", &recurrent_count_params, py::arg("cell"), py::arg("input_size"),
                  py::arg("hidden_size"), py::arg("num_layers") = 1, py::arg("bias") = true,
                  "Parameters of such a layer, without building it (MemoryError beyond 2**63)")
      .def_property_readonly("cell", [](const R& r) { return cell_name(r.cell()); })
      .def_property_readonly("input_size", &R::input_size)
      .def_property_readonly("hidden_size", &R::hidden_size)
      .def_property_readonly("num_layers", &R::num_layers)
      .def_property_readonly("bias", &R::bias)
      .def_property_readonly(
          "precision", [](const R& r) { return precision_name(r.precision()); },
          "'float32' or 'bfloat16' (the recurrent products' operands)")
      .def_property_readonly("num_params", [](const R& r) { return r.layout().size; })
      .def_property_readonly("has_forward", &R::has_forward)
      .def_property("num_threads", &R::num_threads, &R::set_num_threads,
                    "threads for a call (0 = the global default)")
      .def_property_readonly("num_parts", &R::num_parts,
                             "independent batch parts of the last call (from its size only)")
      .def_property_readonly(
          "column_blocks",
          [](const R& r) {
            return py::make_tuple(r.forward_column_blocks(), r.backward_column_blocks());
          },
          "column blocks of each step's recurrent product in the last call, forward and "
          "backward (1: not split; from the sizes only)")
      .def(
          "layout", [](const R& r) { return layout_list(r.layout().tensors); },
          "[(name, offset, shape)] of each parameter in the flat buffer");
  bind_recurrent_calls(cls);
}

// ---------------------------------------------------------------------------------------------
// Model32/64
// ---------------------------------------------------------------------------------------------

// A data set as the Model's calls take it: X [N, T, D], lengths [N], targets, sample weights.
template <class S>
struct DataArgs {
  Index N, T;
  const S *x, *y, *sw;
  const std::int64_t* lengths;
};

// Expected shape of the targets: softmax class indices [N] / [N, T]; quantile [N, O/Q] /
// [N, T, O/Q]; the other losses [N, O] / [N, T, O].
std::vector<Index> target_shape(const ModelConfig& c, Index N, Index T) {
  std::vector<Index> s{N};
  if (c.return_sequences) s.push_back(T);
  if (c.loss != LossKind::kSoftmax) s.push_back(c.target_width());
  return s;
}

// Checks and unwraps X, lengths and (if `with_targets`) Y and sample_weight.
template <class S>
DataArgs<S> data_args(const ModelApi<S>& m, const py::object& X, const py::object& lengths,
                      const py::object& Y, const py::object& sw, bool with_targets) {
  if (!py::isinstance<py::array>(X) || py::reinterpret_borrow<py::array>(X).ndim() != 3)
    throw py::value_error("X must be a 3-D array (n_samples, n_timesteps, n_features)");
  auto xa = py::reinterpret_borrow<py::array>(X);
  DataArgs<S> d{xa.shape(0), xa.shape(1), nullptr, nullptr, nullptr, nullptr};
  d.x = array_ptr<S>(X, "X", {d.N, d.T, m.config().input_size}, false, false);
  d.lengths = array_ptr<std::int64_t>(lengths, "lengths", {d.N}, true, false);
  if (with_targets) {
    d.y = array_ptr<S>(Y, "Y", target_shape(m.config(), d.N, d.T), false, false);
    d.sw = array_ptr<S>(sw, "sample_weight", {d.N}, true, false);
  }
  return d;
}

// Between minibatches, at most every 100 ms: take the GIL, let Python handle signals (Ctrl-C
// raises KeyboardInterrupt here, at a batch boundary) and report progress to
// `callback(samples_done, n_samples)` if one is given.
BatchHook batch_hook(const py::object& callback) {
  using Clock = std::chrono::steady_clock;
  return [callback, last = Clock::now()](Index done, Index total) mutable {
    const auto now = Clock::now();
    if (now - last < std::chrono::milliseconds(100) && done < total) return;
    last = now;
    AcquireGil gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (!callback.is_none()) callback(done, total);
  };
}

template <class S>
py::tuple model_train_epoch(ModelApi<S>& mo, const py::object& params, const py::object& mom,
                            const py::object& vel, std::int64_t step, const py::object& X,
                            const py::object& lengths, const py::object& Y, const py::object& sw,
                            const OptimConfig& oc, const py::object& callback) {
  const auto d = data_args(mo, X, lengths, Y, sw, true);
  const Index P = mo.num_params();
  S* p = array_ptr<S>(params, "params", {P}, false, true);
  S* mp = array_ptr<S>(mom, "m", {P}, false, true);
  S* vp = array_ptr<S>(vel, "v", {P}, false, true);
  const auto hook = batch_hook(callback);
  double loss;
  {
    ReleaseGil release;
    loss = mo.train_epoch(p, mp, vp, &step, d.x, d.N, d.T, d.lengths, d.y, d.sw, oc, hook);
  }
  return py::make_tuple(loss, step);
}

template <class S>
void model_predict(ModelApi<S>& mo, const py::object& params, const py::object& X,
                   const py::object& lengths, const py::object& out) {
  const auto d = data_args(mo, X, lengths, py::none(), py::none(), false);
  const auto& c = mo.config();
  const S* p = array_ptr<S>(params, "params", {mo.num_params()}, false, false);
  std::vector<Index> os{d.N};
  if (c.return_sequences) os.push_back(d.T);
  os.push_back(c.output_size);
  S* op = array_ptr<S>(out, "out", os, false, true);
  ReleaseGil release;
  mo.predict(p, d.x, d.N, d.T, d.lengths, op);
}

// loss (with_grad false) or loss_and_grad (grad [P], overwritten).
template <class S>
double model_loss(ModelApi<S>& mo, const py::object& params, const py::object& X,
                  const py::object& lengths, const py::object& Y, const py::object& sw,
                  double alpha, const py::object& grad, bool with_grad) {
  const auto d = data_args(mo, X, lengths, Y, sw, true);
  const S* p = array_ptr<S>(params, "params", {mo.num_params()}, false, false);
  S* gp = with_grad ? array_ptr<S>(grad, "grad", {mo.num_params()}, false, true) : nullptr;
  ReleaseGil release;
  return mo.loss(p, d.x, d.N, d.T, d.lengths, d.y, d.sw, alpha, gp);
}

template <class S>
std::unique_ptr<StreamApi<S>> model_stream(const ModelApi<S>& mo, const py::object& params,
                                           Index batch) {
  const S* p = array_ptr<S>(params, "params", {mo.num_params()}, false, false);
  return kernels().of<S>().stream(mo.config(), p, batch, mo.num_threads());
}

Index int_value(const py::handle& v, const char* name);  // (with the configurations' below)

// A rollout's feedback: a sequence of (output column, input column) pairs of ints, the
// columns in range, no input column named twice.
std::vector<Feedback> rollout_feedback(const py::object& o, Index O, Index D) {
  const char* what = "feedback must be a list of (output column, input column) pairs of ints";
  if (o.is_none()) return {};
  if (!py::isinstance<py::sequence>(o) || py::isinstance<py::str>(o)) throw py::value_error(what);
  std::vector<Feedback> pairs;
  std::vector<char> used(static_cast<std::size_t>(D), 0);
  for (const py::handle& item : py::reinterpret_borrow<py::sequence>(o)) {
    if (!py::isinstance<py::sequence>(item) || py::isinstance<py::str>(item) || py::len(item) != 2)
      throw py::value_error(std::string(what) + ", got " + std::string(py::repr(item)));
    const auto pair = py::reinterpret_borrow<py::sequence>(item);
    const Index oc = int_value(pair[0], "feedback output column");
    const Index ic = int_value(pair[1], "feedback input column");
    if (oc < 0 || oc >= O)
      throw py::value_error("feedback output column " + std::to_string(oc) +
                            " is out of range: the model has " + std::to_string(O) + " outputs");
    if (ic < 0 || ic >= D)
      throw py::value_error("feedback input column " + std::to_string(ic) +
                            " is out of range: the model has " + std::to_string(D) +
                            " input features");
    if (used[ic])
      throw py::value_error("feedback names input column " + std::to_string(ic) + " twice");
    used[ic] = 1;
    pairs.push_back({oc, ic});
  }
  return pairs;
}

// Model.rollout: every argument checked here (ValueError), then one core call without the GIL.
template <class S>
void model_rollout(ModelApi<S>& mo, const py::object& params, const py::object& X,
                   const py::object& lengths, const py::object& horizon_obj,
                   const py::object& future, const py::object& feedback, const py::object& out) {
  const auto& c = mo.config();
  if (c.return_sequences || c.bidirectional)
    throw py::value_error(
        "rollout needs a sequence-to-one, unidirectional model "
        "(return_sequences=False, bidirectional=False)");
  const Index horizon = int_value(horizon_obj, "horizon");
  if (horizon < 1) throw py::value_error("horizon must be >= 1, got " + std::to_string(horizon));
  const auto d = data_args(mo, X, lengths, py::none(), py::none(), false);
  const Index D = c.input_size, O = c.output_size;
  const S* p = array_ptr<S>(params, "params", {mo.num_params()}, false, false);
  const S* fp = array_ptr<S>(future, "future", {d.N, horizon - 1, D}, true, false);
  if (fp && !finite_values(fp, d.N * (horizon - 1) * D))
    throw py::value_error("future contains NaN or infinity");
  S* op = array_ptr<S>(out, "out", {d.N, horizon, O}, false, true);
  const auto pairs = rollout_feedback(feedback, O, D);
  ReleaseGil release;
  mo.rollout(p, d.x, d.N, d.T, d.lengths, horizon, fp, pairs, op);
}

template <class S>
void bind_model(py::module_& m, const char* name) {
  using M = ModelApi<S>;
  py::class_<M>(m, name)
      .def(py::init([](const ModelConfig& c) { return kernels().of<S>().model(c); }),
           py::arg("config"))
      .def_property_readonly(
          "config", [](const M& mo) { return mo.config(); }, "The ModelConfig (a copy)")
      .def_property_readonly("num_params", &M::num_params)
      .def_property("num_threads", &M::num_threads, &M::set_num_threads,
                    "threads per call (0 = the global default); results do not depend on it")
      .def("layout", [](const M& mo) { return layout_list(mo.layout().tensors); })
      .def("allocated_elements", &M::allocated_elements,
           "Scalars the workspace holds now (compare config.workspace_elements)")
      .def("train_epoch", &model_train_epoch<S>, py::arg("params"), py::arg("m"), py::arg("v"),
           py::arg("step"), py::arg("X"), py::arg("lengths"), py::arg("Y"),
           py::arg("sample_weight"), py::arg("optim"), py::arg("callback") = py::none(),
           "One epoch of minibatch training in C++; returns (mean loss, optimizer step count).")
      .def("predict", &model_predict<S>, py::arg("params"), py::arg("X"), py::arg("lengths"),
           py::arg("out"))
      .def(
          "loss",
          [](M& mo, const py::object& params, const py::object& X, const py::object& lengths,
             const py::object& Y, const py::object& sw, double alpha) {
            return model_loss(mo, params, X, lengths, Y, sw, alpha, py::none(), false);
          },
          py::arg("params"), py::arg("X"), py::arg("lengths"), py::arg("Y"),
          py::arg("sample_weight"), py::arg("alpha"))
      .def(
          "loss_and_grad",
          [](M& mo, const py::object& params, const py::object& X, const py::object& lengths,
             const py::object& Y, const py::object& sw, double alpha, const py::object& grad) {
            return model_loss(mo, params, X, lengths, Y, sw, alpha, grad, true);
          },
          py::arg("params"), py::arg("X"), py::arg("lengths"), py::arg("Y"),
          py::arg("sample_weight"), py::arg("alpha"), py::arg("grad"))
      .def("stream", &model_stream<S>, py::arg("params"), py::arg("batch") = 1,
           "A Stream that runs these parameters one timestep at a time (copies them).")
      .def("rollout", &model_rollout<S>, py::arg("params"), py::arg("X"), py::arg("lengths"),
           py::arg("horizon"), py::arg("future"), py::arg("feedback"), py::arg("out"),
           "Recursive forecast (sequence-to-one, unidirectional models), out [N, horizon, O]:\n"
           "out[:, 0] = the prediction after the history X [N, T, D] (lengths as predict); step\n"
           "k >= 1 feeds x_k = future[:, k-1] (future [N, horizon-1, D] or None: zeros) with\n"
           "input columns replaced by outputs of step k-1 (feedback: [(output column, input\n"
           "column), ...]) through one timestep of every layer, out[:, k] = its prediction.");
}

// ---------------------------------------------------------------------------------------------
// ModelConfig and OptimConfig: one table of fields per class drives the keyword constructor,
// the attributes, FIELDS, to_dict/from_dict, ==, repr and pickling. Values are typed strictly
// (a bool is not an int here, nor an int a bool) and every error is a ValueError naming the
// field; the value checks themselves are the C++ structs' validate() (config.hpp).
// ---------------------------------------------------------------------------------------------

[[noreturn]] void bad_value(const char* name, const char* want, const py::handle& v) {
  throw py::value_error(std::string(name) + " must be " + want + ", got " +
                        std::string(py::repr(v)) + " (" +
                        std::string(py::str(py::type::handle_of(v).attr("__name__"))) + ")");
}
bool is_bool(const py::handle& v) {
  return PyBool_Check(v.ptr()) || py::isinstance(v, py::module_::import("numpy").attr("bool_"));
}
bool is_a(const py::handle& v, const char* abc) {  // numbers.Integral / numbers.Real
  return !is_bool(v) && py::isinstance(v, py::module_::import("numbers").attr(abc));
}
Index int_value(const py::handle& v, const char* name) {
  if (!is_a(v, "Integral")) bad_value(name, "an int", v);
  int overflow = 0;
  const py::int_ i(py::reinterpret_borrow<py::object>(v));
  const long long r = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow) bad_value(name, "an int below 2**63", v);
  return static_cast<Index>(r);
}
std::uint64_t seed_value(const py::handle& v, const char* name) {
  if (!is_a(v, "Integral")) bad_value(name, "an int in [0, 2**64)", v);
  const unsigned long long r =
      PyLong_AsUnsignedLongLong(py::int_(py::reinterpret_borrow<py::object>(v)).ptr());
  if (PyErr_Occurred()) {  // negative or too large
    PyErr_Clear();
    bad_value(name, "an int in [0, 2**64)", v);
  }
  return r;
}
double real_value(const py::handle& v, const char* name) {
  if (!is_a(v, "Real")) bad_value(name, "a real number", v);
  return py::float_(py::reinterpret_borrow<py::object>(v)).cast<double>();
}
bool bool_value(const py::handle& v, const char* name) {
  if (!is_bool(v)) bad_value(name, "True or False", v);
  return v.cast<bool>();
}
// A list or tuple of real numbers (not bools), as a list field takes it.
std::vector<double> real_list_value(const py::handle& v, const char* name) {
  if (!py::isinstance<py::list>(v) && !py::isinstance<py::tuple>(v))
    bad_value(name, "a list of numbers", v);
  std::vector<double> out;
  for (const py::handle& x : py::reinterpret_borrow<py::sequence>(v)) {
    if (!is_a(x, "Real")) bad_value(name, "a list of numbers", v);
    out.push_back(py::float_(py::reinterpret_borrow<py::object>(x)).cast<double>());
  }
  return out;
}
std::string str_value(const py::handle& v, const char* name) {
  if (!py::isinstance<py::str>(v)) bad_value(name, "a str", v);
  return v.cast<std::string>();
}

template <class C>
struct Field {
  const char* name;
  const char* type;  // the Python type: "str", "int", "bool" or "float"
  py::object (*get)(const C&);
  void (*set)(C&, const py::handle&, const char* name);  // converts; the checks: validate()
};

template <class C>
using Fields = std::vector<Field<C>>;

// Fields that are plain members: member pointer, Python type, converter.
template <class C, class T, T C::* F>
py::object get_member(const C& c) {
  return py::cast(c.*F);
}
template <class C, class T, T C::* F, T (*Convert)(const py::handle&, const char*)>
void set_member(C& c, const py::handle& v, const char* name) {
  c.*F = Convert(v, name);
}
template <class C, Index C::* F>
Field<C> int_field(const char* name) {
  return {name, "int", &get_member<C, Index, F>, &set_member<C, Index, F, &int_value>};
}
template <class C, bool C::* F>
Field<C> bool_field(const char* name) {
  return {name, "bool", &get_member<C, bool, F>, &set_member<C, bool, F, &bool_value>};
}
template <class C, double C::* F>
Field<C> real_field(const char* name) {
  return {name, "float", &get_member<C, double, F>, &set_member<C, double, F, &real_value>};
}

// In the keyword constructor's order.
const Fields<ModelConfig>& model_fields() {
  using C = ModelConfig;
  using V = const py::handle&;
  static const Fields<C> f = {
      {"cell", "str", [](const C& c) -> py::object { return py::str(cell_name(c.cell)); },
       [](C& c, V v, const char* n) { c.cell = parse_cell(str_value(v, n)); }},
      int_field<C, &C::input_size>("input_size"),
      int_field<C, &C::hidden_size>("hidden_size"),
      int_field<C, &C::num_layers>("num_layers"),
      int_field<C, &C::output_size>("output_size"),
      bool_field<C, &C::bias>("bias"),
      bool_field<C, &C::bidirectional>("bidirectional"),
      bool_field<C, &C::return_sequences>("return_sequences"),
      real_field<C, &C::dropout>("dropout"),
      {"loss", "str", [](const C& c) -> py::object { return py::str(loss_name(c.loss)); },
       [](C& c, V v, const char* n) { c.loss = parse_loss(str_value(v, n)); }},
      real_field<C, &C::huber_delta>("huber_delta"),
      {"quantiles", "list", [](const C& c) -> py::object { return py::cast(c.quantiles); },
       [](C& c, V v, const char* n) { c.quantiles = real_list_value(v, n); }},
      {"precision", "str",
       [](const C& c) -> py::object { return py::str(precision_name(c.precision)); },
       [](C& c, V v, const char* n) { c.precision = parse_precision(str_value(v, n)); }},
  };
  return f;
}

const Fields<OptimConfig>& optim_fields() {
  using C = OptimConfig;
  using V = const py::handle&;
  static const Fields<C> f = {
      {"solver", "str", [](const C& c) -> py::object { return py::str(solver_name(c.solver)); },
       [](C& c, V v, const char* n) { c.solver = parse_solver(str_value(v, n)); }},
      real_field<C, &C::lr>("lr"),
      real_field<C, &C::alpha>("alpha"),
      real_field<C, &C::momentum>("momentum"),
      bool_field<C, &C::nesterov>("nesterov"),
      real_field<C, &C::beta1>("beta1"),
      real_field<C, &C::beta2>("beta2"),
      real_field<C, &C::eps>("eps"),
      real_field<C, &C::max_grad_norm>("max_grad_norm"),
      int_field<C, &C::batch_size>("batch_size"),
      bool_field<C, &C::shuffle>("shuffle"),
      {"seed", "int", [](const C& c) -> py::object { return py::int_(c.seed); },
       [](C& c, V v, const char* n) { c.seed = seed_value(v, n); }},
  };
  return f;
}

template <class C>
const Field<C>& field(const Fields<C>& fields, const char* name) {
  for (const auto& f : fields)
    if (std::string(f.name) == name) return f;
  throw std::logic_error(std::string("no field ") + name);
}
template <class C>
py::object default_of(const Fields<C>& fields, const char* name) {
  return field(fields, name).get(C{});
}

// A configuration from values in the table's order, checked as a whole.
template <class C>
C config_of(const Fields<C>& fields, const std::vector<py::object>& values) {
  C c;
  for (std::size_t i = 0; i < fields.size(); ++i) fields[i].set(c, values[i], fields[i].name);
  c.validate();
  return c;
}

template <class C>
py::dict to_dict(const Fields<C>& fields, const C& c) {
  py::dict d;
  for (const auto& f : fields) d[f.name] = f.get(c);
  return d;
}

// Every field, nothing else: ValueError naming an unknown or missing key or a bad value.
template <class C>
C from_dict(const Fields<C>& fields, const py::handle& obj, const char* cls) {
  if (!py::isinstance<py::dict>(obj))
    bad_value((std::string(cls) + ".from_dict").c_str(), "a dict", obj);
  const auto d = py::reinterpret_borrow<py::dict>(obj);
  std::string names;
  for (const auto& f : fields) names += std::string(names.empty() ? "" : ", ") + f.name;
  for (const auto& kv : d) {
    const std::string key = py::str(kv.first);
    bool known = false;
    for (const auto& f : fields)
      known = known || (py::isinstance<py::str>(kv.first) && key == f.name);
    if (!known)
      throw py::value_error(std::string(cls) + ": unknown key " + std::string(py::repr(kv.first)) +
                            "; expected " + names);
  }
  std::vector<py::object> values;
  for (const auto& f : fields) {
    if (!d.contains(f.name))
      throw py::value_error(std::string(cls) + ": missing key '" + f.name + "'");
    values.push_back(d[f.name]);
  }
  return config_of(fields, values);
}

// Attributes (each assignment checked, the object unchanged when refused), FIELDS, to_dict,
// from_dict, ==, repr, pickling.
template <class C>
void bind_config_fields(py::class_<C>& cls, const Fields<C>* fields, const char* name) {
  py::module_ builtins = py::module_::import("builtins");
  py::list schema;
  for (const auto& f : *fields) {
    const Field<C>* fp = &f;
    cls.def_property(
        f.name, [fp](const C& c) { return fp->get(c); },
        [fp](C& c, const py::object& v) {
          C t = c;
          fp->set(t, v, fp->name);
          t.validate();
          c = t;
        });
    schema.append(py::make_tuple(f.name, builtins.attr(f.type), f.get(C{})));
  }
  cls.attr("FIELDS") = py::tuple(schema);
  cls.def(
      "to_dict", [fields](const C& c) { return to_dict(*fields, c); },
      "The fields as a dict of plain Python values");
  cls.def_static(
      "from_dict", [fields, name](const py::object& d) { return from_dict(*fields, d, name); },
      py::arg("d"), "From a dict holding every field (ValueError naming a bad key)");
  cls.def("__eq__", [fields](const C& a, const py::object& b) -> py::object {
    if (!py::isinstance<C>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
    return py::bool_(to_dict(*fields, a).equal(to_dict(*fields, b.cast<const C&>())));
  });
  cls.def("__repr__", [fields, name](const C& c) {
    std::string s = std::string(name) + "(";
    for (const auto& f : *fields)
      s += std::string(&f == &fields->front() ? "" : ", ") + f.name + "=" +
           std::string(py::repr(f.get(c)));
    return s + ")";
  });
  cls.def(py::pickle([fields](const C& c) { return to_dict(*fields, c); },
                     [fields, name](const py::dict& d) { return from_dict(*fields, d, name); }));
}

// The network-level questions a configuration answers without building the network. The
// layout is a list of O(L) tensors: a network too large to build is refused first; the counts
// are O(1) and refuse only counts beyond 2^63 (MemoryError).
py::list model_config_layout(const ModelConfig& c) {
  c.check_fits("ModelConfig.layout", sizeof(float));
  return layout_list(ModelLayout(c).tensors);
}
Index model_config_workspace(const ModelConfig& c, Index batch, Index steps, bool train,
                             bool rollout) {
  require(batch >= 0 && steps >= 0, "batch and steps must be >= 0");
  require(!(train && rollout), "workspace_elements: train and rollout exclude each other");
  const Call call = train ? Call::kTrainEpoch : (rollout ? Call::kRollout : Call::kPredict);
  return workspace_elements(c, batch, steps, call).v;
}

void bind_model_config(py::module_& m) {
  using C = ModelConfig;
  const Fields<C>& f = model_fields();
  py::class_<C> cls(m, "ModelConfig", "What a network is: cell, sizes, directions, head, loss");
  cls.def(py::init([](py::object cell, py::object D, py::object H, py::object L, py::object O,
                      py::object bias, py::object bidir, py::object seq, py::object dropout,
                      py::object loss, py::object huber_delta, py::object quantiles,
                      py::object precision) {
            return config_of(model_fields(), {cell, D, H, L, O, bias, bidir, seq, dropout, loss,
                                              huber_delta, quantiles, precision});
          }),
          py::arg("cell") = default_of(f, "cell"),
          py::arg("input_size") = default_of(f, "input_size"),
          py::arg("hidden_size") = default_of(f, "hidden_size"),
          py::arg("num_layers") = default_of(f, "num_layers"),
          py::arg("output_size") = default_of(f, "output_size"), py::kw_only(),
          py::arg("bias") = default_of(f, "bias"),
          py::arg("bidirectional") = default_of(f, "bidirectional"),
          py::arg("return_sequences") = default_of(f, "return_sequences"),
          py::arg("dropout") = default_of(f, "dropout"), py::arg("loss") = default_of(f, "loss"),
          py::arg("huber_delta") = default_of(f, "huber_delta"),
          py::arg("quantiles") = default_of(f, "quantiles"),
          py::arg("precision") = default_of(f, "precision"));
  bind_config_fields(cls, &f, "ModelConfig");
  cls.def_property_readonly(
      "num_params", [](const C& c) { return c.num_params(); },
      "Parameters of the network (MemoryError beyond 2**63)");
  cls.def("layout", &model_config_layout,
          "[(name, offset, shape)] of each parameter in the flat buffer (as Model.layout())");
  cls.def("workspace_elements", &model_config_workspace, py::arg("batch"), py::arg("steps"),
          py::arg("train"), py::kw_only(), py::arg("rollout") = false,
          "Scalars the core's workspace holds for a batch of `batch` sequences of `steps` steps:\n"
          "train=True: one training minibatch (forward kept, BPTT, gradient, gathered batch);\n"
          "train=False: predict (in chunks of PREDICT_CHUNK sequences); rollout=True (with\n"
          "train=False): Model.rollout with a history of `steps` steps (predict's and one\n"
          "timestep's). Sized by the code that sizes the buffers. Not counted: parameters and\n"
          "their packed copy (~2 num_params).");
}

void bind_optim_config(py::module_& m) {
  using C = OptimConfig;
  const Fields<C>& f = optim_fields();
  py::class_<C> cls(m, "OptimConfig",
                    "How train_epoch trains: solver, its hyperparameters, the minibatches");
  cls.def(py::init([](py::object solver, py::object lr, py::object alpha, py::object momentum,
                      py::object nesterov, py::object beta1, py::object beta2, py::object eps,
                      py::object max_grad_norm, py::object batch_size, py::object shuffle,
                      py::object seed) {
            return config_of(optim_fields(), {solver, lr, alpha, momentum, nesterov, beta1, beta2,
                                              eps, max_grad_norm, batch_size, shuffle, seed});
          }),
          py::kw_only(), py::arg("solver") = default_of(f, "solver"),
          py::arg("lr") = default_of(f, "lr"), py::arg("alpha") = default_of(f, "alpha"),
          py::arg("momentum") = default_of(f, "momentum"),
          py::arg("nesterov") = default_of(f, "nesterov"),
          py::arg("beta1") = default_of(f, "beta1"), py::arg("beta2") = default_of(f, "beta2"),
          py::arg("eps") = default_of(f, "eps"),
          py::arg("max_grad_norm") = default_of(f, "max_grad_norm"),
          py::arg("batch_size") = default_of(f, "batch_size"),
          py::arg("shuffle") = default_of(f, "shuffle"), py::arg("seed") = default_of(f, "seed"));
  bind_config_fields(cls, &f, "OptimConfig");
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
    if (std::abs(src[i]) > double(std::numeric_limits<S>::max())) {
      std::ostringstream v;  // (%g: std::to_string writes 1e300 with 300 digits)
      v << src[i];
      throw bad(" holds " + v.str() + ", beyond the range of " +
                std::string(py::str(py::dtype::of<S>())));
    }
    dst[i] = S(src[i]);
  }
  return out;
}

// Stream.step is the per-sample hot path from Python: the input is taken as is when it already
// has the right dtype and order (converted otherwise), and `out`, when given, is written in place
// so that a loop allocates nothing.
template <class S>
py::object stream_step(StreamApi<S>& st, const py::object& xo, const py::object& out) {
  using Arr = py::array_t<S, py::array::c_style>;
  const Index B = st.batch(), D = st.input_size(), O = st.output_size();
  const Arr x = values_of<S>(xo, "x");
  const bool flat = x.ndim() == 1;
  if (!((flat && B == 1 && x.shape(0) == D) ||
        (x.ndim() == 2 && x.shape(0) == B && x.shape(1) == D)))
    throw py::value_error("x must have shape " +
                          (B == 1 ? "(" + std::to_string(D) + ",) or " : std::string()) + "(" +
                          std::to_string(B) + ", " + std::to_string(D) + ")");
  py::object res = out;
  S* op;
  if (out.is_none()) {
    Arr o = flat ? Arr({O}) : Arr({B, O});
    op = o.mutable_data();
    res = std::move(o);
  } else {
    op = array_ptr<S>(out, "out", flat ? std::vector<Index>{O} : std::vector<Index>{B, O}, false,
                      true);
  }
  st.step(x.data(), op);
  return res;
}

template <class S>
py::object stream_state(StreamApi<S>& st) {
  using Arr = py::array_t<S, py::array::c_style>;
  const Index L = st.num_layers(), B = st.batch(), H = st.hidden_size();
  Arr h({L, B, H});
  std::copy(st.h(), st.h() + L * B * H, h.mutable_data());
  if (!st.has_cell_state()) return py::object(h);
  Arr c({L, B, H});
  std::copy(st.c(), st.c() + L * B * H, c.mutable_data());
  return py::object(py::make_tuple(h, c));
}

template <class S>
void set_stream_state(StreamApi<S>& st, const py::object& state) {
  using Arr = py::array_t<S, py::array::c_style>;
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
}

template <class S>
void bind_stream(py::module_& m, const char* name) {
  using St = StreamApi<S>;
  py::class_<St>(m, name)
      .def_property_readonly("batch", &St::batch)
      .def_property_readonly("input_size", &St::input_size)
      .def_property_readonly("output_size", &St::output_size)
      .def("step", &stream_step<S>, py::arg("x"), py::arg("out") = py::none(),
           "Feeds one timestep x [D] or [batch, D]; returns the output [O] or [batch, O].\n"
           "ValueError for NaN, infinity or values beyond the dtype's range (the state is kept).")
      .def("reset", &St::reset, "Zero the state.")
      .def_property("num_threads", &St::num_threads, &St::set_num_threads,
                    "Threads a step may use (large steps split their columns over two)")
      .def_property("state", &stream_state<S>, &set_stream_state<S>,
                    "(h, c) for an LSTM, else h; each [num_layers, batch, hidden] (copies).\n"
                    "Setting it checks shapes and values (ValueError for NaN or infinity) before\n"
                    "changing anything.");
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
  // The kernel set in use (api.hpp, dispatch.cpp): its name, the SIMD it was compiled with,
  // every set compiled in, those this CPU runs, and the cap LSTM_NATIVE_MAX_ISA (None: unset).
  const IsaReport isa = isa_report();
  d["cpu"] = cpu_description();
  d["isa"] = kernels().isa;
  d["simd"] = std::string(kernels().simd);
  d["isa_compiled"] = isa.compiled;
  d["isa_supported"] = isa.supported;
  d["max_isa"] = isa.max_isa.empty() ? py::object(py::none()) : py::object(py::str(isa.max_isa));
  d["native_arch"] = bool(LSTM_NATIVE_NATIVE_ARCH);
  // precision "bfloat16" (packed_bf16.hpp): what the CPU offers (avx512_bf16; AMX bf16 tiles
  // usable by this process), LSTM_NATIVE_BF16_KERNEL (None: unset) and the kernel in use
  const Bf16Report bf = bf16_report();
  d["cpu_avx512_bf16"] = bf.avx512_bf16;
  d["cpu_amx_bf16"] = bf.amx;
  d["bf16_kernel_setting"] =
      bf.setting.empty() ? py::object(py::none()) : py::object(py::str(bf.setting));
  d["bf16_kernel"] = std::string(bf.kernel);
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

// True when a float array holds no NaN or infinity (finite_values).
template <class S>
bool all_finite_of(const py::array& a) {
  const auto* p = static_cast<const S*>(a.data());
  const Index n = static_cast<Index>(a.size());
  if (n < (Index(1) << 16)) return finite_values(p, n);
  ReleaseGil release;
  return finite_values(p, n);
}

// The structure of a cell (cells.hpp), for the Python layer: gate count and block names in
// storage order, what it saves and holds, and how diagnostics read its kept fraction.
py::dict cell_info(const std::string& name) {
  const CellKind k = parse_cell(name);
  const CellShape c = cell_shape(k);
  py::list blocks;
  for (char b : cell_blocks(k)) blocks.append(py::str(std::string(1, b)));
  static const char* const kKeepNames[] = {nullptr, "f", "1-i", "1", "z"};
  const char* keep = kKeepNames[static_cast<int>(c.keep)];
  py::dict d;
  d["gates"] = c.gates;
  d["blocks"] = py::tuple(blocks);  // () for one-block cells (RNN, ungated)
  d["has_cell_state"] = c.has_cell;
  d["extra"] = c.extra;                // values per unit saved besides the gates
  d["cell_params"] = c.cell_params;    // [H] vectors per layer (peepholes)
  d["cell_gemm"] = c.cell_gemm;        // a weight_ch [H, H] per layer
  d["forget_block"] = c.forget_block;  // -1: no forget gate
  d["fused_inference"] = c.fused;      // inference runs the fused step (stack.cpp)
  // the factor the carried state is kept by: a block's name ("f", "z"), "1-i" (coupled
  // gates), "1" (no forget gate) or None (the state is rewritten: RNN, ungated)
  d["keep"] = keep ? py::object(py::str(keep)) : py::object(py::none());
  return d;
}

void bind_functions(py::module_& m) {
  py::list names;
  for (int i = 0; cell_names()[i]; ++i) names.append(cell_names()[i]);
  m.attr("CELLS") = py::tuple(names);
  py::dict aliases;
  for (const auto& a : kCellAliases) aliases[a.alias] = a.name;
  m.attr("CELL_ALIASES") = aliases;
  m.attr("PREDICT_CHUNK") = kPredictChunk;
  m.def("cell_info", &cell_info, py::arg("cell"),
        "Structure of a cell: gates and their names, cell state, extra parameters");
  m.def(
      "set_num_threads", [](int n) { default_num_threads_setting().store(n < 0 ? 0 : n); },
      py::arg("n"), "Default threads per call; 0 = all hardware threads");
  m.def("get_num_threads", &default_num_threads);
  m.def(
      "split_plan",
      [](const std::string& cell, Index input_size, Index hidden_size, Index num_layers,
         Index batch, Index steps, const std::string& precision, bool inference) {
        const CellKind k = parse_cell(cell);
        require(input_size >= 1 && hidden_size >= 1 && num_layers >= 1 && batch >= 1 && steps >= 1,
                "split_plan needs sizes >= 1");
        const Index GH = num_gates(k) * hidden_size;
        Count params = 0;
        for (Index l = 0; l < num_layers; ++l)
          params += unit_param_count(k, l == 0 ? input_size : hidden_size, hidden_size, true);
        const Precision pr = parse_precision(precision);
        const RunShape s{k, input_size, hidden_size, num_layers, params.v, pr};
        const Index P = num_parts(s, batch, steps, inference);
        py::dict d;
        d["parts"] = P;
        d["forward_column_blocks"] = num_column_blocks(batch, hidden_size, GH, P, pr);
        d["backward_column_blocks"] = num_column_blocks(batch, GH, hidden_size, P, pr);
        return d;
      },
      py::arg("cell"), py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"),
      py::arg("batch"), py::arg("steps"), py::kw_only(), py::arg("precision") = "float32",
      py::arg("inference") = false,
      "How a run of layers (one direction) over batch sequences of steps steps is split: "
      "parts of the batch and column blocks of a step's product (from the sizes only, never "
      "the thread count), for training (its forward and backward) or, with inference=True, "
      "an inference forward (which may take fewer parts). A Model runs one layer per run.");
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
  m.def("build_info", &build_info,
        "How the core was compiled: compiler, kernel sets (isa), SIMD, Eigen, threads");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "lstm_native compiled core (Eigen): recurrent layers forward and BPTT";
  kernels();  // choose the kernel set now (ValueError at import for a bad LSTM_NATIVE_MAX_ISA)
  // Threads inside the core park at interpreter exit rather than abort it (see ReleaseGil).
  py::module_::import("atexit").attr("register")(py::cpp_function(&on_interpreter_exit));
  bind_model_config(m);
  bind_optim_config(m);
  bind_recurrent<float>(m, "Recurrent32");
  bind_recurrent<double>(m, "Recurrent64");
  bind_model<float>(m, "Model32");
  bind_model<double>(m, "Model64");
  bind_stream<float>(m, "Stream32");
  bind_stream<double>(m, "Stream64");
  bind_functions(m);
}
