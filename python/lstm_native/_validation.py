"""Input checks shared by the estimators and the preprocessing transformers.

Sequence input ``X`` comes in three forms, all turned into one right-padded array
``(n_samples, n_timesteps, n_features)`` of the model's dtype plus the length of each sequence:

* 3-D array ``(n_samples, n_timesteps, n_features)``: equal-length multivariate sequences;
  ``n_features_in_`` is ``n_features`` (``X.shape[2]``).
* 2-D array ``(n_samples, n_timesteps)``: equal-length *univariate* sequences (one feature per
  step). scikit-learn's conventions require ``n_features_in_ == X.shape[1]`` for 2-D input, so
  here ``n_features_in_`` is the number of timesteps, and predicting on 2-D input of another
  width is an error, as for any scikit-learn estimator. Feature names of a DataFrame are kept.
* a list (or tuple) of 2-D arrays ``(T_i, n_features)`` or 1-D arrays ``(T_i,)`` (univariate)
  of different lengths: variable-length sequences; ``n_features_in_`` is ``n_features``.

Every check raises ``ValueError`` (or ``TypeError`` for non-numeric data) naming the problem.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import _check_sample_weight, check_array, validate_data

from ._state import InputSpec


@dataclass
class Sequences:
    """Validated sequences: ``X`` (N, T, D) C-contiguous and writeable, ``lengths`` (N,) int64
    (every sequence's length), ``ragged`` whether the lengths differ, ``kind`` "2d", "3d" or
    "list" (how they were given); ``spec`` the InputSpec recorded by ``check_sequences(...,
    reset=True)`` (None otherwise)."""

    X: np.ndarray
    lengths: np.ndarray
    kind: str
    spec: Optional[InputSpec] = None

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[2]

    @property
    def ragged(self) -> bool:
        return bool(self.lengths.size) and bool(np.any(self.lengths != self.X.shape[1]))

    @property
    def core_lengths(self) -> Optional[np.ndarray]:
        """What the core wants: None when every sequence spans all T steps."""
        return self.lengths if self.ragged else None

    def subset(self, idx: slice) -> Sequences:
        X = self.X[idx]
        lengths = self.lengths[idx]
        T = int(lengths.max()) if lengths.size else X.shape[1]
        return Sequences(np.ascontiguousarray(X[:, :T]), lengths, self.kind, self.spec)


@contextmanager
def _numeric(name: str):
    """Names the argument in NumPy's conversion errors ("could not convert string to float",
    "float() argument must be ...") for non-numeric data such as strings or objects."""
    try:
        yield
    except (ValueError, TypeError) as e:
        msg = str(e)
        if msg.startswith(name) or not ("convert" in msg or "argument must be" in msg):
            raise
        raise type(e)(f"{name} must hold real numbers: {msg}") from None


def _name(estimator: Any) -> str:
    return type(estimator).__name__ if estimator is not None else "the estimator"


def _check_numeric(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}")


def _is_variable_length_list(X: Any) -> bool:
    """Is X a list of sequences: a list/tuple of NumPy arrays (1-D or 2-D: one sequence each,
    whatever their lengths, so that the same windows are read the same way whether or not
    their lengths happen to agree), or of array-likes whose shapes differ (different lengths
    or feature counts)? A list of equal nested lists stays a 2-D/3-D table."""
    if not isinstance(X, (list, tuple)) or len(X) == 0:
        return False
    if all(type(x) is np.ndarray and x.ndim in (1, 2) for x in X):
        return True
    is_seq = [not (np.isscalar(x) or x is None) for x in X]
    if any(is_seq) and not all(is_seq):
        i = is_seq.index(False)
        raise ValueError(
            f"X[{i}] is {X[i]!r} ({type(X[i]).__name__}), not a sequence, while "
            f"X[{is_seq.index(True)}] is one; a list X must hold one array-like "
            "sequence per sample"
        )
    if not any(is_seq):
        return False
    shapes = set()
    for x in X:
        if sp.issparse(x):
            raise TypeError(
                "Sparse data was passed in a list of sequences, but dense data "
                "is required; convert each sequence with .toarray()"
            )
        try:
            shapes.add(np.shape(x))
        except ValueError:  # a ragged nested list inside one sequence
            return True
        if len(shapes) > 1:
            return True
    return False


def _x_ndim(X: Any) -> Optional[int]:
    shape = getattr(X, "shape", None)
    if shape is not None and not sp.issparse(X):
        return len(shape)
    if isinstance(X, (list, tuple)):
        try:
            return np.asarray(X).ndim
        except (ValueError, TypeError):
            return None
    return None


def _check_sequence_list(X: Any, dtype: Any, estimator: Any) -> tuple:
    """Pads a list of (T_i, D) / (T_i,) arrays into (N, T_max, D) plus lengths (N,).

    The common case (every item a real numeric ndarray) is checked in a few vectorized passes
    over all the data at once; anything else (nested lists, objects, strings, sparse, ...) goes
    through scikit-learn's check_array one sequence at a time, which names the bad item."""
    fast = _pad_arrays(X, dtype)
    if fast is not None:
        return fast
    seqs = []
    n_feat = None
    for i, x in enumerate(X):
        arr = _one_sequence(x, i)
        _check_numeric(np.asarray(arr), f"X[{i}]")
        with _numeric(f"X[{i}]"):
            arr = check_array(
                arr, dtype=dtype, ensure_all_finite=True, input_name=f"X[{i}]", estimator=estimator
            )
        if n_feat is None:
            n_feat = arr.shape[1]
        elif arr.shape[1] != n_feat:
            raise ValueError(
                f"All sequences in X must have the same number of features: X[0] "
                f"has {n_feat}, X[{i}] has {arr.shape[1]}"
            )
        seqs.append(arr)
    lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    Xp = np.zeros((len(seqs), int(lengths.max()), n_feat), dtype=dtype)
    for i, s in enumerate(seqs):
        Xp[i, : s.shape[0]] = s
    return Xp, lengths


