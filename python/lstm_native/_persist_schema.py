"""The schema of a model file's ``__meta__`` (see _persist's docstring for the format): what
each JSON field must be (type, range, options), as tables that load checks field by field
before anything is used. The fitted training state's fields come from ``_state.STATE_SCHEMA``
(the one list of them); the layouts name the archive members of each format version.

The specs (``_Spec`` and the functions and constants that make them) and ``_check_fields``
also check the forecaster's files (forecasting/_persist.py), whose tables are kept there.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, NamedTuple

from . import _core
from ._npz import BadFile, show
from ._state import STATE_SCHEMA, FieldSchema, TrainState


class _Spec(NamedTuple):
    """What a JSON value must be: a description for messages and the test."""

    expected: str
    accepts: Callable[[Any], bool]


def _number(v: Any) -> float | None:
    """``v`` as a float when it is a JSON number (bools are not; nor ints beyond 2**63, which
    float() may not even convert), else None."""
    if type(v) is float:
        return v
    if type(v) is int and -(2**63) <= v < 2**63:
        return float(v)
    return None


def _int_in(lo: int, hi: int) -> _Spec:
    return _Spec(f"an int in [{lo}, {hi}]", lambda v: type(v) is int and lo <= v <= hi)


def _real(expected: str, test: Callable[[float], bool]) -> _Spec:
    def accepts(v: Any) -> bool:
        x = _number(v)
        return x is not None and test(x)

    return _Spec(expected, accepts)


def _one_of(*options: str) -> _Spec:
    return _Spec(
        "one of " + ", ".join(map(repr, options)), lambda v: type(v) is str and v in options
    )


def _list_of(expected: str, item: _Spec, least: int = 0) -> _Spec:
    """A list of at least ``least`` values ``item`` accepts (``expected`` says so)."""
    return _Spec(
        expected,
        lambda v: type(v) is list and len(v) >= least and all(item.accepts(x) for x in v),
    )


def _text(most: int) -> _Spec:
    """A string of at most ``most`` characters."""
    return _Spec(
        f"a string of at most {most} characters", lambda v: type(v) is str and len(v) <= most
    )


def _any_of(*specs: _Spec) -> _Spec:
    """What one of ``specs`` accepts."""
    return _Spec(
        " or ".join(spec.expected for spec in specs),
        lambda v: any(spec.accepts(v) for spec in specs),
    )


_NULL = _Spec("null", lambda v: v is None)


def _or_none(spec: _Spec) -> _Spec:
    return _any_of(spec, _NULL)


def _spec_of(schema: FieldSchema) -> _Spec:
    """The check of a TrainState field's JSON value, from its schema (_state.STATE_SCHEMA)."""
    lo, hi, inf = schema.low, schema.high, schema.infinity
    if schema.kind == "int":
        spec = _int_in(int(lo), int(hi))
    else:
        text = "a finite number" + (
            f" in [{lo:g}, {hi:g}]"
            if -math.inf < lo and hi < math.inf
            else f" >= {lo:g}"
            if -math.inf < lo
            else f" <= {hi:g}"
            if hi < math.inf
            else ""
        )
        if inf is not None:
            text += " or " + ("Infinity" if inf > 0 else "-Infinity")
        number = _real(text, lambda x: (math.isfinite(x) and lo <= x <= hi) or x == inf)
        numbers = _list_of(
            "a list of " + text.replace("a finite number", "finite numbers", 1), number
        )
        by_name = _Spec(
            "an object of " + numbers.expected.replace("a list", "lists", 1),
            lambda v: type(v) is dict and all(map(numbers.accepts, v.values())),
        )
        spec = {"float": number, "floats": numbers, "floats by name": by_name}[schema.kind]
    return _or_none(spec) if schema.nullable else spec


def _value_of(schema: FieldSchema, v: Any) -> Any:
    """A checked JSON value as ``TrainState.scalars()`` gives it (JSON ints become floats)."""
    if v is None or schema.kind == "int":
        return v
    if schema.kind == "float":
        return float(v)
    if schema.kind == "floats":
        return [float(x) for x in v]
    return {str(k): [float(x) for x in xs] for k, xs in v.items()}


