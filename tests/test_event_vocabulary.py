"""Event types chosen from the data, event values, satisfaction (issue 19)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _oracle import assert_features_match, oracle_features

from churnclv import Champion, CustomerIn, InputError, OnlineScorer, generate, load_policy, score
from churnclv._satisfaction import satisfaction_class, satisfaction_columns
from churnclv.cli import main
from churnclv.features import build_features, select_event_types
from churnclv.features._vocabulary import model_vocabulary, vocabulary_record
from churnclv.training import ChurnModel, ValueModel, load_model

CUTOFF = pd.Timestamp("2024-07-01")
TX = pd.DataFrame(
    {
        "customer_id": ["a", "a", "b"],
        "ts": pd.to_datetime(["2024-01-10", "2024-06-01", "2024-03-01"]),
        "amount": [10.0, 20.0, 5.0],
    }
)
EVENTS = pd.DataFrame(
    [
        ("a", "2024-01-15", "nps", 9.0),
        ("a", "2024-05-01", "nps", 6.0),
        ("a", "2024-06-20", "nps", 3.0),
        ("a", "2024-06-20", "nps", 5.0),  # same time as the 3: the last value is the larger
        ("a", "2024-06-25", "nps", None),  # no value: counts as an event, not as a value
        ("a", "2024-06-28", "login", 1.0),  # login is not a valued type here
        ("a", "2024-07-05", "nps", 10.0),  # after the cutoff: never read
        ("b", "2024-02-01", "login", None),
    ],
    columns=["customer_id", "ts", "event_type", "value"],
).astype({"ts": "datetime64[us]"})


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
def test_value_features_hand_built(engine: str) -> None:
    """Every value feature of a hand-built history, written out, on each small-batch engine."""
    got = build_features(
        TX,
        EVENTS,
        as_of=CUTOFF,
        engine=engine,
        event_types=["nps", "login"],
        valued_event_types=["nps"],
    ).set_index("customer_id")
    a = got.loc["a"]
    assert a["ev_nps_value_last"] == 5.0
    assert a["ev_nps_value_mean_30d"] == 4.0  # 3 and 5 (2024-06-20)
    assert a["ev_nps_value_mean_90d"] == pytest.approx(14 / 3)  # 6, 3, 5
    assert a["ev_nps_value_mean_365d"] == 5.75  # 9, 6, 3, 5
    assert a["ev_nps_value_trend"] == -0.75  # last - mean 365d
    assert a["ev_nps_value_days_since"] == 11.0
    assert a["ev_nps_30d"] == 3 and a["ev_nps_90d"] == 4  # the valueless answer counts too
    assert "ev_login_value_last" not in got.columns
    assert got.loc["b", ["ev_nps_value_last", "ev_nps_value_trend"]].isna().all()
    want = oracle_features(
        TX, EVENTS, as_of=CUTOFF, event_types=["nps", "login"], valued_event_types=["nps"]
    )
    assert_features_match(got.reset_index()[want.columns], want)
    sat = satisfaction_columns(got.reset_index(), load_policy())
    assert sat["satisfaction_score"][0] == 5.0 and np.isnan(sat["satisfaction_score"][1])
    assert sat["satisfaction_class"].tolist() == ["low", None]


def test_value_features_equal_the_oracle_on_many_cutoffs() -> None:
    """The bucketed multi-cutoff form gives the oracle's value features too."""
    data = generate(120, seed=5, history_days=300, future_days=10, survey_type="nps")
    cuts = [data.as_of - pd.Timedelta(days=d) for d in (0, 45, 120)]
    kw = {"event_types": ["session", "nps"], "valued_event_types": ["session", "nps"]}
    got = build_features(data.transactions, data.events, as_of=cuts, **kw)
    assert_features_match(got, oracle_features(data.transactions, data.events, as_of=cuts, **kw))


