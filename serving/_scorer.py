"""The online scorer: validated requests in, JSON-ready prediction dicts out.

Request customers -> features (:class:`~churnclv.features._session.FeatureSession`)
-> the batch path's model step (:func:`~churnclv.serving._batch.predict`) ->
decisions (:func:`~churnclv.decisions.decide_columns`) -> reasons
(:func:`churnclv._reasons.reasons`), on column arrays with no frame built on
the way for small batches. No BentoML import.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from churnclv._clv_fields import add_to_records, clv_columns
from churnclv._reasons import reasons
from churnclv._satisfaction import satisfaction_columns
from churnclv.decisions import Policy, decide_columns
from churnclv.features._session import FeatureSession
from churnclv.features._sql import DEFAULT_EVENT_TYPES
from churnclv.features._sql_breadth import breadth_inputs
from churnclv.features._vocabulary import model_vocabulary
from churnclv.serving._batch import DECISION_EXTRAS, SCORE_COLUMNS, null_missing, predict
from churnclv.serving._requests import (
    DECISION_INPUTS,
    CustomerIn,
    RequestError,
    feature_rows_frame,
    to_naive_utc,
    utcnow,
)
from churnclv.serving._uplift_scoring import uplift_decisions, uplift_feature_columns
from churnclv.training import Champion
from churnclv.training._model import Columns

__all__ = ["OnlineScorer"]


def _records(
    features: Columns,
    predictions: tuple[np.ndarray, np.ndarray],
    decided: Mapping[str, np.ndarray],
    why: list[list[dict[str, Any]]],
    extra: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One JSON-ready dict per row: the DESIGN §7 columns, ``as_of``, ``reasons``, the
    decision extras (``potential_high_value``, ``holdout``, ``action_basis``) and the
    ``extra`` columns of ``decided`` (``uplift_<action>``, NaN as null)."""
    # Column-wise tolist() gives plain Python values (float, str) without per-row work.
    values = [
        features["customer_id"].tolist(),
        _nulls(predictions[0]),  # NaN (no such champion) as null
        _nulls(predictions[1]),
        *(decided[c].tolist() for c in SCORE_COLUMNS[3:]),
        [pd.Timestamp(t).isoformat() for t in features["as_of"].tolist()],
        why,
        *(decided[c].tolist() for c in DECISION_EXTRAS),
        *(_nulls(decided[c]) for c in extra),
    ]
    cols = [*SCORE_COLUMNS, "as_of", "reasons", *DECISION_EXTRAS, *extra]
    return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)]


def _nulls(values: np.ndarray) -> list[Any]:
    """``values`` as a list, NaN as None (JSON null)."""
    out = values.tolist()
    if values.dtype.kind == "f":
        return [None if v != v else v for v in out]
    return list(out)


