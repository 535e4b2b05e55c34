"""est.save(path) / lstm_native.load(path): a portable .npz (no pickle), written atomically;
damaged, foreign, crafted or newer files are refused with a ValueError naming the file (see
also test_load_attacks.py); save refuses to replace anything but a regular file. Files of
format version 1 (tests/data/v1-*.npz) still load, with every check of that version."""

import dataclasses
import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import lstm_native
from lstm_native import LSTMClassifier, LSTMRegressor, _npz, _persist, _persist_schema
from lstm_native._state import STATE_SCHEMA, TrainState

DATA = os.path.join(os.path.dirname(__file__), "data")


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _data(n=40, T=6, D=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, D))
    return X, X[:, :, 0].mean(axis=1) + 0.3 * X[:, -1, 1]


def _ragged(n=30, D=2, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(1, 9)), D)) for _ in range(n)]


CASES = {
    "regressor": lambda: (LSTMRegressor(hidden_size=5, max_iter=3, random_state=0), *_data()),
    "float64-gru-2-layers": lambda: (
        LSTMRegressor(
            cell="gru",
            hidden_size=4,
            num_layers=2,
            dropout=0.2,
            dtype="float64",
            max_iter=2,
            random_state=1,
        ),
        *_data(),
    ),
    "multi-output-bidirectional": lambda: (
        LSTMRegressor(hidden_size=4, bidirectional=True, max_iter=2, random_state=2),
        _data()[0],
        np.stack([_data()[1], -_data()[1]], axis=1),
    ),
    "sequences-ragged": lambda: (
        LSTMRegressor(hidden_size=4, return_sequences=True, max_iter=2, random_state=3),
        _ragged(),
        [s[:, 0] * 2 for s in _ragged()],
    ),
    "univariate-2d": lambda: (
        LSTMRegressor(hidden_size=4, max_iter=2, random_state=4),
        _data()[0][:, :, 0],
        _data()[1],
    ),
    "classifier-strings": lambda: (
        LSTMClassifier(hidden_size=5, max_iter=3, random_state=5),
        _data()[0],
        np.array(["down", "up", "flat"], dtype=object)[np.arange(40) % 3],
    ),
    "classifier-ints-early-stopping": lambda: (
        LSTMClassifier(
            cell="rnn_relu",
            hidden_size=5,
            max_iter=4,
            early_stopping=True,
            validation_fraction=0.25,
            random_state=6,
        ),
        _data()[0],
        (_data()[1] > 0).astype(np.int64) * 7,
    ),
    "classifier-per-step": lambda: (
        LSTMClassifier(hidden_size=4, return_sequences=True, max_iter=2, random_state=7),
        _data()[0],
        (_data()[0][:, :, 0] > 0).astype(int),
    ),
    # a cell whose parameter count the format's formula only bounds (see _persist)
    "peephole-2-layers-bidirectional": lambda: (
        LSTMRegressor(
            cell="lstm_peephole",
            hidden_size=3,
            num_layers=2,
            bidirectional=True,
            max_iter=2,
            random_state=8,
        ),
        *_data(),
    ),
    "classifier-class-weight": lambda: (
        LSTMClassifier(
            hidden_size=4,
            max_iter=2,
            random_state=9,
            class_weight={"down": 2.0, "up": 0.5, "flat": 1.0},
        ),
        _data()[0],
        np.array(["down", "up", "flat"])[np.arange(40) % 3],
    ),
}


def _outputs(est, X):
    if isinstance(est, LSTMClassifier):
        return est.predict(X), est.predict_proba(X)
    return (est.predict(X),)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_round_trip_gives_identical_predictions(case, tmp_path):
    est, X, y = CASES[case]()
    _fit(est, X, y)
    path = tmp_path / "model.npz"
    est.save(path)
    for loaded in (lstm_native.load(path), type(est).load(str(path))):
        assert type(loaded) is type(est)
        assert loaded.get_params() == est.get_params()
        for a, b in zip(_outputs(loaded, X), _outputs(est, X)):
            if isinstance(a, list):
                for ai, bi in zip(a, b):
                    np.testing.assert_array_equal(ai, bi)
            else:
                np.testing.assert_array_equal(a, b)
                assert a.dtype == b.dtype
        for attr in (
            "n_features_in_",
            "n_outputs_",
            "n_iter_",
            "t_",
            "loss_curve_",
            "best_loss_",
            "validation_scores_",
            "best_validation_score_",
        ):
            assert getattr(loaded, attr) == getattr(est, attr), attr
        np.testing.assert_array_equal(loaded.params_, est.params_)
        assert loaded.params_.flags.writeable and loaded.params_.flags.c_contiguous
    # the file is plain NumPy: readable without pickle, by anyone
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["__meta__"]))
        assert meta["format_version"] == _persist.FORMAT_VERSION
        assert meta["class"] == type(est).__name__
        assert meta["state"] == est._fitted.state.scalars()  # the state section: exactly that
        for name in TrainState.ARRAYS:
            np.testing.assert_array_equal(f[name], getattr(est._fitted.state, name))
        assert f["params"].shape == est.params_.shape


def test_loaded_estimator_continues_training_exactly(tmp_path):
    X, y = _data()
    est = LSTMRegressor(hidden_size=5, random_state=0, solver="adam")
    for _ in range(2):
        est.partial_fit(X, y)
    est.save(tmp_path / "m.npz")
    loaded = LSTMRegressor.load(tmp_path / "m.npz")
    for _ in range(2):  # same optimizer moments, step count and shuffling stream
        est.partial_fit(X, y)
        loaded.partial_fit(X, y)
    np.testing.assert_array_equal(loaded.params_, est.params_)
    assert loaded.loss_curve_ == est.loss_curve_


