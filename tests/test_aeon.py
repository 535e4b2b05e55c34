"""The aeon adapters (lstm_native.interop.aeon) pass aeon's own estimator checks and give
what LSTMClassifier(input_layout="nct") and LSTMForecaster give."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("aeon")

from aeon.testing.estimator_checking import check_estimator

from lstm_native import LSTMClassifier, LSTMForecaster
from lstm_native.interop.aeon import AeonLSTMClassifier, AeonLSTMForecaster


@pytest.mark.parametrize("cls", [AeonLSTMClassifier, AeonLSTMForecaster])
def test_aeon_estimator_checks(cls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(cls, raise_exceptions=False)
    failed = {name: str(r)[:300] for name, r in results.items() if r != "PASSED"}
    assert len(results) >= 15, f"only {len(results)} checks ran"
    assert not failed, failed


def test_aeon_classifier_equals_the_native_one():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 3, 11))  # (cases, channels, timepoints)
    y = np.where(X[:, 2].sum(axis=1) > 0, 1, 0)
    params = dict(hidden_size=8, max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = AeonLSTMClassifier(**params).fit(X, y)
        native = LSTMClassifier(input_layout="nct", n_jobs=1, **params).fit(X.astype(np.float32), y)
    np.testing.assert_array_equal(ours.predict(X), native.predict(X.astype(np.float32)))
    np.testing.assert_allclose(
        ours.predict_proba(X), native.predict_proba(X.astype(np.float32)), rtol=1e-6
    )


def test_aeon_forecaster_gives_the_native_forecast_at_its_horizon():
    t = np.arange(96)
    y = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12)
    params = dict(n_ensemble=1, hidden_size=8, num_layers=1, max_iter=10, random_state=0)
    f = AeonLSTMForecaster(horizon=4, **params).fit(y)
    native = LSTMForecaster(**params).fit(y)
    assert f.predict(y) == pytest.approx(float(native.predict(4)[-1]), rel=1e-12)
    other = y[:70] * 3.0  # a series it was not fitted on: the fitted networks forecast it
    assert f.predict(other) == pytest.approx(float(native.predict(4, y=other)[-1]), rel=1e-12)
