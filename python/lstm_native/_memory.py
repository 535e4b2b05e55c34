"""Memory guard: estimate what a call will allocate and refuse, with ``MemoryError`` naming the
sizes, a request that cannot fit, *before* anything is allocated.

On Linux the kernel overcommits: a single allocation larger than RAM fails at once (NumPy and
the core then raise ``MemoryError``), but several allocations that each fit and together do not
succeed and the process is later killed by the out-of-memory killer, losing the user's session.
So the estimators and the layer add up, from the shapes alone, what a fit or a prediction will
hold at its peak (the converted input, the targets and outputs, the parameters and optimizer
state, and the core's workspace) and compare it with the memory available to the process.

The sizes of the network come from the core, which computes them with the code that sizes its
own buffers: ``_core.ModelConfig(...).num_params`` and ``.workspace_elements(batch, steps,
train)`` for the estimators' models, ``_core.Recurrent32.count_params(...)`` and a layer's
``workspace_elements(batch, steps, train)`` for nn's layers. This module holds no formula of its
own: only what memory there is (``available_memory``), the check itself and the input's shape.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Optional

import numpy as np

from . import _core

PREDICT_CHUNK = _core.PREDICT_CHUNK  # sequences per core forward in predict (the core's chunk)


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} EiB"  # pragma: no cover


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _cgroup_headroom() -> Optional[int]:
    """Bytes left under the process's cgroup memory limit (v2 memory.max or v1
    memory.limit_in_bytes), or None where there is no limit or it cannot be read."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        path = path.lstrip("/")
        if controllers == "":  # cgroup v2
            candidates = [("/sys/fs/cgroup", "memory.max", "memory.current")]
        elif "memory" in controllers.split(","):  # cgroup v1
            candidates = [
                ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes")
            ]
        else:
            continue
        for root, limit_file, usage_file in candidates:
            for base in (os.path.join(root, path), root):
                limit = _read_int(os.path.join(base, limit_file))
                if limit is None or limit >= 1 << 60:  # no limit ("max" or ~2**63)
                    continue
                usage = _read_int(os.path.join(base, usage_file)) or 0
                left = max(limit - usage, 0)
                best = left if best is None else min(best, left)
                break
    return best


def available_memory() -> Optional[int]:
    """Bytes this process can still allocate without swapping itself to death or being killed:
    ``MemAvailable + SwapFree`` from /proc/meminfo, capped by the cgroup limit; elsewhere the
    free physical pages (``os.sysconf``); None when unknown (then nothing is refused)."""
    override = os.environ.get("LSTM_NATIVE_AVAILABLE_MEMORY")
    if override:  # for tests and for users who want a tighter (or looser) budget
        try:
            return int(float(override))
        except ValueError:
            pass
    avail = None
    try:
        fields = {}
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                fields[key] = int(rest.split()[0]) * 1024
        if "MemAvailable" in fields:
            avail = fields["MemAvailable"] + fields.get("SwapFree", 0)
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            avail = None
    cg = _cgroup_headroom()
    if cg is not None:
        avail = cg if avail is None else min(avail, cg)
    return avail


# Requests below this are never refused (and cost no look-up of the available memory).
_ALWAYS_FITS = 64 * 2**20


def fits_without_checking(need: int) -> bool:
    """Whether ``need`` bytes are small enough to skip reading the available memory (what
    check_memory does first), so that callers can skip building its message too."""
    return need < _ALWAYS_FITS and not os.environ.get("LSTM_NATIVE_AVAILABLE_MEMORY")


def check_memory(parts: Iterable[tuple], what: str) -> int:
    """Raises MemoryError when the sum of ``parts`` ((description, bytes) pairs) exceeds the
    available memory; returns the sum. The message names the total, the largest parts and what
    is available."""
    parts = [(name, int(n)) for name, n in parts if n]
    need = sum(n for _, n in parts)
    if fits_without_checking(need):
        return need  # reading /proc costs ~0.1 ms, too much for small per-step calls
    avail = available_memory()
    if avail is None or need <= avail:
        return need
    parts.sort(key=lambda p: -p[1])
    detail = ", ".join(f"{name} {format_bytes(n)}" for name, n in parts[:4])
    raise MemoryError(
        f"{what} would need about {format_bytes(need)} of memory ({detail}), but only "
        f"{format_bytes(avail)} is available; use fewer or shorter sequences per call, a "
        "smaller batch_size or hidden_size, or dtype='float32'"
    )


def needs_copy(X: object, dtype: np.dtype) -> bool:
    """Whether converting X for the core makes a copy (True unless it is already a C-contiguous,
    writeable ndarray of ``dtype``)."""
    return not (
        isinstance(X, np.ndarray)
        and X.dtype == dtype
        and X.flags.c_contiguous
        and X.flags.writeable
    )


def peek_shape(X: object) -> Optional[tuple]:
    """(N, T, D) of sequence input without converting it: from ``shape`` for arrays, from the
    element shapes for a list of sequences; None when it cannot be told cheaply."""
    shape = getattr(X, "shape", None)
    if shape is not None and not isinstance(X, (list, tuple)):
        try:
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            return None
        if len(shape) == 3:
            return shape
        if len(shape) == 2:
            return shape[0], shape[1], 1
        return None
    if isinstance(X, (list, tuple)) and X:
        # A list of arrays, or nested lists (whose conversion NumPy sizes and allocates in one
        # go: [[0.0] * 10**6] * 10**5 is a few bytes of Python but 800 GB as an array). One
        # pass over the sequences, reading only lengths: O(n_samples), no conversion.
        T, D = 0, 1
        for x in X:
            s = _outer_shape(x)
            if s is None or len(s) not in (1, 2):
                return None
            T = max(T, s[0])
            if len(s) == 2:
                D = max(D, s[1])
        return len(X), T, D
    return None


def _outer_shape(x: object) -> Optional[tuple]:
    """(T,) or (T, D) of one sequence: its ``shape``, or the lengths of a nested list (the first
    step's length standing for D)."""
    shape = getattr(x, "shape", None)
    if shape is not None:
        try:
            return tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            return None
    if isinstance(x, (list, tuple)):
        if x and isinstance(x[0], (list, tuple)):
            return len(x), len(x[0])
        if x and hasattr(x[0], "shape") and len(x[0].shape) == 1:
            return len(x), int(x[0].shape[0])
        return (len(x),)
    return None


__all__ = [
    "PREDICT_CHUNK",
    "available_memory",
    "check_memory",
    "fits_without_checking",
    "format_bytes",
    "needs_copy",
    "peek_shape",
]
