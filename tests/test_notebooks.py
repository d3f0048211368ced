"""The analyst notebooks (jupytext scripts in notebooks/) execute headless on a fresh workdir,
and their HTML export reads as a person would want it in headless Chromium."""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from _chromium import CHROMIUM, float_counts, render, unlabelled_images

from churnclv import value_at_risk_sentence
from churnclv.cli import main

pytestmark = pytest.mark.slow

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
nbconvert = pytest.importorskip("nbconvert")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SCRIPTS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.py"))


@pytest.fixture(scope="session")
def notebook_workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A work directory after `demo` on 800 customers plus one challenger run (seed 1)."""
    work = tmp_path_factory.mktemp("nbwork")
    data = work / "data"
    old = Path.cwd()
    os.chdir(work)  # MLflow puts run artifacts under ./mlruns of the current directory
    try:
        assert main(["demo", "--workdir", str(work), "--customers", "800"]) == 0
        assert (
            main(
                [
                    "train",
                    "--transactions",
                    str(data / "transactions.parquet"),
                    "--events",
                    str(data / "events.parquet"),
                    "--customers",
                    str(data / "customers.parquet"),
                    "--as-of",
                    "2024-01-01",
                    "--workdir",
                    str(work),
                    "--promote",
                    "--seed",
                    "1",
                ]
            )
            == 0
        )
    finally:
        os.chdir(old)
    yield work


def _execute(script: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    for key in [k for k in os.environ if k.startswith("CHURNCLV_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CHURNCLV_WORKDIR", str(workdir))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = jupytext.read(script)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=180,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return nb


def _images(nb: object) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells  # type: ignore[attr-defined]
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def test_notebooks_are_found() -> None:
    """The three analyst notebooks exist as jupytext percent scripts."""
    assert [p.name for p in SCRIPTS] == [
        "01-explore-histories.py",
        "02-review-experiments.py",
        "03-tiers-and-actions.py",
    ]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_notebook_executes(
    script: Path, notebook_workdir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each notebook runs top to bottom without an error and draws at least two figures; its
    HTML export, rendered in Chromium, logs no console error, shows no count as a float
    (``1675.00``), gives every figure a title and alt text, and links only to what exists."""
    nb = _execute(script, notebook_workdir, monkeypatch)
    errors = [
        out
        for cell in nb.cells  # type: ignore[attr-defined]
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
    assert _images(nb) >= 2
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: the HTML export is not rendered")
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    page = tmp_path / f"{script.stem}.html"
    page.write_text(body)
    shot = tmp_path / "notebook.png" if script.stem.startswith("03") else None
    shown = render(page, png=shot)
    assert not shown.console, shown.console
    assert len(shown.page.images) == _images(nb)
    assert not unlabelled_images(shown.page)
    assert shown.page.captions >= len(shown.page.images)
    assert not float_counts(shown.page)
    assert shown.page.tables, "the notebook shows its numbers as tables"
    for link in shown.page.links:
        if link.startswith(("#", "http://", "https://", "data:")):
            continue  # anchors in the page, external references
        assert (page.parent / link).exists(), link
    if script.stem.startswith("03"):
        # The answer under the tier x risk figure is computed from the scores it shows.
        scores = pd.read_parquet(notebook_workdir / "scores.parquet")
        assert html.escape(value_at_risk_sentence(scores), quote=False) in shown.dom
        assert shot is not None and shot.stat().st_size > 50_000
