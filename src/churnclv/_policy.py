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

__all__ = ["RFM_SEGMENTS", "Action", "Monitoring", "Policy", "load_policy"]

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
    """A retention action: what it costs and the chance it saves a would-be churner.

    ``uplift_by_segment`` overrides ``uplift`` for named RFM segments;
    ``segments``, when given, restricts the action to those segments.
    """

    name: str
    cost: float
    uplift: float
    uplift_by_segment: tuple[tuple[str, float], ...] = ()
    segments: tuple[str, ...] | None = None

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
        The retention actions to choose from.
    monitoring : Monitoring
        Thresholds of the monitoring verdict (optional section; defaults apply).

    Examples
    --------
    >>> from churnclv.decisions import Action, Policy
    >>> policy = Policy(actions=(Action("email", cost=1.0, uplift=0.05),))
    >>> policy.risk_high, [a.name for a in policy.actions]
    (0.6, ['email'])
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


_MONITORING_KEYS = ("psi_watch", "psi_retrain", "auc_drop_watch", "auc_drop_retrain")


def _monitoring(doc: dict[str, Any], src: str) -> Monitoring:
    """The optional ``monitoring`` section; missing keys keep their defaults."""
    sec = doc.get("monitoring") or {}
    if not isinstance(sec, dict):
        raise InputError(f"policy {src}: 'monitoring' must be a mapping")
    keys = {*_MONITORING_KEYS, "tier_change_watch"}
    for key in sec:
        if key not in keys:
            raise InputError(f"policy {src}: unknown key 'monitoring.{key}'")
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
    if key not in raw:
        raise InputError(f"policy {src}: missing key '{section}.{key}'")
    val = raw[key]
    if val is None and allow_none:
        return None
    if isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val):
        raise InputError(f"policy {src}: '{section}.{key}' must be a number, got {val!r}")
    if not lo <= val <= hi:
        raise InputError(f"policy {src}: '{section}.{key}' = {val} must be within [{lo}, {hi}]")
    return float(val)


def _known_segment(seg: Any, src: str, what: str) -> None:
    """Raise an InputError naming ``what`` unless ``seg`` is one of :data:`RFM_SEGMENTS`."""
    if seg not in RFM_SEGMENTS:
        raise InputError(f"policy {src}: unknown segment {what} (known: {', '.join(RFM_SEGMENTS)})")


def _section(doc: dict[str, Any], name: str, src: str) -> Any:
    if name not in doc:
        raise InputError(f"policy {src}: missing section '{name}'")
    return doc[name]


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Read and validate a YAML policy; ``None`` reads the shipped default.

    Parameters
    ----------
    path : path-like, optional
        A policy YAML file (the layout of the shipped ``default_policy.yaml``).

    Returns
    -------
    Policy
        The validated policy.

    Raises
    ------
    InputError
        Unknown or missing keys, negative costs, thresholds out of order; the
        message names the key.

    Examples
    --------
    >>> from churnclv.decisions import load_policy
    >>> policy = load_policy()
    >>> policy.risk_high, policy.risk_medium
    (0.6, 0.3)
    >>> [a.name for a in policy.actions]
    ['email_reminder', 'discount_coupon', 'personal_call']
    """
    if path is None:
        text = resources.files("churnclv").joinpath("default_policy.yaml").read_text()
        src = "default"
    else:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"policy file not found: {p}")
        text, src = p.read_text(), str(p)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"policy {src}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise InputError(f"policy {src}: expected a mapping at the top level")
    known = {"value_tier", "risk_band", "lifecycle", "actions", "monitoring"}
    for key in doc:
        if key not in known:
            raise InputError(
                f"policy {src}: unknown key '{key}' (known: {', '.join(sorted(known))})"
            )
    sections = {}
    for name, keys in {
        "value_tier": {"high_share", "medium_share"},
        "risk_band": {"high", "medium"},
        "lifecycle": {
            "new_max_tenure_days",
            "silent_gap_multiple",
            "silent_default_days",
            "churned_recency_days",
        },
    }.items():
        sec = _section(doc, name, src)
        if not isinstance(sec, dict):
            raise InputError(f"policy {src}: '{name}' must be a mapping")
        for key in sec:
            if key not in keys:
                raise InputError(f"policy {src}: unknown key '{name}.{key}'")
        sections[name] = sec
    vt, rb, lc = sections["value_tier"], sections["risk_band"], sections["lifecycle"]
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
    raw_actions = _section(doc, "actions", src)
    if not isinstance(raw_actions, list):
        raise InputError(f"policy {src}: 'actions' must be a list")
    actions: list[Action] = []
    for i, a in enumerate(raw_actions):
        where = f"actions[{i}]"
        if not isinstance(a, dict) or not {"name", "cost", "uplift"} <= set(a):
            raise InputError(f"policy {src}: '{where}' needs the keys name, cost, uplift")
        extra = set(a) - {"name", "cost", "uplift", "uplift_by_segment", "segments"}
        if extra:
            raise InputError(f"policy {src}: unknown key '{where}.{sorted(extra)[0]}'")
        by_seg = a.get("uplift_by_segment") or {}
        if not isinstance(by_seg, dict):
            raise InputError(f"policy {src}: '{where}.uplift_by_segment' must be a mapping")
        for seg in by_seg:
            _known_segment(seg, src, f"'{where}.uplift_by_segment.{seg}'")
        segs = a.get("segments")
        if segs is not None:
            if not isinstance(segs, list) or not segs:
                raise InputError(f"policy {src}: '{where}.segments' must be a non-empty list")
            for seg in segs:
                _known_segment(seg, src, f"{seg!r} in '{where}.segments'")
        name = a["name"]
        if not isinstance(name, str) or not name or name == "none":
            raise InputError(
                f"policy {src}: '{where}.name' must be a non-empty name other than 'none'"
            )
        if any(x.name == name for x in actions):
            raise InputError(f"policy {src}: '{where}.name' {name!r} is duplicated")
        actions.append(
            Action(
                name,
                _num(a, where, "cost", src, lo=0, hi=math.inf),
                _num(a, where, "uplift", src, lo=0, hi=1),
                tuple(
                    (seg, _num(by_seg, f"{where}.uplift_by_segment", seg, src, lo=0, hi=1))
                    for seg in by_seg
                ),
                tuple(segs) if segs is not None else None,
            )
        )
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
        monitoring=_monitoring(doc, src),
    )
