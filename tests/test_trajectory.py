"""Pinned training trajectories: the core's Model, the NumPy reference and PyTorch, step by step.

As llm.c pins its first training steps, each case below runs 10 optimizer steps (one fixed
minibatch per step, no shuffling) from the same initial parameters with

  * the core (lstm_native._core.Model64; Model32 for the float32 run),
  * the reference (tests/reference.py: train_step / train_trajectory, float64),
  * PyTorch (nn.LSTM / nn.GRU + nn.Linear, the loss written out, torch.optim), float64,

and compares the parameters after *every* step and the losses.  The reference's new pieces
(head, losses, L2) are first held to central finite differences, and the first losses of a few
cases are pinned as literal numbers, so that a change of the specification itself is noticed.
The losses: mse, softmax, and for regression heads absolute_error (torch's l1_loss), huber
(torch's huber_loss with the same delta) and quantile (the pinball loss, written out in torch).

Error measure: conftest.rel_err = max|a - b| / max(max|b|, 1) over the flat parameter vector.
"""

from collections import namedtuple

import numpy as np
import pytest
from conftest import rel_err

from lstm_native import _core

import reference as ref

try:
    import torch
except ImportError:  # pragma: no cover - torch is a test-only oracle
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


# ---------------------------------------------------------------------------
# The core's Model API.  Every call of it is in this section: when the binding moves to
# ModelConfig / OptimConfig objects, only these functions change.
# ---------------------------------------------------------------------------


def core_model(
    cell,
    D,
    H,
    L,
    O,
    *,
    dtype=np.float64,
    bias=True,
    bidirectional=False,
    return_sequences=False,
    loss="mse",
    huber_delta=1.0,
    quantiles=(),
):
    """A core Model (Model64 or Model32) with dropout 0."""
    cls = _core.Model64 if dtype == np.float64 else _core.Model32
    return cls(
        _core.ModelConfig(
            cell,
            D,
            H,
            L,
            O,
            bias=bias,
            bidirectional=bidirectional,
            return_sequences=return_sequences,
            dropout=0.0,
            loss=loss,
            huber_delta=huber_delta,
            quantiles=list(quantiles),
        )
    )


def net_model(net, O, dtype=np.float64):
    """core_model for a reference.Net."""
    return core_model(
        net.cell,
        D,
        H,
        net.num_layers,
        O,
        dtype=dtype,
        bidirectional=net.bidirectional,
        return_sequences=net.return_sequences,
        loss=net.loss,
        huber_delta=net.huber_delta,
        quantiles=net.quantiles,
    )


def core_layout(model):
    """[(name, offset, shape)] of the model's flat parameter vector."""
    return [(name, offset, tuple(shape)) for name, offset, shape in model.layout()]


def core_loss_and_grad(model, params, X, lengths, Y, sw, alpha):
    """Loss of (X, Y) as one batch and its gradient (flat, like params)."""
    grad = np.zeros_like(params)
    loss = model.loss_and_grad(params, X, lengths, Y, sw, alpha, grad)
    return loss, grad


def core_step(
    model,
    params,
    m,
    v,
    step,
    X,
    lengths,
    Y,
    sw,
    *,
    solver,
    lr,
    alpha,
    momentum,
    nesterov,
    beta1,
    beta2,
    eps,
    max_grad_norm,
):
    """One optimizer step on the minibatch (X, ...): an epoch with batch_size == N and no
    shuffling.  params, m, v are updated in place; returns (loss, step)."""
    optim = _core.OptimConfig(
        batch_size=len(X),
        shuffle=False,
        seed=0,
        solver=solver,
        lr=lr,
        alpha=alpha,
        momentum=momentum,
        nesterov=nesterov,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        max_grad_norm=max_grad_norm,
    )
    return model.train_epoch(params, m, v, step, X, lengths, Y, sw, optim)


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

