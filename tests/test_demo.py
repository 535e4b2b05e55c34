"""`python -m lstm_native demo`: the airline passengers forecast, and the shipped data set."""

import io
import re
import subprocess
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest

from lstm_native import load_airline_passengers
from lstm_native.__main__ import _demo_networks, build_parser, main, run_demo

ROW = re.compile(r"^(?P<name>.+?)\s+(?P<mase>\d+\.\d\d)\s+(?P<rmse>\d+\.\d)$")


def parse_table(text):
    rows = {}
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            rows[m["name"]] = (float(m["mase"]), float(m["rmse"]))
    return rows


def test_airline_passengers_data():
    y, dates = load_airline_passengers(return_dates=True)
    assert y.shape == (144,) and y.dtype == np.float64
    np.testing.assert_array_equal(
        y[:12], [112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118]
    )
    np.testing.assert_array_equal(
        y[-12:], [417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432]
    )
    # well-known summaries of R's AirPassengers: yearly totals, mean, median, quartiles
    np.testing.assert_array_equal(
        y.reshape(12, 12).sum(1),
        [1520, 1676, 2042, 2364, 2700, 2867, 3408, 3939, 4421, 4572, 5140, 5714],
    )
    assert y.sum() == 40363 and np.median(y) == 265.5
    assert (y.min(), y.max()) == (104, 622)
    np.testing.assert_array_equal(np.percentile(y, [25, 75]), [180.0, 360.5])
    assert str(dates[0]) == "1949-01" and str(dates[-1]) == "1960-12"


def test_demo_prints_table_and_beats_the_baselines(tmp_path):
    out = io.StringIO()
    png = tmp_path / "demo.png"
    with redirect_stdout(out):
        assert main(["demo", "--quick", "--figure", str(png)]) == 0
    text = out.getvalue()
    assert "forecast: the next 24 months" in text and "Fit time:" in text
    rows = parse_table(text)
    assert set(rows) == {"LSTMForecaster", "last value", "seasonal naive", "drift"}
    # a 24-month forecast from the end of 1958 beats every naive baseline (MASE and RMSE)
    for name in ("last value", "seasonal naive", "drift"):
        assert (
            rows["LSTMForecaster"][0] < rows[name][0] and rows["LSTMForecaster"][1] < rows[name][1]
        )
    # the baselines do not depend on the network
    assert rows["seasonal naive"] == (2.49, 77.0)
    assert png.stat().st_size > 10_000


def test_run_demo_returns_numbers():
    res = run_demo(n_ensemble=2, out=io.StringIO())
    assert res["mase"]["LSTMForecaster"] < res["mase"]["seasonal naive"]
    assert 0.0 <= res["coverage"] <= 1.0 and res["fit_seconds"] > 0


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "lstm_native", "demo", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "seasonal naive" in proc.stdout


def test_cli_needs_a_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
    with pytest.raises(SystemExit):
        main(["demo", "--holdout", "x"])


def test_user_errors_are_one_line_before_any_work(tmp_path, capsys):
    """A bad option value or an output path that cannot be written: exit status 2 and one
    line on stderr, before the run (a full why-lstm run takes 15-30 minutes)."""
    cases = [
        (["demo", "--holdout", "5"], "holdout must lie in"),
        (["demo", "--figure", str(tmp_path / "nodir" / "f.png")], "does not exist"),
        (["why-lstm", "--lengths", "50,abc"], "--lengths takes integers"),
        (["why-lstm", "--cells", "nope", "--lengths", "10"], "nope"),
        (["why-lstm", "--learning-rate", "-1", "--lengths", "10"], "learning_rate must be"),
        (["why-lstm", "--batch-size", "0", "--lengths", "10"], "batch_size must be"),
        (["why-lstm", "--json", str(tmp_path / "nodir" / "r.json")], "does not exist"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_command_line_defaults_are_the_forecasters():
    """The demo's and `forecast`'s --n-ensemble, and run_demo's, are LSTMForecaster's default
    (each names it: a changed default must not leave the commands behind)."""
    import inspect

    from lstm_native import LSTMForecaster

    default = LSTMForecaster().n_ensemble
    parser = build_parser()
    assert _demo_networks(parser.parse_args(["demo"])) == default
    # --quick takes 2 unless --n-ensemble says otherwise
    assert _demo_networks(parser.parse_args(["demo", "--quick"])) == 2
    assert _demo_networks(parser.parse_args(["demo", "--quick", "--n-ensemble", "5"])) == 5
    assert (
        parser.parse_args(["forecast", "d.csv", "--column", "y", "--horizon", "3"]).n_ensemble
        == default
    )
    assert inspect.signature(run_demo).parameters["n_ensemble"].default == default
