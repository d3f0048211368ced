"""Decisions: tiers, bands, stages, segments and actions from predictions and the YAML policy."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

from churnclv import InputError
from churnclv.decisions import (
    LIFECYCLE_STAGES,
    RFM_SEGMENTS,
    STAGE_SEGMENTS,
    Action,
    Policy,
    decide,
    load_policy,
    rfm_segment,
)

POLICY = Policy(
    high_share=0.2,
    medium_share=0.3,
    risk_high=0.6,
    risk_medium=0.3,
    new_max_tenure_days=60,
    silent_gap_multiple=2.0,
    silent_default_days=60,
    churned_recency_days=None,
    actions=(Action("email", 1.0, 0.05), Action("call", 20.0, 0.3)),
)


def _row(**kw: float) -> dict[str, float]:
    base = {
        "churn_probability": 0.1,
        "predicted_value": 10.0,
        "recency_days": 5.0,
        "tenure_days": 300.0,
        "gap_mean_days": 20.0,
        "r_score": 3,
        "f_score": 3,
        "m_score": 3,
    }
    return base | kw


@pytest.mark.parametrize(
    ("row", "stage"),
    [
        (_row(recency_days=100.0), "churned"),  # beyond the 90-day churn horizon
        (_row(tenure_days=30.0, recency_days=30.0), "new"),
        (_row(recency_days=45.0), "silent"),  # > 2 x the 20-day usual gap
        (_row(recency_days=65.0, gap_mean_days=float("nan")), "silent"),  # one-timer past 60 days
        (_row(recency_days=55.0, gap_mean_days=float("nan")), "active"),
        (_row(recency_days=35.0), "active"),
    ],
)
def test_lifecycle_stage_follows_policy_rules(row: dict[str, float], stage: str) -> None:
    """Each hand-made customer lands in the lifecycle stage its recency, tenure and gap imply."""
    out = decide(pd.DataFrame([row]), POLICY, churn_horizon_days=90)
    assert out["lifecycle_stage"].tolist() == [stage]


@pytest.mark.parametrize(
    ("p", "value", "action", "gain"),
    [
        (0.9, 1000.0, "call", 0.9 * 1000 * 0.3 - 20),
        (0.5, 100.0, "email", 0.5 * 100 * 0.05 - 1),
        (0.1, 10.0, "none", 0.0),
        (0.9, -50.0, "none", 0.0),  # a negative predicted value is never worth saving
    ],
)
def test_action_maximises_expected_net_gain(
    p: float, value: float, action: str, gain: float
) -> None:
    """The action has the best P(churn) x value x uplift - cost, or none when nothing pays."""
    out = decide(
        pd.DataFrame([_row(churn_probability=p, predicted_value=value)]),
        POLICY,
        churn_horizon_days=90,
    )
    assert out["action"].tolist() == [action]
    assert out["expected_net_gain"].iloc[0] == pytest.approx(gain)


def test_value_tiers_split_by_share_and_risk_bands_by_threshold() -> None:
    """Ten customers split 2/3/5 into high/medium/low value; risk bands cut at 0.3 and 0.6."""
    rows = [
        _row(predicted_value=float(v), churn_probability=p)
        for v, p in zip(
            range(10), [0.0, 0.29, 0.3, 0.59, 0.6, 1.0, 0.1, 0.2, 0.7, 0.4], strict=True
        )
    ]
    out = decide(pd.DataFrame(rows), POLICY, churn_horizon_days=90)
    assert out["value_tier"].tolist() == ["low"] * 5 + ["medium"] * 3 + ["high"] * 2
    assert out["risk_band"].tolist() == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "low",
        "low",
        "high",
        "medium",
    ]


def test_rfm_segments_cover_every_score_combination() -> None:
    """Every (R, F, M) in 1..5 maps to one of the 11 classic segments, and all of them occur."""
    seen = {rfm_segment(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}
    assert seen == set(RFM_SEGMENTS)


@pytest.mark.parametrize(
    ("scores", "segment"),
    [
        ((5, 5, 5), "champions"),
        ((1, 1, 1), "lost"),
        ((1, 5, 5), "cant_lose_them"),
        ((5, 1, 1), "new_customer"),
        ((3, 3, 3), "need_attention"),
        ((2, 3, 4), "at_risk"),
    ],
)
def test_rfm_segment_examples(scores: tuple[int, int, int], segment: str) -> None:
    """Textbook score triples get their textbook segment names."""
    assert rfm_segment(*scores) == segment


def test_shipped_policy_loads() -> None:
    """The default policy file is valid and has at least one action."""
    pol = load_policy()
    assert pol.actions and pol.risk_medium < pol.risk_high
    assert set(LIFECYCLE_STAGES) == {"new", "active", "silent", "churned"}


def test_editing_yaml_changes_decisions(tmp_path: Path) -> None:
    """Raising the actions' costs in the YAML turns a paying action into none."""
    text = (Path(__file__).parents[1] / "src" / "churnclv" / "default_policy.yaml").read_text()
    row = pd.DataFrame([_row(churn_probability=0.5, predicted_value=100.0)])
    before = decide(row, load_policy(), churn_horizon_days=90)["action"].iloc[0]
    assert before != "none"
    costly = tmp_path / "p.yaml"
    costly.write_text(
        text.replace("cost: 0.5", "cost: 500")
        .replace("cost: 5.0", "cost: 500")
        .replace("cost: 25.0", "cost: 500")
        .replace("cost: 3.0", "cost: 500")
    )
    assert decide(row, load_policy(costly), churn_horizon_days=90)["action"].iloc[0] == "none"


