"""precision="bfloat16": the recurrent products with bfloat16 operands and float32 sums.

Held to tests/reference.py run inside ``ref.bfloat16()`` (the same products' operands rounded
to bfloat16, everything else exact). The core sums in another order (AMX: pairs of k inside
tiles of 32; avx512_bf16: one vdpbf16ps per pair of k; emulated: one FMA per k) and in float32,
and an operand that lies near a rounding
boundary of bfloat16 can round the other way, which moves that product by up to 2^-8 of
itself: hence a tolerance of 2e-3 (scale-aware, conftest.rel_err), where the distance to the
float32 reference is ~3e-3 to 1e-2 and the float32 core's 1e-5. Every kernel (amx,
avx512_bf16, emulated) and kernel set this machine runs is checked, each in a fresh interpreter
(LSTM_NATIVE_BF16_KERNEL / LSTM_NATIVE_MAX_ISA), against the reference and for bit-identical
results at any thread count.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPRESENTATIVE_CELLS, rel_err
from test_core import make_case, pack_state, run_core, run_reference, unpack_state

from lstm_native import LSTMClassifier, LSTMRegressor, _core, build_info, load, nn

import reference as ref
from reference import CELLS

TOL = 2e-3
INFO = build_info()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# sizes past one tile in every direction: 37 rows (3 row tiles), K = 45/50 (2 k tiles, a
# ragged one), G*H = 200 columns (13 column tiles)
TILES = dict(B=37, T=4, D=45, H=50)


def bf16_layer(cell, D, H, L, bias=True):
    return nn.Recurrent(D, H, num_layers=L, cell=cell, bias=bias, precision="bfloat16")


def errors(got, want):
    y, hT, cT, g = got
    y_r, hT_r, cT_r, g_r = want
    e = {"y": rel_err(y, y_r), "hT": rel_err(hT, hT_r)}
    if cT_r is not None:
        e["cT"] = rel_err(cT, cT_r)
    e.update({"d" + k: rel_err(g[k], g_r[k]) for k in g_r})
    return e


def bf16_reference(cell, L, case):
    with ref.bfloat16():
        return run_reference(cell, L, case)


def inference_errors(cell, L, case, sizes):
    """forward(inference=True) of a bf16 layer with the case's parameters, state and lengths:
    its y, and the relative errors of y, h_T (and c_T) against the bf16 reference."""
    layer = bf16_layer(cell, sizes["D"], sizes["H"], L)
    layer.set_parameters(case["params"])
    state = pack_state(cell, case["h0"], case["c0"], np.float32)
    y, st = layer.forward(case["x"], state=state, lengths=case["lengths"], inference=True)
    y_r, hT_r, cT_r, _ = bf16_reference(cell, L, case)
    hT, cT = unpack_state(cell, st)
    e = {"y": rel_err(y, y_r), "hT": rel_err(hT, hT_r)}
    if cT_r is not None:
        e["cT"] = rel_err(cT, cT_r)
    return y, e


@pytest.mark.parametrize("shape", ["small", "tiles"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_bf16_matches_the_bf16_reference(rng, small, cell, num_layers, use_lengths, shape):
    sizes = small if shape == "small" else TILES
    case = make_case(
        rng, cell, num_layers, **sizes, dtype=np.float32, use_lengths=use_lengths, use_state=True
    )
    layer = bf16_layer(cell, sizes["D"], sizes["H"], num_layers)
    got = run_core(cell, num_layers, case, np.float32, layer=layer)
    e = errors(got, bf16_reference(cell, num_layers, case))
    bad = {k: f"{v:.2e}" for k, v in e.items() if not v <= TOL}
    assert not bad, f"{cell} L={num_layers}: rel err > {TOL}: {bad}"
    if case["lengths"] is not None:
        for b, n in enumerate(case["lengths"]):
            assert np.all(got[0][b, n:] == 0) and np.all(got[3]["x"][b, n:] == 0)


# Inference (forward(inference=True)) takes a path of its own with the AMX kernel for the LSTM
# family (stack.cpp: the fused step, the gates accumulated in place, h in bf16 from the cell):
# shapes with H a multiple of 16 (whole gate tiles) and not (ragged), one and several row tiles,
# with states and two layers, with lengths and without (then the last layer's h_t goes
# straight into y). With whole gate tiles the cell runs as the product's epilogue, 16 units at a
# time (bf16::tile_multiply_units): H = 16 with few k tiles has more rows than k tiles to hide
# them under (several rows after each); H = 384 has 24 groups and weights past 1 MiB.
@pytest.mark.parametrize("use_lengths", [True, False], ids=["lengths", "full"])
@pytest.mark.parametrize(
    "sizes",
    [
        TILES,
        dict(B=21, T=5, D=7, H=64),
        dict(B=40, T=3, D=40, H=48),
        dict(B=37, T=3, D=5, H=16),
        dict(B=19, T=3, D=64, H=384),
    ],
)
@pytest.mark.parametrize("cell", CELLS)
def test_bf16_inference_matches_the_bf16_reference(rng, cell, sizes, use_lengths):
    case = make_case(
        rng, cell, 2, **sizes, dtype=np.float32, use_lengths=use_lengths, use_state=True
    )
    y, e = inference_errors(cell, 2, case, sizes)
    bad = {k: f"{v:.2e}" for k, v in e.items() if not v <= TOL}
    assert not bad, f"{cell}: rel err > {TOL}: {bad}"
    for b, n in enumerate(case["lengths"] if use_lengths else []):
        assert np.all(y[b, n:] == 0)


@pytest.mark.parametrize("cell", ["lstm", "cifg", "no_output_gate"])
def test_bf16_inference_with_saturated_gates_matches_the_reference(rng, cell):
    """The fused step's σ clamps its argument at -18 rather than switching to e^x below -9
    (lanes::fast_sigmoid): gates driven far past that both ways (two biases of 10-30 of either
    sign: pre-activations up to ±60, as the saturated gates of a trained network) still give the
    reference's y, h and c. Without the clamp the rational approximation gives σ(-50) = -0.93."""
    sizes = dict(B=21, T=5, D=7, H=64)
    case = make_case(rng, cell, 1, **sizes, dtype=np.float32, use_lengths=False, use_state=True)
    for k, v in case["params"].items():
        if k.startswith("bias"):
            v[...] = rng.uniform(10, 30, v.shape) * rng.choice([-1, 1], v.shape)
    _, e = inference_errors(cell, 1, case, sizes)
    assert set(e) == {"y", "hT", "cT"} and all(v <= TOL for v in e.values()), e


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_bf16_is_taken_and_close_to_float32(rng, cell):
    """bfloat16 is not float32 in disguise: far closer to the bf16 reference than to the
    float32 one, which it still follows to a few 1e-3."""
    case = make_case(rng, cell, 2, **TILES, dtype=np.float32, use_lengths=False, use_state=True)
    got = run_core(cell, 2, case, np.float32, layer=bf16_layer(cell, TILES["D"], TILES["H"], 2))
    to_bf16 = errors(got, bf16_reference(cell, 2, case))
    to_f32 = errors(got, run_reference(cell, 2, case))
    for k in ("y", "dweight_hh_l0", "dweight_ih_l0", "dx"):
        assert 1e-4 < to_f32[k] < 3e-2, (k, to_f32[k])
        # (gradients: a rounding flipped early in the forward moves many later products)
        assert to_bf16[k] < to_f32[k] / 3, (k, to_bf16[k], to_f32[k])
    f32 = run_core(cell, 2, case, np.float32)
    assert rel_err(f32[0], got[0]) > 1e-4  # the float32 layer is another computation


