"""Property-based tests (hypothesis): over random shapes, lengths, cells, layer settings, input
dtypes and memory layouts, the compiled core either agrees with the NumPy reference
(tests/reference.py) or raises a clean Python exception; never anything else.

* nn.Recurrent forward and backward against reference.forward / reference.backward;
* malformed calls to the layer raise ValueError / TypeError / RuntimeError;
* the estimators' predict / predict_proba against a NumPy re-implementation of the whole
  network (reference layers per direction, reversal within each length, the dense head).
"""

import os
import re

import numpy as np
import pytest
from conftest import rel_err
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lstm_native import LSTMClassifier, LSTMRegressor, nn

import reference as ref

CELLS = [c for c in nn.CELLS if c in ref.CELLS]
TOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 2e-5}
# LSTM_NATIVE_EXAMPLES=2000 for a longer search than the suite's default
PROPS = settings(
    max_examples=int(os.environ.get("LSTM_NATIVE_EXAMPLES", 40)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FORMS = ("c", "fortran", "strided", "reversed-view", "float16", "int8", "big-endian", "list")


def as_form(x, form):
    """x (values exactly representable in every form) in another layout or dtype."""
    if form == "fortran":
        return np.asfortranarray(x)
    if form == "strided":
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],))
        big[..., ::2] = x
        return big[..., ::2]
    if form == "reversed-view":
        return np.ascontiguousarray(x[::-1])[::-1]
    if form == "float16":
        return x.astype(np.float16)
    if form == "int8":
        return x.astype(np.int8)
    if form == "big-endian":
        return x.astype(">f8")
    if form == "list":
        return x.tolist()
    return x


@st.composite
def layer_cases(draw):
    cell = draw(st.sampled_from(CELLS))
    case = dict(
        cell=cell,
        L=draw(st.integers(1, 3)),
        B=draw(st.integers(1, 6)),
        T=draw(st.integers(1, 7)),
        D=draw(st.integers(1, 5)),
        H=draw(st.integers(1, 6)),
        bias=draw(st.booleans()),
        dtype=np.dtype(draw(st.sampled_from(["f4", "f8"]))),
        lengths=draw(st.booleans()),
        state=draw(st.booleans()),
        form=draw(st.sampled_from(FORMS)),
        seed=draw(st.integers(0, 2**32 - 1)),
        upstream=draw(st.sampled_from(["dy", "dstate", "both"])),
    )
    return case


def _problem(c):
    rng = np.random.default_rng(c["seed"])
    cast = lambda a: None if a is None else np.asarray(a, c["dtype"]).astype(np.float64)
    params = {
        k: cast(v)
        for k, v in ref.init_params(
            rng, c["cell"], c["D"], c["H"], c["L"], c["bias"], scale=1 / np.sqrt(c["H"])
        ).items()
    }
    # integers in [-3, 3]: exact in every input form (int8 and float16 included)
    x = rng.integers(-3, 4, size=(c["B"], c["T"], c["D"])).astype(np.float64)
    lengths = rng.integers(1, c["T"] + 1, size=c["B"]) if c["lengths"] else None
    cell_state = ref.has_cell_state(c["cell"])
    shape = (c["L"], c["B"], c["H"])
    h0 = cast(rng.standard_normal(shape) * 0.5) if c["state"] else None
    c0 = cast(rng.standard_normal(shape) * 0.5) if c["state"] and cell_state else None
    dy = cast(rng.standard_normal((c["B"], c["T"], c["H"]))) if c["upstream"] != "dstate" else None
    dh = cast(rng.standard_normal(shape)) if c["upstream"] != "dy" else None
    dc = cast(rng.standard_normal(shape)) if c["upstream"] != "dy" and cell_state else None
    return params, x, lengths, h0, c0, dy, dh, dc


def _pack(cell, h, c, dtype):
    if h is None:
        return None
    return (h.astype(dtype), c.astype(dtype)) if ref.has_cell_state(cell) else h.astype(dtype)


