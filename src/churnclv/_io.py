"""The input data contract (DESIGN §3): read, map, validate and report.

Tables are read through DuckDB (CSV, Parquet or anything DuckDB reads; CSV
encodings, separators, decimal commas and date formats in :mod:`churnclv._io_csv`), their
columns mapped to the canonical names by a :class:`ColumnMap`, and validated at
the boundary. Every problem a user can cause becomes an :class:`InputError`
whose one-line message names the file, the column and a sample of offending
values. Outputs are written with :func:`atomic_write_parquet`, so a failed run
never leaves a partial file behind.

The module is over ~500 lines on purpose: the three loaders share one
validation vocabulary (column checks, samples of offending values, notes), and
splitting them would scatter the contract a user reads in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from churnclv import _io_csv
from churnclv._as_of import check_as_of
from churnclv._atomic import atomic_write, atomic_write_parquet
from churnclv._duckdb import prepare
from churnclv._errors import InputError
from churnclv._io_values import decimal_hint, event_value_select

__all__ = [
    "ColumnMap",
    "InputTables",
    "LoadReport",
    "atomic_write",
    "atomic_write_parquet",
    "check_as_of",
    "load_customers",
    "load_events",
    "load_inputs",
    "load_transactions",
]

_SAMPLE = 5


@dataclass(frozen=True)
class ColumnMap:
    """Names of the source columns that map onto the canonical ones.

    Parameters
    ----------
    customer_col, ts_col, amount_col, event_type_col : str
        Source column names for ``customer_id``, ``ts``, ``amount`` and
        ``event_type``.
    quantity_col, price_col : str or None
        When both are given, ``amount = quantity * price`` (e.g. invoice lines
        such as UCI Online Retail); ``amount_col`` is then ignored.
    no_amount : bool
        Histories without amounts (dates only): every row is a purchase worth 1.
    encoding : str or None
        Encoding of CSV files (any name Python knows, e.g. ``"gbk"``); ``None``
        reads UTF-8 and, when a file is not UTF-8, detects UTF-16 (byte-order
        mark), GBK/GB18030 or Latin-1 and says so in the :class:`LoadReport`.
    sep : str or None
        CSV separator: ``","``, ``";"``, ``"\\t"`` or ``"|"``; ``None`` sniffs it.
    decimal : str or None
        Decimal mark of CSV numbers: ``"."`` (``None``) or ``","`` (``1,5``).
    category_col, channel_col : str or None
        Source columns of the optional transactions ``category`` and
        ``channel`` (breadth features); ``None`` uses a column named
        ``category`` / ``channel`` when the file has one. A named column the
        file lacks is an error; a column with no value at all is ignored (a
        note says so).
    event_value_col : str or None
        Source column of the events' numeric ``value`` (e.g. a survey score);
        ``None`` uses a column named ``value`` when there is one.

    See Also
    --------
    load_inputs : Read tables through a column map.

    Examples
    --------
    Invoice lines whose columns carry other names (as in UCI Online Retail):

    >>> import pandas as pd
    >>> from churnclv import ColumnMap, load_inputs
    >>> pd.DataFrame(
    ...     {
    ...         "CustomerID": ["A", "A", "B"],
    ...         "InvoiceDate": ["2024-01-03", "2024-02-10", "2024-01-20"],
    ...         "Quantity": [2, 1, 3],
    ...         "UnitPrice": [5.0, 20.0, 1.5],
    ...     }
    ... ).to_csv("lines.csv", index=False)
    >>> columns = ColumnMap(
    ...     customer_col="CustomerID",
    ...     ts_col="InvoiceDate",
    ...     quantity_col="Quantity",
    ...     price_col="UnitPrice",
    ... )
    >>> load_inputs("lines.csv", columns=columns).transactions
      customer_id         ts  amount
    0           A 2024-01-03    10.0
    1           A 2024-02-10    20.0
    2           B 2024-01-20     4.5

    A Latin-1 export separated by ``;``, with day-first dates and decimal commas:

    >>> pd.DataFrame(
    ...     {"Kunde": ["Müller"], "Datum": ["13/1/2024 8:26"], "Betrag": ["1,5"]}
    ... ).to_csv("eu.csv", sep=";", index=False, encoding="latin-1")
    >>> columns = ColumnMap(customer_col="Kunde", ts_col="Datum", amount_col="Betrag", decimal=",")
    >>> load_inputs("eu.csv", columns=columns).transactions
      customer_id                  ts  amount
    0      Müller 2024-01-13 08:26:00     1.5
    """

    customer_col: str = "customer_id"
    ts_col: str = "ts"
    amount_col: str = "amount"
    event_type_col: str = "event_type"
    quantity_col: str | None = None
    price_col: str | None = None
    no_amount: bool = False
    encoding: str | None = None
    sep: str | None = None
    decimal: str | None = None
    category_col: str | None = None
    channel_col: str | None = None
    event_value_col: str | None = None

    def transaction_columns(self) -> dict[str, str]:
        """The source columns a transactions table needs, by canonical name."""
        needed = {"customer_id": self.customer_col, "ts": self.ts_col}
        if self.no_amount:
            return needed
        if self.quantity_col and self.price_col:
            return needed | {"quantity": self.quantity_col, "price": self.price_col}
        return needed | {"amount": self.amount_col}


@dataclass
class LoadReport:
    """What loading found and did: counts the CLI prints, never silently."""

    notes: list[str] = field(default_factory=list)

    def add(self, note: str) -> None:
        """Record one human-readable finding."""
        self.notes.append(note)


@dataclass(frozen=True)
class InputTables:
    """The canonical tables of one run.

    :func:`load_inputs` builds them from files; frames already in memory with the
    canonical column names can be wrapped directly (what :func:`churnclv.train`
    and :func:`churnclv.score` take).

    Attributes
    ----------
    transactions : pandas.DataFrame
        ``customer_id`` (str), ``ts`` (naive datetime64), ``amount``
        (float64; negative = return). Other columns are ignored.
    events : pandas.DataFrame or None
        ``customer_id``, ``ts``, ``event_type`` (str).
    customers : pandas.DataFrame or None
        ``customer_id``, optional ``signup_ts`` and static attributes.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv import InputTables
    >>> tx = pd.DataFrame(
    ...     {
    ...         "customer_id": ["A", "A", "B"],
    ...         "ts": pd.to_datetime(["2024-01-03", "2024-02-10", "2024-01-20"]),
    ...         "amount": [10.0, 20.0, 4.5],
    ...     }
    ... )
    >>> tables = InputTables(tx)
    >>> len(tables.transactions), tables.events, tables.customers
    (3, None, None)
    """

    transactions: pd.DataFrame
    events: pd.DataFrame | None = None
    customers: pd.DataFrame | None = None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _open(
    path: str | os.PathLike[str],
    what: str,
    cm: ColumnMap | None = None,
    report: LoadReport | None = None,
) -> tuple[duckdb.DuckDBPyConnection, Path]:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} file not found: {p}")
    if p.is_dir():
        raise InputError(f"{what} path is a directory, expected a file: {p}")
    if p.stat().st_size == 0:
        raise InputError(f"{what} file is empty: {p}")
    cm = cm or ColumnMap()
    rep = report if report is not None else LoadReport()
    con = prepare(duckdb.connect())
    try:
        if _io_csv.is_csv(p):
            n = _io_csv.read_csv(con, p, what, cm.encoding, cm.sep, rep.add)
        else:
            n = _io_csv.load_src(con, _io_csv.reader(p), "VIEW")
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{what} file {p} cannot be read: {first}") from None
    if n == 0:
        raise InputError(f"{what} file is empty (no data rows): {p}")
    return con, p


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute("DESCRIBE src").fetchall()
    return {r[0]: r[1] for r in rows}


def _require(cols: dict[str, str], needed: dict[str, str], p: Path, what: str) -> None:
    for role, name in needed.items():
        if name not in cols:
            avail = ", ".join(list(cols)[:20])
            raise InputError(
                f"{what} file {p}: missing required column {name!r} (for {role}); "
                f"columns found: {avail}"
            )


def _sample(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    return [repr(r[0]) for r in con.execute(sql + f" LIMIT {_SAMPLE}").fetchall()]


def _id_expr(col: str, ctype: str) -> str:
    if ctype in {"DOUBLE", "FLOAT", "REAL"} or ctype.startswith("DECIMAL"):
        # 17850.0 -> '17850' (float ids from spreadsheets); non-integral stay as they are
        return (
            f"CASE WHEN {col} = floor({col}) THEN CAST(CAST({col} AS BIGINT) AS VARCHAR) "
            f"ELSE CAST({col} AS VARCHAR) END"
        )
    return f"CAST({col} AS VARCHAR)"


def _check_ts(con: duckdb.DuckDBPyConnection, col: str, p: Path, what: str, name: str) -> str:
    missing = f"SELECT {col} FROM src WHERE {col} IS NULL"
    bad = _sample(con, f"{missing} OR TRY_CAST({col} AS TIMESTAMP) IS NULL")
    if not bad:
        return f"CAST({col} AS TIMESTAMP)"
    fmt = "" if _sample(con, missing) else _io_csv.ts_format(con, col, p, what, name)
    if fmt:
        return f"strptime(CAST({col} AS VARCHAR), {_io_csv.lit(fmt)})"
    raise InputError(
        f"{what} file {p}: column {name!r} has unparseable or missing timestamps, "
        f"e.g. {', '.join(bad)}"
    )


def _check_number(
    con: duckdb.DuckDBPyConnection, col: str, p: Path, what: str, name: str, decimal: str = "."
) -> str:
    text = f"CAST({col} AS VARCHAR)"
    source = f"replace({text}, ',', '.')" if decimal == "," else col
    num = f"TRY_CAST({source} AS DOUBLE)"
    bad = _sample(
        con,
        f"SELECT {col} FROM src WHERE {col} IS NULL OR {num} IS NULL "
        f"OR isnan({num}) OR isinf({num})",
    )
    if bad:
        raise InputError(
            f"{what} file {p}: column {name!r} has non-numeric or missing values, "
            f"e.g. {', '.join(bad)}{decimal_hint(bad, decimal)}"
        )
    return f"CAST({source} AS DOUBLE)"


def _finish(
    con: duckdb.DuckDBPyConnection,
    select: str,
    where: str,
    p: Path,
    what: str,
    report: LoadReport,
    *,
    arrow: bool = True,
) -> pd.DataFrame:
    """The validated rows of ``src`` as ``select``-ed where ``where`` holds, sorted.

    ``arrow`` fetches them through Arrow (about a third of the time of DuckDB's
    frame conversion on string ids); the customers table, whose attribute columns
    may be of any type, is fetched as a frame so nullable integers keep their dtype.
    """
    # Exact duplicates are judged on the source rows (every column), before mapping: two
    # invoice lines of one customer at one time with equal amounts are distinct rows.
    # One pipeline deduplicates, maps and sorts the kept rows; the rows without an id are
    # counted apart (few), so the distinct rows are never materialized.
    total = con.execute("SELECT count(*) FROM src").fetchall()[0][0]
    ordered = f"SELECT {select} FROM (SELECT DISTINCT * FROM src) WHERE {where} ORDER BY ALL"
    df = con.sql(ordered).to_arrow_table().to_pandas() if arrow else con.execute(ordered).df()
    kept = len(df)
    no_id = con.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT * FROM src WHERE NOT ({where}))"
    ).fetchall()[0][0]
    distinct = kept + no_id
    if total - distinct:
        report.add(f"{what} {p.name}: {total - distinct:,} exact duplicate rows dropped")
    if distinct - kept:
        report.add(f"{what} {p.name}: {distinct - kept:,} rows without a customer id skipped")
    if kept == 0:
        con.close()
        raise InputError(f"{what} file {p}: no rows with a customer id")
    con.close()
    return df


@dataclass
class Plan:
    """A validated input file, open: the canonical ``select`` of its ``src`` rows ``where`` kept.

    The loaders (:func:`load_transactions`, :func:`load_events`) fetch it into a
    frame; :func:`churnclv.scan_inputs` leaves the rows in the file.
    """

    con: duckdb.DuckDBPyConnection
    path: Path
    what: str
    select: str
    where: str


def note_amounts(report: LoadReport, p: Path, returns: int, zeros: int) -> None:
    """Report the kept return and zero-amount rows of a transactions file."""
    if returns:
        report.add(
            f"transactions {p.name}: {returns:,} return rows (negative amount, e.g. cancelled "
            "invoices) kept: they reduce monetary totals and net future value"
        )
    if zeros:
        report.add(
            f"transactions {p.name}: {zeros:,} zero-amount rows kept (they are not purchases)"
        )


def plan_transactions(
    path: str | os.PathLike[str], columns: ColumnMap | None, report: LoadReport
) -> Plan:
    """Open and validate a transactions file (see :func:`load_transactions`)."""
    cm = columns or ColumnMap()
    what = "transactions"
    try:
        dec = _io_csv.normalize_decimal(cm.decimal)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    con, p = _open(path, what, cm, report)
    cols = _columns(con)
    _require(cols, cm.transaction_columns(), p, what)
    cid = _q(cm.customer_col)
    ts = _check_ts(con, _q(cm.ts_col), p, what, cm.ts_col)
    if cm.no_amount:
        amount = "CAST(1.0 AS DOUBLE)"
    elif cm.quantity_col and cm.price_col:
        qty = _check_number(con, _q(cm.quantity_col), p, what, cm.quantity_col, dec)
        price = _check_number(con, _q(cm.price_col), p, what, cm.price_col, dec)
        amount = f"{qty} * {price}"
    else:
        amount = _check_number(con, _q(cm.amount_col), p, what, cm.amount_col, dec)
    select = (
        f"{_id_expr(cid, cols[cm.customer_col])} AS customer_id, {ts} AS ts, {amount} AS amount"
    )
    select += _breadth_select(con, cols, cm, p, report)
    return Plan(con, p, what, select, f"{cid} IS NOT NULL")


def load_transactions(
    path: str | os.PathLike[str], columns: ColumnMap | None = None, report: LoadReport | None = None
) -> pd.DataFrame:
    """Load and validate a transactions table.

    Parameters
    ----------
    path : path-like
        CSV or Parquet file.
    columns : ColumnMap, optional
        Source column names; defaults to the canonical names.
    report : LoadReport, optional
        Receives counts of skipped and duplicate rows.

    Returns
    -------
    pandas.DataFrame
        ``customer_id`` (str), ``ts`` (datetime64), ``amount`` (float64, negative
        for returns), plus ``order_id`` when present.

    Raises
    ------
    InputError
        Missing, empty or undecodable file, missing column, unparseable timestamp,
        non-numeric amount.
    """
    rep = report if report is not None else LoadReport()
    plan = plan_transactions(path, columns, rep)
    df = _finish(plan.con, plan.select, plan.where, plan.path, plan.what, rep)
    note_amounts(rep, plan.path, int((df["amount"] < 0).sum()), int((df["amount"] == 0).sum()))
    return df


def _breadth_select(
    con: duckdb.DuckDBPyConnection, cols: dict[str, str], cm: ColumnMap, p: Path, rep: LoadReport
) -> str:
    """``, <source> AS category, ...`` for the breadth columns the file has (see ColumnMap)."""
    from churnclv._io_breadth import breadth_select

    return breadth_select(con, cols, cm, p, rep)


def plan_events(
    path: str | os.PathLike[str], columns: ColumnMap | None, report: LoadReport
) -> Plan:
    """Open and validate an events file (see :func:`load_events`)."""
    cm = columns or ColumnMap()
    what = "events"
    con, p = _open(path, what, cm, report)
    cols = _columns(con)
    _require(
        cols,
        {"customer_id": cm.customer_col, "ts": cm.ts_col, "event_type": cm.event_type_col},
        p,
        what,
    )
    cid = _q(cm.customer_col)
    ts = _check_ts(con, _q(cm.ts_col), p, what, cm.ts_col)
    et = _q(cm.event_type_col)
    try:
        dec = _io_csv.normalize_decimal(cm.decimal)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    value = event_value_select(con, cm.event_value_col, cols, p, dec)
    bad = _sample(
        con, f"SELECT {et} FROM src WHERE {et} IS NULL OR trim(CAST({et} AS VARCHAR)) = ''"
    )
    if bad:
        raise InputError(f"{what} file {p}: column {cm.event_type_col!r} has empty values")
    select = (
        f"{_id_expr(cid, cols[cm.customer_col])} AS customer_id, {ts} AS ts, "
        f"lower(trim(CAST({et} AS VARCHAR))) AS event_type{value}"
    )
    return Plan(con, p, what, select, f"{cid} IS NOT NULL")


def load_events(
    path: str | os.PathLike[str], columns: ColumnMap | None = None, report: LoadReport | None = None
) -> pd.DataFrame:
    """Load and validate an engagement events table.

    Returns
    -------
    pandas.DataFrame
        ``customer_id`` (str), ``ts`` (datetime64), ``event_type`` (str, lower case)
        and ``value`` (float, null where an event has none) when the events carry
        one (:mod:`churnclv._io_values`).
    """
    rep = report if report is not None else LoadReport()
    plan = plan_events(path, columns, rep)
    return _finish(plan.con, plan.select, plan.where, plan.path, plan.what, rep)


def load_customers(
    path: str | os.PathLike[str], columns: ColumnMap | None = None, report: LoadReport | None = None
) -> pd.DataFrame:
    """Load and validate a customers table (id, optional ``signup_ts``, static attributes)."""
    cm = columns or ColumnMap()
    rep = report if report is not None else LoadReport()
    what = "customers"
    con, p = _open(path, what, cm, rep)
    cols = _columns(con)
    _require(cols, {"customer_id": cm.customer_col}, p, what)
    cid = _q(cm.customer_col)
    parts = [f"{_id_expr(cid, cols[cm.customer_col])} AS customer_id"]
    for name in cols:
        if name == cm.customer_col:
            continue
        if name == "signup_ts":
            parts.append(_check_ts(con, _q(name), p, what, name) + " AS signup_ts")
        else:
            parts.append(_q(name))
    df = _finish(con, ", ".join(parts), f"{cid} IS NOT NULL", p, what, rep, arrow=False)
    dup = df["customer_id"].duplicated()
    if dup.any():
        sample = ", ".join(repr(x) for x in df.loc[dup, "customer_id"].head(_SAMPLE))
        raise InputError(f"customers file {p}: customer_id is not unique, e.g. {sample}")
    return df


def load_inputs(
    transactions: str | os.PathLike[str],
    events: str | os.PathLike[str] | None = None,
    customers: str | os.PathLike[str] | None = None,
    columns: ColumnMap | None = None,
    report: LoadReport | None = None,
) -> InputTables:
    """Load the transactions and the optional events and customers tables.

    Each file (CSV or Parquet) is read through DuckDB, its columns are renamed
    by ``columns`` and validated: ids, timestamps and amounts must parse, and
    every problem raises :class:`~churnclv.InputError` with a one-line message
    naming the file, the column and a sample of offending values.

    Parameters
    ----------
    transactions : str or path-like
        Transactions file: customer id, timestamp, amount.
    events : str or path-like, optional
        Engagement events file: customer id, timestamp, event type.
    customers : str or path-like, optional
        Customers file: customer id, optional ``signup_ts``, static attributes.
    columns : ColumnMap, optional
        Source column names and CSV options (encoding, separator, decimal
        mark); default: the canonical names, UTF-8 or detected encoding,
        sniffed separator, ``.`` decimals.
    report : LoadReport, optional
        Collects what loading found (rows without a customer id, exact
        duplicates, returns, a detected encoding) for the caller to print.

    Returns
    -------
    InputTables
        The canonical tables.

    Raises
    ------
    InputError
        A missing, empty or unreadable file, a missing column or invalid values.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv import InputError, load_inputs
    >>> pd.DataFrame(
    ...     {
    ...         "customer_id": ["A", "A", "B"],
    ...         "ts": ["2024-01-03", "2024-02-10", "2024-01-20"],
    ...         "amount": [10.0, -2.5, 4.5],
    ...     }
    ... ).to_csv("transactions.csv", index=False)
    >>> tables = load_inputs("transactions.csv")
    >>> tables.transactions.dtypes.astype(str).to_dict()
    {'customer_id': 'str', 'ts': 'datetime64[us]', 'amount': 'float64'}
    >>> try:
    ...     load_inputs("nowhere.csv")
    ... except InputError as err:
    ...     print(err)
    transactions file not found: nowhere.csv
    """
    from churnclv._pages import ordinary_pages

    with ordinary_pages():  # large columns, each touched once: see _pages
        return InputTables(
            transactions=load_transactions(transactions, columns, report),
            events=load_events(events, columns, report) if events else None,
            customers=load_customers(customers, columns, report) if customers else None,
        )
