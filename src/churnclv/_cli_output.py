"""What the ``churnclv`` CLI prints and writes: spinners, tables, summaries, output files.

Results go to stdout (:data:`out`); progress and notes to stderr (:data:`err`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from churnclv import InputError

__all__ = [
    "err",
    "load_tables",
    "note",
    "out",
    "print_campaign",
    "print_fallbacks",
    "print_metrics",
    "print_summary",
    "read_scores",
    "step",
    "write_synthetic",
    "write_table",
]

out = Console()
err = Console(stderr=True)

_METRICS = (
    "churn_roc_auc",
    "churn_pr_auc",
    "churn_brier",
    "churn_ece",
    "churn_retained_top_decile_lift",
    "churn_value_captured_top_decile",
    "value_gini",
    "value_spearman",
    "value_total_ratio",
)


@contextmanager
def step(label: str) -> Iterator[Callable[[str], None]]:
    """Show a spinner with ``label`` (updated by the yielded callback) while work runs."""
    start = time.perf_counter()
    with err.status(f"[bold]{label}[/]…") as status:

        def update(msg: str) -> None:
            status.update(f"[bold]{label}[/]: {msg}…")

        yield update
    err.print(f"[green]✓[/] {label} [dim]({time.perf_counter() - start:.1f}s)[/]")


def note(message: str) -> None:
    """One ``note:`` line on stderr."""
    err.print(f"[yellow]note:[/] {message}")


def note_missing_models(champion: Any) -> None:
    """A note naming the missing churn / value champions (nothing when both exist), and
    one when the models leave the registry's uplift champion out (``uplift_note``)."""
    from churnclv.serving._batch import missing_note

    for message in (missing_note(champion), getattr(champion, "uplift_note", None)):
        if message:
            note(message)


def load_tables(
    transactions: Path,
    events: Path | None,
    customers: Path | None,
    columns: Any,
    *,
    scan: bool = False,
) -> Any:
    """Load the input tables under a spinner, then print what loading noted.

    ``scan`` validates them with :func:`churnclv.scan_inputs` instead: Parquet
    rows stay in their files for the feature engine to read.
    """
    from churnclv._io import LoadReport, load_inputs
    from churnclv._io_scan import scan_inputs

    report = LoadReport()
    with step("checking inputs" if scan else "loading inputs"):
        read = scan_inputs if scan else load_inputs
        tables = read(transactions, events, customers, columns, report)
    for message in report.notes:
        note(message)
    return tables


def read_scores(path: Path) -> Any:
    """A scores file (Parquet or CSV) with the columns the decision report needs."""
    import pandas as pd

    if not path.is_file():
        raise InputError(f"scores file not found: {path}")
    try:
        scored = pd.read_parquet(path) if path.suffix != ".csv" else pd.read_csv(path)
    except Exception as exc:
        raise InputError(f"scores file {path} cannot be read: {exc}") from None
    missing = {"customer_id", "value_tier", "risk_band", "action", "selected"} - set(scored.columns)
    if missing:
        raise InputError(f"scores file {path}: missing columns {', '.join(sorted(missing))}")
    return scored


def write_table(df: Any, path: Path) -> Path:
    """Write ``df`` atomically as Parquet (``.parquet``, ``.pq``, no suffix) or CSV."""
    from churnclv._io import atomic_write

    suffix = path.suffix.lower()
    if df.attrs:  # pandas would write attrs (e.g. every customer's reasons) as Parquet metadata
        df = df.copy(deep=False)
        df.attrs = {}
    if suffix == ".csv":
        return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    if suffix in {".parquet", ".pq", ""}:
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    raise InputError(f"--out {path}: unsupported file type {suffix!r} (use .parquet or .csv)")


def print_fallbacks(result: Any) -> None:
    """The evaluation design on one stderr line, then one per model that fell back to
    BG/NBD in training."""
    note = getattr(result, "evaluation_note", "")
    if note:
        err.print(note, soft_wrap=True, markup=False, highlight=False)
    for kind, why in result.fallbacks.items():
        err.print(
            f"[yellow]fallback:[/] {kind} model: {why}; registered the BG/NBD "
            f"{'P(no purchase)' if kind == 'churn' else '+ Gamma-Gamma CLV'} model instead",
            soft_wrap=True,
        )


def print_metrics(result: Any) -> None:
    """The out-of-time evaluation table, the model kinds and the promotion verdicts."""
    holdout = "customer_holdout" in getattr(result, "evaluation", {}).values()
    title = "Customer-holdout evaluation" if holdout else "Out-of-time evaluation"
    t = Table(title=title, show_lines=False)
    t.add_column("metric")
    t.add_column("model", justify="right")
    t.add_column("RFM baseline", justify="right")
    for key in _METRICS:
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


def print_campaign(scored: Any) -> None:
    """One line of campaign totals: customers, cost, saved value, net gain, ROI."""
    from churnclv.decisions import campaign_summary

    s = campaign_summary(scored)
    if not s["cost"] > 0:  # nobody selected (or only free actions): no return on cost to state
        out.print(f"campaign: {int(s['customers']):,} customers, no paid action chosen")
        return
    out.print(
        f"campaign: {int(s['customers']):,} customers, cost {s['cost']:,.0f}, expected saved value "
        f"{s['expected_saved_value']:,.0f}, expected net gain {s['expected_net_gain']:,.0f}, "
        f"ROI {s['roi']:.1f}x"
    )


def print_summary(scored: Any) -> None:
    """Predicted value by value tier x risk band, and the retention action mix."""
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


def write_synthetic(data: Any, out_dir: Path) -> dict[str, Path]:
    """Write generated tables as Parquet files into ``out_dir``; name -> path."""
    from churnclv._generate import write

    return write(data, out_dir)
