"""Which action each campaign send was eligible for under the policy (the uplift gate's view).

Scoring lets an action go only to customers it is eligible for
(:func:`churnclv.decisions.eligible`: RFM ``segments``, value ``tiers``,
lifecycle ``stages``), whether it was chosen by learned uplift or is the best
constant action. The gate values its policies on held-out sends with the same
restriction, so "action X for everyone" means everyone eligible for X, and the
learned policy picks among eligible actions only.

Each send's segment and stage come from its features as of the send (the
decision code scoring uses, ranked against ``reference``). Its value tier needs
a predicted value: with a value champion in the store the tier is that model's
prediction against its reference, exactly as scoring cuts it; without one the
tier is unknown, and (as in scoring without a value champion) actions
restricted by tier are not eligible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnclv._policy import Policy
from churnclv.decisions import decide_columns, eligible

__all__ = ["constant_choice", "send_eligibility", "value_champion"]

#: Churn horizon for the lifecycle stage when the policy sets no churned recency (days).
_HORIZON = 90.0


def value_champion(tracking_uri: str) -> Any:
    """The store's ``churnclv-value@champion`` model, or None (none, or it cannot load)."""
    from pathlib import Path

    from churnclv.training._registry import VALUE_MODEL, _champion, configure_mlflow

    if tracking_uri.startswith("sqlite:///"):
        if not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
            return None  # no store yet: opening one would create it
    elif not tracking_uri.startswith(("http://", "https://", "postgresql", "mysql")):
        return None
    configure_mlflow(tracking_uri)
    try:
        return _champion(VALUE_MODEL)[1]
    except Exception:  # an unreachable or unfinished store: tiers stay unknown
        return None


def send_eligibility(
    frame: pd.DataFrame,
    policy: Policy,
    actions: Sequence[str],
    *,
    reference: Mapping[str, list[float]] | None,
    value_model: Any = None,
) -> np.ndarray:
    """Booleans (sends, ``actions``): may the action go to that send's customer.

    ``frame`` holds the sends' features as of each send; ``actions`` are the
    estimated actions (a subset of the policy's, in output order).
    """
    n = len(frame)
    predicted = np.full(n, np.nan)
    tiers_known = False
    if value_model is not None and n:
        try:
            feats = value_model.with_btyd(frame)
            predicted = np.asarray(value_model.predict(value_model.matrix(feats)), dtype=float)
            reference = getattr(value_model, "reference_", None) or reference
            tiers_known = True
        except (ValueError, KeyError):  # trained on other inputs: tiers stay unknown
            predicted = np.full(n, np.nan)
    cols = frame.drop(columns=["customer_id"], errors="ignore").assign(
        churn_probability=np.full(n, np.nan), predicted_value=predicted
    )
    decided = decide_columns(
        cols, policy, churn_horizon_days=_HORIZON, reference=dict(reference or {}) or None
    )
    tiers = decided["value_tier"] if tiers_known else None
    ok = eligible(policy, decided["rfm_segment"], tiers, decided["lifecycle_stage"], n=n)
    names = [a.name for a in policy.actions]
    return ok[:, [names.index(a) for a in actions]] if len(actions) else ok[:, :0]


def constant_choice(ok: np.ndarray, j: int) -> np.ndarray:
    """Arm index per send of "action ``j`` for everyone eligible" (``j + 1``, else 0)."""
    return np.where(ok[:, j], j + 1, 0)
