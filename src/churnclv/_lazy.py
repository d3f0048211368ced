"""Public names loaded on first use (PEP 562), shared by the package ``__init__`` modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any


def lazy_exports(
    package: str,
    owners: Mapping[str, str],
    namespace: MutableMapping[str, Any],
    names: Sequence[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package that re-exports lazily.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (for the error message).
    owners : mapping
        Public name -> module that owns it.
    namespace : mutable mapping
        The package's ``globals()``: a name is cached there once imported.
    names : sequence of str
        The package's ``__all__``.

    Examples
    --------
    >>> getattr_, dir_ = lazy_exports("demo", {"sqrt": "math"}, {}, ["sqrt"])
    >>> getattr_("sqrt")(9.0)
    3.0
    >>> getattr_("nope")
    Traceback (most recent call last):
    ...
    AttributeError: module 'demo' has no attribute 'nope'
    """

    def __getattr__(name: str) -> Any:
        owner = owners.get(name)
        if owner is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(owner), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names})

    return __getattr__, __dir__
