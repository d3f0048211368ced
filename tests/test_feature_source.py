"""The feature source a training reads its per-customer frames from (in process: DuckDB)."""

from __future__ import annotations

import pandas as pd
import pytest

from churnclv._io import InputTables
from churnclv.features import build_features, build_labels
from churnclv.training._source import FeatureSource, TablesSource, as_source

ROWS = [
    ("a", "2024-01-05", 30.0),
    ("a", "2024-03-10", -5.0),
    ("a", "2024-04-01", 25.0),
    ("b", "2024-02-20", 15.0),
    ("c", "2024-01-02", 0.0),
]


def _tables() -> InputTables:
    tx = pd.DataFrame(ROWS, columns=["customer_id", "ts", "amount"])
    tx["ts"] = pd.to_datetime(tx["ts"]).astype("datetime64[us]")
    events = pd.DataFrame(
        {"customer_id": ["a", "b", "b"], "ts": tx["ts"][:3].to_numpy(), "event_type": "login"}
    )
    return InputTables(tx, events, None)


def test_tables_source_gives_the_labelled_features_of_the_tables() -> None:
    tables = _tables()
    source = as_source(tables)
    assert isinstance(source, TablesSource) and isinstance(source, FeatureSource)
    assert as_source(source) is source
    cuts = [pd.Timestamp("2024-02-01"), pd.Timestamp("2024-03-01")]
    vocab = (("login",), ())
    got = source.labelled_features(cuts, vocab, (30, 60))
    feats = build_features(tables.transactions, tables.events, as_of=cuts, event_types=["login"])
    labels = build_labels(tables.transactions, feats, churn_horizon_days=30, value_horizon_days=60)
    pd.testing.assert_frame_equal(got, feats.merge(labels, on=["customer_id", "as_of"]))
    assert list(got.columns[-2:]) == ["churned", "future_value"]
    assert source.first_purchase() == pd.Timestamp("2024-01-05")
    assert source.event_vocabulary(pd.Timestamp("2024-05-01"), top_k=1) == (("login",), ())
    tags = source.data_tags(pd.Timestamp("2024-05-01"))
    assert tags["data_window"] == "2024-01-02 00:00:00 .. 2024-05-01 00:00:00"
    assert tags["feature_engine"] == "duckdb" and len(tags["data_fingerprint"]) == 16


def test_train_rejects_what_is_no_source() -> None:
    with pytest.raises(TypeError, match="InputTables or a feature source"):
        as_source(pd.DataFrame())


def test_a_spark_result_over_max_result_size_is_an_input_error() -> None:
    """Collecting more than spark.driver.maxResultSize says how to get around it."""
    from churnclv._errors import InputError
    from churnclv.features._spark_train import collect_features

    class TooLarge:
        def toPandas(self) -> pd.DataFrame:
            raise RuntimeError(
                "Job aborted: Total size of serialized results of 3 tasks (1100.0 MiB) is "
                "bigger than spark.driver.maxResultSize (1024.0 MiB)"
            )

    with pytest.raises(InputError, match=r"--spark-conf spark\.driver\.maxResultSize"):
        collect_features(TooLarge(), [])  # type: ignore[arg-type]
