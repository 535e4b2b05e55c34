"""The training engine and its callbacks, the one TrainState, eval_set, class_weight, and the
cheap paths of fitting (no prediction pass over the training data when a bound rules out
overflow; ragged input validated in one vectorized pass)."""

import copy
import pickle
import warnings

import numpy as np
import pytest

import lstm_native
from lstm_native import LSTMClassifier, LSTMRegressor, _network
from lstm_native._state import TrainState
from lstm_native._validation import check_sequences
from lstm_native.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)

quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def data(n=60, T=5, D=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, D))
    return X, X[:, :, 0].mean(axis=1) + 0.5 * X[:, -1, -1]


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, env):
        self.events.append(("begin", env.state.n_iter))

    def on_epoch_begin(self, env):
        self.events.append(("epoch_begin", env.epoch))

    def on_epoch_end(self, env):
        self.events.append(("epoch_end", env.epoch, env.loss, env.score, env.state.lr))

    def on_train_end(self, env):
        self.events.append(("end", env.state.n_iter, env.interrupted))


@quiet
def test_callbacks_see_every_epoch_in_order():
    X, y = data()
    rec = Recorder()
    est = LSTMRegressor(hidden_size=4, max_iter=3, tol=0.0, random_state=0, callbacks=[rec]).fit(
        X, y
    )
    kinds = [e[0] for e in rec.events]
    assert kinds == ["begin"] + ["epoch_begin", "epoch_end"] * 3 + ["end"]
    losses = [e[2] for e in rec.events if e[0] == "epoch_end"]
    assert losses == est.loss_curve_
    assert rec.events[-1] == ("end", 3, False)


@quiet
def test_a_callback_stops_training_and_changes_the_learning_rate():
    class StopAt2(Callback):
        def on_epoch_end(self, env):
            return env.epoch == 1

    X, y = data()
    est = LSTMRegressor(hidden_size=4, max_iter=50, callbacks=[StopAt2()], random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    assert not any("Maximum iterations" in str(w.message) for w in caught)  # it stopped
    assert est.n_iter_ == 2
    lrs = []

    class Spy(Callback):
        def on_epoch_begin(self, env):
            lrs.append(env.state.lr)

    LSTMRegressor(
        hidden_size=4,
        max_iter=4,
        random_state=0,
        callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1)), Spy()],
    ).fit(X, y)
    assert lrs == pytest.approx([0.1, 0.05, 0.1 / 3, 0.025])
    with pytest.raises(ValueError, match="learning-rate schedule gave"):
        LSTMRegressor(
            hidden_size=4, max_iter=2, callbacks=[LearningRateScheduler(lambda e, lr: -1.0)]
        ).fit(X, y)


@quiet
def test_learning_rate_schedule_changes_training():
    X, y = data()
    a = LSTMRegressor(hidden_size=4, max_iter=3, random_state=0).fit(X, y)
    b = LSTMRegressor(
        hidden_size=4,
        max_iter=3,
        random_state=0,
        callbacks=[LearningRateScheduler(lambda e, lr: 0.05)],
    ).fit(X, y)
    assert not np.array_equal(a.params_, b.params_)


@quiet
def test_model_checkpoint_writes_loadable_files_of_the_epoch(tmp_path):
    X, y = data()
    path = tmp_path / "ckpt.npz"
    seen = {}

    class Keep(Callback):
        def on_epoch_end(self, env):
            seen[env.state.n_iter] = env.state.params.copy()

    est = LSTMRegressor(
        hidden_size=4,
        max_iter=5,
        tol=0.0,
        random_state=0,
        callbacks=[Keep(), ModelCheckpoint(path, every=2)],
    ).fit(X, y)
    ckpt = lstm_native.load(path)
    assert ckpt.n_iter_ == 4  # epochs 2 and 4 were saved; the last one wins
    np.testing.assert_array_equal(ckpt.params_, seen[4])
    assert ckpt.loss_curve_ == est.loss_curve_[:4]
    # a checkpoint continues training like the estimator did from that epoch
    with pytest.raises(ValueError, match="every"):
        ModelCheckpoint(path, every=0)


