"""The seeded customer sample of ``churnclv train --sample-customers``."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd
import pytest

from churnclv._io import InputTables
from churnclv._sample import SAMPLE_RULE, sample_customers, sample_tables
from churnclv.cli import main

IDS = [f"C{i:03d}" for i in range(200)]


def test_sample_is_deterministic_order_independent_and_exact() -> None:
    first = sample_customers(IDS, 37, seed=5)
    shuffled = sample_customers([*reversed(IDS), *IDS[:50]], 37, seed=5)
    assert first.ids == shuffled.ids
    assert len(first.ids) == 37 and len(set(first.ids)) == 37
    assert first.total == 200 and not first.complete
    assert first.ids == sorted(first.ids) and set(first.ids) <= set(IDS)
    assert sample_customers(IDS, 37, seed=6).ids != first.ids


def test_sample_is_nested_and_ignores_other_customers() -> None:
    # a customer's key depends on its id and the seed only
    small, large = sample_customers(IDS, 10, seed=1), sample_customers(IDS, 40, seed=1)
    assert set(small.ids) <= set(large.ids)
    assert sample_customers([*IDS, None, float("nan")], 10, seed=1).ids == small.ids


def test_sample_larger_than_the_customers_takes_all() -> None:
    sample = sample_customers(IDS[:5], 10)
    assert sample.ids == IDS[:5] and sample.complete and sample.requested == 10
    with pytest.raises(ValueError, match="at least 1"):
        sample_customers(IDS, 0)


def test_sample_tables_keeps_the_sampled_customers_rows() -> None:
    tx = pd.DataFrame(
        {
            "customer_id": [IDS[i % 20] for i in range(60)],
            "ts": pd.date_range("2023-01-01", periods=60, freq="D"),
            "amount": 1.0,
        }
    )
    events = pd.DataFrame({"customer_id": IDS[:30], "ts": tx["ts"][:30], "event_type": "visit"})
    customers = pd.DataFrame({"customer_id": IDS[:30], "segment": "a"})
    kept, sample = sample_tables(InputTables(tx, events, customers), 7, seed=3)
    assert sample.ids == sample_customers(IDS[:20], 7, seed=3).ids
    for frame in (kept.transactions, kept.events, kept.customers):
        assert frame is not None and set(frame["customer_id"]) == set(sample.ids)
    assert len(kept.transactions) == 21
    assert "blake2b" in SAMPLE_RULE


def test_train_on_a_sample(generated_dir: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    inputs = [f"--{name}" for name in ("transactions", "events", "customers")]
    args = ["train", "--as-of", "2024-01-01", "--max-cutoffs", "2", "--sample-customers", "300"]
    for flag in inputs:
        args += [flag, str(generated_dir / f"{flag[2:]}.parquet")]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*args, "--workdir", str(tmp_path)]) == 0
    assert "training on 300 of 600 customers (seeded sample)" in printed.getvalue()
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    (run,) = client.search_runs([client.get_experiment_by_name("churnclv").experiment_id])
    assert run.data.params["sample_customers"] == "300"
    assert run.data.params["sample_customers_total"] == "600"
    assert run.data.tags["sample_rule"] == SAMPLE_RULE


def test_train_rejects_a_sample_below_one_and_other_engines(generated_dir: Path) -> None:
    base = ["train", "--transactions", str(generated_dir / "transactions.parquet")]
    base += ["--as-of", "2024-01-01"]
    with contextlib.redirect_stderr(io.StringIO()):
        assert main([*base, "--sample-customers", "0"]) == 2
        assert main([*base, "--engine", "sqlite"]) == 2
