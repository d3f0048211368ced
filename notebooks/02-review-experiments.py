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
# # 02 · Review experiments: champion vs challengers
#
# Every `churnclv train` is an MLflow run in experiment `churnclv`; the registered models
# `churnclv-churn` and `churnclv-value` carry the alias `champion`. This notebook
#
# 1. lists the runs (`mlflow.search_runs`) and their out-of-time validation windows;
# 2. puts the champion and the challengers side by side, with the baselines (RFM heuristic,
#    BG/NBD, BG/NBD + Gamma-Gamma) logged on the same rows;
# 3. recomputes ROC, calibration and cumulative gains of every registered churn model on the
#    **same** out-of-time window, and value deciles of every value model;
# 4. says why each run was or was not promoted (tags `promotion_churn` / `promotion_value`).
#
# The tracking store and data are parameters (environment variables or the next cell).

# %% tags=["parameters"]
import os
from pathlib import Path

WORKDIR = Path(os.environ.get("CHURNCLV_WORKDIR", "../churnclv-work"))
# Any MLflow tracking URI; empty = the embedded store sqlite:///<workdir>/mlruns.db.
TRACKING_URI = os.environ.get("CHURNCLV_TRACKING_URI", "")
# The data the runs were trained on (needed to recompute curves; "" = logged plots only).
DATA = WORKDIR / "data"
TRANSACTIONS = os.environ.get("CHURNCLV_TRANSACTIONS", str(DATA / "transactions.parquet"))
EVENTS = os.environ.get("CHURNCLV_EVENTS", str(DATA / "events.parquet"))
CUSTOMERS = os.environ.get("CHURNCLV_CUSTOMERS", str(DATA / "customers.parquet"))
EXPERIMENT = os.environ.get("CHURNCLV_EXPERIMENT", "churnclv")

# %%
import logging

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from mlflow import MlflowClient
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score, roc_curve

from churnclv import (
    captioned_figure,
    champion_vs_baselines_sentence,
    feature_label,
    readable_table,
)
from churnclv.training import ALIAS, CHURN_MODEL, VALUE_MODEL, churn_metrics, tracking_uri_for

pd.set_option("display.width", 140)
pd.set_option("display.max_columns", 30)
pd.set_option("display.max_colwidth", 90)

uri = tracking_uri_for(WORKDIR, TRACKING_URI or None)
if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
    raise FileNotFoundError(
        f"no MLflow store at {uri}: run `churnclv demo` or set "
        "CHURNCLV_WORKDIR / CHURNCLV_TRACKING_URI"
    )
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
for name in ("mlflow", "alembic"):  # keep the notebook's output to the results
    logging.getLogger(name).setLevel(logging.ERROR)
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
client = MlflowClient()
runs = mlflow.search_runs(experiment_names=[EXPERIMENT], order_by=["start_time ASC"])
runs = runs[runs["status"] == "FINISHED"].reset_index(drop=True)

champion = {}
for kind, name in (("churn", CHURN_MODEL), ("value", VALUE_MODEL)):
    try:
        champion[kind] = client.get_model_version_by_alias(name, ALIAS)
    except mlflow.exceptions.MlflowException:
        champion[kind] = None


def role(run_id: str) -> str:
    """'champion' when the run holds a champion alias, else 'challenger'."""
    held = [k for k, mv in champion.items() if mv is not None and mv.run_id == run_id]
    return "champion (" + "+".join(held) + ")" if held else "challenger"


