"""Marketer fields against the generator's truth (issue 18, acceptance 4).

One command reproduces the figures::

    python benchmarks/marketer_fields.py                  # seeds 11 and 12, 3,000 customers
    python benchmarks/marketer_fields.py --customers 1500 --seeds 1
    python benchmarks/marketer_fields.py --keep DIR       # keep (and reuse) each trained store

Each seed is a true holdout: a champion is trained on rows before ``as_of``,
every customer is scored as of ``as_of`` (``churnclv.score``), and the fields
are judged on what happened after it:

- ``predicted_orders`` against the realised orders in ``(as_of, as_of + 365 days]``
  (``truth.parquet``'s ``actual_purchases_365``): Spearman beside BG/NBD's
  expected purchases on the same customers (the pair fitted as of ``as_of``, as
  the champion carries it) and beside the generator's exact expectation (the
  best possible);
- ``expected_next_order_date`` against the first purchase after ``as_of``: median
  absolute error in days over the customers given a date who did order again,
  with how many customers get a date and how many of the buyers had one.

Figures go to ``benchmarks/results/marketer_fields.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from churnclv import (
    InputTables,
    build_features,
    generate,
    load_champion,
    load_policy,
    score,
    stack_btyd,
    train,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "marketer_fields.json"


def _champion(past: InputTables, as_of: pd.Timestamp, store: Path) -> tuple[Any, float | None]:
    """The champion trained on ``past`` in ``store`` (reused when there), and the seconds
    training took (None when reused)."""
    uri = f"sqlite:///{store.resolve()}/mlruns.db"
    if (store / "mlruns.db").exists():
        return load_champion(uri), None
    store.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train(past, as_of=as_of, tracking_uri=uri, promote=True)
    return load_champion(uri), round(time.perf_counter() - t0, 1)


def _one(customers: int, seed: int, keep: Path | None) -> dict[str, Any]:
    data = generate(customers, seed=seed)
    as_of = pd.Timestamp(data.as_of)
    past = InputTables(
        *(df[df["ts"] < as_of] for df in (data.transactions, data.events)), data.customers
    )
    if keep is not None:
        champion, train_s = _champion(past, as_of, keep / f"{customers}-seed{seed}")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            champion, train_s = _champion(past, as_of, Path(tmp))
    scored = score(past, as_of=as_of, champion=champion, policy=load_policy())
    h = champion.value_horizon_days
    feats = build_features(past.transactions, as_of=as_of)
    bg = stack_btyd(feats, champion.churn_horizon_days, h).set_index("customer_id")
    truth = data.truth.set_index("customer_id").loc[scored["customer_id"]]
    realised = truth[f"actual_purchases_{int(h)}"].to_numpy(float)
    ours = scored["predicted_orders"].to_numpy(float)
    theirs = bg.loc[scored["customer_id"], "btyd_expected_purchases_value"].to_numpy(float)
    oracle = truth[f"expected_purchases_{int(h)}"].to_numpy(float)

    tx = data.transactions
    first = tx[(tx["ts"] >= as_of) & (tx["amount"] > 0)].groupby("customer_id")["ts"].min()
    waited = (first - as_of).dt.total_seconds() / 86400
    dates = scored.set_index("customer_id")["expected_next_order_date"]
    predicted_wait = (pd.to_datetime(dates) - as_of).dt.days
    buyers = waited.index.intersection(dates.index)
    dated = buyers[predicted_wait.loc[buyers].notna().to_numpy()]
    error = (predicted_wait.loc[dated] - waited.loc[dated]).abs()
    nonbuyers = dates.index.difference(first.index)
    return {
        "seed": seed,
        "customers": len(scored),
        "train_seconds": train_s,
        "predicted_orders": {
            "spearman": round(float(spearmanr(ours, realised).statistic), 4),
            "bgnbd_spearman": round(float(spearmanr(theirs, realised).statistic), 4),
            "oracle_spearman": round(float(spearmanr(oracle, realised).statistic), 4),
            "total_predicted_over_realised": round(float(ours.sum() / realised.sum()), 3),
            "bgnbd_total_predicted_over_realised": round(float(theirs.sum() / realised.sum()), 3),
        },
        "expected_next_order_date": {
            "median_abs_error_days": round(float(error.median()), 1),
            "median_realised_wait_days": round(float(waited.loc[dated].median()), 1),
            "mean_abs_error_days": round(float(error.mean()), 1),
            "customers_with_a_date": int(dates.notna().sum()),
            "buyers": len(buyers),
            "buyers_with_a_date": len(dated),
            "non_buyers_with_a_date": int(dates.loc[nonbuyers].notna().sum()),
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12], help="generator seeds")
    ap.add_argument("--keep", type=Path, help="keep each trained store here and reuse it")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    runs = []
    for seed in args.seeds:
        run = _one(args.customers, seed, args.keep)
        runs.append(run)
        po, nd = run["predicted_orders"], run["expected_next_order_date"]
        print(
            f"seed {seed}: orders Spearman {po['spearman']:.4f} vs BG/NBD "
            f"{po['bgnbd_spearman']:.4f} (oracle {po['oracle_spearman']:.4f}); next order "
            f"date median abs error {nd['median_abs_error_days']} days"
        )
    spear = np.array([r["predicted_orders"]["spearman"] for r in runs])
    bg = np.array([r["predicted_orders"]["bgnbd_spearman"] for r in runs])
    mae = [r["expected_next_order_date"]["median_abs_error_days"] for r in runs]
    result = {
        "what": "predicted_orders and expected_next_order_date against the generator's truth",
        "command": "python benchmarks/marketer_fields.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "summary": {
            "orders_spearman_mean": round(float(spear.mean()), 4),
            "bgnbd_spearman_mean": round(float(bg.mean()), 4),
            "orders_beat_bgnbd_on_every_seed": bool((spear >= bg).all()),
            "next_order_median_abs_error_days_mean": round(float(np.mean(mae)), 1),
        },
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
