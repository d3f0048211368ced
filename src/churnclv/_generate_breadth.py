"""Purchase categories of the synthetic data, with signal: broad buyers are loyal.

Each customer buys from their own few categories of :data:`CATEGORIES`; how
many depends on their exit hazard ``mu`` (the lower the hazard, the more
categories), so purchase breadth (``n_categories``, ``top_category_share``)
carries information about churn beyond recency and frequency. The draws use
their own random stream, so everything else :func:`churnclv.generate` draws
is unchanged.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CATEGORIES", "order_categories"]

CATEGORIES = np.array(
    ["grocery", "home", "fashion", "beauty", "electronics", "toys", "sports", "books"]
)


def order_categories(
    seed: int, mu: np.ndarray, mu_mean: float, order_customer: np.ndarray
) -> np.ndarray:
    """The category code (index into :data:`CATEGORIES`) of each order.

    Parameters
    ----------
    seed : int
        The generator's seed (the stream is ``[seed, 19]``).
    mu : numpy.ndarray
        Each customer's exit hazard.
    mu_mean : float
        The population mean hazard.
    order_customer : numpy.ndarray
        The customer index of each order.
    """
    rng = np.random.default_rng([seed, 19])
    n, k = mu.size, CATEGORIES.size
    loyal = mu_mean / (mu + mu_mean)  # in (0, 1): 1 for no hazard
    breadth = 1 + rng.binomial(k - 1, np.clip(loyal**2, 0.02, 0.98))
    # a random set of ``breadth`` categories per customer, with random preferences
    rank = np.argsort(rng.random((n, k)), axis=1).argsort(axis=1)
    weights = rng.dirichlet(np.ones(k), n) * (rank < breadth[:, None])
    weights /= weights.sum(axis=1, keepdims=True)
    if order_customer.size == 0:
        return np.zeros(0, np.int64)
    cum = np.cumsum(weights[order_customer], axis=1)
    u = rng.random(order_customer.size)
    return np.minimum((u[:, None] > cum).sum(axis=1), k - 1).astype(np.int64)