def _one_sequence(x: Any, i: int) -> Any:
    """Item i of a list X as an array (T_i, D), with its shape checked."""
    try:
        arr = np.asarray(x) if not hasattr(x, "dtype") else x
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"X[{i}] is not a rectangular (n_timesteps, n_features) array: {e}"
        ) from None
    if getattr(arr, "ndim", None) not in (1, 2):
        raise ValueError(
            f"X[{i}] must be a 1-D (univariate) or 2-D (n_timesteps, "
            f"n_features) sequence, got shape {np.shape(arr)}"
        )
    if arr.ndim == 1:
        arr = np.reshape(arr, (-1, 1))
    if arr.shape[0] == 0:
        raise ValueError(
            f"X[{i}] is an empty sequence (0 timesteps); every sequence needs at least one step"
        )
    return arr


def _pad_arrays(X: Any, dtype: Any) -> Optional[tuple]:
    """The vectorized path of _check_sequence_list, or None when some item is not a real
    numeric ndarray (the per-sequence path then finds and names it)."""
    if not all(type(x) is np.ndarray and x.dtype.kind in "fiub" and x.ndim in (1, 2) for x in X):
        return None
    shapes = [x.shape for x in X]
    lengths = np.fromiter((s[0] for s in shapes), dtype=np.int64, count=len(shapes))
    feats = {1 if len(s) == 1 else s[1] for s in shapes}
    if len(feats) != 1 or lengths.min() == 0 or 0 in feats:
        return None  # the per-sequence path raises the precise error
    D = feats.pop()
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: refused
        flat = np.concatenate([x.reshape(-1, D) for x in X]).astype(dtype, copy=False)
    if not np.isfinite(flat).all():
        bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))[0]
        i = int(np.searchsorted(np.cumsum(lengths), bad, side="right"))
        kind = "NaN" if np.isnan(flat[bad]).any() else "infinity"
        raise ValueError(f"Input X[{i}] contains {kind}.")
    T = int(lengths.max())
    Xp = np.zeros((len(shapes), T, D), dtype=dtype)
    Xp[np.arange(T)[None, :] < lengths[:, None]] = flat  # row-major: sequence by sequence
    return Xp, lengths


