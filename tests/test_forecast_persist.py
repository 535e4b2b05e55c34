"""LSTMForecaster.save / load: every input form round-trips to the same forecasts, and loading
treats the file as hostile (edited metadata and arrays with consistent checksums, corrupted
data, foreign and newer files, a network that does not fit the forecaster)."""

from __future__ import annotations

import json
import os
import zlib

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import lstm_native
from lstm_native import LSTMForecaster, LSTMRegressor, _npz

pd = pytest.importorskip("pandas")

FAST = dict(n_ensemble=2, max_iter=3, hidden_size=8, random_state=0)


def _series(n=61, k=1.0):
    t = np.arange(n)
    return k * (3 + np.sin(t / 2.3) + 0.04 * t + 0.1 * np.cos(t * 1.7))


def _frame(dates=True):
    parts = []
    for key, n in (("a", 57), ("b", 43), ("c", 50)):
        ds = pd.date_range("2001-01-01", periods=n, freq="QS") if dates else np.arange(n) + 10
        parts.append(pd.DataFrame({"unique_id": key, "ds": ds, "y": _series(n, len(parts) + 1)}))
    return pd.concat(parts, ignore_index=True)


def _future_frame(df, h):
    rows = []
    for key, part in df.groupby("unique_id"):
        last = part["ds"].iloc[-1]
        ds = pd.date_range(last, periods=h + 1, freq="QS")[1:]
        rows.append(pd.DataFrame({"unique_id": key, "ds": ds, "temp": np.cos(np.arange(h))}))
    return pd.concat(rows, ignore_index=True)


CASES = {
    "array": lambda: (_series(), None, None),
    "series_monthly": lambda: (
        pd.Series(_series(), index=pd.date_range("2000-01-01", periods=61, freq="MS"), name="s"),
        None,
        None,
    ),
    "series_period": lambda: (
        pd.Series(_series(), index=pd.period_range("1990Q1", periods=61, freq="Q")),
        None,
        None,
    ),
    "series_tz_daily": lambda: (
        pd.Series(
            _series(), index=pd.date_range("2020-03-01", periods=61, freq="D", tz="Europe/Paris")
        ),
        None,
        None,
    ),
    "series_range": lambda: (pd.Series(_series(), index=pd.RangeIndex(5, 66)), None, None),
    "multivariate": lambda: (np.c_[_series(), _series(k=2.0)[::-1]], None, None),
    "wide_frame": lambda: (
        pd.DataFrame({"x": _series(), "y2": _series(k=3.0)}, index=pd.RangeIndex(61)),
        None,
        None,
    ),
    "list": lambda: ([_series(61), _series(40, 5.0)], None, None),
    "list_covariates": lambda: (
        [_series(61), _series(40, 5.0)],
        [np.arange(61)[:, None] % 4, np.arange(40)[:, None] % 4],
        [np.arange(9)[:, None] % 4, np.arange(9)[:, None] % 4],
    ),
    "frame": lambda: (_frame(), None, None),
    "frame_int_time": lambda: (_frame(dates=False), None, None),
}


def _fit(case, **params):
    y, X, fut = CASES[case]()
    fc = LSTMForecaster(**{**FAST, **params}).fit(y, X)
    return fc, fut


def _same(a, b):
    if isinstance(a, list):
        assert len(a) == len(b)
        for x, z in zip(a, b):
            _same(x, z)
    elif isinstance(a, tuple):
        for x, z in zip(a, b):
            _same(x, z)
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True)
    else:
        assert type(a) is type(b)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_gives_the_same_forecasts(case, tmp_path):
    fc, fut = _fit(case, calibrate=case in ("array", "frame"))
    path = tmp_path / "fc.npz"
    fc.save(path)
    for loaded in (LSTMForecaster.load(path), lstm_native.load(str(path))):
        assert type(loaded) is LSTMForecaster
        assert loaded.get_params() == fc.get_params()
        for name in ("season_length_", "horizon_", "strategy_", "quantile_levels_"):
            assert getattr(loaded, name) == getattr(fc, name)
        assert loaded.interval_factors_ == fc.interval_factors_
        assert loaded.interval_margins_ == fc.interval_margins_
        _same(loaded.predict(9, X_future=fut), fc.predict(9, X_future=fut))
        _same(
            loaded.predict(4, X_future=fut, quantiles=[0.1, 0.9]),
            fc.predict(4, X_future=fut, quantiles=[0.1, 0.9]),
        )
        _same(loaded.predict_interval(6, X_future=fut), fc.predict_interval(6, X_future=fut))
        for z0, z1 in zip(loaded.z_, fc.z_):  # recomputed, bit-identical
            np.testing.assert_array_equal(z0, z1)
        for i0, i1 in zip(loaded.panel_.indexes, fc.panel_.indexes):
            if i1 is None:
                assert i0 is None
            else:
                pd.testing.assert_index_equal(pd.Index(i0), pd.Index(i1), exact=False)
                assert i0.dtype == i1.dtype
        assert loaded.panel_.ids == fc.panel_.ids
        assert loaded.panel_.columns == fc.panel_.columns
        assert loaded.panel_.freq == fc.panel_.freq


