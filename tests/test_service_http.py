"""The service over real HTTP: `churnclv serve` as a process, fuzzing, keep-alive, logs."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_service import _small


# ---- real HTTP ----------------------------------------------------------------------------------
@pytest.fixture
def served(svc_workdir: Path) -> Iterator[str]:
    """`churnclv serve` on a free loopback port with an API key; stopped afterwards."""
    from test_soak import running_server

    with running_server(svc_workdir, 60, api_key="k3y") as (base, _):
        yield base


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(served: str, tmp_path: Path):
    """Schemathesis fuzzing every route of the service's own OpenAPI document gets no 5xx."""
    st = Path(sys.executable).parent / "st"
    if not st.exists():
        pytest.skip("schemathesis is not installed")
    proc = subprocess.run(
        [
            str(st), "run", served + "/docs.json", "--checks", "not_a_server_error",
            "--max-examples", "40", "--seed", "1", "--request-timeout", "30", "--no-color",
            "-H", "Authorization: Bearer k3y",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "passed" in proc.stdout


def test_real_http_server(served: str):
    """`churnclv serve` answers /predict over HTTP with the key, 401 without, and /metrics."""

    body = {"customers": [_small()]}
    assert httpx.post(served + "/predict", json=body).status_code == 401
    r = httpx.post(
        served + "/predict", json=body, headers={"Authorization": "Bearer k3y"}, timeout=30
    )
    assert r.status_code == 200, r.text
    assert 0.0 <= r.json()["predictions"][0]["churn_probability"] <= 1.0
    metrics = httpx.get(served + "/metrics", timeout=10)
    assert metrics.status_code == 200 and "bentoml_service_request" in metrics.text
    assert np.isfinite(r.json()["predictions"][0]["predicted_value"])


def test_idle_keep_alive_connection_outlives_uvicorns_default(served: str):
    """A keep-alive connection idle for 6 s (uvicorn's default closes at 5 s) still answers."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(served)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("GET", "/livez")
        first = conn.getresponse()
        first.read()
        assert first.status == 200
        time.sleep(6)
        conn.request("GET", "/livez")
        again = conn.getresponse()
        again.read()
        assert again.status == 200
    finally:
        conn.close()


def test_access_log_is_off_by_default_and_on_when_asked(svc_workdir: Path, tmp_path: Path):
    """Requests are not logged one by one unless CHURNCLV_ACCESS_LOG (--access-log) asks."""
    from test_soak import running_server

    for enabled in (False, True):
        log = tmp_path / f"serve-{enabled}.log"
        env = {"CHURNCLV_ACCESS_LOG": "1" if enabled else "0", "CHURNCLV_WORKERS": "1"}
        with running_server(svc_workdir, 60, env=env, log=log) as (base, _):
            for _ in range(3):
                assert httpx.get(base + "/model", timeout=10).status_code == 200
        assert ("/model" in log.read_text(errors="replace")) is enabled


@pytest.mark.slow
def test_becomes_ready_when_a_champion_is_trained_later(svc_workdir: Path, tmp_path: Path):
    """Started on an empty work directory the service is up but not ready (503s); after
    `churnclv train --promote` on the same store it becomes ready without a restart, and
    the failure is logged once per reason, not once per attempt."""
    from test_soak import running_server

    work, log = tmp_path / "work", tmp_path / "serve.log"
    work.mkdir()
    env = {"CHURNCLV_READY_RETRY_S": "1"}
    with running_server(work, 60, wait_ready=False, env=env, log=log) as (base, _):
        assert httpx.get(base + "/readyz", timeout=10).status_code == 503
        r = httpx.post(base + "/predict", json={"customers": [_small()]}, timeout=30)
        assert r.status_code == 503 and "not ready" in r.json()["error"], r.text
        r = httpx.post(base + "/predict_features", json={"rows": [{"a": 1}]}, timeout=30)
        assert r.status_code == 503 and "not ready" in r.json()["error"], r.text
        data = svc_workdir / "data"
        train = [
            str(Path(sys.executable).parent / "churnclv"), "train",
            "--transactions", str(data / "transactions.parquet"),
            "--events", str(data / "events.parquet"),
            "--customers", str(data / "customers.parquet"),
            "--as-of", "2024-01-01", "--promote", "--workdir", str(work),
        ]  # fmt: skip
        done = subprocess.run(train, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        trained = time.monotonic()
        while httpx.get(base + "/readyz", timeout=10).status_code != 200:
            assert time.monotonic() - trained < 180, "not ready 180 s after promotion"
            time.sleep(0.2)
        print(f"ready {time.monotonic() - trained:.1f} s after `churnclv train --promote` ended")
        # each worker loads on its own schedule: another may need up to one retry interval more
        ready = time.monotonic()
        while (
            r := httpx.post(base + "/predict", json={"customers": [_small()]}, timeout=30)
        ).status_code == 503:
            assert time.monotonic() - ready < 15, r.text
            time.sleep(0.2)
        assert r.status_code == 200, r.text
        assert 0.0 <= r.json()["predictions"][0]["churn_probability"] <= 1.0
    text = log.read_text(errors="replace")
    failures = [line for line in text.splitlines() if "champion NOT loaded" in line]
    loaded = [line for line in text.splitlines() if "champion loaded after" in line]
    assert failures and "retrying" in failures[0] and "restart" not in failures[0]
    # each worker process (CHURNCLV_WORKERS, tagged [entry_service:churnclv:N]) loads once
    workers = {line.split("[entry_service:")[1].split("]")[0] for line in loaded}
    assert len(loaded) == len(workers) >= 1, text[-3000:]
    for worker in workers:
        mine = [line for line in failures if f"[entry_service:{worker}]" in line]
        attempts = int(
            next(line for line in loaded if worker in line).split("after ")[1].split()[0]
        )
        print(f"{worker}: {attempts} load attempts, {len(mine)} failure log lines")
        # logged again only when the reason changes (the store changes while it trains)
        reasons = [line.split(" (", 1)[1].split("); /readyz", 1)[0] for line in mine]
        assert all(a != b for a, b in itertools.pairwise(reasons)), reasons
        assert len(mine) < attempts, (len(mine), attempts)
