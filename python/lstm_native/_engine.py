"""The training engine: epochs in the compiled core, callbacks around them.

``train`` runs up to ``max_epochs`` epochs of minibatch training on a working
:class:`~lstm_native._state.TrainState` (the core updates its arrays in place), scores the
validation data, keeps the convergence bookkeeping and calls the callbacks
(:mod:`lstm_native.callbacks`). It knows nothing of scikit-learn: the estimators adapt their
interface to it (as LightGBM's ``engine.py`` and ``sklearn.py``).

After every epoch, and when training ends for any reason, the engine hands a copy of the
state to ``publish`` (the caller may keep it: it is never changed afterwards; it is also
``env.published``), which the caller uses to make it visible as one consistent snapshot (the
estimators replace their fitted model as a whole: a concurrent ``predict`` or ``save`` sees the
weights and bookkeeping of a completed epoch, never a half-updated mix).

Faults:

* divergence (a non-finite loss, non-finite weights, non-finite validation predictions, or
  after the last epoch predictions that overflow): the callbacks' ``on_divergence`` rolls the
  state back (DivergenceRollback), the state is published and :class:`TrainingDiverged` (a
  ValueError) is raised;
* Ctrl-C: the core stops at a minibatch boundary; the callbacks' ``on_train_end`` runs with
  ``env.interrupted`` set, the state (every completed optimizer step) is published and
  KeyboardInterrupt propagates;
* any other exception propagates as it is, with nothing published after it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ._network import Network, OptimOptions
from ._state import TrainState
from ._validation import Sequences
from .nn import _all_finite


class TrainingDiverged(ValueError):
    """Training produced non-finite values; the state was rolled back (see the message)."""


class NonFiniteOutput(ValueError):
    """The network produced NaN or infinity for some sequences."""


@dataclass
class Dataset:
    """Sequences with their prepared targets (what the core takes) and sample weights."""

    seqs: Sequences
    Y: np.ndarray  # (N, O), (N,) class indices, or per step (N, T[, O])
    sw: Optional[np.ndarray] = None
    per_step: bool = False  # Y has a time axis (return_sequences)

    @property
    def n(self) -> int:
        return self.seqs.n_samples

    def subset(self, sl: slice) -> Dataset:
        """Sequences ``sl`` (time cropped to their longest one, per-step targets with it)."""
        seqs = self.seqs.subset(sl)
        Y = self.Y[sl]
        if self.per_step:
            Y = Y[:, : seqs.X.shape[1]]
        return Dataset(
            seqs,
            np.ascontiguousarray(Y),
            None if self.sw is None else self.sw[sl].copy(),
            self.per_step,
        )


def check_outputs(out: np.ndarray) -> np.ndarray:
    """``out`` unchanged, or NonFiniteOutput naming the sequences whose outputs overflowed."""
    if not _all_finite(out):
        bad = np.flatnonzero(~np.isfinite(out.reshape(out.shape[0], -1)).all(axis=1))
        raise NonFiniteOutput(
            f"The network's outputs are not finite (overflow) for {bad.size} of "
            f"{out.shape[0]} sequences (indices {bad[:10].tolist()}"
            f"{', ...' if bad.size > 10 else ''}); their values lie far outside the range "
            "the model was trained on"
        )
    return out


@dataclass
class TrainingEnv:
    """What callbacks see. ``state`` is the working state (callbacks may change ``state.lr``
    and ``state.params``); ``epoch`` counts the epochs of this call from 0; ``loss`` and
    ``score`` are the last epoch's mean training loss and validation score (None without
    validation data); ``scores`` every eval set's score by name."""

    state: TrainState
    network: Network
    train: Dataset
    tol: float
    max_epochs: int
    save: Callable[[Any], None]
    predicts_finite: Callable[[np.ndarray], bool]
    epoch: int = 0
    loss: Optional[float] = None
    score: Optional[float] = None
    scores: dict = field(default_factory=dict)
    interrupted: bool = False
    stopped: bool = False  # a callback ended training before max_epochs
    divergence_note: str = ""
    patience: Optional[int] = None  # set by the callback that reports a plateau
    baseline_loss: Optional[float] = None  # the training loss of the best constant model
    published: Optional[TrainState] = None  # the last copy handed to publish (read-only)

    def state_finite(self) -> bool:
        st = self.state
        return _all_finite(st.params) and _all_finite(st.m) and _all_finite(st.v)


