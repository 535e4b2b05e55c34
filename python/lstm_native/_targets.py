"""Targets: what differs between the regressor and the classifier, and only that.

A ``Targets`` object turns ``y`` into what the core trains on (``Y``: values (N, O) or per-step
(N, T, O) for the regression losses; class indices (N,) or (N, T) for the softmax
cross-entropy), scores raw network outputs (R^2, accuracy) and formats predictions. A quantile
regressor's network has one output per target and level (column k*Q + j: level j of target k);
its point prediction is one level per target (:func:`point_columns`). It reads the estimator's
hyperparameters and the previously fitted model but never writes to the estimator: ``fit``
installs everything it learned at once (see _base._BaseRecurrentEstimator._fit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import assert_all_finite, column_or_1d

from ._validation import (
    Sequences,
    check_finite_array,
    check_n_samples,
    check_sample_weight,
    pad_sequence_targets,
)


@dataclass
class Prepared:
    """Prepared training targets and what the fit learns from them."""

    Y: np.ndarray
    n_outputs: int
    y_ndim: int
    head_width: int  # targets (regressor) or classes: the network's output
    # size before a quantile head's one output per level
    classes: Optional[np.ndarray] = None


def _valid_steps(lengths: np.ndarray, T: int) -> np.ndarray:
    """Boolean mask (N, T): step t of sequence i is real (t < lengths[i])."""
    return np.arange(T)[None, :] < lengths[:, None]


def _step_weights(sw: Optional[np.ndarray], mask: np.ndarray) -> Optional[np.ndarray]:
    return None if sw is None else np.broadcast_to(sw[:, None], mask.shape)[mask]


def r2(y_true: np.ndarray, y_pred: np.ndarray, sw: Optional[np.ndarray]) -> float:
    """R^2 as ``sklearn.metrics.r2_score(y_true, y_pred, sample_weight=sw)`` gives it, bit for
    bit (the same NumPy operations in the same dtype and order: early stopping compares these
    numbers), without its input validation. That validation took ~4 ms a call, 13 % of a small
    LSTMForecaster fit, which scores every epoch. Inputs the fast path does not cover (not
    floating arrays of one shape, fewer than two samples, non-finite values, weights not 1-D)
    go to r2_score itself, with its warnings and errors.

        R^2_k = 1 - sum_i w_i (y_ik - p_ik)^2 / sum_i w_i (y_ik - ybar_k)^2, averaged over k;
        a column with zero numerator scores 1, zero denominator only 0.
    """
    arrays = (y_true, y_pred) if sw is None else (y_true, y_pred, sw)
    if (
        not all(isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in arrays)
        or y_true.shape != y_pred.shape
        or y_true.ndim not in (1, 2)
        or len(y_true) < 2
        or (sw is not None and sw.shape != (len(y_true),))
        or not all(np.isfinite(a).all() for a in arrays)
    ):
        return float(r2_score(y_true, y_pred, sample_weight=sw))
    dtype = np.result_type(*arrays)
    yt = np.asarray(y_true, dtype=dtype).reshape(len(y_true), -1)
    yp = np.asarray(y_pred, dtype=dtype).reshape(len(y_true), -1)
    if sw is not None:
        sw = np.ascontiguousarray(sw, dtype=dtype)
    weight = 1.0 if sw is None else sw[:, None]
    numerator = np.sum(weight * (yt - yp) ** 2, axis=0)
    denominator = np.sum(weight * (yt - np.average(yt, axis=0, weights=sw)) ** 2, axis=0)
    scores = np.ones(yt.shape[1], dtype=numerator.dtype)
    valid = (denominator != 0) & (numerator != 0)
    scores[valid] = 1 - numerator[valid] / denominator[valid]
    scores[(numerator != 0) & (denominator == 0)] = 0.0
    return float(np.average(scores))


def point_columns(config: dict) -> Optional[np.ndarray]:
    """The network's output columns of the point prediction of each target: with
    loss="quantile", column k*Q + m of target k, where m is the level 0.5 if it is among the
    quantiles, else the middle level ((Q - 1) // 2: the lower of the two middle ones for an even
    number of levels); None (every column) for the other losses."""
    if config["loss"] != "quantile":
        return None
    levels = list(config["quantiles"])
    Q = len(levels)
    m = levels.index(0.5) if 0.5 in levels else (Q - 1) // 2
    return np.arange(config["output_size"] // Q) * Q + m


def _flat_weights(data: Any) -> tuple:
    """(per-row targets, per-row weights) over the real steps: rows are sequences, or every
    valid step of every sequence for per-step targets."""
    Y = data.Y
    sw = np.ones(data.n) if data.sw is None else np.asarray(data.sw, dtype=np.float64)
    if data.per_step:
        mask = _valid_steps(data.seqs.lengths, Y.shape[1])
        return Y[mask], np.broadcast_to(sw[:, None], mask.shape)[mask]
    return Y, sw


class RegressorTargets:
    metric = "r2"

    def point(self, raw: np.ndarray, config: dict) -> np.ndarray:
        """The point predictions among raw outputs (every output but with a quantile loss)."""
        cols = point_columns(config)
        return raw if cols is None else raw[..., cols]

    def scorer(self, config: dict) -> Any:
        """score() on the raw outputs of a network with ``config``."""
        if point_columns(config) is None:
            return self.score
        return lambda raw, data: self.score(self.point(raw, config), data)

    def _values(self, est: Any, y: Any, seqs: Sequences, dtype: Any) -> tuple:
        N = seqs.n_samples
        if est.return_sequences:
            Y, y_ndim = pad_sequence_targets(y, seqs, dtype)
        else:
            arr = check_finite_array(y, "y", dtype=dtype, ndim=(1, 2))
            check_n_samples(arr.shape[0], N)
            y_ndim = arr.ndim
            Y = np.ascontiguousarray(arr.reshape(N, -1))
        if Y.shape[-1] < 1:
            raise ValueError(f"y has no outputs (shape {np.shape(y)})")
        if not Y.flags.writeable:
            Y = Y.copy()
        return Y, y_ndim

    def prepare(
        self,
        est: Any,
        y: Any,
        seqs: Sequences,
        dtype: Any,
        prev: Any,
        incremental: bool,
        classes: Any,
    ) -> Prepared:
        Y, y_ndim = self._values(est, y, seqs, dtype)
        if prev is not None and Y.shape[-1] != prev.n_outputs:
            raise ValueError(
                f"y has {Y.shape[-1]} outputs, but {type(est).__name__} was "
                f"fitted with {prev.n_outputs}"
            )
        return Prepared(Y, Y.shape[-1], y_ndim if prev is None else prev.y_ndim, Y.shape[-1])

    def prepare_eval(
        self, est: Any, y: Any, seqs: Sequences, dtype: Any, train: Prepared
    ) -> np.ndarray:
        Y, _ = self._values(est, y, seqs, dtype)
        if Y.shape[-1] != train.n_outputs:
            raise ValueError(
                f"eval_set y has {Y.shape[-1]} outputs, the training y {train.n_outputs}"
            )
        return Y

    def weights(
        self, est: Any, sw: Optional[np.ndarray], targets: Prepared, dtype: Any, incremental: bool
    ) -> Optional[np.ndarray]:
        return sw

    def baseline_loss(self, loss: str, data: Any) -> Optional[float]:
        """The squared-error loss of the best constant prediction (the weighted mean), in the
        core's normalization (0.5 * mean over outputs); None for the other losses."""
        if loss != "mse":
            return None
        Y, w = _flat_weights(data)
        Y = Y.reshape(len(Y), -1).astype(np.float64)
        mean = (w[:, None] * Y).sum(axis=0) / w.sum()
        return float(0.5 * (w[:, None] * (Y - mean) ** 2).sum() / (w.sum() * Y.shape[1]))

    def score(self, raw: np.ndarray, data: Any) -> float:
        """R^2 of raw outputs against the prepared targets (over the real steps)."""
        if raw.ndim == 3:
            mask = _valid_steps(data.seqs.lengths, raw.shape[1])
            return r2(data.Y[mask], raw[mask], _step_weights(data.sw, mask))
        return r2(data.Y, raw, data.sw)

    def format(self, raw: np.ndarray, seqs: Sequences, fitted: Any) -> Any:
        out = self.point(raw, fitted.config).astype(np.float64)  # sklearn's: float64
        if fitted.config["return_sequences"]:
            if fitted.y_ndim == 1:
                out = out[..., 0]
            if seqs.kind == "list":
                return [out[i, : seqs.lengths[i]].copy() for i in range(seqs.n_samples)]
            return out
        return out[:, 0] if fitted.y_ndim == 1 else out

    def format_quantiles(self, raw: np.ndarray, seqs: Sequences, fitted: Any) -> Any:
        """Every level of a quantile head: (..., n_outputs, n_quantiles), the n_outputs axis
        dropped when y was 1-D; a list per sequence as format()."""
        Q = len(fitted.config["quantiles"])
        out = raw.astype(np.float64).reshape(raw.shape[:-1] + (-1, Q))
        if fitted.y_ndim == 1:
            out = out[..., 0, :]
        if fitted.config["return_sequences"] and seqs.kind == "list":
            return [out[i, : seqs.lengths[i]].copy() for i in range(seqs.n_samples)]
        return out

    def per_step_targets(self, y: Any, seqs: Sequences, dtype: Any) -> np.ndarray:
        return pad_sequence_targets(y, seqs, dtype)[0]


