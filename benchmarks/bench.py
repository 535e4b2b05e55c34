"""lstm_native against PyTorch and ONNX Runtime: agreement first, then speed and memory.

For every configuration the contenders are built on the same data with the same weights, their
results are compared (an AGREEMENT FAILED line and a non-zero exit status when they differ), and
only then are they timed.

Sections (``--only``):
  train   one training step: forward + BPTT + Adam on a linear head on the last hidden state,
          squared error, float32.  Ours: Model32.train_epoch over one batch (N == batch_size).
          PyTorch: nn.LSTM/GRU/RNN + nn.Linear + torch.optim.Adam.
  infer   forward over a batch of sequences.  Ours: nn.Recurrent.forward(inference=True).
          PyTorch under inference_mode, and ONNX Runtime on two exported models: PyTorch's
          (torch.onnx.export) and ours (layer.to_onnx(), lstm_native.interop.to_onnx).
  stream  one step at batch 1 from Python with the state fed back.  Ours: Model32.stream().step.
          PyTorch: nn.LSTMCell/GRUCell/RNNCell + head; ONNX Runtime: single-step model.
  memory  peak memory of one training step, each library in a fresh subprocess.

Timing: warm-up, then 6 interleaved rounds (each round times every contender of the
configuration in turn), per-round median of per-call times; reported is the best round's median.
Ratios are reference time / our time: above 1 means we are faster.

    python benchmarks/bench.py                       # everything (several minutes)
    python benchmarks/bench.py --quick               # a smoke test of the script (< 1 minute)
    python benchmarks/bench.py --only train,infer --cells lstm --threads 1 --markdown out.md
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import functools
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from time import perf_counter

import numpy as np
import torch

import lstm_native
from lstm_native import _core

try:  # ONNX Runtime is optional: without it (or onnx, which the export needs) its columns are n/a
    import onnx  # noqa: F401
    import onnxruntime as ort

    ORT_MISSING = None
except ImportError as e:
    ort = None
    ORT_MISSING = f"onnxruntime/onnx not installed ({e}): ONNX Runtime columns skipped"

# ---------------------------------------------------------------------------------------------
# What is measured
# ---------------------------------------------------------------------------------------------

# name on the command line -> our core's cell name, PyTorch sequence module, PyTorch cell module
CELLS = {
    "lstm": ("lstm", torch.nn.LSTM, torch.nn.LSTMCell),
    "gru": ("gru", torch.nn.GRU, torch.nn.GRUCell),
    "rnn": ("rnn_tanh", torch.nn.RNN, torch.nn.RNNCell),  # both default to tanh
}
CELL_ALIASES = {"rnn_tanh": "rnn"}

# (B, T, D, H)
SHAPES = [
    (32, 100, 8, 32),
    (32, 100, 8, 64),
    (32, 100, 8, 128),
    (64, 100, 32, 256),
    (64, 50, 64, 512),
    (1, 100, 8, 64),
]
QUICK_SHAPES = [(32, 100, 8, 32), (1, 100, 8, 64)]  # includes B = 1, an edge case of its own
STREAM_D, STREAM_HS, QUICK_STREAM_HS = 8, (64, 256), (64,)
STREAM_CHECK_STEPS = 10
SECTIONS = ("train", "infer", "stream", "memory")

LR = 1e-3
TOL = 1e-4  # relative (norm-based) error allowed between float32 implementations
# --precision bfloat16: ours against float32 PyTorch (the exact computation), whose distance is
# the bf16 rounding of the products' operands (~3e-3 in norm here); train/infer only.
TOL_BF16 = 2e-2
PRECISION = "float32"  # set from the command line


@dataclass(frozen=True)
class Timing:
    rounds: int  # interleaved rounds; the best round's median is reported
    target_s: float  # time one contender spends per round
    warmup_s: float  # untimed calls before the first round
    # With 2 samples a round of the slowest steps (~250 ms) stays near the 0.5 s upper end.
    min_samples: int = 2


FULL_TIMING = Timing(rounds=6, target_s=0.2, warmup_s=0.1)
QUICK_TIMING = Timing(rounds=2, target_s=0.03, warmup_s=0.01)

# A timed sample runs the call at least this long, so that perf_counter's own cost (~0.1 us)
# stays negligible next to microsecond-scale streaming steps.
MIN_SAMPLE_S = 1e-3


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def _seconds_per_call(fn, inner: int) -> float:
    t0 = perf_counter()
    for _ in range(inner):
        fn()
    return (perf_counter() - t0) / inner


def best_round_medians(contenders: dict, timing: Timing) -> dict:
    """{name: fn} -> {name: seconds per call}: the minimum over interleaved rounds of each round's
    median.  Interleaving spreads any slow period of the machine (another process, frequency
    changes) over all contenders instead of penalising whichever happened to run then."""
    plans = {}
    for name, fn in contenders.items():
        # Warm-up: caches, lazily allocated workspaces, thread pools, ORT's first-run setup.
        n, t0 = 0, perf_counter()
        while n < 3 or perf_counter() - t0 < timing.warmup_s:
            fn()
            n += 1
        per_call = _seconds_per_call(fn, max(1, n // 3))
        inner = max(1, math.ceil(MIN_SAMPLE_S / per_call))
        samples = max(timing.min_samples, round(timing.target_s / (inner * per_call)))
        plans[name] = (inner, min(samples, 1000))
    medians = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(timing.rounds):
        # Rotate the order so that no contender always runs right after the same other one
        # (e.g. while another library's spinning worker threads are still winding down).
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, (inner, samples) = contenders[name], plans[name]
            if inner > 1:  # short calls: one untimed call brings this contender's data back
                fn()  # into cache after the previous contender's round
            # The deadline bounds the run when the machine slows down after planning (another
            # job starts): such a round is not the best one anyway.
            deadline = perf_counter() + 2 * timing.target_s
            times = []
            while len(times) < samples and (
                len(times) < timing.min_samples or perf_counter() < deadline
            ):
                times.append(_seconds_per_call(fn, inner))
            medians[name].append(statistics.median(times))
    return {name: min(m) for name, m in medians.items()}


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    _core.set_num_threads(n)


# ---------------------------------------------------------------------------------------------
# Agreement checks
# ---------------------------------------------------------------------------------------------

FAILURES: list = []


def rel_err(a, ref) -> float:
    """||a - ref|| / ||ref|| over all entries, in float64."""
    a = np.asarray(a, dtype=np.float64).ravel()
    ref = np.asarray(ref, dtype=np.float64).ravel()
    return float(np.linalg.norm(a - ref) / max(np.linalg.norm(ref), 1e-30))


def check(what: str, err: float) -> float:
    tol = TOL_BF16 if PRECISION == "bfloat16" else TOL
    if not err <= tol:  # also catches NaN
        msg = f"AGREEMENT FAILED {what}: relative error {err:.3g} > {tol:g}"
        print(msg, flush=True)
        FAILURES.append(msg)
    return err


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    headers: list
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def text(self) -> str:
        widths = [max(len(str(c)) for c in col) for col in zip(self.headers, *self.rows)]
        line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))
        out = [self.title, line(self.headers), line("-" * w for w in widths)]
        out += [line(r) for r in self.rows] + [f"  note: {n}" for n in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [
            f"### {self.title}",
            "",
            "| " + " | ".join(self.headers) + " |",
            "|" + "|".join("---:" for _ in self.headers) + "|",
        ]
        out += ["| " + " | ".join(str(c) for c in r) + " |" for r in self.rows]
        if self.notes:
            out += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(out)


def fmt(x) -> str:
    """Three significant digits, never in exponent form; n/a for a missing value."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{max(0, 2 - int(math.floor(math.log10(abs(x)))))}f}" if x else "0"


