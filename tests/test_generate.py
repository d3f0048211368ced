"""Tests for the synthetic data generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv._generate import SyntheticData, generate, write

N_CAL = 5_000


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(N_CAL, seed=7)


def _decile_groups(score: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(score, kind="stable")
    return np.array_split(order, 10)


def _assert_calibrated(prob: np.ndarray, outcome: np.ndarray) -> None:
    for group in _decile_groups(prob):
        p = prob[group]
        y = outcome[group].astype(float)
        se = np.sqrt(np.sum(p * (1 - p))) / p.size
        assert abs(y.mean() - p.mean()) <= 4 * se + 0.02, (p.mean(), y.mean())


def test_same_seed_gives_identical_parquet_bytes(tmp_path: Path) -> None:
    """Writing two generations with the same seed yields byte-identical files."""
    a = write(generate(300, seed=3), tmp_path / "a")
    b = write(generate(300, seed=3), tmp_path / "b")
    assert set(a) == {
        "transactions",
        "events",
        "customers",
        "truth",
        "campaigns",
        "campaign_truth",
    }
    for name in a:
        assert a[name].name == f"{name}.parquet"
        assert a[name].read_bytes() == b[name].read_bytes()
    assert not [p for p in (tmp_path / "a").iterdir() if p.suffix == ".tmp"]


def test_different_seed_gives_different_data() -> None:
    """Different seeds produce different transactions."""
    a = generate(300, seed=1).transactions
    b = generate(300, seed=2).transactions
    assert not a.equals(b)


def test_written_tables_round_trip(tmp_path: Path, data: SyntheticData) -> None:
    """Written parquet files read back equal to the in-memory tables."""
    paths = write(data, tmp_path)
    back = pd.read_parquet(paths["transactions"])
    pd.testing.assert_frame_equal(back, data.transactions, check_dtype=False)


def test_schema_and_ordering(data: SyntheticData) -> None:
    """Tables have the documented columns, dtypes, id format and sort order."""
    tx, ev, cu, tr = data.transactions, data.events, data.customers, data.truth
    assert list(tx.columns) == ["customer_id", "ts", "amount", "order_id", "channel", "category"]
    assert list(ev.columns) == ["customer_id", "ts", "event_type", "value"]
    assert list(cu.columns) == [
        "customer_id",
        "signup_ts",
        "plan",
        "region",
        "acquisition_channel",
    ]
    assert tx["ts"].dtype == "datetime64[us]"
    assert ev["ts"].dtype == "datetime64[us]"
    assert cu["signup_ts"].dtype == "datetime64[us]"
    assert tx["amount"].dtype == np.float64
    assert set(tx["channel"]) <= {"web", "app", "store"}
    assert cu["customer_id"].iloc[0] == "C000001"
    assert len(tr) == len(cu) == N_CAL
    assert tr["customer_id"].is_unique
    keys = tx[["customer_id", "ts"]].apply(tuple, axis=1)
    assert keys.is_monotonic_increasing
    assert not tr.drop(columns=["customer_id", "state"]).isna().any().any()


def test_dead_customers_are_silent_after_as_of(data: SyntheticData) -> None:
    """A customer not alive at as_of has no transaction and no event after as_of."""
    dead = set(data.truth.loc[~data.truth["alive"], "customer_id"])
    assert dead
    tx_after = data.transactions.loc[data.transactions["ts"] > data.as_of, "customer_id"]
    ev_after = data.events.loc[data.events["ts"] > data.as_of, "customer_id"]
    assert not dead & set(tx_after)
    assert not dead & set(ev_after)


def test_first_transaction_is_earliest_activity(data: SyntheticData) -> None:
    """Each customer's first transaction is its earliest activity and precedes as_of."""
    first_tx = data.transactions.groupby("customer_id")["ts"].min()
    first_ev = data.events.groupby("customer_id")["ts"].min()
    assert len(first_tx) == N_CAL
    assert (first_tx < data.as_of).all()
    joined = first_ev.to_frame("ev").join(first_tx.rename("tx"))
    assert (joined["ev"] >= joined["tx"]).all()
    first_amounts = data.transactions.groupby("customer_id")["amount"].first()
    assert (first_amounts > 0).all()


