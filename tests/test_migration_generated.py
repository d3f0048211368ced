"""Tier migration on generated data: two `churnclv score` snapshots, counted by hand."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from churnclv import migration_matrix, migration_summary
from churnclv.cli import main

TIERS = ("high", "medium", "low")


@pytest.mark.slow
def test_two_generated_snapshots_match_a_hand_count(demo_workdir: Path, tmp_path: Path) -> None:
    """Score the demo's generated customers at two dates with the demo's champion; the
    tier migration matrix and summary equal a customer-by-customer count of both snapshots."""
    from churnclv.training import tracking_uri_for

    data = demo_workdir / "data"
    for as_of in ("2023-10-01", "2024-01-01"):
        args = ["score", "--transactions", str(data / "transactions.parquet")]
        args += ["--events", str(data / "events.parquet")]
        args += ["--customers", str(data / "customers.parquet"), "--as-of", as_of]
        args += ["--out", str(tmp_path / f"scores-{as_of}.parquet")]
        args += ["--workdir", str(tmp_path), "--tracking-uri", tracking_uri_for(demo_workdir)]
        assert main(args) == 0
    before = pd.read_parquet(tmp_path / "snapshots" / "2023-10-01.parquet")
    after = pd.read_parquet(tmp_path / "snapshots" / "2024-01-01.parquet")

    prev = dict(zip(before["customer_id"], before["value_tier"], strict=True))
    cur = dict(zip(after["customer_id"], after["value_tier"], strict=True))
    pairs = Counter((prev.get(c, "new customer"), cur.get(c, "gone")) for c in prev.keys() | cur)
    got = migration_matrix(before, after)
    for (row, col), n in pairs.items():
        assert got.loc[row, col] == n, (row, col)
    assert int(got.to_numpy().sum()) == len(prev.keys() | cur.keys())
    assert pairs[("new customer", "gone")] == 0 and got.loc["new customer", "gone"] == 0

    rank = {t: i for i, t in enumerate(TIERS)}
    both = prev.keys() & cur.keys()
    up = sum(rank[cur[c]] < rank[prev[c]] for c in both)
    down = sum(rank[cur[c]] > rank[prev[c]] for c in both)
    summary = migration_summary(before, after)
    assert (summary["customers"], summary["upgrades"], summary["downgrades"]) == (
        len(both),
        up,
        down,
    )
    assert summary["new"] == len(cur.keys() - prev.keys()) > 0  # customers acquired since
    assert up + down > 0, "three months on, some customers changed tier"
