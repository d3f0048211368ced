"""Plan a training: the cutoffs, the labelled feature stack and the purged out-of-time split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from churnclv._io import InputTables
from churnclv.features._vocabulary import Vocabulary, model_vocabulary
from churnclv.training._btyd_select import PurchaseModelChoice, choose_purchase_model
from churnclv.training._holdout import CUSTOMER_HOLDOUT, OUT_OF_TIME, customer_holdout_split
from churnclv.training._hybrid import fit_params, stack_btyd
from churnclv.training._source import FeatureSource, as_source

__all__ = ["Plan", "cutoffs", "plan_training", "purged_split", "refit_cutoffs"]

#: Days after the first purchase before which no cutoff is placed.
_WARM_UP_DAYS = 60


def cutoffs(
    first_ts: pd.Timestamp,
    as_of: pd.Timestamp,
    horizon: float,
    what: str,
    max_cutoffs: int,
    step_days: float = 30,
) -> tuple[list[pd.Timestamp], str | None]:
    """The validation cutoff (last) and the purged training cutoffs before it.

    The validation cutoff is ``as_of - horizon``; training cutoffs step back
    ``step_days`` from ``validation - horizon``, so every training label window
    ends before the validation rows' features begin, and none is earlier than
    60 days after the first purchase. The second item says why no model can be
    trained (no training cutoff), else None.
    """
    valid = (as_of - pd.Timedelta(days=horizon)).floor("D")
    earliest = first_ts + pd.Timedelta(days=_WARM_UP_DAYS)
    cuts: list[pd.Timestamp] = []
    c = valid - pd.Timedelta(days=horizon)
    while c >= earliest and len(cuts) < max_cutoffs - 1:
        cuts.append(c)
        c = c - pd.Timedelta(days=step_days)
    cuts = [*sorted(cuts), valid]
    if len(cuts) >= 2:
        return cuts, None
    need = first_ts + pd.Timedelta(days=_WARM_UP_DAYS + 2 * horizon)
    return cuts, (
        f"history too short for the {what} horizon of {horizon:g} days: training needs a "
        f"cutoff whose label window ends before the validation cutoff {valid.date()} "
        f"(data from {first_ts.date()}, so as_of must be at least {need.date()}, or use a "
        f"shorter --{what}-horizon-days)"
    )


def refit_cutoffs(
    valid: pd.Timestamp, first_ts: pd.Timestamp, max_cutoffs: int, step_days: float
) -> list[pd.Timestamp]:
    """The cutoffs the final value model is refitted on.

    The validation cutoff and up to ``max_cutoffs - 1`` more, ``step_days``
    apart before it (none earlier than 60 days after the first purchase). Every
    one of them has its label window end by ``as_of``; the purge gap between the
    training cutoffs and the validation cutoff is included, so the model that
    scores ``as_of`` has learned from the most recent labelled behaviour.
    """
    earliest = first_ts + pd.Timedelta(days=_WARM_UP_DAYS)
    cuts = [valid - pd.Timedelta(days=step_days * k) for k in range(max_cutoffs)]
    return sorted(c for c in cuts if c >= earliest)


def purged_split(
    frame: pd.DataFrame, cuts: list[pd.Timestamp], horizon: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and validation rows of ``cuts`` (the last one validates).

    Purged out-of-time split: a training row's label window must end by the
    validation cutoff, so nothing the model learns from overlaps what it is
    judged on.
    """
    rows = frame[frame["as_of"].isin(cuts)]
    purge = cuts[-1] - pd.Timedelta(days=horizon)
    return rows[rows["as_of"] <= purge], rows[rows["as_of"] == cuts[-1]]


@dataclass
class Plan:
    """The rows a training fits, validates and refits on, and why a model cannot be trained.

    ``frame`` holds the features, labels and BTYD columns of every cutoff;
    ``now`` the features as of ``as_of`` and ``btyd_now`` the BG/NBD +
    Gamma-Gamma pair fitted on them (None when it cannot be fitted), which
    travels with the models for scoring. ``churn_short``/``value_short`` say
    why the history is too short for the purged split of a horizon (None when
    it is long enough). ``designs`` says how each kind is evaluated:
    ``out_of_time`` (purged split) or ``customer_holdout`` (the purged split has
    no training cutoff but some label windows end by ``as_of``; see
    :mod:`churnclv.training._holdout`); ``churn_cuts``/``value_cuts`` end with
    the judged cutoff either way.
    """

    as_of: pd.Timestamp
    churn_horizon_days: float
    value_horizon_days: float
    churn_cuts: list[pd.Timestamp]
    value_cuts: list[pd.Timestamp]
    refit_cuts: list[pd.Timestamp]
    churn_short: str | None
    value_short: str | None
    frame: pd.DataFrame
    now: pd.DataFrame
    btyd_now: dict[str, Any] | None
    c_train: pd.DataFrame
    c_valid: pd.DataFrame
    v_train: pd.DataFrame
    v_valid: pd.DataFrame
    designs: dict[str, str] = field(default_factory=dict)
    #: The purchase model of the BTYD columns (BG/NBD or MBG/NBD) and the holdout likelihoods.
    purchase: PurchaseModelChoice = field(default_factory=lambda: PurchaseModelChoice("bgnbd", {}))
    vocabulary: Vocabulary = field(default_factory=lambda: model_vocabulary())

    @property
    def refit_rows(self) -> pd.DataFrame:
        """The rows of the value model's refit cutoffs (empty without a refit)."""
        return self.frame[self.frame["as_of"].isin(self.refit_cuts)]

    @property
    def evaluation(self) -> str:
        """The run's design: ``customer_holdout`` when any kind used it, else ``out_of_time``."""
        return CUSTOMER_HOLDOUT if CUSTOMER_HOLDOUT in self.designs.values() else OUT_OF_TIME

    def labelled_rows(self, kind: str) -> pd.DataFrame:
        """Every customer's rows at ``kind``'s labelled cutoffs (the holdout design's refit)."""
        cuts = self.churn_cuts if kind == "churn" else self.value_cuts
        return self.frame[self.frame["as_of"].isin(cuts)]


