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
    c_t   (B, H)    cell state after step t (LSTM and variants); c_{-1} = c0[k]
    σ(a) = 1 / (1 + exp(-a))

Every matrix below multiplies a row-vector batch from the right, i.e.
``W x`` means ``x @ W.T`` with x of shape (B, D_k) and W of shape (G*H, D_k).

Parameters (PyTorch names, shapes and order), for each layer k = 0..L-1
======================================================================
    weight_ih_l{k}   (G*H, D_k)
    weight_hh_l{k}   (G*H, H)
    bias_ih_l{k}     (G*H,)        only when bias=True
    bias_hh_l{k}     (G*H,)        only when bias=True
    weight_ci_l{k}, weight_cf_l{k}, weight_co_l{k}   (H,)      lstm_peephole only
    weight_ch_l{k}   (H, H)        ungated and cell_as_input only

The G*H rows are G blocks of H rows, one block per gate, in the order listed
for each cell below (PyTorch's order for the LSTM, GRU and RNN).

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

LSTM variants
-------------
Greff et al., "LSTM: A Search Space Odyssey" (2017), and the two alternatives
of issue 6.  Every variant has a cell state c (c0 accepted, cT returned).
``pre_q`` is the pre-activation of gate block q, exactly as for the LSTM::

    pre = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh           (B, G*H), blocks in order

"lstm_peephole" (G = 4: i, f, g, o; extra weight_ci, weight_cf, weight_co (H,))::

    i   = σ(pre_i + w_ci * c_{t-1})        the gates also see the cell
    f   = σ(pre_f + w_cf * c_{t-1})
    g   = tanh(pre_g)
    c_t = f * c_{t-1} + i * g
    o   = σ(pre_o + w_co * c_t)            the output gate sees the *new* cell
    h_t = o * tanh(c_t)

"lstm_1997" (G = 3: i, g, o), the original LSTM, no forget gate::

    c_t = c_{t-1} + i * g                  h_t = o * tanh(c_t)

"cifg" (G = 3: i, g, o), coupled input and forget gate::

    f   = 1 - i
    c_t = (1 - i) * c_{t-1} + i * g        h_t = o * tanh(c_t)

"no_input_gate" (G = 3: f, g, o)::

    c_t = f * c_{t-1} + g                  h_t = o * tanh(c_t)

"no_output_gate" (G = 3: i, f, g)::

    c_t = f * c_{t-1} + i * g              h_t = tanh(c_t)

"no_input_activation" (G = 4: i, f, g, o), g = pre_g instead of tanh(pre_g).

"no_output_activation" (G = 4: i, f, g, o), h_t = o * c_t instead of o * tanh(c_t).

"ungated" (G = 1; extra weight_ch_l{k} (H, H)): the new cell state is one
network of (x_t, h_{t-1}, c_{t-1}), no gate anywhere::

    c_t = tanh(pre + W_ch c_{t-1})
    h_t = tanh(c_t)

"cell_as_input" (G = 4: i, f, g, u; extra weight_ch_l{k} (H, H)): the gates
write the cell as in the LSTM, but h is a network of (x_t, h_{t-1}, c_t)
instead of an output gate scaling tanh(c_t)::

    c_t = f * c_{t-1} + i * g              (i, f, g as in the LSTM)
    h_t = tanh(pre_u + W_ch c_t)

All the cells with a cell state (the LSTM and every variant) go through one
pair of step functions, ``_cell_state_step`` (``_write`` then ``_read``) and
``_cell_state_step_backward`` (``_read_backward`` then ``_write_backward``),
driven by a small table (``_SPECS``) that says how the cell is *written*
(which gates exist, the forget gate coupled or absent, the candidate's
activation, peepholes, or a network) and how it is *read* (an output gate, a
bare activation, or a network).

Extra parameters follow the four PyTorch ones of their layer, in the order
weight_ci, weight_cf, weight_co (peephole) or weight_ch (ungated,
cell_as_input); they exist with bias=False too (they are not biases).

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

The whole network
=================
The second half of this file ("The network") specifies the rest of what the
core's ``Model`` (cpp/include/lstm_native/model.hpp, cpp/src/model.cpp) does in
one training step: bidirectional layers, the dense head, the losses (mse,
softmax, absolute_error, huber, quantile) with sample weights, L2, global-norm
gradient clipping, the optimizers (SGD with momentum, Adam, AdamW, RMSprop), one
step and a k-step trajectory.
"""

import contextlib
from collections import namedtuple

import numpy as np

MAIN_CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
VARIANTS = (
    "lstm_peephole",
    "lstm_1997",
    "cifg",
    "no_input_gate",
    "no_output_gate",
    "no_input_activation",
    "no_output_activation",
    "ungated",
    "cell_as_input",
)
CELLS = MAIN_CELLS + VARIANTS


# ---------------------------------------------------------------------------
# The cells with a cell state, as a table.
#   blocks    the gate blocks stacked in the G*H rows, in order
#   write     "gates": c_t = f * c_{t-1} + i * g   (a missing i or f is 1)
#             "network": c_t = tanh(pre_c + W_ch c_{t-1})
#   forget    "gate" (σ), "none" (f = 1) or "coupled" (f = 1 - i)
#   g_act     activation of the candidate g: "tanh" or "identity"
#   read      "gate": h_t = o * act(c_t);  "act": h_t = act(c_t);
#             "network": h_t = tanh(pre_u + W_ch c_t)
#   h_act     the act of c_t in "gate"/"act" reads: "tanh" or "identity"
#   peephole  i, f see c_{t-1} and o sees c_t through diagonal weights
# ---------------------------------------------------------------------------

CellSpec = namedtuple("CellSpec", "blocks write forget g_act read h_act peephole")


def _spec(
    blocks, write="gates", forget="gate", g_act="tanh", read="gate", h_act="tanh", peephole=False
):
    return CellSpec(blocks, write, forget, g_act, read, h_act, peephole)


_SPECS = {
    "lstm": _spec("ifgo"),
    "lstm_peephole": _spec("ifgo", peephole=True),
    "lstm_1997": _spec("igo", forget="none"),
    "cifg": _spec("igo", forget="coupled"),
    "no_input_gate": _spec("fgo"),
    "no_output_gate": _spec("ifg", read="act"),
    "no_input_activation": _spec("ifgo", g_act="identity"),
    "no_output_activation": _spec("ifgo", h_act="identity"),
    "ungated": _spec("c", write="network", forget="none", read="act"),
    "cell_as_input": _spec("ifgu", read="network"),
}

# activation: (function, derivative expressed through the function's output)
_ACTS = {
    "tanh": (np.tanh, lambda y: 1.0 - y**2),
    "identity": (lambda a: a, lambda y: np.ones_like(y)),
}


def has_cell_state(cell):
    """True for the LSTM and every LSTM variant (they take c0 and return cT)."""
    return cell in _SPECS


def num_gates(cell):
    """Number of gate blocks G stacked in the G*H rows of the weights."""
    if cell in _SPECS:
        return len(_SPECS[cell].blocks)
    return {"gru": 3, "rnn_tanh": 1, "rnn_relu": 1}[cell]


def gate_blocks(cell):
    """The names of the gate blocks, in their order in the G*H rows."""
    if cell in _SPECS:
        return tuple(_SPECS[cell].blocks)
    return {"gru": ("r", "z", "n"), "rnn_tanh": ("h",), "rnn_relu": ("h",)}[cell]


def extra_param_shapes(cell, hidden_size):
    """{base name: shape} of the parameters a layer has beyond PyTorch's four, in order."""
    H = hidden_size
    if cell in _SPECS and _SPECS[cell].peephole:
        return {"weight_ci": (H,), "weight_cf": (H,), "weight_co": (H,)}
    if cell in ("ungated", "cell_as_input"):
        return {"weight_ch": (H, H)}
    return {}


def param_names(num_layers, bias=True, cell=None):
    """Parameter names in layout order: per layer PyTorch's four (two without bias),
    then the cell's extra parameters (none for cell=None or the main cells)."""
    extras = list(extra_param_shapes(cell, 1)) if cell is not None else []
    names = []
    for k in range(num_layers):
        names += [f"weight_ih_l{k}", f"weight_hh_l{k}"]
        if bias:
            names += [f"bias_ih_l{k}", f"bias_hh_l{k}"]
        names += [f"{base}_l{k}" for base in extras]
    return names


def init_params(rng, cell, input_size, hidden_size, num_layers=1, bias=True, scale=0.5):
    """Random parameters, uniform(-scale, scale), float64, in layout order."""
    G, H = num_gates(cell), hidden_size
    params = {}
    for k in range(num_layers):
        D_k = input_size if k == 0 else H
        params[f"weight_ih_l{k}"] = rng.uniform(-scale, scale, (G * H, D_k))
        params[f"weight_hh_l{k}"] = rng.uniform(-scale, scale, (G * H, H))
        if bias:
            params[f"bias_ih_l{k}"] = rng.uniform(-scale, scale, (G * H,))
            params[f"bias_hh_l{k}"] = rng.uniform(-scale, scale, (G * H,))
        for base, shape in extra_param_shapes(cell, H).items():
            params[f"{base}_l{k}"] = rng.uniform(-scale, scale, shape)
    return params


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# ---------------------------------------------------------------------------
# precision="bfloat16": the operands of the products with W_ih and W_hh (forward
# x W_ih^T and h W_hh^T, backward dgates W and dgates^T x / dgates^T h_prev)
# rounded to bfloat16 (round to nearest even, through float32), the products
# and everything else in float64.  Inside ``with bfloat16():`` only.
# ---------------------------------------------------------------------------

_BF16 = [False]


def bf16_round(a):
    """``a`` rounded to the nearest bfloat16 (ties to even; via float32), as float64."""
    a32 = np.ascontiguousarray(a, dtype=np.float32)
    u = a32.view(np.uint32).astype(np.uint64)
    r = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32)
    return r.view(np.float32).astype(np.float64)


