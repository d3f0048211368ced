"""The ``churnclv monitor`` verb: what it prints, writes and logs to MLflow."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from churnclv import _cli_options as opt
from churnclv._cli_output import load_tables, note, out, step

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from churnclv._policy import Monitoring
    from churnclv.features._vocabulary import Vocabulary

__all__ = [
    "EXPERIMENT",
    "History",
    "champion_vocabulary",
    "log_monitor",
    "monitor",
    "print_monitor",
    "record_history",
    "reference_auc",
]

EXPERIMENT = "churnclv-monitor"
_CODES = {"ok": 0, "watch": 1, "retrain": 2}


def monitor(
    transactions: opt.Transactions,
    as_of: opt.AsOf,
    events: opt.Events = None,
    customers: opt.Customers = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="The JSON report; default <workdir>/monitor.json.")
    ] = None,
    policy: opt.PolicyOpt = None,
    customer_col: opt.CustomerCol = "customer_id",
    ts_col: opt.TsCol = "ts",
    amount_col: opt.AmountCol = "amount",
    event_type_col: opt.EventTypeCol = "event_type",
    quantity_col: opt.QuantityCol = None,
    price_col: opt.PriceCol = None,
    no_amount: opt.NoAmount = False,
    encoding: opt.Encoding = None,
    sep: opt.Sep = None,
    decimal: opt.Decimal = None,
    category_col: opt.CategoryCol = None,
    channel_col: opt.ChannelCol = None,
    workdir: opt.Workdir = opt.DEFAULT_WORKDIR,
    tracking_uri: opt.TrackingUri = None,
    model_uri: opt.ModelUri = None,
) -> None:
    """Backtest the stored score snapshots, measure drift and say whether to retrain.

    Reads <workdir>/snapshots/ (written by `score` and `demo`). Verdict ok | watch |
    retrain by the policy's monitoring thresholds; exit code 3 for retrain. Each
    verdict is added to <workdir>/monitoring/history.parquet, charted in
    <workdir>/monitoring/history.png. Drift is measured on the event features of the
    models that scored the snapshots: pass the --model-uri given to `score`.
    """
    from churnclv import check_as_of, load_policy
    from churnclv._monitor import monitor as check
    from churnclv.training import bundle_policy, tracking_uri_for

    ts = opt.parse_as_of(as_of)
    thresholds = load_policy(policy or bundle_policy(model_uri)).monitoring
    uri = tracking_uri_for(workdir, tracking_uri)
    vocabulary = champion_vocabulary(uri, model_uri)  # a bad --model-uri stops here
    tables = load_tables(transactions, events, customers, opt.columns_from(locals()))
    check_as_of(tables.transactions, ts, source=transactions)
    with step("monitoring"):
        result = check(
            tables,
            as_of=ts,
            workdir=workdir,
            thresholds=thresholds,
            reference_auc=reference_auc(uri, workdir, ts),
            event_vocabulary=vocabulary,
        )
    for problem in result["warnings"]:
        note(problem)
    history = record_history(result, workdir, thresholds)
    path = log_monitor(result, out_file or workdir / "monitor.json", uri, history)
    print_monitor(result)
    out.print(f"over time: {history.sentence}")
    out.print(f"report: {path}; history: {history.chart}")
    if result["verdict"] == "retrain":
        raise typer.Exit(3)


def reference_auc(tracking_uri: str, workdir: Path, as_of: pd.Timestamp) -> float | None:
    """Validation churn AUC of the churn model that scored the latest snapshot, if logged."""
    from churnclv._monitor import read_snapshots

    snaps, _ = read_snapshots(workdir, as_of)
    if not snaps:
        return None
    version = str(snaps[-1]["model_version"].iloc[0])
    churn_version = version.split("+")[0].removeprefix("churn:v")
    try:
        from mlflow import MlflowClient

        from churnclv.training import CHURN_MODEL

        client = MlflowClient(tracking_uri)
        run_id = client.get_model_version(CHURN_MODEL, churn_version).run_id
        value = client.get_run(run_id).data.metrics.get("churn_roc_auc") if run_id else None
    except Exception:  # a bundle-scored snapshot or another store: fall back to the backtest
        return None
    return float(value) if value is not None and math.isfinite(value) else None


def champion_vocabulary(tracking_uri: str, model_uri: str | None = None) -> Vocabulary | None:
    """The event vocabulary of the models that scored the snapshots; None without them.

    Drift is measured on the features those models read: their event types
    (:func:`churnclv.features._vocabulary.model_vocabulary`), the ones scoring
    computed for the snapshots. Both snapshots compared get the same columns,
    so a snapshot scored by an earlier version is still compared column for
    column.

    ``model_uri`` names the models as ``score --model-uri`` does (a bundle
    folder, ``models:/NAME@ALIAS`` or ``models:/NAME/N``, resolved by
    :func:`churnclv.champion_from_uri`); a URI naming no models raises its
    ``InputError``. Without it the registry's ``@champion`` models are read:
    with no champion in the store (or one that cannot be loaded, noted) the
    default event types are used, as for a model saved without a vocabulary.
    """
    from churnclv import ChurnclvError, InputError
    from churnclv.features._vocabulary import model_vocabulary
    from churnclv.training import champion_from_uri, load_champion

    if model_uri is not None:  # the user named these models: their errors stand
        named = champion_from_uri(tracking_uri, model_uri)
        return model_vocabulary(named.churn, named.value, named.uplift)
    try:
        champion = load_champion(tracking_uri)
    except InputError:  # no champion registered
        return None
    except ChurnclvError as exc:  # a champion whose artifact cannot be loaded
        note(f"{exc}; drift uses the default event types")
        return None
    return model_vocabulary(champion.churn, champion.value, champion.uplift)


@dataclass(frozen=True)
class History:
    """The monitoring history after this verdict: its table, chart and sentence."""

    table: pd.DataFrame
    chart: Path
    figure: Figure
    sentence: str


def record_history(result: dict[str, Any], workdir: Path, thresholds: Monitoring) -> History:
    """Append ``result`` to the history; draw its chart to ``monitoring/history.png``."""
    from churnclv._io import atomic_write
    from churnclv._monitor_history import append_history, history_figure, history_sentence

    path, table, problem = append_history(result, workdir)
    if problem:
        note(problem)
    fig = history_figure(table, thresholds)
    chart = atomic_write(path.with_suffix(".png"), lambda tmp: fig.savefig(tmp, format="png"))
    return History(table, chart, fig, history_sentence(table, thresholds))


def _clean(obj: Any) -> Any:
    """NaN and infinities as JSON null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def log_monitor(
    report: dict[str, Any], path: Path, tracking_uri: str, history: History | None = None
) -> Path:
    """Write the JSON report atomically and log it with its metrics to ``churnclv-monitor``.

    With ``history``, the run also holds the history chart and its sentence.
    """
    import mlflow

    from churnclv._io import atomic_write
    from churnclv.training._tracking import start_tracking, tracked_run

    text = json.dumps(_clean(report), indent=2)
    written = atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    start_tracking(tracking_uri, EXPERIMENT)
    with tracked_run(f"monitor {report['as_of']}", tracking_uri):
        metrics: dict[str, float] = {"verdict_code": _CODES[report["verdict"]]}
        drifted = report["drift"] or {}
        if drifted.get("psi"):
            metrics["max_psi"] = max(drifted["psi"].values())
        if math.isfinite(drifted.get("tier_change_share", math.nan)):
            metrics["tier_change_share"] = drifted["tier_change_share"]
        mlflow.log_metrics(metrics)
        for step, row in enumerate(report["backtest"]):
            mlflow.log_metrics(
                {
                    f"backtest_{k}": v
                    for k, v in row.items()
                    if isinstance(v, float) and math.isfinite(v)
                },
                step=step,
            )
        mlflow.set_tags({"verdict": report["verdict"], "as_of": report["as_of"]})
        mlflow.log_text(text, "monitor.json")
        if history is not None:
            mlflow.log_figure(history.figure, "monitoring_history.png")
            mlflow.set_tag("history", history.sentence[:5000])
    return written


