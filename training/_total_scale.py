"""Calibrate the total of a value model's predictions, learned out of time.

A value booster is balanced on its own training rows (``level_``), but spend
drifts: per-customer spend grows or shrinks between the windows a model learns
from and the window it predicts. The drift a model will meet when it scores
``as_of`` is estimated by the drift the evaluated model met on its out-of-time
validation window, which lies the same distance (one value horizon) beyond its
training labels: the ratio ``r = sum(actual) / sum(predicted)`` there.

One window is thin evidence, so the ratio is shrunk toward 1 on the log scale
with the weight of a normal prior: ``log scale = w log r`` with
``w = tau^2 / (tau^2 + se^2 + drift^2)``, ``se`` the delta-method standard
error of ``log r`` over the window's customers
(``se(r) = sqrt(sum (a_i - r p_i)^2) / sum p_i``, ``se(log r) = se(r) / r``),
``drift`` how much the spend level moves from one window to the next one a
horizon later (:func:`window_drift`: the root mean square of the log change of
the mean label per customer between labelled cutoffs one horizon apart; a
ratio measured where the level swings tells little about the next window), and
``tau`` (:data:`PRIOR_SD`) the spread of a persistent log-ratio. The scale
travels with the value model (``total_scale_``) and multiplies every
prediction at scoring time, so ``churnclv score`` and ``/predict`` apply it
alike; rankings are unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from churnclv.training._metrics import decile_ratios

__all__ = ["PRIOR_SD", "decile_ratios", "total_scale", "window_drift"]

#: Prior standard deviation of the log of actual over predicted total between windows.
PRIOR_SD = 0.25


def total_scale(
    actual: np.ndarray, predicted: np.ndarray, drift: float = 0.0, prior_sd: float = PRIOR_SD
) -> dict[str, float]:
    """The calibration of a total learned on one window: ratio, its se, weight and scale.

    Returns ``ratio`` (actual over predicted total), ``se`` (of its log),
    ``weight`` (given to the window's evidence, less the more the level
    ``drift``s between windows) and ``scale`` (the multiplier:
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

    and less where the spend level swings by 30% from window to window:

    >>> round(total_scale(np.tile(a, 100), np.tile(p, 100), drift=0.3)["scale"], 4)
    1.18
    """
    a = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    total_a, total_p = float(a.sum()), float(p.sum())
    if total_a <= 0 or total_p <= 0 or len(a) < 2:
        return {"ratio": float("nan"), "se": float("nan"), "weight": 0.0, "scale": 1.0,
                "rows": float(len(a))}  # fmt: skip
    ratio = total_a / total_p
    se = math.sqrt(float(np.sum((a - ratio * p) ** 2))) / total_p / ratio
    weight = prior_sd**2 / (prior_sd**2 + se**2 + drift**2)
    return {
        "ratio": ratio,
        "se": se,
        "weight": weight,
        "scale": math.exp(weight * math.log(ratio)),
        "rows": float(len(a)),
    }


def window_drift(frame: pd.DataFrame, horizon: float, label: str = "future_value") -> float:
    """Root mean square log change of the mean ``label`` per customer between cutoffs of
    ``frame`` one ``horizon`` apart (each cutoff paired with the first at least
    ``horizon`` days later). NaN when no pair exists or a level is not positive.

    Examples
    --------
    Levels 2.0, 1.6 and 1.0 at cutoffs 90 days apart: log changes -0.2231 and
    -0.4700, root mean square 0.3679.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({
    ...     "as_of": pd.to_datetime(["2024-01-01"] * 2 + ["2024-03-31"] * 2 + ["2024-06-29"] * 2),
    ...     "future_value": [3.0, 1.0, 2.0, 1.2, 0.5, 1.5],
    ... })
    >>> round(window_drift(frame, 90), 4)
    0.3679
    """
    levels = frame.groupby("as_of")[label].mean().sort_index()
    cuts = list(levels.index)
    changes = []
    for i, c in enumerate(cuts):
        later = [d for d in cuts[i + 1 :] if (d - c).days >= horizon]
        if later:
            a, b = float(levels[c]), float(levels[later[0]])
            if a <= 0 or b <= 0:
                return float("nan")
            changes.append(math.log(b / a))
    return float(np.sqrt(np.mean(np.square(changes)))) if changes else float("nan")