B, T, D, H = 5, 6, 4, 7  # minibatch of each step
STEPS = 10
TOL_CORE = 1e-10  # core (float64) vs reference, parameters after each step
TOL_TORCH = 1e-9  # PyTorch (float64) vs reference
TOL_F32 = 1e-5  # core (float32) vs reference (float64)

Case = namedtuple("Case", "net O optim weighted with_torch")


def _case(
    cell,
    solver,
    O=2,
    L=1,
    bidirectional=False,
    return_sequences=False,
    loss="mse",
    weighted=False,
    with_torch=True,
    huber_delta=1.0,
    quantiles=(),
    **optim,
):
    net = ref.Net(cell, L, bidirectional, return_sequences, loss, huber_delta, quantiles)
    return Case(net, O, ref.Optim(solver, **optim), weighted, with_torch)


CASES = {
    "adam-lstm": _case("lstm", "adam", lr=0.02),
    "adam-gru": _case("gru", "adam", lr=0.02),
    "adamw-lstm": _case("lstm", "adamw", lr=0.02, alpha=0.5),
    "adamw-gru": _case("gru", "adamw", lr=0.02, alpha=0.5),
    "sgd-nesterov-lstm": _case("lstm", "sgd", lr=0.2, momentum=0.9, nesterov=True),
    "sgd-nesterov-gru": _case("gru", "sgd", lr=0.2, momentum=0.9, nesterov=True),
    "sgd-plain-gru": _case("gru", "sgd", lr=0.2, momentum=0.8, nesterov=False),
    "rmsprop-lstm": _case("lstm", "rmsprop", lr=0.01),
    "rmsprop-gru": _case("gru", "rmsprop", lr=0.01),
    "deep-bidir-lstm": _case("lstm", "adam", L=2, bidirectional=True, lr=0.02),
    "seq-bidir-gru": _case(
        "gru", "rmsprop", O=3, L=2, bidirectional=True, return_sequences=True, lr=0.01
    ),
    "softmax-gru": _case("gru", "sgd", O=3, loss="softmax", lr=0.5, momentum=0.9),
    "seq-softmax-lstm": _case("lstm", "adam", O=3, return_sequences=True, loss="softmax", lr=0.02),
    # sample weights (one of them 0), L2 and clipping (active at most steps, see CLIPPED)
    "weighted-l2-clip-lstm": _case(
        "lstm", "adam", weighted=True, lr=0.02, alpha=0.3, max_grad_norm=0.3
    ),
    "weighted-l2-clip-sgd-gru": _case(
        "gru", "sgd", L=2, weighted=True, lr=0.3, alpha=0.3, max_grad_norm=0.3
    ),
    # PyTorch has no peepholes: core vs reference only (L2 covers weight_ci/cf/co)
    "weighted-l2-peephole": _case(
        "lstm_peephole", "sgd", weighted=True, lr=0.3, alpha=0.5, with_torch=False
    ),
    # the regression losses beyond mse (huber's δ within the errors' range: both branches)
    "huber-adam-lstm": _case("lstm", "adam", loss="huber", huber_delta=0.5, lr=0.02),
    "quantile-adamw-gru": _case(
        "gru", "adamw", O=6, loss="quantile", quantiles=(0.1, 0.5, 0.9), lr=0.02, alpha=0.5
    ),
    "absolute-sgd-lstm": _case("lstm", "sgd", loss="absolute_error", lr=0.2, momentum=0.9),
    "seq-huber-weighted-clip-gru": _case(
        "gru",
        "rmsprop",
        return_sequences=True,
        loss="huber",
        huber_delta=0.3,
        weighted=True,
        lr=0.01,
        max_grad_norm=0.05,
    ),
    "seq-quantile-deep-lstm": _case(
        "lstm",
        "adam",
        O=4,
        L=2,
        return_sequences=True,
        loss="quantile",
        quantiles=(0.25, 0.75),
        weighted=True,
        lr=0.02,
    ),
}
CLIPPED = ("weighted-l2-clip-lstm", "weighted-l2-clip-sgd-gru", "seq-huber-weighted-clip-gru")


