"""Saving and loading a fitted :class:`~lstm_native.LSTMForecaster`: one ``.npz`` file, no
pickle, read as hostile input like the estimators' files (:mod:`lstm_native._persist`).

The file (format ``lstm_native.forecaster``, version 1) holds

* ``__meta__``: a JSON document::

      {"format": "lstm_native.forecaster", "format_version": 1, "lstm_native_version": "...",
       "class": "LSTMForecaster",
       "params": {...},                 # get_params(); a RandomState instance is saved as null
       "fitted": {"season_length_", "horizon_", "strategy_", "quantile_levels_",
                  "interval_factors_", "interval_margins_" (optional: 0s when missing),
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
types and ranges (the tables below, made of the specs of lstm_native._persist_schema that
check the estimators' files too), and the hyperparameters through the forecaster's own
validation; the members (exactly those required, each with its checksum), their dtypes and
shapes against the metadata; the memory the data needs; the data (checksums); the values
(finite, scales > 0, log-transformed channels positive); then each network as an estimator
file (every check of lstm_native._persist) and its fit to the forecaster (loss, quantile
levels, features per step, outputs). Any problem raises ``ValueError("Cannot load '<path>':
...")``.
"""

from __future__ import annotations

import math
import os
import zlib
from typing import Any

import numpy as np

from .._npz import BadFile, json_member, open_archive, require_memory, sha256, show, write_atomic
from .._persist import _package_version, load_model, model_bytes
from .._persist_schema import (
    _ANY,
    _BOOL,
    _FINITE,
    _FINITES,
    _INT,
    _LABEL,
    _LABELS,
    _MAX_SIZE,
    _OBJECT,
    _SHA256,
    _SIZE,
    _STR,
    _any_of,
    _check_fields,
    _check_version,
    _int_in,
    _list_of,
    _one_of,
    _or_none,
    _real,
    _text,
)
from ._forecaster import _FIT_TIME
from ._input import Panel
from ._windows import SeriesScaler

FORMAT_NAME = "lstm_native.forecaster"
FORMAT_VERSION = 1
_KIND, _TITLE, _META = "a forecaster file", "an lstm_native forecaster file", "__meta__"
_MAX_META_BYTES = 256 * 2**20  # ids of up to millions of series

# What each entry of __meta__ must be (_persist_schema._check_fields): every one required, no
# other allowed. format, format_version and class are checked first, with their own messages.
_TOP = {
    "format": _ANY,
    "format_version": _ANY,
    "lstm_native_version": _STR,
    "class": _ANY,
    "params": _OBJECT,
    "fitted": _OBJECT,
    "panel": _OBJECT,
    "sha256": _OBJECT,
}

# The hyperparameters by their JSON form (true/false are not ints); the forecaster's
# _check_params then checks their values.
_INT_OR_NONE = _or_none(_INT)
_STR_OR_BOOL = _any_of(_STR, _BOOL)
_PARAMS = {
    "season_length": _INT_OR_NONE,
    "lookback": _INT_OR_NONE,
    "horizon": _INT_OR_NONE,
    "strategy": _STR,
    "transform": _STR,
    "deseasonalize": _STR_OR_BOOL,
    "quantiles": _FINITES,
    "loss": _STR,
    "n_ensemble": _INT,
    "calibrate": _BOOL,
    "drift": _STR_OR_BOOL,
    "level": _STR,
    "linear_weight": _any_of(_STR, _FINITE),  # optional: files written before it load with 0
    "cell": _STR,
    "hidden_size": _INT,
    "num_layers": _INT,
    "max_iter": _INT,
    "learning_rate_init": _FINITE,
    "batch_size": _INT,
    "alpha": _FINITE,
    "validation_fraction": _FINITE,
    "random_state": _INT_OR_NONE,
    "n_jobs": _INT_OR_NONE,
    "verbose": _INT,
    "id_col": _STR,
    "time_col": _STR,
    "value_col": _STR,
}

