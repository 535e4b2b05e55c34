"""The cell variants in the compiled core and the diagnostics built on them.

* every cell's gate/state traces (forward(return_gates=True)) and per-step state gradients
  (backward(return_sequences_grads=True)) against the NumPy reference (tests/reference.py);
* diagnostics.gradient_flow against the reference, against an exact identity of the core
  (dL/dh_t is dL/dh0 of the suffix x[t+1:] started from the state after step t), and, for
  estimators, against the estimator's own predictions and loss;
* diagnostics.gate_trace, and the forget-gate product against the gate trace.
"""

import warnings

import numpy as np
import pytest
from conftest import rel_err

from lstm_native import LSTMClassifier, LSTMRegressor, nn
from lstm_native._network import initial_parameters
from lstm_native.diagnostics import GATE_BLOCKS, gate_trace, gradient_flow

import reference as ref

CELLS = ref.CELLS
LENGTHS = [5, 2, 4]


def _layer(cell, params, D, H, L, dtype=np.float64):
    layer = nn.Recurrent(D, H, L, cell=cell, dtype=dtype)
    layer.set_parameters(params)
    return layer


def _state(cell, h, c):
    return (h, c) if ref.has_cell_state(cell) else h


def test_cells_agree():
    assert set(nn.CELLS) == set(CELLS) == set(GATE_BLOCKS)
    for cell in CELLS:
        assert nn.Recurrent(3, 5, cell=cell).has_cell_state == ref.has_cell_state(cell)
        if GATE_BLOCKS[cell]:
            assert GATE_BLOCKS[cell] == ref.gate_blocks(cell)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_core_traces_and_sequence_grads_match_reference(rng, cell, num_layers, dtype):
    B, T, D, H, L = 3, 5, 4, 7, num_layers
    params = ref.init_params(rng, cell, D, H, L)
    x = rng.standard_normal((B, T, D))
    h0 = rng.standard_normal((L, B, H)) * 0.5
    c0 = rng.standard_normal((L, B, H)) * 0.5 if ref.has_cell_state(cell) else None
    dy = rng.standard_normal((B, T, H))
    dh = rng.standard_normal((L, B, H))
    dc = rng.standard_normal((L, B, H)) if ref.has_cell_state(cell) else None
    lengths = np.array(LENGTHS)

    _, _, _, cache = ref.forward(params, x, cell, L, h0, c0, lengths)
    want_tr = ref.trace(cache)
    want = ref.backward(params, cache, dy, dh, dc, return_sequences_grads=True)

    cast = lambda a: None if a is None else a.astype(dtype)
    layer = _layer(cell, {k: cast(v) for k, v in params.items()}, D, H, L, dtype)
    _, _, tr = layer.forward(
        cast(x), _state(cell, cast(h0), cast(c0)), lengths=lengths, return_gates=True
    )
    got = layer.backward(cast(dy), _state(cell, cast(dh), cast(dc)), return_sequences_grads=True)
    tol = 1e-10 if dtype == np.float64 else 2e-5
    assert set(tr) == set(want_tr)
    for k in tr:
        assert tr[k].dtype == dtype and tr[k].shape == want_tr[k].shape
        assert rel_err(tr[k], want_tr[k]) < tol, k
    for k in ("dh", "dc"):
        assert (k in got) == (k in want)
        if k in want:
            assert got[k].shape == (L, B, T, H)
            assert rel_err(got[k], want[k]) < tol, k


@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu", "ungated"])
def test_core_gate_block_of_single_block_cells(rng, cell):
    """The RNN's and ungated's one block is its activation: h, resp. c."""
    B, T, D, H = 3, 5, 4, 7
    params = ref.init_params(rng, cell, D, H, 1)
    x = rng.standard_normal((B, T, D))
    _, _, tr = _layer(cell, params, D, H, 1).forward(x, lengths=LENGTHS, return_gates=True)
    np.testing.assert_array_equal(tr["gates"], tr["h" if cell.startswith("rnn") else "c"])


