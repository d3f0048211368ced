"""Atomic file writes: a temp file in the target folder, then a rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

__all__ = ["atomic_write", "atomic_write_parquet"]


def atomic_write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to ``path`` through a temp file in the same folder and a rename.

    An interrupted or failed write leaves either the old file or none, never a
    partial one.
    """
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def atomic_write(path: str | os.PathLike[str], writer: Callable[[str], object]) -> Path:
    """Call ``writer(tmp_path)`` then rename the temp file onto ``path``."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
