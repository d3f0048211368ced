"""Fit the models of a training plan: churn (calibrated), value (selected, refitted), fallbacks.

Every estimator a training fits is built and fitted here, and every attribute
set on a fitted model after its ``fit`` (the BTYD pair it scores with, its
reference population, its label window and evaluation) is set here too.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from lightgbm.basic import LightGBMError

from churnclv._clv_fields import rank_reference
from churnclv._errors import InputError
from churnclv.decisions import reference_distribution
from churnclv.features._vocabulary import vocabulary_record
from churnclv.training._fallback import BTYDModel
from churnclv.training._holdout import CUSTOMER_HOLDOUT, MIN_HOLDOUT_ROWS
from churnclv.training._metrics import normalized_gini, value_metrics
from churnclv.training._model import BoosterModel, ChurnModel, ValueModel
from churnclv.training._plan import Plan
from churnclv.training._scorable import TrainableModel
from churnclv.training._two_part import TwoPartValueModel

__all__ = [
    "MIN_TRAIN_ROWS",
    "UNFITTABLE",
    "VALUE_CANDIDATES",
    "ChurnFit",
    "ValueFit",
    "attach_scoring_state",
    "fit_churn",
    "fit_fallback",
    "fit_value",
    "holdout_problem",
    "label_problem",
    "model_kinds",
    "record_provenance",
    "select_value_model",
    "untrainable",
]

Progress = Callable[[str], None]

#: Fewest training rows a LightGBM model is fitted on; below it the BTYD fallback is used.
MIN_TRAIN_ROWS = 50

#: What a fit raises when its rows cannot train a model (too few rows, labels it cannot
#: learn from, e.g. Tweedie's "sum of labels is zero"): the model falls back to BTYD.
UNFITTABLE = (ValueError, LightGBMError)


def _two_part(seed: int) -> TrainableModel:
    return TwoPartValueModel(seed=seed, spend_objective="log_l2")


#: The value model candidates compared on the inner fold, by ``value_model_kind``.
VALUE_CANDIDATES: dict[str, Callable[[int], TrainableModel]] = {
    "tweedie": ValueModel,
    "two_part": _two_part,
}


def untrainable(plan: Plan) -> dict[str, str]:
    """Why each model kind cannot be trained on ``plan``.

    The history is too short for its horizon, there are too few training rows,
    or their labels leave nothing to learn (:func:`label_problem`).
    """
    fallbacks: dict[str, str] = {}
    for what, short, rows, h in (
        ("churn", plan.churn_short, plan.c_train, plan.churn_horizon_days),
        ("value", plan.value_short, plan.v_train, plan.value_horizon_days),
    ):
        if short is not None and plan.designs.get(what) == CUSTOMER_HOLDOUT:
            if (why := holdout_problem(what, plan)) is not None:
                fallbacks[what] = f"{short}; {why}"
        elif short is not None:
            fallbacks[what] = short
        elif len(rows) < MIN_TRAIN_ROWS:
            fallbacks[what] = (
                f"too few training rows for the {what} horizon of {h:g} days ({len(rows)} "
                f"customer-cutoffs, {MIN_TRAIN_ROWS} needed)"
            )
        elif (problem := label_problem(what, rows, h)) is not None:
            fallbacks[what] = problem
    return fallbacks


def holdout_problem(what: str, plan: Plan) -> str | None:
    """Why the customer-holdout design cannot train or judge ``what``, else None: too few
    training or holdout rows, or training labels with nothing to learn."""
    train, valid = (plan.c_train, plan.c_valid) if what == "churn" else (plan.v_train, plan.v_valid)
    h = plan.churn_horizon_days if what == "churn" else plan.value_horizon_days
    if len(train) < MIN_TRAIN_ROWS or len(valid) < MIN_HOLDOUT_ROWS:
        return (
            f"the customer-holdout design has too few rows ({len(train)} training "
            f"customer-cutoffs, {MIN_TRAIN_ROWS} needed; {len(valid)} holdout customers, "
            f"{MIN_HOLDOUT_ROWS} needed)"
        )
    problem = label_problem(what, train, h)
    return None if problem is None else f"the customer-holdout design cannot train: {problem}"


def label_problem(what: str, rows: pd.DataFrame, horizon: float) -> str | None:
    """Why the labels of ``rows`` leave a ``what`` model nothing to learn, else None.

    A churn model needs both classes; a value model needs some spend (a Tweedie
    fit of all-zero labels fails). The reason names the label windows and what
    to change.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame(
    ...     {"as_of": pd.to_datetime(["2024-01-01", "2024-02-01"]), "churned": [1, 1]}
    ... )
    >>> print(label_problem("churn", rows, 14))  # doctest: +NORMALIZE_WHITESPACE
    every churn label is 1: no customer bought again within 14 days of any of the 2 training
    cutoffs (2024-01-01 .. 2024-02-01), so there is nothing to learn; use a longer
    --churn-horizon-days or more history
    """
    cuts = pd.to_datetime(rows["as_of"])
    where = (
        f"any of the {cuts.nunique()} training cutoffs ({cuts.min().date()} .. {cuts.max().date()})"
    )
    if what == "churn":
        classes = set(np.unique(rows["churned"].to_numpy(int)).tolist())
        if classes == {1}:
            return (
                f"every churn label is 1: no customer bought again within {horizon:g} days of "
                f"{where}, so there is nothing to learn; use a longer --churn-horizon-days or "
                "more history"
            )
        if classes == {0}:
            return (
                f"every churn label is 0: every customer bought again within {horizon:g} days "
                f"of {where}, so there is nothing to learn; use a shorter --churn-horizon-days"
            )
        return None
    if not (rows["future_value"] > 0).any():
        return (
            f"every value label is zero: no customer spent anything within {horizon:g} days "
            f"after {where}, so there is nothing to learn; use a longer --value-horizon-days "
            "or more history"
        )
    return None


def fit_fallback(
    kind: str, why: str, plan: Plan, fallbacks: dict[str, str], seed: int, say: Progress
) -> BTYDModel:
    """The BTYD fallback for ``kind``, fitted as of ``as_of``; records ``why`` in ``fallbacks``.

    Raises
    ------
    InputError
        When BG/NBD cannot be fitted as of ``as_of`` either.
    """
    if plan.btyd_now is None:
        raise InputError(
            f"{why}; the BG/NBD fallback cannot be fitted either (too few repeat buyers "
            f"before {plan.as_of.date()})"
        )
    say(f"{kind}: {why}; using the BG/NBD fallback")
    fallbacks[kind] = why
    return BTYDModel(kind=kind, btyd=plan.btyd_now, reason=why, seed=seed).fit(plan.now)


@dataclass
class ChurnFit:
    """The churn model, the cutoff it was calibrated on (``"none"`` without calibration)
    and the rows it was refitted on after its evaluation (0: not refitted)."""

    model: TrainableModel
    calibration_cutoff: str = "none"
    refit_rows: int = 0


def fit_churn(
    plan: Plan,
    fallbacks: dict[str, str],
    churn_model: BoosterModel | None,
    seed: int,
    say: Progress,
) -> ChurnFit:
    """Fit the churn model on the training rows and calibrate it out of time.

    With three or more training cutoffs the latest is held out as the
    calibration fold. A model that cannot be trained (listed in ``fallbacks``,
    fitting rows of one class only, or a fit that raises one of
    :data:`UNFITTABLE`) is replaced by the BTYD fallback.
    """
    if "churn" in fallbacks:
        return ChurnFit(fit_fallback("churn", fallbacks["churn"], plan, fallbacks, seed, say))
    c_train = plan.c_train
    train_cuts = sorted(c_train["as_of"].unique())
    calibrate = len(train_cuts) >= 3
    c_fit = c_train[c_train["as_of"] < train_cuts[-1]] if calibrate else c_train
    c_cal = c_train[c_train["as_of"] == train_cuts[-1]] if calibrate else c_train.iloc[:0]
    problem = label_problem("churn", c_fit, plan.churn_horizon_days) if calibrate else None
    if problem is not None:
        return ChurnFit(fit_fallback("churn", problem, plan, fallbacks, seed, say))
    say(f"churn model on {len(c_fit):,} rows")
    try:
        churn = (churn_model or ChurnModel(seed=seed)).fit(c_fit, c_fit["churned"].to_numpy(int))
    except UNFITTABLE as exc:
        why = f"the churn model cannot be trained: {exc}"
        return ChurnFit(fit_fallback("churn", why, plan, fallbacks, seed, say))
    if not calibrate:
        return ChurnFit(churn)
    churn.calibrate(c_cal, c_cal["churned"].to_numpy(int))
    return ChurnFit(churn, str(pd.Timestamp(train_cuts[-1]).date()))


def select_value_model(
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
            preds[name] = make(seed).fit(fit, y_fit).predict(fold)
        except UNFITTABLE as exc:
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
    best, why = _gini_or_total_ratio(y, preds, metrics, seed)
    return best, metrics, {**params, "value_model_selection": why}


def _gini_or_total_ratio(
    y: np.ndarray, preds: Mapping[str, np.ndarray], metrics: dict[str, float], seed: int
) -> tuple[str, str]:
    """Tweedie vs two-part: the higher Gini beyond one bootstrap se, else the better total.

    Adds the standard error of the Gini difference to ``metrics``; returns the
    winner and why.
    """
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
        why = f"higher Gini ({gb:.4f} two_part vs {ga:.4f} tweedie, se {se:.4f})"
        return (b if gb > ga else a), why
    ra = abs(metrics[f"value_candidate_{a}_total_ratio"] - 1)
    rb = abs(metrics[f"value_candidate_{b}_total_ratio"] - 1)
    why = (
        f"Gini tie ({gb:.4f} two_part vs {ga:.4f} tweedie, se {se:.4f}); "
        f"|total ratio - 1| {rb:.3f} vs {ra:.3f}"
    )
    return (b if rb < ra else a), why


@dataclass
class ValueFit:
    """The value model of a training and how it was chosen.

    ``model`` is the registered model; ``evaluated`` the one fitted on the
    training rows and judged on the validation rows (None for the BTYD
    fallback); ``rows``/``refitted`` the rows ``model`` was last fitted on and
    whether that was the refit; ``selection`` and ``candidate_metrics`` the
    params and metrics of the kind's selection.
    """

    model: TrainableModel
    kind: str
    rows: pd.DataFrame
    evaluated: TrainableModel | None = None
    refitted: bool = False
    selection: dict[str, str] = field(default_factory=dict)
    candidate_metrics: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, TrainableModel] = field(default_factory=dict)


def fit_value(
    plan: Plan,
    fallbacks: dict[str, str],
    value_model: TrainableModel | None,
    keep_candidates: bool,
    seed: int,
    say: Progress,
) -> ValueFit:
    """Select the value model kind, fit it on the training rows, then refit it.

    A given ``value_model`` skips the selection (:func:`select_value_model`).
    The model fitted on the training rows is the one evaluated; it is refitted
    on the plan's refit rows when there are at least :data:`MIN_TRAIN_ROWS`.
    With ``keep_candidates`` every candidate kind is fitted on the final rows.
    A model that cannot be trained is replaced by the BTYD fallback.
    """
    v_train = plan.v_train
    if "value" in fallbacks:
        model = fit_fallback("value", fallbacks["value"], plan, fallbacks, seed, say)
        return ValueFit(model, "btyd_fallback", v_train)
    kind, metrics, selection = (
        (type(value_model).__name__, {}, {"value_model_selection": "given"})
        if value_model is not None
        else select_value_model(v_train, seed, say)
    )
    template = copy.deepcopy(value_model)  # unfitted, for the refit
    say(f"value model ({kind}) on {len(v_train):,} rows")
    y_train = v_train["future_value"].clip(lower=0).to_numpy(float)
    try:
        evaluated = (value_model or VALUE_CANDIDATES[kind](seed)).fit(v_train, y_train)
    except UNFITTABLE as exc:
        why = f"the value model cannot be trained: {exc}"
        model = fit_fallback("value", why, plan, fallbacks, seed, say)
        return ValueFit(model, "btyd_fallback", v_train, None, False, selection, metrics)
    fit = ValueFit(evaluated, kind, v_train, evaluated, False, selection, metrics)
    _refit_value(fit, plan.refit_rows, template, seed, say)
    if keep_candidates and value_model is None:
        fit.candidates[kind] = fit.model
        y_final = fit.rows["future_value"].clip(lower=0).to_numpy(float)
        for name, make in VALUE_CANDIDATES.items():
            if name != kind:
                with contextlib.suppress(*UNFITTABLE):
                    fit.candidates[name] = make(seed).fit(fit.rows, y_final)
    return fit


def _refit_value(
    fit: ValueFit, rows: pd.DataFrame, template: TrainableModel | None, seed: int, say: Progress
) -> None:
    """Refit ``fit``'s kind on ``rows`` (a fresh estimator, or a copy of ``template``)."""
    if len(rows) < MIN_TRAIN_ROWS:
        return
    say(f"value model ({fit.kind}) refitted on {len(rows):,} rows")
    y = rows["future_value"].clip(lower=0).to_numpy(float)
    try:
        fit.model = (template or VALUE_CANDIDATES[fit.kind](seed)).fit(rows, y)
    except UNFITTABLE as exc:
        fit.selection["value_refit"] = f"not refitted: {exc}"
    else:
        fit.rows, fit.refitted = rows, True


