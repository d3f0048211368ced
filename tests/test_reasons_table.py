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


def test_grouped_texts_keep_every_value_spelling() -> None:
    """Values formatted once per distinct value still read as row by row: -0.0 and 0.0,
    infinities, integers, missing categories, absent columns and overdue_ratio's words."""
    cols = ["spend_trend_90d", "overdue_ratio", "tx_count_30d", "ev_nps_value_last", "plan"]
    frame = pd.DataFrame(
        {
            "spend_trend_90d": [-0.0, 0.0, np.inf, np.nan, -0.0, 1.5],
            "overdue_ratio": [2.0, np.nan, 1.0, 3.0, np.inf, 0.5],
            "recency_days": [10.0, np.inf, -0.0, np.nan, 4.0, 10.0],
            "gap_mean_days": [4.0, 2.0, 0.0, 1.0, -1.0, 4.0],
            "tx_count_30d": np.array([1, 0, 3, 1, 0, 2]),
            "plan": pd.Series(["a", None, "b", "a", None, "b"], dtype=object),
        }
    )
    rows = frame.to_dict("records")
    for j, col in enumerate(cols):
        contrib = np.zeros((len(frame), len(cols)))
        contrib[:, j] = np.where(np.arange(len(frame)) % 2, 1.0, -1.0)
        got = reasons(frame, contrib, 1, columns=cols)
        want = [
            f"{reason_text(col, row)}: {'raises' if i % 2 else 'lowers'} churn risk"
            for i, row in enumerate(rows)
        ]
        assert [items[0]["text"] for items in got] == want


def test_missing_values_of_nullable_columns_read_unknown_as_row_by_row() -> None:
    """pd.NA in nullable Int64 / Float64 / boolean / string columns, None and NaN all read
    "<label> unknown" in batch texts, exactly as reason_text writes the row."""
    cols = ["plan_level", "tenure_days", "monetary_mean", "is_member", "plan", "ev_nps_value_last"]
    frame = pd.DataFrame(
        {
            "plan_level": pd.array([2, pd.NA, 5], dtype="Int64"),
            "tenure_days": pd.array([30, pd.NA, 1], dtype="Int64"),
            "monetary_mean": pd.array([1.5, pd.NA, None], dtype="Float64"),
            "is_member": pd.array([True, pd.NA, False], dtype="boolean"),
            "plan": pd.array(["basic", pd.NA, None], dtype="string"),
            "ev_nps_value_last": pd.array([9, pd.NA, 3], dtype="Int64"),
        }
    )
    contrib = np.tile(np.arange(len(cols), 0, -1, dtype=float), (len(frame), 1))
    got = reasons(frame, contrib, len(cols), columns=cols)
    for i in range(len(frame)):
        row = {c: frame[c].iloc[i] for c in cols}
        want = [f"{reason_text(c, row)}: raises churn risk" for c in cols]
        assert [r["text"] for r in got[i]] == want
    assert [r["text"] for r in got[1][:2]] == [
        "plan level unknown: raises churn risk",
        "days since first purchase unknown: raises churn risk",
    ]
    assert all("<NA>" not in r["text"] and r["value"] is None for r in got[1])
    assert reason_text("plan_level", {"plan_level": None}) == "plan level unknown"
    assert reason_text("plan_level", {"plan_level": np.nan}) == "plan level unknown"


def test_top_k_equals_a_stable_sort_of_magnitudes() -> None:
    """Ties go to the lower column and NaNs come last, as with a stable argsort."""
    from churnclv._reasons_batch import top_contributions, top_k

    rng = np.random.default_rng(3)
    contrib = np.round(rng.normal(size=(500, 7)), 1)
    contrib[rng.random(contrib.shape) < 0.05] = np.nan
    contrib[rng.random(contrib.shape) < 0.05] = -0.0
    want = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :3]
    top, picked = top_k(contrib, 3)
    np.testing.assert_array_equal(top, want)
    np.testing.assert_array_equal(picked, np.take_along_axis(contrib, want, axis=1))
    top2, _ = top_contributions(lambda x: x, contrib, 3)
    np.testing.assert_array_equal(top2, want)


def test_joined_strings_equal_the_joined_texts() -> None:
    """The Arrow-joined batch column holds the same strings, as pandas' str dtype."""
    frame = _frame(50, 5)
    contrib = np.round(np.random.default_rng(6).normal(size=(50, len(COLUMNS))), 1)
    table = ReasonTable.build(frame, contrib, 3, columns=COLUMNS)
    column = pd.Series(table.joined_strings())
    assert column.dtype == pd.Series(table.joined()).dtype
    assert column.tolist() == table.joined()
    empty = ReasonTable.build(frame.head(0), contrib[:0], 3, columns=COLUMNS)
    assert pd.Series(empty.joined_strings()).tolist() == []
