"""Reliability and security check of the service and the environment (issue 8).

1. **Soak**: starts ``churnclv serve`` on a free loopback port against a trained
   work directory (``churnclv demo --customers 1500`` builds one when absent)
   and sends a fixed count (default 10,000, hard cap 20,000) of mixed valid and
   invalid bodies (the mix of ``tests/test_soak.py``: malformed JSON, random
   bytes, wrong types, NaN/Infinity, huge numbers, empty and oversize lists,
   timestamps after ``as_of``, unknown fields, deep nesting, other routes) from
   a few concurrent httpx clients, with a wall-time cap. Records the count of
   each status and of each request kind, the 5xx (must be 0), answers that
   break the error contract, the RSS of the server process tree before and
   after (psutil), and p50/p99 latency overall and for valid ``/predict``.
2. **Graceful shutdown**: on the same server, 6 concurrent ``/predict`` calls
   of 200 customers each, SIGTERM to ``churnclv serve`` once BentoML's
   in-progress gauge shows all 6 accepted; records how many got a complete 200,
   the exit code, seconds from the signal to the exit and whether a new
   connection is refused afterwards (``sigterm_while_in_flight`` in
   ``tests/test_soak.py``).
3. **Properties** (optional, ``--property-examples N``, 0 to skip): runs
   ``tests/test_properties_models.py`` with N examples on the same work
   directory and records its counts (inputs tried, crashes, worst
   monotonicity gap).
4. **pip-audit** on the project's virtual environment; the result (vulnerable
   packages, or how many dependencies could not be audited and why, or the
   exact error) is recorded as is. ``--skip-audit`` skips it and carries the
   previous result over, dated, as ``previous``.
5. **Supplementary check (not pip-audit)** of the few packages on the serving
   path (:data:`SERVING_PATH`): PyPI's project JSON (``/pypi/<name>/json``,
   reachable where the per-version API and OSV are not) lists the known
   vulnerabilities of the project's *latest* release only, so it is exact for a
   package whose installed version is that release; the others are listed as
   not audited. Six look-ups, not the whole environment.

Results go to ``benchmarks/results/reliability.json``; a table is printed.

Usage::

    python benchmarks/reliability.py [--workdir DIR] [--requests 10000] [--max-seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"
HARD_MAX_REQUESTS = 20_000
HARD_MAX_SECONDS = 1_800.0
#: Packages that parse requests or load the model in the service (supplementary check).
SERVING_PATH = ("bentoml", "starlette", "uvicorn", "h11", "python-multipart", "mlflow")


def _soak_module() -> Any:
    """``tests/test_soak.py`` (the request mix and the server helper), loaded by path."""
    spec = importlib.util.spec_from_file_location("_soak", ROOT / "tests" / "test_soak.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_soak"] = mod
    spec.loader.exec_module(mod)
    return mod


def _tree_rss_mb(pid: int) -> dict[str, Any]:
    import psutil

    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    per = {}
    for p in procs:
        try:
            per[f"{p.pid}:{' '.join(p.cmdline()[:3])[-60:]}"] = round(
                p.memory_info().rss / 2**20, 1
            )
        except psutil.Error:
            continue
    return {"total_mb": round(sum(per.values()), 1), "processes": per}


def _pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 2) if xs else None


async def _soak(
    soak: Any, base: str, reqs: list[Any], concurrency: int, max_seconds: float, pid: int
) -> dict[str, Any]:
    import httpx

    statuses: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    problems: list[str] = []
    lat_all: list[float] = []
    lat_valid: list[float] = []
    started = time.monotonic()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for r in reqs:
        queue.put_nowait(r)
    stopped_early = False

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal stopped_early
        while not queue.empty():
            if time.monotonic() - started > max_seconds:
                stopped_early = True
                return
            req = queue.get_nowait()
            t = time.perf_counter()
            try:
                if req.method == "GET":
                    resp = await client.get(base + req.path)
                else:
                    resp = await client.post(
                        base + req.path,
                        content=req.body,
                        headers={"content-type": req.content_type},
                    )
                key, status, content = str(resp.status_code), resp.status_code, resp.content
            except httpx.HTTPError as exc:
                key, status, content = type(exc).__name__, 599, str(exc).encode()
            ms = (time.perf_counter() - t) * 1000
            lat_all.append(ms)
            if req.kind == "valid_predict" and status == 200:
                lat_valid.append(ms)
            statuses[key] += 1
            by_kind.setdefault(req.kind, Counter())[key] += 1
            problem = soak.check_response(req, status, content)
            if problem:
                problems.append(problem)

    rss_series: list[tuple[int, float]] = []

    async def sample_rss() -> None:
        next_at = 0
        while True:
            sent = sum(statuses.values())
            if sent >= next_at:
                rss_series.append((sent, _tree_rss_mb(pid)["total_mb"]))
                next_at += max(len(reqs) // 10, 1)
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_rss())
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    sampler.cancel()
    elapsed = time.monotonic() - started
    sent = sum(statuses.values())
    return {
        "requests_planned": len(reqs),
        "requests_sent": sent,
        "stopped_by_time_cap": stopped_early,
        "concurrency": concurrency,
        "duration_s": round(elapsed, 1),
        "requests_per_s": round(sent / elapsed, 1) if elapsed else None,
        "status_counts": dict(sorted(statuses.items())),
        "server_errors_5xx": sum(n for k, n in statuses.items() if k.isdigit() and int(k) >= 500),
        "transport_errors": sum(n for k, n in statuses.items() if not k.isdigit()),
        "contract_violations": len(problems),
        "contract_violation_examples": problems[:10],
        "latency_ms_all": {"p50": _pct(lat_all, 50), "p99": _pct(lat_all, 99)},
        "latency_ms_valid_predict_200": {
            "n": len(lat_valid),
            "p50": _pct(lat_valid, 50),
            "p99": _pct(lat_valid, 99),
        },
        "rss_mb_by_requests_sent": rss_series,
        "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())},
    }


def _properties(workdir: Path, examples: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        env = {
            **os.environ,
            "CHURNCLV_TEST_WORKDIR": str(workdir),
            "CHURNCLV_PROPERTY_STATS": str(stats),
            "CHURNCLV_PROPERTY_EXAMPLES": str(examples),
        }
        cmd = [sys.executable, "-m", "pytest", "-q"]
        cmd += ["tests/test_properties_models.py", "-W", "ignore"]
        t = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"error": f"pytest did not finish within {timeout} s"}
        out: dict[str, Any] = {
            "examples_requested": examples,
            "pytest_exit_code": proc.returncode,
            "duration_s": round(time.monotonic() - t, 1),
            "pytest_summary": (proc.stdout.strip().splitlines() or [""])[-1],
        }
        if stats.exists():
            out["stats"] = json.loads(stats.read_text())
        return out


#: What each kill test in tests/test_robustness.py does, and the count it asserts to be zero.
KILL_TESTS = {
    "test_interrupted_training_marks_run_failed_and_keeps_champion[SIGTERM]": (
        "training killed by SIGTERM mid-run", "champion_changes"),
    "test_interrupted_training_marks_run_failed_and_keeps_champion[SIGINT]": (
        "training interrupted by SIGINT mid-run", "champion_changes"),
    "test_an_interrupt_a_finalizer_swallowed_still_stops_the_training[logging]": (
        "an interrupt lost in a finalizer while logging the run", "champion_changes"),
    "test_an_interrupt_a_finalizer_swallowed_still_stops_the_training[between-gates]": (
        "an interrupt lost in a finalizer between the two promotion gates",
        "champion_changes"),
    "test_killed_training_run_is_failed_by_the_next_training": (
        "training SIGKILLed mid-run, then a new training", "champion_changes"),
    "test_failed_write_leaves_the_old_file": (
        "an output write failing midway", "partial_files"),
    "test_process_killed_mid_write_never_leaves_a_partial_file": (
        "a process SIGKILLed in the middle of an output write", "partial_files"),
    "test_two_trainings_at_once_share_one_store": (
        "two trainings at once on one sqlite store", "store_corruptions"),
}  # fmt: skip


def _kill_tests(timeout: float) -> dict[str, Any]:
    """Run the kill tests; each asserts its count is zero, so a pass is a measured 0."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:randomly"]
    cmd += ["tests/test_robustness.py", "-W", "ignore"]
    t = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"pytest did not finish within {timeout} s"}
    passed = {
        line.split("::", 1)[1].split(" ")[0]
        for line in proc.stdout.splitlines()
        if line.startswith("PASSED ")
    }
    counts: dict[str, int | None] = {}
    runs = []
    for name, (what, count) in KILL_TESTS.items():
        ok = name in passed
        runs.append({"test": name, "what": what, "passed": ok})
        known = ok and counts.get(count, 0) is not None
        counts[count] = 0 if known else None
    return {
        "pytest_exit_code": proc.returncode,
        "duration_s": round(time.monotonic() - t, 1),
        "pytest_summary": (proc.stdout.strip().splitlines() or [""])[-1],
        "runs": runs,
        "counts": counts,
        "note": "a count is 0 when every test asserting it passed, None when one did not",
    }


