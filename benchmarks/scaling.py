"""Thread scaling of the core alone: inference (nn.Recurrent.forward) and one training step
(Model32.train_epoch over one batch) at 1 and more threads, with the parts and column splits
the core chose. Usage: python benchmarks/scaling.py [--threads 1,2] [--H 128,256,512]."""

import argparse
import time

import numpy as np

import lstm_native
from lstm_native import _core


def best(fn, threads, rounds=7, inner=3):
    """Min over rounds of the mean of `inner` calls, per thread count; the thread counts take
    turns round by round, so a burst of load elsewhere hits all of them alike."""
    times = {n: float("inf") for n in threads}
    for n in threads:  # warm up (buffers, packing, the pool's workers)
        _core.set_num_threads(n)
        fn()
    for _ in range(rounds):
        for n in threads:
            _core.set_num_threads(n)
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times[n] = min(times[n], (time.perf_counter() - t0) / inner)
    return [times[n] for n in threads]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--H", default="128,256,512")
    ap.add_argument("--B", type=int, default=64)
    ap.add_argument("--T", type=int, default=50)
    ap.add_argument("--D", type=int, default=64)
    ap.add_argument("--cell", default="lstm")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    B, T, D = a.B, a.T, a.D
    rng = np.random.default_rng(0)
    X = rng.standard_normal((B, T, D)).astype(np.float32)
    Y = rng.standard_normal((B, 1)).astype(np.float32)
    print(f"{'what':6} {'B/T/D/H':>14} " + " ".join(f"{n:>3}thr ms" for n in threads) + "  speedup")
    for H in [int(h) for h in a.H.split(",")]:
        layer = lstm_native.nn.Recurrent(D, H, 1, cell=a.cell, dtype=np.float32, random_state=0)
        m = _core.Model32(_core.ModelConfig(a.cell, D, H, 1, 1))
        P = m.num_params
        params = (rng.uniform(-1, 1, P) / np.sqrt(H)).astype(np.float32)
        optim = _core.OptimConfig(
            batch_size=B,
            shuffle=False,
            seed=0,
            solver="adam",
            lr=1e-3,
            alpha=0.0,
            max_grad_norm=0.0,
        )
        mom, vel = np.zeros(P, np.float32), np.zeros(P, np.float32)
        p = params.copy()

        def train():
            m.train_epoch(p, mom, vel, 0, X, None, Y, None, optim)

        def infer():
            layer.forward(X, inference=True)

        for what, fn in (("infer", infer), ("train", train)):
            ts = best(fn, threads)
            sp = " ".join(f"{ts[0] / t:.2f}" for t in ts[1:])
            print(
                f"{what:6} {f'{B}/{T}/{D}/{H}':>14} "
                + " ".join(f"{t * 1e3:9.2f}" for t in ts)
                + f"  {sp}   parts={layer._core.num_parts}",
                flush=True,
            )


if __name__ == "__main__":
    main()
