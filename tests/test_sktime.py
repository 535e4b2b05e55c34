"""The sktime adapters (lstm_native.interop.sktime) pass sktime's own estimator checks, and
give what the native estimators give."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sktime")
pd = pytest.importorskip("pandas")

from sktime.utils.estimator_checks import check_estimator  # noqa: E402

from lstm_native import LSTMClassifier, LSTMForecaster  # noqa: E402
from lstm_native.interop.sktime import SktimeLSTMClassifier, SktimeLSTMForecaster  # noqa: E402


@pytest.mark.parametrize("cls", [SktimeLSTMForecaster, SktimeLSTMClassifier])
def test_sktime_estimator_checks(cls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(cls, raise_exceptions=False)
    failed = {name: str(r)[:300] for name, r in results.items() if r != "PASSED"}
    assert len(results) > 50, f"only {len(results)} checks ran"
    assert not failed, failed


def seasonal(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, n)


def test_forecaster_equals_the_native_one_at_the_requested_steps():
    idx = pd.period_range("2000-01", periods=96, freq="M")
    y = pd.Series(seasonal(96), index=idx)
    params = dict(n_ensemble=1, hidden_size=8, num_layers=1, max_iter=20, random_state=3)
    fh = [1, 3, 7]
    ours = SktimeLSTMForecaster(**params).fit(y, fh=fh).predict()
    native = LSTMForecaster(horizon=7, **params).fit(y).predict(7)
    np.testing.assert_allclose(ours.to_numpy(), np.asarray(native)[[0, 2, 6]], rtol=1e-12)
    assert list(ours.index) == [idx[-1] + k for k in fh]


def test_forecaster_adapter_takes_every_modelling_parameter_of_lstmforecaster():
    """The adapter mirrors LSTMForecaster's parameters and defaults (all but its input
    columns and verbosity), so a parameter added there must be added here too."""
    native = LSTMForecaster().get_params()
    for name in ("verbose", "id_col", "time_col", "value_col"):
        del native[name]
    assert SktimeLSTMForecaster().get_params(deep=False) == native


def test_forecaster_refuses_in_sample_steps():
    y = pd.Series(seasonal(60))
    f = SktimeLSTMForecaster(n_ensemble=1, hidden_size=8, num_layers=1, max_iter=3)
    f.fit(y, fh=[1, 2])
    with pytest.raises(NotImplementedError, match="in-sample"):
        f.predict(fh=[-1, 0, 1])


def test_classifier_reads_channels_first_like_input_layout_nct():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3, 11))  # (instances, channels, timepoints)
    y = np.where(X[:, 1].sum(axis=1) > 0, "a", "b")
    params = dict(hidden_size=8, max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = SktimeLSTMClassifier(**params).fit(X, y)
        native = LSTMClassifier(input_layout="nct", **params).fit(X.astype(np.float32), y)
    np.testing.assert_array_equal(ours.predict(X), native.predict(X.astype(np.float32)))
    np.testing.assert_allclose(
        ours.predict_proba(X), native.predict_proba(X.astype(np.float32)), rtol=1e-6
    )


def test_update_without_refit_forecasts_from_the_new_data():
    """update(..., update_params=False): the fitted networks, applied to the series seen
    since (not the fitted series' forecast relabelled with the new dates)."""
    idx = pd.period_range("2000-01", periods=96, freq="M")
    y = pd.Series(seasonal(96), index=idx)
    params = dict(n_ensemble=1, hidden_size=8, num_layers=1, max_iter=5, calibrate=False)
    f = SktimeLSTMForecaster(random_state=0, **params).fit(y[:-24], fh=[1, 2, 3])
    before = f.predict()
    f.update(y[-24:-12], update_params=False)
    after = f.predict()
    assert str(after.index[0]) == "2007-01"  # 96 months from 2000-01, 12 held back
    np.testing.assert_array_equal(after.to_numpy(), f.forecaster_.predict(3, y=y[:-12]).to_numpy())
    assert not np.allclose(after.to_numpy(), before.to_numpy())