@contextlib.contextmanager
def bfloat16():
    """The reference with bfloat16 operands in the recurrent products (see above)."""
    _BF16[0] = True
    try:
        yield
    finally:
        _BF16[0] = False


def _mm(a, b):
    """a @ b, with both operands rounded to bfloat16 inside ``with bfloat16():``."""
    if _BF16[0]:
        return bf16_round(a) @ bf16_round(b)
    return a @ b


# ---------------------------------------------------------------------------
# One step of each cell, forward.
# `lp` holds layer k's parameters by base name ("weight_ih", ..., "weight_ch").
# Each returns (h_new, c_new, saved) where `saved` holds what the backward
# step of the same cell needs, and saved["gates"] (B, G*H) the activated gate
# blocks in their order.  c_new is None for cells without a cell state.
# ---------------------------------------------------------------------------


def _pre(lp, x_t, h_prev):
    """W_ih x_t + b_ih + W_hh h_{t-1} + b_hh  (B, G*H)."""
    gi = _mm(x_t, lp["weight_ih"].T) + lp["bias_ih"]
    return gi + (_mm(h_prev, lp["weight_hh"].T) + lp["bias_hh"])


def _write(spec, lp, blk, c_prev):
    """The new cell state c_t from the gate blocks `blk` of pre and c_{t-1}."""
    one = np.ones_like(c_prev)
    if spec.write == "network":  # c = tanh(pre_c + W_ch c_prev)
        return np.tanh(blk["c"] + c_prev @ lp["weight_ch"].T), {"i": None, "f": None, "g": None}
    peep_i = lp["weight_ci"] * c_prev if spec.peephole else 0.0
    peep_f = lp["weight_cf"] * c_prev if spec.peephole else 0.0
    i = sigmoid(blk["i"] + peep_i) if "i" in blk else one
    if spec.forget == "gate":
        f = sigmoid(blk["f"] + peep_f)
    elif spec.forget == "coupled":
        f = 1.0 - i
    else:
        f = one
    g = _ACTS[spec.g_act][0](blk["g"])
    c = f * c_prev + i * g
    return c, {"i": i, "f": f, "g": g}