def test_calibration_margins_and_new_series_after_loading(tmp_path):
    fc, _ = _fit("list", calibrate=True)
    assert max(fc.interval_margins_) > 0.0  # so that the round trip of margins is tested
    fc.save(tmp_path / "fc.npz")
    loaded = LSTMForecaster.load(tmp_path / "fc.npz")
    new = [_series(50, 7.0)]
    _same(loaded.predict(5, y=new), fc.predict(5, y=new))
    # the loaded forecaster refits like the original (clone of its hyperparameters)
    refit = loaded.fit(_series())
    assert refit.predict(3).shape == (3,)


def test_recursive_and_point_losses(tmp_path):
    for params in (dict(strategy="recursive"), dict(loss="squared_error", n_ensemble=1)):
        fc, _ = _fit("array", **params)
        fc.save(tmp_path / "fc.npz")
        loaded = LSTMForecaster.load(tmp_path / "fc.npz")
        _same(loaded.predict(7), fc.predict(7))


def test_save_needs_a_fitted_forecaster_and_plain_labels(tmp_path):
    with pytest.raises(NotFittedError):
        LSTMForecaster().save(tmp_path / "x.npz")
    assert not os.path.exists(tmp_path / "x.npz")
    y = pd.Series(_series(), name=("a", "tuple"))
    fc = LSTMForecaster(**FAST).fit(y)
    with pytest.raises(ValueError, match="series name .* tuple"):
        fc.save(tmp_path / "x.npz")
    assert not os.path.exists(tmp_path / "x.npz")
    fc.panel_.name = float("nan")  # JSON would write NaN, which loading refuses as a label
    with pytest.raises(ValueError, match="series name nan .* not a label"):
        fc.save(tmp_path / "x.npz")
    assert not os.path.exists(tmp_path / "x.npz")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_and_forecaster_files_are_told_apart(tmp_path):
    fc, _ = _fit("array")
    fc.save(tmp_path / "fc.npz")
    est = LSTMRegressor(hidden_size=3, max_iter=2, random_state=0).fit(
        np.random.default_rng(0).normal(size=(8, 5, 2)), np.arange(8.0)
    )
    est.save(tmp_path / "est.npz")
    with pytest.raises(ValueError, match="holds an estimator, not a forecaster"):
        LSTMForecaster.load(tmp_path / "est.npz")
    with pytest.raises(ValueError, match="not an lstm_native model file"):
        LSTMRegressor.load(tmp_path / "fc.npz")
    assert type(lstm_native.load(tmp_path / "est.npz")) is LSTMRegressor


# Saved at commit 7faddbd (format version 1): LSTMForecaster(n_ensemble=2, max_iter=2,
# hidden_size=4, random_state=0) fitted on _frame() with the covariate temp = cos(row number);
# forecaster-v1-expected.npz holds, by column, its predict(6, X_future=_future_frame(df, 6),
# quantiles=[0.1, 0.9]) (ds as int64 nanoseconds).
DATA = os.path.join(os.path.dirname(__file__), "data")


