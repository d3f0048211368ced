"""`churnclv export` bundles and `--model-uri`: a bundle scores as the registry champion does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv import champion_from_uri, export_bundle, load_bundle, load_champion
from churnclv.cli import main
from churnclv.training import CHURN_MODEL, VALUE_MODEL, bundle_policy, run_record, tracking_uri_for

pytestmark = pytest.mark.slow

UPLIFT_MODEL = "churnclv-uplift"


def _inputs(work: Path) -> list[str]:
    data = work / "data"
    return [
        "--transactions", str(data / "transactions.parquet"),
        "--events", str(data / "events.parquet"),
        "--customers", str(data / "customers.parquet"),
        "--as-of", "2024-01-01",
    ]  # fmt: skip


def _assert_same_scores(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        if pd.api.types.is_numeric_dtype(a[col]) and not pd.api.types.is_bool_dtype(a[col]):
            np.testing.assert_allclose(
                a[col].to_numpy(float), b[col].to_numpy(float), rtol=0, atol=1e-9, err_msg=col
            )
        else:
            pd.testing.assert_series_equal(a[col], b[col], check_names=True)


@pytest.fixture(scope="module")
def bundle(demo_workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo champion exported by `churnclv export`."""
    out = tmp_path_factory.mktemp("models")
    assert main(["export", "--out", str(out), "--workdir", str(demo_workdir)]) == 0
    (folder,) = out.iterdir()
    return folder


def test_export_writes_mlflow_model_dirs_policy_reference_and_schema(
    bundle: Path, demo_workdir: Path
) -> None:
    """The bundle holds every champion's MLflow model directory (the demo's uplift model
    too), the policy, reference and schema."""
    champion = load_champion(tracking_uri_for(demo_workdir))
    assert bundle.name == (
        f"churnclv-churn-v{champion.churn_version}-value-v{champion.value_version}"
        f"-uplift-v{champion.uplift_version}"
    )
    for kind in ("churn", "value", "uplift"):
        assert (bundle / kind / "MLmodel").is_file()
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["model_version"] == champion.model_version
    assert manifest["models"]["churn"]["run_id"] == champion.churn_run_id
    assert json.loads((bundle / "reference.json").read_text()) == champion.value.reference_
    schema = json.loads((bundle / "schema.json").read_text())
    assert schema["churn"]["features"] == list(champion.churn.features_)
    assert bundle_policy(str(bundle)) == bundle / "policy.yaml"
    record = run_record("sqlite:///unused.db", champion.churn_run_id, str(bundle))
    assert (
        record["params"]["churn_horizon_days"]
        == manifest["models"]["churn"]["params"]["churn_horizon_days"]
    )


def test_bundle_scores_equal_registry_champion_on_fresh_workdir(
    bundle: Path, demo_workdir: Path, tmp_path: Path
) -> None:
    """`score --model-uri <bundle>` with an empty work directory equals the registry champion."""
    fresh = tmp_path / "fresh"
    via_bundle, via_registry = tmp_path / "bundle.parquet", tmp_path / "registry.parquet"
    score = ["score", *_inputs(demo_workdir)]
    assert (
        main(
            [*score, "--out", str(via_bundle), "--model-uri", str(bundle), "--workdir", str(fresh)]
        )
        == 0
    )
    assert not (fresh / "mlruns.db").exists()  # no registry was needed or created
    assert main([*score, "--out", str(via_registry), "--workdir", str(demo_workdir)]) == 0
    _assert_same_scores(pd.read_parquet(via_bundle), pd.read_parquet(via_registry))


def test_load_bundle_and_models_uris_give_the_champion(bundle: Path, demo_workdir: Path) -> None:
    """A bundle, an alias URI and a version URI all load the registry's champion pair (the
    bundle and the alias URI with the uplift champion too; a version URI names the pair)."""
    uri = tracking_uri_for(demo_workdir)
    champion = load_champion(uri)
    pair = f"churn:v{champion.churn_version}+value:v{champion.value_version}"
    for other, version in (
        (load_bundle(bundle), champion.model_version),
        (champion_from_uri(uri, f"file://{bundle}"), champion.model_version),
        (champion_from_uri(uri, "models:/churnclv-value@champion"), champion.model_version),
        (champion_from_uri(uri, f"models:/churnclv-value/{champion.value_version}"), pair),
        (champion_from_uri(uri, f"models:/churnclv-churn/{champion.churn_version}"), pair),
    ):
        assert other.model_version == version
        assert (other.churn_run_id, other.value_run_id) == (
            champion.churn_run_id,
            champion.value_run_id,
        )
        assert other.churn_horizon_days == champion.churn_horizon_days
        assert other.value.features_ == champion.value.features_
        assert (other.uplift is None) == (version == pair)
        assert (other.uplift_note is None) == (version != pair)


