"""The service's OpenAPI document (issue 18): examples that work, typed answers, error codes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("bentoml")

from starlette.testclient import TestClient

from churnclv.serving._responses import (
    ErrorBody,
    LookupResponse,
    ModelInfo,
    PredictResponse,
    ValidationErrorBody,
)

ROUTES = ("/predict", "/predict_features", "/lookup")
ERROR_CODES = ("400", "401", "413", "422", "503")
#: The per-customer fields of a /predict answer (DESIGN §8).
DESIGN_FIELDS = (
    "customer_id",
    "churn_probability",
    "predicted_value",
    "value_tier",
    "risk_band",
    "lifecycle_stage",
    "rfm_segment",
    "action",
    "expected_net_gain",
    "reasons",
)
#: The fields DESIGN §13 adds to scores, /predict and /lookup.
MARKETER_FIELDS = (
    "predicted_orders",
    "expected_next_order_date",
    "historic_clv",
    "predicted_clv",
    "total_clv",
    "churn_rank_pct",
    "value_rank_pct",
    "value_rank_pct_in_stage",
)
ANSWERS = {
    "/predict": PredictResponse,
    "/predict_features": PredictResponse,
    "/lookup": LookupResponse,
}


def _drop_bentoml_metrics() -> None:
    """Unregister BentoML's Prometheus collectors, so another in-process app can start.

    BentoML registers its request metrics in a process-wide registry when an app
    starts; a second app in the same test process would collide with the first.
    """
    from bentoml._internal.configuration.containers import BentoMLContainer

    registry = BentoMLContainer.metrics_client.get().registry
    names = getattr(registry, "_collector_to_names", {})
    for collector, metric_names in list(names.items()):
        if any(n.startswith("bentoml_") for n in metric_names):
            registry.unregister(collector)


@contextmanager
def service_client(workdir: Path) -> Iterator[TestClient]:
    """The service in-process on ``workdir``, with the service's environment variables
    cleared for the duration and restored after."""
    from churnclv.serving.service import ChurnService

    keys = ("CHURNCLV_WORKDIR", "CHURNCLV_TRACKING_URI", "CHURNCLV_POLICY", "CHURNCLV_API_KEY")
    old = {k: os.environ.pop(k, None) for k in keys}
    os.environ["CHURNCLV_WORKDIR"] = str(workdir)
    _drop_bentoml_metrics()
    try:
        with TestClient(ChurnService.to_asgi(), raise_server_exceptions=False) as c:
            yield c
    finally:
        _drop_bentoml_metrics()
        for k, v in old.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


@pytest.fixture(scope="module")
def client(demo_workdir: Path) -> Iterator[TestClient]:
    """The service in-process on the shared demo work directory."""
    with service_client(demo_workdir) as c:
        yield c


@pytest.fixture(scope="module")
def doc(client: TestClient) -> dict[str, Any]:
    r = client.get("/docs.json")
    assert r.status_code == 200, r.text
    return r.json()


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def _example(doc: dict[str, Any], route: str) -> Any:
    return doc["paths"][route]["post"]["requestBody"]["content"]["application/json"]["example"]


@pytest.mark.slow
@pytest.mark.parametrize("route", ROUTES)
def test_every_example_request_answers_2xx(
    client: TestClient, doc: dict[str, Any], route: str
) -> None:
    """Each route's documented example, sent as is, is answered 2xx with the documented shape."""
    r = client.post(route, json=_example(doc, route))
    assert 200 <= r.status_code < 300, r.text
    answer = ANSWERS[route].model_validate(r.json())
    assert answer.predictions
    if route == "/lookup":
        assert r.json()["missing"] == ["nobody"]


@pytest.mark.slow
def test_every_post_route_has_an_example(doc: dict[str, Any]) -> None:
    """No documented POST route lacks the example the 2xx test sends."""
    posted = {route for route, item in doc["paths"].items() if "post" in item}
    assert posted == set(ROUTES)
    assert all(_example(doc, route) for route in ROUTES)


@pytest.mark.slow
def test_model_route_is_documented_and_answers(client: TestClient, doc: dict[str, Any]) -> None:
    """GET /model is in the document and answers the documented model card."""
    get = doc["paths"]["/model"]["get"]
    assert {"200", "503"} <= set(get["responses"])
    r = client.get("/model")
    assert r.status_code == 200, r.text
    assert ModelInfo.model_validate(r.json()).model_version


@pytest.mark.slow
@pytest.mark.parametrize("route", ROUTES)
def test_every_error_code_is_documented_with_a_shape(doc: dict[str, Any], route: str) -> None:
    """400/401/413/422/503 appear for every prediction route, each with a JSON schema."""
    responses = doc["paths"][route]["post"]["responses"]
    assert set(ERROR_CODES) <= set(responses)
    for code in ERROR_CODES:
        schema = _resolve(doc, responses[code]["content"]["application/json"]["schema"])
        assert "error" in schema["properties"], (route, code)


@pytest.mark.slow
def test_predict_200_schema_lists_every_design_field(doc: dict[str, Any]) -> None:
    """The 200 answer of /predict is typed: every DESIGN §8 field, described; typed reasons."""
    ok = doc["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]
    top = _resolve(doc, ok["schema"])
    assert {"model_version", "predictions"} <= set(top["properties"])
    item = _resolve(doc, top["properties"]["predictions"]["items"])
    assert set(DESIGN_FIELDS) <= set(item["properties"])
    assert set(DESIGN_FIELDS) <= set(item["required"])
    assert all(item["properties"][f].get("description") for f in DESIGN_FIELDS)
    reason = _resolve(doc, item["properties"]["reasons"]["items"])
    assert {"feature", "label", "value", "direction", "contribution", "text"} <= set(
        reason["properties"]
    )
    assert reason["properties"]["direction"]["enum"] == ["raises", "lowers"]


@pytest.mark.slow
@pytest.mark.parametrize("route", ROUTES)
def test_200_schema_lists_the_marketer_fields(doc: dict[str, Any], route: str) -> None:
    """DESIGN §13's additions are in every prediction route's 200 item schema, described."""
    ok = doc["paths"][route]["post"]["responses"]["200"]["content"]["application/json"]
    top = _resolve(doc, ok["schema"])
    item = _resolve(doc, top["properties"]["predictions"]["items"])
    assert set(MARKETER_FIELDS) <= set(item["properties"]), route
    assert all(item["properties"][f].get("description") for f in MARKETER_FIELDS)


@pytest.mark.slow
def test_error_answers_have_the_documented_shapes(client: TestClient, doc: dict[str, Any]) -> None:
    """Real 400, 401, 413 and 422 answers validate against the models the document names."""
    example = _example(doc, "/predict")
    late = {"customers": [{**example["customers"][0], "as_of": "2023-06-01"}]}
    r = client.post("/predict", json=late)
    assert r.status_code == 422
    assert ErrorBody.model_validate(r.json()).field == "customers[0].transactions[1].ts"
    r = client.post("/predict", content="{", headers={"content-type": "application/json"})
    assert r.status_code == 400
    ValidationErrorBody.model_validate(r.json())
    r = client.post("/predict", json={"customers": example["customers"] * 1_001})
    assert r.status_code == 413
    assert ErrorBody.model_validate(r.json()).field == "customers"
    os.environ["CHURNCLV_API_KEY"] = "secret"
    try:
        r = client.post("/predict", json=example)
    finally:
        del os.environ["CHURNCLV_API_KEY"]
    assert r.status_code == 401
    assert ErrorBody.model_validate(r.json()).field is None
