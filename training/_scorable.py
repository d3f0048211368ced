"""What churnclv needs of a model it scores and trains, and how such models are saved.

:class:`ScorableModel` is the interface scoring and the service use: the
LightGBM models (:class:`~churnclv.training.BoosterModel` and its kinds,
:class:`~churnclv.training.TwoPartValueModel`) and the BTYD fallback
(:class:`~churnclv.training.BTYDModel`) all satisfy it structurally, none
inherits it. :class:`TrainableModel` adds what training calls. Every model
saves into a folder holding ``schema.json`` (plus its boosters' text files);
:func:`load_model` reads any of them back.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, Self, TypeAlias, TypedDict, Unpack, runtime_checkable

import numpy as np
import pandas as pd

__all__ = [
    "Columns",
    "Record",
    "ScorableModel",
    "TrainableModel",
    "TrainingRecord",
    "estimator_record",
    "init_params",
    "load_model",
    "read_schema",
    "write_schema",
]

#: A feature frame, or a mapping of column name to array (the service's small batches).
Columns: TypeAlias = pd.DataFrame | Mapping[str, Any]


@runtime_checkable
class ScorableModel(Protocol):
    """A fitted model churnclv can score, explain, save and load.

    Attributes
    ----------
    kind : {"churn", "value"}
        What it predicts: P(churn) or expected future value.
    features_ : list of str
        Its input columns, in matrix order.
    categories_ : dict of str to list of str
        The training categories of its categorical inputs.
    reference_ : dict
        The reference population decisions rank against (empty when none).
    btyd_ : dict or None
        The BTYD parameters its BTYD inputs are computed with at scoring time.
    best_iteration_ : str
        The boosting rounds kept (``"none"`` for a model without boosting).

    Examples
    --------
    Any fitted model of churnclv is one; an unfitted estimator is not yet.

    >>> import numpy as np, pandas as pd
    >>> from churnclv.training import ScorableModel, ValueModel
    >>> frame = pd.DataFrame({"customer_id": range(200), "tenure_days": np.arange(200.0)})
    >>> model = ValueModel(num_boost_round=20)
    >>> isinstance(model, ScorableModel)
    False
    >>> isinstance(model.fit(frame, np.arange(200.0) % 7), ScorableModel)
    True
    """

    @property
    def kind(self) -> str: ...
    @property
    def features_(self) -> list[str]: ...
    @property
    def categories_(self) -> dict[str, list[str]]: ...
    @property
    def reference_(self) -> dict[str, list[float]]: ...
    @property
    def btyd_(self) -> dict[str, Any] | None: ...
    @property
    def best_iteration_(self) -> str: ...

    def with_btyd(self, frame: Columns) -> Columns:
        """``frame`` plus the BTYD feature columns the model needs and the frame lacks."""
        ...

    def matrix(self, frame: Columns | np.ndarray) -> np.ndarray:
        """The model's float input matrix of ``frame`` (an ndarray passes through)."""
        ...

    def predict_raw(self, frame: Columns | np.ndarray) -> np.ndarray:
        """The model's output before any calibration."""
        ...

    def predict(self, frame: Columns | np.ndarray) -> np.ndarray:
        """P(churn) or expected future value of each row."""
        ...

    def contributions(self, frame: pd.DataFrame, x: np.ndarray | None = None) -> pd.DataFrame:
        """Per-feature contributions of each row (``x``: its :meth:`matrix`, if at hand)."""
        ...

    def contribution_matrix(self, x: np.ndarray) -> np.ndarray:
        """:meth:`contributions` of a :meth:`matrix` as an array."""
        ...

    def importance(self) -> pd.Series:
        """Importance per feature, highest first."""
        ...

    def save(self, folder: str | Path) -> Path:
        """Write the model into ``folder`` (read back by :func:`load_model`)."""
        ...


class Record(TypedDict, total=False):
    """What :meth:`TrainingRecord.attach` takes (see :class:`TrainingRecord`)."""

    btyd: dict[str, Any] | None
    reference: dict[str, list[float]]
    label_end: str | None
    evaluation: dict[str, Any] | None
    total_scale: float
    event_vocabulary: dict[str, list[str]] | None


class TrainableModel(ScorableModel, Protocol):
    """A :class:`ScorableModel` training can fit and annotate."""

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> Self:
        """Fit on a feature frame and its labels."""
        ...

    def attach(self, **record: Unpack[Record]) -> Self:
        """Record what training learned about the fitted model outside ``fit``."""
        ...


