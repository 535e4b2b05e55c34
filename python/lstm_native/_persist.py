"""Saving and loading fitted estimators: a portable ``.npz`` file, no pickle.

The file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays, readable with
``np.load(path, allow_pickle=False)`` anywhere) holding:

* ``__meta__``: a JSON document (a 0-d unicode array): the format name and version, the
  estimator's class, its hyperparameters (``get_params()``), the network configuration, and the
  fitted attributes that are not arrays (``n_features_in_``, ``loss_curve_``, ``n_iter_``, ...),
  plus a SHA-256 of every array;
* ``params_``: the flat parameter vector (layout: ``named_parameters()``);
* ``optimizer_m``, ``optimizer_v``: the optimizer's moments, so that ``partial_fit`` and
  ``warm_start`` continue where the saved estimator left off;
* ``classes_`` (classifiers) and ``random_state_keys`` (the training RNG's state).

Writing is atomic: the archive goes to a temporary file in the destination folder, is flushed
to disk and then renamed over ``path`` (``os.replace``), so a crash or Ctrl-C while saving never
leaves a half-written file under the final name. Loading checks everything it reads and raises
``ValueError`` naming the file and the problem for a truncated, corrupted or foreign file, or
one written by a newer version of the format.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from numbers import Integral, Real
from typing import Any

import numpy as np

FORMAT_NAME = "lstm_native.estimator"
FORMAT_VERSION = 1

# Fitted attributes stored in the JSON document (arrays are stored separately).
_SCALAR_ATTRS = ("n_features_in_", "_input_kind_", "_step_features_", "n_outputs_", "_y_ndim_",
                 "t_", "n_iter_", "loss_", "loss_curve_", "best_loss_", "validation_scores_",
                 "best_validation_score_", "_step", "_lr", "_no_improvement_count")
_CONFIG_KEYS = {"cell": str, "input_size": int, "hidden_size": int, "num_layers": int,
                "output_size": int, "bidirectional": bool, "return_sequences": bool,
                "dropout": float, "loss": str, "dtype": str}


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


def _hyperparameters(est: Any) -> dict:
    out = {}
    for name, value in est.get_params(deep=False).items():
        if name == "dtype":
            value = np.dtype(value).name
        elif name == "random_state" and not (value is None or isinstance(value, Integral)):
            value = None  # a RandomState instance: its current state is saved separately
        out[name] = _jsonable(value)
    return out


def _classes_array(classes: np.ndarray) -> tuple:
    """classes_ as an array np.save can write without pickle, and whether it was object."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biuf" or classes.dtype.kind in "US":
        return classes, False
    if classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes):
        return classes.astype(str), True
    raise ValueError(f"cannot save classes_ of dtype {classes.dtype} ({classes[:5]!r}...) "
                     "without pickle; use integer or string class labels")


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def save_estimator(est: Any, path: Any) -> None:
    """Write fitted estimator ``est`` to ``path`` (see the module docstring)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est)
    path = os.fspath(path)
    arrays = {"params_": np.ascontiguousarray(est.params_),
              "optimizer_m": np.ascontiguousarray(est._m),
              "optimizer_v": np.ascontiguousarray(est._v)}
    meta: dict = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "class": type(est).__name__,
        "params": _hyperparameters(est),
        "config": _jsonable_dict(est._config_),
        "fitted": {k: _jsonable(getattr(est, k)) for k in _SCALAR_ATTRS if hasattr(est, k)},
    }
    from . import __version__

    meta["lstm_native_version"] = __version__
    if hasattr(est, "feature_names_in_"):
        meta["feature_names_in_"] = [str(f) for f in est.feature_names_in_]
    if hasattr(est, "classes_"):
        arrays["classes_"], meta["classes_object"] = _classes_array(est.classes_)
    rs = getattr(est, "_random_state", None)
    if isinstance(rs, np.random.RandomState):
        kind, keys, pos, has_gauss, cached = rs.get_state(legacy=True)
        arrays["random_state_keys"] = np.asarray(keys, dtype=np.uint32)
        meta["random_state"] = {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                                "cached_gaussian": float(cached)}
    meta["sha256"] = {k: _sha256(v) for k, v in arrays.items()}
    arrays["__meta__"] = np.array(json.dumps(meta))

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); best effort
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _jsonable_dict(d: dict) -> dict:
    return {k: _jsonable(v) for k, v in d.items()}


class _Bad(Exception):
    """A problem found in the file's contents (turned into ValueError naming the file)."""


