"""Benchmark of the point-in-time feature build (issue 3, acceptance 3).

Measures, in one run and each in its own child process (so no run's memory or
caches leak into another's figures):

1. one cutoff, full feature set (transactions + events + customers):
   :func:`churnclv.features.build_features` on DuckDB against the plain-pandas
   oracle (``tests/_oracle.py``) on the same input, wall time of each, their
   ratio and the peak RSS of the DuckDB process; when the oracle does not
   finish within its time limit it is re-run, with DuckDB, on a documented
   subset of customers (the largest size where both ran is reported); and
   the same DuckDB build given the Parquet paths, so DuckDB scans the files
   and no input sits in pandas (reading included in its time);
2. ten monthly cutoffs against one on DuckDB (the training stack), from
   frames and from Parquet paths;
3. the Featuretools peer on a 1M-transaction subset, in its own virtualenv
   (``benchmarks/_peers/featuretools_rfm.py``): the same RFM values as
   :func:`churnclv.features.rfm_summary` (recency and tenure since the
   last/first purchase, purchases, purchase days, net monetary total; the
   values are checked equal) as of one cutoff (``cutoff_time``), from the
   same frame (the EntitySet build plus the computation, the ratio the goal
   is checked on) and the computation alone (the stricter ratio), each the
   best of 3 runs, against ``rfm_summary`` on the same rows (best of 5); the
   lighter DFS set of earlier runs is timed too, and ``build_features`` on
   the rows (transactions only: the full transaction-derived set) for scale.

Inputs are synthetic (:func:`churnclv._generate.generate`, ``future_days=0``
so every row is history) tiled to the target size: each generated customer's
history is repeated with per-copy time shifts of ``SHIFT_DAYS`` days and a
sub-day jitter, then a seeded uniform sample keeps exactly the target row
counts. They are written once to Parquet under ``--data-dir`` and re-used; no
generation is timed. The Featuretools venv (``--ft-venv``, default
``/tmp/ft-venv``) is created on demand with ``pip install featuretools
'pandas<3' pyarrow`` when absent.

Results go to ``benchmarks/results/features.json`` (``--size full``) and a
readable table is printed. Every child has a time limit and an RSS cap
(``--rss-cap-gib``, default 12: the machine is shared) and is killed past
either, so the run stops by itself; children run with their working directory
under ``--data-dir`` so DuckDB spill files never land in the repository.

Usage::

    python benchmarks/features.py [--size full|small] [--skip-peer]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _features_report import (
    _check_match,
    _duckdb_threads,
    _gib,
    _goal,
    _table,
    _versions,
)
from _features_runs import DUCKDB_TIMEOUT_S, _engine_cmd, _peer, _spawn

__all__ = ["SIZES", "Size", "main"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "features.json"
AS_OF = "2024-01-01"
SHIFT_DAYS = 45
SEED = 20240101
PEER_CUTOFF_BACK_DAYS = 90


@dataclass(frozen=True)
class Size:
    """Row counts and time limits of one benchmark size.

    Attributes
    ----------
    customers : int
        Customers generated (every tiled copy keeps its customer id).
    transactions : int
        Transaction rows after tiling and sampling.
    events : int
        Event rows after tiling and sampling.
    peer_transactions : int
        Transaction rows of the Featuretools comparison subset.
    oracle_timeout_s : int
        Time limit of one oracle run before falling back to a subset.
    oracle_subset_customers : int
        Customers of the fallback subset.
    """

    customers: int
    transactions: int
    events: int
    peer_transactions: int
    oracle_timeout_s: int
    oracle_subset_customers: int


SIZES = {
    "full": Size(100_000, 10_000_000, 20_000_000, 1_000_000, 480, 25_000),
    "small": Size(10_000, 500_000, 1_000_000, 100_000, 300, 2_500),
}


# --------------------------------------------------------------------- data


def _tile(frame: Any, copies: int, n_rows: int, rng: Any) -> Any:
    """Repeat ``frame`` with per-copy time shifts, then keep exactly ``n_rows`` rows."""
    import numpy as np
    import pandas as pd

    ts = frame["ts"].to_numpy()
    parts = []
    for k in range(copies):
        shift = np.timedelta64(k * SHIFT_DAYS, "D")
        jitter = rng.integers(0, 86_400_000_000, len(frame)).astype("timedelta64[us]")
        shifted = ts - shift - (jitter if k else np.timedelta64(0, "us"))
        parts.append(frame.assign(ts=shifted))
    out = pd.concat(parts, ignore_index=True)
    keep = np.sort(rng.permutation(len(out))[:n_rows])
    out = out.iloc[keep]
    order = np.argsort(out["ts"].to_numpy(), kind="stable")
    return out.iloc[order].reset_index(drop=True)


def _paths(data_dir: Path, size_name: str) -> dict[str, Path]:
    """The Parquet inputs of one size under ``data_dir``."""
    base = data_dir / size_name
    return {
        "transactions": base / "transactions.parquet",
        "events": base / "events.parquet",
        "customers": base / "customers.parquet",
        "peer_transactions": base / "peer_transactions.parquet",
    }


def _prepare(size: Size, paths: dict[str, Path]) -> dict[str, Any]:
    """Generate and tile the inputs once; return what was built (never timed)."""
    import numpy as np
    import pyarrow.parquet as pq

    if all(p.exists() for p in paths.values()):
        return json.loads((paths["transactions"].parent / "meta.json").read_text())
    from churnclv import generate

    t0 = time.perf_counter()
    data = generate(size.customers, seed=SEED, as_of=AS_OF, future_days=0)
    tx0 = data.transactions[["customer_id", "ts", "amount"]]
    ev0 = data.events[["customer_id", "ts", "event_type"]]
    rng = np.random.default_rng(SEED)
    tx_copies = math.ceil(size.transactions / len(tx0))
    ev_copies = math.ceil(size.events / len(ev0))
    tx = _tile(tx0, tx_copies, size.transactions, rng)
    ev = _tile(ev0, ev_copies, size.events, rng)
    paths["transactions"].parent.mkdir(parents=True, exist_ok=True)
    tx.to_parquet(paths["transactions"], index=False)
    ev.to_parquet(paths["events"], index=False)
    data.customers.to_parquet(paths["customers"], index=False)
    # peer subset: whole histories of the first customers (by id) up to exactly N rows
    peer = tx.sort_values(["customer_id", "ts"], kind="stable").head(size.peer_transactions)
    peer = peer.sort_values("ts", kind="stable").reset_index(drop=True)
    peer.to_parquet(paths["peer_transactions"], index=False)
    meta = {
        "generator": (
            f"churnclv._generate.generate({size.customers}, seed={SEED}, as_of={AS_OF!r}, "
            "future_days=0)"
        ),
        "generated_rows": {"transactions": len(tx0), "events": len(ev0)},
        "tiling": {
            "transaction_copies": tx_copies,
            "event_copies": ev_copies,
            "shift_days_per_copy": SHIFT_DAYS,
            "jitter": "uniform sub-day, per row, copies >= 1",
            "sample": "seeded uniform sample without replacement to the exact row count",
        },
        "customers": int(tx["customer_id"].nunique()),
        "transactions": len(tx),
        "events": len(ev),
        "ts_range": [str(tx["ts"].min()), str(tx["ts"].max())],
        "peer_subset": {
            "transactions": len(peer),
            "customers": int(peer["customer_id"].nunique()),
            "rule": "rows of the first customers by id, sorted by (customer_id, ts), head(N)",
        },
        "parquet_bytes": {k: p.stat().st_size for k, p in paths.items()},
        "parquet_rows": {k: pq.ParquetFile(p).metadata.num_rows for k, p in paths.items()},
        "prepare_s": round(time.perf_counter() - t0, 1),
    }
    (paths["transactions"].parent / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _cutoffs(n: int) -> list[str]:
    """``n`` cutoffs 30 days apart, the latest at ``AS_OF`` (monthly training stack)."""
    import pandas as pd

    latest = pd.Timestamp(AS_OF)
    return sorted(str(latest - pd.Timedelta(days=30 * k)) for k in range(n))


# -------------------------------------------------------------------- child


def _proc_status_bytes(field: str) -> int:
    """``VmRSS``/``VmHWM`` of this process from ``/proc/self/status``, in bytes.

    ``VmHWM`` is the peak RSS of this process's own address space. It is used
    instead of ``ru_maxrss``, which on Linux carries the parent's peak over
    ``fork``/``exec`` and so reports the harness's own peak for small children.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(args: argparse.Namespace) -> int:
    """Load the inputs, run one engine ``--repeat`` times, print a JSON result line."""
    import pandas as pd

    t0 = time.perf_counter()
    if args.child == "duckdb-parquet":  # DuckDB scans the files: nothing is loaded here
        tx, ev, cust = args.transactions, args.events, args.customers
    else:
        tx = pd.read_parquet(args.transactions)
        ev = pd.read_parquet(args.events) if args.events else None
        cust = pd.read_parquet(args.customers) if args.customers else None
    if args.subset_customers:
        ids = sorted(cust["customer_id"].unique())[: args.subset_customers]
        keep = pd.Index(ids)
        tx = tx[tx["customer_id"].isin(keep)].reset_index(drop=True)
        ev = ev[ev["customer_id"].isin(keep)].reset_index(drop=True)
        cust = cust[cust["customer_id"].isin(keep)].reset_index(drop=True)
    load_s = time.perf_counter() - t0
    rss_loaded = _proc_status_bytes("VmRSS")
    cutoffs = json.loads(args.cutoffs)
    as_of: Any = cutoffs[0] if len(cutoffs) == 1 else cutoffs

    if args.child in ("duckdb", "duckdb-parquet"):
        from churnclv.features import build_features

        def run() -> Any:
            return build_features(tx, ev, cust, as_of=as_of, engine="duckdb")

    elif args.child == "duckdb-rfm":
        from churnclv.features import rfm_summary

        def run() -> Any:
            return rfm_summary(tx, observation_period_end=as_of)

    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from _oracle import oracle_features

        def run() -> Any:
            return oracle_features(tx, ev, cust, as_of=as_of)

    times = []
    out = None
    for _ in range(args.repeat):
        del out
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
    peak = _proc_status_bytes("VmHWM")
    if args.save:
        out.to_parquet(args.save, index=False)
    result = {
        "engine": args.child,
        "times_s": times,
        "best_s": min(times),
        "load_s": load_s,
        "rows_in": {"transactions": _rows(tx), "events": 0 if ev is None else _rows(ev)},
        "customers_out": int(out["customer_id"].nunique()),
        "cutoffs": len(cutoffs),
        "rows_out": len(out),
        "columns_out": out.shape[1],
        "rss_after_load_bytes": rss_loaded,
        "peak_rss_bytes": peak,
    }
    print(json.dumps(result))
    return 0


