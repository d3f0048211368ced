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
each action (RFM ``segments``, and value ``tiers`` and lifecycle ``stages``
where the policy has them); a customer in the randomized holdout
(``holdout``, when decisions mark one) gets ``none``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from churnclv.decisions import Policy
from churnclv.training import Champion
from churnclv.training._scorable import Columns

__all__ = ["BASES", "choose", "eligible_actions", "uplift_decisions", "uplift_feature_columns"]

#: The values of ``action_basis``.
BASES = ("learned", "best_uniform", "policy")


def uplift_feature_columns(champion: Champion) -> list[str]:
    """The input columns the uplift champion reads (empty without one)."""
    return [] if champion.uplift is None else list(champion.uplift.features_)


def eligible_actions(policy: Policy, decided: Mapping[str, Any]) -> np.ndarray:
    """(n, n_actions) bool: which policy action may go to which customer.

    An action with ``segments`` goes only to those RFM segments; ``tiers`` and
    ``stages`` (where the policy defines them) restrict it by value tier and
    lifecycle stage.
    """
    segments = np.asarray(decided["rfm_segment"]).astype(str)
    n = len(segments)
    out = np.ones((n, len(policy.actions)), dtype=bool)
    for j, action in enumerate(policy.actions):
        for attr, column in (
            ("segments", "rfm_segment"),
            ("tiers", "value_tier"),
            ("stages", "lifecycle_stage"),
        ):
            allowed = getattr(action, attr, None)
            if allowed is not None and column in decided:
                out[:, j] &= np.isin(np.asarray(decided[column]).astype(str), list(allowed))
    return out


def choose(
    gain: np.ndarray, eligible: np.ndarray, holdout: np.ndarray, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The best positive eligible gain per row and its action, else ``none`` (and 0).

    Rows in ``holdout`` get ``none``. (The shape of ``decisions.choose_action``.)
    """
    g = np.where(eligible & np.isfinite(gain), gain, -np.inf)
    best = g.argmax(axis=1) if g.shape[1] else np.zeros(len(g), dtype=int)
    top = g[np.arange(len(g)), best] if g.shape[1] else np.full(len(g), -np.inf)
    pays = (top > 0) & ~holdout
    labels = np.array([*names, "none"], dtype=object)
    action = labels[np.where(pays, best, len(names))].astype(str)
    return action, np.where(pays, top, 0.0)


def uplift_decisions(
    features: Columns, decided: Mapping[str, Any], champion: Champion, policy: Policy
) -> dict[str, np.ndarray]:
    """The columns the uplift champion sets or replaces (module doc).

    ``features`` are the customers' feature columns (a frame or a mapping of
    arrays), ``decided`` the policy decisions of the same rows (``rfm_segment``,
    ``value_tier``, ``lifecycle_stage``, ``action``...). Returns ``action_basis``
    and, with an uplift champion, ``uplift_<action>`` per policy action,
    ``action``, ``expected_net_gain``, ``action_cost`` and ``expected_saved_value``.
    """
    n = len(np.asarray(decided["action"]))
    model = champion.uplift
    if model is None:
        return {"action_basis": np.full(n, "policy", dtype=object).astype(str)}
    names = [a.name for a in policy.actions]
    costs = np.array([a.cost for a in policy.actions], dtype=float)
    own = model.predict_uplift(features) if n else np.zeros((0, len(model.actions_)))
    uplift = np.full((n, len(names)), np.nan)
    for j, action in enumerate(model.actions_):
        if action in names:
            uplift[:, names.index(action)] = own[:, j]
    ok = eligible_actions(policy, decided)
    holdout = np.asarray(decided.get("holdout", np.zeros(n, dtype=bool)), dtype=bool)
    decision = model.decision_ or {}
    basis = decision.get("basis", "learned")
    if basis == "learned":
        action, gain = choose(uplift - costs, ok, holdout, names)
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
