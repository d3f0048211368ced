"""The decision report's figures and the number formats it shows people.

Plain matplotlib (``Figure``, no pyplot state). Every figure carries a title;
the report adds a caption and alt text (:data:`CAPTIONS`). Numbers read as a
marketer writes them: counts as integers with thousands separators, money
without spurious decimals, shares as percentages, labels in words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "BANDS",
    "CAPTIONS",
    "TIERS",
    "count",
    "decision_figures",
    "money",
    "pct",
    "plain",
    "value_at_risk",
    "words",
]

TIERS = ["high", "medium", "low"]
BANDS = ["low", "medium", "high"]
_STAGES = ["new", "active", "silent", "churned"]
_SPECIAL = {"cant_lose_them": "Can't lose them", "rfm": "RFM"}

#: Caption (also the alt text) of each figure, keyed by file name.
CAPTIONS = {
    "tier_risk_matrix.png": "Value at risk (churn probability x predicted value) by value tier "
    "and churn risk; the darker the cell, the more value is at stake.",
    "action_mix.png": "Cost and expected saved value of each retention action in the campaign.",
    "clv_distribution.png": "How predicted customer value is spread (log scale): most customers "
    "are worth little, a few are worth a lot.",
    "rfm_segments.png": "Predicted value held by each RFM segment, largest first "
    "(label: customers).",
    "lifecycle_mix.png": "Customers in each lifecycle stage, split by value tier.",
    "churn_distribution.png": "How churn probability is spread across customers.",
    "model_churn_calibration.png": "Are the churn probabilities honest? Observed churn rate "
    "against predicted probability; points on the dotted line are right.",
    "model_churn_gains.png": "Share of churners reached when contacting the riskiest "
    "customers first, for the model and the baselines.",
    "model_value_deciles.png": "Predicted against actual value for each tenth of customers, "
    "ranked by predicted value.",
}


def count(n: float) -> str:
    """A count as people write it: ``1,675``.

    Examples
    --------
    >>> count(1675.0)
    '1,675'
    """
    return f"{round(float(n)):,}"


def money(x: float) -> str:
    """Money with thousands separators; cents only below 10.

    Examples
    --------
    >>> money(10970.23), money(4.5), money(-1234.5), money(0.0)
    ('10,970', '4.50', '-1,234', '0')
    """
    x = float(x)
    if not np.isfinite(x):
        return "-"
    if x == 0:
        return "0"
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:,.2f}"


def pct(share: float, digits: int = 1) -> str:
    """A share as a percentage: ``0.031`` -> ``'3.1%'``.

    Examples
    --------
    >>> pct(0.031), pct(0.5, 0)
    ('3.1%', '50%')
    """
    share = float(share)
    return f"{share:,.{digits}%}" if np.isfinite(share) else "-"


def words(code: str) -> str:
    """A code name in words: ``'email_reminder'`` -> ``'Email reminder'``.

    Examples
    --------
    >>> words("about_to_sleep"), words("cant_lose_them")
    ('About to sleep', "Can't lose them")
    """
    text = str(code)
    return _SPECIAL.get(text, text.replace("_", " ").capitalize())


def value_at_risk(scored: pd.DataFrame) -> pd.Series:
    """Per customer: P(churn) x predicted value (negative values count as 0)."""
    return scored["churn_probability"] * scored["predicted_value"].clip(lower=0)


def plain(scored: pd.DataFrame) -> pd.DataFrame:
    """``scored`` without its ``attrs``: pandas deep-copies attrs on every operation."""
    if not scored.attrs:
        return scored
    attrs, scored.attrs = scored.attrs, {}
    try:
        return scored.copy(deep=False)
    finally:
        scored.attrs = attrs


def _fig(w: float = 6.4, h: float = 4.2) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _money_axis(axis: object) -> None:
    from matplotlib.ticker import FuncFormatter

    def short(x: float, _pos: object = None) -> str:
        for size, unit in ((1e6, "M"), (1e3, "k")):
            if abs(x) >= size:
                return f"{x / size:,.{0 if abs(x) >= 10 * size else 1}f}{unit}"
        return f"{x:,.0f}"

    axis.set_major_formatter(FuncFormatter(short))  # type: ignore[attr-defined]


def tier_risk_table(scored: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customers and value at risk by value tier (rows) x risk band (columns)."""
    frame = scored.assign(_var=value_at_risk(scored))
    grid = {"index": "value_tier", "columns": "risk_band", "observed": False}
    var = frame.pivot_table(values="_var", aggfunc="sum", **grid)
    n = frame.pivot_table(values="customer_id", aggfunc="count", **grid)
    var = var.reindex(index=TIERS, columns=BANDS).fillna(0.0)
    n = n.reindex(index=TIERS, columns=BANDS).fillna(0).astype(int)
    return n, var