def test_a_version_1_file_loads_as_before():
    fc = LSTMForecaster.load(os.path.join(DATA, "forecaster-v1.npz"))
    # linear_weight came later: a file without it loads with 0, its forecasts had no linear
    # part; drift was "mixed" by default then (the file keeps every hyperparameter)
    params = dict(
        n_ensemble=2, max_iter=2, hidden_size=4, random_state=0, linear_weight=0.0, drift="mixed"
    )
    assert fc.get_params() == LSTMForecaster(**params).get_params()
    pred = fc.predict(6, X_future=_future_frame(_frame(), 6), quantiles=[0.1, 0.9])
    with np.load(os.path.join(DATA, "forecaster-v1-expected.npz"), allow_pickle=False) as f:
        assert list(pred.columns) == ["unique_id", "ds", "y_q0.1", "y_q0.9"]
        assert pred["unique_id"].tolist() == f["unique_id"].tolist()
        ds = pred["ds"].to_numpy().astype("datetime64[ns]").astype(np.int64)
        np.testing.assert_array_equal(ds, f["ds"])
        for column in ("y_q0.1", "y_q0.9"):
            np.testing.assert_array_equal(pred[column].to_numpy(), f[column])


# ---------------------------------------------------------------------------------------------
# hostile files
# ---------------------------------------------------------------------------------------------
def _members(path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(str(arrays.pop("__meta__"))), arrays


def _write(path, meta, arrays, checksums=True):
    if checksums:
        meta = {**meta, "sha256": {k: _npz.sha256(v) for k, v in arrays.items()}}
    with open(path, "wb") as f:
        np.savez(f, __meta__=_npz.json_member(meta), **arrays)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved frame forecaster with covariates and a time index (every optional part)."""
    df = _frame()
    X = df[["unique_id", "ds"]].assign(temp=np.cos(np.arange(len(df))))
    fc = LSTMForecaster(**FAST).fit(df, X)
    path = tmp_path_factory.mktemp("fc") / "fc.npz"
    fc.save(path)
    return path


def _edit(meta, where, value):
    out = json.loads(json.dumps(meta))
    node = out
    for key in where[:-1]:
        node = node[key]
    if value is KeyError:
        del node[where[-1]]
    else:
        node[where[-1]] = value
    return out


META_EDITS = {
    "class": (("class",), "LSTMRegressor", "not a LSTMForecaster"),
    "version": (("format_version",), 7, "newer lstm_native"),
    "format": (("format",), "something", "not an lstm_native forecaster"),
    "unknown_param": (("params", "colour"), "red", r"unknown hyperparameters \['colour'\]"),
    "missing_param": (("params", "alpha"), KeyError, "hyperparameter 'alpha' is missing"),
    "bool_as_int": (("params", "n_ensemble"), True, "hyperparameter 'n_ensemble': True"),
    "str_as_int": (("params", "hidden_size"), "8", "hyperparameter 'hidden_size': '8'"),
    "quantile_str": (("params", "quantiles"), [0.1, "0.9"], "hyperparameter 'quantiles'"),
    "null_flag": (("params", "calibrate"), None, "hyperparameter 'calibrate'"),
    "params_list": (("params",), [1, 2], "metadata entry 'params'"),
    "version_number": (("lstm_native_version",), 3, "metadata entry 'lstm_native_version'"),
    "unknown_top": (("extra",), 1, r"unknown metadata entries \['extra'\]"),
    "bad_strategy": (("params", "strategy"), "sideways", "strategy must be"),
    "nan_lr": (("params", "learning_rate_init"), float("nan"), "learning_rate_init"),
    "quantile_out": (("params", "quantiles"), [0.1, 1.5], "quantiles must lie"),
    "levels": (("fitted", "quantile_levels_"), [0.2, 0.5, 0.9], "quantile_levels_"),
    "levels_str": (("fitted", "quantile_levels_"), "0.5", "fitted attribute 'quantile_levels_'"),
    "factor_below_1": (("fitted", "interval_factors_"), [0.5, 1.0, 1.0], "interval_factors_"),
    # an int too large for a float: was OverflowError when the loaded factors were converted
    "factor_huge": (("fitted", "interval_factors_"), [10**400, 1, 1], "'interval_factors_'"),
    "factor_count": (("fitted", "interval_factors_"), [1.0], "one finite factor >= 1 per"),
    "margin_negative": (("fitted", "interval_margins_"), [-0.5, 0, 0.5], "'interval_margins_'"),
    "margin_nan": (("fitted", "interval_margins_"), [float("nan"), 0, 1], "'interval_margins_'"),
    "margin_count": (("fitted", "interval_margins_"), [0.0], "one finite margin >= 0 per"),
    "margin_median": (("fitted", "interval_margins_"), [0.1, 0.2, 0.1], "0 for the median"),
    "lookbacks": (("fitted", "lookbacks"), [10], "n_ensemble"),
    "lookback_0": (("fitted", "lookbacks"), [0, 10], "fitted attribute 'lookbacks'"),
    "sizes": (("fitted", "network_nbytes"), [500, 500], "other than the 1000 bytes"),
    "tiny_sizes": (("fitted", "network_nbytes"), [5, 5], "fitted attribute 'network_nbytes'"),
    "strategy_": (("fitted", "strategy_"), "both", "fitted attribute 'strategy_'"),
    "season": (("fitted", "season_length_"), 3, "period"),
    "no_horizon": (("fitted", "horizon_"), KeyError, "fitted attribute 'horizon_' is missing"),
    "kind": (("panel", "kind"), "cube", "panel entry 'kind'"),
    "lengths": (("panel", "lengths"), [57, 43, 49], "shape"),
    "short": (("panel", "lengths"), [2, 98, 50], "panel entry 'lengths'"),
    "no_series": (("panel", "lengths"), [], "panel entry 'lengths'"),
    "ids_repeat": (("panel", "ids"), ["a", "a", "c"], "repeat"),
    "ids_count": (("panel", "ids"), ["a", "b"], "series ids"),
    "ids_objects": (("panel", "ids"), ["a", {"x": 1}, "c"], "panel entry 'ids'"),
    "ids_bool": (("panel", "ids"), ["a", True, "c"], "panel entry 'ids'"),
    "channels": (("panel", "n_channels"), 2, "one channel|shape"),
    "channels_bool": (("panel", "n_channels"), True, "panel entry 'n_channels'"),
    "covariates": (("panel", "n_covariates"), 0, "cov_columns"),
    "columns": (("panel", "columns"), ["y"], "multivariate"),
    "name_object": (("panel", "name"), {"a": 1}, "panel entry 'name'"),
    "name_nan": (("panel", "name"), float("nan"), "panel entry 'name'"),
    "unknown_panel": (("panel", "colour"), "red", r"unknown panel entries \['colour'\]"),
    "index_kind": (("panel", "index", "kind"), "complex", "time index entry 'kind'"),
    "index_unit": (("panel", "index", "unit"), "fortnight", "time index entry 'unit'"),
    "index_tz": (("panel", "index", "tz"), 1, "time index entry 'tz'"),
    "index_freq_long": (("panel", "index", "freq"), "Q" * 65, "time index entry 'freq'"),
    "index_no_name": (("panel", "index", "name"), KeyError, "time index entry 'name' is missing"),
    "index_str": (("panel", "index"), "datetime", "panel entry 'index'"),
    "freq": (("panel", "freq"), "not-a-frequency", "frequency"),
    "freq_long": (("panel", "freq"), "Q" * 65, "panel entry 'freq'"),
    "no_panel": (("panel",), KeyError, "metadata entry 'panel' is missing"),
}


@pytest.mark.parametrize("edit", sorted(META_EDITS))
def test_edited_metadata_is_refused(saved, tmp_path, edit):
    where, value, message = META_EDITS[edit]
    meta, arrays = _members(saved)
    bad = tmp_path / "bad.npz"
    _write(bad, _edit(meta, where, value), arrays)
    with pytest.raises(ValueError, match=f"Cannot load .*({message})"):
        LSTMForecaster.load(bad)


def _array_edits():
    def nan_values(a):
        a["values"][3, 0] = np.nan

    def scale_zero(a):
        a["scaler_scale"][1, 0] = 0.0

    def negative_logged(a):
        a["values"][0, 0] = -1.0  # the series is positive, hence log-transformed

    def sd_negative(a):
        a["cov_sd"][0] = -1.0

    def float32_values(a):
        a["values"] = a["values"].astype(np.float32)

    def extra(a):
        a["payload"] = np.zeros(3)

    def missing_index(a):
        del a["index"]

    def corrupt_networks(a):  # valid compressed data, but not the networks
        a["networks"] = np.frombuffer(zlib.compress(bytes(500)), dtype=np.uint8)

    def corrupt_network(a):  # the first network's parameters changed, checksum and all
        blob = bytearray(zlib.decompress(a["networks"].tobytes()))
        blob[300:340] = b"\x07" * 40
        a["networks"] = np.frombuffer(zlib.compress(bytes(blob)), dtype=np.uint8)

    def not_zlib(a):
        a["networks"] = a["networks"][: len(a["networks"]) // 2]

    return {
        "nan_values": (nan_values, "NaN"),
        "scale_zero": (scale_zero, "scaler_scale"),
        "negative_logged": (negative_logged, "log-transformed"),
        "sd_negative": (sd_negative, "cov_sd"),
        "float32": (float32_values, "dtype"),
        "extra_member": (extra, "arrays are"),
        "missing_index": (missing_index, "arrays are"),
        "corrupt_network": (corrupt_network, "network 0"),
        "corrupt_networks": (corrupt_networks, "other than the"),
        "not_zlib": (not_zlib, "networks"),
    }


ARRAY_EDITS = _array_edits()


@pytest.mark.parametrize("edit", sorted(ARRAY_EDITS))
def test_edited_arrays_are_refused(saved, tmp_path, edit):
    change, message = ARRAY_EDITS[edit]
    meta, arrays = _members(saved)
    change(arrays)
    bad = tmp_path / "bad.npz"
    _write(bad, meta, arrays)
    with pytest.raises(ValueError, match=f"Cannot load .*{message}"):
        LSTMForecaster.load(bad)


CHECKSUM_EDITS = {
    "missing": (lambda d: d.pop("values"), "checksum 'values' is missing"),
    "extra": (lambda d: d.update(payload="0" * 64), r"unknown checksums \['payload'\]"),
    "not_hex": (lambda d: d.update(values="Z" * 64), "invalid checksum 'values': 'ZZZ"),
    "number": (lambda d: d.update(values=7), "invalid checksum 'values': 7"),
}


@pytest.mark.parametrize("edit", sorted(CHECKSUM_EDITS))
def test_edited_checksums_are_refused(saved, tmp_path, edit):
    change, message = CHECKSUM_EDITS[edit]
    meta, arrays = _members(saved)
    change(meta["sha256"])
    bad = tmp_path / "bad.npz"
    _write(bad, meta, arrays, checksums=False)
    with pytest.raises(ValueError, match=f"Cannot load .*{message}"):
        LSTMForecaster.load(bad)


def test_checksums_catch_changed_data(saved, tmp_path):
    meta, arrays = _members(saved)
    arrays["values"][0, 0] += 1.0
    bad = tmp_path / "bad.npz"
    _write(bad, meta, arrays, checksums=False)
    with pytest.raises(ValueError, match="does not match its checksum"):
        LSTMForecaster.load(bad)


def test_a_network_that_does_not_fit_is_refused(saved, tmp_path):
    """A valid estimator file, but of another forecaster (no covariates: fewer features)."""
    other, _ = _fit("list")
    other.save(tmp_path / "other.npz")
    meta, arrays = _members(saved)
    ometa, oarrays = _members(tmp_path / "other.npz")
    arrays["networks"] = oarrays["networks"]
    meta["fitted"]["network_nbytes"] = ometa["fitted"]["network_nbytes"]
    bad = tmp_path / "bad.npz"
    _write(bad, meta, arrays)
    with pytest.raises(ValueError, match="network 0 .* does not fit the forecaster"):
        LSTMForecaster.load(bad)


def test_truncated_and_foreign_files(saved, tmp_path):
    data = saved.read_bytes()
    # every 1/50 of the file: a cut inside the networks must not leave a readable archive
    for size in [*range(0, len(data), len(data) // 50), len(data) - 5]:
        bad = tmp_path / f"cut{size}.npz"
        bad.write_bytes(data[:size])
        with pytest.raises(ValueError, match="Cannot load"):
            LSTMForecaster.load(bad)
        with pytest.raises(ValueError, match="Cannot load"):
            lstm_native.load(bad)
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single NumPy array"):
        LSTMForecaster.load(tmp_path / "one.npy")


@pytest.mark.parametrize(
    "params",
    [
        dict(drift=True),
        dict(level="smoothed", drift="auto"),
        dict(level="smoothed"),
        dict(drift="mixed"),
    ],
)
def test_drift_and_smoothed_level_round_trip(tmp_path, params):
    fc, fut = _fit("list", calibrate=False, **params)
    fc.save(tmp_path / "fc.npz")
    loaded = LSTMForecaster.load(tmp_path / "fc.npz")
    _same(loaded.predict(8), fc.predict(8))
    for a, b in zip(loaded.scalers_, fc.scalers_):
        for name in ("drift", "alpha"):
            if getattr(b, name) is None:
                assert getattr(a, name) is None
            else:
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
