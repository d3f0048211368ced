"""The small-batch feature engine: request histories -> the feature definition.

:class:`FeatureSession` runs the one feature SQL (:func:`~churnclv.features._sql.feature_sql`,
the text :func:`churnclv.features.build_features` runs) on long-lived
connections, prepared once: SQLite for small batches, DuckDB beyond. The
service uses it for one customer's (or a micro-batch's) history per call.

Histories come as :class:`CustomerHistory` objects (the service's request
models satisfy it): :func:`canonical_frames` and :func:`canonical_rows` turn
them into the canonical input relations.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd

from churnclv.features._build import finish_features
from churnclv.features._sql import DEFAULT_EVENT_TYPES, feature_sql
from churnclv.features._sqlite import SQLiteFeatures, epoch_seconds

__all__ = [
    "SQLITE_MAX_ROWS",
    "CustomerHistory",
    "FeatureSession",
    "canonical_frames",
    "canonical_rows",
    "to_naive_utc",
]

#: Batches up to this many transaction + event rows compute features on SQLite (see
#: :class:`FeatureSession`); above, DuckDB's vectorised engine is faster.
SQLITE_MAX_ROWS = 5_000


class _Transaction(Protocol):
    @property
    def ts(self) -> datetime: ...
    @property
    def amount(self) -> float: ...
    @property
    def category(self) -> str | None: ...
    @property
    def channel(self) -> str | None: ...


class _Event(Protocol):
    @property
    def ts(self) -> datetime: ...
    @property
    def event_type(self) -> str: ...


def _value(event: _Event) -> float | None:
    """An event's numeric ``value`` (an optional attribute), None when it has none."""
    value = getattr(event, "value", None)
    return None if value is None or value != value else float(value)


class CustomerHistory(Protocol):
    """One customer's history: what :class:`FeatureSession` reads from a request."""

    @property
    def customer_id(self) -> str: ...
    @property
    def transactions(self) -> Sequence[_Transaction]: ...
    @property
    def events(self) -> Sequence[_Event]: ...
    @property
    def signup_ts(self) -> datetime | None: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...


