"""Calibration of LSTMForecaster's quantiles: split conformal prediction on held-out origins.

A quantile level's distance from the median is scaled by the factor (at least 1) that makes it
cover, at its nominal one-sided rate, the points held out at the last few origins of every
series, each forecast by an ensemble fitted on the points before it (same hyperparameters,
without calibration).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
from sklearn.base import clone

from ._input import Panel

# The scores of this many held-out origins (n - k, n - 2k, ...) are pooled: on the dev splits
# one origin covered 0.67 of the single series' points at 80 %, three 0.77 (panels 0.82, 0.84).
_CALIBRATION_ORIGINS = 3


def calibration_factors(fc: Any, panel: Panel) -> list:
    """Per trained level, the factor on its distance from the median that gives it its
    nominal one-sided coverage on the held-out points of every series: the k points after
    each origin n - j k (j = 1.._CALIBRATION_ORIGINS, k = min(horizon_, n // 4)), each
    forecast by an ensemble fitted on the points before it (split conformal, the scores
    of all origins pooled; 1 for the median, and for every level when the series are too
    short to hold points out; origins the series are too short for are left out)."""
    levels = fc.quantile_levels_
    mid = levels.index(0.5)
    scores: list = [[] for _ in levels]
    for j in range(1, _CALIBRATION_ORIGINS + 1):
        got = _scores(fc, panel, j)
        if got is None:
            if j == 1:
                return [1.0] * len(levels)
            break
        for acc, new in zip(scores, got):
            acc.extend(new)
    factors = []
    for j, lv in enumerate(levels):
        sc = np.sort(np.asarray(scores[j]))
        if j == mid or len(sc) == 0:
            factors.append(1.0)
            continue
        # the ceil((n + 1) * target) / n empirical quantile of the scores (conformal)
        target = (1 - lv) if lv < 0.5 else lv
        rank = min(int(math.ceil((len(sc) + 1) * target)), len(sc)) - 1
        factors.append(float(max(1.0, sc[rank])))
    return factors


def _scores(fc: Any, panel: Panel, j: int) -> Optional[list]:
    """Per trained level, the conformal scores (miss / distance from the median) of the
    k points of every series after origin n - j k (k = min(horizon_, n // 4)), forecast by
    an ensemble fitted on the points before; None when the series are too short."""
    levels, h = fc.quantile_levels_, fc.horizon_
    hold = [min(h, n // 4) for n in panel.lengths]
    cut = Panel(
        [v[: len(v) - j * k] for v, k in zip(panel.values, hold)],
        panel.kind,
        None
        if panel.covariates is None
        else [c[: len(c) - j * k] for c, k in zip(panel.covariates, hold)],
    )
    cal = clone(fc).set_params(
        calibrate=False, verbose=0, horizon=h, season_length=fc.season_length_
    )
    try:
        cal._fit_panel(cut)
    except ValueError:  # too short once the points are held out
        return None
    futures = None
    if panel.covariates is not None:
        futures = [c[len(c) - j * k : len(c) - (j - 1) * k] for c, k in zip(panel.covariates, hold)]
    paths = cal._quantile_paths(max(hold), futures, pad=True)
    mid = levels.index(0.5)
    scores: list = [[] for _ in levels]
    for path, v, k in zip(paths, panel.values, hold):
        actual, q = v[len(v) - j * k : len(v) - (j - 1) * k], path[:k]  # (k, C), (k, C, Q)
        med = q[..., mid]
        for i, lv in enumerate(levels):
            if i == mid:
                continue
            dist = (med - q[..., i]) if lv < 0.5 else (q[..., i] - med)
            miss = (med - actual) if lv < 0.5 else (actual - med)
            ok = dist > 0
            scores[i].extend((miss[ok] / dist[ok]).tolist())
    return scores
