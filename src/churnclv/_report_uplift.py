"""The decision report's section on learned actions (DESIGN §11), from the scores alone.

Shown when the scores carry learned uplift (``uplift_<action>`` columns): how
many customers' actions came from each basis (``learned``, ``best_uniform``,
``policy``), each action's estimated uplift across the scored customers, and
one sentence saying what the gate decided.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["basis_sentence", "learned_actions_section"]

_BASES = ("learned", "best_uniform", "policy")


def basis_sentence(scored: pd.DataFrame) -> str:
    """One sentence, computed from the scores, on what chose the actions."""
    basis = scored["action_basis"].astype(str) if "action_basis" in scored else pd.Series([])
    counts = basis.value_counts()
    n = max(len(scored), 1)
    if counts.get("learned", 0):
        return (
            f"The uplift model beat every constant policy on held-out campaigns, so learned "
            f"uplift chose the action of {counts['learned']:,} customers "
            f"({counts['learned'] / n:.0%}): each gets the eligible action with the largest "
            "uplift minus cost, or none."
        )
    if counts.get("best_uniform", 0):
        rows = basis == "best_uniform"
        acted = scored.loc[rows.to_numpy(), "action"].astype(str)
        acted = acted[acted != "none"]
        uniform = acted.mode().iloc[0] if len(acted) else "none"
        what = (
            f"so every eligible customer gets the best constant action, {uniform}"
            if uniform != "none"
            else "and no constant action paid beyond noise, so no one is contacted on its basis"
        )
        return (
            "The learned uplift could not be told from the best constant policy on held-out "
            f"campaigns, {what} ({counts['best_uniform']:,} customers)."
        )
    return "Actions follow the policy's assumed effects: no uplift champion decided them."


def learned_actions_section(scored: pd.DataFrame) -> str:
    """The HTML section (empty when the scores carry no learned uplift)."""
    from churnclv._report import _e, _table

    columns = [c for c in scored.columns if c.startswith("uplift_")]
    if not columns or "action_basis" not in scored:
        return ""
    basis = scored["action_basis"].astype(str).value_counts()
    counts = ", ".join(f"{b}: {int(basis.get(b, 0)):,}" for b in _BASES)
    rows = []
    for col in columns:
        action = col.removeprefix("uplift_")
        x = pd.to_numeric(scored[col], errors="coerce").to_numpy(float)
        x = x[np.isfinite(x)]
        chosen = int((scored["action"].astype(str) == action).sum())
        if not x.size:
            rows.append([action, "not estimated", "-", f"{chosen:,}"])
            continue
        lo, hi = np.percentile(x, [10, 90])
        rows.append([action, f"{x.mean():,.2f}", f"{lo:,.2f} to {hi:,.2f}", f"{chosen:,}"])
    table = _table(
        ["action", "mean uplift", "10th-90th percentile", "customers given it"], rows, {1, 3}
    )
    return (
        "<h2>Actions learned from campaigns</h2>"
        f"<p>{_e(basis_sentence(scored))}</p>"
        f"<p class='muted'>What chose each action: {_e(counts)}. Uplift = expected "
        "incremental net spend in the response window, per customer.</p>"
        f"{table}"
    )
