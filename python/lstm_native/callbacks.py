"""Callbacks: what happens around the epochs of training, one object per concern.

The training engine (:mod:`lstm_native._engine`) runs epochs in the compiled core and, around
them, calls the hooks of a list of callbacks with a :class:`TrainingEnv`. The estimators build
their behaviour from these (early stopping and learning-rate schedules from MLPRegressor's
parameters, divergence rollback, verbose output) and add the user's own::

    from lstm_native import LSTMRegressor
    from lstm_native.callbacks import Callback, ModelCheckpoint

    class PrintLoss(Callback):
        def on_epoch_end(self, env):
            print(env.epoch, env.loss, env.score)

    est = LSTMRegressor(callbacks=[PrintLoss(), ModelCheckpoint("ckpt.npz", every=5)])
    est.fit(X, y, eval_set=(X_val, y_val))

Hooks (all optional): ``on_train_begin``, ``on_epoch_begin``, ``on_batch_end(env, done,
total)`` (between minibatches, at most every 100 ms, only for callbacks with
``wants_batches = True``), ``on_epoch_end`` (return True to stop training after this epoch),
``on_divergence`` (the loss, the weights or the validation predictions became non-finite) and
``on_train_end`` (also after Ctrl-C, with ``env.interrupted`` set; not after a divergence,
which ends training with ``on_divergence`` and then raises TrainingDiverged: a callback that
must release something does it in both). Callbacks run in list
order; a callback may change ``env.state.lr`` (the next epoch's learning rate) and
``env.state.params`` in place.

The estimators' parameters map onto them as MLPRegressor's do: the training loss (or, when
validating, the validation score) must improve by ``tol`` within ``n_iter_no_change`` epochs
(more precisely: after more than ``n_iter_no_change`` epochs without such an improvement the
schedule acts); ``learning_rate="constant"``: then training stops (EarlyStopping);
``"invscaling"``: ``lr = learning_rate_init / (t_ + 1) ** power_t`` after every epoch (t_ the
samples seen), stopping as "constant"; ``"adaptive"``: the learning rate is divided by 5 and
training stops once it is <= 1e-6 (ReduceLROnPlateau(0.2)); ``"plateau"``: the same with
halving (ReduceLROnPlateau(0.5), gentler, which suits Adam). Every estimator also rolls back
on divergence (DivergenceRollback) and, with ``verbose``, prints (ProgressPrinter).

The convergence bookkeeping they read is the engine's, after every epoch, as scikit-learn's
MLP keeps it: ``env.state.no_improvement_count`` counts the epochs in a row in which the
monitored value (the validation score when there is validation data, else the training loss)
did not improve by more than ``tol``; ``env.state.best_params`` holds the weights of the best
validation score.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from typing import Any, Callable, Optional

import numpy as np


class Callback:
    """Base class: every hook does nothing (see the module docstring)."""

    wants_batches = False

    def on_train_begin(self, env: Any) -> None:
        pass

    def on_epoch_begin(self, env: Any) -> None:
        pass

    def on_batch_end(self, env: Any, done: int, total: int) -> None:
        pass

    def on_epoch_end(self, env: Any) -> Optional[bool]:
        return None

    def on_divergence(self, env: Any, reason: str) -> None:
        pass

    def on_train_end(self, env: Any) -> None:
        pass


# the hooks every callback has (Callback defines them all as no-ops)
_HOOKS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_divergence", "on_train_end")


def check_callbacks(callbacks: Any) -> list:
    """The estimators' ``callbacks`` as a list; TypeError naming the item that is not one."""
    user = list(callbacks or ())
    for i, cb in enumerate(user):
        missing = [h for h in _HOOKS if not callable(getattr(cb, h, None))]
        if missing:
            raise TypeError(
                f"callbacks[{i}] is {cb!r}, which has no {', '.join(missing)}: a callback "
                "subclasses lstm_native.callbacks.Callback"
            )
    return user


def _restore_best(env: Any) -> None:
    state = env.state
    if state.best_params is not None:
        state.params[...] = state.best_params


def _initial_plateau(env: Any, cb: Any) -> bool:
    """Whether training still sits on the plateau it started on: the training loss no better
    than a constant model's (a network often needs epochs to find the signal; stopping there
    would end, e.g., a classifier at chance level). Not counted against the patience, up to
    3 * (patience + 1) epochs."""
    st, base = env.state, getattr(env, "baseline_loss", None)
    if st.validating or base is None or st.best_loss is None:
        return False
    return st.best_loss > 0.99 * base and st.n_iter < 3 * (cb.patience + 1)