def make_problem(name, seed=0):
    """Initial parameters (layout order) and STEPS minibatches (x, lengths, y, sw)."""
    case = CASES[name]
    net = case.net
    rng = np.random.default_rng(seed)
    params = ref.init_network_params(
        rng, net.cell, D, H, net.num_layers, case.O, bidirectional=net.bidirectional
    )
    batches = []
    for _ in range(STEPS):
        x = rng.standard_normal((B, T, D))
        lengths = rng.integers(1, T + 1, size=B)
        lengths[rng.integers(B)] = T
        shape = (B, T) if net.return_sequences else (B,)
        if net.loss != "softmax":
            y = rng.standard_normal(shape + (ref.target_width(net, case.O),))
        else:
            y = rng.integers(0, case.O, size=shape).astype(np.float64)
        sw = None
        if case.weighted:
            sw = rng.uniform(0.2, 2.0, size=B)
            sw[rng.integers(B)] = 0.0
        batches.append((x, lengths, y, sw))
    return params, batches


def reference_run(name, params, batches):
    case = CASES[name]
    return ref.train_trajectory(params, batches, case.net, case.optim)


def core_run(name, params, batches, dtype=np.float64):
    """The core's trajectory: (losses, [flat params after each step])."""
    case = CASES[name]
    model = net_model(case.net, case.O, dtype)
    p = ref.flatten(params).astype(dtype)
    m, v, step = np.zeros_like(p), np.zeros_like(p), 0
    losses, trajectory = [], []
    for x, lengths, y, sw in batches:
        x, y = x.astype(dtype), y.astype(dtype)
        sw = None if sw is None else sw.astype(dtype)
        loss, step = core_step(
            model, p, m, v, step, x, lengths.astype(np.int64), y, sw, **case.optim._asdict()
        )
        losses.append(loss)
        trajectory.append(p.copy())
    assert step == len(batches)
    return losses, trajectory


# ---------------------------------------------------------------------------
# PyTorch, float64
# ---------------------------------------------------------------------------


