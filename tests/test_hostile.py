"""Robustness, round 2: what a hostile user found, and the classes of bug behind it.

Each test here failed (or crashed, or hung) before its fix; the crash-prone ones run in a
subprocess so that a crash fails one test instead of killing the suite. The guarantees they
check are stated in the README ("Threads, fork and exit") and the module docstrings of
lstm_native.estimators and lstm_native.nn.
"""

import copy
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from lstm_native import LSTMClassifier, LSTMRegressor, _core, nn
from lstm_native.diagnostics import gate_trace, gradient_flow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, timeout=120, env=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=full_env,
    )


def ok(proc):
    assert proc.returncode == 0, (
        f"return code {proc.returncode}"
        f"{f' (killed by signal {-proc.returncode})' if proc.returncode < 0 else ''}:\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def data(n=40, T=6, D=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, D))
    return X, X[:, :, 0].mean(axis=1) + 0.5 * X[:, -1, -1]


def fitted(cls=LSTMRegressor, **kw):
    X, y = data()
    if cls is LSTMClassifier:
        y = (y > 0).astype(int)
    params = dict(hidden_size=6, max_iter=3, random_state=0)
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(**params).fit(X, y), X, y


# ------------------------------------------------------------------------------------------
# 2. fork: a child made after the thread pool has run computes and exits
# ------------------------------------------------------------------------------------------
FORK_CHILD = """
    import os, sys, time, numpy as np
    from lstm_native import nn
    layer = nn.LSTM(8, 64, random_state=0)
    x = np.random.default_rng(0).standard_normal((64, 50, 8)).astype(np.float32)
    y0, _ = layer.forward(x, inference=True)
    assert layer._core.num_parts >= 2          # the pool ran: parts on two threads
    pid = os.fork()
    if pid == 0:                               # child: compute (on a fresh pool), exit normally
        y1, _ = layer.forward(x, inference=True)
        sys.exit(0 if np.array_equal(y0, y1) else 3)
    deadline = time.time() + 30
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print("child", os.waitstatus_to_exitcode(status))
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        print("child hung")
"""


def test_forked_child_computes_and_exits():
    assert ok(run_python(FORK_CHILD)).strip().splitlines()[-1] == "child 0"


def test_multiprocessing_fork_pool_computes():
    code = """
        import multiprocessing as mp, numpy as np, warnings
        from lstm_native import LSTMRegressor
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(0)
        X = rng.standard_normal((300, 20, 3)).astype(np.float32); y = X[:, -1, 0]
        est = LSTMRegressor(hidden_size=64, max_iter=2, random_state=0).fit(X, y)
        ref = est.predict(X)
        def work(i):
            return est.predict(X[i * 100:(i + 1) * 100])
        with mp.get_context("fork").Pool(2) as pool:
            parts = pool.map(work, range(3))
        print(np.array_equal(np.concatenate(parts), ref))
    """
    assert ok(run_python(code, timeout=120)).strip().splitlines()[-1] == "True"


def test_fork_while_another_thread_holds_a_layer_lock():
    """A thread inside a long forward holds the layer's lock at the moment of the fork; the
    child, which has no such thread, must still be able to use the layer."""
    code = """
        import os, sys, threading, time, numpy as np
        from lstm_native import nn
        layer = nn.LSTM(4, 256, random_state=0)
        big = np.zeros((256, 400, 4), np.float32)
        small = np.ones((2, 3, 4), np.float32)
        ref, _ = layer.forward(small, inference=True)
        t = threading.Thread(target=lambda: [layer.forward(big, inference=True)
                                             for _ in range(50)], daemon=True)
        t.start(); time.sleep(0.2)
        pid = os.fork()
        if pid == 0:
            y, _ = layer.forward(small, inference=True)
            os._exit(0 if np.array_equal(y, ref) else 3)
        deadline = time.time() + 30
        while time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                print("child", os.waitstatus_to_exitcode(status)); break
            time.sleep(0.02)
        else:
            os.kill(pid, 9); print("child hung")
        os._exit(0)
    """
    assert ok(run_python(code)).strip().splitlines()[-1] == "child 0"


# ------------------------------------------------------------------------------------------
# 3. backward twice, trace after backward
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "cell_as_input"])
def test_second_backward_raises_instead_of_wrong_gradients(cell):
    layer = nn.Recurrent(4, 7, 2, cell=cell, dtype=np.float64, random_state=0)
    x = np.random.default_rng(1).standard_normal((3, 5, 4))
    y, _ = layer.forward(x)
    g1 = layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="call forward"):
        layer.backward(np.ones_like(y))
    # the core refuses too (its own flag, not only the Python one), and so does trace()
    P = layer.num_params
    with pytest.raises(ValueError, match="forward"):
        layer._core.backward(layer.flat_params, None, None, None, np.zeros(P), None, None, None)
    G = int(_core.cell_info(layer.cell)["gates"])
    with pytest.raises(ValueError, match="no backward"):
        layer._core.trace(np.empty((2, 3, 5, G * 7)), None, None)
    layer.forward(x)  # a new forward makes backward correct again
    g2 = layer.backward(np.ones_like(y))
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