def _plateau_message(env: Any) -> str:
    what = "Validation score" if env.state.validating else "Training loss"
    return (
        f"{what} did not improve more than tol={env.tol:g} for {env.patience} consecutive epochs."
    )


class EarlyStopping(Callback):
    """Stop once more than ``patience`` epochs in a row did not improve the monitored value by
    more than ``tol`` (scikit-learn MLP's rule: the validation score when there is validation
    data, else the training loss; ``tol`` is the estimator's). With validation data, training
    ends with the weights of the best validation score (``restore_best``)."""

    def __init__(
        self, patience: int = 10, restore_best: bool = True, verbose: bool = False
    ) -> None:
        self.patience = patience
        self.restore_best = restore_best
        self.verbose = verbose

    def on_epoch_end(self, env: Any) -> bool:
        if env.state.no_improvement_count <= self.patience or _initial_plateau(env, self):
            return False
        if self.verbose:
            env.patience = self.patience
            print(_plateau_message(env) + " Stopping.", flush=True)
        return True

    def on_train_end(self, env: Any) -> None:
        if self.restore_best:
            _restore_best(env)


class ReduceLROnPlateau(Callback):
    """When more than ``patience`` epochs in a row did not improve the monitored value, divide
    the learning rate by ``1 / factor`` and start counting again; stop once it is at or below
    ``min_lr``. MLPRegressor's learning_rate="adaptive" is factor 0.2; "plateau" is 0.5 (gentler,
    which suits Adam). With validation data, training ends with the best weights."""

    def __init__(
        self,
        factor: float = 0.5,
        patience: int = 10,
        min_lr: float = 1e-6,
        restore_best: bool = True,
        verbose: bool = False,
    ) -> None:
        self.factor = factor
        self.patience = patience
        self.min_lr = min_lr
        self.restore_best = restore_best
        self.verbose = verbose

    def on_epoch_end(self, env: Any) -> bool:
        state = env.state
        if state.no_improvement_count <= self.patience or _initial_plateau(env, self):
            return False
        env.patience = self.patience
        if state.lr <= self.min_lr:
            if self.verbose:
                print(_plateau_message(env) + " Learning rate too small. Stopping.", flush=True)
            return True
        state.lr *= self.factor
        state.no_improvement_count = 0
        if self.verbose:
            print(_plateau_message(env) + f" Setting learning rate to {state.lr:g}", flush=True)
        return False

    def on_train_end(self, env: Any) -> None:
        if self.restore_best:
            _restore_best(env)


class InverseScaling(Callback):
    """``lr = lr0 / (t + 1) ** power_t`` after every epoch, t the training samples seen
    (MLPRegressor's learning_rate="invscaling")."""

    def __init__(self, lr0: float, power_t: float = 0.5) -> None:
        self.lr0 = lr0
        self.power_t = power_t

    def on_epoch_end(self, env: Any) -> None:
        # as exp(-p log(t+1)): no exact integer power for an int power_t, no OverflowError
        # for a huge one (the rate underflows to 0 instead)
        env.state.lr = float(self.lr0) * math.exp(-float(self.power_t) * math.log(env.state.t + 1))


class LearningRateScheduler(Callback):
    """``lr = schedule(epoch, lr)`` before every epoch (epoch counted from 0 in this fit)."""

    def __init__(self, schedule: Callable[[int, float], float]) -> None:
        self.schedule = schedule

    def on_epoch_begin(self, env: Any) -> None:
        lr = float(self.schedule(env.epoch, env.state.lr))
        if not lr > 0 or lr == float("inf"):
            raise ValueError(
                f"the learning-rate schedule gave {lr!r} for epoch {env.epoch}; "
                "it must give a positive finite number"
            )
        env.state.lr = lr


def _same_moment(a: Any, b: Any) -> bool:
    """Whether two states hold the same values (a cheap test: the counters, the learning rate
    and the arrays' contents; arrays of a small network, compared in microseconds)."""
    return (
        a.n_iter == b.n_iter
        and a.step == b.step
        and a.lr == b.lr
        and np.array_equal(a.params, b.params)
        and np.array_equal(a.m, b.m)
        and np.array_equal(a.v, b.v)
    )


