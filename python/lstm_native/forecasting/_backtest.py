"""Forecast accuracy: the M4 competition's metrics and expanding-window backtests.

* ``mase(y_train, y_true, y_pred, m)``: mean absolute error over the in-sample mean absolute
  error of the seasonal naive forecast (lag m; lag 1 when m == 1 or the series is shorter
  than m + 1), as M4 defines it;
* ``smape(y_true, y_pred)``: 200 / h * sum |y - f| / (|y| + |f|), in percent (0/0 counts 0);
* ``rmse``; ``coverage(y_true, lower, upper)``: the share of values inside [lower, upper].

``backtest(forecaster, y, horizon, n_windows)`` refits a clone of the forecaster at each of
``n_windows`` origins (the last one ``horizon`` steps before the end, the others ``step``
steps apart before it; each fit sees only the data before its origin) and scores the next
``horizon`` values.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._input import interval_levels, requested_levels


def _arrays(*arrays: Any) -> list:
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    if len({a.shape for a in out}) != 1:
        raise ValueError(f"shapes differ: {[a.shape for a in out]}")
    return out


def mase(y_train: Any, y_true: Any, y_pred: Any, m: int = 1) -> float:
    y_train = np.asarray(y_train, dtype=np.float64)
    y_true, y_pred = _arrays(y_true, y_pred)
    lag = m if m > 1 and len(y_train) > m else 1
    if len(y_train) <= lag:
        raise ValueError("y_train is too short for the seasonal naive scale")
    scale = np.mean(np.abs(y_train[lag:] - y_train[:-lag]))
    if scale == 0:
        return float("inf") if np.any(y_true != y_pred) else 0.0
    return float(np.mean(np.abs(y_true - y_pred)) / scale)


def smape(y_true: Any, y_pred: Any) -> float:
    y_true, y_pred = _arrays(y_true, y_pred)
    denom = np.abs(y_true) + np.abs(y_pred)
    terms = np.divide(
        2.0 * np.abs(y_true - y_pred), denom, out=np.zeros_like(denom), where=denom > 0
    )
    return float(100.0 * np.mean(terms))


def rmse(y_true: Any, y_pred: Any) -> float:
    y_true, y_pred = _arrays(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def coverage(y_true: Any, lower: Any, upper: Any) -> float:
    y_true, lower, upper = _arrays(y_true, lower, upper)
    return float(np.mean((y_true >= lower) & (y_true <= upper)))


def backtest(
    forecaster: Any,
    y: Any,
    horizon: int,
    n_windows: int = 3,
    step: Optional[int] = None,
    m: Optional[int] = None,
    coverage_level: Optional[float] = 0.8,
) -> dict:
    """Scores of ``forecaster`` (a clone refitted per origin) on a 1-D series ``y``.

    Returns {"origins": [...], "mase": [...], "smape": [...], "rmse": [...], "coverage": [...]
    (when the forecaster has ``predict_interval`` and ``coverage_level``), "forecasts": [...]}
    with one entry per origin, and the means under "mean_mase", "mean_smape", ...
    ``m``: the season length for MASE (the forecaster's ``season_length_`` when None).
    """
    from sklearn.base import clone

    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError("backtest takes one 1-D series")
    for name, v in (("horizon", horizon), ("n_windows", n_windows)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if step is None:
        step = horizon
    elif isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"step must be a positive integer, got {step!r}")
    if coverage_level is not None and not 0.0 < float(coverage_level) < 1.0:
        raise ValueError(f"coverage_level must lie in (0, 1), got {coverage_level!r}")
    origins = [len(y) - horizon - k * step for k in range(n_windows)][::-1]
    if origins[0] < 3:
        raise ValueError(
            f"y has {len(y)} values: too few for {n_windows} windows of "
            f"{horizon} steps, {step} apart"
        )
    out: dict = {"origins": origins, "mase": [], "smape": [], "rmse": [], "forecasts": []}
    for t in origins:
        est = clone(forecaster).fit(y[:t])
        f = np.asarray(est.predict(horizon), dtype=np.float64)
        truth = y[t : t + horizon]
        season = m if m is not None else getattr(est, "season_length_", 1)
        out["mase"].append(mase(y[:t], truth, f, season))
        out["smape"].append(smape(truth, f))
        out["rmse"].append(rmse(truth, f))
        out["forecasts"].append(f)
        if coverage_level is not None and hasattr(est, "predict_interval"):
            if not _has_interval(est, coverage_level):  # e.g. loss="squared_error": no levels
                continue
            lo, hi = est.predict_interval(horizon, coverage=coverage_level)
            out.setdefault("coverage", []).append(coverage(truth, lo, hi))
    for key in ("mase", "smape", "rmse", "coverage"):
        if key in out:
            out["mean_" + key] = float(np.mean(out[key]))
    return out


def _has_interval(est: Any, level: float) -> bool:
    """Can ``est`` give the central interval of ``level``? ValueError when it has quantile
    levels but not those (a level the user asked for that was not trained; matched as
    predict matches them); False when it has no quantile levels (a point forecaster) at all."""
    levels = getattr(est, "quantile_levels_", None)
    if levels is None:
        return True
    if len(levels) == 1:
        return False
    lo, hi = interval_levels(level)
    try:
        requested_levels([lo, hi], levels)
    except ValueError:
        raise ValueError(
            f"coverage_level={level} needs the quantile levels {lo:g} and {hi:g}; the "
            f"forecaster was trained with {levels}"
        ) from None
    return True


__all__ = ["backtest", "coverage", "mase", "rmse", "smape"]