def _read(spec, lp, blk, c):
    """The new hidden state h_t from the gate blocks `blk` of pre and c_t."""
    if spec.read == "network":  # h = tanh(pre_u + W_ch c)
        return np.tanh(blk["u"] + c @ lp["weight_ch"].T), {"o": None, "act_c": None}
    act_c = _ACTS[spec.h_act][0](c)
    if spec.read == "gate":  # h = o * act(c)
        peep_o = lp["weight_co"] * c if spec.peephole else 0.0
        o = sigmoid(blk["o"] + peep_o)
    else:  # h = act(c)
        o = np.ones_like(c)
    return o * act_c, {"o": o, "act_c": act_c}


def _cell_state_step(spec, lp, x_t, h_prev, c_prev):
    """LSTM and its variants (the table `_SPECS`): write the cell, then read it."""
    H = h_prev.shape[1]
    pre = _pre(lp, x_t, h_prev)
    blk = {q: pre[:, j * H : (j + 1) * H] for j, q in enumerate(spec.blocks)}
    c, saved_w = _write(spec, lp, blk, c_prev)
    h, saved_r = _read(spec, lp, blk, c)
    saved = dict(saved_w, **saved_r, c=c, h=h)
    values = dict(saved, u=blk.get("u"))  # "c": ungated's c; "u": pre_u itself
    saved["gates"] = np.concatenate([values[q] for q in spec.blocks], axis=1)
    return h, c, saved


def _gru_step(lp, x_t, h_prev, c_prev):
    H = h_prev.shape[1]
    gi = _mm(x_t, lp["weight_ih"].T) + lp["bias_ih"]  # (B, 3H)
    gh = _mm(h_prev, lp["weight_hh"].T) + lp["bias_hh"]  # (B, 3H)
    r = sigmoid(gi[:, 0 * H : 1 * H] + gh[:, 0 * H : 1 * H])  # (B, H)
    z = sigmoid(gi[:, 1 * H : 2 * H] + gh[:, 1 * H : 2 * H])
    gh_n = gh[:, 2 * H : 3 * H]  # W_hn h + b_hn
    n = np.tanh(gi[:, 2 * H : 3 * H] + r * gh_n)
    h = (1.0 - z) * n + z * h_prev
    return (
        h,
        None,
        {"r": r, "z": z, "n": n, "gh_n": gh_n, "gates": np.concatenate([r, z, n], axis=1)},
    )


def _rnn_step(lp, x_t, h_prev, c_prev, relu):
    a = _pre(lp, x_t, h_prev)  # (B, H)
    h = np.maximum(a, 0.0) if relu else np.tanh(a)
    return h, None, {"a": a, "h": h, "gates": h}  # its one "gate" block: h


def _step(cell, *args):
    if cell in _SPECS:
        return _cell_state_step(_SPECS[cell], *args)
    if cell == "gru":
        return _gru_step(*args)
    return _rnn_step(*args, relu=(cell == "rnn_relu"))


# ---------------------------------------------------------------------------
# One step of each cell, backward.
# Inputs: dh (B,H) = dL/dh_t and dc (B,H) = dL/dc_t (cells with a cell state;
# else None), both flowing into this step's *cell output* (masking is handled
# outside).  Each returns (da_ih, da_hh, dh_prev_direct, dc_prev, dc_total, dextra):
#   da_ih (B, G*H)  gradient w.r.t. W_ih x_t + b_ih
#   da_hh (B, G*H)  gradient w.r.t. W_hh h_{t-1} + b_hh
#   dh_prev_direct  gradient reaching h_{t-1} other than through W_hh (GRU's z*h)
#   dc_prev         gradient reaching c_{t-1} (None without a cell state)
#   dc_total        dL/dc_t including the path c_t -> h_t (None without a cell state)
#   dextra          {base name: gradient} of this step for the extra parameters
# ---------------------------------------------------------------------------


def _read_backward(spec, lp, s, dh, dc):
    """Back through _read: returns (dblk, dc_total, dextra) where dc_total = dc plus the
    gradient reaching c_t through h_t, i.e. the total dL/dc_t."""
    o, act_c, c, h = s["o"], s["act_c"], s["c"], s["h"]
    if spec.read == "network":  # h = tanh(pre_u + W_ch c)
        du = dh * (1.0 - h**2)
        return {"u": du}, dc + du @ lp["weight_ch"], {"weight_ch": du.T @ c}
    dc = dc + dh * o * _ACTS[spec.h_act][1](act_c)  # h = o * act(c)
    if spec.read != "gate":
        return {}, dc, {}
    do_pre = dh * act_c * o * (1.0 - o)
    if not spec.peephole:
        return {"o": do_pre}, dc, {}
    # o = σ(pre_o + w_co * c)
    return {"o": do_pre}, dc + do_pre * lp["weight_co"], {"weight_co": (do_pre * c).sum(axis=0)}


def _write_backward(spec, lp, s, dc, c_prev):
    """Back through _write, given the total dL/dc_t: returns (dblk, dc_prev, dextra)."""
    i, f, g, c = s["i"], s["f"], s["g"], s["c"]
    if spec.write == "network":  # c = tanh(pre_c + W_ch c_prev)
        dpre = dc * (1.0 - c**2)
        return {"c": dpre}, dpre @ lp["weight_ch"], {"weight_ch": dpre.T @ c_prev}
    # c = f * c_prev + i * g
    di = dc * g
    df = dc * c_prev
    dg = dc * i
    dc_prev = dc * f
    if spec.forget == "coupled":  # f = 1 - i
        di = di - df
    dblk = {"g": dg * _ACTS[spec.g_act][1](g)}
    if "i" in spec.blocks:
        dblk["i"] = di * i * (1.0 - i)
    if spec.forget == "gate":
        dblk["f"] = df * f * (1.0 - f)
    dextra = {}
    if spec.peephole:  # i, f = σ(pre + w * c_prev)
        dc_prev = dc_prev + dblk["i"] * lp["weight_ci"] + dblk["f"] * lp["weight_cf"]
        dextra = {
            "weight_ci": (dblk["i"] * c_prev).sum(axis=0),
            "weight_cf": (dblk["f"] * c_prev).sum(axis=0),
        }
    return dblk, dc_prev, dextra