_ANY = _Spec("anything", lambda v: True)
_BOOL = _Spec("true or false", lambda v: type(v) is bool)
_INT = _Spec("an int", lambda v: type(v) is int)  # of any size; true/false are not ints
_STR = _Spec("a string", lambda v: type(v) is str)
_OBJECT = _Spec("an object", lambda v: type(v) is dict)
_MAX_SIZE = 2**31 - 1  # the core's sizes; beyond them nothing could fit anyway
_SIZE = _int_in(1, _MAX_SIZE)
_FINITE = _real("a finite number", math.isfinite)
_FINITES = _list_of("a list of finite numbers", _FINITE)
_SHA256 = _Spec(
    "a SHA-256 (64 hex digits)",
    lambda v: type(v) is str and re.fullmatch(r"[0-9a-f]{64}", v) is not None,
)
# A label (series id, column or index name) as JSON keeps it. isinstance, not type(): saving
# checks Python values with it too (an int or str subclass is written as its JSON value).
_LABEL = _Spec(
    "a label (a string, an int, a finite float or null)",
    lambda v: (
        v is None
        or (isinstance(v, (str, int)) and not isinstance(v, bool))
        or (isinstance(v, float) and math.isfinite(v))
    ),
)
_LABELS = _list_of("a list of labels (strings, ints, finite floats or nulls)", _LABEL)

# The training state's entries (version 2's "state" section): every TrainState.SCALARS field.
_STATE = {name: _spec_of(schema) for name, schema in STATE_SCHEMA.items()}

# Version 1's name of every field of TrainState.ARRAYS (its members) and TrainState.SCALARS
# (its "fitted" entries); those a version-1 file may leave out get these values (lr: None,
# the hyperparameter learning_rate_init).
_V1_NAMES = {
    "params_": "params",
    "optimizer_m": "m",
    "optimizer_v": "v",
    "_lr": "lr",
    "_step": "step",
    "t_": "t",
    "n_iter_": "n_iter",
    "loss_curve_": "loss_curve",
    "validation_scores_": "validation_scores",
    "best_loss_": "best_loss",
    "best_validation_score_": "best_validation_score",
    "_no_improvement_count": "no_improvement_count",
    "eval_scores": "eval_scores",
}
_V1_DEFAULTS = {"lr": None, "step": 0, "no_improvement_count": 0, "eval_scores": {}}

# Top-level entries of __meta__; format, format_version and class are checked first, with
# their own messages (a newer version may have other entries).
_META = {
    "format": _ANY,
    "format_version": _ANY,
    "class": _ANY,
    "lstm_native_version": _STR,
    "params": _OBJECT,
    "config": _OBJECT,
    "fitted": _OBJECT,
    "state": _OBJECT,
    "sha256": _OBJECT,
    "feature_names_in_": _list_of("a list of strings", _STR),
    "classes_object": _BOOL,
    "random_state": _OBJECT,
}
_META_OPTIONAL = frozenset(
    {"lstm_native_version", "feature_names_in_", "classes_object", "random_state"}
)

# The network configuration (the core's ModelConfig plus the dtype); every entry required.
_CONFIG = {
    "cell": _one_of(*_core.CELLS),
    "input_size": _SIZE,
    "hidden_size": _SIZE,
    "num_layers": _SIZE,
    "output_size": _SIZE,
    "bidirectional": _BOOL,
    "return_sequences": _BOOL,
    "dropout": _real("a number in [0, 1)", lambda x: 0 <= x < 1),
    "loss": _one_of("mse", "softmax", "absolute_error", "huber", "quantile"),
    "huber_delta": _real("a finite number > 0", lambda x: math.isfinite(x) and x > 0),
    "quantiles": _FINITES,
    "dtype": _one_of("float32", "float64"),
    "precision": _one_of("float32", "bfloat16"),
}
# Entries of later versions: a file without them has the core's defaults (loss_config;
# precision "float32").
_CONFIG_OPTIONAL = frozenset({"huber_delta", "quantiles", "precision"})

# The fitted model but its training state, by the names of the estimator's attributes.
_FITTED = {
    "n_features_in_": _SIZE,
    "_input_kind_": _one_of("2d", "3d", "list"),
    "_step_features_": _SIZE,
    "n_outputs_": _SIZE,
    "_y_ndim_": _int_in(1, 2),
}