# ------------------------------------------------------------------------------------------
# 6. a write to the parameters racing a forward must not leave stale packed weights
# ------------------------------------------------------------------------------------------
def _write_in_chunks(dst, src, chunks=16):
    """dst[...] = src in slices, each a separate Python statement: another thread's forward
    (the GIL released in the core) runs between them and packs a mix of old and new."""
    edges = np.linspace(0, dst.size, chunks + 1).astype(int)
    for k in range(chunks):
        dst[edges[k] : edges[k + 1]] = src[edges[k] : edges[k + 1]]


def test_forward_uses_current_parameters_after_a_racing_write():
    """Writes to flat_params overlapping forwards: once the writes stop, the next forward
    computes with the current parameters (before the fix, about a third of these trials kept
    a mix of old and new packed weights for every later call)."""
    layer = nn.LSTM(3, 128, random_state=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 3)).astype(np.float32)
    a = rng.uniform(-0.2, 0.2, layer.num_params).astype(np.float32)
    b = rng.uniform(-0.2, 0.2, layer.num_params).astype(np.float32)
    fresh = nn.LSTM(3, 128)
    fresh.flat_params[:] = b
    want, _ = fresh.forward(x, inference=True)
    stale = 0
    for _ in range(150):
        layer.flat_params[:] = a
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                layer.forward(x, inference=True)

        t = threading.Thread(target=reader)
        t.start()
        for i in range(7):
            _write_in_chunks(layer.flat_params, b if i % 2 == 0 else a)
        stop.set()
        t.join()
        got, _ = layer.forward(x, inference=True)
        stale += not np.array_equal(got, want)
    assert stale == 0, f"{stale} of 150 trials computed with stale weights"


def test_estimator_predict_uses_params_written_during_a_predict():
    est, X, _ = fitted(hidden_size=128)
    x = X[:1, :1]
    rng = np.random.default_rng(0)
    old = est.params_.copy()
    new = (old + rng.normal(0, 0.05, old.size)).astype(old.dtype)
    twin = copy.deepcopy(est)
    twin.params_ = new
    want = twin.predict(x)
    stale = 0
    for _ in range(60):
        est.params_[...] = old
        stop = threading.Event()
        t = threading.Thread(target=lambda: [est.predict(x) for _ in iter(stop.is_set, True)])
        t.start()
        for i in range(7):
            _write_in_chunks(est.params_, new if i % 2 == 0 else old)
        stop.set()
        t.join()
        stale += not np.array_equal(est.predict(x), want)
    assert stale == 0, f"{stale} of 60 trials predicted with stale weights"


