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
# # 01 · Explore customer histories
#
# How do customers buy, come back and drift away? This notebook reads a transactions table
# (and, optionally, engagement events and customers), then shows
#
# 1. cohort retention: monthly acquisition cohorts × months since first purchase;
# 2. the distribution of gaps between purchase days;
# 3. RFM distributions from `churnclv.features.build_features` (the same point-in-time
#    definitions the models use);
# 4. engagement against churn: behavioural cohorts (deciles of an engagement metric) against
#    the observed 90-day churn rate from `churnclv.features.build_labels`, in the spirit of
#    *Fighting Churn With Data*.
#
# Point it at your own data with environment variables (see the next cell) or edit the cell.

# %% tags=["parameters"]
import os
from pathlib import Path

WORKDIR = Path(os.environ.get("CHURNCLV_WORKDIR", "../churnclv-work"))
DATA = WORKDIR / "data"
TRANSACTIONS = Path(os.environ.get("CHURNCLV_TRANSACTIONS", DATA / "transactions.parquet"))
# Empty string = no events / no customers table.
EVENTS = os.environ.get("CHURNCLV_EVENTS", str(DATA / "events.parquet"))
CUSTOMERS = os.environ.get("CHURNCLV_CUSTOMERS", str(DATA / "customers.parquet"))
# Column names in your files (as the CLI's --customer-col, --ts-col, ... flags).
CUSTOMER_COL = os.environ.get("CHURNCLV_CUSTOMER_COL", "customer_id")
TS_COL = os.environ.get("CHURNCLV_TS_COL", "ts")
AMOUNT_COL = os.environ.get("CHURNCLV_AMOUNT_COL", "amount")
EVENT_TYPE_COL = os.environ.get("CHURNCLV_EVENT_TYPE_COL", "event_type")
# Analysis date: only rows before it are "history". Empty = the as_of of the scored snapshot
# (<workdir>/scores.parquet) if there is one, else the day after the last transaction.
AS_OF = os.environ.get("CHURNCLV_AS_OF", "")
SCORES = Path(os.environ.get("CHURNCLV_SCORES", WORKDIR / "scores.parquet"))
CHURN_HORIZON_DAYS = float(os.environ.get("CHURNCLV_CHURN_HORIZON_DAYS", "90"))
# Engagement metric for the behavioural cohorts (any numeric feature column works).
ENGAGEMENT_METRIC = os.environ.get("CHURNCLV_ENGAGEMENT_METRIC", "events_30d")

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from churnclv import (
    ColumnMap,
    build_features,
    build_labels,
    captioned_figure,
    feature_label,
    load_inputs,
    readable_table,
)

pd.set_option("display.width", 120)
pd.set_option("display.max_columns", 30)

columns = ColumnMap(CUSTOMER_COL, TS_COL, AMOUNT_COL, EVENT_TYPE_COL)
tables = load_inputs(
    TRANSACTIONS,
    EVENTS if EVENTS and Path(EVENTS).exists() else None,
    CUSTOMERS if CUSTOMERS and Path(CUSTOMERS).exists() else None,
    columns,
)
tx_all, events, customers = tables.transactions, tables.events, tables.customers
if AS_OF:
    as_of = pd.Timestamp(AS_OF)
elif SCORES.exists():
    as_of = pd.Timestamp(pd.read_parquet(SCORES, columns=["as_of"])["as_of"].max())
else:
    as_of = tx_all["ts"].max().floor("D") + pd.Timedelta(days=1)
tx = tx_all[tx_all["ts"] < as_of]
purchases = tx[tx["amount"] > 0]
display(
    Markdown(
        f"**{len(tx):,} transactions** of {tx['customer_id'].nunique():,} customers "
        f"from {tx['ts'].min():%Y-%m-%d} to {as_of:%Y-%m-%d}"
        + (f"; {len(events):,} engagement events." if events is not None else "; no events table.")
    )
)

# %% [markdown]
# ## Cohort retention
#
# Customers are grouped by the month of their first purchase; a cell is the share of the
# cohort that bought at least once in the n-th month after it.