def ratio(ref, ours):
    return None if ref is None or ours is None else ref / ours


def shape_str(shape) -> str:
    return "/".join(map(str, shape))


def progress(*parts) -> None:
    print("  ..", *parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Shared set-up
# ---------------------------------------------------------------------------------------------


def make_data(B, T, D, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, T, D), dtype=np.float32)
    Y = rng.standard_normal((B, 1), dtype=np.float32)
    return X, Y


def torch_modules(cell: str, D: int, H: int):
    """PyTorch's recurrent layer and head at their default initialization (the weights both
    libraries then start from)."""
    torch.manual_seed(0)
    return CELLS[cell][1](D, H, batch_first=True), torch.nn.Linear(H, 1)


def torch_named(rnn, head) -> dict:
    """Parameters under the names of our Model layout ("weight_ih_l0", ..., "head.weight")."""
    named = dict(rnn.named_parameters())
    named.update({"head." + k: v for k, v in head.named_parameters()})
    return named


def to_flat(tensors: dict, layout, size: int) -> np.ndarray:
    """{name: tensor} -> one float32 vector in our Model's layout."""
    flat = np.empty(size, dtype=np.float32)
    for name, off, shape in layout:
        flat[off : off + math.prod(shape)] = tensors[name].detach().numpy().ravel()
    return flat