def test_weight_ch_products_stay_float32(rng):
    """Cells with a W_ch product (ungated, cell_as_input): W_ih and W_hh in bf16 only (the
    reference rounds just those), which test_bf16_matches_the_bf16_reference checks; here
    that the layer says so."""
    layer = bf16_layer("ungated", 4, 7, 1)
    assert layer.precision == "bfloat16" and layer._core.precision == "bfloat16"


# -- arguments, pickling, estimators -----------------------------------------------------------


def test_bad_precision_and_float64_are_refused():
    with pytest.raises(ValueError, match="precision"):
        nn.LSTM(4, 7, precision="float16")
    with pytest.raises(ValueError, match="float32"):
        nn.LSTM(4, 7, dtype=np.float64, precision="bfloat16")
    with pytest.raises(ValueError, match="float32"):
        _core.Recurrent64("lstm", 4, 7, precision="bfloat16")
    with pytest.raises(ValueError, match="precision"):
        _core.ModelConfig("lstm", 4, 7, precision="half")
    cfg = _core.ModelConfig("lstm", 4, 7, precision="bfloat16")
    assert cfg.precision == "bfloat16" and cfg.to_dict()["precision"] == "bfloat16"
    assert _core.ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg != _core.ModelConfig("lstm", 4, 7)
    with pytest.raises(ValueError, match="float32"):
        _core.Model64(cfg)
    X = np.zeros((8, 5, 2), np.float32)
    with pytest.raises(ValueError, match="float32"):
        LSTMRegressor(precision="bfloat16", dtype="float64", max_iter=1).fit(X, np.zeros(8))
    with pytest.raises(ValueError, match="precision"):
        LSTMRegressor(precision="bf16", max_iter=1).fit(X, np.zeros(8))


