"""Category and channel features: hand-computed values, engines against the oracle, inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _oracle import assert_features_match, oracle_features

from churnclv import ColumnMap, load_inputs
from churnclv.cli import main
from churnclv.features import build_features

NAN = float("nan")
BREADTH = ["n_categories", "top_category_share", "n_channels", "top_channel_share"]
TX = pd.DataFrame(
    {
        "customer_id": ["a", "a", "a", "a", "b", "b", "c", "d"],
        "ts": pd.to_datetime(
            format="ISO8601",
            arg=[
                "2024-01-05",
                "2024-01-20",
                "2024-02-10",
                "2024-03-05",  # after the last cutoff: never read
                "2024-02-01",
                "2024-02-02",
                "2024-02-03",
                "2024-02-20T13:00:00",
            ],
        ),
        "amount": [30.0, 10.0, 60.0, 5.0, 20.0, -5.0, 7.0, 4.0],
        "category": ["toys", "books", "toys", "food", None, "toys", None, "food"],
        "channel": ["web", "store", "web", "web", "app", "app", None, "store"],
    }
)
#: As of 2024-02-01 only a's first two purchases count; as of 2024-03-01, a: toys 30 + 60,
#: books 10 (share 90/100), web twice of three purchases; b: one purchase without category
#: (its return, with one, is no purchase), in app; c: nothing known; d: one of each.
EXPECTED = pd.DataFrame(
    {
        "customer_id": ["a", "a", "b", "c", "d"],
        "as_of": pd.to_datetime(["2024-02-01"] + ["2024-03-01"] * 4),
        "n_categories": [2.0, 2.0, NAN, NAN, 1.0],
        "top_category_share": [0.75, 0.9, NAN, NAN, 1.0],
        "n_channels": [2.0, 2.0, 1.0, NAN, 1.0],
        "top_channel_share": [0.5, 2 / 3, 1.0, NAN, 1.0],
    }
)
CUTOFFS = ["2024-02-01", "2024-03-01"]


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
@pytest.mark.parametrize("cutoffs", [CUTOFFS, CUTOFFS[1:]], ids=["bucketed", "one-cutoff"])
def test_hand_built_history_gives_hand_computed_breadth(engine: str, cutoffs: list[str]) -> None:
    got = build_features(TX, as_of=cutoffs, engine=engine)
    want = EXPECTED[EXPECTED["as_of"].isin(pd.to_datetime(cutoffs))].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got[["customer_id", "as_of", *BREADTH]], want, check_dtype=False, atol=1e-12
    )
    assert_features_match(got, oracle_features(TX, as_of=cutoffs))


def test_any_time_cutoffs_and_one_breadth_column_match_the_oracle() -> None:
    cutoffs = ["2024-02-01T06:00:00", "2024-02-20T12:00:00", "2024-03-01T00:00:00"]
    for tx in (TX, TX.drop(columns="category"), TX.drop(columns=["category", "channel"])):
        got = build_features(tx, as_of=cutoffs)
        assert_features_match(got, oracle_features(tx, as_of=cutoffs))
    assert not set(BREADTH) & set(
        build_features(TX[["customer_id", "ts", "amount"]], as_of=CUTOFFS)
    )


def _features(tmp_path: Path, csv: str, *flags: str) -> tuple[int, str, Path]:
    src, out = tmp_path / "tx.csv", tmp_path / "f.parquet"
    src.write_text(csv)
    code = main(
        ["features", "--transactions", str(src), "--as-of", "2024-03-01", "--out", str(out), *flags]
    )
    return code, str(src), out


CSV = (
    "Kunde,Datum,Betrag,Warengruppe,Kanal\n"
    "a,2024-01-05,30,toys,web\na,2024-01-20,10,books,store\na,2024-02-10,60,toys,web\n"
    "d,2024-02-20,4,food, \n"
)
MAP = ["--customer-col", "Kunde", "--ts-col", "Datum", "--amount-col", "Betrag"]


def test_mapped_category_and_channel_columns_give_the_features(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, out = _features(
        tmp_path, CSV, *MAP, "--category-col", "Warengruppe", "--channel-col", "Kanal"
    )
    assert code == 0, capsys.readouterr().err
    got = pd.read_parquet(out).set_index("customer_id")
    assert got.loc["a", BREADTH].tolist() == pytest.approx([2.0, 0.9, 2.0, 2 / 3])
    assert got.loc["d", "n_categories"] == 1.0
    assert np.isnan(got.loc["d", "n_channels"])  # a blank channel is unknown


def test_a_category_column_without_values_is_ignored_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = "customer_id,ts,amount,category,channel\nc1,2024-01-05,10,,web\nc2,2024-01-20,3,,app\n"
    code, _, out = _features(tmp_path, csv)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "tx.csv" in err and "'category'" in err and "ignored" in err
    cols = set(pd.read_parquet(out).columns)
    assert {"n_channels", "top_channel_share"} <= cols
    assert not {"n_categories", "top_category_share"} & cols


def test_a_mapped_column_the_file_lacks_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, src, out = _features(tmp_path, CSV, *MAP, "--channel-col", "Vertriebsweg")
    err = capsys.readouterr().err
    assert code == 2
    assert "'Vertriebsweg'" in err and "--channel-col" in err and src in err
    assert "Traceback" not in err and not out.exists()


def test_load_inputs_keeps_category_and_channel(tmp_path: Path) -> None:
    src = tmp_path / "tx.csv"
    src.write_text(CSV)
    cm = ColumnMap("Kunde", "Datum", "Betrag", category_col="Warengruppe", channel_col="Kanal")
    tx = load_inputs(src, columns=cm).transactions
    assert list(tx.columns) == ["customer_id", "ts", "amount", "category", "channel"]
    assert tx["category"].tolist() == ["toys", "books", "toys", "food"]
    assert tx["channel"].isna().tolist() == [False, False, False, True]


def test_demo_training_uses_breadth_and_both_btyd_models(demo_workdir: Path) -> None:
    """The session's trained demo: breadth features are model inputs, the run records the
    purchase model chosen by holdout likelihood and both BTYD models' baselines."""
    import mlflow

    from churnclv import load_champion
    from churnclv.training import tracking_uri_for

    uri = tracking_uri_for(demo_workdir)
    champion = load_champion(uri)
    assert set(BREADTH) <= set(champion.churn.features_)
    run = mlflow.MlflowClient(uri).get_run(champion.churn_run_id).data
    loglik = {k: run.metrics[f"btyd_holdout_loglik_{k}"] for k in ("bgnbd", "mbgnbd")}
    assert run.params["btyd_purchase_model"] == max(loglik, key=loglik.__getitem__)
    for key in ("baseline_bgnbd_churn_roc_auc", "baseline_mbgnbd_churn_roc_auc"):
        assert 0.5 < run.metrics[key] <= 1.0
    assert "baseline_mbgnbd_gg_value_gini" in run.metrics


def test_inputs_without_category_or_channel_score_with_those_features_missing(
    demo_workdir: Path,
) -> None:
    """A model trained with breadth features scores inputs that lack the columns (as NaN)."""
    from churnclv import generate, load_champion
    from churnclv.training import tracking_uri_for

    champion = load_champion(tracking_uri_for(demo_workdir))
    data = generate(40, seed=2)
    tx = data.transactions[["customer_id", "ts", "amount"]]
    plain = build_features(tx, data.events, data.customers, as_of=data.as_of)
    assert not set(BREADTH) & set(plain.columns)
    with_nan = plain.assign(**dict.fromkeys(BREADTH, np.nan))
    for model in (champion.churn, champion.value):
        np.testing.assert_allclose(model.predict(plain), model.predict(with_nan))
