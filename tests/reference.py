r"""Pure-NumPy float64 reference for the recurrent layers of lstm_native.

This module is the *specification* the C++ core is tested against.  It is
written to be read, not to be fast: every step of the forward pass and of
backpropagation through time (BPTT) is spelled out by hand.

Notation
========
    B  batch size            T  number of timesteps        D  input size
    H  hidden size           L  number of stacked layers   G  gates per cell
    x_t   (B, D_k)  input of layer k at step t (D_0 = D, D_k = H for k > 0)
    h_t   (B, H)    hidden state after step t;  h_{-1} = h0[k]
    c_t   (B, H)    LSTM cell state after step t; c_{-1} = c0[k]
    σ(a) = 1 / (1 + exp(-a))

Every matrix below multiplies a row-vector batch from the right, i.e.
``W x`` means ``x @ W.T`` with x of shape (B, D_k) and W of shape (G*H, D_k).

Parameters (PyTorch names, shapes and order), for each layer k = 0..L-1
======================================================================
    weight_ih_l{k}   (G*H, D_k)
    weight_hh_l{k}   (G*H, H)
    bias_ih_l{k}     (G*H,)        only when bias=True
    bias_hh_l{k}     (G*H,)        only when bias=True

The G*H rows are G blocks of H rows, one block per gate, in the order listed
for each cell below (PyTorch's order).

Cells
=====
LSTM (G = 4, gate blocks i, f, g, o)::

    a   = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          (B, 4H)
    i   = σ(a_i)      input gate
    f   = σ(a_f)      forget gate
    g   = tanh(a_g)   candidate cell
    o   = σ(a_o)      output gate
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

GRU (G = 3, gate blocks r, z, n)::

    gi  = W_ih x_t + b_ih                                (B, 3H)
    gh  = W_hh h_{t-1} + b_hh                            (B, 3H)
    r   = σ(gi_r + gh_r)          reset gate
    z   = σ(gi_z + gh_z)          update gate
    n   = tanh(gi_n + r * gh_n)   candidate (note: r multiplies W_hn h + b_hn)
    h_t = (1 - z) * n + z * h_{t-1}

RNN (G = 1), "rnn_tanh" or "rnn_relu"::

    a   = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          (B, H)
    h_t = tanh(a)    or    h_t = max(a, 0)

Stacking
========
Layer 0 reads x; layer k > 0 reads the output sequence of layer k-1 (no
dropout).  The layer output y is the output sequence of the last layer.

Variable lengths (right-padded batch)
=====================================
``lengths[b]`` in [1, T] is the true length of sequence b.  At a padded step
(t >= lengths[b]) sequence b is frozen::

    h_t[b] = h_{t-1}[b],   c_t[b] = c_{t-1}[b],   y_t[b] = 0

so the final state hT[k, b] is the state after step lengths[b]-1, the padded
inputs x[b, t] have no influence (their gradient is exactly 0), and the
upstream gradient dy[b, t] at padded steps is ignored.  A padded batch gives
exactly the results of running each sequence alone.  This is implemented with
a per-step 0/1 mask m_t (B, 1)::

    h_t = m_t * cell(x_t, h_{t-1}) + (1 - m_t) * h_{t-1}
    y_t = m_t * cell(x_t, h_{t-1})

Backward
========
``backward`` runs BPTT: for each layer from the top down, loop t = T-1..0
carrying dh (= dL/dh_t) and dc (= dL/dc_t), push them through the masked
update and the cell's pointwise derivative, accumulate the weight gradients
and emit dL/dx_t, which becomes the upstream dy of the layer below.
"""

import numpy as np

CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")


def num_gates(cell):
    """Number of gate blocks G stacked in the G*H rows of the weights."""
    return {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}[cell]


def param_names(num_layers, bias=True):
    """PyTorch parameter names, in PyTorch order."""
    names = []
    for k in range(num_layers):
        names += [f"weight_ih_l{k}", f"weight_hh_l{k}"]
        if bias:
            names += [f"bias_ih_l{k}", f"bias_hh_l{k}"]
    return names


