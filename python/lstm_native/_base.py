"""The scikit-learn interface shared by LSTMRegressor and LSTMClassifier (see
:mod:`lstm_native.estimators` for what they do and guarantee): hyperparameters, the fitted
attributes as views of one FittedModel, fit as a transaction around the training engine, and
prediction, streaming and saving."""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace
from numbers import Integral, Real
from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, InvalidParameterError, Options, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import interop
from ._engine import Dataset, TrainingDiverged, check_outputs, train
from ._memory import peek_shape
from ._network import (
    CELL_ALIASES,
    CELLS,
    PREDICT_CHUNK,
    Network,
    OptimOptions,
    check_fit_memory,
    check_precision,
    head_width,
    loss_config,
)
from ._state import FittedModel, TrainState, fitted_properties
from ._validation import (
    Sequences,
    apply_layout,
    check_sample_weight,
    check_sequences,
    check_y_present,
)
from .callbacks import (
    DivergenceRollback,
    EarlyStopping,
    InverseScaling,
    ProgressPrinter,
    ReduceLROnPlateau,
    check_callbacks,
)

_MIN_LR = 1e-6  # "adaptive" / "plateau" stop once the learning rate is at or below this
_PLATEAU_FACTOR = {"adaptive": 0.2, "plateau": 0.5}

# The regressor's losses by their scikit-learn names, and the core's names for them.
_REGRESSOR_LOSSES = {
    "squared_error": "mse",
    "absolute_error": "absolute_error",
    "huber": "huber",
    "quantile": "quantile",
}
_DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


# The public estimator classes by name (what a saved file names), filled as they are defined.
ESTIMATORS: dict = {}


