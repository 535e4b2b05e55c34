"""Saving and loading a fitted :class:`~lstm_native.LSTMForecaster`: one ``.npz`` file, no
pickle, read as hostile input like the estimators' files (:mod:`lstm_native._persist`).

The file (format ``lstm_native.forecaster``, version 1) holds

* ``__meta__``: a JSON document::

      {"format": "lstm_native.forecaster", "format_version": 1, "lstm_native_version": "...",
       "class": "LSTMForecaster",
       "params": {...},                 # get_params(); a RandomState instance is saved as null
       "fitted": {"season_length_", "horizon_", "strategy_", "quantile_levels_",
                  "interval_factors_",
                  "lookbacks": [L per network], "network_nbytes": [bytes per network]},
       "panel": {"kind", "lengths", "n_channels", "n_covariates", "ids", "freq", "columns",
                 "name", "cov_columns", "index"},   # the fitted series and how y was given
       "sha256": {array name: SHA-256 of its data}}

  ``index`` is null (no time index) or ``{"kind": "datetime" | "period" | "integer" | "float"
  | "string", "tz", "freq", "name"}``; the time stamps of all series are concatenated in the
  array ``index``. An index of another kind (mixed objects) is not kept: the loaded
  forecaster then numbers its forecast steps, as for NumPy input.
* ``values`` (N, C): the fitted series one after the other (N = Σ lengths); ``covariates``
  (N, K), ``cov_mu`` and ``cov_sd`` (K,) with covariates;
* the normalization of each series (``SeriesScaler``): ``scaler_log`` (S, C) bool,
  ``scaler_season`` (S, m, C), ``scaler_scale``, ``scaler_drift`` (0 without drift) and
  ``scaler_alpha`` (the level's smoothing; 1: the last value), each (S, C);
* ``networks``: the ensemble's networks, each an estimator file (:func:`model_bytes`) of the
  size ``network_nbytes`` says, one after the other, zlib-compressed. Compressed, because an
  archive stored as plain bytes inside another one can be found by a zip reader: a forecaster
  file cut short would read as the estimator file it happened to end in.

The normalized series are not stored: loading recomputes them from the values, with the same
functions fit used, so they are bit-identical.

Loading checks, in order: the archive (lstm_native._npz); the metadata's entries, their JSON
types and ranges, and the hyperparameters through the forecaster's own validation; the
members (exactly those required, each with its checksum), their dtypes and shapes against the
metadata; the memory the data needs; the data (checksums); the values (finite, scales > 0,
log-transformed channels positive); then each network as an estimator file (every check of
lstm_native._persist) and its fit to the forecaster (loss, quantile levels, features per step,
outputs). Any problem raises ``ValueError("Cannot load '<path>': ...")``.
"""

from __future__ import annotations

import math
import os
import zlib
from typing import Any

import numpy as np

from .._memory import available_memory, format_bytes
from .._npz import BadFile, json_member, open_archive, sha256, show, write_atomic
from .._persist import _package_version, load_model, model_bytes
from ._input import Panel
from ._windows import SeriesScaler

FORMAT_NAME = "lstm_native.forecaster"
FORMAT_VERSION = 1
_KIND, _TITLE, _META = "a forecaster file", "an lstm_native forecaster file", "__meta__"
_MAX_META_BYTES = 256 * 2**20  # ids of up to millions of series
_MAX_INT = 2**31 - 1
_JSON_SCALAR = (str, int, float, type(None))