def init_params(rng, cell, input_size, hidden_size, num_layers=1, bias=True, scale=0.5):
    """Random parameters, uniform(-scale, scale), float64, PyTorch names/shapes/order."""
    G, H = num_gates(cell), hidden_size
    params = {}
    for k in range(num_layers):
        D_k = input_size if k == 0 else H
        params[f"weight_ih_l{k}"] = rng.uniform(-scale, scale, (G * H, D_k))
        params[f"weight_hh_l{k}"] = rng.uniform(-scale, scale, (G * H, H))
        if bias:
            params[f"bias_ih_l{k}"] = rng.uniform(-scale, scale, (G * H,))
            params[f"bias_hh_l{k}"] = rng.uniform(-scale, scale, (G * H,))
    return params


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# ---------------------------------------------------------------------------
# One step of each cell, forward.
# Each returns (h_new, c_new, saved) where `saved` holds what the backward
# step of the same cell needs.  c_new is None for cells without a cell state.
# ---------------------------------------------------------------------------

def _lstm_step(W_ih, W_hh, b_ih, b_hh, x_t, h_prev, c_prev):
    H = h_prev.shape[1]
    a = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh       # (B, 4H)
    i = sigmoid(a[:, 0 * H:1 * H])                          # (B, H)
    f = sigmoid(a[:, 1 * H:2 * H])
    g = np.tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:4 * H])
    c = f * c_prev + i * g                                  # (B, H)
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return h, c, dict(i=i, f=f, g=g, o=o, tanh_c=tanh_c)


def _gru_step(W_ih, W_hh, b_ih, b_hh, x_t, h_prev, c_prev):
    H = h_prev.shape[1]
    gi = x_t @ W_ih.T + b_ih                                # (B, 3H)
    gh = h_prev @ W_hh.T + b_hh                             # (B, 3H)
    r = sigmoid(gi[:, 0 * H:1 * H] + gh[:, 0 * H:1 * H])    # (B, H)
    z = sigmoid(gi[:, 1 * H:2 * H] + gh[:, 1 * H:2 * H])
    gh_n = gh[:, 2 * H:3 * H]                               # W_hn h + b_hn
    n = np.tanh(gi[:, 2 * H:3 * H] + r * gh_n)
    h = (1.0 - z) * n + z * h_prev
    return h, None, dict(r=r, z=z, n=n, gh_n=gh_n)


def _rnn_step(W_ih, W_hh, b_ih, b_hh, x_t, h_prev, c_prev, relu):
    a = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh       # (B, H)
    h = np.maximum(a, 0.0) if relu else np.tanh(a)
    return h, None, dict(a=a, h=h)


def _step(cell, *args):
    if cell == "lstm":
        return _lstm_step(*args)
    if cell == "gru":
        return _gru_step(*args)
    return _rnn_step(*args, relu=(cell == "rnn_relu"))


# ---------------------------------------------------------------------------
# One step of each cell, backward.
# Inputs: dh (B,H) = dL/dh_t and dc (B,H) = dL/dc_t (LSTM only; else None),
# both flowing into this step's *cell output* (masking is handled outside).
# Each returns (da_ih, da_hh, dh_prev_direct, dc_prev):
#   da_ih (B, G*H)  gradient w.r.t. W_ih x_t + b_ih
#   da_hh (B, G*H)  gradient w.r.t. W_hh h_{t-1} + b_hh
#   dh_prev_direct  gradient reaching h_{t-1} other than through W_hh (GRU's z*h)
#   dc_prev         gradient reaching c_{t-1} (LSTM only; else None)
# ---------------------------------------------------------------------------