def check_sequences(
    X: Any,
    *,
    dtype: Any = np.float64,
    estimator: Any = None,
    reset: Optional[bool] = None,
    spec: Optional[InputSpec] = None,
    any_length: bool = False,
) -> Sequences:
    """Validates sequence input ``X`` (see the module docstring) into a :class:`Sequences`.

    ``reset=None`` only checks; ``reset=True`` also records what fitting learns about X
    (``Sequences.spec``: n_features_in_, feature names of a 2-D DataFrame, the input kind and
    the features per step) without touching ``estimator``; ``reset=False`` checks ``X``
    against ``spec`` (what was recorded) and, for 2-D input, against the estimator's
    ``n_features_in_`` and ``feature_names_in_`` as scikit-learn does (with ``any_length``,
    i.e. predicting, the error for 2-D X of another width says how to pass sequences of
    other lengths: as a list or a 3-D array, which take any length). ``estimator`` only
    names the caller in messages (and is read, never written).
    """
    dtype = np.dtype(dtype)
    if X is None:
        raise ValueError(
            f"{_name(estimator)} got X=None; X must be a 2-D array (n_samples, "
            "n_timesteps), a 3-D array (n_samples, n_timesteps, n_features) or a "
            "list of (n_timesteps_i, n_features) arrays"
        )
    if isinstance(X, (list, tuple)) and len(X) == 0:
        raise ValueError("X is empty: got an empty list of sequences (0 samples)")
    names = None
    n_features_in = None
    if _is_variable_length_list(X):
        Xp, lengths = _check_sequence_list(X, dtype, estimator)
        kind = "list"
    else:
        ndim = _x_ndim(X)
        if ndim == 3:
            if hasattr(X, "dtype"):
                _check_numeric(np.asarray(X), "X")
            if isinstance(X, np.ndarray) and X.shape[0] == 0:
                raise ValueError(
                    f"Found array with 0 sample(s) (shape={X.shape}) while a "
                    "minimum of 1 is required."
                )
            with _numeric("X"):
                Xp = check_array(
                    X,
                    dtype=dtype,
                    allow_nd=True,
                    ensure_all_finite=True,
                    estimator=estimator,
                    input_name="X",
                )
            if Xp.shape[1] == 0:
                raise ValueError(
                    f"X has 0 timesteps (shape={Xp.shape}); every sequence needs at least one step"
                )
            if Xp.shape[2] == 0:
                raise ValueError(
                    f"Found array with 0 feature(s) (shape={Xp.shape}) while a "
                    "minimum of 1 is required."
                )
            lengths = np.full(Xp.shape[0], Xp.shape[1], dtype=np.int64)
            kind = "3d"
        else:
            if ndim is not None and ndim > 3:
                raise ValueError(
                    f"X has {ndim} dimensions (shape {np.shape(X)}); X must be 2-D "
                    "(n_samples, n_timesteps), 3-D (n_samples, n_timesteps, n_features) or a "
                    "list of (n_timesteps_i[, n_features]) sequences"
                )
            kind = "2d"
            if hasattr(X, "dtype") and not sp.issparse(X):
                _check_numeric(np.asarray(X), "X")
            if (
                estimator is not None
                and reset is not None
                and (reset or spec is None or spec.input_kind == "2d")
            ):
                # scikit-learn's own checks: n_features_in_ = X.shape[1], feature names,
                # "Reshape your data" for 1-D input, sparse/NaN/inf/complex/empty messages.
                # Fitting records them on a stand-in named like the estimator, so that the
                # estimator itself changes only when the whole fit succeeds.
                target = _recorder(estimator) if reset else estimator
                try:
                    with _numeric("X"):
                        Xp = validate_data(
                            target, X, reset=bool(reset), dtype=dtype, ensure_all_finite=True
                        )
                except ValueError as e:
                    if any_length and "features as input" in str(e):
                        # scikit-learn's rule for 2-D X (its estimator checks require it):
                        # say how to pass univariate sequences of another length
                        raise ValueError(
                            f"{e} 2-D X holds univariate sequences, one column per step, and "
                            "must keep the fit's width; pass sequences of another length as a "
                            "3-D array (n_samples, n_timesteps, 1)"
                        ) from None
                    raise
                if reset:
                    n_features_in = target.n_features_in_
                    names = getattr(target, "feature_names_in_", None)
            else:
                with _numeric("X"):
                    Xp = check_array(
                        X, dtype=dtype, ensure_all_finite=True, estimator=estimator, input_name="X"
                    )
            Xp = Xp.reshape(Xp.shape[0], Xp.shape[1], 1)
            lengths = np.full(Xp.shape[0], Xp.shape[1], dtype=np.int64)
    Xp = np.ascontiguousarray(Xp, dtype=dtype)
    if not Xp.flags.writeable:  # e.g. a read-only memmap: the core takes writeable buffers
        Xp = Xp.copy()
    seqs = Sequences(Xp, lengths, kind)
    if reset:
        D = seqs.n_features
        seqs.spec = InputSpec(
            n_features_in=D if n_features_in is None else int(n_features_in),
            input_kind=kind,
            step_features=D,
            feature_names_in=names,
        )
    elif reset is not None and spec is not None:
        _check_features(estimator, seqs, spec)
    return seqs


