"""sktime adapters: :class:`LSTMForecaster` and :class:`LSTMClassifier` as sktime estimators, so
that they run in sktime's pipelines, tuning and benchmarking (``ForecastingBenchmark``,
``evaluate``, ``ForecastingGridSearchCV``, ``ClassifierPipeline``...).

Importing this module imports sktime (an optional extra: ``pip install lstm_native[sktime]``);
nothing else in lstm_native does.

* :class:`SktimeLSTMForecaster`: a univariate ``pd.Series`` in, point forecasts at any
  future horizon ``fh`` (relative or absolute, contiguous or not); the hyperparameters are
  LSTMForecaster's. Covariates and intervals stay with the native interface (``fit(y, X)``,
  ``predict(h, X_future, quantiles=...)``): its quantiles are the levels trained with the
  pinball loss, while sktime asks for arbitrary coverages. In-sample forecasts are refused.
* :class:`SktimeLSTMClassifier`: sktime's ``numpy3D`` panels (n_instances, n_channels,
  n_timepoints) in, classes out; an LSTMClassifier with ``input_layout="nct"`` inside.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sktime.classification.base import BaseClassifier
from sktime.forecasting.base import BaseForecaster

from ..forecasting import LSTMForecaster
from ._adapters import ClassifierAdapter

__all__ = ["SktimeLSTMClassifier", "SktimeLSTMForecaster"]


def _series(y: pd.Series) -> Any:
    """y as LSTMForecaster takes it: with its dates (which give the season) when it has
    some, else its values."""
    if isinstance(y.index, (pd.DatetimeIndex, pd.PeriodIndex)):
        return y
    return np.asarray(y.to_numpy(), dtype=np.float64)


class SktimeLSTMForecaster(BaseForecaster):
    """LSTMForecaster (lstm_native.forecasting) behind sktime's forecaster interface.

    Parameters are LSTMForecaster's (same names, same defaults). ``horizon=None`` trains for
    the largest step of the ``fh`` given to ``fit`` if any, else LSTMForecaster's default;
    ``predict`` then forecasts up to the largest requested step and returns those asked for.

    Examples
    --------
    >>> from sktime.datasets import load_airline
    >>> from lstm_native.interop.sktime import SktimeLSTMForecaster
    >>> y = load_airline()
    >>> f = SktimeLSTMForecaster(n_ensemble=1, max_iter=20, random_state=0)
    >>> f.fit(y, fh=[1, 2, 3]).predict().shape
    (3,)
    """

    _tags = {
        "authors": ["lstm_native developers"],
        "y_inner_mtype": "pd.Series",
        "X_inner_mtype": "pd.DataFrame",
        "scitype:y": "univariate",
        "capability:exogenous": False,
        "capability:insample": False,
        "capability:pred_int": False,
        "capability:missing_values": False,
        "requires-fh-in-fit": False,
        "capability:random_state": True,
        "python_dependencies": None,
    }

    def __init__(
        self,
        season_length=None,
        lookback=None,
        horizon=None,
        strategy="auto",
        transform="auto",
        deseasonalize="auto",
        quantiles=(0.1, 0.5, 0.9),
        loss="quantile",
        n_ensemble=6,
        calibrate=True,
        drift=False,
        level="smoothed",
        linear_weight="auto",
        cell="lstm",
        hidden_size=32,
        num_layers=2,
        max_iter=200,
        learning_rate_init=0.003,
        batch_size=64,
        alpha=0.0001,
        validation_fraction=0.15,
        random_state=None,
        n_jobs=None,
    ):
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
        # sktime 1.2 warns that remember_data will default to False; this forecaster needs it
        # True (update() refits on all the data seen, there is no native update), so the
        # warning says nothing to its users
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*remember_data", category=FutureWarning)
            super().__init__()
        if not self.get_config().get("remember_data", True):
            self.set_config(remember_data=True)

    def _fit(self, y: pd.Series, X: Any = None, fh: Any = None) -> SktimeLSTMForecaster:
        params = self.get_params(deep=False)  # LSTMForecaster's names and meanings
        if params["horizon"] is None and fh is not None:
            steps = np.asarray(fh.to_relative(self.cutoff), dtype=np.int64)
            if len(steps) and steps.max() >= 1:
                params["horizon"] = int(steps.max())
        self.forecaster_ = LSTMForecaster(**params).fit(_series(y))
        return self

    def _predict(self, fh: Any, X: Any = None) -> pd.Series:
        steps = np.asarray(fh.to_relative(self.cutoff), dtype=np.int64)
        if len(steps) == 0 or steps.min() < 1:
            raise NotImplementedError("in-sample forecasts are not supported (steps < 1)")
        h = int(steps.max())
        if len(self._y) == self.forecaster_.panel_.lengths[0]:
            pred = self.forecaster_.predict(h)
        else:  # update(..., update_params=False): the fitted networks on the data seen since
            pred = self.forecaster_.predict(h, y=_series(self._y))
        pred = np.asarray(pred, dtype=np.float64)
        index = fh.to_absolute_index(self.cutoff)
        return pd.Series(pred.reshape(-1)[steps - 1], index=index, name=self._y.name)

    @classmethod
    def get_test_params(cls, parameter_set: str = "default") -> list:
        """Small, fast settings for sktime's estimator checks (the first without the interval
        calibration, whose backtest fits three more networks every fit)."""
        fast = {"n_ensemble": 1, "hidden_size": 8, "num_layers": 1, "max_iter": 5}
        return [
            {**fast, "calibrate": False, "random_state": 0},
            {**fast, "strategy": "recursive", "loss": "squared_error", "random_state": 1},
        ]


class SktimeLSTMClassifier(ClassifierAdapter, BaseClassifier):
    """LSTMClassifier behind sktime's classifier interface: X is a ``numpy3D`` panel
    (n_instances, n_channels, n_timepoints), read as sequences of n_timepoints steps with
    n_channels features each. Parameters are LSTMClassifier's most used ones.

    Examples
    --------
    >>> import numpy as np
    >>> from lstm_native.interop.sktime import SktimeLSTMClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 2, 15))  # 40 instances, 2 channels, 15 timepoints
    >>> y = np.where(X[:, 0].mean(axis=1) > 0, "up", "down")
    >>> clf = SktimeLSTMClassifier(hidden_size=8, max_iter=30, random_state=0).fit(X, y)
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    _tags = {
        "authors": ["lstm_native developers"],
        "X_inner_mtype": "numpy3D",
        "capability:multivariate": True,
        "capability:unequal_length": False,
        "capability:missing_values": False,
        "capability:predict_proba": True,
        "capability:random_state": True,
        "python_dependencies": None,
    }

    def __init__(
        self,
        hidden_size=32,
        num_layers=1,
        cell="lstm",
        max_iter=200,
        learning_rate_init=0.001,
        batch_size="auto",
        alpha=0.0001,
        early_stopping=False,
        random_state=None,
        n_jobs=None,
    ):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.max_iter = max_iter
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.alpha = alpha
        self.early_stopping = early_stopping
        self.random_state = random_state
        self.n_jobs = n_jobs
        super().__init__()

    @classmethod
    def get_test_params(cls, parameter_set: str = "default") -> list:
        """Small, fast settings for sktime's estimator checks."""
        return [
            {"hidden_size": 8, "max_iter": 5, "random_state": 0},
            {"hidden_size": 6, "cell": "gru", "max_iter": 3, "random_state": 1},
        ]
