"""The service entry of the churnclv Bento (``bentofile.yaml``): ``churnclv._bento:ChurnService``.

The repository maps ``churnclv.features``, ``churnclv.training`` and
``churnclv.serving`` onto top-level folders (``pyproject.toml`` ``package-dir``).
A Bento copies those folders beside ``churnclv/`` without installing the
project, so when they are not importable as subpackages this module adds the
folder above ``churnclv/`` to the package's search path, then exposes the
service. Installed or editable, the package is used as it is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import churnclv

if importlib.util.find_spec("churnclv.serving") is None:  # pragma: no cover - inside a Bento
    churnclv.__path__.append(str(Path(__file__).resolve().parent.parent))

from churnclv.serving.service import ChurnService

__all__ = ["ChurnService"]
