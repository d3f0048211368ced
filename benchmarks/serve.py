"""Bounded load test of the prediction service on loopback (DESIGN §8).

Starts ``churnclv serve`` on a free loopback port against a trained work
directory (``churnclv demo`` builds one when absent), then offers requests at a
fixed rate for a capped time and count. The load comes from ``hey`` (a Go
client: ``apt-get install hey``; each of ``--connections`` workers is throttled
to its share of the rate) when it is installed, so the client leaves the two
cores to the server; otherwise from an async httpx client in this process,
which competes with the server for CPU and understates what it can do:

1. ``/predict``, one customer with a 50-transaction + 100-event history;
2. ``/predict_features`` with 1,000 precomputed feature rows (sequential);

and measures, in the same run, the floor: the bare in-process feature + model
call for the same customer (no HTTP, no batching). Results go to
``benchmarks/results/serve.json``. Everything stops by itself.

Usage::

    python benchmarks/serve.py [--workdir DIR] [--rate 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _customer(seed: int = 0, as_of: str = "2024-01-01") -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    end = np.datetime64(as_of, "s")
    tx_ts = np.sort(end - (rng.uniform(1, 700, 50) * 86400).astype("timedelta64[s]"))
    ev_ts = np.sort(end - (rng.uniform(1, 700, 100) * 86400).astype("timedelta64[s]"))
    kinds = ["login", "session", "page_view", "email_open", "support_ticket", "complaint"]
    return {
        "customer_id": f"bench-{seed}",
        "as_of": as_of,
        "transactions": [
            {"ts": str(t), "amount": round(float(a), 2)}
            for t, a in zip(tx_ts, rng.gamma(2.0, 30.0, 50), strict=True)
        ],
        "events": [
            {"ts": str(t), "event_type": str(k)}
            for t, k in zip(ev_ts, rng.choice(kinds, 100), strict=True)
        ],
        "signup_ts": str(tx_ts[0] - np.timedelta64(3, "D")),
        "attributes": {"plan": "basic", "region": "north", "acquisition_channel": "organic"},
    }


def _pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


def _hey(url: str, body: bytes, rate: float, seconds: float, connections: int) -> dict[str, Any]:
    """Fixed-rate load from ``hey``: ``connections`` workers at ``rate / connections`` each."""
    import csv
    import shutil
    import tempfile

    exe = shutil.which("hey")
    assert exe is not None
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        started = time.perf_counter()
        out = subprocess.run(
            [exe, "-z", f"{seconds:g}s", "-c", str(connections), "-q", f"{rate / connections:g}",
             "-m", "POST", "-T", "application/json", "-D", str(body_file), "-t", "10",
             "-o", "csv", url],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
    lat: list[float] = []
    errors: dict[str, int] = {}
    for row in csv.DictReader(out.stdout.splitlines()):
        code = row.get("status-code", "")
        if code == "200":
            lat.append(float(row["response-time"]) * 1000)
        else:
            errors[code or "no-response"] = errors.get(code or "no-response", 0) + 1
    n = len(lat) + sum(errors.values())
    return {
        "client": f"hey, {connections} workers x {rate / connections:g} req/s",
        "offered_rate": rate,
        "requests": n,
        "ok": len(lat),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "duration_s": round(elapsed, 2),
        "throughput_rps": round(n / elapsed, 1),
        "p50_ms": _pct(lat, 50),
        "p90_ms": _pct(lat, 90),
        "p99_ms": _pct(lat, 99),
        "max_ms": max(lat) if lat else None,
    }


async def _fixed_rate(
    url: str, body: bytes, rate: float, seconds: float, max_requests: int
) -> dict[str, Any]:
    import httpx

    n = min(int(rate * seconds), max_requests)
    lat: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:

        async def one(at: float) -> None:
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            start = time.perf_counter()
            try:
                r = await client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
                ok = r.status_code == 200
                key = str(r.status_code)
            except httpx.HTTPError as exc:
                ok, key = False, type(exc).__name__
            if ok:
                lat.append((time.perf_counter() - start) * 1000)  # from the scheduled send
            else:
                errors[key] = errors.get(key, 0) + 1

        t0 = time.perf_counter() + 0.2
        started = time.perf_counter()
        await asyncio.gather(*(one(t0 + i / rate) for i in range(n)))
        elapsed = time.perf_counter() - started - 0.2
    return {
        "offered_rate": rate,
        "requests": n,
        "ok": len(lat),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "duration_s": round(elapsed, 2),
        "throughput_rps": round(len(lat) / elapsed, 1),
        "p50_ms": _pct(lat, 50),
        "p90_ms": _pct(lat, 90),
        "p99_ms": _pct(lat, 99),
        "max_ms": max(lat) if lat else None,
    }


def _floor(workdir: Path, customer: dict[str, Any], repeats: int = 50) -> dict[str, Any]:
    """The bare in-process validate + features + models + decisions call, one customer."""
    from churnclv.decisions import load_policy
    from churnclv.serving._online import CustomerIn, OnlineScorer, validate_customers
    from churnclv.training import load_champion, tracking_uri_for

    scorer = OnlineScorer(load_champion(tracking_uri_for(workdir)), load_policy())
    cust = [CustomerIn.model_validate(customer)]
    for _ in range(5):
        scorer.score_customers(cust)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        validate_customers(cust)
        scorer.score_customers(cust)
        times.append((time.perf_counter() - t) * 1000)
    feats = []
    for _ in range(repeats):
        t = time.perf_counter()
        from churnclv.serving._online import canonical_frames

        tx, ev, cu = canonical_frames(cust, scorer.static_columns)
        scorer.session.features(tx, ev, cu, cust[0].as_of)  # type: ignore[arg-type]
        feats.append((time.perf_counter() - t) * 1000)
    scorer.session.close()
    return {
        "what": "validate + prepared feature query + score_features + contributions, in-process",
        "p50_ms": _pct(times, 50),
        "p99_ms": _pct(times, 99),
        "features_only_p50_ms": _pct(feats, 50),
    }


def _feature_rows(workdir: Path, n: int = 1000) -> list[dict[str, Any]]:
    import pandas as pd

    from churnclv.features import build_features

    data = workdir / "data"
    tx = pd.read_parquet(data / "transactions.parquet")
    ev = pd.read_parquet(data / "events.parquet")
    cu = pd.read_parquet(data / "customers.parquet")
    feats = build_features(tx, ev, cu, as_of="2024-01-01").head(n)
    feats["as_of"] = feats["as_of"].astype(str)
    rows = json.loads(feats.to_json(orient="records"))
    return rows


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server not ready in time")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``benchmarks/results/serve.json``."""
    import httpx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/churnclv-bench-work"))
    ap.add_argument("--rate", type=float, default=200.0, help="offered requests per second")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the target phase")
    ap.add_argument("--max-requests", type=int, default=12_000, help="cap per phase")
    ap.add_argument(
        "--connections", type=int, default=50, help="hey workers (each at rate/connections)"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    churnclv = str(Path(sys.executable).parent / "churnclv")
    if not (args.workdir / "mlruns.db").exists():
        subprocess.run(
            [churnclv, "demo", "--workdir", str(args.workdir), "--customers", "2000"], check=True
        )
    customer = _customer()
    floor = _floor(args.workdir, customer)
    rows = _feature_rows(args.workdir)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "CHURNCLV_API_KEY"}
    proc = subprocess.Popen(
        [churnclv, "serve", "--workdir", str(args.workdir), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    result: dict[str, Any] = {}
    try:
        _wait_ready(base, proc)
        body = json.dumps({"customers": [customer]}).encode()
        asyncio.run(_fixed_rate(base + "/predict", body, 20, 2, 100))  # warm-up
        if shutil.which("hey"):
            predict = _hey(base + "/predict", body, args.rate, args.seconds, args.connections)
            predict_low = _hey(
                base + "/predict", body, args.rate * 1.5, args.seconds / 2, args.connections
            )
        else:
            predict = asyncio.run(
                _fixed_rate(base + "/predict", body, args.rate, args.seconds, args.max_requests)
            )
            predict_low = asyncio.run(
                _fixed_rate(base + "/predict", body, args.rate / 4, args.seconds / 2, 3000)
            )
            predict["client"] = predict_low["client"] = "httpx in the benchmark process"
        fbody = json.dumps({"rows": rows}).encode()
        ftimes, ferr = [], 0
        with httpx.Client(timeout=60) as client:
            for _ in range(10):
                t = time.perf_counter()
                r = client.post(
                    base + "/predict_features",
                    content=fbody,
                    headers={"content-type": "application/json"},
                )
                if r.status_code == 200 and len(r.json()["predictions"]) == len(rows):
                    ftimes.append((time.perf_counter() - t) * 1000)
                else:
                    ferr += 1
        metrics = httpx.get(base + "/metrics", timeout=5).text
        batching = httpx.get(base + "/model", timeout=5).json().get("batching")
        result = {
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "load_avg_1m_at_end": os.getloadavg()[0],
            },
            "workdir": str(args.workdir),
            "predict_single_customer": {
                "history": "50 transactions + 100 events",
                "at_target_rate": predict,
                (
                    "at_1.5x_target_rate"
                    if "hey" in predict.get("client", "")
                    else "at_quarter_rate"
                ): predict_low,
            },
            "predict_features_1000_rows": {
                "requests": 10,
                "errors": ferr,
                "p50_ms": _pct(ftimes, 50),
                "max_ms": max(ftimes) if ftimes else None,
                "rows_per_s": round(1000 / (statistics.median(ftimes) / 1000), 1)
                if ftimes
                else None,
            },
            "floor_in_process_single_customer": floor,
            "batching_all_phases": batching,
            "bentoml_request_metrics_lines": sum(
                1 for line in metrics.splitlines() if line.startswith("bentoml_service_request")
            ),
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