def torch_run(name, params, batches):
    """PyTorch's trajectory: (losses, [flat params after each step])."""
    case = CASES[name]
    net, optim = case.net, case.optim
    dirs = 2 if net.bidirectional else 1
    kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[net.cell]
    rnn = kind(
        D, H, net.num_layers, batch_first=True, bidirectional=net.bidirectional, dtype=torch.float64
    )
    head = torch.nn.Linear(dirs * H, case.O, dtype=torch.float64)
    tensors = dict(rnn.named_parameters())
    tensors.update({"head.weight": head.weight, "head.bias": head.bias})
    assert list(tensors) == list(params), "PyTorch's names and order are the layout's"
    with torch.no_grad():
        for n, t in tensors.items():
            t.copy_(torch.from_numpy(params[n]))

    # written out here, not taken from the reference: L2 / decay on every "weight*" tensor
    def is_weight(n):
        return n.startswith("weight") or n == "head.weight"

    weights = [t for n, t in tensors.items() if is_weight(n)]
    others = [t for n, t in tensors.items() if not is_weight(n)]
    everything = list(tensors.values())
    betas = (optim.beta1, optim.beta2)
    if optim.solver == "adam":
        opt = torch.optim.Adam(everything, lr=optim.lr, betas=betas, eps=optim.eps)
    elif optim.solver == "adamw":  # decay on the weight matrices only
        opt = torch.optim.AdamW(
            [
                {"params": weights, "weight_decay": optim.alpha},
                {"params": others, "weight_decay": 0.0},
            ],
            lr=optim.lr,
            betas=betas,
            eps=optim.eps,
        )
    elif optim.solver == "sgd":
        opt = torch.optim.SGD(
            everything, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov
        )
    else:
        opt = torch.optim.RMSprop(everything, lr=optim.lr, alpha=0.99, eps=optim.eps)

    losses, trajectory = [], []
    for x, lengths, y, sw in batches:
        opt.zero_grad()
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            torch.from_numpy(x), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
        )
        out, state = rnn(packed)
        h_n = state[0] if isinstance(state, tuple) else state  # (L*dirs, B, H)
        if net.return_sequences:
            feat = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)[0]
        else:  # top layer's final states
            feat = torch.cat(list(h_n[-dirs:]), dim=-1)
        logits = head(feat)
        w = torch.ones(B, dtype=torch.float64) if sw is None else torch.from_numpy(sw)
        if net.return_sequences:
            omega = w[:, None] * (torch.arange(T)[None, :] < torch.from_numpy(lengths)[:, None])
        else:
            omega = w
        target = torch.from_numpy(y)
        if net.loss == "mse":
            per = 0.5 * ((logits - target) ** 2).sum(dim=-1)
            loss = (omega * per).sum() / (omega.sum() * case.O)
        elif net.loss == "absolute_error":
            per = torch.nn.functional.l1_loss(logits, target, reduction="none").sum(dim=-1)
            loss = (omega * per).sum() / (omega.sum() * case.O)
        elif net.loss == "huber":  # PyTorch's huber_loss(delta) is ours, elementwise
            per = torch.nn.functional.huber_loss(
                logits, target, reduction="none", delta=net.huber_delta
            ).sum(dim=-1)
            loss = (omega * per).sum() / (omega.sum() * case.O)
        elif net.loss == "quantile":  # the pinball loss, written out
            q = torch.tensor(net.quantiles, dtype=torch.float64)
            p = logits.reshape(logits.shape[:-1] + (-1, len(q)))
            u = target[..., :, None] - p
            per = torch.maximum(q * u, (q - 1) * u).sum(dim=(-1, -2))
            loss = (omega * per).sum() / (omega.sum() * case.O)
        else:
            per = torch.nn.functional.cross_entropy(
                logits.reshape(-1, case.O), torch.from_numpy(y).long().reshape(-1), reduction="none"
            ).reshape(omega.shape)
            loss = (omega * per).sum() / omega.sum()
        if optim.alpha > 0 and optim.solver != "adamw":
            loss = loss + 0.5 * optim.alpha * sum((t**2).sum() for t in weights) / w.sum()
        loss.backward()
        if optim.max_grad_norm > 0:
            norm = float(
                torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(t.grad) for t in everything])
                )
            )
            # clip_grad_norm_ scales by max_norm / (norm + 1e-6), the core by max_norm / norm:
            # asking torch for max_norm * (norm + 1e-6) / norm gives exactly the core's factor
            torch.nn.utils.clip_grad_norm_(everything, optim.max_grad_norm * (norm + 1e-6) / norm)
        opt.step()
        losses.append(float(loss.detach()))
        trajectory.append(np.concatenate([t.detach().numpy().ravel() for t in tensors.values()]))
    return losses, trajectory


# ---------------------------------------------------------------------------
# The reference's new pieces against finite differences
# ---------------------------------------------------------------------------

FD_EPS = 1e-6
FD_TOL = 1e-6
FD_SAMPLES = 30
FD_LENGTHS = np.array([5, 2, 4])  # B=3, T=5: one full, two padded sequences

FdCase = namedtuple("FdCase", "net weighted alpha bias O", defaults=(True, 2))
FD_CASES = {
    "lstm-mse": FdCase(ref.Net("lstm"), weighted=True, alpha=0.3),
    "gru-softmax-deep-bidir": FdCase(ref.Net("gru", 2, True, False, "softmax"), True, 0.3),
    "lstm-seq-deep-bidir": FdCase(ref.Net("lstm", 2, True, True, "mse"), True, 0.3),
    "gru-seq-softmax": FdCase(ref.Net("gru", 1, False, True, "softmax"), False, 0.0),
    "peephole-nobias": FdCase(ref.Net("lstm_peephole"), True, 0.3, bias=False),
    "lstm-absolute": FdCase(ref.Net("lstm", loss="absolute_error"), True, 0.3),
    "gru-seq-huber": FdCase(ref.Net("gru", 1, False, True, "huber", 0.4), True, 0.0),
    "lstm-quantile-deep-bidir": FdCase(
        ref.Net("lstm", 2, True, False, "quantile", quantiles=(0.1, 0.5, 0.9)), True, 0.3, O=6
    ),
    "gru-seq-quantile": FdCase(
        ref.Net("gru", 1, False, True, "quantile", quantiles=(0.2, 0.8)), False, 0.0, O=4
    ),
}
KINK_MARGIN = 1e-4  # the FD stencil (±FD_EPS) moves the outputs by far less than this