def _cell_state_step_backward(spec, lp, s, dh, dc, h_prev, c_prev):
    dblk_r, dc_total, dextra_r = _read_backward(spec, lp, s, dh, dc)
    dblk_w, dc_prev, dextra_w = _write_backward(spec, lp, s, dc_total, c_prev)
    dblk = dict(dblk_w, **dblk_r)
    da = np.concatenate([dblk[q] for q in spec.blocks], axis=1)
    dextra = {
        k: dextra_r.get(k, 0.0) + dextra_w.get(k, 0.0)
        for k in list(dextra_r) + [k for k in dextra_w if k not in dextra_r]
    }
    # pre = (W_ih x + b_ih) + (W_hh h + b_hh): both halves get the same gradient
    return da, da, 0.0, dc_prev, dc_total, dextra


def _gru_step_backward(lp, s, dh, dc, h_prev, c_prev):
    r, z, n, gh_n = s["r"], s["z"], s["n"], s["gh_n"]
    # h = (1 - z) * n + z * h_prev
    dn = dh * (1.0 - z)
    dz = dh * (h_prev - n)
    dh_prev_direct = dh * z
    # n = tanh(gi_n + r * gh_n)
    dn_pre = dn * (1.0 - n**2)
    dr = dn_pre * gh_n
    # r = σ(gi_r + gh_r),  z = σ(gi_z + gh_z)
    dr_pre = dr * r * (1.0 - r)
    dz_pre = dz * z * (1.0 - z)
    da_ih = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)  # (B, 3H)
    da_hh = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)  # (B, 3H)
    return da_ih, da_hh, dh_prev_direct, None, None, {}


def _rnn_step_backward(lp, s, dh, dc, h_prev, c_prev, relu):
    if relu:
        da = dh * (s["a"] > 0.0)
    else:
        da = dh * (1.0 - s["h"] ** 2)
    return da, da, 0.0, None, None, {}


def _step_backward(cell, *args):
    if cell in _SPECS:
        return _cell_state_step_backward(_SPECS[cell], *args)
    if cell == "gru":
        return _gru_step_backward(*args)
    return _rnn_step_backward(*args, relu=(cell == "rnn_relu"))


# ---------------------------------------------------------------------------
# Full forward / backward
# ---------------------------------------------------------------------------


def _layer_params(params, k, cell):
    """Layer k's parameters by base name; a missing bias is 0."""
    lp = {
        "weight_ih": params[f"weight_ih_l{k}"],  # (G*H, D_k)
        "weight_hh": params[f"weight_hh_l{k}"],  # (G*H, H)
        "bias_ih": params.get(f"bias_ih_l{k}", 0.0),  # (G*H,) or 0
        "bias_hh": params.get(f"bias_hh_l{k}", 0.0),
    }
    for base in extra_param_shapes(cell, 1):
        lp[base] = params[f"{base}_l{k}"]
    return lp


