"""Monitoring of the champion: score snapshots, backtest, drift and a retrain verdict.

Every ``churnclv score`` (and the demo) keeps a small snapshot of its scores in
``<workdir>/snapshots/<as_of>.parquet``: ``customer_id``, ``churn_probability``,
``predicted_value``, ``value_tier``, ``as_of``, ``model_version``, the two
horizons and ``lifecycle_stage`` (for the migration between snapshots,
:mod:`churnclv._migration`). Features are not stored: they are point-in-time, so
:func:`churnclv.features.build_features` on the same transactions at the
snapshot's ``as_of`` gives back exactly what the model saw.

Drift reference: the champion's earliest snapshot, i.e. the first scoring
population of the model version that scored the latest snapshot (usually the
scoring right after training). The latest snapshot is compared with it.

The verdict (:func:`verdict`) reads the policy's ``monitoring`` thresholds.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnclv._io import atomic_write_parquet
from churnclv._policy import Monitoring

if TYPE_CHECKING:
    from churnclv.features._vocabulary import Vocabulary

__all__ = [
    "SNAPSHOT_COLUMNS",
    "backtest",
    "drift",
    "monitor",
    "psi",
    "read_snapshots",
    "snapshot_frame",
    "verdict",
    "write_snapshot",
]

SNAPSHOT_COLUMNS = (
    "customer_id",
    "churn_probability",
    "predicted_value",
    "value_tier",
    "as_of",
    "model_version",
    "churn_horizon_days",
    "value_horizon_days",
)
_EPS = 1e-4
_SCORES = ("churn_probability", "predicted_value")
_LEVELS = ("ok", "watch", "retrain")


# ---- snapshots -------------------------------------------------------------------------------
def snapshot_frame(scored: pd.DataFrame, champion: Any) -> pd.DataFrame:
    """The snapshot columns of a scores frame, with the champion's horizons."""
    keep = [*SNAPSHOT_COLUMNS[:6], "lifecycle_stage"]
    snap = scored[[c for c in keep if c in scored.columns]].copy()
    # pandas would write the scores' attrs (every customer's structured reasons) into the
    # file's metadata as JSON: 30 s at 200k customers, and the snapshot never reads them
    snap.attrs = {}
    snap["churn_horizon_days"] = float(champion.churn_horizon_days)
    snap["value_horizon_days"] = float(champion.value_horizon_days)
    return snap


def write_snapshot(scored: pd.DataFrame, champion: Any, workdir: str | Path) -> Path:
    """Write ``<workdir>/snapshots/<as_of date>.parquet`` atomically and return its path."""
    as_of = pd.Timestamp(scored["as_of"].iloc[0]) if len(scored) else pd.Timestamp("NaT")
    path = Path(workdir) / "snapshots" / f"{as_of.date().isoformat()}.parquet"
    return atomic_write_parquet(snapshot_frame(scored, champion), path)


def read_snapshots(
    workdir: str | Path, as_of: pd.Timestamp | None = None
) -> tuple[list[pd.DataFrame], list[str]]:
    """The readable snapshots (oldest first, ``as_of`` at or before ``as_of``) and warnings.

    A file that cannot be read or lacks the snapshot columns is named in a
    warning and skipped.
    """
    folder = Path(workdir) / "snapshots"
    snaps, problems = [], []
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    for path in files:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}\.parquet", path.name):
            continue
        try:
            snap = pd.read_parquet(path)
        except Exception as exc:  # a corrupt file must not stop the monitoring
            problems.append(f"snapshot {path} cannot be read ({type(exc).__name__}); skipped")
            continue
        missing = set(SNAPSHOT_COLUMNS) - set(snap.columns)
        if missing or snap.empty:
            why = f"lacks {', '.join(sorted(missing))}" if missing else "is empty"
            problems.append(f"snapshot {path} {why}; skipped")
            continue
        if as_of is None or pd.Timestamp(snap["as_of"].iloc[0]) <= as_of:
            snaps.append(snap)
    return snaps, problems