@quiet
def test_eval_set_scores_and_early_stopping_on_it():
    X, y = data(n=100)
    Xv, yv = data(n=30, seed=1)
    est = LSTMRegressor(hidden_size=6, max_iter=6, tol=0.0, random_state=0)
    est.fit(X, y, eval_set=[(Xv, yv), (X[:10], y[:10])])
    res = est.evals_result_
    assert set(res) == {"validation_0", "validation_1"}
    assert len(res["validation_0"]["r2"]) == est.n_iter_ == 6
    assert res["validation_0"]["r2"][-1] == pytest.approx(est.score(Xv, yv), abs=1e-6)
    assert est.validation_scores_ is None and est.t_ == 600  # no validation split
    es = LSTMRegressor(
        hidden_size=6,
        max_iter=300,
        early_stopping=True,
        n_iter_no_change=3,
        learning_rate_init=0.05,
        random_state=0,
    ).fit(X, y, eval_set=(Xv, yv))
    assert es.t_ == 100 * es.n_iter_  # trained on all of X: eval_set is the validation data
    assert es.validation_scores_ == es.evals_result_["validation_0"]["r2"]
    assert es.score(Xv, yv) == pytest.approx(es.best_validation_score_, abs=1e-6)
    with pytest.raises(ValueError, match="X has 3 features"):
        est.fit(X, y, eval_set=(np.zeros((4, 5, 3)), np.zeros(4)))
    with pytest.raises(ValueError, match="eval_set must be"):
        est.fit(X, y, eval_set=[Xv])


@quiet
def test_class_weight():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 4, 2))
    y = np.where(X[:, -1, 0] > 0.8, "rare", "common")
    kw = dict(hidden_size=4, max_iter=3, random_state=0)
    balanced = LSTMClassifier(class_weight="balanced", **kw).fit(X, y)
    counts = {c: (y == c).sum() for c in ("common", "rare")}
    sw = np.array([90 / (2 * counts[c]) for c in y])
    explicit = LSTMClassifier(**kw).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(balanced.params_, explicit.params_, rtol=1e-6)
    d = LSTMClassifier(class_weight={"rare": 3.0}, **kw).fit(X, y)
    sw2 = np.where(y == "rare", 3.0, 1.0)
    np.testing.assert_allclose(
        d.params_, LSTMClassifier(**kw).fit(X, y, sample_weight=sw2).params_, rtol=1e-6
    )
    with pytest.raises(ValueError, match="not supported for partial_fit"):
        LSTMClassifier(class_weight="balanced", **kw).partial_fit(X, y, classes=["common", "rare"])
    with pytest.raises(ValueError, match="return_sequences=False"):
        LSTMClassifier(class_weight="balanced", return_sequences=True, **kw).fit(
            X, np.zeros((90, 4), int) + (X[:, :, 0] > 0)
        )


def test_train_state_copies_are_independent():
    rng = np.random.RandomState(0)
    st = TrainState.fresh(np.ones(5), 0.1, rng, validating=True)
    st.record_epoch(0.5, 10, 0.2, tol=0.0)
    c = st.copy()
    c.params[0] = 7.0
    c.loss_curve.append(1.0)
    c.rng.randint(10)
    assert st.params[0] == 1.0 and st.loss_curve == [0.5]
    assert st.rng.randint(1000) == np.random.RandomState(0).randint(1000)
    assert st.best_validation_score == 0.2 and st.best_params is not None
    assert pickle.loads(pickle.dumps(st)).scalars() == st.scalars()
    # every kind of field (TrainState._copied): the dict of lists, best_params, the generator
    # (same stream from here on, with the legacy Gaussian cache)
    st.eval_scores = {"val": [0.1]}
    st.rng.randn()  # leaves a cached Gaussian
    c = st.copy()
    c.eval_scores["val"].append(0.3)
    c.best_params[0] = 9.0
    assert st.eval_scores == {"val": [0.1]} and st.best_params[0] == 1.0
    assert c.rng is not st.rng
    np.testing.assert_array_equal(c.rng.randn(3), st.rng.randn(3))
    np.testing.assert_array_equal(c.rng.randint(0, 2**31 - 1, 4), st.rng.randint(0, 2**31 - 1, 4))
    d = TrainState.fresh(np.zeros(5), 0.2, np.random.RandomState(1), validating=False)
    d.assign(st)
    assert d.scalars() == st.scalars() and d.params is not st.params
    np.testing.assert_array_equal(d.rng.randn(2), st.rng.randn(2))


@quiet
def test_fitted_attributes_are_read_only_views_of_one_model():
    X, y = data()
    est = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0).fit(X, y)
    for name in ("n_iter_", "loss_curve_", "t_", "n_features_in_", "loss_"):
        with pytest.raises(AttributeError):
            setattr(est, name, 1)
    with pytest.raises(ValueError, match="params_ must have shape"):
        est.params_ = np.zeros(3)
    est.params_ = est.params_ * 0  # replaced as a whole
    assert np.all(est.params_ == 0)
    assert not hasattr(LSTMRegressor(), "n_iter_")


