"""Short histories and value totals on real data, each judged on a true holdout (issue 19).

    python benchmarks/short_history.py                 # every case
    python benchmarks/short_history.py --case retail_total

Cases (figures to ``benchmarks/results/short_history.json``):

- ``retail_short``: Online Retail (one year, 2010-12-01 .. 2011-12-09) with
  181-day horizons. No 181-day label window ends by 2011-06-01 (the data start
  on 2010-12-01), so the case asks for the earliest ``as_of`` whose label
  windows allow the customer-holdout design and whose real future is still in
  the data; with 181 days there is none (``needs``), so it is run with 120-day
  horizons as of 2011-07-01 (purged split: no training cutoff; customer
  holdout: two labelled cutoffs; true holdout 2011-07-01 .. 2011-10-29).
- ``retail_181``: the same with 181-day horizons as of 2011-06-01 (nothing
  labelled: the BTYD fallback) and as of the end of the data (the
  customer-holdout design, judged on its own holdout only).
- ``retail_total``: Online Retail as of 2011-09-01, 90/90 days: the calibrated
  value total against the true holdout, with the spend level of every
  labelled window (the Christmas-peak evidence).
- ``groceries``: the grocery event log (dates only, ``no_amount``: each
  purchase is worth 1, so value = the number of purchases in the horizon) as of
  2007-07-01, 181/181 days, and a one-year cut of it (history from 2006-07-01)
  where the purged split leaves no training cutoff.

Every case trains with rows before ``as_of`` only, scores every customer at
``as_of`` with the registered champions and BG/NBD (+ Gamma-Gamma) fitted on
the same history, and judges both on what happened in ``(as_of, as_of + h]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from churnclv import (
    ColumnMap,
    InputTables,
    build_features,
    build_labels,
    load_champion,
    load_inputs,
    stack_btyd,
    train,
)
from churnclv.training import churn_metrics, value_metrics

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RETAIL = DATA / "online_retail" / "online_retail.parquet"
GROCERY = DATA / "grocery_elog" / "groceryElog.csv"
OUT = ROOT / "benchmarks" / "results" / "short_history.json"
VKEYS = ("gini", "spearman", "total_ratio")


def _retail() -> pd.DataFrame:
    cols = ColumnMap(
        customer_col="CustomerID", ts_col="InvoiceDate", quantity_col="Quantity",
        price_col="UnitPrice",
    )  # fmt: skip
    return load_inputs(RETAIL, columns=cols).transactions


def _groceries() -> pd.DataFrame:
    cols = ColumnMap(customer_col="cust", ts_col="date", no_amount=True)
    return load_inputs(GROCERY, columns=cols).transactions


def _r(x: float) -> float:
    return round(float(x), 4)


def _reported(key: str) -> bool:
    gates = ("churn_roc_auc", "value_gini", "value_total_ratio")
    baselines = ("baseline_bgnbd_churn_roc_auc", "baseline_bgnbd_gg_value_gini")
    extra = ("value_total_scale", "value_decile_", "rejected_hybrid_")
    return key in gates or key in baselines or key.startswith(extra)


def holdout(tx: pd.DataFrame, as_of: str, churn_h: float, value_h: float) -> dict[str, object]:
    """Train before ``as_of``, score at ``as_of``; hybrid and BG/NBD on the real future."""
    ts = pd.Timestamp(as_of)
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlruns.db"
        t0 = time.perf_counter()
        result = train(
            InputTables(tx[tx["ts"] < ts]),
            as_of=ts,
            tracking_uri=uri,
            churn_horizon_days=churn_h,
            value_horizon_days=value_h,
            promote=True,
        )
        seconds = time.perf_counter() - t0
        champ = load_champion(uri)
        feats = build_features(tx, as_of=ts)
        labels = build_labels(tx, feats, churn_horizon_days=churn_h, value_horizon_days=value_h)
        y = labels["churned"].to_numpy(int)
        v = labels["future_value"].to_numpy(float)
        p, pv = champ.churn.predict(feats), champ.value.predict(feats)
        scale = float(getattr(champ.value, "total_scale_", 1.0))
    bt = stack_btyd(feats, churn_h, value_h)
    bg_p, bg_v = bt["btyd_p_no_purchase_churn"].to_numpy(), bt["btyd_clv_value"].to_numpy()
    hybrid = {"churn_roc_auc": _r(churn_metrics(y, p)["churn_roc_auc"])}
    hybrid |= {f"value_{k}": _r(value_metrics(v, pv)[f"value_{k}"]) for k in VKEYS}
    hybrid["value_total_ratio_before_scale"] = _r(pv.sum() / scale / v.sum())
    bgnbd = {"churn_roc_auc": _r(churn_metrics(y, bg_p)["churn_roc_auc"])}
    bgnbd |= {f"value_{k}": _r(value_metrics(v, bg_v)[f"value_{k}"]) for k in VKEYS}
    m = result.metrics
    return {
        "as_of": as_of,
        "horizons_days": [churn_h, value_h],
        "customers": len(feats),
        "churn_rate": _r(y.mean()),
        "train_seconds": round(seconds, 1),
        "evaluation": result.evaluation,
        "evaluation_note": result.evaluation_note,
        "model_kinds": result.model_kinds,
        "fallbacks": result.fallbacks,
        "n_rows": result.n_rows,
        "total_scale": _r(scale),
        "training_metrics": {k: _r(v) for k, v in m.items() if _reported(k)},
        "true_holdout": {"hybrid": hybrid, "bgnbd": bgnbd},
        "hybrid_minus_bgnbd": {
            "churn_roc_auc": _r(hybrid["churn_roc_auc"] - bgnbd["churn_roc_auc"]),
            "value_gini": _r(hybrid["value_gini"] - bgnbd["value_gini"]),
        },
    }


def _window_spend(tx: pd.DataFrame, as_of: str, h: float) -> dict[str, float]:
    """Mean spend in the ``h``-day window after each labelled cutoff (30 days apart, the
    latest ending at ``as_of``) and in the holdout window, per customer with a purchase."""
    ts = pd.Timestamp(as_of)
    first = tx["ts"].min() + pd.Timedelta(days=60)
    cuts = [ts - pd.Timedelta(days=h + 30 * k) for k in range(12)]
    cuts = sorted(c.floor("D") for c in cuts if c >= first)
    feats = build_features(tx, as_of=[*cuts, ts])
    labels = build_labels(tx, feats, churn_horizon_days=h, value_horizon_days=h)
    levels = labels.groupby("as_of")["future_value"].mean()
    return {str(pd.Timestamp(c).date()): round(float(x), 1) for c, x in levels.items()}


def retail_short() -> dict[str, object]:
    tx = _retail()
    first = tx["ts"].min().floor("D")
    end = tx["ts"].max().floor("D")
    span = int((end - first).days)
    needs = {  # days of data for (warm-up 60) + labelled window + true holdout window
        "181": {"needed_days": 60 + 181 + 181, "data_days": span},
        "120": {"needed_days": 60 + 120 + 120, "data_days": span},
    }
    out = holdout(tx, "2011-07-01", 120, 120)
    out["feasibility"] = needs
    return out


def trained_only(tx: pd.DataFrame, as_of: str, churn_h: float, value_h: float) -> dict[str, object]:
    """Train as of the end of the data (no real future to judge on): the design and the
    metrics on its own holdout."""
    ts = pd.Timestamp(as_of)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            InputTables(tx[tx["ts"] < ts]),
            as_of=ts,
            tracking_uri=f"sqlite:///{tmp}/mlruns.db",
            churn_horizon_days=churn_h,
            value_horizon_days=value_h,
        )
    return {
        "as_of": as_of,
        "horizons_days": [churn_h, value_h],
        "evaluation": result.evaluation,
        "evaluation_note": result.evaluation_note,
        "model_kinds": result.model_kinds,
        "fallbacks": result.fallbacks,
        "n_rows": result.n_rows,
        "training_metrics": {k: _r(v) for k, v in result.metrics.items() if _reported(k)},
    }


def retail_181() -> dict[str, object]:
    """The issue's setup, 181-day horizons on one year: as of 2011-06-01 nothing is
    labelled (fallback, judged on the real future); as of the end of the data the
    customer-holdout design trains (judged on its holdout only: no future is left)."""
    tx = _retail()
    return {
        "as_of_2011_06_01": holdout(tx, "2011-06-01", 181, 181),
        "as_of_2011_12_10": trained_only(tx, "2011-12-10", 181, 181),
    }


def retail_total() -> dict[str, object]:
    tx = _retail()
    out = holdout(tx, "2011-09-01", 90, 90)
    out["spend_per_customer_by_window"] = _window_spend(tx, "2011-09-01", 90)
    return out


def groceries() -> dict[str, object]:
    tx = _groceries()
    full = holdout(tx, "2007-07-01", 181, 181)
    one_year = holdout(tx[tx["ts"] >= pd.Timestamp("2006-07-01")], "2007-07-01", 181, 181)
    return {"two_years_of_history": full, "one_year_of_history": one_year}


CASES = {
    "retail_181": retail_181,
    "retail_short": retail_short,
    "retail_total": retail_total,
    "groceries": groceries,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    args = parser.parse_args()
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name in args.case or list(CASES):
        t0 = time.perf_counter()
        results[name] = CASES[name]()
        results[name]["measured"] = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "load_average": [round(x, 1) for x in os.getloadavg()],
        }
        print(name, round(time.perf_counter() - t0, 1), "s", flush=True)
        print(json.dumps(results[name], indent=1, default=str), flush=True)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
