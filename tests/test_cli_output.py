"""What the CLI prints about a campaign selection."""

from __future__ import annotations

import pandas as pd
import pytest

from churnclv import _cli_output


def _selection(costs: list[float], selected: list[bool]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "selected": selected,
            "action_cost": costs,
            "expected_saved_value": [30.0 * bool(c) for c in costs],
        }
    )


def test_campaign_line_states_the_return_on_cost(capsys: pytest.CaptureFixture[str]) -> None:
    _cli_output.print_campaign(_selection([5.0, 5.0, 0.0], [True, True, False]))
    line = " ".join(capsys.readouterr().out.split())
    assert "2 customers, cost 10" in line and "ROI 5.0x" in line


def test_campaign_line_without_a_paid_action_has_no_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _cli_output.print_campaign(_selection([0.0, 0.0], [False, False]))
    line = " ".join(capsys.readouterr().out.split())
    assert line == "campaign: 0 customers, no paid action chosen"
