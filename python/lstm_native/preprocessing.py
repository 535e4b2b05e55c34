"""Preprocessing for sequence data.

:class:`SequenceScaler` standardizes every feature of sequence data across samples *and*
timesteps, which :class:`sklearn.preprocessing.StandardScaler` cannot do (it rejects 3-D input,
and on 2-D univariate sequences it would scale every timestep separately)::

    from sklearn.pipeline import make_pipeline
    from lstm_native import LSTMRegressor, SequenceScaler

    model = make_pipeline(SequenceScaler(), LSTMRegressor(hidden_size=16))
    model.fit(X, y)            # X (n_samples, n_timesteps, n_features)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from ._validation import Sequences, check_sequences


def _float_dtype(X: Any) -> np.dtype:
    """float32 stays float32; everything else becomes float64."""
    probe = X
    if isinstance(X, (list, tuple)) and len(X) and hasattr(X[0], "dtype"):
        probe = X[0]
    dt = getattr(probe, "dtype", None)
    try:
        if dt is not None and np.dtype(dt) == np.float32:
            return np.dtype(np.float32)
    except TypeError:  # e.g. pandas extension dtypes
        pass
    return np.dtype(np.float64)


def _unpack(Z: np.ndarray, seqs: Sequences, X: Any) -> Any:
    """Output in the input's form: 2-D for 2-D input, a list for a list of sequences."""
    if seqs.kind == "2d":
        return Z[:, :, 0]
    if seqs.kind == "list":
        out = []
        for i, x in enumerate(X):
            zi = Z[i, : seqs.lengths[i]]
            out.append(zi[:, 0].copy() if np.ndim(x) == 1 else zi.copy())
        return out
    return Z