# The fitted attributes (and the networks' lookbacks and sizes); _check_fitted then checks
# them against the hyperparameters and each other. A network file is at least 22 bytes (an
# empty zip archive), at most what a float64 counts exactly.
_FITTED = {
    "season_length_": _SIZE,
    "horizon_": _SIZE,
    "strategy_": _one_of("multi_output", "recursive"),
    "quantile_levels_": _FINITES,
    "interval_factors_": _list_of(
        "a list of finite numbers >= 1",
        _real("a finite number >= 1", lambda x: math.isfinite(x) and x >= 1.0),
    ),
    "interval_margins_": _list_of(  # optional: files before it calibrated by factors only
        "a list of finite numbers >= 0",
        _real("a finite number >= 0", lambda x: math.isfinite(x) and x >= 0.0),
    ),
    "lookbacks": _list_of(f"a list of ints in [2, {_MAX_SIZE}]", _int_in(2, _MAX_SIZE)),
    "network_nbytes": _list_of("a list of ints in [22, 2**53]", _int_in(22, 2**53)),
}

# The fitted series and how y was given; _check_panel then checks the entries against each
# other (how many series, channels, ids and columns each kind of input has).
_SHORT_TEXT = _or_none(_text(64))  # a frequency or time zone name
_PANEL = {
    "kind": _one_of("series", "multivariate", "list", "frame"),
    "lengths": _list_of(
        f"a non-empty list of ints in [3, {_MAX_SIZE}]", _int_in(3, _MAX_SIZE), least=1
    ),
    "n_channels": _int_in(1, 2**20),
    "n_covariates": _int_in(0, 2**20),
    "ids": _or_none(_LABELS),
    "freq": _SHORT_TEXT,
    "columns": _or_none(_LABELS),
    "name": _LABEL,
    "cov_columns": _or_none(_LABELS),
    "index": _or_none(_OBJECT),
}
_INDEX_DTYPES = {"datetime": "i", "period": "i", "integer": "i", "float": "f", "string": "U"}
_INDEX = {
    "kind": _one_of(*_INDEX_DTYPES),
    "tz": _SHORT_TEXT,
    "freq": _SHORT_TEXT,
    "unit": _or_none(_one_of("s", "ms", "us", "ns")),
    "name": _LABEL,
}


# ---------------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------------
def _scalar(value: Any, what: str) -> Any:
    """A label (id, column or series name) as a JSON scalar: what loading accepts (_LABEL)."""
    if isinstance(value, np.generic):
        value = value.item()
    if not _LABEL.accepts(value):
        raise ValueError(
            f"Cannot save: {what} {value!r} (a {type(value).__name__}) is not {_LABEL.expected}"
        )
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
    if not isinstance(params["linear_weight"], str):
        params["linear_weight"] = float(params["linear_weight"])
    nets = [
        model_bytes(type(est).__name__, est.get_params(deep=False), est._require_fitted())
        for _, est in fc.members_
    ]
    index_meta, index = _index_part(panel)
    fitted = {
        "season_length_": int(fc.season_length_),
        "horizon_": int(fc.horizon_),
        "strategy_": fc.strategy_,
        "quantile_levels_": [float(q) for q in fc.quantile_levels_],
        "interval_factors_": [float(f) for f in fc.interval_factors_],
        "interval_margins_": [float(m) for m in fc.interval_margins_],
        "lookbacks": [int(L) for L, _ in fc.members_],
        "network_nbytes": [len(b) for b in nets],
    }
    try:  # what loading checks of the hyperparameters against the fit, checked before writing
        fc._check_params()
        _check_fitted(dict(fitted), fc, fc.scalers_[0].season.shape[0])
        if any(est.loss != fc.loss for _, est in fc.members_):
            raise ValueError(f"loss={fc.loss!r}, but the networks were trained with another")
        for k, v in getattr(fc, "_fit_time", {}).items():
            if not (v is getattr(fc, k) or v == getattr(fc, k)):
                raise ValueError(f"{k} was {v!r} at fit, is {getattr(fc, k)!r} now")
    except (ValueError, BadFile) as e:
        raise ValueError(
            f"cannot save this forecaster: its hyperparameters no longer match its fit ({e}); "
            "set_params after fit changes the next fit, not this one: refit it, or set them back"
        ) from None
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "lstm_native_version": _package_version(),
        "class": type(fc).__name__,
        "params": params,
        "fitted": fitted,
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
def _count(labels: Any, n: Any, what: str) -> None:
    """``labels`` (checked by _LABELS or null) must be ``n`` labels, or null where ``n`` is
    None (this kind of input has none)."""
    if n is None:
        if labels is not None:
            raise BadFile(f"{what} is {show(labels)}; this kind of input has none")
    elif labels is None or len(labels) != n:
        raise BadFile(f"{what} is {show(labels)}, not a list of {n} labels")


