"""Calibrate the total of a value model's predictions, learned out of time.

A value booster is balanced on its own training rows (``level_``), but spend
drifts: per-customer spend grows or shrinks between the windows a model learns
from and the window it predicts. The drift a model will meet when it scores
``as_of`` is estimated by the drift the evaluated model met on its out-of-time
validation window, which lies the same distance (one value horizon) beyond its
training labels: the ratio ``r = sum(actual) / sum(predicted)`` there.

One window is thin evidence, so the ratio is shrunk toward 1 on the log scale
with the weight of a normal prior: ``log scale = w log r`` with
``w = tau^2 / (tau^2 + se^2)``, ``se`` the delta-method standard error of
``log r`` over the window's customers
(``se(r) = sqrt(sum (a_i - r p_i)^2) / sum p_i``, ``se(log r) = se(r) / r``)
and ``tau`` (:data:`PRIOR_SD`) the spread of the log-ratio expected between
windows. The scale travels with the value model (``total_scale_``) and
multiplies every prediction at scoring time, so ``churnclv score`` and
``/predict`` apply it alike; rankings are unchanged.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["PRIOR_SD", "decile_ratios", "total_scale"]

#: Prior standard deviation of the log of actual over predicted total between windows.
PRIOR_SD = 0.25


def total_scale(
    actual: np.ndarray, predicted: np.ndarray, prior_sd: float = PRIOR_SD
) -> dict[str, float]:
    """The calibration of a total learned on one window: ratio, its se, weight and scale.

    Returns ``ratio`` (actual over predicted total), ``se`` (of its log),
    ``weight`` (given to the window's evidence) and ``scale`` (the multiplier:
    ``ratio ** weight``), plus ``rows``. With no positive total either side the
    scale is 1 and the weight 0.

    Examples
    --------
    Four customers whose spend came in 50% above prediction:

    >>> import numpy as np
    >>> a, p = np.array([30.0, 0.0, 60.0, 60.0]), np.array([20.0, 20.0, 30.0, 30.0])
    >>> {k: round(v, 4) for k, v in total_scale(a, p).items()}
    {'ratio': 1.5, 'se': 0.2449, 'weight': 0.5102, 'scale': 1.2298, 'rows': 4.0}

    The same ratio over 100 times as many customers carries more weight:

    >>> s = total_scale(np.tile(a, 100), np.tile(p, 100))
    >>> round(s["se"], 4), round(s["weight"], 4), round(s["scale"], 4)
    (0.0245, 0.9905, 1.4942)
    """
    a = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    total_a, total_p = float(a.sum()), float(p.sum())
    if total_a <= 0 or total_p <= 0 or len(a) < 2:
        return {"ratio": float("nan"), "se": float("nan"), "weight": 0.0, "scale": 1.0,
                "rows": float(len(a))}  # fmt: skip
    ratio = total_a / total_p
    se = math.sqrt(float(np.sum((a - ratio * p) ** 2))) / total_p / ratio
    weight = prior_sd**2 / (prior_sd**2 + se**2)
    return {
        "ratio": ratio,
        "se": se,
        "weight": weight,
        "scale": math.exp(weight * math.log(ratio)),
        "rows": float(len(a)),
    }


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
