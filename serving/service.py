"""The BentoML 1.4 service (DESIGN §8): a thin shell over :mod:`churnclv.serving._state`.

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

OpenAPI: ``/docs.json`` (Swagger UI at ``/``) documents every route with a
working example request, the typed answers of :mod:`churnclv.serving._responses`
and every status code above (:func:`churnclv.serving._openapi.document`).

Readiness: a champion that cannot be loaded at start-up (none registered yet,
store unreachable, corrupted artifact) leaves the service up but not ready, and
a background task retries the load with a backoff from 1 s doubling to
``CHURNCLV_READY_RETRY_S`` (default 30 s), so a champion promoted later makes
the service ready without a restart. One log line per distinct failure reason,
not per attempt.

Hot-swap: once ready, the service checks the registry's champion aliases every
``CHURNCLV_RELOAD_S`` seconds (default 30; 0 = off; never with
``CHURNCLV_MODEL_URI``) and swaps a new champion in whole (scorer, batcher and
``/model`` info at once, see :class:`~churnclv.serving._state.Live`): requests
in flight finish on the champion they started with. A champion that fails to
load leaves the current one serving, ``/model`` shows ``reload_error`` and
``/readyz`` stays 200.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import math
import os
from collections.abc import Callable
from typing import Annotated, Any

import bentoml
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from churnclv._errors import InputError
from churnclv.serving._bentoml_fixes import cancel_timeout_timers, quiet_client_errors
from churnclv.serving._openapi import document
from churnclv.serving._requests import (
    MAX_LOOKUP_IDS,
    CustomerIn,
    RequestError,
    validate_customers,
)
from churnclv.serving._responses import LookupResponse, PredictResponse
from churnclv.serving._state import ServingState
from churnclv.serving._state import logger as _online_logger
from churnclv.serving._state import redact as _redact

__all__ = ["ApiKeyMiddleware", "ChurnService"]

OPEN_PATHS = frozenset({"/livez", "/readyz", "/metrics", "/healthz"})
#: Requests whose Content-Length exceeds this are refused with 413 before parsing.
MAX_BODY_BYTES = 64 * 1024 * 1024


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _ok(body: dict[str, Any]) -> JSONResponse:
    """A 200 JSON answer; non-finite floats become null, as BentoML's serializer does."""
    try:
        return JSONResponse(body)
    except ValueError:  # json.dumps(allow_nan=False) met a NaN or inf
        return JSONResponse(_finite(body))


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
    live, info = state.live, state.info
    if live is None or info is None:
        return JSONResponse(state.not_ready_body(), status_code=503)
    body = dict(info)
    body["batching"] = live.batcher.stats()
    return JSONResponse(body)


#: Default cap, in seconds, of the back-off between champion load attempts.
READY_RETRY_MAX_S = 30.0


def _retry_max_s() -> float:
    try:
        value = float(os.environ.get("CHURNCLV_READY_RETRY_S") or READY_RETRY_MAX_S)
    except ValueError:
        return READY_RETRY_MAX_S
    return min(max(value, 0.1), 3600.0)


def _log_not_loaded(state: ServingState, retry_s: float) -> None:
    _online_logger.error(
        "churnclv: champion NOT loaded from %s (%s); /readyz and prediction routes answer "
        "503; retrying in the background every <= %g s (logged again only if the reason "
        "changes)",
        _redact(state.tracking_uri),
        state.error,
        retry_s,
    )


async def _retry_load(state: ServingState, last_error: str | None) -> None:
    """Retry loading the champion with a doubling back-off until it loads (or cancelled)."""
    loop = asyncio.get_running_loop()
    cap, attempts = _retry_max_s(), 1
    delay = min(1.0, cap)
    while not state.ready:
        await asyncio.sleep(delay)
        delay = min(delay * 2, cap)
        attempts += 1
        if await loop.run_in_executor(None, state.load):
            _online_logger.info("churnclv: champion loaded after %d attempts", attempts)
            return
        if state.error != last_error:
            last_error = state.error
            _log_not_loaded(state, cap)


async def _reload_loop(current: Callable[[], ServingState]) -> None:
    """Every ``reload_s`` seconds, swap in the registry's champion if its aliases moved.

    ``current()`` gives the state to watch (read on every tick, once a second
    at most). The batcher a swap replaced is closed once its queued requests
    are answered. A reload failure is logged once per distinct reason.
    """
    loop = asyncio.get_running_loop()
    last_check, last_error = loop.time(), None
    closing: set[asyncio.Task[None]] = set()
    while True:
        await asyncio.sleep(min(1.0, current().reload_s or 1.0))
        state = current()
        if state.reload_s <= 0 or not state.ready or loop.time() - last_check < state.reload_s:
            continue
        last_check = loop.time()
        try:
            replaced = await loop.run_in_executor(None, state.reload)
        except Exception as exc:  # never let the watcher die: report and keep serving
            state.reload_error = f"reload failed: {type(exc).__name__}: {exc}".splitlines()[0]
            replaced = None
        if replaced is not None:
            task = asyncio.create_task(replaced.aclose())
            closing.add(task)
            task.add_done_callback(closing.discard)
        if state.reload_error is not None and state.reload_error != last_error:
            _online_logger.error(
                "churnclv: %s; the current champion keeps serving", state.reload_error
            )
        last_error = state.reload_error