@PROPS
@given(layer_cases())
def test_layer_agrees_with_the_reference(c):
    params, x, lengths, h0, c0, dy, dh, dc = _problem(c)
    cell, dtype = c["cell"], c["dtype"]
    layer = nn.Recurrent(c["D"], c["H"], num_layers=c["L"], cell=cell, bias=c["bias"], dtype=dtype)
    layer.set_parameters({k: v.astype(dtype) for k, v in params.items()})
    y, state = layer.forward(
        as_form(x, c["form"]),
        state=_pack(cell, h0, c0, dtype),
        lengths=None if lengths is None else list(lengths),
    )
    grads = layer.backward(
        None if dy is None else dy.astype(dtype), dstate=_pack(cell, dh, dc, dtype)
    )
    y_r, hT_r, cT_r, cache = ref.forward(params, x, cell, c["L"], h0, c0, lengths)
    g_r = ref.backward(params, cache, dy=dy, dhT=dh, dcT=dc)

    tol = TOL[dtype]
    assert y.dtype == dtype and y.shape == (c["B"], c["T"], c["H"])
    hT, cT = state if ref.has_cell_state(cell) else (state, None)
    errors = {"y": rel_err(y, y_r), "hT": rel_err(hT, hT_r)}
    if cT_r is not None:
        errors["cT"] = rel_err(cT, cT_r)
    assert set(grads) == set(g_r)
    errors.update({"d" + k: rel_err(grads[k], g_r[k]) for k in g_r})
    bad = {k: f"{v:.1e}" for k, v in errors.items() if not v <= tol}
    assert not bad, f"{c}: {bad}"
    if lengths is not None:
        for b, n in enumerate(lengths):
            assert np.all(y[b, n:] == 0) and np.all(grads["x"][b, n:] == 0)


CORRUPTIONS = (
    "nan-x",
    "inf-state",
    "features",
    "zero-steps",
    "empty-batch",
    "lengths-0",
    "lengths-long",
    "lengths-float",
    "lengths-shape",
    "x-2d",
    "x-complex",
    "x-strings",
    "state-shape",
    "dy-shape",
    "dy-nan",
    "param-nan",
    "param-shape",
    "backward-first",
)


@PROPS
@given(layer_cases(), st.sampled_from(CORRUPTIONS))
def test_malformed_layer_calls_raise_clean_errors(c, corruption):
    params, x, lengths, h0, c0, dy, dh, dc = _problem(c)
    cell, dtype, B, T, H, L = c["cell"], c["dtype"], c["B"], c["T"], c["H"], c["L"]
    layer = nn.Recurrent(c["D"], H, num_layers=L, cell=cell, bias=c["bias"], dtype=dtype)
    state = _pack(
        cell,
        h0 if h0 is not None else np.zeros((L, B, H)),
        c0 if c0 is not None else np.zeros((L, B, H)),
        dtype,
    )
    kwargs = dict(x=x, state=state, lengths=lengths)
    bad_params = None
    if corruption == "nan-x":
        kwargs["x"] = x.copy()
        kwargs["x"][0, -1, 0] = np.nan
    elif corruption == "inf-state":
        h = np.zeros((L, B, H))
        h[-1, -1, -1] = np.inf
        kwargs["state"] = _pack(cell, h, np.zeros((L, B, H)), dtype)
    elif corruption == "features":
        kwargs["x"] = np.zeros((B, T, c["D"] + 1))
    elif corruption == "zero-steps":
        kwargs["x"], kwargs["lengths"] = x[:, :0], None
    elif corruption == "empty-batch":
        kwargs["x"], kwargs["lengths"], kwargs["state"] = x[:0], None, None
    elif corruption == "lengths-0":
        kwargs["lengths"] = np.r_[np.full(B - 1, T), 0]
    elif corruption == "lengths-long":
        kwargs["lengths"] = np.full(B, T + 1)
    elif corruption == "lengths-float":
        kwargs["lengths"] = np.full(B, float(T))
    elif corruption == "lengths-shape":
        kwargs["lengths"] = np.full(B + 1, T)
    elif corruption == "x-2d":
        kwargs["x"] = x[0]
    elif corruption == "x-complex":
        kwargs["x"] = x + 0j
    elif corruption == "x-strings":
        kwargs["x"] = x.astype(str)
    elif corruption == "state-shape":
        kwargs["state"] = _pack(cell, np.zeros((L + 1, B, H)), np.zeros((L + 1, B, H)), dtype)
    elif corruption in ("param-nan", "param-shape"):
        bad_params = {k: v.copy() for k, v in params.items()}
        name = sorted(bad_params)[c["seed"] % len(bad_params)]
        if corruption == "param-nan":
            bad_params[name].flat[0] = np.nan
        else:
            bad_params[name] = np.zeros(bad_params[name].shape + (1,))
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        if bad_params is not None:
            layer.set_parameters(bad_params)
        elif corruption == "backward-first":
            layer.backward(dy)
        elif corruption in ("dy-shape", "dy-nan"):
            layer.forward(**kwargs)
            bad = (
                np.zeros((B, T + 1, H)) if corruption == "dy-shape" else np.full((B, T, H), np.nan)
            )
            layer.backward(bad)
        else:
            layer.forward(**kwargs)
    # and the layer still works afterwards
    layer.forward(x, lengths=lengths)