def test_feature_names_and_refit_after_load(tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = _data()
    df = pd.DataFrame(X[:, :, 0], columns=[f"t{i}" for i in range(6)])
    est = _fit(LSTMRegressor(hidden_size=4, max_iter=2, random_state=0), df, y)
    est.save(tmp_path / "m.npz")
    loaded = lstm_native.load(tmp_path / "m.npz")
    assert list(loaded.feature_names_in_) == list(df.columns)
    np.testing.assert_array_equal(loaded.predict(df), est.predict(df))


def test_save_is_atomic(tmp_path, monkeypatch):
    X, y = _data()
    est = _fit(LSTMRegressor(hidden_size=4, max_iter=2, random_state=0), X, y)
    path = tmp_path / "model.npz"
    est.save(path)
    good = path.read_bytes()
    other = _fit(LSTMRegressor(hidden_size=6, max_iter=2, random_state=1), X, y)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. Ctrl-C while writing

    monkeypatch.setattr(_npz.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary file left
    other.save(path)
    assert lstm_native.load(path).get_params()["hidden_size"] == 6
    assert oct(os.stat(path).st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


def test_unfitted_and_unsavable_estimators():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LSTMRegressor().save("never.npz")
    X, y = _data()
    clf = _fit(LSTMClassifier(hidden_size=3, max_iter=1, random_state=0), X, y > 0)
    # classes_ is read-only: the labels are swapped in the estimator's one fitted model
    clf._fitted = dataclasses.replace(clf._fitted, classes=np.array([1, ("a", 2)], dtype=object))
    with pytest.raises(ValueError, match="without pickle"):
        clf.save("never.npz")
    assert not os.path.exists("never.npz")


# ------------------------------------------------------------------------------------------
# damaged, foreign and future files
# ------------------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    X, y = _data()
    est = _fit(LSTMClassifier(hidden_size=4, max_iter=2, random_state=0), X, y > 0)
    path = tmp_path / "model.npz"
    est.save(path)
    return path


@pytest.fixture
def saved_v1(tmp_path):
    """What `saved` wrote in format version 1 (the same estimator, saved by lstm_native 0.1.0
    before version 2; see test_version_1_files_load_as_before)."""
    path = tmp_path / "model-v1.npz"
    shutil.copyfile(os.path.join(DATA, "v1-classifier.npz"), path)
    return path


@pytest.fixture(params=["v2", "v1"])
def saved_any(request, saved, saved_v1):
    """`saved` in the current format and in format version 1: for the checks both have."""
    return saved if request.param == "v2" else saved_v1


def _rewrite(path, out, change_meta=None, change_arrays=None, keep_checksums=False):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    if change_meta:
        change_meta(meta)
    if change_arrays:
        change_arrays(arrays)
        if keep_checksums:
            meta["sha256"] = {k: _npz.sha256(v) for k, v in arrays.items()}
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(out, **arrays)
    return out


def _expect_refused(path, match):
    with pytest.raises(ValueError, match=match) as info:
        lstm_native.load(path)
    assert str(path) in str(info.value)


def test_truncated_files_are_refused(saved, tmp_path):
    data = saved.read_bytes()
    for n in (0, 10, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        bad = tmp_path / f"cut{n}.npz"
        bad.write_bytes(data[:n])
        _expect_refused(bad, "empty|truncated or corrupted")


def test_corrupted_files_are_refused(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo("params.npy")
    start = info.header_offset + 30 + len(info.filename) + 128  # inside the array data
    for offset in (start, start + 17, start + info.file_size // 2):
        bad_data = bytearray(data)
        bad_data[offset] ^= 0x40
        bad = tmp_path / f"flip{offset}.npz"
        bad.write_bytes(bytes(bad_data))
        _expect_refused(bad, "corrupted")
    # consistent zip, but the values were changed: the checksum catches it
    bad = _rewrite(
        saved,
        tmp_path / "edited.npz",
        change_arrays=lambda a: a.__setitem__("params", a["params"] * 2),
    )
    _expect_refused(bad, "params.* does not match its checksum")


def test_foreign_files_are_refused(tmp_path):
    def npy(path, array):
        with open(path, "wb") as f:
            np.save(f, array, allow_pickle=True)

    def plain_zip(path):
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("a.txt", "x")

    cases = {
        "text.npz": lambda p: p.write_text("hello"),
        "npy.npz": lambda p: npy(p, np.zeros(3)),
        "other.npz": lambda p: np.savez(p, weights=np.zeros(3)),
        "pickle.npz": lambda p: npy(p, np.array([{}], dtype=object)),
        "pickle-in-npz.npz": lambda p: np.savez(p, __meta__=np.array([{}], dtype=object)),
        "zip.npz": lambda p: plain_zip(p),
    }
    for name, make in cases.items():
        path = tmp_path / name
        make(path)
        _expect_refused(path, "not|Cannot load")
    with pytest.raises(FileNotFoundError):
        lstm_native.load(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda m: m.update(format_version=_persist.FORMAT_VERSION + 1),
            f"format version {_persist.FORMAT_VERSION + 1} was written by a newer lstm_native",
        ),
        (lambda m: m.update(format_version="1"), "invalid format version"),
        (lambda m: m.update(format="keras"), "not an lstm_native model file"),
        (lambda m: m.update({"class": "Pipeline"}), "unknown estimator class"),
        (lambda m: m["params"].update(hidden_size=-1), "invalid hyperparameters"),
        (lambda m: m["params"].update(colour="red"), "unknown hyperparameters"),
        (lambda m: m["config"].update(hidden_size=5), "params_? has dtype .* needs"),
        (lambda m: m["config"].update(hidden_size="4"), "configuration entry 'hidden_size'"),
        (lambda m: m["config"].update(cell="transformer"), "invalid network configuration"),
        (lambda m: m["config"].update(dtype="float16"), "unsupported dtype|configuration"),
        (lambda m: m["fitted"].update(n_features_in_=0), "n_features_in_"),
        (lambda m: m["fitted"].update(_input_kind_="4d"), "_input_kind_"),
        (lambda m: m["fitted"].update(secret=1), "unknown fitted attributes"),
        (lambda m: m.pop("config"), "'config' is missing"),
        (lambda m: m["sha256"].pop("classes_"), "classes_.* has no checksum"),
    ],
)
def test_inconsistent_metadata_is_refused(saved_any, tmp_path, edit, match):
    _expect_refused(_rewrite(saved_any, tmp_path / "bad.npz", change_meta=edit), match)


# the member names of TrainState's arrays in each format version
_ARRAY_NAMES = {
    "v2": {"params": "params", "m": "m", "v": "v"},
    "v1": {"params": "params_", "m": "optimizer_m", "v": "optimizer_v"},
}


@pytest.mark.parametrize("version", list(_ARRAY_NAMES))
def test_inconsistent_arrays_are_refused(saved, saved_v1, tmp_path, version):
    path = saved if version == "v2" else saved_v1
    params, m = _ARRAY_NAMES[version]["params"], _ARRAY_NAMES[version]["m"]
    for change, match in [
        (lambda a: a.pop(m), f"'{m}' is missing"),
        (lambda a: a.__setitem__(params, a[params][:-1]), f"{params} has dtype"),
        (
            lambda a: a.__setitem__(params, a[params].astype(np.float64)),
            f"{params} has dtype float64",
        ),
        (lambda a: a.__setitem__(params, np.full_like(a[params], np.nan)), "NaN"),
        (lambda a: a.__setitem__("classes_", np.arange(5)), "classes_ has shape"),
        (lambda a: a.pop("classes_"), "classifier without classes_"),
    ]:
        bad = _rewrite(path, tmp_path / "bad.npz", change_arrays=change, keep_checksums=True)
        _expect_refused(bad, match)
    with pytest.raises(
        ValueError, match="holds an estimator of class LSTMClassifier, not LSTMRegressor"
    ):
        LSTMRegressor.load(path)


def test_eval_scores_round_trip(tmp_path):
    X, y = _data()
    est = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, eval_set=[(X[:10], y[:10]), (X[10:], y[10:])])
    est.save(tmp_path / "m.npz")
    loaded = lstm_native.load(tmp_path / "m.npz")
    assert loaded.evals_result_ == est.evals_result_
    assert loaded.learning_rate_ == est.learning_rate_


# ------------------------------------------------------------------------------------------
# format version 1, and what a file holds of the training state
# ------------------------------------------------------------------------------------------
# Saved by lstm_native 0.1.0 before format version 2 (commit fd5abc0), with their inputs and
# what the estimators gave in tests/data/v1-expected.npz:
#   v1-regressor: LSTMRegressor(hidden_size=4, max_iter=3, random_state=0,
#       learning_rate="invscaling", learning_rate_init=0.01), two outputs, one eval_set;
#   v1-classifier-strings: LSTMClassifier(cell="gru", hidden_size=4, max_iter=3,
#       random_state=5, early_stopping=True, validation_fraction=0.25), object string labels;
#   v1-classifier: what the `saved` fixture fits (boolean labels).
# For those without early stopping, "after_partial_fit" is one more partial_fit on the same data.
V1_FILES = ["v1-regressor", "v1-classifier-strings", "v1-classifier"]
_V1_ATTRS = (
    "n_features_in_",
    "n_outputs_",
    "n_iter_",
    "t_",
    "loss_",
    "loss_curve_",
    "best_loss_",
    "validation_scores_",
    "best_validation_score_",
    "learning_rate_",
    "evals_result_",
)


def _as_saved(a):
    a = np.asarray(a)
    return a.astype(str) if a.dtype == object else a


@pytest.mark.parametrize("name", V1_FILES)
def test_version_1_files_load_as_before(name, tmp_path):
    with np.load(os.path.join(DATA, "v1-expected.npz"), allow_pickle=False) as f:
        expected = {k.split(".", 1)[1]: f[k] for k in f.files if k.startswith(name + ".")}
    attrs = json.loads(str(expected["attrs"]))
    path = os.path.join(DATA, name + ".npz")
    with np.load(path, allow_pickle=False) as f:
        assert json.loads(str(f["__meta__"]))["format_version"] == 1
    cls = LSTMClassifier if "classifier" in name else LSTMRegressor
    X, y = expected["X"], expected["y"]
    resaved = tmp_path / "v2.npz"
    for est in (lstm_native.load(path), cls.load(path), "resaved"):
        if est == "resaved":  # written again: format version 2, the same estimator
            lstm_native.load(path).save(resaved)
            with np.load(resaved, allow_pickle=False) as f:
                assert json.loads(str(f["__meta__"]))["format_version"] == 2
            est = lstm_native.load(resaved)
        assert type(est) is cls
        # the parameters as saved, and those added since (the regressor's loss, quantiles,
        # huber_delta) at their defaults
        added = {
            k: v
            for k, v in cls().get_params().items()
            if k not in attrs["params"] and k != "callbacks"
        }
        assert {k: v for k, v in est.get_params().items() if k != "callbacks"} == {
            **attrs["params"],
            **added,
        }
        np.testing.assert_array_equal(_as_saved(est.predict(X)), expected["predict"])
        if cls is LSTMClassifier:
            np.testing.assert_array_equal(est.predict_proba(X), expected["predict_proba"])
            assert [
                c if isinstance(c, (bool, np.bool_)) else str(c) for c in est.classes_.tolist()
            ] == attrs["classes_"]
        for attr in _V1_ATTRS:
            assert getattr(est, attr) == attrs[attr], attr
        if "params_after_partial_fit" in expected:  # moments, step, rate and RNG restored
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.partial_fit(X, y)
            np.testing.assert_array_equal(est.params_, expected["params_after_partial_fit"])
            np.testing.assert_array_equal(
                _as_saved(est.predict(X)), expected["predict_after_partial_fit"]
            )


def test_version_1_optional_entries_take_their_defaults(saved_v1, tmp_path):
    # early version-1 files lack the optimizer's step and rate, the bookkeeping and eval sets
    def strip(m):
        for key in ("_lr", "_step", "_no_improvement_count", "loss_", "eval_scores"):
            m["fitted"].pop(key, None)
        m["params"]["learning_rate_init"] = 0.25

    est = lstm_native.load(_rewrite(saved_v1, tmp_path / "old.npz", change_meta=strip))
    state = est._fitted.state
    assert (state.lr, state.step, state.no_improvement_count, state.eval_scores) == (0.25, 0, 0, {})
    assert est.loss_ == est.loss_curve_[-1]


def test_every_field_of_the_training_state_has_its_place_in_a_file():
    """A field added to TrainState must be saved (ARRAYS, or SCALARS with its schema in
    STATE_SCHEMA) or be rng or best_params; version 1 must name it or give it a default."""
    names = {f.name for f in dataclasses.fields(TrainState)}
    assert TrainState.SCALARS == tuple(STATE_SCHEMA)
    assert names == set(TrainState.ARRAYS) | set(TrainState.SCALARS) | {"rng", "best_params"}
    for name, schema in STATE_SCHEMA.items():
        assert schema.kind in ("int", "float", "floats", "floats by name"), name
        if schema.kind == "int":
            assert math.isfinite(schema.low) and math.isfinite(schema.high), name
    v1 = set(_persist_schema._V1_NAMES.values())
    assert v1 == set(TrainState.ARRAYS) | set(TrainState.SCALARS)
    assert set(_persist_schema._V1_DEFAULTS) <= set(TrainState.SCALARS)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_state_section_is_the_training_state(early_stopping, tmp_path):
    X, y = _data()
    est = _fit(
        LSTMClassifier(hidden_size=3, max_iter=3, random_state=0, early_stopping=early_stopping),
        X,
        y > 0,
    )
    est.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        meta = json.loads(str(f["__meta__"]))
        assert meta["state"] == est._fitted.state.scalars()
        assert set(f.files) == {*TrainState.ARRAYS, "classes_", "random_state_keys", "__meta__"}
    loaded = lstm_native.load(tmp_path / "m.npz")._fitted.state
    assert loaded.scalars() == est._fitted.state.scalars()
    for name in TrainState.ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(est._fitted.state, name))


def test_persistence_modules_import_no_estimator():
    """No import cycle: the file format and the archive layer (function-level imports too)
    import neither the estimators nor the package itself; the archive knows no model."""
    import ast

    def imports(module):
        with open(module.__file__) as f:
            tree = ast.parse(f.read())
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                out |= {node.module} if node.module else {a.name for a in node.names}
        return out

    assert imports(_npz) <= {"_memory"}
    assert not imports(_persist) & {"estimators", "__init__", "__version__"}


# ------------------------------------------------------------------------------------------
# hostile files: every field is checked before it is used
# ------------------------------------------------------------------------------------------
_USE_AFTER_LOAD = """
import sys, warnings
import numpy as np
import lstm_native

warnings.simplefilter("ignore")
try:
    est = lstm_native.load(sys.argv[1])
except ValueError as e:
    print("refused:", e)
    sys.exit(0)
X = np.random.default_rng(0).standard_normal((40, 6, 3))
est.partial_fit(X, X[:, 0, 0] > 0)  # draws from the restored random state
print("trained")
"""


def test_random_state_out_of_range_is_refused(saved_any, tmp_path):
    # checksums consistent (the arrays are unchanged): only the field check can refuse it
    bad = _rewrite(
        saved_any, tmp_path / "pos.npz", change_meta=lambda m: m["random_state"].update(pos=10**9)
    )
    _expect_refused(bad, r"random_state entry 'pos': 1000000000 \(expected an int in \[0, 624\]")
    # It used to load, and partial_fit then read out of NumPy's Mersenne Twister state (a
    # segfault): in a subprocess, so that a crash fails this test instead of killing pytest.
    proc = subprocess.run(
        [sys.executable, "-c", _USE_AFTER_LOAD, str(bad)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.startswith("refused:"), proc.stdout


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m["random_state"].update(pos=-1), "random_state entry 'pos'"),
        (lambda m: m["random_state"].update(pos=625), "random_state entry 'pos'"),
        (lambda m: m["random_state"].update(pos=True), "random_state entry 'pos'"),
        (lambda m: m["random_state"].update(pos=3.0), "random_state entry 'pos'"),
        (lambda m: m["random_state"].update(has_gauss=2), "random_state entry 'has_gauss'"),
        (lambda m: m["random_state"].update(has_gauss=True), "random_state entry 'has_gauss'"),
        (lambda m: m["random_state"].update(cached_gaussian=math.nan), "'cached_gaussian'"),
        (lambda m: m["random_state"].update(cached_gaussian="0"), "'cached_gaussian'"),
        (lambda m: m["random_state"].update(kind="PCG64"), "random_state entry 'kind'"),
        (lambda m: m["random_state"].pop("pos"), "random_state entry 'pos' is missing"),
        (lambda m: m["random_state"].update(seed=1), "unknown random_state entries"),
        (lambda m: m.update(random_state=[1, 2]), "metadata entry 'random_state'"),
        (lambda m: m.pop("random_state"), "random_state and the array random_state_keys"),
    ],
)
def test_invalid_random_state_is_refused(saved_any, tmp_path, edit, match):
    _expect_refused(_rewrite(saved_any, tmp_path / "bad.npz", change_meta=edit), match)


# fitted attributes: types (JSON true is not an int), ranges, consistency
_FITTED_EDITS = [
    (lambda f: f.update(n_features_in_=True), "fitted attribute 'n_features_in_'"),
    (lambda f: f.update(n_features_in_=10**30), "fitted attribute 'n_features_in_'"),
    (lambda f: f.update(n_outputs_=1.0), "fitted attribute 'n_outputs_'"),
    (lambda f: f.update(n_outputs_=2), "a classifier has one output"),
    (lambda f: f.update(_y_ndim_=3), "fitted attribute '_y_ndim_'"),
    (lambda f: f.update(_y_ndim_=2), "a classifier has one output"),
    (lambda f: f.update(_input_kind_="2d"), "2-D input has one feature per step"),
    (lambda f: f.update(_step_features_=4), "features per step and the network's input"),
]
# the training state among them, as format version 1 holds it
_V1_STATE_EDITS = [
    (lambda f: f.update(t_=-1), "fitted attribute 't_'"),
    (lambda f: f.update(n_iter_=None), "fitted attribute 'n_iter_'"),
    (lambda f: f.update(_step=10**30), "fitted attribute '_step'"),
    (lambda f: f.update(_no_improvement_count=False), "'_no_improvement_count'"),
    (lambda f: f.update(_lr=math.nan), "fitted attribute '_lr'"),
    (lambda f: f.update(_lr=-1e-3), "fitted attribute '_lr'"),
    (lambda f: f.update(_lr="0.001"), "fitted attribute '_lr'"),
    (lambda f: f.update(loss_=math.inf), "fitted attribute 'loss_'"),
    (lambda f: f.update(loss_curve_=[0.5, math.nan]), "fitted attribute 'loss_curve_'"),
    (lambda f: f.update(loss_curve_=[[0.5]]), "fitted attribute 'loss_curve_'"),
    (lambda f: f.update(loss_curve_="0.5"), "fitted attribute 'loss_curve_'"),
    (lambda f: f.update(best_loss_=-math.inf), "fitted attribute 'best_loss_'"),
    (lambda f: f.update(best_loss_=None), "convergence bookkeeping is inconsistent"),
    (lambda f: f.update(best_validation_score_=0.5), "convergence bookkeeping"),
    (lambda f: f.update(validation_scores_=[0.5, "x"]), "'validation_scores_'"),
    (lambda f: f.update(eval_scores={"validation_0": [math.nan]}), "'eval_scores'"),
    (lambda f: f.pop("t_"), "fitted attribute 't_' is missing"),
    (lambda f: f.update(step=1), "unknown fitted attributes"),  # version 2's names
]
# and as version 2 does: the state section (TrainState.scalars())
_STATE_EDITS = [
    (lambda s: s.update(t=-1), "state entry 't'"),
    (lambda s: s.update(n_iter=None), "state entry 'n_iter'"),
    (lambda s: s.update(step=10**30), "state entry 'step'"),
    (lambda s: s.update(no_improvement_count=False), "'no_improvement_count'"),
    (lambda s: s.update(lr=math.nan), "state entry 'lr'"),
    (lambda s: s.update(lr=-1e-3), "state entry 'lr'"),
    (lambda s: s.update(lr="0.001"), "state entry 'lr'"),
    (lambda s: s.update(loss_curve=[0.5, math.nan]), "state entry 'loss_curve'"),
    (lambda s: s.update(loss_curve=[[0.5]]), "state entry 'loss_curve'"),
    (lambda s: s.update(loss_curve="0.5"), "state entry 'loss_curve'"),
    (lambda s: s.update(best_loss=-math.inf), "state entry 'best_loss'"),
    (lambda s: s.update(best_loss=None), "convergence bookkeeping is inconsistent"),
    (lambda s: s.update(best_validation_score=0.5), "convergence bookkeeping"),
    (lambda s: s.update(validation_scores=[0.5, "x"]), "'validation_scores'"),
    (lambda s: s.update(eval_scores={"validation_0": [math.nan]}), "'eval_scores'"),
    (lambda s: s.update(eval_scores=[]), "'eval_scores'"),
    (lambda s: s.pop("t"), "state entry 't' is missing"),
    (lambda s: s.pop("eval_scores"), "state entry 'eval_scores' is missing"),
    (lambda s: s.update(best_params=None), "unknown state entries"),
    (lambda s: s.update(loss_=0.5), "unknown state entries"),
]


@pytest.mark.parametrize("edit, match", _FITTED_EDITS + _V1_STATE_EDITS)
def test_invalid_fitted_attributes_are_refused(saved_v1, tmp_path, edit, match):
    bad = _rewrite(saved_v1, tmp_path / "bad.npz", change_meta=lambda m: edit(m["fitted"]))
    _expect_refused(bad, match)


@pytest.mark.parametrize("edit, match", _FITTED_EDITS)
def test_invalid_fitted_attributes_are_refused_v2(saved, tmp_path, edit, match):
    bad = _rewrite(saved, tmp_path / "bad.npz", change_meta=lambda m: edit(m["fitted"]))
    _expect_refused(bad, match)


@pytest.mark.parametrize("edit, match", _STATE_EDITS)
def test_invalid_state_entries_are_refused(saved, tmp_path, edit, match):
    bad = _rewrite(saved, tmp_path / "bad.npz", change_meta=lambda m: edit(m["state"]))
    _expect_refused(bad, match)


def test_state_section_belongs_to_its_version(saved, saved_v1, tmp_path):
    # version 2 keeps no training state among the fitted attributes, version 1 no section
    bad = _rewrite(
        saved, tmp_path / "bad.npz", change_meta=lambda m: m["fitted"].update(t_=m["state"]["t"])
    )
    _expect_refused(bad, r"unknown fitted attributes \['t_'\]")
    bad = _rewrite(saved_v1, tmp_path / "bad.npz", change_meta=lambda m: m.update(state={}))
    _expect_refused(bad, r"unknown metadata entries \['state'\]")
    bad = _rewrite(saved, tmp_path / "bad.npz", change_meta=lambda m: m.pop("state"))
    _expect_refused(bad, "metadata entry 'state' is missing")
    # and the arrays: version 1's names in version 2 are foreign
    bad = _rewrite(
        saved,
        tmp_path / "bad.npz",
        change_arrays=lambda a: a.update(params_=a.pop("params")),
        keep_checksums=True,
    )
    _expect_refused(bad, "array 'params' is missing")


@pytest.mark.parametrize(
    "edit, match",
    [
        # the network configuration
        (lambda m: m["config"].update(hidden_size=True), "configuration entry 'hidden_size'"),
        (lambda m: m["config"].update(num_layers=2**40), "configuration entry 'num_layers'"),
        (lambda m: m["config"].update(output_size=0), "configuration entry 'output_size'"),
        (lambda m: m["config"].update(dropout=1.0), "configuration entry 'dropout'"),
        (lambda m: m["config"].update(dropout=math.nan), "configuration entry 'dropout'"),
        (lambda m: m["config"].update(bidirectional=1), "configuration entry 'bidirectional'"),
        (lambda m: m["config"].update(cell="rnn"), "configuration entry 'cell'"),
        (lambda m: m["config"].update(loss="mse"), "loss 'mse' is not that of a LSTMClassifier"),
        (lambda m: m["config"].update(bias=True), "unknown network configuration entries"),
        (lambda m: m["config"].pop("dtype"), "configuration entry 'dtype' is missing"),
        # hyperparameters: JSON form, then the estimator's own validation
        (lambda m: m["params"].update(hidden_size=True), "invalid hyperparameter"),
        (lambda m: m["params"].update(n_jobs=2**40), "invalid hyperparameters"),
        (lambda m: m["params"].update(random_state=10**30), "invalid hyperparameters"),
        (lambda m: m["params"].update(alpha=[[1e-4]]), "hyperparameter 'alpha'"),
        (lambda m: m["params"].update(callbacks=[1]), "hyperparameter 'callbacks'"),
        (lambda m: m["params"].update(class_weight=[[True, -1.0]]), "'class_weight'"),
        (lambda m: m["params"].update(class_weight={"a": 1}), "'class_weight'"),
        # top level
        (lambda m: m.update(extra=1), "unknown metadata entries"),
        (lambda m: m.update(classes_object="yes"), "metadata entry 'classes_object'"),
        (lambda m: m.update(feature_names_in_=[1, 2, 3]), "metadata entry 'feature_names_in_'"),
        (lambda m: m.update(feature_names_in_=["a", "b", "c"]), "feature_names_in_ has 3 names"),
        (lambda m: m.update(lstm_native_version=1), "metadata entry 'lstm_native_version'"),
        (lambda m: m.update(format_version=True), "invalid format version"),
        (lambda m: m["sha256"].update(params_="abc"), "checksum of 'params_' is 'abc'"),
        (lambda m: m["sha256"].update(weights="0" * 64), "checksums for arrays that are not"),
    ],
)
def test_invalid_metadata_fields_are_refused(saved_any, tmp_path, edit, match):
    _expect_refused(_rewrite(saved_any, tmp_path / "bad.npz", change_meta=edit), match)


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda a: a.__setitem__("m", np.full_like(a["m"], np.inf)),
            "moments contain NaN or infinity",
        ),
        (lambda a: a.__setitem__("v", -np.ones_like(a["v"])), "negative"),
        (lambda a: a.__setitem__("classes_", a["classes_"][::-1]), "not sorted and unique"),
        (lambda a: a.__setitem__("classes_", np.array([True, True])), "not sorted and unique"),
        (lambda a: a.__setitem__("classes_", np.array([0.0, np.nan])), "NaN"),
        (lambda a: a.__setitem__("classes_", np.array([b"a", b"b"])), r"classes_ has dtype '\|S1'"),
        (lambda a: a.__setitem__("classes_", np.array([[0], [1]])), "classes_ has shape"),
        (
            lambda a: a.__setitem__("random_state_keys", np.zeros(624, dtype=np.int64)),
            "random_state_keys has dtype <i8",
        ),
        (
            lambda a: a.__setitem__("random_state_keys", np.zeros(623, dtype=np.uint32)),
            r"random_state_keys has dtype <u4 and shape \(623,\)",
        ),
        (
            lambda a: a.__setitem__("params", a["params"].astype(">f4")),
            "params has the big-endian dtype",
        ),
        (lambda a: a.__setitem__("weights", np.zeros(3)), r"unexpected arrays \['weights'\]"),
    ],
)
def test_invalid_array_values_are_refused(saved, tmp_path, change, match):
    bad = _rewrite(saved, tmp_path / "bad.npz", change_arrays=change, keep_checksums=True)
    _expect_refused(bad, match)


