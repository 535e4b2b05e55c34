"""Forecasting: the next values of a series, a multivariate series or a panel of series.

* :class:`LSTMForecaster`: ``LSTMForecaster().fit(y).predict(12)``, with intervals
  (``predict(h, quantiles=[0.1, 0.9])``, ``predict_interval``), covariates (``fit(y, X)``,
  ``predict(h, X_future)``) and panels (one global model over many series);
* :class:`SlidingWindow`: windows of series for scikit-learn Pipelines;
* :func:`backtest`: forecasts from expanding-window origins, scored by MASE, sMAPE, RMSE and
  interval coverage; the metrics themselves (:func:`mase`, :func:`smape`, :func:`rmse`,
  :func:`coverage`).

Run-time dependencies stay numpy and scikit-learn; pandas is used only for pandas input.
"""

from ._backtest import backtest, coverage, mase, rmse, smape
from ._forecaster import LSTMForecaster
from ._season import infer_season_length, is_seasonal, seasonal_indices
from ._windows import SlidingWindow

__all__ = [
    "LSTMForecaster",
    "SlidingWindow",
    "backtest",
    "coverage",
    "infer_season_length",
    "is_seasonal",
    "mase",
    "rmse",
    "seasonal_indices",
    "smape",
]