def test_vocabulary_is_top_k_plus_named_and_surveys() -> None:
    """Top K by frequency (ties by name), named types first, nps when present, valued subset."""
    rows = [("c", "2024-01-02", t, v) for t, n, v in [
        ("app_open", 5, None), ("video_play", 4, 3.0), ("share", 4, None),
        ("nps", 1, 8.0), ("bad name", 9, None), ("late", 1, None),
    ] for _ in range(n)]  # fmt: skip
    events = pd.DataFrame(rows, columns=["customer_id", "ts", "event_type", "value"])
    events["ts"] = pd.to_datetime(events["ts"])
    events.loc[len(events)] = ["c", pd.Timestamp("2024-03-01"), "after", 1.0]  # after as_of
    types, valued = select_event_types(events, "2024-02-01", top_k=2, named=["Complaint"])
    assert types == ("complaint", "nps", "app_open", "share")  # 'bad name' cannot be a column
    assert valued == ("nps",)
    types, valued = select_event_types(events, "2024-02-01", top_k=3)
    assert types == ("nps", "app_open", "share", "video_play")
    assert valued == ("nps", "video_play")
    assert select_event_types(None, "2024-02-01", named=["x"]) == (("x",), ())
    with pytest.raises(InputError, match="cannot name a feature column"):
        select_event_types(events, "2024-02-01", named=["a-b"])


def test_model_without_a_vocabulary_uses_the_default_types(tmp_path: Path) -> None:
    frame = pd.DataFrame({"customer_id": range(60), "tenure_days": np.arange(60.0)})
    model = ValueModel(num_boost_round=5).fit(frame, np.arange(60.0) % 3)
    assert model_vocabulary(load_model(model.save(tmp_path / "m")))[0][0] == "login"
    model.attach(event_vocabulary=vocabulary_record((("app_open", "nps"), ("nps",))))
    loaded = load_model(model.save(tmp_path / "v"))
    assert model_vocabulary(loaded) == (("app_open", "nps"), ("nps",))


def test_scoring_uses_the_frozen_vocabulary_and_unseen_types_count_in_totals() -> None:
    """Models fitted on a renamed vocabulary: batch and online scoring compute its columns,
    satisfaction comes from the nps values, an unseen type counts only in totals."""
    names = ["app_open", "video_play", "screen_view", "push_open", "help_ticket", "complaint"]
    data = generate(300, seed=2, history_days=400, future_days=0, event_vocabulary=names,
                    survey_type="nps")  # fmt: skip
    vocab = select_event_types(data.events, data.as_of, top_k=3)
    assert vocab[0][0] == "nps" and "nps" in vocab[1] and "video_play" in vocab[1]
    frame = build_features(data.transactions, data.events, data.customers, as_of=data.as_of,
                           event_types=vocab[0], valued_event_types=vocab[1])  # fmt: skip
    y = (frame["recency_days"] > 60).to_numpy()
    churn = ChurnModel(num_boost_round=10).fit(frame, y)
    value = ValueModel(num_boost_round=10).fit(frame, frame["monetary_total"].to_numpy())
    for model in (churn, value):
        model.attach(event_vocabulary=vocabulary_record(vocab))
    champion = Champion(churn, value, "1", "1", "r", "r", 90.0, 365.0)
    values = [c for c in frame.columns if "_value_" in c]
    without = churn.predict(frame.drop(columns=values))  # no event values: read as null
    np.testing.assert_array_equal(without, churn.predict(frame.assign(**dict.fromkeys(values))))
    tables_events = data.events.assign(
        event_type=data.events["event_type"].replace({"push_open": "never_seen"})
    )
    from churnclv import InputTables

    scored = score(
        InputTables(data.transactions, tables_events, data.customers),
        as_of=data.as_of, champion=champion, policy=load_policy(),
    )  # fmt: skip
    assert scored["satisfaction_class"].dropna().isin(["high", "medium", "low"]).all()
    last = frame.set_index("customer_id")["ev_nps_value_last"]
    got = scored.set_index("customer_id")["satisfaction_score"]
    pd.testing.assert_series_equal(got, last.reindex(got.index), check_names=False)

    scorer = OnlineScorer(champion, load_policy())
    assert not any(c.startswith("ev_") for c in scorer.static_columns)
    customer = CustomerIn(
        customer_id="x", as_of="2024-01-01",
        transactions=[{"ts": "2023-11-01", "amount": 20.0}],
        events=[
            {"ts": "2023-12-01", "event_type": "nps", "value": 9},
            {"ts": "2023-12-10", "event_type": "nps", "value": 4},
            {"ts": "2023-12-11", "event_type": "brand_new_type"},
            {"ts": "2023-12-12", "event_type": "video_play", "value": 12.5},
        ],
    )  # fmt: skip
    answer = scorer.score_customers([customer])[0]
    assert answer["satisfaction_score"] == 4.0 and answer["satisfaction_class"] == "low"
    feats = scorer.session.customer_features([customer], ["x"], pd.Timestamp("2024-01-01"))
    assert feats["events_90d"].iloc[0] == 4 and "ev_brand_new_type_30d" not in feats
    assert feats["ev_video_play_value_last"].iloc[0] == 12.5


