"""Type stubs for the compiled core (cpp/src/bindings.cpp).

Arrays are NumPy arrays of the class's dtype (float32 for the *32 classes, float64 for the *64
ones), C-contiguous, of exactly the documented shape; ``lengths`` is int64. A mismatch raises
ValueError; sizes too large for the build raise MemoryError. B batch, T steps, D input
features, H hidden units, L layers, G gates, O outputs, P parameters.

tests/test_core_api.py checks that every public name of the module (and of each class) appears
here and that nothing else does.
"""

from typing import Any, Callable, ClassVar, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray
from typing_extensions import TypeAlias

_F = TypeVar("_F", np.float32, np.float64)
_Array32: TypeAlias = NDArray[np.float32]
_Array64: TypeAlias = NDArray[np.float64]
_Lengths: TypeAlias = NDArray[np.int64] | None
_Layout: TypeAlias = list[tuple[str, int, tuple[int] | tuple[int, int]]]

CELLS: tuple[str, ...]
"""The core's cell names, in CellKind order."""
CELL_ALIASES: dict[str, str]
"""Other accepted spellings of cell names: {"rnn": "rnn_tanh"}."""
PREDICT_CHUNK: int
"""Sequences per forward in Model.predict (its workspace is sized for at most this many)."""

def cell_info(cell: str) -> dict[str, Any]:
    """Structure of a cell: "gates" (int), "blocks" (gate block names in storage order, e.g.
    ("i", "f", "g", "o"); () for RNN and ungated), "has_cell_state" (bool), "extra" (values per
    unit saved besides the gates), "cell_params" ([H] vectors per layer), "cell_gemm" (a
    weight_ch per layer), "forget_block" (-1: none), "keep" (how the carried state is kept:
    "f", "z", "1-i", "1" or None) and "fused_inference" (an inference runs the fused step)."""

def set_num_threads(n: int) -> None:
    """Default threads per call; 0 = all hardware threads."""

def get_num_threads() -> int: ...
def split_plan(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    batch: int,
    steps: int,
    *,
    precision: str = "float32",
    inference: bool = False,
) -> dict[str, int]:
    """Parts of the batch and column blocks of a step's product (from the sizes only), for
    training or (inference=True) an inference forward."""

def all_finite(a: NDArray[np.floating[Any]]) -> bool:
    """No NaN or infinity in a C-contiguous float32/float64 array."""

def build_info() -> dict[str, Any]:
    """How the core was compiled: compiler, SIMD, Eigen, threads, sanitizers; for precision
    "bfloat16": cpu_avx512_bf16, cpu_amx_bf16 (usable by this process), bf16_kernel ("amx" or
    "emulated") and bf16_kernel_setting (LSTM_NATIVE_BF16_KERNEL, None when unset)."""

