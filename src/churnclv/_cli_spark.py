"""The ``--engine spark`` paths of ``churnclv features`` and ``churnclv score``.

Parquet inputs are read by Spark from their paths and validated with Spark
expressions (:mod:`churnclv.features._spark_inputs`); CSV inputs are loaded
on the driver. Outputs: a file (``.parquet``/``.csv``) gets the collected
per-customer rows; a folder (``--out`` ending in ``/`` or naming an existing
folder) is written by Spark as Parquet part files, so no row passes through
the driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnclv import InputError
from churnclv._cli_output import note, out, step, write_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["is_folder", "out_target", "spark_conf", "spark_features", "spark_inputs", "spark_score"]

#: The score columns read back from a scores folder for the snapshot and the campaign line.
_SUMMARY_COLUMNS = (
    "customer_id",
    "churn_probability",
    "predicted_value",
    "value_tier",
    "as_of",
    "model_version",
    "action",
    "selected",
    "action_cost",
    "expected_saved_value",
    "expected_net_gain",
)


def is_folder(value: str) -> bool:
    """Whether ``--out`` names a folder: it ends with ``/`` or is an existing folder."""
    return value.endswith(("/", "\\")) or Path(value).is_dir()


def out_target(value: str, engine: str) -> tuple[Path, bool]:
    """``--out`` as a path and whether it is a folder (written by Spark; spark engine only)."""
    folder = is_folder(value)
    if folder and engine != "spark":
        raise InputError(f"--out {value}: a folder output needs --engine spark (or name a file)")
    return Path(value), folder


def spark_conf(values: list[str] | None) -> dict[str, str]:
    """``--spark-conf KEY=VALUE`` options as a dict."""
    conf: dict[str, str] = {}
    for item in values or []:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--spark-conf {item!r}: use KEY=VALUE, e.g. spark.driver.memory=4g")
        conf[key.strip()] = val.strip()
    return conf


def spark_inputs(
    transactions: Path,
    events: Path | None,
    customers: Path | None,
    columns: Any,
    as_of: pd.Timestamp,
    conf: dict[str, str],
) -> Any:
    """Read and validate the inputs with Spark under a spinner; check ``as_of``."""
    from churnclv._io import LoadReport
    from churnclv.features._spark import get_spark
    from churnclv.features._spark_inputs import read_inputs

    report = LoadReport()
    with step("reading inputs (spark)"):
        get_spark(conf)
        inputs = read_inputs(transactions, events, customers, columns, report)
    for message in report.notes:
        note(message)
    inputs.check_as_of(as_of)
    return inputs


def spark_features(
    inputs: Any,
    as_of: pd.Timestamp,
    target: Path,
    folder: bool,
    vocabulary: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
) -> None:
    """Compute the features on Spark; write them (a folder by Spark, or a file).

    ``vocabulary``: the event types and valued event types (default: the
    default types, no values).
    """
    from churnclv._cli_options import vocabulary_kwargs
    from churnclv.features import finish_features
    from churnclv.features._spark import input_features, to_pandas, write_folder

    kw = {} if vocabulary is None else vocabulary_kwargs(vocabulary)
    with step("computing features (spark)"):
        feats, static = input_features(inputs, as_of=as_of, **kw)
        if folder:
            write_folder(feats, str(target))
            n_rows, n_cols = _folder_shape(target)
        else:
            frame = finish_features(to_pandas(feats), static)
            n_rows, n_cols = frame.shape
    if not folder:
        write_table(frame, target)
    out.print(f"{n_rows:,} customers x {n_cols - 2} features -> {target}")


def _folder_shape(folder: Path) -> tuple[int, int]:
    import pyarrow.parquet as pq

    meta = pq.ParquetDataset(folder)
    return sum(f.count_rows() for f in meta.fragments), len(meta.schema.names)


def spark_score(
    inputs: Any,
    as_of: pd.Timestamp,
    champion: Any,
    policy: Any,
    budget: float | None,
    target: Path,
    folder: bool,
    with_report: bool,
) -> pd.DataFrame:
    """Score on Spark; write the scores; return them (read back from a folder)."""
    from churnclv.serving._spark import score_spark, spark_scores, write_scores

    with step("scoring (spark)"):
        if not folder:
            scored = score_spark(
                inputs, as_of=as_of, champion=champion, policy=policy, budget=budget
            )
        else:
            scores = spark_scores(inputs, as_of=as_of, champion=champion, policy=policy)
            write_scores(scores, str(target), policy, budget)
    if not folder:
        write_table(scored, target)
        return scored
    import pandas as pd

    columns = None if with_report else list(_SUMMARY_COLUMNS)
    return pd.read_parquet(target, columns=columns)