# -- gradient_flow on a layer ------------------------------------------------------------------


def _reference_flow(cell, params, x, L, target=None):
    """gradient_flow computed from the reference alone (a loop, not a cumulative product)."""
    N, T, _ = x.shape
    y, _, _, cache = ref.forward(params, x, cell, L)
    H = y.shape[2]
    dy = np.zeros_like(y)
    dy[:, -1] = 1.0 if target is None else (y[:, -1] - target) / H
    g = ref.backward(params, cache, dy, return_sequences_grads=True)
    out = {"dh_norm": np.linalg.norm(g["dh"], axis=-1).mean(axis=1).T}
    if "dc" in g:
        out["dc_norm"] = np.linalg.norm(g["dc"], axis=-1).mean(axis=1).T
    tr = ref.trace(cache)
    blocks = ref.gate_blocks(cell)
    f = None
    if "f" in blocks:
        j = blocks.index("f")
        f = tr["gates"][..., j * H : (j + 1) * H]
    elif cell == "cifg":
        f = 1.0 - tr["gates"][..., :H]
    elif cell == "lstm_1997":
        f = np.ones_like(tr["h"])
    elif cell == "gru":
        f = tr["gates"][..., H : 2 * H]
    if f is not None:
        prod = np.ones(f.shape[:2] + (T,) + f.shape[3:])
        for t in range(T):
            prod[:, :, t] = np.prod(f[:, :, t + 1 :], axis=2)
        out["forget_product"] = prod.mean(axis=(1, 3)).T
    return out


