"""The decision report's section on learned actions (DESIGN §11).

Shown when the scores carry learned uplift (``uplift_<action>`` columns): what
chose the actions (the gate's decision on held-out campaigns, in words, from
the uplift champion's ``decision_`` when given, else from the scores'
``action_basis``), how many customers each action goes to, beside the policy
formula's choice for the same customers when those scores are given, and
each action's estimated uplift across the scored customers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from churnclv._report_figures import count, pct, words

__all__ = ["basis_sentence", "gate_sentence", "learned_actions_section", "nothing_pays"]

#: ``action_basis`` values in words.
BASIS_WORDS = {
    "learned": "learned uplift",
    "best_uniform": "the best constant policy",
    "policy": "the policy formula",
}


def _action(code: str) -> str:
    return words(code).lower()


def _amount(x: float) -> str:
    return f"{x:,.2f}"


def _uniform_action(scored: pd.DataFrame, decision: Mapping[str, Any] | None) -> str:
    if decision and decision.get("uniform_action"):
        return str(decision["uniform_action"])
    acted = scored.loc[(scored["action_basis"].astype(str) == "best_uniform").to_numpy(), "action"]
    acted = acted.astype(str)
    acted = acted[acted != "none"]
    return str(acted.mode().iloc[0]) if len(acted) else "none"


def basis_sentence(scored: pd.DataFrame, decision: Mapping[str, Any] | None = None) -> str:
    """What chose the actions, in words: the gate's verdict and its consequence.

    The verdict's figures come from ``decision`` (the uplift champion's
    ``decision_``) when it holds them, the counts from the scores.

    Examples
    --------
    >>> import pandas as pd
    >>> scored = pd.DataFrame({"action": ["discount_coupon", "none"],
    ...                        "action_basis": ["best_uniform"] * 2})
    >>> print(basis_sentence(scored).split(". ")[1])
    Every eligible customer therefore gets the best constant action, discount coupon.
    """
    basis = scored["action_basis"].astype(str) if "action_basis" in scored else pd.Series([])
    counts = basis.value_counts()
    n = max(len(scored), 1)
    gate = gate_sentence(decision) if decision else ""
    learned = int(counts.get("learned", 0))
    if learned:
        lead = gate or "The uplift model beat every constant policy on held-out campaigns."
        return (
            f"{lead} Learned uplift chose the action of {count(learned)} customers "
            f"({pct(learned / n, 0)}): each gets the eligible action with the largest "
            "uplift minus cost, or none when no action pays."
        )
    if counts.get("best_uniform", 0):
        lead = gate or (
            "The learned uplift could not be told from the best constant policy on held-out "
            "campaigns."
        )
        uniform = _uniform_action(scored, decision)
        if uniform == "none":
            return (
                f"{lead} No constant action paid beyond noise either, so none of the "
                f"{count(counts['best_uniform'])} customers is contacted on the uplift model's "
                "basis."
            )
        return (
            f"{lead} Every eligible customer therefore gets the best constant action, "
            f"{_action(uniform)}."
        )
    return "Actions follow the policy's assumed effects: no uplift champion decided them."


def gate_sentence(decision: Mapping[str, Any]) -> str:
    """The gate's verdict on held-out campaigns, in words (empty without its figures).

    Examples
    --------
    >>> text = gate_sentence({"basis": "best_uniform", "difference": -1.5,
    ...                       "difference_low": -4.0, "difference_high": 1.25})
    >>> import textwrap
    >>> print(textwrap.fill(text, 80))
    On held-out campaigns, choosing each customer's action from learned uplift was
    worth 1.50 less per customer than the closest constant policy (95% interval
    -4.00 to 1.25), so it cannot be told from noise.
    """
    try:
        keys = ("difference", "difference_low", "difference_high")
        d, lo, hi = (float(decision[k]) for k in keys)
    except (KeyError, TypeError, ValueError):
        return ""
    if not all(np.isfinite([d, lo, hi])):
        return ""
    way = "more" if d >= 0 else "less"
    verdict = "" if decision.get("basis") == "learned" else ", so it cannot be told from noise"
    return (
        "On held-out campaigns, choosing each customer's action from learned uplift was worth "
        f"{_amount(abs(d))} {way} per customer than the closest constant policy (95% interval "
        f"{_amount(lo)} to {_amount(hi)}){verdict}."
    )


def nothing_pays(scored: pd.DataFrame) -> str:
    """Why no customer is contacted, for the report's headline.

    Examples
    --------
    >>> import pandas as pd
    >>> nothing_pays(pd.DataFrame({"action_basis": ["policy"]}))
    'no retention action pays for itself at the current costs'
    """
    basis = scored["action_basis"].astype(str) if "action_basis" in scored else pd.Series([])
    if len(basis) and (basis == "best_uniform").all():
        return (
            "no action is recommended (on held-out campaigns, no action's learned effect "
            "paid for its cost beyond noise)"
        )
    return "no retention action pays for itself at the current costs"


def _contacted(scored: pd.DataFrame) -> pd.Series:
    action = scored["action"].astype(str)
    if "selected" in scored:
        action = action.where(scored["selected"].to_numpy(dtype=bool), "none")
    return action


def learned_actions_section(
    scored: pd.DataFrame,
    decision: Mapping[str, Any] | None = None,
    policy_scored: pd.DataFrame | None = None,
) -> str:
    """The HTML section (empty when the scores carry no learned uplift).

    ``decision`` is the uplift champion's gate decision (``decision_``);
    ``policy_scored`` the same customers scored by the policy formula.
    """
    from churnclv._report import _e, _table

    columns = [c for c in scored.columns if c.startswith("uplift_")]
    if not columns or "action_basis" not in scored:
        return ""
    basis = scored["action_basis"].astype(str).value_counts()
    chose = "; ".join(
        f"{BASIS_WORDS.get(b, words(b).lower())} for {count(n)} customers"
        for b, n in basis.items()
        if n
    )
    given = _contacted(scored).value_counts()
    formula = _contacted(policy_scored).value_counts() if policy_scored is not None else None
    rows = []
    for col in columns:
        action = col.removeprefix("uplift_")
        x = pd.to_numeric(scored[col], errors="coerce").to_numpy(float)
        x = x[np.isfinite(x)]
        row = [words(action), count(given.get(action, 0))]
        if formula is not None:
            row.append(count(formula.get(action, 0)))
        if x.size:
            lo, hi = np.percentile(x, [10, 90])
            row += [_amount(x.mean()), f"{_amount(lo)} to {_amount(hi)}"]
        else:
            row += ["not estimated (never sent)", "-"]
        rows.append(row)
    rest = [words("none"), count(given.get("none", 0))]
    if formula is not None:
        rest.append(count(formula.get("none", 0)))
    rows.append([*rest, "-", "-"])
    header = ["Action", "Customers given it"]
    if formula is not None:
        header.append("Policy formula would give it")
    header += ["Mean estimated uplift", "Uplift range (middle 80%)"]
    numeric = set(range(1, len(header) - 1))
    note = (
        f"The actions were chosen by {chose}. Uplift = expected incremental net spend in the "
        "response window after a send, per customer; an action pays where its uplift exceeds "
        "its cost."
    )
    if formula is not None:
        note += (
            " The policy formula column shows what the policy's hand-set uplift constants "
            "would choose for the same customers."
        )
    return (
        "<h2>Actions learned from campaigns</h2>"
        f"<p>{_e(basis_sentence(scored, decision))}</p>"
        f"{_table(header, rows, numeric)}"
        f"<p class='muted'>{_e(note)}</p>"
    )
