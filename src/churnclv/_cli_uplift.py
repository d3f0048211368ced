"""``churnclv train-uplift``: learn the actions from a campaign log (DESIGN §11).

The verb's options and its logic; ``cli.py`` holds only the thin command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from churnclv import InputError
from churnclv import _cli_options as opt
from churnclv._cli_campaigns import (
    CampaignCustomerCol,
    CampaignIdCol,
    CampaignTsCol,
    TreatmentCol,
    campaign_columns_from,
)
from churnclv._cli_output import load_tables, out, step

__all__ = [
    "CampaignCustomerCol",
    "CampaignIdCol",
    "CampaignTsCol",
    "Campaigns",
    "Control",
    "LearnerOpt",
    "ResponseDays",
    "TreatmentCol",
    "run_train_uplift",
]

Campaigns = Annotated[
    Path,
    typer.Option(
        help="Campaign log (CSV or Parquet): customer id, send timestamp, treatment "
        "(the control arm or a policy action), optional campaign id."
    ),
]
ResponseDays = Annotated[
    int,
    typer.Option(help="Outcome = net spend in the days after each send (response window).", min=1),
]
Control = Annotated[
    str, typer.Option("--control", help="The treatment label of the untreated (control) arm.")
]
LearnerOpt = Annotated[
    str,
    typer.Option(help="Uplift learner: dr (doubly robust DR-learner) or t (T-learner)."),
]


def run_train_uplift(params: dict[str, Any]) -> None:
    """Run the verb with the parameters of the ``train-uplift`` command (its ``locals()``)."""
    from churnclv import check_as_of, load_policy, train_uplift
    from churnclv._campaigns import load_campaigns
    from churnclv.training import tracking_uri_for

    if params["learner"] not in ("dr", "t"):
        raise InputError(f"--learner must be dr or t, got {params['learner']!r}")
    ts = opt.parse_as_of(params["as_of"])
    pol = load_policy(params["policy"])
    actions = [a.name for a in pol.actions]
    columns = campaign_columns_from(params)
    campaigns = load_campaigns(
        params["campaigns"],
        columns=columns,
        control=params["control"],
        actions=actions,
        encoding=params["encoding"],
        sep=params["sep"],
    )
    tables = load_tables(
        params["transactions"], params["events"], params["customers"], opt.columns_from(params)
    )
    check_as_of(tables.transactions, ts, source=params["transactions"])
    workdir: Path = params["workdir"]
    created = not workdir.exists()
    workdir.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri_for(workdir, params["tracking_uri"])
    with step("training the uplift model") as update, _no_empty_workdir(workdir, created):
        result = train_uplift(
            tables,
            campaigns,
            as_of=ts,
            tracking_uri=uri,
            response_days=params["response_days"],
            policy=pol,
            control=params["control"],
            promote=params["promote"],
            seed=params["seed"],
            learner=params["learner"],
            event_types=opt.event_type_list(params["event_types"]),
            event_top_k=params["event_top_k"],
            progress=update,
        )
    n = result.n_sends
    out.print(
        f"{n['train'] + n['holdout']:,} sends with a complete {params['response_days']}-day "
        f"window ({n['train']:,} training, {n['holdout']:,} held out); "
        f"{n['dropped_window']:,} dropped (window ends after {ts.date()}), "
        f"{n['dropped_no_history']:,} without a purchase before the send"
    )
    out.print(
        f"propensities estimated from the log and clipped: {n['propensity_clipped']:,} clipped"
    )
    out.print("held-out value per customer (DR, 95% CI):")
    for name, v in result.values.items():
        out.print(f"  {name:<18} {v.dr:10.3f}  [{v.dr_low:.3f}, {v.dr_high:.3f}]")
    for action, (q, lo, hi) in result.qini.items():
        out.print(f"  qini {action:<13} {q:10.3f}  [{lo:.3f}, {hi:.3f}]")
    basis = (
        "learned policy"
        if result.basis == "learned"
        else f"best constant policy ({result.uniform_action})"
    )
    out.print(f"decision basis: {basis}")
    out.print(f"churnclv-uplift v{result.version}: {result.reason}")
    out.print(f"run {result.run_id} in {uri}")


@contextmanager
def _no_empty_workdir(workdir: Path, created: bool) -> Iterator[None]:
    """Remove the work directory this run created when it fails before writing into it."""
    try:
        yield
    except BaseException:
        if created and workdir.is_dir() and not any(workdir.iterdir()):
            workdir.rmdir()
        raise