# The hyperparameters: name -> JSON types allowed (bool is not an int here); the forecaster's
# _check_params then checks their values.
_INT, _NUM, _STR = ("int",), ("int", "float"), ("str",)
_PARAMS = {
    "season_length": _INT + ("null",),
    "lookback": _INT + ("null",),
    "horizon": _INT + ("null",),
    "strategy": _STR,
    "transform": _STR,
    "deseasonalize": ("str", "bool"),
    "quantiles": ("list",),
    "loss": _STR,
    "n_ensemble": _INT,
    "calibrate": ("bool",),
    "drift": ("bool", "str"),
    "level": _STR,
    "cell": _STR,
    "hidden_size": _INT,
    "num_layers": _INT,
    "max_iter": _INT,
    "learning_rate_init": _NUM,
    "batch_size": _INT,
    "alpha": _NUM,
    "validation_fraction": _NUM,
    "random_state": _INT + ("null",),
    "n_jobs": _INT + ("null",),
    "verbose": _INT,
    "id_col": _STR,
    "time_col": _STR,
    "value_col": _STR,
}
_FITTED = (
    "season_length_",
    "horizon_",
    "strategy_",
    "quantile_levels_",
    "interval_factors_",
    "lookbacks",
    "network_nbytes",
)
_PANEL = (
    "kind",
    "lengths",
    "n_channels",
    "n_covariates",
    "ids",
    "freq",
    "columns",
    "name",
    "cov_columns",
    "index",
)
_INDEX = ("kind", "tz", "freq", "unit", "name")
_INDEX_DTYPES = {"datetime": "i", "period": "i", "integer": "i", "float": "f", "string": "U"}


# ---------------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------------
def _scalar(value: Any, what: str) -> Any:
    """A label (id, column or series name) as a JSON scalar."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, _JSON_SCALAR):
        raise ValueError(
            f"Cannot save: {what} {value!r} is a {type(value).__name__}; the file keeps "
            "labels that are str, int, float or None"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"Cannot save: {what} {value!r} is not finite")
    return value


def _labels(values: Any, what: str) -> Any:
    return None if values is None else [_scalar(v, what) for v in values]


def _nanoseconds(index: Any) -> np.ndarray:
    """The stamps of a DatetimeIndex as int64 nanoseconds since the epoch (UTC)."""
    if hasattr(index, "as_unit"):  # pandas >= 2 stores s, ms, us or ns
        index = index.as_unit("ns")
    return np.asarray(index.asi8, dtype=np.int64)


def _index_part(panel: Panel) -> tuple:
    """(the index's metadata or None, the concatenated time stamps or None)."""
    idx = panel.indexes
    if not idx or any(i is None for i in idx):
        return None, None
    import pandas as pd

    first = idx[0]
    meta = {"kind": None, "tz": None, "freq": None, "unit": None, "name": None}
    if isinstance(first, pd.PeriodIndex):
        meta["kind"], meta["freq"] = "period", first.freqstr
        parts = [np.asarray(i.asi8, dtype=np.int64) for i in idx]
    elif pd.api.types.is_datetime64_any_dtype(first):
        meta["kind"] = "datetime"
        tz = getattr(first, "tz", None)
        meta["tz"] = None if tz is None else str(tz)
        meta["freq"] = getattr(first, "freqstr", None)
        meta["unit"] = str(getattr(pd.DatetimeIndex(first), "unit", "ns"))
        parts = [_nanoseconds(pd.DatetimeIndex(i)) for i in idx]
    elif pd.api.types.is_integer_dtype(first) and not pd.api.types.is_bool_dtype(first):
        meta["kind"] = "integer"
        parts = [np.asarray(i, dtype=np.int64) for i in idx]
    elif pd.api.types.is_float_dtype(first):
        meta["kind"] = "float"
        parts = [np.asarray(i, dtype=np.float64) for i in idx]
    elif all(isinstance(v, str) for i in idx for v in i):
        meta["kind"] = "string"
        parts = [np.asarray(list(i), dtype=str) for i in idx]
    else:  # mixed objects: not kept (the forecast steps are numbered, as for arrays)
        return None, None
    if len({i.dtype for i in idx}) != 1:
        return None, None
    try:
        meta["name"] = _scalar(first.name, "the time index's name")
    except ValueError:
        meta["name"] = None
    return meta, np.concatenate(parts)


def _or(a: Any, fill: float, like: np.ndarray) -> np.ndarray:
    return np.full_like(like, fill) if a is None else a


def save_forecaster(path: Any, fc: Any) -> None:
    """Write the fitted forecaster ``fc`` to ``path`` (module docstring), atomically."""
    path = os.fspath(path)
    panel: Panel = fc.panel_
    params = dict(fc.get_params(deep=False))
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        params["random_state"] = (
            int(params["random_state"])
            if isinstance(params["random_state"], np.integer)
            else None  # a RandomState instance: its state is not data the file keeps
        )
    params["quantiles"] = [float(q) for q in params["quantiles"]]
    for k in ("season_length", "lookback", "horizon", "n_jobs"):
        if isinstance(params[k], np.integer):
            params[k] = int(params[k])
    params["calibrate"] = bool(params["calibrate"])
    if not isinstance(params["drift"], str):
        params["drift"] = bool(params["drift"])
    nets = [
        model_bytes(type(est).__name__, est.get_params(deep=False), est._require_fitted())
        for _, est in fc.members_
    ]
    index_meta, index = _index_part(panel)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "lstm_native_version": _package_version(),
        "class": type(fc).__name__,
        "params": params,
        "fitted": {
            "season_length_": int(fc.season_length_),
            "horizon_": int(fc.horizon_),
            "strategy_": fc.strategy_,
            "quantile_levels_": [float(q) for q in fc.quantile_levels_],
            "interval_factors_": [float(f) for f in fc.interval_factors_],
            "lookbacks": [int(L) for L, _ in fc.members_],
            "network_nbytes": [len(b) for b in nets],
        },
        "panel": {
            "kind": panel.kind,
            "lengths": [int(n) for n in panel.lengths],
            "n_channels": int(panel.n_channels),
            "n_covariates": int(panel.n_covariates),
            "ids": _labels(panel.ids, "the series id"),
            "freq": None if panel.freq is None else panel.freq.freqstr,
            "columns": _labels(panel.columns, "the column name"),
            "name": _scalar(panel.name, "the series name"),
            "cov_columns": _labels(panel.cov_columns, "the covariate column"),
            "index": index_meta,
        },
    }
    arrays = {
        "values": np.concatenate(panel.values),
        "scaler_log": np.stack([s.log for s in fc.scalers_]).astype(bool),
        "scaler_season": np.stack([s.season for s in fc.scalers_]),
        "scaler_scale": np.stack([s.scale for s in fc.scalers_]),
        "scaler_drift": np.stack([_or(s.drift, 0.0, s.scale) for s in fc.scalers_]),
        "scaler_alpha": np.stack([_or(s.alpha, 1.0, s.scale) for s in fc.scalers_]),
        "networks": np.frombuffer(zlib.compress(b"".join(nets), 6), dtype=np.uint8),
    }
    if panel.covariates is not None:
        arrays["covariates"] = np.concatenate(panel.covariates)
        arrays["cov_mu"], arrays["cov_sd"] = fc.cov_stats_
    if index is not None:
        arrays["index"] = index
    meta["sha256"] = {k: sha256(v) for k, v in arrays.items()}
    arrays[_META] = json_member(meta)
    write_atomic(path, arrays)


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float" if math.isfinite(v) else "non-finite number"
    return {str: "str", list: "list", dict: "object"}.get(type(v), type(v).__name__)


