"""Export to ONNX with the standard ``LSTM`` / ``GRU`` / ``RNN`` operators (``onnx.helper``).

The graph is written directly from the weights (not traced through PyTorch), in float32 (ONNX
Runtime's recurrent kernels are float32 only; a float64 model is rounded to float32), opset 17
by default, and validated with ``onnx.checker.check_model(..., full_check=True)``.

Estimators (:func:`to_onnx` on a fitted ``LSTMRegressor`` / ``LSTMClassifier``):

* input ``X`` (batch, time, n_features) float32, batch-first like ``predict`` (a model fitted on
  2-D univariate input takes ``X[..., None]``; one fitted with ``input_layout="nct"`` takes
  (batch, n_features, time), as its ``predict`` does); ``batch`` and ``time`` are dynamic;
* with ``sequence_lens=True`` a second input ``sequence_lens`` (batch,) int32: the length of each
  right-padded sequence (as ``predict`` on a list of sequences of different lengths);
* regressor: output ``output`` = the head's raw values, (batch, n_outputs), or with
  return_sequences (batch, time, n_outputs); ``predict`` returns the same values (squeezed to
  (batch,) / (batch, time) for a model fitted on 1-D targets per sequence or step);
* classifier: ``probabilities`` = ``predict_proba``, (batch, n_classes) or (batch, time,
  n_classes), and ``label`` = ``predict`` (the class labels, when they are numbers, booleans or
  strings; int64, float64, bool or string tensors);
* with return_sequences and ``sequence_lens``, padded steps hold 0 in ``output`` and
  ``probabilities`` (their ``label`` is meaningless).

Layers (:func:`to_onnx` on an ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``): input ``x`` (batch, time,
input_size), optional ``sequence_lens`` (batch,) int32 and, with ``initial_state=True``, ``h0``
(and ``c0`` for LSTM) (num_layers, batch, hidden_size); outputs ``y`` (batch, time, hidden_size)
(0 past each length), ``h`` (and ``c``) (num_layers, batch, hidden_size), as ``layer.forward``.

Graph: a ``Transpose`` to time-major, one ONNX recurrent node per layer (both directions in one
node, ``direction="bidirectional"``; the next layer reads [forward, reverse] side by side), and
the head as ``Gemm`` on the final states (forward: at each sequence's last step, reverse: after
reading back to the first step; ONNX's ``Y_h``), or with return_sequences as ``MatMul`` + ``Add``
over every step, then ``Softmax`` for a classifier.

Weight mapping (ours = PyTorch's; G gates of H units, per direction):

* LSTM: blocks (i, f, g, o) -> ONNX (i, o, f, c); ``B`` = [b_ih, b_hh] in ONNX order; peepholes
  (``lstm_peephole``) ``weight_ci, weight_cf, weight_co`` -> ``P`` = [p_i, p_o, p_f];
  ``no_input_activation`` / ``no_output_activation``: ``activations`` g / h = ``Affine`` with
  alpha 1, beta 0 (the identity);
* GRU: blocks (r, z, n) -> ONNX (z, r, h), ``linear_before_reset=1`` (PyTorch's GRU, where the
  reset gate multiplies W_hn h + b_hn);
* RNN: one block; ``activations`` ``Tanh`` (rnn_tanh) or ``Relu`` (rnn_relu).

The other cells (lstm_1997, cifg, no_input_gate, no_output_gate, ungated, cell_as_input) have no
exact ONNX form: exporting them raises ValueError.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._export_spec import NetSpec, spec_of

# cell -> (ONNX operator, permutation of our gate blocks into ONNX's order, activations of one
# direction or None for the operator's defaults)
_ONNX_CELLS = {
    "lstm": ("LSTM", (0, 3, 1, 2), None),
    "lstm_peephole": ("LSTM", (0, 3, 1, 2), None),
    "no_input_activation": ("LSTM", (0, 3, 1, 2), ("Sigmoid", "Affine", "Tanh")),
    "no_output_activation": ("LSTM", (0, 3, 1, 2), ("Sigmoid", "Tanh", "Affine")),
    "gru": ("GRU", (1, 0, 2), None),
    "rnn_tanh": ("RNN", (0,), ("Tanh",)),
    "rnn_relu": ("RNN", (0,), ("Relu",)),
}
_PEEPHOLES = ("weight_ci", "weight_co", "weight_cf")  # ONNX's P order: i, o, f

DEFAULT_OPSET = 17


def check_exportable(cell: str) -> None:
    """ValueError unless ``cell`` has an exact ONNX form."""
    if cell not in _ONNX_CELLS:
        raise ValueError(
            f"cell {cell!r} has no exact equivalent among ONNX's LSTM, GRU and RNN operators; "
            f"exportable cells: {', '.join(_ONNX_CELLS)}"
        )


def onnx_unit_weights(spec: NetSpec, layer: int) -> dict:
    """ONNX's initializers of one layer (both directions stacked): W [dirs, G*H, D_l],
    R [dirs, G*H, H], B [dirs, 2*G*H] and, for peepholes, P [dirs, 3*H]; float32."""
    _, perm, _ = _ONNX_CELLS[spec.cell]
    H, G = spec.hidden_size, len(perm)

    def reorder(a: np.ndarray) -> np.ndarray:  # gate blocks along axis 0
        return a.reshape((G, H) + a.shape[1:])[list(perm)].reshape(a.shape)

    out: dict = {"W": [], "R": [], "B": [], "P": []}
    for d in range(spec.dirs):
        u = spec.unit(layer, reverse=bool(d))
        out["W"].append(reorder(u["weight_ih"]))
        out["R"].append(reorder(u["weight_hh"]))
        zeros = np.zeros(G * H)
        out["B"].append(
            np.concatenate([reorder(u.get("bias_ih", zeros)), reorder(u.get("bias_hh", zeros))])
        )
        if "weight_ci" in u:
            out["P"].append(np.concatenate([u[name] for name in _PEEPHOLES]))
    return {k: np.ascontiguousarray(np.stack(v), dtype=np.float32) for k, v in out.items() if v}


class _Graph:
    """Nodes and initializers with unique names."""

    def __init__(self, helper: Any, numpy_helper: Any) -> None:
        self.h, self.nh = helper, numpy_helper
        self.nodes: list = []
        self.inits: list = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: Any) -> str:
        name = self.name(hint)
        self.inits.append(self.nh.from_array(np.asarray(value), name))
        return name

    def op(
        self, op_type: str, inputs: list, n_out: int = 1, out: Optional[list] = None, **attrs: Any
    ) -> list:
        outputs = out or [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(
            self.h.make_node(op_type, inputs, outputs, name=self.name(op_type), **attrs)
        )
        return outputs

    def one(self, op_type: str, inputs: list, **attrs: Any) -> str:
        return self.op(op_type, inputs, **attrs)[0]


def _recurrent_layers(
    g: _Graph, spec: NetSpec, x_tbd: str, lens: str, init: Optional[tuple] = None
) -> list:
    """One ONNX recurrent node per layer over x_tbd (T, B, D); returns per layer (Y (T, dirs, B,
    H), Y_h (dirs, B, H), Y_c or None). ``init``: the names of h0 (and c0) (L, B, H)."""
    op_type, perm, acts = _ONNX_CELLS[spec.cell]
    attrs: dict = {"hidden_size": spec.hidden_size}
    if spec.bidirectional:
        attrs["direction"] = "bidirectional"
    if op_type == "GRU":
        attrs["linear_before_reset"] = 1
    if acts is not None:
        acts = list(acts) * spec.dirs
        attrs["activations"] = acts
        if "Affine" in acts:  # alpha 1 and beta 0 for every entry: Affine is the identity
            attrs["activation_alpha"] = [1.0] * len(acts)
            attrs["activation_beta"] = [0.0] * len(acts)
    results = []
    x = x_tbd
    for layer in range(spec.num_layers):
        w = onnx_unit_weights(spec, layer)
        inputs = [
            x,
            g.const(f"W_l{layer}", w["W"]),
            g.const(f"R_l{layer}", w["R"]),
            g.const(f"B_l{layer}", w["B"]),
            lens,
        ]
        if init is not None:
            sl = [
                g.const("start", np.array([layer], np.int64)),
                g.const("end", np.array([layer + 1], np.int64)),
                g.const("axis", np.array([0], np.int64)),
            ]
            inputs += [g.one("Slice", [s, *sl]) for s in init]
        n_out = 3 if op_type == "LSTM" else 2
        if "P" in w:
            inputs += [""] * (7 - len(inputs)) + [g.const(f"P_l{layer}", w["P"])]
        while inputs and inputs[-1] == "":
            inputs.pop()
        outs = g.op(op_type, inputs, n_out=n_out, **attrs)
        results.append((outs[0], outs[1], outs[2] if n_out == 3 else None))
        if layer + 1 < spec.num_layers:
            x = _merge_directions(g, spec, outs[0], batch_first=False)
    return results


def _merge_directions(g: _Graph, spec: NetSpec, y: str, batch_first: bool) -> str:
    """Y (T, dirs, B, H) -> (T, B, dirs*H), or (B, T, dirs*H) when batch_first."""
    if spec.dirs == 1:
        y = g.one("Squeeze", [y, g.const("axes", np.array([1], np.int64))])
        return g.one("Transpose", [y], perm=[1, 0, 2]) if batch_first else y
    y = g.one("Transpose", [y], perm=[2, 0, 1, 3] if batch_first else [0, 2, 1, 3])
    return g.one("Reshape", [y, g.const("shape", np.array([0, 0, -1], np.int64))])


def _step_mask(g: _Graph, x_btd: str, lens: str) -> str:
    """(B, T, 1) float32: 1 at the steps t < sequence_lens[b], else 0."""
    shape = g.one("Shape", [x_btd])
    T = g.one("Gather", [shape, g.const("one", np.array(1, np.int64))], axis=0)
    steps = g.one(
        "Range", [g.const("zero", np.array(0, np.int64)), T, g.const("one", np.array(1, np.int64))]
    )
    steps = g.one("Unsqueeze", [steps, g.const("axes", np.array([0], np.int64))])
    lens64 = g.one(
        "Unsqueeze",
        [
            g.one("Cast", [lens], to=7),  # int64
            g.const("axes", np.array([1], np.int64)),
        ],
    )
    valid = g.one("Cast", [g.one("Less", [steps, lens64])], to=1)  # float32
    return g.one("Unsqueeze", [valid, g.const("axes", np.array([2], np.int64))])


def _class_labels(classes: np.ndarray) -> Optional[np.ndarray]:
    """The labels as an array ONNX can hold (int64, float64, bool, str), or None."""
    try:
        arr = np.asarray(classes.tolist())
    except (TypeError, ValueError):
        return None
    if arr.ndim != 1 or len(arr) != len(classes):
        return None
    kinds = {"i": np.int64, "u": np.int64, "f": np.float64, "b": np.bool_}
    if arr.dtype.kind in kinds:
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            return None
        return arr.astype(kinds[arr.dtype.kind])
    if arr.dtype.kind == "U":
        return arr.astype(object)
    return None


def build_model(
    spec: NetSpec,
    *,
    sequence_lens: bool = False,
    initial_state: bool = False,
    opset: int = DEFAULT_OPSET,
) -> Any:
    """The ONNX ModelProto of ``spec`` (see the module docstring), checked."""
    check_exportable(spec.cell)
    if initial_state and spec.has_head:
        raise ValueError(
            "initial_state=True is for layers: an estimator's network starts from zero states"
        )
    if not isinstance(opset, (int, np.integer)) or isinstance(opset, bool) or opset < 14:
        raise ValueError(f"opset must be an integer >= 14 (GRU/RNN/LSTM-14), got {opset!r}")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = _Graph(helper, numpy_helper)
    F32 = TensorProto.FLOAT
    D, H, L = spec.input_size, spec.hidden_size, spec.num_layers
    x_name = "X" if spec.has_head else "x"
    dims = ["batch", D, "time"] if spec.channels_first else ["batch", "time", D]
    inputs = [helper.make_tensor_value_info(x_name, F32, dims)]
    lens = ""
    if sequence_lens:
        lens = "sequence_lens"
        inputs.append(helper.make_tensor_value_info(lens, TensorProto.INT32, ["batch"]))
    init = None
    if initial_state:
        init = ("h0", "c0") if _ONNX_CELLS[spec.cell][0] == "LSTM" else ("h0",)
        inputs += [helper.make_tensor_value_info(n, F32, [L, "batch", H]) for n in init]
    x_btd = g.one("Transpose", [x_name], perm=[0, 2, 1]) if spec.channels_first else x_name
    x_tbd = g.one("Transpose", [x_btd], perm=[1, 0, 2])
    layers = _recurrent_layers(g, spec, x_tbd, lens, init)
    Y, Y_h, _ = layers[-1]
    outputs = []
    if not spec.has_head:
        _layer_outputs(g, spec, layers)
        outputs.append(helper.make_tensor_value_info("y", F32, ["batch", "time", H]))
        for part, idx in (("h", 1), ("c", 2)):
            if layers[0][idx] is not None:
                g.op("Concat", [lay[idx] for lay in layers], out=[part], axis=0)
                outputs.append(helper.make_tensor_value_info(part, F32, [L, "batch", H]))
    else:
        outputs = _head(g, helper, spec, x_btd, Y, Y_h, lens)
    graph = helper.make_graph(g.nodes, "lstm_native", inputs, outputs, g.inits)
    opsets = [helper.make_opsetid("", int(opset))]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="lstm_native",
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    model.doc_string = (
        f"lstm_native {spec.cell} network: {L} layer(s) of {H} units"
        + (", bidirectional" if spec.bidirectional else "")
        + ". Inputs and outputs: see lstm_native._onnx."
    )
    if spec.classes is not None:
        helper.set_model_props(model, {"classes": repr(spec.classes.tolist())})
    onnx.checker.check_model(model, full_check=True)
    return model


def _layer_outputs(g: _Graph, spec: NetSpec, layers: list) -> None:
    """A layer's ``y`` (B, T, H), batch-first."""
    y = g.one("Squeeze", [layers[-1][0], g.const("axes", np.array([1], np.int64))])
    g.op("Transpose", [y], out=["y"], perm=[1, 0, 2])


