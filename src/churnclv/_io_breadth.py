"""The optional ``category`` and ``channel`` columns of a transactions file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from churnclv._errors import InputError

if TYPE_CHECKING:
    from churnclv._io import ColumnMap, LoadReport

__all__ = ["breadth_select"]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def breadth_select(
    con: duckdb.DuckDBPyConnection, cols: dict[str, str], cm: ColumnMap, p: Path, rep: LoadReport
) -> str:
    """Select-list entries (each led by ``, ``) mapping the file's breadth columns.

    A column named by ``cm.category_col`` / ``cm.channel_col`` must exist
    (InputError naming it and the columns found); an unnamed one is used when
    the file has a column of the canonical name. Values become trimmed text,
    empty text null. A column without any value is left out, with a note in
    ``rep`` naming file and column (real exports often carry empty columns).
    """
    out = []
    for canon, named, flag in (
        ("category", cm.category_col, "--category-col"),
        ("channel", cm.channel_col, "--channel-col"),
    ):
        source = named if named else (canon if canon in cols else None)
        if source is None:
            continue
        if source not in cols:
            avail = ", ".join(list(cols)[:20])
            raise InputError(
                f"transactions file {p}: column {source!r} (given with {flag}) not found; "
                f"columns found: {avail}"
            )
        expr = f"nullif(trim(CAST({_q(source)} AS VARCHAR)), '')"
        row = con.execute(f"SELECT count({expr}), count(*) FROM src").fetchone()
        if row is None or row[0] == 0:
            rep.add(
                f"transactions {p.name}: column {source!r} ({canon}) has no values; "
                f"ignored (no {canon} features)"
            )
            continue
        out.append(f", {expr} AS {canon}")
    return "".join(out)