def kink_distance(logits, y, net, lengths):
    """How far the valid outputs lie from the loss's kinks (inf for the smooth losses)."""
    if net.loss not in ("absolute_error", "huber", "quantile"):
        return np.inf
    valid = (
        ref.valid_steps(lengths, logits.shape[1])
        if net.return_sequences
        else np.ones(logits.shape[0])
    ).astype(bool)
    if net.loss == "quantile":
        p = logits.reshape(logits.shape[:-1] + (-1, len(net.quantiles)))
        dist = np.abs(y[..., :, None] - p)[valid]
    else:
        e = np.abs(logits - y)[valid]
        dist = e if net.loss == "absolute_error" else np.abs(e - net.huber_delta)
    return float(dist.min())


def fd_rel_err(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-8))


@pytest.mark.parametrize("name", FD_CASES)
def test_network_gradient_matches_finite_differences(name):
    """Head, losses (with sample weights, over valid steps) and L2, B=3, T=5, D=4, H=7, O=2
    (quantile: O = targets x levels), away from the kinks of the non-smooth losses."""
    net, weighted, alpha, bias, nO = FD_CASES[name]
    rng = np.random.default_rng(7)
    nB, nT, nD, nH = 3, 5, 4, 7
    params = ref.init_network_params(
        rng, net.cell, nD, nH, net.num_layers, nO, bias=bias, bidirectional=net.bidirectional
    )
    x = rng.standard_normal((nB, nT, nD))
    shape = (nB, nT) if net.return_sequences else (nB,)
    y = (
        rng.standard_normal(shape + (ref.target_width(net, nO),))
        if net.loss != "softmax"
        else rng.integers(0, nO, size=shape).astype(np.float64)
    )
    sw = rng.uniform(0.2, 2.0, size=nB) if weighted else None
    logits, _ = ref.network_forward(params, x, net, FD_LENGTHS)
    assert kink_distance(logits, y, net, FD_LENGTHS) > KINK_MARGIN
    if net.loss == "huber":  # both branches present
        e = np.abs(logits - y)[ref.valid_steps(FD_LENGTHS, nT).astype(bool)]
        assert (e < net.huber_delta).any() and (e > net.huber_delta).any()

    _, grads = ref.network_loss_and_grad(params, x, y, net, FD_LENGTHS, sw, alpha)
    logits, cache = ref.network_forward(params, x, net, FD_LENGTHS)
    grads["x"] = ref.network_backward(
        params, cache, ref.loss_and_dlogits(logits, y, net, FD_LENGTHS, sw)[1]
    )["x"]
    tensors = dict(params, x=x)
    assert set(grads) == set(tensors)
    for tname, tensor in tensors.items():
        flat = tensor.reshape(-1)  # a view: editing it edits the tensor
        idx = rng.choice(flat.size, size=min(FD_SAMPLES, flat.size), replace=False)
        numeric = np.empty(len(idx))
        for j, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + FD_EPS
            lp = ref.network_loss(params, x, y, net, FD_LENGTHS, sw, alpha)
            flat[i] = old - FD_EPS
            lm = ref.network_loss(params, x, y, net, FD_LENGTHS, sw, alpha)
            flat[i] = old
            numeric[j] = (lp - lm) / (2 * FD_EPS)
        assert np.linalg.norm(numeric) > 1e-6, f"{tname}: zero gradient"
        err = fd_rel_err(grads[tname].reshape(-1)[idx], numeric)
        assert err < FD_TOL, f"{name} {tname}: rel err {err:.3e}"
    # padded inputs have no influence
    for b, n in enumerate(FD_LENGTHS):
        assert np.all(grads["x"][b, n:] == 0.0)