def _head(g: _Graph, helper: Any, spec: NetSpec, x_name: str, Y: str, Y_h: str, lens: str) -> list:
    """The head and the estimator's outputs; returns their value infos."""
    from onnx import TensorProto

    W = np.asarray(spec.head_weight, dtype=np.float32)
    b = np.asarray(spec.head_bias, dtype=np.float32)
    n_out = W.shape[0]
    if spec.return_sequences:
        feat = _merge_directions(g, spec, Y, batch_first=True)  # (B, T, dirs*H)
        raw = g.one(
            "Add",
            [
                g.one("MatMul", [feat, g.const("head_weight_t", W.T.copy())]),
                g.const("head_bias", b),
            ],
        )
        dims: list = ["batch", "time", n_out]
    else:
        feat = g.one("Transpose", [Y_h], perm=[1, 0, 2])  # (B, dirs, H)
        feat = g.one("Reshape", [feat, g.const("shape", np.array([0, -1], np.int64))])
        raw = g.one("Gemm", [feat, g.const("head_weight", W), g.const("head_bias", b)], transB=1)
        dims = ["batch", n_out]
    mask = _step_mask(g, x_name, lens) if spec.return_sequences and lens else None
    if spec.loss != "softmax":
        g.op("Mul" if mask else "Identity", [raw, mask] if mask else [raw], out=["output"])
        return [helper.make_tensor_value_info("output", TensorProto.FLOAT, dims)]
    probs = g.one("Softmax", [raw], axis=-1)
    g.op("Mul" if mask else "Identity", [probs, mask] if mask else [probs], out=["probabilities"])
    outs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, dims)]
    labels = _class_labels(spec.classes)
    if labels is not None:
        idx = g.one("ArgMax", [raw], axis=-1, keepdims=0)
        g.op("Gather", [g.const("classes", labels), idx], out=["label"], axis=0)
        elem = (
            TensorProto.STRING
            if labels.dtype == object
            else helper.np_dtype_to_tensor_dtype(labels.dtype)
        )
        outs.append(helper.make_tensor_value_info("label", elem, dims[:-1]))
    return outs


