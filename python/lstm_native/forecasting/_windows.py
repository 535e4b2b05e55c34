"""Windows: how a series becomes what the network reads, and back.

Each series is normalized once (:class:`SeriesScaler`): a transform (log for positive
series), the additive seasonal indices removed (when the series is seasonal), divided by a
scale (its mean absolute first difference, so that series of any size train one model), and,
with drift, its mean change per step removed (z_t - d t). Every window is then taken relative
to the series' *level* l at its last step: the last observed value (l = z), or the series'
exponential smoothing l_t = a z_t + (1 - a) l_{t-1} (ES-RNN's level). The network thus sees
shapes and changes, never levels: a trending series whose future lies beyond anything in its
history is forecast as changes from its level, which is how it is never asked to extrapolate a
level it has not seen.

A window of lookback L and horizon h, at origin t (the first step to forecast), is

    inputs  [L (+h), C (+K+1)]    (z[t-L:t] - l[t-1]) and, with K covariates, (covariates, 0)
                                 for the history, then h steps (0, future covariates, 1)
    targets [h * C]               (z[t:t+h] - l[t-1]) flattened step by step

where z is the normalized series and the last feature marks the future steps. Known-future
covariates are thus read by the network before it predicts (multi-output), and fed step by
step in the recursive strategy (horizon 1, the prediction appended as the next input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ._input import _finite_2d
from ._season import (
    diff_scale,
    is_seasonal,
    seasonal_indices,
    smoothed_level,
    smoothing_alpha,
)


@dataclass
class SeriesScaler:
    """The normalization of one series (n, C): transform, seasonal indices (m, C) by the
    position t mod m counted from the series' start, and a scale per channel."""

    log: np.ndarray  # (C,) bool: log-transformed channels
    season: np.ndarray  # (m, C) seasonal indices (zeros when not seasonal)
    scale: np.ndarray  # (C,)
    n: int  # length of the series it was fitted on
    drift: Optional[np.ndarray] = None  # (C,) mean change per step of z, removed (or None)
    alpha: Optional[np.ndarray] = None  # (C,) the level's smoothing (None: the last value)

    @classmethod
    def fit(
        cls,
        y: np.ndarray,
        m: int,
        transform: str,
        deseasonalize: Any,
        half_life: Any = None,
        drift: Any = False,
        level: str = "last",
    ) -> SeriesScaler:
        n, C = y.shape
        if transform == "log":
            if np.any(y <= 0):
                raise ValueError("transform='log' needs positive values")
            log = np.ones(C, dtype=bool)
        elif transform == "auto":
            log = np.all(y > 0, axis=0)
        else:
            log = np.zeros(C, dtype=bool)
        z = np.where(log, np.log(np.where(log, y, 1.0)), y)
        m = max(int(m), 1)
        season = np.zeros((m, C))
        for c in range(C):
            use = bool(deseasonalize) if deseasonalize != "auto" else is_seasonal(z[:, c], m)
            if use and m > 1:
                season[:, c] = seasonal_indices(z[:, c], m, half_life)
        d = z - season[np.arange(n) % m]
        scale = np.array([diff_scale(d[:, c]) for c in range(C)])
        out = cls(log=log, season=season, scale=scale, n=n)
        if drift and n > 1:  # the mean change of the scaled series (a random walk's drift)
            mean = (d[-1] - d[0]) / (n - 1)
            if drift == "auto":  # only where the mean change differs from 0 (|t| > 2)
                sd = np.std(np.diff(d, axis=0), axis=0, ddof=1) if n > 2 else np.zeros(C)
                mean = np.where(np.abs(mean) * np.sqrt(n - 1) > 2.0 * sd, mean, 0.0)
            out.drift = mean / scale
        if level == "smoothed":
            zn = out.normalize(y)
            out.alpha = np.array([smoothing_alpha(zn[:, c]) for c in range(C)])
        return out

    @property
    def m(self) -> int:
        return self.season.shape[0]

    def normalize(self, y: np.ndarray) -> np.ndarray:
        """z (n, C) of a series that starts where the fitted one started."""
        z = np.where(self.log, np.log(np.where(self.log, y, 1.0)), y)
        z = (z - self.season[np.arange(len(y)) % self.m]) / self.scale
        if self.drift is not None:
            z = z - np.arange(len(y))[:, None] * self.drift
        return z

    def level(self, z: np.ndarray) -> np.ndarray:
        """The level (n, C) every window of z is taken relative to: z itself (the last value),
        or its exponential smoothing (ES-RNN's level) with the fitted alpha per channel."""
        if self.alpha is None or np.all(self.alpha >= 1.0):
            return z
        return np.stack(
            [smoothed_level(z[:, c], float(a)) for c, a in enumerate(self.alpha)], axis=1
        )

    def denormalize(self, z: np.ndarray, start: int) -> np.ndarray:
        """Values at positions start, start+1, ... (counted from the series' start) of
        normalized z (k, C[, Q]) (forecasts of the steps after the series)."""
        steps = start + np.arange(z.shape[0])
        pos = steps % self.m
        extra = (slice(None), slice(None)) + (None,) * (z.ndim - 2)
        if self.drift is not None:
            z = z + (steps[:, None] * self.drift)[extra]
        v = z * self.scale[(None,) + extra[1:]] + self.season[pos][extra]
        log = self.log[(None,) + extra[1:]]
        with np.errstate(over="ignore"):
            return np.where(log, np.exp(np.where(log, v, 0.0)), v)


