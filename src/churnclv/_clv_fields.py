"""The marketer fields of a score: orders, next order date, CLV to date and ahead, ranks.

Computed from one customer's own row and the champion alone, so one customer
scored online gets exactly what the batch gives them, whoever else is scored:

- ``predicted_orders``: expected orders (purchase days) within the value horizon.
  BG/NBD's expectation with the champion's BTYD pair, scaled by how much more
  or less likely the churn model finds an order within the churn horizon than
  BG/NBD does: ``E_bgnbd[N(H)] x (1 - P(churn)) / (1 - P_bgnbd(no order in
  churn horizon))``. The churn model's better view of activity moves the count;
  BG/NBD gives its size over the horizon. Without a BTYD pair:
  ``predicted_value / monetary_mean``.
- ``expected_next_order_date``: ``as_of`` + the median wait to the next order of a
  customer who orders within the value horizon. Given alive, BG/NBD's waiting
  time is Lomax (``P(W > t) = (beta / (beta + t))^s``, ``s = r + x``,
  ``beta = alpha + T``), truncated at the horizon. Null when the probability of
  an order within the value horizon (BG/NBD's, rescaled by the churn model as
  above) is below :data:`MIN_ORDER_PROBABILITY`, or without a BTYD pair.
- ``historic_clv``: net spend to date (``monetary_total``); ``predicted_clv``: the
  predicted value over the value horizon; ``total_clv``: their sum.
- ``churn_rank_pct``, ``value_rank_pct``: percentile (0-100, mid-rank for ties) of
  the churn probability and predicted value in the champion's reference
  population (the validation customers it was trained against; the value tiers
  cut the same population). ``value_rank_pct_in_stage``: the same within the
  customer's lifecycle stage, against a sample of that population staged by the
  scoring policy (null when none of that population is in the stage). Null for a
  champion trained without these references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from churnclv.decisions import Policy
    from churnclv.training import Champion

__all__ = [
    "CLV_COLUMNS",
    "MIN_ORDER_PROBABILITY",
    "add_to_records",
    "clv_columns",
    "rank_reference",
]

CLV_COLUMNS = (
    "predicted_orders",
    "expected_next_order_date",
    "historic_clv",
    "predicted_clv",
    "total_clv",
    "churn_rank_pct",
    "value_rank_pct",
    "value_rank_pct_in_stage",
)
#: Below this probability of an order within the value horizon no next order date is given.
MIN_ORDER_PROBABILITY = 0.1
#: Rows of the reference population kept for ranks within a lifecycle stage.
_SAMPLE_ROWS = 2000
_QUANTILES = 1001
_STAGE_INPUTS = ("recency_days", "tenure_days", "gap_mean_days")


def _floats(values: Any) -> np.ndarray:
    if hasattr(values, "to_numpy"):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64)


def rank_reference(
    frame: pd.DataFrame,
    churn_probability: np.ndarray,
    predicted_value: np.ndarray,
    *,
    seed: int = 0,
) -> dict[str, list[float]]:
    """What the rank fields rank against, to store in the value model's ``reference_``.

    ``churn_probability`` holds 1,001 quantiles of the population's churn
    probabilities; ``stage_sample_*`` hold up to 2,000 of its rows (recency,
    tenure, usual gap with -1 for none, predicted value), staged at scoring
    time by the scoring policy. (The predicted-value quantiles are
    :func:`churnclv.decisions.reference_distribution`'s.)

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from churnclv._clv_fields import rank_reference
    >>> rows = pd.DataFrame({"recency_days": [5.0, 200.0], "tenure_days": [300.0, 400.0],
    ...                      "gap_mean_days": [20.0, None]})
    >>> ref = rank_reference(rows, np.array([0.1, 0.9]), np.array([80.0, 3.0]))
    >>> len(ref["churn_probability"]), ref["stage_sample_gap_mean_days"]
    (1001, [20.0, -1.0])
    """
    p = np.asarray(churn_probability, dtype=float)
    v = np.asarray(predicted_value, dtype=float)
    out: dict[str, list[float]] = {}
    if np.isfinite(p).any():
        probs = np.linspace(0.0, 1.0, _QUANTILES)
        q = np.quantile(p[np.isfinite(p)], probs, method="inverted_cdf")
        out["churn_probability"] = q.round(6).tolist()
    cols = {c: _floats(frame[c]) for c in _STAGE_INPUTS if c in frame}
    if len(cols) < len(_STAGE_INPUTS) or len(frame) == 0:
        return out
    keep = np.isfinite(v) & np.isfinite(cols["recency_days"]) & np.isfinite(cols["tenure_days"])
    idx = np.flatnonzero(keep)
    if len(idx) > _SAMPLE_ROWS:
        idx = np.sort(np.random.default_rng(seed).choice(idx, _SAMPLE_ROWS, replace=False))
    cols["gap_mean_days"] = np.where(np.isfinite(cols["gap_mean_days"]), cols["gap_mean_days"], -1)
    for c, values in cols.items():
        out[f"stage_sample_{c}"] = values[idx].round(6).tolist()
    out["stage_sample_predicted_value"] = v[idx].round(6).tolist()
    return out


def _pct(reference: Sequence[float] | np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mid-rank percentile of ``x`` in the sorted ``reference`` (0-100, one decimal)."""
    ref = np.asarray(reference, dtype=float)
    if ref.size == 0:
        return np.full(len(x), np.nan)
    lo = np.searchsorted(ref, x, side="left")
    hi = np.searchsorted(ref, x, side="right")
    out = np.round(50.0 * (lo + hi) / ref.size, 1)
    return np.where(np.isfinite(x), out, np.nan)


#: Staged reference samples: (id(sample), id(policy), churn horizon) -> (sample, policy,
#: {stage: sorted predicted values}). The objects are kept so their ids stay theirs.
_STAGED: dict[tuple[int, int, float], tuple[object, object, dict[str, np.ndarray]]] = {}


def _staged_values(
    reference: Mapping[str, list[float]], policy: Policy, churn_horizon_days: float
) -> dict[str, np.ndarray] | None:
    """The reference sample's predicted values by lifecycle stage under ``policy``, sorted."""
    from churnclv.decisions import decide_columns

    sample = reference.get("stage_sample_predicted_value")
    if not sample:
        return None
    key = (id(sample), id(policy), float(churn_horizon_days))
    hit = _STAGED.get(key)
    if hit is not None and hit[0] is sample and hit[1] is policy:
        return hit[2]
    v = np.asarray(sample, dtype=float)
    gap = np.asarray(reference["stage_sample_gap_mean_days"], dtype=float)
    columns = {
        "recency_days": np.asarray(reference["stage_sample_recency_days"], dtype=float),
        "tenure_days": np.asarray(reference["stage_sample_tenure_days"], dtype=float),
        "gap_mean_days": np.where(gap < 0, np.nan, gap),
        "predicted_value": v,
        # the stage reads recency, tenure and gap only; the rest only has to be there
        "churn_probability": np.zeros(v.size),
        "frequency": np.zeros(v.size),
        "monetary_total": np.zeros(v.size),
    }
    stages = decide_columns(columns, policy, churn_horizon_days=churn_horizon_days)
    staged = {
        s: np.sort(v[stages["lifecycle_stage"] == s]) for s in np.unique(stages["lifecycle_stage"])
    }
    if len(_STAGED) > 16:
        _STAGED.clear()
    _STAGED[key] = (sample, policy, staged)
    return staged


def _btyd_params(champion: Champion) -> dict[str, Any] | None:
    for model in (champion.churn, champion.value):
        params = getattr(model, "btyd_", None)
        if params:
            return dict(params)
    return None


def _orders_and_wait(
    features: Mapping[str, Any] | pd.DataFrame,
    churn_probability: np.ndarray,
    params: dict[str, Any] | None,
    horizons: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted orders within the value horizon and the days to the next order (NaN: none)."""
    from churnclv.training._btyd import BTYDModels, btyd_arrays

    n = len(churn_probability)
    if params is None:
        return np.full(n, np.nan), np.full(n, np.nan)
    value_h = horizons[1]
    models = BTYDModels.from_params(params)
    try:
        _, _, ((_, none_c), (orders_v, none_v)) = btyd_arrays(models, features, horizons)
    except (ValueError, KeyError):  # rows BG/NBD cannot read: no BTYD-based fields
        return np.full(n, np.nan), np.full(n, np.nan)
    with np.errstate(all="ignore"):
        # how much likelier the churn model finds an order within the churn horizon
        scale = (1.0 - churn_probability) / np.maximum(1.0 - none_c, 1e-9)
        orders = orders_v * scale
        p_order = np.clip((1.0 - none_v) * scale, 0.0, 1.0)
        unit = float(params["time_unit_days"])
        bg = params["bgnbd"]
        s = bg["r"] + _floats(features["frequency"])
        beta = bg["alpha"] + _floats(features["tenure_days"]) / unit
        by_horizon = 1.0 - (beta / (beta + value_h / unit)) ** s  # P(W <= H | alive)
        wait = beta * ((1.0 - by_horizon / 2.0) ** (-1.0 / s) - 1.0) * unit
    wait = np.where(np.isfinite(wait) & (p_order >= MIN_ORDER_PROBABILITY), wait, np.nan)
    return orders, wait


def _dates(as_of: Any, days: np.ndarray) -> list[str | None]:
    """ISO dates ``as_of + days`` (None where ``days`` is NaN)."""
    base = pd.to_datetime(pd.Series(np.asarray(as_of)).reset_index(drop=True))
    offset = pd.to_timedelta(pd.Series(np.where(np.isfinite(days), days, 0.0)), unit="D")
    # Each distinct day is written once (a batch has a few hundred), then mapped to the rows.
    codes, distinct = pd.factorize((base + offset).dt.normalize())
    words = np.empty(len(distinct) + 1, dtype=object)  # code -1 (no date) -> None
    words[:-1] = pd.Series(distinct).dt.strftime("%Y-%m-%d").tolist()
    out = words[codes]
    out[~np.isfinite(np.asarray(days, dtype=float))] = None
    return list(out.tolist())


def clv_columns(
    features: Mapping[str, Any] | pd.DataFrame,
    churn_probability: np.ndarray,
    predicted_value: np.ndarray,
    lifecycle_stage: np.ndarray,
    champion: Champion,
    policy: Policy,
) -> dict[str, Any]:
    """The marketer fields (:data:`CLV_COLUMNS`) of scored rows, as arrays.

    ``features`` (a frame or a mapping of column arrays) holds each row's
    ``as_of``, ``frequency``, ``recency_days``, ``tenure_days``,
    ``monetary_mean`` and ``monetary_total``; the predictions and stages are
    the rows' scores. See the module docstring for the definitions.
    ``expected_next_order_date`` is a list of ISO dates or None.
    """
    p = _floats(churn_probability)
    v = _floats(predicted_value)
    stage = np.asarray(lifecycle_stage).astype(str)
    params = _btyd_params(champion)
    horizons = (float(champion.churn_horizon_days), float(champion.value_horizon_days))
    orders, wait = _orders_and_wait(features, p, params, horizons)
    mean_order = _floats(features["monetary_mean"]) if "monetary_mean" in features else None
    if params is None and mean_order is not None:
        with np.errstate(all="ignore"):
            orders = np.where(mean_order > 0, np.clip(v, 0, None) / mean_order, np.nan)
    historic = _floats(features["monetary_total"])
    reference = getattr(champion.value, "reference_", None) or {}
    in_stage = np.full(len(p), np.nan)
    staged = _staged_values(reference, policy, horizons[0]) if reference else None
    if staged is not None:
        for s, values in staged.items():
            rows = stage == s
            if rows.any() and values.size:
                in_stage[rows] = _pct(values, v[rows])
    return {
        "predicted_orders": orders,
        "expected_next_order_date": _dates(features["as_of"], wait),
        "historic_clv": historic,
        "predicted_clv": v,
        "total_clv": historic + v,
        "churn_rank_pct": _pct(reference.get("churn_probability", []), p),
        "value_rank_pct": _pct(reference.get("predicted_value", []), v),
        "value_rank_pct_in_stage": in_stage,
    }


def _plain(values: Any) -> list[Any]:
    """JSON-ready values: floats with NaN as None, anything else as it is."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return [x if x == x else None for x in values.tolist()]
    return list(values)


def add_to_records(records: list[dict[str, Any]], columns: Mapping[str, Any]) -> None:
    """Add :func:`clv_columns`' values to the service's answer dicts, in place (NaN -> None)."""
    names = list(columns)
    rows = zip(*(_plain(columns[c]) for c in names), strict=True)
    for record, values in zip(records, rows, strict=True):
        record.update(zip(names, values, strict=True))