def _forecaster_of(cls: Any, params: dict) -> Any:
    """The forecaster of the file's hyperparameters (types by _PARAMS, values by the
    forecaster's _check_params)."""
    _check_fields(
        params, _PARAMS, "hyperparameter", "hyperparameters", optional=frozenset({"linear_weight"})
    )
    # JSON has no tuples; the forecasts of a file from before linear_weight had no linear part
    fc = cls(**{"linear_weight": 0.0, **params, "quantiles": tuple(params["quantiles"])})
    try:
        fc._check_params()
    except ValueError as e:
        raise BadFile(f"invalid hyperparameters: {e}") from e
    return fc


def _check_panel(p: dict) -> dict:
    _check_fields(p, _PANEL, "panel entry", "panel entries")
    S, C, K = len(p["lengths"]), p["n_channels"], p["n_covariates"]
    if p["kind"] in ("series", "multivariate") and S != 1:
        raise BadFile(f"a {p['kind']} panel has one series, the file says {S}")
    if p["kind"] != "multivariate" and C != 1:
        raise BadFile(f"a {p['kind']} panel has one channel, the file says {C}")
    ids = p["ids"]
    _count(ids, S if p["kind"] == "frame" else None, "the series ids")
    if ids is not None and len({(type(i), i) for i in ids}) != S:
        raise BadFile("the series ids repeat")
    if p["columns"] is not None:
        _count(p["columns"], C, "the columns")
        if p["kind"] != "multivariate":
            raise BadFile("column names belong to a multivariate series")
    # (a frame names its covariates; a series' covariates have names when X was a DataFrame)
    if p["kind"] == "frame" or p["cov_columns"] is not None:
        _count(p["cov_columns"], K or None, "cov_columns")
    if p["index"] is not None:
        ix = p["index"]
        _check_fields(ix, _INDEX, "time index entry", "time index entries")
        if ix["kind"] == "period" and ix["freq"] is None:
            raise BadFile("a period index needs its frequency")
    return p


def _check_fitted(f: dict, fc: Any, m_season: Any) -> dict:
    _check_fields(
        f,
        _FITTED,
        "fitted attribute",
        "fitted attributes",
        optional=frozenset({"interval_margins_"}),
    )
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
    levels = fc._levels()
    f.setdefault("interval_margins_", [0.0] * len(levels))
    for name, what, neutral in (("factors", "factor >= 1", 1), ("margins", "margin >= 0", 0)):
        got = f[f"interval_{name}_"]
        if len(got) != len(levels) or got[levels.index(0.5)] != neutral:
            raise BadFile(
                f"interval_{name}_ is {show(got)}: one finite {what} per quantile level, "
                f"{neutral} for the median"
            )
    if len(f["lookbacks"]) != fc.n_ensemble:
        raise BadFile(f"{len(f['lookbacks'])} networks, but n_ensemble={fc.n_ensemble}")
    if len(f["network_nbytes"]) != len(f["lookbacks"]):
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
    _check_version(meta, FORMAT_VERSION, "forecaster files")
    _check_fields(meta, _TOP, "metadata entry", "metadata entries")
    if meta["class"] != cls.__name__:
        raise BadFile(f"it holds a {show(meta['class'])}, not a {cls.__name__}")
    fc = _forecaster_of(cls, meta["params"])
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
    digests = meta["sha256"]
    _check_fields(digests, dict.fromkeys(shapes, _SHA256), "checksum", "checksums")
    for name, (kind, shape) in shapes.items():
        npy = headers[name]
        if npy.dtype.kind != kind or (npy.shape != shape if shape else len(npy.shape) != 1):
            raise BadFile(
                f"{name} has dtype {npy.dtype} and shape {npy.shape}; the metadata says "
                f"kind {kind!r} and shape {shape}"
            )
        if kind in "fi" and npy.dtype.itemsize != 8 or kind in "ub" and npy.dtype.itemsize != 1:
            raise BadFile(f"{name} has dtype {npy.dtype}")
    require_memory(sum(h.nbytes for h in headers.values()) + 3 * sum(fitted["network_nbytes"]))
    arrays = {name: archive.read(name, digests[name])[0] for name in shapes}
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
    fc._fit_time = {k: getattr(fc, k) for k in _FIT_TIME}  # (save refuses them changed since)
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
    fc.interval_margins_ = [float(x) for x in f["interval_margins_"]]
    return fc


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load_forecaster", "save_forecaster"]