def _less_drift(z: np.ndarray) -> tuple:
    """(z - t d, d) for a normalized series z (n, C): d (C,) its mean change per step (a random
    walk's drift, (z_{n-1} - z_0) / (n - 1)), t = 0..n-1 counted from its start."""
    n = len(z)
    d = (z[-1] - z[0]) / (n - 1) if n > 1 else np.zeros(z.shape[1])
    return z - np.arange(n)[:, None] * d, d


def windows(
    z: np.ndarray,
    cov: Optional[np.ndarray],
    lookback: int,
    horizon: int,
    stride: int = 1,
    level: Optional[np.ndarray] = None,
) -> tuple:
    """Multi-output training windows of one normalized series z (n, C) with covariates cov
    (n, K) or None: (inputs (W, L[+h], C[+K+1]), targets (W, h*C)), origins stride apart, the
    last one at the end of the series; none when the series is shorter than L + h. With
    covariates the h future steps follow the L past ones, their covariates known and a flag
    1. Relative to ``level`` (n, C) at each window's last step (None: z, the last value).
    (The recursive strategy's one-step windows: growing_windows.)"""
    n, C = z.shape
    K = 0 if cov is None else cov.shape[1]
    origins = np.arange(n - horizon, lookback - 1, -stride)[::-1]
    steps = lookback + (horizon if K else 0)
    X = np.zeros((len(origins), steps, C + K + (1 if K else 0)))
    past = origins[:, None] + np.arange(-lookback, 0)[None, :]  # (W, L) time indices
    ahead = origins[:, None] + np.arange(horizon)[None, :]  # (W, h)
    base = (z if level is None else level)[origins - 1][:, None, :]  # (W, 1, C) the levels
    X[:, :lookback, :C] = z[past] - base
    Y = (z[ahead] - base).reshape(len(origins), horizon * C)
    if K:
        X[:, :lookback, C : C + K] = cov[past]
        X[:, lookback:, C : C + K] = cov[ahead]
        X[:, lookback:, -1] = 1.0
    return X, Y


def growing_windows(
    z: np.ndarray,
    cov: Optional[np.ndarray],
    lookback: int,
    steps: int,
    level: Optional[np.ndarray] = None,
) -> tuple:
    """The one-step model's training windows for a rollout of ``steps`` steps: from each
    origin t (L = lookback values before it), the windows z[t-L : t+j] for j = 0 .. steps-1
    with the target z[t+j], all relative to ``level`` (n, C; None: z) at t-1. A rollout
    (LSTMRegressor.rollout: the state carried, each output fed back as the next input) reads
    exactly these: the history relative to its end's level, then its own outputs relative to
    that same level; windows re-centred on their last step instead (``windows``) would teach
    the network inputs it never sees after the first step of a rollout. Returns (a list of
    (L + j, C[+K]) inputs, targets (W, C)), oldest origin first."""
    n, C = z.shape
    base_of = z if level is None else level
    xs, ys = [], []
    for t in range(lookback, n):
        base = base_of[t - 1]
        for j in range(min(steps, n - t)):
            x = z[t - lookback : t + j] - base
            if cov is not None:
                x = np.concatenate([x, cov[t - lookback : t + j]], axis=1)
            xs.append(x)
            ys.append(z[t + j] - base)
    return xs, np.array(ys).reshape(len(ys), C)


def training_windows(
    z: list, covs: Optional[list], L: int, h: int, recursive: bool, levels: list
) -> tuple:
    """(inputs, targets) of every series z[i] (levels[i] its level): multi-output windows (an
    array), or with ``recursive`` the growing windows of a rollout over h steps (a list);
    (None, None) when no series is long enough. Oldest windows first, across series: early
    stopping validates on the tail, which then holds the latest windows of every series (not
    the last series' only)."""
    parts = [
        growing_windows(zi, None if covs is None else covs[i], L, h, levels[i])
        if recursive
        else windows(zi, None if covs is None else covs[i], L, h, level=levels[i])
        for i, zi in enumerate(z)
        if len(zi) >= L + (1 if recursive else h)
    ]
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return None, None
    age = np.concatenate([np.arange(len(p[0]))[::-1] for p in parts])
    order = np.argsort(-age, kind="stable")
    if recursive:
        X = [x for p in parts for x in p[0]]
        X = [X[i] for i in order]
    else:
        X = np.concatenate([p[0] for p in parts])[order]
    return X, np.concatenate([p[1] for p in parts])[order]


