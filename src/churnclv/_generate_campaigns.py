"""Synthetic campaign evidence: randomized past sends and their true effects.

Four campaigns are sent 170, 125, 80 and 35 days before ``as_of`` (09:00), each
to a random 40% of the customers who bought before the send (the dead among
them: a shop does not know who left). Each campaign splits its customers at
random into a control arm and one arm per action, with shares drawn per
campaign. The effect of a send lives in its 30-day response window
``(ts, ts + 30 days]`` and never changes the customer's hidden state, so the
churn and value truth of :mod:`churnclv._generate` stays exact (the
campaign-induced purchases are, like returns, not conditioned on).

Effects (``uplift="heterogeneous"``), given the hidden state at the send
(``E`` engaged, ``F`` fading, ``D`` dead: no effect) and the customer's latent
rates, ``m`` its mean order value:

- ``email_reminder`` adds ``0.08 min(engagement, 3)`` purchases in ``E`` (60% of
  that in ``F``): it works on customers who read their mail;
- ``discount_coupon`` (25% off every purchase in the window) adds 0.3 (``E``)
  or 0.9 (``F``) purchases at 75% of the price, and discounts the purchases the
  customer would have made anyway: ``0.25 m`` times their expected number. Loyal
  frequent buyers lose more than the coupon brings (cannibalisation);
- ``personal_call`` adds 0.15 (``E``) or 1.5 (``F``) purchases: it wins back
  fading customers, and pays for those with large orders.

The true effect of an action is the expected incremental net spend in the
window, ``extra purchases x m x price factor - cannibalised spend``; the
returns of discounted orders are refunded at the discounted price (about 1% of
the discount, not counted in the effect). ``uplift="uniform"`` gives every
customer the same effect per action (extra purchases of mean value 40, no
cannibalisation), ``uplift="none"`` no effect at all; the arms are drawn alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnclv._generate_maths import US_PER_DAY, int_exp, int_phi, to_us

__all__ = [
    "ACTIONS",
    "CONTROL",
    "RESPONSE_DAYS",
    "UPLIFTS",
    "Population",
    "Simulated",
    "effects_at",
    "frames",
    "simulate",
]

#: The actions of the shipped policy, in its order.
ACTIONS = ("email_reminder", "discount_coupon", "personal_call")
CONTROL = "control"
RESPONSE_DAYS = 30
UPLIFTS = ("heterogeneous", "uniform", "none")

_SEND_DAYS = (170, 125, 80, 35)  # days before as_of
_SEND_HOUR = 9.0 / 24.0
_REACH = 0.4
_CONTROL_SHARE = (0.15, 0.35)
_ARM_CONCENTRATION = 3.0
_DISCOUNT = 0.25
_EMAIL_PER_ENGAGEMENT, _EMAIL_CAP, _EMAIL_F = 0.08, 3.0, 0.6
_COUPON_EXTRA = (0.3, 0.9)  # purchases added in E, F
_CALL_EXTRA = (0.15, 1.5)
_UNIFORM_EXTRA = (0.05, 0.20, 0.40)  # purchases per action, for everyone
_UNIFORM_ORDER = 40.0


@dataclass(frozen=True)
class Population:
    """The latent quantities of each customer the campaigns depend on (days from as_of)."""

    birth: np.ndarray
    t_ef: np.ndarray  # leaves E
    death: np.ndarray
    lam: np.ndarray  # purchase rate in E (per day)
    lam_f: np.ndarray
    exit_e: np.ndarray  # E -> F hazard
    nu: np.ndarray  # F -> D hazard
    mov: np.ndarray  # mean order value
    eng: np.ndarray  # engagement multiplier
    chan_pref: np.ndarray  # (n, 3) channel probabilities
    order_shape: float


@dataclass(frozen=True)
class Simulated:
    """Campaign sends, their true effects and the purchases they changed or added."""

    p_amount: np.ndarray  # organic purchase amounts, discounted in coupon windows
    r_amount: np.ndarray  # return amounts, refunded at the discounted price
    x_idx: np.ndarray  # induced purchases: customer, time (us), amount, channel
    x_us: np.ndarray
    x_amount: np.ndarray
    x_chan: np.ndarray
    s_idx: np.ndarray  # sends: customer, time (us), arm (0 control, k = ACTIONS[k-1])
    s_us: np.ndarray
    s_arm: np.ndarray
    s_effect: np.ndarray  # (sends, actions) true expected incremental net spend


def _state(pop: Population, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Hidden state at time ``t``: 0 engaged, 1 fading, 2 dead."""
    return np.where(t < pop.t_ef[idx], 0, np.where(t < pop.death[idx], 1, 2))


