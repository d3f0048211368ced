"""CSV exports as CRM systems write them: encodings, separators, decimal commas, dates.

DuckDB reads UTF-8 files (with or without a byte-order mark) itself. A file in any
other encoding is transcoded, in a streaming pass of 1 MiB chunks, to a temporary
UTF-8 file that DuckDB then reads; the caller deletes it once the rows are loaded.

When no encoding is given and the file is not valid UTF-8, the candidates are tried
in this order, the first that decodes the whole file winning:

1. UTF-16, only when the file starts with a UTF-16 byte-order mark;
2. GB18030 (a superset of GBK and GB2312, the default of many Chinese CRMs), only
   when at least 90% of the non-ASCII characters of the first MiB are GB2312
   characters: Latin-1 text such as ``Müller`` also decodes as GB18030, into rare
   ideographs outside GB2312;
3. Latin-1, which decodes any bytes.

The separator is DuckDB's sniffer's guess (``,`` ``;`` tab ``|``) unless given;
decimal commas (``1,5``) are read when ``decimal=","``. Timestamps DuckDB cannot
cast (``9/1/2011 8:26``) are tried against :data:`TS_FORMATS`; a column whose
values fit both a day-first and a month-first format is rejected as ambiguous.
"""

from __future__ import annotations

import codecs
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb

from churnclv._errors import InputError

__all__ = [
    "TS_FORMATS",
    "Undecodable",
    "detect_and_transcode",
    "first_utf8_error",
    "is_csv",
    "lit",
    "load_src",
    "normalize_decimal",
    "normalize_encoding",
    "normalize_sep",
    "read_csv",
    "reader",
    "starts_with",
    "transcode",
    "ts_format",
]

_CHUNK = 1 << 20
_BOMS_UTF16 = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_GB2312_SHARE = 0.9

DAY_FIRST = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y")
MONTH_FIRST = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y")
DOTTED = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y")
#: Formats tried, in order, for timestamps DuckDB's cast does not read.
TS_FORMATS = DAY_FIRST + MONTH_FIRST + DOTTED

_SEPS = {",": ",", ";": ";", "|": "|", "\t": "\t", "\\t": "\t", "tab": "\t"}


class Undecodable(ValueError):
    """Bytes invalid in the encoding: ``offset`` in the file and the ``raw`` bytes."""

    def __init__(self, offset: int, raw: bytes) -> None:
        super().__init__(f"invalid bytes {raw.hex(' ')} at byte {offset:,}")
        self.offset = offset
        self.raw = raw


def normalize_encoding(name: str | None) -> str | None:
    """Python's canonical name of an encoding (``None`` stays ``None``: detect it).

    Raises
    ------
    ValueError
        For a name Python does not know.
    """
    if name is None:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ValueError(
            f"unknown encoding {name!r} for --encoding (e.g. utf-8, gbk, utf-16, latin-1)"
        ) from None


def normalize_sep(sep: str | None) -> str | None:
    """One of ``,`` ``;`` tab ``|`` (``\\t`` and ``tab`` mean tab); ``None``: sniff it."""
    if sep is None:
        return None
    if sep not in _SEPS:
        raise ValueError(f"--sep {sep!r} is not one of ',', ';', '|', '\\t'")
    return _SEPS[sep]


def normalize_decimal(decimal: str | None) -> str:
    """``.`` (the default) or ``,``."""
    if decimal in (None, "."):
        return "."
    if decimal == ",":
        return ","
    raise ValueError(f"--decimal {decimal!r} is not '.' or ','")


def first_utf8_error(path: Path) -> tuple[int, bytes] | None:
    """Byte offset and bytes of the first invalid UTF-8 sequence, or ``None`` if valid."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return offset + exc.start, exc.object[exc.start : exc.end]
            if not chunk:
                return None
            offset += len(chunk)


def starts_with(path: Path, prefix: bytes) -> bool:
    """Whether the file's first bytes are ``prefix``."""
    with path.open("rb") as fh:
        return fh.read(len(prefix)) == prefix


