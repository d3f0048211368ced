"""Bounded load test of the prediction service on loopback (DESIGN §8).

Starts ``churnclv serve`` on a free loopback port against a trained work
directory (``churnclv demo`` builds one when absent), then offers requests at a
fixed rate for a capped time and count from an open-loop client (request i
leaves at ``i / rate`` seconds whatever came back before; a bare asyncio
HTTP/1.1 client, so it takes little of the two cores):

1. ``/predict``, one customer with a 50-transaction + 100-event history;
2. ``/predict_features`` with 1,000 precomputed feature rows (sequential);

and measures, in the same run, the floor: the bare in-process feature + model
call for the same customer (no HTTP, no batching). Results go to
``benchmarks/results/serve.json``. Everything stops by itself.

Usage::

    python benchmarks/serve.py [--workdir DIR] [--rate 200] [--seconds 60] [--with-uplift]
        [--skip-hot-swap]
    python benchmarks/serve.py --scenario hot-swap [--reload-s 5] [--promote-at 20]

``--with-uplift`` serves with an uplift champion too (``churnclv train-uplift
--promote`` on the work directory's generated campaign log when it has none), so
every answer also carries ``uplift_<action>`` and the learned action; the result
records the served ``model_version`` under ``uplift``. ``--skip-hot-swap`` keeps
the result file's previous ``hot_swap`` section instead of running it again.

The hot-swap scenario (``benchmarks/_serve_hotswap.py``; run last by default,
alone with ``--scenario hot-swap``, which merges its section into the existing
result file) promotes a better champion mid-run and checks every answer's
``model_version``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
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


async def _open_loop(
    host: str,
    port: int,
    path: str,
    body: bytes,
    rate: float,
    seconds: float,
    max_requests: int,
    record: list[tuple[float, float, int, bytes]] | None = None,
) -> dict[str, Any]:
    """Open-loop load: request i is sent at ``t0 + i / rate`` whatever came back before.

    A bare asyncio HTTP/1.1 client over a pool of keep-alive connections (a new
    one opens when all are busy), so the client costs a fraction of a
    millisecond of CPU per request and leaves the cores to the server.
    Latency runs from the scheduled send time, so a client-side delay counts
    against the server rather than hiding it (no coordinated omission).
    With ``record``, every answer is appended to it as ``(scheduled send,
    arrival, status, body)``, times on the ``time.perf_counter`` clock.
    """
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    request = head + body
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened = 0
    lat: list[float] = []
    sent: list[float] = []
    errors: dict[str, int] = {}
    n = min(int(rate * seconds), max_requests)

    async def one(at: float) -> None:
        nonlocal opened
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        try:
            reused = bool(idle)
            if reused:
                reader, writer = idle.pop()
            else:
                reader, writer = await asyncio.open_connection(host, port)
                opened += 1
            writer.write(request)
            first = await reader.readline()
            if not first and reused:
                # the server closed this idle keep-alive connection (uvicorn: after 5 s)
                # before reading the request: resend once on a fresh one, as HTTP clients do
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                opened += 1
                writer.write(request)
                first = await reader.readline()
            status = int(first.split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            data = await reader.readexactly(length)
            idle.append((reader, writer))
            if record is not None:
                record.append((at, time.perf_counter(), status, data))
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        if status == 200:
            lat.append((time.perf_counter() - at) * 1000)
            sent.append(at)
        else:
            errors[str(status)] = errors.get(str(status), 0) + 1

    t0 = time.perf_counter() + 0.2
    await asyncio.gather(*(one(t0 + i / rate) for i in range(n)))
    elapsed = time.perf_counter() - t0
    for _, writer in idle:
        writer.close()
    return {
        "client": "open loop, fixed spacing, bare asyncio HTTP/1.1 keep-alive pool"
        + (" on uvloop" if "uvloop" in type(asyncio.get_running_loop()).__module__ else ""),
        "offered_rate": rate,
        "requests": n,
        "ok": len(lat),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "connections_opened": opened,
        "duration_s": round(elapsed, 2),
        "throughput_rps": round(len(lat) / elapsed, 1),
        "p50_ms": _pct(lat, 50),
        "p90_ms": _pct(lat, 90),
        "p99_ms": _pct(lat, 99),
        "max_ms": max(lat) if lat else None,
        # where in the phase the tail sits: p99 of the requests sent in each 10 s
        "p99_ms_by_10s": [
            _pct([x for x, at in zip(lat, sent, strict=True) if k <= (at - t0) / 10 < k + 1], 99)
            for k in range(math.ceil(n / rate / 10))
        ],
    }


def _event_loop_runner() -> Any:
    """``uvloop.run`` when uvloop is installed (the client shares the server's two cores,
    so its own CPU per request is kept small), else ``asyncio.run``."""
    try:
        import uvloop

        return uvloop.run
    except ImportError:
        return asyncio.run


def _ensure_uplift(churnclv: str, workdir: Path) -> dict[str, Any]:
    """Promote an uplift champion in ``workdir`` (when it has none); what is served."""
    from churnclv import load_champion
    from churnclv.training import tracking_uri_for

    trained_s = None
    if load_champion(tracking_uri_for(workdir)).uplift is None:
        data = workdir / "data"
        t = time.perf_counter()
        subprocess.run(
            [
                churnclv, "train-uplift", "--workdir", str(workdir), "--as-of", "2024-01-01",
                "--transactions", str(data / "transactions.parquet"),
                "--events", str(data / "events.parquet"),
                "--customers", str(data / "customers.parquet"),
                "--campaigns", str(data / "campaigns.parquet"), "--promote",
            ],
            check=True,
        )  # fmt: skip
        trained_s = round(time.perf_counter() - t, 1)
    champion = load_champion(tracking_uri_for(workdir))
    return {
        "model_version": champion.model_version,
        "basis": (champion.uplift.decision_ or {}).get("basis"),
        "actions": list(champion.uplift.actions_),
        "train_uplift_s": trained_s,
    }


def _floor(workdir: Path, customer: dict[str, Any], repeats: int = 50) -> dict[str, Any]:
    """The bare in-process validate + features + models + decisions call, one customer."""
    from churnclv import CustomerIn, OnlineScorer, load_champion, load_policy, validate_customers
    from churnclv.training import tracking_uri_for

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
        scorer.session.customer_features(cust, [cust[0].customer_id], cust[0].as_of)
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

    from churnclv import build_features

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
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--scenario", choices=["all", "hot-swap"], default="all")
    ap.add_argument("--reload-s", type=float, default=5.0, help="hot-swap: CHURNCLV_RELOAD_S")
    ap.add_argument("--promote-at", type=float, default=20.0, help="hot-swap: seconds in")
    ap.add_argument("--hot-swap-customers", type=int, default=2000)
    ap.add_argument("--with-uplift", action="store_true", help="serve an uplift champion too")
    ap.add_argument(
        "--skip-hot-swap", action="store_true", help="keep the previous hot_swap section"
    )
    ap.add_argument(
        "--hot-swap-workdir", type=Path, default=Path("/tmp/churnclv-bench-hotswap/work")
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.scenario == "hot-swap":
        return _hot_swap_only(args)
    churnclv = str(Path(sys.executable).parent / "churnclv")
    if not (args.workdir / "mlruns.db").exists():
        subprocess.run(
            [churnclv, "demo", "--workdir", str(args.workdir), "--customers", "2000"], check=True
        )
    uplift = _ensure_uplift(churnclv, args.workdir) if args.with_uplift else None
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
        run = _event_loop_runner()
        # The floor above left models, pandas and MLflow in this process: a full collection
        # of that heap in the middle of a phase stalls the client for hundreds of ms, and an
        # open-loop client counts its own stall against the server. The server does the same
        # (gc.freeze() after loading).
        gc.collect()
        gc.freeze()
        run(_open_loop("127.0.0.1", port, "/predict", body, 50, 3, 200))  # warm-up
        predict = run(
            _open_loop(
                "127.0.0.1", port, "/predict", body, args.rate, args.seconds, args.max_requests
            )
        )
        predict_high = run(
            _open_loop(
                "127.0.0.1", port, "/predict", body, args.rate * 1.5, args.seconds / 2,
                args.max_requests,
            )
        )  # fmt: skip
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
            "uplift": uplift,
            "predict_single_customer": {
                "history": "50 transactions + 100 events",
                "at_target_rate": predict,
                "at_1.5x_target_rate": predict_high,
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
    if args.skip_hot_swap:
        previous = json.loads(args.out.read_text()) if args.out.exists() else {}
        result["hot_swap"] = previous.get("hot_swap")
    else:
        result["hot_swap"] = _hot_swap(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def _hot_swap(args: argparse.Namespace) -> dict[str, Any]:
    from _serve_hotswap import hot_swap

    gc.collect()
    gc.freeze()
    return hot_swap(args, _customer(), sys.modules[__name__])


def _hot_swap_only(args: argparse.Namespace) -> int:
    """Run the hot-swap scenario alone and merge its section into the result file."""
    section = _hot_swap(args)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["hot_swap"] = section
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(section, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
