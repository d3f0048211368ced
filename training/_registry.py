"""The model registry: where runs go, registration, the champion gate, and loading champions.

A training registers one version of each model (:func:`register_models`); with
``promote`` each version is judged against the current champion on the same
validation rows (:func:`judge`), and only after both gates have run are the
winners given the ``champion`` alias (:func:`crown`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnclv._errors import ChurnclvError, InputError
from churnclv.training._champion import Champion
from churnclv.training._fallback import BTYDModel
from churnclv.training._metrics import churn_metrics, value_metrics
from churnclv.training._mlflow_views import describe_versions, tag_experiment
from churnclv.training._model import PyfuncBooster
from churnclv.training._scorable import ScorableModel

__all__ = [
    "ALIAS",
    "CHURN_MODEL",
    "EXPERIMENT",
    "UPLIFT_MODEL",
    "VALUE_MODEL",
    "Champion",
    "Promotion",
    "champion_plots",
    "configure_mlflow",
    "crown",
    "judge",
    "load_champion",
    "log_report",
    "register_models",
    "tracking_uri_for",
    "use_experiment",
]

CHURN_MODEL = "churnclv-churn"
VALUE_MODEL = "churnclv-value"
UPLIFT_MODEL = "churnclv-uplift"
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


@contextmanager
def _store_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` beside a sqlite store (nothing for others).

    Opening a new sqlite store runs MLflow's schema migrations; two trainings
    creating the same store at once raced them (``table latest_metrics already
    exists``). Where ``fcntl`` is missing (Windows) no lock is taken.
    """
    if sys.platform == "win32" or not tracking_uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    db = Path(tracking_uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def use_experiment(name: str, tracking_uri: str) -> None:
    """Make ``name`` the active experiment, creating it with artifacts beside a sqlite store.

    MLflow's default artifact root for a database store is ``./mlruns`` of the
    current directory, so runs started from different folders would scatter their
    models; for ``sqlite:///<dir>/mlruns.db`` they go to ``<dir>/mlartifacts/<name>``.
    A new sqlite store is created under :func:`_store_lock`.
    """
    with _store_lock(tracking_uri):
        _use_experiment(name, tracking_uri)


def _use_experiment(name: str, tracking_uri: str) -> None:
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


#: What to do when no champion at all is registered.
_NO_CHAMPION = "run `churnclv train --promote` (or `churnclv demo`) first"


def _require_aliases(tracking_uri: str) -> None:
    """For a sqlite store, check read-only that at least one champion alias exists.

    Opening a sqlite store through MLflow creates the file and runs its schema
    migrations; a service polling for a champion while ``churnclv train``
    creates the same store then raced it (``table _alembic_tmp_tags already
    exists``, seen with two service workers). Reading the alias table directly
    touches nothing: a store that is missing, still being created, or without
    any champion alias gets the usual "no registered model" error.
    """
    import sqlite3

    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    if not path.is_file():
        raise InputError(f"no tracking store at {path}; {_NO_CHAMPION}")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute(
                "SELECT name FROM registered_model_aliases WHERE alias = ? AND name IN (?, ?, ?)",
                (ALIAS, CHURN_MODEL, VALUE_MODEL, UPLIFT_MODEL),
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:  # no such table yet, or the file is not a finished store
        rows = []
    if not rows:
        raise InputError(_none_registered(tracking_uri))


def _none_registered(tracking_uri: str) -> str:
    names = f"{CHURN_MODEL}@{ALIAS}, {VALUE_MODEL}@{ALIAS} or {UPLIFT_MODEL}@{ALIAS}"
    return f"no registered model {names} in {tracking_uri}; {_NO_CHAMPION}"


def load_champion(tracking_uri: str) -> Champion:
    """Load the ``@champion`` models (churn, value, uplift) from the registry at ``tracking_uri``.

    Every champion that exists is loaded; at least one is needed. A missing
    churn or value model is None in the result (:attr:`Champion.missing`).

    Parameters
    ----------
    tracking_uri : str
        The MLflow tracking and registry URI, e.g. ``sqlite:///work/mlruns.db``
        (:func:`tracking_uri_for` gives a work directory's).

    Returns
    -------
    Champion
        The models, their versions and runs, and the horizons they were trained for.

    Raises
    ------
    InputError
        When no champion at all is registered (train with ``--promote`` first).
    ChurnclvError
        When a champion's artifact cannot be loaded.

    See Also
    --------
    churnclv.train : trains the models and, with ``promote=True``, sets the champions.

    Examples
    --------
    A store without a champion says how to get one (:func:`churnclv.train`'s
    example loads a trained one):

    >>> import tempfile
    >>> from churnclv import InputError, load_champion
    >>> try:
    ...     load_champion(f"sqlite:///{tempfile.mkdtemp()}/mlruns.db")
    ... except InputError as exc:
    ...     print(str(exc).split("; ")[1])
    run `churnclv train --promote` (or `churnclv demo`) first
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    _require_aliases(tracking_uri)
    configure_mlflow(tracking_uri)
    client = MlflowClient()
    loaded: dict[str, tuple[ScorableModel, str, str, dict[str, str]]] = {}
    for name in (CHURN_MODEL, VALUE_MODEL):
        try:
            mv = client.get_model_version_by_alias(name, ALIAS)
        except MlflowException:
            continue  # scoring leaves this model's columns null
        params = client.get_run(str(mv.run_id)).data.params
        loaded[name] = (_load_version(name, mv), str(mv.version), str(mv.run_id), params)
    uplift, uplift_version = load_uplift_champion(tracking_uri)
    if not loaded and uplift is None:
        raise InputError(_none_registered(tracking_uri))
    churn, value = loaded.get(CHURN_MODEL), loaded.get(VALUE_MODEL)
    return Champion(
        churn=churn[0] if churn else None,
        value=value[0] if value else None,
        churn_version=churn[1] if churn else None,
        value_version=value[1] if value else None,
        churn_run_id=churn[2] if churn else None,
        value_run_id=value[2] if value else None,
        churn_horizon_days=float(churn[3].get("churn_horizon_days", 90)) if churn else 90.0,
        value_horizon_days=float(value[3].get("value_horizon_days", 365)) if value else 365.0,
        uplift=uplift,
        uplift_version=uplift_version,
    )


def load_uplift_champion(tracking_uri: str) -> tuple[Any, str | None]:
    """The ``churnclv-uplift@champion`` model and its version, or ``(None, None)``.

    A store without one (the usual case before ``churnclv train-uplift
    --promote``) gives ``(None, None)``; an artifact that cannot be loaded is an
    error, as for the other champions.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure_mlflow(tracking_uri)
    try:
        mv = MlflowClient().get_model_version_by_alias(UPLIFT_MODEL, ALIAS)
    except MlflowException:
        return None, None
    return _load_version(UPLIFT_MODEL, mv), str(mv.version)


def _load_version(name: str, mv: Any) -> Any:
    """The model behind registry version ``mv`` of ``name`` (its ``@champion``)."""
    import mlflow

    try:
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS}")
        return pyfunc.unwrap_python_model().model
    except Exception as exc:  # a corrupted artifact is not the user's input
        raise ChurnclvError(f"cannot load {name}@{ALIAS} (version {mv.version}): {exc}") from exc


_MODEL_PLOTS = ("churn_calibration.png", "churn_gains.png", "value_deciles.png")


def champion_plots(tracking_uri: str, champion: Champion) -> dict[str, bytes]:
    """The champion run's evaluation PNGs (calibration, gains, value deciles), if logged."""
    import mlflow

    configure_mlflow(tracking_uri)
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in _MODEL_PLOTS:
            run_id = champion.value_run_id if name.startswith("value") else champion.churn_run_id
            if run_id is None:  # no such champion: no plot
                continue
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=f"plots/{name}", dst_path=tmp
                )
            except Exception:  # older runs have no plots: the report simply omits them
                continue
            out[f"model_{name}"] = Path(path).read_bytes()
    return out


