"""The per-worker work-arounds for BentoML: TimeoutMiddleware timers, 4xx tracebacks."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import pytest

pytest.importorskip("bentoml")

from bentoml._internal.server import http_app
from bentoml._internal.server.http.traffic import TimeoutMiddleware
from bentoml.exceptions import BadInput
from pydantic import BaseModel, ValidationError

from churnclv.serving._bentoml_fixes import (
    CLIENT_ERROR_LOGGER,
    _ClientErrorFilter,
    cancel_timeout_timers,
    quiet_client_errors,
)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _slow_app(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(5)


def _serve(app: Any, timeout: float) -> tuple[list[Any], list[Any]]:
    """One request through TimeoutMiddleware; the messages sent and its timeout timers still
    pending (the app's own timers are not counted)."""
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def run() -> list[Any]:
        await TimeoutMiddleware(app, timeout=timeout)({"type": "http"}, receive, send)
        loop = asyncio.get_running_loop()
        return [
            h
            for h in loop._scheduled  # type: ignore[attr-defined]
            if not h.cancelled() and getattr(h._callback, "__name__", "") == "_set_timer_out"
        ]

    return sent, asyncio.run(run())


def test_no_timer_outlives_its_request_once_patched() -> None:
    """After the patch, a finished request leaves no pending timer (its objects can go)."""
    assert cancel_timeout_timers()
    sent, pending = _serve(_app, timeout=120)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert pending == []


def test_timeouts_still_answer_504_once_patched() -> None:
    """A request past the traffic timeout still gets BentoML's 504 answer."""
    assert cancel_timeout_timers()
    sent, pending = _serve(_slow_app, timeout=0.05)
    assert sent[0]["status"] == 504
    assert pending == []


# ---- quiet_client_errors -----------------------------------------------------------------------
def _record(exc: BaseException) -> logging.LogRecord:
    """The record BentoML's ``log_exception`` writes for ``exc`` on POST /predict."""
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord(
        CLIENT_ERROR_LOGGER, logging.ERROR, __file__, 1, "Exception on %s [%s]",
        ("/predict", "POST"), info,
    )  # fmt: skip


def _validation_error() -> ValidationError:
    class Body(BaseModel):
        customers: list[str]

    try:
        Body.model_validate({"customers": 5})
    except ValidationError as exc:
        return exc
    raise AssertionError("the body validated")


def test_client_errors_are_one_warning_line_without_traceback() -> None:
    """A validation error BentoML answers with 400 is logged as one WARNING line naming it."""
    record = _record(_validation_error())
    assert _ClientErrorFilter().filter(record)
    assert record.levelno == logging.WARNING and record.exc_info is None
    expected = "Client error on /predict [POST]: 400 1 validation error(s) for Body"
    assert record.getMessage() == expected


def test_bentoml_4xx_exceptions_are_one_warning_line() -> None:
    """A BentoML exception with a 4xx status is logged as a WARNING line with that status."""
    record = _record(BadInput("no body"))
    assert _ClientErrorFilter().filter(record)
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == "Client error on /predict [POST]: 400 BadInput: no body"


def test_server_errors_keep_their_traceback() -> None:
    """An unexpected exception (answered 500) stays an ERROR record with its traceback."""
    record = _record(RuntimeError("boom"))
    assert _ClientErrorFilter().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == "Exception on /predict [POST]"


def test_the_filter_sits_on_the_logger_bentoml_writes_to_once() -> None:
    """The filter is installed on BentoML's http_app logger, once however often it is called."""
    assert http_app.logger.name == CLIENT_ERROR_LOGGER
    quiet_client_errors()
    quiet_client_errors()
    installed = [f for f in http_app.logger.filters if isinstance(f, _ClientErrorFilter)]
    assert len(installed) == 1
