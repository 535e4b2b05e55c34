"""lstm_native.interop: ONNX export against predict (ONNX Runtime), PyTorch round trips, Keras
layers, set_named_parameters, and fits on a Dask LocalCluster against local fits.

Every part skips cleanly when its optional package (onnx + onnxruntime, torch, keras, dask +
distributed) is missing. Error measure: conftest.rel_err (max |a - b| / max(max |b|, 1)), float32
to 1e-5.
"""

import importlib.util
import io
import os
import pickle
import warnings

import numpy as np
import pytest
from conftest import rel_err
from sklearn.exceptions import NotFittedError

from lstm_native import LSTMClassifier, LSTMRegressor, nn
from lstm_native.interop import set_named_parameters

TOL = 1e-5
D, H = 3, 6
UNSUPPORTED_ONNX = (
    "lstm_1997",
    "cifg",
    "no_input_gate",
    "no_output_gate",
    "ungated",
    "cell_as_input",
)


# ------------------------------------------------------------------------------------------
# fitted models with random weights (a short fit, then every parameter redrawn)
# ------------------------------------------------------------------------------------------
def data(n=30, T=7, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, D)).astype(np.float32)
    s = X.sum(axis=2)
    return X, s.sum(axis=1), s


def make(
    kind="regressor",
    cell="lstm",
    num_layers=1,
    bidirectional=False,
    return_sequences=False,
    dtype="float32",
    labels=None,
    seed=0,
):
    X, y, y_steps = data()
    if kind == "classifier":
        classes = np.asarray(labels if labels is not None else [0, 1, 2])
        y = classes[np.digitize(y, [-1.0, 1.0])]
        y_steps = classes[np.digitize(y_steps, [-0.5, 0.5])]
        cls = LSTMClassifier
    else:
        cls = LSTMRegressor
    est = cls(
        cell=cell,
        hidden_size=H,
        num_layers=num_layers,
        bidirectional=bidirectional,
        return_sequences=return_sequences,
        max_iter=1,
        random_state=0,
        dtype=dtype,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the one-epoch fit
        est.fit(X, y_steps if return_sequences else y)
    rng = np.random.default_rng(seed)
    est.set_named_parameters(
        {k: 0.6 * rng.standard_normal(v.shape) for k, v in est.named_parameters().items()}
    )
    return est


def batches(T_long=7, T_short=3):
    """(name, X (B, T, D), lengths or None): batch 1 and 5, two lengths, a ragged batch."""
    rng = np.random.default_rng(7)
    out = []
    for B in (1, 5):
        for T in (T_long, T_short):
            out.append((f"B{B}_T{T}", rng.standard_normal((B, T, D)).astype(np.float32), None))
    out.append(
        (
            "ragged",
            rng.standard_normal((5, T_long, D)).astype(np.float32),
            np.array([7, 3, 1, 5, 7]),
        )
    )
    return out


def ours(est, X, lengths):
    """predict / predict_proba (classifier) as one padded array, 0 past each length."""
    Xin = X if lengths is None else [X[i, :n] for i, n in enumerate(lengths)]
    res = est.predict_proba(Xin) if isinstance(est, LSTMClassifier) else est.predict(Xin)
    if lengths is None:
        return np.asarray(res)
    if not est.return_sequences:
        return np.asarray(res)
    padded = np.zeros((len(res), X.shape[1]) + np.shape(res[0])[1:])
    for i, r in enumerate(res):
        padded[i, : len(r)] = r
    return padded


# ------------------------------------------------------------------------------------------
# ONNX
# ------------------------------------------------------------------------------------------
def ort_session(proto):
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_onnx(est, X, lengths, sessions=None):
    """The graph's outputs on X (one exported graph per sequence_lens setting, reused from
    ``sessions`` for every batch size and length: the axes are dynamic)."""
    sessions = {} if sessions is None else sessions
    key = lengths is not None
    if key not in sessions:
        sessions[key] = ort_session(est.to_onnx(sequence_lens=key))
    sess = sessions[key]
    feed = {"X": X}
    if lengths is not None:
        feed["sequence_lens"] = lengths.astype(np.int32)
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    return outs


def check_onnx_equals_predict(est):
    sessions: dict = {}
    for name, X, lengths in batches():
        outs = run_onnx(est, X, lengths, sessions)
        expected = ours(est, X, lengths)
        got = outs["probabilities" if isinstance(est, LSTMClassifier) else "output"]
        got = got.reshape(expected.shape)
        err = rel_err(got, expected)
        assert err <= TOL, f"{name}: ONNX Runtime vs predict rel err {err:.2e}"
        if isinstance(est, LSTMClassifier) and not est.return_sequences:
            Xin = X if lengths is None else [X[i, :n] for i, n in enumerate(lengths)]
            np.testing.assert_array_equal(outs["label"], est.predict(Xin))


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_onnx_equals_predict(cell, num_layers, bidirectional, kind):
    pytest.importorskip("onnx")
    check_onnx_equals_predict(make(kind, cell, num_layers, bidirectional))


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
@pytest.mark.parametrize(
    "cell,num_layers,bidirectional", [("lstm", 1, False), ("gru", 2, True), ("rnn", 1, True)]
)
def test_onnx_return_sequences(cell, num_layers, bidirectional, kind):
    pytest.importorskip("onnx")
    check_onnx_equals_predict(make(kind, cell, num_layers, bidirectional, return_sequences=True))


@pytest.mark.parametrize(
    "cell", ["lstm_peephole", "rnn_relu", "no_input_activation", "no_output_activation"]
)
def test_onnx_other_exact_cells(cell):
    pytest.importorskip("onnx")
    check_onnx_equals_predict(make("regressor", cell, 2, True))


def test_onnx_classifier_labels_strings_and_floats():
    pytest.importorskip("onnx")
    X = data()[0][:5]
    for labels in (["cat", "dog", "emu"], [-1.0, 0.0, 2.0]):
        est = make("classifier", labels=labels)
        outs = run_onnx(est, X, None)
        np.testing.assert_array_equal(outs["label"], est.predict(X))


def test_onnx_file_graph_and_dynamic_axes(tmp_path):
    onnx = pytest.importorskip("onnx")
    est = make("regressor", "lstm", 2, True)
    path = tmp_path / "model.onnx"
    proto = est.to_onnx(str(path), sequence_lens=True)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded == proto
    ops = [n.op_type for n in loaded.graph.node]
    assert ops.count("LSTM") == 2 and "Gemm" in ops and ops[0] == "Transpose"
    assert all(
        {a.name: a for a in n.attribute}["direction"].s == b"bidirectional"
        for n in loaded.graph.node
        if n.op_type == "LSTM"
    )
    x_dims = [d.dim_param or d.dim_value for d in loaded.graph.input[0].type.tensor_type.shape.dim]
    assert x_dims == ["batch", "time", D]
    assert [i.name for i in loaded.graph.input] == ["X", "sequence_lens"]
    assert [o.name for o in loaded.graph.output] == ["output"]


def test_onnx_float64_model_exports_float32():
    pytest.importorskip("onnx")
    est = make("regressor", "gru", 1, False, dtype="float64")
    X = data()[0][:5]
    got = run_onnx(est, X, None)["output"]
    assert got.dtype == np.float32
    assert rel_err(got.ravel(), est.predict(X)) <= TOL


@pytest.mark.parametrize("cell", UNSUPPORTED_ONNX)
def test_onnx_unsupported_cell_raises(cell, tmp_path):
    est = make("regressor", cell)
    with pytest.raises(ValueError, match=f"cell {cell!r} has no exact equivalent"):
        est.to_onnx(str(tmp_path / "m.onnx"))
    with pytest.raises(ValueError, match="no exact equivalent"):
        nn.LSTM(D, H, cell=cell).to_onnx()
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_refusals():
    pytest.importorskip("onnx")
    with pytest.raises(NotFittedError):
        LSTMRegressor().to_onnx()
    with pytest.raises(ValueError, match="initial_state"):
        make().to_onnx(initial_state=True)
    with pytest.raises(ValueError, match="opset"):
        make().to_onnx(opset=9)
    with pytest.raises(TypeError, match="expected a fitted"):
        from lstm_native.interop import to_onnx

        to_onnx(object())


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: nn.LSTM(D, H, num_layers=2, random_state=0),
        lambda: nn.GRU(D, H, num_layers=2, random_state=0),
        lambda: nn.RNN(D, H, num_layers=2, random_state=0),
        lambda: nn.RNN(D, H, num_layers=2, nonlinearity="relu", random_state=0),
        lambda: nn.LSTM(D, H, num_layers=2, cell="lstm_peephole", random_state=0),
        lambda: nn.GRU(D, H, num_layers=2, bias=False, random_state=0),
    ],
    ids=["lstm", "gru", "rnn", "rnn_relu", "lstm_peephole", "gru_nobias"],
)
def test_onnx_layer_equals_forward(make_layer):
    pytest.importorskip("onnx")
    layer = make_layer()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 7, D)).astype(np.float32)
    lengths = np.array([7, 2, 5, 1, 7])
    h0 = (0.5 * rng.standard_normal((2, 5, H))).astype(np.float32)
    c0 = (0.5 * rng.standard_normal((2, 5, H))).astype(np.float32)
    lstm = layer.has_cell_state
    sess = ort_session(layer.to_onnx(sequence_lens=True, initial_state=True))
    feed = {"x": x, "sequence_lens": lengths.astype(np.int32), "h0": h0}
    if lstm:
        feed["c0"] = c0
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    y, state = layer.forward(x, state=(h0, c0) if lstm else h0, lengths=lengths)
    expected = {"y": y, "h": state[0] if lstm else state}
    if lstm:
        expected["c"] = state[1]
    assert sorted(got) == sorted(expected)
    for k in expected:
        assert rel_err(got[k], expected[k]) <= TOL, k
    # without the optional inputs: zero initial state, full length
    sess = ort_session(layer.to_onnx())
    assert rel_err(sess.run(["y"], {"x": x})[0], layer.forward(x)[0]) <= TOL


