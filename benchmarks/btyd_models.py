"""BG/NBD against MBG/NBD, the purchase model chosen by holdout likelihood, and breadth.

One command reproduces every figure::

    python benchmarks/btyd_models.py

On 5,000 generated customers (90-day churn, 365-day value) and on UCI Online
Retail as of 2011-09-01 (90/90): the training run's holdout log-likelihood of
each purchase model and the one it chose for the hybrid's BTYD features, both
models' out-of-time baseline churn AUC on the run's validation cutoff, and on
the true holdout (fitted on the history before ``as_of``, judged on what
happened in ``(as_of, as_of + 90 days]``) each model's churn AUC, by
P(no purchase) and by 1 - P(alive). On generated data also the churn and value
models' gain importance of the category and channel features. Figures go to
``benchmarks/results/btyd_models.json``.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd

from churnclv import (
    ColumnMap,
    InputTables,
    build_features,
    build_labels,
    generate,
    load_champion,
    load_inputs,
    stack_btyd,
    train,
)
from churnclv.training import churn_metrics

ROOT = Path(__file__).resolve().parents[1]
RETAIL = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.parquet"
OUT = ROOT / "benchmarks" / "results" / "btyd_models.json"
BREADTH = ("n_categories", "top_category_share", "n_channels", "top_channel_share")


def _auc(y: object, score: object) -> float:
    return round(float(churn_metrics(y, score)["churn_roc_auc"]), 4)  # type: ignore[arg-type]


def _run(tables: InputTables, as_of: pd.Timestamp, churn_h: float, value_h: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlruns.db"
        t0 = time.perf_counter()
        result = train(
            tables,
            as_of=as_of,
            tracking_uri=uri,
            churn_horizon_days=churn_h,
            value_horizon_days=value_h,
            promote=True,
        )
        seconds = time.perf_counter() - t0
        mlflow.set_tracking_uri(uri)
        chosen = mlflow.get_run(result.run_id).data.params.get("btyd_purchase_model")
        champion = load_champion(uri)
        importance = {
            kind: {c: round(float(v), 1) for c, v in model.importance().items() if c in BREADTH}
            for kind, model in (("churn", champion.churn), ("value", champion.value))
        }
    m = result.metrics
    feats = build_features(tables.transactions, as_of=as_of)
    labels = build_labels(
        tables.transactions, feats, churn_horizon_days=churn_h, value_horizon_days=value_h
    )
    y = labels["churned"].to_numpy(int)
    holdout = {}
    for model in ("bgnbd", "mbgnbd"):
        bt = stack_btyd(feats, churn_h, value_h, purchase_model=model)
        holdout[model] = {
            "churn_roc_auc_p_no_purchase": _auc(y, bt["btyd_p_no_purchase_churn"].to_numpy()),
            "churn_roc_auc_1_minus_p_alive": _auc(y, 1 - bt["btyd_p_alive"].to_numpy()),
            "mean_p_alive_one_time_buyers": round(
                float(bt.loc[feats["frequency"] == 0, "btyd_p_alive"].mean()), 4
            ),
        }
    return {
        "as_of": str(as_of.date()),
        "horizons_days": [churn_h, value_h],
        "customers_at_as_of": len(feats),
        "train_seconds": round(seconds, 1),
        "chosen_by_holdout_likelihood": chosen,
        "holdout_loglik_per_customer": {
            k: round(m[f"btyd_holdout_loglik_{k}"], 4)
            for k in ("bgnbd", "mbgnbd")
            if f"btyd_holdout_loglik_{k}" in m
        },
        "validation_cutoff": {
            k: round(m[k], 4)
            for k in (
                "churn_roc_auc",
                "baseline_bgnbd_churn_roc_auc",
                "baseline_mbgnbd_churn_roc_auc",
                "baseline_bgnbd_palive_churn_roc_auc",
                "baseline_mbgnbd_palive_churn_roc_auc",
                "value_gini",
                "baseline_bgnbd_gg_value_gini",
                "baseline_mbgnbd_gg_value_gini",
            )
            if k in m
        },
        "true_holdout": holdout,
        "breadth_importance_gain": importance,
    }


def main() -> None:
    import datetime
    import os

    import duckdb
    import lightgbm

    results: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "versions": {
            "duckdb": duckdb.__version__,
            "lightgbm": lightgbm.__version__,
            "pandas": pd.__version__,
        },
    }
    data = generate(5000, seed=7)
    tables = InputTables(data.transactions, data.events, data.customers)
    results["generated_5k"] = _run(tables, pd.Timestamp(data.as_of), 90, 365)
    print(json.dumps(results["generated_5k"], indent=2), flush=True)
    if RETAIL.exists():
        tx = load_inputs(
            RETAIL,
            columns=ColumnMap(
                customer_col="CustomerID",
                ts_col="InvoiceDate",
                quantity_col="Quantity",
                price_col="UnitPrice",
            ),
        ).transactions
        results["online_retail"] = _run(InputTables(tx), pd.Timestamp("2011-09-01"), 90, 90)
        print(json.dumps(results["online_retail"], indent=2), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {OUT}")


if __name__ == "__main__":
    main()
