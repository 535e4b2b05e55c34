"""Saving and loading fitted models: a portable ``.npz`` file, no pickle.

The file is a NumPy ``.npz`` archive (readable with ``np.load(path, allow_pickle=False)``
anywhere), written and read through :mod:`lstm_native._npz` (atomic writing, no special files
replaced; a strict zip and ``.npy`` reader). Format version 2 holds:

* ``__meta__``: a JSON document (a 0-d unicode array)::

      {"format": "lstm_native.estimator", "format_version": 2, "lstm_native_version": "...",
       "class": "LSTMRegressor",            # the estimator's class
       "params": {...},                     # its hyperparameters (get_params())
       "config": {...},                     # the network: the core's ModelConfig and "dtype"
       "fitted": {"n_features_in_", "_input_kind_", "_step_features_", "n_outputs_",
                  "_y_ndim_" (regressors)},
       "state": {...},                      # exactly TrainState.scalars()
       "feature_names_in_": [...],          # optional: 2-D input given with names
       "classes_object": false,             # classifiers: classes_ was an object array
       "random_state": {"kind", "pos", "has_gauss", "cached_gaussian"},  # the training RNG
       "sha256": {array name: SHA-256 of its data}}

* one array per ``TrainState.ARRAYS`` under the field's name: ``params`` (the flat parameter
  vector, layout ``named_parameters()``), ``m`` and ``v`` (the optimizer's moments, so that
  ``partial_fit`` and ``warm_start`` continue where the saved estimator left off);
* ``classes_`` (classifiers) and ``random_state_keys`` (the training RNG's MT19937 keys).

What the state section and its arrays hold, and each field's type and range, is defined once,
next to ``TrainState`` (``_state.STATE_SCHEMA``): a field added there is a new format version.
Version 1 (the arrays ``params_``, ``optimizer_m``, ``optimizer_v``; the training state among
the "fitted" entries under the estimator's attribute names, some of them optional) is still
read, through one table of version 1's names (``_V1_NAMES``). Newer versions are refused with
a message to upgrade.

Hyperparameters are stored as JSON values; ``class_weight`` as a list of ``[label, weight]``
pairs. ``callbacks`` are code, not data: they are not saved (the loaded estimator has
``callbacks=None``), nor is a ``random_state`` given as a RandomState instance (its state is
saved as the training RNG's).

Loading treats the file as hostile: any file raises ``ValueError("Cannot load '<path>': ...")``
naming the problem (and the field), or gives the parts of an estimator whose every attribute
has been checked (``predict`` and ``partial_fit`` then behave as for any estimator with those
hyperparameters). Loading never crashes the process, never blocks, and allocates nothing large
before the sizes the file declares have been checked against the available memory. After the
archive's own checks (regular file, zip directory, members, ``.npy`` headers: see _npz):

1. ``__meta__``: a 0-d unicode array of at most 64 MiB, valid UTF-32, JSON without repeated
   keys (nesting too deep is refused), an object. Then, table-driven (``_META``, ``_CONFIG``,
   ``_FITTED``, the state's schema, ``_RANDOM_STATE``, ``_HYPER``): the format name, the
   version, the class (one of the caller's registry, and a subclass of the one expected, e.g.
   by ``LSTMRegressor.load``), no unknown or missing entries anywhere (but the configuration's
   ``huber_delta`` and ``quantiles``, absent from earlier files), every value's JSON type
   and range (JSON ``true`` is not an int; sizes ints in [1, 2**31 - 1], counters in
   [0, 2**53], losses and scores finite, the best loss also Infinity, the best validation score
   also -Infinity, the learning rate finite and >= 0), and their consistency: the loss and the
   class, the input kind, features per step and the network's input size, outputs, quantile
   levels and ``_y_ndim_``, the early-stopping bookkeeping, ``feature_names_in_`` (strings, one
   per feature, for 2-D input only), ``random_state`` (MT19937, ``pos`` in [0, 624],
   ``has_gauss`` 0/1, ``cached_gaussian`` finite) and ``random_state_keys`` together. The
   hyperparameters: known names, JSON scalars (``class_weight`` pairs, ``quantiles`` a list or null,
   ``callbacks`` absent or null, no true/false for an integer), then the estimator's own
   validation (scikit-learn's ``_validate_params``); the network's loss fields must be those
   the loss hyperparameters give.
2. The members: exactly the required ones and those the metadata announces, nothing foreign,
   a checksum for each and no other; their dtypes and shapes (the network's float dtype for
   the parameters and the moments, uint32 (624,) for the keys, ``classes_`` bool, int, uint,
   float or unicode, 1-D of size ``output_size``).
3. Memory: what loading will take, from the configuration alone (the core's exact parameter
   count, ``_core.ModelConfig(...).num_params``, computed without building the network and in
   O(1) for any number of layers; the three float arrays, the others as their headers
   declare, and the core network's own ~1.4 KiB per recurrent unit and ~1 byte per
   parameter) against ``_memory.available_memory()``; then the core's network is built (its
   own limits refused as ValueError, not MemoryError) and the parameters and moments must
   have exactly the shape (P,).
4. Only then the data (each member's declared bytes, CRC and SHA-256 checked); then the
   values: parameters and moments finite, the second moment >= 0, ``classes_`` unique,
   sorted, finite, valid bools and code points.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import is_classifier

from ._network import Network, core_config, loss_config
from ._npz import (
    BadFile,
    json_member,
    open_archive,
    require_memory,
    sha256,
    show,
    to_bytes,
    write_atomic,
)
from ._persist_schema import (
    _CONFIG,
    _CONFIG_OPTIONAL,
    _HYPER,
    _HYPER_SCALAR,
    _LAYOUTS,
    _META_OPTIONAL,
    _RANDOM_STATE,
    _SHA256,
    _STATE,
    _check_fields,
    _check_version,
    _Layout,
    _value_of,
)
from ._state import STATE_SCHEMA, FittedModel, InputSpec, TrainState

FORMAT_NAME = "lstm_native.estimator"
FORMAT_VERSION = 2

_KIND, _TITLE, _META_MEMBER = "a model file", "an lstm_native model file", "__meta__"
_MAX_META_BYTES = 64 * 2**20  # __meta__ (UTF-32): far more than any model's metadata


# ---------------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    """Python scalars/lists for JSON (NumPy scalars and arrays converted)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot store {value!r} ({type(value).__name__}) in the model file")