def test_loss_values_by_hand():
    """The losses' formulas on a tiny batch, written out with scalars."""
    logits = np.array([[0.5, -1.0], [2.0, 0.0], [0.0, 0.3]])
    y = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    w = np.array([1.0, 0.0, 3.0])
    mse = (1 * 0.5 * (0.5**2 + 1.0**2) + 3 * 0.5 * (0.0 + 0.7**2)) / (4.0 * 2)
    assert ref.loss_and_dlogits(logits, y, ref.Net("lstm"), None, w)[0] == pytest.approx(mse)
    classes = np.array([1.0, 0.0, 1.0])

    def nll(z, c):
        return np.log(np.exp(z).sum()) - z[c]

    ce = (1 * nll(logits[0], 1) + 3 * nll(logits[2], 1)) / 4.0
    net = ref.Net("lstm", loss="softmax")
    assert ref.loss_and_dlogits(logits, classes, net, None, w)[0] == pytest.approx(ce)
    # return_sequences: W = Σ w_b len_b, padded steps ignored
    seq = ref.Net("lstm", return_sequences=True)
    z3, y3 = logits.reshape(1, 3, 2), y.reshape(1, 3, 2)
    value = ref.loss_and_dlogits(z3, y3, seq, np.array([2]), np.array([2.0]))[0]
    assert value == pytest.approx(2 * 0.5 * (0.5**2 + 1.0**2 + 2.0**2) / (2 * 2 * 2))
    # L2 over weights only (peepholes are weights), divided by Σ w
    params = {
        "weight_ih_l0": np.ones((2, 2)),
        "bias_ih_l0": np.ones(2),
        "weight_ci_l0": np.ones(2),
        "head.weight": np.ones((1, 2)),
        "head.bias": np.ones(1),
    }
    l2, dl2 = ref.l2_penalty(params, 0.5, 3, np.array([1.0, 0.0, 3.0]))
    assert l2 == pytest.approx(0.5 * 0.5 * 8 / 4.0)
    assert np.all(dl2["bias_ih_l0"] == 0) and np.all(dl2["head.bias"] == 0)
    assert np.all(dl2["weight_ci_l0"] == 0.5 / 4.0)


def test_regression_loss_values_by_hand():
    """absolute_error, huber and quantile on a tiny batch, written out with scalars, and the
    gradients at the kinks."""
    logits = np.array([[0.5, -1.0], [2.0, 0.0], [0.0, 0.3]])
    y = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    w = np.array([1.0, 0.0, 3.0])
    # e = logits - y: [-0.5, -1], [2, 0], [0, -0.7]
    net = ref.Net("lstm", loss="absolute_error")
    value, d = ref.loss_and_dlogits(logits, y, net, None, w)
    assert value == pytest.approx((1 * (0.5 + 1.0) + 3 * (0.0 + 0.7)) / (4.0 * 2))
    np.testing.assert_array_equal(d, np.array([[-1, -1], [0, 0], [0, -3]]) / 8.0)  # sign(0) = 0
    net = ref.Net("lstm", loss="huber", huber_delta=0.6)
    value, d = ref.loss_and_dlogits(logits, y, net, None, w)
    h = [0.5 * 0.5**2, 0.6 * (1.0 - 0.3), 0.0, 0.6 * (0.7 - 0.3)]
    assert value == pytest.approx((1 * (h[0] + h[1]) + 3 * (h[2] + h[3])) / 8.0)
    np.testing.assert_allclose(d, np.array([[-0.5, -0.6], [0, 0], [0, -3 * 0.6]]) / 8.0)
    # quantile, one target and two levels: columns (q=0.2, q=0.7) of that target
    net = ref.Net("lstm", loss="quantile", quantiles=(0.2, 0.7))
    yq = np.array([[1.0], [0.0], [0.3]])
    value, d = ref.loss_and_dlogits(logits, yq, net, None, w)
    # u = y - p: [0.5, 2.0], [-2.0, 0.0], [0.3, 0.0]; ρ_q(u) = u (q - [u < 0])
    rho = [[0.5 * 0.2, 2.0 * 0.7], [-2.0 * (0.2 - 1), 0.0], [0.3 * 0.2, 0.0]]
    assert value == pytest.approx((1 * sum(rho[0]) + 3 * sum(rho[2])) / 8.0)
    # dρ/dp = [u < 0] - q; at u = 0 (row 2, level 0.7) the right derivative: -q
    np.testing.assert_allclose(d, np.array([[-0.2, -0.7], [0, 0], [-3 * 0.2, -3 * 0.7]]) / 8.0)
    # return_sequences: only the valid steps count, W = Σ w_b len_b
    seq = ref.Net("lstm", 1, False, True, "quantile", quantiles=(0.2, 0.7))
    value = ref.loss_and_dlogits(
        logits.reshape(1, 3, 2), yq.reshape(1, 3, 1), seq, np.array([1]), np.array([2.0])
    )[0]
    assert value == pytest.approx(2 * sum(rho[0]) / (2 * 1 * 2))


