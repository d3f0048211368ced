"""The decision report as a person sees it: rendered in headless Chromium, then read back."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _chromium import CHROMIUM, COUNT, Page, render

from churnclv._report import selected_csv_path, write_report


def _scored(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    value = rng.lognormal(3, 1.5, n)
    action = rng.choice(["none", "email_reminder", "personal_call"], n)
    cost = np.select([action == "email_reminder", action == "personal_call"], [0.5, 25.0], 0.0)
    saved = np.where(action == "none", 0.0, p * value * 0.2)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "churn_probability": p,
            "predicted_value": value,
            "value_tier": pd.qcut(
                -value, [0, 0.2, 0.5, 1], labels=["high", "medium", "low"]
            ).astype(str),
            "risk_band": np.where(p >= 0.6, "high", np.where(p >= 0.3, "medium", "low")),
            "lifecycle_stage": rng.choice(["new", "active", "silent", "churned"], n),
            "rfm_segment": rng.choice(["champions", "cant_lose_them", "about_to_sleep"], n),
            "action": action,
            "expected_net_gain": saved - cost,
            "as_of": pd.Timestamp("2024-01-01"),
            "model_version": "churn:v1+value:v1",
            "selected": (action != "none") & (saved > cost),
            "action_cost": cost,
            "expected_saved_value": saved,
        }
    )


def _check_page(page: Page, report: Path, scored: pd.DataFrame) -> None:
    assert page.images, "the report shows charts"
    for img in page.images:
        assert img.get("alt", "").strip(), "every chart has alt text"
        assert img.get("title", "").strip(), "every chart has a title"
    assert page.captions >= len(page.images)
    for table in page.tables:
        header = table[0]
        for j, name in enumerate(header):
            if "customers" not in name.lower() or name == "Share of customers":
                continue
            cells = [row[j] for row in table[1:]]
            assert all(COUNT.match(c) for c in cells), (name, cells)
            assert not any(re.search(r"\d+\.00", c) for c in cells)
        assert not any("_" in name for name in header), header
    csv_links = [h for h in page.links if h.endswith(".csv")]
    if not scored["selected"].any():  # nobody to contact: nothing to download
        assert not csv_links and pd.read_csv(selected_csv_path(report)).empty
        return
    assert len(csv_links) == 1
    target = (report.parent / csv_links[0]).resolve()
    assert target == selected_csv_path(report).resolve() and target.exists()
    selected = pd.read_csv(target)
    assert set(selected["customer_id"]) == set(scored.loc[scored["selected"], "customer_id"])


def test_report_reads_as_words_and_numbers(tmp_path: Path) -> None:
    """Formatted counts, chart captions, no code names in headers, a CSV link that resolves."""
    scored = _scored()
    out = write_report(scored, tmp_path / "report.html", notes=["A caveat in words."])
    page = Page()
    page.feed(out.read_text())
    _check_page(page, out, scored)
    text = out.read_text()
    assert "A caveat in words." in text and "expected_saved_value" not in text
    assert re.search(r"<div class='v'>-?\d+\.\dx</div>", text), "ROI shows as 1.6x"


def test_report_without_selection_says_so(tmp_path: Path) -> None:
    """No selected customer: the headline says no action pays, the CSV is empty."""
    scored = _scored().assign(selected=False)
    out = write_report(scored, tmp_path / "r.html")
    assert "no retention action pays" in out.read_text()
    assert pd.read_csv(selected_csv_path(out)).empty


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_demo_report_renders_in_chromium(demo_workdir: Path, tmp_path: Path) -> None:
    """The demo's report, rendered at 1280 px: no console error, readable tables and charts."""
    from churnclv import load_champion
    from churnclv._reporting import write_decision_report
    from churnclv.training import tracking_uri_for

    scored = pd.read_parquet(demo_workdir / "scores.parquet")
    uri = tracking_uri_for(demo_workdir)
    out = write_decision_report(scored, tmp_path / "report.html", uri, load_champion(uri))
    shot = tmp_path / "report.png"
    shown = render(out, png=shot)
    assert not shown.console, shown.console
    page = shown.page
    _check_page(page, out, scored)
    assert len(page.images) == 9  # 6 decision charts + 3 champion-run charts
    assert "Why customers are at risk" in shown.dom
    assert "How good are the models" in shown.dom
    assert shot.stat().st_size > 50_000
