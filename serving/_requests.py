"""Request models and the validation the service does beyond pydantic (DESIGN §8).

Each rejected request raises :class:`RequestError`, which names the offending
JSON field and carries the HTTP status; nothing here imports BentoML.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from churnclv._errors import InputError
from churnclv.features._session import to_naive_utc
from churnclv.features._sql_breadth import BREADTH_COLUMNS
from churnclv.features._sql_events import is_value_feature

__all__ = [
    "DECISION_INPUTS",
    "MAX_CUSTOMERS",
    "MAX_FEATURE_ROWS",
    "MAX_LOOKUP_IDS",
    "MAX_ROWS_PER_CUSTOMER",
    "CustomerIn",
    "EventIn",
    "RequestError",
    "TransactionIn",
    "feature_rows_frame",
    "to_naive_utc",
    "utcnow",
    "validate_customers",
]

MAX_CUSTOMERS = 1_000
MAX_ROWS_PER_CUSTOMER = 10_000
MAX_FEATURE_ROWS = 10_000
MAX_LOOKUP_IDS = 10_000
#: Columns :func:`churnclv.decisions.decide` reads besides the predictions.
DECISION_INPUTS = ("recency_days", "tenure_days", "gap_mean_days", "frequency", "monetary_total")


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
    """One purchase (amount > 0) or return (amount < 0), with its optional product
    ``category`` and sales ``channel`` (breadth and channel-mix features)."""

    model_config = ConfigDict(extra="ignore")
    ts: datetime
    amount: float
    category: Annotated[str | None, Field(max_length=128)] = None
    channel: Annotated[str | None, Field(max_length=64)] = None


class EventIn(BaseModel):
    """One engagement event (login, session, page_view, email_open, support_ticket, nps, ...)
    with an optional numeric ``value`` (a survey score, session minutes)."""

    model_config = ConfigDict(extra="ignore")
    ts: datetime
    event_type: Annotated[str, Field(min_length=1, max_length=64)]
    value: Annotated[float, Field(allow_inf_nan=False)] | None = None


class CustomerIn(BaseModel):
    """One customer's history up to ``as_of`` (default: the moment it is scored, UTC).

    The body of one customer in ``POST /predict``: at least one transaction
    (``ts``, ``amount``; negative amounts are returns), optional engagement
    ``events`` (``ts``, ``event_type``, optional ``value``), ``signup_ts`` and static
    ``attributes``.

    Examples
    --------
    >>> from churnclv import CustomerIn
    >>> c = CustomerIn(
    ...     customer_id="C1",
    ...     as_of="2024-01-01",
    ...     transactions=[{"ts": "2023-05-01", "amount": 42.0}, {"ts": "2023-11-20", "amount": -5}],
    ...     events=[{"ts": "2023-12-20", "event_type": "login"}],
    ...     attributes={"plan": "basic"},
    ... )
    >>> c.as_of.date(), [t.amount for t in c.transactions], c.events[0].event_type
    (datetime.date(2024, 1, 1), [42.0, -5.0], 'login')
    """

    model_config = ConfigDict(extra="forbid")
    customer_id: Annotated[str, Field(min_length=1, max_length=256)]
    as_of: datetime | None = None
    transactions: Annotated[list[TransactionIn], Field(min_length=1)]
    events: list[EventIn] = Field(default_factory=list)
    signup_ts: datetime | None = None
    attributes: dict[str, str | float | int | bool | None] = Field(default_factory=dict)


def _check_size(n: int, limit: int, field: str, one: str) -> None:
    """A 422 for an empty ``field`` list, a 413 past ``limit`` items."""
    if not n:
        raise RequestError(f"{field} must hold at least one {one}", field=field)
    if n > limit:
        raise RequestError(f"at most {limit} {field} per request, got {n}", field=field, status=413)


def utcnow() -> datetime:
    """The current time as a naive UTC datetime (the default ``as_of``)."""
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

    Examples
    --------
    >>> from churnclv import CustomerIn, validate_customers
    >>> ok = CustomerIn(customer_id="C1", as_of="2024-01-01",
    ...                 transactions=[{"ts": "2023-05-01", "amount": 42.0}])
    >>> validate_customers([ok])  # nothing to say
    >>> late = CustomerIn(customer_id="C2", as_of="2024-01-01",
    ...                   transactions=[{"ts": "2024-02-01", "amount": 5.0}])
    >>> try:
    ...     validate_customers([ok, late])
    ... except Exception as error:
    ...     print(error.status, error.field)
    422 customers[1].transactions[0].ts
    """
    _check_size(len(customers), MAX_CUSTOMERS, "customers", "customer")
    now = now or utcnow()
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


#: Feature columns a row may leave out (the category and channel breadth features).
_OPTIONAL_FEATURES = frozenset(c for cols in BREADTH_COLUMNS.values() for c in cols)


def feature_rows_frame(
    rows: Sequence[Mapping[str, Any]],
    required_columns: Sequence[str],
    categorical: Collection[str],
    now: datetime | None = None,
) -> pd.DataFrame:
    """Validate precomputed feature rows and build the model's input frame.

    ``required_columns`` are the columns the models and decisions read
    (event-value features may be left out: null);
    those in ``categorical`` are kept as strings, the others must be numbers
    or null. A missing ``as_of`` is ``now`` (default: the current UTC time);
    missing breadth columns (``n_categories``, ...) are null.

    Raises
    ------
    RequestError
        Missing required columns (all named), non-numeric values in numeric
        columns (column and row named), or too many rows.
    """
    _check_size(len(rows), MAX_FEATURE_ROWS, "rows", "row")
    frame = pd.DataFrame.from_records(list(rows))
    for col in required_columns:  # breadth features are optional: missing (NaN) when absent
        if col in _OPTIONAL_FEATURES and col not in frame.columns:
            frame[col] = np.nan
    absent = [c for c in required_columns if c not in frame.columns and is_value_feature(c)]
    if absent:  # feature rows without event values: null, as for a customer without any
        frame = frame.assign(**dict.fromkeys(absent, np.nan))
    need = ["customer_id", *required_columns]
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
        raise RequestError("customer_id must be a non-empty string", field=f"rows[{i}].customer_id")
    frame["customer_id"] = ids.astype("str")
    for col in required_columns:
        if col in categorical:
            s = frame[col]
            frame[col] = pd.array([None if v is None else str(v) for v in s], dtype="str")
            continue
        raw = frame[col]
        # A column pandas built as int or float holds JSON numbers (and None as NaN) only;
        # anything else (strings, booleans, lists, mixtures) arrives as object or bool and
        # is checked value by value (a per-value check of every column would be slow).
        if raw.dtype.kind not in "iuf":
            bad = raw.map(
                lambda v: v is not None and (isinstance(v, bool) or not isinstance(v, int | float))
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
            as_of = pd.to_datetime(frame["as_of"].fillna(pd.Timestamp(now or utcnow())), utc=True)
        except (ValueError, TypeError):
            raise RequestError(
                "as_of must be ISO dates or timestamps", field="rows[].as_of"
            ) from None
        frame["as_of"] = as_of.dt.tz_convert(None).astype("datetime64[us]")
    else:
        frame["as_of"] = pd.Timestamp(now or utcnow()).as_unit("us")
    return frame
