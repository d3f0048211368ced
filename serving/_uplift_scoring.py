"""Actions from learned uplift: the step batch scoring and the service share (DESIGN §11).

With an uplift champion (``Champion.uplift``) each scored customer gets
``uplift_<action>`` for every policy action (expected incremental net spend in
the response window; null for an action the campaign log never tried), and the
decision follows the gate's basis recorded with the model:

- ``learned``: ``action`` is the eligible action with the largest
  ``uplift - cost``, or ``none`` when none pays; ``expected_net_gain`` is that
  difference;
- ``best_uniform``: the learned differences could not be told from noise on
  the held-out campaign, so every eligible customer gets the best constant
  action (``none`` when no action paid beyond noise); ``expected_net_gain`` is
  that policy's held-out value per customer (the same for everyone).

Without an uplift champion the policy formula's decision stands and
``action_basis`` is ``policy``. Eligibility follows the policy's restrictions of
each action (:func:`churnclv.decisions.eligible`: RFM ``segments``, value
``tiers``, lifecycle ``stages``), the choice is
:func:`churnclv.decisions.choose_action` (the same as the policy formula's), and
a customer in the randomized holdout (``holdout``) gets ``none``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from churnclv._errors import InputError
from churnclv.decisions import Policy, choose_action, eligible
from churnclv.training import Champion
from churnclv.training._scorable import Columns

__all__ = ["BASES", "uplift_decisions", "uplift_feature_columns"]

#: The values of ``action_basis``.
BASES = ("learned", "best_uniform", "policy")


def uplift_feature_columns(champion: Champion) -> list[str]:
    """The input columns the uplift champion reads (empty without one)."""
    return [] if champion.uplift is None else list(champion.uplift.features_)


def _may_be_absent(column: str) -> bool:
    """Inputs the model reads as null when absent, as the churn and value models do:
    breadth features (no category or channel column) and event values."""
    from churnclv.features._sql_breadth import BREADTH_COLUMNS
    from churnclv.features._sql_events import is_value_feature

    return is_value_feature(column) or any(column in c for c in BREADTH_COLUMNS.values())


def uplift_decisions(
    features: Columns, decided: Mapping[str, Any], champion: Champion, policy: Policy
) -> dict[str, np.ndarray]:
    """The columns the uplift champion sets or replaces (module doc).

    ``features`` are the customers' feature columns (a frame or a mapping of
    arrays), ``decided`` the policy decisions of the same rows (``rfm_segment``,
    ``value_tier``, ``lifecycle_stage``, ``action``, ``holdout``...). With an
    uplift champion: ``uplift_<action>`` per policy action, ``action``,
    ``expected_net_gain``, ``action_cost``, ``expected_saved_value`` and
    ``action_basis``; without one nothing (the policy decisions stand).
    """
    n = len(np.asarray(decided["action"]))
    model = champion.uplift
    if model is None:
        return {}
    lacking = [c for c in model.features_ if c not in features and not _may_be_absent(c)]
    if lacking:
        raise InputError(
            f"the uplift champion reads features these inputs lack ({', '.join(lacking[:5])}"
            f"{', ...' if len(lacking) > 5 else ''}): score with the inputs it was trained "
            "with (--events, --customers)"
        )
    names = [a.name for a in policy.actions]
    costs = np.array([a.cost for a in policy.actions], dtype=float)
    own = model.predict_uplift(features) if n else np.zeros((0, len(model.actions_)))
    uplift = np.full((n, len(names)), np.nan)
    for j, action in enumerate(model.actions_):
        if action in names:
            uplift[:, names.index(action)] = own[:, j]
    ok = eligible(
        policy, decided["rfm_segment"], decided["value_tier"], decided["lifecycle_stage"], n=n
    )
    holdout = np.asarray(decided.get("holdout", np.zeros(n, dtype=bool)), dtype=bool)
    decision = model.decision_ or {}
    basis = decision.get("basis", "learned")
    if basis == "learned":
        action, gain = choose_action(uplift - costs, ok, holdout, names)
    else:
        basis = "best_uniform"
        uniform = decision.get("uniform_action", "none")
        value = float(decision.get("value", 0.0))
        if uniform in names and value > 0:
            give = ok[:, names.index(uniform)] & ~holdout
            action = np.where(give, uniform, "none").astype(str)
            gain = np.where(give, value, 0.0)
        else:
            action, gain = np.full(n, "none").astype(str), np.zeros(n)
    cost_of = dict(zip(names, costs, strict=True))
    cost = np.array([cost_of.get(a, 0.0) for a in action], dtype=float)
    out: dict[str, np.ndarray] = {f"uplift_{a}": uplift[:, j] for j, a in enumerate(names)}
    out.update(
        {
            "action": action,
            "expected_net_gain": gain,
            "action_cost": cost,
            "expected_saved_value": np.where(action != "none", gain + cost, 0.0),
            "action_basis": np.full(n, basis, dtype=object).astype(str),
        }
    )
    return out
