"""The RFM columns of an in-memory frame computed on arrays (one pass over the ids, no SQL).

:func:`churnclv.features.rfm_summary` runs here for a pandas frame in the
canonical dtypes (string or integer ids without missing values, ``ts`` as
``datetime64[us]``, ``amount`` as float64). The customer ids become integer
codes once (:func:`_encode`): rows sorted by id are coded by comparing each
id with the one before it (no hashing, and the ids come out sorted), other
rows by one hash (:func:`pandas.factorize`). Every aggregate is then a pass
over the codes: ``np.bincount`` for counts and sums, ``reduceat`` (rows grouped
by customer) or ``ufunc.at`` for the first and last purchase, and one sort of
``(customer, day)`` keys, skipped when they already come in order, for the
purchase days.

The values are those of :func:`~churnclv.features._sql.rfm_sql` (the tests
hold the two equal): epoch seconds are ``microseconds / 1e6``, so recency and
tenure are the same doubles, and a purchase day is the UTC calendar day;
only the order of the additions in ``monetary_total`` may differ. Anything
else (Parquet paths, other dtypes, missing ids, timestamps or amounts)
returns ``None`` and goes to the SQL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["rfm_frame"]

_DAY = 86400.0
_US_PER_DAY = 86_400_000_000
_NAT = np.iinfo(np.int64).min
#: Leading rows checked for order before the ids are compared row by row.
_PROBE = 4096


def _supported(tx: pd.DataFrame) -> bool:
    """Whether the frame's dtypes are the ones the array path reproduces exactly."""
    ids, ts, amount = tx["customer_id"].dtype, tx["ts"].dtype, tx["amount"].dtype
    return (
        len(tx) > 0
        and ts == np.dtype("datetime64[us]")
        and amount == np.dtype("float64")
        and (isinstance(ids, pd.StringDtype) or (isinstance(ids, np.dtype) and ids.kind == "i"))
    )


def _nondecreasing(values: np.ndarray) -> bool:
    return bool((values[1:] >= values[:-1]).all())


def _sorted_runs(ids: pd.Series) -> tuple[np.ndarray, Any] | None:
    """The first row of each run of equal ids and their ids, when ``ids`` is sorted; else None.

    Sorted is byte order for strings, DuckDB's ``ORDER BY`` order.
    """
    if isinstance(ids.dtype, pd.StringDtype):
        if ids.dtype.storage != "pyarrow":
            return None
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = pa.array(ids)  # the column's own Arrow array: no copy
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        head = arr.slice(0, _PROBE)
        if not pc.all(pc.less_equal(head.slice(0, len(head) - 1), head.slice(1))).as_py():
            return None
        n = len(arr)
        same = pc.equal(arr.slice(0, n - 1), arr.slice(1)).to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.r_[True, ~same])
        heads = arr.take(pa.array(starts))
        increasing = pc.all(pc.less(heads.slice(0, len(heads) - 1), heads.slice(1)))
        if len(heads) > 1 and not increasing.as_py():
            return None
        uniques: Any = pd.array(heads, dtype=ids.dtype)
    else:
        values = ids.to_numpy()
        if not _nondecreasing(values[:_PROBE]) or not _nondecreasing(values):
            return None
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        uniques = values[starts]
    return starts, uniques


def _run_codes(starts: np.ndarray, n_rows: int) -> np.ndarray:
    """The code of each row of sorted ids whose runs start at ``starts``."""
    return np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n_rows]))


