"""Fit, evaluate out of time, track in MLflow, register, and gate the champion."""

from __future__ import annotations

import contextlib
import copy
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
from churnclv._interrupt import raise_if_interrupted
from churnclv._io import InputTables
from churnclv.decisions import reference_distribution
from churnclv.features import build_features, build_labels
from churnclv.training._fallback import BTYDModel
from churnclv.training._hybrid import fit_params, stack_btyd
from churnclv.training._metrics import churn_metrics, normalized_gini, value_metrics
from churnclv.training._model import BoosterModel, ChurnModel, PyfuncBooster, ValueModel
from churnclv.training._registry import (
    ALIAS,
    CHURN_MODEL,
    EXPERIMENT,
    VALUE_MODEL,
    configure_mlflow,
    use_experiment,
)
from churnclv.training._two_part import TwoPartValueModel

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
    #: Why a model kind is the BTYD fallback (absent when it was trained).
    fallbacks: dict[str, str] = field(default_factory=dict)
    #: ``{"churn": "lightgbm" | "btyd_fallback", "value": "tweedie" | "two_part" | ...}``.
    model_kinds: dict[str, str] = field(default_factory=dict)
    #: Every value candidate refitted on all training rows (``train(keep_candidates=True)``).
    value_candidates: dict[str, BoosterModel] = field(default_factory=dict)


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
) -> tuple[list[pd.Timestamp], str | None]:
    """The validation cutoff (last) and the purged training cutoffs before it.

    The validation cutoff is ``as_of - horizon``; training cutoffs step back
    ``step_days`` from ``validation - horizon``, so every training label window
    ends before the validation rows' features begin, and none is earlier than
    60 days after the first purchase. The second item says why no model can be
    trained (no training cutoff), else None.
    """
    valid = (as_of - pd.Timedelta(days=horizon)).floor("D")
    earliest = first_ts + pd.Timedelta(days=60)
    cuts: list[pd.Timestamp] = []
    c = valid - pd.Timedelta(days=horizon)
    while c >= earliest and len(cuts) < max_cutoffs - 1:
        cuts.append(c)
        c = c - pd.Timedelta(days=step_days)
    cuts = [*sorted(cuts), valid]
    if len(cuts) >= 2:
        return cuts, None
    need = first_ts + pd.Timedelta(days=60 + 2 * horizon)
    return cuts, (
        f"history too short for the {what} horizon of {horizon:g} days: training needs a "
        f"cutoff whose label window ends before the validation cutoff {valid.date()} "
        f"(data from {first_ts.date()}, so as_of must be at least {need.date()}, or use a "
        f"shorter --{what}-horizon-days)"
    )


def _refit_cutoffs(
    valid: pd.Timestamp, first_ts: pd.Timestamp, max_cutoffs: int, step_days: float
) -> list[pd.Timestamp]:
    """The cutoffs the final value model is refitted on: the validation cutoff and up to
    ``max_cutoffs - 1`` more, ``step_days`` apart before it (none earlier than 60 days
    after the first purchase).

    Every one of them has its label window end by ``as_of``; the purge gap between the
    training cutoffs and the validation cutoff is included, so the model that scores
    ``as_of`` has learned from the most recent labelled behaviour.
    """
    earliest = first_ts + pd.Timedelta(days=60)
    cuts = [valid - pd.Timedelta(days=step_days * k) for k in range(max_cutoffs)]
    return sorted(c for c in cuts if c >= earliest)


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


def _champion(name: str) -> tuple[bool, BoosterModel | None]:
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
    model: BoosterModel | None, valid: pd.DataFrame, y: np.ndarray, kind: str
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
) -> tuple[bool, str]:
    """Whether this run's ``kind`` model takes the champion alias, and why.

    A trained model must beat the champion on the same validation rows. A BTYD
    fallback (``fallback`` says why it was used) becomes champion only when
    there is none or the champion is itself a fallback (then the newer fit
    replaces it); it never replaces a trained champion. A trained model
    replaces a fallback champion whenever its own metric is finite.
    """
    metric = "churn_roc_auc" if kind == "churn" else "value_gini"
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
    win = bool(np.isfinite(new) and new > old)
    return win, f"{metric} {new:.4f} vs champion {old:.4f} on the same validation rows"


