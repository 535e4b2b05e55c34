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

Hyperparameters are stored as JSON values; ``class_weight`` as a list of ``[label, weight]``
pairs. ``callbacks`` are code, not data: they are not saved (the loaded estimator has
``callbacks=None``), nor is a ``random_state`` given as a RandomState instance (its state is
saved as the training RNG's).

Writing is atomic: the archive goes to a temporary file in the destination folder, is flushed
to disk and then renamed over ``path`` (``os.replace``), so a crash or Ctrl-C while saving never
leaves a half-written file under the final name. ``save`` refuses (ValueError naming the path)
a ``path`` that exists and is not a regular file after following symlinks: a directory, a FIFO,
a device (``/dev/null``, or a symlink to it), a socket. Renaming over them would replace the
node itself (as root, ``save("/dev/null")`` would replace the system's /dev/null). A symlink to
a regular file is replaced by the new file.

Loading treats the file as hostile: any file raises ``ValueError("Cannot load '<path>': ...")``
naming the problem (and the field), or gives an estimator whose every attribute has been
checked (``predict`` and ``partial_fit`` then behave as for any estimator with those
hyperparameters). Loading never crashes the process, never blocks, and allocates nothing large
before the sizes the file declares have been checked against the available memory. In order:

1. ``path`` must be a regular file (a FIFO, device or directory is refused before it is
   opened; it is opened non-blocking). A missing file raises FileNotFoundError, as ``open``.
2. The zip directory: the end records (also ZIP64's) may declare at most 64 entries in at most
   64 KiB (zipfile makes an object of every entry); no duplicate names, no directories or
   paths, every member ``<name>.npy``, ``__meta__.npy`` present, no encryption, stored or
   deflated only, a stored member's sizes equal and within the file, a deflated member's
   declared size within deflate's maximum ratio.
3. Every member's ``.npy`` header, read and parsed here (never ``ast.literal_eval``): magic,
   version 1.0/2.0/3.0, at most 10000 bytes, exactly NumPy's
   ``{'descr': ..., 'fortran_order': False, 'shape': (...), }``, a plain little-endian (or
   native) bool/int/uint/float/unicode dtype (no objects: nothing is unpickled), and a
   declared member size equal to header plus data.
4. ``__meta__``: a 0-d unicode array of at most 64 MiB, valid UTF-32, JSON without repeated
   keys (nesting too deep is refused), an object. Then, table-driven (``_META``, ``_CONFIG``,
   ``_FITTED``, ``_RANDOM_STATE``, ``_HYPER``): the format name, the version (newer ones are
   refused with a message to upgrade), the class (and the expected class of
   ``LSTMRegressor.load``), no unknown or missing entries anywhere (but the configuration's
   ``huber_delta`` and ``quantiles``, absent from earlier files), every value's JSON type and
   range (JSON ``true`` is not an int; sizes ints in [1, 2**31 - 1], counters in [0, 2**53],
   losses and scores finite, ``best_loss_`` also Infinity, ``best_validation_score_`` also
   -Infinity, the learning rate finite and >= 0), and their consistency: the loss and the
   class, the input kind, features per step and the network's input size, outputs, quantile
   levels and ``_y_ndim_``, the early-stopping bookkeeping, ``feature_names_in_`` (strings, one
   per feature, for 2-D input only), ``random_state`` (MT19937, ``pos`` in [0, 624],
   ``has_gauss`` 0/1, ``cached_gaussian`` finite) and ``random_state_keys`` together. The
   hyperparameters: known names, JSON scalars (``class_weight`` pairs, ``quantiles`` a list or
   null, ``callbacks`` absent or null), then the estimator's own ``_validate_params`` and
   ``_check_integer_params``, and the network's loss fields must be those the loss
   hyperparameters give.
5. The members: exactly the required ones and those the metadata announces, nothing foreign,
   a checksum for each and no other; their dtypes and shapes (the network's float dtype for
   ``params_`` and the moments, uint32 (624,) for the keys, ``classes_`` bool, int, uint, float
   or unicode, 1-D of size ``output_size``).
6. Memory: what loading will take, from the configuration alone (the parameter count by
   ``_memory.model_param_count``, in O(1) for any number of layers; the three float arrays,
   the others as their headers declare, and the core network's own ~1.4 KiB per recurrent unit
   and ~1 byte per parameter) against ``_memory.available_memory()``; then the core's network
   is built (its own limits refused as ValueError, not MemoryError), its exact parameter count
   must not exceed the formula's (equal for LSTM, GRU and RNN; the formula bounds the LSTM
   variants), and ``params_`` and the moments must have exactly that shape (P,).
7. Only then the data: exactly the declared bytes of each member, read in chunks into one
   preallocated array (zipfile checks the CRC at the end), and its SHA-256; then the values:
   parameters and moments finite, the second moment >= 0, ``classes_`` unique, sorted, finite,
   valid bools and code points.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import re
import reprlib
import stat
import struct
import sys
import tempfile
import zipfile
import zlib
from numbers import Integral, Real
from typing import Any, Callable, NamedTuple

import numpy as np

from . import _core
from ._memory import available_memory, format_bytes

FORMAT_NAME = "lstm_native.estimator"
FORMAT_VERSION = 1


class _Bad(Exception):
    """A problem found in the file's contents (turned into ValueError naming the file)."""


# ---------------------------------------------------------------------------------------------
# the schema of __meta__
# ---------------------------------------------------------------------------------------------
class _Spec(NamedTuple):
    """What a JSON value must be: a description for messages and the test."""

    expected: str
    accepts: Callable[[Any], bool]


def _number(v: Any) -> float | None:
    """``v`` as a float when it is a JSON number (bools are not; nor ints beyond 2**63, which
    float() may not even convert), else None."""
    if type(v) is float:
        return v
    if type(v) is int and -2**63 <= v < 2**63:
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
    return _Spec("one of " + ", ".join(map(repr, options)),
                 lambda v: type(v) is str and v in options)


def _list_of(expected: str, item: _Spec) -> _Spec:
    return _Spec(expected, lambda v: type(v) is list and all(item.accepts(x) for x in v))


def _or_none(spec: _Spec) -> _Spec:
    return _Spec(spec.expected + " or null", lambda v: v is None or spec.accepts(v))


_ANY = _Spec("anything", lambda v: True)
_BOOL = _Spec("true or false", lambda v: type(v) is bool)
_STR = _Spec("a string", lambda v: type(v) is str)
_OBJECT = _Spec("an object", lambda v: type(v) is dict)
_SIZE = _int_in(1, 2**31 - 1)      # the core's sizes; beyond them nothing could fit anyway
_COUNT = _int_in(0, 2**53)         # counters (the core's step is an int64, incremented)
_FINITE = _real("a finite number", math.isfinite)
_FINITE_LIST = _list_of("a list of finite numbers", _FINITE)

# Top-level entries of __meta__; format, format_version and class are checked first, with
# their own messages (a newer version may have other entries).
_META = {"format": _ANY, "format_version": _ANY, "class": _ANY, "lstm_native_version": _STR,
         "params": _OBJECT, "config": _OBJECT, "fitted": _OBJECT, "sha256": _OBJECT,
         "feature_names_in_": _list_of("a list of strings", _STR), "classes_object": _BOOL,
         "random_state": _OBJECT}
_META_OPTIONAL = frozenset({"lstm_native_version", "feature_names_in_", "classes_object",
                            "random_state"})

# The network configuration (the core's ModelConfig plus the dtype); every entry required.
_CONFIG = {"cell": _one_of(*_core.CELLS), "input_size": _SIZE, "hidden_size": _SIZE,
           "num_layers": _SIZE, "output_size": _SIZE, "bidirectional": _BOOL,
           "return_sequences": _BOOL, "dropout": _real("a number in [0, 1)", lambda x: 0 <= x < 1),
           "loss": _one_of("mse", "softmax", "absolute_error", "huber", "quantile"),
           "huber_delta": _real("a finite number > 0", lambda x: math.isfinite(x) and x > 0),
           "quantiles": _list_of("a list of finite numbers", _FINITE),
           "dtype": _one_of("float32", "float64")}
# Entries of later versions: a file without them has the core's defaults (loss_config).
_CONFIG_OPTIONAL = frozenset({"huber_delta", "quantiles"})

# The fitted attributes that are not arrays, by their names in the file (those of the
# estimator's attributes; "_lr" is learning_rate_, "_step" the optimizer's step count).
_FITTED = {
    "n_features_in_": _SIZE, "_input_kind_": _one_of("2d", "3d", "list"),
    "_step_features_": _SIZE, "n_outputs_": _SIZE, "_y_ndim_": _int_in(1, 2),
    "t_": _COUNT, "n_iter_": _COUNT, "_step": _COUNT, "_no_improvement_count": _COUNT,
    "loss_": _FINITE, "loss_curve_": _FINITE_LIST,
    "best_loss_": _or_none(_real("a finite number or Infinity",
                                 lambda x: math.isfinite(x) or x == math.inf)),
    "validation_scores_": _or_none(_FINITE_LIST),
    "best_validation_score_": _or_none(_real("a finite number or -Infinity",
                                             lambda x: math.isfinite(x) or x == -math.inf)),
    # "invscaling" can take the rate down to 0.0 (underflow); it is never negative
    "_lr": _real("a finite number >= 0", lambda x: math.isfinite(x) and x >= 0),
    "eval_scores": _Spec("an object of lists of finite numbers",
                         lambda v: type(v) is dict and all(map(_FINITE_LIST.accepts,
                                                               v.values()))),
}
_FITTED_OPTIONAL = frozenset({"_y_ndim_", "_step", "_no_improvement_count", "loss_", "_lr",
                              "eval_scores"})

# NumPy's legacy RandomState.get_state() tuple but the keys (an array of the file).
_RANDOM_STATE = {"kind": _one_of("MT19937"), "pos": _int_in(0, 624),
                 "has_gauss": _int_in(0, 1), "cached_gaussian": _FINITE}


_WEIGHT = _real("a finite number >= 0", lambda x: math.isfinite(x) and x >= 0)


def _class_weight_ok(v: Any) -> bool:
    if v is None or v == "balanced":
        return True
    if type(v) is not list:
        return False
    labels = []
    for pair in v:
        if not (type(pair) is list and len(pair) == 2 and _WEIGHT.accepts(pair[1])
                and type(pair[0]) in (str, int, float, bool)):
            return False
        labels.append(pair[0])
    return len(set(labels)) == len(labels)


# The JSON form of a hyperparameter; the estimator's own validation then checks its value.
_HYPER_SCALAR = _Spec("a number, string, true/false or null",
                      lambda v: v is None or type(v) in (bool, int, float, str))
_HYPER = {"callbacks": _Spec("null (callbacks are not saved)", lambda v: v is None),
          "class_weight": _Spec('null, "balanced" or a list of distinct [label, weight >= 0] '
                                "pairs", _class_weight_ok),
          "quantiles": _or_none(_list_of("a list of finite numbers", _FINITE))}

_show = reprlib.Repr()  # untrusted values in messages: bounded in length and depth
_show.maxstring = _show.maxother = 60
_show.maxlong = 40


def _check_fields(obj: dict, schema: dict, what: str, whats: str,
                  optional: frozenset = frozenset()) -> None:
    """Refuses keys ``schema`` does not know, missing required ones and values it rejects."""
    unknown = sorted(k for k in obj if k not in schema)
    if unknown:
        raise _Bad(f"unknown {whats} {_show.repr(unknown)}")
    for key, spec in schema.items():
        if key not in obj:
            if key not in optional:
                raise _Bad(f"{what} {key!r} is missing")
        elif not spec.accepts(obj[key]):
            raise _Bad(f"invalid {what} {key!r}: {_show.repr(obj[key])} "
                       f"(expected {spec.expected})")


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


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _check_destination(path: str) -> None:
    """ValueError when ``path`` exists and is not a regular file (symlinks followed): the
    rename would replace a device, FIFO or socket node by the archive (see the docstring)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # missing (or unreachable: then writing fails with its own error)
        return
    if stat.S_ISREG(mode):
        return
    hint = ("; give a file name, e.g. " + repr(os.path.join(path, "model.npz"))
            if stat.S_ISDIR(mode) else "; only a regular file is replaced")
    raise ValueError(f"Cannot save to {path!r}: it is {_file_kind(mode)}{hint}")


def save_model(path: Any, class_name: str, hyperparams: dict, fitted: Any) -> None:
    """Write a fitted model (``fitted``: a :class:`~lstm_native._state.FittedModel`) of
    estimator class ``class_name`` with ``hyperparams`` (``get_params(deep=False)``) to
    ``path`` (see the module docstring)."""
    path = os.fspath(path)
    _check_destination(path)
    st = fitted.state
    arrays = {"params_": np.ascontiguousarray(st.params),
              "optimizer_m": np.ascontiguousarray(st.m),
              "optimizer_v": np.ascontiguousarray(st.v)}
    spec = fitted.input
    attrs = {"n_features_in_": spec.n_features_in, "_input_kind_": spec.input_kind,
             "_step_features_": spec.step_features, "n_outputs_": fitted.n_outputs,
             "t_": st.t, "n_iter_": st.n_iter, "loss_curve_": list(st.loss_curve),
             "best_loss_": st.best_loss, "validation_scores_": st.validation_scores,
             "best_validation_score_": st.best_validation_score, "_step": st.step,
             "_lr": st.lr, "_no_improvement_count": st.no_improvement_count}
    if st.loss_curve:
        attrs["loss_"] = st.loss_curve[-1]
    if fitted.classes is None:
        attrs["_y_ndim_"] = fitted.y_ndim
    if st.eval_scores:
        attrs["eval_scores"] = {str(k): list(v) for k, v in st.eval_scores.items()}
    meta: dict = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "class": class_name,
        "params": _hyperparameters(hyperparams),
        "config": {k: _jsonable(v) for k, v in fitted.config.items()},
        "fitted": {k: _jsonable(v) if k != "eval_scores" else
                   {n: _jsonable(s) for n, s in v.items()} for k, v in attrs.items()},
    }
    from . import __version__

    meta["lstm_native_version"] = __version__
    if spec.feature_names_in is not None:
        meta["feature_names_in_"] = [str(f) for f in spec.feature_names_in]
    if fitted.classes is not None:
        arrays["classes_"], meta["classes_object"] = _classes_array(fitted.classes)
    rs = st.rng
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
        _check_destination(path)  # again: something may have appeared there while writing
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


def save_estimator(est: Any, path: Any) -> None:
    """``est.save(path)`` (the name of earlier versions)."""
    est.save(path)


# ---------------------------------------------------------------------------------------------
# reading the archive
# ---------------------------------------------------------------------------------------------
_MAX_MEMBERS = 64              # a model has at most 6; room for later format versions
_MAX_DIRECTORY = 64 * 2**10    # bytes of zip directory (~100 bytes per member)
_MAX_META_BYTES = 64 * 2**20   # __meta__ (UTF-32): far more than any model's metadata
_MAX_NPY_HEADER = 10000        # NumPy's own limit (np.load's max_header_size)
_MAX_DEFLATE_RATIO = 1032      # deflate cannot expand data more than this
_CHUNK = 2**20                 # bytes per read of a member's data

_EOCD = struct.Struct("<4s4H2LH")          # end of central directory record
_EOCD64 = struct.Struct("<4sQ2H2L4Q")      # ZIP64 end of central directory record
_EOCD64_LOCATOR = 20
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
               struct.error, ValueError, OverflowError, NotImplementedError)

_MEMBER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\.npy")
_NPY_MAGIC = b"\x93NUMPY"
# Exactly the header NumPy writes (format._write_array_header): sorted keys, repr values,
# padded with spaces to the alignment and ended by a newline.
_NPY_HEADER = re.compile(r"\{'descr': '([^'\\]{1,32})', 'fortran_order': (True|False), "
                         r"'shape': \(((?:\d{1,20}, )*(?:\d{1,20},?)?)\), \} *\n")
_NPY_DESCR = re.compile(r"([<>|=])([biufU])(\d{1,9})")
_ITEMSIZES = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8)}
_NATIVE = ">" if sys.byteorder == "big" else "<"


class _Npy(NamedTuple):
    """A member's .npy header: the data's dtype (as stored) and shape, where it starts in the
    member and its size in bytes."""

    dtype: np.dtype
    shape: tuple
    offset: int
    nbytes: int


def _open_regular(path: str) -> Any:
    """``path`` opened for reading if it is a regular file; a FIFO, device or directory is
    refused from its stat, before opening (opening a FIFO would block)."""
    mode = os.stat(path).st_mode  # FileNotFoundError etc. as open() would raise them
    if not stat.S_ISREG(mode):
        raise _Bad(f"it is {_file_kind(mode)}, not a model file")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode  # what was opened, if the path changed in between
        if not stat.S_ISREG(mode):
            raise _Bad(f"it is {_file_kind(mode)}, not a model file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_directory(f: Any, size: int) -> None:
    """Refuses a zip directory larger than a model needs before zipfile reads it: zipfile makes
    an object of every entry, so a small file listing millions of entries costs gigabytes. The
    end records are looked for where zipfile looks (the last 22 bytes, else the last signature
    in the last 64 KiB; a ZIP64 record before it takes precedence), and all are checked."""
    tail_len = min(size, _EOCD.size + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    found = set()
    last = len(tail) - _EOCD.size
    if last >= 0 and tail[last:last + 4] == b"PK\x05\x06" and tail[-2:] == b"\0\0":
        found.add(last)
    at = tail.rfind(b"PK\x05\x06")
    if 0 <= at <= last:
        found.add(at)
    if not found:
        raise _Bad("the archive is truncated or corrupted (no zip end record)")
    for at in found:
        fields = _EOCD.unpack_from(tail, at)
        declared = [(fields[4], fields[5])]  # entries, directory size
        where = size - tail_len + at
        if where >= _EOCD64_LOCATOR + _EOCD64.size:
            f.seek(where - _EOCD64_LOCATOR)
            if f.read(4) == b"PK\x06\x07":
                f.seek(where - _EOCD64_LOCATOR - _EOCD64.size)
                record = f.read(_EOCD64.size)
                if len(record) == _EOCD64.size and record[:4] == b"PK\x06\x06":
                    fields = _EOCD64.unpack(record)
                    declared.append((fields[7], fields[8]))
        for entries, dir_size in declared:
            if entries > _MAX_MEMBERS or dir_size > _MAX_DIRECTORY:
                raise _Bad(f"its zip directory declares {entries} members in {dir_size} bytes; "
                           f"a model file has a few members in less than "
                           f"{format_bytes(_MAX_DIRECTORY)}")


def _members(zf: zipfile.ZipFile, size: int) -> dict:
    """{array name: ZipInfo} after the checks on names and declared sizes (module docstring)."""
    infos = zf.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise _Bad(f"the archive has {len(infos)} members; a model file has a few")
    counts = collections.Counter(i.filename for i in infos)
    repeated = sorted(n for n, c in counts.items() if c > 1)
    if repeated:
        raise _Bad(f"the archive holds members more than once: {_show.repr(repeated)}")
    if "__meta__.npy" not in counts:
        names = sorted(n.removesuffix(".npy") for n in counts)
        raise _Bad(f"not an lstm_native model file (arrays {_show.repr(names)}, no __meta__)")
    out = {}
    for info in infos:
        name = info.filename
        if not _MEMBER_NAME.fullmatch(name):
            raise _Bad(f"member {_show.repr(name)} is not an array of a model file")
        if info.flag_bits & 0x1:
            raise _Bad(f"member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Bad(f"member {name!r} uses compression method {info.compress_type}; a model "
                       "file's members are stored or deflated")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise _Bad(f"the archive is truncated or corrupted (member {name!r} is stored "
                       f"with {info.compress_size} bytes but declares {info.file_size})")
        if info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024:
            raise _Bad(f"member {name!r} declares {info.file_size} bytes, more than its "
                       f"{info.compress_size} compressed bytes can hold")
        if info.header_offset + 30 + len(name) + info.compress_size > size:
            raise _Bad(f"the archive is truncated or corrupted (member {name!r} extends past "
                       f"the end of the file)")
        out[name[:-4]] = info
    return out


def _npy_dtype(descr: str, name: str) -> np.dtype:
    m = _NPY_DESCR.fullmatch(descr)
    if m is None:
        raise _Bad(f"{name} has dtype {descr!r}: a model file holds bools, numbers and unicode "
                   "strings (no objects, which would be unpickled, nor bytes or records)")
    order, kind, size = m.group(1), m.group(2), int(m.group(3))
    if (kind == "U" and size < 1) or (kind != "U" and size not in _ITEMSIZES[kind]):
        raise _Bad(f"{name} has the unsupported dtype {descr!r}")
    if order not in ("<", "|", "=", _NATIVE):
        raise _Bad(f"{name} has the big-endian dtype {descr!r}")
    try:
        return np.dtype(descr)
    except (TypeError, ValueError) as e:  # e.g. strings longer than NumPy allows
        raise _Bad(f"{name} has the unsupported dtype {descr!r}") from e


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> _Npy:
    """The member's .npy header, parsed strictly (module docstring); nothing of the data read."""
    with zf.open(info) as m:
        head = m.read(8)
        if len(head) < 8 or head[:6] != _NPY_MAGIC:
            raise _Bad(f"{name} is not a .npy array")
        version = (head[6], head[7])
        if version == (1, 0):
            field = struct.Struct("<H")
        elif version in ((2, 0), (3, 0)):
            field = struct.Struct("<I")
        else:
            raise _Bad(f"{name} has the unsupported .npy format version {version}")
        raw = m.read(field.size)
        if len(raw) != field.size:
            raise _Bad(f"the archive is truncated or corrupted ({name}'s header is cut)")
        (length,) = field.unpack(raw)
        if length > _MAX_NPY_HEADER:
            raise _Bad(f"{name} has a .npy header of {length} bytes, more than "
                       f"{_MAX_NPY_HEADER}")
        text = m.read(length)
    if len(text) != length:
        raise _Bad(f"the archive is truncated or corrupted ({name}'s header is cut)")
    try:
        match = _NPY_HEADER.fullmatch(text.decode("ascii"))
    except UnicodeDecodeError:
        match = None
    if match is None:
        raise _Bad(f"{name} has a damaged .npy header {_show.repr(text)}")
    if match.group(2) == "True":
        raise _Bad(f"{name} is stored in Fortran order; a model file's arrays are C-ordered")
    dtype = _npy_dtype(match.group(1), name)
    shape = tuple(int(s) for s in re.findall(r"\d+", match.group(3)))
    offset = 8 + field.size + length
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size != offset + nbytes:
        raise _Bad(f"{name} declares {info.file_size} bytes, but its header describes "
                   f"{offset} + {nbytes} ({dtype.str} {shape})")
    return _Npy(dtype, shape, offset, nbytes)


def _read_data(zf: zipfile.ZipFile, info: zipfile.ZipInfo, npy: _Npy, name: str) -> tuple:
    """(the member's data as a writeable uint8 array, its SHA-256): exactly the declared bytes,
    read in chunks into one array (no second copy); zipfile checks the CRC on the last one."""
    try:
        out = np.empty(npy.nbytes, dtype=np.uint8)
    except MemoryError as e:  # the memory check passed, but the allocation failed anyway
        raise _Bad(f"there is not enough memory for {name} "
                   f"({format_bytes(npy.nbytes)})") from e
    view = memoryview(out)
    digest = hashlib.sha256()
    with zf.open(info) as m:
        if len(m.read(npy.offset)) != npy.offset:
            raise _Bad(f"the archive is truncated or corrupted ({name} is cut)")
        pos = 0
        while pos < npy.nbytes:
            chunk = m.read(min(_CHUNK, npy.nbytes - pos))
            if not chunk:
                raise _Bad(f"the archive is truncated or corrupted ({name} is cut)")
            view[pos:pos + len(chunk)] = chunk
            digest.update(chunk)
            pos += len(chunk)
        m.read(1)  # at the end: zipfile compares the CRC (if the data did not reach it yet)
    return out, digest.hexdigest()


def _read_meta(zf: zipfile.ZipFile, info: zipfile.ZipInfo, npy: _Npy) -> dict:
    if npy.dtype.kind != "U" or npy.shape != ():
        raise _Bad("__meta__ is not a JSON string")
    if npy.nbytes > _MAX_META_BYTES:
        raise _Bad(f"__meta__ has {format_bytes(npy.nbytes)}, more than the "
                   f"{format_bytes(_MAX_META_BYTES)} a model's metadata may have")
    data, _ = _read_data(zf, info, npy, "__meta__")
    little = npy.dtype.byteorder == "<" or (npy.dtype.byteorder == "=" and _NATIVE == "<")
    try:
        text = data.tobytes().decode("utf-32-le" if little else "utf-32-be").rstrip("\0")
    except UnicodeDecodeError as e:
        raise _Bad(f"__meta__ is not valid text ({e})") from e

    def unique_keys(pairs: list) -> dict:
        out = {}
        for key, value in pairs:
            if key in out:
                raise _Bad(f"__meta__ has the key {_show.repr(key)} twice")
            out[key] = value
        return out

    try:
        meta = json.loads(text, object_pairs_hook=unique_keys)
    except RecursionError as e:
        raise _Bad("__meta__ is nested too deeply") from e
    except ValueError as e:
        raise _Bad(f"__meta__ is not valid JSON ({_show.repr(str(e))})") from e
    if not isinstance(meta, dict):
        raise _Bad("__meta__ is not a JSON object")
    return meta


# ---------------------------------------------------------------------------------------------
# checking the metadata
# ---------------------------------------------------------------------------------------------
def _check_meta(meta: dict, expected: Any) -> Any:
    """The estimator class, after every check of the metadata alone (module docstring)."""
    from .estimators import ESTIMATORS

    if meta.get("format") != FORMAT_NAME:
        raise _Bad(f"not an lstm_native model file (format {_show.repr(meta.get('format'))})")
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise _Bad(f"invalid format version {_show.repr(version)}")
    if version > FORMAT_VERSION:
        raise _Bad(f"format version {version} was written by a newer lstm_native "
                   f"({_show.repr(meta.get('lstm_native_version', '?'))}); this version "
                   f"reads format versions up to {FORMAT_VERSION}. Upgrade lstm_native to "
                   "load it")
    name = meta.get("class")
    cls = ESTIMATORS.get(name) if type(name) is str else None
    if cls is None:
        raise _Bad(f"unknown estimator class {_show.repr(name)}")
    if expected is not None and not issubclass(cls, expected):
        raise _Bad(f"it holds an estimator of class {cls.__name__}, not {expected.__name__}")
    _check_fields(meta, _META, "metadata entry", "metadata entries", _META_OPTIONAL)
    config, fitted = meta["config"], meta["fitted"]
    _check_fields(config, _CONFIG, "network configuration entry",
                  "network configuration entries", _CONFIG_OPTIONAL)
    from ._network import loss_config

    for key, value in loss_config(config["loss"]).items():
        config.setdefault(key, value)
    _check_fields(fitted, _FITTED, "fitted attribute", "fitted attributes", _FITTED_OPTIONAL)
    if "random_state" in meta:
        _check_fields(meta["random_state"], _RANDOM_STATE, "random_state entry",
                      "random_state entries")
    for key, digest in meta["sha256"].items():
        if not (type(digest) is str and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise _Bad(f"the checksum of {_show.repr(key)} is {_show.repr(digest)}, not a "
                       "SHA-256")
    _check_consistency(cls, meta)
    return cls


def _check_consistency(cls: Any, meta: dict) -> None:
    """What the fitted attributes, the configuration and the class say of each other."""
    config, fitted = meta["config"], meta["fitted"]
    classifier = cls._loss == "softmax"
    if (config["loss"] == "softmax") != classifier:
        raise _Bad(f"the network's loss {config['loss']!r} is not that of a {cls.__name__}")
    if fitted["_step_features_"] != config["input_size"]:
        raise _Bad("features per step and the network's input size differ")
    if fitted["_input_kind_"] == "2d" and fitted["_step_features_"] != 1:
        raise _Bad("2-D input has one feature per step, the file says "
                   f"{fitted['_step_features_']}")
    if fitted["_input_kind_"] != "2d" and fitted["n_features_in_"] != fitted["_step_features_"]:
        raise _Bad("n_features_in_ and the features per step differ")
    O, y_ndim = fitted["n_outputs_"], fitted.get("_y_ndim_")
    if classifier:
        if O != 1 or config["output_size"] < 2 or y_ndim not in (None, 1):
            raise _Bad(f"a classifier has one output per sequence (or step) over at least two "
                       f"classes; the file says n_outputs_={O}, _y_ndim_={y_ndim}, "
                       f"output_size={config['output_size']}")
        fitted.setdefault("_y_ndim_", 1)
    else:
        if y_ndim is None:
            raise _Bad("fitted attribute '_y_ndim_' is missing")
        Q = len(config["quantiles"]) if config["loss"] == "quantile" else 1
        if O * Q != config["output_size"] or (y_ndim == 1 and O != 1):
            raise _Bad(f"n_outputs_={O}, _y_ndim_={y_ndim}, {Q} quantile level(s) and the "
                       f"network's output_size={config['output_size']} disagree")
    validating = fitted["validation_scores_"] is not None
    if validating != (fitted["best_validation_score_"] is not None) or (
            validating == (fitted["best_loss_"] is not None)):
        raise _Bad("the convergence bookkeeping is inconsistent: validation_scores_ and "
                   "best_validation_score_ are set with validation, best_loss_ without")
    names = meta.get("feature_names_in_")
    if names is not None and (len(names) != fitted["n_features_in_"]
                              or fitted["_input_kind_"] != "2d"):
        raise _Bad(f"feature_names_in_ has {len(names)} names, for 2-D input of "
                   f"{fitted['n_features_in_']} features (the file: "
                   f"{fitted['_input_kind_']!r} input)")
    if "classes_object" in meta and not classifier:
        raise _Bad("classes_object in the file of a regressor")


def _check_members(meta: dict, members: dict, cls: Any) -> None:
    """Exactly the arrays the metadata announces, each with a checksum."""
    arrays = set(members) - {"__meta__"}
    for name in ("params_", "optimizer_m", "optimizer_v"):
        if name not in arrays:
            raise _Bad(f"array {name!r} is missing")
    classifier = cls._loss == "softmax"
    if classifier != ("classes_" in arrays):
        raise _Bad("a classifier without classes_" if classifier else "a regressor with classes_")
    if ("random_state" in meta) != ("random_state_keys" in arrays):
        raise _Bad("random_state and the array random_state_keys come together")
    foreign = sorted(arrays - {"params_", "optimizer_m", "optimizer_v", "classes_",
                               "random_state_keys"})
    if foreign:
        raise _Bad(f"unexpected arrays {_show.repr(foreign)}")
    for name in sorted(arrays):
        if name not in meta["sha256"]:
            raise _Bad(f"array {name!r} has no checksum")
    extra = sorted(set(meta["sha256"]) - arrays)
    if extra:
        raise _Bad(f"checksums for arrays that are not in the file: {_show.repr(extra)}")


def _hyperparameters_of(cls: Any, params: dict) -> dict:
    """The saved hyperparameters, checked by their JSON form and then by the estimator's own
    validation, as constructor arguments."""
    from sklearn.utils._param_validation import InvalidParameterError

    schema = {name: _HYPER.get(name, _HYPER_SCALAR) for name in cls().get_params(deep=False)}
    _check_fields(params, schema, "hyperparameter", "hyperparameters", frozenset(schema))
    params = dict(params)
    if isinstance(params.get("class_weight"), list):
        params["class_weight"] = {label: weight for label, weight in params["class_weight"]}
    try:
        est = cls(**params)
        est._validate_params()
        est._check_integer_params()
    except (InvalidParameterError, ValueError, TypeError) as e:
        raise _Bad(f"invalid hyperparameters ({e})") from e
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
        if npy.dtype.kind not in "biufU" or (meta.get("classes_object")
                                            and npy.dtype.kind != "U"):
            raise _Bad(f"classes_ has the dtype {npy.dtype.str}")
        if npy.shape != (config["output_size"],):
            raise _Bad(f"classes_ has shape {npy.shape}, the network has "
                       f"{config['output_size']} outputs")
        need += npy.nbytes
    if "random_state_keys" in headers:
        npy = headers["random_state_keys"]
        if npy.dtype.kind != "u" or npy.dtype.itemsize != 4 or npy.shape != (624,):
            raise _Bad(f"random_state_keys has dtype {npy.dtype.str} and shape {npy.shape}, "
                       "not uint32 (624,)")
        need += npy.nbytes
    P = _param_count(config)
    units = config["num_layers"] * (2 if config["bidirectional"] else 1)
    # the arrays, and what the core's network takes when it is built: about 1.4 KiB per
    # recurrent unit and P bytes (measured; counted here with a margin of 1.5 to 2)
    return need + 3 * P * np.dtype(config["dtype"]).itemsize + 2 * P + 2048 * units


def _param_count(config: dict) -> int:
    """The core's exact parameter count (computed without building the network, in O(1) for
    any number of layers); _Bad for a configuration the core refuses."""
    from ._network import core_config

    try:
        return int(core_config(config).num_params)
    except (ValueError, TypeError, OverflowError, MemoryError) as e:
        raise _Bad(f"invalid network configuration {_show.repr(config)} ({e})") from e


def _build_network(config: dict) -> Any:
    from ._network import Network

    try:
        return Network(config)
    except (ValueError, TypeError, OverflowError, MemoryError) as e:
        # the core refuses sizes beyond its limits with MemoryError: a property of the file
        raise _Bad(f"invalid network configuration {_show.repr(config)} ({e})") from e


def _as_array(data: np.ndarray, npy: _Npy) -> np.ndarray:
    """The member's bytes as its array, native byte order, writeable, C-contiguous."""
    arr = data.view(npy.dtype).reshape(npy.shape)
    return arr if npy.dtype.isnative else arr.astype(npy.dtype.newbyteorder("="))


def _check_classes(classes: np.ndarray, raw: np.ndarray) -> None:
    """Labels as fit makes them (unique_labels): valid values, unique and sorted."""
    kind = classes.dtype.kind
    if kind == "b" and raw.max(initial=0) > 1:
        raise _Bad("classes_ holds bytes that are not booleans")
    if kind == "f" and not np.all(np.isfinite(classes)):
        raise _Bad("classes_ contains NaN or infinity")
    if kind == "U":  # code points (native order after _as_array)
        cp = np.ascontiguousarray(classes).view(np.uint32)
        if np.any((cp >= 0x110000) | ((cp >= 0xD800) & (cp < 0xE000))):
            raise _Bad("classes_ holds invalid characters")
    if not np.all(classes[1:] > classes[:-1]):
        raise _Bad("classes_ is not sorted and unique")


def load_model(path: Any, expected: Any = None) -> Any:
    """Read an estimator written by :func:`save_model`. ``expected``: a class the loaded
    estimator must be an instance of. ValueError naming the file for any problem with it (see
    the module docstring)."""
    path = os.fspath(path)
    try:
        with _open_regular(path) as f:
            return _load(f, os.fstat(f.fileno()).st_size, expected)
    except _Bad as e:
        raise ValueError(f"Cannot load {path!r}: {e}") from e.__cause__


def load_estimator(path: Any, expected: Any = None) -> Any:
    """:func:`load_model` (the name of earlier versions)."""
    return load_model(path, expected)


def _load(f: Any, size: int, expected: Any) -> Any:
    head = f.read(8)
    if not head:
        raise _Bad("the file is empty")
    if head.startswith(_NPY_MAGIC):
        raise _Bad("a single NumPy array, not an lstm_native model archive")
    if not head.startswith(b"PK"):
        raise _Bad(f"not a NumPy .npz archive (it starts with {head!r})")
    try:
        _check_directory(f, size)
        with zipfile.ZipFile(f) as zf:
            members = _members(zf, size)
            headers = {name: _npy_header(zf, info, name) for name, info in members.items()}
            meta = _read_meta(zf, members["__meta__"], headers["__meta__"])
            cls = _check_meta(meta, expected)
            _check_members(meta, members, cls)
            hyper = _hyperparameters_of(cls, meta["params"])
            config = meta["config"]
            loss = cls(**hyper)._loss_config()
            if {k: config[k] for k in loss} != loss:
                raise _Bad(f"the network's loss {_show.repr({k: config[k] for k in loss})} is "
                           f"not the one of the hyperparameters ({_show.repr(loss)})")
            need = _memory_needed(headers, config, meta)
            avail = available_memory()
            if avail is not None and need > avail:
                raise _Bad(f"its arrays need {format_bytes(need)} of memory, but only "
                           f"{format_bytes(avail)} is available")
            P, bound = _build_network(config).num_params, _param_count(config)
            if P > bound:
                raise _Bad(f"the core counts {P} parameters for {_show.repr(config)}, more "
                           f"than the {bound} of the format's formula")
            dtype = np.dtype(config["dtype"])
            for name in ("params_", "optimizer_m", "optimizer_v"):
                npy = headers[name]
                if npy.dtype.newbyteorder("=") != dtype or npy.shape != (P,):
                    raise _Bad(f"{name} has dtype {npy.dtype.newbyteorder('=')} and shape "
                               f"{npy.shape}; the network needs {dtype} ({P},)")
            arrays, raw = {}, {}
            for name in sorted(set(members) - {"__meta__"}):
                raw[name], digest = _read_data(zf, members[name], headers[name], name)
                if digest != meta["sha256"][name]:
                    raise _Bad(f"array {name!r} does not match its checksum (the file is "
                               "corrupted)")
                arrays[name] = _as_array(raw[name], headers[name])
    except _Bad:
        raise
    except _ZIP_ERRORS as e:
        raise _Bad(f"the archive is truncated or corrupted ({type(e).__name__}: "
                   f"{_show.repr(str(e))})") from e
    return _assemble(cls, hyper, meta, arrays, raw)


def _assemble(cls: Any, hyper: dict, meta: dict, arrays: dict, raw: dict) -> Any:
    from ._state import FittedModel, InputSpec, TrainState

    if not np.all(np.isfinite(arrays["params_"])):
        raise _Bad("params_ contains NaN or infinity")
    if not (np.all(np.isfinite(arrays["optimizer_m"]))
            and np.all(np.isfinite(arrays["optimizer_v"]))):
        raise _Bad("the optimizer's moments contain NaN or infinity")
    if np.any(arrays["optimizer_v"] < 0):
        raise _Bad("optimizer_v (a mean of squares) has negative values")
    classes = arrays.get("classes_")
    if classes is not None:
        _check_classes(classes, raw["classes_"])
        if meta.get("classes_object"):
            classes = classes.astype(object)
    fitted, config = meta["fitted"], meta["config"]
    rs = meta.get("random_state")
    if rs is not None:
        rng = np.random.RandomState()
        try:
            rng.set_state((rs["kind"], arrays["random_state_keys"], rs["pos"], rs["has_gauss"],
                           rs["cached_gaussian"]))
        except (TypeError, ValueError) as e:
            raise _Bad(f"invalid random state ({e})") from e
    else:  # not saved: seeded as a new fit would be
        seed = hyper.get("random_state")
        rng = np.random.RandomState(seed if type(seed) is int else None)

    def floats(values: list | None) -> list | None:
        return None if values is None else [float(v) for v in values]

    def number(value: Any) -> float | None:
        return None if value is None else float(value)

    state = TrainState(
        params=arrays["params_"], m=arrays["optimizer_m"], v=arrays["optimizer_v"],
        lr=float(fitted.get("_lr", cls(**hyper).learning_rate_init)), rng=rng,
        step=fitted.get("_step", 0), t=fitted["t_"], n_iter=fitted["n_iter_"],
        loss_curve=floats(fitted["loss_curve_"]),
        validation_scores=floats(fitted["validation_scores_"]),
        best_loss=number(fitted["best_loss_"]),
        best_validation_score=number(fitted["best_validation_score_"]),
        no_improvement_count=fitted.get("_no_improvement_count", 0),
        eval_scores={k: floats(v) for k, v in fitted.get("eval_scores", {}).items()})
    names = meta.get("feature_names_in_")
    spec = InputSpec(n_features_in=fitted["n_features_in_"], input_kind=fitted["_input_kind_"],
                     step_features=fitted["_step_features_"],
                     feature_names_in=None if names is None else np.asarray(names, dtype=object))
    model = FittedModel(config=dict(config), state=state, input=spec,
                        n_outputs=fitted["n_outputs_"], y_ndim=fitted["_y_ndim_"],
                        classes=classes)
    try:
        return cls._from_saved(hyper, model)
    except (ValueError, TypeError, OverflowError, MemoryError) as e:
        raise _Bad(f"the estimator cannot be made from it ({e})") from e


__all__ = ["FORMAT_VERSION", "load_estimator", "load_model", "save_estimator", "save_model"]