def _hyperparameters(params: dict) -> dict:
    out = {}
    for name, value in params.items():
        if name == "callbacks":
            continue  # code, not data (see the module docstring); loads as the default, None
        if name == "dtype":
            value = np.dtype(value).name
        elif name == "random_state" and not (value is None or isinstance(value, Integral)):
            value = None  # a RandomState instance: its current state is saved separately
        elif name == "class_weight" and isinstance(value, dict):
            value = [[k, v] for k, v in value.items()]  # JSON object keys are only strings
        out[name] = _jsonable(value)
    return out


def _classes_array(classes: np.ndarray) -> tuple:
    """classes_ as an array np.save can write without pickle, and whether it was object."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biuf" or classes.dtype.kind in "US":
        return classes, False
    if classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes):
        return classes.astype(str), True
    raise ValueError(
        f"cannot save classes_ of dtype {classes.dtype} ({classes[:5]!r}...) "
        "without pickle; use integer or string class labels"
    )


@functools.cache
def _package_version() -> str:
    try:
        return importlib.metadata.version("lstm_native")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def save_model(path: Any, class_name: str, hyperparams: dict, fitted: FittedModel) -> None:
    """Write ``fitted`` of estimator class ``class_name`` with ``hyperparams``
    (``get_params(deep=False)``) to ``path`` in the current format (module docstring)."""
    write_atomic(os.fspath(path), model_arrays(class_name, hyperparams, fitted))


def model_bytes(class_name: str, hyperparams: dict, fitted: FittedModel) -> bytes:
    """What :func:`save_model` would write, as bytes (a model nested in another file, e.g. a
    forecaster's networks; read back with ``load_model(name, ..., data=...)``)."""
    return to_bytes(model_arrays(class_name, hyperparams, fitted))


def model_arrays(class_name: str, hyperparams: dict, fitted: FittedModel) -> dict:
    """The members of a model file: {name: array}, ``__meta__`` included."""
    st, spec = fitted.state, fitted.input
    arrays = {name: np.ascontiguousarray(getattr(st, name)) for name in TrainState.ARRAYS}
    for name, a in arrays.items():  # loading refuses them: no file that will not load
        if not np.isfinite(a).all():
            raise ValueError(
                f"cannot save this {class_name}: its {name} contain NaN or infinity (written "
                "into params_ or flat_params after fit?)"
            )
    attrs = {
        "n_features_in_": spec.n_features_in,
        "_input_kind_": spec.input_kind,
        "_step_features_": spec.step_features,
        "n_outputs_": fitted.n_outputs,
    }
    if fitted.classes is None:
        attrs["_y_ndim_"] = fitted.y_ndim
    meta: dict = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "lstm_native_version": _package_version(),
        "class": class_name,
        "params": _hyperparameters(hyperparams),
        "config": {k: _jsonable(v) for k, v in fitted.config.items()},
        "fitted": {k: _jsonable(v) for k, v in attrs.items()},
        "state": st.scalars(),
    }
    if spec.feature_names_in is not None:
        meta["feature_names_in_"] = [str(f) for f in spec.feature_names_in]
    if fitted.classes is not None:
        arrays["classes_"], meta["classes_object"] = _classes_array(fitted.classes)
    rs = st.rng
    if isinstance(rs, np.random.RandomState):
        kind, keys, pos, has_gauss, cached = rs.get_state(legacy=True)
        arrays["random_state_keys"] = np.asarray(keys, dtype=np.uint32)
        meta["random_state"] = {
            "kind": kind,
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        }
    meta["sha256"] = {k: sha256(v) for k, v in arrays.items()}
    arrays["__meta__"] = json_member(meta)
    return arrays