def _pip_audit(timeout: float) -> dict[str, Any]:
    exe = Path(sys.executable).parent / "pip-audit"
    if not exe.exists():
        return {"ran": False, "error": f"{exe} not found: pip install pip-audit"}
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        cmd = [str(exe), "--progress-spinner", "off", "-f", "json", "-o", str(report)]
        t = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"ran": False, "error": f"pip-audit did not finish within {timeout} s"}
        out: dict[str, Any] = {
            "ran": True,
            "pip_audit_version": version.strip(),
            "command": "pip-audit -f json (vulnerability service: PyPI)",
            "exit_code": proc.returncode,
            "duration_s": round(time.monotonic() - t, 1),
            "stderr_tail": proc.stderr.strip()[-600:],
        }
        if not report.exists():
            out["error"] = "no JSON report written"
            return out
        deps = json.loads(report.read_text()).get("dependencies", [])
    skipped = [d for d in deps if "skip_reason" in d]
    audited = [d for d in deps if "skip_reason" not in d]
    vulnerable = [
        {"name": d["name"], "version": d["version"], "ids": [v["id"] for v in d["vulns"]]}
        for d in audited
        if d.get("vulns")
    ]
    reasons = Counter(d["skip_reason"].split(":")[0] for d in skipped)
    out.update(
        {
            "dependencies": len(deps),
            "audited": len(audited),
            "skipped": len(skipped),
            "skip_reasons": dict(reasons),
            "skipped_examples": [d["skip_reason"] for d in skipped[:3]],
            "vulnerable_packages": vulnerable,
            "vulnerabilities": sum(len(v["ids"]) for v in vulnerable),
        }
    )
    if deps and not audited:
        out["verdict"] = (
            "NOT AUDITED: pip-audit exits 0 and prints 'No known vulnerabilities found', but "
            "every dependency was skipped (see skip_reasons), so nothing was checked"
        )
    elif vulnerable:
        out["verdict"] = f"{len(vulnerable)} vulnerable packages"
    else:
        out["verdict"] = f"no known vulnerabilities in {len(audited)} audited packages"
    return out


