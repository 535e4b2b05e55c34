"""What LSTMForecaster, backtest, SlidingWindow and the CLI do with input a user gets wrong, or
gets right in a form the first version misread: every case here was a silent wrong answer or an
unhelpful error found by a hostile test of the forecasting API (misaligned covariates, dates
read by position, lost channels, gaps and duplicates taken as consecutive steps, wrong future
dates, wrong season lengths, unloadable files)."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

from lstm_native import LSTMForecaster, load
from lstm_native.forecasting import SlidingWindow, backtest
from lstm_native.forecasting._cli import (
    Spacing,
    _show,
    future_dates,
    infer_spacing,
    parse_date,
    read_csv,
)
from lstm_native.forecasting._season import acf, infer_season_length, season_from_freq

pd = pytest.importorskip("pandas")

# small and fast: what is tested is the reading and formatting, not the forecast's quality
TINY = dict(n_ensemble=1, max_iter=5, hidden_size=8, num_layers=1, calibrate=False, n_jobs=1)


def walk(n=120, seed=0):
    return 100 + np.cumsum(np.random.default_rng(seed).normal(size=n))


def long_frame(lengths=(("a", 60), ("b", 45)), freq="MS"):
    y = walk()
    return pd.concat(
        [
            pd.DataFrame(
                {"unique_id": key, "ds": pd.date_range("2000-01-01", periods=n, freq=freq)}
            ).assign(y=y[:n])
            for key, n in lengths
        ],
        ignore_index=True,
    )


def fitted(y, X=None, **kw):
    return LSTMForecaster(**{**TINY, "random_state": 0, **kw}).fit(y, X)


# -- long DataFrames: one row per (series, time), consecutive times --------------------------
def test_long_frame_rows_that_are_not_one_per_consecutive_time_are_refused():
    df = long_frame()
    cases = {
        "more than one row for series 'a'": pd.concat([df, df.iloc[[5]]]),
        "rows without a time": df.assign(ds=df["ds"].where(df.index != 7)),
        "rows without a series id": df.assign(unique_id=df["unique_id"].where(df.index != 3)),
        # a gap in the longest series, and in a shorter one
        r"series 'a' are not regular \(MS\): 2000-10-01 00:00:00 is followed by 2001-02-01": (
            df.drop(index=[10, 11, 12])
        ),
        r"series 'b' are not regular \(MS\): 2000-10-01 00:00:00 is followed by 2001-02-01": (
            df.drop(index=[70, 71, 72])
        ),
    }
    for message, bad in cases.items():
        with pytest.raises(ValueError, match=message):
            fitted(bad)


def test_long_frame_without_its_id_column_names_it():
    df = long_frame((("a", 40),)).drop(columns="unique_id")
    with pytest.raises(ValueError, match="no id column 'unique_id'"):
        fitted(df)


def test_categorical_ids_with_an_unused_category_fit():
    df = long_frame()
    df["unique_id"] = pd.Categorical(df["unique_id"], categories=["a", "b", "unused"])
    out = fitted(df).predict(2)
    assert list(out["unique_id"]) == ["a", "a", "b", "b"]


def test_duplicate_covariate_rows_are_refused_not_misaligned():
    df = long_frame()
    X = df[["unique_id", "ds"]].assign(x=np.arange(len(df), dtype=float))
    with pytest.raises(ValueError, match="X has more than one row for series 'a'"):
        fitted(df, pd.concat([X, X.iloc[[3]]]))


def test_long_frame_future_covariates_are_read_by_date():
    df = long_frame()
    X = df[["unique_id", "ds"]].assign(x=np.sin(np.arange(len(df))))
    fc = fitted(df, X)
    fut = pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_id": key,
                    "ds": pd.date_range(start, periods=3, freq="MS"),
                    "x": [0.5, -1.0, 2.0],
                }
            )
            for key, start in (("a", "2005-01-01"), ("b", "2003-10-01"))
        ]
    )
    want = fc.predict(3, fut)
    assert list(want["ds"][:3]) == list(pd.date_range("2005-01-01", periods=3, freq="MS"))
    # the history before the future (as a user keeps one covariate table): the same forecast
    pd.testing.assert_frame_equal(fc.predict(3, pd.concat([X, fut])), want)
    # the right values at the wrong dates: refused, not used by position
    late = fut.assign(ds=fut["ds"] + pd.DateOffset(years=10))
    with pytest.raises(ValueError, match="must hold the times 2005-01-01"):
        fc.predict(3, late)
    with pytest.raises(ValueError, match="X_future has no column 'x'"):
        fc.predict(3, fut.rename(columns={"x": "w"}))


# -- dates of the forecast --------------------------------------------------------------------
def test_each_series_of_a_panel_continues_at_its_own_anchor():
    ends = long_frame((("a", 60),), "MS")
    b = long_frame((("b", 48),), "ME").assign(unique_id="b")
    out = fitted(pd.concat([ends, b], ignore_index=True)).predict(2)
    got = out.groupby("unique_id")["ds"].apply(list).to_dict()
    assert got["a"] == list(pd.to_datetime(["2005-01-01", "2005-02-01"]))
    assert got["b"] == list(pd.to_datetime(["2004-01-31", "2004-02-29"]))  # not 02-01, 03-01
    sun = long_frame((("a", 60),), "W-SUN")
    wed = long_frame((("b", 40),), "W-WED").assign(unique_id="b")
    out = fitted(pd.concat([sun, wed], ignore_index=True)).predict(2)
    b_dates = list(out[out["unique_id"] == "b"]["ds"])
    last = wed["ds"].iloc[-1]
    assert b_dates == [last + pd.Timedelta(days=7), last + pd.Timedelta(days=14)]


def test_a_series_index_out_of_order_or_repeated_is_refused():
    y = pd.Series(walk(60), index=pd.date_range("2000-01-01", periods=60, freq="MS"))
    with pytest.raises(ValueError, match="not in increasing time order"):
        fitted(y[::-1])
    with pytest.raises(ValueError, match="more than once"):
        fitted(pd.concat([y[:30], y[29:]]))
    periods = pd.Series(walk(60), index=pd.period_range("2000-01", periods=60, freq="M"))
    with pytest.raises(ValueError, match="not in increasing time order"):
        fitted(periods[::-1])


@pytest.mark.parametrize(
    "freq, season",
    [
        ("MS", 12),
        ("ME", 12),
        ("BME", 12),
        ("BMS", 12),
        ("WOM-1MON", 12),
        ("SME", 24),
        ("QS-OCT", 4),
        ("BQE", 4),
        ("YE", 1),
        ("BYE", 1),
        ("3MS", 4),
        ("12MS", 1),
        ("W-SUN", 52),
        ("2W", 26),
        ("D", 7),
        ("B", 5),
        ("h", 24),
        ("2h", 12),
        ("15min", 4),
        ("2D", None),  # a week is not whole steps of 2 days: the autocorrelation decides
    ],
)
def test_season_length_from_a_pandas_frequency(freq, season):
    assert season_from_freq(freq) == season
    assert season_from_freq(pd.tseries.frequencies.to_offset(freq)) == season


def test_season_inference_does_not_overflow_on_huge_values():
    t = np.arange(120)
    y = 10 + np.sin(2 * np.pi * t / 12) + 0.01 * t
    assert infer_season_length(y) == 12
    assert infer_season_length(y * 1e155) == 12  # z @ z would overflow to inf
    r = np.random.default_rng(0).normal(size=50)
    np.testing.assert_array_equal(acf(r, 5), acf(r * 2.0**600, 5))  # scaled by powers of 2


# -- output forms -----------------------------------------------------------------------------
def test_a_list_of_multivariate_series_keeps_its_channels():
    y = walk()
    fc = fitted([np.c_[y[:60], -y[:60]], np.c_[y[20:], 2 * y[20:]]])
    assert [p.shape for p in fc.predict(4)] == [(4, 2), (4, 2)]
    assert [p.shape for p in fc.predict(4, quantiles=[0.1, 0.9])] == [(4, 2, 2), (4, 2, 2)]
    univariate = fitted([y[:60], y[20:]])
    assert [p.shape for p in univariate.predict(4)] == [(4,), (4,)]


def test_quantiles_of_a_dated_series_are_dated_columns():
    y = pd.Series(walk(60), index=pd.date_range("2000-01-01", periods=60, freq="MS"), name="v")
    fc = fitted(y)
    q = fc.predict(2, quantiles=np.float32([0.1, 0.9]))  # float32 levels are the trained ones
    assert list(q.columns) == ["v_q0.1", "v_q0.9"]
    assert list(q.index) == list(pd.date_range("2005-01-01", periods=2, freq="MS"))
    np.testing.assert_array_equal(q.to_numpy(), fc.predict(2, quantiles=[0.1, 0.9]).to_numpy())


def test_bad_quantile_and_coverage_requests_name_the_problem():
    fc = fitted(walk(60))
    bad = {
        "a sequence of levels": 0.1,
        "quantiles is empty": [],
        "more than once": [0.1, 0.1],
        "must lie in": [1.5],
        "were not trained": [0.2],
    }
    for message, quantiles in bad.items():
        with pytest.raises(ValueError, match=message):
            fc.predict(2, quantiles=quantiles)
    for message, cov in {"must lie in": 1.2, "must be a number": "0.8"}.items():
        with pytest.raises(ValueError, match=f"coverage {message}"):
            fc.predict_interval(2, coverage=cov)
    lo, hi = fc.predict_interval(2, coverage=np.float32(0.8))
    assert np.all(lo <= hi)


def test_an_overflowing_forecast_warns():
    fc = fitted(np.exp(0.5 * np.arange(100.0)))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = fc.predict(3000)
    assert not np.isfinite(out).all()
    messages = [str(w.message) for w in seen if w.category is RuntimeWarning]
    assert any("is not finite: it overflowed" in m for m in messages)
    assert not any("overflow encountered" in m for m in messages)  # numpy's own, silenced
    assert seen and seen[-1].filename == __file__  # points at the caller


# -- covariates of one series -----------------------------------------------------------------
def test_covariate_columns_are_matched_by_name_and_dates_by_index(tmp_path):
    idx = pd.date_range("2000-01-01", periods=80, freq="MS")
    y = pd.Series(walk(80), index=idx)
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(80, 2)), columns=["price", "promo"], index=idx)
    fut = pd.DataFrame(rng.normal(size=(3, 2)), columns=["price", "promo"])
    fc = fitted(y, X)
    want = fc.predict(3, fut)
    pd.testing.assert_series_equal(fc.predict(3, fut[["promo", "price"]]), want)
    np.testing.assert_array_equal(fc.predict(3, fut.to_numpy()).to_numpy(), want.to_numpy())
    with pytest.raises(ValueError, match="X_future has no column 'promo'"):
        fc.predict(3, fut.rename(columns={"promo": "discount"}))
    with pytest.raises(ValueError, match="X's time index is not y's"):
        fitted(y, X.set_axis(idx - pd.DateOffset(years=10)))
    path = tmp_path / "cov.npz"
    fc.save(path)
    pd.testing.assert_series_equal(load(path).predict(3, fut[["promo", "price"]]), want)


# -- fitting and saving -----------------------------------------------------------------------
def test_calibration_leaves_out_what_is_too_short_to_hold_out():
    fc = fitted(np.array([1.0, 2.0, 3.0]), calibrate=True)  # the documented minimum
    assert fc.interval_margins_ == [0.0, 0.0, 0.0]
    y = walk()
    panel = fitted([y[:3], y[:60], y[30:90]], calibrate=True)  # a 3-point series among others
    assert np.isfinite(panel.interval_margins_).all()


def test_save_after_set_params_says_why_instead_of_writing_an_unloadable_file(tmp_path):
    fc = fitted(walk(60))
    fc.set_params(horizon=fc.horizon_ + 3)
    with pytest.raises(ValueError, match="no longer match its fit .*horizon"):
        fc.save(tmp_path / "f.npz")
    assert not (tmp_path / "f.npz").exists()
    fc.set_params(quantiles=(0.05, 0.95), horizon=None)
    with pytest.raises(ValueError, match="no longer match its fit .*quantile_levels_"):
        fc.save(tmp_path / "f.npz")
    fc.set_params(quantiles=(0.1, 0.5, 0.9), loss="absolute_error")
    with pytest.raises(ValueError, match="no longer match its fit"):
        fc.save(tmp_path / "f.npz")
    fc.set_params(loss="quantile", verbose=1)  # back, and a parameter the fit does not fix
    fc.save(tmp_path / "f.npz")
    np.testing.assert_array_equal(load(tmp_path / "f.npz").predict(3), fc.predict(3))


# -- backtest and SlidingWindow ---------------------------------------------------------------
def test_backtest_and_sliding_window_arguments_are_checked():
    y = walk(60)
    for step in (0, -6, 1.5):
        with pytest.raises(ValueError, match="step must be a positive integer"):
            backtest(LSTMForecaster(**TINY), y, 6, 2, step=step)
    with pytest.raises(ValueError, match="needs the quantile levels 0.25 and 0.75"):
        backtest(LSTMForecaster(**TINY), y, 6, 1, coverage_level=0.5)
    point = backtest(LSTMForecaster(**TINY, loss="squared_error"), y, 6, 1)
    assert "coverage" not in point and len(point["mase"]) == 1  # no levels: no coverage
    sw = SlidingWindow(5, 2)
    with pytest.raises(ValueError, match="y contains NaN"):
        sw.split(np.r_[np.nan, y])
    with pytest.raises(ValueError, match="X has 50 rows, expected 60"):
        sw.split(y, np.ones((50, 3)))
    with pytest.raises(ValueError, match="no series"):
        sw.transform([])


# -- the command line's dates -----------------------------------------------------------------
def test_cli_forecast_dates_keep_the_day_of_the_month():
    def dates(last, months=0, seconds=0, business=False):
        sp = Spacing("test", 1, months=months, seconds=seconds, business=business)
        return [_show(d, sp) for d in future_dates(np.datetime64(last), sp, 3)]

    assert dates("2003-04-30", 1) == ["2003-05-31", "2003-06-30", "2003-07-31"]
    assert dates("2003-01-01", 1) == ["2003-02-01", "2003-03-01", "2003-04-01"]
    assert dates("2003-01-30", 1) == ["2003-02-28", "2003-03-30", "2003-04-30"]
    assert dates("2003-12-31", 3) == ["2004-03-31", "2004-06-30", "2004-09-30"]
    assert dates("2003-07-01", 12) == ["2004-07-01", "2005-07-01", "2006-07-01"]
    assert dates("2003-01-01", seconds=7 * 86400) == ["2003-01-08", "2003-01-15", "2003-01-22"]
    assert dates("2003-01-01T22:00", seconds=3600) == [
        "2003-01-01T23:00:00",
        "2003-01-02T00:00:00",
        "2003-01-02T01:00:00",
    ]
    assert dates("2020-12-04", business=True) == ["2020-12-07", "2020-12-08", "2020-12-09"]


def _spacing_of(*texts):
    return infer_spacing([np.array([parse_date(t) for t in texts])])


def test_cli_infers_the_spacing_and_refuses_irregular_dates():
    assert _spacing_of("2020-01-31", "2020-02-29", "2020-03-31").months == 1
    assert _spacing_of("2020-01-01", "2020-04-01", "2020-07-01").season == 4
    assert _spacing_of("2020-01-01", "2020-01-15", "2020-01-29").season == 26  # fortnights
    hourly = _spacing_of("2020-01-01T00:00", "2020-01-01T01:00", "2020-01-01T02:00")
    assert (hourly.seconds, hourly.season) == (3600, 24)
    quarter_hours = _spacing_of("2020-01-01T00:00", "2020-01-01T00:15", "2020-01-01T00:30")
    assert quarter_hours.season == 96
    weekdays = _spacing_of("2020-12-03", "2020-12-04", "2020-12-07", "2020-12-08")
    assert weekdays.business and weekdays.season == 5
    with pytest.raises(ValueError, match="2020-06-01 is followed by 2020-12-01"):
        _spacing_of("2020-04-01", "2020-05-01", "2020-06-01", "2020-12-01", "2021-01-01")
    with pytest.raises(ValueError, match="2020-12-03 is followed by 2020-12-06"):
        _spacing_of("2020-12-01", "2020-12-02", "2020-12-03", "2020-12-06", "2020-12-07")
    # the local calendar date, not numpy's UTC conversion; not YYYYMMDD as a year
    assert _show(parse_date("2020-12-01T00:00:00+02:00")) == "2020-12-01"
    assert _show(parse_date("1949")) == "1949-01-01"
    for bad in ("20201201", "", "NaT", "01/02/2020", "2020-13-01"):
        with pytest.raises(ValueError):
            parse_date(bad)


def _csv(tmp_path, text):
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


def test_cli_reading_refuses_blank_and_repeated_dates(tmp_path):
    blank = _csv(tmp_path, "date,y\n2020-01-01,1\n,2\n2020-03-01,3\n")
    with pytest.raises(ValueError, match="line 3: date='' is not an ISO date"):
        read_csv(blank, "y", "date", None)
    twice = _csv(tmp_path, "id,date,y\na,2020-01-01,1\nb,2020-01-01,2\na,2020-02-01,3\n")
    with pytest.raises(ValueError, match="lines 2 and 3: the date 2020-01-01 appears twice.*--id"):
        read_csv(twice, "y", "date", None)
    ids, values, dates = read_csv(twice, "y", "date", "id")
    assert ids == ["a", "b"] and [len(v) for v in values] == [2, 1]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("date,y\n2020-01-01,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin.csv is not UTF-8 text"):
        read_csv(str(latin), "y", "date", None)


def test_cli_checks_where_it_writes_before_fitting(tmp_path):
    data = _csv(tmp_path, "y\n" + "\n".join(str(v) for v in walk(30)) + "\n")
    base = [sys.executable, "-m", "lstm_native", "forecast", data, "--column", "y"]
    for extra, message in (
        (["--out", str(tmp_path / "nodir" / "o.csv")], "does not exist"),
        (["--plot", str(tmp_path / "p.xyz")], "the suffix chooses the image format"),
        (["--out", str(tmp_path)], "is a folder"),
    ):
        proc = subprocess.run(
            [*base, "--horizon", "3", *extra], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Fitting" not in proc.stderr  # refused before the fit
    quiet = subprocess.run(
        [*base, "--horizon", "2", "--n-ensemble", "1", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


# -- a fitted forecaster is its fit -----------------------------------------------------------
def test_recursive_rollout_carries_a_trend_forward():
    """The one-step network is trained on the windows a rollout feeds it (the history and
    then its own outputs, relative to the history's level): on a straight line the recursive
    forecast climbs with it (it came out flat when the windows were re-centred per step)."""
    y = 10.0 + np.arange(100.0)
    fc = fitted(
        y,
        season_length=1,
        lookback=8,
        horizon=4,
        strategy="recursive",
        linear_weight=0.0,
        transform="none",
        deseasonalize=False,
        hidden_size=16,
        max_iter=20,
        learning_rate_init=0.05,
    )
    steps = np.diff(np.r_[y[-1], fc.predict(4)])
    assert np.all((steps > 0.5) & (steps < 1.5)), steps


def test_growing_windows_are_what_a_rollout_reads():
    from lstm_native.forecasting._windows import growing_windows

    z = np.arange(10.0)[:, None] ** 2
    xs, ys = growing_windows(z, None, 3, 2)
    # origin 3: z[0:3] and z[0:4] relative to z[2], targets z[3] and z[4] (relative to z[2])
    np.testing.assert_array_equal(xs[0][:, 0], [0 - 4, 1 - 4, 4 - 4])
    np.testing.assert_array_equal(xs[1][:, 0], [0 - 4, 1 - 4, 4 - 4, 9 - 4])
    np.testing.assert_array_equal(ys[:2, 0], [9 - 4, 16 - 4])
    assert len(xs) == 2 * 6 + 1  # origins 3..8 give two windows, origin 9 one


def test_set_params_after_fit_changes_the_next_fit_only(tmp_path):
    y = 50 + np.sin(np.arange(80.0) / 2) * 5 + np.arange(80.0) / 4
    fc = fitted(y, calibrate=False, n_ensemble=2, drift="mixed", linear_weight=0.5)
    want, want_y = fc.predict(4), fc.predict(4, y=y[:70])
    for change in (
        {"drift": False},
        {"linear_weight": 0.0},
        {"deseasonalize": False},
        {"transform": "log"},
        {"level": "last"},
        {"loss": "squared_error"},
    ):
        probe = pickle.loads(pickle.dumps(fc)).set_params(**change)
        np.testing.assert_array_equal(probe.predict(4), want)
        np.testing.assert_array_equal(probe.predict(4, y=y[:70]), want_y)
        with pytest.raises(ValueError, match="no longer match its fit"):
            probe.save(tmp_path / "f.npz")


def test_forecaster_messages_for_what_the_fit_cannot_give():
    point = fitted(walk(60), loss="squared_error")
    with pytest.raises(ValueError, match="median only; quantiles and intervals need loss="):
        point.predict_interval(3)
    with pytest.raises(
        ValueError,
        match=r"horizon 1000 steps \(the longest has 100; horizon=None is 2 x season_length",
    ):
        fitted(walk(100), season_length=500, strategy="multi_output")
