"""A network as the estimators use it: its configuration, its initial parameters, and the
compiled core models that train and run it.

:class:`Network` owns a pool of core ``Model`` objects of one configuration. A core Model owns
one workspace and serves one call at a time (the GIL is released during its calls), so every
concurrent caller borrows a Model of its own: predictions from several Python threads run in
parallel and give the results of sequential calls. The pool grows to the number of concurrent
callers and is never pickled (a new one is made on demand).

The parameters themselves are not stored here: they live in a :class:`~lstm_native._state.
TrainState` and are passed to every call, so that training can work on a copy while other
threads predict with the published weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from . import _core
from ._locks import ForkSafeLock
from ._memory import PREDICT_CHUNK, check_memory, needs_copy, peek_shape

# Every cell of the core by its name, plus the aliases the estimators and layers accept.
CELLS = tuple(_core.CELLS)
CELL_ALIASES = dict(_core.CELL_ALIASES)

# Cells whose hidden state is bounded by 1 in absolute value whatever the input (tanh or o*tanh
# outputs, GRU's convex combination of them): with finite, moderate weights their outputs are
# finite. The others (rnn_relu, no_output_activation) can overflow with finite weights.
_BOUNDED_CELLS = frozenset(CELLS) - {"rnn_relu", "no_output_activation"}


def canonical_cell(cell: str) -> str:
    """The core's name for ``cell`` ("rnn" means the tanh RNN); ValueError if unknown."""
    if not isinstance(cell, str):
        raise TypeError(f"cell must be a string, got {type(cell).__name__}")
    name = CELL_ALIASES.get(cell, cell)
    if name not in CELLS:
        raise ValueError(f"cell must be one of {CELLS + tuple(CELL_ALIASES)}, got {cell!r}")
    return name


PRECISIONS = ("float32", "bfloat16")


def check_precision(precision: Any, dtype: Any) -> str:
    """``precision`` checked against the parameters' dtype: "float32", or "bfloat16" (GEMM
    operands rounded to bfloat16, float32 sums) with float32 parameters only."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    if precision == "bfloat16" and np.dtype(dtype) != np.float32:
        raise ValueError(
            "precision='bfloat16' needs float32 parameters (dtype=np.float32): bfloat16 "
            f"operands with float32 sums and float32 master weights; got dtype {np.dtype(dtype)}"
        )
    return precision


def core_config(config: dict) -> Any:
    """The core's ModelConfig for a network configuration (the core checks every field, and
    computes sizes without allocating the network)."""
    return _core.ModelConfig(**{k: v for k, v in config.items() if k != "dtype"})


def loss_config(loss: str) -> dict:
    """The loss fields of a network configuration for ``loss`` (a core loss name), with the
    core's defaults for huber_delta and quantiles (which only "huber" and "quantile" read)."""
    defaults = {name: value for name, _, value in _core.ModelConfig.FIELDS}
    return {
        "loss": loss,
        "huber_delta": defaults["huber_delta"],
        "quantiles": list(defaults["quantiles"]),
    }


def head_width(loss: dict, n_outputs: int) -> int:
    """The network's output size for ``n_outputs`` targets (classes with softmax) under the loss
    fields ``loss``: one output per target and quantile level with "quantile"."""
    return n_outputs * len(loss["quantiles"]) if loss["loss"] == "quantile" else n_outputs


