"""Evaluation plots logged with every run: ROC, calibration, gains, value deciles, importance,
and the model-against-baselines comparison chart."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "calibration_plot",
    "comparison_plot",
    "gains_plot",
    "importance_plot",
    "roc_plot",
    "value_deciles_plot",
]

#: How each scorer is drawn in the curve plots: the model on top in a strong solid line,
#: baselines underneath, dashed or dotted with markers, so overlapping curves stay visible.
_STYLES = {
    "model": {"color": "#1f5fbf", "linestyle": "-", "linewidth": 2.4, "zorder": 4},
    "BG/NBD": {"color": "#e07b00", "linestyle": "--", "linewidth": 1.6, "marker": "s", "zorder": 3},
    "RFM recency": {"color": "#3a9a3a", "linestyle": "-.", "linewidth": 1.4, "marker": "^",
                    "zorder": 2},
}  # fmt: skip
_STYLES["MBG/NBD"] = _STYLES["BG/NBD"]  # the purchase model chosen for the BTYD columns
_BASELINE_COLORS = ("#e07b00", "#3a9a3a", "#8c564b", "#7f7f7f")
#: Bar colours of the comparison chart: one colour per scorer in every panel.
_BAR_COLORS = {"model": "#1f5fbf", "BG/NBD": "#e07b00", "RFM": "#3a9a3a"}


def _figure(title: str) -> tuple[Figure, object]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.2), dpi=100)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig, ax


def roc_plot(y: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    """ROC curves of several churn scores on the same rows."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _figure("Churn ROC (out of time)")
    for i, name in enumerate(sorted(scores, key=lambda k: k == "model")):  # the model on top
        s = scores[name]
        fpr, tpr, _ = roc_curve(y, s)
        style = {k: v for k, v in _style(name, i).items() if k != "marker"}
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, s):.3f})", **style)  # type: ignore[attr-defined]
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")  # type: ignore[attr-defined]
    ax.set_xlabel("false positive rate")  # type: ignore[attr-defined]
    ax.set_ylabel("true positive rate")  # type: ignore[attr-defined]
    ax.legend(loc="lower right", fontsize=8)  # type: ignore[attr-defined]
    return fig


