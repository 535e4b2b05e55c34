"""Diagnostics: how gradients flow back in time, and what the gates do.

Two questions about a recurrent network, answered on your own data at native speed:

* :func:`gradient_flow`: for a loss on the last step, how large is the gradient that reaches
  the hidden state (and the cell state) of every earlier step? A plain tanh RNN multiplies it
  at every step by a weight matrix and a squashing derivative, so it usually vanishes
  exponentially with the lag; an LSTM carries it along the cell state multiplied only by the
  forget gates (``dL/dc_{t-1} = f_t * dL/dc_t + ...``), so it can survive hundreds of steps.
  The mean product of the forget gates along the way is returned next to the norms.
* :func:`gate_trace`: the activations of every gate and state at every step, so you can watch
  what the network keeps and forgets.

Both take a fitted unidirectional :class:`~lstm_native.LSTMRegressor` /
:class:`~lstm_native.LSTMClassifier` or a :class:`lstm_native.nn.Recurrent` layer, and input
``X`` of shape (n_samples, n_timesteps, n_features) (or (n_samples, n_timesteps) for one
feature); all sequences have the same length.

Example::

    from lstm_native import LSTMRegressor
    from lstm_native.datasets import make_adding_problem
    from lstm_native.diagnostics import gradient_flow

    X, y = make_adding_problem(1000, 100, random_state=0)
    est = LSTMRegressor(hidden_size=32, max_iter=20, random_state=0).fit(X, y)
    flow = gradient_flow(est, X[:200], y[:200])
    flow["dh_norm"][0, 0]       # ||dL/dh_0|| of layer 0: what reaches the first step
"""

from __future__ import annotations

import copy
from typing import Any, Optional

import numpy as np

from . import _core, nn

# The gate blocks of each cell, in their order in the G*H rows of the weights (see
# tests/reference.py), as the core names them: LSTM ("i", "f", "g", "o"), GRU ("r", "z", "n"),
# () for the one-block cells (RNN, ungated). "u" is cell_as_input's pre-activation of
# h = tanh(pre_u + W_ch c_t).
GATE_BLOCKS = {cell: tuple(_core.cell_info(cell)["blocks"]) for cell in _core.CELLS}


def _is_layer(obj: Any) -> bool:
    return isinstance(obj, nn.Recurrent)


def _is_fitted(est: Any) -> bool:
    return hasattr(est, "params_")


def _is_classifier(est: Any) -> bool:
    from sklearn.base import is_classifier

    return is_classifier(est)


def _layer_and_head(obj: Any, X: Optional[np.ndarray] = None, y: Any = None):
    """(layer, head, classes, estimator or None) for a layer or an estimator; head is
    (weight, bias) or None. For an estimator the layer is a new float64 nn.Recurrent holding its
    recurrent parameters (float64 whatever the model's dtype: the gradients measured may be far
    below float32's range): the fitted ones, or for an unfitted estimator those ``fit(X, y)``
    would start from."""
    if _is_layer(obj):
        return obj, None, None, None
    if not hasattr(obj, "named_parameters") or not hasattr(obj, "get_params"):
        raise TypeError(
            "expected an nn.Recurrent layer or an LSTMRegressor/LSTMClassifier, "
            f"got {type(obj).__name__}"
        )
    if obj.bidirectional:
        raise ValueError("diagnostics need a unidirectional network (bidirectional=False)")
    if _is_fitted(obj):
        params = obj.named_parameters()
        cfg = obj.network_config_
        cell, D, H, L = cfg["cell"], cfg["input_size"], cfg["hidden_size"], cfg["num_layers"]
        classes = getattr(obj, "classes_", None)
    else:
        params, cell, classes = _initial_parameters(obj, X, y)
        D, H, L = X.shape[2], int(obj.hidden_size), int(obj.num_layers)
    layer = nn.Recurrent(D, H, L, cell=cell, bias="bias_ih_l0" in params, dtype=np.float64)
    head = (
        params.pop("head.weight").astype(np.float64),
        params.pop("head.bias").astype(np.float64),
    )
    layer.set_parameters(params)
    return layer, head, classes, obj


