"""CSV exports as CRM systems write them: encodings, separators, decimal commas, dates."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from churnclv import ColumnMap, InputError, load_inputs
from churnclv._io import LoadReport
from churnclv.cli import main
from churnclv.features import build_features

ONLINE_RETAIL = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "online_retail"
    / "online_retail.parquet"
)
AS_OF = "2011-12-10"
CHINESE = ColumnMap(customer_col="客户编号", ts_col="下单时间", amount_col="金额")
SMALL = (
    "客户编号,下单时间,金额\n客1,2024/1/5 8:26,10.5\n客1,2024/2/1 9:00,12.25\n"
    "客2,2024/1/20 18:05,3\n"
)


@pytest.fixture
def retail_rows() -> pd.DataFrame:
    """2,000 Online Retail invoice lines with a customer id, spread over the whole year."""
    if not ONLINE_RETAIL.exists():
        pytest.skip(f"{ONLINE_RETAIL} not present")
    raw = pd.read_parquet(ONLINE_RETAIL).dropna(subset=["CustomerID"])
    rows = raw.iloc[:: len(raw) // 2000].head(2000)
    ts = pd.to_datetime(rows["InvoiceDate"])
    return pd.DataFrame(
        {
            "customer_id": "客" + rows["CustomerID"].astype(int).astype(str),
            "ts": ts,
            "amount": (rows["Quantity"] * rows["UnitPrice"]).map(repr),
        }
    ).reset_index(drop=True)


def _write(path: Path, header: list[str], rows: list[list[str]], sep: str, encoding: str) -> Path:
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _features(path: Path, columns: ColumnMap | None = None) -> pd.DataFrame:
    tx = load_inputs(path, columns=columns).transactions
    return build_features(tx, as_of=AS_OF)


@pytest.mark.realdata
def test_gbk_chinese_headers_and_slash_dates_equal_the_utf8_features(
    retail_rows: pd.DataFrame, tmp_path: Path
) -> None:
    """A GBK export with Chinese headers and ``2011/9/1 8:26`` dates gives the UTF-8 features."""
    iso = [[c, t.isoformat(sep=" "), a] for c, t, a in retail_rows.itertuples(index=False)]
    plain = _write(tmp_path / "plain.csv", ["customer_id", "ts", "amount"], iso, ",", "utf-8")
    slash = [
        [c, f"{t.year}/{t.month}/{t.day} {t.hour}:{t.minute:02d}", a]
        for c, t, a in retail_rows.itertuples(index=False)
    ]
    gbk = _write(tmp_path / "gbk.csv", ["客户编号", "下单时间", "金额"], slash, ",", "gbk")
    assert any("/" in r[1] and r[1].split("/")[1] in "123456789" for r in slash)
    expected = _features(plain)
    assert len(expected) > 100
    report = LoadReport()
    tables = load_inputs(gbk, columns=CHINESE, report=report)
    assert report.notes[0] == (
        "transactions gbk.csv: not UTF-8, read as GBK/GB18030 (set --encoding to override)"
    )
    assert_frame_equal(build_features(tables.transactions, as_of=AS_OF), expected)


@pytest.mark.realdata
def test_semicolon_decimal_comma_file_equals_the_utf8_features(
    retail_rows: pd.DataFrame, tmp_path: Path
) -> None:
    """A ``;``-separated file with decimal commas and day-first dates reads like the UTF-8 one."""
    iso = [[c, t.isoformat(sep=" "), a] for c, t, a in retail_rows.itertuples(index=False)]
    plain = _write(tmp_path / "plain.csv", ["customer_id", "ts", "amount"], iso, ",", "utf-8")
    euro = [
        [c, t.strftime("%d/%m/%Y %H:%M"), a.replace(".", ",")]
        for c, t, a in retail_rows.itertuples(index=False)
    ]
    semi = _write(tmp_path / "semi.csv", ["Kunde", "Datum", "Betrag"], euro, ";", "utf-8")
    columns = ColumnMap(customer_col="Kunde", ts_col="Datum", amount_col="Betrag", decimal=",")
    assert_frame_equal(_features(semi, columns), _features(plain))
    with pytest.raises(InputError, match="decimal commas"):
        load_inputs(semi, columns=ColumnMap(customer_col="Kunde", ts_col="Datum",
                                            amount_col="Betrag"))  # fmt: skip


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "gb18030", "latin-1"])
def test_each_candidate_encoding_is_detected_and_named(tmp_path: Path, encoding: str) -> None:
    """UTF-8-BOM, UTF-16, GB18030 and Latin-1 files read without flags; the note names them."""
    text, columns = SMALL, CHINESE
    if encoding == "latin-1":
        text = "Kunde,Zeit,Betrag\n" + SMALL.split("\n", 1)[1].replace("客", "Müller ")
        columns = ColumnMap("Kunde", "Zeit", "Betrag")
    path = tmp_path / "tx.csv"
    path.write_bytes(text.encode(encoding))
    report = LoadReport()
    tx = load_inputs(path, columns=columns, report=report).transactions
    assert len(tx) == 3
    assert sorted(tx["amount"]) == [3.0, 10.5, 12.25]
    assert tx["ts"].min() == pd.Timestamp("2024-01-05 08:26")
    label = {"utf-8-sig": "UTF-8 with a byte-order mark", "utf-16": "UTF-16",
             "gb18030": "GBK/GB18030", "latin-1": "Latin-1"}[encoding]  # fmt: skip
    assert len(report.notes) == 1 and label in report.notes[0]
    first = tx["customer_id"].min()
    assert first.startswith("客" if encoding != "latin-1" else "Müller")


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_separator_is_sniffed_and_can_be_given(tmp_path: Path, sep: str) -> None:
    """Each separator is detected, and ``sep`` given explicitly reads the same."""
    path = tmp_path / "tx.csv"
    path.write_text(SMALL.replace(",", sep), encoding="utf-8")
    sniffed = load_inputs(path, columns=CHINESE).transactions
    named = "\\t" if sep == "\t" else sep
    given = load_inputs(
        path, columns=ColumnMap("客户编号", "下单时间", "金额", sep=named)
    ).transactions
    assert_frame_equal(sniffed, given)
    assert len(given) == 3


def _cli_features(path: Path, out: Path, *extra: str) -> list[str]:
    return [
        "features", "--transactions", str(path), "--as-of", "2024-03-01", "--out", str(out),
        "--customer-col", "客户编号", "--ts-col", "下单时间", "--amount-col", "金额", *extra,
    ]  # fmt: skip


def test_cli_explicit_encoding_gbk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--encoding gbk`` reads the file silently; without it the detection is said on stderr."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path = tmp_path / "tx.csv"
    path.write_bytes(SMALL.encode("gbk"))
    out = tmp_path / "f.parquet"
    assert main(_cli_features(path, out, "--encoding", "gbk")) == 0
    err = capsys.readouterr().err
    assert "not UTF-8" not in err
    assert pd.read_parquet(out)["customer_id"].tolist() == ["客1", "客2"]
    assert main(_cli_features(path, out, "--sep", ",", "--decimal", ".")) == 0
    assert "read as GBK/GB18030" in capsys.readouterr().err
    assert list(scratch.iterdir()) == []  # the transcoded temp files are gone


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_cli_forced_encoding_that_cannot_decode_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], encoding: str
) -> None:
    """A file the forced encoding cannot decode: exit 2, one line naming it and the flag."""
    path = tmp_path / "tx.csv"
    path.write_bytes(SMALL.encode("gbk"))
    out = tmp_path / "f.parquet"
    assert main(_cli_features(path, out, "--encoding", encoding)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err
    assert f"cannot be decoded as {encoding}" in err
    assert "--encoding" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [("--encoding", "klingon", "unknown encoding"), ("--sep", "::", "--sep"),
     ("--decimal", ";", "--decimal")],
)  # fmt: skip
def test_cli_bad_csv_flag_values_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, fragment: str
) -> None:
    """Unknown encodings, separators and decimal marks are usage errors, exit 2."""
    path = tmp_path / "tx.csv"
    path.write_text(SMALL, encoding="utf-8")
    assert main(_cli_features(path, tmp_path / "f.parquet", flag, value)) == 2
    assert fragment in capsys.readouterr().err


def test_month_first_dates_parse_and_ambiguous_ones_are_rejected(tmp_path: Path) -> None:
    """``12/13/2010 8:26`` reads month-first; a column that fits both readings is refused."""
    path = tmp_path / "tx.csv"
    path.write_text("customer_id,ts,amount\nA,12/1/2010 8:26,1\nB,12/13/2010 18:05,2\n")
    tx = load_inputs(path).transactions
    assert tx["ts"].tolist() == [pd.Timestamp("2010-12-01 08:26"), pd.Timestamp("2010-12-13 18:05")]
    path.write_text("customer_id,ts,amount\nA,12/1/2010 8:26,1\nB,1/12/2010 18:05,2\n")
    with pytest.raises(InputError, match="day-first and month-first"):
        load_inputs(path)


@pytest.mark.parametrize("chunk", [4, 7, 1 << 20])
def test_undecodable_message_names_the_line_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """The line of the first bad byte is found whatever the read chunk size."""
    from churnclv import _io_csv

    monkeypatch.setattr(_io_csv, "_CHUNK", chunk)
    path = tmp_path / "tx.csv"
    good = "customer_id,ts,amount\n" + "A,2024-01-01,1\n" * 3
    path.write_bytes(good.encode() + "客,2024-01-02,2\n".encode("gbk"))
    with pytest.raises(InputError, match=r"cannot be decoded as utf-8: bytes 0x\w\w on line 5"):
        load_inputs(path, columns=ColumnMap(encoding="utf-8"))
    tx = load_inputs(path, columns=ColumnMap(encoding="gbk")).transactions
    assert tx["customer_id"].tolist() == ["A", "客"]