def test_no_events_before_signup(data: SyntheticData) -> None:
    """No event or transaction happens before the customer's signup_ts."""
    signup = data.customers.set_index("customer_id")["signup_ts"]
    for frame in (data.events, data.transactions):
        assert (frame["ts"].to_numpy() >= signup.loc[frame["customer_id"]].to_numpy()).all()


def test_probabilities_in_unit_interval(data: SyntheticData) -> None:
    """Oracle probabilities lie in [0, 1] and expectations are non-negative and nested."""
    tr = data.truth
    for col in ("p_alive", "p_no_purchase_90"):
        assert tr[col].between(0.0, 1.0).all()
    assert (tr["expected_purchases_90"] >= 0).all()
    assert (tr["expected_purchases_365"] >= tr["expected_purchases_90"] - 1e-12).all()
    assert (tr["actual_purchases_365"] >= tr["actual_purchases_90"]).all()
    assert (tr["churned_90"] == (tr["actual_purchases_90"] == 0)).all()
    # a customer predicted surely alive and likely to buy cannot be certain of no purchase
    assert (tr["p_no_purchase_90"] >= 1 - tr["p_alive"] - 1e-9).all()


def test_p_alive_is_calibrated(data: SyntheticData) -> None:
    """Within p_alive deciles the fraction alive matches the mean p_alive."""
    tr = data.truth
    _assert_calibrated(tr["p_alive"].to_numpy(), tr["alive"].to_numpy())


def test_p_no_purchase_is_calibrated(data: SyntheticData) -> None:
    """Within p_no_purchase_90 deciles the churned_90 rate matches the mean prediction."""
    tr = data.truth
    _assert_calibrated(tr["p_no_purchase_90"].to_numpy(), tr["churned_90"].to_numpy())


def test_expected_purchases_match_actuals(data: SyntheticData) -> None:
    """Mean expected 365-day purchases are within 10% of mean realised purchases."""
    tr = data.truth
    expected = tr["expected_purchases_365"].mean()
    actual = tr["actual_purchases_365"].mean()
    assert abs(expected - actual) <= 0.1 * actual
    ev, av = tr["expected_value_365"].mean(), tr["actual_value_365"].mean()
    assert abs(ev - av) <= 0.2 * av


def test_population_is_realistic(data: SyntheticData) -> None:
    """Many one-time buyers, heavy-tailed spend and some returns."""
    tx = data.transactions
    hist = tx[tx["ts"] < data.as_of]
    purchases = hist[hist["amount"] > 0]
    days = purchases["ts"].dt.floor("D").groupby(purchases["customer_id"]).nunique()
    one_time = (days == 1).mean()
    assert 0.2 <= one_time <= 0.6
    net = np.sort(hist.groupby("customer_id")["amount"].sum().to_numpy())[::-1]
    top = net[: int(0.2 * net.size)].sum() / net.sum()
    assert top > 0.5
    assert (tx["amount"] < 0).any()
    assert set(data.events["event_type"]) >= {"login", "session", "complaint"}


def test_state_consistent_with_alive(data: SyntheticData) -> None:
    """The alive flag is exactly 'state is E or F'."""
    tr = data.truth
    assert set(tr["state"]) <= {"E", "F", "D"}
    assert (tr["alive"] == tr["state"].isin(["E", "F"])).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_customers": 0}, "n_customers"),
        ({"n_customers": 10, "history_days": 0}, "history_days"),
        ({"n_customers": 10, "future_days": -1}, "future_days"),
        ({"n_customers": 2.5}, "n_customers"),
        ({"n_customers": 10, "as_of": pd.Timestamp("2024-01-01", tz="UTC")}, "naive"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict[str, object], match: str) -> None:
    """Out-of-range arguments raise ValueError naming the offending argument."""
    with pytest.raises(ValueError, match=match):
        generate(**kwargs)  # type: ignore[arg-type]


def test_tiny_population_and_zero_future() -> None:
    """A single customer with no simulated future still yields consistent tables."""
    d = generate(1, seed=0, future_days=0, history_days=30)
    assert len(d.customers) == 1
    assert (d.transactions["ts"] <= d.as_of).all()
    assert (d.truth["actual_purchases_365"] == 0).all()