def _initial_parameters(est: Any, X: Optional[np.ndarray], y: Any):
    """The parameters ``est.fit(X, y)`` starts from (the estimators' initialization with
    est.random_state), by name; the cell; the classes (classifier)."""
    from sklearn.utils import check_random_state

    from ._network import head_width, initial_parameters

    if X is None or y is None:
        raise ValueError(
            f"{type(est).__name__} is not fitted: diagnostics of its initial "
            "network need X and y (y sets the head's width)"
        )
    cell = nn.canonical_cell(est.cell)
    N, D, H = X.shape[0], X.shape[2], int(est.hidden_size)
    classes = None
    if _is_classifier(est):
        classes = np.unique(np.asarray(y))
        O = len(classes)
    else:
        y_arr = np.asarray(y)
        if y_arr.shape[0] != N:
            raise ValueError(f"y has {y_arr.shape[0]} rows for {N} sequences")
        O = head_width(est._loss_config(), y_arr.reshape(N, -1).shape[1])  # as fit sizes it
    probe = nn.Recurrent(D, H, int(est.num_layers), cell=cell, dtype=np.float64)
    layout, off = [], 0
    for name, v in probe.parameters().items():
        layout.append((name, off, v.shape))
        off += v.size
    layout += [("head.weight", off, (O, H)), ("head.bias", off + O * H, (O,))]
    # in the model's dtype, as fit() has them (then measured in float64)
    rng = check_random_state(copy.deepcopy(est.random_state))  # as fit draws, unchanged
    flat = initial_parameters(
        layout, off + O * H + O, cell, H, rng, dtype=np.dtype(est.dtype)
    ).astype(np.float64)
    params = {name: flat[o : o + int(np.prod(shape))].reshape(shape) for name, o, shape in layout}
    return params, cell, classes


def _as_3d(X: Any, input_size: Optional[int] = None) -> np.ndarray:
    if (
        isinstance(X, (list, tuple))
        and len(X)
        and np.ndim(X[0]) >= 1
        and len({np.shape(x)[0] for x in X}) > 1
    ):
        raise ValueError(
            "diagnostics need sequences of one length: pass an array "
            "(n_samples, n_timesteps, n_features)"
        )
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as e:
        raise ValueError(f"X must be a real numeric array: {e}") from None
    if arr.dtype.kind == "c":  # as predict: the imaginary part is not silently dropped
        raise ValueError(f"Complex data not supported: X has dtype {arr.dtype}")
    if arr.dtype.kind not in "fiubO":
        raise ValueError(f"X must hold real numbers, got dtype {arr.dtype}")
    try:
        X = arr.astype(np.float64)
    except (ValueError, TypeError) as e:
        raise ValueError(f"X must hold real numbers: {e}") from None
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinity")
    if X.ndim == 2 and input_size in (None, 1):
        X = X[:, :, None]
    if X.ndim != 3:
        raise ValueError(f"X must be (n_samples, n_timesteps, n_features), got shape {X.shape}")
    if input_size is not None and X.shape[2] != input_size:
        raise ValueError(f"X has {X.shape[2]} features, the network expects {input_size}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X is empty: shape {X.shape}")
    return X


def _prepare(obj: Any, X: Any, y: Any = None):
    """(layer, head, classes, estimator, X as a checked 3-D array; an estimator's X in its
    input_layout, as fit and predict read it)."""
    layout = None if _is_layer(obj) else getattr(obj, "input_layout", None)
    if layout is not None:
        from ._validation import apply_layout

        X = apply_layout(X, layout)
    X = _as_3d(X, obj.input_size if _is_layer(obj) else None)
    layer, head, classes, est = _layer_and_head(obj, X, y)
    return layer, head, classes, est, _as_3d(X, layer.input_size)


