"""Input relations of the feature SQL: frames, Parquet scans, cutoffs and bucket maps."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from churnclv._errors import InputError
from churnclv._io_scan import Scan
from churnclv.features._sql import EVENT_BUCKET_BOUNDS, TX_BUCKET_BOUNDS
from churnclv.features._sql_breadth import BREADTH_INPUTS

__all__ = [
    "Input",
    "Parquet",
    "as_frame",
    "breadth_of",
    "bucket_maps",
    "cutoff_frame",
    "decode_customer_ids",
    "encode_customer_ids",
    "input_columns",
    "input_relations",
    "parquet_columns",
    "relation",
]


#: An input relation: a frame, the path of a Parquet file in the canonical schema, or a
#: validated input file (:func:`churnclv.scan_inputs`).
Input: TypeAlias = pd.DataFrame | Scan | str | os.PathLike[str]


@dataclass(frozen=True)
class Parquet:
    """A Parquet file DuckDB scans itself (the rows never become a pandas frame)."""

    path: str
    columns: tuple[str, ...]

    def sql(self) -> str:
        cols = ", ".join('"' + c.replace('"', '""') + '"' for c in self.columns)
        return f"SELECT {cols} FROM read_parquet('{self.path.replace(chr(39), chr(39) * 2)}')"


def parquet_columns(path: str | os.PathLike[str], what: str) -> list[str]:
    """The column names of a Parquet input, or an InputError naming the file."""
    src = os.fspath(path)
    if not os.path.isfile(src):
        raise InputError(f"{what}: no such file {src}")
    try:
        import pyarrow.parquet as pq

        return list(pq.read_schema(src).names)
    except Exception as exc:
        raise InputError(f"{what}: {src} is not a readable Parquet file ({exc})") from None


def input_columns(value: Input, what: str) -> list[str]:
    """The column names of a frame, a :class:`~churnclv.Scan` or a Parquet path input."""
    if isinstance(value, pd.DataFrame):
        return list(value.columns)
    if isinstance(value, Scan):
        return list(value.names)
    return parquet_columns(value, what)


def as_frame(value: Input | None, what: str) -> pd.DataFrame | None:
    """A path or scan input read into pandas (for the engines that need frames)."""
    if value is None or isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, Scan):
        return value.frame()
    parquet_columns(value, what)
    return pd.read_parquet(os.fspath(value))


def relation(value: Input, columns: Sequence[str] | None, what: str) -> Any:
    """A frame (its ``columns``), a projected :class:`~churnclv.Scan`, or a :class:`Parquet`
    scan of a path input."""
    if isinstance(value, pd.DataFrame):
        return value if columns is None else value[list(columns)]
    if isinstance(value, Scan):
        return value if columns is None else value.project(columns)
    names = parquet_columns(value, what)
    wanted = names if columns is None else list(columns)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise InputError(f"{what}: {os.fspath(value)} lacks columns {', '.join(missing)}")
    return Parquet(os.fspath(value), tuple(wanted))


def input_relations(
    transactions: Input,
    events: Input | None,
    customers: Input | None,
    cut: pd.DataFrame,
) -> tuple[dict[str, Any], list[str], bool]:
    """The relations the feature SQL reads, the static columns and whether signup_ts exists.

    Events keep their optional ``value`` column (the event-value features read it).
    """
    names = input_columns(transactions, "transactions")
    tx_cols = ["customer_id", "ts", "amount", *(c for c in BREADTH_INPUTS if c in names)]
    frames: dict[str, Any] = {
        "transactions": relation(transactions, tx_cols, "transactions"),
        "cutoffs": cut,
    }
    static: list[str] = []
    with_signup = False
    if customers is not None:
        frames["customers"] = relation(customers, None, "customers")
        names = input_columns(customers, "customers")
        with_signup = "signup_ts" in names
        static = [c for c in names if c not in ("customer_id", "signup_ts")]
    if events is not None:
        names = input_columns(events, "events")
        cols = ["customer_id", "ts", "event_type", *(["value"] if "value" in names else [])]
        frames["events"] = relation(events, cols, "events")
    return frames, static, with_signup


def breadth_of(frames: dict[str, Any]) -> tuple[str, ...]:
    """The breadth columns (``category``, ``channel``) the ``transactions`` relation has."""
    names = frames["transactions"].columns
    return tuple(c for c in BREADTH_INPUTS if c in names)


def cutoff_frame(cutoffs: Sequence[pd.Timestamp | str] | pd.Timestamp | str) -> pd.DataFrame:
    if isinstance(cutoffs, str | pd.Timestamp):
        cutoffs = [cutoffs]
    values = pd.to_datetime(pd.Series(list(cutoffs))).astype("datetime64[us]")
    if values.empty:
        raise ValueError("at least one cutoff is required")
    return pd.DataFrame({"cutoff": values.drop_duplicates().sort_values().to_numpy()})


def bucket_maps(cut: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The ``tx_buckets`` and ``ev_buckets`` relations of the bucketed form.

    Empty (use the direct form) unless there are several cutoffs, all at
    midnight UTC: then every window start is a day boundary, and each day
    maps to the start day ``lo`` of the bucket it falls in.
    """
    values = cut["cutoff"]
    if len(values) < 2 or bool((values != values.dt.normalize()).any()):
        return {}
    cdays = ((values - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy("int64")
    return {
        "tx_buckets": _bucket_map(cdays, TX_BUCKET_BOUNDS),
        "ev_buckets": _bucket_map(cdays, EVENT_BUCKET_BOUNDS),
    }


def _bucket_map(cutoff_days: np.ndarray, bounds: Sequence[int]) -> pd.DataFrame:
    starts = np.unique(np.subtract.outer(cutoff_days, np.asarray(bounds, dtype="int64")))
    days = np.arange(starts[0], cutoff_days.max(), dtype="int64")
    lo = starts[np.searchsorted(starts, days, side="right") - 1]
    return pd.DataFrame({"day": days, "lo": lo})


def encode_customer_ids(frames: dict[str, Any]) -> pd.Index | None:
    """Replace ``customer_id`` of the frames in ``frames`` by integer codes, in place.

    The codes are the positions of the transactions' sorted distinct ids, so
    the engine's hash aggregates, window partitions and joins compare
    integers instead of strings, and ordering by code is ordering by id.
    Events and customers rows of ids without transactions get ``-1`` (they
    never reach a feature row). Returns the sorted ids (for
    :func:`decode_customer_ids`), or ``None`` when nothing was encoded: an
    input is a Parquet scan, or a transaction has no id.
    """
    tx = frames["transactions"]
    others = [name for name in ("events", "customers") if name in frames]
    if not all(isinstance(frames[name], pd.DataFrame) for name in ["transactions", *others]):
        return None  # a Parquet scan keeps its string ids
    if len(tx) == 0 or bool(tx["customer_id"].isna().any()):
        return None
    codes, ids = pd.factorize(tx["customer_id"], sort=True)
    frames["transactions"] = tx.assign(customer_id=codes.astype(np.int32))
    index = pd.Index(ids)
    for name in others:
        other = frames[name]
        frames[name] = other.assign(
            customer_id=index.get_indexer(other["customer_id"]).astype(np.int32)
        )
    return index


def decode_customer_ids(out: pd.DataFrame, ids: pd.Index | None) -> pd.DataFrame:
    """Put the ids back into a result whose ``customer_id`` holds codes (in place)."""
    if ids is not None:
        codes = out["customer_id"].to_numpy()
        out["customer_id"] = pd.Series(ids.take(codes), index=out.index)
    return out
