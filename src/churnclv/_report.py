"""The decision report: one self-contained HTML page for the person who runs the campaign.

Built from a scores frame (``churnclv score`` / ``demo``) and, when a tracking
store is at hand, the champion run's metrics and evaluation plots. The page
opens on a headline computed from the data and headline cards, then shows where
the value at risk is, whom to contact first (with a CSV of every selected
customer written next to the page), why customers are at risk, how value is
spread, how tiers moved since the previous snapshot and how good the models
are next to the baselines. Figures are inlined
PNGs (:mod:`churnclv._report_figures`); the page is written atomically.

A little over 500 lines: one page's sections, each a small function that
reads only this module's table and formatting helpers; splitting them would
scatter one page over several files.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnclv._io import atomic_write
from churnclv._report_figures import (
    CAPTIONS,
    count,
    decision_figures,
    money,
    pct,
    plain,
    tier_risk_table,
    value_at_risk,
    words,
)
from churnclv._satisfaction import satisfaction_section

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["decision_figures", "selected_csv_path", "truth_caveat", "write_report"]

TOP_N = 20

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
 margin:0 auto;padding:24px 32px;max-width:1200px;line-height:1.45}
h1{margin:0 0 4px}h2{margin-top:36px;border-bottom:2px solid #eee;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}.headline{font-size:1.25em;margin:12px 0 20px}
.cards{display:grid;grid-template-columns:repeat(5,1fr);gap:12px}
.card{border:1px solid #ddd;border-radius:8px;padding:12px 14px;background:#fafafa}
.card .v{font-size:1.6em;font-weight:600}.card .k{color:#555;font-size:.9em}
.caveat{border-left:5px solid #f9a825;background:#fff8e1;padding:10px 16px;margin:16px 0}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
figure{margin:0;border:1px solid #e5e5e5;border-radius:6px;padding:8px;break-inside:avoid}
figure img{width:100%;height:auto}figcaption{color:#555;font-size:.9em;margin-top:4px}
table{border-collapse:collapse;margin:8px 0;font-size:.95em}
th,td{padding:4px 10px;white-space:nowrap;border-bottom:1px solid #eee;text-align:left;
 vertical-align:top}
td:last-child{white-space:normal}th{background:#f5f5f5;white-space:normal}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#666;font-size:.9em}
@media print{body{max-width:none;padding:0;font-size:11pt}.grid{grid-template-columns:1fr 1fr}
 h2{break-after:avoid}table,figure,.cards{break-inside:avoid}a{color:inherit}}
"""

_QUALITY = (
    # metric, label, better ("high", "low" or "one"), format, what it means
    ("churn_roc_auc", "Churn ranking (ROC AUC)", "high", "num",
     "The chance that a customer who churns is ranked above one who stays "
     "(0.5 is a coin toss, 1 is perfect)."),
    ("churn_brier", "Churn probability error (Brier score)", "low", "num",
     "The average squared gap between the predicted probability and what happened."),
    ("churn_ece", "Calibration error", "low", "pct",
     "How far, on average, predicted churn probabilities are from the churn rates observed."),
    ("value_gini", "Value ranking (normalised Gini)", "high", "num",
     "How well customers are put in order of their future value (1 is a perfect order)."),
    ("value_spearman", "Value rank agreement (Spearman)", "high", "num",
     "How closely the predicted order of customers by value matches the real order."),
    ("value_decile_mape", "Value error per tenth of customers", "low", "pct",
     "The average error of total predicted value within each tenth of customers."),
    ("value_total_ratio", "Total predicted / actual value", "one", "ratio",
     "1.00x means the total is right; below 1 the model under-predicts, above 1 it "
     "over-predicts."),
)  # fmt: skip
_BASELINES = (("RFM", "baseline_rfm_"), ("BG/NBD", "baseline_bgnbd_"))


def selected_csv_path(report: str | os.PathLike[str]) -> Path:
    """Where the CSV of selected customers goes: next to ``report``.

    Examples
    --------
    >>> selected_csv_path("out/report.html").as_posix()
    'out/report_selected_customers.csv'
    """
    out = Path(report)
    return out.with_name(f"{out.stem}_selected_customers.csv")


