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
