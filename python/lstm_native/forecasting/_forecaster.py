"""LSTMForecaster: the next h values of one series, a multivariate series or a panel of series,
with intervals, from recurrent networks trained on normalized windows.

What it does, after the M4 competition's lessons (its winner, Smyl's ES-RNN, normalized every
window by per-series exponential-smoothing level and seasonality and trained one LSTM across
all series; DeepAR scales per series and trains a global model; N-BEATS ensembles):

1. every series is log-transformed when positive, deseasonalized when an autocorrelation test
   finds its season (classical decomposition), and divided by its mean absolute change
   (:class:`~lstm_native.forecasting._windows.SeriesScaler`);
2. windows of ``lookback`` steps are taken relative to the series' level at their end (its
   exponential smoothing, as ES-RNN's; or the last value), so the network sees changes, never
   levels it has not seen; targets are the next ``horizon`` values relative to the same level
   (with ``drift``, the series' mean change is removed first; "mixed" does so for half the
   networks);
3. ``n_ensemble`` networks (seeds and lookbacks 1x, 1.5x, 2x, ... of the base lookback) are
   trained on the windows of *all* series at once (a global model), with the pinball loss
   for the quantile levels (the median is the point forecast), and their forecasts combined by
   the median;
4. with ``linear_weight``, the median is moved toward the forecast of an automatic linear
   autoregression of the same normalized series (ARIMA(p, d, 0), :mod:`._linear`), the other
   quantiles with it: M4's lesson that combinations beat single methods;
5. the forecasts are de-normalized: level, scale, seasonality, exp.

Strategies: "multi_output" (one head predicts all ``horizon`` steps; longer requests are
continued block by block) and "recursive" (a one-step model rolled out in C++ with its state
carried, the prediction fed back as the next input); "auto" takes multi-output unless the
series give too few windows for the horizon.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..estimators import LSTMRegressor
from ._calibrate import calibration_margins
from ._ensemble import ensemble_workers, fit_members
from ._input import (
    Panel,
    format_forecast,
    interval_levels,
    read_future,
    read_y,
    requested_levels,
    warn_not_finite,
)
from ._linear import auto_ar
from ._season import infer_season_length, season_from_freq
from ._windows import (
    SeriesScaler,
    _less_drift,
    last_window,
    no_windows_message,
    training_windows,
)

_LOOKBACK_FACTORS = (1.0, 1.5, 2.0, 1.25, 1.75)  # ensemble members cycle through these
_MIN_WINDOWS = 24  # "auto": multi-output needs at least this many windows, else recursive
# Seasonal indices follow a changing pattern: weights halving every season back (dev split).
_SEASON_HALF_LIFE = 1.0


# The hyperparameters predict reads again (the normalization of series given to predict, and
# how the networks' forecasts are combined): their values at the last fit, so that set_params
# after fit changes the next fit only, as in scikit-learn.
_FIT_TIME = ("transform", "deseasonalize", "level", "drift", "linear_weight", "loss")


class LSTMForecaster(BaseEstimator):
    """Forecasts with recurrent networks (see the module docstring).

    Parameters
    ----------
    season_length : int or None
        The seasonal period (12 for monthly data, 4 quarterly, 1 for none). None: from a pandas
        index's frequency, else from the autocorrelation of the (first) series.
    lookback : int or None
        Steps each network reads. None: ``max(2 * season_length, 1.5 * horizon, 8)``, capped by
        what the shortest series allows.
    horizon : int or None
        Steps the multi-output head predicts at once (``predict`` may ask for more or fewer).
        None: ``max(2 * season_length, 8)``.
    strategy : {"auto", "multi_output", "recursive"}, default="auto"
    transform : {"auto", "log", "none"}, default="auto"
        "auto": log for series whose values are all positive.
    deseasonalize : {"auto", True, False}, default="auto"
        "auto": when M4's 90 % autocorrelation test finds the season.
    quantiles : sequence of float, default=(0.1, 0.5, 0.9)
        Levels trained with the pinball loss; ``predict(..., quantiles=...)`` and
        ``predict_interval`` take levels from these. 0.5 is always added (the point forecast).
    loss : {"quantile", "squared_error", "absolute_error", "huber"}, default="quantile"
        The networks' loss. Only "quantile" gives intervals; the others train point forecasts
        (the mean for "squared_error", the median for "absolute_error").
    n_ensemble : int, default=6
        Networks combined by the median (by kind with drift="mixed").
    calibrate : bool, default=True
        Widen the quantiles out of the median to the coverage they had on held-out data: a
        second ensemble is fitted without the last ``horizon`` points of every series, and
        each level is moved outward by the margin (at least 0) that makes it cover those
        points as its level says (one-sided split conformal prediction, pooled over series,
        channels and steps), and the same at the two origins before (n - 2 horizon, n - 3
        horizon) when the series are long enough. The margin is in the normalized units
        (the series' own mean absolute change) and grows as sqrt(k) with the step k ahead
        (conformalized quantile regression; see lstm_native.forecasting._calibrate). Fits
        three more ensembles (about 4x the fit time of calibrate=False);
        ``interval_margins_`` holds the margins (M per level: step k moves by M sqrt(k)).
        Without it the pinball-trained quantiles are usually too narrow: they are fitted on
        the windows the networks learned. Files from before the margins hold factors on each
        level's distance from the median instead (``interval_factors_``, 1 for new fits),
        and are forecast with them.
    drift : {False, "mixed", True, "auto"}, default=False
        Remove each series' mean change per step (after the transform, the seasonality and the
        scale) before the windows are taken, and add it back to the forecast: the networks then
        forecast departures from a random walk with drift, which helps short trending series
        (too few windows to learn the trend from). "auto": only for the channels whose mean
        change differs from zero (|t| > 2). "mixed": the even networks read the series, the
        odd ones the series less its drift, and the forecast is the mean of the two kinds'
        medians: a hedge between continuing the trend and not, as a damped trend hedges
        (needs n_ensemble >= 2 to mix). Without the linear part ``linear_weight=0``, "mixed"
        was better on three development origins (mean MASE 1.01 against 1.11 without drift on
        the single series, 1.52 against 1.46 on the panels); with it (whose AR model has its
        own drift when AICc finds one), False: 0.96 against 0.99 and 1.43 against 1.45.
    level : {"smoothed", "last"}, default="smoothed"
        What each window is taken relative to: the series' exponentially smoothed level there
        (ES-RNN's level; the smoothing chosen per series by the least one-step error, so a
        random walk keeps its last value and a noisy series a steadier level), or its last
        value. "smoothed" was chosen on three development origins (mean MASE 1.28 against
        1.32 on the single series, equal on the panels).
    linear_weight : float in [0, 1] or "auto", default="auto"
        The weight of a linear model in the point forecast: the networks' median m becomes
        (1 - w) m + w a, with a the forecast of an ARIMA(p, d, 0) (d by the KPSS test, p and
        a drift by AICc) fitted to each series (and channel) at predict time on the
        normalized series (see lstm_native.forecasting._linear); every other quantile moves
        with the median. "auto": 0.5, or 0 when there are covariates (the linear model does
        not read them). Chosen with drift=False on three development origins: mean MASE 0.96
        on the single series and 1.43 on the panels, against 1.01 and 1.52 for the previous
        defaults (no linear part, drift="mixed"), AutoARIMA 1.10 and 1.48, AutoETS 1.38 and
        1.45. Files saved before it existed load with 0.
    cell, hidden_size, num_layers, max_iter, learning_rate_init, batch_size, alpha :
        Of each network (see :class:`~lstm_native.LSTMRegressor`); training stops early on the
        latest windows of each series (validation_fraction) and keeps the best weights.
    validation_fraction : float, default=0.15
    random_state : int, RandomState or None
    n_jobs : int or None
        Networks trained at once, each on one core thread (None: as many as the core's
        default thread count, all hardware threads unless ``lstm_native._core.set_num_threads``
        says otherwise); the forecast does not depend on it.
    verbose : int, default=0
        1: a line per network trained, on stderr.
    id_col, time_col, value_col : str
        The columns of a long DataFrame ``y`` (Nixtla's convention by default).
    """

    def __init__(
        self,
        season_length: Optional[int] = None,
        lookback: Optional[int] = None,
        horizon: Optional[int] = None,
        *,
        strategy: str = "auto",
        transform: str = "auto",
        deseasonalize: Any = "auto",
        quantiles: Any = (0.1, 0.5, 0.9),
        loss: str = "quantile",
        n_ensemble: int = 6,
        calibrate: bool = True,
        drift: Any = False,
        level: str = "smoothed",
        linear_weight: Any = "auto",
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 2,
        max_iter: int = 200,
        learning_rate_init: float = 3e-3,
        batch_size: int = 64,
        alpha: float = 1e-4,
        validation_fraction: float = 0.15,
        random_state: Any = None,
        n_jobs: Optional[int] = None,
        verbose: int = 0,
        id_col: str = "unique_id",
        time_col: str = "ds",
        value_col: str = "y",
    ) -> None:
        self.season_length = season_length
        self.lookback = lookback
        self.horizon = horizon
        self.strategy = strategy
        self.transform = transform
        self.deseasonalize = deseasonalize
        self.quantiles = quantiles
        self.loss = loss
        self.n_ensemble = n_ensemble
        self.calibrate = calibrate
        self.drift = drift
        self.level = level
        self.linear_weight = linear_weight
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.max_iter = max_iter
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.alpha = alpha
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.id_col = id_col
        self.time_col = time_col
        self.value_col = value_col

    # -- checks ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        def positive_int(name: str, allow_none: bool = True) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(
                    f"{name} must be a positive integer{' or None' * allow_none}, got {v!r}"
                )

        for name in ("season_length", "lookback", "horizon"):
            positive_int(name)
        for name in ("n_ensemble", "hidden_size", "num_layers", "max_iter", "batch_size"):
            positive_int(name, allow_none=False)
        if self.strategy not in ("auto", "multi_output", "recursive"):
            raise ValueError(
                f"strategy must be 'auto', 'multi_output' or 'recursive', got {self.strategy!r}"
            )
        if self.transform not in ("auto", "log", "none"):
            raise ValueError(f"transform must be 'auto', 'log' or 'none', got {self.transform!r}")
        if self.loss not in ("quantile", "squared_error", "absolute_error", "huber"):
            raise ValueError(
                f"loss must be 'quantile', 'squared_error', 'absolute_error' or "
                f"'huber', got {self.loss!r}"
            )
        if not isinstance(self.calibrate, (bool, np.bool_)):
            raise ValueError(f"calibrate must be True or False, got {self.calibrate!r}")
        if not (isinstance(self.drift, (bool, np.bool_)) or self.drift in ("auto", "mixed")):
            raise ValueError(f"drift must be True, False, 'auto' or 'mixed', got {self.drift!r}")
        if self.level not in ("last", "smoothed"):
            raise ValueError(f"level must be 'last' or 'smoothed', got {self.level!r}")
        if self.deseasonalize not in ("auto", True, False):
            raise ValueError(
                f"deseasonalize must be 'auto', True or False, got {self.deseasonalize!r}"
            )
        w = self.linear_weight
        if not (
            w == "auto"
            or (isinstance(w, (float, int, np.floating, np.integer)) and not isinstance(w, bool))
            and 0.0 <= float(w) <= 1.0
        ):
            raise ValueError(f"linear_weight must be a number in [0, 1] or 'auto', got {w!r}")
        self._levels()

    def _p(self, name: str) -> Any:
        """Hyperparameter ``name`` of _FIT_TIME as the last fit used it."""
        return self.__dict__.get("_fit_time", {}).get(name, getattr(self, name))

    def _linear_weight(self) -> float:
        """The linear model's weight in the point forecast ("auto": 0.5 without covariates)."""
        if self._p("linear_weight") == "auto":
            return 0.0 if self.panel_.covariates is not None else 0.5
        return float(self._p("linear_weight"))

    def _levels(self) -> list:
        """The trained quantile levels: sorted, unique, with 0.5 (only 0.5, the point
        forecast, for a loss other than "quantile")."""
        if self.loss != "quantile":
            return [0.5]
        try:
            qs = [float(q) for q in self.quantiles]
        except (TypeError, ValueError):
            raise ValueError(
                f"quantiles must be a sequence of levels in (0, 1), got {self.quantiles!r}"
            ) from None
        if any(not 0.0 < q < 1.0 for q in qs):
            raise ValueError(f"quantiles must lie in (0, 1), got {qs}")
        return sorted(set(qs) | {0.5})

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, y: Any, X: Any = None) -> LSTMForecaster:
        """Fit on a series, a multivariate series or a panel ``y`` (see lstm_native.forecasting)
        with optional covariates ``X`` (past values here; ``predict`` takes their future)."""
        self._check_params()
        panel = read_y(y, X, id_col=self.id_col, time_col=self.time_col, value_col=self.value_col)
        self._fit_time = {k: getattr(self, k) for k in _FIT_TIME}
        self._fit_panel(panel)
        self.interval_factors_ = [1.0] * len(self.quantile_levels_)
        self.interval_margins_ = [0.0] * len(self.quantile_levels_)
        if self.calibrate and len(self.quantile_levels_) > 1:
            self.interval_margins_ = calibration_margins(self, panel)
        return self

    def _fit_panel(self, panel: Panel) -> None:
        m = (
            self.season_length
            or season_from_freq(panel.freq)
            or infer_season_length(panel.values[int(np.argmax(panel.lengths))][:, 0])
        )
        h = self.horizon or max(2 * m, 8)
        shortest = min(panel.lengths)
        if shortest < 3:
            raise ValueError(
                f"every series needs at least 3 observations; the shortest has {shortest}"
            )
        scalers = [self._fit_scaler(v, m) for v in panel.values]
        z = [s.normalize(v) for s, v in zip(scalers, panel.values)]
        levels = [s.level(zi) for s, zi in zip(scalers, z)]
        if self._p("drift") == "mixed":  # the same series less their drift, for half the networks
            zd = [_less_drift(zi)[0] for zi in z]
            levels_d = [s.level(zi) for s, zi in zip(scalers, zd)]
        cov_stats = None
        covs = None
        if panel.covariates is not None:
            stacked = np.concatenate(panel.covariates)
            mu, sd = stacked.mean(axis=0), stacked.std(axis=0)
            sd[sd == 0] = 1.0
            cov_stats = (mu, sd)
            covs = [(c - mu) / sd for c in panel.covariates]
        base = self.lookback or int(math.ceil(max(2 * m, 1.5 * h, 8)))
        strategy = self._choose_strategy(panel, base, h)
        step_h = 1 if strategy == "recursive" else h  # (the lookbacks' windows: one step)
        rng = check_random_state(self.random_state)
        seeds = rng.randint(0, 2**31 - 1, size=self.n_ensemble)
        workers = ensemble_workers(self.n_ensemble, self.n_jobs)

        def prepare(k: int) -> tuple:
            L = self._member_lookback(base, k, shortest, step_h)
            zk, lv = (zd, levels_d) if self._drifted(k) else (z, levels)
            Xw, Yw = training_windows(zk, covs, L, h, strategy == "recursive", lv)
            if Xw is None:
                raise ValueError(no_windows_message(zk, L, h, self.horizon))
            return L, self._network(int(seeds[k]), len(Xw)), Xw, Yw

        def report(k: int, L: int, est: LSTMRegressor, n_windows: int, seconds: float) -> None:
            if self.verbose:  # progress on stderr: stdout may carry the forecast
                sys.stderr.write(
                    f"network {k + 1}/{self.n_ensemble}: lookback {L}, {n_windows} windows, "
                    f"{est.n_iter_} epochs, loss {est.loss_:.4g}, {seconds:.1f} s\n"
                )
                sys.stderr.flush()

        self.members_ = fit_members(self.n_ensemble, workers, prepare, report)
        self.panel_ = Panel(
            [v.copy() for v in panel.values],
            panel.kind,
            panel.covariates,
            panel.ids,
            panel.indexes,
            panel.freq,
            panel.columns,
            panel.name,
            panel.cov_columns,
        )
        self.scalers_, self.z_, self.covs_ = scalers, z, covs
        self.cov_stats_ = cov_stats
        self.season_length_, self.horizon_, self.strategy_ = m, h, strategy
        self.quantile_levels_ = self._levels()

    def _scaler_drift(self) -> Any:
        """The drift the series' scalers remove ("mixed" removes it per network instead)."""
        return False if self._p("drift") == "mixed" else self._p("drift")

    def _fit_scaler(self, values: np.ndarray, m: int) -> SeriesScaler:
        """The normalization of one series (n, C) with season length m, as fit makes it."""
        return SeriesScaler.fit(
            values,
            m,
            self._p("transform"),
            self._p("deseasonalize"),
            _SEASON_HALF_LIFE,
            self._scaler_drift(),
            self._p("level"),
        )

    def _drifted(self, k: int) -> bool:
        """Whether network k reads its series less their drift (the odd ones with "mixed")."""
        return self._p("drift") == "mixed" and k % 2 == 1

    def _choose_strategy(self, panel: Panel, lookback: int, h: int) -> str:
        if self.strategy != "auto":
            return self.strategy
        n_windows = sum(max(n - lookback - h + 1, 0) for n in panel.lengths)
        return "multi_output" if n_windows >= _MIN_WINDOWS else "recursive"

    def _member_lookback(self, base: int, k: int, shortest: int, h: int) -> int:
        L = int(round(base * _LOOKBACK_FACTORS[k % len(_LOOKBACK_FACTORS)]))
        # at least 3 windows from the shortest series, and at least 2 steps
        return max(2, min(L, shortest - h - 2))

    def _network(self, seed: int, n_windows: int) -> LSTMRegressor:
        loss = {"loss": self.loss}
        if self.loss == "quantile":
            loss["quantiles"] = self._levels()
        return LSTMRegressor(
            cell=self.cell,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            **loss,
            max_iter=self.max_iter,
            learning_rate_init=self.learning_rate_init,
            batch_size=min(self.batch_size, max(n_windows, 1)),
            alpha=self.alpha,
            early_stopping=n_windows >= 20,
            validation_fraction=self.validation_fraction,
            n_iter_no_change=20,
            tol=1e-5,
            random_state=seed,
            n_jobs=self.n_jobs,
        )

    # -- predicting -------------------------------------------------------------------------
    def _normalized_forecast(
        self,
        z: np.ndarray,
        cov: Optional[np.ndarray],
        horizon: int,
        future: Optional[np.ndarray],
        scaler: SeriesScaler,
    ) -> Any:
        """Member forecasts (n_ensemble, horizon, C, Q) of the normalized series z (n, C) with
        normalized covariates cov, in z's units. Networks that read the series less its drift
        (drift="mixed") forecast z - t d, and get t d back."""
        C, Q = z.shape[1], len(self.quantile_levels_)
        out = np.empty((len(self.members_), horizon, C, Q))
        drifted = None
        for k, (L, est) in enumerate(self.members_):
            zk, back = z, 0.0
            if self._drifted(k):
                if drifted is None:
                    drifted = _less_drift(z)
                zk, d = drifted
                back = ((len(z) + np.arange(horizon))[:, None] * d)[:, :, None]
            base = scaler.level(zk)[-1][:, None]  # (C, 1)
            if self.strategy_ == "recursive":
                out[k] = self._rollout(est, zk, cov, future, L, horizon, scaler) + base + back
            else:
                out[k] = self._blocks(est, zk, cov, future, L, horizon, scaler) + back
        return out

    def _member_predict(self, est: LSTMRegressor, x: np.ndarray) -> np.ndarray:
        """(n, outputs, Q): the network's quantiles, or its point forecast as the one level."""
        if self._p("loss") == "quantile":
            return est.predict_quantiles(x).reshape(len(x), -1, len(self.quantile_levels_))
        return est.predict(x).reshape(len(x), -1, 1)

    def _blocks(
        self,
        est: LSTMRegressor,
        z: np.ndarray,
        cov: Optional[np.ndarray],
        future: Optional[np.ndarray],
        L: int,
        horizon: int,
        scaler: SeriesScaler,
    ) -> np.ndarray:
        """Multi-output forecasts (horizon, C, Q) in z's units, continued block by block (each
        block's median appended as if observed) when horizon exceeds the trained one."""
        C, Q, h = z.shape[1], len(self.quantile_levels_), self.horizon_
        mid = self.quantile_levels_.index(0.5)
        hist, hcov = z, cov
        done, out = 0, np.empty((horizon, C, Q))
        while done < horizon:
            fut = None if future is None else future[done : done + h]
            if fut is not None and len(fut) < h:
                fut = np.concatenate([fut, np.repeat(fut[-1:], h - len(fut), axis=0)])
            base = scaler.level(hist)[-1]
            x = last_window(hist, hcov, fut, L, h, base)
            q = self._member_predict(est, x).reshape(h, C, Q) + base[:, None]
            k = min(h, horizon - done)
            out[done : done + k] = q[:k]
            hist = np.concatenate([hist, q[:, :, mid]])
            if hcov is not None:
                hcov = np.concatenate([hcov, fut])
            done += k
        return out

    def _rollout(
        self,
        est: LSTMRegressor,
        z: np.ndarray,
        cov: Optional[np.ndarray],
        future: Optional[np.ndarray],
        L: int,
        horizon: int,
        scaler: SeriesScaler,
    ) -> np.ndarray:
        """The one-step model rolled out in C++ (horizon, C, Q), relative to z's level at the
        end: the median of each step is fed back as the next step's value, the future
        covariates alongside."""
        C, Q = z.shape[1], len(self.quantile_levels_)
        mid = self.quantile_levels_.index(0.5)
        x = last_window(z, cov, None, L, 1, scaler.level(z)[-1])
        fut = None
        if cov is not None:
            fut = np.zeros((horizon - 1, x.shape[2]))
            fut[:, C:] = future[: horizon - 1]
        feedback = [(c * Q + mid, c) for c in range(C)]
        q = est.rollout(x, horizon, future=None if fut is None else fut[None], feedback=feedback)[0]
        return q.reshape(horizon, C, Q)

    def _target(self, y: Any, X: Any) -> tuple:
        """(panel, scalers, z, covs) of the series to forecast: the fitted ones, or those of
        ``y`` (and their covariates ``X``) normalized as fit normalizes its series."""
        check_is_fitted(self, "members_")
        if y is None:
            if X is not None:
                raise ValueError("X (past covariates) was given without y")
            return self.panel_, self.scalers_, self.z_, self.covs_
        panel = read_y(y, X, id_col=self.id_col, time_col=self.time_col, value_col=self.value_col)
        if panel.n_channels != self.panel_.n_channels:
            raise ValueError(
                f"y has {panel.n_channels} channels; the forecaster was fitted on "
                f"{self.panel_.n_channels}"
            )
        if panel.n_covariates != self.panel_.n_covariates:
            raise ValueError(
                f"X has {panel.n_covariates} covariates; the forecaster was fitted with "
                f"{self.panel_.n_covariates}"
            )
        if min(panel.lengths) < 3:
            raise ValueError("every series to forecast needs at least 3 observations")
        m = self.season_length_
        scalers = [self._fit_scaler(v, m) for v in panel.values]
        z = [sc.normalize(v) for sc, v in zip(scalers, panel.values)]
        covs = None
        if panel.covariates is not None:
            mu, sd = self.cov_stats_
            covs = [(c - mu) / sd for c in panel.covariates]
        return panel, scalers, z, covs

    def _forecast(
        self, horizon: int, X_future: Any, quantiles: Optional[list], target: tuple
    ) -> tuple:
        """Calibrated quantile forecasts of ``target`` (from _target, which checks the fit)."""
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        levels = self.quantile_levels_
        wanted, cols = requested_levels(quantiles, levels)
        futures = read_future(target[0], X_future, int(horizon), self.id_col, self.time_col)
        mid = levels.index(0.5)
        factors = np.asarray(getattr(self, "interval_factors_", [1.0] * len(levels)))
        preds = []
        with np.errstate(over="ignore", invalid="ignore"):  # warn_not_finite says it once
            for q in self._quantile_paths(int(horizon), futures, target=target):  # (h, C, Q)
                med = q[..., mid : mid + 1]  # each level's distance from the median scaled
                q = np.sort(med + (q - med) * factors, axis=-1)  # levels stay ordered
                preds.append(q[:, :, cols])
        warn_not_finite(preds)
        return preds, wanted

    def _quantile_paths(
        self,
        horizon: int,
        futures: Optional[list],
        pad: bool = False,
        target: Optional[tuple] = None,
        normalized: bool = False,
    ) -> list:
        """Per series of ``target`` (_target's tuple; None: the fitted series), the ensemble's
        forecast (horizon, C, Q) of every trained level with the calibration's margins (not
        the older files' factors, which _forecast applies), in the series' units, or in the
        normalized ones with ``normalized``. ``futures``: the raw future covariates per series
        (at least ``horizon`` rows; with ``pad``, shorter ones repeat their last row)."""
        _, scalers, zs, covs = target or (None, self.scalers_, self.z_, self.covs_)
        mid, w = self.quantile_levels_.index(0.5), self._linear_weight()
        shift = None  # the calibration's (horizon, 1, Q) M sqrt(k): lower levels down, upper up
        margins = getattr(self, "interval_margins_", None)
        if margins is not None and any(margins):
            sign = np.sign(np.asarray(self.quantile_levels_) - 0.5)
            shift = np.sqrt(np.arange(1.0, horizon + 1))[:, None, None] * (sign * margins)
        paths = []
        for i, scaler in enumerate(scalers):
            fut = None
            if futures is not None:
                mu, sd = self.cov_stats_
                f = futures[i]
                if pad and len(f) < horizon:
                    f = np.concatenate([f, np.repeat(f[-1:], horizon - len(f), axis=0)])
                fut = (f - mu) / sd
            member = self._normalized_forecast(
                zs[i], None if covs is None else covs[i], horizon, fut, scaler
            )
            # the median over the networks, of each kind with drift="mixed", then their mean
            kinds = [member[0::2], member[1::2]] if self._drifted(1) else [member]
            kinds = [k for k in kinds if len(k)]
            q = np.mean([np.sort(np.median(k, axis=0), axis=-1) for k in kinds], axis=0)
            if w > 0:  # the median toward the linear model, the other levels with it
                z = zs[i]
                lin = np.stack([auto_ar(z[:, c], horizon) for c in range(z.shape[1])], axis=1)
                q = q + w * (lin - q[..., mid])[..., None]
            if shift is not None:
                q = q + shift
            paths.append(q if normalized else scaler.denormalize(q, scaler.n))
        return paths

    def predict(
        self,
        horizon: int,
        X_future: Any = None,
        quantiles: Any = None,
        *,
        y: Any = None,
        X: Any = None,
    ) -> Any:
        """The next ``horizon`` values of every series, in the form of ``y``: (horizon,) for one
        series, (horizon, n_channels) for a multivariate one, a list for a list, a long
        DataFrame for a DataFrame (a pandas Series with dates for a dated Series). With
        ``quantiles`` (levels from the trained ones), a trailing axis (or columns) per level.

        ``y`` (with its past covariates ``X``, when the forecaster has covariates): forecast
        these series instead of the fitted ones, with the fitted networks (a global model
        applied to new or updated series: new stores, the latest data, no refit). They are
        normalized as fit normalizes its series; same channels and covariates as in fit."""
        target = self._target(y, X)
        preds, wanted = self._forecast(horizon, X_future, quantiles, target)
        if quantiles is None:
            preds = [p[..., 0] for p in preds]
        return format_forecast(
            target[0],
            preds,
            int(horizon),
            value_col=self.value_col,
            id_col=self.id_col,
            time_col=self.time_col,
            quantiles=None if quantiles is None else wanted,
        )

    # -- saving ----------------------------------------------------------------------------
    def save(self, path: Any) -> None:
        """Write the fitted forecaster to ``path``: a portable ``.npz`` archive (its networks,
        the fitted series and their normalization, the hyperparameters; no pickle), written
        atomically. Read it back with :meth:`load` or :func:`lstm_native.load`; the loaded
        forecaster gives the same forecasts."""
        check_is_fitted(self, "members_")
        from ._persist import save_forecaster

        save_forecaster(path, self)

    @classmethod
    def load(cls, path: Any) -> LSTMForecaster:
        """A forecaster saved with :meth:`save`; ValueError naming the file and the problem
        for a damaged, foreign, crafted or newer file (see lstm_native.forecasting._persist)."""
        from ._persist import load_forecaster

        return load_forecaster(path, cls)

    def predict_interval(
        self,
        horizon: int,
        X_future: Any = None,
        coverage: float = 0.8,
        *,
        y: Any = None,
        X: Any = None,
    ) -> tuple:
        """(lower, upper) bounds, each in the form of ``predict``, from the quantile levels
        (1 - coverage) / 2 and (1 + coverage) / 2, which must be among the trained ones;
        ``y`` and ``X`` as in ``predict``."""
        lo, hi = interval_levels(coverage)
        target = self._target(y, X)
        preds, _ = self._forecast(horizon, X_future, [lo, hi], target)
        fmt = dict(value_col=self.value_col, id_col=self.id_col, time_col=self.time_col)
        return (
            format_forecast(target[0], [p[..., 0] for p in preds], int(horizon), **fmt),
            format_forecast(target[0], [p[..., 1] for p in preds], int(horizon), **fmt),
        )


__all__ = ["LSTMForecaster"]
