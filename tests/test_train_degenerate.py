"""Degenerate histories never crash a training, and a failed training cleans up its own store.

Training windows whose labels leave nothing to learn (every customer churned, nobody
spent) fall back to BG/NBD, or stop with exit 2 and what to change when BG/NBD cannot
be fitted either. After an unexpected error, the clean-up marks the run FAILED in the
run's own store and never creates MLflow's default store in the current directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lightgbm.basic import LightGBMError

from churnclv import InputError, InputTables
from churnclv.cli import main
from churnclv.training import _fit as fit_stage
from churnclv.training import _train as train_stage
from churnclv.training import train
from churnclv.training._fit import label_problem

AS_OF = "2024-01-01"
SHORT = ["--churn-horizon-days", "14", "--value-horizon-days", "14"]


def _one_time_buyers(n: int = 400) -> pd.DataFrame:
    """Customers who each bought exactly once during 2023: nobody ever buys again."""
    rng = np.random.default_rng(0)
    ts = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.uniform(0, 365, n), unit="D")
    ids = [f"c{i}" for i in range(n)]
    return pd.DataFrame({"customer_id": ids, "ts": ts, "amount": rng.gamma(2, 20, n).round(2)})


def _early_repeat_buyers(n: int = 300) -> pd.DataFrame:
    """Customers who bought 1-3 times in the first 50 days of 2023 and never after."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        for day in np.sort(rng.uniform(0, 50, rng.integers(1, 4))):
            rows.append((f"c{i}", pd.Timestamp("2023-01-01") + pd.Timedelta(days=float(day)),
                         round(float(rng.gamma(2, 20)), 2)))  # fmt: skip
    return pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])


@pytest.fixture
def default_mlflow_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """An empty current directory, with MLflow's tracking URI unset (its default store)."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    yield cwd
    if saved[0] is not None:
        mlflow.set_tracking_uri(saved[0])
    if saved[1] is not None:
        mlflow.set_registry_uri(saved[1])


def _no_default_store(cwd: Path) -> None:
    assert not (cwd / "mlflow.db").exists()
    assert not (cwd / "mlruns").exists()
    assert list(cwd.iterdir()) == []


def _runs(uri: str) -> pd.DataFrame:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("churnclv")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    return pd.DataFrame({"status": [r.info.status for r in runs]})


def test_label_problem_names_the_windows_and_what_to_change() -> None:
    """One churn class, or no spend at all, is a reason; labels with signal are not."""
    cuts = pd.to_datetime(["2024-01-01", "2024-01-31"] * 2)
    churn = pd.DataFrame({"as_of": cuts, "churned": [0, 0, 0, 0]})
    why = label_problem("churn", churn, 30)
    assert why is not None and why.startswith("every churn label is 0")
    assert "--churn-horizon-days" in why and "2024-01-01 .. 2024-01-31" in why
    assert label_problem("churn", churn.assign(churned=[0, 1, 0, 0]), 30) is None
    value = pd.DataFrame({"as_of": cuts, "future_value": [0.0, 0.0, -5.0, 0.0]})
    why = label_problem("value", value, 30)
    assert why is not None and why.startswith("every value label is zero")
    assert "--value-horizon-days" in why
    assert label_problem("value", value.assign(future_value=[0, 0, 1.5, 0]), 30) is None


def test_all_zero_labels_fall_back_to_bgnbd(tmp_path: Path) -> None:
    """Repeat buyers who all stopped long before as_of, 14-day horizons: every churn label
    is 1 and every value label zero, so both models are the BG/NBD fallback (the Tweedie
    fit of these labels would fail with "sum of labels is zero")."""
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    result = train(
        InputTables(_early_repeat_buyers()),
        as_of=AS_OF,
        tracking_uri=uri,
        churn_horizon_days=14,
        value_horizon_days=14,
    )
    assert result.model_kinds == {"churn": "btyd_fallback", "value": "btyd_fallback"}
    assert result.fallbacks["churn"].startswith(
        "every churn label is 1: no customer bought again within 14 days of any of the"
    )
    assert result.fallbacks["value"].startswith(
        "every value label is zero: no customer spent anything within 14 days after any of the"
    )
    assert list(_runs(uri)["status"]) == ["FINISHED"]


def test_one_time_buyers_stop_with_exit_2_and_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], default_mlflow_store: Path
) -> None:
    """Nobody ever bought twice: the churn labels are all 1 and BG/NBD cannot be fitted,
    so `train` exits 2 with one line saying why and what to change (library: InputError)."""
    tx = tmp_path / "tx.csv"
    _one_time_buyers().to_csv(tx, index=False)
    work = tmp_path / "work"
    args = ["train", "--transactions", str(tx), "--as-of", AS_OF, *SHORT]
    assert main([*args, "--workdir", str(work)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: every churn label is 1: no customer bought again within 14 days")
    assert "use a longer --churn-horizon-days or more history" in err
    assert "the BG/NBD fallback cannot be fitted either (too few repeat buyers" in err
    _no_default_store(default_mlflow_store)

    with pytest.raises(InputError, match="every churn label is 1"):
        train(
            InputTables(_one_time_buyers()),
            as_of=AS_OF,
            tracking_uri=f"sqlite:///{tmp_path}/lib.db",
            churn_horizon_days=14,
            value_horizon_days=14,
        )


class _Unfittable:
    """A value estimator whose fit fails the way LightGBM's Tweedie does on zero labels."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> _Unfittable:
        raise LightGBMError("[tweedie]: sum of labels is zero")


