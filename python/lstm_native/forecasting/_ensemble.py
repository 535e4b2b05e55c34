"""LSTMForecaster's networks trained side by side: one per core.

The ensemble's networks are small (32 units, windows of one series or a panel): too small for
the core's own threads to pay (a step's batch splits into parts only above ~10^6
multiply-adds), so a fit used one core however many the machine had. They are independent
(their own seed, lookback and windows), and an epoch runs in the compiled core without the
GIL, so ``workers`` Python threads train ``workers`` networks at once, each on one core thread.
Each network's result does not depend on the threads (the core's results never do), so the
forecast is the same bit for bit with any ``n_jobs``; only the order of the verbose lines may
change.

Ctrl-C (or any error) while the networks train: the networks not started are dropped, the
running ones stop at the end of their current epoch (a callback), then the exception goes on.
"""

from __future__ import annotations

import threading
import time
import warnings
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Callable, Optional

from sklearn.exceptions import ConvergenceWarning

from .. import _core
from ..callbacks import Callback


def ensemble_workers(n_members: int, n_jobs: Optional[int]) -> int:
    """Networks trained at once: n_jobs (None or negative: the core's default thread count,
    lstm_native._core.set_num_threads or the machine's hardware threads), at most n_members."""
    threads = _core.get_num_threads() if n_jobs is None or n_jobs < 0 else int(n_jobs)
    return max(1, min(int(n_members), threads))


class _StopWhenSet(Callback):
    """Stops a network's training after the epoch in which ``event`` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def on_epoch_end(self, env: Any) -> bool:
        return self.event.is_set()


def fit_members(
    n_members: int, workers: int, prepare: Callable[[int], tuple], report: Callable
) -> list:
    """[(lookback, fitted network)] for k = 0..n_members-1, ``workers`` at a time.
    ``prepare(k)`` -> (lookback, unfitted LSTMRegressor, X windows, Y targets), called in the
    worker (the windows of at most ``workers`` networks exist at once); ``report(k, lookback,
    est, n_windows, seconds)`` after each fit (verbose output)."""
    stop, said = threading.Event(), threading.Lock()

    def one(k: int) -> tuple:
        L, est, Xw, Yw = prepare(k)
        kept = est.get_params()
        if workers > 1:  # one core thread each, stoppable between epochs; neither is kept
            est.set_params(n_jobs=1, callbacks=[*(kept["callbacks"] or ()), _StopWhenSet(stop)])
        t0 = time.perf_counter()
        try:
            est.fit(Xw, Yw)
        finally:
            est.set_params(n_jobs=kept["n_jobs"], callbacks=kept["callbacks"])
        with said:  # one line at a time, whole, from the threads
            report(k, L, est, len(Xw), time.perf_counter() - t0)
        return L, est

    # (the filter is process-wide: set here, around all the threads, not inside each)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if workers <= 1:
            return [one(k) for k in range(n_members)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(one, k) for k in range(n_members)]
            try:  # the first failure, not the first network's end, ends the wait
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for f in done:
                    f.result()  # raises a failed network's error here, before waiting more
                return [f.result() for f in futures]
            except BaseException:
                stop.set()
                for f in futures:
                    f.cancel()
                raise