# (scikit-learn's automatic output wrapping is off: it makes a table of every output and fails
# on 3-D arrays and lists; set_output and the global transform_output apply to 2-D output here)
class SequenceScaler(
    OneToOneFeatureMixin, TransformerMixin, BaseEstimator, auto_wrap_output_keys=None
):
    """Standardize each feature of sequences over all samples and timesteps.

    ``z = (x - mean_) / scale_`` per feature, where the statistics are taken over every
    (sample, timestep) observation; padding of variable-length sequences is ignored.

    Input forms (as the estimators): 3-D ``(n_samples, n_timesteps, n_features)``; 2-D
    ``(n_samples, n_timesteps)`` = univariate sequences, i.e. *one* feature whose statistics
    pool all timesteps (``n_features_in_`` is then ``n_timesteps``, scikit-learn's rule for 2-D
    input); a list of ``(T_i, n_features)`` or ``(T_i,)`` arrays of different lengths.
    The output has the input's form. float32 input stays float32, other input becomes float64.
    ``set_output(transform="pandas" | "polars")`` (or scikit-learn's global
    ``transform_output``) gives 2-D output as a DataFrame; 3-D arrays and lists of sequences,
    which have no table form, are returned as they are.

    Parameters
    ----------
    with_mean : bool, default=True
        Center the data.
    with_std : bool, default=True
        Scale to unit variance (a constant feature keeps scale 1).

    Attributes
    ----------
    mean_ : ndarray (n_step_features,), per-feature mean (0 where ``with_mean=False``).
    var_ : ndarray (n_step_features,), per-feature variance.
    scale_ : ndarray (n_step_features,) or None (``with_std=False``).
    n_samples_seen_ : int, observations (sample-timesteps) seen.
    n_features_in_ : int, features per step, or timesteps for 2-D input.
    """

    _parameter_constraints: dict = {"with_mean": ["boolean"], "with_std": ["boolean"]}

    def __init__(self, *, with_mean: bool = True, with_std: bool = True) -> None:
        self.with_mean = with_mean
        self.with_std = with_std

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _reset(self) -> None:
        for attr in ("mean_", "var_", "scale_", "n_samples_seen_", "_m2", "_mean", "_input_spec"):
            self.__dict__.pop(attr, None)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> SequenceScaler:
        """Compute the per-feature mean and standard deviation of X."""
        self._reset()
        return self._partial_fit(X, reset=True)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any = None) -> SequenceScaler:
        """Update the statistics with a further batch of sequences (streaming)."""
        return self._partial_fit(X, reset=not hasattr(self, "n_samples_seen_"))

    def _partial_fit(self, X: Any, reset: bool) -> SequenceScaler:
        seqs = check_sequences(
            X,
            dtype=_float_dtype(X),
            estimator=self,
            reset=reset,
            spec=None if reset else self._input_spec,
        )
        if reset:
            spec = seqs.spec
            self._input_spec = spec
            self.n_features_in_ = spec.n_features_in
            if spec.feature_names_in is not None:
                self.feature_names_in_ = spec.feature_names_in
            else:
                self.__dict__.pop("feature_names_in_", None)
        T = seqs.X.shape[1]
        mask = np.arange(T)[None, :] < seqs.lengths[:, None]
        obs = np.asarray(seqs.X[mask], dtype=np.float64)  # (M, D)
        n_new = obs.shape[0]
        mean_new = obs.mean(axis=0)
        m2_new = ((obs - mean_new) ** 2).sum(axis=0)
        if reset:
            n, mean, m2 = n_new, mean_new, m2_new
        else:  # Chan, Golub & LeVeque's pairwise update
            n_old, mean_old, m2_old = self.n_samples_seen_, self._mean, self._m2
            n = n_old + n_new
            delta = mean_new - mean_old
            mean = mean_old + delta * (n_new / n)
            m2 = m2_old + m2_new + delta**2 * (n_old * n_new / n)
        self.n_samples_seen_ = int(n)
        self._mean, self._m2 = mean, m2
        self.var_ = m2 / n
        self.mean_ = mean if self.with_mean else np.zeros_like(mean)
        if self.with_std:
            scale = np.sqrt(self.var_)
            # constant (up to rounding) features keep scale 1, as StandardScaler
            tiny = self.var_ <= 10 * np.finfo(np.float64).eps * mean**2
            scale[tiny | (scale == 0)] = 1.0
            self.scale_ = scale
        else:
            self.scale_ = None
        return self

    def transform(self, X: Any) -> Any:
        """Standardize X; returns the input's form (2-D, 3-D or a list)."""
        check_is_fitted(self)
        seqs = check_sequences(
            X, dtype=_float_dtype(X), estimator=self, reset=False, spec=self._input_spec
        )
        Z = seqs.X  # a fresh or converted array: check_sequences copies unless X was one already
        if Z is X or (isinstance(X, np.ndarray) and np.shares_memory(Z, X)):
            Z = Z.copy()
        if self.with_mean:
            Z -= self.mean_.astype(Z.dtype)
        if self.scale_ is not None:
            Z /= self.scale_.astype(Z.dtype)
        return self._table(_unpack(Z, seqs, X), X)

    def set_output(self, *, transform: Any = None) -> SequenceScaler:
        """The container of 2-D output: "default" (NumPy), "pandas", "polars", or None (leave
        as is); 3-D and list output keeps its form (the class docstring)."""
        if transform is not None:
            if transform not in ("default", "pandas", "polars"):
                raise ValueError(
                    f"transform must be 'default', 'pandas', 'polars' or None, got {transform!r}"
                )
            # (the attribute scikit-learn's clone copies)
            self._sklearn_output_config = {"transform": transform}
        return self

    def _table(self, out: Any, X: Any) -> Any:
        """2-D ``out`` in the configured container (set_output, else the global setting)."""
        if not (isinstance(out, np.ndarray) and out.ndim == 2):
            return out
        own = getattr(self, "_sklearn_output_config", {}).get("transform")
        kind = own or get_config()["transform_output"]
        if kind == "pandas":
            import pandas as pd

            index = X.index if hasattr(X, "index") and len(X.index) == len(out) else None
            return pd.DataFrame(out, index=index, columns=self.get_feature_names_out())
        if kind == "polars":
            import polars as pl

            return pl.DataFrame(out, schema=list(self.get_feature_names_out()), orient="row")
        return out

    def inverse_transform(self, X: Any) -> Any:
        """Undo :meth:`transform`; returns the input's form."""
        check_is_fitted(self)
        seqs = check_sequences(
            X, dtype=_float_dtype(X), estimator=self, reset=False, spec=self._input_spec
        )
        Z = seqs.X
        if Z is X or (isinstance(X, np.ndarray) and np.shares_memory(Z, X)):
            Z = Z.copy()
        if self.scale_ is not None:
            Z *= self.scale_.astype(Z.dtype)
        if self.with_mean:
            Z += self.mean_.astype(Z.dtype)
        return _unpack(Z, seqs, X)


__all__ = ["SequenceScaler"]