def orthogonal(rng: np.random.RandomState, n: int) -> np.ndarray:
    """A uniformly distributed random orthogonal n x n matrix: QR of a Gaussian matrix with the
    signs of R's diagonal moved into Q."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    return q * d


def initial_parameters(
    layout: list,
    num_params: int,
    cell: str,
    hidden_size: int,
    random_state: Any = None,
    dtype: Any = np.float64,
) -> np.ndarray:
    """The estimators' initial flat parameter vector for a core ``layout()``.

    * ``weight_ih_*`` (G*H, in): Glorot-uniform over the whole matrix,
      U(-a, a) with a = sqrt(6 / (in + G*H)) (as Keras does for its LSTM kernel);
    * ``weight_hh_*`` (G*H, H): every H x H gate block orthogonal (QR of a Gaussian);
    * ``bias_ih_*``: 0, except the forget-gate rows (LSTM: H..2H), which are 1; ``bias_hh_*``: 0;
    * ``weight_ch_*`` (H, H), the cell-to-state weights of "ungated"/"cell_as_input": orthogonal;
      the peepholes ``weight_ci/cf/co_*`` (H,): 0;
    * ``head.weight`` (O, dirs*H): Glorot-uniform; ``head.bias``: 0.
    """
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    H = int(hidden_size)
    cell = canonical_cell(cell)
    forget = int(_core.cell_info(cell)["forget_block"])  # -1: the cell has no forget gate
    flat = np.zeros(int(num_params), dtype=np.float64)
    for name, offset, shape in layout:
        shape = tuple(int(s) for s in shape)
        size = int(np.prod(shape))
        view = flat[offset : offset + size].reshape(shape)
        if name.startswith("weight_ih_") or name == "head.weight":
            fan_out, fan_in = shape
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            view[...] = rng.uniform(-limit, limit, size=shape)
        elif name.startswith("weight_hh_"):
            for g in range(shape[0] // H):
                view[g * H : (g + 1) * H] = orthogonal(rng, H)
        elif name.startswith("weight_ch_"):
            view[...] = orthogonal(rng, H)
        elif name.startswith("bias_ih_"):
            if forget >= 0:
                view[forget * H : (forget + 1) * H] = 1.0
        elif name.startswith(("bias_hh_", "weight_ci_", "weight_cf_", "weight_co_")) or (
            name == "head.bias"
        ):
            pass
        else:
            raise RuntimeError(f"unknown parameter {name!r} in the core's layout")
    return flat.astype(dtype)


@dataclass
class OptimOptions:
    """How minibatch training steps (the learning rate and the seed come from the
    TrainState). ``max_grad_norm`` None disables clipping."""

    solver: str = "adam"
    batch_size: int = 200
    shuffle: bool = True
    alpha: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    max_grad_norm: Optional[float] = None


def _threads(n_jobs: Optional[int]) -> int:
    """The core's thread setting for an n_jobs value: None/negative = automatic (0)."""
    return 0 if n_jobs is None or n_jobs < 0 else max(1, int(n_jobs))


