"""Tier and lifecycle migration between two score snapshots (periodic review).

Every ``churnclv score`` keeps ``<workdir>/snapshots/<as_of>.parquet``
(:mod:`churnclv._monitor`). Comparing the latest one with the one before says
how the customer base moved: who went up or down a value tier, who became
churned, who is new and who is gone. The report, notebook 03 and ``/lookup``
(``previous_value_tier``) read it from here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from churnclv._policy import LIFECYCLE_STAGES, VALUE_TIERS

__all__ = [
    "migration_matrix",
    "migration_summary",
    "previous_snapshot",
    "previous_snapshot_path",
]

_ORDER = {"value_tier": VALUE_TIERS, "lifecycle_stage": LIFECYCLE_STAGES}
_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})\.parquet")


def _labels(frame: pd.DataFrame, column: str) -> pd.Series:
    ids = frame["customer_id"].astype(str)
    return pd.Series(frame[column].astype(str).to_numpy(), index=ids.to_numpy()).loc[
        lambda s: ~s.index.duplicated(keep="last")
    ]


def migration_matrix(
    previous: pd.DataFrame, current: pd.DataFrame, column: str = "value_tier"
) -> pd.DataFrame:
    """Customers counted by their label in ``previous`` (rows) and in ``current`` (columns).

    Parameters
    ----------
    previous, current : pandas.DataFrame
        Two score snapshots with ``customer_id`` and ``column``.
    column : str
        The label compared, e.g. ``"value_tier"`` or ``"lifecycle_stage"``.

    Returns
    -------
    pandas.DataFrame
        Integer counts. Rows are the previous labels plus ``"new customer"``
        (customers only in ``current``); columns are the current labels plus ``"gone"``
        (customers only in ``previous``). Tiers and stages keep the policy's
        order; other labels are sorted.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv import migration_matrix
    >>> before = pd.DataFrame({"customer_id": ["a", "b", "c"],
    ...                        "value_tier": ["low", "high", "medium"]})
    >>> after = pd.DataFrame({"customer_id": ["a", "b", "d"],
    ...                       "value_tier": ["medium", "high", "low"]})
    >>> migration_matrix(before, after).loc["low", "medium"]
    np.int64(1)
    >>> int(migration_matrix(before, after).loc["new customer", "low"])
    1
    """
    prev, cur = _labels(previous, column), _labels(current, column)
    seen = set(prev) | set(cur)
    order = list(_ORDER.get(column, ()))
    order += sorted(seen - set(order))
    both = prev.index.intersection(cur.index)
    counts = pd.crosstab(prev.loc[both], cur.loc[both]).reindex(
        index=order, columns=order, fill_value=0
    )
    counts["gone"] = prev.loc[prev.index.difference(cur.index)].value_counts()
    new = cur.loc[cur.index.difference(prev.index)].value_counts()
    counts.loc["new customer"] = [*new.reindex(order).tolist(), 0]
    out = counts.fillna(0).astype("int64")
    out.index.name, out.columns.name = f"previous {column}", f"current {column}"
    return out


def _n(value: int, noun: str) -> str:
    return f"{value:,} {noun}{'' if value == 1 else 's'}"


def migration_summary(
    previous: pd.DataFrame, current: pd.DataFrame, since: str | None = None
) -> dict[str, Any]:
    """Upgrades, downgrades, newly churned, new and gone customers, and a sentence on them.

    Parameters
    ----------
    previous, current : pandas.DataFrame
        Two score snapshots with ``customer_id`` and ``value_tier``; with
        ``lifecycle_stage`` in both, newly churned customers are counted too.
    since : str, optional
        How the sentence names the previous snapshot (default: its ``as_of``
        date when present, else "the previous snapshot").

    Returns
    -------
    dict
        ``customers`` (in both), ``upgrades``, ``downgrades``, ``unchanged``,
        ``new``, ``gone``, ``newly_churned`` (``None`` without lifecycle
        stages) and ``sentence``, every figure computed from the frames.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv import migration_summary
    >>> before = pd.DataFrame({"customer_id": ["a", "b", "c"],
    ...                        "value_tier": ["low", "high", "medium"]})
    >>> after = pd.DataFrame({"customer_id": ["a", "b", "c"],
    ...                       "value_tier": ["medium", "medium", "medium"]})
    >>> migration_summary(before, after, since="2024-01-01")["sentence"]
    'Since 2024-01-01, 1 customer moved up a value tier and 1 customer moved down \
(1 of 3 customers in both snapshots kept their tier).'
    """
    rank = {t: i for i, t in enumerate(VALUE_TIERS)}  # 0 = high
    prev, cur = _labels(previous, "value_tier"), _labels(current, "value_tier")
    both = prev.index.intersection(cur.index)
    step = cur.loc[both].map(rank) - prev.loc[both].map(rank)
    up, down = int((step < 0).sum()), int((step > 0).sum())
    new, gone = len(cur.index.difference(prev.index)), len(prev.index.difference(cur.index))
    churned: int | None = None
    if "lifecycle_stage" in previous and "lifecycle_stage" in current:
        before = _labels(previous, "lifecycle_stage").reindex(both)
        after = _labels(current, "lifecycle_stage").reindex(both)
        churned = int(((after == "churned") & (before != "churned")).sum())
    if since is None:
        since = (
            str(pd.Timestamp(previous["as_of"].iloc[0]).date())
            if "as_of" in previous and len(previous)
            else "the previous snapshot"
        )
    if len(both) == 0:
        sentence = f"No customer of the current scores was in the snapshot of {since}."
    else:
        sentence = (
            f"Since {since}, {_n(up, 'customer')} moved up a value tier and "
            f"{_n(down, 'customer')} moved down ({len(both) - up - down:,} of "
            f"{_n(len(both), 'customer')} in both snapshots kept their tier)"
        )
        if churned is not None:
            sentence += f"; {_n(churned, 'customer')} became churned"
        sentence += "."
    if new or gone:
        sentence += f" {_n(new, 'customer')} {'is' if new == 1 else 'are'} new, {gone:,} gone."
    return {
        "customers": len(both),
        "upgrades": up,
        "downgrades": down,
        "unchanged": len(both) - up - down,
        "new": new,
        "gone": gone,
        "newly_churned": churned,
        "sentence": sentence,
    }


def previous_snapshot_path(workdir: str | Path, as_of: Any) -> Path | None:
    """The latest ``<workdir>/snapshots/<date>.parquet`` dated before ``as_of``, or ``None``."""
    folder = Path(workdir) / "snapshots"
    if not folder.is_dir():
        return None
    day = pd.Timestamp(as_of).date().isoformat()
    dated = [(m.group(1), p) for p in folder.glob("*.parquet") if (m := _NAME.fullmatch(p.name))]
    earlier = sorted((d, p) for d, p in dated if d < day)
    return earlier[-1][1] if earlier else None


def previous_snapshot(workdir: str | Path, as_of: Any) -> pd.DataFrame | None:
    """The snapshot before ``as_of`` (:func:`previous_snapshot_path`); ``None`` if unreadable."""
    path = previous_snapshot_path(workdir, as_of)
    if path is None:
        return None
    try:
        snap = pd.read_parquet(path)
    except Exception:  # a corrupt snapshot only costs the migration section
        return None
    return snap if {"customer_id", "value_tier"} <= set(snap.columns) else None
