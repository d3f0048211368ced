"""BoosterModel.matrix codes categorical columns the same whatever their pandas dtype."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnclv.training._model import BoosterModel


def _model() -> BoosterModel:
    m = BoosterModel("churn", {})
    m.features_ = ["recency_days", "plan"]
    m.categories_ = {"plan": ["basic", "gold", "pro"]}
    return m


def test_category_and_string_columns_get_the_same_codes() -> None:
    """Known values get their training code; unseen and missing values get NaN, either dtype."""
    plans = ["pro", "unknown", None, "basic", "pro"]
    as_str = pd.DataFrame({"recency_days": [1.0, 2, 3, 4, 5], "plan": pd.array(plans, dtype="str")})
    as_cat = as_str.assign(plan=as_str["plan"].astype("category"))
    want = np.array([2.0, np.nan, np.nan, 0.0, 2.0])
    m = _model()
    for frame in (as_str, as_cat, as_cat):  # the second category call uses the cached lookup
        np.testing.assert_array_equal(m.matrix(frame)[:, 1], want)
        np.testing.assert_array_equal(m.matrix(frame)[:, 0], [1.0, 2, 3, 4, 5])


def test_an_all_missing_category_column_codes_to_nan() -> None:
    """A category column with no categories at all (every value missing) gives NaN codes."""
    frame = pd.DataFrame(
        {"recency_days": [1.0, 2.0], "plan": pd.Series([None, None], dtype="category")}
    )
    assert np.isnan(_model().matrix(frame)[:, 1]).all()