class Network:
    """A network configuration and the core models that run it (see the module docstring).
    ``config``: cell, input_size, hidden_size, num_layers, output_size, bidirectional,
    return_sequences, dropout, loss ("mse", "softmax", "absolute_error", "huber", "quantile"),
    huber_delta, quantiles and dtype ("float32"/"float64")."""

    def __init__(self, config: dict) -> None:
        self.config = dict(config)
        self.dtype = np.dtype(self.config["dtype"])
        self.prototype = self._make()  # layout(), num_params, stream(): read-only uses
        self._free = [self.prototype]
        self._lock = ForkSafeLock()

    def _make(self) -> Any:
        cls = _core.Model32 if self.dtype == np.float32 else _core.Model64
        return cls(core_config(self.config))

    @property
    def num_params(self) -> int:
        return int(self.prototype.num_params)

    def layout(self) -> list:
        """[(name, offset, shape)] of every parameter in the flat vector."""
        return [
            (name, int(off), tuple(int(s) for s in shape))
            for name, off, shape in self.prototype.layout()
        ]

    def __len__(self) -> int:  # core Models made so far (for tests)
        return len(self._free)

    @contextmanager
    def borrow(self, n_jobs: Optional[int] = None) -> Iterator[Any]:
        """A core Model for one call, set to ``n_jobs`` threads (results do not depend on it)."""
        with self._lock:
            core = self._free.pop() if self._free else None
        if core is None:
            core = self._make()
        try:
            core.num_threads = _threads(n_jobs)
            yield core
        finally:
            with self._lock:
                self._free.append(core)

    def initial_parameters(self, rng: np.random.RandomState) -> np.ndarray:
        return initial_parameters(
            self.layout(),
            self.num_params,
            self.config["cell"],
            self.config["hidden_size"],
            rng,
            dtype=self.dtype,
        )

    # -- compute --------------------------------------------------------------------------
    def predict_raw(
        self,
        params: np.ndarray,
        X: np.ndarray,
        lengths: Optional[np.ndarray],
        n_jobs: Optional[int] = None,
    ) -> np.ndarray:
        """The head's outputs (N, O), or (N, T, O) with return_sequences, zero at padded steps.
        One core call per PREDICT_CHUNK sequences (the chunk the core itself works in, so the
        results are those of one call): Ctrl-C is handled between chunks."""
        N, T = X.shape[:2]
        O = self.config["output_size"]
        out = np.empty((N, T, O) if self.config["return_sequences"] else (N, O), self.dtype)
        with self.borrow(n_jobs) as core:
            for start in range(0, N, PREDICT_CHUNK):
                sl = slice(start, min(start + PREDICT_CHUNK, N))
                core.predict(params, X[sl], None if lengths is None else lengths[sl], out[sl])
        return out

    def train_epoch(
        self,
        state: Any,
        X: np.ndarray,
        lengths: Optional[np.ndarray],
        Y: np.ndarray,
        sw: Optional[np.ndarray],
        opt: OptimOptions,
        n_jobs: Optional[int] = None,
        batch_hook: Optional[Callable[[int, int], None]] = None,
    ) -> float:
        """One epoch of minibatch training in the core on ``state`` (params, m, v and step
        updated in place; the seed drawn from state.rng); returns the mean minibatch loss."""
        optim = _core.OptimConfig(
            solver=opt.solver,
            lr=float(state.lr),
            alpha=float(opt.alpha),
            momentum=float(opt.momentum),
            nesterov=bool(opt.nesterov),
            beta1=float(opt.beta1),
            beta2=float(opt.beta2),
            eps=float(opt.eps),
            max_grad_norm=0.0 if opt.max_grad_norm is None else float(opt.max_grad_norm),
            batch_size=min(int(opt.batch_size), X.shape[0]),
            shuffle=bool(opt.shuffle),
            seed=int(state.rng.randint(0, np.iinfo(np.int32).max)),
        )
        with self.borrow(n_jobs) as core:
            loss, step = core.train_epoch(
                state.params,
                state.m,
                state.v,
                int(state.step),
                X,
                lengths,
                Y,
                sw,
                optim,
                callback=batch_hook,
            )
        state.step = int(step)
        return float(loss)

    def rollout(
        self,
        params: np.ndarray,
        X: np.ndarray,
        lengths: Optional[np.ndarray],
        horizon: int,
        future: Optional[np.ndarray],
        feedback: Any,
        n_jobs: Optional[int] = None,
    ) -> np.ndarray:
        """The core's recursive forecast (N, horizon, O) from the histories X (see
        Model.rollout: the state carried, no Python per step)."""
        out = np.empty((X.shape[0], int(horizon), self.config["output_size"]), self.dtype)
        with self.borrow(n_jobs) as core:
            core.rollout(params, X, lengths, int(horizon), future, feedback, out)
        return out

    def stream(self, params: np.ndarray, batch: int) -> Any:
        return self.prototype.stream(params, int(batch))

    def outputs_bounded(self, params: np.ndarray, x_absmax: float, steps: int) -> bool:
        """Whether every output of the network with ``params`` on sequences of at most
        ``steps`` steps with inputs of magnitude at most ``x_absmax`` is certainly finite.

        A bound, not a computation: the cell keeps |h| <= 1, so with w = max|params| every
        pre-activation is at most w (max(D x_absmax, 2H) + H (T+2) + 3) in magnitude (input and
        recurrent products, biases, peepholes or W_ch on a cell state of at most T (T+1) times
        that), and the head's outputs at most w (2H + 1). When that stays far below the dtype's
        overflow, a prediction pass over the training data to look for overflow is
        unnecessary."""
        if self.config["cell"] not in _BOUNDED_CELLS or not np.isfinite(x_absmax):
            return False
        w = float(np.abs(params).max()) if params.size else 0.0
        H, D, T = self.config["hidden_size"], self.config["input_size"], max(int(steps), 1)
        width = max(D * max(float(x_absmax), 1.0), 2.0 * H) + H * (T + 2.0) + 3.0
        return w * width * (T + 1.0) < float(np.finfo(self.dtype).max) * 1e-3

    # -- memory -------------------------------------------------------------------------
    def check_predict_memory(self, N: int, T: int, D: int, X: Any) -> None:
        """MemoryError before anything is allocated when predicting on (N, T, D) cannot fit."""
        if min(N, T, D) < 1:
            return  # refused with a clearer message by the input checks
        cfg = dict(self.config, input_size=D)
        item = self.dtype.itemsize
        steps = N * T if cfg["return_sequences"] else N
        check_memory(
            [
                ("converted input", N * T * D * item if needs_copy(X, self.dtype) else 0),
                ("outputs", steps * cfg["output_size"] * (item + 16)),
                (
                    "workspace",
                    core_config(cfg).workspace_elements(min(N, PREDICT_CHUNK), T, False) * item,
                ),
            ],
            f"predict on {N} sequences of {T} steps",
        )


