"""Robustness: bad input, memory limits, numerical faults, Ctrl-C and threads.

Every way a user can hold the library wrong must end in a clear Python exception (ValueError /
TypeError naming the argument, NotFittedError, MemoryError naming the size), never in a crash,
a hang or a silently wrong answer. Cases that could crash the interpreter if the guarantee were
broken run in a subprocess, so that a segfault fails one test instead of killing the suite.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import accuracy_score

from lstm_native import LSTMClassifier, LSTMRegressor, _memory, nn
from lstm_native._validation import check_sequences

no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, timeout=120, env=None):
    """Runs ``code`` in a fresh interpreter; returns the CompletedProcess. A negative return
    code is the signal that killed it (a crash)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=full_env,
    )


def last_json(proc):
    assert proc.returncode == 0, (
        f"subprocess failed with return code {proc.returncode}"
        f"{f' (killed by signal {-proc.returncode})' if proc.returncode < 0 else ''}:\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def data(n=24, T=5, D=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, D))
    y = X[:, :, 0].mean(axis=1) + 0.5 * X[:, -1, -1]
    return X, y


def fitted(cls=LSTMRegressor, X=None, y=None, **kw):
    if X is None:
        X, y = data()
        if cls is LSTMClassifier:
            y = (y > 0).astype(int)
    params = dict(hidden_size=6, max_iter=3, random_state=0)
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(**params).fit(X, y)


X0, Y0 = data()


# ------------------------------------------------------------------------------------------
# bad input to the estimators (test_estimators.py covers NaN/inf/ndim/empty/object/complex
# in X and y, wrong lengths and sample_weight; these are the remaining cases)
# ------------------------------------------------------------------------------------------
def _set(a, idx, value, dtype=float):
    a = np.array(a, dtype=dtype)
    a[idx] = value
    return a


BAD_FIT = {
    "string-X": (
        np.array([["a", "b"], ["c", "d"]]),
        [1.0, 2.0],
        None,
        ValueError,
        "X must hold real numbers",
    ),
    "dict-in-X": (
        _set(np.zeros((2, 3)), (0, 0), {"a": 1}, dtype=object),
        [1.0, 2.0],
        None,
        TypeError,
        "X must hold real numbers",
    ),
    "string-in-list": (
        [np.array([["a"]]), np.array([[1.0], [2.0]])],
        [1.0, 2.0],
        None,
        ValueError,
        r"X\[0\] must hold real numbers",
    ),
    "ragged-inner-list": (
        [[[1.0, 2.0], [3.0]], [[1.0, 2.0]]],
        [1.0, 2.0],
        None,
        ValueError,
        r"X\[0\] is not a rectangular",
    ),
    "zero-timesteps-3d": (np.zeros((3, 0, 2)), np.zeros(3), None, ValueError, "0 timesteps"),
    "zero-timesteps-2d": (np.zeros((3, 0)), np.zeros(3), None, ValueError, "0 feature"),
    "zero-features": (np.zeros((3, 4, 0)), np.zeros(3), None, ValueError, "0 feature"),
    "inf-in-list": (
        [np.ones((3, 2)), _set(np.ones((2, 2)), (1, 1), np.inf)],
        [1.0, 2.0],
        None,
        ValueError,
        "infinity",
    ),
    "string-y": (X0, np.array(["a"] * 24), None, ValueError, "y must hold real numbers"),
    "complex-y": (X0, Y0 + 1j, None, ValueError, "[Cc]omplex"),
    "inf-y": (X0, _set(Y0, 3, -np.inf), None, ValueError, "y contains infinity"),
    "y-3d": (X0, Y0[:, None, None], None, ValueError, "y must be 1-D or 2-D"),
    "inf-sample_weight": (X0, Y0, _set(np.ones(24), 0, np.inf), ValueError, "sample_weight"),
    "complex-sample_weight": (X0, Y0, np.ones(24) + 1j, ValueError, "sample_weight"),
    "string-sample_weight": (
        X0,
        Y0,
        np.array(["a"] * 24),
        ValueError,
        "sample_weight must hold real numbers",
    ),
    "2d-sample_weight": (X0, Y0, np.ones((24, 1)), ValueError, "1D"),
    "zero-sample_weight": (X0, Y0, np.zeros(24), ValueError, "non-zero|positive sum"),
    "sparse-in-list": (
        [__import__("scipy.sparse").sparse.csr_matrix(np.ones((2, 2)))] * 2,
        [1.0, 2.0],
        None,
        TypeError,
        "[Ss]parse",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FIT), ids=list(BAD_FIT))
def test_bad_input_to_fit_names_the_argument(case):
    X, y, sw, exc, match = BAD_FIT[case]
    with pytest.raises(exc, match=match):
        LSTMRegressor(max_iter=1, hidden_size=3).fit(X, y, sample_weight=sw)


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("hidden_size", True, "not a bool"),
        ("num_layers", True, "not a bool"),
        ("max_iter", True, "not a bool"),
        ("batch_size", True, "not a bool"),
        ("hidden_size", -3, "'hidden_size' parameter"),
        ("hidden_size", 2.5, "'hidden_size'"),
        ("hidden_size", "8", "'hidden_size'"),
        ("dropout", -0.1, "'dropout'"),
        ("dropout", float("nan"), "'dropout'"),
        ("learning_rate_init", float("inf"), "'learning_rate_init'"),
        ("learning_rate_init", 0.0, "'learning_rate_init'"),
        ("tol", float("nan"), "'tol'"),
        ("batch_size", 0, "'batch_size'"),
        ("batch_size", "big", "'batch_size'"),
        ("max_grad_norm", 0.0, "'max_grad_norm'"),
        ("max_grad_norm", float("inf"), "'max_grad_norm'"),
        ("epsilon", 0.0, "'epsilon'"),
        ("beta_2", 1.0, "'beta_2'"),
        ("momentum", 1.5, "'momentum'"),
        ("n_iter_no_change", 0, "'n_iter_no_change'"),
        ("dtype", "int32", "'dtype'"),
        ("dtype", np.float16, "'dtype'"),
        ("n_jobs", 1.5, "'n_jobs'"),
        ("cell", None, "'cell'"),
        ("verbose", -1, "'verbose'"),
        ("random_state", "seed", "'random_state'"),
    ],
)
def test_bad_hyperparameters_name_the_parameter(param, value, match):
    kwargs = dict(max_iter=1, hidden_size=3)
    kwargs[param] = value
    with pytest.raises(ValueError, match=match):
        LSTMRegressor(**kwargs).fit(X0, Y0)


