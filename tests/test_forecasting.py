"""lstm_native.forecasting: every input and output form, intervals, covariates, panels, the
C++ rollout against a Python loop, the metrics, backtests, SlidingWindow and the CLI."""

import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone

from lstm_native import LSTMForecaster, LSTMRegressor
from lstm_native.forecasting import (
    SlidingWindow,
    backtest,
    coverage,
    infer_season_length,
    is_seasonal,
    mase,
    rmse,
    seasonal_indices,
    smape,
)

FAST = dict(n_ensemble=2, max_iter=40, hidden_size=12, num_layers=1, random_state=0)


def seasonal_series(n=120, m=12, seed=0, level=100.0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return level + 0.3 * t + 8 * np.sin(2 * np.pi * t / m) + rng.normal(0, 1, n)


# -- forms ------------------------------------------------------------------------------------
def test_one_series_array_and_quantiles():
    y = seasonal_series()
    est = LSTMForecaster(season_length=12, **FAST).fit(y)
    f = est.predict(10)
    assert f.shape == (10,) and np.isfinite(f).all()
    q = est.predict(10, quantiles=[0.1, 0.5, 0.9])
    assert q.shape == (10, 3)
    np.testing.assert_allclose(q[:, 1], f)
    assert np.all(q[:, 0] <= q[:, 1]) and np.all(q[:, 1] <= q[:, 2])
    lo, hi = est.predict_interval(10, coverage=0.8)
    np.testing.assert_allclose(lo, q[:, 0])
    np.testing.assert_allclose(hi, q[:, 2])
    with pytest.raises(ValueError, match="were not trained"):
        est.predict(5, quantiles=[0.05])
    with pytest.raises(ValueError, match="horizon must be a positive integer"):
        est.predict(0)
    assert est.predict(30).shape == (30,)  # beyond the trained horizon: block by block


def test_pandas_series_gives_dated_forecast_and_infers_the_season():
    pd = pytest.importorskip("pandas")
    y = pd.Series(
        seasonal_series(96), index=pd.date_range("2000-01-01", periods=96, freq="MS"), name="sales"
    )
    est = LSTMForecaster(**FAST).fit(y)
    assert est.season_length_ == 12
    f = est.predict(6)
    assert isinstance(f, pd.Series) and f.name == "sales" and len(f) == 6
    assert f.index[0] == pd.Timestamp("2008-01-01")


def test_multivariate_series():
    a = seasonal_series(100, seed=1)
    y = np.stack([a, 0.5 * a + 3.0], axis=1)
    f = LSTMForecaster(season_length=12, **FAST).fit(y).predict(7)
    assert f.shape == (7, 2)
    q = LSTMForecaster(season_length=12, **FAST).fit(y).predict(7, quantiles=[0.1, 0.9])
    assert q.shape == (7, 2, 2)


def test_panel_of_ragged_lengths_is_one_global_model():
    ys = [seasonal_series(n, seed=i, level=50.0 * (i + 1)) for i, n in enumerate((90, 60, 130))]
    est = LSTMForecaster(season_length=12, **FAST).fit(ys)
    f = est.predict(8)
    assert isinstance(f, list) and [x.shape for x in f] == [(8,)] * 3
    # each forecast is at its own series' level (normalized per series)
    for x, y in zip(f, ys):
        assert abs(x.mean() - y[-12:].mean()) < 0.3 * abs(y[-12:].mean())


def test_long_dataframe_in_and_out():
    pd = pytest.importorskip("pandas")
    frames = []
    for i, n in enumerate((80, 70)):
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": f"s{i}",
                    "ds": pd.date_range("2001-01-01", periods=n, freq="MS"),
                    "y": seasonal_series(n, seed=i),
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    out = LSTMForecaster(**FAST).fit(df).predict(4)
    assert list(out.columns) == ["unique_id", "ds", "y"] and len(out) == 8
    assert out.loc[out.unique_id == "s1", "ds"].iloc[0] == pd.Timestamp("2006-11-01")
    q = LSTMForecaster(**FAST).fit(df).predict(4, quantiles=[0.1, 0.9])
    assert {"y_q0.1", "y_q0.9"} <= set(q.columns)


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="NaN"):
        LSTMForecaster(**FAST).fit(np.r_[1.0, np.nan, 3.0, 4.0])
    with pytest.raises(ValueError, match="at least 3"):
        LSTMForecaster(**FAST).fit([1.0, 2.0])
    with pytest.raises(ValueError, match="strategy"):
        LSTMForecaster(strategy="magic").fit(seasonal_series())
    with pytest.raises(ValueError, match="quantiles must lie"):
        LSTMForecaster(quantiles=[0.0, 0.5]).fit(seasonal_series())


