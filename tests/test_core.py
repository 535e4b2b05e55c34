"""The C++ core, through lstm_native.nn, held to the NumPy reference.

Error measure (see conftest.rel_err):  max|core - ref| / max(max|ref|, 1).
    float64 layers:  <= 1e-10
    float32 layers:  <= 1e-5   (inputs and parameters are cast to float32 and
                                the reference runs in float64 on those very
                                values, so only the core's rounding is measured)
"""

import numpy as np
import pytest
from conftest import rel_err

from lstm_native import _core, nn

import reference as ref
from reference import CELLS

TOL = {np.float64: 1e-10, np.float32: 1e-5}
DTYPE_IDS = {np.float64: "f64", np.float32: "f32"}


def make_layer(cell, D, H, num_layers=1, bias=True, dtype=np.float64):
    return nn.Recurrent(D, H, num_layers=num_layers, cell=cell, bias=bias, dtype=dtype)


def make_case(rng, cell, num_layers, B, T, D, H, dtype, use_lengths, use_state, bias=True):
    """Random problem, already rounded to `dtype` (so core and reference see
    the same numbers).  Returns float64 copies of everything for the reference."""
    cast = lambda a: None if a is None else np.asarray(a, dtype=dtype).astype(np.float64)
    # PyTorch's default init scale 1/sqrt(H): with 0.5 a 40-step relu RNN with H=33
    # grows to |y| ~ 700 and float32 errors measure that growth, not the core
    scale = 1.0 / np.sqrt(H)
    params = {
        k: cast(v)
        for k, v in ref.init_params(rng, cell, D, H, num_layers, bias, scale=scale).items()
    }
    x = cast(rng.standard_normal((B, T, D)))
    h0 = c0 = None
    if use_state:
        h0 = cast(rng.standard_normal((num_layers, B, H)) * 0.5)
        if ref.has_cell_state(cell):
            c0 = cast(rng.standard_normal((num_layers, B, H)) * 0.5)
    lengths = None
    if use_lengths:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0] = T  # at least one full-length sequence
        lengths[-1] = 1  # and the shortest possible one
    Ry = cast(rng.standard_normal((B, T, H)))
    Rh = cast(rng.standard_normal((num_layers, B, H)))
    Rc = cast(rng.standard_normal((num_layers, B, H))) if ref.has_cell_state(cell) else None
    return dict(params=params, x=x, h0=h0, c0=c0, lengths=lengths, Ry=Ry, Rh=Rh, Rc=Rc)


def pack_state(cell, h, c, dtype):
    """The layer's state structure: (h, c) for lstm, h otherwise (or None)."""
    if h is None:
        return None
    if ref.has_cell_state(cell):
        return (h.astype(dtype), c.astype(dtype))
    return h.astype(dtype)


def unpack_state(cell, state):
    if ref.has_cell_state(cell):
        assert isinstance(state, tuple) and len(state) == 2, "lstm state must be an (h, c) tuple"
        return state
    return state, None


def run_core(cell, num_layers, case, dtype, bias=True, layer=None):
    """forward + backward through the layer; returns (y, hT, cT, grads)."""
    D, H = case["x"].shape[2], case["params"]["weight_hh_l0"].shape[1]
    if layer is None:
        layer = make_layer(cell, D, H, num_layers, bias, dtype)
    layer.set_parameters({k: v.astype(dtype) for k, v in case["params"].items()})
    y, state = layer.forward(
        case["x"].astype(dtype),
        state=pack_state(cell, case["h0"], case["c0"], dtype),
        lengths=case["lengths"],
    )
    hT, cT = unpack_state(cell, state)
    grads = layer.backward(
        case["Ry"].astype(dtype), dstate=pack_state(cell, case["Rh"], case["Rc"], dtype)
    )
    return y, hT, cT, grads


def run_reference(cell, num_layers, case):
    y, hT, cT, cache = ref.forward(
        case["params"], case["x"], cell, num_layers, case["h0"], case["c0"], case["lengths"]
    )
    grads = ref.backward(case["params"], cache, dy=case["Ry"], dhT=case["Rh"], dcT=case["Rc"])
    return y, hT, cT, grads