def test_layer_pickle_and_repr_keep_the_precision(rng):
    layer = nn.GRU(4, 7, num_layers=2, precision="bfloat16", random_state=0)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    y, _ = layer.forward(x)
    copy = pickle.loads(pickle.dumps(layer))
    assert copy.precision == "bfloat16" and "precision='bfloat16'" in repr(copy)
    np.testing.assert_array_equal(copy.forward(x)[0], y)
    assert "precision" not in repr(nn.GRU(4, 7))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cls", [LSTMRegressor, LSTMClassifier])
def test_estimator_round_trips(tmp_path, rng, cls):
    X = rng.standard_normal((40, 6, 3)).astype(np.float32)
    y = X[:, :, 0].sum(1) > 0 if cls is LSTMClassifier else X[:, :, 0].sum(1)
    kw = dict(hidden_size=9, max_iter=3, random_state=0)
    est = cls(precision="bfloat16", **kw).fit(X, y)
    assert est.get_params()["precision"] == "bfloat16"
    assert est.network_config_["precision"] == "bfloat16"
    from sklearn.base import clone

    assert clone(est).precision == "bfloat16"
    pred = est.predict(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), pred)
    est.save(tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert back.precision == "bfloat16" and back.network_config_["precision"] == "bfloat16"
    np.testing.assert_array_equal(back.predict(X), pred)
    # the same fit in float32 is another (close) computation
    f32 = cls(**kw).fit(X, y)
    if cls is LSTMRegressor:
        assert not np.array_equal(f32.predict(X), pred)
        assert np.abs(f32.predict(X) - pred).max() < 0.05 * np.abs(pred).max()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bf16_streams_match_the_sequence_forward(rng):
    """A stream (one step at a time) runs the same bf16 products as a whole-sequence predict."""
    X = rng.standard_normal((5, 7, 3)).astype(np.float32)
    est = LSTMRegressor(
        hidden_size=11, max_iter=2, random_state=0, precision="bfloat16", return_sequences=True
    )
    est.fit(X, X[:, :, 0])
    want = est.predict(X)
    s = est.stream(batch=5)
    got = np.stack([s.step(X[:, t]) for t in range(7)], axis=1).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


# -- kernels and kernel sets --------------------------------------------------------------------


KERNELS = ("amx", "avx512_bf16", "emulated")


def test_build_info_reports_bf16():
    assert INFO["bf16_kernel"] in KERNELS
    assert isinstance(INFO["cpu_amx_bf16"], bool) and isinstance(INFO["cpu_avx512_bf16"], bool)
    if INFO["bf16_kernel"] == "amx":
        assert INFO["isa"] in ("avx512", "native") and INFO["cpu_amx_bf16"]
    if INFO["bf16_kernel"] == "avx512_bf16":
        assert INFO["isa"] in ("avx512", "native") and INFO["cpu_avx512_bf16"]
        assert not INFO["cpu_amx_bf16"] or os.environ.get("LSTM_NATIVE_BF16_KERNEL")
    flags = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    if re.search(r"\bamx_bf16\b", flags) and INFO["isa"] == "avx512":
        if not os.environ.get("LSTM_NATIVE_BF16_KERNEL"):
            assert INFO["bf16_kernel"] == "amx"


def _run(code: str, env_extra: dict) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("LSTM_NATIVE_MAX_ISA", None)
    env.pop("LSTM_NATIVE_BF16_KERNEL", None)
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=ROOT, env=env
    )


