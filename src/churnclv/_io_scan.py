"""Validated input files that stay files: :func:`scan_inputs` and :class:`Scan`.

:func:`~churnclv.load_inputs` reads every row into pandas, deduplicated and
sorted. A batch of a million customers spends more time there (and in
handing the frames back to DuckDB) than in computing their features.
:func:`scan_inputs` runs the same validation on the file (the same checks,
messages and :class:`~churnclv.LoadReport` notes) and returns, for
transactions and events, a :class:`Scan`: the SQL that reads the canonical
rows from the file. :func:`churnclv.features.build_features` and
:func:`churnclv.score` run it inside their own DuckDB query, so the rows never
become pandas objects.

Exact duplicate rows are found without materializing the distinct rows:
one pass computes a 64-bit hash of every row, and sorting the hashes shows
whether any two are equal (a hash collision can only make rows look
duplicated, never hide a duplicate). Only then are the rows counted exactly,
and the scan reads them through ``SELECT DISTINCT``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from churnclv import _io_csv
from churnclv._duckdb import prepare
from churnclv._errors import InputError
from churnclv._io import (
    ColumnMap,
    InputTables,
    LoadReport,
    Plan,
    load_customers,
    note_amounts,
    plan_events,
    plan_transactions,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["InputScans", "Scan", "scan_inputs"]

#: File suffixes a scan reads in place (others are loaded into frames).
SCANNABLE_SUFFIXES = (".parquet", ".pq")
#: Inputs up to this many rows look for duplicate hashes by sorting them in memory (8 bytes a
#: row); larger ones count distinct hashes in DuckDB, which spills to disk.
SORT_MAX_ROWS = 100_000_000


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Scan:
    """The canonical rows of one validated input file, as SQL DuckDB runs in place.

    Attributes
    ----------
    what : str
        ``"transactions"`` or ``"events"``.
    path : pathlib.Path
        The file.
    source : str
        The table function reading it (``read_parquet('...')``).
    select : str
        The canonical columns, as select expressions over the file's columns.
    where : str
        Which rows are kept (those with a customer id).
    distinct : bool
        Whether the file holds exact duplicate rows (then read once each).
    columns : tuple of str
        The canonical column names ``select`` gives, in order.
    first_ts, first_purchase : pandas.Timestamp or None
        The earliest timestamp, and the earliest with ``amount > 0``
        (transactions only; :func:`churnclv.check_as_of` reads them).

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv import scan_inputs
    >>> pd.DataFrame(
    ...     {
    ...         "customer_id": ["A", None],
    ...         "ts": pd.to_datetime(["2024-01-03", "2024-01-04"]),
    ...         "amount": [5.0, 1.0],
    ...     }
    ... ).to_parquet("one.parquet")
    >>> scan = scan_inputs("one.parquet").transactions
    >>> print(scan.sql())  # doctest: +ELLIPSIS
    SELECT CAST("customer_id" AS VARCHAR) AS customer_id, ... WHERE "customer_id" IS NOT NULL
    >>> scan.first_purchase
    Timestamp('2024-01-03 00:00:00')
    """

    what: str
    path: Path
    source: str
    select: str
    where: str
    distinct: bool
    columns: tuple[str, ...]
    first_ts: pd.Timestamp | None = None
    first_purchase: pd.Timestamp | None = None
    keep: tuple[str, ...] | None = None

    def sql(self) -> str:
        """The query giving the kept canonical rows (columns :attr:`keep` when projected)."""
        rows = f"(SELECT DISTINCT * FROM {self.source})" if self.distinct else self.source
        query = f"SELECT {self.select} FROM {rows} WHERE {self.where}"
        if self.keep is None:
            return query
        return f"SELECT {', '.join(_q(c) for c in self.keep)} FROM ({query})"

    @property
    def names(self) -> tuple[str, ...]:
        """The columns :meth:`sql` gives."""
        return self.columns if self.keep is None else self.keep

    def project(self, columns: Sequence[str]) -> Scan:
        """The same rows with only ``columns`` (canonical names this scan has)."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise InputError(f"{self.what} file {self.path} lacks columns {', '.join(missing)}")
        return replace(self, keep=tuple(columns))

    def with_null(self, column: str, sql_type: str = "DOUBLE") -> Scan:
        """The same rows plus ``column``, null everywhere (e.g. events without a ``value``)."""
        if column in self.columns:
            return self
        select = f"{self.select}, CAST(NULL AS {sql_type}) AS {_q(column)}"
        keep = None if self.keep is None else (*self.keep, column)
        return replace(self, select=select, columns=(*self.columns, column), keep=keep)

    def frame(self) -> pd.DataFrame:
        """The rows in pandas, as :func:`~churnclv.load_inputs` gives them (sorted)."""
        con = prepare(duckdb.connect())
        try:
            return con.sql(f"{self.sql()} ORDER BY ALL").to_arrow_table().to_pandas()
        finally:
            con.close()