# ------------------------------------------------------------------------------------------
# 7. a stream refuses values that would poison its state, and keeps the state
# ------------------------------------------------------------------------------------------
def _stream_state(s):
    st = s.state
    return tuple(np.copy(a) for a in (st if isinstance(st, tuple) else (st,)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stream_refuses_poison_and_keeps_its_state(dtype):
    est, X, _ = fitted(dtype=dtype)
    s = est.stream()
    for t in range(3):
        s.step(X[0, t])
    before = _stream_state(s)
    bad = [
        np.array([np.nan, 0.0, 0.0]),
        np.array([0.0, np.inf, 0.0]),
        np.array([None, 0.0, 0.0], dtype=object),
        [0.0, float("nan"), 1.0],
    ]
    if dtype == "float32":
        bad.append(np.array([1e39, 0.0, 0.0]))  # finite float64, infinite as float32
    for x in bad:
        with pytest.raises(ValueError, match="NaN|infinity|range|real"):
            s.step(x)
        for a, b in zip(before, _stream_state(s)):
            np.testing.assert_array_equal(a, b)
    for t in range(3, 6):
        out = s.step(X[0, t])
    np.testing.assert_allclose(out[0], est.predict(X[:1])[0], rtol=1e-5, atol=1e-6)
    # the state setter checks values too, before changing anything
    h = before[0].copy()
    h[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        s.state = (h, before[1]) if len(before) == 2 else h
    with pytest.raises(ValueError, match="NaN"):
        s.state = (before[0], h) if len(before) == 2 else h
    after = _stream_state(s)
    assert all(np.isfinite(a).all() for a in after)


def test_classifier_stream_checks_out_and_input():
    est, X, _ = fitted(LSTMClassifier)
    s = est.stream()
    with pytest.raises(ValueError, match="out must be a writeable float array"):
        s.step(X[0, 0], out=np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="out must be"):
        s.step(X[0, 0], out=np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        s.step(np.array([np.nan, 1.0, 2.0]))
    out = np.empty(2)
    for t in range(X.shape[1]):
        s.step(X[0, t], out=out)
    np.testing.assert_allclose(out, est.predict_proba(X[:1])[0], rtol=1e-5)


# ------------------------------------------------------------------------------------------
# 8. exiting the interpreter while a daemon thread is inside the core
# ------------------------------------------------------------------------------------------
EXIT_DURING = """
    import sys, threading, time, warnings, numpy as np
    warnings.simplefilter("ignore")
    from lstm_native import LSTMRegressor, nn
    mode = sys.argv[1] if len(sys.argv) > 1 else "{mode}"
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 40, 4)).astype(np.float32); y = X[:, -1, 0]
    est = LSTMRegressor(hidden_size=64, max_iter=1000, random_state=0)
    layer = nn.LSTM(4, 256, random_state=0)
    if mode != "fit":
        est.set_params(max_iter=1).fit(X[:50], y[:50])
    def run():
        while True:
            if mode == "fit": est.fit(X, y)
            elif mode == "partial_fit": est.partial_fit(X, y)
            elif mode == "predict": est.predict(X)
            elif mode == "forward": layer.forward(X[:256], inference=True)
            elif mode == "backward":
                out, _ = layer.forward(X[:128]); layer.backward(np.ones_like(out))
    threading.Thread(target=run, daemon=True).start()
    time.sleep({delay})
    print("exiting", flush=True)
"""


@pytest.mark.parametrize("mode", ["fit", "partial_fit", "predict", "forward", "backward"])
def test_interpreter_exit_with_a_daemon_thread_inside_the_core(mode):
    for delay in (0.3, 0.6, 0.9):
        proc = run_python(EXIT_DURING.format(mode=mode, delay=delay), timeout=120)
        assert proc.returncode == 0 and "terminate" not in proc.stderr, (
            f"delay {delay}: return code {proc.returncode}, stderr {proc.stderr[-500:]}"
        )


EXIT_HOOK_LATER = """
    import atexit, threading, numpy as np
    def late():  # registered before lstm_native: runs after its exit hook (atexit is LIFO)
        print("late", float(est.predict(X[:3]).sum()) == float(ref), flush=True)
    atexit.register(late)
    from lstm_native import LSTMRegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 20, 3)).astype(np.float32); y = X[:, -1, 0]
    est = LSTMRegressor(hidden_size=16, max_iter=1, random_state=0).fit(X, y)
    ref = est.predict(X[:3]).sum()
    threading.Thread(target=lambda: [est.predict(X) for _ in iter(int, 1)], daemon=True).start()
"""


def test_the_exiting_thread_still_computes_after_the_exit_hook():
    """The hook that parks daemon threads at exit must not park the thread that runs it: an
    atexit handler (registered earlier, so run later) can still predict."""
    proc = run_python(EXIT_HOOK_LATER, timeout=120)
    assert proc.returncode == 0 and "late True" in proc.stdout, (proc.stdout, proc.stderr[-500:])


# ------------------------------------------------------------------------------------------
# 10. valid sample weights: a minibatch of zero weights contributes nothing
# ------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_zero_weight_minibatches_are_skipped():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 4, 2)).astype(np.float32)
    y = X[:, -1, 0]
    sw = (rng.random(1000) < 0.2).astype(np.float64)  # 80 % zeros: some batches of 32 all zero
    for seed in range(10):
        est = LSTMRegressor(hidden_size=4, batch_size=32, max_iter=2, random_state=seed)
        est.fit(X, y, sample_weight=sw)
        assert np.isfinite(est.loss_)


def test_zero_weight_minibatch_is_exactly_no_step():
    """Core: an epoch whose first minibatch has zero weights equals the epoch over the other
    minibatches alone (same steps, same loss)."""
    m = _core.Model64(_core.ModelConfig("lstm", 2, 3, 1, 1))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 5, 2))
    Y = rng.standard_normal((4, 1))
    p0 = rng.uniform(-0.3, 0.3, m.num_params)
    optim = _core.OptimConfig(
        batch_size=2, shuffle=False, seed=0, solver="adam", lr=0.01, alpha=1e-3
    )
    runs = []
    for Xs, Ys, sw in (
        (X, Y, np.array([0.0, 0.0, 1.0, 2.0])),
        (X[2:], Y[2:], np.array([1.0, 2.0])),
    ):
        p, mo, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        loss, step = m.train_epoch(
            p, mo, v, 0, np.ascontiguousarray(Xs), None, np.ascontiguousarray(Ys), sw, optim
        )
        runs.append((p, loss, step))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and runs[0][2] == runs[1][2] == 1


def test_zero_weight_validation_tail_is_refused_up_front():
    X, y = data(n=40)
    sw = np.ones(40)
    sw[-4:] = 0.0
    est = LSTMRegressor(hidden_size=3, early_stopping=True, validation_fraction=0.1)
    with pytest.raises(ValueError, match="validation set"):
        est.fit(X, y, sample_weight=sw)
    assert not hasattr(est, "params_")


# ------------------------------------------------------------------------------------------
# the siblings of the other items
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_jobs", [2**31, 2**63, 10**30])
def test_huge_n_jobs_is_a_clear_value_error(n_jobs):
    X, y = data()
    with pytest.raises(ValueError, match="n_jobs"):
        LSTMRegressor(hidden_size=3, max_iter=1, n_jobs=n_jobs).fit(X, y)


def test_memory_guard_covers_nested_lists(monkeypatch):
    monkeypatch.setenv("LSTM_NATIVE_AVAILABLE_MEMORY", str(2**30))
    row = [0.0] * 100_000  # 2_000 references to one list: tiny in Python, 1.6 GB as floats
    X = [row] * 2_000
    y = [0.0] * 2_000
    with pytest.raises(MemoryError, match="2000 sequences of 100000 steps"):
        LSTMRegressor(hidden_size=3).fit(X, y)
    layer = nn.LSTM(1, 3)
    with pytest.raises(MemoryError, match="batch of 2000 sequences"):
        layer.forward([[[0.0]] * 100_000] * 2_000)


def test_diagnostics_refuse_complex_x():
    est, X, y = fitted()
    Xc = X.astype(complex) + 1j
    for call in (lambda: gate_trace(est, Xc), lambda: gradient_flow(est, Xc, y)):
        with pytest.raises(ValueError, match="Complex data not supported"):
            call()
    with pytest.raises(ValueError, match="Complex data not supported"):
        est.predict(Xc)


def test_no_segfault_from_sigint_during_predict_in_a_thread():
    """Ctrl-C while another thread predicts: the main thread gets KeyboardInterrupt, the
    process stays healthy."""
    code = """
        import os, signal, threading, time, numpy as np
        from lstm_native import nn
        # a shell's background job inherits SIGINT ignored: Ctrl-C must raise here
        signal.signal(signal.SIGINT, signal.default_int_handler)
        layer = nn.LSTM(4, 128, random_state=0)
        x = np.zeros((128, 200, 4), np.float32)
        t = threading.Thread(target=lambda: [layer.forward(x, inference=True)
                                             for _ in range(10)])
        t.start()
        try:
            threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            time.sleep(2)
        except KeyboardInterrupt:
            print("interrupted")
        t.join()
        print("done")
    """
    out = ok(run_python(code)).split()
    assert out[-2:] == ["interrupted", "done"]


# ------------------------------------------------------------------------------------------
# 4. save while another thread trains: every file written loads
# ------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_save_during_partial_fit_always_writes_a_loadable_file(tmp_path):
    import lstm_native

    X, y = data(n=400, T=10)
    est = LSTMRegressor(hidden_size=128, batch_size=8, random_state=0).partial_fit(X, y)
    stop = threading.Event()

    def trainer():
        while not stop.is_set():
            est.partial_fit(X, y)

    t = threading.Thread(target=trainer)
    t.start()
    paths = []
    try:
        for i in range(25):
            p = tmp_path / f"ckpt{i}.npz"
            est.save(p)
            paths.append(p)
            time.sleep(0.005)
    finally:
        stop.set()
        t.join()
    for p in paths:
        loaded = lstm_native.load(p)  # never "does not match its checksum"
        # one consistent snapshot: the bookkeeping agrees with itself and the weights predict
        assert len(loaded.loss_curve_) == loaded.n_iter_ and loaded.t_ == 400 * loaded.n_iter_
        assert np.isfinite(loaded.predict(X[:5])).all()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predict_during_fit_sees_a_completed_epoch():
    """A concurrent predict uses the weights of a completed epoch (published whole), never a
    mix of two optimizer steps: its result equals predict with some published params_."""
    X, y = data(n=200, T=8)
    est = LSTMRegressor(hidden_size=16, batch_size=4, max_iter=1, random_state=0).fit(X, y)
    seen = {}
    stop = threading.Event()

    class Record(__import__("lstm_native").callbacks.Callback):
        def on_epoch_end(self, env):
            seen[env.state.n_iter] = env.state.params.copy()

    est.set_params(callbacks=[Record()], max_iter=6, warm_start=True)
    seen[0] = est.params_.copy()  # what predict uses until the first epoch is published
    preds = []

    def predictor():
        while not stop.is_set():
            preds.append(est.predict(X[:3]))

    t = threading.Thread(target=predictor)
    t.start()
    try:
        est.fit(X, y)
    finally:
        stop.set()
        t.join()
    fresh = copy.deepcopy(est)
    allowed = []
    for p in seen.values():
        fresh.params_ = p
        allowed.append(fresh.predict(X[:3]))
    assert len(preds) > 0 and len(seen) == 7
    for p in preds:
        assert any(np.array_equal(p, a) for a in allowed), p


# ------------------------------------------------------------------------------------------
# 10. a failed call leaves the estimator exactly as it was
# ------------------------------------------------------------------------------------------
class _Boom(RuntimeError):
    pass


def _snapshot(est):
    return dict(
        params=est.params_.copy(),
        n_iter=est.n_iter_,
        t=est.t_,
        curve=list(est.loss_curve_),
        lr=est.learning_rate_,
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("how", ["fit", "warm_start", "partial_fit"])
def test_a_failing_call_leaves_the_estimator_as_it_was(how):
    from lstm_native.callbacks import Callback

    class FailAtEpoch3(Callback):
        def on_epoch_end(self, env):
            if env.epoch == 2 or how == "partial_fit":
                raise _Boom("a callback failed")

    X, y = data(n=60)
    est = LSTMRegressor(hidden_size=5, max_iter=4, random_state=0).fit(X, y)
    twin = copy.deepcopy(est)
    before = _snapshot(est)
    est.set_params(callbacks=[FailAtEpoch3()], warm_start=how == "warm_start")
    with pytest.raises(_Boom):
        if how == "partial_fit":
            est.partial_fit(X, y)
        else:
            est.fit(X, y)
    after = _snapshot(est)
    np.testing.assert_array_equal(after.pop("params"), before.pop("params"))
    assert after == before
    # the optimizer state is untouched too: continuing gives what the twin gives
    est.set_params(callbacks=None, warm_start=False)
    np.testing.assert_array_equal(est.partial_fit(X, y).params_, twin.partial_fit(X, y).params_)


def test_a_failing_first_fit_leaves_the_estimator_unfitted():
    from lstm_native.callbacks import Callback

    class Fail(Callback):
        def on_epoch_end(self, env):
            raise _Boom("no")

    X, y = data()
    est = LSTMRegressor(hidden_size=3, max_iter=3, callbacks=[Fail()])
    with pytest.raises(_Boom):
        est.fit(X, y)
    assert not hasattr(est, "params_") and not hasattr(est, "n_features_in_")


# ------------------------------------------------------------------------------------------
# the attack suite: random public API calls from two threads never crash or hang
# ------------------------------------------------------------------------------------------
RANDOM_CALLS = """
    import json, os, pickle, random, sys, tempfile, threading, time, traceback, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    import lstm_native
    from lstm_native import LSTMClassifier, LSTMRegressor, nn
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    rng0 = np.random.default_rng(0)
    X = rng0.standard_normal((40, 6, 3)); y = X[:, -1, 0]; yc = (y > 0).astype(int)
    ragged = [rng0.standard_normal((int(n), 3)) for n in rng0.integers(1, 8, 40)]
    tmp = tempfile.mkdtemp()
    shared = {"reg": LSTMRegressor(hidden_size=8, max_iter=2, random_state=0),
              "clf": LSTMClassifier(hidden_size=8, max_iter=2, random_state=0),
              "layer": nn.LSTM(3, 8, random_state=0)}
    streams = {}
    EXPECTED = (ValueError, TypeError, RuntimeError, NotFittedError, AttributeError)
    unexpected, counts = [], {}

    def bad_x(r):
        return r.choice([X, X[:, :, :2], X.astype(np.float32), X[::2], ragged, X[:, 0],
                         np.full((3, 6, 3), np.nan), X * 1e30, [[1.0, "a"]], None, X[:0],
                         np.asfortranarray(X), X.astype(complex)])

    def call(r):
        est = shared[r.choice(["reg", "clf"])]
        tgt = yc if isinstance(est, LSTMClassifier) else y
        op = r.choice(["fit", "partial_fit", "predict", "score", "save", "load", "stream",
                       "set_params", "clone", "pickle", "named", "layer", "backward"])
        counts[op] = counts.get(op, 0) + 1
        if op == "fit":
            kw = {}
            if r.random() < 0.3:
                kw["sample_weight"] = r.choice([np.zeros(40), np.ones(40), -np.ones(40)])
            est.fit(X if r.random() < 0.7 else bad_x(r), tgt, **kw)
        elif op == "partial_fit":
            kw = {"classes": [0, 1]} if isinstance(est, LSTMClassifier) else {}
            est.partial_fit(X, tgt, **kw)
        elif op == "predict":
            est.predict(X if r.random() < 0.6 else bad_x(r))
        elif op == "score":
            est.score(X, tgt)
        elif op == "save":
            est.save(os.path.join(tmp, f"m{r.randint(0, 3)}.npz"))
        elif op == "load":
            p = os.path.join(tmp, f"m{r.randint(0, 3)}.npz")
            if os.path.exists(p):
                lstm_native.load(p).predict(X[:2])
        elif op == "stream":
            s = streams.get(id(est)) or est.stream()
            streams[id(est)] = s
            s.step(r.choice([X[0, 0], np.array([np.nan, 0, 0]), X[0, 0, :2], X[:1, 0]]))
        elif op == "set_params":
            est.set_params(**r.choice([{"hidden_size": r.choice([4, 8])},
                                       {"warm_start": r.random() < 0.5},
                                       {"early_stopping": r.random() < 0.3},
                                       {"cell": r.choice(["lstm", "gru", "rnn"])},
                                       {"n_jobs": r.choice([None, 1, 2, -1])},
                                       {"dtype": r.choice(["float32", "float64"])}]))
        elif op == "clone":
            clone(est).set_params(max_iter=1).fit(X, tgt)
        elif op == "pickle":
            pickle.loads(pickle.dumps(est))
        elif op == "named":
            est.named_parameters()
        elif op == "layer":
            shared["layer"].forward(r.choice([X, X[:, :3], X.astype(np.float32)]),
                                    lengths=r.choice([None, np.full(40, 6), np.arange(40) % 6 + 1]))
        elif op == "backward":
            shared["layer"].backward(np.ones((40, 6, 8)))

    def worker(seed, deadline):
        r = random.Random(seed)
        while time.time() < deadline:
            try:
                call(r)
            except EXPECTED:
                pass
            except Exception as e:
                unexpected.append(f"{type(e).__name__}: {e}"[:300])

    deadline = time.time() + float(sys.argv[1]) if len(sys.argv) > 1 else time.time() + {seconds}
    threads = [threading.Thread(target=worker, args=(s, deadline)) for s in range(2)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps({"counts": counts, "unexpected": unexpected[:20]}))
"""


def test_random_api_calls_from_two_threads_never_crash_or_hang():
    import json

    proc = run_python(RANDOM_CALLS.replace("{seconds}", "8"), timeout=120)
    res = json.loads(ok(proc).strip().splitlines()[-1])
    assert sum(res["counts"].values()) > 200, res["counts"]
    assert not res["unexpected"], res["unexpected"]


# ------------------------------------------------------------------------------------------
# round 3 (a hostile test of the layers, interop and files): silent mixes and late errors
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["in place", "new array"])
def test_backward_refuses_parameters_written_since_the_forward(how):
    layer = nn.LSTM(4, 7, dtype=np.float64, random_state=0)
    x = np.random.default_rng(0).standard_normal((3, 5, 4))
    y, _ = layer.forward(x)
    if how == "in place":
        layer.flat_params *= 1.5  # an optimizer step before backward
    else:
        layer.flat_params = layer.flat_params * 1.5
    with pytest.raises(RuntimeError, match="parameters changed between forward"):
        layer.backward(np.ones_like(y))
    y, _ = layer.forward(x)  # a forward with the new weights: their gradient
    g = layer.backward(np.ones_like(y))
    fresh = nn.LSTM(4, 7, dtype=np.float64)
    fresh.set_parameters(layer.parameters())
    y2, _ = fresh.forward(x)
    for name, value in fresh.backward(np.ones_like(y2)).items():
        np.testing.assert_array_equal(g[name], value)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_warm_start_after_load_continues_as_the_saved_estimator(tmp_path):
    import lstm_native

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 6, 2)).astype(np.float32)
    y = X[:, -1, 0]
    est = LSTMRegressor(hidden_size=4, max_iter=5, early_stopping=True, random_state=0)
    est.fit(X, y).save(tmp_path / "m.npz")
    loaded = lstm_native.load(tmp_path / "m.npz")
    for m in (est, loaded):
        m.set_params(warm_start=True).fit(X, y)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_non_finite_weights_are_refused_before_a_file_is_written(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 4, 2)), rng.standard_normal(20)
    est = LSTMRegressor(hidden_size=3, max_iter=2, random_state=0).fit(X, y)
    bad = est.params_.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match="params_ contains NaN"):
        est.params_ = bad
    est.params_[0] = np.inf  # in place: seen when saving
    with pytest.raises(ValueError, match="cannot save this LSTMRegressor: its params contain"):
        est.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_rollout_checks_its_horizon():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 4, 1)), rng.standard_normal(20)
    est = LSTMRegressor(hidden_size=3, max_iter=2, random_state=0).fit(X, y)
    for bad in (2.5, True, 0, -1):
        with pytest.raises(ValueError, match="horizon must be a positive integer"):
            est.rollout(X, bad)
    with pytest.raises(MemoryError, match="rollout over"):
        est.rollout(X, 10**12)
    assert est.rollout(X, np.int64(3)).shape == (20, 3, 1)