# ------------------------------------------------------------------------------------------
# PyTorch
# ------------------------------------------------------------------------------------------
def torch_outputs(module, X, lengths, classifier):
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        out = module(torch.from_numpy(X), None if lengths is None else torch.tensor(lengths))
        if classifier:
            out = torch.softmax(out, dim=-1)
    return out.numpy()


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
@pytest.mark.parametrize(
    "cell,num_layers,bidirectional,return_sequences",
    [
        ("lstm", 1, False, False),
        ("lstm", 2, True, False),
        ("gru", 2, False, True),
        ("gru", 1, True, False),
        ("rnn", 2, True, True),
        ("rnn_relu", 1, False, False),
    ],
)
def test_torch_round_trip(cell, num_layers, bidirectional, return_sequences, kind):
    torch = pytest.importorskip("torch")
    est = make(kind, cell, num_layers, bidirectional, return_sequences)
    module = est.to_torch()
    assert isinstance(module, torch.nn.Module) and not module.training
    assert module.rnn.batch_first
    classifier = kind == "classifier"
    for name, X, lengths in batches():
        got = torch_outputs(module, X, lengths, classifier)
        expected = ours(est, X, lengths)
        if classifier and return_sequences and lengths is not None:
            got = got * (np.arange(X.shape[1]) < lengths[:, None])[..., None]  # softmax(0) there
        assert rel_err(got.reshape(expected.shape), expected) <= TOL, name
    cls = type(est)
    back = cls.from_torch(module)
    pair = cls.from_torch(
        (module.rnn, module.head),
        est.classes_ if classifier else None,
        return_sequences=return_sequences,
    )
    X = batches()[1][1]
    for other in (back, pair):
        assert other.get_params()["cell"] in (cell, "rnn_tanh")
        for k, v in est.named_parameters().items():
            np.testing.assert_array_equal(other.named_parameters()[k], v)
        np.testing.assert_array_equal(other.predict(X), est.predict(X))


