# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Tiers, risk and retention actions
#
# Reads the batch-scored snapshot (`churnclv score` / `churnclv demo` write
# `<workdir>/scores.parquet`) and the decision policy, then shows
#
# 1. the value tier × churn risk matrix (customers and predicted value);
# 2. the lifecycle mix of each tier;
# 3. the action mix with its expected cost and expected saved value;
# 4. the actions learned from past campaigns (with an uplift champion): learned effects per
#    action, value tier and RFM segment beside the effects the randomized campaigns measured,
#    with their 95% intervals, and the campaign evaluation (`churnclv evaluate-campaign`);
# 5. what-ifs: a different high-risk threshold, and a campaign budget (customers chosen
#    greedily by expected gain per unit of cost, as `--budget` does);
# 6. how tiers and lifecycle stages moved since the previous score snapshot.

# %% tags=["parameters"]
import os
from pathlib import Path

WORKDIR = Path(os.environ.get("CHURNCLV_WORKDIR", "../churnclv-work"))
SCORES = Path(os.environ.get("CHURNCLV_SCORES", WORKDIR / "scores.parquet"))
# Decision policy YAML; empty = the shipped default (src/churnclv/default_policy.yaml).
POLICY = os.environ.get("CHURNCLV_POLICY", "")
# For the threshold what-if: the data the snapshot was scored from and the model store.
DATA = WORKDIR / "data"
TRANSACTIONS = os.environ.get("CHURNCLV_TRANSACTIONS", str(DATA / "transactions.parquet"))
EVENTS = os.environ.get("CHURNCLV_EVENTS", str(DATA / "events.parquet"))
CUSTOMERS = os.environ.get("CHURNCLV_CUSTOMERS", str(DATA / "customers.parquet"))
TRACKING_URI = os.environ.get("CHURNCLV_TRACKING_URI", "")
# The campaign log the uplift model learned from (customer_id, ts, treatment, campaign_id).
CAMPAIGNS = os.environ.get("CHURNCLV_CAMPAIGNS", str(DATA / "campaigns.parquet"))
# Response window of the campaign evaluation; empty = the uplift champion's, else 30 days.
RESPONSE_DAYS = os.environ.get("CHURNCLV_RESPONSE_DAYS", "")
# What-if grids.
HIGH_RISK_THRESHOLDS = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
BUDGET_STEPS = 12

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from churnclv import (
    InputError,
    captioned_figure,
    evaluate_campaign,
    load_campaigns,
    migration_matrix,
    migration_summary,
    readable_table,
    value_at_risk_sentence,
)
from churnclv.decisions import (
    LIFECYCLE_STAGES,
    RISK_BANDS,
    VALUE_TIERS,
    campaign_summary,
    decide,
    load_policy,
    select_under_budget,
)

pd.set_option("display.width", 140)
pd.set_option("display.max_columns", 30)

policy = load_policy(POLICY or None)
scored = pd.read_parquet(SCORES) if SCORES.suffix != ".csv" else pd.read_csv(SCORES)
# Older snapshots lack the cost / saved-value / selected columns: derive them from the policy.
scored = select_under_budget(scored.drop(columns=["selected"], errors="ignore"), policy, None)
as_of = pd.Timestamp(scored["as_of"].max()) if "as_of" in scored else None
display(
    Markdown(
        f"**{len(scored):,} customers** scored as of {as_of:%Y-%m-%d} "
        f"(models {scored['model_version'].iloc[0] if 'model_version' in scored else 'unknown'}). "
        f"A customer is high risk from a {policy.risk_high:.0%} chance of churning, medium from "
        f"{policy.risk_medium:.0%}. Retention actions: "
        + "; ".join(
            f"{a.name.replace('_', ' ')} (costs {a.cost:g}, keeps {a.uplift:.0%} of those "
            "who would churn)"
            for a in policy.actions
        )
        + "."
    )
)