def log_report(
    tracking_uri: str,
    report: Path,
    figures: dict[str, object],
    metrics: dict[str, float],
    *,
    as_of: str | None = None,
    model_version: str | None = None,
) -> str:
    """Log a decision report, its figures and campaign totals to experiment ``churnclv-scoring``.

    The run is named for what it is (``decision report 2024-01-01
    churn:v1+value:v1`` with ``as_of`` and ``model_version``), described in
    words, and its metrics rounded to 4 significant digits.
    """
    import mlflow

    from churnclv.training._mlflow_views import NOTE, report_run_name, round_metrics

    configure_mlflow(tracking_uri)
    use_experiment("churnclv-scoring", tracking_uri)
    tag_experiment("churnclv-scoring")
    name = report_run_name(as_of, model_version)
    note = (
        f"Decision report `{report.name}`"
        + (f" of the scores as of {as_of}" if as_of else "")
        + (f", champion {model_version}" if model_version else "")
        + ": the report (`report/`), its figures and the campaign totals as metrics."
    )
    with mlflow.start_run(run_name=name, tags={NOTE: note}) as run:
        mlflow.log_artifact(str(report), "report")
        for fig_name, fig in figures.items():
            mlflow.log_figure(fig, f"report/{fig_name}")
        mlflow.log_metrics(round_metrics(metrics))
    return str(run.info.run_id)


