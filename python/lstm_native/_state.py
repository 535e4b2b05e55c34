"""The state of training and of a fitted estimator, each defined once.

:class:`TrainState` is everything an optimizer run carries from one epoch to the next: the flat
parameter vector, the optimizer's moments, the step count, the learning rate, the random
generator that seeds shuffling and dropout, and the convergence bookkeeping (loss curve,
validation scores, best values, epochs without improvement). Rollback checkpoints, pickling,
``save``/``load`` and ``partial_fit``'s continuation all go through it: nothing lists these
fields anywhere else.

:class:`FittedModel` is what ``fit`` produces: a network configuration, a ``TrainState`` and
what the estimator learned about its data (feature counts and names, input kind, outputs,
classes). An estimator holds exactly one and replaces it as a whole, never in parts: a reader
(``predict``, ``save``, another thread) that takes ``est._fitted`` once sees a consistent
model, and a ``fit`` that fails restores the previous one by reference.

What a file holds of a ``TrainState`` is defined here too, as data: the arrays ``ARRAYS``,
the other fields ``SCALARS`` (``scalars()``), and for each of those the type and range a file
may give it (``STATE_SCHEMA``, which :mod:`lstm_native._persist` turns into its checks).

Neither imports scikit-learn or the compiled core.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

import numpy as np

COUNT_MAX = 2**53  # counters (the core's step is an int64, incremented); exact in JSON


class FieldSchema(NamedTuple):
    """What a non-array ``TrainState`` field may hold, in its ``scalars()`` form: ``kind`` is
    "int" (not a bool), "float", "floats" (a list of them) or "floats by name" (an object whose
    values are such lists); numbers lie in [``low``, ``high``] (floats are finite, or equal to
    ``infinity`` when that is set); ``nullable``: None is allowed too."""

    kind: str
    low: float = -math.inf
    high: float = math.inf
    nullable: bool = False
    infinity: float | None = None


# Every non-array field that a file holds, in the order of TrainState.SCALARS (see the module
# docstring; a field of TrainState is in ARRAYS, here, or one of rng and best_params).
STATE_SCHEMA = {
    "lr": FieldSchema("float", low=0.0),  # "invscaling" can take it down to 0.0 (underflow)
    "step": FieldSchema("int", 0, COUNT_MAX),
    "t": FieldSchema("int", 0, COUNT_MAX),
    "n_iter": FieldSchema("int", 0, COUNT_MAX),
    "loss_curve": FieldSchema("floats"),
    "validation_scores": FieldSchema("floats", nullable=True),
    "best_loss": FieldSchema("float", nullable=True, infinity=math.inf),
    "best_validation_score": FieldSchema("float", nullable=True, infinity=-math.inf),
    "no_improvement_count": FieldSchema("int", 0, COUNT_MAX),
    "eval_scores": FieldSchema("floats by name"),
}


def _copied(value: Any) -> Any:
    """An independent copy of one TrainState field, made directly for the kinds the fields
    hold (the engine copies the state every epoch for its published snapshot; copy.deepcopy
    took ~0.8 ms a copy, most of a small network's epoch): arrays,
    lists of floats, a dict of such lists, the generator (a new one in the same state);
    numbers and None are immutable. Anything else: deepcopy."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return {k: list(v) for k, v in value.items()}
    if isinstance(value, np.random.RandomState):
        out = np.random.RandomState(np.random.MT19937(0))
        out.set_state(value.get_state(legacy=False))
        return out
    if value is None or isinstance(value, (bool, int, float, np.number)):
        return value
    return copy.deepcopy(value)


@dataclass
class TrainState:
    """One optimizer run's state (see the module docstring). Arrays are (P,) in the core's
    parameter layout (``named_parameters()``); ``m`` is Adam's first moment or SGD's velocity,
    ``v`` the second moment (Adam, AdamW, RMSprop)."""

    params: np.ndarray
    m: np.ndarray
    v: np.ndarray
    lr: float
    rng: np.random.RandomState
    step: int = 0  # optimizer steps (Adam's bias correction)
    t: int = 0  # training samples seen (scikit-learn's t_)
    n_iter: int = 0  # epochs (n_iter_; a warm-started fit restarts it)
    loss_curve: list = field(default_factory=list)  # mean training loss of every epoch
    validation_scores: list | None = None  # every epoch's score when validating
    best_loss: float | None = math.inf  # None when validating (as MLP)
    best_validation_score: float | None = None  # -inf at the start when validating
    no_improvement_count: int = 0
    best_params: np.ndarray | None = None  # the weights of the best validation score
    eval_scores: dict = field(default_factory=dict)  # eval set name -> per-epoch scores

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def fresh(
        cls, params: np.ndarray, lr: float, rng: np.random.RandomState, validating: bool
    ) -> TrainState:
        """A state at the start of training from ``params``: zero moments, no history."""
        params = np.ascontiguousarray(params)
        st = cls(
            params=params, m=np.zeros_like(params), v=np.zeros_like(params), lr=float(lr), rng=rng
        )
        st.reset_tracking(validating)
        return st

    def reset_tracking(self, validating: bool) -> None:
        """Convergence bookkeeping for monitoring a validation score (``validating``) or the
        training loss, as scikit-learn's MLP sets it up."""
        self.no_improvement_count = 0
        self.best_params = None
        if validating:
            self.validation_scores = []
            self.best_validation_score = -math.inf
            self.best_loss = None
        else:
            self.validation_scores = None
            self.best_validation_score = None
            self.best_loss = math.inf

    def reset_optimizer(self, lr: float) -> None:
        """A fresh optimizer (what a warm-started fit gets, as MLP): zero moments, step 0."""
        self.m = np.zeros_like(self.params)
        self.v = np.zeros_like(self.params)
        self.step = 0
        self.lr = float(lr)
        self.no_improvement_count = 0

    # -- bookkeeping ----------------------------------------------------------------------
    @property
    def validating(self) -> bool:
        return self.validation_scores is not None

    @property
    def loss(self) -> float | None:
        return self.loss_curve[-1] if self.loss_curve else None

    def record_epoch(self, loss: float, n_samples: int, score: float | None, tol: float) -> None:
        """After an epoch: the loss curve, the samples seen and MLP's convergence test. The
        monitored value is the validation score when validating (higher is better; the best
        weights are kept), else the training loss; an epoch that does not improve it by more
        than ``tol`` counts towards ``no_improvement_count``."""
        self.n_iter += 1
        self.t += int(n_samples)
        self.loss_curve.append(float(loss))
        if self.validating:
            assert score is not None
            self.validation_scores.append(float(score))
            if score < self.best_validation_score + tol:
                self.no_improvement_count += 1
            else:
                self.no_improvement_count = 0
            if score > self.best_validation_score:
                self.best_validation_score = float(score)
                self.best_params = self.params.copy()
        else:
            if loss > self.best_loss - tol:
                self.no_improvement_count += 1
            else:
                self.no_improvement_count = 0
            if loss < self.best_loss:
                self.best_loss = float(loss)

    # -- copies ---------------------------------------------------------------------------
    def copy(self) -> TrainState:
        """An independent copy: arrays, lists and the generator are copied."""
        return TrainState(**{f.name: _copied(getattr(self, f.name)) for f in fields(self)})

    def assign(self, other: TrainState) -> None:
        """Become a copy of ``other`` (every field replaced by a copy of other's)."""
        for f in fields(self):
            setattr(self, f.name, _copied(getattr(other, f.name)))

    # -- what a file holds ------------------------------------------------------------------
    # The arrays and the other fields a file holds; of the rest, rng is saved as its generator's
    # state and best_params not at all (a file holds the weights the estimator predicts with,
    # after a fit with validation the best ones: from_parts takes them as best_params).
    ARRAYS = ("params", "m", "v")
    SCALARS = tuple(STATE_SCHEMA)

    def scalars(self) -> dict:
        """The non-array fields as plain Python values (JSON-able; floats may be inf)."""
        out = {}
        for name in self.SCALARS:
            value = getattr(self, name)
            if isinstance(value, list):
                value = [float(x) for x in value]
            elif isinstance(value, dict):
                value = {str(k): [float(x) for x in v] for k, v in value.items()}
            elif isinstance(value, (bool, np.bool_)):
                value = bool(value)
            elif isinstance(value, (int, np.integer)):
                value = int(value)
            elif value is not None:
                value = float(value)
            out[name] = value
        return out

    @classmethod
    def from_parts(cls, arrays: dict, scalars: dict, rng: np.random.RandomState) -> TrainState:
        """The inverse of (``{name: getattr(st, name) for name in ARRAYS}``, ``scalars()``),
        for values that have been validated (see _persist). The arrays are taken as they are
        when C-contiguous and writeable (a file's arrays are not copied once more)."""
        kw = {name: np.require(arrays[name], requirements=("C", "W")) for name in cls.ARRAYS}
        kw.update({name: copy.deepcopy(scalars[name]) for name in cls.SCALARS})
        # With validation, a fit ends on the weights of its best score (EarlyStopping's and
        # ReduceLROnPlateau's restore_best), so the saved params are the best ones: a warm
        # start after loading restores them as it would in the saved estimator. (A file saved
        # in the middle of training, by ModelCheckpoint, takes that epoch's weights as best.)
        best = kw["params"].copy() if kw["best_validation_score"] is not None else None
        return cls(rng=rng, best_params=best, **kw)


@dataclass(frozen=True)
class InputSpec:
    """What fitting learns about X's form, and what later calls are held to: scikit-learn's
    ``n_features_in_`` and ``feature_names_in_`` (for 2-D input), how X was given (``input_kind``
    "2d", "3d" or "list") and the features per step (the network's input size)."""

    n_features_in: int
    input_kind: str
    step_features: int
    feature_names_in: np.ndarray | None = None


@dataclass
class FittedModel:
    """Everything ``fit`` produced (see the module docstring). ``config`` describes the network
    (the core's ModelConfig fields plus "dtype"); ``classes`` is None for a regressor."""

    config: dict
    state: TrainState
    input: InputSpec
    n_outputs: int
    y_ndim: int  # 1 or 2: the ndim of one sequence's (or step's) target
    classes: np.ndarray | None = None

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.config["dtype"])

    def with_state(self, state: TrainState) -> FittedModel:
        """The same model with another training state (not copied)."""
        return replace(self, state=state)

    def snapshot(self) -> FittedModel:
        """An independent copy, for publishing while training goes on."""
        return replace(self, config=dict(self.config), state=self.state.copy())


