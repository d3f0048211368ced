"""Child processes of ``benchmarks/features.py``: each measured run in its own
process with a time limit and an RSS cap, and the Featuretools peer in its own
virtualenv.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DUCKDB_TIMEOUT_S = 360
PEER_TIMEOUT_S = 480
PEER_SCRIPT = ROOT / "benchmarks" / "_peers" / "featuretools_rfm.py"


def _spawn(cmd: list[str], timeout_s: int, cwd: Path, rss_cap: int) -> dict[str, Any]:
    """Run a child with a time limit and an RSS cap; its last stdout line is its JSON result.

    The child is killed when it runs past ``timeout_s`` or its RSS exceeds
    ``rss_cap`` bytes (the machine is shared: no run may push it into swap or
    the OOM killer). ``cwd`` is where DuckDB spills (``.tmp``), outside the
    repository.
    """
    import psutil

    t0 = time.perf_counter()
    with subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        watched = psutil.Process(proc.pid)
        reason = ""
        peak_seen = 0
        while proc.poll() is None:
            try:
                peak_seen = max(peak_seen, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            if peak_seen > rss_cap:
                reason = f"RSS passed the {rss_cap / 2**30:.0f} GiB cap (killed)"
            elif time.perf_counter() - t0 > timeout_s:
                reason = f"did not finish within {timeout_s} s (killed)"
            if reason:
                proc.kill()
                break
            time.sleep(0.25)
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if reason:
        return {"ok": False, "error": reason, "after_s": round(wall, 1)}
    lines = stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (stderr or stdout)[-1500:]
        return {"ok": False, "error": f"exit status {proc.returncode}: {tail}"}
    out = json.loads(lines[-1])
    out["ok"] = True
    out["child_wall_s"] = wall
    return out


def _engine_cmd(
    engine: str,
    paths: dict[str, Path],
    cutoffs: list[str],
    *,
    repeat: int,
    save: Path | None = None,
    subset: int = 0,
    tx_only: bool = False,
) -> list[str]:
    """The command line of one measured child run (``--child duckdb|duckdb-parquet|...``)."""
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "features.py"),  # the script, in its --child mode
        "--child",
        engine,
        "--cutoffs",
        json.dumps(cutoffs),
        "--repeat",
        str(repeat),
    ]
    if tx_only:
        cmd += ["--transactions", str(paths["peer_transactions"])]
    else:
        cmd += [
            "--transactions",
            str(paths["transactions"]),
            "--events",
            str(paths["events"]),
            "--customers",
            str(paths["customers"]),
        ]
    if save is not None:
        cmd += ["--save", str(save)]
    if subset:
        cmd += ["--subset-customers", str(subset)]
    return cmd


def _ensure_ft_venv(venv: Path) -> tuple[Path | None, str]:
    """The peer interpreter, creating the venv when absent; or None and why not."""
    python = venv / "bin" / "python"
    if python.exists():
        return python, "existing venv"
    steps = [
        ["python3", "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "featuretools", "pandas<3", "pyarrow"],
    ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            return None, f"{' '.join(step)} failed: {(proc.stderr or proc.stdout)[-800:]}"
    return python, "created by this run"


def _peer(
    args: argparse.Namespace,
    paths: dict[str, Path],
    work: Path,
    our_cutoff: str,
    spawn: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """Featuretools DFS vs build_features on the same transaction subset."""
    python, how = _ensure_ft_venv(Path(args.ft_venv))
    if python is None:
        return {"ok": False, "error": how}
    ft_out = work / "ft_matrix.parquet"
    ft = spawn(
        [
            str(python),
            str(PEER_SCRIPT),
            "--transactions",
            str(paths["peer_transactions"]),
            "--cutoff",
            our_cutoff,
            "--out",
            str(ft_out),
        ],
        PEER_TIMEOUT_S,
    )
    ft["venv"] = f"{args.ft_venv} ({how})"
    ours_out = work / "duckdb_peer_subset.parquet"
    ours = spawn(
        _engine_cmd("duckdb-rfm", paths, [our_cutoff], repeat=5, save=ours_out, tx_only=True),
        DUCKDB_TIMEOUT_S,
    )
    full = spawn(
        _engine_cmd("duckdb", paths, [our_cutoff], repeat=3, tx_only=True), DUCKDB_TIMEOUT_S
    )
    result: dict[str, Any] = {"featuretools": ft, "duckdb": ours, "duckdb_full_tx_set": full}
    if ft.get("ok") and ours.get("ok"):
        # the same frame in and the same RFM values out on both sides (checked below):
        # Featuretools' EntitySet build plus its computation against rfm_summary's call
        # (which derives purchase days and flags and registers the frame inside it)
        result["ratio_featuretools_from_frame_over_duckdb"] = (
            ft["same_rfm_from_frame_s"] / ours["best_s"]
        )
        # stricter: Featuretools' computation alone, its EntitySet already built
        result["ratio_featuretools_over_duckdb"] = ft["same_rfm_s"] / ours["best_s"]
        # earlier runs' lighter peer set (every row counted, no purchase days, no tenure)
        result["ratio_featuretools_light_set_over_duckdb"] = ft["dfs_s"] / ours["best_s"]
        result["agreement"] = _peer_agreement(ft_out, ours_out)
    if ft.get("ok") and full.get("ok"):
        result["ratio_featuretools_over_duckdb_full_tx_set"] = ft["same_rfm_s"] / full["best_s"]
    return result


def _peer_agreement(ft_out: Path, ours_out: Path) -> dict[str, Any]:
    """Check that both sides computed the same RFM numbers (not timed)."""
    import numpy as np
    import pandas as pd

    ft = pd.read_parquet(ft_out).set_index("customer_id")
    ours = pd.read_parquet(ours_out).set_index("customer_id")
    # Featuretools keeps customers with only returns before the cutoff (NaN purchase
    # features); rfm_summary has no row for them.
    buyers = ft[ft["n_purchases"] > 0]
    common = ours.index.intersection(buyers.index)
    f, o = buyers.loc[common], ours.loc[common]
    diffs = {
        "monetary_total": np.abs(f["monetary_total"] - o["monetary_total"]),
        "n_purchases": np.abs(f["n_purchases"] - o["n_purchases"]),
        "frequency": np.abs((f["n_days"] - 1) - o["frequency"]),
        "recency_days": np.abs(f["recency_s"] / 86400 - o["recency_days"]),
        "tenure_days": np.abs(f["tenure_s"] / 86400 - o["tenure_days"]),
    }
    return {
        "customers_compared": len(common),
        "customers_featuretools_with_purchases": len(buyers),
        "customers_duckdb": len(ours),
        "max_abs_diff": {k: float(v.max()) for k, v in diffs.items()},
        "same_values": bool(
            len(common) == len(ours) == len(buyers)
            and all(float(v.max()) <= 1e-6 for v in diffs.values())
        ),
    }
