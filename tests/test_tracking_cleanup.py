"""Clean-up after a failure touches only the stores where a run of this process is left open."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnclv.training import _tracking


def _runs(uri: str) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(_tracking.EXPERIMENT)
    return [r.info.status for r in client.search_runs([exp.experiment_id])]


def test_a_store_whose_runs_ended_is_never_contacted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a run ends cleanly its store (e.g. a tracking server since shut down) is not
    part of a later clean-up, so a later failure cannot hang on it."""
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    _tracking.start_tracking(uri)
    with _tracking.tracked_run("ends cleanly", uri):
        pass
    assert uri not in _tracking._STORES
    contacted: list[str] = []
    monkeypatch.setattr(_tracking, "_fail_own_runs", lambda owner, s: contacted.append(s))
    _tracking.fail_interrupted_runs()
    assert contacted == []
    assert _runs(uri) == ["FINISHED"]


def test_a_run_left_running_is_failed_by_the_later_clean_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the store is busy while the error propagates, the run stays listed and the
    clean-up after the traceback is gone fails it, then forgets the store."""
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    real = _tracking._fail_own_runs
    _tracking.start_tracking(uri)
    monkeypatch.setattr(_tracking, "_fail_own_runs", lambda owner, s: False)  # store busy
    with pytest.raises(RuntimeError), _tracking.tracked_run("fails", uri):
        raise RuntimeError("boom")
    assert uri in _tracking._STORES
    monkeypatch.setattr(_tracking, "_fail_own_runs", real)
    _tracking.fail_interrupted_runs()
    assert uri not in _tracking._STORES
    assert _runs(uri) == ["FAILED"]