def _fields(doc: Any, names: tuple, what: str) -> dict:
    if not isinstance(doc, dict):
        raise BadFile(f"{what} is not a JSON object")
    missing, unknown = sorted(set(names) - set(doc)), sorted(set(doc) - set(names))
    if missing:
        raise BadFile(f"{what} lacks {show(missing)}")
    if unknown:
        raise BadFile(f"{what} has unknown entries {show(unknown)}")
    return doc


def _int(v: Any, what: str, lo: int = 1, hi: int = _MAX_INT) -> int:
    if _json_type(v) != "int" or not lo <= v <= hi:
        raise BadFile(f"{what} is {show(v)}, not an integer in [{lo}, {hi}]")
    return v


def _int_list(v: Any, what: str, lo: int = 1, hi: int = _MAX_INT) -> list:
    if not isinstance(v, list) or not v:
        raise BadFile(f"{what} is {show(v)}, not a non-empty list")
    return [_int(x, f"an entry of {what}", lo, hi) for x in v]


def _labels_of(v: Any, n: Any, what: str) -> Any:
    """A list of ``n`` JSON scalar labels (or null when ``n`` is None)."""
    if n is None:
        if v is not None:
            raise BadFile(f"{what} is {show(v)}; this kind of input has none")
        return None
    if not isinstance(v, list) or len(v) != n:
        raise BadFile(f"{what} is {show(v)}, not a list of {n} labels")
    for x in v:
        if _json_type(x) not in ("str", "int", "float", "null"):
            raise BadFile(f"{what} holds {show(x)}, not a str, int, float or null")
    return v