# ---------------------------------------------------------------------------------------------
# checking the metadata
# ---------------------------------------------------------------------------------------------
def _check_meta(meta: dict, registry: dict, expected: Any) -> tuple:
    """(the estimator class, the version's layout), after every check of the metadata alone
    but the hyperparameters' (module docstring)."""
    if meta.get("format") != FORMAT_NAME:
        raise BadFile(f"not an lstm_native model file (format {show(meta.get('format'))})")
    version = _check_version(meta, FORMAT_VERSION, "model files")
    name = meta.get("class")
    cls = registry.get(name) if type(name) is str else None
    if cls is None:
        raise BadFile(f"unknown estimator class {show(name)}")
    if expected is not None and not issubclass(cls, expected):
        raise BadFile(f"it holds an estimator of class {cls.__name__}, not {expected.__name__}")
    layout = _LAYOUTS[version]
    _check_fields(meta, layout.meta, "metadata entry", "metadata entries", _META_OPTIONAL)
    _check_fields(
        meta["config"],
        _CONFIG,
        "network configuration entry",
        "network configuration entries",
        _CONFIG_OPTIONAL,
    )
    for key, value in loss_config(meta["config"]["loss"]).items():
        meta["config"].setdefault(key, value)
    meta["config"].setdefault("precision", "float32")
    if (meta["config"]["precision"], meta["config"]["dtype"]) == ("bfloat16", "float64"):
        raise BadFile("precision 'bfloat16' with dtype float64 (bfloat16 needs float32)")
    _check_fields(
        meta["fitted"],
        layout.fitted,
        "fitted attribute",
        "fitted attributes",
        layout.fitted_optional,
    )
    if layout.section == "state":
        _check_fields(meta["state"], _STATE, "state entry", "state entries")
    if "random_state" in meta:
        _check_fields(
            meta["random_state"], _RANDOM_STATE, "random_state entry", "random_state entries"
        )
    for key, digest in meta["sha256"].items():
        if not _SHA256.accepts(digest):
            raise BadFile(f"the checksum of {show(key)} is {show(digest)}, not a SHA-256")
    _check_consistency(cls, meta, _state_entries(meta, layout))
    return cls, layout


def _state_entries(meta: dict, layout: _Layout) -> dict:
    """{TrainState field: its (checked) JSON value} of the fields the file has."""
    section = meta[layout.section]
    return {
        name: section[layout.names[name]]
        for name in TrainState.SCALARS
        if layout.names[name] in section
    }


