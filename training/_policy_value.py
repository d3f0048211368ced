"""Off-policy value of action policies on a campaign log, the uplift gate, and Qini.

A policy assigns each held-out send an arm (``0`` = control, i.e. no action).
Its value is the mean incremental net gain per customer against doing nothing:
the effect of the assigned action on net spend minus the action's cost.
Per-row contributions make bootstrap CIs and paired differences cheap:

- IPW: ``[T=pi] Y / e_pi - [T=0] Y / e_0 - cost_pi``;
- doubly robust (DR): ``mu_pi - mu_0 + [T=pi](Y - mu_pi)/e_pi - [T=0](Y - mu_0)/e_0
  - cost_pi``, with ``mu`` outcome predictions of a model fitted on other rows and
  ``e`` the arm probabilities of the log.

CIs come from a Poisson bootstrap over rows (every policy resampled with the
same weights, so differences are paired).

The gate (:func:`gate`): the best constant policy is the constant action (the
same action for everyone eligible for it under the policy's targeting, the
others untreated, as scoring gives it) with the highest DR value among those whose CI lies
above zero, else ``none``. The learned policy is kept only when, against every
constant policy (``none`` and each action for everyone), the lower bound of the
paired bootstrap CI of its DR value minus that policy's is above zero;
otherwise the decision basis is ``best_uniform``. Beating only the chosen
constant is not enough: when every constant's CI straddles zero the chosen one
is ``none``, and a learned policy that merely spreads a uniformly useful action
would beat it.
A paired difference is used rather than the learned policy's own lower bound
against the constant's point value: both are estimated on the same rows, so
their shared noise cancels in the difference, and the test is neither too
lenient (ignoring the constant's own error) nor too strict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PolicyValue",
    "bootstrap_means",
    "evaluate_policies",
    "gate",
    "policy_rows",
    "qini",
]

_CHUNK = 50


def policy_rows(
    arm: np.ndarray,
    outcome: np.ndarray,
    choice: np.ndarray,
    costs: np.ndarray,
    propensity: np.ndarray,
    mu: np.ndarray | None = None,
) -> np.ndarray:
    """Per-row value contributions of the policy ``choice`` (arm index per row).

    ``arm`` is the arm each row got (0 = control), ``costs`` the cost of each
    arm (``costs[0] == 0``), ``propensity`` the (n, n_arms) arm probabilities.
    With ``mu`` (n, n_arms outcome predictions) the contributions are doubly
    robust, without it IPW. Their mean is the policy's value.
    """
    n = len(arm)
    rows = np.arange(n)
    y = np.asarray(outcome, dtype=float)
    hit = arm == choice
    ctrl = arm == 0
    e_pi = propensity[rows, choice]
    e_0 = propensity[:, 0]
    cost = np.asarray(costs, dtype=float)[choice]
    if mu is None:
        treated = np.where(hit, y / e_pi, 0.0)
        base = np.where(ctrl, y / e_0, 0.0)
        # A row whose policy arm is control contributes exactly zero.
        return np.where(choice == 0, 0.0, treated - base - cost)
    m_pi = mu[rows, choice]
    m_0 = mu[:, 0]
    treated = m_pi + np.where(hit, (y - m_pi) / e_pi, 0.0)
    base = m_0 + np.where(ctrl, (y - m_0) / e_0, 0.0)
    return np.where(choice == 0, 0.0, treated - base - cost)


def bootstrap_means(contributions: np.ndarray, *, n_boot: int = 500, seed: int = 0) -> np.ndarray:
    """Poisson-bootstrap means of each column of ``contributions`` (n, p) -> (n_boot, p)."""
    g = np.asarray(contributions, dtype=float)
    if g.ndim == 1:
        g = g[:, None]
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, g.shape[1]))
    for start in range(0, n_boot, _CHUNK):
        b = min(_CHUNK, n_boot - start)
        w = rng.poisson(1.0, size=(b, len(g))).astype(float)
        out[start : start + b] = (w @ g) / np.maximum(w.sum(axis=1, keepdims=True), 1.0)
    return out


@dataclass(frozen=True)
class PolicyValue:
    """A policy's estimated value (mean incremental net gain per customer) with CIs."""

    name: str
    dr: float
    dr_low: float
    dr_high: float
    ipw: float
    ipw_low: float
    ipw_high: float

    def metrics(self) -> dict[str, float]:
        """As MLflow metrics ``policy_<name>_{dr,dr_low,dr_high,ipw,ipw_low,ipw_high}``."""
        fields = ("dr", "dr_low", "dr_high", "ipw", "ipw_low", "ipw_high")
        return {f"policy_{self.name}_{f}": float(getattr(self, f)) for f in fields}