@dataclass(frozen=True)
class InputScans:
    """The input tables of one run as validated files (:func:`scan_inputs`).

    :func:`churnclv.score` and :func:`churnclv.features.build_features` take it
    where they take :class:`~churnclv.InputTables`.

    Attributes
    ----------
    transactions, events : Scan or pandas.DataFrame
        A :class:`Scan` of a Parquet file; a frame when the file is another
        format (CSV is loaded as :func:`~churnclv.load_inputs` loads it).
    customers : pandas.DataFrame or None
        Loaded into pandas (one row per customer; its ids are checked unique).

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv import scan_inputs
    >>> pd.DataFrame(
    ...     {"customer_id": ["A"], "ts": pd.to_datetime(["2024-01-03"]), "amount": [5.0]}
    ... ).to_parquet("tx.parquet")
    >>> customers = pd.DataFrame({"customer_id": ["A"], "region": ["north"]})
    >>> customers.to_csv("customers.csv", index=False)
    >>> tables = scan_inputs("tx.parquet", customers="customers.csv")
    >>> type(tables.transactions).__name__, tables.customers.shape
    ('Scan', (1, 2))
    >>> tables.to_tables().transactions.shape
    (1, 3)
    """

    transactions: Scan | pd.DataFrame
    events: Scan | pd.DataFrame | None = None
    customers: pd.DataFrame | None = None

    def to_tables(self) -> InputTables:
        """The same tables as pandas frames (for the engines that need frames)."""
        return InputTables(
            _as_frame(self.transactions),
            None if self.events is None else _as_frame(self.events),
            self.customers,
        )


def _as_frame(value: Scan | pd.DataFrame) -> pd.DataFrame:
    return value.frame() if isinstance(value, Scan) else value


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> list[int]:
    row = con.execute(sql).fetchone()
    return [0 if v is None else int(v) for v in (row or ())]


def _hashes_repeat(con: duckdb.DuckDBPyConnection, row: str, where: str, n: int) -> bool:
    """Whether two of the ``n`` rows of ``src`` where ``where`` holds share the hash ``row``.

    Up to :data:`SORT_MAX_ROWS` rows, the hashes are sorted in numpy (in four
    parts by their top two bits, on one thread per core): a fraction of the
    time of DuckDB's distinct count, which larger inputs use because it spills.
    """
    if n > SORT_MAX_ROWS:
        (distinct,) = _count(con, f"SELECT count(DISTINCT {row}) FROM src WHERE {where}")
        return distinct < n
    hashes = con.execute(f"SELECT {row} AS h FROM src WHERE {where}").fetchnumpy()["h"]
    top = np.asarray(hashes, dtype=np.uint64) >> np.uint64(62)
    parts = [hashes[top == k] for k in range(4)]

    def repeats(part: np.ndarray) -> bool:
        part.sort()
        return bool((part[1:] == part[:-1]).any())

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return any(pool.map(repeats, parts))


def _distinct_rows(con: duckdb.DuckDBPyConnection, row: str, where: str, n: int) -> int:
    """How many of the ``n`` rows of ``src`` where ``where`` holds are distinct.

    No two rows sharing a hash proves them distinct; otherwise (duplicates, or
    a hash collision) the distinct rows are counted exactly.
    """
    if n < 2 or not _hashes_repeat(con, row, where, n):
        return n
    return _count(con, f"SELECT count(*) FROM (SELECT DISTINCT * FROM src WHERE {where})")[0]


