"""Calibration of LSTMForecaster's quantiles: split conformal prediction on held-out origins.

Each quantile level is moved outward from the median by the margin (at least 0) that makes it
cover, at its nominal one-sided rate, the points held out at the last few origins of every
series, each forecast by an ensemble fitted on the points before it (same hyperparameters,
without calibration). Conformalized quantile regression (Romano, Patterson and Candes, 2019)
in the forecaster's normalized units (the series' log, less its seasonality, divided by its
mean absolute change), the margin growing as sqrt(k) with the step k ahead, as a random
walk's spread does: step k of level q is moved by M_q sqrt(k), M_q the conformal quantile of
the scores (q_k - y_k) / sqrt(k) for a level below the median, (y_k - q_k) / sqrt(k) above.

Why additive: files before this scaled each level's distance from the median by a factor
(``interval_factors_``, still applied when a file has them). The networks' quantiles can be
almost as narrow as the median is sharp (series that were calm over the windows they learned
from), and no factor widens a band of width ~0; a margin in units of the series' own changes
does. Held-out, the G7 fertility panel's 80 % band covered 0 of 42 points with factors.
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


def calibration_margins(fc: Any, panel: Panel) -> list:
    """Per trained level, the margin M (normalized units per sqrt(step)) that gives it its
    nominal one-sided coverage on the held-out points of every series: the k points after
    each origin n - j k (j = 1.._CALIBRATION_ORIGINS, k = min(horizon_, n // 4)), each
    forecast by an ensemble fitted on the points before it (split conformal, the scores of
    all origins pooled; 0 for the median, and for every level when the series are too short
    to hold points out; origins the series are too short for are left out)."""
    levels = fc.quantile_levels_
    mid = levels.index(0.5)
    scores: list = [[] for _ in levels]
    for j in range(1, _CALIBRATION_ORIGINS + 1):
        got = _scores(fc, panel, j)
        if got is None:
            if j == 1:
                return [0.0] * len(levels)
            break
        for acc, new in zip(scores, got):
            acc.extend(new)
    out = []
    for j, lv in enumerate(levels):
        sc = np.sort(np.asarray(scores[j]))
        if j == mid or len(sc) == 0:
            out.append(0.0)
            continue
        # the ceil((n + 1) * target) / n empirical quantile of the scores (conformal)
        target = (1 - lv) if lv < 0.5 else lv
        rank = min(int(math.ceil((len(sc) + 1) * target)), len(sc)) - 1
        out.append(float(max(0.0, sc[rank])))
    return out


def _scores(fc: Any, panel: Panel, j: int) -> Optional[list]:
    """Per trained level, the conformal scores (the normalized miss beyond the level over
    sqrt(step)) of the k points of every series after origin n - j k (k = min(horizon_,
    n // 4)), forecast by an ensemble fitted on the points before; None when the series are
    too short."""
    levels, h = fc.quantile_levels_, fc.horizon_
    hold = [min(h, n // 4) for n in panel.lengths]
    if max(hold) == 0:  # every series shorter than 4 points: nothing to hold out
        return None
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
    paths = cal._quantile_paths(max(hold), futures, pad=True, normalized=True)
    mid = levels.index(0.5)
    scores: list = [[] for _ in levels]
    for i_s, (zq, v, k) in enumerate(zip(paths, panel.values, hold)):  # zq (h, C, Q)
        if k == 0:  # a series of a panel too short to hold a point out
            continue
        end = len(v) - (j - 1) * k
        with np.errstate(invalid="ignore", divide="ignore"):  # a value <= 0 under log: NaN
            za = cal.scalers_[i_s].normalize(v[:end])[-k:]  # the actual values, normalized
        root = np.sqrt(np.arange(1, k + 1))[:, None]
        for i, lv in enumerate(levels):
            if i == mid:
                continue
            beyond = ((zq[:k, :, i] - za) if lv < 0.5 else (za - zq[:k, :, i])) / root
            scores[i].extend(beyond[np.isfinite(beyond)].tolist())  # left out: not normalizable
    return scores
