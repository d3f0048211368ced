"""Online scoring for the service (DESIGN §8), with no BentoML import.

Request models -> canonical frames -> features -> champion -> decisions, plus
the pieces the service needs around them: request validation that names the
offending field, plain-words reasons, a micro-batcher that merges concurrent
requests into one feature query and one model call, and the batch-scored
snapshot behind ``/lookup``.

Features come from the one SQL definition (:func:`churnclv.features._sql.feature_sql`,
the text :func:`churnclv.features.build_features` runs), prepared once on a
long-lived DuckDB connection: a fresh connection plus query planning costs
~80-130 ms a call on this machine, the prepared execution ~10-15 ms.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from churnclv._errors import InputError
from churnclv.decisions import Policy, decide_columns
from churnclv.features import DEFAULT_EVENT_TYPES, finish_features
from churnclv.features._sql import feature_sql
from churnclv.serving._batch import SCORE_COLUMNS
from churnclv.training import Champion
from churnclv.training._model import Columns

__all__ = [
    "DECISION_INPUTS",
    "MAX_CUSTOMERS",
    "MAX_FEATURE_ROWS",
    "MAX_LOOKUP_IDS",
    "MAX_ROWS_PER_CUSTOMER",
    "CustomerIn",
    "EventIn",
    "FeatureSession",
    "MicroBatcher",
    "OnlineScorer",
    "RequestError",
    "ScoresSnapshot",
    "ServingState",
    "TransactionIn",
    "canonical_frames",
    "model_info",
    "reason_text",
    "reasons",
    "to_naive_utc",
    "validate_customers",
]

MAX_CUSTOMERS = 1_000
MAX_ROWS_PER_CUSTOMER = 10_000
MAX_FEATURE_ROWS = 10_000
#: Batches up to this many transaction + event rows compute features on SQLite (see
#: :class:`FeatureSession`); measured crossover with DuckDB on 2 cores: about 7,000 rows.
SQLITE_MAX_ROWS = 5_000
MAX_LOOKUP_IDS = 10_000
#: Columns :func:`churnclv.decisions.decide` reads besides the predictions.
DECISION_INPUTS = ("recency_days", "tenure_days", "gap_mean_days", "frequency", "monetary_total")
_DAY = 86400.0


class RequestError(InputError):
    """A request the service rejects with a 4xx that names the field.

    Parameters
    ----------
    message : str
        One line for the client.
    field : str
        The JSON path of the offending field, e.g. ``customers[0].transactions[3].amount``.
    status : int
        The HTTP status (422 by default, 413 for size limits).
    """

    def __init__(self, message: str, *, field: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status

    def body(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": message, "field": path}``."""
        return {"error": str(self), "field": self.field}


# ---- request models -------------------------------------------------------------------------
class TransactionIn(BaseModel):
    """One purchase (amount > 0) or return (amount < 0)."""

    model_config = ConfigDict(extra="ignore")
    ts: datetime
    amount: float


class EventIn(BaseModel):
    """One engagement event (login, session, page_view, email_open, support_ticket, ...)."""

    model_config = ConfigDict(extra="ignore")
    ts: datetime
    event_type: Annotated[str, Field(min_length=1, max_length=64)]


class CustomerIn(BaseModel):
    """One customer's history up to ``as_of`` (default: the moment it is scored, UTC)."""

    model_config = ConfigDict(extra="forbid")
    customer_id: Annotated[str, Field(min_length=1, max_length=256)]
    as_of: datetime | None = None
    transactions: Annotated[list[TransactionIn], Field(min_length=1)]
    events: list[EventIn] = Field(default_factory=list)
    signup_ts: datetime | None = None
    attributes: dict[str, str | float | int | bool | None] = Field(default_factory=dict)


