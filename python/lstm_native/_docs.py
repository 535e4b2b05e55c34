"""The estimators' shared docstring text (one definition for the regressor and the
classifier; formatted with the score, the metric and the extra parameters and attributes)."""

from __future__ import annotations

import inspect
from typing import Any


def _signature_with(init: Any, **keywords: Any) -> inspect.Signature:
    """``init``'s signature with keyword-only parameters (name=default) appended.
    scikit-learn reads an estimator's parameters from the signature of its ``__init__``, which
    must not hide them in ``**kwargs``: a subclass that adds parameters of its own (and passes
    the shared ones on as ``**kwargs``) shows the base class's signature plus its own, so that
    the shared parameters are listed once, in _BaseRecurrentEstimator.__init__."""
    sig = inspect.signature(init)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in keywords.items()
    ]
    return sig.replace(parameters=[*sig.parameters.values(), *extra])


_PARAMETERS_DOC = """
    Parameters
    ----------
    cell : str, default="lstm"
        The recurrent cell: "lstm", "gru", "rnn" (the tanh Elman RNN; "rnn_relu" uses relu),
        or an LSTM variant ("lstm_peephole", "lstm_1997", "cifg", "no_input_gate",
        "no_output_gate", "no_input_activation", "no_output_activation", "ungated",
        "cell_as_input"; see the README).
    hidden_size : int, default=32
        Hidden units per layer and direction.
    num_layers : int, default=1
        Stacked recurrent layers.
    dropout : float in [0, 1), default=0.0
        Dropout on the outputs of every recurrent layer but the last (as PyTorch; no effect
        with one layer), during training only.
    bidirectional : bool, default=False
        Also run every layer backwards in time; the head then reads the forward direction's
        last state concatenated with the backward direction's final state.
    return_sequences : bool, default=False
        Predict at every step (sequence-to-sequence, y per step) instead of once per sequence.
    solver : {{"adam", "adamw", "sgd", "rmsprop"}}, default="adam"
        "adamw" is Adam with decoupled weight decay ``lr * alpha`` on the weight matrices.
    alpha : float, default=1e-4
        L2 penalty on the weight matrices (decoupled weight decay for "adamw").
    batch_size : int or "auto", default="auto"
        Sequences per minibatch; "auto" is ``min(200, n_samples)``. Larger values are clipped
        to the number of training samples.
    learning_rate : {{"constant", "invscaling", "adaptive", "plateau"}}, default="constant"
        Learning-rate schedule, applied per epoch for every solver (see the module docstring).
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
        Exponent of "invscaling".
    max_iter : int, default=200
        Maximum number of epochs (one epoch per ``partial_fit`` call).
    shuffle : bool, default=True
        Shuffle the training sequences every epoch (seeded by ``random_state``).
    random_state : int, RandomState or None
        Seeds the initial weights, shuffling and dropout. With an int, fitting the same data
        gives bit-identical predictions.
    tol, n_iter_no_change : convergence test, as MLPRegressor (see the module docstring).
    verbose : bool or int, default=False
        1: one line per epoch (loss, validation score, time); 2: also learning rate, optimizer
        steps, samples seen, best value so far, epochs without improvement, total time.
    warm_start : bool, default=False
        Continue from the current weights on ``fit`` (with a fresh optimizer, as MLP).
    momentum, nesterovs_momentum : for solver="sgd" (sklearn's SGD with momentum).
    early_stopping : bool, default=False
        Validate after every epoch and stop when the validation score ({score}) stops
        improving, then restore the best weights. The validation data is ``fit``'s
        ``eval_set`` (its first set) when given, else the *last* ``validation_fraction`` of
        the samples (in the given order, so time-ordered windows validate on the future).
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : Adam / AdamW, as PyTorch and Kingma & Ba's Algorithm 1
        (epsilon added to the bias-corrected sqrt(v)). "rmsprop" uses epsilon and a fixed decay
        of 0.99 for its running mean of squared gradients (PyTorch's default), not beta_2.
    max_grad_norm : float or None, default=5.0
        Clip each minibatch gradient to this global L2 norm; None disables clipping.
    dtype : {{"float32", "float64"}}, default="float32"
        Precision of the network (parameters, computation and predictions).
    precision : {{"float32", "bfloat16"}}, default="float32"
        "bfloat16": the recurrent layers' matrix products (x W_ihᵀ, h W_hhᵀ and their
        gradients) take bfloat16 operands (round to nearest even) and sum in float32; weights,
        optimizer state, cell state, pointwise math, head and predictions stay float32. Needs
        dtype "float32". Fast on CPUs with Intel AMX (build_info()["bf16_kernel"] == "amx");
        elsewhere emulated with the same rounding (same results, float32 speed), or on
        AVX512-BF16 when LSTM_NATIVE_BF16_KERNEL=avx512_bf16 asks for it (not yet faster).
    n_jobs : int or None, default=None
        Threads for training and prediction. None (or negative): all hardware threads; a batch
        large enough is split into independent parts (up to 32, from its size) run on
        separate threads, and a small batch with a large hidden size has each step's products
        split by columns; small problems run on one thread. k > 0: at most k threads (more
        than the machine's cores works, but only oversubscribes it). The split depends on the
        sizes only: results are bit-identical for any value.
    input_layout : {{"ntc", "nct"}}, default="ntc"
        The axes of 3-D X (and of each array of a list): (samples, timesteps, channels), or
        "nct" for (samples, channels, timesteps) as aeon and sktime store series. Fitting on
        3-D data with at most 3 timesteps and 10 or more features warns that it looks
        transposed.
    callbacks : list of lstm_native.callbacks.Callback or None, default=None
        Called around every epoch after the built-in ones (see :mod:`lstm_native.callbacks`).
{extra}
    Attributes
    ----------
    loss_ : float, the last epoch's mean training loss.
    loss_curve_ : list, the mean training loss of every epoch.
    validation_scores_ : list or None, the validation score of every epoch (early stopping).
    best_validation_score_ : float or None.
    best_loss_ : float or None, the best training loss (None with early stopping, as MLP).
    evals_result_ : dict, ``{{"validation_0": {{"{metric}": [score per epoch]}}, ...}}`` for the
        eval sets of the last fit.
    n_iter_ : int, epochs run by the last ``fit`` (cumulative over ``partial_fit`` calls).
    t_ : int, training samples seen (sum over epochs).
    learning_rate_ : float, the learning rate the schedule has reached.
    n_features_in_ : int, features per step; for 2-D X the number of timesteps (sklearn's rule).
    feature_names_in_ : array, for 2-D DataFrame input.
    n_outputs_ : int, outputs per sequence (or per step).
    params_ : ndarray (num_params,), every parameter in the core's layout
        (see :meth:`named_parameters`).
    network_config_ : dict, the network the core runs (cell, sizes, loss, dtype).{attrs}
"""

