"""The decision report: one self-contained HTML page of PNG plots and tables.

Built from a scores frame (``churnclv score`` / ``demo``) and, when a tracking
store is at hand, the champion run's evaluation plots. Plain matplotlib
(``Figure``, no pyplot state), written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churnclv._io import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["decision_figures", "write_report"]

_TIERS = ["high", "medium", "low"]
_BANDS = ["high", "medium", "low"]
_STAGES = ["new", "active", "silent", "churned"]


def _fig(w: float = 6.0, h: float = 4.2) -> tuple[Figure, object]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    return fig, fig.add_subplot()


def _tier_risk(scored: pd.DataFrame) -> Figure:
    fig, ax = _fig()
    value = (
        scored.pivot_table(
            index="value_tier",
            columns="risk_band",
            values="predicted_value",
            aggfunc="sum",
            observed=False,
        )
        .reindex(index=_TIERS, columns=_BANDS)
        .fillna(0.0)
    )
    count = (
        scored.pivot_table(
            index="value_tier",
            columns="risk_band",
            values="customer_id",
            aggfunc="count",
            observed=False,
        )
        .reindex(index=_TIERS, columns=_BANDS)
        .fillna(0)
    )
    total = max(float(value.to_numpy().sum()), 1e-9)
    im = ax.imshow(value.to_numpy() / total, cmap="Oranges", vmin=0)  # type: ignore[attr-defined]
    for i in range(3):
        for j in range(3):
            ax.text(  # type: ignore[attr-defined]
                j,
                i,
                f"{int(count.iat[i, j]):,} cust.\n{value.iat[i, j] / total:.0%} of value",
                ha="center",
                va="center",
                fontsize=8,
            )
    ax.set_xticks(range(3), [f"{b} risk" for b in _BANDS])  # type: ignore[attr-defined]
    ax.set_yticks(range(3), [f"{t} value" for t in _TIERS])  # type: ignore[attr-defined]
    ax.set_title("Value tier x churn risk: customers and share of predicted value")  # type: ignore[attr-defined]
    fig.colorbar(im, ax=ax, label="share of predicted value")  # type: ignore[arg-type]
    fig.tight_layout()
    return fig


def _actions(scored: pd.DataFrame) -> Figure:
    fig, ax = _fig()
    sel = scored[scored["selected"]] if "selected" in scored else scored[scored["action"] != "none"]
    g = sel.groupby("action").agg(
        customers=("customer_id", "size"),
        cost=("action_cost", "sum"),
        saved=("expected_saved_value", "sum"),
    )
    x = np.arange(len(g))
    ax.bar(x - 0.2, g["cost"], width=0.4, label="cost")  # type: ignore[attr-defined]
    ax.bar(x + 0.2, g["saved"], width=0.4, label="expected saved value")  # type: ignore[attr-defined]
    ax.set_xticks(x, [f"{a}\n({n:,} cust.)" for a, n in zip(g.index, g["customers"], strict=True)])  # type: ignore[attr-defined]
    ax.set_title("Retention actions in the campaign: cost vs expected saved value")  # type: ignore[attr-defined]
    ax.legend()  # type: ignore[attr-defined]
    fig.tight_layout()
    return fig


def _lifecycle(scored: pd.DataFrame) -> Figure:
    fig, ax = _fig()
    tab = (
        pd.crosstab(scored["lifecycle_stage"], scored["value_tier"])
        .reindex(index=_STAGES, columns=_TIERS)
        .fillna(0)
    )
    bottom = np.zeros(len(tab))
    for tier in _TIERS:
        ax.bar(tab.index, tab[tier], bottom=bottom, label=f"{tier} value")  # type: ignore[attr-defined]
        bottom += tab[tier].to_numpy()
    ax.set_title("Lifecycle stage by value tier (customers)")  # type: ignore[attr-defined]
    ax.legend()  # type: ignore[attr-defined]
    fig.tight_layout()
    return fig


def _segments(scored: pd.DataFrame) -> Figure:
    fig, ax = _fig()
    g = scored.groupby("rfm_segment").agg(
        customers=("customer_id", "size"), value=("predicted_value", "sum")
    )
    g = g.sort_values("value")
    ax.barh(g.index, g["value"])  # type: ignore[attr-defined]
    for i, (v, n) in enumerate(zip(g["value"], g["customers"], strict=True)):
        ax.text(v, i, f" {n:,}", va="center", fontsize=7)  # type: ignore[attr-defined]
    ax.set_title("Predicted value by RFM segment (label: customers)")  # type: ignore[attr-defined]
    fig.tight_layout()
    return fig


def _churn_hist(scored: pd.DataFrame) -> Figure:
    fig, ax = _fig()
    ax.hist(scored["churn_probability"], bins=40)  # type: ignore[attr-defined]
    ax.set_xlabel("P(churn)")  # type: ignore[attr-defined]
    ax.set_ylabel("customers")  # type: ignore[attr-defined]
    ax.set_title("Distribution of churn probability")  # type: ignore[attr-defined]
    fig.tight_layout()
    return fig


def decision_figures(scored: pd.DataFrame) -> dict[str, Figure]:
    """The report's own figures, keyed by file name."""
    return {
        "tier_risk_matrix.png": _tier_risk(scored),
        "action_mix.png": _actions(scored),
        "lifecycle_mix.png": _lifecycle(scored),
        "rfm_segments.png": _segments(scored),
        "churn_distribution.png": _churn_hist(scored),
    }


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, border=0, classes="t", float_format=lambda v: f"{v:,.2f}")


