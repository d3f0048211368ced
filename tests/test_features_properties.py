"""Property-based tests of point-in-time correctness of the features and labels.

Amounts are multiples of 1/4 so every sum is exact in binary floating point:
the engine can then be compared with itself and with the oracle without
summation-order noise (that noise is covered by an xfail in
``test_features_oracle.py``).
"""

from __future__ import annotations

import pandas as pd
from _oracle import assert_features_match, oracle_features, oracle_labels
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnclv.features import build_features, build_labels

BASE = pd.Timestamp("2023-01-01")
US_PER_DAY = 86_400_000_000
SPAN_DAYS = 200
IDS = ("a", "b", "c", "d")
EVENT_TYPES = ("login", "session", "page_view", "email_open", "support_ticket", "complaint", "x")
SETTINGS = settings(
    max_examples=40,
    database=None,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# fewer examples where one example makes up to five engine calls
SETTINGS_FEW = settings(SETTINGS, max_examples=20)

# offsets in microseconds from BASE: anywhere, or within 1 us of a UTC midnight
offsets = st.one_of(
    st.integers(0, SPAN_DAYS * US_PER_DAY),
    st.builds(lambda d, e: d * US_PER_DAY + e, st.integers(1, SPAN_DAYS), st.integers(-1, 1)),
)
amounts = st.integers(-400, 2000).map(lambda k: k / 4)


def _ts(us: list[int]) -> pd.Series:
    return pd.Series(BASE + pd.to_timedelta(us, unit="us")).astype("datetime64[us]")


def _at(us: int) -> pd.Timestamp:
    return (BASE + pd.Timedelta(microseconds=us)).as_unit("us")


@st.composite
def transactions(draw: st.DrawFn, min_size: int = 1) -> pd.DataFrame:
    rows = draw(
        st.lists(st.tuples(st.sampled_from(IDS), offsets, amounts), min_size=min_size, max_size=25)
    )
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
            "ts": _ts([r[1] for r in rows]),
            "amount": pd.Series([r[2] for r in rows], dtype="float64"),
        }
    )


@st.composite
def events(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(
        st.lists(
            st.tuples(st.sampled_from(IDS), offsets, st.sampled_from(EVENT_TYPES)), max_size=25
        )
    )
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
            "ts": _ts([r[1] for r in rows]),
            "event_type": pd.Series([r[2] for r in rows], dtype="str"),
        }
    )


@st.composite
def customers(draw: st.DrawFn) -> pd.DataFrame:
    signup = draw(st.lists(offsets, min_size=len(IDS), max_size=len(IDS)))
    plans = draw(st.lists(st.sampled_from(["basic", "plus"]), min_size=len(IDS), max_size=len(IDS)))
    return pd.DataFrame(
        {
            "customer_id": pd.Series(IDS, dtype="str"),
            "signup_ts": _ts(signup),
            "plan": pd.Series(plans, dtype="str"),
        }
    )


cutoffs = st.integers(10 * US_PER_DAY, (SPAN_DAYS - 10) * US_PER_DAY).map(_at)
# cutoffs at midnight UTC: several of them take the bucketed form of the definition
midnights = st.integers(10, SPAN_DAYS - 10).map(lambda d: _at(d * US_PER_DAY))


def _features(tx: pd.DataFrame, ev: pd.DataFrame, cust: pd.DataFrame, as_of) -> pd.DataFrame:
    return build_features(tx, ev, cust, as_of=as_of)


