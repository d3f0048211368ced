"""`bentoml build` turns bentofile.yaml into a Bento of the service, offline and without Docker."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BENTOML = Path(sys.executable).parent / "bentoml"

pytestmark = pytest.mark.skipif(not BENTOML.exists(), reason="bentoml is not installed")


def _packages() -> list[str]:
    doc = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    return list(doc["python"]["packages"])


def test_bentofile_lists_every_runtime_dependency() -> None:
    """The Bento installs what pyproject.toml needs at run time plus the `serve` extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["serve"]
    assert sorted(_packages()) == sorted(wanted)


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Bento built from the repository into a temporary BENTOML_HOME."""
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    proc = subprocess.run(
        [str(BENTOML), "build", str(ROOT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (folder,) = [p for p in (home / "bentos" / "churnclv").iterdir() if p.name != "latest"]
    return folder


def test_bentoml_build_creates_a_bento(bento: Path) -> None:
    """The Bento holds the sources, the unlocked requirements and the service's routes."""
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    assert meta["service"] == "churnclv._bento:ChurnService"
    src = bento / "src"
    for path in ("churnclv/cli.py", "churnclv/default_policy.yaml", "serving/service.py"):
        assert (src / path).is_file(), path
    assert not list(src.rglob("__pycache__"))
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "lightgbm>=4.3" in requirements
    assert "/predict" in (bento / "apis" / "openapi.yaml").read_text()


def test_bento_sources_import_without_the_installed_package(bento: Path) -> None:
    """Inside the Bento, churnclv.serving and friends load from the Bento's own folders."""
    code = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
        "import churnclv._bento, churnclv.serving, churnclv.training\n"
        "print(churnclv.serving.__file__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=bento / "src",
        env={**os.environ, "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str(bento / "src" / "serving" / "__init__.py")
