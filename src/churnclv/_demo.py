"""The demo pipeline: synthetic data -> train and register -> learn actions -> score -> report.

:func:`run_demo` does the work and returns a :class:`DemoResult`; ``churnclv demo``
prints it. Progress goes through the ``step`` and ``note`` callbacks. The uplift
step and its check against truth live in :mod:`churnclv._demo_uplift`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from churnclv import InputTables, Policy, SyntheticData, UpliftTrainResult
    from churnclv._demo_uplift import ActionComparison
    from churnclv.training import Champion, TrainResult

__all__ = ["DemoResult", "realised_saved_value", "run_demo"]

#: ``step(label)`` -> a context manager around one stage, yielding a progress callback.
Step = Callable[[str], AbstractContextManager[Callable[[str], None]]]


@contextmanager
def _quiet_step(label: str) -> Iterator[Callable[[str], None]]:
    yield lambda msg: None


@dataclass(frozen=True)
class DemoResult:
    """Everything one demo run produced."""

    data: SyntheticData
    train: TrainResult
    champion: Champion
    scored: pd.DataFrame
    scores_path: Path
    report_path: Path
    tracking_uri: str
    realised_value: float
    predicted_saved_value: float
    uplift: UpliftTrainResult | None = None
    policy_scored: pd.DataFrame | None = None
    comparison: ActionComparison | None = None

    @property
    def note(self) -> str:
        """The ground-truth sentence the report and the CLI print.

        With learned actions (an uplift champion scored the customers) it
        compares their true value with the policy formula's and the oracle's;
        otherwise it checks the campaign's predicted saved value.
        """
        if self.comparison is not None:
            return self.comparison.sentence()
        return _truth_note(self.realised_value, self.predicted_saved_value)


def _truth_note(realised: float, predicted: float) -> str:
    from churnclv._report import truth_caveat

    return truth_caveat(realised, predicted)


def realised_saved_value(
    scored: pd.DataFrame, truth: pd.DataFrame, policy: Policy | None = None
) -> float:
    """The value the selected customers' campaign could truly save, by the synthetic truth.

    Sum over selected customers of ``churned_90 x expected_value_365 x uplift``,
    where the uplift is the share of the predicted value at risk that the chosen
    action saves: ``expected_saved_value / (churn_probability x predicted_value)``
    (0 where nothing is at risk). Customers given a growth action of ``policy``
    count ``(1 - churned_90) x expected_value_365 x value_lift`` instead.

    Examples
    --------
    >>> import pandas as pd
    >>> scored = pd.DataFrame({
    ...     "customer_id": ["a", "b"], "selected": [True, False],
    ...     "expected_saved_value": [6.0, 1.0], "churn_probability": [0.5, 0.1],
    ...     "predicted_value": [100.0, 50.0]})
    >>> truth = pd.DataFrame({
    ...     "customer_id": ["b", "a"], "churned_90": [1, 1],
    ...     "expected_value_365": [40.0, 80.0]})
    >>> realised_saved_value(scored, truth)
    9.6
    """
    truth = truth.set_index("customer_id").reindex(scored["customer_id"])
    sel = scored["selected"].to_numpy()
    uplift = scored["expected_saved_value"] / (
        scored["churn_probability"] * scored["predicted_value"].clip(lower=0)
    ).where(lambda s: s > 0)
    churned = truth["churned_90"].to_numpy()
    value = truth["expected_value_365"].to_numpy()
    saved = churned * value * uplift.fillna(0).to_numpy()
    for action in policy.actions if policy is not None else ():
        if action.goal == "growth":
            grown = (scored["action"] == action.name).to_numpy()
            saved[grown] = (1 - churned[grown]) * value[grown] * action.value_lift
    return float(saved[sel].sum())


def _score_both(
    tables: InputTables,
    as_of: pd.Timestamp,
    champion: Champion,
    policy: Policy,
    budget: float | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scores with ``champion`` and those by the policy formula (its churn and value
    models without the uplift one), from one feature frame.

    The features carry the event types of all of ``champion``'s models
    (``score`` computes the same frame for it); the churn and value models run
    once, for the policy formula's scores, and the uplift scores reuse their
    predictions. Without an uplift model both are the same frame.
    """
    import dataclasses

    from churnclv._pages import ordinary_pages
    from churnclv.features._build import table_features
    from churnclv.features._vocabulary import model_vocabulary
    from churnclv.serving import score_features

    formula = dataclasses.replace(champion, uplift=None, uplift_version=None)
    vocabulary = model_vocabulary(champion.churn, champion.value, champion.uplift)
    with ordinary_pages():  # as in score: a batch's large arrays, each touched once
        feats = table_features(tables, as_of=as_of, vocabulary=vocabulary)
        by_policy = score_features(feats, formula, policy, budget=budget)
        if champion.uplift is None:
            return by_policy, by_policy
        p, v = (by_policy[c].to_numpy(float) for c in ("churn_probability", "predicted_value"))
        scored = score_features(feats, champion, policy, budget=budget, predictions=(p, v))
    return scored, by_policy