# %% [markdown]
# ## Value tier × churn risk
#
# Where is the value, and which cell holds most of the value at risk? The sentence under the
# figure answers from the scores.

# %%
grid_n = pd.crosstab(scored["value_tier"], scored["risk_band"]).reindex(
    index=list(VALUE_TIERS), columns=list(RISK_BANDS), fill_value=0
)
grid_v = (
    scored.pivot_table(
        index="value_tier",
        columns="risk_band",
        values="predicted_value",
        aggfunc="sum",
        observed=False,
    )
    .reindex(index=list(VALUE_TIERS), columns=list(RISK_BANDS))
    .fillna(0.0)
)
at_risk = scored["churn_probability"] * scored["predicted_value"].clip(lower=0)
grid_r = (
    at_risk.groupby([scored["value_tier"], scored["risk_band"]])
    .sum()
    .unstack()
    .reindex(index=list(VALUE_TIERS), columns=list(RISK_BANDS))
    .fillna(0.0)
)
total = scored["predicted_value"].sum()

fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
for ax, data, title in (
    (axes[0], grid_v, "Predicted value"),
    (axes[1], grid_r, "Value at risk = chance of churn × value"),
):
    im = ax.imshow(data.to_numpy(), cmap="Reds")
    ax.set_xticks(range(3), [f"{b} risk" for b in RISK_BANDS])
    ax.set_yticks(range(3), [f"{t} value" for t in VALUE_TIERS])
    for i in range(3):
        for j in range(3):
            v = data.iat[i, j]
            ax.text(
                j,
                i,
                f"{v:,.0f}\n{grid_n.iat[i, j]:,} cust.\n{v / data.to_numpy().sum():.0%}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if v > data.to_numpy().max() / 2 else "black",
            )
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.04)
plt.tight_layout()
answer = (
    f"The high tier ({grid_n.loc['high'].sum():,} customers, "
    f"{grid_n.loc['high'].sum() / len(scored):.0%}) carries "
    f"{grid_v.loc['high'].sum() / total:.0%} of predicted value. " + value_at_risk_sentence(scored)
)
display(
    captioned_figure(fig, "Predicted value and value at risk by value tier and churn risk", answer)
)
display(Markdown(answer))
readable_table(
    grid_n.rename(index=lambda t: f"{t} value", columns=lambda b: f"{b} risk"),
    labels={"value_tier": "Customers by value tier", "risk_band": "churn risk"},
)

# %% [markdown]
# ## Lifecycle mix by value tier
#
# new / active / silent / churned per tier (silent = overdue relative to the customer's usual
# purchase gap; churned = no purchase for longer than the churn horizon).

# %%
life = pd.crosstab(scored["value_tier"], scored["lifecycle_stage"], normalize="index").reindex(
    index=list(VALUE_TIERS), columns=list(LIFECYCLE_STAGES), fill_value=0.0
)
fig, ax = plt.subplots(figsize=(8, 3.8))
left = np.zeros(len(life))
colors = {"new": "tab:blue", "active": "tab:green", "silent": "tab:orange", "churned": "tab:red"}
for stage in LIFECYCLE_STAGES:
    ax.barh(life.index, life[stage], left=left, color=colors[stage], label=stage)
    left += life[stage].to_numpy()
