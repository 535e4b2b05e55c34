"""Scale-out on a Dask cluster (dask and distributed are imported only by the caller's client).

The estimators pickle, and their results do not depend on the number of threads or on the
process they run in, so the two usual patterns need nothing from lstm_native:

* hyperparameter search: ``with joblib.parallel_backend("dask"): GridSearchCV(...).fit(X, y)``
  with a ``distributed.Client`` open runs the candidate fits on the cluster; with an integer
  ``random_state`` the scores, the best parameters and the refitted model equal a local run;
* one model per group of data (a series per shop, a sensor per machine): :func:`fit_per_group`,
  for the estimators (``(X, y)`` per group) and for LSTMForecaster (``(y,)`` or ``(y, X)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _fit_one(estimator: Any, data: tuple) -> Any:
    """``clone(estimator).fit(*data)`` (runs on a worker)."""
    from sklearn.base import clone

    return clone(estimator).fit(*data)


def fit_per_group(client: Any, estimator: Any, groups: Mapping, *, retries: int = 0) -> dict:
    """Fit one clone of ``estimator`` per group on the cluster of ``client`` and return
    ``{key: fitted estimator}`` in the order of ``groups``.

    ``groups``: ``{key: args}``, the positional arguments of ``fit``: ``(X, y)`` or
    ``(X, y, sample_weight)`` for an estimator, ``(y,)`` or ``(y, X)`` for an LSTMForecaster
    (each group a series, or a panel of its own). Each group's data is
    sent to the cluster once (``client.scatter``); the fits run in parallel as independent tasks
    (``client.submit``, ``pure=False``: a refit is not served from Dask's cache). With an integer
    ``random_state`` each result equals ``clone(estimator).fit(X, y)`` run locally. The first
    failing group's exception is re-raised (with a note naming its key on Python >= 3.11)
    and the other fits are cancelled."""
    if not isinstance(groups, Mapping):
        raise TypeError(f"groups must be a mapping {{key: (X, y)}}, got {type(groups).__name__}")
    for key, data in groups.items():
        if not isinstance(data, (tuple, list)) or not 1 <= len(data) <= 3:
            raise ValueError(
                f"group {key!r} must be a tuple of fit's arguments: (X, y) or "
                "(X, y, sample_weight) for an estimator, (y,) or (y, X) for a forecaster"
            )
    futures = {}
    for key, data in groups.items():
        # a future per array, resolved on the worker; hash=False: fresh keys, not the content
        # hashes an identical earlier call's data (still being released) had ("lost
        # dependencies" otherwise, in about half of repeated calls)
        remote = client.scatter(list(data), hash=False)
        futures[key] = client.submit(_fit_one, estimator, remote, pure=False, retries=retries)
    fitted = {}
    for key, future in futures.items():
        try:
            fitted[key] = future.result()
        except Exception as e:
            for other in futures.values():
                other.cancel()
            if hasattr(e, "add_note"):  # Python >= 3.11
                e.add_note(f"(while fitting group {key!r} in fit_per_group)")
            raise
    return fitted


__all__ = ["fit_per_group"]
