"""Data sets: a small real series that ships with the package (no download needed), and
generators of the long-time-lag tasks of Hochreiter & Schmidhuber (1997), "Long Short-Term
Memory", Neural Computation 9(8): the adding problem, the copy (memory) task and the temporal
order problem. The generators are seeded (``random_state``), take any length, and return
``(X, y)`` NumPy arrays ready for :class:`~lstm_native.LSTMRegressor` /
:class:`~lstm_native.LSTMClassifier`: ``X`` of shape (n_samples, n_timesteps, n_features).
"""

from __future__ import annotations

import numpy as np

# Monthly totals of international airline passengers (thousands), January 1949 to December 1960.
# Source: G. E. P. Box and G. M. Jenkins, "Time Series Analysis: Forecasting and Control"
# (Holden-Day, 1976), Series G; also R's `datasets::AirPassengers`
# (Box, Jenkins & Reinsel, 3rd ed., 1994, Series G). One row per year, January..December.
_AIRLINE_PASSENGERS = {
    1949: (112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118),
    1950: (115, 126, 141, 135, 125, 149, 170, 170, 158, 133, 114, 140),
    1951: (145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166),
    1952: (171, 180, 193, 181, 183, 218, 230, 242, 209, 191, 172, 194),
    1953: (196, 196, 236, 235, 229, 243, 264, 272, 237, 211, 180, 201),
    1954: (204, 188, 235, 227, 234, 264, 302, 293, 259, 229, 203, 229),
    1955: (242, 233, 267, 269, 270, 315, 364, 347, 312, 274, 237, 278),
    1956: (284, 277, 317, 313, 318, 374, 413, 405, 355, 306, 271, 306),
    1957: (315, 301, 356, 348, 355, 422, 465, 467, 404, 347, 305, 336),
    1958: (340, 318, 362, 348, 363, 435, 491, 505, 404, 359, 310, 337),
    1959: (360, 342, 406, 396, 420, 472, 548, 559, 463, 407, 362, 405),
    1960: (417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432),
}


def load_airline_passengers(return_dates: bool = False):
    """The classic monthly airline passengers series (Box & Jenkins Series G, "AirPassengers").

    144 monthly totals of international airline passengers, in thousands, January 1949 to
    December 1960: trend, multiplicative yearly seasonality (take logs), no missing values.

    Parameters
    ----------
    return_dates : bool, default=False
        Also return the months as a ``numpy.datetime64[M]`` array.

    Returns
    -------
    y : ndarray of shape (144,), float64
    dates : ndarray of shape (144,), datetime64[M], only if ``return_dates``
    """
    y = np.array(
        [v for year in sorted(_AIRLINE_PASSENGERS) for v in _AIRLINE_PASSENGERS[year]],
        dtype=np.float64,
    )
    if return_dates:
        dates = np.arange(np.datetime64("1949-01"), np.datetime64("1961-01"), dtype="datetime64[M]")
        return y, dates
    return y


def _check_count(name: str, value, minimum: int) -> int:
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def make_adding_problem(n_samples: int, n_timesteps: int, random_state=None):
    """The adding problem (Hochreiter & Schmidhuber 1997, experiment 4), in its common modern
    formulation (e.g. Le, Jaitly & Hinton 2015; Arjovsky, Shah & Bengio 2016).

    Each sequence has two input channels. Channel 0 holds values drawn independently from
    U(0, 1); channel 1 is a marker channel, 0 everywhere except for exactly two 1s: one at a
    position drawn uniformly from the first half ``[0, T//2)`` and one from the second half
    ``[T//2, T)``. The target is the sum of the two marked values. The network must find the
    marked values and carry the first one across at least one and up to T-1 steps of
    distractors; the longest lags need the most memory.

    Statistics: the target is the sum of two independent U(0, 1) values, so its mean is 1 and
    its variance 2 * 1/12 = 1/6. Always predicting the mean therefore gives a mean squared
    error of 1/6 = 0.1667, the baseline a model must beat to have learned anything; a model that
    predicts the sum of one of the two values plus 0.5 reaches 1/12 = 0.083.

    (The 1997 paper draws values from [-1, 1], marks one of the first ten positions and one
    before T/2, and scales the target to [0, 1]; the formulation above is the one now used to
    compare recurrent networks.)

    Parameters
    ----------
    n_samples : int >= 1
    n_timesteps : int >= 2, the sequence length T
    random_state : None, int or numpy Generator

    Returns
    -------
    X : ndarray (n_samples, n_timesteps, 2), float64: values and markers
    y : ndarray (n_samples,), float64: the sum of the two marked values
    """
    n = _check_count("n_samples", n_samples, 1)
    T = _check_count("n_timesteps", n_timesteps, 2)
    rng = np.random.default_rng(random_state)
    values = rng.uniform(0.0, 1.0, size=(n, T))
    half = T // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, T, size=n)
    markers = np.zeros((n, T))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    X = np.stack([values, markers], axis=-1)
    y = values[rows, first] + values[rows, second]
    return X, y


