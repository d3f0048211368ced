"""Value tiers: cut points against a reference sample or shares of the batch itself.

Shared by the predicted-value tier and the historic-spend tier of
:func:`churnclv.decisions.decide_columns`; reference samples are converted to
arrays once and their quantiles memoised (the service decides one customer at
a time against the same reference).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from churnclv._policy import Policy

__all__ = ["historic_tiers", "tier_rank", "tiers_against", "tiers_by_rank"]


def _floats(column: Any) -> np.ndarray:
    """A column (Series, array or list) as a float array, missing values as NaN."""
    if hasattr(column, "to_numpy"):
        return np.asarray(column.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    return np.asarray(column, dtype=float)


#: Reference samples as arrays, with their quantiles: id(list) -> (list, array, {q: value}).
#: The list itself is kept, so its id cannot be reused while the entry lives.
_SAMPLES: dict[int, tuple[list[float], np.ndarray, dict[float, float]]] = {}


def _sample(sample: list[float]) -> tuple[np.ndarray, dict[float, float]]:
    """A reference sample as a float array plus its quantile memo, converted once per list
    (the service decides one customer at a time against the same reference)."""
    hit = _SAMPLES.get(id(sample))
    if hit is None or hit[0] is not sample:
        if len(_SAMPLES) > 64:
            _SAMPLES.clear()
        hit = _SAMPLES[id(sample)] = (sample, np.asarray(sample, dtype=float), {})
    return hit[1], hit[2]


def _quantile(sample: list[float], q: float) -> float:
    """``np.quantile(sample, q)``, memoised per sample."""
    ref, memo = _sample(sample)
    if q not in memo:
        memo[q] = float(np.quantile(ref, q))
    return memo[q]


def tier_rank(tiers: np.ndarray) -> np.ndarray:
    """0 for high, 1 for medium, 2 for low (:data:`VALUE_TIERS` order)."""
    return np.select([tiers == "high", tiers == "medium"], [0, 1], 2)


def tiers_against(x: np.ndarray, ref: list[float], policy: Policy) -> np.ndarray:
    """Value tiers of ``x`` cut at the reference sample's quantiles."""
    high_min = _quantile(ref, 1 - policy.high_share) if policy.high_share > 0 else np.inf
    mid_share = policy.high_share + policy.medium_share
    medium_min = _quantile(ref, 1 - mid_share) if mid_share > 0 else np.inf
    return np.select([x >= high_min, x >= medium_min], ["high", "medium"], "low")


def tiers_by_rank(x: np.ndarray, policy: Policy) -> np.ndarray:
    """Value tiers of ``x`` as shares of ``x`` itself (ties by position)."""
    rank = pd.Series(-x).rank(method="first").to_numpy() / max(len(x), 1)
    return np.select(
        [rank <= policy.high_share, rank <= policy.high_share + policy.medium_share],
        ["high", "medium"],
        "low",
    )


def historic_tiers(
    columns: Mapping[str, Any], policy: Policy, reference: Mapping[str, list[float]] | None
) -> np.ndarray:
    """Tiers of past spend (``monetary_total``) with the value tiers' shares, against the
    reference population's spend when given, else against the columns themselves."""
    spend = _floats(columns["monetary_total"])
    if reference and "monetary_total" in reference:
        return tiers_against(spend, reference["monetary_total"], policy)
    return tiers_by_rank(spend, policy)
