"""The optional numeric ``value`` column of an events table (DESIGN §3, §13).

A survey score, an NPS answer or session minutes: events may carry a number.
The column is the one named by ``ColumnMap.event_value_col`` (``--event-value-col``),
else a column called ``value`` when the file has one. Missing values are fine
(most events carry none); a value that is present but not a finite number is an
:class:`~churnclv.InputError` naming the file, the column and a sample.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from churnclv._errors import InputError


def decimal_hint(bad: list[str], decimal: str) -> str:
    """A hint to pass ``--decimal ,`` when the bad values (quoted reprs) look like ``'1,5'``."""
    comma = decimal == "." and any(re.fullmatch(r"'-?\d*,\d+'", b) for b in bad)
    return " (decimal commas? use --decimal ,)" if comma else ""


__all__ = ["decimal_hint", "event_value_select", "missing_value_column", "non_numeric_values"]

_SAMPLE = 5


def missing_value_column(path: object, name: str, columns: list[str]) -> InputError:
    """The error for a ``--event-value-col`` the events file lacks."""
    return InputError(
        f"events file {path}: missing column {name!r} (for value, --event-value-col); "
        f"columns found: {', '.join(columns[:20])}"
    )


def non_numeric_values(path: object, name: str, values: list[object], decimal: str) -> InputError:
    """The error for event values that are present but not finite numbers (a sample)."""
    bad = [repr(v) for v in values]
    return InputError(
        f"events file {path}: column {name!r} (event value) has non-numeric values, "
        f"e.g. {', '.join(bad)}{decimal_hint(bad, decimal)}; leave a value empty when an "
        "event has none"
    )


def event_value_select(
    con: duckdb.DuckDBPyConnection,
    name: str | None,
    columns: dict[str, str],
    p: Path,
    decimal: str = ".",
) -> str:
    """The select item of the canonical ``value`` column (``""`` when the events have none).

    ``name`` is the mapped source column (None: ``value`` when present);
    ``columns`` the source columns and their types.
    """
    if name is None:
        if "value" not in columns:
            return ""
        name = "value"
    if name not in columns:
        raise missing_value_column(p, name, list(columns))
    col = '"' + name.replace('"', '""') + '"'
    text = f"trim(CAST({col} AS VARCHAR))"
    source = f"replace({text}, ',', '.')" if decimal == "," else text
    num = f"TRY_CAST(nullif({source}, '') AS DOUBLE)"
    rows = con.execute(
        f"SELECT DISTINCT {col} FROM src WHERE {col} IS NOT NULL AND {text} <> '' "
        f"AND ({num} IS NULL OR isnan({num}) OR isinf({num})) LIMIT {_SAMPLE}"
    ).fetchall()
    if rows:
        raise non_numeric_values(p, name, [r[0] for r in rows], decimal)
    return f", {num} AS value"
