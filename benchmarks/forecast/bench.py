"""Forecasting benchmark: LSTMForecaster against statsforecast's SeasonalNaive, AutoETS,
AutoARIMA and AutoTheta on real series (data.py), M4's protocol, in one run.

Protocol: each series is cut at an origin, every method is fitted on the part before it (with
the series' season length: 12 monthly, 4 quarterly, 1 yearly) and forecasts the next h values
(monthly 18, quarterly 8, yearly 6), scored by MASE (in-sample seasonal-naive scale) and
sMAPE. Two splits: ``dev`` (origin n - 2h, scored on the h values before the last h: where
defaults were chosen) and ``test`` (origin n - h, scored on the last h: the reported numbers,
never used to choose anything). Single series are fitted one at a time; a panel is fitted by
LSTMForecaster as ONE global model over its series, and by the statistical methods series by
series. A method that fails on a series is scored with the seasonal naive forecast there and
flagged.

    python benchmarks/forecast/bench.py --split test --markdown benchmarks/forecast/results.md
    python benchmarks/forecast/bench.py --split dev --only single --seeds 0,1,2
    python benchmarks/forecast/bench.py --quick            # 3 series, a smoke test
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

from lstm_native.forecasting import mase, smape  # noqa: E402

STAT_METHODS = ("SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta")


def split(y: np.ndarray, h: int, which: str) -> tuple:
    cut = len(y) - (2 * h if which == "dev" else h)
    return y[:cut], y[cut:cut + h]


def snaive(train: np.ndarray, h: int, m: int) -> np.ndarray:
    lag = m if m > 1 and len(train) >= m else 1
    return np.tile(train[-lag:], h // lag + 1)[:h]


def stat_forecast(method: str, train: np.ndarray, h: int, m: int) -> np.ndarray:
    import statsforecast.models as sf

    model = getattr(sf, method)(season_length=m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.fit(train).predict(h)["mean"], dtype=np.float64)


def ours(kwargs: dict):
    from lstm_native import LSTMForecaster

    return LSTMForecaster(**kwargs)


def run(which: str = "test", only: str = "all", kwargs: dict | None = None,
        seeds: tuple = (0,), quick: bool = False, methods: tuple = STAT_METHODS,
        log=print) -> dict:
    """Scores {"single": rows, "panels": rows}; a row: series, freq, method -> (mase, smape,
    seconds, failed)."""
    kwargs = dict(kwargs or {})
    out: dict = {"single": [], "panels": []}
    groups = []
    if only in ("all", "single"):
        singles = data.single_series()
        groups += [("single", None, [s]) for s in (singles[::7] if quick else singles)]
    if only in ("all", "panels"):
        for name, series in data.panels().items():
            groups.append(("panels", name, series[:3] if quick else series))
            if quick:
                break
    for kind, panel, series in groups:
        m, h = series[0].season, series[0].horizon
        parts = [split(s.values, h, which) for s in series]
        rows = [{"series": s.name, "panel": panel, "freq": s.freq, "n": len(tr), "scores": {}}
                for s, (tr, _) in zip(series, parts)]
        for method in methods:
            for row, (tr, te) in zip(rows, parts):
                t0 = time.perf_counter()
                failed = False
                try:
                    f = stat_forecast(method, tr, h, m)
                    if not np.isfinite(f).all():
                        raise ValueError("non-finite forecast")
                except Exception:  # noqa: BLE001 - record and go on
                    f, failed = snaive(tr, h, m), True
                row["scores"][method] = (mase(tr, te, f, m), smape(te, f),
                                         time.perf_counter() - t0, failed)
        # ours: one fit per series, or one global fit per panel; mean over seeds
        per_seed = []
        t0 = time.perf_counter()
        for seed in seeds:
            est = ours(dict(kwargs, random_state=seed, season_length=m))
            trains = [tr for tr, _ in parts]
            try:
                est.fit(trains if panel else trains[0])
                f = est.predict(h)
                per_seed.append(f if panel else [f])
            except Exception as e:  # noqa: BLE001
                log(f"  LSTMForecaster failed on {panel or series[0].name}: {e}")
                per_seed.append([snaive(tr, h, m) for tr in trains])
        seconds = (time.perf_counter() - t0) / len(seeds) / len(series)
        for j, (row, (tr, te)) in enumerate(zip(rows, parts)):
            ms = [mase(tr, te, fs[j], m) for fs in per_seed]
            ss = [smape(te, fs[j]) for fs in per_seed]
            row["scores"]["LSTMForecaster"] = (float(np.mean(ms)), float(np.mean(ss)), seconds,
                                               False)
            log(f"{row['series']:<28} {row['freq']:<9} " + "  ".join(
                f"{k}={v[0]:.3f}" for k, v in row["scores"].items()))
        out[kind] += rows
    return out


def summarize(res: dict) -> dict:
    """Mean MASE per method: per frequency (single series), over all single series, over the
    panels; and LSTMForecaster's wins against the better of AutoETS/AutoARIMA per series."""
    summary = {}
    for kind in ("single", "panels"):
        rows = res[kind]
        if not rows:
            continue
        methods = list(rows[0]["scores"])
        groups = {"all": rows}
        if kind == "single":
            for f in ("monthly", "quarterly", "yearly"):
                groups[f] = [r for r in rows if r["freq"] == f]
        else:
            for p in dict.fromkeys(r["panel"] for r in rows):
                groups[p] = [r for r in rows if r["panel"] == p]
        summary[kind] = {
            g: {mt: float(np.mean([r["scores"][mt][0] for r in rs])) for mt in methods}
            for g, rs in groups.items() if rs}
        wins = sum(r["scores"]["LSTMForecaster"][0]
                   <= min(r["scores"]["AutoETS"][0], r["scores"]["AutoARIMA"][0]) for r in rows)
        summary[kind]["wins_vs_best_of_ets_arima"] = f"{wins}/{len(rows)}"
    return summary