# -- covariates, intervals ---------------------------------------------------------------------
def test_covariates_change_the_forecast_when_they_matter():
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(0, 1, n + 10)
    y = 50 + 5 * x[:n] + rng.normal(0, 0.3, n)  # y moves with a known covariate
    est = LSTMForecaster(
        season_length=1, n_ensemble=2, max_iter=150, random_state=0, transform="none"
    ).fit(y, X=x[:n])
    high = est.predict(5, X_future=np.full(5, 1.5))
    low = est.predict(5, X_future=np.full(5, -1.5))
    diff = high - low  # the true effect is 15
    assert np.all(diff > 1.0) and diff.mean() > 5.0, diff
    with pytest.raises(ValueError, match="X_future"):
        est.predict(5)


def test_intervals_are_calibrated_on_known_noise():
    rng = np.random.default_rng(1)
    hits = []
    for seed in range(4):
        y = 20 + rng.normal(0, 1.0, 400)  # white noise around a level
        est = LSTMForecaster(
            season_length=1, n_ensemble=2, max_iter=60, random_state=seed, transform="none"
        ).fit(y[:380])
        lo, hi = est.predict_interval(20, coverage=0.8)
        hits.append(coverage(y[380:], lo, hi))
    assert 0.6 <= np.mean(hits) <= 0.95, hits


def test_calibration_widens_intervals_that_held_out_data_shows_too_narrow():
    """Noise that grows towards the end of the series: quantiles learned on the (quiet)
    training windows are too narrow; the held-out calibration widens them to about their
    nominal coverage, and leaves the point forecast as it is."""
    rng = np.random.default_rng(3)
    t = np.arange(90)
    series = [50 + rng.normal(0, 1, 90) * (0.3 + 3.0 * (t / 90) ** 4) for _ in range(20)]
    params = dict(
        season_length=1, horizon=8, n_ensemble=2, max_iter=30, hidden_size=12, num_layers=1,
        transform="none", random_state=0,
    )  # fmt: skip
    cover, point = {}, {}
    for cal in (False, True):
        est = LSTMForecaster(calibrate=cal, **params).fit([s[:-8] for s in series])
        lo, hi = est.predict_interval(8, coverage=0.8)
        cover[cal] = np.mean([coverage(s[-8:], a, b) for s, a, b in zip(series, lo, hi)])
        point[cal] = np.asarray(est.predict(8))
        levels = est.quantile_levels_
        assert est.interval_margins_[levels.index(0.5)] == 0.0
        assert min(est.interval_margins_) >= 0.0
        assert est.interval_factors_ == [1.0] * len(levels)  # the older calibration: unused
    assert cover[False] < 0.6, cover
    assert 0.7 <= cover[True] <= 0.97, cover
    np.testing.assert_array_equal(point[False], point[True])