def test_invalid_state_arrays_of_version_1_are_refused(saved_v1, tmp_path):
    for change, match in [
        (
            lambda a: a.__setitem__("optimizer_m", np.full_like(a["optimizer_m"], np.inf)),
            "moments contain NaN or infinity",
        ),
        (
            lambda a: a.__setitem__("optimizer_v", -np.ones_like(a["optimizer_v"])),
            "optimizer_v .* negative",
        ),
        (
            lambda a: a.__setitem__("params_", a["params_"].astype(">f4")),
            "params_ has the big-endian dtype",
        ),
        (
            lambda a: a.__setitem__("params_", np.full_like(a["params_"], np.inf)),
            "params_ contains NaN or infinity",
        ),
        (lambda a: a.__setitem__("m", a["optimizer_m"]), r"unexpected arrays \['m'\]"),
    ]:
        bad = _rewrite(saved_v1, tmp_path / "bad.npz", change_arrays=change, keep_checksums=True)
        _expect_refused(bad, match)


def test_deeply_nested_json_is_refused(saved, tmp_path):
    with np.load(saved, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for text in ("[" * 100_000 + "]" * 100_000, '{"a": ' * 100_000 + "1" + "}" * 100_000):
        arrays["__meta__"] = np.array(text)
        np.savez(tmp_path / "deep.npz", **arrays)
        _expect_refused(tmp_path / "deep.npz", "nested too deeply")


def test_crafted_npy_headers_are_refused(saved, tmp_path):
    from test_load_attacks import npy_raw, raw_zip, read_members

    members = dict(read_members(saved))
    body = members["params.npy"][members["params.npy"].index(b"\n") + 1 :]
    P = len(body) // 4
    for header, match in [
        # what ast.literal_eval (np.load) fails on with RecursionError/MemoryError/TokenError
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': ("
            + "(" * 3000
            + ")" * 3000
            + "), }",
            "damaged .npy header",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "9" * 4000 + ",), }",
            "damaged .npy header",
        ),
        (f"{{'descr': '|O', 'fortran_order': False, 'shape': ({P},), }}", "no objects"),
        (f"{{'descr': '<f4', 'fortran_order': True, 'shape': ({P},), }}", "Fortran order"),
        (
            f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({P + 1},), }}",
            "declares .* bytes, but its header describes",
        ),
    ]:
        m = dict(members, **{"params.npy": npy_raw(header, body)})
        (tmp_path / "bad.npz").write_bytes(raw_zip(list(m.items())))
        _expect_refused(tmp_path / "bad.npz", match)


