"""Predictions to decisions (DESIGN §6): tiers, bands, stages, segments, actions.

Pure functions over a frame of predictions and RFM features; every threshold,
action, cost and uplift comes from a :class:`Policy` read from YAML
(:func:`load_policy`, implemented in :mod:`churnclv._policy`). This module
imports neither BentoML nor MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from churnclv._actions import (
    _choose_index,
    choose_action,
    eligible,
    holdout_mask,
    policy_gains,
)
from churnclv._errors import InputError
from churnclv._policy import (
    LIFECYCLE_STAGES,
    RFM_SEGMENTS,
    VALUE_TIERS,
    Action,
    Policy,
    load_policy,
)
from churnclv._tiers import (
    _floats,
    _sample,
    historic_tiers,
    tier_rank,
    tiers_against,
    tiers_by_rank,
)

__all__ = [
    "LIFECYCLE_STAGES",
    "RFM_SEGMENTS",
    "RISK_BANDS",
    "STAGE_SEGMENTS",
    "VALUE_TIERS",
    "Action",
    "Policy",
    "campaign_summary",
    "choose_action",
    "decide",
    "decide_columns",
    "eligible",
    "holdout_mask",
    "load_policy",
    "policy_gains",
    "reference_distribution",
    "rfm_scores",
    "rfm_segment",
    "select_under_budget",
]

_REFERENCE_POINTS = 1001
_RFM_SCORES = ("r_score", "f_score", "m_score")
_RFM_INPUTS = ("recency_days", "frequency", "monetary_total")

RISK_BANDS = ("high", "medium", "low")
_STAGE_INDEX = {name: i for i, name in enumerate(LIFECYCLE_STAGES)}
_STAGE_NAMES = np.array(LIFECYCLE_STAGES)


# (r_score range, fm_score range) -> segment; the classic RFM map, with "lost" carved out
# of hibernating. Together the rules cover every (r, fm) in 1..5 x 1..5 exactly once.
_SEGMENT_RULES: tuple[tuple[range, range, str], ...] = (
    (range(1, 2), range(1, 2), "lost"),
    (range(1, 3), range(1, 3), "hibernating"),
    (range(1, 3), range(3, 5), "at_risk"),
    (range(1, 3), range(5, 6), "cant_lose_them"),
    (range(3, 4), range(1, 3), "about_to_sleep"),
    (range(3, 4), range(3, 4), "need_attention"),
    (range(3, 5), range(4, 6), "loyal"),
    (range(4, 5), range(1, 2), "promising"),
    (range(5, 6), range(1, 2), "new_customer"),
    (range(4, 6), range(2, 4), "potential_loyalist"),
    (range(5, 6), range(4, 6), "champions"),
)


def _segment_table() -> np.ndarray:
    table = np.full((5, 5), "", dtype=object)  # [r - 1, fm - 1]; the first matching rule wins
    for rr, fr, name in reversed(_SEGMENT_RULES):
        for r in rr:
            for fm in fr:
                table[r - 1, fm - 1] = name
    return table


_SEGMENT_TABLE = _segment_table()

#: The RFM segments each lifecycle stage allows (see :func:`decide_columns`).
STAGE_SEGMENTS: dict[str, frozenset[str]] = {
    "new": frozenset({"new_customer", "promising"}),
    "active": frozenset(
        {
            "champions",
            "loyal",
            "potential_loyalist",
            "promising",
            "need_attention",
            "about_to_sleep",
            "at_risk",
            "cant_lose_them",
        }
    ),
    "silent": frozenset(
        {"need_attention", "about_to_sleep", "at_risk", "cant_lose_them", "hibernating"}
    ),
    "churned": frozenset({"hibernating", "lost"}),
}

# Segment moves for (stage, classic segment) pairs the stage does not allow.
_STAGE_MOVES: dict[str, dict[str, str]] = {
    "active": {
        "lost": "about_to_sleep",
        "hibernating": "about_to_sleep",
        "new_customer": "promising",
    },
    "silent": {
        "champions": "cant_lose_them",
        "loyal": "at_risk",
        "potential_loyalist": "need_attention",
        "new_customer": "about_to_sleep",
        "promising": "about_to_sleep",
        "lost": "hibernating",
    },
}


def _stage_segment(stage: str, r: int, fm: int) -> str:
    """The segment of RFM cell (``r``, ``fm``) within lifecycle ``stage`` (rule: decide_columns)."""
    if stage == "new":
        return "new_customer" if r == 5 else "promising"
    if stage == "churned":
        return "lost" if fm == 1 else "hibernating"
    classic = str(_SEGMENT_TABLE[r - 1, fm - 1])
    return _STAGE_MOVES[stage].get(classic, classic)


# [stage index in LIFECYCLE_STAGES, r - 1, fm - 1] -> segment: one lookup per customer.
_STAGE_SEGMENT_TABLE = np.array(
    [
        [[_stage_segment(stage, r, fm) for fm in range(1, 6)] for r in range(1, 6)]
        for stage in LIFECYCLE_STAGES
    ],
    dtype=object,
)


def _segments(
    r: np.ndarray, f: np.ndarray, m: np.ndarray, stage: np.ndarray | None = None
) -> np.ndarray:
    """Classic RFM segments, or with ``stage`` (indices into :data:`LIFECYCLE_STAGES`)
    the segments within each customer's lifecycle stage."""
    r, f, m = (np.asarray(x, dtype=int) for x in (r, f, m))
    if not all(((x >= 1) & (x <= 5)).all() for x in (r, f, m)):
        raise ValueError("RFM scores out of range 1..5")
    fm = np.floor((f + m) / 2 + 0.5).astype(int)
    if stage is None:
        return _SEGMENT_TABLE[r - 1, fm - 1]
    return _STAGE_SEGMENT_TABLE[stage, r - 1, fm - 1]


