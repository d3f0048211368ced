"""Killed runs leave the champion untouched and no run RUNNING; outputs are never partial."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from churnclv._io import atomic_write_parquet
from churnclv.training import ALIAS, CHURN_MODEL, VALUE_MODEL, tracking_uri_for

pytestmark = pytest.mark.slow


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


def _train_and_kill(work: Path, sig: int) -> subprocess.Popen[bytes]:
    """Start `churnclv train`, wait until its MLflow run is RUNNING, then send ``sig``."""
    data = work / "data"
    proc = subprocess.Popen(
        [
            sys.executable, "-c", "from churnclv.cli import _entry; _entry()", "train",
            "--transactions", str(data / "transactions.parquet"),
            "--events", str(data / "events.parquet"),
            "--customers", str(data / "customers.parquet"),
            "--as-of", "2024-01-01", "--promote", "--seed", "3", "--workdir", str(work),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    db = sqlite3.connect(work / "mlruns.db", timeout=30)
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                running = db.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'")
                if running.fetchone()[0]:
                    proc.send_signal(sig)
                    break
            except sqlite3.OperationalError:  # locked by the writer: look again
                pass
            time.sleep(0.01)
    finally:
        db.close()
    proc.wait(timeout=120)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_training_marks_run_failed_and_keeps_champion(
    demo_workdir: Path, tmp_path: Path, sig: int
) -> None:
    """A training stopped by SIGTERM or Ctrl-C mid-run ends FAILED and changes no champion."""
    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work)
    before = _champions(work)
    proc = _train_and_kill(work, sig)
    assert proc.returncode == 1
    statuses = _statuses(work)
    assert "RUNNING" not in statuses
    assert statuses.count("FAILED") == 1
    assert _champions(work) == before


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("where", ["_log_plots", "second _gate"], ids=["logging", "between-gates"])
def test_an_interrupt_a_finalizer_swallowed_still_stops_the_training(
    demo_workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """An interrupt lost inside a finalizer during logging or gating ends the run FAILED, with
    no champion changed, although every gate is forced to promote."""
    from _signals import lose_an_interrupt

    import churnclv.training._registry as registry_module
    import churnclv.training._tracking as tracking_module
    from churnclv._interrupt import handle_interrupts, stop_requested
    from churnclv._io import load_inputs
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
    data = work / "data"
    tables = load_inputs(
        data / "transactions.parquet", data / "events.parquet", data / "customers.parquet"
    )
    with handle_interrupts(), pytest.raises(KeyboardInterrupt):
        train(
            tables,
            as_of="2024-01-01",
            tracking_uri=tracking_uri_for(work),
            seed=3,
            promote=True,
            should_stop=stop_requested,
        )
    statuses = _statuses(work)
    assert len(statuses) == runs_before + 1
    assert statuses.count("FAILED") == 1 and "RUNNING" not in statuses
    assert _champions(work) == before
    assert gates == ([] if where == "_log_plots" else [CHURN_MODEL, VALUE_MODEL])


def test_killed_training_run_is_failed_by_the_next_training(
    demo_workdir: Path, tmp_path: Path
) -> None:
    """A SIGKILLed training's run (left RUNNING) is marked FAILED when training next starts."""
    from churnclv._io import load_inputs
    from churnclv.training import train

    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work)
    before = _champions(work)
    proc = _train_and_kill(work, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert "RUNNING" in _statuses(work)
    assert _champions(work) == before
    data = work / "data"
    tables = load_inputs(
        data / "transactions.parquet", data / "events.parquet", data / "customers.parquet"
    )
    train(tables, as_of="2024-01-01", tracking_uri=tracking_uri_for(work), seed=3)
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


def _train_cmd(work: Path, seed: int) -> list[str]:
    data = work / "data"
    return [
        sys.executable, "-c", "from churnclv.cli import _entry; _entry()", "train",
        "--transactions", str(data / "transactions.parquet"),
        "--events", str(data / "events.parquet"),
        "--customers", str(data / "customers.parquet"),
        "--as-of", "2024-01-01", "--promote", "--seed", str(seed), "--workdir", str(work),
    ]  # fmt: skip


def test_two_trainings_at_once_share_one_store(demo_workdir: Path, tmp_path: Path) -> None:
    """Two `churnclv train --promote` at once on one sqlite store both finish, uncorrupted."""
    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work)
    procs = [
        subprocess.Popen(_train_cmd(work, seed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for seed in (11, 12)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    assert sorted(_statuses(work)) == ["FINISHED"] * 3
    versions = _client(work).search_model_versions(f"name='{CHURN_MODEL}'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3]
    assert all(v.status == "READY" for v in versions)
    db = sqlite3.connect(work / "mlruns.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
