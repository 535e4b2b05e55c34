"""scikit-learn estimators on the compiled recurrent core: :class:`LSTMRegressor` and
:class:`LSTMClassifier`.

A network reads each sequence o_1..o_T step by step (LSTM, GRU or Elman RNN layers, optionally
bidirectional and stacked with dropout between layers) and a linear head maps the last hidden
state (or, with ``return_sequences=True``, every step's hidden state) to the outputs.

Input ``X`` (see :mod:`lstm_native._validation` for the details):

* 3-D array ``(n_samples, n_timesteps, n_features)``; ``n_features_in_ = n_features``;
* 2-D array ``(n_samples, n_timesteps)``: univariate sequences. scikit-learn requires
  ``n_features_in_ == X.shape[1]`` for 2-D input, so then ``n_features_in_`` counts timesteps;
* a list of ``(T_i, n_features)`` (or ``(T_i,)``) arrays of different lengths: variable-length
  sequences, padded internally; the result of each sequence does not depend on the others.

Targets ``y``: ``(n_samples,)`` or ``(n_samples, n_outputs)`` per sequence; with
``return_sequences=True`` one target per step: ``(n_samples, n_timesteps[, n_outputs])`` or a
list of ``(T_i[, n_outputs])`` arrays (classifier: ``(n_samples,)`` labels, or per-step labels
``(n_samples, n_timesteps)`` / a list of ``(T_i,)`` arrays).

Training runs whole epochs in C++ (shuffling, minibatches, BPTT, gradient clipping, optimizer
step); the epoch loop, learning-rate schedules, convergence tests and early stopping live here
and follow :class:`sklearn.neural_network.MLPRegressor`:

* the training loss (or, with ``early_stopping``, the validation score) must improve by ``tol``
  within ``n_iter_no_change`` epochs (more precisely: after more than ``n_iter_no_change``
  epochs without such an improvement the schedule acts);
* ``learning_rate="constant"``: then training stops;
* ``"invscaling"``: ``lr = learning_rate_init / (t_ + 1) ** power_t`` after every epoch
  (``t_`` = samples seen, as sklearn); stops like "constant";
* ``"adaptive"``: the learning rate is divided by 5; training stops once it is <= 1e-6;
* ``"plateau"`` (reduce-on-plateau): the learning rate is halved; training stops once it is
  <= 1e-6. It is "adaptive" with a gentler factor, which suits Adam better.

Unlike MLP, the schedules apply to every solver (MLP applies them to "sgd" only).
The loss is ``0.5 * mean squared error`` (regressor) or the cross-entropy of a softmax
(classifier, also for two classes), weighted by ``sample_weight``, plus
``0.5 * alpha * ||W||^2 / (total sample weight of the minibatch)`` over the weight matrices
(not the biases), as MLP; with
``solver="adamw"`` ``alpha`` is instead the decoupled weight decay.

Robustness (see tests/test_robustness.py):

* bad input raises ValueError / TypeError naming the argument; a fit or predict whose memory
  (estimated from the shapes, before anything is allocated) exceeds what is available raises
  MemoryError naming the sizes;
* divergence: every epoch starts from a checkpoint. If the loss or the weights become NaN or
  infinite, or the predictions on the training (or validation) data do, training stops, the
  estimator rolls back to the latest weights that predict finite values on the training data
  (the best early-stopping weights, the start of this or the previous epoch, or the
  initialization), with the bookkeeping of the epochs up to them, and ``fit`` raises
  ValueError; the estimator stays usable. ``predict`` raises ValueError naming the sequences
  whose outputs overflow (instead of returning NaN, or for a classifier the class argmax makes
  of NaN logits);
* Ctrl-C (KeyboardInterrupt) during ``fit``/``partial_fit`` stops at the next minibatch
  boundary (the core checks for signals at most every 100 ms), leaves the estimator fitted with
  the weights of every completed optimizer step (with early stopping: the best so far) and
  re-raises, so that a script or a grid search stops as the user asked; ``predict`` works in
  chunks of 256 sequences and stops between them;
* threads: an estimator lends every concurrent caller a core model of its own, so ``predict``
  from several threads runs in parallel and gives the results of sequential calls; estimators
  in different threads do not interact;
* ``save(path)`` / ``load(path)``: a portable ``.npz`` without pickle, written atomically.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections import deque
from contextlib import contextmanager
from numbers import Integral, Real
from typing import Any, Iterator, Optional

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
)
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    unique_labels,
)
from sklearn.utils.validation import assert_all_finite, check_is_fitted, column_or_1d

from . import _core
from ._locks import ForkSafeLock
from .nn import _all_finite
from ._memory import (
    PREDICT_CHUNK,
    check_memory,
    needs_copy,
    peek_shape,
)
from ._validation import (
    Sequences,
    check_finite_array,
    check_n_samples,
    check_sample_weight,
    check_sequences,
    check_y_present,
    pad_sequence_targets,
)

# Every cell of the core by its name, plus "rnn" for the tanh RNN.
_CELLS = {**{c: c for c in _core.CELLS}, "rnn": "rnn_tanh"}
_MIN_LR = 1e-6  # "adaptive" / "plateau" stop once the learning rate is at or below this


def _orthogonal(rng: np.random.RandomState, n: int) -> np.ndarray:
    """A uniformly distributed random orthogonal n x n matrix: QR of a Gaussian matrix with the
    signs of R's diagonal moved into Q."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    return q * d


