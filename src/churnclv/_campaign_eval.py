"""Campaign evaluation (DESIGN §11): each treatment against the control arm.

For each campaign and each action, the effect is the difference of the mean net
spend in the response window between the action's arm and the control arm,
with Welch's 95% confidence interval (unequal variances, Welch-Satterthwaite
degrees of freedom). With several campaigns the ``all`` rows combine them
stratified by campaign: each campaign's difference weighted by the arm's
customers in it, so arm shares that differ between campaigns (and spend that
differs between send dates) do not bias the combined effect; its interval is
normal with the weighted variances. The estimand is the average effect over the
arm's customers, which randomization makes estimable; a log whose arms were not
randomized gives associations, not effects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from churnclv._campaigns import _check_treatments, campaign_outcomes, has_control, sends_in_window
from churnclv._errors import InputError

if TYPE_CHECKING:
    from churnclv.decisions import Policy

__all__ = ["ALL", "COLUMNS", "evaluate_campaign", "no_control_message"]

#: ``campaign_id`` of the rows that combine all campaigns.
ALL = "all"
COLUMNS = [
    "campaign_id",
    "treatment",
    "customers",
    "response_rate",
    "mean_net_spend",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "incremental_revenue",
    "cost",
    "roi",
]
_Z = float(stats.norm.ppf(0.975))


def no_control_message(control: str, treatments: Sequence[str]) -> str:
    """Why a log without a control arm gives no effects, and what is shown instead."""
    found = ", ".join(repr(t) for t in sorted(set(treatments)))
    return (
        f"the campaign log has no {control!r} sends (treatments: {found}): effects cannot be "
        "estimated without a comparison group, only response rates per arm; name the "
        "untreated arm with --control, or keep a random control group in the next campaign"
    )


def _welch(arm: np.ndarray, base: np.ndarray) -> tuple[float, float, float, float]:
    """Difference of means, its standard error, Welch degrees of freedom and p-value."""
    diff = float(arm.mean() - base.mean())
    if arm.size < 2 or base.size < 2:
        return diff, math.nan, math.nan, math.nan
    va, vb = arm.var(ddof=1) / arm.size, base.var(ddof=1) / base.size
    se2 = va + vb
    if se2 == 0:
        return diff, 0.0, math.inf, 1.0 if diff == 0 else 0.0
    df = se2**2 / (va**2 / (arm.size - 1) + vb**2 / (base.size - 1))
    p = float(2 * stats.t.sf(abs(diff) / math.sqrt(se2), df))
    return diff, math.sqrt(se2), float(df), p


def _rows(sends: pd.DataFrame, control: str, costs: dict[str, float]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    base = sends.loc[sends["treatment"] == control, "net_spend"].to_numpy()
    for treatment, arm in sends.groupby("treatment", sort=False):
        spend = arm["net_spend"].to_numpy()
        row: dict[str, object] = {
            "treatment": treatment,
            "customers": len(arm),
            "response_rate": float(arm["responded"].mean()),
            "mean_net_spend": float(spend.mean()),
        }
        if treatment != control and base.size:
            diff, se, df, p = _welch(spend, base)
            half = float(stats.t.ppf(0.975, df)) * se if math.isfinite(se) else math.nan
            row.update(difference=diff, ci_low=diff - half, ci_high=diff + half, p_value=p, _se=se)
        cost = costs.get(str(treatment), 0.0) * len(arm)
        row["cost"] = cost
        rows.append(row)
    return rows


def _combined(per: pd.DataFrame, sends: pd.DataFrame, control: str) -> pd.DataFrame:
    """The ``all`` rows: per-campaign differences weighted by the arm's customers."""
    rows = []
    for treatment, arm in sends.groupby("treatment", sort=False):
        row: dict[str, object] = {
            "campaign_id": ALL,
            "treatment": treatment,
            "customers": len(arm),
            "response_rate": float(arm["responded"].mean()),
            "mean_net_spend": float(arm["net_spend"].mean()),
            "cost": float(per.loc[per["treatment"] == treatment, "cost"].sum()),
        }
        if treatment != control:
            est = per[(per["treatment"] == treatment) & per["difference"].notna()]
            if not est.empty:
                w = est["customers"].to_numpy(float) / est["customers"].sum()
                diff = float(np.dot(w, est["difference"]))
                se = float(math.sqrt(np.dot(w**2, est["_se"].to_numpy(float) ** 2)))
                p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else math.nan
                row.update(
                    difference=diff,
                    ci_low=diff - _Z * se,
                    ci_high=diff + _Z * se,
                    p_value=p,
                    _measured=int(est["customers"].sum()),
                )
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate_campaign(
    campaigns: pd.DataFrame,
    transactions: pd.DataFrame,
    *,
    response_days: int,
    policy: Policy | None = None,
    control: str = "control",
) -> pd.DataFrame:
    """Measure each treatment of a campaign log against its control arm.

    Each send's outcome is the customer's net spend (returns included) in the
    response window ``(ts, ts + response_days]``. Per campaign and treatment:
    customers, response rate (share with a purchase in the window), mean net
    spend and, against the control arm of the same campaign, the difference of
    mean net spend with Welch's 95% confidence interval and p-value, the
    incremental revenue (difference x customers), the cost (the policy's action
    cost x customers) and the ROI ``(incremental revenue - cost) / cost``. With
    several campaigns, rows with ``campaign_id == "all"`` combine them
    (stratified by campaign, normal interval).

    Parameters
    ----------
    campaigns : pandas.DataFrame
        A campaign log as :func:`churnclv.load_campaigns` returns it
        (``customer_id``, ``ts``, ``treatment``, ``campaign_id``).
    transactions : pandas.DataFrame
        ``customer_id``, ``ts``, ``amount`` (negative = return).
    response_days : int
        Length of the response window in days.
    policy : Policy, optional
        Gives each action's cost; default the shipped policy.
    control : str, default "control"
        The label of the untreated arm.

    Returns
    -------
    pandas.DataFrame
        One row per campaign and treatment (the control arm included, with
        empty difference columns), columns ``campaign_id``, ``treatment``,
        ``customers``, ``response_rate``, ``mean_net_spend``, ``difference``,
        ``ci_low``, ``ci_high``, ``p_value``, ``incremental_revenue``, ``cost``
        and ``roi``. ``attrs["sends_outside_data"]`` counts the sends left out
        because their window ends after the last transaction.

    Raises
    ------
    InputError
        No control arm (effects cannot be estimated without a comparison
        group), treatments that are not actions of the policy, an empty log,
        or no send whose window lies inside the transactions.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv import evaluate_campaign
    >>> sends = pd.DataFrame(
    ...     {
    ...         "customer_id": ["A", "B", "C", "D"],
    ...         "ts": pd.to_datetime(["2024-03-01"] * 4),
    ...         "treatment": ["control", "control", "email_reminder", "email_reminder"],
    ...         "campaign_id": ["spring"] * 4,
    ...     }
    ... )
    >>> tx = pd.DataFrame(
    ...     {
    ...         "customer_id": ["A", "C", "D", "D"],
    ...         "ts": pd.to_datetime(["2024-03-10", "2024-03-05", "2024-03-20", "2024-06-01"]),
    ...         "amount": [10.0, 20.0, 30.0, 5.0],
    ...     }
    ... )
    >>> result = evaluate_campaign(sends, tx, response_days=30)
    >>> result[["treatment", "customers", "response_rate", "difference", "roi"]]
            treatment  customers  response_rate  difference   roi
    0         control          2            0.5         NaN   NaN
    1  email_reminder          2            1.0        20.0  39.0
    """
    from churnclv.decisions import load_policy

    if campaigns.empty:
        raise InputError("the campaign log has no sends")
    if not has_control(campaigns, control):
        raise InputError(no_control_message(control, campaigns["treatment"].astype(str).tolist()))
    pol = policy if policy is not None else load_policy()
    costs = {a.name: float(a.cost) for a in pol.actions}
    _check_treatments(campaigns, control, list(costs), "campaign log")
    if transactions.empty:
        raise InputError("no transactions: the outcomes of the sends cannot be measured")
    last = pd.Timestamp(transactions["ts"].max())
    inside, dropped = sends_in_window(campaigns, as_of=last, response_days=response_days)
    if inside.empty:
        raise InputError(
            f"no send has its {response_days}-day response window inside the transactions "
            f"(last transaction {last}); the outcomes cannot be measured yet"
        )
    sends = campaign_outcomes(inside, transactions, response_days=response_days)
    parts = []
    for campaign_id, camp in sends.groupby("campaign_id", sort=True):
        rows = _rows(camp, control, costs)
        parts.append(pd.DataFrame(rows).assign(campaign_id=campaign_id))
    per = pd.concat(parts, ignore_index=True)
    if sends["campaign_id"].nunique() > 1:
        per = pd.concat([per, _combined(per, sends, control)], ignore_index=True)
    for col in ("difference", "ci_low", "ci_high", "p_value"):
        if col not in per:
            per[col] = math.nan
    measured = per.get("_measured", per["customers"]).fillna(per["customers"])
    per["incremental_revenue"] = per["difference"] * measured
    net = per["incremental_revenue"] - per["cost"]
    per["roi"] = np.where(per["cost"] > 0, net / per["cost"].where(per["cost"] > 0), math.nan)
    order = {t: i for i, t in enumerate([control, *costs])}
    per["_order"] = per["treatment"].map(order)
    per["_all"] = per["campaign_id"] == ALL
    per = per.sort_values(["_all", "campaign_id", "_order"], kind="stable", ignore_index=True)
    result = per[COLUMNS].astype({"customers": "int64", "cost": "float64"})
    result.attrs.update(
        response_days=int(response_days), control=control, sends_outside_data=dropped
    )
    return result