def export_onnx(module, args, input_names, output_names):
    """The module as ONNX bytes: the legacy (TorchScript) exporter first, the dynamo one as a
    fallback.  Returns (bytes or None, note)."""
    errors = []
    for dynamo in (False, True):
        buf = io.BytesIO()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    args,
                    buf,
                    input_names=input_names,
                    output_names=output_names,
                    dynamo=dynamo,
                )
            return buf.getvalue(), None
        except Exception as e:
            errors.append(
                f"{'dynamo' if dynamo else 'legacy'}: {type(e).__name__}: "
                f"{str(e).splitlines()[0][:160] if str(e) else ''}"
            )
    return None, "ONNX export failed (" + "; ".join(errors) + ")"


def ort_session(model_bytes: bytes, threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


def bench_train(cell, shape, threads, timing) -> list:
    B, T, D, H = shape
    set_threads(threads)
    X, Y = make_data(B, T, D)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    rnn, head = torch_modules(cell, D, H)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=LR)

    def torch_loss():
        out, _ = rnn(Xt)
        # 0.5 * MSE: our core's loss, sum 0.5 (p - y)^2 / (B * O)
        return 0.5 * ((head(out[:, -1]) - Yt) ** 2).mean()

    def torch_step():
        opt.zero_grad()
        torch_loss().backward()
        opt.step()

    m = _core.Model32(_core.ModelConfig(CELLS[cell][0], D, H, 1, 1, precision=PRECISION))
    layout, P = m.layout(), m.num_params
    optim = _core.OptimConfig(
        batch_size=B, shuffle=False, seed=0, solver="adam", lr=LR, alpha=0.0, max_grad_norm=0.0
    )
    params = to_flat(torch_named(rnn, head), layout, P)
    mom, vel = np.zeros(P, np.float32), np.zeros(P, np.float32)
    step = 0

    def ours_step():
        nonlocal step
        _, step = m.train_epoch(params, mom, vel, step, X, None, Y, None, optim)

    # Agreement: loss and gradient at the common starting point, then parameters after one step.
    grad = np.zeros(P, np.float32)
    loss_ours = m.loss_and_grad(params, X, None, Y, None, 0.0, grad)
    opt.zero_grad()
    loss_t = torch_loss()
    loss_t.backward()
    named = torch_named(rnn, head)
    grad_t = to_flat({k: p.grad for k, p in named.items()}, layout, P)
    opt.step()
    ours_step()
    label = f"train {cell} {shape_str(shape)} threads={threads}"
    grad_err = max(
        check(f"{label} loss", rel_err(loss_ours, loss_t.item())),
        check(f"{label} gradient", rel_err(grad, grad_t)),
    )
    step_err = check(
        f"{label} parameters after one Adam step", rel_err(params, to_flat(named, layout, P))
    )

    contenders = {"ours": ours_step, "torch": torch_step}
    if PRECISION == "bfloat16":  # PyTorch's two bf16 paths, from the same start
        contenders = {"ours": ours_step, **torch_bf16_train(cell, D, H, Xt, Yt)}
    t = best_round_medians(contenders, timing)
    if PRECISION == "bfloat16":
        fastest = min(("torch_bf16", "torch_autocast"), key=t.get)
        t["torch"] = t[fastest]
    row = [
        cell,
        shape_str(shape),
        threads,
        fmt(t["ours"] * 1e3),
        fmt(t["torch"] * 1e3),
        fmt(ratio(t["torch"], t["ours"])),
        f"{grad_err:.1e}",
        f"{step_err:.1e}",
    ]
    if PRECISION == "bfloat16":
        row[5:5] = [fmt(t["torch_bf16"] * 1e3), fmt(t["torch_autocast"] * 1e3)]
    progress(*row)
    return row


