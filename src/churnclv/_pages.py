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
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ordinary_pages"]


def _setter() -> object | None:
    """numpy's switch of the huge-page advice (None where numpy has none)."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # pragma: no cover - numpy < 2
        try:
            from numpy.core.multiarray import _set_madvise_hugepage  # type: ignore[no-redef]
        except ImportError:
            return None
    return _set_madvise_hugepage


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
    previous = setter(False)  # type: ignore[operator]
    try:
        yield
    finally:
        setter(previous)  # type: ignore[operator]
