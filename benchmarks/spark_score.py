"""Benchmark: `churnclv score --engine spark` on a Parquet input larger than 1 GiB (issue 20).

The Spark driver gets ``spark.driver.memory=1g`` on ``local[2]`` (in local
mode the driver JVM is also the executor, so the whole JVM heap is 1 GiB)
while the transactions file is larger than that: the run only finishes
because Spark scans the file on the executors, spills its shuffles to disk and
sends nothing but per-customer scores back. The scores are written by Spark
to a Parquet folder (``--out <folder>/``).

Steps (the data and the champion are made once and re-used):

1. a champion trained by ``churnclv train`` on ``churnclv generate
   --customers 2000 --seed 7`` (transactions only), promoted in its own work
   directory;
2. the input, written by DuckDB under ``--data-dir`` (never in the
   repository): ``--rows`` transactions (default 29M, the fewest whole
   millions over 1 GiB: 38.2 bytes a row, 28M rows are 0.996 GiB) of
   ``--customers`` customers (default 1M, 29 transactions each on average;
   ids drawn with a skew so purchase counts vary),
   timestamps uniform over the three years before ``2024-01-01``, log-normal
   amounts with 3% returns, plus a unique ``order_id``; 1M-row row groups,
   uncompressed (29M rows: 1.03 GiB);
3. the timed run: ``python -m churnclv score --engine spark --spark-conf
   spark.driver.memory=1g`` as a child process with
   ``CHURNCLV_SPARK_MASTER=local[2]``; wall time, and the peak RSS of the
   JVM and of the whole process tree sampled every 0.5 s;
4. equality: ``--sample`` customers (seeded hash of the id) are scored again
   by the DuckDB engine (``churnclv.load_inputs`` + ``churnclv.score`` on
   their transactions alone: decisions rank against the champion's reference,
   so a customer's scores do not depend on the batch) and compared with the
   Spark scores: numbers within 1e-6, strings equal.

Results go to ``benchmarks/results/spark_score.json``. The machine may be
shared: the load average at the start and the end is recorded with the
figures.

Usage::

    python benchmarks/spark_score.py [--rows 29000000] [--customers 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import psutil

import churnclv

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "spark_score.json"
AS_OF = "2024-01-01"
DRIVER_MEMORY = "1g"
MASTER = "local[2]"


def _cli(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "churnclv", *args], check=True, env=env)


def champion(data_dir: Path) -> str:
    """Train (once) a champion on 2,000 generated customers; return its tracking URI."""
    work = data_dir / "work"
    uri = f"sqlite:///{work / 'mlruns.db'}"
    if (work / "mlruns.db").exists():
        return uri
    small = data_dir / "small"
    _cli("generate", "--customers", "2000", "--seed", "7", "--out", str(small))
    _cli(
        "train", "--transactions", str(small / "transactions.parquet"), "--as-of", AS_OF,
        "--promote", "--workdir", str(work),
    )  # fmt: skip
    return uri


def big_input(data_dir: Path, rows: int, customers: int) -> Path:
    """Write (once) the transactions Parquet file with DuckDB."""
    path = data_dir / f"transactions_{rows}.parquet"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    span_us = 3 * 365 * 86_400 * 1_000_000
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SELECT setseed(0.7)")
    con.execute(
        f"""
        COPY (
            SELECT 'C' || lpad(CAST(c AS VARCHAR), 8, '0') AS customer_id,
                   TIMESTAMP '2021-01-01' + to_microseconds(CAST(floor(random() * {span_us})
                       AS BIGINT)) AS ts,
                   round(exp(3.2 + 0.8 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())),
                       2) * CASE WHEN random() < 0.03 THEN -1 ELSE 1 END AS amount,
                   'O' || lpad(CAST(i AS VARCHAR), 10, '0') AS order_id
            FROM (
                SELECT i, CAST(floor(pow(random(), 1.3) * {customers}) AS BIGINT) AS c
                FROM range({rows}) t(i)
            )
        ) TO '{tmp}' (FORMAT parquet, COMPRESSION uncompressed, ROW_GROUP_SIZE 1000000)
        """
    )
    con.close()
    os.replace(tmp, path)
    return path


def _tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(RSS of the whole process tree, RSS of its java processes), bytes."""
    total = java = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            rss = p.memory_info().rss
            total += rss
            if "java" in p.name():
                java += rss
        except psutil.Error:
            continue
    return total, java


def run_spark(
    tx: Path, uri: str, out: Path, work: Path, partitions: int, timeout_s: float
) -> dict[str, Any]:
    """The timed `score --engine spark` child process, killed (with its children) past
    ``timeout_s``."""
    env = {**os.environ, "CHURNCLV_SPARK_MASTER": MASTER}
    cmd = [
        sys.executable, "-m", "churnclv", "score", "--transactions", str(tx), "--as-of", AS_OF,
        "--out", f"{out}/", "--engine", "spark", "--tracking-uri", uri, "--workdir", str(work),
        "--spark-conf", f"spark.driver.memory={DRIVER_MEMORY}",
        "--spark-conf", f"spark.sql.shuffle.partitions={partitions}",
        "--spark-conf", f"spark.local.dir={out.parent / 'spark-local'}",
    ]  # fmt: skip
    start = time.perf_counter()
    peak_total = peak_java = 0
    log = out.parent / "score.log"
    timed_out = False
    with open(log, "wb") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            total, java = _tree_rss(ps)
            peak_total, peak_java = max(peak_total, total), max(peak_java, java)
            if time.perf_counter() - start > timeout_s:
                timed_out = True
                for child in [*ps.children(recursive=True), ps]:
                    with contextlib.suppress(psutil.Error):
                        child.kill()
                proc.wait()
                break
            time.sleep(0.5)
    wall = time.perf_counter() - start
    output = log.read_text(errors="replace")
    return {
        "command": " ".join(cmd),
        "exit_code": proc.returncode,
        "timed_out": timed_out,
        "wall_s": round(wall, 1),
        "peak_rss_tree_gib": round(peak_total / 2**30, 2),
        "peak_rss_jvm_gib": round(peak_java / 2**30, 2),
        "output_tail": output[-2000:],
    }


