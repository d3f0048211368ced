"""`churnclv --help` and every verb's --help explain every flag."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from churnclv.cli import app

VERBS = [
    "demo", "generate", "features", "train", "score", "export", "report", "serve", "ui", "models",
    "monitor", "train-uplift",
]  # fmt: skip
MODEL_VERBS = ["list", "promote", "rollback"]


def _command() -> typer.core.TyperGroup:
    cmd = typer.main.get_command(app)
    assert isinstance(cmd, typer.core.TyperGroup)
    return cmd


def test_every_design_verb_exists() -> None:
    """The CLI offers every DESIGN §7 verb plus report and ui."""
    assert set(VERBS) <= set(_command().commands)


@pytest.mark.parametrize("verb", VERBS)
def test_every_flag_has_help(verb: str) -> None:
    """Every option of every verb carries a help text."""
    cmd = _command().commands[verb]
    assert cmd.help
    for param in cmd.params:
        if isinstance(param, typer.core.TyperOption):
            assert param.help, f"{verb} {param.opts} has no help"


@pytest.mark.parametrize("verb", MODEL_VERBS)
def test_every_models_verb_flag_has_help(verb: str) -> None:
    """`churnclv models list | promote | rollback` explain every option and argument."""
    group = _command().commands["models"]
    assert isinstance(group, typer.core.TyperGroup)
    cmd = group.commands[verb]
    assert cmd.help
    for param in cmd.params:
        assert getattr(param, "help", None), f"models {verb} {param.name} has no help"


def test_console_script_help_exits_0() -> None:
    """The installed entry point answers --help with exit 0 and lists the verbs."""
    proc = subprocess.run(
        [sys.executable, "-c", "from churnclv.cli import _entry; _entry()", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    for verb in VERBS:
        assert verb in proc.stdout
