"""The BentoML prediction service (DESIGN §8): routes, validation, auth, readiness, batching."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("bentoml")

from starlette.testclient import TestClient

from churnclv._clv_fields import CLV_COLUMNS
from churnclv._io import InputTables
from churnclv._reasons import reason_text
from churnclv.decisions import STAGE_SEGMENTS, load_policy
from churnclv.features import build_features
from churnclv.features._session import FeatureSession, canonical_frames
from churnclv.features._sql_events import is_value_feature
from churnclv.serving import score
from churnclv.serving._batcher import MicroBatcher
from churnclv.serving._requests import CustomerIn
from churnclv.training import load_champion, tracking_uri_for

AS_OF = pd.Timestamp("2024-01-01")
ENV_KEYS = ("CHURNCLV_WORKDIR", "CHURNCLV_TRACKING_URI", "CHURNCLV_POLICY", "CHURNCLV_API_KEY")


@pytest.fixture(scope="session")
def tables(svc_workdir: Path) -> InputTables:
    """The demo's canonical input tables."""
    data = svc_workdir / "data"
    return InputTables(
        pd.read_parquet(data / "transactions.parquet"),
        pd.read_parquet(data / "events.parquet"),
        pd.read_parquet(data / "customers.parquet"),
    )


@contextmanager
def _env(**values: str | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in ENV_KEYS}
    try:
        for k in ENV_KEYS:
            os.environ.pop(k, None)
        for k, v in values.items():
            if v is not None:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def client(svc_workdir: Path) -> Iterator[TestClient]:
    """The service in-process (to_asgi, once per process: BentoML's metrics are global)."""
    from churnclv.serving.service import ChurnService

    with (
        _env(CHURNCLV_WORKDIR=str(svc_workdir)),
        TestClient(ChurnService.to_asgi(), raise_server_exceptions=False) as c,
    ):
        yield c


def _history(tables: InputTables, cid: str) -> dict[str, Any]:
    tx = tables.transactions
    ev = tables.events
    assert ev is not None and tables.customers is not None
    t = tx[(tx["customer_id"] == cid) & (tx["ts"] < AS_OF)]
    e = ev[(ev["customer_id"] == cid) & (ev["ts"] < AS_OF)]
    c = tables.customers.set_index("customer_id").loc[cid]
    return {
        "customer_id": cid,
        "as_of": "2024-01-01",
        "transactions": [
            {"ts": ts.isoformat(), "amount": float(a), "category": k, "channel": h}
            for ts, a, k, h in zip(t["ts"], t["amount"], t["category"], t["channel"], strict=True)
        ],
        "events": [  # with the event's value when it has one (session minutes, pages)
            {"ts": ts.isoformat(), "event_type": str(k), **({} if pd.isna(v) else {"value": v})}
            for ts, k, v in zip(e["ts"], e["event_type"], e["value"], strict=True)
        ],
        "signup_ts": c["signup_ts"].isoformat(),
        "attributes": {k: str(c[k]) for k in ("plan", "region", "acquisition_channel")},
    }


def _scorable_ids(tables: InputTables, n: int) -> list[str]:
    tx = tables.transactions
    buyers = tx.loc[(tx["ts"] < AS_OF) & (tx["amount"] > 0), "customer_id"].unique()
    return [str(c) for c in buyers[:n]]


def _small(cid: str = "a", **extra: Any) -> dict[str, Any]:
    return {
        "customer_id": cid,
        "as_of": "2024-01-01",
        "transactions": [
            {"ts": "2023-03-01T10:00:00", "amount": 40.0},
            {"ts": "2023-09-15", "amount": 25.5},
            {"ts": "2023-10-01", "amount": -5.0},
        ],
        "events": [{"ts": "2023-12-20", "event_type": "Login"}],
        **extra,
    }


def _post_raw(c: TestClient, path: str, text: str) -> Any:
    return c.post(path, content=text, headers={"content-type": "application/json"})


