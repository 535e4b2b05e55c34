"""Estimators to and from PyTorch modules (torch is imported only inside these functions).

``to_torch(est)`` returns a :class:`~lstm_native.interop._torch_module.SequenceModel`:
``rnn`` (``torch.nn.LSTM`` / ``GRU`` / ``RNN``, ``batch_first=True``, the estimator's layers,
directions and inter-layer dropout) and ``head`` (``torch.nn.Linear``), in eval mode, whose
``forward(x, lengths=None)`` gives the head's raw outputs: ``predict``'s values for a regressor,
the logits for a classifier (``softmax(dim=-1)`` = ``predict_proba``). The weights are copied by
name: our parameters are PyTorch's (gates i, f, g, o for LSTM, r, z, n for GRU; ``bias_ih`` and
``bias_hh`` apart), so nothing is reordered.

``fitted_from_torch(cls, module, classes, **params)`` is what ``LSTMRegressor.from_torch`` /
``LSTMClassifier.from_torch`` build a fitted estimator from. ``module`` is either a module with
``rnn`` and ``head`` attributes (what ``to_torch`` returns) or a pair ``(rnn, head)``:

* ``rnn``: ``torch.nn.LSTM`` (without ``proj_size``), ``torch.nn.GRU`` or ``torch.nn.RNN``
  (tanh or relu), any number of layers, uni- or bidirectional, float32 or float64 (the
  estimator's dtype); ``batch_first`` does not matter (the estimator always reads (batch, time,
  features)); ``bias=False`` becomes zero biases;
* ``head``: ``torch.nn.Linear(dirs * hidden_size, n_outputs)`` reading the final states of the
  top layer ([forward, reverse] for a bidirectional one), or with ``return_sequences`` (the
  attribute of a ``to_torch`` module, else the keyword) every step's output;
* classifier: ``classes`` (labels of the head's outputs, in their order; taken from the module's
  ``classes`` attribute when omitted) -- stored sorted as scikit-learn does, with the head's rows
  permuted along; a regressor's targets are 1-D when the head has one output.

The estimator is fitted in the sense of scikit-learn (``predict``, ``score``, ``save``,
``stream``, ``partial_fit`` / ``warm_start`` continue from these weights) with an empty training
history (``n_iter_ == 0``); ``params`` sets other hyperparameters (``random_state``,
``learning_rate_init``, ...).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._export_spec import TORCH_CELLS, as_checked_array, spec_of
from .._network import check_precision, core_config, loss_config


def to_torch(estimator: Any) -> Any:
    """A ``torch.nn.Module`` computing the fitted estimator's outputs (module docstring)."""
    spec = spec_of(estimator)
    if not spec.has_head:
        raise TypeError(
            "to_torch converts a fitted estimator; for an nn layer build "
            "torch.nn.LSTM/GRU/RNN and copy layer.parameters() by name"
        )
    if spec.cell not in TORCH_CELLS:
        raise ValueError(
            f"cell {spec.cell!r} has no PyTorch module; to_torch converts {', '.join(TORCH_CELLS)}"
        )
    import torch

    from ._torch_module import SequenceModel

    dtype = torch.float64 if spec.dtype == np.float64 else torch.float32
    kw = dict(
        num_layers=spec.num_layers,
        bias=spec.bias,
        batch_first=True,
        bidirectional=spec.bidirectional,
        dtype=dtype,
        dropout=float(estimator.network_config_["dropout"]) if spec.num_layers > 1 else 0.0,
    )
    kind = TORCH_CELLS[spec.cell]
    if kind == "RNN":
        kw["nonlinearity"] = spec.cell.split("_")[1]
    rnn = getattr(torch.nn, kind)(spec.input_size, spec.hidden_size, **kw)
    head = torch.nn.Linear(spec.dirs * spec.hidden_size, spec.head_weight.shape[0], dtype=dtype)
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(spec.params[name])))
        head.weight.copy_(torch.from_numpy(spec.head_weight))
        head.bias.copy_(torch.from_numpy(spec.head_bias))
    classes = None if spec.classes is None else spec.classes.copy()
    return SequenceModel(rnn, head, spec.return_sequences, classes, spec.channels_first).eval()


def _cell_of(rnn: Any, torch: Any) -> str:
    if isinstance(rnn, torch.nn.LSTM):
        if getattr(rnn, "proj_size", 0):
            raise ValueError("an LSTM with proj_size > 0 has no lstm_native equivalent")
        return "lstm"
    if isinstance(rnn, torch.nn.GRU):
        return "gru"
    if isinstance(rnn, torch.nn.RNN):
        return "rnn_" + rnn.nonlinearity
    raise TypeError(
        f"the recurrent part must be torch.nn.LSTM, GRU or RNN, got {type(rnn).__name__}"
    )


def _unpack(module: Any, return_sequences: Optional[bool]) -> tuple:
    if isinstance(module, (tuple, list)):
        if len(module) != 2:
            raise TypeError(f"expected a pair (rnn, head), got {len(module)} items")
        rnn, head = module
        rs, classes = return_sequences, None
    elif hasattr(module, "rnn") and hasattr(module, "head"):
        rnn, head = module.rnn, module.head
        rs = getattr(module, "return_sequences", None)
        if return_sequences is not None and rs is not None and bool(rs) != bool(return_sequences):
            raise ValueError(
                f"return_sequences={return_sequences} contradicts the module's "
                f"return_sequences={rs}"
            )
        rs = return_sequences if rs is None else rs
        classes = getattr(module, "classes", None)
    else:
        raise TypeError(
            f"expected a module with .rnn and .head (as to_torch returns) or a pair "
            f"(rnn, head), got {type(module).__name__}"
        )
    return rnn, head, bool(rs), classes