def initial_parameters(layout: list, num_params: int, cell: str, hidden_size: int,
                       random_state: Any = None, dtype: Any = np.float64) -> np.ndarray:
    """The estimators' initial flat parameter vector for a core ``layout()``.

    * ``weight_ih_*`` (G*H, in): Glorot-uniform over the whole matrix,
      U(-a, a) with a = sqrt(6 / (in + G*H)) (as Keras does for its LSTM kernel);
    * ``weight_hh_*`` (G*H, H): every H x H gate block orthogonal (QR of a Gaussian);
    * ``bias_ih_*``: 0, except the forget-gate rows (LSTM: H..2H), which are 1; ``bias_hh_*``: 0;
    * ``weight_ch_*`` (H, H), the cell-to-state weights of "ungated"/"cell_as_input": orthogonal;
      the peepholes ``weight_ci/cf/co_*`` (H,): 0;
    * ``head.weight`` (O, dirs*H): Glorot-uniform; ``head.bias``: 0.
    """
    rng = check_random_state(random_state)
    H = int(hidden_size)
    cell = _CELLS.get(cell, cell)
    forget = int(_core.cell_info(cell)["forget_block"])  # -1: the cell has no forget gate
    flat = np.zeros(int(num_params), dtype=np.float64)
    for name, offset, shape in layout:
        shape = tuple(int(s) for s in shape)
        size = int(np.prod(shape))
        view = flat[offset: offset + size].reshape(shape)
        if name.startswith("weight_ih_") or name == "head.weight":
            fan_out, fan_in = shape
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            view[...] = rng.uniform(-limit, limit, size=shape)
        elif name.startswith("weight_hh_"):
            for g in range(shape[0] // H):
                view[g * H: (g + 1) * H] = _orthogonal(rng, H)
        elif name.startswith("weight_ch_"):
            view[...] = _orthogonal(rng, H)
        elif name.startswith("bias_ih_"):
            if forget >= 0:
                view[forget * H: (forget + 1) * H] = 1.0
        elif name.startswith(("bias_hh_", "weight_ci_", "weight_cf_", "weight_co_")) or (
                name == "head.bias"):
            pass
        else:
            raise RuntimeError(f"unknown parameter {name!r} in the core's layout")
    return flat.astype(dtype)


def _for_core(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """``a`` as the core takes it without a copy: C-contiguous (copied only when it is not)."""
    return None if a is None else np.ascontiguousarray(a)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def _valid_steps(lengths: np.ndarray, T: int) -> np.ndarray:
    """Boolean mask (N, T): step t of sequence i is real (t < lengths[i])."""
    return np.arange(T)[None, :] < lengths[:, None]


class _NonFiniteOutput(ValueError):
    """The network produced NaN or infinity (see _raw_predict)."""


class _CorePool:
    """Core Model objects of one network configuration, lent out one per concurrent call.

    A core Model owns one workspace and serves one call at a time; the GIL is released during
    its calls. So that predictions from several Python threads run in parallel, every caller
    borrows a Model of its own: a free one, or a new one made on demand (kept for later
    calls: the pool holds as many Models as there were concurrent callers). The pool is not
    pickled; an unpickled estimator makes a new one."""

    def __init__(self, config: dict) -> None:
        self.config = dict(config)
        self.prototype = self._make()  # layout(), num_params, stream(): read-only uses
        self._free = [self.prototype]
        self._lock = ForkSafeLock()

    def _make(self) -> Any:
        cfg = self.config
        cls = _core.Model32 if cfg["dtype"] == "float32" else _core.Model64
        return cls(_core.ModelConfig(**{k: v for k, v in cfg.items() if k != "dtype"}))

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        with self._lock:
            core = self._free.pop() if self._free else None
        if core is None:
            core = self._make()
        try:
            yield core
        finally:
            with self._lock:
                self._free.append(core)

    def __len__(self) -> int:
        return len(self._free)


class _BaseRecurrentEstimator(BaseEstimator):
    """Shared machinery of the recurrent estimators (not for direct use)."""

    _loss: str = ""  # the core's loss: "mse" or "softmax"

    _parameter_constraints: dict = {
        "cell": [StrOptions(set(_CELLS))],
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "bidirectional": ["boolean"],
        "return_sequences": ["boolean"],
        "solver": [StrOptions({"adam", "adamw", "sgd", "rmsprop"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive", "plateau"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "dtype": [StrOptions({"float32", "float64"}), Options(type, {np.float32, np.float64}),
                  Options(np.dtype, {np.dtype(np.float32), np.dtype(np.float64)})],
        # -1 (or any negative) and None: automatic; the core takes a C int
        "n_jobs": [Interval(Integral, None, 2**31 - 1, closed="right"), None],
    }

    def __init__(
        self,
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        *,
        dropout: float = 0.0,
        bidirectional: bool = False,
        return_sequences: bool = False,
        solver: str = "adam",
        alpha: float = 1e-4,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 1e-3,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: Any = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_grad_norm: Optional[float] = 5.0,
        dtype: Any = "float32",
        n_jobs: Optional[int] = None,
    ) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.bidirectional = bidirectional
        self.return_sequences = return_sequences
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_grad_norm = max_grad_norm
        self.dtype = dtype
        self.n_jobs = n_jobs

    # -- tags, pickling --------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "params_")

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state = dict(state)
        for key in ("_core_model", "_lock", "_pool", "_history", "_initial_params"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "_config_" in self.__dict__:
            self._build_core()

    # -- the network -----------------------------------------------------------------------
    def _model_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def _build_core(self) -> None:
        """A fresh pool of core Models for ``_config_`` (see :class:`_CorePool`);
        ``_core_model`` is its first Model, for the read-only layout()/stream()."""
        self._pool = _CorePool(self._config_)
        self._core_model = self._pool.prototype

    @contextmanager
    def _core(self) -> Iterator[Any]:
        """A core Model for one call, with this estimator's thread setting: None/-1 = automatic
        (the core splits a batch into parts by its size only, one thread per part, up to the
        machine's cores), k > 0 = at most k. Results are identical for any value."""
        n = self.n_jobs
        with self._pool.borrow() as core:
            core.num_threads = 0 if n is None or n < 0 else max(1, int(n))
            yield core

    def _network_config(self, input_size: int, output_size: int) -> dict:
        return dict(cell=_CELLS[self.cell], input_size=int(input_size),
                    hidden_size=int(self.hidden_size), num_layers=int(self.num_layers),
                    output_size=int(output_size), bidirectional=bool(self.bidirectional),
                    return_sequences=bool(self.return_sequences), dropout=float(self.dropout),
                    loss=self._loss, dtype=self._model_dtype().name)

    def named_parameters(self) -> dict:
        """The fitted parameters by name (PyTorch's names for the recurrent layers, then
        ``head.weight`` (n_outputs, directions * hidden_size) and ``head.bias``), as copies."""
        check_is_fitted(self)
        return {name: self.params_[off: off + int(np.prod(shape))].reshape(shape).copy()
                for name, off, shape in self._core_model.layout()}

    def _init_network(self, config: dict) -> None:
        reuse = getattr(self, "_pool", None) is not None and self._config_ == config
        # the new network is made whole before it replaces the old one, so that an exception
        # or Ctrl-C in between leaves the previous (consistent) network in place
        pool = self._pool if reuse else _CorePool(config)  # a refit keeps the workspaces
        core = pool.prototype
        params = initial_parameters(core.layout(), core.num_params, config["cell"],
                                    config["hidden_size"], self._random_state,
                                    dtype=self._model_dtype())
        self._config_ = config
        self._pool, self._core_model = pool, core
        self.params_ = params
        self.t_ = 0
        self.n_iter_ = 0
        self.loss_curve_ = []
        self._init_tracking()
        self._best_params = None
        self._initial_params = params.copy()  # the last resort when training diverges
        self._history = deque(maxlen=2)  # the states at the start of the last two epochs

    def _init_tracking(self) -> None:
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _reset_optimizer(self) -> None:
        n = self.params_.size
        self._m = np.zeros(n, dtype=self.params_.dtype)
        self._v = np.zeros(n, dtype=self.params_.dtype)
        self._step = 0
        self._lr = float(self.learning_rate_init)
        self._no_improvement_count = 0

    def _raw_predict(self, seqs: Sequences, check: bool = True) -> np.ndarray:
        """The head's outputs (N, O) or, with return_sequences, (N, T, O). With ``check``,
        _NonFiniteOutput (a ValueError) when some are not finite: the network overflowed on
        those sequences (NaN logits would otherwise turn silently into class 0)."""
        out = self._raw_outputs(seqs)
        if check and not _all_finite(out):
            bad = np.flatnonzero(~np.isfinite(out.reshape(out.shape[0], -1)).all(axis=1))
            raise _NonFiniteOutput(
                f"The network's outputs are not finite (overflow) for {bad.size} of "
                f"{out.shape[0]} sequences (indices {bad[:10].tolist()}"
                f"{', ...' if bad.size > 10 else ''}); their values lie far outside the range "
                "the model was trained on")
        return out

    def _raw_outputs(self, seqs: Sequences) -> np.ndarray:
        N, T = seqs.X.shape[:2]
        O = self._config_["output_size"]
        shape = (N, T, O) if self._config_["return_sequences"] else (N, O)
        out = np.empty(shape, dtype=self.params_.dtype.type)
        params = _for_core(self.params_)
        lengths = seqs.core_lengths
        # One core call per PREDICT_CHUNK sequences (the chunk the core itself works in, so
        # results are those of one call): Ctrl-C is handled between chunks, and a borrowed
        # core Model lets other threads predict in parallel.
        with self._core() as core:
            for start in range(0, N, PREDICT_CHUNK):
                sl = slice(start, min(start + PREDICT_CHUNK, N))
                core.predict(params, seqs.X[sl], None if lengths is None else lengths[sl],
                             out[sl])
        return out

    def _check_X_predict(self, X: Any) -> Sequences:
        check_is_fitted(self)
        self._check_predict_memory(X)
        return check_sequences(X, dtype=self.params_.dtype, estimator=self, reset=False)

    # -- memory ---------------------------------------------------------------------------
    def _check_predict_memory(self, X: Any) -> None:
        """MemoryError before anything is allocated when predicting on X cannot fit."""
        shape = peek_shape(X)
        if shape is None:
            return
        N, T, D = shape
        if min(N, T, D) < 1:
            return  # nothing to allocate, or refused by the input checks
        cfg = dict(self._config_, input_size=D)
        net = _core.ModelConfig(**{k: v for k, v in cfg.items() if k != "dtype"})
        item = self.params_.dtype.itemsize
        steps = N * T if cfg["return_sequences"] else N
        O = cfg["output_size"]
        check_memory([
            ("converted input", N * T * D * item if needs_copy(X, self.params_.dtype) else 0),
            ("outputs", steps * O * (item + 16)),
            ("workspace", net.workspace_elements(min(N, PREDICT_CHUNK), T, False) * item),
        ], f"{type(self).__name__}.predict on {N} sequences of {T} steps")

    def _check_fit_memory(self, X: Any, y: Any) -> None:
        """MemoryError before anything is allocated when fitting X cannot fit: the converted
        input and targets, parameters with optimizer state and copies, the training workspace
        of one minibatch (and the prediction workspace for early stopping)."""
        shape = peek_shape(X)
        if shape is None:
            return
        N, T, D = shape
        if min(N, T, D) < 1:
            return  # nothing to allocate, or refused by the input checks
        dtype = self._model_dtype()
        item = dtype.itemsize
        y_shape = np.shape(y) if hasattr(y, "shape") else ()
        if self._loss == "softmax":
            O = 2
        elif self.return_sequences:
            O = int(y_shape[2]) if len(y_shape) == 3 else 1
        else:
            O = int(y_shape[1]) if len(y_shape) == 2 else 1
        cfg = self._network_config(D, max(O, 1))
        net = _core.ModelConfig(**{k: v for k, v in cfg.items() if k != "dtype"})
        P = net.num_params
        B = min(N, 200 if self.batch_size == "auto" else int(self.batch_size))
        steps = N * T if self.return_sequences else N
        H = cfg["hidden_size"]
        copies = (2 if isinstance(X, (list, tuple)) else int(needs_copy(X, dtype)))
        copies += int(bool(self.early_stopping))
        check_memory([
            ("converted input", copies * N * T * D * item),
            ("targets", steps * O * item),
            ("parameters, optimizer state and copies", P * (14 * item + 8) + 3 * 8 * H * H),
            ("training workspace", net.workspace_elements(B, T, True) * item),
            ("validation workspace", net.workspace_elements(min(N, PREDICT_CHUNK), T, False) * item
             if self.early_stopping else 0),
        ], f"{type(self).__name__}.fit on {N} sequences of {T} steps with hidden_size={H}, "
           f"num_layers={cfg['num_layers']}")

    # -- subclass hooks -----------------------------------------------------------------
    def _prepare_targets(self, y, seqs, first_pass, incremental, classes):  # pragma: no cover
        raise NotImplementedError

    def _internal_score(self, seqs: Sequences, Y: np.ndarray,
                        sw: Optional[np.ndarray]) -> float:  # pragma: no cover
        raise NotImplementedError

    # -- fitting ----------------------------------------------------------------------------
    _INTEGER_PARAMS = ("hidden_size", "num_layers", "batch_size", "max_iter", "n_iter_no_change",
                       "n_jobs")

    def _check_integer_params(self) -> None:
        """scikit-learn's Interval(Integral) accepts True/False; a bool hidden_size or
        num_layers is a mistake, not a 1."""
        for name in self._INTEGER_PARAMS:
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be an int, not a "
                    f"bool; got {value!r}")

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool,
             classes: Any = None) -> "_BaseRecurrentEstimator":
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "params_") or (not self.warm_start and not incremental)
        self._check_integer_params()
        check_y_present(y, self)
        dtype = self._model_dtype()
        self._check_fit_memory(X, y)
        seqs = check_sequences(X, dtype=dtype, estimator=self, reset=first_pass)
        Y = self._prepare_targets(y, seqs, first_pass, incremental, classes)
        sw = check_sample_weight(sample_weight, seqs.n_samples, dtype)
        config = self._network_config(seqs.n_features, self._head_width(Y))

        if first_pass or not incremental or not hasattr(self, "_random_state"):
            self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._init_network(config)
            self._reset_optimizer()
        else:
            old = dict(self._config_)
            if {k: v for k, v in old.items() if k != "dropout"} != {
                    k: v for k, v in config.items() if k != "dropout"}:
                changed = sorted(k for k in config if k != "dropout" and config[k] != old[k])
                raise ValueError(
                    f"{'partial_fit' if incremental else 'warm_start=True'} needs the same "
                    f"network as the previous fit, but {', '.join(changed)} changed "
                    f"({', '.join(f'{k}: {old[k]!r} -> {config[k]!r}' for k in changed)}); "
                    "fit again with warm_start=False")
            if config["dropout"] != old["dropout"]:
                self._config_ = config
                self._build_core()
            if not incremental:  # a warm-started fit gets a fresh optimizer, as MLP
                self._reset_optimizer()
                self.n_iter_ = 0
            if (self.early_stopping and self.validation_scores_ is None) or (
                    not self.early_stopping and self.best_loss_ is None):
                self._init_tracking()  # early_stopping was switched since the last fit
        self._train(seqs, Y, sw, incremental)
        return self

    def _split_tail(self, seqs: Sequences, Y: np.ndarray, sw: Optional[np.ndarray]) -> tuple:
        """Training head and validation tail (the last ``validation_fraction`` of the samples,
        in their given order: for time-ordered data the validation set lies in the future)."""
        n = seqs.n_samples
        n_val = int(np.ceil(self.validation_fraction * n))
        if n_val < 2 or n - n_val < 1:
            raise ValueError(
                f"The validation set is too small: validation_fraction={self.validation_fraction}"
                f" of {n} samples gives {n_val} validation and {n - n_val} training samples; "
                "early stopping needs at least 2 validation samples and 1 training sample. "
                "Increase 'validation_fraction' or the size of your dataset.")
        if sw is not None and not sw[n - n_val:].sum() > 0:
            # the validation score would be undefined (0/0) after every epoch
            raise ValueError(
                f"sample_weight is zero for every sample of the validation set (the last "
                f"{n_val} of {n} samples, validation_fraction={self.validation_fraction}); "
                "early stopping needs validation samples with positive weight")
        parts = []
        for sl in (slice(0, n - n_val), slice(n - n_val, n)):
            s = seqs.subset(sl)
            Ys = Y[sl]
            if Ys.ndim >= 2 and self.return_sequences:
                Ys = np.ascontiguousarray(Ys[:, : s.X.shape[1]])
            parts.append((s, np.ascontiguousarray(Ys), None if sw is None else sw[sl].copy()))
        return parts

    def _train(self, seqs: Sequences, Y: np.ndarray, sw: Optional[np.ndarray],
               incremental: bool) -> None:
        if self.early_stopping:
            (tr, Ytr, swtr), (val, Yval, swval) = self._split_tail(seqs, Y, sw)
        else:
            tr, Ytr, swtr = seqs, Y, sw
            val = Yval = swval = None
        n_train = tr.n_samples
        if swtr is not None and not swtr.sum() > 0:
            raise ValueError("sample_weight is zero for every training sample"
                             + (" (before the validation tail)" if self.early_stopping else ""))
        batch_size = min(200, n_train) if self.batch_size == "auto" else min(
            int(self.batch_size), n_train)
        max_grad_norm = 0.0 if self.max_grad_norm is None else float(self.max_grad_norm)
        self.params_ = _for_core(self.params_)
        self._m, self._v = _for_core(self._m), _for_core(self._v)
        Xtr, Ytr, swtr = _for_core(tr.X), _for_core(Ytr), _for_core(swtr)
        lengths = _for_core(tr.core_lengths)
        n_epochs = 1 if incremental else int(self.max_iter)
        stopped = False
        fit_start = time.perf_counter()
        if getattr(self, "_history", None) is None:  # e.g. unpickled or loaded
            self._history = deque(maxlen=2)
        with self._core() as core:
            for epoch in range(n_epochs):
                # the state at the start of this epoch (see _diverged)
                self._history.append(self._checkpoint())
                try:
                    seed = int(self._random_state.randint(0, np.iinfo(np.int32).max))
                    lr_used = self._lr
                    t0 = time.perf_counter()
                    loss, step = core.train_epoch(
                        self.params_, self._m, self._v, int(self._step), Xtr, lengths, Ytr,
                        swtr, _core.OptimConfig(
                            batch_size=batch_size, shuffle=bool(self.shuffle), seed=seed,
                            solver=self.solver, lr=float(lr_used), alpha=float(self.alpha),
                            momentum=float(self.momentum), nesterov=bool(self.nesterovs_momentum),
                            beta1=float(self.beta_1), beta2=float(self.beta_2),
                            eps=float(self.epsilon), max_grad_norm=max_grad_norm),
                        callback=self._progress_bar if int(self.verbose) >= 2 else None)
                    loss = float(loss)
                    if not np.isfinite(loss):
                        self._diverged(f"the loss is {loss} in epoch {self.n_iter_ + 1}", tr)
                    if not _all_finite(self.params_):
                        self._diverged("the weights became non-finite in epoch "
                                       f"{self.n_iter_ + 1}", tr)
                    self._step = step
                    self.n_iter_ += 1
                    self.t_ += n_train
                    self.loss_ = loss
                    self.loss_curve_.append(loss)
                    try:
                        stopped = self._end_of_epoch(loss, val, Yval, swval, lr_used, t0,
                                                     fit_start)
                    except _NonFiniteOutput:
                        self.n_iter_ -= 1
                        self.t_ -= n_train
                        self.loss_curve_.pop()
                        self._diverged("the validation predictions are not finite after "
                                       f"epoch {self.n_iter_ + 1}", tr)
                except KeyboardInterrupt:
                    self._interrupted()
                    raise
                if stopped or incremental:
                    break
                if epoch + 1 == n_epochs:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                        "and the optimization hasn't converged yet.", ConvergenceWarning)

        if self.early_stopping and self._best_params is not None:
            self.params_[:] = self._best_params  # restore the best weights
        # The last steps may have made weights that are finite but overflow: check the
        # predictions on the training data (partial_fit: on its first PREDICT_CHUNK sequences,
        # one core call, to keep the cost of an epoch).
        sample = tr if not incremental else tr.subset(slice(0, PREDICT_CHUNK))
        if not self._predicts_finite(sample):
            self._diverged("the predictions on the training data are not finite after "
                           f"epoch {self.n_iter_}", tr)

    def _predicts_finite(self, seqs: Sequences) -> bool:
        return _all_finite(self.params_) and _all_finite(self._raw_predict(seqs, check=False))

    def _checkpoint(self) -> dict:
        """Everything an epoch changes, to roll it back (see _diverged)."""
        return dict(n_iter=self.n_iter_, params=self.params_.copy(), m=self._m.copy(),
                    v=self._v.copy(), step=self._step, t=self.t_, n_loss=len(self.loss_curve_),
                    n_val=None if self.validation_scores_ is None else len(
                        self.validation_scores_),
                    best_loss=self.best_loss_, best_val=self.best_validation_score_,
                    no_improvement=self._no_improvement_count, lr=self._lr)

    def _restore(self, ckpt: dict) -> None:
        """Back to a checkpoint (the keys present: the weights and optimizer state, and the
        bookkeeping of the epochs run up to it)."""
        self.params_[:] = ckpt["params"]
        for key, attr in (("m", "_m"), ("v", "_v")):
            if key in ckpt:
                getattr(self, attr)[:] = ckpt[key]
        if "n_iter" not in ckpt:
            return
        self.n_iter_, self._step, self.t_ = ckpt["n_iter"], ckpt["step"], ckpt["t"]
        del self.loss_curve_[ckpt["n_loss"]:]
        if ckpt["n_val"] is not None and self.validation_scores_ is not None:
            del self.validation_scores_[ckpt["n_val"]:]
        self.best_loss_, self.best_validation_score_ = ckpt["best_loss"], ckpt["best_val"]
        self._no_improvement_count, self._lr = ckpt["no_improvement"], ckpt["lr"]
        if self.loss_curve_:
            self.loss_ = self.loss_curve_[-1]

    def _diverged(self, what: str, train: Sequences) -> None:
        """Training went non-finite. Roll back to the most recent usable weights (finite, with
        finite predictions on the training data), with the bookkeeping of the epochs up to
        them: the best ones of early stopping, else the state at the start of this epoch, of
        the one before, or the initial weights; then raise."""
        candidates = []
        if self.early_stopping and self._best_params is not None:
            candidates.append(("with the best validation score so far",
                               dict(params=self._best_params)))
        for ckpt in reversed(list(self._history)):
            n = ckpt["n_iter"]
            candidates.append((f"after epoch {n}" if n else "before the first epoch", ckpt))
        initial = getattr(self, "_initial_params", None)
        if initial is not None:
            zeros = np.zeros_like(self.params_)
            candidates.append(("of the initialization", dict(params=initial, m=zeros, v=zeros)))
        # states at the start of the epochs, the initialization: the weights "before the first
        # epoch" of a warm-started or partial fit are those the previous fit ended with
        kept = None
        for name, state in candidates:
            self._restore(state)
            if self._predicts_finite(train):
                kept = name
                break
        self._history.clear()
        if kept is None:
            if initial is not None:
                self._restore(candidates[-1][1])
            kept_msg = ("No weights seen in this fit predict finite values on the training data "
                        "(it has extreme values)")
        else:
            kept_msg = f"The estimator keeps the weights {kept} and can predict"
        raise ValueError(
            f"Training diverged: {what}. {kept_msg}. Scale X and y "
            "(e.g. SequenceScaler, TransformedTargetRegressor), lower learning_rate_init, or "
            "set max_grad_norm.")

    def _interrupted(self) -> None:
        """Ctrl-C: the core stopped at a minibatch boundary, so params_ hold every completed
        optimizer step. Keep them (unless non-finite: then the epoch's start), or with early
        stopping the best weights so far; the estimator stays fitted."""
        if self._history and not (_all_finite(self.params_) and _all_finite(self._m)
                                  and _all_finite(self._v)):
            self._restore(self._history[-1])
        if self.early_stopping and self._best_params is not None:
            self.params_[:] = self._best_params

    def _end_of_epoch(self, loss: float, val: Optional[Sequences], Yval: Any, swval: Any,
                      lr_used: float, t0: float, fit_start: float) -> bool:
        """Convergence bookkeeping, as MLP (validation score or training loss), the learning
        rate schedule and the verbose line; True when training should stop."""
        score = None
        if self.early_stopping:
            score = self._internal_score(val, Yval, swval)
            self.validation_scores_.append(score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self.params_.copy()
        else:
            if loss > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if loss < self.best_loss_:
                self.best_loss_ = loss

        if self.learning_rate == "invscaling":
            self._lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t

        if self.verbose:
            self._print_epoch(loss, score, lr_used, time.perf_counter() - t0,
                              time.perf_counter() - fit_start)

        stopped = False
        if self._no_improvement_count > self.n_iter_no_change:
            what = ("Validation score" if self.early_stopping else "Training loss")
            msg = (f"{what} did not improve more than tol={self.tol:g} for "
                   f"{self.n_iter_no_change} consecutive epochs.")
            if self.learning_rate in ("adaptive", "plateau"):
                if self._lr <= _MIN_LR:
                    if self.verbose:
                        print(msg + " Learning rate too small. Stopping.")
                    stopped = True
                else:
                    self._lr /= 5.0 if self.learning_rate == "adaptive" else 2.0
                    self._no_improvement_count = 0
                    if self.verbose:
                        print(msg + f" Setting learning rate to {self._lr:g}")
            else:
                if self.verbose:
                    print(msg + " Stopping.")
                stopped = True
        return stopped

    def _progress_bar(self, done: int, total: int) -> None:
        """verbose >= 2: a progress bar within an epoch, redrawn by the core between minibatches
        (at most every 100 ms, so short epochs never show one)."""
        width = 30
        filled = int(width * done / max(total, 1))
        if done < total:
            bar = "#" * filled + "." * (width - filled)
            sys.stdout.write(f"\rEpoch {self.n_iter_ + 1}: [{bar}] {done}/{total} samples")
        else:
            sys.stdout.write("\r" + " " * (width + 40) + "\r")  # the epoch line follows
        sys.stdout.flush()

    def _print_epoch(self, loss: float, score: Optional[float], lr: float, seconds: float,
                     total: float) -> None:
        line = f"Epoch {self.n_iter_}: loss = {loss:.8f}"
        if score is not None:
            line += f", validation score = {score:.6f}"
        line += f", time = {seconds:.3f} s"
        if int(self.verbose) >= 2:
            best = (f"best validation score = {self.best_validation_score_:.6f}"
                    if self.early_stopping else f"best loss = {self.best_loss_:.8f}")
            line += (f", lr = {lr:.3g}, optimizer steps = {self._step}, samples seen = "
                     f"{self.t_}, {best}, epochs without improvement = "
                     f"{self._no_improvement_count}/{self.n_iter_no_change}, "
                     f"total time = {total:.2f} s")
        print(line, flush=True)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "_BaseRecurrentEstimator":
        """Train the network on sequences ``X`` and targets ``y`` (up to ``max_iter`` epochs).

        Parameters
        ----------
        X : array (n_samples, n_timesteps, n_features), array (n_samples, n_timesteps)
            (univariate sequences), or list of (n_timesteps_i, n_features) arrays.
        y : targets, see the class docstring.
        sample_weight : array (n_samples,), optional, one non-negative weight per sequence.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For bad input, or when training diverges (the estimator then keeps the latest
            weights that predict finite values; see the module docstring).
        MemoryError
            When the fit would need more memory than is available (checked before allocating).
        KeyboardInterrupt
            Re-raised after Ctrl-C, with the estimator fitted on the completed steps.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def stream(self, batch: int = 1) -> Any:
        """A runner of the fitted network one timestep at a time, for online prediction::

            s = est.stream()
            for o_t in observations:          # o_t: (n_features,), or (batch, n_features)
                y_t = s.step(o_t)             # as predict() on the sequence seen so far

        The state lives in C++ and ``step(x, out=...)`` writes into a preallocated ``out``, so a
        loop allocates nothing. ``reset()`` starts a new sequence; ``state`` gets or sets the
        hidden (and cell) state. The stream copies the current parameters. The regressor's
        stream returns the outputs (n_outputs,) (or (batch, n_outputs)); the classifier's, the
        class probabilities. Not available for bidirectional networks."""
        check_is_fitted(self)
        if self._config_["bidirectional"]:
            raise ValueError("a bidirectional network needs the whole sequence; it cannot stream")
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        cfg = self._config_
        check_memory([("stream state and workspace", int(batch) * cfg["num_layers"] * 8
                       * cfg["hidden_size"] * self.params_.dtype.itemsize)],
                     f"{type(self).__name__}.stream(batch={batch})")
        return self._core_model.stream(self.params_, int(batch))

    def save(self, path: Any) -> None:
        """Write the fitted estimator to ``path``: a portable ``.npz`` archive (parameters,
        hyperparameters, fitted attributes, optimizer state; no pickle), written atomically (a
        temporary file in the same folder renamed over ``path``). Read it back with
        :meth:`load` or :func:`lstm_native.load`."""
        from ._persist import save_estimator

        save_estimator(self, path)

    @classmethod
    def load(cls, path: Any) -> "_BaseRecurrentEstimator":
        """An estimator saved with :meth:`save`; ValueError naming the file if it is truncated,
        corrupted, not an lstm_native model, holds another estimator class or was written by
        a newer format version."""
        from ._persist import load_estimator

        return load_estimator(path, expected=cls)

    def _head_width(self, Y: np.ndarray) -> int:
        """The head's width for prepared targets ``Y``: classes or outputs."""
        if self._loss == "softmax":
            return len(self.classes_)
        return Y.shape[-1]


class LSTMRegressor(RegressorMixin, _BaseRecurrentEstimator):
    """Recurrent-network regressor (LSTM, GRU or Elman RNN) with scikit-learn's API.

    Parameters
    ----------
    cell : {"lstm", "gru", "rnn"}, default="lstm"
        The recurrent cell ("rnn" is the tanh Elman RNN; "rnn_relu" uses relu).
    hidden_size : int, default=32
        Hidden units per layer and direction.
    num_layers : int, default=1
        Stacked recurrent layers.
    dropout : float in [0, 1), default=0.0
        Dropout on the outputs of every recurrent layer but the last (as PyTorch; no effect
        with one layer), during training only.
    bidirectional : bool, default=False
        Also run every layer backwards in time; the head then reads the forward direction's
        last state concatenated with the backward direction's final state.
    return_sequences : bool, default=False
        Predict at every step (sequence-to-sequence, y per step) instead of once per sequence.
    solver : {"adam", "adamw", "sgd", "rmsprop"}, default="adam"
        "adamw" is Adam with decoupled weight decay ``lr * alpha`` on the weight matrices.
    alpha : float, default=1e-4
        L2 penalty on the weight matrices (decoupled weight decay for "adamw").
    batch_size : int or "auto", default="auto"
        Sequences per minibatch; "auto" is ``min(200, n_samples)``. Larger values are clipped
        to the number of training samples.
    learning_rate : {"constant", "invscaling", "adaptive", "plateau"}, default="constant"
        Learning-rate schedule, applied per epoch for every solver (see the module docstring).
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
        Exponent of "invscaling".
    max_iter : int, default=200
        Maximum number of epochs (one epoch per ``partial_fit`` call).
    shuffle : bool, default=True
        Shuffle the training sequences every epoch (seeded by ``random_state``).
    random_state : int, RandomState or None
        Seeds the initial weights, shuffling and dropout. With an int, fitting the same data
        gives bit-identical predictions.
    tol, n_iter_no_change : convergence test, as MLPRegressor (see the module docstring).
    verbose : bool or int, default=False
        1: one line per epoch (loss, validation score, time); 2: also learning rate, optimizer
        steps, samples seen, best value so far, epochs without improvement, total time.
    warm_start : bool, default=False
        Continue from the current weights on ``fit`` (with a fresh optimizer, as MLP).
    momentum, nesterovs_momentum : for solver="sgd" (sklearn's SGD with momentum).
    early_stopping : bool, default=False
        Hold out the *last* ``validation_fraction`` of the samples (in the given order, so
        time-ordered windows validate on the future), stop when the validation score (R^2
        here, accuracy for the classifier) stops improving, and restore the best weights.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : Adam / AdamW, as PyTorch and Kingma & Ba's Algorithm 1
        (epsilon added to the bias-corrected sqrt(v)). "rmsprop" uses epsilon and a fixed decay of
        0.99 for its running mean of squared gradients (PyTorch's default), not beta_2.
    max_grad_norm : float or None, default=5.0
        Clip each minibatch gradient to this global L2 norm; None disables clipping.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the network (parameters, computation and predictions).
    n_jobs : int or None, default=None
        Threads for training and prediction. None (or -1): automatic; a batch large enough is
        split into independent parts run on separate threads, small ones run on one. k > 0:
        at most k threads. Results are bit-identical for any value.

    Attributes
    ----------
    loss_ : float, the last epoch's mean training loss.
    loss_curve_ : list, the mean training loss of every epoch.
    validation_scores_ : list or None, the validation score of every epoch (early stopping).
    best_validation_score_ : float or None.
    best_loss_ : float or None, the best training loss (None with early stopping, as MLP).
    n_iter_ : int, epochs run by the last ``fit`` (cumulative over ``partial_fit`` calls).
    t_ : int, training samples seen (sum over epochs).
    n_features_in_ : int, features per step; for 2-D X the number of timesteps (sklearn's rule).
    feature_names_in_ : array, for 2-D DataFrame input.
    n_outputs_ : int, outputs per sequence (or per step).
    params_ : ndarray (num_params,), every parameter in the core's layout
        (see :meth:`named_parameters`).
    """

    _loss = "mse"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _prepare_targets(self, y, seqs, first_pass, incremental, classes):
        dtype = self._model_dtype() if first_pass else self.params_.dtype
        N = seqs.n_samples
        if self.return_sequences:
            Y, y_ndim = pad_sequence_targets(y, seqs, dtype)
        else:
            arr = check_finite_array(y, "y", dtype=dtype, ndim=(1, 2))
            check_n_samples(arr.shape[0], N)
            y_ndim = arr.ndim
            Y = np.ascontiguousarray(arr.reshape(N, -1))
        if Y.shape[-1] < 1:
            raise ValueError(f"y has no outputs (shape {np.shape(y)})")
        if first_pass:
            self._y_ndim_ = y_ndim
            self.n_outputs_ = Y.shape[-1]
        elif Y.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[-1]} outputs, but {type(self).__name__} was "
                             f"fitted with {self.n_outputs_}")
        if not Y.flags.writeable:
            Y = Y.copy()
        return Y

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "LSTMRegressor":
        """One epoch over (X, y), continuing from the current weights and optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _format(self, out: np.ndarray, seqs: Sequences) -> Any:
        out = out.astype(np.float64)  # sklearn's convention for predictions
        if self._config_["return_sequences"]:
            if self._y_ndim_ == 1:
                out = out[..., 0]
            if seqs.kind == "list":
                return [out[i, : seqs.lengths[i]].copy() for i in range(seqs.n_samples)]
            return out
        return out[:, 0] if self._y_ndim_ == 1 else out

    def predict(self, X: Any) -> Any:
        """Predictions: (n_samples,) or (n_samples, n_outputs) as ``y`` in fit; with
        return_sequences (n_samples, n_timesteps[, n_outputs]), or a list of (T_i[, n_outputs])
        arrays for a list of variable-length sequences."""
        seqs = self._check_X_predict(X)
        return self._format(self._raw_predict(seqs), seqs)

    def _internal_score(self, seqs, Y, sw):
        out = self._raw_predict(seqs)
        if out.ndim == 3:
            mask = _valid_steps(seqs.lengths, out.shape[1])
            w = None if sw is None else np.broadcast_to(sw[:, None], mask.shape)[mask]
            return float(r2_score(Y[mask], out[mask], sample_weight=w))
        return float(r2_score(Y, out, sample_weight=sw))

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R^2 of the predictions (averaged uniformly over outputs); with return_sequences over
        every real step of every sequence (each step weighted by its sequence's weight)."""
        if not self.return_sequences:
            return super().score(X, y, sample_weight=sample_weight)
        seqs = self._check_X_predict(X)
        Y, _ = pad_sequence_targets(y, seqs, np.float64)
        sw = check_sample_weight(sample_weight, seqs.n_samples, np.float64)
        return self._internal_score(seqs, Y, sw)


