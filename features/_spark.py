"""The Apache Spark engine: a lazily created session and pandas <-> Spark frames.

Nothing here touches Spark or Java at import time; :func:`get_spark` starts
(or reuses) a session on first use. The session runs in UTC
(``spark.sql.session.timeZone`` and the JVM's ``user.timezone``) so naive
pandas timestamps, which churnclv reads as UTC, round-trip unshifted.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churnclv._errors import InputError
from churnclv.features._sql import DEFAULT_EVENT_TYPES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

    from churnclv.features._spark_inputs import SparkInputs

__all__ = [
    "MASTER_ENV",
    "check_spark",
    "get_spark",
    "input_features",
    "quiet_pandas_warnings",
    "register_frame",
    "register_inputs",
    "sort_rows",
    "to_pandas",
    "unsorted_features",
    "without_final_order",
    "write_folder",
]

MASTER_ENV = "CHURNCLV_SPARK_MASTER"
#: The last clause of the feature SQL (:func:`churnclv.features._sql.feature_sql`).
_FINAL_ORDER = "ORDER BY b.as_of, b.customer_id"
_DEFAULT_MASTER = "local[2]"
_MISSING = "the spark engine needs pyspark and Java 17+: pip install 'churnclv[spark]'"
_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


def _java_major(java: str) -> int | None:
    try:
        proc = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


@functools.cache
def _java_problem() -> str | None:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        return "no java executable found (JAVA_HOME or PATH)"
    major = _java_major(java)
    if major is None:
        return f"cannot run {java} -version"
    if major < 17:
        return f"{java} is Java {major}"
    return None


def check_spark() -> None:
    """Raise :class:`InputError` unless pyspark is importable and Java 17+ is on hand.

    Raises
    ------
    InputError
        With one line saying what is missing and how to install it.
    """
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise InputError(f"{_MISSING} (pyspark is not installed)") from None
    problem = _java_problem()
    if problem is not None:
        raise InputError(f"{_MISSING} ({problem})")


@contextmanager
def quiet_pandas_warnings() -> Iterator[None]:
    """Silence pyspark's warnings about pandas >= 3 around a conversion.

    pyspark 4.x warns that it does not yet fully support pandas 3 and passes
    ``copy=False`` to ``astype``; the conversions churnclv uses are covered
    by the engine-equality tests.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*PySpark does not yet fully support pandas")
        warnings.filterwarnings("ignore", message=".*The copy keyword is deprecated")
        yield


def get_spark(conf: dict[str, str] | None = None) -> SparkSession:
    """The churnclv Spark session, created on first use.

    ``master`` comes from the ``CHURNCLV_SPARK_MASTER`` environment variable
    (default ``local[2]``). The session uses UTC, 4 shuffle partitions, Arrow
    transfers, no UI and error-level logs. An already active session (for
    example one a cluster launcher created) is reused as it is, with only the
    SQL settings churnclv depends on applied.

    Parameters
    ----------
    conf : dict, optional
        Spark settings (e.g. ``{"spark.driver.memory": "1g"}``) for a new
        session; on an active session only the runtime-modifiable ones apply.

    Raises
    ------
    InputError
        When pyspark or Java 17+ is missing.
    """
    check_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None:
        # Python workers otherwise start whatever `python3` is first on PATH (a bare system
        # interpreter without pyarrow when the venv is not activated), whatever
        # spark.pyspark.python says; pin them to this interpreter unless the user chose one.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        # the Python workers (children of the JVM, a child of this process) inherit it
        quiet = "ignore:PySpark does not yet fully support pandas:FutureWarning"
        current = os.environ.get("PYTHONWARNINGS")
        os.environ["PYTHONWARNINGS"] = f"{current},{quiet}" if current else quiet
        conf_dir = Path(tempfile.mkdtemp(prefix="churnclv-spark-"))
        # the JVM reads it at start-up only; without this every session left a folder behind
        atexit.register(shutil.rmtree, conf_dir, ignore_errors=True)
        log4j = conf_dir / "log4j2.properties"
        log4j.write_text(_LOG4J)
        java_opts = f"-Duser.timezone=UTC -Dlog4j2.configurationFile={log4j.as_uri()}"
        builder = (
            SparkSession.builder.master(os.environ.get(MASTER_ENV, _DEFAULT_MASTER))
            .appName("churnclv")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.extraJavaOptions", java_opts)
            .config("spark.executor.extraJavaOptions", java_opts)
            .config("spark.pyspark.python", sys.executable)
            .config("spark.pyspark.driver.python", sys.executable)
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.default.parallelism", "4")
        )
        for key, value in (conf or {}).items():
            builder = builder.config(key, value)
        with quiet_pandas_warnings():
            active = builder.getOrCreate()
        active.sparkContext.setLogLevel("ERROR")
    else:
        for key, value in (conf or {}).items():
            if active.conf.isModifiable(key):
                active.conf.set(key, value)
    _configure(active)
    return active