class ModelConfig:
    """What a network is. Strictly typed (a bool is not an int, nor an int a bool); a bad value
    raises ValueError naming the field, also on attribute assignment (the object is then left
    unchanged).

    ``loss``: "mse", "softmax" (class indices as targets), or for regression heads
    "absolute_error", "huber" (with ``huber_delta`` > 0) and "quantile" (the pinball loss at
    ``quantiles``: levels in (0, 1), strictly increasing, at most 99; the head's output column
    k*Q + j is level j of target k, so output_size is n_targets * Q and the targets have
    output_size / Q columns). The other losses ignore ``quantiles`` (checked all the same, so a
    configuration can be edited one field at a time) and ``huber_delta``.

    ``precision``: "float32" or "bfloat16" (the recurrent layers' products with bf16 operands
    and float32 sums; float32 parameters only: Model64 refuses it)."""

    FIELDS: ClassVar[tuple[tuple[str, type, Any], ...]]
    """(name, Python type, default) of every field, in the constructor's order."""
    cell: str
    input_size: int
    hidden_size: int
    num_layers: int
    output_size: int
    bias: bool
    bidirectional: bool
    return_sequences: bool
    dropout: float
    loss: str
    huber_delta: float
    quantiles: list[float]
    """(a copy: assign a new list to change it)"""
    precision: str

    def __init__(
        self,
        cell: str = "lstm",
        input_size: int = 1,
        hidden_size: int = 1,
        num_layers: int = 1,
        output_size: int = 1,
        *,
        bias: bool = True,
        bidirectional: bool = False,
        return_sequences: bool = False,
        dropout: float = 0.0,
        loss: str = "mse",
        huber_delta: float = 1.0,
        quantiles: list[float] | tuple[float, ...] = [],
        precision: str = "float32",
    ) -> None: ...
    @property
    def num_params(self) -> int:
        """Parameters of the network, exact (MemoryError beyond 2**63)."""
    def layout(self) -> _Layout:
        """[(name, offset, shape)] of each parameter in the flat buffer (as Model.layout())."""
    def workspace_elements(
        self,
        batch: int,
        steps: int,
        train: bool,
        *,
        rollout: bool = False,
    ) -> int:
        """Scalars the core's workspace holds for a batch of `batch` sequences of `steps` steps:
        train=True one training minibatch, train=False predict (at most PREDICT_CHUNK at a
        time), rollout=True (train=False) Model.rollout on a history of `steps` steps. Not
        counted: the parameters and their packed copy."""
    def to_dict(self) -> dict[str, Any]: ...
    @staticmethod
    def from_dict(d: dict[str, Any]) -> ModelConfig:
        """From a dict holding every field and nothing else (ValueError naming a bad key)."""
    def __eq__(self, other: object) -> bool: ...
    def __getstate__(self) -> dict[str, Any]: ...
    def __setstate__(self, state: dict[str, Any]) -> None: ...

