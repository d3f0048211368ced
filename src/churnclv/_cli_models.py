"""``churnclv models``: list the registered versions, promote one, roll the champion back."""

from __future__ import annotations

from typing import Annotated

import typer

from churnclv import _cli_options as opt
from churnclv._cli_output import out

__all__ = ["models_app"]

models_app = typer.Typer(
    name="models",
    help="The model registry: list versions, promote a version, roll the champion back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Name = Annotated[str, typer.Argument(help="Registered model: churnclv-churn or churnclv-value.")]


@models_app.command("list")
def list_(workdir: opt.Workdir = opt.DEFAULT_WORKDIR, tracking_uri: opt.TrackingUri = None) -> None:
    """Every version of both models: aliases, metric, kind, promotion reason, who and when."""
    from rich.console import Console
    from rich.table import Table

    from churnclv.training import list_versions, tracking_uri_for

    rows = list_versions(tracking_uri_for(workdir, tracking_uri))
    if not rows:
        out.print("no registered models; run `churnclv train` (or `churnclv demo`) first")
        return
    table = Table()
    for column in ("model", "version", "aliases", "kind", "metric"):
        table.add_column(column, no_wrap=True)
    table.add_column("promotion", overflow="fold", min_width=20)
    table.add_column("by", no_wrap=True)
    table.add_column("at", no_wrap=True)
    for r in rows:
        score = "" if r.score is None else f"{r.metric.split('_', 1)[1]} {r.score:.4f}"
        table.add_row(
            r.name, r.version, ",".join(r.aliases), r.model_kind, score, r.promotion,
            r.promoted_by, r.promoted_at,
        )  # fmt: skip
    Console(width=max(out.width, 150)).print(table)  # piped output is 80 wide: no cropping


@models_app.command()
def promote(
    name: Name,
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    force: Annotated[
        bool, typer.Option("--force", help="Skip the gate: promote even if it scores worse.")
    ] = False,
    workdir: opt.Workdir = opt.DEFAULT_WORKDIR,
    tracking_uri: opt.TrackingUri = None,
) -> None:
    """Give VERSION the champion alias if it scores the validation rows at least as well.

    The gate is the training's: the version's out-of-time metric against the current
    champion's on the same rows. Who, when and why are recorded in version tags.
    """
    from churnclv.training import promote_version, tracking_uri_for

    why = promote_version(tracking_uri_for(workdir, tracking_uri), name, version, force=force)
    out.print(f"{name} version {version}: {why}")


@models_app.command()
def rollback(
    name: Name,
    workdir: opt.Workdir = opt.DEFAULT_WORKDIR,
    tracking_uri: opt.TrackingUri = None,
) -> None:
    """Give the champion alias back to the previous champion (recorded in version tags)."""
    from churnclv.training import rollback_champion, tracking_uri_for

    was, now = rollback_champion(tracking_uri_for(workdir, tracking_uri), name)
    out.print(f"{name}: champion rolled back from version {was} to version {now}")