def test_dtype_objects_are_accepted():
    est = fitted(dtype=np.dtype("float64"))
    assert est.params_.dtype == np.float64
    assert fitted(dtype=np.float32).params_.dtype == np.float32


def test_not_fitted_everywhere():
    for cls in (LSTMRegressor, LSTMClassifier):
        est = cls()
        for call in (
            lambda: est.predict(X0),
            lambda: est.score(X0, Y0),
            est.stream,
            lambda: est.save("unused.npz"),
            est.named_parameters,
        ):
            with pytest.raises(NotFittedError):
                call()
    with pytest.raises(NotFittedError):
        LSTMClassifier().predict_log_proba(X0)


def test_predict_checks_its_input():
    est = fitted()
    cases = [
        (np.zeros((2, 4, 3)), "X has 3 features, but LSTMRegressor is expecting 2"),
        ([np.zeros((3, 2)), np.zeros((2, 3))], "same number of features"),
        ([np.zeros((3, 3)), np.zeros((2, 3))], "X has 3 features"),
        (np.zeros((0, 4, 2)), "0 sample"),
        (np.zeros((2, 0, 2)), "0 timesteps"),
        (_set(X0, (1, 1, 1), np.nan), "NaN"),
        (X0.astype(complex), "[Cc]omplex"),
        (np.array([[["a", "b"]]]), "X must hold real numbers"),
        (np.zeros(5), "2D"),
        (None, "X=None"),
    ]
    for X, match in cases:
        with pytest.raises(ValueError, match=match):
            est.predict(X)


def test_classifier_labels_at_predict_and_score_time():
    """As scikit-learn: score with labels never seen in fit counts them as errors (they can
    never be predicted); labels of another type raise; partial_fit with unseen labels raises."""
    X, y = data(n=40)
    labels = np.where(y > 0, "up", "down")
    clf = fitted(LSTMClassifier, X, labels)
    pred = clf.predict(X)
    unseen = labels.copy()
    unseen[:10] = "sideways"
    assert clf.score(X, unseen) == pytest.approx(accuracy_score(unseen, pred))
    assert clf.score(X, unseen) <= 0.75
    with pytest.raises(ValueError, match="Mix of label input types"):
        clf.score(X, np.arange(40))
    with pytest.raises(ValueError, match="classes"):
        LSTMClassifier(max_iter=1).partial_fit(X, labels)  # classes= required first
    inc = LSTMClassifier(max_iter=1, hidden_size=3).partial_fit(X, labels, classes=["down", "up"])
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        inc.partial_fit(X, unseen)


# ------------------------------------------------------------------------------------------
# bad input to the layer
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(hidden_size=0), ValueError, "hidden_size must be a positive integer"),
        (dict(hidden_size=-2), ValueError, "hidden_size"),
        (dict(hidden_size=2.0), ValueError, "hidden_size"),
        (dict(hidden_size=True), ValueError, "hidden_size"),
        (dict(hidden_size="4"), ValueError, "hidden_size"),
        (dict(input_size=0), ValueError, "input_size"),
        (dict(num_layers=0), ValueError, "num_layers"),
        (dict(cell="transformer"), ValueError, "cell must be one of"),
        (dict(cell=3), TypeError, "cell must be a string"),
        (dict(dtype=np.float16), ValueError, "dtype must be float32 or float64"),
        (dict(dtype=np.int64), ValueError, "dtype must be float32 or float64"),
        (dict(dtype="no such type"), TypeError, "dtype"),
        (dict(bias="no"), TypeError, "bias must be True or False"),
    ],
)
def test_layer_constructor_checks(kwargs, exc, match):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        nn.Recurrent(**args)


def test_rnn_nonlinearity_is_checked():
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")


def _layer(cell="lstm", dtype=np.float64):
    return nn.Recurrent(3, 4, num_layers=2, cell=cell, dtype=dtype, random_state=0)


X_NN = np.random.default_rng(0).standard_normal((2, 5, 3))