def to_naive_utc(value: datetime) -> datetime:
    """``value`` as a naive UTC datetime (aware values are converted, naive kept)."""
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def validate_customers(customers: Sequence[CustomerIn], now: datetime | None = None) -> None:
    """Check what pydantic cannot: limits, finite amounts, no row at or after ``as_of``.

    Raises
    ------
    RequestError
        413 past :data:`MAX_CUSTOMERS` customers or :data:`MAX_ROWS_PER_CUSTOMER`
        rows per customer; 422 for a non-finite amount, a timestamp at or after
        the customer's ``as_of`` (or after ``now`` when ``as_of`` is omitted),
        or a history with no purchase. The error names the field.
    """
    if not customers:
        raise RequestError("customers must hold at least one customer", field="customers")
    if len(customers) > MAX_CUSTOMERS:
        raise RequestError(
            f"at most {MAX_CUSTOMERS} customers per request, got {len(customers)}",
            field="customers",
            status=413,
        )
    now = now or _utcnow()
    for i, c in enumerate(customers):
        where = f"customers[{i}]"
        for name, rows in (("transactions", c.transactions), ("events", c.events)):
            if len(rows) > MAX_ROWS_PER_CUSTOMER:
                raise RequestError(
                    f"customer {c.customer_id!r}: at most {MAX_ROWS_PER_CUSTOMER} {name} "
                    f"per customer, got {len(rows)}",
                    field=f"{where}.{name}",
                    status=413,
                )
        as_of = to_naive_utc(c.as_of) if c.as_of is not None else now
        has_purchase = False
        for j, t in enumerate(c.transactions):
            if not math.isfinite(t.amount):
                raise RequestError(
                    f"customer {c.customer_id!r}: amount must be a finite number, got {t.amount}",
                    field=f"{where}.transactions[{j}].amount",
                )
            if to_naive_utc(t.ts) >= as_of:
                raise RequestError(
                    f"customer {c.customer_id!r}: transaction ts {t.ts.isoformat()} is not "
                    f"before as_of {as_of.isoformat()}",
                    field=f"{where}.transactions[{j}].ts",
                )
            has_purchase = has_purchase or t.amount > 0
        if not has_purchase:
            raise RequestError(
                f"customer {c.customer_id!r}: no purchase (amount > 0) before as_of; "
                "a customer needs at least one to be scored",
                field=f"{where}.transactions",
            )
        for j, e in enumerate(c.events):
            if to_naive_utc(e.ts) >= as_of:
                raise RequestError(
                    f"customer {c.customer_id!r}: event ts {e.ts.isoformat()} is not before "
                    f"as_of {as_of.isoformat()}",
                    field=f"{where}.events[{j}].ts",
                )
        if c.signup_ts is not None and to_naive_utc(c.signup_ts) >= as_of:
            raise RequestError(
                f"customer {c.customer_id!r}: signup_ts {c.signup_ts.isoformat()} is not before "
                f"as_of {as_of.isoformat()}",
                field=f"{where}.signup_ts",
            )


