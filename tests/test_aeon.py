"""The aeon adapter (lstm_native.interop.aeon) passes aeon's own estimator checks and gives
what LSTMClassifier(input_layout="nct") gives."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("aeon")

from aeon.testing.estimator_checking import check_estimator

from lstm_native import LSTMClassifier
from lstm_native.interop.aeon import AeonLSTMClassifier


def test_aeon_estimator_checks():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(AeonLSTMClassifier, raise_exceptions=False)
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
