"""Learned actions against the oracle and today's constant-uplift policy (issue 17).

One command reproduces every figure::

    python benchmarks/uplift.py            # 50k synthetic customers, three uplift variants
    python benchmarks/uplift.py --small    # a quick 5k-customer run

Acceptance 1 (``uplift="heterogeneous"``): the generator's campaigns (four
randomized sends before ``as_of``) train the uplift model as of ``as_of``
(``train_uplift``: the latest campaign is the held-out one its gate and Qini
use); churn and value models are trained as of ``as_of`` too. Every customer is
then scored as of ``as_of`` three ways: with the uplift champion (the learned
policy, or the gate's best constant), with the policy formula and its hand-set
uplift constants (``action_basis = policy``: the uplift champion left out), and
with the oracle (the action with the largest true effect minus cost, or none).
Each policy's true value is the mean over scored customers of the chosen
action's true effect (``truth.effect_<action>``: expected incremental net spend
in 30 days for a send at ``as_of``) minus its cost. The benchmark policy is the
shipped one restricted to the generator's three actions, with no randomized
holdout (so every customer is decided by the policy under test).

Acceptance 2 (``uplift="uniform"`` and ``"none"``): the gate must choose the
best constant policy (or none), never a learned one.

Figures go to ``benchmarks/results/uplift.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
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

from churnclv import InputTables, generate, load_champion, load_policy, score, train, train_uplift
from churnclv.decisions import Policy

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "uplift.json"
ACTIONS = ("email_reminder", "discount_coupon", "personal_call")


def _policy() -> Policy:
    pol = load_policy()
    actions = tuple(a for a in pol.actions if a.name in ACTIONS)
    return dataclasses.replace(pol, actions=actions, holdout_share=0.0)


def _tables(data: Any) -> InputTables:
    past = lambda df: df[df["ts"] < data.as_of]  # noqa: E731
    return InputTables(past(data.transactions), past(data.events), data.customers)


def _true_value(action: pd.Series, truth: pd.DataFrame, costs: dict[str, float]) -> float:
    """Mean true incremental net gain per customer of the chosen actions."""
    gain = np.zeros(len(action))
    for a, c in costs.items():
        hit = (action == a).to_numpy()
        gain[hit] = truth[f"effect_{a}"].to_numpy()[hit] - c
    return float(gain.mean())


def _gate(result: Any) -> dict[str, Any]:
    return {
        "basis": result.basis,
        "uniform_action": result.uniform_action,
        "reason": result.reason,
        "values": {k: dataclasses.asdict(v) for k, v in result.values.items()},
        "qini": {
            k: dict(zip(("coefficient", "low", "high"), v, strict=True))
            for k, v in result.qini.items()
        },
        "n_sends": result.n_sends,
    }


def heterogeneous(n: int, seed: int, learner: str, work: str) -> dict[str, Any]:
    """Acceptance 1: learned vs oracle vs constant-uplift vs every constant policy."""
    t0 = time.perf_counter()
    data = generate(n, seed=seed, uplift="heterogeneous")
    tables = _tables(data)
    uri = f"sqlite:///{work}/mlruns.db"
    pol = _policy()
    costs = {a.name: a.cost for a in pol.actions}
    t1 = time.perf_counter()
    train(tables, as_of=data.as_of, tracking_uri=uri, promote=True, seed=seed, max_cutoffs=6)
    t2 = time.perf_counter()
    up = train_uplift(
        tables,
        data.campaigns,
        as_of=data.as_of,
        tracking_uri=uri,
        policy=pol,
        promote=True,
        seed=seed,
        learner=learner,
    )
    t3 = time.perf_counter()
    champion = load_champion(uri)
    learned = score(tables, as_of=data.as_of, champion=champion, policy=pol)
    formula = score(
        tables,
        as_of=data.as_of,
        champion=dataclasses.replace(champion, uplift=None, uplift_version=None),
        policy=pol,
    )
    t4 = time.perf_counter()
    truth = data.truth.set_index("customer_id").loc[learned["customer_id"]].reset_index()
    formula = formula.set_index("customer_id").loc[learned["customer_id"]].reset_index()
    effects = np.column_stack([truth[f"effect_{a}"].to_numpy() - costs[a] for a in ACTIONS])
    best = effects.argmax(axis=1)
    oracle = np.where(effects.max(axis=1) > 0, np.array(ACTIONS, dtype=object)[best], "none")
    # The oracle among the actions the policy allows each customer (personal_call's segments).
    allowed = np.column_stack(
        [
            np.ones(len(learned), bool)
            if a.segments is None
            else learned["rfm_segment"].isin(list(a.segments)).to_numpy()
            for a in pol.actions
        ]
    )
    masked = np.where(allowed, effects, -np.inf)
    oracle_eligible = np.where(
        masked.max(axis=1) > 0, np.array(ACTIONS, dtype=object)[masked.argmax(axis=1)], "none"
    )
    values = {
        "learned": _true_value(learned["action"], truth, costs),
        "oracle": _true_value(pd.Series(oracle), truth, costs),
        "oracle_eligible": _true_value(pd.Series(oracle_eligible), truth, costs),
        "constant_uplift_policy": _true_value(formula["action"], truth, costs),
        "none": 0.0,
        **{f"all_{a}": float((truth[f"effect_{a}"] - costs[a]).mean()) for a in ACTIONS},
    }
    harmed = (truth["effect_discount_coupon"] < 0).to_numpy()
    coupon = (learned["action"] == "discount_coupon").to_numpy()
    return {
        "customers": n,
        "scored": len(learned),
        "learner": learner,
        "true_value_per_customer": values,
        "learned_over_oracle": values["learned"] / values["oracle"],
        "learned_over_oracle_eligible": values["learned"] / values["oracle_eligible"],
        "learned_over_constant_uplift": values["learned"] / values["constant_uplift_policy"],
        "action_basis": learned["action_basis"].value_counts().to_dict(),
        "actions": {
            "learned": learned["action"].value_counts().to_dict(),
            "oracle": pd.Series(oracle).value_counts().to_dict(),
            "constant_uplift_policy": formula["action"].value_counts().to_dict(),
        },
        "harmed_by_coupon": int(harmed.sum()),
        "harmed_given_coupon_share": float(coupon[harmed].mean()) if harmed.any() else 0.0,
        "harmed_given_coupon_share_policy": float(
            (formula["action"] == "discount_coupon").to_numpy()[harmed].mean()
        )
        if harmed.any()
        else 0.0,
        "gate": _gate(up),
        "seconds": {
            "generate": round(t1 - t0, 1),
            "train_churn_value": round(t2 - t1, 1),
            "train_uplift": round(t3 - t2, 1),
            "score_twice": round(t4 - t3, 1),
        },
    }


def flat(n: int, seed: int, uplift: str, learner: str, work: str) -> dict[str, Any]:
    """Acceptance 2: uniform or no effects: the gate must pick a constant policy or none."""
    t0 = time.perf_counter()
    data = generate(n, seed=seed, uplift=uplift)
    pol = _policy()
    costs = {a.name: a.cost for a in pol.actions}
    truth = data.truth
    true_const = {a: float((truth[f"effect_{a}"] - costs[a]).mean()) for a in ACTIONS}
    best = max(true_const, key=lambda a: true_const[a])
    true_best = best if true_const[best] > 0 else "none"
    up = train_uplift(
        _tables(data),
        data.campaigns,
        as_of=data.as_of,
        tracking_uri=f"sqlite:///{work}/mlruns-{uplift}.db",
        policy=pol,
        promote=True,
        seed=seed,
        learner=learner,
    )
    return {
        "customers": n,
        "uplift": uplift,
        "true_constant_values": true_const,
        "true_best_constant": true_best,
        "gate": _gate(up),
        "picked_constant": up.basis == "best_uniform",
        "picked_true_best": up.basis == "best_uniform" and up.uniform_action == true_best,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--small", action="store_true", help="5,000 customers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learner", default="dr", choices=("dr", "t"))
    parser.add_argument(
        "--variants",
        default="heterogeneous,uniform,none",
        help="comma-separated uplift variants to run (default all three)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    n = 5_000 if args.small else args.customers
    variants = [v for v in args.variants.split(",") if v]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        for variant in variants:
            if variant == "heterogeneous":
                h = result[variant] = heterogeneous(n, args.seed, args.learner, work)
                keys = ("true_value_per_customer", "learned_over_oracle")
                keys += ("learned_over_constant_uplift", "harmed_given_coupon_share")
                print(json.dumps({k: h[k] for k in keys}, indent=2))
            else:
                r = result[variant] = flat(n, args.seed, variant, args.learner, work)
                gate = r["gate"]
                print(variant, gate["basis"], gate["uniform_action"], r["true_best_constant"])
    result["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": sys.version.split()[0],
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
