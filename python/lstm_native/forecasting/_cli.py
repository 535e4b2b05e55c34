"""``python -m lstm_native forecast data.csv --column y --horizon 12``: a forecast from a CSV.

Reads the CSV with the standard library (no pandas needed), one series (``--column``) or a
panel (``--id-column``), optionally dated (``--time-column``: ISO dates and times, read as the
local calendar time they name; they must be regular: calendar months apart, a fixed step apart
or business days, which gives the season length; duplicates and gaps are errors), fits an
:class:`~lstm_native.forecasting.LSTMForecaster` with progress on stderr, and writes the
forecast with its interval as CSV to stdout or ``--out``; ``--plot file.png`` draws history,
forecast and interval (matplotlib, the ``plot`` extra).
"""

from __future__ import annotations

import csv
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

# ISO 8601 dates and times as the CLI takes them: a year, a month, a day, optionally a time
# (to the second; fractions dropped) and a time-zone designator, which is dropped: a date is
# read as the local calendar date it names (2020-12-01T00:00+02:00 is the 1st of December,
# where numpy's UTC conversion would give the 30th of November).
_ISO = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?)?)?"
    r"\s*(?:Z|[+-]\d{2}:?\d{2})?$"
)


def parse_date(text: str) -> np.datetime64:
    """A CSV cell as datetime64[s] (ValueError when it is not an ISO date)."""
    m = _ISO.match(text.strip())
    if not m:
        raise ValueError(text)
    year, month, day, hour, minute, sec = m.groups()
    date = f"{year}-{month or '01'}-{day or '01'}"
    clock = f"T{hour}:{minute}:{sec or '00'}" if hour else "T00:00:00"
    return np.datetime64(date + clock, "s")  # ValueError for 2020-13-45


