"""Locks that a child made by ``os.fork()`` gets back unlocked.

A ``threading.Lock`` is copied into a forked child in the state it had in the parent at the
moment of the fork. If another parent thread held it then (a layer's forward, a pool of core
models lending one out), the child would wait for it forever: the thread that would release
it does not exist in the child. ``ForkSafeLock`` is a lock that is replaced by a fresh one in
every child (``os.register_at_fork``), so a child made by gunicorn's ``preload_app``, Celery's
prefork pool or ``multiprocessing`` with the fork start method computes normally. (The core's
own thread pool does the same for its threads and mutexes: cpp/include/lstm_native/threads.hpp.)
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

_live: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()


class ForkSafeLock:
    """A ``threading.Lock`` (or ``RLock`` with ``reentrant=True``) that is unlocked in a forked
    child. Use it as a context manager."""

    __slots__ = ("_lock", "_reentrant", "__weakref__")

    def __init__(self, reentrant: bool = False) -> None:
        self._reentrant = reentrant
        self._lock = threading.RLock() if reentrant else threading.Lock()
        _live.add(self)

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._lock.__exit__(*exc)

    def _reset(self) -> None:
        self._lock = threading.RLock() if self._reentrant else threading.Lock()


def _after_fork_in_child() -> None:
    for lock in list(_live):
        lock._reset()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["ForkSafeLock"]