# ---- correctness --------------------------------------------------------------------------------
def test_predict_equals_batch_score(client: TestClient, tables: InputTables, svc_workdir: Path):
    """A customer's /predict answer equals `churnclv score` on the same history and as_of."""
    ids = _scorable_ids(tables, 25)
    r = client.post("/predict", json={"customers": [_history(tables, c) for c in ids]})
    assert r.status_code == 200, r.text
    body = r.json()
    champion = load_champion(tracking_uri_for(svc_workdir))
    assert body["model_version"] == champion.model_version
    sub = InputTables(
        tables.transactions[tables.transactions["customer_id"].isin(ids)],
        tables.events[tables.events["customer_id"].isin(ids)],  # type: ignore[index]
        tables.customers[tables.customers["customer_id"].isin(ids)],  # type: ignore[index]
    )
    ref = score(sub, as_of=AS_OF, champion=champion, policy=load_policy())
    ref = ref.set_index("customer_id")
    assert [p["customer_id"] for p in body["predictions"]] == ids
    for p in body["predictions"]:
        row = ref.loc[p["customer_id"]]
        for col in ("churn_probability", "predicted_value", "expected_net_gain"):
            assert p[col] == pytest.approx(row[col], abs=1e-6)
        for col in ("value_tier", "risk_band", "lifecycle_stage", "rfm_segment", "action"):
            assert p[col] == row[col]
        for col in ("potential_high_value", "holdout", "action_basis"):
            assert p[col] == row[col], col
        for col in CLV_COLUMNS:  # marketer fields agree too (null where the batch has NaN)
            want = None if pd.isna(row[col]) else row[col]
            assert p[col] == (want if isinstance(want, str | None) else pytest.approx(want)), col


def test_predict_single_customer_matches_snapshot(client: TestClient, tables: InputTables):
    """One customer alone gets the same answer as in the demo's batch-scored snapshot."""
    cid = _scorable_ids(tables, 3)[2]
    p = client.post("/predict", json={"customers": [_history(tables, cid)]}).json()
    snap = client.post("/lookup", json={"customer_ids": [cid]}).json()["predictions"][0]
    got = p["predictions"][0]
    assert got["churn_probability"] == pytest.approx(snap["churn_probability"], abs=1e-6)
    assert got["predicted_value"] == pytest.approx(snap["predicted_value"], abs=1e-6)
    assert (got["value_tier"], got["action"]) == (snap["value_tier"], snap["action"])
    for col in ("predicted_orders", "total_clv", "churn_rank_pct", "value_rank_pct_in_stage"):
        assert got[col] == pytest.approx(snap[col], abs=1e-6), col
    assert got["expected_next_order_date"] == snap["expected_next_order_date"]


def test_reasons_are_top_three_contributions(client: TestClient):
    """Each prediction carries three reasons ordered by absolute contribution, with text."""
    r = client.post("/predict", json={"customers": [_small()]})
    assert r.status_code == 200, r.text
    why = r.json()["predictions"][0]["reasons"]
    assert len(why) == 3
    assert {"feature", "label", "value", "direction", "contribution", "text"} <= set(why[0])
    mags = [abs(w["contribution"]) for w in why]
    assert mags == sorted(mags, reverse=True)
    assert all(isinstance(w["text"], str) and w["text"] for w in why)
    for w in why:  # the direction follows the sign and is said in the text
        assert w["direction"] == ("raises" if w["contribution"] > 0 else "lowers")
        assert w["text"].endswith(f": {w['direction']} churn risk")
        assert w["label"] and "_" not in w["label"]


def test_lifecycle_stage_and_segment_agree_in_answers(client: TestClient, tables: InputTables):
    """Every answered segment is one its lifecycle stage allows (DESIGN §6)."""
    ids = _scorable_ids(tables, 60)
    r = client.post("/predict", json={"customers": [_history(tables, c) for c in ids]})
    assert r.status_code == 200, r.text
    for p in r.json()["predictions"]:
        assert p["rfm_segment"] in STAGE_SEGMENTS[p["lifecycle_stage"]], p


