"""The feature definition on SQLite: small batches without a planner on the hot path.

DuckDB re-binds and re-optimises the feature query on every call, prepared or
not, and for one customer that planning costs several times the execution.
SQLite compiles the same text once per connection (Python's statement cache),
but it has no vectorised engine, so it pays only for small inputs
(``benchmarks/serve.py`` measures both).
:class:`~churnclv.features._session.FeatureSession` sends batches up to a row
threshold here and larger ones to DuckDB.

Timestamps are loaded as epoch seconds (``microseconds / 1e6``, the double
DuckDB's ``epoch()`` gives), so the ``"sqlite"`` dialect's epoch is the
column itself. The result gets the column dtypes DuckDB gives for the same
text, so both engines return the same frame (checked against the pandas
oracle by the tests).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

__all__ = ["SQLiteFeatures", "epoch_seconds"]

_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


#: Rows of one input table in its SQLite layout.
_Rows: TypeAlias = Iterable[tuple[Any, ...]]


def epoch_seconds(value: datetime) -> float:
    """Epoch seconds of a naive UTC datetime: the double :func:`_epoch` (and DuckDB) gives."""
    return ((value - _EPOCH) // _MICROSECOND) / 1e6


def _epoch(values: pd.Series) -> list[float | None]:
    """Epoch seconds of a timestamp column as DuckDB's ``epoch()`` computes them."""
    ts = values.to_numpy(dtype="datetime64[us]")
    secs = ts.astype("int64") / 1e6
    out: list[float | None] = secs.tolist()
    if np.isnat(ts).any():
        out = [None if nat else v for v, nat in zip(out, np.isnat(ts), strict=True)]
    return out


def _objects(values: pd.Series) -> list[Any]:
    """A column's values with every missing value (NaN, NA, NaT) as None (SQLite NULL)."""
    return [None if v is None or v is pd.NA or v != v else v for v in values.tolist()]


def _converter(dtype: Any) -> Callable[[Sequence[Any]], Any]:
    """How a result column (a tuple of Python values) becomes an array of ``dtype``."""
    if dtype is None:
        return lambda col: pd.Series(list(col)).infer_objects().to_numpy()
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) or np.dtype(dtype).kind == "O":
        # strings: DuckDB gives pandas' str dtype (object only for an empty result)
        return lambda col: pd.array(list(col), dtype="str")
    kind = np.dtype(dtype).kind
    if kind in "iu":

        def ints(col: Sequence[Any]) -> np.ndarray:
            if None in col:  # an integer column with NULLs comes out as float, as in DuckDB
                return np.array(col, dtype=float)
            return np.array(col, dtype=dtype)

        return ints
    if kind == "b":
        return lambda col: np.array(col, dtype=bool)
    return lambda col: np.array(col, dtype=float)  # None -> NaN