@quiet
def test_no_prediction_pass_after_fit_when_a_bound_rules_out_overflow(monkeypatch):
    calls = []
    real = _network.Network.predict_raw

    def counting(self, *a, **k):
        calls.append(a[1].shape[0])
        return real(self, *a, **k)

    monkeypatch.setattr(_network.Network, "predict_raw", counting)
    X, y = data(n=80)
    LSTMRegressor(hidden_size=4, max_iter=3, random_state=0).fit(X, y)
    assert calls == []  # bounded cell, moderate weights: nothing to look at
    LSTMRegressor(cell="rnn_relu", hidden_size=4, max_iter=3, random_state=0).fit(X, y)
    assert calls == [80]  # relu can overflow: the final weights are checked once
    est = LSTMRegressor(hidden_size=4, max_iter=3, random_state=0).fit(X, y)
    assert est.network_config_["cell"] == "lstm"
    net = _network.Network(est.network_config_)
    assert net.outputs_bounded(est.params_, 10.0, 5)
    assert not net.outputs_bounded(est.params_ * 1e36, 10.0, 5)


def test_ragged_lists_are_validated_in_one_pass_with_the_same_result():
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((int(rng.integers(1, 9)), 3)) for _ in range(40)]
    fast = check_sequences(X, dtype=np.float32)
    slow = check_sequences([x.tolist() for x in X], dtype=np.float32)  # per-sequence path
    np.testing.assert_array_equal(fast.X, slow.X)
    np.testing.assert_array_equal(fast.lengths, slow.lengths)
    bad = copy.deepcopy(X)
    bad[17] = np.ones((4, 3))
    bad[17][2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X\[17\] contains NaN"):
        check_sequences(bad, dtype=np.float64)
    big = [x * 1e300 for x in X]
    with pytest.raises(ValueError, match=r"X\[\d+\] contains infinity"):
        check_sequences(big, dtype=np.float32)


@quiet
def test_user_early_stopping_and_plateau_callbacks():
    X, y = data()
    rec = Recorder()
    est = LSTMRegressor(
        hidden_size=4,
        max_iter=200,
        tol=1e9,
        n_iter_no_change=np.inf,
        learning_rate_init=0.05,
        random_state=0,
        callbacks=[EarlyStopping(patience=2), rec],
    ).fit(X, y)
    assert est.n_iter_ == 1 + 3  # best after epoch 1, then 3 epochs without improvement
    # ... but not while the loss still sits on its initial plateau (no better than a constant
    # model): a slow start gets up to 3 * (patience + 1) epochs
    slow = LSTMRegressor(
        hidden_size=4,
        max_iter=200,
        tol=1e9,
        n_iter_no_change=np.inf,
        learning_rate_init=1e-5,
        random_state=0,
        callbacks=[EarlyStopping(patience=2)],
    ).fit(X, y)
    assert slow.n_iter_ == 3 * 3
    est = LSTMRegressor(
        hidden_size=4,
        max_iter=200,
        tol=1e9,
        n_iter_no_change=np.inf,
        learning_rate_init=0.01,
        random_state=0,
        callbacks=[ReduceLROnPlateau(factor=0.1, patience=0, min_lr=1e-4)],
    )
    est.fit(X, y)
    # three reductions (0.01 -> 1e-4) and a stop, after any initial-plateau epochs (at most 3)
    assert est.learning_rate_ == pytest.approx(1e-4) and 1 + 3 <= est.n_iter_ <= 3 + 3


# -- the new user's findings ---------------------------------------------------------------------
@quiet
def test_input_layout_nct_reads_aeon_style_data_and_a_transposed_layout_warns():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2, 30))  # (n, channels, timesteps), as aeon stores
    y = X[:, 0, -1] - X[:, 1, -3]
    kw = dict(hidden_size=6, max_iter=5, random_state=0)
    nct = LSTMRegressor(input_layout="nct", **kw).fit(X, y)
    ntc = LSTMRegressor(**kw).fit(np.swapaxes(X, 1, 2), y)
    np.testing.assert_array_equal(nct.predict(X), ntc.predict(np.swapaxes(X, 1, 2)))
    assert nct.n_features_in_ == 2
    with pytest.warns(UserWarning, match="input_layout='nct'"):
        LSTMRegressor(**kw).fit(rng.standard_normal((60, 1, 30)), y)