def test_reason_text_in_plain_words():
    """Recency reads as days without a purchase and a multiple of the usual gap."""
    row = {"recency_days": 94.2, "gap_mean_days": 30.4}
    assert reason_text("recency_days", row) == "no purchase for 94 days, 3.1x the usual gap"
    assert reason_text("ev_complaint_90d", {"ev_complaint_90d": 2}) == (
        "2 complaints in the last 90 days"
    )
    assert reason_text("days_since_login", {"days_since_login": None}) == "no login on record"


def test_repeated_customer_ids_are_scored_apart(client: TestClient):
    """Two entries with the same id but different histories are not merged."""
    a = _small("same")
    b = _small("same")
    b["transactions"] = [{"ts": "2021-01-01", "amount": 900.0}]
    preds = client.post("/predict", json={"customers": [a, b]}).json()["predictions"]
    assert [p["customer_id"] for p in preds] == ["same", "same"]
    assert preds[0]["churn_probability"] != preds[1]["churn_probability"]


def test_feature_session_equals_build_features(svc_workdir: Path, tables: InputTables):
    """The prepared feature query returns exactly build_features' frame."""
    champion = load_champion(tracking_uri_for(svc_workdir))
    ids = _scorable_ids(tables, 40)
    custs = [CustomerIn.model_validate(_history(tables, c)) for c in ids]
    session = FeatureSession(
        ["plan", "region", "acquisition_channel"], breadth=("category", "channel")
    )
    tx, ev, cu = canonical_frames(custs, session.static_columns)
    got = session.features(tx, ev, cu, AS_OF)
    want = build_features(tx, ev, cu, as_of=AS_OF)
    session.close()
    pd.testing.assert_frame_equal(got, want, check_dtype=True)
    needed = {c for c in champion.churn.features_ if not c.startswith("btyd_")}
    assert {c for c in needed if not is_value_feature(c)} <= set(got.columns)


def test_predict_features_matches_predict(
    client: TestClient, tables: InputTables, svc_workdir: Path
):
    """/predict_features on build_features rows (the champion's event types and valued
    types) gives the same answer as /predict."""
    champion = load_champion(tracking_uri_for(svc_workdir))
    types, valued = champion.churn.event_vocabulary_.values()
    cid = _scorable_ids(tables, 1)[0]
    hist = _history(tables, cid)
    custs = [CustomerIn.model_validate(hist)]
    tx, ev, cu = canonical_frames(custs, ["plan", "region", "acquisition_channel"])
    feats = build_features(tx, ev, cu, as_of=AS_OF, event_types=types, valued_event_types=valued)
    feats["as_of"] = feats["as_of"].astype(str)
    rows = json.loads(feats.to_json(orient="records"))
    r = client.post("/predict_features", json={"rows": rows})
    assert r.status_code == 200, r.text
    p = client.post("/predict", json={"customers": [hist]}).json()["predictions"][0]
    got = r.json()["predictions"][0]
    assert got["churn_probability"] == pytest.approx(p["churn_probability"], abs=1e-6)
    assert got["action"] == p["action"]


def test_predict_features_names_missing_columns(client: TestClient):
    """Feature rows without required columns get 422 naming every missing one."""
    r = client.post("/predict_features", json={"rows": [{"customer_id": "x", "recency_days": 3}]})
    assert r.status_code == 422
    assert "tenure_days" in r.json()["error"] and "frequency" in r.json()["field"]


# ---- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "status", "needle"),
    [
        ("{not json", 400, "json_invalid"),
        ('{"customers": []}', 400, '"customers"'),
        ('{"customers": [{"customer_id": 5, "transactions": "x"}]}', 400, "customer_id"),
        ('{"customers": [{"customer_id": "a", "transactions": []}]}', 400, "transactions"),
        ('{"customers": [{"customer_id": "a", "transactions": [{"ts": "x", "amount": 1}]}]}',
         400, "ts"),
        ('{"customers": [{"customer_id": "a", "transactions": [{"ts": "2023-01-01", '
         '"amount": NaN}]}]}', 422, "customers[0].transactions[0].amount"),
        ('{"customers": [{"customer_id": "a", "transactions": [{"ts": "2023-01-01", '
         '"amount": 1e999}]}]}', 422, "customers[0].transactions[0].amount"),
        ('{"customers": [{"customer_id": "a", "transactions": [{"ts": "2023-01-01", '
         '"amount": -3}]}]}', 422, "customers[0].transactions"),
    ],
)  # fmt: skip
def test_bad_requests_get_4xx_naming_the_field(
    client: TestClient, text: str, status: int, needle: str
):
    """Malformed JSON, wrong types, empty lists, NaN/inf amounts and no purchase get a 4xx."""
    r = _post_raw(client, "/predict", text)
    assert r.status_code == status, r.text
    assert needle in r.text


