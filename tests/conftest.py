"""Shared fixtures and helpers for the lstm_native tests."""

import os
import sys

import numpy as np
import pytest

# Make `import reference` work from every test module, however pytest is invoked.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Odd sizes, so that no dimension can be confused with another.
SMALL = dict(B=3, T=5, D=4, H=7)
LARGE = dict(B=16, T=40, D=13, H=33)


def rel_err(a, b):
    """Scale-aware relative error of `a` against the reference `b`.

        rel_err(a, b) = max|a - b| / max(max|b|, 1)

    i.e. the largest absolute deviation, measured relative to the largest
    reference entry, with an absolute floor of 1 so that tensors whose entries
    are all tiny are compared in absolute terms (a 1e-12 deviation of a 1e-9
    entry is rounding noise, not a bug).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != reference shape {b.shape}"
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1.0))


@pytest.fixture
def rng():
    """A fresh generator with a fixed seed for each test."""
    return np.random.default_rng(1234)


@pytest.fixture(params=[SMALL, LARGE], ids=["small", "large"])
def sizes(request):
    return dict(request.param)


@pytest.fixture
def small():
    return dict(SMALL)


# One of each way a cell uses the core's code: the fused inference step with 4 and 3 gate
# blocks, the general step with cell parameters, GRU's separate candidate product, a one-block
# RNN, and a cell with a cell-state product. The runs that repeat whole test files (the bf16
# kernel paths in test_bf16.py, the sanitizer's heaviest tests in scripts/sanitize.sh) take
# these cells; every cell runs in the main suite.
REPRESENTATIVE_CELLS = ("lstm", "cifg", "lstm_peephole", "gru", "rnn_tanh", "cell_as_input")


def pytest_addoption(parser):
    parser.addoption(
        "--cells",
        default=None,
        help="comma-separated cell names: run only these cells' cases of tests parametrized by "
        "`cell` (the kernel-path reruns in test_bf16.py take REPRESENTATIVE_CELLS)",
    )


def pytest_collection_modifyitems(config, items):
    cells = config.getoption("--cells")
    if not cells:
        return
    keep = set(cells.split(","))
    selected, deselected = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (deselected if "cell" in params and params["cell"] not in keep else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