# %%
month = purchases["ts"].dt.to_period("M")
first = month.groupby(purchases["customer_id"]).transform("min")
age = (month - first).apply(lambda d: d.n)
active = (
    pd.DataFrame({"cohort": first, "age": age, "customer_id": purchases["customer_id"]})
    .drop_duplicates()
    .groupby(["cohort", "age"])["customer_id"]
    .nunique()
    .unstack(fill_value=0)
)
size = active[0]
retention = active.div(size, axis=0)
# Only cells whose month is complete before as_of are observed.
last_month = (as_of - pd.Timedelta(days=1)).to_period("M")
for cohort in retention.index:
    max_age = (last_month - cohort).n
    retention.loc[cohort, retention.columns > max_age] = np.nan

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
shown = retention.loc[:, retention.columns <= 24]
im = ax1.imshow(shown.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=0.6)
ax1.set_yticks(range(0, len(shown), 3), [str(c) for c in shown.index[::3]])
ax1.set_xlabel("months since first purchase")
ax1.set_ylabel("acquisition cohort")
ax1.set_title("Share of cohort buying in month n")
fig.colorbar(im, ax=ax1, fraction=0.04)
curve = retention.loc[:, 1:24]
weighted = (curve.mul(size, axis=0).sum() / curve.notna().mul(size, axis=0).sum()).dropna()
for cohort in retention.index[:: max(1, len(retention) // 6)]:
    ax2.plot(curve.columns, curve.loc[cohort], alpha=0.35, label=str(cohort))
ax2.plot(weighted.index, weighted.to_numpy(), color="black", lw=2.5, label="all (weighted)")
ax2.set_xlabel("months since first purchase")
ax2.set_ylabel("share of cohort buying")
ax2.set_title("Retention curves")
ax2.legend(fontsize=8)
ax2.grid(alpha=0.3)
plt.tight_layout()
answer = (
    f"Across {len(retention)} monthly cohorts, {weighted.iloc[0]:.1%} of a cohort buys again "
    f"in its second month and {weighted.get(12, np.nan):.1%} in month 12."
)
display(captioned_figure(fig, "Cohort retention: share of each cohort buying per month", answer))
display(Markdown(answer))

# %% [markdown]
# ## Purchase gaps
#
# Days between consecutive purchase days of the same customer. The shape sets expectations
# for "overdue": a customer silent for several typical gaps is at risk.

# %%
days = purchases.assign(day=purchases["ts"].dt.floor("D"))[["customer_id", "day"]]
days = days.drop_duplicates().sort_values(["customer_id", "day"])
gaps = days.groupby("customer_id")["day"].diff().dt.total_seconds().div(86400).dropna()
one_timers = (days.groupby("customer_id").size() == 1).mean()

fig, ax = plt.subplots(figsize=(8, 4))
bins = np.logspace(0, np.log10(max(gaps.max(), 2)), 40)
ax.hist(gaps, bins=bins, color="tab:blue", alpha=0.8)
ax.set_xscale("log")
for q, style in ((0.5, "--"), (0.9, ":")):
    ax.axvline(
        gaps.quantile(q),
        color="black",
        ls=style,
        label=f"{q:.0%} quantile {gaps.quantile(q):.0f} d",
    )
ax.set_xlabel("days between purchase days (log scale)")
ax.set_ylabel("gaps")
ax.set_title("Inter-purchase gap distribution")
ax.legend()
plt.tight_layout()
answer = (
    f"Half of {len(gaps):,} repeat purchases come within {gaps.median():.0f} days of the "
    f"previous one, 90% within {gaps.quantile(0.9):.0f} days; {one_timers:.0%} of customers "
    "bought on a single day only."
)
display(captioned_figure(fig, "Days between purchases", answer))
display(Markdown(answer))

# %% [markdown]
# ## RFM distributions as of the analysis date
#
# `build_features` gives recency (days since the last purchase), frequency (repeat purchase
# days) and monetary value for every customer with a purchase before `as_of`.

# %%
feats = build_features(tx, events, customers, as_of=as_of)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
axes[0].hist(feats["recency_days"], bins=40, color="tab:orange")
axes[0].set_xlabel("days since last purchase")
axes[1].hist(
    feats["frequency"],
    bins=np.arange(0, feats["frequency"].quantile(0.99) + 2) - 0.5,
    color="tab:green",
)
axes[1].set_xlabel("frequency (repeat purchase days)")
axes[2].hist(
    feats["monetary_total"].clip(lower=1),
    bins=np.logspace(0, np.log10(max(feats["monetary_total"].max(), 10)), 40),
    color="tab:purple",
)
axes[2].set_xscale("log")
axes[2].set_xlabel("total spend (log scale)")
for ax in axes:
    ax.set_ylabel("customers")
    ax.grid(alpha=0.3)
fig.suptitle(f"RFM distributions as of {as_of:%Y-%m-%d} ({len(feats):,} customers)")
plt.tight_layout()
top = feats["monetary_total"].clip(lower=0).sort_values(ascending=False)
answer = (
    f"The top 20% of customers hold {top.head(max(1, len(top) // 5)).sum() / top.sum():.0%} "
    f"of historical spend; the median customer last bought "
    f"{feats['recency_days'].median():.0f} days ago."
)
display(captioned_figure(fig, f"Recency, frequency and spend as of {as_of:%Y-%m-%d}", answer))
display(Markdown(answer))
rfm = ["recency_days", "tenure_days", "frequency", "monetary_total", "monetary_mean"]
readable_table(
    feats[rfm].describe().T.rename(index=feature_label),
    digits=1,
    labels={"count": "Customers", "std": "Std", "25%": "25%", "50%": "Median", "75%": "75%"},
)

# %% [markdown]
# ## Engagement vs churn (behavioural cohorts)
#
# At a cutoff one churn horizon before the analysis date (so every label is fully observed),
# customers are split into deciles of an engagement metric; each decile's churn rate is the
# share with no purchase in the following horizon. A steep, monotone relationship marks a
# metric worth watching.

# %%
label_cutoff = (as_of - pd.Timedelta(days=CHURN_HORIZON_DAYS)).floor("D")
hist = build_features(tx, events, customers, as_of=label_cutoff)
labels = build_labels(tx, hist, churn_horizon_days=CHURN_HORIZON_DAYS)
cohorts = hist.merge(labels, on=["customer_id", "as_of"])
metrics = [ENGAGEMENT_METRIC] if ENGAGEMENT_METRIC in cohorts else []
metrics += [
    m
    for m in ("days_since_event", "tx_count_90d", "recency_days")
    if m in cohorts and m not in metrics
]
metrics = metrics[:3]

fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
base = cohorts["churned"].mean()
summary = {}
for ax, metric in zip(axes[0], metrics, strict=True):
    values = cohorts[metric].astype(float)
    # Ranks first so that ties (many zeros) still split into equal-sized groups.
    decile = pd.qcut(values.rank(method="first"), 10, labels=False) + 1
    by = (
        cohorts.assign(decile=decile, metric=values)
        .groupby("decile")
        .agg(churn_rate=("churned", "mean"), avg=("metric", "mean"), customers=("churned", "size"))
    )
    summary[metric] = by
    ax.plot(by["avg"], by["churn_rate"], marker="o")
    ax.axhline(base, color="grey", ls=":", label=f"overall {base:.0%}")
    ax.set_xlabel(f"{feature_label(metric)} (decile average)")
    ax.set_ylabel(f"churn rate, next {CHURN_HORIZON_DAYS:g} days")
    ax.set_title(f"Churn by decile of {feature_label(metric)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
plt.tight_layout()
by_decile = summary[metrics[0]]
answer = (
    f"Of {len(cohorts):,} customers at {label_cutoff:%Y-%m-%d}, {base:.1%} churned in the next "
    f"{CHURN_HORIZON_DAYS:g} days: {by_decile['churn_rate'].iloc[0]:.0%} in the lowest decile of "
    f"{feature_label(metrics[0])} against {by_decile['churn_rate'].iloc[-1]:.0%} in the highest."
)
display(captioned_figure(fig, "Churn rate by decile of engagement", answer))
display(Markdown(answer))
readable_table(
    by_decile,
    share_cols=["churn_rate"],
    digits=1,
    labels={"avg": f"Average {feature_label(metrics[0])}", "customers": "Customers"},
)

# %% [markdown]
# ## What the figures show
#
# - **Cohort retention**: the heatmap and curves show how fast each acquisition cohort stops
#   buying; the weighted curve is the typical decay. A cohort that sits visibly above or below
#   its neighbours points at a change in acquisition (channel, campaign, product).
# - **Purchase gaps**: the usual rhythm of repeat purchases; the 90% quantile is a natural
#   "overdue" threshold, and the share of single-day buyers is the one-time-buyer problem.
# - **RFM distributions**: recency is spread over the whole history while monetary value is
#   heavy-tailed (a few customers carry most of the spend — the Pareto frame behind value
#   tiers).
# - **Engagement vs churn**: churn rate by decile of engagement; a monotone curve (less
#   engagement → more churn) confirms the metric as an early-warning signal, the same signal
#   the churn model uses among its features.