def attach_scoring_state(
    churn: TrainableModel, value: ValueFit, plan: Plan, fallbacks: Mapping[str, str]
) -> None:
    """Give the fitted models the BTYD pair as of ``as_of``, the event vocabulary of their
    features and the value reference population.

    Scores and tiers rank against the churn validation rows, or, for the BTYD
    value fallback beside a churn fallback, the customers as of ``as_of`` it was
    fitted on.
    """
    vocabulary = vocabulary_record(plan.vocabulary)
    for model in (churn, value.model, *value.candidates.values()):
        model.attach(btyd=plan.btyd_now, event_vocabulary=vocabulary)
    c_valid, v_valid = plan.c_valid, plan.v_valid
    if "value" in fallbacks and ("churn" in fallbacks or c_valid.empty):
        ref_rows = plan.now  # the trained churn model may need the event features it lacks
    else:
        ref_rows = c_valid if not c_valid.empty else v_valid
    predicted = value.model.predict(ref_rows)
    reference = reference_distribution(ref_rows, predicted)
    reference |= rank_reference(ref_rows, churn.predict(ref_rows), predicted)
    value.model.attach(reference=reference)


def record_provenance(
    churn: TrainableModel, value: ValueFit, plan: Plan, metrics: Mapping[str, float]
) -> None:
    """Record on each trained model the end of its labels and its out-of-time evaluation.

    The champion gate of later runs reads them (``label_end_``, ``evaluation_``).
    """
    for model, rows, horizon, cut, metric, valid in (
        (churn, plan.c_train, plan.churn_horizon_days, plan.churn_cuts[-1], "churn_roc_auc",
         plan.c_valid),
        (value.model, value.rows, plan.value_horizon_days, plan.value_cuts[-1], "value_gini",
         plan.v_valid),
    ):  # fmt: skip
        if isinstance(model, BTYDModel) or rows.empty:
            continue
        model.attach(
            label_end=str((pd.Timestamp(rows["as_of"].max()) + pd.Timedelta(days=horizon)).date())
        )
        if metric in metrics:
            model.attach(
                evaluation={
                    "cutoff": str(cut.date()),
                    "rows": len(valid),
                    "metric": metric,
                    "value": float(metrics[metric]),
                }
            )


def model_kinds(fallbacks: Mapping[str, str], value: ValueFit) -> dict[str, str]:
    """What each registered model is: ``lightgbm`` or ``btyd_fallback`` churn, the value kind."""
    return {"churn": "btyd_fallback" if "churn" in fallbacks else "lightgbm", "value": value.kind}