def _check_params(cls: Any, params: Any) -> Any:
    """The forecaster of the file's hyperparameters (types here, values by _check_params)."""
    _fields(params, tuple(_PARAMS), "the hyperparameters")
    for name, allowed in _PARAMS.items():
        t = _json_type(params[name])
        if t not in allowed:
            raise BadFile(f"hyperparameter {name} is {show(params[name])} ({t}), not {allowed}")
    for q in params["quantiles"]:
        if _json_type(q) not in _NUM:
            raise BadFile(f"hyperparameter quantiles holds {show(q)}, not a number")
    fc = cls(**{**params, "quantiles": tuple(params["quantiles"])})  # JSON has no tuples
    try:
        fc._check_params()
    except ValueError as e:
        raise BadFile(f"invalid hyperparameters: {e}") from e
    return fc


def _check_panel(doc: Any) -> dict:
    p = _fields(doc, _PANEL, "the panel")
    if p["kind"] not in ("series", "multivariate", "list", "frame"):
        raise BadFile(f"panel kind {show(p['kind'])} is not series, multivariate, list or frame")
    lengths = _int_list(p["lengths"], "the series' lengths", 3)
    C = _int(p["n_channels"], "n_channels", 1, 2**20)
    K = _int(p["n_covariates"], "n_covariates", 0, 2**20)
    S = len(lengths)
    if p["kind"] in ("series", "multivariate") and S != 1:
        raise BadFile(f"a {p['kind']} panel has one series, the file says {S}")
    if p["kind"] != "multivariate" and C != 1:
        raise BadFile(f"a {p['kind']} panel has one channel, the file says {C}")
    ids = _labels_of(p["ids"], S if p["kind"] == "frame" else None, "the series ids")
    if ids is not None and len({(type(i), i) for i in ids}) != S:
        raise BadFile("the series ids repeat")
    cols = p["columns"] if p["columns"] is None else _labels_of(p["columns"], C, "the columns")
    if cols is not None and p["kind"] != "multivariate":
        raise BadFile("column names belong to a multivariate series")
    if _json_type(p["name"]) not in ("str", "int", "float", "null"):
        raise BadFile(f"the series name is {show(p['name'])}, not a label")
    _labels_of(p["cov_columns"], K if p["kind"] == "frame" and K else None, "cov_columns")
    for key in ("freq",):
        if p[key] is not None and (_json_type(p[key]) != "str" or len(p[key]) > 64):
            raise BadFile(f"the panel's {key} is {show(p[key])}, not a frequency string")
    if p["index"] is not None:
        ix = _fields(p["index"], _INDEX, "the time index")
        if ix["kind"] not in _INDEX_DTYPES:
            raise BadFile(f"the time index's kind {show(ix['kind'])} is unknown")
        if ix["unit"] not in (None, "s", "ms", "us", "ns"):
            raise BadFile(f"the time index's unit is {show(ix['unit'])}")
        for key in ("tz", "freq"):
            if ix[key] is not None and (_json_type(ix[key]) != "str" or len(ix[key]) > 64):
                raise BadFile(f"the time index's {key} is {show(ix[key])}")
        if ix["kind"] == "period" and ix["freq"] is None:
            raise BadFile("a period index needs its frequency")
        if _json_type(ix["name"]) not in ("str", "int", "float", "null"):
            raise BadFile(f"the time index's name is {show(ix['name'])}, not a label")
    return p