class TrainingRecord:
    """Mixin: what training records with a fitted model besides what ``fit`` learns.

    Attributes
    ----------
    btyd_ : dict or None
        The BTYD pair (:meth:`~churnclv.training._btyd.BTYDModels.to_params`)
        fitted as of the training ``as_of``, which computes the model's BTYD
        inputs at scoring time.
    reference_ : dict
        The reference population decisions rank against.
    label_end_ : str or None
        End of the latest label window the model was fitted on (ISO date).
    evaluation_ : dict or None
        Its out-of-time evaluation (cutoff, rows, metric, value) before any refit.
    total_scale_ : float
        Multiplier of a value model's predictions that calibrates their total,
        learned out of time (:mod:`churnclv.training._total_scale`); 1.0 for
        churn models and when none was learned.
    event_vocabulary_ : dict or None
        The event types its features were computed with (``event_types``,
        ``valued_event_types``), chosen from the training window; scoring
        computes the same columns. None: the default types, no values.
    """

    btyd_: dict[str, Any] | None
    reference_: dict[str, list[float]]
    label_end_: str | None
    evaluation_: dict[str, Any] | None
    total_scale_: float
    event_vocabulary_: dict[str, list[str]] | None

    def _reset_record(self, btyd: dict[str, Any] | None = None) -> None:
        """Start the record afresh (called by ``fit``)."""
        self.btyd_ = btyd
        self.reference_ = {}
        self.label_end_ = None
        self.evaluation_ = None
        self.total_scale_ = 1.0
        self.event_vocabulary_ = None

    def scaled(self, predicted: np.ndarray) -> np.ndarray:
        """``predicted`` times :attr:`total_scale_` (unchanged when it is 1)."""
        scale = float(getattr(self, "total_scale_", 1.0))
        return predicted * scale if scale != 1.0 else predicted

    def attach(self, **record: Unpack[Record]) -> Self:
        """Record what training learned about the fitted model outside ``fit``.

        Keywords ``btyd``, ``reference``, ``label_end``, ``evaluation``,
        ``total_scale`` and ``event_vocabulary`` set the attribute of that name
        plus ``_``; one left out keeps its value, and ``fit`` starts the record
        afresh. Returns ``self``.

        Examples
        --------
        >>> from churnclv.training import ValueModel
        >>> ValueModel().attach(label_end="2024-03-31").label_end_
        '2024-03-31'
        """
        unknown = set(record) - set(Record.__annotations__)
        if unknown:
            raise TypeError(f"attach() got unexpected keywords: {sorted(unknown)}")
        for name, value in record.items():
            setattr(self, f"{name}_", value)
        return self

    def _record(self) -> dict[str, Any]:
        """The record as ``schema.json`` fields."""
        return {
            "reference": getattr(self, "reference_", {}),
            "btyd": getattr(self, "btyd_", None),
            "label_end": getattr(self, "label_end_", None),
            "evaluation": getattr(self, "evaluation_", None),
            "total_scale": float(getattr(self, "total_scale_", 1.0)),
            "event_vocabulary": getattr(self, "event_vocabulary_", None),
        }

    def _restore_record(self, schema: Mapping[str, Any]) -> None:
        """Restore what :meth:`_record` wrote."""
        self.reference_ = schema.get("reference", {})
        self.btyd_ = schema.get("btyd")
        self.label_end_ = schema.get("label_end")
        self.evaluation_ = schema.get("evaluation")
        self.total_scale_ = float(schema.get("total_scale", 1.0))
        self.event_vocabulary_ = schema.get("event_vocabulary")


def write_schema(folder: str | Path, schema: dict[str, Any]) -> Path:
    """Create ``folder`` and write ``schema`` into its ``schema.json``; returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "schema.json").write_text(json.dumps(schema, indent=2))
    return out


def read_schema(folder: str | Path) -> dict[str, Any]:
    """The ``schema.json`` of a saved model."""
    schema: dict[str, Any] = json.loads((Path(folder) / "schema.json").read_text())
    return schema


# estimator class name -> module; the "model" entry of schema.json -> class of a schema
# without an "estimator" record
_CLASSES = {
    "BoosterModel": "churnclv.training._model",
    "ChurnModel": "churnclv.training._model",
    "ValueModel": "churnclv.training._model",
    "TwoPartValueModel": "churnclv.training._two_part",
    "BTYDModel": "churnclv.training._fallback",
}
_BY_MODEL = {"booster": "BoosterModel", "two_part": "TwoPartValueModel", "btyd": "BTYDModel"}


def estimator_record(model: Any) -> dict[str, Any] | None:
    """The class and constructor parameters ``schema.json`` records of ``model``, or None
    for a class :func:`load_model` does not know (it loads as its ``model`` base)."""
    name = type(model).__name__
    if _CLASSES.get(name) != type(model).__module__:
        return None
    return {"class": name, "params": model.get_params(deep=False)}


def init_params(schema: Mapping[str, Any], cls: type) -> dict[str, Any] | None:
    """The constructor parameters ``schema.json`` recorded for ``cls`` (None if none)."""
    record = schema.get("estimator")
    if not record or record.get("class") != cls.__name__:
        return None
    params: dict[str, Any] = record["params"]
    return params


def load_model(folder: str | Path) -> ScorableModel:
    """Read any model written by a ``save`` method.

    The ``estimator`` entry of ``schema.json`` names the class; a schema
    without it is read by the class its ``model`` entry names (``booster``:
    :class:`~churnclv.training.BoosterModel`, ``two_part``, ``btyd``).

    Returns
    -------
    ScorableModel

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np, pandas as pd
    >>> from churnclv.training import ValueModel, load_model
    >>> frame = pd.DataFrame({"customer_id": range(200), "tenure_days": np.arange(200.0)})
    >>> model = ValueModel(num_boost_round=20).fit(frame, np.arange(200.0) % 7)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     loaded = load_model(model.save(tmp))
    >>> type(loaded).__name__, bool((loaded.predict(frame) == model.predict(frame)).all())
    ('ValueModel', True)
    """
    schema = read_schema(folder)
    record = schema.get("estimator") or {}
    name = record.get("class")
    if name not in _CLASSES:
        kind = schema.get("model", "booster")
        if kind not in _BY_MODEL:
            raise ValueError(f"unknown model class {kind!r} in {folder}/schema.json")
        name = _BY_MODEL[kind]
    cls = getattr(importlib.import_module(_CLASSES[name]), name)
    model: ScorableModel = cls.load(folder)
    return model
