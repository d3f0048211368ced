"""The BentoML 1.4 service (DESIGN §8): a thin shell over :mod:`churnclv.serving._online`.

Run it with ``churnclv serve`` (which sets ``CHURNCLV_WORKDIR``,
``CHURNCLV_TRACKING_URI`` and ``CHURNCLV_POLICY``) or
``bentoml serve churnclv.serving.service:ChurnService``.

Routes: ``POST /predict``, ``POST /predict_features``, ``POST /lookup``,
``GET /model``, and BentoML's ``/livez``, ``/readyz``, ``/metrics``. With
``CHURNCLV_API_KEY`` set, every route but those three needs
``Authorization: Bearer <key>``.

Status codes: 200; 400 for malformed JSON and schema errors (BentoML's
pydantic answer, ``detail`` names the field); 401 without the key; 404 from
``/lookup`` when none of the ids is in the snapshot; 413 past the size limits;
422 for values the schema cannot catch (non-finite amounts, timestamps at or
after ``as_of``, no purchase, missing feature columns), with
``{"error", "field"}``; 503 while no champion is loaded (or no snapshot for
``/lookup``).
"""

from __future__ import annotations

import hmac
import os
from typing import Annotated, Any

import bentoml
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from churnclv._errors import InputError
from churnclv.serving._online import (
    MAX_LOOKUP_IDS,
    CustomerIn,
    RequestError,
    ServingState,
    validate_customers,
)

__all__ = ["ApiKeyMiddleware", "ChurnService"]

OPEN_PATHS = frozenset({"/livez", "/readyz", "/metrics", "/healthz"})
#: Requests whose Content-Length exceeds this are refused with 413 before parsing.
MAX_BODY_BYTES = 64 * 1024 * 1024


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def _json_media_type(value: bytes | None) -> bool:
    """True for no Content-Type, JSON (``application/json``, ``*/*+json``) or ``text/plain``."""
    if not value:
        return True
    media = value.split(b";", 1)[0].strip().lower()
    return media in (b"application/json", b"text/plain") or media.endswith(b"+json")


class ApiKeyMiddleware:
    """Bearer-key check (``CHURNCLV_API_KEY``) and a request-size cap, as plain ASGI.

    Health and metrics stay open; the key is compared with
    :func:`hmac.compare_digest` and never logged.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        key = os.environ.get("CHURNCLV_API_KEY")  # read per request: cheap, and testable
        if key:
            auth = headers.get(b"authorization", b"")
            scheme, _, token = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), key.encode()):
                resp = _error(401, "missing or wrong API key: send 'Authorization: Bearer <key>'")
                resp.headers["WWW-Authenticate"] = "Bearer"
                await resp(scope, receive, send)
                return
        if scope.get("method") == "POST" and not _json_media_type(headers.get(b"content-type")):
            # BentoML would try to parse multipart bodies itself and answer 500 (schemathesis).
            resp = _error(
                415,
                "request bodies are JSON: send 'Content-Type: application/json'",
                "content-type",
            )
            await resp(scope, receive, send)
            return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            resp = _error(413, f"request body over {self.max_body_bytes} bytes", "body")
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _model_route(request: Request) -> JSONResponse:
    """``GET /model``: the champion's registered versions, runs, window and metrics."""
    svc = bentoml.get_current_service()
    state: ServingState = svc.state
    if state.info is None:
        return JSONResponse(state.not_ready_body(), status_code=503)
    body = dict(state.info)
    if state.batcher is not None:
        b = state.batcher
        body["batching"] = {
            "batches": b.batches,
            "customers": b.batched_customers,
            "mean_batch": round(b.batched_customers / b.batches, 2) if b.batches else None,
            "max_batch": b.max_batch_seen,
        }
    return JSONResponse(body)


_extra_routes = Starlette(routes=[Route("/model", _model_route, methods=["GET"])])


@bentoml.asgi_app(_extra_routes, path="/")
@bentoml.service(name="churnclv", workers=1, traffic={"timeout": 120})
class ChurnService:
    """Churn probability, predicted value, tiers and retention actions over HTTP."""

    def __init__(self) -> None:
        self.state = ServingState.from_env()
        self.state.load()  # never raises: failures are reported by __is_ready__ and a log line

    def __is_ready__(self) -> bool:
        """Ready once the champion is loaded (drives ``/readyz``)."""
        return self.state.ready

    @bentoml.api(route="/predict")
    async def predict(
        self, customers: Annotated[list[CustomerIn], Field(min_length=1)]
    ) -> dict[str, Any]:
        """Score customers from their raw histories (one feature query per batch)."""
        state = self.state
        if state.batcher is None or state.scorer is None:
            return JSONResponse(state.not_ready_body(), status_code=503)  # type: ignore[return-value]
        try:
            validate_customers(customers)
            predictions = await state.batcher.submit(customers)
        except RequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)  # type: ignore[return-value]
        except InputError as exc:
            return _error(422, str(exc), "customers")  # type: ignore[return-value]
        return {"model_version": state.scorer.champion.model_version, "predictions": predictions}

    @bentoml.api(route="/predict_features")
    async def predict_features(
        self, rows: Annotated[list[dict[str, Any]], Field(min_length=1)]
    ) -> dict[str, Any]:
        """Score precomputed feature rows (the columns of ``churnclv features``)."""
        import asyncio

        state = self.state
        scorer = state.scorer
        if scorer is None:
            return JSONResponse(state.not_ready_body(), status_code=503)  # type: ignore[return-value]
        loop = asyncio.get_running_loop()
        try:
            predictions = await loop.run_in_executor(
                state.executor, scorer.score_feature_rows, rows
            )
        except RequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)  # type: ignore[return-value]
        except InputError as exc:
            return _error(422, str(exc), "rows")  # type: ignore[return-value]
        return {"model_version": scorer.champion.model_version, "predictions": predictions}

    @bentoml.api(route="/lookup")
    def lookup(
        self,
        customer_ids: Annotated[
            list[Annotated[str, Field(min_length=1)]],
            Field(min_length=1, max_length=MAX_LOOKUP_IDS),
        ],
    ) -> dict[str, Any]:
        """Answers from the latest batch-scored snapshot; unknown ids are listed in ``missing``."""
        snap = self.state.snapshot
        if not snap.available():
            return _error(  # type: ignore[return-value]
                503,
                f"no batch-scored snapshot at {snap.path}; run `churnclv score --out "
                f"{snap.path}` (or `churnclv demo`)",
            )
        found, missing = snap.lookup(customer_ids)
        if not found:
            return JSONResponse(  # type: ignore[return-value]
                {"error": "none of the customer_ids is in the snapshot", "field": "customer_ids",
                 "predictions": [], "missing": missing},
                status_code=404,
            )  # fmt: skip
        return {"predictions": found, "missing": missing}


ChurnService.add_asgi_middleware(ApiKeyMiddleware)  # type: ignore[attr-defined]
