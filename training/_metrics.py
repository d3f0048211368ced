"""Evaluation metrics of DESIGN §5, computed by us (not ``mlflow.evaluate``)."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

__all__ = [
    "churn_metrics",
    "expected_calibration_error",
    "normalized_gini",
    "top_decile_lift",
    "value_metrics",
]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Weighted mean |observed rate - mean prediction| over equal-width probability bins."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.sum() * abs(y[m].mean() - p[m].mean())
    return float(total / len(y))


def top_decile_lift(y: np.ndarray, score: np.ndarray) -> float:
    """Positive rate among the 10% highest scores over the overall positive rate."""
    y = np.asarray(y, dtype=float)
    n = max(1, int(np.ceil(0.1 * len(y))))
    top = np.argsort(-np.asarray(score, dtype=float), kind="stable")[:n]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def _gini(actual: np.ndarray, pred: np.ndarray) -> float:
    order = np.lexsort((np.arange(len(pred)), -pred))
    a = actual[order]
    total = a.sum()
    if total == 0:
        return 0.0
    cum = np.cumsum(a) / total
    n = len(a)
    return float(cum.sum() / n - (n + 1) / (2 * n))


def normalized_gini(actual: np.ndarray, pred: np.ndarray) -> float:
    """Gain-curve Gini of ``pred`` over the Gini of the perfect ranking (1 = perfect)."""
    actual = np.asarray(actual, dtype=float)
    pred = np.asarray(pred, dtype=float)
    perfect = _gini(actual, actual)
    return _gini(actual, pred) / perfect if perfect != 0 else float("nan")


def churn_metrics(y: np.ndarray, p: np.ndarray, prefix: str = "churn_") -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, log loss, ECE and top-decile lift of churn probabilities."""
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    return {
        f"{prefix}roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        f"{prefix}pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        f"{prefix}brier": float(brier_score_loss(y, p)),
        f"{prefix}log_loss": float(log_loss(y, p, labels=[0, 1])),
        f"{prefix}ece": expected_calibration_error(y, p),
        f"{prefix}top_decile_lift": top_decile_lift(y, p),
        f"{prefix}base_rate": float(y.mean()),
    }


def value_metrics(actual: np.ndarray, pred: np.ndarray, prefix: str = "value_") -> dict[str, float]:
    """Normalized Gini, Spearman, decile MAPE, RMSE and total predicted / total actual."""
    actual = np.asarray(actual, dtype=float)
    pred = np.asarray(pred, dtype=float)
    order = np.argsort(-pred, kind="stable")
    apes = []
    for chunk in np.array_split(order, 10):
        a = actual[chunk].sum()
        if len(chunk) and a > 0:
            apes.append(abs(pred[chunk].sum() - a) / a)
    varies = np.std(pred) > 0 and np.std(actual) > 0
    rho = spearmanr(actual, pred).statistic if varies else float("nan")
    tot = actual.sum()
    return {
        f"{prefix}gini": normalized_gini(actual, pred),
        f"{prefix}spearman": float(rho),
        f"{prefix}decile_mape": float(np.mean(apes)) if apes else float("nan"),
        f"{prefix}rmse": float(np.sqrt(np.mean((actual - pred) ** 2))),
        f"{prefix}total_ratio": float(pred.sum() / tot) if tot != 0 else float("nan"),
    }