def test_core_losses_at_the_kinks():
    """The core takes the reference's subgradients where the losses have kinks: sign(0) = 0
    (absolute_error), the quadratic branch at |e| = δ (huber, where both branches agree),
    [u < 0] - q = -q at u = 0 (quantile). A one-sequence batch through a model with a zero
    head weight: the outputs are the head's biases."""
    for loss, kw, bias, y, want in [
        ("absolute_error", {}, [0.5, -1.0], [0.5, 0.0], [0.0, -0.5]),
        ("huber", dict(huber_delta=0.5), [1.0, -1.0], [0.5, 0.0], [0.25, -0.25]),
        ("quantile", dict(quantiles=[0.3, 0.6]), [0.5, -1.0], [0.5], [-0.15, -0.3]),
    ]:
        model = core_model("rnn", 1, 1, 1, 2, loss=loss, **kw)
        params = np.zeros(model.num_params)
        params[-2:] = bias  # head.bias
        grad = np.zeros_like(params)
        model.loss_and_grad(params, np.zeros((1, 1, 1)), None, np.array([y]), None, 0.0, grad)
        np.testing.assert_allclose(grad[-2:], want, rtol=0, atol=1e-15, err_msg=loss)


# ---------------------------------------------------------------------------
# Layout and one gradient: core vs reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell, L, bidirectional, bias",
    [
        ("lstm", 1, False, True),
        ("gru", 2, True, True),
        ("lstm_peephole", 2, True, False),
        ("cell_as_input", 1, True, True),
    ],
)
def test_layout_matches_core(cell, L, bidirectional, bias):
    shapes = ref.network_param_shapes(cell, D, H, L, 3, bias, bidirectional)
    offsets = np.cumsum([0] + [int(np.prod(s)) for s in shapes.values()])[:-1]
    expected = [(n, int(o), tuple(s)) for (n, s), o in zip(shapes.items(), offsets)]
    model = core_model(cell, D, H, L, 3, bias=bias, bidirectional=bidirectional)
    assert core_layout(model) == expected


@pytest.mark.parametrize("name", CASES)
def test_core_gradient_matches_reference(name):
    """The first step's loss and gradient (before clipping), float64."""
    case = CASES[name]
    net = case.net
    params, batches = make_problem(name)
    x, lengths, y, sw = batches[0]
    alpha = 0.0 if case.optim.solver == "adamw" else case.optim.alpha
    model = net_model(net, case.O)
    loss, grad = core_loss_and_grad(model, ref.flatten(params), x, lengths, y, sw, alpha)
    ref_loss, ref_grads = ref.network_loss_and_grad(params, x, y, net, lengths, sw, alpha)
    assert loss == pytest.approx(ref_loss, rel=1e-13)
    assert rel_err(grad, ref.flatten(ref_grads)) < 1e-13