def _check_consistency(cls: Any, meta: dict, state: dict) -> None:
    """What the fitted attributes, the configuration and the class say of each other."""
    config, fitted = meta["config"], meta["fitted"]
    classifier = is_classifier(cls())
    if (config["loss"] == "softmax") != classifier:
        raise BadFile(f"the network's loss {config['loss']!r} is not that of a {cls.__name__}")
    if fitted["_step_features_"] != config["input_size"]:
        raise BadFile("features per step and the network's input size differ")
    if fitted["_input_kind_"] == "2d" and fitted["_step_features_"] != 1:
        raise BadFile(
            f"2-D input has one feature per step, the file says {fitted['_step_features_']}"
        )
    if fitted["_input_kind_"] != "2d" and fitted["n_features_in_"] != fitted["_step_features_"]:
        raise BadFile("n_features_in_ and the features per step differ")
    O, y_ndim = fitted["n_outputs_"], fitted.get("_y_ndim_")
    if classifier:
        if O != 1 or config["output_size"] < 2 or y_ndim not in (None, 1):
            raise BadFile(
                f"a classifier has one output per sequence (or step) over at least "
                f"two classes; the file says n_outputs_={O}, _y_ndim_={y_ndim}, "
                f"output_size={config['output_size']}"
            )
        fitted.setdefault("_y_ndim_", 1)
    else:
        if y_ndim is None:
            raise BadFile("fitted attribute '_y_ndim_' is missing")
        Q = len(config["quantiles"]) if config["loss"] == "quantile" else 1
        if O * Q != config["output_size"] or (y_ndim == 1 and O != 1):
            raise BadFile(
                f"n_outputs_={O}, _y_ndim_={y_ndim}, {Q} quantile level(s) and the "
                f"network's output_size={config['output_size']} disagree"
            )
    validating = state["validation_scores"] is not None
    if validating != (state["best_validation_score"] is not None) or (
        validating == (state["best_loss"] is not None)
    ):
        raise BadFile(
            "the convergence bookkeeping is inconsistent: the validation scores and "
            "the best validation score are set with validation, the best loss "
            "without"
        )
    names = meta.get("feature_names_in_")
    if names is not None and (
        len(names) != fitted["n_features_in_"] or fitted["_input_kind_"] != "2d"
    ):
        raise BadFile(
            f"feature_names_in_ has {len(names)} names, for 2-D input of "
            f"{fitted['n_features_in_']} features (the file: "
            f"{fitted['_input_kind_']!r} input)"
        )
    if "classes_object" in meta and not classifier:
        raise BadFile("classes_object in the file of a regressor")


def _check_members(meta: dict, members: set, classifier: bool, layout: _Layout) -> None:
    """Exactly the arrays the metadata announces, each with a checksum."""
    arrays = set(members) - {_META_MEMBER}
    required = [layout.names[name] for name in TrainState.ARRAYS]
    for name in required:
        if name not in arrays:
            raise BadFile(f"array {name!r} is missing")
    if classifier != ("classes_" in arrays):
        raise BadFile(
            "a classifier without classes_" if classifier else "a regressor with classes_"
        )
    if ("random_state" in meta) != ("random_state_keys" in arrays):
        raise BadFile("random_state and the array random_state_keys come together")
    foreign = sorted(arrays - {*required, "classes_", "random_state_keys"})
    if foreign:
        raise BadFile(f"unexpected arrays {show(foreign)}")
    for name in sorted(arrays):
        if name not in meta["sha256"]:
            raise BadFile(f"array {name!r} has no checksum")
    extra = sorted(set(meta["sha256"]) - arrays)
    if extra:
        raise BadFile(f"checksums for arrays that are not in the file: {show(extra)}")


