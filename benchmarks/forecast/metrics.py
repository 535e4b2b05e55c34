"""Accuracy measures of the forecasting benchmark, in plain NumPy (M4's definitions).

Kept apart from ``lstm_native.forecasting`` on purpose: the scores of the statistical baselines
must not depend on the package under test, and the benchmark's definitions are pinned here and
checked against hand computations in ``tests/test_forecast_bench.py``.

* ``mase``: mean absolute error of the forecast divided by the in-sample mean absolute error of
  the seasonal naive forecast on the training part (lag = season length; lag 1 for yearly and
  other non-seasonal data). Below 1: better than the in-sample seasonal naive.
* ``smape``: M4's symmetric MAPE in percent, ``200/h * sum |y - f| / (|y| + |f|)`` (0..200).
* ``rmse``: root mean squared error, in the units of the series.
* ``coverage``: the fraction of held-out values inside [lower, upper] (bounds included).
"""

from __future__ import annotations

import numpy as np


def _pair(y_true, y_pred) -> tuple:
    """Both as 1-D float arrays of one length (a clear error beats silent broadcasting)."""
    a = np.asarray(y_true, dtype=np.float64).ravel()
    b = np.asarray(y_pred, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two non-empty arrays of one length, got {a.shape} and {b.shape}")
    return a, b


def naive_scale(y_train, season: int = 1) -> float:
    """In-sample MAE of the seasonal naive forecast: mean |y[t] - y[t - lag]| over the training
    part, lag = ``season`` (1 when ``season`` <= 1)."""
    y = np.asarray(y_train, dtype=np.float64).ravel()
    lag = max(int(season), 1)
    if y.size <= lag:
        raise ValueError(f"the training part ({y.size} points) must be longer than the lag {lag}")
    return float(np.mean(np.abs(y[lag:] - y[:-lag])))


def mase(y_train, y_true, y_pred, season: int = 1) -> float:
    """Mean absolute scaled error (M4): MAE(y_true, y_pred) / naive_scale(y_train, season).

    A constant training part has scale 0: the score is then 0 for an exact forecast and inf
    otherwise (the ratio's limit), never a division warning.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    scale = naive_scale(y_train, season)
    mae = float(np.mean(np.abs(y_true - y_pred)))
    if scale == 0.0:
        return 0.0 if mae == 0.0 else float("inf")
    return mae / scale


def smape(y_true, y_pred) -> float:
    """M4's symmetric MAPE in percent; a term with y = f = 0 counts 0 (M4's series are positive,
    the catalogue's uschange and elnino series are not)."""
    y_true, y_pred = _pair(y_true, y_pred)
    num = 2.0 * np.abs(y_true - y_pred)
    den = np.abs(y_true) + np.abs(y_pred)
    terms = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(100.0 * np.mean(terms))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def coverage(y_true, lower, upper) -> float:
    """Fraction of ``y_true`` inside [lower, upper], bounds included (for an 80 % interval the
    ideal is 0.8)."""
    y_true, lower = _pair(y_true, lower)
    _, upper = _pair(y_true, upper)
    return float(np.mean((y_true >= lower) & (y_true <= upper)))


def seasonal_naive(y_train, horizon: int, season: int = 1) -> np.ndarray:
    """The seasonal naive forecast: the last full season repeated (the last value when
    ``season`` <= 1 or the training part is shorter than a season). The benchmark also uses it
    as the fallback forecast of a contender that fails on a series."""
    y = np.asarray(y_train, dtype=np.float64).ravel()
    lag = season if season > 1 and y.size >= season else 1
    return np.tile(y[-lag:], horizon // lag + 1)[:horizon].copy()


__all__ = ["coverage", "mase", "naive_scale", "rmse", "seasonal_naive", "smape"]
