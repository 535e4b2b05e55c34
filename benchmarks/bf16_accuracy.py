"""precision="bfloat16" against float32 on tasks: is the model as good?

  adding   the adding problem at T = 100 (docs/why-lstm.md's budget: LSTMRegressor hidden 32,
           Adam lr 0.01, batch 32, clip 5, no L2, 30 epochs over 5000 sequences, seed 0); test
           MSE on 1000 other sequences (the mean predictor: 0.167, "solved" below 0.05)
  airline  a real series: the airline passengers, monthly log growth (scaled on the training
           part), 13 months -> the next; trained on 1949-1958, RMSE in thousands of passengers
           on 1959-1960 (one step ahead), mean over the seeds

Both precisions run the same configuration and seeds in one process; the bfloat16 column
names the kernel (build_info()["bf16_kernel"]).

    python benchmarks/bf16_accuracy.py [--only adding,airline] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import lstm_native
from lstm_native import LSTMRegressor
from lstm_native.datasets import load_airline_passengers, make_adding_problem


def adding(precision: str, seed: int) -> tuple:
    X, y = make_adding_problem(6000, 100, random_state=seed)
    est = LSTMRegressor(
        hidden_size=32,
        learning_rate_init=0.01,
        batch_size=32,
        alpha=0.0,
        max_iter=30,
        max_grad_norm=5.0,
        random_state=seed,
        precision=precision,
        tol=0.0,
        n_iter_no_change=1000,
    )
    t0 = time.perf_counter()
    est.fit(X[:5000].astype(np.float32), y[:5000])
    mse = float(np.mean((est.predict(X[5000:].astype(np.float32)) - y[5000:]) ** 2))
    return mse, time.perf_counter() - t0


def airline(precision: str, seed: int) -> tuple:
    z = np.log(load_airline_passengers())
    d = np.diff(z)  # d[i] = z[i+1] - z[i]: the monthly log growth
    train_end = 120  # months 0..119 (1949-1958) for training
    mu, sd = d[: train_end - 1].mean(), d[: train_end - 1].std()
    s = (d - mu) / sd
    w = 13  # 13 growths -> the next (month t's value from months t-14..t-1)
    X = np.stack([s[i : i + w] for i in range(len(s) - w)])[:, :, None].astype(np.float32)
    target_month = np.arange(w + 1, len(z))  # the month each window's target growth ends at
    train = target_month < train_end
    est = LSTMRegressor(
        hidden_size=32,
        learning_rate_init=0.003,
        batch_size=16,
        max_iter=300,
        random_state=seed,
        precision=precision,
        tol=0.0,
        n_iter_no_change=1000,
    )
    t0 = time.perf_counter()
    est.fit(X[train], s[w:][train])
    growth = est.predict(X[~train]) * sd + mu
    pred = np.exp(z[target_month[~train] - 1] + growth)
    rmse = float(np.sqrt(np.mean((pred - np.exp(z[target_month[~train]])) ** 2)))
    return rmse, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="adding,airline")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    info = lstm_native.build_info()
    print(f"kernel set {info['isa']}, bf16 kernel {info['bf16_kernel']}")
    warnings.simplefilter("ignore")
    tasks = {"adding": adding, "airline": airline}
    for name in args.only.split(","):
        res = {p: [tasks[name](p, seed) for seed in seeds] for p in ("float32", "bfloat16")}
        for seed_i, seed in enumerate(seeds):
            a, b = res["float32"][seed_i], res["bfloat16"][seed_i]
            print(
                f"{name} seed {seed}: float32 {a[0]:.4f} ({a[1]:.0f} s)  "
                f"bfloat16 {b[0]:.4f} ({b[1]:.0f} s)  ratio {b[0] / a[0]:.3f}"
            )
        m32 = np.mean([r[0] for r in res["float32"]])
        m16 = np.mean([r[0] for r in res["bfloat16"]])
        print(f"{name} mean: float32 {m32:.4f}  bfloat16 {m16:.4f}  ratio {m16 / m32:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
