"""RFM and the full feature build against a plain pandas RFM groupby on the same frame.

In one process and one run: ``churnclv.generate(100_000, seed=7)``'s
transactions (about 1.1M rows) held in pandas, the cutoff at 80% of their
time span; then, interleaved and each the best of ``--repeat`` (default 3):

* ``pandas``: a plain pandas RFM (filter ``ts < cutoff``, purchases
  ``amount > 0``, one ``groupby`` for first/last purchase, purchases and
  distinct purchase days, one for the net total), the same six columns as
  :func:`churnclv.rfm_summary`; the peer every ratio is against;
* ``rfm_summary``: :func:`churnclv.rfm_summary` on the frame;
* ``build_features``: :func:`churnclv.build_features` on the frame
  (transactions only: the full transaction-derived set);
* ``pandas_shuffled`` and ``rfm_summary_shuffled``: the first two on the same
  rows in a random order. The generated frame comes sorted by customer and
  time, which ``rfm_summary`` turns into runs without hashing the ids; the
  shuffled pair shows the ratio when the ids must be hashed (the goals are
  judged on the frame as generated).

Both wall time and process CPU time (every thread) are recorded: on a
machine shared with other jobs wall times swing with the load, while CPU time
shows the work done. The values are checked equal (1e-9) between the three.
Writes ``benchmarks/results/rfm.json``.

Usage::

    python benchmarks/rfm.py [--repeat 3] [--customers 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import churnclv

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "rfm.json"
RFM = ["recency_days", "tenure_days", "frequency", "n_purchases", "monetary_total", "monetary_mean"]


def pandas_rfm(tx: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The plain pandas RFM peer: the six RFM columns per customer as of ``as_of``."""
    hist = tx[tx["ts"] < as_of]
    buys = hist[hist["amount"] > 0]
    per = buys.assign(day=buys["ts"].dt.floor("D")).groupby("customer_id")
    agg = per.agg(
        first=("ts", "min"),
        last=("ts", "max"),
        n_days=("day", "nunique"),
        n_purchases=("ts", "size"),
    )
    total = hist.groupby("customer_id")["amount"].sum()
    day = pd.Timedelta(days=1)
    out = pd.DataFrame(
        {
            "recency_days": (as_of - agg["last"]) / day,
            "tenure_days": (as_of - agg["first"]) / day,
            "frequency": agg["n_days"] - 1,
            "n_purchases": agg["n_purchases"],
            "monetary_total": total.reindex(agg.index),
        }
    )
    out["monetary_mean"] = out["monetary_total"] / agg["n_days"]
    return out.reset_index()


def _max_difference(a: pd.DataFrame, b: pd.DataFrame) -> float:
    a = a.sort_values("customer_id").reset_index(drop=True)
    b = b.sort_values("customer_id").reset_index(drop=True)
    if len(a) != len(b) or not (a["customer_id"].to_numpy() == b["customer_id"].to_numpy()).all():
        return float("inf")
    return max(
        float(np.max(np.abs(a[c].to_numpy(float) - b[c].to_numpy(float)), initial=0.0)) for c in RFM
    )


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="", help="result file (default results/rfm.json)")
    args = parser.parse_args(argv)
    load_start = [round(x, 2) for x in os.getloadavg()]
    data = churnclv.generate(args.customers, seed=args.seed)
    tx = data.transactions[["customer_id", "ts", "amount"]].copy()
    first, last = tx["ts"].min(), tx["ts"].max()
    as_of = (first + 0.8 * (last - first)).floor("us")
    shuffled = tx.sample(frac=1.0, random_state=args.seed).reset_index(drop=True)
    calls = {
        "pandas": lambda: pandas_rfm(tx, as_of),
        "rfm_summary": lambda: churnclv.rfm_summary(tx, observation_period_end=as_of),
        "build_features": lambda: churnclv.build_features(tx, as_of=as_of),
        "pandas_shuffled": lambda: pandas_rfm(shuffled, as_of),
        "rfm_summary_shuffled": lambda: churnclv.rfm_summary(
            shuffled, observation_period_end=as_of
        ),
    }
    outputs = {name: fn() for name, fn in calls.items()}  # warm-up, and the values checked
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.repeat):
        for name, fn in calls.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    best = {name: min(v) for name, v in wall.items()}
    best_cpu = {name: min(v) for name, v in cpu.items()}
    agreement = {
        "rfm_summary_vs_pandas": _max_difference(outputs["rfm_summary"], outputs["pandas"]),
        "build_features_vs_pandas": _max_difference(outputs["build_features"], outputs["pandas"]),
        "rfm_summary_shuffled_vs_pandas": _max_difference(
            outputs["rfm_summary_shuffled"], outputs["pandas"]
        ),
    }
    ratios = {
        "pandas_over_rfm_summary": best["pandas"] / best["rfm_summary"],
        "build_features_over_pandas": best["build_features"] / best["pandas"],
        "cpu_pandas_over_rfm_summary": best_cpu["pandas"] / best_cpu["rfm_summary"],
        "cpu_build_features_over_pandas": best_cpu["build_features"] / best_cpu["pandas"],
        "shuffled_pandas_over_rfm_summary": best["pandas_shuffled"] / best["rfm_summary_shuffled"],
        "cpu_shuffled_pandas_over_rfm_summary": best_cpu["pandas_shuffled"]
        / best_cpu["rfm_summary_shuffled"],
    }
    import duckdb

    report: dict[str, Any] = {
        "benchmark": "rfm",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_at_start": load_start,
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": {
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "data": {
            "generator": f"churnclv.generate({args.customers}, seed={args.seed})",
            "transactions": len(tx),
            "rows_before_cutoff": int((tx["ts"] < as_of).sum()),
            "customers_out": len(outputs["rfm_summary"]),
            "as_of": str(as_of),
        },
        "timing_rule": f"in process, interleaved, best of {args.repeat} after a warm-up call",
        "wall_s": wall,
        "cpu_s": cpu,
        "best_wall_s": best,
        "best_cpu_s": best_cpu,
        "ratios": ratios,
        "agreement_max_abs_difference": agreement,
        "goals": {
            "rfm_summary": {
                "target": ">= 3x faster than pandas",
                "met": ratios["pandas_over_rfm_summary"] >= 3,
            },
            "build_features": {
                "target": "<= 2x the pandas RFM time",
                "met": ratios["build_features_over_pandas"] <= 2,
            },
        },
    }
    out = Path(args.out) if args.out else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for name in calls:
        print(f"{name:<21} wall {best[name] * 1e3:8.1f} ms   cpu {best_cpu[name] * 1e3:8.1f} ms")
    print(
        f"pandas / rfm_summary: {ratios['pandas_over_rfm_summary']:.2f}x wall "
        f"({ratios['cpu_pandas_over_rfm_summary']:.2f}x cpu); build_features / pandas: "
        f"{ratios['build_features_over_pandas']:.2f}x wall "
        f"({ratios['cpu_build_features_over_pandas']:.2f}x cpu); "
        f"max difference {max(agreement.values()):.1e}; rows shuffled: pandas / rfm_summary "
        f"{ratios['shuffled_pandas_over_rfm_summary']:.2f}x wall "
        f"({ratios['cpu_shuffled_pandas_over_rfm_summary']:.2f}x cpu)"
    )
    print(f"load average {load_start} -> {report['machine']['load_avg_at_end']}; results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
