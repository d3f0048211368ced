"""churnclv: customer churn and lifetime-value prediction.

Point-in-time RFM and engagement features (DuckDB or Spark), LightGBM churn and value
models on top of BG/NBD and Gamma-Gamma, tracked in MLflow, policy-driven decisions
(value tiers, risk bands, lifecycle stages, RFM segments, retention actions) and a
BentoML service.

Every public name is importable from here; the modules behind them are private and may
move. Names are loaded on first use, so ``import churnclv`` stays cheap.

Examples
--------
>>> import churnclv
>>> sorted(churnclv.__all__)[:3]
['BetaGeoFitter', 'CaptionedFigure', 'Champion']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from churnclv._errors import ChurnclvError, InputError
from churnclv._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from churnclv._as_of import check_as_of
    from churnclv._campaign_eval import evaluate_campaign
    from churnclv._campaigns import load_campaigns
    from churnclv._generate import SyntheticData, generate
    from churnclv._io import ColumnMap, InputTables, load_inputs
    from churnclv._io_scan import InputScans, Scan, scan_inputs
    from churnclv._migration import migration_matrix, migration_summary
    from churnclv._narrative import champion_vs_baselines_sentence, value_at_risk_sentence
    from churnclv._notebook import CaptionedFigure, captioned_figure, readable_table
    from churnclv._reasons import feature_label
    from churnclv.decisions import Policy, decide, load_policy, rfm_segment
    from churnclv.features import build_features, build_labels, rfm_summary
    from churnclv.serving import CustomerIn, OnlineScorer, score, validate_customers
    from churnclv.training import (
        BetaGeoFitter,
        Champion,
        GammaGammaFitter,
        ModifiedBetaGeoFitter,
        TrainResult,
        champion_from_uri,
        export_bundle,
        load_bundle,
        load_champion,
        train,
    )
    from churnclv.training._hybrid import stack_btyd
    from churnclv.training._train_uplift import UpliftTrainResult, train_uplift
    from churnclv.training._uplift import UpliftModel

__version__ = "0.1.0"

# public name -> module that owns it (imported on first access)
_OWNERS: dict[str, str] = {
    "load_inputs": "churnclv._io",
    "ColumnMap": "churnclv._io",
    "InputTables": "churnclv._io",
    "check_as_of": "churnclv._as_of",
    "scan_inputs": "churnclv._io_scan",
    "InputScans": "churnclv._io_scan",
    "Scan": "churnclv._io_scan",
    "build_features": "churnclv.features",
    "build_labels": "churnclv.features",
    "rfm_summary": "churnclv.features",
    "BetaGeoFitter": "churnclv.training",
    "GammaGammaFitter": "churnclv.training",
    "ModifiedBetaGeoFitter": "churnclv.training",
    "train": "churnclv.training",
    "TrainResult": "churnclv.training",
    "load_champion": "churnclv.training",
    "Champion": "churnclv.training",
    "export_bundle": "churnclv.training",
    "load_bundle": "churnclv.training",
    "champion_from_uri": "churnclv.training",
    "score": "churnclv.serving",
    "OnlineScorer": "churnclv.serving",
    "CustomerIn": "churnclv.serving",
    "validate_customers": "churnclv.serving",
    "stack_btyd": "churnclv.training._hybrid",
    "decide": "churnclv.decisions",
    "load_policy": "churnclv.decisions",
    "Policy": "churnclv.decisions",
    "rfm_segment": "churnclv.decisions",
    "generate": "churnclv._generate",
    "load_campaigns": "churnclv._campaigns",
    "evaluate_campaign": "churnclv._campaign_eval",
    "SyntheticData": "churnclv._generate",
    "train_uplift": "churnclv.training._train_uplift",
    "UpliftTrainResult": "churnclv.training._train_uplift",
    "UpliftModel": "churnclv.training._uplift",
    "migration_matrix": "churnclv._migration",
    "migration_summary": "churnclv._migration",
    "value_at_risk_sentence": "churnclv._narrative",
    "champion_vs_baselines_sentence": "churnclv._narrative",
    "CaptionedFigure": "churnclv._notebook",
    "captioned_figure": "churnclv._notebook",
    "readable_table": "churnclv._notebook",
    "feature_label": "churnclv._reasons",
}

__all__ = [
    "BetaGeoFitter",
    "CaptionedFigure",
    "Champion",
    "ChurnclvError",
    "ColumnMap",
    "CustomerIn",
    "GammaGammaFitter",
    "InputError",
    "InputScans",
    "InputTables",
    "ModifiedBetaGeoFitter",
    "OnlineScorer",
    "Policy",
    "Scan",
    "SyntheticData",
    "TrainResult",
    "UpliftModel",
    "UpliftTrainResult",
    "__version__",
    "build_features",
    "build_labels",
    "captioned_figure",
    "champion_from_uri",
    "champion_vs_baselines_sentence",
    "check_as_of",
    "decide",
    "evaluate_campaign",
    "export_bundle",
    "feature_label",
    "generate",
    "load_bundle",
    "load_campaigns",
    "load_champion",
    "load_inputs",
    "load_policy",
    "migration_matrix",
    "migration_summary",
    "readable_table",
    "rfm_segment",
    "rfm_summary",
    "scan_inputs",
    "score",
    "stack_btyd",
    "train",
    "train_uplift",
    "validate_customers",
    "value_at_risk_sentence",
]

__getattr__, __dir__ = lazy_exports(__name__, _OWNERS, globals(), __all__)