@quiet
def test_input_layout_applies_to_eval_set_and_diagnostics_and_warns_when_nct_looks_wrong():
    from lstm_native.diagnostics import gate_trace

    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 8, 8))  # as many channels as steps: a transposition is silent
    y = X[:, 0, -1] - X[:, 1, -3]
    Xv, yv = X[:20], y[:20]
    kw = dict(hidden_size=6, max_iter=3, random_state=0, n_jobs=1)
    est = LSTMRegressor(input_layout="nct", **kw).fit(X, y, eval_set=(Xv, yv))
    # the validation score is predict's on the same data, read in the same layout
    assert est.evals_result_["validation_0"]["r2"][-1] == pytest.approx(est.score(Xv, yv), 1e-5)
    # the diagnostics read an estimator's X as it does
    trace = gate_trace(est, Xv)
    twin = LSTMRegressor(**kw).fit(np.swapaxes(X, 1, 2), y)
    np.testing.assert_array_equal(trace["h"], gate_trace(twin, np.swapaxes(Xv, 1, 2))["h"])
    # (n, T, C) data passed as "nct" becomes a handful of steps of many features: warned
    with pytest.warns(UserWarning, match="read with input_layout='nct' as 1 timestep"):
        LSTMRegressor(input_layout="nct", **kw).fit(rng.standard_normal((40, 30, 1)), y)


@quiet
def test_a_list_of_arrays_is_a_list_of_sequences_whatever_their_lengths():
    """One rule for a list of windows, whether or not their lengths happen to agree."""
    rng = np.random.default_rng(0)
    w6, w7 = rng.standard_normal(6), rng.standard_normal(7)
    wide = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0, n_jobs=1)
    wide.fit(rng.standard_normal((40, 10)), rng.standard_normal(40))
    same, mixed = wide.predict([w6, w6]), wide.predict([w6, w7])  # any length, both
    assert same[0] == mixed[0] and same.shape == (2,)
    for seqs in ([w6, w6], [w6, w7]):
        est = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0, n_jobs=1)
        assert est.fit(seqs, [1.0, 2.0]).n_features_in_ == 1
        est = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0, return_sequences=True)
        out = est.fit(seqs, [np.ones(len(s)) for s in seqs]).predict(seqs)
        assert isinstance(out, list) and [len(o) for o in out] == [len(s) for s in seqs]


@quiet
def test_padded_per_step_labels_are_cropped_to_each_sequence():
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((3 + i % 5, 2)) for i in range(60)]
    Y = np.full((60, 7), -1)  # -1 pads each row beyond its sequence's length
    for i, x in enumerate(X):
        Y[i, : len(x)] = (x[:, 0] > 0).astype(int)
    clf = LSTMClassifier(hidden_size=6, max_iter=3, random_state=0, return_sequences=True)
    clf.fit(X, Y)
    np.testing.assert_array_equal(clf.classes_, [0, 1])  # not the padding
    as_list = [row[: len(x)] for row, x in zip(Y, X)]
    assert clf.score(X, Y) == clf.score(X, as_list)


@quiet
def test_class_weight_trains_but_the_validation_score_is_accuracy():
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 5, 2))
    y = (X[:, -1, 0] > 0.8).astype(int)  # imbalanced
    clf = LSTMClassifier(
        hidden_size=4,
        max_iter=1,
        random_state=0,
        class_weight="balanced",
        early_stopping=True,
        validation_fraction=0.25,
    ).fit(X, y)
    assert clf.validation_scores_[-1] == pytest.approx(accuracy_score(y[60:], clf.predict(X[60:])))


@quiet
def test_parameters_a_warm_start_or_the_training_loop_cannot_honour_are_refused():
    X, y = data()
    est = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0).fit(X, y)
    est.set_params(warm_start=True, dtype="float64")
    with pytest.raises(ValueError, match="dtype changed .*'float32' -> 'float64'"):
        est.fit(X, y)
    with pytest.raises(ValueError, match="dtype changed"):
        est.partial_fit(X, y)
    with pytest.raises(TypeError, match=r"callbacks\[0\] is .* which has no on_train_begin"):
        LSTMRegressor(max_iter=1, callbacks=[object()]).fit(X, y)
    with pytest.raises(ValueError, match="'n_jobs' parameter"):
        LSTMRegressor(max_iter=1, n_jobs=0).fit(X, y)
    with pytest.raises(ValueError, match="X has 4 dimensions"):
        LSTMRegressor(max_iter=1).fit(X[..., None], y)


