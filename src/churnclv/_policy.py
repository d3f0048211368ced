"""The decision policy: thresholds, actions, costs and uplifts, read from YAML.

:func:`load_policy` validates a policy file (or the shipped default) into a
:class:`Policy`; every message names the offending key. Public through
:mod:`churnclv.decisions`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from churnclv._errors import InputError

__all__ = [
    "ACTION_GOALS",
    "LIFECYCLE_STAGES",
    "RFM_SEGMENTS",
    "VALUE_TIERS",
    "Action",
    "Monitoring",
    "Policy",
    "load_policy",
    "merged_policy_yaml",
]

VALUE_TIERS = ("high", "medium", "low")
LIFECYCLE_STAGES = ("new", "active", "silent", "churned")
ACTION_GOALS = ("retention", "growth")

RFM_SEGMENTS = (
    "champions",
    "loyal",
    "potential_loyalist",
    "new_customer",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose_them",
    "hibernating",
    "lost",
)


@dataclass(frozen=True)
class Action:
    """An action of the policy: what it costs and what it is assumed to achieve.

    A *retention* action (``goal="retention"``) saves a would-be churner with
    probability ``uplift``: expected net gain = P(churn) x predicted value x
    uplift - cost. A *growth* action (``goal="growth"``) raises the predicted
    value of a customer expected to stay by the fraction ``value_lift``:
    expected net gain = (1 - P(churn)) x predicted value x value_lift - cost.

    ``uplift_by_segment`` overrides ``uplift`` for named RFM segments.
    ``segments``, ``tiers`` (value tiers) and ``stages`` (lifecycle stages),
    when given, restrict the action to customers in all of them; ``None``
    offers it to all.
    """

    name: str
    cost: float
    uplift: float = 0.0
    uplift_by_segment: tuple[tuple[str, float], ...] = ()
    segments: tuple[str, ...] | None = None
    goal: str = "retention"
    value_lift: float = 0.0
    tiers: tuple[str, ...] | None = None
    stages: tuple[str, ...] | None = None

    def uplift_for(self, segments: np.ndarray) -> np.ndarray:
        """The uplift of this action for each customer's segment (0 where not eligible)."""
        up = np.full(len(segments), self.uplift, dtype=float)
        for seg, u in self.uplift_by_segment:
            up[segments == seg] = u
        if self.segments is not None:
            up[~np.isin(segments, list(self.segments))] = 0.0
        return up


@dataclass(frozen=True)
class Monitoring:
    """Thresholds of ``churnclv monitor``'s verdict (the policy's optional ``monitoring``).

    ``psi_*`` apply to the largest population stability index of any feature or
    score; ``auc_drop_*`` to the fall of the latest backtest churn AUC below the
    reference AUC; ``tier_change_watch`` to the share of customers whose value
    tier changed between the last two snapshots.
    """

    psi_watch: float = 0.1
    psi_retrain: float = 0.25
    auc_drop_watch: float = 0.02
    auc_drop_retrain: float = 0.05
    tier_change_watch: float = 0.25


@dataclass(frozen=True)
class Policy:
    """Decision thresholds and actions (see ``default_policy.yaml``).

    Parameters
    ----------
    high_share, medium_share : float
        Shares of the reference population in the high and medium value tiers.
    risk_high, risk_medium : float
        P(churn) thresholds of the high and medium risk bands.
    new_max_tenure_days : float
        Customers this young (days since first purchase) are ``new``.
    silent_gap_multiple, silent_default_days : float
        ``silent`` after this many usual gaps without a purchase (or this many
        days when there is no gap yet).
    churned_recency_days : float or None
        ``churned`` past this recency; ``None`` uses the model's churn horizon.
    actions : tuple of Action
        The retention and growth actions to choose from.
    monitoring : Monitoring
        Thresholds of the monitoring verdict (optional section; defaults apply).
    holdout_share : float
        Share of scored customers held out at random (reproducibly, by a hash of
        customer id and as_of): they get ``none``, so campaigns keep a control group.
    satisfaction_event_types : tuple of str
        The satisfaction survey event types (section ``satisfaction``): the
        latest value of any of them is ``satisfaction_score``.
    satisfaction_high, satisfaction_medium : float
        ``satisfaction_class`` is ``high`` at or above ``satisfaction_high``,
        ``medium`` at or above ``satisfaction_medium``, else ``low`` (on a 0-10
        NPS scale: promoters 9-10, passives 7-8, detractors 0-6).

    Examples
    --------
    >>> from churnclv.decisions import Action, Policy
    >>> policy = Policy(actions=(Action("email", cost=1.0, uplift=0.05),))
    >>> policy.risk_high, [a.name for a in policy.actions], policy.holdout_share
    (0.6, ['email'], 0.1)
    """

    high_share: float = 0.20
    medium_share: float = 0.30
    risk_high: float = 0.6
    risk_medium: float = 0.3
    new_max_tenure_days: float = 60
    silent_gap_multiple: float = 2.0
    silent_default_days: float = 60
    churned_recency_days: float | None = None
    actions: tuple[Action, ...] = ()
    monitoring: Monitoring = Monitoring()
    holdout_share: float = 0.10
    satisfaction_event_types: tuple[str, ...] = ("nps", "satisfaction")
    satisfaction_high: float = 9.0
    satisfaction_medium: float = 7.0


