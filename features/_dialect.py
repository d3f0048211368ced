"""The few SQL primitives that differ between the DuckDB, Spark and SQLite dialects.

Everything else in :mod:`churnclv.features._sql` is written once in the
common subset of the dialects (``FILTER (WHERE ...)`` on aggregates,
``cume_dist``, ``coalesce``, ``ceil``, ``floor``, ``lag``, ``sqrt``), so one
definition renders every text. SQLite stores timestamps as epoch seconds
(REAL) already, so its epoch is the column itself.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DIALECTS", "Dialect", "get_dialect"]


@dataclass(frozen=True)
class Dialect:
    """How one SQL dialect spells the primitives the definition needs.

    Parameters
    ----------
    name : str
        ``"duckdb"``, ``"spark"`` or ``"sqlite"``.
    epoch_template : str
        Epoch seconds (DOUBLE, sub-second precision kept) of a naive UTC
        timestamp; ``{}`` is replaced by the expression.
    quote : str
        The identifier quote character.
    greatest_function : str
        The two-argument maximum (``greatest``; SQLite's scalar ``max``).
    """

    name: str
    epoch_template: str
    quote: str
    greatest_function: str = "greatest"

    def epoch(self, expr: str) -> str:
        """Epoch seconds (DOUBLE) of the timestamp expression ``expr``."""
        return self.epoch_template.format(expr)

    def greatest(self, a: str, b: str) -> str:
        """The larger of two expressions."""
        return f"{self.greatest_function}({a}, {b})"

    def ident(self, name: str) -> str:
        """``name`` quoted as an identifier."""
        q = self.quote
        return q + name.replace(q, q + q) + q


DIALECTS: dict[str, Dialect] = {
    # epoch(ts) = microseconds / 1e6 as DOUBLE in DuckDB; the Spark text computes
    # exactly the same double (BIGINT micros divided by the DOUBLE literal 1e6).
    "duckdb": Dialect("duckdb", "epoch({})", '"'),
    "spark": Dialect("spark", "(unix_micros({}) / 1e6)", "`"),
    # The SQLite runner (features/_sqlite.py) loads timestamps as exactly that double.
    "sqlite": Dialect("sqlite", "{}", '"', greatest_function="max"),
}


def get_dialect(name: str) -> Dialect:
    """The :class:`Dialect` called ``name``.

    Raises
    ------
    ValueError
        When ``name`` is not a known dialect.
    """
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown SQL dialect {name!r}; known: {', '.join(DIALECTS)}") from None