class LSTMClassifier(ClassifierMixin, _BaseRecurrentEstimator):
    """Recurrent-network classifier (LSTM, GRU or Elman RNN) with scikit-learn's API.

    Softmax output over ``classes_`` (also for two classes) and cross-entropy loss. One label
    per sequence, or with ``return_sequences=True`` one label per step
    (``(n_samples, n_timesteps)`` or a list of ``(T_i,)`` arrays).

    The parameters and attributes are those of :class:`LSTMRegressor`; in addition ``classes_``
    holds the class labels, and the early-stopping validation score is the accuracy.
    """

    _loss = "softmax"

    def _prepare_targets(self, y, seqs, first_pass, incremental, classes):
        dtype = self._model_dtype() if first_pass else self.params_.dtype
        N, T = seqs.X.shape[:2]
        if self.return_sequences:
            if isinstance(y, (list, tuple)) and seqs.kind == "list":
                check_n_samples(len(y), N)
                parts = []
                for i, yi in enumerate(y):
                    yi = column_or_1d(np.asarray(yi))
                    if yi.shape[0] != seqs.lengths[i]:
                        raise ValueError(f"y[{i}] has {yi.shape[0]} labels but X[{i}] has "
                                         f"{seqs.lengths[i]} steps")
                    parts.append(yi)
                flat = np.concatenate(parts)
            else:
                labels = np.asarray(y)
                if labels.ndim != 2 or labels.shape[0] != N or labels.shape[1] != T:
                    raise ValueError(f"With return_sequences=True, y must hold one label per "
                                     f"step: shape ({N}, {T}), got {labels.shape}")
                parts = list(labels)
                flat = labels.ravel()
        else:
            flat = column_or_1d(y, warn=True)
            check_n_samples(flat.shape[0], N)
            parts = None
        if flat.dtype.kind in "fc":
            assert_all_finite(flat, input_name="y")
        check_classification_targets(flat)

        if incremental:
            _check_partial_fit_first_call(self, classes)
        if first_pass and not incremental:
            self.classes_ = unique_labels(flat)
        else:
            present = unique_labels(flat)
            if self.warm_start and not incremental:
                if set(present) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{present}")
            elif len(np.setdiff1d(present, self.classes_)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {present}.")
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the "
                             f"data, but the data contains only one class: {self.classes_[0]!r}")
        self.n_outputs_ = 1

        def to_index(labels):
            return np.searchsorted(self.classes_, labels).astype(dtype)

        if parts is None:
            return np.ascontiguousarray(to_index(flat))
        Y = np.zeros((N, T), dtype=dtype)
        for i, p in enumerate(parts):
            Y[i, : len(p)] = to_index(p)
        return Y

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None,
                    classes: Any = None) -> "LSTMClassifier":
        """One epoch over (X, y); ``classes`` (every label that may occur) is required on the
        first call, as for sklearn's incremental classifiers."""
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _per_sequence(self, arr: np.ndarray, seqs: Sequences) -> Any:
        if self._config_["return_sequences"] and seqs.kind == "list":
            return [arr[i, : seqs.lengths[i]].copy() for i in range(seqs.n_samples)]
        return arr

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities (n_samples, n_classes), in the order of ``classes_``; with
        return_sequences (n_samples, n_timesteps, n_classes) or a list of (T_i, n_classes)."""
        seqs = self._check_X_predict(X)
        return self._per_sequence(_softmax(self._raw_predict(seqs)), seqs)

    def stream(self, batch: int = 1) -> "_ProbabilityStream":
        return _ProbabilityStream(super().stream(batch))

    stream.__doc__ = _BaseRecurrentEstimator.stream.__doc__

    def predict_log_proba(self, X: Any) -> Any:
        """Logarithm of :meth:`predict_proba`."""
        seqs = self._check_X_predict(X)
        z = np.asarray(self._raw_predict(seqs), dtype=np.float64)
        z = z - z.max(axis=-1, keepdims=True)
        z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
        return self._per_sequence(z, seqs)

    def predict(self, X: Any) -> Any:
        """Class labels (n_samples,); with return_sequences (n_samples, n_timesteps) or a list
        of (T_i,) arrays."""
        seqs = self._check_X_predict(X)
        idx = np.argmax(self._raw_predict(seqs), axis=-1)
        return self._per_sequence(self.classes_[idx], seqs)

    def _internal_score(self, seqs, Y, sw):
        pred = np.argmax(self._raw_predict(seqs), axis=-1)
        if pred.ndim == 2:
            mask = _valid_steps(seqs.lengths, pred.shape[1])
            w = None if sw is None else np.broadcast_to(sw[:, None], mask.shape)[mask]
            return float(accuracy_score(Y[mask].astype(np.int64), pred[mask], sample_weight=w))
        return float(accuracy_score(Y.astype(np.int64), pred, sample_weight=sw))

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy; with return_sequences over every real step of every sequence."""
        if not self.return_sequences:
            return super().score(X, y, sample_weight=sample_weight)
        seqs = self._check_X_predict(X)
        pred = self.predict(X)
        if seqs.kind == "list":
            y_true = np.concatenate([column_or_1d(np.asarray(v)) for v in y])
            y_pred = np.concatenate(pred)
            w = None
            if sample_weight is not None:
                sw = check_sample_weight(sample_weight, seqs.n_samples, np.float64)
                w = np.repeat(sw, seqs.lengths)
        else:
            y_true = np.asarray(y).ravel()
            y_pred = np.asarray(pred).ravel()
            w = None
            if sample_weight is not None:
                sw = check_sample_weight(sample_weight, seqs.n_samples, np.float64)
                w = np.repeat(sw, seqs.X.shape[1])
        if y_true.shape != y_pred.shape:
            raise ValueError(f"y has {y_true.size} labels but X has {y_pred.size} steps")
        return float(accuracy_score(y_true, y_pred, sample_weight=w))


