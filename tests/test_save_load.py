"""est.save(path) / lstm_native.load(path): a portable .npz (no pickle), written atomically;
damaged, foreign or newer files are refused with a ValueError naming the file."""

import json
import os
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import lstm_native
from lstm_native import LSTMClassifier, LSTMRegressor, _persist


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
    "float64-gru-2-layers": lambda: (LSTMRegressor(cell="gru", hidden_size=4, num_layers=2,
                                                   dropout=0.2, dtype="float64", max_iter=2,
                                                   random_state=1), *_data()),
    "multi-output-bidirectional": lambda: (
        LSTMRegressor(hidden_size=4, bidirectional=True, max_iter=2, random_state=2),
        _data()[0], np.stack([_data()[1], -_data()[1]], axis=1)),
    "sequences-ragged": lambda: (
        LSTMRegressor(hidden_size=4, return_sequences=True, max_iter=2, random_state=3),
        _ragged(), [s[:, 0] * 2 for s in _ragged()]),
    "univariate-2d": lambda: (LSTMRegressor(hidden_size=4, max_iter=2, random_state=4),
                              _data()[0][:, :, 0], _data()[1]),
    "classifier-strings": lambda: (
        LSTMClassifier(hidden_size=5, max_iter=3, random_state=5), _data()[0],
        np.array(["down", "up", "flat"], dtype=object)[np.arange(40) % 3]),
    "classifier-ints-early-stopping": lambda: (
        LSTMClassifier(cell="rnn_relu", hidden_size=5, max_iter=4, early_stopping=True,
                       validation_fraction=0.25, random_state=6),
        _data()[0], (_data()[1] > 0).astype(np.int64) * 7),
    "classifier-per-step": lambda: (
        LSTMClassifier(hidden_size=4, return_sequences=True, max_iter=2, random_state=7),
        _data()[0], (_data()[0][:, :, 0] > 0).astype(int)),
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
        for attr in ("n_features_in_", "n_outputs_", "n_iter_", "t_", "loss_curve_",
                     "best_loss_", "validation_scores_", "best_validation_score_"):
            assert getattr(loaded, attr) == getattr(est, attr), attr
        np.testing.assert_array_equal(loaded.params_, est.params_)
        assert loaded.params_.flags.writeable and loaded.params_.flags.c_contiguous
    # the file is plain NumPy: readable without pickle, by anyone
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["__meta__"]))
        assert meta["format_version"] == _persist.FORMAT_VERSION
        assert meta["class"] == type(est).__name__
        assert f["params_"].shape == est.params_.shape


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

    monkeypatch.setattr(_persist.np, "savez", crash)
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
    clf.classes_ = np.array([1, ("a", 2)], dtype=object)  # no array type holds these
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


def _rewrite(path, out, change_meta=None, change_arrays=None, keep_checksums=False):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    if change_meta:
        change_meta(meta)
    if change_arrays:
        change_arrays(arrays)
        if keep_checksums:
            meta["sha256"] = {k: _persist._sha256(v) for k, v in arrays.items()}
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
        info = z.getinfo("params_.npy")
    start = info.header_offset + 30 + len(info.filename) + 128  # inside the array data
    for offset in (start, start + 17, start + info.file_size // 2):
        bad_data = bytearray(data)
        bad_data[offset] ^= 0x40
        bad = tmp_path / f"flip{offset}.npz"
        bad.write_bytes(bytes(bad_data))
        _expect_refused(bad, "corrupted")
    # consistent zip, but the values were changed: the checksum catches it
    bad = _rewrite(saved, tmp_path / "edited.npz",
                   change_arrays=lambda a: a.__setitem__("params_", a["params_"] * 2))
    _expect_refused(bad, "params_.* does not match its checksum")


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


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(format_version=_persist.FORMAT_VERSION + 1),
     "format version 2 was written by a newer lstm_native"),
    (lambda m: m.update(format_version="1"), "invalid format version"),
    (lambda m: m.update(format="keras"), "not an lstm_native model file"),
    (lambda m: m.update({"class": "Pipeline"}), "unknown estimator class"),
    (lambda m: m["params"].update(hidden_size=-1), "invalid hyperparameters"),
    (lambda m: m["params"].update(colour="red"), "unknown hyperparameters"),
    (lambda m: m["config"].update(hidden_size=5), "params_ has dtype .* needs"),
    (lambda m: m["config"].update(hidden_size="4"), "configuration entry 'hidden_size'"),
    (lambda m: m["config"].update(cell="transformer"), "invalid network configuration"),
    (lambda m: m["config"].update(dtype="float16"), "unsupported dtype|configuration"),
    (lambda m: m["fitted"].update(n_features_in_=0), "n_features_in_"),
    (lambda m: m["fitted"].update(_input_kind_="4d"), "_input_kind_"),
    (lambda m: m["fitted"].update(secret=1), "unknown fitted attributes"),
    (lambda m: m.pop("config"), "'config' is missing"),
    (lambda m: m["sha256"].pop("classes_"), "classes_.* has no checksum"),
])
def test_inconsistent_metadata_is_refused(saved, tmp_path, edit, match):
    _expect_refused(_rewrite(saved, tmp_path / "bad.npz", change_meta=edit), match)


def test_inconsistent_arrays_are_refused(saved, tmp_path):
    for change, match in [
        (lambda a: a.pop("optimizer_m"), "'optimizer_m' is missing"),
        (lambda a: a.__setitem__("params_", a["params_"][:-1]), "params_ has dtype"),
        (lambda a: a.__setitem__("params_", a["params_"].astype(np.float64)),
         "params_ has dtype float64"),
        (lambda a: a.__setitem__("params_", np.full_like(a["params_"], np.nan)), "NaN"),
        (lambda a: a.__setitem__("classes_", np.arange(5)), "classes_ has shape"),
        (lambda a: a.pop("classes_"), "classifier without classes_"),
    ]:
        bad = _rewrite(saved, tmp_path / "bad.npz", change_arrays=change, keep_checksums=True)
        _expect_refused(bad, match)
    with pytest.raises(ValueError, match="holds an estimator of class LSTMClassifier, not "
                                         "LSTMRegressor"):
        LSTMRegressor.load(saved)