def train(
    network: Network,
    state: TrainState,
    data: Dataset,
    *,
    options: OptimOptions,
    max_epochs: int,
    tol: float,
    callbacks: Sequence[Any],
    publish: Callable[[TrainState], None],
    score: Optional[Callable[[np.ndarray, Dataset], float]] = None,
    validation: Optional[Dataset] = None,
    eval_sets: Optional[dict] = None,
    save: Optional[Callable[[Any, TrainState], None]] = None,
    n_jobs: Optional[int] = None,
    check_overflow: Optional[Dataset] = None,
    bounded: Optional[Callable[[np.ndarray], bool]] = None,
    baseline_loss: Optional[float] = None,
) -> TrainingEnv:
    """Trains ``state`` on ``data`` (see the module docstring); returns the environment of
    the run (``env.stopped``: a callback stopped it before ``max_epochs``).

    ``validation``: the data whose ``score`` is monitored (state.validating must be set);
    ``eval_sets``: name -> Dataset, scored after every epoch into ``state.eval_scores``;
    ``save(path, state)``: what ModelCheckpoint calls; ``check_overflow``: the data on which
    to check, after the last epoch, that the final weights predict finite values, unless
    ``bounded(params)`` says they certainly do (a bound, much cheaper than a prediction
    pass)."""
    X, lengths = data.seqs.X, data.seqs.core_lengths
    callbacks = list(callbacks)
    batch_cbs = [cb for cb in callbacks if getattr(cb, "wants_batches", False)]

    def predicts_finite(params: np.ndarray, on: Dataset = data) -> bool:
        if not _all_finite(params):
            return False
        out = network.predict_raw(params, on.seqs.X, on.seqs.core_lengths, n_jobs)
        return _all_finite(out)

    def evaluate(on: Dataset) -> float:
        raw = network.predict_raw(state.params, on.seqs.X, on.seqs.core_lengths, n_jobs)
        return float(score(check_outputs(raw), on))

    env = TrainingEnv(
        state=state,
        network=network,
        train=data,
        tol=float(tol),
        max_epochs=int(max_epochs),
        save=(lambda path: save(path, state)) if save else _no_save,
        predicts_finite=predicts_finite,
        baseline_loss=baseline_loss,
    )

    def published() -> None:  # one copy per epoch, shared by the caller and the callbacks
        env.published = state.copy()
        publish(env.published)

    def diverged(what: str) -> None:
        for cb in callbacks:
            cb.on_divergence(env, what)
        published()
        note = env.divergence_note or "The weights were left as they were"
        raise TrainingDiverged(
            f"Training diverged: {what}. {note}. Scale X and y (e.g. SequenceScaler, "
            "TransformedTargetRegressor), lower learning_rate_init, or set max_grad_norm."
        )

    hook = None
    if batch_cbs:

        def hook(done: int, total: int) -> None:
            for cb in batch_cbs:
                cb.on_batch_end(env, done, total)

    for cb in callbacks:
        cb.on_train_begin(env)
    try:
        for epoch in range(int(max_epochs)):
            env.epoch = epoch
            for cb in callbacks:
                cb.on_epoch_begin(env)
            loss = network.train_epoch(state, X, lengths, data.Y, data.sw, options, n_jobs, hook)
            if not math.isfinite(loss):
                diverged(f"the loss is {loss} in epoch {state.n_iter + 1}")
            if not _all_finite(state.params):
                diverged(f"the weights became non-finite in epoch {state.n_iter + 1}")
            env.score = None
            try:
                if validation is not None:
                    env.score = evaluate(validation)
                for name, ds in (eval_sets or {}).items():
                    env.scores[name] = evaluate(ds)
            except NonFiniteOutput:
                diverged(
                    f"the validation predictions are not finite after epoch {state.n_iter + 1}"
                )
            for name, value in env.scores.items():
                state.eval_scores.setdefault(name, []).append(value)
            state.record_epoch(loss, data.n, env.score, tol)
            env.loss = loss
            stop = False
            for cb in callbacks:
                stop = bool(cb.on_epoch_end(env)) or stop
            published()
            if stop:
                env.stopped = True
                break
        for cb in callbacks:
            cb.on_train_end(env)
        # The last steps may have made weights that are finite but overflow on the training
        # data (where the caller cannot rule that out from a bound): look once.
        if (
            check_overflow is not None
            and not (bounded is not None and bounded(state.params))
            and not predicts_finite(state.params, check_overflow)
        ):
            diverged(
                f"the predictions on the training data are not finite after epoch {state.n_iter}"
            )
    except KeyboardInterrupt:
        env.interrupted = True
        for cb in callbacks:
            cb.on_train_end(env)
        published()
        raise
    published()
    return env


def _no_save(path: Any) -> None:
    raise RuntimeError("this training run has no way to save a checkpoint")


__all__ = [
    "Dataset",
    "NonFiniteOutput",
    "TrainingDiverged",
    "TrainingEnv",
    "check_outputs",
    "train",
]
