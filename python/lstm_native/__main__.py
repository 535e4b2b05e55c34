"""Command line: ``python -m lstm_native <command>``.

Commands
--------
demo   Forecast the last two years of the airline passengers series (Box & Jenkins Series G)
       with an LSTMForecaster and compare it with the last-value, seasonal-naive and drift
       forecasts.
forecast
       Forecast a column of a CSV file (one series or a panel), with an interval and a figure.
info   Show how the compiled core was built.
why-lstm
       Train the plain RNN, the GRU, the LSTM and its variants with the same budget on the
       adding problem at growing lengths, and show the test error, when each solved it, and how
       much gradient reaches the first timestep (docs/why-lstm.md explains the numbers).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Optional

import numpy as np


def _months(start_index: int, count: int) -> str:
    """'1959-01..1960-12' for month indices counted from 1949-01."""

    def name(i: int) -> str:
        return f"{1949 + i // 12}-{i % 12 + 1:02d}"

    return f"{name(start_index)}..{name(start_index + count - 1)}"


def run_demo(
    holdout: int = 24,
    n_ensemble: int = 6,
    seed: int = 0,
    figure: Optional[str] = None,
    show_forecast: bool = False,
    out=None,
) -> dict:
    """Fits the demo forecaster and prints the comparison; returns the numbers as a dict."""
    from .datasets import load_airline_passengers
    from .forecasting import LSTMForecaster, coverage, mase, rmse

    out = sys.stdout if out is None else out

    def say(line: str = "") -> None:
        print(line, file=out)

    y = load_airline_passengers()
    n = y.size
    if not 12 <= holdout <= n - 48:
        raise ValueError(f"holdout must lie in [12, {n - 48}], got {holdout}")
    train, truth = y[: n - holdout], y[n - holdout :]
    t0 = time.perf_counter()
    est = LSTMForecaster(season_length=12, n_ensemble=n_ensemble, random_state=seed)
    est.fit(train)
    fit_seconds = time.perf_counter() - t0
    q = est.predict(holdout, quantiles=[0.1, 0.5, 0.9])
    seasonal = np.tile(train[-12:], holdout // 12 + 1)[:holdout]
    drift = train[-1] + (train[-1] - train[0]) / (len(train) - 1) * np.arange(1, holdout + 1)
    forecasts = {
        "LSTMForecaster": q[:, 1],
        "last value": np.full(holdout, train[-1]),
        "seasonal naive": seasonal,
        "drift": drift,
    }
    errors = {name: (mase(train, truth, f, 12), rmse(truth, f)) for name, f in forecasts.items()}

    say(
        "International airline passengers, monthly totals in thousands, 1949-01..1960-12 "
        "(Box & Jenkins Series G)"
    )
    say(
        f"Training: {_months(0, n - holdout)}; forecast: the next {holdout} months "
        f"{_months(n - holdout, holdout)} at once, from the end of the training data"
    )
    say(
        f"Model: LSTMForecaster, {n_ensemble} networks (log, deseasonalized, windows relative "
        f"to the smoothed level; their median moved halfway to an automatic ARIMA(p, d, 0) "
        f"of the same series). Fit time: {fit_seconds:.1f} s"
    )
    say()
    width = max(len(k) for k in errors) + 2
    say(f"{'forecast':<{width}}{'MASE':>8}{'RMSE':>8}")
    for name, (m, r) in errors.items():
        say(f"{name:<{width}}{m:8.2f}{r:8.1f}")
    cov = coverage(truth, q[:, 0], q[:, 2])
    say(f"80 % interval of LSTMForecaster: covers {cov:.0%} of the held-out months")
    if show_forecast:
        say()
        say(f"{'month':<9}{'actual':>8}" + "".join(f"{k:>16}" for k in forecasts))
        for j in range(holdout):
            say(
                f"{_months(n - holdout + j, 1)[:7]:<9}{truth[j]:8.0f}"
                + "".join(f"{f[j]:16.1f}" for f in forecasts.values())
            )
    if figure:
        _demo_figure(figure, y, n - holdout, q, forecasts)
        say(f"Figure: {figure}")
    return dict(
        mase={k: v[0] for k, v in errors.items()},
        rmse={k: v[1] for k, v in errors.items()},
        coverage=cov,
        fit_seconds=fit_seconds,
    )


def _demo_figure(path: str, y: np.ndarray, split: int, q: np.ndarray, forecasts: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--figure needs matplotlib: pip install matplotlib") from None
    months = np.arange(np.datetime64("1949-01"), np.datetime64("1961-01"), dtype="datetime64[M]")
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(months, y, color="0.2", lw=1.2, label="actual")
    fut = months[split:]
    ax.fill_between(fut, q[:, 0], q[:, 2], color="C0", alpha=0.25, label="80 % interval")
    for k, (name, f) in enumerate(forecasts.items()):
        ax.plot(
            fut, f, lw=2.0 if k == 0 else 1.0, ls="-" if k == 0 else "--", color=f"C{k}", label=name
        )
    ax.axvline(months[split], color="0.6", lw=0.8)
    ax.set_ylabel("passengers (thousands)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _demo_networks(args: argparse.Namespace) -> int:
    """--n-ensemble when given, else 2 with --quick, else the forecaster's default."""
    from .forecasting import LSTMForecaster

    return args.n_ensemble or (2 if args.quick else LSTMForecaster().n_ensemble)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .forecasting._cli import check_output_paths

    check_output_paths({"--figure": args.figure}, ("--figure",))
    run_demo(
        holdout=args.holdout,
        n_ensemble=_demo_networks(args),
        seed=args.seed,
        figure=args.figure,
        show_forecast=args.show_forecast,
    )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from . import __version__, build_info

    print(f"lstm_native {__version__}")
    for k, v in build_info().items():
        print(f"  {k}: {v}")
    return 0


