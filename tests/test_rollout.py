"""Model.rollout: recursive multi-step forecasting in the core.

The specification is a loop of one-step predictions: predict on the history, append the next
input (the known covariates with the fed-back outputs written into their columns) to each
sequence, predict on the grown sequences, and so on. rollout must equal that loop (float64 to
1e-12, float32 to 1e-5) while running each further step as one timestep from the carried
state; and it must equal a Stream stepped by hand through the history and the fed inputs.
"""

import numpy as np
import pytest
from conftest import rel_err

from lstm_native import _core

N, T, D, H, HORIZON = 7, 6, 3, 5, 5


def make_model(cell="lstm", L=1, O=2, dtype=np.float64, **kw):
    cls = _core.Model64 if dtype == np.float64 else _core.Model32
    return cls(_core.ModelConfig(cell, D, H, L, O, **kw))


def make_data(rng, model, dtype=np.float64, ragged=True, covariates=True, n=N):
    c = model.config
    X = rng.standard_normal((n, T, c.input_size)).astype(dtype)
    lengths = (rng.integers(1, T + 1, n) if ragged else np.full(n, T)).astype(np.int64)
    lengths[0] = T
    future = (
        rng.standard_normal((n, HORIZON - 1, c.input_size)).astype(dtype) if covariates else None
    )
    params = rng.uniform(-0.6, 0.6, model.num_params).astype(dtype)
    return params, X, lengths, future


def rollout(model, params, X, lengths, future, feedback, horizon=HORIZON):
    out = np.full((X.shape[0], horizon, model.config.output_size), np.nan, X.dtype)
    model.rollout(params, X, lengths, horizon, future, feedback, out)
    return out


def rollout_by_predict(model, params, X, lengths, future, feedback, horizon=HORIZON):
    """The specification: one predict per step on the sequences grown by one input each."""
    n, _, d = X.shape
    O = model.config.output_size
    grown = np.zeros((n, T + horizon - 1, d), X.dtype)
    for i in range(n):
        grown[i, : lengths[i]] = X[i, : lengths[i]]
    out, y = np.empty((n, horizon, O), X.dtype), np.empty((n, O), X.dtype)
    for k in range(horizon):
        if k > 0:
            x = np.zeros((n, d), X.dtype) if future is None else future[:, k - 1].copy()
            for oc, ic in feedback:
                x[:, ic] = out[:, k - 1, oc]
            grown[np.arange(n), lengths + k - 1] = x
        model.predict(params, grown, (lengths + k).astype(np.int64), y)
        out[:, k] = y
    return out