def _configure(spark: SparkSession) -> None:
    for key, value in (
        ("spark.sql.session.timeZone", "UTC"),
        ("spark.sql.execution.arrow.pyspark.enabled", "true"),
        ("spark.sql.execution.arrow.pyspark.fallback.enabled", "false"),
        ("spark.sql.ansi.enabled", "false"),
        ("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS"),
    ):
        spark.conf.set(key, value)


def _spark_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy Arrow converts cleanly: categoricals as strings, timestamps naive µs."""
    out = frame.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
        elif isinstance(dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
        elif pd.api.types.is_datetime64_dtype(dtype):
            out[col] = out[col].astype("datetime64[us]")
    return out


def register_frame(
    spark: SparkSession, name: str, frame: pd.DataFrame, schema: Any = None
) -> SparkDataFrame:
    """Register a pandas frame as the temporary view ``name`` and return it.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The session.
    name : str
        The view name the SQL refers to.
    frame : pandas.DataFrame
        The data; naive timestamps are taken as UTC.
    schema : pyspark.sql.types.StructType, optional
        An explicit schema (needed for empty frames); inferred when omitted.
    """
    with quiet_pandas_warnings():
        sdf = spark.createDataFrame(_spark_ready(frame), schema=schema)
    sdf.createOrReplaceTempView(name)
    return sdf


def to_pandas(sdf: SparkDataFrame) -> pd.DataFrame:
    """Collect a Spark frame to pandas (through Arrow), keeping its row order."""
    with quiet_pandas_warnings():
        return sdf.toPandas()


def _schema(frame: pd.DataFrame, types: dict[str, str]) -> Any:
    """An explicit schema for an empty frame (nothing to infer from); else None."""
    if len(frame):
        return None
    return ", ".join(f"`{col}` {types[col]}" for col in frame.columns)


_TYPES = {
    "customer_id": "string",
    "ts": "timestamp",
    "amount": "double",
    "event_type": "string",
    "value": "double",
    "category": "string",
    "channel": "string",
    "cutoff": "timestamp",
    "as_of": "timestamp",
}


def register_inputs(spark: SparkSession, frames: dict[str, pd.DataFrame]) -> None:
    """Register each pandas frame of ``frames`` as a temporary view named by its key.

    Frames whose columns are all known (``customer_id``, ``ts``, ``amount``,
    ``event_type``, ``value``, ``category``, ``channel``, ``cutoff``, ``as_of``)
    get an explicit schema when empty.
    """
    for name, frame in frames.items():
        known = all(col in _TYPES for col in frame.columns)
        schema = _schema(frame, _TYPES) if known else None
        register_frame(spark, name, frame, schema)


def input_features(
    inputs: SparkInputs,
    *,
    as_of: Sequence[pd.Timestamp | str] | pd.Timestamp | str,
    event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
    valued_event_types: Sequence[str] = (),
) -> tuple[SparkDataFrame, list[str]]:
    """The feature frame of Spark input tables as a lazy Spark DataFrame.

    The inputs stay Spark DataFrames (their scans run on the executors); only
    the cutoffs and the bucket maps, a few rows each, are sent from the
    driver. Returns the frame (sorted by ``as_of``, ``customer_id``) and the
    static attribute columns, as :func:`churnclv.features.spark_features`.

    Parameters
    ----------
    inputs : SparkInputs
        From :func:`churnclv.features._spark_inputs.read_inputs`.
    as_of : timestamp or sequence of timestamps
        The cutoff(s).
    event_types : sequence of str
        Event types with their own columns.
    valued_event_types : sequence of str
        Event types with value features (events without ``value`` count as null).
    """
    feats, static = unsorted_features(
        inputs, as_of=as_of, event_types=event_types, valued_event_types=valued_event_types
    )
    return sort_rows(feats), static


def sort_rows(sdf: SparkDataFrame) -> SparkDataFrame:
    """``sdf`` sorted by ``as_of`` then ``customer_id``, after one unsorted shuffle.

    The inputs arrive partitioned by customer, so the feature rows end their
    stage without a shuffle, and the range-partition sample of a plain
    ``ORDER BY`` would run that whole stage a second time; the rows are
    shuffled once unsorted, then sorted, so the sample reads the shuffled rows.
    """
    partitions = int(sdf.sparkSession.conf.get("spark.sql.shuffle.partitions") or 1)
    return sdf.repartition(partitions).orderBy("as_of", "customer_id")


def unsorted_features(
    inputs: SparkInputs,
    *,
    as_of: Sequence[pd.Timestamp | str] | pd.Timestamp | str,
    event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
    valued_event_types: Sequence[str] = (),
) -> tuple[SparkDataFrame, list[str]]:
    """:func:`input_features` without the final sort (for frames joined further on Spark).

    Registers the input tables as the views ``transactions``, ``events`` and
    ``customers`` (what the feature and label SQL read).
    """
    from churnclv.features._build import feature_query
    from churnclv.features._inputs import cutoff_frame

    spark = get_spark()
    cut = cutoff_frame(as_of)
    tables = {"transactions": inputs.transactions}
    static: list[str] = []
    with_signup = False
    if inputs.customers is not None:
        tables["customers"] = inputs.customers
        with_signup = "signup_ts" in inputs.customers.columns
        static = [c for c in inputs.customers.columns if c not in ("customer_id", "signup_ts")]
    if inputs.events is not None:
        tables["events"] = inputs.events
        if valued_event_types and "value" not in inputs.events.columns:
            from pyspark.sql import functions as F

            tables["events"] = inputs.events.withColumn("value", F.lit(None).cast("double"))
    frames: dict[str, Any] = {**tables, "cutoffs": cut}
    vocab = (event_types, valued_event_types)
    sql = feature_query(frames, static, with_signup, vocab, "spark")
    for name, table in tables.items():
        table.createOrReplaceTempView(name)
    register_inputs(spark, {k: v for k, v in frames.items() if k not in tables})
    return spark.sql(without_final_order(sql, _FINAL_ORDER)), static


def without_final_order(sql: str, clause: str) -> str:
    """``sql`` without its last clause ``clause`` (an ``ORDER BY``), when it ends with it."""
    text = sql.rstrip()
    return text[: -len(clause)] if text.endswith(clause) else text


def write_folder(sdf: SparkDataFrame, folder: str) -> str:
    """Write ``sdf`` as a folder of Parquet part files, by Spark (the rows skip the driver).

    A local folder is written under a temporary name next to it and renamed
    into place, so a failed write leaves no partial output; an existing
    folder (or file) there is replaced once the new one is complete. A URI
    (``scheme://``) is written in place, overwriting. Returns the folder.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    # naive timestamps, as pandas writes them (Spark's TIMESTAMP is stored UTC-adjusted)
    sdf = sdf.select(
        *(
            F.col(f"`{f.name}`").cast("timestamp_ntz").alias(f.name)
            if isinstance(f.dataType, TimestampType)
            else F.col(f"`{f.name}`")
            for f in sdf.schema.fields
        )
    )
    if "://" in folder:
        sdf.write.mode("overwrite").parquet(folder)
        return folder
    target = Path(folder).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        sdf.write.parquet(str(tmp))
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    return str(target)