_MONITORING_KEYS = ("psi_watch", "psi_retrain", "auc_drop_watch", "auc_drop_retrain")

#: The mapping sections of a policy file and their keys; each merges key by key.
_SECTIONS: dict[str, frozenset[str]] = {
    "value_tier": frozenset({"high_share", "medium_share"}),
    "risk_band": frozenset({"high", "medium"}),
    "lifecycle": frozenset(
        {
            "new_max_tenure_days",
            "silent_gap_multiple",
            "silent_default_days",
            "churned_recency_days",
        }
    ),
    "monitoring": frozenset({*_MONITORING_KEYS, "tier_change_watch"}),
    "satisfaction": frozenset({"event_types", "high", "medium"}),
}
#: Top-level keys a policy file may hold.
_TOP_KEYS = frozenset({*_SECTIONS, "actions", "holdout_share"})
_ACTION_KEYS = frozenset(
    {
        "name",
        "cost",
        "uplift",
        "uplift_by_segment",
        "segments",
        "goal",
        "value_lift",
        "tiers",
        "stages",
    }
)


def _monitoring(sec: dict[str, Any], src: str) -> Monitoring:
    """The ``monitoring`` section (merged over the default's)."""
    vals = {k: _num(sec, "monitoring", k, src, lo=0, hi=math.inf) for k in sec}
    out = Monitoring(**vals)
    for watch, retrain in (("psi_watch", "psi_retrain"), ("auc_drop_watch", "auc_drop_retrain")):
        if getattr(out, watch) > getattr(out, retrain):
            raise InputError(
                f"policy {src}: 'monitoring.{watch}' must not exceed 'monitoring.{retrain}'"
            )
    return out


def _num(
    raw: dict[str, Any],
    section: str,
    key: str,
    src: str,
    *,
    lo: float,
    hi: float,
    allow_none: bool = False,
) -> Any:
    """``raw[key]`` as a float within [lo, hi]; messages name ``section.key`` (or ``key``
    at the top level, ``section`` empty)."""
    name = f"{section}.{key}" if section else key
    if key not in raw:
        raise InputError(f"policy {src}: missing key '{name}'")
    val = raw[key]
    if val is None and allow_none:
        return None
    if isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val):
        raise InputError(f"policy {src}: '{name}' must be a number, got {val!r}")
    if not lo <= val <= hi:
        raise InputError(f"policy {src}: '{name}' = {val} must be within [{lo}, {hi}]")
    return float(val)


def _satisfaction(sec: dict[str, Any], src: str) -> dict[str, Any]:
    """The ``satisfaction`` section (merged over the default's) as Policy keywords."""
    types = sec.get("event_types")
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise InputError(
            f"policy {src}: 'satisfaction.event_types' must be a non-empty list of event types"
        )
    high = _num(sec, "satisfaction", "high", src, lo=-math.inf, hi=math.inf)
    medium = _num(sec, "satisfaction", "medium", src, lo=-math.inf, hi=math.inf)
    if medium > high:
        raise InputError(
            f"policy {src}: 'satisfaction.medium' ({medium}) must not exceed "
            f"'satisfaction.high' ({high})"
        )
    return {
        "satisfaction_event_types": tuple(t.strip().lower() for t in types),
        "satisfaction_high": high,
        "satisfaction_medium": medium,
    }


def _known_segment(seg: Any, src: str, what: str) -> None:
    """Raise an InputError naming ``what`` unless ``seg`` is one of :data:`RFM_SEGMENTS`."""
    if seg not in RFM_SEGMENTS:
        raise InputError(f"policy {src}: unknown segment {what} (known: {', '.join(RFM_SEGMENTS)})")