BAD_FORWARD = {
    "nan-x": (dict(x=_set(X_NN, (0, 1, 2), np.nan)), "x contains NaN or infinity"),
    "inf-x": (dict(x=_set(X_NN, (1, 4, 0), -np.inf)), "x contains NaN or infinity"),
    "complex-x": (dict(x=X_NN + 1j), "x must be a real numeric array"),
    "string-x": (dict(x=np.full((2, 5, 3), "a")), "x must be a real numeric array"),
    "object-x": (dict(x=X_NN.astype(object)), "x must be a real numeric array"),
    "ragged-x": (dict(x=[[[1.0, 2.0, 3.0]], [[1.0, 2.0]]]), "x must be a real numeric array"),
    "2d-x": (dict(x=X_NN[0]), "x must be 3-D"),
    "4d-x": (dict(x=X_NN[None]), "x must be 3-D"),
    "wrong-features": (dict(x=X_NN[:, :, :2]), r"x must have shape \(batch, time, 3\)"),
    "empty-batch": (dict(x=X_NN[:0]), "at least one sequence"),
    "zero-steps": (dict(x=X_NN[:, :0]), "at least one step"),
    "float-lengths": (dict(x=X_NN, lengths=[5.0, 2.0]), "lengths must be integers"),
    "zero-length": (dict(x=X_NN, lengths=[5, 0]), r"lengths must lie in \[1, 5\]"),
    "long-length": (dict(x=X_NN, lengths=[6, 2]), r"lengths must lie in \[1, 5\]"),
    "negative-length": (dict(x=X_NN, lengths=np.array([-1, 2], np.int8)), "lengths"),
    "lengths-shape": (dict(x=X_NN, lengths=[5, 2, 1]), r"lengths must have shape \(2,\)"),
    "lengths-2d": (dict(x=X_NN, lengths=[[5, 2]]), "lengths must have shape"),
    "state-not-tuple": (dict(x=X_NN, state=np.zeros((2, 2, 4))), r"tuple \(h, c\)"),
    "state-shape": (
        dict(x=X_NN, state=(np.zeros((1, 2, 4)), np.zeros((2, 2, 4)))),
        r"state h must have shape \(num_layers, batch, hidden_size\)",
    ),
    "state-nan": (
        dict(x=X_NN, state=(np.zeros((2, 2, 4)), np.full((2, 2, 4), np.nan))),
        "state c contains NaN",
    ),
    "state-complex": (
        dict(x=X_NN, state=(np.zeros((2, 2, 4)) + 1j, np.zeros((2, 2, 4)))),
        "state h must be a real numeric array",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FORWARD), ids=list(BAD_FORWARD))
def test_layer_forward_checks(case):
    kwargs, match = BAD_FORWARD[case]
    with pytest.raises(ValueError, match=match):
        _layer().forward(**kwargs)


def test_layer_backward_and_parameter_checks():
    layer = _layer()
    with pytest.raises(RuntimeError, match="needs a forward"):
        layer.backward(np.zeros((2, 5, 4)))
    layer.forward(X_NN, inference=True)
    with pytest.raises(RuntimeError, match="needs a forward"):
        layer.backward(np.zeros((2, 5, 4)))
    layer.forward(X_NN)
    for dy, match in [
        (np.zeros((2, 5, 5)), "dy must have the output's shape"),
        (np.full((2, 5, 4), np.nan), "dy contains NaN"),
        (np.zeros((2, 5)), "dy must be 3-D"),
    ]:
        with pytest.raises(ValueError, match=match):
            layer.backward(dy)
    with pytest.raises(ValueError, match="dstate h contains NaN"):
        layer.backward(None, dstate=(np.full((2, 2, 4), np.inf), np.zeros((2, 2, 4))))
    assert set(layer.backward(np.ones((2, 5, 4)))) >= {"x", "h0", "c0"}  # still usable

    params = layer.parameters()
    for bad, match in [
        ({k: v for k, v in params.items() if k != "bias_hh_l1"}, "missing parameters"),
        (dict(params, extra=np.zeros(3)), "unknown parameters"),
        (dict(params, weight_hh_l0=np.zeros((4, 4))), "must have shape"),
        (
            dict(params, weight_ih_l0=np.full_like(params["weight_ih_l0"], np.nan)),
            "weight_ih_l0 contains NaN",
        ),
        (dict(params, bias_ih_l0=params["bias_ih_l0"] + 1j), "real numeric array"),
    ]:
        with pytest.raises(ValueError, match=match):
            layer.set_parameters(bad)
    np.testing.assert_array_equal(layer.parameters()["weight_ih_l0"], params["weight_ih_l0"])
    y_good = layer.forward(X_NN, inference=True)[0]
    layer.flat_params[3] = np.nan
    # (the core checks parameters when it packs them: refused again on the next call with the
    # same non-finite values, which must not count as packed, in either mode)
    for inference in (False, True, True):
        with pytest.raises(ValueError, match="parameters .* contain NaN"):
            layer.forward(X_NN, inference=inference)
    layer.flat_params[3] = params["weight_ih_l0"].reshape(-1)[3]
    np.testing.assert_array_equal(layer.forward(X_NN, inference=True)[0], y_good)


# ------------------------------------------------------------------------------------------
# any memory layout and numeric dtype is accepted and converted (only when needed)
# ------------------------------------------------------------------------------------------
def _layouts(X):
    """(name, array with the values of X) in layouts and dtypes that must all be accepted."""
    Xr = np.round(X * 8) / 8  # exactly representable in float16
    Xi = np.round(X * 3)
    big = np.empty((X.shape[0], X.shape[1], X.shape[2] * 2))
    big[:, :, ::2] = Xr
    ro = Xr.copy()
    ro.flags.writeable = False
    return [
        ("reference", Xr, Xr),
        ("fortran", np.asfortranarray(Xr), Xr),
        ("strided", big[:, :, ::2], Xr),
        ("reversed", Xr[::-1], Xr[::-1]),
        ("float16", Xr.astype(np.float16), Xr),
        ("float32", Xr.astype(np.float32), Xr),
        ("big-endian-f8", Xr.astype(">f8"), Xr),
        ("big-endian-f4", Xr.astype(">f4"), Xr),
        ("int64", Xi.astype(np.int64), Xi),
        ("int8", Xi.astype(np.int8), Xi),
        ("uint8", np.abs(Xi).astype(np.uint8), np.abs(Xi)),
        ("bool", Xr > 0, (Xr > 0).astype(float)),
        ("read-only", ro, Xr),
        ("nested-list", Xr.tolist(), Xr),
        ("list-of-big-endian", list(Xr.astype(">f4")), Xr),
    ]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_estimators_accept_any_layout_and_dtype(dtype):
    X, y = data(n=30, T=6, D=3)
    reg = fitted(LSTMRegressor, X, y, dtype=dtype)
    clf = fitted(LSTMClassifier, X, (y > 0).astype(int), dtype=dtype)
    for name, Xv, values in _layouts(X):
        np.testing.assert_array_equal(reg.predict(Xv), reg.predict(values), err_msg=name)
        np.testing.assert_array_equal(
            clf.predict_proba(Xv), clf.predict_proba(values), err_msg=name
        )
    # fitting on any of them gives the model fitted on the plain array of the same values
    for name, Xv, values in _layouts(X)[1:9]:
        np.testing.assert_array_equal(
            fitted(LSTMRegressor, Xv, y.astype(">f8"), dtype=dtype).params_,
            fitted(LSTMRegressor, values, y, dtype=dtype).params_,
            err_msg=name,
        )