def test_from_torch_fresh_torch_network():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rnn = torch.nn.GRU(D, H, num_layers=2, bidirectional=True, batch_first=True)
    head = torch.nn.Linear(2 * H, 2)
    est = LSTMRegressor.from_torch((rnn, head), random_state=0)
    X = data()[0][:5]
    with torch.no_grad():
        _, h_n = rnn(torch.from_numpy(X))
        expected = head(h_n[-2:].transpose(0, 1).reshape(5, -1)).numpy()
    assert est.predict(X).shape == (5, 2)
    assert rel_err(est.predict(X), expected) <= TOL
    assert est.n_iter_ == 0 and est.n_features_in_ == D and est.get_params()["random_state"] == 0
    # a one-output head gives 1-D predictions, as a fit on 1-D targets
    one = LSTMRegressor.from_torch((torch.nn.LSTM(D, H), torch.nn.Linear(H, 1)))
    assert one.predict(X).shape == (5,)


def test_from_torch_classifier_classes_order_and_training(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    rnn, head = torch.nn.LSTM(D, H, batch_first=True), torch.nn.Linear(H, 3)
    est = LSTMClassifier.from_torch((rnn, head), ["zebra", "ant", "bee"])
    np.testing.assert_array_equal(est.classes_, ["ant", "bee", "zebra"])
    X, y, _ = data()
    with torch.no_grad():
        logits = head(rnn(torch.from_numpy(X))[1][0][-1]).numpy()
    names = np.array(["zebra", "ant", "bee"])
    np.testing.assert_array_equal(est.predict(X), names[logits.argmax(axis=1)])
    proba = est.predict_proba(X)
    assert rel_err(proba[:, [2, 0, 1]], torch.softmax(torch.from_numpy(logits), 1).numpy()) <= TOL
    # fitted in scikit-learn's sense: partial_fit continues, save/load round trip
    labels = names[np.digitize(y, [-1.0, 1.0])]
    est.partial_fit(X, labels)
    assert est.n_iter_ == 1
    est.save(str(tmp_path / "m.npz"))
    import lstm_native

    np.testing.assert_array_equal(
        lstm_native.load(str(tmp_path / "m.npz")).predict(X), est.predict(X)
    )


def test_from_torch_refusals():
    torch = pytest.importorskip("torch")
    lstm, head = torch.nn.LSTM(D, H), torch.nn.Linear(H, 3)
    with pytest.raises(ValueError, match="proj_size"):
        LSTMRegressor.from_torch((torch.nn.LSTM(D, H, proj_size=2), torch.nn.Linear(2, 1)))
    with pytest.raises(ValueError, match="head reads"):
        LSTMRegressor.from_torch((lstm, torch.nn.Linear(H + 1, 1)))
    with pytest.raises(TypeError, match="torch.nn.Linear"):
        LSTMRegressor.from_torch((lstm, torch.nn.Identity()))
    with pytest.raises(TypeError, match="LSTM, GRU or RNN"):
        LSTMRegressor.from_torch((torch.nn.Linear(D, H), head))
    with pytest.raises(ValueError, match="needs classes"):
        LSTMClassifier.from_torch((lstm, head))
    with pytest.raises(ValueError, match="3 outputs"):
        LSTMClassifier.from_torch((lstm, head), [0, 1])
    with pytest.raises(ValueError, match="distinct"):
        LSTMClassifier.from_torch((lstm, head), [0, 1, 1])
    with pytest.raises(ValueError, match="regressor has none"):
        LSTMRegressor.from_torch((lstm, head), [0, 1, 2])
    with pytest.raises(ValueError, match="come from the module"):
        LSTMRegressor.from_torch((lstm, head), hidden_size=4)
    with torch.no_grad():
        lstm.weight_hh_l0[0, 0] = float("nan")
    with pytest.raises(ValueError, match="weight_hh_l0 contains NaN"):
        LSTMRegressor.from_torch((lstm, head))
    with pytest.raises(ValueError, match="no PyTorch module"):
        make("regressor", "lstm_peephole").to_torch()


def test_torch_module_saves_and_loads():
    torch = pytest.importorskip("torch")
    est = make("classifier", "gru", 1, True)
    buf = io.BytesIO()
    torch.save(est.to_torch(), buf)
    buf.seek(0)
    module = torch.load(buf, weights_only=False)
    X = data()[0][:4]
    assert rel_err(torch_outputs(module, X, None, True), est.predict_proba(X)) <= TOL
    np.testing.assert_array_equal(module.classes, est.classes_)


# ------------------------------------------------------------------------------------------
# Keras
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("keras")


def keras_layer(keras, kind, seed=0, **kw):
    cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}[kind]
    layer = cls(H, return_sequences=True, return_state=True, **kw)
    layer.build((None, None, D))
    rng = np.random.default_rng(seed)  # random biases too (Keras initializes them to 0)
    layer.set_weights(
        [(0.5 * rng.standard_normal(tuple(w.shape))).astype(np.float32) for w in layer.weights]
    )
    return layer


