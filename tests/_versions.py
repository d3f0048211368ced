"""Registry helpers of the tests: a client on a work directory, a new version of a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churnclv.training import CHURN_MODEL, tracking_uri_for


def client(work: Path) -> Any:
    from mlflow import MlflowClient

    from churnclv.training._registry import configure_mlflow

    uri = tracking_uri_for(work)
    configure_mlflow(uri)
    return MlflowClient(uri, uri)


def new_version(work: Path, name: str = CHURN_MODEL, of: str = "1", **metrics: float) -> str:
    """Register version ``of`` of ``name`` again (same artifact and validation rows).

    With ``metrics``, the new version's run is a copy of the original run's
    validation rows whose logged metrics are ``metrics`` (a version that
    measured those values on the same rows).
    """
    client_ = client(work)
    mv = client_.get_model_version(name, of)
    run_id = mv.run_id
    if metrics:
        import tempfile

        import mlflow

        source = client_.get_run(run_id)
        run = client_.create_run(source.info.experiment_id, run_name="copy")
        with tempfile.TemporaryDirectory() as tmp:
            folder = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="validation", dst_path=tmp
            )
            client_.log_artifacts(run.info.run_id, folder, "validation")
        for key, value in metrics.items():
            client_.log_metric(run.info.run_id, key, value)
        client_.set_terminated(run.info.run_id)
        run_id = run.info.run_id
    tags = {"model_kind": mv.tags["model_kind"]}
    new = client_.create_model_version(name, mv.source, run_id=run_id, tags=tags)
    return str(new.version)
