"""Value metrics on degenerate rows: undefined metrics are NaN, without a warning."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from churnclv.training._metrics import value_metrics


@pytest.mark.parametrize(
    ("actual", "pred"),
    [
        ([0.0, 5.0, 10.0], [0.1, 0.1, 0.1]),  # np.std of these is 1.4e-17, not 0
        ([2.2] * 6, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),  # constant labels (np.std > 0 too)
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ([7.0], [3.0]),
        ([1.0, np.nan, 3.0], [1.0, 2.0, 3.0]),
    ],
)
def test_spearman_of_constant_or_tiny_input_is_nan_without_a_warning(
    actual: list[float], pred: list[float]
) -> None:
    """scipy's ConstantInputWarning (or any other) is never raised; Spearman is NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = value_metrics(np.array(actual), np.array(pred))
    assert math.isnan(m["value_spearman"])


def test_spearman_of_varying_input_is_the_rank_correlation() -> None:
    """Rows that vary get scipy's Spearman."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = value_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.1, 0.3, 0.2, 0.4]))
    assert m["value_spearman"] == pytest.approx(0.8)