@pytest.mark.parametrize(
    "kind,kw",
    [
        ("lstm", {}),
        ("gru", {}),
        ("rnn", {}),
        ("rnn", {"activation": "relu"}),
        ("lstm", {"use_bias": False}),
        ("gru", {"use_bias": False}),
    ],
    ids=["lstm", "gru", "simple_rnn", "simple_rnn_relu", "lstm_nobias", "gru_nobias"],
)
def test_from_keras_gives_keras_outputs(keras, kind, kw):
    from lstm_native.interop import from_keras

    layer = keras_layer(keras, kind, **kw)
    ours_layer = from_keras(layer)
    assert isinstance(ours_layer, {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind])
    x = np.random.default_rng(5).standard_normal((4, 6, D)).astype(np.float32)
    lengths = np.array([6, 2, 4, 1])
    mask = np.arange(6)[None, :] < lengths[:, None]
    for lens in (None, lengths):
        theirs = [
            o.detach().cpu().numpy() if hasattr(o, "detach") else np.asarray(o)
            for o in layer(x, mask=None if lens is None else mask)
        ]
        y, state = ours_layer.forward(x, lengths=lens)
        states = state if isinstance(state, tuple) else (state,)
        valid = mask[..., None] if lens is not None else 1.0
        assert rel_err(y * valid, theirs[0] * valid) <= TOL
        for s, t in zip(states, theirs[1:]):
            assert rel_err(s[0], t) <= TOL
        assert len(states) == len(theirs) - 1