def transcode(path: Path, encoding: str) -> Path:
    """Write ``path`` decoded from ``encoding`` to a temporary UTF-8 file.

    Raises
    ------
    Undecodable
        When a byte sequence is invalid in ``encoding`` (no temp file is left).
    """
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    fd, tmp = tempfile.mkstemp(prefix="churnclv-", suffix=".csv")
    offset = 0
    try:
        with path.open("rb") as src, os.fdopen(fd, "w", encoding="utf-8", newline="") as dst:
            while True:
                chunk = src.read(_CHUNK)
                try:
                    dst.write(decoder.decode(chunk, final=not chunk))
                except UnicodeDecodeError as exc:
                    raw = exc.object[exc.start : exc.end][:4]
                    raise Undecodable(offset + exc.start, bytes(raw)) from None
                if not chunk:
                    break
                offset += len(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _mostly_gb2312(path: Path) -> bool:
    with path.open("rb") as fh:
        text = fh.read(_CHUNK).decode("gb18030", errors="ignore")
    wide = [ch for ch in text if ord(ch) > 127]
    if not wide:
        return True
    ok = 0
    for ch in wide:
        try:
            ch.encode("gb2312")
            ok += 1
        except UnicodeEncodeError:
            pass
    return ok >= _GB2312_SHARE * len(wide)


def detect_and_transcode(path: Path) -> tuple[Path, str] | None:
    """Transcode a file that is not UTF-8 with the first candidate that decodes it.

    Returns
    -------
    (Path, str) or None
        The temporary UTF-8 file and the encoding's display name, or ``None``
        when no candidate decodes the file.
    """
    with path.open("rb") as fh:
        head = fh.read(4)
    candidates: list[tuple[str, str]] = []
    if head.startswith(_BOMS_UTF16):
        candidates.append(("utf-16", "UTF-16"))
    if _mostly_gb2312(path):
        candidates.append(("gb18030", "GBK/GB18030"))
    candidates.append(("latin-1", "Latin-1"))
    for encoding, label in candidates:
        try:
            return transcode(path, encoding), label
        except Undecodable:
            continue
    return None


def lit(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def is_csv(path: Path) -> bool:
    """Whether ``path`` is read as CSV (by its suffix)."""
    return path.suffix.lower() in {".csv", ".tsv", ".txt"}


def reader(path: Path, read: Path | None = None, sep: str | None = None) -> str:
    """The DuckDB table function reading ``path`` (its bytes taken from ``read`` if given)."""
    source = lit(str(read or path))
    if is_csv(path):
        delim = f", delim={lit(sep)}" if sep else ""
        return f"read_csv({source}, header=true, all_varchar=true{delim})"
    if path.suffix.lower() in {".parquet", ".pq"}:
        return f"read_parquet({source})"
    return source


def load_src(con: duckdb.DuckDBPyConnection, table_fn: str, kind: str) -> int:
    """Create the temp ``kind`` (VIEW or TABLE) ``src`` over ``table_fn``; its row count."""
    con.execute(f"CREATE OR REPLACE TEMP {kind} src AS SELECT * FROM {table_fn}")
    n = con.execute("SELECT count(*) FROM src").fetchone()
    return 0 if n is None else int(n[0])


def _line_at(path: Path, offset: int) -> tuple[int, str]:
    """The 1-based line number holding byte ``offset`` and that line, shown lossily."""
    line, start = 1, 0
    with path.open("rb") as fh:
        while start + _CHUNK <= offset:
            line += fh.read(_CHUNK).count(b"\n")
            start += _CHUNK
        head = fh.read(offset - start)
        line += head.count(b"\n")
        text = head.rsplit(b"\n", 1)[-1] + fh.readline()
    shown = text.rstrip(b"\r\n").decode("utf-8", errors="replace")
    return line, shown if len(shown) <= 60 else shown[:57] + "..."


def _undecodable(p: Path, what: str, encoding: str, at: int, raw: bytes) -> InputError:
    line, shown = _line_at(p, at)
    hexed = " ".join(f"0x{b:02x}" for b in raw)
    return InputError(
        f"{what} file {p} cannot be decoded as {encoding}: bytes {hexed} on line {line} "
        f"({shown!r}); give the file's encoding with --encoding (e.g. gbk, utf-16, latin-1)"
    )


def _read_transcoded(con: duckdb.DuckDBPyConnection, p: Path, tmp: Path, sep: str | None) -> int:
    # The rows are copied into DuckDB so the temporary UTF-8 file can go at once.
    try:
        return load_src(con, reader(p, tmp, sep), "TABLE")
    finally:
        tmp.unlink(missing_ok=True)


def read_csv(
    con: duckdb.DuckDBPyConnection,
    p: Path,
    what: str,
    encoding_name: str | None,
    sep_name: str | None,
    note: Callable[[str], None],
) -> int:
    """Read a CSV into the table ``src`` in the encoding given or detected; its row count.

    ``note`` receives the detected encoding. Raises :class:`InputError` for a file
    the encoding cannot decode and :class:`duckdb.Error` for other read errors.
    """
    try:
        encoding = normalize_encoding(encoding_name)
        sep = normalize_sep(sep_name)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if encoding not in (None, "utf-8", "utf-8-sig"):
        try:
            tmp = transcode(p, encoding)
        except Undecodable as exc:
            raise _undecodable(p, what, encoding, exc.offset, exc.raw) from None
        return _read_transcoded(con, p, tmp, sep)
    try:
        n = load_src(con, reader(p, sep=sep), "VIEW")
    except duckdb.Error:
        bad = first_utf8_error(p)
        if bad is None:
            raise
        if encoding is not None:
            raise _undecodable(p, what, "utf-8", *bad) from None
        found = detect_and_transcode(p)
        if found is None:
            raise _undecodable(p, what, "utf-8 (nor GBK/GB18030, Latin-1)", *bad) from None
        tmp, label = found
        note(f"{what} {p.name}: not UTF-8, read as {label} (set --encoding to override)")
        return _read_transcoded(con, p, tmp, sep)
    if encoding is None and starts_with(p, codecs.BOM_UTF8):
        note(f"{what} {p.name}: read as UTF-8 with a byte-order mark")
    return n


def ts_format(con: duckdb.DuckDBPyConnection, col: str, p: Path, what: str, name: str) -> str:
    """The first of :data:`TS_FORMATS` every value fits; '' when none does."""
    text = f"CAST({col} AS VARCHAR)"
    fits = ", ".join(
        f"count(*) FILTER (WHERE try_strptime({text}, {lit(f)}) IS NULL) = 0" for f in TS_FORMATS
    )
    row = con.execute(f"SELECT {fits} FROM src WHERE {col} IS NOT NULL").fetchone() or ()
    ok = [f for f, fit in zip(TS_FORMATS, row, strict=True) if fit]
    day = [f for f in ok if f in DAY_FIRST]
    month = [f for f in ok if f in MONTH_FIRST]
    if day and month:
        rows = con.execute(f"SELECT {col} FROM src WHERE {col} IS NOT NULL LIMIT 5").fetchall()
        eg = [repr(r[0]) for r in rows]
        raise InputError(
            f"{what} file {p}: column {name!r} has dates that read both day-first and "
            f"month-first, e.g. {', '.join(eg)}; write them as YYYY-MM-DD"
        )
    return ok[0] if ok else ""
