"""The forms a forecaster takes series in, and gives forecasts back in.

``y`` may be:

* a 1-D array-like or a pandas Series: one series (a Series' DatetimeIndex / PeriodIndex
  gives the frequency and the forecast's dates);
* a 2-D array ``(n_timesteps, n_channels)`` (or a wide DataFrame): one multivariate series;
* a list of 1-D arrays of different lengths: a panel of related series (one global model);
* a long DataFrame with an id, a time and a value column (``id_col``, ``time_col``,
  ``value_col``): a panel; the forecast is a long DataFrame of the same columns.

Times are never guessed: a dated Series' index must be increasing without repeats, and a long
DataFrame must have one row per (id, time), no missing ids or times, and each series' dates
consecutive at the panel's frequency (or at one of its own: month ends among month starts);
each series' forecast continues from its own last date at its own anchor.

Covariates ``X`` follow ``y``: an array ``(n_timesteps, n_covariates)`` (or 1-D for one) for one
series (a DataFrame's columns are remembered: ``X_future`` is then read by those names, and a
dated ``X`` must have ``y``'s dates), a list of such arrays for a list, and for a long DataFrame
a long DataFrame with the id and time columns plus one column per covariate (one row per time
of ``y``). ``X_future`` holds the same covariates for the ``horizon`` steps after each series'
end; a long one is read by date (it may hold the history too). Everything is checked here:
ValueError naming the problem for NaN, wrong lengths, too short series, unknown columns,
duplicate, missing or out-of-order times.

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
    if _is_pandas(y, "DataFrame") and {time_col, value_col} <= set(y.columns):
        raise ValueError(
            f"y has the columns {time_col!r} and {value_col!r} of a long DataFrame but no id "
            f"column {id_col!r}: add one (y.assign({id_col}=0) for one series), or pass one "
            f"series as y.set_index({time_col!r})[{value_col!r}]"
        )
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
    index, freq, columns, name, cov_columns = None, None, None, None, None
    if _is_pandas(y, "Series") or _is_pandas(y, "DataFrame"):
        index = y.index
        freq = None
        if _is_time_index(index):
            _check_times(index, "y's index", "y.sort_index()")
            freq = _freq_of(index)
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
            if _is_time_index(X.index) and not (index is not None and X.index.equals(index)):
                raise ValueError(
                    "X's time index is not y's: X must hold the covariates at y's times, "
                    "in the same order"
                )
            if _is_pandas(X, "DataFrame"):  # predict's X_future is then read by these names
                cov_columns = list(X.columns)
            X = X.to_numpy()
        covs = [_finite_2d(X, "X", values[0].shape[0])]
    return Panel(
        values,
        kind,
        covs,
        indexes=[index],
        freq=freq,
        columns=columns,
        name=name,
        cov_columns=cov_columns,
    )


def _is_time_index(index: Any) -> bool:
    return getattr(index, "inferred_type", None) in ("datetime64", "period") or (
        type(index).__name__ in ("DatetimeIndex", "PeriodIndex")
    )


def _check_times(times: Any, what: str, fix: str) -> None:
    """ValueError unless ``times`` (pandas datetime or period values) are all known,
    strictly increasing: a forecast continues from the last one."""
    import pandas as pd

    times = pd.Index(times)
    if times.hasnans:
        raise ValueError(f"{what} has missing times (NaT)")
    if not times.is_monotonic_increasing:
        raise ValueError(f"{what} is not in increasing time order: sort it first ({fix})")
    if not times.is_unique:
        dup = times[times.duplicated()][0]
        raise ValueError(f"{what} has the time {dup} more than once")


def _read_frame(df: Any, X: Any, id_col: str, time_col: str, value_col: str) -> Panel:
    import pandas as pd

    if df[id_col].isna().any():
        raise ValueError(f"y has rows without a series id (NaN in {id_col!r})")
    if df[time_col].isna().any():
        raise ValueError(f"y has rows without a time (NaT or NaN in {time_col!r})")
    _no_duplicates(df, id_col, time_col, "y")
    df = df.sort_values([id_col, time_col], kind="stable")
    ids, values, indexes = [], [], []
    for key, part in df.groupby(id_col, sort=False, observed=True):
        ids.append(key)
        values.append(_finite_2d(part[value_col].to_numpy(), f"y of series {key!r}"))
        indexes.append(pd.Index(part[time_col].to_numpy()))
    freq = None
    if indexes and pd.api.types.is_datetime64_any_dtype(indexes[0]):
        # the frequency of the longest series whose dates are regular (a gap in the longest
        # one must not hide the frequency the others check it against)
        for idx in sorted(indexes, key=len, reverse=True)[:20]:
            freq = _freq_of(pd.DatetimeIndex(idx))
            if freq is not None:
                break
        if freq is not None:
            for key, idx in zip(ids, indexes):
                _check_regular(idx, freq, key)
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
        _no_duplicates(X, id_col, time_col, "X")
        merged = df[[id_col, time_col]].merge(X, on=[id_col, time_col], how="left")
        covs = []
        groups = merged.groupby(id_col, sort=False, observed=True)
        for (key, part), v in zip(groups, values):
            covs.append(
                _finite_2d(
                    part[cov_columns],
                    f"X of series {key!r} (every time of y needs a row)",
                    len(v),
                )
            )
    return Panel(
        values, "frame", covs, ids=ids, indexes=indexes, freq=freq, cov_columns=cov_columns
    )


def _no_duplicates(df: Any, id_col: str, time_col: str, what: str) -> None:
    dup = df.duplicated([id_col, time_col])
    if dup.any():
        row = df[dup].iloc[0]
        raise ValueError(
            f"{what} has more than one row for series {row[id_col]!r} at {row[time_col]}"
        )


def _check_regular(idx: Any, freq: Any, key: Any) -> None:
    """ValueError if the dates ``idx`` of series ``key`` have a gap: they must follow one
    another at the panel's frequency ``freq``, or at one of their own (another anchor)."""
    import pandas as pd

    if len(idx) < 2:
        return
    first = idx[0]
    if freq.is_on_offset(first):
        expected = pd.date_range(first, periods=len(idx), freq=freq)
        if expected.equals(pd.DatetimeIndex(idx)):
            return
    elif len(idx) < 3:
        return
    if len(idx) >= 3 and _freq_of(pd.DatetimeIndex(idx)) is not None:
        return  # regular at a frequency of its own (month ends among month starts)
    times = pd.DatetimeIndex(idx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (pandas' PerformanceWarning for some offsets)
        after = times[:-1] + freq
    gap = int(np.argmax(np.asarray(after != times[1:])))
    raise ValueError(
        f"the times of series {key!r} are not regular ({freq.freqstr}): {idx[gap]} is "
        f"followed by {idx[gap + 1]}; fill the missing times (the forecaster needs "
        f"consecutive observations)"
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
        if not _is_pandas(X_future, "DataFrame") or not {id_col, time_col} <= set(X_future.columns):
            raise ValueError(
                f"X_future must be a long DataFrame like X (columns {id_col!r}, {time_col!r} "
                f"and the covariates)"
            )
        _no_duplicates(X_future, id_col, time_col, "X_future")
        fut = X_future.sort_values([id_col, time_col], kind="stable")
        groups = dict(list(fut.groupby(id_col, sort=False, observed=True)))
        out = []
        for key, idx in zip(panel.ids, panel.indexes):
            part = groups.get(key)
            if part is not None:  # the rows after the series' end (X_future may hold history)
                part = part[part[time_col] > idx[-1]]
            if part is None or len(part) < horizon:
                raise ValueError(
                    f"X_future needs {horizon} rows after the last time of series {key!r}"
                )
            part = part.iloc[:horizon]
            times = future_index(idx, panel.freq, horizon)
            if times is not None and not pd_equal(part[time_col], times):
                raise ValueError(
                    f"X_future of series {key!r} must hold the times {times[0]} .. "
                    f"{times[-1]}; it has {part[time_col].iloc[0]} .. {part[time_col].iloc[-1]}"
                )
            out.append(_finite_2d(_covariate_columns(part, panel), f"X_future of series {key!r}"))
        return out
    if panel.kind == "list":
        if not isinstance(X_future, (list, tuple)) or len(X_future) != n:
            raise ValueError(f"X_future must be a list of {n} arrays (horizon, n_covariates)")
        items = list(X_future)
    else:
        if _is_pandas(X_future, "DataFrame") and panel.cov_columns is not None:
            X_future = _covariate_columns(X_future, panel)
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


def _covariate_columns(frame: Any, panel: Panel) -> Any:
    """The fitted covariates' columns of a DataFrame ``frame``, in fit's order."""
    missing = [c for c in panel.cov_columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"X_future has no column {', '.join(map(repr, missing))} (the covariates of fit: "
            f"{panel.cov_columns})"
        )
    return frame[panel.cov_columns]


def pd_equal(column: Any, times: Any) -> bool:
    """Do a DataFrame column's time values equal ``times`` (a pandas index)?"""
    try:
        return bool(np.array_equal(column.to_numpy(), np.asarray(times)))
    except (TypeError, ValueError):
        return False


def requested_levels(quantiles: Any, levels: list) -> tuple:
    """(levels, their columns among the trained ``levels``) of predict's ``quantiles`` (None:
    the median alone); ValueError naming the problem for anything but distinct trained
    levels in (0, 1) (matched to 1e-6: a float32 0.1 is the level 0.1)."""
    if quantiles is None:
        wanted = [0.5]
    else:
        if isinstance(quantiles, (str, bytes)) or np.ndim(quantiles) != 1:
            raise ValueError(
                f"quantiles must be a sequence of levels in (0, 1), e.g. [0.1, 0.9]; "
                f"got {quantiles!r}"
            )
        try:
            wanted = [float(q) for q in quantiles]
        except (TypeError, ValueError):
            raise ValueError(f"quantiles must be numbers in (0, 1), got {quantiles!r}") from None
        if not wanted:
            raise ValueError("quantiles is empty: give at least one level")
        if any(not 0.0 < q < 1.0 for q in wanted):
            raise ValueError(f"quantiles must lie in (0, 1), got {wanted}")
    cols = [min(range(len(levels)), key=lambda j: abs(levels[j] - q)) for q in wanted]
    missing = [f"{q:.6g}" for q, j in zip(wanted, cols) if abs(q - levels[j]) > 1e-6]
    if missing and len(levels) == 1:
        raise ValueError(
            f"quantiles {', '.join(missing)} were not trained: this forecaster was fitted for "
            "the median only; quantiles and intervals need loss='quantile' (the default)"
        )
    if missing:
        raise ValueError(
            f"quantiles {', '.join(missing)} were not trained; this forecaster has "
            f"{', '.join(f'{q:g}' for q in levels)} (set quantiles=... before fit)"
        )
    if len(set(cols)) != len(cols):
        raise ValueError(f"quantiles {wanted} name a level more than once")
    return [levels[j] for j in cols], cols


def warn_not_finite(preds: list) -> None:
    """A RuntimeWarning when a forecast overflowed (NaN or infinity in it)."""
    bad = [i for i, p in enumerate(preds) if not np.isfinite(p).all()]
    if bad:
        warnings.warn(
            f"the forecast of {len(bad)} series (the first: number {bad[0]}) is not finite: it "
            "overflowed, e.g. an exponential trend carried over a long horizon",
            RuntimeWarning,
            stacklevel=4,  # the user's call of predict
        )


def interval_levels(coverage: Any) -> tuple:
    """The quantile levels (lower, upper) of a central interval of ``coverage``."""
    if isinstance(coverage, bool) or not isinstance(coverage, (int, float, np.number)):
        raise ValueError(f"coverage must be a number in (0, 1), got {coverage!r}")
    if not 0.0 < float(coverage) < 1.0:
        raise ValueError(f"coverage must lie in (0, 1), got {coverage!r}")
    return (1 - float(coverage)) / 2, (1 + float(coverage)) / 2


def future_index(index: Any, freq: Any, horizon: int) -> Any:
    """The ``horizon`` time stamps after a pandas index (None when they cannot be told)."""
    if index is None or len(index) == 0:
        return None
    import pandas as pd

    last = index[-1]
    if isinstance(index, pd.PeriodIndex):
        return pd.period_range(last + 1, periods=horizon, freq=index.freq)
    if isinstance(last, (pd.Timestamp, np.datetime64)):
        last = pd.Timestamp(last)
        if (freq is None or not freq.is_on_offset(last)) and len(index) >= 3:
            # a series of a panel with another anchor than the longest (month ends among
            # month starts): its own frequency
            freq = _freq_of(pd.DatetimeIndex(index)) or freq
        if freq is not None:
            # the step after the last time, then the frequency's steps (date_range from an
            # off-anchor start would first roll forward to the anchor and skip a step)
            return pd.date_range(last + freq, periods=horizon, freq=freq)
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
    # univariate: drop the channel axis (a list of multivariate series keeps it)
    squeeze = panel.kind in ("series", "frame") or (panel.kind == "list" and panel.n_channels == 1)
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
            if quantiles is not None and panel.kind == "series":  # a column per level
                prefix = "" if panel.name is None else f"{panel.name}_"
                return pd.DataFrame(
                    out, index=times, columns=[f"{prefix}q{q:g}" for q in quantiles]
                )
    return out


__all__ = [
    "Panel",
    "format_forecast",
    "future_index",
    "interval_levels",
    "warn_not_finite",
    "read_future",
    "read_y",
    "requested_levels",
]
