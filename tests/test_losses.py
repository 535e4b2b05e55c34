"""LSTMRegressor's losses: loss="squared_error" | "absolute_error" | "huber" | "quantile".

The losses' math is held to the reference, finite differences and PyTorch in
test_trajectory.py; here the estimator: each loss trains on data made for it, the robust losses
resist heavy-tailed noise, quantile regression is calibrated on data with known Gaussian noise,
the parameters behave as scikit-learn expects, predict / predict_quantiles / score / stream give
what they document, and saved models round-trip (with crafted loss fields refused).
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

import lstm_native
from lstm_native import LSTMClassifier, LSTMRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(hidden_size=8, learning_rate_init=0.01, batch_size=100, alpha=0.0, random_state=0)


def make_data(n, seed, noise="gaussian", sigma=0.5, T=5):
    """y = f(x) + noise with f(x) = x_T + x_{T-1} / 2 of a univariate sequence; returns X, the
    noiseless f and y."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, T, 1))
    f = X[:, -1, 0] + 0.5 * X[:, -2, 0]
    e = rng.standard_normal(n) if noise == "gaussian" else rng.standard_t(1.5, n)
    return X, f, f + sigma * e


def start_loss(est, X, y):
    """The loss at the estimator's initial parameters: one epoch of one minibatch measures it
    before its only step."""
    return clone(est).set_params(max_iter=1, batch_size=len(X)).fit(X, y).loss_curve_[0]


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "loss, noise, kw",
    [
        ("squared_error", "gaussian", {}),
        ("absolute_error", "heavy", {}),
        ("huber", "heavy", dict(huber_delta=0.3)),
        ("quantile", "gaussian", dict(quantiles=[0.1, 0.5, 0.9])),
    ],
)
def test_each_loss_trains_to_a_lower_loss_than_it_starts_from(loss, noise, kw):
    X, _, y = make_data(1000, 0, noise, sigma=0.3 if noise == "heavy" else 0.5)
    est = LSTMRegressor(loss=loss, max_iter=30, **SMALL, **kw)
    before = start_loss(est, X, y)
    est.fit(X, y)
    assert est.network_config_["loss"] == {"squared_error": "mse"}.get(loss, loss)
    assert np.all(np.isfinite(est.loss_curve_))
    assert est.loss_curve_[-1] < 0.8 * before, (before, est.loss_curve_)


def test_robust_losses_resist_heavy_tailed_noise():
    """Student-t (1.5 degrees of freedom) noise: absolute error and Huber find f far better
    than the squared error, which chases the outliers."""
    X, f, y = make_data(1000, 0, "heavy", sigma=0.3)
    Xt, ft, _ = make_data(1000, 1, "heavy", sigma=0.3)
    err = {}
    for loss in ("squared_error", "absolute_error", "huber"):
        est = LSTMRegressor(loss=loss, huber_delta=0.3, max_iter=40, dtype="float64", **SMALL)
        err[loss] = np.mean(np.abs(est.fit(X, y).predict(Xt) - ft))
    assert err["absolute_error"] < 0.75 * err["squared_error"], err
    assert err["huber"] < 0.75 * err["squared_error"], err


def test_quantiles_are_ordered_and_calibrated():
    """Known Gaussian noise (σ = 0.5): on 2000 held-out samples [q0.1, q0.9] covers 80% of
    the targets (± 0.06) and the median splits them in halves (± 0.1); the levels come out
    ordered; their spread is the noise's (2 · 1.2816 σ)."""
    X, _, y = make_data(3000, 0)
    Xt, _, yt = make_data(2000, 1)
    est = LSTMRegressor(loss="quantile", max_iter=40, **SMALL).fit(X, y)
    q = est.predict_quantiles(Xt)
    assert q.shape == (2000, 3)
    assert np.all(q[:, 0] < q[:, 1]) and np.all(q[:, 1] < q[:, 2])
    coverage = np.mean((yt >= q[:, 0]) & (yt <= q[:, 2]))
    assert abs(coverage - 0.8) <= 0.06, coverage
    assert abs(np.mean(yt < q[:, 1]) - 0.5) <= 0.1
    assert np.mean(q[:, 2] - q[:, 0]) == pytest.approx(2 * 1.2816 * 0.5, rel=0.15)
    np.testing.assert_array_equal(est.predict(Xt), q[:, 1])  # predict: the median level
    assert est.score(Xt, yt) == pytest.approx(
        1 - np.sum((yt - q[:, 1]) ** 2) / np.sum((yt - yt.mean()) ** 2), rel=1e-6
    )


