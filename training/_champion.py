"""The champion models scoring and the service use (:class:`Champion`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from churnclv.training._scorable import ScorableModel

__all__ = ["Champion"]


@dataclass(frozen=True)
class Champion:
    """The champion models and what they were trained with.

    Returned by :func:`load_champion`; scoring and the service use it. Any of
    the three models may be missing (at least one is present): scoring leaves
    the columns of a missing model null (:attr:`missing`).

    Attributes
    ----------
    churn, value : ScorableModel or None
        The churn model (P(churn) within ``churn_horizon_days``) and the value
        model (expected value within ``value_horizon_days``); None when not
        registered.
    churn_version, value_version : str or None
        Their versions in the registry.
    churn_run_id, value_run_id : str or None
        The MLflow runs that trained them.
    churn_horizon_days, value_horizon_days : float
        The label horizons they were trained for (90 and 365 without the model).
    uplift : UpliftModel or None
        The ``churnclv-uplift@champion`` model (None when there is none): scoring
        then chooses actions from learned uplift (:func:`churnclv.train_uplift`).
    uplift_version : str or None
        Its version in the registry.
    uplift_note : str or None
        Why the registry's uplift champion is left out of these models (a
        model URI that pairs no uplift model, see
        :func:`churnclv.champion_from_uri`); None otherwise. The CLI prints it.

    Examples
    --------
    >>> from churnclv import Champion
    >>> champion = Champion(
    ...     churn=None, value=None,  # the models, as load_champion returns them
    ...     churn_version="3", value_version="2", churn_run_id="r1", value_run_id="r2",
    ...     churn_horizon_days=90.0, value_horizon_days=365.0,
    ... )
    >>> champion.model_version
    'churn:v3+value:v2'
    """

    churn: ScorableModel | None
    value: ScorableModel | None
    churn_version: str | None
    value_version: str | None
    churn_run_id: str | None
    value_run_id: str | None
    churn_horizon_days: float = 90.0
    value_horizon_days: float = 365.0
    uplift: Any = None
    uplift_version: str | None = None
    uplift_note: str | None = None

    @property
    def model_version(self) -> str:
        """A compact version string, e.g. ``churn:v3+value:v2`` (``+uplift:v1`` with one);
        only the registered models are named (``uplift:v1`` alone without the others)."""
        parts = [
            f"{kind}:v{version}"
            for kind, version in (
                ("churn", self.churn_version),
                ("value", self.value_version),
                ("uplift", self.uplift_version if self.uplift is not None else None),
            )
            if version is not None
        ]
        return "+".join(parts)

    @property
    def missing(self) -> list[str]:
        """The kinds (``churn``, ``value``, ``uplift``) without a model, in that order."""
        models = (("churn", self.churn), ("value", self.value), ("uplift", self.uplift))
        return [kind for kind, model in models if model is None]

    @property
    def base(self) -> ScorableModel | None:
        """The churn model, else the value model (None with neither): the one whose BTYD
        columns and reference population scoring uses."""
        return self.churn if self.churn is not None else self.value

    @property
    def reference(self) -> dict[str, list[float]] | None:
        """The population decisions rank customers against: the value model's, else the
        uplift model's (RFM only; value tiers then have no reference); None without."""
        for model in (self.value, self.uplift):
            ref = getattr(model, "reference_", None)
            if ref:
                return dict(ref)
        return None