def _text(values: pd.Series) -> np.ndarray:
    """The values as strings, every missing value as one marker (NaN != NaN otherwise)."""
    return np.where(values.isna().to_numpy(), "<missing>", values.astype(str).to_numpy())


def equality(tx: Path, scores: Path, uri: str, sample: int) -> dict[str, Any]:
    """Score a seeded sample of customers on DuckDB and compare with the Spark scores."""
    con = duckdb.connect()
    ids = [
        r[0]
        for r in con.execute(
            f"SELECT customer_id FROM read_parquet('{scores}/*.parquet') "
            f"ORDER BY hash(customer_id || '#7') LIMIT {sample}"
        ).fetchall()
    ]
    con.execute("CREATE TEMP TABLE ids (customer_id VARCHAR)")
    con.executemany("INSERT INTO ids VALUES (?)", [(i,) for i in ids])
    subset = scores.parent / "sample_transactions.parquet"
    con.execute(
        f"COPY (SELECT t.* FROM read_parquet('{tx}') t JOIN ids USING (customer_id)) "
        f"TO '{subset}' (FORMAT parquet)"
    )
    spark = con.execute(
        f"SELECT s.* FROM read_parquet('{scores}/*.parquet') s JOIN ids USING (customer_id) "
        "ORDER BY customer_id"
    ).df()
    con.close()
    duck = churnclv.score(
        churnclv.load_inputs(subset),
        as_of=AS_OF,
        champion=churnclv.load_champion(uri),
        policy=churnclv.load_policy(),
    )
    duck = duck.sort_values("customer_id").reset_index(drop=True)
    diffs: dict[str, float] = {}
    mismatched: list[str] = []
    for col in duck.columns:
        a, b = duck[col], spark[col]
        if pd.api.types.is_float_dtype(a):
            x, y = a.to_numpy(float), b.to_numpy(float)
            gone = np.isnan(x)
            same_gaps = bool((gone == np.isnan(y)).all())
            diffs[col] = float(np.max(np.abs(x - y)[~gone], initial=0.0)) if same_gaps else np.inf
        elif not (_text(a) == _text(b)).all():
            mismatched.append(col)
    return {
        "sample_customers": len(ids),
        "same_customers": bool((duck["customer_id"] == spark["customer_id"]).all()),
        "max_abs_diff": max(diffs.values()),
        "max_abs_diff_by_column": diffs,
        "mismatched_columns": mismatched,
        "equal_within_1e-6": max(diffs.values()) <= 1e-6 and not mismatched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/churnclv-spark-score"))
    parser.add_argument("--rows", type=int, default=29_000_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--shuffle-partitions", type=int, default=32)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--timeout-s", type=float, default=3600.0)
    parser.add_argument(
        "--check-only", action="store_true", help="Re-check the equality of the last run's scores."
    )
    args = parser.parse_args()
    data = args.data_dir
    data.mkdir(parents=True, exist_ok=True)
    uri = champion(data)
    tx = big_input(data, args.rows, args.customers)
    out = data / "scores"
    if args.check_only:
        checked = equality(tx, out, uri, args.sample)
        print(json.dumps(checked, indent=2))
        if RESULT.exists():
            last = json.loads(RESULT.read_text())
            if last.get("input", {}).get("path") == str(tx) and "equality" in last:
                RESULT.write_text(json.dumps(last | {"equality": checked}, indent=2) + "\n")
        return
    load_start = os.getloadavg()
    run = run_spark(tx, uri, out, data / "score-work", args.shuffle_partitions, args.timeout_s)
    load_end = os.getloadavg()
    result: dict[str, Any] = {
        "benchmark": "score --engine spark, Parquet input larger than the driver memory",
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "load_average_1_5_15_at_start": [round(x, 1) for x in load_start],
            "load_average_1_5_15_at_end": [round(x, 1) for x in load_end],
        },
        "spark": {
            "master": MASTER,
            "spark.driver.memory": DRIVER_MEMORY,
            "spark.sql.shuffle.partitions": args.shuffle_partitions,
        },
        "input": {
            "path": str(tx),
            "bytes": tx.stat().st_size,
            "gib": round(tx.stat().st_size / 2**30, 2),
            "rows": args.rows,
            "columns": ["customer_id", "ts", "amount", "order_id"],
        },
        "run": run,
    }
    if run["exit_code"] == 0:
        con = duckdb.connect()
        count = con.execute(f"SELECT count(*) FROM read_parquet('{out}/*.parquet')").fetchall()
        con.close()
        result["customers_scored"] = int(count[0][0])
        result["equality"] = equality(tx, out, uri, args.sample)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "run"} | {"run": run}, indent=2))


if __name__ == "__main__":
    main()
