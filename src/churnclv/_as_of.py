"""The cutoff check every verb runs: some purchase must lie before ``as_of``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pandas as pd

from churnclv._errors import InputError

if TYPE_CHECKING:
    from churnclv._io_scan import Scan

__all__ = ["check_as_of"]


def _first_times(transactions: pd.DataFrame | Scan) -> tuple[object, pd.Timestamp | None]:
    """The first timestamp and the first purchase's (``None`` without a purchase)."""
    if not isinstance(transactions, pd.DataFrame):
        return transactions.first_ts, transactions.first_purchase
    purchases = transactions.loc[transactions["amount"] > 0, "ts"]
    first = None if purchases.empty else pd.Timestamp(purchases.min())
    return transactions["ts"].min(), first


def check_as_of(
    transactions: pd.DataFrame | Scan,
    as_of: pd.Timestamp | str,
    *,
    source: str | os.PathLike[str] | None = None,
) -> None:
    """Check that some purchase (``amount > 0``) lies before ``as_of``.

    Parameters
    ----------
    transactions : pandas.DataFrame or Scan
        ``ts`` and ``amount`` columns (the canonical transactions), or their
        :class:`~churnclv.Scan` (:func:`~churnclv.scan_inputs` recorded both times).
    as_of : timestamp or str
        The cutoff.
    source : str or path, optional
        The transactions file; the message then names it and the column.

    Raises
    ------
    InputError
        When no purchase is before ``as_of`` (the message gives the first one).

    Examples
    --------
    >>> import pandas as pd
    >>> tx = pd.DataFrame({"ts": pd.to_datetime(["2024-03-01"]), "amount": [5.0]})
    >>> check_as_of(tx, "2024-06-01")
    >>> check_as_of(tx, "2024-01-01")
    Traceback (most recent call last):
    ...
    churnclv._errors.InputError: as_of 2024-01-01 00:00:00 is before all purchases (first transaction 2024-03-01 00:00:00)
    >>> check_as_of(tx, "2024-01-01", source="tx.csv")
    Traceback (most recent call last):
    ...
    churnclv._errors.InputError: transactions file tx.csv: as_of 2024-01-01 is before all data (column 'ts': first purchase 2024-03-01 00:00:00)
    """  # noqa: E501
    as_of = pd.Timestamp(as_of)
    first_ts, first_purchase = _first_times(transactions)
    if first_purchase is not None and first_purchase < as_of:
        return
    if source is None:
        raise InputError(f"as_of {as_of} is before all purchases (first transaction {first_ts})")
    first = first_purchase if first_purchase is not None else first_ts
    raise InputError(
        f"transactions file {os.fspath(source)}: as_of {as_of.date()} is before all data "
        f"(column 'ts': first purchase {first})"
    )