class _BaseRecurrentEstimator(BaseEstimator):
    """The scikit-learn interface shared by the recurrent estimators (not for direct use).
    Everything ``fit`` learns is one :class:`~lstm_native._state.FittedModel` in
    ``self._fitted``, replaced as a whole; the fitted attributes read it."""

    _loss: str = ""  # the core's loss by default: "mse" or "softmax" (see _loss_config)
    _targets: Any = None  # how y is prepared and scored (lstm_native._targets)

    _parameter_constraints: dict = {
        "cell": [StrOptions(set(CELLS) | set(CELL_ALIASES))],
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "bidirectional": ["boolean"],
        "return_sequences": ["boolean"],
        "solver": [StrOptions({"adam", "adamw", "sgd", "rmsprop"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive", "plateau"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "dtype": [
            StrOptions({"float32", "float64"}),
            Options(type, {np.float32, np.float64}),
            Options(np.dtype, {np.dtype(np.float32), np.dtype(np.float64)}),
        ],
        "precision": [StrOptions({"float32", "bfloat16"})],
        # -1 (or any negative) and None: automatic; the core takes a C int
        # (joblib's meaning: None or -1 all cores, -k all but k-1; 0 means nothing)
        "n_jobs": [
            Interval(Integral, None, -1, closed="right"),
            Interval(Integral, 1, 2**31 - 1, closed="both"),
            None,
        ],
        "callbacks": [list, tuple, None],
        "input_layout": [StrOptions({"ntc", "nct"})],
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            ESTIMATORS[cls.__name__] = cls

    _INTEGER_PARAMS = (
        "hidden_size",
        "num_layers",
        "batch_size",
        "max_iter",
        "n_iter_no_change",
        "n_jobs",
    )

    def __init__(
        self,
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        *,
        dropout: float = 0.0,
        bidirectional: bool = False,
        return_sequences: bool = False,
        solver: str = "adam",
        alpha: float = 1e-4,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 1e-3,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: Any = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_grad_norm: Optional[float] = 5.0,
        dtype: Any = "float32",
        precision: str = "float32",
        n_jobs: Optional[int] = None,
        callbacks: Optional[list] = None,
        input_layout: str = "ntc",
    ) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.bidirectional = bidirectional
        self.return_sequences = return_sequences
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_grad_norm = max_grad_norm
        self.dtype = dtype
        self.precision = precision
        self.n_jobs = n_jobs
        self.callbacks = callbacks
        self.input_layout = input_layout

    # -- tags, pickling, fitted attributes ---------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return self.__dict__.get("_fitted") is not None

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state.pop("_network", None)  # core models hold workspaces, not state: made anew
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if self.__dict__.get("_fitted") is not None:
            self._network_for(self._fitted.config)

    @property
    def params_(self) -> np.ndarray:
        """Every parameter in the core's layout (see :meth:`named_parameters`). Writing
        ``est.params_[...] = ...`` changes the fitted weights in place (predict sees the
        change); assigning ``est.params_ = a`` replaces them (shape and dtype checked)."""
        return self._require_fitted().state.params

    @params_.setter
    def params_(self, value: Any) -> None:
        fitted = self._require_fitted()
        old = fitted.state.params
        arr = np.asarray(value)
        if arr.shape != old.shape:
            raise ValueError(f"params_ must have shape {old.shape}, got {arr.shape}")
        if arr is not old:
            if not np.isfinite(arr).all():
                raise ValueError("params_ contains NaN or infinity")
            state = replace(fitted.state, params=np.array(arr, dtype=old.dtype, order="C"))
            self._fitted = fitted.with_state(state)

    @property
    def feature_names_in_(self) -> np.ndarray:
        names = self._require_fitted().input.feature_names_in
        if names is None:
            raise AttributeError(f"{type(self).__name__} was not fitted on data with feature names")
        return names

    @property
    def evals_result_(self) -> dict:
        scores = self._require_fitted().state.eval_scores
        return {name: {self._targets.metric: list(v)} for name, v in scores.items()}

    def _require_fitted(self) -> FittedModel:
        fitted = self.__dict__.get("_fitted")
        if fitted is None:
            check_is_fitted(self)  # NotFittedError
        return fitted

    # -- the network ---------------------------------------------------------------------------
    def _network_for(self, config: dict) -> Network:
        """The core models for ``config`` (kept while the configuration stays the same, so a
        refit or a partial_fit keeps the workspaces)."""
        net = self.__dict__.get("_network")
        if net is None or net.config != config:
            net = Network(config)
            self._network = net
        return net

    def _loss_config(self) -> dict:
        """The network configuration's loss fields (loss, huber_delta, quantiles)."""
        return loss_config(self._loss)

    def _network_config(self, input_size: int, n_outputs: int, dtype: np.dtype) -> dict:
        """The network for ``n_outputs`` targets (regressor) or classes (classifier); a
        quantile head has one output per target and level."""
        loss = self._loss_config()
        return dict(
            cell=CELL_ALIASES.get(self.cell, self.cell),
            input_size=int(input_size),
            hidden_size=int(self.hidden_size),
            num_layers=int(self.num_layers),
            output_size=head_width(loss, int(n_outputs)),
            bidirectional=bool(self.bidirectional),
            return_sequences=bool(self.return_sequences),
            dropout=float(self.dropout),
            **loss,
            dtype=np.dtype(dtype).name,
            precision=check_precision(self.precision, dtype),  # bfloat16: float32 only
        )

    def named_parameters(self) -> dict:
        """The fitted parameters by name (PyTorch's names for the recurrent layers, then
        ``head.weight`` (n_outputs, directions * hidden_size) and ``head.bias``), as copies."""
        fitted = self._require_fitted()
        params = fitted.state.params
        return {
            name: params[off : off + int(np.prod(shape))].reshape(shape).copy()
            for name, off, shape in self._network_for(fitted.config).layout()
        }

    # ONNX export, PyTorch conversion, setting weights by name: see lstm_native.interop
    set_named_parameters = interop.set_named_parameters
    to_onnx = interop.to_onnx
    to_torch = interop.to_torch

    @classmethod
    def from_torch(cls, module: Any, classes: Any = None, **params: Any) -> Any:
        """A fitted estimator with the weights of ``module`` (``to_torch``'s module or a pair
        (torch.nn.LSTM/GRU/RNN, torch.nn.Linear)): see :mod:`lstm_native.interop.torch`."""
        return cls.from_saved(*interop.fitted_from_torch(cls, module, classes, **params))

    # -- fitting ---------------------------------------------------------------------------------
    def _check_integer_params(self) -> None:
        """scikit-learn's Interval(Integral) accepts True/False; a bool hidden_size or
        num_layers is a mistake, not a 1."""
        for name in self._INTEGER_PARAMS:
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be an int, not a "
                    f"bool; got {value!r}"
                )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self, X: Any, y: Any, sample_weight: Any = None, *, eval_set: Any = None
    ) -> _BaseRecurrentEstimator:
        """Train the network on sequences ``X`` and targets ``y`` (up to ``max_iter`` epochs).

        Parameters
        ----------
        X : array (n_samples, n_timesteps, n_features), array (n_samples, n_timesteps)
            (univariate sequences), or list of (n_timesteps_i, n_features) arrays.
        y : targets, see the class docstring.
        sample_weight : array (n_samples,), optional, one non-negative weight per sequence.
        eval_set : (X_val, y_val) or a list of such pairs (or triples with sample weights),
            optional. Scored after every epoch (``evals_result_``); with
            ``early_stopping=True`` the first set is the validation data.

        Returns
        -------
        self

        Raises
        ------
        ValueError: bad input (the estimator is then unchanged), or divergence (it keeps the
            latest weights that predict finite values); MemoryError: the fit cannot fit in
            memory (checked before allocating); KeyboardInterrupt: after Ctrl-C, with the
            estimator fitted on the completed steps. See the module docstring.
        """
        return self._fit(X, y, sample_weight, incremental=False, eval_set=eval_set)

    def _fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any,
        incremental: bool,
        classes: Any = None,
        eval_set: Any = None,
    ) -> _BaseRecurrentEstimator:
        """A fit is a transaction: on failure the previous fitted model comes back (except
        after divergence or Ctrl-C, whose outcome the module docstring describes)."""
        previous = self.__dict__.get("_fitted")
        try:
            self._fit_unguarded(X, y, sample_weight, incremental, classes, eval_set)
        except (KeyboardInterrupt, TrainingDiverged):
            raise
        except BaseException:
            if previous is None:
                self.__dict__.pop("_fitted", None)
            else:
                self._fitted = previous
            raise
        return self

    def _fit_unguarded(self, X, y, sample_weight, incremental, classes, eval_set) -> None:
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        self._check_integer_params()
        check_y_present(y, self)
        prev: Optional[FittedModel] = self.__dict__.get("_fitted")
        first_pass = prev is None or (not self.warm_start and not incremental)
        dtype = np.dtype(self.dtype) if first_pass else prev.dtype
        check_fit_memory(self, X, y, self._network_config)
        X = apply_layout(X, self.input_layout, warn=first_pass)
        seqs = check_sequences(
            X,
            dtype=dtype,
            estimator=self,
            reset=first_pass,
            spec=None if first_pass else prev.input,
        )
        targets = self._targets.prepare(
            self, y, seqs, dtype, None if first_pass else prev, incremental, classes
        )
        raw_sw = check_sample_weight(sample_weight, seqs.n_samples, dtype)
        sw = self._targets.weights(self, raw_sw, targets, dtype, incremental)
        data = Dataset(seqs, targets.Y, sw, per_step=bool(self.return_sequences))
        config = self._network_config(seqs.n_features, targets.head_width, dtype)
        if not first_pass:
            asked = {**config, "dtype": np.dtype(self.dtype).name}  # (config: the fitted one)
            self._check_same_network(prev.config, asked, incremental)
        network = self._network_for(config)

        validating = bool(self.early_stopping)
        evals = self._eval_sets(eval_set, seqs, dtype, prev if not first_pass else None, targets)
        validation = None
        if validating:
            if evals:
                validation = next(iter(evals.values()))
            else:
                data, validation = self._split_tail(data)
                if sw is not raw_sw:  # class_weight trains; the score (accuracy) does not
                    tail = slice(data.n, data.n + validation.n)
                    validation.sw = None if raw_sw is None else raw_sw[tail].copy()
        if data.sw is not None and not data.sw.sum() > 0:
            raise ValueError(
                "sample_weight is zero for every training sample"
                + (" (before the validation tail)" if validating else "")
            )

        rng = self._training_rng(prev, first_pass, incremental)  # a copy: never published
        if first_pass:
            state = TrainState.fresh(
                network.initial_parameters(rng), self.learning_rate_init, rng, validating
            )
        else:
            state = prev.state.copy()
            state.rng = rng
            if not incremental:  # a warm-started fit gets a fresh optimizer, as MLP
                state.reset_optimizer(self.learning_rate_init)
                state.n_iter = 0
            if validating != state.validating:
                state.reset_tracking(validating)  # early_stopping was switched since
        state.eval_scores = {} if not incremental else state.eval_scores
        template = FittedModel(
            config=config,
            state=state,
            input=seqs.spec if first_pass else prev.input,
            n_outputs=targets.n_outputs,
            y_ndim=targets.y_ndim,
            classes=targets.classes,
        )

        def publish(st: TrainState) -> None:  # st: the engine's copy, ours to keep
            self._fitted = replace(template, state=st)

        # After training, the final weights must predict finite values on the training data:
        # certain from a bound for most cells and weights, else looked at (partial_fit: on one
        # chunk, to keep an epoch's cost).
        x_absmax, T = float(np.abs(data.seqs.X).max()), data.seqs.X.shape[1]
        baseline = self._targets.baseline_loss(config["loss"], data)
        env = train(
            network,
            state,
            data,
            options=self._optim_options(data.n),
            max_epochs=1 if incremental else int(self.max_iter),
            tol=float(self.tol),
            callbacks=self._training_callbacks(),
            publish=publish,
            score=self._targets.scorer(config),
            validation=validation,
            eval_sets=evals,
            save=lambda path, st: self._save_model(path, replace(template, state=st)),
            n_jobs=self.n_jobs,
            check_overflow=data if not incremental else data.subset(slice(0, PREDICT_CHUNK)),
            bounded=lambda params: network.outputs_bounded(params, x_absmax, T),
            baseline_loss=baseline,
        )
        if isinstance(self.random_state, np.random.RandomState):
            self.random_state.set_state(state.rng.get_state())  # advanced, as MLP's would be
        if not incremental and not env.stopped:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                "and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=4,
            )
        if (
            not incremental
            and baseline is not None
            and state.loss_curve
            and min(state.loss_curve) >= 0.98 * baseline
        ):
            warnings.warn(
                f"{type(self).__name__} fits no better than a constant prediction: its best "
                f"training loss {min(state.loss_curve):.4g} against {baseline:.4g} for always "
                f"predicting the {'class frequencies' if config['loss'] == 'softmax' else 'mean'}"
                ". Scale X (SequenceScaler), raise learning_rate_init or max_iter, or check that"
                " X holds signal for y (and its layout: input_layout).",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _training_rng(
        self, prev: Optional[FittedModel], first_pass: bool, incremental: bool
    ) -> np.random.RandomState:
        """Seeds shuffling and dropout: a copy (a user's RandomState advances on success)."""
        if not (first_pass or not incremental):
            return copy.deepcopy(prev.state.rng)
        if self.random_state is None:  # a fresh seed from NumPy's global generator
            seed = np.random.randint(0, np.iinfo(np.int32).max)  # noqa: NPY002 (as sklearn)
            return np.random.RandomState(seed)
        return copy.deepcopy(check_random_state(self.random_state))

    def _check_same_network(self, old: dict, new: dict, incremental: bool) -> None:
        old = {"precision": "float32", **old}  # (fitted before precision existed)
        changed = sorted(k for k in new if k != "dropout" and new[k] != old[k])
        if changed:
            raise ValueError(
                f"{'partial_fit' if incremental else 'warm_start=True'} needs the same "
                f"network as the previous fit, but {', '.join(changed)} changed "
                f"({', '.join(f'{k}: {old[k]!r} -> {new[k]!r}' for k in changed)}); "
                "fit again with warm_start=False"
            )

    def _optim_options(self, n_train: int) -> OptimOptions:
        batch = min(200, n_train) if self.batch_size == "auto" else int(self.batch_size)
        return OptimOptions(
            solver=self.solver,
            batch_size=min(batch, n_train),
            shuffle=bool(self.shuffle),
            alpha=float(self.alpha),
            momentum=float(self.momentum),
            nesterov=bool(self.nesterovs_momentum),
            beta1=float(self.beta_1),
            beta2=float(self.beta_2),
            eps=float(self.epsilon),
            max_grad_norm=self.max_grad_norm,
        )

    def _training_callbacks(self) -> list:
        """MLPRegressor's behaviour as callbacks, then the user's (module docstring)."""
        verbose = int(self.verbose)
        cbs: list = [DivergenceRollback()]
        if self.learning_rate == "invscaling":
            cbs.append(InverseScaling(self.learning_rate_init, self.power_t))
        if verbose:
            cbs.append(ProgressPrinter(verbose, patience=self.n_iter_no_change))
        if self.learning_rate in _PLATEAU_FACTOR:
            cbs.append(
                ReduceLROnPlateau(
                    _PLATEAU_FACTOR[self.learning_rate],
                    self.n_iter_no_change,
                    _MIN_LR,
                    verbose=bool(verbose),
                )
            )
        else:
            cbs.append(EarlyStopping(self.n_iter_no_change, verbose=bool(verbose)))
        return cbs + check_callbacks(self.callbacks)

    def _split_tail(self, data: Dataset) -> tuple:
        """Training head and validation tail (the last ``validation_fraction`` of the samples,
        in their given order: for time-ordered data the validation set lies in the future)."""
        n = data.n
        n_val = int(np.ceil(self.validation_fraction * n))
        if n_val < 2 or n - n_val < 1:
            raise ValueError(
                f"The validation set is too small: validation_fraction={self.validation_fraction}"
                f" of {n} samples gives {n_val} validation and {n - n_val} training samples; "
                "early stopping needs at least 2 validation samples and 1 training sample. "
                "Increase 'validation_fraction' or the size of your dataset."
            )
        if data.sw is not None and not data.sw[n - n_val :].sum() > 0:
            # the validation score would be undefined (0/0) after every epoch
            raise ValueError(
                f"sample_weight is zero for every sample of the validation set (the last "
                f"{n_val} of {n} samples, validation_fraction={self.validation_fraction}); "
                "early stopping needs validation samples with positive weight"
            )
        return data.subset(slice(0, n - n_val)), data.subset(slice(n - n_val, n))

    def _eval_sets(
        self,
        eval_set: Any,
        seqs: Sequences,
        dtype: np.dtype,
        prev: Optional[FittedModel],
        targets: Any,
    ) -> dict:
        """fit's eval_set as {"validation_i": Dataset}, checked like the training data."""
        if eval_set is None:
            return {}
        sets = [eval_set] if isinstance(eval_set, tuple) else list(eval_set)
        out = {}
        spec = seqs.spec if seqs.spec is not None else prev.input
        for i, item in enumerate(sets):
            if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
                raise ValueError(
                    f"eval_set must be an (X, y) pair or a list of (X, y[, "
                    f"sample_weight]) tuples; item {i} is {type(item).__name__}"
                )
            Xv, yv = item[0], item[1]
            sv = item[2] if len(item) == 3 else None
            Xv = apply_layout(Xv, self.input_layout)  # the layout of X, as predict reads it
            vseqs = check_sequences(Xv, dtype=dtype, estimator=self, reset=False, spec=spec)
            Yv = self._targets.prepare_eval(self, yv, vseqs, dtype, targets)
            swv = check_sample_weight(sv, vseqs.n_samples, dtype)
            out[f"validation_{i}"] = Dataset(vseqs, Yv, swv, bool(self.return_sequences))
        return out

    # -- predicting ------------------------------------------------------------------------------
    def _check_X_predict(self, X: Any) -> tuple:
        """(sequences, the fitted model they are checked against: read once, so the whole
        call uses one consistent model even if another thread refits)."""
        fitted = self._require_fitted()
        shape = peek_shape(X)
        if shape is not None:
            self._network_for(fitted.config).check_predict_memory(*shape, X)
        X = apply_layout(X, self.input_layout)
        seqs = check_sequences(
            X, dtype=fitted.dtype, estimator=self, reset=False, spec=fitted.input, any_length=True
        )
        return seqs, fitted

    def _raw_predict(self, seqs: Sequences, fitted: FittedModel) -> np.ndarray:
        """The head's outputs (N, O) or, with return_sequences, (N, T, O); ValueError naming
        the sequences whose outputs are not finite (NaN logits would otherwise turn silently
        into class 0)."""
        net = self._network_for(fitted.config)
        return check_outputs(
            net.predict_raw(fitted.state.params, seqs.X, seqs.core_lengths, self.n_jobs)
        )

    def stream(self, batch: int = 1) -> Any:
        """A runner of the fitted network one timestep at a time, for online prediction::

            s = est.stream()
            for o_t in observations:          # o_t: (n_features,), or (batch, n_features)
                y_t = s.step(o_t)             # as predict() on the sequence seen so far

        The state lives in C++ and ``step(x, out=...)`` writes into a preallocated ``out``, so a
        loop allocates nothing. ``reset()`` starts a new sequence; ``state`` gets or sets the
        hidden (and cell) state. NaN, infinity or values beyond the dtype's range are refused
        (ValueError) and leave the state as it was. The stream copies the current parameters.
        The regressor's stream returns the outputs (n_outputs,) or (batch, n_outputs), all levels
        with loss="quantile" (predict_quantiles' row); the classifier's, the probabilities."""
        from ._memory import check_memory

        fitted = self._require_fitted()
        cfg = fitted.config
        if cfg["bidirectional"]:
            raise ValueError("a bidirectional network needs the whole sequence; it cannot stream")
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        check_memory(
            [
                (
                    "stream state and workspace",
                    int(batch) * cfg["num_layers"] * 8 * cfg["hidden_size"] * fitted.dtype.itemsize,
                )
            ],
            f"{type(self).__name__}.stream(batch={batch})",
        )
        return self._network_for(cfg).stream(fitted.state.params, int(batch))

    # -- saving ----------------------------------------------------------------------------------
    def save(self, path: Any) -> None:
        """Write the fitted estimator to ``path``: a portable ``.npz`` archive (parameters,
        hyperparameters, fitted attributes, optimizer state; no pickle), written atomically (a
        temporary file in the same folder renamed over ``path``). A save while another thread
        trains writes the model of the last completed epoch. Read it back with :meth:`load`
        or :func:`lstm_native.load`."""
        self._save_model(path, self._require_fitted())

    def _save_model(self, path: Any, fitted: FittedModel) -> None:
        from ._persist import save_model

        save_model(path, type(self).__name__, self.get_params(deep=False), fitted)

    @classmethod
    def load(cls, path: Any) -> _BaseRecurrentEstimator:
        """An estimator saved with :meth:`save`; ValueError naming the file and the problem
        for any damaged, foreign, crafted or newer file (see lstm_native._persist)."""
        from ._persist import load_model

        found, hyperparams, fitted = load_model(path, ESTIMATORS, expected=cls)
        return found.from_saved(hyperparams, fitted)

    @classmethod
    def from_saved(cls, hyperparams: dict, fitted: FittedModel) -> _BaseRecurrentEstimator:
        """The estimator of ``hyperparams`` and ``fitted`` as _persist.load_model returns them."""
        est = cls(**hyperparams)
        est._fitted = fitted
        est._network_for(fitted.config)
        return est


for _name, _prop in fitted_properties().items():
    setattr(_BaseRecurrentEstimator, _name, _prop)
del _name, _prop


__all__ = ["ESTIMATORS", "_BaseRecurrentEstimator"]
