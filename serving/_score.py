"""The scoring entry point: input tables as of a date -> features -> models -> decisions."""

from __future__ import annotations

import pandas as pd

from churnclv._as_of import check_as_of
from churnclv._io import InputTables
from churnclv._io_scan import InputScans
from churnclv._pages import ordinary_pages
from churnclv.decisions import Policy
from churnclv.features._build import table_features
from churnclv.features._vocabulary import model_vocabulary
from churnclv.serving._batch import score_features
from churnclv.serving._spark import score_spark
from churnclv.training import Champion

__all__ = ["score"]


def score(
    tables: InputTables | InputScans,
    *,
    as_of: pd.Timestamp | str,
    champion: Champion,
    policy: Policy,
    engine: str = "duckdb",
    budget: float | None = None,
) -> pd.DataFrame:
    """Score every customer with a purchase before ``as_of``.

    Parameters
    ----------
    tables : InputTables or InputScans
        Transactions, optional events and customers (:func:`churnclv.load_inputs`),
        or the validated files themselves (:func:`churnclv.scan_inputs`: the
        feature engine then reads their rows in place, the fastest way to
        score a large batch).
    as_of : timestamp or str
        The cutoff; rows at or after it are ignored.
    champion : Champion
        The models (:func:`churnclv.load_champion`).
    policy : Policy
        The decision policy (:func:`churnclv.load_policy`).
    engine : {"duckdb", "spark", "sqlite"}
        Where features are computed. ``"spark"`` also runs the models and the
        decisions on the Spark executors
        (:func:`~churnclv.serving._spark.score_spark`); the decisions are the
        same code on every engine.
    budget : float, optional
        Campaign budget: customers are selected by best expected gain per unit
        cost until it is spent; ``None`` selects every customer whose action pays.

    Returns
    -------
    pandas.DataFrame
        One row per customer: ``customer_id``, ``churn_probability``,
        ``predicted_value``, ``value_tier``, ``risk_band``, ``lifecycle_stage``,
        ``rfm_segment``, ``action``, ``expected_net_gain``, then ``as_of``,
        ``model_version``, ``selected``, ``action_cost``,
        ``expected_saved_value`` and ``reasons``.

    Raises
    ------
    InputError
        When no customer has a purchase before ``as_of``, for a negative
        ``budget``, or an unknown or unavailable engine.

    Examples
    --------
    Train a champion on 300 synthetic customers, then score them:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from churnclv import InputTables, generate, load_champion, load_policy, score, train
    >>> data = generate(300, seed=0)
    >>> tables = InputTables(data.transactions, data.events, data.customers)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     uri = f"sqlite:///{Path(tmp) / 'mlruns.db'}"
    ...     _ = train(tables, as_of=data.as_of, tracking_uri=uri, promote=True)
    ...     scored = score(
    ...         tables, as_of=data.as_of, champion=load_champion(uri), policy=load_policy()
    ...     )
    >>> len(scored)
    300
    >>> list(scored.columns[:5])
    ['customer_id', 'churn_probability', 'predicted_value', 'value_tier', 'risk_band']
    >>> bool(scored["churn_probability"].between(0, 1).all())
    True
    """
    as_of = pd.Timestamp(as_of)
    check_as_of(tables.transactions, as_of)
    if engine == "spark":
        if isinstance(tables, InputScans):
            tables = tables.to_tables()
        return score_spark(tables, as_of=as_of, champion=champion, policy=policy, budget=budget)
    vocabulary = model_vocabulary(champion.churn, champion.value, champion.uplift)
    with ordinary_pages():  # a batch's large arrays, each touched once: see _pages
        feats = table_features(tables, as_of=as_of, vocabulary=vocabulary, engine=engine)
        return score_features(feats, champion, policy, budget=budget)