ax.set_xlabel("share of the tier's customers")
ax.set_yticks(range(len(life)), [f"{t} value" for t in life.index])
ax.xaxis.set_major_formatter("{x:.0%}")
ax.set_title("Lifecycle stage by value tier")
ax.invert_yaxis()
ax.legend(ncol=4, loc="lower center", bbox_to_anchor=(0.5, -0.35))
plt.tight_layout()
silent_high = int(
    ((scored["value_tier"] == "high") & (scored["lifecycle_stage"] == "silent")).sum()
)
answer = (
    f"{life.loc['high', 'silent']:.0%} of high-value customers are silent ({silent_high:,} "
    f"customers, the early-warning list) and {life.loc['high', 'churned']:.0%} have churned; "
    f"in the low tier {life.loc['low', 'churned']:.0%} have churned."
)
display(captioned_figure(fig, "Lifecycle stage by value tier", answer))
display(Markdown(answer))
readable_table(
    pd.crosstab(scored["lifecycle_stage"], scored["value_tier"], margins=True)
    .reindex(index=[*LIFECYCLE_STAGES, "All"], columns=[*VALUE_TIERS, "All"], fill_value=0)
    .rename(columns=lambda t: f"{t} value" if t != "All" else "all customers"),
    labels={"lifecycle_stage": "Customers by lifecycle stage", "value_tier": "value tier"},
)

# %% [markdown]
# ## Action mix: expected cost and expected saved value
#
# Each customer gets the action with the best expected net gain = P(churn) × predicted value
# × uplift − cost, or `none` when nothing pays; with an uplift champion, the action comes from
# learned uplift instead (next section).

# %%
mix = (
    scored.groupby("action")
    .agg(
        customers=("customer_id", "size"),
        cost=("action_cost", "sum"),
        expected_saved_value=("expected_saved_value", "sum"),
        expected_net_gain=("expected_net_gain", "sum"),
    )
    .sort_values("customers", ascending=False)
)
mix["roi"] = (mix["expected_saved_value"] - mix["cost"]) / mix["cost"].where(mix["cost"] > 0)
paid = mix.drop(index="none", errors="ignore")
fig, ax = plt.subplots(figsize=(8, 4))
x = np.arange(len(paid))
ax.bar(x - 0.2, paid["cost"], 0.4, label="expected cost", color="tab:gray")
ax.bar(x + 0.2, paid["expected_saved_value"], 0.4, label="expected saved value", color="tab:green")
ax.set_xticks(
    x,
    [
        f"{a.replace('_', ' ')}\n({n:,} customers)"
        for a, n in zip(paid.index, paid["customers"], strict=True)
    ],
)
ax.set_title("Retention actions: cost vs expected saved value")
summary = campaign_summary(scored)
if paid.empty:  # an empty chart would read as a broken one
    ax.text(
        0.5, 0.5, "No customer is given an action", ha="center", va="center", transform=ax.transAxes
    )
    ax.set_axis_off()
    answer = "No action pays for any customer, so nothing is spent (see why below)."
else:
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    answer = (
        f"Taking every action that pays reaches {summary['customers']:,.0f} customers, costs "
        f"{summary['cost']:,.0f} and is expected to save {summary['expected_saved_value']:,.0f}: "
        f"a return of {summary['roi']:.1f}x on cost."
    )
plt.tight_layout()
display(captioned_figure(fig, "Retention actions: cost vs expected saved value", answer))
display(Markdown(answer))
readable_table(
    mix.rename(index=lambda a: a.replace("_", " ")),
    money_cols=["cost", "expected_saved_value", "expected_net_gain"],
    digits=1,
    labels={"roi": "Return on cost (x)", "customers": "Customers"},
)

# %% [markdown]
# ## Actions learned from campaigns
#
# With an uplift champion (`churnclv train-uplift --promote`; the demo trains one), every scored
# customer carries `uplift_<action>`: the expected incremental net spend in the response window
# after a send of that action. The model chooses actions only where it beat every constant policy
# on held-out campaigns (its gate); otherwise the best constant action goes to every eligible
# customer. Below: the gate's verdict, then the learned effects per value tier and RFM segment
# beside the effects the randomized campaigns measured for the same customers (difference in mean
# net spend between the action's arm and the control arm, Welch 95% interval), then the campaign
# evaluation itself.

# %%
from churnclv import load_champion, load_inputs
from churnclv.training import tracking_uri_for