def _rows(data: Any) -> int:
    """Rows of a frame, or of a Parquet file given by path (from its metadata)."""
    if isinstance(data, str):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(data).metadata.num_rows)
    return len(data)


# ------------------------------------------------------------------- parent


def _parent(args: argparse.Namespace) -> int:
    """Prepare the inputs, run every measurement in its own child, write the report."""
    import pandas as pd

    size = SIZES[args.size]
    load_start = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    data_dir = Path(args.data_dir)
    paths = _paths(data_dir, args.size)
    work = data_dir / args.size / "out"
    work.mkdir(parents=True, exist_ok=True)
    rss_cap = int(args.rss_cap_gib * 2**30)
    spawn = functools.partial(_spawn, cwd=work, rss_cap=rss_cap)
    print(f"preparing inputs under {paths['transactions'].parent} ...", flush=True)
    meta = _prepare(size, paths)
    one_cut = _cutoffs(1)
    ten_cuts = _cutoffs(10)
    full_label = (
        f"{meta['transactions']:,} tx + {meta['events']:,} events, {meta['customers']:,} customers"
    )

    # 1. one cutoff: DuckDB (own process, peak RSS) and the oracle on the same input
    print("1/4 DuckDB, one cutoff ...", flush=True)
    duck1 = spawn(
        _engine_cmd("duckdb", paths, one_cut, repeat=args.repeat, save=work / "duck1.parquet"),
        DUCKDB_TIMEOUT_S,
    )
    print(f"    {duck1.get('times_s', duck1.get('error'))}", flush=True)
    print("2/4 pandas oracle, one cutoff ...", flush=True)
    oracle = spawn(
        _engine_cmd("oracle", paths, one_cut, repeat=1, save=work / "oracle1.parquet"),
        size.oracle_timeout_s,
    )
    print(f"    {oracle.get('times_s', oracle.get('error'))}", flush=True)
    single: dict[str, Any] = {"size_label": full_label, "duckdb": duck1, "oracle": oracle}
    if duck1.get("ok"):
        single["duckdb_rss_increase_bytes"] = (
            duck1["peak_rss_bytes"] - duck1["rss_after_load_bytes"]
        )
    if duck1.get("ok") and oracle.get("ok"):
        single["comparison"] = {
            "size_label": full_label,
            "ratio": oracle["best_s"] / duck1["best_s"],
            "match": _check_match(work / "duck1.parquet", work / "oracle1.parquet"),
        }
    elif duck1.get("ok"):
        n = size.oracle_subset_customers
        print(f"    oracle fallback: first {n:,} customers ...", flush=True)
        sub_d = spawn(
            _engine_cmd(
                "duckdb",
                paths,
                one_cut,
                repeat=args.repeat,
                save=work / "duck_sub.parquet",
                subset=n,
            ),
            DUCKDB_TIMEOUT_S,
        )
        sub_o = spawn(
            _engine_cmd(
                "oracle", paths, one_cut, repeat=1, save=work / "oracle_sub.parquet", subset=n
            ),
            size.oracle_timeout_s,
        )
        single["oracle_subset"] = {"customers": n, "duckdb": sub_d, "oracle": sub_o}
        if sub_d.get("ok") and sub_o.get("ok"):
            label = (
                f"{sub_d['rows_in']['transactions']:,} tx + {sub_d['rows_in']['events']:,} "
                f"events, {n:,} customers (subset)"
            )
            single["comparison"] = {
                "size_label": label,
                "ratio": sub_o["best_s"] / sub_d["best_s"],
                "match": _check_match(work / "duck_sub.parquet", work / "oracle_sub.parquet"),
            }

    # 1b. one cutoff with DuckDB scanning the Parquet files itself (inputs never in pandas)
    print("1b  DuckDB from Parquet paths, one cutoff ...", flush=True)
    dp1 = spawn(_engine_cmd("duckdb-parquet", paths, one_cut, repeat=args.repeat), DUCKDB_TIMEOUT_S)
    print(f"    {dp1.get('times_s', dp1.get('error'))}", flush=True)
    single["duckdb_from_parquet"] = dp1

    # 2. ten monthly cutoffs vs one
    print("3/4 DuckDB, ten monthly cutoffs ...", flush=True)
    duck10 = spawn(
        _engine_cmd("duckdb", paths, ten_cuts, repeat=max(1, args.repeat - 1)), DUCKDB_TIMEOUT_S
    )
    print(f"    {duck10.get('times_s', duck10.get('error'))}", flush=True)
    dp10 = spawn(
        _engine_cmd("duckdb-parquet", paths, ten_cuts, repeat=max(1, args.repeat - 1)),
        DUCKDB_TIMEOUT_S,
    )
    print(f"    from Parquet: {dp10.get('times_s', dp10.get('error'))}", flush=True)
    multi: dict[str, Any] = {
        "ok": bool(duck10.get("ok") and duck1.get("ok")),
        "size_label": full_label,
        "cutoffs": ten_cuts,
        "duckdb_1": "see single_cutoff.duckdb",
        "duckdb_10": duck10,
        "duckdb_from_parquet_10": dp10,
    }
    if multi["ok"]:
        multi["ratio_10_over_1"] = duck10["best_s"] / duck1["best_s"]
    if dp10.get("ok") and dp1.get("ok"):
        multi["ratio_10_over_1_from_parquet"] = dp10["best_s"] / dp1["best_s"]
    else:
        n = size.oracle_subset_customers
        print(f"    ten cutoffs fallback: first {n:,} customers ...", flush=True)
        sub1 = spawn(
            _engine_cmd("duckdb", paths, one_cut, repeat=args.repeat, subset=n),
            DUCKDB_TIMEOUT_S,
        )
        sub10 = spawn(_engine_cmd("duckdb", paths, ten_cuts, repeat=1, subset=n), DUCKDB_TIMEOUT_S)
        multi["full_size_attempt"] = duck10
        multi["subset"] = {"customers": n, "duckdb_1": sub1, "duckdb_10": sub10}
        if sub1.get("ok") and sub10.get("ok"):
            multi["ok"] = True
            multi["size_label"] = (
                f"{sub1['rows_in']['transactions']:,} tx + {sub1['rows_in']['events']:,} "
                f"events, {n:,} customers (subset)"
            )
            multi["duckdb_10"] = sub10
            multi["duckdb_1"] = sub1
            multi["ratio_10_over_1"] = sub10["best_s"] / sub1["best_s"]

    # 3. Featuretools peer
    peer: dict[str, Any] = {}
    peer_cutoff = str(pd.Timestamp(AS_OF) - pd.Timedelta(days=PEER_CUTOFF_BACK_DAYS))
    if not args.skip_peer:
        print("4/4 Featuretools peer vs DuckDB on the peer subset ...", flush=True)
        peer = _peer(args, paths, work, peer_cutoff, spawn)
        peer["cutoff"] = peer_cutoff
        peer["subset"] = meta["peer_subset"]
        peer["featuretools_features"] = (
            "timed (each the best of 3 runs): the EntitySet build from the frame (day and "
            "is_purchase columns, customers frame, EntitySet, relationship, interesting "
            "values, cutoff frame) and the computation of SUM(amount), "
            "COUNT / NUM_UNIQUE(day) / TIME_SINCE_LAST(ts) / "
            "TIME_SINCE_FIRST(ts) WHERE is_purchase = True per customer (the same values as "
            "rfm_summary, checked in 'agreement'), calculate_feature_matrix of those five "
            "DFS features; also timed: the earlier lighter dfs set COUNT, SUM(amount), "
            "MEAN(amount), TIME_SINCE_LAST(ts) over every row; cutoff_time = the cutoff for "
            "every customer, max_depth=1, n_jobs=1"
        )
        peer["duckdb_features"] = (
            "rfm_summary: recency, tenure, frequency (repeat purchase days), purchases, "
            "monetary total and mean, equal to build_features' columns (tested)"
        )
        ft_state = peer.get("featuretools", {})
        print(f"    {ft_state.get('same_rfm_s', ft_state.get('error'))}", flush=True)

    cmp_ = single.get("comparison")
    ratio = cmp_["ratio"] if cmp_ else None
    rss = dp1.get("peak_rss_bytes")  # the engine's own memory: inputs scanned from Parquet
    r10 = multi.get("ratio_10_over_1")
    rft = peer.get("ratio_featuretools_from_frame_over_duckdb")
    goals = {
        "duckdb_vs_oracle": _goal(
            ">= 3x faster",
            "-" if ratio is None else f"{ratio:.1f}x ({cmp_['size_label']})",
            None if ratio is None else ratio >= 3,
        ),
        "duckdb_peak_rss": _goal(
            "<= 4 GiB",
            f"{_gib(rss)} (inputs scanned from Parquet; "
            f"{_gib(duck1.get('peak_rss_bytes'))} with the inputs loaded in pandas first)",
            None if rss is None else rss <= 4 * 2**30,
        ),
        "ten_vs_one_cutoff": _goal(
            "<= 4x",
            "-"
            if r10 is None
            else f"{r10:.2f}x (inputs in pandas; "
            f"{multi.get('ratio_10_over_1_from_parquet', float('nan')):.2f}x from Parquet, "
            "reading included)",
            None if r10 is None else r10 <= 4,
        ),
        "featuretools": _goal(
            ">= 50x (stretch 100x)",
            "-"
            if rft is None
            else f"{rft:.0f}x from the same frame to the same RFM values "
            f"({peer['ratio_featuretools_over_duckdb']:.0f}x against Featuretools' "
            "computation alone, its EntitySet already built; "
            f"{peer['ratio_featuretools_light_set_over_duckdb']:.0f}x against the lighter "
            "set of earlier runs)",
            None if rft is None else rft >= 50 and peer["agreement"]["same_values"],
        ),
    }
    versions = _versions()
    if peer.get("featuretools", {}).get("versions"):
        versions["featuretools"] = peer["featuretools"]["versions"]["featuretools"]
        versions["featuretools_pandas"] = peer["featuretools"]["versions"]["pandas"]
        versions["woodwork"] = peer["featuretools"]["versions"]["woodwork"]
    report = {
        "benchmark": "features",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "size": args.size,
        "sizes": asdict(size),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_at_start": load_start,
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
            "duckdb_threads": _duckdb_threads(),
            "child_rss_cap_gib": args.rss_cap_gib,
        },
        "versions": versions,
        "data": meta,
        "timing_rule": (
            "each engine in its own child process; inputs read from Parquet before timing; "
            "wall time of the build call only; best of the repeats"
        ),
        "single_cutoff": single,
        "multi_cutoff": multi,
        "peer": peer,
        "goals": goals,
        "total_wall_s": round(time.perf_counter() - started, 1),
    }
    out = (
        Path(args.out)
        if args.out
        else (RESULTS if args.size == "full" else data_dir / args.size / "features.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(report))
    print(f"results: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one measured engine run).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--data-dir", default="/tmp/churnclv-bench-features")
    parser.add_argument("--ft-venv", default="/tmp/ft-venv")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument(
        "--rss-cap-gib", type=float, default=12.0, help="kill a child whose RSS passes this"
    )
    parser.add_argument("--repeat", type=int, default=2, help="DuckDB repeats (best is kept)")
    parser.add_argument(
        "--out", default="", help="result file (default: results/features.json for full)"
    )
    # child-process arguments (internal)
    parser.add_argument(
        "--child",
        choices=["duckdb", "duckdb-parquet", "duckdb-rfm", "oracle"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--transactions", help=argparse.SUPPRESS)
    parser.add_argument("--events", help=argparse.SUPPRESS)
    parser.add_argument("--customers", help=argparse.SUPPRESS)
    parser.add_argument("--cutoffs", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--subset-customers", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    return _parent(args)


if __name__ == "__main__":
    raise SystemExit(main())
