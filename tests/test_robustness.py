"""Killed runs leave the champion untouched and no run RUNNING; outputs are never partial.

The trainings here run on 300 generated customers over 500 days (``tiny_data``,
two cutoffs, a 90-day value horizon): what is under test is the run and
registry bookkeeping, which is the same at any size. The interrupted ones log
into a copy of the demo's store, whose champion must stay untouched.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from churnclv._io import atomic_write_parquet
from churnclv.cli import main
from churnclv.training import ALIAS, CHURN_MODEL, VALUE_MODEL, tracking_uri_for

pytestmark = pytest.mark.slow

#: Small training settings (`churnclv train` options and `train()` keywords alike).
SMALL = {"max_cutoffs": 2, "value_horizon_days": 90}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 generated customers over 500 days up to 2024-01-01 (plus 120 days of future)."""
    out = tmp_path_factory.mktemp("tiny")
    args = ["--customers", "300", "--seed", "7", "--history-days", "500", "--future-days", "120"]
    assert main(["generate", *args, "--out", str(out)]) == 0
    return out


def _tables(data: Path):
    from churnclv._io import load_inputs

    return load_inputs(
        data / "transactions.parquet", data / "events.parquet", data / "customers.parquet"
    )


def _train_cmd(data: Path, work: Path, seed: int) -> list[str]:
    """`churnclv train --promote` of ``data`` into ``work``'s store, small settings."""
    return [
        sys.executable, "-c", "from churnclv.cli import _entry; _entry()", "train",
        "--transactions", str(data / "transactions.parquet"),
        "--events", str(data / "events.parquet"),
        "--customers", str(data / "customers.parquet"),
        "--as-of", "2024-01-01", "--promote", "--seed", str(seed), "--workdir", str(work),
        "--max-cutoffs", str(SMALL["max_cutoffs"]),
        "--value-horizon-days", str(SMALL["value_horizon_days"]),
    ]  # fmt: skip


def _client(work: Path):
    from mlflow import MlflowClient

    uri = tracking_uri_for(work)
    return MlflowClient(uri, uri)


def _champions(work: Path) -> tuple[str, str]:
    c = _client(work)
    return (
        str(c.get_model_version_by_alias(CHURN_MODEL, ALIAS).version),
        str(c.get_model_version_by_alias(VALUE_MODEL, ALIAS).version),
    )


def _statuses(work: Path) -> list[str]:
    c = _client(work)
    exp = c.get_experiment_by_name("churnclv")
    return [r.info.status for r in c.search_runs([exp.experiment_id])]


#: `churnclv train` whose run, once RUNNING, prints RUNNING and waits there (while logging
#: plots): a signal then lands mid-run every time, however fast or loaded the machine.
_HELD_TRAIN = (
    "import sys, time\n"
    "import churnclv.training._tracking as tracking\n"
    "log_plots = tracking._log_plots\n"
    "def hold(*args):\n"
    "    log_plots(*args)\n"
    "    print('RUNNING', flush=True)\n"
    "    time.sleep(600)\n"
    "tracking._log_plots = hold\n"
    "from churnclv.cli import _entry\n"
    "_entry()\n"
)


