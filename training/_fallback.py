"""The BTYD fallback: BG/NBD (+ Gamma-Gamma) predictions behind the model interface.

When the history is too short for a model's label window (no training cutoff
whose window ends before the validation cutoff, or too few rows), training
registers this instead of a LightGBM model: churn = BG/NBD P(no purchase in the
churn horizon), value = BG/NBD expected purchases x Gamma-Gamma expected spend
over the value horizon, from the pair fitted as of the training ``as_of``. It
is a :class:`~churnclv.training._scorable.ScorableModel` like the LightGBM
models, so ``churnclv score`` and the service work unchanged. It persists as
``schema.json`` alone.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from churnclv.training._btyd import BTYD_INPUTS, BTYDModels, apply_btyd
from churnclv.training._inputs import InputSchema
from churnclv.training._scorable import (
    Columns,
    TrainingRecord,
    estimator_record,
    init_params,
    read_schema,
    write_schema,
)

__all__ = ["BTYD_INPUTS", "BTYDModel"]

_OUTPUT = {"churn": "btyd_p_no_purchase_churn", "value": "btyd_clv_value"}


class BTYDModel(InputSchema, TrainingRecord, BaseEstimator):
    """BG/NBD P(no purchase) (``kind="churn"``) or BG/NBD + Gamma-Gamma CLV (``"value"``).

    Parameters
    ----------
    kind : {"churn", "value"}, default "churn"
        What it predicts.
    btyd : dict
        Fitted parameters and horizons (:func:`churnclv.training._hybrid.fit_params`).
    reason : str, default ""
        Why the fallback is used (kept with the model).
    seed : int, default 0
        Seed of the sample :meth:`fit` measures importance on.

    Attributes
    ----------
    btyd_ : dict
        The BTYD parameters it predicts with (``btyd``, unless attached later).
    baseline_ : dict
        The reference customer of :meth:`contributions` (population medians).
    importance_ : dict
        Mean absolute contribution per input over the population it was fitted on.
    features_, categories_, reference_
        Its inputs (:data:`BTYD_INPUTS`, none categorical) and the reference
        population training attached.

    Examples
    --------
    BG/NBD in weeks and Gamma-Gamma with the papers' CDNOW estimates, and three
    customers first seen 40 weeks ago: two with 4 repeat purchases, the last 2
    and 32 weeks ago, and a one-time buyer.

    >>> import pandas as pd
    >>> from churnclv.training import BTYDModel
    >>> btyd = {
    ...     "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    ...     "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.44},
    ...     "time_unit_days": 7.0,
    ...     "churn_horizon_days": 90.0,
    ...     "value_horizon_days": 365.0,
    ... }
    >>> rfm = pd.DataFrame(
    ...     {
    ...         "frequency": [4.0, 4.0, 0.0],
    ...         "recency_days": [14.0, 224.0, 280.0],
    ...         "tenure_days": [280.0, 280.0, 280.0],
    ...         "monetary_mean": [30.0, 30.0, 25.0],
    ...     }
    ... )
    >>> churn = BTYDModel(kind="churn", btyd=btyd, reason="short history").fit(rfm)
    >>> churn.predict(rfm).round(2)
    array([0.44, 0.98, 0.94])
    >>> BTYDModel(kind="value", btyd=btyd).fit(rfm).predict(rfm).round(1)
    array([99.9,  3.5,  8.7])
    """

    def __init__(
        self,
        kind: str = "churn",
        btyd: dict[str, Any] | None = None,
        reason: str = "",
        seed: int = 0,
    ) -> None:
        self.kind = kind
        self.btyd = btyd
        self.reason = reason
        self.seed = seed

    def fit(self, frame: pd.DataFrame, y: np.ndarray | None = None) -> Self:
        """Take the contributions' reference customer from ``frame`` (labels are not used:
        the BTYD parameters were fitted already)."""
        if self.kind not in _OUTPUT:
            raise ValueError(f"kind must be 'churn' or 'value', got {self.kind!r}")
        if self.btyd is None:
            raise ValueError("a BTYD fallback needs the fitted BTYD parameters (btyd)")
        self._reset_record(btyd=self.btyd)
        self._clear_code_caches()
        self.features_ = list(BTYD_INPUTS)
        self.categories_: dict[str, list[str]] = {}
        rows = _inputs(frame[list(BTYD_INPUTS)])
        med = rows.median(skipna=True)
        self.baseline_ = {c: float(med[c]) if np.isfinite(med[c]) else 0.0 for c in BTYD_INPUTS}
        self.baseline_["recency_days"] = min(
            self.baseline_["recency_days"], self.baseline_["tenure_days"]
        )
        sample = rows.sample(min(len(rows), 5000), random_state=self.seed) if len(rows) else rows
        contrib = self.contributions(sample) if len(sample) else None
        self.importance_ = {
            c: float(contrib[c].abs().mean()) if contrib is not None else 0.0 for c in BTYD_INPUTS
        }
        return self

    def with_btyd(self, frame: Columns) -> Columns:
        """``frame`` itself: the BTYD outputs are computed inside :meth:`predict`."""
        return frame

    def _score(self, rows: pd.DataFrame) -> np.ndarray:
        """The one BTYD output this model predicts, over its own horizon only."""
        params = self.btyd_
        if params is None:
            raise ValueError("the BTYD parameters are missing (btyd_ is None)")
        models = BTYDModels.from_params(params)
        horizon = params["churn_horizon_days" if self.kind == "churn" else "value_horizon_days"]
        out = apply_btyd(models, _inputs(rows), horizon_days=horizon)
        column = "btyd_p_no_purchase" if self.kind == "churn" else "btyd_clv"
        return out[column].to_numpy(float)

    def predict_raw(self, frame: Columns | np.ndarray) -> np.ndarray:
        """Same as :meth:`predict`."""
        return self.predict(frame)

    def predict(self, frame: Columns | np.ndarray) -> np.ndarray:
        """P(no purchase in the churn horizon) or expected value over the value horizon."""
        x = self.matrix(frame)
        return self._score(pd.DataFrame(x, columns=self.features_))

    @property
    def best_iteration_(self) -> str:
        """``"none"``: nothing is boosted."""
        return "none"

    def _link(self, p: np.ndarray) -> np.ndarray:
        if self.kind == "churn":
            q = np.clip(p, 1e-9, 1 - 1e-9)
            return np.log(q / (1 - q))
        return np.log(np.clip(p, 1e-9, None))

    def contributions(self, frame: pd.DataFrame, x: np.ndarray | None = None) -> pd.DataFrame:
        """Exact Shapley values of logit P(churn) (or log value) against the baseline customer.

        Each input is switched between the baseline customer's value and the
        row's own over every subset of the four inputs (16 evaluations per row);
        the contributions of a row sum to ``link(prediction) - link(baseline)``.
        """
        raw = self.contribution_matrix(self.matrix(frame) if x is None else x)
        return pd.DataFrame(raw, columns=self.features_, index=frame.index)

    def contribution_matrix(self, x: np.ndarray) -> np.ndarray:
        """:meth:`contributions` of a :meth:`matrix` as an array (columns: ``features_``)."""
        n, k = x.shape
        base = np.array([self.baseline_.get(c, 0.0) for c in self.features_], dtype=float)
        value: dict[tuple[int, ...], np.ndarray] = {}
        for mask in itertools.product((0, 1), repeat=k):
            z = np.where(np.array(mask, dtype=bool), x, base)
            value[mask] = self._link(self._score(pd.DataFrame(z, columns=self.features_)))
        phi = np.zeros((n, k))
        for mask, f in value.items():
            size = sum(mask)
            for i in range(k):
                if mask[i]:
                    continue
                with_i = (*mask[:i], 1, *mask[i + 1 :])
                w = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
                phi[:, i] += w * (value[with_i] - f)
        return phi

    def importance(self) -> pd.Series:
        """Mean absolute contribution per input, highest first."""
        s = pd.Series({c: self.importance_.get(c, 0.0) for c in self.features_}, dtype=float)
        return s.sort_values(ascending=False)

    def save(self, folder: str | Path) -> Path:
        """Write ``schema.json`` (parameters, baseline, reference) into ``folder``."""
        schema = {
            "model": "btyd",
            "kind": self.kind,
            "features": self.features_,
            "params": {"model": "btyd", "output": _OUTPUT[self.kind]},
            **self._record(),
            "reason": self.reason,
            "baseline": self.baseline_,
            "importance": self.importance_,
        }
        record = estimator_record(self)
        if record is not None:
            schema["estimator"] = record
        return write_schema(folder, schema)

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read a model written by :meth:`save`."""
        schema = read_schema(folder)
        params = init_params(schema, cls)
        model = cls(**(_legacy_init(schema) if params is None else params))
        model._clear_code_caches()
        model.features_ = list(BTYD_INPUTS)
        model.categories_ = {}
        model._restore_record(schema)
        model.baseline_ = schema.get("baseline", {})
        model.importance_ = schema.get("importance", {})
        return model


def _legacy_init(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor parameters of a ``schema.json`` with no ``estimator`` record."""
    return {"kind": schema["kind"], "btyd": schema["btyd"], "reason": schema.get("reason", "")}


def _inputs(rows: pd.DataFrame) -> pd.DataFrame:
    """The BTYD inputs made valid: counts and ages >= 0, recency <= tenure."""
    out = pd.DataFrame(index=rows.index)
    tenure = pd.to_numeric(rows["tenure_days"], errors="coerce").astype(float).clip(lower=0)
    out["frequency"] = (
        pd.to_numeric(rows["frequency"], errors="coerce").astype(float).fillna(0).clip(lower=0)
    )
    out["recency_days"] = (
        pd.to_numeric(rows["recency_days"], errors="coerce").astype(float).clip(lower=0)
    )
    out["recency_days"] = np.minimum(out["recency_days"], tenure)
    out["tenure_days"] = tenure
    out["monetary_mean"] = pd.to_numeric(rows["monetary_mean"], errors="coerce").astype(float)
    return out