def test_a_lightgbm_error_in_a_value_fit_falls_back(
    generated_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value candidate whose LightGBM fit fails is left out of the selection, and when
    no candidate can be fitted the value model is the BG/NBD fallback, saying why."""
    monkeypatch.setitem(fit_stage.VALUE_CANDIDATES, "tweedie", _Unfittable)
    monkeypatch.setitem(fit_stage.VALUE_CANDIDATES, "two_part", _Unfittable)
    tables = InputTables(pd.read_parquet(generated_dir / "transactions.parquet"))
    result = train(tables, as_of=AS_OF, tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    assert result.model_kinds == {"churn": "lightgbm", "value": "btyd_fallback"}
    assert result.fallbacks == {
        "value": "the value model cannot be trained: [tweedie]: sum of labels is zero"
    }


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom")


def test_an_unexpected_error_before_the_run_creates_no_store_in_cwd(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    default_mlflow_store: Path,
) -> None:
    """A stage failing before any MLflow run exists: exit 1, and the clean-up touches no
    store (MLflow's default would be ./mlflow.db in the current directory)."""
    monkeypatch.setattr(train_stage, "fit_value", _boom)
    tx = tmp_path / "tx.csv"
    _early_repeat_buyers().to_csv(tx, index=False)
    args = ["train", "--transactions", str(tx), "--as-of", AS_OF, *SHORT]
    assert main([*args, "--workdir", str(tmp_path / "work")]) == 1
    assert "error: unexpected RuntimeError: boom" in capsys.readouterr().err
    _no_default_store(default_mlflow_store)


def test_an_unexpected_error_in_the_run_fails_it_in_its_own_store(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    default_mlflow_store: Path,
) -> None:
    """A stage failing inside the MLflow run (registration): exit 1, the run is FAILED in
    the store given by --tracking-uri, and nothing is written to the current directory."""
    monkeypatch.setattr(train_stage, "register_models", _boom)
    tx = tmp_path / "tx.csv"
    _early_repeat_buyers().to_csv(tx, index=False)
    uri = f"sqlite:///{tmp_path}/elsewhere/mlruns.db"
    (tmp_path / "elsewhere").mkdir()
    args = ["train", "--transactions", str(tx), "--as-of", AS_OF, *SHORT, "--tracking-uri", uri]
    assert main([*args, "--workdir", str(tmp_path / "work")]) == 1
    assert "error: unexpected RuntimeError: boom" in capsys.readouterr().err
    _no_default_store(default_mlflow_store)
    assert list(_runs(uri)["status"]) == ["FAILED"]
