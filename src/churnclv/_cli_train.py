"""The inputs of ``churnclv train``: DuckDB or Spark, all customers or a seeded sample.

``--sample-customers N`` trains on N customers picked by
:func:`churnclv._sample.sample_customers` (the same customers on either
engine). With ``--engine spark`` the inputs are read and validated by Spark
from their paths, the rows are filtered to the sample on the executors, and
the features and labels of the training cutoffs are computed there too
(:class:`churnclv.training._spark_source.SparkSource`): only one row per
customer and cutoff reaches the driver, never an input row. A customer's
features depend on its own rows only, so they equal the sampled rows of the
full frames, and the models equal those trained in process on the sample.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from churnclv import InputError, check_as_of
from churnclv import _cli_options as opt
from churnclv import _cli_spark as spk
from churnclv._cli_output import load_tables, note, out, step
from churnclv._sample import SAMPLE_RULE, Sample, sample_tables, spark_sample_inputs

__all__ = ["SampleCustomers", "log_sample", "train_inputs"]

SampleCustomers = Annotated[
    int | None,
    typer.Option(
        help="Train on this many customers, a sample seeded by --seed (the same customers "
        "on either engine); default all. With --engine spark their features are computed "
        "on Spark and no input row reaches the driver.",
        min=1,
    ),
]


def train_inputs(params: dict[str, Any], as_of: Any) -> tuple[Any, Sample | None]:
    """What ``train`` trains on, from the command's parameters (its ``locals()``): the
    input tables (DuckDB) or a Spark feature source, and the sample (None: all customers)."""
    engine = params["engine"]
    if engine not in ("duckdb", "spark"):
        raise InputError(f"--engine {engine}: train runs on duckdb or spark")
    n, seed = params["sample_customers"], params["seed"]
    paths = (params["transactions"], params["events"], params["customers"])
    columns = opt.columns_from(params)
    if engine == "spark":
        from churnclv.training._spark_source import SparkSource

        inputs = spk.spark_inputs(*paths, columns, as_of, spk.spark_conf(params["spark_conf"]))
        sampled, sample = inputs, None
        if n is not None:
            with step("sampling customers (spark)"):
                sampled, sample = spark_sample_inputs(inputs, n, seed)
        tables: Any = SparkSource(sampled)
    else:
        tables = load_tables(*paths, columns)
        check_as_of(tables.transactions, as_of, source=paths[0])
        sample = None
        if n is not None:
            tables, sample = sample_tables(tables, n, seed)
    if sample is not None:
        if sample.complete and sample.requested > sample.total:
            note(
                f"--sample-customers {sample.requested:,} is more than the "
                f"{sample.total:,} customers: training on all of them"
            )
        out.print(f"training on {len(sample.ids):,} of {sample.total:,} customers (seeded sample)")
    if engine == "spark":
        out.print("features and labels: spark (one row per customer and cutoff to the driver)")
    return tables, sample


def log_sample(run_id: str, tracking_uri: str, sample: Sample | None) -> None:
    """Record the sample on the training run: params ``sample_customers``,
    ``sample_customers_total``, ``sample_seed`` and the tag ``sample_rule``
    (the run's tag ``feature_engine`` says where the features were computed)."""
    if sample is None:
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    client.log_param(run_id, "sample_customers", len(sample.ids))
    client.log_param(run_id, "sample_customers_total", sample.total)
    client.log_param(run_id, "sample_seed", sample.seed)
    client.set_tag(run_id, "sample_rule", SAMPLE_RULE)