def test_segment_uplift_overrides_and_eligibility() -> None:
    """A segment's own uplift replaces the default, and ineligible segments never get the action."""
    policy = Policy(
        actions=(
            Action("call", 10.0, 0.2, uplift_by_segment=(("lost", 0.01),)),
            Action("vip", 1.0, 0.5, segments=("champions",)),
        )
    )
    rows = [
        _row(  # lost: a churned customer (an active one would be about_to_sleep)
            churn_probability=0.9,
            predicted_value=500.0,
            recency_days=100.0,
            r_score=1,
            f_score=1,
            m_score=1,
        ),
        _row(
            churn_probability=0.9, predicted_value=500.0, r_score=5, f_score=5, m_score=5
        ),  # champ
        _row(
            churn_probability=0.9, predicted_value=500.0, r_score=2, f_score=3, m_score=4
        ),  # at_risk
    ]
    out = decide(pd.DataFrame(rows), policy, churn_horizon_days=90)
    assert out["rfm_segment"].tolist() == ["lost", "champions", "at_risk"]
    assert out["action"].tolist() == ["none", "vip", "call"]
    assert out["expected_net_gain"].tolist() == pytest.approx(
        [0.0, 0.9 * 500 * 0.5 - 1, 0.9 * 500 * 0.2 - 10]
    )
    assert out["expected_saved_value"].tolist() == pytest.approx([0.0, 225.0, 90.0])


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("      lost: 0.03", "      lsot: 0.03"), "uplift_by_segment.lsot"),
        (("segments: [champions,", "segments: [champs,"), "actions[2].segments"),
        (("high: 0.6", "high: 0.2"), "risk_band.medium"),
        (("cost: 0.5", "cost: -1"), "actions[0].cost"),
        (("value_tier:", "valeu_tier:"), "valeu_tier"),
        (("silent_default_days: 60", "silent_default_days: soon"), "lifecycle.silent_default_days"),
    ],
)
def test_invalid_policy_names_the_key(tmp_path: Path, edit: tuple[str, str], key: str) -> None:
    """A broken policy file is rejected with an error naming the offending key."""
    text = (Path(__file__).parents[1] / "src" / "churnclv" / "default_policy.yaml").read_text()
    assert edit[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(InputError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_policy(bad)


def test_lifecycle_stage_and_rfm_segment_never_contradict() -> None:
    """For every stage and every (R, F, M) cell, the segment is one the stage allows, cells the
    stage allows keep their classic segment, and every allowed segment occurs."""
    stage_rows = {  # one customer per stage under POLICY (90-day horizon, 20-day usual gap)
        "churned": {"recency_days": 100.0},
        "new": {"tenure_days": 30.0, "recency_days": 10.0},
        "silent": {"recency_days": 45.0},
        "active": {"recency_days": 5.0},
    }
    cells = list(itertools.product(range(1, 6), repeat=3))
    for stage, where in stage_rows.items():
        rows = [_row(**where, r_score=r, f_score=f, m_score=m) for r, f, m in cells]
        out = decide(pd.DataFrame(rows), POLICY, churn_horizon_days=90)
        assert set(out["lifecycle_stage"]) == {stage}
        got = out["rfm_segment"].tolist()
        assert set(got) == STAGE_SEGMENTS[stage], stage
        for (r, f, m), seg in zip(cells, got, strict=True):
            classic = rfm_segment(r, f, m)
            if classic in STAGE_SEGMENTS[stage] and stage not in ("new", "churned"):
                assert seg == classic, (stage, r, f, m)


@pytest.mark.parametrize(
    ("stage_row", "scores", "segment"),
    [
        ({"recency_days": 100.0}, (3, 1, 1), "lost"),  # about_to_sleep by rank, but churned
        ({"recency_days": 100.0}, (5, 5, 5), "hibernating"),
        ({"tenure_days": 30.0, "recency_days": 10.0}, (5, 5, 5), "new_customer"),
        ({"tenure_days": 30.0, "recency_days": 10.0}, (2, 1, 1), "promising"),
        ({"recency_days": 45.0}, (5, 5, 5), "cant_lose_them"),
        ({"recency_days": 45.0}, (4, 4, 4), "at_risk"),
        ({"recency_days": 45.0}, (1, 1, 1), "hibernating"),
        ({"recency_days": 5.0}, (1, 1, 1), "about_to_sleep"),
        ({"recency_days": 5.0}, (5, 1, 1), "promising"),
        ({"recency_days": 5.0}, (2, 4, 4), "at_risk"),
    ],
)
def test_stage_precedence_examples(
    stage_row: dict[str, float], scores: tuple[int, int, int], segment: str
) -> None:
    """Hand-picked cells of the stage-then-segment rule (DESIGN §6)."""
    r, f, m = scores
    row = _row(**stage_row, r_score=r, f_score=f, m_score=m)
    assert decide(pd.DataFrame([row]), POLICY, churn_horizon_days=90)["rfm_segment"].iloc[0] == (
        segment
    )