def test_from_keras_refusals(keras):
    from lstm_native.interop import from_keras

    with pytest.raises(ValueError, match="reset_after=False"):
        from_keras(keras_layer(keras, "gru", reset_after=False))
    with pytest.raises(ValueError, match="go_backwards"):
        from_keras(keras_layer(keras, "lstm", go_backwards=True))
    with pytest.raises(ValueError, match="activation='relu'"):
        from_keras(keras_layer(keras, "lstm", activation="relu"))
    with pytest.raises(ValueError, match="hard_sigmoid"):
        from_keras(keras_layer(keras, "gru", recurrent_activation="hard_sigmoid"))
    with pytest.raises(ValueError, match="no weights yet"):
        from_keras(keras.layers.LSTM(3))
    with pytest.raises(TypeError, match="Bidirectional"):
        from_keras(keras.layers.Bidirectional(keras.layers.LSTM(3)))
    with pytest.raises(TypeError, match="converts keras.layers"):
        from_keras(keras.layers.Dense(3))


# ------------------------------------------------------------------------------------------
# set_named_parameters
# ------------------------------------------------------------------------------------------
def test_set_named_parameters_round_trip():
    est = make("regressor", "lstm", 2, True)
    X = data()[0][:5]
    before = est.named_parameters()
    pred = est.predict(X)
    old_params = est.params_
    est.set_named_parameters({k: 2 * v for k, v in before.items()})
    assert not np.array_equal(est.predict(X), pred)
    np.testing.assert_array_equal(old_params, np.concatenate([v.ravel() for v in before.values()]))
    assert est.params_ is not old_params  # replaced as a whole, the old vector untouched
    est.set_named_parameters(before)
    np.testing.assert_array_equal(est.predict(X), pred)
    for k, v in est.named_parameters().items():
        np.testing.assert_array_equal(v, before[k])
    # float64 values and integer arrays are converted; the function form is the same
    set_named_parameters(est, {k: v.astype(np.float64) for k, v in before.items()})
    np.testing.assert_array_equal(est.predict(X), pred)