uplift_cols = [c for c in scored.columns if c.startswith("uplift_")]
try:
    uplift_model = load_champion(tracking_uri_for(WORKDIR, TRACKING_URI or None)).uplift
except InputError:  # no champion in this store
    uplift_model = None
decision = dict(uplift_model.decision_) if uplift_model is not None else {}
days = int(RESPONSE_DAYS or decision.get("response_days") or 30)
log = None
if Path(CAMPAIGNS).exists() and Path(TRANSACTIONS).exists():
    log = load_campaigns(CAMPAIGNS, actions=[a.name for a in policy.actions])
    transactions = load_inputs(TRANSACTIONS).transactions


def action_words(code):
    return code.replace("_", " ")


def pooled_rows(evaluation):
    """The rows of all campaigns pooled (``all``), or the one campaign's rows."""
    pooled = evaluation["campaign_id"] == "all"
    return evaluation[pooled] if pooled.any() else evaluation


if not uplift_cols:
    verdict = (
        "No uplift champion scored these customers, so the actions follow the policy formula "
        "(`action_basis` = policy). Train one on a campaign log with "
        "`churnclv train-uplift --campaigns FILE --promote` and score again."
    )
elif decision.get("basis") == "learned":
    verdict = (
        f"On held-out campaigns the learned actions beat the closest constant policy by "
        f"{decision['difference']:,.2f} per customer (95% interval "
        f"{decision['difference_low']:,.2f} to {decision['difference_high']:,.2f}), so each "
        "customer gets the eligible action with the largest uplift minus cost."
    )
else:
    uniform = decision.get("uniform_action", "none")
    verdict = (
        f"On held-out campaigns the learned actions could not be told from the closest constant "
        f"policy (difference {decision.get('difference', float('nan')):,.2f} per customer, 95% "
        f"interval {decision.get('difference_low', float('nan')):,.2f} to "
        f"{decision.get('difference_high', float('nan')):,.2f}), so "
        + (
            "no one is contacted on their basis."
            if uniform == "none"
            else f"every eligible customer gets the best constant action, {action_words(uniform)}."
        )
    )
display(Markdown(verdict))


def measured_effects(groups):
    """Per group and action: the campaigns' measured effect (all campaigns pooled) and 95% CI."""
    rows = []
    for name, ids in groups.items():
        try:
            ev = evaluate_campaign(
                log[log["customer_id"].isin(ids)], transactions, response_days=days, policy=policy
            )
        except InputError:  # e.g. no control sends in this group
            continue
        pooled = pooled_rows(ev)
        for r in pooled[pooled["treatment"] != "control"].itertuples():
            rows.append((name, r.treatment, r.customers, r.difference, r.ci_low, r.ci_high))
    columns = ["group", "action", "sends", "measured", "measured_low", "measured_high"]
    return pd.DataFrame(rows, columns=columns)


def learned_vs_measured(by):
    """Learned uplift (mean over the group's scored customers, 95% CI) beside the measured one."""
    rows = []
    for col in uplift_cols:
        x = scored.groupby(by)[col]
        mean, sem, n = x.mean(), x.sem(), x.count()
        for g in mean.index:
            rows.append(
                {
                    "group": g,
                    "action": col.removeprefix("uplift_"),
                    "customers": int(n[g]),
                    "learned": mean[g],
                    "learned_low": mean[g] - 1.96 * sem[g],
                    "learned_high": mean[g] + 1.96 * sem[g],
                }
            )
    out = pd.DataFrame(rows)
    if log is not None:
        ids = scored.groupby(by)["customer_id"].apply(list).to_dict()
        out = out.merge(measured_effects(ids), on=["group", "action"], how="left")
        out["agrees"] = np.where(
            out["measured_low"].notna(),
            np.where(
                (out["learned"] >= out["measured_low"]) & (out["learned"] <= out["measured_high"]),
                "yes",
                "no",
            ),
            "-",
        )
    return out