def _organic_purchases(pop: Population, idx: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Expected purchases in the response window without a send, given the state."""
    h = np.full(idx.size, float(RESPONSE_DAYS))
    lam, lam_f, exit_e, nu = pop.lam[idx], pop.lam_f[idx], pop.exit_e[idx], pop.nu[idx]
    from_e = lam * int_exp(-exit_e, h) + lam_f * exit_e * int_phi(-exit_e, -nu, h)
    from_f = lam_f * int_exp(-nu, h)
    return np.where(state == 0, from_e, np.where(state == 1, from_f, 0.0))


def _response(
    pop: Population, idx: np.ndarray, state: np.ndarray, uplift: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Extra purchases (m, 3), their mean order value (m,), price factors (3,), cannibalised
    spend (m,) of a send per action."""
    m = idx.size
    if uplift == "uniform":
        extra = np.tile(np.asarray(_UNIFORM_EXTRA), (m, 1))
        return extra, np.full(m, _UNIFORM_ORDER), np.ones(3), np.zeros(m)
    if uplift == "none":
        return np.zeros((m, 3)), pop.mov[idx], np.ones(3), np.zeros(m)
    engaged, fading = state == 0, state == 1
    email = _EMAIL_PER_ENGAGEMENT * np.minimum(pop.eng[idx], _EMAIL_CAP)
    email = np.where(engaged, email, np.where(fading, _EMAIL_F * email, 0.0))
    coupon = np.where(engaged, _COUPON_EXTRA[0], np.where(fading, _COUPON_EXTRA[1], 0.0))
    call = np.where(engaged, _CALL_EXTRA[0], np.where(fading, _CALL_EXTRA[1], 0.0))
    mov = pop.mov[idx]
    cannibalised = _DISCOUNT * mov * _organic_purchases(pop, idx, state)
    price = np.array([1.0, 1.0 - _DISCOUNT, 1.0])
    return np.column_stack([email, coupon, call]), mov, price, cannibalised


def _effect(
    extra: np.ndarray, order: np.ndarray, price: np.ndarray, cannibalised: np.ndarray
) -> np.ndarray:
    effect = extra * order[:, None] * price[None, :]
    effect[:, ACTIONS.index("discount_coupon")] -= cannibalised
    return effect


def effects_at(pop: Population, t: float, uplift: str) -> dict[str, np.ndarray]:
    """``effect_<action>`` of a send at day ``t`` to every customer (``t = 0``: at as_of)."""
    idx = np.arange(pop.birth.size)
    state = _state(pop, idx, np.full(idx.size, t))
    effect = _effect(*_response(pop, idx, state, uplift))
    return {f"effect_{a}": effect[:, k] for k, a in enumerate(ACTIONS)}


def _sends(rng: np.random.Generator, pop: Population) -> tuple[np.ndarray, ...]:
    """Who got which arm of which campaign: customer, time (days), arm."""
    idx_parts, t_parts, arm_parts = [], [], []
    for days in _SEND_DAYS:
        t = -float(days) + _SEND_HOUR
        eligible = np.flatnonzero(pop.birth < t)
        picked = eligible[rng.random(eligible.size) < _REACH]
        control = rng.uniform(*_CONTROL_SHARE)
        shares = np.concatenate(
            [[control], (1 - control) * rng.dirichlet([_ARM_CONCENTRATION] * 3)]
        )
        idx_parts.append(picked)
        t_parts.append(np.full(picked.size, t))
        arm_parts.append(rng.choice(4, picked.size, p=shares))
    return np.concatenate(idx_parts), np.concatenate(t_parts), np.concatenate(arm_parts)


def _in_windows(
    p_idx: np.ndarray, p_us: np.ndarray, c_idx: np.ndarray, c_us: np.ndarray
) -> np.ndarray:
    """Positions of the purchases (sorted by customer, time) inside the windows of the sends."""
    lo = np.searchsorted(p_idx, c_idx, side="left")
    hi = np.searchsorted(p_idx, c_idx, side="right")
    count = hi - lo
    send = np.repeat(np.arange(c_idx.size), count)
    pos = np.repeat(lo - np.concatenate([[0], np.cumsum(count)[:-1]]), count) + np.arange(
        int(count.sum())
    )
    window = RESPONSE_DAYS * US_PER_DAY
    inside = (p_us[pos] > c_us[send]) & (p_us[pos] <= c_us[send] + window)
    return np.unique(pos[inside])


def simulate(
    rng: np.random.Generator,
    pop: Population,
    p_idx: np.ndarray,
    p_us: np.ndarray,
    p_amount: np.ndarray,
    r_src: np.ndarray,
    r_amount: np.ndarray,
    uplift: str,
) -> Simulated:
    """Draw the campaigns and apply their effects to the purchases.

    ``p_idx``/``p_us``/``p_amount`` are the organic purchases sorted by customer
    and time; ``r_src`` the purchase each return refunds. Sends whose window
    reaches past ``as_of`` are never drawn (the last one ends 5 days before).
    """
    s_idx, s_t, s_arm = _sends(rng, pop)
    s_us = to_us(s_t)
    state = _state(pop, s_idx, s_t)
    extra, order, price, cannibalised = _response(pop, s_idx, state, uplift)
    s_effect = _effect(extra, order, price, cannibalised)

    treated = np.flatnonzero(s_arm > 0)
    action = s_arm[treated] - 1
    count = rng.poisson(extra[treated, action])
    rows = np.repeat(treated, count)
    x_idx = s_idx[rows]
    offset = (1.0 - rng.random(rows.size)) * RESPONSE_DAYS  # in (0, 30]
    x_us = np.maximum(to_us(s_t[rows] + offset), s_us[rows] + 1)
    x_us = np.minimum(x_us, s_us[rows] + RESPONSE_DAYS * US_PER_DAY)
    shape = pop.order_shape
    raw = rng.gamma(shape, order[rows] / shape) * price[s_arm[rows] - 1]
    x_amount = np.maximum(np.round(raw, 2), 0.01)
    cum = np.cumsum(pop.chan_pref[x_idx], axis=1)
    x_chan = np.minimum((rng.random(rows.size)[:, None] > cum).sum(axis=1), 2)

    p_amount, r_amount = p_amount.copy(), r_amount.copy()
    if uplift == "heterogeneous":
        coupon = np.flatnonzero(s_arm == 1 + ACTIONS.index("discount_coupon"))
        hit = _in_windows(p_idx, p_us, s_idx[coupon], s_us[coupon])
        paid = 1.0 - _DISCOUNT
        p_amount[hit] = np.maximum(np.round(p_amount[hit] * paid, 2), 0.01)
        refunded = np.isin(r_src, hit)
        r_amount[refunded] = -np.maximum(np.round(-r_amount[refunded] * paid, 2), 0.01)
    order_ = np.lexsort((x_us, x_idx))
    return Simulated(
        p_amount=p_amount,
        r_amount=r_amount,
        x_idx=x_idx[order_],
        x_us=x_us[order_],
        x_amount=x_amount[order_],
        x_chan=x_chan[order_],
        s_idx=s_idx,
        s_us=s_us,
        s_arm=s_arm,
        s_effect=s_effect,
    )


def frames(
    sim: Simulated, customer_ids: np.ndarray, as_of: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The campaign log and its truth, sorted by send time and customer."""
    order = np.lexsort((sim.s_idx, sim.s_us))
    ts = np.datetime64(as_of.to_datetime64(), "us") + sim.s_us[order].astype("timedelta64[us]")
    ts_index = pd.DatetimeIndex(ts).astype("datetime64[us]")
    arms = np.array([CONTROL, *ACTIONS], dtype=object)
    log = pd.DataFrame(
        {
            "customer_id": pd.array(customer_ids[sim.s_idx[order]], dtype="str"),
            "ts": ts_index,
            "treatment": pd.array(arms[sim.s_arm[order]], dtype="str"),
            "campaign_id": pd.array(ts_index.strftime("%Y-%m-%d"), dtype="str"),
        }
    )
    truth = log[["campaign_id", "customer_id", "ts", "treatment"]].copy()
    for k, name in enumerate(ACTIONS):
        truth[f"effect_{name}"] = sim.s_effect[order, k]
    return log, truth
