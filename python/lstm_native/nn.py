"""Low-level recurrent layers: forward and backpropagation through time on the compiled core.

A layer holds its parameters in one flat NumPy buffer (``flat_params``) laid out exactly like
PyTorch's ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` parameters, so weights move between the two by
name::

    layer = nn.LSTM(input_size=4, hidden_size=7, num_layers=2, dtype=np.float64)
    layer.set_parameters({k: v.detach().numpy() for k, v in torch_lstm.named_parameters()})
    y, (h, c) = layer.forward(x)          # x (B, T, D) batch-first; y (B, T, H); h, c (L, B, H)
    grads = layer.backward(dy)            # dict: every parameter name, "x", "h0" (+ "c0")

Shapes: B batch, T timesteps, D input features, H hidden units, L layers, G gates (LSTM 4,
GRU 3, RNN 1). ``lengths`` (B,) marks right-padded sequences: past its length a sequence keeps
its state, outputs zeros and receives no gradient.

Inputs of any memory layout, byte order and real dtype (float16, integers, bool, Fortran order,
strided views, nested lists) are converted to the layer's dtype, copying only when needed.
NaN or infinity in x, a state, dy, dstate or the parameters raise ValueError naming the
argument; a layer or a forward whose memory (estimated from the shapes before allocating)
exceeds what is available raises MemoryError naming the sizes. One layer may be called from
several threads (its calls take turns: backward needs the workspace of the last forward).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from . import _core
from ._locks import ForkSafeLock
from ._memory import check_memory, fits_without_checking, needs_copy, peek_shape

# The core's cells: LSTM, GRU, Elman RNN (tanh, relu), the LSTM variants of Greff et al.
# ("LSTM: A Search Space Odyssey") and the two gate-free alternatives (see cells.hpp).
from ._network import CELLS, canonical_cell, check_precision
from ._onnx import to_onnx as _to_onnx

State = Union[np.ndarray, "tuple[np.ndarray, np.ndarray]"]


def _all_finite(a: np.ndarray) -> bool:
    """No NaN or infinity in ``a``: one vectorized pass in the core for C-contiguous float32 and
    float64 arrays (a few hundred nanoseconds for a small one, where NumPy's test costs
    microseconds), NumPy otherwise. Integer arrays are finite."""
    if a.dtype.kind in "iub":
        return True
    if a.dtype in (np.float32, np.float64) and a.flags.c_contiguous and a.dtype.isnative:
        return bool(_core.all_finite(a))
    return bool(np.isfinite(a).all())


def _as_real_array(a: Any, name: str, dtype: np.dtype, ndim: Optional[int] = None) -> np.ndarray:
    """``a`` as a finite, C-contiguous array of ``dtype`` (native byte order; copied only when
    needed), with its ndim checked: ValueError naming ``name`` otherwise."""
    if hasattr(a, "detach"):  # a torch tensor, possibly requiring grad or on a device
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:  # e.g. ragged nested lists
        raise ValueError(f"{name} must be a real numeric array: {e}") from None
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    with np.errstate(over="ignore"):  # (float64 beyond float32's range: said below)
        out = np.ascontiguousarray(arr, dtype=dtype)
    if not _all_finite(out):
        if out is not arr and np.isfinite(arr).all():
            raise ValueError(
                f"{name} has values beyond the range of {np.dtype(dtype).name} "
                f"(|x| up to {float(np.max(np.abs(arr))):.3g})"
            )
        raise ValueError(f"{name} contains NaN or infinity")
    return out


class Recurrent:
    """A stack of ``num_layers`` recurrent layers of one cell type on the compiled core.

    Parameters
    ----------
    input_size, hidden_size, num_layers : int
    cell : "lstm", "gru", "rnn_tanh" ("rnn") or "rnn_relu"
    bias : bool, whether each layer has the two bias vectors ``bias_ih``/``bias_hh``
    dtype : np.float32 or np.float64
    random_state : seed for the initial weights, PyTorch's U(-1/sqrt(H), 1/sqrt(H))
    precision : "float32" (default) or "bfloat16": the operands of the products with the
        weights (x W_ihᵀ, h W_hhᵀ and, in backward, their gradients' products) rounded to
        bfloat16 (nearest even) and summed in float32; parameters, states, the cells' pointwise
        math and the results stay float32 (needs dtype float32). Computed with Intel AMX tiles
        where the CPU has them (``build_info()["bf16_kernel"] == "amx"``), elsewhere emulated
        (the same rounding on the float32 kernels: same results up to summation order, no
        faster than float32), or with AVX512-BF16's vdpbf16ps when
        ``LSTM_NATIVE_BF16_KERNEL=avx512_bf16`` asks for it (``"avx512_bf16"``; not yet
        faster). ``weight_ch`` products (cells "ungated", "cell_as_input") stay float32.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        bias: bool = True,
        dtype: Any = np.float32,
        random_state: Any = None,
        *,
        precision: str = "float32",
    ) -> None:
        self.cell = canonical_cell(cell)
        for name, v in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if self.dtype == np.float32:
            core_cls = _core.Recurrent32
        elif self.dtype == np.float64:
            core_cls = _core.Recurrent64
        else:
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.precision = check_precision(precision, self.dtype)
        self.input_size, self.hidden_size, self.num_layers = (
            int(input_size),
            int(hidden_size),
            int(num_layers),
        )
        self.bias = bool(bias)
        # parameters, their packed copy in the core and a gradient: refuse before allocating
        P = core_cls.count_params(
            self.cell, self.input_size, self.hidden_size, self.num_layers, self.bias
        )
        check_memory(
            [("parameters, packed weights and gradients", 3 * P * self.dtype.itemsize)],
            f"{type(self).__name__}(input_size={self.input_size}, hidden_size="
            f"{self.hidden_size}, num_layers={self.num_layers}) with {P} parameters",
        )
        self._core = core_cls(
            self.cell,
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.bias,
            precision=self.precision,
        )
        # name -> (offset, shape) in flat_params
        self._layout = {name: (off, tuple(shape)) for name, off, shape in self._core.layout()}
        self.flat_params = np.zeros(self._core.num_params, dtype=self.dtype)
        self._lock = ForkSafeLock()  # the core's workspace serves one call at a time
        self._have_forward = False
        self.reset_parameters(random_state)

    # -- parameters -----------------------------------------------------------------------
    @property
    def has_cell_state(self) -> bool:
        return bool(_core.cell_info(self.cell)["has_cell_state"])

    @property
    def num_params(self) -> int:
        return self.flat_params.size

    def param_names(self) -> list:
        return list(self._layout)

    def _view(self, buf: np.ndarray, name: str) -> np.ndarray:
        off, shape = self._layout[name]
        return buf[off : off + int(np.prod(shape))].reshape(shape)

    def reset_parameters(self, random_state: Any = None) -> None:
        """PyTorch's default initialization: every entry U(-1/sqrt(H), 1/sqrt(H))."""
        rng = np.random.default_rng(random_state)
        k = 1.0 / np.sqrt(self.hidden_size)
        self.flat_params[:] = rng.uniform(-k, k, size=self.flat_params.size)
        self._have_forward = False

    def parameters(self) -> dict:
        """{name: array} with PyTorch's names and shapes (copies)."""
        return {name: self._view(self.flat_params, name).copy() for name in self._layout}

    def set_parameters(self, params: dict) -> None:
        """Set every parameter from {name: array-like}; names and shapes as in ``parameters()``."""
        missing = [n for n in self._layout if n not in params]
        if missing:
            raise ValueError(f"set_parameters: missing parameters {missing}")
        unknown = [n for n in params if n not in self._layout]
        if unknown:
            raise ValueError(
                f"set_parameters: unknown parameters {unknown}; expected {list(self._layout)}"
            )
        new = self.flat_params.copy()
        for name, (_, shape) in self._layout.items():
            v = _as_real_array(params[name], name, self.dtype)
            if v.shape != shape:
                raise ValueError(f"set_parameters: {name} must have shape {shape}, got {v.shape}")
            self._view(new, name)[...] = v
        self.flat_params[:] = new
        self._have_forward = False  # a pending backward would mix old and new weights

    def grads_to_dict(self, flat_grad: np.ndarray) -> dict:
        return {name: self._view(flat_grad, name).copy() for name in self._layout}

    # -- compute --------------------------------------------------------------------------
    def _state_arrays(self, state: Any, B: int, name: str) -> tuple:
        """Splits a PyTorch-style state ((h, c) for LSTM, h otherwise) into checked arrays."""
        if state is None:
            return None, None
        if self.has_cell_state:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError(
                    f"{name} for an LSTM must be a tuple (h, c), got {type(state).__name__}"
                )
            h, c = state
        else:
            h, c = state, None
        expected = (self.num_layers, B, self.hidden_size)
        out = []
        for part, v in (("h", h), ("c", c)):
            if v is None:
                out.append(None)
                continue
            arr = _as_real_array(v, f"{name} {part}", self.dtype, ndim=3)
            if arr.shape != expected:
                raise ValueError(
                    f"{name} {part} must have shape (num_layers, batch, hidden_size)"
                    f" = {expected}, got {arr.shape}"
                )
            out.append(arr)
        return tuple(out)

    def _pack_state(self, h: np.ndarray, c: Optional[np.ndarray]) -> State:
        return (h, c) if self.has_cell_state else h

    def _check_memory(self, x: Any, train: bool) -> None:
        """MemoryError, before anything is allocated, when a forward over x cannot fit."""
        shape = getattr(x, "shape", None)
        if shape is None and isinstance(x, (list, tuple)):
            shape = peek_shape(x)  # nested lists: sized from their lengths, not converted
        if shape is None or len(shape) != 3:
            return
        B, T, D = int(shape[0]), int(shape[1]), int(shape[2])
        item = self.dtype.itemsize
        L, H = self.num_layers, self.hidden_size
        parts = [
            ("converted input", B * T * D * item if needs_copy(x, self.dtype) else 0),
            ("outputs", (B * T * H + 2 * L * B * H) * item),
            ("workspace", self._core.workspace_elements(B, T, train) * item),
            ("input gradient", B * T * D * item if train else 0),
        ]
        if fits_without_checking(sum(n for _, n in parts)):
            return  # the common small call: no message to format, nothing to read
        check_memory(
            parts, f"{type(self).__name__}.forward on a batch of {B} sequences of {T} steps"
        )

    def check_input(self, x: Any, lengths: Any = None) -> tuple:
        """x as a finite, C-contiguous (B, T, D) array of the layer's dtype, lengths as int64
        (B,): ValueError naming the problem otherwise."""
        x = _as_real_array(x, "x", self.dtype, ndim=3)
        B, T, D = x.shape
        if D != self.input_size:
            raise ValueError(f"x must have shape (batch, time, {self.input_size}), got {x.shape}")
        if B < 1 or T < 1:
            raise ValueError(
                f"x must hold at least one sequence of at least one step, got shape {x.shape}"
            )
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.shape != (B,):
                raise ValueError(f"lengths must have shape ({B},), got {lengths.shape}")
            if lengths.dtype.kind not in "iu":
                raise ValueError(f"lengths must be integers, got dtype {lengths.dtype}")
            lo, hi = int(lengths.min()), int(lengths.max())  # (before int64 could wrap)
            if lo < 1 or hi > T:
                raise ValueError(f"lengths must lie in [1, {T}], got min {lo} max {hi}")
            lengths = np.ascontiguousarray(lengths, dtype=np.int64)
        return x, lengths

    def forward(
        self,
        x: Any,
        state: Any = None,
        lengths: Any = None,
        inference: bool = False,
        return_gates: bool = False,
    ) -> tuple:
        """Runs the stack over x (B, T, D). Returns y (B, T, H) and the final state
        ((h, c) for cells with a cell state, h otherwise; each (L, B, H)). Keeps what
        ``backward`` needs, unless ``inference=True`` (less memory, a little faster;
        ``backward`` then raises).

        ``return_gates=True`` also returns a trace dict: "gates" (L, B, T, G*H), the activated
        gates of every layer and step in the cell's block order (cell_as_input's block u holds
        its pre-activation), "h" and, for cells with a cell state, "c" (L, B, T, H); zero past
        each sequence's length. So a user can watch what the network keeps and forgets."""
        if return_gates and inference:
            raise ValueError(
                "return_gates needs inference=False (the gates are what training keeps)"
            )
        self._check_memory(x, not inference)
        x, lengths = self.check_input(x, lengths)
        B, T, _ = x.shape
        h0, c0 = self._state_arrays(state, B, "state")
        # (non-finite flat_params: ValueError from the core, which checks them when it packs
        # them, i.e. once per change rather than on every call)
        L, H = self.num_layers, self.hidden_size
        y = np.empty((B, T, H), dtype=self.dtype)
        hT = np.empty((L, B, H), dtype=self.dtype)
        cT = np.empty((L, B, H), dtype=self.dtype) if self.has_cell_state else None
        with self._lock:
            self._have_forward = False
            self._core.forward(self.flat_params, x, lengths, h0, c0, y, hT, cT, not inference)
            self._have_forward = not inference
            self._last_shape = (B, T)
            if return_gates:
                G = int(_core.cell_info(self.cell)["gates"])
                trace = {
                    "gates": np.empty((L, B, T, G * H), dtype=self.dtype),
                    "h": np.empty((L, B, T, H), dtype=self.dtype),
                }
                if self.has_cell_state:
                    trace["c"] = np.empty((L, B, T, H), dtype=self.dtype)
                self._core.trace(trace["gates"], trace["h"], trace.get("c"))
                return y, self._pack_state(hT, cT), trace
        return y, self._pack_state(hT, cT)

    __call__ = forward
    to_onnx = _to_onnx  # ONNX export (lstm_native._onnx, re-exported by lstm_native.interop)

    def backward(
        self, dy: Any = None, dstate: Any = None, return_sequences_grads: bool = False
    ) -> dict:
        """BPTT for the last ``forward``: dy (B, T, H) and dstate (the final state's gradient, same
        structure as the state) may be None. Returns {parameter name: grad, "x": (B, T, D),
        "h0": (L, B, H), and "c0" for cells with a cell state}. With
        ``return_sequences_grads=True`` also "dh" and (cells with a cell state) "dc", each
        (L, B, T, H): dL/dh_t and dL/dc_t of every layer and step (zero past each length), for
        studying how gradients flow back in time."""
        if not self._have_forward:
            raise RuntimeError(
                "backward() needs a forward() first (a training forward, with the current "
                "parameters), and runs once per forward(): it overwrites the activations the "
                "forward saved, so call forward() again before another backward()"
            )
        B, T = self._last_shape
        L, H = self.num_layers, self.hidden_size
        if dy is not None:
            dy = _as_real_array(dy, "dy", self.dtype, ndim=3)
            if dy.shape != (B, T, H):
                raise ValueError(f"dy must have the output's shape {(B, T, H)}, got {dy.shape}")
        dhT, dcT = self._state_arrays(dstate, B, "dstate")
        dparams = np.zeros_like(self.flat_params)
        dx = np.empty((B, T, self.input_size), dtype=self.dtype)
        dh0 = np.empty((L, B, H), dtype=self.dtype)
        dc0 = np.empty((L, B, H), dtype=self.dtype) if self.has_cell_state else None
        dhs = np.empty((L, B, T, H), dtype=self.dtype) if return_sequences_grads else None
        dcs = (
            np.empty((L, B, T, H), dtype=self.dtype)
            if return_sequences_grads and self.has_cell_state
            else None
        )
        with self._lock:
            if not self._have_forward:  # another thread's backward came first
                raise RuntimeError(
                    "backward() was already called for the last forward(); call forward() again"
                )
            self._have_forward = False  # set first: also when the core call fails halfway
            self._core.backward(self.flat_params, dy, dhT, dcT, dparams, dx, dh0, dc0, dhs, dcs)
        grads = self.grads_to_dict(dparams)
        if return_sequences_grads:
            grads["dh"] = dhs
            if dcs is not None:
                grads["dc"] = dcs
        grads["x"] = dx
        grads["h0"] = dh0
        if self.has_cell_state:
            grads["c0"] = dc0
        return grads

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_size={self.input_size}, "
            f"hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
            f"cell={self.cell!r}, bias={self.bias}, dtype={self.dtype.name}"
            + (f", precision={self.precision!r})" if self.precision != "float32" else ")")
        )

    # The core object holds a workspace, not state: rebuild it on unpickling.
    def __getstate__(self) -> dict:
        d = self.__dict__.copy()
        for k in ("_core", "_lock", "_have_forward", "_last_shape"):
            d.pop(k, None)
        return d

    def __setstate__(self, d: dict) -> None:
        d.setdefault("precision", "float32")  # pickled before precision existed
        self.__dict__.update(d)
        core_cls = _core.Recurrent32 if self.dtype == np.float32 else _core.Recurrent64
        self._core = core_cls(
            self.cell,
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.bias,
            precision=self.precision,
        )
        self._lock = ForkSafeLock()
        self._have_forward = False


class LSTM(Recurrent):
    """LSTM layers (gates i, f, g, o as PyTorch); ``cell`` may name another cell."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        bias: bool = True,
        dtype: Any = np.float32,
        random_state: Any = None,
        *,
        precision: str = "float32",
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            cell,
            bias,
            dtype,
            random_state,
            precision=precision,
        )


class GRU(Recurrent):
    """GRU layers in PyTorch's form (gates r, z, n)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        dtype: Any = np.float32,
        random_state: Any = None,
        *,
        precision: str = "float32",
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            "gru",
            bias,
            dtype,
            random_state,
            precision=precision,
        )


class RNN(Recurrent):
    """Elman RNN layers, h_t = tanh or relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        dtype: Any = np.float32,
        random_state: Any = None,
        *,
        precision: str = "float32",
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            "rnn_" + nonlinearity,
            bias,
            dtype,
            random_state,
            precision=precision,
        )


__all__ = ["CELLS", "GRU", "LSTM", "RNN", "Recurrent", "canonical_cell"]
