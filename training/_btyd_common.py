"""What the BG/NBD and Gamma-Gamma fitters share: input checks and the likelihood fit.

Both models are fitted by maximising a (weighted, optionally L2-penalised)
log-likelihood over log-parameters with L-BFGS-B and an analytic gradient,
from several starting points; :class:`FitterBase` holds the parameters'
bookkeeping (``params_``, ``from_params``, the fit record) for both.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator

__all__ = [
    "FitterBase",
    "LogLikAndGrad",
    "Objective",
    "as_float_array",
    "bad_indices",
    "best_starts",
    "check_finite_nonnegative",
    "check_penalizer",
    "compress",
    "fitted_param",
    "minimize_multistart",
    "penalized_objective",
    "validate_weights",
]

_LOG_BOUND = 18.0  # log-parameters are kept in [-18, 18] (about 1.5e-8 .. 6.6e7)
_MAX_BAD_SHOWN = 5

#: ``params -> (per-row log-likelihood, gradient of shape (n_params, n_rows))``.
LogLikAndGrad = Callable[..., tuple[np.ndarray, np.ndarray]]
Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def as_float_array(name: str, values: object) -> np.ndarray:
    """Convert ``values`` to a float64 array, raising a ValueError naming ``name``."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    return arr


def bad_indices(mask: np.ndarray) -> str:
    """The first few indices where ``mask`` is true, for an error message."""
    idx = np.flatnonzero(np.ravel(mask))
    shown = ", ".join(str(i) for i in idx[:_MAX_BAD_SHOWN])
    more = f", ... ({idx.size} in all)" if idx.size > _MAX_BAD_SHOWN else ""
    return f"[{shown}{more}]"


def check_finite_nonnegative(name: str, arr: np.ndarray) -> None:
    """Raise a ValueError naming ``name`` and the bad indices unless all finite and >= 0."""
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must be finite; NaN or inf at indices {bad_indices(bad)}")
    neg = arr < 0
    if neg.any():
        raise ValueError(f"{name} must be non-negative; negative at indices {bad_indices(neg)}")


def check_penalizer(value: Any) -> float:
    """``value`` as a float, checked finite and >= 0."""
    penalizer = float(value)
    if not (np.isfinite(penalizer) and penalizer >= 0):
        raise ValueError(f"penalizer must be finite and >= 0, got {value!r}")
    return penalizer


def validate_weights(weights: object, n: int) -> np.ndarray:
    """Case weights of ``n`` rows (ones when None), finite, >= 0 and not all zero."""
    if weights is None:
        return np.ones(n)
    w = as_float_array("weights", weights)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {w.shape}")
    check_finite_nonnegative("weights", w)
    if not (w > 0).any():
        raise ValueError("weights must contain at least one positive value")
    return w


def compress(columns: tuple[np.ndarray, ...], w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Collapse identical rows of ``columns``, summing their weights (returned last)."""
    keep = w > 0
    stacked = np.column_stack([c[keep] for c in columns])
    uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
    wsum = np.bincount(inverse.ravel(), weights=w[keep], minlength=uniq.shape[0])
    return (*(uniq[:, j] for j in range(uniq.shape[1])), wsum)


def penalized_objective(
    loglik_and_grad: LogLikAndGrad,
    columns: tuple[np.ndarray, ...],
    ws: np.ndarray,
    penalizer: float,
) -> Objective:
    """Mean weighted negative log-likelihood plus ``penalizer * |params|^2``, over
    log-parameters, with its gradient (non-finite values become ``inf`` and 0)."""
    wtot = ws.sum()

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(theta)
        ll, grad = loglik_and_grad(params, *columns)
        f = -(ws @ ll) / wtot + penalizer * params @ params
        g = -(grad @ ws) / wtot * params + 2.0 * penalizer * params**2
        if not np.isfinite(f):
            return np.inf, np.zeros(len(theta))
        return float(f), np.nan_to_num(g)

    return objective


def best_starts(grid: list[np.ndarray], objective: Objective, k: int = 3) -> list[np.ndarray]:
    """The ``k`` starting points of ``grid`` with the lowest objective, best first."""
    return sorted(grid, key=lambda th: objective(th)[0])[:k]


def minimize_multistart(
    objective: Objective, starts: list[np.ndarray], n_params: int
) -> tuple[np.ndarray, float, bool, int]:
    """Run L-BFGS-B from each start and keep the best finite optimum.

    Returns the log-parameters, the objective there, whether the optimiser
    reported success and its iterations.
    """
    best_x, best_f, best_ok, best_nit = None, np.inf, False, 0
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * n_params
    for x0 in starts:
        with np.errstate(all="ignore"):
            res = minimize(
                objective,
                np.clip(x0, -_LOG_BOUND + 1, _LOG_BOUND - 1),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-7},
            )
        if np.isfinite(res.fun) and np.all(np.isfinite(res.x)) and res.fun < best_f:
            best_x, best_f, best_ok, best_nit = res.x, float(res.fun), bool(res.success), res.nit
    if best_x is None:
        raise RuntimeError("optimisation failed from every starting point (non-finite objective)")
    return best_x, best_f, best_ok, int(best_nit)


def fitted_param(name: str) -> property:
    """A read-only ``<name>_`` attribute of the fitted ``params_``."""

    def get(self: Any) -> float:
        self._check_fitted()
        return float(self.params_[name])

    return property(get, doc=f"The fitted ``{name}``.")


class FitterBase(BaseEstimator):
    """Parameter bookkeeping shared by the BTYD fitters (``params_`` and the fit record)."""

    #: Names of the model's parameters, in the order of its log-parameter vector.
    _param_names: tuple[str, ...] = ()
    #: The model's name in messages.
    _label = ""

    params_: dict[str, float]

    def _check_fitted(self) -> None:
        if getattr(self, "params_", None) is None:
            raise RuntimeError(
                f"{type(self).__name__} is not fitted; call fit() or from_params() first"
            )

    def _set_params_from(self, values: Mapping[str, float]) -> None:
        """Store known parameters, checked finite and positive."""
        out = {k: float(values[k]) for k in self._param_names}
        bad = [k for k, v in out.items() if not (np.isfinite(v) and v > 0)]
        if bad:
            raise ValueError(f"{self._label} parameters must be finite and positive: {bad}")
        self.params_ = out

    def _maximize(
        self,
        loglik_and_grad: LogLikAndGrad,
        columns: tuple[np.ndarray, ...],
        ws: np.ndarray,
        grid: list[np.ndarray],
        penalizer: float,
    ) -> None:
        """Fit the parameters: the penalised likelihood of the weighted rows ``columns``
        optimised from the best starts of ``grid`` (log-parameters).

        Sets ``params_``, ``log_likelihood_`` (without the penalty), ``converged_``
        and ``n_iter_``; warns when the optimiser did not report success.
        """
        objective = penalized_objective(loglik_and_grad, columns, ws, penalizer)
        theta, _, ok, nit = minimize_multistart(
            objective, best_starts(grid, objective), len(self._param_names)
        )
        params = np.exp(theta)
        ll, _ = loglik_and_grad(params, *columns)
        self.params_ = dict(zip(self._param_names, map(float, params), strict=True))
        self.log_likelihood_ = float(ws @ ll)
        self.converged_ = ok
        self.n_iter_ = nit
        if not ok:
            warnings.warn(
                f"{self._label} optimisation did not report convergence", RuntimeWarning, 3
            )
