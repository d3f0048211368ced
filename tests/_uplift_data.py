"""A small campaign log with known effects, built on the base synthetic data (tests only).

Two campaigns before ``as_of``: arms control / email_reminder / discount_coupon
at random. The coupon adds 40 to the net spend of customers with at most
three purchases before the send and costs frequent buyers 15 (cannibalised
full-price purchases); the email adds nothing. The effects are written into the
transactions, so outcomes computed from them carry the truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnclv import InputTables, generate

ARMS = ("control", "email_reminder", "discount_coupon")


def add_campaigns(
    transactions: pd.DataFrame, as_of: pd.Timestamp, seed: int = 0, effect: str = "heterogeneous"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The transactions before ``as_of`` with the campaigns' effects added, and the log."""
    tx = transactions[transactions["ts"] < as_of]
    rng = np.random.default_rng(seed)
    logs, extra = [], []
    for k, days in enumerate((100, 50)):
        send = as_of - pd.Timedelta(days=days)
        before = tx[tx["ts"] < send].groupby("customer_id").size()
        ids = before.index.to_numpy()
        arm = rng.choice(ARMS, len(ids))
        logs.append(
            pd.DataFrame({"customer_id": ids, "ts": send, "treatment": arm, "campaign_id": f"c{k}"})
        )
        if effect == "heterogeneous":
            lift = np.where(before.to_numpy() <= 3, 40.0, -15.0)
        elif effect == "uniform":
            lift = np.full(len(ids), 10.0)
        else:
            lift = np.zeros(len(ids))
        hit = (arm == "discount_coupon") & (lift != 0)
        extra.append(
            pd.DataFrame(
                {"customer_id": ids[hit], "ts": send + pd.Timedelta(days=5), "amount": lift[hit]}
            )
        )
    log = pd.concat(logs, ignore_index=True)
    log["ts"] = log["ts"].astype("datetime64[us]")
    tx = pd.concat([tx, *extra], ignore_index=True)
    tx["ts"] = tx["ts"].astype("datetime64[us]")
    return tx, log


def campaign_data(
    n_customers: int = 1500, seed: int = 0, effect: str = "heterogeneous"
) -> tuple[InputTables, pd.DataFrame, pd.Timestamp]:
    """Generated tables with the campaign effects in the transactions, the log, and as_of."""
    data = generate(n_customers, seed=seed)
    as_of = pd.Timestamp(data.as_of)
    tx, log = add_campaigns(data.transactions, as_of, seed, effect)
    events = data.events[data.events["ts"] < as_of]
    return InputTables(tx, events, data.customers), log, as_of
