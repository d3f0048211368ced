"""Train the uplift model on a campaign log, gate it against constant policies, register it.

The stages of :func:`train_uplift`, in order:

1. the sends whose response window ``(ts, ts + response_days]`` ends by
   ``as_of`` (the others are dropped and counted), with their outcome (net
   spend in the window);
2. each send's features as of its send date (the public feature builder, one
   cutoff per distinct send date, so every send sees only its past);
3. the held-out sends: with several campaigns, each of the latest three
   (rolling origin: a campaign is predicted by a model fitted on the campaigns
   sent before it, so every evaluation is out of time, and the pooled held-out
   sends give the estimates their precision); with one campaign, 30% of the
   customers (by hash, customer-disjoint);
4. an :class:`~churnclv.training._uplift.UpliftModel` per fold; on the pooled
   held-out sends the learned policy (the eligible action with the largest
   ``uplift - cost``, or none) and every constant policy (each action for
   everyone eligible for it under the policy, and none; see
   ``churnclv.training._uplift_eligibility``) are valued by IPW and doubly robust estimators with
   bootstrap CIs, and the gate (:func:`~churnclv.training._policy_value.gate`)
   decides the basis: ``learned`` or ``best_uniform``. Qini coefficients per
   action (with CIs) measure the ranking;
5. the model is refitted on every send (with the gate's decision) and logged
   to MLflow (run ``train-uplift <as_of> response<N>``) and registered as
   ``churnclv-uplift``; with ``promote`` it takes the ``champion`` alias when
   there is no uplift champion, or when its decision's value on the latest
   campaign beats the champion's on the same sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from churnclv._campaigns import campaign_outcomes, has_control, sends_in_window
from churnclv._errors import InputError
from churnclv._io import InputTables
from churnclv._policy import Policy, load_policy
from churnclv.decisions import reference_distribution
from churnclv.features._vocabulary import DEFAULT_TOP_K, select_event_types, vocabulary_record
from churnclv.training._policy_value import PolicyValue, evaluate_policies, gate, qini
from churnclv.training._registry import ALIAS, UPLIFT_MODEL
from churnclv.training._tracking import fingerprint, git_sha, start_tracking, tracked_run
from churnclv.training._uplift import PyfuncUplift, UpliftModel
from churnclv.training._uplift_eligibility import (
    constant_choice,
    send_eligibility,
    value_champion,
)
from churnclv.training._uplift_sends import held_out_folds, send_features, train_mask

__all__ = ["UpliftTrainResult", "learned_choice", "train_uplift"]

Progress = Callable[[str], None]


@dataclass
class UpliftTrainResult:
    """What an uplift training produced.

    Attributes
    ----------
    run_id : str
        The MLflow run (experiment ``churnclv``).
    version : str
        The registered version of ``churnclv-uplift``.
    basis : str
        The gate's decision: ``learned`` or ``best_uniform``.
    uniform_action : str
        The best constant policy's action (``none`` when no action pays).
    values : dict of str to PolicyValue
        Held-out value of the learned policy (``learned``), of ``none`` and of
        each constant action, with CIs.
    qini : dict of str to tuple of float
        Per action: Qini coefficient and its CI on the held-out sends.
    promoted : bool
        Whether the version took the ``champion`` alias.
    reason : str
        Why it was or was not promoted, and the gate's verdict.
    n_sends : dict of str to int
        ``train``, ``holdout``, ``dropped_window`` (window not over by ``as_of``),
        ``dropped_no_history`` (no purchase before the send), ``propensity_clipped``.
    metrics : dict of str to float
        Everything logged as metrics.
    model : UpliftModel or None
        The registered model (refitted on every send, with the gate's decision
        in ``decision_``).

    Examples
    --------
    >>> from churnclv import UpliftTrainResult
    >>> result = UpliftTrainResult("run-1", "1", "learned", "none")
    >>> result.basis, result.promoted
    ('learned', False)
    """

    run_id: str
    version: str
    basis: str
    uniform_action: str
    values: dict[str, PolicyValue] = field(default_factory=dict)
    qini: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    promoted: bool = False
    reason: str = ""
    n_sends: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    model: UpliftModel | None = None


def learned_choice(
    uplift: np.ndarray, costs: np.ndarray, ok: np.ndarray | None = None
) -> np.ndarray:
    """Arm index per row of the learned policy: the largest ``uplift - cost`` among the
    actions the row is eligible for (``ok``, default all) if positive, else 0."""
    gain = uplift - np.asarray(costs, dtype=float)[None, :]
    if ok is not None:
        gain = np.where(ok, gain, -np.inf)
    best = gain.argmax(axis=1)
    return np.where(gain[np.arange(len(gain)), best] > 0, best + 1, 0)


def _no_control_message(control: str) -> str:
    return (
        f"the campaign log has no {control!r} sends: effects cannot be estimated without a "
        "comparison group, so no uplift model is trained and actions stay on the policy "
        "formula (P(churn) x value x uplift - cost); name the untreated arm with --control, "
        "or keep a control group in the next campaign"
    )


def train_uplift(
    tables: InputTables,
    campaigns: pd.DataFrame,
    *,
    as_of: pd.Timestamp | str,
    tracking_uri: str,
    response_days: int = 30,
    policy: Policy | str | Path | None = None,
    control: str = "control",
    promote: bool = False,
    seed: int = 0,
    learner: str = "dr",
    n_boot: int = 500,
    event_types: Sequence[str] = (),
    event_top_k: int = DEFAULT_TOP_K,
    progress: Progress | None = None,
) -> UpliftTrainResult:
    """Fit the multi-action uplift model on a campaign log, gate it and register it.

    Runs the stages described in ``churnclv.training._train_uplift``.

    Parameters
    ----------
    tables : InputTables
        Transactions (outcomes and features), optional events and customers
        (their attributes are features too).
    campaigns : pandas.DataFrame
        The campaign log: ``customer_id``, ``ts``, ``treatment``,
        ``campaign_id`` (e.g. from ``load_campaigns``).
    as_of : pandas.Timestamp or str
        Only sends whose response window ends by this date are used.
    tracking_uri : str
        MLflow tracking and registry URI.
    response_days : int, default 30
        The response window after each send.
    policy : Policy or path, optional
        The policy whose actions (and costs) are estimated; default the shipped one.
    control : str, default "control"
        The untreated arm.
    promote : bool, default False
        Give the version the ``champion`` alias when it wins (see the module).
    seed : int, default 0
        Seed of the models, the split and the bootstrap.
    learner : {"dr", "t"}, default "dr"
        The uplift learner (:class:`UpliftModel`).
    n_boot : int, default 500
        Bootstrap replicates of the CIs.
    event_types, event_top_k : sequence of str, int
        The event vocabulary of the features, chosen as ``train`` chooses it
        (:func:`churnclv.features.select_event_types` as of ``as_of``) and
        recorded with the model (``event_vocabulary_``), so scoring computes it.
    progress : callable, optional
        Called with a short message as each stage starts.

    Returns
    -------
    UpliftTrainResult

    Raises
    ------
    InputError
        No control sends (effects need a comparison group), treatments that
        are not policy actions, no send whose window ends by ``as_of``, or too
        few sends per arm.

    Examples
    --------
    A log without a control arm cannot say what an action adds:

    >>> import pandas as pd
    >>> from churnclv import InputError, InputTables, train_uplift
    >>> tx = pd.DataFrame({"customer_id": ["A"], "ts": pd.to_datetime(["2024-01-02"]),
    ...                    "amount": [10.0]})
    >>> log = pd.DataFrame({"customer_id": ["A"], "ts": pd.to_datetime(["2024-02-01"]),
    ...                     "treatment": ["email_reminder"], "campaign_id": ["c1"]})
    >>> try:
    ...     train_uplift(InputTables(tx), log, as_of="2024-06-01", tracking_uri="sqlite://")
    ... except InputError as exc:
    ...     print(str(exc)[:70])
    the campaign log has no 'control' sends: effects cannot be estimated w
    """
    say = progress or (lambda _msg: None)
    as_of = pd.Timestamp(as_of)
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    actions = [a.name for a in pol.actions]
    costs = np.array([a.cost for a in pol.actions], dtype=float)
    if campaigns.empty:
        raise InputError("the campaign log is empty: no sends to learn from")
    if not has_control(campaigns, control):
        raise InputError(_no_control_message(control))
    unknown = sorted(set(campaigns["treatment"].astype(str)) - {control, *actions})
    if unknown:
        raise InputError(
            f"treatments {', '.join(map(repr, unknown))} are neither the control arm "
            f"{control!r} nor actions of the policy ({', '.join(actions)})"
        )
    sends, dropped = sends_in_window(campaigns, as_of=as_of, response_days=response_days)
    if sends.empty:
        after = int((campaigns["ts"] >= as_of).sum())
        later = f", {after:,} of them sent on or after {as_of.date()}" if after else ""
        raise InputError(
            f"no send has a complete {response_days}-day response window by {as_of.date()} "
            f"({dropped:,} send(s) end later{later}); use a later --as-of or a shorter "
            "--response-days"
        )
    if not has_control(sends, control):
        raise InputError(_no_control_message(control) + " (none with a complete window)")
    say("computing outcomes and features as of each send")
    sends = campaign_outcomes(sends, tables.transactions, response_days=response_days)
    vocabulary = select_event_types(tables.events, as_of, top_k=event_top_k, named=event_types)
    frame, rows = send_features(tables, sends, vocabulary)
    no_history = len(sends) - len(rows)
    sends = sends.iloc[rows].reset_index(drop=True)
    folds, holdout_kind = held_out_folds(sends, seed)
    holdout = folds[-1]
    t = sends["treatment"].astype(str).to_numpy()
    y = sends["net_spend"].to_numpy(float)
    _check_arms(t, holdout, control)
    # Only actions with sends can be estimated; the others keep the policy formula.
    unsent = [a for a in actions if not (t == a).any()]
    costs = np.array([c for a, c in zip(actions, costs, strict=True) if a not in unsent])
    actions = [a for a in actions if a not in unsent]
    if not actions:
        raise InputError("the campaign log has only control sends: no action to estimate")
    arm_costs = np.concatenate([[0.0], costs])
    # RFM scores of uplift-only scoring rank against the customers the model saw
    reference = reference_distribution(frame, np.full(len(frame), np.nan))
    ok_all_sends = send_eligibility(
        frame, pol, actions, reference=reference, value_model=value_champion(tracking_uri)
    )

    pooled: list[tuple[np.ndarray, ...]] = []
    for k, held in enumerate(folds):
        train = train_mask(sends, held)
        latest = k == len(folds) - 1
        say(f"fitting the uplift model on {int(train.sum()):,} sends")
        model = UpliftModel(actions=actions, control=control, learner=learner, seed=seed)
        try:
            model.fit(frame[train].reset_index(drop=True), t[train], y[train])
        except ValueError as exc:
            if not latest:  # an early fold with too few sends: the later folds decide
                continue
            raise InputError(f"cannot fit the uplift model: {exc}") from None
        say(f"valuing policies on {int(held.sum()):,} held-out sends")
        hold = frame[held].reset_index(drop=True)
        arm = np.array([model.arms_.index(a) for a in t[held]])
        mu = model.predict_outcomes(hold)
        e = model.estimate_propensity(hold, t[held])
        uplift = model.predict_uplift(hold)
        ok = ok_all_sends[held]
        pooled.append((arm, y[held], e, mu, uplift, ok))
    arm_all, y_all, e_all, mu_all, up_all, ok_all = (
        np.concatenate(p) for p in zip(*pooled, strict=True)
    )
    n_eval = len(arm_all)
    # Every policy treats only the customers eligible for its action (as scoring does).
    policies = {"learned": learned_choice(up_all, costs, ok_all), "none": np.zeros(n_eval, int)}
    policies.update({a: constant_choice(ok_all, i) for i, a in enumerate(actions)})
    values, contrib = evaluate_policies(
        arm_all, y_all, policies, arm_costs, e_all, mu_all, n_boot=n_boot, seed=seed
    )
    decision = gate(values, contrib, actions, n_boot=n_boot, seed=seed)
    qinis = {
        a: qini(
            up_all[arm_i, i],
            y_all[arm_i],
            arm_all[arm_i] == i + 1,
            n_boot=min(n_boot, 200),
            seed=seed,
        )
        for i, a in enumerate(actions)
        for arm_i in [(arm_all == 0) | (arm_all == i + 1)]
    }
    chosen = "learned" if decision.basis == "learned" else decision.uniform_action
    holdout_key = _holdout_key(sends[holdout])
    say("refitting on every send")
    final = UpliftModel(actions=actions, control=control, learner=learner, seed=seed)
    final.fit(frame, t, y)
    final.reference_ = reference
    final.event_vocabulary_ = vocabulary_record(vocabulary)
    final.decision_ = {
        **decision.as_dict(),
        "value": values[chosen].dr,
        "holdout_value": float(contrib[chosen][-len(arm) :].mean()),
        "holdout": holdout_key,
        "trained_through": str(sends["ts"].max()),
        "response_days": int(response_days),
        "as_of": str(as_of),
    }
    n_sends = {
        "train": int(train_mask(sends, holdout).sum()),
        "holdout": int(holdout.sum()),
        "evaluated": int(n_eval),
        "dropped_window": dropped,
        "dropped_no_history": no_history,
        "propensity_clipped": int(model.propensity_clipped_),
    }
    not_estimated = ", ".join(unsent) or "none"
    metrics: dict[str, float] = {}
    for v in values.values():
        metrics.update(v.metrics())
    for a, (q, lo, hi) in qinis.items():
        metrics.update({f"qini_{a}": q, f"qini_{a}_low": lo, f"qini_{a}_high": hi})
    metrics.update(
        {
            "gate_difference": decision.difference,
            "gate_difference_low": decision.difference_low,
            "gate_difference_high": decision.difference_high,
            "propensity_clipped": float(model.propensity_clipped_),
        }
    )
    clip_note = (
        f"propensities estimated from the log (multinomial LightGBM on the features) and "
        f"clipped to [{model.clip}, {1 - model.clip}]: {model.propensity_clipped_:,} of "
        f"{n_sends['train']:,} training sends clipped"
    )

    say("logging to MLflow")
    start_tracking(tracking_uri)
    with tracked_run(f"train-uplift {as_of.date()} response{response_days}", tracking_uri) as run:
        import mlflow

        mlflow.log_params(
            {
                "as_of": str(as_of),
                "response_days": response_days,
                "learner": learner,
                "control": control,
                "actions": ",".join(actions),
                "actions_not_estimated": not_estimated,
                "holdout": holdout_kind,
                "campaigns": ",".join(sorted(sends["campaign_id"].astype(str).unique())[:20]),
                **{f"n_{k}": v for k, v in n_sends.items()},
                "n_features": len(final.features_),
                "seed": seed,
            }
        )
        mlflow.set_tags(
            {
                "propensity": clip_note,
                "uplift_gate": decision.reason,
                "uplift_basis": decision.basis,
                "data_fingerprint": fingerprint(tables),
                "git_sha": git_sha(),
            }
        )
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        mlflow.log_dict(
            {
                "decision": final.decision_,
                "values": {k: vars(v) for k, v in values.items()},
                "qini": {k: list(v) for k, v in qinis.items()},
                "propensity": clip_note,
            },
            "uplift_gate.json",
        )
        say("registering the uplift model")
        version = _register(final, frame.head(5))
        promoted, reason = (False, "not promoted (run without --promote)")
        if promote:
            promoted, reason = _judge(
                final, hold, (arm, y[holdout], e, mu, ok), arm_costs, holdout_key
            )
        _finish_promotion(version, promoted, reason, decision.reason)
    return UpliftTrainResult(
        run_id=run.info.run_id,
        version=version,
        basis=decision.basis,
        uniform_action=decision.uniform_action,
        values=values,
        qini=qinis,
        promoted=promoted,
        reason=f"{reason}; gate: {decision.reason}",
        n_sends=n_sends,
        metrics=metrics,
        model=final,
    )


def _check_arms(t: np.ndarray, holdout: np.ndarray, control: str) -> None:
    """Every arm needs sends on both sides of the split: say which do not."""
    for part, mask in (("training", ~holdout), ("held-out", holdout)):
        if not (t[mask] == control).any():
            raise InputError(
                f"the {part} sends have no {control!r} arm: effects cannot be estimated "
                "without a comparison group there; log more campaigns with a control group"
            )


def _holdout_key(held: pd.DataFrame) -> str:
    camps = ",".join(sorted(held["campaign_id"].astype(str).unique()))
    digest = int(pd.util.hash_pandas_object(held[["customer_id", "ts"]], index=False).sum())
    return f"{camps}|{len(held)}|{digest % 10**12}"


def _register(model: UpliftModel, example: pd.DataFrame) -> str:
    """Log ``model`` to the active run as a pyfunc and register it as ``churnclv-uplift``."""
    import tempfile

    import mlflow
    from mlflow.models import infer_signature

    from churnclv.training._registry import _pip_requirements

    example = example[model.features_].head(5).copy()
    for col in model.categories_:
        example[col] = example[col].astype("string").astype(object)
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / "model_dir")
        out = pd.DataFrame(
            model.predict_uplift(example), columns=[f"uplift_{a}" for a in model.actions_]
        )
        info = mlflow.pyfunc.log_model(
            name="uplift",
            python_model=PyfuncUplift(),
            artifacts={"model_dir": str(folder)},
            signature=infer_signature(example, out),
            input_example=example,
            registered_model_name=UPLIFT_MODEL,
            pip_requirements=_pip_requirements(),
        )
    return str(info.registered_model_version)


def _decided_choice(
    model: UpliftModel, frame: pd.DataFrame, arms: list[str], costs: np.ndarray, ok: np.ndarray
) -> np.ndarray | None:
    """The arm index ``model``'s decision picks per row of ``frame`` among the actions
    each row is eligible for (``ok``, columns ``arms[1:]``); None: not comparable."""
    decision = model.decision_ or {}
    if not set(model.actions_) <= set(arms[1:]) or any(c not in frame for c in model.features_):
        return None
    if decision.get("basis") == "learned":
        up = np.full((len(frame), len(arms) - 1), -np.inf)
        own = model.predict_uplift(frame)
        for j, a in enumerate(model.actions_):
            up[:, arms.index(a) - 1] = own[:, j]
        return learned_choice(up, costs[1:], ok)
    action = decision.get("uniform_action", "none")
    return (
        constant_choice(ok, arms.index(action) - 1)
        if action in arms[1:]
        else np.zeros(len(frame), int)
    )


def _judge(
    model: UpliftModel,
    hold: pd.DataFrame,
    sends: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    costs: np.ndarray,
    key: str,
) -> tuple[bool, str]:
    """Whether the new model takes the alias: no champion, or a better held-out value.

    ``sends`` are the held-out sends' arm, outcome, propensities, outcome
    predictions and eligibility."""
    arm, y, e, mu, ok = sends
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from churnclv.training._policy_value import policy_rows

    new = float(model.decision_["holdout_value"])
    try:
        MlflowClient().get_model_version_by_alias(UPLIFT_MODEL, ALIAS)
    except MlflowException:
        return True, f"no uplift champion yet; held-out value {new:.3f}"
    try:
        pyfunc = mlflow.pyfunc.load_model(f"models:/{UPLIFT_MODEL}@{ALIAS}")
        old_model: UpliftModel = pyfunc.unwrap_python_model().model
    except Exception:
        return True, "the uplift champion cannot be loaded; the new model replaces it"
    old_decision = old_model.decision_ or {}
    if old_decision.get("holdout") == key:
        old = float(old_decision.get("holdout_value", float("-inf")))
    elif pd.Timestamp(old_decision.get("trained_through", "2262-01-01")) < pd.Timestamp(
        hold["as_of"].min()
    ):
        choice = _decided_choice(old_model, hold, model.arms_, costs, ok)
        if choice is None:
            return (
                False,
                "the uplift champion cannot be judged on these sends "
                "(other actions or features); kept",
            )
        old = float(policy_rows(arm, y, choice, costs, e, mu).mean())
    else:
        return False, (
            "the uplift champion was trained on these held-out sends, so it cannot be "
            "judged on them; kept"
        )
    win = new > old
    return win, f"held-out value {new:.3f} vs champion {old:.3f} on the same sends"


def _finish_promotion(version: str, promoted: bool, reason: str, gate_reason: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    verdict = ("promoted: " if promoted else "not promoted: ") + reason
    client.set_model_version_tag(UPLIFT_MODEL, version, "promotion", verdict)
    client.set_model_version_tag(UPLIFT_MODEL, version, "uplift_gate", gate_reason)
    mlflow.set_tag("promotion_uplift", verdict)
    mlflow.log_text(json.dumps({"uplift": verdict}, indent=2), "promotion.json")
    if promoted:
        client.set_registered_model_alias(UPLIFT_MODEL, ALIAS, version)
