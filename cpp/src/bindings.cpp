// The only pybind11 file: thin wrappers that check every array (dtype, C order, shape,
// writability) and hand raw pointers to the core with the GIL released. Nothing is copied:
// the Python layer (lstm_native/nn.py) allocates outputs and converts inputs beforehand, and a
// mismatch here raises ValueError instead of reading or writing out of bounds.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "lstm_native/sequence.hpp"

#include <cstdint>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace py = pybind11;
using namespace lstm_native;

namespace {

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
  if (!a.dtype().is(py::dtype::of<T>()))
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

CellKind parse_cell(const std::string& s) {
  if (s == "lstm") return CellKind::kLstm;
  if (s == "gru") return CellKind::kGru;
  if (s == "rnn_tanh") return CellKind::kRnnTanh;
  if (s == "rnn_relu") return CellKind::kRnnRelu;
  throw py::value_error("cell must be one of 'lstm', 'gru', 'rnn_tanh', 'rnn_relu', got '" + s +
                        "'");
}

const char* cell_name(CellKind k) {
  switch (k) {
    case CellKind::kLstm: return "lstm";
    case CellKind::kGru: return "gru";
    case CellKind::kRnnTanh: return "rnn_tanh";
    case CellKind::kRnnRelu: return "rnn_relu";
  }
  return "?";
}

template <class S>
void bind_recurrent(py::module_& m, const char* name) {
  using R = Recurrent<S>;
  py::class_<R>(m, name)
      .def(py::init([](const std::string& cell, Index D, Index H, Index L, bool bias) {
             return new R(parse_cell(cell), D, H, L, bias);
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
             const py::object& hT, const py::object& cT) {
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
            py::gil_scoped_release release;
            r.forward(p, xp, B, T, lp, h0p, c0p, yp, hTp, cTp);
          },
          py::arg("params"), py::arg("x"), py::arg("lengths"), py::arg("h0"), py::arg("c0"),
          py::arg("y"), py::arg("hT"), py::arg("cT"),
          "Forward over x [B, T, D] into y [B, T, H], hT and cT [L, B, H] (outputs preallocated).")
      .def(
          "backward",
          [](R& r, const py::object& params, const py::object& dy, const py::object& dhT,
             const py::object& dcT, const py::object& dparams, const py::object& dx,
             const py::object& dh0, const py::object& dc0) {
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
            py::gil_scoped_release release;
            r.backward(p, dyp, dhTp, dcTp, dpp, dxp, dh0p, dc0p);
          },
          py::arg("params"), py::arg("dy"), py::arg("dhT"), py::arg("dcT"), py::arg("dparams"),
          py::arg("dx"), py::arg("dh0"), py::arg("dc0"),
          "BPTT for the last forward; adds parameter gradients into dparams.");
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
  d["hardware_threads"] = std::thread::hardware_concurrency();
#if defined(__SANITIZE_ADDRESS__)
  d["sanitizers"] = true;
#else
  d["sanitizers"] = false;
#endif
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "lstm_native compiled core (Eigen): recurrent layers forward and BPTT";
  bind_recurrent<float>(m, "Recurrent32");
  bind_recurrent<double>(m, "Recurrent64");
  m.def("build_info", &build_info, "How the core was compiled: compiler, SIMD, Eigen, threads");
}
