"""The one-cutoff form of the feature SQL against the direct form and the oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _oracle import assert_features_match, oracle_features

from churnclv.features import build_features
from churnclv.features._engines import duckdb_query
from churnclv.features._inputs import cutoff_frame, input_relations
from churnclv.features._sql import WINDOWS, feature_sql

# noon: every window starts at noon, inside a day
CUTOFF = pd.Timestamp("2024-03-01 12:00:00")


def _boundary_history() -> pd.DataFrame:
    """Purchases just before and after every window start, same-day repeats and returns."""
    rows = []
    for i, w in enumerate(WINDOWS):
        start = CUTOFF - pd.Timedelta(days=w)
        cid = f"c{i}"
        rows += [
            (cid, start - pd.Timedelta(hours=1), 10.0),  # same day as the start, before it
            (cid, start + pd.Timedelta(hours=1), 5.0),  # same day, inside the window
            (cid, start - pd.Timedelta(days=3), 7.0),
            (cid, start - pd.Timedelta(days=3, hours=2), -2.0),  # a return
            (cid, CUTOFF - pd.Timedelta(hours=2), 4.0),
            (cid, CUTOFF - pd.Timedelta(hours=3), 3.0),
            (cid, CUTOFF + pd.Timedelta(hours=1), 50.0),  # after the cutoff: ignored
        ]
        rows.append((f"d{i}", start - pd.Timedelta(hours=1), 8.0))  # only before the window
        rows.append((f"d{i}", start - pd.Timedelta(days=40), 9.0))
    rows.append(("r", CUTOFF - pd.Timedelta(days=2), -5.0))  # returns only: no row
    rng = np.random.default_rng(3)
    order = rng.permutation(len(rows))
    return pd.DataFrame(
        {
            "customer_id": pd.Series([rows[k][0] for k in order], dtype="str"),
            "ts": pd.Series([rows[k][1] for k in order]).astype("datetime64[us]"),
            "amount": [rows[k][2] for k in order],
        }
    )


@pytest.mark.parametrize("cutoff", [CUTOFF, CUTOFF.normalize()])
def test_one_cutoff_form_equals_direct_form_and_oracle(cutoff: pd.Timestamp) -> None:
    tx = _boundary_history()
    frames = input_relations(tx, None, None, cutoff_frame(cutoff))[0]
    direct = duckdb_query(dict(frames), feature_sql(with_events=False))
    single = duckdb_query(
        dict(frames), feature_sql(with_events=False, cutoff=cutoff.to_pydatetime())
    )
    pd.testing.assert_frame_equal(single, direct, check_exact=False, atol=1e-9, rtol=0)
    built = build_features(tx, as_of=cutoff)
    assert_features_match(built, oracle_features(tx, as_of=cutoff))
    assert "r" not in set(built["customer_id"])
    assert (built[[f"active_days_{w}d" for w in WINDOWS]].to_numpy() >= 0).all()
