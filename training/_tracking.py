"""A training's MLflow run: its lifecycle, what it logs, and runs left RUNNING by dead processes.

A run is owned by the process that started it (tags ``churnclv.pid`` and
``churnclv.host``). A run that ends by an exception (an interrupt included)
ends FAILED; one left RUNNING by a process that was killed is marked FAILED
by the next training on the same host (:func:`start_tracking`); one an
interrupt left RUNNING in this process is marked FAILED by
:func:`fail_interrupted_runs`. Every clean-up talks to the store the run was
started in, never to MLflow's default store (which would create
``./mlflow.db`` or ``./mlruns`` in the current directory).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnclv._io import InputTables
from churnclv.training._evaluate import Evaluation, recency_score
from churnclv.training._mlflow_views import (
    NOTE,
    log_comparison,
    round_metrics,
    run_description,
    tag_experiment,
    training_run_name,
)
from churnclv.training._registry import _METRICS, EXPERIMENT, configure_mlflow, use_experiment
from churnclv.training._scorable import ScorableModel

if TYPE_CHECKING:
    from mlflow import ActiveRun

    from churnclv.training._fit import ChurnFit, ValueFit
    from churnclv.training._plan import Plan

__all__ = [
    "checkpoint",
    "fail_interrupted_runs",
    "log_run",
    "run_params",
    "start_tracking",
    "tracked_run",
    "training_run_name",
]


def checkpoint(should_stop: Callable[[], bool] | None) -> None:
    """Raise ``KeyboardInterrupt`` when ``should_stop`` says the training must stop.

    Called before each step that must not happen once a stop was asked for:
    registering the models, setting the champion aliases, ending the run FINISHED.
    """
    if should_stop is not None and should_stop():
        raise KeyboardInterrupt("training stopped: a stop was requested")


def fingerprint(tables: InputTables) -> str:
    """A short hash of the input tables' contents (tag ``data_fingerprint``)."""
    h = hashlib.sha256()
    for df in (tables.transactions, tables.events, tables.customers):
        if df is not None:
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def git_sha() -> str:
    """The commit checked out in the current directory (tag ``git_sha``), or ``unknown``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _owner() -> dict[str, str]:
    """The tags naming this process as a run's owner."""
    return {"churnclv.pid": str(os.getpid()), "churnclv.host": socket.gethostname()}


#: The tracking URIs where a run of this process may still be RUNNING (one entry per
#: run not ended cleanly): the stores :func:`fail_interrupted_runs` cleans up.
_STORES: list[str] = []


def start_tracking(tracking_uri: str, experiment: str = EXPERIMENT) -> None:
    """Point MLflow at ``tracking_uri`` and ``experiment``; fail runs orphaned by dead processes.

    The experiment is tagged as a model-development experiment, with a
    description (:func:`~churnclv.training._mlflow_views.tag_experiment`).
    """
    configure_mlflow(tracking_uri)
    use_experiment(experiment, tracking_uri)
    tag_experiment(experiment)
    _fail_orphaned_runs(tracking_uri)


@contextmanager
def tracked_run(run_name: str, tracking_uri: str) -> Iterator[ActiveRun]:
    """An MLflow run in ``tracking_uri`` owned by this process; on any exception every
    run it owns there ends FAILED.

    An interrupt can land inside ``start_run``, after the run row exists but
    before the context owns it: every run this process left RUNNING in
    ``tracking_uri`` is ended, then the exception propagates. Until the run ends
    cleanly ``tracking_uri`` stays listed for :func:`fail_interrupted_runs`, so a
    store that was busy during that first attempt is cleaned up again later, and a
    store whose runs all ended is never contacted again (it may be a server that is
    gone by then).
    """
    import mlflow

    owner = _owner()
    _STORES.append(tracking_uri)
    try:
        with mlflow.start_run(run_name=run_name, tags=owner) as run:
            yield run
    except BaseException:
        if _fail_own_runs(owner, tracking_uri):
            _STORES.remove(tracking_uri)
        raise
    _STORES.remove(tracking_uri)


