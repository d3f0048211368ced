"""The hot-swap scenario of ``benchmarks/serve.py``: a better champion promoted under load.

A fresh work directory gets synthetic data (``churnclv generate``, 2,000
customers, 1,600 days of history) and a deliberately weak first champion:
trained on 300 of the customers, as of a year earlier, on two cutoffs. Its
labels end on or before the validation cutoff of a full training, so the
champion gate can judge it on the same validation rows. ``churnclv serve``
then runs with ``CHURNCLV_RELOAD_S`` set and takes open-loop one-customer
``/predict`` load; ``--promote-at`` seconds in, ``churnclv train --promote`` on
every customer as of the later date runs on the same store (under ``nice
19``: it shares the cores with the server and the client). Every answer's
``model_version`` is recorded with its send and arrival times, and
``churnclv models list`` goes into the log and the result.

Recorded: errors, latency over the whole run, when the promotion finished
(both champion aliases moved, read from the SQLite store every 50 ms: the
training process exits a moment later), when the first answer on the new
champion arrived after that, how many answers sent later than promotion +
reload interval still carried the old champion, and whether any answer
carried a version that is neither the champion before nor the one after
(churn from one, value from another).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

__all__ = ["hot_swap"]

_FIRST_AS_OF = "2023-01-01"
_AS_OF = "2024-01-01"
_TABLES = ("transactions", "events", "customers")


def _cli() -> str:
    return str(Path(sys.executable).parent / "churnclv")


def _train_args(data: Path, as_of: str, workdir: Path, *extra: str) -> list[str]:
    files = [f"--{n}={data / (n + '.parquet')}" for n in _TABLES]
    return [
        _cli(),
        "train",
        *files,
        "--as-of",
        as_of,
        "--promote",
        "--workdir",
        str(workdir),
        *extra,
    ]


def _prepare(workdir: Path, customers: int, log: Any) -> None:
    """Synthetic data, a 300-customer subset and the weak first champion."""
    import pandas as pd

    marker = workdir / ".churnclv-bench-hotswap"
    if workdir.exists():
        if not marker.exists():
            raise SystemExit(f"{workdir} exists and was not made by this benchmark: not removed")
        shutil.rmtree(workdir)
    data, small = workdir / "data", workdir / "small"
    small.mkdir(parents=True)
    marker.touch()
    gen = [_cli(), "generate", "--out", str(data), "--customers", str(customers)]
    gen += ["--as-of", _AS_OF, "--history-days", "1600"]
    subprocess.run(gen, check=True, stdout=log, stderr=subprocess.STDOUT)
    ids = set(pd.read_parquet(data / "customers.parquet")["customer_id"].iloc[:300])
    for name in _TABLES:
        frame = pd.read_parquet(data / f"{name}.parquet")
        frame[frame["customer_id"].isin(ids)].to_parquet(small / f"{name}.parquet")
    first = _train_args(small, _FIRST_AS_OF, workdir, "--max-cutoffs", "2")
    subprocess.run(first, check=True, stdout=log, stderr=subprocess.STDOUT)


def _rows(listing: list[str]) -> list[dict[str, str]]:
    """The table of ``churnclv models list`` as one dict per version (wrapped cells joined)."""
    heads = [
        c.strip() for ln in listing if ln.startswith("\u2503") for c in ln.split("\u2503")[1:-1]
    ]
    rows: list[list[str]] = []
    for line in listing:
        if not line.startswith("\u2502"):
            continue
        cells = [c.strip() for c in line.split("\u2502")[1:-1]]
        if (cells and cells[0]) or not rows:
            rows.append(cells)
        else:  # a wrapped cell's next line
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=False)]
    return [dict(zip(heads, r, strict=False)) for r in rows]


def _models_list(workdir: Path) -> list[str]:
    env = {**os.environ, "COLUMNS": "220"}
    out = subprocess.run(
        [_cli(), "models", "list", "--workdir", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return [line.rstrip() for line in out.splitlines() if line.strip()]


def _aliases(db: Path) -> tuple[str, ...]:
    """The champion aliases' versions, read straight from the SQLite store (< 1 ms)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
        rows = con.execute(
            "SELECT name, version FROM registered_model_aliases WHERE alias = 'champion' "
            "ORDER BY name"
        ).fetchall()
    return tuple(f"{name}:v{version}" for name, version in rows)


