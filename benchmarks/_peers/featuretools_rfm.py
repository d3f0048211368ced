"""Featuretools DFS peer for ``benchmarks/features.py`` (runs inside the peer venv).

Reads a transactions Parquet file (``customer_id``, ``ts``, ``amount``), builds
a two-dataframe EntitySet (customers <- transactions, with a ``day`` column and
an ``is_purchase`` flag, ``amount > 0``) and computes, as of one cutoff given
as ``cutoff_time`` for every customer, two feature sets:

1. **the same RFM values as** :func:`churnclv.features.rfm_summary` (the
   timed comparison): Deep Feature Synthesis lists the candidate features
   (``features_only``), the five that equal ours are kept and
   :func:`featuretools.calculate_feature_matrix` computes them:
   ``SUM(transactions.amount)`` (monetary_total), ``COUNT(transactions WHERE
   is_purchase = True)`` (n_purchases), ``NUM_UNIQUE(transactions.day WHERE
   is_purchase = True)`` (purchase days = frequency + 1),
   ``TIME_SINCE_LAST`` / ``TIME_SINCE_FIRST(transactions.ts WHERE is_purchase
   = True)`` (recency and tenure, seconds);
2. the lighter set measured by earlier runs (``dfs`` with ``count``, ``sum``,
   ``mean``, ``time_since_last`` over every row, returns included), kept for
   comparison.

Timed, each the best of ``REPEAT`` runs as on our side: the computation of the
same values (``same_rfm_s``), and apart from it the EntitySet build from the
frame already read (``entityset_s``: the ``day``/``is_purchase`` columns that
our SQL derives inside its own timed call, the customers frame, the EntitySet,
its relationship and interesting values, the cutoff frame).
``same_rfm_from_frame_s`` is their sum: what a user pays from the transactions
frame to the values, the measure that matches ``rfm_summary``'s (frame in,
values out); the Parquet read and the pandas < 3 dtype casts are not counted.
The lighter set (``dfs_s``) is timed once. Prints one
JSON line with the timings and versions, and writes the same-RFM matrix to
``--out`` (Parquet, columns renamed to ours).

Usage (from the benchmark, never by hand)::

    /tmp/ft-venv/bin/python benchmarks/_peers/featuretools_rfm.py \
        --transactions TX.parquet --cutoff 2023-10-03 --out FM.parquet
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

__all__ = ["REPEAT", "SAME_RFM", "main"]

#: Runs of the EntitySet build and of the timed computation; the best is kept, as on our side.
REPEAT = 3

#: Featuretools feature name -> the rfm_summary quantity it equals.
SAME_RFM = {
    "SUM(transactions.amount)": "monetary_total",
    "COUNT(transactions WHERE is_purchase = True)": "n_purchases",
    "NUM_UNIQUE(transactions.day WHERE is_purchase = True)": "n_days",
    "TIME_SINCE_LAST(transactions.ts WHERE is_purchase = True)": "recency_s",
    "TIME_SINCE_FIRST(transactions.ts WHERE is_purchase = True)": "tenure_s",
}


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
    raw = pd.read_parquet(args.transactions, columns=["customer_id", "ts", "amount"])
    raw["customer_id"] = raw["customer_id"].astype("object")
    raw["ts"] = raw["ts"].astype("datetime64[ns]")
    read_s = time.perf_counter() - t0
    cutoff = pd.Timestamp(args.cutoff)

    def build() -> tuple[Any, Any, Any, Any]:
        # the work Featuretools needs to go from the frame to features: the derived
        # columns our SQL computes inside its own timed call, and the EntitySet
        tx = raw.copy(deep=False)
        tx.insert(0, "transaction_id", range(len(tx)))
        tx["day"] = tx["ts"].dt.floor("D")
        tx["is_purchase"] = tx["amount"] > 0
        customers = pd.DataFrame({"customer_id": pd.unique(tx["customer_id"])})
        es = ft.EntitySet(id="bench")
        es.add_dataframe(dataframe_name="customers", dataframe=customers, index="customer_id")
        es.add_dataframe(
            dataframe_name="transactions",
            dataframe=tx,
            index="transaction_id",
            time_index="ts",
            logical_types={
                "customer_id": "Categorical",
                "amount": "Double",
                "day": "Categorical",
                "is_purchase": "Boolean",
            },
        )
        es.add_relationship("customers", "customer_id", "transactions", "customer_id")
        es.add_interesting_values(dataframe_name="transactions", values={"is_purchase": [True]})
        cutoff_time = pd.DataFrame({"customer_id": customers["customer_id"], "time": cutoff})
        return tx, customers, es, cutoff_time

    entityset_times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        tx, customers, es, cutoff_time = build()
        entityset_times.append(time.perf_counter() - t0)
    entityset_s = min(entityset_times)

    candidates = ft.dfs(
        entityset=es,
        target_dataframe_name="customers",
        agg_primitives=["count", "sum", "num_unique", "time_since_last", "time_since_first"],
        where_primitives=["count", "num_unique", "time_since_last", "time_since_first"],
        trans_primitives=[],
        max_depth=1,
        features_only=True,
    )
    by_name = {f.get_name(): f for f in candidates}
    features = [by_name[name] for name in SAME_RFM]
    same_times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        same = ft.calculate_feature_matrix(
            features, entityset=es, cutoff_time=cutoff_time, n_jobs=1, verbose=False
        )
        same_times.append(time.perf_counter() - t0)
    same_rfm_s = min(same_times)

    t0 = time.perf_counter()
    ft.dfs(
        entityset=es,
        target_dataframe_name="customers",
        cutoff_time=cutoff_time,
        agg_primitives=["count", "sum", "mean", "time_since_last"],
        ignore_columns={"transactions": ["day", "is_purchase"]},
        trans_primitives=[],
        max_depth=1,
        n_jobs=1,
        verbose=False,
        features_only=False,
    )
    dfs_s = time.perf_counter() - t0

    out = same.reset_index()
    out.columns = [SAME_RFM.get(str(c), str(c)) for c in out.columns]
    out["customer_id"] = out["customer_id"].astype(str)
    out.to_parquet(args.out, index=False)
    result = {
        "same_rfm_s": same_rfm_s,
        "dfs_s": dfs_s,
        "import_s": import_s,
        "read_s": read_s,
        "entityset_s": entityset_s,
        "entityset_times_s": entityset_times,
        "same_rfm_times_s": same_times,
        # the same frame in, the same RFM values out: EntitySet build + computation
        "same_rfm_from_frame_s": entityset_s + same_rfm_s,
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
