"""The campaign log (DESIGN §11): who was sent what, when, and what they spent afterwards.

A campaign log holds one row per customer per send: ``customer_id``, ``ts``,
``treatment`` and an optional ``campaign_id``. It is read like the other inputs
(CSV or Parquet through DuckDB, the encodings and separators of
:mod:`churnclv._io_csv`, one-line :class:`~churnclv.InputError` messages), and
every treatment other than the control arm must be an action of the policy.

The outcome of a send is the customer's net spend (returns negative) in the
response window ``(ts, ts + response_days]``: the send day itself is excluded,
the last day included.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from churnclv._errors import InputError
from churnclv._io import (
    ColumnMap,
    LoadReport,
    _check_ts,
    _columns,
    _finish,
    _id_expr,
    _open,
    _q,
    _require,
)

__all__ = [
    "CampaignColumns",
    "campaign_outcomes",
    "has_control",
    "load_campaigns",
    "sends_in_window",
]

_WHAT = "campaigns"
_COLUMNS = ["customer_id", "ts", "treatment", "campaign_id"]


@dataclass(frozen=True)
class CampaignColumns:
    """Names of the campaign log's source columns.

    Parameters
    ----------
    customer_id, ts, treatment : str
        Source columns of the customer id, the send time and the arm.
    campaign_id : str
        Source column of the campaign id; when the log has no such column, the
        campaign is the send date (``YYYY-MM-DD``).
    """

    customer_id: str = "customer_id"
    ts: str = "ts"
    treatment: str = "treatment"
    campaign_id: str = "campaign_id"


def load_campaigns(
    path: str | os.PathLike[str],
    *,
    columns: CampaignColumns | None = None,
    control: str = "control",
    actions: Sequence[str],
    encoding: str | None = None,
    sep: str | None = None,
    report: LoadReport | None = None,
) -> pd.DataFrame:
    """Load and validate a campaign log (one row per customer per send).

    Parameters
    ----------
    path : path-like
        CSV or Parquet file.
    columns : CampaignColumns, optional
        Source column names; default the canonical ones.
    control : str, default "control"
        The label of the untreated arm.
    actions : sequence of str
        The policy's action names: every other treatment is an error.
    encoding, sep : str, optional
        CSV encoding and separator (as for the transactions); default detected.
    report : LoadReport, optional
        Receives counts of skipped and duplicate rows.

    Returns
    -------
    pandas.DataFrame
        ``customer_id`` (str), ``ts`` (datetime64[us]), ``treatment`` (str) and
        ``campaign_id`` (str; the send date ``YYYY-MM-DD`` when the log has no
        campaign column), sorted by ``ts`` and ``customer_id``. A log without
        any control row is returned as it is (see :func:`has_control`).

    Raises
    ------
    InputError
        A missing, empty or unreadable file, a missing column, unparseable
        timestamps, empty treatments, treatments that are neither the control
        nor a policy action (named), or one customer in two arms of one send.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv import InputError, load_campaigns
    >>> pd.DataFrame(
    ...     {
    ...         "customer_id": ["A", "B", "C"],
    ...         "ts": ["2024-03-01", "2024-03-01", "2024-03-01"],
    ...         "treatment": ["control", "email_reminder", "discount_coupon"],
    ...     }
    ... ).to_csv("campaigns.csv", index=False)
    >>> load_campaigns("campaigns.csv", actions=["email_reminder", "discount_coupon"])
      customer_id         ts        treatment campaign_id
    0           A 2024-03-01          control  2024-03-01
    1           B 2024-03-01   email_reminder  2024-03-01
    2           C 2024-03-01  discount_coupon  2024-03-01
    >>> try:
    ...     load_campaigns("campaigns.csv", actions=["email_reminder"])
    ... except InputError as err:
    ...     print(err)  # doctest: +ELLIPSIS
    campaigns file campaigns.csv: treatment 'discount_coupon' (1 row) is neither ...
    """
    cc = columns or CampaignColumns()
    rep = report if report is not None else LoadReport()
    con, p = _open(path, _WHAT, ColumnMap(encoding=encoding, sep=sep), rep)
    cols = _columns(con)
    _require(
        cols,
        {"customer_id": cc.customer_id, "ts": cc.ts, "treatment": cc.treatment},
        p,
        _WHAT,
    )
    cid, tr = _q(cc.customer_id), _q(cc.treatment)
    ts = _check_ts(con, _q(cc.ts), p, _WHAT, cc.ts)
    empty = con.execute(
        f"SELECT count(*) FROM src WHERE {tr} IS NULL OR trim(CAST({tr} AS VARCHAR)) = ''"
    ).fetchone()
    if empty and empty[0]:
        raise InputError(f"{_WHAT} file {p}: column {cc.treatment!r} has {empty[0]:,} empty values")
    day = f"strftime({ts}, '%Y-%m-%d')"
    if cc.campaign_id in cols:
        camp = _q(cc.campaign_id)
        campaign = f"coalesce(NULLIF(trim(CAST({camp} AS VARCHAR)), ''), {day})"
    else:
        campaign = day
    select = (
        f"{_id_expr(cid, cols[cc.customer_id])} AS customer_id, {ts} AS ts, "
        f"trim(CAST({tr} AS VARCHAR)) AS treatment, {campaign} AS campaign_id"
    )
    try:
        df = _finish(con, select, f"{cid} IS NOT NULL", p, _WHAT, rep)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{_WHAT} file {p} cannot be read: {first}") from None
    df = _canonical(df)
    _check_treatments(df, control, actions, f"{_WHAT} file {p}")
    _check_single_arm(df, f"{_WHAT} file {p}")
    return df


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "customer_id": df["customer_id"].astype("str"),
            "ts": pd.to_datetime(df["ts"]).astype("datetime64[us]"),
            "treatment": df["treatment"].astype("str"),
            "campaign_id": df["campaign_id"].astype("str"),
        }
    )
    return out.sort_values(["ts", "customer_id"], kind="stable", ignore_index=True)


def _check_treatments(df: pd.DataFrame, control: str, actions: Sequence[str], where: str) -> None:
    counts = df["treatment"].value_counts(sort=False)
    unknown = sorted(t for t in counts.index if t != control and t not in set(actions))
    if not unknown:
        return
    named = ", ".join(
        f"{t!r} ({int(counts[t]):,} row{'s' if counts[t] != 1 else ''})" for t in unknown[:5]
    )
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    verb = "is" if len(unknown) == 1 else "are"
    noun = "treatment" if len(unknown) == 1 else "treatments"
    raise InputError(
        f"{where}: {noun} {named}{more} {verb} neither the control arm {control!r} nor an "
        f"action of the policy ({', '.join(actions) or 'none'}); name the control arm with "
        "--control or add the action to the policy"
    )


def _check_single_arm(df: pd.DataFrame, where: str) -> None:
    keys = ["campaign_id", "customer_id", "ts"]
    arms = df.groupby(keys, sort=False)["treatment"].nunique()
    clash = arms[arms > 1]
    if not clash.empty:
        cid, send = clash.index[0][1], clash.index[0][2]
        raise InputError(
            f"{where}: {len(clash):,} sends put one customer in two arms, e.g. customer "
            f"{cid!r} at {send}; a send has one treatment per customer"
        )


def has_control(campaigns: pd.DataFrame, control: str = "control") -> bool:
    """Whether the log has any send in the control arm.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv._campaigns import has_control
    >>> has_control(pd.DataFrame({"treatment": ["control", "email"]}))
    True
    >>> has_control(pd.DataFrame({"treatment": ["email"]}), "holdout")
    False
    """
    return bool((campaigns["treatment"] == control).any())


def campaign_outcomes(
    campaigns: pd.DataFrame, transactions: pd.DataFrame, *, response_days: int
) -> pd.DataFrame:
    """The campaign log with each send's outcome in its response window.

    Parameters
    ----------
    campaigns : pandas.DataFrame
        A log as :func:`load_campaigns` returns it.
    transactions : pandas.DataFrame
        ``customer_id``, ``ts``, ``amount`` (negative = return).
    response_days : int
        Length of the response window ``(ts, ts + response_days]``.

    Returns
    -------
    pandas.DataFrame
        ``campaigns`` (same rows, same order) plus ``net_spend`` (float64: the
        sum of the amounts in the window, returns included) and ``responded``
        (bool: any purchase with a positive amount in the window).

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv._campaigns import campaign_outcomes
    >>> sends = pd.DataFrame(
    ...     {
    ...         "customer_id": ["A", "B"],
    ...         "ts": pd.to_datetime(["2024-03-01", "2024-03-01"]),
    ...         "treatment": ["control", "email"],
    ...         "campaign_id": ["c1", "c1"],
    ...     }
    ... )
    >>> tx = pd.DataFrame(
    ...     {
    ...         "customer_id": ["A", "B", "B"],
    ...         "ts": pd.to_datetime(["2024-03-01", "2024-03-05", "2024-03-09"]),
    ...         "amount": [50.0, 20.0, -5.0],
    ...     }
    ... )
    >>> campaign_outcomes(sends, tx, response_days=30)[["customer_id", "net_spend", "responded"]]
      customer_id  net_spend  responded
    0           A        0.0      False
    1           B       15.0       True
    """
    if isinstance(response_days, bool) or int(response_days) != response_days:
        raise InputError(f"response_days must be a whole number of days, got {response_days!r}")
    if response_days <= 0:
        raise InputError(f"response_days must be positive, got {response_days}")
    sends = pd.DataFrame(
        {
            "row": range(len(campaigns)),
            "customer_id": campaigns["customer_id"].astype("str").to_numpy(),
            "ts": campaigns["ts"].astype("datetime64[us]").to_numpy(),
        }
    )
    tx = pd.DataFrame(
        {
            "customer_id": transactions["customer_id"].astype("str").to_numpy(),
            "ts": transactions["ts"].astype("datetime64[us]").to_numpy(),
            "amount": transactions["amount"].astype("float64").to_numpy(),
        }
    )
    con = duckdb.connect()
    try:
        con.register("sends", sends)
        con.register("tx", tx)
        res = con.execute(
            f"""
            SELECT s.row,
                   coalesce(sum(t.amount), 0.0) AS net_spend,
                   coalesce(bool_or(t.amount > 0), false) AS responded
            FROM sends s
            LEFT JOIN tx t
              ON t.customer_id = s.customer_id
             AND t.ts > s.ts
             AND t.ts <= s.ts + INTERVAL {int(response_days)} DAY
            GROUP BY s.row
            ORDER BY s.row
            """
        ).df()
    finally:
        con.close()
    out = campaigns.reset_index(drop=True).copy()
    out["net_spend"] = res["net_spend"].astype("float64").round(6).to_numpy()
    out["responded"] = res["responded"].astype(bool).to_numpy()
    return out


def sends_in_window(
    campaigns: pd.DataFrame, *, as_of: pd.Timestamp | str, response_days: int
) -> tuple[pd.DataFrame, int]:
    """The sends whose response window ``(ts, ts + response_days]`` ends by ``as_of``.

    Returns
    -------
    (pandas.DataFrame, int)
        The kept sends (index reset) and how many were dropped.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv._campaigns import sends_in_window
    >>> log = pd.DataFrame({"ts": pd.to_datetime(["2024-01-01", "2024-01-20"])})
    >>> kept, dropped = sends_in_window(log, as_of="2024-01-31", response_days=30)
    >>> kept["ts"].dt.date.tolist(), dropped
    ([datetime.date(2024, 1, 1)], 1)
    """
    end = campaigns["ts"] + pd.Timedelta(days=int(response_days))
    keep = (end <= pd.Timestamp(as_of)).to_numpy()
    return campaigns.loc[keep].reset_index(drop=True), int((~keep).sum())