async def _watch_aliases(db: Path, stop: asyncio.Event, moves: dict[str, float]) -> None:
    """Record when the champion aliases differ from their first reading (every 50 ms)."""
    first = _aliases(db)
    while not stop.is_set():
        try:
            now = _aliases(db)
        except sqlite3.Error:  # the training holds a write lock for a moment
            now = first
        if now != first:
            moves.setdefault("first_alias_moved", time.perf_counter())
            if all(a != b for a, b in zip(now, first, strict=True)):
                moves["all_aliases_moved"] = time.perf_counter()
                return
        await asyncio.sleep(0.05)


async def _load_and_promote(
    open_loop: Any, port: int, body: bytes, args: Any, workdir: Path, log: Any
) -> tuple[dict[str, Any], list[tuple[float, float, int, bytes]], dict[str, float], int]:
    """The open-loop phase with ``churnclv train --promote`` started ``promote_at`` s in."""
    record: list[tuple[float, float, int, bytes]] = []
    start = time.perf_counter() + 0.2  # _open_loop's first send
    load = asyncio.ensure_future(
        open_loop("127.0.0.1", port, "/predict", body, args.rate, args.seconds, 10**9, record)
    )
    await asyncio.sleep(max(0.0, start + args.promote_at - time.perf_counter()))
    cmd = ["nice", "-n", "19", *_train_args(workdir / "data", _AS_OF, workdir)]
    stop, moves = asyncio.Event(), dict[str, float]()
    watch = asyncio.ensure_future(_watch_aliases(workdir / "mlruns.db", stop, moves))
    t_start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=log, stderr=subprocess.STDOUT)
    rc = await proc.wait()
    t_exit = time.perf_counter()
    stats = await load
    stop.set()
    await watch
    times = {"start": start, "train_start": t_start, "train_exit": t_exit, **moves}
    return stats, record, times, rc


def _rel(t: float | None, start: float) -> float | None:
    return None if t is None else round(t - start, 3)


def _versions(
    record: list[tuple[float, float, int, bytes]],
    times: dict[str, float],
    before: str,
    after: str,
    reload_s: float,
) -> dict[str, Any]:
    """Which champion answered when, against the promotion's end."""
    start = times["start"]
    end = times.get("all_aliases_moved", times["train_exit"])
    seen: Counter[str] = Counter()
    first_new: float | None = None
    first_new_sent: float | None = None
    last_old: float | None = None
    old_after_deadline = after_deadline = 0
    for at, done, status, data in record:
        if status != 200:
            continue
        version = str(json.loads(data).get("model_version"))
        seen[version] += 1
        after_deadline += at >= end + reload_s
        if version == after and after != before:
            if first_new is None or done < first_new:
                first_new, first_new_sent = done, at
        elif version == before:
            last_old = done if last_old is None else max(last_old, done)
            if at >= end + reload_s:
                old_after_deadline += 1
    mixed = {v: n for v, n in seen.items() if v not in (before, after)}
    return {
        "champion_before": before,
        "champion_after": after,
        "answers_by_version": dict(seen),
        "training_started_s": round(times["train_start"] - start, 3),
        "first_alias_moved_s": _rel(times.get("first_alias_moved"), start),
        "promotion_finished_s": _rel(times.get("all_aliases_moved"), start),
        "training_exited_s": _rel(times["train_exit"], start),
        "first_new_answer_arrived_s": None if first_new is None else round(first_new - start, 3),
        "first_new_answer_after_promotion_s": None
        if first_new is None
        else round(first_new - end, 3),
        "first_new_answer_sent_s": None
        if first_new_sent is None
        else round(first_new_sent - start, 3),
        "last_old_answer_arrived_s": None if last_old is None else round(last_old - start, 3),
        "answers_sent_after_promotion_plus_interval": after_deadline,
        "answers_sent_after_promotion_plus_interval_on_old": old_after_deadline,
        # false too when the promotion came too late for any answer to be judged
        "every_answer_after_promotion_plus_interval_on_new": after_deadline > 0
        and old_after_deadline == 0
        and not mixed
        and before != after,
        "mixed_version_answers": sum(mixed.values()),
        "mixed_versions_seen": mixed,
    }