class _Layout(NamedTuple):
    """Where a format version keeps what: its top-level entries and "fitted" entries (and
    which may be left out), the section of the training state, the name of every TrainState
    field in the file (members for ARRAYS) and the values of those it may leave out."""

    meta: dict
    fitted: dict
    fitted_optional: frozenset
    section: str
    names: dict
    defaults: dict


_LAYOUTS = {
    1: _Layout(
        {k: v for k, v in _META.items() if k != "state"},
        {
            **_FITTED,
            **{old: _STATE[new] for old, new in _V1_NAMES.items() if new in _STATE},
            "loss_": _FINITE,
        },
        frozenset(
            {"_y_ndim_", "loss_"} | {old for old, new in _V1_NAMES.items() if new in _V1_DEFAULTS}
        ),
        "fitted",
        {new: old for old, new in _V1_NAMES.items()},
        _V1_DEFAULTS,
    ),
    2: _Layout(
        _META,
        _FITTED,
        frozenset({"_y_ndim_"}),
        "state",
        {name: name for name in TrainState.ARRAYS + TrainState.SCALARS},
        {},
    ),
}

# NumPy's legacy RandomState.get_state() tuple but the keys (an array of the file).
_RANDOM_STATE = {
    "kind": _one_of("MT19937"),
    "pos": _int_in(0, 624),
    "has_gauss": _int_in(0, 1),
    "cached_gaussian": _FINITE,
}


_WEIGHT = _real("a finite number >= 0", lambda x: math.isfinite(x) and x >= 0)


def _class_weight_ok(v: Any) -> bool:
    if v is None or v == "balanced":
        return True
    if type(v) is not list:
        return False
    labels = []
    for pair in v:
        if not (
            type(pair) is list
            and len(pair) == 2
            and _WEIGHT.accepts(pair[1])
            and type(pair[0]) in (str, int, float, bool)
        ):
            return False
        labels.append(pair[0])
    return len(set(labels)) == len(labels)


# The JSON form of a hyperparameter; the estimator's own validation then checks its value.
# scikit-learn's Interval(Integral) accepts true/false: a bool hidden_size is a mistake, not a 1.
_HYPER_SCALAR = _Spec(
    "a number, string, true/false or null",
    lambda v: v is None or type(v) in (bool, int, float, str),
)
_HYPER_INTEGER = _Spec(
    "an int, a string or null (not true/false)", lambda v: v is None or type(v) in (int, float, str)
)
_HYPER = {
    "callbacks": _Spec("null (callbacks are not saved)", lambda v: v is None),
    "class_weight": _Spec(
        'null, "balanced" or a list of distinct [label, weight >= 0] pairs', _class_weight_ok
    ),
    "quantiles": _or_none(_FINITES),
    **dict.fromkeys(
        ("hidden_size", "num_layers", "batch_size", "max_iter", "n_iter_no_change", "n_jobs"),
        _HYPER_INTEGER,
    ),
}


def _check_version(meta: dict, latest: int, files: str) -> int:
    """The ``format_version`` of ``meta``: an int from 1 to ``latest``; a later one was written
    by a newer lstm_native (the message says so, and which reads ``files`` up to ``latest``)."""
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise BadFile(f"invalid format version {show(version)}")
    if version > latest:
        raise BadFile(
            f"format version {version} was written by a newer lstm_native "
            f"({show(meta.get('lstm_native_version', '?'))}); this version reads {files} up to "
            f"format version {latest}. Upgrade lstm_native to load it"
        )
    return version


def _check_fields(
    obj: dict, schema: dict, what: str, whats: str, optional: frozenset = frozenset()
) -> None:
    """Refuses keys ``schema`` does not know, missing required ones and values it rejects."""
    unknown = sorted(k for k in obj if k not in schema)
    if unknown:
        raise BadFile(f"unknown {whats} {show(unknown)}")
    for key, spec in schema.items():
        if key not in obj:
            if key not in optional:
                raise BadFile(f"{what} {key!r} is missing")
        elif not spec.accepts(obj[key]):
            raise BadFile(f"invalid {what} {key!r}: {show(obj[key])} (expected {spec.expected})")
