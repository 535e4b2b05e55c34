"""aeon adapters: :class:`LSTMClassifier` and :class:`LSTMForecaster` as aeon estimators, so
that they run in aeon's pipelines and benchmarking. Importing this module imports aeon (an
optional extra); nothing else in lstm_native does.

* :class:`AeonLSTMClassifier` takes aeon's ``numpy3D`` collections (n_cases, n_channels,
  n_timepoints), an LSTMClassifier with ``input_layout="nct"`` inside.
* :class:`AeonLSTMForecaster`: aeon's forecaster contract, one value ``horizon`` steps after
  the series handed to ``predict`` (the fitted networks applied to it without refitting:
  ``LSTMForecaster.predict(horizon, y=...)``); univariate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aeon.classification.base import BaseClassifier
from aeon.forecasting.base import BaseForecaster

from ..forecasting import LSTMForecaster
from ._adapters import ClassifierAdapter

__all__ = ["AeonLSTMClassifier", "AeonLSTMForecaster"]


class AeonLSTMClassifier(ClassifierAdapter, BaseClassifier):
    """LSTMClassifier behind aeon's classifier interface. ``n_jobs`` defaults to 1, as aeon
    asks of every estimator (-1 or None: all cores); results do not depend on it.

    Examples
    --------
    >>> import numpy as np
    >>> from lstm_native.interop.aeon import AeonLSTMClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 2, 15))  # 40 cases, 2 channels, 15 timepoints
    >>> y = np.where(X[:, 0].mean(axis=1) > 0, "up", "down")
    >>> clf = AeonLSTMClassifier(hidden_size=8, max_iter=30, random_state=0).fit(X, y)
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    _tags = {
        "X_inner_type": "numpy3D",
        "capability:multivariate": True,
        "capability:unequal_length": False,
        "capability:missing_values": False,
        "non_deterministic": False,
        "algorithm_type": "deeplearning",
        "capability:multithreading": True,
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
        n_jobs=1,
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
    def _get_test_params(cls, parameter_set: str = "default") -> dict:
        """Small, fast settings for aeon's estimator checks."""
        return {"hidden_size": 8, "max_iter": 5, "random_state": 0}


class AeonLSTMForecaster(BaseForecaster):
    """LSTMForecaster behind aeon's forecaster interface: ``fit(y)`` trains the networks on
    the series y; ``predict(y)`` returns the value ``horizon`` steps after the end of y (any
    series: the fitted networks forecast it, normalized as in fit). Parameters are
    LSTMForecaster's most used ones.

    Examples
    --------
    >>> import numpy as np
    >>> from lstm_native.interop.aeon import AeonLSTMForecaster
    >>> t = np.arange(96)
    >>> y = 100 + t + 10 * np.sin(2 * np.pi * t / 12)
    >>> f = AeonLSTMForecaster(horizon=3, n_ensemble=1, max_iter=20, random_state=0).fit(y)
    >>> isinstance(f.predict(y), float)
    True
    """

    _tags = {
        "capability:univariate": True,
        "capability:multivariate": False,
        "capability:horizon": True,
        "capability:exogenous": False,
        "capability:missing_values": False,
        "y_inner_type": "np.ndarray",
        "python_dependencies": None,
    }

    def __init__(
        self,
        horizon=1,
        season_length=None,
        lookback=None,
        n_ensemble=6,
        calibrate=True,
        hidden_size=32,
        num_layers=2,
        max_iter=200,
        learning_rate_init=0.003,
        random_state=None,
    ):
        self.season_length = season_length
        self.lookback = lookback
        self.n_ensemble = n_ensemble
        self.calibrate = calibrate
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.max_iter = max_iter
        self.learning_rate_init = learning_rate_init
        self.random_state = random_state
        super().__init__(horizon=horizon, axis=1)

    def _fit(self, y: np.ndarray, exog: Any = None) -> AeonLSTMForecaster:
        params = self.get_params(deep=False)
        del params["horizon"]  # aeon's step to predict, not LSTMForecaster's trained horizon
        self.forecaster_ = LSTMForecaster(**params).fit(np.asarray(y, dtype=np.float64).reshape(-1))
        return self

    def _predict(self, y: np.ndarray, exog: Any = None) -> float:
        series = np.asarray(y, dtype=np.float64).reshape(-1)
        path = self.forecaster_.predict(int(self.horizon), y=series)
        return float(np.asarray(path).reshape(-1)[-1])

    @classmethod
    def _get_test_params(cls, parameter_set: str = "default") -> dict:
        """Small, fast settings for aeon's estimator checks."""
        return {
            "n_ensemble": 1,
            "hidden_size": 8,
            "num_layers": 1,
            "max_iter": 5,
            "random_state": 0,
        }