def compare(cell, num_layers, case, dtype, got, want):
    """Assert every output and gradient is within TOL[dtype]; returns the errors."""
    tol = TOL[dtype]
    y, hT, cT, grads = got
    y_r, hT_r, cT_r, grads_r = want
    errors = {}
    assert y.dtype == dtype, f"y has dtype {y.dtype}, layer dtype is {np.dtype(dtype)}"
    errors["y"] = rel_err(y, y_r)
    errors["hT"] = rel_err(hT, hT_r)
    if ref.has_cell_state(cell):
        errors["cT"] = rel_err(cT, cT_r)
    assert set(grads) == set(grads_r), (
        f"gradient names differ: missing {set(grads_r) - set(grads)}, "
        f"unexpected {set(grads) - set(grads_r)}"
    )
    for name in grads_r:
        errors["d" + name] = rel_err(grads[name], grads_r[name])
    bad = {k: f"{v:.2e}" for k, v in errors.items() if not v <= tol}
    assert not bad, f"{cell} L={num_layers} {np.dtype(dtype)}: rel err > {tol:g}: {bad}"
    if case["lengths"] is not None:
        for b, n in enumerate(case["lengths"]):
            assert np.all(y[b, n:] == 0), "outputs at padded steps must be exactly zero"
            assert np.all(grads["x"][b, n:] == 0), "x gradient at padded steps must be exactly zero"
    return errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("use_state", [False, True], ids=["zero_state", "state"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_core_matches_reference(rng, sizes, cell, num_layers, use_lengths, use_state, dtype):
    case = make_case(
        rng, cell, num_layers, **sizes, dtype=dtype, use_lengths=use_lengths, use_state=use_state
    )
    compare(
        cell,
        num_layers,
        case,
        dtype,
        run_core(cell, num_layers, case, dtype),
        run_reference(cell, num_layers, case),
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_core_bias_false(rng, small, cell, num_layers, dtype):
    case = make_case(
        rng, cell, num_layers, **small, dtype=dtype, use_lengths=True, use_state=True, bias=False
    )
    layer = make_layer(cell, small["D"], small["H"], num_layers, bias=False, dtype=dtype)
    names = set(layer.parameters())
    assert names == set(ref.param_names(num_layers, bias=False, cell=cell))
    got = run_core(cell, num_layers, case, dtype, bias=False, layer=layer)
    assert not any(k.startswith("bias") for k in got[3])
    compare(cell, num_layers, case, dtype, got, run_reference(cell, num_layers, case))


def _subclass_layer(cell, D, H, L, dtype):
    if ref.has_cell_state(cell):
        return nn.LSTM(D, H, num_layers=L, dtype=dtype)
    if cell == "gru":
        return nn.GRU(D, H, num_layers=L, dtype=dtype)
    return nn.RNN(D, H, num_layers=L, nonlinearity=cell.split("_")[1], dtype=dtype)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_subclasses(rng, small, cell):
    """nn.LSTM / nn.GRU / nn.RNN(nonlinearity) are Recurrent with the right cell
    and compute that cell.  (The default dtype is deliberately not pinned here.)"""
    L = 2
    layer = _subclass_layer(cell, small["D"], small["H"], L, np.float64)
    assert isinstance(layer, nn.Recurrent)
    params = layer.parameters()
    assert list(params) == ref.param_names(L), "PyTorch names in PyTorch order"
    G = ref.num_gates(cell)
    for k in range(L):
        D_k = small["D"] if k == 0 else small["H"]
        assert params[f"weight_ih_l{k}"].shape == (G * small["H"], D_k)
        assert params[f"weight_hh_l{k}"].shape == (G * small["H"], small["H"])
        assert params[f"bias_ih_l{k}"].shape == (G * small["H"],)
        assert params[f"bias_hh_l{k}"].shape == (G * small["H"],)
    assert all(p.dtype == np.float64 for p in params.values())
    case = make_case(rng, cell, L, **small, dtype=np.float64, use_lengths=True, use_state=True)
    compare(
        cell,
        L,
        case,
        np.float64,
        run_core(cell, L, case, np.float64, layer=layer),
        run_reference(cell, L, case),
    )


@pytest.mark.parametrize("cell", CELLS)
def test_backward_with_partial_upstream(rng, small, cell):
    """dy=None or dstate=None mean zero upstream gradient."""
    L = 2
    case = make_case(rng, cell, L, **small, dtype=np.float64, use_lengths=True, use_state=True)
    layer = make_layer(cell, small["D"], small["H"], L)
    layer.set_parameters(case["params"])
    state = pack_state(cell, case["h0"], case["c0"], np.float64)
    for dy, dstate in [(case["Ry"], None), (None, (case["Rh"], case["Rc"]))]:
        layer.forward(case["x"], state=state, lengths=case["lengths"])
        grads = layer.backward(
            dy, dstate=None if dstate is None else pack_state(cell, *dstate, np.float64)
        )
        _, _, _, cache = ref.forward(
            case["params"], case["x"], cell, L, case["h0"], case["c0"], case["lengths"]
        )
        grads_r = ref.backward(
            case["params"],
            cache,
            dy=dy,
            dhT=None if dstate is None else dstate[0],
            dcT=None if dstate is None else dstate[1],
        )
        for name in grads_r:
            err = rel_err(grads[name], grads_r[name])
            assert err <= TOL[np.float64], f"d{name}: {err:.2e}"


@pytest.mark.parametrize("cell", CELLS)
def test_backward_uses_last_forward(rng, small, cell):
    case1 = make_case(rng, cell, 1, **small, dtype=np.float64, use_lengths=False, use_state=True)
    case2 = make_case(rng, cell, 1, **small, dtype=np.float64, use_lengths=True, use_state=True)
    case2["params"] = case1["params"]
    layer = make_layer(cell, small["D"], small["H"], 1)
    layer.set_parameters(case1["params"])
    layer.forward(case1["x"], state=pack_state(cell, case1["h0"], case1["c0"], np.float64))
    got = run_core(cell, 1, case2, np.float64, layer=layer)  # second forward + backward
    compare(cell, 1, case2, np.float64, got, run_reference(cell, 1, case2))


@pytest.mark.parametrize("cell", CELLS)
def test_weights_changed_in_place_between_forwards_are_used(rng, small, cell):
    """The core skips repacking the weights when a forward sees the parameters it packed last;
    a change in place (one element of one tensor), or a backward in between, must repack."""
    case = make_case(rng, cell, 2, **small, dtype=np.float64, use_lengths=True, use_state=True)
    layer = make_layer(cell, small["D"], small["H"], 2)
    layer.set_parameters(case["params"])
    state = pack_state(cell, case["h0"], case["c0"], np.float64)
    y1, _ = layer.forward(case["x"], state=state, lengths=case["lengths"], inference=True)
    for name in layer.parameters():
        off, shape = layer._layout[name]
        layer.flat_params[off + int(np.prod(shape)) - 1] += 0.25  # the last element, in place
        changed = {k: v.copy() for k, v in case["params"].items()}
        changed[name].reshape(-1)[-1] += 0.25
        y2, _ = layer.forward(case["x"], state=state, lengths=case["lengths"], inference=True)
        want = run_reference(cell, 2, dict(case, params=changed))[0]
        assert rel_err(y2, want) <= TOL[np.float64], name
        case["params"] = changed
    # a backward packs W_hh untransposed: the next forward must pack again
    layer.forward(case["x"], state=state, lengths=case["lengths"])
    layer.backward(case["Ry"])
    y3, _ = layer.forward(case["x"], state=state, lengths=case["lengths"], inference=True)
    np.testing.assert_array_equal(y3, y2)
    assert not np.array_equal(y1, y2)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_non_contiguous_inputs(rng, small, cell):
    """Arrays with arbitrary strides (views, Fortran order) are read correctly."""
    L = 2
    case = make_case(rng, cell, L, **small, dtype=np.float64, use_lengths=True, use_state=True)
    layer = make_layer(cell, small["D"], small["H"], L)
    layer.set_parameters(
        {
            k: np.asfortranarray(v) if v.ndim == 2 else v[::-1].copy()[::-1]
            for k, v in case["params"].items()
        }
    )
    B, T, D = case["x"].shape
    x_big = np.zeros((B, 2 * T, D + 1))
    x_big[:, ::2, 1:] = case["x"]
    x_view = x_big[:, ::2, 1:]  # strided view of the same values
    assert not x_view.flags.c_contiguous
    h0_f = np.asfortranarray(case["h0"])
    state = (h0_f, np.asfortranarray(case["c0"])) if cell == "lstm" else h0_f
    y, state = layer.forward(x_view, state=state, lengths=case["lengths"])
    grads = layer.backward(
        np.asfortranarray(case["Ry"]), dstate=pack_state(cell, case["Rh"], case["Rc"], np.float64)
    )
    hT, cT = unpack_state(cell, state)
    compare(cell, L, case, np.float64, (y, hT, cT, grads), run_reference(cell, L, case))


def test_parameters_are_copies(small):
    layer = make_layer("gru", small["D"], small["H"], 2)
    params = layer.parameters()
    before = {k: v.copy() for k, v in params.items()}
    for v in params.values():
        v[...] = 123.0
    after = layer.parameters()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=DTYPE_IDS.get)
def test_set_parameters_roundtrip(rng, small, dtype):
    layer = make_layer("lstm", small["D"], small["H"], 2, dtype=dtype)
    params = {
        k: v.astype(dtype)
        for k, v in ref.init_params(rng, "lstm", small["D"], small["H"], 2).items()
    }
    layer.set_parameters(params)
    got = layer.parameters()
    assert list(got) == ref.param_names(2)
    for k, v in params.items():
        assert got[k].dtype == dtype, k
        np.testing.assert_array_equal(got[k], v)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.fixture(params=CELLS)
def ready_layer(request, rng, small):
    """A 2-layer layer of each cell plus valid inputs for it."""
    cell = request.param
    B, T, D, H, L = small["B"], small["T"], small["D"], small["H"], 2
    layer = make_layer(cell, D, H, L)
    layer.set_parameters(ref.init_params(rng, cell, D, H, L))
    x = rng.standard_normal((B, T, D))
    h0 = rng.standard_normal((L, B, H))
    return dict(cell=cell, layer=layer, x=x, h0=h0, B=B, T=T, D=D, H=H, L=L)


def _state(s, h, c=None):
    if ref.has_cell_state(s["cell"]):
        return (h, s["h0"] if c is None else c)
    return h


def test_valid_call_works(ready_layer):
    """Sanity check for the error tests below: the unmodified inputs are accepted."""
    s = ready_layer
    y, _ = s["layer"].forward(s["x"], state=_state(s, s["h0"]), lengths=np.array([5, 2, 4]))
    assert y.shape == (s["B"], s["T"], s["H"])
    s["layer"].backward(np.ones_like(y))


def test_x_must_be_3d(ready_layer):
    s = ready_layer
    with pytest.raises(ValueError):
        s["layer"].forward(s["x"][0])
    with pytest.raises(ValueError):
        s["layer"].forward(s["x"][None])


def test_x_wrong_input_size(ready_layer):
    s = ready_layer
    with pytest.raises(ValueError):
        s["layer"].forward(np.zeros((s["B"], s["T"], s["D"] + 1)))


def test_x_complex_dtype(ready_layer):
    s = ready_layer
    with pytest.raises(ValueError):
        s["layer"].forward(s["x"].astype(np.complex128))


@pytest.mark.parametrize("bad", ["layers", "batch", "hidden", "2d"])
def test_state_wrong_shape(ready_layer, bad):
    s = ready_layer
    L, B, H = s["L"], s["B"], s["H"]
    shape = {
        "layers": (L + 1, B, H),
        "batch": (L, B + 1, H),
        "hidden": (L, B, H - 1),
        "2d": (B, H),
    }[bad]
    with pytest.raises(ValueError):
        s["layer"].forward(s["x"], state=_state(s, np.zeros(shape)))
    if ref.has_cell_state(s["cell"]):  # the cell state is checked too
        with pytest.raises(ValueError):
            s["layer"].forward(s["x"], state=(s["h0"], np.zeros(shape)))


@pytest.mark.parametrize(
    "lengths",
    [[5, 0, 4], [5, 6, 4], [5, -1, 4], [5, 2], [5, 2, 4, 3]],
    ids=["zero", "too_long", "negative", "too_few", "too_many"],
)
def test_lengths_invalid(ready_layer, lengths):
    s = ready_layer
    with pytest.raises(ValueError):
        s["layer"].forward(s["x"], lengths=np.array(lengths))


def test_backward_before_forward(ready_layer):
    s = ready_layer
    with pytest.raises((RuntimeError, ValueError)):
        s["layer"].backward(np.zeros((s["B"], s["T"], s["H"])))


def test_backward_dy_wrong_shape(ready_layer):
    s = ready_layer
    s["layer"].forward(s["x"])
    with pytest.raises(ValueError):
        s["layer"].backward(np.zeros((s["B"], s["T"], s["H"] + 1)))


def test_set_parameters_wrong_shape_names_parameter(ready_layer):
    s = ready_layer
    params = s["layer"].parameters()
    params["weight_hh_l1"] = np.zeros((params["weight_hh_l1"].shape[0], s["H"] + 1))
    with pytest.raises(ValueError, match="weight_hh_l1"):
        s["layer"].set_parameters(params)


def test_set_parameters_missing_names_parameter(ready_layer):
    s = ready_layer
    params = s["layer"].parameters()
    del params["bias_ih_l0"]
    with pytest.raises(ValueError, match="bias_ih_l0"):
        s["layer"].set_parameters(params)


def test_unknown_cell():
    with pytest.raises(ValueError):
        nn.Recurrent(4, 7, cell="transformer")


def test_layer_pickle_round_trip_gives_identical_outputs():
    """An unpickled layer (whose arrays carry an equal but distinct dtype object) runs and
    reproduces the original's outputs exactly."""
    import pickle

    layer = nn.LSTM(4, 7, num_layers=2, dtype=np.float32, random_state=3)
    x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    y, (h, c) = layer.forward(x)
    clone = pickle.loads(pickle.dumps(layer))
    y2, (h2, c2) = clone.forward(x)
    assert np.array_equal(y, y2) and np.array_equal(h, h2) and np.array_equal(c, c2)


@pytest.mark.parametrize("cell", CELLS)
def test_threads_split_the_batch_without_changing_results(cell):
    """A batch large enough is cut into two parts (chosen from its size only); one or two
    threads then give bit-identical outputs and gradients, with variable lengths too."""
    rng = np.random.default_rng(11)
    B, T, D, H = 24, 30, 5, 40
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=B)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    results = []
    for threads in (1, 2):
        layer = nn.Recurrent(D, H, num_layers=2, cell=cell, random_state=0)
        layer._core.num_threads = threads
        y, state = layer.forward(x, lengths=lengths)
        assert layer._core.num_parts == 2
        results.append((y, layer.backward(dy)))
    (y1, g1), (y2, g2) = results
    assert np.array_equal(y1, y2)
    for k in g1:
        assert np.array_equal(g1[k], g2[k]), k


# The cells whose inference runs the fused step (stack.cpp, forward_layer_fused; the LSTM
# family without peepholes), as the core reports them; training's forward runs the general step.
FUSED_CELLS = tuple(c for c in ref.CELLS if _core.cell_info(c)["fused_inference"])


def test_the_fused_cells_are_the_lstm_family_without_peepholes():
    assert set(FUSED_CELLS) == {
        "lstm",
        "lstm_1997",
        "cifg",
        "no_input_gate",
        "no_output_gate",
        "no_input_activation",
        "no_output_activation",
    }


FUSED_SIZES = {  # B, T, D, H, num_layers
    "small": (3, 5, 4, 7, 1),
    "small-2layers": (3, 5, 4, 7, 2),
    "two-parts-H256": (64, 4, 6, 256, 1),
    "one-part-H512": (48, 3, 5, 512, 2),
    "one-part-H300": (40, 3, 5, 300, 1),
}


@pytest.mark.parametrize("use_lengths", [True, False], ids=["lengths", "full"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("size", list(FUSED_SIZES))
@pytest.mark.parametrize("cell", FUSED_CELLS)
def test_fused_inference_step_equals_training_forward(rng, cell, size, dtype, use_lengths):
    """The fused inference step (the step's product added to the hoisted input projection in
    place, the cell storing no activations; at H = 512 also the kernel's L2 prefetch) gives the
    training forward's outputs and final states bit for bit, at 1, 2 and 3 threads, and the
    NumPy reference within TOL. H = 256 on 64 rows: two parts of 32 rows; H = 512 on 48 rows:
    one part, whose steps 2 and 3 threads split by hidden units; H = 300: one part, but H is
    not a whole number of panels, so split steps leave it to the general step. Without
    lengths (every sequence runs all T steps) the last layer writes h_t straight into y, also
    with two parts (rows dealt round-robin)."""
    B, T, D, H, L = FUSED_SIZES[size]
    case = make_case(rng, cell, L, B, T, D, H, dtype, use_lengths=use_lengths, use_state=True)
    want = ref.forward(case["params"], case["x"], cell, L, case["h0"], case["c0"], case["lengths"])
    x, lengths = case["x"].astype(dtype), case["lengths"]
    state = pack_state(cell, case["h0"], case["c0"], dtype)
    first = None
    for threads in (1, 2, 3):
        layer = make_layer(cell, D, H, L, dtype=dtype)
        layer.set_parameters({k: v.astype(dtype) for k, v in case["params"].items()})
        layer._core.num_threads = threads
        y_inf, (h_inf, c_inf) = layer.forward(x, state=state, lengths=lengths, inference=True)
        parts_inf = layer._core.num_parts
        y, (h, c) = layer.forward(x, state=state, lengths=lengths)
        if size == "two-parts-H256":
            assert parts_inf == 2
        if size.startswith("one-part"):
            assert parts_inf == 1 and layer._core.column_blocks[0] > 1
        got = (y_inf, h_inf, c_inf)
        for a, b in zip(got, (y, h, c)):
            assert np.array_equal(a, b), f"threads={threads}: inference != training forward"
        if first is None:
            first = got
            for a, b in zip(got, want[:3]):
                assert rel_err(a, b) <= TOL[dtype]
        for a, b in zip(got, first):
            assert np.array_equal(a, b), f"threads={threads}: differs from 1 thread"