def print_monitor(report: dict[str, Any], top: int = 10) -> None:
    """The backtest time series, the top drifted columns and the verdict with its reasons."""
    if report["backtest"]:
        table = Table(title="backtest (snapshots whose churn horizon ended)")
        cols = {
            "as_of": "as_of",
            "customers": "n",
            "churn_roc_auc": "AUC",
            "churn_ece": "ECE",
            "mean_churn_probability": "P(churn)",
            "realised_churn_rate": "churned",
            "value_gini": "Gini",
            "value_total_ratio": "pred/actual",
        }
        for c, label in cols.items():
            table.add_column(label, justify="left" if c == "as_of" else "right")
        for row in report["backtest"]:
            table.add_row(*(_fmt(row.get(c)) for c in cols))
        out.print(table)
    drifted = report["drift"]
    if drifted and drifted["psi"]:
        table = Table(title=f"drift {drifted['reference_as_of']} -> {drifted['current_as_of']}")
        table.add_column("column")
        table.add_column("PSI", justify="right")
        ranked = sorted(drifted["psi"].items(), key=lambda kv: -kv[1])[:top]
        for name, value in ranked:
            table.add_row(name, f"{value:.3f}")
        out.print(table)
        share = drifted["tier_change_share"]
        if math.isfinite(share):
            out.print(f"value tier changed for {share:.1%} of customers since the last snapshot")
    colour = {"ok": "green", "watch": "yellow", "retrain": "red"}[report["verdict"]]
    out.print(f"verdict: [bold {colour}]{report['verdict']}[/]")
    for reason in report["reasons"]:
        out.print(f"  - {reason}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.3f}"
    return str(value)
