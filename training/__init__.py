"""Training, evaluation, tracking and the model registry (DESIGN §5)."""

from churnclv.training._metrics import churn_metrics, normalized_gini, value_metrics
from churnclv.training._model import BoosterModel, ChurnModel, ValueModel
from churnclv.training._registry import (
    ALIAS,
    CHURN_MODEL,
    VALUE_MODEL,
    Champion,
    load_champion,
    tracking_uri_for,
)
from churnclv.training._train import TrainResult, train

__all__ = [
    "ALIAS",
    "CHURN_MODEL",
    "VALUE_MODEL",
    "BoosterModel",
    "Champion",
    "ChurnModel",
    "TrainResult",
    "ValueModel",
    "churn_metrics",
    "load_champion",
    "normalized_gini",
    "tracking_uri_for",
    "train",
    "value_metrics",
]