def _lstm_step_backward(s, dh, dc, h_prev, c_prev):
    i, f, g, o, tanh_c = s["i"], s["f"], s["g"], s["o"], s["tanh_c"]
    # h = o * tanh(c)
    do = dh * tanh_c
    dc = dc + dh * o * (1.0 - tanh_c ** 2)                 # total dL/dc_t
    # c = f * c_prev + i * g
    di = dc * g
    df = dc * c_prev
    dg = dc * i
    dc_prev = dc * f
    # through the activations to the pre-activations a (B, 4H)
    da = np.concatenate([
        di * i * (1.0 - i),
        df * f * (1.0 - f),
        dg * (1.0 - g ** 2),
        do * o * (1.0 - o),
    ], axis=1)
    # a = (W_ih x + b_ih) + (W_hh h + b_hh): both halves get the same gradient
    return da, da, 0.0, dc_prev


def _gru_step_backward(s, dh, dc, h_prev, c_prev):
    r, z, n, gh_n = s["r"], s["z"], s["n"], s["gh_n"]
    # h = (1 - z) * n + z * h_prev
    dn = dh * (1.0 - z)
    dz = dh * (h_prev - n)
    dh_prev_direct = dh * z
    # n = tanh(gi_n + r * gh_n)
    dn_pre = dn * (1.0 - n ** 2)
    dr = dn_pre * gh_n
    # r = σ(gi_r + gh_r),  z = σ(gi_z + gh_z)
    dr_pre = dr * r * (1.0 - r)
    dz_pre = dz * z * (1.0 - z)
    da_ih = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)       # (B, 3H)
    da_hh = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)   # (B, 3H)
    return da_ih, da_hh, dh_prev_direct, None


def _rnn_step_backward(s, dh, dc, h_prev, c_prev, relu):
    if relu:
        da = dh * (s["a"] > 0.0)
    else:
        da = dh * (1.0 - s["h"] ** 2)
    return da, da, 0.0, None


def _step_backward(cell, *args):
    if cell == "lstm":
        return _lstm_step_backward(*args)
    if cell == "gru":
        return _gru_step_backward(*args)
    return _rnn_step_backward(*args, relu=(cell == "rnn_relu"))


# ---------------------------------------------------------------------------
# Full forward / backward
# ---------------------------------------------------------------------------

def _layer_params(params, k):
    W_ih = params[f"weight_ih_l{k}"]                        # (G*H, D_k)
    W_hh = params[f"weight_hh_l{k}"]                        # (G*H, H)
    b_ih = params.get(f"bias_ih_l{k}", 0.0)                 # (G*H,) or 0
    b_hh = params.get(f"bias_hh_l{k}", 0.0)
    return W_ih, W_hh, b_ih, b_hh


