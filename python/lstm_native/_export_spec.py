"""One description of a network for every exporter and importer, and the parameter checks.

:class:`NetSpec` is what ONNX export and the PyTorch conversion read, whichever object it came
from (a fitted estimator or an ``nn`` layer): the cell, the sizes, the recurrent weights under
PyTorch's names (``weight_ih_l{l}[_reverse]``, ...), and the head when there is one. It is built
only from public attributes (``network_config_``, ``named_parameters()``, ``classes_``; a
layer's ``cell``, sizes and ``parameters()``), so nothing here depends on how an estimator
stores its fitted model.

:func:`set_named_parameters` is the inverse of ``named_parameters()``: it checks a dict of
arrays against the fitted network's layout and assigns the flat vector through the public
``params_`` setter (which replaces the fitted model as a whole).

Imports numpy and the package's compiled core only (no torch, onnx or keras).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ._network import canonical_cell, core_config

# Cells whose parameters are PyTorch's nn.LSTM / nn.GRU / nn.RNN parameters, and their modules.
TORCH_CELLS = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}


@dataclass(frozen=True)
class NetSpec:
    """A network in library-neutral terms (see the module docstring).

    ``params``: {PyTorch name: array} of the recurrent units (units l0, l0_reverse, l1, ...;
    ``bias_ih``/``bias_hh`` absent when ``bias`` is False). ``head_weight`` (O, dirs*H) and
    ``head_bias`` (O,) are None for a bare layer; ``loss`` is "mse", "softmax" or None (a
    layer); ``classes`` the classifier's labels."""

    cell: str
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    bias: bool
    params: dict
    dtype: np.dtype
    return_sequences: bool = False
    head_weight: Optional[np.ndarray] = None
    head_bias: Optional[np.ndarray] = None
    loss: Optional[str] = None
    classes: Optional[np.ndarray] = None
    channels_first: bool = False  # input (batch, n_features, time): input_layout="nct"

    @property
    def dirs(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def has_head(self) -> bool:
        return self.head_weight is not None

    def unit(self, layer: int, reverse: bool = False) -> dict:
        """{"weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ci", ...} of one unit
        (the keys it has), without the layer suffix."""
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        return {
            name[: -len(suffix)]: value
            for name, value in self.params.items()
            if name.endswith(suffix)
        }


def spec_of(model: Any) -> NetSpec:
    """The :class:`NetSpec` of a fitted estimator or an ``nn`` layer (TypeError otherwise)."""
    if hasattr(model, "network_config_") or hasattr(model, "named_parameters"):
        return _estimator_spec(model)
    if hasattr(model, "flat_params") and hasattr(model, "parameters"):
        return NetSpec(
            cell=canonical_cell(model.cell),
            input_size=int(model.input_size),
            hidden_size=int(model.hidden_size),
            num_layers=int(model.num_layers),
            bidirectional=False,
            bias=bool(model.bias),
            params=model.parameters(),
            dtype=np.dtype(model.dtype),
        )
    raise TypeError(
        f"expected a fitted LSTMRegressor/LSTMClassifier or an lstm_native.nn layer, "
        f"got {type(model).__name__}"
    )


def _estimator_spec(est: Any) -> NetSpec:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est)
    cfg = est.network_config_
    params = est.named_parameters()
    head_w = params.pop("head.weight")
    head_b = params.pop("head.bias")
    classifier = cfg["loss"] == "softmax"
    return NetSpec(
        cell=canonical_cell(cfg["cell"]),
        input_size=int(cfg["input_size"]),
        hidden_size=int(cfg["hidden_size"]),
        num_layers=int(cfg["num_layers"]),
        bidirectional=bool(cfg["bidirectional"]),
        bias=bool(cfg.get("bias", True)),
        params=params,
        dtype=np.dtype(cfg["dtype"]),
        return_sequences=bool(cfg["return_sequences"]),
        head_weight=head_w,
        head_bias=head_b,
        loss=cfg["loss"],
        classes=np.asarray(est.classes_) if classifier else None,
        channels_first=getattr(est, "input_layout", "ntc") == "nct",
    )


# -- named parameters -------------------------------------------------------------------------
def as_checked_array(
    value: Any, name: str, shape: tuple, dtype: np.dtype, what: str = "set_named_parameters"
) -> np.ndarray:
    """``value`` (an array-like, or a torch tensor / Keras variable) as a finite array of
    ``dtype`` and exactly ``shape``: ValueError naming ``name`` otherwise."""
    if hasattr(value, "detach"):  # a torch tensor, possibly requiring grad or on a device
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: {name} is not a numeric array ({e})") from None
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{what}: {name} must hold real numbers, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{what}: {name} must have shape {tuple(shape)}, got {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{what}: {name} contains NaN or infinity")
    with np.errstate(over="ignore"):
        out = np.array(arr, dtype=dtype, order="C")
    if not np.isfinite(out).all():
        raise ValueError(f"{what}: {name} has values beyond the range of {np.dtype(dtype).name}")
    return out


def set_named_parameters(estimator: Any, params: Mapping) -> None:
    """Replace a fitted estimator's parameters by ``params`` ({name: array}), the inverse of
    ``estimator.named_parameters()``: the same names (every one, no other) and shapes, real and
    finite values (converted to the estimator's dtype; torch tensors are accepted). ValueError
    naming the first problem, and then nothing changes. The fitted model is replaced as a whole,
    as assigning ``params_`` does (the optimizer's state is kept for ``partial_fit``)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    if not isinstance(params, Mapping):
        raise ValueError(
            f"set_named_parameters needs a dict {{name: array}}, got {type(params).__name__}"
        )
    cfg = estimator.network_config_
    layout = [
        (name, int(off), tuple(int(s) for s in shape))
        for name, off, shape in core_config(cfg).layout()
    ]
    names = [name for name, _, _ in layout]
    missing = [n for n in names if n not in params]
    unknown = [n for n in params if n not in names]
    if missing or unknown:
        raise ValueError(
            "set_named_parameters: "
            + (f"missing parameters {missing}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"unknown parameters {unknown}" if unknown else "")
            + f" (expected exactly {names})"
        )
    old = estimator.params_
    flat = np.empty_like(old)
    covered = 0
    for name, off, shape in layout:
        size = int(np.prod(shape))
        flat[off : off + size] = as_checked_array(params[name], name, shape, old.dtype).ravel()
        covered += size
    if covered != old.size:  # the core's layout covers the vector exactly
        raise RuntimeError(f"the parameter layout covers {covered} of {old.size} entries")
    estimator.params_ = flat


__all__ = ["NetSpec", "TORCH_CELLS", "as_checked_array", "set_named_parameters", "spec_of"]
