"""Work-arounds for BentoML internals, applied per worker.

``cancel_timeout_timers``: BentoML 1.4's ``TimeoutMiddleware`` schedules a
``loop.call_later(timeout, ...)`` per request and never cancels it, so every
request's future, contextvars and OpenTelemetry span stay alive for the whole
traffic timeout (120 s here). At 100 requests/s per worker that is about
12,000 requests' objects; each full garbage collection walks them, and the
collections grew from 7 to 30 ms within 15 s, taking /predict's p99 at
200 req/s from ~50 ms in the first 10 s to ~130 ms in the sixth (measured:
``gc.callbacks`` in a worker, ``benchmarks/serve.py``'s per-10-s p99). The
patched ``__call__`` is the original with the timer cancelled once the
request is over; it is applied only while the installed BentoML still has the
uncancelled timer (the original source is checked), so a fixed release is
left alone. BentoML is Apache-2.0; the body below follows its
``bentoml._internal.server.http.traffic.TimeoutMiddleware.__call__``.

``quiet_client_errors``: BentoML logs every request its own input validation
rejects (a pydantic ``ValidationError`` or a ``BentoMLException`` below 500,
answered 4xx) at ERROR with the whole traceback, about 40 lines of framework
frames for one malformed body (2,136 of them in one schemathesis run). A
filter on that logger turns such a record into one WARNING line with the
route, the status and the error count; server errors keep their traceback.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from typing import Any

__all__ = ["CLIENT_ERROR_LOGGER", "cancel_timeout_timers", "quiet_client_errors"]

#: The logger BentoML's ``log_exception`` writes to (``bentoml._internal.server.http_app``).
CLIENT_ERROR_LOGGER = "bentoml._internal.server.http_app"

#: The timer scheduled as a bare statement: its handle is dropped, so nothing can cancel it.
_UNCANCELLABLE_TIMER = re.compile(
    r"^\s*loop\.call_later\(self\.timeout, self\._set_timer_out, waiter\)\s*$", re.MULTILINE
)


def cancel_timeout_timers() -> bool:
    """Patch BentoML's ``TimeoutMiddleware`` to cancel its timer; True when patched (now or
    before), False when the installed BentoML does not have the uncancelled timer."""
    try:
        from bentoml._internal.server.http.traffic import TimeoutMiddleware
    except ImportError:  # pragma: no cover - BentoML moved the class: nothing to patch
        return False
    if getattr(TimeoutMiddleware, "_churnclv_cancels_timer", False):
        return True
    try:
        source = inspect.getsource(TimeoutMiddleware.__call__)
    except (OSError, TypeError):  # pragma: no cover - no source to check against
        return False
    if not _UNCANCELLABLE_TIMER.search(source):
        return False
    from starlette.responses import JSONResponse

    async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def _send(message: Any) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
        try:
            try:
                await waiter
            except TimeoutError:
                if fut.cancel():
                    resp = JSONResponse(
                        {"error": f"Not able to process the request in {self.timeout} seconds"},
                        status_code=504,
                    )
                    await resp(scope, receive, send)
            else:
                await fut  # wait for the future to finish
        finally:
            timer.cancel()
        return None

    TimeoutMiddleware.__call__ = __call__  # type: ignore[method-assign]
    TimeoutMiddleware._churnclv_cancels_timer = True  # type: ignore[attr-defined]
    return True


def _client_error(exc: BaseException | None) -> tuple[int, str] | None:
    """``(status, summary)`` when ``exc`` is answered with a 4xx by BentoML, else None."""
    if exc is None:
        return None
    try:
        from bentoml.exceptions import BentoMLException
        from pydantic import ValidationError
    except ImportError:  # pragma: no cover - BentoML is installed wherever this runs
        return None
    if isinstance(exc, ValidationError):
        return 400, f"{exc.error_count()} validation error(s) for {exc.title}"
    if isinstance(exc, BentoMLException):
        status = int(exc.error_code)
        if 400 <= status < 500:
            return status, f"{type(exc).__name__}: {exc}"[:300]
    return None


class _ClientErrorFilter(logging.Filter):
    """Rewrites BentoML's traceback record of a 4xx into one WARNING line (see module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        found = _client_error(exc)
        if found is None:
            return True
        status, summary = found
        where = record.getMessage().removeprefix("Exception on ")  # "/predict [POST]"
        record.msg, record.args = "Client error on %s: %d %s", (where, status, summary)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


def quiet_client_errors() -> None:
    """Log BentoML's 4xx input errors as one WARNING line each, not an ERROR traceback."""
    logger = logging.getLogger(CLIENT_ERROR_LOGGER)
    if not any(isinstance(f, _ClientErrorFilter) for f in logger.filters):
        logger.addFilter(_ClientErrorFilter())
