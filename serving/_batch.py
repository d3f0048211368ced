"""Batch scoring: feature rows -> champion models -> decisions and reasons."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import numpy as np
import pandas as pd

from churnclv._clv_fields import CLV_COLUMNS, clv_columns
from churnclv._reasons import ReasonTable
from churnclv._reasons_batch import top_contributions, top_k
from churnclv._satisfaction import SATISFACTION_COLUMNS, satisfaction_columns
from churnclv.decisions import Policy, decide, select_under_budget
from churnclv.serving._uplift_scoring import uplift_decisions
from churnclv.training import Champion
from churnclv.training._model import Columns

__all__ = [
    "DECISION_EXTRAS",
    "SCORE_COLUMNS",
    "missing_note",
    "null_missing",
    "predict",
    "score_features",
]

#: The feature columns score_features carries into decisions and its output.
_DECISION_COLUMNS = frozenset(
    {
        "customer_id",
        "as_of",
        "recency_days",
        "tenure_days",
        "gap_mean_days",
        "frequency",
        "monetary_total",
    }
)

SCORE_COLUMNS = (
    "customer_id",
    "churn_probability",
    "predicted_value",
    "value_tier",
    "risk_band",
    "lifecycle_stage",
    "rfm_segment",
    "action",
    "expected_net_gain",
)

#: Reasons (largest churn-model contributions) per customer in batch scores.
REASONS_PER_ROW = 3

#: Decision columns after the DESIGN §7 ones, in batch scores and service answers alike.
DECISION_EXTRAS = ("potential_high_value", "holdout", "action_basis")


def predict(
    features: Columns,
    champion: Champion,
    predictions: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Columns, np.ndarray | None, np.ndarray, np.ndarray]:
    """The model step shared by batch and online scoring.

    ``features`` is a frame or a mapping of column arrays. Returns the
    features with the BTYD columns the churn model needs, the churn model's
    input matrix (for its contributions), P(churn) and the predicted value
    (``predictions`` when given, e.g. computed on Spark executors). BTYD
    columns and matrices are built once and shared by all the model calls.
    Without a churn (value) champion the matrix is None and P(churn) (the
    predicted value) is NaN.
    """
    features, x_churn, p, v, _ = _predict(features, champion, predictions, 0)
    return features, x_churn, p, v


def _predict(
    features: Columns,
    champion: Champion,
    predictions: tuple[np.ndarray, np.ndarray] | None,
    reasons: int,
) -> tuple[Columns, np.ndarray | None, np.ndarray, np.ndarray, Any]:
    """:func:`predict`, plus each row's ``reasons`` top churn-model contributions
    ``(columns, values)`` when asked (0: not) and the model gives them in the same pass
    over its trees as P(churn) (``predict_explained``), else None."""
    n = len(features["customer_id"])
    if champion.base is not None:
        features = champion.base.with_btyd(features)
    churn, value = champion.churn, champion.value
    x_churn = None if churn is None else churn.matrix(features)
    if predictions is not None:
        return features, x_churn, *predictions, None
    top = None
    if churn is None:
        p = np.full(n, np.nan)
    elif reasons and x_churn is not None and hasattr(churn, "predict_explained"):
        p, parts = churn.predict_explained(x_churn, lambda c: top_k(c, reasons))
        top = _stacked(parts, x_churn, len(churn.features_), reasons)
    else:
        p = churn.predict(x_churn)
    v = (
        np.full(n, np.nan)
        if value is None
        else value.predict(_value_matrix(value, churn, x_churn, features))
    )
    return features, x_churn, p, v, top


def _value_matrix(value: Any, churn: Any, x_churn: np.ndarray | None, features: Columns) -> Any:
    """The value model's input matrix: the churn model's when both read the same columns
    with the same categories (the same matrix, built once), else its own."""
    same = (
        x_churn is not None
        and getattr(value, "features_", None) == getattr(churn, "features_", 0)
        and getattr(value, "categories_", None) == getattr(churn, "categories_", 0)
    )
    return x_churn if same else value.matrix(features)


def _stacked(
    parts: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, width: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The chunks' ``(columns, values)`` of :func:`top_k` as one pair of arrays."""
    if not parts:
        return top_k(np.zeros((len(x), width)), k)
    return np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts])


def null_missing(decided: MutableMapping[str, Any], champion: Champion, n: int) -> None:
    """Set the decision columns of a missing model to null, in place.

    Without a value champion ``value_tier`` is null (actions restricted by tier
    are then not eligible) and ``potential_high_value`` false; without a churn
    champion ``risk_band`` is null.
    """
    if champion.value is None:
        decided["value_tier"] = np.full(n, None, dtype=object)
        decided["potential_high_value"] = np.zeros(n, dtype=bool)
    if champion.churn is None:
        decided["risk_band"] = np.full(n, None, dtype=object)