def test_no_copy_when_none_is_needed():
    X = np.ascontiguousarray(np.random.default_rng(0).standard_normal((4, 3, 2)), dtype=np.float32)
    assert np.shares_memory(check_sequences(X, dtype=np.float32).X, X)
    assert not np.shares_memory(check_sequences(X, dtype=np.float64).X, X)
    layer = nn.LSTM(2, 3, dtype=np.float32)
    assert np.shares_memory(layer.check_input(X)[0], X)
    assert not np.shares_memory(layer.check_input(np.asfortranarray(X))[0], X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_accepts_any_layout_and_dtype(dtype):
    X = np.random.default_rng(1).standard_normal((3, 5, 2))
    layer = nn.Recurrent(2, 4, num_layers=2, cell="gru", dtype=dtype, random_state=0)
    for name, Xv, values in _layouts(X):
        y, h = layer.forward(Xv)
        y_ref, h_ref = layer.forward(values)
        np.testing.assert_array_equal(y, y_ref, err_msg=name)
        assert y.dtype == dtype
        g = layer.backward(
            np.asfortranarray(np.ones_like(y)).astype(">f8"), dstate=np.ones((2, 3, 4), np.float16)
        )
        layer.forward(values)
        g_ref = layer.backward(np.ones_like(y), dstate=np.ones((2, 3, 4)))
        np.testing.assert_array_equal(g["x"], g_ref["x"], err_msg=name)
    lengths = np.array([5, 1, 3], dtype=">i4")
    np.testing.assert_array_equal(
        layer.forward(X, lengths=lengths)[0], layer.forward(X, lengths=[5, 1, 3])[0]
    )
    np.testing.assert_array_equal(
        layer.forward(X, lengths=np.array([5, 1, 3], np.uint8))[0],
        layer.forward(X, lengths=[5, 1, 3])[0],
    )


# ------------------------------------------------------------------------------------------
# memory: a request that cannot fit raises MemoryError naming the size, before allocating
# ------------------------------------------------------------------------------------------
def _assert_small_peak(fn, exc, match, limit=50 * 2**20):
    tracemalloc.start()
    try:
        with pytest.raises(exc, match=match):
            fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"allocated {peak / 2**20:.0f} MiB before refusing"


def test_absurd_sizes_raise_memory_error_before_allocating():
    X, y = data()
    _assert_small_peak(
        lambda: LSTMRegressor(hidden_size=10**6, max_iter=1).fit(X, y),
        MemoryError,
        r"fit on 24 sequences .*hidden_size=1000000.* TiB",
    )
    _assert_small_peak(
        lambda: LSTMClassifier(hidden_size=10**5, num_layers=4, max_iter=1).fit(X, y > 0),
        MemoryError,
        r"GiB|TiB",
    )
    huge = np.broadcast_to(np.float32(0.5), (10**5, 10**4, 2))  # 8 GB as a view of 4 bytes
    est = fitted()
    _assert_small_peak(
        lambda: est.predict(np.broadcast_to(np.float32(0.5), (10**7, 10**5, 2))),
        MemoryError,
        r"predict on 10000000 sequences of 100000 steps .* TiB",
    )
    _assert_small_peak(
        lambda: LSTMRegressor(hidden_size=512, max_iter=1).fit(
            np.broadcast_to(np.float32(0.5), (10**7, 10**5, 2)), np.broadcast_to(0.0, (10**7,))
        ),
        MemoryError,
        r"fit on 10000000 sequences",
    )
    _assert_small_peak(lambda: est.stream(batch=10**12), MemoryError, r"stream\(batch=")
    _assert_small_peak(
        lambda: nn.LSTM(3, 10**6),
        MemoryError,
        r"hidden_size=1000000.* parameters would need about .* TiB",
    )
    _assert_small_peak(
        lambda: nn.LSTM(2, 64).forward(np.broadcast_to(0.5, (10**7, 10**5, 2))),
        MemoryError,
        "forward on a batch of 10000000 sequences",
    )
    assert huge.nbytes == 8 * 10**9  # (the view itself costs nothing)


def test_memory_budget_is_enforced(monkeypatch):
    """With a small budget a moderate request is refused and a small one is not."""
    X, y = data(n=64, T=50, D=4)
    est = fitted(X=X, y=y)
    monkeypatch.setenv("LSTM_NATIVE_AVAILABLE_MEMORY", str(2 * 2**20))  # 2 MiB
    assert _memory.available_memory() == 2 * 2**20
    with pytest.raises(MemoryError, match=r"but only 2\.0 MiB is available"):
        LSTMRegressor(hidden_size=128, max_iter=1).fit(X, y)
    with pytest.raises(MemoryError, match="predict on 5000 sequences"):
        est.predict(np.broadcast_to(X[:1], (5000, 50, 4)))
    with pytest.raises(MemoryError, match="forward"):
        nn.LSTM(4, 128).forward(np.zeros((1000, 50, 4)))
    est.predict(X[:3])  # small requests still work
    fitted(X=X[:8, :5], y=y[:8], hidden_size=4, max_iter=1)


def test_available_memory_is_sensible():
    avail = _memory.available_memory()
    if sys.platform.startswith("linux"):
        assert isinstance(avail, int) and avail > 2**20
    assert _memory.format_bytes(3 * 2**40) == "3.0 TiB"
    assert _memory.format_bytes(512) == "512 bytes"


# ------------------------------------------------------------------------------------------
# numerical faults: divergence keeps usable weights; clipping keeps an exploding RNN finite
# ------------------------------------------------------------------------------------------
def _explosive(n=64, T=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, T, 2)), rng.standard_normal(n) * 10