def rfm_segment(r_score: int, f_score: int, m_score: int) -> str:
    """The classic RFM segment of scores 1-5 (F and M are averaged, rounding half up).

    Parameters
    ----------
    r_score, f_score, m_score : int
        Recency, frequency and monetary scores, each 1-5 (5 = most recent,
        most frequent, highest spending; see :func:`rfm_scores`).

    Returns
    -------
    str
        One of :data:`RFM_SEGMENTS`.

    Raises
    ------
    ValueError
        When a score is outside 1-5.

    Examples
    --------
    >>> from churnclv.decisions import rfm_segment
    >>> rfm_segment(5, 5, 5), rfm_segment(1, 1, 1), rfm_segment(2, 3, 4)
    ('champions', 'lost', 'at_risk')
    """
    if not all(1 <= x <= 5 for x in (r_score, f_score, m_score)):
        raise ValueError(f"RFM scores out of range: r={r_score} f={f_score} m={m_score}")
    return str(_segments(np.array([r_score]), np.array([f_score]), np.array([m_score]))[0])


def reference_distribution(
    frame: pd.DataFrame, predicted_value: np.ndarray
) -> dict[str, list[float]]:
    """A compact sample of the population that scores and tiers are relative to.

    Stores 1,001 quantiles (actual values, so ties survive) of recency, frequency,
    monetary total and predicted value. Scoring one customer or a million then
    gives each the same scores and tier, whoever else is in the batch.
    """
    probs = np.linspace(0.0, 1.0, _REFERENCE_POINTS)
    cols = {
        "recency_days": frame["recency_days"].to_numpy(float),
        "frequency": frame["frequency"].to_numpy(float),
        "monetary_total": frame["monetary_total"].to_numpy(float),
        "predicted_value": np.asarray(predicted_value, dtype=float),
    }
    return {
        k: np.quantile(v[np.isfinite(v)], probs, method="inverted_cdf").round(6).tolist()
        for k, v in cols.items()
        if np.isfinite(v).any()
    }


def _share_below(sample: list[float], x: np.ndarray, *, strictly_above: bool = False) -> np.ndarray:
    ref = _sample(sample)[0]
    if strictly_above:
        return 1.0 - np.searchsorted(ref, x, side="right") / len(ref)
    return np.searchsorted(ref, x, side="left") / len(ref)


def rfm_scores(
    frame: pd.DataFrame, reference: dict[str, list[float]] | None = None
) -> pd.DataFrame:
    """R, F and M scores 1-5 against a reference population (default: the frame itself).

    A score is 1 + floor(5 x the share of the reference the customer beats
    strictly): the most recent, most frequent, highest-spending customers get 5,
    and ties share the lower score (every one-time buyer has F = 1).
    """
    ref = reference or _own_reference(frame)
    return pd.DataFrame(_rfm_score_arrays(frame, ref), index=frame.index)


def _own_reference(columns: Mapping[str, Any]) -> dict[str, list[float]]:
    """The columns themselves as the RFM reference population (sorted samples)."""
    return {
        k: np.sort(_floats(columns[k])).tolist()
        for k in ("recency_days", "frequency", "monetary_total")
    }