def test_quantile_regression_with_early_stopping_and_eval_sets():
    """Validation scores the median (R^2) of a head with one output per level."""
    X, _, y = make_data(600, 2)
    est = LSTMRegressor(
        loss="quantile", quantiles=[0.25, 0.75], max_iter=8, early_stopping=True, **SMALL
    )
    est.fit(X, y, eval_set=[(X[:50], y[:50])])
    assert all(np.isfinite(est.validation_scores_))
    scores = est.evals_result_["validation_0"]["r2"]
    assert len(scores) == est.n_iter_ and all(np.isfinite(scores))


# ------------------------------------------------------------------------------------------
# outputs and shapes
# ------------------------------------------------------------------------------------------
def _quantile_fit(y, quantiles=(0.1, 0.5, 0.9), X=None, **kw):
    X = make_data(60, 3)[0] if X is None else X
    est = LSTMRegressor(
        loss="quantile", quantiles=list(quantiles), hidden_size=4, max_iter=2, random_state=0, **kw
    )
    return est.fit(X, y), X


def test_predict_quantiles_shapes_and_the_point_column():
    X, _, y = make_data(60, 3)
    est, _ = _quantile_fit(y)
    assert est.network_config_["output_size"] == 3
    assert est.predict_quantiles(X).shape == (60, 3) and est.predict(X).shape == (60,)
    Y2 = np.stack([y, -y], axis=1)
    est2, _ = _quantile_fit(Y2, quantiles=(0.2, 0.4, 0.7, 0.9))  # no 0.5: the middle level
    q = est2.predict_quantiles(X)
    assert q.shape == (60, 2, 4) and est2.network_config_["output_size"] == 8
    np.testing.assert_array_equal(est2.predict(X), q[:, :, 1])  # (4 - 1) // 2 = 1: level 0.4
    raw = est2.stream(60)
    for t in range(X.shape[1]):
        out = raw.step(X[:, t].astype(np.float32))
    # the stream gives the raw head: column k * Q + j is level j of output k
    np.testing.assert_allclose(out.reshape(60, 2, 4), q, rtol=1e-5, atol=1e-5)
    est3, _ = _quantile_fit(y, quantiles=(0.3, 0.5))
    np.testing.assert_array_equal(est3.predict(X), est3.predict_quantiles(X)[:, 1])


def test_predict_quantiles_per_step_and_for_ragged_sequences():
    rng = np.random.default_rng(4)
    seqs = [rng.standard_normal((int(rng.integers(2, 7)), 2)) for _ in range(20)]
    ys = [s[:, 0] + 0.1 * rng.standard_normal(len(s)) for s in seqs]
    est, _ = _quantile_fit(ys, X=seqs, return_sequences=True)
    q = est.predict_quantiles(seqs)
    assert isinstance(q, list) and [a.shape for a in q] == [(len(s), 3) for s in seqs]
    pred = est.predict(seqs)
    for a, p in zip(q, pred):
        np.testing.assert_array_equal(p, a[:, 1])
    X = rng.standard_normal((15, 4, 2))
    Y = np.stack([X[:, :, 0], X[:, :, 1]], axis=2)
    est, _ = _quantile_fit(Y, X=X, return_sequences=True)
    assert est.predict_quantiles(X).shape == (15, 4, 2, 3)
    assert est.predict(X).shape == (15, 4, 2)
    score = est.score(X, Y)
    med = est.predict_quantiles(X)[..., 1].reshape(-1, 2)
    from sklearn.metrics import r2_score

    assert score == pytest.approx(r2_score(Y.reshape(-1, 2), med), rel=1e-6)


