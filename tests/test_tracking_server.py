"""A team's tracking server: an `mlflow server` over PostgreSQL, and concurrent promotions.

The module starts one throwaway PostgreSQL cluster (Debian's ``postgresql``
package, which ``.ci/run`` installs) and one ``mlflow server`` on loopback, and
trains once on a few hundred generated customers (``train --promote`` with
``--tracking-uri http://...``). The round trip then lists, scores twice,
monitors and serves a process that hot-swaps to a second promotion, all through
the server; the concurrency test promotes from two processes at once. Two
trainings at once on one sqlite store are in ``test_robustness.py``. Skipped
where PostgreSQL or ``psycopg2`` is missing.
"""

from __future__ import annotations

import glob
import json
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
from churnclv.training import ALIAS, CHURN_MODEL, VALUE_MODEL

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


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a throwaway process started in its own session, and its children."""
    if proc.poll() is None:
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
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
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
        _kill(proc)


# Few customers and a short history: the server's plumbing is under test, not the models.
AS_OF = "2024-01-01"
EARLIER = "2023-09-01"  # its 90-day horizons have ended by AS_OF: a backtest for `monitor`


@pytest.fixture(scope="module")
def trained(tracking_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `train --promote` of 300 generated customers through the server (champion v1)."""
    tmp = tmp_path_factory.mktemp("server-round-trip")
    data, work = tmp / "data", tmp / "work"
    generate = ["generate", "--customers", "300", "--seed", "7", "--history-days", "500",
                "--future-days", "120", "--out", str(data)]  # fmt: skip
    assert main(generate) == 0
    inputs = [
        "--transactions", str(data / "transactions.parquet"),
        "--events", str(data / "events.parquet"),
        "--customers", str(data / "customers.parquet"),
    ]  # fmt: skip
    uri = ["--tracking-uri", tracking_server, "--workdir", str(work)]
    train = ["train", *inputs, "--as-of", AS_OF, "--max-cutoffs", "2"]
    assert main([*train, "--value-horizon-days", "90", "--promote", *uri]) == 0
    return {"inputs": inputs, "uri": uri, "work": work, "tmp": tmp}


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _register_copy(uri: str, name: str) -> str:
    """A new version of ``name`` with the champion's artifact and run: cheap, and gate-equal."""
    client = _client(uri)
    mv = client.get_model_version_by_alias(name, ALIAS)
    tags = {"model_kind": mv.tags["model_kind"]}
    model_id = mv.model_id or mv.source.removeprefix("models:/")  # MLflow 3: a logged model
    return str(
        client.create_model_version(
            name, mv.source, run_id=mv.run_id, tags=tags, model_id=model_id
        ).version
    )


def _champions(uri: str) -> dict[str, Any]:
    """Each model's versions holding the champion alias (a list, to count them)."""
    client = _client(uri)
    return {
        name: [
            mv
            for mv in client.search_model_versions(f"name='{name}'")
            if ALIAS in (client.get_model_version(name, mv.version).aliases or [])
        ]
        for name in (CHURN_MODEL, VALUE_MODEL)
    }


def _model_version(uri: str) -> str:
    client = _client(uri)
    churn, value = (client.get_model_version_by_alias(n, ALIAS) for n in (CHURN_MODEL, VALUE_MODEL))
    return f"churn:v{churn.version}+value:v{value.version}"


def test_round_trip_through_a_postgres_backed_server(
    tracking_server: str, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """train --promote (the fixture), models list, score twice, monitor and a hot-swapping
    service all go through the server; nothing is written to a local store."""
    import httpx
    from test_soak import running_server

    work, uri, inputs = trained["work"], trained["uri"], trained["inputs"]
    assert main(["models", "list", *uri]) == 0
    assert CHURN_MODEL in capsys.readouterr().out
    for as_of in (EARLIER, AS_OF):
        out = trained["tmp"] / f"scores-{as_of}.parquet"
        assert main(["score", *inputs, "--as-of", as_of, "--out", str(out), *uri]) == 0
        assert (work / "snapshots" / f"{as_of}.parquet").is_file()
    shutil.copy(out, work / "scores.parquet")  # what /lookup serves

    code = main(["monitor", *inputs, "--as-of", AS_OF, *uri])
    report = json.loads((work / "monitor.json").read_text())
    assert code == (3 if report["verdict"] == "retrain" else 0)
    assert report["snapshots"] == [EARLIER, AS_OF] and not report["warnings"]
    assert [row["as_of"] for row in report["backtest"]] == [EARLIER]
    assert report["drift"]["psi"] and report["reference_auc"] is not None  # read from the server
    client = _client(tracking_server)
    experiment = client.get_experiment_by_name("churnclv-monitor")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [r.data.tags["verdict"] for r in runs] == [report["verdict"]]
    assert runs[0].data.tags["history"].startswith(f"1 check on {AS_OF}")  # and its chart:
    assert [a.path for a in client.list_artifacts(runs[0].info.run_id, "")].count(
        "monitoring_history.png"
    ) == 1
    assert not (work / "mlruns.db").exists()  # nothing went to a local store

    before = _model_version(tracking_server)
    env = {"CHURNCLV_RELOAD_S": "1", "CHURNCLV_WORKERS": "1"}
    with running_server(work, 180, env=env, args=("--tracking-uri", tracking_server)) as (base, _):
        assert httpx.get(base + "/model", timeout=10).json()["model_version"] == before
        for name in (CHURN_MODEL, VALUE_MODEL):
            version = _register_copy(tracking_server, name)
            assert main(["models", "promote", name, version, "--force", *uri]) == 0
        after = _model_version(tracking_server)
        assert after != before
        deadline = time.monotonic() + 60
        while (body := httpx.get(base + "/model", timeout=10).json())["model_version"] != after:
            assert time.monotonic() < deadline, body
            time.sleep(0.5)
    assert [len(v) for v in _champions(tracking_server).values()] == [1, 1]


def test_two_promotions_at_once_leave_one_champion_each(
    tracking_server: str, trained: dict[str, Any]
) -> None:
    """Two processes run `models promote` (with the gate) of different versions at once: each
    model ends with exactly one champion, one of the two, its promotion recorded."""
    news = {name: [_register_copy(tracking_server, name) for _ in range(2)]
            for name in (CHURN_MODEL, VALUE_MODEL)}  # fmt: skip
    procs = []
    for i in range(2):
        argv = [
            ["models", "promote", name, news[name][i], *trained["uri"]]
            for name in (CHURN_MODEL, VALUE_MODEL)
        ]
        code = f"import sys; from churnclv.cli import main; sys.exit(max(map(main, {argv!r})))"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
    outs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [out[-2000:] for out in outs]
    for name, holders in _champions(tracking_server).items():
        assert len(holders) == 1, name
        assert str(holders[0].version) in news[name], (name, holders[0].version)
        assert holders[0].tags["promotion"].startswith("promoted: "), holders[0].tags