def _runnable():
    """The bf16 kernels this machine runs with its default kernel set, the default first (a
    set with the amx kernel also has the avx512_bf16 one)."""
    kernels = {"amx": KERNELS, "avx512_bf16": KERNELS[1:]}.get(INFO["bf16_kernel"], KERNELS[2:])
    return [k for k in kernels if k != "avx512_bf16" or INFO["cpu_avx512_bf16"]]


def _paths():
    """(environment, expected kernel set, expected bf16 kernel) for every path but the default."""
    out = [({"LSTM_NATIVE_BF16_KERNEL": k}, INFO["isa"], k) for k in _runnable()[1:]]
    for isa in ("sse2", "avx2"):
        if isa in INFO["isa_supported"] and isa != INFO["isa"]:
            out.append(({"LSTM_NATIVE_MAX_ISA": isa}, isa, "emulated"))
    return out


# The cells the other kernel paths are tested with (conftest.REPRESENTATIVE_CELLS): the kernels
# are the same code for every cell, and a cell's pointwise math does not depend on the bf16
# kernel (the kernel set's own float32 tests in test_isa.py cover every cell).
PATH_CELLS = REPRESENTATIVE_CELLS


@pytest.mark.parametrize("env, isa, kernel", _paths(), ids=lambda v: str(v))
def test_every_bf16_path_matches_the_reference(env, isa, kernel):
    """Forward, gradients and inference against the bf16 reference, and the thread-count
    bit-identity of tests/test_threads.py, with each kernel and kernel set: for the cells of
    PATH_CELLS (the default path runs every cell in this process)."""
    code = (
        "import sys, pytest, lstm_native\n"
        "info = lstm_native.build_info()\n"
        f"assert (info['isa'], info['bf16_kernel']) == ({isa!r}, {kernel!r}), info\n"
        "opts = ['-q', '-x', '-p', 'no:randomly', '-p', 'no:cacheprovider',\n"
        f"        '--cells', {','.join(PATH_CELLS)!r}, '-k']\n"
        "rc = pytest.main(['tests/test_bf16.py', *opts, 'reference and not every_bf16_path'])\n"
        "rc = rc or pytest.main(['tests/test_threads.py', *opts, 'bf16 or bfloat16'])\n"
        "sys.exit(rc)\n"
    )
    proc = _run(code, env)
    tail = "\n".join(proc.stdout.splitlines()[-15:])
    assert proc.returncode == 0, f"{proc.stderr[-2000:]}\n{tail}"
    assert re.search(r"\d+ passed", tail) and "failed" not in tail, tail