@pytest.mark.parametrize(
    "kw",
    [
        dict(cell="rnn_relu", solver="sgd", learning_rate_init=10.0, max_grad_norm=None),
        dict(cell="lstm", solver="sgd", learning_rate_init=1e30),
        dict(cell="gru", solver="sgd", learning_rate_init=1e35, max_grad_norm=None),
    ],
)
def test_divergence_raises_and_keeps_usable_weights(kw):
    X, y = _explosive(T=60)
    est = LSTMRegressor(hidden_size=16, max_iter=50, random_state=0, batch_size=16, **kw)
    with pytest.raises(ValueError, match="Training diverged: .* keeps the weights"):
        est.fit(X * 3, y * 100)
    assert np.all(np.isfinite(est.params_))
    assert np.all(np.isfinite(est.predict(X)))
    assert np.all(np.isfinite(est.loss_curve_)) and len(est.loss_curve_) == est.n_iter_
    # and it can be trained further from there, sensibly
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.set_params(
            learning_rate_init=1e-3, solver="adam", max_grad_norm=1.0, max_iter=2, warm_start=True
        ).fit(X, y)
    assert np.all(np.isfinite(est.predict(X)))


@pytest.mark.parametrize("cell", ["rnn_relu", "lstm"])
def test_a_finite_model_never_becomes_nan(cell):
    """A model that was finite stays so: whatever a diverging warm start or partial_fit does,
    the weights stay finite and so do the predictions on the training data."""
    X, y = _explosive(T=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = LSTMRegressor(
            cell=cell,
            hidden_size=16,
            random_state=0,
            solver="sgd",
            learning_rate_init=1e-3,
            max_grad_norm=None,
            max_iter=3,
        ).fit(X, y)
    before, pred = est.params_.copy(), est.predict(X)
    est.set_params(warm_start=True, learning_rate_init=1e30, max_iter=5)
    with pytest.raises(ValueError, match="Training diverged: .* keeps the weights"):
        est.fit(X, y)
    if cell == "rnn_relu":  # NaN from the first epoch on: back to exactly where it started
        np.testing.assert_array_equal(est.params_, before)
        np.testing.assert_array_equal(est.predict(X), pred)
    for _ in range(3):  # the optimizer now runs with learning rate 1e30
        try:
            est.partial_fit(X, y)
        except ValueError as e:
            assert "Training diverged" in str(e)
        assert np.all(np.isfinite(est.params_)) and np.all(np.isfinite(est.predict(X)))
        assert np.all(np.isfinite(est.loss_curve_))


def test_divergence_with_early_stopping_keeps_the_best_weights():
    X, y = _explosive(n=80, T=60)
    est = LSTMRegressor(
        cell="rnn_relu",
        hidden_size=16,
        random_state=0,
        solver="sgd",
        learning_rate_init=1e-3,
        max_grad_norm=None,
        early_stopping=True,
        validation_fraction=0.2,
        max_iter=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    est.set_params(warm_start=True, learning_rate_init=1e3, max_iter=20)
    with pytest.raises(ValueError, match="best validation score"):
        est.fit(X * 5, y * 100)
    assert np.all(np.isfinite(est.predict(X)))


def test_gradient_clipping_keeps_an_exploding_rnn_finite():
    X, y = _explosive()
    kw = dict(
        cell="rnn_relu",
        hidden_size=16,
        max_iter=30,
        random_state=0,
        solver="sgd",
        learning_rate_init=0.01,
        batch_size=16,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clipped = LSTMRegressor(**kw).fit(X, y)  # max_grad_norm=5.0 by default
    assert np.all(np.isfinite(clipped.loss_curve_))
    assert np.all(np.isfinite(clipped.predict(X)))
    with pytest.raises(ValueError, match="diverged"):
        LSTMRegressor(max_grad_norm=None, **kw).fit(X, y)


def test_overflowing_predictions_raise_instead_of_returning_nan():
    """Finite weights can still overflow on inputs far outside the training range: predict
    then raises naming the sequences, rather than returning NaN (or, for a classifier, the
    class that argmax makes of NaN logits)."""
    X, y = data()
    reg = fitted(cell="rnn_relu", hidden_size=8)
    clf = fitted(LSTMClassifier, cell="rnn_relu", hidden_size=8)
    for est in (reg, clf):
        est.params_ *= 1e6
    Xbad = X.copy()
    Xbad[[3, 7]] *= 1e20  # relu(1e6 W x) ~ 1e26 grows past float32's 3e38 within 5 steps
    for call in (reg.predict, clf.predict, clf.predict_proba):
        with pytest.raises(
            ValueError,
            match=r"not finite \(overflow\) for 2 of 24 sequences "
            r"\(indices \[3, 7\]\)",
        ):
            call(Xbad)


# ------------------------------------------------------------------------------------------
# Ctrl-C (in a subprocess: the signal goes to that process only)
# ------------------------------------------------------------------------------------------
INTERRUPT_FIT = """
import json, os, signal, threading, time
import numpy as np
from lstm_native import LSTMRegressor
# a shell's background job inherits SIGINT ignored: Ctrl-C must raise here
signal.signal(signal.SIGINT, signal.default_int_handler)
rng = np.random.default_rng(0)
X = rng.standard_normal((6000, 40, 4)).astype(np.float32)
y = X[:, :, 0].mean(axis=1)
est = LSTMRegressor(hidden_size=32, max_iter=100000, batch_size=32, tol=0.0, random_state=0,
                    n_iter_no_change=10**9, early_stopping={early})
sent = {{}}
def fire():  # Ctrl-C in the middle of the third epoch
    while getattr(est, "n_iter_", 0) < 2:
        time.sleep(0.005)
    time.sleep(0.05)
    sent["t"] = time.perf_counter()
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=fire, daemon=True).start()
res = {{"interrupted": False}}
try:
    est.fit(X, y)
except KeyboardInterrupt:
    res = {{"interrupted": True, "latency": time.perf_counter() - sent["t"]}}
res.update(n_iter=est.n_iter_, curve=len(est.loss_curve_),
           finite=bool(np.isfinite(est.params_).all() and np.isfinite(est.predict(X)).all()),
           score=est.score(X[:500], y[:500]))
if {early}:
    res["best_restored"] = bool(est.validation_scores_ and
                                est.best_validation_score_ == max(est.validation_scores_))
print(json.dumps(res))
"""


@pytest.mark.parametrize("early", [False, True], ids=["plain", "early_stopping"])
def test_ctrl_c_stops_fit_quickly_and_leaves_a_usable_estimator(early):
    res = last_json(run_python(INTERRUPT_FIT.format(early=early)))
    assert res["interrupted"], "KeyboardInterrupt must reach the caller"
    assert res["latency"] < 0.5, f"took {res['latency']:.2f} s to stop"
    assert res["finite"] and res["score"] > 0.5
    assert res["n_iter"] == res["curve"] >= 2
    if early:
        assert res["best_restored"]


def test_ctrl_c_stops_a_long_predict():
    code = """
    import json, os, signal, threading, time
    import numpy as np
    from lstm_native import LSTMRegressor
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even in a background job
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 30, 3)).astype(np.float32)
    est = LSTMRegressor(hidden_size=64, max_iter=1, random_state=0, n_jobs=1).fit(X, X[:, 0, 0])
    big = np.broadcast_to(X[:1], (300000, 30, 3))
    sent = {}
    def fire():
        sent["t"] = time.perf_counter()
        os.kill(os.getpid(), signal.SIGINT)
    threading.Timer(0.4, fire).start()
    try:
        est.predict(big)
        res = {"interrupted": False}
    except KeyboardInterrupt:
        res = {"interrupted": True, "latency": time.perf_counter() - sent["t"]}
    res["works"] = bool(np.isfinite(est.predict(X)).all())
    print(json.dumps(res))
    """
    res = last_json(run_python(code))
    assert res["interrupted"] and res["works"]
    assert res["latency"] < 0.5


# ------------------------------------------------------------------------------------------
# threads
# ------------------------------------------------------------------------------------------
def test_concurrent_predictions_equal_sequential_ones():
    X, y = data(n=600, T=20, D=3)
    reg = fitted(LSTMRegressor, X, y, hidden_size=16)
    clf = fitted(LSTMClassifier, X, (y > 0).astype(int), hidden_size=16, bidirectional=True)
    chunks = [X[i::5] for i in range(5)] + [X, list(X[:50])]
    want = [(reg.predict(c), clf.predict_proba(c)) for c in chunks]
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(3):
            got = list(pool.map(lambda c: (reg.predict(c), clf.predict_proba(c)), chunks))
            for (a, b), (c, d) in zip(got, want):
                np.testing.assert_array_equal(a, c)
                np.testing.assert_array_equal(b, d)


def test_concurrent_predictions_run_in_parallel():
    """Two threads predicting with one estimator are inside the core at the same time (each
    has a core Model of its own), instead of queueing for one."""
    X, y = data(n=64, T=20, D=3)
    est = fitted(X=X, y=y, hidden_size=64, n_jobs=1)
    big = np.ascontiguousarray(np.broadcast_to(X[:1], (3000, 20, 3)), dtype=np.float32)
    est.predict(big[:10])
    intervals = []
    borrow = est._network.borrow

    from contextlib import contextmanager

    @contextmanager
    def timed_borrow(*args, **kwargs):
        with borrow(*args, **kwargs) as core:
            t0 = time.perf_counter()
            yield core
            intervals.append((t0, time.perf_counter()))

    est._network.borrow = timed_borrow
    barrier = threading.Barrier(2)

    def work():
        barrier.wait()
        return est.predict(big)

    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(lambda _: work(), range(2))
    np.testing.assert_array_equal(a, b)
    (s1, e1), (s2, e2) = sorted(intervals)
    assert s2 < e1, "the second call only entered the core after the first left it"
    assert len(est._network) == 2  # two core Models were needed, and both are kept


def _busy():
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1) - 1.5
    except OSError:
        return False


@pytest.mark.skipif(
    (os.cpu_count() or 1) < 2 or _busy(), reason="needs two cores, not busy with other work"
)
def test_two_threads_predict_faster_than_one():
    X, y = data(n=64, T=30, D=3)
    est = fitted(X=X, y=y, hidden_size=64, n_jobs=1)
    big = np.ascontiguousarray(np.broadcast_to(X[:1], (2000, 30, 3)), dtype=np.float32)
    est.predict(big)
    ratios = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(3):  # best of three, against noise from other processes
            t0 = time.perf_counter()
            est.predict(big)
            est.predict(big)
            sequential = time.perf_counter() - t0
            t0 = time.perf_counter()
            list(pool.map(lambda _: est.predict(big), range(2)))
            ratios.append((time.perf_counter() - t0) / sequential)
    assert min(ratios) < 0.85, f"2 threads took {min(ratios):.2f} of the sequential time"


@no_convergence_warning
def test_fits_in_two_threads_do_not_interfere():
    X, y = data(n=200, T=12, D=3)
    models = [
        LSTMRegressor(hidden_size=24, max_iter=4, random_state=1),
        LSTMClassifier(cell="gru", hidden_size=20, max_iter=4, random_state=2),
        LSTMRegressor(cell="rnn", hidden_size=16, num_layers=2, max_iter=4, random_state=3),
    ]
    targets = [y, (y > 0).astype(int), -y]
    sequential = [clone(m).fit(X, t).params_ for m, t in zip(models, targets)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        parallel = list(
            pool.map(lambda mt: clone(mt[0]).fit(X, mt[1]).params_, zip(models, targets))
        )
    for a, b in zip(sequential, parallel):
        np.testing.assert_array_equal(a, b)


def test_one_layer_from_many_threads():
    layer = nn.Recurrent(3, 8, num_layers=2, cell="lstm", dtype=np.float64, random_state=0)
    xs = [np.random.default_rng(i).standard_normal((4, 6, 3)) for i in range(8)]
    want = [layer.forward(x)[0] for x in xs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda x: layer.forward(x, inference=True)[0], xs * 3))
    for g, w in zip(got, want * 3):
        np.testing.assert_array_equal(g, w)


# ------------------------------------------------------------------------------------------
# the compiled core itself, fed garbage directly (in a subprocess: a segfault must fail the
# test, not kill the suite)
# ------------------------------------------------------------------------------------------
CORE_FUZZ = r"""
import json
import numpy as np
from lstm_native import _core

rng = np.random.default_rng(0)
wrong = []
count = 0
def attempt(name, fn, expect):
    # expect: "ok" (must work), "error" (must raise a Python exception), "any" (must not crash)
    global count
    count += 1
    try:
        fn()
        got = "ok"
    except (ValueError, TypeError, MemoryError, RuntimeError) as e:
        got = "error"
    if expect != "any" and got != expect:
        wrong.append(f"{name}: {got}, expected {expect}")

def variants(a):
    yield "ok", a
    yield "wrong-dtype", a.astype(np.float32 if a.dtype != np.float32 else np.float64)
    yield "fortran", np.asfortranarray(a) if a.ndim > 1 else a[::-1]
    yield "strided", np.repeat(a, 2, axis=-1)[..., ::2]
    yield "short", a.reshape(-1)[:-1]
    yield "long", np.zeros(a.size + 7, a.dtype)
    yield "readonly", np.lib.stride_tricks.as_strided(a, writeable=False)
    yield "list", a.tolist()
    yield "none", None
    yield "scalar", a.dtype.type(1)
    yield "0-d", np.array(1, a.dtype)

def expect(vname, optional, is_input):
    if vname == "ok":
        return "ok"
    if vname == "none":
        return "ok" if optional else "error"
    if vname == "readonly":
        return "ok" if is_input else "error"
    return "error"

for S, R, M in ((np.float32, _core.Recurrent32, _core.Model32),
                (np.float64, _core.Recurrent64, _core.Model64)):
    s = S.__name__
    r = R("lstm", 3, 4, 2, True)
    P = r.num_params
    p = np.zeros(P, S)
    x = np.zeros((2, 5, 3), S)
    y = np.empty((2, 5, 4), S)
    hT = np.empty((2, 2, 4), S)
    slots = dict(params=p, x=x, y=y, hT=hT, cT=hT.copy(), h0=hT.copy(), c0=hT.copy(),
                 lengths=np.array([5, 2], np.int64))
    optional = {"lengths", "h0", "c0", "hT", "cT"}
    inputs = {"params", "x", "lengths", "h0", "c0"}
    for slot in slots:
        for vname, v in variants(slots[slot]):
            a = dict(slots)
            a[slot] = v
            attempt(f"{s} forward {slot} {vname}", lambda: r.forward(
                a["params"], a["x"], a["lengths"], a["h0"], a["c0"], a["y"], a["hT"], a["cT"]),
                expect(vname, slot in optional, slot in inputs))
    for lengths, ok in (([0, 2], "ok"), ([6, 1], "error"), ([-5, 2], "error"),
                        ([2**40, 1], "error"), ([-2**62, 1], "error")):
        attempt(f"{s} lengths {lengths}", lambda: r.forward(
            p, x, np.array(lengths, np.int64), None, None, y, None, None), ok)
    r2 = R("gru", 3, 4, 1, True)
    attempt(f"{s} backward before forward", lambda: r2.backward(
        np.zeros(r2.num_params, S), None, None, None, np.zeros(r2.num_params, S), None, None,
        None), "error")
    for slot, shape in (("dy", (2, 5, 4)), ("dparams", (P,)), ("dx", (2, 5, 3)),
                        ("dh0", (2, 2, 4))):
        for vname, v in variants(np.zeros(shape, S)):
            a = dict(dy=None, dparams=np.zeros(P, S), dx=None, dh0=None)
            a[slot] = v
            r.forward(p, x, None, None, None, y, None, None)  # one backward per forward
            attempt(f"{s} backward {slot} {vname}", lambda: r.backward(
                p, a["dy"], None, None, a["dparams"], a["dx"], a["dh0"], None),
                expect(vname, slot != "dparams", slot == "dy"))

    m = M(_core.ModelConfig("lstm", 3, 4, 1, 2, loss="mse"))
    Pm = m.num_params
    X = rng.standard_normal((6, 5, 3)).astype(S)
    base = dict(params=np.zeros(Pm, S), m=np.zeros(Pm, S), v=np.zeros(Pm, S), X=X,
                lengths=np.full(6, 5, np.int64), Y=np.zeros((6, 2), S), sw=np.ones(6, S))
    kw = dict(batch_size=2, shuffle=True, seed=0, solver="adam", lr=0.01, alpha=0.0)
    for slot in base:
        for vname, v in variants(base[slot]):
            a = {k: w.copy() for k, w in base.items()}
            a[slot] = v
            attempt(f"{s} train {slot} {vname}", lambda: m.train_epoch(
                a["params"], a["m"], a["v"], 0, a["X"], a["lengths"], a["Y"], a["sw"],
                _core.OptimConfig(**kw)),
                expect(vname, slot in ("lengths", "sw"), slot in ("X", "Y", "lengths", "sw")))
    for bad, ok in ((dict(batch_size=0), "error"), (dict(batch_size=-3), "error"),
                    (dict(solver="lbfgs"), "error"), (dict(lr=float("nan")), "any"),
                    (dict(max_grad_norm=float("nan")), "any"), (dict(batch_size=10**12), "ok")):
        attempt(f"{s} train {bad}", lambda: m.train_epoch(
            base["params"].copy(), base["m"].copy(), base["v"].copy(), 0, X, None, base["Y"],
            None, _core.OptimConfig(**dict(kw, **bad))), ok)
    for lengths, ok in (([5, 5, 5, 5, 5, 0], "error"), ([6, 1, 1, 1, 1, 1], "error")):
        attempt(f"{s} train lengths {lengths}", lambda: m.train_epoch(
            base["params"].copy(), base["m"].copy(), base["v"].copy(), 0, X,
            np.array(lengths, np.int64), base["Y"], None, _core.OptimConfig(**kw)), ok)
        attempt(f"{s} predict lengths {lengths}", lambda: m.predict(
            base["params"], X, np.array(lengths, np.int64), np.empty((6, 2), S)), ok)
    out = np.empty((6, 2), S)
    for slot, v0 in (("X", X), ("out", out), ("lengths", np.full(6, 5, np.int64))):
        for vname, v in variants(v0):
            a = dict(X=X, out=out, lengths=None)
            a[slot] = v
            attempt(f"{s} predict {slot} {vname}",
                    lambda: m.predict(base["params"], a["X"], a["lengths"], a["out"]),
                    expect(vname, slot == "lengths", slot != "out"))
    attempt(f"{s} predict X 2-D", lambda: m.predict(base["params"], X[0], None, out), "error")
    attempt(f"{s} predict X empty", lambda: m.predict(base["params"], X[:0], None, out[:0]),
            "ok")
    attempt(f"{s} predict T=0", lambda: m.predict(base["params"], X[:, :0], None, out),
            "error")
    for cfg in (("lstm", 0, 4, 1, 1), ("lstm", 3, -1, 1, 1), ("lstm", 3, 4, 0, 1),
                ("lstm", 3, 4, 1, 0), ("nope", 3, 4, 1, 1)):
        attempt(f"{s} Model{cfg}", lambda: M(_core.ModelConfig(*cfg)), "error")
        attempt(f"{s} Recurrent{cfg[:4]}", lambda: R(*cfg[:4]),
                "ok" if cfg == ("lstm", 3, 4, 1, 0) else "error")
    for cfg in (("lstm", 1, 3, 2**40, 1), ("lstm", 1, 3, 1, 2**62), ("lstm", 1, 2**62, 1, 1),
                ("gru", 2**62, 3, 1, 1), ("lstm", 1, 2**31, 1, 1)):
        # absurd sizes: overflowing size arithmetic, hours of layout building, or bad_alloc
        attempt(f"{s} huge Model{cfg}", lambda: M(_core.ModelConfig(*cfg)), "error")
        if cfg[4] == 1:
            attempt(f"{s} huge Recurrent{cfg[:4]}", lambda: R(*cfg[:4]), "error")
    attempt(f"{s} Model dropout 1",
            lambda: M(_core.ModelConfig("lstm", 3, 4, 2, 1, dropout=1.0)), "error")
    attempt(f"{s} Model dropout nan",
            lambda: M(_core.ModelConfig("lstm", 3, 4, 2, 1, dropout=float("nan"))), "error")
    attempt(f"{s} Model loss", lambda: M(_core.ModelConfig("lstm", 3, 4, 2, 1, loss="hinge")),
            "error")
    st = m.stream(base["params"])
    for v, ok in ((np.zeros(2, S), "error"), (np.zeros((2, 3), S), "error"),
                  (np.zeros(3, np.int64), "ok"), ([0.0, 1.0, 2.0], "ok"),
                  (np.array(["a", "b", "c"]), "error"), (np.zeros((1, 3), S), "ok")):
        attempt(f"{s} stream step {np.shape(v)}", lambda: st.step(v), ok)
    attempt(f"{s} stream out", lambda: st.step(np.zeros(3, S), out=np.zeros(3, S)), "error")
    attempt(f"{s} stream out dtype", lambda: st.step(np.zeros(3, S), out=np.zeros(2, int)),
            "error")
    attempt(f"{s} stream state", lambda: setattr(st, "state", np.zeros(3)), "error")
    attempt(f"{s} stream state tuple", lambda: setattr(st, "state", (np.zeros((1, 1, 4), S),)),
            "error")
    attempt(f"{s} stream batch 0", lambda: m.stream(base["params"], 0), "error")
    attempt(f"{s} stream batch 2**62", lambda: m.stream(base["params"], 2**62), "error")
    attempt(f"{s} stream params", lambda: m.stream(base["params"][:-1]), "error")
print(json.dumps({"count": count, "wrong": wrong}))
"""


def test_core_bindings_reject_garbage_without_crashing():
    """Every binding checks dtype, shape, order and writability of every array (and the
    lengths' range) and raises instead of reading or writing out of bounds."""
    res = last_json(run_python(CORE_FUZZ, timeout=300))
    assert res["count"] > 400
    assert not res["wrong"], "\n".join(res["wrong"][:30])