def test_sequence_scaler_output_containers_apply_to_tables_only():
    import sklearn
    from sklearn.base import clone

    from lstm_native import SequenceScaler

    pd = pytest.importorskip("pandas")
    X3 = np.random.default_rng(0).standard_normal((10, 4, 2))
    scaler = SequenceScaler().set_output(transform="pandas")
    assert isinstance(clone(scaler).fit_transform(X3), np.ndarray)  # no table form
    table = clone(scaler).fit_transform(pd.DataFrame(X3[:, :, 0], index=list("abcdefghij")))
    assert isinstance(table, pd.DataFrame) and list(table.index) == list("abcdefghij")
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(SequenceScaler().fit_transform(X3), np.ndarray)
        assert isinstance(SequenceScaler().fit_transform(list(X3)), list)
        assert isinstance(SequenceScaler().fit_transform(X3[:, :, 0]), pd.DataFrame)


def test_a_fit_no_better_than_a_constant_warns():
    X = np.zeros((80, 5, 2))  # nothing to learn from
    y = np.arange(80) % 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LSTMClassifier(hidden_size=4, max_iter=30, random_state=0).fit(X, y)
    assert any("no better than a constant prediction" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:  # and one that learns does not warn
        warnings.simplefilter("always")
        Xs, ys = data(n=80)
        LSTMRegressor(hidden_size=4, max_iter=30, random_state=0).fit(Xs, ys)
    assert not any("no better than a constant" in str(w.message) for w in caught)


@quiet
def test_training_does_not_stop_on_its_initial_plateau():
    """A classifier whose loss stays at chance level for the first epochs (a small learning
    rate) is not stopped there by the convergence rule: it gets 3 * (patience + 1) epochs."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 8, 1))
    y = (X[:, 0, 0] > 0).astype(int)  # the first step decides
    est = LSTMClassifier(
        hidden_size=8,
        max_iter=200,
        n_iter_no_change=3,
        tol=1e-2,
        learning_rate_init=1e-4,
        random_state=0,
    ).fit(X, y)
    assert est.n_iter_ >= 3 * (3 + 1)


def test_2d_input_of_another_width_says_how_to_pass_other_lengths():
    X, y = data(n=40, T=6, D=1)
    est = LSTMRegressor(hidden_size=3, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[:, :, 0], y)  # 2-D: univariate windows of 6 steps
    with pytest.raises(ValueError, match=r"as a 3-D array \(n_samples, n_timesteps, 1\)"):
        est.predict(X[:, :4, 0])
    assert est.predict(X[:, :4, :]).shape == (40,)  # the same windows, 3-D: any length
    ragged = [X[0, :4, 0], X[1, :5, 0]]  # and a list of different lengths
    assert len(est.predict(ragged)) == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(11,), (13, 1), (9, 3)])
def test_validation_r2_equals_sklearns_bit_for_bit(dtype, weighted, shape):
    # Early stopping compares these numbers: the fast R^2 must be r2_score's exactly, including
    # a perfectly predicted column (1), a constant one (0) and one no better than its mean.
    from sklearn.metrics import r2_score

    from lstm_native._targets import r2

    rng = np.random.default_rng(7)
    y = rng.normal(size=shape).astype(dtype)
    p = (y + 0.3 * rng.normal(size=shape)).astype(dtype)
    if len(shape) == 2 and shape[1] == 3:
        p[:, 0] = y[:, 0]  # perfect column
        y[:, 1] = 2.5  # constant target, imperfect prediction
        p[:, 2] = y[:, 2].mean() + rng.normal(size=shape[0])  # worse than the mean
    sw = rng.uniform(0.1, 3.0, size=shape[0]) if weighted else None
    got = r2(y, p, sw)
    assert isinstance(got, float)
    assert got == r2_score(y, p, sample_weight=sw)
    # float32 weights against float64 targets, and the reverse: the dtype sklearn picks
    if weighted:
        assert r2(y, p, sw.astype(np.float32)) == r2_score(
            y, p, sample_weight=sw.astype(np.float32)
        )


def test_validation_r2_leaves_what_it_does_not_cover_to_sklearn():
    from sklearn.exceptions import UndefinedMetricWarning

    from lstm_native._targets import r2

    y = np.arange(5.0)
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(r2(y[:1], y[:1], None))
    with pytest.raises(ValueError, match="NaN"):
        r2(y, np.array([0.0, np.nan, 1.0, 2.0, 3.0]), None)