def _pip_requirements() -> list[str]:
    import lightgbm
    import mlflow

    return [f"mlflow=={mlflow.__version__}", f"lightgbm=={lightgbm.__version__}", "churnclv"]


def _log_model(model: ScorableModel, name: str, example: pd.DataFrame) -> str:
    """Log ``model`` to the active run as a pyfunc model registered as ``name``; its version."""
    import mlflow
    from mlflow.models import infer_signature

    example = example[model.features_].head(5).copy()
    for col in model.categories_:
        example[col] = example[col].astype("string").astype(object)
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / "model_dir")
        signature = infer_signature(example, model.predict(example))
        info = mlflow.pyfunc.log_model(
            name=model.kind,
            python_model=PyfuncBooster(),
            artifacts={"model_dir": str(folder)},
            signature=signature,
            input_example=example,
            registered_model_name=name,
            pip_requirements=_pip_requirements(),
        )
    return str(info.registered_model_version)


def register_models(
    churn: ScorableModel,
    value: ScorableModel,
    examples: tuple[pd.DataFrame, pd.DataFrame],
    kinds: Mapping[str, str],
) -> dict[str, str]:
    """Register both models from the active run; their versions by kind.

    ``examples`` are rows of each model's input (their first five become the
    input example and signature); each version is tagged ``model_kind``.
    """
    from mlflow import MlflowClient

    versions = {
        "churn": _log_model(churn, CHURN_MODEL, examples[0]),
        "value": _log_model(value, VALUE_MODEL, examples[1]),
    }
    client = MlflowClient()
    for kind, name in _NAMES.items():
        client.set_model_version_tag(name, versions[kind], "model_kind", kinds[kind])
    return versions


#: The registered model of each kind.
_NAMES = {"churn": CHURN_MODEL, "value": VALUE_MODEL}
#: The metric each kind is judged by.
_METRICS = {"churn": "churn_roc_auc", "value": "value_gini"}


