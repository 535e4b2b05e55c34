"""The portable module (run-time ISA dispatch) against a build for this host only.

The portable module compiles the core once per instruction set and picks one at import; the
goal is that it runs within 5 % of a ``-march=native`` build. Build the host-only copy into a
folder of its own (the editable install is left alone), then run this script:

    pip install --no-deps --no-build-isolation --target /tmp/native-pkg \\
        -C cmake.define.LSTM_NATIVE_NATIVE_ARCH=ON -C build-dir=/tmp/native-build .
    python benchmarks/dispatch.py --native-pkg /tmp/native-pkg

Every configuration (native; portable uncapped; portable capped at avx2 and at sse2, which is
what the portable build was before dispatch) runs in a fresh interpreter, in rounds that
alternate between them so that a noisy neighbour hits all alike; the table gives the median
time per round and the ratio to the native build. One thread (n_jobs=1), float32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import lstm_native
from lstm_native import LSTMRegressor

def best(f, reps):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return min(ts)

rng = np.random.default_rng(0)
info = lstm_native.build_info()
out = {"isa": info.get("isa") or ("native" if info.get("native_arch") else "portable")}
for cell, H in (("lstm", 128), ("gru", 128), ("lstm", 256)):
    B, T, D = 32, 100, 32
    X = rng.standard_normal((B * 4, T, D)).astype(np.float32)
    y = rng.standard_normal(B * 4).astype(np.float32)
    est = LSTMRegressor(cell=cell, hidden_size=H, batch_size=B, max_iter=1, n_jobs=1,
                        random_state=0, tol=0.0, n_iter_no_change=10**9, shuffle=False)
    est.fit(X[:B], y[:B])
    out[f"train {cell} H{H} (4 steps)"] = best(lambda: est.partial_fit(X, y), 5)
    out[f"infer {cell} H{H} (B={B})"] = best(lambda: est.predict(X[:B]), 10)
est = LSTMRegressor(hidden_size=64, max_iter=1, n_jobs=1, random_state=0).fit(
    rng.standard_normal((8, 5, 8)).astype(np.float32), np.zeros(8, np.float32))
s = est.stream()
x = np.zeros((1, 8), np.float32)
def steps():
    for _ in range(2000):
        s.step(x)
out["stream lstm H64 (2000 steps)"] = best(steps, 5)
print(json.dumps(out))
"""


def run(env_extra: dict, pythonpath: str | None, python: str = sys.executable) -> dict:
    env = dict(os.environ)
    env.pop("LSTM_NATIVE_MAX_ISA", None)
    env.update(env_extra)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [python, "-c", CHILD], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    try:  # the installed core's CPUID report names family/model/stepping too
        import lstm_native

        return lstm_native.build_info()["cpu"]
    except (ImportError, KeyError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--native-pkg", required=True, help="folder holding the host-only build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--before",
        metavar="PYTHON",
        help="also time the lstm_native that this interpreter imports (an earlier version)",
    )
    args = ap.parse_args()
    sitecustomize = os.path.join(args.native_pkg, "sitecustomize.py")
    if not os.path.exists(sitecustomize):  # hide an editable install's import hook there
        with open(sitecustomize, "w") as f:
            f.write(
                "import sys\nsys.meta_path[:] = [f for f in sys.meta_path if 'lstm_native'"
                " not in (getattr(type(f), '__module__', '') or '')]\n"
            )
    configs = {
        "native": ({}, args.native_pkg, sys.executable),
        "portable": ({}, None, sys.executable),
        "portable, cap avx2": ({"LSTM_NATIVE_MAX_ISA": "avx2"}, None, sys.executable),
        "portable, cap sse2": ({"LSTM_NATIVE_MAX_ISA": "sse2"}, None, sys.executable),
    }
    if args.before:
        configs["before"] = ({}, None, args.before)
    results: dict[str, list[dict]] = {k: [] for k in configs}
    for r in range(args.rounds):
        for name, (env, path, python) in configs.items():
            results[name].append(run(env, path, python))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    names = list(configs)
    isas = {n: results[n][0].get("isa") or "?" for n in names}
    work = [k for k in results["native"][0] if k != "isa"]
    med = {n: {w: statistics.median(x[w] for x in results[n]) for w in work} for n in names}
    print(f"CPU: {cpu_name()}; {args.rounds} rounds, median of each round's best; 1 thread\n")
    head = "| workload | " + " | ".join(f"{n} ({isas[n]})" for n in names) + " |"
    print(head)
    print("|" + "---|" * (len(names) + 1))
    for w in work:
        base = med["native"][w]
        cells = [f"{med[n][w] * 1e3:.2f} ms ({med[n][w] / base:.2f}x)" for n in names]
        print(f"| {w} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