runs["role"] = runs["run_id"].map(role)
runs["label"] = [
    f"{i + 1}: {r[:8]} {role_}"
    for i, (r, role_) in enumerate(zip(runs["run_id"], runs["role"], strict=True))
]
display(Markdown(f"**{len(runs)} finished runs** in experiment `{EXPERIMENT}` at `{uri}`."))
readable_table(
    runs.assign(
        start_time=runs["start_time"].dt.strftime("%Y-%m-%d %H:%M"),
        **{
            f"params.{c}": runs[f"params.{c}"].str[:10]
            for c in ("as_of", "churn_validation_cutoff", "value_validation_cutoff")
        },
    )[
        [
            "label",
            "start_time",
            "params.as_of",
            "params.churn_validation_cutoff",
            "params.value_validation_cutoff",
            "params.seed",
            "tags.data_fingerprint",
        ]
    ].set_index("label"),
    labels={
        "label": "Run",
        "start_time": "Started (UTC)",
        "params.as_of": "Trained as of",
        "params.churn_validation_cutoff": "Churn validated from",
        "params.value_validation_cutoff": "Value validated from",
        "params.seed": "Seed",
        "tags.data_fingerprint": "Data fingerprint",
    },
)

# %% [markdown]
# ## Side by side on the same out-of-time window
#
# Runs are only comparable on the same validation rows: same validation cutoff, same data
# fingerprint. The champion's window is the reference; the table shows every run on it next
# to the baselines (which depend only on the rows, so they are taken from the champion run).
# Does the champion beat the baselines? The sentence above the table is computed from the
# champion run's metrics, measure by measure.

# %%
ref = (
    runs[runs["role"] != "challenger"].iloc[-1]
    if (runs["role"] != "challenger").any()
    else runs.iloc[-1]
)
same = runs[
    (runs["params.churn_validation_cutoff"] == ref["params.churn_validation_cutoff"])
    & (runs["tags.data_fingerprint"] == ref["tags.data_fingerprint"])
].reset_index(drop=True)
window = (
    f"Compared on the champion's window: churn validated from "
    f"{ref['params.churn_validation_cutoff'][:10]}, value from "
    f"{ref['params.value_validation_cutoff'][:10]} ({len(same)} runs)."
)

KEYS = [
    "churn_roc_auc",
    "churn_pr_auc",
    "churn_brier",
    "churn_log_loss",
    "churn_ece",
    "churn_retained_top_decile_lift",
    "churn_value_captured_top_decile",
    "churn_retained_pr_auc",
    "value_gini",
    "value_spearman",
    "value_decile_mape",
    "value_rmse",
    "value_total_ratio",
]
table = pd.DataFrame(
    {row.label: [row.get(f"metrics.{k}", np.nan) for k in KEYS] for _, row in same.iterrows()},
    index=KEYS,
)
for base in ("baseline_rfm", "baseline_bgnbd", "baseline_bgnbd_gg"):
    table[base] = [ref.get(f"metrics.{base}_{k}", np.nan) for k in KEYS]
verdict = champion_vs_baselines_sentence(
    {k.removeprefix("metrics."): v for k, v in ref.items() if k.startswith("metrics.")}
)
display(Markdown(f"{window} {verdict}"))
MEASURE_WORDS = {
    "churn_roc_auc": "Churn ROC AUC (higher is better)",
    "churn_pr_auc": "Churn PR AUC (higher)",
    "churn_brier": "Churn Brier score (lower)",
    "churn_log_loss": "Churn log loss (lower)",
    "churn_ece": "Churn calibration error (lower)",
    "churn_retained_top_decile_lift": "Retained lift, lowest-risk 10% (higher)",
    "churn_value_captured_top_decile": "Churned value in riskiest 10% (higher)",
    "churn_retained_pr_auc": "Retained PR AUC (higher)",
    "value_gini": "Value Gini (higher)",
    "value_spearman": "Value Spearman (higher)",
    "value_decile_mape": "Value decile MAPE (lower)",
    "value_rmse": "Value RMSE (lower)",
    "value_total_ratio": "Total predicted / actual value (closest to 1)",
}
readable_table(
    table.rename(
        index=MEASURE_WORDS,
        columns={
            "baseline_rfm": "RFM baseline",
            "baseline_bgnbd": "BG/NBD baseline",
            "baseline_bgnbd_gg": "BG/NBD + Gamma-Gamma baseline",
        },
    ).T
).T