def _champion(name: str) -> tuple[bool, ScorableModel | None]:
    """Whether ``name@champion`` exists, and the model (None when it cannot be loaded)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return False, None
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS}").unwrap_python_model().model
    except Exception:
        return True, None
    return True, model


def _champion_score(
    model: ScorableModel | None, valid: pd.DataFrame, y: np.ndarray, kind: str
) -> float | str:
    """The current champion's metric on this run's validation rows.

    ``-inf`` when its artifact could not be loaded (a working model should
    replace a broken one), and a string saying why when it cannot be compared
    on these rows (then nothing is promoted).

    A champion fitted on labels that reach into this validation window (a value
    model refitted through its validation cutoff, see ``train(refit_value=...)``)
    would be scored in sample: it is judged by the out-of-time evaluation it
    recorded before its refit when that was on this same window (same cutoff and
    number of rows), and is otherwise not comparable.
    """
    if model is None:
        return float("-inf")
    missing = [c for c in model.features_ if c not in valid.columns]
    if missing:
        return (
            f"the champion needs features this run's data lacks ({', '.join(missing[:5])}); "
            "train with the same inputs to compare"
        )
    label_end = getattr(model, "label_end_", None)
    if label_end is not None and not valid.empty:
        cutoff = pd.Timestamp(valid["as_of"].max())
        if pd.Timestamp(label_end) > cutoff:
            ev = getattr(model, "evaluation_", None) or {}
            if ev.get("cutoff") == str(cutoff.date()) and ev.get("rows") == len(valid):
                return float(ev["value"])
            return (
                f"the champion was fitted on labels up to {label_end}, after this run's "
                f"validation cutoff {cutoff.date()}, so it cannot be judged on these rows"
            )
    pred = model.predict(valid)
    if kind == "churn":
        return churn_metrics(y, pred)["churn_roc_auc"]
    return value_metrics(y, pred)["value_gini"]


def _gate(
    name: str,
    kind: str,
    new: float,
    fallback: str | None,
    valid: pd.DataFrame,
    y: np.ndarray,
    *,
    at_least: bool = False,
) -> tuple[bool, str]:
    """Whether this run's ``kind`` model takes the champion alias, and why.

    A trained model must beat the champion on the same validation rows. A BTYD
    fallback (``fallback`` says why it was used) becomes champion only when
    there is none or the champion is itself a fallback (then the newer fit
    replaces it); it never replaces a trained champion. A trained model
    replaces a fallback champion whenever its own metric is finite. With
    ``at_least`` a tie wins too (``churnclv models promote``).
    """
    metric = _METRICS[kind]
    exists, model = _champion(name)
    if fallback is not None:
        if not exists:
            return True, "no champion yet; the BG/NBD fallback takes the alias"
        if isinstance(model, BTYDModel):
            return True, "BG/NBD fallback refitted; it replaces the previous fallback champion"
        if model is None:
            return True, "the champion cannot be loaded; BG/NBD fallback replaces it"
        return False, "a BG/NBD fallback never replaces a trained champion"
    if not exists:
        return bool(np.isfinite(new)), f"no champion yet; {metric}={new:.4f}"
    if isinstance(model, BTYDModel):
        return (
            bool(np.isfinite(new)),
            f"{metric}={new:.4f}; a trained model replaces the BG/NBD fallback champion",
        )
    old = _champion_score(model, valid, y, kind)
    if isinstance(old, str):
        return False, old
    win = bool(np.isfinite(new) and (new >= old if at_least else new > old))
    return win, f"{metric} {new:.4f} vs champion {old:.4f} on the same validation rows"


@dataclass
class Promotion:
    """The champion gates' verdicts: who wins (``promoted``), why, and the versions to crown."""

    promoted: dict[str, bool] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    winners: list[tuple[str, str]] = field(default_factory=list)


def judge(
    promote: bool,
    versions: Mapping[str, str],
    metrics: Mapping[str, float],
    fallbacks: Mapping[str, str],
    validation: Mapping[str, tuple[pd.DataFrame, np.ndarray]],
) -> Promotion:
    """Run both champion gates (with ``promote``) and log the verdicts to the active run.

    Each version gets a ``promotion`` tag and the run a ``promotion_<kind>``
    tag; the reasons go to ``promotion.json`` (empty without ``promote``), and
    the validation rows to ``validation/<kind>.parquet`` (for a later
    ``churnclv models promote``).
    Every gate runs (each loads and scores a champion) before any alias is set
    (:func:`crown`): an interrupt before the aliases changes no champion, and
    none lands between one model's promotion and the other's gate.
    ``validation`` holds each kind's validation rows and labels.
    """
    import mlflow
    from mlflow import MlflowClient

    from churnclv.training._admin import log_validation

    log_validation(dict(validation))
    result = Promotion()
    client = MlflowClient()
    for kind, name in _NAMES.items() if promote else ():
        valid, y = validation[kind]
        new = metrics.get(_METRICS[kind], float("nan"))
        win, why = _gate(name, kind, new, fallbacks.get(kind), valid, y)
        verdict = ("promoted: " if win else "not promoted: ") + why
        client.set_model_version_tag(name, versions[kind], "promotion", verdict)
        mlflow.set_tag(f"promotion_{kind}", verdict)
        result.promoted[kind] = win
        result.reasons[kind] = why
        if win:
            result.winners.append((name, versions[kind]))
    mlflow.log_text(json.dumps(result.reasons, indent=2), "promotion.json")
    verdicts = {k: ("promoted: " if result.promoted[k] else "not promoted: ") + why
                for k, why in result.reasons.items()}  # fmt: skip
    describe_versions(versions, _NAMES, metrics, verdicts)
    return result


def crown(promotion: Promotion) -> None:
    """Give the winners of :func:`judge` the ``champion`` alias, together."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for name, version in promotion.winners:
        client.set_registered_model_alias(name, ALIAS, version)
