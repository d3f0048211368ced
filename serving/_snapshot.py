"""The batch-scored snapshot behind ``/lookup``."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ScoresSnapshot"]


class ScoresSnapshot:
    """``<workdir>/scores.parquet`` in memory, reloaded when its mtime changes.

    Each row also carries ``previous_value_tier``: the customer's tier in the
    latest ``<workdir>/snapshots/<date>.parquet`` dated before the scores'
    ``as_of`` (``None`` when the customer is not in it), read once per reload.

    Parameters
    ----------
    path : path-like
        The Parquet file written by ``churnclv score`` / ``churnclv demo``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._mtime: float | None = None
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.loaded_at: float | None = None

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            self._mtime, self._rows = None, {}
            return
        if mtime == self._mtime:
            return
        frame = pd.read_parquet(self.path)
        previous = self._previous_tiers(frame)
        rows: dict[str, dict[str, Any]] = {}
        for rec in frame.to_dict("records"):
            for k, v in rec.items():
                if isinstance(v, pd.Timestamp):
                    rec[k] = v.isoformat()
                elif isinstance(v, float) and math.isnan(v):
                    rec[k] = None
                elif isinstance(v, np.generic):
                    rec[k] = v.item()
            rec["previous_value_tier"] = previous.get(str(rec["customer_id"]))
            rows[str(rec["customer_id"])] = rec
        self._rows, self._mtime, self.loaded_at = rows, mtime, time.time()

    def _previous_tiers(self, frame: pd.DataFrame) -> dict[str, str]:
        """Customer id -> value tier in the snapshot before ``frame``'s ``as_of``."""
        from churnclv._migration import previous_snapshot

        if "as_of" not in frame or frame.empty:
            return {}
        prev = previous_snapshot(self.path.parent, frame["as_of"].iloc[0])
        if prev is None:
            return {}
        ids, tiers = prev["customer_id"].astype(str), prev["value_tier"].astype(str)
        return dict(zip(ids, tiers, strict=True))

    def available(self) -> bool:
        """Whether the snapshot file exists (after a refresh)."""
        with self._lock:
            self._refresh()
            return self._mtime is not None

    def lookup(self, customer_ids: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """The snapshot rows of ``customer_ids`` (request order) and the ids not found."""
        with self._lock:
            self._refresh()
            rows = self._rows
        found = [rows[c] for c in customer_ids if c in rows]
        missing = [c for c in customer_ids if c not in rows]
        return found, missing
