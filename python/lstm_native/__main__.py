"""Command line: ``python -m lstm_native <command>``.

Commands
--------
demo   Forecast the airline passengers series (Box & Jenkins Series G) with an LSTMRegressor
       and compare it with the last-value and seasonal-naive forecasts.
info   Show how the compiled core was built.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Optional, Sequence

import numpy as np


def _months(start_index: int, count: int) -> str:
    """'1959-01..1960-12' for month indices counted from 1949-01."""
    def name(i: int) -> str:
        return f"{1949 + i // 12}-{i % 12 + 1:02d}"
    return f"{name(start_index)}..{name(start_index + count - 1)}"


def run_demo(window: int = 12, holdout: int = 24, cell: str = "lstm", hidden_size: int = 16,
             max_iter: int = 300, learning_rate_init: float = 0.01, seed: int = 0,
             show_forecast: bool = False, out=None) -> dict:
    """Fits the demo model and prints the comparison; returns the numbers as a dict."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from . import LSTMRegressor, SequenceScaler
    from .datasets import load_airline_passengers

    out = sys.stdout if out is None else out

    def say(line: str = "") -> None:
        print(line, file=out)

    y = load_airline_passengers()
    n = y.size
    if not 1 <= window < n - holdout:
        raise ValueError(f"window must lie in [1, {n - holdout - 1}], got {window}")
    if not 1 <= holdout < n - window:
        raise ValueError(f"holdout must lie in [1, {n - window - 1}], got {holdout}")
    log_y = np.log(y)
    # Sample t: the `window` log values before month t, taken relative to the last of them
    # (so the network sees the shape of the recent past, not the level, which trends upwards
    # beyond anything seen in training), and the target log(y_t) - log(y_{t-1}).
    targets = np.arange(window, n)
    X = np.stack([log_y[t - window: t] - log_y[t - 1] for t in targets])  # (samples, window)
    Y = log_y[targets] - log_y[targets - 1]
    train = targets < n - holdout
    test = ~train

    model = TransformedTargetRegressor(
        regressor=make_pipeline(
            SequenceScaler(),
            LSTMRegressor(cell=cell, hidden_size=hidden_size, max_iter=max_iter,
                          learning_rate_init=learning_rate_init, random_state=seed)),
        transformer=StandardScaler())
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[train], Y[train])
    fit_seconds = time.perf_counter() - t0
    lstm = model.regressor_[-1]

    # One-step-ahead forecasts: each held-out month from the true history before it.
    t_test = targets[test]
    truth = y[t_test]
    network_forecast = np.exp(log_y[t_test - 1] + model.predict(X[test]))
    forecasts = {
        f"{cell.upper()} (hidden {hidden_size})": network_forecast,
        "last value (t-1)": y[t_test - 1],
        "seasonal naive (t-12)": y[t_test - 12],
    }
    errors = {name: (float(np.sqrt(np.mean((f - truth) ** 2))), float(np.mean(np.abs(f - truth))))
              for name, f in forecasts.items()}

    say("International airline passengers, monthly totals in thousands, 1949-01..1960-12 "
        "(Box & Jenkins Series G)")
    say(f"Model: {lstm.cell.upper()} regressor, hidden_size={hidden_size}, on windows of "
        f"{window} months of log(passengers), taken relative to the window's last month, "
        "-> next month's log change")
    say(f"Training: {int(train.sum())} windows with targets {_months(window, int(train.sum()))};"
        f" held out: the last {holdout} months {_months(n - holdout, holdout)}")
    say("Forecast: one-step-ahead, each held-out month from the true history up to the month "
        "before it")
    say(f"Fit time: {fit_seconds:.2f} s ({lstm.n_iter_} epochs, final training loss "
        f"{lstm.loss_:.4f})")
    say()
    width = max(len(k) for k in errors) + 2
    say(f"{'forecast':<{width}}{'RMSE':>8}{'MAE':>8}")
    for name, (rmse, mae) in errors.items():
        say(f"{name:<{width}}{rmse:8.1f}{mae:8.1f}")
    if show_forecast:
        say()
        say(f"{'month':<9}{'actual':>8}" + "".join(f"{k.split(' (')[0]:>16}" for k in forecasts))
        for j, t in enumerate(t_test):
            say(f"{_months(int(t), 1)[:7]:<9}{truth[j]:8.0f}"
                + "".join(f"{f[j]:16.1f}" for f in forecasts.values()))
    names = list(errors)
    return dict(rmse={k: v[0] for k, v in errors.items()}, mae={k: v[1] for k, v in errors.items()},
                model_name=names[0], fit_seconds=fit_seconds, n_iter=lstm.n_iter_)


def _cmd_demo(args: argparse.Namespace) -> int:
    max_iter = args.max_iter if args.max_iter is not None else (120 if args.quick else 300)
    run_demo(window=args.window, holdout=args.holdout, cell=args.cell,
             hidden_size=args.hidden_size, max_iter=max_iter,
             learning_rate_init=args.learning_rate, seed=args.seed,
             show_forecast=args.show_forecast)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from . import __version__, build_info

    print(f"lstm_native {__version__}")
    for k, v in build_info().items():
        print(f"  {k}: {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lstm_native",
                                     description="lstm_native command line tools")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True

    demo = sub.add_parser("demo", help="forecast the airline passengers series with an LSTM",
                          description="Train an LSTMRegressor on the monthly airline passengers "
                          "(1949-1960), forecast the last months one step ahead and compare "
                          "with the last-value and seasonal-naive forecasts.")
    demo.add_argument("--window", type=int, default=12, help="months per input window (12)")
    demo.add_argument("--holdout", type=int, default=24, help="months held out (24)")
    demo.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    demo.add_argument("--hidden-size", type=int, default=16)
    demo.add_argument("--max-iter", type=int, default=None,
                      help="maximum epochs (300; 120 with --quick)")
    demo.add_argument("--learning-rate", type=float, default=0.01)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="fewer epochs, for tests")
    demo.add_argument("--show-forecast", action="store_true",
                      help="also print every held-out month")
    demo.set_defaults(func=_cmd_demo)

    info = sub.add_parser("info", help="show how the compiled core was built")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