def _check_fitted(doc: Any, fc: Any, m_season: Any) -> dict:
    f = _fields(doc, _FITTED, "the fitted attributes")
    _int(f["season_length_"], "season_length_")
    _int(f["horizon_"], "horizon_")
    if f["strategy_"] not in ("multi_output", "recursive"):
        raise BadFile(f"strategy_ is {show(f['strategy_'])}, not multi_output or recursive")
    for name in ("season_length", "horizon"):
        given = getattr(fc, name)
        if given is not None and given != f[name + "_"]:
            raise BadFile(f"{name}_ is {f[name + '_']}, but the hyperparameter {name}={given}")
    if fc.strategy != "auto" and fc.strategy != f["strategy_"]:
        raise BadFile(f"strategy_ is {f['strategy_']!r}, but strategy={fc.strategy!r}")
    if f["quantile_levels_"] != fc._levels():
        raise BadFile(
            f"quantile_levels_ is {show(f['quantile_levels_'])}; the hyperparameters give "
            f"{fc._levels()}"
        )
    factors = f["interval_factors_"]
    if (
        not isinstance(factors, list)
        or len(factors) != len(fc._levels())
        or any(_json_type(x) not in _NUM or x < 1.0 for x in factors)
        or factors[fc._levels().index(0.5)] != 1.0
    ):
        raise BadFile(
            f"interval_factors_ is {show(factors)}: one finite factor >= 1 per quantile level, "
            "1 for the median"
        )
    lookbacks = _int_list(f["lookbacks"], "the networks' lookbacks", 2)
    if len(lookbacks) != fc.n_ensemble:
        raise BadFile(f"{len(lookbacks)} networks, but n_ensemble={fc.n_ensemble}")
    sizes = _int_list(f["network_nbytes"], "the networks' sizes", 22, 2**53)
    if len(sizes) != len(lookbacks):
        raise BadFile("the networks' sizes and lookbacks differ in number")
    if m_season != f["season_length_"]:
        raise BadFile(f"the seasonal indices have period {m_season}, not season_length_")
    return f


def _expected_shapes(p: dict, f: dict, S: int, m: int) -> dict:
    """{member: (dtype kind, shape)} of the arrays the metadata announces."""
    N, C, K = sum(p["lengths"]), p["n_channels"], p["n_covariates"]
    out = {
        "values": ("f", (N, C)),
        "scaler_log": ("b", (S, C)),
        "scaler_season": ("f", (S, m, C)),
        "scaler_scale": ("f", (S, C)),
        "scaler_drift": ("f", (S, C)),
        "scaler_alpha": ("f", (S, C)),
        "networks": ("u", None),  # compressed: any size
    }
    if K:
        out.update(covariates=("f", (N, K)), cov_mu=("f", (K,)), cov_sd=("f", (K,)))
    if p["index"] is not None:
        out["index"] = (_INDEX_DTYPES[p["index"]["kind"]], (N,))
    return out


def _rebuild_index(ix: dict, stamps: np.ndarray) -> Any:
    import pandas as pd

    try:
        if ix["kind"] == "period":
            dtype = pd.PeriodDtype(ix["freq"])
            return pd.Index(pd.arrays.PeriodArray(stamps, dtype=dtype), name=ix["name"])
        if ix["kind"] == "datetime":
            out = pd.DatetimeIndex(stamps.astype("datetime64[ns]"), name=ix["name"])
            if ix["tz"] is not None:
                out = out.tz_localize("UTC").tz_convert(ix["tz"])
            if ix["unit"] is not None and hasattr(out, "as_unit"):
                out = out.as_unit(ix["unit"])
            if ix["freq"] is not None:
                try:
                    out = pd.DatetimeIndex(out, freq=ix["freq"])
                except ValueError:  # the stamps do not follow it: leave the frequency unset
                    pass
            return out
        return pd.Index(stamps, name=ix["name"])
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise BadFile(f"the time index cannot be rebuilt ({e})") from e


def load_forecaster(path: Any, cls: Any) -> Any:
    """The forecaster of class ``cls`` saved at ``path``; ValueError naming the file."""
    path = os.fspath(path)
    try:
        with open_archive(path, kind=_KIND, title=_TITLE, required=_META) as archive:
            meta, fc, arrays = _read(archive, cls)
        return _assemble(path, meta, fc, arrays)
    except BadFile as e:
        raise ValueError(f"Cannot load {path!r}: {e}") from e.__cause__


