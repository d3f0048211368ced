"""Fit, evaluate out of time, track in MLflow, register, and gate the champion."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from churnclv._errors import InputError
from churnclv._io import InputTables
from churnclv.decisions import reference_distribution
from churnclv.features import build_features, build_labels
from churnclv.training._hybrid import fit_params, stack_btyd
from churnclv.training._metrics import churn_metrics, value_metrics
from churnclv.training._model import BoosterModel, ChurnModel, PyfuncBooster, ValueModel
from churnclv.training._registry import (
    ALIAS,
    CHURN_MODEL,
    EXPERIMENT,
    VALUE_MODEL,
    configure_mlflow,
    use_experiment,
)

__all__ = ["TrainResult", "fail_interrupted_runs", "train"]

Progress = Callable[[str], None]


@dataclass
class TrainResult:
    """What a training run produced."""

    run_id: str
    metrics: dict[str, float]
    churn_version: str
    value_version: str
    promoted: dict[str, bool] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    n_rows: dict[str, int] = field(default_factory=dict)


def _fingerprint(tables: InputTables) -> str:
    h = hashlib.sha256()
    for df in (tables.transactions, tables.events, tables.customers):
        if df is not None:
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def _git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cutoffs(
    first_ts: pd.Timestamp,
    as_of: pd.Timestamp,
    horizon: float,
    what: str,
    max_cutoffs: int,
    step_days: float = 30,
) -> list[pd.Timestamp]:
    """The validation cutoff (last) and the purged training cutoffs before it.

    The validation cutoff is ``as_of - horizon``; training cutoffs step back
    ``step_days`` from ``validation - horizon``, so every training label window
    ends before the validation rows' features begin, and none is earlier than
    60 days after the first purchase.
    """
    valid = (as_of - pd.Timedelta(days=horizon)).floor("D")
    earliest = first_ts + pd.Timedelta(days=60)
    cuts: list[pd.Timestamp] = []
    c = valid - pd.Timedelta(days=horizon)
    while c >= earliest and len(cuts) < max_cutoffs - 1:
        cuts.append(c)
        c = c - pd.Timedelta(days=step_days)
    cuts = [*sorted(cuts), valid]
    if len(cuts) < 2:
        need = first_ts + pd.Timedelta(days=60 + 2 * horizon)
        raise InputError(
            f"history too short for the {what} horizon of {horizon:g} days: training needs a "
            f"cutoff whose label window ends before the validation cutoff {valid.date()} "
            f"(data from "
            f"{first_ts.date()}, so as_of must be at least {need.date()}); "
            f"use a shorter --{what}-horizon-days"
        )
    return cuts


def _pip_requirements() -> list[str]:
    import lightgbm
    import mlflow

    return [f"mlflow=={mlflow.__version__}", f"lightgbm=={lightgbm.__version__}", "churnclv"]


def _log_model(model: BoosterModel, name: str, example: pd.DataFrame) -> tuple[str, str]:
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
    return str(info.registered_model_version), info.model_uri


def _champion_score(name: str, valid: pd.DataFrame, y: np.ndarray, kind: str) -> float | str | None:
    """The current champion's metric on this run's validation rows.

    Returns None when there is no champion, ``-inf`` when its artifact cannot be
    loaded (a working model should replace a broken one), and a string saying
    why when it cannot be compared on these rows (then nothing is promoted).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS}").unwrap_python_model().model
    except Exception:
        return float("-inf")
    missing = [c for c in model.features_ if c not in valid.columns]
    if missing:
        return (
            f"the champion needs features this run's data lacks ({', '.join(missing[:5])}); "
            "train with the same inputs to compare"
        )
    pred = model.predict(valid)
    if kind == "churn":
        return churn_metrics(y, pred)["churn_roc_auc"]
    return value_metrics(y, pred)["value_gini"]