def forward(params, x, cell, num_layers, h0=None, c0=None, lengths=None):
    """Run the stacked recurrent layer.

    x: (B, T, D) batch-first.  h0, c0: (L, B, H) or None (zeros).
    lengths: (B,) ints in [1, T] or None (every sequence has length T).

    Returns (y, hT, cT, cache):
      y  (B, T, H)  output sequence of the last layer (0 at padded steps)
      hT (L, B, H)  final hidden state of each layer
      cT (L, B, H)  final cell state of each layer (cells with a cell state), else None
      cache         everything `backward` needs
    """
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}")
    x = np.asarray(x, dtype=np.float64)
    B, T, _ = x.shape
    H = params["weight_hh_l0"].shape[1]
    has_c = has_cell_state(cell)

    h0 = np.zeros((num_layers, B, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    c0 = np.zeros((num_layers, B, H)) if c0 is None else np.asarray(c0, dtype=np.float64)
    if lengths is None:
        lengths = np.full(B, T)
    lengths = np.asarray(lengths)
    assert lengths.shape == (B,) and lengths.min() >= 1 and lengths.max() <= T
    # mask[b, t] = 1.0 where step t is a real step of sequence b, else 0.0
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float64)  # (B, T)

    hT = np.zeros((num_layers, B, H))
    cT = np.zeros((num_layers, B, H)) if has_c else None
    layers = []  # per-layer cache
    inp = x  # (B, T, D_k)
    for k in range(num_layers):
        lp = _layer_params(params, k, cell)
        out = np.zeros((B, T, H))  # this layer's output sequence
        h, c = h0[k], c0[k]  # (B, H)
        steps = []  # per-step cache
        for t in range(T):
            m = mask[:, t][:, None]  # (B, 1)
            h_new, c_new, saved = _step(cell, lp, inp[:, t], h, c)
            steps.append(dict(saved, h_prev=h, c_prev=c))
            out[:, t] = m * h_new
            h = m * h_new + (1.0 - m) * h
            if has_c:
                c = m * c_new + (1.0 - m) * c
            steps[-1].update(h_t=h, c_t=c)  # the (masked) state after step t
        hT[k] = h
        if has_c:
            cT[k] = c
        layers.append({"inp": inp, "steps": steps})
        inp = out

    cache = {
        "cell": cell,
        "num_layers": num_layers,
        "params": params,
        "mask": mask,
        "layers": layers,
        "B": B,
        "T": T,
        "H": H,
    }
    return inp, hT, cT, cache


def trace(cache):
    """What the cells computed in the `forward` whose cache is given, per layer and step:
    dict(gates=(L, B, T, G*H), the activated gate blocks in their order, h=(L, B, T, H) and,
    for cells with a cell state, c=(L, B, T, H)), the states after each step; all zero past
    a sequence's length (like the output y).  The "gates" of the RNN are h, of "ungated" c,
    and cell_as_input's block u holds pre_u (its activation needs W_ch c_t as well)."""
    L, mask = cache["num_layers"], cache["mask"][:, :, None]  # (B, T, 1)

    def stack(key):
        return np.stack(
            [
                np.stack([s[key] for s in cache["layers"][k]["steps"]], axis=1) * mask
                for k in range(L)
            ]
        )

    out = {"gates": stack("gates"), "h": stack("h_t")}
    if has_cell_state(cache["cell"]):
        out["c"] = stack("c_t")
    return out


def backward(params, cache, dy=None, dhT=None, dcT=None, return_sequences_grads=False):
    """BPTT for the last `forward` whose cache is given.

    dy (B, T, H), dhT (L, B, H), dcT (L, B, H; cells with a cell state): gradients
    of a scalar loss w.r.t. the outputs of `forward`; None means zero.

    Returns a dict of gradients: one per parameter name, plus "x" (B, T, D),
    "h0" (L, B, H) and, for cells with a cell state, "c0" (L, B, H).  With
    return_sequences_grads, also "dh" (L, B, T, H) = dL/dh_t, the total gradient
    on layer k's hidden state after step t (through the output y_t / the layer
    above, and through the later steps), and "dc" (L, B, T, H) = dL/dc_t, the
    total gradient on the cell state of step t (through h_t and the later
    steps), for cells with a cell state.  Both are zero past a sequence's
    length (like y there).
    """
    cell, L = cache["cell"], cache["num_layers"]
    B, T, H, mask = cache["B"], cache["T"], cache["H"], cache["mask"]
    has_c = has_cell_state(cell)

    dy = np.zeros((B, T, H)) if dy is None else np.asarray(dy, dtype=np.float64)
    dhT = np.zeros((L, B, H)) if dhT is None else np.asarray(dhT, dtype=np.float64)
    dcT = np.zeros((L, B, H)) if dcT is None else np.asarray(dcT, dtype=np.float64)

    grads = {name: np.zeros_like(p) for name, p in params.items()}
    dh0 = np.zeros((L, B, H))
    dc0 = np.zeros((L, B, H))
    dh_seq = np.zeros((L, B, T, H))
    dc_seq = np.zeros((L, B, T, H))
    d_out = dy  # upstream gradient of layer k's output
    for k in reversed(range(L)):
        lp = _layer_params(params, k, cell)
        inp, steps = cache["layers"][k]["inp"], cache["layers"][k]["steps"]
        d_inp = np.zeros_like(inp)  # (B, T, D_k)
        has_bias = f"bias_ih_l{k}" in grads
        dh = dhT[k].copy()  # dL/dh_t from later steps, starting at t = T-1
        dc = dcT[k].copy()  # dL/dc_t (cells with a cell state)
        for t in reversed(range(T)):
            m = mask[:, t][:, None]  # (B, 1)
            s = steps[t]
            dh_seq[k, :, t] = m * (dh + d_out[:, t])  # total dL/dh_t; 0 when padded
            # h_t = m*h_new + (1-m)*h_prev and out_t = m*h_new, so:
            dh_new = m * (dh + d_out[:, t])  # padded steps: dy ignored, no cell grad
            dc_new = m * dc if has_c else None
            da_ih, da_hh, dh_direct, dc_prev, dc_total, dextra = _step_backward(
                cell, lp, s, dh_new, dc_new, s["h_prev"], s["c_prev"]
            )
            if has_c:  # total dL/dc_t (through h_t too)
                dc_seq[k, :, t] = m * dc_total
            # linear maps: a_ih = x_t W_ih^T + b_ih, a_hh = h_prev W_hh^T + b_hh
            grads[f"weight_ih_l{k}"] += _mm(da_ih.T, inp[:, t])
            grads[f"weight_hh_l{k}"] += _mm(da_hh.T, s["h_prev"])
            if has_bias:
                grads[f"bias_ih_l{k}"] += da_ih.sum(axis=0)
                grads[f"bias_hh_l{k}"] += da_hh.sum(axis=0)
            for base, d in dextra.items():
                grads[f"{base}_l{k}"] += d
            d_inp[:, t] = _mm(da_ih, lp["weight_ih"])
            # state at t-1: through the cell, plus the frozen pass-through (1-m)
            dh = _mm(da_hh, lp["weight_hh"]) + dh_direct + (1.0 - m) * dh
            if has_c:
                dc = dc_prev + (1.0 - m) * dc
        dh0[k] = dh
        dc0[k] = dc
        d_out = d_inp  # becomes dy of the layer below

    grads["x"] = d_out
    grads["h0"] = dh0
    if has_c:
        grads["c0"] = dc0
    if return_sequences_grads:
        grads["dh"] = dh_seq
        if has_c:
            grads["dc"] = dc_seq
    return grads


# ===========================================================================
# The network: what the core's Model<S> does in one training step
# ===========================================================================
r"""
Network (cpp/include/lstm_native/model.hpp)
===========================================
    O  output size (values for mse, classes for softmax)
    dirs = 2 if bidirectional else 1;   F = dirs * H  (width of a layer's output)

Recurrent layers.  Layer l has one unit per direction (each a one-layer recurrent
layer as above, zero initial states).  The forward unit reads layer l's input
x^(l) (B, T, D_l) as is; the reverse unit reads each sequence backwards *within
its length*::

    rev(a)[b, t] = a[b, len_b - 1 - t]   for t < len_b,   0 for t >= len_b

(its own inverse on the valid steps).  Layer l's output (the input of layer
l+1, D_{l+1} = F) is [y_fwd, rev(y_rev)] (B, T, F): the reverse unit's output
put back in forward time.  No dropout here (the core's dropout is random; the
reference specifies dropout = 0).

Parameters in layout order (Model.layout()): for l = 0..L-1 the forward unit's
tensors with names weight_ih_l{l}, weight_hh_l{l}, bias_ih_l{l}, bias_hh_l{l}
(and the cell's extras), then the reverse unit's with suffix "_reverse"; then
head.weight (O, F) and head.bias (O,) (no biases at all with bias=False).

Head.  feat is what the head reads::

    sequence to one:    feat[b] = [hT_fwd[b], hT_rev[b]]   (B, F)  final states of the
                        top layer's units (hT_rev is the reverse unit's state after
                        reading x[b, len_b-1], ..., x[b, 0], i.e. rev(y_rev)[b, 0])
    return_sequences:   feat = top layer's output           (B, T, F)  (0 at padded steps)

    logits = feat @ head.weight.T + head.bias               (B, O) or (B, T, O)

Loss of a batch, sample weights w (B,) (all 1 when not given)::

    sequence to one:    ω_b = w_b                    W = Σ_b ω_b
    return_sequences:   ω_bt = w_b [t < len_b]       W = Σ_b w_b len_b   (every valid step)

    mse:     Σ ω ½ Σ_k (p_k - y_k)² / (W · O)          y (B, O) or (B, T, O)
    softmax: -Σ ω log softmax(p)[y] / W                y class indices (B,) or (B, T)
    absolute_error:  Σ ω Σ_k |e_k| / (W · O),  e = p - y
    huber (δ):       Σ ω Σ_k h(e_k) / (W · O),  h(e) = ½ e²  if |e| <= δ  else  δ (|e| - ½ δ)
    quantile (levels q_0 < ... < q_{Q-1}, O = n·Q, y (B, n) or (B, T, n)):
             Σ ω Σ_k Σ_j ρ_{q_j}(y_k - p_{kQ+j}) / (W · O),  ρ_q(u) = u (q - [u < 0])
             (output column k·Q + j is level q_j of target k)

    Gradients at the kinks: sign(0) = 0 for absolute_error; dρ_q/du = q at u = 0.

    + L2:    ½ α Σ_{θ weight} ‖θ‖² / Σ_b w_b           (Σ_b w_b also with return_sequences)

"Weight" is the core's is_weight_: every tensor whose name starts with "weight"
(weight_ih, weight_hh, and the cells' extras weight_ci/cf/co (peepholes) and
weight_ch) and head.weight; never a bias.  With AdamW the L2 term is not in the
loss (α is the decoupled decay instead).

Clipping (max_grad_norm > 0): with n = ‖g‖ over all parameters (L2 gradient
included), g ← g · max_grad_norm / n when n > max_grad_norm.

Optimizers (model.cpp's optimizer_step), per parameter, step s = 1, 2, ...
(counted before the update), lr the learning rate::

    sgd:      m ← μ m - lr g;   θ ← θ + (μ m - lr g  if nesterov else  m)
    adam:     m ← β1 m + (1-β1) g;   v ← β2 v + (1-β2) g²
              θ ← θ - lr · m̂ / (√v̂ + ε),   m̂ = m / (1-β1^s),  v̂ = v / (1-β2^s)
    adamw:    θ ← θ - lr α θ on weight tensors (before anything else), then adam
    rmsprop:  v ← ρ v + (1-ρ) g²,  ρ = 0.99;   θ ← θ - lr g / (√v + ε)

One training step: forward of the minibatch, loss, backward, clip, update.  A
minibatch whose sample weights sum to 0 is skipped (no step).
"""

# The network and its optimizer, with the core's defaults (model.hpp's ModelConfig and
# OptimConfig; batch_size/shuffle/seed do not belong to one step).
Net = namedtuple(
    "Net",
    "cell num_layers bidirectional return_sequences loss huber_delta quantiles",
    defaults=(1, False, False, "mse", 1.0, ()),
)


def target_width(net, output_size):
    """Target values per row: 1 class index (softmax), O / Q (quantile), O (the others)."""
    if net.loss == "softmax":
        return 1
    return output_size // len(net.quantiles) if net.loss == "quantile" else output_size


Optim = namedtuple(
    "Optim",
    "solver lr alpha momentum nesterov beta1 beta2 eps max_grad_norm",
    defaults=("adam", 1e-3, 0.0, 0.9, True, 0.9, 0.999, 1e-8, 0.0),
)

RMSPROP_RHO = 0.99


def network_param_shapes(
    cell, input_size, hidden_size, num_layers, output_size, bias=True, bidirectional=False
):
    """{name: shape} of the network's parameters in layout order (as Model.layout())."""
    H, dirs = hidden_size, 2 if bidirectional else 1
    G = num_gates(cell)
    shapes = {}
    for k in range(num_layers):
        D_k = input_size if k == 0 else dirs * H
        for sfx in ("", "_reverse")[:dirs]:
            shapes[f"weight_ih_l{k}{sfx}"] = (G * H, D_k)
            shapes[f"weight_hh_l{k}{sfx}"] = (G * H, H)
            if bias:
                shapes[f"bias_ih_l{k}{sfx}"] = (G * H,)
                shapes[f"bias_hh_l{k}{sfx}"] = (G * H,)
            for base, shape in extra_param_shapes(cell, H).items():
                shapes[f"{base}_l{k}{sfx}"] = shape
    shapes["head.weight"] = (output_size, dirs * H)
    if bias:
        shapes["head.bias"] = (output_size,)
    return shapes


def init_network_params(
    rng,
    cell,
    input_size,
    hidden_size,
    num_layers,
    output_size,
    bias=True,
    bidirectional=False,
    scale=0.5,
):
    """Random network parameters, uniform(-scale, scale), float64, in layout order."""
    shapes = network_param_shapes(
        cell, input_size, hidden_size, num_layers, output_size, bias, bidirectional
    )
    return {name: rng.uniform(-scale, scale, shape) for name, shape in shapes.items()}


def is_weight(name):
    """True where L2 / weight decay applies (model.cpp's is_weight_)."""
    return name.startswith("weight") or name == "head.weight"


def flatten(tensors):
    """Concatenate a {name: array} dict in its order into one flat float64 vector."""
    return np.concatenate([np.ravel(a) for a in tensors.values()]).astype(np.float64)


def unflatten(flat, shapes):
    """The inverse of flatten for {name: shape} (e.g. network_param_shapes)."""
    out, offset = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        out[name] = np.asarray(flat[offset : offset + size], dtype=np.float64).reshape(shape)
        offset += size
    assert offset == len(flat), "flat vector and shapes differ in size"
    return out


def _network_sizes(params):
    """(num_layers, dirs, H, bias) read off the parameter names and shapes."""
    L = sum(1 for name in params if name.startswith("weight_ih_l") and "reverse" not in name)
    dirs = 2 if "weight_ih_l0_reverse" in params else 1
    return L, dirs, params["weight_hh_l0"].shape[1], "head.bias" in params


def _unit_params(params, k, sfx, cell):
    """Unit (layer k, direction suffix sfx) as a one-layer parameter dict for `forward`."""
    bases = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] + list(extra_param_shapes(cell, 1))
    return {
        f"{base}_l0": params[f"{base}_l{k}{sfx}"] for base in bases if f"{base}_l{k}{sfx}" in params
    }


