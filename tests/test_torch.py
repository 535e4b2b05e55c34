"""lstm_native.nn against PyTorch's nn.LSTM / nn.GRU / nn.RNN (float32).

Skipped when torch is not installed.  Torch's weights are copied into our
layer by name (the names are PyTorch's), then outputs, final states and the
gradients of every parameter, the input and the initial state are compared
for the loss  sum(y*R) + sum(h_n*Rh) (+ sum(c_n*Rc) for LSTM).

Error measure: conftest.rel_err = max|ours - torch| / max(max|torch|, 1) <= 1e-5.
Both sides round in float32, so this is float32 rounding of two different
summation orders, scaled by the largest entry.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import rel_err  # noqa: E402

from lstm_native import nn  # noqa: E402

TOL = 1e-5
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")


def torch_layer(cell, D, H, L):
    kw = dict(num_layers=L, batch_first=True, bias=True, dtype=torch.float32)
    if cell == "lstm":
        return torch.nn.LSTM(D, H, **kw)
    if cell == "gru":
        return torch.nn.GRU(D, H, **kw)
    return torch.nn.RNN(D, H, nonlinearity=cell.split("_")[1], **kw)


@pytest.fixture(autouse=True)
def _torch_setup():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_torch(rng, sizes, cell, num_layers, use_lengths):
    B, T, D, H, L = sizes["B"], sizes["T"], sizes["D"], sizes["H"], num_layers
    is_lstm = cell == "lstm"
    tl = torch_layer(cell, D, H, L)

    x_np = rng.standard_normal((B, T, D)).astype(np.float32)
    h0_np = (0.5 * rng.standard_normal((L, B, H))).astype(np.float32)
    c0_np = (0.5 * rng.standard_normal((L, B, H))).astype(np.float32)
    R = rng.standard_normal((B, T, H)).astype(np.float32)
    Rh = rng.standard_normal((L, B, H)).astype(np.float32)
    Rc = rng.standard_normal((L, B, H)).astype(np.float32)
    lengths = None
    if use_lengths:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0], lengths[-1] = T, 1

    # ---- torch ----
    x = torch.tensor(x_np, requires_grad=True)
    h0 = torch.tensor(h0_np, requires_grad=True)
    c0 = torch.tensor(c0_np, requires_grad=True)
    state = (h0, c0) if is_lstm else h0
    if lengths is None:
        y, state_n = tl(x, state)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.tensor(lengths), batch_first=True, enforce_sorted=False
        )
        y, state_n = tl(packed, state)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=T)
    h_n, c_n = state_n if is_lstm else (state_n, None)
    loss = (y * torch.from_numpy(R)).sum() + (h_n * torch.from_numpy(Rh)).sum()
    if is_lstm:
        loss = loss + (c_n * torch.from_numpy(Rc)).sum()
    loss.backward()

    # ---- ours, with torch's weights ----
    layer = nn.Recurrent(D, H, num_layers=L, cell=cell, bias=True, dtype=np.float32)
    layer.set_parameters({n: p.detach().numpy().copy() for n, p in tl.named_parameters()})
    our_state = (h0_np, c0_np) if is_lstm else h0_np
    y_ours, st = layer.forward(x_np, state=our_state, lengths=lengths)
    grads = layer.backward(R, dstate=(Rh, Rc) if is_lstm else Rh)
    h_ours, c_ours = st if is_lstm else (st, None)

    errors = {
        "y": rel_err(y_ours, y.detach().numpy()),
        "h_n": rel_err(h_ours, h_n.detach().numpy()),
    }
    if is_lstm:
        errors["c_n"] = rel_err(c_ours, c_n.detach().numpy())
    for name, p in tl.named_parameters():
        errors["d" + name] = rel_err(grads[name], p.grad.numpy())
    errors["dx"] = rel_err(grads["x"], x.grad.numpy())
    errors["dh0"] = rel_err(grads["h0"], h0.grad.numpy())
    if is_lstm:
        errors["dc0"] = rel_err(grads["c0"], c0.grad.numpy())
    bad = {k: f"{v:.2e}" for k, v in errors.items() if not v <= TOL}
    assert not bad, f"{cell} L={L} vs torch: rel err > {TOL:g}: {bad}"