@dataclass
class OnlineScorer:
    """Champion + policy + a prepared feature session: requests in, prediction dicts out.

    Parameters
    ----------
    champion : Champion
        The models (from :func:`churnclv.training.load_champion`).
    policy : Policy
        The decision policy.

    Examples
    --------
    >>> import tempfile
    >>> from churnclv import (CustomerIn, InputTables, OnlineScorer, generate, load_champion,
    ...                       load_policy, train)
    >>> data = generate(300, seed=1)
    >>> past = lambda df: df[df["ts"] < data.as_of]
    >>> tables = InputTables(past(data.transactions), past(data.events), data.customers)
    >>> uri = f"sqlite:///{tempfile.mkdtemp()}/mlruns.db"
    >>> _ = train(tables, as_of=data.as_of, tracking_uri=uri, promote=True)
    >>> scorer = OnlineScorer(load_champion(uri), load_policy())
    >>> customer = CustomerIn(customer_id="C1", as_of=data.as_of,
    ...                       transactions=[{"ts": "2023-05-01", "amount": 42.0}])
    >>> answer = scorer.score_customers([customer])[0]
    >>> answer["customer_id"], 0 <= answer["churn_probability"] <= 1, answer["value_tier"] in (
    ...     "low", "medium", "high")
    ('C1', True, True)
    """

    champion: Champion
    policy: Policy
    static_columns: list[str] = field(init=False)
    required_columns: list[str] = field(init=False)
    session: FeatureSession = field(init=False)

    def __post_init__(self) -> None:
        models = (self.champion.churn, self.champion.value)
        used = list(
            dict.fromkeys(
                [
                    *(c for m in models if m is not None for c in m.features_),
                    *uplift_feature_columns(self.champion),
                ]
            )
        )
        used = [c for c in used if c not in _model_derived_columns()]  # the models add these
        types, valued = model_vocabulary(
            self.champion.churn, self.champion.value, self.champion.uplift
        )
        known = set(_base_feature_columns(types, valued))
        self.static_columns = [c for c in used if c not in known]
        self.required_columns = list(dict.fromkeys([*used, *DECISION_INPUTS]))
        self.session = FeatureSession(
            self.static_columns,
            event_types=types,
            valued_event_types=valued,
            breadth=breadth_inputs(used),
        )

    # -- the shared model step --
    def _score(self, feats: Columns, ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Records for a feature frame or column arrays: the batch path's model step,
        decisions and reasons (:func:`~churnclv.serving._batch.predict`,
        :func:`~churnclv.decisions.decide_columns`, :func:`reasons`), with no frame
        built on the way (frame overhead dominates a one-customer call). ``ids`` are the
        customers' own ids where ``feats`` carries other keys (the holdout hashes them)."""

        champion = self.champion
        feats, x_churn, p, v = predict(feats, champion)
        given: dict[str, Any] = {"churn_probability": p, "predicted_value": v}
        if ids is not None:
            given["customer_id"] = ids
        decided = decide_columns(
            collections.ChainMap(
                given,
                cast("MutableMapping[str, Any]", feats),  # read only: a frame or a mapping
            ),
            self.policy,
            churn_horizon_days=champion.churn_horizon_days,
            reference=champion.reference,
        )
        null_missing(decided, champion, len(p))
        learned = uplift_decisions(feats, decided, champion, self.policy)
        decided.update(learned)
        churn = champion.churn
        if churn is None or x_churn is None:
            why: list[list[dict[str, Any]]] = [[] for _ in range(len(p))]
        else:
            contributions = churn.contribution_matrix(x_churn)
            why = reasons(feats, contributions, columns=churn.features_)
        extra = [c for c in learned if c.startswith("uplift_")]
        records = _records(feats, (p, v), decided, why, extra)
        stage = decided["lifecycle_stage"]
        add_to_records(records, clv_columns(feats, p, v, stage, champion, self.policy))
        add_to_records(records, satisfaction_columns(feats, self.policy))
        return records

    def score_customers(
        self, customers: Sequence[CustomerIn], now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Predictions for validated customers, in request order.

        Customers are grouped by ``as_of`` (omitted = ``now``); each group is
        one feature query and one model call.
        """
        now = now or utcnow()
        groups: dict[datetime, list[int]] = {}
        for i, c in enumerate(customers):
            when = to_naive_utc(c.as_of) if c.as_of is not None else now
            groups.setdefault(when, []).append(i)
        results: list[dict[str, Any] | None] = [None] * len(customers)
        for as_of, idx in groups.items():
            members = [customers[i] for i in idx]
            keys = [str(i) for i in idx]
            feats = self.session.customer_columns(members, keys, as_of)
            by_key = {k: n for n, k in enumerate(feats["customer_id"])}
            own = {key: c.customer_id for key, c in zip(keys, members, strict=True)}
            recs = self._score(feats, [own[k] for k in by_key]) if by_key else []
            for i, key, c in zip(idx, keys, members, strict=True):
                n = by_key.get(key)
                if n is None:  # validation guarantees a purchase; keep a clear error anyway
                    raise RequestError(
                        f"customer {c.customer_id!r}: no purchase before as_of",
                        field=f"customers[{i}].transactions",
                    )
                results[i] = {**recs[n], "customer_id": c.customer_id}
        return [r for r in results if r is not None]

    def feature_frame(
        self, rows: Sequence[Mapping[str, Any]], now: datetime | None = None
    ) -> pd.DataFrame:
        """Validate precomputed feature rows and build the model's input frame
        (:func:`~churnclv.serving._requests.feature_rows_frame`).

        Raises
        ------
        RequestError
            Missing required columns (all named), non-numeric values in numeric
            columns (column and row named), or too many rows.
        """
        models = (self.champion.churn, self.champion.value, self.champion.uplift)
        categorical = {c for m in models if m is not None for c in m.categories_}
        return feature_rows_frame(rows, self.required_columns, categorical, now)

    def score_feature_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Predictions for precomputed feature rows, in request order."""
        return self._score(self.feature_frame(rows))


def _model_derived_columns() -> frozenset[str]:
    """Columns the models compute themselves when a frame lacks them (BTYD features)."""
    try:
        from churnclv.training._hybrid import BTYD_COLUMNS
    except ImportError:  # pragma: no cover - older training package
        return frozenset()
    return frozenset(BTYD_COLUMNS)


def _base_feature_columns(
    event_types: Sequence[str] = DEFAULT_EVENT_TYPES, valued: Sequence[str] = ()
) -> list[str]:
    """Columns the feature definition derives from transactions and events alone."""
    from churnclv.features import build_features

    ts = np.array(["2020-01-01T00:00:00"], dtype="datetime64[us]")
    tx = pd.DataFrame(
        {"customer_id": ["x"], "ts": ts, "amount": [1.0], "category": ["c"], "channel": ["c"]}
    )
    ev = pd.DataFrame({"customer_id": ["x"], "ts": ts, "event_type": ["login"], "value": [1.0]})
    cols = build_features(
        tx, ev, None, as_of="2020-01-02", event_types=event_types, valued_event_types=valued
    ).columns
    return [*cols, "days_since_signup"]