# The regressor's own parameters (the ``extra`` of its docstring).
_REGRESSOR_LOSS_DOC = """\
    loss : {"squared_error", "absolute_error", "huber", "quantile"}, default="squared_error"
        The training loss, elementwise in e = prediction - y and averaged over the outputs,
        the samples (weighted by sample_weight) and, with return_sequences, the real steps:
        "squared_error" 0.5 * e^2 (MLPRegressor's); "absolute_error" |e| (the median, robust
        to outliers); "huber" 0.5 * e^2 where |e| <= huber_delta, else huber_delta * (|e| -
        0.5 * huber_delta) (PyTorch's huber_loss: squared near the target, absolute far from
        it); "quantile" the pinball loss u * (q - [u < 0]), u = y - prediction, at every level
        q of ``quantiles``: the network then predicts every level of every output (n_outputs *
        n_quantiles outputs, output k * n_quantiles + j being level j of output k),
        :meth:`predict` returns the median (the level 0.5 when it is among ``quantiles``, else
        the middle level: the lower of the two middle ones for an even number of levels) and
        :meth:`predict_quantiles` every level. For every loss ``score`` is the R^2 of
        :meth:`predict` and ``stream()`` gives the network's raw outputs (all the levels).
    quantiles : list of float or None, default=None
        The levels of loss="quantile": in (0, 1), strictly increasing, at most 99; None means
        [0.1, 0.5, 0.9]. Ignored by the other losses.
    huber_delta : float > 0, default=1.0
        Where loss="huber" turns from squared to absolute, in units of y. Ignored by the other
        losses.
"""