if uplift_cols:
    by_tier = learned_vs_measured("value_tier")
    names = [c.removeprefix("uplift_") for c in uplift_cols]
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.8), sharey=False)
    for ax, action in zip(np.atleast_1d(axes), names, strict=True):
        part = by_tier[by_tier["action"] == action].set_index("group").reindex(VALUE_TIERS)
        x = np.arange(len(part))
        ax.errorbar(
            x - 0.1,
            part["learned"],
            yerr=[part["learned"] - part["learned_low"], part["learned_high"] - part["learned"]],
            fmt="o",
            color="tab:blue",
            label="learned (model)",
        )
        if "measured" in part:
            ax.errorbar(
                x + 0.1,
                part["measured"],
                yerr=[
                    part["measured"] - part["measured_low"],
                    part["measured_high"] - part["measured"],
                ],
                fmt="s",
                color="tab:orange",
                label="measured (campaigns)",
            )
        cost = next(a.cost for a in policy.actions if a.name == action)
        ax.axhline(cost, color="grey", ls=":", label="cost")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xticks(x, [f"{t} value" for t in VALUE_TIERS])
        ax.set_title(action_words(action))
        ax.grid(alpha=0.3, axis="y")
    np.atleast_1d(axes)[0].set_ylabel(f"incremental net spend in {days} days")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    plt.tight_layout()
    known = by_tier.dropna(subset=["measured"]) if "measured" in by_tier else by_tier.iloc[:0]
    best = by_tier.loc[by_tier["learned"].idxmax()]
    answer = (
        f"The largest learned effect is {action_words(best['action'])} for {best['group']}-value "
        f"customers: {best['learned']:,.2f} per customer against a cost of "
        f"{next(a.cost for a in policy.actions if a.name == best['action']):,.2f}."
        + (
            f" The learned mean lies inside the campaigns' 95% interval in "
            f"{(known['agrees'] == 'yes').sum()} of {len(known)} tier and action cells."
            if len(known)
            else ""
        )
    )
    display(captioned_figure(fig, "Learned vs measured effect per action and value tier", answer))
    display(Markdown(answer))
    labels = {
        "customers": "Customers scored",
        "learned": "Learned uplift",
        "learned_low": "Learned, 95% low",
        "learned_high": "Learned, 95% high",
        "sends": "Campaign sends",
        "measured": "Measured effect",
        "measured_low": "Measured, 95% low",
        "measured_high": "Measured, 95% high",
        "agrees": "Learned inside measured interval",
    }
    order = {t: i for i, t in enumerate(VALUE_TIERS)}
    show = (
        by_tier.assign(action=by_tier["action"].map(action_words))
        .sort_values(["action", "group"], key=lambda c: c.map(order) if c.name == "group" else c)
        .set_index(["action", "group"])
        .rename_axis(["Action", "Value tier"])
    )
    display(readable_table(show, digits=2, labels=labels))


def cell(row):
    """Learned uplift / measured effect (95% interval) as one cell."""
    learned = f"{row['learned']:,.2f}"
    if "measured" not in row or pd.isna(row["measured"]):
        return f"{learned} / -"
    ci = (
        f" ({row['measured_low']:,.1f} to {row['measured_high']:,.1f})"
        if pd.notna(row["measured_low"])
        else ""
    )
    return f"{learned} / {row['measured']:,.1f}{ci}"


if uplift_cols:
    by_segment = learned_vs_measured("rfm_segment")
    grid = (
        by_segment.assign(cell=by_segment.apply(cell, axis=1))
        .pivot(index="group", columns="action", values="cell")
        .rename(index=action_words, columns=action_words)
        .rename_axis(index="RFM segment", columns=None)
    )
    sizes = scored["rfm_segment"].value_counts().rename(index=action_words)
    grid.insert(0, "customers", sizes.reindex(grid.index).fillna(0).astype(int).map("{:,}".format))
    display(
        Markdown(
            "Per RFM segment: learned uplift / measured effect (95% interval) per action. "
            "Segments are today's, while the campaigns were sent earlier; small segments have "
            "wide intervals."
        )
    )
    display(grid)

