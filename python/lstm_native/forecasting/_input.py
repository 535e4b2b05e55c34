"""The forms a forecaster takes series in, and gives forecasts back in.

``y`` may be:

* a 1-D array-like or a pandas Series: one series (a Series' DatetimeIndex / PeriodIndex
  gives the frequency and the forecast's dates);
* a 2-D array ``(n_timesteps, n_channels)`` (or a wide DataFrame): one multivariate series;
* a list of 1-D arrays of different lengths: a panel of related series (one global model);
* a long DataFrame with an id, a time and a value column (``id_col``, ``time_col``,
  ``value_col``): a panel; the forecast is a long DataFrame of the same columns.

Covariates ``X`` follow ``y``: an array ``(n_timesteps, n_covariates)`` (or 1-D for one) for one
series, a list of such arrays for a list, and for a long DataFrame a long DataFrame with the id
and time columns plus one column per covariate. ``X_future`` holds the same covariates for the
``horizon`` steps after each series' end. Everything is checked here: ValueError naming the
problem for NaN, wrong lengths, too short series, unknown columns.

pandas is imported only when a pandas object is passed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


@dataclass
class Panel:
    """Series as the forecaster works on them: ``values`` a list of (n_i, C) float64 arrays,
    ``covariates`` None or a list of (n_i, K) arrays; how they were given (``kind`` "series",
    "multivariate", "list" or "frame") and what formatting the forecast back needs."""

    values: list
    kind: str
    covariates: Optional[list] = None
    ids: Optional[list] = None  # frame: the series ids in order
    indexes: list = field(default_factory=list)  # per series: a pandas index or None
    freq: Any = None  # pandas frequency, if known
    columns: Optional[list] = None  # channel names (wide DataFrame)
    name: Any = None  # a Series' name
    cov_columns: Optional[list] = None  # frame: covariate column names

    @property
    def n_channels(self) -> int:
        return self.values[0].shape[1]

    @property
    def n_covariates(self) -> int:
        return 0 if self.covariates is None else self.covariates[0].shape[1]

    @property
    def lengths(self) -> list:
        return [v.shape[0] for v in self.values]


def _is_pandas(obj: Any, name: str) -> bool:
    return type(obj).__module__.startswith("pandas") and type(obj).__name__ == name


def _finite_2d(a: Any, what: str, n_rows: Optional[int] = None) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must hold real numbers: {e}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 1-D or 2-D, got shape {arr.shape}")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{what} has {arr.shape[0]} rows, expected {n_rows}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or infinity (fill or drop missing values first)")
    return np.ascontiguousarray(arr)


def _freq_of(index: Any) -> Any:
    """The index's frequency as a pandas offset, inferred from the dates if not set, or None.

    pandas 3 warns that ``infer_freq`` will return an offset instead of a string; either
    form goes through ``to_offset`` so that both versions give the same object.
    """
    import pandas as pd

    freq = getattr(index, "freq", None)
    if freq is None and len(index) >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                freq = pd.infer_freq(index)
            except (TypeError, ValueError):
                freq = None
    if freq is None:
        return None
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except (TypeError, ValueError):
        return None


def read_y(
    y: Any, X: Any = None, *, id_col: str = "unique_id", time_col: str = "ds", value_col: str = "y"
) -> Panel:
    """``y`` and ``X`` as a Panel (see the module docstring)."""
    if y is None:
        raise ValueError(
            "y is required: a 1-D series, a 2-D (n_timesteps, n_channels) array, "
            "a list of 1-D series or a long DataFrame"
        )
    if _is_pandas(y, "DataFrame") and {id_col, time_col, value_col} <= set(y.columns):
        return _read_frame(y, X, id_col, time_col, value_col)
    if isinstance(y, (list, tuple)) and len(y) and not np.isscalar(y[0]):
        values = [_finite_2d(s, f"y[{i}]") for i, s in enumerate(y)]
        if len({v.shape[1] for v in values}) != 1:
            raise ValueError("all series of a list y must have the same number of channels")
        covs = None
        if X is not None:
            if not isinstance(X, (list, tuple)) or len(X) != len(values):
                raise ValueError(
                    f"X must be a list of {len(values)} covariate arrays, one per series of y"
                )
            covs = [_finite_2d(x, f"X[{i}]", v.shape[0]) for i, (x, v) in enumerate(zip(X, values))]
            if len({c.shape[1] for c in covs}) != 1:
                raise ValueError("all covariate arrays of X must have the same columns")
        return Panel(values, "list", covs, indexes=[None] * len(values))
    index, freq, columns, name = None, None, None, None
    if _is_pandas(y, "Series") or _is_pandas(y, "DataFrame"):
        index = y.index
        freq = (
            _freq_of(index)
            if hasattr(index, "inferred_type") and index.inferred_type in ("datetime64", "period")
            else None
        )
        if _is_pandas(y, "DataFrame"):
            columns = list(y.columns)
        else:
            name = y.name
        y = y.to_numpy()
    arr = np.asarray(y) if not isinstance(y, np.ndarray) else y
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"y must be 1-D (one series) or 2-D (n_timesteps, n_channels), got shape {arr.shape}"
        )
    kind = "series" if arr.ndim == 1 else "multivariate"
    values = [_finite_2d(arr, "y")]
    covs = None
    if X is not None:
        if _is_pandas(X, "DataFrame") or _is_pandas(X, "Series"):
            X = X.to_numpy()
        covs = [_finite_2d(X, "X", values[0].shape[0])]
    return Panel(values, kind, covs, indexes=[index], freq=freq, columns=columns, name=name)


def _read_frame(df: Any, X: Any, id_col: str, time_col: str, value_col: str) -> Panel:
    import pandas as pd

    df = df.sort_values([id_col, time_col], kind="stable")
    ids, values, indexes = [], [], []
    for key, part in df.groupby(id_col, sort=False):
        ids.append(key)
        values.append(_finite_2d(part[value_col].to_numpy(), f"y of series {key!r}"))
        indexes.append(pd.Index(part[time_col].to_numpy()))
    freq = None
    if indexes and pd.api.types.is_datetime64_any_dtype(indexes[0]):
        longest = max(indexes, key=len)
        freq = _freq_of(pd.DatetimeIndex(longest))
    covs, cov_columns = None, None
    if X is not None:
        if not _is_pandas(X, "DataFrame") or not {id_col, time_col} <= set(X.columns):
            raise ValueError(
                f"X must be a long DataFrame with the columns {id_col!r} and "
                f"{time_col!r} and one column per covariate"
            )
        cov_columns = [c for c in X.columns if c not in (id_col, time_col)]
        if not cov_columns:
            raise ValueError("X has no covariate columns")
        merged = df[[id_col, time_col]].merge(X, on=[id_col, time_col], how="left")
        covs = []
        for key, part in merged.groupby(id_col, sort=False):
            covs.append(
                _finite_2d(
                    part[cov_columns].to_numpy(dtype=np.float64),
                    f"X of series {key!r} (every time of y needs a row)",
                )
            )
    return Panel(
        values, "frame", covs, ids=ids, indexes=indexes, freq=freq, cov_columns=cov_columns
    )


def read_future(
    panel: Panel, X_future: Any, horizon: int, id_col: str, time_col: str
) -> Optional[list]:
    """X_future as a list of (horizon, K) arrays, one per series (None without covariates)."""
    K = panel.n_covariates
    if K == 0:
        if X_future is not None:
            raise ValueError("X_future was given, but the forecaster was fitted without X")
        return None
    if X_future is None:
        raise ValueError(
            f"the forecaster was fitted with {K} covariates: predict needs "
            f"X_future with their values for the next {horizon} steps"
        )
    n = len(panel.values)
    if panel.kind == "frame":
        if not _is_pandas(X_future, "DataFrame"):
            raise ValueError("X_future must be a long DataFrame like X")
        out = []
        fut = X_future.sort_values([id_col, time_col], kind="stable")
        groups = dict(list(fut.groupby(id_col, sort=False)))
        for key in panel.ids:
            part = groups.get(key)
            if part is None or len(part) < horizon:
                raise ValueError(f"X_future needs {horizon} rows for series {key!r}")
            out.append(
                _finite_2d(
                    part[panel.cov_columns].to_numpy(dtype=np.float64)[:horizon],
                    f"X_future of series {key!r}",
                )
            )
        return out
    if panel.kind == "list":
        if not isinstance(X_future, (list, tuple)) or len(X_future) != n:
            raise ValueError(f"X_future must be a list of {n} arrays (horizon, n_covariates)")
        items = list(X_future)
    else:
        if _is_pandas(X_future, "DataFrame") or _is_pandas(X_future, "Series"):
            X_future = X_future.to_numpy()
        items = [X_future]
    out = []
    for i, x in enumerate(items):
        arr = _finite_2d(x, "X_future" if len(items) == 1 else f"X_future[{i}]")
        if arr.shape[0] < horizon or arr.shape[1] != K:
            raise ValueError(f"X_future must have shape ({horizon}, {K}), got {arr.shape}")
        out.append(arr[:horizon])
    return out


def future_index(index: Any, freq: Any, horizon: int) -> Any:
    """The ``horizon`` time stamps after a pandas index (None when they cannot be told)."""
    if index is None or len(index) == 0:
        return None
    import pandas as pd

    last = index[-1]
    if isinstance(index, pd.PeriodIndex):
        return pd.period_range(last + 1, periods=horizon, freq=index.freq)
    if freq is not None and isinstance(last, (pd.Timestamp, np.datetime64)):
        return pd.date_range(pd.Timestamp(last), periods=horizon + 1, freq=freq)[1:]
    if pd.api.types.is_integer_dtype(index):
        step = index[-1] - index[-2] if len(index) > 1 else 1
        return pd.Index(index[-1] + step * np.arange(1, horizon + 1))
    return None


def format_forecast(
    panel: Panel,
    preds: list,
    horizon: int,
    *,
    value_col: str,
    id_col: str,
    time_col: str,
    quantiles: Optional[list] = None,
) -> Any:
    """Forecasts (a list of (horizon, C[, Q]) arrays, one per series) in the form of ``y``."""
    squeeze = panel.kind in ("series", "list", "frame")  # univariate: drop the channel axis
    outs = [p[:, 0] if squeeze else p for p in preds]
    if panel.kind == "frame":
        import pandas as pd

        frames = []
        for key, idx, p in zip(panel.ids, panel.indexes, outs):
            times = future_index(idx, panel.freq, horizon)
            part = {
                id_col: [key] * horizon,
                time_col: times if times is not None else np.arange(1, horizon + 1),
            }
            if quantiles is None:
                part[value_col] = p
            else:
                for j, q in enumerate(quantiles):
                    part[f"{value_col}_q{q:g}"] = p[:, j]
            frames.append(pd.DataFrame(part))
        return pd.concat(frames, ignore_index=True)
    if panel.kind == "list":
        return outs
    out = outs[0]
    index = panel.indexes[0]
    if index is not None:
        import pandas as pd

        times = future_index(index, panel.freq, horizon)
        if times is not None:
            if out.ndim == 1:
                return pd.Series(out, index=times, name=panel.name)
            if quantiles is None and panel.columns is not None:
                return pd.DataFrame(out, index=times, columns=panel.columns)
    return out


__all__ = ["Panel", "format_forecast", "future_index", "read_future", "read_y"]