TOL = {np.float64: 1e-12, np.float32: 1e-5}
CASES = {  # cell, layers, outputs, feedback
    "lstm": ("lstm", 1, 2, [(0, 0)]),
    "gru": ("gru", 1, 1, [(0, 2)]),
    "rnn": ("rnn", 1, 3, [(2, 0), (0, 1)]),
    "lstm-2-layers": ("lstm", 2, 2, [(1, 0), (1, 1)]),
    "gru-3-layers": ("gru", 3, 1, [(0, 0)]),
    "peephole": ("lstm_peephole", 1, 1, [(0, 0)]),
    "cell_as_input": ("cell_as_input", 2, 1, [(0, 0)]),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("covariates", [True, False], ids=["covariates", "zeros"])
@pytest.mark.parametrize("name", CASES)
def test_rollout_equals_one_step_predictions_on_growing_sequences(name, covariates, dtype):
    cell, L, O, feedback = CASES[name]
    rng = np.random.default_rng(list(CASES).index(name))
    model = make_model(cell, L, O, dtype)
    params, X, lengths, future = make_data(rng, model, dtype, covariates=covariates)
    assert len(set(lengths.tolist())) > 1  # ragged histories
    got = rollout(model, params, X, lengths, future, feedback)
    want = rollout_by_predict(model, params, X, lengths, future, feedback)
    assert np.all(np.isfinite(got))
    assert rel_err(got, want) < TOL[dtype]
    # the fed-back values matter (the steps do not just repeat one prediction)
    assert np.abs(np.diff(got, axis=1)).max() > 1e-3


def test_rollout_of_horizon_one_is_predict():
    rng = np.random.default_rng(0)
    model = make_model("gru", 2, 3)
    params, X, lengths, _ = make_data(rng, model)
    out = rollout(model, params, X, lengths, None, [(0, 0)], horizon=1)
    want = np.empty((N, 3))
    model.predict(params, X, lengths, want)
    np.testing.assert_array_equal(out[:, 0], want)
    # an empty future (horizon - 1 = 0 steps) is accepted too
    out2 = rollout(model, params, X, lengths, np.zeros((N, 0, D)), [], horizon=1)
    np.testing.assert_array_equal(out2, out)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_rollout_equals_a_stream_stepped_by_hand(cell):
    rng = np.random.default_rng(5)
    model = make_model(cell, 2, 2)
    params, X, lengths, future = make_data(rng, model, ragged=False)
    feedback = [(1, 0), (0, 2)]
    got = rollout(model, params, X, lengths, future, feedback)
    stream = model.stream(params, N)
    for t in range(T):
        y = stream.step(X[:, t])
    want = [y.copy()]
    for k in range(1, HORIZON):
        x = future[:, k - 1].copy()
        for oc, ic in feedback:
            x[:, ic] = want[-1][:, oc]
        want.append(stream.step(x).copy())
    assert rel_err(got, np.stack(want, axis=1)) < 1e-12


def test_rollout_of_a_quantile_model_feeds_back_the_median_column():
    rng = np.random.default_rng(3)
    model = make_model("lstm", 1, 6, loss="quantile", quantiles=[0.1, 0.5, 0.9])
    params, X, lengths, future = make_data(rng, model)
    feedback = [(1, 0), (4, 1)]  # the medians of target 0 (columns 0..2) and 1 (3..5)
    got = rollout(model, params, X, lengths, future, feedback)
    assert rel_err(got, rollout_by_predict(model, params, X, lengths, future, feedback)) < 1e-12


def test_rollout_in_chunks_and_with_any_thread_count():
    """More sequences than one chunk of the core; large steps split over two threads give the
    same results as one thread (bit for bit)."""
    rng = np.random.default_rng(4)
    n = _core.PREDICT_CHUNK + 9
    model = make_model("gru", 1, 1)
    params, X, lengths, future = make_data(rng, model, n=n)
    got = rollout(model, params, X, lengths, future, [(0, 0)])
    want = rollout_by_predict(model, params, X, lengths, future, [(0, 0)])
    assert rel_err(got, want) < 1e-12
    cfg = _core.ModelConfig("lstm", D, 64, 2, 2)  # B * G*H * (H + D) above step.hpp's split
    outs = []
    for threads in (1, 2):
        model = _core.Model64(cfg)
        model.num_threads = threads
        p = np.random.default_rng(1).uniform(-0.2, 0.2, cfg.num_params)
        outs.append(rollout(model, p, X[:8], lengths[:8], future[:8], [(0, 0)]))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_rollout_refuses_bad_arguments():
    rng = np.random.default_rng(6)
    model = make_model("lstm", 1, 2)
    params, X, lengths, future = make_data(rng, model)
    out = np.empty((N, HORIZON, 2))

    def call(**kw):
        args = dict(
            params=params,
            X=X,
            lengths=lengths,
            horizon=HORIZON,
            future=future,
            feedback=[(0, 0)],
            out=out,
        )
        args.update(kw)
        model.rollout(**args)

    call()  # the arguments as given are fine
    bad_future = future.copy()
    bad_future[2, 1, 0] = np.nan
    inf_future = future.copy()
    inf_future[0, 0, 2] = -np.inf
    for kw, match in [
        (dict(horizon=0), "horizon"),
        (dict(horizon=-3), "horizon"),
        (dict(horizon=5.0), "horizon must be an int"),
        (dict(horizon=True), "horizon must be an int"),
        (dict(horizon=None), "horizon must be an int"),
        (dict(horizon=2**70), "horizon must be an int below"),
        (dict(future=future[:, :-1]), "future must have shape"),
        (dict(future=future.astype(np.float32)), "future must have dtype"),
        (dict(future=np.asfortranarray(future)), "future"),
        (dict(future=bad_future), "NaN or infinity"),
        (dict(future=inf_future), "NaN or infinity"),
        (dict(feedback=[(2, 0)]), "output column 2 is out of range"),
        (dict(feedback=[(-1, 0)]), "output column"),
        (dict(feedback=[(0, D)]), "input column 3 is out of range"),
        (dict(feedback=[(0, 1), (1, 1)]), "input column 1 twice"),
        (dict(feedback=[(0,)]), "pairs"),
        (dict(feedback=[(0, 1, 2)]), "pairs"),
        (dict(feedback=["01"]), "pairs"),
        (dict(feedback="00"), "pairs"),
        (dict(feedback=5), "pairs"),
        (dict(feedback=[(0.0, 1)]), "output column"),
        (dict(feedback=[(0, True)]), "input column"),
        (dict(out=np.empty((N, HORIZON + 1, 2))), "out must have shape"),
        (dict(out=np.empty((N, HORIZON, 2), np.float32)), "out must have dtype"),
        (dict(out=np.empty((N, HORIZON, 2))[::-1]), "out"),
        (dict(out=None), "out"),
        (dict(X=X[:, :, :2]), "X must have shape"),
        (dict(X=X[0]), "3-D"),
        (dict(lengths=np.full(N, T + 1)), "lengths"),
        (dict(lengths=np.zeros(N, np.int64)), "lengths"),
        (dict(params=params[:-1]), "params"),
    ]:
        with pytest.raises(ValueError, match=match):
            call(**kw)
    ro = np.empty((N, HORIZON, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        call(out=ro)
    call(feedback=None)  # no feedback: the covariates alone
    call(feedback=[])
    call(future=None, feedback=((1, 2), [0, 0]))  # tuples or lists; numpy ints below
    call(feedback=[(np.int64(1), np.int32(0))], horizon=np.int64(HORIZON))


@pytest.mark.parametrize("kw", [dict(bidirectional=True), dict(return_sequences=True)])
def test_rollout_needs_a_sequence_to_one_unidirectional_model(kw):
    model = make_model("gru", 1, 1, **kw)
    p = np.zeros(model.num_params)
    with pytest.raises(ValueError, match="sequence-to-one, unidirectional"):
        model.rollout(p, np.zeros((2, 3, D)), None, 2, None, [(0, 0)], np.empty((2, 2, 1)))