def _read(archive: Any, cls: Any) -> tuple:
    headers = archive.headers
    meta = archive.read_json(_META, _MAX_META_BYTES)
    if not isinstance(meta, dict):
        raise BadFile("__meta__ is not a JSON object")
    if meta.get("format") == "lstm_native.estimator":
        raise BadFile("it holds an estimator, not a forecaster (load it with lstm_native.load)")
    if meta.get("format") != FORMAT_NAME:
        raise BadFile(f"not an lstm_native forecaster file (format {show(meta.get('format'))})")
    version = meta.get("format_version")
    if _json_type(version) != "int" or version < 1:
        raise BadFile(f"invalid format version {show(version)}")
    if version > FORMAT_VERSION:
        raise BadFile(
            f"format version {version} was written by a newer lstm_native "
            f"({show(meta.get('lstm_native_version', '?'))}); this version reads forecaster "
            f"files up to version {FORMAT_VERSION}. Upgrade lstm_native to load it"
        )
    keys = ("format", "format_version", "lstm_native_version", "class", "params", "fitted")
    _fields(meta, keys + ("panel", "sha256"), "the metadata")
    if meta["class"] != cls.__name__:
        raise BadFile(f"it holds a {show(meta['class'])}, not a {cls.__name__}")
    fc = _check_params(cls, meta["params"])
    panel = _check_panel(meta["panel"])
    season = headers.get("scaler_season")
    if season is None or len(season.shape) != 3:
        raise BadFile("it has no seasonal indices (scaler_season, 3-D)")
    m = season.shape[1]
    fitted = _check_fitted(meta["fitted"], fc, m)
    S = len(panel["lengths"])
    shapes = _expected_shapes(panel, fitted, S, m)
    required = set(shapes) | {_META}
    if set(headers) != required:
        raise BadFile(
            f"its arrays are {show(sorted(headers))}; this forecaster has {show(sorted(required))}"
        )
    digests = _fields(meta["sha256"], tuple(shapes), "the checksums")
    for name, (kind, shape) in shapes.items():
        npy = headers[name]
        if npy.dtype.kind != kind or (npy.shape != shape if shape else len(npy.shape) != 1):
            raise BadFile(
                f"{name} has dtype {npy.dtype} and shape {npy.shape}; the metadata says "
                f"kind {kind!r} and shape {shape}"
            )
        if kind in "fi" and npy.dtype.itemsize != 8 or kind in "ub" and npy.dtype.itemsize != 1:
            raise BadFile(f"{name} has dtype {npy.dtype}")
    need = sum(h.nbytes for h in headers.values()) + 3 * sum(fitted["network_nbytes"])
    avail = available_memory()
    if avail is not None and need > avail:
        raise BadFile(
            f"its arrays need {format_bytes(need)} of memory, but only "
            f"{format_bytes(avail)} is available"
        )
    arrays = {}
    for name in shapes:
        array, _, digest = archive.read(name)
        if digest != digests[name]:
            raise BadFile(f"array {name!r} does not match its checksum (the file is corrupted)")
        arrays[name] = array
    return meta, fc, arrays


