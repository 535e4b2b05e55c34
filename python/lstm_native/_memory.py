"""Memory guard: estimate what a call will allocate and refuse, with ``MemoryError`` naming the
sizes, a request that cannot fit, *before* anything is allocated.

On Linux the kernel overcommits: a single allocation larger than RAM fails at once (NumPy and
the core then raise ``MemoryError``), but several allocations that each fit and together do not
succeed and the process is later killed by the out-of-memory killer, losing the user's session.
So the estimators and the layer add up, from the shapes alone, what a fit or a prediction will
hold at its peak (the converted input, the targets and outputs, the parameters and optimizer
state, and the core's workspace) and compare it with the memory available to the process.

The core's workspace (see cpp/include/lstm_native/sequence.hpp and model.hpp) is, for a batch of
B sequences of T steps, per recurrent unit (layer and direction) with input width D_l::

    forward:   T*B*(D_l [x, time-major] + G*H [gates] + 2*H [h, c states] + kExtra*H) + B*G*H
    backward:  T*B*(2*max(D_l, H) [dL/dy ping-pong] + G*H [dL/dgh, GRU])

plus, per layer, the model's T*B*H outputs per direction, the reversed input and the
concatenation (bidirectional), input and mask for dropout, and the head's logits and gradients.
The estimate is rough by design (it errs on the large side by a few per cent) and serves to
catch requests that are off by a large factor, not to budget the last megabyte.
"""

from __future__ import annotations

import os
from typing import Iterable, Optional

import numpy as np

_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
_EXTRA = {"lstm": 0, "gru": 1, "rnn_tanh": 0, "rnn_relu": 0}  # the cells' kExtra (cells.hpp)
PREDICT_CHUNK = 256  # sequences per core call in predict (a multiple of the core's own chunk)



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
            candidates = [("/sys/fs/cgroup/memory", "memory.limit_in_bytes",
                           "memory.usage_in_bytes")]
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
        "smaller batch_size or hidden_size, or dtype='float32'")


def recurrent_param_count(cell: str, input_size: int, hidden_size: int, num_layers: int,
                          dirs: int = 1, bias: bool = True) -> int:
    """Parameters of the recurrent stack (PyTorch's layout), as Python ints (no overflow)."""
    G, H = _GATES.get(cell, 4), int(hidden_size)
    extra = 0 if cell in _GATES else H * H + 3 * H  # other cells: room for cell parameters
    total = 0
    for layer in range(int(num_layers)):
        d_in = int(input_size) if layer == 0 else dirs * H
        total += dirs * (G * H * (d_in + H) + (2 * G * H if bias else 0) + extra)
    return total


def model_param_count(config: dict) -> int:
    dirs = 2 if config["bidirectional"] else 1
    return (recurrent_param_count(config["cell"], config["input_size"], config["hidden_size"],
                                  config["num_layers"], dirs)
            + config["output_size"] * (dirs * config["hidden_size"] + 1))


def unit_workspace(cell: str, d_in: int, H: int, B: int, T: int, train: bool,
                   layers: int = 1) -> int:
    """Elements of one core Recurrent object's workspace for a batch (B, T) (sequence.hpp)."""
    G, E = _GATES.get(cell, 4), _EXTRA.get(cell, 2)
    TB = T * B
    n = TB * d_in + layers * (T + 1) * B * H * (1 if cell in ("gru", "rnn_tanh", "rnn_relu")
                                                 else 2) + B * G * H
    n += (layers * TB if train else TB) * G * H + (layers * TB if train else B) * E * H
    if train:
        n += TB * 2 * max(d_in, H) + (TB * G * H if cell == "gru" else 0) + 3 * B * H
    return n


def model_workspace(config: dict, B: int, T: int, train: bool) -> int:
    """Elements of a core Model's workspace for a batch (B, T) (model.hpp), its units included."""
    cell, H, L = config["cell"], int(config["hidden_size"]), int(config["num_layers"])
    dirs = 2 if config["bidirectional"] else 1
    O, TB = int(config["output_size"]), T * B
    n = 0
    for layer in range(L):
        d_in = int(config["input_size"]) if layer == 0 else dirs * H
        n += dirs * unit_workspace(cell, d_in, H, B, T, train)
        n += TB * H * dirs + B * H * dirs  # yf / yr, hT
        if dirs == 2:
            n += TB * d_in + TB * dirs * H  # rev_in, cat
        if train and layer > 0 and config["dropout"] > 0:
            n += 2 * TB * d_in  # drop_in, drop_mask
    steps = TB if config["return_sequences"] else B
    n += steps * dirs * H + 2 * steps * O  # head features, logits
    if train:
        n += 2 * steps * O + steps * dirs * H + TB * dirs * H * 4  # head and layer gradients
        n += B * T * int(config["input_size"]) + steps * O + B  # the gathered minibatch
    return n


def needs_copy(X: object, dtype: np.dtype) -> bool:
    """Whether converting X for the core makes a copy (True unless it is already a C-contiguous,
    writeable ndarray of ``dtype``)."""
    return not (isinstance(X, np.ndarray) and X.dtype == dtype and X.flags.c_contiguous
                and X.flags.writeable)


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
        if x and hasattr(x[0], "shape") and len(getattr(x[0], "shape")) == 1:
            return len(x), int(x[0].shape[0])
        return (len(x),)
    return None


__all__ = ["PREDICT_CHUNK", "available_memory", "check_memory", "format_bytes",
           "model_param_count", "model_workspace", "needs_copy", "peek_shape",
           "recurrent_param_count", "unit_workspace"]
