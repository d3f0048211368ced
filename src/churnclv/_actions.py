"""Choosing actions: eligibility, the policy's gain formulas, the holdout, the choice.

Every way of valuing actions (the policy's assumed effects here, learned
uplift elsewhere) ends in :func:`choose_action`, so targeting restrictions and
the randomized holdout apply to all of them alike. Public through
:mod:`churnclv.decisions`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnclv._policy import Policy

__all__ = ["choose_action", "eligible", "holdout_mask", "policy_gains"]

#: Key of the holdout hash: changing it would redraw every holdout.
_HOLDOUT_KEY = b"churnclv-holdout-v1"
_TWO_64 = float(2**64)


def _restricted(values: Any, allowed: tuple[str, ...] | None, n: int) -> np.ndarray:
    """Which customers an optional restriction admits (all when ``allowed`` is None;
    none when the customers' values are unknown)."""
    if allowed is None:
        return np.ones(n, dtype=bool)
    if values is None:
        return np.zeros(n, dtype=bool)
    return np.isin(np.asarray(values, dtype=object), list(allowed))


def eligible(
    policy: Policy,
    segments: Any,
    tiers: Any,
    stages: Any,
    *,
    n: int | None = None,
) -> np.ndarray:
    """Which action of the policy may go to which customer.

    Parameters
    ----------
    policy : Policy
        Its actions' ``segments``, ``tiers`` and ``stages`` restrictions apply.
    segments, tiers, stages : array-like of str, or None
        Each customer's RFM segment, value tier and lifecycle stage. ``None``
        (not known, e.g. no value model) admits only actions without that
        restriction; so does a missing value for one customer.
    n : int, optional
        Number of customers, needed only when all three are ``None``.

    Returns
    -------
    numpy.ndarray
        Booleans of shape (customers, actions), columns in policy order.

    Examples
    --------
    >>> from churnclv.decisions import Action, Policy, eligible
    >>> policy = Policy(actions=(Action("email", 0.5, 0.03),
    ...                          Action("vip", 20.0, 0.2, tiers=("high",))))
    >>> eligible(policy, ["loyal", "lost"], ["high", "low"], ["active", "churned"])
    array([[ True,  True],
           [ True, False]])
    """
    known = next((x for x in (segments, tiers, stages) if x is not None), None)
    size = len(known) if known is not None else n
    if size is None:
        raise ValueError("eligible needs segments, tiers, stages or n")
    out = np.ones((size, len(policy.actions)), dtype=bool)
    for j, action in enumerate(policy.actions):
        out[:, j] = (
            _restricted(segments, action.segments, size)
            & _restricted(tiers, action.tiers, size)
            & _restricted(stages, action.stages, size)
        )
    return out


def _day(as_of: Any) -> str:
    """One as_of as its ISO date ("" for none)."""
    return "" if as_of is None or pd.isna(as_of) else pd.Timestamp(as_of).strftime("%Y-%m-%d")


def _days(as_of: Any, n: int) -> tuple[np.ndarray, list[str]]:
    """``as_of`` (one value or one per customer) as codes into a list of ISO dates."""
    if as_of is None or isinstance(as_of, str) or np.ndim(as_of) == 0:
        return np.zeros(n, dtype=int), [_day(as_of)]
    stamps = np.asarray(as_of).reshape(-1)
    if stamps.dtype.kind != "M":
        stamps = pd.to_datetime(pd.Series(stamps, dtype=object)).to_numpy()
    uniques, codes = np.unique(stamps.astype("datetime64[D]"), return_inverse=True)
    return codes.reshape(-1), ["" if np.isnat(u) else str(u) for u in uniques]


def holdout_mask(customer_ids: Sequence[Any] | np.ndarray, as_of: Any, share: float) -> np.ndarray:
    """The customers held out of every action at ``as_of``: a reproducible random share.

    A customer is held out when the keyed BLAKE2b hash (8 bytes) of
    ``"<as_of day>|<customer id>"``, read as a number in [0, 1), falls below
    ``share``. The same ids at the same day give the same mask in every process,
    batch and library version (batch scoring and the service agree); another
    day draws afresh.

    Parameters
    ----------
    customer_ids : sequence
        Customer ids (compared as strings).
    as_of : date-like, sequence of date-likes, or None
        The scoring cutoff, one for all or one per customer, at day resolution.
        ``None`` hashes an empty day.
    share : float
        Share held out, 0-1.

    Returns
    -------
    numpy.ndarray
        Booleans, one per customer.

    Examples
    --------
    >>> from churnclv.decisions import holdout_mask
    >>> ids = [f"C{i:05d}" for i in range(10_000)]
    >>> mask = holdout_mask(ids, "2024-01-01", 0.1)
    >>> float(round(mask.mean(), 2)), bool((mask == holdout_mask(ids, "2024-01-01", 0.1)).all())
    (0.1, True)
    >>> bool((mask == holdout_mask(ids, "2024-02-01", 0.1)).all())
    False
    """
    ids = np.asarray(customer_ids, dtype=object).reshape(-1).tolist()
    if share <= 0 or not ids:
        return np.zeros(len(ids), dtype=bool)
    codes, days = _days(as_of, len(ids))
    blake = hashlib.blake2b
    digests = b"".join(
        blake(f"{days[d]}|{c}".encode(), digest_size=8, key=_HOLDOUT_KEY).digest()
        for d, c in zip(codes.tolist(), ids, strict=True)
    )
    u = np.frombuffer(digests, dtype=">u8").astype(np.float64) / _TWO_64
    return u < share


def policy_gains(
    policy: Policy, churn_probability: Any, predicted_value: Any, segments: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Each action's expected net gain and expected gross value by the policy's assumptions.

    Retention: gross = P(churn) x value x uplift (the segment's uplift; an
    uplift of 0 makes the action unavailable, gain ``-inf``). Growth: gross =
    (1 - P(churn)) x value x value_lift. Gain = gross - cost. Negative
    predicted values count as 0. Returns two arrays of shape (customers, actions).
    """
    p = np.asarray(churn_probability, dtype=float)
    v = np.clip(np.asarray(predicted_value, dtype=float), 0, None)
    segs = np.asarray(segments, dtype=object)
    gross = np.zeros((len(p), len(policy.actions)))
    gain = np.zeros_like(gross)
    for j, action in enumerate(policy.actions):
        if action.goal == "growth":
            gross[:, j] = (1 - p) * v * action.value_lift
            gain[:, j] = gross[:, j] - action.cost
        else:
            uplift = action.uplift_for(segs)
            gross[:, j] = p * v * uplift
            gain[:, j] = np.where(uplift > 0, gross[:, j] - action.cost, -np.inf)
    return gain, gross


def _choose_index(
    gain: np.ndarray, allowed: np.ndarray, holdout: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the best positive allowed gain per row (-1 = none) and that gain (0 for none);
    ties go to the first action."""
    gain = np.asarray(gain, dtype=float)
    n = gain.shape[0]
    if gain.shape[1] == 0:
        return np.full(n, -1), np.zeros(n)
    masked = np.where(np.asarray(allowed, dtype=bool) & (gain > 0), gain, -np.inf)
    idx = np.argmax(masked, axis=1)
    best = masked[np.arange(n), idx]
    none = ~np.isfinite(best)
    if holdout is not None:
        none |= np.asarray(holdout, dtype=bool)
    return np.where(none, -1, idx), np.where(none, 0.0, best)


def choose_action(
    gain: np.ndarray,
    eligible: np.ndarray,
    holdout: np.ndarray | None,
    names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    """The action with the best positive eligible gain per customer, else ``none``.

    Parameters
    ----------
    gain : numpy.ndarray
        Expected net gain per customer and action, shape (customers, actions);
        NaN counts as not paying.
    eligible : numpy.ndarray
        Booleans of the same shape (:func:`eligible`).
    holdout : numpy.ndarray or None
        Held-out customers (:func:`holdout_mask`) get ``none``.
    names : sequence of str
        The actions' names, in column order.

    Returns
    -------
    tuple of numpy.ndarray
        The chosen action names (``none`` where nothing pays, nothing is
        eligible, or the customer is held out; ties go to the first action)
        and their gain (0 for ``none``).

    Examples
    --------
    >>> import numpy as np
    >>> from churnclv.decisions import choose_action
    >>> gain = np.array([[2.0, 5.0], [2.0, 5.0], [-1.0, -2.0], [2.0, 5.0]])
    >>> ok = np.array([[True, True], [True, False], [True, True], [True, True]])
    >>> held = np.array([False, False, False, True])
    >>> actions, best = choose_action(gain, ok, held, ["email", "call"])
    >>> actions.tolist(), best.tolist()
    (['call', 'email', 'none', 'none'], [5.0, 2.0, 0.0, 0.0])
    """
    idx, best = _choose_index(gain, eligible, holdout)
    labels = np.array([*names, "none"], dtype=object)
    return labels[idx].astype(str), best