# %% [markdown]
# ### Campaign evaluation
#
# Each past campaign's arms against its control arm (`churnclv evaluate-campaign`): customers,
# response rate, mean net spend in the response window, the difference with its 95% interval,
# incremental revenue, cost and return on cost; the `all` rows pool the campaigns.

# %%
if log is None:
    display(
        Markdown(f"No campaign log at `{CAMPAIGNS}`: set `CHURNCLV_CAMPAIGNS` to evaluate one.")
    )
else:
    evaluation = evaluate_campaign(log, transactions, response_days=days, policy=policy)
    pooled = pooled_rows(evaluation)
    arms = pooled[pooled["treatment"] != "control"]
    top = arms.loc[arms["difference"].idxmax()]
    clear = arms[arms["ci_low"] > 0]["treatment"].map(action_words).tolist()
    display(
        Markdown(
            f"Over {log['campaign_id'].nunique()} campaign"
            + ("s" if log["campaign_id"].nunique() > 1 else "")
            + f" and {len(log):,} sends, "
            f"{action_words(top['treatment'])} raised mean net spend the most: "
            f"{top['difference']:,.2f} per customer in {days} days (95% interval "
            f"{top['ci_low']:,.2f} to {top['ci_high']:,.2f}), a return of {top['roi']:,.1f}x on "
            "its cost. "
            + (
                f"Clearly above zero: {', '.join(clear)}."
                if clear
                else "No action's effect is clearly above zero (every interval includes 0)."
            )
        )
    )
    table = evaluation.assign(treatment=evaluation["treatment"].map(action_words)).set_index(
        ["campaign_id", "treatment"]
    )
    display(
        readable_table(
            table,
            money_cols=["mean_net_spend", "incremental_revenue", "cost"],
            share_cols=["response_rate"],
            digits=2,
            labels={
                "campaign_id": "Campaign",
                "treatment": "Arm",
                "ci_low": "95% low",
                "ci_high": "95% high",
                "p_value": "P-value",
                "roi": "Return on cost (x)",
            },
        )
    )

# %% [markdown]
# ## What-if: the high-risk threshold
#
# The policy's high-risk threshold (`risk_band.high`) decides who is flagged "high risk"
# (the early-warning list). The decisions
# are recomputed with `churnclv.decisions.decide` for each threshold on the features the
# snapshot was scored from, with the champion's reference distribution; the campaign here
# targets the high-risk band only.

# %%
have_inputs = Path(TRANSACTIONS).exists() and as_of is not None
if have_inputs:
    from churnclv import build_features, load_champion, load_inputs
    from churnclv.training import tracking_uri_for

    champ = load_champion(tracking_uri_for(WORKDIR, TRACKING_URI or None))
    tables = load_inputs(
        TRANSACTIONS,
        EVENTS if EVENTS and Path(EVENTS).exists() else None,
        CUSTOMERS if CUSTOMERS and Path(CUSTOMERS).exists() else None,
    )
    feats = build_features(tables.transactions, tables.events, tables.customers, as_of=as_of)
    base = feats.drop(columns=["as_of"]).merge(
        scored[["customer_id", "churn_probability", "predicted_value"]], on="customer_id"
    )
    reference = champ.value.reference_
    horizon = champ.churn_horizon_days
else:
    base, reference, horizon = scored.copy(), None, 90.0


def decisions_for(pol):
    """Decide (and select every paying action) under policy ``pol``."""
    if not have_inputs:  # risk bands only depend on P(churn); actions stay as scored
        out = scored.copy()
        p = out["churn_probability"]
        out["risk_band"] = np.select(
            [p >= pol.risk_high, p >= pol.risk_medium], ["high", "medium"], "low"
        )
        return out
    return select_under_budget(
        decide(base, pol, churn_horizon_days=horizon, reference=reference), pol, None
    )