def gate_trace(estimator_or_layer: Any, X: Any) -> dict:
    """The activations of every gate and state, at every step, for the sequences X.

    Returns a dict of float arrays, batch first (n_samples, num_layers, n_timesteps, ...):

    * ``"gates"`` (..., G*H): the activated gate blocks in the cell's order (LSTM i, f, g, o;
      GRU r, z, n; see :data:`GATE_BLOCKS`); for the RNN the block is h, for "ungated" c, and
      cell_as_input's block u holds its pre-activation pre_u;
    * ``"h"`` (..., H) the hidden states and, for cells with a cell state, ``"c"`` (..., H);
    * one entry per named gate block (e.g. ``"f"``, (..., H)), views into ``"gates"``;
    * for cifg, ``"f"`` = 1 - i, its coupled forget gate.
    """
    if not _is_layer(estimator_or_layer) and not _is_fitted(estimator_or_layer):
        raise ValueError("gate_trace needs a fitted estimator (or a layer)")
    layer, _, _, _, X = _prepare(estimator_or_layer, X)
    _, _, trace = layer.forward(X.astype(layer.dtype), return_gates=True)
    H = layer.hidden_size
    out = {k: np.ascontiguousarray(np.swapaxes(v, 0, 1)) for k, v in trace.items()}
    for j, name in enumerate(GATE_BLOCKS[layer.cell]):
        out[name] = out["gates"][..., j * H : (j + 1) * H]
    if _core.cell_info(layer.cell)["keep"] == "1-i":  # cifg's coupled forget gate
        out["f"] = 1.0 - out["i"]
    return out


def _keep_factor(layer: nn.Recurrent, gates: np.ndarray) -> Optional[np.ndarray]:
    """The per-step factor by which the carried state is kept, as the core describes the cell
    (cell_info's "keep"): the forget gate f (cifg: 1 - i; lstm_1997: 1), the GRU's update gate
    z; None for cells without one (RNN, ungated)."""
    H = layer.hidden_size
    blocks = GATE_BLOCKS[layer.cell]
    keep = _core.cell_info(layer.cell)["keep"]
    if keep is None:
        return None
    if keep == "1":
        return np.ones(gates.shape[:-1] + (H,))
    j = blocks.index(keep[-1])  # "f", "z", or "i" of "1-i"
    block = gates[..., j * H : (j + 1) * H]
    return 1.0 - block if keep == "1-i" else block