# A 2 GiB member deflated into 2 MiB: the loader must refuse it from the sizes its zip
# directory and .npy header declare, without allocating them (np.load allocated them all).
_MEASURE_LOAD = """
import resource, sys, tracemalloc
import lstm_native

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
try:
    lstm_native.load(sys.argv[1])
    print("loaded")
except ValueError as e:
    print("refused:", e)
peak = tracemalloc.get_traced_memory()[1]
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print("peak", peak, grown)
"""


@pytest.fixture(scope="module")
def deflated_2gib():
    """A function of a .npy header: (deflate stream, CRC-32, size) of the header and 2 GiB of
    zeros, made in about a second: after a full flush a deflate block does not depend on what
    came before, so one compressed 64 MiB block of zeros is repeated."""
    zeros = bytes(64 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    end = c.flush()
    crc_zeros = []

    def make(header: bytes, nbytes: int = 2**31) -> tuple:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        stream = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH) + block * 32 + end
        if not crc_zeros:  # the CRC of 2 GiB of zeros after a header is computed once
            crc = zlib.crc32(header)
            for _ in range(32):
                crc = zlib.crc32(zeros, crc)
            crc_zeros.append((header, crc))
        crc = crc_zeros[0][1] if crc_zeros[0][0] == header else 0  # 0: never read that far
        return stream, zipfile.ZIP_DEFLATED, len(header) + nbytes, crc

    return make


