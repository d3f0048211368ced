"""The demo's uplift step: learn the actions from the generated campaigns, check them on truth.

:func:`train_demo_uplift` trains the uplift model on the campaign log the
generator wrote (``train_uplift`` with ``promote``), or says why it could not.
:func:`compare_with_truth` puts three decisions for the same customers side by
side: the learned one (scores with the uplift champion), the policy formula's
(scores without it) and the oracle's (each customer's truly best action the
policy allows, from the generator's ``effect_<action>``), with each decision's
true value per scored customer: the chosen action's true incremental net spend
in the response window minus its cost (0 for ``none``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from churnclv import InputTables, Policy, UpliftTrainResult

__all__ = ["ActionComparison", "compare_with_truth", "train_demo_uplift"]

#: The three decisions compared, in display order.
DECISIONS = ("learned", "policy", "oracle")


def train_demo_uplift(
    tables: InputTables,
    campaigns: Path,
    *,
    as_of: pd.Timestamp,
    tracking_uri: str,
    policy: Policy,
    seed: int,
    progress: Callable[[str], None],
    note: Callable[[str], None],
) -> UpliftTrainResult | None:
    """Train and promote the uplift model on ``campaigns``; None (with a note) when it cannot.

    A log the model cannot learn from (too few sends per arm in a small demo,
    treatments the policy lacks) is not a failure of the demo: the actions
    then stay on the policy formula and ``note`` says why.
    """
    from churnclv import InputError, load_campaigns, train_uplift

    try:
        log = load_campaigns(campaigns, actions=[a.name for a in policy.actions])
        return train_uplift(
            tables,
            log,
            as_of=as_of,
            tracking_uri=tracking_uri,
            policy=policy,
            promote=True,
            seed=seed,
            progress=progress,
        )
    except InputError as exc:
        note(f"the uplift model was not trained ({exc}); actions follow the policy formula")
        return None


@dataclass(frozen=True)
class ActionComparison:
    """Three decisions for the same customers, counted and valued on the synthetic truth.

    Attributes
    ----------
    counts : pandas.DataFrame
        Customers given each action (index, ``none`` last) by each decision
        (columns :data:`DECISIONS`).
    true_value : dict of str to float
        Per decision: mean over the scored customers of the chosen action's
        true effect minus its cost.
    expected_value : float
        Per customer, what the learned decision expected to gain
        (``expected_net_gain`` of the contacted customers, over everyone).
    basis : str
        ``action_basis`` of the learned scores (``learned``, ``best_uniform``).
    uniform_action : str
        The action the best constant policy gives (``none`` when none pays).
    """

    counts: pd.DataFrame
    true_value: dict[str, float]
    expected_value: float
    basis: str
    uniform_action: str

    def sentence(self) -> str:
        """The comparison in words, numbers from the data."""
        v = self.true_value
        rivals = (
            f"against {_signed(v['policy'])} for the policy formula's actions and "
            f"{_signed(v['oracle'])} for the oracle, which knows every customer's true effects"
        )
        lead = (
            "Checked against the synthetic truth (true incremental net spend in the 30 days "
            "after a send, minus the action's cost, per scored customer): "
        )
        if self.basis == "learned":
            share = (
                f" They reach {v['learned'] / v['oracle']:.0%} of the oracle's value."
                if v["oracle"] > 0
                else ""
            )
            return (
                f"{lead}the learned actions are worth {_signed(v['learned'])}, {rivals}; the "
                f"uplift model expected {_signed(self.expected_value)}.{share}"
            )
        if self.uniform_action == "none":
            what = (
                "the uplift model could not be told from noise on held-out campaigns and no "
                "constant action paid, so it contacts no one"
            )
        else:
            what = (
                "the uplift model could not be told from the best constant policy on held-out "
                "campaigns, so every eligible customer gets the best constant action, "
                f"{_words(self.uniform_action)}"
            )
        return f"{lead}{what}: worth {_signed(v['learned'])}, {rivals}."


def _signed(x: float) -> str:
    return f"{x:,.2f}" if np.isfinite(x) else "-"


def _words(code: str) -> str:
    from churnclv._report_figures import words

    return words(code).lower()


def _contacted(scored: pd.DataFrame) -> np.ndarray:
    action = scored["action"].astype(str).to_numpy()
    if "selected" in scored:
        action = np.where(scored["selected"].to_numpy(dtype=bool), action, "none")
    return action


def compare_with_truth(
    learned: pd.DataFrame, by_policy: pd.DataFrame, truth: pd.DataFrame, policy: Policy
) -> ActionComparison | None:
    """Learned vs policy-formula vs oracle decisions of the same customers (module doc).

    ``learned`` and ``by_policy`` are scores of the same customers with and
    without the uplift champion; only contacted customers (``selected``) count
    as given their action. None when ``truth`` lacks the true effect of a
    policy action (a policy with actions the generator does not simulate).

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv.decisions import Action, Policy
    >>> pol = Policy(actions=(Action("email", 1.0, 0.03), Action("call", 10.0, 0.2)),
    ...              holdout_share=0.0)
    >>> base = pd.DataFrame({"customer_id": ["a", "b"], "rfm_segment": "loyal",
    ...     "value_tier": "high", "lifecycle_stage": "active", "holdout": False})
    >>> learned = base.assign(action=["email", "none"], selected=[True, False],
    ...     expected_net_gain=[2.0, 0.0], action_basis="learned")
    >>> by_policy = base.assign(action=["call", "call"], selected=True)
    >>> truth = pd.DataFrame({"customer_id": ["b", "a"], "effect_email": [0.0, 4.0],
    ...     "effect_call": [30.0, 5.0]})
    >>> c = compare_with_truth(learned, by_policy, truth, pol)
    >>> c.true_value
    {'learned': 1.5, 'policy': 7.5, 'oracle': 11.5}
    >>> c.counts["oracle"].to_dict()
    {'email': 1, 'call': 1, 'none': 0}
    """
    from churnclv.decisions import choose_action, eligible

    names = [a.name for a in policy.actions]
    if any(f"effect_{a}" not in truth for a in names) or not len(learned):
        return None
    ids = learned["customer_id"].astype(str)
    true = truth.assign(customer_id=truth["customer_id"].astype(str)).set_index("customer_id")
    effects = true.reindex(ids)[[f"effect_{a}" for a in names]].to_numpy(float)
    costs = np.array([a.cost for a in policy.actions], dtype=float)
    net = np.nan_to_num(effects, nan=0.0) - costs
    ok = eligible(
        policy,
        learned["rfm_segment"].to_numpy(),
        learned["value_tier"].to_numpy(),
        learned["lifecycle_stage"].to_numpy(),
        n=len(learned),
    )
    holdout = learned["holdout"].to_numpy(bool) if "holdout" in learned else None
    oracle, _ = choose_action(net, ok, holdout, names)
    other = by_policy.set_index(by_policy["customer_id"].astype(str)).reindex(ids)
    chosen = {"learned": _contacted(learned), "policy": _contacted(other), "oracle": oracle}
    column = {a: j for j, a in enumerate(names)}
    values: dict[str, float] = {}
    for key, action in chosen.items():
        j = np.array([column.get(a, -1) for a in action])
        gain = np.where(j >= 0, net[np.arange(len(j)), np.maximum(j, 0)], 0.0)
        values[key] = float(gain.mean())
    order = [*names, "none"]
    counts = pd.DataFrame(
        {k: pd.Series(v).value_counts().reindex(order, fill_value=0) for k, v in chosen.items()}
    )
    paid = learned["action"].astype(str).to_numpy() != "none"
    if "selected" in learned:
        paid &= learned["selected"].to_numpy(dtype=bool)
    expected = float(np.where(paid, learned["expected_net_gain"].to_numpy(float), 0.0).mean())
    basis = str(learned["action_basis"].iloc[0]) if "action_basis" in learned else "policy"
    acted = pd.Series(chosen["learned"])
    acted = acted[acted != "none"]
    uniform = str(acted.mode().iloc[0]) if basis == "best_uniform" and len(acted) else "none"
    return ActionComparison(
        counts=counts.astype(int),
        true_value=values,
        expected_value=expected,
        basis=basis,
        uniform_action=uniform,
    )
