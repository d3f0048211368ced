"""The sends an uplift model learns from: their features as of each send, and the held-out split.

Every send sees only its past: its features are computed as of its send date
(one cutoff per distinct date, the public feature builder). The held-out sends
are out of time when the log has several campaigns (rolling origin: each of the
latest ``_EVAL_CAMPAIGNS`` campaigns is predicted by a model fitted on the
campaigns sent before it), else customer-disjoint (``_HOLDOUT_SHARE`` of the
customers, by a seeded hash of the id).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnclv._io import InputTables
from churnclv.features._vocabulary import DEFAULT_EVENT_TYPES, Vocabulary

__all__ = ["held_out_folds", "send_features", "train_mask"]

_HOLDOUT_SHARE = 0.3
_EVAL_CAMPAIGNS = 3


def send_features(
    tables: InputTables, sends: pd.DataFrame, vocabulary: Vocabulary | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of each send as of its send date; rows of ``sends`` kept (no history dropped).
    ``vocabulary``: the event types (and valued types) to compute, default the default types."""
    from churnclv.features import build_features

    cutoff = sends["ts"].dt.normalize()
    dates = sorted(cutoff.unique())
    types, valued = vocabulary or (DEFAULT_EVENT_TYPES, ())
    feats = build_features(
        tables.transactions,
        tables.events,
        tables.customers,
        as_of=list(dates),
        event_types=types,
        valued_event_types=valued,
    )
    feats = feats.rename(columns={"as_of": "_cutoff"})
    keys = pd.DataFrame(
        {
            "customer_id": sends["customer_id"].astype(str).to_numpy(),
            "_cutoff": cutoff.astype(feats["_cutoff"].dtype).to_numpy(),
            "_row": np.arange(len(sends)),
        }
    )
    joined = keys.merge(feats, on=["customer_id", "_cutoff"], how="inner").sort_values("_row")
    rows = joined["_row"].to_numpy()
    frame = joined.drop(columns=["_cutoff", "_row"]).reset_index(drop=True)
    frame.insert(1, "as_of", sends["ts"].to_numpy()[rows])
    return frame, rows


def held_out_folds(sends: pd.DataFrame, seed: int) -> tuple[list[np.ndarray], str]:
    """Held-out masks, oldest first; each fold trains on the sends before its campaign.

    With several campaigns: the latest ``_EVAL_CAMPAIGNS`` campaigns (at most, and
    each with at least one earlier campaign), rolling origin, always out of time.
    With one campaign: 30% of its customers (by hash, customer-disjoint).
    """
    starts = sends.groupby("campaign_id")["ts"].min().sort_values()
    if len(starts) >= 2:
        held = list(starts.index[1:][-_EVAL_CAMPAIGNS:])
        masks = [(sends["campaign_id"] == c).to_numpy() for c in held]
        kind = f"campaign(s) {', '.join(map(str, held))} (out of time, rolling origin)"
        return masks, kind
    h = pd.util.hash_pandas_object(sends["customer_id"].astype(str), index=False).to_numpy()
    mask = ((h + np.uint64(seed)) % np.uint64(100)) < _HOLDOUT_SHARE * 100
    return [mask], f"{_HOLDOUT_SHARE:.0%} of customers (one campaign: customer-disjoint)"


def train_mask(sends: pd.DataFrame, held: np.ndarray) -> np.ndarray:
    """The sends a fold trains on: those sent before its held-out sends (all others with
    one campaign)."""
    if sends.loc[held, "campaign_id"].nunique() == sends["campaign_id"].nunique():
        return ~held
    return (sends["ts"] < sends.loc[held, "ts"].min()).to_numpy()
