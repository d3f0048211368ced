"""Evaluation metrics of DESIGN §5, computed by us (not ``mlflow.evaluate``).

Top-decile lift of the churn class is capped at 1 / base rate: with 77% churners
every reasonable model scores about 1.29 and the metric cannot tell models apart.
The churn metrics therefore also read the other end of the ranking and money:
``retained_top_decile_lift`` (lift of the retained class among the 10% lowest
risks, capped at 1 / retained rate), ``retained_pr_auc`` (average precision of
ranking the retained customers first) and ``value_captured_top_decile`` (share of
the churners' value among the 10% highest risks), which keep their spread at any
base rate.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

__all__ = [
    "churn_metrics",
    "decile_ratios",
    "expected_calibration_error",
    "normalized_gini",
    "top_decile_lift",
    "value_captured_top_decile",
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


def value_captured_top_decile(y: np.ndarray, score: np.ndarray, value: np.ndarray) -> float:
    """Share of the churners' value held by the 10% highest scores.

    ``value`` is what each customer is worth (e.g. net spend to date, clipped at
    0); the result is the churners' value among the top-scored tenth over the
    churners' value overall: 0.10 for a random ranking, higher when the riskiest
    tenth holds the valuable churners. NaN when churners are worth nothing.

    Examples
    --------
    >>> import numpy as np
    >>> from churnclv.training._metrics import value_captured_top_decile
    >>> y = np.array([1] * 8 + [0] * 12)
    >>> value = np.array([100.0, 1, 1, 1, 1, 1, 1, 1] + [50.0] * 12)
    >>> round(value_captured_top_decile(y, np.arange(20.0)[::-1], value), 3)  # rows 0, 1
    0.944
    """
    y = np.asarray(y, dtype=float)
    worth = y * np.clip(np.nan_to_num(np.asarray(value, dtype=float)), 0, None)
    total = worth.sum()
    if total <= 0:
        return float("nan")
    n = max(1, int(np.ceil(0.1 * len(y))))
    top = np.argsort(-np.asarray(score, dtype=float), kind="stable")[:n]
    return float(worth[top].sum() / total)


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


def churn_metrics(
    y: np.ndarray,
    p: np.ndarray,
    prefix: str = "churn_",
    value: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of churn probabilities ``p`` against labels ``y`` (1 = churned).

    ROC AUC, PR AUC, Brier, log loss, ECE, top-decile lift and the base rate,
    plus the measures that work at any base rate (module docstring):
    ``retained_top_decile_lift``, ``retained_pr_auc`` and, with ``value`` (each
    customer's worth), ``value_captured_top_decile``. The ranking metrics read
    ``p`` as given, so any risk score works (the RFM baseline's recency ratio);
    Brier, log loss and ECE read it clipped to (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from churnclv.training._metrics import churn_metrics
    >>> y = np.array([1] * 16 + [0] * 4)  # 80% churn
    >>> p = np.r_[np.linspace(0.9, 0.5, 16), 0.1, 0.2, 0.3, 0.95]
    >>> m = churn_metrics(y, p)
    >>> round(m["churn_top_decile_lift"], 2), round(m["churn_retained_top_decile_lift"], 2)
    (0.62, 5.0)
    """
    y = np.asarray(y, dtype=int)
    s = np.asarray(p, dtype=float)  # ranking metrics read the score as it is (RFM: a ratio)
    p = np.clip(s, 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    nan = float("nan")
    out = {
        f"{prefix}roc_auc": float(roc_auc_score(y, s)) if both else nan,
        f"{prefix}pr_auc": float(average_precision_score(y, s)) if both else nan,
        f"{prefix}retained_pr_auc": float(average_precision_score(1 - y, -s)) if both else nan,
        f"{prefix}brier": float(brier_score_loss(y, p)),
        f"{prefix}log_loss": float(log_loss(y, p, labels=[0, 1])),
        f"{prefix}ece": expected_calibration_error(y, p),
        f"{prefix}top_decile_lift": top_decile_lift(y, s),
        f"{prefix}retained_top_decile_lift": top_decile_lift(1 - y, -s),
        f"{prefix}base_rate": float(y.mean()),
    }
    if value is not None:
        out[f"{prefix}value_captured_top_decile"] = value_captured_top_decile(y, s, value)
    return out


def decile_ratios(actual: np.ndarray, predicted: np.ndarray) -> list[float]:
    """Predicted over actual total in each decile of ``predicted`` (first: the highest).

    NaN for a decile whose actual total is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.arange(20.0)
    >>> [round(r, 2) for r in decile_ratios(p * 2, p)]
    [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    """
    a = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    order = np.argsort(-p, kind="stable")
    out = []
    for chunk in np.array_split(order, 10):
        total = a[chunk].sum()
        out.append(float(p[chunk].sum() / total) if len(chunk) and total > 0 else float("nan"))
    return out


def _varies(x: np.ndarray) -> bool:
    """Whether ``x`` holds two different values (False with a NaN: its rank is undefined).

    Compares the values themselves: ``np.std`` of a constant array can be a rounding
    error above 0 (``np.std([0.1] * 3) > 0``).
    """
    return x.size > 1 and bool(np.ptp(x) > 0)


def value_metrics(actual: np.ndarray, pred: np.ndarray, prefix: str = "value_") -> dict[str, float]:
    """Normalized Gini, Spearman, decile MAPE, RMSE and total predicted / total actual.

    A metric that is undefined on these rows is NaN, without a warning: Spearman
    when ``actual`` or ``pred`` is constant (or holds a NaN), the Gini when the
    actual values sum to 0, the decile MAPE and the total ratio when no actual
    total is positive (non-zero).

    Examples
    --------
    >>> import numpy as np
    >>> from churnclv.training._metrics import value_metrics
    >>> m = value_metrics(np.array([0.0, 5.0, 10.0]), np.full(3, 0.1))  # constant predictions
    >>> m["value_spearman"], round(m["value_total_ratio"], 2)
    (nan, 0.02)
    """
    actual = np.asarray(actual, dtype=float)
    pred = np.asarray(pred, dtype=float)
    ratios = np.array(decile_ratios(actual, pred))
    apes = np.abs(ratios[np.isfinite(ratios)] - 1.0)  # |predicted - actual| / actual per decile
    varies = _varies(pred) and _varies(actual)
    rho = spearmanr(actual, pred).statistic if varies else float("nan")
    tot = actual.sum()
    return {
        f"{prefix}gini": normalized_gini(actual, pred),
        f"{prefix}spearman": float(rho),
        f"{prefix}decile_mape": float(np.mean(apes)) if apes.size else float("nan"),
        f"{prefix}rmse": float(np.sqrt(np.mean((actual - pred) ** 2))),
        f"{prefix}total_ratio": float(pred.sum() / tot) if tot != 0 else float("nan"),
    }