@pytest.mark.parametrize("with_target", [False, True], ids=["sum", "mse"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_gradient_flow_layer_matches_reference(rng, cell, num_layers, with_target):
    N, T, D, H, L = 4, 9, 3, 5, num_layers
    params = ref.init_params(rng, cell, D, H, L)
    x = rng.standard_normal((N, T, D))
    target = rng.standard_normal((N, H)) if with_target else None
    got = gradient_flow(_layer(cell, params, D, H, L), x, target)
    want = _reference_flow(cell, params, x, L, target)
    has_keep = cell not in ("rnn_tanh", "rnn_relu", "ungated")
    assert set(got) == set(want) | {"lag", "loss"}
    assert ("forget_product" in got) == has_keep
    assert ("dc_norm" in got) == ref.has_cell_state(cell)
    np.testing.assert_array_equal(got["lag"], np.arange(T)[::-1])
    for k, v in want.items():
        assert got[k].shape == (T, L)
        np.testing.assert_allclose(got[k], v, rtol=1e-10, atol=1e-14, err_msg=k)
    if has_keep:
        np.testing.assert_array_equal(got["forget_product"][-1], 1.0)


@pytest.mark.parametrize(
    "cell",
    ["lstm", "gru", "rnn_tanh", "lstm_1997", "cifg", "ungated", "cell_as_input", "lstm_peephole"],
)
def test_gradient_flow_is_h0_gradient_of_the_suffix(rng, cell):
    """Exact check on the core alone: dL/dh_t (and dL/dc_t) of a loss on the last step equals
    dL/dh0 of the same loss on x[:, t+1:] started from the state after step t. (dL/dc_t is
    not dL/dc0 of the suffix: it also holds the path c_t -> h_t inside step t; the reference
    holds it to finite differences and the core to the reference.)"""
    N, T, D, H = 3, 12, 4, 6
    layer = nn.Recurrent(D, H, 1, cell=cell, dtype=np.float64, random_state=1)
    x = rng.standard_normal((N, T, D))
    _, _, tr = layer.forward(x, return_gates=True)
    dy = np.zeros((N, T, H))
    dy[:, -1] = 1.0
    g = layer.backward(dy, return_sequences_grads=True)
    flow = gradient_flow(layer, x)
    for t in range(T - 1):
        state = _state(cell, tr["h"][:, :, t], tr["c"][:, :, t] if "c" in tr else None)
        layer.forward(x[:, t + 1 :], state)
        dy_s = np.zeros((N, T - 1 - t, H))
        dy_s[:, -1] = 1.0
        g_s = layer.backward(dy_s)
        np.testing.assert_allclose(g["dh"][0, :, t], g_s["h0"][0], rtol=1e-11, atol=1e-14)
        assert flow["dh_norm"][t, 0] == pytest.approx(
            np.linalg.norm(g_s["h0"][0], axis=1).mean(), rel=1e-11, abs=1e-300
        )


def test_gradient_flow_forget_product_from_the_trace(rng):
    """forget_product is the mean over sequences and units of the product of the traced forget
    gates after step t (a two-layer LSTM, every layer)."""
    N, T, D, H, L = 5, 15, 3, 8, 2
    layer = nn.Recurrent(D, H, L, cell="lstm", dtype=np.float64, random_state=3)
    x = rng.standard_normal((N, T, D))
    flow = gradient_flow(layer, x)
    f = gate_trace(layer, x)["f"]  # (N, L, T, H)
    for t in range(T):
        want = np.prod(f[:, :, t + 1 :], axis=2).mean(axis=(0, 2))
        np.testing.assert_allclose(flow["forget_product"][t], want, rtol=1e-12)


def test_gate_trace(rng):
    N, T, D, H, L = 3, 6, 4, 5, 2
    for cell in CELLS:
        params = ref.init_params(rng, cell, D, H, L)
        x = rng.standard_normal((N, T, D))
        tr = gate_trace(_layer(cell, params, D, H, L), x)
        _, _, _, cache = ref.forward(params, x, cell, L)
        want = ref.trace(cache)
        for k, v in want.items():
            assert tr[k].shape == (N, L) + v.shape[2:]  # batch first
            np.testing.assert_allclose(tr[k], np.swapaxes(v, 0, 1), rtol=1e-10, atol=1e-13)
        for j, name in enumerate(GATE_BLOCKS[cell]):
            np.testing.assert_array_equal(tr[name], tr["gates"][..., j * H : (j + 1) * H])
        if cell == "cifg":
            np.testing.assert_array_equal(tr["f"], 1.0 - tr["i"])


def test_diagnostics_reject_bad_input(rng):
    layer = nn.Recurrent(2, 3, cell="lstm", dtype=np.float64)
    with pytest.raises(ValueError):
        gradient_flow(layer, np.zeros((2, 5, 3)))  # wrong feature count
    with pytest.raises(ValueError):
        gradient_flow(layer, [np.zeros((4, 2)), np.zeros((5, 2))])  # ragged
    with pytest.raises(ValueError):
        gradient_flow(layer, np.zeros((2, 5, 2)), np.zeros((2, 4)))  # target width
    with pytest.raises(TypeError):
        gradient_flow("lstm", np.zeros((2, 5, 2)))
    with pytest.raises(ValueError):  # not fitted (and no y to size the head)
        gradient_flow(LSTMRegressor(), np.zeros((2, 5, 2)))


# -- gradient_flow on estimators ---------------------------------------------------------------


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru", "cifg", "cell_as_input"])
def test_gradient_flow_estimator_regressor(rng, cell):
    """The last step's gradient is head.weightᵀ (prediction - y) (0.5 * squared error per
    sequence), the loss is the estimator's, and the layer rebuilt from named_parameters
    predicts what the estimator predicts."""
    N, T, D = 40, 8, 2
    X = rng.standard_normal((N, T, D))
    y = X[:, :, 0].sum(axis=1)
    est = _fit(
        LSTMRegressor(cell=cell, hidden_size=6, num_layers=2, max_iter=3, random_state=0), X, y
    )
    flow = gradient_flow(est, X, y)
    pred = est.predict(X)
    assert flow["loss"] == pytest.approx(0.5 * np.mean((pred - y) ** 2), rel=1e-4)
    W = est.named_parameters()["head.weight"]  # (1, H)
    want_last = np.mean(np.abs(pred - y)) * np.linalg.norm(W)
    assert flow["dh_norm"][-1, -1] == pytest.approx(want_last, rel=1e-4)
    assert flow["dh_norm"].shape == (T, 2)
    # without y, or of="output": the gradient of the prediction itself
    assert gradient_flow(est, X)["dh_norm"][-1, -1] == pytest.approx(np.linalg.norm(W), rel=1e-6)
    out = gradient_flow(est, X, y, of="output")
    for k in ("dh_norm", "dc_norm", "forget_product"):
        if k in out:
            np.testing.assert_array_equal(out[k], gradient_flow(est, X)[k])
    with pytest.raises(ValueError, match="of must be"):
        gradient_flow(est, X, y, of="grad")


def test_gradient_flow_estimator_classifier(rng):
    N, T, D = 60, 7, 3
    X = rng.standard_normal((N, T, D))
    y = np.array(["a", "b", "c"])[(X[:, :, 0].sum(axis=1) > 0).astype(int) + (X[:, 0, 1] > 1)]
    est = _fit(LSTMClassifier(hidden_size=5, max_iter=3, random_state=0), X, y)
    flow = gradient_flow(est, X, y)
    P = est.predict_proba(X)
    idx = np.searchsorted(est.classes_, y)
    assert flow["loss"] == pytest.approx(-np.mean(np.log(P[np.arange(N), idx])), rel=1e-4)
    # dL/dh_T = head.weightᵀ (p - onehot)
    W = est.named_parameters()["head.weight"]
    d = P.copy()
    d[np.arange(N), idx] -= 1
    want = np.linalg.norm(d @ W, axis=1).mean()
    assert flow["dh_norm"][-1, 0] == pytest.approx(want, rel=1e-4)
    with pytest.raises(ValueError):
        gradient_flow(est, X, np.full(N, "z"))


def test_gradient_flow_estimator_rejects_bidirectional(rng):
    X = rng.standard_normal((20, 5, 2))
    est = _fit(
        LSTMRegressor(hidden_size=4, bidirectional=True, max_iter=1, random_state=0), X, X[:, 0, 0]
    )
    with pytest.raises(ValueError, match="unidirectional"):
        gradient_flow(est, X)


@pytest.mark.parametrize(
    "est_cls,cell", [(LSTMRegressor, "lstm"), (LSTMRegressor, "ungated"), (LSTMClassifier, "gru")]
)
def test_gradient_flow_unfitted_estimator_is_at_initialization(rng, est_cls, cell):
    """An unfitted estimator is measured at the network fit(X, y) starts from."""
    N, T, D = 30, 6, 2
    X = rng.standard_normal((N, T, D))
    y = X[:, :, 0].sum(axis=1) if est_cls is LSTMRegressor else (X[:, 0, 0] > 0).astype(int)
    kw = dict(cell=cell, hidden_size=5, num_layers=2, random_state=7)
    flow0 = gradient_flow(est_cls(**kw), X, y)
    with pytest.raises(ValueError, match="need X and y"):
        gradient_flow(est_cls(**kw), X)
    fitted = _fit(est_cls(**kw, max_iter=1), X, y)
    # the fitted estimator with its parameters put back to the initial ones (the estimators'
    # initialization with the same random_state)
    layout, off = [], 0
    for name, v in fitted.named_parameters().items():
        layout.append((name, off, v.shape))
        off += v.size
    fitted.params_[...] = initial_parameters(
        layout, off, cell, 5, random_state=7, dtype=fitted.params_.dtype
    )
    flow1 = gradient_flow(fitted, X, y)
    for k in flow0:
        np.testing.assert_allclose(flow0[k], flow1[k], rtol=1e-6, err_msg=k)