# -- why-lstm -------------------------------------------------------------------------------

WHY_LSTM_CELLS = (
    "rnn",
    "gru",
    "lstm",
    "lstm_peephole",
    "lstm_1997",
    "cifg",
    "no_input_gate",
    "no_output_gate",
    "no_input_activation",
    "no_output_activation",
    "ungated",
    "cell_as_input",
)
MEAN_BASELINE_MSE = 1.0 / 6.0  # the adding problem's target variance: predicting the mean
SOLVED_MSE = 0.05  # "solved": test MSE below this (0.3 of the baseline)

# Budgets: the same for every cell at every length. --quick is for a look in a minute or two.
WHY_LSTM_FULL = dict(
    lengths=(50, 100, 200, 400),
    n_train=5000,
    n_test=1000,
    epochs=30,
    hidden_size=32,
    learning_rate=0.01,
    batch_size=32,
)
WHY_LSTM_QUICK = dict(
    lengths=(50, 100),
    n_train=2000,
    n_test=500,
    epochs=20,
    hidden_size=32,
    learning_rate=0.01,
    batch_size=32,
)
N_PROBE = 256  # test sequences the gradient flow is measured on


def _why_lstm_one(
    cell: str,
    T: int,
    n_train: int,
    n_test: int,
    epochs: int,
    hidden_size: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    n_jobs: Optional[int],
) -> dict:
    """One cell at one length: train epoch by epoch, test MSE after each, gradient flow at
    initialization and after training. The data depend on (T, seed) only: every cell sees the
    same sequences."""
    from sklearn.exceptions import ConvergenceWarning

    from . import LSTMRegressor
    from ._engine import NonFiniteOutput, TrainingDiverged
    from .datasets import make_adding_problem
    from .diagnostics import gradient_flow

    t0 = time.perf_counter()
    X, y = make_adding_problem(n_train, T, random_state=[seed, T, 0])
    Xt, yt = make_adding_problem(n_test, T, random_state=[seed, T, 1])
    Xp, yp = Xt[:N_PROBE], yt[:N_PROBE]
    est = LSTMRegressor(
        cell=cell,
        hidden_size=hidden_size,
        learning_rate_init=learning_rate,
        batch_size=batch_size,
        alpha=0.0,
        random_state=seed,
        n_jobs=n_jobs,
    )
    # y=None: the gradient of the prediction itself, dŷ/dh_t, i.e. what one unit of error at
    # the output sends back to step t (the loss's gradient is that times the error)
    flow_init = gradient_flow(est, Xp, yp, of="output")  # unfitted: where fit() starts
    curve, grads = [], []  # test MSE, |dy/dh_0| after each epoch
    diverged = False
    flow_trained = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(epochs):
            try:
                est.partial_fit(X, y)
                curve.append(float(np.mean((est.predict(Xt) - yt) ** 2)))
                flow_trained = gradient_flow(est, Xp, of="output")
                grads.append(float(flow_trained["dh_norm"][0, 0]))
            except (TrainingDiverged, NonFiniteOutput):  # the network overflowed: stop there
                diverged = True
                flow_trained = None
                break
    solved = next((e + 1 for e, m in enumerate(curve) if m < SOLVED_MSE), None)
    steps_per_epoch = -(-n_train // batch_size)
    late = grads[len(grads) // 2 :]
    return dict(
        cell=cell,
        T=T,
        test_mse=curve[-1] if curve else float("nan"),
        curve=curve,
        solved_epoch=solved,
        diverged=diverged,
        steps_per_epoch=steps_per_epoch,
        grad_first_init=float(flow_init["dh_norm"][0, 0]),
        dh_norm_init=flow_init["dh_norm"][:, 0].tolist(),
        grad_first_curve=grads,
        grad_first_late=float(np.median(late)) if late else float("nan"),
        grad_first_trained=(
            float(flow_trained["dh_norm"][0, 0]) if flow_trained is not None else float("nan")
        ),
        dh_norm_trained=(
            flow_trained["dh_norm"][:, 0].tolist() if flow_trained is not None else None
        ),
        forget_product_init=(
            flow_init["forget_product"][0, 0] if "forget_product" in flow_init else None
        ),
        seconds=time.perf_counter() - t0,
    )


def _why_lstm_job(kw: dict) -> dict:
    return _why_lstm_one(**kw)


def _fmt_g(v: float) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return "underflow" if v == 0 else f"{v:.1e}"  # below float64's 5e-324


def why_lstm_table(results: list, markdown: bool = False) -> str:
    """The results as a text (or markdown) table, one block per length."""
    lines = []
    header = (
        "cell",
        "test MSE",
        "solved at epoch",
        "|dy/dh_0| init",
        "|dy/dh_0| late training",
        "|dy/dh_0| end",
    )
    for T in sorted({r["T"] for r in results}):
        rows = [r for r in results if r["T"] == T]
        cells = []
        for r in rows:
            mse = "diverged" if r["diverged"] else f"{r['test_mse']:.4f}"
            cells.append(
                (
                    r["cell"],
                    mse,
                    str(r["solved_epoch"] or "-"),
                    _fmt_g(r["grad_first_init"]),
                    _fmt_g(r["grad_first_late"]),
                    _fmt_g(r["grad_first_trained"]),
                )
            )
        if markdown:
            lines.append(f"**T = {T}**")
            lines.append("")
            lines.append("| " + " | ".join(h.replace("|", "\\|") for h in header) + " |")
            lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
            lines += ["| " + " | ".join(c) + " |" for c in cells]
        else:
            lines.append(f"T = {T}")
            w = [max(len(header[j]), *(len(c[j]) for c in cells)) for j in range(len(header))]
            lines.append(
                "  ".join(h.ljust(w[0]) if j == 0 else h.rjust(w[j]) for j, h in enumerate(header))
            )
            lines += [
                "  ".join(v.ljust(w[0]) if j == 0 else v.rjust(w[j]) for j, v in enumerate(c))
                for c in cells
            ]
        lines.append("")
    return "\n".join(lines)


# the three main cells bold; the LSTM variants dashed/dotted in warm colours; the two
# alternatives of the question in greys
_FIGURE_STYLE = {
    "rnn": dict(color="black", lw=2.4, ls="-"),
    "gru": dict(color="tab:green", lw=2.4, ls="-"),
    "lstm": dict(color="tab:red", lw=2.4, ls="-"),
    "lstm_peephole": dict(color="tab:orange", lw=1.3, ls="--"),
    "lstm_1997": dict(color="tab:purple", lw=1.3, ls="--"),
    "cifg": dict(color="tab:olive", lw=1.3, ls="--"),
    "no_input_gate": dict(color="tab:blue", lw=1.3, ls="-."),
    "no_output_gate": dict(color="tab:cyan", lw=1.3, ls="-."),
    "no_input_activation": dict(color="tab:pink", lw=1.3, ls=":"),
    "no_output_activation": dict(color="tab:brown", lw=1.3, ls=":"),
    "ungated": dict(color="0.35", lw=1.8, ls="-"),
    "cell_as_input": dict(color="0.65", lw=1.8, ls="-"),
}


def why_lstm_figure(results: list, path: str) -> bool:
    """The gradient of the prediction w.r.t. h_t against the lag T-1-t, one line per cell: at
    initialization (top row) and after training (bottom row), one column per length. False
    without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    lengths = sorted({r["T"] for r in results})
    cells = list(dict.fromkeys(r["cell"] for r in results))
    fig, axes = plt.subplots(
        2, len(lengths), figsize=(3.6 * len(lengths) + 0.6, 7.4), squeeze=False, sharey="row"
    )
    for j, T in enumerate(lengths):
        for cell in cells:
            r = next((r for r in results if r["T"] == T and r["cell"] == cell), None)
            if r is None:
                continue
            style = dict(_FIGURE_STYLE.get(cell, dict(color="0.5", lw=1.0, ls=":")), label=cell)
            lag = np.arange(T)[::-1]
            init = np.asarray(r["dh_norm_init"])
            axes[0, j].semilogy(lag, np.maximum(init, 1e-300), **style)
            if r["dh_norm_trained"] is not None:
                tr = np.asarray(r["dh_norm_trained"])
                axes[1, j].semilogy(lag, np.maximum(tr, 1e-300), **style)
        axes[0, j].set_title(f"adding problem, T = {T}")
        axes[1, j].set_xlabel("lag T-1-t (steps back from the output)")
    axes[0, 0].set_ylabel("|dy/dh_t| at initialization")
    axes[1, 0].set_ylabel("|dy/dh_t| after training")
    for ax in axes.ravel():
        ax.grid(True, which="major", alpha=0.3)
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(lo, 1e-30), min(hi, 1e3))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return True


def run_why_lstm(
    cells: Sequence[str] = WHY_LSTM_CELLS,
    lengths: Sequence[int] = (50, 100, 200, 400),
    n_train: int = 5000,
    n_test: int = 1000,
    epochs: int = 30,
    hidden_size: int = 32,
    learning_rate: float = 0.01,
    batch_size: int = 32,
    seed: int = 0,
    jobs: Optional[int] = None,
    figure: Optional[str] = None,
    markdown: bool = False,
    out=None,
) -> list:
    """Runs the experiment, prints the table (and writes the figure); returns the results, one
    dict per (cell, length)."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from .nn import canonical_cell

    out = sys.stdout if out is None else out
    for c in cells:
        canonical_cell(c)  # ValueError early for an unknown cell
    for name, v in dict(
        n_train=n_train,
        n_test=n_test,
        epochs=epochs,
        hidden_size=hidden_size,
        batch_size=batch_size,
        lengths=min(lengths, default=0),
    ).items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate < float("inf")):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if jobs is None:
        jobs = min(2, os.cpu_count() or 1)
    tasks = [
        dict(
            cell=c,
            T=int(T),
            n_train=n_train,
            n_test=n_test,
            epochs=epochs,
            hidden_size=hidden_size,
            learning_rate=learning_rate,
            batch_size=batch_size,
            seed=seed,
            n_jobs=1 if jobs > 1 else None,
        )
        for T in lengths
        for c in cells
    ]
    steps = epochs * -(-n_train // batch_size)
    print(
        f"Adding problem (Hochreiter & Schmidhuber 1997): {n_train} training and {n_test} "
        f"test sequences per length; every cell gets the same budget: {epochs} epochs of "
        f"batches of {batch_size} ({steps} Adam steps, learning rate {learning_rate}, "
        f"gradient norm clipped at 5), hidden size {hidden_size}, seed {seed}.",
        file=out,
    )
    print(
        f"Always predicting the mean gives test MSE {MEAN_BASELINE_MSE:.3f}; 'solved' = "
        f"test MSE < {SOLVED_MSE} (first epoch). |dy/dh_0|: the mean norm of the gradient of "
        "the prediction (made at the last step) w.r.t. the first step's hidden state, i.e. "
        "what a unit error at the output sends back over T-1 steps (the loss's gradient is "
        "that times the error; diagnostics.gradient_flow(..., of='output') on "
        f"{min(N_PROBE, n_test)} test sequences), at initialization, in late training (the "
        "median over the epochs of the second half: one epoch's value fluctuates by orders of "
        "magnitude for some cells) and at the end.",
        file=out,
    )
    print(file=out, flush=True)
    t0 = time.perf_counter()
    if jobs > 1 and len(tasks) > 1:
        # longest first, so that the two workers finish together
        order = sorted(range(len(tasks)), key=lambda i: -tasks[i]["T"])
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            done = dict(zip(order, pool.map(_why_lstm_job, [tasks[i] for i in order])))
        results = [done[i] for i in range(len(tasks))]
    else:
        results = [_why_lstm_job(t) for t in tasks]
    print(why_lstm_table(results, markdown=markdown), file=out)
    print(
        f"Total time {time.perf_counter() - t0:.0f} s ({jobs} worker{'s' if jobs > 1 else ''}).",
        file=out,
    )
    if figure:
        if why_lstm_figure(results, figure):
            print(f"Figure: {figure}", file=out)
        else:
            print(
                "No figure: matplotlib is not installed (pip install 'lstm_native[plot]').",
                file=out,
            )
    return results


def _cmd_why_lstm(args: argparse.Namespace) -> int:
    budget = dict(WHY_LSTM_QUICK if args.quick else WHY_LSTM_FULL)
    for key in ("n_train", "n_test", "epochs", "hidden_size", "learning_rate", "batch_size"):
        v = getattr(args, key)
        if v is not None:
            budget[key] = v
    if args.lengths:
        try:
            budget["lengths"] = tuple(int(v) for v in args.lengths.split(","))
        except ValueError:
            raise ValueError(
                f"--lengths takes integers, e.g. 50,100; got {args.lengths!r}"
            ) from None
    cells = tuple(args.cells.split(",")) if args.cells else WHY_LSTM_CELLS
    # (without matplotlib the run still prints its tables and says there is no figure)
    from .forecasting._cli import check_output_paths

    check_output_paths(
        {"--figure": args.figure, "--json": args.json}, ("--figure",), need_matplotlib=False
    )
    results = run_why_lstm(
        cells=cells,
        seed=args.seed,
        jobs=args.jobs,
        figure=args.figure,
        markdown=args.markdown,
        **budget,
    )
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(dict(budget=dict(budget, seed=args.seed), results=results), f, indent=1)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lstm_native", description="lstm_native command line tools"
    )
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True

    demo = sub.add_parser(
        "demo",
        help="forecast the airline passengers series with an LSTM",
        description="Fit an LSTMForecaster on the monthly airline passengers "
        "(1949-1958), forecast the last two years at once and compare with "
        "the last-value, seasonal-naive and drift forecasts.",
    )
    demo.add_argument("--holdout", type=int, default=24, help="months forecast (24)")
    demo.add_argument(
        "--n-ensemble", type=int, default=None, help="networks combined (6; 2 with --quick)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="two networks, for tests")
    demo.add_argument(
        "--figure", default=None, help="also draw the figure (.png, .svg, ...; needs matplotlib)"
    )
    demo.add_argument(
        "--show-forecast", action="store_true", help="also print every held-out month"
    )
    demo.set_defaults(func=_cmd_demo)

    from .forecasting._cli import add_parser as add_forecast_parser

    add_forecast_parser(sub)

    info = sub.add_parser("info", help="show how the compiled core was built")
    info.set_defaults(func=_cmd_info)

    why = sub.add_parser(
        "why-lstm",
        help="why gates work: RNN, GRU, LSTM and its variants on the adding problem",
        description="Train the plain RNN, the GRU, the LSTM and its variants with the same "
        "budget on the adding problem at growing lengths and print the test MSE (against the "
        "0.167 of always predicting the mean), the epoch each solved it, and the gradient that "
        "reaches the first timestep. Full run: 15-30 minutes on 2 cores; --quick: a minute "
        "or two.",
    )
    why.add_argument(
        "--quick", action="store_true", help="T = 50, 100; 2000 training sequences, 20 epochs"
    )
    why.add_argument("--lengths", default=None, help="comma-separated T (50,100,200,400)")
    why.add_argument(
        "--cells", default=None, help="comma-separated cells (" + ",".join(WHY_LSTM_CELLS) + ")"
    )
    why.add_argument(
        "--n-train",
        dest="n_train",
        type=int,
        default=None,
        help="training sequences per length (5000; 2000 with --quick)",
    )
    why.add_argument(
        "--n-test",
        dest="n_test",
        type=int,
        default=None,
        help="test sequences per length (1000; 500 with --quick)",
    )
    why.add_argument("--epochs", type=int, default=None, help="epochs (30; 20 with --quick)")
    why.add_argument("--hidden-size", dest="hidden_size", type=int, default=None, help="(32)")
    why.add_argument(
        "--learning-rate",
        dest="learning_rate",
        type=float,
        default=None,
        help="Adam's learning rate (0.01)",
    )
    why.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="(32)")
    why.add_argument("--seed", type=int, default=0)
    why.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="worker processes (min(2, CPUs)); results do not depend on it",
    )
    why.add_argument(
        "--figure",
        default=None,
        help="write the gradient-norm-vs-lag figure here (needs matplotlib)",
    )
    why.add_argument("--markdown", action="store_true", help="print markdown tables")
    why.add_argument("--json", default=None, help="also write every number to this JSON file")
    why.set_defaults(func=_cmd_why_lstm)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a command; a user's error (a bad option value, a path that cannot be written) is
    one line on stderr and exit status 2, not a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