def hot_swap(args: Any, customer: dict[str, Any], client: Any) -> dict[str, Any]:
    """Run the scenario; the ``hot_swap`` section of ``results/serve.json``.

    ``client`` is the ``serve`` script module: its open-loop client, event loop
    runner, readiness probe and port picker.
    """
    import httpx

    open_loop, runner, wait_ready = (
        client._open_loop,
        client._event_loop_runner(),
        client._wait_ready,
    )
    workdir: Path = args.hot_swap_workdir
    load_start = os.getloadavg()
    workdir.parent.mkdir(parents=True, exist_ok=True)
    log_path = workdir.parent / (workdir.name + ".log")
    with log_path.open("w") as log:
        t = time.perf_counter()
        _prepare(workdir, args.hot_swap_customers, log)
        prep_s = time.perf_counter() - t
        port = client._free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k != "CHURNCLV_API_KEY"}
        env["CHURNCLV_RELOAD_S"] = str(args.reload_s)
        server_log = (workdir / "serve.log").open("w")
        proc = subprocess.Popen(
            [_cli(), "serve", "--workdir", str(workdir), "--port", str(port)],
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_ready(base, proc)
            before = httpx.get(base + "/model", timeout=5).json()["model_version"]
            body = json.dumps({"customers": [customer]}).encode()
            runner(open_loop("127.0.0.1", port, "/predict", body, 50, 3, 200))  # warm-up
            load_at_run = os.getloadavg()
            stats, record, times, rc = runner(
                _load_and_promote(open_loop, port, body, args, workdir, log)
            )
            load_end = os.getloadavg()
            info = httpx.get(base + "/model", timeout=5).json()
            after = info["model_version"]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            server_log.close()
        listing = _models_list(workdir)
        print("\n".join(["churnclv models list:", *listing]), file=log, flush=True)
    print("\n".join(["churnclv models list:", *listing]))
    swaps = [
        line.strip()
        for line in (workdir / "serve.log").read_text(errors="replace").splitlines()
        if "champion swapped" in line or "not loaded" in line
    ]
    versions = _versions(record, times, before, after, args.reload_s)
    goal = {
        "zero_errors": stats["errors"] == 0,
        "p99_le_50ms": stats["p99_ms"] is not None and stats["p99_ms"] <= 50,
        "every_answer_after_swap_plus_interval_on_new": versions[
            "every_answer_after_promotion_plus_interval_on_new"
        ],
        "no_mixed_versions": versions["mixed_version_answers"] == 0,
    }
    return {
        "what": (
            "one-customer /predict open loop while `churnclv train --promote` of a better "
            "model runs on the same store (nice 19); the service polls the aliases every "
            "CHURNCLV_RELOAD_S seconds and swaps the champion in the background"
        ),
        "measured": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "churnclv": dist_version("churnclv"),
        },
        "workdir": str(workdir),
        "log": str(log_path),
        "customers": args.hot_swap_customers,
        "first_champion": f"300 customers, as of {_FIRST_AS_OF}, 2 cutoffs",
        "second_training": f"{args.hot_swap_customers} customers, as of {_AS_OF}, default cutoffs",
        "reload_s": args.reload_s,
        "promote_started_at_s": args.promote_at,
        "prepare_s": round(prep_s, 1),
        "train_exit_code": rc,
        "load_avg_at_start": [round(x, 2) for x in load_start],
        "load_avg_at_load_start": [round(x, 2) for x in load_at_run],
        "load_avg_at_end": [round(x, 2) for x in load_end],
        "load": stats,
        "versions": versions,
        "server_swap_log": swaps,
        "model_after": {
            "model_version": after,
            "reload_error": info.get("reload_error"),
            "training_window": info.get("training_window"),
        },
        "models_list": _rows(listing),
        "goal": goal,
        "goal_met": all(goal.values()),
    }