#: Fewest training rows a LightGBM model is fitted on; below it the BTYD fallback is used.
MIN_TRAIN_ROWS = 50


def _select_value_model(
    v_train: pd.DataFrame, seed: int, say: Progress
) -> tuple[str, dict[str, float], dict[str, str]]:
    """Pick the value model kind on an inner out-of-time fold (the latest training cutoff).

    Both candidates (Tweedie, two-part) are fitted on the earlier training
    cutoffs and scored on the latest one (never the validation cutoff). The
    higher normalized Gini wins; a difference within one paired-bootstrap
    standard error (200 resamples of the fold's customers) is a tie, which the
    smaller ``|total ratio - 1|`` breaks. Returns the winner, the fold's metrics
    and params describing the selection.
    """
    cuts = sorted(v_train["as_of"].unique())
    if len(cuts) < 2:
        return (
            "tweedie",
            {},
            {"value_model_selection": "default (one training cutoff: no inner fold to compare on)"},
        )
    fit = v_train[v_train["as_of"] < cuts[-1]]
    fold = v_train[v_train["as_of"] == cuts[-1]]
    y_fit = fit["future_value"].clip(lower=0).to_numpy(float)
    y = fold["future_value"].to_numpy(float)
    preds: dict[str, np.ndarray] = {}
    metrics: dict[str, float] = {}
    notes: dict[str, str] = {}
    for name, make in VALUE_CANDIDATES.items():
        say(f"value candidate {name} on {len(fit):,} rows")
        try:
            preds[name] = make(seed).fit(fit, y_fit, seed=seed).predict(fold)
        except ValueError as exc:
            notes[f"value_candidate_{name}"] = f"not fitted: {exc}"
            continue
        m = value_metrics(y, preds[name])
        for key in ("gini", "total_ratio", "spearman"):
            metrics[f"value_candidate_{name}_{key}"] = m[f"value_{key}"]
    params = {
        "value_selection_cutoff": str(pd.Timestamp(cuts[-1]).date()),
        "n_value_selection_fit": str(len(fit)),
        "n_value_selection_fold": str(len(fold)),
        **notes,
    }
    if not preds:
        return "tweedie", metrics, {**params, "value_model_selection": "default (no candidate)"}
    if len(preds) == 1:
        (only,) = preds
        return only, metrics, {**params, "value_model_selection": "the only candidate fitted"}
    a, b = "tweedie", "two_part"
    ga, gb = metrics[f"value_candidate_{a}_gini"], metrics[f"value_candidate_{b}_gini"]
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(200):
        i = rng.integers(0, len(y), len(y))
        diffs.append(normalized_gini(y[i], preds[b][i]) - normalized_gini(y[i], preds[a][i]))
    se = float(np.nanstd(diffs))
    metrics["value_candidate_gini_diff_se"] = se
    if abs(gb - ga) > se:
        best = b if gb > ga else a
        why = f"higher Gini ({gb:.4f} two_part vs {ga:.4f} tweedie, se {se:.4f})"
    else:
        ra = abs(metrics[f"value_candidate_{a}_total_ratio"] - 1)
        rb = abs(metrics[f"value_candidate_{b}_total_ratio"] - 1)
        best = b if rb < ra else a
        why = (
            f"Gini tie ({gb:.4f} two_part vs {ga:.4f} tweedie, se {se:.4f}); "
            f"|total ratio - 1| {rb:.3f} vs {ra:.3f}"
        )
    return best, metrics, {**params, "value_model_selection": why}


def _two_part(seed: int) -> BoosterModel:
    return TwoPartValueModel(seed, spend_objective="log_l2")