check = decisions_for(policy).set_index("customer_id").reindex(scored["customer_id"])
agree = (check["action"].to_numpy() == scored["action"].to_numpy()).mean()
display(
    Markdown(
        f"Recomputed under the current policy, the actions agree with the snapshot for "
        f"{agree:.1%} of customers."
    )
)
rows = []
for t in HIGH_RISK_THRESHOLDS:
    d = decisions_for(
        dataclasses.replace(policy, risk_high=t, risk_medium=min(policy.risk_medium, t))
    )
    high = d["risk_band"] == "high"
    s = campaign_summary(d.assign(selected=d["selected"] & high))
    rows.append(
        {
            "risk_high": t,
            "high_risk_customers": int(high.sum()),
            "value_in_band": d.loc[high, "predicted_value"].sum(),
            "campaign_customers": int(s["customers"]),
            "cost": s["cost"],
            "saved": s["expected_saved_value"],
            "net_gain": s["expected_net_gain"],
        }
    )
whatif = pd.DataFrame(rows).set_index("risk_high")
fig, ax1 = plt.subplots(figsize=(8, 4))
ax1.plot(
    whatif.index,
    whatif["high_risk_customers"],
    marker="o",
    color="tab:red",
    label="high-risk customers",
)
ax1.set_xlabel("chance of churn from which a customer counts as high risk")
ax1.set_ylabel("customers flagged high risk", color="tab:red")
ax2 = ax1.twinx()
ax2.plot(
    whatif.index,
    whatif["net_gain"],
    marker="s",
    color="tab:green",
    label="net gain, high band only",
)
ax2.set_ylabel("expected net gain (high-risk campaign)", color="tab:green")
ax1.axvline(policy.risk_high, color="grey", ls=":")
ax1.xaxis.set_major_formatter("{x:.0%}")
ax1.set_title("What-if: high-risk threshold")
ax1.grid(alpha=0.3)
plt.tight_layout()
best = whatif["net_gain"].idxmax()
answer = (
    f"At the current threshold ({policy.risk_high:.0%}) "
    f"{whatif['high_risk_customers'].get(policy.risk_high, np.nan):,.0f} customers are flagged "
    f"high risk. A campaign on the high-risk band alone earns most at a {best:.0%} threshold: "
    f"{whatif.loc[best, 'net_gain']:,.0f} net gain from {whatif.loc[best, 'campaign_customers']:,} "
    "customers."
)
display(captioned_figure(fig, "What-if: the high-risk threshold", answer))
display(Markdown(answer))
readable_table(
    whatif.reset_index(),
    money_cols=["value_in_band", "cost", "saved", "net_gain"],
    share_cols=["risk_high"],
    labels={
        "risk_high": "High risk from",
        "high_risk_customers": "High-risk customers",
        "value_in_band": "Their predicted value",
        "campaign_customers": "Customers in campaign",
        "saved": "Expected saved value",
        "net_gain": "Expected net gain",
    },
).set_index("High risk from")

# %% [markdown]
# ## What-if: campaign budget
#
# With a budget, customers are taken greedily by expected gain per unit of cost until the
# budget is spent (the `--budget` option of `score` and `demo`). Does each extra unit of
# budget buy as much as the first? The line under the figure compares the first and last steps.

