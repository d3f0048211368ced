"""A plain-pandas reference implementation (the oracle) of the features and labels.

Written from the definitions in DESIGN §4/§5 and the docstrings of
:mod:`churnclv.features`, not translated from the SQL. It favours clarity over
speed: one pass per cutoff, one ``groupby`` per feature family.

Definitions (``c`` is the cutoff; only rows with ``ts < c`` are read):

* a *purchase* is a transaction row with ``amount > 0``; a *return* has
  ``amount < 0``; a *purchase day* is the UTC calendar day of a purchase;
* days are floats: elapsed seconds / 86400;
* a window of ``w`` days is ``[c - w days, c)``; the prior 90-day window is
  ``[c - 180 days, c - 90 days)``;
* a customer gets a row per cutoff only when it has a purchase before ``c``;
* RFM scores are ``ceil(5 * cume_dist)`` within a cutoff, where cume_dist of a
  row is the share of rows that sort at or before it, ties included (recency is
  sorted descending, frequency and monetary_total ascending).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_EVENT_TYPES",
    "WINDOWS",
    "assert_features_match",
    "oracle_features",
    "oracle_labels",
]

WINDOWS = (7, 30, 90, 365)
DEFAULT_EVENT_TYPES = (
    "login",
    "session",
    "page_view",
    "email_open",
    "support_ticket",
    "complaint",
)
_ONE_DAY = pd.Timedelta(days=1)


def _days(delta: pd.Series | pd.Timedelta) -> pd.Series | float:
    """Convert a timedelta (or a Series of them) to float days."""
    return delta / _ONE_DAY


def _utc_day(ts: pd.Series) -> pd.Series:
    """The UTC calendar day of naive (UTC) timestamps."""
    return ts.dt.floor("D")


def _per_customer(index: pd.Index, series: pd.Series, fill: float | int) -> pd.Series:
    """Align a per-customer aggregate on ``index``; customers without rows get ``fill``."""
    out = series.reindex(index).fillna(fill)
    return out.astype("int64") if isinstance(fill, int) else out.astype("float64")


def _net(frame: pd.DataFrame) -> pd.Series:
    """Per-customer sum of ``amount``, correctly rounded (independent of row order)."""
    return frame.groupby("customer_id")["amount"].agg(math.fsum)


def _value_features(out: pd.DataFrame, ev: pd.DataFrame, et: str, cutoff: pd.Timestamp) -> None:
    """The value features of event type ``et`` (rows of ``ev`` are before the cutoff)."""
    ids = out.index
    valued = ev[(ev["event_type"] == et) & ev["value"].notna()] if "value" in ev else ev.iloc[:0]
    p = f"ev_{et}_value"
    last_ts = valued.groupby("customer_id")["ts"].max()
    at_last = valued[valued["ts"] == valued["customer_id"].map(last_ts)]
    out[f"{p}_last"] = _per_customer(ids, at_last.groupby("customer_id")["value"].max(), np.nan)
    for w in (30, 90, 365):
        recent = valued[valued["ts"] >= cutoff - pd.Timedelta(days=w)]
        mean = recent.groupby("customer_id")["value"].agg(lambda v: math.fsum(v) / len(v))
        out[f"{p}_mean_{w}d"] = _per_customer(ids, mean, np.nan)
    out[f"{p}_trend"] = out[f"{p}_last"] - out[f"{p}_mean_365d"]
    out[f"{p}_days_since"] = _days(cutoff - last_ts).reindex(ids).astype("float64")


def _one_cutoff(
    tx: pd.DataFrame,
    events: pd.DataFrame | None,
    customers: pd.DataFrame | None,
    cutoff: pd.Timestamp,
    event_types: Sequence[str],
    valued_types: Sequence[str] = (),
) -> pd.DataFrame:
    hist = tx[tx["ts"] < cutoff]
    buys = hist[hist["amount"] > 0]
    ids = pd.Index(sorted(buys["customer_id"].unique()), name="customer_id")
    out = pd.DataFrame(index=ids)
    out["as_of"] = cutoff
    hist = hist[hist["customer_id"].isin(ids)]
    buys = buys.assign(day=_utc_day(buys["ts"]))

    # ---- RFM
    first = buys.groupby("customer_id")["ts"].min()
    last = buys.groupby("customer_id")["ts"].max()
    n_days = buys.groupby("customer_id")["day"].nunique().reindex(ids)
    out["recency_days"] = _days(cutoff - last)
    out["tenure_days"] = _days(cutoff - first)
    out["frequency"] = n_days - 1
    out["n_purchases"] = buys.groupby("customer_id").size()
    out["monetary_total"] = _per_customer(ids, _net(hist), 0.0)
    out["monetary_mean"] = out["monetary_total"] / n_days
    rets = hist[hist["amount"] < 0]
    out["returns_count"] = _per_customer(ids, rets.groupby("customer_id").size(), 0)
    out["returns_total"] = _per_customer(ids, -_net(rets), 0.0)

    # ---- windows
    for w in WINDOWS:
        since = cutoff - pd.Timedelta(days=w)
        in_win = hist[hist["ts"] >= since]
        buys_win = buys[buys["ts"] >= since]
        out[f"tx_count_{w}d"] = _per_customer(ids, buys_win.groupby("customer_id").size(), 0)
        out[f"spend_{w}d"] = _per_customer(ids, _net(in_win), 0.0)
        out[f"active_days_{w}d"] = _per_customer(
            ids, buys_win.groupby("customer_id")["day"].nunique(), 0
        )
    prior = hist[
        (hist["ts"] >= cutoff - pd.Timedelta(days=180))
        & (hist["ts"] < cutoff - pd.Timedelta(days=90))
    ]
    out["spend_prior_90d"] = _per_customer(ids, _net(prior), 0.0)
    last90, prior90 = out["spend_90d"], out["spend_prior_90d"]
    denom = last90.abs() + prior90.abs()
    # Windows whose returns cancel their purchases net to zero up to float residue: trend 0.
    out["spend_trend_90d"] = np.where(
        denom < 1e-6, 0.0, (last90 - prior90) / denom.where(denom >= 1e-6)
    )

    # ---- inter-purchase gaps between consecutive distinct purchase days
    gap_mean, gap_std = {}, {}
    for cid, days in buys.groupby("customer_id")["day"]:
        gaps = _days(pd.Series(sorted(days.unique())).diff().dropna())
        gap_mean[cid] = gaps.mean() if len(gaps) >= 1 else np.nan
        gap_std[cid] = gaps.std(ddof=1) if len(gaps) >= 2 else np.nan
    out["gap_mean_days"] = pd.Series(gap_mean, dtype="float64")
    out["gap_std_days"] = pd.Series(gap_std, dtype="float64")

    # ---- engagement
    if events is not None:
        ev = events[(events["ts"] < cutoff) & events["customer_id"].isin(ids)]
        ev = ev.assign(day=_utc_day(ev["ts"]))
        for et in event_types:
            of_type = ev[ev["event_type"] == et]
            for w in (30, 90):
                recent = of_type[of_type["ts"] >= cutoff - pd.Timedelta(days=w)]
                out[f"ev_{et}_{w}d"] = _per_customer(ids, recent.groupby("customer_id").size(), 0)
            out[f"days_since_{et}"] = _days(cutoff - of_type.groupby("customer_id")["ts"].max())
        e30 = ev[ev["ts"] >= cutoff - pd.Timedelta(days=30)]
        e90 = ev[ev["ts"] >= cutoff - pd.Timedelta(days=90)]
        eprior = ev[
            (ev["ts"] >= cutoff - pd.Timedelta(days=180))
            & (ev["ts"] < cutoff - pd.Timedelta(days=90))
        ]
        out["events_30d"] = _per_customer(ids, e30.groupby("customer_id").size(), 0)
        out["events_90d"] = _per_customer(ids, e90.groupby("customer_id").size(), 0)
        n_prior = _per_customer(ids, eprior.groupby("customer_id").size(), 0)
        tot = out["events_90d"] + n_prior
        out["events_trend_90d"] = np.where(
            tot == 0, 0.0, (out["events_90d"] - n_prior) / tot.where(tot != 0)
        )
        out["event_active_days_30d"] = _per_customer(
            ids, e30.groupby("customer_id")["day"].nunique(), 0
        )
        out["event_active_days_90d"] = _per_customer(
            ids, e90.groupby("customer_id")["day"].nunique(), 0
        )
        out["days_since_event"] = _days(cutoff - ev.groupby("customer_id")["ts"].max())
        for et in valued_types:
            _value_features(out, ev, et, cutoff)

    # ---- static attributes
    if customers is not None:
        cust = customers.set_index("customer_id")
        for col in cust.columns:
            if col != "signup_ts":
                out[col] = cust[col].reindex(ids)
        if "signup_ts" in cust.columns:
            signup = cust["signup_ts"].reindex(ids)
            out["days_since_signup"] = _days(cutoff - signup).where(signup < cutoff)

    # ---- breadth: purchases with a category / channel before the cutoff, whole history
    for col, n_col, share_col in (
        ("category", "n_categories", "top_category_share"),
        ("channel", "n_channels", "top_channel_share"),
    ):
        if col in tx.columns:
            known = buys[buys[col].notna()]
            per = known.groupby(["customer_id", col], observed=True)["amount"]
            by = per.sum() if col == "category" else per.size().astype(float)
            grouped = by.groupby(level="customer_id")
            out[n_col] = _per_customer(ids, grouped.size().astype(float), np.nan)
            out[share_col] = _per_customer(ids, grouped.max() / grouped.sum(), np.nan)

    # ---- derived
    out["overdue_ratio"] = (out["recency_days"] / out["gap_mean_days"]).where(
        out["gap_mean_days"] > 0
    )
    return out.reset_index()


def oracle_features(
    transactions: pd.DataFrame,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    *,
    as_of: pd.Timestamp | str | Iterable[pd.Timestamp | str],
    event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
    valued_event_types: Sequence[str] = (),
) -> pd.DataFrame:
    """Feature rows per (customer, cutoff), sorted by ``as_of`` then ``customer_id``."""
    if isinstance(as_of, str | pd.Timestamp):
        as_of = [as_of]
    cutoffs = sorted({pd.Timestamp(c).as_unit("us") for c in as_of})
    frames = [
        _one_cutoff(transactions, events, customers, c, event_types, valued_event_types)
        for c in cutoffs
    ]
    out = pd.concat(frames, ignore_index=True)
    out["as_of"] = out["as_of"].astype("datetime64[us]")
    return out.sort_values(["as_of", "customer_id"], ignore_index=True)


def oracle_labels(
    transactions: pd.DataFrame,
    keys: pd.DataFrame,
    *,
    churn_horizon_days: float = 90,
    value_horizon_days: float = 365,
) -> pd.DataFrame:
    """``churned`` / ``future_value`` per key row, from rows in ``(as_of, as_of + horizon]``."""
    rows = []
    by_customer = dict(tuple(transactions.groupby("customer_id")))
    empty = transactions.iloc[:0]
    for cid, as_of in keys[["customer_id", "as_of"]].itertuples(index=False):
        own = by_customer.get(cid, empty)
        after = own[own["ts"] > as_of]
        churn_end = as_of + pd.Timedelta(days=churn_horizon_days)
        value_end = as_of + pd.Timedelta(days=value_horizon_days)
        bought = ((after["ts"] <= churn_end) & (after["amount"] > 0)).any()
        value = math.fsum(after.loc[after["ts"] <= value_end, "amount"])
        rows.append(
            {"customer_id": cid, "as_of": as_of, "churned": not bought, "future_value": value}
        )
    out = pd.DataFrame(rows, columns=["customer_id", "as_of", "churned", "future_value"])
    out["as_of"] = out["as_of"].astype("datetime64[us]")
    out["churned"] = out["churned"].astype(bool)
    return out.sort_values(["as_of", "customer_id"], ignore_index=True)


def _comparable(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    out = frame[list(columns)].copy()
    for col in out.columns:
        dtype = out[col].dtype
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out.sort_values(["as_of", "customer_id"], ignore_index=True)


def assert_features_match(engine: pd.DataFrame, oracle: pd.DataFrame, atol: float = 1e-6) -> None:
    """Assert the engine frame equals the oracle frame: same columns and rows, floats to ``atol``.

    Every column is compared on every row.
    """
    assert set(engine.columns) == set(oracle.columns), sorted(
        set(engine.columns) ^ set(oracle.columns)
    )
    assert list(engine.columns[:2]) == ["customer_id", "as_of"]
    cols = list(engine.columns)
    e = _comparable(engine, cols)
    o = _comparable(oracle, cols)
    pd.testing.assert_frame_equal(e, o, check_dtype=False, check_exact=False, atol=atol, rtol=0)
