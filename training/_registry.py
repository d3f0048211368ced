"""MLflow tracking and registry: where runs go, what the champion is, how it loads."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from churnclv._errors import ChurnclvError, InputError
from churnclv.training._model import BoosterModel

__all__ = [
    "ALIAS",
    "CHURN_MODEL",
    "VALUE_MODEL",
    "Champion",
    "champion_plots",
    "configure_mlflow",
    "load_champion",
    "log_report",
    "tracking_uri_for",
    "use_experiment",
]

CHURN_MODEL = "churnclv-churn"
VALUE_MODEL = "churnclv-value"
ALIAS = "champion"
EXPERIMENT = "churnclv"


def tracking_uri_for(workdir: str | os.PathLike[str], override: str | None = None) -> str:
    """The tracking URI: ``override`` if given, else ``sqlite:///<workdir>/mlruns.db``."""
    if override:
        return override
    path = Path(workdir).resolve() / "mlruns.db"
    return f"sqlite:///{path}"


def configure_mlflow(tracking_uri: str) -> None:
    """Point MLflow's tracking and registry at ``tracking_uri`` and quiet its chatter."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def use_experiment(name: str, tracking_uri: str) -> None:
    """Make ``name`` the active experiment, creating it with artifacts beside a sqlite store.

    MLflow's default artifact root for a database store is ``./mlruns`` of the
    current directory, so runs started from different folders would scatter their
    models; for ``sqlite:///<dir>/mlruns.db`` they go to ``<dir>/mlartifacts/<name>``.
    """
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    if client.get_experiment_by_name(name) is None:
        location = None
        if tracking_uri.startswith("sqlite:///"):
            db = Path(tracking_uri.removeprefix("sqlite:///"))
            location = (db.parent / "mlartifacts" / name).resolve().as_uri()
        try:
            client.create_experiment(name, artifact_location=location)
        except Exception:  # created concurrently by another training: use theirs
            if client.get_experiment_by_name(name) is None:
                raise
    mlflow.set_experiment(name)


@dataclass(frozen=True)
class Champion:
    """The champion churn and value models and what they were trained with."""

    churn: BoosterModel
    value: BoosterModel
    churn_version: str
    value_version: str
    churn_run_id: str
    value_run_id: str
    churn_horizon_days: float
    value_horizon_days: float

    @property
    def model_version(self) -> str:
        """A compact version string, e.g. ``churn:v3+value:v2``."""
        return f"churn:v{self.churn_version}+value:v{self.value_version}"


def _require_aliases(tracking_uri: str) -> None:
    """For a sqlite store, check read-only that both champion aliases exist.

    Opening a sqlite store through MLflow creates the file and runs its schema
    migrations; a service polling for a champion while ``churnclv train``
    creates the same store then raced it (``table _alembic_tmp_tags already
    exists``, seen with two service workers). Reading the alias table directly
    touches nothing: a store that is missing, still being created, or without
    both aliases gets the usual "no registered model" error.
    """
    import sqlite3

    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    missing = "run `churnclv train --promote` (or `churnclv demo`) first"
    if not path.is_file():
        raise InputError(f"no tracking store at {path}; {missing}")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute(
                "SELECT name FROM registered_model_aliases WHERE alias = ? AND name IN (?, ?)",
                (ALIAS, CHURN_MODEL, VALUE_MODEL),
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:  # no such table yet, or the file is not a finished store
        rows = []
    found = {r[0] for r in rows}
    for name in (CHURN_MODEL, VALUE_MODEL):
        if name not in found:
            raise InputError(f"no registered model {name}@{ALIAS} in {tracking_uri}; {missing}")


def load_champion(tracking_uri: str) -> Champion:
    """Load both ``@champion`` models from the registry at ``tracking_uri``.

    Raises
    ------
    InputError
        When no champion is registered (train with ``--promote`` first).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    _require_aliases(tracking_uri)
    configure_mlflow(tracking_uri)
    client = MlflowClient()
    loaded: dict[str, tuple[BoosterModel, str, str, dict[str, str]]] = {}
    for name in (CHURN_MODEL, VALUE_MODEL):
        try:
            mv = client.get_model_version_by_alias(name, ALIAS)
        except MlflowException:
            raise InputError(
                f"no registered model {name}@{ALIAS} in {tracking_uri}; "
                "run `churnclv train --promote` (or `churnclv demo`) first"
            ) from None
        try:
            pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS}")
            model = pyfunc.unwrap_python_model().model
        except Exception as exc:  # a corrupted artifact is not the user's input
            raise ChurnclvError(
                f"cannot load {name}@{ALIAS} (version {mv.version}): {exc}"
            ) from exc
        params = client.get_run(str(mv.run_id)).data.params
        loaded[name] = (model, str(mv.version), str(mv.run_id), params)
    churn, value = loaded[CHURN_MODEL], loaded[VALUE_MODEL]
    return Champion(
        churn=churn[0],
        value=value[0],
        churn_version=churn[1],
        value_version=value[1],
        churn_run_id=churn[2],
        value_run_id=value[2],
        churn_horizon_days=float(churn[3].get("churn_horizon_days", 90)),
        value_horizon_days=float(value[3].get("value_horizon_days", 365)),
    )


_MODEL_PLOTS = ("churn_calibration.png", "churn_gains.png", "value_deciles.png")


def champion_plots(tracking_uri: str, champion: Champion) -> dict[str, bytes]:
    """The champion run's evaluation PNGs (calibration, gains, value deciles), if logged."""
    import tempfile

    import mlflow

    configure_mlflow(tracking_uri)
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in _MODEL_PLOTS:
            run_id = champion.value_run_id if name.startswith("value") else champion.churn_run_id
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=f"plots/{name}", dst_path=tmp
                )
            except Exception:  # older runs have no plots: the report simply omits them
                continue
            out[f"model_{name}"] = Path(path).read_bytes()
    return out


def log_report(
    tracking_uri: str, report: Path, figures: dict[str, object], metrics: dict[str, float]
) -> str:
    """Log a decision report, its figures and campaign totals to experiment ``churnclv-scoring``."""
    import mlflow

    configure_mlflow(tracking_uri)
    use_experiment("churnclv-scoring", tracking_uri)
    with mlflow.start_run(run_name=f"report-{report.stem}") as run:
        mlflow.log_artifact(str(report), "report")
        for name, fig in figures.items():
            mlflow.log_figure(fig, f"report/{name}")
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
    return str(run.info.run_id)
