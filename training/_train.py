"""Train the churn and value models: the stages of a training, run in order by :func:`train`.

Each stage lives in the module that owns it: the cutoffs and the purged split
(``_plan``), the model fits, the BTYD fallback and the value selection
(``_fit``), the out-of-time evaluation beside the baselines (``_evaluate``),
the MLflow run (``_tracking``), registration and the champion gate
(``_registry``).

The training stack holds cutoffs ``cutoff_step_days`` apart whose label windows
end at or before ``as_of``; the latest cutoff of each model is its out-of-time
validation window, and training rows are purged so that no label window
overlaps it. Metrics of model and baselines (RFM, BG/NBD, BG/NBD + Gamma-Gamma
on the same rows), params, the data fingerprint, window and git SHA are logged
to MLflow; both models are registered. With ``promote`` each gets the alias
``champion`` when it beats the current champion on the same validation rows
(or when there is none); a champion that cannot be compared on these rows is
kept.

The value model is a Tweedie LightGBM or a two-part model (P(buy) x
E[spend | buy]), whichever ranks better on the latest training cutoff (param
``value_model_kind``). When a model cannot be trained (the history is too short
for its label window, too few rows, or labels with nothing to learn: one churn
class only, no spend), the BTYD fallback fitted as of ``as_of`` is registered
in its place (tag ``fallback_<kind>``; see
``BTYDModel``); a fallback becomes champion only when there is none or the
champion is a fallback too.

With ``refit_value`` the registered value model is refitted, once its kind is
chosen and it has been evaluated, on the latest ``max_cutoffs`` cutoffs up to
and including the validation cutoff (all labelled by ``as_of``): the purged
training rows end a whole value horizon before the validation cutoff (for a
365-day horizon, two years before ``as_of``), so the model that scores
``as_of`` learns from recent behaviour. The logged value metrics are those of
the model fitted on the training rows (the refitted one has seen the
validation labels); the registered model records that evaluation
(``evaluation_``) and the end of its latest label window (``label_end_``),
which the champion gate uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from churnclv._io import InputTables
from churnclv.features._vocabulary import DEFAULT_TOP_K
from churnclv.training._evaluate import evaluate
from churnclv.training._fit import (
    attach_scoring_state,
    fit_churn,
    fit_value,
    model_kinds,
    record_provenance,
    untrainable,
)
from churnclv.training._model import BoosterModel
from churnclv.training._plan import plan_training
from churnclv.training._registry import crown, judge, register_models
from churnclv.training._scorable import TrainableModel
from churnclv.training._settle import design_note, log_design, settle_design
from churnclv.training._source import FeatureSource, as_source
from churnclv.training._tracking import (
    checkpoint,
    log_run,
    start_tracking,
    tracked_run,
    training_run_name,
)

__all__ = ["TrainResult", "train"]

Progress = Callable[[str], None]


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes
    ----------
    run_id : str
        The MLflow run of the training (experiment ``churnclv``).
    metrics : dict of str to float
        The out-of-time metrics of the models and of the baselines on the same
        validation rows (``churn_roc_auc``, ``value_gini``, ``baseline_rfm_*``,
        ``baseline_bgnbd_*``, ...), as logged to the run.
    churn_version, value_version : str
        The registered versions of ``churnclv-churn`` and ``churnclv-value``.
    promoted : dict of str to bool
        Per model kind, whether it took the ``champion`` alias (empty without
        ``promote``).
    reasons : dict of str to str
        Per model kind, why it was or was not promoted.
    n_rows : dict of str to int
        Training rows of each model (``churn_train``, ``value_train``) and the
        rows each was refitted on (``churn_refit``: customer-holdout design only,
        ``value_refit``; 0 without a refit).
    fallbacks : dict of str to str
        Why a model kind is the BTYD fallback (absent when it was trained).
    model_kinds : dict of str to str
        ``{"churn": "lightgbm" | "btyd_fallback", "value": "tweedie" | "two_part" | ...}``.
    value_candidates : dict of str to TrainableModel
        Every value candidate refitted on all training rows
        (``train(keep_candidates=True)``).
    evaluation : dict of str to str
        Per model kind, how it was evaluated: ``"out_of_time"`` (purged split)
        or ``"customer_holdout"`` (the history is too short for the purged
        split; see ``churnclv.training._holdout``).
    evaluation_note : str
        One line saying which design was used and why.

    Examples
    --------
    See :func:`train`; a result reads like this:

    >>> from churnclv import TrainResult
    >>> result = TrainResult("run-1", {"churn_roc_auc": 0.8}, "1", "1", {"churn": True})
    >>> result.promoted["churn"], result.fallbacks
    (True, {})
    """

    run_id: str
    metrics: dict[str, float]
    churn_version: str
    value_version: str
    promoted: dict[str, bool] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    n_rows: dict[str, int] = field(default_factory=dict)
    fallbacks: dict[str, str] = field(default_factory=dict)
    model_kinds: dict[str, str] = field(default_factory=dict)
    value_candidates: dict[str, TrainableModel] = field(default_factory=dict)
    evaluation: dict[str, str] = field(default_factory=dict)
    evaluation_note: str = ""