def test_layer_input_messages_name_the_actual_problem():
    layer = nn.LSTM(4, 7)
    x = np.zeros((3, 5, 4))
    with pytest.raises(ValueError, match="beyond the range of float32"):
        layer.forward(np.full((1, 1, 4), 1e300))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 5\], got min 1 max 9223"):
        layer.forward(x, lengths=np.array([2**63 + 1, 1, 1], np.uint64))
    with pytest.raises(ValueError, match=r"lengths must have shape \(3,\), got \(0,\)"):
        layer.forward(x, lengths=[])


def test_layer_takes_torch_parameters_that_require_grad():
    torch = pytest.importorskip("torch")
    ref = torch.nn.LSTM(4, 7, batch_first=True).double()
    layer = nn.LSTM(4, 7, dtype=np.float64)
    layer.set_parameters(dict(ref.named_parameters()))  # requires_grad: detached here
    x = np.random.default_rng(0).standard_normal((3, 5, 4))
    with torch.no_grad():
        want = ref(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(layer.forward(x, inference=True)[0], want, rtol=1e-12, atol=1e-12)


def test_a_bad_bf16_kernel_setting_is_a_value_error_at_import():
    proc = run_python("import lstm_native", env={"LSTM_NATIVE_BF16_KERNEL": "bogus"})
    assert proc.returncode != 0
    assert "ValueError: LSTM_NATIVE_BF16_KERNEL must be" in proc.stderr, proc.stderr


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_gradient_flow_of_a_quantile_regressor_starts_where_fit_starts():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 6, 2)), rng.standard_normal(20)
    kw = dict(hidden_size=4, random_state=0, loss="quantile", quantiles=[0.1, 0.9])
    unfitted = gradient_flow(LSTMRegressor(**kw), X, y, of="output")["dh_norm"]
    start = LSTMRegressor(max_iter=1, learning_rate_init=1e-12, **kw).fit(X, y)
    np.testing.assert_allclose(unfitted, gradient_flow(start, X, of="output")["dh_norm"], 1e-5)
    with pytest.raises(ValueError, match="measure it with of='output'"):
        gradient_flow(start, X, y)
    with pytest.raises(ValueError, match="y has 4 rows for 5 sequences"):
        gradient_flow(LSTMRegressor(hidden_size=4), X[:5], y[:4])
    seq = LSTMRegressor(hidden_size=4, max_iter=1, return_sequences=True).fit(X, X[:, :, 0])
    with pytest.raises(ValueError, match="return_sequences=True models"):
        gradient_flow(seq, X[:5], X[:5, :, 0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_stream_names_an_out_of_range_value_briefly():
    rng = np.random.default_rng(0)
    est = LSTMRegressor(hidden_size=3, max_iter=1).fit(rng.standard_normal((10, 4, 2)), np.ones(10))
    with pytest.raises(ValueError, match=r"holds 1e\+300, beyond the range of float32"):
        est.stream().step(np.array([1e300, 0.0]))
