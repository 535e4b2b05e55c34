"""LSTMRegressor / LSTMClassifier / SequenceScaler: scikit-learn integration, training
behaviour, input checks, and a finite-difference check of the whole training loss."""

import io
import pickle
import re
import warnings
from contextlib import redirect_stdout

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline

from lstm_native import LSTMClassifier, LSTMRegressor, SequenceScaler, _core
from lstm_native._network import initial_parameters

no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------
def windows(series, width):
    """(len - width, width) windows and the value following each."""
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], width).copy()
    return X, series[width:].copy()


def ar2(n, seed=0, phi=(1.2, -0.6), noise=0.3):
    rng = np.random.default_rng(seed)
    x = np.zeros(n + 100)
    e = rng.standard_normal(n + 100) * noise
    for t in range(2, n + 100):
        x[t] = phi[0] * x[t - 1] + phi[1] * x[t - 2] + e[t]
    return x[100:]


def multivariate(n=160, T=8, D=3, seed=0, scale=1.0, offset=0.0):
    """3-D X with a smooth, learnable sequence-to-one target."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, D))
    y = 0.4 * X[:, :, 0].sum(1) / np.sqrt(T) + 0.8 * X[:, -1, 1 % D] - 0.3 * X[:, -2, 2 % D]
    return X * scale + offset, y


def small(est_cls=LSTMRegressor, **kw):
    params = dict(hidden_size=8, max_iter=60, learning_rate_init=0.02, random_state=0)
    params.update(kw)
    return est_cls(**params)


# ------------------------------------------------------------------------------------------
# scikit-learn integration
# ------------------------------------------------------------------------------------------
@no_convergence_warning
def test_pipeline_with_sequence_scaler_on_3d_data():
    X, y = multivariate(scale=50.0, offset=1000.0)  # far from standardized
    pipe = Pipeline([("scale", SequenceScaler()), ("lstm", small(max_iter=150, hidden_size=12))])
    pipe.fit(X[:120], y[:120])
    assert pipe.named_steps["scale"].mean_.shape == (3,)
    assert pipe.score(X[120:], y[120:]) > 0.8
    assert pipe.predict(X[120:]).shape == (40,)


@no_convergence_warning
def test_grid_search_parallel_over_hidden_sizes_and_cells():
    X, y = multivariate(n=120, T=6)
    pipe = make_pipeline(SequenceScaler(), small(max_iter=40))
    grid = GridSearchCV(
        pipe,
        {"lstmregressor__hidden_size": [4, 8], "lstmregressor__cell": ["lstm", "gru"]},
        cv=TimeSeriesSplit(n_splits=3),
        n_jobs=2,
        error_score="raise",
    )
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_params_["lstmregressor__cell"] in ("lstm", "gru")
    assert grid.predict(X[:5]).shape == (5,)


@no_convergence_warning
def test_time_series_split_cross_validation_on_windows():
    X, y = windows(ar2(400), 10)
    scores = cross_val_score(small(max_iter=50), X, y, cv=TimeSeriesSplit(n_splits=3))
    assert scores.shape == (3,) and np.all(scores > 0.3)


@no_convergence_warning
@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_pickle_round_trip_gives_identical_predictions(tmp_path, dump):
    X, y = multivariate(n=60)
    est = small(max_iter=10, cell="gru", num_layers=2, bidirectional=True).fit(X, y)
    if dump == "pickle":
        est2 = pickle.loads(pickle.dumps(est))
    else:
        joblib.dump(est, tmp_path / "model.joblib")
        est2 = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(est.predict(X), est2.predict(X))
    # the restored estimator trains on
    est2.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert est2.n_iter_ == 2


def test_clone_get_set_params():
    est = LSTMRegressor(cell="gru", hidden_size=5, dropout=0.25, max_grad_norm=None)
    params = est.get_params()
    assert params["cell"] == "gru" and params["hidden_size"] == 5
    assert params["max_grad_norm"] is None and params["dtype"] == "float32"
    c = clone(est)
    assert c.get_params() == params and c is not est
    c.set_params(hidden_size=9, solver="sgd")
    assert c.hidden_size == 9 and c.solver == "sgd" and est.hidden_size == 5
    # __init__ only stores: an invalid value is reported by fit, naming the parameter
    bad = LSTMRegressor(hidden_size=0)
    with pytest.raises(ValueError, match="hidden_size"):
        bad.fit(np.zeros((4, 3)), np.zeros(4))


@no_convergence_warning
@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(batch_size=7, shuffle=True),
        dict(cell="gru", num_layers=2, dropout=0.3, bidirectional=True),
        dict(cell="rnn", solver="sgd", learning_rate="invscaling"),
        dict(solver="rmsprop", dtype="float64", early_stopping=True),
    ],
    ids=["default", "minibatches", "gru-dropout-bidir", "rnn-sgd", "rmsprop-f64-es"],
)
def test_same_random_state_gives_bit_identical_predictions(kw):
    """Separate estimators (separate core objects) with one seed must agree bit for bit. The
    estimators pass 64-byte aligned buffers to the core; if this fails by ~1e-7, the core's
    results depend on the alignment of its own workspaces (vectorized reductions)."""
    X, y = multivariate(n=80)
    preds = [small(max_iter=15, **kw).fit(X, y).predict(X) for _ in range(3)]
    for p in preds[1:]:
        np.testing.assert_array_equal(p, preds[0])
    other = small(max_iter=15, **dict(kw, random_state=1)).fit(X, y).predict(X)
    assert not np.array_equal(other, preds[0])


@no_convergence_warning
def test_refit_is_idempotent_and_random_state_none_varies():
    X, y = multivariate(n=60)
    est = small(max_iter=5)
    a = est.fit(X, y).predict(X)
    b = est.fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    c = LSTMRegressor(hidden_size=8, max_iter=5).fit(X, y).predict(X)
    d = LSTMRegressor(hidden_size=8, max_iter=5).fit(X, y).predict(X)
    assert not np.array_equal(c, d)


# ------------------------------------------------------------------------------------------
# input forms: 2-D, 3-D, variable length
# ------------------------------------------------------------------------------------------
@no_convergence_warning
def test_n_features_in_for_each_input_form():
    X3, y = multivariate(n=30, T=6, D=3)
    assert small(max_iter=2).fit(X3, y).n_features_in_ == 3
    X2 = X3[:, :, 0]
    est2 = small(max_iter=2).fit(X2, y)
    assert est2.n_features_in_ == 6  # sklearn's rule for 2-D input
    assert est2.predict(X2).shape == (30,)
    with pytest.raises(ValueError, match="X has 5 features, but LSTMRegressor is expecting 6"):
        est2.predict(X2[:, :5])
    # 2-D X is univariate: the same sequences as a 3-D (n, T, 1) array give the same result
    np.testing.assert_array_equal(est2.predict(X2), est2.predict(X2[:, :, None]))
    seqs = [x[: 2 + i % 5] for i, x in enumerate(X3)]
    est_list = small(max_iter=2).fit(seqs, y)
    assert est_list.n_features_in_ == 3


@no_convergence_warning
def test_equal_length_list_equals_3d_array():
    X, y = multivariate(n=50)
    est = small(max_iter=10)
    params_list = est.fit(list(X), y).params_.copy()
    pred_list = est.predict(list(X))
    np.testing.assert_array_equal(est.fit(X, y).params_, params_list)
    np.testing.assert_array_equal(est.predict(X), pred_list)


def _ragged(n=48, D=2, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.standard_normal((int(rng.integers(1, 10)), D)) for _ in range(n)]
    y = np.array([s[:, 0].mean() + 0.5 * s[-1, 1] for s in seqs])
    return seqs, y


@no_convergence_warning
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_variable_length_results_do_not_depend_on_batching(cell, bidirectional):
    seqs, y = _ragged()
    est = small(cell=cell, bidirectional=bidirectional, max_iter=20, dtype="float64").fit(seqs, y)
    together = est.predict(seqs)
    one_by_one = np.concatenate([est.predict(s[None]) for s in seqs])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-12, atol=1e-12)
    reordered = est.predict(seqs[::-1])[::-1]
    np.testing.assert_allclose(together, reordered, rtol=1e-12, atol=1e-12)
    # grouping the sequences by length (no padding at all) gives the same predictions
    by_len = np.empty(len(seqs))
    lengths = np.array([len(s) for s in seqs])
    for L in np.unique(lengths):
        idx = np.flatnonzero(lengths == L)
        by_len[idx] = est.predict(np.stack([seqs[i] for i in idx]))
    np.testing.assert_allclose(together, by_len, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_loss_and_gradient_equal_per_sequence_ones(cell, bidirectional):
    """The whole-set loss/gradient of padded sequences is the mean of each sequence's own
    (unpadded) loss/gradient, and the padding values do not matter."""
    rng = np.random.default_rng(3)
    B, T, D, H, O = 5, 6, 3, 4, 2
    model = _core.Model64(_core.ModelConfig(cell, D, H, 1, O, bidirectional=bidirectional))
    params = initial_parameters(model.layout(), model.num_params, cell, H, 0)
    lengths = np.array([6, 1, 4, 2, 6], dtype=np.int64)
    X = rng.standard_normal((B, T, D))
    Y = rng.standard_normal((B, O))
    grad = np.empty(model.num_params)
    loss = model.loss_and_grad(params, X, lengths, Y, None, 0.0, grad)
    X_garbage = X.copy()
    for i, L in enumerate(lengths):
        X_garbage[i, L:] = 1e3 * rng.standard_normal((T - L, D))
    grad2 = np.empty(model.num_params)
    assert model.loss_and_grad(params, X_garbage, lengths, Y, None, 0.0, grad2) == loss
    np.testing.assert_allclose(grad2, grad, rtol=1e-12, atol=1e-15)
    losses, grads = [], []
    for i, L in enumerate(lengths):
        g = np.empty(model.num_params)
        losses.append(
            model.loss_and_grad(
                params, np.ascontiguousarray(X[i : i + 1, :L]), None, Y[i : i + 1], None, 0.0, g
            )
        )
        grads.append(g)
    np.testing.assert_allclose(loss, np.mean(losses), rtol=1e-12)
    np.testing.assert_allclose(grad, np.mean(grads, axis=0), rtol=1e-10, atol=1e-14)


@no_convergence_warning
def test_variable_length_return_sequences_gives_lists():
    seqs, _ = _ragged(n=40, D=2)
    ys = [np.cumsum(s[:, 0]) * 0.3 for s in seqs]
    est = small(return_sequences=True, max_iter=80).fit(seqs, ys)
    pred = est.predict(seqs)
    assert isinstance(pred, list) and all(p.shape == s.shape[:1] for p, s in zip(pred, seqs))
    assert est.score(seqs, ys) > 0.5
    one = est.predict([seqs[3]])[0]
    np.testing.assert_allclose(one, pred[3], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------
# targets
# ------------------------------------------------------------------------------------------
@no_convergence_warning
def test_multi_output_regression():
    X, y = multivariate(n=150)
    Y = np.column_stack([y, -y, X[:, -1, 0]])
    est = small(max_iter=120, hidden_size=12).fit(X[:120], Y[:120])
    assert est.n_outputs_ == 3
    pred = est.predict(X[120:])
    assert pred.shape == (30, 3) and pred.dtype == np.float64
    assert est.score(X[120:], Y[120:]) > 0.8
    est1 = small(max_iter=3).fit(X, y[:, None])  # a column y keeps its 2-D shape
    assert est1.predict(X).shape == (150, 1)


@no_convergence_warning
def test_return_sequences_multi_output():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 7, 2))
    Y = np.stack([np.cumsum(X[:, :, 0], 1) * 0.3, X[:, :, 1] * 0.5], axis=-1)
    est = small(return_sequences=True, max_iter=120, hidden_size=12).fit(X, Y)
    assert est.predict(X).shape == (80, 7, 2)
    assert est.score(X, Y) > 0.8
    est1 = small(return_sequences=True, max_iter=2).fit(X, Y[:, :, 0])
    assert est1.predict(X).shape == (80, 7)


@no_convergence_warning
def test_classifier_learns_separable_sequence_task():
    rng = np.random.default_rng(0)
    n, T = 300, 10
    labels = rng.integers(0, 3, n)
    t = np.arange(T)
    # three patterns: rising, falling, oscillating, plus noise
    patterns = np.stack([t / T, 1 - t / T, (t % 2).astype(float)])
    X = patterns[labels][:, :, None] + 0.15 * rng.standard_normal((n, T, 1))
    names = np.array(["up", "down", "zigzag"])
    clf = small(LSTMClassifier, max_iter=100).fit(X[:200], names[labels[:200]])
    assert set(clf.classes_) == {"down", "up", "zigzag"}
    assert clf.score(X[200:], names[labels[200:]]) > 0.95
    proba = clf.predict_proba(X[200:])
    assert proba.shape == (100, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(X[200:]))
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X[200:])), proba, rtol=1e-10)


@no_convergence_warning
def test_classifier_per_step_labels():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 8, 1))
    Y = (np.cumsum(X[:, :, 0], axis=1) > 0).astype(int)  # sign of the running sum
    clf = small(LSTMClassifier, return_sequences=True, max_iter=100).fit(X[:90], Y[:90])
    assert clf.predict(X[90:]).shape == (30, 8)
    assert clf.predict_proba(X[90:]).shape == (30, 8, 2)
    assert clf.score(X[90:], Y[90:]) > 0.85
    seqs = [x[: 3 + i % 6] for i, x in enumerate(X[:40])]
    ys = [y[: len(s)] for s, y in zip(seqs, Y[:40])]
    clf2 = small(LSTMClassifier, return_sequences=True, max_iter=5).fit(seqs, ys)
    pred = clf2.predict(seqs)
    assert [len(p) for p in pred] == [len(s) for s in seqs]


@no_convergence_warning
def test_sample_weight_zero_equals_dropping_samples():
    X, y = multivariate(n=40)
    sw = np.ones(40)
    sw[::3] = 0
    kw = dict(alpha=0.0, dtype="float64", shuffle=False, max_iter=10)  # one full batch
    a = small(**kw).fit(X, y, sample_weight=sw)
    b = small(**kw).fit(X[sw > 0], y[sw > 0])
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------------------
# training behaviour
# ------------------------------------------------------------------------------------------
@no_convergence_warning
def test_warm_start_continues_training():
    X, y = multivariate(n=100)
    est = small(max_iter=10, warm_start=True).fit(X, y)
    p1, curve1 = est.params_.copy(), list(est.loss_curve_)
    est.fit(X, y)
    assert est.n_iter_ == 10 and len(est.loss_curve_) == 20
    assert est.loss_curve_[:10] == curve1
    assert not np.array_equal(est.params_, p1)
    assert est.loss_curve_[-1] < curve1[-1]
    cold = small(max_iter=10).fit(X, y)
    np.testing.assert_allclose(cold.loss_curve_, curve1, rtol=1e-5)  # warm_start=False restarts
    with pytest.raises(ValueError, match="hidden_size"):
        est.set_params(hidden_size=5).fit(X, y)


def test_partial_fit_runs_one_epoch_per_call():
    X, y = multivariate(n=100)
    est = small()
    for k in range(1, 6):
        est.partial_fit(X, y)
        assert est.n_iter_ == k and est.t_ == 100 * k and len(est.loss_curve_) == k
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :, :2], y)
    with pytest.raises(ValueError, match="early_stopping"):
        small(early_stopping=True).partial_fit(X, y)
    clf = small(LSTMClassifier)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, (y > 0).astype(int))
    clf.partial_fit(X[:10], np.ones(10, int), classes=[0, 1])  # a chunk may lack a class
    clf.partial_fit(X, (y > 0).astype(int))
    assert list(clf.classes_) == [0, 1] and clf.n_iter_ == 2


def test_convergence_warning_at_max_iter():
    X, y = multivariate(n=40)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\)"):
        small(max_iter=3).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = small(max_iter=500, tol=10.0).fit(X, y)  # stops by tol: no warning
    # epoch 1 sets best_loss_; the schedule acts after n_iter_no_change + 1 more epochs
    assert est.n_iter_ == est.n_iter_no_change + 2


@no_convergence_warning
def test_early_stopping_validates_on_the_tail_and_restores_best_weights():
    X, y = multivariate(n=100)
    est = small(
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=3,
        tol=0.0,
        learning_rate_init=0.1,
        max_iter=300,
    )
    est.fit(X, y)
    assert est.best_loss_ is None and len(est.validation_scores_) == est.n_iter_
    assert est.n_iter_ < 300  # stopped early
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.validation_scores_[-1] < est.best_validation_score_
    # the restored weights score best_validation_score_ on the last 20 samples
    assert est.score(X[80:], y[80:]) == pytest.approx(est.best_validation_score_, abs=1e-6)
    assert est.t_ == 80 * est.n_iter_  # trained on the first 80
    with pytest.raises(ValueError, match="validation set is too small"):
        small(early_stopping=True, validation_fraction=0.01).fit(X[:50], y[:50])


@no_convergence_warning
def test_learning_rate_schedules():
    X, y = multivariate(n=50)
    inv = small(learning_rate="invscaling", power_t=0.5, max_iter=4, tol=0.0).fit(X, y)
    assert inv.learning_rate_ == pytest.approx(0.02 / (inv.t_ + 1) ** 0.5)
    out = io.StringIO()
    with redirect_stdout(out):
        ad = small(
            learning_rate="adaptive", tol=1e9, n_iter_no_change=2, max_iter=400, verbose=1
        ).fit(X, y)
    # After epoch 1 (which sets best_loss_) no epoch improves by tol: every 3rd epoch the lr is
    # divided by 5, 7 times (0.02 / 5**7 < 1e-6), and the 8th time training stops.
    assert "Setting learning rate to 0.004" in out.getvalue()
    assert "Learning rate too small. Stopping." in out.getvalue()
    assert ad.learning_rate_ <= 1e-6 and ad.n_iter_ == 1 + 3 * 8
    pl = small(learning_rate="plateau", tol=1e9, n_iter_no_change=1, max_iter=400).fit(X, y)
    # halved every 2nd epoch, 15 times (0.02 / 2**15 < 1e-6 < 0.02 / 2**14), then it stops
    assert pl.learning_rate_ <= 1e-6 and pl.n_iter_ == 1 + 2 * 16
    const = small(tol=1e9, n_iter_no_change=4, max_iter=400).fit(X, y)
    assert const.n_iter_ == 1 + 5


@no_convergence_warning
def test_verbose_prints_one_line_per_epoch():
    X, y = multivariate(n=50)
    out = io.StringIO()
    with redirect_stdout(out):
        small(verbose=1, max_iter=4, early_stopping=True).fit(X, y)
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("Epoch")]
    assert len(lines) == 4
    assert re.match(
        r"Epoch 1: loss = [\d.]+, validation score = -?[\d.]+, time = [\d.]+ s", lines[0]
    )
    out = io.StringIO()
    with redirect_stdout(out):
        small(verbose=2, max_iter=2).fit(X, y)
    assert "lr = 0.02" in out.getvalue() and "samples seen = 100" in out.getvalue()


@no_convergence_warning
@pytest.mark.parametrize("solver", ["adam", "adamw", "sgd", "rmsprop"])
def test_every_solver_reduces_the_loss(solver):
    X, y = multivariate(n=80)
    lr = {"sgd": 0.1, "rmsprop": 0.005}.get(solver, 0.02)
    est = small(solver=solver, learning_rate_init=lr, max_iter=30, tol=0.0).fit(X, y)
    assert est.loss_curve_[-1] < 0.7 * est.loss_curve_[0]


def test_initialization():
    H, D, O = 5, 3, 2
    for cell, G in (("lstm", 4), ("gru", 3), ("rnn_tanh", 1)):
        model = _core.Model64(_core.ModelConfig(cell, D, H, 2, O, bidirectional=True))
        flat = initial_parameters(model.layout(), model.num_params, cell, H, random_state=0)
        p = {
            name: flat[off : off + int(np.prod(shape))].reshape(shape)
            for name, off, shape in model.layout()
        }
        for name, w in p.items():
            if name.startswith("weight_hh"):
                for g in range(G):
                    block = w[g * H : (g + 1) * H]
                    np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-12)
            elif name.startswith("weight_ih") or name == "head.weight":
                fan_out, fan_in = w.shape
                assert np.abs(w).max() <= np.sqrt(6 / (fan_in + fan_out))
                assert np.abs(w).max() > 0.5 * np.sqrt(6 / (fan_in + fan_out))
            elif name.startswith("bias_ih") and cell == "lstm":
                expected = np.zeros(G * H)
                expected[H : 2 * H] = 1.0  # forget gate
                np.testing.assert_array_equal(w, expected)
            else:
                np.testing.assert_array_equal(w, 0.0)
        again = initial_parameters(model.layout(), model.num_params, cell, H, random_state=0)
        np.testing.assert_array_equal(flat, again)
    est = small(max_iter=1, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(*multivariate(n=10))
    assert set(est.named_parameters()) == {
        "weight_ih_l0",
        "weight_hh_l0",
        "bias_ih_l0",
        "bias_hh_l0",
        "head.weight",
        "head.bias",
    }


@no_convergence_warning
def test_beats_last_value_forecast_on_ar2():
    series = ar2(700, seed=1)
    X, y = windows(series, 12)
    n_train = 500
    est = LSTMRegressor(hidden_size=16, max_iter=150, learning_rate_init=0.01, random_state=0).fit(
        X[:n_train], y[:n_train]
    )
    pred = est.predict(X[n_train:])
    mse = np.mean((pred - y[n_train:]) ** 2)
    mse_last = np.mean((X[n_train:, -1] - y[n_train:]) ** 2)
    assert mse < 0.6 * mse_last
    # close to the noise floor (0.3^2) of the best possible one-step forecast
    assert mse < 1.5 * 0.3**2


@no_convergence_warning
def test_float64_network():
    X, y = multivariate(n=40)
    est = small(dtype="float64", max_iter=5).fit(X, y)
    assert est.params_.dtype == np.float64 and est.predict(X).dtype == np.float64
    est32 = small(dtype=np.float32, max_iter=5).fit(X, y)
    assert est32.params_.dtype == np.float32


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
X_OK, Y_OK = multivariate(n=12, T=4, D=2)


def _with(a, idx, value):
    a = np.array(a, dtype=float)
    a[idx] = value
    return a


BAD_FIT = {
    "nan-in-X": (_with(X_OK, (0, 1, 1), np.nan), Y_OK, None, ValueError, "NaN"),
    "inf-in-X": (_with(X_OK, (3, 0, 0), np.inf), Y_OK, None, ValueError, "infinity"),
    "nan-in-y": (X_OK, _with(Y_OK, 2, np.nan), None, ValueError, "y contains NaN"),
    "nan-in-sample_weight": (
        X_OK,
        Y_OK,
        _with(np.ones(12), 1, np.nan),
        ValueError,
        "sample_weight",
    ),
    "negative-sample_weight": (X_OK, Y_OK, -np.ones(12), ValueError, "sample_weight"),
    "X-1d": (np.arange(12.0), Y_OK, None, ValueError, "Expected 2D array"),
    "X-4d": (X_OK[..., None], Y_OK, None, ValueError, "X has 4 dimensions"),
    "mixed-feature-counts": (
        [np.zeros((3, 2)), np.zeros((4, 3))],
        [1.0, 2.0],
        None,
        ValueError,
        "same number of features",
    ),
    "empty-sequence": (
        [np.zeros((3, 2)), np.zeros((0, 2))],
        [1.0, 2.0],
        None,
        ValueError,
        "empty sequence",
    ),
    "empty-list": ([], [], None, ValueError, "empty"),
    "empty-array": (np.zeros((0, 4, 2)), np.zeros(0), None, ValueError, "0 sample"),
    "object-dtype": (
        np.array([["a", "b"], ["c", "d"]], dtype=object),
        [1.0, 2.0],
        None,
        ValueError,
        "could not convert",
    ),
    "complex": (X_OK + 1j, Y_OK, None, ValueError, "[Cc]omplex"),
    "y-wrong-length": (X_OK, Y_OK[:-1], None, ValueError, "inconsistent numbers of samples"),
    "y-none": (X_OK, None, None, ValueError, "requires y"),
    "sample_weight-wrong-length": (X_OK, Y_OK, np.ones(5), ValueError, "sample_weight"),
}


@pytest.mark.parametrize("case", list(BAD_FIT), ids=list(BAD_FIT))
def test_bad_input_to_fit(case):
    X, y, sw, exc, match = BAD_FIT[case]
    with pytest.raises(exc, match=match):
        small(max_iter=1).fit(X, y, sample_weight=sw)


@pytest.mark.parametrize(
    "param, value",
    [
        ("hidden_size", 0),
        ("dropout", 1.5),
        ("batch_size", -1),
        ("num_layers", 0),
        ("cell", "transformer"),
        ("solver", "lbfgs"),
        ("learning_rate", "cosine"),
        ("max_grad_norm", -1.0),
        ("dtype", "float16"),
        ("validation_fraction", 1.0),
        ("max_iter", 0),
        ("alpha", -1.0),
    ],
)
def test_bad_hyperparameters_name_the_parameter(param, value):
    est = LSTMRegressor(**{param: value})
    with pytest.raises(ValueError, match=f"'{param}' parameter"):
        est.fit(X_OK, Y_OK)


def test_predict_before_fit_and_feature_mismatch():
    for est in (LSTMRegressor(), LSTMClassifier()):
        with pytest.raises(NotFittedError):
            est.predict(X_OK)
    with pytest.raises(NotFittedError):
        LSTMClassifier().predict_proba(X_OK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = small(max_iter=1).fit(X_OK, Y_OK)
    with pytest.raises(ValueError, match="X has 3 features, but LSTMRegressor is expecting 2"):
        est.predict(np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="2-D"):
        est.predict(np.zeros((2, 4)))  # univariate sequences for a 2-feature model
    with pytest.raises(ValueError, match="NaN"):
        est.predict(_with(X_OK, (0, 0, 0), np.nan))


def test_classifier_bad_targets():
    with pytest.raises(ValueError, match="class"):
        small(LSTMClassifier).fit(X_OK, np.zeros(12))
    with pytest.raises(ValueError, match="Unknown label type"):
        small(LSTMClassifier).fit(X_OK, np.linspace(0, 1, 12))


def test_regressor_return_sequences_needs_per_step_targets():
    with pytest.raises(ValueError, match="return_sequences"):
        small(return_sequences=True).fit(X_OK, Y_OK)


# ------------------------------------------------------------------------------------------
# SequenceScaler
# ------------------------------------------------------------------------------------------
def test_sequence_scaler_3d_2d_and_lists():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 7, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]
    sc = SequenceScaler().fit(X)
    np.testing.assert_allclose(sc.mean_, X.reshape(-1, 3).mean(0))
    np.testing.assert_allclose(sc.scale_, X.reshape(-1, 3).std(0))
    Z = sc.transform(X)
    assert Z.shape == X.shape
    np.testing.assert_allclose(Z.reshape(-1, 3).mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.reshape(-1, 3).std(0), 1, atol=1e-12)
    np.testing.assert_allclose(sc.inverse_transform(Z), X)
    # 2-D: univariate sequences, one feature pooled over all timesteps
    X2 = X[:, :, 1]
    sc2 = SequenceScaler().fit(X2)
    assert sc2.mean_.shape == (1,) and sc2.n_features_in_ == 7
    np.testing.assert_allclose(sc2.transform(X2), (X2 - X2.mean()) / X2.std())
    # lists of different lengths: statistics over the real steps only
    seqs = [X[i, : 1 + i % 7] for i in range(20)]
    sc3 = SequenceScaler().fit(seqs)
    allsteps = np.concatenate(seqs)
    np.testing.assert_allclose(sc3.mean_, allsteps.mean(0))
    out = sc3.transform(seqs)
    assert isinstance(out, list) and [o.shape for o in out] == [s.shape for s in seqs]
    np.testing.assert_allclose(np.concatenate(out).std(0), 1.0)
    back = sc3.inverse_transform(out)
    for b, s in zip(back, seqs):
        np.testing.assert_allclose(b, s)
    uni = [s[:, 0] for s in seqs]  # 1-D sequences stay 1-D
    assert [u.shape for u in SequenceScaler().fit_transform(uni)] == [u.shape for u in uni]
    # partial_fit over chunks equals fit on everything
    sc4 = SequenceScaler().partial_fit(X[:5]).partial_fit(X[5:12]).partial_fit(X[12:])
    np.testing.assert_allclose(sc4.mean_, sc.mean_)
    np.testing.assert_allclose(sc4.var_, sc.var_)
    assert sc4.n_samples_seen_ == 20 * 7
    # a constant feature keeps scale 1; float32 stays float32
    Xc = X.copy()
    Xc[:, :, 0] = 3.0
    sc5 = SequenceScaler().fit(Xc.astype(np.float32))
    assert sc5.scale_[0] == 1.0
    assert sc5.transform(Xc.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="X has 2 features"):
        sc.transform(X[:, :, :2])


# ------------------------------------------------------------------------------------------
# gradient check of the whole training loss (recurrent layers and head) in float64
# ------------------------------------------------------------------------------------------
B, T, D, H = 3, 5, 4, 7


def _problem(cell, return_sequences, bidirectional, loss, num_layers, seed=0):
    rng = np.random.default_rng(seed)
    O = 3
    model = _core.Model64(
        _core.ModelConfig(
            cell,
            D,
            H,
            num_layers,
            O,
            bidirectional=bidirectional,
            return_sequences=return_sequences,
            loss=loss,
        )
    )
    # random (not the estimators' structured) parameters: every entry is exercised
    params = rng.uniform(-0.6, 0.6, model.num_params)
    X = rng.standard_normal((B, T, D))
    lengths = np.array([5, 2, 4], dtype=np.int64)
    sw = np.array([0.5, 2.0, 1.0])
    shape = (B, T) if return_sequences else (B,)
    if loss == "softmax":
        Y = rng.integers(0, O, size=shape).astype(np.float64)
    else:
        Y = rng.standard_normal(shape + (O,))
    return model, params, X, lengths, Y, sw


def _sampled_indices(model, n, rng):
    """At least one entry of every tensor (the head included), the rest random."""
    idx = [off + int(rng.integers(0, int(np.prod(shape)))) for _, off, shape in model.layout()]
    rest = rng.choice(model.num_params, size=max(0, n - len(idx)), replace=False)
    return np.unique(np.concatenate([idx, rest]).astype(int))


GRAD_CASES = [
    (cell, rs, bi, loss, layers)
    for cell in ("lstm", "gru", "rnn_tanh")
    for rs, bi, loss, layers in (
        (False, False, "mse", 1),
        (True, False, "mse", 1),
        (False, True, "mse", 2),
        (True, True, "softmax", 1),
        (False, False, "softmax", 2),
    )
]


@pytest.mark.parametrize(
    "cell, return_sequences, bidirectional, loss, num_layers",
    GRAD_CASES,
    ids=[
        f"{c}-{'seq' if r else 'last'}-{'bi' if b else 'uni'}-{lo}-L{n}"
        for c, r, b, lo, n in GRAD_CASES
    ],
)
def test_training_loss_gradient_matches_finite_differences(
    cell, return_sequences, bidirectional, loss, num_layers
):
    model, params, X, lengths, Y, sw = _problem(
        cell, return_sequences, bidirectional, loss, num_layers
    )
    alpha = 0.3
    grad = np.full(model.num_params, np.nan)
    value = model.loss_and_grad(params, X, lengths, Y, sw, alpha, grad)
    assert value == pytest.approx(model.loss(params, X, lengths, Y, sw, alpha), rel=1e-13)
    eps = 1e-5
    rel = []
    for i in _sampled_indices(model, 20, np.random.default_rng(1)):
        p = params.copy()
        p[i] += eps
        up = model.loss(p, X, lengths, Y, sw, alpha)
        p[i] -= 2 * eps
        down = model.loss(p, X, lengths, Y, sw, alpha)
        fd = (up - down) / (2 * eps)
        rel.append(abs(fd - grad[i]) / max(abs(fd), abs(grad[i]), 1e-3))
    assert max(rel) < 1e-6, f"largest relative error {max(rel):.2e}"


@pytest.mark.parametrize("loss", ["mse", "softmax"])
def test_l2_penalty_covers_weights_not_biases(loss):
    model, params, X, lengths, Y, sw = _problem("lstm", False, True, loss, 2)
    penalty = model.loss(params, X, lengths, Y, sw, 0.5) - model.loss(
        params, X, lengths, Y, sw, 0.0
    )
    weights = sum(
        np.sum(params[off : off + int(np.prod(shape))] ** 2)
        for name, off, shape in model.layout()
        if "weight" in name
    )
    # over the total sample weight of the batch, as sklearn's MLP
    assert penalty == pytest.approx(0.5 * 0.5 * weights / sw.sum(), rel=1e-10)


@pytest.mark.parametrize("max_grad_norm", [0.0, 1e-3])
def test_train_epoch_takes_the_checked_gradient(max_grad_norm):
    """One full-batch SGD epoch without momentum moves the parameters by exactly
    -lr * (clipped) gradient of ``loss_and_grad``: training descends the loss checked above."""
    model, params, X, lengths, Y, sw = _problem("gru", False, True, "mse", 2)
    grad = np.empty(model.num_params)
    model.loss_and_grad(params, X, lengths, Y, sw, 0.1, grad)
    if max_grad_norm > 0:
        grad *= min(1.0, max_grad_norm / np.linalg.norm(grad))
    p = params.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    loss, step = model.train_epoch(
        p,
        m,
        v,
        0,
        X,
        lengths,
        Y,
        sw,
        _core.OptimConfig(
            batch_size=B,
            shuffle=True,
            seed=0,
            solver="sgd",
            lr=0.5,
            alpha=0.1,
            momentum=0.0,
            max_grad_norm=max_grad_norm,
        ),
    )
    assert step == 1
    assert loss == pytest.approx(model.loss(params, X, lengths, Y, sw, 0.1), rel=1e-12)
    np.testing.assert_allclose(p - params, -0.5 * grad, rtol=1e-9, atol=1e-15)


def test_core_epoch_reports_progress_and_stops_on_a_callback_exception():
    """train_epoch calls back between minibatches (always once at the end of the epoch), and
    an exception raised there (as KeyboardInterrupt is, from Ctrl-C) ends the epoch at a batch
    boundary with the parameters of the completed steps."""
    from lstm_native import _core

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 6, 2)).astype(np.float32)
    Y = rng.standard_normal((64, 1)).astype(np.float32)
    model = _core.Model32(_core.ModelConfig("lstm", 2, 5, 1, 1))
    p0 = rng.uniform(-0.3, 0.3, model.num_params).astype(np.float32)
    optim = _core.OptimConfig(batch_size=8, shuffle=False, seed=0, solver="sgd", lr=0.1, alpha=0.0)

    calls = []
    p = p0.copy()
    model.train_epoch(
        p,
        np.zeros_like(p),
        np.zeros_like(p),
        0,
        X,
        None,
        Y,
        None,
        optim,
        callback=lambda done, total: calls.append((done, total)),
    )
    assert calls and calls[-1] == (64, 64)

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop

    p = p0.copy()
    with pytest.raises(Stop):
        model.train_epoch(
            p, np.zeros_like(p), np.zeros_like(p), 0, X, None, Y, None, optim, callback=stop
        )
    # the callback fired after the last batch: the whole epoch's steps are in p
    p_full = p0.copy()
    model.train_epoch(p_full, np.zeros_like(p), np.zeros_like(p), 0, X, None, Y, None, optim)
    np.testing.assert_array_equal(p, p_full)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_stream_equals_predict_on_each_prefix(cell):
    """stream().step(o_t) gives what predict gives for the sequence o_1..o_t, for 1 and several
    parallel streams and for the classifier's probabilities; reset() starts over."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 7, 3))
    y = X[:, :, 0].sum(axis=1)
    est = LSTMRegressor(
        cell=cell, hidden_size=6, num_layers=2, max_iter=3, dtype="float64", random_state=0
    ).fit(X, y)
    s = est.stream()
    out = np.empty(1)
    for t in range(7):
        got = s.step(X[0, t], out=out)
        assert got is out
        np.testing.assert_allclose(out[0], est.predict(X[:1, : t + 1])[0], rtol=1e-12)
    s.reset()
    np.testing.assert_allclose(s.step(X[0, 0])[0], est.predict(X[:1, :1])[0], rtol=1e-12)

    many = est.stream(batch=4)
    for t in range(7):
        z = many.step(X[:4, t])
    np.testing.assert_allclose(z[:, 0], est.predict(X[:4]), rtol=1e-12)

    clf = LSTMClassifier(cell=cell, hidden_size=6, max_iter=3, dtype="float64", random_state=0).fit(
        X, (y > 0).astype(int)
    )
    cs = clf.stream()
    for t in range(7):
        p = cs.step(X[2, t])
    np.testing.assert_allclose(p, clf.predict_proba(X[2:3])[0], rtol=1e-10)
    with pytest.raises(ValueError, match="shape"):
        s.step(np.zeros(5))
    with pytest.raises(ValueError, match="bidirectional"):
        LSTMRegressor(bidirectional=True, hidden_size=4, max_iter=1).fit(X, y).stream()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_results_do_not_depend_on_the_thread_count():
    """n_jobs changes how many threads run the batch's parts, never the arithmetic: fits and
    predictions are bit-identical for 1, 2 and automatic threads (the batch here is large
    enough to be split into parts)."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((64, 40, 8)).astype(np.float32)
    y = X[:, :, 0].mean(axis=1)
    fits = [
        LSTMRegressor(hidden_size=64, max_iter=2, batch_size=64, random_state=0, n_jobs=n).fit(X, y)
        for n in (1, 2, None)
    ]
    preds = [f.predict(X) for f in fits]
    assert np.array_equal(fits[0].params_, fits[1].params_)
    assert np.array_equal(fits[0].params_, fits[2].params_)
    assert np.array_equal(preds[0], preds[1]) and np.array_equal(preds[0], preds[2])


@pytest.mark.parametrize(
    "cell", ["lstm", "gru", "rnn_tanh", "lstm_peephole", "ungated", "cell_as_input"]
)
@pytest.mark.parametrize("H,B", [(128, 1), (256, 1), (192, 1), (128, 3)])
def test_stream_steps_split_over_two_threads_change_nothing(cell, H, B):
    """Large stream steps run on two threads, cut by columns: by units with the cell on each
    half (B=1, H a multiple of 128, cells without [H] parameter vectors or a cell GEMM), or in
    two column ranges with the cell after. Both must give bit-identical outputs and states to
    one thread, and equal the model's predict on each prefix."""
    from lstm_native import _core

    rng = np.random.default_rng(7)
    D, L, O, T = 5, 2, 3, 4
    model = _core.Model64(_core.ModelConfig(cell, D, H, L, O))
    params = rng.uniform(-1, 1, model.num_params) / np.sqrt(H)
    X = rng.standard_normal((B, T, D))
    one, two = model.stream(params, B), model.stream(params, B)
    one.num_threads, two.num_threads = 1, 2
    assert (one.num_threads, two.num_threads) == (1, 2)
    for t in range(T):
        y1, y2 = one.step(X[:, t]), two.step(X[:, t])
        np.testing.assert_array_equal(y1, y2)
        want = np.empty((B, O))
        model.predict(params, np.ascontiguousarray(X[:, : t + 1]), None, want)
        np.testing.assert_allclose(y2, want, rtol=1e-12, atol=1e-12)
    s1, s2 = one.state, two.state
    for a, b in zip(s1 if isinstance(s1, tuple) else (s1,), s2 if isinstance(s2, tuple) else (s2,)):
        np.testing.assert_array_equal(a, b)
    two.state = s1  # setting the state is seen by the next step of a split stream
    np.testing.assert_array_equal(two.step(X[:, 0]), one.step(X[:, 0]))