def read_csv(path: str, column: str, time_column: Optional[str], id_column: Optional[str]) -> tuple:
    """(ids, values per id, dates per id (datetime64[s], increasing) or None) from the CSV."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            for name in (column, time_column, id_column):
                if name is not None and name not in fields:
                    raise ValueError(f"{path}: no column {name!r} (columns: {fields})")
            rows = list(reader)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
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
                date = parse_date(row[time_column] or "")
            except ValueError:
                raise ValueError(
                    f"{path}, line {i}: {time_column}={row[time_column]!r} is not an ISO "
                    "date (YYYY-MM-DD, optionally with a time THH:MM[:SS])"
                ) from None
        groups.setdefault(key, ([], [], []))
        groups[key][0].append(value)
        groups[key][1].append(date)
        groups[key][2].append(i)
    ids = list(groups)
    values = [np.array(groups[k][0]) for k in ids]
    if not time_column:
        return ids, values, None
    dates = []
    for k, key in enumerate(ids):
        d = np.array(groups[key][1], dtype="datetime64[s]")
        order = np.argsort(d, kind="stable")
        d, values[k] = d[order], values[k][order]
        same = np.flatnonzero(d[1:] == d[:-1])
        if same.size:
            lines = np.array(groups[key][2])[order][same[0] : same[0] + 2]
            where = "" if key is None else f" of series {key!r}"
            hint = "" if id_column else " (a panel? name its id column with --id-column)"
            raise ValueError(
                f"{path}, lines {lines[0]} and {lines[1]}: the date {_show(d[same[0]])}{where} "
                f"appears twice{hint}"
            )
        dates.append(d)
    return ids, values, dates


@dataclass(frozen=True)
class Spacing:
    """How the dates follow one another: ``months`` calendar months apart (keeping the day of
    the month), ``seconds`` apart, or one business day apart (``business``); ``season`` the
    seasonal period it implies; ``name`` for messages."""

    name: str
    season: int
    months: int = 0
    seconds: int = 0
    business: bool = False


_MONTHLY = {1: ("monthly", 12), 2: ("every 2 months", 6), 3: ("quarterly", 4)}
_MONTHLY.update({4: ("every 4 months", 3), 6: ("half-yearly", 2), 12: ("yearly", 1)})
_DAY = 86400


def _seconds_spacing(step: int) -> Spacing:
    """A fixed step of ``step`` seconds and its season: a week of days (7), a year of weeks
    (52) or fortnights (26), a day of hours or shorter steps (up to 168 a day), else an
    hour of them; 1 when none divides evenly."""
    days = {_DAY: ("daily", 7), 7 * _DAY: ("weekly", 52), 14 * _DAY: ("fortnightly", 26)}
    if step in days:
        name, season = days[step]
    elif step < _DAY and _DAY % step == 0 and _DAY // step <= 168:
        name, season = f"every {step} s", _DAY // step
    elif step < 3600 and 3600 % step == 0:
        name, season = f"every {step} s", 3600 // step
    else:
        name, season = f"every {step} s", 1
    return Spacing(name, season, seconds=step)


def infer_spacing(dates: list) -> Optional[Spacing]:
    """The Spacing all series' dates follow (None when no series has two dates); ValueError
    naming the first gap that breaks it: dates must be regular, a forecast is a number of
    steps after the last one."""
    seqs = [d for d in dates if len(d) > 1]
    if not seqs:
        return None
    secs = np.concatenate([np.diff(d).astype(np.int64) for d in seqs])
    months = np.concatenate([np.diff(d.astype("datetime64[M]")).astype(np.int64) for d in seqs])
    midnight = all((d - d.astype("datetime64[D]")).astype(np.int64).max() == 0 for d in seqs)
    step_m = int(np.median(months))
    if midnight and secs.min() >= 28 * _DAY and step_m in _MONTHLY:
        spacing = Spacing(*_MONTHLY[step_m], months=step_m)
        gaps = [np.diff(d.astype("datetime64[M]")).astype(np.int64) != step_m for d in seqs]
    else:
        step = int(np.median(secs))
        spacing = _seconds_spacing(step)
        gaps = [np.diff(d).astype(np.int64) != step for d in seqs]
        if step == _DAY and any(g.any() for g in gaps):  # weekdays only: business days
            days = [d.astype("datetime64[D]") for d in seqs]
            if midnight and all(np.is_busday(d).all() for d in days):
                spacing = Spacing("business daily", 5, business=True)
                gaps = [np.busday_count(d[:-1], d[1:]) != 1 for d in days]
    for d, g in zip(seqs, gaps):
        if g.any():
            k = int(np.argmax(g))
            raise ValueError(
                f"the dates are not regular ({spacing.name} by most gaps): {_show(d[k])} is "
                f"followed by {_show(d[k + 1])}; fill the missing dates (the forecast is a "
                "number of steps after the last date)"
            )
    return spacing


def future_dates(last: np.datetime64, spacing: Spacing, horizon: int) -> np.ndarray:
    """The ``horizon`` dates (datetime64[s]) after ``last`` at the spacing's step. Steps of
    months keep the day of the month: month ends stay month ends (2003-04-30 -> 05-31,
    06-30), other days stay (capped at a shorter month's end)."""
    last = np.datetime64(last, "s")
    k = np.arange(1, horizon + 1)
    if spacing.business:
        day = last.astype("datetime64[D]")
        return np.busday_offset(day, k, roll="forward").astype("datetime64[s]")
    if not spacing.months:
        return last + np.timedelta64(spacing.seconds, "s") * k
    day = last.astype("datetime64[D]")
    month = last.astype("datetime64[M]")
    months = month + spacing.months * k
    starts = months.astype("datetime64[D]")
    ends = (months + 1).astype("datetime64[D]") - 1
    if (day + 1).astype("datetime64[M]") != month:  # the last day of its month
        return ends.astype("datetime64[s]")
    return np.minimum(starts + (day - month.astype("datetime64[D]")), ends).astype("datetime64[s]")


def _show(d: np.datetime64, spacing: Optional[Spacing] = None) -> str:
    """A date as the CLI writes it: YYYY-MM-DD at midnight, else with its time; always with
    it at a spacing shorter than a day (so that midnight is not written otherwise)."""
    d = np.datetime64(d, "s")
    clock = spacing is not None and spacing.seconds % _DAY != 0
    return (
        str(d.astype("datetime64[D]")) if d == d.astype("datetime64[D]") and not clock else str(d)
    )


def run_forecast(args: Any, out: Any = None) -> dict:
    """The ``forecast`` command; returns what it wrote (for tests)."""
    from ._forecaster import LSTMForecaster

    out = sys.stdout if out is None else out
    ids, values, dates = read_csv(args.file, args.column, args.time_column, args.id_column)
    spacing = infer_spacing(dates) if dates else None
    season = args.season_length or (spacing.season if spacing else None)
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
    if not args.quiet:
        print(
            f"Fitting {args.n_ensemble} networks on {len(values)} series "
            f"({sum(len(v) for v in values)} observations, "
            f"{spacing.name + ' dates, ' if spacing else ''}season length "
            f"{season or 'inferred'})...",
            file=sys.stderr,
            flush=True,
        )
    est.fit(y)
    q = est.predict(args.horizon, quantiles=[lo_q, 0.5, hi_q])
    q = q if args.id_column else [q]
    header = ([args.id_column] if args.id_column else []) + [
        args.time_column or "step",
        args.column,
        f"lower_{coverage:g}",
        f"upper_{coverage:g}",
    ]
    rows = []
    for k, key in enumerate(ids):
        if dates and spacing:
            when = [_show(d, spacing) for d in future_dates(dates[k][-1], spacing, args.horizon)]
        else:
            when = [str(len(values[k]) + j) for j in range(1, args.horizon + 1)]
        for j in range(args.horizon):
            # 10 significant digits: a series in the millions keeps its cents
            row = ([key] if args.id_column else []) + [
                when[j],
                f"{q[k][j, 1]:.10g}",
                f"{q[k][j, 0]:.10g}",
                f"{q[k][j, 2]:.10g}",
            ]
            rows.append(row)
    if args.out:
        with open(args.out, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
    else:
        csv.writer(out).writerows([header, *rows])
    if args.plot:
        plot_forecast(args.plot, ids, values, dates, q, spacing, args)
    return {"header": header, "rows": rows, "season_length": est.season_length_}


def check_output_paths(paths: dict, figures: tuple = (), need_matplotlib: bool = True) -> None:
    """ValueError before any work when an output file cannot be written: ``paths`` maps an
    option to its path (None: not asked for); those named in ``figures`` must also have a
    suffix matplotlib writes (and matplotlib, with ``need_matplotlib``). A fit can take
    minutes; its result must not be lost to a typo in a path."""
    for option, path in paths.items():
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise ValueError(f"{option} {path} is a folder, not a file")
        if not os.path.isdir(folder):
            raise ValueError(f"{option} {path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise ValueError(f"{option} {path}: the folder {folder} is not writable")
    for option in figures:
        path = paths.get(option)
        if path is None:
            continue
        try:
            from matplotlib.figure import Figure
        except ImportError:
            if not need_matplotlib:
                continue
            raise ValueError(f"{option} needs matplotlib: pip install matplotlib") from None
        formats = Figure().canvas.get_supported_filetypes()
        suffix = os.path.splitext(path)[1].lstrip(".").lower()
        if suffix not in formats:
            raise ValueError(
                f"{option} {path}: the suffix chooses the image format; matplotlib writes "
                f"{', '.join('.' + f for f in sorted(formats))}"
            )


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
    except ImportError:  # (check_outputs said so before the fit)
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
    p.add_argument(
        "--time-column",
        default=None,
        help="ISO dates, YYYY-MM-DD[THH:MM[:SS]] (the spacing, and from it the season length, "
        "is inferred; the dates must be regular)",
    )
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
    p.add_argument(
        "--plot",
        default=None,
        help="also draw history, forecast and interval to this image; its suffix chooses "
        "the format (.png, .svg, .pdf; needs matplotlib)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    def run(args: Any) -> int:
        if args.horizon < 1:
            raise SystemExit("--horizon must be at least 1")
        if not 0 < args.coverage < 1:
            raise SystemExit("--coverage must lie in (0, 1)")
        if args.season_length is not None and args.season_length < 1:
            raise SystemExit("--season-length must be at least 1 (1: no season)")
        try:
            check_output_paths({"--out": args.out, "--plot": args.plot}, ("--plot",))
            run_forecast(args)
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0

    p.set_defaults(func=run)


__all__ = ["Spacing", "add_parser", "future_dates", "infer_spacing", "read_csv", "run_forecast"]
