"""The ``churnclv`` command line (DESIGN §7).

Exit codes: 0 success, 2 bad input or usage, 1 anything else. Every output is
written to a temp path and renamed, so a failed command leaves no partial file.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from churnclv import ChurnclvError, InputError, check_as_of
from churnclv import _cli_options as opt
from churnclv import _cli_spark as spk
from churnclv import _cli_uplift as upl
from churnclv._cli_campaigns import evaluate_campaign_verb
from churnclv._cli_demo import DemoUplift, print_learned_actions
from churnclv._cli_features import run_features
from churnclv._cli_models import models_app
from churnclv._cli_monitor import monitor as monitor_verb
from churnclv._cli_output import (
    err,
    load_tables,
    note,
    note_missing_models,
    out,
    print_campaign,
    print_fallbacks,
    print_metrics,
    print_summary,
    read_scores,
    step,
    write_synthetic,
    write_table,
)
from churnclv._cli_process import exec_mlflow_ui, require_bentoml, run_bentoml_serve
from churnclv._cli_train import SampleCustomers, log_sample, train_inputs
from churnclv._cli_uplift import run_train_uplift
from churnclv._demo import run_demo
from churnclv._interrupt import handle_interrupts, interrupted, stop_requested
from churnclv._reporting import write_decision_report

__all__ = ["app", "main"]

app = typer.Typer(
    name="churnclv",
    help=(
        "Customer churn and lifetime-value prediction: point-in-time features, "
        "tracked LightGBM models, tiers and retention actions."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(models_app, name="models")
app.command()(monitor_verb)
app.command(name="evaluate-campaign")(evaluate_campaign_verb)


def _inputs(
    transactions: Path,
    events: Path | None,
    customers: Path | None,
    columns: object,
    as_of: object,
    *,
    scan: bool = False,
) -> Any:
    """Load (``scan``: validate, leaving Parquet rows in place) the input tables and check
    ``as_of`` falls after their first purchase."""
    tables = load_tables(transactions, events, customers, columns, scan=scan)
    check_as_of(tables.transactions, as_of, source=transactions)
    return tables


def _drift_date(value: str | None) -> Any:
    """``--drift-at`` as a timestamp, or ``None``."""
    try:
        return opt.parse_as_of(value) if value else None
    except InputError:
        raise InputError(f"--drift-at {value!r} is not a date (use YYYY-MM-DD)") from None


# ---- verbs ----------------------------------------------------------------------------------
@app.command()
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the Parquet files into.")],
    customers: Annotated[int, typer.Option(help="Number of synthetic customers.", min=1)] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 0,
    as_of: Annotated[str, typer.Option(help="Date the ground truth refers to.")] = "2024-01-01",
    history_days: Annotated[int, typer.Option(help="Days of history before as_of.", min=1)] = 1100,
    future_days: Annotated[
        int, typer.Option(help="Days simulated after as_of (labels, truth).", min=0)
    ] = 365,
    drift_at: Annotated[
        str | None,
        typer.Option(help="From this date on, 70% fewer events and orders, prices x1.5."),
    ] = None,
    uplift: Annotated[
        str,
        typer.Option(
            help="True effects of the past campaigns: heterogeneous (per customer; the coupon "
            "hurts loyal frequent buyers), uniform (the same for everyone) or none."
        ),
    ] = "heterogeneous",
    event_vocabulary: Annotated[
        str | None,
        typer.Option(
            help="Six comma-separated names for the event types login, session, page_view, "
            "email_open, support_ticket, complaint (e.g. app_open,video_play,...)."
        ),
    ] = None,
    survey_type: Annotated[
        str | None,
        typer.Option(
            help="Also emit satisfaction survey answers of this event type (e.g. nps) with a "
            "0-10 value that falls as a customer nears churn."
        ),
    ] = None,
) -> None:
    """Write realistic synthetic histories, past campaigns and their ground truth.

    Files: transactions.parquet, events.parquet, customers.parquet, truth.parquet
    (true P(alive), expected and realised purchases and value, true effect of each
    action), campaigns.parquet (four randomized past campaigns: customer_id, ts,
    treatment, campaign_id) and campaign_truth.parquet (each send's true effects).
    """
    import churnclv

    ts, drift = opt.parse_as_of(as_of), _drift_date(drift_at)
    if uplift not in ("heterogeneous", "uniform", "none"):
        raise InputError(f"--uplift {uplift!r} is not one of heterogeneous, uniform, none")
    vocabulary = [t.strip() for t in event_vocabulary.split(",")] if event_vocabulary else None
    with step(f"generating {customers:,} customers"):
        try:
            data = churnclv.generate(
                customers,
                seed=seed,
                as_of=ts,
                history_days=history_days,
                future_days=future_days,
                drift_at=drift,
                uplift=uplift,
                event_vocabulary=vocabulary,
                survey_type=survey_type,
            )
        except ValueError as exc:  # the event vocabulary or survey type
            raise InputError(f"--event-vocabulary/--survey-type: {exc}") from None
        paths = write_synthetic(data, out_dir)
    for name, p in paths.items():
        out.print(f"{name}: {p}")


@app.command()
def features(
    transactions: opt.Transactions,
    as_of: opt.AsOf,
    out_file: opt.OutFile,
    events: opt.Events = None,
    customers: opt.Customers = None,
    engine: opt.Engine = "duckdb",
    customer_col: opt.CustomerCol = "customer_id",
    ts_col: opt.TsCol = "ts",
    amount_col: opt.AmountCol = "amount",
    event_type_col: opt.EventTypeCol = "event_type",
    event_value_col: opt.EventValueCol = None,
    event_types: opt.EventTypes = None,
    event_top_k: opt.EventTopK = 8,
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
    spark_conf: opt.SparkConf = None,
) -> None:
    """Compute the point-in-time feature frame of every customer as of a date.

    Event types get their own features as `train` picks them (--event-top-k, --event-types).
    """
    run_features(dict(locals()))


@app.command()
def train(
    transactions: opt.Transactions,
    as_of: opt.AsOf,
    events: opt.Events = None,
    customers: opt.Customers = None,
    churn_horizon_days: opt.ChurnHorizon = 90,
    value_horizon_days: opt.ValueHorizon = 365,
    promote: opt.Promote = False,
    max_cutoffs: opt.MaxCutoffs = 12,
    seed: Annotated[int, typer.Option(help="Random seed of the models.")] = 0,
    customer_col: opt.CustomerCol = "customer_id",
    ts_col: opt.TsCol = "ts",
    amount_col: opt.AmountCol = "amount",
    event_type_col: opt.EventTypeCol = "event_type",
    event_value_col: opt.EventValueCol = None,
    event_types: opt.EventTypes = None,
    event_top_k: opt.EventTopK = 8,
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
    sample_customers: SampleCustomers = None,
    engine: opt.Engine = "duckdb",
    spark_conf: opt.SparkConf = None,
) -> None:
    """Fit, evaluate out of time, log to MLflow and register the churn and value models."""
    from churnclv.training import tracking_uri_for
    from churnclv.training import train as fit

    ts = opt.parse_as_of(as_of)
    tables, sample = train_inputs(dict(locals()), ts)
    workdir.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri_for(workdir, tracking_uri)
    with step("training") as update:
        result = fit(
            tables,
            as_of=ts,
            tracking_uri=uri,
            churn_horizon_days=churn_horizon_days,
            value_horizon_days=value_horizon_days,
            promote=promote,
            max_cutoffs=max_cutoffs,
            seed=seed,
            progress=update,
            should_stop=stop_requested,
            event_types=opt.event_type_list(event_types),
            event_top_k=event_top_k,
        )
    log_sample(result.run_id, uri, sample)
    print_fallbacks(result)
    print_metrics(result)
    out.print(f"run {result.run_id} in {uri}")


@app.command("train-uplift")
def train_uplift(
    transactions: opt.Transactions,
    campaigns: upl.Campaigns,
    as_of: opt.AsOf,
    events: opt.Events = None,
    customers: opt.Customers = None,
    response_days: upl.ResponseDays = 30,
    policy: opt.PolicyOpt = None,
    control: upl.Control = "control",
    promote: opt.Promote = False,
    learner: upl.LearnerOpt = "dr",
    seed: Annotated[int, typer.Option(help="Random seed of the models and the bootstrap.")] = 0,
    campaign_customer_col: upl.CampaignCustomerCol = "customer_id",
    campaign_ts_col: upl.CampaignTsCol = "ts",
    treatment_col: upl.TreatmentCol = "treatment",
    campaign_id_col: upl.CampaignIdCol = "campaign_id",
    customer_col: opt.CustomerCol = "customer_id",
    ts_col: opt.TsCol = "ts",
    amount_col: opt.AmountCol = "amount",
    event_type_col: opt.EventTypeCol = "event_type",
    event_value_col: opt.EventValueCol = None,
    event_types: opt.EventTypes = None,
    event_top_k: opt.EventTopK = 8,
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
    """Learn which action works for whom from a campaign log; gate it against constant policies."""
    run_train_uplift(dict(locals()))


@app.command()
def score(
    transactions: opt.Transactions,
    as_of: opt.AsOf,
    out_file: opt.OutFile,
    events: opt.Events = None,
    customers: opt.Customers = None,
    model_uri: opt.ModelUri = None,
    engine: opt.Engine = "duckdb",
    policy: opt.PolicyOpt = None,
    budget: opt.Budget = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write the HTML decision report to this file.")
    ] = None,
    customer_col: opt.CustomerCol = "customer_id",
    ts_col: opt.TsCol = "ts",
    amount_col: opt.AmountCol = "amount",
    event_type_col: opt.EventTypeCol = "event_type",
    event_value_col: opt.EventValueCol = None,
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
    spark_conf: opt.SparkConf = None,
) -> None:
    """Score every customer as of a date with the champion models and the decision policy.

    With --engine spark, features, models and decisions run on the Spark executors, Parquet
    inputs are read there from their paths, and an --out folder (ending in '/') is written
    by Spark; only the per-customer scores ever reach the driver.
    """
    from churnclv import load_policy
    from churnclv import score as run_score
    from churnclv._monitor import write_snapshot
    from churnclv.training import bundle_policy, champion_from_uri, tracking_uri_for

    ts = opt.parse_as_of(as_of)
    pol = load_policy(policy or bundle_policy(model_uri))
    out_path, folder = spk.out_target(out_file, engine)
    columns = opt.columns_from(locals())
    if engine == "spark":
        conf = spk.spark_conf(spark_conf)
        tables = spk.spark_inputs(transactions, events, customers, columns, ts, conf)
    else:  # DuckDB reads validated Parquet inputs in place (churnclv.scan_inputs)
        tables = _inputs(transactions, events, customers, columns, ts, scan=engine == "duckdb")
    uri = tracking_uri_for(workdir, tracking_uri)
    with step("loading champion"):
        champion = champion_from_uri(uri, model_uri)
    note_missing_models(champion)
    if engine == "spark":
        scored = spk.spark_score(
            tables, ts, champion, pol, budget, out_path, folder, with_report=report is not None
        )
    else:
        with step("scoring"):
            scored = run_score(
                tables, as_of=ts, champion=champion, policy=pol, engine=engine, budget=budget
            )
        write_table(scored, out_path)
    write_snapshot(scored, champion, workdir)
    out.print(f"{len(scored):,} customers scored with {champion.model_version} -> {out_path}")
    print_campaign(scored)
    if report is not None:
        write_decision_report(scored, report, uri, champion, workdir=workdir)


@app.command()
def export(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder to write the bundle into, e.g. models/.")
    ],
    workdir: opt.Workdir = opt.DEFAULT_WORKDIR,
    tracking_uri: opt.TrackingUri = None,
    model_uri: opt.ExportModelUri = None,
    policy: opt.BundlePolicy = None,
    name: opt.BundleName = None,
) -> None:
    """Export the champion bundle: every champion model, policy, reference population, schema.

    The bundle is a folder of MLflow model directories (churn/, value/, uplift/ for
    the champions that exist) plus
    policy.yaml, reference.json, schema.json and bundle.json; `score --model-uri`
    and `serve --model-uri` take it without the tracking store.
    """
    from churnclv import export_bundle
    from churnclv.training import tracking_uri_for

    uri = tracking_uri_for(workdir, tracking_uri)
    with step("exporting"):
        folder = export_bundle(uri, out_dir, model_uri=model_uri, policy=policy, name=name)
    out.print(f"bundle: {folder}")


@app.command()
def demo(
    workdir: opt.Workdir = opt.DEFAULT_WORKDIR,
    customers: Annotated[int, typer.Option(help="Number of synthetic customers.", min=200)] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    policy: opt.PolicyOpt = None,
    budget: opt.Budget = None,
    tracking_uri: opt.TrackingUri = None,
    uplift: DemoUplift = True,
) -> None:
    """The main job on embedded defaults.

    generate -> features -> train -> register -> learn actions from the campaign log ->
    batch score -> tier/action summary, with learned vs policy-formula actions checked on
    the synthetic truth.
    """
    started = time.perf_counter()
    result = run_demo(
        workdir,
        customers=customers,
        seed=seed,
        policy=policy,
        budget=budget,
        tracking_uri=tracking_uri,
        step=step,
        note=note,
        should_stop=stop_requested,
        uplift=uplift,
    )
    print_metrics(result.train)
    print_summary(result.scored)
    print_campaign(result.scored)
    print_learned_actions(result)
    out.print(result.note)
    out.print(f"report: {result.report_path}")
    out.print(
        f"scores: {result.scores_path}  ({len(result.scored):,} customers, "
        f"{result.champion.model_version})"
    )
    out.print(f"MLflow: mlflow ui --backend-store-uri {result.tracking_uri}")
    out.print(f"[dim]demo finished in {time.perf_counter() - started:.1f}s[/]")


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="TCP port to listen on.", min=1, max=65535)] = 3000,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the service to the network.")
    ] = "127.0.0.1",
    workdir: opt.Workdir = opt.DEFAULT_WORKDIR,
    tracking_uri: opt.TrackingUri = None,
    model_uri: opt.ModelUri = None,
    policy: opt.PolicyOpt = None,
    keep_alive: opt.KeepAlive = 75,
    graceful_shutdown: opt.GracefulShutdown = 30,
    access_log: opt.AccessLog = False,
) -> None:
    """Serve predictions over HTTP (BentoML): /predict, /predict_features, /lookup, /model.

    The champion (or the --model-uri models) is loaded at start-up; /readyz answers 503
    until it is. The registry champion's aliases are re-read every CHURNCLV_RELOAD_S seconds
    (default 30, 0 = off) and a newly promoted champion is swapped in without a restart.
    Set CHURNCLV_API_KEY to require 'Authorization: Bearer <key>' on every route but
    /livez, /readyz and /metrics.
    """
    from churnclv import load_policy
    from churnclv.training import bundle_policy, tracking_uri_for

    require_bentoml()
    policy = policy or bundle_policy(model_uri)  # a folder that is no bundle fails here
    load_policy(policy)  # a bad policy fails here with exit 2, not as a never-ready service
    workdir = workdir.resolve()
    if model_uri and not model_uri.startswith("models:/"):
        model_uri = str(Path(model_uri.removeprefix("file://")).resolve())
    env = {
        **os.environ,
        "CHURNCLV_WORKDIR": str(workdir),
        "CHURNCLV_TRACKING_URI": tracking_uri_for(workdir, tracking_uri),
        "CHURNCLV_MODEL_URI": model_uri or "",
        "CHURNCLV_POLICY": str(policy.resolve()) if policy else "",
        "CHURNCLV_ACCESS_LOG": "1" if access_log else "0",
    }
    env.setdefault("OMP_NUM_THREADS", "1")  # LightGBM's OpenMP spin hurts small batches
    err.print(f"serving on http://{host}:{port} (work directory {workdir})")
    run_bentoml_serve(env, host, port, keep_alive, graceful_shutdown)


@app.command()
def report(
    scores: Annotated[
        Path, typer.Option(help="A scores file written by `churnclv score` or `demo`.")
    ],
    out_file: Annotated[Path, typer.Option("--out", help="The HTML report to write.")],
    workdir: opt.Workdir = opt.DEFAULT_WORKDIR,
    tracking_uri: opt.TrackingUri = None,
) -> None:
    """Write the HTML decision report (tier x risk, actions, lifecycle, segments, model plots)."""
    from churnclv import load_champion
    from churnclv.training import tracking_uri_for

    scored = read_scores(scores)
    uri = tracking_uri_for(workdir, tracking_uri)
    try:
        champion = load_champion(uri)
    except ChurnclvError:
        champion = None
    with step("report"):
        path = write_decision_report(scored, out_file, uri, champion, workdir=workdir)
    out.print(f"report: {path}")


@app.command()
def ui(
    workdir: opt.Workdir = opt.DEFAULT_WORKDIR,
    tracking_uri: opt.TrackingUri = None,
    port: Annotated[int, typer.Option(help="TCP port of the MLflow UI.", min=1, max=65535)] = 5000,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the UI to the network.")
    ] = "127.0.0.1",
) -> None:
    """Open the MLflow UI on the work directory's store (runs, metrics, plots, registry).

    A thin wrapper of `mlflow ui --backend-store-uri <uri> --host HOST --port PORT`.
    """
    from churnclv.training import tracking_uri_for

    exec_mlflow_ui(tracking_uri_for(workdir, tracking_uri), workdir, host, port)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map churnclv errors to exit 2 (input) or 1 (other) with one line.

    SIGTERM unwinds like Ctrl-C (open MLflow runs end FAILED, temp files are
    removed), and an interrupt whose exception was lost in a finalizer still
    ends the command with exit 1 (see ``churnclv._interrupt``).
    """
    with handle_interrupts():
        return _run(argv)


def _fail_runs_left_running() -> None:
    """Fail any MLflow run this process left RUNNING (only if training was imported)."""
    if "churnclv.training" in sys.modules:
        from churnclv.training import fail_interrupted_runs

        fail_interrupted_runs()


def _run(argv: list[str] | None) -> int:
    failed: int | None = None
    try:
        # Without standalone mode typer *returns* exit codes: typer.Exit(n) gives n and an
        # interrupt (Ctrl-C, or SIGTERM: see handle_interrupts) gives 130.
        rv = app(args=argv, standalone_mode=False)
        if rv == 130 or interrupted() is not None:
            print("aborted", file=sys.stderr)
            failed = 1
        else:
            return rv if isinstance(rv, int) else 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ChurnclvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        failed = 1
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        failed = 1
    except Exception as exc:
        # Usage errors (typer vendors its own click) carry `show()` and their exit code 2.
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            return code
        if os.environ.get("CHURNCLV_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (set CHURNCLV_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        failed = 1
    # Outside the except blocks: the failure's traceback, which can pin an interrupted MLflow
    # session (and sqlite's write lock) in memory, is gone by now.
    _fail_runs_left_running()
    return failed


def _entry() -> None:
    sys.exit(main())