def test_a_rejected_body_is_one_warning_line_in_the_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
):
    """BentoML's 400 on a malformed body is logged as one WARNING line, no ERROR traceback."""
    with caplog.at_level("INFO"):
        r = _post_raw(client, "/predict", '{"customers": [{"customer_id": 5}]}')
    assert r.status_code == 400
    ours = [rec for rec in caplog.records if rec.name == "bentoml._internal.server.http_app"]
    assert [(rec.levelname, rec.exc_info) for rec in ours] == [("WARNING", None)]
    assert ours[0].getMessage().startswith("Client error on /predict [POST]: 400 ")


def test_timestamp_after_as_of_is_rejected(client: TestClient):
    """A transaction or event at or after as_of gets 422 naming the customer and the field."""
    body = _small("late")
    body["events"] = [{"ts": "2024-02-01", "event_type": "login"}]
    r = client.post("/predict", json={"customers": [body]})
    assert r.status_code == 422
    assert r.json()["field"] == "customers[0].events[0].ts" and "'late'" in r.json()["error"]


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "multipart/form-data; boundary=x", "application/xml"]
)
def test_non_json_content_type_gets_415(client: TestClient, content_type: str):
    """A body declared as multipart or XML gets 415 naming the header, never a 5xx."""
    r = client.post(
        "/lookup", content=b'{"customer_ids": ["x"]}', headers={"content-type": content_type}
    )
    assert r.status_code == 415
    assert r.json()["field"] == "content-type"


def test_signup_after_as_of_is_rejected(client: TestClient):
    """A signup_ts at or after as_of gets 422 naming the field, like any late timestamp."""
    body = _small("early-bird")
    body["signup_ts"] = "2030-01-01"
    r = client.post("/predict", json={"customers": [body]})
    assert r.status_code == 422
    assert r.json()["field"] == "customers[0].signup_ts"


def test_oversized_requests_get_413(client: TestClient):
    """More than 1,000 customers, or 10,000 transactions for one, is refused with 413."""
    many = {"customers": [_small(f"c{i}") for i in range(1001)]}
    r = client.post("/predict", json=many)
    assert r.status_code == 413 and r.json()["field"] == "customers"
    big = _small("big")
    big["transactions"] = [{"ts": "2023-01-01", "amount": 1.0}] * 10_001
    r = client.post("/predict", json={"customers": [big]})
    assert r.status_code == 413 and r.json()["field"] == "customers[0].transactions"


# ---- lookup and model ---------------------------------------------------------------------------
def test_lookup_lists_missing_ids(client: TestClient, tables: InputTables):
    """/lookup answers known ids from the snapshot and lists unknown ones in `missing`."""
    cid = _scorable_ids(tables, 1)[0]
    r = client.post("/lookup", json={"customer_ids": [cid, "nobody"]})
    assert r.status_code == 200
    assert r.json()["predictions"][0]["customer_id"] == cid
    assert r.json()["missing"] == ["nobody"]
    r = client.post("/lookup", json={"customer_ids": ["nobody"]})
    assert r.status_code == 404 and r.json()["missing"] == ["nobody"]


