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

This module only adapts scikit-learn's interface: training runs in the engine
(:mod:`lstm_native._engine`: whole epochs in C++, callbacks around them), configured by
:class:`sklearn.neural_network.MLPRegressor`'s parameters through callbacks
(:mod:`lstm_native.callbacks`, where the convergence test and the learning-rate schedules are
described); unlike MLP's, the schedules apply to every solver. The loss is ``0.5 * mean squared
error`` (regressor; or the absolute error, Huber's or the pinball loss of quantile regression:
its ``loss`` parameter) or the softmax cross-entropy (classifier, also for two classes), weighted by
``sample_weight`` (and ``class_weight``), plus ``0.5 * alpha * ||W||^2 / (total sample weight of
the minibatch)`` over the weight matrices, as MLP; with ``solver="adamw"`` ``alpha`` is the
decoupled weight decay instead. A minibatch whose sample weights are all zero contributes
nothing. Validation data: ``early_stopping=True`` holds out the last ``validation_fraction`` of
the samples, or takes ``fit(..., eval_set=(X_val, y_val))``; every eval set is scored after
every epoch (``evals_result_``).

Guarantees (each is checked by tests/test_robustness.py and tests/test_hostile.py):

* bad input raises ValueError / TypeError naming the argument; a fit or predict whose memory
  (estimated from the shapes, before anything is allocated) exceeds what is available raises
  MemoryError naming the sizes;
