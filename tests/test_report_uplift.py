"""The report's section on learned actions and the demo's check of them against truth, on tiny
hand-built frames (the demo itself runs once, in the session fixture: tests/test_pipeline.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churnclv._demo_uplift import compare_with_truth, train_demo_uplift
from churnclv._report_uplift import basis_sentence, gate_sentence, learned_actions_section
from churnclv.decisions import Action, Policy

DECISION = {
    "basis": "learned",
    "uniform_action": "none",
    "difference": 2.5,
    "difference_low": 0.75,
    "difference_high": 4.25,
}


def _scored(basis: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "action": ["discount_coupon", "none", "discount_coupon", "none"],
            "selected": [True, False, True, False],
            "action_basis": [basis] * 4,
            "uplift_discount_coupon": [6.0, 6.0, 6.0, 6.0],
            "uplift_personal_call": [np.nan] * 4,
        }
    )


def test_section_reads_as_words_from_the_scores() -> None:
    scored = _scored("best_uniform")
    assert basis_sentence(scored).endswith("best constant action, discount coupon.")
    html = learned_actions_section(scored)
    assert "the best constant policy for 4 customers" in html
    assert "Discount coupon" in html and "discount_coupon" not in html
    assert "not estimated (never sent)" in html and "6.00" in html
    assert "best_uniform" not in html and "Policy formula would give it" not in html
    bare = scored.drop(columns=["uplift_discount_coupon", "uplift_personal_call"])
    assert learned_actions_section(bare) == ""


def test_section_shows_the_gate_and_the_policy_formulas_actions() -> None:
    learned = _scored("learned")
    by_policy = learned.assign(action=["personal_call"] * 4, selected=[True, True, False, True])
    html = learned_actions_section(learned, DECISION, by_policy)
    text = " ".join(html.split())
    assert "worth 2.50 more per customer than the closest constant policy" in text
    assert "(95% interval 0.75 to 4.25)." in text
    assert "Learned uplift chose the action of 4 customers (100%)" in text
    assert "Policy formula would give it" in text
    # personal call: 0 given now, 3 by the policy formula; none: 2 now, 1 by the formula
    assert "<td>Personal call</td><td class='n'>0</td><td class='n'>3</td>" in text
    assert "<td>None</td><td class='n'>2</td><td class='n'>1</td>" in text


def test_gate_sentence_says_when_the_learned_policy_is_noise() -> None:
    noisy = {**DECISION, "basis": "best_uniform", "difference": -1.0, "difference_low": -3.0}
    assert gate_sentence(noisy).endswith(
        "worth 1.00 less per customer than the closest constant policy (95% interval -3.00 "
        "to 4.25), so it cannot be told from noise."
    )
    assert gate_sentence({"basis": "learned"}) == ""


def test_truth_comparison_respects_eligibility_holdout_and_selection() -> None:
    pol = Policy(
        actions=(Action("email", 1.0, 0.03), Action("call", 10.0, 0.2, tiers=("high",))),
        holdout_share=0.0,
    )
    base = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "rfm_segment": "loyal",
            "value_tier": ["high", "low", "high"],
            "lifecycle_stage": "active",
            "holdout": [False, False, True],
        }
    )
    learned = base.assign(
        action=["call", "email", "none"],
        selected=[True, False, False],  # b's email is not in the campaign (budget)
        expected_net_gain=[9.0, 1.0, 0.0],
        action_basis="learned",
    )
    by_policy = base.assign(action=["email", "email", "none"], selected=True)
    truth = pd.DataFrame(
        {"customer_id": ["c", "b", "a"], "effect_email": [9.0, 5.0, 2.0], "effect_call": 50.0}
    )
    c = compare_with_truth(learned, by_policy, truth, pol)
    assert c is not None
    # oracle: a call (40), b email (4: not eligible for the call), c held out (0)
    assert c.counts.loc[["email", "call", "none"], "oracle"].tolist() == [1, 1, 1]
    assert c.true_value == {"learned": 40 / 3, "policy": 5 / 3, "oracle": 44 / 3}
    assert c.expected_value == 3.0
    assert "the learned actions are worth 13.33" in c.sentence()
    assert "against 1.67 for the policy formula's actions and 14.67 for the oracle" in (
        c.sentence()
    )
    assert compare_with_truth(learned, by_policy, truth.drop(columns="effect_call"), pol) is None


def test_demo_uplift_without_a_control_arm_notes_and_goes_on(tmp_path: Path) -> None:
    from churnclv import InputTables
    from churnclv.decisions import load_policy

    log = tmp_path / "campaigns.csv"
    log.write_text("customer_id,ts,treatment\nA,2023-06-01,email_reminder\n")
    tx = pd.DataFrame(
        {"customer_id": ["A"], "ts": pd.to_datetime(["2023-01-02"]), "amount": [10.0]}
    )
    notes: list[str] = []
    result = train_demo_uplift(
        InputTables(tx),
        log,
        as_of=pd.Timestamp("2024-01-01"),
        tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}",
        policy=load_policy(),
        seed=0,
        progress=lambda _msg: None,
        note=notes.append,
    )
    assert result is None
    assert len(notes) == 1 and "actions follow the policy formula" in notes[0]
    assert "no 'control' sends" in notes[0]
