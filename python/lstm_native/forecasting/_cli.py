"""``python -m lstm_native forecast data.csv --column y --horizon 12``: a forecast from a CSV.

Reads the CSV with the standard library (no pandas needed), one series (``--column``) or a
panel (``--id-column``), optionally dated (``--time-column``: ISO dates; the frequency, and
from it the season length, is inferred from the spacing of the dates), fits an
:class:`~lstm_native.forecasting.LSTMForecaster` with progress on stderr, and writes the
forecast with its interval as CSV to stdout or ``--out``; ``--plot file.png`` draws history,
forecast and interval (matplotlib, the ``plot`` extra).
"""

from __future__ import annotations

import csv
import sys
from typing import Any, Optional

import numpy as np

# spacing of dates in days -> (pandas-like frequency name, numpy unit, step, season length)
_SPACINGS = (
    (1, "D", "D", 1, 7),
    (7, "W", "D", 7, 52),
    (30.4, "M", "M", 1, 12),
    (91.3, "Q", "M", 3, 4),
    (365.25, "Y", "Y", 1, 1),
)


def read_csv(path: str, column: str, time_column: Optional[str], id_column: Optional[str]) -> tuple:
    """(ids, values per id, dates per id or None) from the CSV, rows in file order."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        for name in (column, time_column, id_column):
            if name is not None and name not in fields:
                raise ValueError(f"{path}: no column {name!r} (columns: {fields})")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: no rows")
    groups: dict = {}
    for i, row in enumerate(rows, start=2):
        key = row[id_column] if id_column else None
        try:
            value = float(row[column])
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}, line {i}: {column}={row[column]!r} is not a number "
                "(fill or drop missing values first)"
            ) from None
        date = None
        if time_column:
            try:
                date = np.datetime64(row[time_column].strip(), "D")
            except ValueError:
                raise ValueError(
                    f"{path}, line {i}: {time_column}={row[time_column]!r} is "
                    "not an ISO date (YYYY-MM-DD)"
                ) from None
        groups.setdefault(key, ([], []))
        groups[key][0].append(value)
        groups[key][1].append(date)
    ids = list(groups)
    values = [np.array(groups[k][0]) for k in ids]
    dates = None
    if time_column:
        dates = []
        for k in ids:
            d = np.array(groups[k][1], dtype="datetime64[D]")
            order = np.argsort(d, kind="stable")
            dates.append(d[order])
            values[ids.index(k)] = values[ids.index(k)][order]
    return ids, values, dates


def infer_spacing(dates: list) -> Optional[tuple]:
    """The _SPACINGS entry nearest the median spacing of the dates, or None."""
    gaps = np.concatenate([np.diff(d).astype(np.float64) for d in dates if len(d) > 1])
    if gaps.size == 0:
        return None
    median = float(np.median(gaps))
    return min(_SPACINGS, key=lambda s: abs(np.log(s[0] / max(median, 0.5))))


def future_dates(last: np.datetime64, spacing: tuple, horizon: int) -> np.ndarray:
    """The ``horizon`` dates after ``last`` (datetime64[D]) at the spacing's step. Monthly,
    quarterly and yearly steps keep the day of the month: month ends stay month ends
    (2003-04-30 -> 05-31, 06-30), other days stay (capped at a shorter month's end)."""
    _, _, unit, step, _ = spacing
    k = np.arange(1, horizon + 1)
    if unit == "D":
        return last + step * k
    month = last.astype("datetime64[M]")
    months = month + step * (12 if unit == "Y" else 1) * k
    starts = months.astype("datetime64[D]")
    ends = (months + 1).astype("datetime64[D]") - 1
    if (last + 1).astype("datetime64[M]") != month:  # the last day of its month
        return ends
    return np.minimum(starts + (last - month.astype("datetime64[D]")), ends)


def run_forecast(args: Any, out: Any = None) -> dict:
    """The ``forecast`` command; returns what it wrote (for tests)."""
    from ._forecaster import LSTMForecaster

    out = sys.stdout if out is None else out
    ids, values, dates = read_csv(args.file, args.column, args.time_column, args.id_column)
    spacing = infer_spacing(dates) if dates else None
    season = args.season_length or (spacing[4] if spacing else None)
    coverage = args.coverage
    lo_q, hi_q = round((1 - coverage) / 2, 6), round((1 + coverage) / 2, 6)
    est = LSTMForecaster(
        season_length=season,
        quantiles=(lo_q, 0.5, hi_q),
        n_ensemble=args.n_ensemble,
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    y = values if args.id_column else values[0]
    print(
        f"Fitting {args.n_ensemble} networks on {len(values)} series "
        f"({sum(len(v) for v in values)} observations, season length "
        f"{season or 'inferred'})...",
        file=sys.stderr,
        flush=True,
    )
    est.fit(y)
    q = est.predict(args.horizon, quantiles=[lo_q, 0.5, hi_q])
    q = q if args.id_column else [q]
    writer = csv.writer(open(args.out, "w", newline="") if args.out else out)
    header = ([args.id_column] if args.id_column else []) + [
        args.time_column or "step",
        args.column,
        f"lower_{coverage:g}",
        f"upper_{coverage:g}",
    ]
    writer.writerow(header)
    rows = []
    for k, key in enumerate(ids):
        when = (
            future_dates(dates[k][-1], spacing, args.horizon)
            if dates and spacing
            else np.arange(len(values[k]) + 1, len(values[k]) + args.horizon + 1)
        )
        for j in range(args.horizon):
            row = ([key] if args.id_column else []) + [
                str(when[j]),
                f"{q[k][j, 1]:.6g}",
                f"{q[k][j, 0]:.6g}",
                f"{q[k][j, 2]:.6g}",
            ]
            writer.writerow(row)
            rows.append(row)
    if args.plot:
        plot_forecast(args.plot, ids, values, dates, q, spacing, args)
    return {"header": header, "rows": rows, "season_length": est.season_length_}


def plot_forecast(
    path: str,
    ids: list,
    values: list,
    dates: Optional[list],
    q: list,
    spacing: Optional[tuple],
    args: Any,
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib") from None
    n = min(len(ids), 6)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.8 * n), squeeze=False)
    for k in range(n):
        ax = axes[k, 0]
        if dates and spacing:
            t_hist = dates[k]
            t_fut = future_dates(dates[k][-1], spacing, args.horizon)
        else:
            t_hist = np.arange(1, len(values[k]) + 1)
            t_fut = np.arange(len(values[k]) + 1, len(values[k]) + args.horizon + 1)
        ax.plot(t_hist, values[k], color="0.25", lw=1.2, label="history")
        ax.plot(t_fut, q[k][:, 1], color="C0", lw=1.8, label="forecast")
        ax.fill_between(
            t_fut,
            q[k][:, 0],
            q[k][:, 2],
            color="C0",
            alpha=0.25,
            label=f"{args.coverage:.0%} interval",
        )
        ax.set_title(str(ids[k]) if ids[k] is not None else args.column)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "forecast",
        help="forecast a series (or a panel) from a CSV file",
        description="Fit an LSTMForecaster on a CSV column and write the next "
        "--horizon values with an interval as CSV (stdout or --out).",
    )
    p.add_argument("file", help="a CSV file with a header row")
    p.add_argument("--column", required=True, help="the column to forecast")
    p.add_argument("--time-column", default=None, help="ISO dates (the frequency is inferred)")
    p.add_argument("--id-column", default=None, help="series ids: forecast a panel")
    p.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    p.add_argument(
        "--season-length",
        type=int,
        default=None,
        help="seasonal period (default: from the dates, else inferred)",
    )
    p.add_argument("--coverage", type=float, default=0.8, help="interval coverage (0.8)")
    p.add_argument("--n-ensemble", type=int, default=6, help="networks combined (6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the CSV here instead of stdout")
    p.add_argument("--plot", default=None, help="also draw a PNG (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    def run(args: Any) -> int:
        if args.horizon < 1:
            raise SystemExit("--horizon must be at least 1")
        if not 0 < args.coverage < 1:
            raise SystemExit("--coverage must lie in (0, 1)")
        try:
            run_forecast(args)
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0

    p.set_defaults(func=run)


__all__ = ["add_parser", "infer_spacing", "read_csv", "run_forecast"]
