"""Response models and request examples of the service's OpenAPI document (DESIGN §8).

The models describe the JSON the routes answer; they are documentation and a
test oracle (``tests/test_openapi.py`` validates real answers against them).
The routes build their answers as plain dicts and send them as they are, so
typing them costs nothing per request. Every model allows extra fields:
clients must ignore fields they do not know. Nothing here imports BentoML.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from churnclv._policy import RFM_SEGMENTS

__all__ = [
    "LOOKUP_EXAMPLE",
    "PREDICT_EXAMPLE",
    "PREDICT_FEATURES_EXAMPLE",
    "ErrorBody",
    "LookupNotFound",
    "LookupResponse",
    "ModelInfo",
    "PredictResponse",
    "Prediction",
    "Reason",
    "SnapshotRow",
    "ValidationErrorBody",
]

#: ``POST /predict`` body: the README's customer C1 (two transactions, one login event).
PREDICT_EXAMPLE: dict[str, Any] = {
    "customers": [
        {
            "customer_id": "C1",
            "as_of": "2024-01-01",
            "transactions": [
                {"ts": "2023-05-01", "amount": 42.0},
                {"ts": "2023-11-20", "amount": -5},
            ],
            "events": [{"ts": "2023-12-20", "event_type": "login"}],
            "signup_ts": "2023-04-30",
            "attributes": {"plan": "basic", "region": "north"},
        }
    ]
}

#: ``POST /predict_features`` body: C1 of :data:`PREDICT_EXAMPLE` as one feature row
#: (``churnclv features`` columns of a champion trained by ``churnclv demo``; another
#: champion may need other columns, and a 422 names the missing ones).
PREDICT_FEATURES_EXAMPLE: dict[str, Any] = {
    "rows": [
        {
            "customer_id": "C1",
            "as_of": "2024-01-01",
            "recency_days": 245.0,
            "tenure_days": 245.0,
            "frequency": 0,
            "n_purchases": 1,
            "monetary_total": 37.0,
            "monetary_mean": 37.0,
            "returns_count": 1,
            "returns_total": 5.0,
            "tx_count_7d": 0,
            "spend_7d": 0.0,
            "active_days_7d": 0,
            "tx_count_30d": 0,
            "spend_30d": 0.0,
            "active_days_30d": 0,
            "tx_count_90d": 0,
            "spend_90d": -5.0,
            "active_days_90d": 0,
            "tx_count_365d": 1,
            "spend_365d": 37.0,
            "active_days_365d": 1,
            "spend_prior_90d": 0.0,
            "spend_trend_90d": -1.0,
            "gap_mean_days": None,
            "gap_std_days": None,
            "ev_login_30d": 1,
            "ev_login_90d": 1,
            "days_since_login": 12.0,
            "ev_session_30d": 0,
            "ev_session_90d": 0,
            "days_since_session": None,
            "ev_page_view_30d": 0,
            "ev_page_view_90d": 0,
            "days_since_page_view": None,
            "ev_email_open_30d": 0,
            "ev_email_open_90d": 0,
            "days_since_email_open": None,
            "ev_support_ticket_30d": 0,
            "ev_support_ticket_90d": 0,
            "days_since_support_ticket": None,
            "ev_complaint_30d": 0,
            "ev_complaint_90d": 0,
            "days_since_complaint": None,
            "events_30d": 1,
            "events_90d": 1,
            "events_trend_90d": 1.0,
            "event_active_days_30d": 1,
            "event_active_days_90d": 1,
            "days_since_event": 12.0,
            "plan": "basic",
            "region": "north",
            "acquisition_channel": None,
            "days_since_signup": 246.0,
            "overdue_ratio": None,
        }
    ]
}

#: ``POST /lookup`` body: one id of the demo's snapshot and one unknown id.
LOOKUP_EXAMPLE: dict[str, Any] = {"customer_ids": ["C000001", "nobody"]}

_OPEN = ConfigDict(extra="allow")
Tier = Literal["high", "medium", "low"]
Stage = Literal["new", "active", "silent", "churned"]
Segment = Literal[RFM_SEGMENTS]  # type: ignore[valid-type]


class Reason(BaseModel):
    """One of a prediction's top three churn-model contributions, in plain words."""

    model_config = _OPEN
    feature: str = Field(description="Feature column name, e.g. `recency_days`.")
    label: str = Field(description="The feature in words, e.g. 'days since last purchase'.")
    value: float | str | None = Field(description="The customer's value of the feature.")
    direction: Literal["raises", "lowers"] = Field(
        description="`raises` when the feature pushes the churn probability up, else `lowers`."
    )
    contribution: float = Field(
        description="The feature's contribution to the churn model's raw score (log-odds); "
        "> 0 raises the churn probability."
    )
    text: str = Field(
        description="Plain words with the direction, e.g. 'no purchase for 212 days, 3.0x the "
        "usual gap: raises churn risk'."
    )