@pytest.mark.parametrize("where", ["params", "foreign", "__meta__", "consistent-config"])
def test_deflated_bomb_is_refused_without_allocating(saved, tmp_path, deflated_2gib, where):
    from test_load_attacks import npy, npy_header, npy_raw, raw_zip, read_members

    from lstm_native._network import core_config

    bomb = deflated_2gib(npy_raw(npy_header("<f4", (2**29,))))
    members = dict(read_members(saved))
    env = dict(os.environ)
    if where == "params":
        members["params.npy"] = bomb
        expect = r"params has dtype float32 and shape \(536870912,\)"
    elif where == "foreign":
        members["bomb.npy"] = bomb
        expect = r"unexpected arrays \['bomb'\]"
    elif where == "__meta__":  # 2 GiB of text (NumPy's largest string is a little shorter)
        n = 2**29 - 16
        members["__meta__.npy"] = deflated_2gib(npy_raw(npy_header(f"<U{n}", ())), 4 * n)
        expect = "__meta__ has 2.0 GiB, more than the 64.0 MiB"
    else:  # a network whose parameters do take 2 GiB: refused by the memory check
        with np.load(saved) as f:
            meta = json.loads(str(f["__meta__"]))
        meta["config"]["hidden_size"] = 11585  # 4 H (3 + H) + 8 H + 2 (H + 1) ~ 2**29
        assert abs(core_config(meta["config"]).num_params - 2**29) < 2**20
        members["__meta__.npy"] = npy(np.array(json.dumps(meta)))
        members["params.npy"] = bomb
        env["LSTM_NATIVE_AVAILABLE_MEMORY"] = str(2**30)
        expect = r"its arrays need \d+\.\d GiB of memory, but only 1.0 GiB is available"
    path = tmp_path / "bomb.npz"
    path.write_bytes(
        raw_zip([(n, *v) if isinstance(v, tuple) else (n, v) for n, v in members.items()])
    )
    assert path.stat().st_size < 3 * 2**20
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE_LOAD, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.splitlines()
    peak, grown = map(int, out[1].split()[1:])
    assert peak < 100 * 2**20 and grown < 100 * 2**20, (peak, grown, out[0])
    assert out[0].startswith(f"refused: Cannot load {str(path)!r}"), out
    assert re.search(expect, out[0]), out[0]