# ---- measures --------------------------------------------------------------------------------
def psi(expected: Any, actual: Any, bins: int = 10) -> float:
    """Population stability index of ``actual`` against the reference ``expected``.

    ``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)`` over the bins cut at the
    ``1/bins, ..., (bins-1)/bins`` quantiles of ``expected`` (repeated cut
    points merged), where ``e_i`` and ``a_i`` are the shares of each
    population in bin ``i``, floored at 1e-4 so an empty bin stays finite.
    Missing values form one more bin (e.g. "no complaint yet"). Rule of
    thumb: < 0.1 stable, 0.1-0.25 a shift, > 0.25 a large shift.

    Examples
    --------
    >>> from churnclv._monitor import psi
    >>> round(psi(range(1, 11), [1, 2, 3, 8, 9, 10, 11, 12], bins=2), 5)
    0.06385
    >>> psi([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    0.0
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if not len(e) or not len(a) or np.isnan(e).all():
        return float("nan")
    edges = np.unique(np.quantile(e[~np.isnan(e)], np.linspace(0, 1, bins + 1)[1:-1]))
    k = len(edges) + 2  # the last bin holds the missing values

    def shares(x: np.ndarray) -> np.ndarray:
        idx = np.where(np.isnan(x), k - 1, np.searchsorted(edges, x, side="right"))
        return np.bincount(idx, minlength=k) / len(x)

    e_share, a_share = shares(e), shares(a)
    e_share, a_share = np.maximum(e_share, _EPS), np.maximum(a_share, _EPS)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def backtest(
    snapshot: pd.DataFrame, transactions: pd.DataFrame, as_of: pd.Timestamp | str
) -> dict[str, Any] | None:
    """Realised quality of one snapshot whose churn horizon ended by ``as_of``.

    Labels come from :func:`churnclv.features.build_labels`; churn metrics
    (AUC, ECE, mean predicted vs realised churn rate) need the churn horizon
    to have ended, value metrics (Gini, totals) the value horizon. Returns
    ``None`` when the churn horizon has not ended yet.
    """
    from churnclv.features import build_labels
    from churnclv.training._metrics import churn_metrics, value_metrics

    as_of = pd.Timestamp(as_of)
    snap_as_of = pd.Timestamp(snapshot["as_of"].iloc[0])
    ch = float(snapshot["churn_horizon_days"].iloc[0])
    vh = float(snapshot["value_horizon_days"].iloc[0])
    if snap_as_of + pd.Timedelta(days=ch) > as_of:
        return None
    keys = pd.DataFrame({"customer_id": snapshot["customer_id"], "as_of": snap_as_of})
    labels = build_labels(transactions, keys, churn_horizon_days=ch, value_horizon_days=vh)
    df = snapshot.merge(labels[["customer_id", "churned", "future_value"]], on="customer_id")
    y = df["churned"].to_numpy(dtype=int)
    p = df["churn_probability"].to_numpy(dtype=float)
    cm = churn_metrics(y, p)
    row: dict[str, Any] = {
        "as_of": snap_as_of.date().isoformat(),
        "model_version": str(snapshot["model_version"].iloc[0]),
        "customers": len(df),
        "churn_roc_auc": cm["churn_roc_auc"],
        "churn_ece": cm["churn_ece"],
        "mean_churn_probability": float(p.mean()),
        "realised_churn_rate": cm["churn_base_rate"],
    }
    if snap_as_of + pd.Timedelta(days=vh) <= as_of:
        actual, pred = df["future_value"].to_numpy(float), df["predicted_value"].to_numpy(float)
        vm = value_metrics(actual, pred)
        row |= {
            "value_gini": vm["value_gini"],
            "value_total_ratio": vm["value_total_ratio"],
            "predicted_value_total": float(pred.sum()),
            "actual_value_total": float(actual.sum()),
        }
    return row


def drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    previous: pd.DataFrame | None = None,
    bins: int = 10,
) -> dict[str, Any]:
    """PSI per feature and per score of ``current`` against ``reference``, tier changes.

    ``reference`` and ``current`` hold the score columns and any feature
    columns (numeric columns present in both are compared). ``previous`` (the
    snapshot before ``current``) gives the share of customers in both whose
    ``value_tier`` changed.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv._monitor import drift
    >>> ref = pd.DataFrame({"customer_id": ["a", "b"], "x": [1.0, 2.0], "value_tier": ["h", "l"]})
    >>> cur = pd.DataFrame({"customer_id": ["a", "b"], "x": [1.0, 2.0], "value_tier": ["l", "l"]})
    >>> d = drift(ref, cur, previous=ref)
    >>> d["psi"], d["tier_change_share"]
    ({'x': 0.0}, 0.5)
    """
    skip = {"customer_id", "as_of", "churn_horizon_days", "value_horizon_days"}
    cols = [
        c
        for c in reference.columns
        if c in current.columns
        and c not in skip
        and pd.api.types.is_numeric_dtype(reference[c])
        and not pd.api.types.is_bool_dtype(reference[c])
    ]
    table = {c: psi(reference[c], current[c], bins) for c in cols}
    table = {c: v for c, v in table.items() if math.isfinite(v)}
    share = float("nan")
    if previous is not None and "value_tier" in current.columns:
        both = previous[["customer_id", "value_tier"]].merge(
            current[["customer_id", "value_tier"]], on="customer_id"
        )
        if len(both):
            share = float((both["value_tier_x"] != both["value_tier_y"]).mean())
    return {"psi": table, "tier_change_share": share}


def verdict(
    backtests: list[dict[str, Any]],
    drifted: dict[str, Any] | None,
    thresholds: Monitoring,
    reference_auc: float | None = None,
) -> tuple[str, list[str]]:
    """``ok``, ``watch`` or ``retrain`` and the reasons, by the policy's thresholds.

        PSI: the largest of any feature or score. AUC: the latest backtest churn
        AUC against ``reference_auc`` (the champion's validation AUC), or the first
        backtest when that is unknown.

        Examples
        --------
        >>> from churnclv._policy import Monitoring
    from churnclv.features._sql_events import DEFAULT_EVENT_TYPES
    from churnclv.features._vocabulary import Vocabulary
        >>> from churnclv._monitor import verdict
        >>> verdict([], {"psi": {"x": 0.3}, "tier_change_share": 0.0}, Monitoring())
        ('retrain', ['PSI of x is 0.300 (retrain at 0.25)'])
    """
    level, reasons = 0, []

    def flag(value: float, watch: float, retrain: float, text: str) -> None:
        nonlocal level
        if math.isfinite(value) and value >= watch:
            hit = 2 if value >= retrain else 1
            level = max(level, hit)
            reasons.append(f"{text} ({_LEVELS[hit]} at {retrain if hit == 2 else watch:g})")

    if drifted and drifted["psi"]:
        name, top = max(drifted["psi"].items(), key=lambda kv: kv[1])
        flag(top, thresholds.psi_watch, thresholds.psi_retrain, f"PSI of {name} is {top:.3f}")
    if drifted:
        share = drifted["tier_change_share"]
        flag(share, thresholds.tier_change_watch, math.inf, f"{share:.0%} changed value tier")
    aucs = [b["churn_roc_auc"] for b in backtests if math.isfinite(b["churn_roc_auc"])]
    if aucs:
        ref = reference_auc if reference_auc is not None else aucs[0]
        drop = ref - aucs[-1]
        flag(
            drop,
            thresholds.auc_drop_watch,
            thresholds.auc_drop_retrain,
            f"backtest churn AUC {aucs[-1]:.3f} is {drop:.3f} below {ref:.3f}",
        )
    return _LEVELS[level], reasons


# ---- the whole check -------------------------------------------------------------------------
def _features_at(tables: Any, snap: pd.DataFrame, vocabulary: Vocabulary | None) -> pd.DataFrame:
    """The snapshot's customers with their point-in-time features and scores.

    ``vocabulary``: the event types (and valued types) with their own features;
    None: the default types, no values.
    """
    from churnclv.features import DEFAULT_EVENT_TYPES
    from churnclv.features._build import table_features

    as_of = pd.Timestamp(snap["as_of"].iloc[0])
    frame = table_features(tables, as_of=as_of, vocabulary=vocabulary or (DEFAULT_EVENT_TYPES, ()))
    frame = frame.drop(columns=["as_of"])
    return snap.merge(frame, on="customer_id", how="left")


def monitor(
    tables: Any,
    *,
    as_of: pd.Timestamp | str,
    workdir: str | Path,
    thresholds: Monitoring | None = None,
    reference_auc: float | None = None,
    event_vocabulary: Vocabulary | None = None,
) -> dict[str, Any]:
    """Backtest every ended snapshot, measure drift of the latest one and give a verdict.

    ``event_vocabulary`` (event types, valued event types) names the event
    types whose features the drift compares: the champion's
    (:func:`churnclv.features._vocabulary.model_vocabulary`), so the drift
    covers the columns the models read; None: the default types, no values.

    Returns the JSON-ready report: ``as_of``, ``verdict``, ``reasons``,
    ``backtest`` (one row per snapshot whose churn horizon ended), ``drift``
    (reference and current dates, ``psi`` per column, ``tier_change_share``),
    ``snapshots`` and ``warnings`` (skipped files).
    """
    as_of = pd.Timestamp(as_of)
    thresholds = thresholds or Monitoring()
    snaps, problems = read_snapshots(workdir, as_of)
    report: dict[str, Any] = {
        "as_of": as_of.date().isoformat(),
        "snapshots": [pd.Timestamp(s["as_of"].iloc[0]).date().isoformat() for s in snaps],
        "warnings": problems,
        "backtest": [],
        "drift": None,
        "reference_auc": reference_auc,
    }
    if not snaps:
        report["verdict"] = "ok"
        report["reasons"] = [f"no stored score snapshots in {Path(workdir) / 'snapshots'}"]
        return report
    rows = [backtest(s, tables.transactions, as_of) for s in snaps]
    report["backtest"] = [r for r in rows if r is not None]
    latest = snaps[-1]
    version = latest["model_version"].iloc[0]
    reference = next(s for s in snaps if s["model_version"].iloc[0] == version)
    previous = snaps[-2] if len(snaps) > 1 else None
    drifted = drift(
        _features_at(tables, reference, event_vocabulary),
        _features_at(tables, latest, event_vocabulary),
        previous,
    )
    report["drift"] = {
        "reference_as_of": report["snapshots"][snaps.index(reference)],
        "current_as_of": report["snapshots"][-1],
        **drifted,
    }
    level, reasons = verdict(report["backtest"], drifted, thresholds, reference_auc)
    if not report["backtest"]:
        reasons.append("no snapshot's churn horizon has ended by as_of: nothing to backtest")
    report["verdict"], report["reasons"] = level, reasons or ["no threshold reached"]
    return report
