"""Synthetic customer population with exact ground truth.

Every customer follows a hidden continuous-time Markov chain with three states,
``E`` (engaged), ``F`` (fading) and ``D`` (dead). Purchases and engagement
events are Poisson processes whose rates depend on the state, so the exact
posterior probability that a customer is still alive at ``as_of`` (given the
customer's latent rates and observed activity) can be computed by forward
filtering. That oracle is stored in the ``truth`` table next to realised labels,
so fitted models can be compared against the best possible predictor.

Time is in days relative to ``as_of`` (negative = history).

The module is over ~500 lines on purpose: the hidden process, the sampled
histories and the exact truth computed from them are one model, and keeping
them together keeps the truth provably consistent with what was sampled.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnclv import _generate_campaigns as gc
from churnclv import _generate_events as ge
from churnclv._generate_breadth import CATEGORIES, order_categories
from churnclv._generate_drift import drift as _drift
from churnclv._generate_maths import US_PER_DAY, int_exp, int_phi, phi, to_us, two_state_flow

__all__ = ["SyntheticData", "generate", "write"]

_PLANS = np.array(["basic", "plus", "premium"])
_PLAN_P = np.array([0.6, 0.3, 0.1])
_PLAN_RATE = np.array([1.0, 1.3, 1.8])
_PLAN_SPEND = np.array([1.0, 1.2, 1.6])
_PLAN_HAZARD = np.array([1.0, 0.8, 0.6])

_REGIONS = np.array(["north", "south", "east", "west"])
_REGION_SPEND = np.array([1.0, 0.9, 1.1, 1.05])

_ACQ = np.array(["organic", "paid_search", "social", "referral"])
_ACQ_P = np.array([0.4, 0.25, 0.2, 0.15])
_ACQ_HAZARD = np.array([1.0, 1.4, 1.7, 0.7])
_ACQ_P0 = np.array([1.0, 1.2, 1.4, 0.7])

_CHANNELS = np.array(["web", "app", "store"])
_CHANNEL_ALPHA = np.array([1.0, 1.0, 0.6])

_EVENT_TYPES = np.array(
    ["login", "session", "page_view", "email_open", "support_ticket", "complaint"]
)
_EVENT_RATE_E = np.array([0.04, 0.05, 0.03, 0.03, 0.003, 0.002])
_EVENT_F_MULT = np.array([0.5, 0.5, 0.5, 0.6, 2.0, 3.0])
_COMPLAINT = 5  # index of "complaint" in _EVENT_TYPES

_F_PURCHASE_MULT = 0.4
_COMPLAINT_PUSH = 0.3  # probability that a complaint in E moves the customer to F
_LAMBDA_SHAPE, _LAMBDA_MEAN = 0.7, 1.0 / 30.0
_MU_SHAPE, _MU_MEAN = 0.8, 1.0 / 400.0
_NU_MEAN, _NU_SHAPE = 1.0 / 60.0, 25.0
_P0_MEAN, _P0_CONCENTRATION = 0.35, 8.0
_MOV_MEDIAN, _MOV_SIGMA, _ORDER_SHAPE = 40.0, 0.9, 6.0
_RETURN_PROB = 0.04
_RETURN_FRAC = (0.2, 1.0)
_RETURN_DELAY = (1.0, 20.0)
_NET_FACTOR = 1.0 - _RETURN_PROB * 0.5 * (_RETURN_FRAC[0] + _RETURN_FRAC[1])
_HORIZONS = (90, 365)


@dataclass(frozen=True)
class SyntheticData:
    """A generated population.

    Attributes
    ----------
    transactions : pandas.DataFrame
        ``customer_id``, ``ts`` (datetime64[us]), ``amount`` (negative = return),
        ``order_id`` (a return carries the id of the order it refunds),
        ``channel`` (``web``/``app``/``store``) and ``category`` (the order's;
        loyal customers buy from more categories, see
        :mod:`churnclv._generate_breadth`). Rows before and after ``as_of``.
    events : pandas.DataFrame
        ``customer_id``, ``ts``, ``event_type`` and ``value`` (session minutes,
        pages viewed, NaN otherwise).
    customers : pandas.DataFrame
        ``customer_id``, ``signup_ts``, ``plan``, ``region``, ``acquisition_channel``.
    truth : pandas.DataFrame
        One row per customer with the hidden state at ``as_of``, the oracle
        predictions and the realised outcomes; see :func:`generate`.
    as_of : pandas.Timestamp
        The reference time separating history from the future.
    campaigns : pandas.DataFrame or None
        The campaign log (``customer_id``, ``ts``, ``treatment``, ``campaign_id``:
        one row per send, randomized arms ``control`` and one per action), or
        ``None`` when generated without campaigns.
    campaign_truth : pandas.DataFrame or None
        ``campaign_id``, ``customer_id``, ``ts``, ``treatment`` and the true
        ``effect_<action>`` of every action for each send (see :func:`generate`).

    Examples
    --------
    >>> from churnclv import InputTables, generate
    >>> data = generate(20, seed=1, history_days=200, future_days=30)
    >>> data.as_of
    Timestamp('2024-01-01 00:00:00')
    >>> list(data.customers.columns)
    ['customer_id', 'signup_ts', 'plan', 'region', 'acquisition_channel']
    >>> tables = InputTables(data.transactions, data.events, data.customers)
    >>> bool((tables.transactions["ts"] < data.as_of).any())
    True
    """

    transactions: pd.DataFrame
    events: pd.DataFrame
    customers: pd.DataFrame
    truth: pd.DataFrame
    as_of: pd.Timestamp
    campaigns: pd.DataFrame | None = None
    campaign_truth: pd.DataFrame | None = None


# ---------------------------------------------------------------------- simulation


def _poisson_times(
    rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, rate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a Poisson process of the given rate on each interval ``[lo, hi]``."""
    dur = np.maximum(hi - lo, 0.0)
    cnt = rng.poisson(rate * dur)
    idx = np.repeat(np.arange(lo.size), cnt)
    t = lo[idx] + rng.random(idx.size) * dur[idx]
    return idx, t