def torch_bf16_train(cell, D, H, Xt, Yt) -> dict:
    """PyTorch's bf16 training steps: the modules in bf16 (bf16 weights and Adam state, bf16
    data) and float32 modules under torch.autocast("cpu", bfloat16) (float32 master weights, as
    ours)."""
    rnn_b, head_b = (mod.to(torch.bfloat16) for mod in torch_modules(cell, D, H))
    opt_b = torch.optim.Adam([*rnn_b.parameters(), *head_b.parameters()], lr=LR)
    Xb, Yb = Xt.to(torch.bfloat16), Yt.to(torch.bfloat16)
    rnn_a, head_a = torch_modules(cell, D, H)
    opt_a = torch.optim.Adam([*rnn_a.parameters(), *head_a.parameters()], lr=LR)

    def bf16_step():
        opt_b.zero_grad()
        out, _ = rnn_b(Xb)
        (0.5 * ((head_b(out[:, -1]) - Yb) ** 2).mean()).backward()
        opt_b.step()

    def autocast_step():
        opt_a.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = rnn_a(Xt)
            loss = 0.5 * ((head_a(out[:, -1]).float() - Yt) ** 2).mean()
        loss.backward()
        opt_a.step()

    return {"torch_bf16": bf16_step, "torch_autocast": autocast_step}


# ---------------------------------------------------------------------------------------------
# infer
# ---------------------------------------------------------------------------------------------