@pytest.mark.parametrize("kernel", KERNELS)
def test_build_info_reports_the_forced_kernel(kernel):
    code = "import lstm_native; print(lstm_native.build_info()['bf16_kernel'])"
    proc = _run(code, {"LSTM_NATIVE_BF16_KERNEL": kernel.upper()})
    if kernel in _runnable():
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[-1] == kernel, proc.stdout
    else:  # a kernel this machine cannot run is refused, not silently replaced
        assert proc.returncode != 0
        assert f"LSTM_NATIVE_BF16_KERNEL='{kernel}' cannot run here" in proc.stderr, proc.stderr


def test_bad_kernel_setting_is_a_clear_error_at_import():
    proc = _run("import lstm_native", {"LSTM_NATIVE_BF16_KERNEL": "fast"})
    assert proc.returncode != 0
    assert "LSTM_NATIVE_BF16_KERNEL" in proc.stderr and "Segmentation" not in proc.stderr
    assert "'amx', 'avx512_bf16' or 'emulated'" in proc.stderr and "'fast'" in proc.stderr


@pytest.mark.skipif("avx2" not in INFO["isa_supported"], reason="needs the avx2 kernel set")
def test_a_capped_kernel_set_takes_emulated_and_refuses_a_forced_kernel():
    code = "import lstm_native; print(lstm_native.build_info()['bf16_kernel'])"
    proc = _run(code, {"LSTM_NATIVE_MAX_ISA": "avx2"})
    assert proc.returncode == 0 and proc.stdout.split()[-1] == "emulated", proc.stderr
    for kernel in ("amx", "avx512_bf16"):
        proc = _run(code, {"LSTM_NATIVE_MAX_ISA": "avx2", "LSTM_NATIVE_BF16_KERNEL": kernel})
        assert proc.returncode != 0 and "kernel set 'avx2'" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "pair",
    [(a, b) for i, a in enumerate(KERNELS) for b in KERNELS[i + 1 :]],
    ids=lambda p: "-".join(p),
)
def test_kernels_agree_closely(pair):
    """The kernels round the same operands; they differ only in the order of the float32 sums
    (and where that flips a later rounding)."""
    if not set(pair) <= set(_runnable()):
        pytest.skip(f"this machine runs {_runnable()}")
    code = (
        "import numpy as np, sys\n"
        "from lstm_native import nn\n"
        "rng = np.random.default_rng(5)\n"
        "x = rng.standard_normal((37, 9, 45)).astype(np.float32)\n"
        "layer = nn.LSTM(45, 50, num_layers=2, precision='bfloat16', random_state=3)\n"
        "y, _ = layer.forward(x)\n"
        "g = layer.backward(np.ones_like(y))\n"
        "np.save(sys.argv[1] if len(sys.argv) > 1 else 'out.npy', "
        "np.concatenate([y.ravel(), g['weight_hh_l0'].ravel(), g['x'].ravel()]))\n"
    )
    outs = []
    for env in ({"LSTM_NATIVE_BF16_KERNEL": k} for k in pair):
        path = os.path.join(ROOT, "build", f"bf16_{len(outs)}.npy")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        proc = _run(
            code.replace("sys.argv[1] if len(sys.argv) > 1 else 'out.npy'", repr(path)), env
        )
        assert proc.returncode == 0, proc.stderr
        outs.append(np.load(path))
        os.remove(path)
    a, b = outs
    assert not np.array_equal(a, b)  # two computations
    assert rel_err(a, b) < TOL


def test_from_torch_takes_the_precision():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rnn, head = torch.nn.LSTM(3, 7, batch_first=True), torch.nn.Linear(7, 1)
    est = LSTMRegressor.from_torch((rnn, head), precision="bfloat16")
    assert est.precision == "bfloat16" and est.network_config_["precision"] == "bfloat16"
    x = np.random.default_rng(0).standard_normal((4, 5, 3)).astype(np.float32)
    with torch.no_grad():
        want = head(rnn(torch.from_numpy(x))[0][:, -1]).numpy().ravel()
    got = est.predict(x)
    assert 1e-5 < np.abs(got - want).max() < 2e-2  # bf16 products: close, not float32-equal
