"""Skip a Spark test module where the engine cannot run (no pyspark, no Java 17+)."""

from __future__ import annotations

import importlib.util

import pytest


def require_spark() -> None:
    """Skip the calling module (at import) unless pyspark and Java 17+ are available."""
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip(
            "pyspark is not installed (pip install 'churnclv[spark]')", allow_module_level=True
        )
    from churnclv.features import _spark

    problem = _spark._java_problem()
    if problem is not None:
        pytest.skip(f"the spark engine needs Java 17+: {problem}", allow_module_level=True)


def forbid_driver_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way of loading an input on the driver fail the test."""
    import pandas as pd

    from churnclv import _io
    from churnclv.features import _inputs

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("an input was loaded on the driver")

    for module, name in (
        (_io, "load_transactions"),
        (_io, "load_events"),
        (_io, "load_customers"),
        (_inputs, "as_frame"),
        (pd, "read_parquet"),
    ):
        monkeypatch.setattr(module, name, forbidden)