_RECORDERS: dict = {}


def _recorder(estimator: Any) -> Any:
    """A blank estimator whose class has the estimator's name (scikit-learn's messages name
    it), for validate_data(reset=True) to record n_features_in_ and feature names on."""
    from sklearn.base import BaseEstimator

    name = type(estimator).__name__
    cls = _RECORDERS.get(name)
    if cls is None:
        cls = _RECORDERS[name] = type(name, (BaseEstimator,), {})
    return cls()


def _check_features(estimator: Any, seqs: Sequences, spec: InputSpec) -> None:
    name = _name(estimator)
    D = seqs.n_features
    expected = spec.step_features
    if D != expected:
        if seqs.kind == "2d":
            raise ValueError(
                f"X is 2-D, i.e. univariate sequences (one feature per step), but {name} was "
                f"fitted on sequences with {expected} features per step; pass a 3-D array "
                f"(n_samples, n_timesteps, {expected}) or a list of (n_timesteps, {expected}) "
                "arrays"
            )
        if spec.input_kind == "2d":
            raise ValueError(
                f"X has {D} features per step, but {name} was fitted on 2-D X, i.e. univariate "
                "sequences (one feature per step)"
            )
        raise ValueError(
            f"X has {D} features, but {name} is expecting {expected} features as input."
        )


def apply_layout(X: Any, layout: str, warn: bool = False) -> Any:
    """X in the (n_samples, n_timesteps, n_features) layout the estimators read. ``"nct"``:
    X is (n_samples, n_channels, n_timesteps), as aeon and sktime store time series (a 3-D
    array, or a list of (n_channels, T_i) arrays), and is transposed. With ``warn`` (fit), a
    3-D "ntc" array that looks transposed (at most 3 timesteps and 10 or more features per
    step) gets a warning: it is most likely aeon/sktime data read as a handful of steps; so
    does an "nct" array that becomes such an array when transposed."""
    given = getattr(X, "shape", None)
    if layout == "nct":
        if isinstance(X, (list, tuple)):
            return [np.asarray(x).T if np.ndim(x) == 2 else x for x in X]
        if given is not None and len(given) == 3:
            X = np.swapaxes(np.asarray(X), 1, 2)
    shape = getattr(X, "shape", None)
    if warn and shape is not None and len(shape) == 3 and shape[1] <= 3 and shape[2] >= 10:
        import warnings

        if layout == "nct":  # (n, T, C) data said to be channels first
            hint = (
                f"X has shape {tuple(given)}, read with input_layout='nct' as {shape[1]} "
                f"timestep(s) of {shape[2]} features. If it is (n_samples, n_timesteps, "
                "n_features), pass input_layout='ntc'."
            )
        else:
            hint = (
                f"X has shape {tuple(shape)}: {shape[1]} timestep(s) of {shape[2]} features. "
                "If it is (n_samples, n_channels, n_timesteps), as aeon and sktime store "
                "series, pass input_layout='nct'."
            )
        warnings.warn(hint, UserWarning, stacklevel=3)
    return X


def check_y_present(y: Any, estimator: Any) -> None:
    if y is None:
        raise ValueError(f"{_name(estimator)} requires y to be passed, but the target y is None.")


def check_finite_array(
    a: Any, name: str, dtype: Any = np.float64, ndim: tuple = (1, 2), ensure_min_samples: int = 1
) -> np.ndarray:
    """``a`` as a finite real array of ``dtype`` whose ndim is one of ``ndim``."""
    if sp.issparse(a):
        raise TypeError(f"A sparse {name} is not supported; pass a dense array")
    if hasattr(a, "dtype"):
        _check_numeric(np.asarray(a), name)
    with _numeric(name):
        arr = check_array(
            a,
            dtype=dtype,
            ensure_2d=False,
            allow_nd=True,
            ensure_all_finite=True,
            input_name=name,
            ensure_min_samples=ensure_min_samples,
        )
    if arr.ndim not in ndim:
        raise ValueError(
            f"{name} must be {' or '.join(f'{d}-D' for d in ndim)}, got shape {arr.shape}"
        )
    return arr


