"""The event vocabulary in the `features` and `monitor` verbs (issue 19 follow-up)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import churnclv.training
from churnclv import ChurnclvError, InputTables
from churnclv._cli_monitor import champion_vocabulary
from churnclv._io import atomic_write_parquet
from churnclv._monitor import monitor
from churnclv.cli import main

TX = pd.DataFrame(
    {
        "customer_id": ["a", "a", "b", "b"],
        "ts": pd.to_datetime(["2024-01-05", "2024-04-01", "2024-02-01", "2024-05-02"]),
        "amount": [10.0, 20.0, 5.0, 7.0],
    }
)
EVENTS = pd.DataFrame(
    [
        ("a", "2024-01-06", "app_open", None),
        ("a", "2024-03-07", "app_open", None),
        ("b", "2024-02-08", "app_open", None),
        ("b", "2024-02-09", "video_play", 12.5),
        ("b", "2024-04-10", "video_play", None),
        ("a", "2024-04-11", "rare_one", None),
        ("a", "2024-07-01", "after_as_of", None),
    ],
    columns=["customer_id", "ts", "event_type", "score"],
).assign(ts=lambda f: pd.to_datetime(f["ts"]))


def test_features_verb_chooses_the_event_types_from_the_data(tmp_path: Path) -> None:
    """`features` picks the types as `train` does: top K, named ones, valued ones."""
    tx, ev = tmp_path / "tx.csv", tmp_path / "ev.csv"
    TX.to_csv(tx, index=False)
    EVENTS.to_csv(ev, index=False)
    out = tmp_path / "f.parquet"
    args = ["features", "--transactions", str(tx), "--events", str(ev), "--as-of", "2024-06-01"]
    args += ["--out", str(out), "--event-value-col", "score", "--event-top-k", "2"]
    assert main([*args, "--event-types", "Complaint"]) == 0
    cols = set(pd.read_parquet(out).columns)
    assert {"ev_app_open_30d", "ev_video_play_30d", "ev_complaint_30d"} <= cols
    assert "ev_video_play_value_last" in cols and "ev_app_open_value_last" not in cols
    assert not any(c.startswith(("ev_rare_one", "ev_after_as_of", "ev_login")) for c in cols)
    frame = pd.read_parquet(out).set_index("customer_id")
    assert frame.loc["a", "ev_app_open_90d"] == 1 and frame.loc["b", "days_since_video_play"] == 52
    assert frame.loc["b", "ev_video_play_value_last"] == 12.5
    assert main([*args[:-1], "1"]) == 0  # top 1: the most frequent type alone
    cols = set(pd.read_parquet(out).columns)
    assert "ev_app_open_30d" in cols and "ev_video_play_30d" not in cols


def _snapshots(work: Path) -> None:
    """Two snapshots of one model version (scores by a fixed rule: no model needed)."""
    for as_of in ("2024-05-01", "2024-06-01"):
        snap = pd.DataFrame(
            {
                "customer_id": ["a", "b"],
                "churn_probability": [0.2, 0.7],
                "predicted_value": [30.0, 5.0],
                "value_tier": ["high", "low"],
                "as_of": pd.Timestamp(as_of),
                "model_version": "churn:v1+value:v1",
                "churn_horizon_days": 90.0,
                "value_horizon_days": 90.0,
            }
        )
        atomic_write_parquet(snap, work / "snapshots" / f"{as_of}.parquet")


def test_monitor_drift_covers_the_champion_event_types(tmp_path: Path) -> None:
    """The drift compares the vocabulary's event columns; without one, the defaults."""
    _snapshots(tmp_path)
    tables = InputTables(TX, EVENTS.rename(columns={"score": "value"}), None)
    vocab = (("app_open", "video_play"), ("video_play",))
    psi = monitor(tables, as_of="2024-06-02", workdir=tmp_path, event_vocabulary=vocab)
    names = set(psi["drift"]["psi"])
    assert {"ev_app_open_30d", "ev_video_play_90d", "ev_video_play_value_last"} <= names
    assert not any(n.startswith("ev_login") for n in names)
    default = set(monitor(tables, as_of="2024-06-02", workdir=tmp_path)["drift"]["psi"])
    assert "ev_login_30d" in default and not any("app_open" in n for n in default)


def test_champion_vocabulary_of_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The champion's recorded vocabulary; None without a champion or with a broken one."""
    assert champion_vocabulary(f"sqlite:///{tmp_path / 'none.db'}") is None
    churn = SimpleNamespace(
        event_vocabulary_={"event_types": ["app_open", "nps"], "valued_event_types": ["nps"]}
    )
    fake = SimpleNamespace(churn=churn, value=None, uplift=None)
    monkeypatch.setattr(churnclv.training, "load_champion", lambda uri: fake)
    assert champion_vocabulary("sqlite:///x.db") == (("app_open", "nps"), ("nps",))

    def broken(uri: str) -> None:
        raise ChurnclvError("cannot load churnclv-churn@champion (version 1): gone")

    monkeypatch.setattr(churnclv.training, "load_champion", broken)
    assert champion_vocabulary("sqlite:///x.db") is None
    assert "default event types" in capsys.readouterr().err
