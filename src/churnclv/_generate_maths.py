"""Closed forms of the generator's hidden process (see :mod:`churnclv._generate`).

Masses of the two living states ``E`` and ``F`` under ``E --q--> F --nu--> D``
with extra killing, and their time integrals, computed without overflow or
cancellation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["US_PER_DAY", "int_exp", "int_phi", "phi", "to_us", "two_state_flow"]

#: Microseconds per day: the generator's time unit is the day, timestamps are in us.
US_PER_DAY = 86_400_000_000


def to_us(t: np.ndarray) -> np.ndarray:
    """Days relative to ``as_of`` as whole microseconds."""
    return np.rint(t * US_PER_DAY).astype(np.int64)


def phi(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Return ``(exp(a t) - exp(b t)) / (a - b)`` without overflow or cancellation."""
    hi = np.maximum(a, b)
    d = hi - np.minimum(a, b)
    x = d * t
    small = x < 1e-8
    ratio = np.where(small, t, -np.expm1(-x) / np.where(small, 1.0, d))
    return np.exp(hi * t) * ratio


def int_exp(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Return ``integral_0^t exp(x s) ds`` for ``x <= 0``."""
    small = np.abs(x * t) < 1e-10
    return np.where(small, t, np.expm1(x * t) / np.where(small, 1.0, x))


def int_phi(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Return ``integral_0^t phi(a, b, s) ds`` for ``a, b < 0``."""
    d = a - b
    near = np.abs(d * t) < 1e-4
    dsafe = np.where(near, 1.0, d)
    generic = (int_exp(a, t) - int_exp(b, t)) / dsafe
    m = 0.5 * (a + b)
    msafe = np.where(m == 0.0, -1e-300, m)
    # derivative of expm1(m t) / m with respect to m (limit a -> b)
    deriv = (t * m * np.exp(m * t) - np.expm1(m * t)) / (msafe * msafe)
    deriv = np.where(np.abs(m * t) < 1e-6, 0.5 * t * t, deriv)
    return np.where(near, deriv, generic)


def two_state_flow(
    p_e: np.ndarray,
    p_f: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    q: np.ndarray,
    nu: np.ndarray,
    t: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evolve masses under ``E --q--> F --nu--> D`` with extra killing.

    ``a`` and ``b`` are the (negative) diagonal entries of E and F. Returns the
    masses in E, F and D after time ``t``.
    """
    m_e = p_e * np.exp(a * t)
    m_f = p_e * q * phi(a, b, t) + p_f * np.exp(b * t)
    m_d = nu * (p_e * q * int_phi(a, b, t) + p_f * int_exp(b, t))
    return m_e, m_f, m_d
