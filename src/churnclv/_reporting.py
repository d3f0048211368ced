"""Write a scoring's decision report and log it beside the champion in MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from churnclv.training import Champion

__all__ = ["write_decision_report"]


def write_decision_report(
    scored: pd.DataFrame,
    path: str | Path,
    tracking_uri: str,
    champion: Champion | None,
    notes: list[str] | None = None,
) -> Path:
    """Write the HTML decision report of ``scored``; log it to MLflow when a champion is known.

    The report carries the campaign totals, the decision figures, the
    champion run's evaluation plots (those the store holds) and ``notes``.
    With a champion, report, figures and ``campaign_*`` totals are logged to
    the ``churnclv-scoring`` experiment at ``tracking_uri``.

    Returns
    -------
    pathlib.Path
        The report written.
    """
    from churnclv._report import decision_figures, write_report
    from churnclv.decisions import campaign_summary
    from churnclv.training import champion_plots, log_report

    summary = campaign_summary(scored)
    plots = champion_plots(tracking_uri, champion) if champion is not None else {}
    figures = decision_figures(scored)
    written = write_report(
        scored, Path(path), summary=summary, model_plots=plots, figures=figures, notes=notes
    )
    if champion is not None:
        log_report(
            tracking_uri,
            written,
            dict(figures),
            {f"campaign_{k}": v for k, v in summary.items()},
        )
    return written
