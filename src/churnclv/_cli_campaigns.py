"""The campaign options of the ``churnclv`` CLI and the ``evaluate-campaign`` verb's glue."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from churnclv import InputError
from churnclv import _cli_options as opt
from churnclv._cli_output import load_tables, note, out, step

if TYPE_CHECKING:
    from churnclv._campaigns import CampaignColumns

__all__ = [
    "EXPERIMENT",
    "CampaignCustomerCol",
    "CampaignIdCol",
    "CampaignTsCol",
    "Campaigns",
    "Control",
    "ResponseDays",
    "TreatmentCol",
    "campaign_columns_from",
    "evaluate_campaign_verb",
    "log_evaluation",
    "print_arms",
    "print_evaluation",
    "write_evaluation",
]

EXPERIMENT = "churnclv-campaigns"

Campaigns = Annotated[
    Path,
    typer.Option(
        help="Campaign log (CSV or Parquet): customer id, send timestamp, treatment "
        "(the control arm or a policy action), optional campaign id; one row per send."
    ),
]
Control = Annotated[
    str, typer.Option(help="Treatment label of the untreated (control) arm of the campaign log.")
]
ResponseDays = Annotated[
    int,
    typer.Option(
        help="Response window in days: a send's outcome is the net spend in (ts, ts + N days].",
        min=1,
    ),
]
CampaignCustomerCol = Annotated[
    str, typer.Option(help="Campaign log column holding the customer id.")
]
CampaignTsCol = Annotated[str, typer.Option(help="Campaign log column holding the send time.")]
TreatmentCol = Annotated[str, typer.Option(help="Campaign log column holding the treatment.")]
CampaignIdCol = Annotated[
    str,
    typer.Option(
        help="Campaign log column holding the campaign id; without it the send date is the id."
    ),
]


def campaign_columns_from(values: Mapping[str, Any]) -> CampaignColumns:
    """The :class:`CampaignColumns` of a verb's ``campaign_*_col`` and ``treatment_col``."""
    from churnclv._campaigns import CampaignColumns

    return CampaignColumns(
        customer_id=values["campaign_customer_col"],
        ts=values["campaign_ts_col"],
        treatment=values["treatment_col"],
        campaign_id=values["campaign_id_col"],
    )


_OUT_SUFFIXES = (".csv", ".json")
_WIDE = 150


def evaluate_campaign_verb(
    campaigns: Campaigns,
    transactions: opt.Transactions,
    response_days: ResponseDays,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the evaluation table: .csv or .json."),
    ] = None,
    policy: opt.PolicyOpt = None,
    control: Control = "control",
    campaign_customer_col: CampaignCustomerCol = "customer_id",
    campaign_ts_col: CampaignTsCol = "ts",
    treatment_col: TreatmentCol = "treatment",
    campaign_id_col: CampaignIdCol = "campaign_id",
    customer_col: opt.CustomerCol = "customer_id",
    ts_col: opt.TsCol = "ts",
    amount_col: opt.AmountCol = "amount",
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
) -> None:
    """Measure each treatment of a past campaign against its control arm.

    Per campaign and treatment: customers, response rate, mean net spend in the response
    window (ts, ts + N days], difference with the control arm and its 95% confidence
    interval (Welch), incremental revenue, cost (the policy's action costs) and ROI; with
    several campaigns also their stratified combination (campaign 'all'). Logged to MLflow
    (experiment churnclv-campaigns). A log without a control arm exits 2 after printing the
    response rate of each arm: effects need a comparison group.
    """
    from churnclv import load_policy
    from churnclv._campaign_eval import evaluate_campaign, no_control_message
    from churnclv._campaigns import has_control, load_campaigns
    from churnclv._io import LoadReport
    from churnclv.training import tracking_uri_for

    if out_file is not None and out_file.suffix.lower() not in _OUT_SUFFIXES:
        raise InputError(
            f"--out {out_file}: unsupported file type {out_file.suffix!r} (use .csv or .json)"
        )
    pol = load_policy(policy)
    report = LoadReport()
    with step("loading campaigns"):
        log = load_campaigns(
            campaigns,
            columns=campaign_columns_from(locals()),
            control=control,
            actions=[a.name for a in pol.actions],
            encoding=encoding,
            sep=sep,
            report=report,
        )
    for message in report.notes:
        note(message)
    columns = opt.column_map(
        customer_col,
        ts_col,
        amount_col,
        "event_type",
        quantity_col,
        price_col,
        no_amount,
        encoding=encoding,
        sep=sep,
        decimal=decimal,
        category_col=category_col,
        channel_col=channel_col,
    )
    tables = load_tables(transactions, None, None, columns)
    if not has_control(log, control):
        print_arms(log, tables.transactions, response_days)
        raise InputError(no_control_message(control, log["treatment"].tolist()))
    with step("evaluating"):
        result = evaluate_campaign(
            log, tables.transactions, response_days=response_days, policy=pol, control=control
        )
    dropped = result.attrs.get("sends_outside_data", 0)
    if dropped:
        note(
            f"{dropped:,} sends left out: their {response_days}-day response window ends "
            f"after the last transaction ({tables.transactions['ts'].max()})"
        )
    print_evaluation(result)
    if out_file is not None:
        write_evaluation(result, out_file, campaigns)
        out.print(f"evaluation: {out_file}")
    run_id = log_evaluation(result, log, campaigns, tracking_uri_for(workdir, tracking_uri))
    out.print(f"run {run_id}")