def markdown(res: dict, summary: dict, which: str, kwargs: dict, seeds: tuple) -> str:
    import lstm_native
    import statsforecast

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [f"Split `{which}`; {cpu}, {os.cpu_count()} cores; Python "
             f"{platform.python_version()}, lstm_native {lstm_native.__version__}, "
             f"statsforecast {statsforecast.__version__}; {datetime.date.today()}; "
             f"LSTMForecaster({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) "
             f"averaged over seeds {list(seeds)}.", ""]
    for kind, title in (("single", "Single series"), ("panels", "Panels")):
        if kind not in summary:
            continue
        methods = list(res[kind][0]["scores"])
        lines += [f"### {title}: mean MASE", "", "| | " + " | ".join(methods) + " |",
                  "|---|" + "---:|" * len(methods)]
        for g, vals in summary[kind].items():
            if isinstance(vals, dict):
                best = min(vals.values())
                lines.append(f"| {g} | " + " | ".join(
                    f"**{vals[mt]:.3f}**" if vals[mt] == best else f"{vals[mt]:.3f}"
                    for mt in methods) + " |")
        lines += ["", f"LSTMForecaster at or below the better of AutoETS/AutoARIMA on "
                  f"{summary[kind]['wins_vs_best_of_ets_arima']} series.", "",
                  f"| series | n | " + " | ".join(f"{mt} MASE" for mt in methods)
                  + " | our fit s/series |", "|---|---:|" + "---:|" * (len(methods) + 1)]
        for r in res[kind]:
            cells = [f"{r['scores'][mt][0]:.3f}{'*' if r['scores'][mt][3] else ''}"
                     for mt in methods]
            lines.append(f"| {r['series']} | {r['n']} | " + " | ".join(cells)
                         + f" | {r['scores']['LSTMForecaster'][2]:.1f} |")
        lines.append("")
    lines.append("`*`: the method failed on that series and is scored with the seasonal naive "
                 "forecast there.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=["dev", "test"], default="test")
    ap.add_argument("--only", choices=["all", "single", "panels"], default="all")
    ap.add_argument("--kwargs", default="{}", help="LSTMForecaster keyword arguments (JSON)")
    ap.add_argument("--seeds", default="0", help="comma-separated random_state values")
    ap.add_argument("--quick", action="store_true", help="a few series: a smoke test")
    ap.add_argument("--markdown", default=None, help="write the tables to this file")
    ap.add_argument("--json", default=None, help="write every score to this file")
    args = ap.parse_args(argv)
    kwargs = json.loads(args.kwargs)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    t0 = time.perf_counter()
    res = run(args.split, args.only, kwargs, seeds, args.quick)
    summary = summarize(res)
    print(json.dumps(summary, indent=1))
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(res, summary, args.split, kwargs, seeds))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": res, "summary": summary}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