# %%
full_cost = scored.loc[scored["action"] != "none", "action_cost"].sum()
budgets = np.linspace(0, full_cost, BUDGET_STEPS + 1)[1:] if full_cost > 0 else np.array([0.0])
curve = pd.DataFrame(
    [
        {"budget": b, **campaign_summary(select_under_budget(scored, policy, float(b)))}
        for b in budgets
    ]
).set_index("budget")
fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(curve.index, curve["expected_saved_value"], marker="o", label="expected saved value")
ax.plot(curve.index, curve["expected_net_gain"], marker="s", label="expected net gain")
ax.plot(curve.index, curve["cost"], ls="--", color="grey", label="cost")
ax.set_xlabel("campaign budget")
ax.set_ylabel("amount")
ax.set_title("What-if: campaign budget (greedy by gain per cost)")
step_gain = curve["expected_saved_value"].diff().fillna(curve["expected_saved_value"])
if full_cost > 0:
    ax.grid(alpha=0.3)
    ax.legend()
    answer = (
        f"The first {budgets[0]:,.0f} of budget buys {step_gain.iloc[0]:,.0f} of expected saved "
        f"value, the last step {step_gain.iloc[-1]:,.0f}"
        + (
            ": extra budget buys less and less."
            if step_gain.iloc[-1] < step_gain.iloc[0]
            else ", as much as the first."
        )
    )
else:
    ax.cla()
    ax.text(
        0.5,
        0.5,
        "No action pays: there is no budget to spend",
        ha="center",
        va="center",
        transform=ax.transAxes,
    )
    ax.set_axis_off()
    answer = "No action pays for any customer, so a budget would buy nothing."
plt.tight_layout()
display(captioned_figure(fig, "What-if: campaign budget", answer))
display(Markdown(answer))
readable_table(
    curve.reset_index()[
        ["budget", "customers", "cost", "expected_saved_value", "expected_net_gain", "roi"]
    ],
    money_cols=["budget", "cost", "expected_saved_value", "expected_net_gain"],
    digits=1,
    labels={"roi": "Return on cost (x)", "customers": "Customers"},
).set_index("Budget")

# %% [markdown]
# ## Since the last snapshot
#
# Every `churnclv score` keeps a snapshot in `<workdir>/snapshots/<as_of>.parquet`. How did
# customers move between value tiers (rows: previous tier, columns: current tier, plus new and
# gone customers) and lifecycle stages since the snapshot before this one?

# %%
day = f"{as_of:%Y-%m-%d}" if as_of is not None else "9999-12-31"
dated = sorted(p for p in (WORKDIR / "snapshots").glob("????-??-??.parquet") if p.stem < day)
if dated:
    previous = pd.read_parquet(dated[-1])
    display(Markdown(migration_summary(previous, scored)["sentence"]))
    display(readable_table(migration_matrix(previous, scored)))
    if "lifecycle_stage" in previous:
        display(readable_table(migration_matrix(previous, scored, "lifecycle_stage")))
else:
    display(
        Markdown(
            f"No snapshot before {day} in `{WORKDIR / 'snapshots'}`: score an earlier date "
            "first to see how customers moved."
        )
    )

# %% [markdown]
# ## What the figures show
#
# - **Tier × risk matrix**: predicted value and value at risk per cell, with customer counts;
#   the printed sentence says which cell holds most of the value at risk.
# - **Lifecycle mix**: how many customers of each tier are new, active, silent or already
#   churned; silent high-value customers are the early-warning list.
# - **Action mix**: what the policy spends per action against the value it expects to save;
#   `none` customers are those for whom no action pays.
# - **Learned vs measured effects**: the uplift model's mean effect per action and value tier
#   (dots, with the 95% interval of the group's mean estimate) beside the effect the randomized
#   campaigns measured for the same customers (squares); the dotted line is the action's cost,
#   so an action pays for a group whose effect sits above it.
# - **Campaign evaluation**: each campaign's arms against its control arm, pooled in the `all`
#   rows.
# - **Threshold what-if**: how many customers the early-warning list flags and what a
#   high-band-only campaign would earn as `risk_band.high` moves; the dotted line is the
#   current policy.
# - **Budget what-if**: saved value and net gain as the budget grows; where the net-gain curve
#   flattens, extra budget buys little.
# - **Since the last snapshot**: upgrades, downgrades and newly churned customers, counted
#   from the two snapshots.
