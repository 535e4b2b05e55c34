"""Threads change nothing but speed: the batch's parts and the column blocks of large steps are
chosen from the sizes alone, so outputs, gradients and whole fits are bit-identical at 1, 2, 3,
4 and 8 threads (8 on a 2-core machine: oversubscribed), for every cell, both dtypes and
precision "bfloat16" (float32 parameters), with ragged lengths and initial states. Each case
asserts (split_plan, num_parts, column_blocks) that the split it means to exercise happened."""

import warnings

import numpy as np
import pytest

from lstm_native import LSTMRegressor, _core, nn

from reference import CELLS

THREADS = (1, 2, 3, 4, 8)
# (dtype, precision)
DTYPES = ((np.float32, "float32"), (np.float64, "float32"), (np.float32, "bfloat16"))
DTYPE_IDS = ["f32", "f64", "bf16"]


def _large_h(cell):
    """The smallest H whose W_hh [G*H, H] exceeds the parts' L2 threshold (256 Ki elements,
    sizes.cpp): a batch under 64 rows then runs as one part with column-split steps."""
    g = _core.cell_info(cell)["gates"]
    return int(np.ceil(np.sqrt((1 << 18) / g))) + 1


def _run_all_threads(cell, dtype, B, T, D, H, L, seed):
    dtype, precision = dtype
    """forward (training, with lengths and states) + backward, and an inference forward, at
    each thread count; returns the results and the layer's split of the last call."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[: B // 2] = T  # enough rows still running late for row-split cells
    lengths[-1] = 1
    h0 = (rng.standard_normal((L, B, H)) * 0.5).astype(dtype)
    state = (h0, (rng.standard_normal((L, B, H)) * 0.5).astype(dtype))
    if not _core.cell_info(cell)["has_cell_state"]:
        state = h0
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    out, splits = [], set()
    for threads in THREADS:
        layer = nn.Recurrent(
            D, H, num_layers=L, cell=cell, dtype=dtype, random_state=seed, precision=precision
        )
        layer._core.num_threads = threads
        y_inf, s_inf = layer.forward(x, state=state, lengths=lengths, inference=True)
        y, s = layer.forward(x, state=state, lengths=lengths)
        g = layer.backward(dy, dstate=s)
        splits.add((layer._core.num_parts, layer._core.column_blocks))
        out.append((y_inf, s_inf, y, s, g))
    assert len(splits) == 1, splits  # the split does not depend on the threads
    return out, splits.pop()


def _assert_identical(results):
    def flat(r):
        y_inf, s_inf, y, s, g = r
        arrs = [y_inf, y]
        for st in (s_inf, s):
            arrs += list(st) if isinstance(st, tuple) else [st]
        return arrs + [g[k] for k in sorted(g)]

    first = flat(results[0])
    for threads, r in zip(THREADS[1:], results[1:]):
        for i, (a, b) in enumerate(zip(first, flat(r))):
            assert np.array_equal(a, b), f"threads={threads}, array {i}"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("cell", CELLS)
def test_parts_give_identical_results_at_any_thread_count(cell, dtype):
    precision = dtype[1]
    B, T, D, H, L = 48 if precision == "float32" else 128, 30, 5, 40, 2  # bf16: 32 rows a part
    results, (parts, cols) = _run_all_threads(cell, dtype, B, T, D, H, L, seed=1)
    assert parts == _core.split_plan(cell, D, H, L, B, T, precision=precision)["parts"] == 4
    assert cols == (1, 1)
    _assert_identical(results)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("B", [5, 40])  # 40: the cell runs in row blocks too
def test_column_split_steps_give_identical_results_at_any_thread_count(cell, dtype, B):
    T, D, L = 5, 6, 2
    H = _large_h(cell)  # not a multiple of 64: the last column block is ragged
    precision = dtype[1]
    if precision == "bfloat16":  # blocks of 128x the work (sizes.cpp): larger steps split
        H, B = 3 * H, max(B, 48)
    results, (parts, cols) = _run_all_threads(cell, dtype, B, T, D, H, L, seed=2)
    plan = _core.split_plan(cell, D, H, L, B, T, precision=precision)
    assert parts == plan["parts"] == 1
    assert cols == (plan["forward_column_blocks"], plan["backward_column_blocks"])
    assert cols[0] > 1 and cols[1] > 1
    _assert_identical(results)


@pytest.mark.parametrize("cell", ["lstm", "cifg", "no_output_gate"])
def test_bf16_unit_split_steps_give_identical_results_at_any_thread_count(cell):
    """bfloat16 inference with the AMX kernel splits a one-part run's steps by hidden units
    (stack.cpp, the fused step) when H is a multiple of 16: H = 768 on 48 rows, 2-3 blocks."""
    B, T, D, H, L = 48, 4, 6, 768, 2
    results, (parts, cols) = _run_all_threads(cell, (np.float32, "bfloat16"), B, T, D, H, L, 3)
    plan = _core.split_plan(cell, D, H, L, B, T, precision="bfloat16")
    assert parts == plan["parts"] == 1 and cols[0] == plan["forward_column_blocks"] > 1
    _assert_identical(results)


def test_split_plan_reports_the_inference_split():
    """An inference forward may take fewer parts than training (float32 with W_hh past a
    quarter of L2: at least 32 rows a part, so that its steps split by columns instead);
    split_plan(..., inference=True) says which, and the layer runs that."""
    B, T, D, H = 32, 20, 16, 256
    train = _core.split_plan("lstm", D, H, 1, B, T)
    infer = _core.split_plan("lstm", D, H, 1, B, T, inference=True)
    assert train["parts"] == 4 and infer["parts"] == 1 and infer["forward_column_blocks"] > 1
    layer = nn.LSTM(D, H, 1)
    layer._core.num_threads = 4
    x = np.zeros((B, T, D), np.float32)
    layer.forward(x, inference=True)
    assert layer._core.num_parts == infer["parts"]
    assert layer._core.column_blocks[0] == infer["forward_column_blocks"]
    layer.forward(x)
    assert layer._core.num_parts == train["parts"]


def test_split_plan():
    """Parts: a power of two, at least 8 rows each (64 once W_hh no longer fits a core's L2),
    at most 32; column blocks only for one-part runs with large steps."""
    plan = lambda B, H, cell="lstm": _core.split_plan(cell, 64, H, 1, B, 50)
    assert plan(64, 128)["parts"] == 8
    assert plan(64, 256)["parts"] == 8
    assert plan(24, 256)["parts"] == 2
    assert plan(4096, 64)["parts"] == 32
    assert plan(7, 64) == {"parts": 1, "forward_column_blocks": 1, "backward_column_blocks": 1}
    big = plan(64, 512)
    assert big["parts"] == 1 and big["forward_column_blocks"] > 1
    assert big["backward_column_blocks"] > 1
    assert plan(128, 512)["parts"] == 2 and plan(128, 512)["forward_column_blocks"] == 1
    assert plan(8, 256)["forward_column_blocks"] > 1
    for B in range(1, 300, 7):
        p = plan(B, 96)["parts"]
        assert p & (p - 1) == 0 and (p == 1 or B // p >= 8)


def _fit(n_jobs, dtype, hidden, batch_size, X, y):
    dtype, precision = ("float32", "bfloat16") if dtype == "bfloat16" else (dtype, "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LSTMRegressor(
            hidden_size=hidden,
            max_iter=2,
            batch_size=batch_size,
            random_state=0,
            n_jobs=n_jobs,
            dtype=dtype,
            precision=precision,
            max_grad_norm=None,
        ).fit(X, y)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("hidden,batch_size", [(48, 64), (260, 8)], ids=["parts", "columns"])
def test_fits_are_identical_at_any_n_jobs(dtype, hidden, batch_size):
    rng = np.random.default_rng(3)
    X = [rng.standard_normal((int(t), 3)) for t in rng.integers(20, 41, size=80)]  # ragged
    y = np.array([s[:, 0].mean() for s in X])
    plan = _core.split_plan("lstm", 3, hidden, 1, batch_size, 40)
    if hidden == 48:
        assert plan["parts"] == 8
    else:
        assert plan["parts"] == 1 and plan["forward_column_blocks"] > 1
    fits = [_fit(n, dtype, hidden, batch_size, X, y) for n in (*THREADS, None)]
    preds = [f.predict(X) for f in fits]
    for f, p in zip(fits[1:], preds[1:]):
        assert np.array_equal(fits[0].params_, f.params_)
        assert np.array_equal(preds[0], p)


def test_global_thread_setting_above_the_core_count():
    """set_num_threads beyond the hardware (oversubscription) runs and changes nothing."""
    x = np.random.default_rng(4).standard_normal((64, 20, 8)).astype(np.float32)
    layer = nn.LSTM(8, 48, random_state=0)
    old = _core.get_num_threads()
    try:
        _core.set_num_threads(1)
        y1, _ = layer.forward(x, inference=True)
        _core.set_num_threads(16)
        assert _core.get_num_threads() == 16
        y16, _ = layer.forward(x, inference=True)
    finally:
        _core.set_num_threads(0)
    assert layer._core.num_parts == 8
    assert np.array_equal(y1, y16)
    assert old >= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("B, H", [(64, 129), (3, 7), (40, 160)])
def test_inference_parts_give_the_training_forward_bit_for_bit(B, H, dtype):
    """A float inference with W_hh over a quarter of the parts' L2 threshold (LSTM: H > 128)
    runs in parts of at least 32 rows (sizes.cpp), fewer than a training forward's: its outputs
    and final states are still those of the training forward, bit for bit, at any thread
    count (a part's rows are computed the same way whatever the part)."""
    T, D = 5, 4
    rng = np.random.default_rng(7)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    state = tuple((rng.standard_normal((1, B, H)) * 0.5).astype(dtype) for _ in range(2))
    first = None
    for threads in THREADS:
        layer = nn.Recurrent(D, H, cell="lstm", dtype=dtype, random_state=3)
        layer._core.num_threads = threads
        y_inf, s_inf = layer.forward(x, state=state, lengths=lengths, inference=True)
        parts_inf = layer._core.num_parts
        y, s = layer.forward(x, state=state, lengths=lengths)
        parts_train = layer._core.num_parts
        assert parts_train == _core.split_plan("lstm", D, H, 1, B, T)["parts"]
        if (B, H) == (64, 129):
            assert (parts_inf, parts_train) == (2, 8)
        assert np.array_equal(y_inf, y)
        for a, b in zip(s_inf, s):
            assert np.array_equal(a, b)
        if first is None:
            first = y_inf
        assert np.array_equal(first, y_inf), f"threads={threads}"