def _scan(plan: Plan, report: LoadReport) -> Scan:
    """The :class:`Scan` of an open, validated file; reports duplicates and rows without id."""
    con, p, what, where = plan.con, plan.path, plan.what, plan.where
    try:
        names = [r[0] for r in con.execute("DESCRIBE src").fetchall()]
        row = f"hash({', '.join(_q(n) for n in names)})"
        total, no_id = _count(
            con, f"SELECT count(*), count(*) FILTER (WHERE NOT ({where})) FROM src"
        )
        kept = _distinct_rows(con, row, where, total - no_id)
        distinct_no_id = _distinct_rows(con, row, f"NOT ({where})", no_id)
        if total - kept - distinct_no_id:
            report.add(
                f"{what} {p.name}: {total - kept - distinct_no_id:,} exact duplicate rows dropped"
            )
        if distinct_no_id:
            report.add(f"{what} {p.name}: {distinct_no_id:,} rows without a customer id skipped")
        if kept == 0:
            raise InputError(f"{what} file {p}: no rows with a customer id")
        columns = tuple(
            r[0] for r in con.execute(f"DESCRIBE SELECT {plan.select} FROM src").fetchall()
        )
        scan = Scan(
            what,
            p,
            _io_csv.reader(p.resolve()),
            plan.select,
            where,
            distinct=kept < total - no_id,
            columns=columns,
        )
        if what == "transactions":
            scan = _with_amount_notes(con, scan, report)
        return scan
    finally:
        con.close()


def _with_amount_notes(con: duckdb.DuckDBPyConnection, scan: Scan, report: LoadReport) -> Scan:
    """Report returns and zero amounts; record the first timestamp and first purchase."""
    row = con.execute(
        "SELECT count(*) FILTER (WHERE amount < 0), count(*) FILTER (WHERE amount = 0), "
        f"min(ts), min(ts) FILTER (WHERE amount > 0) FROM ({scan.sql()})"
    ).fetchone()
    assert row is not None  # an aggregate always gives one row
    note_amounts(report, scan.path, int(row[0]), int(row[1]))
    first = None if row[2] is None else pd.Timestamp(row[2])
    purchase = None if row[3] is None else pd.Timestamp(row[3])
    return replace(scan, first_ts=first, first_purchase=purchase)


def _scannable(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in SCANNABLE_SUFFIXES and Path(path).is_file()


def scan_inputs(
    transactions: str | os.PathLike[str],
    events: str | os.PathLike[str] | None = None,
    customers: str | os.PathLike[str] | None = None,
    columns: ColumnMap | None = None,
    report: LoadReport | None = None,
) -> InputScans:
    """Validate the input files as :func:`~churnclv.load_inputs` does, leaving the rows in them.

    Parquet transactions and events become :class:`Scan` objects: the
    validated, mapped query over the file, which the feature engine runs in
    place (the lowest time and memory for large batches). Other formats, and
    the customers table, are loaded into frames.

    Parameters
    ----------
    transactions, events, customers, columns, report
        As for :func:`~churnclv.load_inputs`: the same checks raise the same
        :class:`~churnclv.InputError` messages and add the same notes.

    Returns
    -------
    InputScans
        The tables, for :func:`churnclv.score` and
        :func:`churnclv.features.build_features`.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv import scan_inputs
    >>> pd.DataFrame(
    ...     {
    ...         "customer_id": ["A", "A", "A", "B"],
    ...         "ts": pd.to_datetime(["2024-01-03", "2024-02-10", "2024-02-10", "2024-01-20"]),
    ...         "amount": [10.0, -2.5, -2.5, 4.5],
    ...     }
    ... ).to_parquet("tx.parquet")
    >>> tables = scan_inputs("tx.parquet")
    >>> tables.transactions.columns, tables.transactions.distinct
    (('customer_id', 'ts', 'amount'), True)
    >>> tables.transactions.frame()
      customer_id         ts  amount
    0           A 2024-01-03    10.0
    1           A 2024-02-10    -2.5
    2           B 2024-01-20     4.5
    """
    from churnclv._io import load_events, load_transactions
    from churnclv._pages import ordinary_pages

    rep = report if report is not None else LoadReport()
    with ordinary_pages():
        tx: Scan | pd.DataFrame = (
            _scan(plan_transactions(transactions, columns, rep), rep)
            if _scannable(transactions)
            else load_transactions(transactions, columns, rep)
        )
        ev: Scan | pd.DataFrame | None = None
        if events is not None:
            ev = (
                _scan(plan_events(events, columns, rep), rep)
                if _scannable(events)
                else load_events(events, columns, rep)
            )
        cu = load_customers(customers, columns, rep) if customers else None
    return InputScans(tx, ev, cu)
