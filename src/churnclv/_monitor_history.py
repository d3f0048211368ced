"""The monitoring history: one row per ``churnclv monitor`` date, its chart and its sentence.

Each monitoring appends its headline figures to
``<workdir>/monitoring/history.parquet`` (:data:`HISTORY_COLUMNS`); monitoring
the same ``as_of`` again replaces that date's row. :func:`history_sentence`
says in one sentence where the champion stands over time, and
:func:`history_figure` draws the largest PSI, the backtest churn AUC and the
share of customers changing value tier against the monitoring date, with the
policy's thresholds and each date's verdict.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churnclv._io import atomic_write_parquet
from churnclv._policy import Monitoring

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "HISTORY",
    "HISTORY_COLUMNS",
    "append_history",
    "history_figure",
    "history_row",
    "history_sentence",
    "read_history",
]

#: Where the history lives, relative to the work directory.
HISTORY = Path("monitoring") / "history.parquet"
HISTORY_COLUMNS = (
    "as_of",
    "verdict",
    "max_psi",
    "max_psi_column",
    "backtest_as_of",
    "backtest_auc",
    "reference_auc",
    "tier_change_share",
    "snapshots",
    "monitored_at",
)
_COLOURS = {"ok": "tab:green", "watch": "tab:orange", "retrain": "tab:red"}


def history_row(report: dict[str, Any]) -> dict[str, Any]:
    """The history row of one monitoring report (``churnclv._monitor.monitor``'s result).

    Examples
    --------
    >>> from churnclv._monitor_history import history_row
    >>> report = {"as_of": "2023-10-01", "verdict": "retrain", "snapshots": ["2023-04-01"],
    ...           "backtest": [{"as_of": "2023-04-01", "churn_roc_auc": 0.71}],
    ...           "drift": {"psi": {"x": 0.3, "y": 0.1}, "tier_change_share": 0.2},
    ...           "reference_auc": 0.8}
    >>> row = history_row(report)
    >>> row["max_psi"], row["max_psi_column"], row["backtest_auc"], row["tier_change_share"]
    (0.3, 'x', 0.71, 0.2)
    """
    drifted = report.get("drift") or {}
    psi = drifted.get("psi") or {}
    top = max(psi.items(), key=lambda kv: kv[1]) if psi else (None, math.nan)
    backtests = report.get("backtest") or []
    last = backtests[-1] if backtests else {}
    auc = last.get("churn_roc_auc")
    ref = report.get("reference_auc")
    share = drifted.get("tier_change_share")
    return {
        "as_of": pd.Timestamp(report["as_of"]),
        "verdict": str(report["verdict"]),
        "max_psi": float(top[1]),
        "max_psi_column": top[0],
        "backtest_as_of": pd.Timestamp(last["as_of"]) if last else pd.NaT,
        "backtest_auc": float(auc) if auc is not None else math.nan,
        "reference_auc": float(ref) if ref is not None else math.nan,
        "tier_change_share": float(share) if share is not None else math.nan,
        "snapshots": len(report.get("snapshots") or []),
        "monitored_at": pd.Timestamp(datetime.now(UTC)),
    }


def read_history(workdir: str | Path) -> pd.DataFrame:
    """The history in ``workdir`` (oldest first); an empty frame when there is none.

    Raises whatever reading the Parquet file raises when the file is corrupt.
    """
    path = Path(workdir) / HISTORY
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in HISTORY_COLUMNS})
    return pd.read_parquet(path).sort_values("as_of", kind="stable").reset_index(drop=True)


def append_history(
    report: dict[str, Any], workdir: str | Path
) -> tuple[Path, pd.DataFrame, str | None]:
    """Add ``report``'s row to the history (replacing the same ``as_of``); write it atomically.

    Returns the path, the whole history and a warning when an unreadable
    history file had to be started afresh (its rows are lost, the file is
    named in the warning).
    """
    path = Path(workdir) / HISTORY
    problem = None
    try:
        old = read_history(workdir)
    except Exception as exc:  # a corrupt history must not stop the monitoring
        problem = f"monitoring history {path} cannot be read ({type(exc).__name__}); started anew"
        old = read_history(Path(workdir) / "__none__")
    row = pd.DataFrame([history_row(report)])
    old = old[pd.to_datetime(old["as_of"]) != row["as_of"].iloc[0]]
    frames = [f for f in (old, row) if len(f)]
    history = pd.concat(frames, ignore_index=True) if len(frames) > 1 else row
    history = history.sort_values("as_of", kind="stable").reset_index(drop=True)
    return atomic_write_parquet(history[list(HISTORY_COLUMNS)], path), history, problem


def _finite(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").dropna()


def history_sentence(history: pd.DataFrame, thresholds: Monitoring | None = None) -> str:
    """One sentence on the history: its span, how PSI, AUC and tier changes moved, the verdict.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv._monitor_history import history_sentence
    >>> h = pd.DataFrame({
    ...     "as_of": pd.to_datetime(["2023-06-30", "2023-08-01", "2023-10-01"]),
    ...     "verdict": ["ok", "retrain", "retrain"],
    ...     "max_psi": [0.04, 0.3, 0.61], "backtest_auc": [0.78, float("nan"), 0.70],
    ...     "tier_change_share": [0.03, 0.2, 0.29]})
    >>> print(history_sentence(h))
    3 checks from 2023-06-30 to 2023-10-01: largest PSI 0.040 -> 0.610 (retrain at 0.25), \
backtest churn AUC 0.780 -> 0.700, value tier changes 3% -> 29%; verdict retrain since \
2023-08-01 (2 checks).
    """
    thresholds = thresholds or Monitoring()
    if history.empty:
        return "no monitoring history yet: run `churnclv monitor`."
    dates = pd.to_datetime(history["as_of"]).dt.date.astype(str).tolist()
    n = len(history)
    span = f"1 check on {dates[0]}" if n == 1 else f"{n} checks from {dates[0]} to {dates[-1]}"
    parts = []
    for column, label, fmt, note in (
        ("max_psi", "largest PSI", "{:.3f}", f" (retrain at {thresholds.psi_retrain:g})"),
        ("backtest_auc", "backtest churn AUC", "{:.3f}", ""),
        ("tier_change_share", "value tier changes", "{:.0%}", ""),
    ):
        values = _finite(history[column]) if column in history else pd.Series(dtype=float)
        if values.empty:
            continue
        first, last = fmt.format(values.iloc[0]), fmt.format(values.iloc[-1])
        moved = last if len(values) == 1 else f"{first} -> {last}"
        parts.append(f"{label} {moved}{note}")
    verdicts = history["verdict"].astype(str).tolist()
    start = n - 1
    while start > 0 and verdicts[start - 1] == verdicts[-1]:
        start -= 1
    tail = f"verdict {verdicts[-1]}"
    if n > 1:
        count = n - start
        tail += f" since {dates[start]} ({count} check{'s' if count > 1 else ''})"
    return f"{span}: {', '.join(parts)}; {tail}." if parts else f"{span}; {tail}."


def history_figure(history: pd.DataFrame, thresholds: Monitoring | None = None) -> Figure:
    """Largest PSI, backtest churn AUC and tier change share by monitoring date.

    Dashed lines are the policy's watch and retrain thresholds; each point is
    coloured by that date's verdict (green ok, orange watch, red retrain).
    """
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    thresholds = thresholds or Monitoring()
    fig = Figure(figsize=(8, 7.5), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    dates = pd.to_datetime(history["as_of"])
    colours = [_COLOURS.get(str(v), "grey") for v in history["verdict"]]
    panels: tuple[tuple[str, str, dict[str, float]], ...] = (
        ("max_psi", "largest PSI (any feature or score)",
         {"watch": thresholds.psi_watch, "retrain": thresholds.psi_retrain}),
        ("backtest_auc", "backtest churn AUC (latest ended snapshot)", {}),
        ("tier_change_share", "share changing value tier",
         {"watch": thresholds.tier_change_watch}),
    )  # fmt: skip
    for ax, (column, title, lines) in zip(axes, panels, strict=True):
        values = pd.to_numeric(history[column], errors="coerce")
        ax.plot(dates, values, color="grey", linewidth=1, zorder=1)
        ax.scatter(dates, values, c=colours, s=36, zorder=2)
        for name, level in lines.items():
            ax.axhline(level, linestyle="--", linewidth=1, color=_COLOURS[name], label=name)
        if column == "backtest_auc" and "reference_auc" in history:
            ref = _finite(history["reference_auc"])
            if not ref.empty:
                ax.axhline(ref.iloc[-1], linestyle=":", color="black", label="validation AUC")
        if column != "backtest_auc":
            ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left")
    if len(dates):  # a margin, and a range even for a single date
        pad = max((dates.max() - dates.min()) * 0.05, pd.Timedelta(days=7))
        axes[-1].set_xlim(dates.min() - pad, dates.max() + pad)
    locator = AutoDateLocator(maxticks=8)
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes[-1].set_xlabel("monitoring date (as_of)")
    fig.suptitle("Champion monitoring over time")
    return fig