def check_n_samples(n_y: int, n_x: int, name: str = "y") -> None:
    if n_y != n_x:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: X has "
            f"{n_x} sequences, {name} has {n_y}"
        )


def check_sample_weight(sample_weight: Any, n_samples: int, dtype: Any) -> Optional[np.ndarray]:
    """Finite, non-negative weights (N,) with a positive sum, or None."""
    if sample_weight is None:
        return None
    if hasattr(sample_weight, "dtype"):
        _check_numeric(np.asarray(sample_weight), "sample_weight")
    with _numeric("sample_weight"):
        sw = _check_sample_weight(
            sample_weight, np.empty((n_samples, 0)), dtype=dtype, ensure_non_negative=True
        )
    if not np.all(np.isfinite(sw)):
        raise ValueError("Input sample_weight contains NaN or infinity.")
    if not sw.sum() > 0:
        raise ValueError("sample_weight must have a positive sum; got all zeros")
    return np.ascontiguousarray(sw, dtype=dtype)


def pad_sequence_targets(y: Any, seqs: Sequences, dtype: Any, name: str = "y") -> tuple:
    """Per-step targets for X's sequences: a list of (T_i,) / (T_i, k) arrays (one per sequence,
    T_i its length) or an array (N, T) / (N, T, k). Returns ((N, T, k) padded array of
    ``dtype``, ndim of one sequence's target: 1 for (T_i,), 2 for (T_i, k))."""
    N, T = seqs.X.shape[:2]
    if (
        isinstance(y, (list, tuple))
        and _is_variable_length_list(y)
        or (isinstance(y, (list, tuple)) and seqs.kind == "list")
    ):
        check_n_samples(len(y), N, name)
        parts = []
        for i, yi in enumerate(y):
            arr = check_finite_array(yi, f"{name}[{i}]", dtype=dtype, ndim=(1, 2))
            if arr.shape[0] != seqs.lengths[i]:
                raise ValueError(
                    f"{name}[{i}] has {arr.shape[0]} steps but X[{i}] has "
                    f"{seqs.lengths[i]}; with return_sequences=True y needs one "
                    "target per step"
                )
            parts.append(arr)
        step_ndim = parts[0].ndim
        if any(p.ndim != step_ndim for p in parts):
            raise ValueError(f"All sequences in {name} must have the same ndim")
        k = 1 if step_ndim == 1 else parts[0].shape[1]
        if any((p.shape[1] if p.ndim == 2 else 1) != k for p in parts):
            raise ValueError(f"All sequences in {name} must have the same number of outputs")
        Y = np.zeros((N, T, k), dtype=dtype)
        for i, p in enumerate(parts):
            Y[i, : p.shape[0]] = p.reshape(p.shape[0], k)
        return Y, step_ndim
    arr = check_finite_array(y, name, dtype=dtype, ndim=(1, 2, 3))
    if arr.ndim == 1:
        raise ValueError(
            f"With return_sequences=True, {name} needs one target per step: shape "
            f"(n_samples, n_timesteps[, n_outputs]) = ({N}, {T}[, k]), got "
            f"{arr.shape}"
        )
    check_n_samples(arr.shape[0], N, name)
    if arr.shape[1] != T:
        raise ValueError(
            f"With return_sequences=True, {name} must have shape (n_samples, "
            f"n_timesteps[, n_outputs]) = ({N}, {T}[, k]) matching X, got "
            f"{arr.shape}"
        )
    step_ndim = arr.ndim - 1
    Y = arr.reshape(N, T, -1)
    return np.ascontiguousarray(Y, dtype=dtype), step_ndim


__all__ = [
    "InputSpec",
    "Sequences",
    "apply_layout",
    "check_sequences",
    "check_sample_weight",
    "check_finite_array",
    "check_n_samples",
    "check_y_present",
    "pad_sequence_targets",
]