def _pypi_latest_check(names: tuple[str, ...], timeout: float = 20) -> dict[str, Any]:
    """Known vulnerabilities of ``names`` from PyPI's project JSON (latest release only)."""
    import importlib.metadata

    import httpx
    from packaging.version import Version

    audited: dict[str, Any] = {}
    not_audited: dict[str, str] = {}
    vulnerable: dict[str, list[str]] = {}
    for name in names:
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            not_audited[name] = "not installed"
            continue
        try:
            r = httpx.get(f"https://pypi.org/pypi/{name}/json", timeout=timeout)
            r.raise_for_status()
            doc = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            not_audited[name] = f"{installed}: PyPI project JSON failed: {exc}"[:200]
            continue
        latest = str(doc["info"]["version"])
        if Version(installed) != Version(latest):
            not_audited[name] = (
                f"installed {installed}, latest {latest}: the project JSON only lists the "
                "latest release's vulnerabilities"
            )
            continue
        ids = [v["id"] for v in doc.get("vulnerabilities") or [] if not v.get("withdrawn")]
        audited[name] = installed
        if ids:
            vulnerable[name] = ids
    return {
        "what": (
            "SUPPLEMENTARY, not pip-audit: PyPI project JSON 'vulnerabilities' (the PyPI "
            "advisory database pip-audit's default service reads), exact only where the "
            "installed version is the latest release"
        ),
        "scope": list(names),
        "audited": audited,
        "not_audited": not_audited,
        "vulnerable": vulnerable,
        "verdict": (
            f"{len(vulnerable)} vulnerable of {len(audited)} audited; "
            f"{len(not_audited)} not audited ({', '.join(sorted(not_audited)) or 'none'})"
        ),
    }


