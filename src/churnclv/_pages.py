"""Large arrays on ordinary memory pages while a batch is loaded or scored.

numpy advises the kernel to back every array of 4 MiB or more with huge pages
(``madvise(MADV_HUGEPAGE)``). Where transparent huge pages are defragmented on
demand (``/sys/kernel/mm/transparent_hugepage/defrag`` = ``madvise``, a common
default), the first touch of such an array can wait for the kernel to compact
memory: on a 2-core virtual machine, filling a fresh 1M x 59 float matrix took
6 s with the advice and 0.3 s without. A batch allocates dozens of such arrays
once each, so :func:`ordinary_pages` turns the advice off for its duration and
restores it after. Setting ``NUMPY_MADVISE_HUGEPAGE`` in the environment keeps
numpy's own choice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

__all__ = ["ordinary_pages"]


def _setter() -> Callable[[bool], bool] | None:
    """numpy's switch of the huge-page advice (None where numpy has none)."""
    import importlib

    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - the other numpy major version
            continue
        setter = getattr(module, "_set_madvise_hugepage", None)
        if setter is not None:
            return cast("Callable[[bool], bool]", setter)
    return None  # pragma: no cover


@contextmanager
def ordinary_pages() -> Iterator[None]:
    """Allocate numpy arrays without the huge-page advice inside the block.

    Examples
    --------
    >>> import numpy as np
    >>> from churnclv._pages import ordinary_pages
    >>> with ordinary_pages():
    ...     x = np.zeros((1000, 1000))
    >>> x.shape
    (1000, 1000)
    """
    setter = _setter()
    if setter is None or "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        yield
        return
    previous = setter(False)
    try:
        yield
    finally:
        setter(previous)
