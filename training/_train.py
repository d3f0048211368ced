"""Fit, evaluate out of time, track in MLflow, register, and gate the champion."""

from __future__ import annotations

import hashlib
import json
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
from churnclv.features import build_features, build_labels, monthly_cutoffs
from churnclv.training._metrics import churn_metrics, value_metrics
from churnclv.training._model import BoosterModel, ChurnModel, PyfuncBooster, ValueModel
from churnclv.training._registry import (
    ALIAS,
    CHURN_MODEL,
    EXPERIMENT,
    VALUE_MODEL,
    configure_mlflow,
)

__all__ = ["TrainResult", "train"]

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
    first_ts: pd.Timestamp, as_of: pd.Timestamp, horizon: float, what: str, max_cutoffs: int
) -> list[pd.Timestamp]:
    cuts = monthly_cutoffs(first_ts, as_of, horizon, max_cutoffs=max_cutoffs)
    if len(cuts) < 2:
        need = first_ts + pd.Timedelta(days=60 + 30 + horizon)
        raise InputError(
            f"history too short for the {what} horizon of {horizon:g} days: training needs two "
            f"cutoffs whose label windows end by as_of {as_of.date()} (data from "
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
    churn_cuts = _cutoffs(first_ts, as_of, churn_horizon_days, "churn", max_cutoffs)
    value_cuts = _cutoffs(first_ts, as_of, value_horizon_days, "value", max_cutoffs)

    say(f"features for {len(set(churn_cuts) | set(value_cuts))} cutoffs")
    frame = build_features(
        tx, tables.events, tables.customers, as_of=sorted(set(churn_cuts) | set(value_cuts))
    )
    labels = build_labels(
        tx, frame, churn_horizon_days=churn_horizon_days, value_horizon_days=value_horizon_days
    )
    frame = frame.merge(labels, on=["customer_id", "as_of"], how="left", validate="one_to_one")

    def split(cuts: list[pd.Timestamp]) -> tuple[pd.DataFrame, pd.DataFrame]:
        rows = frame[frame["as_of"].isin(cuts)]
        return rows[rows["as_of"] < cuts[-1]], rows[rows["as_of"] == cuts[-1]]

    c_train, c_valid = split(churn_cuts)
    v_train, v_valid = split(value_cuts)
    say(f"churn model on {len(c_train):,} rows")
    churn = (churn_model or ChurnModel(seed)).fit(
        c_train, c_train["churned"].to_numpy(int), seed=seed
    )
    say(f"value model on {len(v_train):,} rows")
    value = (value_model or ValueModel(seed)).fit(
        v_train, v_train["future_value"].clip(lower=0).to_numpy(float), seed=seed
    )

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

    say("logging to MLflow")
    import mlflow

    configure_mlflow(tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    result_promoted: dict[str, bool] = {}
    reasons: dict[str, str] = {}
    with mlflow.start_run(run_name=f"train-{as_of.date()}") as run:
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
                    why = f"{metric} {new:.4f} vs champion {old:.4f} on the same validation rows"
                if win:
                    client.set_registered_model_alias(name, ALIAS, version)
                client.set_model_version_tag(
                    name, version, "promotion", ("promoted: " if win else "not promoted: ") + why
                )
                mlflow.set_tag(
                    f"promotion_{kind}", ("promoted: " if win else "not promoted: ") + why
                )
                result_promoted[kind] = win
                reasons[kind] = why
        mlflow.log_text(json.dumps(reasons, indent=2), "promotion.json")
    return TrainResult(
        run_id=run.info.run_id,
        metrics=metrics,
        churn_version=churn_version,
        value_version=value_version,
        promoted=result_promoted,
        reasons=reasons,
        n_rows={"churn_train": len(c_train), "value_train": len(v_train)},
    )


def _recency_score(frame: pd.DataFrame) -> np.ndarray:
    """RFM heuristic churn score: recency relative to the usual gap (bigger = likelier)."""
    gap = frame["gap_mean_days"].fillna(frame["gap_mean_days"].median()).fillna(30.0)
    return (frame["recency_days"] / gap.clip(lower=1.0)).to_numpy(float)
