"""The service's OpenAPI document (``/docs.json``, Swagger UI at ``/``), completed.

BentoML 1.4 builds the document from each API's signature: the request
schema, a 200 response from the return annotation and its own 400/404/500
entries. It has no place for request examples (pydantic's ``examples`` are
dropped from the schema it keeps), for other status codes, or for routes of a
mounted Starlette app. :func:`document` adds them after BentoML has built the
document: a working example request per route, the 400/401/413/415/422/503
answers (and ``/lookup``'s 404) with their JSON shapes, and ``GET /model``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import attrs
from pydantic import BaseModel

from churnclv.serving._responses import (
    LOOKUP_EXAMPLE,
    PREDICT_EXAMPLE,
    PREDICT_FEATURES_EXAMPLE,
    ErrorBody,
    LookupNotFound,
    LookupResponse,
    ModelInfo,
    PredictResponse,
    ValidationErrorBody,
)

__all__ = ["ERROR_CODES", "complete", "document"]

_REF = "#/components/schemas/{model}"

_ERRORS: dict[int, tuple[str, type[BaseModel]]] = {
    400: ("Malformed JSON, or a body the request schema rejects (`detail[].loc`).",
          ValidationErrorBody),
    401: ("Missing or wrong `Authorization: Bearer <key>` (when `CHURNCLV_API_KEY` is set).",
          ErrorBody),
    413: ("Past the size limits: 1,000 customers, 10,000 rows per customer or feature rows, "
          "10,000 ids, 64 MiB.", ErrorBody),
    415: ("A body that is not JSON (`Content-Type` other than JSON or text/plain).", ErrorBody),
    422: ("Values the schema cannot catch: non-finite amounts, timestamps at or after `as_of`, "
          "no purchase, missing or non-numeric feature columns; `field` names the field.",
          ErrorBody),
    503: ("No champion loaded yet (or, for `/lookup`, no batch-scored snapshot); retry later.",
          ErrorBody),
}  # fmt: skip
#: The error statuses every prediction route documents.
ERROR_CODES = tuple(_ERRORS)

_ROUTES: dict[str, tuple[type[BaseModel], dict[str, Any], str]] = {
    "/predict": (PredictResponse, PREDICT_EXAMPLE, "Predictions for the customers, in order."),
    "/predict_features": (
        PredictResponse,
        PREDICT_FEATURES_EXAMPLE,
        "Predictions for the feature rows, in order.",
    ),
    "/lookup": (LookupResponse, LOOKUP_EXAMPLE, "Snapshot rows of the ids found; the rest in "
                "`missing`."),
}  # fmt: skip


def _schemas(*models: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """JSON schemas of ``models`` and the models they use, by name, for ``components``."""
    out: dict[str, dict[str, Any]] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=_REF, mode="serialization")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def _answer(description: str, model: type[BaseModel]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
    }


def _responses(route: str, ok: type[BaseModel], description: str) -> dict[int, dict[str, Any]]:
    answers: dict[int, dict[str, Any]] = {HTTPStatus.OK.value: _answer(description, ok)}
    for status, (text, model) in _ERRORS.items():
        answers[status] = _answer(text, model)
    if route == "/lookup":
        answers[404] = _answer("None of the ids is in the snapshot.", LookupNotFound)
    return dict(sorted(answers.items()))


_MODEL_ROUTE = {
    "get": {
        "tags": ["Service APIs"],
        "operationId": "churnclv__model",
        "description": "The champion's registered versions, run ids, training window, metrics "
        "and this worker's batching counters.",
        "responses": {
            200: _answer("The champion's model card.", ModelInfo),
            401: _answer(_ERRORS[401][0], ErrorBody),
            503: _answer("No champion loaded yet; retry later.", ErrorBody),
        },
    }
}


def _with_example(media: Any, example: dict[str, Any]) -> Any:
    """A request body's media entry (a dict or BentoML's frozen ``MediaType``) with ``example``."""
    if media is None or isinstance(media, dict):
        return {**(media or {}), "example": example}
    return attrs.evolve(media, example=example)


def complete(spec: dict[str, Any]) -> dict[str, Any]:
    """Complete an OpenAPI document as a dict (``OpenAPISpecification.asdict()``), in place.

    Examples
    --------
    >>> from churnclv.serving._openapi import complete
    >>> doc = complete({"paths": {"/predict": {"post": {"requestBody": {"content": {
    ...     "application/json": {"schema": {}}}}, "responses": {}}}}})
    >>> sorted(doc["paths"]), sorted(doc["paths"]["/predict"]["post"]["responses"])
    (['/model', '/predict'], [200, 400, 401, 413, 415, 422, 503])
    >>> doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
    ...     "example"]["customers"][0]["customer_id"]
    'C1'
    """
    paths = spec.setdefault("paths", {})
    item_type: Any = None
    for route, (ok, example, description) in _ROUTES.items():
        item = paths.get(route)
        if item is not None and not isinstance(item, dict):  # BentoML's PathItem
            item_type = type(item)
        post = item.get("post") if isinstance(item, dict) else getattr(item, "post", None)
        if post is None:
            continue
        post["responses"] = _responses(route, ok, description)
        body = post.setdefault("requestBody", {}).setdefault("content", {})
        body["application/json"] = _with_example(body.get("application/json"), example)
    paths["/model"] = _MODEL_ROUTE if item_type is None else item_type(**_MODEL_ROUTE)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    models: list[type[BaseModel]] = [ok for ok, _, _ in _ROUTES.values()]
    models += [m for _, m in _ERRORS.values()] + [LookupNotFound, ModelInfo]
    schemas.update(_schemas(*dict.fromkeys(models)))
    return spec


def document(service: Any) -> None:
    """Make ``service`` (a BentoML 1.4 service object) serve the completed document.

    BentoML builds the document from the service's ``openapi_spec`` property on
    every ``/docs.json`` request and for ``bentoml build``; the service object
    gets a subclass whose property completes BentoML's document with
    :func:`complete`. Its paths and schemas are plain mutable dicts, changed in place.
    """
    base = type(service)
    if getattr(base, "_churnclv_documented", False):
        return

    class DocumentedService(base):  # type: ignore[misc, valid-type]
        __slots__ = ()
        _churnclv_documented = True

        @property
        def openapi_spec(self) -> Any:
            spec = super().openapi_spec
            parts = spec.components
            if isinstance(parts, dict):  # BentoML 1.4 passes a plain {"schemas": {...}}
                complete({"paths": spec.paths, "components": parts})
            elif parts is not None:  # pragma: no cover - a Components object
                complete({"paths": spec.paths, "components": {"schemas": parts.schemas}})
            return spec

    DocumentedService.__name__ = DocumentedService.__qualname__ = base.__name__
    service.__class__ = DocumentedService
