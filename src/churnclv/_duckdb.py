"""Settings every DuckDB connection of the package gets."""

from __future__ import annotations

import contextlib

import duckdb

__all__ = ["prepare"]


def prepare(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Set ``con`` to UTC and without a progress bar; return it.

    DuckDB draws a progress bar on stdout for queries over two seconds, which
    would mix with the command line's own output. Where DuckDB cannot change
    that setting (in Jupyter without ipywidgets it refuses any change), the
    bar's default stays.

    Examples
    --------
    >>> import duckdb
    >>> con = prepare(duckdb.connect())
    >>> con.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    'UTC'
    """
    con.execute("SET TimeZone = 'UTC'")
    with contextlib.suppress(duckdb.Error):
        con.execute("SET enable_progress_bar = false")
    return con