class _Decisions(BaseModel):
    """The DESIGN §7 columns every answer carries."""

    model_config = _OPEN
    customer_id: str = Field(description="The customer's id, as sent.")
    churn_probability: float | None = Field(
        description="P(no purchase within the champion's churn horizon), 0-1; null without a "
        "churn champion."
    )
    predicted_value: float | None = Field(
        description="Predicted net spend within the champion's value horizon (currency units); "
        "null without a value champion."
    )
    value_tier: Tier | None = Field(
        description="Predicted-value tier against the training population "
        "(default top 20% high, next 30% medium); null without a value champion."
    )
    risk_band: Tier | None = Field(
        description="Churn-probability band (default >= 0.6 high, >= 0.3 medium); null without "
        "a churn champion."
    )
    lifecycle_stage: Stage = Field(
        description="From the customer's own history: new (short tenure), active, silent "
        "(overdue against their usual gap) or churned (beyond the churn horizon)."
    )
    rfm_segment: Segment = Field(
        description="Classic RFM segment, read within the lifecycle stage so the two never "
        "contradict (DESIGN §6)."
    )
    action: str = Field(
        description="The eligible action with the best expected net gain, or `none` when none "
        "pays or the customer is in the holdout."
    )
    expected_net_gain: float | None = Field(
        description="Expected net gain of the action; 0 for `none`. By the policy: retention "
        "P(churn) x predicted value x uplift - cost, growth (1 - P(churn)) x predicted value x "
        "value_lift - cost."
    )
    # marketer fields (churnclv._clv_fields); optional: snapshots scored before them lack them
    predicted_orders: float | None = Field(
        default=None,
        description="Expected orders (purchase days) within the value horizon: BG/NBD's "
        "expectation scaled by the churn model's view of activity.",
    )
    expected_next_order_date: str | None = Field(
        default=None,
        description="as_of + the median wait to the next order of a customer who orders "
        "within the value horizon (ISO date); null when such an order has under 10% "
        "probability.",
    )
    historic_clv: float | None = Field(
        default=None, description="Net spend to date (purchases minus returns)."
    )
    predicted_clv: float | None = Field(
        default=None,
        description="Predicted net spend within the value horizon (= predicted_value).",
    )
    total_clv: float | None = Field(default=None, description="historic_clv + predicted_clv.")
    churn_rank_pct: float | None = Field(
        default=None,
        description="Percentile (0-100) of the churn probability among the champion's reference "
        "customers: 95 means riskier than 95% of them.",
    )
    value_rank_pct: float | None = Field(
        default=None,
        description="Percentile (0-100) of the predicted value among the champion's reference "
        "customers (the population the value tiers cut).",
    )
    value_rank_pct_in_stage: float | None = Field(
        default=None,
        description="Percentile (0-100) of the predicted value among reference customers in the "
        "same lifecycle stage (null when none is in it).",
    )
    satisfaction_score: float | None = Field(
        default=None,
        description="The customer's latest satisfaction survey value before as_of (the "
        "policy's `satisfaction.event_types`, default nps/satisfaction); null without one.",
    )
    satisfaction_class: Literal["high", "medium", "low"] | None = Field(
        default=None,
        description="high / medium / low by the policy's satisfaction thresholds; on a 0-10 "
        "NPS scale promoters (9-10) high, passives (7-8) medium, detractors (0-6) low.",
    )


_POTENTIAL = (
    "Predicted value tier above the tier of the customer's past spend (monetary_total cut "
    "with the same shares against the training population): a potential high-value customer."
)
_HOLDOUT = (
    "In the policy's randomized holdout (share `holdout_share`, drawn by a hash of customer "
    "id and as_of day, the same in batch and service): the action is `none` so campaigns keep "
    "a comparison group."
)
_BASIS = (
    "What chose the action: `policy` (the policy's assumed effects), `learned` (the uplift "
    "champion) or `best_uniform` (the best constant policy, where learned uplift did not beat it)."
)