def test_lookup_reloads_a_changed_snapshot(svc_workdir: Path, tmp_path: Path):
    """A rewritten scores.parquet is picked up without a restart."""
    from churnclv.serving._snapshot import ScoresSnapshot

    path = tmp_path / "scores.parquet"
    pd.DataFrame({"customer_id": ["a"], "churn_probability": [0.1]}).to_parquet(path)
    snap = ScoresSnapshot(path)
    assert snap.lookup(["a", "b"])[1] == ["b"]
    time.sleep(0.01)
    pd.DataFrame({"customer_id": ["a", "b"], "churn_probability": [0.1, 0.2]}).to_parquet(path)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert snap.lookup(["a", "b"])[1] == []


def test_model_reports_versions_runs_and_metrics(client: TestClient, svc_workdir: Path):
    """GET /model gives registered versions, run ids, the training window and metrics."""
    champion = load_champion(tracking_uri_for(svc_workdir))
    body = client.get("/model").json()
    assert body["model_version"] == champion.model_version
    assert body["models"]["churn"]["run_id"] == champion.churn_run_id
    assert body["models"]["value"]["version"] == champion.value_version
    assert "churn_roc_auc" in body["models"]["churn"]["metrics"]
    assert body["training_window"]["as_of"].startswith("2024-01-01")


# ---- readiness and auth -------------------------------------------------------------------------
def test_missing_champion_is_not_ready_and_answers_503(client: TestClient, tmp_path: Path):
    """Without a champion the service starts, /readyz is 503 and prediction routes answer 503."""
    import bentoml

    from churnclv.serving._state import ServingState

    svc = bentoml.get_current_service()
    empty = ServingState.from_env({"CHURNCLV_WORKDIR": str(tmp_path)})
    assert empty.load() is False  # no exception: the reason is kept for the 503 body
    saved, svc.state = svc.state, empty
    c = client
    try:
        assert c.get("/livez").status_code == 200
        assert c.get("/readyz").status_code == 503
        r = c.post("/predict", json={"customers": [_small()]})
        assert r.status_code == 503 and "not ready" in r.json()["error"]
        assert c.post("/predict_features", json={"rows": [{"a": 1}]}).status_code == 503
        assert c.get("/model").status_code == 503
    finally:
        svc.state = saved
    assert c.get("/readyz").status_code == 200