def reverse_time(a, lengths):
    """rev(a)[b, t] = a[b, len_b - 1 - t] for t < len_b, else 0; a is (B, T, ...)."""
    out = np.zeros_like(a)
    for b, n in enumerate(lengths):
        out[b, :n] = a[b, :n][::-1]
    return out


def valid_steps(lengths, T):
    """(B, T) float mask: 1.0 where step t is a real step of sequence b."""
    return (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).astype(np.float64)


def network_forward(params, x, net, lengths=None):
    """Logits of the network for x (B, T, D): (B, O), or (B, T, O) with return_sequences
    (padded rows there hold head.bias; the loss ignores them).  Returns (logits, cache)."""
    x = np.asarray(x, dtype=np.float64)
    B, T, _ = x.shape
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    L, dirs, H, _ = _network_sizes(params)
    units = []  # per layer: [(unit params, cache), ...]
    inp = x
    for k in range(L):
        outs, finals, layer = [], [], []
        for d, sfx in enumerate(("", "_reverse")[:dirs]):
            up = _unit_params(params, k, sfx, net.cell)
            u_in = inp if d == 0 else reverse_time(inp, lengths)
            y, hT, _, cache = forward(up, u_in, net.cell, 1, lengths=lengths)
            outs.append(y if d == 0 else reverse_time(y, lengths))  # back in forward time
            finals.append(hT[0])
            layer.append((up, cache))
        units.append(layer)
        inp = np.concatenate(outs, axis=-1)  # (B, T, F)
    feat = inp if net.return_sequences else np.concatenate(finals, axis=-1)
    logits = feat @ params["head.weight"].T + params.get("head.bias", 0.0)
    cache = {"net": net, "units": units, "feat": feat, "lengths": lengths, "H": H}
    return logits, cache


