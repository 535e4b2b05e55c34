"""lstm_native: LSTM, GRU and Elman RNN with a compiled C++ core."""

from __future__ import annotations

try:
    from . import _core
except ImportError as e:  # a bad setting read at the module's init (dispatch.cpp)
    if "LSTM_NATIVE_MAX_ISA" in str(e) or "LSTM_NATIVE_BF16_KERNEL" in str(e):
        raise ValueError(str(e)) from None
    raise
from . import datasets, forecasting, interop, nn
from .datasets import load_airline_passengers
from .estimators import LSTMClassifier, LSTMRegressor
from .forecasting import LSTMForecaster
from .preprocessing import SequenceScaler

__version__ = "0.1.0"


def load(path) -> LSTMRegressor | LSTMClassifier | LSTMForecaster:
    """Load an estimator or a forecaster saved with ``est.save(path)`` (an ``.npz`` archive,
    no pickle). Raises ValueError naming the file if it is truncated, corrupted, not an
    lstm_native model or written by a newer version of the format."""
    from ._persist import file_format, load_model
    from .estimators import ESTIMATORS
    from .forecasting._persist import FORMAT_NAME, load_forecaster

    if file_format(path) == FORMAT_NAME:
        return load_forecaster(path, LSTMForecaster)
    cls, hyperparams, fitted = load_model(path, ESTIMATORS)
    return cls.from_saved(hyperparams, fitted)


def build_info() -> dict:
    """How the compiled core was built and what it chose at import: compiler, Eigen, threads;
    ``isa`` (the kernel set in use: sse2, avx2, avx512, or native for a host-only build),
    ``isa_compiled``, ``isa_supported`` (those this CPU runs), ``max_isa`` (the
    LSTM_NATIVE_MAX_ISA cap, if set) and ``simd`` (the chosen set's instruction sets);
    ``cpu`` (the CPU's brand string with CPUID's vendor, family, model and stepping: under a
    hypervisor one brand string can stand for several CPU generations)."""
    return dict(_core.build_info())


__all__ = [
    "LSTMClassifier",
    "LSTMForecaster",
    "LSTMRegressor",
    "SequenceScaler",
    "build_info",
    "load",
    "datasets",
    "forecasting",
    "interop",
    "load_airline_passengers",
    "nn",
    "__version__",
]