def _rfm_score_arrays(
    columns: Mapping[str, Any], ref: Mapping[str, list[float]]
) -> dict[str, np.ndarray]:
    def score(share: np.ndarray) -> np.ndarray:
        return np.clip(1 + np.floor(5 * share), 1, 5).astype(int)

    return {
        "r_score": score(
            _share_below(ref["recency_days"], _floats(columns["recency_days"]), strictly_above=True)
        ),
        "f_score": score(_share_below(ref["frequency"], _floats(columns["frequency"]))),
        "m_score": score(_share_below(ref["monetary_total"], _floats(columns["monetary_total"]))),
    }


def decide_columns(
    columns: Mapping[str, Any],
    policy: Policy,
    *,
    churn_horizon_days: float,
    reference: Mapping[str, list[float]] | None = None,
) -> dict[str, np.ndarray]:
    """:func:`decide`'s new columns, from columns given as arrays (or a frame).

    ``columns`` maps the names :func:`decide` reads to arrays, Series or lists
    of one length (a :class:`pandas.DataFrame` is such a mapping). Returns the
    arrays ``value_tier``, ``risk_band``, ``lifecycle_stage``, ``rfm_segment``,
    ``action`` (strings), ``expected_net_gain``, ``action_cost``,
    ``expected_saved_value`` (the action's expected gross value: saved value
    for retention, added value for growth), ``potential_high_value``,
    ``holdout`` (booleans) and ``action_basis`` (``"policy"``), plus
    ``r_score``, ``f_score`` and ``m_score`` when they were scored (against
    ``reference``, or against the columns themselves when neither a reference
    nor ready scores are given). No frame is built, which is what keeps the
    service's one-customer call cheap.

    Actions: each action's gain by the policy (:func:`policy_gains`), restricted
    by its segments, tiers and stages (:func:`eligible`), with the customers of
    the randomized holdout (:func:`holdout_mask` of ``customer_id`` and
    ``as_of``, when the columns have a ``customer_id``) set to ``none``, chosen
    by :func:`choose_action`. ``potential_high_value`` is true where the value
    tier is above the tier of past spend (``monetary_total`` cut with the same
    shares, against the reference's spend when given); false without
    ``monetary_total``.

    Lifecycle stage and RFM segment never contradict each other: the stage
    comes first. It is the customer's own story (tenure; recency against the
    churn horizon, or against their own usual gap), while the segment ranks R,
    F and M against the reference population, so where they disagree the stage
    wins and the segment is read within it (:data:`STAGE_SEGMENTS`). *churned*
    customers are ``lost`` when their combined F/M score is 1 and
    ``hibernating`` otherwise; *new* customers are ``new_customer`` with an R
    score of 5 and ``promising`` otherwise; *silent* customers keep
    ``need_attention``, ``about_to_sleep``, ``at_risk``, ``cant_lose_them``
    and ``hibernating``, while segments that say "recent" or "gone" move
    (``champions`` to ``cant_lose_them``, ``loyal`` to ``at_risk``,
    ``potential_loyalist`` to ``need_attention``, ``new_customer`` and
    ``promising`` to ``about_to_sleep``, ``lost`` to ``hibernating``);
    *active* customers keep the classic segment except ``lost`` and
    ``hibernating`` (to ``about_to_sleep``) and ``new_customer`` (to
    ``promising``). Actions are chosen on the segment after this rule.
    """
    p = _floats(columns["churn_probability"])
    v = _floats(columns["predicted_value"])
    n = len(p)
    cols: dict[str, np.ndarray] = {}
    if reference and "predicted_value" in reference:
        cols["value_tier"] = tiers_against(v, reference["predicted_value"], policy)
    else:
        cols["value_tier"] = tiers_by_rank(v, policy)
    if reference and all(k in reference for k in _RFM_INPUTS):
        rfm = _rfm_score_arrays(columns, reference)
        cols.update(rfm)
        r, f, m = (rfm[c] for c in ("r_score", "f_score", "m_score"))
    elif all(c in columns for c in _RFM_SCORES):
        r, f, m = (np.asarray(columns[c]) for c in _RFM_SCORES)
    else:
        rfm = _rfm_score_arrays(columns, _own_reference(columns))
        cols.update(rfm)
        r, f, m = (rfm[c] for c in _RFM_SCORES)
    cols["risk_band"] = np.select(
        [p >= policy.risk_high, p >= policy.risk_medium], ["high", "medium"], "low"
    )
    rec = _floats(columns["recency_days"])
    ten = _floats(columns["tenure_days"])
    gap = _floats(columns["gap_mean_days"])
    churned_days = policy.churned_recency_days or churn_horizon_days
    silent_limit = np.where(
        np.isfinite(gap) & (gap > 0), policy.silent_gap_multiple * gap, policy.silent_default_days
    )
    stage = np.select(
        [rec > churned_days, ten <= policy.new_max_tenure_days, rec > silent_limit],
        [_STAGE_INDEX["churned"], _STAGE_INDEX["new"], _STAGE_INDEX["silent"]],
        _STAGE_INDEX["active"],
    )
    cols["lifecycle_stage"] = _STAGE_NAMES[stage]
    segments = _segments(r, f, m, stage).astype(str).astype(object)
    cols["rfm_segment"] = segments.astype(str)
    gain, gross = policy_gains(policy, p, v, segments)
    allowed = eligible(policy, segments, cols["value_tier"], cols["lifecycle_stage"], n=n)
    held = (
        holdout_mask(columns["customer_id"], columns.get("as_of"), policy.holdout_share)
        if "customer_id" in columns
        else np.zeros(n, dtype=bool)
    )
    idx, best = _choose_index(gain, allowed, held)
    paying = idx >= 0
    names = np.array([a.name for a in policy.actions] + ["none"], dtype=object)
    costs = np.array([a.cost for a in policy.actions] + [0.0])
    cols["action"] = names[idx].astype(str)
    cols["expected_net_gain"] = best
    cols["action_cost"] = costs[idx]
    cols["expected_saved_value"] = (
        np.where(paying, gross[np.arange(n), np.where(paying, idx, 0)], 0.0)
        if gross.size
        else np.zeros(n)
    )
    cols["potential_high_value"] = (
        tier_rank(cols["value_tier"]) < tier_rank(historic_tiers(columns, policy, reference))
        if "monetary_total" in columns
        else np.zeros(n, dtype=bool)
    )
    cols["holdout"] = held
    cols["action_basis"] = np.full(n, "policy")
    return cols