def write_report(
    scored: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    summary: Mapping[str, float] | None = None,
    model_plots: Mapping[str, bytes] | None = None,
    figures: Mapping[str, Figure] | None = None,
    title: str = "churnclv decision report",
    notes: list[str] | None = None,
) -> Path:
    """Write the HTML report for a scores frame; returns its path.

    Parameters
    ----------
    scored : pandas.DataFrame
        Output of :func:`churnclv.serving.score` (with ``selected``,
        ``action_cost``, ``expected_saved_value``).
    out : path-like
        The HTML file to write (atomically).
    summary : mapping, optional
        Campaign totals (:func:`churnclv.decisions.campaign_summary`).
    model_plots : mapping of str to bytes, optional
        PNGs of the champion run (calibration, gains, value deciles).
    figures : mapping of str to Figure, optional
        :func:`decision_figures` of ``scored`` when the caller already built them.
    """
    own = figures if figures is not None else decision_figures(scored)
    figs = {name: _png(fig) for name, fig in own.items()}
    figs.update(model_plots or {})
    as_of = pd.Timestamp(scored["as_of"].iloc[0]).date() if len(scored) else "-"
    version = scored["model_version"].iloc[0] if len(scored) else "-"
    order = {"high": 0, "medium": 1, "low": 2}
    mix = (
        scored.groupby(["value_tier", "risk_band"])
        .agg(customers=("customer_id", "size"), predicted_value=("predicted_value", "sum"))
        .reset_index()
    )
    mix["share_of_value"] = mix["predicted_value"] / max(mix["predicted_value"].sum(), 1e-9)
    mix = mix.sort_values(["value_tier", "risk_band"], key=lambda c: c.map(order))
    sel = scored.assign(
        campaign_cost=scored["action_cost"].where(scored["selected"], 0.0),
        campaign_saved_value=scored["expected_saved_value"].where(scored["selected"], 0.0),
    )
    actions = (
        sel.groupby("action")
        .agg(
            recommended=("customer_id", "size"),
            in_campaign=("selected", "sum"),
            campaign_cost=("campaign_cost", "sum"),
            campaign_saved_value=("campaign_saved_value", "sum"),
        )
        .reset_index()
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1300px}"
        "img{max-width:620px;margin:6px;border:1px solid #ddd}"
        ".t{border-collapse:collapse}.t td,.t th{padding:3px 10px;border-bottom:1px solid #eee;"
        "text-align:right}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>As of <b>{as_of}</b> &middot; {len(scored):,} customers &middot; models "
        f"<code>{html.escape(str(version))}</code></p>",
    ]
    if summary:
        parts.append("<h2>Campaign</h2>")
        parts.append(_table(pd.DataFrame([dict(summary)])))
    for note in notes or []:
        parts.append(f"<p>{html.escape(note)}</p>")
    parts.append("<h2>Value tier x churn risk</h2>" + _table(mix))
    parts.append("<h2>Actions</h2>" + _table(actions))
    parts.append("<h2>Plots</h2><div>")
    for name, png in figs.items():
        b64 = base64.b64encode(png).decode()
        parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{b64}'>")
    parts.append("</div></body></html>")
    text = "\n".join(parts)
    return atomic_write(out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
