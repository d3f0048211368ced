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


def _days(as_of: Any, n: int) -> tuple[np.ndarray, list[str]]:
    """``as_of`` (one value or one per customer) as codes into a list of ISO dates ("" for
    none)."""
    if as_of is None or isinstance(as_of, str) or np.ndim(as_of) == 0:
        day = "" if as_of is None or pd.isna(as_of) else pd.Timestamp(as_of).strftime("%Y-%m-%d")
        return np.zeros(n, dtype=int), [day]
    codes, uniques = pd.factorize(pd.Series(np.asarray(as_of, dtype=object)), use_na_sentinel=True)
    days = [pd.Timestamp(u).strftime("%Y-%m-%d") for u in uniques]
    return np.where(codes < 0, len(days), codes), [*days, ""]


def holdout_mask(customer_ids: Sequence[Any] | np.ndarray, as_of: Any, share: float) -> np.ndarray:
    """The customers held out of every action at ``as_of``: a reproducible random share.

    Each id (as a string) is hashed with SipHash-2-4 (:func:`pandas.util.hash_array`)
    keyed by a BLAKE2b digest of the ``as_of`` day; a customer is held out when
    the hash, read as a number in [0, 1), falls below ``share``. The same ids at
    the same day give the same mask in every process and batch (batch scoring
    and the service agree); another day draws afresh.

    Parameters
    ----------
    customer_ids : sequence
        Customer ids.
    as_of : date-like, sequence of date-likes, or None
        The scoring cutoff, one for all or one per customer, at day resolution.
        ``None`` keys the hash with no day.
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
    ids = np.asarray(customer_ids, dtype=object).reshape(-1)
    if pd.api.types.infer_dtype(ids, skipna=False) not in ("string", "empty"):
        ids = np.array([str(c) for c in ids], dtype=object)
    out = np.zeros(len(ids), dtype=bool)
    if share <= 0 or not len(ids):
        return out
    codes, days = _days(as_of, len(ids))
    for code, day in enumerate(days):
        rows = codes == code
        if not rows.any():
            continue
        key = hashlib.blake2b(day.encode(), digest_size=8, key=_HOLDOUT_KEY).hexdigest()
        h = pd.util.hash_array(ids[rows], hash_key=key, categorize=False)
        out[rows] = h.astype(np.float64) / _TWO_64 < share
    return out


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
