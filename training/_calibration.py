"""Probability calibration of a churn booster on an out-of-time fold.

Isotonic regression and Platt scaling are each cross-fitted on two halves of
the fold (split by customer) and scored by Brier score; the better one, or
none when neither beats the raw output, is refitted on the whole fold. A
calibrator is a plain dict (JSON-able), stored in the model's ``schema.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["apply_calibrator", "choose_calibrator", "fit_calibrator"]

CALIBRATION_METHODS = ("isotonic", "platt")


def choose_calibrator(
    raw: np.ndarray, y: np.ndarray, customer_ids: pd.Series
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The better calibrator of ``raw`` probabilities for labels ``y`` (None: keep raw).

    The rows are split in two by a hash of ``customer_ids``; each method is
    fitted on one half and scored (Brier) on the other, both ways. Returns the
    winner refitted on all rows, and a record of the method and every
    cross-fitted Brier score (``brier_none`` is the raw output's).
    """
    y = np.asarray(y, dtype=float)
    half = (pd.util.hash_pandas_object(customer_ids.astype(str), index=False).to_numpy() % 2) == 0
    scores: dict[str, float] = {}
    for method in CALIBRATION_METHODS:
        errs = []
        for a, b in ((half, ~half), (~half, half)):
            if len(np.unique(y[a])) < 2 or not b.any():
                continue
            cal = fit_calibrator(method, raw[a], y[a])
            errs.append(float(np.mean((apply_calibrator(cal, raw[b]) - y[b]) ** 2)))
        scores[method] = float(np.mean(errs)) if errs else float("inf")
    scores["none"] = float(np.mean((raw - y) ** 2))
    best = min(scores, key=lambda k: scores[k])
    calibrator = None if best == "none" else fit_calibrator(best, raw, y)
    return calibrator, {"method": best, **{f"brier_{k}": v for k, v in scores.items()}}


def fit_calibrator(method: str, raw: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Fit an ``isotonic`` or ``platt`` calibrator of ``raw`` probabilities to ``y``."""
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
        return {
            "method": "isotonic",
            "x": iso.X_thresholds_.tolist(),
            "y": iso.y_thresholds_.tolist(),
        }
    from sklearn.linear_model import LogisticRegression

    z = _logit(raw).reshape(-1, 1)
    lr = LogisticRegression(C=1e6).fit(z, y.astype(int))
    return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def apply_calibrator(cal: dict[str, Any], raw: np.ndarray) -> np.ndarray:
    """Calibrated probabilities of ``raw`` ones."""
    if cal["method"] == "isotonic":
        return np.interp(raw, cal["x"], cal["y"])
    return 1.0 / (1.0 + np.exp(-(cal["a"] * _logit(raw) + cal["b"])))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))