def truth_caveat(realised: float, predicted: float) -> str:
    """The check against known truth (the demo's synthetic data) as a plain sentence.

    Parameters
    ----------
    realised : float
        The value the selected customers' actions would truly save.
    predicted : float
        The expected saved value the report predicts for them.

    Examples
    --------
    >>> truth_caveat(3830.0, 10970.0)[:72]
    'Checked against the synthetic truth, this campaign would really save abo'
    >>> truth_caveat(3830.0, 10970.0)[72:]
    'ut 3,830, 65% less than the 10,970 predicted: read the expected gains as optimistic.'
    """
    if predicted <= 0:
        return f"Checked against the synthetic truth, this campaign would save {money(realised)}."
    gap = realised / predicted - 1
    way = "less" if gap < 0 else "more"
    hint = "optimistic" if gap < 0 else "cautious"
    return (
        f"Checked against the synthetic truth, this campaign would really save about "
        f"{money(realised)}, {pct(abs(gap), 0)} {way} than the {money(predicted)} predicted: "
        f"read the expected gains as {hint}."
    )


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _e(text: object) -> str:
    return html.escape(str(text))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    def cell(tag: str, j: int, text: str) -> str:
        return f"<{tag} class='n'>{text}</{tag}>" if j in numeric else f"<{tag}>{text}</{tag}>"

    head = "".join(cell("th", j, _e(h)) for j, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", j, _e(v)) for j, v in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(name: str, png: bytes) -> str:
    caption = CAPTIONS.get(name, words(name.removesuffix(".png").removeprefix("model_")))
    b64 = base64.b64encode(png).decode()
    return (
        f"<figure><img src='data:image/png;base64,{b64}' alt='{_e(caption)}' "
        f"title='{_e(caption)}'><figcaption>{_e(caption)}</figcaption></figure>"
    )


def _headline(scored: pd.DataFrame, summary: Mapping[str, float]) -> str:
    at_risk = float(value_at_risk(scored).sum())
    n, var = tier_risk_table(scored)
    i, j = np.unravel_index(int(np.argmax(var.to_numpy())), var.shape)
    share = float(var.iat[i, j]) / at_risk if at_risk > 0 else 0.0
    where = (
        f" The largest share of it, {pct(share, 0)}, sits with {count(n.iat[i, j])} "
        f"{var.index[i]}-value, {var.columns[j]}-risk customers."
        if at_risk > 0
        else ""
    )
    k = int(summary.get("customers", 0))
    if k == 0:
        from churnclv._report_uplift import nothing_pays

        return (
            f"{money(at_risk)} of predicted value is at risk across {count(len(scored))} "
            f"customers, and {nothing_pays(scored)}.{where}"
        )
    return (
        f"Contacting {count(k)} of {count(len(scored))} customers costs "
        f"{money(summary['cost'])} and is expected to save {money(summary['expected_saved_value'])}"
        f" of the {money(at_risk)} at risk: a net gain of {money(summary['expected_net_gain'])}."
        f"{where}"
    )


def _cards(scored: pd.DataFrame, summary: Mapping[str, float]) -> str:
    roi = float(summary.get("roi", float("nan")))
    cards = [
        ("Customers scored", count(len(scored))),
        ("Value at risk", money(value_at_risk(scored).sum())),
        (
            f"Campaign cost ({count(summary.get('customers', 0))} customers)",
            money(summary.get("cost", 0.0)),
        ),
        ("Expected net gain", money(summary.get("expected_net_gain", 0.0))),
        ("Return on cost (ROI)", f"{roi:.1f}x" if np.isfinite(roi) else "-"),
    ]
    items = "".join(
        f"<div class='card'><div class='v'>{_e(v)}</div><div class='k'>{_e(k)}</div></div>"
        for k, v in cards
    )
    return f"<div class='cards'>{items}</div>"


def _driver_label(reason: Mapping[str, Any]) -> str:
    label = reason.get("label")
    if label:
        return str(label)
    feature = str(reason.get("feature", ""))
    known = {
        "recency_days": "time since the last purchase",
        "overdue_ratio": "time since the last purchase vs the usual gap",
        "days_since_event": "time since the last activity",
        "btyd_expected_purchases_churn": "number of purchases expected soon",
        "btyd_expected_purchases_value": "number of purchases expected in the longer run",
        "btyd_p_no_purchase_churn": "chance of no purchase soon",
        "btyd_p_alive": "likelihood the customer is still active",
        "gap_mean_days": "usual gap between purchases",
        "monetary_total": "total spend",
        "monetary_mean": "spend per purchase day",
        "tenure_days": "time since the first purchase",
        "events_trend_90d": "activity trend over the last 90 days",
        "spend_trend_90d": "spend trend over the last 90 days",
    }
    if feature in known:
        return known[feature]
    if feature.startswith("days_since_"):
        return "time since the last " + feature.removeprefix("days_since_").replace("_", " ")
    return feature.replace("_", " ")


def _raises(reason: Mapping[str, Any]) -> bool:
    direction = reason.get("direction")
    if direction in ("raises", "lowers"):
        return direction == "raises"
    return float(reason.get("contribution", 0.0)) > 0


def _drivers(scored: pd.DataFrame, detail: list[Any] | None) -> str:
    if detail is None or not len(scored):
        return ""
    up: Counter[str] = Counter()
    down: Counter[str] = Counter()
    for items in detail:
        for label in {_driver_label(r) for r in items if _raises(r)}:
            up[label] += 1
        for label in {_driver_label(r) for r in items if not _raises(r)}:
            down[label] += 1
    if not up:
        return ""
    n = len(scored)
    top, k = up.most_common(1)[0]
    rows = [[words(lbl), count(c), pct(c / n), count(down[lbl])] for lbl, c in up.most_common(8)]
    return (
        "<h2>Why customers are at risk</h2>"
        f"<p>What most often raises a customer's churn risk is <b>{_e(top)}</b>: it is among "
        f"the three strongest reasons raising the risk of {count(k)} customers ({pct(k / n)})."
        "</p>"
        + _table(
            [
                "Driver",
                "Raises risk for (customers)",
                "Share of customers",
                "Lowers risk for (customers)",
            ],
            rows,
            {1, 2, 3},
        )
        + "<p class='muted'>Each customer's three strongest reasons, counted over all "
        "scored customers.</p>"
    )


def _top_reason(scored: pd.DataFrame, detail: list[Any] | None, index: int) -> str:
    if detail is not None:
        ups = [r for r in detail[index] if _raises(r)]
        return words(_driver_label(ups[0])) if ups else "no strong reason"
    text = scored["reasons"].iat[index] if "reasons" in scored else ""
    return str(text).split("; ")[0] if text else "-"


def _actions_section(scored: pd.DataFrame, detail: list[Any] | None, csv_name: str) -> str:
    sel = scored.reset_index(drop=True)
    chosen = sel[sel["selected"]].sort_values("expected_net_gain", ascending=False)
    if chosen.empty:
        return "<h2>Who to contact first</h2><p>No customer is selected for an action.</p>"
    rows = [
        [
            str(r.customer_id),
            pct(r.churn_probability, 0),
            money(r.predicted_value),
            words(r.value_tier),
            words(r.lifecycle_stage),
            words(r.action),
            money(r.expected_net_gain),
            _top_reason(sel, detail, int(i)),
        ]
        for i, r in chosen.head(TOP_N).iterrows()
    ]
    by_action = (
        sel.groupby("action")
        .agg(
            recommended=("customer_id", "size"),
            selected=("selected", "sum"),
            cost=("action_cost", lambda c: c[sel.loc[c.index, "selected"]].sum()),
            saved=("expected_saved_value", lambda c: c[sel.loc[c.index, "selected"]].sum()),
        )
        .drop(index="none", errors="ignore")
        .sort_values("saved", ascending=False)
    )
    mix = [
        [
            words(a),
            count(r.recommended),
            count(r.selected),
            money(r.cost),
            money(r.saved),
            money(r.saved - r.cost),
        ]
        for a, r in by_action.iterrows()
    ]
    return (
        "<h2>Who to contact first</h2>"
        f"<p>The {min(TOP_N, len(chosen))} selected customers with the highest expected net gain. "
        f"<a href='{_e(csv_name)}' download>Download all {count(len(chosen))} selected customers "
        "(CSV)</a>.</p>"
        + _table(
            [
                "Customer",
                "Churn probability",
                "Predicted value",
                "Value tier",
                "Lifecycle stage",
                "Action",
                "Expected net gain",
                "Main reason for risk",
            ],
            rows,
            {1, 2, 6},
        )
        + "<h3>Campaign by action</h3>"
        + _table(
            [
                "Action",
                "Customers recommended",
                "Customers in campaign",
                "Cost",
                "Expected saved value",
                "Expected net gain",
            ],
            mix,
            {1, 2, 3, 4, 5},
        )
    )


def _fmt_metric(value: float | None, kind: str) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return {"pct": pct(value), "ratio": f"{value:.2f}x"}.get(kind, f"{value:.3f}")


def _verdict(model: float, base: dict[str, float], better: str) -> str:
    def score(v: float) -> float:
        return {"high": v, "low": -v}.get(better, -abs(v - 1.0))

    if not base:
        return ""
    best_name = max(base, key=lambda k: score(base[k]))
    if score(model) >= score(base[best_name]):
        return " The model does better than every baseline."
    return f" {best_name} does better than the model here."


def _quality(metrics: Mapping[str, float]) -> str:
    rows = []
    for key, label, better, kind, meaning in _QUALITY:
        model = metrics.get(key)
        if model is None or not np.isfinite(model):
            continue
        base = {}
        for name, prefix in _BASELINES:
            bkey = prefix + ("gg_" if key.startswith("value_") and name == "BG/NBD" else "") + key
            v = metrics.get(bkey)
            if v is not None and np.isfinite(v):
                base[name] = float(v)
        rows.append(
            [
                label,
                _fmt_metric(model, kind),
                _fmt_metric(base.get("RFM"), kind),
                _fmt_metric(base.get("BG/NBD"), kind),
                meaning + _verdict(float(model), base, better),
            ]
        )
    if not rows:
        return ""
    return (
        "<p>Measured on customers the models did not see in training (out of time), beside "
        "two simple baselines: RFM (recency and past spend) and BG/NBD (a classic "
        "buy-till-you-die model, with Gamma-Gamma for value).</p>"
        + _table(["Measure", "Model", "RFM", "BG/NBD", "What it means"], rows, {1, 2, 3})
    )


def _migration_section(previous: pd.DataFrame | None, scored: pd.DataFrame) -> str:
    from churnclv._migration import migration_matrix, migration_summary

    if previous is None or not len(previous) or not len(scored):
        return ""
    grid = migration_matrix(previous, scored)
    words = {"new customer": "New customers", "gone": "No longer scored"}
    head = ["Previous tier", *(words.get(c, f"Now {c} value") for c in grid.columns)]
    rows = [
        [words.get(str(i), f"{i} value".capitalize()), *(f"{int(v):,}" for v in grid.loc[i])]
        for i in grid.index
    ]
    return (
        "<h2>Since the last snapshot</h2>"
        f"<p>{_e(migration_summary(previous, scored)['sentence'])}</p>"
        + _table(head, rows, set(range(1, len(head))))
    )


def _write_csv(scored: pd.DataFrame, path: Path) -> Path:
    cols = [
        c
        for c in (
            "customer_id",
            "churn_probability",
            "predicted_value",
            "value_tier",
            "risk_band",
            "lifecycle_stage",
            "rfm_segment",
            "action",
            "action_cost",
            "expected_saved_value",
            "expected_net_gain",
            "reasons",
        )
        if c in scored
    ]
    chosen = scored.loc[scored["selected"], cols].sort_values("expected_net_gain", ascending=False)
    return atomic_write(path, lambda tmp: chosen.to_csv(tmp, index=False, float_format="%.4f"))


def write_report(
    scored: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    summary: Mapping[str, float] | None = None,
    model_plots: Mapping[str, bytes] | None = None,
    figures: Mapping[str, Figure] | None = None,
    title: str = "Customer retention report",
    notes: list[str] | None = None,
    model_metrics: Mapping[str, float] | None = None,
    previous: pd.DataFrame | None = None,
    uplift_decision: Mapping[str, Any] | None = None,
    policy_scored: pd.DataFrame | None = None,
) -> Path:
    """Write the HTML report of a scores frame and the CSV of its selected customers.

    Parameters
    ----------
    scored : pandas.DataFrame
        Output of :func:`churnclv.serving.score` (with ``selected``,
        ``action_cost``, ``expected_saved_value``; its ``reasons_detail``
        attribute, when present, gives the churn drivers).
    out : path-like
        The HTML file to write (atomically); the CSV goes next to it
        (:func:`selected_csv_path`).
    summary : mapping, optional
        Campaign totals (:func:`churnclv.decisions.campaign_summary`).
    model_plots : mapping of str to bytes, optional
        PNGs of the champion run (calibration, gains, value deciles).
    figures : mapping of str to Figure, optional
        :func:`decision_figures` of ``scored`` when the caller already built them.
    title : str
        The page title.
    notes : list of str, optional
        Caveats shown near the top, e.g. the demo's check against synthetic truth.
    model_metrics : mapping of str to float, optional
        The champion runs' metrics (model and ``baseline_*``), for the quality table.
    previous : pandas.DataFrame, optional
        The score snapshot before this one: adds the tier migration section.
    uplift_decision : mapping, optional
        The uplift champion's gate decision (``UpliftModel.decision_``), for
        the section on learned actions.
    policy_scored : pandas.DataFrame, optional
        The same customers scored without the uplift model: that section then
        counts the policy formula's actions beside the learned ones.

    Returns
    -------
    pathlib.Path
        The HTML file written.
    """
    from churnclv._report_uplift import learned_actions_section
    from churnclv.decisions import campaign_summary

    detail = scored.attrs.get("reasons_detail")
    if not isinstance(detail, list) or len(detail) != len(scored):
        detail = None
    scored = plain(scored)
    summary = dict(summary) if summary else campaign_summary(scored)
    own = figures if figures is not None else decision_figures(scored)
    figs = {name: _png(fig) for name, fig in own.items()}
    csv = _write_csv(scored, selected_csv_path(out))
    as_of = pd.Timestamp(scored["as_of"].iloc[0]).date() if len(scored) else "-"
    version = scored["model_version"].iloc[0] if len(scored) else "-"

    def grid(names: Sequence[str], source: Mapping[str, bytes]) -> str:
        items = [_figure(n, source[n]) for n in names if n in source]
        return f"<div class='grid'>{''.join(items)}</div>" if items else ""

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>Scores as of {as_of} &middot; models {_e(version)}</p>",
        f"<p class='headline'>{_e(_headline(scored, summary))}</p>",
        _cards(scored, summary),
    ]
    if notes:
        parts.append("<div class='caveat'><b>Before you act</b>")
        parts += [f"<p>{_e(note)}</p>" for note in notes]
        parts.append("</div>")
    parts += [
        "<h2>Where the value at risk is</h2>",
        grid(["tier_risk_matrix.png", "action_mix.png"], figs),
        _actions_section(scored, detail, csv.name),
        learned_actions_section(scored, uplift_decision, policy_scored),
        _drivers(scored, detail),
        _migration_section(previous, scored),
        satisfaction_section(scored),
        "<h2>Customer value</h2>",
        grid(
            [
                "clv_distribution.png",
                "rfm_segments.png",
                "lifecycle_mix.png",
                "churn_distribution.png",
            ],
            figs,
        ),
    ]
    known = set(CAPTIONS) - {n for n in CAPTIONS if n.startswith("model_")}
    extra = [n for n in figs if n not in known]
    plots = dict(model_plots or {})
    quality = _quality(model_metrics or {})
    if quality or plots or extra:
        parts += ["<h2>How good are the models</h2>", quality]
        parts.append(grid(list(plots), plots) + grid(extra, figs))
    parts.append(
        "<p class='muted'>Money is in the currency of the input transactions. Value at risk = "
        "churn probability x predicted value, summed over customers. Expected net gain = "
        "expected saved value - action cost.</p></body></html>"
    )
    text = "\n".join(p for p in parts if p)
    return atomic_write(out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