def test_predict_quantiles_exists_for_quantile_regressors_only():
    assert not hasattr(LSTMRegressor(), "predict_quantiles")
    assert hasattr(LSTMRegressor(loss="quantile"), "predict_quantiles")
    assert not hasattr(LSTMClassifier(), "predict_quantiles")
    X, _, y = make_data(40, 5)
    est, _ = _quantile_fit(y, X=X)
    est.set_params(loss="huber")  # the fitted network decides once fitted
    assert est.predict_quantiles(X).shape == (40, 3)
    plain = LSTMRegressor(hidden_size=3, max_iter=1).fit(X, y)
    plain.set_params(loss="quantile")
    with pytest.raises(AttributeError, match="predict_quantiles"):
        plain.predict_quantiles(X)
    with pytest.raises(NotFittedError):
        LSTMRegressor(loss="quantile").predict_quantiles(X)


# ------------------------------------------------------------------------------------------
# parameters
# ------------------------------------------------------------------------------------------
def test_parameters_as_scikit_learn_expects():
    est = LSTMRegressor(loss="quantile", quantiles=[0.2, 0.8], huber_delta=2.0, hidden_size=5)
    params = est.get_params()
    assert params["loss"] == "quantile" and params["quantiles"] == [0.2, 0.8]
    assert params["huber_delta"] == 2.0 and params["hidden_size"] == 5
    c = clone(est)
    assert c.get_params() == params and c.quantiles is not est.quantiles
    assert LSTMRegressor(**params).get_params() == params
    est.set_params(loss="huber", huber_delta=0.5)
    assert est.loss == "huber" and est.huber_delta == 0.5
    d = LSTMRegressor().get_params()
    assert (d["loss"], d["quantiles"], d["huber_delta"]) == ("squared_error", None, 1.0)
    # the classifier keeps softmax: none of these parameters
    assert not {"loss", "quantiles", "huber_delta"} & set(LSTMClassifier().get_params())
    assert "class_weight" in LSTMClassifier().get_params()
    with pytest.raises(TypeError):
        LSTMClassifier(loss="huber")
    sig = inspect.signature(LSTMRegressor.__init__)
    assert all(
        sig.parameters[n].kind is inspect.Parameter.KEYWORD_ONLY
        for n in ("loss", "quantiles", "huber_delta")
    )
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def test_selected_sklearn_checks_on_a_quantile_regressor():
    from sklearn.utils import estimator_checks as ec

    est = LSTMRegressor(loss="quantile", quantiles=[0.25, 0.5, 0.75], hidden_size=4, max_iter=3)
    name = type(est).__name__
    for check in (
        ec.check_get_params_invariance,
        ec.check_set_params,
        ec.check_no_attributes_set_in_init,
        ec.check_parameters_default_constructible,
        ec.check_estimators_overwrite_params,
        ec.check_dont_overwrite_parameters,
        ec.check_fit_idempotent,
        ec.check_estimators_pickle,
    ):
        check(name, est)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(loss="hinge"), "loss"),
        (dict(loss="quantile", quantiles=[0.5, 0.1]), "strictly increasing"),
        (dict(loss="quantile", quantiles=[0.0, 0.5]), "in \\(0, 1\\)"),
        (dict(loss="quantile", quantiles=[0.5, 1.0]), "in \\(0, 1\\)"),
        (dict(loss="quantile", quantiles=[0.5, float("nan")]), "quantiles"),
        (dict(loss="quantile", quantiles=[]), "at least one"),
        (dict(loss="quantile", quantiles=[[0.1, 0.5]]), "list of numbers"),
        (dict(loss="quantile", quantiles=["0.5"]), "list of numbers"),
        (dict(loss="quantile", quantiles=[True]), "list of numbers"),
        (dict(loss="quantile", quantiles=0.5), "quantiles"),
        (dict(loss="quantile", quantiles=[j / 101 for j in range(1, 101)]), "at most 99"),
        (dict(loss="huber", huber_delta=0.0), "huber_delta"),
        (dict(loss="huber", huber_delta=-1.0), "huber_delta"),
        (dict(loss="huber", huber_delta=float("inf")), "huber_delta"),
        (dict(loss="huber", huber_delta="1"), "huber_delta"),
    ],
)
def test_bad_loss_parameters_are_refused_before_training(kw, match):
    X, _, y = make_data(20, 6)
    est = LSTMRegressor(hidden_size=3, max_iter=1, **kw)
    with pytest.raises(InvalidParameterError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "n_iter_")


