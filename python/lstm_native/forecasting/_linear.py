"""The forecaster's linear part: an automatic autoregression, ARIMA(p, d, 0), fitted per
series at predict time.

LSTMForecaster combines its networks' point forecast with this model's (``linear_weight``), on
the normalized series (after the log transform, the seasonal indices and the scale, so the
model needs no seasonal terms). Why: the M4 competition's lesson is that combinations beat
single methods; on the development origins the mean of our networks and statsforecast's
AutoARIMA was better than either, and this small model, which needs nothing beyond NumPy,
gives the same gain (benchmarks/forecast/results.md; damped-trend exponential smoothing as a
second linear model was tried there and not kept).

:func:`auto_ar`, for a series x_1..x_n:

* d (0 or 1) by the KPSS test of level stationarity at 5 % (as auto.arima chooses d):
  eta = sum_t S_t^2 / (n^2 lrv), S_t the partial sums of x - mean(x), lrv the Newey-West
  long-run variance with a Bartlett window of trunc(4 (n / 100)^(1/4)) lags; d = 1 when
  eta > 0.463. w = x (d = 0) or its first differences (d = 1).
* w_t = c + phi_1 w_{t-1} + ... + phi_p w_{t-p} + e_t by conditional least squares, p in
  0..p_max (p_max = min(10, len(w) // 5)), the constant c always with d = 0 (the mean) and
  with or without it with d = 1 (a drift), chosen by the least AICc on the common sample
  w_{p_max+1..} (N its length, k = p + [c] + 1 parameters with the variance):
  AICc = N log(RSS / N) + 2 k + 2 k (k + 1) / (N - k - 1). Models whose AR polynomial is not
  stationary (a root of the companion matrix at modulus >= 0.99) are left out; the chosen
  one is refitted on all the w it can use.
* With d = 1 and a drift, the drift is then set robustly: c = mu (1 - phi_1 - ... - phi_p), so
  that the differences' implied mean is mu, the mean of the differences clipped at
  median +- 3 * 1.4826 MAD (their robust spread). Least squares sets mu to the plain mean of
  the differences, which one start-up jump rules: a yearly series that starts at 5 and grows
  to 5e5 (M1's T48) has a first log difference of 7.4 and the rest near 0.2, and the plain mean
  extrapolates 0.65 a year (x1.9 a year for six years). On the 106 yearly series of M1 (the
  benchmark's development catalogue) this took the mean MASE from 4.00 to 3.44.
* The forecast iterates the recursion with e = 0 and, with d = 1, sums the differences onto
  x_n.

"""

from __future__ import annotations

import numpy as np

KPSS_CRITICAL_5 = 0.463  # KPSS level-stationarity test, 5 % (Kwiatkowski et al. 1992, table 1)
_MAX_ORDER = 10
_CLIP_MADS = 3.0  # the robust drift's clipping, in robust standard deviations (1.4826 MAD)


def kpss_statistic(x: np.ndarray) -> float:
    """The KPSS statistic of level stationarity of x (n,) (module docstring); 0 for a
    constant series."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    e = x - x.mean()
    s = np.cumsum(e)
    lags = int(4.0 * (n / 100.0) ** 0.25)
    lrv = float(e @ e) / n
    for lag in range(1, min(lags, n - 1) + 1):
        lrv += 2.0 * (1.0 - lag / (lags + 1.0)) * float(e[lag:] @ e[:-lag]) / n
    if not lrv > 1e-300:
        return 0.0
    return float(s @ s) / (n * n * lrv)


def _regress(w: np.ndarray, p: int, start: int, const: bool) -> tuple:
    """Least squares of w[start:] on its p lags (and a constant): (coefficients (p [+1],)
    as phi_1..phi_p [, c], residual sum of squares, sample size)."""
    N = len(w) - start
    cols = [w[start - i : len(w) - i] for i in range(1, p + 1)]
    if const:
        cols.append(np.ones(N))
    y = w[start:]
    if not cols:
        return np.zeros(0), float(y @ y), N
    X = np.stack(cols, axis=1)
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    r = y - X @ beta
    return beta, float(r @ r), N


def _stationary(phi: np.ndarray) -> bool:
    """Whether the AR polynomial 1 - phi_1 z - ... - phi_p z^p has all its roots outside
    the circle of radius 1 / 0.99 (the companion matrix's eigenvalues below 0.99)."""
    p = len(phi)
    if p == 0:
        return True
    A = np.zeros((p, p))
    A[0] = phi
    A[1:, :-1] = np.eye(p - 1)
    return bool(np.max(np.abs(np.linalg.eigvals(A))) < 0.99)


def robust_mean(w: np.ndarray) -> float:
    """The mean of w clipped at median +- 3 * 1.4826 MAD; the plain mean when the MAD is 0."""
    med = float(np.median(w))
    spread = 1.4826 * float(np.median(np.abs(w - med)))
    if not spread > 0:
        return float(np.mean(w))
    return float(np.mean(np.clip(w, med - _CLIP_MADS * spread, med + _CLIP_MADS * spread)))


def auto_ar(x: np.ndarray, horizon: int) -> np.ndarray:
    """The forecast (horizon,) of x (n,) by the ARIMA(p, d, 0) the module docstring
    chooses."""
    x = np.asarray(x, dtype=np.float64)
    d = 1 if len(x) > 3 and kpss_statistic(x) > KPSS_CRITICAL_5 else 0
    w = np.diff(x) if d else x
    p_max = max(0, min(_MAX_ORDER, len(w) // 5))
    best = (np.inf, 0, d == 0)  # (AICc, p, const); the fallback: the mean, or a random walk
    for const in (True,) if d == 0 else (True, False):
        for p in range(p_max + 1):
            beta, rss, N = _regress(w, p, p_max, const)
            k = p + const + 1
            if N - k - 1 <= 0 or not rss > 0 or not _stationary(beta[:p]):
                continue
            aicc = N * np.log(rss / N) + 2 * k + 2 * k * (k + 1) / (N - k - 1)
            if aicc < best[0]:
                best = (aicc, p, const)
    _, p, const = best
    beta = _regress(w, p, p, const)[0] if len(w) > p else np.zeros(p + const)
    phi, c = beta[:p], (float(beta[p]) if const else 0.0)
    if not _stationary(phi):  # the refit on the longer sample can cross the boundary
        phi = np.zeros(0)
        p, c = 0, float(w.mean()) if const and len(w) else 0.0
    if d and const and len(w) > 2:  # the drift from a robust mean of the differences
        c = robust_mean(w) * (1.0 - float(np.sum(phi)))
    hist = np.empty(p + horizon)
    hist[:p] = w[len(w) - p :]
    for t in range(horizon):
        hist[p + t] = c + float(phi @ hist[t : p + t][::-1])
    out = hist[p:]
    return x[-1] + np.cumsum(out) if d else out


__all__ = ["KPSS_CRITICAL_5", "auto_ar", "kpss_statistic", "robust_mean"]