def plan_training(
    tables: InputTables | FeatureSource,
    as_of: pd.Timestamp,
    horizons: tuple[float, float],
    max_cutoffs: int,
    cutoff_step_days: float,
    refit_value: bool,
    say: Callable[[str], None],
    vocabulary: Vocabulary | None = None,
) -> Plan:
    """Place the cutoffs, build their labelled features with BTYD columns, and split them.

    ``horizons`` are the churn and value horizons in days. Each model gets its
    own cutoffs (:func:`cutoffs`) and purged split (:func:`purged_split`); with
    ``refit_value`` the value model's refit cutoffs (:func:`refit_cutoffs`) are
    built too. A kind whose purged split has no training cutoff but whose label
    windows end by ``as_of`` at some cutoffs gets the customer-holdout split
    of those cutoffs instead
    (:func:`~churnclv.training._holdout.customer_holdout_split`). Features are
    computed once for the union of all cutoffs, with one BG/NBD + Gamma-Gamma pair fitted per
    cutoff on its own history. ``vocabulary`` (event types, valued event types)
    names the event types with their own features (default: the default
    types, no values). The frames come from ``tables``' feature source
    (:mod:`churnclv.training._source`): one row per customer and cutoff.
    """
    source = as_source(tables)
    churn_horizon_days, value_horizon_days = horizons
    first_ts = source.first_purchase()
    churn_cuts, churn_short = cutoffs(
        first_ts, as_of, churn_horizon_days, "churn", max_cutoffs, cutoff_step_days
    )
    value_cuts, value_short = cutoffs(
        first_ts, as_of, value_horizon_days, "value", max_cutoffs, cutoff_step_days
    )
    designs = {"churn": OUT_OF_TIME, "value": OUT_OF_TIME}
    if churn_short is not None:
        labelled = refit_cutoffs(churn_cuts[-1], first_ts, max_cutoffs, cutoff_step_days)
        if labelled:
            churn_cuts, designs["churn"] = labelled, CUSTOMER_HOLDOUT
    if value_short is not None:
        labelled = refit_cutoffs(value_cuts[-1], first_ts, max_cutoffs, cutoff_step_days)
        if labelled:
            value_cuts, designs["value"] = labelled, CUSTOMER_HOLDOUT
    refit_cuts = (
        refit_cutoffs(value_cuts[-1], first_ts, max_cutoffs, cutoff_step_days)
        if refit_value and (value_short is None or designs["value"] == CUSTOMER_HOLDOUT)
        else []
    )
    all_cuts = sorted(set(churn_cuts) | set(value_cuts) | set(refit_cuts))
    say(f"features for {len(all_cuts)} cutoffs ({source.engine})")
    vocabulary = vocabulary or model_vocabulary()
    frame = source.labelled_features(all_cuts, vocabulary, horizons)
    # every column the models read: the value fallback ranks the churn model's scores on it
    now = source.features(as_of, model_vocabulary())
    purchase = choose_purchase_model(_choice_rows(frame, churn_cuts, churn_horizon_days, now))
    say(f"{purchase_model_name(purchase.model)} + Gamma-Gamma per cutoff (hybrid features)")
    frame = stack_btyd(frame, churn_horizon_days, value_horizon_days, purchase_model=purchase.model)
    c_train, c_valid = (
        customer_holdout_split(frame, churn_cuts)
        if designs["churn"] == CUSTOMER_HOLDOUT
        else purged_split(frame, churn_cuts, churn_horizon_days)
    )
    v_train, v_valid = (
        customer_holdout_split(frame, value_cuts)
        if designs["value"] == CUSTOMER_HOLDOUT
        else purged_split(frame, value_cuts, value_horizon_days)
    )
    return Plan(
        as_of=as_of,
        churn_horizon_days=churn_horizon_days,
        value_horizon_days=value_horizon_days,
        churn_cuts=churn_cuts,
        value_cuts=value_cuts,
        refit_cuts=refit_cuts,
        churn_short=churn_short,
        value_short=value_short,
        frame=frame,
        now=now,
        btyd_now=fit_params(now, churn_horizon_days, value_horizon_days, purchase.model),
        c_train=c_train,
        c_valid=c_valid,
        v_train=v_train,
        v_valid=v_valid,
        designs=designs,
        purchase=purchase,
        vocabulary=vocabulary,
    )


_NAMES = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD"}


def purchase_model_name(model: str) -> str:
    """The purchase model's name for people: ``"bgnbd"`` -> ``"BG/NBD"``."""
    return _NAMES.get(model, model)


def _choice_rows(
    frame: pd.DataFrame, churn_cuts: list[pd.Timestamp], horizon: float, now: pd.DataFrame
) -> pd.DataFrame:
    """The cross-section the purchase model is chosen on: the latest churn training
    cutoff's rows (never the validation cutoff's), else the rows as of ``as_of``."""
    train, _ = purged_split(frame, churn_cuts, horizon) if churn_cuts else (frame.iloc[:0], None)
    if train.empty:
        return now
    return train[train["as_of"] == train["as_of"].max()]