* a failed ``fit``/``partial_fit`` (bad input, a callback's exception, ...) leaves the
  estimator exactly as it was before the call, with two documented exceptions:
* divergence: if the loss, the weights or the validation predictions become NaN or infinite
  (or, after the last epoch, the predictions on the training data overflow), training stops,
  the estimator rolls back to the latest weights that predict finite values on the training
  data (the best early-stopping weights, the start of this or the previous epoch, or the
  start of the call), with the bookkeeping of the epochs up to them, and ``fit`` raises
  ValueError; the estimator stays usable. ``predict`` raises ValueError naming the sequences
  whose outputs overflow (instead of returning NaN, or a class for NaN logits);
* Ctrl-C (KeyboardInterrupt) during ``fit``/``partial_fit`` stops at the next minibatch
  boundary (the core checks for signals at most every 100 ms), leaves the estimator fitted with
  the weights of every completed optimizer step (with validation: the best so far) and
  re-raises; ``predict`` works in chunks of 256 sequences and stops between them;
* threads: training works on a private copy of the state and publishes it, whole, after every
  epoch. So ``predict``, ``score``, ``stream`` and ``save`` from other threads during a fit see
  the model of the last completed epoch (or the previous fit), never a half-updated one, and
  ``save`` never waits for training: every file it writes loads. Concurrent ``predict`` calls
  run in parallel (each borrows a core model of its own) and give the results of sequential
  calls; estimators in different threads do not interact;
* fork: a child made by ``os.fork()`` (multiprocessing's fork start method, gunicorn's
  preload_app, Celery's prefork pool) can use every estimator and layer, and exits normally;
* interpreter exit: exiting while a daemon thread is inside ``fit``/``predict`` does not abort
  the process (that thread is stopped where it waits for the interpreter);
* ``save(path)`` / ``load(path)``: a portable ``.npz`` without pickle, written atomically,
  checked field by field on loading (see :mod:`lstm_native._persist`).
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.metaestimators import available_if

from ._base import (
    _DEFAULT_QUANTILES,
    _REGRESSOR_LOSSES,
    ESTIMATORS,
    _BaseRecurrentEstimator,
)
from ._docs import _PARAMETERS_DOC, _REGRESSOR_LOSS_DOC, _signature_with
from ._engine import Dataset, check_outputs
from ._memory import check_memory
from ._network import core_config, head_width, loss_config
from ._state import InputSpec
from ._targets import ClassifierTargets, ProbabilityStream, RegressorTargets, softmax
from ._validation import check_sample_weight


def _has_quantiles(est: Any) -> bool:
    """predict_quantiles exists for a quantile regressor: the fitted network's loss decides,
    before fitting the ``loss`` parameter."""
    fitted = est.__dict__.get("_fitted")
    loss = (
        fitted.config["loss"]
        if fitted is not None
        else _REGRESSOR_LOSSES.get(est.loss)
        if isinstance(est.loss, str)
        else None
    )
    if loss != "quantile":
        raise AttributeError(
            f"{type(est).__name__} has predict_quantiles only with "
            f"loss='quantile' (fitted with {loss!r})"
        )
    return True


class LSTMRegressor(RegressorMixin, _BaseRecurrentEstimator):
    __doc__ = (
        "Recurrent-network regressor (LSTM, GRU or Elman RNN) with scikit-learn's API.\n"
        + _PARAMETERS_DOC.format(score="R^2", metric="r2", extra=_REGRESSOR_LOSS_DOC, attrs="")
    )

    _loss = "mse"
    _targets = RegressorTargets()
    _parameter_constraints = {
        **_BaseRecurrentEstimator._parameter_constraints,
        "loss": [StrOptions(set(_REGRESSOR_LOSSES))],
        "quantiles": ["array-like", None],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        *,
        loss: str = "squared_error",
        quantiles: Any = None,
        huber_delta: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(cell, hidden_size, num_layers, **kwargs)
        self.loss = loss
        self.quantiles = quantiles
        self.huber_delta = huber_delta

    __init__.__signature__ = _signature_with(
        _BaseRecurrentEstimator.__init__, loss="squared_error", quantiles=None, huber_delta=1.0
    )

    def _quantile_levels(self) -> list:
        levels = _DEFAULT_QUANTILES if self.quantiles is None else self.quantiles
        if isinstance(levels, (str, bytes)) or not all(
            isinstance(q, Real) and not isinstance(q, (bool, np.bool_)) for q in levels
        ):
            raise ValueError(f"quantiles must be a list of numbers, got {levels!r}")
        return [float(q) for q in levels]

    def _loss_config(self) -> dict:
        cfg = loss_config(_REGRESSOR_LOSSES[self.loss])
        if self.loss == "huber":
            cfg["huber_delta"] = float(self.huber_delta)
        elif self.loss == "quantile":
            cfg["quantiles"] = self._quantile_levels()
        return cfg

    def _validate_params(self) -> None:
        """scikit-learn's checks, then the loss's fields as the core checks them (quantile
        levels in (0, 1), strictly increasing, at most 99; huber_delta finite)."""
        super()._validate_params()
        try:
            loss = self._loss_config()
            core_config(dict(loss, output_size=max(1, head_width(loss, 1))))
        except (ValueError, TypeError) as e:
            raise InvalidParameterError(
                f"The loss parameters of {type(self).__name__} are invalid: {e}"
            ) from None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> LSTMRegressor:
        """One epoch over (X, y), continuing from the current weights and optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: Any) -> Any:
        """Predictions: (n_samples,) or (n_samples, n_outputs) as ``y`` in fit; with
        return_sequences (n_samples, n_timesteps[, n_outputs]), or a list of (T_i[, n_outputs])
        arrays for a list of variable-length sequences. With loss="quantile", the median: the
        level 0.5 if it is among ``quantiles``, else the middle level (the lower of the two
        middle ones for an even number of levels)."""
        seqs, fitted = self._check_X_predict(X)
        return self._targets.format(self._raw_predict(seqs, fitted), seqs, fitted)

    @available_if(_has_quantiles)
    def predict_quantiles(self, X: Any) -> Any:
        """Every quantile level (loss="quantile" only): (n_samples, n_outputs, n_quantiles),
        the n_outputs axis dropped when ``y`` was 1-D; with return_sequences (n_samples,
        n_timesteps[, n_outputs], n_quantiles), or a list of (T_i[, n_outputs], n_quantiles)
        arrays for a list of variable-length sequences. The levels are ``quantiles`` in their
        order; nothing forces the predicted quantiles to be ordered (training on enough data
        makes them so)."""
        seqs, fitted = self._check_X_predict(X)
        return self._targets.format_quantiles(self._raw_predict(seqs, fitted), seqs, fitted)

    def rollout(
        self, X: Any, horizon: int, future: Any = None, feedback: Any = ((0, 0),)
    ) -> np.ndarray:
        """Recursive multi-step prediction in C++ (sequence-to-one, unidirectional models):
        after each history of X, the model's raw output (every output column, all quantile
        levels) for ``horizon`` steps, (n_samples, horizon, n_outputs * n_quantiles). Step k
        feeds the input ``future[:, k-1]`` ((n_samples, horizon - 1, n_features), the
        known-future covariates; None: zeros) with its columns replaced by the previous step's
        output as ``feedback`` [(output column, input feature), ...] says, through one
        timestep from the carried state. Equals a loop of ``predict`` on growing sequences."""
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        seqs, fitted = self._check_X_predict(X)
        out_bytes = (
            seqs.n_samples * int(horizon) * fitted.config["output_size"] * fitted.dtype.itemsize
        )
        check_memory([("the forecasts", out_bytes)], f"rollout over {horizon} steps")
        fut = None
        if future is not None:
            fut = np.ascontiguousarray(np.asarray(future, dtype=fitted.dtype))
        fb = None if feedback is None else [tuple(int(v) for v in p) for p in feedback]
        net = self._network_for(fitted.config)
        return check_outputs(
            net.rollout(
                fitted.state.params, seqs.X, seqs.core_lengths, horizon, fut, fb, self.n_jobs
            )
        )

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R^2 of :meth:`predict` (averaged uniformly over outputs); with return_sequences over
        every real step of every sequence (each step weighted by its sequence's weight)."""
        if not self.return_sequences:
            return super().score(X, y, sample_weight=sample_weight)
        seqs, fitted = self._check_X_predict(X)
        Y = self._targets.per_step_targets(y, seqs, np.float64)
        sw = check_sample_weight(sample_weight, seqs.n_samples, np.float64)
        return self._targets.scorer(fitted.config)(
            self._raw_predict(seqs, fitted), Dataset(seqs, Y, sw, per_step=True)
        )


class LSTMClassifier(ClassifierMixin, _BaseRecurrentEstimator):
    __doc__ = (
        "Recurrent-network classifier (LSTM, GRU or Elman RNN) with scikit-learn's API.\n\n"
        "    Softmax output over ``classes_`` (also for two classes) and cross-entropy loss. One\n"
        "    label per sequence, or with ``return_sequences=True`` one label per step\n"
        "    (``(n_samples, n_timesteps)`` or a list of ``(T_i,)`` arrays).\n"
        + _PARAMETERS_DOC.format(
            score="accuracy",
            metric="accuracy",
            extra=(
                '    class_weight : dict, "balanced" or None, default=None\n'
                "        Weights of the classes in the loss, multiplying sample_weight (as\n"
                '        scikit-learn\'s classifiers; "balanced": n_samples / (n_classes *\n'
                "        count of the class) over the training labels).\n"
            ),
            attrs="\n    classes_ : ndarray (n_classes,), the class labels.",
        )
    )

    _loss = "softmax"
    _targets = ClassifierTargets()
    _parameter_constraints = {
        **_BaseRecurrentEstimator._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        *,
        class_weight: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(cell, hidden_size, num_layers, **kwargs)
        self.class_weight = class_weight

    __init__.__signature__ = _signature_with(_BaseRecurrentEstimator.__init__, class_weight=None)

    @property
    def classes_(self) -> np.ndarray:
        return self._require_fitted().classes

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> LSTMClassifier:
        """One epoch over (X, y); ``classes`` (every label that may occur) is required on the
        first call, as for sklearn's incremental classifiers."""
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def stream(self, batch: int = 1) -> ProbabilityStream:
        return ProbabilityStream(super().stream(batch))

    stream.__doc__ = _BaseRecurrentEstimator.stream.__doc__

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities (n_samples, n_classes), in the order of ``classes_``; with
        return_sequences (n_samples, n_timesteps, n_classes) or a list of (T_i, n_classes)."""
        seqs, fitted = self._check_X_predict(X)
        return self._targets.per_sequence(softmax(self._raw_predict(seqs, fitted)), seqs, fitted)

    def predict_log_proba(self, X: Any) -> Any:
        """Logarithm of :meth:`predict_proba`."""
        seqs, fitted = self._check_X_predict(X)
        z = np.asarray(self._raw_predict(seqs, fitted), dtype=np.float64)
        z = z - z.max(axis=-1, keepdims=True)
        z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
        return self._targets.per_sequence(z, seqs, fitted)

    def predict(self, X: Any) -> Any:
        """Class labels (n_samples,); with return_sequences (n_samples, n_timesteps) or a list
        of (T_i,) arrays."""
        seqs, fitted = self._check_X_predict(X)
        idx = np.argmax(self._raw_predict(seqs, fitted), axis=-1)
        return self._targets.per_sequence(fitted.classes[idx], seqs, fitted)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy; with return_sequences over every real step of every sequence."""
        if not self.return_sequences:
            return super().score(X, y, sample_weight=sample_weight)
        seqs, _ = self._check_X_predict(X)
        return self._targets.sequence_accuracy(y, self.predict(X), seqs, sample_weight)


__all__ = ["ESTIMATORS", "LSTMClassifier", "LSTMRegressor", "InputSpec"]
