"""The campaign options of the ``churnclv`` CLI and the ``evaluate-campaign`` verb's glue."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from churnclv._campaigns import CampaignColumns

__all__ = [
    "CampaignCustomerCol",
    "CampaignIdCol",
    "CampaignTsCol",
    "Campaigns",
    "Control",
    "ResponseDays",
    "TreatmentCol",
    "campaign_columns_from",
]

Campaigns = Annotated[
    Path,
    typer.Option(
        help="Campaign log (CSV or Parquet): customer id, send timestamp, treatment "
        "(the control arm or a policy action), optional campaign id; one row per send."
    ),
]
Control = Annotated[
    str, typer.Option(help="Treatment label of the untreated (control) arm of the campaign log.")
]
ResponseDays = Annotated[
    int,
    typer.Option(
        help="Response window in days: a send's outcome is the net spend in (ts, ts + N days].",
        min=1,
    ),
]
CampaignCustomerCol = Annotated[
    str, typer.Option(help="Campaign log column holding the customer id.")
]
CampaignTsCol = Annotated[str, typer.Option(help="Campaign log column holding the send time.")]
TreatmentCol = Annotated[str, typer.Option(help="Campaign log column holding the treatment.")]
CampaignIdCol = Annotated[
    str,
    typer.Option(
        help="Campaign log column holding the campaign id; without it the send date is the id."
    ),
]


def campaign_columns_from(values: Mapping[str, Any]) -> CampaignColumns:
    """The :class:`CampaignColumns` of a verb's ``campaign_*_col`` and ``treatment_col``."""
    from churnclv._campaigns import CampaignColumns

    return CampaignColumns(
        customer_id=values["campaign_customer_col"],
        ts=values["campaign_ts_col"],
        treatment=values["treatment_col"],
        campaign_id=values["campaign_id_col"],
    )