class _Outputs(torch.nn.Module):
    """The recurrent layer with only its output sequence, for export."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


def bench_infer(cell, shape, thread_list, timing, notes) -> list:
    B, T, D, H = shape
    X, _ = make_data(B, T, D)
    Xt = torch.from_numpy(X)
    rnn, _ = torch_modules(cell, D, H)
    layer = lstm_native.nn.Recurrent(
        D, H, 1, cell=CELLS[cell][0], dtype=np.float32, precision=PRECISION
    )
    layer.set_parameters({k: v.detach().numpy() for k, v in rnn.named_parameters()})

    onnx_bytes = ours_onnx = None
    bf16 = PRECISION == "bfloat16"
    if bf16:  # PyTorch's two bf16 paths: the module in bf16 with bf16 input, and autocast
        rnn_b = torch_modules(cell, D, H)[0].to(torch.bfloat16)
        Xb = Xt.to(torch.bfloat16)
    if ort is not None and not bf16:
        onnx_bytes, note = export_onnx(_Outputs(rnn), (Xt,), ["x"], ["y"])
        if note:
            notes.append(f"{cell} {shape_str(shape)}: {note}")
        try:  # our own exporter (standard ONNX LSTM/GRU/RNN nodes, no torch involved)
            ours_onnx = layer.to_onnx().SerializeToString()
        except Exception as e:
            notes.append(
                f"{cell} {shape_str(shape)}: our ONNX export failed ({type(e).__name__}: {e})"
            )

    rows = []
    for threads in thread_list:
        set_threads(threads)
        contenders = {"ours": lambda: layer.forward(X, inference=True)}

        def torch_forward():
            # Entering inference_mode is part of the call as users write it (~1 us: noise here).
            with torch.inference_mode():
                return rnn(Xt)[0]

        contenders["torch"] = torch_forward
        if bf16:

            def torch_bf16():
                with torch.inference_mode():
                    return rnn_b(Xb)[0]

            def torch_autocast():
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return rnn(Xt)[0]

            contenders = {"ours": contenders["ours"], "torch_bf16": torch_bf16}
            contenders["torch_autocast"] = torch_autocast
        if onnx_bytes is not None:
            sess = ort_session(onnx_bytes, threads)
            feed = {sess.get_inputs()[0].name: X}
            contenders["ort"] = lambda: sess.run(None, feed)[0]
        if ours_onnx is not None:
            sess_ours = ort_session(ours_onnx, threads)
            feed_ours = {"x": X}
            contenders["export"] = lambda: sess_ours.run(["y"], feed_ours)[0]

        label = f"infer {cell} {shape_str(shape)} threads={threads}"
        y_t = torch_forward().numpy()
        errs = [check(f"{label} ours vs torch", rel_err(contenders["ours"]()[0], y_t))]
        if "ort" in contenders:
            errs.append(check(f"{label} ort vs torch", rel_err(contenders["ort"](), y_t)))
        if "export" in contenders:
            errs.append(
                check(
                    f"{label} our ONNX export (ORT) vs torch", rel_err(contenders["export"](), y_t)
                )
            )

        t = best_round_medians(contenders, timing)
        if bf16:
            errs.append(
                check(f"{label} torch autocast vs torch", rel_err(torch_autocast().float(), y_t))
            )
            t["torch"] = min(t["torch_bf16"], t["torch_autocast"])
        t_ort, t_exp = t.get("ort"), t.get("export")
        rows.append(
            [
                cell,
                shape_str(shape),
                threads,
                fmt(t["ours"] * 1e3),
                fmt(t["torch"] * 1e3),
                fmt(t_ort and t_ort * 1e3),
                fmt(t_exp and t_exp * 1e3),
                fmt(ratio(t["torch"], t["ours"])),
                fmt(ratio(t_ort, t["ours"])),
                fmt(ratio(t_exp, t["ours"])),
                f"{max(errs):.1e}",
            ]
        )
        if bf16:  # ort/export columns: PyTorch's two bf16 paths instead
            rows[-1][5:10] = [
                fmt(t["torch_bf16"] * 1e3),
                fmt(t["torch_autocast"] * 1e3),
                fmt(ratio(t["torch"], t["ours"])),
            ]
        progress(*rows[-1])
    return rows


# ---------------------------------------------------------------------------------------------
# stream
# ---------------------------------------------------------------------------------------------


class _Step(torch.nn.Module):
    """One time step of the recurrent layer + head with the state as explicit inputs and outputs,
    for export (T = 1: the exported graph is a single ONNX LSTM/GRU/RNN node plus the head)."""

    def __init__(self, rnn, head, lstm: bool):
        super().__init__()
        self.rnn, self.head, self.lstm = rnn, head, lstm

    def forward(self, x, h0, c0=None):
        if self.lstm:
            out, (h, c) = self.rnn(x, (h0, c0))
            return self.head(out[:, -1]), h, c
        out, h = self.rnn(x, h0)
        return self.head(out[:, -1]), h


def bench_stream(cell, H, thread_list, timing, notes) -> list:
    D = STREAM_D
    lstm = cell == "lstm"
    rnn, head = torch_modules(cell, D, H)
    tcell = CELLS[cell][2](D, H)
    with torch.no_grad():
        for name, p in tcell.named_parameters():  # LSTMCell's weight_ih = LSTM's weight_ih_l0
            p.copy_(getattr(rnn, name + "_l0"))

    m = _core.Model32(_core.ModelConfig(CELLS[cell][0], D, H, 1, 1, precision=PRECISION))
    params = to_flat(torch_named(rnn, head), m.layout(), m.num_params)
    xs = np.random.default_rng(1).standard_normal((STREAM_CHECK_STEPS, D), dtype=np.float32)
    xs_torch = [torch.from_numpy(xs[i : i + 1]) for i in range(len(xs))]  # (1, D) each
    xs_ort = [xs[i].reshape(1, 1, D) for i in range(len(xs))]  # (1, 1, D) each

    onnx_bytes = None
    if ort is not None:
        zeros = torch.zeros(1, 1, H)
        names = ["x", "h0", "c0"] if lstm else ["x", "h0"]
        onnx_bytes, note = export_onnx(
            _Step(rnn, head, lstm),
            (torch.from_numpy(xs_ort[0]),) + (zeros,) * (len(names) - 1),
            names,
            ["y", "h", "c"] if lstm else ["y", "h"],
        )
        if note:
            notes.append(f"{cell} H={H}: {note}")

    rows = []
    for threads in thread_list:
        set_threads(threads)
        s = m.stream(params)
        out = np.zeros(1, np.float32)

        def ours(x):
            return s.step(x, out)

        state = None  # PyTorch's cells take None as the zero state

        def torch_step(x):
            nonlocal state
            state = tcell(x, state)
            return head(state[0] if lstm else state)

        contenders = {"ours": (ours, list(xs)), "torch": (torch_step, xs_torch)}
        if onnx_bytes is not None:
            sess = ort_session(onnx_bytes, threads)
            in_names = [i.name for i in sess.get_inputs()]
            feed = {n: np.zeros((1, 1, H), np.float32) for n in in_names[1:]}

            def ort_step(x):
                feed[in_names[0]] = x
                y, *new_state = sess.run(None, feed)
                # The returned state arrays become the next inputs as they are: no copying.
                feed.update(zip(in_names[1:], new_state))
                return y

            contenders["ort"] = (ort_step, xs_ort)

        label = f"stream {cell} H={H} threads={threads}"
        with torch.inference_mode():  # for the whole loop, as a streaming application would
            outs = {
                k: np.array([np.asarray(fn(x)).item() for x in inputs])
                for k, (fn, inputs) in contenders.items()
            }
            errs = [
                check(
                    f"{label} {k} vs torch ({STREAM_CHECK_STEPS} steps)",
                    rel_err(outs[k], outs["torch"]),
                )
                for k in outs
                if k != "torch"
            ]
            # functools.partial: the cheapest way to bind the argument, same cost for everyone
            t = best_round_medians(
                {k: functools.partial(fn, inputs[0]) for k, (fn, inputs) in contenders.items()},
                timing,
            )
        t_ort = t.get("ort")
        rows.append(
            [
                cell,
                H,
                threads,
                fmt(t["ours"] * 1e6),
                fmt(t["torch"] * 1e6),
                fmt(t_ort and t_ort * 1e6),
                fmt(ratio(t["torch"], t["ours"])),
                fmt(ratio(t_ort, t["ours"])),
                f"{max(errs):.1e}",
            ]
        )
        progress(*rows[-1])
    return rows


# ---------------------------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------------------------

# Runs in a fresh interpreter: `python -c MEMORY_WORKER '{"lib": ..., ...}'`, prints JSON.
# Peak RSS: ru_maxrss is not usable here: Linux carries the parent's high-water mark over
# fork+exec into the child's ru_maxrss, so every child would report at least this (large)
# benchmark process.  VmHWM in /proc/self/status is the child's own mm's high-water mark, and
# writing "5" to /proc/self/clear_refs resets it to the current RSS (Linux >= 4.0): the peak
# then covers the training step only, not the imports' transient allocations.
MEMORY_WORKER = r"""
import json, os, sys
import numpy as np