def _labels(labels: np.ndarray, codes: np.ndarray) -> pd.Series:
    """Map integer codes to a ``str`` Series quickly (via Arrow)."""
    arr = pa.array(labels.tolist(), type=pa.string()).take(pa.array(codes, type=pa.int64()))
    return arr.to_pandas()


def _timestamps(as_of: pd.Timestamp, t_us: np.ndarray) -> np.ndarray:
    return np.datetime64(as_of.to_datetime64(), "us") + t_us.astype("timedelta64[us]")


def _validate(n_customers: int, history_days: int, future_days: int) -> None:
    for name, value in (
        ("n_customers", n_customers),
        ("history_days", history_days),
        ("future_days", future_days),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, got {n_customers}")
    if history_days <= 0:
        raise ValueError(f"history_days must be > 0, got {history_days}")
    if future_days < 0:
        raise ValueError(f"future_days must be >= 0, got {future_days}")


def generate(
    n_customers: int,
    *,
    seed: int = 0,
    as_of: str | pd.Timestamp = "2024-01-01",
    history_days: int = 900,
    future_days: int = 365,
    drift_at: int | str | pd.Timestamp | None = None,
    campaigns: bool = True,
    uplift: str = "heterogeneous",
    event_vocabulary: Any = None,
    survey_type: str | None = None,
) -> SyntheticData:
    """Generate a synthetic customer population with exact ground truth.

    Each customer is born (first purchase) uniformly-ish in
    ``[as_of - history_days, as_of)`` with a bias toward later dates, then moves
    through the hidden states E -> F -> D. Purchases, returns and engagement
    events are simulated until ``as_of + future_days``.

    Parameters
    ----------
    n_customers : int
        Number of customers, at least 1.
    seed : int, default 0
        Seed for :func:`numpy.random.default_rng`; equal seeds give identical data.
    as_of : str or pandas.Timestamp, default "2024-01-01"
        Naive reference timestamp.
    history_days : int, default 900
        Length of the acquisition window before ``as_of`` (> 0).
    future_days : int, default 365
        Length of the simulated future after ``as_of`` (>= 0).
    drift_at : int, str or pandas.Timestamp, optional
        A change of the process for monitoring tests: from this date (or this
        many days before ``as_of``) on, each engagement event and each order
        (with its returns) is kept with probability 0.3 and every amount is 1.5
        times larger. The rest of the data is drawn exactly as without drift;
        ``truth`` ignores the drift.
    campaigns : bool, default True
        Also send four randomized past campaigns (170, 125, 80 and 35 days
        before ``as_of``, each to 40% of the customers with a purchase before it,
        arms ``control`` and each action of the shipped policy), whose effects
        are in the transactions; see :mod:`churnclv._generate_campaigns`.
    uplift : {"heterogeneous", "uniform", "none"}, default "heterogeneous"
        The true campaign effects: per customer (``discount_coupon`` hurts loyal
        frequent buyers, ``upgrade_offer`` grows engaged medium and low
        spenders), the same for everyone per action, or none.
    event_vocabulary, survey_type : sequence of str and str, optional
        Six names for the event types, and a survey type with 0-10 values
        (:func:`churnclv._generate_events.finish_events`).

    Returns
    -------
    SyntheticData
        The four tables, ``as_of`` and the campaigns. ``truth`` holds per customer:
        ``alive``/``state`` (hidden state at ``as_of``); ``p_alive`` (exact
        posterior P(not dead at as_of) given the latent rates and all purchases
        and events strictly before ``as_of`` - return rows are deliberately not
        conditioned on, which keeps the oracle exact for that information set);
        ``p_no_purchase_90`` and ``expected_purchases_{90,365}`` (exact, from the
        posterior state distribution, with future E->F hazard
        ``mu + c * kappa_E * e``); ``expected_value_{90,365}`` (approximation:
        expected purchases x mean order value x ``(1 - 0.04 * 0.6)``, i.e. it
        ignores that returns may fall outside the window or after death);
        ``actual_*`` realised counts / net value (returns included) in
        ``(as_of, as_of + min(h, future_days)]`` - horizons beyond
        ``future_days`` are therefore censored; ``churned_90``; and the latent
        ``lambda`` (purchase rate per day in E), ``mu`` (silent E->F hazard),
        ``p0`` and ``mean_order_value``; ``effect_<action>``: the expected
        incremental net spend in the 30 days after a send of that action at
        ``as_of``, given the hidden state then. Campaign-induced purchases are
        not conditioned on by the oracle (like returns); their windows end
        before ``as_of`` (only a discounted order returned after ``as_of`` is
        refunded at its discounted price in ``actual_value_*``).

    Raises
    ------
    ValueError
        If an argument is out of range or ``as_of`` is timezone-aware.

    Examples
    --------
    >>> from churnclv import generate
    >>> data = generate(50, seed=1, history_days=200, future_days=30)
    >>> len(data.customers), list(data.transactions.columns)
    (50, ['customer_id', 'ts', 'amount', 'order_id', 'channel', 'category'])
    >>> data.truth[["customer_id", "p_alive"]].round(3).head(3)
      customer_id  p_alive
    0     C000001    0.915
    1     C000002    0.954
    2     C000003    0.407
    >>> generate(50, seed=1, history_days=200, future_days=30).truth.equals(data.truth)
    True
    """
    _validate(n_customers, history_days, future_days)
    if uplift not in gc.UPLIFTS:
        raise ValueError(f"uplift must be one of {', '.join(gc.UPLIFTS)}, got {uplift!r}")
    as_of_ts = pd.Timestamp(as_of)
    if as_of_ts.tzinfo is not None:
        raise ValueError(f"as_of must be a naive timestamp, got {as_of_ts}")
    as_of_ts = as_of_ts.as_unit("us")

    rng = np.random.default_rng(seed)
    n = int(n_customers)
    hist = float(history_days)
    end = float(future_days)
    c = _COMPLAINT_PUSH

    # ---- static attributes and latent rates
    birth = -hist * (1.0 - rng.beta(1.3, 1.0, n))
    birth = np.minimum(birth, -1.0 / 86_400.0)
    birth = to_us(birth) / US_PER_DAY
    signup = birth - rng.exponential(3.0, n)
    plan = rng.choice(3, n, p=_PLAN_P)
    region = rng.integers(0, 4, n)
    acq = rng.choice(4, n, p=_ACQ_P)
    lam = rng.gamma(_LAMBDA_SHAPE, _LAMBDA_MEAN / _LAMBDA_SHAPE, n) * _PLAN_RATE[plan]
    mu = rng.gamma(_MU_SHAPE, _MU_MEAN / _MU_SHAPE, n) * _PLAN_HAZARD[plan] * _ACQ_HAZARD[acq]
    nu = _NU_MEAN * rng.gamma(_NU_SHAPE, 1.0 / _NU_SHAPE, n)
    p0_mean = np.clip(_P0_MEAN * _ACQ_P0[acq], 0.02, 0.95)
    p0 = rng.beta(p0_mean * _P0_CONCENTRATION, (1.0 - p0_mean) * _P0_CONCENTRATION)
    p0 = np.clip(p0, 0.02, 0.95)
    eng = rng.gamma(0.6, 1.0 / 0.6, n)  # many customers barely engage: realism
    mov = (
        _MOV_MEDIAN
        * np.exp(_MOV_SIGMA * rng.standard_normal(n))
        * _PLAN_SPEND[plan]
        * _REGION_SPEND[region]
    )
    chan_pref = rng.dirichlet(_CHANNEL_ALPHA, n)

    rate_e = _EVENT_RATE_E[None, :] * eng[:, None]  # (n, 6)
    rate_f = rate_e * _EVENT_F_MULT[None, :]
    lam_f = _F_PURCHASE_MULT * lam
    push = c * rate_e[:, _COMPLAINT]
    exit_e = mu + push

    # ---- hidden path
    start_f = rng.random(n) < p0
    t_ef = birth + np.where(start_f, 0.0, rng.exponential(1.0, n) / exit_e)
    pushed = ~start_f & (rng.random(n) < push / exit_e)
    death = t_ef + rng.exponential(1.0, n) / nu
    e_hi = np.minimum(t_ef, end)
    f_lo = e_hi
    f_hi = np.minimum(death, end)

    # ---- purchases
    pi_e, pt_e = _poisson_times(rng, birth, e_hi, lam)
    pi_f, pt_f = _poisson_times(rng, f_lo, f_hi, lam_f)
    p_idx = np.concatenate([np.arange(n), pi_e, pi_f])
    p_us = np.concatenate([to_us(birth), to_us(pt_e), to_us(pt_f)])
    order = np.lexsort((p_us, p_idx))
    p_idx, p_us = p_idx[order], p_us[order]
    n_p = p_idx.size
    p_amount = np.maximum(np.round(rng.gamma(_ORDER_SHAPE, mov[p_idx] / _ORDER_SHAPE), 2), 0.01)
    cum = np.cumsum(chan_pref[p_idx], axis=1)
    p_chan = np.minimum((rng.random(n_p)[:, None] > cum).sum(axis=1), 2)

    # ---- returns
    is_ret = rng.random(n_p) < _RETURN_PROB
    delay = rng.uniform(*_RETURN_DELAY, n_p)
    frac = rng.uniform(*_RETURN_FRAC, n_p)
    r_days = p_us / US_PER_DAY + delay
    keep = is_ret & (r_days < death[p_idx]) & (r_days <= end)
    r_src = np.flatnonzero(keep)
    r_us = to_us(r_days[r_src])
    r_amount = -np.maximum(np.round(frac[r_src] * p_amount[r_src], 2), 0.01)

    # ---- events
    ev_idx_parts, ev_t_parts, ev_k_parts = [], [], []
    for k in range(_EVENT_TYPES.size):
        re = rate_e[:, k] * ((1.0 - c) if k == _COMPLAINT else 1.0)
        for lo, hi, rate in ((birth, e_hi, re), (f_lo, f_hi, rate_f[:, k])):
            idx, t = _poisson_times(rng, lo, hi, rate)
            ev_idx_parts.append(idx)
            ev_t_parts.append(t)
            ev_k_parts.append(np.full(idx.size, k, dtype=np.int64))
    push_idx = np.flatnonzero(pushed & (t_ef <= end))
    ev_idx_parts.append(push_idx)
    ev_t_parts.append(t_ef[push_idx])
    ev_k_parts.append(np.full(push_idx.size, _COMPLAINT, dtype=np.int64))
    ev_idx = np.concatenate(ev_idx_parts)
    ev_us = to_us(np.concatenate(ev_t_parts))
    ev_k = np.concatenate(ev_k_parts)
    order = np.lexsort((ev_k, ev_us, ev_idx))
    ev_idx, ev_us, ev_k = ev_idx[order], ev_us[order], ev_k[order]
    n_ev = ev_idx.size
    session_min = np.round(rng.lognormal(np.log(8.0), 0.7, n_ev), 2)
    pages = 1.0 + rng.poisson(3.0, n_ev)
    ev_value = np.where(ev_k == 1, session_min, np.where(ev_k == 2, pages, np.nan))

    # ---- campaigns: their own random stream, so the rest is drawn as without them
    pop = gc.Population(
        birth, t_ef, death, lam, lam_f, exit_e, nu, mov, eng, chan_pref, _ORDER_SHAPE
    )
    sim = None
    if campaigns:
        rng_c = np.random.default_rng([seed, 17])
        sim = gc.simulate(rng_c, pop, p_idx, p_us, p_amount, r_src, r_amount, uplift)
        p_amount, r_amount = sim.p_amount, sim.r_amount
    x_idx, x_us, x_amount, x_chan = (
        (sim.x_idx, sim.x_us, sim.x_amount, sim.x_chan)
        if sim is not None
        else (np.zeros(0, np.int64),) * 4
    )
    n_x = x_idx.size

    # ---- tables
    width = max(6, len(str(n)))
    cust_labels = np.array([f"C{i + 1:0{width}d}" for i in range(n)])
    owidth = max(8, len(str(n_p + n_x)))
    order_ids = pd.Series(np.arange(1, n_p + n_x + 1)).astype("str").str.zfill(owidth)
    order_ids = ("O" + order_ids).to_numpy()

    t_idx = np.concatenate([p_idx, p_idx[r_src], x_idx])
    t_us = np.concatenate([p_us, r_us, x_us])
    t_amount = np.concatenate([p_amount, r_amount, x_amount])
    t_order = np.concatenate([np.arange(n_p), r_src, n_p + np.arange(n_x)])
    t_chan = np.concatenate([p_chan, p_chan[r_src], x_chan])
    o_cat = order_categories(seed, mu, _MU_MEAN, np.concatenate([p_idx, x_idx]))
    t_kind = np.concatenate(
        [np.zeros(n_p, np.int64), np.ones(r_src.size, np.int64), np.zeros(n_x, np.int64)]
    )
    order = np.lexsort((t_order, t_kind, t_us, t_idx))
    t_idx, t_us, t_amount = t_idx[order], t_us[order], t_amount[order]
    t_order, t_chan, t_kind = t_order[order], t_chan[order], t_kind[order]

    transactions = pd.DataFrame(
        {
            "customer_id": _labels(cust_labels, t_idx),
            "ts": _timestamps(as_of_ts, t_us),
            "amount": t_amount.astype(np.float64),
            "order_id": _labels(order_ids, t_order),
            "channel": _labels(_CHANNELS, t_chan),
            "category": _labels(CATEGORIES, o_cat[t_order]),
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": _labels(cust_labels, ev_idx),
            "ts": _timestamps(as_of_ts, ev_us),
            "event_type": _labels(_EVENT_TYPES, ev_k),
            "value": ev_value.astype(np.float64),
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": _labels(cust_labels, np.arange(n)),
            "signup_ts": _timestamps(as_of_ts, to_us(signup)),
            "plan": _labels(_PLANS, plan),
            "region": _labels(_REGIONS, region),
            "acquisition_channel": _labels(_ACQ, acq),
        }
    )

    # ---- oracle: forward filter over observed activity strictly before as_of
    first_mask = np.zeros(n_p, dtype=bool)
    first_pos = np.searchsorted(p_idx, np.arange(n))
    first_mask[first_pos] = True  # the birth purchase is the earliest of its customer
    pmask = (~first_mask) & (p_us < 0)
    emask = ev_us < 0
    a_idx = np.concatenate([p_idx[pmask], ev_idx[emask]])
    a_t = np.concatenate([p_us[pmask], ev_us[emask]]) / US_PER_DAY
    a_k = np.concatenate([np.zeros(int(pmask.sum()), np.int64), ev_k[emask] + 1])
    order = np.lexsort((a_k, a_t, a_idx))
    a_idx, a_t, a_k = a_idx[order], a_t[order], a_k[order]

    inten_e = np.column_stack([lam, rate_e])  # (n, 7): purchase then events
    inten_f = np.column_stack([lam_f, rate_f])
    diag_e = -(mu + inten_e.sum(axis=1))
    diag_f = -(nu + inten_f.sum(axis=1))

    mass_e = 1.0 - p0
    mass_f = p0.copy()
    t_prev = birth.copy()
    counts = np.bincount(a_idx, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    by_count = np.argsort(-counts, kind="stable")
    sorted_counts = counts[by_count]
    max_count = int(sorted_counts[0]) if n else 0
    for k in range(max_count):
        n_active = int(np.searchsorted(-sorted_counts, -k, side="left"))
        active = by_count[:n_active]
        rows = starts[active] + k
        dt = a_t[rows] - t_prev[active]
        ae, be = diag_e[active], diag_f[active]
        hi = np.maximum(ae, be)
        # evolve, dropping the common factor exp(hi * dt) (we renormalise anyway)
        pe, pf = mass_e[active], mass_f[active]
        new_e = pe * np.exp((ae - hi) * dt)
        new_f = pe * mu[active] * phi(ae - hi, be - hi, dt) + pf * np.exp((be - hi) * dt)
        kind = a_k[rows]
        new_e = new_e * inten_e[active, kind]
        new_f = new_f * inten_f[active, kind]
        is_c = kind == _COMPLAINT + 1
        moved = np.where(is_c, c * new_e, 0.0)
        new_e = new_e - moved
        new_f = new_f + moved
        tot = new_e + new_f
        mass_e[active] = new_e / tot
        mass_f[active] = new_f / tot
        t_prev[active] = a_t[rows]

    dt = -t_prev
    al_e, al_f, al_d = two_state_flow(mass_e, mass_f, diag_e, diag_f, mu, nu, dt)
    total = al_e + al_f + al_d
    total = np.where(total > 0, total, 1.0)
    post_e, post_f, post_d = al_e / total, al_f / total, al_d / total
    p_alive = np.clip(post_e + post_f, 0.0, 1.0)

    # ---- future quantities from the posterior
    truth_cols: dict[str, np.ndarray] = {}
    for h in _HORIZONS:
        hh = np.full(n, float(h))
        t_ee = int_exp(-exit_e, hh)
        t_ef_time = exit_e * int_phi(-exit_e, -nu, hh)
        t_ff = int_exp(-nu, hh)
        exp_n = post_e * (lam * t_ee + lam_f * t_ef_time) + post_f * lam_f * t_ff
        truth_cols[f"expected_purchases_{h}"] = exp_n
        truth_cols[f"expected_value_{h}"] = exp_n * mov * _NET_FACTOR
        if h == 90:
            a = -(exit_e + lam)
            bb = -(nu + lam_f)
            from_e = sum(two_state_flow(np.ones(n), np.zeros(n), a, bb, exit_e, nu, hh))
            from_f = np.exp(bb * hh) + nu * int_exp(bb, hh)
            truth_cols["p_no_purchase_90"] = np.clip(
                post_e * from_e + post_f * from_f + post_d, 0.0, 1.0
            )

    # ---- realised outcomes
    state_code = np.where(t_ef > 0, 0, np.where(death > 0, 1, 2))
    actual: dict[str, np.ndarray] = {}
    for h in _HORIZONS:
        h_us = int(min(h, future_days)) * US_PER_DAY
        in_win = (t_us > 0) & (t_us <= h_us)
        actual[f"actual_purchases_{h}"] = np.bincount(
            t_idx[in_win & (t_kind == 0)], minlength=n
        ).astype(np.int64)
        actual[f"actual_value_{h}"] = np.round(
            np.bincount(t_idx[in_win], weights=t_amount[in_win], minlength=n), 2
        )

    truth = pd.DataFrame(
        {
            "customer_id": _labels(cust_labels, np.arange(n)),
            "alive": state_code < 2,
            "state": _labels(np.array(["E", "F", "D"]), state_code),
            "p_alive": p_alive,
            "p_no_purchase_90": truth_cols["p_no_purchase_90"],
            "expected_purchases_90": truth_cols["expected_purchases_90"],
            "expected_purchases_365": truth_cols["expected_purchases_365"],
            "expected_value_90": truth_cols["expected_value_90"],
            "expected_value_365": truth_cols["expected_value_365"],
            "actual_purchases_90": actual["actual_purchases_90"],
            "actual_purchases_365": actual["actual_purchases_365"],
            "actual_value_90": actual["actual_value_90"],
            "actual_value_365": actual["actual_value_365"],
            "churned_90": actual["actual_purchases_90"] == 0,
            "lambda": lam,
            "mu": mu,
            "p0": p0,
            "mean_order_value": mov,
            **gc.effects_at(pop, 0.0, uplift),
        }
    )
    log, log_truth = gc.frames(sim, cust_labels, as_of_ts) if sim is not None else (None, None)
    events = ge.finish_events(events, transactions, as_of_ts, seed, event_vocabulary, survey_type)
    if drift_at is not None:
        transactions, events = _drift(transactions, events, as_of_ts, drift_at, seed)
    return SyntheticData(
        transactions=transactions,
        events=events,
        customers=customers,
        truth=truth,
        as_of=as_of_ts,
        campaigns=log,
        campaign_truth=log_truth,
    )


def write(data: SyntheticData, out_dir: str | Path) -> dict[str, Path]:
    """Write the tables (and the campaign log and its truth, when generated) as Parquet files.

    Each table is written to a temporary file in ``out_dir`` and then moved into
    place with :func:`os.replace`, so a reader never sees a partial file.

    Parameters
    ----------
    data : SyntheticData
        Output of :func:`generate`.
    out_dir : str or pathlib.Path
        Target directory; created if missing.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"transactions": ..., "events": ..., "customers": ..., "truth": ...}`` plus
        ``"campaigns"`` and ``"campaign_truth"`` when the data has campaigns.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in ("transactions", "events", "customers", "truth", "campaigns", "campaign_truth"):
        frame: pd.DataFrame | None = getattr(data, name)
        if frame is None:
            continue
        table = pa.Table.from_pandas(frame, preserve_index=False)
        target = out / f"{name}.parquet"
        tmp = out / f".{name}.parquet.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        paths[name] = target
    return paths