__all__ = ["LSTMClassifier", "LSTMRegressor", "initial_parameters"]


class _ProbabilityStream:
    """A classifier's stream: the core stream's logits turned into class probabilities."""

    def __init__(self, core_stream: Any) -> None:
        self._stream = core_stream

    def step(self, x: Any, out: Optional[np.ndarray] = None) -> np.ndarray:
        if out is not None:  # checked before the step, so that a bad `out` changes no state
            shape = (self._stream.output_size,) if np.ndim(x) == 1 else (
                self._stream.batch, self._stream.output_size)
            if not (isinstance(out, np.ndarray) and out.dtype.kind == "f"
                    and out.shape == shape and out.flags.writeable):
                raise ValueError(
                    f"out must be a writeable float array of shape {shape} (class "
                    f"probabilities), got "
                    f"{type(out).__name__ if not isinstance(out, np.ndarray) else out.dtype}"
                    f"{'' if not isinstance(out, np.ndarray) else ' ' + str(out.shape)}")
        p = _softmax(self._stream.step(x))
        if out is None:
            return p
        out[...] = p
        return out

    def reset(self) -> None:
        self._stream.reset()

    @property
    def state(self) -> Any:
        return self._stream.state

    @state.setter
    def state(self, value: Any) -> None:
        self._stream.state = value