def _table(result: dict[str, Any]) -> str:
    s = result["soak"]
    rows = [
        ("requests sent / planned", f"{s['requests_sent']} / {s['requests_planned']}"),
        ("duration, req/s", f"{s['duration_s']} s, {s['requests_per_s']}"),
        ("status counts", json.dumps(s["status_counts"])),
        ("5xx / transport errors", f"{s['server_errors_5xx']} / {s['transport_errors']}"),
        ("4xx contract violations", str(s["contract_violations"])),
        (
            "latency p50 / p99 (all)",
            f"{s['latency_ms_all']['p50']} / {s['latency_ms_all']['p99']} ms",
        ),
        (
            "latency p50 / p99 (valid /predict)",
            f"{s['latency_ms_valid_predict_200']['p50']} / "
            f"{s['latency_ms_valid_predict_200']['p99']} ms",
        ),
        (
            "server RSS before / after",
            f"{s['rss_before']['total_mb']} / {s['rss_after']['total_mb']} MB",
        ),
    ]
    g = result.get("graceful_shutdown")
    if g:
        rows.append(
            (
                "SIGTERM with requests in flight",
                f"{g['completed_200']} / {g['requests']} answered 200 ({g['in_flight_at_sigterm']} "
                f"counted in flight by the metrics of the worker asked), exit "
                f"{g['exit_code']} after {g['shutdown_s']} s, new connection refused: "
                f"{g['new_connection_refused']}",
            )
        )
    k = result.get("kill_tests", {})
    if k.get("counts"):
        rows.append(
            (
                "kill tests (runs / counts)",
                f"{sum(r['passed'] for r in k['runs'])}/{len(k['runs'])} passed; {k['counts']}",
            )
        )
    p = result.get("properties", {})
    if "stats" in p:
        st = p["stats"]
        rows.append(
            (
                "property inputs / crashes",
                f"{st['examples']} examples ({st['customers']} customers) / {st['crashes']}",
            )
        )
        rows.append(
            (
                "monotone worst rise",
                f"{st['monotone_worst_increase']:.4f} over {st['monotone_pairs']} pairs",
            )
        )
    elif p:
        rows.append(("properties", json.dumps(p)[:80]))
    a = result["pip_audit"]
    rows.append(("pip-audit", a.get("verdict") or a.get("error", "?")))
    if "previous" in a:
        rows.append(("pip-audit, previous run", str(a["previous"].get("verdict"))))
    if "pypi_latest_check" in result:
        rows.append(("supplementary PyPI check", result["pypi_latest_check"]["verdict"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    """Run the soak, the shutdown check, the property counts and the audits; write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/churnclv-reliability-work"))
    ap.add_argument("--requests", type=int, default=10_000, help="soak requests (hard cap 20k)")
    ap.add_argument("--concurrency", type=int, default=4, help="concurrent soak clients")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="soak wall-time cap")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--property-examples", type=int, default=200, help="0 skips the run")
    ap.add_argument("--skip-kill-tests", action="store_true", help="skip test_robustness.py")
    ap.add_argument("--skip-audit", action="store_true", help="skip pip-audit (keeps the last)")
    ap.add_argument(
        "--skip-pypi-check", action="store_true", help="skip the supplementary PyPI check"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    n = min(args.requests, HARD_MAX_REQUESTS)
    max_seconds = min(args.max_seconds, HARD_MAX_SECONDS)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    churnclv = str(Path(sys.executable).parent / "churnclv")
    if not (args.workdir / "mlruns.db").exists():
        subprocess.run(
            [churnclv, "demo", "--workdir", str(args.workdir), "--customers", "1500"],
            check=True,
            timeout=900,
        )
    soak = _soak_module()
    reqs = soak.soak_requests(n, seed=args.seed)
    t0 = time.monotonic()
    with soak.running_server(args.workdir) as (base, proc):
        startup_s = round(time.monotonic() - t0, 1)
        rss_before = _tree_rss_mb(proc.pid)
        result_soak = asyncio.run(_soak(soak, base, reqs, args.concurrency, max_seconds, proc.pid))
        time.sleep(1.0)
        rss_after = _tree_rss_mb(proc.pid)
        import httpx

        alive = httpx.get(base + "/readyz", timeout=10).status_code
        graceful = soak.sigterm_while_in_flight(base, proc, requests=6, customers=200)
    result_soak.update(
        {
            "server_startup_s": startup_s,
            "rss_before": rss_before,
            "rss_after": rss_after,
            "rss_growth_mb": round(rss_after["total_mb"] - rss_before["total_mb"], 1),
            "readyz_after_soak": alive,
        }
    )
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_1m_at_end_of_soak": round(os.getloadavg()[0], 2),
        },
        "workdir": str(args.workdir),
        "soak": result_soak,
        "graceful_shutdown": graceful,
    }
    if args.property_examples > 0:
        result["properties"] = _properties(args.workdir, args.property_examples, timeout=900)
    if not args.skip_kill_tests:
        result["kill_tests"] = _kill_tests(timeout=900)
    if args.skip_audit:
        result["pip_audit"] = {"ran": False, "error": "skipped (--skip-audit)"}
        if args.out.exists():
            old = json.loads(args.out.read_text())
            prev = old.get("pip_audit", {})
            prev = prev.get("previous", prev)
            if prev.get("ran"):
                result["pip_audit"]["previous"] = {"date": old.get("date"), **prev}
    else:
        result["pip_audit"] = _pip_audit(600)
    if not args.skip_pypi_check:
        result["pypi_latest_check"] = _pypi_latest_check(SERVING_PATH)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(_table(result))
    print(f"\nwritten: {args.out}")
    return 0 if result_soak["server_errors_5xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