def _read(path: str) -> tuple:
    """(meta, arrays) from the file; _Bad for anything unreadable. The file is opened here
    (and always closed), not by np.load, which leaks its handle when the zip is damaged."""
    with open(path, "rb") as f:
        head = f.read(8)
        if not head:
            raise _Bad("the file is empty")
        if not (head.startswith(b"PK") or head.startswith(b"\x93NUMPY")):
            raise _Bad(f"not a NumPy .npz archive (it starts with {head!r})")
        f.seek(0)
        try:
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise _Bad("a single NumPy array, not an lstm_native model archive")
            with data:
                if "__meta__" not in data.files:
                    raise _Bad(f"not an lstm_native model file (arrays "
                               f"{sorted(data.files)[:6]}, no __meta__)")
                arrays = {k: data[k] for k in data.files}
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise _Bad(f"the archive is truncated or corrupted ({type(e).__name__}: {e})") \
                from e
        except ValueError as e:  # a damaged .npy header, or pickled (object) data
            raise _Bad(f"the archive is corrupted or holds pickled data ({e})") from e
    meta_arr = arrays.pop("__meta__")
    if meta_arr.dtype.kind != "U" or meta_arr.ndim != 0:
        raise _Bad("__meta__ is not a JSON string")
    try:
        meta = json.loads(str(meta_arr))
    except ValueError as e:
        raise _Bad(f"__meta__ is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise _Bad("__meta__ is not a JSON object")
    return meta, arrays


def _check_meta(meta: dict, arrays: dict, expected: Any) -> Any:
    from .estimators import LSTMClassifier, LSTMRegressor

    if meta.get("format") != FORMAT_NAME:
        raise _Bad(f"not an lstm_native model file (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Bad(f"invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise _Bad(f"format version {version} was written by a newer lstm_native "
                   f"({meta.get('lstm_native_version', '?')}); this version reads format "
                   f"versions up to {FORMAT_VERSION}. Upgrade lstm_native to load it")
    classes = {"LSTMRegressor": LSTMRegressor, "LSTMClassifier": LSTMClassifier}
    cls = classes.get(meta.get("class"))
    if cls is None:
        raise _Bad(f"unknown estimator class {meta.get('class')!r}")
    if expected is not None and not issubclass(cls, expected):
        raise _Bad(f"it holds an estimator of class {cls.__name__}, not {expected.__name__}")
    for key in ("params", "config", "fitted", "sha256"):
        if not isinstance(meta.get(key), dict):
            raise _Bad(f"metadata entry {key!r} is missing or not an object")
    config = meta["config"]
    for key, typ in _CONFIG_KEYS.items():
        v = config.get(key)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) if typ is float else (
            isinstance(v, typ) and (typ is bool or not isinstance(v, bool)))
        if not ok:
            raise _Bad(f"network configuration entry {key!r} is {v!r}, expected {typ.__name__}")
    for name in ("params_", "optimizer_m", "optimizer_v"):
        if name not in arrays:
            raise _Bad(f"array {name!r} is missing")
    for name, arr in arrays.items():
        want = meta["sha256"].get(name)
        if want is None:
            raise _Bad(f"array {name!r} has no checksum")
        if _sha256(arr) != want:
            raise _Bad(f"array {name!r} does not match its checksum (the file is corrupted)")
    if cls is LSTMClassifier and "classes_" not in arrays:
        raise _Bad("a classifier without classes_")
    return cls


def load_estimator(path: Any, expected: Any = None) -> Any:
    """Read an estimator written by :func:`save_estimator`. ``expected``: a class the loaded
    estimator must be an instance of. ValueError naming the file for any problem with it."""
    path = os.fspath(path)
    try:
        meta, arrays = _read(path)
        cls = _check_meta(meta, arrays, expected)
        return _build(cls, meta, arrays)
    except _Bad as e:
        raise ValueError(f"Cannot load {path!r}: {e}") from e.__cause__


def _build(cls: Any, meta: dict, arrays: dict) -> Any:
    from sklearn.utils._param_validation import InvalidParameterError

    from .estimators import _CorePool

    params = dict(meta["params"])
    valid = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise _Bad(f"unknown hyperparameters {unknown}")
    est = cls(**params)
    try:
        est._validate_params()
    except InvalidParameterError as e:
        raise _Bad(f"invalid hyperparameters ({e})") from e
    config = dict(meta["config"])
    dtype = np.dtype(config["dtype"]) if config["dtype"] in ("float32", "float64") else None
    if dtype is None:
        raise _Bad(f"unsupported dtype {config['dtype']!r}")
    try:
        pool = _CorePool(config)
    except (ValueError, TypeError, MemoryError) as e:
        raise _Bad(f"invalid network configuration {config} ({e})") from e
    P = pool.prototype.num_params
    for name in ("params_", "optimizer_m", "optimizer_v"):
        arr = arrays[name]
        if arr.dtype != dtype or arr.shape != (P,):
            raise _Bad(f"{name} has dtype {arr.dtype} and shape {arr.shape}; the network "
                       f"needs {dtype} ({P},)")
    if not np.all(np.isfinite(arrays["params_"])):
        raise _Bad("params_ contains NaN or infinity")
    fitted = meta["fitted"]
    unknown = sorted(set(fitted) - set(_SCALAR_ATTRS))
    if unknown:
        raise _Bad(f"unknown fitted attributes {unknown}")
    for key in ("n_features_in_", "_step_features_", "n_outputs_"):
        if not isinstance(fitted.get(key), int) or fitted[key] < 1:
            raise _Bad(f"fitted attribute {key} is {fitted.get(key)!r}")
    if fitted.get("_input_kind_") not in ("2d", "3d", "list"):
        raise _Bad(f"fitted attribute _input_kind_ is {fitted.get('_input_kind_')!r}")
    if fitted["_step_features_"] != config["input_size"]:
        raise _Bad("features per step and the network's input size differ")
    for key, value in fitted.items():
        if key == "loss_curve_" or key == "validation_scores_":
            value = None if value is None else [float(v) for v in value]
        setattr(est, key, value)
    est._config_ = config
    est._pool, est._core_model = pool, pool.prototype
    est.params_ = np.array(arrays["params_"], dtype=dtype, order="C")
    est._m = np.array(arrays["optimizer_m"], dtype=dtype, order="C")
    est._v = np.array(arrays["optimizer_v"], dtype=dtype, order="C")
    est._step = int(fitted.get("_step", 0))
    est._lr = float(fitted.get("_lr", est.learning_rate_init))
    est._no_improvement_count = int(fitted.get("_no_improvement_count", 0))
    est._best_params = None
    if "feature_names_in_" in meta:
        est.feature_names_in_ = np.asarray(meta["feature_names_in_"], dtype=object)
    if "classes_" in arrays:
        classes = arrays["classes_"]
        if classes.ndim != 1 or classes.size != config["output_size"]:
            raise _Bad(f"classes_ has shape {classes.shape}, the network has "
                       f"{config['output_size']} outputs")
        est.classes_ = classes.astype(object) if meta.get("classes_object") else classes
    rs = meta.get("random_state")
    if isinstance(rs, dict) and "random_state_keys" in arrays:
        state = np.random.RandomState()
        try:
            state.set_state((rs["kind"], arrays["random_state_keys"], rs["pos"],
                             rs["has_gauss"], rs["cached_gaussian"]))
        except (KeyError, TypeError, ValueError) as e:
            raise _Bad(f"invalid random state ({e})") from e
        est._random_state = state
    return est


__all__ = ["FORMAT_VERSION", "load_estimator", "save_estimator"]
