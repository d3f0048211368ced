"""The event vocabulary: which event types get their own features, chosen from the data.

Training picks the event types of its window (:func:`select_event_types`): the
``top_k`` most frequent plus any named ones, and among them the *valued* types,
whose ``value`` is not all null. The pair is frozen with the trained models
(their ``event_vocabulary_`` record, ``schema.json``), so batch scoring, the
Python API and the service compute exactly the columns the models were fitted
on (:func:`model_vocabulary`); event types unseen in training count only in
the totals (``events_30d``, ...). A model saved without a vocabulary uses
:data:`~churnclv.features._sql_events.DEFAULT_EVENT_TYPES` and no values.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnclv._errors import InputError
from churnclv.features._sql_events import DEFAULT_EVENT_TYPES

__all__ = [
    "DEFAULT_TOP_K",
    "SURVEY_EVENT_TYPES",
    "Vocabulary",
    "choose_event_types",
    "model_vocabulary",
    "select_event_types",
    "split_vocabulary",
    "vocabulary_record",
    "with_value_column",
]

#: Event types with their own features when training picks them from the data.
DEFAULT_TOP_K = 8
#: Satisfaction survey types (the default policy's) chosen whenever the window holds them.
SURVEY_EVENT_TYPES: tuple[str, ...] = ("nps", "satisfaction")

#: (event types, valued event types).
Vocabulary = tuple[tuple[str, ...], tuple[str, ...]]


def _usable(name: str) -> bool:
    """Whether an event type can name feature columns (ASCII letters, digits and ``_``)."""
    return bool(name) and name.isascii() and name.replace("_", "").isalnum()


def _check_name(name: str) -> str:
    if not _usable(name):
        raise InputError(
            f"event type {name!r} cannot name a feature column: use letters, digits and '_'"
        )
    return name


def select_event_types(
    events: pd.DataFrame | None,
    as_of: pd.Timestamp | str,
    *,
    top_k: int = DEFAULT_TOP_K,
    named: Iterable[str] = (),
) -> Vocabulary:
    """The event types a training gives their own features, chosen from its window.

    Parameters
    ----------
    events : pandas.DataFrame or None
        ``customer_id``, ``ts``, ``event_type`` and optionally ``value``;
        only rows with ``ts < as_of`` are read.
    as_of : timestamp or str
        The training date.
    top_k : int, default 8
        How many of the most frequent event types are chosen (ties broken by
        name).
    named : iterable of str
        Event types chosen whether frequent or not (even when absent: their
        columns are then zero or null).

    Returns
    -------
    tuple of (tuple of str, tuple of str)
        The event types (the named ones first, in the given order, then the
        survey types ``nps`` and ``satisfaction`` when the window holds them,
        then the ``top_k`` most frequent others, most frequent first) and,
        among them, the valued ones: types with at least one non-null
        ``value`` before ``as_of``. Types that cannot name a column (other
        than ASCII letters, digits and ``_``) are never chosen from the data;
        they count in the totals.

    Raises
    ------
    InputError
        A negative ``top_k``, or a named event type that cannot name a column.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv.features import select_event_types
    >>> events = pd.DataFrame({
    ...     "customer_id": ["a", "a", "b", "b", "b"],
    ...     "ts": pd.to_datetime(["2024-01-02"] * 4 + ["2024-03-01"]),
    ...     "event_type": ["app_open", "app_open", "nps", "video_play", "refund"],
    ...     "value": [None, None, 9.0, None, None],
    ... })
    >>> select_event_types(events, "2024-02-01", top_k=1, named=["nps"])
    (('nps', 'app_open'), ('nps',))
    """
    if events is None or events.empty:
        return choose_event_types({}, (), top_k=top_k, named=named)
    past = events[events["ts"] < pd.Timestamp(as_of)]
    counts = past["event_type"].astype(str).value_counts()
    seen: set[str] = set()
    if "value" in past.columns:
        values = pd.to_numeric(past["value"], errors="coerce")
        seen = set(past.loc[values.notna().to_numpy(), "event_type"].astype(str))
    return choose_event_types(counts.to_dict(), seen, top_k=top_k, named=named)


def choose_event_types(
    counts: Mapping[str, int],
    with_values: Collection[str],
    *,
    top_k: int = DEFAULT_TOP_K,
    named: Iterable[str] = (),
) -> Vocabulary:
    """:func:`select_event_types` from the window's counts per event type and the types
    with a value (an engine computes those two; the choice is made here)."""
    if top_k < 0:
        raise InputError(f"--event-top-k must be 0 or more, got {top_k}")
    chosen = list(dict.fromkeys(_check_name(str(n).strip().lower()) for n in named))
    chosen += [t for t in SURVEY_EVENT_TYPES if t in counts and t not in chosen]
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ranked = [(name, n) for name, n in ranked if _usable(name) and name not in chosen]
    chosen += [name for name, _n in ranked[:top_k]]
    return tuple(chosen), tuple(t for t in chosen if t in with_values)


def split_vocabulary(
    event_types: Sequence[str] | tuple[Sequence[str], Sequence[str]],
) -> tuple[list[str], list[str]]:
    """``(event types, valued types)`` of a list of types or of such a pair."""
    if len(event_types) == 2 and not isinstance(event_types[0], str):
        types, valued = event_types
        return list(types), list(valued)
    return [str(t) for t in event_types], []


def with_value_column(events: Any, valued: Sequence[str]) -> Any:
    """``events`` with a ``value`` column (all null) where value features need one."""
    if events is None or not valued:
        return events
    if isinstance(events, pd.DataFrame):
        return events if "value" in events.columns else events.assign(value=np.nan)
    from churnclv._io_scan import Scan
    from churnclv.features._inputs import parquet_columns

    if isinstance(events, Scan):
        return events.with_null("value")

    if "value" in parquet_columns(events, "events"):
        return events
    return pd.read_parquet(os.fspath(events)).assign(value=np.nan)


def vocabulary_record(vocabulary: Vocabulary) -> dict[str, list[str]]:
    """The ``event_vocabulary`` a model records (``schema.json``)."""
    return {"event_types": list(vocabulary[0]), "valued_event_types": list(vocabulary[1])}


def model_vocabulary(*models: Any) -> Vocabulary:
    """The event vocabulary scoring computes for ``models`` (None entries are skipped).

    The union, in order, of each model's recorded vocabulary; a model without
    one (saved before vocabularies were recorded, or an uplift model) adds the
    default types without values. No model at all: the default types.

    Examples
    --------
    >>> model_vocabulary(None)[0][:2], model_vocabulary(None)[1]
    (('login', 'session'), ())
    """
    types: dict[str, None] = {}
    valued: dict[str, None] = {}
    for model in models:
        if model is None:
            continue
        record = getattr(model, "event_vocabulary_", None)
        if record:
            types.update(dict.fromkeys(record["event_types"]))
            valued.update(dict.fromkeys(record.get("valued_event_types", ())))
        else:
            types.update(dict.fromkeys(DEFAULT_EVENT_TYPES))
    if not types and not valued:
        return DEFAULT_EVENT_TYPES, ()
    return tuple(types), tuple(valued)
