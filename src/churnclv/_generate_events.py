"""Generated engagement events as a business names them, and satisfaction surveys.

:func:`finish_events` is the last step of :func:`churnclv.generate` for the
events table: it renames the six simulated event types (``login``,
``session``, ``page_view``, ``email_open``, ``support_ticket``,
``complaint``, in that order) to a business's own vocabulary, and adds
survey answers of one event type (e.g. ``nps``) with a 0-10 ``value``.

Surveys come from their own random stream (``seed``, 23), so every other
table is drawn exactly as without them. A customer answers (60% of customers
do) at a rate of one answer per 90 days while active: between the first
purchase and the last activity (purchase or event, future included). Scores
carry the signal a real NPS carries: each customer has a base score (normal,
mean 8, sd 1.3), and answers fall by up to 4.5 points as the customer nears
the end of their activity (``4.5 * exp(-days_left / 90)``), plus noise (sd
1.0), rounded and clipped to 0-10. Customers active until the end of the
simulated period (last activity within 45 days of its end) show no fall. The
truth oracle does not condition on survey answers (as on returns).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["EVENT_TYPES", "finish_events"]

#: The simulated event types, in the order ``event_vocabulary`` renames them.
EVENT_TYPES = ("login", "session", "page_view", "email_open", "support_ticket", "complaint")

_RESPONDERS = 0.6
_RATE = 1.0 / 90.0
_BASE_MEAN, _BASE_SD, _NOISE_SD = 8.0, 1.3, 1.0
_FALL, _FALL_DAYS = 4.5, 90.0
_CENSORED_DAYS = 45.0
_DAY = pd.Timedelta(days=1)


def _check(vocabulary: Sequence[str] | None, survey_type: str | None) -> list[str]:
    names = list(vocabulary) if vocabulary is not None else list(EVENT_TYPES)
    if len(names) != len(EVENT_TYPES) or len(set(names)) != len(names):
        raise ValueError(
            f"event_vocabulary must name {len(EVENT_TYPES)} distinct event types (for "
            f"{', '.join(EVENT_TYPES)}), got {names!r}"
        )
    for name in [*names, *([survey_type] if survey_type is not None else [])]:
        if not (name and name.isascii() and name.replace("_", "").isalnum() and name.islower()):
            raise ValueError(f"event type {name!r}: use lower-case letters, digits and '_'")
    if survey_type is not None and survey_type in names:
        raise ValueError(f"survey_type {survey_type!r} is also in event_vocabulary")
    return names


def finish_events(
    events: pd.DataFrame,
    transactions: pd.DataFrame,
    as_of: pd.Timestamp,
    seed: int,
    event_vocabulary: Sequence[str] | None = None,
    survey_type: str | None = None,
) -> pd.DataFrame:
    """``events`` renamed to ``event_vocabulary`` and with ``survey_type`` answers added.

    Parameters
    ----------
    events, transactions : pandas.DataFrame
        The simulated tables (rows before and after ``as_of``).
    as_of : pandas.Timestamp
        The generator's reference time.
    seed : int
        The generator's seed (the surveys use their own stream of it).
    event_vocabulary : sequence of str, optional
        Six names replacing ``login``, ``session``, ``page_view``,
        ``email_open``, ``support_ticket`` and ``complaint``, in that order.
    survey_type : str, optional
        The event type of survey answers (``value`` 0-10); none when omitted.

    Returns
    -------
    pandas.DataFrame
        The events, sorted by customer and time, with the same columns.

    Examples
    --------
    >>> from churnclv import generate
    >>> data = generate(200, seed=1, event_vocabulary=["app_open", "video_play", "screen_view",
    ...     "push_open", "ticket", "complaint"], survey_type="nps")
    >>> sorted(data.events["event_type"].unique())[:3]
    ['app_open', 'complaint', 'nps']
    >>> nps = data.events.loc[data.events["event_type"] == "nps", "value"]
    >>> bool(nps.between(0, 10).all()), bool((nps == nps.round()).all())
    (True, True)
    """
    names = _check(event_vocabulary, survey_type)
    if event_vocabulary is None and survey_type is None:
        return events
    out = events
    if event_vocabulary is not None:
        mapping = dict(zip(EVENT_TYPES, names, strict=True))
        out = out.assign(event_type=out["event_type"].map(mapping).astype(out["event_type"].dtype))
    if survey_type is not None:
        out = pd.concat([out, _surveys(events, transactions, as_of, seed, survey_type)])
        out = out.sort_values(["customer_id", "ts"], kind="stable", ignore_index=True)
    return out


def _surveys(
    events: pd.DataFrame,
    transactions: pd.DataFrame,
    as_of: pd.Timestamp,
    seed: int,
    survey_type: str,
) -> pd.DataFrame:
    """Survey answers of every responding customer while active (see the module)."""
    rng = np.random.default_rng([seed, 23])
    buys = transactions[transactions["amount"] > 0]
    first = buys.groupby("customer_id")["ts"].min()
    last = pd.concat([buys[["customer_id", "ts"]], events[["customer_id", "ts"]]])
    last = last.groupby("customer_id")["ts"].max().reindex(first.index)
    end = max(transactions["ts"].max(), events["ts"].max() if len(events) else as_of)
    ids = first.index.to_numpy()
    n = ids.size
    lo = ((first - as_of) / _DAY).to_numpy(float)
    hi = ((last - as_of) / _DAY).to_numpy(float)
    censored = ((end - last) / _DAY).to_numpy(float) <= _CENSORED_DAYS
    responder = rng.random(n) < _RESPONDERS
    base = rng.normal(_BASE_MEAN, _BASE_SD, n)
    dur = np.maximum(hi - lo, 0.0)
    count = rng.poisson(_RATE * dur) * responder
    idx = np.repeat(np.arange(n), count)
    t = lo[idx] + rng.random(idx.size) * dur[idx]
    fall = np.where(censored[idx], 0.0, _FALL * np.exp(-(hi[idx] - t) / _FALL_DAYS))
    score = np.clip(np.round(base[idx] - fall + rng.normal(0.0, _NOISE_SD, idx.size)), 0, 10)
    ts = np.datetime64(as_of.to_datetime64(), "us") + np.round(t * 86_400e6).astype(
        "timedelta64[us]"
    )
    return pd.DataFrame(
        {
            "customer_id": pd.array(ids[idx], dtype=events["customer_id"].dtype),
            "ts": ts.astype("datetime64[us]"),
            "event_type": pd.array([survey_type] * idx.size, dtype=events["event_type"].dtype),
            "value": score.astype(np.float64),
        }
    )
