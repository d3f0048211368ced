"""`churnclv models list | promote | rollback` and the service's champion hot-swap (DESIGN §12)."""

from __future__ import annotations

import asyncio
import getpass
import shutil
from pathlib import Path
from typing import Any

import pytest
from _versions import client as _client
from _versions import new_version

from churnclv.cli import main
from churnclv.training import ALIAS, CHURN_MODEL, VALUE_MODEL, tracking_uri_for

pytestmark = pytest.mark.slow


@pytest.fixture
def work(demo_workdir: Path, tmp_path: Path) -> Path:
    """A copy of the demo's trained work directory (champion v1 of both models)."""
    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work)
    return work


def _champion(work: Path, name: str = CHURN_MODEL) -> Any:
    return _client(work).get_model_version_by_alias(name, ALIAS)


def test_list_shows_versions_aliases_metrics_and_reasons(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`models list` prints every version with its alias, metric, kind and promotion reason."""
    new_version(work)
    assert main(["models", "list", "--workdir", str(work)]) == 0
    text = capsys.readouterr().out
    for expected in (CHURN_MODEL, VALUE_MODEL, "champion", "roc_auc", "gini", "promoted: "):
        assert expected in text
    cells = [line.split("│")[1:4] for line in text.splitlines() if CHURN_MODEL in line]
    assert [[c.strip() for c in row] for row in cells] == [
        [CHURN_MODEL, "1", "champion"],
        [CHURN_MODEL, "2", ""],
    ]


def test_promote_runs_the_gate_and_records_who_when_why(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A version scoring the validation rows as well as the champion takes the alias; tagged."""
    v2 = new_version(work)
    assert main(["models", "promote", CHURN_MODEL, v2, "--workdir", str(work)]) == 0
    mv = _champion(work)
    assert str(mv.version) == v2
    assert mv.tags["promoted_by"] == getpass.getuser()
    assert mv.tags["promoted_at"].endswith("+00:00")
    assert mv.tags["previous_champion"] == "1"
    assert mv.tags["promotion"].startswith("promoted: churn_roc_auc")
    assert "same validation rows" in capsys.readouterr().out


def test_promote_refuses_a_worse_version_unless_forced(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A version that measured less than the champion scores on its rows stays out (exit 2)."""
    worse = new_version(work, churn_roc_auc=0.5)
    assert main(["models", "promote", CHURN_MODEL, worse, "--workdir", str(work)]) == 2
    assert "--force" in capsys.readouterr().err
    assert str(_champion(work).version) == "1"
    assert main(["models", "promote", CHURN_MODEL, worse, "--force", "--workdir", str(work)]) == 0
    mv = _champion(work)
    assert str(mv.version) == worse and "forced" in mv.tags["promotion"]


def test_rollback_returns_the_previous_champion(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rollback gives the alias back to the recorded previous champion; then nothing is left."""
    v2 = new_version(work, name=VALUE_MODEL)
    args = ["--workdir", str(work)]
    assert main(["models", "promote", VALUE_MODEL, v2, *args]) == 0
    assert main(["models", "rollback", VALUE_MODEL, *args]) == 0
    mv = _champion(work, VALUE_MODEL)
    assert (
        str(mv.version) == "1" and mv.tags["promotion"] == f"promoted: rollback from version {v2}"
    )
    assert "rolled back from version 2 to version 1" in capsys.readouterr().out
    assert main(["models", "rollback", VALUE_MODEL, *args]) == 2
    assert "no previous champion" in capsys.readouterr().err


def test_rollback_without_a_tag_finds_the_last_champion_below(work: Path) -> None:
    """Without `previous_champion` the highest lower version that was champion takes it back."""
    from churnclv.training import rollback_champion

    new_version(work)  # v2: never champion
    v3 = new_version(work)
    _client(work).set_registered_model_alias(CHURN_MODEL, ALIAS, v3)
    assert rollback_champion(tracking_uri_for(work), CHURN_MODEL) == (v3, "1")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["promote", "churnclv-nope", "1"], "unknown model"),
        (["promote", CHURN_MODEL, "99"], "has no version 99; versions: 1"),
        (["rollback", "churnclv-nope"], "unknown model"),
    ],
)
def test_unknown_names_and_versions_exit_2(
    work: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["models", *argv, "--workdir", str(work)]) == 2
    assert message in capsys.readouterr().err


def test_no_store_lists_nothing_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list", "--workdir", str(tmp_path)]) == 0
    assert "no registered models" in capsys.readouterr().out
    assert main(["models", "rollback", CHURN_MODEL, "--workdir", str(tmp_path)]) == 2
    assert not (tmp_path / "mlruns.db").exists()


def test_state_reload_swaps_whole_and_survives_a_broken_champion(
    work: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`ServingState.reload` swaps in a promoted champion as a new scorer; one that cannot be
    loaded leaves the current one serving with `reload_error`; a rollback clears it."""
    from churnclv.serving._state import ServingState
    from churnclv.training import promote_version, rollback_champion

    uri = tracking_uri_for(work)
    state = ServingState.from_env({"CHURNCLV_WORKDIR": str(work), "CHURNCLV_RELOAD_S": "1"})
    assert state.reload_s == 1.0 and state.load()
    try:
        first = state.live
        assert first is not None and state.reload() is None  # nothing moved
        u = "+uplift:v1"  # the demo's uplift champion, served alongside
        v2 = new_version(work)
        promote_version(uri, CHURN_MODEL, v2)
        with caplog.at_level("INFO", logger="bentoml.churnclv"):
            assert state.reload() is first.batcher  # the caller closes it once drained
        assert any(f"swapped churn:v1+value:v1{u} -> churn:v2+value:v1{u}" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
        assert state.live is not first and state.live is not None
        assert first.scorer.champion.model_version == f"churn:v1+value:v1{u}"  # never mutated
        assert state.info is not None and state.info["model_version"] == f"churn:v2+value:v1{u}"
        asyncio.run(first.batcher.aclose(timeout_s=1))

        client = _client(work)
        mv = client.get_model_version(CHURN_MODEL, "1")
        broken = client.create_model_version(
            CHURN_MODEL, str(work / "no-such-model"), run_id=mv.run_id
        )
        promote_version(uri, CHURN_MODEL, broken.version, force=True)
        served = state.live
        assert state.reload() is None and state.live is served and state.ready
        assert state.info is not None and "reload_error" in state.info
        assert f"churn:v{broken.version}+value:v1{u} not loaded" in state.info["reload_error"]
        rollback_champion(uri, CHURN_MODEL)  # back to v2, what is served
        assert state.reload() is None and state.info is not None
        assert "reload_error" not in state.info
        assert state.info["model_version"] == f"churn:v2+value:v1{u}"
    finally:
        state.close()


def test_model_uri_never_reloads(work: Path) -> None:
    from churnclv.serving._state import ServingState

    state = ServingState.from_env(
        {"CHURNCLV_WORKDIR": str(work), "CHURNCLV_MODEL_URI": f"models:/{CHURN_MODEL}@champion"}
    )
    assert state.reload_s == 0.0 and state.reload() is None
