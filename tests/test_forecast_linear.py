"""The forecaster's linear part (forecasting/_linear.py): the KPSS test, the ARIMA(p, d, 0)
it chooses and forecasts with, and how LSTMForecaster's ``linear_weight`` mixes it in."""

import numpy as np
import pytest

from lstm_native import LSTMForecaster
from lstm_native.forecasting._linear import KPSS_CRITICAL_5, auto_ar, kpss_statistic, robust_mean

FAST = dict(n_ensemble=2, max_iter=30, hidden_size=8, num_layers=1, random_state=0)


def _ar2(n, seed, phi=(1.2, -0.6), c=0.5, sd=1.0):
    """x_t = c + phi_1 x_{t-1} + phi_2 x_{t-2} + e_t (a damped cycle of period ~ 10)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n + 100)
    for t in range(2, len(x)):
        x[t] = c + phi[0] * x[t - 1] + phi[1] * x[t - 2] + rng.normal(0, sd)
    return x[100:]


def _ar2_forecast(x, h, phi=(1.2, -0.6), c=0.5):
    hist = list(x[-2:])
    for _ in range(h):
        hist.append(c + phi[0] * hist[-1] + phi[1] * hist[-2])
    return np.array(hist[2:])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kpss_tells_a_stationary_series_from_a_random_walk(seed):
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=300)
    assert kpss_statistic(noise) < KPSS_CRITICAL_5
    assert kpss_statistic(_ar2(300, seed)) < KPSS_CRITICAL_5  # autocorrelated, stationary
    assert kpss_statistic(np.cumsum(noise)) > KPSS_CRITICAL_5
    assert kpss_statistic(np.full(50, 3.0)) == 0.0


def test_kpss_statistic_by_its_definition():
    """eta = sum S_t^2 / (n^2 lrv), lrv with a Bartlett window of trunc(4 (n/100)^0.25) lags,
    written out for n = 37 (3 lags)."""
    x = np.random.default_rng(5).normal(size=37).cumsum()
    e = x - x.mean()
    n = len(x)
    g = [e @ e / n] + [e[k:] @ e[:-k] / n for k in (1, 2, 3)]
    lrv = g[0] + 2 * (3 / 4) * g[1] + 2 * (2 / 4) * g[2] + 2 * (1 / 4) * g[3]
    assert kpss_statistic(x) == pytest.approx(np.sum(np.cumsum(e) ** 2) / (n * n * lrv), 1e-12)


def test_auto_ar_forecasts_a_cycle_as_the_true_model_does():
    """An AR(2) cycle, 10 draws: the forecast is close to the true model's conditional mean,
    much closer than the mean or the last value (what a model without the cycle gives). Not
    on every draw: KPSS at 5 % calls some strongly autocorrelated stationary draws
    non-stationary (as auto.arima's would), and the model is then fitted to the differences."""
    err, of_mean, of_last = [], [], []
    for seed in range(10):
        x = _ar2(400, seed)
        truth = _ar2_forecast(x, 12)
        err.append(np.max(np.abs(auto_ar(x, 12) - truth)))
        of_mean.append(np.max(np.abs(truth - x.mean())))
        of_last.append(np.max(np.abs(truth - x[-1])))
    assert sum(e < 0.5 for e in err) >= 7  # the noise's sd is 1
    assert np.mean(err) < 0.5 * np.mean(of_mean)
    assert np.mean(err) < 0.3 * np.mean(of_last)


def test_auto_ar_differences_a_trending_series_and_keeps_its_drift():
    rng = np.random.default_rng(3)
    x = np.cumsum(0.5 + rng.normal(0, 0.2, 200))  # a random walk with drift 0.5
    assert kpss_statistic(x) > KPSS_CRITICAL_5
    f = auto_ar(x, 10)
    np.testing.assert_allclose(np.diff(np.r_[x[-1], f]), 0.5, atol=0.1)


def test_a_start_up_jump_does_not_set_the_drift():
    """M1's T48 in logs: a first difference of ~7 and the rest near 0.2. Least squares would
    make the drift their plain mean (~0.6 a step); the robust mean keeps it near 0.2."""
    rng = np.random.default_rng(8)
    for _ in range(10):
        steps = 0.2 + rng.normal(0, 0.08, 18)
        steps[0] = 7.0  # the jump from the series' first value
        x = np.log(5.0) + np.r_[0.0, np.cumsum(steps)]
        assert kpss_statistic(x) > KPSS_CRITICAL_5
        slope = (auto_ar(x, 6)[-1] - x[-1]) / 6
        assert abs(slope - 0.2) < 0.1, slope
        plain = np.mean(np.diff(x))
        assert plain > 0.5  # what the plain mean would have extrapolated


def test_robust_mean_clips_at_three_robust_deviations():
    w = np.array([0.1, 0.2, 0.3, 0.2, 0.1, 0.2, 9.0])
    med = 0.2
    spread = 1.4826 * np.median(np.abs(w - med))
    want = np.mean(np.clip(w, med - 3 * spread, med + 3 * spread))
    assert robust_mean(w) == pytest.approx(want, rel=1e-12)
    assert robust_mean(w) < 0.35 < np.mean(w)
    assert robust_mean(np.array([0.5, 0.5, 0.5, 2.0])) == pytest.approx(0.875)  # MAD 0: the mean


def test_auto_ar_of_noise_is_its_mean_and_of_a_constant_the_constant():
    x = 7.0 + np.random.default_rng(4).normal(0, 1, 300)
    np.testing.assert_allclose(auto_ar(x, 5), x.mean(), atol=0.15)
    np.testing.assert_allclose(auto_ar(np.full(30, 2.5), 4), 2.5, rtol=1e-12)
    for n in (3, 4, 5, 9):  # the shortest series still give finite forecasts of the length
        f = auto_ar(np.arange(n, dtype=float) ** 1.5, 6)
        assert f.shape == (6,) and np.all(np.isfinite(f))


def test_auto_ar_never_explodes():
    """Models whose AR part is not stationary are never chosen, so the forecast of a series
    stays within a few times its range however far ahead."""
    rng = np.random.default_rng(6)
    for _ in range(20):
        x = np.cumsum(rng.normal(size=int(rng.integers(12, 80))))
        f = auto_ar(x, 200)
        span = np.ptp(x) + 1.0
        assert np.all(np.isfinite(f))
        assert np.max(np.abs(f - x[-1])) < 20 * span


def _series():
    t = np.arange(60.0)
    noise = np.random.default_rng(0).normal(0, 0.5, 60)
    return 30 + 4 * np.sin(2 * np.pi * t / 9) + 0.2 * t + noise


def test_linear_weight_moves_the_median_to_the_linear_forecast_and_the_levels_with_it():
    """With a linear normalization (no log, no season), the median with weight w is
    (1 - w) (the networks' median) + w (the linear model's forecast of the normalized series,
    scaled back), and every other level keeps its distance from the median."""
    y = _series()
    kw = dict(FAST, season_length=1, transform="none", deseasonalize=False, calibrate=False)
    q = [0.1, 0.5, 0.9]
    f = {
        w: LSTMForecaster(linear_weight=w, **kw).fit(y).predict(8, quantiles=q) for w in (0, 0.3, 1)
    }
    fc = LSTMForecaster(linear_weight=1.0, **kw).fit(y)
    scale = fc.scalers_[0].scale[0]
    np.testing.assert_allclose(f[1][:, 1], auto_ar(y / scale, 8) * scale, rtol=1e-10)
    np.testing.assert_allclose(f[0.3][:, 1], 0.7 * f[0][:, 1] + 0.3 * f[1][:, 1], rtol=1e-10)
    for w in (0.3, 1):
        np.testing.assert_allclose(f[w] - f[w][:, 1:2], f[0] - f[0][:, 1:2], atol=1e-9)
    assert np.max(np.abs(f[1][:, 1] - f[0][:, 1])) > 1e-3  # the two parts do differ


def test_linear_weight_auto_is_a_half_without_covariates_and_zero_with_them():
    y = _series()
    kw = dict(FAST, season_length=1, calibrate=False)
    auto = LSTMForecaster(**kw).fit(y).predict(6)
    np.testing.assert_allclose(auto, LSTMForecaster(linear_weight=0.5, **kw).fit(y).predict(6))
    X = np.sin(np.arange(60.0))[:, None]
    fut = np.sin(np.arange(60.0, 66.0))[:, None]
    with_x = LSTMForecaster(**kw).fit(y, X).predict(6, X_future=fut)
    np.testing.assert_allclose(
        with_x, LSTMForecaster(linear_weight=0.0, **kw).fit(y, X).predict(6, X_future=fut)
    )


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), True, "half", None, [0.5]])
def test_linear_weight_is_checked(bad):
    with pytest.raises(ValueError, match="linear_weight"):
        LSTMForecaster(linear_weight=bad).fit(_series())


def test_linear_weight_is_saved(tmp_path):
    y = _series()
    fc = LSTMForecaster(linear_weight=0.3, season_length=1, calibrate=False, **FAST).fit(y)
    fc.save(tmp_path / "f.npz")
    back = LSTMForecaster.load(tmp_path / "f.npz")
    assert back.linear_weight == 0.3
    np.testing.assert_array_equal(back.predict(5), fc.predict(5))