def test_zip_directory_of_many_members_is_refused(saved, tmp_path):
    from test_load_attacks import raw_zip, read_members

    members = read_members(saved) + [(f"x{i}.npy", b"") for i in range(5000)]
    (tmp_path / "many.npz").write_bytes(raw_zip(members))
    _expect_refused(tmp_path / "many.npz", "zip directory declares 5006 members")


# ------------------------------------------------------------------------------------------
# special files
# ------------------------------------------------------------------------------------------
def _char_device():
    """/dev/null if it is the usual character device (it is never written to here)."""
    try:
        return "/dev/null" if stat.S_ISCHR(os.stat("/dev/null").st_mode) else None
    except OSError:
        return None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_save_refuses_special_files(saved, tmp_path):
    est = lstm_native.load(saved)
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    targets = [
        (fifo, "it is a FIFO"),
        (folder, "it is a directory; give a file name"),
        (tmp_path / "link-to-folder.npz", "it is a directory"),
    ]
    os.symlink(folder, tmp_path / "link-to-folder.npz")
    if _char_device():
        # save("/dev/null") as root used to replace the system's /dev/null by the archive;
        # here a symlink to it (the check follows symlinks; the symlink itself is what a
        # rename would replace, never /dev/null)
        os.symlink(_char_device(), tmp_path / "link-to-null.npz")
        targets.append((tmp_path / "link-to-null.npz", "it is a character device"))
    before = sorted(os.listdir(tmp_path))
    for target, match in targets:
        with pytest.raises(ValueError, match=match) as info:
            est.save(target)
        assert f"Cannot save to {str(target)!r}" in str(info.value)
    assert sorted(os.listdir(tmp_path)) == before  # nothing replaced, no temporary file left
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and folder.is_dir() and not any(folder.iterdir())
    if _char_device():
        assert os.readlink(tmp_path / "link-to-null.npz") == _char_device()
        assert stat.S_ISCHR(os.stat(_char_device()).st_mode)


def test_save_replaces_a_symlink_to_a_regular_file(saved, tmp_path):
    target = tmp_path / "target.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    os.symlink(target, link)
    lstm_native.load(saved).save(link)
    assert not link.is_symlink() and target.read_bytes() == b"old"
    assert isinstance(lstm_native.load(link), LSTMClassifier)


def test_load_refuses_special_files(tmp_path):
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    _expect_refused(folder, "it is a directory, not a model file")
    if _char_device():
        os.symlink(_char_device(), tmp_path / "null.npz")
        _expect_refused(tmp_path / "null.npz", "it is a character device")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_load_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    stop = threading.Event()

    def unblock():
        # Opening a FIFO for reading blocks until a writer comes: one comes after 3 s, so
        # that a loader that opens it makes this test fail instead of hanging it.
        deadline = time.monotonic() + 3
        while not stop.wait(0.05):
            if time.monotonic() < deadline:
                continue
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                return
            except OSError:  # no reader (yet)
                pass

    helper = threading.Thread(target=unblock, daemon=True)
    helper.start()
    start = time.monotonic()
    try:
        _expect_refused(fifo, "it is a FIFO")
    finally:
        stop.set()
        helper.join()
    assert time.monotonic() - start < 2