def test_set_named_parameters_refusals():
    est = make("classifier", "gru")
    good = est.named_parameters()
    snapshot = est.params_.copy()

    def refused(params, match, exc=ValueError):
        with pytest.raises(exc, match=match):
            est.set_named_parameters(params)
        np.testing.assert_array_equal(est.params_, snapshot)

    refused({k: v for k, v in good.items() if k != "head.bias"}, r"missing parameters \['head")
    refused({**good, "extra": np.zeros(1)}, r"unknown parameters \['extra'\]")
    refused({**good, "weight_hh_l0": np.zeros((3, 3))}, r"weight_hh_l0 must have shape")
    refused({**good, "bias_ih_l0": np.full(good["bias_ih_l0"].shape, np.nan)}, "NaN")
    refused({**good, "head.bias": np.full(good["head.bias"].shape, np.inf)}, "infinity")
    refused({**good, "head.bias": np.full(good["head.bias"].shape, 1e39)}, "range of float32")
    refused({**good, "head.bias": good["head.bias"] + 0j}, "real numbers")
    refused({**good, "head.bias": np.array(["a"] * good["head.bias"].size)}, "real numbers")
    refused(list(good.items()), "needs a dict")
    with pytest.raises(NotFittedError):
        LSTMRegressor().set_named_parameters(good)


def test_set_named_parameters_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    est = make("regressor", "rnn")
    X = data()[0][:3]
    pred = est.predict(X)
    est.set_named_parameters(
        {k: torch.tensor(v, requires_grad=True) for k, v in est.named_parameters().items()}
    )
    np.testing.assert_array_equal(est.predict(X), pred)


def test_estimator_pickles_with_interop_methods():
    est = make("regressor", "gru")
    X = data()[0][:3]
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))


def test_importing_lstm_native_imports_no_optional_package():
    import subprocess
    import sys

    code = (
        "import sys, lstm_native, lstm_native.interop, lstm_native.interop.dask\n"
        "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'keras', 'dask', 'distributed')"
        " if m in sys.modules]\nassert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------
# Dask
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        )
        client = distributed.Client(cluster)
    yield client
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.close()
        cluster.close()