class Prediction(_Decisions):
    """One customer's answer from ``/predict`` or ``/predict_features``."""

    as_of: str = Field(description="The cutoff the customer was scored at (ISO 8601, UTC).")
    reasons: list[Reason] = Field(
        description="Top three churn-model contributions, largest magnitude first."
    )
    potential_high_value: bool = Field(description=_POTENTIAL)
    holdout: bool = Field(description=_HOLDOUT)
    action_basis: Literal["policy", "learned", "best_uniform"] = Field(description=_BASIS)


class PredictResponse(BaseModel):
    """The answer of ``POST /predict`` and ``POST /predict_features``."""

    model_config = _OPEN
    model_version: str = Field(description="The champion's versions, e.g. `churn:v1+value:v1`.")
    predictions: list[Prediction] = Field(description="One answer per customer, in request order.")


class SnapshotRow(_Decisions):
    """One customer's row of the latest batch-scored snapshot (``scores.parquet``)."""

    as_of: str | None = Field(description="The snapshot's cutoff (ISO 8601).")
    model_version: str | None = Field(default=None, description="The champion that scored it.")
    selected: bool | None = Field(
        default=None,
        description="Whether the customer is in the campaign (action pays, fits budget).",
    )
    action_cost: float | None = Field(default=None, description="Cost of the action.")
    expected_saved_value: float | None = Field(
        default=None,
        description="The action's expected gross value: P(churn) x predicted value x uplift "
        "(retention) or (1 - P(churn)) x predicted value x value_lift (growth).",
    )
    potential_high_value: bool | None = Field(default=None, description=_POTENTIAL)
    holdout: bool | None = Field(default=None, description=_HOLDOUT)
    action_basis: str | None = Field(default=None, description=_BASIS)
    reasons: str | None = Field(
        default=None, description="The top three reasons' texts, joined with '; '."
    )
    previous_value_tier: str | None = Field(
        default=None,
        description="The customer's value tier in the score snapshot before this one "
        "(`<workdir>/snapshots/`); null when the customer is not in an earlier snapshot.",
    )


class LookupResponse(BaseModel):
    """The answer of ``POST /lookup``."""

    model_config = _OPEN
    predictions: list[SnapshotRow] = Field(description="Rows of the ids found, in request order.")
    missing: list[str] = Field(description="The requested ids not in the snapshot.")


class ModelInfo(BaseModel):
    """The answer of ``GET /model``."""

    model_config = _OPEN
    model_version: str = Field(description="The champion's versions, e.g. `churn:v1+value:v1`.")
    tracking_uri: str = Field(description="The MLflow store, without credentials.")
    churn_horizon_days: float = Field(description="Churn horizon the champion was trained with.")
    value_horizon_days: float = Field(description="Value horizon the champion was trained with.")
    training_window: dict[str, Any] = Field(
        description="`as_of`, `data_window` and the validation cutoffs of training."
    )
    models: dict[str, Any] = Field(
        description="Per model (`churn`, `value`): registered name, alias, version, run id, "
        "run params, tags and metrics; `uplift` (with an uplift champion): name, alias, "
        "version and the gate's decision."
    )
    missing_models: list[str] = Field(
        default_factory=list,
        description="Kinds without a champion (`churn`, `value`, `uplift`): their columns are "
        "null.",
    )
    batching: dict[str, Any] | None = Field(
        default=None, description="Micro-batcher counters of this worker."
    )


class ErrorBody(BaseModel):
    """A 401, 413, 415, 422 or 503 answer."""

    error: str = Field(description="One line for the client.")
    field: str | None = Field(
        description="JSON path of the offending field, e.g. "
        "`customers[0].transactions[3].amount`; null when no field is at fault."
    )


class LookupNotFound(ErrorBody):
    """``/lookup``'s 404: none of the ids is in the snapshot."""

    predictions: list[Any] = Field(description="Always empty.")
    missing: list[str] = Field(description="Every requested id.")


class ValidationErrorBody(BaseModel):
    """A 400: malformed JSON or a body the request schema rejects (BentoML's answer)."""

    model_config = _OPEN
    error: str = Field(description="Summary, e.g. '1 validation error for Input'.")
    detail: list[dict[str, Any]] = Field(
        description="pydantic's errors: `type`, `loc` (the path of the field), `msg`."
    )