def _hyperparameters_of(cls: Any, params: dict) -> dict:
    """The saved hyperparameters, checked by their JSON form and then by the estimator's own
    validation, as constructor arguments."""
    schema = {name: _HYPER.get(name, _HYPER_SCALAR) for name in cls().get_params(deep=False)}
    _check_fields(params, schema, "hyperparameter", "hyperparameters", frozenset(schema))
    params = dict(params)
    if isinstance(params.get("class_weight"), list):
        params["class_weight"] = dict(params["class_weight"])
    try:
        cls(**params)._validate_params()  # (InvalidParameterError is both of these)
    except (ValueError, TypeError) as e:
        raise BadFile(f"invalid hyperparameters ({e})") from e
    return params


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def _memory_needed(headers: dict, config: dict, meta: dict) -> int:
    """Checks classes_ and random_state_keys from their headers; returns the bytes that loading
    will take: the file's arrays (the float arrays at the configuration's size) and the core's
    network."""
    need = 0
    if "classes_" in headers:
        npy = headers["classes_"]
        if npy.dtype.kind not in "biufU" or (meta.get("classes_object") and npy.dtype.kind != "U"):
            raise BadFile(f"classes_ has the dtype {npy.dtype.str}")
        if npy.shape != (config["output_size"],):
            raise BadFile(
                f"classes_ has shape {npy.shape}, the network has {config['output_size']} outputs"
            )
        need += npy.nbytes
    if "random_state_keys" in headers:
        npy = headers["random_state_keys"]
        if npy.dtype.kind != "u" or npy.dtype.itemsize != 4 or npy.shape != (624,):
            raise BadFile(
                f"random_state_keys has dtype {npy.dtype.str} and shape {npy.shape}, "
                "not uint32 (624,)"
            )
        need += npy.nbytes
    P = _param_count(config)
    units = config["num_layers"] * (2 if config["bidirectional"] else 1)
    # the arrays, and what the core's network takes when it is built: about 1.4 KiB per
    # recurrent unit and P bytes (measured; counted here with a margin of 1.5 to 2)
    return (
        need
        + len(TrainState.ARRAYS) * P * np.dtype(config["dtype"]).itemsize
        + 2 * P
        + 2048 * units
    )


def _param_count(config: dict) -> int:
    """The core's exact parameter count (computed without building the network, in O(1) for
    any number of layers); BadFile for a configuration the core refuses."""
    try:
        return int(core_config(config).num_params)
    except (ValueError, TypeError, OverflowError, MemoryError) as e:
        raise BadFile(f"invalid network configuration {show.repr(config)} ({e})") from e


def _build_network(config: dict) -> Network:
    try:
        return Network(config)
    except (ValueError, TypeError, OverflowError, MemoryError) as e:
        # the core refuses sizes beyond its limits with MemoryError: a property of the file
        raise BadFile(f"invalid network configuration {show(config)} ({e})") from e


def _check_classes(classes: np.ndarray, raw: np.ndarray) -> None:
    """Labels as fit makes them (unique_labels): valid values, unique and sorted."""
    kind = classes.dtype.kind
    if kind == "b" and raw.max(initial=0) > 1:
        raise BadFile("classes_ holds bytes that are not booleans")
    if kind == "f" and not np.all(np.isfinite(classes)):
        raise BadFile("classes_ contains NaN or infinity")
    if kind == "U":  # code points (native order after Archive.read)
        cp = np.ascontiguousarray(classes).view(np.uint32)
        if np.any((cp >= 0x110000) | ((cp >= 0xD800) & (cp < 0xE000))):
            raise BadFile("classes_ holds invalid characters")
    if not np.all(classes[1:] > classes[:-1]):
        raise BadFile("classes_ is not sorted and unique")


def load_model(path: Any, registry: dict, expected: Any = None, data: Any = None) -> tuple:
    """Read a file written by :func:`save_model` (or by format version 1):
    ``(cls, hyperparams, fitted)``, the estimator class (from ``registry``, {class name:
    class}; a subclass of ``expected`` if given), its hyperparameters (constructor
    arguments) and the :class:`~lstm_native._state.FittedModel`, all checked. ValueError
    naming the file for any problem with it (see the module docstring). ``data``: the bytes
    of a model nested in another file (:func:`model_bytes`); ``path`` then names it."""
    path = os.fspath(path)
    try:
        with open_archive(
            path, kind=_KIND, title=_TITLE, required=_META_MEMBER, data=data
        ) as archive:
            meta, cls, layout, hyper, arrays = _read(archive, registry, expected)
        return cls, hyper, _assemble(cls, hyper, meta, layout, arrays)
    except BadFile as e:
        raise ValueError(f"Cannot load {path!r}: {e}") from e.__cause__


def file_format(path: Any) -> Any:
    """The ``format`` entry of the ``__meta__`` document of an lstm_native file (after the
    archive's checks), to tell an estimator from a forecaster; ValueError naming the file."""
    path = os.fspath(path)
    try:
        with open_archive(path, kind=_KIND, title=_TITLE, required=_META_MEMBER) as archive:
            meta = archive.read_json(_META_MEMBER, _MAX_META_BYTES)
    except BadFile as e:
        raise ValueError(f"Cannot load {path!r}: {e}") from e.__cause__
    return meta.get("format") if isinstance(meta, dict) else None