def canonical_frames(
    customers: Sequence[CustomerIn],
    static_columns: Sequence[str],
    keys: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The canonical transactions, events and customers frames of validated customers.

    ``event_type`` is lower-cased; ``customers`` holds ``signup_ts`` and the
    ``static_columns`` (from each customer's ``attributes``; absent ones are
    null). ``keys`` replace the customer ids (so repeated ids stay apart).
    """
    ids = list(keys) if keys is not None else [c.customer_id for c in customers]
    tx_id: list[str] = []
    tx_ts: list[datetime] = []
    tx_amount: list[float] = []
    ev_id: list[str] = []
    ev_ts: list[datetime] = []
    ev_type: list[str] = []
    for cid, c in zip(ids, customers, strict=True):
        for t in c.transactions:
            tx_id.append(cid)
            tx_ts.append(to_naive_utc(t.ts))
            tx_amount.append(t.amount)
        for e in c.events:
            ev_id.append(cid)
            ev_ts.append(to_naive_utc(e.ts))
            ev_type.append(e.event_type.lower())
    tx = pd.DataFrame(
        {
            "customer_id": pd.array(tx_id, dtype="str"),
            "ts": np.array(tx_ts, dtype="datetime64[us]"),
            "amount": np.array(tx_amount, dtype=float),
        }
    )
    ev = pd.DataFrame(
        {
            "customer_id": pd.array(ev_id, dtype="str"),
            "ts": np.array(ev_ts, dtype="datetime64[us]"),
            "event_type": pd.array(ev_type, dtype="str"),
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
    customers: Sequence[CustomerIn],
    static_columns: Sequence[str],
    keys: Sequence[str],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """:func:`canonical_frames` as SQLite rows, without building frames (small batches).

    Timestamps become epoch seconds (:func:`~churnclv.features._sqlite.epoch_seconds`),
    the values :class:`~churnclv.features._sqlite.SQLiteFeatures` stores for the frames.
    """
    from churnclv.features._sqlite import epoch_seconds

    tx: list[tuple[Any, ...]] = []
    ev: list[tuple[Any, ...]] = []
    cust: list[tuple[Any, ...]] = []
    for cid, c in zip(keys, customers, strict=True):
        tx += [(cid, epoch_seconds(to_naive_utc(t.ts)), float(t.amount)) for t in c.transactions]
        ev += [(cid, epoch_seconds(to_naive_utc(e.ts)), e.event_type.lower()) for e in c.events]
        signup = epoch_seconds(to_naive_utc(c.signup_ts)) if c.signup_ts else None
        attrs = [c.attributes.get(col) for col in static_columns]
        cust.append((cid, signup, *(None if v is None else str(v) for v in attrs)))
    return tx, ev, cust


# ---- features on a long-lived connection ----------------------------------------------------
class FeatureSession:
    """The feature definition on long-lived connections, run per batch.

    Small batches (at most ``sqlite_max_rows`` transaction + event rows) run
    on SQLite, whose compiled statement is reused: DuckDB re-plans the query
    on every call, about 13 ms of CPU even for one customer, against about
    2 ms on SQLite. Larger batches run on DuckDB, whose vectorised engine wins
    from a few thousand rows on (``benchmarks/serve.py`` measures both). The
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
    """

    def __init__(
        self,
        static_columns: Sequence[str],
        event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
        sqlite_max_rows: int = SQLITE_MAX_ROWS,
    ) -> None:
        import duckdb

        from churnclv.features._sqlite import SQLiteFeatures

        self.static_columns = list(static_columns)
        self.sqlite_max_rows = sqlite_max_rows
        self._lock = threading.Lock()
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET threads = 1")
        con.execute(
            "CREATE TEMP TABLE transactions (customer_id VARCHAR, ts TIMESTAMP, amount DOUBLE)"
        )
        con.execute(
            "CREATE TEMP TABLE events (customer_id VARCHAR, ts TIMESTAMP, event_type VARCHAR)"
        )
        static_ddl = "".join(
            f', "{c.replace(chr(34), chr(34) * 2)}" VARCHAR' for c in static_columns
        )
        con.execute(
            f"CREATE TEMP TABLE customers (customer_id VARCHAR, signup_ts TIMESTAMP{static_ddl})"
        )
        con.execute("CREATE TEMP TABLE cutoffs (cutoff TIMESTAMP)")
        sql = feature_sql(
            with_events=True,
            event_types=event_types,
            static_columns=self.static_columns,
            with_signup=True,
        )
        con.execute("PREPARE churnclv_features AS " + sql)
        self._con = con
        con.execute("INSERT INTO cutoffs VALUES ('2000-01-01')")
        dtypes = dict(con.execute("EXECUTE churnclv_features").df().dtypes)
        con.execute("DELETE FROM cutoffs")
        lite_sql = feature_sql(
            with_events=True,
            event_types=event_types,
            static_columns=self.static_columns,
            with_signup=True,
            dialect="sqlite",
        )
        self._lite = SQLiteFeatures(lite_sql, self.static_columns, dtypes)
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
                # the prepared statement on every EXECUTE: measured, hence SQLite above).
                _tx, _ev, _cust, _cut = transactions, events, customers, cut
                for table, local in (
                    ("transactions", "_tx"),
                    ("events", "_ev"),
                    ("customers", "_cust"),
                    ("cutoffs", "_cut"),
                ):
                    con.execute(f"DELETE FROM {table}")
                    con.execute(f"INSERT INTO {table} SELECT * FROM {local}")
                out = con.execute("EXECUTE churnclv_features").df()
            finally:
                con.execute("ROLLBACK")
        return finish_features(out, self.static_columns)

    def customer_features(
        self, customers: Sequence[CustomerIn], keys: Sequence[str], as_of: datetime
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
        self, customers: Sequence[CustomerIn], keys: Sequence[str], as_of: datetime
    ) -> Columns:
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
            out = self._lite.run_rows(*rows, [pd.Timestamp(as_of)])
        return finish_features(out, self.static_columns)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._con.close()
            self._lite.close()


# ---- reasons --------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _days(x: float) -> str:
    return f"{x:,.0f} day" + ("" if round(x) == 1 else "s")


def reason_text(feature: str, row: Mapping[str, Any]) -> str:
    """A short plain-words description of one feature of one customer.

    Parameters
    ----------
    feature : str
        A feature column name.
    row : mapping
        The customer's feature values (``recency_days``, ``gap_mean_days``, ...).

    Returns
    -------
    str
        E.g. ``"no purchase for 94 days, 3.1x the usual gap"``; unknown features
        read ``"<feature> = <value>"``.
    """
    value = row.get(feature)
    x = _num(value)
    gap = _num(row.get("gap_mean_days"))
    recency = _num(row.get("recency_days"))
    if feature in ("recency_days", "overdue_ratio") and recency is not None:
        text = f"no purchase for {_days(recency)}"
        if gap and gap > 0:
            text += f", {recency / gap:.1f}x the usual gap"
        return text
    if feature == "tenure_days" and x is not None:
        return f"first purchase {_days(x)} ago"
    if feature == "frequency" and x is not None:
        return f"{x:,.0f} repeat purchase day" + ("" if x == 1 else "s")
    if feature == "n_purchases" and x is not None:
        return f"{x:,.0f} purchases in total"
    if feature == "monetary_total" and x is not None:
        return f"spent {x:,.2f} in total"
    if feature == "monetary_mean" and x is not None:
        return f"spends {x:,.2f} per purchase day"
    if feature in ("gap_mean_days", "gap_std_days"):
        if x is None:
            return "only one purchase day so far"
        what = "usual gap" if feature == "gap_mean_days" else "gap varies by"
        return f"{what} {x:,.1f} days between purchases"
    if feature in ("returns_count", "returns_total") and x is not None:
        n, total = _num(row.get("returns_count")) or 0, _num(row.get("returns_total")) or 0
        return f"{n:,.0f} returns worth {total:,.2f}"
    for w in (7, 30, 90, 365):
        if feature == f"tx_count_{w}d" and x is not None:
            return f"{x:,.0f} purchases in the last {w} days"
        if feature == f"spend_{w}d" and x is not None:
            return f"spent {x:,.2f} in the last {w} days"
        if feature == f"active_days_{w}d" and x is not None:
            return f"bought on {x:,.0f} days in the last {w} days"
    if feature == "spend_prior_90d" and x is not None:
        return f"spent {x:,.2f} in the 90 days before the last 90"
    if feature in ("spend_trend_90d", "events_trend_90d") and x is not None:
        what = "spend" if feature.startswith("spend") else "activity"
        if x == 0:
            return f"{what} flat over the last 90 days vs the 90 before"
        way = "up" if x > 0 else "down"
        return f"{what} {way} (trend {x:+.2f}) over the last 90 days vs the 90 before"
    if feature.startswith("days_since_"):
        what = feature.removeprefix("days_since_").replace("_", " ")
        if what == "event":
            what = "activity"
        if x is None:
            return f"no {what} on record" if what != "signup" else "signup date unknown"
        if what == "signup":
            return f"signed up {_days(x)} ago"
        return f"last {what} {_days(x)} ago"
    if feature.startswith("ev_") and feature[-1] == "d" and x is not None:
        name, _, window = feature.removeprefix("ev_").rpartition("_")
        label = name.replace("_", " ")
        return (
            f"{x:,.0f} {label}{'' if x == 1 else 's'} in the last {window.removesuffix('d')} days"
        )
    if feature in ("events_30d", "events_90d") and x is not None:
        return f"{x:,.0f} engagement events in the last {feature[7:-1]} days"
    if feature.startswith("event_active_days_") and x is not None:
        return f"active on {x:,.0f} days in the last {feature[18:-1]} days"
    if x is None and value is not None and not (isinstance(value, float) and math.isnan(value)):
        return f"{feature.replace('_', ' ')}: {value}"
    if x is None:
        return f"{feature.replace('_', ' ')}: unknown"
    return f"{feature.replace('_', ' ')} = {x:,.4g}"


def reasons(
    features: Columns,
    contributions: pd.DataFrame | np.ndarray,
    k: int = 3,
    *,
    columns: Sequence[str] | None = None,
) -> list[list[dict[str, Any]]]:
    """The top ``k`` churn-model contributions of each row, largest magnitude first.

    Parameters
    ----------
    features : pandas.DataFrame or mapping of str to array
        Feature rows (the model's input), as a frame or as column arrays.
    contributions : pandas.DataFrame or numpy.ndarray
        ``BoosterModel.contributions`` of the same rows (raw-score scale; > 0
        raises the churn probability), or its array (``contribution_matrix``).
    k : int
        Reasons per row.
    columns : sequence of str, optional
        The feature of each column of an array ``contributions``.

    Returns
    -------
    list of list of dict
        Per row: ``{"feature", "value", "contribution", "text"}`` objects.
    """
    if isinstance(contributions, pd.DataFrame):
        contrib = contributions.to_numpy(dtype=float)
        cols = list(contributions.columns)
    elif columns is None:
        raise ValueError("reasons: pass columns= with an array of contributions")
    else:
        contrib, cols = np.asarray(contributions, dtype=float), list(columns)
    top = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
    context = ["recency_days", "gap_mean_days", "returns_count", "returns_total"]
    used = [cols[j] for j in np.unique(top)]
    needed = [c for c in dict.fromkeys([*used, *context]) if c in features]
    if isinstance(features, pd.DataFrame):
        records = features[needed].to_dict("records")
    else:  # plain Python values, as to_dict gives
        values = [features[c].tolist() for c in needed]
        records = [dict(zip(needed, row, strict=True)) for row in zip(*values, strict=True)]
    out: list[list[dict[str, Any]]] = []
    for i, row in enumerate(records):
        items = []
        for j in top[i]:
            feat = cols[j]
            raw = row.get(feat)
            val: Any = _num(raw)
            if val is None and raw is not None and not isinstance(raw, float):
                val = None if pd.isna(raw) else str(raw)
            items.append(
                {
                    "feature": feat,
                    "value": val,
                    "contribution": float(contrib[i, j]),
                    "text": reason_text(feat, row),
                }
            )
        out.append(items)
    return out


# ---- the scorer -----------------------------------------------------------------------------
def _records(
    features: Columns,
    predictions: tuple[np.ndarray, np.ndarray],
    decided: Mapping[str, np.ndarray],
    why: list[list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """One JSON-ready dict per row: the DESIGN §7 columns, ``as_of`` and ``reasons``."""
    # Column-wise tolist() gives plain Python values (float, str) without per-row work.
    values = [
        features["customer_id"].tolist(),
        predictions[0].tolist(),
        predictions[1].tolist(),
        *(decided[c].tolist() for c in SCORE_COLUMNS[3:]),
        [pd.Timestamp(t).isoformat() for t in features["as_of"].tolist()],
        why,
    ]
    cols = [*SCORE_COLUMNS, "as_of", "reasons"]
    return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)]


@dataclass
class OnlineScorer:
    """Champion + policy + a prepared feature session: requests in, prediction dicts out.

    Parameters
    ----------
    champion : Champion
        The models (from :func:`churnclv.training.load_champion`).
    policy : Policy
        The decision policy.
    """

    champion: Champion
    policy: Policy
    static_columns: list[str] = field(init=False)
    required_columns: list[str] = field(init=False)
    session: FeatureSession = field(init=False)

    def __post_init__(self) -> None:
        used = list(dict.fromkeys([*self.champion.churn.features_, *self.champion.value.features_]))
        used = [c for c in used if c not in _model_derived_columns()]  # the models add these
        known = set(_base_feature_columns())
        self.static_columns = [c for c in used if c not in known]
        self.required_columns = list(dict.fromkeys([*used, *DECISION_INPUTS]))
        self.session = FeatureSession(self.static_columns)

    # -- the shared model step --
    def _score(self, feats: Columns) -> list[dict[str, Any]]:
        """Records for a feature frame or column arrays: the batch path's model step,
        decisions and reasons (:func:`~churnclv.serving._batch.predict`,
        :func:`~churnclv.decisions.decide_columns`, :func:`reasons`), with no frame
        built on the way (most of a one-customer call's cost was frame overhead)."""
        from churnclv.serving._batch import predict

        champion = self.champion
        feats, x_churn, p, v = predict(feats, champion)
        decided = decide_columns(
            collections.ChainMap({"churn_probability": p, "predicted_value": v}, feats),
            self.policy,
            churn_horizon_days=champion.churn_horizon_days,
            reference=champion.value.reference_ or None,
        )
        contributions = champion.churn.contribution_matrix(x_churn)
        why = reasons(feats, contributions, columns=champion.churn.features_)
        return _records(feats, (p, v), decided, why)

    def score_customers(
        self, customers: Sequence[CustomerIn], now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Predictions for validated customers, in request order.

        Customers are grouped by ``as_of`` (omitted = ``now``); each group is
        one feature query and one model call.
        """
        now = now or _utcnow()
        groups: dict[datetime, list[int]] = {}
        for i, c in enumerate(customers):
            when = to_naive_utc(c.as_of) if c.as_of is not None else now
            groups.setdefault(when, []).append(i)
        results: list[dict[str, Any] | None] = [None] * len(customers)
        for as_of, idx in groups.items():
            members = [customers[i] for i in idx]
            keys = [str(i) for i in idx]
            feats = self.session.customer_columns(members, keys, as_of)
            by_key = {k: n for n, k in enumerate(feats["customer_id"])}
            recs = self._score(feats) if by_key else []
            for i, key, c in zip(idx, keys, members, strict=True):
                n = by_key.get(key)
                if n is None:  # validation guarantees a purchase; keep a clear error anyway
                    raise RequestError(
                        f"customer {c.customer_id!r}: no purchase before as_of",
                        field=f"customers[{i}].transactions",
                    )
                results[i] = {**recs[n], "customer_id": c.customer_id}
        return [r for r in results if r is not None]

    def feature_frame(
        self, rows: Sequence[Mapping[str, Any]], now: datetime | None = None
    ) -> pd.DataFrame:
        """Validate precomputed feature rows and build the model's input frame.

        Raises
        ------
        RequestError
            Missing required columns (all named), non-numeric values in numeric
            columns (column and row named), or too many rows.
        """
        if not rows:
            raise RequestError("rows must hold at least one row", field="rows")
        if len(rows) > MAX_FEATURE_ROWS:
            raise RequestError(
                f"at most {MAX_FEATURE_ROWS} rows per request, got {len(rows)}",
                field="rows",
                status=413,
            )
        frame = pd.DataFrame.from_records(list(rows))
        need = ["customer_id", *self.required_columns]
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise RequestError(
                f"feature rows lack required columns: {', '.join(missing)}",
                field="rows[].{" + ",".join(missing) + "}",
            )
        ids = frame["customer_id"]
        bad_id = ids.isna() | ~ids.map(lambda v: isinstance(v, str) and len(v) > 0)
        if bad_id.any():
            i = int(np.flatnonzero(bad_id.to_numpy())[0])
            raise RequestError(
                "customer_id must be a non-empty string", field=f"rows[{i}].customer_id"
            )
        frame["customer_id"] = ids.astype("str")
        categorical = set(self.champion.churn.categories_) | set(self.champion.value.categories_)
        for col in self.required_columns:
            if col in categorical:
                s = frame[col]
                frame[col] = pd.array([None if v is None else str(v) for v in s], dtype="str")
                continue
            raw = frame[col]
            # A column pandas built as int or float holds JSON numbers (and None as NaN) only;
            # anything else (strings, booleans, lists, mixtures) arrives as object or bool and
            # is checked value by value (80k lambda calls were 30% of a 1,000-row request).
            if raw.dtype.kind not in "iuf":
                bad = raw.map(
                    lambda v: (
                        v is not None and (isinstance(v, bool) or not isinstance(v, int | float))
                    )
                )
                if bad.any():
                    i = int(np.flatnonzero(bad.to_numpy())[0])
                    raise RequestError(
                        f"column {col!r} must be a number or null, got {raw.iloc[i]!r}",
                        field=f"rows[{i}].{col}",
                    )
            vals = pd.to_numeric(raw, errors="coerce").astype(float)
            if np.isinf(vals.to_numpy()).any():
                i = int(np.flatnonzero(np.isinf(vals.to_numpy()))[0])
                raise RequestError(f"column {col!r} must be finite", field=f"rows[{i}].{col}")
            frame[col] = vals
        for col in DECISION_INPUTS:
            if col != "gap_mean_days" and frame[col].isna().any():
                i = int(np.flatnonzero(frame[col].isna().to_numpy())[0])
                raise RequestError(f"column {col!r} must not be null", field=f"rows[{i}].{col}")
        if "as_of" in frame.columns:
            try:
                as_of = pd.to_datetime(
                    frame["as_of"].fillna(pd.Timestamp(now or _utcnow())), utc=True
                )
            except (ValueError, TypeError):
                raise RequestError(
                    "as_of must be ISO dates or timestamps", field="rows[].as_of"
                ) from None
            frame["as_of"] = as_of.dt.tz_convert(None).astype("datetime64[us]")
        else:
            frame["as_of"] = pd.Timestamp(now or _utcnow()).as_unit("us")
        return frame

    def score_feature_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Predictions for precomputed feature rows, in request order."""
        return self._score(self.feature_frame(rows))


def _model_derived_columns() -> frozenset[str]:
    """Columns the models compute themselves when a frame lacks them (BTYD features)."""
    try:
        from churnclv.training._hybrid import BTYD_COLUMNS
    except ImportError:  # pragma: no cover - older training package
        return frozenset()
    return frozenset(BTYD_COLUMNS)


def _base_feature_columns() -> list[str]:
    """Columns the feature definition derives from transactions and events alone."""
    from churnclv.features import build_features

    ts = np.array(["2020-01-01T00:00:00"], dtype="datetime64[us]")
    tx = pd.DataFrame({"customer_id": ["x"], "ts": ts, "amount": [1.0]})
    ev = pd.DataFrame({"customer_id": ["x"], "ts": ts, "event_type": ["login"]})
    cols = build_features(tx, ev, None, as_of="2020-01-02").columns
    return [*cols, "days_since_signup"]


# ---- micro-batching -------------------------------------------------------------------------
@dataclass
class _Pending:
    customers: Sequence[CustomerIn]
    future: asyncio.Future[list[dict[str, Any]]]


def _limit_threads() -> None:
    """One OpenMP thread per worker thread: LightGBM's thread spin costs more than it gives."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # pragma: no cover - threadpoolctl missing or unsupported
        pass


class MicroBatcher:
    """Merge concurrent requests into one feature query and one model call.

    Requests queue while a batch runs; when it finishes, everything queued
    (up to ``max_customers``) becomes the next batch, so an idle service
    answers at once and a busy one amortises the per-batch cost. Work runs on
    one dedicated thread, keeping the event loop free to accept requests.

    Parameters
    ----------
    score : callable
        ``score(customers, now) -> list of prediction dicts`` (one per customer).
    max_customers : int
        Most customers in one batch.
    max_wait_ms : float
        Extra time to wait for more requests once the first arrives (0 = none).
    """

    def __init__(
        self,
        score: Callable[[Sequence[CustomerIn], datetime], list[dict[str, Any]]],
        *,
        max_customers: int = 256,
        max_wait_ms: float = 0.0,
    ) -> None:
        self._score = score
        self.max_customers = max_customers
        self.max_wait_ms = max_wait_ms
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="churnclv-batch", initializer=_limit_threads
        )
        self._queue: asyncio.Queue[_Pending] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.batched_customers = 0
        self.max_batch_seen = 0
        self.recent: collections.deque[tuple[int, float, float]] = collections.deque(maxlen=1000)
        self._last_ms = 0.0

    def _ensure_started(self) -> asyncio.Queue[_Pending]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None or self._task is None or self._task.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue))
        return self._queue

    async def submit(self, customers: Sequence[CustomerIn]) -> list[dict[str, Any]]:
        """Score ``customers`` (validated) within the next batch; same order out."""
        queue = self._ensure_started()
        fut: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        await queue.put(_Pending(customers, fut))
        return await fut

    async def _run(self, queue: asyncio.Queue[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await queue.get()
            batch = [first]
            size = len(first.customers)
            if self.max_wait_ms > 0:
                deadline = loop.time() + self.max_wait_ms / 1000
                while size < self.max_customers and (left := deadline - loop.time()) > 0:
                    try:
                        item = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        break
                    batch.append(item)
                    size += len(item.customers)
            while size < self.max_customers and not queue.empty():
                item = queue.get_nowait()
                batch.append(item)
                size += len(item.customers)
            await self._execute(loop, batch)

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]
        if not live:
            return
        merged, owners = _merge(live)
        now = _utcnow()
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self._timed, merged, now)
        except Exception:
            if len(live) == 1:
                exc_info = _current_exception()
                if not live[0].future.done():
                    live[0].future.set_exception(exc_info)
                return
            for p in live:  # isolate the request that failed; the others still get answers
                await self._execute(loop, [p])
            return
        self.batches += 1
        self.batched_customers += len(merged)
        self.max_batch_seen = max(self.max_batch_seen, len(merged))
        self.recent.append((len(merged), (time.perf_counter() - started) * 1000, self._last_ms))
        for p, (start, stop) in zip(live, owners, strict=True):
            if not p.future.done():
                p.future.set_result(results[start:stop])

    def _timed(self, customers: Sequence[CustomerIn], now: datetime) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        try:
            return self._score(customers, now)
        finally:
            self._last_ms = (time.perf_counter() - t0) * 1000

    def stats(self) -> dict[str, Any]:
        """Counters and the size and duration percentiles of the last 1,000 batches.

        ``batch_ms`` runs from hand-off to the worker thread until the results
        are back on the event loop; ``score_ms`` is the scoring call alone.
        """
        out: dict[str, Any] = {
            "batches": self.batches,
            "customers": self.batched_customers,
            "mean_batch": round(self.batched_customers / self.batches, 2) if self.batches else None,
            "max_batch": self.max_batch_seen,
        }
        if self.recent:
            arr = np.array(self.recent, dtype=float)
            for i, name in enumerate(("size", "batch_ms", "score_ms")):
                p50, p99 = np.percentile(arr[:, i], [50, 99])
                out[f"recent_{name}_p50"] = round(float(p50), 2)
                out[f"recent_{name}_p99"] = round(float(p99), 2)
        return out

    def close(self) -> None:
        """Stop the batching task and the worker thread."""
        if self._task is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._executor.shutdown(wait=False, cancel_futures=True)


def _current_exception() -> BaseException:
    import sys

    exc = sys.exc_info()[1]
    assert exc is not None
    return exc


def _merge(batch: list[_Pending]) -> tuple[list[CustomerIn], list[tuple[int, int]]]:
    """Concatenate the batch's customers; ``owners`` gives each request's slice."""
    merged: list[CustomerIn] = []
    owners: list[tuple[int, int]] = []
    for p in batch:
        start = len(merged)
        merged.extend(p.customers)
        owners.append((start, len(merged)))
    return merged, owners


# ---- the batch-scored snapshot --------------------------------------------------------------
class ScoresSnapshot:
    """``<workdir>/scores.parquet`` in memory, reloaded when its mtime changes.

    Parameters
    ----------
    path : path-like
        The Parquet file written by ``churnclv score`` / ``churnclv demo``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._mtime: float | None = None
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.loaded_at: float | None = None

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            self._mtime, self._rows = None, {}
            return
        if mtime == self._mtime:
            return
        frame = pd.read_parquet(self.path)
        rows: dict[str, dict[str, Any]] = {}
        for rec in frame.to_dict("records"):
            for k, v in rec.items():
                if isinstance(v, pd.Timestamp):
                    rec[k] = v.isoformat()
                elif isinstance(v, float) and math.isnan(v):
                    rec[k] = None
                elif isinstance(v, np.generic):
                    rec[k] = v.item()
            rows[str(rec["customer_id"])] = rec
        self._rows, self._mtime, self.loaded_at = rows, mtime, time.time()

    def available(self) -> bool:
        """Whether the snapshot file exists (after a refresh)."""
        with self._lock:
            self._refresh()
            return self._mtime is not None

    def lookup(self, customer_ids: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """The snapshot rows of ``customer_ids`` (request order) and the ids not found."""
        with self._lock:
            self._refresh()
            rows = self._rows
        found = [rows[c] for c in customer_ids if c in rows]
        missing = [c for c in customer_ids if c not in rows]
        return found, missing


# ---- service state --------------------------------------------------------------------------
def model_info(champion: Champion, tracking_uri: str) -> dict[str, Any]:
    """Registered versions, run ids, training window (run params and tags) and run metrics."""
    from mlflow import MlflowClient

    from churnclv.training import CHURN_MODEL, VALUE_MODEL

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    models: dict[str, Any] = {}
    for kind, name, version, run_id in (
        ("churn", CHURN_MODEL, champion.churn_version, champion.churn_run_id),
        ("value", VALUE_MODEL, champion.value_version, champion.value_run_id),
    ):
        run = client.get_run(run_id)
        tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        models[kind] = {
            "registered_model": name,
            "alias": "champion",
            "version": version,
            "run_id": run_id,
            "params": dict(run.data.params),
            "tags": tags,
            "metrics": {k: float(v) for k, v in sorted(run.data.metrics.items())},
        }
    return {
        "model_version": champion.model_version,
        "tracking_uri": _redact(tracking_uri),
        "churn_horizon_days": champion.churn_horizon_days,
        "value_horizon_days": champion.value_horizon_days,
        "training_window": {
            "as_of": models["churn"]["params"].get("as_of"),
            "data_window": models["churn"]["tags"].get("data_window"),
            "churn_validation_cutoff": models["churn"]["params"].get("churn_validation_cutoff"),
            "value_validation_cutoff": models["value"]["params"].get("value_validation_cutoff"),
        },
        "models": models,
    }


def _redact(uri: str) -> str:
    """A URI without credentials (``user:password@`` becomes ``***@``)."""
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


logger = logging.getLogger("bentoml.churnclv")


class ServingState:
    """Everything the service holds, loaded defensively: it never raises at start-up.

    Parameters
    ----------
    tracking_uri : str
        The MLflow URI the champion is loaded from (configuration only).
    workdir : path-like
        Holds ``scores.parquet`` (the ``/lookup`` snapshot).
    policy_path : path-like or None
        Decision policy YAML; ``None`` = the shipped default.
    """

    def __init__(
        self,
        tracking_uri: str,
        workdir: str | os.PathLike[str],
        policy_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.workdir = Path(workdir)
        self.policy_path = policy_path
        self.scorer: OnlineScorer | None = None
        self.batcher: MicroBatcher | None = None
        self.info: dict[str, Any] | None = None
        self.error: str | None = "not loaded yet"
        self.snapshot = ScoresSnapshot(self.workdir / "scores.parquet")
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="churnclv-rows", initializer=_limit_threads
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingState:
        """Configure from ``CHURNCLV_WORKDIR``, ``CHURNCLV_TRACKING_URI``, ``CHURNCLV_POLICY``."""
        from churnclv.training import tracking_uri_for

        env = os.environ if env is None else env
        workdir = Path(env.get("CHURNCLV_WORKDIR") or "churnclv-work").resolve()
        uri = tracking_uri_for(workdir, env.get("CHURNCLV_TRACKING_URI") or None)
        return cls(uri, workdir, env.get("CHURNCLV_POLICY") or None)

    @property
    def ready(self) -> bool:
        """Whether the champion and policy are loaded."""
        return self.scorer is not None

    def load(self) -> bool:
        """Load policy, champion and model info; on failure keep the reason in :attr:`error`.

        Logs only success: a failed attempt is the caller's to report, so a
        retry loop can say each distinct reason once.
        """
        from churnclv.decisions import load_policy
        from churnclv.training import load_champion

        try:
            policy = load_policy(self.policy_path)
            champion = load_champion(self.tracking_uri)
            scorer = OnlineScorer(champion, policy)
            info = model_info(champion, self.tracking_uri)
        except Exception as exc:  # the service must start and say why it is not ready
            self.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return False  # the caller logs (the service: once per distinct reason)
        self.scorer, self.info, self.error = scorer, info, None
        self.batcher = MicroBatcher(scorer.score_customers)
        logger.info(
            "churnclv: champion %s loaded from %s; snapshot %s",
            champion.model_version,
            _redact(self.tracking_uri),
            self.snapshot.path,
        )
        return True

    def not_ready_body(self) -> dict[str, Any]:
        """The 503 body of a prediction route before the champion is loaded."""
        return {"error": f"model not ready: {self.error}", "field": None}

    def close(self) -> None:
        """Stop the batcher and worker threads."""
        if self.batcher is not None:
            self.batcher.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.scorer is not None:
            self.scorer.session.close()