def no_windows_message(z: list, L: int, h: int, horizon_given: Any) -> str:
    hint = "" if horizon_given else "; horizon=None is 2 x season_length, at least 8"
    return (
        f"no series is long enough for lookback {L} + horizon {h} steps (the longest has "
        f"{max(len(zi) for zi in z)}{hint})"
    )


def last_window(
    z: np.ndarray,
    cov: Optional[np.ndarray],
    future: Optional[np.ndarray],
    lookback: int,
    horizon: int,
    base: Optional[np.ndarray] = None,
) -> np.ndarray:
    """The input window (1, L[+h], C[+K+1]) at the end of z, relative to ``base`` (C,) (None:
    z's last value), with the future covariates future (h, K) when there are covariates
    (None: the recursive strategy feeds them)."""
    n, C = z.shape
    K = 0 if cov is None else cov.shape[1]
    L = min(lookback, n)
    steps = L + (horizon if (K and future is not None) else 0)
    x = np.zeros((1, steps, C + K + (1 if K and future is not None else 0)))
    x[0, :L, :C] = z[n - L :] - (z[n - 1] if base is None else base)
    if K:
        x[0, :L, C : C + K] = cov[n - L :]
        if future is not None:
            x[0, L:, C : C + K] = future[:horizon]
            x[0, L:, -1] = 1.0
    return x


class SlidingWindow:
    """Sliding windows over series, as a scikit-learn transformer.

    ``transform(X)`` crops a batch of histories (a list of (T_i[, C]) arrays of any length, or
    an array (n, T[, C])) to their last ``lookback`` steps: windows (n, lookback, C) ready for
    an LSTMRegressor in a Pipeline (shorter histories are padded at the front with their first
    value). ``split(y, X=None)`` makes training pairs from one series y (n[, C]) with
    covariates X (n, K): inputs (W, lookback, C + K) of the windows whose ``horizon`` next
    values exist, and targets (W, horizon * C), origins ``stride`` apart.
    """

    def __init__(self, lookback: int = 12, horizon: int = 1, stride: int = 1) -> None:
        self.lookback = lookback
        self.horizon = horizon
        self.stride = stride

    def get_params(self, deep: bool = True) -> dict:
        return {"lookback": self.lookback, "horizon": self.horizon, "stride": self.stride}

    def set_params(self, **params: Any) -> SlidingWindow:
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"SlidingWindow has no parameter {k!r}")
            setattr(self, k, v)
        return self

    def _check(self) -> None:
        for name in ("lookback", "horizon", "stride"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")

    def fit(self, X: Any = None, y: Any = None) -> SlidingWindow:
        self._check()
        return self

    def transform(self, X: Any) -> np.ndarray:
        self._check()
        items = list(X) if isinstance(X, (list, tuple)) else list(np.asarray(X, dtype=float))
        if not items:
            raise ValueError("X holds no series to take windows of")
        out = []
        for i, s in enumerate(items):
            a = np.asarray(s, dtype=np.float64)
            a = a[:, None] if a.ndim == 1 else a
            if a.ndim != 2 or len(a) == 0 or not np.isfinite(a).all():
                raise ValueError(f"X[{i}] must be a non-empty finite (T[, C]) series")
            a = a[-self.lookback :]
            if len(a) < self.lookback:
                a = np.concatenate([np.repeat(a[:1], self.lookback - len(a), axis=0), a])
            out.append(a)
        if len({a.shape[1] for a in out}) != 1:
            raise ValueError("all series of X must have the same number of channels")
        return np.stack(out)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).transform(X)

    def split(self, y: Any, X: Any = None) -> tuple:
        self._check()
        z = _finite_2d(y, "y")
        cov = None if X is None else _finite_2d(X, "X", len(z))
        if len(z) < self.lookback + self.horizon:
            raise ValueError(
                f"y has {len(z)} steps, fewer than lookback + horizon = "
                f"{self.lookback + self.horizon}"
            )
        n, C = z.shape
        origins = np.arange(n - self.horizon, self.lookback - 1, -self.stride)[::-1]
        parts = [z] if cov is None else [z, cov]
        full = np.concatenate(parts, axis=1)
        Xw = np.stack([full[t - self.lookback : t] for t in origins])
        Yw = np.stack([z[t : t + self.horizon].ravel() for t in origins])
        return Xw, Yw


__all__ = [
    "SeriesScaler",
    "SlidingWindow",
    "growing_windows",
    "last_window",
    "no_windows_message",
    "training_windows",
    "windows",
]
