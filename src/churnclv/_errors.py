"""Errors a user can cause, each rendered as one clear line by the CLI."""

from __future__ import annotations

__all__ = ["ChurnclvError", "InputError"]


class ChurnclvError(Exception):
    """Base class of every error churnclv raises on purpose."""


class InputError(ChurnclvError):
    """Bad input data or usage: the CLI exits 2 and the service answers 4xx.

    Parameters
    ----------
    message : str
        One line naming the file, the column and a sample of offending values.
    """
