"""Learned actions against the oracle and today's constant-uplift policy (issue 17).

One command reproduces every figure::

    python benchmarks/uplift.py            # 50k synthetic customers, three uplift variants
    python benchmarks/uplift.py --small    # a quick 5k-customer run

Acceptance 1 (``uplift="heterogeneous"``): the generator's campaigns (four
randomized sends before ``as_of``) train the uplift model as of ``as_of``
(``train_uplift``: its gate and Qini use the latest three campaigns, each
predicted by a model fitted on the earlier ones). Every customer is then
decided as of ``as_of`` three ways: by the learned model (the scoring rule of
``churnclv score`` with an uplift champion: the eligible action with the
largest ``uplift - cost``, or the gate's best constant); by the policy
formula with its hand-set uplift constants (``action_basis = policy``) fed
the generator's *true* P(churn) and expected value (today's policy at its
best: perfect churn and value models, and no churn/value training in the
benchmark); and by the oracle (the action with the largest true effect minus
cost, or none; ``oracle_eligible`` also respects each action's restrictions).
Each policy's true value is the mean over scored customers of the chosen
action's true effect (``truth.effect_<action>``: expected incremental net spend
in 30 days for a send at ``as_of``) minus its cost. The benchmark policy is the
shipped one restricted to the generator's four actions, with no randomized
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

from churnclv import InputTables, build_features, generate, load_policy, train_uplift
from churnclv.decisions import Policy, choose_action, decide, eligible

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "uplift.json"
ACTIONS = ("email_reminder", "discount_coupon", "personal_call", "upgrade_offer")


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


def _feature_oracle(data: Any, feats: pd.DataFrame) -> np.ndarray:
    """The true effects as far as the features can tell them: ``E[effect | features]``.

    A LightGBM regression of each send's *true* effect (``campaign_truth``, no
    outcome noise) on the send's features as of its date, predicted as of
    ``as_of``. The oracle knows each customer's hidden state (engaged, fading,
    dead); no policy that sees only the features can beat this one by much,
    so it is the ceiling a learner from noisy outcomes is measured against.
    """
    import lightgbm as lgb

    truth = data.campaign_truth
    dates = sorted(truth["ts"].dt.normalize().unique())
    at = build_features(data.transactions, data.events, data.customers, as_of=list(dates))
    keys = truth.assign(as_of=truth["ts"].dt.normalize().astype(at["as_of"].dtype))
    rows = keys.merge(at, on=["customer_id", "as_of"], how="inner")
    cols = [c for c in feats.columns if c not in ("customer_id", "as_of")]
    cats = [c for c in cols if not pd.api.types.is_numeric_dtype(feats[c])]
    x, xd = rows[cols].copy(), feats[cols].copy()
    for c in cats:
        x[c] = x[c].astype(str).astype("category")
        xd[c] = pd.Categorical(xd[c].astype(str), categories=x[c].cat.categories)
    params = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 31}
    params |= {"min_data_in_leaf": 50, "verbose": -1, "seed": 0}
    return np.column_stack(
        [
            lgb.train(params, lgb.Dataset(x, rows[f"effect_{a}"].to_numpy()), 400).predict(xd)
            for a in ACTIONS
        ]
    )


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


def _decisions(data: Any, pol: Policy, model: Any, basis: str, uniform: str) -> pd.DataFrame:
    """Every customer as of ``as_of``: the policy formula's and the learned decisions.

    The policy formula (``action_basis = policy``) is given the generator's true
    P(no purchase in 90 days) and expected 365-day value: today's constant-uplift
    policy at its best (perfect churn and value models). The learned decision is
    the scoring rule of ``churnclv score`` with an uplift champion: the eligible
    action with the largest ``uplift - cost`` (or the gate's best constant).
    """
    feats = build_features(
        data.transactions, data.events, data.customers, as_of=data.as_of
    ).reset_index(drop=True)
    truth = data.truth.set_index("customer_id").loc[feats["customer_id"]].reset_index()
    scored = feats[["customer_id", "as_of", "recency_days", "tenure_days", "gap_mean_days"]]
    scored = scored.assign(
        frequency=feats["frequency"],
        monetary_total=feats["monetary_total"],
        churn_probability=truth["p_no_purchase_90"].to_numpy(),
        predicted_value=truth["expected_value_365"].to_numpy(),
    )
    out = decide(scored, pol, churn_horizon_days=90)
    names = [a.name for a in pol.actions]
    costs = np.array([a.cost for a in pol.actions])
    ok = eligible(pol, out["rfm_segment"], out["value_tier"], out["lifecycle_stage"])
    own = model.predict_uplift(feats)
    uplift = np.full((len(feats), len(names)), np.nan)
    for j, a in enumerate(model.actions_):
        uplift[:, names.index(a)] = own[:, j]
    none = np.zeros(len(feats), dtype=bool)
    ungated, _ = choose_action(uplift - costs, ok, none, names)
    out["ungated_action"] = ungated  # what the model would choose had the gate kept it
    if basis == "learned":
        learned = ungated
    else:
        give = ok[:, names.index(uniform)] if uniform in names else none
        learned = np.where(give, uniform, "none")
    out["learned_action"] = learned
    for j, a in enumerate(names):
        out[f"uplift_{a}"] = uplift[:, j]
    seen, _ = choose_action(_feature_oracle(data, feats) - costs, ok, none, names)
    out["feature_oracle_action"] = seen
    return out.merge(truth[["customer_id", *(f"effect_{a}" for a in ACTIONS)]], on="customer_id")


def heterogeneous(n: int, seed: int, learner: str, work: str) -> dict[str, Any]:
    """Acceptance 1: learned vs oracle vs constant-uplift vs every constant policy."""
    t0 = time.perf_counter()
    data = generate(n, seed=seed, uplift="heterogeneous")
    tables = _tables(data)
    pol = _policy()
    costs = {a.name: a.cost for a in pol.actions}
    t1 = time.perf_counter()
    up = train_uplift(
        tables,
        data.campaigns,
        as_of=data.as_of,
        tracking_uri=f"sqlite:///{work}/mlruns.db",
        policy=pol,
        promote=True,
        seed=seed,
        learner=learner,
    )
    t2 = time.perf_counter()
    d = _decisions(data, pol, up.model, up.basis, up.uniform_action)
    t3 = time.perf_counter()
    effects = np.column_stack([d[f"effect_{a}"].to_numpy() - costs[a] for a in ACTIONS])
    names = np.array([*ACTIONS, "none"], dtype=object)
    oracle = names[np.where(effects.max(axis=1) > 0, effects.argmax(axis=1), len(ACTIONS))]
    ok = eligible(pol, d["rfm_segment"], d["value_tier"], d["lifecycle_stage"])
    masked = np.where(ok, effects, -np.inf)
    oracle_eligible = names[np.where(masked.max(axis=1) > 0, masked.argmax(axis=1), len(ACTIONS))]
    values = {
        "learned": _true_value(d["learned_action"], d, costs),
        "learned_if_kept_by_the_gate": _true_value(d["ungated_action"], d, costs),
        "oracle": _true_value(pd.Series(oracle), d, costs),
        "oracle_eligible": _true_value(pd.Series(oracle_eligible), d, costs),
        "feature_oracle_eligible": _true_value(d["feature_oracle_action"], d, costs),
        "constant_uplift_policy": _true_value(d["action"], d, costs),
        "none": 0.0,
        **{f"all_{a}": float((d[f"effect_{a}"] - costs[a]).mean()) for a in ACTIONS},
    }
    harmed = (d["effect_discount_coupon"] < 0).to_numpy()
    share = lambda col: float((d[col] == "discount_coupon").to_numpy()[harmed].mean())  # noqa: E731
    corr = {a: float(np.corrcoef(d[f"uplift_{a}"], d[f"effect_{a}"])[0, 1]) for a in ACTIONS}
    return {
        "customers": n,
        "scored": len(d),
        "learner": learner,
        "true_value_per_customer": values,
        "learned_over_oracle": values["learned"] / values["oracle"],
        "learned_over_oracle_eligible": values["learned"] / values["oracle_eligible"],
        "learned_over_feature_oracle_eligible": values["learned"]
        / values["feature_oracle_eligible"],
        "feature_oracle_over_oracle_eligible": values["feature_oracle_eligible"]
        / values["oracle_eligible"],
        "learned_over_constant_uplift": values["learned"] / values["constant_uplift_policy"],
        "actions": {
            "learned": d["learned_action"].value_counts().to_dict(),
            "oracle": pd.Series(oracle).value_counts().to_dict(),
            "oracle_eligible": pd.Series(oracle_eligible).value_counts().to_dict(),
            "feature_oracle_eligible": d["feature_oracle_action"].value_counts().to_dict(),
            "constant_uplift_policy": d["action"].value_counts().to_dict(),
        },
        "harmed_by_coupon": int(harmed.sum()),
        "harmed_given_coupon_share": share("learned_action") if harmed.any() else 0.0,
        "harmed_given_coupon_share_policy": share("action") if harmed.any() else 0.0,
        "harmed_given_coupon_share_if_kept": share("ungated_action") if harmed.any() else 0.0,
        "uplift_effect_correlation": corr,
        "gate": _gate(up),
        "seconds": {
            "generate": round(t1 - t0, 1),
            "train_uplift": round(t2 - t1, 1),
            "decide": round(t3 - t2, 1),
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
                keys += ("learned_over_oracle_eligible", "learned_over_feature_oracle_eligible")
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