class OptimConfig:
    """How Model.train_epoch trains: the solver ("sgd", "adam", "adamw", "rmsprop"), its
    hyperparameters, the minibatches. ValueError naming a bad field."""

    FIELDS: ClassVar[tuple[tuple[str, type, Any], ...]]
    solver: str
    lr: float
    alpha: float
    momentum: float
    nesterov: bool
    beta1: float
    beta2: float
    eps: float
    max_grad_norm: float
    batch_size: int
    shuffle: bool
    seed: int

    def __init__(
        self,
        *,
        solver: str = "adam",
        lr: float = 0.001,
        alpha: float = 0.0,
        momentum: float = 0.9,
        nesterov: bool = True,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-08,
        max_grad_norm: float = 0.0,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None: ...
    def to_dict(self) -> dict[str, Any]: ...
    @staticmethod
    def from_dict(d: dict[str, Any]) -> OptimConfig: ...
    def __eq__(self, other: object) -> bool: ...
    def __getstate__(self) -> dict[str, Any]: ...
    def __setstate__(self, state: dict[str, Any]) -> None: ...

class _Recurrent(Generic[_F]):
    """nn's layer: a stack of L layers of one direction (Recurrent32 / Recurrent64)."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        *,
        precision: str = "float32",
    ) -> None: ...
    @staticmethod
    def count_params(
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
    ) -> int:
        """Parameters of such a layer, without building it."""
    @property
    def cell(self) -> str: ...
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def bias(self) -> bool: ...
    @property
    def precision(self) -> str: ...
    @property
    def num_params(self) -> int: ...
    @property
    def has_forward(self) -> bool: ...
    num_threads: int
    @property
    def num_parts(self) -> int: ...
    @property
    def column_blocks(self) -> tuple[int, int]: ...
    def layout(self) -> _Layout: ...
    def workspace_elements(self, batch: int, steps: int, train: bool) -> int: ...
    def allocated_elements(self) -> int: ...
    def forward(
        self,
        params: NDArray[_F],
        x: NDArray[_F],
        lengths: _Lengths,
        h0: NDArray[_F] | None,
        c0: NDArray[_F] | None,
        y: NDArray[_F],
        hT: NDArray[_F] | None,
        cT: NDArray[_F] | None,
        train: bool = True,
    ) -> None:
        """x [B, T, D] -> y [B, T, H], hT and cT [L, B, H] (preallocated)."""
    def backward(
        self,
        params: NDArray[_F],
        dy: NDArray[_F] | None,
        dhT: NDArray[_F] | None,
        dcT: NDArray[_F] | None,
        dparams: NDArray[_F],
        dx: NDArray[_F] | None,
        dh0: NDArray[_F] | None,
        dc0: NDArray[_F] | None,
        dhs: NDArray[_F] | None = None,
        dcs: NDArray[_F] | None = None,
    ) -> None:
        """BPTT for the last training forward, once; adds the gradients into dparams [P]."""
    def trace(
        self,
        gates: NDArray[_F] | None,
        h: NDArray[_F] | None,
        c: NDArray[_F] | None,
    ) -> None:
        """Gates [L, B, T, G*H], h and c [L, B, T, H] of the last training forward."""

class Recurrent32(_Recurrent[np.float32]): ...
class Recurrent64(_Recurrent[np.float64]): ...

class _Stream(Generic[_F]):
    """A model run one timestep at a time (from Model.stream; no constructor of its own)."""

    @property
    def batch(self) -> int: ...
    @property
    def input_size(self) -> int: ...
    @property
    def output_size(self) -> int: ...
    num_threads: int
    state: NDArray[_F] | tuple[NDArray[_F], NDArray[_F]]
    """h, or (h, c) for cells with a cell state; each [L, batch, H] (copies)."""
    def step(self, x: Any, out: NDArray[_F] | None = None) -> NDArray[_F]:
        """x [D] or [batch, D] -> output [O] or [batch, O]."""
    def reset(self) -> None: ...

class Stream32(_Stream[np.float32]): ...
class Stream64(_Stream[np.float64]): ...

class _Model(Generic[_F]):
    """Layers, head, loss and optimizer for the estimators (Model32 / Model64)."""

    def __init__(self, config: ModelConfig) -> None: ...
    @property
    def config(self) -> ModelConfig:
        """A copy."""
    @property
    def num_params(self) -> int: ...
    num_threads: int
    def layout(self) -> _Layout: ...
    def allocated_elements(self) -> int: ...
    def train_epoch(
        self,
        params: NDArray[_F],
        m: NDArray[_F],
        v: NDArray[_F],
        step: int,
        X: NDArray[_F],
        lengths: _Lengths,
        Y: NDArray[_F],
        sample_weight: NDArray[_F] | None,
        optim: OptimConfig,
        callback: Callable[[int, int], Any] | None = None,
    ) -> tuple[float, int]:
        """One epoch; params, m, v [P] updated in place. Returns (mean loss, step count)."""
    def predict(
        self,
        params: NDArray[_F],
        X: NDArray[_F],
        lengths: _Lengths,
        out: NDArray[_F],
    ) -> None:
        """Raw outputs into out [N, O] or [N, T, O]."""
    def loss(
        self,
        params: NDArray[_F],
        X: NDArray[_F],
        lengths: _Lengths,
        Y: NDArray[_F],
        sample_weight: NDArray[_F] | None,
        alpha: float,
    ) -> float: ...
    def loss_and_grad(
        self,
        params: NDArray[_F],
        X: NDArray[_F],
        lengths: _Lengths,
        Y: NDArray[_F],
        sample_weight: NDArray[_F] | None,
        alpha: float,
        grad: NDArray[_F],
    ) -> float: ...
    def stream(self, params: NDArray[_F], batch: int = 1) -> _Stream[_F]: ...
    def rollout(
        self,
        params: NDArray[_F],
        X: NDArray[_F],
        lengths: _Lengths,
        horizon: int,
        future: NDArray[_F] | None,
        feedback: list[tuple[int, int]] | None,
        out: NDArray[_F],
    ) -> None:
        """Recursive forecast (sequence-to-one, unidirectional models; ValueError otherwise)
        into out [N, horizon, O]: out[:, 0] is the prediction after the history X [N, T, D]
        (lengths as predict); each step k >= 1 feeds x_k = future[:, k-1] (future
        [N, horizon-1, D], finite, or None: zeros) with its input columns ``feedback``
        [(output column, input column), ...] replaced by out[:, k-1, output column] through one
        timestep of every layer from the carried state, and out[:, k] is its prediction."""

class Model32(_Model[np.float32]):
    def stream(self, params: _Array32, batch: int = 1) -> Stream32: ...

class Model64(_Model[np.float64]):
    def stream(self, params: _Array64, batch: int = 1) -> Stream64: ...
