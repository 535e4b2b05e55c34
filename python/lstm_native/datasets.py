"""Small real data sets that ship with the package (no download needed)."""

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
    y = np.array([v for year in sorted(_AIRLINE_PASSENGERS) for v in _AIRLINE_PASSENGERS[year]],
                 dtype=np.float64)
    if return_dates:
        dates = np.arange(np.datetime64("1949-01"), np.datetime64("1961-01"),
                          dtype="datetime64[M]")
        return y, dates
    return y


__all__ = ["load_airline_passengers"]