def evaluate_policies(
    arm: np.ndarray,
    outcome: np.ndarray,
    policies: Mapping[str, np.ndarray],
    costs: np.ndarray,
    propensity: np.ndarray,
    mu: np.ndarray,
    *,
    n_boot: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, PolicyValue], dict[str, np.ndarray]]:
    """DR and IPW values of each policy with bootstrap CIs, and their DR contributions.

    Returns the values by name and each policy's per-row DR contributions
    (:func:`gate` takes both).
    """
    names = list(policies)
    dr = np.column_stack(
        [policy_rows(arm, outcome, policies[p], costs, propensity, mu) for p in names]
    )
    ipw = np.column_stack(
        [policy_rows(arm, outcome, policies[p], costs, propensity) for p in names]
    )
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    dr_b = np.percentile(bootstrap_means(dr, n_boot=n_boot, seed=seed), q, axis=0)
    ipw_b = np.percentile(bootstrap_means(ipw, n_boot=n_boot, seed=seed), q, axis=0)
    values = {
        p: PolicyValue(
            p,
            float(dr[:, i].mean()),
            float(dr_b[0, i]),
            float(dr_b[1, i]),
            float(ipw[:, i].mean()),
            float(ipw_b[0, i]),
            float(ipw_b[1, i]),
        )
        for i, p in enumerate(names)
    }
    return values, {p: dr[:, i] for i, p in enumerate(names)}


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided: the decision ``basis`` and the best constant action."""

    basis: str
    uniform_action: str
    difference: float
    difference_low: float
    difference_high: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The decision as a JSON-ready dict."""
        return {
            "basis": self.basis,
            "uniform_action": self.uniform_action,
            "difference": self.difference,
            "difference_low": self.difference_low,
            "difference_high": self.difference_high,
            "reason": self.reason,
        }


def gate(
    values: Mapping[str, PolicyValue],
    contributions: Mapping[str, np.ndarray],
    actions: Sequence[str],
    *,
    learned: str = "learned",
    n_boot: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> GateDecision:
    """Keep the learned policy only where it beats the best constant policy (module doc).

    ``values`` and ``contributions`` come from :func:`evaluate_policies` with
    the policies ``learned``, ``none`` and one per action (named as the action).
    """
    paying = [a for a in actions if values[a].dr_low > 0]
    best = max(paying, key=lambda a: values[a].dr) if paying else "none"
    # The learned policy must beat every constant policy, not only the one chosen:
    # a constant whose CI straddles zero may still be worth more than ``none``.
    rivals = ["none", *actions]
    diffs = np.column_stack([contributions[learned] - contributions[r] for r in rivals])
    boot = bootstrap_means(diffs, n_boot=n_boot, seed=seed + 1)
    lows, highs = np.percentile(boot, [(1 - level) / 2 * 100, (1 + level) / 2 * 100], axis=0)
    hardest = int(np.argmin(lows))
    rival = rivals[hardest]
    low, high = float(lows[hardest]), float(highs[hardest])
    mean = float(diffs[:, hardest].mean())
    base = (
        f"best constant policy: {best} (DR value {values[best].dr:.3f})"
        if best != "none"
        else "no constant action pays beyond noise (best constant policy: none)"
    )
    span = f"learned - {rival} = {mean:.3f} [{low:.3f}, {high:.3f}]"
    if low > 0:
        return GateDecision(
            "learned",
            best,
            mean,
            low,
            high,
            f"{base}; {span} (its closest constant rival): learned wins",
        )
    return GateDecision(
        "best_uniform",
        best,
        mean,
        low,
        high,
        f"{base}; {span}: the learned policy cannot be told from the constant policy "
        f"{rival}, so {best} is used",
    )


def _qini_points(y: np.ndarray, treated: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Qini coefficients for rows in score order under bootstrap weights ``w`` (b, m)."""
    wt = w * treated
    wc = w * ~treated
    yt = np.cumsum(wt * y, axis=1)
    yc = np.cumsum(wc * y, axis=1)
    nt = np.cumsum(wt, axis=1)
    nc = np.cumsum(wc, axis=1)
    q = yt - np.divide(yc * nt, nc, out=np.zeros_like(yc), where=nc > 0)
    share = np.cumsum(w, axis=1) / np.maximum(w.sum(axis=1, keepdims=True), 1.0)
    gap = q - share * q[:, -1:]
    total_t = np.maximum(nt[:, -1], 1.0)
    return (gap * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1.0) / total_t


def qini(
    score: np.ndarray,
    outcome: np.ndarray,
    treated: np.ndarray,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Qini coefficient of ``score`` ranking the effect of a treatment, with a bootstrap CI.

    Rows are the treated and the control sends (``treated`` True / False).
    Walking down ``score``, the Qini curve is the incremental outcome so far
    (treated outcome minus control outcome scaled to the treated count); the
    coefficient is the mean gap between that curve and the random-targeting
    line, per treated customer (the outcome's unit; 0 = no better than
    random, above 0 = the ranking finds who responds).

    Returns
    -------
    (coefficient, low, high)
    """
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    y = np.asarray(outcome, dtype=float)[order]
    t = np.asarray(treated, dtype=bool)[order]
    point = float(_qini_points(y, t, np.ones((1, len(y))))[0])
    rng = np.random.default_rng(seed)
    boots = []
    for start in range(0, n_boot, _CHUNK):
        b = min(_CHUNK, n_boot - start)
        boots.append(_qini_points(y, t, rng.poisson(1.0, size=(b, len(y))).astype(float)))
    low, high = np.percentile(np.concatenate(boots), [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return point, float(low), float(high)
