"""The few SQL primitives that differ between the DuckDB and Spark dialects.

Everything else in :mod:`churnclv.features._sql` is written once in the
common subset of both dialects (``FILTER (WHERE ...)`` on aggregates,
``count(DISTINCT ...)``, ``cume_dist``, ``greatest``, ``coalesce``, ``ceil``,
``floor``, ``lag``), so one definition renders both texts.
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
        ``"duckdb"`` or ``"spark"``.
    epoch_template : str
        Epoch seconds (DOUBLE, sub-second precision kept) of a naive UTC
        timestamp; ``{}`` is replaced by the expression.
    quote : str
        The identifier quote character.
    """

    name: str
    epoch_template: str
    quote: str

    def epoch(self, expr: str) -> str:
        """Epoch seconds (DOUBLE) of the timestamp expression ``expr``."""
        return self.epoch_template.format(expr)

    def ident(self, name: str) -> str:
        """``name`` quoted as an identifier."""
        q = self.quote
        return q + name.replace(q, q + q) + q


DIALECTS: dict[str, Dialect] = {
    # epoch(ts) = microseconds / 1e6 as DOUBLE in DuckDB; the Spark text computes
    # exactly the same double (BIGINT micros divided by the DOUBLE literal 1e6).
    "duckdb": Dialect("duckdb", "epoch({})", '"'),
    "spark": Dialect("spark", "(unix_micros({}) / 1e6)", "`"),
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