def test_corrupted_champion_is_retried_until_it_loads(
    svc_workdir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    """A champion whose artifact cannot be unpickled leaves the state not ready with one log
    line; the background retry loads it once the artifact is repaired, without a restart."""
    from churnclv.serving._state import ServingState
    from churnclv.serving.service import _log_not_loaded, _retry_load

    pickles = sorted((svc_workdir / "mlartifacts").rglob("python_model.pkl"))
    assert pickles
    saved = {p: p.read_bytes() for p in pickles}
    monkeypatch.setenv("CHURNCLV_READY_RETRY_S", "0.2")
    state = ServingState.from_env({"CHURNCLV_WORKDIR": str(svc_workdir)})

    async def scenario() -> None:
        assert not state.load()
        assert "cannot load" in str(state.error)
        _log_not_loaded(state, 0.2)
        retry = asyncio.create_task(_retry_load(state, state.error))
        await asyncio.sleep(2.5)  # several attempts, all failing the same way
        assert not state.ready
        for p, data in saved.items():
            p.write_bytes(data)
        await asyncio.wait_for(retry, 30)

    try:
        for p in pickles:
            p.write_bytes(b"not a pickle")
        with caplog.at_level("INFO", logger="bentoml.churnclv"):
            asyncio.run(scenario())
    finally:
        for p, data in saved.items():
            p.write_bytes(data)
        state.close()
    assert state.ready
    lines = [r.getMessage() for r in caplog.records]
    assert len([m for m in lines if "NOT loaded" in m]) == 1, lines  # not one per attempt
    loaded = [m for m in lines if "champion loaded after" in m]
    assert len(loaded) == 1 and int(loaded[0].split()[-2]) > 3, lines


def test_promote_and_rollback_hot_swap_the_champion(
    client: TestClient, svc_workdir: Path, tables: InputTables, tmp_path: Path
):
    """With CHURNCLV_RELOAD_S=1 a promotion reaches /model and /predict within seconds and a
    rollback brings the previous champion back within one reload interval; /readyz stays 200."""
    import shutil

    import bentoml
    from _versions import new_version

    from churnclv.serving._state import ServingState
    from churnclv.training import promote_version, rollback_champion

    work = tmp_path / "work"
    shutil.copytree(svc_workdir, work)
    uri = tracking_uri_for(work)
    body = {"customers": [_history(tables, _scorable_ids(tables, 1)[0])]}
    state = ServingState.from_env({"CHURNCLV_WORKDIR": str(work), "CHURNCLV_RELOAD_S": "1"})
    assert state.load()
    svc = bentoml.get_current_service()
    saved, svc.state = svc.state, state

    def answers(version: str, within_s: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < within_s:
            if client.get("/model").json()["model_version"] == version:
                r = client.post("/predict", json=body)
                assert r.status_code == 200 and r.json()["model_version"] == version
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"{version} not served within {within_s} s")

    try:
        u = "+uplift:v1"  # the demo's uplift champion, served alongside
        answers(f"churn:v1+value:v1{u}", 1)
        promote_version(uri, "churnclv-churn", new_version(work))
        answers(f"churn:v2+value:v1{u}", 10)
        rollback_champion(uri, "churnclv-churn")
        assert answers(f"churn:v1+value:v1{u}", 10) <= 3.0  # one interval, the tick, the load
        assert client.get("/readyz").status_code == 200
    finally:
        svc.state = saved
        state.close()


def test_api_key_required_when_set(client: TestClient, svc_workdir: Path):
    """With CHURNCLV_API_KEY set, no or a wrong key gets 401; health stays open."""
    c = client
    with _env(CHURNCLV_WORKDIR=str(svc_workdir), CHURNCLV_API_KEY="s3cret"):
        body = {"customers": [_small()]}
        assert c.post("/predict", json=body).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert c.post("/predict", json=body, headers=wrong).status_code == 401
        assert c.get("/model", headers=wrong).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert c.post("/predict", json=body, headers=ok).status_code == 200
        assert c.get("/livez").status_code == 200
        assert c.get("/readyz").status_code == 200


# ---- batching -----------------------------------------------------------------------------------
def test_micro_batcher_merges_concurrent_requests():
    """Concurrent requests share batches and each gets its own answers in order."""
    calls: list[int] = []

    def fake(customers: list[Any], now: Any) -> list[dict[str, Any]]:
        time.sleep(0.02)
        calls.append(len(customers))
        return [{"customer_id": c.customer_id} for c in customers]

    batcher = MicroBatcher(fake, max_customers=64)

    async def run() -> list[list[dict[str, Any]]]:
        reqs = [
            [CustomerIn.model_validate(_small(f"r{i}-{j}")) for j in range(2)] for i in range(30)
        ]
        return await asyncio.gather(*(batcher.submit(r) for r in reqs))

    out = asyncio.run(run())
    batcher.close()
    assert [o[1]["customer_id"] for o in out] == [f"r{i}-1" for i in range(30)]
    assert sum(calls) == 60 and len(calls) < 30


def test_a_swapped_out_batcher_answers_its_queue_before_closing():
    """`aclose` (after a hot-swap) waits until every submitted request has its answer."""

    def slow(customers: list[Any], now: Any) -> list[dict[str, Any]]:
        time.sleep(0.05)
        return [{"customer_id": c.customer_id} for c in customers]

    batcher = MicroBatcher(slow, max_customers=1)

    async def run() -> list[list[dict[str, Any]]]:
        reqs = [batcher.submit([CustomerIn.model_validate(_small(f"q{i}"))]) for i in range(5)]
        pending = [asyncio.ensure_future(r) for r in reqs]
        await asyncio.sleep(0)  # all five are queued
        closing = asyncio.ensure_future(batcher.aclose(timeout_s=10))
        out = await asyncio.wait_for(asyncio.gather(*pending), 10)
        await closing
        return out

    out = asyncio.run(run())
    assert [o[0]["customer_id"] for o in out] == [f"q{i}" for i in range(5)]
    assert batcher._pending == 0
