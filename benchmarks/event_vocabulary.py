"""Event vocabulary from the data (issue 19, acceptance 1).

The same generated population (same seed) twice: once with the simulator's
event names (login, session, page_view, email_open, support_ticket,
complaint) and once renamed as an app business names them (app_open,
video_play, screen_view, push_open, help_ticket, complaint_call); both with
NPS survey answers (event type ``nps``, value 0-10) and the simulator's
session minutes and pages viewed as event values. Training picks the event
types and the valued ones from the data (``train(event_top_k=8)``), so the
renamed run must get per-type and value features of its own names, use them
(LightGBM gain > 0), and match the default names' churn AUC (within 0.005).

    python benchmarks/event_vocabulary.py                # 5,000 customers
    python benchmarks/event_vocabulary.py --customers 10000

Churn AUC is reported twice: the training run's out-of-time validation AUC
(``churn_roc_auc``) and a true holdout: the champion scores every customer
as of ``as_of`` and is judged on the generator's realised churn within 90
days (``truth.churned_90``). Figures go to
``benchmarks/results/event_vocabulary.json``.
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

import numpy as np

from churnclv import InputTables, generate, load_champion, load_policy, score, train
from churnclv.training import churn_metrics

RESULTS = Path(__file__).parent / "results" / "event_vocabulary.json"
RENAMED = ["app_open", "video_play", "screen_view", "push_open", "help_ticket", "complaint_call"]


def run(n: int, seed: int, vocabulary: list[str] | None) -> dict[str, object]:
    """Generate, train on the history before as_of, score as of as_of; the figures."""
    start = time.perf_counter()
    data = generate(n, seed=seed, event_vocabulary=vocabulary, survey_type="nps")

    def past(df):
        return df[df["ts"] < data.as_of]

    tables = InputTables(past(data.transactions), past(data.events), data.customers)
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlruns.db"
        result = train(tables, as_of=data.as_of, tracking_uri=uri, promote=True, seed=seed)
        champion = load_champion(uri)
        scored = score(tables, as_of=data.as_of, champion=champion, policy=load_policy())
    truth = data.truth.set_index("customer_id").loc[scored["customer_id"]]
    holdout = churn_metrics(
        truth["churned_90"].to_numpy(int), scored["churn_probability"].to_numpy(), prefix=""
    )
    vocab = champion.churn.event_vocabulary_ or {}
    types, valued = vocab.get("event_types", []), vocab.get("valued_event_types", [])
    gain = champion.churn.importance()
    per_type = [c for c in gain.index if any(c in _type_columns(t) for t in types)]
    value = [c for c in gain.index if any(c.startswith(f"ev_{t}_value_") for t in valued)]
    answered = scored["satisfaction_score"].notna()
    return {
        "vocabulary": vocabulary or "default",
        "model_kind": result.model_kinds.get("churn"),
        "event_types": types,
        "valued_event_types": valued,
        "churn_roc_auc_validation": result.metrics.get("churn_roc_auc"),
        "churn_roc_auc_holdout": holdout["roc_auc"],
        "value_gini_validation": result.metrics.get("value_gini"),
        "n_features": len(champion.churn.features_),
        "per_type_features": len(per_type),
        "per_type_features_used": sorted(c for c in per_type if gain[c] > 0),
        "value_features": len(value),
        "value_features_used": sorted(c for c in value if gain[c] > 0),
        "top_value_features_by_gain": {
            c: round(float(gain[c]), 1) for c in gain[value].sort_values(ascending=False).index[:5]
        },
        "satisfaction_answered_share": round(float(answered.mean()), 4),
        "satisfaction_classes": scored["satisfaction_class"].value_counts().to_dict(),
        "churn_rate_by_satisfaction_class": {
            str(k): round(float(v), 4)
            for k, v in truth["churned_90"]
            .groupby(scored["satisfaction_class"].to_numpy())
            .mean()
            .items()
        },
        "seconds": round(time.perf_counter() - start, 1),
    }


def _type_columns(event_type: str) -> set[str]:
    return {f"ev_{event_type}_30d", f"ev_{event_type}_90d", f"days_since_{event_type}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    default = run(args.customers, args.seed, None)
    print(json.dumps(default, indent=2, default=str))
    renamed = run(args.customers, args.seed, RENAMED)
    print(json.dumps(renamed, indent=2, default=str))
    diff = {
        k: abs(float(renamed[k]) - float(default[k]))  # type: ignore[arg-type]
        for k in ("churn_roc_auc_validation", "churn_roc_auc_holdout")
    }
    checks = {
        "renamed_per_type_features_used": bool(renamed["per_type_features_used"]),
        "renamed_value_features_used": bool(renamed["value_features_used"]),
        "auc_within_0.005": all(d <= 0.005 for d in diff.values()),
    }
    out = {
        "customers": args.customers,
        "seed": args.seed,
        "default_names": default,
        "renamed": renamed,
        "abs_auc_difference": diff,
        "checks": checks,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps({"abs_auc_difference": diff, "checks": checks}, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