# ------------------------------------------------------------------------------------------
# the estimators against a NumPy implementation of the whole network
# ------------------------------------------------------------------------------------------
def _unit_params(named, layer, reverse):
    """The parameters of one unit (layer, direction), renamed to a one-layer stack."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    return {
        re.sub(r"_l\d+(_reverse)?$", "_l0", k): v
        for k, v in named.items()
        if k.endswith(suffix) and not k.startswith("head.")
    }


def _reverse_within(x, lengths):
    out = np.zeros_like(x)
    for b, n in enumerate(lengths):
        out[b, :n] = x[b, :n][::-1]
    return out


def _network_outputs(est, X, lengths):
    """Head outputs (N, O) or (N, T, O) of the fitted estimator, computed by the reference."""
    cfg = est.network_config_
    named = {k: v.astype(np.float64) for k, v in est.named_parameters().items()}
    inp = X.astype(np.float64)
    for layer in range(cfg["num_layers"]):
        y_f, h_f, _, _ = ref.forward(
            _unit_params(named, layer, False), inp, cfg["cell"], 1, lengths=lengths
        )
        outs, finals = [y_f], [h_f[0]]
        if cfg["bidirectional"]:
            y_b, h_b, _, _ = ref.forward(
                _unit_params(named, layer, True),
                _reverse_within(inp, lengths),
                cfg["cell"],
                1,
                lengths=lengths,
            )
            outs.append(_reverse_within(y_b, lengths))
            finals.append(h_b[0])
        inp = np.concatenate(outs, axis=-1)
    feats = inp if cfg["return_sequences"] else np.concatenate(finals, axis=-1)
    out = feats @ named["head.weight"].T + named["head.bias"]
    if cfg["return_sequences"]:
        out = out * (np.arange(X.shape[1])[None, :, None] < lengths[:, None, None])
    return out


@st.composite
def estimator_cases(draw):
    return dict(
        cell=draw(
            st.sampled_from(
                ["lstm", "gru", "rnn", "rnn_relu"] + [c for c in CELLS if c not in ref.MAIN_CELLS]
                if hasattr(ref, "MAIN_CELLS")
                else ["lstm", "gru", "rnn", "rnn_relu"]
            )
        ),
        hidden=draw(st.integers(1, 5)),
        layers=draw(st.integers(1, 2)),
        bidirectional=draw(st.booleans()),
        seq=draw(st.booleans()),
        classifier=draw(st.booleans()),
        n=draw(st.integers(2, 9)),
        T=draw(st.integers(1, 6)),
        D=draw(st.integers(1, 3)),
        ragged=draw(st.booleans()),
        form=draw(st.sampled_from(FORMS[:-1])),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@PROPS
@given(estimator_cases())
def test_estimator_predictions_agree_with_the_reference(c):
    rng = np.random.default_rng(c["seed"])
    n, T, D = c["n"], c["T"], c["D"]
    X = rng.integers(-3, 4, size=(n, T, D)).astype(np.float64)
    lengths = rng.integers(1, T + 1, size=n) if c["ragged"] else np.full(n, T)
    if c["classifier"]:
        labels = np.arange(n) % 2
        y = [np.resize(labels[i : i + 2], lengths[i]) for i in range(n)] if c["seq"] else labels
    else:
        y = [rng.standard_normal(k) for k in lengths] if c["seq"] else rng.standard_normal(n)
    if c["ragged"]:
        Xin = [as_form(X[i, :k], c["form"]) for i, k in enumerate(lengths)]
    else:
        Xin = as_form(X, c["form"])
        if c["seq"]:
            y = np.stack(y)
    cls = LSTMClassifier if c["classifier"] else LSTMRegressor
    est = cls(
        cell=c["cell"],
        hidden_size=c["hidden"],
        num_layers=c["layers"],
        bidirectional=c["bidirectional"],
        return_sequences=c["seq"],
        max_iter=1,
        dtype="float64",
        random_state=c["seed"] % 1000,
    )
    assume(
        not (
            c["classifier"]
            and len(np.unique(np.concatenate([np.ravel(v) for v in y]) if c["seq"] else y)) < 2
        )
    )
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(Xin, y)
    want = _network_outputs(est, X, lengths)
    if c["classifier"]:
        z = want - want.max(axis=-1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
        got = est.predict_proba(Xin)
        if c["seq"] and c["ragged"]:
            for i, k in enumerate(lengths):
                np.testing.assert_allclose(got[i], p[i, :k], rtol=1e-9, atol=1e-12)
        elif c["seq"]:
            np.testing.assert_allclose(got, p, rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(got, p, rtol=1e-9, atol=1e-12)
    else:
        got = est.predict(Xin)
        if c["seq"] and c["ragged"]:
            for i, k in enumerate(lengths):
                np.testing.assert_allclose(got[i], want[i, :k, 0], rtol=1e-9, atol=1e-12)
        elif c["seq"]:
            np.testing.assert_allclose(got, want[..., 0], rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(got, want[:, 0], rtol=1e-9, atol=1e-12)
