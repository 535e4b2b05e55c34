"""The NumPy reference (tests/reference.py) held to finite differences.

The reference is the specification the C++ core is tested against, so its own
backward pass is checked here against central finite differences of its
forward pass, and its forward pass against hand-written scalar formulas.
"""

import math

import numpy as np
import pytest

import reference as ref
from reference import CELLS

LENGTHS = [5, 2, 4]       # for B=3, T=5: one full, two padded sequences
EPS = 1e-6                # central-difference step
N_SAMPLES = 30            # entries sampled per tensor
FD_TOL = 1e-6             # relative error of the sampled gradient vector


def fd_rel_err(a, b):
    """Norm-based relative error over a sampled vector: |a-b| / max(|a|+|b|, 1e-8)."""
    a, b = np.ravel(a), np.ravel(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-8))


def make_problem(rng, cell, num_layers, B, T, D, H, bias=True):
    """Random params, inputs, initial states and loss weights R."""
    params = ref.init_params(rng, cell, D, H, num_layers, bias=bias)
    x = rng.standard_normal((B, T, D))
    h0 = rng.standard_normal((num_layers, B, H)) * 0.5
    c0 = rng.standard_normal((num_layers, B, H)) * 0.5 if cell == "lstm" else None
    Ry = rng.standard_normal((B, T, H))
    Rh = rng.standard_normal((num_layers, B, H))
    Rc = rng.standard_normal((num_layers, B, H)) if cell == "lstm" else None
    return params, x, h0, c0, Ry, Rh, Rc


def loss_fn(params, x, h0, c0, cell, num_layers, lengths, Ry, Rh, Rc):
    """loss = sum(y*Ry) + sum(hT*Rh) (+ sum(cT*Rc) for lstm)."""
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
    if cell == "lstm":
        tensors["c0"] = c0
    assert set(grads) == set(tensors), "backward must return a gradient for every tensor"

    def loss():
        return loss_fn(params, x, h0, c0, cell, num_layers, lengths, Ry, Rh, Rc)

    for name, tensor in tensors.items():
        assert grads[name].shape == tensor.shape, name
        flat = tensor.reshape(-1)          # a view: editing it edits the tensor
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
    assert sorted(params) == sorted(ref.param_names(num_layers, bias=False))
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
        g1 = ref.backward(params, cache1, dy=Ry[sl, :n], dhT=Rh[:, sl],
                          dcT=Rc[:, sl] if Rc is not None else None)

        np.testing.assert_allclose(y[sl, :n], y1, rtol=1e-12, atol=1e-14)
        assert np.all(y[b, n:] == 0.0), "outputs at padded steps must be zero"
        np.testing.assert_allclose(hT[:, sl], hT1, rtol=1e-12, atol=1e-14)
        if cell == "lstm":
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
    assert (cT is None) == (cell != "lstm")
    # the final hidden state of the last layer is the last output
    np.testing.assert_array_equal(hT[-1], y[:, -1])


def _sig(a):
    return 1.0 / (1.0 + math.exp(-a))


@pytest.mark.parametrize("cell", CELLS)
def test_forward_matches_scalar_equations(rng, cell):
    """With D = H = B = 1 each gate block is one number: check the gate order
    and the equations of the module docstring, written out with scalars."""
    p = ref.init_params(rng, cell, 1, 1, 1, scale=1.5)
    x_seq = [0.7, -1.3, 0.4]
    h, c = 0.3, -0.6
    Wi, Wh = p["weight_ih_l0"][:, 0], p["weight_hh_l0"][:, 0]
    bi, bh = p["bias_ih_l0"], p["bias_hh_l0"]
    for xt in x_seq:
        if cell == "lstm":
            i = _sig(Wi[0] * xt + bi[0] + Wh[0] * h + bh[0])
            f = _sig(Wi[1] * xt + bi[1] + Wh[1] * h + bh[1])
            g = math.tanh(Wi[2] * xt + bi[2] + Wh[2] * h + bh[2])
            o = _sig(Wi[3] * xt + bi[3] + Wh[3] * h + bh[3])
            c = f * c + i * g
            h = o * math.tanh(c)
        elif cell == "gru":
            r = _sig(Wi[0] * xt + bi[0] + Wh[0] * h + bh[0])
            z = _sig(Wi[1] * xt + bi[1] + Wh[1] * h + bh[1])
            n = math.tanh(Wi[2] * xt + bi[2] + r * (Wh[2] * h + bh[2]))
            h = (1 - z) * n + z * h
        else:
            a = Wi[0] * xt + bi[0] + Wh[0] * h + bh[0]
            h = math.tanh(a) if cell == "rnn_tanh" else max(a, 0.0)
    x = np.array(x_seq).reshape(1, 3, 1)
    h0 = np.full((1, 1, 1), 0.3)
    c0 = np.full((1, 1, 1), -0.6)
    y, hT, cT, _ = ref.forward(p, x, cell, 1, h0, c0 if cell == "lstm" else None)
    assert hT[0, 0, 0] == pytest.approx(h, rel=1e-14, abs=1e-15)
    assert y[0, -1, 0] == pytest.approx(h, rel=1e-14, abs=1e-15)
    if cell == "lstm":
        assert cT[0, 0, 0] == pytest.approx(c, rel=1e-14, abs=1e-15)


def test_init_params_layout(rng):
    p = ref.init_params(rng, "gru", 4, 7, num_layers=2, scale=0.25)
    assert list(p) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                       "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"]
    assert p["weight_ih_l0"].shape == (21, 4)
    assert p["weight_ih_l1"].shape == (21, 7)
    assert p["weight_hh_l1"].shape == (21, 7)
    assert p["bias_hh_l1"].shape == (21,)
    assert all(v.dtype == np.float64 for v in p.values())
    assert all(np.abs(v).max() <= 0.25 for v in p.values())
    assert [ref.num_gates(c) for c in CELLS] == [4, 3, 1, 1]


@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
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
            xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
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