def missing_note(champion: Champion) -> str | None:
    """One line naming the missing churn / value champions and the columns left null."""
    nulls = {
        "churn": "churn_probability, risk_band and reasons",
        "value": "predicted_value, value_tier and the CLV fields",
    }
    gone = [k for k in ("churn", "value") if k in champion.missing]
    if not gone:
        return None
    parts = [f"no {k} champion ({nulls[k]} are null)" for k in gone]
    basis = (
        "actions come from the uplift champion"
        if champion.uplift is not None
        else "actions need P(churn) and value by the policy formula, so every action is none"
    )
    return f"{'; '.join(parts)}; {basis}"


def score_features(
    features: pd.DataFrame,
    champion: Champion,
    policy: Policy,
    *,
    budget: float | None = None,
    with_reasons: bool = True,
    predictions: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Predictions and decisions for precomputed feature rows (one cutoff).

    Returns the DESIGN §7 columns, then ``as_of``, ``model_version``,
    ``selected`` (in the campaign: the action pays and fits the ``budget``),
    ``action_cost``, ``expected_saved_value``, :data:`DECISION_EXTRAS`
    (``potential_high_value``, ``holdout``, ``action_basis``), ``uplift_<action>`` with an
    uplift champion, the marketer fields (:mod:`churnclv._clv_fields`: predicted orders, next
    order date, CLV to date and ahead, percentile ranks), ``satisfaction_score`` and
    ``satisfaction_class`` (:mod:`churnclv._satisfaction`) and ``reasons`` (the top three
    churn-model contributions in plain words). ``predictions`` (P(churn),
    predicted value) computed elsewhere, e.g. on Spark executors, skip the
    model calls; decisions and reasons are the same code either way.
    """
    # Decisions read a few columns; copying only those keeps a one-customer call cheap.
    keep = [c for c in features.columns if c in _DECISION_COLUMNS]
    scored = features[keep].copy()
    k = REASONS_PER_ROW if with_reasons else 0
    features, x_churn, scored["churn_probability"], scored["predicted_value"], top = _predict(
        features, champion, predictions, k
    )
    scored = decide(
        scored,
        policy,
        churn_horizon_days=champion.churn_horizon_days,
        reference=champion.reference,
    )
    if champion.churn is None or champion.value is None:
        nulls: dict[str, Any] = {}
        null_missing(nulls, champion, len(scored))
        scored = scored.assign(**nulls)
    learned = uplift_decisions(features, scored, champion, policy)
    scored = scored.assign(**learned)
    scored["model_version"] = champion.model_version
    p, v, stage = (scored[c] for c in ("churn_probability", "predicted_value", "lifecycle_stage"))
    scored = scored.assign(**clv_columns(features, p, v, stage, champion, policy))
    scored = scored.assign(**satisfaction_columns(features, policy))
    scored = select_under_budget(scored, policy, budget)
    extra = ["as_of", "model_version", "selected", "action_cost", "expected_saved_value"]
    extra += [c for c in DECISION_EXTRAS if c in scored]
    extra += [c for c in learned if c.startswith("uplift_")]
    extra.extend(CLV_COLUMNS)
    extra.extend(SATISFACTION_COLUMNS)
    if with_reasons:
        churn = champion.churn
        why = None  # no churn champion: no churn drivers
        if churn is not None and x_churn is not None:
            columns, values = (
                top if top is not None else top_contributions(churn.contribution_matrix, x_churn, k)
            )
            why = ReasonTable.from_top(features, columns, values, churn.features_)
        scored["reasons"] = [""] * len(scored) if why is None else why.joined_strings()
        extra.append("reasons")
    out = scored[[*SCORE_COLUMNS, *extra]].reset_index(drop=True)
    if with_reasons:
        out.attrs["reasons_detail"] = _Detail(why, len(out))  # structured, for the report
    return out


class _Detail(list[list[dict[str, Any]]]):
    """Each row's structured reasons, built when read (the report reads a few hundred of a
    million). pandas shares it instead of deep-copying: every operation on a frame
    deep-copies its ``attrs``."""

    def __init__(self, table: ReasonTable | None, n: int) -> None:
        super().__init__()
        self.table = table
        self.n = n

    def __len__(self) -> int:
        return self.n

    def _row(self, i: int) -> list[dict[str, Any]]:
        return [] if self.table is None else self.table.row(i)  # no table: no churn model

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._row(j) for j in range(len(self))[i]]
        return self._row(range(len(self))[i])

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        return (self._row(i) for i in range(len(self)))

    def __deepcopy__(self, memo: dict[int, object]) -> _Detail:
        return self