class DivergenceRollback(Callback):
    """When training diverges (non-finite loss, weights or validation predictions), roll back
    to the most recent usable weights: those of the best validation score, else the state at
    the start of this epoch or of the one before, else the state this training call started
    from, whichever first predicts finite values on the training data. The bookkeeping (loss
    curve, steps, learning rate, ...) goes back with the state. After Ctrl-C, non-finite
    weights are replaced by the state at the start of the epoch."""

    def on_train_begin(self, env: Any) -> None:
        self._history = deque(maxlen=2)
        self._start = env.state.copy()

    def on_epoch_begin(self, env: Any) -> None:
        # The state now is the one published after the last epoch (the estimators list this
        # callback first, and nothing runs between); that copy is never changed, so it is kept
        # as it is rather than copied once more. A state modified since is copied.
        snap = env.published if env.published is not None else self._start
        if not _same_moment(snap, env.state):
            snap = env.state.copy()
        self._history.append(snap)

    def on_divergence(self, env: Any, reason: str) -> None:
        state = env.state
        candidates = []
        if state.best_params is not None:  # only the weights go back; broken moments are reset
            candidates.append(("with the best validation score so far", None))
        for ckpt in reversed(self._history):
            n = ckpt.n_iter
            candidates.append((f"after epoch {n}" if n else "before the first epoch", ckpt))
        candidates.append(("this fit started from", self._start))
        best = None if state.best_params is None else state.best_params.copy()
        for name, ckpt in candidates:
            if ckpt is None:
                state.params[...] = best
                if not (np.isfinite(state.m).all() and np.isfinite(state.v).all()):
                    state.m[...] = 0
                    state.v[...] = 0
            else:
                state.assign(ckpt)
            if env.predicts_finite(state.params):
                env.divergence_note = f"The estimator keeps the weights {name} and can predict"
                break
        else:
            state.assign(self._start)
            env.divergence_note = (
                "No weights seen in this fit predict finite values on the "
                "training data (it has extreme values)"
            )
        self._history.clear()

    def on_train_end(self, env: Any) -> None:
        if env.interrupted and self._history and not env.state_finite():
            env.state.assign(self._history[-1])


class ProgressPrinter(Callback):
    """verbose output: one line per epoch (loss, validation score, time); with ``verbose >= 2``
    also the learning rate, optimizer steps, samples seen, the best value so far, epochs without
    improvement and total time, and a progress bar within long epochs."""

    def __init__(
        self, verbose: int = 1, patience: Optional[int] = None, stream: Any = None
    ) -> None:
        self.verbose = int(verbose)
        self.patience = patience
        self.stream = stream
        self.wants_batches = self.verbose >= 2

    def _out(self) -> Any:
        return sys.stdout if self.stream is None else self.stream

    def on_train_begin(self, env: Any) -> None:
        self._start = time.perf_counter()

    def on_epoch_begin(self, env: Any) -> None:
        self._epoch_start = time.perf_counter()
        self._lr = env.state.lr

    def on_batch_end(self, env: Any, done: int, total: int) -> None:
        width = 30
        out = self._out()
        if done < total:
            filled = int(width * done / max(total, 1))
            bar = "#" * filled + "." * (width - filled)
            out.write(f"\rEpoch {env.state.n_iter + 1}: [{bar}] {done}/{total} samples")
        else:
            out.write("\r" + " " * (width + 40) + "\r")  # the epoch line follows
        out.flush()

    def on_epoch_end(self, env: Any) -> None:
        st = env.state
        now = time.perf_counter()
        line = f"Epoch {st.n_iter}: loss = {env.loss:.8f}"
        if env.score is not None:
            line += f", validation score = {env.score:.6f}"
        line += f", time = {now - self._epoch_start:.3f} s"
        if self.verbose >= 2:
            best = (
                f"best validation score = {st.best_validation_score:.6f}"
                if st.validating
                else f"best loss = {st.best_loss:.8f}"
            )
            line += (
                f", lr = {self._lr:.3g}, optimizer steps = {st.step}, samples seen = "
                f"{st.t}, {best}, epochs without improvement = "
                f"{st.no_improvement_count}"
                f"{'' if self.patience is None else f'/{self.patience}'}, "
                f"total time = {now - self._start:.2f} s"
            )
        print(line, file=self._out(), flush=True)


class ModelCheckpoint(Callback):
    """Save the estimator being trained to ``path`` every ``every`` epochs (and, with
    ``save_best_only``, only when the validation score improved), with ``est.save``'s format
    and atomic write: a checkpoint can be loaded with ``lstm_native.load`` and training
    continued with ``partial_fit`` or ``warm_start``."""

    def __init__(self, path: Any, every: int = 1, save_best_only: bool = False) -> None:
        if int(every) < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.path = path
        self.every = int(every)
        self.save_best_only = save_best_only

    def on_epoch_end(self, env: Any) -> None:
        if (env.epoch + 1) % self.every:
            return
        st = env.state
        if self.save_best_only and not (st.validating and st.no_improvement_count == 0):
            return
        env.save(self.path)


__all__ = [
    "Callback",
    "DivergenceRollback",
    "EarlyStopping",
    "InverseScaling",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ProgressPrinter",
    "ReduceLROnPlateau",
]