def print_arms(log: pd.DataFrame, transactions: pd.DataFrame, response_days: int) -> None:
    """Customers, response rate and mean net spend of each arm (no comparison)."""
    from churnclv._campaigns import campaign_outcomes

    sends = campaign_outcomes(log, transactions, response_days=response_days)
    arms = sends.groupby(["campaign_id", "treatment"], sort=True).agg(
        customers=("customer_id", "size"),
        response_rate=("responded", "mean"),
        mean_net_spend=("net_spend", "mean"),
    )
    t = Table(title=f"Response per arm ({response_days}-day window, no control arm)")
    for col in ("campaign", "treatment", "customers", "response rate", "mean net spend"):
        t.add_column(col, justify="left" if col in ("campaign", "treatment") else "right")
    for (camp, treatment), row in arms.iterrows():
        t.add_row(
            str(camp),
            str(treatment),
            f"{int(row.customers):,}",
            f"{row.response_rate:.1%}",
            f"{row.mean_net_spend:,.2f}",
        )
    out.print(t)


def _num(value: float, fmt: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def print_evaluation(result: pd.DataFrame) -> None:
    """The evaluation table: one row per campaign and treatment."""
    days = result.attrs.get("response_days")
    t = Table(title=f"Campaign evaluation against the control arm ({days}-day response window)")
    heads = (
        "campaign",
        "treatment",
        "customers",
        "response",
        "mean net spend",
        "difference [95% CI]",
        "p",
        "incremental revenue",
        "cost",
        "ROI",
    )
    for col in heads:
        t.add_column(col, justify="left" if col in ("campaign", "treatment") else "right")
    for row in result.itertuples():
        ci = (
            f"{row.difference:+,.2f} [{row.ci_low:+,.2f}, {row.ci_high:+,.2f}]"
            if math.isfinite(row.ci_low)
            else _num(row.difference, "+,.2f")
        )
        t.add_row(
            str(row.campaign_id),
            str(row.treatment),
            f"{row.customers:,}",
            f"{row.response_rate:.1%}",
            f"{row.mean_net_spend:,.2f}",
            ci,
            _num(row.p_value, ".3f"),
            _num(row.incremental_revenue, ",.0f"),
            f"{row.cost:,.0f}",
            _num(row.roi, ".2f") + ("x" if math.isfinite(row.roi) else ""),
        )
    # ten columns: a pipe or a file gets them unwrapped, a terminal gets its own width
    if out.is_terminal:
        out.print(t)
        return
    width = out.width
    out.width = max(width, _WIDE)
    try:
        out.print(t)
    finally:
        out.width = width


def _payload(result: pd.DataFrame, source: Path) -> dict[str, Any]:
    rows = json.loads(result.to_json(orient="records", double_precision=10))
    return {
        "campaigns_file": str(source),
        "response_days": result.attrs.get("response_days"),
        "control": result.attrs.get("control"),
        "sends_outside_data": result.attrs.get("sends_outside_data", 0),
        "rows": rows,
    }


def write_evaluation(result: pd.DataFrame, path: Path, source: Path) -> Path:
    """Write the table atomically: CSV, or JSON with the run's settings."""
    from churnclv._io import atomic_write

    if path.suffix.lower() == ".csv":
        return atomic_write(path, lambda tmp: result.to_csv(tmp, index=False))
    text = json.dumps(_payload(result, source), indent=2)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _metric_key(*parts: str) -> str:
    return "_".join(re.sub(r"[^0-9A-Za-z_.\-/ ]", "_", p) for p in parts)


def log_evaluation(result: pd.DataFrame, log: pd.DataFrame, source: Path, tracking_uri: str) -> str:
    """Log the evaluation as a run of the ``churnclv-campaigns`` experiment; its id."""
    import mlflow

    from churnclv._campaign_eval import ALL
    from churnclv.training._tracking import start_tracking, tracked_run

    last = pd.Timestamp(log["ts"].max()).date().isoformat()
    combined = result[result["campaign_id"] == ALL]
    headline = combined if not combined.empty else result
    start_tracking(tracking_uri, EXPERIMENT)
    with tracked_run(f"evaluate-campaign {last}", tracking_uri) as run:
        mlflow.log_params(
            {
                "campaigns_file": str(source),
                "response_days": result.attrs.get("response_days"),
                "control": result.attrs.get("control"),
                "campaigns": int(log["campaign_id"].nunique()),
                "sends": len(log),
            }
        )
        metrics: dict[str, float] = {}
        for row in headline.itertuples():
            for field in ("customers", "response_rate", "mean_net_spend", "difference"):
                metrics[_metric_key(str(row.treatment), field)] = float(getattr(row, field))
            for field in ("ci_low", "ci_high", "incremental_revenue", "roi"):
                metrics[_metric_key(str(row.treatment), field)] = float(getattr(row, field))
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        mlflow.set_tags({"verb": "evaluate-campaign", "last_send": last})
        mlflow.log_text(json.dumps(_payload(result, source), indent=2), "campaign_evaluation.json")
        return str(run.info.run_id)
