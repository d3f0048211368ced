"""The customer-holdout design: train the hybrid when the purged out-of-time split cannot.

The purged out-of-time split (:func:`churnclv.training._plan.cutoffs`) needs a
training cutoff whose label window ends before the validation cutoff: about
``60 + 2 x horizon`` days of history. With one year of data and a 181-day
horizon there is none, yet several cutoffs have label windows that end by
``as_of``. This design trains on those labelled cutoffs and judges the model on
a customer-disjoint holdout of the latest one: a share of the customers
(:data:`HOLDOUT_SHARE`, drawn by a hash of the customer id) is left out of every
training cutoff, and their rows at the latest labelled cutoff are the
validation rows. The holdout shares its calendar window with some training
rows, so it is not out of time (the run is tagged
``evaluation=customer_holdout``). The model is kept only when it beats BG/NBD
on that holdout (:func:`holdout_verdict`); the kept model is then refitted on
every customer of every labelled cutoff.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = [
    "CUSTOMER_HOLDOUT",
    "HOLDOUT_SHARE",
    "MIN_HOLDOUT_ROWS",
    "OUT_OF_TIME",
    "customer_holdout_split",
    "design_line",
    "held_out",
    "holdout_verdict",
]

#: The evaluation designs (the run's ``evaluation`` tag).
OUT_OF_TIME = "out_of_time"
CUSTOMER_HOLDOUT = "customer_holdout"

#: Share of the customers held out of training and judged at the latest labelled cutoff.
HOLDOUT_SHARE = 0.3

#: Fewest holdout rows the design judges a model on; below it the BTYD fallback is used.
MIN_HOLDOUT_ROWS = 50

#: The metric each kind must reach on the holdout, and BG/NBD's on the same rows.
_VERSUS = {
    "churn": ("churn_roc_auc", "baseline_bgnbd_churn_roc_auc", "churn AUC"),
    "value": ("value_gini", "baseline_bgnbd_gg_value_gini", "value Gini"),
}


def held_out(customer_ids: pd.Series, share: float = HOLDOUT_SHARE, seed: int = 0) -> np.ndarray:
    """Whether each customer is in the holdout: a seeded hash of the id, the same at
    every cutoff.

    Examples
    --------
    >>> import pandas as pd
    >>> ids = pd.Series([f"C{i}" for i in range(1000)])
    >>> mask = held_out(ids)
    >>> round(float(mask.mean()), 2), bool((held_out(ids) == mask).all())
    (0.3, True)
    """
    keys = customer_ids.astype(str).reset_index(drop=True)
    h = pd.util.hash_pandas_object(keys, index=False, hash_key=f"holdout{seed:09d}"[-16:])
    return (h.to_numpy() % 10_000) < round(share * 10_000)


def customer_holdout_split(
    frame: pd.DataFrame, cuts: list[pd.Timestamp], seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and holdout rows of the labelled ``cuts`` (the last one is judged).

    Training: every row of ``cuts`` whose customer is not held out
    (:func:`held_out`); holdout: the held-out customers' rows at the latest
    cutoff. No customer is on both sides.
    """
    rows = frame[frame["as_of"].isin(cuts)]
    mask = held_out(rows["customer_id"], seed=seed)
    latest = (rows["as_of"] == cuts[-1]).to_numpy()
    return rows[~mask], rows[mask & latest]


def holdout_verdict(
    designs: Mapping[str, str], metrics: Mapping[str, float], fallbacks: Mapping[str, str]
) -> dict[str, str]:
    """Why each model trained by the customer-holdout design falls back: it does not
    beat BG/NBD on the holdout (its metric is lower, or either is missing).

    Examples
    --------
    >>> m = {"churn_roc_auc": 0.70, "baseline_bgnbd_churn_roc_auc": 0.72,
    ...      "value_gini": 0.6, "baseline_bgnbd_gg_value_gini": 0.5}
    >>> why = holdout_verdict({"churn": "customer_holdout", "value": "customer_holdout"}, m, {})
    >>> print(why["churn"]), list(why)
    the hybrid does not beat BG/NBD on the customer holdout (churn AUC 0.7000 vs 0.7200)
    (None, ['churn'])
    """
    out: dict[str, str] = {}
    for kind, design in designs.items():
        if design != CUSTOMER_HOLDOUT or kind in fallbacks:
            continue
        ours, theirs, label = _VERSUS[kind]
        a, b = metrics.get(ours, float("nan")), metrics.get(theirs, float("nan"))
        if not (a >= b):  # NaN on either side: not shown to beat it
            out[kind] = (
                f"the hybrid does not beat BG/NBD on the customer holdout ({label} "
                f"{a:.4f} vs {b:.4f})"
            )
    return out


def design_line(
    designs: Mapping[str, str], short: Mapping[str, str | None], cuts: Mapping[str, str]
) -> str:
    """One line saying which evaluation design each model used and why.

    ``short`` says per kind why the purged split had no training cutoff (None
    when it had one; a kind with a reason whose design is still out-of-time
    has no labelled cutoff at all); ``cuts`` names each kind's judged cutoff.

    Examples
    --------
    >>> designs = {"churn": "out_of_time", "value": "customer_holdout"}
    >>> short = {"churn": None, "value": "history too short"}
    >>> cuts = {"churn": "2024-01-01", "value": "2023-07-01"}
    >>> print(design_line(designs, short, cuts))  # doctest: +NORMALIZE_WHITESPACE
    evaluation: churn out-of-time (purged split, judged at 2024-01-01); value by customer
    holdout (30% of the customers at 2023-07-01, left out of every training cutoff) because
    history too short
    """
    parts = []
    for kind, design in designs.items():
        if design == CUSTOMER_HOLDOUT:
            why = str(short[kind]).split(": training needs")[0]
            parts.append(
                f"{kind} by customer holdout ({round(HOLDOUT_SHARE * 100)}% of the customers "
                f"at {cuts[kind]}, left out of every training cutoff) because {why}"
            )
        elif short[kind] is not None:
            parts.append(f"{kind} by no design: no label window ends by as_of")
        else:
            parts.append(f"{kind} out-of-time (purged split, judged at {cuts[kind]})")
    return "evaluation: " + "; ".join(parts)
