"""A market change for the generator: fewer events and orders, higher prices after a date."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["drift"]

_DRIFT_DROP, _DRIFT_PRICE = 0.7, 1.5  # after drift_at: share of events and orders lost, prices


def drift(
    transactions: pd.DataFrame, events: pd.DataFrame, as_of: pd.Timestamp, drift_at: Any, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop 70% of the events and orders and raise amounts by 50% from ``drift_at`` on."""
    days = isinstance(drift_at, int | np.integer) and not isinstance(drift_at, bool)
    start = as_of - pd.Timedelta(days=int(drift_at)) if days else pd.Timestamp(drift_at)
    rng = np.random.default_rng([seed, 21])  # its own stream: the undrifted data is unchanged
    drop = (events["ts"] >= start).to_numpy() & (rng.random(len(events)) < _DRIFT_DROP)
    events = events.loc[~drop].reset_index(drop=True)
    orders = transactions.loc[transactions["ts"] >= start, "order_id"].unique()
    gone = orders[rng.random(len(orders)) < _DRIFT_DROP]
    transactions = transactions.loc[~transactions["order_id"].isin(gone)].reset_index(drop=True)
    late = (transactions["ts"] >= start).to_numpy()
    transactions.loc[late, "amount"] = (transactions.loc[late, "amount"] * _DRIFT_PRICE).round(2)
    return transactions, events