def _assemble(path: str, meta: dict, fc: Any, a: dict) -> Any:
    """The forecaster, after the checks of the arrays' values and of every network."""
    from ..estimators import ESTIMATORS, LSTMRegressor

    p, f = meta["panel"], meta["fitted"]
    for name in ("values", "scaler_season", "scaler_drift", "covariates", "cov_mu"):
        if name in a and not np.all(np.isfinite(a[name])):
            raise BadFile(f"{name} contains NaN or infinity")
    for name in ("scaler_scale", "cov_sd"):
        if name in a and not (np.all(np.isfinite(a[name])) and np.all(a[name] > 0)):
            raise BadFile(f"{name} holds values that are not finite and > 0")
    alpha = a["scaler_alpha"]
    if not np.all((alpha > 0) & (alpha <= 1)):
        raise BadFile("scaler_alpha holds values outside (0, 1]")
    ends = np.cumsum(p["lengths"])[:-1]
    values = np.split(a["values"], ends)
    logs = a["scaler_log"]
    for s, v in enumerate(values):
        if np.any(v[:, logs[s]] <= 0):
            raise BadFile(f"series {s} is log-transformed but has values <= 0")
    scalers = [
        SeriesScaler(
            log=logs[s].copy(),
            season=a["scaler_season"][s].copy(),
            scale=a["scaler_scale"][s].copy(),
            n=len(v),
            drift=a["scaler_drift"][s].copy() if fc._scaler_drift() is not False else None,
            alpha=alpha[s].copy() if fc.level == "smoothed" else None,
        )
        for s, v in enumerate(values)
    ]
    covs, cov_stats = None, None
    if "covariates" in a:
        covs = np.split(a["covariates"], ends)
        cov_stats = (a["cov_mu"], a["cov_sd"])
    freq, indexes = None, [None] * len(values)
    if p["freq"] is not None or p["index"] is not None:
        try:
            import pandas as pd
        except ImportError as e:
            raise BadFile("its series have a pandas time index: loading it needs pandas") from e
        if p["freq"] is not None:
            try:
                freq = pd.tseries.frequencies.to_offset(p["freq"])
            except (TypeError, ValueError) as e:
                raise BadFile(f"the frequency {show(p['freq'])} is not pandas's") from e
        if p["index"] is not None:
            indexes = [_rebuild_index(p["index"], s) for s in np.split(a["index"], ends)]
    members = []
    C, K = p["n_channels"], p["n_covariates"]
    features = C + K + (1 if K and f["strategy_"] == "multi_output" else 0)
    outputs = f["horizon_"] * C if f["strategy_"] == "multi_output" else C
    total = sum(f["network_nbytes"])
    try:
        unzip = zlib.decompressobj()
        nets = unzip.decompress(a["networks"].tobytes(), total + 1)
    except zlib.error as e:
        raise BadFile(f"the networks are corrupted ({e})") from e
    if len(nets) != total or not unzip.eof or unzip.unused_data:
        raise BadFile(f"the networks hold other than the {total} bytes the metadata declares")
    start = 0
    for k, (L, size) in enumerate(zip(f["lookbacks"], f["network_nbytes"])):
        blob = nets[start : start + size]
        start += size
        name = f"{path}, network {k}"
        try:
            found, hyper, fitted = load_model(name, ESTIMATORS, LSTMRegressor, data=blob)
        except ValueError as e:
            raise BadFile(str(e)) from e
        est = found.from_saved(hyper, fitted)
        q = fc._levels() if fc.loss == "quantile" else None
        if (
            est.loss != fc.loss
            or (q is not None and sorted(est.quantiles) != q)
            or est.n_features_in_ != features
            or est.n_outputs_ != outputs
        ):
            raise BadFile(
                f"network {k} (loss {est.loss!r}, {est.n_features_in_} features, "
                f"{est.n_outputs_} outputs) does not fit the forecaster (loss {fc.loss!r}, "
                f"{features} features, {outputs} outputs)"
            )
        members.append((L, est))
    fc.members_ = members
    fc.panel_ = Panel(
        values,
        p["kind"],
        covs,
        p["ids"],
        indexes,
        freq,
        p["columns"],
        p["name"],
        p["cov_columns"],
    )
    fc.scalers_ = scalers
    fc.z_ = [sc.normalize(v) for sc, v in zip(scalers, values)]
    fc.covs_ = None if covs is None else [(c - cov_stats[0]) / cov_stats[1] for c in covs]
    fc.cov_stats_ = cov_stats
    fc.season_length_, fc.horizon_ = f["season_length_"], f["horizon_"]
    fc.strategy_ = f["strategy_"]
    fc.quantile_levels_ = list(f["quantile_levels_"])
    fc.interval_factors_ = [float(x) for x in f["interval_factors_"]]
    return fc


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load_forecaster", "save_forecaster"]
