"""The ``churnclv features`` verb: the point-in-time feature frame, on DuckDB, SQLite or Spark.

The event types with their own features are chosen from the events before
``--as-of`` as ``churnclv train`` chooses them
(:func:`churnclv.features.select_event_types`: the ``--event-top-k`` most
frequent, the survey types, and ``--event-types``), so the frame holds the
columns a training at that date would fit on.
"""

from __future__ import annotations

from typing import Any

from churnclv import _cli_options as opt
from churnclv import _cli_spark as spk
from churnclv._cli_output import load_tables, note, out, step, write_table

__all__ = ["run_features"]


def run_features(params: dict[str, Any]) -> None:
    """Run the verb with the parameters of the ``features`` command (its ``locals()``)."""
    from churnclv import check_as_of
    from churnclv.features import build_features, select_event_types

    ts = opt.parse_as_of(params["as_of"])
    out_path, folder = spk.out_target(params["out_file"], params["engine"])
    named = opt.event_type_list(params["event_types"])
    top_k = params["event_top_k"]
    paths = (params["transactions"], params["events"], params["customers"])
    columns = opt.columns_from(params)
    if params["engine"] == "spark":
        inputs = spk.spark_inputs(*paths, columns, ts, spk.spark_conf(params["spark_conf"]))
        vocab = inputs.select_event_types(ts, top_k=top_k, named=named)
        spk.spark_features(inputs, ts, out_path, folder, vocab)
        return
    tables = load_tables(*paths, columns)
    check_as_of(tables.transactions, ts, source=paths[0])
    vocab = select_event_types(tables.events, ts, top_k=top_k, named=named)
    with step("computing features"):
        frame = build_features(
            tables.transactions,
            tables.events,
            tables.customers,
            as_of=ts,
            engine=params["engine"],
            **opt.vocabulary_kwargs(vocab),
        )
    write_table(frame, out_path)
    before = tables.transactions.loc[tables.transactions["ts"] < ts, "customer_id"]
    without = before.nunique() - len(frame)
    if without:
        note(
            f"{without:,} customers with rows before as_of have no purchase "
            "(returns or zero amounts only) and therefore no feature row"
        )
    out.print(f"{len(frame):,} customers x {frame.shape[1] - 2} features -> {out_path}")