def test_satisfaction_classes_follow_the_policy(tmp_path: Path) -> None:
    """NPS classes by default; a 1-5 scale by the policy; thresholds out of order fail."""
    scores = np.array([10, 9, 8, 7, 6, 0, np.nan])
    assert satisfaction_class(scores, load_policy()).tolist() == [
        "high", "high", "medium", "medium", "low", "low", None,
    ]  # fmt: skip
    five = tmp_path / "five.yaml"
    five.write_text("satisfaction: {event_types: [csat], high: 4.5, medium: 3.5}\n")
    policy = load_policy(five)
    assert policy.satisfaction_event_types == ("csat",)
    assert satisfaction_class(np.array([5, 4, 3]), policy).tolist() == ["high", "medium", "low"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("satisfaction: {high: 5, medium: 8}\n")
    with pytest.raises(InputError, match=r"satisfaction\.medium"):
        load_policy(bad)


def test_non_numeric_event_value_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value column with words: exit 2, file, column and sample named, no output file."""
    tx = tmp_path / "tx.csv"
    tx.write_text("customer_id,ts,amount\nc1,2024-01-05,10.0\n")
    ev = tmp_path / "ev.csv"
    ev.write_text(
        "customer_id,ts,event_type,score\nc1,2024-01-06,nps,9\nc1,2024-01-07,login,\n"
        "c1,2024-01-08,nps,very happy\n"
    )
    out = tmp_path / "scores.parquet"
    args = ["train", "--transactions", str(tx), "--events", str(ev), "--as-of", "2024-03-01"]
    args += ["--event-value-col", "score", "--workdir", str(tmp_path / "work")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(ev) in err and "'score'" in err and "'very happy'" in err
    assert not out.exists() and not (tmp_path / "work").exists()


def test_generator_renames_events_and_adds_surveys(capsys: pytest.CaptureFixture[str]) -> None:
    """Renamed types map one to one, surveys fall within activity, other tables unchanged."""
    plain = generate(150, seed=4, history_days=300, future_days=30)
    names = ["a1", "b2", "c3", "d4", "e5", "f6"]
    data = generate(150, seed=4, history_days=300, future_days=30, event_vocabulary=names,
                    survey_type="nps")  # fmt: skip
    pd.testing.assert_frame_equal(plain.transactions, data.transactions)
    pd.testing.assert_frame_equal(plain.truth, data.truth)
    other = data.events[data.events["event_type"] != "nps"].reset_index(drop=True)
    old = ["login", "session", "page_view", "email_open", "support_ticket", "complaint"]
    renamed = plain.events["event_type"].map(dict(zip(old, names, strict=True)))
    pd.testing.assert_frame_equal(other, plain.events.assign(event_type=renamed))
    nps = data.events[data.events["event_type"] == "nps"]
    assert len(nps) and nps["value"].between(0, 10).all()
    first = data.transactions.groupby("customer_id")["ts"].min()
    assert (nps["ts"] >= nps["customer_id"].map(first)).all()
    assert main(["generate", "--out", "x", "--event-vocabulary", "a,b"]) == 2
    assert "--event-vocabulary" in capsys.readouterr().err
