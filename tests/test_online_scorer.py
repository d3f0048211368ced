"""The service's scorer: column arrays from SQLite give exactly the batch path's answers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from churnclv.decisions import load_policy
from churnclv.serving._batch import score_features
from churnclv.serving._online import CustomerIn, OnlineScorer
from churnclv.training import load_champion, tracking_uri_for

AS_OF = datetime(2024, 1, 1)


@pytest.fixture(scope="module")
def scorer(demo_workdir: Path) -> OnlineScorer:
    return OnlineScorer(load_champion(tracking_uri_for(demo_workdir)), load_policy())


def _customers(demo_workdir: Path, n: int) -> list[CustomerIn]:
    data = demo_workdir / "data"
    tx = pd.read_parquet(data / "transactions.parquet")
    ev = pd.read_parquet(data / "events.parquet")
    cust = pd.read_parquet(data / "customers.parquet").set_index("customer_id")
    out = []
    for cid in sorted(tx["customer_id"].unique())[:n]:
        t = tx[(tx["customer_id"] == cid) & (tx["ts"] < AS_OF)]
        e = ev[(ev["customer_id"] == cid) & (ev["ts"] < AS_OF)]
        if t.empty:
            continue
        row = cust.loc[cid]
        attrs = {c: row[c] for c in ("plan", "region", "acquisition_channel") if c in row}
        out.append(
            CustomerIn(
                customer_id=str(cid),
                as_of=AS_OF,
                transactions=[
                    {"ts": s, "amount": a} for s, a in zip(t["ts"], t["amount"], strict=True)
                ],
                events=[
                    {"ts": s, "event_type": k}
                    for s, k in zip(e["ts"], e["event_type"], strict=True)
                ],
                attributes=attrs,
            )
        )
    return out


def test_scoring_customers_equals_score_features_on_their_frame(
    demo_workdir: Path, scorer: OnlineScorer
) -> None:
    """score_customers (column arrays, no frame) answers exactly what score_features gives."""
    customers = _customers(demo_workdir, 25)
    got = scorer.score_customers(customers)
    keys = [str(i) for i in range(len(customers))]
    frame = scorer.session.customer_features(customers, keys, AS_OF)
    want = score_features(frame, scorer.champion, scorer.policy)
    why = want.attrs.pop("reasons_detail")
    assert len(customers) > 10
    assert len(got) == len(want)
    position = {key: i for i, key in enumerate(want["customer_id"])}  # the frame's row order
    for rec, key, c in zip(got, keys, customers, strict=True):
        row, detail = want.iloc[position[key]], why[position[key]]
        assert rec["customer_id"] == c.customer_id
        for col in ("churn_probability", "predicted_value", "expected_net_gain"):
            assert rec[col] == row[col], col
        for col in ("value_tier", "risk_band", "lifecycle_stage", "rfm_segment", "action"):
            assert rec[col] == row[col], col
        assert rec["as_of"] == pd.Timestamp(row["as_of"]).isoformat()
        assert rec["reasons"] == detail