#: The value model candidates compared on the inner fold, by ``value_model_kind``.
VALUE_CANDIDATES: dict[str, Callable[[int], BoosterModel]] = {
    "tweedie": ValueModel,
    "two_part": _two_part,
}


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
    keep_candidates: bool = False,
    refit_value: bool = True,
) -> TrainResult:
    """Fit the churn and value models on monthly cutoffs and evaluate out of time.

    The training stack holds cutoffs 30 days apart whose label windows end at or
    before ``as_of``; the latest cutoff of each model is its out-of-time
    validation window. Metrics of model and baselines, params, the data
    fingerprint, window and git SHA are logged to MLflow; both models are
    registered. With ``promote`` each gets the alias ``champion`` when it beats
    the current champion on the same validation rows (or when there is none);
    a champion that cannot be compared on these rows is kept.

    The value model is a Tweedie LightGBM or a two-part model (P(buy) x
    E[spend | buy]), whichever ranks better on the latest training cutoff
    (param ``value_model_kind``). When a model cannot be trained (the history is
    too short for its label window, or too few rows), the BTYD fallback fitted
    as of ``as_of`` is registered in its place (tag ``fallback_<kind>``; see
    :class:`BTYDModel`); a fallback becomes champion only when there is none or
    the champion is a fallback too.

    ``churn_model`` and ``value_model`` replace the default estimators (any
    :class:`BoosterModel`-compatible object with ``fit``/``predict``; a given
    value model skips the selection). ``keep_candidates`` refits every value
    candidate on the final value model's rows and returns them in
    ``value_candidates``.

    With ``refit_value`` (the default) the value model that is registered is
    refitted, once its kind is chosen and it has been evaluated, on the latest
    ``max_cutoffs`` cutoffs up to and including the validation cutoff (all
    labelled by ``as_of``): the purged training rows end a whole value horizon
    before the validation cutoff (for a 365-day horizon, two years before
    ``as_of``), so the model that scores ``as_of`` learns from recent behaviour.
    The logged value metrics are those of the model fitted on the training rows
    (the refitted one has seen the validation labels); the registered model
    records that evaluation (``evaluation_``) and the end of its latest label
    window (``label_end_``), which the champion gate uses.

    Raises
    ------
    InputError
        ``as_of`` before every purchase, or a model needs the fallback and BG/NBD
        cannot be fitted either.
    """
    say = progress or (lambda _msg: None)
    as_of = pd.Timestamp(as_of)
    tx = tables.transactions
    purchases = tx.loc[tx["amount"] > 0, "ts"]
    if purchases.empty or purchases.min() >= as_of:
        first = tx["ts"].min()
        raise InputError(f"as_of {as_of} is before all purchases (first transaction {first})")
    first_ts = purchases.min()
    churn_cuts, churn_short = _cutoffs(
        first_ts, as_of, churn_horizon_days, "churn", max_cutoffs, cutoff_step_days
    )
    value_cuts, value_short = _cutoffs(
        first_ts, as_of, value_horizon_days, "value", max_cutoffs, cutoff_step_days
    )

    refit_cuts = (
        _refit_cutoffs(value_cuts[-1], first_ts, max_cutoffs, cutoff_step_days)
        if refit_value and value_short is None
        else []
    )
    all_cuts = sorted(set(churn_cuts) | set(value_cuts) | set(refit_cuts))
    say(f"features for {len(all_cuts)} cutoffs")
    frame = build_features(tx, tables.events, tables.customers, as_of=all_cuts)
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
    fallbacks: dict[str, str] = {}
    for what, short, rows, h in (
        ("churn", churn_short, c_train, churn_horizon_days),
        ("value", value_short, v_train, value_horizon_days),
    ):
        if short is not None:
            fallbacks[what] = short
        elif len(rows) < MIN_TRAIN_ROWS:
            fallbacks[what] = (
                f"too few training rows for the {what} horizon of {h:g} days ({len(rows)} "
                f"customer-cutoffs, {MIN_TRAIN_ROWS} needed)"
            )

    def fallback(kind: str, why: str) -> BoosterModel:
        if btyd_now is None:
            raise InputError(
                f"{why}; the BG/NBD fallback cannot be fitted either (too few repeat buyers "
                f"before {as_of.date()})"
            )
        say(f"{kind}: {why}; using the BG/NBD fallback")
        fallbacks[kind] = why
        return BTYDModel(kind, btyd_now, why).fit(now, seed=seed)

    churn: BoosterModel
    train_cuts = sorted(c_train["as_of"].unique())
    calibrate = False
    if "churn" in fallbacks:
        churn = fallback("churn", fallbacks["churn"])
    else:
        # With three or more churn cutoffs the second latest is an out-of-time calibration fold.
        calibrate = len(train_cuts) >= 3
        c_fit = c_train[c_train["as_of"] < train_cuts[-1]] if calibrate else c_train
        c_cal = c_train[c_train["as_of"] == train_cuts[-1]] if calibrate else c_train.iloc[:0]
        say(f"churn model on {len(c_fit):,} rows")
        try:
            churn = (churn_model or ChurnModel(seed)).fit(
                c_fit, c_fit["churned"].to_numpy(int), seed=seed
            )
        except ValueError as exc:
            churn, calibrate = fallback("churn", f"the churn model cannot be trained: {exc}"), False
        else:
            if calibrate:
                churn.calibrate(c_cal, c_cal["churned"].to_numpy(int))

    value: BoosterModel
    # the value model judged on the validation rows (before any refit)
    value_eval: BoosterModel | None = None
    candidate_metrics: dict[str, float] = {}
    selection: dict[str, str] = {}
    candidates: dict[str, BoosterModel] = {}
    y_train = v_train["future_value"].clip(lower=0).to_numpy(float)
    v_final = v_train
    if "value" in fallbacks:
        value, value_kind = fallback("value", fallbacks["value"]), "btyd_fallback"
    else:
        if value_model is not None:
            value_kind, selection = type(value_model).__name__, {"value_model_selection": "given"}
        else:
            value_kind, candidate_metrics, selection = _select_value_model(v_train, seed, say)
        template = copy.deepcopy(value_model)  # unfitted, for the refit
        say(f"value model ({value_kind}) on {len(v_train):,} rows")
        try:
            value = value_eval = (value_model or VALUE_CANDIDATES[value_kind](seed)).fit(
                v_train, y_train, seed=seed
            )
        except ValueError as exc:
            value = fallback("value", f"the value model cannot be trained: {exc}")
            value_kind = "btyd_fallback"
        v_refit = frame[frame["as_of"].isin(refit_cuts)]
        if value_eval is not None and len(v_refit) >= MIN_TRAIN_ROWS:
            say(f"value model ({value_kind}) refitted on {len(v_refit):,} rows")
            y_refit = v_refit["future_value"].clip(lower=0).to_numpy(float)
            try:
                value = (template or VALUE_CANDIDATES[value_kind](seed)).fit(
                    v_refit, y_refit, seed=seed
                )
            except ValueError as exc:
                selection["value_refit"] = f"not refitted: {exc}"
            else:
                v_final, y_train = v_refit, y_refit
        if keep_candidates and value_model is None and value_kind != "btyd_fallback":
            candidates[value_kind] = value
            for name, make in VALUE_CANDIDATES.items():
                if name != value_kind:
                    with contextlib.suppress(ValueError):
                        candidates[name] = make(seed).fit(v_final, y_train, seed=seed)
    churn.btyd_ = value.btyd_ = btyd_now
    for candidate in candidates.values():
        candidate.btyd_ = btyd_now
    # Scores and tiers rank against this population: the churn validation rows, or, for the
    # BTYD value fallback, the customers as of `as_of` it was fitted on.
    ref_rows = now if "value" in fallbacks else c_valid if not c_valid.empty else v_valid
    value.reference_ = reference_distribution(ref_rows, value.predict(ref_rows))

    yc = c_valid["churned"].to_numpy(int)
    yv = v_valid["future_value"].to_numpy(float)
    metrics: dict[str, float] = dict(candidate_metrics)
    evaluation: dict[str, str] = {}
    # Validation predictions of each model: a fallback is judged as the BG/NBD method fitted
    # as of the validation cutoff on the history before it (its pair as of `as_of` has seen
    # the validation labels); with no labelled rows nothing is measured.
    p_churn: np.ndarray | None = None
    p_value: np.ndarray | None = None
    if c_valid.empty:
        evaluation["churn"] = "none: no customer has a purchase before the validation cutoff"
    elif "churn" not in fallbacks:
        p_churn = churn.predict(c_valid)
    elif c_valid["btyd_p_no_purchase_churn"].notna().all():
        p_churn = c_valid["btyd_p_no_purchase_churn"].to_numpy(float)
        evaluation["churn"] = "BG/NBD fitted as of the validation cutoff"
    else:
        evaluation["churn"] = "none: BG/NBD cannot be fitted as of the validation cutoff"
    if v_valid.empty:
        evaluation["value"] = "none: no customer has a purchase before the validation cutoff"
    elif value_eval is not None:
        p_value = value_eval.predict(v_valid)
    elif v_valid["btyd_clv_value"].notna().all():
        p_value = v_valid["btyd_clv_value"].to_numpy(float)
        evaluation["value"] = "BG/NBD + Gamma-Gamma fitted as of the validation cutoff"
    else:
        evaluation["value"] = "none: BG/NBD cannot be fitted as of the validation cutoff"
    for kind, why in evaluation.items():
        if why.startswith("none"):
            say(f"no {kind} metrics ({why.removeprefix('none: ')})")
    if p_churn is not None:
        metrics |= churn_metrics(yc, p_churn)
    if p_value is not None:
        metrics |= value_metrics(yv, p_value)
    # Baselines on the same rows: recency ranks churn; the historical run rate ranks value.
    if not c_valid.empty:
        metrics |= {
            f"baseline_rfm_{k}": v for k, v in churn_metrics(yc, _recency_score(c_valid)).items()
        }
    if not v_valid.empty:
        run_rate = (
            v_valid["monetary_total"].clip(lower=0)
            / v_valid["tenure_days"].clip(lower=30)
            * value_horizon_days
        ).to_numpy(float)
        metrics |= {f"baseline_rfm_{k}": v for k, v in value_metrics(yv, run_rate).items()}
    # BTYD baselines on the same rows (fitted on each cutoff's own history).
    if not c_valid.empty and c_valid["btyd_p_alive"].notna().all():
        p_bg = c_valid["btyd_p_no_purchase_churn"].to_numpy(float)
        metrics |= {f"baseline_bgnbd_{k}": v for k, v in churn_metrics(yc, p_bg).items()}
        p_dead = 1 - c_valid["btyd_p_alive"].to_numpy(float)
        metrics["baseline_bgnbd_palive_churn_roc_auc"] = churn_metrics(yc, p_dead)["churn_roc_auc"]
    if not v_valid.empty and v_valid["btyd_clv_value"].notna().all():
        clv = v_valid["btyd_clv_value"].to_numpy(float)
        metrics |= {f"baseline_bgnbd_gg_{k}": v for k, v in value_metrics(yv, clv).items()}

    # What each model learned from and how it was judged, for the champion gate of later runs.
    for model, rows, horizon, cut, metric, mode_rows in (
        (churn, c_train, churn_horizon_days, churn_cuts[-1], "churn_roc_auc", c_valid),
        (value, v_final, value_horizon_days, value_cuts[-1], "value_gini", v_valid),
    ):
        if isinstance(model, BTYDModel) or rows.empty:
            continue
        model.label_end_ = str(
            (pd.Timestamp(rows["as_of"].max()) + pd.Timedelta(days=horizon)).date()
        )
        if metric in metrics:
            model.evaluation_ = {
                "cutoff": str(cut.date()),
                "rows": len(mode_rows),
                "metric": metric,
                "value": float(metrics[metric]),
            }

    say("logging to MLflow")
    import mlflow

    configure_mlflow(tracking_uri)
    use_experiment(EXPERIMENT, tracking_uri)
    _fail_orphaned_runs()
    result_promoted: dict[str, bool] = {}
    reasons: dict[str, str] = {}
    owner = {"churnclv.pid": str(os.getpid()), "churnclv.host": socket.gethostname()}
    kinds = {"churn": "btyd_fallback" if "churn" in fallbacks else "lightgbm", "value": value_kind}
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
                    "value_refit_cutoffs": ",".join(
                        str(c.date()) for c in sorted(v_final["as_of"].unique())
                    )
                    if v_final is not v_train
                    else "none",
                    "n_refit_value": len(v_final) if v_final is not v_train else 0,
                    "n_features": len(churn.features_),
                    "churn_model_kind": kinds["churn"],
                    "value_model_kind": kinds["value"],
                    "churn_best_iteration": churn.best_iteration_,
                    "value_best_iteration": value.best_iteration_,
                    "churn_calibration": getattr(churn, "calibration_", {}).get("method", "none"),
                    "churn_calibration_cutoff": str(pd.Timestamp(train_cuts[-1]).date())
                    if calibrate
                    else "none",
                    **selection,
                    "seed": seed,
                }
            )
            mlflow.set_tags(
                {
                    "data_fingerprint": _fingerprint(tables),
                    "data_window": f"{tx['ts'].min()} .. {as_of}",
                    "git_sha": _git_sha(),
                    **{f"fallback_{k}": why for k, why in fallbacks.items()},
                    **{f"evaluation_{k}": why for k, why in evaluation.items()},
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
                    "model_kinds": kinds,
                    "fallbacks": fallbacks,
                },
                "model_details.json",
            )
            _log_plots(churn, value, c_valid, yc, p_churn, v_valid, yv, p_value)
            # An interrupt raised inside one of MLflow's finalizers is lost: look again
            # before each step that must not happen once the user has asked to stop.
            raise_if_interrupted()
            say("registering models")
            churn_version, _ = _log_model(
                churn, CHURN_MODEL, c_valid if p_churn is not None else now
            )
            value_version, _ = _log_model(
                value, VALUE_MODEL, v_valid if p_value is not None else now
            )
            from mlflow import MlflowClient

            client = MlflowClient()
            for name, version, kind in (
                (CHURN_MODEL, churn_version, "churn"),
                (VALUE_MODEL, value_version, "value"),
            ):
                client.set_model_version_tag(name, version, "model_kind", kinds[kind])
            winners: list[tuple[str, str]] = []
            if promote:
                # Every gate first (each loads and scores a champion), the aliases last and
                # together: an interrupt before them changes no champion, and none lands
                # between one model's promotion and the other's gate.
                for name, version, kind, valid, y in (
                    (CHURN_MODEL, churn_version, "churn", c_valid, yc),
                    (VALUE_MODEL, value_version, "value", v_valid, yv),
                ):
                    metric = "churn_roc_auc" if kind == "churn" else "value_gini"
                    win, why = _gate(
                        name, kind, metrics.get(metric, float("nan")), fallbacks.get(kind), valid, y
                    )
                    verdict = ("promoted: " if win else "not promoted: ") + why
                    client.set_model_version_tag(name, version, "promotion", verdict)
                    mlflow.set_tag(f"promotion_{kind}", verdict)
                    result_promoted[kind] = win
                    reasons[kind] = why
                    if win:
                        winners.append((name, version))
            mlflow.log_text(json.dumps(reasons, indent=2), "promotion.json")
            raise_if_interrupted()  # after an interrupt: no promotion, and the run ends FAILED
            for name, version in winners:
                client.set_registered_model_alias(name, ALIAS, version)
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
        n_rows={
            "churn_train": len(c_train),
            "value_train": len(v_train),
            "value_refit": len(v_final) if v_final is not v_train else 0,
        },
        fallbacks=fallbacks,
        model_kinds=kinds,
        value_candidates=candidates,
    )


def _log_plots(
    churn: BoosterModel,
    value: BoosterModel,
    c_valid: pd.DataFrame,
    yc: np.ndarray,
    p_churn: np.ndarray | None,
    v_valid: pd.DataFrame,
    yv: np.ndarray,
    p_value: np.ndarray | None,
) -> None:
    import mlflow

    from churnclv.training import _plots as plots

    figures = {
        "plots/churn_importance.png": plots.importance_plot(
            churn.importance(), "Churn model: gain"
        ),
        "plots/value_importance.png": plots.importance_plot(
            value.importance(), "Value model: gain"
        ),
    }
    if p_churn is not None:
        scores = {"model": p_churn, "RFM recency": _recency_score(c_valid)}
        if c_valid["btyd_p_no_purchase_churn"].notna().all():
            scores["BG/NBD"] = c_valid["btyd_p_no_purchase_churn"].to_numpy(float)
        figures["plots/churn_roc.png"] = plots.roc_plot(yc, scores)
        figures["plots/churn_calibration.png"] = plots.calibration_plot(yc, p_churn)
        figures["plots/churn_gains.png"] = plots.gains_plot(yc, scores)
    if p_value is not None:
        figures["plots/value_deciles.png"] = plots.value_deciles_plot(yv, p_value)
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