def _sorted_classes(classes: Any, n_out: int) -> tuple:
    """(classes sorted, the head rows in that order)."""
    labels = np.asarray(classes)
    if labels.ndim != 1:
        raise ValueError(f"classes must be 1-D, got shape {labels.shape}")
    if len(labels) != n_out:
        raise ValueError(f"classes has {len(labels)} labels but the head has {n_out} outputs")
    if n_out < 2:
        raise ValueError("a classifier needs at least 2 classes (a head with >= 2 outputs)")
    try:
        order = np.argsort(labels, kind="stable")
    except TypeError as e:
        raise ValueError(f"classes must be mutually comparable labels ({e})") from None
    srt = labels[order]
    if any(srt[i] == srt[i + 1] for i in range(len(srt) - 1)):
        raise ValueError(f"classes must be distinct, got {labels.tolist()}")
    return srt, order


def fitted_from_torch(
    cls: type,
    module: Any,
    classes: Any = None,
    *,
    return_sequences: Optional[bool] = None,
    **params: Any,
) -> tuple:
    """(hyperparameters, FittedModel) of an estimator of class ``cls`` with a PyTorch
    network's weights (module docstring); the estimator class assembles them."""
    import copy

    import torch
    from sklearn.base import is_classifier
    from sklearn.utils import check_random_state

    from .._state import FittedModel, InputSpec, TrainState

    rnn, head, rs, module_classes = _unpack(module, return_sequences)
    cell = _cell_of(rnn, torch)
    if not isinstance(head, torch.nn.Linear):
        raise TypeError(f"the head must be torch.nn.Linear, got {type(head).__name__}")
    dtype = rnn.weight_ih_l0.dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"the recurrent weights must be float32 or float64, got {dtype}")
    D, H, L = int(rnn.input_size), int(rnn.hidden_size), int(rnn.num_layers)
    dirs = 2 if rnn.bidirectional else 1
    if head.in_features != dirs * H:
        raise ValueError(
            f"the head reads {head.in_features} features, but the recurrent stack "
            f"gives dirs * hidden_size = {dirs * H}"
        )
    taken = {"cell", "hidden_size", "num_layers", "bidirectional", "return_sequences", "dtype"}
    clash = sorted(taken & set(params))
    if clash:
        raise ValueError(f"{clash} come from the module and cannot be given")
    np_dtype = np.dtype("float64" if dtype == torch.float64 else "float32")
    hyper = dict(
        cell=cell,
        hidden_size=H,
        num_layers=L,
        bidirectional=bool(rnn.bidirectional),
        return_sequences=rs,
        dropout=float(rnn.dropout) if L > 1 else 0.0,
        dtype=np_dtype.name,
    )
    hyper.update(params)
    est = cls(**hyper)  # (scikit-learn checks hyperparameters when fitting, as here)

    head_w = as_checked_array(
        head.weight, "head.weight", (head.out_features, dirs * H), np_dtype, "from_torch"
    )
    head_b = (
        np.zeros(head.out_features, np_dtype)
        if head.bias is None
        else as_checked_array(head.bias, "head.bias", (head.out_features,), np_dtype, "from_torch")
    )
    sorted_classes = None
    if is_classifier(est):
        if classes is None:
            classes = module_classes
        if classes is None:
            raise ValueError("a classifier needs classes: the labels of the head's outputs")
        sorted_classes, order = _sorted_classes(classes, head.out_features)
        head_w, head_b = head_w[order], head_b[order]
    elif classes is not None:
        raise ValueError("classes is for LSTMClassifier.from_torch; a regressor has none")
    n_out = head.out_features
    config = dict(
        cell=cell,
        input_size=D,
        hidden_size=H,
        num_layers=L,
        output_size=n_out,
        bidirectional=bool(rnn.bidirectional),
        return_sequences=rs,
        dropout=hyper["dropout"],
        dtype=np_dtype.name,
        precision=check_precision(hyper.get("precision", "float32"), np_dtype),
        **loss_config("softmax" if sorted_classes is not None else "mse"),
    )
    values = dict(rnn.named_parameters())
    values["head.weight"], values["head.bias"] = head_w, head_b
    layout = core_config(config).layout()
    flat = np.zeros(core_config(config).num_params, dtype=np_dtype)
    for name, off, shape in layout:
        shape = tuple(int(s) for s in shape)
        if name in values:
            value = values.pop(name)
        elif name.startswith("bias_") and not rnn.bias:
            value = np.zeros(shape)
        else:
            raise ValueError(f"the module has no parameter {name!r}")
        flat[off : off + int(np.prod(shape))] = as_checked_array(
            value, name, shape, np_dtype, "from_torch"
        ).ravel()
    if values:
        raise ValueError(f"the module has parameters lstm_native does not: {sorted(values)}")
    rng = copy.deepcopy(check_random_state(est.random_state))
    state = TrainState.fresh(flat, est.learning_rate_init, rng, validating=False)
    fitted = FittedModel(
        config=config,
        state=state,
        input=InputSpec(n_features_in=D, input_kind="3d", step_features=D),
        n_outputs=1 if sorted_classes is not None else n_out,
        y_ndim=1 if (sorted_classes is not None or n_out == 1) else 2,
        classes=sorted_classes,
    )
    return est.get_params(deep=False), fitted


__all__ = ["fitted_from_torch", "to_torch"]
