"""The optional ``category`` and ``channel`` columns of a transactions file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from churnclv._errors import InputError

if TYPE_CHECKING:
    from churnclv._io import ColumnMap, LoadReport

__all__ = ["breadth_select", "breadth_sources", "empty_note"]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def breadth_sources(cols: Sequence[str], cm: ColumnMap, path: object) -> dict[str, str]:
    """The source column of each breadth input the file has, by canonical name.

    A column named by ``cm.category_col`` / ``cm.channel_col`` must exist
    (InputError naming it, its flag and the columns found); an unnamed one is
    used when the file has a column of the canonical name.
    """
    out = {}
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
                f"transactions file {path}: column {source!r} (given with {flag}) not found; "
                f"columns found: {avail}"
            )
        out[canon] = source
    return out


def empty_note(name: str, source: str, canon: str) -> str:
    """The note for a breadth column without any value (it is then ignored)."""
    return (
        f"transactions {name}: column {source!r} ({canon}) has no values; "
        f"ignored (no {canon} features)"
    )


def breadth_select(
    con: duckdb.DuckDBPyConnection, cols: dict[str, str], cm: ColumnMap, p: Path, rep: LoadReport
) -> str:
    """Select-list entries (each led by ``, ``) mapping the file's breadth columns.

    Columns as :func:`breadth_sources` finds them; values become trimmed text,
    empty text null. A column without any value is left out, with a note in
    ``rep`` naming file and column (real exports often carry empty columns).
    """
    out = []
    for canon, source in breadth_sources(list(cols), cm, p).items():
        expr = f"nullif(trim(CAST({_q(source)} AS VARCHAR)), '')"
        row = con.execute(f"SELECT count({expr}) FROM src").fetchone()
        if row is None or row[0] == 0:
            rep.add(empty_note(p.name, source, canon))
            continue
        out.append(f", {expr} AS {canon}")
    return "".join(out)
