"""Featuretools DFS peer for ``benchmarks/features.py`` (runs inside the peer venv).

Reads a transactions Parquet file (``customer_id``, ``ts``, ``amount``), builds
a two-dataframe EntitySet (customers <- transactions) and runs Deep Feature
Synthesis for an RFM subset as of one cutoff, given as ``cutoff_time`` for
every customer:

* recency: ``TIME_SINCE_LAST(transactions.ts)`` (seconds);
* frequency: ``COUNT(transactions)``;
* monetary: ``SUM(transactions.amount)`` and ``MEAN(transactions.amount)``.

Only the :func:`featuretools.dfs` call is timed. Prints one JSON line with the
timings and versions, and writes the feature matrix to ``--out`` (Parquet).

Usage (from the benchmark, never by hand)::

    /tmp/ft-venv/bin/python benchmarks/_peers/featuretools_rfm.py \
        --transactions TX.parquet --cutoff 2023-10-03 --out FM.parquet
"""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["main"]


def _peak_rss() -> int:
    """Peak RSS of this process (``VmHWM``), in bytes; ``ru_maxrss`` inherits the parent's."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def main(argv: list[str] | None = None) -> int:
    """Run the peer once and print its JSON result line.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status (0 on success).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", required=True)
    parser.add_argument("--cutoff", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    import featuretools as ft
    import pandas as pd
    import woodwork

    import_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    tx = pd.read_parquet(args.transactions, columns=["customer_id", "ts", "amount"])
    tx["customer_id"] = tx["customer_id"].astype("object")
    tx["ts"] = tx["ts"].astype("datetime64[ns]")
    tx.insert(0, "transaction_id", range(len(tx)))
    customers = pd.DataFrame({"customer_id": pd.unique(tx["customer_id"])})
    es = ft.EntitySet(id="bench")
    es.add_dataframe(dataframe_name="customers", dataframe=customers, index="customer_id")
    es.add_dataframe(
        dataframe_name="transactions",
        dataframe=tx,
        index="transaction_id",
        time_index="ts",
        logical_types={"customer_id": "Categorical", "amount": "Double"},
    )
    es.add_relationship("customers", "customer_id", "transactions", "customer_id")
    cutoff = pd.Timestamp(args.cutoff)
    cutoff_time = pd.DataFrame({"customer_id": customers["customer_id"], "time": cutoff})
    load_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    fm = ft.dfs(
        entityset=es,
        target_dataframe_name="customers",
        cutoff_time=cutoff_time,
        agg_primitives=["count", "sum", "mean", "time_since_last"],
        trans_primitives=[],
        max_depth=1,
        n_jobs=1,
        verbose=False,
        features_only=False,
    )
    dfs_s = time.perf_counter() - t0
    matrix = fm[0] if isinstance(fm, tuple) else fm

    out = matrix.reset_index()
    out.columns = [str(c) for c in out.columns]
    out["customer_id"] = out["customer_id"].astype(str)
    out.to_parquet(args.out, index=False)
    result = {
        "dfs_s": dfs_s,
        "import_s": import_s,
        "load_and_entityset_s": load_s,
        "rows_in": len(tx),
        "customers": len(customers),
        "columns": [c for c in out.columns if c != "customer_id"],
        "peak_rss_bytes": _peak_rss(),
        "versions": {
            "featuretools": ft.__version__,
            "woodwork": woodwork.__version__,
            "pandas": pd.__version__,
            "python": sys.version.split()[0],
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
