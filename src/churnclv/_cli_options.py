"""The ``churnclv`` CLI's shared options and the parsing of their values."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from churnclv import InputError

if TYPE_CHECKING:
    from churnclv import ColumnMap

__all__ = [
    "DEFAULT_WORKDIR",
    "AccessLog",
    "AmountCol",
    "AsOf",
    "Budget",
    "BundleName",
    "BundlePolicy",
    "CategoryCol",
    "ChannelCol",
    "ChurnHorizon",
    "CustomerCol",
    "Customers",
    "Decimal",
    "Encoding",
    "Engine",
    "EventTopK",
    "EventTypeCol",
    "EventTypes",
    "EventValueCol",
    "Events",
    "ExportModelUri",
    "GracefulShutdown",
    "KeepAlive",
    "MaxCutoffs",
    "ModelUri",
    "NoAmount",
    "OutFile",
    "PolicyOpt",
    "PriceCol",
    "Promote",
    "QuantityCol",
    "Sep",
    "SparkConf",
    "TrackingUri",
    "Transactions",
    "TsCol",
    "ValueHorizon",
    "Workdir",
    "column_map",
    "columns_from",
    "event_type_list",
    "parse_as_of",
    "vocabulary_kwargs",
]

DEFAULT_WORKDIR = Path("churnclv-work")

Transactions = Annotated[
    Path,
    typer.Option(help="Transactions table (CSV or Parquet): customer id, timestamp, amount."),
]
Events = Annotated[
    Path | None,
    typer.Option(help="Engagement events table: customer id, timestamp, event type."),
]
Customers = Annotated[
    Path | None,
    typer.Option(help="Customers table: customer id, optional signup_ts and static attributes."),
]
CustomerCol = Annotated[str, typer.Option(help="Source column holding the customer id.")]
TsCol = Annotated[str, typer.Option(help="Source column holding the timestamp or date.")]
AmountCol = Annotated[
    str, typer.Option(help="Source column holding the amount (negative = return).")
]
EventTypeCol = Annotated[str, typer.Option(help="Source column holding the event type.")]
EventValueCol = Annotated[
    str | None,
    typer.Option(
        help="Source column holding the events' numeric value (survey score, NPS, minutes); "
        "default: a column named 'value' when there is one."
    ),
]
EventTypes = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated event types that get their own features besides the most "
        "frequent ones (e.g. nps,complaint)."
    ),
]
EventTopK = Annotated[
    int,
    typer.Option(
        help="How many of the most frequent event types before --as-of get their own "
        "features (frozen with the models; other types count only in event totals).",
        min=0,
    ),
]
QuantityCol = Annotated[
    str | None,
    typer.Option(help="With --price-col: amount = quantity x price (invoice-line exports)."),
]
PriceCol = Annotated[str | None, typer.Option(help="With --quantity-col: the unit price column.")]
NoAmount = Annotated[
    bool,
    typer.Option(
        "--no-amount",
        help="The transactions carry no amount (dates only): every row is a purchase worth 1, "
        "so value predictions are purchase counts.",
    ),
]
Encoding = Annotated[
    str | None,
    typer.Option(
        help="Encoding of the CSV inputs (e.g. utf-8, gbk, utf-16, latin-1); default UTF-8, "
        "with UTF-8-BOM, UTF-16, GBK/GB18030 and Latin-1 detected when UTF-8 fails."
    ),
]
Sep = Annotated[
    str | None,
    typer.Option(help="CSV separator: ',' ';' '|' or '\\t'; default: detected."),
]
Decimal = Annotated[
    str | None,
    typer.Option(help="Decimal mark of CSV numbers: '.' (default) or ',' (as in 1,5)."),
]
CategoryCol = Annotated[
    str | None,
    typer.Option(
        help="Transactions column holding the product category (breadth features); "
        "default: a column named 'category' when present."
    ),
]
ChannelCol = Annotated[
    str | None,
    typer.Option(
        help="Transactions column holding the sales channel (channel-mix features); "
        "default: a column named 'channel' when present."
    ),
]
AsOf = Annotated[
    str,
    typer.Option(help="Cutoff date (YYYY-MM-DD or ISO timestamp); only rows before it are used."),
]
Workdir = Annotated[
    Path,
    typer.Option(help="Work directory: holds mlruns.db, outputs and the scored snapshot."),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI; default sqlite:///<workdir>/mlruns.db."),
]
Engine = Annotated[
    str,
    typer.Option(
        help="Feature engine: duckdb (embedded default) or spark (Apache Spark; needs "
        "churnclv[spark] and Java 17+; master from CHURNCLV_SPARK_MASTER, default local[2]). "
        "Spark reads Parquet inputs from their paths (files, folders or URIs) on the executors "
        "and validates them there; CSV inputs are loaded on the driver."
    ),
]
Budget = Annotated[
    float | None,
    typer.Option(
        help="Campaign budget: select customers by best expected gain per unit cost until it "
        "is spent (default: every customer whose action pays).",
        min=0,
    ),
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", help="Decision policy YAML; default: the shipped policy."),
]
ChurnHorizon = Annotated[
    float, typer.Option(help="Churn = no purchase within this many days.", min=1)
]
ValueHorizon = Annotated[
    float, typer.Option(help="Future value = net spend within this many days.", min=1)
]
Promote = Annotated[
    bool, typer.Option(help="Alias the new models 'champion' if they beat the current one.")
]
MaxCutoffs = Annotated[int, typer.Option(help="Most monthly cutoffs stacked per model.", min=2)]
ExportModelUri = Annotated[
    str | None,
    typer.Option(
        help="The registered pair to export: models:/churnclv-churn@ALIAS (the pair "
        "churnclv-churn@ALIAS + churnclv-value@ALIAS) or models:/churnclv-churn/N; "
        "default the @champion pair."
    ),
]
BundlePolicy = Annotated[
    Path | None,
    typer.Option("--policy", help="Decision policy YAML to bundle; default: the shipped one."),
]
BundleName = Annotated[
    str | None,
    typer.Option(help="Bundle folder name; default churnclv-churn-v<N>-value-v<M>."),
]
KeepAlive = Annotated[
    int,
    typer.Option(
        "--keep-alive",
        help="Seconds an idle keep-alive connection stays open. Keep it above your "
        "clients' pool idle expiry, or a request sent as the server closes the "
        "connection meets a reset.",
        min=1,
    ),
]
GracefulShutdown = Annotated[
    int,
    typer.Option(
        "--graceful-shutdown",
        help="On SIGTERM, seconds in-flight requests get to finish before they are cut.",
        min=1,
    ),
]
AccessLog = Annotated[
    bool,
    typer.Option(
        "--access-log/--no-access-log",
        envvar="CHURNCLV_ACCESS_LOG",
        help="Log every request (costs about 8% of the CPU at 200 requests/s; "
        "counts and latencies are on /metrics either way).",
    ),
]
OutFile = Annotated[
    str,
    typer.Option(
        "--out",
        help="Output file (.parquet or .csv). With --engine spark, a folder (a path ending "
        "in '/', or an existing folder) is written by Spark as Parquet part files, so no row "
        "passes through the driver.",
    ),
]
SparkConf = Annotated[
    list[str] | None,
    typer.Option(
        "--spark-conf",
        help="A Spark setting KEY=VALUE for --engine spark (repeatable), e.g. "
        "spark.driver.memory=4g.",
    ),
]
ModelUri = Annotated[
    str | None,
    typer.Option(
        help="The models to use instead of the registry's @champion pair: a bundle folder "
        "written by `churnclv export` (its policy applies unless --policy is given), "
        "models:/churnclv-churn@ALIAS or models:/churnclv-value@ALIAS (the pair "
        "churnclv-churn@ALIAS + churnclv-value@ALIAS of the --tracking-uri registry, with "
        "churnclv-uplift@ALIAS when set), or models:/churnclv-churn/N (version N and the "
        "value model of the same training run; no uplift model)."
    ),
]


def column_map(
    customer_col: str,
    ts_col: str,
    amount_col: str,
    event_type_col: str,
    quantity_col: str | None,
    price_col: str | None,
    no_amount: bool = False,
    *,
    encoding: str | None = None,
    sep: str | None = None,
    decimal: str | None = None,
    category_col: str | None = None,
    channel_col: str | None = None,
    event_value_col: str | None = None,
) -> ColumnMap:
    """The :class:`ColumnMap` the column and CSV flags describe; InputError for flags that clash."""
    from churnclv import ColumnMap

    if no_amount:
        if quantity_col or price_col:
            raise InputError("--no-amount excludes --quantity-col and --price-col")
        amount_col = ""
    elif (quantity_col is None) != (price_col is None):
        raise InputError("--quantity-col and --price-col go together: give both or neither")
    return ColumnMap(
        customer_col,
        ts_col,
        amount_col,
        event_type_col,
        quantity_col,
        price_col,
        no_amount,
        encoding=encoding,
        sep=sep,
        decimal=decimal,
        category_col=category_col or None,
        channel_col=channel_col or None,
        event_value_col=event_value_col,
    )


def event_type_list(value: str | None) -> list[str]:
    """``--event-types`` as a list (empty items dropped)."""
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def vocabulary_kwargs(vocabulary: tuple[Any, Any]) -> dict[str, Any]:
    """An event vocabulary ``(event types, valued types)`` as feature-building keywords."""
    return {"event_types": vocabulary[0], "valued_event_types": vocabulary[1]}


def parse_as_of(value: str) -> Any:
    """``--as-of`` as a naive :class:`pandas.Timestamp` (an aware one converted to UTC)."""
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InputError(f"--as-of {value!r} is not a date (use YYYY-MM-DD)") from None
    if ts is pd.NaT:
        raise InputError(f"--as-of {value!r} is not a date (use YYYY-MM-DD)")
    return ts.tz_convert(None) if ts.tzinfo else ts


def columns_from(values: Mapping[str, Any]) -> ColumnMap:
    """:func:`column_map` from a verb's parameters (its ``locals()``), by flag name
    (flags a verb lacks keep their defaults)."""
    names = inspect.signature(column_map).parameters
    return column_map(**{name: values[name] for name in names if name in values})
