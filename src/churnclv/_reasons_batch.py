"""Reasons of many rows at once: the top contributions and their texts without per-row Python.

:class:`churnclv._reasons.ReasonTable` writes the texts of one (rank, feature)
group of rows at a time. The functions here make that cheap on a million rows:

- :func:`top_k` picks each row's ``k`` largest contributions by magnitude (ties
  by column order, like a stable sort) with ``k`` passes of ``argmax`` instead of
  sorting every row;
- :func:`top_contributions` does it chunk by chunk over a model's input
  matrix, so the full contribution matrix never exists;
- :func:`group_texts` formats each *distinct* value of a group once and maps
  the texts back to the rows (values are keyed by their bits, so ``-0.0`` and
  ``0.0`` stay apart, as their texts do). The texts equal those of
  :func:`churnclv._reasons.reason_text` row by row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CHUNK_ROWS",
    "float_column",
    "group_texts",
    "numpy_numbers",
    "top_contributions",
    "top_k",
]

#: Rows whose contributions are computed and reduced to their top ``k`` together.
CHUNK_ROWS = 65_536


def top_k(contrib: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of each row's ``k`` largest ``|contributions|`` and those values.

    Equal to ``np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]``: ties go
    to the lower column, NaNs come last.

    Examples
    --------
    >>> import numpy as np
    >>> from churnclv._reasons_batch import top_k
    >>> top, picked = top_k(np.array([[0.1, -0.5, 0.5, 0.0]]), 2)
    >>> top.tolist(), picked.tolist()
    ([[1, 2]], [[-0.5, 0.5]])
    """
    n, m = contrib.shape
    k = min(k, m)
    mag = np.abs(contrib)
    mag[np.isnan(mag)] = -1.0  # after every number, in column order
    top = np.empty((n, k), dtype=np.intp)
    rows = np.arange(n)
    for r in range(k):
        top[:, r] = np.argmax(mag, axis=1) if n else 0
        mag[rows, top[:, r]] = -np.inf
    return top, np.take_along_axis(contrib, top, axis=1)


