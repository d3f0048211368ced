"""The ``churnclv`` command line (DESIGN §7).

Exit codes: 0 success, 2 bad input or usage, 1 anything else. Every output is
written to a temp path and renamed, so a failed command leaves no partial file.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from churnclv._errors import ChurnclvError, InputError
from churnclv._interrupt import forget_interrupts, handle_interrupts, interrupted

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
out = Console()
err = Console(stderr=True)

DEFAULT_WORKDIR = Path("churnclv-work")

# ---- shared options -------------------------------------------------------------------------
Transactions = Annotated[
    Path,
    typer.Option(help="Transactions table (CSV or Parquet): customer id, timestamp, amount."),
]
Events = Annotated[
    Path | None,
    typer.Option(help="Engagement events table: customer id, timestamp, event type."),
]
Customers = Annotated[
    Path | None,
    typer.Option(help="Customers table: customer id, optional signup_ts and static attributes."),
]
CustomerCol = Annotated[str, typer.Option(help="Source column holding the customer id.")]
TsCol = Annotated[str, typer.Option(help="Source column holding the timestamp or date.")]
AmountCol = Annotated[
    str, typer.Option(help="Source column holding the amount (negative = return).")
]
EventTypeCol = Annotated[str, typer.Option(help="Source column holding the event type.")]
QuantityCol = Annotated[
    str | None,
    typer.Option(help="With --price-col: amount = quantity x price (invoice-line exports)."),
]
PriceCol = Annotated[str | None, typer.Option(help="With --quantity-col: the unit price column.")]
NoAmount = Annotated[
    bool,
    typer.Option(
        "--no-amount",
        help="The transactions carry no amount (dates only): every row is a purchase worth 1, "
        "so value predictions are purchase counts.",
    ),
]
AsOf = Annotated[
    str,
    typer.Option(help="Cutoff date (YYYY-MM-DD or ISO timestamp); only rows before it are used."),
]
Workdir = Annotated[
    Path,
    typer.Option(help="Work directory: holds mlruns.db, outputs and the scored snapshot."),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI; default sqlite:///<workdir>/mlruns.db."),
]
Engine = Annotated[
    str,
    typer.Option(
        help="Feature engine: duckdb (embedded default) or spark (Apache Spark; needs "
        "churnclv[spark] and Java 17+; master from CHURNCLV_SPARK_MASTER, default local[2])."
    ),
]
Budget = Annotated[
    float | None,
    typer.Option(
        help="Campaign budget: select customers by best expected gain per unit cost until it "
        "is spent (default: every customer whose action pays).",
        min=0,
    ),
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", help="Decision policy YAML; default: the shipped policy."),
]


def _columns(
    customer_col: str,
    ts_col: str,
    amount_col: str,
    event_type_col: str,
    quantity_col: str | None,
    price_col: str | None,
    no_amount: bool = False,
) -> Any:
    from churnclv._io import ColumnMap

    if no_amount:
        if quantity_col or price_col:
            raise InputError("--no-amount excludes --quantity-col and --price-col")
        return ColumnMap(customer_col, ts_col, "", event_type_col, None, None, no_amount=True)

    if (quantity_col is None) != (price_col is None):
        raise InputError("--quantity-col and --price-col go together: give both or neither")
    return ColumnMap(customer_col, ts_col, amount_col, event_type_col, quantity_col, price_col)


def _as_of(value: str) -> Any:
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InputError(f"--as-of {value!r} is not a date (use YYYY-MM-DD)") from None
    if ts is pd.NaT:
        raise InputError(f"--as-of {value!r} is not a date (use YYYY-MM-DD)")
    return ts.tz_convert(None) if ts.tzinfo else ts


def _load(transactions: Path, events: Path | None, customers: Path | None, columns: Any) -> Any:
    from churnclv._io import LoadReport, load_inputs

    report = LoadReport()
    with _step("loading inputs"):
        tables = load_inputs(transactions, events, customers, columns, report)
    for note in report.notes:
        err.print(f"[yellow]note:[/] {note}")
    return tables


def _check_as_of(tables: Any, as_of: Any, path: Path) -> None:
    tx = tables.transactions
    purchases = tx.loc[tx["amount"] > 0, "ts"]
    if purchases.empty or purchases.min() >= as_of:
        first = tx["ts"].min()
        raise InputError(
            f"transactions file {path}: as_of {as_of.date()} is before all data "
            f"(column 'ts': first purchase {purchases.min() if not purchases.empty else first})"
        )


@contextmanager
def _step(label: str) -> Iterator[Callable[[str], None]]:
    """Show a spinner with ``label`` (updated by the yielded callback) while work runs."""
    start = time.perf_counter()
    with err.status(f"[bold]{label}[/]…") as status:

        def update(msg: str) -> None:
            status.update(f"[bold]{label}[/]: {msg}…")

        yield update
    err.print(f"[green]✓[/] {label} [dim]({time.perf_counter() - start:.1f}s)[/]")


def _write(df: Any, path: Path) -> Path:
    from churnclv._io import atomic_write

    suffix = path.suffix.lower()
    if suffix == ".csv":
        return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    if suffix in {".parquet", ".pq", ""}:
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    raise InputError(f"--out {path}: unsupported file type {suffix!r} (use .parquet or .csv)")


# ---- verbs ----------------------------------------------------------------------------------
@app.command()
def generate(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder to write the four Parquet files into.")
    ],
    customers: Annotated[int, typer.Option(help="Number of synthetic customers.", min=1)] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 0,
    as_of: Annotated[str, typer.Option(help="Date the ground truth refers to.")] = "2024-01-01",
    history_days: Annotated[int, typer.Option(help="Days of history before as_of.", min=1)] = 1100,
    future_days: Annotated[
        int, typer.Option(help="Days simulated after as_of (labels, truth).", min=0)
    ] = 365,
) -> None:
    """Write realistic synthetic histories and their ground truth.

    Files: transactions.parquet, events.parquet, customers.parquet and
    truth.parquet (true P(alive), expected and realised purchases and value).
    """
    from churnclv._generate import generate as gen
    from churnclv._generate import write

    ts = _as_of(as_of)
    with _step(f"generating {customers:,} customers"):
        data = gen(
            customers, seed=seed, as_of=ts, history_days=history_days, future_days=future_days
        )
        paths = write(data, out_dir)
    for name, p in paths.items():
        out.print(f"{name}: {p}")


@app.command()
def features(
    transactions: Transactions,
    as_of: AsOf,
    out_file: Annotated[Path, typer.Option("--out", help="Output file (.parquet or .csv).")],
    events: Events = None,
    customers: Customers = None,
    engine: Engine = "duckdb",
    customer_col: CustomerCol = "customer_id",
    ts_col: TsCol = "ts",
    amount_col: AmountCol = "amount",
    event_type_col: EventTypeCol = "event_type",
    quantity_col: QuantityCol = None,
    price_col: PriceCol = None,
    no_amount: NoAmount = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    tracking_uri: TrackingUri = None,
) -> None:
    """Compute the point-in-time feature frame of every customer as of a date."""
    from churnclv.features import build_features

    ts = _as_of(as_of)
    tables = _load(
        transactions,
        events,
        customers,
        _columns(
            customer_col, ts_col, amount_col, event_type_col, quantity_col, price_col, no_amount
        ),
    )
    _check_as_of(tables, ts, transactions)
    with _step("computing features"):
        frame = build_features(
            tables.transactions, tables.events, tables.customers, as_of=ts, engine=engine
        )
    _write(frame, out_file)
    before = tables.transactions.loc[tables.transactions["ts"] < ts, "customer_id"]
    without = before.nunique() - len(frame)
    if without:
        err.print(
            f"[yellow]note:[/] {without:,} customers with rows before as_of have no purchase "
            "(returns or zero amounts only) and therefore no feature row"
        )
    out.print(f"{len(frame):,} customers x {frame.shape[1] - 2} features -> {out_file}")


@app.command()
def train(
    transactions: Transactions,
    as_of: AsOf,
    events: Events = None,
    customers: Customers = None,
    churn_horizon_days: Annotated[
        float, typer.Option(help="Churn = no purchase within this many days.", min=1)
    ] = 90,
    value_horizon_days: Annotated[
        float, typer.Option(help="Future value = net spend within this many days.", min=1)
    ] = 365,
    promote: Annotated[
        bool, typer.Option(help="Alias the new models 'champion' if they beat the current one.")
    ] = False,
    max_cutoffs: Annotated[
        int, typer.Option(help="Most monthly cutoffs stacked per model.", min=2)
    ] = 12,
    seed: Annotated[int, typer.Option(help="Random seed of the models.")] = 0,
    customer_col: CustomerCol = "customer_id",
    ts_col: TsCol = "ts",
    amount_col: AmountCol = "amount",
    event_type_col: EventTypeCol = "event_type",
    quantity_col: QuantityCol = None,
    price_col: PriceCol = None,
    no_amount: NoAmount = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    tracking_uri: TrackingUri = None,
) -> None:
    """Fit, evaluate out of time, log to MLflow and register the churn and value models."""
    from churnclv.training import tracking_uri_for
    from churnclv.training import train as fit

    ts = _as_of(as_of)
    tables = _load(
        transactions,
        events,
        customers,
        _columns(
            customer_col, ts_col, amount_col, event_type_col, quantity_col, price_col, no_amount
        ),
    )
    _check_as_of(tables, ts, transactions)
    workdir.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri_for(workdir, tracking_uri)
    with _step("training") as update:
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
        )
    for kind, why in result.fallbacks.items():
        err.print(
            f"[yellow]fallback:[/] {kind} model: {why}; registered the BG/NBD "
            f"{'P(no purchase)' if kind == 'churn' else '+ Gamma-Gamma CLV'} model instead",
            soft_wrap=True,
        )
    _print_metrics(result)
    out.print(f"run {result.run_id} in {uri}")


def _print_metrics(result: Any) -> None:
    t = Table(title="Out-of-time evaluation", show_lines=False)
    t.add_column("metric")
    t.add_column("model", justify="right")
    t.add_column("RFM baseline", justify="right")
    for key in (
        "churn_roc_auc",
        "churn_pr_auc",
        "churn_brier",
        "churn_ece",
        "churn_top_decile_lift",
        "value_gini",
        "value_spearman",
        "value_total_ratio",
    ):
        base = result.metrics.get(f"baseline_rfm_{key}", float("nan"))
        model = result.metrics.get(key, float("nan"))
        t.add_row(key, f"{model:.4f}" if model == model else "n/a", f"{base:.4f}")
    out.print(t)
    kinds = getattr(result, "model_kinds", {})
    if kinds:
        out.print(f"models: churn {kinds.get('churn')}, value {kinds.get('value')}")
    for kind, why in result.reasons.items():
        verdict = "promoted" if result.promoted.get(kind) else "not promoted"
        out.print(f"{kind} model v{getattr(result, kind + '_version')}: {verdict} ({why})")


@app.command()
def score(
    transactions: Transactions,
    as_of: AsOf,
    out_file: Annotated[Path, typer.Option("--out", help="Output file (.parquet or .csv).")],
    events: Events = None,
    customers: Customers = None,
    model_uri: Annotated[
        str | None,
        typer.Option(
            help="Reserved: models:/ URIs other than the registry champion are not supported yet."
        ),
    ] = None,
    engine: Engine = "duckdb",
    policy: PolicyOpt = None,
    budget: Budget = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write the HTML decision report to this file.")
    ] = None,
    customer_col: CustomerCol = "customer_id",
    ts_col: TsCol = "ts",
    amount_col: AmountCol = "amount",
    event_type_col: EventTypeCol = "event_type",
    quantity_col: QuantityCol = None,
    price_col: PriceCol = None,
    no_amount: NoAmount = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    tracking_uri: TrackingUri = None,
) -> None:
    """Score every customer as of a date with the champion models and the decision policy."""
    from churnclv.decisions import load_policy
    from churnclv.serving import score as run_score
    from churnclv.training import load_champion, tracking_uri_for

    if model_uri is not None:
        raise InputError(
            "--model-uri is not supported yet: score uses the registry's @champion models"
        )
    ts = _as_of(as_of)
    pol = load_policy(policy)
    tables = _load(
        transactions,
        events,
        customers,
        _columns(
            customer_col, ts_col, amount_col, event_type_col, quantity_col, price_col, no_amount
        ),
    )
    _check_as_of(tables, ts, transactions)
    with _step("loading champion"):
        champion = load_champion(tracking_uri_for(workdir, tracking_uri))
    with _step("scoring"):
        if engine == "spark":
            from churnclv.serving._spark import score_spark

            scored = score_spark(tables, as_of=ts, champion=champion, policy=pol)
            if budget is not None:
                from churnclv.decisions import select_under_budget

                scored = select_under_budget(scored, pol, budget)
        else:
            scored = run_score(
                tables, as_of=ts, champion=champion, policy=pol, engine=engine, budget=budget
            )
    _write(scored, out_file)
    out.print(f"{len(scored):,} customers scored with {champion.model_version} -> {out_file}")
    _print_campaign(scored)
    if report is not None:
        uri = tracking_uri_for(workdir, tracking_uri)
        _report(scored, report, uri, champion)


@app.command()
def demo(
    workdir: Workdir = DEFAULT_WORKDIR,
    customers: Annotated[int, typer.Option(help="Number of synthetic customers.", min=200)] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    policy: PolicyOpt = None,
    budget: Budget = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """The main job on embedded defaults.

    generate -> features -> train -> register -> batch score -> tier/action summary.
    """
    import pandas as pd

    from churnclv._generate import generate as gen
    from churnclv._generate import write
    from churnclv._io import ColumnMap
    from churnclv.decisions import load_policy
    from churnclv.serving import score as run_score
    from churnclv.training import load_champion, tracking_uri_for
    from churnclv.training import train as fit

    started = time.perf_counter()
    pol = load_policy(policy)
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    with _step(f"generating {customers:,} synthetic customers"):
        data = gen(customers, seed=seed, history_days=1100)
        paths = write(data, data_dir)
    as_of = pd.Timestamp(data.as_of)
    tables = _load(paths["transactions"], paths["events"], paths["customers"], ColumnMap())
    uri = tracking_uri_for(workdir, tracking_uri)
    with _step("training and registering") as update:
        result = fit(
            tables, as_of=as_of, tracking_uri=uri, promote=True, seed=seed, progress=update
        )
    _print_metrics(result)
    with _step("loading champion"):
        champion = load_champion(uri)
    with _step("batch scoring"):
        scored = run_score(tables, as_of=as_of, champion=champion, policy=pol, budget=budget)
        scores_path = _write(scored, workdir / "scores.parquet")
    _print_summary(scored)
    _print_campaign(scored)
    truth = data.truth.set_index("customer_id").reindex(scored["customer_id"])
    sel = scored["selected"].to_numpy()
    uplift = scored["expected_saved_value"] / (
        scored["churn_probability"] * scored["predicted_value"].clip(lower=0)
    ).where(lambda s: s > 0)
    realised = float(
        (
            truth["churned_90"].to_numpy()
            * truth["expected_value_365"].to_numpy()
            * uplift.fillna(0).to_numpy()
        )[sel].sum()
    )
    note = (
        f"Synthetic ground truth: the selected customers who really churn within 90 days carry "
        f"{realised:,.0f} of true expected value x uplift (the value the campaign could save), "
        f"against {scored.loc[sel, 'expected_saved_value'].sum():,.0f} predicted."
    )
    out.print(note)
    with _step("report"):
        report_path = _report(scored, workdir / "report.html", uri, champion, notes=[note])
    out.print(f"report: {report_path}")
    out.print(f"scores: {scores_path}  ({len(scored):,} customers, {champion.model_version})")
    out.print(f"MLflow: mlflow ui --backend-store-uri {uri}")
    out.print(f"[dim]demo finished in {time.perf_counter() - started:.1f}s[/]")


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="TCP port to listen on.", min=1, max=65535)] = 3000,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the service to the network.")
    ] = "127.0.0.1",
    workdir: Workdir = DEFAULT_WORKDIR,
    tracking_uri: TrackingUri = None,
    policy: PolicyOpt = None,
    keep_alive: Annotated[
        int,
        typer.Option(
            "--keep-alive",
            help="Seconds an idle keep-alive connection stays open. Keep it above your "
            "clients' pool idle expiry, or a request sent as the server closes the "
            "connection meets a reset.",
            min=1,
        ),
    ] = 75,
    graceful_shutdown: Annotated[
        int,
        typer.Option(
            "--graceful-shutdown",
            help="On SIGTERM, seconds in-flight requests get to finish before they are cut.",
            min=1,
        ),
    ] = 30,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            envvar="CHURNCLV_ACCESS_LOG",
            help="Log every request (costs about 8% of the CPU at 200 requests/s; "
            "counts and latencies are on /metrics either way).",
        ),
    ] = False,
) -> None:
    """Serve predictions over HTTP (BentoML): /predict, /predict_features, /lookup, /model.

    The champion is loaded from the registry at start-up; /readyz answers 503 until it is.
    Set CHURNCLV_API_KEY to require 'Authorization: Bearer <key>' on every route but
    /livez, /readyz and /metrics.
    """
    import shutil
    import signal
    import subprocess

    from churnclv.decisions import load_policy
    from churnclv.training import tracking_uri_for

    if shutil.which("bentoml", path=str(Path(sys.executable).parent)) is None:
        try:
            import bentoml  # noqa: F401
        except ImportError:
            raise InputError("serving needs BentoML: pip install 'churnclv[serve]'") from None
    load_policy(policy)  # a bad policy fails here with exit 2, not as a never-ready service
    workdir = workdir.resolve()
    env = {
        **os.environ,
        "CHURNCLV_WORKDIR": str(workdir),
        "CHURNCLV_TRACKING_URI": tracking_uri_for(workdir, tracking_uri),
        "CHURNCLV_POLICY": str(policy.resolve()) if policy else "",
        "CHURNCLV_ACCESS_LOG": "1" if access_log else "0",
    }
    env.setdefault("OMP_NUM_THREADS", "1")  # LightGBM's OpenMP spin hurts small batches
    exe = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or "bentoml"
    cmd = [exe, "serve", "churnclv.serving.service:ChurnService"]
    cmd += ["--host", host, "--port", str(port)]
    # (hidden options of `bentoml serve`, passed on to uvicorn; its keep-alive default is 5 s)
    cmd += ["--timeout-keep-alive", str(keep_alive)]
    cmd += ["--timeout-graceful-shutdown", str(graceful_shutdown)]
    err.print(f"serving on http://{host}:{port} (work directory {workdir})")
    proc = subprocess.Popen(cmd, env=env)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # stop the server with us
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C is how a server is stopped: not a failure
        forget_interrupts()
        proc.terminate()
        code = proc.wait(timeout=30)
    if code not in (0, -15, 143):
        raise ChurnclvError(f"bentoml serve exited with status {code}")


@app.command()
def report(
    scores: Annotated[
        Path, typer.Option(help="A scores file written by `churnclv score` or `demo`.")
    ],
    out_file: Annotated[Path, typer.Option("--out", help="The HTML report to write.")],
    workdir: Workdir = DEFAULT_WORKDIR,
    tracking_uri: TrackingUri = None,
) -> None:
    """Write the HTML decision report (tier x risk, actions, lifecycle, segments, model plots)."""
    import pandas as pd

    from churnclv.training import load_champion, tracking_uri_for

    if not scores.is_file():
        raise InputError(f"scores file not found: {scores}")
    try:
        scored = pd.read_parquet(scores) if scores.suffix != ".csv" else pd.read_csv(scores)
    except Exception as exc:
        raise InputError(f"scores file {scores} cannot be read: {exc}") from None
    missing = {"customer_id", "value_tier", "risk_band", "action", "selected"} - set(scored.columns)
    if missing:
        raise InputError(f"scores file {scores}: missing columns {', '.join(sorted(missing))}")
    uri = tracking_uri_for(workdir, tracking_uri)
    try:
        champion = load_champion(uri)
    except ChurnclvError:
        champion = None
    with _step("report"):
        path = _report(scored, out_file, uri, champion)
    out.print(f"report: {path}")


def _report(
    scored: Any, path: Path, uri: str, champion: Any, notes: list[str] | None = None
) -> Path:
    from churnclv._report import decision_figures, write_report
    from churnclv.decisions import campaign_summary
    from churnclv.training import champion_plots, log_report

    summary = campaign_summary(scored)
    plots = champion_plots(uri, champion) if champion is not None else {}
    figures = decision_figures(scored)
    written = write_report(
        scored, path, summary=summary, model_plots=plots, figures=figures, notes=notes
    )
    if champion is not None:
        log_report(
            uri,
            written,
            dict(figures),
            {f"campaign_{k}": v for k, v in summary.items()},
        )
    return written


def _print_campaign(scored: Any) -> None:
    from churnclv.decisions import campaign_summary

    s = campaign_summary(scored)
    out.print(
        f"campaign: {int(s['customers']):,} customers, cost {s['cost']:,.0f}, expected saved value "
        f"{s['expected_saved_value']:,.0f}, expected net gain {s['expected_net_gain']:,.0f}, "
        f"ROI {s['roi']:.1f}x"
    )


@app.command()
def ui(
    workdir: Workdir = DEFAULT_WORKDIR,
    tracking_uri: TrackingUri = None,
    port: Annotated[int, typer.Option(help="TCP port of the MLflow UI.", min=1, max=65535)] = 5000,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the UI to the network.")
    ] = "127.0.0.1",
) -> None:
    """Open the MLflow UI on the work directory's store (runs, metrics, plots, registry).

    A thin wrapper of `mlflow ui --backend-store-uri <uri> --host HOST --port PORT`.
    """
    from churnclv.training import tracking_uri_for

    uri = tracking_uri_for(workdir, tracking_uri)
    if uri.startswith("sqlite:///"):
        store = Path(uri.removeprefix("sqlite:///"))
        if not store.is_file():
            raise InputError(
                f"no MLflow store at {store}: run `churnclv demo --workdir {workdir}` or "
                "`churnclv train` first, or pass --tracking-uri"
            )
    elif "://" not in uri and not Path(uri).exists():
        raise InputError(f"no MLflow store at {uri}")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", host, "--port", str(port)]
    err.print(f"MLflow UI on http://{host}:{port} (store {uri}); Ctrl+C stops it")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(cmd[0], cmd)


def _print_summary(scored: Any) -> None:
    total = float(scored["predicted_value"].sum())
    grid = (
        scored.groupby(["value_tier", "risk_band"], observed=True)
        .agg(customers=("customer_id", "size"), value=("predicted_value", "sum"))
        .reset_index()
    )
    t = Table(title="Predicted value by value tier x churn risk")
    for col in ("value tier", "risk band", "customers", "predicted value", "share of value"):
        t.add_column(col, justify="right" if col not in ("value tier", "risk band") else "left")
    order = {"high": 0, "medium": 1, "low": 2}
    grid = grid.sort_values(["value_tier", "risk_band"], key=lambda s: s.map(order))
    for row in grid.itertuples():
        t.add_row(
            row.value_tier,
            row.risk_band,
            f"{row.customers:,}",
            f"{row.value:,.0f}",
            f"{row.value / total:.1%}" if total else "-",
        )
    out.print(t)
    actions = (
        scored.groupby("action")
        .agg(customers=("customer_id", "size"), gain=("expected_net_gain", "sum"))
        .sort_values("customers", ascending=False)
    )
    a = Table(title="Retention action mix")
    a.add_column("action")
    a.add_column("customers", justify="right")
    a.add_column("expected net gain", justify="right")
    for name, row in actions.iterrows():
        a.add_row(str(name), f"{int(row.customers):,}", f"{row.gain:,.0f}")
    out.print(a)


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