def train(
    tables: InputTables | FeatureSource,
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
    value_model: TrainableModel | None = None,
    keep_candidates: bool = False,
    refit_value: bool = True,
    should_stop: Callable[[], bool] | None = None,
    event_types: Sequence[str] = (),
    event_top_k: int = DEFAULT_TOP_K,
) -> TrainResult:
    """Fit the churn and value models on monthly cutoffs and evaluate them out of time.

    Runs the stages of a training (see the module ``churnclv.training._train``):
    plan the cutoffs and the purged split, fit and calibrate churn, select and
    refit value (or fall back to BTYD), evaluate beside the baselines, log the
    run to MLflow, register both models and, with ``promote``, gate the champions.

    Parameters
    ----------
    tables : InputTables
        Transactions (and optionally events and customers), e.g. from
        :func:`churnclv.load_inputs`. The features and labels are computed
        from them in process (DuckDB). ``churnclv train --engine spark``
        passes a feature source instead, which computes them on Spark and
        hands over one row per customer and cutoff.
    as_of : pandas.Timestamp or str
        The training date: every label window ends by it, and the BTYD pair the
        models score with is fitted on the history before it.
    tracking_uri : str
        MLflow tracking and registry URI, e.g. ``sqlite:///work/mlruns.db``.
    churn_horizon_days, value_horizon_days : float, default 90 and 365
        The label windows: churn = no purchase within the churn horizon; value
        = net spend within the value horizon.
    promote : bool, default False
        Run the champion gates and move the ``champion`` aliases to the winners.
    max_cutoffs : int, default 12
        Most cutoffs per model (the validation cutoff included).
    cutoff_step_days : float, default 30
        Days between training cutoffs.
    seed : int, default 0
        Seed of every model and of the value selection's bootstrap.
    progress : callable, optional
        Called with a short message as each stage starts.
    churn_model, value_model : BoosterModel, optional
        Replace the default estimators (any :class:`BoosterModel`-compatible
        object with ``fit``/``predict``; a given value model skips the selection).
    keep_candidates : bool, default False
        Refit every value candidate on the final value model's rows and return
        them in ``value_candidates``.
    refit_value : bool, default True
        Refit the registered value model through the validation cutoff.
    should_stop : callable, optional
        Asked before registering the models and again before the champion
        aliases are set (which is also before the run can end FINISHED); when it
        returns True the training raises ``KeyboardInterrupt``, its run ends
        FAILED and no champion changes. None never stops.
    event_types : sequence of str, optional
        Event types that get their own features besides those chosen from
        the data.
    event_top_k : int, default 8
        The most frequent event types before ``as_of`` that get their own
        features (plus ``event_types`` and the survey types ``nps`` and
        ``satisfaction`` when present); valued ones (a non-null ``value``)
        also get value features. The choice is frozen with the models
        (``event_vocabulary_``) and scoring computes the same columns; other
        event types count only in the event totals.

    Returns
    -------
    TrainResult
        The run, its metrics, the registered versions and the promotions.

    Raises
    ------
    InputError
        ``as_of`` before every purchase, or a model needs the fallback and BG/NBD
        cannot be fitted either.
    KeyboardInterrupt
        When ``should_stop`` returned True.

    Examples
    --------
    >>> import tempfile
    >>> from churnclv import InputTables, generate, load_champion, train
    >>> data = generate(300, seed=1)
    >>> past = lambda df: df[df["ts"] < data.as_of]
    >>> tables = InputTables(past(data.transactions), past(data.events), data.customers)
    >>> uri = f"sqlite:///{tempfile.mkdtemp()}/mlruns.db"
    >>> result = train(tables, as_of=data.as_of, tracking_uri=uri, promote=True)
    >>> result.promoted, result.model_kinds["churn"]
    ({'churn': True, 'value': True}, 'lightgbm')
    >>> sorted(result.n_rows)
    ['churn_refit', 'churn_train', 'value_refit', 'value_train']
    >>> result.evaluation
    {'churn': 'out_of_time', 'value': 'out_of_time'}
    >>> load_champion(uri).model_version
    'churn:v1+value:v1'
    """
    say = progress or (lambda _msg: None)
    as_of = pd.Timestamp(as_of)
    source = as_source(tables)
    source.check_as_of(as_of)
    horizons = (churn_horizon_days, value_horizon_days)
    vocabulary = source.event_vocabulary(as_of, top_k=event_top_k, named=event_types)
    plan = plan_training(
        source, as_of, horizons, max_cutoffs, cutoff_step_days, refit_value, say, vocabulary
    )
    fallbacks = untrainable(plan)
    churn = fit_churn(plan, fallbacks, churn_model, seed, say)
    value = fit_value(plan, fallbacks, value_model, keep_candidates, seed, say)
    attach_scoring_state(churn.model, value, plan, fallbacks)
    ev = evaluate(plan, churn.model, value.evaluated, fallbacks, value.candidate_metrics, say)
    churn, value, ev = settle_design(plan, churn, value, ev, fallbacks, churn_model, seed, say)
    attach_scoring_state(churn.model, value, plan, fallbacks)
    record_provenance(churn.model, value, plan, ev.metrics)
    kinds = model_kinds(fallbacks, value)

    say("logging to MLflow")
    start_tracking(tracking_uri)
    with tracked_run(training_run_name(as_of, *horizons), tracking_uri) as run:
        log_run(source.data_tags(as_of), plan, churn, value, ev, fallbacks, kinds, seed)
        log_design(plan)
        # An interrupt raised inside one of MLflow's finalizers is lost: the stop callback
        # is asked again before each step that must not happen once a stop was requested.
        checkpoint(should_stop)
        say("registering models")
        examples = (
            plan.c_valid if ev.p_churn is not None else plan.now,
            plan.v_valid if ev.p_value is not None else plan.now,
        )
        versions = register_models(churn.model, value.model, examples, kinds)
        validation = {"churn": (plan.c_valid, ev.yc), "value": (plan.v_valid, ev.yv)}
        promotion = judge(promote, versions, ev.metrics, fallbacks, validation)
        checkpoint(should_stop)  # a stop now changes no champion, and the run ends FAILED
        crown(promotion)
    return TrainResult(
        run_id=run.info.run_id,
        metrics=ev.metrics,
        churn_version=versions["churn"],
        value_version=versions["value"],
        promoted=promotion.promoted,
        reasons=promotion.reasons,
        n_rows={
            "churn_train": len(plan.c_train),
            "value_train": len(plan.v_train),
            "value_refit": len(value.rows) if value.refitted else 0,
            "churn_refit": churn.refit_rows,
        },
        fallbacks=fallbacks,
        model_kinds=kinds,
        value_candidates=value.candidates,
        evaluation=dict(plan.designs),
        evaluation_note=design_note(plan),
    )