def _workers() -> int:
    """Worker processes (``CHURNCLV_WORKERS``, default 2).

    Each worker has its own interpreter lock, champion and micro-batcher; one
    worker tops out near one core on this 2-core machine. Measured with the
    frame-free scoring path, two workers serve 300 req/s of single-customer
    ``/predict`` at p99 31-41 ms (``benchmarks/serve.py``). Before that path,
    one worker reached ~190 req/s at p99 ~200 ms.
    """
    try:
        return max(1, int(os.environ.get("CHURNCLV_WORKERS", "2")))
    except ValueError:
        return 2


def _access_log() -> bool:
    """Whether BentoML logs every request (``CHURNCLV_ACCESS_LOG=1``; off by default).

    Formatting and writing one log record per request cost about 8% of a
    worker's CPU at 200 requests/s (py-spy); request counts and latencies stay
    on ``/metrics`` either way.
    """
    return os.environ.get("CHURNCLV_ACCESS_LOG", "0").strip().lower() in ("1", "true", "yes")


_extra_routes = Starlette(routes=[Route("/model", _model_route, methods=["GET"])])


@bentoml.asgi_app(_extra_routes, path="/")
@bentoml.service(
    name="churnclv",
    workers=_workers(),
    traffic={"timeout": 120},
    logging={"access": {"enabled": _access_log()}},
)
class ChurnService:
    """Churn probability, predicted value, tiers and retention actions over HTTP."""

    def __init__(self) -> None:
        cancel_timeout_timers()  # see serving/_bentoml_fixes.py: per-request timers kept 120 s
        quiet_client_errors()  # a 4xx BentoML rejects is one WARNING line, not a traceback
        self.state = ServingState.from_env()
        self._retry: asyncio.Task[None] | None = None
        self._reload: asyncio.Task[None] | None = None
        # never raises: failures are reported by __is_ready__ and one log line
        if not self.state.load():
            _log_not_loaded(self.state, _retry_max_s())
        # Everything loaded so far (MLflow, pandas, the models) lives as long as the worker:
        # moved out of the collector's sight, a full collection no longer walks it on a
        # request (p99 at 100 req/s: ~400 ms before, ~165 ms after, measured with hey).
        gc.collect()
        gc.freeze()

    @bentoml.on_startup
    async def _start_retrying(self) -> None:
        """Without a champion, keep trying to load it; then watch its aliases (module doc)."""
        if not self.state.ready:
            self._retry = asyncio.create_task(_retry_load(self.state, self.state.error))
        if self.state.reload_s > 0:
            self._reload = asyncio.create_task(_reload_loop(lambda: self.state))

    @bentoml.on_shutdown
    async def _stop_retrying(self) -> None:
        for task in (self._retry, self._reload):
            if task is not None:
                task.cancel()

    def __is_ready__(self) -> bool:
        """Ready once the champion is loaded (drives ``/readyz``)."""
        return self.state.ready

    @bentoml.api(route="/predict")
    async def predict(
        self, customers: Annotated[list[CustomerIn], Field(min_length=1)]
    ) -> PredictResponse:
        """Score customers from their raw histories (one feature query per batch)."""
        state = self.state
        live = state.live  # taken once: a swap meanwhile does not change this answer's champion
        if live is None:
            return JSONResponse(state.not_ready_body(), status_code=503)  # type: ignore[return-value]
        try:
            validate_customers(customers)
            predictions = await live.batcher.submit(customers)
        except RequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)  # type: ignore[return-value]
        except InputError as exc:
            return _error(422, str(exc), "customers")  # type: ignore[return-value]
        # A Response passes through BentoML as is; a dict would have its output model's JSON
        # schema rebuilt on every call just to pick the media type.
        return _ok(  # type: ignore[return-value]
            {"model_version": live.scorer.champion.model_version, "predictions": predictions}
        )

    @bentoml.api(route="/predict_features")
    async def predict_features(
        self, rows: Annotated[list[dict[str, Any]], Field(min_length=1)]
    ) -> PredictResponse:
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
        return _ok(  # type: ignore[return-value]
            {"model_version": scorer.champion.model_version, "predictions": predictions}
        )

    @bentoml.api(route="/lookup")
    def lookup(
        self,
        customer_ids: Annotated[
            list[Annotated[str, Field(min_length=1)]],
            Field(min_length=1, max_length=MAX_LOOKUP_IDS),
        ],
    ) -> LookupResponse:
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
        # Sent as is, like the other routes' answers (LookupResponse documents it).
        return _ok({"predictions": found, "missing": missing})  # type: ignore[return-value]


ChurnService.add_asgi_middleware(ApiKeyMiddleware)  # type: ignore[attr-defined]
document(ChurnService)