def run_params(
    plan: Plan, churn: ChurnFit, value: ValueFit, kinds: Mapping[str, str], seed: int
) -> dict[str, Any]:
    """The params of a training run: its window, cutoffs, row counts and model choices."""
    refit = value.rows if value.refitted else None
    return {
        "as_of": str(plan.as_of),
        "churn_horizon_days": plan.churn_horizon_days,
        "value_horizon_days": plan.value_horizon_days,
        "churn_cutoffs": ",".join(str(c.date()) for c in plan.churn_cuts),
        "value_cutoffs": ",".join(str(c.date()) for c in plan.value_cuts),
        "churn_validation_cutoff": str(plan.churn_cuts[-1].date()),
        "value_validation_cutoff": str(plan.value_cuts[-1].date()),
        "n_train_churn": len(plan.c_train),
        "n_valid_churn": len(plan.c_valid),
        "n_train_value": len(plan.v_train),
        "n_valid_value": len(plan.v_valid),
        "value_refit_cutoffs": ",".join(str(c.date()) for c in sorted(refit["as_of"].unique()))
        if refit is not None
        else "none",
        "n_refit_value": len(refit) if refit is not None else 0,
        "n_features": len(churn.model.features_),
        "churn_model_kind": kinds["churn"],
        "value_model_kind": kinds["value"],
        "churn_best_iteration": churn.model.best_iteration_,
        "value_best_iteration": value.model.best_iteration_,
        "churn_calibration": getattr(churn.model, "calibration_", {}).get("method", "none"),
        "churn_calibration_cutoff": churn.calibration_cutoff,
        "btyd_purchase_model": plan.purchase.model,
        **value.selection,
        "event_types": ",".join(plan.vocabulary[0]) or "none",
        "valued_event_types": ",".join(plan.vocabulary[1]) or "none",
        "seed": seed,
    }


def log_run(
    data: Mapping[str, str],
    plan: Plan,
    churn: ChurnFit,
    value: ValueFit,
    evaluation: Evaluation,
    fallbacks: Mapping[str, str],
    kinds: Mapping[str, str],
    seed: int,
) -> None:
    """Log to the active run its params, tags, metrics, model details and plots.

    Tags: ``data`` (the feature source's ``data_fingerprint``, ``data_window`` and
    ``feature_engine``), the git SHA, why each fallback was
    used (``fallback_<kind>``), how each kind was evaluated
    (``evaluation_<kind>``) and the run's description in words
    (``mlflow.note.content``). Metrics: every finite one of ``evaluation``,
    rounded to 4 significant digits, except the champion gates' metrics
    (``churn_roc_auc``, ``value_gini``: ``churnclv models promote`` compares
    them with the champion's exactly). Artifacts: the ``comparison`` of model
    and baselines (HTML table and chart), plots, importance, model details.
    """
    import mlflow

    params = run_params(plan, churn, value, kinds, seed)
    mlflow.log_params(params)
    notes = {
        **{f"{k} fallback": why for k, why in fallbacks.items()},
        **{f"{k} evaluation": why for k, why in evaluation.reasons.items()},
    }
    mlflow.set_tags(
        {
            **data,
            "git_sha": git_sha(),
            **{f"fallback_{k}": why for k, why in fallbacks.items()},
            **{f"evaluation_{k}": why for k, why in evaluation.reasons.items()},
            NOTE: run_description(params, evaluation.metrics, notes),
        }
    )
    mlflow.log_metrics(round_metrics(evaluation.metrics, exact=tuple(_METRICS.values())))
    log_comparison(
        evaluation.metrics,
        f"{training_run_name(plan.as_of, plan.churn_horizon_days, plan.value_horizon_days)}: "
        "model against baselines",
    )
    mlflow.log_dict(
        {
            "churn": churn.model.importance().round(3).to_dict(),
            "value": value.model.importance().round(3).to_dict(),
        },
        "feature_importance.json",
    )
    mlflow.log_dict(
        {
            "calibration": getattr(churn.model, "calibration_", {"method": "none"}),
            "btyd": plan.btyd_now,
            "model_kinds": kinds,
            "fallbacks": fallbacks,
        },
        "model_details.json",
    )
    _log_plots(churn.model, value.model, plan, evaluation)


