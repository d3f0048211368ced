"""The multi-action uplift estimator: incremental net spend of each action against control.

:class:`UpliftModel` learns, from a log of sends (feature rows, the arm each
customer got, the net spend in the response window), what each action adds to
a customer's net spend compared with the control arm. Two learners:

- ``"dr"`` (default): the doubly robust DR-learner. Outcome models per arm and
  a propensity model are cross-fitted (``n_folds``); each action's pseudo
  outcome ``mu_a - mu_c + [T=a](Y - mu_a)/e_a - [T=c](Y - mu_c)/e_c`` is then
  regressed on the features. It targets the effect itself, so noise in the
  arms' outcome levels does not turn into invented heterogeneity.
- ``"t"``: the T-learner, one outcome model per arm; the uplift is the
  difference of two predictions.

Net spend is heavy tailed: a few large orders dominate the variance of the
pseudo outcomes. Two defences, both fixed defaults rather than tuned per data set:

- outcomes are learned in units of each customer's own basket (``scale``,
  default the ``monetary_mean`` feature: mean order value before the send) and
  scaled back at prediction. What a send adds is extra orders (or changed
  orders) of about the customer's usual size, so in these units big and small
  spenders speak with a comparable voice and the noise of the big ones no
  longer drowns the effects on the others;
- scaled outcomes are winsorised at their ``outcome_quantile`` for fitting
  (the cap is ``outcome_cap_``); policy values are estimated on the raw
  outcomes elsewhere.

Propensities are estimated from the log with a multinomial LightGBM classifier
(for a randomized log it recovers the arm shares) unless given, and clipped to
``[clip, 1 - clip]``; ``propensity_clipped_`` counts the clipped rows. The
outcome models fitted on all rows (``predict_outcomes``) and the propensity
model (``predict_propensity``) are kept: the policy-value estimators need them.

The model persists as LightGBM text files plus ``schema.json`` (nothing
pickled), and :class:`PyfuncUplift` wraps it for the MLflow registry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from sklearn.base import BaseEstimator

from churnclv.training._inputs import InputSchema
from churnclv.training._scorable import Columns

__all__ = ["LEARNERS", "PyfuncUplift", "UpliftModel"]

LEARNERS = ("dr", "t")
_MIN_ARM_ROWS = 20
_OUTCOME_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 5.0,
}
# The effect regression reads noisy pseudo outcomes: stumps of depth two, big leaves and
# a strong L2 penalty shrink each action's effect towards its mean unless many sends agree.
_EFFECT_PARAMS: dict[str, Any] = {
    **_OUTCOME_PARAMS,
    "num_leaves": 4,
    "min_data_in_leaf": 500,
    "lambda_l2": 50.0,
}
_PROPENSITY_PARAMS: dict[str, Any] = {
    "objective": "multiclass",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_data_in_leaf": 200,
    "lambda_l2": 10.0,
}


class UpliftModel(InputSchema, BaseEstimator):
    """Multi-action uplift on LightGBM: expected incremental outcome of each action vs control.

    Parameters
    ----------
    actions : sequence of str, optional
        The actions to estimate, in output order; default: every treatment in
        the log other than ``control``, sorted.
    control : str, default "control"
        The untreated arm.
    learner : {"dr", "t"}, default "dr"
        DR-learner with cross-fitting, or T-learner (see the module).
    n_folds : int, default 2
        Cross-fitting folds of the DR-learner (split by customer).
    clip : float, default 0.02
        Propensities are clipped to ``[clip, 1 - clip]``.
    outcome_quantile : float or None, default 0.99
        Outcomes above this quantile of the training outcomes are capped at it
        for fitting (``None``: no cap). A fixed default, not tuned per data set.
    scale : str or None, default "monetary_mean"
        Feature whose value is each row's unit of outcome (see the module);
        values below the 5th percentile of its positive training values (or
        missing) are raised to it. Ignored when the frame lacks the column;
        ``None``: outcomes in currency.
    num_boost_round : int, default 300
        Most boosting rounds of each booster (early stopping on 10% of customers).
    seed : int, default 0
        Seed of the boosters and the folds.
    n_jobs : int, default 1
        LightGBM threads per booster (0: LightGBM's default, all cores). Many
        small boosters run faster on one thread each.

    Attributes
    ----------
    actions_ : list of str
        The estimated actions (columns of :meth:`predict_uplift`).
    arms_ : list of str
        ``control`` then ``actions_`` (columns of :meth:`predict_outcomes`).
    features_, categories_ : list, dict
        Input columns and training categories.
    outcome_cap_ : float
        The cap applied to the training outcomes, in units of ``scale``
        (``inf`` without one).
    scale_feature_ : str or None
        The feature outcomes are scaled by (``None``: none).
    scale_floor_ : float
        The smallest unit of outcome (1.0 without a scale feature).
    propensity_clipped_ : int
        Rows whose observed arm's propensity was clipped.
    arm_counts_ : dict of str to int
        Sends per arm in the training log.
    decision_ : dict
        What the gate decided for this model (set by training, see
        :func:`churnclv.train_uplift`): ``basis`` (``learned`` | ``best_uniform``)
        and ``uniform_action``; empty until then.
    event_vocabulary_ : dict or None
        The event types (``event_types``, ``valued_event_types``) the features
        were computed with (set by training; ``None``: the default types).
    reference_ : dict of str to list of float
        The population scoring ranks RFM scores against when no value champion
        gives one (set by training from the sends' features, see
        :func:`churnclv.decisions.reference_distribution`); empty until then.

    Examples
    --------
    A coupon that pays only for lapsed customers, and an email that does nothing:

    >>> import numpy as np, pandas as pd
    >>> from churnclv import UpliftModel
    >>> rng = np.random.default_rng(0)
    >>> n = 3000
    >>> frame = pd.DataFrame({"customer_id": [f"C{i}" for i in range(n)],
    ...                       "recency_days": rng.uniform(0, 200, n)})
    >>> arm = rng.choice(["control", "coupon", "email"], n)
    >>> effect = np.where(frame["recency_days"] > 100, 20.0, -5.0)
    >>> spend = rng.normal(30, 5, n) + np.where(arm == "coupon", effect, 0.0)
    >>> model = UpliftModel(learner="t", seed=0).fit(frame, arm, spend)
    >>> model.actions_
    ['coupon', 'email']
    >>> up = model.predict_uplift(pd.DataFrame({"recency_days": [20.0, 180.0]}))
    >>> up.shape, bool(up[0, 0] < 0 < up[1, 0])
    ((2, 2), True)
    """

    def __init__(
        self,
        actions: Sequence[str] | None = None,
        control: str = "control",
        learner: str = "dr",
        n_folds: int = 2,
        clip: float = 0.02,
        outcome_quantile: float | None = 0.99,
        scale: str | None = "monetary_mean",
        num_boost_round: int = 300,
        seed: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.actions = actions
        self.control = control
        self.learner = learner
        self.n_folds = n_folds
        self.clip = clip
        self.outcome_quantile = outcome_quantile
        self.scale = scale
        self.num_boost_round = num_boost_round
        self.seed = seed
        self.n_jobs = n_jobs

    # ---- fitting ----
    def _check(self, frame: pd.DataFrame, treatment: np.ndarray, outcome: np.ndarray) -> None:
        if self.learner not in LEARNERS:
            raise ValueError(f"learner must be one of {LEARNERS}, got {self.learner!r}")
        if not 0 <= self.clip < 0.5:
            raise ValueError(f"clip must be in [0, 0.5), got {self.clip}")
        q = self.outcome_quantile
        if q is not None and not 0.5 <= q <= 1:
            raise ValueError(f"outcome_quantile must be in [0.5, 1] or None, got {q}")
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {self.n_folds}")
        if not (len(frame) == len(treatment) == len(outcome)):
            raise ValueError("frame, treatment and outcome differ in length")
        if not np.isfinite(outcome).all():
            raise ValueError("outcome has missing or infinite values")
        if self.control not in set(treatment):
            raise ValueError(
                f"no {self.control!r} rows: effects cannot be estimated without a comparison group"
            )

    def fit(
        self,
        frame: pd.DataFrame,
        treatment: Sequence[str] | np.ndarray,
        outcome: Sequence[float] | np.ndarray,
        propensity: np.ndarray | None = None,
    ) -> Self:
        """Fit on a log of sends.

        Parameters
        ----------
        frame : pandas.DataFrame
            Feature rows of the sends (as of each send); ``customer_id`` is a key
            (folds and early stopping split by it), not an input.
        treatment : array-like of str
            The arm each row got (``control`` or an action).
        outcome : array-like of float
            Net spend in the response window.
        propensity : ndarray of shape (n, 1 + n_actions), optional
            Known arm probabilities (columns ``arms_``); estimated when omitted.

        Returns
        -------
        UpliftModel
            ``self``.
        """
        t = np.asarray(treatment, dtype=object).astype(str)
        y = np.asarray(outcome, dtype=float)
        self._check(frame, t, y)
        seen = sorted(str(a) for a in set(t) - {self.control})
        self.actions_ = list(self.actions) if self.actions is not None else seen
        unknown = sorted(set(seen) - set(self.actions_))
        if unknown:
            raise ValueError(f"treatments not among the actions: {', '.join(unknown)}")
        self.arms_ = [self.control, *self.actions_]
        self.arm_counts_ = {a: int((t == a).sum()) for a in self.arms_}
        thin = [a for a, n in self.arm_counts_.items() if n < _MIN_ARM_ROWS]
        if thin:
            raise ValueError(
                f"too few sends (< {_MIN_ARM_ROWS}) in arm(s) {', '.join(thin)} to estimate effects"
            )
        self._set_schema(frame)
        x = self.matrix(frame)
        self._fit_scale(x)
        y = y / self._unit(x)
        q = self.outcome_quantile
        self.outcome_cap_ = float(np.quantile(y, q)) if q is not None else float("inf")
        y = np.minimum(y, self.outcome_cap_)
        arm = np.array([self.arms_.index(a) for a in t])
        ids = frame["customer_id"].astype(str)
        if propensity is None:
            self.propensity_booster_: lgb.Booster | None = self._fit_propensity(x, arm, ids)
            e = self.predict_propensity(x)
        else:
            self.propensity_booster_ = None
            e = self._clip(np.asarray(propensity, dtype=float))
            self.arm_shares_ = e.mean(axis=0)
        raw = e[np.arange(len(arm)), arm]
        self.propensity_clipped_ = int(((raw <= self.clip) | (raw >= 1 - self.clip)).sum())
        self.outcome_boosters_ = [
            self._booster(_OUTCOME_PARAMS, x[arm == k], y[arm == k], ids[arm == k])
            for k in range(len(self.arms_))
        ]
        self.effect_boosters_: list[lgb.Booster] = []
        if self.learner == "dr":
            pseudo = self._pseudo_outcomes(x, arm, y, ids, e if propensity is not None else None)
            self.effect_boosters_ = [
                self._booster(_EFFECT_PARAMS, x, pseudo[:, j], ids)
                for j in range(len(self.actions_))
            ]
        self.decision_: dict[str, Any] = {}
        self.reference_: dict[str, list[float]] = {}
        self.event_vocabulary_: dict[str, list[str]] | None = None
        return self

    def _clip(self, e: np.ndarray) -> np.ndarray:
        return np.clip(e, self.clip, 1 - self.clip)

    def _fit_scale(self, x: np.ndarray) -> None:
        """Learn the unit of outcome: the ``scale`` feature, floored (see the class)."""
        name = self.scale
        self.scale_feature_ = name if name is not None and name in self.features_ else None
        self.scale_floor_ = 1.0
        if self.scale_feature_ is not None:
            if self.scale_feature_ in self.categories_:
                raise ValueError(f"scale feature {self.scale_feature_!r} is not numeric")
            v = x[:, self.features_.index(self.scale_feature_)]
            positive = v[np.isfinite(v) & (v > 0)]
            if positive.size:
                self.scale_floor_ = float(np.quantile(positive, 0.05))
            else:
                self.scale_feature_ = None

    def _unit(self, x: np.ndarray) -> np.ndarray:
        """Each row's unit of outcome (ones without a scale feature)."""
        if self.scale_feature_ is None:
            return np.ones(len(x))
        v = x[:, self.features_.index(self.scale_feature_)]
        return np.where(np.isfinite(v) & (v > self.scale_floor_), v, self.scale_floor_)

    def _fit_propensity(self, x: np.ndarray, arm: np.ndarray, ids: pd.Series) -> lgb.Booster:
        self.arm_shares_ = np.bincount(arm, minlength=len(self.arms_)) / len(arm)
        params = {**_PROPENSITY_PARAMS, "num_class": len(self.arms_)}
        return self._booster(params, x, arm.astype(float), ids)

    def _pseudo_outcomes(
        self,
        x: np.ndarray,
        arm: np.ndarray,
        y: np.ndarray,
        ids: pd.Series,
        known: np.ndarray | None,
    ) -> np.ndarray:
        """Cross-fitted DR pseudo outcomes, one column per action."""
        k = len(self.arms_)
        h = pd.util.hash_pandas_object(ids, index=False).to_numpy()
        fold = ((h // 7) + np.uint64(self.seed)) % np.uint64(self.n_folds)
        mu = np.zeros((len(y), k))
        e = np.zeros((len(y), k))
        for f in range(self.n_folds):
            test = fold == f
            train = ~test
            for a in range(k):
                rows = train & (arm == a)
                booster = self._booster(_OUTCOME_PARAMS, x[rows], y[rows], ids[rows])
                mu[test, a] = booster.predict(x[test])
            if known is None:
                params = {**_PROPENSITY_PARAMS, "num_class": k}
                booster = self._booster(params, x[train], arm[train].astype(float), ids[train])
                e[test] = self._clip(np.asarray(booster.predict(x[test])).reshape(-1, k))
            else:
                e[test] = known[test]
        own = np.arange(len(y))
        resid = (y - mu[own, arm]) / e[own, arm]
        control = np.where(arm == 0, resid, 0.0)
        return np.column_stack(
            [mu[:, a] - mu[:, 0] + np.where(arm == a, resid, 0.0) - control for a in range(1, k)]
        )

    def _booster(
        self, params: dict[str, Any], x: np.ndarray, y: np.ndarray, ids: pd.Series
    ) -> lgb.Booster:
        """One booster; 10% of customers (by hash) stop it early."""
        inner = (pd.util.hash_pandas_object(ids, index=False).to_numpy() % 10) == 0
        if inner.all() or not inner.any():
            inner = np.arange(len(y)) % 10 == 0
        cat_idx = [self.features_.index(c) for c in self.categories_]
        full = {"verbose": -1, "seed": self.seed, "num_threads": self.n_jobs, **params}
        names = list(self.features_)
        dtrain = lgb.Dataset(x[~inner], y[~inner], feature_name=names, categorical_feature=cat_idx)
        dvalid = lgb.Dataset(
            x[inner], y[inner], reference=dtrain, feature_name=names, categorical_feature=cat_idx
        )
        return lgb.train(
            full,
            dtrain,
            num_boost_round=self.num_boost_round,
            valid_sets=[dvalid],
            callbacks=[lgb.early_stopping(30, verbose=False)],
        )

    # ---- prediction ----
    def predict_outcomes(self, frame: Columns | np.ndarray) -> np.ndarray:
        """Expected outcome under each arm, shape (n, 1 + n_actions), columns ``arms_``."""
        x = self.matrix(frame)
        mu = np.column_stack([b.predict(x) for b in self.outcome_boosters_])
        return mu * self._unit(x)[:, None]

    def predict_propensity(self, frame: Columns | np.ndarray) -> np.ndarray:
        """Clipped arm probabilities, shape (n, 1 + n_actions), columns ``arms_``."""
        x = self.matrix(frame)
        if self.propensity_booster_ is None:
            return self._clip(np.tile(self.arm_shares_, (len(x), 1)))
        k = len(self.arms_)
        return self._clip(np.asarray(self.propensity_booster_.predict(x)).reshape(-1, k))

    def estimate_propensity(
        self, frame: pd.DataFrame, treatment: Sequence[str] | np.ndarray
    ) -> np.ndarray:
        """Clipped arm probabilities of another log, estimated on its own rows.

        A held-out campaign may split its arms differently from the training
        log; its probabilities come from a classifier fitted on its rows
        (same parameters as the model's own). Columns follow ``arms_``.
        """
        t = np.asarray(treatment, dtype=object).astype(str)
        arm = np.array([self.arms_.index(a) for a in t])
        x = self.matrix(frame)
        params = {**_PROPENSITY_PARAMS, "num_class": len(self.arms_)}
        booster = self._booster(params, x, arm.astype(float), frame["customer_id"].astype(str))
        return self._clip(np.asarray(booster.predict(x)).reshape(-1, len(self.arms_)))

    def predict_uplift(self, frame: Columns | np.ndarray) -> np.ndarray:
        """Expected incremental outcome of each action vs control, shape (n, n_actions).

        Columns follow ``actions_``.
        """
        x = self.matrix(frame)
        if self.effect_boosters_:
            tau = np.column_stack([b.predict(x) for b in self.effect_boosters_])
            return tau * self._unit(x)[:, None]
        mu = self.predict_outcomes(x)
        return mu[:, 1:] - mu[:, :1]

    def predict(self, frame: Columns | np.ndarray) -> np.ndarray:
        """The same as :meth:`predict_uplift`."""
        return self.predict_uplift(frame)

    # ---- persistence ----
    def save(self, folder: str | Path) -> Path:
        """Write ``schema.json`` and the boosters' text files into ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        boosters = {f"outcome_{i}.txt": b for i, b in enumerate(self.outcome_boosters_)}
        boosters.update({f"effect_{i}.txt": b for i, b in enumerate(self.effect_boosters_)})
        if self.propensity_booster_ is not None:
            boosters["propensity.txt"] = self.propensity_booster_
        for name, booster in boosters.items():
            booster.save_model(str(out / name))
        schema = {
            "model": "uplift",
            "params": self.get_params(deep=False),
            "features": self.features_,
            "categories": self.categories_,
            "actions": self.actions_,
            "arms": self.arms_,
            "arm_counts": self.arm_counts_,
            "arm_shares": [float(s) for s in self.arm_shares_],
            "propensity_clipped": self.propensity_clipped_,
            "outcome_cap": self.outcome_cap_,
            "scale_feature": self.scale_feature_,
            "scale_floor": self.scale_floor_,
            "n_effect": len(self.effect_boosters_),
            "decision": self.decision_,
            "reference": getattr(self, "reference_", {}),
            "event_vocabulary": getattr(self, "event_vocabulary_", None),
        }
        (out / "schema.json").write_text(json.dumps(schema, indent=2))
        return out

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read a model written by :meth:`save`."""
        path = Path(folder)
        schema = json.loads((path / "schema.json").read_text())
        model = cls(**schema["params"])
        model._clear_code_caches()
        model.features_ = schema["features"]
        model.categories_ = schema["categories"]
        model.actions_ = schema["actions"]
        model.arms_ = schema["arms"]
        model.arm_counts_ = schema["arm_counts"]
        model.arm_shares_ = np.asarray(schema["arm_shares"], dtype=float)
        model.propensity_clipped_ = int(schema["propensity_clipped"])
        model.outcome_cap_ = float(schema.get("outcome_cap", float("inf")))
        model.scale_feature_ = schema.get("scale_feature")
        model.scale_floor_ = float(schema.get("scale_floor", 1.0))
        model.decision_ = schema.get("decision") or {}
        model.reference_ = schema.get("reference") or {}
        model.event_vocabulary_ = schema.get("event_vocabulary")
        model.outcome_boosters_ = [
            lgb.Booster(model_file=str(path / f"outcome_{i}.txt")) for i in range(len(model.arms_))
        ]
        model.effect_boosters_ = [
            lgb.Booster(model_file=str(path / f"effect_{i}.txt"))
            for i in range(int(schema["n_effect"]))
        ]
        prop = path / "propensity.txt"
        model.propensity_booster_ = lgb.Booster(model_file=str(prop)) if prop.is_file() else None
        return model


class PyfuncUplift(PythonModel):
    """MLflow pyfunc wrapper of an :class:`UpliftModel` (``schema.json`` + booster files)."""

    def load_context(self, context: Any) -> None:
        self.model = UpliftModel.load(context.artifacts["model_dir"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        up = self.model.predict_uplift(model_input)
        return pd.DataFrame(up, columns=[f"uplift_{a}" for a in self.model.actions_])
