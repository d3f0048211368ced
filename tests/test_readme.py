"""README.md: every code block marked runnable runs, and the page stays a user's page.

A fenced block preceded by the line ``<!-- runnable -->`` is executed, in README
order, in one scratch directory: ``bash`` blocks with ``bash -euo pipefail`` and
the venv's ``churnclv`` first on ``PATH`` (variables assigned at the top level of
earlier runnable blocks are set again, as in one terminal), ``python`` blocks
with this interpreter. The set-up commands (they create virtualenvs), ``serve``
and ``ui`` (long-running) are not marked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = "<!-- runnable -->"
FENCE = re.compile(r"^```(\w+)\s*$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    code: str

    @property
    def id(self) -> str:
        first = self.code.strip().splitlines()[0][:40]
        return f"L{self.line}-{self.lang}: {first}"


def runnable_blocks(text: str) -> list[Block]:
    """The fenced blocks directly preceded by the runnable marker."""
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        opening = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if opening is None:
            raise ValueError(f"README.md:{i + 1}: {MARKER} must be followed by a fenced block")
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        blocks.append(Block(i + 2, opening.group(1), "\n".join(lines[i + 2 : end]) + "\n"))
    return blocks


BLOCKS = runnable_blocks(README.read_text())


def test_the_readme_marks_blocks_runnable() -> None:
    langs = {b.lang for b in BLOCKS}
    assert {"bash", "python"} <= langs, f"runnable blocks found: {[b.id for b in BLOCKS]}"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("readme")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNCLV_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[b.id for b in BLOCKS])
def test_runnable_block_runs(index: int, scratch: Path) -> None:
    block = BLOCKS[index]
    if block.lang == "bash":
        earlier = [
            line
            for b in BLOCKS[:index]
            if b.lang == "bash"
            for line in b.code.splitlines()
            if ASSIGNMENT.match(line)
        ]
        script = scratch / f"block{index}.sh"
        script.write_text("\n".join([*earlier, block.code]))
        cmd = ["bash", "-euo", "pipefail", str(script)]
    elif block.lang == "python":
        script = scratch / f"block{index}.py"
        script.write_text(block.code)
        cmd = [sys.executable, str(script)]
    else:
        pytest.fail(f"README.md:{block.line}: no runner for a {block.lang!r} block")
    proc = subprocess.run(
        cmd, cwd=scratch, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0, (
        f"README.md:{block.line} ({block.lang}) exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    )


def test_the_readme_is_a_page_for_users() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert "session" not in text.lower()
    assert not re.search(r"\bround \d", text, re.IGNORECASE)
    assert "churnclv demo" in text
    for setup in (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/churnclv demo",
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/pytest",
    ):
        assert f"```bash\n{setup}\n```" in text