# %% [markdown]
# ## Curves recomputed from the registered versions
#
# Each run registered one churn and one value version. They are loaded from the registry and
# scored on the window's validation rows, rebuilt exactly as training builds them
# (`build_features` at the cutoff, BG/NBD + Gamma-Gamma fitted on that cutoff's own history,
# labels from `build_labels`). Without the data, the runs' logged plots are shown instead.

# %%
have_data = bool(TRANSACTIONS) and Path(TRANSACTIONS).exists()
curves: dict[str, dict[str, np.ndarray]] = {}
if have_data:
    from churnclv import build_features, build_labels, load_inputs, stack_btyd

    tables = load_inputs(
        TRANSACTIONS,
        EVENTS if EVENTS and Path(EVENTS).exists() else None,
        CUSTOMERS if CUSTOMERS and Path(CUSTOMERS).exists() else None,
    )
    ch, vh = float(ref["params.churn_horizon_days"]), float(ref["params.value_horizon_days"])
    cuts = {
        "churn": pd.Timestamp(ref["params.churn_validation_cutoff"]),
        "value": pd.Timestamp(ref["params.value_validation_cutoff"]),
    }
    frame = build_features(
        tables.transactions, tables.events, tables.customers, as_of=sorted(set(cuts.values()))
    )
    frame = frame.merge(
        build_labels(tables.transactions, frame, churn_horizon_days=ch, value_horizon_days=vh),
        on=["customer_id", "as_of"],
    )
    frame = stack_btyd(frame, ch, vh)
    valid = {k: frame[frame["as_of"] == c].reset_index(drop=True) for k, c in cuts.items()}
    y_churn = valid["churn"]["churned"].to_numpy(int)
    y_value = valid["value"]["future_value"].to_numpy(float)
    for _, row in same.iterrows():
        versions = {
            mv.name: mv.version for mv in client.search_model_versions(f"run_id='{row.run_id}'")
        }
        out = {}
        for kind, name in (("churn", CHURN_MODEL), ("value", VALUE_MODEL)):
            if name in versions:
                model = mlflow.pyfunc.load_model(f"models:/{name}/{versions[name]}")
                out[kind] = model.unwrap_python_model().model.predict(valid[kind])
        curves[row.label] = out
    check = pd.DataFrame(
        {
            label: {
                "logged churn_roc_auc": same.set_index("label").loc[label, "metrics.churn_roc_auc"],
                "recomputed": churn_metrics(y_churn, c["churn"])["churn_roc_auc"],
            }
            for label, c in curves.items()
            if "churn" in c
        }
    ).T
    gap = (check["logged churn_roc_auc"] - check["recomputed"]).abs().max()
    display(
        Markdown(
            f"Rescored on {len(y_churn):,} churn and {len(y_value):,} value validation "
            f"customers; the recomputed churn ROC AUC is within {gap:.4f} of the logged one."
        )
    )
    display(
        readable_table(
            check,
            digits=4,
            labels={"logged churn_roc_auc": "Logged churn ROC AUC", "recomputed": "Recomputed"},
        )
    )

# %%
if curves:
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for label, c in curves.items():
        p = c.get("churn")
        if p is None:
            continue
        fpr, tpr, _ = roc_curve(y_churn, p)
        axes[0].plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(y_churn, p):.3f})")
        obs, pred = calibration_curve(y_churn, p, n_bins=10, strategy="quantile")
        axes[1].plot(pred, obs, marker="o", label=label)
        order = np.argsort(-p, kind="stable")
        gains = np.cumsum(y_churn[order]) / max(y_churn.sum(), 1)
        axes[2].plot(np.arange(1, len(p) + 1) / len(p), gains, label=label)
    axes[0].plot([0, 1], [0, 1], ":", color="grey")
    axes[0].set(
        title="Churn ROC (same window)", xlabel="false positive rate", ylabel="true positive rate"
    )
    axes[1].plot([0, 1], [0, 1], ":", color="grey")
    axes[1].set(
        title="Calibration (quantile bins)",
        xlabel="predicted P(churn)",
        ylabel="observed churn rate",
    )
    axes[2].plot([0, 1], [0, 1], ":", color="grey", label="random")
    axes[2].set(
        title="Cumulative gains",
        xlabel="share of customers targeted",
        ylabel="share of churners reached",
    )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    plt.tight_layout()
    aucs = {
        label: roc_auc_score(y_churn, c["churn"]) for label, c in curves.items() if "churn" in c
    }
    top = max(aucs, key=aucs.get)
    display(
        captioned_figure(
            fig,
            "Churn ROC, calibration and cumulative gains of every run on the same window",
            f"Highest ROC AUC: run {top} ({aucs[top]:.3f}); lowest "
            f"{min(aucs.values()):.3f}, across {len(aucs)} runs.",
        )
    )
