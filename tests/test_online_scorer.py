"""The service's scorer: column arrays from SQLite give exactly the batch path's answers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from churnclv._clv_fields import CLV_COLUMNS
from churnclv.decisions import load_policy
from churnclv.serving._batch import score_features
from churnclv.serving._requests import CustomerIn
from churnclv.serving._scorer import OnlineScorer
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
    own = {key: c.customer_id for key, c in zip(keys, customers, strict=True)}
    frame["customer_id"] = frame["customer_id"].map(own)  # the holdout hashes the real ids
    want = score_features(frame, scorer.champion, scorer.policy)
    why = want.attrs.pop("reasons_detail")
    assert len(customers) > 10
    assert len(got) == len(want)
    position = {cid: i for i, cid in enumerate(want["customer_id"])}  # the frame's row order
    for rec, c in zip(got, customers, strict=True):
        row, detail = want.iloc[position[c.customer_id]], why[position[c.customer_id]]
        assert rec["customer_id"] == c.customer_id
        for col in ("churn_probability", "predicted_value", "expected_net_gain"):
            assert rec[col] == row[col], col
        for col in (
            "value_tier",
            "risk_band",
            "lifecycle_stage",
            "rfm_segment",
            "action",
            "potential_high_value",
            "holdout",
            "action_basis",
        ):
            assert rec[col] == row[col], col
        for col in CLV_COLUMNS:  # marketer fields: null online where the batch has NaN
            assert rec[col] == (None if pd.isna(row[col]) else row[col]), col
        assert rec["as_of"] == pd.Timestamp(row["as_of"]).isoformat()
        assert rec["reasons"] == detail


def _feature_rows(demo_workdir: Path, n: int) -> list[dict[str, object]]:
    from churnclv.features import build_features

    data = demo_workdir / "data"
    tx, ev, cu = (
        pd.read_parquet(data / f"{t}.parquet") for t in ("transactions", "events", "customers")
    )
    feats = build_features(tx, ev, cu, as_of=pd.Timestamp(AS_OF)).head(n)
    feats["as_of"] = feats["as_of"].astype(str)
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in feats.to_dict(orient="records")
    ]


def _numeric_column(scorer: OnlineScorer) -> str:
    """A numeric model input that may be null (not one of the decisions' inputs)."""
    from churnclv.serving._requests import DECISION_INPUTS

    categorical = set(scorer.champion.churn.categories_) | set(scorer.champion.value.categories_)
    return next(
        c for c in scorer.required_columns if c not in categorical and c not in DECISION_INPUTS
    )


@pytest.mark.parametrize(
    ("values", "bad_row"),
    [
        ([True, False, True], 0),  # booleans: pandas makes a bool column
        ([1.5, True, 2.0], 1),  # a boolean among numbers: an object column
        ([1.5, 2.0, "3"], 2),  # a string
        ([1, [2], 3], 1),  # a list
    ],
    ids=["all booleans", "one boolean", "a string", "a list"],
)
def test_feature_rows_reject_non_numbers_naming_the_row(
    demo_workdir: Path, scorer: OnlineScorer, values: list[object], bad_row: int
) -> None:
    """A numeric column holding booleans, strings or lists is rejected, naming row and column."""
    from churnclv.serving._requests import RequestError

    rows = _feature_rows(demo_workdir, 3)
    col = _numeric_column(scorer)
    for row, v in zip(rows, values, strict=True):
        row[col] = v
    with pytest.raises(RequestError, match="must be a number or null") as err:
        scorer.feature_frame(rows)
    assert err.value.field == f"rows[{bad_row}].{col}"


@pytest.mark.parametrize(
    "values", [[1, 2, 3], [1.5, None, 2], [None, None, None], [1, 2.5, 10**30]],
    ids=["ints", "floats and null", "all null", "a huge int"],
)  # fmt: skip
def test_feature_rows_accept_numbers_and_nulls(
    demo_workdir: Path, scorer: OnlineScorer, values: list[object]
) -> None:
    """JSON numbers and nulls in a numeric column become floats (null as NaN)."""
    rows = _feature_rows(demo_workdir, 3)
    col = _numeric_column(scorer)
    for row, v in zip(rows, values, strict=True):
        row[col] = v
    got = scorer.feature_frame(rows)[col]
    want = [float("nan") if v is None else float(v) for v in values]  # type: ignore[arg-type]
    pd.testing.assert_series_equal(got, pd.Series(want, name=col), check_exact=True)
