"""The NumPy reference (tests/reference.py) held to finite differences.

The reference is the specification the C++ core is tested against, so its own
backward pass is checked here against central finite differences of its
forward pass, and its forward pass against hand-written scalar formulas.
"""

import math

import numpy as np
import pytest

import reference as ref
from reference import CELLS, MAIN_CELLS, VARIANTS, has_cell_state

LENGTHS = [5, 2, 4]  # for B=3, T=5: one full, two padded sequences
EPS = 1e-6  # central-difference step
N_SAMPLES = 30  # entries sampled per tensor
FD_TOL = 1e-6  # relative error of the sampled gradient vector


def fd_rel_err(a, b):
    """Norm-based relative error over a sampled vector: |a-b| / max(|a|+|b|, 1e-8)."""
    a, b = np.ravel(a), np.ravel(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-8))


def make_problem(rng, cell, num_layers, B, T, D, H, bias=True):
    """Random params, inputs, initial states and loss weights R."""
    params = ref.init_params(rng, cell, D, H, num_layers, bias=bias)
    x = rng.standard_normal((B, T, D))
    h0 = rng.standard_normal((num_layers, B, H)) * 0.5
    c0 = rng.standard_normal((num_layers, B, H)) * 0.5 if has_cell_state(cell) else None
    Ry = rng.standard_normal((B, T, H))
    Rh = rng.standard_normal((num_layers, B, H))
    Rc = rng.standard_normal((num_layers, B, H)) if has_cell_state(cell) else None
    return params, x, h0, c0, Ry, Rh, Rc


def loss_fn(params, x, h0, c0, cell, num_layers, lengths, Ry, Rh, Rc):
    """loss = sum(y*Ry) + sum(hT*Rh) (+ sum(cT*Rc) with a cell state)."""
    y, hT, cT, _ = ref.forward(params, x, cell, num_layers, h0, c0, lengths)
    loss = np.sum(y * Ry) + np.sum(hT * Rh)
    if cT is not None:
        loss += np.sum(cT * Rc)
    return loss


def check_fd(rng, cell, num_layers, lengths, bias=True):
    """Compare backward() against central differences for EVERY tensor."""
    B, T, D, H = 3, 5, 4, 7
    params, x, h0, c0, Ry, Rh, Rc = make_problem(rng, cell, num_layers, B, T, D, H, bias)
    y, hT, cT, cache = ref.forward(params, x, cell, num_layers, h0, c0, lengths)
    grads = ref.backward(params, cache, dy=Ry, dhT=Rh, dcT=Rc)

    # every tensor we differentiate, by the name backward() uses
    tensors = dict(params, x=x, h0=h0)
    if has_cell_state(cell):
        tensors["c0"] = c0
    assert set(grads) == set(tensors), "backward must return a gradient for every tensor"

    def loss():
        return loss_fn(params, x, h0, c0, cell, num_layers, lengths, Ry, Rh, Rc)

    for name, tensor in tensors.items():
        assert grads[name].shape == tensor.shape, name
        flat = tensor.reshape(-1)  # a view: editing it edits the tensor
        idx = rng.choice(flat.size, size=min(N_SAMPLES, flat.size), replace=False)
        numeric = np.empty(len(idx))
        for j, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + EPS
            lp = loss()
            flat[i] = old - EPS
            lm = loss()
            flat[i] = old
            numeric[j] = (lp - lm) / (2 * EPS)
        analytic = grads[name].reshape(-1)[idx]
        # a vector of (near-)zeros would make the check vacuous
        assert np.linalg.norm(numeric) > 1e-6 or name == "x", f"{name}: zero gradient"
        err = fd_rel_err(analytic, numeric)
        assert err < FD_TOL, f"{cell} L={num_layers} {name}: rel err {err:.3e}"
    return grads