def test_an_alias_pairs_the_uplift_model_at_that_alias(demo_workdir: Path, tmp_path: Path) -> None:
    """models:/churnclv-churn@ALIAS loads churnclv-uplift@ALIAS with the pair, as @champion
    does; without that alias the uplift champion is left out, and the note says so."""
    from mlflow import MlflowClient

    shutil.copy(demo_workdir / "mlruns.db", tmp_path / "mlruns.db")  # artifacts stay shared
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    champion = load_champion(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name, version in (
        (CHURN_MODEL, champion.churn_version),
        (VALUE_MODEL, champion.value_version),
        (UPLIFT_MODEL, champion.uplift_version),
    ):
        client.set_registered_model_alias(name, "challenger", str(version))
    paired = champion_from_uri(uri, f"models:/{CHURN_MODEL}@challenger")
    assert paired.model_version == champion.model_version
    assert paired.uplift.actions_ == champion.uplift.actions_
    assert paired.uplift_note is None
    client.delete_registered_model_alias(UPLIFT_MODEL, "challenger")
    alone = champion_from_uri(uri, f"models:/{VALUE_MODEL}@challenger")
    assert alone.uplift is None
    assert f"{UPLIFT_MODEL} has no alias 'challenger'" in alone.uplift_note


def test_score_with_a_version_uri_notes_the_uplift_champion_left_out(
    demo_workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`score --model-uri models:/churnclv-churn/N` scores by the policy formula and says
    why the registry's uplift champion is not used."""
    champion = load_champion(tracking_uri_for(demo_workdir))
    out = tmp_path / "s.parquet"
    uri = f"models:/{CHURN_MODEL}/{champion.churn_version}"
    args = ["score", *_inputs(demo_workdir), "--out", str(out), "--model-uri", uri]
    store = ["--tracking-uri", tracking_uri_for(demo_workdir), "--workdir", str(tmp_path)]
    capsys.readouterr()
    assert main([*args, *store]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"{uri} pairs no uplift model" in err
    assert f"{UPLIFT_MODEL}@champion v{champion.uplift_version} is left out" in err
    scored = pd.read_parquet(out)
    assert set(scored["action_basis"]) == {"policy"}
    assert not [c for c in scored.columns if c.startswith("uplift_")]


def test_export_bundle_replaces_an_older_bundle(bundle: Path, demo_workdir: Path) -> None:
    """Exporting again under the same name replaces the folder whole."""
    stale = bundle.parent / "again"
    stale.mkdir()
    (stale / "leftover.txt").write_text("old")
    folder = export_bundle(tracking_uri_for(demo_workdir), bundle.parent, name="again")
    assert folder == stale
    assert not (folder / "leftover.txt").exists()
    assert (folder / "bundle.json").is_file()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/other-model@champion", "must be churnclv-churn or churnclv-value"),
        ("models:/churnclv-churn@no-such-alias", "not found"),
        ("models:/churnclv-churn/x", "use models:/churnclv-churn@ALIAS"),
        ("no-such-folder", "is not a churnclv bundle"),
    ],
)
def test_bad_model_uri_exits_2(
    uri: str, message: str, demo_workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model URI that names no bundle or registered pair is a usage error (exit 2)."""
    out = tmp_path / "s.parquet"
    args = ["score", *_inputs(demo_workdir), "--out", str(out), "--model-uri", uri]
    code = main([*args, "--workdir", str(demo_workdir)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_monitor_measures_drift_on_the_event_types_of_the_model_uri(
    bundle: Path, demo_workdir: Path, tmp_path: Path
) -> None:
    """`monitor --model-uri <bundle>` against a store without champions compares the event
    features the bundle's models read (their valued types too), not the default types."""
    from mlflow import MlflowClient

    from churnclv._cli_monitor import champion_vocabulary
    from churnclv.features._vocabulary import model_vocabulary

    fresh = tmp_path / "fresh"
    shutil.copytree(demo_workdir / "snapshots", fresh / "snapshots")  # scored by these models
    shutil.copy(demo_workdir / "mlruns.db", tmp_path / "mlruns.db")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name in (CHURN_MODEL, VALUE_MODEL, UPLIFT_MODEL):
        client.delete_registered_model_alias(name, "champion")
    assert champion_vocabulary(uri) is None  # without --model-uri: the default event types
    models = load_bundle(bundle)
    types, valued = model_vocabulary(models.churn, models.value, models.uplift)
    assert valued  # the demo's models read event values, which the default types lack
    assert champion_vocabulary(uri, str(bundle)) == (types, valued)
    args = ["monitor", *_inputs(demo_workdir), "--model-uri", str(bundle)]
    assert main([*args, "--workdir", str(fresh), "--tracking-uri", uri]) == 0
    psi = json.loads((fresh / "monitor.json").read_text())["drift"]["psi"]
    assert {f"ev_{t}_30d" for t in types} | {f"ev_{t}_value_last" for t in valued} <= set(psi)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("no-such-folder", "no-such-folder is not a churnclv bundle"),
        ("models:/churnclv-churn/999", "not found"),
    ],
)
def test_monitor_with_a_bad_model_uri_exits_2_before_writing(
    uri: str, message: str, demo_workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --model-uri naming no models stops `monitor` with exit 2 and writes no report."""
    args = ["monitor", *_inputs(demo_workdir), "--model-uri", uri, "--workdir", str(tmp_path)]
    assert main([*args, "--tracking-uri", tracking_uri_for(demo_workdir)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "monitor.json").exists()
    assert not (tmp_path / "monitoring").exists()
