"""Evaluation plots logged with every run: ROC, calibration, gains, value deciles, importance."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["calibration_plot", "gains_plot", "importance_plot", "roc_plot", "value_deciles_plot"]


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
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, s):.3f})")  # type: ignore[attr-defined]
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


def gains_plot(y: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    """Cumulative share of churners captured when targeting the highest scores first."""
    fig, ax = _figure("Churn gains (out of time)")
    n = len(y)
    x = np.arange(1, n + 1) / n
    for name, s in scores.items():
        order = np.argsort(-s, kind="stable")
        ax.plot(x, np.cumsum(y[order]) / max(y.sum(), 1), label=name)  # type: ignore[attr-defined]
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")  # type: ignore[attr-defined]
    ax.set_xlabel("share of customers targeted")  # type: ignore[attr-defined]
    ax.set_ylabel("share of churners captured")  # type: ignore[attr-defined]
    ax.legend(loc="lower right", fontsize=8)  # type: ignore[attr-defined]
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