def train(
    tables: InputTables,
    *,
    as_of: pd.Timestamp | str,
    tracking_uri: str,
    churn_horizon_days: float = 90,
    value_horizon_days: float = 365,
    promote: bool = False,
    max_cutoffs: int = 12,
    cutoff_step_days: float = 30,
    seed: int = 0,
    progress: Progress | None = None,
    churn_model: BoosterModel | None = None,
    value_model: BoosterModel | None = None,
) -> TrainResult:
    """Fit the churn and value models on monthly cutoffs and evaluate out of time.

    The training stack holds cutoffs 30 days apart whose label windows end at or
    before ``as_of``; the latest cutoff of each model is its out-of-time
    validation window. Metrics of model and baselines, params, the data
    fingerprint, window and git SHA are logged to MLflow; both models are
    registered. With ``promote`` each gets the alias ``champion`` when it beats
    the current champion on the same validation rows (or when there is none);
    a champion that cannot be compared on these rows is kept.

    ``churn_model`` and ``value_model`` replace the default estimators (any
    :class:`BoosterModel`-compatible object with ``fit``/``predict``).
    """
    say = progress or (lambda _msg: None)
    as_of = pd.Timestamp(as_of)
    tx = tables.transactions
    purchases = tx.loc[tx["amount"] > 0, "ts"]
    if purchases.empty or purchases.min() >= as_of:
        first = tx["ts"].min()
        raise InputError(f"as_of {as_of} is before all purchases (first transaction {first})")
    first_ts = purchases.min()
    churn_cuts = _cutoffs(
        first_ts, as_of, churn_horizon_days, "churn", max_cutoffs, cutoff_step_days
    )
    value_cuts = _cutoffs(
        first_ts, as_of, value_horizon_days, "value", max_cutoffs, cutoff_step_days
    )

    say(f"features for {len(set(churn_cuts) | set(value_cuts))} cutoffs")
    frame = build_features(
        tx, tables.events, tables.customers, as_of=sorted(set(churn_cuts) | set(value_cuts))
    )
    labels = build_labels(
        tx, frame, churn_horizon_days=churn_horizon_days, value_horizon_days=value_horizon_days
    )
    frame = frame.merge(labels, on=["customer_id", "as_of"], how="left", validate="one_to_one")
    say("BG/NBD + Gamma-Gamma per cutoff (hybrid features)")
    frame = stack_btyd(frame, churn_horizon_days, value_horizon_days)
    # The pair fitted as of `as_of` (rows before it only) travels with the models for scoring.
    now = build_features(tx, as_of=as_of)
    btyd_now = fit_params(now, churn_horizon_days, value_horizon_days)

    def split(cuts: list[pd.Timestamp], horizon: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        # Purged out-of-time split: a training row's label window must end by the validation
        # cutoff, so nothing the model learns from overlaps what it is judged on.
        rows = frame[frame["as_of"].isin(cuts)]
        purge = cuts[-1] - pd.Timedelta(days=horizon)
        return rows[rows["as_of"] <= purge], rows[rows["as_of"] == cuts[-1]]

    c_train, c_valid = split(churn_cuts, churn_horizon_days)
    v_train, v_valid = split(value_cuts, value_horizon_days)
    for what, rows, h in (
        ("churn", c_train, churn_horizon_days),
        ("value", v_train, value_horizon_days),
    ):
        if rows.empty:
            raise InputError(
                f"history too short for the {what} horizon of {h:g} days: no training cutoff "
                f"has its label window end before the validation cutoff; use a shorter "
                f"--{what}-horizon-days or a later --as-of"
            )
    train_cuts = sorted(c_train["as_of"].unique())
    # With three or more churn cutoffs the second latest is an out-of-time calibration fold.
    calibrate = len(train_cuts) >= 3
    c_fit = c_train[c_train["as_of"] < train_cuts[-1]] if calibrate else c_train
    c_cal = c_train[c_train["as_of"] == train_cuts[-1]] if calibrate else c_train.iloc[:0]
    say(f"churn model on {len(c_fit):,} rows")
    churn = (churn_model or ChurnModel(seed)).fit(c_fit, c_fit["churned"].to_numpy(int), seed=seed)
    if calibrate:
        churn.calibrate(c_cal, c_cal["churned"].to_numpy(int))
    say(f"value model on {len(v_train):,} rows")
    value = (value_model or ValueModel(seed)).fit(
        v_train, v_train["future_value"].clip(lower=0).to_numpy(float), seed=seed
    )
    churn.btyd_ = value.btyd_ = btyd_now
    value.reference_ = reference_distribution(c_valid, value.predict(c_valid))
    yc = c_valid["churned"].to_numpy(int)
    yv = v_valid["future_value"].to_numpy(float)
    p_churn = churn.predict(c_valid)
    p_value = value.predict(v_valid)
    metrics = churn_metrics(yc, p_churn) | value_metrics(yv, p_value)
    # Baselines on the same rows: recency ranks churn; the historical run rate ranks value.
    metrics |= {
        f"baseline_rfm_{k}": v for k, v in churn_metrics(yc, _recency_score(c_valid)).items()
    }
    run_rate = (
        v_valid["monetary_total"].clip(lower=0)
        / v_valid["tenure_days"].clip(lower=30)
        * value_horizon_days
    ).to_numpy(float)
    metrics |= {f"baseline_rfm_{k}": v for k, v in value_metrics(yv, run_rate).items()}
    # BTYD baselines on the same rows (fitted on each cutoff's own history).
    if c_valid["btyd_p_alive"].notna().all():
        p_bg = c_valid["btyd_p_no_purchase_churn"].to_numpy(float)
        metrics |= {f"baseline_bgnbd_{k}": v for k, v in churn_metrics(yc, p_bg).items()}
        p_dead = 1 - c_valid["btyd_p_alive"].to_numpy(float)
        metrics["baseline_bgnbd_palive_churn_roc_auc"] = churn_metrics(yc, p_dead)["churn_roc_auc"]
    if v_valid["btyd_clv_value"].notna().all():
        clv = v_valid["btyd_clv_value"].to_numpy(float)
        metrics |= {f"baseline_bgnbd_gg_{k}": v for k, v in value_metrics(yv, clv).items()}

    say("logging to MLflow")
    import mlflow

    configure_mlflow(tracking_uri)
    use_experiment(EXPERIMENT, tracking_uri)
    _fail_orphaned_runs()
    result_promoted: dict[str, bool] = {}
    reasons: dict[str, str] = {}
    owner = {"churnclv.pid": str(os.getpid()), "churnclv.host": socket.gethostname()}
    try:
        with mlflow.start_run(run_name=f"train-{as_of.date()}", tags=owner) as run:
            mlflow.log_params(
                {
                    "as_of": str(as_of),
                    "churn_horizon_days": churn_horizon_days,
                    "value_horizon_days": value_horizon_days,
                    "churn_cutoffs": ",".join(str(c.date()) for c in churn_cuts),
                    "value_cutoffs": ",".join(str(c.date()) for c in value_cuts),
                    "churn_validation_cutoff": str(churn_cuts[-1].date()),
                    "value_validation_cutoff": str(value_cuts[-1].date()),
                    "n_train_churn": len(c_train),
                    "n_valid_churn": len(c_valid),
                    "n_train_value": len(v_train),
                    "n_valid_value": len(v_valid),
                    "n_features": len(churn.features_),
                    "churn_best_iteration": churn.booster_.best_iteration,
                    "value_best_iteration": value.booster_.best_iteration,
                    "churn_calibration": getattr(churn, "calibration_", {}).get("method", "none"),
                    "churn_calibration_cutoff": str(pd.Timestamp(train_cuts[-1]).date())
                    if calibrate
                    else "none",
                    "seed": seed,
                }
            )
            mlflow.set_tags(
                {
                    "data_fingerprint": _fingerprint(tables),
                    "data_window": f"{tx['ts'].min()} .. {as_of}",
                    "git_sha": _git_sha(),
                }
            )
            mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
            mlflow.log_dict(
                {
                    "churn": churn.importance().round(3).to_dict(),
                    "value": value.importance().round(3).to_dict(),
                },
                "feature_importance.json",
            )
            mlflow.log_dict(
                {
                    "calibration": getattr(churn, "calibration_", {"method": "none"}),
                    "btyd": btyd_now,
                },
                "model_details.json",
            )
            _log_plots(churn, value, c_valid, yc, p_churn, v_valid, yv, p_value)
            say("registering models")
            churn_version, _ = _log_model(churn, CHURN_MODEL, c_valid)
            value_version, _ = _log_model(value, VALUE_MODEL, v_valid)
            if promote:
                from mlflow import MlflowClient

                client = MlflowClient()
                for name, version, new, kind, valid, y in (
                    (CHURN_MODEL, churn_version, metrics["churn_roc_auc"], "churn", c_valid, yc),
                    (VALUE_MODEL, value_version, metrics["value_gini"], "value", v_valid, yv),
                ):
                    old = _champion_score(name, valid, y, kind)
                    metric = "churn_roc_auc" if kind == "churn" else "value_gini"
                    if old is None:
                        win, why = bool(np.isfinite(new)), f"no champion yet; {metric}={new:.4f}"
                    elif isinstance(old, str):
                        win, why = False, old
                    else:
                        win = bool(np.isfinite(new) and new > old)
                        why = (
                            f"{metric} {new:.4f} vs champion {old:.4f} on the same validation rows"
                        )
                    if win:
                        client.set_registered_model_alias(name, ALIAS, version)
                    client.set_model_version_tag(
                        name,
                        version,
                        "promotion",
                        ("promoted: " if win else "not promoted: ") + why,
                    )
                    mlflow.set_tag(
                        f"promotion_{kind}", ("promoted: " if win else "not promoted: ") + why
                    )
                    result_promoted[kind] = win
                    reasons[kind] = why
            mlflow.log_text(json.dumps(reasons, indent=2), "promotion.json")
    except BaseException:
        # An interrupt can land inside start_run, after the run row exists but before the
        # context owns it: end every run this process left RUNNING, then re-raise.
        _fail_own_runs(owner)
        raise
    return TrainResult(
        run_id=run.info.run_id,
        metrics=metrics,
        churn_version=churn_version,
        value_version=value_version,
        promoted=result_promoted,
        reasons=reasons,
        n_rows={"churn_train": len(c_train), "value_train": len(v_train)},
    )


def _log_plots(
    churn: BoosterModel,
    value: BoosterModel,
    c_valid: pd.DataFrame,
    yc: np.ndarray,
    p_churn: np.ndarray,
    v_valid: pd.DataFrame,
    yv: np.ndarray,
    p_value: np.ndarray,
) -> None:
    import mlflow

    from churnclv.training import _plots as plots

    scores = {"model": p_churn, "RFM recency": _recency_score(c_valid)}
    if c_valid["btyd_p_no_purchase_churn"].notna().all():
        scores["BG/NBD"] = c_valid["btyd_p_no_purchase_churn"].to_numpy(float)
    figures = {
        "plots/churn_roc.png": plots.roc_plot(yc, scores),
        "plots/churn_calibration.png": plots.calibration_plot(yc, p_churn),
        "plots/churn_gains.png": plots.gains_plot(yc, scores),
        "plots/value_deciles.png": plots.value_deciles_plot(yv, p_value),
        "plots/churn_importance.png": plots.importance_plot(
            churn.importance(), "Churn model: gain"
        ),
        "plots/value_importance.png": plots.importance_plot(
            value.importance(), "Value model: gain"
        ),
    }
    for path, fig in figures.items():
        mlflow.log_figure(fig, path)


def fail_interrupted_runs() -> None:
    """Mark FAILED the runs this process left RUNNING; call once an interrupt has unwound.

    An interrupt that lands inside one of MLflow's database sessions leaves that
    connection holding sqlite's write lock for as long as the exception's traceback
    keeps it alive, so cleanup attempted while the exception propagates fails with
    "database is locked". Called after the traceback is gone (the CLI does), a
    garbage collection closes that connection, rolling its transaction back.
    """
    import gc
    import sys

    if "mlflow" not in sys.modules:
        return
    gc.collect()
    _fail_own_runs({"churnclv.pid": str(os.getpid()), "churnclv.host": socket.gethostname()})


def _fail_own_runs(owner: dict[str, str]) -> None:
    from mlflow import MlflowClient

    try:
        client = MlflowClient()
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            return
        query = (
            "attributes.status = 'RUNNING' and "
            f"tags.`churnclv.pid` = '{owner['churnclv.pid']}' and "
            f"tags.`churnclv.host` = '{owner['churnclv.host']}'"
        )
        for run in client.search_runs([exp.experiment_id], query):
            client.set_terminated(run.info.run_id, status="FAILED")
    except Exception:  # best effort: the next training fails orphans anyway
        pass


def _fail_orphaned_runs() -> None:
    """Mark FAILED the runs this host left RUNNING when their process died (e.g. SIGKILL).

    A run killed without a chance to end itself stays RUNNING forever; its
    ``churnclv.pid`` tag tells whether the process that owned it is gone.
    """
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recency_score(frame: pd.DataFrame) -> np.ndarray:
    """RFM heuristic churn score: recency relative to the usual gap (bigger = likelier)."""
    gap = frame["gap_mean_days"].fillna(frame["gap_mean_days"].median()).fillna(30.0)
    return (frame["recency_days"] / gap.clip(lower=1.0)).to_numpy(float)
