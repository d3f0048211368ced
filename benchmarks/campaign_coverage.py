"""Does `evaluate-campaign` recover the true campaign effects? (issue 17, acceptance 3)

One command reproduces the figures::

    python benchmarks/campaign_coverage.py               # 20 seeds x 5,000 customers
    python benchmarks/campaign_coverage.py --seeds 3     # a quick look

For each seed the generator sends four randomized campaigns (control + each
action of the shipped policy: email_reminder, discount_coupon, personal_call,
upgrade_offer) with heterogeneous true effects, written into the transactions.
:func:`churnclv.evaluate_campaign` then estimates, per campaign and action, the
difference of mean net spend in the 30-day window against control with Welch's
95% interval, and the stratified combination of the campaigns (``all``). The
truth of an interval is the mean, over the customers of the arm, of the
generator's true expected effect of that action for that send
(``campaign_truth.effect_<action>``): the average treatment effect on the arm's
customers, which is what a randomized comparison estimates. Coverage is the
share of intervals that contain it; the target is at least 85%. Figures go to
``benchmarks/results/campaign_coverage.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import churnclv
from churnclv import evaluate_campaign, generate

RESULTS = Path(__file__).resolve().parent / "results" / "campaign_coverage.json"
ACTIONS = tuple(a.name for a in churnclv.load_policy().actions)  # the generator's arms
RESPONSE_DAYS = 30


def intervals(seed: int, customers: int, uplift: str = "heterogeneous") -> pd.DataFrame:
    """Every interval of one generated population with the truth it should contain."""
    data = generate(customers, seed=seed, future_days=RESPONSE_DAYS, uplift=uplift)
    assert data.campaigns is not None and data.campaign_truth is not None
    result = evaluate_campaign(data.campaigns, data.transactions, response_days=RESPONSE_DAYS)
    truth = data.campaign_truth
    rows = []
    for row in result[result["treatment"] != "control"].itertuples():
        arm = truth[truth["treatment"] == row.treatment]
        if row.campaign_id != "all":
            arm = arm[arm["campaign_id"] == row.campaign_id]
        true = float(arm[f"effect_{row.treatment}"].mean())
        rows.append(
            {
                "seed": seed,
                "campaign_id": row.campaign_id,
                "scope": "all" if row.campaign_id == "all" else "campaign",
                "action": row.treatment,
                "customers": int(row.customers),
                "estimate": float(row.difference),
                "ci_low": float(row.ci_low),
                "ci_high": float(row.ci_high),
                "truth": true,
                "covered": bool(row.ci_low <= true <= row.ci_high),
            }
        )
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame) -> dict[str, object]:
    """Coverage overall, per scope and per action, with the bias and the interval width."""

    def stats(part: pd.DataFrame) -> dict[str, float]:
        return {
            "intervals": len(part),
            "coverage": round(float(part["covered"].mean()), 4),
            "mean_error": round(float((part["estimate"] - part["truth"]).mean()), 3),
            "mean_half_width": round(float(((part["ci_high"] - part["ci_low"]) / 2).mean()), 3),
            "mean_truth": round(float(part["truth"].mean()), 3),
        }

    return {
        "overall": stats(frame),
        "by_scope": {k: stats(g) for k, g in frame.groupby("scope")},
        "by_action": {k: stats(g) for k, g in frame.groupby("action")},
        "by_scope_and_action": {
            f"{s}/{a}": stats(g) for (s, a), g in frame.groupby(["scope", "action"])
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument(
        "--uplift", choices=("heterogeneous", "uniform", "none"), default="heterogeneous"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    seeds = list(range(args.seeds))
    frame = pd.concat([intervals(s, args.customers, args.uplift) for s in seeds], ignore_index=True)
    summary = summarise(frame)
    doc = {
        "command": "python benchmarks/campaign_coverage.py"
        + (f" --seeds {args.seeds}" if args.seeds != 20 else "")
        + (f" --customers {args.customers}" if args.customers != 5_000 else "")
        + (f" --uplift {args.uplift}" if args.uplift != "heterogeneous" else ""),
        "target": "coverage of the 95% intervals >= 0.85 (issue 17, acceptance 3)",
        "truth": "mean over the arm's customers of campaign_truth.effect_<action>",
        "customers": args.customers,
        "uplift": args.uplift,
        "actions": list(ACTIONS),
        "response_days": RESPONSE_DAYS,
        "seeds": seeds,
        **summary,
        "seconds": round(time.perf_counter() - started, 1),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": round(load_before, 2),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": {
            "churnclv": churnclv.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "platform": platform.platform(),
        "intervals_per_seed": frame.groupby("seed").size().astype(int).tolist(),
        "uncovered": frame.loc[~frame["covered"]].round(3).to_dict(orient="records"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=_json) + "\n")
    overall = summary["overall"]
    print(
        f"{overall['intervals']} intervals over {len(seeds)} seeds: "  # type: ignore[index]
        f"coverage {overall['coverage']:.1%} -> {args.out}"  # type: ignore[index]
    )
    return 0


def _json(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")


if __name__ == "__main__":
    sys.exit(main())