def calibration_plot(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> Figure:
    """Observed churn rate against mean predicted probability per decile of prediction."""
    fig, ax = _figure("Churn calibration (out of time)")
    df = pd.DataFrame({"y": y, "p": p})
    df["bin"] = pd.qcut(df["p"].rank(method="first"), n_bins, labels=False)
    g = df.groupby("bin").agg(p=("p", "mean"), y=("y", "mean"))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")  # type: ignore[attr-defined]
    ax.plot(g["p"], g["y"], marker="o")  # type: ignore[attr-defined]
    ax.set_xlabel("mean predicted P(churn)")  # type: ignore[attr-defined]
    ax.set_ylabel("observed churn rate")  # type: ignore[attr-defined]
    return fig


def _style(name: str, i: int) -> dict[str, object]:
    """Line style of scorer ``name`` (the ``i``-th drawn): :data:`_STYLES`, or a baseline's."""
    fallback = {
        "color": _BASELINE_COLORS[i % len(_BASELINE_COLORS)],
        "linestyle": "--",
        "linewidth": 1.4,
        "marker": "o",
        "zorder": 2,
    }
    return dict(_STYLES.get(name, fallback))


def gains_plot(y: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    """Cumulative share of churners captured when targeting the highest scores first.

    The model is drawn last and on top in a thick solid line; baselines are
    dashed or dash-dotted with markers every tenth of customers, so a baseline
    that runs on the model's line cannot hide it. The legend lists the model
    first, with each scorer's share captured in the riskiest tenth.

    Examples
    --------
    >>> import numpy as np
    >>> from churnclv.training._plots import gains_plot
    >>> y = np.array([1, 0, 1, 0, 1, 1, 0, 0, 1, 0])
    >>> s = np.linspace(1, 0, 10)
    >>> fig = gains_plot(y, {"model": s, "BG/NBD": s, "RFM recency": s[::-1]})
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()][:2]
    ['model (top 10%: 20%)', 'BG/NBD (top 10%: 20%)']
    """
    fig, ax = _figure("Churn gains (out of time)")
    y = np.asarray(y, dtype=float)
    n = len(y)
    x = np.r_[0.0, np.arange(1, n + 1) / n]
    top = max(1, int(np.ceil(0.1 * n)))
    every = max(1, n // 10)
    names = sorted(scores, key=lambda k: k == "model")  # baselines first, the model on top
    for i, name in enumerate(names):
        order = np.argsort(-np.asarray(scores[name], dtype=float), kind="stable")
        captured = np.r_[0.0, np.cumsum(y[order]) / max(y.sum(), 1)]
        label = f"{name} (top 10%: {captured[top]:.0%})"
        ax.plot(x, captured, label=label, markevery=every, markersize=4, **_style(name, i))  # type: ignore[attr-defined]
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random", zorder=1)  # type: ignore[attr-defined]
    ax.set_xlabel("share of customers targeted, riskiest first")  # type: ignore[attr-defined]
    ax.set_ylabel("share of churners captured")  # type: ignore[attr-defined]
    handles, labels = ax.get_legend_handles_labels()  # type: ignore[attr-defined]
    first = sorted(range(len(labels)), key=lambda j: not labels[j].startswith("model"))
    ax.legend(  # type: ignore[attr-defined]
        [handles[j] for j in first], [labels[j] for j in first], loc="lower right", fontsize=8
    )
    return fig


def value_deciles_plot(actual: np.ndarray, pred: np.ndarray) -> Figure:
    """Predicted against actual future value per decile of predicted value."""
    fig, ax = _figure("Value by predicted decile (out of time)")
    order = np.argsort(-pred, kind="stable")
    chunks = np.array_split(order, 10)
    idx = np.arange(1, 11)
    ax.bar(idx - 0.2, [pred[c].sum() for c in chunks], width=0.4, label="predicted")  # type: ignore[attr-defined]
    ax.bar(idx + 0.2, [actual[c].sum() for c in chunks], width=0.4, label="actual")  # type: ignore[attr-defined]
    ax.set_xlabel("decile of predicted value (1 = highest)")  # type: ignore[attr-defined]
    ax.set_ylabel("total value")  # type: ignore[attr-defined]
    ax.legend(fontsize=8)  # type: ignore[attr-defined]
    return fig


def importance_plot(importance: pd.Series, title: str, top: int = 15) -> Figure:
    """Horizontal bars of the top features by total gain."""
    fig, ax = _figure(title)
    imp = importance.head(top)[::-1]
    ax.barh(imp.index, imp.to_numpy())  # type: ignore[attr-defined]
    ax.tick_params(axis="y", labelsize=7)  # type: ignore[attr-defined]
    fig.tight_layout()
    return fig


def comparison_plot(rows: list[tuple[str, str, dict[str, float]]]) -> Figure:
    """One small panel per metric: the model's bar beside the baselines' bars.

    ``rows`` holds ``(metric label, which is better, {scorer: value})`` with
    ``better`` in words (e.g. "higher is better"); a scorer without a value is
    left out of its panel. The model's bar is blue and outlined.

    Examples
    --------
    >>> from churnclv.training._plots import comparison_plot
    >>> fig = comparison_plot([("ROC AUC", "higher is better", {"model": 0.9, "RFM": 0.8})])
    >>> fig.axes[0].get_title().splitlines()
    ['ROC AUC', 'higher is better']
    """
    from matplotlib.figure import Figure

    cols = 4
    nrows = max(1, -(-len(rows) // cols))
    fig = Figure(figsize=(3.3 * cols, 2.4 * nrows + 0.6), dpi=100)
    fig.suptitle("Model against the RFM and BG/NBD baselines (out of time)")
    for k, (label, better, values) in enumerate(rows):
        ax = fig.add_subplot(nrows, cols, k + 1)
        names = list(values)
        colors = [_BAR_COLORS.get(nm, _BASELINE_COLORS[-1]) for nm in names]
        bars = ax.bar(names, [values[nm] for nm in names], color=colors)
        for bar, nm in zip(bars, names, strict=True):
            if nm == "model":
                bar.set_edgecolor("black")
                bar.set_linewidth(1.2)
        ax.bar_label(bars, labels=[f"{values[nm]:.3g}" for nm in names], fontsize=7)
        ax.set_title(f"{label}\n{better}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.margins(y=0.2)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