def _log_plots(
    churn: ScorableModel, value: ScorableModel, plan: Plan, evaluation: Evaluation
) -> None:
    """Log the importance plots, and the evaluation plots of what was evaluated."""
    import mlflow

    from churnclv.training import _plots as plots
    from churnclv.training._plan import purchase_model_name

    c_valid, yc, p_churn = plan.c_valid, evaluation.yc, evaluation.p_churn
    figures = {
        "plots/churn_importance.png": plots.importance_plot(
            churn.importance(), "Churn model: gain"
        ),
        "plots/value_importance.png": plots.importance_plot(
            value.importance(), "Value model: gain"
        ),
    }
    if p_churn is not None:
        scores = {"model": p_churn, "RFM recency": recency_score(c_valid)}
        if c_valid["btyd_p_no_purchase_churn"].notna().all():
            btyd = purchase_model_name(plan.purchase.model)
            scores[btyd] = c_valid["btyd_p_no_purchase_churn"].to_numpy(float)
        if len(np.unique(yc)) == 2:  # no ROC curve for validation rows of one class
            figures["plots/churn_roc.png"] = plots.roc_plot(yc, scores)
        figures["plots/churn_calibration.png"] = plots.calibration_plot(yc, p_churn)
        figures["plots/churn_gains.png"] = plots.gains_plot(yc, scores)
    if evaluation.p_value is not None:
        figures["plots/value_deciles.png"] = plots.value_deciles_plot(
            evaluation.yv, evaluation.p_value
        )
    for path, fig in figures.items():
        mlflow.log_figure(fig, path)


def fail_interrupted_runs(tracking_uri: str | None = None) -> None:
    """Mark FAILED the runs this process left RUNNING; call once an interrupt has unwound.

    Only the store ``tracking_uri`` is touched, or without it every store where
    a run of this process did not end cleanly (:func:`tracked_run`); with none,
    nothing is, so a failure before any run started creates no MLflow store.

    An interrupt that lands inside one of MLflow's database sessions leaves that
    connection holding sqlite's write lock for as long as the exception's traceback
    keeps it alive, so cleanup attempted while the exception propagates fails with
    "database is locked". Called after the traceback is gone (the CLI does), a
    garbage collection closes that connection, rolling its transaction back.

    Examples
    --------
    >>> from churnclv.training import fail_interrupted_runs
    >>> fail_interrupted_runs("sqlite:///nowhere/mlruns.db")  # no run started there: no-op
    """
    import gc
    import sys

    stores = [tracking_uri] if tracking_uri is not None else list(_STORES)
    if "mlflow" not in sys.modules or not any(s in _STORES for s in stores):
        return
    gc.collect()
    for store in dict.fromkeys(stores):
        if store in _STORES and _fail_own_runs(_owner(), store):
            while store in _STORES:
                _STORES.remove(store)


def _fail_own_runs(owner: dict[str, str], tracking_uri: str) -> bool:
    """Best effort: mark FAILED the runs ``owner`` left RUNNING in ``tracking_uri``;
    whether that worked."""
    from mlflow import MlflowClient

    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            return True
        query = (
            "attributes.status = 'RUNNING' and "
            f"tags.`churnclv.pid` = '{owner['churnclv.pid']}' and "
            f"tags.`churnclv.host` = '{owner['churnclv.host']}'"
        )
        for run in client.search_runs([exp.experiment_id], query):
            client.set_terminated(run.info.run_id, status="FAILED")
    except Exception:  # best effort: the next training fails orphans anyway
        return False
    return True


def _fail_orphaned_runs(tracking_uri: str) -> None:
    """Mark FAILED the runs this host left RUNNING in ``tracking_uri`` when their process
    died (e.g. SIGKILL).

    A run killed without a chance to end itself stays RUNNING forever; its
    ``churnclv.pid`` tag tells whether the process that owned it is gone.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return
    host = socket.gethostname()
    for run in client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        if tags.get("churnclv.host") != host or "churnclv.pid" not in tags:
            continue
        pid = int(tags["churnclv.pid"])
        if pid == os.getpid() or _alive(pid):
            continue
        client.set_tag(
            run.info.run_id, "churnclv.failure", f"process {pid} ended without finishing"
        )
        client.set_terminated(run.info.run_id, status="FAILED")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
