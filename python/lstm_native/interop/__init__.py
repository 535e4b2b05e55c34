"""Interoperability and scale-out: ONNX export, PyTorch and Keras conversion, Dask.

Run-time dependencies stay numpy and scikit-learn: onnx, torch, keras and dask are imported only
inside the functions that need them (``pip install "lstm_native[interop]"`` installs them).

* :func:`set_named_parameters` (also ``est.set_named_parameters(d)``): the inverse of
  ``est.named_parameters()``;
* :func:`to_onnx` (also ``est.to_onnx(path)`` and ``layer.to_onnx(path)``): the standard ONNX
  LSTM / GRU / RNN operators (the exporter lives in ``lstm_native._onnx``, which the
  layers use too);
* :func:`to_torch` (also ``est.to_torch()``) and ``LSTMRegressor.from_torch(module)`` /
  ``LSTMClassifier.from_torch(module, classes)``: see :mod:`lstm_native.interop.torch`;
* :func:`from_keras`: a Keras 3 ``LSTM`` / ``GRU`` / ``SimpleRNN`` layer as an ``nn`` layer,
  see :mod:`lstm_native.interop.keras`;
* :func:`lstm_native.interop.dask.fit_per_group`: one estimator per group of data on a Dask
  cluster (and how to run a hyperparameter search there), see :mod:`lstm_native.interop.dask`.

This package reads estimators and layers through their public attributes only. Import
direction: the estimators import this package, this package (from_keras) imports ``nn``, and
``nn`` imports only the exporter module ``_onnx``: no cycle.
"""

from __future__ import annotations

from .._export_spec import set_named_parameters
from .._onnx import to_onnx
from .keras import from_keras
from .torch import fitted_from_torch, to_torch

__all__ = ["fitted_from_torch", "from_keras", "set_named_parameters", "to_onnx", "to_torch"]
