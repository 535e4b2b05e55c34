"""What the sktime and aeon adapters share (this module imports neither package).

Their classes keep explicit ``__init__`` signatures, as both frameworks read the parameters
from them; the work behind those parameters is done once here: the native estimator is built
from the adapter's own ``get_params()``, whose names are the native estimator's.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..estimators import LSTMClassifier


class ClassifierAdapter:
    """``_fit``/``_predict``/``_predict_proba`` of a classifier adapter (mixed in before the
    framework's base class): an LSTMClassifier with the adapter's parameters reading the
    frameworks' channels-first ``numpy3D`` panels (``input_layout="nct"``)."""

    def _fit(self, X: np.ndarray, y: np.ndarray) -> ClassifierAdapter:
        est = LSTMClassifier(**self.get_params(deep=False), input_layout="nct")
        with warnings.catch_warnings():  # the frameworks' checks train a few epochs on purpose
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.estimator_ = est.fit(np.asarray(X, dtype=np.float32), y)
        return self

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.predict(np.asarray(X, dtype=np.float32))

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        # columns in the order of classes_ (the frameworks and the estimator both sort them)
        proba = self.estimator_.predict_proba(np.asarray(X, dtype=np.float32))
        return np.asarray(proba, dtype=np.float64)