def gradient_flow(estimator_or_layer: Any, X: Any, y: Any = None, *, of: str = "loss") -> dict:
    """How large the gradient of a loss on the last step is at every earlier step.

    The loss of each sequence depends on its last step only:

    * estimator: a loss of its prediction (the head on the last hidden state) against ``y``
      (regressor: 0.5 * squared error, averaged over outputs, whatever loss it trains with;
      a quantile regressor only with ``of="output"``; classifier: the
      cross-entropy of the softmax), so dL/dh_T = head.weightᵀ dL/dprediction; without ``y``,
      the sum of the predictions (raw outputs; the logits of a classifier). A fitted
      estimator is measured as fitted; an *unfitted* one at the initial network that
      ``fit(X, y)`` would start from (same ``random_state``; this needs ``y``), so
      ``gradient_flow(LSTMRegressor(cell="rnn", random_state=0), X, y)`` is the gradient flow
      at initialization;
    * layer: without ``y``, the sum of the last step's output h_T; with ``y`` (n_samples, H),
      0.5 * the mean over units of (h_T - y)².

    ``of="output"`` differentiates the sum of the outputs instead (as without ``y``; ``y``
    then only sizes the head of an unfitted estimator): dŷ/dh_t, what one unit of error at the
    output sends back to step t. The loss's gradient is that times the error dL/dŷ, which is
    the same for every t -- so this separates how far the network carries error back from how
    large the error is (a well-fitted model has small errors, hence small loss gradients).

    Each sequence's own loss is differentiated (the loss is *not* averaged over the
    sequences), so the norms do not depend on how many sequences are passed.

    Returns a dict of arrays, one row per timestep t = 0..T-1 and one column per layer:

    * ``"dh_norm"`` (T, L): the mean over sequences of ||dL/dh_t||, the total gradient on the
      hidden state after step t (through the later steps, and through the layer above);
    * ``"dc_norm"`` (T, L), cells with a cell state: the same for dL/dc_t;
    * ``"forget_product"`` (T, L), cells that keep their state through a gate: the mean over
      sequences and units of f_{t+1} * ... * f_{T-1}, the product of the forget gates after
      step t (1 at the last step) -- along the cell state alone the gradient is multiplied by
      exactly this. f is the forget gate (cifg: 1 - i; lstm_1997: 1, no forget gate; the GRU:
      its update gate z, the fraction of h_{t-1} kept); absent for the RNN and "ungated";
    * ``"lag"`` (T,): T-1-t, the distance to the loss;
    * ``"loss"``: the mean of the sequences' losses (a float).
    """
    if of not in ("loss", "output"):
        raise ValueError(f'of must be "loss" or "output", got {of!r}')
    layer, head, classes, est, X = _prepare(estimator_or_layer, X, y)
    if est is not None and getattr(est, "return_sequences", False):
        raise ValueError(
            "gradient_flow measures a loss on the last step: return_sequences=True models "
            "have one at every step (use gate_trace, or a layer and its backward)"
        )
    if of == "output":
        y = None
    N, T, _ = X.shape
    H = layer.hidden_size

    out, state, trace = layer.forward(X.astype(layer.dtype), return_gates=True)
    h_last = np.asarray(out[:, -1], dtype=np.float64)  # (N, H)
    if est is None:
        if y is None:
            loss = h_last.sum(axis=1)
            dh_last = np.ones_like(h_last)
        else:
            Y = np.asarray(y, dtype=np.float64).reshape(N, -1)
            if Y.shape[1] != H:
                raise ValueError(
                    f"y must be (n_samples, hidden_size) = {(N, H)}, got {np.shape(y)}"
                )
            loss = 0.5 * np.mean((h_last - Y) ** 2, axis=1)
            dh_last = (h_last - Y) / H
    else:
        head_w, head_b = head
        z = h_last @ head_w.T + head_b  # (N, O) predictions / logits
        if y is None:
            loss = z.sum(axis=1)
            dz = np.ones_like(z)
        elif _is_classifier(est):
            yv = np.asarray(y).reshape(-1)
            if yv.shape[0] != N:
                raise ValueError(f"y has {yv.shape[0]} labels for {N} sequences")
            idx = np.clip(np.searchsorted(classes, yv), 0, len(classes) - 1)
            if not np.all(classes[idx] == yv):
                raise ValueError("y holds labels the classifier was not fitted on")
            zs = z - z.max(axis=1, keepdims=True)
            p = np.exp(zs)
            p /= p.sum(axis=1, keepdims=True)
            loss = -np.log(np.maximum(p[np.arange(N), idx], 1e-300))
            dz = p.copy()
            dz[np.arange(N), idx] -= 1.0
        else:
            if getattr(est, "loss", "squared_error") == "quantile":
                raise ValueError(
                    "of='loss' is the squared error of the prediction; a quantile regressor "
                    "predicts several levels: measure it with of='output'"
                )
            Y = np.asarray(y, dtype=np.float64)
            if Y.shape[0] != N:
                raise ValueError(f"y has {Y.shape[0]} rows for {N} sequences")
            Y = Y.reshape(N, -1)
            if Y.shape[1] != z.shape[1]:
                raise ValueError(f"y has {Y.shape[1]} outputs, the model {z.shape[1]}")
            loss = 0.5 * np.mean((z - Y) ** 2, axis=1)
            dz = (z - Y) / z.shape[1]
        dh_last = dz @ head_w  # (N, H)

    dy = np.zeros((N, T, H), dtype=layer.dtype)
    dy[:, -1] = dh_last
    grads = layer.backward(dy, return_sequences_grads=True)
    dh = np.asarray(grads["dh"], dtype=np.float64)  # (L, N, T, H)
    result = {"dh_norm": np.linalg.norm(dh, axis=-1).mean(axis=1).T}
    if "dc" in grads:
        dc = np.asarray(grads["dc"], dtype=np.float64)
        result["dc_norm"] = np.linalg.norm(dc, axis=-1).mean(axis=1).T
    keep = _keep_factor(layer, np.asarray(trace["gates"], dtype=np.float64))
    if keep is not None:  # (L, N, T, H)
        # prod_{s=t+1}^{T-1} f_s: a reversed cumulative product shifted by one step
        after = np.ones_like(keep)
        after[:, :, :-1] = np.cumprod(keep[:, :, :0:-1], axis=2)[:, :, ::-1]
        result["forget_product"] = after.mean(axis=(1, 3)).T
    result["lag"] = np.arange(T)[::-1].copy()
    result["loss"] = float(np.mean(loss))
    return result


__all__ = ["GATE_BLOCKS", "gate_trace", "gradient_flow"]