def loss_and_dlogits(logits, y, net, lengths=None, sample_weight=None):
    """The data term of the loss (see "Loss of a batch") and its gradient w.r.t. logits."""
    B = logits.shape[0]
    w = np.ones(B) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if net.return_sequences:
        T = logits.shape[1]
        lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
        omega = w[:, None] * valid_steps(lengths, T)  # (B, T)
        valid = omega != 0.0
    else:
        omega = w  # (B,)
        valid = np.ones(B, dtype=bool)
    W = omega.sum()
    assert W > 0, "the sample weights of a batch sum to zero"
    y = np.asarray(y, dtype=np.float64)
    if net.loss == "mse":
        O = logits.shape[-1]
        e = np.where(valid[..., None], logits - y, 0.0)  # padded targets ignored
        value = np.sum(omega[..., None] * 0.5 * e**2) / (W * O)
        return value, omega[..., None] * e / (W * O)
    if net.loss in ("absolute_error", "huber"):
        O = logits.shape[-1]
        e = np.where(valid[..., None], logits - y, 0.0)
        if net.loss == "absolute_error":
            per, de = np.abs(e), np.sign(e)
        else:
            d = net.huber_delta
            small = np.abs(e) <= d
            per = np.where(small, 0.5 * e**2, d * (np.abs(e) - 0.5 * d))
            de = np.where(small, e, d * np.sign(e))
        value = np.sum(omega[..., None] * per) / (W * O)
        return value, omega[..., None] * de / (W * O)
    if net.loss == "quantile":
        q = np.asarray(net.quantiles, dtype=np.float64)  # (Q,)
        O, Q = logits.shape[-1], len(q)
        p = logits.reshape(logits.shape[:-1] + (O // Q, Q))  # (..., n, Q)
        u = np.where(valid[..., None, None], y[..., :, None] - p, 0.0)
        below = (u < 0).astype(np.float64)
        value = np.sum(omega[..., None, None] * u * (q - below)) / (W * O)
        dp = omega[..., None, None] * (below - q) / (W * O)  # dρ/dp = -dρ/du
        return value, dp.reshape(logits.shape)
    assert net.loss == "softmax", net.loss
    classes = np.where(valid, y, 0).astype(np.int64)
    z = logits - logits.max(axis=-1, keepdims=True)  # stabilized by the row max
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # log softmax
    nll = -np.take_along_axis(log_p, classes[..., None], axis=-1)[..., 0]
    one_hot = np.eye(logits.shape[-1])[classes]
    value = np.sum(omega * nll) / W
    return value, omega[..., None] * (np.exp(log_p) - one_hot) / W


def l2_penalty(params, alpha, batch_size, sample_weight=None):
    """½ α Σ_{weight θ} ‖θ‖² / Σ w and its gradient {name: α θ / Σ w} (0 for non-weights)."""
    nw = batch_size if sample_weight is None else float(np.sum(sample_weight))
    value = 0.5 * alpha * sum(np.sum(p**2) for n, p in params.items() if is_weight(n)) / nw
    grads = {n: (alpha / nw) * p if is_weight(n) else np.zeros_like(p) for n, p in params.items()}
    return value, grads


def network_backward(params, cache, dlogits):
    """Gradients {name: array} of every parameter, given dL/dlogits; plus "x"."""
    net, lengths, H = cache["net"], cache["lengths"], cache["H"]
    grads = {name: np.zeros_like(p) for name, p in params.items()}
    feat = cache["feat"]
    F, O = feat.shape[-1], dlogits.shape[-1]
    # head: logits = feat W^T + b
    grads["head.weight"] = dlogits.reshape(-1, O).T @ feat.reshape(-1, F)
    if "head.bias" in grads:
        grads["head.bias"] = dlogits.reshape(-1, O).sum(axis=0)
    dfeat = dlogits @ params["head.weight"]  # (B, F) or (B, T, F)
    d_out = dfeat if net.return_sequences else None  # dL/d(layer output)
    for k in reversed(range(len(cache["units"]))):
        top_final = d_out is None  # sequence to one, top layer
        d_in = 0.0
        for d, (up, ucache) in enumerate(cache["units"][k]):
            sfx = ("", "_reverse")[d]
            if top_final:  # through the final state
                dy, dhT = None, dfeat[None, :, d * H : (d + 1) * H]
            else:
                dy, dhT = d_out[..., d * H : (d + 1) * H], None
                if d == 1:
                    dy = reverse_time(dy, lengths)
            g = backward(up, ucache, dy=dy, dhT=dhT)
            for name in up:  # "weight_ih_l0" -> its own name
                grads[name[:-1] + f"{k}{sfx}"] += g[name]
            d_in = d_in + (g["x"] if d == 0 else reverse_time(g["x"], lengths))
        d_out = d_in
    grads["x"] = d_out
    return grads


def network_loss(params, x, y, net, lengths=None, sample_weight=None, alpha=0.0):
    """Loss of one batch: data term + L2 with α (forward only)."""
    logits, _ = network_forward(params, x, net, lengths)
    value = loss_and_dlogits(logits, y, net, lengths, sample_weight)[0]
    if alpha > 0:
        value += l2_penalty(params, alpha, len(x), sample_weight)[0]
    return value


def network_loss_and_grad(params, x, y, net, lengths=None, sample_weight=None, alpha=0.0):
    """Loss of one batch (data term + L2 with α) and its gradient {name: array} (no "x")."""
    logits, cache = network_forward(params, x, net, lengths)
    value, dlogits = loss_and_dlogits(logits, y, net, lengths, sample_weight)
    grads = network_backward(params, cache, dlogits)
    del grads["x"]
    if alpha > 0:
        l2, dl2 = l2_penalty(params, alpha, len(x), sample_weight)
        value += l2
        grads = {n: g + dl2[n] for n, g in grads.items()}
    return value, grads


def global_norm(grads):
    return float(np.sqrt(sum(np.sum(g**2) for g in grads.values())))


def clip_by_global_norm(grads, max_norm):
    """g · max_norm / ‖g‖ when max_norm > 0 and ‖g‖ > max_norm, else g."""
    norm = global_norm(grads)
    if max_norm > 0 and norm > max_norm:
        return {n: g * (max_norm / norm) for n, g in grads.items()}
    return grads


def init_optim_state(params):
    """Optimizer state: moments m, v (zeros like params) and the step count s."""
    return {
        "m": {n: np.zeros_like(p) for n, p in params.items()},
        "v": {n: np.zeros_like(p) for n, p in params.items()},
        "step": 0,
    }


def optimizer_step(params, grads, state, optim):
    """One update (see "Optimizers"); returns (new params, new state)."""
    s = state["step"] + 1
    m, v = dict(state["m"]), dict(state["v"])
    new = {}
    for n, p in params.items():
        g = grads[n]
        if optim.solver == "sgd":
            m[n] = optim.momentum * m[n] - optim.lr * g
            delta = optim.momentum * m[n] - optim.lr * g if optim.nesterov else m[n]
            new[n] = p + delta
        elif optim.solver in ("adam", "adamw"):
            if optim.solver == "adamw" and is_weight(n):  # decoupled weight decay
                p = p - optim.lr * optim.alpha * p
            m[n] = optim.beta1 * m[n] + (1 - optim.beta1) * g
            v[n] = optim.beta2 * v[n] + (1 - optim.beta2) * g**2
            m_hat = m[n] / (1 - optim.beta1**s)
            v_hat = v[n] / (1 - optim.beta2**s)
            new[n] = p - optim.lr * m_hat / (np.sqrt(v_hat) + optim.eps)
        elif optim.solver == "rmsprop":
            v[n] = RMSPROP_RHO * v[n] + (1 - RMSPROP_RHO) * g**2
            new[n] = p - optim.lr * g / (np.sqrt(v[n]) + optim.eps)
        else:
            raise ValueError(f"unknown solver {optim.solver!r}")
    return new, {"m": m, "v": v, "step": s}


def train_step(params, state, batch, net, optim):
    """One training step on batch = (x, lengths, y, sample_weight) (lengths, sample_weight
    may be None): forward, loss, backward, clip, update.  Returns (loss, grad_norm, params,
    state); loss is the batch's loss before the update (L2 included, not with AdamW) and
    grad_norm the gradient's global norm before clipping.  A batch whose sample weights sum
    to 0 is skipped: (None, None, params, state) unchanged."""
    x, lengths, y, sample_weight = batch
    if sample_weight is not None and not np.sum(sample_weight) > 0:
        return None, None, params, state
    alpha = 0.0 if optim.solver == "adamw" else optim.alpha  # AdamW: decay, not L2
    loss, grads = network_loss_and_grad(params, x, y, net, lengths, sample_weight, alpha)
    norm = global_norm(grads)
    grads = clip_by_global_norm(grads, optim.max_grad_norm)
    params, state = optimizer_step(params, grads, state, optim)
    return loss, norm, params, state


def train_trajectory(params, batches, net, optim, state=None):
    """One train_step per batch, in order (no shuffling), from params (and state, default
    fresh).  Returns dict(losses, norms, params=[params after each step], state)."""
    state = init_optim_state(params) if state is None else state
    out = {"losses": [], "norms": [], "params": []}
    for batch in batches:
        loss, norm, params, state = train_step(params, state, batch, net, optim)
        out["losses"].append(loss)
        out["norms"].append(norm)
        out["params"].append(params)
    out["state"] = state
    return out