def test_loss_parameters_of_other_losses_are_ignored():
    X, _, y = make_data(30, 7)
    a = LSTMRegressor(hidden_size=3, max_iter=2, random_state=0).fit(X, y)
    b = LSTMRegressor(
        hidden_size=3, max_iter=2, random_state=0, huber_delta=5.0, quantiles=[0.3, 0.7]
    ).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.network_config_ == b.network_config_
    assert b.network_config_["quantiles"] == [] and b.network_config_["huber_delta"] == 1.0


def test_warm_start_needs_the_same_loss():
    X, _, y = make_data(30, 8)
    est = LSTMRegressor(hidden_size=3, max_iter=2, warm_start=True, random_state=0).fit(X, y)
    est.set_params(loss="absolute_error")
    with pytest.raises(ValueError, match="loss changed"):
        est.fit(X, y)
    est.set_params(loss="huber", huber_delta=1.0)
    with pytest.raises(ValueError, match="loss"):
        est.fit(X, y)
    q = LSTMRegressor(hidden_size=3, max_iter=2, warm_start=True, loss="quantile").fit(X, y)
    q.set_params(quantiles=[0.1, 0.5, 0.95])
    with pytest.raises(ValueError, match="quantiles"):
        q.fit(X, y)
    with pytest.raises(ValueError, match="quantiles changed"):
        q.partial_fit(X, y)


# ------------------------------------------------------------------------------------------
# saving
# ------------------------------------------------------------------------------------------
SAVE_CASES = {
    "absolute": dict(loss="absolute_error"),
    "huber": dict(loss="huber", huber_delta=0.25),
    "quantile": dict(loss="quantile", quantiles=[0.05, 0.5, 0.95]),
    "quantile-no-median": dict(loss="quantile", quantiles=(0.3, 0.6), dtype="float64"),
}


@pytest.mark.parametrize("case", SAVE_CASES)
def test_save_load_round_trip(case, tmp_path):
    X, _, y = make_data(40, 9)
    est = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0, **SAVE_CASES[case])
    est.fit(X, np.stack([y, 2 * y], axis=1))
    path = tmp_path / "m.npz"
    est.save(path)
    back = lstm_native.load(path)
    assert type(back) is LSTMRegressor
    params = est.get_params()
    if isinstance(params["quantiles"], tuple):
        params["quantiles"] = list(params["quantiles"])  # JSON has lists
    assert back.get_params() == params
    assert back.network_config_ == est.network_config_
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    if est.loss == "quantile":
        np.testing.assert_array_equal(back.predict_quantiles(X), est.predict_quantiles(X))
    back.partial_fit(X, np.stack([y, 2 * y], axis=1))  # and it trains on


def _rewrite(path, out, edit):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    edit(meta)
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(out, **arrays)
    return out


def test_files_without_the_loss_fields_load(tmp_path):
    """Files of earlier versions: no loss hyperparameters, no huber_delta or quantiles in the
    configuration."""
    X, _, y = make_data(30, 10)
    est = LSTMRegressor(hidden_size=3, max_iter=2, random_state=0).fit(X, y)
    est.save(tmp_path / "new.npz")

    def strip(meta):
        for key in ("loss", "quantiles", "huber_delta"):
            del meta["params"][key]
        for key in ("quantiles", "huber_delta"):
            del meta["config"][key]

    old = _rewrite(tmp_path / "new.npz", tmp_path / "old.npz", strip)
    back = lstm_native.load(old)
    assert back.loss == "squared_error" and back.network_config_ == est.network_config_
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    back.set_params(warm_start=True).fit(X, y)  # the same network as a new fit's


