"""Peak memory of the feature build from Parquet as transactions and customers grow.

Builds the full feature set as of one cutoff with :func:`churnclv.build_features`
given the Parquet path of the transactions (DuckDB scans the file; no input
sits in pandas), each run in its own child process, and records the child's
peak RSS (``VmHWM``) and wall time. Sizes (``--sizes``, in millions of
transactions) keep 100 transactions per customer: ``10`` is 100k customers,
``40`` 400k, ``100`` 1M.

Inputs: ``churnclv.generate(100_000, seed=20240101, future_days=0)``, each
history tiled with 45-day shifts and a sub-day jitter to 10M rows (the
:mod:`benchmarks.features` scheme); larger sizes are id-prefixed copies of
that set with their own jitter (copy ``k`` is customers ``k000-...``), written
copy by copy so generation never holds more than one copy. Files live under
``--data-dir`` (default ``/tmp/churnclv-bench-memory``), never in the
repository, and are reused.

Each size runs with DuckDB's default memory limit (60% of the machine's
memory, :func:`churnclv.features` ``CHURNCLV_DUCKDB_MEMORY_LIMIT``) and, with
``--limit``, again under that limit (e.g. ``2GB``): past it, DuckDB spills
its sorts and aggregates to ``CHURNCLV_DUCKDB_TEMP_DIR`` instead of growing.
Results go to ``benchmarks/results/features_memory.json``.

Usage::

    python benchmarks/features_memory.py [--sizes 10 40] [--limit 2GB]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "features_memory.json"
AS_OF = "2024-01-01"
SEED = 20240101
BASE_CUSTOMERS = 100_000
BASE_ROWS = 10_000_000
SHIFT_DAYS = 45


def _base(data_dir: Path) -> Path:
    """The 10M-row, 100k-customer transactions file (written once)."""
    import numpy as np
    import pandas as pd

    path = data_dir / "tx_10m.parquet"
    if path.exists():
        return path
    from churnclv import generate

    data_dir.mkdir(parents=True, exist_ok=True)
    tx0 = generate(BASE_CUSTOMERS, seed=SEED, as_of=AS_OF, future_days=0).transactions
    tx0 = tx0[["customer_id", "ts", "amount"]]
    rng = np.random.default_rng(SEED)
    copies = -(-BASE_ROWS // len(tx0))
    parts = []
    ts = tx0["ts"].to_numpy()
    for k in range(copies):
        jitter = rng.integers(0, 86_400_000_000, len(tx0)).astype("timedelta64[us]")
        shifted = ts - np.timedelta64(k * SHIFT_DAYS, "D") - (jitter if k else 0 * jitter)
        parts.append(tx0.assign(ts=shifted))
    tx = pd.concat(parts, ignore_index=True)
    keep = np.sort(rng.permutation(len(tx))[:BASE_ROWS])
    tx = tx.iloc[keep].reset_index(drop=True)
    tmp = path.with_suffix(".tmp")
    tx.to_parquet(tmp, index=False, row_group_size=1_000_000)
    tmp.rename(path)
    return path


def _sized(data_dir: Path, millions: int) -> Path:
    """``millions`` x 1M transactions: id-prefixed, jittered copies of the 10M file."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = _base(data_dir)
    if millions == BASE_ROWS // 1_000_000:
        return base
    path = data_dir / f"tx_{millions}m.parquet"
    if path.exists():
        return path
    copies, rest = divmod(millions * 1_000_000, BASE_ROWS)
    if rest:
        raise SystemExit(f"--sizes: {millions} is not a multiple of 10")
    import pandas as pd

    frame = pd.read_parquet(base)
    rng = np.random.default_rng(SEED + millions)
    tmp = path.with_suffix(".tmp")
    writer = None
    try:
        for k in range(copies):
            jitter = rng.integers(0, 3_600_000_000, len(frame)).astype("timedelta64[us]")
            part = frame.assign(
                customer_id=f"{k:03d}-" + frame["customer_id"], ts=frame["ts"] - jitter
            )
            table = pa.Table.from_pandas(part, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=1_000_000)
            print(f"    wrote copy {k + 1}/{copies}", flush=True)
    finally:
        if writer is not None:
            writer.close()
    tmp.rename(path)
    return path


def _child(path: str) -> int:
    """One build from the Parquet path; prints a JSON line."""
    from churnclv import build_features

    def status(field: str) -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    before = status("VmRSS")
    t0 = time.perf_counter()
    out = build_features(path, as_of=AS_OF)
    wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "wall_s": round(wall, 2),
                "rss_before_bytes": before,
                "peak_rss_bytes": status("VmHWM"),
                "customers_out": len(out),
                "columns_out": out.shape[1],
            }
        )
    )
    return 0


def _run(path: Path, limit: str | None, temp: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env["CHURNCLV_DUCKDB_TEMP_DIR"] = str(temp)
    if limit:
        env["CHURNCLV_DUCKDB_MEMORY_LIMIT"] = limit
    else:
        env.pop("CHURNCLV_DUCKDB_MEMORY_LIMIT", None)
    cmd = [sys.executable, __file__, "--child", str(path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"ok": False, "error": proc.stderr[-2000:]}
    return {
        "ok": True,
        "memory_limit": limit or "default",
        **json.loads(proc.stdout.splitlines()[-1]),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (``--child PATH``: one measured build)."""
    import pyarrow.parquet as pq

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--limit", default="", help="also run under this DuckDB memory limit")
    parser.add_argument("--data-dir", default="/tmp/churnclv-bench-memory")
    parser.add_argument("--out", default="", help="result file (default results/...json)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child)
    load_start = [round(x, 2) for x in os.getloadavg()]
    data_dir = Path(args.data_dir)
    runs: list[dict[str, Any]] = []
    for millions in args.sizes:
        print(f"{millions}M transactions: preparing ...", flush=True)
        path = _sized(data_dir, millions)
        meta = pq.ParquetFile(path).metadata
        for limit in [None, args.limit or None] if args.limit else [None]:
            print(f"    build (memory limit {limit or 'default'}) ...", flush=True)
            run = _run(path, limit, data_dir / "spill")
            run.update(transactions=meta.num_rows, parquet_bytes=path.stat().st_size)
            print(f"    {run.get('wall_s')} s, peak {run.get('peak_rss_bytes', 0) / 2**30:.2f} GiB")
            runs.append(run)
    ratios = {}
    for limit in {r["memory_limit"] for r in runs if r["ok"]}:
        ok = sorted(
            (r for r in runs if r["ok"] and r["memory_limit"] == limit),
            key=lambda r: r["transactions"],
        )
        if len(ok) >= 2:
            ratios[limit] = {
                f"{r['transactions'] // 10**6}M_over_{ok[0]['transactions'] // 10**6}M": round(
                    r["peak_rss_bytes"] / ok[0]["peak_rss_bytes"], 2
                )
                for r in ok[1:]
            }
    report = {
        "benchmark": "features_memory",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "platform": platform.platform(),
            "load_avg_at_start": load_start,
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "rule": "build_features(<transactions.parquet>, as_of) in a fresh child; peak = VmHWM",
        "runs": runs,
        "peak_rss_ratios": ratios,
    }
    out = Path(args.out) if args.out else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(ratios))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