# ---------------------------------------------------------------------------------------------
# the estimators' fitted attributes
# ---------------------------------------------------------------------------------------------
_FITTED_ATTRS = {  # the read-only fitted attributes: views of the one FittedModel
    "loss_": lambda f: f.state.loss,
    "loss_curve_": lambda f: f.state.loss_curve,
    "validation_scores_": lambda f: f.state.validation_scores,
    "best_validation_score_": lambda f: f.state.best_validation_score,
    "best_loss_": lambda f: f.state.best_loss,
    "n_iter_": lambda f: f.state.n_iter,
    "t_": lambda f: f.state.t,
    "learning_rate_": lambda f: f.state.lr,
    "n_features_in_": lambda f: f.input.n_features_in,
    "n_outputs_": lambda f: f.n_outputs,
    "network_config_": lambda f: {
        k: list(v) if isinstance(v, list) else v for k, v in f.config.items()
    },
}


def _fitted_property(name: str) -> property:
    """A read-only estimator attribute that reads ``name`` from the estimator's FittedModel."""

    def get(self: Any) -> Any:
        fitted = self.__dict__.get("_fitted")
        if fitted is None:  # hasattr() is False before fit, as scikit-learn expects
            raise AttributeError(f"{type(self).__name__} is not fitted: it has no {name}")
        return _FITTED_ATTRS[name](fitted)

    return property(get, doc=f"(fitted) see the class docstring: {name}")


def fitted_properties() -> dict:
    """{name: property} for every fitted attribute of the estimators (_base installs them)."""
    return {name: _fitted_property(name) for name in _FITTED_ATTRS}


__all__ = ["FittedModel", "InputSpec", "TrainState", "fitted_properties"]
