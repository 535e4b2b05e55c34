"""Seasonality and scale of a series: the statistics the forecaster normalizes windows with.

* :func:`infer_season_length`: from a pandas frequency ("M" -> 12, "Q" -> 4, "W" -> 52, ...)
  or, without one, the lag of the strongest significant autocorrelation peak;
* :func:`is_seasonal`: the 90 % autocorrelation test the M4 competition's benchmarks used to
  decide whether to deseasonalize (acf_m > 1.645 sqrt((1 + 2 sum_{k<m} acf_k^2) / n)), on
  the detrended series;
* :func:`seasonal_indices`: classical additive decomposition (a centred moving average of
  length m as the trend, the mean detrended value per season position, centred to sum to 0).

All functions take float64 NumPy arrays and never look at data after the series' end.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np

# pandas offset classes -> the seasonal period of one step of them (a year, a year, a year,
# a week, a week, a day, an hour, a minute). By class, not by alias: an alias's first letters
# mislead ("BME" is a month, "SME" half of one, "WOM-1MON" a month) and change between pandas
# versions ("M" -> "ME", "H" -> "h").
_OFFSET_SEASON = {
    **dict.fromkeys(("YearBegin", "YearEnd", "BYearBegin", "BYearEnd", "FY5253"), 1),
    **dict.fromkeys(
        ("QuarterBegin", "QuarterEnd", "BQuarterBegin", "BQuarterEnd", "FY5253Quarter"), 4
    ),
    **dict.fromkeys(
        (
            "MonthBegin",
            "MonthEnd",
            "BusinessMonthBegin",
            "BusinessMonthEnd",
            "CustomBusinessMonthBegin",
            "CustomBusinessMonthEnd",
            "WeekOfMonth",
            "LastWeekOfMonth",
        ),
        12,
    ),
    **dict.fromkeys(("SemiMonthBegin", "SemiMonthEnd"), 24),
    "Week": 52,
    "Day": 7,
    **dict.fromkeys(("BusinessDay", "CustomBusinessDay"), 5),
    "Hour": 24,
    "Minute": 60,
    "Second": 60,
}


def season_from_freq(freq: Any) -> Optional[int]:
    """The seasonal period of a pandas frequency (an offset or an alias such as "MS",
    "QS-OCT", "2h"), or None if unknown. A multiple n of a step divides the period when it
    can ("2h" -> 12, "15min" -> 4, "3MS" -> 4, "12MS" -> 1) and gives None when it
    cannot ("2D")."""
    if freq is None:
        return None
    if isinstance(freq, str):
        try:
            import pandas as pd

            with warnings.catch_warnings():  # old aliases ("M", "Q") still mean what they meant
                warnings.simplefilter("ignore", FutureWarning)
                freq = pd.tseries.frequencies.to_offset(freq)
        except (ImportError, TypeError, ValueError):
            return None
    period = _OFFSET_SEASON.get(type(freq).__name__)
    n = abs(int(getattr(freq, "n", 1) or 1))
    if period is None or period % n:
        return None
    return period // n


def acf(z: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations r_1..r_max_lag of z (the usual biased estimator)."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.mean()
    top = float(np.max(np.abs(z))) if len(z) else 0.0
    if 0.0 < top < np.inf:  # by a power of 2, exact: z @ z cannot overflow (values of 1e155)
        z = np.ldexp(z, -int(np.frexp(top)[1]))
    denom = float(z @ z)
    if denom <= 0 or max_lag < 1:
        return np.zeros(max(max_lag, 0))
    return np.array([float(z[k:] @ z[:-k]) / denom for k in range(1, max_lag + 1)])


def infer_season_length(z: np.ndarray, max_season: int = 52) -> int:
    """The seasonal period of a series without a known frequency: the lag (2..max_season, and
    at most a third of the length) of the highest autocorrelation of the differenced series
    that is a local peak and significant at 95 %; 1 when there is none."""
    z = np.asarray(z, dtype=np.float64)
    d = np.diff(z)
    max_lag = min(max_season, len(d) // 3)
    if max_lag < 2:
        return 1
    r = acf(d, max_lag + 1)
    limit = 1.96 / np.sqrt(len(d))
    best, best_r = 1, limit
    for lag in range(2, max_lag + 1):
        if r[lag - 1] > best_r and r[lag - 1] >= r[lag - 2] and r[lag - 1] >= r[lag]:
            best, best_r = lag, r[lag - 1]
    return best


def is_seasonal(z: np.ndarray, m: int) -> bool:
    """M4's 90 % autocorrelation test for seasonality of period m, on z less its centred moving
    average of length m (the trend of the classical decomposition): r_m > 1.645 sqrt((1 + 2
    sum_{k<m} r_k^2) / n). M4's benchmarks tested the series itself, whose trend alone makes
    r_m large: seasonally adjusted trending data (GDP, population) were then "seasonal", and
    deseasonalizing them added noise; a short trending seasonal series, whose r_1..r_{m-1} are
    as large as r_m, was missed."""
    z = np.asarray(z, dtype=np.float64)
    if m <= 1 or len(z) < 3 * m:
        return False
    w = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
    trend = np.convolve(z, w, mode="valid")
    off = (len(w) - 1) // 2
    r = acf(z[off : off + len(trend)] - trend, m)
    limit = 1.645 * np.sqrt((1.0 + 2.0 * np.sum(r[:-1] ** 2)) / len(trend))
    return bool(r[-1] > limit)


def seasonal_indices(z: np.ndarray, m: int, half_life: Optional[float] = None) -> np.ndarray:
    """Additive seasonal indices (m,) of z, position p = t mod m (t counted from z's start),
    centred to sum to 0: classical decomposition with a centred moving average trend. With
    ``half_life`` (in seasons), the detrended values are averaged with weights halving every
    ``half_life`` seasons back from the end, so that a seasonal pattern that changes is
    followed (as exponential smoothing's seasonal component is)."""
    z = np.asarray(z, dtype=np.float64)
    if m <= 1 or len(z) < 2 * m:
        return np.zeros(max(m, 1))
    w = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
    trend = np.convolve(z, w, mode="valid")
    off = (len(w) - 1) // 2
    detrended = z[off : off + len(trend)] - trend
    t = np.arange(len(trend)) + off
    pos = t % m
    w = np.ones(len(t)) if half_life is None else 0.5 ** ((len(z) - 1 - t) / (half_life * m))
    sums = np.bincount(pos, weights=w * detrended, minlength=m)
    counts = np.bincount(pos, weights=w, minlength=m)
    idx = sums / np.maximum(counts, 1)
    return idx - idx.mean()


def diff_scale(z: np.ndarray, lag: int = 1) -> float:
    """The mean absolute lag-difference of z (the in-sample naive error MASE scales by); 1.0
    for a constant or too short series, so that dividing by it is always safe."""
    z = np.asarray(z, dtype=np.float64)
    if len(z) <= lag:
        return 1.0
    s = float(np.mean(np.abs(z[lag:] - z[:-lag])))
    return s if s > 0 and np.isfinite(s) else 1.0


def smoothed_level(z: np.ndarray, alpha: float) -> np.ndarray:
    """Simple exponential smoothing of z (n,): l_0 = z_0, l_t = alpha z_t + (1 - alpha) l_{t-1}
    (alpha 1: z itself, exactly)."""
    if alpha >= 1.0:
        return z.copy()
    from scipy.signal import lfilter  # scikit-learn's dependency

    return lfilter([alpha], [1.0, alpha - 1.0], z, zi=[(1.0 - alpha) * z[0]])[0]


_ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def smoothing_alpha(z: np.ndarray) -> float:
    """The alpha of :func:`smoothed_level` with the least squared one-step error on z (a grid
    of 0.1 steps; 1 for series of fewer than 4 values): near 1 for a random walk, small for
    noise around a slowly moving level."""
    if len(z) < 4:
        return 1.0
    errors = [float(np.sum((z[1:] - smoothed_level(z, a)[:-1]) ** 2)) for a in _ALPHAS]
    return _ALPHAS[int(np.argmin(errors))]


__all__ = [
    "acf",
    "diff_scale",
    "infer_season_length",
    "is_seasonal",
    "season_from_freq",
    "seasonal_indices",
    "smoothed_level",
    "smoothing_alpha",
]