# ---------------------------------------------------------------------------
# The trajectories
# ---------------------------------------------------------------------------


def _assert_trajectories_agree(name, losses, trajectory, expected, tol, who):
    assert len(trajectory) == STEPS
    for s in range(STEPS):
        err = rel_err(trajectory[s], ref.flatten(expected["params"][s]))
        assert err < tol, f"{name}: {who} parameters after step {s + 1}: rel err {err:.3e}"
    np.testing.assert_allclose(
        losses, expected["losses"], rtol=tol, atol=0, err_msg=f"{name}: {who} losses"
    )


@pytest.mark.parametrize("name", CASES)
def test_core_trajectory_matches_reference(name):
    params, batches = make_problem(name)
    expected = reference_run(name, params, batches)
    # the case moves the parameters (a trajectory that stands still pins nothing)
    assert rel_err(ref.flatten(expected["params"][-1]), ref.flatten(params)) > 1e-2
    if name in CLIPPED:
        clipped = sum(n > CASES[name].optim.max_grad_norm for n in expected["norms"])
        assert clipped >= STEPS // 2, f"clipping active at only {clipped} steps"
    losses, trajectory = core_run(name, params, batches)
    _assert_trajectories_agree(name, losses, trajectory, expected, TOL_CORE, "core")


@needs_torch
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.with_torch])
def test_torch_trajectory_matches_reference(name):
    params, batches = make_problem(name)
    expected = reference_run(name, params, batches)
    losses, trajectory = torch_run(name, params, batches)
    _assert_trajectories_agree(name, losses, trajectory, expected, TOL_TORCH, "torch")


@pytest.mark.parametrize(
    "name",
    [
        "adam-lstm",
        "sgd-nesterov-gru",
        "rmsprop-lstm",
        "deep-bidir-lstm",
        "weighted-l2-clip-lstm",
        "huber-adam-lstm",
        "quantile-adamw-gru",
        "absolute-sgd-lstm",
    ],
)
def test_core_float32_trajectory_matches_reference(name):
    """Model32 against the float64 reference from the same (float32-representable) start."""
    params, batches = make_problem(name)
    params = {n: p.astype(np.float32).astype(np.float64) for n, p in params.items()}
    batches = [
        tuple(None if a is None else a.astype(np.float32).astype(a.dtype) for a in b)
        for b in batches
    ]
    expected = reference_run(name, params, batches)
    losses, trajectory = core_run(name, params, batches, dtype=np.float32)
    _assert_trajectories_agree(name, losses, trajectory, expected, TOL_F32, "float32 core")


# The first three losses of a few cases (sample weights, L2, clipping, Adam; the quantile loss
# with AdamW; Huber per step with clipping), computed once by the reference:
#   params, batches = make_problem(name)
#   print([repr(v) for v in reference_run(name, params, batches[:3])["losses"]])
# (NumPy's default_rng(0) stream, tests/reference.py as of each entry's first version.)  A change
# here means the specification (or make_problem's data) changed.
PINNED_LOSSES = {
    "weighted-l2-clip-lstm": [1.7759148035600654, 1.2059333079789147, 1.8826736230739447],
    "quantile-adamw-gru": [0.43796480607685745, 0.29407541954573885, 0.2560531636352811],
    "seq-huber-weighted-clip-gru": [0.25621090071742036, 0.23098411437571764, 0.11693029404908528],
}


@pytest.mark.parametrize("name", PINNED_LOSSES)
def test_pinned_losses(name):
    params, batches = make_problem(name)
    expected = reference_run(name, params, batches[:3])
    np.testing.assert_allclose(expected["losses"], PINNED_LOSSES[name], rtol=1e-12, atol=0)
    losses, _ = core_run(name, params, batches[:3])
    np.testing.assert_allclose(losses, PINNED_LOSSES[name], rtol=1e-12, atol=0)
