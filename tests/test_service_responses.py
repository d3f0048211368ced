"""The service's JSON answers: standard JSON even when a value is not finite."""

from __future__ import annotations

import json

from churnclv.serving.service import _ok


def test_non_finite_floats_are_answered_as_null() -> None:
    """A NaN or inf anywhere in an answer becomes null instead of failing the response."""
    body = {"predictions": [{"x": float("nan"), "y": 1.5, "z": [float("inf"), 2.0]}]}
    resp = _ok(body)
    assert resp.status_code == 200
    assert json.loads(resp.body) == {"predictions": [{"x": None, "y": 1.5, "z": [None, 2.0]}]}


def test_finite_answers_are_plain_json() -> None:
    """A finite answer is serialised as is."""
    resp = _ok({"model_version": "churn:v1", "predictions": [{"p": 0.25}]})
    assert json.loads(resp.body) == {"model_version": "churn:v1", "predictions": [{"p": 0.25}]}


def test_openapi_document_is_completed_without_a_model() -> None:
    """The document lists /model, the examples and the error codes, and still dumps as YAML
    (``bentoml build`` writes it), with no champion loaded."""
    import yaml

    from churnclv.serving._responses import PREDICT_EXAMPLE
    from churnclv.serving.service import ChurnService

    doc = ChurnService.openapi_spec.asdict()
    assert {"/predict", "/predict_features", "/lookup", "/model"} <= set(doc["paths"])
    post = doc["paths"]["/predict"]["post"]
    assert post["requestBody"]["content"]["application/json"]["example"] == PREDICT_EXAMPLE
    assert {200, 400, 401, 413, 422, 503} <= set(post["responses"])
    assert "PredictResponse" in doc["components"]["schemas"]
    assert "/model:" in yaml.dump(ChurnService.openapi_spec)


def test_example_request_passes_the_request_checks() -> None:
    """The documented /predict example is valid as far as no model is needed."""
    from churnclv.serving._requests import CustomerIn, validate_customers
    from churnclv.serving._responses import PREDICT_EXAMPLE

    validate_customers([CustomerIn.model_validate(c) for c in PREDICT_EXAMPLE["customers"]])


def test_reasons_validate_against_the_documented_model() -> None:
    """:func:`churnclv._reasons.reasons` output is a documented Reason, direction by sign."""
    import numpy as np

    from churnclv._reasons import reasons
    from churnclv.serving._responses import Reason

    rows = {"recency_days": np.array([212.0]), "plan": np.array(["basic"], dtype=object)}
    why = reasons(rows, np.array([[0.7, -0.2]]), columns=["recency_days", "plan"])[0]
    parsed = [Reason.model_validate(r) for r in why]
    assert [(r.direction, r.label) for r in parsed] == [
        ("raises", "days since last purchase"),
        ("lowers", "plan"),
    ]
    assert parsed[1].text == "plan is basic: lowers churn risk"