def top_contributions(
    contributions: Callable[[np.ndarray], np.ndarray], x: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` of ``contributions(x)``, computed :data:`CHUNK_ROWS` rows at a time.

    ``contributions`` maps rows of ``x`` to their per-feature contributions (each
    row independently, e.g. ``BoosterModel.contribution_matrix``).
    """
    parts = [
        top_k(np.asarray(contributions(x[s : s + CHUNK_ROWS]), dtype=float), k)
        for s in range(0, len(x), CHUNK_ROWS)
    ]
    if not parts:
        return top_k(np.asarray(contributions(x), dtype=float), k)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def float_column(features: pd.DataFrame | Mapping[str, Any], name: str, n: int) -> np.ndarray:
    """A numeric feature as floats, NaN where missing or not a number (all NaN if absent)."""
    if name not in features:
        return np.full(n, np.nan)
    values = features[name]
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if arr.dtype.kind in "iuf":
        return arr.astype(float)
    x = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce")
    return x.to_numpy(dtype=float, na_value=np.nan)


def numpy_numbers(features: pd.DataFrame | Mapping[str, Any], name: str) -> np.ndarray | None:
    """A column as floats when it has a numpy integer or float dtype, else None."""
    if name not in features:
        return None
    values = features[name]
    dtype = getattr(values, "dtype", None)
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iuf":
        return None
    return np.asarray(values, dtype=float)


def _by_bits(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct floats of ``x`` (by bit pattern) and each element's index among them."""
    bits, inverse = np.unique(
        np.ascontiguousarray(x, dtype=float).view(np.int64), return_inverse=True
    )
    return bits.view(np.float64), inverse.reshape(-1)


def _mapped(x: np.ndarray, fn: Callable[[float], Any]) -> np.ndarray:
    """``fn`` of every element of the float array ``x``, called once per distinct value."""
    distinct, inverse = _by_bits(x)
    out = np.empty(len(distinct), dtype=object)
    out[:] = [fn(v) for v in distinct.tolist()]
    return out[inverse]


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def group_texts(
    feature: str,
    fn: Callable[..., str],
    value_of: Callable[[Any], Any],
    raw: Callable[[], np.ndarray],
    numeric: np.ndarray | None,
    context: Callable[[str], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Texts and values of one group of rows whose reason is ``feature``.

    Parameters
    ----------
    feature : str
        The feature.
    fn : callable
        Its text function (:func:`churnclv._reasons.text_fn`): ``fn(value, recency,
        gap, returns_count, returns_total)``.
    value_of : callable
        A raw value -> the reason's ``value`` field (for a numeric column: the
        float, None when not finite).
    raw : callable
        The group's raw values as an object array (built only when needed).
    numeric : ndarray or None
        The group's values as floats when the column has a numpy number dtype, else None.
    context : callable
        A context column's values over the group: ``recency_days`` and
        ``gap_mean_days`` as floats (NaN when missing or not finite),
        ``returns_count`` and ``returns_total`` as object arrays.

    Returns
    -------
    (ndarray, ndarray)
        Object arrays of the texts and the values.
    """
    reads = _reads(feature)
    if numeric is None or reads == "returns":
        return _generic(fn, value_of, raw(), context, reads)
    # a number's value is the float itself, None when not finite (as value_of gives)
    values = numeric.astype(object)
    values[~np.isfinite(numeric)] = None
    if reads == "value":
        finite = getattr(fn, "finite", None)
        if finite is not None:  # skips re-checking each (already float) value
            return _mapped(
                numeric,
                lambda v: finite(v) if math.isfinite(v) else fn(v, None, None, None, None),
            ), values
        return _mapped(numeric, lambda v: fn(v, None, None, None, None)), values
    # recency_days / overdue_ratio: words from the row's recency and usual gap
    rec, gap = context("recency_days"), context("gap_mean_days")
    texts = np.empty(len(rec), dtype=object)
    known = np.isfinite(rec)
    if (~known).any():
        texts[~known] = _mapped(numeric[~known], lambda v: fn(v, None, None, None, None))
    if known.any():
        from churnclv._reasons import _days

        words = _mapped(rec[known], lambda r: "no purchase for " + _days(r))
        g = gap[known]
        with_gap = np.isfinite(g) & (g > 0)
        if with_gap.any():
            ratio = rec[known][with_gap] / g[with_gap]
            words[with_gap] = words[with_gap] + _mapped(
                ratio, lambda q: f", {q:.1f}x the usual gap"
            )
        texts[known] = words
    return texts, values


def _reads(feature: str) -> str:
    """What a feature's text reads besides its value: ``"recency"``, ``"returns"`` or
    ``"value"`` (see :func:`churnclv._reasons.text_fn`)."""
    from churnclv._reasons_events import value_label

    if value_label(feature) is not None:
        return "value"
    if feature in ("recency_days", "overdue_ratio"):
        return "recency"
    if feature in ("returns_count", "returns_total"):
        return "returns"
    return "value"


def _generic(
    fn: Callable[..., str],
    value_of: Callable[[Any], Any],
    raw: np.ndarray,
    context: Callable[[str], np.ndarray],
    reads: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Texts of a column of any type, formatted once per distinct value (the missing
    values, which :func:`pandas.factorize` leaves out, once per type and spelling), or,
    for the returns features, row by row."""
    n = len(raw)
    texts = np.empty(n, dtype=object)
    values = np.empty(n, dtype=object)
    if reads == "value":
        codes, distinct = pd.factorize(raw)
        items = distinct.tolist() if hasattr(distinct, "tolist") else list(distinct)
        out_t = np.empty(len(items) + 1, dtype=object)
        out_v = np.empty(len(items) + 1, dtype=object)
        out_t[:-1] = [fn(v, None, None, None, None) for v in items]
        out_v[:-1] = [value_of(v) for v in items]
        texts[:] = out_t[codes]
        values[:] = out_v[codes]
        memo: dict[tuple[type, str], tuple[str, Any]] = {}
        for i in np.flatnonzero(codes < 0).tolist():
            v = raw[i]
            key = (type(v), repr(v))
            if key not in memo:
                memo[key] = (fn(v, None, None, None, None), value_of(v))
            texts[i], values[i] = memo[key]
        return texts, values
    rec, gap = context("recency_days"), context("gap_mean_days")
    rc, rt = context("returns_count"), context("returns_total")
    for i in range(n):
        v = raw[i]
        texts[i] = fn(v, _finite(rec[i]), _finite(gap[i]), rc[i], rt[i])
        values[i] = value_of(v)
    return texts, values