def forward(params, x, cell, num_layers, h0=None, c0=None, lengths=None):
    """Run the stacked recurrent layer.

    x: (B, T, D) batch-first.  h0, c0: (L, B, H) or None (zeros).
    lengths: (B,) ints in [1, T] or None (every sequence has length T).

    Returns (y, hT, cT, cache):
      y  (B, T, H)  output sequence of the last layer (0 at padded steps)
      hT (L, B, H)  final hidden state of each layer
      cT (L, B, H)  final cell state of each layer (LSTM), else None
      cache         everything `backward` needs
    """
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}")
    x = np.asarray(x, dtype=np.float64)
    B, T, _ = x.shape
    H = params["weight_hh_l0"].shape[1]
    is_lstm = cell == "lstm"

    h0 = np.zeros((num_layers, B, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    c0 = np.zeros((num_layers, B, H)) if c0 is None else np.asarray(c0, dtype=np.float64)
    if lengths is None:
        lengths = np.full(B, T)
    lengths = np.asarray(lengths)
    assert lengths.shape == (B,) and lengths.min() >= 1 and lengths.max() <= T
    # mask[b, t] = 1.0 where step t is a real step of sequence b, else 0.0
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float64)   # (B, T)

    hT = np.zeros((num_layers, B, H))
    cT = np.zeros((num_layers, B, H)) if is_lstm else None
    layers = []                              # per-layer cache
    inp = x                                  # (B, T, D_k)
    for k in range(num_layers):
        W_ih, W_hh, b_ih, b_hh = _layer_params(params, k)
        out = np.zeros((B, T, H))            # this layer's output sequence
        h, c = h0[k], c0[k]                  # (B, H)
        steps = []                           # per-step cache
        for t in range(T):
            m = mask[:, t][:, None]          # (B, 1)
            h_new, c_new, saved = _step(cell, W_ih, W_hh, b_ih, b_hh, inp[:, t], h, c)
            steps.append(dict(saved, h_prev=h, c_prev=c))
            out[:, t] = m * h_new
            h = m * h_new + (1.0 - m) * h
            if is_lstm:
                c = m * c_new + (1.0 - m) * c
        hT[k] = h
        if is_lstm:
            cT[k] = c
        layers.append(dict(inp=inp, steps=steps))
        inp = out

    cache = dict(cell=cell, num_layers=num_layers, params=params, mask=mask,
                 layers=layers, B=B, T=T, H=H)
    return inp, hT, cT, cache


def backward(params, cache, dy=None, dhT=None, dcT=None):
    """BPTT for the last `forward` whose cache is given.

    dy (B, T, H), dhT (L, B, H), dcT (L, B, H; LSTM only): gradients of a
    scalar loss w.r.t. the outputs of `forward`; None means zero.

    Returns a dict of gradients: one per parameter name, plus "x" (B, T, D),
    "h0" (L, B, H) and, for LSTM, "c0" (L, B, H).
    """
    cell, L = cache["cell"], cache["num_layers"]
    B, T, H, mask = cache["B"], cache["T"], cache["H"], cache["mask"]
    is_lstm = cell == "lstm"

    dy = np.zeros((B, T, H)) if dy is None else np.asarray(dy, dtype=np.float64)
    dhT = np.zeros((L, B, H)) if dhT is None else np.asarray(dhT, dtype=np.float64)
    dcT = np.zeros((L, B, H)) if dcT is None else np.asarray(dcT, dtype=np.float64)

    grads = {name: np.zeros_like(p) for name, p in params.items()}
    dh0 = np.zeros((L, B, H))
    dc0 = np.zeros((L, B, H))
    d_out = dy                                   # upstream gradient of layer k's output
    for k in reversed(range(L)):
        W_ih, W_hh, _, _ = _layer_params(params, k)
        inp, steps = cache["layers"][k]["inp"], cache["layers"][k]["steps"]
        d_inp = np.zeros_like(inp)               # (B, T, D_k)
        dW_ih = grads[f"weight_ih_l{k}"]         # accumulated in place
        dW_hh = grads[f"weight_hh_l{k}"]
        has_bias = f"bias_ih_l{k}" in grads
        dh = dhT[k].copy()                       # dL/dh_t, starting at t = T-1
        dc = dcT[k].copy()                       # dL/dc_t (LSTM)
        for t in reversed(range(T)):
            m = mask[:, t][:, None]              # (B, 1)
            s = steps[t]
            # h_t = m*h_new + (1-m)*h_prev and out_t = m*h_new, so:
            dh_new = m * (dh + d_out[:, t])      # padded steps: dy ignored, no cell grad
            dc_new = m * dc if is_lstm else None
            da_ih, da_hh, dh_direct, dc_prev = _step_backward(
                cell, s, dh_new, dc_new, s["h_prev"], s["c_prev"])
            # linear maps: a_ih = x_t W_ih^T + b_ih, a_hh = h_prev W_hh^T + b_hh
            dW_ih += da_ih.T @ inp[:, t]
            dW_hh += da_hh.T @ s["h_prev"]
            if has_bias:
                grads[f"bias_ih_l{k}"] += da_ih.sum(axis=0)
                grads[f"bias_hh_l{k}"] += da_hh.sum(axis=0)
            d_inp[:, t] = da_ih @ W_ih
            # state at t-1: through the cell, plus the frozen pass-through (1-m)
            dh = da_hh @ W_hh + dh_direct + (1.0 - m) * dh
            if is_lstm:
                dc = dc_prev + (1.0 - m) * dc
        dh0[k] = dh
        dc0[k] = dc
        d_out = d_inp                            # becomes dy of the layer below

    grads["x"] = d_out
    grads["h0"] = dh0
    if is_lstm:
        grads["c0"] = dc0
    return grads