def _train_and_kill(data: Path, work: Path, sig: int) -> subprocess.Popen[bytes]:
    """Start `churnclv train`, wait until its MLflow run is RUNNING, then send ``sig``."""
    cmd = _train_cmd(data, work, 3)
    cmd[2] = _HELD_TRAIN
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    for line in proc.stdout:  # until the run is RUNNING (or the training ended: EOF)
        if line.strip() == b"RUNNING":
            proc.send_signal(sig)
            break
    proc.communicate(timeout=600)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_training_marks_run_failed_and_keeps_champion(
    demo_workdir: Path, tiny_data: Path, tmp_path: Path, sig: int
) -> None:
    """A training stopped by SIGTERM or Ctrl-C mid-run ends FAILED and changes no champion."""
    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work)
    before = _champions(work)
    proc = _train_and_kill(tiny_data, work, sig)
    assert proc.returncode == 1
    statuses = _statuses(work)
    assert "RUNNING" not in statuses
    assert statuses.count("FAILED") == 1
    assert _champions(work) == before


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("where", ["_log_plots", "second _gate"], ids=["logging", "between-gates"])
def test_an_interrupt_a_finalizer_swallowed_still_stops_the_training(
    demo_workdir: Path,
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """An interrupt lost inside a finalizer during logging or gating ends the run FAILED, with
    no champion changed, although every gate is forced to promote."""
    from _signals import lose_an_interrupt

    import churnclv.training._registry as registry_module
    import churnclv.training._tracking as tracking_module
    from churnclv._interrupt import handle_interrupts, stop_requested
    from churnclv.training import train

    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work)
    before = _champions(work)
    runs_before = len(_statuses(work))
    plots, gates = tracking_module._log_plots, []

    def log_plots(*args: object) -> None:
        plots(*args)
        if where == "_log_plots":
            lose_an_interrupt()

    def gate(*args: object) -> tuple[bool, str]:
        gates.append(args[0])
        if where == "second _gate" and len(gates) == 2:
            lose_an_interrupt()
        return True, "forced to promote by the test"

    monkeypatch.setattr(tracking_module, "_log_plots", log_plots)
    monkeypatch.setattr(registry_module, "_gate", gate)
    with handle_interrupts(), pytest.raises(KeyboardInterrupt):
        train(
            _tables(tiny_data),
            as_of="2024-01-01",
            tracking_uri=tracking_uri_for(work),
            seed=3,
            promote=True,
            should_stop=stop_requested,
            **SMALL,
        )
    statuses = _statuses(work)
    assert len(statuses) == runs_before + 1
    assert statuses.count("FAILED") == 1 and "RUNNING" not in statuses
    assert _champions(work) == before
    assert gates == ([] if where == "_log_plots" else [CHURN_MODEL, VALUE_MODEL])


def test_killed_training_run_is_failed_by_the_next_training(
    demo_workdir: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """A SIGKILLed training's run (left RUNNING) is marked FAILED when training next starts."""
    from churnclv.training import train

    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work)
    before = _champions(work)
    proc = _train_and_kill(tiny_data, work, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert "RUNNING" in _statuses(work)
    assert _champions(work) == before
    train(_tables(tiny_data), as_of="2024-01-01", tracking_uri=tracking_uri_for(work), seed=3,
          **SMALL)  # fmt: skip
    assert "RUNNING" not in _statuses(work)
    assert _champions(work) == before


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    """A write that fails midway leaves the previous file intact and no temp file behind."""
    target = tmp_path / "scores.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(target)

    class Boom(pd.DataFrame):
        def to_parquet(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            Path(str(args[0])).write_bytes(b"partial")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_parquet(Boom({"a": [2]}), target)
    assert pd.read_parquet(target)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


def test_process_killed_mid_write_never_leaves_a_partial_file(tmp_path: Path) -> None:
    """SIGKILL during a write leaves either no file or the old one, never a truncated file."""
    target = tmp_path / "out.parquet"
    code = (
        "import sys, time, pandas as pd\n"
        "from churnclv._io import atomic_write\n"
        "def slow(tmp):\n"
        "    open(tmp, 'wb').write(b'half a parquet file')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        f"atomic_write({str(target)!r}, slow)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not target.exists()


def test_two_trainings_at_once_share_one_store(tiny_data: Path, tmp_path: Path) -> None:
    """Two `churnclv train --promote` at once on one new sqlite store: both create it (under
    its lock), both finish, the store is intact and each model has exactly one champion."""
    work = tmp_path / "work"
    procs = [
        subprocess.Popen(
            _train_cmd(tiny_data, work, seed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for seed in (11, 12)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
    assert sorted(_statuses(work)) == ["FINISHED"] * 2
    client = _client(work)
    for name in (CHURN_MODEL, VALUE_MODEL):
        versions = client.search_model_versions(f"name='{name}'")
        assert sorted(int(v.version) for v in versions) == [1, 2]
        assert all(v.status == "READY" for v in versions)
        aliases = {v.version: client.get_model_version(name, v.version).aliases for v in versions}
        holders = [v for v in versions if ALIAS in aliases[v.version]]
        assert len(holders) == 1, name
        assert holders[0].tags["promotion"].startswith("promoted: "), holders[0].tags
    db = sqlite3.connect(work / "mlruns.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
