"""The demo scores one feature frame two ways: as `score` does with and without uplift."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from churnclv import load_champion, load_inputs, load_policy, score
from churnclv._demo import _score_both
from churnclv.training import tracking_uri_for

pytestmark = pytest.mark.slow


def test_scores_from_one_feature_frame_equal_two_score_calls(demo_workdir: Path) -> None:
    """The uplift scores and the policy formula's equal `score` with the champion and with
    it less its uplift model (to DuckDB's summation order); without an uplift model the
    two are one frame."""
    data = demo_workdir / "data"
    tables = load_inputs(
        data / "transactions.parquet", data / "events.parquet", data / "customers.parquet"
    )
    as_of, policy = pd.Timestamp("2024-01-01"), load_policy()
    champion = load_champion(tracking_uri_for(demo_workdir))
    assert champion.uplift is not None
    formula = dataclasses.replace(champion, uplift=None, uplift_version=None)
    scored, by_policy = _score_both(tables, as_of, champion, policy, 500.0)
    for got, models in ((scored, champion), (by_policy, formula)):
        want = score(tables, as_of=as_of, champion=models, policy=policy, budget=500.0)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, atol=0)
        assert got["reasons"].equals(want["reasons"])
    assert set(scored["action_basis"]) != {"policy"}  # the uplift champion chose
    assert set(by_policy["action_basis"]) == {"policy"}
    alone, same = _score_both(tables, as_of, formula, policy, None)
    assert alone is same
