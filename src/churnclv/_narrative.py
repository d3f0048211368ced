"""Sentences computed from the numbers, for the notebooks' answers.

A notebook's answer paragraph must not contradict its figure, so the sentences
that state a result are built here from the same data the figure shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from churnclv._policy import VALUE_TIERS

__all__ = ["champion_vs_baselines_sentence", "value_at_risk_sentence"]

_RISK_BANDS = ("high", "medium", "low")

# metric, words, better: "high", "low" or "one" (closest to 1)
_MEASURES = (
    ("churn_roc_auc", "churn ROC AUC", "high"),
    ("churn_pr_auc", "churn PR AUC", "high"),
    ("churn_brier", "churn Brier score", "low"),
    ("churn_log_loss", "churn log loss", "low"),
    ("churn_ece", "churn calibration error", "low"),
    ("value_gini", "value Gini", "high"),
    ("value_spearman", "value Spearman", "high"),
    ("value_decile_mape", "value decile MAPE", "low"),
    ("value_rmse", "value RMSE", "low"),
    ("value_total_ratio", "total value ratio", "one"),
)
_BASELINES = (
    ("RFM", "baseline_rfm_"),
    ("BG/NBD", "baseline_bgnbd_"),
    ("BG/NBD + Gamma-Gamma", "baseline_bgnbd_gg_"),
)


def value_at_risk_sentence(frame: pd.DataFrame) -> str:
    """Where the value at risk (P(churn) x predicted value) sits in the tier x risk matrix.

    Parameters
    ----------
    frame : pandas.DataFrame
        Scores with ``value_tier``, ``risk_band``, ``churn_probability`` and
        ``predicted_value`` (negative values count as 0).

    Returns
    -------
    str
        The cell holding the largest share of value at risk, its share and
        customers, and the share of the high-value x high-risk cell.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv import value_at_risk_sentence
    >>> scores = pd.DataFrame({
    ...     "value_tier": ["high", "high", "low"],
    ...     "risk_band": ["high", "low", "high"],
    ...     "churn_probability": [0.9, 0.2, 0.8],
    ...     "predicted_value": [1000.0, 500.0, 50.0],
    ... })
    >>> value_at_risk_sentence(scores)
    'Most value at risk sits with high-value customers at high churn risk: 87% of 1,040 \
(1 customer). That cell is the priority of a retention campaign.'
    """
    at_risk = frame["churn_probability"].to_numpy(float) * np.clip(
        frame["predicted_value"].to_numpy(float), 0.0, None
    )
    cells = (
        pd.Series(at_risk)
        .groupby([frame["value_tier"].astype(str).to_numpy(), frame["risk_band"].astype(str)])
        .agg(["sum", "size"])
    )
    total = float(at_risk.sum())
    if not len(cells) or total <= 0:
        return "No value is at risk: every customer has zero predicted value or churn risk."
    order = {(t, b): i for i, (t, b) in enumerate((t, b) for t in VALUE_TIERS for b in _RISK_BANDS)}
    top = max(cells.index, key=lambda k: (cells.loc[k, "sum"], -order.get(k, 99)))
    share, n = cells.loc[top, "sum"] / total, int(cells.loc[top, "size"])
    where = f"{top[0]}-value customers at {top[1]} churn risk"
    head = (
        f"{'Most' if share > 0.5 else 'The largest share of'} value at risk sits with {where}: "
        f"{share:.0%} of {total:,.0f} ({n:,} customer{'' if n == 1 else 's'})."
    )
    if top == ("high", "high"):
        return head + " That cell is the priority of a retention campaign."
    hh = float(cells.loc[("high", "high"), "sum"]) / total if ("high", "high") in cells.index else 0
    return (
        head + f" High-value customers at high risk hold {hh:.0%}, so a campaign aimed only at "
        "them leaves most of the value at risk aside."
    )


def _better(model: float, base: float, better: str) -> bool:
    if better == "high":
        return model >= base
    if better == "low":
        return model <= base
    return abs(model - 1.0) <= abs(base - 1.0)


def champion_vs_baselines_sentence(metrics: Mapping[str, Any]) -> str:
    """Whether the champion beats the baselines, measure by measure, as one sentence.

    Parameters
    ----------
    metrics : mapping of str to float
        A training run's metrics: the model's (e.g. ``value_rmse``) and the
        baselines' on the same rows (``baseline_rfm_``, ``baseline_bgnbd_``,
        ``baseline_bgnbd_gg_`` prefixes), as MLflow logs them.

    Returns
    -------
    str
        How many shared measures the champion wins, and for each it loses,
        the best baseline and both figures.

    Examples
    --------
    >>> from churnclv import champion_vs_baselines_sentence
    >>> champion_vs_baselines_sentence({
    ...     "churn_roc_auc": 0.81, "baseline_rfm_churn_roc_auc": 0.74,
    ...     "value_rmse": 120.0, "baseline_bgnbd_gg_value_rmse": 110.0,
    ... })
    'The champion beats every baseline on 1 of 2 measures; it loses on value RMSE \
(BG/NBD + Gamma-Gamma 110 vs 120).'
    """
    wins, losses = 0, []
    for key, words, better in _MEASURES:
        model = metrics.get(key)
        if model is None or not np.isfinite(float(model)):
            continue
        base = {
            name: float(metrics[prefix + key])
            for name, prefix in _BASELINES
            if metrics.get(prefix + key) is not None and np.isfinite(float(metrics[prefix + key]))
        }
        if not base:
            continue
        beaten = [n for n, v in base.items() if not _better(float(model), v, better)]
        if not beaten:
            wins += 1
            continue
        best = beaten[0]
        for n in beaten[1:]:
            if _better(base[n], base[best], better):
                best = n
        losses.append(f"{words} ({best} {base[best]:.3g} vs {float(model):.3g})")
    shared = wins + len(losses)
    if not shared:
        return "No baseline was measured on the same rows, so the champion cannot be compared."
    if not losses:
        return f"The champion beats every baseline on all {shared} measures they share."
    return (
        f"The champion beats every baseline on {wins} of {shared} measures; it loses on "
        + ", ".join(losses)
        + "."
    )