class SQLiteFeatures:
    """One in-memory SQLite connection holding the input tables and the feature query.

    Parameters
    ----------
    sql : str
        The feature query rendered for the ``"sqlite"`` dialect.
    static_columns : sequence of str
        String attributes of ``customers`` (besides ``customer_id``, ``signup_ts``).
    dtypes : mapping of str to dtype, optional
        The column dtypes of the result (those DuckDB gives for the same text).
    """

    def __init__(
        self,
        sql: str,
        static_columns: Sequence[str],
        dtypes: Mapping[str, Any] | None = None,
    ) -> None:
        self.sql = sql
        self.static_columns = list(static_columns)
        self.dtypes = dict(dtypes or {})
        self._converters: dict[str, Callable[[Sequence[Any]], Any]] = {}
        con = sqlite3.connect(":memory:", check_same_thread=False, cached_statements=16)
        con.execute(
            "CREATE TABLE transactions"
            " (customer_id TEXT, ts REAL, amount REAL, category TEXT, channel TEXT)"
        )
        con.execute("CREATE TABLE events (customer_id TEXT, ts REAL, event_type TEXT, value REAL)")
        static_ddl = "".join(
            f', "{c.replace(chr(34), chr(34) * 2)}" TEXT' for c in self.static_columns
        )
        con.execute(f"CREATE TABLE customers (customer_id TEXT, signup_ts REAL{static_ddl})")
        con.execute("CREATE TABLE cutoffs (cutoff REAL)")
        marks = ", ".join("?" * (2 + len(self.static_columns)))
        self._insert_customers = f"INSERT INTO customers VALUES ({marks})"
        self._con = con

    def run(
        self,
        transactions: pd.DataFrame,
        events: pd.DataFrame | None,
        customers: pd.DataFrame | None,
        cutoffs: Sequence[pd.Timestamp],
    ) -> pd.DataFrame:
        """The raw feature frame (before :func:`~churnclv.features.finish_features`).

        Not thread-safe: callers serialise calls on one instance.
        """
        return self.run_rows(*self.frame_rows(transactions, events, customers), cutoffs)

    def frame_rows(
        self,
        transactions: pd.DataFrame,
        events: pd.DataFrame | None,
        customers: pd.DataFrame | None,
    ) -> tuple[Iterable[tuple[Any, ...]], Iterable[tuple[Any, ...]], Iterable[tuple[Any, ...]]]:
        """The input frames as the rows :meth:`run_rows` takes."""
        absent = [None] * len(transactions)
        tx_rows = zip(
            _objects(transactions["customer_id"]),
            _epoch(transactions["ts"]),
            transactions["amount"].astype(float).tolist(),
            *(
                _objects(transactions[c]) if c in transactions.columns else absent
                for c in ("category", "channel")
            ),
            strict=True,
        )
        ev_rows: Iterable[tuple[Any, ...]] = ()
        if events is not None and len(events):
            values = (
                _objects(pd.to_numeric(events["value"], errors="coerce"))
                if "value" in events.columns
                else [None] * len(events)
            )
            ev_rows = zip(
                _objects(events["customer_id"]),
                _epoch(events["ts"]),
                _objects(events["event_type"]),
                values,
                strict=True,
            )
        cust_rows: Iterable[tuple[Any, ...]] = ()
        if customers is not None and len(customers):
            signup = (
                _epoch(customers["signup_ts"])
                if "signup_ts" in customers.columns
                else [None] * len(customers)
            )
            cols = [_objects(customers[c]) for c in self.static_columns]
            cust_rows = zip(_objects(customers["customer_id"]), signup, *cols, strict=True)
        return tx_rows, ev_rows, cust_rows

    def run_rows(
        self, transactions: _Rows, events: _Rows, customers: _Rows, cutoffs: Sequence[pd.Timestamp]
    ) -> pd.DataFrame:
        """:meth:`run` on rows already in the tables' layout (no input frames to build).

        Not thread-safe: callers serialise calls on one instance.

        ``transactions`` are ``(customer_id, epoch seconds, amount, category,
        channel)`` (the last two None when unknown), ``events``
        ``(customer_id, epoch seconds, event_type, value or None)`` and ``customers``
        ``(customer_id, signup epoch seconds or None, *static values)``, epoch
        seconds being ``microseconds / 1e6`` (see :func:`epoch_seconds`).
        """
        return pd.DataFrame(self.run_columns(transactions, events, customers, cutoffs))

    def run_columns(
        self, transactions: _Rows, events: _Rows, customers: _Rows, cutoffs: Sequence[pd.Timestamp]
    ) -> dict[str, Any]:
        """:meth:`run_rows`' columns as arrays of the result dtypes, without the frame.

        Not thread-safe: callers serialise calls on one instance.
        """
        con = self._con
        for table in ("transactions", "events", "customers", "cutoffs"):
            con.execute(f"DELETE FROM {table}")
        con.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?, ?)", transactions)
        con.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", events)
        con.executemany(self._insert_customers, customers)
        cuts = np.array([pd.Timestamp(c).as_unit("us") for c in cutoffs], dtype="datetime64[us]")
        stamps = dict(zip((cuts.astype("int64") / 1e6).tolist(), cuts, strict=True))
        con.executemany("INSERT INTO cutoffs VALUES (?)", [(e,) for e in stamps])
        cur = con.execute(self.sql)
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        con.commit()
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        data: dict[str, Any] = {}
        for name, col in zip(names, columns, strict=True):
            if name == "as_of":
                data[name] = np.array([stamps[v] for v in col], dtype="datetime64[us]")
            else:
                convert = self._converters.get(name)
                if convert is None:
                    convert = self._converters[name] = _converter(self.dtypes.get(name))
                data[name] = convert(col)
        return data

    def close(self) -> None:
        """Close the connection."""
        self._con.close()