def small_regressor(**kw):
    return LSTMRegressor(hidden_size=4, max_iter=3, random_state=0, batch_size=10, **kw)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_dask_grid_search_equals_local(dask_client):
    import joblib
    from sklearn.model_selection import GridSearchCV

    X, y, _ = data(n=24, T=5)
    grid = {"cell": ["lstm", "gru"], "learning_rate_init": [1e-3, 1e-2]}

    def search():
        return GridSearchCV(small_regressor(), grid, cv=2, n_jobs=-1).fit(X, y)

    local = GridSearchCV(small_regressor(), grid, cv=2).fit(X, y)
    with joblib.parallel_backend("dask"):
        remote = search()
    np.testing.assert_array_equal(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote.predict(X), local.predict(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_dask_fit_per_group_equals_local(dask_client):
    from sklearn.base import clone

    from lstm_native.interop.dask import fit_per_group

    groups = {f"shop{i}": data(n=16, T=5, seed=i)[:2] for i in range(3)}
    est = small_regressor(cell="gru")
    fitted = fit_per_group(dask_client, est, groups)
    assert list(fitted) == list(groups)
    for key, (X, y) in groups.items():
        local = clone(est).fit(X, y)
        np.testing.assert_array_equal(fitted[key].params_, local.params_)
        np.testing.assert_array_equal(fitted[key].predict(X), local.predict(X))
    with pytest.raises(ValueError, match="group 'bad'"):
        fit_per_group(dask_client, est, {"bad": groups["shop0"] * 2})
    with pytest.raises(ValueError, match="group 'bad'"):
        fit_per_group(dask_client, est, {"bad": X})
    with pytest.raises(ValueError):
        fit_per_group(dask_client, est, {"mismatch": (groups["shop0"][0], np.zeros(3))})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_dask_forecaster_per_series_equals_local(dask_client):
    """One LSTMForecaster per series on the cluster (a series per shop), as run locally."""
    from sklearn.base import clone

    from lstm_native import LSTMForecaster
    from lstm_native.interop.dask import fit_per_group

    rng = np.random.default_rng(0)
    t = np.arange(60)
    series = {
        f"shop{i}": 50 + i * t * 0.3 + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 60)
        for i in range(3)
    }
    covariate = np.sin(np.arange(60) / 3.0)[:, None]
    groups = {key: (y,) for key, y in series.items()}
    groups["shop_x"] = (series["shop0"], covariate)  # (y, X): with a covariate
    est = LSTMForecaster(n_ensemble=1, hidden_size=8, num_layers=1, max_iter=5, random_state=0)
    fitted = fit_per_group(dask_client, est, groups)
    assert list(fitted) == list(groups)
    future = np.sin(np.arange(60, 66) / 3.0)[:, None]
    for key, args in groups.items():
        local = clone(est).fit(*args)
        kw = {"X_future": future} if len(args) == 2 else {}
        np.testing.assert_array_equal(fitted[key].predict(6, **kw), local.predict(6, **kw))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("return_sequences", [False, True])
def test_channels_first_models_export_with_their_predict_layout(return_sequences):
    """An estimator fitted with input_layout="nct" takes (batch, channels, time) in ONNX and
    in to_torch(), as its predict does (square inputs would otherwise be read transposed
    without an error)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 5, 5)).astype(np.float32)  # channels == time: no shape error
    y = X[:, 0, :] if return_sequences else X[:, 0, -1]
    est = LSTMRegressor(
        hidden_size=5,
        max_iter=3,
        random_state=0,
        input_layout="nct",
        return_sequences=return_sequences,
    ).fit(X, y)
    want = est.predict(X)
    if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime"):
        got = run_onnx(est, X, None)["output"]
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)
    if importlib.util.find_spec("torch"):
        import torch

        with torch.no_grad():
            got = est.to_torch()(torch.from_numpy(X)).numpy()
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_dask_fit_per_group_again_on_the_same_arrays(dask_client):
    """Repeated calls on identical arrays: the scattered data get fresh keys (with content
    hashes, half the calls failed with 'lost dependencies' while the last call's copies were
    being released)."""
    from lstm_native.interop.dask import fit_per_group

    X, y, _ = data(n=12, T=4)
    first = None
    for _ in range(8):
        fitted = fit_per_group(dask_client, small_regressor(), {"a": (X, y)})
        pred = fitted["a"].predict(X)
        first = pred if first is None else first
        np.testing.assert_array_equal(pred, first)