_STRING_DECISIONS = (
    "value_tier",
    "risk_band",
    "lifecycle_stage",
    "rfm_segment",
    "action",
    "action_basis",
)


def decide(
    scored: pd.DataFrame,
    policy: Policy,
    *,
    churn_horizon_days: float,
    reference: dict[str, list[float]] | None = None,
) -> pd.DataFrame:
    """Add the decision columns to a frame of predictions.

    Parameters
    ----------
    scored : pandas.DataFrame
        ``churn_probability``, ``predicted_value``, ``recency_days``,
        ``tenure_days``, ``gap_mean_days``, ``frequency``, ``monetary_total``;
        without a reference, ready ``r_score``, ``f_score``, ``m_score`` are
        used when all three are present.
    policy : Policy
        Thresholds and actions.
    churn_horizon_days : float
        The churn horizon of the model (default "churned" recency).
    reference : dict, optional
        The training population (:func:`reference_distribution`). With it, value
        tiers cut at the reference's predicted-value quantiles and RFM scores rank
        against it (:func:`rfm_scores`), so a customer's decisions do not depend on
        the batch. Without it, tiers are shares of this frame and RFM scores rank
        against the frame itself (same definition, this frame as the population).

    Returns
    -------
    pandas.DataFrame
        A copy with ``value_tier``, ``risk_band``, ``lifecycle_stage``,
        ``rfm_segment``, ``action``, ``expected_net_gain``, ``action_cost``,
        ``expected_saved_value``, ``potential_high_value``, ``holdout`` and
        ``action_basis`` (computed by :func:`decide_columns`).

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv.decisions import decide, load_policy
    >>> scored = pd.DataFrame({
    ...     "customer_id": ["a", "b", "c", "d"],
    ...     "churn_probability": [0.9, 0.2, 0.7, 0.1],
    ...     "predicted_value": [400.0, 30.0, 120.0, 300.0],
    ...     "recency_days": [80.0, 5.0, 40.0, 3.0],
    ...     "tenure_days": [400.0, 300.0, 30.0, 500.0],
    ...     "gap_mean_days": [20.0, 10.0, None, 15.0],
    ...     "frequency": [12, 30, 0, 20],
    ...     "monetary_total": [900.0, 1500.0, 60.0, 400.0],
    ... })
    >>> out = decide(scored, load_policy(), churn_horizon_days=90)
    >>> print(out[["customer_id", "value_tier", "risk_band", "lifecycle_stage", "action"]])
      customer_id value_tier risk_band lifecycle_stage         action
    0           a     medium      high          silent  personal_call
    1           b        low       low          active           none
    2           c        low      high             new           none
    3           d     medium       low          active  upgrade_offer
    >>> out["expected_net_gain"].round(2).tolist()
    [65.0, 0.0, 0.0, 24.0]
    >>> out[["holdout", "potential_high_value"]].to_numpy().tolist()
    [[False, False], [False, False], [True, False], [False, True]]

    ``c`` is in the randomized holdout (the policy's ``holdout_share``) and gets
    ``none``; ``d`` is predicted to move from the low tier of past spend to the
    medium value tier (``potential_high_value``) and gets the growth action.
    """
    cols = decide_columns(
        scored, policy, churn_horizon_days=churn_horizon_days, reference=reference
    )
    out = scored.copy(deep=False)  # copy-on-write: the caller's frame is never changed
    rescored = {c: cols.pop(c) for c in _RFM_SCORES if c in out and c in cols}
    if rescored:  # existing score columns in place, keeping the column order
        out = out.assign(**rescored)
    # New columns are gathered and joined once: per-column assignment dominates small frames.
    new = pd.DataFrame(cols, index=out.index)
    for c in _STRING_DECISIONS:
        new[c] = new[c].astype("str")
    out = out.drop(columns=[c for c in cols if c in out.columns])
    return pd.concat([out, new], axis=1)