def _names(a: dict[str, Any], key: str, where: str, known: tuple[str, ...], src: str) -> Any:
    """An action's optional restriction list (``segments``, ``tiers``, ``stages``) as a
    tuple, or ``None`` when absent; every name must be one of ``known``."""
    vals = a.get(key)
    if vals is None:
        return None
    if not isinstance(vals, list) or not vals:
        raise InputError(f"policy {src}: '{where}.{key}' must be a non-empty list")
    for val in vals:
        if val not in known:
            raise InputError(
                f"policy {src}: unknown name {val!r} in '{where}.{key}' (known: {', '.join(known)})"
            )
    return tuple(vals)


def _action(a: Any, where: str, src: str) -> Action:
    """One entry of ``actions``, validated."""
    if not isinstance(a, dict) or not {"name", "cost"} <= set(a):
        raise InputError(f"policy {src}: '{where}' needs the keys name and cost")
    extra = set(a) - _ACTION_KEYS
    if extra:
        raise InputError(
            f"policy {src}: unknown key '{where}.{sorted(extra)[0]}' "
            f"(known: {', '.join(sorted(_ACTION_KEYS))})"
        )
    name = a["name"]
    if not isinstance(name, str) or not name or name == "none":
        raise InputError(f"policy {src}: '{where}.name' must be a non-empty name other than 'none'")
    goal = a.get("goal", "retention")
    if goal not in ACTION_GOALS:
        raise InputError(
            f"policy {src}: '{where}.goal' must be one of {', '.join(ACTION_GOALS)}, got {goal!r}"
        )
    by_seg = a.get("uplift_by_segment") or {}
    if goal == "growth":
        if "value_lift" not in a:
            raise InputError(f"policy {src}: '{where}' (goal: growth) needs the key value_lift")
        for key in ("uplift", "uplift_by_segment"):
            if key in a:
                raise InputError(
                    f"policy {src}: '{where}.{key}' is for retention actions; a growth action "
                    "has value_lift"
                )
        uplift, value_lift = 0.0, _num(a, where, "value_lift", src, lo=0, hi=math.inf)
    else:
        if "uplift" not in a:
            raise InputError(f"policy {src}: '{where}' (goal: retention) needs the key uplift")
        if "value_lift" in a:
            raise InputError(
                f"policy {src}: '{where}.value_lift' is for growth actions (goal: growth)"
            )
        uplift, value_lift = _num(a, where, "uplift", src, lo=0, hi=1), 0.0
    if not isinstance(by_seg, dict):
        raise InputError(f"policy {src}: '{where}.uplift_by_segment' must be a mapping")
    for seg in by_seg:
        _known_segment(seg, src, f"'{where}.uplift_by_segment.{seg}'")
    return Action(
        name,
        _num(a, where, "cost", src, lo=0, hi=math.inf),
        uplift,
        tuple(
            (seg, _num(by_seg, f"{where}.uplift_by_segment", seg, src, lo=0, hi=1))
            for seg in by_seg
        ),
        _names(a, "segments", where, RFM_SEGMENTS, src),
        goal,
        value_lift,
        _names(a, "tiers", where, VALUE_TIERS, src),
        _names(a, "stages", where, LIFECYCLE_STAGES, src),
    )


