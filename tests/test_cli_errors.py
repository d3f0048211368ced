"""Bad input gets one clear line naming file and column, exit code 2, and no output file."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnclv.cli import main

GOOD = "customer_id,ts,amount\nc1,2024-01-05,10.0\nc1,2024-02-01,12.5\nc2,2024-01-20,3.0\n"


def _run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err.strip()


def _features(tx: Path, out: Path, as_of: str = "2024-03-01") -> list[str]:
    return ["features", "--transactions", str(tx), "--as-of", as_of, "--out", str(out)]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            "customer_id,ts,value\nc1,2024-01-05,10.0\n",
            ["missing required column 'amount'"],
            id="missing-column",
        ),
        pytest.param(
            "customer_id,ts,amount\nc1,2024-01-05,10.0\nc2,yesterday-ish,3.0\n",
            ["column 'ts'", "'yesterday-ish'"],
            id="unparseable-timestamp",
        ),
        pytest.param(
            "customer_id,ts,amount\nc1,2024-01-05,10.0\nc2,2024-01-06,ten euros\n",
            ["column 'amount'", "'ten euros'"],
            id="non-numeric-amount",
        ),
        pytest.param("", ["empty"], id="empty-file"),
        pytest.param("customer_id,ts,amount\n", ["empty"], id="header-only-file"),
    ],
)
def test_bad_transactions_file_exits_2_naming_file_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: list[str]
) -> None:
    """Each malformed transactions file is rejected with one line naming the file and problem."""
    tx = tmp_path / "tx.csv"
    tx.write_text(content)
    out = tmp_path / "features.parquet"
    code, err = _run(capsys, _features(tx, out))
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert str(tx) in err
    for fragment in expected:
        assert fragment in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tx]


def test_missing_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A transactions path that does not exist is named in a one-line error."""
    missing = tmp_path / "nope.parquet"
    out = tmp_path / "f.parquet"
    code, err = _run(capsys, _features(missing, out))
    assert code == 2
    assert err == f"error: transactions file not found: {missing}"
    assert not out.exists()


def test_as_of_before_all_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An as_of before every purchase is an input error naming the file and the first purchase."""
    tx = tmp_path / "tx.csv"
    tx.write_text(GOOD)
    out = tmp_path / "f.parquet"
    code, err = _run(capsys, _features(tx, out, as_of="2023-06-01"))
    assert code == 2
    assert str(tx) in err and "before all data" in err and "2024-01-05" in err
    assert not out.exists()


def test_unparseable_as_of_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --as-of that is not a date is a usage error."""
    tx = tmp_path / "tx.csv"
    tx.write_text(GOOD)
    code, err = _run(capsys, _features(tx, tmp_path / "f.parquet", as_of="soon"))
    assert code == 2
    assert "--as-of 'soon'" in err


def test_bad_events_file_names_event_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An events file without its event type column is rejected naming that column."""
    tx = tmp_path / "tx.csv"
    tx.write_text(GOOD)
    ev = tmp_path / "ev.csv"
    ev.write_text("customer_id,ts,kind\nc1,2024-01-05,login\n")
    out = tmp_path / "f.parquet"
    code, err = _run(capsys, [*_features(tx, out), "--events", str(ev)])
    assert code == 2
    assert str(ev) in err and "'event_type'" in err
    assert not out.exists()


def test_unknown_option_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown flag exits 2 like every usage error."""
    code, err = _run(capsys, ["features", "--no-such-flag"])
    assert code == 2
    assert "no-such-flag" in err


def test_good_file_writes_features(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same command on a valid file exits 0 and writes one row per purchasing customer."""
    import pandas as pd

    tx = tmp_path / "tx.csv"
    tx.write_text(GOOD)
    out = tmp_path / "f.parquet"
    code, _ = _run(capsys, _features(tx, out))
    assert code == 0
    frame = pd.read_parquet(out)
    assert frame["customer_id"].tolist() == ["c1", "c2"]


def test_duplicates_and_missing_ids_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exact duplicates and rows without a customer id are counted on stderr, not silently used."""
    tx = tmp_path / "tx.csv"
    tx.write_text(GOOD + "c1,2024-01-05,10.0\n,2024-01-07,4.0\n")
    code, err = _run(capsys, _features(tx, tmp_path / "f.parquet"))
    assert code == 0
    assert "1 exact duplicate rows dropped" in err
    assert "1 rows without a customer id skipped" in err


def test_history_too_short_even_for_btyd_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Too short for the label window and too few repeat buyers for the BG/NBD fallback:
    one clear line, exit 2, nothing registered."""
    tx = tmp_path / "tx.csv"
    tx.write_text(GOOD)
    work = tmp_path / "work"
    code, err = _run(
        capsys,
        ["train", "--transactions", str(tx), "--as-of", "2024-03-01", "--workdir", str(work)],
    )
    assert code == 2
    assert "history too short for the churn horizon of 90 days" in err
    assert "the BG/NBD fallback cannot be fitted either" in err
    assert not (work / "mlruns.db").exists()


def _fake_bundle(folder: Path) -> Path:
    """A folder that passes for a bundle up to the point where its models would load."""
    from importlib import resources

    folder.mkdir()
    (folder / "bundle.json").write_text('{"format": 1}')
    policy = resources.files("churnclv").joinpath("default_policy.yaml").read_text()
    (folder / "policy.yaml").write_text(policy)
    return folder


def test_score_model_uri_that_is_no_bundle_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`score --model-uri` on a folder without bundle.json fails before any work, exit 2."""
    tx = tmp_path / "tx.csv"
    tx.write_text(GOOD)
    out = tmp_path / "scores.parquet"
    args = ["score", "--transactions", str(tx), "--as-of", "2024-03-01", "--out", str(out)]
    code, err = _run(capsys, [*args, "--model-uri", str(tmp_path), "--workdir", str(tmp_path)])
    assert code == 2
    assert "is not a churnclv bundle" in err
    assert not out.exists()


def test_export_without_a_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`export` from a work directory without a registry says what to run first, exit 2."""
    code, err = _run(capsys, ["export", "--out", str(tmp_path / "m"), "--workdir", str(tmp_path)])
    assert code == 2
    assert "no tracking store" in err and "churnclv train --promote" in err
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
    assert not (tmp_path / "mlruns.db").exists()


def test_serve_passes_model_uri_and_bundle_policy_to_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --model-uri BUNDLE` hands the service the bundle and, without --policy, its policy."""
    import subprocess

    seen: dict[str, str] = {}

    class FakeServer:
        def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
            seen.update(env)

        def wait(self, timeout: float | None = None) -> int:
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeServer)
    bundle = _fake_bundle(tmp_path / "bundle")
    assert main(["serve", "--model-uri", str(bundle), "--workdir", str(tmp_path)]) == 0
    assert seen["CHURNCLV_MODEL_URI"] == str(bundle.resolve())
    assert seen["CHURNCLV_POLICY"] == str((bundle / "policy.yaml").resolve())
    assert main(["serve", "--model-uri", "models:/churnclv-churn@staging"]) == 0
    assert seen["CHURNCLV_MODEL_URI"] == "models:/churnclv-churn@staging"
    assert seen["CHURNCLV_POLICY"] == ""
    assert main(["serve", "--workdir", str(tmp_path)]) == 0
    assert seen["CHURNCLV_MODEL_URI"] == ""


def test_serve_model_uri_that_is_no_bundle_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --model-uri folder that is no bundle fails before the server starts, exit 2."""
    code, err = _run(capsys, ["serve", "--model-uri", str(tmp_path / "nothing")])
    assert code == 2
    assert "is not a churnclv bundle" in err
