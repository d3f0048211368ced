"""Training, evaluation, tracking and the model registry (DESIGN §5).

The estimators follow scikit-learn's contract (``get_params``, ``set_params``,
:func:`sklearn.base.clone`): :class:`BetaGeoFitter` and
:class:`GammaGammaFitter` (BTYD), :class:`ChurnModel`, :class:`ValueModel` and
:class:`TwoPartValueModel` (LightGBM), :class:`BTYDModel` (the fallback when
history is too short). :class:`ScorableModel` is what scoring needs of any of
them. Names are loaded on first use, so importing this package stays cheap.

Examples
--------
>>> from sklearn.base import clone
>>> from churnclv.training import ChurnModel
>>> clone(ChurnModel(seed=3)).seed
3
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from churnclv._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from churnclv.training._admin import (
        VersionRow,
        champion_versions,
        list_versions,
        promote_version,
        rollback_champion,
    )
    from churnclv.training._bgnbd import BetaGeoFitter
    from churnclv.training._bundle import (
        bundle_policy,
        champion_from_uri,
        export_bundle,
        load_bundle,
        run_record,
    )
    from churnclv.training._fallback import BTYDModel
    from churnclv.training._gamma_gamma import GammaGammaFitter
    from churnclv.training._mbgnbd import ModifiedBetaGeoFitter
    from churnclv.training._metrics import churn_metrics, normalized_gini, value_metrics
    from churnclv.training._model import BoosterModel, ChurnModel, ValueModel
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
    from churnclv.training._scorable import ScorableModel, TrainableModel, load_model
    from churnclv.training._tracking import fail_interrupted_runs
    from churnclv.training._train import TrainResult, train
    from churnclv.training._two_part import TwoPartValueModel

# public name -> module that owns it (imported on first access)
_OWNERS: dict[str, str] = {
    "VersionRow": "churnclv.training._admin",
    "champion_versions": "churnclv.training._admin",
    "list_versions": "churnclv.training._admin",
    "promote_version": "churnclv.training._admin",
    "rollback_champion": "churnclv.training._admin",
    "BetaGeoFitter": "churnclv.training._bgnbd",
    "GammaGammaFitter": "churnclv.training._gamma_gamma",
    "ModifiedBetaGeoFitter": "churnclv.training._mbgnbd",
    "BTYDModel": "churnclv.training._fallback",
    "churn_metrics": "churnclv.training._metrics",
    "normalized_gini": "churnclv.training._metrics",
    "value_metrics": "churnclv.training._metrics",
    "BoosterModel": "churnclv.training._model",
    "ChurnModel": "churnclv.training._model",
    "ValueModel": "churnclv.training._model",
    "TwoPartValueModel": "churnclv.training._two_part",
    "ScorableModel": "churnclv.training._scorable",
    "TrainableModel": "churnclv.training._scorable",
    "load_model": "churnclv.training._scorable",
    "ALIAS": "churnclv.training._registry",
    "CHURN_MODEL": "churnclv.training._registry",
    "VALUE_MODEL": "churnclv.training._registry",
    "Champion": "churnclv.training._registry",
    "champion_plots": "churnclv.training._registry",
    "load_champion": "churnclv.training._registry",
    "log_report": "churnclv.training._registry",
    "tracking_uri_for": "churnclv.training._registry",
    "TrainResult": "churnclv.training._train",
    "fail_interrupted_runs": "churnclv.training._tracking",
    "bundle_policy": "churnclv.training._bundle",
    "champion_from_uri": "churnclv.training._bundle",
    "export_bundle": "churnclv.training._bundle",
    "load_bundle": "churnclv.training._bundle",
    "run_record": "churnclv.training._bundle",
    "train": "churnclv.training._train",
}

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
    "ModifiedBetaGeoFitter",
    "ScorableModel",
    "TrainResult",
    "TrainableModel",
    "TwoPartValueModel",
    "ValueModel",
    "VersionRow",
    "bundle_policy",
    "champion_from_uri",
    "champion_plots",
    "champion_versions",
    "churn_metrics",
    "export_bundle",
    "fail_interrupted_runs",
    "list_versions",
    "load_bundle",
    "load_champion",
    "load_model",
    "log_report",
    "normalized_gini",
    "promote_version",
    "rollback_champion",
    "run_record",
    "tracking_uri_for",
    "train",
    "value_metrics",
]

__getattr__, __dir__ = lazy_exports(__name__, _OWNERS, globals(), __all__)