def _read(text: str, src: str) -> dict[str, Any]:
    """A policy document: a mapping with known top-level keys (empty = no changes)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"policy {src}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError(f"policy {src}: expected a mapping at the top level")
    for key in doc:
        if key not in _TOP_KEYS:
            raise InputError(
                f"policy {src}: unknown key '{key}' (known: {', '.join(sorted(_TOP_KEYS))})"
            )
    return doc


def _merge(default: dict[str, Any], doc: dict[str, Any], src: str) -> dict[str, Any]:
    """``doc`` over ``default``: mapping sections merge key by key (an empty or null
    section keeps the default's keys); ``actions`` and ``holdout_share`` replace."""
    merged = dict(default)
    for key, val in doc.items():
        if key in _SECTIONS:
            if val is not None and not isinstance(val, dict):
                raise InputError(f"policy {src}: '{key}' must be a mapping")
            merged[key] = {**(default.get(key) or {}), **(val or {})}
        else:
            merged[key] = val
    return merged


def _merged(path: str | os.PathLike[str] | None) -> tuple[dict[str, Any], str]:
    """The policy document of ``path`` merged over the shipped default, and its source name."""
    default_text = resources.files("churnclv").joinpath("default_policy.yaml").read_text()
    doc = _read(default_text, "default")
    if path is None:
        return doc, "default"
    p = Path(path)
    if not p.is_file():
        raise InputError(f"policy file not found: {p}")
    return _merge(doc, _read(p.read_text(), str(p)), str(p)), str(p)


def merged_policy_yaml(path: str | os.PathLike[str] | None = None) -> str:
    """The complete policy in force for ``path`` (merged over the shipped default) as YAML.

    What a bundle should carry, so that a partial policy file means the same
    after the shipped default changes. Validates like :func:`load_policy`.
    """
    load_policy(path)
    doc, src = _merged(path)
    header = f"# churnclv policy: {src} merged over the shipped default_policy.yaml\n"
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Read and validate a YAML policy; ``None`` reads the shipped default.

    A policy file may hold only what it changes; everything else comes from
    the shipped ``default_policy.yaml``. The sections ``value_tier``,
    ``risk_band``, ``lifecycle`` and ``monitoring`` merge key by key (a file
    with ``risk_band: {high: 0.7}`` keeps the default ``risk_band.medium``);
    ``actions`` given replaces the whole list of actions, and
    ``holdout_share`` replaces the default share. The merged policy is
    validated as a whole.

    Parameters
    ----------
    path : path-like, optional
        A policy YAML file (the layout of the shipped ``default_policy.yaml``,
        any subset of its keys).

    Returns
    -------
    Policy
        The validated policy.

    Raises
    ------
    InputError
        Unknown keys or names, wrong types, negative costs, thresholds out of
        order; the message names the key.

    Examples
    --------
    >>> from churnclv.decisions import load_policy
    >>> policy = load_policy()
    >>> policy.risk_high, policy.risk_medium, policy.holdout_share
    (0.6, 0.3, 0.1)
    >>> [(a.name, a.goal) for a in policy.actions]  # doctest: +NORMALIZE_WHITESPACE
    [('email_reminder', 'retention'), ('discount_coupon', 'retention'),
     ('personal_call', 'retention'), ('upgrade_offer', 'growth')]
    """
    doc, src = _merged(path)
    for name, keys in _SECTIONS.items():
        sec = doc.get(name) or {}
        if not isinstance(sec, dict):
            raise InputError(f"policy {src}: '{name}' must be a mapping")
        for key in sec:
            if key not in keys:
                raise InputError(
                    f"policy {src}: unknown key '{name}.{key}' (known: {', '.join(sorted(keys))})"
                )
    vt, rb, lc = doc["value_tier"], doc["risk_band"], doc["lifecycle"]
    high_share = _num(vt, "value_tier", "high_share", src, lo=0, hi=1)
    medium_share = _num(vt, "value_tier", "medium_share", src, lo=0, hi=1)
    if high_share + medium_share > 1:
        raise InputError(
            f"policy {src}: 'value_tier.high_share' + 'value_tier.medium_share' exceed 1"
        )
    risk_high = _num(rb, "risk_band", "high", src, lo=0, hi=1)
    risk_medium = _num(rb, "risk_band", "medium", src, lo=0, hi=1)
    if risk_medium >= risk_high:
        raise InputError(
            f"policy {src}: 'risk_band.medium' ({risk_medium}) must be below "
            f"'risk_band.high' ({risk_high})"
        )
    raw_actions = doc.get("actions")
    if not isinstance(raw_actions, list):
        raise InputError(f"policy {src}: 'actions' must be a list")
    actions: list[Action] = []
    for i, a in enumerate(raw_actions):
        action = _action(a, f"actions[{i}]", src)
        if any(x.name == action.name for x in actions):
            raise InputError(f"policy {src}: 'actions[{i}].name' {action.name!r} is duplicated")
        actions.append(action)
    return Policy(
        high_share=high_share,
        medium_share=medium_share,
        risk_high=risk_high,
        risk_medium=risk_medium,
        new_max_tenure_days=_num(lc, "lifecycle", "new_max_tenure_days", src, lo=0, hi=math.inf),
        silent_gap_multiple=_num(lc, "lifecycle", "silent_gap_multiple", src, lo=0, hi=math.inf),
        silent_default_days=_num(lc, "lifecycle", "silent_default_days", src, lo=0, hi=math.inf),
        churned_recency_days=_num(
            lc, "lifecycle", "churned_recency_days", src, lo=0, hi=math.inf, allow_none=True
        ),
        actions=tuple(actions),
        monitoring=_monitoring(doc.get("monitoring") or {}, src),
        holdout_share=_num(doc, "", "holdout_share", src, lo=0, hi=1),
        **_satisfaction(doc.get("satisfaction") or {}, src),
    )
