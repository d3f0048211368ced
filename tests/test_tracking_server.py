"""A team's tracking server: an `mlflow server` over PostgreSQL, and concurrent promotions.

The server test starts a throwaway PostgreSQL cluster (Debian's ``postgresql``
package, which ``.ci/run`` installs) and an ``mlflow server`` on loopback, then
runs train --promote, models list, score and a serving process that hot-swaps
to a second promotion, all with ``--tracking-uri http://...``. Skipped where
PostgreSQL or ``psycopg2`` is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from churnclv.cli import main
from churnclv.training import ALIAS, CHURN_MODEL, VALUE_MODEL, tracking_uri_for

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_owner(cmd: list[str]) -> list[str]:
    """Run ``cmd`` as ``nobody`` when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "nobody", "--", *cmd]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session, and its children; bounded."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a loopback port with database ``mlflow``; its URI."""
    psycopg2: Any = pytest.importorskip("psycopg2")
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    root = Path(tempfile.mkdtemp(prefix="churnclv-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
    data, sock, port = root / "data", root / "sock", _free_port()
    run: dict[str, Any] = {"check": True, "capture_output": True, "timeout": 120}
    try:
        subprocess.run(
            _as_owner([str(pg / "initdb"), "-D", str(data), "-U", "postgres",
                       "--auth=trust", "-E", "UTF8"]), **run,
        )  # fmt: skip
        subprocess.run(_as_owner(["mkdir", str(sock)]), **run)
        options = f"-k {sock} -p {port} -c listen_addresses=127.0.0.1"
        subprocess.run(
            _as_owner([str(pg / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
                       "-w", "-t", "60", "-o", options, "start"]), **run,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')[-2000:]}")
    try:
        con = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE mlflow")
        con.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(
            _as_owner([str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tracking_server(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` over the PostgreSQL store, artifacts in a folder; its loopback URL."""
    import httpx

    tmp = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", postgres,
             "--artifacts-destination", str(tmp / "artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not up:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(proc)


def _inputs(data: Path) -> list[str]:
    return [
        "--transactions", str(data / "transactions.parquet"),
        "--events", str(data / "events.parquet"),
        "--customers", str(data / "customers.parquet"),
        "--as-of", "2024-01-01",
    ]  # fmt: skip


def _champions(uri: str) -> dict[str, Any]:
    """Each model's versions holding the champion alias (a list, to count them)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {
        name: [
            mv
            for mv in client.search_model_versions(f"name='{name}'")
            if ALIAS in (client.get_model_version(name, mv.version).aliases or [])
        ]
        for name in (CHURN_MODEL, VALUE_MODEL)
    }


def test_round_trip_through_a_postgres_backed_server(
    tracking_server: str, generated_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """train --promote, models list, score and a hot-swapping service all use the server."""
    import httpx
    from test_soak import running_server

    work = tmp_path / "work"
    uri = ["--tracking-uri", tracking_server, "--workdir", str(work)]
    train = ["train", *_inputs(generated_dir), *uri]
    assert main([*train, "--promote"]) == 0
    assert not (work / "mlruns.db").exists()  # nothing went to a local store
    assert main(["models", "list", *uri]) == 0
    assert CHURN_MODEL in capsys.readouterr().out
    out = tmp_path / "scores.parquet"
    assert main(["score", *_inputs(generated_dir), "--out", str(out), *uri]) == 0
    assert out.stat().st_size > 0
    shutil.copy(out, work / "scores.parquet")

    env = {"CHURNCLV_RELOAD_S": "1"}
    with running_server(work, 180, env=env, args=("--tracking-uri", tracking_server)) as (base, _):
        assert httpx.get(base + "/model", timeout=10).json()["model_version"] == (
            "churn:v1+value:v1"
        )
        assert main([*train, "--no-promote"]) == 0
        for name in (CHURN_MODEL, VALUE_MODEL):
            assert main(["models", "promote", name, "2", "--force", *uri]) == 0
        deadline = time.monotonic() + 60
        while (body := httpx.get(base + "/model", timeout=10).json())["model_version"] != (
            "churn:v2+value:v2"
        ):
            assert time.monotonic() < deadline, body
            time.sleep(0.5)
    champions = _champions(tracking_server)
    assert [len(v) for v in champions.values()] == [1, 1]


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_two_trainings_promoting_at_once_leave_one_champion_each(
    store: str, generated_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Concurrent `train --promote` on one store: one champion per model, whose gate passed.

    On a new sqlite store both create it at once (its creation is locked); on
    the server the champion may already be there. Both judge and crown; an
    alias names one version, so the last crowning wins, and only gate winners
    are crowned.
    """
    work = tmp_path / "work"
    uri = tracking_uri_for(work)
    if store == "server":
        uri = request.getfixturevalue("tracking_server")
    cmd = [str(BIN / "churnclv"), "train", *_inputs(generated_dir), "--workdir", str(work),
           "--tracking-uri", uri, "--promote"]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [out[-2000:] for out in outs]
    champions = _champions(uri)
    for name, holders in champions.items():
        assert len(holders) == 1, name
        assert holders[0].tags["promotion"].startswith("promoted: "), holders[0].tags
