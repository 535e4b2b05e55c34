"""Keras 3 recurrent layers to ``lstm_native.nn`` layers (keras is imported only in
:func:`from_keras`, and only to recognise the layer).

Weight mapping (Keras stores ``kernel`` (D, G*H), ``recurrent_kernel`` (H, G*H) and ``bias``
with the gate blocks side by side in columns; ours are PyTorch's ``weight_ih`` (G*H, D),
``weight_hh`` (G*H, H), ``bias_ih``, ``bias_hh``):

* ``keras.layers.LSTM``: blocks (i, f, c, o) = ours (i, f, g, o): ``weight_ih = kernel.T``,
  ``weight_hh = recurrent_kernel.T``, ``bias_ih = bias``, ``bias_hh = 0`` (Keras has one bias);
  needs ``activation="tanh"`` and ``recurrent_activation="sigmoid"`` (the defaults);
* ``keras.layers.GRU`` with ``reset_after=True`` (the default; PyTorch's form, where the reset
  gate multiplies ``U_h h + b_hh``): blocks (z, r, h) -> ours (r, z, n), ``bias[0]`` ->
  ``bias_ih``, ``bias[1]`` -> ``bias_hh``; ``reset_after=False`` (reset before the product) has
  no exact equivalent and is refused;
* ``keras.layers.SimpleRNN`` with ``activation`` "tanh" or "relu": ``bias_ih = bias``,
  ``bias_hh = 0``.

``use_bias=False`` gives zero biases. ``go_backwards=True`` is refused (reverse the input's time
axis and use a forward layer instead). Dropout and recurrent dropout act only in training and
are ignored. The layer returned computes, on x (batch, time, features), ``y`` = the Keras layer's
output with ``return_sequences=True`` (``y[:, -1]`` the one without) and the final state(s) =
its ``return_state`` outputs (LSTM: Keras returns ``[output, h, c]``, ours ``y, (h, c)`` with a
leading layer axis). A Keras mask of right-padded sequences corresponds to ``forward(x,
lengths=...)``: the same final states and outputs at the valid steps (at masked steps Keras
repeats the last output where ours gives 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._export_spec import as_checked_array


def _activation_name(fn: Any, keras: Any) -> str:
    try:
        name = keras.activations.serialize(fn)
    except (TypeError, ValueError):
        name = getattr(fn, "__name__", repr(fn))
    if isinstance(name, dict):  # a configured activation object
        name = name.get("config", {}).get("name", repr(name))
    return str(name)


def _keras_weights(cell: Any, keras: Any, G: int, D: int, H: int, dtype: Any) -> tuple:
    """kernel (D, G*H), recurrent_kernel (H, G*H) and bias as NumPy arrays of ``dtype``."""

    def array(var: Any, name: str, shape: tuple) -> np.ndarray:
        # The backend tensor (var.value): a torch tensor is read with .detach().numpy() (NumPy 2
        # warns on np.array() of a Keras Variable or a torch Parameter), the others converted.
        value = var.value
        if not hasattr(value, "detach"):
            value = keras.ops.convert_to_numpy(value)
        return as_checked_array(value, name, shape, dtype, "from_keras")

    kernel = array(cell.kernel, "kernel", (D, G * H))
    recurrent = array(cell.recurrent_kernel, "recurrent_kernel", (H, G * H))
    bias = None
    if cell.use_bias:
        bias_shape = tuple(int(s) for s in cell.bias.shape)
        bias = array(cell.bias, "bias", bias_shape)
    return kernel, recurrent, bias


def from_keras(layer: Any, dtype: Any = np.float32) -> Any:
    """An ``lstm_native.nn`` layer (``nn.LSTM``, ``nn.GRU`` or ``nn.RNN``, one layer) with the
    weights of a built Keras 3 ``LSTM`` / ``GRU`` / ``SimpleRNN`` layer, computing its outputs
    (see the module docstring for the mapping and what is refused). ``dtype``: float32 (default)
    or float64. Needs keras (``pip install "lstm_native[interop]"``)."""
    import keras

    from .. import nn  # (nn does not import this package: no cycle)

    kinds = {keras.layers.LSTM: "lstm", keras.layers.GRU: "gru", keras.layers.SimpleRNN: "rnn"}
    kind = next((k for cls, k in kinds.items() if isinstance(layer, cls)), None)
    if kind is None:
        hint = (
            " (a Bidirectional wrapper: convert layer.forward_layer and layer.backward_layer "
            "separately)"
            if isinstance(layer, keras.layers.Bidirectional)
            else ""
        )
        raise TypeError(
            f"from_keras converts keras.layers.LSTM, GRU and SimpleRNN, got "
            f"{type(layer).__name__}{hint}"
        )
    if not layer.built or not layer.weights:
        raise ValueError(
            "the Keras layer has no weights yet: call it on an input or "
            "layer.build((None, None, n_features)) first"
        )
    if getattr(layer, "go_backwards", False):
        raise ValueError(
            "go_backwards=True is not supported: reverse the time axis of the "
            "input and convert a forward layer"
        )
    cell = layer.cell
    H = int(cell.units)
    D = int(cell.kernel.shape[0])
    act = _activation_name(cell.activation, keras)
    rec = _activation_name(getattr(cell, "recurrent_activation", None), keras)
    dtype = np.dtype(dtype)
    if kind == "rnn":
        if act not in ("tanh", "relu"):
            raise ValueError(f"SimpleRNN activation {act!r} has no equivalent (tanh or relu)")
        kernel, recurrent, bias = _keras_weights(cell, keras, 1, D, H, dtype)
        out = nn.RNN(D, H, nonlinearity=act, dtype=dtype)
        b_ih, b_hh = bias, None
        perm = [0]
    else:
        if act != "tanh" or rec != "sigmoid":
            raise ValueError(
                f"{type(layer).__name__} with activation={act!r} and "
                f"recurrent_activation={rec!r} has no equivalent (tanh and sigmoid "
                "are needed)"
            )
        if kind == "gru" and not getattr(cell, "reset_after", False):
            raise ValueError(
                "GRU(reset_after=False) applies the reset gate before the "
                "recurrent product and has no exact equivalent; lstm_native's GRU "
                "is PyTorch's (reset_after=True)"
            )
        G = 4 if kind == "lstm" else 3
        kernel, recurrent, bias = _keras_weights(cell, keras, G, D, H, dtype)
        if kind == "lstm":
            out, perm = nn.LSTM(D, H, dtype=dtype), [0, 1, 2, 3]  # i, f, c, o = i, f, g, o
            b_ih, b_hh = bias, None
        else:
            out, perm = nn.GRU(D, H, dtype=dtype), [1, 0, 2]  # z, r, h -> r, z, n
            b_ih, b_hh = (None, None) if bias is None else (bias[0], bias[1])

    G = len(perm)

    def blocks(a: np.ndarray) -> np.ndarray:  # (.., G*H) columns -> our (G*H, ..) rows
        a = a.T if a.ndim == 2 else a
        return np.ascontiguousarray(a.reshape((G, H) + a.shape[1:])[perm].reshape(a.shape))

    zeros = np.zeros(G * H, dtype)
    out.set_parameters(
        {
            "weight_ih_l0": blocks(kernel),
            "weight_hh_l0": blocks(recurrent),
            "bias_ih_l0": zeros if b_ih is None else blocks(b_ih),
            "bias_hh_l0": zeros if b_hh is None else blocks(b_hh),
        }
    )
    return out


__all__ = ["from_keras"]
