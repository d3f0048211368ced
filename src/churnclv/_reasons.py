"""Reasons: a churn model's top contributions in plain words (a decision-side concept).

Pure functions over feature values and contributions; used by batch scoring
(:func:`churnclv.serving.score_features`) and the online scorer alike. No
BentoML, no MLflow.

A reason is ``{feature, label, value, direction, contribution, text}``
(DESIGN §13): ``label`` names the feature in words, ``direction`` is
``"raises"`` when the contribution is positive (it pushes the churn
probability up) and ``"lowers"`` otherwise, and ``text`` is the customer's
value in plain words followed by the direction, e.g. ``"no purchase for 212
days, 3.0x the usual gap: raises churn risk"``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from churnclv._reasons_batch import float_column, group_texts, numpy_numbers, top_k
from churnclv._reasons_events import value_label, value_text

__all__ = ["ReasonTable", "feature_label", "reason_text", "reasons", "text_fn"]


def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _days(x: float) -> str:
    return f"{x:,.0f} day" + ("" if round(x) == 1 else "s")


_LABELS = {
    "recency_days": "days since last purchase",
    "tenure_days": "days since first purchase",
    "frequency": "repeat purchase days",
    "n_purchases": "number of purchases",
    "monetary_total": "total spend",
    "monetary_mean": "spend per purchase day",
    "returns_count": "number of returns",
    "returns_total": "value of returns",
    "spend_prior_90d": "spend in the 90 days before the last 90",
    "spend_trend_90d": "spend trend, last 90 days vs the 90 before",
    "events_trend_90d": "activity trend, last 90 days vs the 90 before",
    "gap_mean_days": "usual gap between purchases (days)",
    "gap_std_days": "variation of the gap between purchases (days)",
    "overdue_ratio": "days since last purchase / usual gap",
    "days_since_event": "days since last activity",
    "days_since_signup": "days since signup",
    "btyd_p_alive": "chance the customer is still active (BG/NBD)",
    "btyd_p_no_purchase_churn": "chance of no purchase within the churn horizon (BG/NBD)",
    "btyd_expected_purchases_churn": "purchases expected within the churn horizon (BG/NBD)",
    "btyd_expected_purchases_value": "purchases expected within the value horizon (BG/NBD)",
    "btyd_expected_spend": "expected spend per purchase (Gamma-Gamma)",
    "btyd_clv_value": "value expected by BG/NBD and Gamma-Gamma",
}


@functools.lru_cache(maxsize=4096)
def feature_label(feature: str) -> str:
    """A feature column's name in words.

    Examples
    --------
    >>> from churnclv._reasons import feature_label
    >>> feature_label("recency_days"), feature_label("ev_login_30d"), feature_label("plan")
    ('days since last purchase', 'logins in the last 30 days', 'plan')
    """
    if feature in _LABELS:
        return _LABELS[feature]
    if (label := value_label(feature)) is not None:
        return label
    for w in (7, 30, 90, 365):
        if feature == f"tx_count_{w}d":
            return f"purchases in the last {w} days"
        if feature == f"spend_{w}d":
            return f"spend in the last {w} days"
        if feature == f"active_days_{w}d":
            return f"days with a purchase in the last {w} days"
        if feature == f"events_{w}d":
            return f"engagement events in the last {w} days"
        if feature == f"event_active_days_{w}d":
            return f"days with activity in the last {w} days"
    if feature.startswith("days_since_"):
        return f"days since last {feature.removeprefix('days_since_').replace('_', ' ')}"
    if feature.startswith("ev_") and feature[-1] == "d":
        name, _, window = feature.removeprefix("ev_").rpartition("_")
        if window.removesuffix("d").isdigit():
            return f"{name.replace('_', ' ')}s in the last {window.removesuffix('d')} days"
    return feature.replace("_", " ")


def _btyd_text(feature: str, x: float) -> str | None:
    """Plain words for the BTYD model columns the churn model reads."""
    if feature == "btyd_p_alive":
        return f"{x:.0%} chance still active (BG/NBD)"
    if feature == "btyd_p_no_purchase_churn":
        return f"{x:.0%} chance of no purchase within the churn horizon (BG/NBD)"
    if feature in ("btyd_expected_purchases_churn", "btyd_expected_purchases_value"):
        horizon = "churn" if feature.endswith("churn") else "value"
        return f"{x:,.1f} purchases expected within the {horizon} horizon (BG/NBD)"
    if feature == "btyd_expected_spend":
        return f"expected spend {x:,.2f} per purchase (Gamma-Gamma)"
    if feature == "btyd_clv_value":
        return f"BG/NBD and Gamma-Gamma expect {x:,.2f} in value"
    return None


#: A feature's text from its raw value and the row's context: recency, usual gap,
#: returns count and returns total (the only other columns a text reads).
TextFn = Callable[[Any, "float | None", "float | None", Any, Any], str]


def _missing(value: Any) -> bool:
    """True for every spelling of a missing scalar: None, NaN, ``pd.NA``, ``NaT``."""
    return value is None or bool(pd.api.types.is_scalar(value) and pd.isna(value))


def _fmt_value(label: str, x: float | None, value: Any) -> str:
    """``"<label> <number>"``, ``"<label> unknown"`` when missing, else ``"<label> is <value>"``."""
    if x is not None:
        return f"{label} {x:,.4g}"
    if _missing(value):
        return f"{label} unknown"
    return f"{label} is {value}"


def _numeric(fn: Callable[[float], str], feature: str) -> TextFn:
    """``fn`` of the value when it is a finite number, else the generic text."""
    label = feature_label(feature)

    def text(value: Any, recency: float | None, gap: float | None, rc: Any, rt: Any) -> str:
        x = _num(value)
        return fn(x) if x is not None else _fmt_value(label, x, value)

    text.finite = fn  # type: ignore[attr-defined]  # the text of a finite float, directly
    return text


def _recency_text(feature: str) -> TextFn:
    label = feature_label(feature)

    def text(value: Any, recency: float | None, gap: float | None, rc: Any, rt: Any) -> str:
        if recency is None:
            return _fmt_value(label, _num(value), value)
        out = f"no purchase for {_days(recency)}"
        if gap and gap > 0:
            out += f", {recency / gap:.1f}x the usual gap"
        return out

    return text


def _gap_text(feature: str) -> TextFn:
    what = "usual gap" if feature == "gap_mean_days" else "gap varies by"

    def text(value: Any, recency: float | None, gap: float | None, rc: Any, rt: Any) -> str:
        x = _num(value)
        if x is None:
            return "only one purchase day so far"
        return f"{what} {x:,.1f} days between purchases"

    return text


def _since_text(feature: str) -> TextFn:
    what = feature.removeprefix("days_since_").replace("_", " ")
    if what == "event":
        what = "activity"

    def text(value: Any, recency: float | None, gap: float | None, rc: Any, rt: Any) -> str:
        x = _num(value)
        if x is None:
            return f"no {what} on record" if what != "signup" else "signup date unknown"
        if what == "signup":
            return f"signed up {_days(x)} ago"
        return f"last {what} {_days(x)} ago"

    return text


def _trend_text(feature: str) -> Callable[[float], str]:
    what = "spend" if feature.startswith("spend") else "activity"

    def text(x: float) -> str:
        if x == 0:
            return f"{what} flat over the last 90 days vs the 90 before"
        way = "up" if x > 0 else "down"
        return f"{what} {way} (trend {x:+.2f}) over the last 90 days vs the 90 before"

    return text


def _windowed(feature: str) -> Callable[[float], str] | None:
    """Texts of the per-window purchase and activity counts."""
    for w in (7, 30, 90, 365):
        if feature == f"tx_count_{w}d":
            return ("{:,.0f} purchases in the last " + f"{w} days").format
        if feature == f"spend_{w}d":
            return ("spent {:,.2f} in the last " + f"{w} days").format
        if feature == f"active_days_{w}d":
            return ("bought on {:,.0f} days in the last " + f"{w} days").format
    if feature.startswith("ev_") and feature[-1] == "d":
        name, _, window = feature.removeprefix("ev_").rpartition("_")
        label, days = name.replace("_", " "), window.removesuffix("d")
        return lambda x: f"{x:,.0f} {label}{'' if x == 1 else 's'} in the last {days} days"
    if feature in ("events_30d", "events_90d"):
        days = feature[7:-1]
        return lambda x: f"{x:,.0f} engagement events in the last {days} days"
    if feature.startswith("event_active_days_"):
        days = feature[18:-1]
        return lambda x: f"active on {x:,.0f} days in the last {days} days"
    return None


_SIMPLE: dict[str, Callable[[float], str]] = {
    "tenure_days": lambda x: f"first purchase {_days(x)} ago",
    "frequency": lambda x: f"{x:,.0f} repeat purchase day" + ("" if x == 1 else "s"),
    "n_purchases": lambda x: f"{x:,.0f} purchases in total",
    "monetary_total": lambda x: f"spent {x:,.2f} in total",
    "monetary_mean": lambda x: f"spends {x:,.2f} per purchase day",
    "spend_prior_90d": lambda x: f"spent {x:,.2f} in the 90 days before the last 90",
}


@functools.lru_cache(maxsize=4096)
def text_fn(feature: str) -> TextFn:
    """The function writing ``feature``'s plain-words text (see :func:`reason_text`).

    Resolved once per feature, so a batch formats each reason with one call.
    """
    if value_label(feature) is not None:  # an event-value feature (NPS, scores)
        return lambda value, recency, gap, rc, rt: cast("str", value_text(feature, _num(value)))
    if feature in ("recency_days", "overdue_ratio"):
        return _recency_text(feature)
    if feature in ("gap_mean_days", "gap_std_days"):
        return _gap_text(feature)
    if feature in ("returns_count", "returns_total"):
        return _returns_or_generic(feature)
    if feature.startswith("days_since_"):
        return _since_text(feature)
    simple = _SIMPLE.get(feature) or _windowed(feature)
    if feature in ("spend_trend_90d", "events_trend_90d"):
        simple = _trend_text(feature)
    if simple is None and feature.startswith("btyd_"):
        btyd = functools.partial(_btyd_text, feature)
        if btyd(0.5) is not None:
            simple = lambda x: cast("str", btyd(x))  # noqa: E731
    if simple is not None:
        return _numeric(simple, feature)
    label = feature_label(feature)
    return lambda value, recency, gap, rc, rt: _fmt_value(label, _num(value), value)


def _returns_or_generic(feature: str) -> TextFn:
    label = feature_label(feature)

    def text(value: Any, recency: float | None, gap: float | None, rc: Any, rt: Any) -> str:
        if _num(value) is None:
            return _fmt_value(label, None, value)
        n, total = _num(rc) or 0, _num(rt) or 0
        return f"{n:,.0f} returns worth {total:,.2f}"

    return text


def reason_text(feature: str, row: Mapping[str, Any]) -> str:
    """A short plain-words description of one feature of one customer.

    Parameters
    ----------
    feature : str
        A feature column name.
    row : mapping
        The customer's feature values (``recency_days``, ``gap_mean_days``, ...).

    Returns
    -------
    str
        E.g. ``"no purchase for 94 days, 3.1x the usual gap"``; other features
        read ``"<label> <value>"`` (``"plan is basic"``), and ``"<label> unknown"``
        when the value is missing (None, NaN, ``pd.NA`` or ``NaT``).

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv._reasons import reason_text
    >>> reason_text("plan", {"plan": "basic"}), reason_text("plan", {"plan": pd.NA})
    ('plan is basic', 'plan unknown')
    """
    return text_fn(feature)(
        row.get(feature),
        _num(row.get("recency_days")),
        _num(row.get("gap_mean_days")),
        row.get("returns_count"),
        row.get("returns_total"),
    )


def reasons(
    features: pd.DataFrame | Mapping[str, Any],
    contributions: pd.DataFrame | np.ndarray,
    k: int = 3,
    *,
    columns: Sequence[str] | None = None,
) -> list[list[dict[str, Any]]]:
    """The top ``k`` churn-model contributions of each row, largest magnitude first.

    Parameters
    ----------
    features : pandas.DataFrame or mapping of str to array
        Feature rows (the model's input), as a frame or as column arrays.
    contributions : pandas.DataFrame or numpy.ndarray
        ``BoosterModel.contributions`` of the same rows (raw-score scale; > 0
        raises the churn probability), or its array (``contribution_matrix``).
    k : int
        Reasons per row.
    columns : sequence of str, optional
        The feature of each column of an array ``contributions``.

    Returns
    -------
    list of list of dict
        Per row: ``{"feature", "label", "value", "direction", "contribution",
        "text"}`` objects (see the module doc).

    Examples
    --------
    >>> import numpy as np
    >>> from churnclv._reasons import reasons
    >>> rows = {"recency_days": np.array([212.0]), "gap_mean_days": np.array([70.0]),
    ...         "frequency": np.array([4.0])}
    >>> why = reasons(rows, np.array([[1.2, -0.4]]), k=2, columns=["recency_days", "frequency"])
    >>> [(r["label"], r["direction"]) for r in why[0]]
    [('days since last purchase', 'raises'), ('repeat purchase days', 'lowers')]
    >>> why[0][0]["text"]
    'no purchase for 212 days, 3.0x the usual gap: raises churn risk'
    """
    return ReasonTable.build(features, contributions, k, columns=columns).records()


def _column(features: pd.DataFrame | Mapping[str, Any], name: str) -> np.ndarray:
    """One feature column as an object array of plain Python values."""
    values = features[name]
    return np.asarray(values.tolist() if hasattr(values, "tolist") else list(values), dtype=object)


class ReasonTable:
    """The top ``k`` reasons of every row as columns: which feature, its
    contribution and its text. :meth:`records` gives the per-row dicts of
    :func:`reasons`; :meth:`joined` the ``"; "``-joined texts batch scores carry.

    Texts are written per (rank, feature) group with the feature's text function
    resolved once (:func:`text_fn`), not per row.
    """

    def __init__(
        self,
        top: np.ndarray,
        contributions: np.ndarray,
        texts: list[np.ndarray],
        values: list[np.ndarray],
        columns: Sequence[str],
    ) -> None:
        self.top, self.contributions, self.texts = top, contributions, texts
        self.values, self.columns = values, list(columns)

    @classmethod
    def build(
        cls,
        features: pd.DataFrame | Mapping[str, Any],
        contributions: pd.DataFrame | np.ndarray,
        k: int = 3,
        *,
        columns: Sequence[str] | None = None,
    ) -> ReasonTable:
        """The table of ``features``' rows (see :func:`reasons` for the parameters)."""
        if isinstance(contributions, pd.DataFrame):
            contrib = contributions.to_numpy(dtype=float)
            cols = list(contributions.columns)
        elif columns is None:
            raise ValueError("reasons: pass columns= with an array of contributions")
        else:
            contrib, cols = np.asarray(contributions, dtype=float), list(columns)
        top, picked = top_k(contrib, k)
        return cls.from_top(features, top, picked, cols)

    @classmethod
    def from_top(
        cls,
        features: pd.DataFrame | Mapping[str, Any],
        top: np.ndarray,
        picked: np.ndarray,
        columns: Sequence[str],
    ) -> ReasonTable:
        """The table from each row's top contributions: ``top`` (column indices into
        ``columns``, largest first) and ``picked`` (their values), e.g. from
        :func:`~churnclv._reasons_batch.top_contributions`."""
        cols = list(columns)
        n = len(top)
        floats = {
            name: float_column(features, name, n) for name in ("recency_days", "gap_mean_days")
        }
        cache: dict[str, np.ndarray] = {}

        def column(name: str) -> np.ndarray:
            if name not in cache:
                cache[name] = (
                    _column(features, name) if name in features else np.full(n, None, object)
                )
            return cache[name]

        numbers: dict[str, np.ndarray | None] = {}
        texts: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for r in range(top.shape[1]):
            text_r = np.empty(n, dtype=object)
            value_r = np.empty(n, dtype=object)
            order = np.argsort(top[:, r], kind="stable")
            starts = np.flatnonzero(np.r_[True, np.diff(top[order, r]) != 0])
            for rows in np.split(order, starts[1:]) if n else []:
                feat = cols[top[rows[0], r]]
                if feat not in numbers:
                    numbers[feat] = numpy_numbers(features, feat)
                num = numbers[feat]
                text_r[rows], value_r[rows] = group_texts(
                    feat,
                    text_fn(feat),
                    _reason_value,
                    lambda feat=feat, rows=rows: column(feat)[rows],  # type: ignore[misc]
                    None if num is None else num[rows],
                    lambda name, rows=rows: (  # type: ignore[misc]
                        floats[name][rows] if name in floats else column(name)[rows]
                    ),
                )
            texts.append(text_r)
            values.append(value_r)
        return cls(top, picked, texts, values, cols)

    def __len__(self) -> int:
        return len(self.top)

    def row(self, i: int) -> list[dict[str, Any]]:
        """Row ``i``'s reasons as ``{feature, label, value, direction, contribution, text}``."""
        items = []
        for r in range(self.top.shape[1]):
            feat = self.columns[self.top[i, r]]
            contribution = float(self.contributions[i, r])
            direction = "raises" if contribution > 0 else "lowers"
            items.append(
                {
                    "feature": feat,
                    "label": feature_label(feat),
                    "value": self.values[r][i],
                    "direction": direction,
                    "contribution": contribution,
                    "text": f"{self.texts[r][i]}: {direction} churn risk",
                }
            )
        return items

    def records(self) -> list[list[dict[str, Any]]]:
        """Every row's reasons (:meth:`row`)."""
        return [self.row(i) for i in range(len(self))]

    def joined(self) -> list[str]:
        """Per row, the reasons' texts (with their direction) joined by ``"; "``."""
        return self.joined_array().tolist()

    def joined_strings(self) -> Any:
        """:meth:`joined` as a pandas string array, joined by Arrow (a batch column: no
        Python string per row is built, and pandas takes the Arrow array as it is)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self.top.shape[1] or not len(self):
            return pd.array(self.joined(), dtype="str")
        parts: list[Any] = []
        raises, lowers = pa.scalar(": raises churn risk"), pa.scalar(": lowers churn risk")
        for r in range(self.top.shape[1]):
            if r:
                parts.append(pa.scalar("; "))
            parts.append(pa.array(self.texts[r], pa.string()))
            parts.append(pc.if_else(pa.array(self.contributions[:, r] > 0), raises, lowers))
        return pd.array(pc.binary_join_element_wise(*parts, pa.scalar("")), dtype="str")

    def joined_array(self) -> np.ndarray:
        """:meth:`joined` as an object array."""
        if not self.top.shape[1]:
            out = np.empty(len(self), dtype=object)
            out[:] = ""
            return out
        ways = np.where(self.contributions > 0, ": raises churn risk", ": lowers churn risk")
        out = self.texts[0] + ways[:, 0].astype(object)
        for r in range(1, self.top.shape[1]):
            out = out + "; " + self.texts[r] + ways[:, r].astype(object)
        return out


def _reason_value(raw: Any) -> Any:
    """A reason's ``value``: the number, else the category as a string, else None."""
    val: Any = _num(raw)
    if val is None and raw is not None and not isinstance(raw, float):
        val = None if pd.isna(raw) else str(raw)
    return val
