"""Reasons written per (rank, feature) group equal the per-row texts of reason_text."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from churnclv._reasons import ReasonTable, feature_label, reason_text, reasons

COLUMNS = ["recency_days", "frequency", "ev_login_30d", "btyd_p_alive", "plan", "returns_count"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    recency = rng.integers(0, 400, n).astype(float)
    recency[rng.random(n) < 0.2] = np.nan
    return pd.DataFrame(
        {
            "recency_days": recency,
            "gap_mean_days": np.where(rng.random(n) < 0.3, np.nan, rng.uniform(1, 90, n)),
            "frequency": rng.integers(0, 9, n).astype(float),
            "ev_login_30d": rng.integers(0, 3, n).astype(float),
            "btyd_p_alive": rng.uniform(0, 1, n),
            "plan": pd.Categorical(rng.choice(["basic", "pro", None], n)),
            "returns_count": rng.integers(0, 3, n).astype(float),
            "returns_total": rng.uniform(0, 50, n),
        }
    )


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), seed=st.integers(0, 10_000), k=st.integers(1, 4))
def test_grouped_reasons_equal_row_by_row_reasons(n: int, seed: int, k: int) -> None:
    """Every row's reasons are its k largest contributions (ties by column order) with
    reason_text's words and the contribution's direction, whatever the mix of features."""
    frame = _frame(n, seed)
    rng = np.random.default_rng(seed + 1)
    contrib = np.round(rng.normal(size=(n, len(COLUMNS))), 1)  # rounding makes ties
    got = reasons(frame, contrib, k, columns=COLUMNS)
    rows = frame.to_dict("records")
    for i, row in enumerate(rows):
        order = sorted(range(len(COLUMNS)), key=lambda j: (-abs(contrib[i, j]), j))[:k]
        want = [
            (
                COLUMNS[j],
                feature_label(COLUMNS[j]),
                f"{reason_text(COLUMNS[j], row)}: "
                f"{'raises' if contrib[i, j] > 0 else 'lowers'} churn risk",
            )
            for j in order
        ]
        assert [(r["feature"], r["label"], r["text"]) for r in got[i]] == want
    table = ReasonTable.build(frame, contrib, k, columns=COLUMNS)
    assert table.joined() == ["; ".join(r["text"] for r in items) for items in got]


def test_a_category_reason_carries_its_value_as_words() -> None:
    """A categorical feature's value is its label; a missing one reads as unknown."""
    frame = pd.DataFrame({"plan": pd.Categorical(["pro", None])})
    got = reasons(frame, np.array([[0.5], [-0.2]]), 1, columns=["plan"])
    assert [(r["value"], r["text"]) for items in got for r in items] == [
        ("pro", "plan is pro: raises churn risk"),
        (None, "plan unknown: lowers churn risk"),
    ]