def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

def hwm_kib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))

a = json.loads(sys.argv[1])
B, T, D, H = a["shape"]
rng = np.random.default_rng(0)
X = rng.standard_normal((B, T, D), dtype=np.float32)
Y = rng.standard_normal((B, 1), dtype=np.float32)
if a["lib"] == "ours":
    from lstm_native import _core
    _core.set_num_threads(a["threads"])
    m = _core.Model32(_core.ModelConfig(a["cell"], D, H, 1, 1))
    optim = _core.OptimConfig(batch_size=B, shuffle=False, seed=0, solver="adam", lr=1e-3,
                              alpha=0.0, max_grad_norm=0.0)
    params = rng.uniform(-H ** -0.5, H ** -0.5, m.num_params).astype(np.float32)

    def step():
        # Adam's moments are allocated within the step: PyTorch's Adam allocates its own on
        # its first step, so both sides count the optimizer state.
        mom, vel = np.zeros_like(params), np.zeros_like(params)
        return m.train_epoch(params, mom, vel, 0, X, None, Y, None, optim)[0]
else:
    import torch
    torch.set_num_threads(a["threads"])
    rnn = getattr(torch.nn, a["module"])(D, H, batch_first=True)
    head = torch.nn.Linear(H, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def step():
        opt.zero_grad()
        loss = 0.5 * ((head(rnn(Xt)[0][:, -1]) - Yt) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.item()

baseline = rss_kib()
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
loss = step()
print(json.dumps({"baseline_kib": baseline, "peak_kib": hwm_kib(), "reset": reset,
                  "loss": loss}))
"""


def step_peak_mib(lib: str, cell: str, shape, threads: int):
    """Peak minus baseline RSS of one training step in a fresh process, in MiB (None on error)."""
    spec = {
        "lib": lib,
        "cell": CELLS[cell][0],
        "module": CELLS[cell][1].__name__,
        "shape": list(shape),
        "threads": threads,
    }
    r = subprocess.run(
        [sys.executable, "-c", MEMORY_WORKER, json.dumps(spec)], capture_output=True, text=True
    )
    if r.returncode != 0:
        print(
            f"memory worker failed ({lib} {cell} {shape_str(shape)}):\n{r.stderr[-2000:]}",
            file=sys.stderr,
        )
        return None, True
    res = json.loads(r.stdout.strip().splitlines()[-1])
    return max(0, res["peak_kib"] - res["baseline_kib"]) / 1024, res["reset"]


@dataclass(frozen=True)
class Plan:
    """What the command line selected."""

    cells: list
    threads: list
    timing: Timing
    shapes: list
    stream_hs: tuple


def run_train(plan: Plan) -> Table:
    tab = Table(
        "train: one step (forward + BPTT + Adam), float32",
        ["cell", "B/T/D/H", "threads", "ours ms", "torch ms", "torch/ours", "grad err", "step err"],
    )
    if PRECISION == "bfloat16":
        tab.title = "train: one step (forward + BPTT + Adam), bfloat16 products"
        tab.headers[5:5] = ["torch bf16 module ms", "torch autocast ms"]
        tab.notes.append(
            "ours: precision='bfloat16' (bf16 operands, float32 sums; float32 weights, Adam, "
            "cell state); torch ms: the faster of PyTorch's bf16 module (.to(torch.bfloat16), "
            "bf16 data, bf16 weights and Adam state) and float32 modules under "
            "torch.autocast('cpu', torch.bfloat16); errors: against float32 PyTorch"
        )
    for cell in plan.cells:
        for shape in plan.shapes:
            for threads in plan.threads:
                tab.rows.append(bench_train(cell, shape, threads, plan.timing))
    tab.notes.append(
        "grad err: loss and gradient at the start; step err: all parameters after "
        "one Adam step of each"
    )
    return tab


def run_infer(plan: Plan) -> Table:
    tab = Table(
        "infer: forward over a batch of sequences, float32",
        [
            "cell",
            "B/T/D/H",
            "threads",
            "ours ms",
            "torch ms",
            "ort ms",
            "our ONNX export (ORT) ms",
            "torch/ours",
            "ort/ours",
            "export/ours",
            "max rel err",
        ],
    )
    if PRECISION == "bfloat16":
        tab.title = "infer: forward over a batch of sequences, bfloat16 products"
        tab.headers = tab.headers[:5] + [
            "torch bf16 module ms",
            "torch autocast ms",
            "torch/ours",
            "max rel err",
        ]
        tab.notes.append(
            "ours: precision='bfloat16'; torch ms: the faster of the module in bf16 "
            "(.to(torch.bfloat16)) on bf16 input and the float32 module under "
            "torch.autocast('cpu', torch.bfloat16) (both oneDNN); max rel err: ours and "
            "autocast against float32 PyTorch"
        )
    for cell in plan.cells:
        for shape in plan.shapes:
            tab.rows += bench_infer(cell, shape, plan.threads, plan.timing, tab.notes)
    if PRECISION != "bfloat16":
        tab.notes.append(
            "ort: the PyTorch module exported by torch.onnx.export; our ONNX export: "
            "the same weights in our layer, exported by layer.to_onnx() "
            "(lstm_native.interop), both run by ONNX Runtime"
        )
    if ORT_MISSING:
        tab.notes.append(ORT_MISSING)
    return tab


def run_stream(plan: Plan) -> Table:
    tab = Table(
        f"stream: one step at batch 1 from Python, state fed back, D={STREAM_D}",
        [
            "cell",
            "H",
            "threads",
            "ours us",
            "torch cell us",
            "ort us",
            "torch/ours",
            "ort/ours",
            "max rel err",
        ],
    )
    for cell in plan.cells:
        for H in plan.stream_hs:
            tab.rows += bench_stream(cell, H, plan.threads, plan.timing, tab.notes)
    tab.notes.append(
        "torch: nn.LSTMCell/GRUCell/RNNCell + nn.Linear under inference_mode; "
        "ort: exported single-step model, states fed back via run()"
    )
    if ORT_MISSING:
        tab.notes.append(ORT_MISSING)
    return tab


def run_memory(plan: Plan) -> Table:
    threads = min(plan.threads)
    tab = Table(
        f"memory: peak RSS of one training step above the set-up, threads={threads}",
        ["cell", "B/T/D/H", "ours MiB", "torch MiB", "torch/ours"],
    )
    cases = [(cell, shape) for cell in plan.cells for shape in plan.shapes]
    # Each worker measures only its own process, so they may run side by side: one per core
    # halves the time this section spends mostly importing PyTorch.
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        results = [
            (
                pool.submit(step_peak_mib, "ours", cell, shape, threads),
                pool.submit(step_peak_mib, "torch", cell, shape, threads),
            )
            for cell, shape in cases
        ]
        resets = True
        for (cell, shape), (f_ours, f_ref) in zip(cases, results):
            (ours, r1), (ref, r2) = f_ours.result(), f_ref.result()
            resets &= r1 and r2
            tab.rows.append(
                [
                    cell,
                    shape_str(shape),
                    fmt(ours),
                    fmt(ref),
                    fmt(ratio(ref, ours) if ours else None),
                ]
            )
            progress(*tab.rows[-1])
    tab.notes.append(
        "each in a fresh process: RSS after building model, data and weights, then "
        "the high-water mark (VmHWM) after one step; Adam state counted on both "
        "sides"
    )
    if not resets:
        tab.notes.append(
            "could not reset VmHWM via /proc/self/clear_refs: the peak may include "
            "the imports' transient memory"
        )
    return tab


SECTION_RUNNERS = {
    "train": run_train,
    "infer": run_infer,
    "stream": run_stream,
    "memory": run_memory,
}


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


_FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def machine_header() -> str:
    """The CPU model, its flags that matter here, the kernel set the core chose, versions."""
    flags: set = set()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        flags = set(next((l.split(":", 1)[1].split() for l in lines if l.startswith("flags")), []))
    info = lstm_native.build_info()
    cpu = info["cpu"]  # the brand string with CPUID's family/model/stepping (one brand, many CPUs)
    ort_v = ort.__version__ if ort is not None else "not installed"
    have = ", ".join(f for f in _FLAGS_OF_INTEREST if f in flags) or "none of interest"
    return (
        f"Machine: {cpu}, {os.cpu_count()} cores (flags: {have}). Versions: Python "
        f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"onnxruntime {ort_v}, lstm_native {lstm_native.__version__} "
        f"(kernel set: {info.get('isa', '?')} of {', '.join(info.get('isa_compiled', []))}; "
        f"SIMD: {info['simd']}; bf16 kernel: {info.get('bf16_kernel', '?')}). "
        f"Date: {datetime.date.today().isoformat()}."
    )


def parse_list(text: str, allowed, aliases=None) -> list:
    items = [(aliases or {}).get(s.strip(), s.strip()) for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {', '.join(allowed)}, got {text!r}"
        )
    return list(dict.fromkeys(items))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="fewer shapes, 2 short rounds: checks the script, numbers are rough",
    )
    ap.add_argument(
        "--only",
        type=lambda s: parse_list(s, SECTIONS),
        default=list(SECTIONS),
        help="sections to run, e.g. train,infer (default: all)",
    )
    ap.add_argument(
        "--cells",
        type=lambda s: parse_list(s, CELLS, CELL_ALIASES),
        default=list(CELLS),
        help="cells, e.g. lstm,gru (default: lstm,gru,rnn)",
    )
    ap.add_argument(
        "--threads",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2],
        help="thread counts, e.g. 1,2 (default: 1,2)",
    )
    ap.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        default="float32",
        help="bfloat16: our precision='bfloat16' against PyTorch's bf16 paths (train, infer)",
    )
    ap.add_argument(
        "--shapes",
        type=lambda s: [tuple(int(v) for v in x.split("/")) for x in s.split(",")],
        help="B/T/D/H shapes, e.g. 64/50/64/128,64/50/64/512 (default: the standard list)",
    )
    ap.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    args = ap.parse_args(argv)
    global PRECISION
    PRECISION = args.precision
    if PRECISION == "bfloat16":
        args.only = [s for s in args.only if s in ("train", "infer")]
    if any(n < 1 for n in args.threads):
        ap.error("--threads must be positive")

    plan = Plan(
        cells=args.cells,
        threads=args.threads,
        timing=QUICK_TIMING if args.quick else FULL_TIMING,
        shapes=args.shapes or (QUICK_SHAPES if args.quick else SHAPES),
        stream_hs=QUICK_STREAM_HS if args.quick else STREAM_HS,
    )
    header = machine_header()
    print(header, "\n", flush=True)
    if ORT_MISSING:
        print("note:", ORT_MISSING, "\n")
    start = perf_counter()
    tables = []
    for name in SECTIONS:
        if name in args.only:
            t0 = perf_counter()
            tables.append(SECTION_RUNNERS[name](plan))
            print(tables[-1].text(), "\n", flush=True)
            progress(f"{name} took {perf_counter() - t0:.0f} s")

    print(f"total time {perf_counter() - start:.0f} s")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(header + "\n\n" + "\n\n".join(t.markdown() for t in tables) + "\n")
            if FAILURES:
                f.write(
                    "\n**Agreement failures:**\n\n" + "\n".join(f"- {m}" for m in FAILURES) + "\n"
                )
    if FAILURES:
        print(f"\n{len(FAILURES)} AGREEMENT FAILURE(S):", *FAILURES, sep="\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