class ClassifierTargets:
    metric = "accuracy"

    def _labels(self, est: Any, y: Any, seqs: Sequences) -> tuple:
        """(flat labels, per-sequence parts or None) with their shapes checked."""
        N, T = seqs.X.shape[:2]
        if not est.return_sequences:
            flat = column_or_1d(y, warn=True)
            check_n_samples(flat.shape[0], N)
            parts = None
        elif isinstance(y, (list, tuple)) and seqs.kind == "list":
            check_n_samples(len(y), N)
            parts = []
            for i, yi in enumerate(y):
                yi = column_or_1d(np.asarray(yi))
                if yi.shape[0] != seqs.lengths[i]:
                    raise ValueError(
                        f"y[{i}] has {yi.shape[0]} labels but X[{i}] has {seqs.lengths[i]} steps"
                    )
                parts.append(yi)
            flat = np.concatenate(parts)
        else:
            labels = np.asarray(y)
            if labels.ndim != 2 or labels.shape[0] != N or labels.shape[1] != T:
                raise ValueError(
                    f"With return_sequences=True, y must hold one label per "
                    f"step: shape ({N}, {T}), got {labels.shape}"
                )
            # each row to its sequence's length: a padded row's tail is not a label
            parts = [row[:L] for row, L in zip(labels, seqs.lengths)]
            flat = np.concatenate(parts) if seqs.ragged else labels.ravel()
        if flat.dtype.kind in "fc":
            assert_all_finite(flat, input_name="y")
        check_classification_targets(flat)
        return flat, parts

    def _indices(
        self, classes: np.ndarray, flat: np.ndarray, parts: Any, seqs: Sequences, dtype: Any
    ) -> np.ndarray:
        def to_index(labels):
            return np.searchsorted(classes, labels).astype(dtype)

        if parts is None:
            return np.ascontiguousarray(to_index(flat))
        Y = np.zeros(seqs.X.shape[:2], dtype=dtype)
        for i, p in enumerate(parts):
            Y[i, : len(p)] = to_index(p)
        return Y

    def prepare(
        self,
        est: Any,
        y: Any,
        seqs: Sequences,
        dtype: Any,
        prev: Any,
        incremental: bool,
        classes: Any,
    ) -> Prepared:
        flat, parts = self._labels(est, y, seqs)
        fitted_classes = None if prev is None else prev.classes
        if incremental:  # scikit-learn's rule for the `classes` argument of partial_fit
            if fitted_classes is None and classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            if classes is not None:
                given = unique_labels(classes)
                if fitted_classes is not None and not np.array_equal(fitted_classes, given):
                    raise ValueError(
                        f"`classes={classes!r}` is not the same as on last call "
                        f"to partial_fit, was: {fitted_classes!r}"
                    )
                fitted_classes = given
        present = unique_labels(flat)
        if fitted_classes is None:
            fitted_classes = present
        elif est.warm_start and not incremental:
            if set(present) != set(fitted_classes):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {fitted_classes}, `y` has {present}"
                )
        elif len(np.setdiff1d(present, fitted_classes)):
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has "
                f"{fitted_classes}. 'y' has {present}."
            )
        if len(fitted_classes) < 2:
            raise ValueError(
                f"{type(est).__name__} needs samples of at least 2 classes in the "
                f"data, but the data contains only one class: "
                f"{fitted_classes[0]!r}"
            )
        Y = self._indices(fitted_classes, flat, parts, seqs, dtype)
        return Prepared(Y, 1, 1, len(fitted_classes), fitted_classes)

    def prepare_eval(
        self, est: Any, y: Any, seqs: Sequences, dtype: Any, train: Prepared
    ) -> np.ndarray:
        flat, parts = self._labels(est, y, seqs)
        unknown = np.setdiff1d(unique_labels(flat), train.classes)
        if len(unknown):
            raise ValueError(
                f"eval_set y has classes not in the training classes: {unknown.tolist()}"
            )
        return self._indices(train.classes, flat, parts, seqs, dtype)

    def weights(
        self, est: Any, sw: Optional[np.ndarray], targets: Prepared, dtype: Any, incremental: bool
    ) -> Optional[np.ndarray]:
        """sample_weight times class_weight of each sequence's label."""
        cw = est.class_weight
        if cw is None:
            return sw
        if est.return_sequences:
            raise ValueError(
                "class_weight needs return_sequences=False: the core weighs whole "
                "sequences, and a sequence's steps have different labels"
            )
        idx = targets.Y.astype(np.int64)
        classes = targets.classes
        if isinstance(cw, str):  # "balanced" over the training labels
            if incremental:  # as scikit-learn's SGDClassifier: one batch is not the data
                raise ValueError(
                    "class_weight 'balanced' is not supported for partial_fit: the class "
                    "frequencies of one batch are not those of the data. Pass weights computed "
                    "with sklearn.utils.class_weight.compute_class_weight('balanced', "
                    "classes=classes, y=y) on (a large sample of) the full data as a dict"
                )
            counts = np.bincount(idx, minlength=len(classes)).astype(np.float64)
            per_class = np.where(counts > 0, len(idx) / (len(classes) * np.maximum(counts, 1)), 0.0)
        else:
            per_class = compute_class_weight(cw, classes=classes, y=classes[idx])
        w = per_class[idx]
        if sw is not None:
            w = w * sw
        return check_sample_weight(w, len(idx), dtype)

    def scorer(self, config: dict) -> Any:
        return self.score

    def baseline_loss(self, loss: str, data: Any) -> float:
        """The cross-entropy of the best constant prediction: the (weighted) class frequencies,
        i.e. their entropy."""
        idx, w = _flat_weights(data)
        p = np.bincount(idx.astype(np.int64).ravel(), weights=w) / w.sum()
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    def score(self, raw: np.ndarray, data: Any) -> float:
        pred = np.argmax(raw, axis=-1)
        if pred.ndim == 2:
            mask = _valid_steps(data.seqs.lengths, pred.shape[1])
            return float(
                accuracy_score(
                    data.Y[mask].astype(np.int64),
                    pred[mask],
                    sample_weight=_step_weights(data.sw, mask),
                )
            )
        return float(accuracy_score(data.Y.astype(np.int64), pred, sample_weight=data.sw))

    def per_sequence(self, arr: np.ndarray, seqs: Sequences, fitted: Any) -> Any:
        if fitted.config["return_sequences"] and seqs.kind == "list":
            return [arr[i, : seqs.lengths[i]].copy() for i in range(seqs.n_samples)]
        return arr

    def sequence_accuracy(self, y: Any, pred: Any, seqs: Sequences, sample_weight: Any) -> float:
        """Accuracy over every real step of every sequence (return_sequences)."""
        sw = None
        if sample_weight is not None:
            sw = check_sample_weight(sample_weight, seqs.n_samples, np.float64)

        # every real step: lists as they are, padded (N, T) arrays cropped to the lengths
        def steps(v: Any) -> np.ndarray:
            if isinstance(v, (list, tuple)):
                return np.concatenate([column_or_1d(np.asarray(p)) for p in v])
            v = np.asarray(v)
            return (
                np.concatenate([row[:L] for row, L in zip(v, seqs.lengths)])
                if v.ndim == 2
                else v.ravel()
            )

        y_true, y_pred = steps(y), steps(pred)
        w = None if sw is None else np.repeat(sw, seqs.lengths)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"y has {y_true.size} labels but X has {y_pred.size} steps")
        return float(accuracy_score(y_true, y_pred, sample_weight=w))


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


class ProbabilityStream:
    """A classifier's stream: the core stream's logits turned into class probabilities."""

    def __init__(self, core_stream: Any) -> None:
        self._stream = core_stream

    def step(self, x: Any, out: Optional[np.ndarray] = None) -> np.ndarray:
        if out is not None:  # checked before the step, so that a bad `out` changes no state
            shape = (
                (self._stream.output_size,)
                if np.ndim(x) == 1
                else (self._stream.batch, self._stream.output_size)
            )
            if not (
                isinstance(out, np.ndarray)
                and out.dtype.kind == "f"
                and out.shape == shape
                and out.flags.writeable
            ):
                got = (
                    f"{out.dtype} {out.shape}"
                    if isinstance(out, np.ndarray)
                    else type(out).__name__
                )
                raise ValueError(
                    f"out must be a writeable float array of shape {shape} (class "
                    f"probabilities), got {got}"
                )
        p = softmax(self._stream.step(x))
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


__all__ = [
    "ClassifierTargets",
    "Prepared",
    "ProbabilityStream",
    "RegressorTargets",
    "point_columns",
    "softmax",
]