def make_copy_task(
    n_samples: int,
    n_symbols: int = 8,
    seq_len: int = 10,
    delay: int = 10,
    return_sequences: bool = True,
    random_state=None,
):
    """The copy (memory) task: read a sequence of symbols, wait, then reproduce it.

    The alphabet has ``n_symbols`` data symbols (classes 0..n_symbols-1) plus two more input
    symbols: the blank (``n_symbols``) and the recall marker (``n_symbols + 1``). Inputs are
    one-hot, ``n_features = n_symbols + 2``. With S = ``seq_len``:

    ``return_sequences=True`` (the copy task of Arjovsky, Shah & Bengio 2016, after
    Hochreiter & Schmidhuber 1997): T = 2*S + delay steps::

        input:   s_1 .. s_S | blank x (delay-1) | marker | blank x S
        target:  blank x (S + delay)                     | s_1 .. s_S

    ``y`` holds one label per step, (n_samples, T), for ``LSTMClassifier(return_sequences=True)``;
    the blank is class ``n_symbols``. Every symbol is recalled ``S + delay`` steps after it was
    read. Predicting blanks and then uniformly random symbols gives a cross-entropy of
    ``S * log(n_symbols) / T`` per step, the memoryless baseline.

    ``return_sequences=False`` (the classic single-recall variant of the 1997 paper's
    experiment 2): T = S + delay steps::

        input:   s_1 .. s_S | blank x (delay-1) | marker

    and ``y`` (n_samples,) is the *first* symbol s_1, which the network must hold for
    T-1 steps of distractors (the later symbols and the blanks) and give at the marker.
    Chance level is 1/n_symbols.

    Symbols are drawn uniformly and independently.

    Returns
    -------
    X : ndarray (n_samples, T, n_symbols + 2), float64, one-hot
    y : ndarray of int64 labels, (n_samples, T) or (n_samples,)
    """
    n = _check_count("n_samples", n_samples, 1)
    K = _check_count("n_symbols", n_symbols, 1)
    S = _check_count("seq_len", seq_len, 1)
    delay = _check_count("delay", delay, 1)
    rng = np.random.default_rng(random_state)
    blank, marker = K, K + 1
    symbols = rng.integers(0, K, size=(n, S))
    T = 2 * S + delay if return_sequences else S + delay
    tokens = np.full((n, T), blank, dtype=np.int64)
    tokens[:, :S] = symbols
    tokens[:, S + delay - 1] = marker
    X = np.zeros((n, T, K + 2))
    np.put_along_axis(X, tokens[:, :, None], 1.0, axis=2)
    if return_sequences:
        y = np.full((n, T), blank, dtype=np.int64)
        y[:, S + delay :] = symbols
    else:
        y = symbols[:, 0].astype(np.int64)
    return X, y


#: The symbols of the temporal order problem, in the order of their one-hot columns.
TEMPORAL_ORDER_SYMBOLS = ("a", "b", "c", "d", "X", "Y", "B", "E")
#: Its classes, in the order of their labels.
TEMPORAL_ORDER_CLASSES = ("XX", "XY", "YX", "YY")


def make_temporal_order(n_samples: int, n_timesteps: int = 100, random_state=None):
    """The temporal order problem (Hochreiter & Schmidhuber 1997, experiment 6a).

    Each sequence starts with the begin symbol B, ends with the end symbol E, and in between
    holds distractors drawn uniformly from {a, b, c, d}, except at two positions t1 < t2 that
    hold the relevant symbols, each X or Y. The class is their order: XX (0), XY (1), YX (2) or
    YY (3), so the network must remember the first relevant symbol, across distractors, until
    the second arrives and then until the end. As in the paper (lengths 100..110, t1 in 10..20,
    t2 in 50..60), t1 is drawn uniformly from about [0.1 T, 0.2 T] and t2 from about
    [0.5 T, 0.6 T]; any T >= 4 works (the positions are clipped to the interior of the
    sequence, t1 < t2). Classes are balanced in expectation; chance accuracy is 1/4.

    Returns
    -------
    X : ndarray (n_samples, n_timesteps, 8), float64, one-hot over TEMPORAL_ORDER_SYMBOLS
        (a, b, c, d, X, Y, B, E)
    y : ndarray (n_samples,), int64 labels 0..3 for TEMPORAL_ORDER_CLASSES (XX, XY, YX, YY)
    """
    n = _check_count("n_samples", n_samples, 1)
    T = _check_count("n_timesteps", n_timesteps, 4)
    rng = np.random.default_rng(random_state)
    sym = {s: i for i, s in enumerate(TEMPORAL_ORDER_SYMBOLS)}
    tokens = rng.integers(0, 4, size=(n, T))  # distractors a..d
    tokens[:, 0] = sym["B"]
    tokens[:, -1] = sym["E"]

    def window(lo: float, hi: float, low_bound: int, high_bound: int):
        a = min(max(int(round(lo * T)), low_bound), high_bound)
        b = min(max(int(round(hi * T)), a), high_bound)
        return a, b

    a1, b1 = window(0.1, 0.2, 1, T - 3)
    t1 = rng.integers(a1, b1 + 1, size=n)
    a2, b2 = window(0.5, 0.6, b1 + 1, T - 2)
    t2 = rng.integers(a2, b2 + 1, size=n)
    first_is_y = rng.integers(0, 2, size=n)
    second_is_y = rng.integers(0, 2, size=n)
    rows = np.arange(n)
    tokens[rows, t1] = sym["X"] + first_is_y
    tokens[rows, t2] = sym["X"] + second_is_y
    X = np.zeros((n, T, len(TEMPORAL_ORDER_SYMBOLS)))
    np.put_along_axis(X, tokens[:, :, None], 1.0, axis=2)
    y = (2 * first_is_y + second_is_y).astype(np.int64)
    return X, y


__all__ = [
    "load_airline_passengers",
    "make_adding_problem",
    "make_copy_task",
    "make_temporal_order",
    "TEMPORAL_ORDER_SYMBOLS",
    "TEMPORAL_ORDER_CLASSES",
]
