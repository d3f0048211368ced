"""Training, evaluation, tracking and the model registry (DESIGN §5)."""

from churnclv.training._btyd import BetaGeoFitter, GammaGammaFitter
from churnclv.training._bundle import (
    bundle_policy,
    champion_from_uri,
    export_bundle,
    load_bundle,
    run_record,
)
from churnclv.training._fallback import BTYDModel
from churnclv.training._metrics import churn_metrics, normalized_gini, value_metrics
from churnclv.training._model import BoosterModel, ChurnModel, ValueModel, load_model
from churnclv.training._registry import (
    ALIAS,
    CHURN_MODEL,
    VALUE_MODEL,
    Champion,
    champion_plots,
    load_champion,
    log_report,
    tracking_uri_for,
)
from churnclv.training._tracking import fail_interrupted_runs
from churnclv.training._train import TrainResult, train
from churnclv.training._two_part import TwoPartValueModel

__all__ = [
    "ALIAS",
    "CHURN_MODEL",
    "VALUE_MODEL",
    "BTYDModel",
    "BetaGeoFitter",
    "BoosterModel",
    "Champion",
    "ChurnModel",
    "GammaGammaFitter",
    "TrainResult",
    "TwoPartValueModel",
    "ValueModel",
    "bundle_policy",
    "champion_from_uri",
    "champion_plots",
    "churn_metrics",
    "export_bundle",
    "fail_interrupted_runs",
    "load_bundle",
    "load_champion",
    "load_model",
    "log_report",
    "normalized_gini",
    "run_record",
    "tracking_uri_for",
    "train",
    "value_metrics",
]
