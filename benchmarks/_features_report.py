"""Reporting helpers of ``benchmarks/features.py``: output checks, the version
record and the readable result table.

Kept apart so the benchmark script stays the measurement driver; it imports this
module (``benchmarks/`` is on ``sys.path`` when the script runs).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _check_match(duck: Path, oracle: Path) -> str:
    """Compare the two saved frames with the oracle's own assertion (not timed)."""
    import pandas as pd

    sys.path.insert(0, str(ROOT / "tests"))
    from _oracle import assert_features_match

    d, o = pd.read_parquet(duck), pd.read_parquet(oracle)
    try:
        assert_features_match(d, o)
    except AssertionError as exc:
        return f"MISMATCH: {_diff_summary(d, o) or str(exc)[:300]}"
    return "equal (every column, every row, floats to 1e-6)"


def _diff_summary(duck: Any, oracle: Any) -> str:
    """Which numeric columns differ (beyond 1e-6) on how many rows."""
    import pandas as pd

    d = duck.sort_values(["as_of", "customer_id"], ignore_index=True)
    o = oracle.sort_values(["as_of", "customer_id"], ignore_index=True)
    if len(d) != len(o) or not d["customer_id"].equals(o["customer_id"]):
        return f"rows differ: {len(d)} vs {len(o)}"
    parts = []
    for col in d.columns:
        if col in o.columns and pd.api.types.is_numeric_dtype(d[col]):
            a, b = d[col].astype("float64"), o[col].astype("float64")
            bad = ((a - b).abs() > 1e-6) | (a.isna() != b.isna())
            if bad.any():
                first = d.loc[bad.idxmax(), "customer_id"]
                parts.append(f"{col}: {int(bad.sum())} of {len(d)} rows (first {first})")
    return "; ".join(parts)


def _versions() -> dict[str, str]:
    """Versions of the packages under test (this venv)."""
    import duckdb
    import numpy as np
    import pandas as pd

    return {
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
    }


def _duckdb_threads() -> int:
    """DuckDB's default thread count on this machine."""
    import duckdb

    con = duckdb.connect()
    try:
        return int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    finally:
        con.close()


def _fmt_s(x: float | None) -> str:
    """Seconds for the table."""
    return "-" if x is None else f"{x:8.2f} s"


def _gib(x: float | None) -> str:
    """Bytes as GiB for the table."""
    return "-" if x is None else f"{x / 2**30:.2f} GiB"


def _table(report: dict[str, Any]) -> str:
    """The readable summary table of a report."""
    one, multi, peer = report["single_cutoff"], report["multi_cutoff"], report["peer"]
    d1 = one["duckdb"]
    lines = [
        f"features benchmark ({report['size']}), load avg at start "
        f"{report['machine']['load_avg_at_start']}, {report['machine']['cpus']} cpus",
        f"{'measurement':58} {'value':>14}",
        "-" * 73,
    ]

    def row(name: str, value: str) -> None:
        lines.append(f"{name:58} {value:>14}")

    row(f"1 cutoff, full set, DuckDB ({one['size_label']})", _fmt_s(d1.get("best_s")))
    row("  DuckDB peak RSS (incl. inputs in pandas)", _gib(d1.get("peak_rss_bytes")))
    row("  DuckDB peak RSS minus RSS after load", _gib(one.get("duckdb_rss_increase_bytes")))
    dp1 = one.get("duckdb_from_parquet", {})
    if dp1.get("ok"):
        row("1 cutoff, DuckDB scanning the Parquet files (reading incl.)", _fmt_s(dp1["best_s"]))
        row("  peak RSS (no inputs in pandas)", _gib(dp1["peak_rss_bytes"]))
    if one.get("oracle", {}).get("ok"):
        row(
            f"1 cutoff, full set, pandas oracle ({one['size_label']})",
            _fmt_s(one["oracle"]["best_s"]),
        )
    else:
        row(f"1 cutoff, pandas oracle ({one['size_label']})", "did not finish")
    cmp_ = one.get("comparison")
    if cmp_:
        row(f"  oracle / DuckDB ({cmp_['size_label']})", f"{cmp_['ratio']:.1f}x")
        row("  results", "equal" if cmp_["match"].startswith("equal") else "MISMATCH")
    if multi.get("ok"):
        row(
            f"10 monthly cutoffs, DuckDB ({multi['size_label']})",
            _fmt_s(multi["duckdb_10"]["best_s"]),
        )
        row("  10 cutoffs / 1 cutoff", f"{multi['ratio_10_over_1']:.2f}x")
        row("  10-cutoff peak RSS", _gib(multi["duckdb_10"]["peak_rss_bytes"]))
    if multi.get("ratio_10_over_1_from_parquet"):
        row("10 cutoffs from Parquet", _fmt_s(multi["duckdb_from_parquet_10"]["best_s"]))
        row("  10 / 1 from Parquet", f"{multi['ratio_10_over_1_from_parquet']:.2f}x")
    if peer.get("ratio_featuretools_over_duckdb"):
        row(
            "Featuretools, frame to the same RFM values",
            _fmt_s(peer["featuretools"]["same_rfm_from_frame_s"]),
        )
        row("  of which the EntitySet build", _fmt_s(peer["featuretools"]["entityset_s"]))
        row("  of which calculate_feature_matrix", _fmt_s(peer["featuretools"]["same_rfm_s"]))
        row("Featuretools dfs, earlier lighter set", _fmt_s(peer["featuretools"]["dfs_s"]))
        row("DuckDB rfm_summary, same rows", _fmt_s(peer["duckdb"]["best_s"]))
        if peer.get("duckdb_full_tx_set", {}).get("ok"):
            row(
                "DuckDB build_features (tx-only full set), same rows",
                _fmt_s(peer["duckdb_full_tx_set"]["best_s"]),
            )
        row(
            "  featuretools from the frame / DuckDB",
            f"{peer['ratio_featuretools_from_frame_over_duckdb']:.0f}x",
        )
        row(
            "  featuretools computation alone / DuckDB",
            f"{peer['ratio_featuretools_over_duckdb']:.0f}x",
        )
        row(
            "  featuretools lighter set / DuckDB",
            f"{peer['ratio_featuretools_light_set_over_duckdb']:.0f}x",
        )
        row("  same values (1e-6)", str(peer.get("agreement", {}).get("same_values")))
    elif peer:
        row("Featuretools peer", "failed/skipped")
    lines.append("-" * 73)
    for name, goal in report["goals"].items():
        lines.append(f"goal {name}: {goal['target']} -> {goal['measured']} [{goal['status']}]")
    return "\n".join(lines)


def _goal(target: str, measured: str, met: bool | None) -> dict[str, str]:
    """One goal's target, measured value and status."""
    status = "not measured" if met is None else ("met" if met else "NOT met")
    return {"target": target, "measured": measured, "status": status}