def _assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@SETTINGS
@given(
    tx=transactions(),
    ev=events(),
    cust=customers(),
    cut=cutoffs,
    extra_tx=transactions(min_size=0),
    extra_ev=events(),
    data=st.data(),
)
def test_rows_at_or_after_cutoff_never_change_features(
    tx: pd.DataFrame,
    ev: pd.DataFrame,
    cust: pd.DataFrame,
    cut: pd.Timestamp,
    extra_tx: pd.DataFrame,
    extra_ev: pd.DataFrame,
    data: st.DataObject,
) -> None:
    """Adding, changing or dropping rows with ts >= as_of leaves every feature unchanged."""
    before = _features(tx, ev, cust, cut)

    def future(frame: pd.DataFrame) -> pd.DataFrame:
        # move the extra rows to [cut, cut + 200 days), the first one exactly at the cutoff
        out = frame.copy()
        out["ts"] = cut + (out["ts"] - BASE)
        if len(out):
            out.loc[out.index[0], "ts"] = cut
        return out

    tx2 = tx.copy()
    late = tx2["ts"] >= cut
    tx2.loc[late, "amount"] = -tx2.loc[late, "amount"] + 1.5
    tx2 = pd.concat([tx2, future(extra_tx)], ignore_index=True)
    ev2 = ev.copy()
    late_ev = ev2["ts"] >= cut
    ev2.loc[late_ev, "event_type"] = data.draw(st.sampled_from(EVENT_TYPES))
    ev2 = pd.concat([ev2[~(late_ev & (ev2.index % 2 == 0))], future(extra_ev)], ignore_index=True)
    cust2 = cust.copy()
    late_signup = cust2["signup_ts"] >= cut
    cust2.loc[late_signup, "signup_ts"] = cut + pd.Timedelta(days=3)
    _assert_same(before, _features(tx2, ev2, cust2, cut))


@SETTINGS
@given(tx=transactions(), ev=events(), cust=customers(), cut=cutoffs)
def test_engine_matches_oracle_on_random_histories(
    tx: pd.DataFrame, ev: pd.DataFrame, cust: pd.DataFrame, cut: pd.Timestamp
) -> None:
    """On random small histories every engine column (DuckDB and SQLite) equals the oracle."""
    oracle = oracle_features(tx, ev, cust, as_of=cut)
    for engine in ("duckdb", "sqlite"):
        assert_features_match(build_features(tx, ev, cust, as_of=cut, engine=engine), oracle)


@SETTINGS
@given(tx=transactions(), cut=cutoffs, data=st.data())
def test_rfm_invariants_and_frequency_counts_days(
    tx: pd.DataFrame, cut: pd.Timestamp, data: st.DataObject
) -> None:
    """Recency <= tenure, both >= 0, and frequency is distinct purchase days - 1, not rows."""
    got = build_features(tx, as_of=cut)
    assert (got["recency_days"] >= 0).all()
    assert (got["recency_days"] <= got["tenure_days"]).all()
    assert (got["frequency"] >= 0).all()
    buys = tx[(tx["ts"] < cut) & (tx["amount"] > 0)]
    want = buys.assign(day=buys["ts"].dt.floor("D")).groupby("customer_id")["day"].nunique() - 1
    assert dict(zip(got["customer_id"], got["frequency"], strict=True)) == want.to_dict()
    if buys.empty:
        return
    # duplicate a purchase row, and add another purchase earlier on the same UTC day
    row = buys.iloc[[data.draw(st.integers(0, len(buys) - 1))]]
    same_day = row.assign(ts=row["ts"].dt.floor("D"))
    again = build_features(pd.concat([tx, row, same_day], ignore_index=True), as_of=cut)
    pd.testing.assert_series_equal(again["frequency"], got["frequency"])
    cid = row["customer_id"].iloc[0]
    n_before = got.loc[got["customer_id"] == cid, "n_purchases"].iloc[0]
    assert again.loc[again["customer_id"] == cid, "n_purchases"].iloc[0] == n_before + 2


horizons = st.tuples(st.integers(1, 60), st.integers(0, 60)).map(lambda t: (t[0], t[0] + t[1]))