def _read(archive: Any, registry: dict, expected: Any) -> tuple:
    """The checked metadata and hyperparameters, and {member: (array, raw bytes)}."""
    headers = archive.headers
    meta = archive.read_json(_META_MEMBER, _MAX_META_BYTES)
    if not isinstance(meta, dict):
        raise BadFile("__meta__ is not a JSON object")
    cls, layout = _check_meta(meta, registry, expected)
    _check_members(meta, set(headers), is_classifier(cls()), layout)
    hyper = _hyperparameters_of(cls, meta["params"])
    config = meta["config"]
    loss = cls(**hyper)._loss_config()
    if config["precision"] != hyper.get("precision", "float32"):
        raise BadFile(
            f"the network's precision {show(config['precision'])} is not the one of the "
            f"hyperparameters ({show(hyper.get('precision', 'float32'))})"
        )
    if {k: config[k] for k in loss} != loss:
        raise BadFile(
            f"the network's loss {show({k: config[k] for k in loss})} is not the one "
            f"of the hyperparameters ({show(loss)})"
        )
    require_memory(_memory_needed(headers, config, meta))
    P = _build_network(config).num_params  # equal to _param_count: one computation
    dtype = np.dtype(config["dtype"])
    for name in (layout.names[a] for a in TrainState.ARRAYS):
        npy = headers[name]
        if npy.dtype.newbyteorder("=") != dtype or npy.shape != (P,):
            raise BadFile(
                f"{name} has dtype {npy.dtype.newbyteorder('=')} and shape "
                f"{npy.shape}; the network needs {dtype} ({P},)"
            )
    arrays = {}
    for name in sorted(set(headers) - {_META_MEMBER}):
        arrays[name] = archive.read(name, meta["sha256"][name])
    return meta, cls, layout, hyper, arrays


def _assemble(cls: Any, hyper: dict, meta: dict, layout: _Layout, arrays: dict) -> FittedModel:
    """The FittedModel of checked parts, after the checks of the arrays' values."""
    state_arrays = {name: arrays[layout.names[name]][0] for name in TrainState.ARRAYS}
    names = layout.names
    if not np.all(np.isfinite(state_arrays["params"])):
        raise BadFile(f"{names['params']} contains NaN or infinity")
    if not (np.all(np.isfinite(state_arrays["m"])) and np.all(np.isfinite(state_arrays["v"]))):
        raise BadFile("the optimizer's moments contain NaN or infinity")
    if np.any(state_arrays["v"] < 0):
        raise BadFile(f"{names['v']} (a mean of squares) has negative values")
    classes = None
    if "classes_" in arrays:
        classes, raw = arrays["classes_"]
        _check_classes(classes, raw)
        if meta.get("classes_object"):
            classes = classes.astype(object)
    rs = meta.get("random_state")
    if rs is not None:
        rng = np.random.RandomState()
        try:
            rng.set_state(
                (
                    rs["kind"],
                    arrays["random_state_keys"][0],
                    rs["pos"],
                    rs["has_gauss"],
                    rs["cached_gaussian"],
                )
            )
        except (TypeError, ValueError) as e:
            raise BadFile(f"invalid random state ({e})") from e
    else:  # not saved: seeded as a new fit would be
        seed = hyper.get("random_state")
        rng = np.random.RandomState(seed if type(seed) is int else None)
    entries = {**layout.defaults, **_state_entries(meta, layout)}
    if entries["lr"] is None:  # version 1 without the learning rate: the initial one
        entries["lr"] = cls(**hyper).learning_rate_init
    scalars = {name: _value_of(STATE_SCHEMA[name], entries[name]) for name in TrainState.SCALARS}
    fitted, names_in = meta["fitted"], meta.get("feature_names_in_")
    spec = InputSpec(
        n_features_in=fitted["n_features_in_"],
        input_kind=fitted["_input_kind_"],
        step_features=fitted["_step_features_"],
        feature_names_in=None if names_in is None else np.asarray(names_in, dtype=object),
    )
    return FittedModel(
        config=dict(meta["config"]),
        state=TrainState.from_parts(state_arrays, scalars, rng),
        input=spec,
        n_outputs=fitted["n_outputs_"],
        y_ndim=fitted["_y_ndim_"],
        classes=classes,
    )


__all__ = ["FORMAT_VERSION", "file_format", "load_model", "model_bytes", "save_model"]