def to_naive_utc(value: datetime) -> datetime:
    """``value`` as a naive UTC datetime (aware values are converted, naive kept)."""
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def canonical_frames(
    customers: Sequence[CustomerHistory],
    static_columns: Sequence[str],
    keys: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The canonical transactions, events and customers frames of validated customers.

    ``event_type`` is lower-cased, ``value`` is NaN where an event has none;
    ``transactions`` has ``category`` / ``channel`` where some transaction carries
    one; ``customers`` holds ``signup_ts`` and the ``static_columns`` (from each
    customer's ``attributes``; absent ones are null). ``keys`` replace the
    customer ids (so repeated ids stay apart).
    """
    ids = list(keys) if keys is not None else [c.customer_id for c in customers]
    tx_id: list[str] = []
    tx_ts: list[datetime] = []
    tx_amount: list[float] = []
    tx_category: list[str | None] = []
    tx_channel: list[str | None] = []
    ev_id: list[str] = []
    ev_ts: list[datetime] = []
    ev_type: list[str] = []
    ev_value: list[float | None] = []
    for cid, c in zip(ids, customers, strict=True):
        for t in c.transactions:
            tx_id.append(cid)
            tx_ts.append(to_naive_utc(t.ts))
            tx_amount.append(t.amount)
            tx_category.append(t.category)
            tx_channel.append(t.channel)
        for e in c.events:
            ev_id.append(cid)
            ev_ts.append(to_naive_utc(e.ts))
            ev_type.append(e.event_type.lower())
            ev_value.append(_value(e))
    tx = pd.DataFrame(
        {
            "customer_id": pd.array(tx_id, dtype="str"),
            "ts": np.array(tx_ts, dtype="datetime64[us]"),
            "amount": np.array(tx_amount, dtype=float),
        }
    )
    for col, values in (("category", tx_category), ("channel", tx_channel)):
        if any(v is not None for v in values):  # a column only where some row has a value
            tx[col] = pd.array(values, dtype="str")
    ev = pd.DataFrame(
        {
            "customer_id": pd.array(ev_id, dtype="str"),
            "ts": np.array(ev_ts, dtype="datetime64[us]"),
            "event_type": pd.array(ev_type, dtype="str"),
            "value": np.array([np.nan if v is None else v for v in ev_value], dtype=float),
        }
    )
    cust: dict[str, Any] = {
        "customer_id": pd.array(ids, dtype="str"),
        "signup_ts": np.array(
            [to_naive_utc(c.signup_ts) if c.signup_ts else None for c in customers],
            dtype="datetime64[us]",
        ),
    }
    for col in static_columns:
        vals = [c.attributes.get(col) for c in customers]
        cust[col] = pd.array([None if v is None else str(v) for v in vals], dtype="str")
    return tx, ev, pd.DataFrame(cust)


def canonical_rows(
    customers: Sequence[CustomerHistory],
    static_columns: Sequence[str],
    keys: Sequence[str],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """:func:`canonical_frames` as SQLite rows, without building frames (small batches).

    Timestamps become epoch seconds (:func:`~churnclv.features._sqlite.epoch_seconds`),
    the values :class:`~churnclv.features._sqlite.SQLiteFeatures` stores for the frames.
    """
    tx: list[tuple[Any, ...]] = []
    ev: list[tuple[Any, ...]] = []
    cust: list[tuple[Any, ...]] = []
    for cid, c in zip(keys, customers, strict=True):
        tx += [
            (cid, epoch_seconds(to_naive_utc(t.ts)), float(t.amount), t.category, t.channel)
            for t in c.transactions
        ]
        ev += [
            (cid, epoch_seconds(to_naive_utc(e.ts)), e.event_type.lower(), _value(e))
            for e in c.events
        ]
        signup = epoch_seconds(to_naive_utc(c.signup_ts)) if c.signup_ts else None
        attrs = [c.attributes.get(col) for col in static_columns]
        cust.append((cid, signup, *(None if v is None else str(v) for v in attrs)))
    return tx, ev, cust


class FeatureSession:
    """The feature definition on long-lived connections, run per batch.

    Small batches (at most ``sqlite_max_rows`` transaction + event rows) run
    on SQLite, whose compiled statement is reused, while DuckDB re-plans the
    query on every call. Larger batches run on DuckDB, whose vectorised engine
    wins from a few thousand rows on (``benchmarks/serve.py`` measures both). The
    DuckDB inputs live in temp tables that each call refills; calls are
    serialised by a lock. Either way the output equals
    :func:`churnclv.features.build_features` on the same frames with the same
    static columns (checked by the tests).

    Parameters
    ----------
    static_columns : sequence of str
        String attributes of ``customers`` passed through as features.
    event_types : sequence of str
        Event types with their own columns.
    sqlite_max_rows : int
        The largest batch (transaction + event rows) computed on SQLite; 0
        sends every batch to DuckDB.
    breadth : sequence of {"category", "channel"}
        Transactions columns with breadth features (what the models use);
        transactions without them count as unknown (null).
    valued_event_types : sequence of str
        Event types whose ``value`` gets value features.
    """

    def __init__(
        self,
        static_columns: Sequence[str],
        event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
        sqlite_max_rows: int = SQLITE_MAX_ROWS,
        breadth: Sequence[str] = (),
        valued_event_types: Sequence[str] = (),
    ) -> None:

        self.static_columns = list(static_columns)
        self.sqlite_max_rows = sqlite_max_rows
        self._lock = threading.Lock()
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET threads = 1")
        con.execute(
            "CREATE TEMP TABLE transactions (customer_id VARCHAR, ts TIMESTAMP, amount DOUBLE,"
            " category VARCHAR, channel VARCHAR)"
        )
        con.execute(
            "CREATE TEMP TABLE events"
            " (customer_id VARCHAR, ts TIMESTAMP, event_type VARCHAR, value DOUBLE)"
        )
        static_ddl = "".join(
            f', "{c.replace(chr(34), chr(34) * 2)}" VARCHAR' for c in static_columns
        )
        con.execute(
            f"CREATE TEMP TABLE customers (customer_id VARCHAR, signup_ts TIMESTAMP{static_ddl})"
        )
        con.execute("CREATE TEMP TABLE cutoffs (cutoff TIMESTAMP)")

        def sql(dialect: str) -> str:
            return feature_sql(
                with_events=True,
                event_types=event_types,
                valued_event_types=valued_event_types,
                static_columns=self.static_columns,
                with_signup=True,
                dialect=dialect,
                breadth=tuple(breadth),
            )

        con.execute("PREPARE churnclv_features AS " + sql("duckdb"))
        self._con = con
        con.execute("INSERT INTO cutoffs VALUES ('2000-01-01')")
        dtypes = dict(con.execute("EXECUTE churnclv_features").df().dtypes)
        con.execute("DELETE FROM cutoffs")
        self._lite = SQLiteFeatures(sql("sqlite"), self.static_columns, dtypes)
        self.calls = {"sqlite": 0, "duckdb": 0}

    def features(
        self,
        transactions: pd.DataFrame,
        events: pd.DataFrame,
        customers: pd.DataFrame,
        as_of: datetime | pd.Timestamp,
    ) -> pd.DataFrame:
        """The feature frame of ``customers`` as of one cutoff (canonical input frames)."""
        if len(transactions) + len(events) <= self.sqlite_max_rows:
            return self._on_sqlite(self._lite.frame_rows(transactions, events, customers), as_of)
        cut = pd.DataFrame({"cutoff": np.array([pd.Timestamp(as_of)], dtype="datetime64[us]")})
        with self._lock:
            self.calls["duckdb"] += 1
            con = self._con
            con.execute("BEGIN")
            try:
                # DuckDB replacement scans read these locals by name (DuckDB still re-binds
                # the prepared statement on every EXECUTE, hence SQLite for small batches).
                _tx, _ev, _cust, _cut = transactions, events, customers, cut
                _tx = _tx.reindex(columns=["customer_id", "ts", "amount", "category", "channel"])
                for table, local in (
                    ("transactions", "_tx"),
                    ("events", "_ev"),
                    ("customers", "_cust"),
                    ("cutoffs", "_cut"),
                ):
                    con.execute(f"DELETE FROM {table}")
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {local}")
                out = con.execute("EXECUTE churnclv_features").df()
            finally:
                con.execute("ROLLBACK")
        return finish_features(out, self.static_columns)

    def customer_features(
        self, customers: Sequence[CustomerHistory], keys: Sequence[str], as_of: datetime
    ) -> pd.DataFrame:
        """:meth:`features` of validated request customers (ids replaced by ``keys``).

        A batch small enough for SQLite goes there as rows, skipping the input
        frames; a larger one is framed for DuckDB. Same output either way.
        """
        n_rows = sum(len(c.transactions) + len(c.events) for c in customers)
        if n_rows > self.sqlite_max_rows:
            tx, ev, cust = canonical_frames(customers, self.static_columns, keys)
            return self.features(tx, ev, cust, as_of)
        return self._on_sqlite(canonical_rows(customers, self.static_columns, keys), as_of)

    def customer_columns(
        self, customers: Sequence[CustomerHistory], keys: Sequence[str], as_of: datetime
    ) -> pd.DataFrame | dict[str, Any]:
        """:meth:`customer_features` as column arrays where the batch runs on SQLite.

        The values equal the frame's; string attributes stay strings instead of
        becoming categoricals (the models code both alike). A batch too large
        for SQLite comes back as the frame of :meth:`customer_features`.
        """
        n_rows = sum(len(c.transactions) + len(c.events) for c in customers)
        if n_rows > self.sqlite_max_rows:
            return self.customer_features(customers, keys, as_of)
        rows = canonical_rows(customers, self.static_columns, keys)
        with self._lock:
            self.calls["sqlite"] += 1
            return self._lite.run_columns(*rows, [pd.Timestamp(as_of)])

    def _on_sqlite(
        self, rows: tuple[Iterable[tuple[Any, ...]], ...], as_of: datetime | pd.Timestamp
    ) -> pd.DataFrame:
        """Transactions, events and customers rows through the SQLite runner, finished."""
        with self._lock:
            self.calls["sqlite"] += 1
            transactions, events, customers = rows
            out = self._lite.run_rows(transactions, events, customers, [pd.Timestamp(as_of)])
        return finish_features(out, self.static_columns)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._con.close()
            self._lite.close()