def _tier_risk(scored: pd.DataFrame) -> Figure:
    fig, ax = _fig(6.4, 4.6)
    n, var = tier_risk_table(scored)
    total = max(float(var.to_numpy().sum()), 1e-9)
    im = ax.imshow(var.to_numpy(), cmap="Reds", vmin=0)
    top = max(float(var.to_numpy().max()), 1e-9)
    for i in range(len(TIERS)):
        for j in range(len(BANDS)):
            v = float(var.iat[i, j])
            ax.text(
                j,
                i,
                f"{count(n.iat[i, j])} customers\n{money(v)} at risk\n({pct(v / total, 0)})",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if v > 0.55 * top else "black",
            )
    ax.set_xticks(range(3), [f"{words(b)} risk" for b in BANDS])
    ax.set_yticks(range(3), [f"{words(t)} value" for t in TIERS])
    ax.set_title("Where the value at risk is: value tier x churn risk")
    cbar = fig.colorbar(im, ax=ax, label="value at risk")
    _money_axis(cbar.ax.yaxis)
    return fig


def _actions(scored: pd.DataFrame) -> Figure:
    fig, ax = _fig(6.4, 3.6)
    sel = scored[scored["selected"]]
    g = sel.groupby("action").agg(
        customers=("customer_id", "size"),
        cost=("action_cost", "sum"),
        saved=("expected_saved_value", "sum"),
    )
    g = g.sort_values("saved")
    ax.set_title("Campaign actions: cost vs expected saved value")
    if g.empty:  # an empty chart would read as a broken one
        ax.text(
            0.5,
            0.5,
            "No customer is selected for an action",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return fig
    y = np.arange(len(g))
    ax.barh(y - 0.2, g["cost"], height=0.4, label="Cost", color="#9e9e9e")
    ax.barh(y + 0.2, g["saved"], height=0.4, label="Expected saved value", color="#2e7d32")
    ax.set_yticks(y, [f"{words(a)}\n({count(k)} customers)" for a, k in g["customers"].items()])
    _money_axis(ax.xaxis)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _clv(scored: pd.DataFrame) -> Figure:
    fig, ax = _fig(6.4, 3.6)
    v = scored["predicted_value"].to_numpy(float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v):
        lo, hi = max(float(v.min()), 1e-2), max(float(v.max()), 1.0)
        bins = list(np.geomspace(lo, hi * 1.0001, 40)) if hi > lo else 10
        ax.hist(v, bins=bins, color="#1565c0")
        ax.set_xscale("log")
        med = float(np.median(v))
        ax.axvline(med, color="black", linestyle="--", linewidth=1)
        ax.text(med, ax.get_ylim()[1] * 0.95, f" median {money(med)}", va="top", fontsize=8)
    _money_axis(ax.xaxis)
    ax.set_xlabel("predicted value per customer (log scale)")
    ax.set_ylabel("customers")
    ax.set_title("Predicted customer value")
    return fig


def _lifecycle(scored: pd.DataFrame) -> Figure:
    fig, ax = _fig(6.4, 3.6)
    tab = (
        pd.crosstab(scored["lifecycle_stage"], scored["value_tier"])
        .reindex(index=_STAGES, columns=TIERS)
        .fillna(0)
    )
    left = np.zeros(len(tab))
    for tier, colour in zip(TIERS, ("#1565c0", "#64b5f6", "#cfd8dc"), strict=True):
        names = [words(s) for s in tab.index]
        ax.barh(names, tab[tier], left=left, label=f"{words(tier)} value", color=colour)
        left += tab[tier].to_numpy()
    ax.invert_yaxis()
    ax.set_xlabel("customers")
    ax.set_title("Lifecycle stage by value tier")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _segments(scored: pd.DataFrame) -> Figure:
    fig, ax = _fig(6.4, 4.2)
    g = scored.groupby("rfm_segment").agg(
        customers=("customer_id", "size"), value=("predicted_value", "sum")
    )
    g = g.sort_values("value")
    ax.barh([words(s) for s in g.index], g["value"], color="#1565c0")
    for i, (v, k) in enumerate(zip(g["value"], g["customers"], strict=True)):
        ax.text(v, i, f" {count(k)}", va="center", fontsize=8)
    ax.margins(x=0.12)
    _money_axis(ax.xaxis)
    ax.set_xlabel("predicted value")
    ax.set_title("Predicted value by RFM segment")
    return fig


def _churn_hist(scored: pd.DataFrame) -> Figure:
    from matplotlib.ticker import PercentFormatter

    fig, ax = _fig(6.4, 3.6)
    ax.hist(scored["churn_probability"], bins=40, range=(0, 1), color="#c62828")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("churn probability")
    ax.set_ylabel("customers")
    ax.set_title("Churn probability across customers")
    return fig


def decision_figures(scored: pd.DataFrame) -> dict[str, Figure]:
    """The report's own figures, keyed by file name (see :data:`CAPTIONS`)."""
    scored = plain(scored)
    return {
        "tier_risk_matrix.png": _tier_risk(scored),
        "action_mix.png": _actions(scored),
        "clv_distribution.png": _clv(scored),
        "rfm_segments.png": _segments(scored),
        "lifecycle_mix.png": _lifecycle(scored),
        "churn_distribution.png": _churn_hist(scored),
    }