else:
    # No data at hand: show each run's logged ROC and gains plots.
    fig, axes = plt.subplots(len(same), 2, figsize=(11, 4 * len(same)), squeeze=False)
    for (_, row), pair in zip(same.iterrows(), axes, strict=True):
        for ax, name in zip(pair, ("churn_roc.png", "churn_gains.png"), strict=True):
            ax.imshow(mlflow.artifacts.load_image(f"runs:/{row.run_id}/plots/{name}"))
            ax.set_title(row.label, fontsize=9)
            ax.axis("off")
    plt.tight_layout()
    display(captioned_figure(fig, "Logged churn ROC and gains plots of each run"))

# %% [markdown]
# ## Value deciles
#
# Validation customers sorted into deciles of each run's predicted value: mean predicted
# against mean realised future value. A good value model tracks the diagonal and separates
# the top decile clearly (the Pareto customers).

# %%
if curves:
    n_runs = sum("value" in c for c in curves.values())
    fig, axes = plt.subplots(1, n_runs, figsize=(5.5 * n_runs, 4.2), squeeze=False)
    for ax, (label, c) in zip(
        axes[0], [(k, v) for k, v in curves.items() if "value" in v], strict=True
    ):
        pv = c["value"]
        dec = pd.qcut(pd.Series(pv).rank(method="first"), 10, labels=False) + 1
        by = pd.DataFrame({"decile": dec, "predicted": pv, "actual": y_value}).groupby("decile")
        m = by.mean()
        x = np.arange(1, 11)
        ax.bar(x - 0.2, m["predicted"], 0.4, label="predicted")
        ax.bar(x + 0.2, m["actual"], 0.4, label="actual")
        ax.set(
            title=f"Value deciles — {label}",
            xlabel="predicted-value decile (1 = lowest)",
            ylabel="mean value per customer",
        )
        ax.set_xticks(x)
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
    plt.tight_layout()
    display(
        captioned_figure(
            fig,
            "Value deciles: mean predicted and realised value per predicted-value decile",
            f"Value deciles of {n_runs} runs; in the top decile the last run predicts "
            f"{m['predicted'].iloc[-1]:,.0f} per customer against {m['actual'].iloc[-1]:,.0f} "
            "realised.",
        )
    )
else:
    fig, axes = plt.subplots(1, len(same), figsize=(5.5 * len(same), 4.2), squeeze=False)
    for ax, (_, row) in zip(axes[0], same.iterrows(), strict=True):
        ax.imshow(mlflow.artifacts.load_image(f"runs:/{row.run_id}/plots/value_deciles.png"))
        ax.set_title(row.label, fontsize=9)
        ax.axis("off")
    plt.tight_layout()
    display(captioned_figure(fig, "Logged value-decile plots of each run"))

# %% [markdown]
# ## What drives the champion
#
# Gain importance logged with the champion run (`feature_importance.json`).

# %%
imp = mlflow.artifacts.load_dict(f"runs:/{ref.run_id}/feature_importance.json")
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
for ax, kind in zip(axes, ("churn", "value"), strict=True):
    s = pd.Series(imp[kind]).sort_values().tail(12)
    ax.barh(
        [feature_label(f) for f in s.index],
        s.to_numpy(),
        color="tab:blue" if kind == "churn" else "tab:green",
    )
    ax.set_title(f"{kind} model: top features by gain")
    ax.grid(alpha=0.3, axis="x")