def check_fit_memory(est: Any, X: Any, y: Any, network_config: Callable) -> None:
    """MemoryError before anything is allocated when ``est.fit(X, y)`` cannot fit: the
    converted input and targets, the parameters with optimizer state and copies, the training
    workspace of one minibatch (and the prediction workspace for validation). From the shapes
    alone (``peek_shape``); ``network_config(D, O, dtype)`` gives the network."""
    from sklearn.base import is_classifier

    shape = peek_shape(X)
    if shape is None or min(shape) < 1:
        return  # unknown, or refused with a clearer message by the input checks
    N, T, D = shape
    y_shape = np.shape(y) if hasattr(y, "shape") else ()
    if is_classifier(est):
        O = 2
    else:
        axis = 2 if est.return_sequences else 1
        O = int(y_shape[axis]) if len(y_shape) == axis + 1 else 1
    dtype = np.dtype(est.dtype)
    config = network_config(D, max(O, 1), dtype)
    validating = bool(est.early_stopping)
    copies = (2 if isinstance(X, (list, tuple)) else int(needs_copy(X, dtype))) + validating
    batch = 200 if est.batch_size == "auto" else int(est.batch_size)
    item = dtype.itemsize
    H = config["hidden_size"]
    net = core_config(config)  # sizes from the core: ValueError for a bad config
    P = net.num_params
    B = min(N, batch)
    steps = N * T if config["return_sequences"] else N
    check_memory(
        [
            ("converted input", copies * N * T * D * item),
            ("targets", steps * config["output_size"] * item),
            ("parameters, optimizer state and copies", P * (14 * item + 8) + 3 * 8 * H * H),
            ("training workspace", net.workspace_elements(B, T, True) * item),
            (
                "validation workspace",
                net.workspace_elements(min(N, PREDICT_CHUNK), T, False) * item if validating else 0,
            ),
        ],
        f"{type(est).__name__}.fit on {N} sequences of {T} steps with hidden_size={H}, "
        f"num_layers={config['num_layers']}",
    )


__all__ = [
    "CELLS",
    "CELL_ALIASES",
    "Network",
    "OptimOptions",
    "PREDICT_CHUNK",
    "canonical_cell",
    "core_config",
    "check_fit_memory",
    "head_width",
    "initial_parameters",
    "loss_config",
    "orthogonal",
]