def rfm_frame(tx: pd.DataFrame, cutoffs: pd.Series) -> pd.DataFrame | None:
    """The frame :func:`~churnclv.features._sql.rfm_sql` gives, or None outside the array path.

    ``cutoffs`` are sorted, distinct ``datetime64[us]`` values; the rows come
    ordered by ``as_of`` then ``customer_id``.
    """
    if not _supported(tx):
        return None
    amount = tx["amount"].to_numpy()
    if bool(np.isnan(amount).any()) or bool(tx["customer_id"].isna().any()):
        return None
    runs = _sorted_runs(tx["customer_id"])
    codes, uniques = pd.factorize(tx["customer_id"]) if runs is None else (None, runs[1])
    ts = tx["ts"].to_numpy().view("i8")
    valid = ts != _NAT if int(ts.min()) == _NAT else None
    bought = amount > 0
    parts = []
    for cutoff in cutoffs:
        cut = int(np.datetime64(cutoff, "us").view("i8"))
        before = ts < cut
        if valid is not None:
            before &= valid
        part = None if runs is None else _rfm_in_runs(runs, ts, amount, before, bought, cut)
        if part is None:
            if codes is None:
                codes = _run_codes(runs[0], len(ts))  # type: ignore[index]
            part = _rfm_at(codes, uniques, runs is not None, ts, amount, before, bought, cut)
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _rfm_in_runs(
    runs: tuple[np.ndarray, Any],
    ts: np.ndarray,
    amount: np.ndarray,
    before: np.ndarray,
    bought: np.ndarray,
    cut: int,
) -> pd.DataFrame | None:
    """The RFM rows of rows sorted by id and by time within an id, else None.

    Each customer is a run of rows starting at ``runs[0]``: its purchases are a
    slice of the purchase rows, the first and last purchase that slice's ends,
    and a purchase day is new where the day differs from the purchase before.
    """
    starts, uniques = runs
    rows = np.flatnonzero(before & bought)
    when = ts[rows]
    lo = np.searchsorted(rows, starts)  # each customer's first purchase row
    hi = np.r_[lo[1:], len(rows)]
    n_purchases = hi - lo
    keep = np.flatnonzero(n_purchases)
    if len(keep) == 0:
        return None
    first_row = np.zeros(len(rows), bool)
    first_row[lo[keep]] = True
    if not bool(((when[1:] >= when[:-1]) | first_row[1:]).all()):
        return None  # not in time order within a customer
    day = when // _US_PER_DAY
    new = first_row
    new[1:] |= day[1:] != day[:-1]
    n_days = np.add.reduceat(new, lo[keep], dtype=np.int64)
    total = np.add.reduceat(np.where(before, amount, 0.0), starts)
    return _frame(
        uniques.take(keep),
        cut,
        first=when[lo[keep]],
        last=when[hi[keep] - 1],
        n_days=n_days,
        n_purchases=n_purchases[keep],
        total=total[keep],
    )


def _rfm_at(
    codes: np.ndarray,
    uniques: Any,
    ordered: bool,
    ts: np.ndarray,
    amount: np.ndarray,
    before: np.ndarray,
    bought: np.ndarray,
    cut: int,
) -> pd.DataFrame:
    """The RFM rows of one cutoff ``cut`` (microseconds): rows ``before`` it count."""
    n = len(uniques)
    total = np.bincount(codes, weights=np.where(before, amount, 0.0), minlength=n)
    rows = np.flatnonzero(before & bought)
    code, when = codes[rows], ts[rows]
    n_purchases = np.bincount(code, minlength=n)
    first = np.zeros(n, np.int64)
    last = np.zeros(n, np.int64)
    n_days = np.zeros(n, np.int64)
    if len(code):
        day = when // _US_PER_DAY  # the UTC calendar day
        lo = int(day.min())
        span = int(day.max()) - lo + 1
        key = code * span + (day - lo)
        if _nondecreasing(key):  # rows grouped by customer, in time order
            grouped, key_code = True, code
        else:
            grouped, key = _nondecreasing(code), np.sort(key)
            key_code = key // span
        if grouped:
            starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
            first[code[starts]] = np.minimum.reduceat(when, starts)
            last[code[starts]] = np.maximum.reduceat(when, starts)
        else:
            first[:] = np.iinfo(np.int64).max
            np.minimum.at(first, code, when)
            np.maximum.at(last, code, when)
        new = np.empty(len(key), bool)
        new[0] = True
        np.not_equal(key[1:], key[:-1], out=new[1:])
        n_days = np.bincount(key_code[new], minlength=n)
    keep = np.flatnonzero(n_purchases)
    ids = uniques.take(keep)
    if not ordered:
        order = np.asarray(ids.argsort())
        keep, ids = keep[order], ids.take(order)
    return _frame(
        ids,
        cut,
        first=first[keep],
        last=last[keep],
        n_days=n_days[keep],
        n_purchases=n_purchases[keep],
        total=total[keep],
    )


def _frame(
    ids: Any,
    cut: int,
    *,
    first: np.ndarray,
    last: np.ndarray,
    n_days: np.ndarray,
    n_purchases: np.ndarray,
    total: np.ndarray,
) -> pd.DataFrame:
    """The RFM columns of the customers ``ids`` (times in microseconds), as the SQL gives them."""
    ce = cut / 1e6
    return pd.DataFrame(
        {
            "customer_id": pd.array(ids, dtype="str")
            if isinstance(ids.dtype, pd.StringDtype)
            else np.asarray(ids),
            "as_of": np.full(len(ids), np.datetime64(cut, "us")),
            "recency_days": (ce - last / 1e6) / _DAY,
            "tenure_days": (ce - first / 1e6) / _DAY,
            "frequency": n_days - 1,
            "n_purchases": n_purchases,
            "monetary_total": total,
            "monetary_mean": total / n_days,
        }
    )