plt.tight_layout()
top_churn = max(imp["churn"], key=imp["churn"].get)
top_value = max(imp["value"], key=imp["value"].get)
display(
    captioned_figure(
        fig,
        "What the champion relies on: top features by gain",
        f"The churn model relies most on {feature_label(top_churn)}, the value model on "
        f"{feature_label(top_value)}.",
    )
)

# %% [markdown]
# ## Why each run was or was not promoted
#
# With `--promote` a run's model takes the `champion` alias only when it beats the current
# champion on the same validation rows; the reason is a run tag and a model-version tag.

# %%
why = (
    runs[["label", "tags.promotion_churn", "tags.promotion_value"]]
    .rename(columns={"tags.promotion_churn": "churn", "tags.promotion_value": "value"})
    .fillna("(trained without --promote)")
)
display(
    Markdown(
        " ".join(
            f"The {kind} champion is "
            + (
                f"version {mv.version} from run {mv.run_id[:8]}."
                if mv is not None
                else "not registered yet."
            )
            for kind, mv in champion.items()
        )
    )
)
readable_table(
    why.set_index("label"), labels={"label": "Run", "churn": "Churn model", "value": "Value model"}
)

# %% [markdown]
# ## Monitoring over time
#
# Every `churnclv monitor` is a run in experiment `churnclv-monitor` (tags `as_of` and
# `verdict`, metrics `max_psi` and `tier_change_share`). Its latest run holds the history
# chart: largest PSI, backtest churn AUC and share of customers changing value tier per
# monitoring date, against the policy's thresholds, with the sentence that sums it up.

# %%
monitor_runs = mlflow.search_runs(
    experiment_names=["churnclv-monitor"], order_by=["start_time ASC"]
)
charted = (
    monitor_runs[monitor_runs["tags.history"].notna()]
    if "tags.history" in monitor_runs
    else monitor_runs.iloc[:0]
)
if charted.empty:
    display(
        Markdown("No `churnclv monitor` run with a history yet: score on two dates, then monitor.")
    )
else:
    latest = charted.iloc[-1]
    display(Markdown(latest["tags.history"]))
    chart = mlflow.artifacts.load_image(f"runs:/{latest.run_id}/monitoring_history.png")
    fig = plt.figure(figsize=(8, 7.5))
    plt.imshow(chart)
    plt.axis("off")
    display(captioned_figure(fig, "Monitoring history", latest["tags.history"]))
    shown = {
        "tags.as_of": "as_of",
        "tags.verdict": "verdict",
        "metrics.max_psi": "largest PSI",
        "metrics.tier_change_share": "tier change share",
    }
    per_date = monitor_runs.drop_duplicates("tags.as_of", keep="last")  # the latest run per date
    display(
        readable_table(
            per_date[[c for c in shown if c in per_date]].rename(columns=shown),
            share_cols=["tier change share"],
        )
    )

# %% [markdown]
# ## What the figures show
#
# - **Side-by-side table**: every run on the champion's out-of-time window with the RFM,
#   BG/NBD and BG/NBD + Gamma-Gamma baselines on the same rows; the sentence printed above it
#   names the measures on which the champion loses to a baseline, if any.
# - **ROC / calibration / gains overlay**: the registered churn versions rescored on the same
#   validation rows. Curves that lie on top of each other mean the challenger is no real
#   improvement; the calibration panel shows whether probabilities can be used as such (for
#   expected saved value), not only for ranking. The printed gap compares the recomputed AUCs
#   with the logged ones.
# - **Value deciles**: whether each value model ranks customers by future value and gets the
#   level right, decile by decile.
# - **Feature importance**: what the champion relies on; compare with the exploration in
#   notebook 01.
# - **Promotion table**: the gate's verdict per run (metric, challenger vs champion on the same
#   rows).
# - **Monitoring over time**: whether the champion is decaying. PSI above the dashed retrain
#   line or a backtest AUC falling away from the validation AUC means `churnclv train
#   --promote` is due; `churnclv monitor` exits 3 then, so a scheduler can trigger it.