def run_demo(
    workdir: str | os.PathLike[str],
    *,
    customers: int = 5000,
    seed: int = 0,
    policy: str | os.PathLike[str] | None = None,
    budget: float | None = None,
    tracking_uri: str | None = None,
    step: Step = _quiet_step,
    note: Callable[[str], None] = lambda message: None,
    should_stop: Callable[[], bool] | None = None,
    uplift: bool = True,
) -> DemoResult:
    """Generate synthetic customers, train and promote, learn the actions, score, report.

    Writes ``data/``, ``mlruns.db`` (unless ``tracking_uri``), ``scores.parquet``,
    ``snapshots/<as_of>.parquet`` and ``report.html`` under ``workdir``.

    After the churn and value models, with ``uplift`` the uplift model is
    trained on the generated campaign log and promoted (as ``train-uplift
    --promote``). The customers' features are then computed once and scored
    two ways (:func:`_score_both`): with the churn and value champions alone
    (the policy formula's actions) and with the uplift champion too. The
    latter scores (``action_basis`` ``learned`` or ``best_uniform``) are the
    ones written, and :attr:`DemoResult.comparison` values both decisions and
    the oracle's on the generator's true effects.

    Parameters
    ----------
    workdir : path-like
        The work directory (created if missing).
    customers, seed : int
        Size and random seed of the synthetic population (and the models' seed).
    policy : path-like, optional
        Decision policy YAML; default the shipped policy.
    budget : float, optional
        Campaign budget (see :func:`churnclv.score`).
    tracking_uri : str, optional
        MLflow tracking URI; default ``sqlite:///<workdir>/mlruns.db``.
    step : callable, optional
        ``step(label)`` returns a context manager around each stage that
        yields a progress callback (the CLI shows spinners with it).
    note : callable, optional
        Called with each note loading the inputs raised.
    should_stop : callable, optional
        Passed to :func:`churnclv.train`: training stops (``KeyboardInterrupt``)
        before registering or promoting when it returns True.
    uplift : bool, default True
        Train the uplift model on the generated campaigns and score with it.
        ``realised_value`` and ``predicted_saved_value`` always check the
        policy formula's campaign.
    """
    import pandas as pd

    from churnclv import generate, load_champion, load_inputs, load_policy, train
    from churnclv._demo_uplift import compare_with_truth, train_demo_uplift
    from churnclv._generate import write
    from churnclv._io import LoadReport, atomic_write_parquet
    from churnclv._monitor import write_snapshot
    from churnclv._reporting import write_decision_report
    from churnclv.training import tracking_uri_for

    pol = load_policy(policy)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    with step(f"generating {customers:,} synthetic customers"):
        data = generate(customers, seed=seed, history_days=1100)
        paths = write(data, work / "data")
    as_of = pd.Timestamp(data.as_of)
    report = LoadReport()
    with step("loading inputs"):
        tables = load_inputs(
            paths["transactions"], paths["events"], paths["customers"], report=report
        )
    for message in report.notes:
        note(message)
    uri = tracking_uri_for(work, tracking_uri)
    with step("training and registering") as update:
        result = train(
            tables,
            as_of=as_of,
            tracking_uri=uri,
            promote=True,
            seed=seed,
            progress=update,
            should_stop=should_stop,
        )
    trained, comparison = None, None
    if uplift and "campaigns" in paths:
        with step("learning actions from the campaign log") as update:
            trained = train_demo_uplift(
                tables,
                paths["campaigns"],
                as_of=as_of,
                tracking_uri=uri,
                policy=pol,
                seed=seed,
                progress=update,
                note=note,
            )
    with step("loading champion"):
        champion = load_champion(uri)
    with step("batch scoring"):
        scored, by_policy = _score_both(tables, as_of, champion, pol, budget)
    if trained is not None:
        comparison = compare_with_truth(scored, by_policy, data.truth, pol)
    scores_path = atomic_write_parquet(scored, work / "scores.parquet")
    write_snapshot(scored, champion, work)
    realised = realised_saved_value(by_policy, data.truth, pol)
    predicted = float(by_policy.loc[by_policy["selected"].to_numpy(), "expected_saved_value"].sum())
    notes = [comparison.sentence() if comparison else _truth_note(realised, predicted)]
    with step("report"):
        report_path = write_decision_report(
            scored,
            work / "report.html",
            uri,
            champion,
            notes=notes,
            workdir=work,
            policy_scored=by_policy if trained is not None else None,
        )
    return DemoResult(
        data=data,
        train=result,
        champion=champion,
        scored=scored,
        scores_path=scores_path,
        report_path=report_path,
        tracking_uri=uri,
        realised_value=realised,
        predicted_saved_value=predicted,
        uplift=trained,
        policy_scored=by_policy if trained is not None else None,
        comparison=comparison,
    )