@SETTINGS
@given(tx=transactions(), cut=cutoffs, h=horizons, noise=transactions(min_size=0))
def test_labels_read_only_the_horizon(
    tx: pd.DataFrame, cut: pd.Timestamp, h: tuple[int, int], noise: pd.DataFrame
) -> None:
    """Rows at or before as_of, or after as_of + horizon, never change the labels."""
    churn_h, value_h = h
    keys = pd.DataFrame({"customer_id": pd.Series(IDS, dtype="str"), "as_of": [cut] * len(IDS)})
    keys["as_of"] = keys["as_of"].astype("datetime64[us]")
    labels = build_labels(tx, keys, churn_horizon_days=churn_h, value_horizon_days=value_h)
    pd.testing.assert_frame_equal(
        labels,
        oracle_labels(tx, keys, churn_horizon_days=churn_h, value_horizon_days=value_h),
        check_dtype=False,
    )
    end = cut + pd.Timedelta(days=value_h)
    outside = (tx["ts"] <= cut) | (tx["ts"] > end)
    # change outside rows, add noise at/before the cutoff (one exactly at it) and 1 us past the end
    tx2 = tx.copy()
    tx2.loc[outside, "amount"] = tx2.loc[outside, "amount"] * -3 + 7
    past = noise.assign(ts=cut - (noise["ts"] - BASE))
    if len(past):
        past.loc[past.index[0], "ts"] = cut
    beyond = noise.assign(ts=end + pd.Timedelta(microseconds=1) + (noise["ts"] - BASE))
    tx2 = pd.concat([tx2[~outside | (tx2.index % 3 != 0)], past, beyond], ignore_index=True)
    again = build_labels(tx2, keys, churn_horizon_days=churn_h, value_horizon_days=value_h)
    _assert_same(labels, again)
    # purchases after as_of + churn horizon never change `churned`
    churn_end = cut + pd.Timedelta(days=churn_h)
    tx3 = pd.concat([tx, noise.assign(ts=churn_end + pd.Timedelta(microseconds=1))])
    again = build_labels(tx3, keys, churn_horizon_days=churn_h, value_horizon_days=value_h)
    pd.testing.assert_series_equal(again["churned"], labels["churned"])


@SETTINGS_FEW
@given(
    tx=transactions(),
    ev=events(),
    cust=customers(),
    cuts=st.lists(cutoffs, min_size=2, max_size=4, unique=True),
)
def test_multi_cutoff_equals_concatenated_single_cutoffs(
    tx: pd.DataFrame, ev: pd.DataFrame, cust: pd.DataFrame, cuts: list[pd.Timestamp]
) -> None:
    """One call with several cutoffs equals the concatenation of one call per cutoff."""
    _assert_multi_equals_singles(tx, ev, cust, cuts)


@SETTINGS_FEW
@given(
    tx=transactions(),
    ev=events(),
    cust=customers(),
    cuts=st.lists(midnights, min_size=2, max_size=4, unique=True),
)
def test_bucketed_multi_cutoff_equals_single_cutoffs(
    tx: pd.DataFrame, ev: pd.DataFrame, cust: pd.DataFrame, cuts: list[pd.Timestamp]
) -> None:
    """Several midnight cutoffs (the bucketed form) equal one direct-form call per cutoff."""
    _assert_multi_equals_singles(tx, ev, cust, cuts)


def _assert_multi_equals_singles(
    tx: pd.DataFrame, ev: pd.DataFrame, cust: pd.DataFrame, cuts: list[pd.Timestamp]
) -> None:
    multi = build_features(tx, ev, cust, as_of=cuts)
    singles = [build_features(tx, ev, cust, as_of=c) for c in sorted(cuts)]
    singles = [f for f in singles if len(f)]
    if not singles:
        assert multi.empty
        return
    stacked = pd.concat(singles, ignore_index=True)
    # static string columns are categoricals whose categories depend on the rows present
    multi["plan"] = multi["plan"].astype(object)
    stacked["plan"] = stacked["plan"].astype(object)
    _assert_same(multi, stacked)
