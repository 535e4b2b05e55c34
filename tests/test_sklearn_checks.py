"""scikit-learn's estimator checks (``parametrize_with_checks``) for the estimators and the
scaler, on sklearn's own 2-D data (2-D X = univariate sequences, one step per column).

The networks are kept small (hidden_size 8, at most 60 epochs) so the whole file runs in
seconds; they still have to learn sklearn's toy problems (check_classifiers_train needs 83%
accuracy on blobs, check_regressors_train an R^2 above 0.5).
"""

import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from lstm_native import LSTMClassifier, LSTMRegressor, SequenceScaler

# A small max_iter is deliberate here: the checks only need a usable model, not convergence.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(hidden_size=8, max_iter=60, learning_rate_init=0.02)

# Fitting with integer sample weights vs. repeating samples: the weighted losses and the L2 term
# (normalized by the total sample weight, as sklearn's MLP) are equal, but in float32 the
# rounding of the two different computations can differ by more than the check's tolerance
# (whether it does depends on the kernels' rounding: the check is not strict either way).
# The "EXACT" instances below (float64) pass the check, which shows the weighting itself is
# right; so does a float64 instance with alpha > 0.
SAMPLE_WEIGHT_REASON = (
    "float32 rounding of weighting vs repeating samples can exceed the check's tolerance; the "
    "float64 instances pass this check"
)

EXACT = dict(SMALL, dtype="float64")
FASTER = dict(EXACT, learning_rate_init=0.05)

ESTIMATORS = [
    LSTMRegressor(**SMALL),
    LSTMClassifier(**SMALL),
    LSTMRegressor(cell="gru", **EXACT),
    LSTMClassifier(cell="rnn", **EXACT),
    # the other losses (predict is the median of a quantile head, score its R^2), whose
    # bounded gradients take a larger step to learn the toy problems in as many epochs
    LSTMRegressor(loss="quantile", quantiles=[0.2, 0.5, 0.8], **FASTER),
    LSTMRegressor(loss="huber", huber_delta=0.5, cell="gru", **FASTER),
    SequenceScaler(),
]


def _float32_sample_weight_check(estimator, check):
    name = getattr(check, "func", check).__name__
    return (
        name == "check_sample_weight_equivalence_on_dense_data"
        and isinstance(estimator, (LSTMRegressor, LSTMClassifier))
        and estimator.dtype != "float64"
    )


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    if _float32_sample_weight_check(estimator, check):
        # an expected failure that is not strict (the project's xfail_strict is): it passes or
        # fails with the kernels' rounding
        try:
            check(estimator)
        except AssertionError:
            pytest.xfail(SAMPLE_WEIGHT_REASON)
        return
    check(estimator)


def test_estimators_are_recognized_by_sklearn():
    from sklearn.base import is_classifier, is_regressor

    assert is_regressor(LSTMRegressor())
    assert is_classifier(LSTMClassifier())
    assert LSTMRegressor().__sklearn_tags__().input_tags.three_d_array
    assert issubclass(ConvergenceWarning, UserWarning)