@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_match_finite_differences(rng, cell, num_layers, use_lengths):
    lengths = np.array(LENGTHS) if use_lengths else None
    grads = check_fd(rng, cell, num_layers, lengths)
    if use_lengths:
        # padded inputs have no influence: their gradient is exactly zero ...
        for b, n in enumerate(LENGTHS):
            assert np.all(grads["x"][b, n:] == 0.0)
        # ... while real steps do get a gradient
        for b, n in enumerate(LENGTHS):
            assert np.all(np.abs(grads["x"][b, :n]).sum(axis=-1) > 0)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_bias_false(rng, cell, num_layers):
    """bias=False: no bias parameters, same as zero biases, gradients correct."""
    B, T, D, H = 3, 5, 4, 7
    params = ref.init_params(rng, cell, D, H, num_layers, bias=False)
    assert list(params) == ref.param_names(num_layers, bias=False, cell=cell)
    assert not any(name.startswith("bias") for name in params)

    zero_bias = dict(params)
    G = ref.num_gates(cell)
    for k in range(num_layers):
        zero_bias[f"bias_ih_l{k}"] = np.zeros(G * H)
        zero_bias[f"bias_hh_l{k}"] = np.zeros(G * H)
    x = rng.standard_normal((B, T, D))
    y, hT, cT, cache = ref.forward(params, x, cell, num_layers)
    y2, hT2, cT2, cache2 = ref.forward(zero_bias, x, cell, num_layers)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(hT, hT2)
    dy = rng.standard_normal(y.shape)
    g = ref.backward(params, cache, dy=dy)
    g2 = ref.backward(zero_bias, cache2, dy=dy)
    assert not any(name.startswith("bias") for name in g)
    for name in params:
        np.testing.assert_allclose(g[name], g2[name], rtol=1e-13, atol=1e-13)

    check_fd(rng, cell, num_layers, np.array(LENGTHS), bias=False)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_padded_batch_equals_each_sequence_alone(rng, cell, num_layers):
    B, T, D, H = 3, 5, 4, 7
    lengths = np.array(LENGTHS)
    params, x, h0, c0, Ry, Rh, Rc = make_problem(rng, cell, num_layers, B, T, D, H)
    # garbage in the padding, and nonzero dy there, which must both be ignored
    y, hT, cT, cache = ref.forward(params, x, cell, num_layers, h0, c0, lengths)
    grads = ref.backward(params, cache, dy=Ry, dhT=Rh, dcT=Rc)

    param_sum = {name: np.zeros_like(p) for name, p in params.items()}
    for b, n in enumerate(LENGTHS):
        sl = slice(b, b + 1)
        c0_b = c0[:, sl] if c0 is not None else None
        y1, hT1, cT1, cache1 = ref.forward(params, x[sl, :n], cell, num_layers, h0[:, sl], c0_b)
        g1 = ref.backward(
            params, cache1, dy=Ry[sl, :n], dhT=Rh[:, sl], dcT=Rc[:, sl] if Rc is not None else None
        )

        np.testing.assert_allclose(y[sl, :n], y1, rtol=1e-12, atol=1e-14)
        assert np.all(y[b, n:] == 0.0), "outputs at padded steps must be zero"
        np.testing.assert_allclose(hT[:, sl], hT1, rtol=1e-12, atol=1e-14)
        if has_cell_state(cell):
            np.testing.assert_allclose(cT[:, sl], cT1, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(grads["c0"][:, sl], g1["c0"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(grads["x"][sl, :n], g1["x"], rtol=1e-10, atol=1e-12)
        assert np.all(grads["x"][b, n:] == 0.0)
        np.testing.assert_allclose(grads["h0"][:, sl], g1["h0"], rtol=1e-10, atol=1e-12)
        for name in params:
            param_sum[name] += g1[name]
    for name in params:
        np.testing.assert_allclose(grads[name], param_sum[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_default_state_is_zeros(rng, cell):
    B, T, D, H, L = 3, 5, 4, 7, 2
    params = ref.init_params(rng, cell, D, H, L)
    x = rng.standard_normal((B, T, D))
    zeros = np.zeros((L, B, H))
    y, hT, cT, _ = ref.forward(params, x, cell, L)
    y2, hT2, cT2, _ = ref.forward(params, x, cell, L, zeros, zeros)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(hT, hT2)
    assert (cT is None) == (not has_cell_state(cell))
    # the final hidden state of the last layer is the last output
    np.testing.assert_array_equal(hT[-1], y[:, -1])


def _sig(a):
    return 1.0 / (1.0 + math.exp(-a))


def _scalar_step(cell, p, xt, h, c):
    """One step with D = H = B = 1, written out with scalars from the module docstring.
    pre[q] is the pre-activation of gate block q (W_ih x + b_ih + W_hh h + b_hh)."""
    Wi, Wh = p["weight_ih_l0"][:, 0], p["weight_hh_l0"][:, 0]
    bi, bh = p["bias_ih_l0"], p["bias_hh_l0"]
    pre = [Wi[q] * xt + bi[q] + Wh[q] * h + bh[q] for q in range(len(bi))]
    if cell == "gru":
        r = _sig(pre[0])
        z = _sig(pre[1])
        n = math.tanh(Wi[2] * xt + bi[2] + r * (Wh[2] * h + bh[2]))
        return (1 - z) * n + z * h, None
    if cell == "rnn_tanh":
        return math.tanh(pre[0]), None
    if cell == "rnn_relu":
        return max(pre[0], 0.0), None
    if cell == "lstm":
        i, f, g, o = _sig(pre[0]), _sig(pre[1]), math.tanh(pre[2]), _sig(pre[3])
        c = f * c + i * g
        return o * math.tanh(c), c
    if cell == "lstm_peephole":
        wci, wcf, wco = p["weight_ci_l0"][0], p["weight_cf_l0"][0], p["weight_co_l0"][0]
        i = _sig(pre[0] + wci * c)
        f = _sig(pre[1] + wcf * c)
        g = math.tanh(pre[2])
        c = f * c + i * g
        o = _sig(pre[3] + wco * c)
        return o * math.tanh(c), c
    if cell == "lstm_1997":
        i, g, o = _sig(pre[0]), math.tanh(pre[1]), _sig(pre[2])
        c = c + i * g
        return o * math.tanh(c), c
    if cell == "cifg":
        i, g, o = _sig(pre[0]), math.tanh(pre[1]), _sig(pre[2])
        c = (1 - i) * c + i * g
        return o * math.tanh(c), c
    if cell == "no_input_gate":
        f, g, o = _sig(pre[0]), math.tanh(pre[1]), _sig(pre[2])
        c = f * c + g
        return o * math.tanh(c), c
    if cell == "no_output_gate":
        i, f, g = _sig(pre[0]), _sig(pre[1]), math.tanh(pre[2])
        c = f * c + i * g
        return math.tanh(c), c
    if cell == "no_input_activation":
        i, f, g, o = _sig(pre[0]), _sig(pre[1]), pre[2], _sig(pre[3])
        c = f * c + i * g
        return o * math.tanh(c), c
    if cell == "no_output_activation":
        i, f, g, o = _sig(pre[0]), _sig(pre[1]), math.tanh(pre[2]), _sig(pre[3])
        c = f * c + i * g
        return o * c, c
    if cell == "ungated":
        c = math.tanh(pre[0] + p["weight_ch_l0"][0, 0] * c)
        return math.tanh(c), c
    if cell == "cell_as_input":
        i, f, g = _sig(pre[0]), _sig(pre[1]), math.tanh(pre[2])
        c = f * c + i * g
        return math.tanh(pre[3] + p["weight_ch_l0"][0, 0] * c), c
    raise AssertionError(cell)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_matches_scalar_equations(rng, cell):
    """With D = H = B = 1 each gate block is one number: check the gate order
    and the equations of the module docstring, written out with scalars."""
    p = ref.init_params(rng, cell, 1, 1, 1, scale=1.5)
    x_seq = [0.7, -1.3, 0.4]
    h, c = 0.3, -0.6
    for xt in x_seq:
        h, c = _scalar_step(cell, p, xt, h, c)
    x = np.array(x_seq).reshape(1, 3, 1)
    h0 = np.full((1, 1, 1), 0.3)
    c0 = np.full((1, 1, 1), -0.6)
    y, hT, cT, _ = ref.forward(p, x, cell, 1, h0, c0 if has_cell_state(cell) else None)
    assert hT[0, 0, 0] == pytest.approx(h, rel=1e-14, abs=1e-15)
    assert y[0, -1, 0] == pytest.approx(h, rel=1e-14, abs=1e-15)
    if has_cell_state(cell):
        assert cT[0, 0, 0] == pytest.approx(c, rel=1e-14, abs=1e-15)
    else:
        assert c is None and cT is None


def test_init_params_layout(rng):
    p = ref.init_params(rng, "gru", 4, 7, num_layers=2, scale=0.25)
    assert list(p) == [
        "weight_ih_l0",
        "weight_hh_l0",
        "bias_ih_l0",
        "bias_hh_l0",
        "weight_ih_l1",
        "weight_hh_l1",
        "bias_ih_l1",
        "bias_hh_l1",
    ]
    assert p["weight_ih_l0"].shape == (21, 4)
    assert p["weight_ih_l1"].shape == (21, 7)
    assert p["weight_hh_l1"].shape == (21, 7)
    assert p["bias_hh_l1"].shape == (21,)
    assert all(v.dtype == np.float64 for v in p.values())
    assert all(np.abs(v).max() <= 0.25 for v in p.values())
    assert [ref.num_gates(c) for c in MAIN_CELLS] == [4, 3, 1, 1]
    assert {c: ref.num_gates(c) for c in VARIANTS} == dict(
        lstm_peephole=4,
        lstm_1997=3,
        cifg=3,
        no_input_gate=3,
        no_output_gate=3,
        no_input_activation=4,
        no_output_activation=4,
        ungated=1,
        cell_as_input=4,
    )
    assert all(len(ref.gate_blocks(c)) == ref.num_gates(c) for c in CELLS)


@pytest.mark.parametrize("bias", [True, False])
def test_init_params_layout_extras(rng, bias):
    """Extra parameters follow PyTorch's four of their layer: peephole weights (H,) in the
    order ci, cf, co; weight_ch (H, H) for ungated and cell_as_input."""
    p = ref.init_params(rng, "lstm_peephole", 4, 7, num_layers=2, bias=bias, scale=0.25)
    four = ["bias_ih_l{k}", "bias_hh_l{k}"] if bias else []
    want = []
    for k in range(2):
        want += [f"weight_ih_l{k}", f"weight_hh_l{k}"] + [n.format(k=k) for n in four]
        want += [f"weight_ci_l{k}", f"weight_cf_l{k}", f"weight_co_l{k}"]
    assert list(p) == want == ref.param_names(2, bias=bias, cell="lstm_peephole")
    assert p["weight_ih_l0"].shape == (28, 4) and p["weight_co_l1"].shape == (7,)
    assert all(np.abs(v).max() <= 0.25 and np.abs(v).max() > 0.1 for v in p.values())
    for cell, G in (("ungated", 1), ("cell_as_input", 4)):
        p = ref.init_params(rng, cell, 4, 7, num_layers=2, bias=bias)
        assert list(p) == ref.param_names(2, bias=bias, cell=cell)
        assert list(p)[len(p) // 2 - 1] == "weight_ch_l0" and list(p)[-1] == "weight_ch_l1"
        assert p["weight_ch_l1"].shape == (7, 7) and p["weight_hh_l1"].shape == (G * 7, 7)
    for cell in CELLS:
        extras = {"lstm_peephole": 3, "ungated": 1, "cell_as_input": 1}.get(cell, 0)
        assert len(ref.param_names(1, cell=cell)) == 4 + extras


def _embed(params, cell, src_blocks, dst_blocks, H, fill):
    """params of a cell with gate blocks src_blocks, embedded in a cell with dst_blocks:
    the blocks dst has and src lacks get zero weights and bias `fill` (split over the two
    biases)."""
    out = {}
    for name, v in params.items():
        if not name.startswith(("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
            out[name] = v
            continue
        parts = []
        for q in dst_blocks:
            if q in src_blocks:
                j = src_blocks.index(q)
                parts.append(v[j * H : (j + 1) * H])
            else:
                blk = np.zeros_like(v[:H])
                if name.startswith("bias"):
                    blk[...] = fill / 2
                parts.append(blk)
        out[name] = np.concatenate(parts, axis=0)
    return out


@pytest.mark.parametrize(
    "variant,extra_block,fill,zero_extras",
    [
        # a saturated gate (bias +-40: sigma = 1 to 4e-18) turns the LSTM into the ablation
        ("lstm_1997", "f", 80.0, {}),
        ("no_input_gate", "i", 80.0, {}),
        ("no_output_gate", "o", 80.0, {}),
        # zero peepholes: the plain LSTM
        ("lstm", None, 0.0, {"weight_ci", "weight_cf", "weight_co"}),
    ],
)
def test_variants_reduce_to_each_other(rng, variant, extra_block, fill, zero_extras):
    """Consistency of the family: the LSTM with a gate held open (saturated) computes the
    variant without that gate, and the peephole LSTM with zero peepholes is the LSTM."""
    B, T, D, H, L = 3, 5, 4, 7, 2
    x = rng.standard_normal((B, T, D))
    h0 = rng.standard_normal((L, B, H)) * 0.5
    c0 = rng.standard_normal((L, B, H)) * 0.5
    if extra_block is None:
        big_cell = "lstm_peephole"
        params = ref.init_params(rng, variant, D, H, L)
        big = dict(params)
        for k in range(L):
            for base in zero_extras:
                big[f"{base}_l{k}"] = np.zeros(H)
    else:
        big_cell = "lstm"
        params = ref.init_params(rng, variant, D, H, L)
        big = _embed(params, variant, ref.gate_blocks(variant), ref.gate_blocks("lstm"), H, fill)
    y1, h1, c1, _ = ref.forward(params, x, variant, L, h0, c0, LENGTHS)
    y2, h2, c2, _ = ref.forward(big, x, big_cell, L, h0, c0, LENGTHS)
    for a, b in ((y1, y2), (h1, h2), (c1, c2)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_cifg_is_lstm_with_f_equal_one_minus_i(rng):
    """cifg's c_t = (1-i) c_{t-1} + i g, checked on one step against the gates of the
    trace: the coupled forget gate is 1 - i."""
    B, D, H = 3, 4, 7
    p = ref.init_params(rng, "cifg", D, H, 1)
    x = rng.standard_normal((B, 1, D))
    c0 = rng.standard_normal((1, B, H))
    _, _, cT, cache = ref.forward(p, x, "cifg", 1, None, c0)
    gates = ref.trace(cache)["gates"][0, :, 0]
    i, g = gates[:, :H], gates[:, H : 2 * H]
    np.testing.assert_allclose(cT[0], (1 - i) * c0[0] + i * g, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_trace(rng, cell, num_layers):
    """trace(): gates and the states after every step (zero past a sequence's length); the
    last real state is the final state and the top layer's h is the output."""
    B, T, D, H, L = 3, 5, 4, 7, num_layers
    params, x, h0, c0, *_ = make_problem(rng, cell, L, B, T, D, H)
    y, hT, cT, cache = ref.forward(params, x, cell, L, h0, c0, LENGTHS)
    tr = ref.trace(cache)
    assert tr["gates"].shape == (L, B, T, ref.num_gates(cell) * H)
    assert tr["h"].shape == (L, B, T, H)
    assert ("c" in tr) == has_cell_state(cell)
    np.testing.assert_array_equal(tr["h"][-1], y)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(tr["h"][:, b, n - 1], hT[:, b])
        if has_cell_state(cell):
            np.testing.assert_array_equal(tr["c"][:, b, n - 1], cT[:, b])
        for v in tr.values():
            assert np.all(v[:, b, n:] == 0.0)
        if cell != "rnn_relu":
            assert np.all(tr["gates"][:, b, :n] != 0.0)
    if cell in ("rnn_tanh", "rnn_relu"):
        np.testing.assert_array_equal(tr["gates"], tr["h"])
    if cell == "ungated":
        np.testing.assert_array_equal(tr["gates"], tr["c"])
    # the gates are activations: sigmoid gates in (0, 1)
    if cell in ("lstm", "lstm_peephole", "no_output_activation"):
        real = tr["gates"][:, 0]  # sequence 0 has the full length
        assert real[..., : 2 * H].min() > 0 and real[..., : 2 * H].max() < 1
        assert real[..., 3 * H :].min() > 0 and real[..., 3 * H :].max() < 1


def _perturbed_loss(monkeypatch, cell, what, k, t, b, j, eps, args):
    """The loss with eps added to layer k's h_t (what="h") or c_t (what="c") of sequence b,
    unit j, inside step t: h_t before it is output and carried; c_t as it leaves _write,
    before h_t is read from it.  The calls of ref._step / ref._write come layer by layer,
    step by step."""
    T = args[1].shape[1]
    target = k * T + t
    calls = [0]
    if what == "h":
        step = ref._step

        def hooked(*a):
            h, c, saved = step(*a)
            if calls[0] == target:
                h = h.copy()
                h[b, j] += eps
            calls[0] += 1
            return h, c, saved

        monkeypatch.setattr(ref, "_step", hooked)
    else:
        write = ref._write

        def hooked(*a):
            c, saved = write(*a)
            if calls[0] == target:
                c = c.copy()
                c[b, j] += eps
            calls[0] += 1
            return c, saved

        monkeypatch.setattr(ref, "_write", hooked)
    try:
        return loss_fn(*args)
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_sequence_grads_match_finite_differences(rng, monkeypatch, cell, num_layers):
    """backward(return_sequences_grads=True): dh[k, b, t] = dL/dh_t and dc = dL/dc_t, the
    total gradients on the states of step t, against central differences of a
    perturbation of that state inside the forward pass (real steps of padded sequences);
    past a sequence's length they are zero."""
    B, T, D, H, L = 3, 5, 4, 7, num_layers
    params, x, h0, c0, Ry, Rh, Rc = make_problem(rng, cell, L, B, T, D, H)
    lengths = np.array(LENGTHS)
    _, _, _, cache = ref.forward(params, x, cell, L, h0, c0, lengths)
    grads = ref.backward(params, cache, dy=Ry, dhT=Rh, dcT=Rc, return_sequences_grads=True)
    args = (params, x, h0, c0, cell, L, lengths, Ry, Rh, Rc)
    real = [(k, b, t) for k in range(L) for b in range(B) for t in range(LENGTHS[b])]
    for what in ("h", "c") if has_cell_state(cell) else ("h",):
        g = grads["d" + what]
        assert g.shape == (L, B, T, H)
        picks = [real[i] for i in rng.choice(len(real), size=10, replace=False)]
        picks += [(L - 1, 0, T - 1), (0, 0, 0)]  # the last step, the first step
        numeric, analytic = [], []
        for k, b, t in picks:
            j = int(rng.integers(H))
            lp = _perturbed_loss(monkeypatch, cell, what, k, t, b, j, EPS, args)
            lm = _perturbed_loss(monkeypatch, cell, what, k, t, b, j, -EPS, args)
            numeric.append((lp - lm) / (2 * EPS))
            analytic.append(g[k, b, t, j])
        assert np.linalg.norm(numeric) > 1e-6
        err = fd_rel_err(analytic, numeric)
        assert err < FD_TOL, f"{cell} L={L} d{what}: rel err {err:.3e}"
        for b, n in enumerate(LENGTHS):
            assert np.all(g[:, b, n:] == 0.0)
    # the gradient on the top layer's last state is its upstream gradient
    np.testing.assert_allclose(grads["dh"][-1, 0, -1], Rh[-1, 0] + Ry[0, -1], rtol=1e-14)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "lstm_1997", "cifg", "ungated"])
def test_sequence_grads_are_suffix_h0_grads(rng, cell):
    """dL/dh_t minus the output gradient at t is dL/dh0 of the same loss on the suffix
    x[:, t+1:] started from the state after step t (one layer, full lengths)."""
    B, T, D, H = 3, 5, 4, 7
    params, x, h0, c0, Ry, Rh, Rc = make_problem(rng, cell, 1, B, T, D, H)
    _, _, _, cache = ref.forward(params, x, cell, 1, h0, c0)
    grads = ref.backward(params, cache, dy=Ry, dhT=Rh, dcT=Rc, return_sequences_grads=True)
    tr = ref.trace(cache)
    for t in range(T - 1):
        cs = tr["c"][:, :, t] if has_cell_state(cell) else None
        _, _, _, cache_t = ref.forward(params, x[:, t + 1 :], cell, 1, tr["h"][:, :, t], cs)
        g_t = ref.backward(params, cache_t, dy=Ry[:, t + 1 :], dhT=Rh, dcT=Rc)
        np.testing.assert_allclose(
            grads["dh"][0, :, t] - Ry[:, t], g_t["h0"][0], rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", MAIN_CELLS)
def test_reference_matches_torch_float64(rng, cell, num_layers, use_lengths):
    """Where torch is installed, the specification itself is checked against
    PyTorch in float64 (padded batches through pack_padded_sequence)."""
    torch = pytest.importorskip("torch")
    B, T, D, H, L = 3, 5, 4, 7, num_layers
    params, x, h0, c0, Ry, Rh, Rc = make_problem(rng, cell, L, B, T, D, H)
    lengths = np.array(LENGTHS) if use_lengths else None

    kw = dict(num_layers=L, batch_first=True, dtype=torch.float64)
    if cell == "lstm":
        tl = torch.nn.LSTM(D, H, **kw)
    elif cell == "gru":
        tl = torch.nn.GRU(D, H, **kw)
    else:
        tl = torch.nn.RNN(D, H, nonlinearity=cell.split("_")[1], **kw)
    with torch.no_grad():
        for name, p in tl.named_parameters():
            p.copy_(torch.from_numpy(params[name]))
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True) if cell == "lstm" else None
    inp = xt
    if use_lengths:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False
        )
    yt, st = tl(inp, (h0t, c0t) if cell == "lstm" else h0t)
    if use_lengths:
        yt, _ = torch.nn.utils.rnn.pad_packed_sequence(yt, batch_first=True, total_length=T)
    hTt, cTt = st if cell == "lstm" else (st, None)
    loss = (yt * torch.from_numpy(Ry)).sum() + (hTt * torch.from_numpy(Rh)).sum()
    if cell == "lstm":
        loss = loss + (cTt * torch.from_numpy(Rc)).sum()
    loss.backward()

    y, hT, cT, cache = ref.forward(params, x, cell, L, h0, c0, lengths)
    grads = ref.backward(params, cache, dy=Ry, dhT=Rh, dcT=Rc)
    close = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, yt.detach().numpy(), **close)
    np.testing.assert_allclose(hT, hTt.detach().numpy(), **close)
    if cell == "lstm":
        np.testing.assert_allclose(cT, cTt.detach().numpy(), **close)
        np.testing.assert_allclose(grads["c0"], c0t.grad.numpy(), **close)
    for name, p in tl.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), **close, err_msg=name)
    np.testing.assert_allclose(grads["x"], xt.grad.numpy(), **close)
    np.testing.assert_allclose(grads["h0"], h0t.grad.numpy(), **close)