def select_under_budget(
    decided: pd.DataFrame, policy: Policy, budget: float | None
) -> pd.DataFrame:
    """Choose the campaign: the customers whose action pays most per unit of cost.

    Held-out customers (``holdout``) have action ``none`` and are never selected.

    Parameters
    ----------
    decided : pandas.DataFrame
        Output of :func:`decide` (``action``, ``expected_net_gain``,
        ``churn_probability``, ``predicted_value``).
    policy : Policy
        Gives each action's cost and uplift.
    budget : float or None
        Total cost allowed; ``None`` selects every customer whose action pays.

    Returns
    -------
    pandas.DataFrame
        A copy with ``action_cost``, ``expected_saved_value`` (the action's
        expected gross value, :func:`decide_columns`) and ``selected``.
        Customers are taken greedily by gain per cost; one that no longer fits
        is skipped and cheaper ones may still fit, so the total cost never
        exceeds ``budget``.
    """
    if budget is not None and (not math.isfinite(budget) or budget < 0):
        raise InputError(f"budget must be a non-negative number, got {budget}")
    out = decided.copy(deep=False)  # copy-on-write: the caller's frame is never changed
    if "action_cost" not in out or "expected_saved_value" not in out:
        # Frames decided elsewhere (older score files): gain = saved value - cost.
        cost = {a.name: a.cost for a in policy.actions}
        out["action_cost"] = out["action"].map(cost).fillna(0.0).astype(float)
        paying = out["action"] != "none"
        out["expected_saved_value"] = (out["expected_net_gain"] + out["action_cost"]).where(
            paying, 0.0
        )
    pays = (out["action"] != "none").to_numpy()
    if budget is None:
        out["selected"] = pays
        return out
    gain = out["expected_net_gain"].to_numpy(float)
    c = out["action_cost"].to_numpy(float)
    ratio = np.where(c > 0, gain / np.where(c > 0, c, 1.0), np.inf)
    order = np.lexsort((np.arange(len(out)), -ratio))
    selected = np.zeros(len(out), dtype=bool)
    spent = 0.0
    for i in order:
        if not pays[i]:
            continue
        if spent + c[i] <= budget + 1e-9:
            selected[i] = True
            spent += c[i]
    out["selected"] = selected
    return out


def campaign_summary(selected: pd.DataFrame) -> dict[str, float]:
    """Totals of a selection: customers, cost, expected saved value, net gain and ROI."""
    s = selected[selected["selected"]]
    cost = float(s["action_cost"].sum())
    saved = float(s["expected_saved_value"].sum())
    return {
        "customers": float(len(s)),
        "cost": cost,
        "expected_saved_value": saved,
        "expected_net_gain": saved - cost,
        "roi": (saved - cost) / cost if cost > 0 else float("nan"),
    }