def to_onnx(
    model: Any,
    path: Any = None,
    *,
    sequence_lens: bool = False,
    initial_state: bool = False,
    opset: int = DEFAULT_OPSET,
) -> Any:
    """Export a fitted ``LSTMRegressor`` / ``LSTMClassifier`` or an ``nn`` layer to ONNX.

    Writes the model to ``path`` when given (``onnx.save``) and returns the ``onnx.ModelProto``.
    ``sequence_lens=True`` adds the input ``sequence_lens`` (batch,) int32 for right-padded
    batches; ``initial_state=True`` (layers only) adds ``h0`` (and ``c0``). Inputs, outputs,
    the weight mapping and the exportable cells: see :mod:`lstm_native._onnx`. Needs
    the ``onnx`` package (``pip install "lstm_native[interop]"``); ValueError for a cell ONNX
    cannot express."""
    spec = spec_of(model)
    check_exportable(spec.cell)  # before importing onnx: the same error without it
    proto = build_model(
        spec, sequence_lens=bool(sequence_lens), initial_state=bool(initial_state), opset=opset
    )
    if path is not None:
        import onnx

        onnx.save(proto, path)
    return proto


__all__ = ["DEFAULT_OPSET", "build_model", "check_exportable", "onnx_unit_weights", "to_onnx"]