def test_calibration_pools_the_scores_of_three_held_out_origins():
    """The margins are the conformal quantiles of the scores (the normalized miss beyond the
    level, over sqrt(step)) of the points after origins n - k, n - 2k, n - 3k, each forecast
    by a forecaster fitted (without calibration) on the points before: rebuilt here through
    the public API (transform="none", no season, no drift: normalized = divided by the mean
    absolute change of the points before). A series too short for the third origin uses the
    first two. The calibrated levels then move by M sqrt(k) at step k."""
    rng = np.random.default_rng(5)
    params = dict(
        season_length=1, horizon=4, n_ensemble=2, max_iter=15, hidden_size=8, num_layers=1,
        transform="none", random_state=0, quantiles=(0.1, 0.5, 0.9), n_jobs=1,
    )  # fmt: skip
    for n, origins in ((60, 3), (8, 2)):
        y = 10 + np.cumsum(rng.normal(0, 1, n))
        est = LSTMForecaster(calibrate=True, **params).fit(y)
        k = min(4, n // 4)
        root = np.sqrt(np.arange(1, k + 1))
        lows, highs = [], []
        for j in range(1, origins + 1):
            cut = y[: n - j * k]
            q = (
                LSTMForecaster(calibrate=False, **params)
                .fit(cut)
                .predict(k, quantiles=[0.1, 0.5, 0.9])
            )
            actual = y[n - j * k : n - (j - 1) * k]
            scale = np.mean(np.abs(np.diff(cut)))
            lows += list((q[:, 0] - actual) / scale / root)
            highs += list((actual - q[:, 2]) / scale / root)
        expect = []
        for sc in (np.sort(lows), np.sort(highs)):
            rank = min(int(math.ceil((len(sc) + 1) * 0.9)), len(sc)) - 1
            expect.append(max(0.0, float(sc[rank])))
        got = est.interval_margins_
        np.testing.assert_allclose([got[0], got[2]], expect, rtol=1e-9, err_msg=f"n={n}")
        assert got[1] == 0.0
        # applied: each level moves out by M sqrt(k) (normalized units, here y / scale)
        plain = LSTMForecaster(calibrate=False, **params).fit(y)
        h = 6
        scale = np.mean(np.abs(np.diff(y)))
        out = np.sqrt(np.arange(1, h + 1)) * scale
        q0, q1 = (
            plain.predict(h, quantiles=[0.1, 0.5, 0.9]),
            est.predict(h, quantiles=[0.1, 0.5, 0.9]),
        )
        np.testing.assert_allclose(q1[:, 0], q0[:, 0] - got[0] * out, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(q1[:, 2], q0[:, 2] + got[2] * out, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(q1[:, 1], q0[:, 1])
    assert max(got) > 0  # the check above checked a margin that does something


def test_a_fitted_global_model_forecasts_new_series_without_refitting():
    train = [seasonal_series(100, seed=i) for i in range(3)]
    est = LSTMForecaster(season_length=12, **FAST).fit(train)
    # the fitted series, handed back: the same forecast
    np.testing.assert_array_equal(np.asarray(est.predict(6, y=train[1])), est.predict(6)[1])
    same = est.predict(6, y=train)
    for a, b in zip(same, est.predict(6)):
        np.testing.assert_array_equal(a, b)
    # a new series, ten times larger: normalized alike (log, season, scale, last value), so
    # the forecast is ten times larger too
    new = seasonal_series(80, seed=7)
    np.testing.assert_allclose(est.predict(6, y=10 * new), 10 * est.predict(6, y=new), rtol=1e-9)
    lo, hi = est.predict_interval(6, y=new)
    assert lo.shape == hi.shape == (6,) and np.all(lo <= hi)
    # what stays as fitted
    with pytest.raises(ValueError, match="channels"):
        est.predict(6, y=np.column_stack([new, new]))
    with pytest.raises(ValueError, match="without y"):
        est.predict(6, X=np.ones((80, 1)))
    with pytest.raises(ValueError, match="covariates"):
        est.predict(6, y=new, X=np.ones((80, 1)))
    with pytest.raises(ValueError, match="at least 3"):
        est.predict(6, y=new[:2])


def test_new_series_in_a_long_dataframe_come_back_under_their_ids():
    pd = pytest.importorskip("pandas")

    def frame(ids, n):
        return pd.concat(
            [
                pd.DataFrame(
                    {
                        "unique_id": k,
                        "ds": pd.date_range("2001-01-01", periods=n, freq="MS"),
                        "y": seasonal_series(n, seed=i),
                    }
                )
                for i, k in enumerate(ids)
            ],
            ignore_index=True,
        )

    est = LSTMForecaster(**FAST).fit(frame(["a", "b"], 90))
    out = est.predict(4, y=frame(["new1", "new2", "new3"], 60))
    assert list(out["unique_id"].unique()) == ["new1", "new2", "new3"]
    assert len(out) == 12
    assert out["ds"].min() == pd.Timestamp("2006-01-01")


# -- the rollout --------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_rollout_equals_a_python_loop_of_predictions():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6, 2))
    y = X[:, -1, 0] * 0.5 + X[:, -2, 1] * 0.3
    est = LSTMRegressor(hidden_size=8, max_iter=5, dtype="float64", random_state=0).fit(X, y)
    hist = X[:3]
    fut = rng.standard_normal((3, 4, 2))
    out = est.rollout(hist, 5, future=fut, feedback=[(0, 0)])
    seq = hist.copy()
    for k in range(5):
        p = est.predict(seq)
        np.testing.assert_allclose(out[:, k, 0], p, rtol=1e-12, atol=1e-12)
        if k < 4:
            step = fut[:, k].copy()
            step[:, 0] = p
            seq = np.concatenate([seq, step[:, None]], axis=1)


# -- metrics, backtest, windows, season -----------------------------------------------------------
def test_metrics_by_hand():
    tr = np.array([1.0, 2.0, 4.0, 3.0, 5.0])
    assert mase(tr, [4.0, 6.0], [5.0, 5.0]) == pytest.approx(1.0 / ((1 + 2 + 1 + 2) / 4))
    assert mase(np.arange(10.0), [1.0], [1.5], m=4) == pytest.approx(0.5 / 4)
    assert smape([1.0, 0.0], [3.0, 0.0]) == pytest.approx(100.0 * (2 * 2 / 4 + 0) / 2)
    assert rmse([0.0, 0.0], [3.0, 4.0]) == pytest.approx(np.sqrt(12.5))
    assert coverage([1, 2, 3], [0, 2.5, 2], [1, 3, 4]) == pytest.approx(2 / 3)


def test_backtest_refits_at_expanding_origins():
    y = seasonal_series(100)
    res = backtest(LSTMForecaster(season_length=12, **FAST), y, horizon=6, n_windows=2)
    assert res["origins"] == [88, 94] and len(res["mase"]) == 2 and "mean_coverage" in res
    assert all(f.shape == (6,) for f in res["forecasts"])


def test_season_inference_and_test():
    y = seasonal_series(144, m=12)
    assert infer_season_length(y) == 12
    assert is_seasonal(y, 12) and not is_seasonal(np.random.default_rng(0).normal(size=144), 12)
    idx = seasonal_indices(y, 12)
    assert idx.shape == (12,) and abs(idx.sum()) < 1e-9 and idx[3] > 6 and idx[9] < -6


def test_seasonality_test_is_not_fooled_by_a_trend():
    # A trending random walk with drift, no season (seasonally adjusted GDP): a trend alone
    # makes the raw series' lag-m autocorrelation large; it must not be called seasonal.
    rng = np.random.default_rng(1)
    t = np.arange(200)
    gdp = 0.02 * t + np.cumsum(0.01 * rng.normal(size=200))
    assert not is_seasonal(gdp, 4) and not is_seasonal(gdp, 12)
    # Six years of a steeply trending monthly series with a clear season (AirPassengers'
    # first half): its trend hides the season from the raw autocorrelation, not from ours.
    air = 0.1 * t[:72] / 12 + 0.1 * np.sin(2 * np.pi * t[:72] / 12) + 0.02 * rng.normal(size=72)
    assert is_seasonal(air, 12) and not is_seasonal(air - 0.1 * np.sin(2 * np.pi * t[:72] / 12), 12)


def test_sliding_window():
    sw = SlidingWindow(lookback=4, horizon=2, stride=1)
    X, Y = sw.split(np.arange(10.0))
    assert X.shape == (5, 4, 1) and Y.shape == (5, 2)
    np.testing.assert_array_equal(X[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(Y[-1], [8, 9])
    W = sw.fit_transform([np.arange(6.0), np.arange(2.0)])
    np.testing.assert_array_equal(W[:, :, 0], [[2, 3, 4, 5], [0, 0, 0, 1]])
    with pytest.raises(ValueError, match="lookback"):
        SlidingWindow(lookback=0).fit([np.ones(3)])


def test_clone_and_pickle():
    est = LSTMForecaster(season_length=12, **FAST)
    assert clone(est).get_params() == est.get_params()
    y = seasonal_series()
    fitted = est.fit(y)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(5), fitted.predict(5))


# -- command line ------------------------------------------------------------------------------
def test_cli_forecast_end_to_end(tmp_path):
    pytest.importorskip("matplotlib")
    dates = np.arange(np.datetime64("2010-01"), np.datetime64("2018-01"), dtype="datetime64[M]")
    y = seasonal_series(len(dates))
    path = tmp_path / "data.csv"
    with open(path, "w") as f:
        f.write("date,sales\n")
        for d, v in zip(dates, y):
            f.write(f"{d}-01,{v:.3f}\n")
    png, out = tmp_path / "fc.png", tmp_path / "fc.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lstm_native",
            "forecast",
            str(path),
            "--column",
            "sales",
            "--time-column",
            "date",
            "--horizon",
            "6",
            "--n-ensemble",
            "2",
            "--plot",
            str(png),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "network 1/2" in proc.stderr  # progress while training
    lines = out.read_text().splitlines()
    assert lines[0] == "date,sales,lower_0.8,upper_0.8" and len(lines) == 7
    assert lines[1].startswith("2018-01-01,")
    assert os.path.getsize(png) > 10_000
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "lstm_native",
            "forecast",
            str(path),
            "--column",
            "nope",
            "--horizon",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "no column 'nope'" in bad.stderr


# -- trend and level ---------------------------------------------------------------------------
def test_drift_is_removed_and_restored_exactly():
    from lstm_native.forecasting._windows import SeriesScaler

    t = np.arange(30.0)
    y = np.c_[50 + 2.0 * t + np.sin(t), 3 - 0.5 * t + np.cos(t)]
    sc = SeriesScaler.fit(y, 1, "none", False, drift=True)
    # the drift is the mean change per step, in the scaled units
    np.testing.assert_allclose(sc.drift * sc.scale, (y[-1] - y[0]) / 29, rtol=1e-12)
    z = sc.normalize(y)
    assert abs(z[-1, 0] - z[0, 0]) < 1e-9  # detrended: the ends meet
    np.testing.assert_allclose(sc.denormalize(z, 0), y, rtol=1e-12, atol=1e-12)
    # forecasts of positions after the series get the trend back
    ahead = sc.denormalize(np.repeat(z[-1:], 3, axis=0), len(y))
    step = (y[-1, 0] - y[0, 0]) / 29
    np.testing.assert_allclose(ahead[:, 0] - y[-1, 0], [step, 2 * step, 3 * step], rtol=1e-9)


def test_a_short_trending_series_is_continued_with_drift():
    """18 points, as the airmiles series: too few windows to learn the trend from; with
    drift the forecast is at worst the random walk with drift, without it is flat."""
    t = np.arange(18.0)
    y = 100 * np.exp(0.15 * t) * (1 + 0.02 * np.sin(3 * t))
    fc = LSTMForecaster(drift=True, season_length=1, calibrate=False, **FAST).fit(y)
    growth = np.diff(np.log(np.r_[y[-1], fc.predict(6)]))
    assert np.all(growth > 0.08) and np.all(growth < 0.22)


@pytest.mark.parametrize("strategy", ["multi_output", "recursive"])
def test_mixed_drift_is_the_mean_of_a_forecast_without_and_one_with_drift(strategy):
    """drift="mixed": the even networks read the series, the odd ones the series less its
    drift; the forecast is the mean of the two kinds' medians. With one network of each
    kind and a linear normalization, that is the mean of the forecasts of a forecaster
    without drift holding network 0 and one with drift holding network 1."""
    import copy

    from lstm_native.forecasting._windows import SeriesScaler

    t = np.arange(40.0)
    y = 20 + 0.8 * t + np.sin(t) + 0.3 * np.cos(2.1 * t)
    kw = dict(FAST, transform="none", deseasonalize=False, level="last", strategy=strategy)
    kw["linear_weight"] = 0.0  # the networks only: the linear part is fitted per normalization
    fc = LSTMForecaster(drift="mixed", season_length=1, calibrate=False, **kw).fit(y)
    assert [fc._drifted(k) for k in range(2)] == [False, True]
    plain = copy.deepcopy(fc)
    plain.set_params(drift=False, n_ensemble=1)
    plain.members_ = fc.members_[:1]
    drifted = copy.deepcopy(fc)
    drifted.set_params(drift=True, n_ensemble=1)
    drifted.members_ = fc.members_[1:]
    drifted.scalers_ = [SeriesScaler.fit(y[:, None], 1, "none", False, None, True, "last")]
    drifted.z_ = [drifted.scalers_[0].normalize(y[:, None])]
    q = [0.1, 0.5, 0.9]
    both = (plain.predict(7, quantiles=q) + drifted.predict(7, quantiles=q)) / 2
    np.testing.assert_allclose(fc.predict(7, quantiles=q), both, rtol=1e-9, atol=1e-9)
    # and the drift is what separates them: the drifted network's forecast climbs faster
    assert np.mean(np.diff(drifted.predict(7))) > np.mean(np.diff(plain.predict(7))) - 1e-9


def test_smoothed_level_follows_a_noisy_level_and_a_random_walk():
    from lstm_native.forecasting._season import smoothed_level, smoothing_alpha

    rng = np.random.default_rng(1)
    z = rng.normal(size=7)
    a = 0.3
    expected = [z[0]]
    for v in z[1:]:
        expected.append(a * v + (1 - a) * expected[-1])
    np.testing.assert_allclose(smoothed_level(z, a), expected, rtol=1e-12)
    np.testing.assert_array_equal(smoothed_level(z, 1.0), z)
    noisy = 5 + rng.normal(size=400)  # white noise around a constant level: smooth a lot
    walk = np.cumsum(rng.normal(size=400))  # a random walk: the last value is the best level
    assert smoothing_alpha(noisy) <= 0.2 and smoothing_alpha(walk) >= 0.9
    fc = LSTMForecaster(level="smoothed", season_length=1, calibrate=False, **FAST).fit(noisy)
    assert fc.scalers_[0].alpha[0] <= 0.2
    # the forecast stays near the level (5), not at the last noisy value
    assert abs(float(np.mean(fc.predict(4))) - 5.0) < 0.6


def test_drift_and_level_are_checked():
    with pytest.raises(ValueError, match="drift must be True, False, 'auto' or 'mixed'"):
        LSTMForecaster(drift="yes").fit(seasonal_series())
    with pytest.raises(ValueError, match="level must be 'last' or 'smoothed'"):
        LSTMForecaster(level="mean").fit(seasonal_series())


# -- the ensemble's networks side by side (forecasting/_ensemble.py) -------------------------
def test_networks_trained_side_by_side_give_the_same_forecast():
    """n_jobs=2 trains two networks at a time; each network's result does not depend on
    that, so the forecasts, intervals and calibration equal those of n_jobs=1 bit for bit,
    and the fitted networks keep their own n_jobs and callbacks."""
    y = seasonal_series(100, seed=3)
    kw = dict(FAST, n_ensemble=3)
    one = LSTMForecaster(season_length=12, n_jobs=1, **kw).fit(y)
    two = LSTMForecaster(season_length=12, n_jobs=2, **kw).fit(y)
    np.testing.assert_array_equal(
        one.predict(9, quantiles=[0.1, 0.5, 0.9]), two.predict(9, quantiles=[0.1, 0.5, 0.9])
    )
    assert one.interval_margins_ == two.interval_margins_
    for (L1, a), (L2, b) in zip(one.members_, two.members_):
        assert L1 == L2 and a.n_iter_ == b.n_iter_
        np.testing.assert_array_equal(a.params_, b.params_)
        assert b.get_params()["n_jobs"] == two.n_jobs and b.get_params()["callbacks"] is None
    pickle.loads(pickle.dumps(two))  # nothing unpicklable (a threading.Event) is left behind


def test_networks_train_at_the_same_time(monkeypatch):
    """With n_jobs=2 two networks are inside fit at once (the core releases the GIL)."""
    import threading
    import time

    intervals = []
    lock = threading.Lock()
    real_fit = LSTMRegressor.fit

    def timed_fit(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = real_fit(self, *args, **kwargs)
        with lock:
            intervals.append((t0, time.perf_counter()))
        return out

    monkeypatch.setattr(LSTMRegressor, "fit", timed_fit)
    y = seasonal_series(100, seed=4)
    LSTMForecaster(season_length=12, n_jobs=2, calibrate=False, **FAST).fit(y)
    (s1, e1), (s2, e2) = sorted(intervals)
    assert s2 < e1, "the second network only started after the first had finished"


def test_an_error_in_one_network_stops_the_others(monkeypatch):
    """One network's fit fails: the error comes out of LSTMForecaster.fit, the networks not
    started are not trained and the running ones stop at the end of their epoch."""
    import threading

    started, stopped_early = [], []
    real_fit = LSTMRegressor.fit
    lock = threading.Lock()

    def fit(self, X, y, **kwargs):
        with lock:
            k = len(started)
            started.append(k)
        if k == 1:
            raise RuntimeError("network 1 failed")
        # without the stop, 5000 epochs (no early stopping): seconds, not one epoch
        self.set_params(early_stopping=False, n_iter_no_change=10**6)
        out = real_fit(self, X, y, **kwargs)
        stopped_early.append(self.n_iter_ < self.max_iter)
        return out

    monkeypatch.setattr(LSTMRegressor, "fit", fit)
    y = seasonal_series(100, seed=5)
    kw = dict(FAST, n_ensemble=6, max_iter=5000)
    with pytest.raises(RuntimeError, match="network 1 failed"):
        LSTMForecaster(season_length=12, n_jobs=2, calibrate=False, **kw).fit(y)
    assert len(started) < 6  # the networks after the failure were never started
    assert stopped_early and all(stopped_early), (started, stopped_early)


def test_verbose_lines_stay_whole_with_networks_side_by_side(capsys):
    """verbose=1 with two networks training at once: one whole line per network."""
    import re

    y = seasonal_series(100, seed=6)
    kw = dict(FAST, n_ensemble=4)
    LSTMForecaster(season_length=12, n_jobs=2, calibrate=False, verbose=1, **kw).fit(y)
    lines = capsys.readouterr().err.splitlines()
    pattern = r"network [1-4]/4: lookback \d+, \d+ windows, \d+ epochs, loss \S+, [\d.]+ s"
    assert len(lines) == 4 and all(re.fullmatch(pattern, ln) for ln in lines), lines
    assert sorted(ln.split("/")[0] for ln in lines) == [f"network {k}" for k in range(1, 5)]