@pytest.mark.parametrize(
    "base, edit, match",
    [
        (
            "quantile",
            lambda m: m["config"].update(quantiles=[0.9, 0.5, 0.05]),
            "network's loss|invalid network configuration",
        ),
        (
            "quantile",
            lambda m: m["config"].update(quantiles=[0.05, 0.5]),
            "quantile level\\(s\\) and the network's output_size",
        ),
        (
            "quantile",
            lambda m: m["config"].update(quantiles="0.5"),
            "configuration entry 'quantiles'",
        ),
        (
            "quantile",
            lambda m: m["config"].update(quantiles=[0.05, None, 0.95]),
            "configuration entry 'quantiles'",
        ),
        ("quantile", lambda m: m["params"].update(quantiles=[0.1, 0.5, 0.9]), "network's loss"),
        (
            "quantile",
            lambda m: m["params"].update(quantiles=[0.9, 0.5, 0.1]),
            "invalid hyperparameters",
        ),
        ("quantile", lambda m: m["params"].update(quantiles="abc"), "hyperparameter 'quantiles'"),
        ("quantile", lambda m: m["params"].update(loss="squared_error"), "network's loss"),
        ("quantile", lambda m: m["config"].update(loss="mse"), "output_size|network's loss"),
        ("huber", lambda m: m["config"].update(huber_delta=0.5), "network's loss"),
        (
            "huber",
            lambda m: m["config"].update(huber_delta=-1.0),
            "configuration entry 'huber_delta'",
        ),
        ("huber", lambda m: m["config"].update(huber_delta=float("inf")), "huber_delta"),
        ("huber", lambda m: m["params"].update(huber_delta=0.0), "invalid hyperparameters"),
        ("huber", lambda m: m["params"].update(loss="hinge"), "invalid hyperparameters"),
        ("huber", lambda m: m["config"].update(loss="softmax"), "not that of a LSTMRegressor"),
        ("huber", lambda m: m["config"].update(loss="cross_entropy"), "configuration entry 'loss'"),
        ("huber", lambda m: m["config"].update(quantiles=[0.5]), "network's loss"),
    ],
)
def test_crafted_loss_fields_are_refused(base, edit, match, tmp_path):
    X, _, y = make_data(30, 11)
    est = LSTMRegressor(hidden_size=3, max_iter=1, random_state=0, **SAVE_CASES[base])
    est.fit(X, y)
    est.save(tmp_path / "ok.npz")
    bad = _rewrite(tmp_path / "ok.npz", tmp_path / "bad.npz", edit)
    with pytest.raises(ValueError, match=match) as info:
        lstm_native.load(bad)
    assert str(bad) in str(info.value)


def test_a_classifier_file_with_a_regression_loss_is_refused(tmp_path):
    X, _, y = make_data(30, 12)
    est = LSTMClassifier(hidden_size=3, max_iter=1, random_state=0).fit(X, y > 0)
    est.save(tmp_path / "c.npz")
    for edit in (
        lambda m: m["config"].update(loss="quantile", quantiles=[0.5]),
        lambda m: m["config"].update(huber_delta=2.0),
        lambda m: m["params"].update(loss="huber"),
    ):
        bad = _rewrite(tmp_path / "c.npz", tmp_path / "bad.npz", edit)
        with pytest.raises(ValueError, match="Cannot load"):
            lstm_native.load(bad)


def test_network_config_is_a_copy():
    X, _, y = make_data(30, 13)
    est, _ = _quantile_fit(y, X=X)
    est.network_config_["quantiles"].append(0.99)
    assert est.network_config_["quantiles"] == [0.1, 0.5, 0.9]
    assert est.predict(X).shape == (30,)
